//! The case store on real stores in temporary directories: identity and idempotence, the status
//! machine, roles, reasons, tickets, events, persistence, migration, feedback, undo, and that a
//! killed process loses no acknowledged decision.

use crate::support::store_v1;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use breakdesk::cases::{
    Action, Actor, BreakInput, CaseError, CaseFilter, Cases, Change, EventAction, FeedbackRow,
    Origin, RULES_USER, Role, SYSTEM_USER, Status, case_id,
};
use breakdesk::store::{SCHEMA_VERSION, Store, StoreError};
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use sha2::{Digest, Sha256};

/// Set in a child process re-executed by a test: the data directory it works on.
const CHILD_DIR: &str = "BREAKDESK_CASES_TEST_CHILD_DIR";

fn d(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

fn at(y: i32, m: u32, day: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, day, 9, 30, 0).unwrap()
}

/// A flagged record of `key` in the break that began on `start`, seen on `date`.
fn rec(key: &str, start: &str, date: &str) -> BreakInput {
    let mut row = serde_json::Map::new();
    row.insert("account".into(), serde_json::json!(key));
    row.insert("gl_amount".into(), serde_json::json!(1250.5));
    row.insert("sub_amount".into(), serde_json::json!(1000.0));
    BreakInput {
        profile: "gl_ihub".into(),
        key: key.into(),
        start_date: d(start),
        date: d(date),
        bucket: "Timing".into(),
        bucket_rule: "timing_cutoff".into(),
        confidence: 0.75,
        severity: "medium".into(),
        summary: format!("{key}: GL ahead of sub-ledger by 250.50"),
        score: 0.5,
        rank: 3,
        difference: 250.5,
        model_version: "iforest-v1".into(),
        row,
    }
}

fn alice() -> Actor {
    Actor::analyst("alice")
}
fn sam() -> Actor {
    Actor::supervisor("sam")
}
fn tess() -> Actor {
    Actor::supervisor("tess")
}

fn cases_at(store: &Store, t: DateTime<Utc>) -> Cases<'_> {
    Cases::with_clock(store, move || t)
}

/// A case brought to `status` by legal steps; the proposal (if any) is made by alice.
fn case_in(cases: &Cases<'_>, key: &str, status: Status) -> String {
    let id = cases
        .upsert(&rec(key, "2024-05-01", "2024-05-01"), false)
        .unwrap()
        .case
        .id;
    match status {
        Status::PendingReview => {}
        Status::Accepted => {
            cases.accept(&id, &alice(), None).unwrap();
        }
        Status::Rejected => {
            cases.reject(&id, &alice(), "matched manually").unwrap();
        }
        Status::AutoResolveProposed => {
            cases.propose(&id, &alice(), Some("timing")).unwrap();
        }
        Status::Approved => {
            cases.propose(&id, &alice(), Some("timing")).unwrap();
            cases.approve(&id, &sam(), None).unwrap();
        }
        Status::Returned => {
            cases.propose(&id, &alice(), Some("timing")).unwrap();
            cases
                .return_proposal(&id, &sam(), "check the cut-off")
                .unwrap();
        }
        Status::Cleared => {
            // The next day's file has the account back within tolerance.
            let mut records = std::collections::HashMap::new();
            records.insert(
                key.to_string(),
                vec![breakdesk::cases::CycleRecord {
                    date: d("2024-05-02"),
                    out: false,
                    difference: 0.0,
                    start: d("2024-05-02"),
                }],
            );
            let cycle = breakdesk::cases::Cycle {
                profile: "gl_ihub".into(),
                records,
                dates: vec![d("2024-05-02")],
                ..Default::default()
            };
            cases.roll_forward(&cycle).unwrap();
        }
    }
    assert_eq!(cases.get(&id).unwrap().unwrap().status, status);
    id
}

// ----- identity, upsert ------------------------------------------------------------------------

#[test]
fn case_id_is_c_and_12_hex_of_sha256_of_profile_key_start() {
    let expected = {
        let h = Sha256::digest(b"gl_ihub\x0000000|1001|0042\x002024-05-01");
        let hex: String = h.iter().map(|b| format!("{b:02x}")).collect();
        format!("C-{}", &hex[..12])
    };
    assert_eq!(
        case_id("gl_ihub", "00000|1001|0042", d("2024-05-01")),
        expected
    );
    assert_ne!(
        case_id("gl_ihub", "00000|1001|0042", d("2024-05-02")),
        expected
    );
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let cases = cases_at(&store, at(2024, 5, 1));
    let c = cases
        .upsert(&rec("00000|1001|0042", "2024-05-01", "2024-05-01"), false)
        .unwrap()
        .case;
    assert_eq!(c.id, expected);
}

#[test]
fn upsert_opens_a_pending_case_with_ticket_fields_and_a_create_event() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let cases = cases_at(&store, at(2024, 5, 2));
    let input = rec("K1", "2024-05-01", "2024-05-02");
    let out = cases.upsert(&input, false).unwrap();
    assert_eq!(out.change, Change::Created);
    let c = out.case;
    assert_eq!(c.ticket, "BRK-20240502-000001");
    assert_eq!(c.status, Status::PendingReview);
    assert_eq!(c.origin, Origin::Model);
    assert_eq!(
        (c.start_date, c.last_date),
        (d("2024-05-01"), d("2024-05-02"))
    );
    assert_eq!(c.age_days(), 1);
    assert_eq!(c.bucket, "Timing");
    assert_eq!(c.bucket_rule, "timing_cutoff");
    assert_eq!(c.severity, "medium");
    assert_eq!(
        (c.score, c.rank, c.difference, c.confidence),
        (0.5, 3, 250.5, 0.75)
    );
    assert_eq!(c.model_version, "iforest-v1");
    assert_eq!(c.row, input.row);
    assert_eq!(
        (c.proposed_by.clone(), c.jira_key.clone(), c.dispatched),
        (None, None, false)
    );
    assert_eq!(c.created_at, at(2024, 5, 2));
    assert_eq!(cases.get(&c.id).unwrap().unwrap(), c);
    let json = serde_json::to_value(&c).unwrap();
    assert_eq!(json["created_at"], "2024-05-02T09:30:00.000Z");
    assert_eq!(json["start_date"], "2024-05-01");
    let ev = cases.events().unwrap();
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].action, EventAction::Create);
    assert_eq!(ev[0].user, SYSTEM_USER);
    assert_eq!((ev[0].from, ev[0].to), (None, Some(Status::PendingReview)));
    assert_eq!(
        (ev[0].case_id.as_str(), ev[0].ticket.as_str()),
        (c.id.as_str(), c.ticket.as_str())
    );
    assert_eq!(ev[0].model_version, "iforest-v1");
}

