//! End-to-end detection through the real binary: scoring, ranking, clusters, the saved model
//! bundle (reuse, retrain on change, forced retrain, export), the store lock, and the quality
//! floor on generated labelled data.

use crate::support::common;

use assert_cmd::Command;
use common::{column as col, read_csv};
use std::path::{Path, PathBuf};

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run_in(data: &Path, args: &[&str]) -> Out {
    let home = data.join("home");
    let o = Command::cargo_bin("breakdesk")
        .expect("binary builds")
        .env("HOME", &home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .args(["--data-dir", data.to_str().unwrap()])
        .args(args)
        .timeout(std::time::Duration::from_secs(300))
        .output()
        .expect("runs");
    Out {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).to_string(),
        stderr: String::from_utf8_lossy(&o.stderr).to_string(),
    }
}

fn sample(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("assets/samples")
        .join(name)
        .display()
        .to_string()
}

#[test]
fn run_scores_ranks_clusters_and_reuses_the_saved_model() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = d.join("anomalies.csv");
    let cur = sample("gl_ihub_current.csv");
    let hist = sample("gl_ihub_history.csv");
    let args = [
        "run",
        cur.as_str(),
        "--history",
        hist.as_str(),
        "--out",
        out.to_str().unwrap(),
    ];
    let o = run_in(d, &args);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(
        o.stderr.contains("trained (no saved model)"),
        "{}",
        o.stderr
    );
    let (h, rows) = read_csv(&out);
    assert!(!rows.is_empty(), "some anomalies are flagged");
    assert!(rows.len() < 1000, "not every row is an anomaly");
    assert!(col(&h, &rows, "is_anomaly").iter().all(|f| *f == "true"));
    let ranks: Vec<usize> = col(&h, &rows, "rank")
        .iter()
        .map(|r| r.parse().unwrap())
        .collect();
    assert!(ranks.windows(2).all(|w| w[0] < w[1]), "sorted by rank");
    assert_eq!(ranks[0], 1);
    let scores: Vec<f64> = col(&h, &rows, "score")
        .iter()
        .map(|r| r.parse().unwrap())
        .collect();
    assert!(
        scores.windows(2).all(|w| w[0] <= w[1]),
        "lowest score first"
    );
    assert!(
        col(&h, &rows, "decision")
            .iter()
            .all(|d| d.parse::<f64>().unwrap() < 0.0)
    );
    assert!(col(&h, &rows, "top_features")[0].starts_with("f_"));
    let version = col(&h, &rows, "model_version")[0].to_string();
    assert!(version.starts_with("gl_ihub-iforest-"), "{version}");
    let (ch, clusters) = read_csv(&d.join("anomalies.clusters.csv"));
    assert_eq!(ch[0], "cluster");
    let sizes: usize = col(&ch, &clusters, "size")
        .iter()
        .map(|s| s.parse::<usize>().unwrap())
        .sum();
    assert_eq!(sizes, 1000, "every current row is in a cluster");

    // The second run uses the saved model and gives the same result.
    let first = std::fs::read_to_string(&out).unwrap();
    let o = run_in(d, &args);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(o.stderr.contains("saved model used"), "{}", o.stderr);
    assert_eq!(std::fs::read_to_string(&out).unwrap(), first);

    // A change of feature preset changes the fingerprint: retrained.
    let mut changed = args.to_vec();
    changed.extend(["--preset", "seed"]);
    let o = run_in(d, &changed);
    assert!(
        o.stderr
            .contains("retrained (profile, features or settings changed)"),
        "{}",
        o.stderr
    );
    let mut forced = args.to_vec();
    forced.push("--retrain");
    let o = run_in(d, &forced);
    assert!(o.stderr.contains("retrained (forced)"), "{}", o.stderr);

    // --all-rows writes every row, in file order.
    let all = d.join("all.csv");
    let mut all_args = args.to_vec();
    all_args[5] = all.to_str().unwrap();
    all_args.push("--all-rows");
    let o = run_in(d, &all_args);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let (h, rows) = read_csv(&all);
    assert_eq!(rows.len(), 1000);
    let bd_rows: Vec<usize> = col(&h, &rows, "bd_row")
        .iter()
        .map(|r| r.parse().unwrap())
        .collect();
    assert!(bd_rows.windows(2).all(|w| w[0] < w[1]));
}

