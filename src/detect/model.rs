//! The model bundle: everything needed to score new data with the model that was trained —
//! the profile and feature-schema fingerprint, encoders, scaler, the forest or the LOF reference
//! set, the offset, centroids, contamination, training row count, trained-at and seed.
//!
//! Training: RobustScaler on the training rows, then the detector, then the offset from the
//! contamination, then KMeans. Scoring: the same scaler, the detector's score (higher = more
//! normal), decision = score − offset, flagged when decision < 0.

use super::cluster::{self, Centroids, ClusterParams};
use super::contamination::{self, Contamination};
use super::iforest::{IForestParams, IsolationForest};
use super::lof::{LocalOutlierFactor, LofParams};
use super::matrix::{Matrix, Unscaled};
use super::scaler::RobustScaler;
use crate::features::{LabelEncoder, Preset};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Format version of a serialized bundle.
pub const BUNDLE_FORMAT: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error(
        "cannot train a model on {0} row(s): at least 2 are needed (give a --history file, or train on a larger file first with `breakdesk train`)"
    )]
    TooFewRows(usize),
    #[error("Isolation Forest: {0}")]
    IForest(String),
    #[error("LOF: {0}")]
    Lof(String),
    #[error("clustering: {0}")]
    Cluster(String),
    #[error("the model expects {expected} features, the data has {got}")]
    Shape { expected: usize, got: usize },
    #[error("the triage has {quiet} reasons and {own_z} own z for {rows} rows")]
    TriageShape {
        rows: usize,
        quiet: usize,
        own_z: usize,
    },
    #[error("cannot read the model bundle: {0}")]
    Decode(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DetectorKind {
    IForest,
    Lof,
}

impl std::str::FromStr for DetectorKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "iforest" => Ok(DetectorKind::IForest),
            "lof" => Ok(DetectorKind::Lof),
            _ => Err(format!("unknown detector {s:?}: use iforest or lof")),
        }
    }
}

impl DetectorKind {
    pub const ALL: [DetectorKind; 2] = [DetectorKind::IForest, DetectorKind::Lof];

    pub fn as_str(&self) -> &'static str {
        match self {
            DetectorKind::IForest => "iforest",
            DetectorKind::Lof => "lof",
        }
    }
    /// scikit-learn's offset for contamination "auto".
    pub fn auto_offset(&self) -> f64 {
        match self {
            DetectorKind::IForest => -0.5,
            DetectorKind::Lof => -1.5,
        }
    }
}

/// Everything that decides how a model is trained; part of the fingerprint.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TrainSpec {
    pub detector: DetectorKind,
    pub contamination: Contamination,
    pub mad_k: f64,
    pub iforest: IForestParams,
    pub lof: LofParams,
    /// LOF keeps at most this many reference rows (a seeded sample).
    pub lof_max_reference: usize,
    pub cluster: ClusterParams,
    pub seed: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Detector {
    IForest(IsolationForest),
    Lof(LocalOutlierFactor),
}

