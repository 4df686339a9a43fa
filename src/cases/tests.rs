use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::store::{CaseTree, Store, TxError};

use super::codec::{
    OUTSTANDING_INDEXED, case_bytes, case_bytes_json, case_head, decode_brief_case, decode_case,
    outstanding_marker, ticket_number,
};
use super::feedback::parse_label;
use super::roll::briefly;
use super::*;

/// A flagged record of account `key` in profile `gl`, its break begun that day.
fn record(key: &str, day: NaiveDate) -> BreakInput {
    BreakInput {
        profile: "gl".into(),
        key: key.into(),
        start_date: day,
        date: day,
        bucket: "Timing Issue".into(),
        bucket_rule: "r".into(),
        confidence: 0.9,
        severity: "Low".into(),
        summary: "s".into(),
        score: -0.6,
        rank: 1,
        difference: 10.0,
        model_version: "m".into(),
        row: serde_json::Map::new(),
    }
}

#[test]
fn a_stored_case_is_read_back_with_its_head_or_without_one() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let cases = Cases::new(&store);
    let day = NaiveDate::from_ymd_opt(2024, 3, 4).unwrap();
    let input = record("A", day);
    let case = cases.upsert(&input, false).unwrap().case;
    let bytes = case_bytes(&case).unwrap();
    let head = case_head(&bytes).unwrap();
    assert_eq!(head.fingerprint, case.fingerprint);
    assert_eq!(head.last_date, day);
    assert_eq!(head.ticket, case.ticket);
    assert_eq!(head.status, Status::PendingReview);
    assert_eq!(decode_case(&bytes).unwrap(), case);
    // A case as schema 4 stored it (head, then JSON) reads the same, head included.
    let json_headed = case_bytes_json(&case).unwrap();
    assert_eq!(json_headed[0], 1);
    assert_eq!(case_head(&json_headed).unwrap().ticket, case.ticket);
    assert_eq!(decode_case(&json_headed).unwrap(), case);
    // A case stored before heads existed is its JSON alone.
    let json = serde_json::to_vec(&case).unwrap();
    assert!(case_head(&json).is_none());
    assert_eq!(decode_case(&json).unwrap(), case);
    // A damaged head is no head, and the case does not decode: an error, not a panic.
    for cut in [1, 2, 3, 10, 40] {
        assert!(case_head(&bytes[..cut]).is_none(), "cut at {cut}");
        assert!(decode_case(&bytes[..cut]).is_err(), "cut at {cut}");
    }
    let mut long = bytes.clone();
    long[1] = 0xff;
    long[2] = 0xff;
    assert!(case_head(&long).is_none());
    assert!(decode_case(&long).is_err());
    // Re-recording the same record reads the head and changes nothing.
    let again = cases
        .record_batch(std::slice::from_ref(&input), &[false], None)
        .unwrap();
    assert_eq!(again[0].change, Change::Unchanged);
    assert_eq!(again[0].ticket, case.ticket);
    assert_eq!(cases.get(&case.id).unwrap().unwrap(), case);
}

#[test]
fn brief_outstanding_cases_leave_the_snapshot_out_and_stay_brief_when_rolled() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let cases = Cases::new(&store);
    let day = |d: u32| NaiveDate::from_ymd_opt(2024, 3, d).unwrap();
    let with_row = |key: &str| {
        let mut r = record(key, day(1));
        r.row
            .insert("Comments".into(), serde_json::json!("posted late"));
        r
    };
    let a = cases.upsert(&with_row("A"), false).unwrap().case;
    let b = cases.upsert(&with_row("B"), false).unwrap().case;
    assert!(!a.row.is_empty());
    let full = cases.outstanding_cases("gl").unwrap();
    let mut briefs = cases.outstanding_briefs("gl").unwrap();
    assert_eq!(briefs.len(), 2);
    for (f, b) in full.iter().zip(&briefs) {
        assert!(b.row.is_empty() && b.dispatches.is_empty());
        let mut f = f.clone();
        briefly(&mut f);
        assert_eq!(&f, b, "only the snapshot and dispatches are left out");
    }
    // A's break persists on the 2nd, B's is back within tolerance: both are written.
    let mut cycle = Cycle {
        profile: "gl".into(),
        ..Cycle::default()
    };
    let d2 = (day(2) - NaiveDate::from_ymd_opt(1970, 1, 1).unwrap()).num_days() as i32;
    cycle.push_day(&a.key, d2, true, 9.0, 1.0);
    cycle.push_day(&b.key, d2, false, 0.0, 0.0);
    cycle.seal();
    let out = cases.roll_forward_over(&cycle, &mut briefs).unwrap();
    assert_eq!((out.persisting, out.cleared), (1, 1));
    let rolled_a = briefs.iter().find(|c| c.id == a.id).unwrap();
    assert_eq!((rolled_a.last_date, rolled_a.difference), (day(2), 9.0));
    assert!(rolled_a.row.is_empty(), "a written case comes back brief");
    let rolled_b = briefs.iter().find(|c| c.id == b.id).unwrap();
    assert_eq!(rolled_b.status, Status::Cleared);
    // The store keeps the whole case.
    let stored = cases.get(&a.id).unwrap().unwrap();
    assert_eq!(stored.row, a.row);
    assert_eq!(stored.difference, 9.0);
}

#[test]
fn a_store_written_before_the_markers_is_indexed_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let cases = Cases::new(&store);
    let input = |key: &str, day: u32| record(key, NaiveDate::from_ymd_opt(2024, 3, day).unwrap());
    let a = cases.upsert(&input("A", 1), false).unwrap().case;
    let b = cases.upsert(&input("B", 2), false).unwrap().case;
    // What an older store held: the cases without their markers, and no flag.
    store
        .case_transaction(|txn| {
            for c in [&a, &b] {
                txn.remove(
                    CaseTree::BreakIndex,
                    &outstanding_marker(&c.profile, &c.key, &c.id),
                )?;
            }
            txn.remove(CaseTree::Seq, OUTSTANDING_INDEXED)?;
            Ok::<(), TxError<CaseError>>(())
        })
        .unwrap();
    assert!(cases.outstanding_of("gl", "A").unwrap().is_empty());
    assert_eq!(cases.index_outstanding().unwrap(), 2);
    assert_eq!(cases.outstanding_of("gl", "A").unwrap(), vec![a.id.clone()]);
    assert_eq!(cases.outstanding_cases("gl").unwrap().len(), 2);
    assert_eq!(cases.index_outstanding().unwrap(), 0, "once per store");
}

