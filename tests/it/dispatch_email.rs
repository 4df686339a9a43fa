//! Email dispatch against a real SMTP server on 127.0.0.1 (tests/it/support/smtp_server.rs): the
//! message is parsed and checked (subject, HTML tables, text alternative, CSV attachment), and so
//! are STARTTLS, implicit TLS, the plain local relay, login, retries with the server down, parking
//! and the background worker.

use crate::support::dispatch_fixtures as fixtures;
use crate::support::smtp_server;

use std::sync::Arc;
use std::time::Duration;

use breakdesk::cases::{Cases, Channel, DispatchState, EventAction};
use breakdesk::dispatch::{
    self, DispatchError, DispatchOptions, Dispatcher, ItemOutcome, ItemStatus, Outbox,
    OutboxSender, Payload, SenderEvent,
};
use breakdesk::store::Store;
use breakdesk::wiring::dispatch::options;
use chrono::Utc;
use fixtures::{FAST_OUTBOX, SECRET, SECRET_ENV, accepted_cases, alice, config};
use mail_parser::{MessageParser, MimeHeaders};
use smtp_server::{Mode, Security, SmtpServer, TestPki};

/// `[email]` for a test server (login `robot` unless `extra` sets `username`), plus `extra`.
fn email_config(
    server: &SmtpServer,
    ca: &std::path::Path,
    tls: &str,
    extra: &str,
) -> DispatchOptions {
    let login = if extra.contains("username") {
        ""
    } else {
        "username = \"robot\"\n"
    };
    options(&config(&format!(
        "[email]\nenabled = true\nhost = \"127.0.0.1\"\nport = {port}\ntls = \"{tls}\"\nca_file = \"{ca}\"\n\
         {login}password_env = \"{SECRET_ENV}\"\nfrom = \"Recon Desk <recon@example.com>\"\n\
         to = [\"lead@example.com\"]\ncc = [\"audit@example.com\"]\ntimeout_secs = 5\n{extra}\n{FAST_OUTBOX}",
        port = server.port(),
        ca = ca.display(),
    )))
}

/// The CSV attachment's rows (a small RFC 4180 reader).
fn csv_rows(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut field)),
            (false, '\r') => {}
            (false, '\n') => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => field.push(c),
        }
    }
    if !field.is_empty() || !row.is_empty() {
        row.push(field);
        rows.push(row);
    }
    rows
}

/// The rows (cells as text) of the HTML table with this id.
fn html_table(html: &str, id: &str) -> Vec<Vec<String>> {
    let start = html
        .find(&format!("<table id=\"{id}\""))
        .unwrap_or_else(|| panic!("no table {id} in\n{html}"));
    let end = start + html[start..].find("</table>").expect("table end");
    html[start..end]
        .split("<tr>")
        .skip(1)
        .map(|tr| {
            tr.split("<td")
                .skip(1)
                .map(|td| {
                    let inner = &td[td.find('>').unwrap() + 1..];
                    inner[..inner.find("</td>").unwrap()].to_string()
                })
                .collect::<Vec<_>>()
        })
        .filter(|r| !r.is_empty())
        .collect()
}

