use super::*;

#[test]
fn state_labels() {
    assert_eq!(ConnState::Connecting { attempt: 0 }.label(), "connecting…");
    assert_eq!(ConnState::Live.label(), "● live");
    assert_eq!(
        ConnState::Reconnecting {
            attempt: 3,
            wait: Duration::from_secs(2),
            error: "refused".into()
        }
        .label(),
        "reconnecting in 2 s (attempt 3)"
    );
    assert_eq!(
        ConnState::Reconnecting {
            attempt: 1,
            wait: Duration::from_millis(500),
            error: "refused".into()
        }
        .label(),
        "reconnecting in 0.5 s (attempt 1)"
    );
    assert_eq!(
        ConnState::Error("401 Unauthorized".into()).label(),
        "error: 401 Unauthorized"
    );
    let long = ConnState::Error("x".repeat(100)).label();
    assert_eq!(long.chars().count(), "error: ".len() + 48);
}
