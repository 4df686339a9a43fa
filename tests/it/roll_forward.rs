//! Breaks roll forward from one reconciliation cycle to the next: on real stores in temporary
//! directories (clearing, decisions kept, reappearance, recertification, breaks-only reports),
//! and through the real binary on three consecutive generated daily files.

use crate::support::common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use breakdesk::cases::{
    Actor, BreakInput, Case, Cases, Change, Cycle, CycleRecord, EventAction, RollParams, Status,
};
use breakdesk::store::Store;
use chrono::NaiveDate;

fn d(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

/// A flagged record of `key` in the break that began on `start`, seen on `date`.
fn rec(key: &str, start: &str, date: &str, difference: f64) -> BreakInput {
    BreakInput {
        profile: "gl_ihub".into(),
        key: key.into(),
        start_date: d(start),
        date: d(date),
        bucket: "Timing Issue".into(),
        bucket_rule: "timing".into(),
        confidence: 0.8,
        severity: "Medium".into(),
        summary: format!("{key} out by {difference}"),
        score: -0.3,
        rank: 1,
        difference,
        model_version: "test".into(),
        row: serde_json::Map::new(),
    }
}

/// A cycle of `profile` on `dates` with each key's records (date, out of tolerance, difference,
/// start).
fn cycle(dates: &[&str], records: &[(&str, &str, bool, f64, &str)]) -> Cycle {
    let mut by: HashMap<String, Vec<CycleRecord>> = HashMap::new();
    for (key, date, out, difference, start) in records {
        by.entry(key.to_string()).or_default().push(CycleRecord {
            date: d(date),
            out: *out,
            difference: *difference,
            start: d(start),
        });
    }
    Cycle {
        profile: "gl_ihub".into(),
        records: by,
        dates: dates.iter().map(|s| d(s)).collect(),
        absent_clears: false,
        opened: HashSet::new(),
        keyed: false,
    }
}

/// The cases of `store`, a cleared break back within 5 days reopening its case.
fn reopening(store: &Store) -> Cases<'_> {
    Cases::new(store).rolling(RollParams {
        reopen_days: 5,
        recertify_share: 0.1,
        ..RollParams::default()
    })
}

/// Opens the case of account A's break of 2024-03-01 and clears it on the 4th (back within
/// tolerance); returns the case as opened.
fn a_break_cleared_on_the_4th(cases: &Cases<'_>) -> Case {
    let opened = cases
        .upsert(&rec("A", "2024-03-01", "2024-03-01", 100.0), false)
        .unwrap()
        .case;
    cases
        .roll_forward(&cycle(
            &["2024-03-04"],
            &[("A", "2024-03-04", false, 0.0, "2024-03-04")],
        ))
        .unwrap();
    opened
}

fn events_of(cases: &Cases<'_>, id: &str) -> Vec<EventAction> {
    cases
        .events_for(id)
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect()
}

