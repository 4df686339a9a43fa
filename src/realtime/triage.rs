//! Categorizing the flagged observations and recording their cases.

use super::frame::frame;
use super::{Engine, Observed};
use crate::pipeline::Settings;
use crate::store::Store;
use serde::Serialize;

/// What the service answers for a record.
#[derive(Debug, Clone, Serialize)]
pub struct RecordResult {
    pub profile: String,
    pub key: String,
    pub date: Option<String>,
    /// The triage score (lower ranks first; see docs/detection.md, "Triage").
    pub score: f64,
    /// The detector's own score.
    pub model_score: f64,
    pub decision: f64,
    pub is_anomaly: bool,
    /// Why the record is not flagged whatever its score: "within tolerance", "routine: standing
    /// item" (or another pattern of the account), "explained by its comment"; null for a break
    /// nothing explains.
    pub quiet: Option<String>,
    /// How unusual the record's unexplained part is for its account (0 without enough history).
    pub own_z: f64,
    pub cluster: usize,
    pub top_features: String,
    /// The features by name.
    pub features: serde_json::Map<String, serde_json::Value>,
    /// Earlier records of the account the features saw.
    pub previous_records: usize,
    pub bucket: Option<String>,
    pub bucket_confidence: Option<f64>,
    pub bucket_rule: Option<String>,
    pub severity: Option<String>,
    pub summary: Option<String>,
    pub auto_resolve: Option<bool>,
    pub categorized_by: Option<String>,
    pub case_id: Option<String>,
    pub ticket: Option<String>,
    pub case_status: Option<String>,
    pub data_quality: Vec<String>,
    pub model_version: String,
}

fn date_text(d: Option<i32>) -> Option<String> {
    d.and_then(crate::ingest::clean::days_to_date)
        .map(|d| d.format("%Y-%m-%d").to_string())
}

/// The anomalies of a set of observations categorized and recorded as cases.
pub struct Triaged {
    pub results: Vec<RecordResult>,
    /// The cases opened or updated (one per flagged record, in order).
    pub cases: Vec<crate::cases::Case>,
    /// What each flagged record's upsert did (in the order of `cases`).
    pub changes: Vec<crate::cases::UpsertOutcome>,
    /// What the records did to the outstanding cases of their accounts.
    pub roll: crate::cases::RollOutcome,
    pub llm: Option<crate::categorize::llm::LlmReport>,
}