#[test]
fn the_report_goes_out_over_starttls_with_html_text_and_the_csv_of_the_cases() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new();
    let ca = dir.path().join("ca.pem");
    pki.write_ca(&ca);
    let server = SmtpServer::start(&pki, Security::StartTls, Mode::Up);
    let cfg = email_config(&server, &ca, "starttls", "top_breaks = 3");
    let store = Store::open(dir.path()).unwrap();
    let cases = accepted_cases(&store, 5);

    let queued = dispatch::queue_email(
        &store,
        &cfg.email,
        &cases,
        &["Extra <extra@example.com>".into()],
        &alice(),
    )
    .unwrap();
    assert_eq!(queued.ids.len(), 1);
    assert_eq!(queued.case_ids.len(), 5);
    let id = queued.ids[0];
    let outbox = Outbox::new(&store);
    let item = outbox.get(id).unwrap().unwrap();
    assert_eq!(item.status, ItemStatus::Queued);
    let Payload::Email(payload) = &item.payload else {
        panic!("{:?}", item.payload)
    };
    // Queued is recorded on every case, with an event, before anything is sent.
    let handle = Cases::new(&store);
    for c in &cases {
        let now = handle.get(&c.id).unwrap().unwrap();
        let d = now.dispatch(Channel::Email).unwrap();
        assert_eq!((d.state, d.outbox_id), (DispatchState::Queued, id));
        assert!(!now.dispatched);
        let ev = handle.events_for(&c.id).unwrap();
        assert_eq!(ev.last().unwrap().action, EventAction::DispatchQueued);
    }
    assert!(server.messages().is_empty());

    let dispatcher = Dispatcher::new(&cfg).unwrap();
    let report = outbox.flush_due(&dispatcher, Utc::now()).unwrap();
    assert_eq!(report.sent(), 1, "{report:?}");
    assert!(report.is_complete());

    let messages = server.messages();
    assert_eq!(messages.len(), 1);
    let m = &messages[0];
    assert!(
        m.tls && m.starttls,
        "the message must travel after STARTTLS"
    );
    assert_eq!(m.auth, Some(("robot".to_string(), SECRET.to_string())));
    assert_eq!(m.from, "recon@example.com");
    let mut rcpt = m.to.clone();
    rcpt.sort();
    assert_eq!(
        rcpt,
        ["audit@example.com", "extra@example.com", "lead@example.com"]
    );

    let parsed = MessageParser::default()
        .parse(m.data.as_bytes())
        .expect("a parseable message");
    let today = Utc::now().format("%Y-%m-%d").to_string();
    assert_eq!(
        parsed.subject(),
        Some(format!("breakdesk: 5 accepted break(s), {today}").as_str())
    );
    assert_eq!(
        parsed.message_id().map(|s| format!("<{s}>")),
        Some(payload.message_id.clone())
    );
    // HTML: counts by bucket, severity and status; the top 3 by |difference|; tickets; model.
    let html = parsed.body_html(0).expect("an HTML part").to_string();
    let by_bucket = html_table(&html, "by-bucket");
    assert_eq!(
        by_bucket[0][..2],
        ["Timing Issue".to_string(), "2".to_string()]
    );
    assert_eq!(by_bucket.len(), 4, "{by_bucket:?}");
    let by_severity: Vec<String> = html_table(&html, "by-severity")
        .iter()
        .map(|r| format!("{} {}", r[0], r[1]))
        .collect();
    assert_eq!(by_severity, ["Critical 1", "High 2", "Medium 1", "Low 1"]);
    assert_eq!(html_table(&html, "by-status")[0][..2], ["Accepted", "5"]);
    let top = html_table(&html, "top-breaks");
    assert_eq!(top.len(), 3, "{top:?}");
    let ticket_of = |key: &str| cases.iter().find(|c| c.key == key).unwrap().ticket.clone();
    assert_eq!(top[0][0], ticket_of("00017|3003|0100"));
    assert_eq!(top[0][7], "1,234,567");
    assert_eq!(top[1][0], ticket_of("00000|2002|0042"));
    assert_eq!(top[1][7], "-98,765.43");
    assert_eq!(top[2][0], ticket_of("00099|5005|0007"));
    // Text from the cases is escaped.
    assert!(top[0][9].contains("&lt;check&gt;"), "{}", top[0][9]);
    assert!(!html.contains("<check>"));
    for c in &cases {
        assert!(html.contains(&c.ticket), "ticket {} in the HTML", c.ticket);
    }
    assert!(html.contains("iforest-test-1"));
    // The plain-text alternative says the same.
    let text = parsed.body_text(0).expect("a text part").to_string();
    assert!(
        text.contains("By severity:") && text.contains("Critical"),
        "{text}"
    );
    assert!(text.contains(&ticket_of("00017|3003|0100")));
    assert!(!text.contains("<table"));
    // The CSV attachment lists every case.
    assert_eq!(parsed.attachment_count(), 1);
    let att = parsed.attachment(0).unwrap();
    assert_eq!(
        att.attachment_name(),
        Some(format!("breakdesk-cases-{}.csv", Utc::now().format("%Y%m%d")).as_str())
    );
    assert_eq!(att.content_type().map(|c| c.subtype()), Some(Some("csv")));
    let rows = csv_rows(att.text_contents().expect("CSV text"));
    assert_eq!(
        rows[0][..7],
        [
            "ticket", "case_id", "status", "bucket", "severity", "profile", "key"
        ]
    );
    assert_eq!(rows.len(), 6);
    for c in &cases {
        let row = rows
            .iter()
            .find(|r| r[0] == c.ticket)
            .expect("a row per case");
        assert_eq!(row[1], c.id);
        assert_eq!(row[2], "Accepted");
        assert_eq!(row[6], c.key);
        assert_eq!(row[10].parse::<f64>().unwrap(), c.difference);
        assert_eq!(row[12], c.summary);
    }

    // Recorded: the item is sent with its Message-ID, each case is dispatched with an event.
    let item = outbox.get(id).unwrap().unwrap();
    assert!(matches!(item.status, ItemStatus::Sent { .. }));
    assert_eq!(item.result.as_deref(), Some(payload.message_id.as_str()));
    assert!(
        item.response.as_deref().unwrap().starts_with("250"),
        "{:?}",
        item.response
    );
    for c in &cases {
        let now = handle.get(&c.id).unwrap().unwrap();
        assert!(now.dispatched);
        let d = now.dispatch(Channel::Email).unwrap();
        assert_eq!(d.state, DispatchState::Sent);
        assert_eq!(d.reference.as_deref(), Some(payload.message_id.as_str()));
        let ev = handle.events_for(&c.id).unwrap();
        let last = ev.last().unwrap();
        assert_eq!(last.action, EventAction::Dispatched);
        assert!(
            last.reason
                .as_deref()
                .unwrap()
                .contains(&payload.message_id)
        );
        assert_eq!(last.user, "alice");
    }
    // Nothing more is due; a second flush sends nothing, and the cases are no longer
    // dispatchable on email.
    let again = outbox.flush_due(&dispatcher, Utc::now()).unwrap();
    assert!(again.outcomes.is_empty());
    assert_eq!(server.messages().len(), 1);
    let q = dispatch::queue_email(&store, &cfg.email, &cases, &[], &alice()).unwrap();
    assert!(q.ids.is_empty());
    assert_eq!(q.skipped.len(), 5);
    assert!(
        q.skipped[0].reason.contains("already sent on email"),
        "{:?}",
        q.skipped
    );
}