#[test]
fn train_exports_a_bundle_that_model_export_returns() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let exported = d.join("bundle.json");
    let cur = sample("trades.csv");
    let o = run_in(
        d,
        &[
            "train",
            cur.as_str(),
            "--export",
            exported.to_str().unwrap(),
        ],
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    let bundle: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&exported).unwrap()).unwrap();
    assert_eq!(bundle["profile"], "trades");
    assert!(bundle["training_rows"].as_u64().unwrap() > 1000);
    for key in [
        "fingerprint",
        "encoders",
        "scaler",
        "detector",
        "offset",
        "centroids",
        "trained_at",
        "seed",
        "feature_names",
    ] {
        assert!(!bundle[key].is_null(), "bundle has {key}");
    }
    let again = d.join("again.json");
    let o = run_in(
        d,
        &[
            "model",
            "export",
            "--profile",
            "trades",
            "--out",
            again.to_str().unwrap(),
        ],
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(
        std::fs::read(&exported).unwrap(),
        std::fs::read(&again).unwrap()
    );
    let o = run_in(d, &["model", "list"]);
    assert!(o.stdout.contains("trades/iforest"), "{}", o.stdout);
    let o = run_in(
        d,
        &[
            "model",
            "export",
            "--profile",
            "gl_ihub",
            "--out",
            again.to_str().unwrap(),
        ],
    );
    assert_eq!(o.code, 3);
    assert!(
        o.stderr.contains("no saved model \"gl_ihub/iforest\""),
        "{}",
        o.stderr
    );
}

#[test]
fn a_store_held_by_another_process_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let _held = breakdesk::store::Store::open(d).unwrap();
    let out = d.join("o.csv");
    let cur = sample("gl_ihub_current.csv");
    let o = run_in(d, &["run", cur.as_str(), "--out", out.to_str().unwrap()]);
    assert_eq!(o.code, 5, "{}", o.stderr);
    assert!(
        o.stderr.contains("in use by another breakdesk process"),
        "{}",
        o.stderr
    );
}

#[test]
fn bad_detector_options_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cur = sample("gl_ihub_current.csv");
    let out = d.join("o.csv");
    for (flag, value, needle) in [
        (
            "--detector",
            "svm",
            "invalid value 'svm' for '--detector <DETECTOR>'",
        ),
        ("--contamination", "0.9", "contamination must be"),
        // A choice lists what it accepts, from the library's own names.
        ("--detector", "svm", "[possible values: iforest, lof]"),
        (
            "--encoding",
            "utf-17",
            "[possible values: utf8, lossy, windows-1252, utf-16le, utf-16be]",
        ),
        (
            "--preset",
            "full",
            "[possible values: seed, breaks, account]",
        ),
        (
            "--model-policy",
            "never",
            "[possible values: reuse, retrain, refuse]",
        ),
    ] {
        let o = run_in(
            d,
            &[
                "run",
                cur.as_str(),
                "--out",
                out.to_str().unwrap(),
                flag,
                value,
            ],
        );
        assert_eq!(o.code, 2, "{}", o.stderr);
        assert!(o.stderr.contains(needle), "{}", o.stderr);
    }
}

