use super::*;
use crate::config::KeyList;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

fn ev(code: KeyCode, mods: KeyModifiers) -> Key {
    Key::from_event(&KeyEvent::new(code, mods))
}

#[test]
fn parse_and_normalise() {
    assert_eq!(
        Key::parse("a").unwrap(),
        ev(KeyCode::Char('a'), KeyModifiers::NONE)
    );
    assert_eq!(
        Key::parse("A").unwrap(),
        ev(KeyCode::Char('A'), KeyModifiers::SHIFT)
    );
    assert_eq!(Key::parse("shift-a").unwrap(), Key::parse("A").unwrap());
    assert_eq!(
        Key::parse("ctrl-d").unwrap(),
        ev(KeyCode::Char('d'), KeyModifiers::CONTROL)
    );
    assert_eq!(Key::parse("space").unwrap().label(), "space");
    assert_eq!(Key::parse("f5").unwrap().code, KeyCode::F(5));
    assert!(Key::parse("f13").is_err());
    assert!(Key::parse("banana").is_err());
    assert_eq!(Key::parse("ctrl-d").unwrap().label(), "ctrl-d");
}

#[test]
fn every_default_key_parses_and_no_key_is_bound_twice_in_a_context() {
    let km = Keymap::defaults();
    for (cmd, name, ctx, keys, _, _) in DEFAULTS {
        let b = km
            .bindings
            .iter()
            .find(|b| b.name == *name && b.ctx == *ctx)
            .unwrap();
        assert_eq!(b.cmd, *cmd);
        assert_eq!(b.keys.len(), keys.len(), "{name}: {keys:?}");
    }
    for ctx in [
        Ctx::Queue,
        Ctx::Summary,
        Ctx::Table,
        Ctx::Clusters,
        Ctx::Approvals,
        Ctx::Outbox,
        Ctx::Picker,
        Ctx::Global,
    ] {
        let mut seen = std::collections::HashSet::new();
        for b in km.bindings.iter().filter(|b| b.ctx == ctx) {
            for k in &b.keys {
                assert!(seen.insert(*k), "{:?} bound twice in {ctx:?}", k.label());
            }
        }
    }
}

#[test]
fn lookup_prefers_the_context() {
    let km = Keymap::defaults();
    let a = Key::parse("a").unwrap();
    assert_eq!(km.lookup(Ctx::Table, a), Some(Cmd::Accept));
    assert_eq!(km.lookup(Ctx::Approvals, a), Some(Cmd::Approve));
    assert_eq!(km.lookup(Ctx::Clusters, a), None);
    assert_eq!(
        km.lookup(Ctx::Clusters, Key::parse("j").unwrap()),
        Some(Cmd::Down)
    );
    // Dispatch: j still moves down; J is Jira, e email, 4 the outbox, R retries there.
    let k = |s: &str| Key::parse(s).unwrap();
    assert_eq!(km.lookup(Ctx::Table, k("j")), Some(Cmd::Down));
    assert_eq!(km.lookup(Ctx::Table, k("J")), Some(Cmd::Jira));
    assert_eq!(km.lookup(Ctx::Table, k("e")), Some(Cmd::Email));
    assert_eq!(km.lookup(Ctx::Table, k("4")), Some(Cmd::ViewOutbox));
    assert_eq!(km.lookup(Ctx::Outbox, k("R")), Some(Cmd::RetryItem));
    assert_eq!(km.lookup(Ctx::Outbox, k("X")), Some(Cmd::CancelItem));
    assert_eq!(km.lookup(Ctx::Table, k("W")), Some(Cmd::Webhook));
    assert_eq!(km.lookup(Ctx::Outbox, k("W")), Some(Cmd::Webhook));
    assert_eq!(km.lookup(Ctx::Table, k("R")), None);
    // The queue: take, release and note there and on a table row; 5 and 6 everywhere.
    assert_eq!(km.lookup(Ctx::Queue, k("m")), Some(Cmd::Take));
    assert_eq!(km.lookup(Ctx::Table, k("M")), Some(Cmd::Release));
    assert_eq!(km.lookup(Ctx::Queue, k("i")), Some(Cmd::AddNote));
    assert_eq!(km.lookup(Ctx::Queue, k("o")), Some(Cmd::MyQueue));
    assert_eq!(km.lookup(Ctx::Queue, k("a")), Some(Cmd::Accept));
    assert_eq!(km.lookup(Ctx::Outbox, k("5")), Some(Cmd::ViewQueue));
    assert_eq!(km.lookup(Ctx::Queue, k("6")), Some(Cmd::ViewSummary));
}

#[test]
fn overrides_replace_keys_and_unknown_names_fail() {
    let mut o = BTreeMap::new();
    o.insert("accept".to_string(), KeyList::One("y".into()));
    let km = Keymap::with_overrides(&o).unwrap();
    assert_eq!(
        km.lookup(Ctx::Table, Key::parse("y").unwrap()),
        Some(Cmd::Accept)
    );
    assert_eq!(km.lookup(Ctx::Table, Key::parse("a").unwrap()), None);
    assert!(
        km.footer(Ctx::Table)
            .iter()
            .any(|(k, n)| k == "y" && *n == "accept")
    );
    o.insert("acept".to_string(), KeyList::One("y".into()));
    let e = Keymap::with_overrides(&o).unwrap_err();
    assert!(e.contains("\"acept\"") && e.contains("accept"), "{e}");
    let mut o = BTreeMap::new();
    o.insert(
        "down".to_string(),
        KeyList::Many(vec!["j".into(), "ctrl-zz".into()]),
    );
    assert!(Keymap::with_overrides(&o).unwrap_err().contains("ctrl-zz"));
}
