//! The run's cases: each flagged record's case input, recording them in groups, and rolling the profile's cases forward.

use super::*;

/// Opens or updates one case per categorized anomaly (`rows` of `table`, with `cats`), in
/// durable transactions, and returns what each upsert did. The break's identity is (profile,
/// key, the date its run began): re-running a file changes nothing, and a break that persists is
/// the same case, older. With the file's `cycle`, the cases the records open are rolled forward
/// through it as they are written ([`crate::cases::Cases::upsert_batch_in`]).
#[allow(clippy::too_many_arguments)]
pub fn record_case_outcomes(
    store: &crate::store::Store,
    policy: &crate::cases::CaseOptions,
    profile: &str,
    table: &polars::prelude::DataFrame,
    rows: &[usize],
    cats: &[crate::categorize::Categorization],
    model_version: &str,
    cycle: Option<&crate::cases::Cycle>,
) -> Result<Vec<crate::cases::UpsertOutcome>, crate::cases::CaseError> {
    let (b, cases) = case_inputs(store, policy, profile, table, rows, cats, model_version)?;
    cases.upsert_rows_in(&b.inputs, &b.rows, &b.auto, cycle)
}

/// The case inputs of `rows` of `table`, and the case workflow under the profile's policy.
pub(super) type CaseInputs<'s> = (BreakInputs, crate::cases::Cases<'s>);

pub(super) fn case_inputs<'s>(
    store: &'s crate::store::Store,
    policy: &crate::cases::CaseOptions,
    profile: &str,
    table: &polars::prelude::DataFrame,
    rows: &[usize],
    cats: &[crate::categorize::Categorization],
    model_version: &str,
) -> Result<CaseInputs<'s>, crate::cases::CaseError> {
    let b = break_inputs(profile, table, rows, cats, model_version, None)?;
    Ok((b, case_workflow(store, policy)?))
}

/// The case workflow of `store` under a profile's case `policy` (its roll-forward and routing).
pub fn case_workflow<'s>(
    store: &'s crate::store::Store,
    policy: &crate::cases::CaseOptions,
) -> Result<crate::cases::Cases<'s>, crate::cases::CaseError> {
    Ok(crate::cases::Cases::new(store)
        .rolling(policy.roll)
        .routed(std::sync::Arc::clone(&policy.router)))
}

/// The case inputs of records: each record's input (without its columns), its columns encoded
/// as its case stores them, and whether the rules propose it for auto-resolution.
#[derive(Debug, Default)]
pub struct BreakInputs {
    pub inputs: Vec<crate::cases::BreakInput>,
    pub rows: Vec<crate::cases::EncodedRow>,
    pub auto: Vec<bool>,
}

impl FromIterator<(crate::cases::BreakInput, crate::cases::EncodedRow, bool)> for BreakInputs {
    fn from_iter<I>(items: I) -> Self
    where
        I: IntoIterator<Item = (crate::cases::BreakInput, crate::cases::EncodedRow, bool)>,
    {
        let items = items.into_iter();
        let n = items.size_hint().0;
        let mut out = BreakInputs {
            inputs: Vec::with_capacity(n),
            rows: Vec::with_capacity(n),
            auto: Vec::with_capacity(n),
        };
        for (input, row, auto) in items {
            out.inputs.push(input);
            out.rows.push(row);
            out.auto.push(auto);
        }
        out
    }
}