fn generated(d: &Path, profile: &str, rows: &str) -> (PathBuf, PathBuf) {
    let f = d.join(format!("{profile}.csv"));
    let l = d.join(format!("{profile}_labels.csv"));
    let o = run_in(
        d,
        &[
            "generate",
            "--profile",
            profile,
            "--rows",
            rows,
            "--seed",
            "3",
            "--out",
            f.to_str().unwrap(),
            "--labels",
            l.to_str().unwrap(),
        ],
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    (f, l)
}

fn overall_auc(stdout: &str) -> f64 {
    let v: serde_json::Value = serde_json::from_str(stdout).expect("json metrics");
    let all = v["detection"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["kind"] == "all")
        .unwrap();
    all["roc_auc"].as_f64().unwrap()
}

#[test]
fn defaults_meet_the_quality_floor_on_generated_breaks() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (f, l) = generated(d, "gl_ihub", "12000");
    let o = run_in(
        d,
        &[
            "evaluate",
            f.to_str().unwrap(),
            "--labels",
            l.to_str().unwrap(),
            "--format",
            "json",
        ],
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    let auc = overall_auc(&o.stdout);
    assert!(
        auc >= 0.90,
        "ROC-AUC over all injected breaks {auc} (floor 0.90)"
    );
    // Evaluation never writes to the user's store.
    assert!(
        !d.join("store").join("db").exists() || {
            let s = breakdesk::store::Store::open(d).unwrap();
            s.model_names().unwrap().is_empty()
        }
    );
}

#[test]
fn a_single_row_without_history_cannot_train_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let f = d.join("one.csv");
    std::fs::write(
        &f,
        "As of Date,Company,Account,AU,GL Balance,IHub Balance\n2024-04-29,1,2,3,5,1\n",
    )
    .unwrap();
    let out = d.join("o.csv");
    let o = run_in(
        d,
        &["run", f.to_str().unwrap(), "--out", out.to_str().unwrap()],
    );
    assert_eq!(o.code, 3, "{}", o.stderr);
    assert!(
        o.stderr.contains("cannot train a model on 1 row(s)"),
        "{}",
        o.stderr
    );
    assert!(o.stderr.contains("--history"), "{}", o.stderr);
}

#[test]
fn generic_profile_detects_numeric_columns_and_flags_the_outlier() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let f = d.join("g.csv");
    let mut text = String::from("id,x,y,label\n");
    for i in 0..300 {
        text.push_str(&format!("r{i},{},{},n\n", i % 7, (i * 3) % 11));
    }
    text.push_str("odd,500,900,y\n");
    std::fs::write(&f, text).unwrap();
    let out = d.join("o.csv");
    let o = run_in(
        d,
        &[
            "run",
            f.to_str().unwrap(),
            "--profile",
            "generic",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    let (h, rows) = read_csv(&out);
    assert!(h.contains(&"f_num_x".to_string()) && h.contains(&"f_num_y".to_string()));
    assert!(
        !h.contains(&"f_num_id".to_string()),
        "text columns are not scored"
    );
    assert_eq!(col(&h, &rows, "id")[0], "odd", "the outlier ranks first");
}

#[test]
fn trained_on_history_the_sample_pair_ranks_breaks_first() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cur = sample("gl_ihub_current.csv");
    let hist = sample("gl_ihub_history.csv");
    let labels = sample("gl_ihub_current_labels.csv");
    let o = run_in(
        d,
        &[
            "evaluate",
            cur.as_str(),
            "--history",
            hist.as_str(),
            "--labels",
            labels.as_str(),
            "--format",
            "json",
        ],
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(
        o.stderr.contains("on 4999 rows"),
        "trained on the history: {}",
        o.stderr
    );
    let auc = overall_auc(&o.stdout);
    assert!(auc >= 0.95, "ROC-AUC {auc} with a history (floor 0.95)");
}

#[test]
fn train_writes_its_rejects_report_in_the_data_directory_and_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let report = d.join("train.rejects.csv");
    // The sample history has a row dated with a placeholder (1900-01-01).
    let o = run_in(d, &["train", &sample("gl_ihub_history.csv")]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(
        o.stderr
            .contains(&format!("1 rejected (see {})", report.display())),
        "{}",
        o.stderr
    );
    let (h, rows) = read_csv(&report);
    assert_eq!(rows.len(), 1);
    assert_eq!(col(&h, &rows, "value"), ["1900-01-01"]);
    // Nothing is written where the command ran, and a clean file leaves no stale report.
    assert!(!Path::new("breakdesk-train.rejects.csv").exists());
    let o = run_in(d, &["train", &sample("trades.csv")]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(o.stderr.contains(", 0 rejected"), "{}", o.stderr);
    assert!(!report.exists(), "the previous report is removed");
}

// Isolation Forest against scikit-learn's scores, ranked and scored by `evaluate` (moved from
// `src/detect/iforest/`'s unit tests, so that `detect` does not import `evaluate`, a driver).

use breakdesk::detect::iforest::{IForestParams, IsolationForest};

const PARITY_JSON: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/golden/iforest_parity.json"
));