#[test]
fn the_same_record_twice_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let first = cases_at(&store, at(2024, 5, 1))
        .upsert(&rec("K1", "2024-05-01", "2024-05-01"), false)
        .unwrap();
    // Later, the same file is run again (with rules now proposing the bucket, too).
    let again_cases = cases_at(&store, at(2024, 5, 3));
    let again = again_cases
        .upsert(&rec("K1", "2024-05-01", "2024-05-01"), true)
        .unwrap();
    assert_eq!(again.change, Change::Unchanged);
    assert_eq!(again.case, first.case);
    assert_eq!(again_cases.list(&CaseFilter::default()).unwrap().len(), 1);
    assert_eq!(again_cases.events().unwrap().len(), 1);
    assert_eq!(
        again_cases.get(&first.case.id).unwrap().unwrap(),
        first.case
    );
    // A batch holding the same record twice opens one case.
    let batch = again_cases
        .upsert_batch(
            &[
                rec("K2", "2024-05-01", "2024-05-01"),
                rec("K2", "2024-05-01", "2024-05-01"),
            ],
            &[false, false],
        )
        .unwrap();
    // Both records are of the case the batch opened: each says so.
    assert_eq!(batch[0].change, Change::Created);
    assert_eq!(batch[1].change, Change::Created);
    assert_eq!(batch[0].case.ticket, batch[1].case.ticket);
    assert_eq!(again_cases.events().unwrap().len(), 2);
    assert_eq!(again_cases.list(&CaseFilter::default()).unwrap().len(), 2);
}

#[test]
fn a_persisting_break_is_the_same_case_and_ages() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let day1 = cases_at(&store, at(2024, 5, 1))
        .upsert(&rec("K1", "2024-05-01", "2024-05-01"), false)
        .unwrap()
        .case;
    assert_eq!(day1.age_days(), 0);
    let cases = cases_at(&store, at(2024, 5, 4));
    cases.accept(&day1.id, &alice(), None).unwrap();
    let mut next = rec("K1", "2024-05-01", "2024-05-04");
    // Within [cases] recertify_share (10%) of the 250.50 accepted: the decision stands.
    next.difference = 270.0;
    next.score = 0.75;
    next.severity = "high".into();
    let out = cases.upsert(&next, false).unwrap();
    assert_eq!(out.change, Change::Updated);
    let c = out.case;
    assert_eq!(
        (c.id.as_str(), c.ticket.as_str()),
        (day1.id.as_str(), day1.ticket.as_str())
    );
    assert_eq!(c.last_date, d("2024-05-04"));
    assert_eq!(c.age_days(), 3);
    assert_eq!(
        (c.difference, c.score, c.severity.as_str()),
        (270.0, 0.75, "high")
    );
    assert_eq!(c.status, Status::Accepted, "a refresh keeps the decision");
    assert_eq!(c.created_at, day1.created_at);
    assert_eq!(c.updated_at, at(2024, 5, 4));
    // No event for a refresh (create + accept only), and the label follows the latest date.
    assert_eq!(cases.events().unwrap().len(), 2);
    assert_eq!(cases.labels().unwrap()[0].date, d("2024-05-04"));
    // An older day's file run again does not move the case back.
    let stale = cases
        .upsert(&rec("K1", "2024-05-01", "2024-05-02"), false)
        .unwrap();
    assert_eq!(stale.change, Change::Unchanged);
    assert_eq!(
        cases.get(&c.id).unwrap().unwrap().last_date,
        d("2024-05-04")
    );
    // The same key breaking again later is another break, so another case.
    let other = cases
        .upsert(&rec("K1", "2024-05-20", "2024-05-20"), false)
        .unwrap();
    assert_eq!(other.change, Change::Created);
    assert_ne!(other.case.id, c.id);
}

#[test]
fn a_batch_folds_the_records_of_one_break_into_its_latest() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let cases = cases_at(&store, at(2024, 5, 6));
    // Three days of one break (out of date order), and another break in between.
    let day = |date: &str, diff: f64| {
        let mut r = rec("K1", "2024-05-01", date);
        r.difference = diff;
        r
    };
    let batch = vec![
        day("2024-05-01", 100.0),
        day("2024-05-03", 300.0),
        rec("K2", "2024-05-02", "2024-05-02"),
        day("2024-05-02", 200.0),
    ];
    let out = cases.upsert_batch(&batch, &[false; 4]).unwrap();
    assert_eq!(out.len(), 4);
    let k1: Vec<_> = [0, 1, 3].iter().map(|i| &out[*i]).collect();
    for o in &k1 {
        assert_eq!(
            o.change,
            Change::Created,
            "every record of the break says what happened"
        );
        assert_eq!(o.case, k1[0].case);
    }
    let c = &k1[0].case;
    assert_eq!((c.last_date, c.difference), (d("2024-05-03"), 300.0));
    // The break's earlier records: the first is its opening difference, the one before the
    // latest its previous difference.
    assert_eq!(
        (c.first_difference, c.previous_difference),
        (Some(100.0), Some(200.0))
    );
    assert_eq!(cases.get(&c.id).unwrap().unwrap(), *c);
    // Tickets in the order the breaks first appear; one creation event per case.
    assert_eq!(c.ticket, "BRK-20240506-000001");
    assert_eq!(out[2].case.ticket, "BRK-20240506-000002");
    let events = cases.events().unwrap();
    assert_eq!(events.len(), 2);
    assert!(events.iter().all(|e| e.action == EventAction::Create));
    // The same batch again changes nothing.
    let again = cases.upsert_batch(&batch, &[false; 4]).unwrap();
    assert!(again.iter().all(|o| o.change == Change::Unchanged));
    // The rules propose a break's case only when they propose every record of it.
    let k3 = |date: &str| rec("K3", "2024-05-01", date);
    let k4 = |date: &str| rec("K4", "2024-05-01", date);
    let out = cases
        .upsert_batch(
            &[
                k3("2024-05-01"),
                k3("2024-05-02"),
                k4("2024-05-01"),
                k4("2024-05-02"),
            ],
            &[false, true, true, true],
        )
        .unwrap();
    assert_eq!(out[0].case.status, Status::PendingReview);
    assert_eq!(out[1].case.status, Status::PendingReview);
    assert_eq!(out[2].case.status, Status::AutoResolveProposed);
    assert_eq!(out[3].case.status, Status::AutoResolveProposed);
    let again = cases.upsert_batch(&batch, &[false; 4]).unwrap();
    assert!(again.iter().all(|o| o.change == Change::Unchanged));
    assert_eq!(
        cases
            .events()
            .unwrap()
            .iter()
            .filter(|e| e.action == EventAction::Create)
            .count(),
        4
    );
}

#[test]
fn counters_advance_once_per_case_across_the_transactions_of_a_large_batch() {
    let dir = tempfile::tempdir().unwrap();
    let n = 4_321;
    {
        let store = Store::open(dir.path()).unwrap();
        let cases = cases_at(&store, at(2024, 5, 1));
        let batch: Vec<BreakInput> = (0..n)
            .map(|i| rec(&format!("K{i}"), "2024-05-01", "2024-05-01"))
            .collect();
        let out = cases.upsert_batch(&batch, &vec![false; n]).unwrap();
        let tickets: Vec<String> = out.iter().map(|o| o.case.ticket.clone()).collect();
        let expected: Vec<String> = (1..=n).map(|k| format!("BRK-20240501-{k:06}")).collect();
        assert_eq!(tickets, expected);
        let seqs: Vec<u64> = cases.events().unwrap().iter().map(|e| e.seq).collect();
        assert_eq!(seqs, (1..=n as u64).collect::<Vec<_>>());
        assert_eq!(cases.outstanding_cases("gl_ihub").unwrap().len(), n);
    }
    // After a restart the counters go on where the batch left them.
    let store = Store::open(dir.path()).unwrap();
    let cases = cases_at(&store, at(2024, 5, 2));
    let next = cases
        .upsert(&rec("K-next", "2024-05-02", "2024-05-02"), false)
        .unwrap()
        .case;
    assert_eq!(next.ticket, format!("BRK-20240502-{:06}", n + 1));
    assert_eq!(cases.events().unwrap().last().unwrap().seq, n as u64 + 1);
}