#[test]
fn every_allowed_action_leads_out_of_its_status_and_back_to_work() {
    for status in Status::ALL {
        let allowed = status.allowed_actions();
        assert!(!allowed.is_empty(), "{status} is a dead end");
        for a in allowed {
            assert_ne!(a.target(), status, "{status} {a}");
        }
    }
    // Pending work is reachable again from every decided status.
    for s in [Status::Accepted, Status::Rejected, Status::Approved] {
        assert_eq!(s.allowed_actions(), &[Action::Reopen]);
    }
    assert_eq!(
        Status::Returned.allowed_actions(),
        Status::PendingReview.allowed_actions()
    );
}

#[test]
fn labels_parse_in_every_accepted_spelling_and_nothing_else() {
    for s in ["accept", "ACCEPT", " 1 ", "true", "True"] {
        assert_eq!(parse_label(s), Ok(true), "{s}");
    }
    for s in ["reject", "0", "false", "FALSE"] {
        assert_eq!(parse_label(s), Ok(false), "{s}");
    }
    for s in ["", "yes", "2", "accepted"] {
        assert!(parse_label(s).is_err(), "{s}");
    }
}

#[test]
fn jira_keys_and_ticket_numbers() {
    for k in ["RECON-1", "R2D2-42", "FIN_OPS-1000"] {
        assert!(is_jira_key(k), "{k}");
    }
    for k in [
        "",
        "RECON",
        "recon-1",
        "1RECON-1",
        "RECON-",
        "RECON-1-2",
        "RECON-x",
    ] {
        assert!(!is_jira_key(k), "{k}");
    }
    assert_eq!(ticket_number("BRK-20240501-000042"), 42);
    assert_eq!(ticket_number("BRK-20240501-1000000"), 1_000_000);
    assert_eq!(ticket_number("garbage"), u64::MAX);
}

#[test]
fn a_case_stored_before_dispatch_existed_reads_and_is_dispatchable() {
    // A case as schema 2 wrote it: no `dispatches`.
    let v2 = r#"{"id":"C-0123456789ab","ticket":"BRK-20240501-000001","profile":"gl_ihub",
        "key":"K","start_date":"2024-05-01","last_date":"2024-05-02","origin":"Model",
        "status":"Accepted","bucket":"Timing Issue","bucket_rule":"r","confidence":0.5,
        "severity":"Low","summary":"s","score":0.1,"rank":1,"difference":1.5,
        "model_version":"m","proposed_by":null,"jira_key":null,"dispatched":false,
        "created_at":"2024-05-01T09:30:00.000Z","updated_at":"2024-05-01T09:30:00.000Z",
        "row":{},"last_decision":null,"fingerprint":"f"}"#;
    let mut case: Case = serde_json::from_str(v2).unwrap();
    assert!(case.dispatches.is_empty());
    assert!(Channel::ALL.iter().all(|c| case.dispatchable_on(*c)));
    let at = case.created_at;
    for (state, again) in [
        (DispatchState::Queued, false),
        (DispatchState::Sent, false),
        (DispatchState::Parked, false),
        (DispatchState::Cancelled, true),
    ] {
        case.dispatches = vec![ChannelDispatch {
            channel: Channel::Jira,
            state,
            outbox_id: 7,
            reference: None,
            note: None,
            at,
        }];
        assert_eq!(case.dispatchable_on(Channel::Jira), again, "{state}");
        assert!(case.dispatchable_on(Channel::Email));
        let back: Case = serde_json::from_str(&serde_json::to_string(&case).unwrap()).unwrap();
        assert_eq!(back, case);
    }
    assert_eq!("Webhook".parse::<Channel>().unwrap(), Channel::Webhook);
    assert!("fax".parse::<Channel>().is_err());
}

#[test]
fn timestamps_and_dates_round_trip_through_json() {
    let t = DateTime::parse_from_rfc3339("2024-05-01T09:30:00.123Z")
        .unwrap()
        .with_timezone(&Utc);
    let label = Label {
        case_id: "C-0123456789ab".into(),
        profile: "gl_ihub".into(),
        key: "K".into(),
        date: NaiveDate::from_ymd_opt(2024, 5, 1).unwrap(),
        start_date: NaiveDate::from_ymd_opt(2024, 4, 29),
        label: true,
        origin: Origin::Model,
        difference: None,
    };
    let json = serde_json::to_string(&label).unwrap();
    assert!(json.contains("\"date\":\"2024-05-01\""), "{json}");
    assert!(json.contains("\"start_date\":\"2024-04-29\""), "{json}");
    assert_eq!(serde_json::from_str::<Label>(&json).unwrap(), label);
    // A label stored before the start date was kept still reads.
    let old = json.replace(",\"start_date\":\"2024-04-29\"", "");
    let read: Label = serde_json::from_str(&old).unwrap();
    assert_eq!(read.start_date, None);
    assert_eq!(read.date, label.date);
    #[derive(Serialize, Deserialize)]
    struct T(#[serde(with = "time_format")] DateTime<Utc>);
    let s = serde_json::to_string(&T(t)).unwrap();
    assert_eq!(s, "\"2024-05-01T09:30:00.123Z\"");
    assert_eq!(serde_json::from_str::<T>(&s).unwrap().0, t);
}

#[test]
fn the_binary_encoding_keeps_every_field_of_a_case() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let cases = Cases::new(&store);
    let day = NaiveDate::from_ymd_opt(2024, 3, 4).unwrap();
    let mut input = record("A", day);
    input
        .row
        .insert("Account".into(), serde_json::json!("1001"));
    input.row.insert("Comments".into(), serde_json::json!(""));
    input.row.insert("n".into(), serde_json::json!(12.5));
    input
        .row
        .insert("nested".into(), serde_json::json!({"a": [1, null, "é"]}));
    input.row.insert("none".into(), serde_json::Value::Null);
    let mut case = cases.upsert(&input, false).unwrap().case;
    case.origin = Origin::Analyst;
    case.status = Status::Returned;
    case.proposed_by = Some("rules:r".into());
    case.jira_key = Some("REC-1".into());
    case.dispatched = true;
    case.dispatches = vec![ChannelDispatch {
        channel: Channel::Jira,
        state: DispatchState::Sent,
        outbox_id: 7,
        reference: Some("REC-1".into()),
        note: None,
        at: case.created_at,
    }];
    case.last_decision = Some(Decision {
        seq: 3,
        user: "ana".into(),
        action: Action::Propose,
        from: Status::PendingReview,
        prev_proposed_by: None,
    });
    case.judged_difference = Some(-0.0);
    case.previous_difference = Some(1e-300);
    case.cleared_on = Some(day);
    case.seen_to = Some(day);
    case.owner = Some("bo".into());
    case.due = Some(day);
    case.score = f64::MIN_POSITIVE;
    let bytes = case_bytes(&case).unwrap();
    let back = decode_case(&bytes).unwrap();
    assert_eq!(back, case);
    assert_eq!(
        back.judged_difference.map(f64::to_bits),
        Some((-0.0f64).to_bits())
    );
    // The same JSON as a case stored as JSON gives (what export and the API print).
    assert_eq!(
        serde_json::to_string(&back).unwrap(),
        serde_json::to_string(&decode_case(&case_bytes_json(&case).unwrap()).unwrap()).unwrap()
    );
    // Every cut of it is an error, never a panic.
    for cut in 0..bytes.len() {
        assert!(decode_case(&bytes[..cut]).is_err(), "cut at {cut}");
        assert!(
            decode_brief_case(&bytes[..cut]).is_err(),
            "brief, cut at {cut}"
        );
    }
    // Read briefly, it is the case without its record's columns and dispatches, from the
    // binary form and from the JSON ones alike.
    let mut brief = case.clone();
    briefly(&mut brief);
    assert!(!case.row.is_empty() && !case.dispatches.is_empty());
    assert_eq!(decode_brief_case(&bytes).unwrap(), brief);
    assert_eq!(
        decode_brief_case(&case_bytes_json(&case).unwrap()).unwrap(),
        brief
    );
    assert_eq!(
        decode_brief_case(&serde_json::to_vec(&case).unwrap()).unwrap(),
        brief
    );
    // What it skips is still checked: a record's value that is not JSON, or dispatches that
    // are not, make both readings fail.
    for (good, bad) in [(&b"12.5"[..], &b"12;5"[..]), (b"\"jira\"", b"\"jira\\")] {
        let at = memchr::memmem::find(&bytes, good).expect("the value is in the bytes");
        let mut damaged = bytes.clone();
        damaged[at..at + good.len()].copy_from_slice(bad);
        assert!(decode_case(&damaged).is_err());
        assert!(decode_brief_case(&damaged).is_err());
    }
}

