//! Scoring with a model, and the triage that keeps explained and judged-normal breaks quiet.

use super::*;

/// The end of [`score`]: scores, triages and clusters the current rows with `model`.
/// `precomputed`, `current_x` and `current_diff` are the current rows' scores, matrix and
/// differences when training already computed them.
#[allow(clippy::too_many_arguments)]
pub(super) fn score_loaded(
    settings: &Settings,
    run: &mut RunOutput,
    store: &crate::store::Store,
    opts: &DetectOptions,
    model: (crate::detect::model::ModelBundle, ModelStatus),
    precomputed: Option<Vec<f64>>,
    current_x: Option<super::model::CurrentMatrix>,
    current_diff: Option<Vec<f64>>,
    mut timings: Vec<(&'static str, Duration)>,
) -> Result<Detection, DetectError> {
    use crate::detect::model;
    let (bundle, status) = model;
    let fs = &run.features;
    let t = Instant::now();
    let (mut quiet, own_z) = triage_inputs(&fs.df)?;
    let proposed = quiet_explained_and_judged(settings, &fs.df, &run.profile, store, &mut quiet)?;
    let tparams = settings.detect.triage;
    let triage = Some(crate::detect::model::Triage {
        quiet: &quiet,
        own_z: &own_z,
        params: &tparams,
        score_quiet: opts.score_all,
        shown: &proposed,
    });
    let all = opts.all_attributions;
    let (scored, rows) = match current_x {
        Some(super::model::CurrentMatrix::Scaled(s)) => (
            bundle.score_triaged_scaled(&s, precomputed, all, triage)?,
            s.rows(),
        ),
        Some(super::model::CurrentMatrix::Features(x)) => (
            bundle.score_triaged(&x, precomputed, all, triage)?,
            x.rows(),
        ),
        // The features scaled as the matrix is built (the scaler's transform would write it
        // a second time), when the widths agree; the scoring names them otherwise.
        None if bundle.feature_names.len() == fs.names.len()
            && bundle.scaler.center.len() == fs.names.len() =>
        {
            let s = features::matrix_scaled(
                &fs.df,
                &fs.names,
                &bundle.scaler.center,
                &bundle.scaler.scale,
            )?;
            (
                bundle.score_triaged_scaled(&s, precomputed, all, triage)?,
                s.rows(),
            )
        }
        None => {
            let x = features::matrix(&fs.df, &fs.names)?;
            (
                bundle.score_triaged(&x, precomputed, all, triage)?,
                x.rows(),
            )
        }
    };
    tracing::info!(triage = %scored.triage.describe(), "scored");
    timings.push(("score", t.elapsed()));
    let rank = model::ranks(&scored.score);
    let diff = match current_diff {
        Some(d) if d.len() == rows => d,
        _ => features::column_f64(&fs.df, "bd_difference").unwrap_or_else(|_| vec![0.0; rows]),
    };
    let keys = key_chunk(&fs.df);
    let key_refs = key_refs(keys.as_ref(), rows);
    let clusters = crate::detect::cluster::summarize(
        bundle.centroids.as_ref().map_or(1, |c| c.k),
        &scored.cluster,
        &scored.flag,
        &diff,
        &key_refs,
        settings.detect.top_accounts,
    );
    Ok(Detection {
        bundle,
        status,
        scored,
        rank,
        proposed,
        quiet,
        own_z,
        clusters,
        timings,
    })
}

/// Marks the candidates whose source comment explains them ([`Quiet::Explained`], by the rules
/// file's explanations) and those an analyst rejected as normal whose break persists with a
/// difference within `[feedback] judged_normal_share` of the one judged ([`Quiet::Judged`]).
/// Returns, per row, whether an explained break is proposed for auto-resolution (its bucket
/// allows it): those rows open cases although they are not flagged.
///
/// [`Quiet::Explained`]: crate::detect::triage::Quiet::Explained
/// [`Quiet::Judged`]: crate::detect::triage::Quiet::Judged
pub fn quiet_explained_and_judged(
    settings: &Settings,
    df: &polars::prelude::DataFrame,
    profile: &str,
    store: &crate::store::Store,
    quiet: &mut [Option<crate::detect::triage::Quiet>],
) -> Result<Vec<bool>, DetectError> {
    use crate::detect::triage::Quiet;
    use polars::prelude::*;
    let n = df.height();
    let mut proposed = vec![false; n];
    // Only breaks can be explained (a profile without tolerance has none).
    let Ok(is_break) = df.column(features::IS_BREAK) else {
        return Ok(proposed);
    };
    let is_break: Vec<bool> = is_break
        .bool()
        .map_err(features::FeatureError::from)?
        .iter()
        .map(|b| b.unwrap_or(false))
        .collect();
    // A text column (cast when needed), read in place.
    let text = |name: &str| -> Option<StringChunked> {
        df.column(name)
            .and_then(|c| c.cast(&DataType::String))
            .ok()
            .and_then(|c| c.str().ok().cloned())
    };
    let at = |ca: &Option<StringChunked>, i: usize| -> String {
        ca.as_ref()
            .and_then(|ca| ca.get(i))
            .unwrap_or("")
            .to_string()
    };
    let comments = text("bd_comment");
    let dq = text("bd_dq");
    let rules = rules_file(settings).map_err(|e| DetectError::Config(e.to_string()))?;
    if let Some(comments) = &comments
        && !rules.explanations.is_empty()
    {
        use rayon::prelude::*;
        // The breaks that may be explained, and each distinct comment among them looked up
        // once, on every core: Some(proposed for auto-resolution) when a phrase explains it.
        let rows: Vec<usize> = (0..n)
            .filter(|&i| {
                quiet[i].is_none()
                    && is_break[i]
                    && dq.as_ref().and_then(|d| d.get(i)).unwrap_or("").is_empty()
            })
            .collect();
        let distinct: Vec<&str> = rows
            .iter()
            .map(|&i| comments.get(i).unwrap_or(""))
            .collect::<PlHashSet<&str>>()
            .into_iter()
            .collect();
        let explained: PlHashMap<&str, bool> = distinct
            .par_iter()
            .filter_map(|c| {
                rules
                    .explanation(profile, c)
                    .map(|e| (*c, rules.explained_auto_resolves(e)))
            })
            .collect();
        for i in rows {
            if let Some(p) = explained.get(comments.get(i).unwrap_or("")) {
                quiet[i] = Some(Quiet::Explained);
                proposed[i] = *p;
            }
        }
    }
    // Verdicts: the rejected cases of this profile, by key.
    if !settings.feedback.enabled {
        return Ok(proposed);
    }
    let mut judged: std::collections::HashMap<String, Vec<(chrono::NaiveDate, f64)>> =
        Default::default();
    for l in crate::cases::Cases::new(store).labels()? {
        if l.profile == profile
            && !l.label
            && let (Some(start), Some(d)) = (l.start_date, l.difference)
        {
            judged.entry(l.key).or_default().push((start, d));
        }
    }
    if judged.is_empty() {
        return Ok(proposed);
    }
    let keys = text("bd_key");
    let dates = text("bd_date");
    let (keys, dates): (Vec<String>, Vec<String>) =
        (0..n).map(|i| (at(&keys, i), at(&dates, i))).unzip();
    let diff = features::column_f64(df, "bd_difference").unwrap_or_else(|_| vec![f64::NAN; n]);
    let age = features::column_f64(df, "f_break_age").unwrap_or_else(|_| vec![0.0; n]);
    let share = settings.feedback.judged_normal_share;
    for i in 0..n {
        if quiet[i].is_some() || !is_break[i] {
            continue;
        }
        let Some(verdicts) = judged.get(&keys[i]) else {
            continue;
        };
        let Ok(date) = chrono::NaiveDate::parse_from_str(&dates[i], "%Y-%m-%d") else {
            continue;
        };
        let days = if age[i].is_finite() && age[i] >= 0.0 {
            age[i].round() as i64
        } else {
            0
        };
        let start = date - chrono::Duration::days(days);
        let d = diff[i];
        if verdicts.iter().any(|(s, j)| {
            *s == start
                && d.is_finite()
                && d.signum() == j.signum()
                && (d - j).abs() <= share * j.abs()
        }) {
            quiet[i] = Some(Quiet::Judged);
        }
    }
    Ok(proposed)
}

/// The account key column (`bd_key`), when the table has one.
pub(super) fn key_chunk(df: &polars::prelude::DataFrame) -> Option<polars::prelude::StringChunked> {
    df.column("bd_key").ok().and_then(|c| c.str().ok().cloned())
}

/// Each of `n` rows' account key (empty without keys), borrowed from the column.
pub(super) fn key_refs(ca: Option<&polars::prelude::StringChunked>, n: usize) -> Vec<&str> {
    match ca {
        Some(ca) => ca.iter().map(|v| v.unwrap_or("")).collect(),
        None => vec![""; n],
    }
}

/// Each row's reason to be quiet (None for a candidate) and its own z, from the feature table's
/// columns: within tolerance ([`features::IS_BREAK`] false), routine
/// ([`features::OWN_ROUTINE_CODE`]). A table without them (no tolerance) has only candidates.
pub fn triage_inputs(
    df: &polars::prelude::DataFrame,
) -> Result<(Vec<Option<crate::detect::triage::Quiet>>, Vec<f64>), features::FeatureError> {
    use crate::detect::triage::Quiet;
    let n = df.height();
    let mut quiet: Vec<Option<Quiet>> = vec![None; n];
    if let Ok(c) = df.column(features::IS_BREAK) {
        for (q, b) in quiet.iter_mut().zip(c.bool()?.iter()) {
            if b == Some(false) {
                *q = Some(Quiet::WithinTolerance);
            }
        }
    }
    if let Ok(c) = df.column(features::OWN_ROUTINE_CODE) {
        let c = c.cast(&polars::prelude::DataType::UInt32)?;
        for (q, code) in quiet.iter_mut().zip(c.u32()?.iter()) {
            if q.is_none()
                && let Some(r) = code.and_then(|c| crate::routine::Reason::from_code(c as u8))
            {
                *q = Some(Quiet::Routine(r));
            }
        }
    } else if let Ok(c) = df.column(features::OWN_ROUTINE) {
        for (q, text) in quiet.iter_mut().zip(c.str()?.iter()) {
            if q.is_none()
                && let Some(r) = text.and_then(crate::routine::Reason::parse)
            {
                *q = Some(Quiet::Routine(r));
            }
        }
    }
    let own_z = match df.column(features::OWN_Z) {
        Ok(_) => features::column_f64(df, features::OWN_Z)?,
        Err(_) => vec![0.0; n],
    };
    Ok((quiet, own_z))
}

/// The current rows with the detection columns: score, decision, is_anomaly, rank, cluster,
/// top_features, model_version. `all_rows`: every row in file order; otherwise the flagged rows
/// (and the explained breaks proposed for auto-resolution), most anomalous first (the columns are only built for the rows written).
/// The rows `idx` of `df`, column by column on every core. A text column read in pieces is
/// put together first: polars then gathers its values by reference, where across pieces it
/// copies each string (about twice the time at 50,000 of 1,000,000 rows).
fn take_rows(
    df: &polars::prelude::DataFrame,
    idx: &polars::prelude::IdxCa,
) -> polars::prelude::PolarsResult<polars::prelude::DataFrame> {
    use polars::prelude::*;
    use rayon::prelude::*;
    let cols = df
        .columns()
        .par_iter()
        .map(|c| {
            let pieces = c.n_chunks();
            if pieces > 1 && matches!(c.dtype(), DataType::String | DataType::Binary) {
                c.rechunk().take(idx)
            } else {
                c.take(idx)
            }
        })
        .collect::<PolarsResult<Vec<Column>>>()?;
    DataFrame::new(idx.len(), cols)
}

pub fn with_detection(
    df: &polars::prelude::DataFrame,
    d: &Detection,
    names: &[String],
    all_rows: bool,
) -> Result<polars::prelude::DataFrame, polars::prelude::PolarsError> {
    use polars::prelude::*;
    let s = &d.scored;
    let idx: Vec<usize> = if all_rows {
        (0..s.score.len()).collect()
    } else {
        let mut f: Vec<usize> = (0..s.score.len())
            .filter(|i| s.flag[*i] || d.proposed.get(*i).copied().unwrap_or(false))
            .collect();
        f.sort_by_key(|i| d.rank[*i]);
        f
    };
    let mut out = if all_rows {
        df.clone()
    } else {
        let take = IdxCa::from_vec("idx".into(), idx.iter().map(|i| *i as IdxSize).collect());
        take_rows(df, &take)?
    };
    let pick = |v: &[f64]| -> Vec<f64> { idx.iter().map(|i| v[*i]).collect() };
    out.with_column(Column::new("score".into(), pick(&s.score)))?;
    out.with_column(Column::new("model_score".into(), pick(&s.model)))?;
    out.with_column(Column::new("decision".into(), pick(&s.decision)))?;
    out.with_column(Column::new(
        "is_anomaly".into(),
        idx.iter().map(|i| s.flag[*i]).collect::<Vec<bool>>(),
    ))?;
    out.with_column(Column::new(
        "rank".into(),
        idx.iter().map(|i| d.rank[*i] as u32).collect::<Vec<u32>>(),
    ))?;
    out.with_column(Column::new(
        "cluster".into(),
        idx.iter()
            .map(|i| s.cluster[*i] as u32)
            .collect::<Vec<u32>>(),
    ))?;
    let top: Vec<String> = {
        use rayon::prelude::*;
        idx.par_iter()
            .map(|i| crate::detect::model::top_attributions(&s.attributions[*i], names, 3))
            .collect()
    };
    out.with_column(Column::new("top_features".into(), top))?;
    let n = out.height();
    out.with_column(Column::new_scalar(
        "model_version".into(),
        Scalar::new(
            DataType::String,
            AnyValue::StringOwned(d.bundle.version().into()),
        ),
        n,
    ))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use polars::prelude::*;

    #[test]
    fn rows_gathered_from_text_read_in_pieces_are_the_rows() {
        let piece = |from: usize| {
            let text: Vec<Option<String>> = (from..from + 40)
                .map(|i| (i % 9 != 0).then(|| format!("value {i} with a longer tail {}", i * 7)))
                .collect();
            DataFrame::new_infer_height(vec![
                Column::new("t".into(), text),
                Column::new(
                    "n".into(),
                    (from..from + 40).map(|i| i as f64).collect::<Vec<_>>(),
                ),
            ])
            .unwrap()
        };
        let mut df = piece(0);
        df.vstack_mut(&piece(40)).unwrap();
        df.vstack_mut(&piece(80)).unwrap();
        assert_eq!(df.column("t").unwrap().n_chunks(), 3);
        let idx = IdxCa::from_vec("i".into(), vec![119, 0, 45, 45, 81, 9, 40, 39]);
        let got = take_rows(&df, &idx).unwrap();
        assert_eq!(got, df.take(&idx).unwrap());
        assert_eq!(
            got.column("t").unwrap().str().unwrap().get(0),
            Some("value 119 with a longer tail 833")
        );
        assert_eq!(got.column("t").unwrap().str().unwrap().get(5), None);
    }
}