#[test]
fn bad_records_are_refused_and_a_batch_writes_all_or_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let cases = cases_at(&store, at(2024, 5, 1));
    let mut before_start = rec("K1", "2024-05-02", "2024-05-01");
    let e = cases.upsert(&before_start, false).unwrap_err().to_string();
    assert!(e.contains("before its start date"), "{e}");
    before_start.date = d("2024-05-02");
    before_start.score = f64::NAN;
    let e = cases.upsert(&before_start, false).unwrap_err().to_string();
    assert!(e.contains("score is not a finite number"), "{e}");
    let mut empty_key = rec("", "2024-05-01", "2024-05-01");
    let e = cases
        .upsert_batch(
            &[rec("K9", "2024-05-01", "2024-05-01"), empty_key.clone()],
            &[false, false],
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("key of a break must not be empty"), "{e}");
    assert!(cases.list(&CaseFilter::default()).unwrap().is_empty());
    assert!(cases.events().unwrap().is_empty());
    empty_key.key = "K2".into();
    assert!(
        cases.upsert_batch(&[empty_key], &[]).is_err(),
        "flags must match records"
    );
}

#[test]
fn rules_only_propose_and_never_approve() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let cases = cases_at(&store, at(2024, 5, 1));
    let c = cases
        .upsert(&rec("K1", "2024-05-01", "2024-05-01"), true)
        .unwrap()
        .case;
    assert_eq!(c.status, Status::AutoResolveProposed);
    assert_eq!(c.proposed_by.as_deref(), Some("rules:timing_cutoff"));
    let ev = cases.events_for(&c.id).unwrap();
    let actions: Vec<_> = ev
        .iter()
        .map(|e| (e.action, e.user.as_str(), e.to))
        .collect();
    assert_eq!(
        actions,
        vec![
            (
                EventAction::Create,
                SYSTEM_USER,
                Some(Status::PendingReview)
            ),
            (
                EventAction::Propose,
                RULES_USER,
                Some(Status::AutoResolveProposed)
            ),
        ]
    );
    // Any supervisor may approve the rules' proposal.
    let approved = cases.approve(&c.id, &sam(), Some("ok")).unwrap();
    assert_eq!(approved.status, Status::Approved);
    // The break seen again, still in an auto-resolve bucket, does not change the decision.
    let again = cases
        .upsert(&rec("K1", "2024-05-01", "2024-05-02"), true)
        .unwrap();
    assert_eq!(again.change, Change::Updated);
    assert_eq!(again.case.status, Status::Approved);
    // An existing pending case is not proposed by a later run either.
    let p = cases
        .upsert(&rec("K2", "2024-05-01", "2024-05-01"), false)
        .unwrap()
        .case;
    let p2 = cases
        .upsert(&rec("K2", "2024-05-01", "2024-05-02"), true)
        .unwrap()
        .case;
    assert_eq!(
        (p.status, p2.status),
        (Status::PendingReview, Status::PendingReview)
    );
}

// ----- the status machine ----------------------------------------------------------------------

/// The legal moves, written out independently of the library.
fn legal(status: Status, action: Action) -> Option<Status> {
    use Action as A;
    use Status as S;
    match (status, action) {
        (S::PendingReview | S::Returned, A::Accept) => Some(S::Accepted),
        (S::PendingReview | S::Returned, A::Reject) => Some(S::Rejected),
        (S::PendingReview | S::Returned, A::Propose) => Some(S::AutoResolveProposed),
        (S::AutoResolveProposed, A::Approve) => Some(S::Approved),
        (S::AutoResolveProposed, A::Return) => Some(S::Returned),
        (S::Accepted | S::Rejected | S::Approved | S::Cleared, A::Reopen) => Some(S::PendingReview),
        (S::Cleared, A::Accept) => Some(S::Accepted),
        (S::Cleared, A::Reject) => Some(S::Rejected),
        _ => None,
    }
}

fn allowed_text(status: Status) -> &'static str {
    match status {
        Status::PendingReview | Status::Returned => "accept, reject, propose",
        Status::AutoResolveProposed => "approve, return",
        Status::Accepted | Status::Rejected | Status::Approved => "reopen",
        Status::Cleared => "accept, reject, reopen",
    }
}

#[test]
fn every_status_and_action_is_legal_or_refused_as_the_table_says() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let cases = cases_at(&store, at(2024, 5, 1));
    let mut legal_count = 0;
    for status in Status::ALL {
        for action in Action::ALL {
            let key = format!("{status}-{action}");
            let id = case_in(&cases, &key, status);
            let events_before = cases.events().unwrap().len();
            // tess is a supervisor who proposed nothing, and gives a note: only the transition
            // itself can make this refused.
            let result = cases.decide(&id, action, &tess(), Some("note"));
            match legal(status, action) {
                Some(to) => {
                    legal_count += 1;
                    let c = result.unwrap_or_else(|e| panic!("{status} {action}: {e}"));
                    assert_eq!(c.status, to, "{status} {action}");
                    assert_eq!(cases.get(&id).unwrap().unwrap().status, to);
                    let ev = cases.events().unwrap();
                    assert_eq!(ev.len(), events_before + 1, "{status} {action}");
                    let last = ev.last().unwrap();
                    assert_eq!(last.action, EventAction::from(action));
                    assert_eq!((last.from, last.to), (Some(status), Some(to)));
                    assert_eq!(
                        (last.user.as_str(), last.role),
                        ("tess", Some(Role::Supervisor))
                    );
                    assert_eq!(last.reason.as_deref(), Some("note"));
                    assert_eq!(last.case_id, id);
                }
                None => {
                    let e = result.expect_err(&format!("{status} {action} must be refused"));
                    assert!(
                        matches!(e, CaseError::IllegalTransition { .. }),
                        "{status} {action}: {e}"
                    );
                    assert_eq!(
                        e.to_string(),
                        format!(
                            "case {id} is {status}: \"{action}\" is not allowed; allowed: {}",
                            allowed_text(status)
                        )
                    );
                    assert_eq!(cases.get(&id).unwrap().unwrap().status, status);
                    assert_eq!(cases.events().unwrap().len(), events_before);
                }
            }
        }
    }
    assert_eq!(legal_count, 14);
}

#[test]
fn the_refusal_names_the_status_and_the_legal_actions() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let cases = cases_at(&store, at(2024, 5, 1));
    let id = case_in(&cases, "K1", Status::Rejected);
    let e = cases.approve(&id, &sam(), None).unwrap_err().to_string();
    assert_eq!(
        e,
        format!("case {id} is Rejected: \"approve\" is not allowed; allowed: reopen")
    );
}