#[test]
fn cases_stored_as_json_by_schema_4_are_read_and_rewritten_in_binary() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let cases = Cases::new(&store);
    let day = NaiveDate::from_ymd_opt(2024, 3, 4).unwrap();
    let input = record("A", day);
    let case = cases.upsert(&input, false).unwrap().case;
    store
        .overwrite_case_bytes(&case.id, &case_bytes_json(&case).unwrap())
        .unwrap();
    assert_eq!(cases.get(&case.id).unwrap().unwrap(), case);
    assert_eq!(cases.outstanding_cases("gl").unwrap(), vec![case.clone()]);
    // The same record again: unchanged, read from the JSON case's head.
    let again = cases
        .record_batch(std::slice::from_ref(&input), &[false], None)
        .unwrap();
    assert_eq!(again[0].change, Change::Unchanged);
    // A newer record rewrites it, in binary.
    let mut later = input.clone();
    later.date = day.succ_opt().unwrap();
    later.difference = 11.0;
    let updated = cases.upsert(&later, false).unwrap().case;
    let stored = store.case_get(CaseTree::Cases, case.id.as_bytes()).unwrap();
    assert_eq!(stored.as_deref().map(|b| b[0]), Some(2));
    assert_eq!(cases.get(&case.id).unwrap().unwrap(), updated);
}

/// `record` with columns: texts, a number, an empty text and a null.
fn record_with_row(key: &str, day: NaiveDate, n: u32) -> BreakInput {
    let mut input = record(key, day);
    for (k, v) in [
        ("Account", serde_json::json!(key)),
        ("GL Balance", serde_json::json!(format!("{n}.25"))),
        ("bd_row", serde_json::json!(n)),
        ("Comments", serde_json::json!("")),
        ("none", serde_json::Value::Null),
    ] {
        input.row.insert(k.into(), v);
    }
    input
}

#[test]
fn a_large_batch_stores_each_records_columns_and_reads_its_cases_back_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let cases = Cases::new(&store);
    let day = NaiveDate::from_ymd_opt(2024, 3, 4).unwrap();
    // More cases than there are index buckets.
    let n = 2_500u32;
    let inputs: Vec<BreakInput> = (0..n)
        .map(|i| record_with_row(&format!("K{i}"), day, i))
        .collect();
    let auto = vec![false; inputs.len()];
    let created = cases.record_batch(&inputs, &auto, None).unwrap();
    assert!(created.iter().all(|r| r.change == Change::Created));
    let stored = cases.outstanding_cases("gl").unwrap();
    assert_eq!(stored.len(), inputs.len());
    // In ticket order, as the query lists them; briefly, the same cases without their
    // records' columns.
    let listed = cases
        .list(&CaseFilter {
            profile: Some("gl".into()),
            ..CaseFilter::default()
        })
        .unwrap();
    let mut by_ticket = listed.clone();
    by_ticket.sort_by_key(|c| ticket_number(&c.ticket));
    assert_eq!(stored, by_ticket);
    let briefs = cases.outstanding_briefs("gl").unwrap();
    assert_eq!(briefs.len(), stored.len());
    for (b, full) in briefs.iter().zip(&stored) {
        let mut full = full.clone();
        briefly(&mut full);
        assert_eq!(b, &full);
    }
    for input in &inputs {
        let id = case_id(&input.profile, &input.key, input.start_date);
        let case = cases.get(&id).unwrap().unwrap();
        assert_eq!(case.row, input.row, "{id}");
        assert_eq!(case.fingerprint, input.fingerprint().unwrap());
    }
    // Again, with the cases asked for: unchanged, and as stored.
    let again = cases.upsert_batch_in(&inputs, &auto, None).unwrap();
    for (o, r) in again.iter().zip(&created) {
        assert_eq!(o.change, Change::Unchanged);
        assert_eq!(o.case.ticket, r.ticket);
        assert_eq!(cases.get(&o.case.id).unwrap().as_ref(), Some(&o.case));
        assert!(!o.case.row.is_empty());
    }
    let events = cases.events().unwrap().len();
    assert!(
        cases
            .record_batch(&inputs, &auto, None)
            .unwrap()
            .iter()
            .all(|r| r.change == Change::Unchanged)
    );
    assert_eq!(cases.events().unwrap().len(), events);
    // The next day's records: every case updated, with the new columns, whichever way.
    let next: Vec<BreakInput> = inputs
        .iter()
        .enumerate()
        .map(|(i, input)| {
            let mut r = input.clone();
            r.date = day.succ_opt().unwrap();
            r.row
                .insert("bd_row".into(), serde_json::json!(i + 100_000));
            r
        })
        .collect();
    let (half_a, half_b) = next.split_at(next.len() / 2);
    let updated = cases
        .record_batch(half_a, &auto[..half_a.len()], None)
        .unwrap();
    assert!(updated.iter().all(|r| r.change == Change::Updated));
    let returned = cases
        .upsert_batch_in(half_b, &auto[..half_b.len()], None)
        .unwrap();
    for (o, input) in returned.iter().zip(half_b) {
        assert_eq!(o.change, Change::Updated);
        assert_eq!(o.case.row, input.row);
        assert_eq!(cases.get(&o.case.id).unwrap().as_ref(), Some(&o.case));
    }
    for input in &next {
        let id = case_id(&input.profile, &input.key, input.start_date);
        assert_eq!(cases.get(&id).unwrap().unwrap().row, input.row, "{id}");
    }
}

