//! Root-cause buckets, severity and summaries for the flagged rows, and the result columns a run writes.

use super::*;

/// The rules file the settings name, or the built-in one.
pub fn rules_file(
    settings: &Settings,
) -> Result<crate::categorize::RulesFile, crate::categorize::RulesError> {
    settings.categorize.rules_file()
}

/// The categorization of a run's anomalies.
pub struct Categorized {
    pub cats: Vec<crate::categorize::Categorization>,
    /// What the LLM pass did, when it is enabled.
    pub llm: Option<crate::categorize::llm::LlmReport>,
}

/// Categorizes `rows` of `table` (features with the detection's columns, as [`with_detection`]
/// builds it) by the rules, then by the LLM when it is enabled (highest ranks first), with its
/// answers cached in `store`.
pub fn categorize(
    settings: &Settings,
    rules: &crate::categorize::RulesFile,
    table: &polars::prelude::DataFrame,
    resolved: &crate::profile::Resolved,
    rows: &[usize],
    flagged_total: usize,
    store: &crate::store::Store,
) -> Result<Categorized, crate::categorize::RulesError> {
    categorize_observed(
        settings,
        rules,
        table,
        resolved,
        rows,
        flagged_total,
        store,
        None,
    )
}

/// [`categorize`], with `on_answer` (when given) following the LLM's calls: see
/// [`crate::categorize::llm::refine`].
#[allow(clippy::too_many_arguments)]
pub fn categorize_observed(
    settings: &Settings,
    rules: &crate::categorize::RulesFile,
    table: &polars::prelude::DataFrame,
    resolved: &crate::profile::Resolved,
    rows: &[usize],
    flagged_total: usize,
    store: &crate::store::Store,
    on_answer: Option<&mut dyn FnMut(usize, usize)>,
) -> Result<Categorized, crate::categorize::RulesError> {
    use crate::categorize::{RulesError, llm};
    let llm_opts = &settings.categorize.llm;
    if !llm_opts.enabled {
        return Ok(Categorized {
            cats: categorize_rows(rules, table, resolved, rows, flagged_total)?,
            llm: None,
        });
    }
    let mut c = crate::categorize::Categorizer::new(rules, table, resolved)?;
    c.flagged_total = flagged_total;
    let facts = c.facts(table, rows);
    let mut cats = c.categorize(&facts);
    let mut report = None;
    if !cats.is_empty() {
        let prompt = llm::Prompt::load(llm_opts.prompt.as_deref()).map_err(RulesError::Llm)?;
        let client = crate::llm::LlmClient::new(llm_opts.client_settings())
            .map_err(|e| RulesError::Llm(e.to_string()))?;
        // Highest ranks first (the `rank` column; file order without one).
        let rank: Vec<f64> = match table
            .column("rank")
            .and_then(|c| c.cast(&polars::prelude::DataType::Float64))
        {
            Ok(col) => {
                let ca = col
                    .f64()
                    .map_err(|e| RulesError::Llm(e.to_string()))?
                    .clone();
                rows.iter()
                    .map(|r| ca.get(*r).unwrap_or(f64::INFINITY))
                    .collect()
            }
            Err(_) => (0..rows.len()).map(|i| i as f64).collect(),
        };
        let mut order: Vec<usize> = (0..rows.len()).collect();
        order.sort_by(|a, b| rank[*a].total_cmp(&rank[*b]));
        let r = llm::refine(
            llm_opts, &prompt, &client, store, &c, &facts, &mut cats, &order, on_answer,
        );
        tracing::info!(
            rows = r.rows,
            cache_hits = r.cache_hits,
            asked = r.asked,
            used = r.used,
            "llm categorization"
        );
        report = Some(r);
    }
    Ok(Categorized { cats, llm: report })
}

/// Rows whose facts the rules read at a time (without the LLM, whose pass needs them all).
pub(super) const FACTS_BLOCK: usize = 65_536;

/// Categorizes `rows` of `table` by the rules only.
pub fn categorize_rows(
    rules: &crate::categorize::RulesFile,
    table: &polars::prelude::DataFrame,
    resolved: &crate::profile::Resolved,
    rows: &[usize],
    flagged_total: usize,
) -> Result<Vec<crate::categorize::Categorization>, crate::categorize::RulesError> {
    let mut c = crate::categorize::Categorizer::new(rules, table, resolved)?;
    c.flagged_total = flagged_total;
    Ok(categorize_in_blocks(&c, table, rows, FACTS_BLOCK))
}

/// The rules read each row on its own: the facts are gathered `block` rows at a time, so memory
/// holds one block's.
pub fn categorize_in_blocks(
    c: &crate::categorize::Categorizer<'_>,
    table: &polars::prelude::DataFrame,
    rows: &[usize],
    block: usize,
) -> Vec<crate::categorize::Categorization> {
    let mut cats = Vec::with_capacity(rows.len());
    for b in rows.chunks(block.max(1)) {
        cats.extend(c.categorize(&c.facts(table, b)));
    }
    cats
}

/// Adds the categorization columns to `table`: `bucket`, `bucket_confidence`, `bucket_rule`,
/// `severity`, `auto_resolve`, `categorized_by`, `summary` and `bucket_note` (why an LLM answer
/// was not used, or which bucket the rules had chosen) — empty on rows not in `rows`.
pub fn with_categories(
    table: &mut polars::prelude::DataFrame,
    rows: &[usize],
    cats: &[crate::categorize::Categorization],
) -> Result<(), polars::prelude::PolarsError> {
    use polars::prelude::*;
    let at = row_slots(table.height(), rows);
    let text = |f: &dyn Fn(&crate::categorize::Categorization) -> String| spread(&at, cats, f);
    table.with_column(Column::new("bucket".into(), text(&|c| c.bucket.clone())))?;
    table.with_column(Column::new(
        "bucket_confidence".into(),
        at.iter()
            .map(|k| k.map(|k| cats[k].confidence))
            .collect::<Vec<Option<f64>>>(),
    ))?;
    table.with_column(Column::new("bucket_rule".into(), text(&|c| c.rule.clone())))?;
    table.with_column(Column::new(
        "severity".into(),
        text(&|c| c.severity.as_str().to_string()),
    ))?;
    table.with_column(Column::new(
        "auto_resolve".into(),
        at.iter()
            .map(|k| k.map(|k| cats[k].auto_resolve))
            .collect::<Vec<Option<bool>>>(),
    ))?;
    table.with_column(Column::new(
        "categorized_by".into(),
        text(&|c| c.decided_by.as_str().to_string()),
    ))?;
    table.with_column(Column::new("summary".into(), text(&|c| c.summary.clone())))?;
    table.with_column(Column::new("bucket_note".into(), text(&|c| c.note.clone())))?;
    Ok(())
}

/// Names of the columns an analysis adds besides the canonical `bd_*` and feature `f_*` ones
/// (detection, categorization, cases): everything else in its table is the file's own.
pub const RESULT_COLUMNS: [&str; 19] = [
    "score",
    "model_score",
    "decision",
    "is_anomaly",
    "rank",
    "cluster",
    "top_features",
    "model_version",
    "bucket",
    "bucket_confidence",
    "bucket_rule",
    "severity",
    "auto_resolve",
    "categorized_by",
    "summary",
    "bucket_note",
    "case_id",
    "ticket",
    "case_status",
];