/// The case input of each of `rows` of `table` (categorized as `cats`). A record without a key
/// is named `row L`, where L is its entry in `labels` (its row in `table` without them).
pub fn break_inputs(
    profile: &str,
    table: &polars::prelude::DataFrame,
    rows: &[usize],
    cats: &[crate::categorize::Categorization],
    model_version: &str,
    labels: Option<&[u32]>,
) -> Result<BreakInputs, crate::cases::CaseError> {
    use crate::cases::{BreakInput, CaseError, EncodedRow};
    use polars::prelude::*;
    let internal = |e: PolarsError| CaseError::Invalid(format!("reading the anomalies: {e}"));
    let text_col = |name: &str| -> Result<Option<StringChunked>, CaseError> {
        match table.column(name) {
            Ok(c) => Ok(Some(
                c.cast(&DataType::String)
                    .map_err(internal)?
                    .str()
                    .map_err(internal)?
                    .clone(),
            )),
            Err(_) => Ok(None),
        }
    };
    let num_col = |name: &str| -> Result<Option<Float64Chunked>, CaseError> {
        match table.column(name) {
            Ok(c) => Ok(Some(
                c.cast(&DataType::Float64)
                    .map_err(internal)?
                    .f64()
                    .map_err(internal)?
                    .clone(),
            )),
            Err(_) => Ok(None),
        }
    };
    let cols = BreakColumns::of(table).map_err(internal)?;
    let score = num_col("score")?;
    let rank = num_col("rank")?;
    let diff = num_col("bd_difference")?;
    // The file's own columns (not the canonical, feature or result columns) make the snapshot,
    // in the order of their names (a case's columns are kept in that order).
    let mut snapshot: Vec<(String, StringChunked)> = table
        .get_column_names()
        .iter()
        .map(|c| c.to_string())
        .filter(|c| is_snapshot_column(c))
        .filter_map(|c| text_col(&c).ok().flatten().map(|ca| (c, ca)))
        .collect();
    snapshot.sort_by(|a, b| a.0.cmp(&b.0));
    let today = chrono::Utc::now().date_naive();
    let finite = |v: f64| if v.is_finite() { v } else { 0.0 };
    // Each record's snapshot is built on its own: in parallel.
    use rayon::prelude::*;
    let built: Vec<(BreakInput, EncodedRow, bool)> = rows
        .par_iter()
        .enumerate()
        .map(|(k, &r)| {
            let c = &cats[k];
            let label = labels.and_then(|l| l.get(k)).map_or(r, |l| *l as usize);
            let (key, date, start) = cols.key_and_dates(r, label, today);
            let num = |ca: &Option<Float64Chunked>| {
                ca.as_ref().and_then(|ca| ca.get(r)).unwrap_or(f64::NAN)
            };
            let row = EncodedRow::of_texts(
                snapshot
                    .iter()
                    .map(|(name, ca)| (name.as_str(), ca.get(r).unwrap_or(""))),
            )?;
            let rk = num(&rank);
            let input = BreakInput {
                profile: profile.to_string(),
                key,
                start_date: start,
                date,
                bucket: c.bucket.clone(),
                bucket_rule: c.rule.clone(),
                confidence: c.confidence,
                severity: c.severity.as_str().to_string(),
                summary: c.summary.clone(),
                score: finite(num(&score)),
                rank: if rk.is_finite() && rk >= 0.0 {
                    rk as u64
                } else {
                    0
                },
                difference: finite(num(&diff)),
                model_version: model_version.to_string(),
                row: serde_json::Map::new(),
            };
            Ok((input, row, c.auto_resolve))
        })
        .collect::<Result<_, CaseError>>()?;
    Ok(built.into_iter().collect())
}

/// What the run summary says of a day's file besides its cases.
#[derive(Debug, Clone, Default)]
pub struct DayFacts {
    pub profile: String,
    /// Rows read.
    pub rows: usize,
    pub flagged: usize,
    /// Breaks quiet because they are routine for their account.
    pub routine: usize,
}

impl DayFacts {
    pub fn of(result: &RunOutput, det: &Detection) -> DayFacts {
        DayFacts {
            profile: result.profile.clone(),
            rows: result.rows_read,
            flagged: det.scored.flag.iter().filter(|f| **f).count(),
            routine: routine_breaks(&det.scored.triage),
        }
    }
}

/// The breaks the triage left quiet as routine for their account.
pub fn routine_breaks(triage: &crate::detect::triage::TriageSummary) -> usize {
    triage
        .quiet_breaks
        .iter()
        .filter(|(k, _)| k.starts_with("routine"))
        .map(|(_, n)| n)
        .sum()
}

/// The columns of a result table that say which break a record belongs to.
pub(super) struct BreakColumns {
    keys: Option<polars::prelude::StringChunked>,
    dates: Option<polars::prelude::StringChunked>,
    age: Option<polars::prelude::Float64Chunked>,
}