impl Detector {
    /// The detector's scores of the rows `rows` of `scaled` (every row when None); the other
    /// rows get NaN (not scored).
    fn scores_of(&self, scaled: &Matrix, rows: Option<&[usize]>) -> Result<Vec<f64>, ModelError> {
        // A subset of the rows (every row is no subset).
        let rows = rows.filter(|idx| idx.len() < scaled.rows());
        if rows.is_some_and(|idx| idx.is_empty()) {
            return Ok(vec![f64::NAN; scaled.rows()]);
        }
        let subset = rows.map(|idx| scaled.select_rows(idx));
        let x = subset.as_ref().unwrap_or(scaled);
        let s = match self {
            Detector::IForest(f) => f
                .score_samples(x)
                .map_err(|e| ModelError::IForest(e.to_string()))?,
            Detector::Lof(l) => l
                .score_samples(x)
                .map_err(|e| ModelError::Lof(e.to_string()))?,
        };
        let Some(idx) = rows else {
            return Ok(s);
        };
        let mut all = vec![f64::NAN; scaled.rows()];
        for (i, v) in idx.iter().zip(s) {
            all[*i] = v;
        }
        Ok(all)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelBundle {
    pub format: u32,
    pub fingerprint: String,
    pub profile: String,
    pub preset: Preset,
    pub feature_names: Vec<String>,
    pub encoders: Vec<LabelEncoder>,
    pub scaler: RobustScaler,
    pub detector: Detector,
    #[serde(with = "super::exact::scalar")]
    pub offset: f64,
    pub contamination: Contamination,
    /// The contamination value used (None for auto).
    #[serde(with = "super::exact::option")]
    pub contamination_value: Option<f64>,
    pub centroids: Option<Centroids>,
    /// The share of the training rows the model flags.
    #[serde(default)]
    pub flag_share: Option<f64>,
    /// What the analysts' feedback changed in the training, when there was any.
    #[serde(default)]
    pub feedback: Option<super::feedback::FeedbackInfo>,
    pub training_rows: usize,
    pub trained_at: String,
    pub seed: u64,
    pub spec: TrainSpec,
    /// SHA-256 of the training rows ([`super::fitness::data_digest`]); empty in bundles saved
    /// before it was kept.
    #[serde(default)]
    pub data_digest: String,
    /// The model's identity: schema fingerprint, training data digest and seed
    /// ([`super::fitness::model_id`]).
    #[serde(default)]
    pub model_id: String,
    /// What the training rows looked like, to judge the model's fitness for a file.
    #[serde(default)]
    pub population: Option<super::fitness::Population>,
}

/// The fingerprint of a model's schema: profile, preset, feature names and training spec.
pub fn fingerprint(profile: &str, preset: Preset, features: &[String], spec: &TrainSpec) -> String {
    let mut h = Sha256::new();
    h.update(format!("bundle-format:{BUNDLE_FORMAT}\n").as_bytes());
    h.update(format!("profile:{profile}\npreset:{}\n", preset.as_str()).as_bytes());
    for f in features {
        h.update(f.as_bytes());
        h.update(b"\n");
    }
    h.update(serde_json::to_string(spec).unwrap_or_default().as_bytes());
    let d = h.finalize();
    d.iter().take(12).map(|b| format!("{b:02x}")).collect()
}

/// The triage's inputs for [`ModelBundle::score_triaged`], one entry per row.
#[derive(Debug, Clone, Copy)]
pub struct Triage<'a> {
    pub quiet: &'a [Option<super::triage::Quiet>],
    pub own_z: &'a [f64],
    pub params: &'a super::triage::TriageParams,
    /// Give the quiet rows (within tolerance, or breaks the triage explains) a detector score
    /// too. When false only the candidates and the rows of `shown` are scored: the other quiet
    /// rows get a NaN detector score and decision and rank after every scored row (a quiet row
    /// ranks after every candidate either way; see [`super::triage`]).
    pub score_quiet: bool,
    /// Quiet rows written all the same (explained breaks proposed for auto-resolution), scored
    /// even when the quiet rows are not; empty: none.
    pub shown: &'a [bool],
}

/// Scores of a set of rows.
#[derive(Debug, Clone)]
pub struct Scored {
    /// The triage score (see [`super::triage`]): higher = more normal. Without a triage, the
    /// detector's score.
    pub score: Vec<f64>,
    /// Detector score: higher = more normal (scikit-learn's score_samples).
    pub model: Vec<f64>,
    /// The detector's score minus the model's offset.
    pub decision: Vec<f64>,
    pub flag: Vec<bool>,
    /// What the triage did (empty without one).
    pub triage: super::triage::TriageSummary,
    /// Per row, each feature's share in explaining the score (sums to 1 or is all 0).
    pub attributions: Vec<Vec<f64>>,
    pub cluster: Vec<usize>,
}

fn seeded_sample(n: usize, max: usize, seed: u64) -> Option<Vec<usize>> {
    use rand::SeedableRng;
    if n <= max {
        return None;
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut idx = rand::seq::index::sample(&mut rng, n, max).into_vec();
    idx.sort_unstable();
    Some(idx)
}

/// LOF has no split paths: a row's attribution is each feature's share of its absolute scaled
/// value, i.e. how far the row sits from the median in inter-quartile ranges, per feature.
fn deviation_attributions(scaled: &Matrix) -> Vec<Vec<f64>> {
    (0..scaled.rows())
        .map(|i| {
            let r = scaled.row(i);
            let total: f64 = r.iter().map(|v| v.abs()).sum();
            if total > 0.0 {
                r.iter().map(|v| v.abs() / total).collect()
            } else {
                vec![0.0; r.len()]
            }
        })
        .collect()
}

pub struct TrainInput<'a> {
    pub profile: &'a str,
    pub preset: Preset,
    pub feature_names: &'a [String],
    pub encoders: &'a [LabelEncoder],
    /// The training rows' features (unscaled).
    pub x: Unscaled<'a>,
    /// The primary difference of each training row (for the contamination estimators).
    pub difference: &'a [f64],
    /// Rows that only shape the detector, as normal: analyst-rejected rows, repeated. They are
    /// left out of the scaler, the offset and the clusters, and get no score.
    pub extra_normal: Option<&'a Matrix>,
    /// Which training rows are triage candidates (breaks nothing explains): the contamination
    /// is estimated among them and the offset set on their scores. None (or none of them): all
    /// rows.
    pub candidates: Option<&'a [bool]>,
    /// The account of each training row (for the population's account sketch); empty: none.
    pub keys: &'a [&'a str],
}

/// The values of `v` at the candidate rows of `mask` (all of `v` without a usable mask).
pub fn among(v: &[f64], mask: Option<&[bool]>) -> Vec<f64> {
    match mask {
        Some(m) if m.len() == v.len() && m.iter().any(|b| *b) => v
            .iter()
            .zip(m)
            .filter(|(_, c)| **c)
            .map(|(x, _)| *x)
            .collect(),
        _ => v.to_vec(),
    }
}

/// The detector fitted on the scaled training rows (and the feedback's normal rows), with the
/// training rows' scores (see [`train`]).
fn fit_detector(
    input: &TrainInput,
    spec: &TrainSpec,
    scaled: &Matrix,
    extra: Option<&Matrix>,
) -> Result<(Detector, Vec<f64>), ModelError> {
    match spec.detector {
        DetectorKind::IForest => {
            let mut p = spec.iforest.clone();
            p.seed = spec.seed;
            let fitted_on = match &extra {
                Some(e) => std::borrow::Cow::Owned(scaled.stack(e)),
                None => std::borrow::Cow::Borrowed(scaled),
            };
            let f = IsolationForest::fit(&fitted_on, &p)
                .map_err(|e| ModelError::IForest(e.to_string()))?;
            drop(fitted_on);
            let d = Detector::IForest(f);
            let s = d.scores_of(
                scaled,
                candidate_rows(input.candidates, scaled.rows()).as_deref(),
            )?;
            Ok((d, s))
        }
        DetectorKind::Lof => {
            let mut reference =
                match seeded_sample(scaled.rows(), spec.lof_max_reference, spec.seed) {
                    Some(idx) => scaled.select_rows(&idx),
                    None => scaled.clone(),
                };
            let own = extra.is_none() && reference.rows() == scaled.rows();
            if let Some(e) = &extra {
                reference = reference.stack(e);
            }
            let l = LocalOutlierFactor::fit(&reference, &spec.lof)
                .map_err(|e| ModelError::Lof(e.to_string()))?;
            let s = if own {
                l.negative_outlier_factor().to_vec()
            } else {
                l.score_samples(scaled)
                    .map_err(|e| ModelError::Lof(e.to_string()))?
            };
            Ok((Detector::Lof(l), s))
        }
    }
}