#[test]
fn a_local_relay_takes_plain_smtp_and_masking_hides_account_identifiers() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new();
    let ca = dir.path().join("ca.pem");
    pki.write_ca(&ca);
    let server = SmtpServer::start(&pki, Security::Plain, Mode::Up);
    let cfg = email_config(
        &server,
        &ca,
        "none",
        "mask_accounts = true\nusername = \"\"",
    );
    let store = Store::open(dir.path()).unwrap();
    let cases = accepted_cases(&store, 5);
    dispatch::queue_email(&store, &cfg.email, &cases, &[], &alice()).unwrap();
    let dispatcher = Dispatcher::new(&cfg).unwrap();
    let report = Outbox::new(&store)
        .flush(&dispatcher, Duration::from_secs(5), |_, _| {})
        .unwrap();
    assert!(report.is_complete(), "{report:?}");
    let m = &server.messages()[0];
    assert!(!m.tls, "a local relay is spoken to in plain text");
    assert_eq!(m.auth, None);
    let parsed = MessageParser::default().parse(m.data.as_bytes()).unwrap();
    let html = parsed.body_html(0).unwrap().to_string();
    let text = parsed.body_text(0).unwrap().to_string();
    let csv = parsed
        .attachment(0)
        .unwrap()
        .text_contents()
        .unwrap()
        .to_string();
    for body in [&html, &text, &csv] {
        for account in ["1001", "2002", "3003", "4004", "5005", "00017", "00099"] {
            assert!(!body.contains(account), "{account} shows in\n{body}");
        }
    }
    assert!(csv.contains("***00|**01|**42"), "{csv}");
    assert!(html.contains("Company ***17 account **03"), "{html}");
}