impl BreakColumns {
    fn of(table: &polars::prelude::DataFrame) -> Result<Self, polars::prelude::PolarsError> {
        use polars::prelude::*;
        let text = |name: &str| -> PolarsResult<Option<StringChunked>> {
            match table.column(name) {
                Ok(c) => Ok(Some(c.cast(&DataType::String)?.str()?.clone())),
                Err(_) => Ok(None),
            }
        };
        let age = match table.column("f_break_age") {
            Ok(c) => Some(c.cast(&DataType::Float64)?.f64()?.clone()),
            Err(_) => None,
        };
        Ok(BreakColumns {
            keys: text("bd_key")?,
            dates: text("bd_date")?,
            age,
        })
    }

    /// Row `r`'s account key (`row L` without one, L being `label`), date (`today` without
    /// one) and the date its break began (the date less the break's age).
    fn key_and_dates(
        &self,
        r: usize,
        label: usize,
        today: chrono::NaiveDate,
    ) -> (String, chrono::NaiveDate, chrono::NaiveDate) {
        let key = self
            .keys
            .as_ref()
            .and_then(|ca| ca.get(r))
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .unwrap_or_else(|| format!("row {label}"));
        let date = self
            .dates
            .as_ref()
            .and_then(|ca| ca.get(r))
            .and_then(|s| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").ok())
            .unwrap_or(today);
        let days = self
            .age
            .as_ref()
            .and_then(|ca| ca.get(r))
            .filter(|v| v.is_finite() && *v >= 0.0)
            .unwrap_or(0.0);
        let start = date - chrono::Duration::days(days.round() as i64);
        (key, date, start)
    }
}

/// Rolls the profile's cases forward through the run's `cycle` (its current rows; None when the
/// file has no dates), counts the run summary and records it in the store. `recorded` says
/// what the run's flagged records did to their cases; the status of those the roll-forward
/// changed is refreshed in it. `written`: the cases the recording wrote, brief and as stored
/// ([`crate::cases::Cases::record_rows_briefly`]), which are not read back.
pub fn roll_forward_run(
    settings: &Settings,
    store: &crate::store::Store,
    day: &DayFacts,
    (cycle, written): (Option<crate::cases::Cycle>, Vec<crate::cases::Case>),
    recorded: &mut [crate::cases::Recorded],
    file: &str,
) -> Result<crate::cycle::RunSummary, crate::cases::CaseError> {
    let changes: Vec<(String, crate::cases::Change)> =
        recorded.iter().map(|r| (r.id.clone(), r.change)).collect();
    let (summary, rolled) =
        roll_forward_changes(settings, store, day, (cycle, written), &changes, file)?;
    for r in recorded.iter_mut() {
        if let Some(now) = rolled.get(r.id.as_str()) {
            r.status = *now;
        }
    }
    Ok(summary)
}

/// [`roll_forward_run`] over what the upserts did to each record's case (`changes`: case id and
/// change, in the records' order). Returns the summary, and the status after the roll of each
/// of the profile's outstanding cases when the roll changed any (cleared or recertified; empty
/// otherwise).
pub(super) fn roll_forward_changes(
    settings: &Settings,
    store: &crate::store::Store,
    day: &DayFacts,
    (cycle, written): (Option<crate::cases::Cycle>, Vec<crate::cases::Case>),
    changes: &[(String, crate::cases::Change)],
    file: &str,
) -> Result<
    (
        crate::cycle::RunSummary,
        std::collections::HashMap<String, crate::cases::Status>,
    ),
    crate::cases::CaseError,
> {
    use crate::cases::{Cases, Change};
    let handle = Cases::new(store).rolling(settings.cases.roll);
    let mut summary = crate::cycle::RunSummary {
        profile: day.profile.clone(),
        at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        file: file.to_string(),
        rows: day.rows,
        flagged: day.flagged,
        routine: day.routine,
        ..Default::default()
    };
    // The profile's outstanding cases (a cleared case has nothing left to roll), as their
    // markers describe them: what the roll-forward and the summary's tallies read. Those the
    // run just wrote are `written`.
    let mut open = handle.outstanding_light_knowing(&day.profile, written)?;
    tracing::debug!(cases = open.len(), resident_mib = ?crate::logging::resident_mib(), "outstanding cases read");
    let pairs = changes.iter().map(|(id, c)| (id.as_str(), *c));
    let mut rolled = false;
    if let Some(mut cycle) = cycle {
        summary.as_of = cycle.as_of().map(|d| d.to_string());
        summary.breaks = cycle
            .records
            .values()
            .flat_map(|r| r.iter())
            .filter(|r| r.out)
            .count();
        cycle.opened = changes
            .iter()
            .filter(|(_, c)| *c == Change::Created)
            .map(|(id, _)| id.clone())
            .collect();
        let roll = handle.roll_forward_over(&cycle, &mut open)?;
        rolled = roll.cleared + roll.recertified > 0;
        summary.count_changes(pairs, &roll);
    } else {
        summary.count_changes(pairs, &Default::default());
    }
    summary.matched = summary.rows.saturating_sub(summary.breaks);
    summary.tally(&open, &settings.cases.age_bands);
    let bytes = serde_json::to_vec(&summary)
        .map_err(|e| crate::cases::CaseError::Invalid(e.to_string()))?;
    store.put_run(&bytes)?;
    let statuses = if rolled {
        open.into_iter().map(|c| (c.id, c.status)).collect()
    } else {
        std::collections::HashMap::new()
    };
    Ok((summary, statuses))
}

/// What a run keeps of the case of a record it recorded: enough for the output's case columns.
#[derive(Debug, Clone, PartialEq)]
pub struct CaseMark {
    pub id: String,
    pub ticket: String,
    pub status: crate::cases::Status,
}

/// Records the cases of `rows` and rolls the profile's cases forward, as [`record_case_outcomes`]
/// then [`roll_forward_run`] do: [`record_in_groups`] with a roll-forward.
#[allow(clippy::too_many_arguments)]
pub fn record_and_roll_in_chunks(
    settings: &Settings,
    store: &crate::store::Store,
    table: &polars::prelude::DataFrame,
    rows: &[usize],
    cats: &[crate::categorize::Categorization],
    model_version: &str,
    day: &DayFacts,
    cycle: Option<crate::cases::Cycle>,
    file: &str,
    chunk: usize,
) -> Result<(Vec<CaseMark>, crate::cycle::RunSummary), crate::cases::CaseError> {
    let (marks, summary) = record_in_groups(
        settings,
        store,
        &day.profile,
        table,
        rows,
        cats,
        model_version,
        Some((day.clone(), cycle, file.to_string())),
        chunk,
    )?;
    let summary = summary.ok_or_else(|| {
        crate::cases::CaseError::Invalid("the roll-forward gave no summary".into())
    })?;
    Ok((marks, summary))
}

/// A column of the file itself (not a canonical, feature or result column): part of a case's
/// snapshot of its record.
pub(super) fn is_snapshot_column(c: &str) -> bool {
    !c.starts_with("bd_") && !c.starts_with("f_") && !RESULT_COLUMNS.contains(&c)
}

/// Records the cases of `rows` of `profile` (and, with `roll`, rolls the profile's cases
/// forward through the day's cycle and records the run summary), holding at most about `chunk`
/// records' inputs and cases at a time ([`break_groups`], [`record_groups`]). Returns each
/// record's case mark, and the summary with `roll`.
#[allow(clippy::too_many_arguments)]
pub fn record_in_groups(
    settings: &Settings,
    store: &crate::store::Store,
    profile: &str,
    table: &polars::prelude::DataFrame,
    rows: &[usize],
    cats: &[crate::categorize::Categorization],
    model_version: &str,
    roll: Option<(DayFacts, Option<crate::cases::Cycle>, String)>,
    chunk: usize,
) -> Result<(Vec<CaseMark>, Option<crate::cycle::RunSummary>), crate::cases::CaseError> {
    let cols = BreakColumns::of(table)
        .map_err(|e| crate::cases::CaseError::Invalid(format!("reading the anomalies: {e}")))?;
    let today = chrono::Utc::now().date_naive();
    let groups = break_groups(
        rows.iter().map(|&r| {
            let (key, _, start) = cols.key_and_dates(r, r, today);
            (key, start)
        }),
        chunk,
    );
    record_groups(settings, store, &groups, rows.len(), roll, |group| {
        let sub_rows: Vec<usize> = group.iter().map(|k| rows[*k]).collect();
        let sub_cats: Vec<crate::categorize::Categorization> =
            group.iter().map(|k| cats[*k].clone()).collect();
        break_inputs(profile, table, &sub_rows, &sub_cats, model_version, None)
    })
}

/// The records (given by their breaks, in the records' order) cut in groups in their order,
/// every record of a break going with the break's first record: each group lists its records'
/// positions in order. Two records are of the same break when their `breaks` items are equal.
///
/// The records are cut in as few equal stretches of at most `chunk` as there can be (a group
/// holds the breaks that begin in its stretch): each group costs a rewrite of the store's
/// index whatever its size, so 250,000 records in groups of 100,000 are three groups of about
/// 84,000, not two full ones and a small one.
pub fn break_groups<B: std::hash::Hash + Eq>(
    breaks: impl Iterator<Item = B>,
    chunk: usize,
) -> Vec<Vec<usize>> {
    let breaks: Vec<B> = breaks.collect();
    let stretches = breaks.len().div_ceil(chunk.max(1)).max(1);
    let chunk = breaks.len().div_ceil(stretches).max(1);
    let mut group_of: std::collections::HashMap<B, usize> = std::collections::HashMap::new();
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for (k, b) in breaks.into_iter().enumerate() {
        let g = *group_of.entry(b).or_insert(k / chunk);
        if groups.len() <= g {
            groups.resize_with(g + 1, Vec::new);
        }
        groups[g].push(k);
    }
    groups.retain(|g| !g.is_empty());
    groups
}

/// Records the cases of `n` records cut in `groups` ([`break_groups`]), one group
/// at a time (`inputs_of` gives a group's case inputs), so tickets follow the records' order and each break's records fold
/// together exactly as in one batch; with `roll`, then rolls the profile's cases forward
/// through the day's cycle and records the run summary. Returns each record's case mark, and
/// the summary with `roll`.
pub fn record_groups(
    settings: &Settings,
    store: &crate::store::Store,
    groups: &[Vec<usize>],
    n: usize,
    roll: Option<(DayFacts, Option<crate::cases::Cycle>, String)>,
    mut inputs_of: impl FnMut(&[usize]) -> Result<BreakInputs, crate::cases::CaseError>,
) -> Result<(Vec<CaseMark>, Option<crate::cycle::RunSummary>), crate::cases::CaseError> {
    let policy = &settings.cases;
    let cycle = roll.as_ref().and_then(|r| r.1.as_ref());
    let mut marks: Vec<Option<CaseMark>> = vec![None; n];
    let mut changes: Vec<(String, crate::cases::Change)> = Vec::with_capacity(n);
    let mut order: Vec<usize> = Vec::with_capacity(n);
    // A group's writes change nothing another group reads: its breaks are its own, and a case
    // this run opens is not cleared by it (`roll_opened`), so it is never taken for a later
    // break's reappearance.
    let cases = case_workflow(store, policy)?;
    // A group's inputs are freed beside the next group's reading and recording (one group at a
    // time: the previous freeing is finished before another starts).
    let mut freeing: Option<Freeing> = None;
    for group in groups {
        let inputs = inputs_of(group)?;
        let recorded = cases.record_rows(&inputs.inputs, &inputs.rows, &inputs.auto, cycle)?;
        if let Some(f) = freeing.take() {
            f.finish();
        }
        freeing = Some(Freeing::start(inputs));
        for (k, r) in group.iter().zip(recorded) {
            changes.push((r.id.clone(), r.change));
            order.push(*k);
            marks[*k] = Some(CaseMark {
                id: r.id,
                ticket: r.ticket,
                status: r.status,
            });
        }
    }
    if let Some(f) = freeing.take() {
        f.finish();
    }
    tracing::debug!(resident_mib = ?crate::logging::resident_mib(), "cases recorded");
    let mut summary = None;
    if let Some((day, cycle, file)) = roll {
        // The summary counts the records' changes in the records' order.
        let mut in_order: Vec<(String, crate::cases::Change)> =
            vec![(String::new(), crate::cases::Change::Unchanged); n];
        for ((id, c), k) in changes.into_iter().zip(order) {
            in_order[k] = (id, c);
        }
        let (s, rolled) =
            roll_forward_changes(settings, store, &day, (cycle, Vec::new()), &in_order, &file)?;
        drop(in_order);
        for m in marks.iter_mut().flatten() {
            if let Some(now) = rolled.get(m.id.as_str()) {
                m.status = *now;
            }
        }
        summary = Some(s);
    }
    marks
        .into_iter()
        .map(|m| {
            m.ok_or_else(|| {
                crate::cases::CaseError::Invalid("a record was left without its case".into())
            })
        })
        .collect::<Result<_, _>>()
        .map(|marks| (marks, summary))
}

/// Values dropped on a thread of their own while the caller goes on: freeing many small
/// allocations (each case input's snapshot is a map of its record's cells) takes a while.
struct Freeing(Option<std::thread::JoinHandle<()>>);

impl Freeing {
    /// Starts freeing `value` (freed at once when no thread can be started).
    fn start<T: Send + 'static>(value: T) -> Freeing {
        Freeing(
            std::thread::Builder::new()
                .name("breakdesk-free".into())
                .spawn(move || drop(value))
                .ok(),
        )
    }

