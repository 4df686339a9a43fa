//! Detection's model: training options and policy, the saved model checked against the file, a new training (with the analysts' feedback), the model's fitness.

use super::*;

/// How `score` treats a saved model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TrainMode {
    /// Use the saved model when its fingerprint matches; train when missing or changed.
    #[default]
    Auto,
    /// Train a new model and save it, whatever is saved.
    Force,
}

#[derive(Debug, Clone, Default)]
pub struct DetectOptions {
    /// Attributions for every row (else only for the flagged rows).
    pub all_attributions: bool,
    /// A detector score for every row, the quiet ones included (within tolerance, or breaks
    /// the triage explains); else those are left unscored: nothing but a table of every row
    /// shows their score, and they rank after every candidate either way.
    pub score_all: bool,
    pub detector: Option<crate::detect::model::DetectorKind>,
    pub contamination: Option<crate::detect::contamination::Contamination>,
    pub train: TrainMode,
    /// What to do with a saved model that does not fit the file; None: the settings' policy.
    pub policy: Option<ModelPolicy>,
}

/// What `score` does with a saved model that does not fit the file (too few training rows, a
/// different population, accounts it never saw).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ModelPolicy {
    /// Use it anyway (and say so).
    Reuse,
    /// Train a new model on the file (or its history) and save it.
    #[default]
    Retrain,
    /// Stop with an error naming why.
    Refuse,
}

impl ModelPolicy {
    /// The policies' names, as the configuration and `--model-policy` spell them.
    pub const NAMES: [&'static str; 3] = ["reuse", "retrain", "refuse"];
}

impl std::str::FromStr for ModelPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "reuse" => Ok(ModelPolicy::Reuse),
            "retrain" => Ok(ModelPolicy::Retrain),
            "refuse" => Ok(ModelPolicy::Refuse),
            _ => Err(format!(
                "unknown model policy {s:?}: use reuse, retrain or refuse"
            )),
        }
    }
}

/// Why the model used by a run is the one it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelStatus {
    Loaded,
    TrainedMissing,
    TrainedChanged,
    TrainedForced,
    TrainedUnreadable(String),
    /// The saved model did not fit the file: why.
    TrainedUnfit(String),
    /// The saved model did not fit the file but was used (`--model-policy reuse`): why.
    LoadedUnfit(String),
    /// The saved model did not fit the file, and the rows a retraining would learn from are
    /// fewer than `min`, which the saved model was trained on: it was used (why; the rows).
    KeptOverFewRows {
        why: String,
        rows: usize,
        min: usize,
    },
    /// A bundle file (`--model FILE`) was used; `unfit` says why it does not fit the file, when
    /// it does not.
    FromFile {
        path: String,
        unfit: Option<String>,
    },
}

impl ModelStatus {
    pub fn describe(&self) -> String {
        match self {
            ModelStatus::Loaded => "saved model used".into(),
            ModelStatus::TrainedMissing => "trained (no saved model)".into(),
            ModelStatus::TrainedChanged => {
                "retrained (profile, features or settings changed)".into()
            }
            ModelStatus::TrainedForced => "retrained (forced)".into(),
            ModelStatus::TrainedUnreadable(e) => format!("retrained (saved model unreadable: {e})"),
            ModelStatus::TrainedUnfit(why) => {
                format!("retrained (the saved model does not fit this file: {why})")
            }
            ModelStatus::LoadedUnfit(why) => {
                format!(
                    "saved model used although it does not fit this file (model policy reuse): {why}"
                )
            }
            ModelStatus::KeptOverFewRows { why, rows, min } => format!(
                "saved model used although it does not fit this file: {why}; the {rows} rows a retraining would learn from are fewer than [detect] min_training_rows ({min}), too few to replace it (--retrain trains on them anyway)"
            ),
            ModelStatus::FromFile { path, unfit: None } => format!("model file {path} used"),
            ModelStatus::FromFile {
                path,
                unfit: Some(why),
            } => format!("model file {path} used although it does not fit this file: {why}"),
        }
    }
}