#[derive(serde::Deserialize)]
struct ParityFixture {
    n_rows: usize,
    n_cols: usize,
    n_estimators: usize,
    seeds: Vec<u64>,
    x: Vec<Vec<f64>>,
    labels: Vec<u8>,
    sklearn_scores: Vec<f64>,
    sklearn_auc: f64,
}

use breakdesk::evaluate::{average_ranks, spearman};

/// ROC-AUC of `score` (higher = positive) for 0/1 labels.
fn roc_auc(labels: &[u8], score: &[f64]) -> f64 {
    let positive: Vec<bool> = labels.iter().map(|l| *l == 1).collect();
    breakdesk::evaluate::roc_auc(score, &positive).expect("both classes present")
}

#[test]
fn parity_with_sklearn() {
    let fx: ParityFixture = serde_json::from_str(PARITY_JSON).unwrap();
    assert_eq!((fx.x.len(), fx.x[0].len()), (fx.n_rows, fx.n_cols));
    let x = breakdesk::linalg::Matrix::new(fx.n_rows, fx.n_cols, fx.x.concat()).unwrap();
    let mut mean = vec![0.0; fx.n_rows];
    for &seed in &fx.seeds {
        let f = IsolationForest::fit(
            &x,
            &IForestParams {
                n_estimators: fx.n_estimators,
                seed,
                ..Default::default()
            },
        )
        .unwrap();
        for (m, s) in mean.iter_mut().zip(f.score_samples(&x).unwrap()) {
            *m += s / fx.seeds.len() as f64;
        }
    }
    let rho = spearman(&mean, &fx.sklearn_scores);
    let neg: Vec<f64> = mean.iter().map(|s| -s).collect();
    let auc = roc_auc(&fx.labels, &neg);
    let sk_neg: Vec<f64> = fx.sklearn_scores.iter().map(|s| -s).collect();
    let sk_auc = roc_auc(&fx.labels, &sk_neg);
    eprintln!(
        "spearman {rho:.5}, AUC ours {auc:.5}, sklearn {:.5} (recomputed {sk_auc:.5})",
        fx.sklearn_auc
    );
    assert!(
        (sk_auc - fx.sklearn_auc).abs() < 1e-6,
        "AUC helper disagrees"
    );
    assert!(rho >= 0.98, "Spearman {rho} < 0.98");
    assert!(
        (auc - fx.sklearn_auc).abs() <= 0.01,
        "AUC {auc} vs sklearn {}",
        fx.sklearn_auc
    );
}

#[test]
fn rank_helpers() {
    assert_eq!(
        average_ranks(&[3.0, 1.0, 3.0, 2.0]),
        vec![3.5, 1.0, 3.5, 2.0]
    );
    assert!((spearman(&[1.0, 2.0, 3.0], &[10.0, 20.0, 30.0]) - 1.0).abs() < 1e-12);
    assert!((roc_auc(&[0, 0, 1, 1], &[0.1, 0.2, 0.3, 0.4]) - 1.0).abs() < 1e-12);
    assert!((roc_auc(&[0, 1], &[0.5, 0.5]) - 0.5).abs() < 1e-12);
    assert!((roc_auc(&[0, 1, 0, 1], &[0.1, 0.2, 0.3, 0.4]) - 0.75).abs() < 1e-12);
}
