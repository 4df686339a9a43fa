//! Analysis for the terminal UI and the service: every row scored, with or without a saved model bundle.

use super::*;

/// What the analysis of a file needs besides the input options.
#[derive(Debug, Clone, Default)]
pub struct AnalyzeOptions {
    pub detect: DetectOptions,
    /// Keep every row in the table (flagged or not), in file order; otherwise only the flagged
    /// rows, most anomalous first.
    pub all_rows: bool,
    /// Render the table's CSV while the cases are recorded ([`Analysis::csv_ahead`]): for a
    /// caller that writes it as CSV.
    pub render_csv: bool,
}

/// A file analysed end to end: features, detection, categorization and the cases recorded.
pub struct Analysis {
    pub run: RunOutput,
    pub det: Detection,
    /// The rows written by `run`: the file's columns, features, detection, categorization and case
    /// columns.
    pub table: polars::prelude::DataFrame,
    /// The table rows that are anomalies (all of them unless `all_rows`).
    pub rows: Vec<usize>,
    pub categorized: Categorized,
    /// What each of `rows` did to its case (id, ticket, status).
    pub cases: Vec<crate::cases::Recorded>,
    /// The cycle's summary: rows, breaks, and what happened to the cases.
    pub summary: crate::cycle::RunSummary,
    pub timings: Vec<(&'static str, Duration)>,
    /// The table's CSV without the case columns, rendered while the cases were recorded (with
    /// [`AnalyzeOptions::render_csv`]), for [`crate::output::write_table_after`].
    pub csv_ahead: Option<crate::output::CsvLines>,
}

#[derive(Debug, thiserror::Error)]
pub enum AnalyzeError {
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error(transparent)]
    Detect(#[from] DetectError),
    #[error(transparent)]
    Rules(#[from] crate::categorize::RulesError),
    #[error(transparent)]
    Cases(#[from] crate::cases::CaseError),
    #[error("building the result table: {0}")]
    Table(#[from] polars::prelude::PolarsError),
}

/// Reads, checks, computes features, scores, categorizes and records one case per anomaly — the
/// work of `run`, the TUI and the service. Progress covers every stage; `cancel` is honoured
/// between stages up to the point where cases are written (after which the run completes, so
/// the store never holds half a run).
pub fn analyze(
    settings: &Settings,
    opts: &RunOptions,
    aopts: &AnalyzeOptions,
    store: &crate::store::Store,
    rejects_hint: &str,
    progress: &mut dyn FnMut(Progress),
    cancel: &AtomicBool,
) -> Result<Analysis, AnalyzeError> {
    analyze_observed(
        settings,
        opts,
        aopts,
        store,
        rejects_hint,
        progress,
        cancel,
        &mut |_| {},
    )
}

/// A result available before the analysis ends, for faces that show results as stages finish.
pub enum Partial<'a> {
    /// Scored and clustered: `table` has the detection columns (as [`with_detection`] builds
    /// it) but no categories or cases yet.
    Detected {
        run: &'a RunOutput,
        det: &'a Detection,
        table: &'a polars::prelude::DataFrame,
    },
}

/// [`analyze`], handing `observe` each [`Partial`] result as its stage finishes.
#[allow(clippy::too_many_arguments)]
pub fn analyze_observed(
    settings: &Settings,
    opts: &RunOptions,
    aopts: &AnalyzeOptions,
    store: &crate::store::Store,
    rejects_hint: &str,
    progress: &mut dyn FnMut(Progress),
    cancel: &AtomicBool,
    observe: &mut dyn FnMut(Partial<'_>),
) -> Result<Analysis, AnalyzeError> {
    analyze_with(
        settings,
        opts,
        aopts,
        None,
        store,
        rejects_hint,
        progress,
        cancel,
        observe,
    )
}

/// The analysis of a file: with the model of the store ([`score`]: trained when there is none
/// that fits) or with `model` read from a file (on one partition of the accounts, recording
/// cases or not).
#[allow(clippy::too_many_arguments)]
pub(super) fn analyze_with(
    settings: &Settings,
    opts: &RunOptions,
    aopts: &AnalyzeOptions,
    mut model: Option<BundleRun<'_>>,
    store: &crate::store::Store,
    rejects_hint: &str,
    progress: &mut dyn FnMut(Progress),
    cancel: &AtomicBool,
    observe: &mut dyn FnMut(Partial<'_>),
) -> Result<Analysis, AnalyzeError> {
    const AFTER: u64 = 3;
    let mut total = 0;
    let partition = model.as_ref().and_then(|m| m.partition);
    let spill = model.as_ref().and_then(|m| m.spill);
    let record_cases = model.as_ref().is_none_or(|m| m.record_cases);
    let categorize = model.as_ref().is_none_or(|m| m.categorize);
    let prepared = model.as_mut().and_then(|m| m.prepared.take());
    // A detection is reused only with the rows it was made on.
    let detected = model
        .as_mut()
        .and_then(|m| m.detected.take())
        .filter(|_| prepared.is_some());
    let mut result = match prepared {
        Some(r) => {
            total = AFTER;
            r
        }
        None => run_selecting(
            settings,
            opts,
            partition,
            spill,
            rejects_hint,
            &mut |p: Progress| {
                total = p.total + AFTER;
                progress(Progress {
                    stage: p.stage,
                    done: p.done,
                    total: p.total + AFTER,
                })
            },
            cancel,
        )?,
    };
    let base = total.saturating_sub(AFTER);
    let step = |progress: &mut dyn FnMut(Progress), stage: Stage, k: u64| {
        if cancel.load(Ordering::Relaxed) {
            return Err(PipelineError::Cancelled);
        }
        progress(Progress {
            stage,
            done: base + k,
            total,
        });
        Ok(())
    };
    let mut timings = Vec::new();
    step(progress, Stage::Detect, 0)?;
    let det = match detected {
        Some(det) => det,
        None => detect_with(settings, &mut result, store, aopts, model)?,
    };
    let t = Instant::now();
    let mut table = with_detection(
        &result.features.df,
        &det,
        &result.features.names,
        aopts.all_rows,
    )?;
    timings.push(("table", t.elapsed()));
    observe(Partial::Detected {
        run: &result,
        det: &det,
        table: &table,
    });

    step(progress, Stage::Categorize, 1)?;
    let t = Instant::now();
    let (rows, categorized) = if categorize {
        categorize_table(settings, store, aopts, &det, &result, &mut table, progress)?
    } else {
        with_categories(&mut table, &[], &[])?;
        let rows = anomaly_rows(aopts, &det, table.height());
        (
            rows,
            Categorized {
                cats: Vec::new(),
                llm: None,
            },
        )
    };
    timings.push(("categorize", t.elapsed()));

    let mut csv_ahead = None;
    let (cases, summary) = if record_cases {
        step(progress, Stage::Cases, 2)?;
        let t = Instant::now();
        // Cases are durable before anything that names them is shown or written.
        let file = opts.input.display().to_string();
        // The rows' CSV does not depend on their cases: it is rendered beside the recording
        // (a failure to render is left to the writer, which renders again and says why). The
        // recording stays on this thread: it reads and writes sled, which no job on rayon's
        // threads may do (see `Store::case_transaction_in`).
        let render = aopts.render_csv && table.height() <= crate::output::RENDER_AHEAD_MAX_ROWS;
        let (recorded, ahead) = std::thread::scope(|s| {
            let rendering = render
                .then(|| {
                    std::thread::Builder::new()
                        .name("breakdesk-render".into())
                        .spawn_scoped(s, || crate::output::render_csv(&table).ok())
                        .ok()
                })
                .flatten();
            let recorded = record_run_cases(
                settings,
                store,
                &result,
                &det,
                &table,
                &rows,
                &categorized,
                &file,
            );
            (recorded, rendering.and_then(|h| h.join().ok().flatten()))
        });
        let (cases, summary) = recorded?;
        csv_ahead = ahead;
        with_cases(&mut table, &rows, &cases)?;
        timings.push(("cases", t.elapsed()));
        (cases, summary)
    } else {
        with_cases(&mut table, &[], &[])?;
        (Vec::new(), crate::cycle::RunSummary::default())
    };
    progress(Progress {
        stage: if record_cases {
            Stage::Cases
        } else {
            Stage::Categorize
        },
        done: total,
        total,
    });
    Ok(Analysis {
        run: result,
        det,
        table,
        rows,
        categorized,
        cases,
        summary,
        timings,
        csv_ahead,
    })
}

/// The rows scored with the store's model ([`score`]), a bundle whose fitness is known, or a
/// bundle read from a file (checked against the rows).
fn detect_with(
    settings: &Settings,
    result: &mut RunOutput,
    store: &crate::store::Store,
    aopts: &AnalyzeOptions,
    model: Option<BundleRun<'_>>,
) -> Result<Detection, AnalyzeError> {
    // A table of every row shows every row's score.
    let mut dopts = aopts.detect.clone();
    dopts.score_all |= aopts.all_rows;
    Ok(match model {
        None => score(settings, result, store, &dopts)?,
        Some(BundleRun {
            bundle,
            known: Some(status),
            ..
        }) => score_with_bundle(settings, result, store, &dopts, bundle, status)?,
        Some(m) => score_from_file(settings, result, store, &dopts, m.bundle, m.file)?,
    })
}

/// The rows to categorize (the flagged and the proposed among every row, or all of a table of
/// flagged rows), categorized and their columns added to `table`.
fn categorize_table(
    settings: &Settings,
    store: &crate::store::Store,
    aopts: &AnalyzeOptions,
    det: &Detection,
    result: &RunOutput,
    table: &mut polars::prelude::DataFrame,
    progress: &mut dyn FnMut(Progress),
) -> Result<(Vec<usize>, Categorized), AnalyzeError> {
    let rules = rules_file(settings)?;
    let flagged_total = det.scored.flag.iter().filter(|f| **f).count();
    let rows = anomaly_rows(aopts, det, table.height());
    let categorized = categorize_observed(
        settings,
        &rules,
        table,
        &result.resolved,
        &rows,
        flagged_total,
        store,
        Some(&mut |done, asked| {
            progress(Progress {
                stage: Stage::CategorizeLlm,
                done: done as u64,
                total: asked as u64,
            })
        }),
    )?;
    with_categories(table, &rows, &categorized.cats)?;
    Ok((rows, categorized))
}

/// The rows of a table of `n` rows that are anomalies: the flagged rows and the explained
/// breaks proposed for auto-resolution among every row, or all of a table of them.
fn anomaly_rows(aopts: &AnalyzeOptions, det: &Detection, n: usize) -> Vec<usize> {
    if aopts.all_rows {
        (0..n)
            .filter(|i| det.scored.flag[*i] || det.proposed.get(*i).copied().unwrap_or(false))
            .collect()
    } else {
        (0..n).collect()
    }
}

/// Why `bundle` (read from `file`) cannot score the rows of `run`: another profile, feature preset
/// or feature set, or another detector than `detector` asks for. None when it can.
pub fn bundle_mismatch(
    bundle: &crate::detect::model::ModelBundle,
    run: &RunOutput,
    detector: Option<crate::detect::model::DetectorKind>,
) -> Option<String> {
    let fs = &run.features;
    if bundle.profile != run.profile {
        return Some(format!(
            "it is a model of profile {}, and this file's profile is {}",
            bundle.profile, run.profile
        ));
    }
    if bundle.preset != fs.preset {
        return Some(format!(
            "it was trained on the {} feature preset, and this run computes {} (--preset)",
            bundle.preset.as_str(),
            fs.preset.as_str()
        ));
    }
    if bundle.feature_names != fs.names {
        let missing: Vec<&str> = bundle
            .feature_names
            .iter()
            .filter(|n| !fs.names.contains(n))
            .map(String::as_str)
            .collect();
        let extra: Vec<&str> = fs
            .names
            .iter()
            .filter(|n| !bundle.feature_names.contains(n))
            .map(String::as_str)
            .collect();
        let mut parts = Vec::new();
        if !missing.is_empty() {
            parts.push(format!("the file lacks {}", missing.join(", ")));
        }
        if !extra.is_empty() {
            parts.push(format!("the model lacks {}", extra.join(", ")));
        }
        if parts.is_empty() {
            parts.push("the same features in another order".to_string());
        }
        return Some(format!(
            "its features differ from this file's ({})",
            parts.join("; ")
        ));
    }
    if let Some(d) = detector
        && d != bundle.spec.detector
    {
        return Some(format!(
            "it is a {} model, and --detector asks for {}",
            bundle.spec.detector.as_str(),
            d.as_str()
        ));
    }
    None
}

/// What [`analyze_with_bundle`] does besides [`analyze`]'s options.
pub struct BundleRun<'a> {
    /// The model, and the file it was read from (for messages).
    pub bundle: crate::detect::model::ModelBundle,
    pub file: &'a str,
    /// Keep only the rows of this partition.
    pub partition: Option<&'a crate::partition::Partition>,
    /// Record a case per anomaly and roll the profile's cases forward (a whole-file run). A
    /// partition's rows are only part of the day: such a run records nothing and its case
    /// columns stay empty.
    pub record_cases: bool,
    /// Categorize the anomalies. A bounded run's part is not: the merge categorizes its rows
    /// again among every part's (the severity's top share and the summary's rank read the
    /// whole file's ranks), so the part's category columns stay empty.
    pub categorize: bool,
    /// The model's status when it is already known to be the one for these rows (a
    /// bounded-memory run's model, trained on another part of the file): no fitness check.
    pub known: Option<ModelStatus>,
    /// The rows come from a spill part of a larger file.
    pub spill: Option<&'a SpillRows>,
    /// The rows already read and featured (by [`run_selecting`] with this run's options): not
    /// read again. The model's encoders are applied to them again, unless `detected` is given.
    pub prepared: Option<RunOutput>,
    /// The `prepared` rows' detection with this bundle (the scoring that followed its training
    /// on them, with this run's detection options): not scored again.
    pub detected: Option<Detection>,
}

/// [`analyze`] with a model bundle read from a file instead of the store (nothing is trained),
/// optionally on one partition of the file's accounts. `store` gives the analysts' verdicts and
/// the LLM's cache, and takes the cases when `record_cases`.
#[allow(clippy::too_many_arguments)]
pub fn analyze_with_bundle(
    settings: &Settings,
    opts: &RunOptions,
    aopts: &AnalyzeOptions,
    model: BundleRun<'_>,
    store: &crate::store::Store,
    rejects_hint: &str,
    progress: &mut dyn FnMut(Progress),
    cancel: &AtomicBool,
) -> Result<Analysis, AnalyzeError> {
    analyze_with(
        settings,
        opts,
        aopts,
        Some(model),
        store,
        rejects_hint,
        progress,
        cancel,
        &mut |_| {},
    )
}

/// [`score`] with `bundle`, read from `file`, instead of the store's model: refused when it
/// cannot score the rows at all, or does not fit them under the refuse policy.
pub(super) fn score_from_file(
    settings: &Settings,
    result: &mut RunOutput,
    store: &crate::store::Store,
    dopts: &DetectOptions,
    bundle: crate::detect::model::ModelBundle,
    file: &str,
) -> Result<Detection, AnalyzeError> {
    if let Some(why) = bundle_mismatch(&bundle, result, dopts.detector) {
        return Err(DetectError::Bundle {
            file: file.to_string(),
            why,
        }
        .into());
    }
    // A model given by hand is used as it is: one that does not fit the file is refused only
    // under the refuse policy, and said otherwise (there is nothing to retrain).
    let problems = fitness_problems(settings, &result.features, &result.resolved, &bundle)?;
    let unfit = (!problems.is_empty()).then(|| problems.join("; "));
    let policy = dopts.policy.unwrap_or(settings.detect.policy);
    if let (Some(why), ModelPolicy::Refuse) = (&unfit, policy) {
        return Err(DetectError::Unfit {
            model: bundle.version(),
            why: why.clone(),
        }
        .into());
    }
    let status = ModelStatus::FromFile {
        path: file.to_string(),
        unfit,
    };
    Ok(score_with_bundle(
        settings, result, store, dopts, bundle, status,
    )?)
}
