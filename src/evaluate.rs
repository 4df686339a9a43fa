//! Detection quality against labels: ROC-AUC, PR-AUC (average precision) and precision@k,
//! overall and per break kind. Scores are anomaly scores: higher = more anomalous.
//!
//! Per kind, the positives are that kind's rows and the negatives the unlabelled rows; rows of
//! other kinds are left out. precision@k takes k = the number of positives.

use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Where the generator lists the routine accounts of a labels file: beside it, with
/// `.routine.csv` in place of its extension (`gl_labels.csv` → `gl_labels.routine.csv`).
pub fn routine_list_path(labels: &Path) -> PathBuf {
    labels.with_extension("routine.csv")
}

/// Ranks 1..=n; tied values get the average of their ranks.
pub fn average_ranks(v: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..v.len()).collect();
    order.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
    let mut ranks = vec![0.0; v.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && v[order[j + 1]] == v[order[i]] {
            j += 1;
        }
        let r = (i + j) as f64 / 2.0 + 1.0;
        for &o in &order[i..=j] {
            ranks[o] = r;
        }
        i = j + 1;
    }
    ranks
}

fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        sab += (x - ma) * (y - mb);
        saa += (x - ma) * (x - ma);
        sbb += (y - mb) * (y - mb);
    }
    sab / (saa * sbb).sqrt()
}

/// Spearman's rank correlation (Pearson on average ranks).
pub fn spearman(a: &[f64], b: &[f64]) -> f64 {
    pearson(&average_ranks(a), &average_ranks(b))
}

/// ROC-AUC by the Mann–Whitney statistic with average ranks (ties count one half).
pub fn roc_auc(scores: &[f64], positive: &[bool]) -> Option<f64> {
    let n_pos = positive.iter().filter(|p| **p).count();
    let n_neg = positive.len() - n_pos;
    if n_pos == 0 || n_neg == 0 {
        return None;
    }
    let rank_sum_pos: f64 = average_ranks(scores)
        .iter()
        .zip(positive)
        .filter(|(_, p)| **p)
        .map(|(r, _)| r)
        .sum();
    let u = rank_sum_pos - (n_pos * (n_pos + 1)) as f64 / 2.0;
    Some(u / (n_pos as f64 * n_neg as f64))
}

/// Average precision as scikit-learn computes it: Σ (R_n − R_{n−1}) · P_n over thresholds,
/// where tied scores form one threshold.
pub fn average_precision(scores: &[f64], positive: &[bool]) -> Option<f64> {
    let n_pos = positive.iter().filter(|p| **p).count();
    if n_pos == 0 {
        return None;
    }
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|a, b| scores[*b].total_cmp(&scores[*a]));
    let (mut tp, mut fp) = (0usize, 0usize);
    let mut ap = 0.0;
    let mut prev_recall = 0.0;
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && scores[idx[j + 1]] == scores[idx[i]] {
            j += 1;
        }
        for k in &idx[i..=j] {
            if positive[*k] {
                tp += 1;
            } else {
                fp += 1;
            }
        }
        let recall = tp as f64 / n_pos as f64;
        let precision = tp as f64 / (tp + fp) as f64;
        ap += (recall - prev_recall) * precision;
        prev_recall = recall;
        i = j + 1;
    }
    Some(ap)
}

/// Share of positives among the `k` highest scores (ties broken by position).
pub fn precision_at_k(scores: &[f64], positive: &[bool], k: usize) -> Option<f64> {
    if k == 0 || scores.is_empty() {
        return None;
    }
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|a, b| scores[*b].total_cmp(&scores[*a]).then(a.cmp(b)));
    let k = k.min(idx.len());
    Some(idx[..k].iter().filter(|i| positive[**i]).count() as f64 / k as f64)
}

/// How many rows are flagged, and how many of the routine accounts' rows.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FlagVolume {
    pub rows: usize,
    pub flagged: usize,
    pub per_1000_rows: f64,
    /// Rows of the accounts whose breaks are all routine (when they are known).
    pub routine_rows: Option<usize>,
    pub routine_flagged: Option<usize>,
    pub routine_flagged_share: Option<f64>,
}