    /// Waits until it is freed.
    fn finish(self) {
        if let Some(h) = self.0 {
            let _ = h.join();
        }
    }
}

/// The cases stage of a file's analysis: one case per anomaly (`rows` of `table`), those the
/// file opens rolled forward through its cycle as they are written, then the profile's other
/// outstanding cases, and the run summary recorded. Returns the case of each of `rows`.
#[allow(clippy::too_many_arguments)]
pub(super) fn record_run_cases(
    settings: &Settings,
    store: &crate::store::Store,
    result: &RunOutput,
    det: &Detection,
    table: &polars::prelude::DataFrame,
    rows: &[usize],
    categorized: &Categorized,
    file: &str,
) -> Result<(Vec<crate::cases::Recorded>, crate::cycle::RunSummary), crate::cases::CaseError> {
    // The day's cycle and the records' case inputs are independent: built side by side.
    let (cycle, built) = rayon::join(
        || crate::cycle::cycle_of(&result.features.df, &result.profile, settings.cases.absent),
        || {
            break_inputs(
                &result.profile,
                table,
                rows,
                &categorized.cats,
                &det.bundle.version(),
                None,
            )
        },
    );
    let inputs = built?;
    // The cases written are handed to the roll-forward as they were stored: it reads back
    // only the profile's other outstanding cases.
    let (mut recorded, written) = case_workflow(store, &settings.cases)?.record_rows_briefly(
        &inputs.inputs,
        &inputs.rows,
        &inputs.auto,
        cycle.as_ref(),
    )?;
    // Freed beside the roll-forward, and finished before this returns.
    let freeing = Freeing::start(inputs);
    let summary = roll_forward_run(
        settings,
        store,
        &DayFacts::of(result, det),
        (cycle, written),
        &mut recorded,
        file,
    );
    freeing.finish();
    Ok((recorded, summary?))
}

