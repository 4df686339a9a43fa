//! Property tests over seeded random inputs: the case status machine against its table, the
//! feedback import's all-or-nothing rule, and float round-trips of the model bundle.

use breakdesk::cases::{
    Action, Actor, BreakInput, CaseError, CaseFilter, Cases, Event, EventAction, Role, Status,
};
use breakdesk::detect::contamination::Contamination;
use breakdesk::detect::matrix::Matrix;
use breakdesk::detect::model::{self, DetectorKind, ModelBundle, TrainInput, TrainSpec};
use breakdesk::features::Preset;
use breakdesk::store::Store;
use chrono::NaiveDate;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::HashMap;

fn d(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

fn break_input(key: &str, date: &str) -> BreakInput {
    let mut row = serde_json::Map::new();
    row.insert("Account".into(), serde_json::json!(key));
    BreakInput {
        profile: "gl_ihub".into(),
        key: key.into(),
        start_date: d(date),
        date: d(date),
        bucket: "Timing".into(),
        bucket_rule: "timing_cutoff".into(),
        confidence: 0.75,
        severity: "medium".into(),
        summary: format!("{key}: GL ahead of sub-ledger"),
        score: 0.5,
        rank: 1,
        difference: 250.5,
        model_version: "iforest-v1".into(),
        row,
    }
}

// ---------------------------------------------------------------------------------------------
// The status machine

/// The table, written out here independently of `Status::allowed_actions`: from each status,
/// the actions that are legal and the status each leads to.
fn table(from: Status, action: Action) -> Option<Status> {
    use Action::*;
    use Status::*;
    match (from, action) {
        (PendingReview | Returned, Accept) => Some(Accepted),
        (PendingReview | Returned, Reject) => Some(Rejected),
        (PendingReview | Returned, Propose) => Some(AutoResolveProposed),
        (AutoResolveProposed, Approve) => Some(Approved),
        (AutoResolveProposed, Return) => Some(Returned),
        (Accepted | Rejected | Approved | Cleared, Reopen) => Some(PendingReview),
        (Cleared, Accept) => Some(Accepted),
        (Cleared, Reject) => Some(Rejected),
        _ => None,
    }
}

/// What the table says about `actor` taking `action` with `note` on a case in `status` proposed
/// by `proposer`: the new status, or None when it must be refused.
fn expected(
    status: Status,
    proposer: Option<&str>,
    action: Action,
    actor: &Actor,
    note: Option<&str>,
) -> Option<Status> {
    let to = table(status, action)?;
    let supervisor_only = matches!(action, Action::Approve | Action::Return);
    if supervisor_only && actor.role != Role::Supervisor {
        return None;
    }
    // Maker-checker: the proposer never approves their own proposal.
    if action == Action::Approve && proposer == Some(actor.user.as_str()) {
        return None;
    }
    let needs_note = matches!(action, Action::Reject | Action::Reopen | Action::Return);
    if needs_note && note.is_none_or(|n| n.trim().is_empty()) {
        return None;
    }
    Some(to)
}

/// The model of one case: its status, its proposer, and the last decision (maker, status
/// before, proposer before) while it can be undone.
#[derive(Clone, Debug)]
struct Model {
    status: Status,
    proposer: Option<String>,
    last: Option<(String, Action, Status, Option<String>)>,
}

fn actors() -> Vec<Actor> {
    vec![
        Actor::analyst("alice"),
        Actor::analyst("bob"),
        Actor::supervisor("sam"),
        Actor::supervisor("sue"),
        // The same user name with either role: maker-checker is about the user.
        Actor::supervisor("alice"),
    ]
}

fn random_note(rng: &mut ChaCha8Rng) -> Option<&'static str> {
    *[
        None,
        Some(""),
        Some("   "),
        Some("booked twice"),
        Some("fee"),
    ]
    .choose(rng)
    .unwrap()
}