#[test]
fn an_undecided_break_back_within_tolerance_is_cleared_and_a_decided_one_keeps_its_decision() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let cases = Cases::new(&store);
    let open = cases
        .upsert(&rec("A", "2024-03-01", "2024-03-01", 100.0), false)
        .unwrap()
        .case;
    let decided = cases
        .upsert(&rec("B", "2024-03-01", "2024-03-01", 50.0), false)
        .unwrap()
        .case;
    let absent = cases
        .upsert(&rec("C", "2024-03-01", "2024-03-01", 70.0), false)
        .unwrap()
        .case;
    cases
        .accept(&decided.ticket, &Actor::analyst("ana"), None)
        .unwrap();

    let next = cycle(
        &["2024-03-04"],
        &[
            ("A", "2024-03-04", false, 0.0, "2024-03-04"),
            ("B", "2024-03-04", false, 0.0, "2024-03-04"),
        ],
    );
    let out = cases.roll_forward(&next).unwrap();
    assert_eq!(out.cleared, 2, "{out:?}");
    assert_eq!(out.absent, 1, "{out:?}");
    assert_eq!(out.persisting, 0, "{out:?}");

    let a = cases.get(&open.id).unwrap().unwrap();
    assert_eq!(a.status, Status::Cleared);
    assert_eq!(a.cleared_on, Some(d("2024-03-04")));
    let cleared = cases.events_for(&open.id).unwrap();
    let last = cleared.last().unwrap();
    assert_eq!(last.action, EventAction::Cleared);
    assert_eq!(last.from, Some(Status::PendingReview));
    assert_eq!(last.to, Some(Status::Cleared));
    let record = last.record.as_ref().expect("the clearing record");
    assert_eq!(record["date"], "2024-03-04");
    assert_eq!(record["within_tolerance"], true);

    let b = cases.get(&decided.id).unwrap().unwrap();
    assert_eq!(b.status, Status::Accepted, "the decision is kept");
    assert_eq!(b.cleared_on, Some(d("2024-03-04")));
    assert_eq!(
        events_of(&cases, &decided.id).last(),
        Some(&EventAction::Cleared)
    );
    assert!(
        cases
            .labels()
            .unwrap()
            .iter()
            .any(|l| l.case_id == decided.id && l.label),
        "a cleared accepted break is still a true break for training"
    );

    let c = cases.get(&absent.id).unwrap().unwrap();
    assert_eq!(
        c, absent,
        "an account missing from the file changes nothing"
    );

    // The same cycle again changes nothing more.
    let again = cases.roll_forward(&next).unwrap();
    assert_eq!(again.cleared, 0);
    assert_eq!(cases.get(&open.id).unwrap().unwrap(), a);

    // Reopened by hand, a cleared case is outstanding again (for the next cycle to judge).
    let ana = Actor::analyst("ana");
    let back = cases
        .reopen(&b.ticket, &ana, "the fix was reversed")
        .unwrap();
    assert_eq!(back.status, Status::PendingReview);
    assert!(back.outstanding(), "{back:?}");
    assert!(
        cases
            .outstanding_of("gl_ihub", "B")
            .unwrap()
            .contains(&decided.id)
    );
    let back = cases.accept(&back.ticket, &ana, None).unwrap();
    cases
        .roll_forward(&cycle(
            &["2024-03-05"],
            &[("B", "2024-03-05", false, 0.0, "2024-03-05")],
        ))
        .unwrap();
    assert_eq!(
        cases.get(&back.id).unwrap().unwrap().cleared_on,
        Some(d("2024-03-05"))
    );
}

#[test]
fn a_persisting_break_takes_the_latest_date_and_difference_and_an_older_file_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let cases = Cases::new(&store);
    let c = cases
        .upsert(&rec("A", "2024-03-01", "2024-03-01", 100.0), false)
        .unwrap()
        .case;
    let older = cycle(
        &["2024-02-29"],
        &[("A", "2024-02-29", false, 0.0, "2024-02-29")],
    );
    assert_eq!(cases.roll_forward(&older).unwrap().cleared, 0);
    assert_eq!(cases.get(&c.id).unwrap().unwrap(), c);

    let next = cycle(
        &["2024-03-04", "2024-03-05"],
        &[
            ("A", "2024-03-04", true, 120.0, "2024-03-01"),
            ("A", "2024-03-05", true, 130.0, "2024-03-01"),
        ],
    );
    let out = cases.roll_forward(&next).unwrap();
    assert_eq!(out.persisting, 1, "{out:?}");
    let now = cases.get(&c.id).unwrap().unwrap();
    assert_eq!(now.status, Status::PendingReview);
    assert_eq!(now.last_date, d("2024-03-05"));
    assert_eq!(now.age_days(), 4);
    assert_eq!(now.difference, 130.0);
    assert_eq!(now.first_difference, Some(100.0));
    assert!(now.cleared_on.is_none());
}