/// What scoring produced.
#[derive(Debug)]
pub struct Detection {
    pub bundle: crate::detect::model::ModelBundle,
    pub status: ModelStatus,
    pub scored: crate::detect::model::Scored,
    pub rank: Vec<usize>,
    /// Per row: a break its comment explains, proposed for auto-resolution (a case is opened,
    /// although the row is not flagged).
    pub proposed: Vec<bool>,
    /// Per row: why a break is kept quiet before scoring (within tolerance, routine for its
    /// account, explained, judged normal), and its account's own z ([`triage_inputs`]).
    pub quiet: Vec<Option<crate::detect::triage::Quiet>>,
    pub own_z: Vec<f64>,
    pub clusters: Vec<crate::detect::cluster::ClusterSummary>,
    pub timings: Vec<(&'static str, Duration)>,
}

#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Model(#[from] crate::detect::model::ModelError),
    #[error(transparent)]
    Cases(#[from] crate::cases::CaseError),
    #[error(transparent)]
    Features(#[from] features::FeatureError),
    #[error("{0}")]
    Config(String),
    #[error(
        "the saved model {model} does not fit this file: {why} (model policy refuse: retrain with --retrain, or --model-policy retrain|reuse)"
    )]
    Unfit { model: String, why: String },
    /// A model bundle file made for another profile, preset or feature set than the file's.
    #[error("the model file {file} cannot score this file: {why}")]
    Bundle { file: String, why: String },
}

/// Where a table's rows meet the analysts' labels.
pub(super) struct LabelMatch {
    /// (row, label index) for each labelled record (the label's key and date).
    exact: Vec<(usize, usize)>,
    /// The rows of true breaks' runs: the label's key, from the break's start to its date.
    true_runs: Vec<usize>,
}

pub(super) fn match_labels(
    df: &polars::prelude::DataFrame,
    labels: &[crate::cases::Label],
) -> Result<LabelMatch, polars::prelude::PolarsError> {
    use polars::prelude::*;
    let mut by_key: std::collections::HashMap<&str, Vec<usize>> = std::collections::HashMap::new();
    for (i, l) in labels.iter().enumerate() {
        by_key.entry(l.key.as_str()).or_default().push(i);
    }
    let mut m = LabelMatch {
        exact: Vec::new(),
        true_runs: Vec::new(),
    };
    // Without a key or a date (a generic file) no record can be named.
    if df.column("bd_key").is_err() || df.column("bd_date").is_err() {
        return Ok(m);
    }
    let keys = df.column("bd_key")?.str()?.clone();
    let days = df
        .column("bd_date")?
        .cast(&DataType::Date)?
        .cast(&DataType::Int32)?
        .i32()?
        .clone();
    let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default();
    let day = |d: chrono::NaiveDate| (d - epoch).num_days();
    for (row, (k, d)) in keys.iter().zip(days.iter()).enumerate() {
        let (Some(k), Some(d)) = (k, d) else { continue };
        let Some(ls) = by_key.get(k) else { continue };
        let d = d as i64;
        for &i in ls {
            let l = &labels[i];
            let end = day(l.date);
            if d == end {
                m.exact.push((row, i));
            }
            let start = l.start_date.map_or(end, day);
            if l.label && d >= start && d <= end {
                m.true_runs.push(row);
            }
        }
    }
    Ok(m)
}

/// The training specification of the settings with the run's overrides.
pub fn train_spec(settings: &Settings, opts: &DetectOptions) -> crate::detect::model::TrainSpec {
    let mut spec = settings.detect.spec.clone();
    if let Some(k) = opts.detector {
        spec.detector = k;
    }
    if let Some(c) = opts.contamination {
        spec.contamination = c;
    }
    spec
}