#[test]
fn a_returned_case_is_pending_work_again() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let cases = cases_at(&store, at(2024, 5, 1));
    for (i, action) in [Action::Accept, Action::Reject, Action::Propose]
        .into_iter()
        .enumerate()
    {
        let id = case_in(&cases, &format!("K{i}"), Status::Returned);
        let c = cases
            .decide(&id, action, &alice(), Some("looked again"))
            .unwrap();
        assert_eq!(c.status, action.target());
    }
    let id = case_in(&cases, "K9", Status::Returned);
    assert!(matches!(
        cases.reopen(&id, &alice(), "why").unwrap_err(),
        CaseError::IllegalTransition {
            status: Status::Returned,
            ..
        }
    ));
    // The return comment is on the event.
    let ev = cases.events_for(&id).unwrap();
    let ret = ev.iter().find(|e| e.action == EventAction::Return).unwrap();
    assert_eq!(ret.reason.as_deref(), Some("check the cut-off"));
    assert_eq!(
        (ret.from, ret.to),
        (Some(Status::AutoResolveProposed), Some(Status::Returned))
    );
}

#[test]
fn only_supervisors_approve_or_return_and_never_their_own_proposal() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let cases = cases_at(&store, at(2024, 5, 1));
    let id = case_in(&cases, "K1", Status::AutoResolveProposed); // proposed by alice
    let e = cases
        .approve(&id, &Actor::analyst("bob"), None)
        .unwrap_err();
    assert!(matches!(e, CaseError::NeedsSupervisor { .. }), "{e}");
    assert!(
        e.to_string()
            .contains("needs a supervisor; bob is an analyst"),
        "{e}"
    );
    let e = cases
        .return_proposal(&id, &Actor::analyst("bob"), "no")
        .unwrap_err();
    assert!(matches!(e, CaseError::NeedsSupervisor { .. }), "{e}");

    // A supervisor's own proposal.
    let own = case_in(&cases, "K2", Status::PendingReview);
    cases.propose(&own, &sam(), Some("timing")).unwrap();
    let e = cases.approve(&own, &sam(), None).unwrap_err();
    assert!(matches!(e, CaseError::MakerChecker { .. }), "{e}");
    assert!(
        e.to_string().starts_with("maker-checker: sam proposed"),
        "{e}"
    );
    assert_eq!(
        cases.get(&own).unwrap().unwrap().status,
        Status::AutoResolveProposed
    );
    // Another supervisor can.
    let c = cases.approve(&own, &tess(), Some("agreed")).unwrap();
    assert_eq!(c.status, Status::Approved);
    assert_eq!(c.proposed_by.as_deref(), Some("sam"));
    let ev = cases.events_for(&own).unwrap();
    assert_eq!(ev.last().unwrap().user, "tess");
    // Analysts may do everything else, supervisors too.
    let k3 = case_in(&cases, "K3", Status::PendingReview);
    assert_eq!(
        cases.accept(&k3, &sam(), None).unwrap().status,
        Status::Accepted
    );
    assert_eq!(
        cases.reopen(&k3, &alice(), "wrong account").unwrap().status,
        Status::PendingReview
    );
}

#[test]
fn reasons_and_comments_are_required_where_stated() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let cases = cases_at(&store, at(2024, 5, 1));
    let pending = case_in(&cases, "K1", Status::PendingReview);
    let proposed = case_in(&cases, "K2", Status::AutoResolveProposed);
    let accepted = case_in(&cases, "K3", Status::Accepted);
    let n = cases.events().unwrap().len();
    for blank in [None, Some(""), Some("   ")] {
        for (id, action, what) in [
            (&pending, Action::Reject, "reason"),
            (&proposed, Action::Return, "comment"),
            (&accepted, Action::Reopen, "reason"),
        ] {
            let e = cases.decide(id, action, &sam(), blank).unwrap_err();
            assert!(matches!(e, CaseError::NoteRequired { .. }), "{e}");
            assert_eq!(
                e.to_string(),
                format!("\"{action}\" on case {id} needs a {what}")
            );
        }
    }
    assert_eq!(cases.events().unwrap().len(), n);
    // Accept, propose and approve go without one.
    assert!(cases.accept(&pending, &alice(), None).is_ok());
    assert!(cases.approve(&proposed, &sam(), None).is_ok());
    // A reason is kept trimmed.
    let c = cases.reopen(&accepted, &alice(), "  typo  ").unwrap();
    assert_eq!(c.status, Status::PendingReview);
    assert_eq!(
        cases.events().unwrap().last().unwrap().reason.as_deref(),
        Some("typo")
    );
}

#[test]
fn reserved_or_blank_user_names_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let cases = cases_at(&store, at(2024, 5, 1));
    let id = case_in(&cases, "K1", Status::PendingReview);
    for user in ["", " alice", RULES_USER, SYSTEM_USER, "rules:timing_cutoff"] {
        let e = cases.accept(&id, &Actor::analyst(user), None).unwrap_err();
        assert!(matches!(e, CaseError::Invalid(_)), "{user:?}: {e}");
    }
    assert_eq!(
        cases.get(&id).unwrap().unwrap().status,
        Status::PendingReview
    );
}

#[test]
fn an_unknown_case_is_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let cases = cases_at(&store, at(2024, 5, 1));
    for r in ["C-000000000000", "BRK-20240501-000001"] {
        let e = cases.accept(r, &alice(), None).unwrap_err();
        assert_eq!(e.to_string(), format!("no case {r}"));
        assert!(cases.find(r).unwrap().is_none());
    }
}

// ----- tickets, events, persistence ------------------------------------------------------------

#[test]
fn ticket_numbers_persist_and_never_repeat_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let mut tickets = Vec::new();
    {
        let store = Store::open(dir.path()).unwrap();
        let cases = cases_at(&store, at(2024, 5, 1));
        for k in ["A", "B", "C"] {
            tickets.push(
                cases
                    .upsert(&rec(k, "2024-05-01", "2024-05-01"), false)
                    .unwrap()
                    .case
                    .ticket,
            );
        }
    }
    {
        let store = Store::open(dir.path()).unwrap();
        let cases = cases_at(&store, at(2024, 5, 2));
        // Refreshing the existing ones hands out no number.
        cases
            .upsert(&rec("A", "2024-05-01", "2024-05-02"), false)
            .unwrap();
        for k in ["D", "E"] {
            tickets.push(
                cases
                    .upsert(&rec(k, "2024-05-01", "2024-05-02"), false)
                    .unwrap()
                    .case
                    .ticket,
            );
        }
        // A refused flag hands out no number either.
        assert!(
            cases
                .flag_missed(&rec("A", "2024-05-01", "2024-05-02"), &alice(), "x")
                .is_err()
        );
    }
    let store = Store::open(dir.path()).unwrap();
    let cases = cases_at(&store, at(2024, 5, 3));
    tickets.push(
        cases
            .flag_missed(&rec("F", "2024-05-03", "2024-05-03"), &alice(), "missed")
            .unwrap()
            .ticket,
    );
    assert_eq!(
        tickets,
        vec![
            "BRK-20240501-000001",
            "BRK-20240501-000002",
            "BRK-20240501-000003",
            "BRK-20240502-000004",
            "BRK-20240502-000005",
            "BRK-20240503-000006",
        ]
    );
    // Each ticket finds its case.
    for t in &tickets {
        assert_eq!(&cases.get_by_ticket(t).unwrap().unwrap().ticket, t);
        assert_eq!(&cases.find(t).unwrap().unwrap().ticket, t);
    }
    assert!(
        cases
            .get_by_ticket("BRK-20240503-000007")
            .unwrap()
            .is_none()
    );
    // Listing is in ticket order.
    let listed: Vec<_> = cases
        .list(&CaseFilter::default())
        .unwrap()
        .into_iter()
        .map(|c| c.ticket)
        .collect();
    assert_eq!(listed, tickets);
}