#[test]
fn implicit_tls_from_the_first_byte() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new();
    let ca = dir.path().join("ca.pem");
    pki.write_ca(&ca);
    let server = SmtpServer::start(&pki, Security::Implicit, Mode::Up);
    let cfg = email_config(&server, &ca, "tls", "attach_csv = false");
    let store = Store::open(dir.path()).unwrap();
    let cases = accepted_cases(&store, 2);
    dispatch::queue_email(&store, &cfg.email, &cases, &[], &alice()).unwrap();
    let dispatcher = Dispatcher::new(&cfg).unwrap();
    let report = Outbox::new(&store)
        .flush_due(&dispatcher, Utc::now())
        .unwrap();
    assert_eq!(report.sent(), 1, "{report:?}");
    let m = &server.messages()[0];
    assert!(m.tls && !m.starttls);
    assert_eq!(m.auth, Some(("robot".to_string(), SECRET.to_string())));
    let parsed = MessageParser::default().parse(m.data.as_bytes()).unwrap();
    assert_eq!(parsed.attachment_count(), 0);
    assert!(parsed.body_html(0).is_some() && parsed.body_text(0).is_some());
}

#[test]
fn a_server_that_does_not_offer_starttls_gets_nothing_and_the_item_is_parked() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new();
    let ca = dir.path().join("ca.pem");
    pki.write_ca(&ca);
    // A plain server, while the client requires STARTTLS: no login, no message in clear text.
    let server = SmtpServer::start(&pki, Security::Plain, Mode::Up);
    let cfg = email_config(&server, &ca, "starttls", "");
    let store = Store::open(dir.path()).unwrap();
    let cases = accepted_cases(&store, 1);
    let id = dispatch::queue_email(&store, &cfg.email, &cases, &[], &alice())
        .unwrap()
        .ids[0];
    let dispatcher = Dispatcher::new(&cfg).unwrap();
    let report = Outbox::new(&store)
        .flush_due(&dispatcher, Utc::now())
        .unwrap();
    assert_eq!(report.parked(), 1, "{report:?}");
    assert!(server.connections() >= 1);
    assert!(server.messages().is_empty());
    let item = Outbox::new(&store).get(id).unwrap().unwrap();
    let ItemStatus::Parked { reason, .. } = &item.status else {
        panic!("{:?}", item.status)
    };
    assert!(reason.to_lowercase().contains("starttls"), "{reason}");
    let case = Cases::new(&store).get(&cases[0].id).unwrap().unwrap();
    assert_eq!(
        case.dispatch(Channel::Email).unwrap().state,
        DispatchState::Parked
    );
    assert!(!case.dispatched);
    let ev = Cases::new(&store).events_for(&case.id).unwrap();
    assert_eq!(ev.last().unwrap().action, EventAction::DispatchParked);
}