/// Every decision event of the log is a step of the table; every approval was by a supervisor
/// who did not make the proposal it approved; every reject, return and reopen has its note.
fn check_log(events: &[Event]) {
    let mut proposer: HashMap<&str, Option<&str>> = HashMap::new();
    let mut status: HashMap<&str, Status> = HashMap::new();
    for e in events {
        let action = match e.action {
            EventAction::Create => {
                status.insert(&e.case_id, e.to.unwrap());
                proposer.insert(&e.case_id, None);
                if e.to == Some(Status::AutoResolveProposed) {
                    proposer.insert(&e.case_id, Some(&e.user));
                }
                continue;
            }
            EventAction::Undo => {
                // An undo moves back to the status before the decision it undoes.
                status.insert(&e.case_id, e.to.unwrap());
                continue;
            }
            other => match other.as_str().parse::<Action>() {
                Ok(a) => a,
                Err(_) => continue,
            },
        };
        let from = e.from.expect("a decision event has its status before");
        assert_eq!(
            Some(&from),
            status.get(e.case_id.as_str()),
            "event {} starts from the case's status",
            e.seq
        );
        let to = table(from, action);
        assert!(
            to.is_some() && to == e.to,
            "event {}: {action} from {from} to {:?} is not in the table",
            e.seq,
            e.to
        );
        if matches!(action, Action::Approve | Action::Return) {
            assert_eq!(e.role, Some(Role::Supervisor), "event {}", e.seq);
        }
        if action == Action::Approve {
            assert_ne!(
                proposer.get(e.case_id.as_str()).copied().flatten(),
                Some(e.user.as_str()),
                "event {}: approved by its proposer",
                e.seq
            );
        }
        if matches!(action, Action::Reject | Action::Return | Action::Reopen) {
            assert!(
                e.reason.as_deref().is_some_and(|r| !r.trim().is_empty()),
                "event {}: {action} without a note",
                e.seq
            );
        }
        if action == Action::Propose {
            proposer.insert(&e.case_id, Some(&e.user));
        }
        status.insert(&e.case_id, to.unwrap());
    }
}