#[test]
fn fingerprints_differ_exactly_when_the_records_json_does() {
    let day = NaiveDate::from_ymd_opt(2024, 3, 4).unwrap();
    let base = record_with_row("A", day, 7);
    let mut variants = vec![base.clone()];
    let mut edit = |f: &dyn Fn(&mut BreakInput)| {
        let mut v = base.clone();
        f(&mut v);
        variants.push(v);
    };
    edit(&|v| v.key = "B".into());
    edit(&|v| v.profile = "gl2".into());
    edit(&|v| v.date = day.succ_opt().unwrap());
    edit(&|v| v.start_date = day.pred_opt().unwrap());
    edit(&|v| v.bucket = "Rounding".into());
    edit(&|v| v.bucket_rule = "r2".into());
    edit(&|v| v.confidence = 0.91);
    edit(&|v| v.severity = "High".into());
    edit(&|v| v.summary = "s2".into());
    edit(&|v| v.score = -0.61);
    edit(&|v| v.rank = 2);
    edit(&|v| v.difference = -10.0);
    edit(&|v| v.difference = 0.0);
    edit(&|v| v.difference = -0.0);
    edit(&|v| v.model_version = "m2".into());
    edit(&|v| {
        v.row.insert("bd_row".into(), serde_json::json!("7"));
    });
    edit(&|v| {
        v.row.insert("bd_row".into(), serde_json::json!(7.0));
    });
    edit(&|v| {
        v.row.insert("Comments".into(), serde_json::Value::Null);
    });
    edit(&|v| {
        v.row.remove("none");
    });
    // Texts that would run into each other without their lengths.
    edit(&|v| {
        v.key = "AB".into();
        v.bucket = "ming Issue".into();
    });
    edit(&|v| {
        v.summary = String::new();
        v.model_version = "sm".into();
    });
    for a in &variants {
        let fa = a.fingerprint().unwrap();
        assert!(fa.starts_with("v2:") && fa.len() == 67, "{fa}");
        assert_eq!(fa, a.clone().fingerprint().unwrap());
        for b in &variants {
            let same_json = a.json_fingerprint().unwrap() == b.json_fingerprint().unwrap();
            let same = fa == b.fingerprint().unwrap();
            assert_eq!(same, same_json, "{a:?} / {b:?}");
            assert_eq!(
                b.has_fingerprint(&a.json_fingerprint().unwrap(), &b.fingerprint().unwrap()),
                same_json
            );
        }
    }
}

#[test]
fn a_case_input_is_read_back_from_its_binary_form_exactly_and_damage_is_refused() {
    let day = NaiveDate::from_ymd_opt(2024, 3, 4).unwrap();
    let mut input = record_with_row("00001|1001", day, 7);
    input.start_date = day.pred_opt().unwrap();
    input.difference = -0.0;
    input.score = f64::MIN_POSITIVE;
    input.rank = u64::MAX;
    input.summary = "Fat Finger: 1,000× the usual \"amount\"\n=cmd".into();
    for (k, v) in [
        ("flag", serde_json::json!(true)),
        ("big", serde_json::json!(u64::MAX)),
        ("neg", serde_json::json!(-12i64)),
        ("float", serde_json::json!(0.1 + 0.2)),
        ("list", serde_json::json!([1, "a", null])),
        ("obj", serde_json::json!({"x": {"y": 1.5}})),
        ("", serde_json::json!("empty name")),
    ] {
        input.row.insert(k.into(), v);
    }
    let mut b = vec![9u8];
    encode_input(&input, &mut b).unwrap();
    assert_eq!(b[0], 9, "appended after what the buffer held");
    let back = decode_input(&b[1..]).unwrap();
    assert_eq!(back, input);
    assert_eq!(back.difference.to_bits(), (-0.0f64).to_bits());
    assert_eq!(
        serde_json::to_string(&back).unwrap(),
        serde_json::to_string(&input).unwrap()
    );
    assert_eq!(back.fingerprint().unwrap(), input.fingerprint().unwrap());
    // Cut short anywhere, or with bytes after its end, it is refused, never misread.
    for cut in 0..b.len() - 1 {
        assert!(decode_input(&b[1..1 + cut]).is_err(), "cut at {cut}");
    }
    let mut longer = b[1..].to_vec();
    longer.push(0);
    let err = decode_input(&longer).unwrap_err();
    assert!(err.contains("1 bytes after the end"), "{err}");
}