#[test]
fn a_cleared_break_back_within_reopen_days_reopens_its_case_and_later_opens_a_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let cases = reopening(&store);
    let first = a_break_cleared_on_the_4th(&cases);
    // Back on the 6th (two days after clearing): the same case, under review again.
    let back = cases
        .upsert(&rec("A", "2024-03-06", "2024-03-06", 90.0), false)
        .unwrap();
    assert_eq!(back.change, Change::Reappeared);
    assert_eq!(back.case.id, first.id);
    assert_eq!(back.case.ticket, first.ticket);
    assert_eq!(back.case.status, Status::PendingReview);
    assert_eq!(back.case.start_date, d("2024-03-06"));
    assert!(back.case.cleared_on.is_none());
    assert_eq!(
        events_of(&cases, &first.id),
        [
            EventAction::Create,
            EventAction::Cleared,
            EventAction::Reappeared
        ]
    );
    // Its next record finds the same case (the new start is joined to it).
    let more = cases
        .upsert(&rec("A", "2024-03-06", "2024-03-07", 95.0), false)
        .unwrap();
    assert_eq!(more.change, Change::Updated);
    assert_eq!(more.case.id, first.id);
    assert_eq!(
        cases
            .find_break("gl_ihub", "A", d("2024-03-07"))
            .unwrap()
            .len(),
        1
    );

    // Cleared again on the 8th; back on the 20th, past reopen_days: a new case.
    cases
        .roll_forward(&cycle(
            &["2024-03-08"],
            &[("A", "2024-03-08", false, 0.0, "2024-03-08")],
        ))
        .unwrap();
    let late = cases
        .upsert(&rec("A", "2024-03-20", "2024-03-20", 90.0), false)
        .unwrap();
    assert_eq!(late.change, Change::Created);
    assert_ne!(late.case.id, first.id);
    assert_eq!(
        cases.get(&first.id).unwrap().unwrap().status,
        Status::Cleared,
        "the old case stays cleared"
    );
}

#[test]
fn a_decided_case_whose_difference_moves_goes_back_to_review() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let cases = Cases::new(&store);
    let ana = Actor::analyst("ana");
    let rejected = cases
        .upsert(&rec("R", "2024-03-01", "2024-03-01", 1000.0), false)
        .unwrap()
        .case;
    cases
        .reject(&rejected.ticket, &ana, "known standing item")
        .unwrap();
    let flipped = cases
        .upsert(&rec("S", "2024-03-01", "2024-03-01", 500.0), false)
        .unwrap()
        .case;
    cases.accept(&flipped.ticket, &ana, None).unwrap();

    // Within 10%: quiet. Then 25% more: back to review, saying why.
    let near = cases
        .upsert(&rec("R", "2024-03-01", "2024-03-04", 1050.0), false)
        .unwrap();
    assert_eq!(near.change, Change::Updated);
    assert_eq!(near.case.status, Status::Rejected);
    let moved = cases
        .upsert(&rec("R", "2024-03-01", "2024-03-05", 1250.0), false)
        .unwrap();
    assert_eq!(moved.change, Change::Recertified);
    assert_eq!(moved.case.status, Status::PendingReview);
    let ev = cases.events_for(&rejected.id).unwrap();
    let last = ev.last().unwrap();
    assert_eq!(last.action, EventAction::Recertified);
    assert_eq!(last.from, Some(Status::Rejected));
    let why = last.reason.as_deref().unwrap();
    assert!(why.contains("1,000 ") && why.contains("1,250 "), "{why}");
    assert!(why.contains("+25.0%"), "{why}");
    assert!(
        !cases
            .labels()
            .unwrap()
            .iter()
            .any(|l| l.case_id == rejected.id),
        "under review again: no label until decided again"
    );

    // A sign change through the roll-forward (the record was not flagged) is recertified too.
    let out = cases
        .roll_forward(&cycle(
            &["2024-03-04"],
            &[("S", "2024-03-04", true, -20.0, "2024-03-01")],
        ))
        .unwrap();
    assert_eq!(out.recertified, 1, "{out:?}");
    let s = cases.get(&flipped.id).unwrap().unwrap();
    assert_eq!(s.status, Status::PendingReview);
    let why = cases.events_for(&flipped.id).unwrap();
    assert!(
        why.last()
            .unwrap()
            .reason
            .as_deref()
            .unwrap()
            .contains("changed sign")
    );
}