/// Adds `case_id`, `ticket` and `case_status` to `table` for `rows` (empty elsewhere).
pub fn with_cases(
    table: &mut polars::prelude::DataFrame,
    rows: &[usize],
    cases: &[crate::cases::Recorded],
) -> Result<(), polars::prelude::PolarsError> {
    use polars::prelude::*;
    let at = row_slots(table.height(), rows);
    let text = |f: &dyn Fn(&crate::cases::Recorded) -> String| spread(&at, cases, f);
    table.with_column(Column::new("case_id".into(), text(&|c| c.id.clone())))?;
    table.with_column(Column::new("ticket".into(), text(&|c| c.ticket.clone())))?;
    table.with_column(Column::new(
        "case_status".into(),
        text(&|c| c.status.as_str().to_string()),
    ))?;
    Ok(())
}

/// For each of `n` table rows, the position of that row in `rows` (None for rows not listed).
pub(super) fn row_slots(n: usize, rows: &[usize]) -> Vec<Option<usize>> {
    let mut at = vec![None; n];
    for (k, r) in rows.iter().enumerate() {
        if *r < n {
            at[*r] = Some(k);
        }
    }
    at
}

/// A text column over the table's rows: `f` of the row's item, empty for rows without one.
pub(super) fn spread<T>(
    at: &[Option<usize>],
    items: &[T],
    f: &dyn Fn(&T) -> String,
) -> Vec<String> {
    at.iter()
        .map(|k| k.map(|k| f(&items[k])).unwrap_or_default())
        .collect()
}