/// Categorizes the flagged observations (rules, then the LLM when configured) and records their
/// cases in one durable transaction; `ranked` ranks them among themselves (a batch) so the
/// severity can use the rank, as in a file run. Returns a result per observation, in order.
pub fn triage(
    settings: &Settings,
    rules: &crate::categorize::RulesFile,
    store: &Store,
    engine: &Engine,
    obs: &[Observed],
    ranked: bool,
) -> Result<Triaged, String> {
    // The flagged records, and the explained breaks proposed for auto-resolution.
    let flagged: Vec<usize> = (0..obs.len())
        .filter(|i| obs[*i].flag || obs[*i].proposed)
        .collect();
    let mut results: Vec<RecordResult> = obs
        .iter()
        .map(|o| RecordResult {
            profile: engine.profile.clone(),
            key: o.record.key.clone(),
            date: date_text(o.record.date),
            score: o.score,
            model_score: o.model_score,
            decision: o.decision,
            is_anomaly: o.flag,
            quiet: o.quiet.map(|q| q.describe()),
            own_z: o.own_z,
            cluster: o.cluster,
            top_features: o.top_features.clone(),
            features: engine
                .plan
                .names
                .iter()
                .zip(&o.features)
                .map(|(n, v)| (n.clone(), serde_json::json!(v)))
                .collect(),
            previous_records: o.previous,
            bucket: None,
            bucket_confidence: None,
            bucket_rule: None,
            severity: None,
            summary: None,
            auto_resolve: None,
            categorized_by: None,
            case_id: None,
            ticket: None,
            case_status: None,
            data_quality: o.record.dq.clone(),
            model_version: o.model_version.clone(),
        })
        .collect();
    if flagged.is_empty() {
        let roll = roll_observed(settings, store, engine, obs, &[])?;
        return Ok(Triaged {
            results,
            cases: Vec::new(),
            changes: Vec::new(),
            roll,
            llm: None,
        });
    }
    let items: Vec<&Observed> = flagged.iter().map(|i| &obs[*i]).collect();
    let rank: Vec<u32> = if ranked {
        let scores: Vec<f64> = items.iter().map(|o| o.score).collect();
        let r = crate::detect::model::ranks(&scores);
        r.into_iter().map(|v| v as u32).collect()
    } else {
        // A record on its own is ranked among itself.
        vec![1; items.len()]
    };
    let table =
        frame(engine, &items, &rank).map_err(|e| format!("building the record table: {e}"))?;
    let rows: Vec<usize> = (0..items.len()).collect();
    let flagged_total = if ranked { items.len() } else { 0 };
    let cat = crate::pipeline::categorize(
        settings,
        rules,
        &table,
        &engine.reader.resolved,
        &rows,
        flagged_total,
        store,
    )
    .map_err(|e| e.to_string())?;
    let outcomes = crate::pipeline::record_case_outcomes(
        store,
        &settings.cases,
        &engine.profile,
        &table,
        &rows,
        &cat.cats,
        &engine.version,
        None,
    )
    .map_err(|e| e.to_string())?;
    let roll = roll_observed(settings, store, engine, obs, &outcomes)?;
    let cases: Vec<crate::cases::Case> = outcomes.iter().map(|o| o.case.clone()).collect();
    for ((i, c), case) in flagged.iter().zip(&cat.cats).zip(&cases) {
        let r = &mut results[*i];
        r.bucket = Some(c.bucket.clone());
        r.bucket_confidence = Some(c.confidence);
        r.bucket_rule = Some(c.rule.clone());
        r.severity = Some(c.severity.as_str().to_string());
        r.summary = Some(c.summary.clone());
        r.auto_resolve = Some(c.auto_resolve);
        r.categorized_by = Some(c.decided_by.as_str().to_string());
        r.case_id = Some(case.id.clone());
        r.ticket = Some(case.ticket.clone());
        r.case_status = Some(case.status.as_str().to_string());
    }
    Ok(Triaged {
        results,
        cases,
        changes: outcomes,
        roll,
        llm: cat.llm,
    })
}

/// The cycle of some observed records: each account's records with their break flag,
/// difference and the date their break began.
pub fn cycle_of_observed(profile: &str, obs: &[Observed]) -> crate::cases::Cycle {
    let mut cycle = crate::cases::Cycle {
        profile: profile.to_string(),
        keyed: true,
        ..Default::default()
    };
    for o in obs {
        if let (Some(d), Some(first)) = (o.record.date, o.record.crit.first()) {
            let out = o.record.brk.unwrap_or(!o.record.within.unwrap_or(true));
            cycle.push_day(&o.record.key, d, out, first.diff, o.break_age);
        }
    }
    cycle.seal();
    cycle
}

/// Rolls the cases of the observed records' accounts forward (a service record is a
/// reconciliation cycle of its account): back within tolerance clears, a persisting break takes
/// the latest date and difference. Accounts without an outstanding case cost one index read.
fn roll_observed(
    settings: &Settings,
    store: &Store,
    engine: &Engine,
    obs: &[Observed],
    outcomes: &[crate::cases::UpsertOutcome],
) -> Result<crate::cases::RollOutcome, String> {
    let mut cycle = cycle_of_observed(&engine.profile, obs);
    if cycle.records.is_empty() {
        return Ok(Default::default());
    }
    cycle.opened = outcomes
        .iter()
        .filter(|o| o.change == crate::cases::Change::Created)
        .map(|o| o.case.id.clone())
        .collect();
    crate::cases::Cases::new(store)
        .rolling(settings.cases.roll)
        .roll_forward(&cycle)
        .map_err(|e| e.to_string())
}