#[test]
fn a_case_fingerprinted_by_schema_5_is_unchanged_by_the_same_record_and_updated_by_another() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let cases = Cases::new(&store);
    let day = NaiveDate::from_ymd_opt(2024, 3, 4).unwrap();
    let (a, b) = (record_with_row("A", day, 1), record_with_row("B", day, 2));
    let mut stored_bytes = Vec::new();
    for (input, json) in [(&a, false), (&b, true)] {
        let mut case = cases.upsert(input, false).unwrap().case;
        assert!(case.fingerprint.starts_with("v2:"));
        // As schema 5 (binary) and schema 4 (JSON) left it: the fingerprint of the JSON.
        case.fingerprint = input.json_fingerprint().unwrap();
        let bytes = if json {
            case_bytes_json(&case).unwrap()
        } else {
            case_bytes(&case).unwrap()
        };
        store.overwrite_case_bytes(&case.id, &bytes).unwrap();
        stored_bytes.push((case.id.clone(), bytes));
    }
    let events = cases.events().unwrap().len();
    // The same records again, as a run records them and one by one: nothing changes.
    let inputs = [a.clone(), b.clone()];
    for r in cases.record_batch(&inputs, &[false, false], None).unwrap() {
        assert_eq!(r.change, Change::Unchanged);
    }
    for input in &inputs {
        assert_eq!(
            cases.upsert(input, false).unwrap().change,
            Change::Unchanged
        );
    }
    for (id, bytes) in &stored_bytes {
        let now = store.case_get(CaseTree::Cases, id.as_bytes()).unwrap();
        assert_eq!(now.as_ref(), Some(bytes), "{id} was rewritten");
    }
    assert_eq!(cases.events().unwrap().len(), events);
    // Another record of the break updates the case, which takes the new fingerprint.
    let mut later = a.clone();
    later.date = day.succ_opt().unwrap();
    later.difference = 12.0;
    let out = cases.upsert(&later, false).unwrap();
    assert_eq!(out.change, Change::Updated);
    assert_eq!(out.case.fingerprint, later.fingerprint().unwrap());
    assert_eq!(
        cases.upsert(&later, false).unwrap().change,
        Change::Unchanged
    );
}

/// Recording a batch at once (its new cases numbered in order, then built and indexed on every
/// core) leaves the store as recording its records one after the other does: the same
/// tickets, statuses, owners and events, numbered the same.
#[test]
fn a_batch_records_what_its_records_one_at_a_time_would() {
    use std::collections::{HashMap, HashSet};
    let day = NaiveDate::from_ymd_opt(2024, 3, 4).unwrap();
    let at = DateTime::parse_from_rfc3339("2024-03-05T09:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    let router = std::sync::Arc::new(
        crate::routing::Router::compile(&[("ana".into(), "abs(difference) > 500".into())]).unwrap(),
    );
    // Enough cases for the parallel paths (more index entries than `PARALLEL_BATCH`).
    let mut first: Vec<BreakInput> = (0..300u32)
        .map(|i| {
            let mut r = record_with_row(&format!("K{i}"), day, i);
            r.difference = f64::from(i) * 3.0;
            r
        })
        .collect();
    // A second record of one break in the same batch: folded into its latest.
    let mut later = record_with_row("K7", day, 7);
    later.date = day.succ_opt().unwrap();
    later.difference = 999.0;
    first.push(later);
    let auto: Vec<bool> = (0..first.len()).map(|i| i % 5 == 0).collect();
    // The next batch: some cases moved, some new, one the same.
    let next_day = day + chrono::Duration::days(2);
    // New cases first, then the decided ones (their events among the new cases' events).
    let mut second: Vec<BreakInput> = (350..420u32)
        .chain(290..350)
        .map(|i| {
            let mut r = record_with_row(&format!("K{i}"), day, i);
            r.date = next_day;
            r.difference = f64::from(i) * 4.0;
            r
        })
        .collect();
    second.push(first[3].clone());
    let auto2: Vec<bool> = (0..second.len()).map(|i| i % 7 == 0).collect();

    let summary = |cases: &Cases| {
        // Id, ticket, status, owner, proposer.
        type Brief = (String, String, Status, Option<String>, Option<String>);
        let mut all: Vec<Brief> = cases
            .list(&CaseFilter::default())
            .unwrap()
            .into_iter()
            .map(|c| (c.id, c.ticket, c.status, c.owner, c.proposed_by))
            .collect();
        all.sort();
        let events: Vec<String> = cases
            .events()
            .unwrap()
            .into_iter()
            .map(|e| {
                format!(
                    "{} {} {:?} {:?} {:?} {:?} {}",
                    e.seq, e.case_id, e.action, e.from, e.to, e.reason, e.user
                )
            })
            .collect();
        (all, events)
    };

    let dir_a = tempfile::tempdir().unwrap();
    let store_a = Store::open(dir_a.path()).unwrap();
    let batch = Cases::with_clock(&store_a, move || at).routed(router.clone());
    let got_first = batch.record_batch(&first, &auto, None).unwrap();

    let dir_b = tempfile::tempdir().unwrap();
    let store_b = Store::open(dir_b.path()).unwrap();
    let single = Cases::with_clock(&store_b, move || at).routed(router);
    // One record after the other, in the batch's order of cases (a break's records folded
    // into its latest, as the batch does).
    let one_by_one = |inputs: &[BreakInput], auto: &[bool]| -> Vec<Change> {
        let mut seen: Vec<String> = Vec::new();
        let mut latest: HashMap<String, (BreakInput, bool)> = HashMap::new();
        for (input, a) in inputs.iter().zip(auto) {
            let id = case_id(&input.profile, &input.key, input.start_date);
            match latest.get_mut(&id) {
                None => {
                    seen.push(id.clone());
                    latest.insert(id, (input.clone(), *a));
                }
                Some((r, p)) => {
                    *p &= *a;
                    if input.date >= r.date {
                        *r = input.clone();
                    }
                }
            }
        }
        seen.iter()
            .map(|id| {
                let (r, p) = &latest[id];
                single.upsert(r, *p).unwrap().change
            })
            .collect()
    };
    let changes_first = one_by_one(&first, &auto);
    // Decided cases, whose moved differences the second batch sends back for review (events
    // of updates among the new cases' events).
    let decide = |cases: &Cases| {
        for i in [291u32, 293, 298] {
            let id = case_id("gl", &format!("K{i}"), day);
            cases.accept(&id, &Actor::analyst("alice"), None).unwrap();
        }
    };
    decide(&batch);
    decide(&single);
    let got_second = batch.upsert_batch_in(&second, &auto2, None).unwrap();
    let changes_second = one_by_one(&second, &auto2);

    let (cases_a, events_a) = summary(&batch);
    let (cases_b, events_b) = summary(&single);
    assert_eq!(cases_a.len(), 420);
    assert_eq!(cases_a, cases_b);
    assert_eq!(events_a, events_b);
    assert!(cases_a.iter().any(|c| c.3.as_deref() == Some("ana")));
    assert!(cases_a.iter().any(|c| c.2 == Status::AutoResolveProposed));
    // The outcomes, per case, are the same changes.
    let mut firsts: Vec<Change> = Vec::new();
    let mut ids_seen = HashSet::new();
    for (input, r) in first.iter().zip(&got_first) {
        if ids_seen.insert(case_id(&input.profile, &input.key, input.start_date)) {
            firsts.push(r.change);
        }
    }
    assert_eq!(firsts, changes_first);
    let mut seconds: Vec<Change> = Vec::new();
    let mut ids_seen = HashSet::new();
    for (input, o) in second.iter().zip(&got_second) {
        if ids_seen.insert(case_id(&input.profile, &input.key, input.start_date)) {
            seconds.push(o.change);
            assert_eq!(Some(&o.case), batch.get(&o.case.id).unwrap().as_ref());
        }
    }
    assert_eq!(seconds, changes_second);
    assert!(seconds.contains(&Change::Created));
    assert!(seconds.contains(&Change::Updated));
    assert!(seconds.contains(&Change::Recertified));
    assert!(seconds.contains(&Change::Unchanged));
}