impl FlagVolume {
    pub fn describe(&self) -> String {
        let mut s = format!(
            "flags: {} of {} rows ({:.1} per 1,000 rows)",
            self.flagged, self.rows, self.per_1000_rows
        );
        if let (Some(r), Some(f), Some(share)) = (
            self.routine_rows,
            self.routine_flagged,
            self.routine_flagged_share,
        ) {
            s.push_str(&format!(
                "; rows of routine accounts flagged: {f} of {r} ({:.2} %)",
                100.0 * share
            ));
        }
        s
    }
}

/// The flag volume of `flags`; `routine[i]` says whether row i belongs to a routine account.
pub fn flag_volume(flags: &[bool], routine: Option<&[bool]>) -> FlagVolume {
    let rows = flags.len();
    let flagged = flags.iter().filter(|f| **f).count();
    let (routine_rows, routine_flagged) = match routine {
        Some(r) if r.len() == rows => (
            Some(r.iter().filter(|x| **x).count()),
            Some(r.iter().zip(flags).filter(|(r, f)| **r && **f).count()),
        ),
        _ => (None, None),
    };
    FlagVolume {
        rows,
        flagged,
        per_1000_rows: if rows > 0 {
            1000.0 * flagged as f64 / rows as f64
        } else {
            0.0
        },
        routine_rows,
        routine_flagged,
        routine_flagged_share: match (routine_rows, routine_flagged) {
            (Some(r), Some(f)) if r > 0 => Some(f as f64 / r as f64),
            _ => None,
        },
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Metrics {
    pub kind: String,
    pub positives: usize,
    pub roc_auc: Option<f64>,
    pub pr_auc: Option<f64>,
    pub precision_at_k: Option<f64>,
    /// Share of the positives that were flagged.
    pub recall_flagged: Option<f64>,
    /// Share of the flagged rows that are positives.
    pub precision_flagged: Option<f64>,
}

/// Metrics overall ("all") and per kind. `labels[i]` is the kind of row i, or None when normal.
pub fn evaluate(scores: &[f64], flags: &[bool], labels: &[Option<String>]) -> Vec<Metrics> {
    let mut kinds: BTreeMap<&str, ()> = BTreeMap::new();
    for k in labels.iter().flatten() {
        kinds.insert(k, ());
    }
    let mut out = Vec::new();
    let mut one = |name: &str, keep: &dyn Fn(&Option<String>) -> Option<bool>| {
        let mut s = Vec::new();
        let mut p = Vec::new();
        let mut f = Vec::new();
        for (i, l) in labels.iter().enumerate() {
            if let Some(pos) = keep(l) {
                s.push(scores[i]);
                p.push(pos);
                f.push(flags[i]);
            }
        }
        let n_pos = p.iter().filter(|x| **x).count();
        let flagged_pos = p.iter().zip(&f).filter(|(p, f)| **p && **f).count();
        let flagged = f.iter().filter(|x| **x).count();
        out.push(Metrics {
            kind: name.to_string(),
            positives: n_pos,
            roc_auc: roc_auc(&s, &p),
            pr_auc: average_precision(&s, &p),
            precision_at_k: precision_at_k(&s, &p, n_pos),
            recall_flagged: (n_pos > 0).then(|| flagged_pos as f64 / n_pos as f64),
            precision_flagged: (flagged > 0).then(|| flagged_pos as f64 / flagged as f64),
        });
    };
    one("all", &|l| Some(l.is_some()));
    for k in kinds.keys() {
        let k = k.to_string();
        one(&k, &|l| match l {
            None => Some(false),
            Some(x) if *x == k => Some(true),
            Some(_) => None,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roc_auc_known_values() {
        // scikit-learn: roc_auc_score([0,0,1,1], [0.1,0.4,0.35,0.8]) = 0.75
        assert_eq!(
            roc_auc(&[0.1, 0.4, 0.35, 0.8], &[false, false, true, true]),
            Some(0.75)
        );
        // All tied: 0.5.
        assert_eq!(roc_auc(&[1.0; 4], &[false, true, false, true]), Some(0.5));
        assert_eq!(roc_auc(&[1.0, 2.0], &[true, true]), None);
    }

    #[test]
    fn spearman_of_monotone_and_reversed() {
        assert!((spearman(&[1.0, 2.0, 3.0], &[10.0, 20.0, 35.0]) - 1.0).abs() < 1e-12);
        assert!((spearman(&[1.0, 2.0, 3.0], &[3.0, 2.0, 1.0]) + 1.0).abs() < 1e-12);
        assert_eq!(average_ranks(&[5.0, 1.0, 5.0]), vec![2.5, 1.0, 2.5]);
    }

    #[test]
    fn average_precision_known_values() {
        // scikit-learn: average_precision_score([0,0,1,1], [0.1,0.4,0.35,0.8]) = 0.8333…
        let ap = average_precision(&[0.1, 0.4, 0.35, 0.8], &[false, false, true, true]).unwrap();
        assert!((ap - 0.8333333333333333).abs() < 1e-12, "{ap}");
        assert_eq!(
            average_precision(&[3.0, 2.0, 1.0], &[true, false, false]),
            Some(1.0)
        );
    }

    #[test]
    fn flag_volume_counts_routine_rows() {
        let v = flag_volume(
            &[true, false, true, false],
            Some(&[true, true, false, false]),
        );
        assert_eq!(v.flagged, 2);
        assert_eq!(v.per_1000_rows, 500.0);
        assert_eq!(v.routine_rows, Some(2));
        assert_eq!(v.routine_flagged, Some(1));
        assert_eq!(v.routine_flagged_share, Some(0.5));
        assert!(
            v.describe().contains("1 of 2 (50.00 %)"),
            "{}",
            v.describe()
        );
        assert_eq!(flag_volume(&[true], None).routine_rows, None);
    }

    #[test]
    fn precision_at_k_and_per_kind() {
        assert_eq!(
            precision_at_k(&[0.9, 0.8, 0.1, 0.7], &[true, false, false, true], 2),
            Some(0.5)
        );
        let labels = vec![
            Some("timing".to_string()),
            None,
            Some("sign_flip".to_string()),
            None,
        ];
        let m = evaluate(&[0.9, 0.1, 0.8, 0.2], &[true, false, false, false], &labels);
        assert_eq!(m[0].kind, "all");
        assert_eq!(m[0].roc_auc, Some(1.0));
        assert_eq!(m[0].recall_flagged, Some(0.5));
        assert_eq!(m[0].precision_flagged, Some(1.0));
        let timing = m.iter().find(|x| x.kind == "timing").unwrap();
        assert_eq!(timing.positives, 1);
        assert_eq!(timing.precision_at_k, Some(1.0));
    }
}

/// How well the rules put labelled breaks in the bucket their kind stands for.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BucketAccuracy {
    /// The generator's break kind.
    pub kind: String,
    /// The bucket it stands for (by the rules file's `label`).
    pub bucket: String,
    pub rows: usize,
    pub correct: usize,
    pub accuracy: f64,
    /// Among the rows the model flagged.
    pub flagged_rows: usize,
    pub flagged_correct: usize,
    /// The buckets wrongly chosen most often, with counts.
    pub confused_with: Vec<(String, usize)>,
}

/// Accuracy per kind: `kinds[k]` is the label of the categorized row `k`, `buckets[k]` the
/// bucket chosen, `flagged[k]` whether the model flagged it.
pub fn bucket_accuracy(
    rules: &crate::categorize::RulesFile,
    kinds: &[&str],
    buckets: &[&str],
    flagged: &[bool],
) -> Vec<BucketAccuracy> {
    use std::collections::BTreeMap;
    // kind → (rows, correct, flagged rows, flagged correct, wrong buckets)
    type Tally<'a> = (usize, usize, usize, usize, BTreeMap<&'a str, usize>);
    let mut by: BTreeMap<&str, Tally> = BTreeMap::new();
    for k in 0..kinds.len() {
        let want = rules
            .bucket_for_label(kinds[k])
            .map(|b| b.name.as_str())
            .unwrap_or("");
        let e = by.entry(kinds[k]).or_default();
        let ok = buckets[k] == want;
        e.0 += 1;
        e.1 += usize::from(ok);
        if flagged[k] {
            e.2 += 1;
            e.3 += usize::from(ok);
        }
        if !ok {
            *e.4.entry(buckets[k]).or_default() += 1;
        }
    }
    by.into_iter()
        .map(|(kind, (rows, correct, fr, fc, conf))| {
            let mut confused: Vec<(String, usize)> =
                conf.into_iter().map(|(b, n)| (b.to_string(), n)).collect();
            confused.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            confused.truncate(3);
            BucketAccuracy {
                kind: kind.to_string(),
                bucket: rules
                    .bucket_for_label(kind)
                    .map(|b| b.name.clone())
                    .unwrap_or_else(|| "(no bucket has this label)".into()),
                rows,
                correct,
                accuracy: correct as f64 / rows.max(1) as f64,
                flagged_rows: fr,
                flagged_correct: fc,
                confused_with: confused,
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// A labelled file evaluated end to end

/// Why a labelled file could not be evaluated.
#[derive(Debug, thiserror::Error)]
pub enum EvaluateError {
    /// Ingest or features failed (a run that rejected too many rows carries its rejects).
    #[error(transparent)]
    Pipeline(#[from] crate::pipeline::PipelineError),
    #[error(transparent)]
    Detect(#[from] crate::pipeline::DetectError),
    /// The rules file, or a rule that does not compile against the file's table.
    #[error(transparent)]
    Rules(#[from] crate::categorize::RulesError),
    /// The file's row numbers.
    #[error("row numbers")]
    Rows(#[source] polars::prelude::PolarsError),
    /// The scored table.
    #[error(transparent)]
    Table(polars::prelude::PolarsError),
    /// A labels file or routine-account list that cannot be read.
    #[error("cannot read the {what} {}", path.display())]
    Read {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A line of a labels file or routine-account list that is not what the generator writes.
    #[error("{0}")]
    Line(String),
}

/// A labelled file's evaluation: detection quality per kind, the flags' volume, the
/// categorization's accuracy per kind, and the model that was trained for it.
pub struct Evaluation {
    /// The file's rows (scored).
    pub rows: usize,
    /// Of them, labelled as a break.
    pub labelled: usize,
    pub metrics: Vec<Metrics>,
    pub volume: FlagVolume,
    pub accuracy: Vec<BucketAccuracy>,
    /// The detection: the model, its flags and triage.
    pub det: crate::pipeline::Detection,
    pub preset: crate::features::Preset,
}

/// What to evaluate: the file, how to detect, the generator's labels and routine accounts.
pub struct EvaluateInput<'a> {
    pub opts: &'a crate::pipeline::RunOptions,
    pub detect: &'a crate::pipeline::DetectOptions,
    /// The labels file of the generator (row,kind[,group]).
    pub labels: &'a Path,
    /// The routine-account list (group,kind); default [`routine_list_path`] of the labels, when
    /// it exists.
    pub routine: Option<&'a Path>,
    /// The rejects-report hint for a run that rejects too many rows.
    pub rejects_hint: &'a str,
    /// Set to stop the reading and features at their next stage (Ctrl-C).
    pub cancel: &'a std::sync::atomic::AtomicBool,
}

/// Evaluates a labelled file: ingest, train and score (in `store`, which the caller makes a
/// throw-away one so that no saved model is replaced), read the labels, measure detection,
/// categorize every labelled row (flagged or not) and measure the buckets, and count the
/// routine accounts' rows among the flags.
pub fn evaluate_file(
    settings: &crate::pipeline::Settings,
    input: &EvaluateInput,
    store: &crate::store::Store,
) -> Result<Evaluation, EvaluateError> {
    use crate::pipeline;
    let mut result = pipeline::run(
        settings,
        input.opts,
        input.rejects_hint,
        &mut |_| {},
        input.cancel,
    )?;
    // The metrics rank every row: every row gets its detector score.
    let dopts = pipeline::DetectOptions {
        score_all: true,
        ..input.detect.clone()
    };
    let det = pipeline::score(settings, &mut result, store, &dopts)?;
    let labels = read_labels(input.labels)?;
    let rows: Vec<u32> = result
        .features
        .df
        .column(crate::ingest::ROW_COL)
        .and_then(|c| c.cast(&polars::prelude::DataType::UInt32))
        .and_then(|c| c.u32().map(|ca| ca.into_no_null_iter().collect()))
        .map_err(EvaluateError::Rows)?;
    let row_labels: Vec<Option<String>> = rows.iter().map(|r| labels.get(r).cloned()).collect();
    // Anomaly score: higher = more anomalous.
    let anomaly: Vec<f64> = det.scored.score.iter().map(|s| -s).collect();
    let metrics = evaluate(&anomaly, &det.scored.flag, &row_labels);
    let accuracy = categorization_accuracy(settings, &result, &det, &row_labels)?;
    // Flag volume, and the routine accounts' rows among the flags.
    let routine_path = input.routine.map(Path::to_path_buf).or_else(|| {
        let p = routine_list_path(input.labels);
        p.exists().then_some(p)
    });
    let routine = routine_path.as_deref().map(read_routine_list).transpose()?;
    let keys: Vec<String> = match result.features.df.column("bd_key") {
        Ok(c) => c
            .str()
            .map(|ca| ca.iter().map(|v| v.unwrap_or("").to_string()).collect())
            .unwrap_or_default(),
        Err(_) => Vec::new(),
    };
    let in_routine: Option<Vec<bool>> = routine
        .as_ref()
        .map(|set| keys.iter().map(|k| set.contains(k.as_str())).collect());
    let volume = flag_volume(&det.scored.flag, in_routine.as_deref());
    Ok(Evaluation {
        rows: rows.len(),
        labelled: row_labels.iter().filter(|l| l.is_some()).count(),
        metrics,
        volume,
        accuracy,
        det,
        preset: result.features.preset,
    })
}

/// The root-cause buckets of every labelled row, flagged or not, against the bucket each
/// row's kind stands for.
fn categorization_accuracy(
    settings: &crate::pipeline::Settings,
    result: &crate::pipeline::RunOutput,
    det: &crate::pipeline::Detection,
    row_labels: &[Option<String>],
) -> Result<Vec<BucketAccuracy>, EvaluateError> {
    use crate::pipeline;
    let rules = pipeline::rules_file(settings)?;
    let table = pipeline::with_detection(&result.features.df, det, &result.features.names, true)
        .map_err(EvaluateError::Table)?;
    let labelled: Vec<usize> = (0..row_labels.len())
        .filter(|i| row_labels[*i].is_some())
        .collect();
    let flagged_total = det.scored.flag.iter().filter(|f| **f).count();
    let cats =
        pipeline::categorize_rows(&rules, &table, &result.resolved, &labelled, flagged_total)?;
    let kinds: Vec<&str> = labelled
        .iter()
        .map(|i| row_labels[*i].as_deref().unwrap_or(""))
        .collect();
    let buckets: Vec<&str> = cats.iter().map(|c| c.bucket.as_str()).collect();
    let flags: Vec<bool> = labelled.iter().map(|i| det.scored.flag[*i]).collect();
    Ok(bucket_accuracy(&rules, &kinds, &buckets, &flags))
}

/// The generator's routine-account list (group,kind): the groups.
pub fn read_routine_list(path: &Path) -> Result<std::collections::HashSet<String>, EvaluateError> {
    let text = std::fs::read_to_string(path).map_err(|source| EvaluateError::Read {
        what: "routine list",
        path: path.to_path_buf(),
        source,
    })?;
    let mut out = std::collections::HashSet::new();
    for (i, line) in text.lines().enumerate().skip(1) {
        if line.trim().is_empty() {
            continue;
        }
        // The group is everything before the last comma (the kind has none).
        match line.rsplit_once(',') {
            Some((group, _)) if !group.trim().is_empty() => {
                out.insert(group.trim().trim_matches('"').to_string());
            }
            _ => {
                return Err(EvaluateError::Line(format!(
                    "{} line {}: expected `group,kind`, found {line:?}",
                    path.display(),
                    i + 1
                )));
            }
        }
    }
    Ok(out)
}

/// The generator's labels file: row,kind[,group].
pub fn read_labels(path: &Path) -> Result<std::collections::HashMap<u32, String>, EvaluateError> {
    let text = std::fs::read_to_string(path).map_err(|source| EvaluateError::Read {
        what: "labels file",
        path: path.to_path_buf(),
        source,
    })?;
    let mut out = std::collections::HashMap::new();
    for (i, line) in text.lines().enumerate().skip(1) {
        let mut parts = line.split(',');
        let row = parts.next().and_then(|r| r.trim().parse::<u32>().ok());
        let kind = parts.next().map(str::trim).filter(|k| !k.is_empty());
        match (row, kind) {
            (Some(r), Some(k)) => {
                out.insert(r, k.to_string());
            }
            _ => {
                return Err(EvaluateError::Line(format!(
                    "{} line {}: expected `row,kind`, found {line:?}",
                    path.display(),
                    i + 1
                )));
            }
        }
    }
    Ok(out)
}