#[test]
fn status_machine_follows_its_table_over_random_decisions() {
    let mut legal_steps = 0;
    let mut refused_steps = 0;
    let mut approvals = 0;
    let mut undos = 0;
    for seed in 0..6u64 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let cases = Cases::new(&store);
        // Four cases; the rules propose two of them for auto-resolution at creation.
        let inputs: Vec<BreakInput> = (0..4)
            .map(|i| break_input(&format!("00000|20100{i}|1750|USD"), "2024-05-01"))
            .collect();
        let auto = [false, true, false, true];
        let created = cases.upsert_batch(&inputs, &auto).unwrap();
        let mut ids = Vec::new();
        let mut models = HashMap::new();
        for c in &created {
            let case = &c.case;
            let proposer = (case.status == Status::AutoResolveProposed)
                .then(|| case.proposed_by.clone())
                .flatten();
            models.insert(
                case.id.clone(),
                Model {
                    status: case.status,
                    proposer,
                    last: None,
                },
            );
            ids.push(case.id.clone());
        }
        let people = actors();
        for _ in 0..250 {
            let id = ids.choose(&mut rng).unwrap().clone();
            let actor = people.choose(&mut rng).unwrap();
            let m = models.get(&id).unwrap().clone();
            let before_events = cases.events().unwrap().len();
            if rng.gen_bool(0.12) {
                // Undo: only the maker of the last decision, one level.
                let got = cases.undo_last(&id, actor);
                match (&m.last, got) {
                    (Some((maker, _, from, prev)), Ok(case)) => {
                        assert_eq!(maker, &actor.user, "undone by another user");
                        assert_eq!(case.status, *from);
                        let next = models.get_mut(&id).unwrap();
                        next.status = *from;
                        next.proposer = prev.clone();
                        next.last = None;
                        undos += 1;
                    }
                    (Some((maker, _, _, _)), Err(CaseError::UndoRefused { .. })) => {
                        assert_ne!(maker, &actor.user, "the maker's undo was refused");
                    }
                    (None, Err(CaseError::UndoRefused { .. })) => {}
                    (last, other) => panic!("undo with last {last:?}: {other:?}"),
                }
            } else {
                let action = *Action::ALL.choose(&mut rng).unwrap();
                let note = random_note(&mut rng);
                let want = expected(m.status, m.proposer.as_deref(), action, actor, note);
                match (cases.decide(&id, action, actor, note), want) {
                    (Ok(case), Some(to)) => {
                        assert_eq!(case.status, to);
                        let next = models.get_mut(&id).unwrap();
                        next.last =
                            Some((actor.user.clone(), action, m.status, m.proposer.clone()));
                        if action == Action::Propose {
                            next.proposer = Some(actor.user.clone());
                        }
                        next.status = to;
                        legal_steps += 1;
                        approvals += usize::from(action == Action::Approve);
                    }
                    (Err(e), None) => {
                        // The refusal names the rule that was broken.
                        let ok = match e {
                            CaseError::IllegalTransition {
                                status, action: a, ..
                            } => {
                                status == m.status
                                    && a == action
                                    && table(m.status, action).is_none()
                            }
                            CaseError::NeedsSupervisor { .. } => actor.role == Role::Analyst,
                            CaseError::MakerChecker { .. } => {
                                m.proposer.as_deref() == Some(actor.user.as_str())
                            }
                            CaseError::NoteRequired { .. } => {
                                note.is_none_or(|n| n.trim().is_empty())
                            }
                            ref other => panic!("unexpected refusal: {other}"),
                        };
                        assert!(ok, "{action} by {actor:?} from {}: {e}", m.status);
                        refused_steps += 1;
                    }
                    (got, want) => panic!(
                        "{action} by {actor:?} with {note:?} on a case in {} (proposer {:?}): got {got:?}, the table says {want:?}",
                        m.status, m.proposer
                    ),
                }
            }
            // A refused step writes nothing; the stored case is the model's.
            let stored = cases.get(&id).unwrap().unwrap();
            let now = models.get(&id).unwrap();
            assert_eq!(stored.status, now.status);
            let after_events = cases.events().unwrap().len();
            assert!(after_events == before_events || after_events == before_events + 1);
            if stored.status == Status::AutoResolveProposed {
                assert_eq!(stored.proposed_by, now.proposer);
            }
        }
        // Every stored case is in a status of the table, and the log replays through it.
        for c in cases.list(&CaseFilter::default()).unwrap() {
            assert!(Status::ALL.contains(&c.status));
            assert_eq!(c.status, models[&c.id].status);
        }
        check_log(&cases.events().unwrap());
    }
    // The walk reached both sides of every rule.
    assert!(legal_steps > 100, "{legal_steps} legal steps");
    assert!(refused_steps > 100, "{refused_steps} refused steps");
    assert!(approvals > 5, "{approvals} approvals");
    assert!(undos > 5, "{undos} undos");
}