#[test]
fn each_input_gets_its_cases_outcome() {
    let got = super::record::per_input(vec!["a".to_string(), "b".to_string()], &[1, 0, 1, 1]);
    assert_eq!(got, ["b", "a", "b", "b"]);
    assert!(super::record::per_input(Vec::<String>::new(), &[]).is_empty());
}

/// `record_with_row` with every kind of JSON value among its columns.
fn record_with_every_kind_of_column(key: &str, day: NaiveDate) -> BreakInput {
    let mut input = record_with_row(key, day, 7);
    for (k, v) in [
        ("flag", serde_json::json!(true)),
        ("big", serde_json::json!(u64::MAX)),
        ("float", serde_json::json!(0.1 + 0.2)),
        ("list", serde_json::json!([1, "a", null])),
        ("obj", serde_json::json!({"x": {"y": 1.5}})),
        ("", serde_json::json!("empty name")),
        ("Région", serde_json::json!("Zürich ✓")),
    ] {
        input.row.insert(k.into(), v);
    }
    input
}

/// `input` without its columns, and its columns encoded.
fn split_row(input: &BreakInput) -> (BreakInput, EncodedRow) {
    let row = EncodedRow::of_map(&input.row).unwrap();
    let mut bare = input.clone();
    bare.row = serde_json::Map::new();
    (bare, row)
}

#[test]
fn a_records_columns_encoded_once_are_its_columns_and_give_its_fingerprint() {
    let day = NaiveDate::from_ymd_opt(2024, 3, 4).unwrap();
    let input = record_with_every_kind_of_column("A", day);
    let (bare, row) = split_row(&input);
    assert_eq!(row.to_map().unwrap(), input.row);
    let encoded = super::binary::RowRef::Encoded(&row);
    assert_eq!(
        bare.fingerprint_with(encoded).unwrap(),
        input.fingerprint().unwrap()
    );
    // Another record's columns give another fingerprint.
    let (_, other) = split_row(&record_with_every_kind_of_column("B", day));
    assert_ne!(
        bare.fingerprint_with(super::binary::RowRef::Encoded(&other))
            .unwrap(),
        input.fingerprint().unwrap()
    );
    // A fingerprint of schema 5 (the record's JSON) is recognised from the encoded columns.
    let json = input.json_fingerprint().unwrap();
    assert!(bare.has_fingerprint_with(encoded, &json, "v2:other"));
    assert!(!bare.has_fingerprint_with(super::binary::RowRef::Encoded(&other), &json, "v2:other"));

    // Text cells given in the order of their names encode as the map of them does.
    let texts = [
        ("Account", "101000"),
        ("Comments", ""),
        ("GL Balance", "1,234.50"),
    ];
    // Put in the map in another order (a file's): a map keeps its columns by name, the order
    // break_inputs gives them in.
    let mut map = serde_json::Map::new();
    for (k, v) in texts.iter().rev() {
        map.insert((*k).into(), serde_json::json!(v));
    }
    let of_texts = EncodedRow::of_texts(texts.iter().copied()).unwrap();
    assert_eq!(of_texts, EncodedRow::of_map(&map).unwrap());
    assert_eq!(of_texts.to_map().unwrap(), map);
    assert_eq!(
        EncodedRow::of_texts(std::iter::empty()).unwrap(),
        EncodedRow::of_map(&serde_json::Map::new()).unwrap()
    );
    // Out of order, or a name twice: refused.
    for bad in [[("b", "1"), ("a", "2")], [("a", "1"), ("a", "2")]] {
        let err = EncodedRow::of_texts(bad.iter().copied()).unwrap_err();
        assert!(err.to_string().contains("out of order"), "{err}");
    }
}

#[test]
fn a_case_input_spilled_with_its_columns_encoded_reads_back_exactly() {
    let day = NaiveDate::from_ymd_opt(2024, 3, 4).unwrap();
    let input = record_with_every_kind_of_column("A", day);
    let (bare, row) = split_row(&input);
    let mut b = vec![1u8];
    encode_input_row(&bare, &row, &mut b).unwrap();
    // The same bytes as the input with its map, read back either way.
    let mut whole = vec![1u8];
    encode_input(&input, &mut whole).unwrap();
    assert_eq!(b, whole);
    assert_eq!(decode_input(&b[1..]).unwrap(), input);
    assert_eq!(
        decode_input_row(&b[1..]).unwrap(),
        (bare.clone(), row.clone())
    );
    // Cut short anywhere, with bytes after its end, or with a damaged column: refused.
    for cut in 0..b.len() - 1 {
        assert!(decode_input_row(&b[1..1 + cut]).is_err(), "cut at {cut}");
    }
    let mut longer = b[1..].to_vec();
    longer.push(0);
    let err = decode_input_row(&longer).unwrap_err();
    assert!(err.contains("1 bytes after the end"), "{err}");
    let float = b.windows(3).position(|w| w == b"0.3").unwrap();
    let mut damaged = b.clone();
    damaged[float + 1] = b';';
    assert!(decode_input(&damaged[1..]).is_err());
    assert!(decode_input_row(&damaged[1..]).is_err());
    // An input whose columns would be given twice is refused.
    let err = encode_input_row(&input, &row, &mut Vec::new()).unwrap_err();
    assert!(err.to_string().contains("given twice"), "{err}");
}

