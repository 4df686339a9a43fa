//! `merge`: the parts' rows ranked across every part, the analysts' verdicts applied, the rows
//! categorized, the cluster summary rebuilt, and the cases recorded.

use super::*;

/// What `merge` does besides putting the parts together.
#[derive(Default)]
pub struct MergeOptions {
    /// Record a case per anomaly in the store (the single writer).
    pub record: bool,
    /// Where the merged output goes (`-`: standard output), and in which format (None: the
    /// parts').
    pub out: PathBuf,
    pub format: Option<Format>,
    /// Where the merge stages each part's rows (None: the system's temporary folder).
    pub stage_dir: Option<PathBuf>,
    /// With `record`: the day's cycle (every current row of the file) and what the run summary
    /// says of the file, to roll the profile's cases forward as a run does. Parts written by
    /// workers do not carry the day's other rows; a bounded-memory run builds the cycle as it
    /// goes.
    pub roll: Option<Roll>,
    /// With `record`: about how many records' cases are recorded at a time (0: 20,000). The
    /// cases are the same whatever the size; a smaller one holds less at once.
    pub case_group: usize,
    /// Set when the merge is to stop (Ctrl-C): it is checked before the parts are staged and
    /// before the cases are recorded, so that a stopped merge records and writes nothing.
    pub cancel: Option<&'static std::sync::atomic::AtomicBool>,
}

/// What a merge needs to roll the cases forward.
pub struct Roll {
    /// The day's cycle, built beside the merge until the cases need it (None: none).
    pub cycle: Option<crate::cycle::CycleFeed>,
    pub day: pipeline::DayFacts,
    /// The file, as the run summary names it.
    pub file: String,
}

/// The merged output.
pub struct Merged {
    /// Rows written to the output.
    pub written: usize,
    pub format: Format,
    pub all_rows: bool,
    pub clusters: Vec<ClusterSummary>,
    /// The triage over every part (with the verdicts applied at merge).
    pub triage: TriageSummary,
    /// Candidates an analyst had judged normal, quieted at merge (of them, how many flagged).
    pub judged: usize,
    pub judged_flagged: usize,
    pub parts: usize,
    pub rows_read: usize,
    pub rows: usize,
    pub model_version: String,
    pub profile: String,
    /// The written anomalies' buckets.
    pub buckets: crate::categorize::BucketTally,
    /// What the LLM pass did, when it is enabled.
    pub llm: Option<crate::categorize::llm::LlmReport>,
    /// The case of each written anomaly (with `record`).
    pub cases: Vec<pipeline::CaseMark>,
    /// The run summary, when the cases were rolled forward ([`MergeOptions::roll`]).
    pub summary: Option<crate::cycle::RunSummary>,
    /// The whole file's rejected rows and its rejects report: the rejects every part reports
    /// alike once, then every part's own, the history's before the file's.
    pub rejected_rows: usize,
    pub rejects: Vec<crate::ingest::prepare::Reject>,
    /// How long each step took.
    pub timings: Vec<(&'static str, std::time::Duration)>,
}

/// Where one row of the partitions stands in the merged whole.
pub(super) struct AllRows {
    pub(super) bd_row: Vec<u64>,
    pub(super) score: Vec<f64>,
    pub(super) difference: Vec<f64>,
    pub(super) cluster: Vec<u32>,
    pub(super) flags: Vec<u8>,
}

/// Merges `parts` (each written by `run --partition I/N` with the same model) into the output a
/// run on the whole file with that model writes. `store` gives the analysts' verdicts (with
/// `[feedback] enabled`) and the LLM's cache, and takes the cases with `opts.record`.
pub fn merge(
    settings: &Settings,
    parts: &[PathBuf],
    store: &crate::store::Store,
    opts: MergeOptions,
) -> Result<Merged, PartError> {
    // A glob over a directory of parts (`parts/*`) also names their cluster summaries, rejects
    // reports and sidecars: those are not parts.
    let beside: std::collections::HashSet<PathBuf> = parts
        .iter()
        .filter(|p| meta_path(p).is_file())
        .flat_map(|p| {
            [
                crate::output::sibling_path(p, "clusters", "csv"),
                crate::output::rejects_path(p),
                meta_path(p),
                rows_path(p),
                table_path(p),
            ]
        })
        .collect();
    let mut timings = Vec::new();
    let mut t = std::time::Instant::now();
    let mut lap = |name: &'static str, timings: &mut Vec<_>| {
        timings.push((name, t.elapsed()));
        t = std::time::Instant::now();
    };
    let parts: Vec<Part> = parts
        .iter()
        .filter(|p| !beside.contains(*p))
        .map(|p| read_part(p))
        .collect::<Result<_, _>>()?;
    lap("read sidecars", &mut timings);
    merge_parts(settings, parts, store, opts, timings)
}