#[test]
fn in_a_breaks_only_report_a_record_that_drops_out_has_cleared() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let cases = Cases::new(&store);
    let gone = cases
        .upsert(&rec("T1", "2024-03-01", "2024-03-01", 10.0), false)
        .unwrap()
        .case;
    let stays = cases
        .upsert(&rec("T2", "2024-03-01", "2024-03-01", 10.0), false)
        .unwrap()
        .case;
    let mut c = cycle(
        &["2024-03-04"],
        &[("T2", "2024-03-04", true, 10.0, "2024-03-01")],
    );
    c.absent_clears = true;
    let out = cases.roll_forward(&c).unwrap();
    assert_eq!((out.cleared, out.persisting), (1, 1), "{out:?}");
    let g = cases.get(&gone.id).unwrap().unwrap();
    assert_eq!(g.status, Status::Cleared);
    assert_eq!(g.cleared_on, Some(d("2024-03-04")));
    let ev = cases.events_for(&gone.id).unwrap();
    assert_eq!(
        ev.last().unwrap().record.as_ref().unwrap()["dropped_out"],
        true
    );
    assert!(cases.get(&stays.id).unwrap().unwrap().cleared_on.is_none());
}

// ---------------------------------------------------------------------------------------------
// Through the binary: three consecutive daily files.

/// Each account's days in the generated file: date → (Match Status is Break, difference).
type Days = BTreeMap<String, BTreeMap<NaiveDate, bool>>;

fn account_days(path: &Path) -> Days {
    let (h, rows) = common::read_csv(path);
    let col = |n: &str| h.iter().position(|c| c == n).unwrap();
    let (date, status) = (col("As of Date"), col("Match Status"));
    let key_cols = [col("Company"), col("Account"), col("AU"), col("Currency")];
    let mut out = Days::new();
    for r in rows {
        let key = key_cols
            .iter()
            .map(|i| r[*i].as_str())
            .collect::<Vec<_>>()
            .join("|");
        out.entry(key)
            .or_default()
            .insert(d(&r[date]), r[status] == "Break");
    }
    out
}

/// The first day of the run of breaks that includes `day` for an account.
fn run_start(days: &BTreeMap<NaiveDate, bool>, day: NaiveDate) -> NaiveDate {
    let mut start = day;
    for (d, brk) in days.range(..=day).rev() {
        if !brk {
            break;
        }
        start = *d;
    }
    start
}

fn write_csv(path: &Path, header: &[String], rows: &[&Vec<String>]) {
    let field = |f: &String| {
        if f.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", f.replace('"', "\"\""))
        } else {
            f.clone()
        }
    };
    let line = |r: &[String]| r.iter().map(field).collect::<Vec<_>>().join(",");
    let mut text = line(header) + "\n";
    for r in rows {
        text.push_str(&line(r));
        text.push('\n');
    }
    std::fs::write(path, text).unwrap();
}