#[test]
fn events_are_append_only_and_ordered_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let (id, first_events) = {
        let store = Store::open(dir.path()).unwrap();
        let cases = cases_at(&store, at(2024, 5, 1));
        let id = case_in(&cases, "K1", Status::Returned); // create, propose, return
        case_in(&cases, "K2", Status::Accepted); // create, accept
        cases.accept(&id, &alice(), None).unwrap();
        (id, cases.events().unwrap())
    };
    assert_eq!(
        first_events.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![1, 2, 3, 4, 5, 6]
    );
    let store = Store::open(dir.path()).unwrap();
    let cases = cases_at(&store, at(2024, 5, 2));
    cases.reopen(&id, &alice(), "amount changed").unwrap();
    cases.undo_last(&id, &alice()).unwrap();
    let all = cases.events().unwrap();
    assert_eq!(all.len(), 8);
    assert_eq!(
        &all[..6],
        &first_events[..],
        "earlier events are never changed"
    );
    assert_eq!(
        all.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (1..=8).collect::<Vec<_>>()
    );
    let mine = cases.events_for(&id).unwrap();
    let actions: Vec<_> = mine.iter().map(|e| e.action).collect();
    assert_eq!(
        actions,
        vec![
            EventAction::Create,
            EventAction::Propose,
            EventAction::Return,
            EventAction::Accept,
            EventAction::Reopen,
            EventAction::Undo,
        ]
    );
    assert!(mine.windows(2).all(|w| w[0].seq < w[1].seq));
    assert!(mine.iter().all(|e| e.case_id == id));
    // Events of a case by its ticket, too.
    let ticket = cases.get(&id).unwrap().unwrap().ticket;
    assert_eq!(cases.events_for(&ticket).unwrap(), mine);
    assert_eq!(mine[4].at, at(2024, 5, 2));
}

#[test]
fn cases_persist_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let before = {
        let store = Store::open(dir.path()).unwrap();
        let cases = cases_at(&store, at(2024, 5, 1));
        case_in(&cases, "K1", Status::Approved);
        let id = case_in(&cases, "K2", Status::Accepted);
        cases.link_jira(&id, "RECON-42", &alice()).unwrap();
        cases
            .mark_dispatched(&id, &Actor::analyst("dispatcher"))
            .unwrap();
        cases
            .flag_missed(
                &rec("K3", "2024-04-29", "2024-05-01"),
                &alice(),
                "GL posted twice",
            )
            .unwrap();
        (
            cases.list(&CaseFilter::default()).unwrap(),
            cases.events().unwrap(),
            cases.labels().unwrap(),
        )
    };
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    let cases = Cases::new(&store);
    assert_eq!(cases.list(&CaseFilter::default()).unwrap(), before.0);
    assert_eq!(cases.events().unwrap(), before.1);
    assert_eq!(cases.labels().unwrap(), before.2);
    let k2 = &before.0[1];
    assert_eq!(k2.jira_key.as_deref(), Some("RECON-42"));
    assert!(k2.dispatched);
}

// ----- migration and locking -------------------------------------------------------------------

#[test]
fn a_version_1_store_is_migrated_and_keeps_its_models_and_cached_answers() {
    let dir = tempfile::tempdir().unwrap();
    {
        let v1 = store_v1::Store::open(dir.path()).unwrap();
        assert_eq!(v1.schema_version().unwrap(), 1);
        v1.put_model("gl_ihub", b"{\"trees\":[1,2,3]}").unwrap();
        v1.put_llm_answers(&[([7u8; 32], b"Timing".to_vec())])
            .unwrap();
    }
    {
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
        assert_eq!(
            store.get_model("gl_ihub").unwrap().unwrap(),
            b"{\"trees\":[1,2,3]}"
        );
        assert_eq!(
            store.get_llm_answer(&[7u8; 32]).unwrap().unwrap(),
            b"Timing"
        );
        let cases = cases_at(&store, at(2024, 5, 1));
        assert!(cases.list(&CaseFilter::default()).unwrap().is_empty());
        let c = cases
            .upsert(&rec("K1", "2024-05-01", "2024-05-01"), false)
            .unwrap()
            .case;
        assert_eq!(c.ticket, "BRK-20240501-000001");
    }
    // Migrated once: it opens as version 2 with both models and cases.
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    assert_eq!(store.model_names().unwrap(), vec!["gl_ihub"]);
    assert_eq!(
        Cases::new(&store)
            .list(&CaseFilter::default())
            .unwrap()
            .len(),
        1
    );
    drop(store);
    // And the version 1 build now refuses it as newer.
    match store_v1::Store::open(dir.path()) {
        Err(e) => assert!(e.to_string().contains("newer breakdesk"), "{e}"),
        Ok(_) => panic!("a version 1 build must refuse a version 2 store"),
    }
}

/// Runs this test binary again as a child that runs only `test`, with `dir` in [`CHILD_DIR`].
fn child(test: &str, dir: &Path) -> Command {
    // libtest names a test by its path in the test binary (`cases::…`).
    let module = module_path!().split_once("::").map_or("", |(_, m)| m);
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--exact",
        &format!("{module}::{test}"),
        "--nocapture",
        "--test-threads=1",
    ])
    .env(CHILD_DIR, dir)
    .stdin(Stdio::null());
    cmd
}

#[test]
fn a_second_process_is_told_the_store_is_in_use() {
    if let Some(dir) = std::env::var_os(CHILD_DIR) {
        // The child: try to open the store the parent holds (on a line of its own, after
        // libtest's "test … ").
        println!();
        match Store::open(Path::new(&dir)) {
            Err(e @ StoreError::Locked { .. }) => println!("CHILD-LOCKED {e}"),
            Err(e) => println!("CHILD-OTHER {e}"),
            Ok(_) => println!("CHILD-OPENED"),
        }
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let held = Store::open(dir.path()).unwrap();
    let out = child("a_second_process_is_told_the_store_is_in_use", dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find(|l| l.starts_with("CHILD-"))
        .unwrap_or_else(|| panic!("the child said nothing: {stdout}"));
    assert!(
        line.starts_with("CHILD-LOCKED the store ")
            && line.contains("is in use by another breakdesk process"),
        "{line}"
    );
    // Once released, the other process gets it.
    drop(held);
    let out = child("a_second_process_is_told_the_store_is_in_use", dir.path())
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("CHILD-OPENED"));
}

// ----- flag, undo, jira, dispatch --------------------------------------------------------------

#[test]
fn an_analyst_flags_a_missed_break_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let cases = cases_at(&store, at(2024, 5, 3));
    let input = rec("K7", "2024-05-01", "2024-05-03");
    let e = cases.flag_missed(&input, &alice(), " ").unwrap_err();
    assert!(matches!(e, CaseError::NoteRequired { .. }), "{e}");
    let c = cases
        .flag_missed(&input, &alice(), "sub-ledger missed the reversal")
        .unwrap();
    assert_eq!((c.origin, c.status), (Origin::Analyst, Status::Accepted));
    assert_eq!(c.id, case_id("gl_ihub", "K7", d("2024-05-01")));
    assert_eq!(c.age_days(), 2);
    let ev = cases.events_for(&c.id).unwrap();
    assert_eq!(ev.len(), 1);
    assert_eq!(
        (ev[0].action, ev[0].user.as_str()),
        (EventAction::Flag, "alice")
    );
    assert_eq!((ev[0].from, ev[0].to), (None, Some(Status::Accepted)));
    assert_eq!(
        ev[0].reason.as_deref(),
        Some("sub-ledger missed the reversal")
    );
    // Twice: refused, naming the case.
    let e = cases
        .flag_missed(&input, &Actor::analyst("bob"), "me too")
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "this break is already case {} ({}, Accepted)",
            c.id, c.ticket
        )
    );
    // A break the model flagged: refused too.
    let m = cases
        .upsert(&rec("K8", "2024-05-01", "2024-05-01"), false)
        .unwrap()
        .case;
    let e = cases
        .flag_missed(&rec("K8", "2024-05-01", "2024-05-02"), &alice(), "x")
        .unwrap_err();
    assert!(e.to_string().contains(&m.id), "{e}");
    assert_eq!(cases.events().unwrap().len(), 2);
    // The model flagging it later keeps the analyst's case and decision.
    let later = cases
        .upsert(&rec("K7", "2024-05-01", "2024-05-04"), false)
        .unwrap()
        .case;
    assert_eq!(
        (later.origin, later.status, later.ticket),
        (Origin::Analyst, Status::Accepted, c.ticket)
    );
}