/// [`merge`] of parts already read (or described in memory by [`describe_part`]).
pub fn merge_parts(
    settings: &Settings,
    mut parts: Vec<Part>,
    store: &crate::store::Store,
    opts: MergeOptions,
    mut timings: Vec<(&'static str, std::time::Duration)>,
) -> Result<Merged, PartError> {
    let mut t = std::time::Instant::now();
    let cancel = opts.cancel;
    let check = || match cancel {
        Some(c) if c.load(std::sync::atomic::Ordering::Relaxed) => Err(PartError::Cancelled),
        _ => Ok(()),
    };
    check()?;
    check_parts(&parts, settings)?;
    let meta = parts[0].meta.clone();
    let (rejected_rows, rejects) = whole_rejects(settings, &parts, &opts.out)?;

    let lens: Vec<usize> = parts.iter().map(|p| p.rows.len()).collect();
    let total: usize = lens.iter().sum();
    let (mut all, by_row) = gather_rows(&mut parts, &lens)?;

    // The analysts' verdicts: a candidate judged normal is quiet, as in a run that reads them.
    let mut triage = TriageSummary::default();
    parts
        .iter()
        .for_each(|p| add_triage(&mut triage, &p.meta.triage));
    let (judged, judged_flagged) =
        apply_verdicts(settings, &parts, &lens, store, &mut all, &mut triage)?;

    let rank = ranks(&all, meta.all_rows);
    // A row's place among all of them.
    let at_row = |r: u64| -> Option<usize> { by_row.at(r, &all.bd_row) };
    lap("ranks", &mut t, &mut timings);

    let is_case = |i: usize| !meta.all_rows || all.flags[i] & (FLAGGED | PROPOSED) != 0;
    let (pos_of, n_out, case_pos, case_of_pos) =
        output_positions(meta.all_rows, &all, &rank, opts.record, &is_case);

    let flagged_total = all.flags.iter().filter(|f| **f & FLAGGED != 0).count();
    // The summary counts the day after the analysts' verdicts, as a run does.
    let roll = opts.roll.map(|mut r| {
        r.day.flagged = flagged_total;
        r.day.routine = pipeline::routine_breaks(&triage);
        r
    });
    let rules = pipeline::rules_file(settings)?;
    let format = opts.format.unwrap_or(match meta.output.as_str() {
        "jsonl" => Format::Jsonl,
        _ => Format::Csv,
    });
    let stage = stage_dir(opts.stage_dir.as_deref())?;

    // Each part in turn: its written rows with the merged score, flag and rank, categorized
    // (the severity's top share, the summary's rank and any rule reading `rank` depend on
    // every part), staged on disk in the output's order; what the cases need is kept.
    let mut spill = (opts.record)
        .then(|| CaseSpill::create(stage.path(), case_pos.len()))
        .transpose()?;
    let staging = Staging {
        settings,
        store,
        rules: &rules,
        meta: &meta,
        flagged_total,
        format,
        stage: stage.path(),
        all: &all,
        rank: &rank,
        pos_of: &pos_of,
        case_of_pos: &case_of_pos,
        is_case: &is_case,
        at_row: &at_row,
    };
    let held: Vec<Option<DataFrame>> = parts.iter_mut().map(|p| p.table.take()).collect();
    let (staged, buckets, llm, (read_time, cat_time)) =
        staging.stage_all(&parts, held, spill.as_mut())?;
    timings.extend([("read parts", read_time), ("categorize", cat_time)]);
    lap("parts in all", &mut t, &mut timings);
    drop((pos_of, case_of_pos));
    check()?;

    // The cases, in the output's order, group by group from the spill.
    let (cases, summary) = match spill {
        Some(spill) => {
            let n = case_pos.len();
            let recorded = record_spilled(settings, store, spill, opts.case_group, n, roll)?;
            lap("cases", &mut t, &mut timings);
            recorded
        }
        None => (Vec::new(), None),
    };

    // The staged parts merged into the output, in order, with the case columns.
    write_staged(&staged, n_out, &cases, &case_pos, &opts.out, format)?;
    drop(stage);
    lap("write", &mut t, &mut timings);
    let clusters = merge_clusters(&parts, &all, meta.clusters, meta.top_accounts);
    lap("clusters", &mut t, &mut timings);
    Ok(Merged {
        written: n_out,
        format,
        all_rows: meta.all_rows,
        clusters,
        triage,
        judged,
        judged_flagged,
        parts: parts.len(),
        rows_read: meta.rows_read,
        rows: total,
        model_version: meta.model_version.clone(),
        profile: meta.profile.clone(),
        buckets,
        llm,
        cases,
        summary,
        rejected_rows,
        rejects,
        timings,
    })
}

/// The whole file's rejected rows and rejects: those every part reports alike once, then every
/// part's own in row order, the history's before the file's (the order of a run's report). Too
/// many rejected rows of the history or of the file is the error, as in a run (`out`: the merged
/// output, the report beside it).
fn whole_rejects(
    settings: &Settings,
    parts: &[Part],
    out: &Path,
) -> Result<(usize, Vec<crate::ingest::prepare::Reject>), PartError> {
    let a = &parts[0].meta;
    let shared = &a.rejects.shared;
    let own = |pick: fn(&pipeline::Rejected) -> &Vec<crate::ingest::prepare::Reject>| {
        let mut v: Vec<crate::ingest::prepare::Reject> = parts
            .iter()
            .flat_map(|p| pick(&p.meta.rejects.own).iter().cloned())
            .collect();
        v.sort_by_key(|r| r.row);
        v
    };
    // Counts from the parts' meta files, added without overflowing whatever they say.
    let add = |first: usize, pick: fn(&pipeline::Rejected) -> usize| {
        parts
            .iter()
            .fold(first, |n, p| n.saturating_add(pick(&p.meta.rejects.own)))
    };
    let history_rows = add(shared.history_rows, |r| r.history_rows);
    let rows = add(shared.rows, |r| r.rows);
    let mut all = shared.history_rejects.clone();
    all.extend(own(|r| &r.history_rejects));
    all.extend(shared.rejects.iter().cloned());
    all.extend(own(|r| &r.rejects));
    let hint = if out.as_os_str() == "-" {
        String::new()
    } else {
        format!(" ({})", crate::output::rejects_path(out).display())
    };
    let files = [
        (a.history.as_deref(), history_rows, a.history_rows_read),
        (Some(a.input.as_str()), rows, a.rows_read),
    ];
    for (file, rejected, total) in files {
        let Some(file) = file.filter(|_| total > 0) else {
            continue;
        };
        let max = settings.ingest.max_reject_share;
        if let Err(e) = pipeline::check_reject_share(max, file, (rejected, total), &hint) {
            return Err(PartError::TooManyRejects {
                error: Box::new(e),
                rejects: all,
            });
        }
    }
    Ok((rows.saturating_add(history_rows), all))
}

/// The written rows' positions in the output (by rank, or file order with every row; u32::MAX
/// for a row not written), how many are written, and for the records that get a case (every
/// written row, or the anomalies among all rows): their output positions, and each output
/// position's place among them.
fn output_positions(
    all_rows: bool,
    all: &AllRows,
    rank: &[u32],
    record: bool,
    is_case: &dyn Fn(usize) -> bool,
) -> (Vec<u32>, usize, Vec<u32>, Vec<u32>) {
    let total = all.flags.len();
    // The written rows in the output's order (by rank, or file order with every row), and each
    // row's position there.
    let written = |i: usize| all_rows || all.flags[i] & (FLAGGED | PROPOSED) != 0;
    let mut out_rows: Vec<usize> = (0..total).filter(|i| written(*i)).collect();
    if all_rows {
        out_rows.sort_unstable_by_key(|i| all.bd_row[*i]);
    } else {
        out_rows.sort_unstable_by_key(|i| rank[*i]);
    }
    let mut pos_of: Vec<u32> = vec![u32::MAX; total];
    for (k, i) in out_rows.iter().enumerate() {
        pos_of[*i] = k as u32;
    }
    let n_out = out_rows.len();
    // The records that get a case (every written row, or the anomalies among all rows), in the
    // output's order: each one's place among them, by output position, and its position.
    let mut case_pos: Vec<u32> = Vec::new();
    let mut case_of_pos: Vec<u32> = Vec::new();
    if record {
        case_of_pos = vec![u32::MAX; n_out];
        for (pos, i) in out_rows.iter().enumerate() {
            if is_case(*i) {
                case_of_pos[pos] = case_pos.len() as u32;
                case_pos.push(pos as u32);
            }
        }
    }
    (pos_of, n_out, case_pos, case_of_pos)
}

/// Ends a stage of the merge: its time since `t`, logged with the memory in use.
fn lap(
    name: &'static str,
    t: &mut std::time::Instant,
    timings: &mut Vec<(&'static str, std::time::Duration)>,
) {
    timings.push((name, t.elapsed()));
    tracing::debug!(stage = name, resident_mib = ?crate::logging::resident_mib(), "merge stage done");
    *t = std::time::Instant::now();
}

/// What staging each part reads: the merged rows and their places, the rules, the output.
struct Staging<'a> {
    settings: &'a Settings,
    store: &'a crate::store::Store,
    rules: &'a crate::categorize::RulesFile,
    meta: &'a PartMeta,
    flagged_total: usize,
    format: Format,
    stage: &'a Path,
    all: &'a AllRows,
    rank: &'a [u32],
    pos_of: &'a [u32],
    case_of_pos: &'a [u32],
    is_case: &'a (dyn Fn(usize) -> bool + Sync),
    at_row: &'a (dyn Fn(u64) -> Option<usize> + Sync),
}

/// One share of a part staged, with what it adds up (None: the part could not be read, and
/// the share that read it says why).
type StageResult = Result<Option<(Staged, StagedPart)>, PartError>;

/// What staging one share of a part adds up: its bucket tally, the LLM's report, and the time
/// spent reading and categorizing.
#[derive(Default)]
struct StagedPart {
    buckets: crate::categorize::BucketTally,
    llm: Option<crate::categorize::llm::LlmReport>,
    times: (std::time::Duration, std::time::Duration),
}

/// What staging every part gives: the staged files, the bucket tally, the LLM's report, and
/// the time spent reading and categorizing.
type StagedParts = (
    Vec<Staged>,
    crate::categorize::BucketTally,
    Option<crate::categorize::llm::LlmReport>,
    (std::time::Duration, std::time::Duration),
);

/// A part's written rows as its shares are staged from them: the rows held in memory until
/// the first share to be staged reads them and takes every share's rows ([`part_keep`],
/// [`part_rows`]); each share then takes its own. The part's whole table is not kept.
struct PartSource {
    held: Option<DataFrame>,
    read: bool,
    shares: Vec<Option<ShareRows>>,
}

/// Where a written row of a part stands: its output position, its row in the part's table and
/// its place among all rows.
type Kept = (u32, usize, usize);

/// A share's rows as [`part_rows`] gives them, with where each one stands.
type ShareRows = (DataFrame, Vec<Kept>);

impl Staging<'_> {
    /// Every part staged, in `shares` shares of its written rows each ([`Staging::stage`]): by
    /// as many workers as the machine has cores, each taking the next share (a part's shares
    /// one after another, so that a part is read once and the workers end together), or in
    /// turn and whole when the LLM is asked (its calls stay in the output's order). The tally
    /// and the reports add up in the parts' order.
    fn stage_all(
        &self,
        parts: &[Part],
        held: Vec<Option<DataFrame>>,
        spill: Option<&mut CaseSpill>,
    ) -> Result<StagedParts, PartError> {
        let spill = spill.map(std::sync::Mutex::new);
        let workers = if self.settings.categorize.llm.enabled {
            1
        } else {
            rayon::current_num_threads().clamp(1, parts.len().max(1))
        };
        let shares = if workers > 1 { STAGE_SHARES } else { 1 };
        let sources: Vec<std::sync::Mutex<PartSource>> = held
            .into_iter()
            .map(|held| {
                std::sync::Mutex::new(PartSource {
                    held,
                    read: false,
                    shares: (0..shares).map(|_| None).collect(),
                })
            })
            .collect();
        let units = parts.len() * shares;
        let one = |u: usize| {
            let (k, share) = (u / shares, u % shares);
            let mut out = StagedPart::default();
            let t0 = std::time::Instant::now();
            let rows = {
                // The first share of a part to be staged reads it and takes every share's
                // rows; the others wait for it.
                let mut src = sources[k].lock().unwrap_or_else(|e| e.into_inner());
                if !src.read {
                    src.read = true;
                    let held = src.held.take();
                    let (table, keep) = part_keep(&parts[k], held, self.pos_of, self.at_row)?;
                    let n = keep.len();
                    for s in 0..shares {
                        let mine = keep[n * s / shares..n * (s + 1) / shares].to_vec();
                        let rows =
                            part_rows(&table, &mine, self.all, self.rank, &self.meta.resolved)?;
                        src.shares[s] = Some((rows, mine));
                    }
                }
                src.shares[share].take()
            };
            out.times.0 += t0.elapsed();
            let Some((table, keep)) = rows else {
                return Ok(None);
            };
            let staged = self.stage((k, share), table, &keep, spill.as_ref(), &mut out)?;
            Ok(Some((staged, out)))
        };
        let results: Vec<StageResult> = if workers == 1 {
            (0..units).map(one).collect()
        } else {
            let next = std::sync::atomic::AtomicUsize::new(0);
            let slots: Vec<std::sync::Mutex<Option<StageResult>>> =
                (0..units).map(|_| std::sync::Mutex::new(None)).collect();
            let work = || {
                loop {
                    let u = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if u >= units {
                        break;
                    }
                    let r = one(u);
                    let failed = r.is_err();
                    *slots[u].lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
                    if failed {
                        // The shares after a failed one are not staged.
                        next.fetch_max(units, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            };
            // This thread is one of the workers; a helper the system cannot start leaves the
            // work to the others.
            std::thread::scope(|scope| {
                for _ in 1..workers {
                    let started = std::thread::Builder::new()
                        .name("breakdesk-stage".into())
                        .spawn_scoped(scope, work);
                    if let Err(e) = started {
                        tracing::warn!(error = %e, "a staging worker could not be started");
                        break;
                    }
                }
                work();
            });
            slots
                .into_iter()
                .map_while(|s| s.into_inner().unwrap_or_else(|e| e.into_inner()))
                .collect()
        };
        let mut staged: Vec<Staged> = Vec::with_capacity(units);
        let mut buckets = crate::categorize::BucketTally::default();
        let mut llm = None;
        let mut times = (std::time::Duration::ZERO, std::time::Duration::ZERO);
        for r in results {
            let Some((s, part)) = r? else {
                continue;
            };
            staged.push(s);
            for (bucket, n) in part.buckets.0 {
                let sum = buckets.0.entry(bucket).or_default();
                for (a, b) in sum.iter_mut().zip(n) {
                    *a += b;
                }
            }
            add_llm(&mut llm, part.llm);
            times.0 += part.times.0;
            times.1 += part.times.1;
        }
        if staged.len() != units {
            return Err(PartError::Invalid {
                file: self.stage.display().to_string(),
                message: format!(
                    "{} of {} parts were staged",
                    staged.len() / shares,
                    parts.len()
                ),
            });
        }
        Ok((staged, buckets, llm, times))
    }

    /// Share `share` of part `k`: its written rows `table` ([`part_rows`]: with the merged
    /// score, flag and rank; `keep` says where each one stands) categorized (the
    /// severity's top share, the summary's rank and any rule reading `rank` depend on every
    /// part), their case inputs spilled, and the rows staged on disk in the output's order.
    /// `times` adds the categorizing time.
    fn stage(
        &self,
        (k, share): (usize, usize),
        mut table: DataFrame,
        keep: &[Kept],
        spill: Option<&std::sync::Mutex<&mut CaseSpill>>,
        out: &mut StagedPart,
    ) -> Result<Staged, PartError> {
        let StagedPart {
            buckets,
            llm,
            times,
        } = out;
        let t0 = std::time::Instant::now();
        let rows: Vec<usize> = (0..table.height())
            .filter(|r| (self.is_case)(keep[*r].2))
            .collect();
        let categorized = pipeline::categorize(
            self.settings,
            self.rules,
            &table,
            &self.meta.resolved,
            &rows,
            self.flagged_total,
            self.store,
        )?;
        pipeline::with_categories(&mut table, &rows, &categorized.cats)?;
        add_llm(llm, categorized.llm);
        times.1 += t0.elapsed();
        // The categorized rows' case inputs, spilled to the stage (named by their place among
        // the cases, as in one table of them).
        if let Some(spill) = spill {
            let at: Vec<u32> = rows
                .iter()
                .map(|r| self.case_of_pos[keep[*r].0 as usize])
                .collect();
            let inputs = pipeline::break_inputs(
                &self.meta.profile,
                &table,
                &rows,
                &categorized.cats,
                &self.meta.model_version,
                Some(&at),
            )?;
            // Encoded by this worker; only the writing holds the spill.
            let encoded = CaseSpill::encode(&inputs)?;
            drop(inputs);
            spill
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .put(&at, encoded)?;
        }
        for c in &categorized.cats {
            buckets.add(c);
        }
        drop(categorized.cats);
        // The rows as the output writes them, without the case columns (added when the staged
        // shares are merged).
        let cols: Vec<PlSmallStr> = crate::output::output_columns(&table)
            .into_iter()
            .filter(|c| !CASE_COLUMNS.contains(&c.as_str()))
            .collect();
        let path = self.stage.join(format!("part-{k}-{share}.staged"));
        crate::output::write_table(&table.select(cols)?, &path, self.format)
            .map_err(|e| werr(&path, e))?;
        tracing::debug!(part = k, share, resident_mib = ?crate::logging::resident_mib(), "merge: part staged");
        Ok(Staged {
            path,
            pos: keep.iter().map(|k| k.0).collect(),
        })
    }
}

/// The folder the parts are staged in: a new one in `dir` (made if need be), else in the
/// system's temporary folder; removed when dropped.
fn stage_dir(dir: Option<&Path>) -> Result<tempfile::TempDir, PartError> {
    match dir {
        Some(d) => {
            std::fs::create_dir_all(d).map_err(|e| werr(d, e))?;
            tempfile::Builder::new()
                .prefix("merge-")
                .tempdir_in(d)
                .map_err(|e| werr(d, e))
        }
        None => tempfile::tempdir().map_err(|e| werr(Path::new("temporary folder"), e)),
    }
}

/// Where each input row is among the rows of every part.
enum RowPlaces {
    /// By row number: the place of row r at r (u32::MAX: no such row). Rows are numbered
    /// about densely (rows rejected or blank leave gaps), so this takes a few bytes a row.
    Direct(Vec<u32>),
    /// The places sorted by row number (row numbers too sparse for a direct table).
    Sorted(Vec<u32>),
}

impl RowPlaces {
    /// The place of row `r` among the rows, numbered `bd_row`.
    fn at(&self, r: u64, bd_row: &[u64]) -> Option<usize> {
        match self {
            RowPlaces::Direct(at) => usize::try_from(r)
                .ok()
                .and_then(|r| at.get(r))
                .filter(|i| **i != u32::MAX)
                .map(|i| *i as usize),
            RowPlaces::Sorted(by_row) => by_row
                .binary_search_by_key(&r, |i| bd_row[*i as usize])
                .ok()
                .map(|k| by_row[k] as usize),
        }
    }
}

/// Row numbers per row up to which [`RowPlaces::Direct`] is used (a file of which most rows
/// were rejected still has a direct table).
const DIRECT_SPREAD: u64 = 16;

/// How many shares a part's written rows are staged in when several workers stage them: the
/// workers then finish within half a part of each other.
const STAGE_SHARES: usize = 2;

/// Every row of every part, in one list (moved out of the parts: held once), and the rows'
/// places by input row; a row found in two parts is refused. Row positions are u32, as the
/// ranks are.
fn gather_rows(parts: &mut [Part], lens: &[usize]) -> Result<(AllRows, RowPlaces), PartError> {
    let total: usize = lens.iter().sum();
    if u32::try_from(total).is_err() {
        return Err(PartError::Invalid {
            file: parts[0].path.display().to_string(),
            message: format!("the parts hold {total} rows, more than a merge can rank"),
        });
    }
    let mut all = AllRows {
        bd_row: Vec::with_capacity(total),
        score: Vec::with_capacity(total),
        difference: Vec::with_capacity(total),
        cluster: Vec::with_capacity(total),
        flags: Vec::with_capacity(total),
    };
    for p in parts.iter_mut() {
        let r = &mut p.rows;
        all.bd_row.append(&mut std::mem::take(&mut r.bd_row));
        all.score.append(&mut std::mem::take(&mut r.score));
        all.difference
            .append(&mut std::mem::take(&mut r.difference));
        all.cluster.append(&mut std::mem::take(&mut r.cluster));
        all.flags.append(&mut std::mem::take(&mut r.flags));
    }
    let owner = |i: u32| -> &Part {
        let mut i = i as usize;
        let mut k = 0;
        while k + 1 < lens.len() && i >= lens[k] {
            i -= lens[k];
            k += 1;
        }
        &parts[k]
    };
    let overlap = |a: u32, b: u32| {
        let (pa, pb) = (owner(a), owner(b));
        PartError::Mismatch {
            file: pb.path.display().to_string(),
            other: pa.path.display().to_string(),
            message: format!(
                "both hold row {} of the input: the parts overlap",
                all.bd_row[a as usize]
            ),
        }
    };
    match row_places(&all.bd_row) {
        Ok(places) => Ok((all, places)),
        Err((a, b)) => Err(overlap(a, b)),
    }
}

/// The places of rows numbered `bd_row` ([`RowPlaces`]), or the places of two rows of the same
/// number (the earlier first).
fn row_places(bd_row: &[u64]) -> Result<RowPlaces, (u32, u32)> {
    let max = bd_row.iter().copied().max().unwrap_or(0);
    if max <= (bd_row.len() as u64).saturating_mul(DIRECT_SPREAD) + 4096 {
        let mut at = vec![u32::MAX; max as usize + 1];
        for (i, r) in bd_row.iter().enumerate() {
            let slot = &mut at[*r as usize];
            if *slot != u32::MAX {
                return Err((*slot, i as u32));
            }
            *slot = i as u32;
        }
        return Ok(RowPlaces::Direct(at));
    }
    let mut keyed: Vec<(u64, u32)> = bd_row
        .iter()
        .enumerate()
        .map(|(i, r)| (*r, i as u32))
        .collect();
    {
        use rayon::prelude::*;
        keyed.par_sort_unstable();
    }
    if let Some(w) = keyed.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err((w[0].1, w[1].1));
    }
    Ok(RowPlaces::Sorted(
        keyed.into_iter().map(|(_, i)| i).collect(),
    ))
}

/// Ranks across every row: by triage score, then file order (as a run ranks). Only the
/// written rows' ranks are read (every row's with `all_rows`): rows ranked below every written
/// one are not ranked (`u32::MAX`).
fn ranks(all: &AllRows, all_rows: bool) -> Vec<u32> {
    if all_rows {
        return crate::detect::model::ranks_by(&all.score, |i| all.bd_row[i]);
    }
    crate::detect::model::ranks_of(
        &all.score,
        |i| all.bd_row[i],
        |i| all.flags[i] & (FLAGGED | PROPOSED) != 0,
    )
}

/// Part `p`'s table (`held`, or read from its file) and its written rows in the output's
/// order, each with (output position, row in the table, place among all rows).
fn part_keep(
    p: &Part,
    held: Option<DataFrame>,
    pos_of: &[u32],
    at_row: &dyn Fn(u64) -> Option<usize>,
) -> Result<(DataFrame, Vec<Kept>), PartError> {
    let table = read_table(p, held)?;
    let rows_of: Vec<u64> = table
        .column("bd_row")?
        .cast(&DataType::UInt64)?
        .u64()?
        .iter()
        .map(|v| v.unwrap_or(u64::MAX))
        .collect();
    let mut keep: Vec<Kept> = Vec::new();
    for (r, bd_row) in rows_of.iter().enumerate() {
        let i = at_row(*bd_row).ok_or_else(|| PartError::Invalid {
            file: p.path.display().to_string(),
            message: format!("it holds row {bd_row}, which no part's rows file lists"),
        })?;
        if pos_of[i] != u32::MAX {
            keep.push((pos_of[i], r, i));
        }
    }
    keep.sort_unstable();
    Ok((table, keep))
}

/// The rows `keep` of a part's `table` ([`part_keep`]), in that order, with the merged score,
/// flag and rank and the canonical categories the rules see.
fn part_rows(
    table: &DataFrame,
    keep: &[Kept],
    all: &AllRows,
    rank: &[u32],
    resolved: &Resolved,
) -> Result<DataFrame, PartError> {
    let take = IdxCa::from_vec("take".into(), keep.iter().map(|k| k.1 as IdxSize).collect());
    let mut table = table.take(&take)?;
    table.with_column(Column::new(
        "score".into(),
        keep.iter().map(|k| all.score[k.2]).collect::<Vec<f64>>(),
    ))?;
    table.with_column(Column::new(
        "is_anomaly".into(),
        keep.iter()
            .map(|k| all.flags[k.2] & FLAGGED != 0)
            .collect::<Vec<bool>>(),
    ))?;
    table.with_column(Column::new(
        "rank".into(),
        keep.iter().map(|k| rank[k.2]).collect::<Vec<u32>>(),
    ))?;
    // The canonical categories the rules see.
    for role in &resolved.categoricals {
        let name = format!("bd_cat_{}", role.slug);
        if table.column(&name).is_ok() {
            continue;
        }
        if let Ok(c) = table.column(&role.header).and_then(|c| c.str().cloned()) {
            let v: StringChunked = c.iter().map(|v| Some(v.unwrap_or("").trim())).collect();
            table.with_column(v.with_name(name.into()).into_column())?;
        }
    }
    Ok(table)
}

/// The cases of the spilled inputs, recorded group by group in the output's order (a break's
/// records in its first record's group), rolled forward when `roll` is given.
fn record_spilled(
    settings: &Settings,
    store: &crate::store::Store,
    spill: CaseSpill,
    case_group: usize,
    cases: usize,
    roll: Option<Roll>,
) -> Result<(Vec<pipeline::CaseMark>, Option<crate::cycle::RunSummary>), PartError> {
    let mut spill = spill.finish()?;
    let group = match case_group {
        0 => CASE_GROUP,
        n => n,
    };
    let groups = pipeline::break_groups(spill.breaks(), group);
    let roll = roll.map(|r| (r.day, r.cycle.and_then(|c| c.finish()), r.file));
    Ok(pipeline::record_groups(
        settings,
        store,
        &groups,
        cases,
        roll,
        |group| spill.take(group),
    )?)
}

/// Adds a part's LLM report to the merge's.
pub(super) fn add_llm(
    sum: &mut Option<crate::categorize::llm::LlmReport>,
    part: Option<crate::categorize::llm::LlmReport>,
) {
    let Some(p) = part else { return };
    let Some(s) = sum.as_mut() else {
        *sum = Some(p);
        return;
    };
    s.rows += p.rows;
    s.distinct += p.distinct;
    s.cache_hits += p.cache_hits;
    s.asked += p.asked;
    s.http_requests += p.http_requests;
    s.used += p.used;
    for (k, v) in p.fallbacks {
        *s.fallbacks.entry(k).or_default() += v;
    }
    s.circuit_open |= p.circuit_open;
}

/// The records of a CSV file written by the output (RFC 4180: a quoted field may hold line
/// breaks), one at a time, each with its line break.
pub(super) struct Records<R: std::io::BufRead> {
    pub(super) r: R,
    pub(super) buf: Vec<u8>,
}

impl<R: std::io::BufRead> Records<R> {
    fn next(&mut self) -> std::io::Result<Option<&[u8]>> {
        self.buf.clear();
        let mut quotes = 0usize;
        loop {
            let start = self.buf.len();
            let n = self.r.read_until(b'\n', &mut self.buf)?;
            quotes += memchr::memchr_iter(b'"', &self.buf[start..]).count();
            if n == 0 || quotes.is_multiple_of(2) {
                return Ok((!self.buf.is_empty()).then_some(&self.buf[..]));
            }
        }
    }
}

/// A text cell as the CSV output writes it: neutralised, quoted when it holds the delimiter, a
/// quote or a line break, and `""` when empty.
pub(super) fn csv_cell(s: &str) -> String {
    let s = crate::text::csv_text(s);
    if s.is_empty() {
        return "\"\"".into();
    }
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.into_owned()
    }
}

/// Writes the output from the staged parts: the rows in order of position, each with its
/// case's id, ticket and status (`cases`, at `case_pos`, ascending; empty for the others).
/// The rows are put together on a thread of their own ([`StagedRows::lines`]) while this one
/// writes them.
pub(super) fn write_staged(
    staged: &[Staged],
    n_out: usize,
    cases: &[pipeline::CaseMark],
    case_pos: &[u32],
    out: &Path,
    format: Format,
) -> Result<(), PartError> {
    let mut w = crate::output::open(out).map_err(|e| werr(out, e))?;
    // Two batches wait at most while one is written.
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(2);
    let rows = StagedRows {
        staged,
        n_out,
        cases,
        case_pos,
        out,
        format,
    };
    std::thread::scope(|scope| {
        let lines = std::thread::Builder::new()
            .name("breakdesk-lines".into())
            .spawn_scoped(scope, move || rows.lines(tx))
            .map_err(|e| {
                werr(
                    out,
                    format!("cannot start a thread to put the rows together: {e}"),
                )
            })?;
        let mut written = Ok(());
        // A failed write stops the reading: its batches are no longer taken.
        for batch in rx {
            if let Err(e) = w.write_all(&batch) {
                written = Err(werr(out, e));
                break;
            }
        }
        let made = lines.join().unwrap_or_else(|_| {
            Err(PartError::Invalid {
                file: out.display().to_string(),
                message: "the merge stopped putting the rows together unexpectedly".into(),
            })
        });
        written?;
        made?;
        w.flush().map_err(|e| werr(out, e))
    })
}

/// Bytes of output rows put together before they are handed on to be written.
const LINES_BATCH: usize = 1 << 20;

/// What [`write_staged`] writes: the staged parts, how many rows they hold, the cases and
/// their positions, the output and its format.
#[derive(Clone, Copy)]
struct StagedRows<'a> {
    staged: &'a [Staged],
    n_out: usize,
    cases: &'a [pipeline::CaseMark],
    case_pos: &'a [u32],
    out: &'a Path,
    format: Format,
}