/// Scores the current rows of a run: loads the saved model for the profile and detector, or
/// trains one (on the history rows when given, else on the current rows) and saves it.
pub fn score(
    settings: &Settings,
    run: &mut RunOutput,
    store: &crate::store::Store,
    opts: &DetectOptions,
) -> Result<Detection, DetectError> {
    use crate::detect::model::{self, ModelBundle};
    let spec = train_spec(settings, opts);
    let fs = &mut run.features;
    let fp = model::fingerprint(&run.profile, fs.preset, &fs.names, &spec);
    let key = format!("{}/{}", run.profile, spec.detector.as_str());
    let mut timings = Vec::new();

    let saved = store.get_model(&key)?;
    let existing = saved.map(|b| ModelBundle::from_json(&b));
    // The share the previous model flagged: the base of the feedback's contamination re-estimate.
    let previous_flag_share = match &existing {
        Some(Ok(b)) => b.flag_share,
        _ => None,
    };
    let existing = match opts.train {
        TrainMode::Force => None,
        TrainMode::Auto => existing,
    };
    // A saved model of the same schema must also fit the file.
    let policy = opts.policy.unwrap_or(settings.detect.policy);
    let (existing, mut unfit) = check_fitness(settings, fs, &run.resolved, existing, &fp, policy)?;
    let mut reuse = Reuse::default();
    let (bundle, status) = match existing {
        Some(Ok(b)) if b.fingerprint == fp => {
            features::apply_encoders(fs, &b.encoders)?;
            (b, unfit.unwrap_or(ModelStatus::Loaded))
        }
        other => {
            let status = match (&other, opts.train) {
                (_, TrainMode::Force) => ModelStatus::TrainedForced,
                _ if unfit.is_some() => unfit.take().unwrap_or(ModelStatus::TrainedMissing),
                (None, _) => ModelStatus::TrainedMissing,
                (Some(Err(e)), _) => ModelStatus::TrainedUnreadable(e.to_string()),
                (Some(Ok(_)), _) => ModelStatus::TrainedChanged,
            };
            let t = Instant::now();
            let (b, r) = train_fresh(
                settings,
                &run.profile,
                fs,
                store,
                &spec,
                previous_flag_share,
            )?;
            reuse = r;
            timings.push(("train", t.elapsed()));
            store.put_model(&key, &b.to_json())?;
            tracing::info!(model = %b.version(), rows = b.training_rows, status = ?status, "model trained");
            (b, status)
        }
    };

    score_loaded(
        settings,
        run,
        store,
        opts,
        (bundle, status),
        reuse.precomputed,
        reuse.current_x,
        reuse.current_diff,
        timings,
    )
}

pub(super) type SavedModel =
    Option<Result<crate::detect::model::ModelBundle, crate::detect::model::ModelError>>;

/// A saved model of the run's schema checked against the file: kept when it fits; when it does
/// not, refused, kept or dropped for a new training as the policy says (with the reason).
pub(super) fn check_fitness(
    settings: &Settings,
    fs: &FeatureSet,
    resolved: &Resolved,
    existing: SavedModel,
    fp: &str,
    policy: ModelPolicy,
) -> Result<(SavedModel, Option<ModelStatus>), DetectError> {
    let b = match existing {
        Some(Ok(b)) if b.fingerprint == fp => b,
        other => return Ok((other, None)),
    };
    let problems = fitness_problems(settings, fs, resolved, &b)?;
    if problems.is_empty() {
        return Ok((Some(Ok(b)), None));
    }
    let why = problems.join("; ");
    tracing::warn!(model = %b.version(), why = %why, "saved model does not fit the file");
    match policy {
        ModelPolicy::Refuse => Err(DetectError::Unfit {
            model: b.version(),
            why,
        }),
        ModelPolicy::Reuse => Ok((Some(Ok(b)), Some(ModelStatus::LoadedUnfit(why)))),
        ModelPolicy::Retrain => {
            // A model trained on enough rows is not replaced by one that would not be: a small
            // day's file keeps the saved model (and says so).
            let min = settings.detect.fitness.min_training_rows;
            let rows = training_frame(fs).0.height();
            if rows < min && b.training_rows >= min {
                tracing::warn!(model = %b.version(), rows, min, "too few rows to retrain: the saved model is used");
                return Ok((
                    Some(Ok(b)),
                    Some(ModelStatus::KeptOverFewRows { why, rows, min }),
                ));
            }
            Ok((None, Some(ModelStatus::TrainedUnfit(why))))
        }
    }
}