#[test]
fn undo_reverts_only_ones_own_undispatched_last_decision() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let cases = cases_at(&store, at(2024, 5, 1));

    // Own decision: reverted, with an event; the label goes with it.
    let id = case_in(&cases, "K1", Status::PendingReview);
    cases.reject(&id, &alice(), "duplicate").unwrap();
    assert_eq!(cases.labels().unwrap().len(), 1);
    let c = cases.undo_last(&id, &alice()).unwrap();
    assert_eq!(c.status, Status::PendingReview);
    assert!(cases.labels().unwrap().is_empty());
    let ev = cases.events_for(&id).unwrap();
    let last = ev.last().unwrap();
    assert_eq!(
        (last.action, last.user.as_str()),
        (EventAction::Undo, "alice")
    );
    assert_eq!(
        (last.from, last.to),
        (Some(Status::Rejected), Some(Status::PendingReview))
    );
    assert_eq!(last.reason.as_deref(), Some("undoes \"reject\" (event 2)"));
    assert_eq!(
        ev.iter()
            .filter(|e| e.action == EventAction::Reject)
            .count(),
        1,
        "kept"
    );
    // One level only.
    let e = cases.undo_last(&id, &alice()).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("cannot undo on case {id}: it has no decision to undo")
    );

    // Someone else's decision: refused.
    cases.accept(&id, &alice(), None).unwrap();
    let e = cases.undo_last(&id, &Actor::analyst("bob")).unwrap_err();
    assert!(
        e.to_string()
            .contains("(accept by alice) was made by another user"),
        "{e}"
    );
    assert_eq!(cases.get(&id).unwrap().unwrap().status, Status::Accepted);

    // Dispatched: refused, even to its maker.
    cases
        .mark_dispatched(&id, &Actor::analyst("dispatcher"))
        .unwrap();
    let e = cases.undo_last(&id, &alice()).unwrap_err();
    assert!(e.to_string().ends_with("it has been dispatched"), "{e}");
    assert_eq!(cases.get(&id).unwrap().unwrap().status, Status::Accepted);

    // Undoing a proposal restores who had proposed before; undoing an approval re-opens it to
    // the supervisor.
    let p = case_in(&cases, "K2", Status::Returned); // alice proposed, sam returned
    cases.propose(&p, &Actor::analyst("bob"), None).unwrap();
    let c = cases.undo_last(&p, &Actor::analyst("bob")).unwrap();
    assert_eq!(
        (c.status, c.proposed_by.as_deref()),
        (Status::Returned, Some("alice"))
    );
    cases.propose(&p, &alice(), None).unwrap();
    cases.approve(&p, &sam(), None).unwrap();
    let c = cases.undo_last(&p, &sam()).unwrap();
    assert_eq!(c.status, Status::AutoResolveProposed);

    // The rules' proposal is no one's to undo, nor is a flag.
    let r = cases
        .upsert(&rec("K3", "2024-05-01", "2024-05-01"), true)
        .unwrap()
        .case;
    assert!(cases.undo_last(&r.id, &sam()).is_err());
    let f = cases
        .flag_missed(&rec("K4", "2024-05-01", "2024-05-01"), &alice(), "missed")
        .unwrap();
    assert!(cases.undo_last(&f.id, &alice()).is_err());
    assert_eq!(cases.get(&f.id).unwrap().unwrap().status, Status::Accepted);
}

#[test]
fn jira_links_and_dispatch_are_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let cases = cases_at(&store, at(2024, 5, 1));
    let id = case_in(&cases, "K1", Status::PendingReview);
    let e = cases.mark_dispatched(&id, &alice()).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("case {id} is PendingReview: only an Accepted case can be dispatched")
    );
    for bad in ["", "recon-1", "RECON", "RECON-", "RECON-12a"] {
        assert!(cases.link_jira(&id, bad, &alice()).is_err(), "{bad:?}");
    }
    cases.accept(&id, &alice(), None).unwrap();
    let c = cases
        .mark_dispatched(&id, &Actor::analyst("dispatcher"))
        .unwrap();
    assert!(c.dispatched);
    let n = cases.events().unwrap().len();
    assert!(
        cases
            .mark_dispatched(&id, &Actor::analyst("dispatcher"))
            .unwrap()
            .dispatched
    );
    let c = cases.link_jira(&c.ticket, "RECON-42", &alice()).unwrap();
    assert_eq!(c.jira_key.as_deref(), Some("RECON-42"));
    cases.link_jira(&id, "RECON-42", &alice()).unwrap();
    assert_eq!(
        cases.events().unwrap().len(),
        n + 1,
        "repeats write nothing"
    );
    let c = cases.link_jira(&id, "RECON-43", &alice()).unwrap();
    assert_eq!(c.jira_key.as_deref(), Some("RECON-43"));
    let ev = cases.events_for(&id).unwrap();
    let tail: Vec<_> = ev
        .iter()
        .rev()
        .take(3)
        .map(|e| (e.action, e.reason.clone()))
        .collect();
    assert_eq!(
        tail,
        vec![
            (
                EventAction::LinkJira,
                Some("RECON-43 (was RECON-42)".to_string())
            ),
            (EventAction::LinkJira, Some("RECON-42".to_string())),
            (EventAction::Dispatched, None),
        ]
    );
    assert_eq!(cases.get(&id).unwrap().unwrap().status, Status::Accepted);
}

// ----- queries, labels, feedback ---------------------------------------------------------------