impl StagedRows<'_> {
    /// The output's rows (with the header for CSV) put together from the staged parts, in
    /// order of position, with their case columns, and sent on in batches to `tx`. Stops
    /// without an error when nothing takes the batches any more (the writer failed and says
    /// why).
    fn lines(self, tx: std::sync::mpsc::SyncSender<Vec<u8>>) -> Result<(), PartError> {
        let StagedRows {
            staged,
            n_out,
            cases,
            case_pos,
            out,
            format,
        } = self;
        let mut readers: Vec<Records<std::io::BufReader<std::fs::File>>> = Vec::new();
        for s in staged {
            let f = std::fs::File::open(&s.path).map_err(|e| PartError::Read {
                file: s.path.display().to_string(),
                message: e.to_string(),
            })?;
            readers.push(Records {
                r: std::io::BufReader::with_capacity(1 << 20, f),
                buf: Vec::new(),
            });
        }
        let bad = |s: &Staged, e: &dyn std::fmt::Display| PartError::Invalid {
            file: s.path.display().to_string(),
            message: e.to_string(),
        };
        let mut w: Vec<u8> = Vec::with_capacity(LINES_BATCH + (64 << 10));
        if format == Format::Csv {
            // Every staged part starts with the same header: the first's is the output's.
            let mut header: Option<Vec<u8>> = None;
            for (r, s) in readers.iter_mut().zip(staged) {
                let h = r
                    .next()
                    .map_err(|e| bad(s, &e))?
                    .unwrap_or_default()
                    .to_vec();
                header.get_or_insert(h);
            }
            let mut h = header.unwrap_or_default();
            while matches!(h.last(), Some(b'\n' | b'\r')) {
                h.pop();
            }
            w.extend_from_slice(&h);
            w.extend_from_slice(b",case_id,ticket,case_status\n");
        }
        // The next row of each part, by position.
        let mut heap: std::collections::BinaryHeap<std::cmp::Reverse<(u32, usize, usize)>> = staged
            .iter()
            .enumerate()
            .filter(|(_, s)| !s.pos.is_empty())
            .map(|(k, s)| std::cmp::Reverse((s.pos[0], k, 0)))
            .collect();
        let mut next_case = 0usize;
        let mut written = 0usize;
        while let Some(std::cmp::Reverse((pos, k, at))) = heap.pop() {
            let s = &staged[k];
            let rec = readers[k]
                .next()
                .map_err(|e| bad(s, &e))?
                .ok_or_else(|| bad(s, &"it ends before its last row"))?;
            let mut rec = rec;
            while matches!(rec.last(), Some(b'\n' | b'\r')) {
                rec = &rec[..rec.len() - 1];
            }
            let case = (case_pos.get(next_case) == Some(&pos)).then(|| {
                next_case += 1;
                &cases[next_case - 1]
            });
            let (id, ticket, status) = match case {
                Some(c) => (c.id.as_str(), c.ticket.as_str(), c.status.as_str()),
                None => ("", "", ""),
            };
            match format {
                Format::Csv => {
                    w.extend_from_slice(rec);
                    for v in [id, ticket, status] {
                        w.push(b',');
                        w.extend_from_slice(csv_cell(v).as_bytes());
                    }
                    w.push(b'\n');
                }
                Format::Jsonl => {
                    let mut obj: serde_json::Map<String, serde_json::Value> =
                        serde_json::from_slice(rec).map_err(|e| bad(s, &e))?;
                    for (name, v) in CASE_COLUMNS.iter().zip([id, ticket, status]) {
                        obj.insert(name.to_string(), serde_json::Value::String(v.to_string()));
                    }
                    serde_json::to_writer(&mut w, &serde_json::Value::Object(obj))
                        .map_err(|e| werr(out, e))?;
                    w.push(b'\n');
                }
            }
            written += 1;
            if let Some(p) = s.pos.get(at + 1) {
                heap.push(std::cmp::Reverse((*p, k, at + 1)));
            }
            if w.len() >= LINES_BATCH
                && tx
                    .send(std::mem::replace(
                        &mut w,
                        Vec::with_capacity(LINES_BATCH + (64 << 10)),
                    ))
                    .is_err()
            {
                return Ok(());
            }
        }
        if written != n_out || next_case != cases.len() {
            return Err(PartError::Invalid {
                file: out.display().to_string(),
                message: format!(
                    "the merge wrote {written} rows of {n_out} ({next_case} of {} cases)",
                    cases.len()
                ),
            });
        }
        if !w.is_empty() {
            tx.send(w).ok();
        }
        Ok(())
    }
}