/// The KMeans centroids of the scaled training rows (None when too few rows).
fn fit_centroids(
    scaled: &Matrix,
    params: &cluster::ClusterParams,
) -> Result<Option<cluster::Centroids>, ModelError> {
    cluster::fit(scaled, params).map(Some).or_else(|e| match e {
        cluster::ClusterError::TooFew(_) => Ok(None),
        other => Err(ModelError::Cluster(other.to_string())),
    })
}

/// The rows [`among`] picks with `mask` (None: every row).
fn candidate_rows(mask: Option<&[bool]>, rows: usize) -> Option<Vec<usize>> {
    let m = mask.filter(|m| m.len() == rows && m.iter().any(|b| *b))?;
    Some((0..rows).filter(|i| m[*i]).collect())
}

/// Trains a bundle. Also returns the scaled training matrix's detector scores, for callers that
/// score the training rows themselves (no separate history): LOF then uses the fit scores, as
/// scikit-learn's `fit_predict` does, instead of scoring points against themselves. An
/// isolation forest scores only the candidates when `input.candidates` names some (NaN
/// elsewhere; [`ModelBundle::score_triaged`] scores the others it needs): the offset and the
/// flag share are estimated among the candidates, and nothing else reads the training scores.
pub fn train(input: &TrainInput, spec: &TrainSpec) -> Result<(ModelBundle, Vec<f64>), ModelError> {
    train_keeping_scaled(input, spec).map(|(bundle, scores, _)| (bundle, scores))
}

/// [`train`], also returning the training rows scaled by the bundle's scaler: what
/// [`ModelBundle::score_triaged_scaled`] reads when the same rows are scored next.
pub fn train_keeping_scaled(
    input: &TrainInput,
    spec: &TrainSpec,
) -> Result<(ModelBundle, Vec<f64>, Matrix), ModelError> {
    let x = input.x;
    if x.rows() < 2 {
        return Err(ModelError::TooFewRows(x.rows()));
    }
    let scaler = match x {
        Unscaled::Rows(m) => RobustScaler::fit(m),
        Unscaled::Columns { columns, .. } => {
            RobustScaler::fit_columns(columns.len(), |j| Ok::<_, ModelError>(columns[j].to_vec()))?
        }
    };
    let scaled = match x {
        Unscaled::Rows(m) => scaler.transform(m).map_err(ModelError::IForest)?,
        Unscaled::Columns { columns, .. } => {
            let m = Matrix::from_columns(columns).map_err(ModelError::IForest)?;
            scaler.transform(&m).map_err(ModelError::IForest)?
        }
    };
    train_scaled(input, spec, scaler, scaled)
}

/// [`train_keeping_scaled`] of rows the caller already scaled with `scaler` (fitted on them):
/// `scaled` is `input.x` transformed by it.
pub fn train_scaled(
    input: &TrainInput,
    spec: &TrainSpec,
    scaler: RobustScaler,
    scaled: Matrix,
) -> Result<(ModelBundle, Vec<f64>, Matrix), ModelError> {
    let x = input.x;
    if x.rows() < 2 {
        return Err(ModelError::TooFewRows(x.rows()));
    }
    if scaled.rows() != x.rows() || scaled.cols() != x.cols() || scaler.center.len() != x.cols() {
        return Err(ModelError::IForest(format!(
            "the scaled rows are {}x{} ({} scaler columns), the training rows {}x{}",
            scaled.rows(),
            scaled.cols(),
            scaler.center.len(),
            x.rows(),
            x.cols()
        )));
    }
    let extra = match input.extra_normal {
        Some(e) if e.rows() > 0 => {
            if e.cols() != x.cols() {
                return Err(ModelError::IForest(format!(
                    "feedback rows have {} features, the training rows {}",
                    e.cols(),
                    x.cols()
                )));
            }
            Some(scaler.transform(e).map_err(ModelError::IForest)?)
        }
        _ => None,
    };
    let keys: &[&str] = if input.keys.len() == x.rows() {
        input.keys
    } else {
        &[]
    };
    // The detector, the clusters and the population's summaries read the same rows and
    // nothing of each other: they are built side by side.
    let (fitted, (centroids, (data_digest, population))) = rayon::join(
        || fit_detector(input, spec, &scaled, extra.as_ref()),
        || {
            rayon::join(
                || fit_centroids(&scaled, &spec.cluster),
                || {
                    (
                        super::fitness::data_digest(x, input.extra_normal),
                        super::fitness::population(x, input.feature_names, keys),
                    )
                },
            )
        },
    );
    let (detector, train_scores) = fitted?;
    let centroids = centroids?;
    // Among the breaks nothing explains: their differences and scores.
    let contamination_value = contamination::resolve(
        spec.contamination,
        &among(input.difference, input.candidates),
        spec.mad_k,
    );
    let candidate_scores = among(&train_scores, input.candidates);
    let offset = contamination::offset(
        &candidate_scores,
        contamination_value,
        spec.detector.auto_offset(),
    );
    let flag_share = flag_share(&candidate_scores, offset);
    let fp = fingerprint(input.profile, input.preset, input.feature_names, spec);
    let bundle = ModelBundle {
        format: BUNDLE_FORMAT,
        model_id: super::fitness::model_id(&fp, &data_digest, spec.seed),
        data_digest,
        population: Some(population),
        fingerprint: fp,
        profile: input.profile.to_string(),
        preset: input.preset,
        feature_names: input.feature_names.to_vec(),
        encoders: input.encoders.to_vec(),
        scaler,
        detector,
        offset,
        contamination: spec.contamination,
        contamination_value,
        centroids,
        flag_share,
        feedback: None,
        training_rows: x.rows(),
        trained_at: chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        seed: spec.seed,
        spec: spec.clone(),
    };
    Ok((bundle, train_scores, scaled))
}