#[test]
fn list_filters_by_status_and_bucket_and_export_writes_json_lines() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let cases = cases_at(&store, at(2024, 5, 1));
    let a = case_in(&cases, "K1", Status::Accepted);
    let b = case_in(&cases, "K2", Status::Accepted);
    case_in(&cases, "K3", Status::Rejected);
    let mut fx = rec("K4", "2024-05-01", "2024-05-01");
    fx.bucket = "FX".into();
    let fx_id = cases.upsert(&fx, false).unwrap().case.id;
    cases.accept(&fx_id, &alice(), None).unwrap();

    let ids = |f: CaseFilter| -> Vec<String> {
        cases.list(&f).unwrap().into_iter().map(|c| c.id).collect()
    };
    assert_eq!(ids(CaseFilter::default()).len(), 4);
    assert_eq!(
        ids(CaseFilter {
            status: Some(Status::Accepted),
            ..Default::default()
        }),
        vec![a.clone(), b.clone(), fx_id.clone()]
    );
    assert_eq!(
        ids(CaseFilter {
            bucket: Some("FX".into()),
            ..Default::default()
        }),
        vec![fx_id.clone()]
    );
    assert_eq!(
        ids(CaseFilter {
            status: Some(Status::Accepted),
            bucket: Some("Timing".into()),
            profile: Some("gl_ihub".into()),
        }),
        vec![a.clone(), b.clone()]
    );
    assert!(
        ids(CaseFilter {
            profile: Some("trades".into()),
            ..Default::default()
        })
        .is_empty()
    );
    assert_eq!(cases.export(Status::Rejected).unwrap().len(), 1);
    assert!(cases.export(Status::Approved).unwrap().is_empty());
    let mut buf = Vec::new();
    assert_eq!(
        cases.export_json_lines(Status::Accepted, &mut buf).unwrap(),
        3
    );
    let lines: Vec<serde_json::Value> = String::from_utf8(buf)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["id"], a.as_str());
    assert_eq!(lines[2]["bucket"], "FX");
    assert_eq!(lines[1]["status"], "Accepted");
    // Status names parse back.
    assert_eq!(
        "pending_review".parse::<Status>().unwrap(),
        Status::PendingReview
    );
    assert_eq!("Approve".parse::<Action>().unwrap(), Action::Approve);
    assert!("closed".parse::<Status>().is_err());
}

#[test]
fn labels_come_from_decided_cases_only() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let cases = cases_at(&store, at(2024, 5, 1));
    for (k, s) in [
        ("A", Status::Accepted),
        ("B", Status::Rejected),
        ("C", Status::Approved),
        ("D", Status::PendingReview),
        ("E", Status::AutoResolveProposed),
        ("F", Status::Returned),
    ] {
        case_in(&cases, k, s);
    }
    cases
        .flag_missed(&rec("G", "2024-04-28", "2024-04-30"), &alice(), "missed")
        .unwrap();
    let got: Vec<_> = cases
        .labels()
        .unwrap()
        .into_iter()
        .map(|l| (l.key, l.date, l.label, l.origin))
        .collect();
    assert_eq!(
        got,
        vec![
            ("A".to_string(), d("2024-05-01"), true, Origin::Model),
            ("B".to_string(), d("2024-05-01"), false, Origin::Model),
            ("C".to_string(), d("2024-05-01"), true, Origin::Model),
            ("G".to_string(), d("2024-04-30"), true, Origin::Analyst),
        ]
    );
    // Reopened: no longer a label.
    cases
        .reopen(
            &case_id("gl_ihub", "A", d("2024-05-01")),
            &alice(),
            "recheck",
        )
        .unwrap();
    assert_eq!(cases.labels().unwrap().len(), 3);
}

fn row(
    line: usize,
    case_id: Option<&str>,
    pkd: Option<(&str, &str, &str)>,
    label: &str,
    reason: Option<&str>,
) -> FeedbackRow {
    FeedbackRow {
        line,
        case_id: case_id.map(str::to_string),
        profile: pkd.map(|x| x.0.to_string()),
        key: pkd.map(|x| x.1.to_string()),
        date: pkd.map(|x| x.2.to_string()),
        label: label.to_string(),
        reason: reason.map(str::to_string),
    }
}

#[test]
fn a_feedback_file_with_bad_rows_applies_nothing_and_names_every_bad_row() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let cases = cases_at(&store, at(2024, 5, 1));
    let good = case_in(&cases, "K1", Status::PendingReview);
    let accepted = case_in(&cases, "K2", Status::Accepted);
    let pending = case_in(&cases, "K3", Status::PendingReview);
    let proposed = case_in(&cases, "K4", Status::AutoResolveProposed);
    let before = (
        cases.list(&CaseFilter::default()).unwrap(),
        cases.events().unwrap(),
    );
    let rows = vec![
        row(2, Some(&good), None, "accept", None),
        row(3, Some("C-ffffffffffff"), None, "accept", None),
        row(4, Some(&pending), None, "maybe", None),
        row(5, Some(&pending), None, "reject", None),
        row(6, Some(&accepted), None, "0", Some("not a break")),
        row(7, None, Some(("gl_ihub", "K9", "2024-05-01")), "1", None),
        row(8, None, Some(("gl_ihub", "K1", "2024-13-01")), "1", None),
        row(9, None, None, "1", None),
        row(10, Some(&proposed), None, "true", None),
        row(11, Some(&good), None, "false", Some("changed my mind")),
    ];
    let e = cases.import_feedback(&rows, &alice()).unwrap_err();
    let CaseError::Feedback(problems) = &e else {
        panic!("{e}")
    };
    let lines: Vec<usize> = problems.iter().map(|p| p.line).collect();
    assert_eq!(lines, vec![3, 4, 5, 6, 7, 8, 9, 10, 11], "{e}");
    let text = e.to_string();
    for needle in [
        "nothing was applied",
        "line 3: unknown case C-ffffffffffff",
        "line 4: label \"maybe\" is not one of accept, reject, 1, 0, true, false",
        "line 5: a reject needs a reason",
        &format!("line 6: case {accepted} is Accepted: \"reject\" is not allowed; allowed: reopen"),
        "line 7: no case for profile gl_ihub, key K9 on 2024-05-01",
        "line 8: date \"2024-13-01\" is not a YYYY-MM-DD date",
        "line 9: the row names no case",
        &format!("line 10: case {proposed} is AutoResolveProposed: \"accept\" is not allowed"),
        // Row 2 accepts it first, so row 11 cannot reject it.
        &format!("line 11: case {good} is Accepted: \"reject\" is not allowed"),
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
    // Nothing applied, not even the good row.
    assert_eq!(cases.list(&CaseFilter::default()).unwrap(), before.0);
    assert_eq!(cases.events().unwrap(), before.1);
    assert_eq!(
        cases.get(&good).unwrap().unwrap().status,
        Status::PendingReview
    );
}