#[test]
fn smtp_down_then_up_delivers_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new();
    let ca = dir.path().join("ca.pem");
    pki.write_ca(&ca);
    let server = SmtpServer::start(&pki, Security::StartTls, Mode::Down);
    let cfg = email_config(&server, &ca, "starttls", "");
    let store = Store::open(dir.path()).unwrap();
    let cases = accepted_cases(&store, 3);
    let id = dispatch::queue_email(&store, &cfg.email, &cases, &[], &alice())
        .unwrap()
        .ids[0];
    let outbox = Outbox::new(&store);
    let dispatcher = Dispatcher::new(&cfg).unwrap();

    // Down: the attempt fails, the item waits to retry; nothing is lost or marked sent.
    let report = outbox.flush_due(&dispatcher, Utc::now()).unwrap();
    match &report.outcomes[..] {
        [(i, Channel::Email, ItemOutcome::Retrying { error, .. })] => {
            assert_eq!(*i, id);
            assert!(error.contains("421"), "{error}");
        }
        other => panic!("{other:?}"),
    }
    assert!(server.refused() >= 1);
    let item = outbox.get(id).unwrap().unwrap();
    assert!(matches!(item.status, ItemStatus::RetryWait { .. }));
    assert_eq!(item.attempts, 1);
    let case = Cases::new(&store).get(&cases[0].id).unwrap().unwrap();
    assert_eq!(
        case.dispatch(Channel::Email).unwrap().state,
        DispatchState::Queued
    );
    assert!(!case.dispatched);

    // Up again: the retry delivers it, once.
    server.set_mode(Mode::Up);
    let report = outbox
        .flush(&dispatcher, Duration::from_secs(10), |_, _| {})
        .unwrap();
    assert!(report.is_complete(), "{report:?}");
    assert_eq!(server.messages().len(), 1);
    // Later flushes find nothing to send.
    for _ in 0..3 {
        let r = outbox
            .flush_due(&dispatcher, Utc::now() + chrono::Duration::hours(1))
            .unwrap();
        assert!(r.outcomes.is_empty(), "{r:?}");
    }
    assert_eq!(server.messages().len(), 1);
    let item = outbox.get(id).unwrap().unwrap();
    assert!(matches!(item.status, ItemStatus::Sent { .. }));
    assert_eq!(item.attempts, 2);
    let Payload::Email(p) = &item.payload else {
        panic!()
    };
    // The retry sent the message rendered at queue time: same Message-ID.
    let sent = server.messages();
    let parsed = MessageParser::default()
        .parse(sent[0].data.as_bytes())
        .unwrap();
    assert_eq!(
        parsed.message_id().map(|s| format!("<{s}>")),
        Some(p.message_id.clone())
    );
    assert!(
        Cases::new(&store)
            .get(&cases[0].id)
            .unwrap()
            .unwrap()
            .dispatched
    );
}

#[test]
fn attempts_run_out_into_parked_and_retry_brings_the_item_back() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new();
    let ca = dir.path().join("ca.pem");
    pki.write_ca(&ca);
    let server = SmtpServer::start(&pki, Security::StartTls, Mode::Down);
    let cfg = email_config(&server, &ca, "starttls", "");
    let store = Store::open(dir.path()).unwrap();
    let cases = accepted_cases(&store, 1);
    let id = dispatch::queue_email(&store, &cfg.email, &cases, &[], &alice())
        .unwrap()
        .ids[0];
    let outbox = Outbox::new(&store);
    let dispatcher = Dispatcher::new(&cfg).unwrap();
    // max_attempts = 4 (FAST_OUTBOX): four refusals park it.
    let report = outbox
        .flush(&dispatcher, Duration::from_secs(10), |_, _| {})
        .unwrap();
    assert_eq!(report.parked(), 1, "{report:?}");
    assert_eq!(server.refused(), 4);
    let item = outbox.get(id).unwrap().unwrap();
    let ItemStatus::Parked { reason, .. } = &item.status else {
        panic!("{:?}", item.status)
    };
    assert!(reason.starts_with("gave up after 4 attempt(s)"), "{reason}");
    assert!(outbox.pending().unwrap().is_empty());
    // Parked items are not retried by a flush.
    let r = outbox
        .flush_due(&dispatcher, Utc::now() + chrono::Duration::days(1))
        .unwrap();
    assert!(r.outcomes.is_empty());

    server.set_mode(Mode::Up);
    let item = outbox.retry(id, &alice()).unwrap();
    assert_eq!(
        (item.status.clone(), item.attempts),
        (ItemStatus::Queued, 0)
    );
    let case = Cases::new(&store).get(&cases[0].id).unwrap().unwrap();
    assert_eq!(
        case.dispatch(Channel::Email).unwrap().state,
        DispatchState::Queued
    );
    let r = outbox.flush_due(&dispatcher, Utc::now()).unwrap();
    assert_eq!(r.sent(), 1);
    assert_eq!(server.messages().len(), 1);
    // A sent item can be neither retried nor cancelled.
    let e = outbox.retry(id, &alice()).unwrap_err();
    assert!(matches!(e, DispatchError::Refused { .. }), "{e}");
    let e = outbox.cancel(id, &alice()).unwrap_err();
    assert!(e.to_string().contains("it was sent"), "{e}");
}