#[test]
fn records_with_their_columns_encoded_are_recorded_as_with_their_maps() {
    let day = NaiveDate::from_ymd_opt(2024, 3, 4).unwrap();
    let at = DateTime::parse_from_rfc3339("2024-03-05T08:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    let mut inputs: Vec<BreakInput> = (0..40)
        .map(|i| record_with_every_kind_of_column(&format!("K{}", i % 30), day))
        .collect();
    // Later records of ten of the breaks: one case each, brought to the latest.
    for (i, input) in inputs.iter_mut().enumerate().skip(30) {
        input.date = day + chrono::Duration::days(i as i64 - 29);
        input.difference = i as f64;
    }
    let auto: Vec<bool> = (0..inputs.len()).map(|i| i % 3 == 0).collect();
    let (bare, rows): (Vec<BreakInput>, Vec<EncodedRow>) = inputs.iter().map(split_row).unzip();
    // Routed on one of the record's columns, which the routes read from the encoded columns.
    let router = std::sync::Arc::new(
        crate::routing::Router::compile(&[("ana".into(), "Account = 'K3'".into())]).unwrap(),
    );
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let stores: Vec<Store> = dirs
        .iter()
        .map(|d| Store::open(d.path()).unwrap())
        .collect();
    let with_maps = Cases::with_clock(&stores[0], move || at).routed(router.clone());
    let encoded = Cases::with_clock(&stores[1], move || at).routed(router);
    let a = with_maps.record_batch(&inputs, &auto, None).unwrap();
    let b = encoded.record_rows(&bare, &rows, &auto, None).unwrap();
    assert_eq!(a, b);
    assert!(b.iter().all(|r| r.change == Change::Created));
    let ids: std::collections::HashSet<&str> = b.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids.len(), 30);
    for r in &b {
        let (x, y) = (
            stores[0]
                .case_get(CaseTree::Cases, r.id.as_bytes())
                .unwrap(),
            stores[1]
                .case_get(CaseTree::Cases, r.id.as_bytes())
                .unwrap(),
        );
        assert!(x.is_some());
        assert_eq!(x, y, "{}", r.id);
        let case = encoded.get(&r.id).unwrap().unwrap();
        let routed = (case.key == "K3").then_some("ana");
        assert_eq!(case.owner.as_deref(), routed, "{}", case.key);
        assert!(!case.row.is_empty());
    }
    assert_eq!(with_maps.events().unwrap(), encoded.events().unwrap());
    // The same records again: unchanged either way; a later record updates the case.
    let again = encoded.record_rows(&bare, &rows, &auto, None).unwrap();
    assert!(again.iter().all(|r| r.change == Change::Unchanged));
    let kept = encoded.upsert_rows_in(&bare, &rows, &auto, None).unwrap();
    for (o, input) in kept.iter().zip(&inputs) {
        assert_eq!(o.change, Change::Unchanged);
        assert_eq!(o.case.row, input.row);
    }
    let mut later = bare[0].clone();
    later.date = day + chrono::Duration::days(20);
    let out = encoded
        .upsert_rows_in(
            std::slice::from_ref(&later),
            std::slice::from_ref(&rows[0]),
            &[false],
            None,
        )
        .unwrap();
    assert_eq!(out[0].change, Change::Updated);
    assert_eq!(out[0].case.row, inputs[0].row);
    assert_eq!(encoded.get(&out[0].case.id).unwrap().unwrap(), out[0].case);
    // Columns given twice, or rows that do not match the records: refused, nothing written.
    let events = encoded.events().unwrap().len();
    let err = encoded
        .record_rows(&inputs[..1], &rows[..1], &[false], None)
        .unwrap_err();
    assert!(err.to_string().contains("given twice"), "{err}");
    let err = encoded
        .record_rows(&bare[..2], &rows[..1], &[false, false], None)
        .unwrap_err();
    assert!(
        err.to_string().contains("2 records but 1 encoded rows"),
        "{err}"
    );
    assert_eq!(encoded.events().unwrap().len(), events);
}

/// A stored case keeps its record's fingerprint from one version to the next: the same record
/// must give the same fingerprint, or every unchanged case would be rewritten by the next run.
/// The value is the one this version computes, pinned: a change to how the fields are hashed
/// must keep it (or move stored cases to a new fingerprint kind, as `v2:` did).
#[test]
fn a_records_fingerprint_is_the_one_stored_cases_keep() {
    let day = NaiveDate::from_ymd_opt(2024, 3, 4).unwrap();
    let input = record_with_row("00001|1001", day, 7);
    let encoded = super::EncodedRow::of_map(&input.row).unwrap();
    let mut bare = input.clone();
    bare.row = serde_json::Map::new();
    let with_map = input.fingerprint().unwrap();
    let with_encoded = bare
        .fingerprint_with(super::binary::RowRef::Encoded(&encoded))
        .unwrap();
    assert_eq!(with_map, with_encoded);
    assert_eq!(
        with_map,
        "v2:522b92b95bce8cde7c96bd2c2e86545739b5ca14ee188edb18d86b27e4cd5e84"
    );
}