/// The rows a training on `fs` learns from: its history's, when it has at least two, else the
/// file's own (then `true`).
fn training_frame(fs: &FeatureSet) -> (&polars::prelude::DataFrame, bool) {
    match &fs.history {
        Some(h) if h.df.height() >= 2 => (&h.df, false),
        _ => (&fs.df, true),
    }
}

/// What a training hands on to scoring: the current rows' scores, matrix and differences when
/// the model learnt from exactly those rows, or their matrix when the feedback built it.
#[derive(Default)]
pub(super) struct Reuse {
    precomputed: Option<Vec<f64>>,
    current_x: Option<CurrentMatrix>,
    current_diff: Option<Vec<f64>>,
}

/// The current rows' feature matrix, when the training built it: as the features give it, or
/// already scaled by the model's scaler (the model learnt from exactly those rows).
pub(super) enum CurrentMatrix {
    Features(crate::detect::matrix::Matrix),
    Scaled(crate::detect::matrix::Matrix),
}

/// The rows a model is trained on (besides their features): each row's difference, whether it
/// is a triage candidate and its account; and the rows added as normal by the feedback.
pub(super) struct TrainingRows<'a> {
    diff: Vec<f64>,
    cand: Vec<bool>,
    keys: Vec<&'a str>,
    extra: Option<crate::detect::matrix::Matrix>,
}

/// What a training reads: `rows` with their features `x`.
fn train_input<'a>(
    profile: &'a str,
    fs: &'a FeatureSet,
    x: crate::detect::matrix::Unscaled<'a>,
    rows: &'a TrainingRows<'a>,
) -> crate::detect::model::TrainInput<'a> {
    crate::detect::model::TrainInput {
        profile,
        preset: fs.preset,
        feature_names: &fs.names,
        encoders: &fs.encoders,
        x,
        difference: &rows.diff,
        extra_normal: rows.extra.as_ref(),
        candidates: Some(&rows.cand),
        keys: &rows.keys,
    }
}

/// Trains a new model on the history rows (the current rows when there is no history of at
/// least 2 rows), with the analysts' decisions on the profile's cases when feedback is on.
pub(super) fn train_fresh(
    settings: &Settings,
    profile: &str,
    fs: &FeatureSet,
    store: &crate::store::Store,
    spec: &crate::detect::model::TrainSpec,
    previous_flag_share: Option<f64>,
) -> Result<(crate::detect::model::ModelBundle, Reuse), DetectError> {
    use crate::detect::model;
    let (train_df, own_rows) = training_frame(fs);
    let train_keys = key_chunk(train_df);
    let diff = features::column_f64(train_df, "bd_difference").unwrap_or_default();
    // The training rows that are triage candidates: the contamination is among them.
    let cand: Vec<bool> = triage_inputs(train_df)?
        .0
        .iter()
        .map(Option::is_none)
        .collect();
    let keys = key_refs(train_keys.as_ref(), train_df.height());
    let labels = if settings.feedback.enabled {
        crate::cases::Cases::new(store)
            .labels()?
            .into_iter()
            .filter(|l| l.profile == profile)
            .collect()
    } else {
        Vec::new()
    };
    let input = |x, rows| train_input(profile, fs, x, rows);
    let all = TrainingRows {
        diff,
        cand,
        keys,
        extra: None,
    };
    let (mut b, train_scores, scaled, rows, fb, x_cur) = if labels.is_empty() {
        // Without feedback the model learns from exactly the training table's rows: the scaler
        // is fitted on their feature columns, and the matrix is scaled as it is gathered from
        // them (the unscaled matrix is never written).
        let cols = features::FeatureColumns::of(train_df, &fs.names)?;
        let refs = cols.slices()?;
        let n = train_df.height();
        let scaler = crate::detect::scaler::RobustScaler::fit_columns(refs.len(), |j| {
            Ok::<_, features::FeatureError>(refs[j].to_vec())
        })?;
        let scaled = features::matrix_of_columns(&refs, n, Some((&scaler.center, &scaler.scale)))?;
        let x = crate::detect::matrix::Unscaled::Columns {
            rows: n,
            columns: &refs,
        };
        let (b, scores, scaled) = model::train_scaled(&input(x, &all), spec, scaler, scaled)?;
        (b, scores, scaled, all, None, None)
    } else {
        let x = features::matrix(train_df, &fs.names)?;
        let (rows, x, info, x_cur) =
            with_feedback(settings, fs, train_df, own_rows, &labels, all, x)?;
        let (b, scores, scaled) = model::train_keeping_scaled(&input((&x).into(), &rows), spec)?;
        (b, scores, scaled, rows, Some(info), x_cur)
    };
    if let Some(info) = fb {
        let candidate_scores = model::among(&train_scores, Some(&rows.cand));
        reestimate_with_feedback(
            settings,
            &mut b,
            info,
            &candidate_scores,
            previous_flag_share,
            spec,
        );
    }
    // The training scores are the current rows' scores when the model learnt from exactly
    // those rows.
    let reuse = if own_rows && scaled.rows() == fs.df.height() {
        Reuse {
            precomputed: Some(train_scores),
            current_x: Some(CurrentMatrix::Scaled(scaled)),
            current_diff: Some(rows.diff),
        }
    } else {
        Reuse {
            current_x: x_cur.map(CurrentMatrix::Features),
            ..Reuse::default()
        }
    };
    Ok((b, reuse))
}