pub(super) fn add_triage(sum: &mut TriageSummary, part: &TriageSummary) {
    sum.rows += part.rows;
    sum.breaks += part.breaks;
    sum.candidates += part.candidates;
    sum.flagged += part.flagged;
    sum.flagged_own += part.flagged_own;
    sum.flagged_peers += part.flagged_peers;
    for (k, n) in &part.quiet_breaks {
        *sum.quiet_breaks.entry(k.clone()).or_default() += n;
    }
}

/// Quiets the candidates an analyst judged normal (the store's rejected cases, as
/// [`pipeline::quiet_explained_and_judged`] matches them): their score becomes a quiet row's and
/// their flag goes. Returns how many, and how many of them were flagged.
pub(super) fn apply_verdicts(
    settings: &Settings,
    parts: &[Part],
    lens: &[usize],
    store: &crate::store::Store,
    all: &mut AllRows,
    triage: &mut TriageSummary,
) -> Result<(usize, usize), PartError> {
    if !settings.feedback.enabled {
        return Ok((0, 0));
    }
    let cands: Vec<(usize, &Candidate)> = {
        let mut base = 0;
        let mut v = Vec::new();
        for (p, len) in parts.iter().zip(lens) {
            v.extend(p.rows.candidates.iter().map(|c| (base + c.at, c)));
            base += len;
        }
        v
    };
    if !settings.feedback.enabled || cands.is_empty() {
        return Ok((0, 0));
    }
    let profile = &parts[0].meta.profile;
    let df = DataFrame::new(
        cands.len(),
        vec![
            Column::new(crate::features::IS_BREAK.into(), vec![true; cands.len()]),
            Column::new(
                "bd_key".into(),
                cands
                    .iter()
                    .map(|(_, c)| c.key.as_str())
                    .collect::<Vec<_>>(),
            ),
            Column::new(
                "bd_date".into(),
                cands.iter().map(|(_, c)| c.date).collect::<Vec<_>>(),
            )
            .cast(&DataType::Date)?,
            Column::new(
                "bd_difference".into(),
                cands
                    .iter()
                    .map(|(i, _)| all.difference[*i])
                    .collect::<Vec<_>>(),
            ),
            Column::new(
                "f_break_age".into(),
                cands.iter().map(|(_, c)| c.age).collect::<Vec<_>>(),
            ),
        ],
    )?;
    let mut quiet = vec![None; cands.len()];
    pipeline::quiet_explained_and_judged(settings, &df, profile, store, &mut quiet)?;
    let own_z_min = parts[0].meta.own_z_min;
    let offset = parts[0].meta.offset;
    let (mut judged, mut judged_flagged) = (0, 0);
    for (k, (i, c)) in cands.iter().enumerate() {
        if quiet[k] != Some(Quiet::Judged) {
            continue;
        }
        // As the triage scores a quiet row (a run scores the quiet rows only when it writes
        // every row: else a judged row has no detector score), and counts it.
        let m = if c.model.is_finite() { c.model } else { 0.0 };
        let scored = if parts[0].meta.all_rows { m } else { 0.0 };
        all.score[*i] = 1.0 + scored.max(-1.0);
        judged += 1;
        triage.candidates -= 1;
        *triage
            .quiet_breaks
            .entry(Quiet::Judged.describe())
            .or_default() += 1;
        if all.flags[*i] & FLAGGED != 0 {
            judged_flagged += 1;
            all.flags[*i] &= !FLAGGED;
            triage.flagged -= 1;
            let z = Some(c.own_z)
                .filter(|z| z.is_finite() && *z > 0.0)
                .unwrap_or(0.0);
            if z > own_z_min {
                triage.flagged_own -= 1;
            } else if m < offset {
                triage.flagged_peers -= 1;
            }
        }
        all.flags[*i] &= !CANDIDATE;
    }
    Ok((judged, judged_flagged))
}