fn list_cases(dir: &Path) -> Vec<Case> {
    let (code, out, err) = common::bd(dir, &["cases", "list", "--format", "jsonl"]);
    assert_eq!(code, 0, "{err}");
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn three_daily_files_roll_breaks_forward_clear_them_the_day_they_clear_and_age_them() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let p = |name: &str| dir.join(name).display().to_string();
    common::ok(
        dir,
        &[
            "generate",
            "--rows",
            "20000",
            "--seed",
            "11",
            "--out",
            &p("all.csv"),
            "--labels",
            &p("labels.csv"),
        ],
    );
    let (header, rows) = common::read_csv(&dir.join("all.csv"));
    let di = header.iter().position(|c| c == "As of Date").unwrap();
    let mut dates: Vec<String> = rows.iter().map(|r| r[di].clone()).collect();
    dates.sort();
    dates.dedup();
    let days3: Vec<String> = dates[dates.len() - 3..].to_vec();
    let accounts = account_days(&dir.join("all.csv"));

    // The labelled episodes: per account, the dates of its labelled rows.
    let (lh, labels) = common::read_csv(&dir.join("labels.csv"));
    let (li, gi) = (
        lh.iter().position(|c| c == "row").unwrap(),
        lh.iter().position(|c| c == "group").unwrap(),
    );
    let mut labelled: HashMap<String, HashSet<NaiveDate>> = HashMap::new();
    for l in &labels {
        let row: usize = l[li].parse().unwrap();
        labelled
            .entry(l[gi].clone())
            .or_default()
            .insert(d(&rows[row - 2][di]));
    }

    let mut before: HashMap<String, Case> = HashMap::new();
    let (mut cleared_seen, mut persisting_seen, mut labelled_aged) = (0, 0, 0);
    for (k, day) in days3.iter().enumerate() {
        let hist: Vec<&Vec<String>> = rows.iter().filter(|r| r[di] < *day).collect();
        let cur: Vec<&Vec<String>> = rows.iter().filter(|r| r[di] == *day).collect();
        write_csv(&dir.join(format!("hist{k}.csv")), &header, &hist);
        write_csv(&dir.join(format!("day{k}.csv")), &header, &cur);
        let (code, _, err) = common::bd(
            dir,
            &[
                "run",
                &p(&format!("day{k}.csv")),
                "--history",
                &p(&format!("hist{k}.csv")),
                "--out",
                &p(&format!("out{k}.csv")),
            ],
        );
        assert_eq!(code, 0, "{err}");
        assert!(err.contains("cases: "), "the run summary: {err}");
        let today = d(day);
        let now = list_cases(dir);
        assert!(!now.is_empty());
        for c in &now {
            let acct = &accounts[&c.key];
            let is_break = acct.get(&today).copied();
            let was = before.get(&c.id);
            let was_outstanding = was.is_some_and(|w| w.cleared_on.is_none());
            match is_break {
                Some(true) if c.cleared_on.is_none() => {
                    // Persisting (or new today): dated today, aged from its run's first day.
                    assert_eq!(c.last_date, today, "{} on {day}", c.key);
                    assert_eq!(c.start_date, run_start(acct, today), "{} on {day}", c.key);
                    if was_outstanding {
                        persisting_seen += 1;
                    }
                    if let Some(ds) = labelled.get(&c.key)
                        && ds.contains(&today)
                    {
                        // The labelled episode (its labelled days up to today, consecutive
                        // business days of the account) began when the case's break began.
                        let days: Vec<NaiveDate> = acct.keys().copied().collect();
                        let mut i = days.iter().position(|x| *x == today).unwrap();
                        while i > 0 && ds.contains(&days[i - 1]) {
                            i -= 1;
                        }
                        assert_eq!(
                            days[i], c.start_date,
                            "{}: labelled from {}, case from {}",
                            c.key, days[i], c.start_date
                        );
                        assert_eq!(c.age_days(), (today - c.start_date).num_days(), "{}", c.key);
                        labelled_aged += 1;
                    }
                }
                Some(false) if was_outstanding => {
                    // Back within tolerance today: cleared today, by itself.
                    assert_eq!(c.cleared_on, Some(today), "{} on {day}: {c:?}", c.key);
                    if was.unwrap().status.is_open() {
                        assert_eq!(c.status, Status::Cleared);
                    }
                    cleared_seen += 1;
                }
                _ => {}
            }
            if let Some(w) = was
                && w.cleared_on.is_some()
            {
                // Nothing reopens unless its account is in break again today.
                if c.cleared_on.is_none() {
                    assert_eq!(is_break, Some(true), "{} reopened on {day}", c.key);
                }
            }
        }
        before = now.into_iter().map(|c| (c.id.clone(), c)).collect();
    }
    eprintln!("{persisting_seen} persisting, {cleared_seen} cleared, {labelled_aged} labelled");
    assert!(cleared_seen > 0, "no break cleared over three days");
    assert!(persisting_seen > 0, "no break persisted over three days");
    assert!(labelled_aged > 0, "no labelled episode was checked");

    // Every cleared case says so in the audit trail, with the clearing record.
    let (code, audit, err) = common::bd(dir, &["audit", "--format", "jsonl"]);
    assert_eq!(code, 0, "{err}");
    let cleared_events = audit
        .lines()
        .filter(|l| l.contains("\"action\":\"cleared\""))
        .count();
    assert_eq!(cleared_events, cleared_seen);
}