/// The training rows with the analysts' decisions: the records of true breaks' runs left out,
/// rejected records (in the training or the current rows) added as normal `oversample` times,
/// with their features `x` (the training rows' matrix, rows left out likewise). Also what the
/// feedback did, and the current rows' matrix when it was built for them.
pub(super) fn with_feedback<'a>(
    settings: &Settings,
    fs: &FeatureSet,
    train_df: &polars::prelude::DataFrame,
    own_rows: bool,
    labels: &[crate::cases::Label],
    all: TrainingRows<'a>,
    x: crate::detect::matrix::Matrix,
) -> Result<
    (
        TrainingRows<'a>,
        crate::detect::matrix::Matrix,
        crate::detect::feedback::FeedbackInfo,
        Option<crate::detect::matrix::Matrix>,
    ),
    DetectError,
> {
    use crate::detect::feedback::{FeedbackInfo, repeat_rows};
    let in_train = match_labels(train_df, labels).map_err(features::FeatureError::from)?;
    let in_cur = if own_rows {
        None
    } else {
        Some(match_labels(&fs.df, labels).map_err(features::FeatureError::from)?)
    };
    let mut info = FeedbackInfo {
        labels: labels.len(),
        oversample: settings.feedback.oversample,
        ..Default::default()
    };
    // Each label counts once, where its record was found (training rows first).
    let mut seen = vec![false; labels.len()];
    let mut rejected_train = Vec::new();
    let mut rejected_cur = Vec::new();
    for (m, rejected) in [
        (Some(&in_train), &mut rejected_train),
        (in_cur.as_ref(), &mut rejected_cur),
    ] {
        let Some(m) = m else { continue };
        for &(row, l) in &m.exact {
            if std::mem::replace(&mut seen[l], true) {
                continue;
            }
            let label = &labels[l];
            match (label.label, label.origin) {
                (false, _) => {
                    info.rejected += 1;
                    rejected.push(row);
                }
                (true, crate::cases::Origin::Analyst) => info.missed += 1,
                (true, _) => info.accepted += 1,
            }
        }
    }
    info.matched = seen.iter().filter(|s| **s).count();
    let times = settings.feedback.oversample;
    let mut extra_rows = x.select_rows(&repeat_rows(&rejected_train, times));
    let mut x_cur = None;
    if !rejected_cur.is_empty() {
        let xc = features::matrix(&fs.df, &fs.names)?;
        extra_rows = extra_rows.stack(&xc.select_rows(&repeat_rows(&rejected_cur, times)));
        x_cur = Some(xc);
    }
    info.added_rows = extra_rows.rows();
    let mut out = vec![false; train_df.height()];
    for r in &in_train.true_runs {
        out[*r] = true;
    }
    info.excluded_rows = out.iter().filter(|o| **o).count();
    let (mut rows, x) = if info.excluded_rows == 0 {
        (all, x)
    } else {
        let keep: Vec<usize> = (0..out.len()).filter(|i| !out[*i]).collect();
        let diff = if all.diff.len() == out.len() {
            keep.iter().map(|i| all.diff[*i]).collect()
        } else {
            all.diff
        };
        let rows = TrainingRows {
            diff,
            cand: keep.iter().map(|i| all.cand[*i]).collect(),
            keys: keep.iter().map(|i| all.keys[*i]).collect(),
            extra: None,
        };
        (rows, x.select_rows(&keep))
    };
    rows.extra = (extra_rows.rows() > 0).then_some(extra_rows);
    Ok((rows, x, info, x_cur))
}