#[test]
fn a_channel_that_is_not_configured_is_refused_naming_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let cases = accepted_cases(&store, 1);
    let cfg = options(&config(""));
    let e = dispatch::queue_email(&store, &cfg.email, &cases, &[], &alice()).unwrap_err();
    assert!(matches!(e, DispatchError::NotConfigured(_)));
    assert!(e.to_string().contains("[email] enabled"), "{e}");
    let e = dispatch::queue_jira(&store, &cfg.jira, &cases, &alice()).unwrap_err();
    assert!(e.to_string().contains("[jira] enabled"), "{e}");
    let e = dispatch::queue_webhook(&store, &cfg.webhook, &cases, &alice()).unwrap_err();
    assert!(e.to_string().contains("[webhook] enabled"), "{e}");
    let cfg = options(&config(
        "[email]\nenabled = true\nhost = \"127.0.0.1\"\nfrom = \"a@example.com\"\n",
    ));
    let e = dispatch::queue_email(&store, &cfg.email, &cases, &[], &alice()).unwrap_err();
    assert!(e.to_string().contains("[email] to"), "{e}");
    let e = dispatch::queue_email(
        &store,
        &cfg.email,
        &cases,
        &["not an address".into()],
        &alice(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("not an address"), "{e}");
    // Nothing was written.
    assert!(
        Outbox::new(&store)
            .list(&Default::default())
            .unwrap()
            .is_empty()
    );
    let c = Cases::new(&store).get(&cases[0].id).unwrap().unwrap();
    assert!(c.dispatches.is_empty());
}

#[test]
fn a_background_worker_sends_and_reports_over_its_channel() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new();
    let ca = dir.path().join("ca.pem");
    pki.write_ca(&ca);
    let server = SmtpServer::start(&pki, Security::StartTls, Mode::Up);
    let cfg = email_config(&server, &ca, "starttls", "");
    let store = Arc::new(Store::open(dir.path()).unwrap());
    let cases = accepted_cases(&store, 2);
    let worker = OutboxSender::spawn(Arc::clone(&store), Dispatcher::new(&cfg).unwrap());
    let id = dispatch::queue_email(&store, &cfg.email, &cases, &[], &alice())
        .unwrap()
        .ids[0];
    worker.flush_now();
    let event = match worker.events().recv_timeout(Duration::from_secs(20)) {
        Ok(SenderEvent::Attempted {
            id: got,
            outcome,
            item,
            ..
        }) => {
            assert_eq!(got, id);
            assert!(matches!(item.status, ItemStatus::Sent { .. }));
            outcome
        }
        Ok(other) => panic!("unexpected {other:?}"),
        Err(e) => panic!("no report from the worker: {e}"),
    };
    assert!(matches!(event, ItemOutcome::Sent { .. }), "{event:?}");
    worker.stop();
    assert_eq!(server.messages().len(), 1);
}