#[test]
fn the_cycle_that_opens_a_case_leaves_it_open_and_only_newer_records_clear_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let cases = Cases::new(&store);
    // A file of three days: flagged on the 1st, back within tolerance on the 4th.
    let c = cases
        .upsert(&rec("A", "2024-03-01", "2024-03-01", 100.0), false)
        .unwrap()
        .case;
    let mut file = cycle(
        &["2024-03-01", "2024-03-04", "2024-03-05"],
        &[
            ("A", "2024-03-01", true, 100.0, "2024-03-01"),
            ("A", "2024-03-04", false, 0.0, "2024-03-04"),
            ("A", "2024-03-05", false, 0.0, "2024-03-05"),
        ],
    );
    file.opened.insert(c.id.clone());
    let out = cases.roll_forward(&file).unwrap();
    assert_eq!((out.cleared, out.persisting), (0, 0), "{out:?}");
    let now = cases.get(&c.id).unwrap().unwrap();
    assert_eq!(
        now.status,
        Status::PendingReview,
        "new cases stay reviewable"
    );
    assert_eq!(now.seen_to, Some(d("2024-03-05")));
    // The same file again (no longer the cycle that opened it): nothing newer, nothing changes.
    file.opened.clear();
    assert_eq!(cases.roll_forward(&file).unwrap().cleared, 0);
    assert_eq!(cases.get(&c.id).unwrap().unwrap(), now);
    // The next day's file clears it.
    let next = cycle(
        &["2024-03-06"],
        &[("A", "2024-03-06", false, 0.0, "2024-03-06")],
    );
    assert_eq!(cases.roll_forward(&next).unwrap().cleared, 1);
    let done = cases.get(&c.id).unwrap().unwrap();
    assert_eq!(done.status, Status::Cleared);
    assert_eq!(done.cleared_on, Some(d("2024-03-06")));
}

#[test]
fn outstanding_markers_follow_every_write_and_an_older_store_is_indexed_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let cases = Cases::new(&store);
    let a = cases
        .upsert(&rec("A", "2024-03-01", "2024-03-01", 10.0), false)
        .unwrap()
        .case;
    let b = cases
        .upsert(&rec("A", "2024-03-10", "2024-03-10", 20.0), false)
        .unwrap()
        .case;
    let mut both = cases.outstanding_of("gl_ihub", "A").unwrap();
    both.sort();
    let mut want = vec![a.id.clone(), b.id.clone()];
    want.sort();
    assert_eq!(both, want);
    assert!(cases.outstanding_of("gl_ihub", "B").unwrap().is_empty());
    // Clearing removes the marker; the break index still finds the case by date.
    cases
        .roll_forward(&cycle(
            &["2024-03-11"],
            &[("A", "2024-03-11", false, 0.0, "2024-03-11")],
        ))
        .unwrap();
    assert!(cases.outstanding_of("gl_ihub", "A").unwrap().is_empty());
    assert_eq!(
        cases
            .find_break("gl_ihub", "A", d("2024-03-10"))
            .unwrap()
            .len(),
        1
    );
    // A new case has its marker as it is written; a store created by this build has nothing
    // to index (stores written before the markers existed: see the unit tests in src/cases/tests.rs).
    let c = cases
        .upsert(&rec("C", "2024-03-01", "2024-03-01", 5.0), false)
        .unwrap()
        .case;
    assert_eq!(
        cases.outstanding_of("gl_ihub", "C").unwrap(),
        std::slice::from_ref(&c.id)
    );
    assert_eq!(cases.index_outstanding().unwrap(), 0, "nothing to index");
}

#[test]
fn a_break_back_beside_an_outstanding_case_of_its_account_reopens_the_cleared_one() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let cases = reopening(&store);
    let cleared = a_break_cleared_on_the_4th(&cases);
    // A break of the account that began before the clearing: a case of its own, outstanding.
    let open = cases
        .upsert(&rec("A", "2024-03-02", "2024-03-03", 40.0), false)
        .unwrap();
    assert_eq!(open.change, Change::Created);
    assert!(open.case.outstanding());
    // A break from the 6th: the cleared case comes back; the outstanding one is left as it is.
    let back = cases
        .record_batch(
            &[rec("A", "2024-03-06", "2024-03-06", 90.0)],
            &[false],
            None,
        )
        .unwrap();
    assert_eq!(back[0].change, Change::Reappeared);
    assert_eq!(back[0].id, cleared.id);
    let still = cases.get(&open.case.id).unwrap().unwrap();
    assert_eq!(still, open.case);
}