/// The feedback kept in the bundle, and the contamination re-estimated from the analysts'
/// decisions (when on and enough flagged cases were decided): the offset moves with it.
pub(super) fn reestimate_with_feedback(
    settings: &Settings,
    b: &mut crate::detect::model::ModelBundle,
    mut info: crate::detect::feedback::FeedbackInfo,
    candidate_scores: &[f64],
    previous_flag_share: Option<f64>,
    spec: &crate::detect::model::TrainSpec,
) {
    info.precision = (info.accepted + info.rejected > 0)
        .then(|| info.accepted as f64 / (info.accepted + info.rejected) as f64);
    info.contamination_before = b.flag_share;
    info.contamination_after = b.flag_share;
    let base = previous_flag_share.or(b.flag_share).unwrap_or(0.0);
    if settings.feedback.contamination
        && let Some(c) = crate::detect::feedback::reestimate(
            base,
            info.accepted,
            info.rejected,
            info.missed,
            candidate_scores.len(),
            settings.feedback.min_reviewed,
        )
    {
        b.offset = crate::detect::contamination::offset(
            candidate_scores,
            Some(c),
            spec.detector.auto_offset(),
        );
        b.contamination_value = Some(c);
        b.flag_share = crate::detect::model::flag_share(candidate_scores, b.offset);
        info.contamination_before = Some(base);
        info.contamination_after = b.flag_share;
    }
    tracing::info!(feedback = %info.describe(), "model trained with feedback");
    b.feedback = Some(info);
}

/// Why a saved model does not fit the current rows of `fs` (empty when it fits): too few
/// training rows, another population, accounts it never saw (where keys recur).
pub fn fitness_problems(
    settings: &Settings,
    fs: &FeatureSet,
    resolved: &Resolved,
    b: &crate::detect::model::ModelBundle,
) -> Result<Vec<String>, DetectError> {
    let main: Vec<String> = crate::detect::fitness::main_features(&fs.names)
        .into_iter()
        .map(|j| fs.names[j].clone())
        .collect();
    let xm = features::matrix(&fs.df, &main)?;
    // Unseen keys only matter where keys recur file after file (accounts, not trades).
    let keys = key_chunk(&fs.df);
    let key_refs = if resolved.profile.keys_recur {
        key_refs(keys.as_ref(), fs.df.height())
    } else {
        Vec::new()
    };
    Ok(crate::detect::fitness::check(
        b.training_rows,
        b.population.as_ref(),
        &xm,
        &main,
        &key_refs,
        &settings.detect.fitness,
    ))
}

/// Scores the current rows of a run with a model that was loaded, not found in the store (a
/// bundle file): its encoders are applied, then the rows are scored, triaged and clustered as
/// [`score`] does. `status` says why this model is used.
pub fn score_with_bundle(
    settings: &Settings,
    run: &mut RunOutput,
    store: &crate::store::Store,
    opts: &DetectOptions,
    bundle: crate::detect::model::ModelBundle,
    status: ModelStatus,
) -> Result<Detection, DetectError> {
    features::apply_encoders(&mut run.features, &bundle.encoders)?;
    score_loaded(
        settings,
        run,
        store,
        opts,
        (bundle, status),
        None,
        None,
        None,
        Vec::new(),
    )
}