/// The share of `scores` below `offset` (None without scores).
pub fn flag_share(scores: &[f64], offset: f64) -> Option<f64> {
    (!scores.is_empty())
        .then(|| scores.iter().filter(|s| **s < offset).count() as f64 / scores.len() as f64)
}

impl ModelBundle {
    /// A short, human-readable model version for outputs and the audit trail: the profile, the
    /// detector and the model id (schema, training data and seed; the schema fingerprint for
    /// bundles saved before the id was kept).
    pub fn version(&self) -> String {
        let id = if self.model_id.is_empty() {
            &self.fingerprint
        } else {
            &self.model_id
        };
        format!(
            "{}-{}-{}",
            self.profile,
            self.spec.detector.as_str(),
            &id[..8.min(id.len())]
        )
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn from_json(bytes: &[u8]) -> Result<ModelBundle, ModelError> {
        let b: ModelBundle =
            serde_json::from_slice(bytes).map_err(|e| ModelError::Decode(e.to_string()))?;
        if b.format != BUNDLE_FORMAT {
            return Err(ModelError::Decode(format!(
                "bundle format {} (this build reads {BUNDLE_FORMAT})",
                b.format
            )));
        }
        // A bundle file can come from anywhere: its centroids must be the k × features values
        // that scoring reads.
        if let Some(c) = &b.centroids
            && (c.k == 0
                || c.dims != b.feature_names.len()
                || Some(c.values.len()) != c.k.checked_mul(c.dims))
        {
            return Err(ModelError::Decode(format!(
                "the clusters' centroids are {} values for k = {} of {} dimensions; the model has {} features",
                c.values.len(),
                c.k,
                c.dims,
                b.feature_names.len()
            )));
        }
        Ok(b)
    }

    /// Scores rows. `precomputed` gives the detector scores when the rows are the training rows
    /// themselves (see [`train`]): they are not computed again. Attributions are computed for every row when `all_attributions`,
    /// else for the flagged rows only (the others get an empty list).
    pub fn score(
        &self,
        x: &Matrix,
        precomputed: Option<Vec<f64>>,
        all_attributions: bool,
    ) -> Result<Scored, ModelError> {
        self.score_triaged(x, precomputed, all_attributions, None)
    }

    /// [`ModelBundle::score`], then the triage ([`super::triage::triage`]) when given: each
    /// row's reason to be quiet (None for a candidate) and its own z. The flags and the score are
    /// then the triage's, and attributions follow its flags.
    pub fn score_triaged(
        &self,
        x: &Matrix,
        precomputed: Option<Vec<f64>>,
        all_attributions: bool,
        triage: Option<Triage<'_>>,
    ) -> Result<Scored, ModelError> {
        self.check_width(x)?;
        let scaled = self.scaler.transform(x).map_err(ModelError::IForest)?;
        self.score_triaged_scaled(&scaled, precomputed, all_attributions, triage)
    }

    /// Rows of this bundle's features, or the error that names both widths.
    fn check_width(&self, x: &Matrix) -> Result<(), ModelError> {
        if x.cols() == self.feature_names.len() {
            Ok(())
        } else {
            Err(ModelError::Shape {
                expected: self.feature_names.len(),
                got: x.cols(),
            })
        }
    }

    /// [`ModelBundle::score_triaged`] of rows already scaled by this bundle's scaler (as
    /// [`train_keeping_scaled`] hands them on).
    pub fn score_triaged_scaled(
        &self,
        scaled: &Matrix,
        precomputed: Option<Vec<f64>>,
        all_attributions: bool,
        triage: Option<Triage<'_>>,
    ) -> Result<Scored, ModelError> {
        self.check_width(scaled)?;
        // The rows that need a detector score: all, or the candidates and the rows shown.
        let wanted = |i: usize| match triage {
            Some(t) if !t.score_quiet => {
                t.quiet.get(i).copied().flatten().is_none()
                    || t.shown.get(i).copied().unwrap_or(false)
            }
            _ => true,
        };
        let score = match precomputed {
            Some(mut s) if s.len() == scaled.rows() => {
                // A row not wanted has no score, whether the training scored it or not.
                for (i, v) in s.iter_mut().enumerate() {
                    if !wanted(i) {
                        *v = f64::NAN;
                    }
                }
                let missing: Vec<usize> = (0..scaled.rows())
                    .filter(|i| s[*i].is_nan() && wanted(*i))
                    .collect();
                if !missing.is_empty() {
                    let more = self.detector.scores_of(scaled, Some(&missing))?;
                    for i in missing {
                        s[i] = more[i];
                    }
                }
                s
            }
            _ => {
                let rows: Vec<usize> = (0..scaled.rows()).filter(|i| wanted(*i)).collect();
                self.detector.scores_of(scaled, Some(&rows))?
            }
        };
        let decision: Vec<f64> = score.iter().map(|s| s - self.offset).collect();
        let (triaged, flag, summary) = match triage {
            Some(t) => {
                if t.quiet.len() != scaled.rows() || t.own_z.len() != scaled.rows() {
                    return Err(ModelError::TriageShape {
                        rows: scaled.rows(),
                        quiet: t.quiet.len(),
                        own_z: t.own_z.len(),
                    });
                }
                super::triage::triage(&score, self.offset, t.own_z, t.quiet, t.params)
            }
            None => (
                score.clone(),
                decision.iter().map(|d| *d < 0.0).collect(),
                super::triage::TriageSummary::default(),
            ),
        };
        let wanted: Vec<usize> = (0..scaled.rows())
            .filter(|i| all_attributions || flag[*i])
            .collect();
        let subset = if wanted.len() == scaled.rows() {
            scaled.clone()
        } else {
            scaled.select_rows(&wanted)
        };
        let computed = match &self.detector {
            // Nothing flagged (e.g. one normal record): no attributions to compute.
            _ if wanted.is_empty() => Vec::new(),
            Detector::IForest(f) => {
                f.score_with_attributions(&subset)
                    .map_err(|e| ModelError::IForest(e.to_string()))?
                    .1
            }
            Detector::Lof(_) => deviation_attributions(&subset),
        };
        let mut attributions = vec![Vec::new(); scaled.rows()];
        for (i, a) in wanted.into_iter().zip(computed) {
            attributions[i] = a;
        }
        let cluster = match &self.centroids {
            Some(c) => c.assign(scaled),
            None => vec![0; scaled.rows()],
        };
        Ok(Scored {
            score: triaged,
            model: score,
            decision,
            flag,
            triage: summary,
            attributions,
            cluster,
        })
    }
}

/// Ranks rows by score, most anomalous (lowest score) first: rank 1 is the most anomalous.
pub fn ranks(score: &[f64]) -> Vec<usize> {
    ranks_by(score, |i| i as u64)
        .into_iter()
        .map(|r| r as usize)
        .collect()
}

/// Ranks rows by score as [`ranks`] does, rows of equal score in the order of `tie` (distinct
/// for every row: its place in the file); sorted on every core, on direct keys.
pub fn ranks_by(score: &[f64], tie: impl Fn(usize) -> u64 + Sync) -> Vec<u32> {
    use rayon::prelude::*;
    let mut order: Vec<(i64, u64, u32)> = (0..score.len())
        .into_par_iter()
        .map(|i| (total_order(score[i]), tie(i), i as u32))
        .collect();
    order.par_sort_unstable();
    let mut rank = vec![0u32; score.len()];
    for (pos, (_, _, i)) in order.iter().enumerate() {
        rank[*i as usize] = (pos + 1) as u32;
    }
    rank
}

/// The ranks [`ranks_by`] gives the rows that `wanted` names; the other rows ranked below
/// every wanted one get `u32::MAX`. Only the rows down to the lowest-ranked wanted one are
/// sorted: few when the wanted rows are the most anomalous.
pub fn ranks_of(
    score: &[f64],
    tie: impl Fn(usize) -> u64 + Sync,
    wanted: impl Fn(usize) -> bool + Sync,
) -> Vec<u32> {
    use rayon::prelude::*;
    let key = |i: usize| (total_order(score[i]), tie(i));
    let Some(deepest) = (0..score.len())
        .into_par_iter()
        .filter(|i| wanted(*i))
        .map(key)
        .max()
    else {
        return vec![u32::MAX; score.len()];
    };
    let mut order: Vec<(i64, u64, u32)> = (0..score.len())
        .into_par_iter()
        .filter_map(|i| {
            let (s, t) = key(i);
            ((s, t) <= deepest).then_some((s, t, i as u32))
        })
        .collect();
    order.par_sort_unstable();
    let mut rank = vec![u32::MAX; score.len()];
    for (pos, (_, _, i)) in order.iter().enumerate() {
        rank[*i as usize] = (pos + 1) as u32;
    }
    rank
}

/// `x` as an integer in the order of [`f64::total_cmp`] (as it computes it).
pub fn total_order(x: f64) -> i64 {
    let bits = x.to_bits() as i64;
    bits ^ ((((bits >> 63) as u64) >> 1) as i64)
}

/// The `k` largest attributions of a row as `name share; name share`.
pub fn top_attributions(weights: &[f64], names: &[String], k: usize) -> String {
    let mut idx: Vec<usize> = (0..weights.len()).filter(|i| weights[*i] > 0.0).collect();
    idx.sort_by(|a, b| weights[*b].total_cmp(&weights[*a]).then(a.cmp(b)));
    idx.truncate(k);
    idx.iter()
        .map(|i| {
            format!(
                "{} {:.2}",
                names.get(*i).map_or("?", |s| s.as_str()),
                weights[*i]
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(detector: DetectorKind) -> TrainSpec {
        TrainSpec {
            detector,
            contamination: Contamination::Fixed(0.05),
            mad_k: 3.0,
            iforest: IForestParams {
                n_estimators: 50,
                ..Default::default()
            },
            lof: LofParams { n_neighbors: 10 },
            lof_max_reference: 300,
            cluster: ClusterParams {
                k: 3,
                ..Default::default()
            },
            seed: 7,
        }
    }

    fn data() -> (Matrix, Vec<f64>) {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let mut v = Vec::new();
        for i in 0..400 {
            let far = i % 50 == 0;
            for _ in 0..4 {
                v.push(rng.r#gen::<f64>() * if far { 100.0 } else { 1.0 });
            }
        }
        let diff: Vec<f64> = (0..400)
            .map(|i| if i % 50 == 0 { 9.0 } else { 0.0 })
            .collect();
        (Matrix::new(400, 4, v).unwrap(), diff)
    }

    fn train_on(x: &Matrix, diff: &[f64], det: DetectorKind) -> (ModelBundle, Vec<f64>) {
        let (bundle, scores, _) = train_keeping_scaled_on(x, diff, det);
        (bundle, scores)
    }

    /// [`train_keeping_scaled`] on `x` with features named f_0, f_1, …
    fn train_keeping_scaled_on(
        x: &Matrix,
        diff: &[f64],
        det: DetectorKind,
    ) -> (ModelBundle, Vec<f64>, Matrix) {
        let names: Vec<String> = (0..x.cols()).map(|i| format!("f_{i}")).collect();
        train_keeping_scaled(
            &TrainInput {
                profile: "p",
                preset: Preset::Seed,
                feature_names: &names,
                encoders: &[],
                x: x.into(),
                difference: diff,
                extra_normal: None,
                candidates: None,
                keys: &[],
            },
            &spec(det),
        )
        .unwrap()
    }

    #[test]
    fn rows_given_as_columns_and_scaled_ahead_train_the_same_model() {
        let (x, diff) = data();
        for det in [DetectorKind::IForest, DetectorKind::Lof] {
            let (whole, scores, scaled) = train_keeping_scaled_on(&x, &diff, det);
            let columns: Vec<Vec<f64>> = (0..x.cols()).map(|j| x.column(j)).collect();
            let refs: Vec<&[f64]> = columns.iter().map(Vec::as_slice).collect();
            let names: Vec<String> = (0..x.cols()).map(|i| format!("f_{i}")).collect();
            let input = TrainInput {
                profile: "p",
                preset: Preset::Seed,
                feature_names: &names,
                encoders: &[],
                x: Unscaled::Columns {
                    rows: x.rows(),
                    columns: &refs,
                },
                difference: &diff,
                extra_normal: None,
                candidates: None,
                keys: &[],
            };
            // Scaled here from the columns, or handed the rows scaled ahead.
            let (b, s, m) = train_keeping_scaled(&input, &spec(det)).unwrap();
            let (b2, s2, m2) =
                train_scaled(&input, &spec(det), whole.scaler.clone(), scaled.clone()).unwrap();
            for (b, s, m) in [(&b, &s, &m), (&b2, &s2, &m2)] {
                // The same bundle in every field but the time of training.
                let without_time = |b: &ModelBundle| {
                    let mut b = b.clone();
                    b.trained_at.clear();
                    b.to_json()
                };
                assert_eq!(without_time(b), without_time(&whole));
                assert_eq!(b.model_id, whole.model_id);
                assert_eq!(b.population, whole.population);
                assert_eq!(s.len(), scores.len());
                assert!(
                    s.iter()
                        .zip(&scores)
                        .all(|(a, b)| a.to_bits() == b.to_bits())
                );
                assert_eq!(m.data(), scaled.data());
            }
            // Scaled rows that are not the training rows' are refused, not trained on.
            let short = scaled.select_rows(&[0, 1, 2]);
            let err = train_scaled(&input, &spec(det), whole.scaler.clone(), short).unwrap_err();
            assert!(err.to_string().contains("scaled rows are 3x"), "{err}");
        }
    }

    #[test]
    fn quiet_rows_are_scored_only_when_asked_and_rank_after_every_candidate() {
        use crate::detect::triage::{Quiet, TriageParams};
        let (x, diff) = data();
        let (b, _) = train_on(&x, &diff, DetectorKind::IForest);
        let n = x.rows();
        // The far rows (the most isolated) are within tolerance; of the others, every 7th is a
        // candidate and the rest routine breaks.
        let within = |i: usize| i.is_multiple_of(50);
        let quiet: Vec<Option<Quiet>> = (0..n)
            .map(|i| match i {
                _ if within(i) => Some(Quiet::WithinTolerance),
                _ if i.is_multiple_of(7) => None,
                _ => Some(Quiet::Routine(crate::routine::Reason::Standing)),
            })
            .collect();
        let own_z = vec![0.0; n];
        let params = TriageParams::default();
        // Every 11th routine break is written all the same (proposed for auto-resolution).
        let shown: Vec<bool> = (0..n)
            .map(|i| !within(i) && quiet[i].is_some() && i.is_multiple_of(11))
            .collect();
        let scored_with = |all: bool, precomputed: Option<Vec<f64>>| {
            b.score_triaged(
                &x,
                precomputed,
                false,
                Some(Triage {
                    quiet: &quiet,
                    own_z: &own_z,
                    params: &params,
                    score_quiet: all,
                    shown: &shown,
                }),
            )
            .unwrap()
        };
        let scored = |all: bool| scored_with(all, None);
        let (some, every) = (scored(false), scored(true));
        let candidate = |i: usize| quiet[i].is_none();
        assert!(shown.iter().filter(|s| **s).count() > 3);
        for (i, shown) in shown.iter().enumerate() {
            assert_eq!(some.model[i].is_nan(), !candidate(i) && !shown, "row {i}");
            assert!(every.model[i].is_finite(), "row {i}");
        }
        assert_eq!(some.flag, every.flag);
        let (r_some, r_every) = (ranks(&some.score), ranks(&every.score));
        for r in [&r_some, &r_every] {
            let last_candidate = (0..n).filter(|i| candidate(*i)).map(|i| r[i]).max();
            let first_quiet = (0..n).filter(|i| !candidate(*i)).map(|i| r[i]).min();
            assert!(
                last_candidate < first_quiet,
                "{last_candidate:?} {first_quiet:?}"
            );
        }
        // Scored, routine breaks still rank before the rows within tolerance.
        let last_routine = (0..n)
            .filter(|i| !candidate(*i) && !within(*i))
            .map(|i| r_every[i])
            .max();
        let first_within = (0..n).filter(|i| within(*i)).map(|i| r_every[i]).min();
        assert!(
            last_routine < first_within,
            "{last_routine:?} {first_within:?}"
        );
        // A candidate's score, flag and rank do not depend on whether the quiet rows are scored;
        // a row shown keeps its score, and ranks after the candidates, before the rows unscored.
        for i in (0..n).filter(|i| candidate(*i)) {
            assert_eq!(some.model[i], every.model[i], "row {i}");
            assert_eq!(some.score[i], every.score[i], "row {i}");
            assert_eq!(r_some[i], r_every[i], "row {i}");
        }
        let last_shown = (0..n).filter(|i| shown[*i]).map(|i| r_some[i]).max();
        let first_unscored = (0..n)
            .filter(|i| some.model[*i].is_nan())
            .map(|i| r_some[i])
            .min();
        assert!(
            last_shown < first_unscored,
            "{last_shown:?} {first_unscored:?}"
        );
        for i in (0..n).filter(|i| shown[*i]) {
            assert_eq!(some.model[i], every.model[i], "row {i}");
            assert_eq!(some.score[i], every.score[i], "row {i}");
        }
        // Scores the training gave every row: a quiet row not shown drops its score all the
        // same, so a run that trains ranks as a run with a saved model does.
        let pre = scored_with(false, Some(every.model.clone()));
        for i in 0..n {
            assert_eq!(pre.model[i].is_nan(), some.model[i].is_nan(), "row {i}");
            assert_eq!(pre.score[i], some.score[i], "row {i}");
        }
        assert_eq!(ranks(&pre.score), r_some);
    }

    #[test]
    fn rows_added_as_normal_stop_being_isolated_and_stay_out_of_the_offset() {
        let (x, diff) = data();
        let names: Vec<String> = (0..x.cols()).map(|i| format!("f_{i}")).collect();
        // The most anomalous training row, repeated 40 times as "normal" (a rejected row).
        for det in [DetectorKind::IForest, DetectorKind::Lof] {
            let (plain, scores) = train_on(&x, &diff, det);
            let worst = (0..scores.len())
                .min_by(|a, b| scores[*a].total_cmp(&scores[*b]))
                .unwrap();
            let extra = x.select_rows(&vec![worst; 40]);
            let (fed, fed_scores) = train(
                &TrainInput {
                    profile: "p",
                    preset: Preset::Seed,
                    feature_names: &names,
                    encoders: &[],
                    x: (&x).into(),
                    difference: &diff,
                    extra_normal: Some(&extra),
                    candidates: None,
                    keys: &[],
                },
                &spec(det),
            )
            .unwrap();
            // Scores are of the training rows only; the offset is their 5th percentile.
            assert_eq!(fed_scores.len(), x.rows());
            assert_eq!(fed.training_rows, x.rows());
            assert!(
                (0.045..=0.055).contains(&fed.flag_share.unwrap()),
                "{det:?}"
            );
            assert!(
                fed_scores[worst] > scores[worst] + 0.05,
                "{det:?}: {} -> {}",
                scores[worst],
                fed_scores[worst]
            );
            // It was the most anomalous row; now others are more anomalous than it.
            let below = fed_scores
                .iter()
                .filter(|s| **s < fed_scores[worst])
                .count();
            assert!(below >= 5, "{det:?}: {below} rows below it");
            assert!(plain.feedback.is_none());
        }
    }

    #[test]
    fn the_trainings_scaled_rows_score_as_the_rows_themselves() {
        let (x, diff) = data();
        for det in [DetectorKind::IForest, DetectorKind::Lof] {
            let (b, train_scores, scaled) = train_keeping_scaled_on(&x, &diff, det);
            assert_eq!(scaled, b.scaler.transform(&x).unwrap(), "{det:?}");
            let bits = |v: &[f64]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            let by_rows = b
                .score_triaged(&x, Some(train_scores.clone()), false, None)
                .unwrap();
            let by_scaled = b
                .score_triaged_scaled(&scaled, Some(train_scores), false, None)
                .unwrap();
            assert_eq!(bits(&by_rows.score), bits(&by_scaled.score), "{det:?}");
            assert_eq!(by_rows.flag, by_scaled.flag);
            assert!(
                by_rows.flag.iter().any(|f| *f),
                "{det:?}: something is flagged"
            );
            assert_eq!(by_rows.attributions, by_scaled.attributions);
            assert_eq!(by_rows.cluster, by_scaled.cluster);
            assert!(matches!(
                b.score_triaged_scaled(
                    &Matrix::new(1, 2, vec![0.0; 2]).unwrap(),
                    None,
                    false,
                    None
                ),
                Err(ModelError::Shape {
                    expected: 4,
                    got: 2
                })
            ));
        }
    }

    #[test]
    fn a_saved_bundle_scores_bit_identically_for_both_detectors() {
        let (x, diff) = data();
        for det in [DetectorKind::IForest, DetectorKind::Lof] {
            let (b, train_scores) = train_on(&x, &diff, det);
            assert_eq!(b.contamination_value, Some(0.05));
            // 5% of the training rows score below the offset.
            let below = train_scores.iter().filter(|s| **s < b.offset).count();
            assert!((19..=21).contains(&below), "{det:?}: {below}");
            let loaded = ModelBundle::from_json(&b.to_json()).unwrap();
            let a = b.score(&x, None, true).unwrap();
            let c = loaded.score(&x, None, true).unwrap();
            assert!(
                a.score
                    .iter()
                    .zip(&c.score)
                    .all(|(p, q)| p.to_bits() == q.to_bits()),
                "{det:?}"
            );
            assert_eq!(a.flag, c.flag);
            assert_eq!(a.cluster, c.cluster);
            assert_eq!(b.offset.to_bits(), loaded.offset.to_bits());
            // The far rows are the flagged ones.
            let flagged_far = (0..400).filter(|i| a.flag[*i] && i % 50 == 0).count();
            assert!(
                flagged_far >= 6,
                "{det:?}: {flagged_far} of 8 far rows flagged"
            );
            // Attributions: all rows when asked, only flagged rows otherwise.
            assert!(a.attributions.iter().all(|w| w.len() == 4));
            let f = b.score(&x, None, false).unwrap();
            for (i, w) in f.attributions.iter().enumerate() {
                assert_eq!(w.is_empty(), !f.flag[i]);
            }
        }
        assert!(ModelBundle::from_json(b"{}").is_err());
        // Centroids that do not fit the bundle are refused when it is read, not met by scoring.
        let (b, _) = train_on(&x, &diff, DetectorKind::IForest);
        let good: serde_json::Value = serde_json::from_slice(&b.to_json()).unwrap();
        assert!(good["centroids"]["k"].as_u64().unwrap() >= 2);
        for (field, value) in [
            ("k", serde_json::json!(1_000_000_000_000u64)),
            ("k", serde_json::json!(0)),
            ("dims", serde_json::json!(3)),
            ("values", serde_json::json!(["1.0"])),
        ] {
            let mut bad = good.clone();
            bad["centroids"][field] = value;
            let e = ModelBundle::from_json(&serde_json::to_vec(&bad).unwrap());
            assert!(
                matches!(&e, Err(ModelError::Decode(m)) if m.contains("centroids")),
                "{field}: {e:?}"
            );
        }
        assert!(ModelBundle::from_json(&serde_json::to_vec(&good).unwrap()).is_ok());
        let wrong = Matrix::new(1, 3, vec![0.0; 3]).unwrap();
        let (b, _) = train_on(&x, &diff, DetectorKind::IForest);
        assert!(matches!(
            b.score(&wrong, None, false),
            Err(ModelError::Shape {
                expected: 4,
                got: 3
            })
        ));
    }

    #[test]
    fn fingerprint_changes_with_features_and_spec() {
        let names: Vec<String> = vec!["f_a".into(), "f_b".into()];
        let s = spec(DetectorKind::IForest);
        let a = fingerprint("gl_ihub", Preset::Seed, &names, &s);
        assert_eq!(a, fingerprint("gl_ihub", Preset::Seed, &names, &s));
        assert_ne!(a, fingerprint("gl_ihub", Preset::Breaks, &names, &s));
        assert_ne!(a, fingerprint("trades", Preset::Seed, &names, &s));
        assert_ne!(a, fingerprint("gl_ihub", Preset::Seed, &names[..1], &s));
        assert_ne!(
            a,
            fingerprint("gl_ihub", Preset::Seed, &names, &spec(DetectorKind::Lof))
        );
    }

    #[test]
    fn ranks_put_the_lowest_score_first() {
        assert_eq!(ranks(&[-0.4, -0.9, -0.5, -0.9]), vec![4, 1, 3, 2]);
    }

    #[test]
    fn ranks_of_the_wanted_rows_are_their_ranks_among_every_row() {
        // Scores with ties, rows tied by a distinct number not in row order.
        let mut x: u64 = 7;
        let mut next = || {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            x >> 33
        };
        let n = 2000;
        let score: Vec<f64> = (0..n).map(|_| -((next() % 50) as f64) / 10.0).collect();
        let tie: Vec<u64> = (0..n as u64).map(|i| (i * 7919) % n as u64).collect();
        let all = ranks_by(&score, |i| tie[i]);
        for share in [0u64, 1, 5, 50, 100] {
            let wanted: Vec<bool> = (0..n).map(|_| next() % 100 < share).collect();
            let some = ranks_of(&score, |i| tie[i], |i| wanted[i]);
            let deepest = (0..n).filter(|i| wanted[*i]).map(|i| all[i]).max();
            for i in 0..n {
                if wanted[i] || deepest.is_some_and(|d| all[i] <= d) {
                    assert_eq!(some[i], all[i], "row {i}, {share}% wanted");
                } else {
                    assert_eq!(some[i], u32::MAX, "row {i}, {share}% wanted");
                }
            }
        }
    }

    #[test]
    fn top_attributions_are_sorted_and_named() {
        let names: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        assert_eq!(
            top_attributions(&[0.2, 0.7, 0.1], &names, 2),
            "b 0.70; a 0.20"
        );
        assert_eq!(top_attributions(&[0.0, 0.0, 0.0], &names, 2), "");
    }

    #[test]
    fn total_order_orders_as_total_cmp() {
        let xs = [
            f64::NEG_INFINITY,
            -1e300,
            -1.5,
            -f64::MIN_POSITIVE,
            -5e-324,
            -0.0,
            0.0,
            5e-324,
            f64::MIN_POSITIVE,
            0.25,
            1.5,
            1e300,
            f64::INFINITY,
            f64::NAN,
            -f64::NAN,
        ];
        for a in xs {
            for b in xs {
                assert_eq!(
                    total_order(a).cmp(&total_order(b)),
                    a.total_cmp(&b),
                    "{a} / {b}"
                );
            }
        }
    }
}