/// The cluster summary over every row, as [`crate::detect::cluster::summarize`] computes it for
/// one run: the differences of each cluster sorted, summed in that order, their median; the top
/// accounts from the parts' own (an account is in one part only).
pub(super) fn merge_clusters(
    parts: &[Part],
    all: &AllRows,
    k: usize,
    top: usize,
) -> Vec<ClusterSummary> {
    use rayon::prelude::*;
    let mut sizes = vec![0usize; k];
    for c in &all.cluster {
        if let Some(n) = sizes.get_mut(*c as usize) {
            *n += 1;
        }
    }
    let mut diffs: Vec<Vec<f64>> = sizes.iter().map(|n| Vec::with_capacity(*n)).collect();
    let mut anomalies = vec![0usize; k];
    for i in 0..all.bd_row.len() {
        let c = all.cluster[i] as usize;
        if c < k {
            diffs[c].push(all.difference[i]);
            if all.flags[i] & FLAGGED != 0 {
                anomalies[c] += 1;
            }
        }
    }
    // Sorted on every core (values equal in this order are the same bits: the sort's
    // stability cannot show).
    diffs
        .par_iter_mut()
        .for_each(|d| d.par_sort_unstable_by(f64::total_cmp));
    (0..k)
        .map(|c| {
            let d = &diffs[c];
            let tops: Vec<(String, usize)> = parts
                .iter()
                .flat_map(|p| p.meta.tops.get(c).cloned().unwrap_or_default())
                .collect();
            ClusterSummary::of(c, anomalies[c], d, tops, top)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rows numbered densely get a direct table, sparse ones a sorted list: both find every
    /// row's place, no place for a number no row has, and refuse a number held twice.
    #[test]
    fn every_rows_place_is_found_by_its_number_and_a_number_held_twice_is_refused() {
        let dense: Vec<u64> = vec![9, 2, 7, 3, 12, 4];
        let sparse: Vec<u64> = vec![5, u64::MAX - 1, 2, 1 << 40, 77];
        for (rows, direct) in [(&dense, true), (&sparse, false)] {
            let places = row_places(rows).unwrap();
            assert_eq!(matches!(places, RowPlaces::Direct(_)), direct);
            for (i, r) in rows.iter().enumerate() {
                assert_eq!(places.at(*r, rows), Some(i), "row {r}");
            }
            for missing in [0, 1 << 41, u64::MAX, 6] {
                assert_eq!(places.at(missing, rows), None, "row {missing}");
            }
            let mut twice = rows.clone();
            twice.insert(3, rows[1]);
            assert_eq!(row_places(&twice).err(), Some((1, 3)));
        }
    }
}