#[test]
fn the_table_in_the_code_is_the_table_here() {
    for s in Status::ALL {
        for a in Action::ALL {
            assert_eq!(
                s.allowed_actions().contains(&a),
                table(s, a).is_some(),
                "{s} {a}"
            );
            if table(s, a).is_some() {
                assert_eq!(a.target(), table(s, a).unwrap());
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The feedback import

/// Everything a feedback import could change: every case and every event.
fn snapshot(cases: &Cases) -> (String, usize) {
    let all = cases.list(&CaseFilter::default()).unwrap();
    (
        serde_json::to_string(&all).unwrap(),
        cases.events().unwrap().len(),
    )
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

#[test]
fn a_feedback_file_with_one_bad_row_changes_nothing() {
    let mut applied_files = 0;
    for seed in 0..12u64 {
        let mut rng = ChaCha8Rng::seed_from_u64(100 + seed);
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let cases = Cases::new(&store);
        let n = 8;
        let inputs: Vec<BreakInput> = (0..n)
            .map(|i| break_input(&format!("00000|3000{i:02}|1750|USD"), "2024-05-01"))
            .collect();
        // Some cases start proposed (an accept or reject from there is illegal).
        let auto: Vec<bool> = (0..n).map(|i| i == n - 1).collect();
        let created = cases.upsert_batch(&inputs, &auto).unwrap();
        let pending: Vec<&breakdesk::cases::Case> = created
            .iter()
            .map(|c| &c.case)
            .filter(|c| c.status == Status::PendingReview)
            .collect();
        let proposed = &created[n - 1].case;

        // Good rows: a verdict on pending cases, named by id, ticket or profile/key/date.
        let mut good: Vec<String> = Vec::new();
        let k = rng.gen_range(2..pending.len());
        for c in pending.iter().take(k) {
            let accept = rng.gen_bool(0.5);
            let (label, reason) = if accept {
                (*["accept", "1", "TRUE"].choose(&mut rng).unwrap(), "")
            } else {
                (
                    *["reject", "0", "false"].choose(&mut rng).unwrap(),
                    "booked twice, reversed",
                )
            };
            let row = match rng.gen_range(0..3) {
                0 => format!("{},,,,{label},{}", c.id, csv_field(reason)),
                1 => format!("{},,,,{label},{}", c.ticket, csv_field(reason)),
                _ => format!(
                    ",gl_ihub,{},2024-05-01,{label},{}",
                    csv_field(&c.key),
                    csv_field(reason)
                ),
            };
            good.push(row);
        }
        let bad = match rng.gen_range(0..6) {
            0 => "C-000000000000,,,,accept,".to_string(),
            1 => format!("{},,,,maybe,", pending[k].id),
            2 => format!("{},,,,reject,", pending[k].id),
            3 => format!("{},,,,accept,", proposed.id),
            4 => format!(",gl_ihub,{},2024-13-01,accept,", csv_field(&pending[k].key)),
            _ => ",gl_ihub,00000|999999|1750|USD,2024-05-01,accept,".to_string(),
        };
        let header = "case_id,profile,key,date,label,reason";
        let mut rows = good.clone();
        let at = rng.gen_range(0..=rows.len());
        rows.insert(at, bad.clone());
        let text = format!("{header}\n{}\n", rows.join("\n"));

        let before = snapshot(&cases);
        let parsed = breakdesk::feedback_file::parse(&text, "feedback.csv", None).unwrap();
        let who = Actor::analyst("alice");
        match cases.import_feedback(&parsed, &who) {
            Err(CaseError::Feedback(problems)) => {
                // The bad row is named by its line (header = line 1).
                assert_eq!(
                    problems.iter().map(|p| p.line).collect::<Vec<_>>(),
                    vec![at + 2],
                    "{text}"
                );
            }
            other => panic!("a file with the bad row {bad:?} was imported: {other:?}\n{text}"),
        }
        assert_eq!(
            snapshot(&cases),
            before,
            "a refused import changed the store"
        );

        // The same file without its bad row is applied in full.
        let text = format!("{header}\n{}\n", good.join("\n"));
        let parsed = breakdesk::feedback_file::parse(&text, "feedback.csv", None).unwrap();
        let report = cases.import_feedback(&parsed, &who).unwrap();
        assert_eq!(report.applied, good.len());
        assert_ne!(snapshot(&cases), before);
        let decided = cases
            .list(&CaseFilter::default())
            .unwrap()
            .into_iter()
            .filter(|c| matches!(c.status, Status::Accepted | Status::Rejected))
            .count();
        assert_eq!(decided, good.len());
        applied_files += 1;
    }
    assert_eq!(applied_files, 12);
}

// ---------------------------------------------------------------------------------------------
// Model bundle float round-trips

/// A float drawn to exercise the formats: ordinary values across magnitudes, and now and then
/// ±0.0, subnormals, the extremes, and (with `non_finite`) NaN and ±inf.
fn special(rng: &mut ChaCha8Rng, non_finite: bool) -> f64 {
    match rng.gen_range(0..40) {
        0 if non_finite => f64::NAN,
        1 if non_finite => f64::INFINITY,
        2 if non_finite => f64::NEG_INFINITY,
        3 => -0.0,
        4 => 0.0,
        5 => f64::MIN_POSITIVE / 3.0,
        6 => -5e-324,
        7 => 1e300,
        8 => -1e300,
        9 => f64::EPSILON,
        _ => {
            let v: f64 = rng.r#gen::<f64>() - 0.5;
            v * 10f64.powi(rng.gen_range(-8..9))
        }
    }
}

/// Scores of the same rows by two bundles: both refused with the same message, or the same
/// bits throughout.
fn same_scores(
    a: Result<model::Scored, model::ModelError>,
    b: Result<model::Scored, model::ModelError>,
) -> bool {
    match (a, b) {
        (Ok(a), Ok(b)) => {
            same_bits(&a.score, &b.score)
                && same_bits(&a.model, &b.model)
                && same_bits(&a.decision, &b.decision)
                && a.flag == b.flag
                && a.cluster == b.cluster
                && a.attributions.len() == b.attributions.len()
                && a.attributions
                    .iter()
                    .zip(&b.attributions)
                    .all(|(p, q)| same_bits(p, q))
        }
        (Err(a), Err(b)) => a.to_string() == b.to_string(),
        _ => false,
    }
}

fn same_bits(a: &[f64], b: &[f64]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()))
}

fn spec(detector: DetectorKind, contamination: Contamination, seed: u64) -> TrainSpec {
    let cfg = breakdesk::wiring::run::settings(&breakdesk::config::Config::defaults()).unwrap();
    let mut s =
        breakdesk::pipeline::train_spec(&cfg, &breakdesk::pipeline::DetectOptions::default());
    s.detector = detector;
    s.contamination = contamination;
    s.seed = seed;
    s.iforest.n_estimators = 25;
    s
}

#[test]
fn model_bundles_round_trip_bit_for_bit_with_special_floats() {
    let mut trained = 0;
    let mut with_special = 0;
    for seed in 0..24u64 {
        let mut rng = ChaCha8Rng::seed_from_u64(1000 + seed);
        let rows = rng.gen_range(12..120);
        let cols = rng.gen_range(1..6);
        // Training rows: ordinary values with some specials (missing features are NaN).
        let p_special = [0.0, 0.02, 0.1][seed as usize % 3];
        let mut data = Vec::with_capacity(rows * cols);
        for _ in 0..rows * cols {
            // The detectors refuse NaN and infinities (features are finite by then); the
            // finite extremes, -0.0 and subnormals reach them.
            data.push(if rng.gen_bool(p_special) {
                special(&mut rng, false)
            } else {
                rng.r#gen::<f64>() * 100.0 - 50.0
            });
        }
        let x = Matrix::new(rows, cols, data).unwrap();
        let diff: Vec<f64> = (0..rows).map(|_| special(&mut rng, true)).collect();
        let names: Vec<String> = (0..cols).map(|j| format!("f_log_abs_{j}")).collect();
        let detector = if seed % 2 == 0 {
            DetectorKind::IForest
        } else {
            DetectorKind::Lof
        };
        let contamination = [
            Contamination::Auto,
            Contamination::Fixed(0.05),
            Contamination::Mad,
            Contamination::Estimate,
        ][(seed / 2) as usize % 4];
        let keys: Vec<String> = (0..rows).map(|i| format!("k{}", i % 7)).collect();
        let key_refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        let input = TrainInput {
            profile: "gl_ihub",
            preset: Preset::Seed,
            feature_names: &names,
            encoders: &[],
            x: (&x).into(),
            difference: &diff,
            extra_normal: None,
            candidates: None,
            keys: &key_refs,
        };
        let Ok((bundle, _)) = model::train(&input, &spec(detector, contamination, seed)) else {
            continue;
        };
        trained += 1;
        let bytes = bundle.to_json();
        let loaded = ModelBundle::from_json(&bytes)
            .unwrap_or_else(|e| panic!("seed {seed}: the saved bundle does not load: {e}"));
        // Saved again, the bundle is the same bytes: no float moved.
        assert_eq!(
            String::from_utf8_lossy(&loaded.to_json()),
            String::from_utf8_lossy(&bytes),
            "seed {seed}"
        );
        assert!(same_bits(&[bundle.offset], &[loaded.offset]));
        assert!(same_bits(
            &bundle.contamination_value.into_iter().collect::<Vec<_>>(),
            &loaded.contamination_value.into_iter().collect::<Vec<_>>()
        ));
        // Rows to score: the training rows, fresh ones with finite specials, and fresh ones with
        // NaN and infinities as well (refused alike by both).
        let m = 40;
        let finite: Vec<f64> = (0..m * cols).map(|_| special(&mut rng, false)).collect();
        let any: Vec<f64> = (0..m * cols).map(|_| special(&mut rng, true)).collect();
        let finite = Matrix::new(m, cols, finite).unwrap();
        let any = Matrix::new(m, cols, any).unwrap();
        for xs in [&x, &finite, &any] {
            let (a, b) = (bundle.score(xs, None, true), loaded.score(xs, None, true));
            assert!(
                a.is_ok() || !std::ptr::eq(xs, &x),
                "seed {seed}: training rows refused"
            );
            let msg = format!(
                "{:?}\n{:?}",
                a.as_ref().map(|s| &s.score),
                b.as_ref().map(|s| &s.score)
            );
            assert!(same_scores(a, b), "seed {seed}: scores moved {msg}");
        }
        if p_special > 0.0 {
            with_special += 1;
        }
    }
    eprintln!("{trained} trained, {with_special} with special floats");
    assert!(trained >= 18, "{trained} of 24 bundles trained");
    assert!(
        with_special >= 10,
        "{with_special} bundles trained on special floats"
    );
}

/// Parameters a bundle may carry whatever the training data: the scaler's centre and scale and
/// the offset set to NaN, infinities, -0.0 and subnormals still round-trip bit for bit.
#[test]
fn special_parameters_round_trip_in_a_saved_bundle() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let x = Matrix::new(30, 2, (0..60).map(|_| rng.r#gen::<f64>() * 10.0).collect()).unwrap();
    let names = vec!["f_log_abs_a".to_string(), "f_num_b".to_string()];
    let diff = vec![1.0; 30];
    let (bundle, _) = model::train(
        &TrainInput {
            profile: "gl_ihub",
            preset: Preset::Seed,
            feature_names: &names,
            encoders: &[],
            x: (&x).into(),
            difference: &diff,
            extra_normal: None,
            candidates: None,
            keys: &[],
        },
        &spec(DetectorKind::Lof, Contamination::Auto, 7),
    )
    .unwrap();
    let mut json: serde_json::Value = serde_json::from_slice(&bundle.to_json()).unwrap();
    let specials = [
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        -0.0,
        5e-324,
        -2.2250738585072e-308,
        f64::MAX,
    ];
    for (i, v) in specials.iter().enumerate() {
        // The exact format writes floats as strings (`{:?}`): NaN, inf, -0.0, 5e-324.
        json["offset"] = serde_json::json!(format!("{v:?}"));
        let bytes = serde_json::to_vec(&json).unwrap();
        let b = ModelBundle::from_json(&bytes).unwrap();
        assert!(same_bits(&[b.offset], &[*v]), "{v:?}");
        let again = ModelBundle::from_json(&b.to_json()).unwrap();
        assert!(same_bits(&[again.offset], &[*v]), "{v:?}");
        let probe = Matrix::new(2, 2, vec![-0.0, 5e-324, x.row(i)[0], x.row(i)[1]]).unwrap();
        let (s1, s2) = (b.score(&probe, None, true), again.score(&probe, None, true));
        assert!(s1.is_ok(), "{v:?}");
        assert!(same_scores(s1, s2), "{v:?}");
    }
}

/// The features' matrix scaled as it is built has the bits of the scaler's transform of the
/// matrix (the scoring of a saved model's rows takes the first for the second).
#[test]
fn the_matrix_scaled_as_it_is_built_is_the_scalers_transform_of_the_matrix() {
    use polars::prelude::*;
    let df = df!(
        "f_a" => [1.5, -2.0, 7.25, 0.1, 3.0],
        "f_b" => [Some(10.0), None, Some(-3.0), Some(0.0), Some(1e12)],
        "f_c" => [4i64, 4, 4, 4, 5],
    )
    .unwrap();
    let names: Vec<String> = ["f_a", "f_b", "f_c"].map(String::from).to_vec();
    let x = breakdesk::features::matrix(&df, &names).unwrap();
    let scaler = breakdesk::detect::scaler::RobustScaler::fit(&x);
    let expected = scaler.transform(&x).unwrap();
    let scaled =
        breakdesk::features::matrix_scaled(&df, &names, &scaler.center, &scaler.scale).unwrap();
    let bits = |m: &Matrix| m.data().iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&scaled), bits(&expected));
    assert!(scaled.data()[4].is_nan(), "a missing value stays missing");
    assert!(
        breakdesk::features::matrix_scaled(&df, &names, &scaler.center[..2], &scaler.scale)
            .is_err()
    );
}