#[test]
fn a_good_feedback_file_is_applied_whole_and_again_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let cases = cases_at(&store, at(2024, 5, 3));
    let a = case_in(&cases, "K1", Status::PendingReview);
    let b = case_in(&cases, "K2", Status::Returned);
    let c = case_in(&cases, "K3", Status::PendingReview);
    cases
        .upsert(&rec("K3", "2024-05-01", "2024-05-03"), false)
        .unwrap(); // spans 1st to 3rd
    let already = case_in(&cases, "K4", Status::Approved);
    let b_ticket = cases.get(&b).unwrap().unwrap().ticket;
    let rows = vec![
        row(2, Some(&a), None, "ACCEPT", None),
        row(
            3,
            Some(&b_ticket),
            None,
            "0",
            Some("timing, cleared next day"),
        ),
        row(
            4,
            None,
            Some(("gl_ihub", "K3", "2024-05-02")),
            "reject",
            Some("known FX rounding"),
        ),
        row(5, Some(&already), None, "true", None),
    ];
    let n = cases.events().unwrap().len();
    let report = cases
        .import_feedback(&rows, &Actor::analyst("carol"))
        .unwrap();
    assert_eq!((report.applied, report.unchanged), (3, 1));
    assert_eq!(cases.get(&a).unwrap().unwrap().status, Status::Accepted);
    assert_eq!(cases.get(&b).unwrap().unwrap().status, Status::Rejected);
    assert_eq!(cases.get(&c).unwrap().unwrap().status, Status::Rejected);
    assert_eq!(
        cases.get(&already).unwrap().unwrap().status,
        Status::Approved
    );
    let ev = cases.events().unwrap();
    assert_eq!(ev.len(), n + 3);
    assert!(
        ev[n..]
            .iter()
            .all(|e| e.user == "carol" && e.role == Some(Role::Analyst))
    );
    assert_eq!(ev[n + 2].reason.as_deref(), Some("known FX rounding"));
    // The importer can undo one of them like any decision of theirs.
    assert!(
        cases
            .get(&a)
            .unwrap()
            .unwrap()
            .last_decision
            .is_some_and(|d| d.user == "carol")
    );
    // The same file again: nothing applied, no events.
    let again = cases
        .import_feedback(&rows, &Actor::analyst("carol"))
        .unwrap();
    assert_eq!((again.applied, again.unchanged), (0, 4));
    assert_eq!(cases.events().unwrap().len(), n + 3);
    // And the labels reflect it.
    let labels: BTreeMap<String, bool> = cases
        .labels()
        .unwrap()
        .into_iter()
        .map(|l| (l.key, l.label))
        .collect();
    assert_eq!(
        labels,
        BTreeMap::from([
            ("K1".to_string(), true),
            ("K2".to_string(), false),
            ("K3".to_string(), false),
            ("K4".to_string(), true),
        ])
    );
}

// ----- crash safety ----------------------------------------------------------------------------

/// The child's part: decisions as fast as it can, one line per acknowledged call.
fn decision_burst(dir: &Path) {
    println!();
    let store = Store::open(dir).unwrap();
    let cases = Cases::new(&store);
    let deadline = Instant::now() + Duration::from_secs(60);
    for i in 0..100_000u32 {
        if Instant::now() > deadline {
            break;
        }
        let key = format!("00000|{i:04}|0042");
        let c = cases
            .upsert(&rec(&key, "2024-05-01", "2024-05-01"), false)
            .unwrap()
            .case;
        println!("ACK created {}", c.id);
        let c = match i % 3 {
            0 => cases.accept(&c.id, &alice(), None).unwrap(),
            1 => cases.reject(&c.id, &alice(), "matched manually").unwrap(),
            _ => cases.propose(&c.id, &alice(), Some("timing")).unwrap(),
        };
        let seq = c.last_decision.as_ref().map_or(0, |d| d.seq);
        println!("ACK decided {} {} {}", c.id, c.status, seq);
    }
}

#[test]
fn kill_minus_nine_loses_no_acknowledged_decision() {
    const TEST: &str = "kill_minus_nine_loses_no_acknowledged_decision";
    const KILL_AFTER: usize = 60;
    if let Some(dir) = std::env::var_os(CHILD_DIR) {
        decision_burst(Path::new(&dir));
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut proc = child(TEST, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = proc.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            // libtest may print its "test … " prefix on the first line.
            if let Some(i) = line.find("ACK ")
                && tx.send(line[i..].to_string()).is_err()
            {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut acks = Vec::new();
    let mut decided = 0;
    while decided < KILL_AFTER {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                decided += usize::from(line.starts_with("ACK decided"));
                acks.push(line);
            }
            Err(e) => {
                let _ = proc.kill();
                let _ = proc.wait();
                let why = match e {
                    std::sync::mpsc::RecvTimeoutError::Timeout => "ran out of time",
                    std::sync::mpsc::RecvTimeoutError::Disconnected => "stopped on its own",
                };
                panic!("the child {why} after {decided} acknowledged decisions");
            }
        }
    }
    // SIGKILL in the middle of the burst, at a varying point of the next call (0 to 3 ms on).
    let jitter = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |t| t.subsec_nanos() % 3_000_000);
    std::thread::sleep(Duration::from_nanos(u64::from(jitter)));
    proc.kill().unwrap();
    let status = proc.wait().unwrap();
    assert!(
        !status.success(),
        "the child must have been killed, not finished"
    );
    reader.join().unwrap();
    // Lines already in the pipe were acknowledged too.
    acks.extend(rx.try_iter());

    let store = Store::open(dir.path()).expect("the store opens cleanly after a kill -9");
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    let cases = Cases::new(&store);
    let events = cases.events().unwrap();
    let by_seq: BTreeMap<u64, _> = events.iter().map(|e| (e.seq, e)).collect();
    let mut created = BTreeSet::new();
    let mut checked = 0;
    for line in &acks {
        let parts: Vec<&str> = line.split(' ').collect();
        match parts.as_slice() {
            ["ACK", "created", id] => {
                assert!(
                    cases.get(id).unwrap().is_some(),
                    "acknowledged case {id} is lost"
                );
                created.insert(id.to_string());
            }
            ["ACK", "decided", id, status, seq] => {
                let case = cases
                    .get(id)
                    .unwrap()
                    .unwrap_or_else(|| panic!("{id} lost"));
                assert_eq!(case.status.as_str(), *status, "{id}");
                let seq: u64 = seq.parse().unwrap();
                let ev = by_seq
                    .get(&seq)
                    .unwrap_or_else(|| panic!("event {seq} lost"));
                assert_eq!(
                    (ev.case_id.as_str(), ev.to.map(|s| s.as_str())),
                    (*id, Some(*status))
                );
                assert_eq!(ev.user, "alice");
                checked += 1;
            }
            other => panic!("unexpected line {other:?}"),
        }
    }
    assert!(checked >= KILL_AFTER, "{checked}");
    eprintln!(
        "kill -9 after {} acknowledged lines ({checked} decisions): {} events, {} cases survive",
        acks.len(),
        events.len(),
        cases.list(&CaseFilter::default()).unwrap().len()
    );
    assert!(created.len() >= checked);
    // The log has no hole, and goes on after the crash without reusing a number.
    let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
    let number = |t: &str| -> u64 { t.rsplit('-').next().unwrap().parse().unwrap() };
    let stored = cases.list(&CaseFilter::default()).unwrap();
    let numbers: Vec<u64> = stored.iter().map(|c| number(&c.ticket)).collect();
    assert_eq!(numbers, (1..=stored.len() as u64).collect::<Vec<_>>());
    let fresh = cases
        .upsert(&rec("after-crash", "2024-05-02", "2024-05-02"), false)
        .unwrap()
        .case;
    assert_eq!(number(&fresh.ticket), stored.len() as u64 + 1);
    assert_eq!(
        cases.events().unwrap().last().unwrap().seq,
        seqs.len() as u64 + 1
    );
}
