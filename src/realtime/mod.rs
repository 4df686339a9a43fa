//! Scoring records one at a time, as they arrive (the service's realtime route).
//!
//! Each account keeps its last records (its *state*); a record's features are computed against
//! the records of its account dated before it, with the formulas of [`crate::features`], and the
//! record then joins the state. A stream of records therefore scores as a daily batch run would,
//! with everything before the day as history. Flagged records are categorized by the same rules
//! (and LLM, when configured) and recorded as cases like a file's anomalies.
//!
//! The state lives in memory, sharded by account, and is written to the store about once a
//! second ([`Stream::persist`]); at start it is read back, or seeded from the history file.

pub mod features;
mod frame;
mod observe;
mod persist;
pub mod record;
mod state;
mod triage;

pub use state::Stream;
pub use triage::{RecordResult, Triaged, cycle_of_observed, triage};

use crate::detect::model::ModelBundle;
use crate::pipeline::Settings;
use features::Plan;
use record::{Canonical, FieldError, RecordReader};

#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error(transparent)]
    Field(#[from] FieldError),
    #[error("scoring failed: {0}")]
    Model(String),
    #[error("store: {0}")]
    Store(#[from] crate::store::StoreError),
}

/// The model and how records are read: swapped as a whole when a retrain finishes.
pub struct Engine {
    pub profile: String,
    pub reader: RecordReader,
    pub plan: Plan,
    pub bundle: ModelBundle,
    pub version: String,
    /// How the model was obtained (loaded, trained because missing, …).
    pub status: String,
    /// The triage's thresholds.
    pub triage: crate::detect::triage::TriageParams,
    /// The rules file (its explanations quiet the breaks a comment explains).
    pub rules: crate::categorize::RulesFile,
}

impl Engine {
    pub fn new(
        settings: &Settings,
        resolved: crate::profile::Resolved,
        bundle: ModelBundle,
        status: String,
    ) -> Result<Engine, String> {
        let plan = Plan::new(
            &resolved,
            bundle.preset,
            settings.features.window,
            settings.features.min_periods,
            &settings.features.routine,
            &bundle.feature_names,
            &bundle.encoders,
        )?;
        Ok(Engine {
            profile: resolved.profile.name.clone(),
            reader: RecordReader::new(resolved, &settings.ingest.prepare)
                .with_limits(settings.record_limits),
            plan,
            version: bundle.version(),
            bundle,
            status,
            triage: settings.detect.triage,
            rules: crate::pipeline::rules_file(settings).map_err(|e| e.to_string())?,
        })
    }
}

/// One scored record.
#[derive(Debug, Clone)]
pub struct Observed {
    pub record: Canonical,
    pub features: Vec<f64>,
    pub score: f64,
    pub model_score: f64,
    pub decision: f64,
    pub flag: bool,
    /// A break its comment explains, proposed for auto-resolution: a case is opened although it
    /// is not flagged.
    pub proposed: bool,
    /// Why the record is not a candidate (None: a break nothing explains).
    pub quiet: Option<crate::detect::triage::Quiet>,
    /// How unusual the record's unexplained part is for its account.
    pub own_z: f64,
    pub cluster: usize,
    pub top_features: String,
    /// The run context (`break_runs::RUN_COLUMNS`), for flagged records.
    pub run_context: Option<Vec<f64>>,
    /// How many earlier records of the account the features saw.
    pub previous: usize,
    /// Days since the record's break began (`f_break_age` of a file run; 0 within tolerance).
    pub break_age: f64,
    pub model_version: String,
}

#[cfg(test)]
mod tests {
    use super::features::Past;
    use super::persist::pasts_of_table;
    use super::state::{before, insert};
    use super::*;
    use crate::features::{FeatureOptions, Preset, apply_encoders, column_f64, compute};
    use crate::ingest::prepare::{PrepareOptions, Prepared, prepare};
    use polars::prelude::*;
    use std::collections::HashMap;

    fn sample(name: &str) -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("assets/samples")
            .join(name)
    }

    fn keep(p: &Prepared, mask: Vec<bool>) -> Prepared {
        let mut out = p.clone();
        out.df =
            p.df.filter(&BooleanChunked::from_iter_values(
                "m".into(),
                mask.into_iter(),
            ))
            .unwrap();
        out
    }

    fn dates(p: &Prepared) -> Vec<i32> {
        p.df.column("bd_date")
            .unwrap()
            .to_physical_repr()
            .i32()
            .unwrap()
            .into_no_null_iter()
            .collect()
    }

    /// The raw row `i` of a prepared table as a JSON record of its own (text) columns.
    fn record(
        p: &Prepared,
        header: &[String],
        i: usize,
    ) -> serde_json::Map<String, serde_json::Value> {
        header
            .iter()
            .map(|h| {
                let v =
                    p.df.column(h.as_str())
                        .unwrap()
                        .str()
                        .unwrap()
                        .get(i)
                        .unwrap_or("");
                (h.clone(), serde_json::Value::String(v.to_string()))
            })
            .collect()
    }

    /// Streams every current record (seeded with the history), and compares each record's
    /// features with a batch run of its date, with everything dated before as history.
    fn parity(history: &Prepared, current: &Prepared, header: &[String], preset: Preset) -> usize {
        parity_counting(history, current, header, preset, &mut 0)
    }

    /// [`parity`], counting the routine breaks met in `routine_seen`.
    fn parity_counting(
        history: &Prepared,
        current: &Prepared,
        header: &[String],
        preset: Preset,
        routine_seen: &mut usize,
    ) -> usize {
        let opts = FeatureOptions {
            preset,
            ..FeatureOptions::default()
        };
        // The model's encoders: fitted on the history.
        let base = compute(history, None, &opts).unwrap();
        let reader = RecordReader::new(current.resolved.clone(), &PrepareOptions::default());
        let plan = Plan::new(
            &current.resolved,
            preset,
            opts.window,
            opts.min_periods,
            &opts.routine,
            &base.names,
            &base.encoders,
        )
        .unwrap();
        let mut state: HashMap<String, Vec<Past>> = HashMap::new();
        for (k, p) in pasts_of_table(&history.df, &history.resolved).unwrap() {
            insert(state.entry(k).or_default(), p, usize::MAX);
        }
        let cur_dates = dates(current);
        let mut days: Vec<i32> = cur_dates.clone();
        days.sort();
        days.dedup();
        let mut compared = 0;
        for d in days {
            let today = keep(current, cur_dates.iter().map(|x| *x == d).collect());
            let earlier = keep(current, cur_dates.iter().map(|x| *x < d).collect());
            let mut hist = history.clone();
            hist.df = history.df.vstack(&earlier.df).unwrap();
            let mut fs = compute(&today, Some(&hist), &opts).unwrap();
            apply_encoders(&mut fs, &base.encoders).unwrap();
            assert_eq!(fs.names, base.names);
            let batch: Vec<Vec<f64>> = fs
                .names
                .iter()
                .map(|n| column_f64(&fs.df, n).unwrap())
                .collect();
            // Stream the day's records (file order), then compare.
            let mut streamed = Vec::new();
            let batch_routine: Vec<u32> = match fs.df.column(crate::features::OWN_ROUTINE) {
                Ok(c) => c
                    .str()
                    .unwrap()
                    .iter()
                    .map(|t| {
                        t.and_then(crate::routine::Reason::parse)
                            .map_or(0, |r| r.code() as u32)
                    })
                    .collect(),
                Err(_) => vec![0; fs.df.height()],
            };
            let batch_z = match fs.df.column(crate::features::OWN_Z) {
                Ok(_) => column_f64(&fs.df, crate::features::OWN_Z).unwrap(),
                Err(_) => vec![0.0; fs.df.height()],
            };
            for i in 0..today.df.height() {
                let rec = reader.read(&record(&today, header, i)).unwrap();
                let records = state.entry(rec.key.clone()).or_default();
                let me = Past::of(&rec);
                let prev = before(records, rec.date);
                let f = plan.compute(&rec, &me, prev);
                // The own normal agrees too: the routine reason and the own z.
                let own = plan.own(&me, prev).and_then(|o| o.me().copied());
                let code = own.and_then(|o| o.routine).map_or(0, |r| r.code() as u32);
                assert_eq!(code, batch_routine[i], "day {d}, row {i}: routine reason");
                let z = own.map_or(0.0, |o| o.own_z);
                assert!(
                    (z - batch_z[i]).abs() <= 1e-9 * (1.0 + z.abs()),
                    "day {d}, row {i}: own z streamed {z}, batch {}",
                    batch_z[i]
                );
                if code != 0 {
                    *routine_seen += 1;
                }
                streamed.push(f);
            }
            for i in 0..today.df.height() {
                let rec = reader.read(&record(&today, header, i)).unwrap();
                insert(
                    state.entry(rec.key.clone()).or_default(),
                    Past::of(&rec),
                    usize::MAX,
                );
            }
            for (i, f) in streamed.iter().enumerate() {
                for (j, n) in fs.names.iter().enumerate() {
                    let (a, b) = (f[j], batch[j][i]);
                    assert!(
                        (a - b).abs() <= 1e-9 * (1.0 + b.abs()),
                        "day {d}, row {i}, {n}: streamed {a}, batch {b}"
                    );
                }
                compared += 1;
            }
        }
        compared
    }

    fn read(path: &std::path::Path, profile: &str) -> (Prepared, Vec<String>) {
        let raw = crate::ingest::read(path, &crate::ingest::ReadOptions::default(), None).unwrap();
        let p = crate::profile::Profile::builtin(profile).unwrap();
        let r = p.resolve(&raw.header, &raw.source, &[]).unwrap();
        let prepared = prepare(&raw, &r, &PrepareOptions::default()).unwrap();
        (prepared, raw.header.clone())
    }

    #[test]
    fn streamed_features_equal_daily_batch_features_gl_ihub() {
        let (h, _) = read(&sample("gl_ihub_history.csv"), "gl_ihub");
        let (c, header) = read(&sample("gl_ihub_current.csv"), "gl_ihub");
        for preset in Preset::ALL {
            let n = parity(&h, &c, &header, preset);
            assert_eq!(n, c.df.height());
        }
    }

    #[test]
    fn streamed_features_equal_daily_batch_features_trades() {
        // The first dates as history, the rest streamed.
        let (all, header) = read(&sample("trades.csv"), "trades");
        let d = dates(&all);
        let mut sorted = d.clone();
        sorted.sort();
        let cut = sorted[sorted.len() / 2];
        let h = keep(&all, d.iter().map(|x| *x < cut).collect());
        let c = keep(&all, d.iter().map(|x| *x >= cut).collect());
        for preset in Preset::ALL {
            let n = parity(&h, &c, &header, preset);
            assert!(n > 100, "{n} records compared");
        }
    }

    #[test]
    fn streamed_features_and_routine_equal_daily_batch_on_routine_accounts() {
        // A generated file whose accounts include standing items, lags and month-end accruals:
        // the first 45 dates as history, the rest streamed day by day.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gl.csv");
        let mut f = std::fs::File::create(&path).unwrap();
        let opts = crate::generate::GenerateOptions {
            rows: 3000,
            seed: 7,
            routine_share: 0.5,
            ..Default::default()
        };
        crate::generate::generate(&opts, &mut f, None).unwrap();
        drop(f);
        let (all, header) = read(&path, "gl_ihub");
        let d = dates(&all);
        let mut sorted = d.clone();
        sorted.sort();
        sorted.dedup();
        let cut = sorted[45];
        let h = keep(&all, d.iter().map(|x| *x < cut).collect());
        let c = keep(&all, d.iter().map(|x| *x >= cut).collect());
        for preset in Preset::ALL {
            let mut routine = 0;
            let n = parity_counting(&h, &c, &header, preset, &mut routine);
            assert_eq!(n, c.df.height());
            assert!(routine > 100, "{routine} routine breaks compared");
        }
    }

    #[test]
    fn insert_keeps_date_order_replaces_a_restated_record_and_caps() {
        let p = |d: i32, v: f64| Past {
            date: Some(d),
            crit: vec![[v, 0.0, v, 0.01]],
            within: false,
        };
        let mut r = Vec::new();
        insert(&mut r, p(3, 3.0), 3);
        insert(&mut r, p(1, 1.0), 3);
        insert(&mut r, p(2, 2.0), 3);
        insert(&mut r, p(2, 20.0), 3);
        assert_eq!(
            r.iter()
                .map(|x| (x.date.unwrap(), x.crit[0][0]))
                .collect::<Vec<_>>(),
            vec![(1, 1.0), (2, 20.0), (3, 3.0)]
        );
        assert_eq!(before(&r, Some(3)).len(), 2);
        assert_eq!(before(&r, Some(1)).len(), 0);
        insert(&mut r, p(4, 4.0), 3);
        assert_eq!(r.first().unwrap().date, Some(2));
        assert_eq!(r.len(), 3);
    }
}