/// The cases a batch wrote, handed back brief, are the cases the store gives back: reading the
/// profile's outstanding cases knowing them gives what reading them all gives (opened, updated
/// with a later record, proposed for auto-resolution, routed to an owner, rolled through the
/// cycle; unchanged ones and the profile's other cases read from the store).
#[test]
fn the_cases_a_batch_wrote_are_the_outstanding_cases_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let at = chrono::DateTime::parse_from_rfc3339("2024-03-20T09:30:00.123456789Z")
        .unwrap()
        .with_timezone(&chrono::Utc);
    let router = std::sync::Arc::new(
        crate::routing::Router::compile(&[("ana".into(), "Account = 'K23'".into())]).unwrap(),
    );
    let cases = Cases::with_clock(&store, move || at).routed(router);
    let day = NaiveDate::from_ymd_opt(2024, 3, 4).unwrap();
    // Yesterday's file: twenty breaks, all outstanding.
    let first: Vec<BreakInput> = (0..20u32)
        .map(|i| record_with_row(&format!("K{i}"), day, i))
        .collect();
    let (bare, rows): (Vec<BreakInput>, Vec<EncodedRow>) = first.iter().map(split_row).unzip();
    cases
        .record_rows(&bare, &rows, &vec![false; bare.len()], None)
        .unwrap();
    // Today's: ten of them again as they were, five with a later record, and ten new breaks
    // (every third proposed for auto-resolution), rolled through today's cycle.
    let next_day = day.succ_opt().unwrap();
    let mut today: Vec<BreakInput> = first[..10].to_vec();
    for (i, input) in first[10..15].iter().enumerate() {
        let mut later = input.clone();
        later.date = next_day;
        later.difference = 50.0 + i as f64;
        today.push(later);
    }
    today.extend((20..30u32).map(|i| record_with_row(&format!("K{i}"), next_day, i)));
    let auto: Vec<bool> = (0..today.len()).map(|i| i >= 15 && i % 3 == 0).collect();
    let mut cycle = Cycle {
        profile: "gl".into(),
        ..Cycle::default()
    };
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
    for input in &today {
        let d = (input.date - epoch).num_days() as i32;
        cycle.push_day(&input.key, d, true, input.difference, 0.0);
    }
    cycle.seal();
    let (bare, rows): (Vec<BreakInput>, Vec<EncodedRow>) = today.iter().map(split_row).unzip();
    let (recorded, written) = cases
        .record_rows_briefly(&bare, &rows, &auto, Some(&cycle))
        .unwrap();
    let changes: Vec<Change> = recorded.iter().map(|r| r.change).collect();
    assert_eq!(changes[..10], [Change::Unchanged; 10]);
    assert_eq!(changes[10..15], [Change::Updated; 5]);
    assert_eq!(changes[15..], [Change::Created; 10]);
    // Only the cases written come back, brief.
    assert_eq!(written.len(), 15);
    assert!(
        written
            .iter()
            .all(|c| c.row.is_empty() && c.dispatches.is_empty())
    );
    assert!(
        written
            .iter()
            .any(|c| c.status == Status::AutoResolveProposed)
    );
    assert!(written.iter().any(|c| c.owner.as_deref() == Some("ana")));
    let read = cases.outstanding_briefs("gl").unwrap();
    assert_eq!(read.len(), 30);
    assert_eq!(
        cases
            .outstanding_briefs_knowing("gl", written.clone())
            .unwrap(),
        read
    );
    // A known case that is no longer outstanding, or of another profile, is left out as
    // reading would leave it out.
    let mut stale = written.clone();
    stale[0].profile = "other".into();
    let known = cases.outstanding_briefs_knowing("gl", stale).unwrap();
    assert_eq!(known.len(), 29);
    // The same batch through `record_rows`: the same outcomes.
    let again = cases
        .record_rows(&bare, &rows, &auto, Some(&cycle))
        .unwrap();
    assert!(again.iter().all(|r| r.change == Change::Unchanged));
}

/// What a run's roll-forward and summary read of the outstanding cases comes from their markers,
/// and equals what reading the cases gives, whatever changed them (a later record, a decision,
/// a roll-forward). A marker written before the markers carried it, or a damaged one, is read
/// from its case.
#[test]
fn the_outstanding_markers_carry_what_the_roll_forward_reads() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let cases = Cases::new(&store);
    let day = NaiveDate::from_ymd_opt(2024, 3, 4).unwrap();
    let next = day.succ_opt().unwrap();
    let ids: Vec<String> = (0..6)
        .map(|i| {
            cases
                .upsert(&record(&format!("K{i}"), day), false)
                .unwrap()
                .case
                .id
        })
        .collect();
    // K1's break goes on with another difference and bucket; K2 is accepted.
    let mut later = record("K1", next);
    later.start_date = day;
    later.difference = 25.5;
    later.bucket = "Rounding Error".into();
    cases.upsert(&later, false).unwrap();
    cases
        .accept(&ids[2], &Actor::analyst("alice"), None)
        .unwrap();
    // The next day's cycle: K3 back within tolerance (cleared), K4 still out, the rest absent.
    let mut cycle = Cycle {
        profile: "gl".into(),
        ..Cycle::default()
    };
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
    let d = (next - epoch).num_days() as i32;
    cycle.push_day("K3", d, false, 0.0, 0.0);
    cycle.push_day("K4", d, true, 12.0, 1.0);
    cycle.seal();
    let rolled = cases.roll_forward(&cycle).unwrap();
    assert_eq!((rolled.cleared, rolled.persisting), (1, 1));

    type Light = (
        String,
        String,
        String,
        String,
        Status,
        NaiveDate,
        NaiveDate,
        Option<NaiveDate>,
        Option<NaiveDate>,
        f64,
        String,
    );
    let fields = |cs: &[Case]| -> Vec<Light> {
        cs.iter()
            .map(|c| {
                (
                    c.id.clone(),
                    c.ticket.clone(),
                    c.profile.clone(),
                    c.key.clone(),
                    c.status,
                    c.start_date,
                    c.last_date,
                    c.seen_to,
                    c.cleared_on,
                    c.difference,
                    c.bucket.clone(),
                )
            })
            .collect()
    };
    let briefs = cases.outstanding_briefs("gl").unwrap();
    assert_eq!(briefs.len(), 5, "K3 cleared");
    assert!(briefs.iter().any(|c| c.status == Status::Accepted));
    assert!(
        briefs
            .iter()
            .any(|c| c.difference == 25.5 && c.bucket == "Rounding Error")
    );
    assert!(briefs.iter().any(|c| c.key == "K4" && c.last_date == next));
    let light = cases.outstanding_light_knowing("gl", Vec::new()).unwrap();
    assert_eq!(fields(&light), fields(&briefs));
    assert!(
        light.iter().all(|c| c.summary.is_empty()),
        "taken from the markers, no case read"
    );

    // Markers as a store written before held them (the case id alone), a damaged one, and one
    // that describes another case than its key names.
    let marker = |i: usize| outstanding_marker("gl", &format!("K{i}"), &ids[i]);
    let of_k1 = super::binary::light_marker(briefs.iter().find(|c| c.key == "K1").unwrap());
    store
        .case_transaction(|txn| {
            txn.insert(CaseTree::BreakIndex, &marker(0), ids[0].as_bytes())?;
            txn.insert(CaseTree::BreakIndex, &marker(4), &[0xFF, 3, 0, 0])?;
            txn.insert(CaseTree::BreakIndex, &marker(5), &of_k1)?;
            Ok::<(), TxError<CaseError>>(())
        })
        .unwrap();
    let mixed = cases.outstanding_light_knowing("gl", Vec::new()).unwrap();
    assert_eq!(fields(&mixed), fields(&briefs));
    let read: Vec<&str> = mixed
        .iter()
        .filter(|c| !c.summary.is_empty())
        .map(|c| c.key.as_str())
        .collect();
    assert_eq!(read, ["K0", "K4", "K5"], "read from their cases");
    // Every form names its case to a record of the account.
    assert_eq!(cases.outstanding_of("gl", "K0").unwrap(), [ids[0].clone()]);
    assert_eq!(cases.outstanding_of("gl", "K1").unwrap(), [ids[1].clone()]);
}
