//! The gl_ihub profile: daily GL vs IHub balances per account, rows ordered by date then account,
//! with labelled break episodes, routine accounts and (in messy mode) the quirks of real extracts.
//!
//! Three random streams: the main one (accounts, postings, episodes, comments), the messy one
//! (quirks only) and the routine one (routine accounts and their amounts and comments). Each
//! stream is drawn in the same order whatever the options, so a messy file holds the values of
//! the clean one.

use std::collections::BTreeMap;
use std::io::{BufWriter, Write};

use anyhow::{Context, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

use super::calendar::{business_days, month_ends};
use super::gl_accounts::{
    GL_GENERIC_COMMENTS, GlGroup, GlState, build_gl_groups, gl_kind_comments, gl_posting,
    init_gl_state, plan_gl_episode, plan_routine, routine_comments,
};
use super::write::{
    CommentWrapper, DayFmt, div_round, pick_date_fmt, push_cents, push_comment, push_field,
    push_noisy, push_u64,
};
use super::{
    BreakKind, GL_IHUB_HEADER, GenerateOptions, GenerateSummary, LABELS_HEADER, MESSY_SALT,
    PLACEHOLDER_DATE, ROUTINE_SALT, RoutineKind,
};

/// Mean episode length (days) plus one cooldown day, for the start-rate correction.
const GL_MEAN_EPISODE_DAYS: f64 =
    (2.0 + 1.0 + 2.0 + 3.5 + 1.5 + 1.0 + 1.0 + 4.5 + 10.0) / 9.0 + 1.0;

/// Number of business days D and groups G for a requested row count.
fn gl_shape(rows: usize) -> (usize, usize) {
    let (lo, hi, target) = if rows >= 1000 {
        (50, 70, 60)
    } else if rows >= 200 {
        (20, 50, 40)
    } else {
        (rows.clamp(1, 5), rows.clamp(1, 20), 20)
    };
    let mut best = (usize::MAX, usize::MAX, hi);
    for d in lo..=hi {
        let g = rows.div_ceil(d);
        let excess = g * d - rows;
        let dist = d.abs_diff(target);
        if (excess, dist) < (best.0, best.1) {
            best = (excess, dist, d);
        }
    }
    let d = best.2;
    (d, rows.div_ceil(d))
}

/// A row position: (day, group).
type Pos = (usize, usize);

/// Positions (day, group) of the placeholder-date row and of one forced
/// inconsistent-difference row. Drawn in both modes and kept free of
/// episodes in both modes, so clean and messy files share their values.
fn special_rows(mrng: &mut ChaCha8Rng, n_days: usize, n_groups: usize) -> (Pos, Option<Pos>) {
    let p_row = (
        mrng.gen_range(0..n_days.div_ceil(2)),
        mrng.gen_range(0..n_groups),
    );
    let mut q_row = p_row;
    if n_days * n_groups > 1 {
        for _ in 0..64 {
            q_row = (mrng.gen_range(0..n_days), mrng.gen_range(0..n_groups));
            if q_row != p_row {
                break;
            }
        }
        if q_row == p_row {
            let idx = (p_row.0 * n_groups + p_row.1 + 1) % (n_days * n_groups);
            q_row = (idx / n_groups, idx % n_groups);
        }
    }
    let q_row = if q_row == p_row { None } else { Some(q_row) };
    (p_row, q_row)
}

/// Writes the routine accounts (`group,kind`) when asked, and counts them per kind.
fn write_routine_list(
    routine_out: Option<&mut BufWriter<&mut dyn Write>>,
    groups: &[GlGroup],
    routine: &[Option<(RoutineKind, i64)>],
) -> Result<BTreeMap<&'static str, usize>> {
    let mut summary_routine: BTreeMap<&'static str, usize> = BTreeMap::new();
    if let Some(r) = routine_out {
        for (grp, rt) in groups.iter().zip(routine) {
            if let Some((kind, _)) = rt {
                let mut line = Vec::with_capacity(48);
                push_field(&mut line, &grp.key);
                line.push(b',');
                line.extend_from_slice(kind.as_str().as_bytes());
                line.push(b'\n');
                r.write_all(&line).context("writing the routine list")?;
            }
        }
    }
    for (kind, _) in routine.iter().flatten() {
        *summary_routine.entry(kind.as_str()).or_insert(0) += 1;
    }
    Ok(summary_routine)
}

/// Share of the episodes of non-USD accounts that are FX revaluations (about one episode in
/// nine overall).
fn fx_share(groups: &[GlGroup], n_groups: usize) -> f64 {
    let non_usd = groups.iter().filter(|g| !g.usd).count() as f64 / n_groups as f64;
    if non_usd > 0.0 {
        (1.0 / (9.0 * non_usd)).min(1.0)
    } else {
        0.0
    }
}

/// Probability that an account free of episodes starts one today, for a break rate `r`
/// (corrected for the days accounts spend in episodes and cooldown).
fn episode_start_rate(r: f64) -> f64 {
    if r <= 0.0 {
        0.0
    } else {
        let free = 1.0 - r * GL_MEAN_EPISODE_DAYS;
        if free <= 0.05 {
            1.0
        } else {
            (r / free).min(1.0)
        }
    }
}

/// The values of one row, before it is written.
struct GlRow {
    /// Today's GL posting in cents.
    change: i64,
    /// GL balance in cents.
    gl: i64,
    /// GL - IHub in cents.
    diff: i64,
    comment: Option<&'static str>,
}

/// The gl_ihub generator between two rows: random streams, accounts, output.
struct GlGen<'a> {
    messy: bool,
    rng: ChaCha8Rng,
    mrng: ChaCha8Rng,
    rrng: ChaCha8Rng,
    groups: Vec<GlGroup>,
    states: Vec<GlState>,
    /// Per account: its routine kind and amount, if routine.
    routine: Vec<Option<(RoutineKind, i64)>>,
    /// Per day: last business day of its month.
    month_end: Vec<bool>,
    /// The placeholder-date row and the forced stale-difference row (messy mode).
    p_row: Pos,
    q_row: Option<Pos>,
    fx_share: f64,
    p_start: f64,
    summary: GenerateSummary,
    wrapper: CommentWrapper,
    line: Vec<u8>,
    lab_line: Vec<u8>,
    /// Spreadsheet row number of the current row (the header is row 1).
    row_no: u64,
    out: &'a mut dyn Write,
    labels: Option<&'a mut dyn Write>,
}

pub(super) fn gen_gl_ihub(
    opts: &GenerateOptions,
    w: &mut dyn Write,
    mut labels: Option<&mut BufWriter<&mut dyn Write>>,
    routine_out: Option<&mut BufWriter<&mut dyn Write>>,
) -> Result<GenerateSummary> {
    let (n_days, n_groups) = gl_shape(opts.rows);
    let dates = business_days(opts.start_date, 0, n_days)?;
    let day_fmts: Vec<DayFmt> = dates.iter().map(|d| DayFmt::new(*d)).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
    let mut mrng = ChaCha8Rng::seed_from_u64(opts.seed ^ MESSY_SALT);
    let (p_row, q_row) = special_rows(&mut mrng, n_days, n_groups);

    let groups = build_gl_groups(&mut rng, n_groups)?;
    let mut states: Vec<GlState> = Vec::new();
    states
        .try_reserve_exact(n_groups)
        .context("rows too large: cannot allocate account state")?;
    for g in &groups {
        states.push(init_gl_state(&mut rng, g.account));
    }
    // Routine accounts, from their own random stream: the kind and its amount (the standing item,
    // or the accrual's typical size).
    let mut rrng = ChaCha8Rng::seed_from_u64(opts.seed ^ ROUTINE_SALT);
    let routine = plan_routine(&mut rrng, opts.routine_share, &states);
    let routine_accounts = write_routine_list(routine_out, &groups, &routine)?;
    let month_end = month_ends(&dates);
    let fx_share = fx_share(&groups, n_groups);
    let p_start = episode_start_rate(opts.break_rate);

    w.write_all(GL_IHUB_HEADER.as_bytes())?;
    w.write_all(b"\n")?;
    if let Some(l) = labels.as_mut() {
        writeln!(l, "{LABELS_HEADER}")?;
    }

    let mut run = GlGen {
        messy: opts.messy,
        rng,
        mrng,
        rrng,
        groups,
        states,
        routine,
        month_end,
        p_row,
        q_row,
        fx_share,
        p_start,
        summary: GenerateSummary {
            groups: n_groups,
            dates: n_days,
            routine_accounts,
            ..GenerateSummary::default()
        },
        wrapper: CommentWrapper::new(opts.messy),
        line: Vec::with_capacity(512),
        lab_line: Vec::with_capacity(64),
        row_no: 1,
        out: w,
        labels: labels.map(|l| l as &mut dyn Write),
    };
    for (d, day) in day_fmts.iter().enumerate() {
        for g in 0..n_groups {
            run.row(d, g, day)?;
        }
    }
    run.summary.rows = n_days * n_groups;
    Ok(run.summary)
}

impl GlGen<'_> {
    /// Account `g` on day `d`: maybe a new episode, today's posting, the difference and the
    /// comment; then the row and its label.
    fn row(&mut self, d: usize, g: usize, day: &DayFmt) -> Result<()> {
        self.row_no += 1;
        let st = &mut self.states[g];
        let resolved_today = st.cooldown;
        st.cooldown = false;
        let routine_here = self.routine[g];
        if routine_here.is_none()
            && self.states[g].ep.is_none()
            && !resolved_today
            && d >= 1
            && self.p_start > 0.0
        {
            self.maybe_start_episode(d, g);
        }
        let force = self.states[g].ep.as_ref().is_some_and(|e| {
            e.kind == BreakKind::StaleBalance
                || (e.day == 0 && matches!(e.kind, BreakKind::Timing | BreakKind::DuplicateEntry))
        });
        let change = gl_posting(&mut self.rng, &self.states[g], force);
        let st = &mut self.states[g];
        st.gl = st.gl.saturating_add(change);
        let gl = st.gl;
        let (diff, label, routine_comment) = match routine_here {
            Some((kind, amount)) => {
                let (diff, comment) = self.routine_diff(d, kind, amount, change);
                (diff, None, comment)
            }
            None => {
                let (diff, label) = self.episode_diff(g, change, gl);
                (diff, label, None)
            }
        };
        let comment = self.comment(label, routine_comment, resolved_today);
        let row = GlRow {
            change,
            gl,
            diff,
            comment,
        };
        self.write_row(d, g, day, &row)?;
        if let Some(kind) = label {
            self.write_label(g, kind)?;
        }
        Ok(())
    }

    /// Draws whether account `g` starts an episode on day `d`, and plans it; an episode that
    /// would cover one of the special rows is dropped.
    fn maybe_start_episode(&mut self, d: usize, g: usize) {
        let start = self.p_start >= 1.0 || self.rng.r#gen::<f64>() < self.p_start;
        if start {
            let ep = plan_gl_episode(
                &mut self.rng,
                &self.states[g],
                self.groups[g].usd,
                self.fx_share,
            );
            let end = d + ep.len as usize;
            let covers = |pos: Pos| pos.1 == g && pos.0 >= d && pos.0 < end;
            if !covers(self.p_row) && !self.q_row.is_some_and(covers) {
                self.states[g].ep = Some(ep);
                self.summary.episodes += 1;
            }
        }
    }

    /// GL - IHub of a routine account on day `d` (today's GL posting is `change`), and maybe
    /// a routine comment.
    fn routine_diff(
        &mut self,
        d: usize,
        kind: RoutineKind,
        amount: i64,
        change: i64,
    ) -> (i64, Option<&'static str>) {
        let mut routine_comment = None;
        let diff = match kind {
            RoutineKind::StandingItem => amount,
            // IHub holds yesterday's GL balance: the difference is today's posting.
            RoutineKind::HabitualLag => change,
            RoutineKind::MonthEndAccrual if self.month_end[d] => {
                let z: f64 = self.rrng.sample(StandardNormal);
                ((amount as f64) * (1.0 + 0.03 * z)).round() as i64
            }
            RoutineKind::MonthEndAccrual => 0,
        };
        if diff != 0 {
            self.summary.routine_break_rows += 1;
            if self.rrng.r#gen::<f64>() < 0.15 {
                let list = routine_comments(kind);
                routine_comment = Some(list[self.rrng.gen_range(0..list.len())]);
            }
        }
        (diff, routine_comment)
    }

    /// GL - IHub of account `g` from its episode (none: 0) and the episode's kind as the label;
    /// the episode moves on by one day.
    fn episode_diff(&mut self, g: usize, change: i64, gl: i64) -> (i64, Option<BreakKind>) {
        let st = &mut self.states[g];
        let Some(ep) = st.ep.as_mut() else {
            return (0, None);
        };
        if ep.day == 0 {
            match ep.kind {
                BreakKind::Timing => ep.amount = change,
                BreakKind::DuplicateEntry => ep.amount = -change,
                _ => {}
            }
        }
        let mut diff = match ep.kind {
            BreakKind::Timing
            | BreakKind::Rounding
            | BreakKind::MissingEntry
            | BreakKind::DuplicateEntry => ep.amount,
            BreakKind::FxRevaluation => (gl as f64 * ep.rate).round() as i64,
            BreakKind::SignFlip => gl.saturating_mul(2),
            BreakKind::FatFinger => {
                let ihub = if ep.up {
                    gl.saturating_mul(ep.pow10)
                } else {
                    div_round(gl, ep.pow10)
                };
                gl.saturating_sub(ihub)
            }
            BreakKind::StaleBalance => gl - ep.base,
            BreakKind::Drift => ep.amount.saturating_mul(ep.day as i64 + 1),
        };
        if diff == 0 {
            diff = if gl < 0 { -1 } else { 1 };
        }
        let label = ep.kind;
        ep.day += 1;
        if ep.day >= ep.len {
            st.ep = None;
            st.cooldown = true;
        }
        (diff, Some(label))
    }

    /// The row's comment: sometimes on a labelled row, the routine comment if any, sometimes
    /// "Cleared" on the day after an episode.
    fn comment(
        &mut self,
        label: Option<BreakKind>,
        routine_comment: Option<&'static str>,
        resolved_today: bool,
    ) -> Option<&'static str> {
        match label {
            Some(kind) => {
                if self.rng.r#gen::<f64>() < 0.3 {
                    let list = if self.rng.gen_bool(0.5) {
                        gl_kind_comments(kind)
                    } else {
                        GL_GENERIC_COMMENTS
                    };
                    Some(list[self.rng.gen_range(0..list.len())])
                } else {
                    None
                }
            }
            None if routine_comment.is_some() => routine_comment,
            None if resolved_today && self.rng.r#gen::<f64>() < 0.1 => Some("Cleared"),
            None => None,
        }
    }

    /// Writes the CSV line of account `g` on day `d`, with the messy quirks.
    fn write_row(&mut self, d: usize, g: usize, day: &DayFmt, row: &GlRow) -> Result<()> {
        let messy = self.messy;
        let grp = &self.groups[g];
        let (gl, diff) = (row.gl, row.diff);
        let ihub = gl.saturating_sub(diff);
        self.line.clear();
        let is_p = messy && (d, g) == self.p_row;
        let is_q = messy && Some((d, g)) == self.q_row;
        if is_p {
            self.line.extend_from_slice(PLACEHOLDER_DATE.as_bytes());
        } else if is_q {
            self.line.extend_from_slice(day.serial.as_bytes());
        } else if messy {
            let f = pick_date_fmt(&mut self.mrng);
            self.line.extend_from_slice(day.get(f).as_bytes());
        } else {
            self.line.extend_from_slice(day.iso.as_bytes());
        }
        self.line.push(b',');
        self.line.extend_from_slice(&grp.head);
        if !(messy && self.mrng.r#gen::<f64>() < 0.03) {
            self.line.extend_from_slice(&grp.secondary);
        }
        self.line.push(b',');
        let noisy =
            |mrng: &mut ChaCha8Rng, force: bool| messy && (force || mrng.r#gen::<f64>() < 0.02);
        if noisy(&mut self.mrng, is_q) {
            push_noisy(&mut self.line, gl, 2, 2);
        } else {
            push_cents(&mut self.line, gl);
        }
        self.line.push(b',');
        if noisy(&mut self.mrng, false) {
            push_noisy(&mut self.line, ihub, 2, 2);
        } else {
            push_cents(&mut self.line, ihub);
        }
        self.line.push(b',');
        let mut shown_diff = diff;
        if messy && (is_q || (!is_p && self.mrng.r#gen::<f64>() < 0.002)) {
            // A stale Balance Difference, as if computed before today's posting.
            let delta = if row.change != 0 {
                -row.change
            } else {
                let m = (self.states[g].scale as i64).max(2);
                let v = self.mrng.gen_range(1..m);
                if self.mrng.gen_bool(0.5) { v } else { -v }
            };
            shown_diff = diff.saturating_add(delta);
        }
        if noisy(&mut self.mrng, is_q) {
            push_noisy(&mut self.line, shown_diff, 2, 2);
        } else {
            push_cents(&mut self.line, shown_diff);
        }
        self.line.push(b',');
        self.line
            .extend_from_slice(if diff != 0 { b"Break" } else { b"Match" });
        self.line.push(b',');
        if let Some(c) = row.comment {
            let wrap = self.wrapper.pick(&mut self.mrng);
            push_comment(&mut self.line, c, wrap);
        }
        self.line.push(b'\n');
        self.out
            .write_all(&self.line)
            .context("writing generated CSV")
    }

    /// Counts the labelled row of account `g` and writes its label when asked.
    fn write_label(&mut self, g: usize, kind: BreakKind) -> Result<()> {
        self.summary.labelled_rows += 1;
        *self.summary.by_kind.entry(kind.as_str()).or_insert(0) += 1;
        if let Some(l) = self.labels.as_mut() {
            self.lab_line.clear();
            push_u64(&mut self.lab_line, self.row_no);
            self.lab_line.push(b',');
            self.lab_line.extend_from_slice(kind.as_str().as_bytes());
            self.lab_line.push(b',');
            push_field(&mut self.lab_line, &self.groups[g].key);
            self.lab_line.push(b'\n');
            l.write_all(&self.lab_line).context("writing labels CSV")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeSet, HashMap, HashSet};

    use chrono::{Datelike, NaiveDate};

    use super::super::calendar::is_business_day;
    use super::super::test_support::*;
    use super::super::{GenProfile, ROUTINE_HEADER, generate_with_routine, gl_group_key};
    use super::*;

    #[test]
    fn gl_routine_accounts_carry_only_their_routine_breaks() {
        let o = GenerateOptions {
            routine_share: 0.3,
            ..opts(GenProfile::GlIhub, 6000, 5, false)
        };
        let mut out: Vec<u8> = Vec::new();
        let mut lab: Vec<u8> = Vec::new();
        let mut rl: Vec<u8> = Vec::new();
        let s = generate_with_routine(&o, &mut out, Some(&mut lab), Some(&mut rl)).unwrap();
        let csv = String::from_utf8(out).unwrap();
        let lab = String::from_utf8(lab).unwrap();
        let rl = String::from_utf8(rl).unwrap();
        let mut routine: BTreeMap<String, String> = BTreeMap::new();
        for (i, line) in rl.lines().enumerate() {
            if i == 0 {
                assert_eq!(line, ROUTINE_HEADER);
                continue;
            }
            let f = split_csv(line);
            routine.insert(f[0].clone(), f[1].clone());
        }
        let n_routine = routine.len();
        assert_eq!(n_routine, s.routine_accounts.values().sum::<usize>());
        // About 30 % of the accounts, of each kind.
        let share = n_routine as f64 / s.groups as f64;
        assert!((0.2..0.4).contains(&share), "{share}");
        for k in RoutineKind::ALL {
            assert!(routine.values().any(|v| v == k.as_str()), "{k:?}");
        }
        let labelled: HashSet<usize> = lab
            .lines()
            .skip(1)
            .map(|l| l.split(',').next().unwrap().parse().unwrap())
            .collect();
        // Per routine account: (date, gl, ihub) in order.
        let mut series: BTreeMap<String, Vec<(NaiveDate, i64, i64)>> = BTreeMap::new();
        let mut routine_breaks = 0;
        for (i, line) in csv.lines().enumerate().skip(1) {
            let r = split_csv(line);
            let key = gl_group_key(&r[1], &r[2], &r[3], &r[4]);
            let (gl, ihub) = (units(&r[7], 2), units(&r[8], 2));
            if routine.contains_key(&key) {
                assert!(
                    !labelled.contains(&(i + 1)),
                    "routine row {} labelled",
                    i + 1
                );
                routine_breaks += usize::from(gl != ihub);
                let d = parse_date(&r[0]).unwrap();
                series.entry(key).or_default().push((d, gl, ihub));
            } else {
                assert_eq!(labelled.contains(&(i + 1)), gl != ihub, "row {}", i + 1);
            }
        }
        assert_eq!(routine_breaks, s.routine_break_rows);
        assert!(routine_breaks > 0);
        for (key, rows) in &series {
            match routine[key].as_str() {
                "standing_item" => {
                    let d0 = rows[0].1 - rows[0].2;
                    assert_ne!(d0, 0);
                    assert!(rows.iter().all(|(_, g, i)| g - i == d0), "{key}");
                }
                "habitual_lag" => {
                    for w in rows.windows(2) {
                        assert_eq!(w[1].2, w[0].1, "{key}: IHub is yesterday's GL");
                    }
                }
                "month_end_accrual" => {
                    for (d, g, i) in rows {
                        let next = business_days(*d, 0, 2).unwrap()[1];
                        let month_end = next.month() != d.month();
                        assert_eq!(g != i, month_end, "{key} {d}");
                    }
                }
                other => panic!("unknown kind {other}"),
            }
        }
    }

    #[test]
    fn gl_labels_are_the_ground_truth() {
        let (csv, lab, s) = run(&opts(GenProfile::GlIhub, 20000, 11, false));
        let (_, rows) = rows_of(&csv);
        let labels = labels_of(&lab);
        assert_eq!(labels.len(), s.labelled_rows);
        assert!(s.labelled_rows > 0);
        let mut dates = BTreeSet::new();
        let mut prev_date = None;
        for (i, r) in rows.iter().enumerate() {
            let row_no = i + 2;
            let date = parse_date(&r[0]).expect("ISO date");
            assert!(is_business_day(date));
            assert!(prev_date.is_none_or(|p| p <= date), "ordered by date");
            prev_date = Some(date);
            dates.insert(date);
            assert_eq!(r[1].len(), 5);
            assert_eq!(r[2].len(), 6);
            assert_eq!(r[3].len(), 4);
            let gl = units(&r[7], 2);
            let ihub = units(&r[8], 2);
            let diff = units(&r[9], 2);
            assert_eq!(diff, gl - ihub, "row {row_no}");
            match labels.get(&row_no) {
                Some((kind, group)) => {
                    assert!(
                        (gl - ihub).abs() >= 1,
                        "labelled row {row_no} has no difference"
                    );
                    assert_eq!(r[10], "Break");
                    assert_eq!(group, &gl_group_key(&r[1], &r[2], &r[3], &r[4]));
                    if kind == "fx_revaluation" {
                        assert_ne!(r[4], "USD");
                    }
                }
                None => {
                    assert_eq!(gl, ihub, "unlabelled row {row_no} differs");
                    assert_eq!(r[10], "Match");
                }
            }
        }
        assert_eq!(dates.len(), s.dates);
        assert!(s.dates >= 20 && s.groups * s.dates == s.rows);
        assert!(csv.contains(",00000,"));
    }

    #[test]
    fn gl_every_kind_with_its_signature() {
        let (csv, lab, s) = run(&opts(GenProfile::GlIhub, 20000, 5, false));
        for k in BreakKind::ALL {
            assert!(
                s.by_kind.get(k.as_str()).copied().unwrap_or(0) > 0,
                "{k} missing"
            );
        }
        let (_, rows) = rows_of(&csv);
        let labels = labels_of(&lab);
        // Episode lengths per (group, kind): consecutive labelled days of one group.
        let mut runs: HashMap<String, Vec<(usize, String)>> = HashMap::new();
        let groups = s.groups;
        for (row_no, (kind, group)) in &labels {
            let r = &rows[row_no - 2];
            let gl = units(&r[7], 2);
            let ihub = units(&r[8], 2);
            let d = gl - ihub;
            match kind.as_str() {
                "sign_flip" => assert_eq!(ihub, -gl),
                "rounding" => assert!((1..=99).contains(&d.abs())),
                "fat_finger" => {
                    let ratio = ihub as f64 / gl as f64;
                    let ok = [10.0, 100.0, 1000.0, 0.1, 0.01, 0.001]
                        .iter()
                        .any(|x| (ratio / x - 1.0).abs() < 0.02 || (ihub - gl / 1000).abs() <= 1);
                    assert!(ok, "fat finger ratio {ratio}");
                }
                "fx_revaluation" => {
                    let share = d.abs() as f64 / gl.abs() as f64;
                    assert!(
                        (0.0029..=0.0301).contains(&share) || d.abs() <= 1,
                        "{share}"
                    );
                }
                _ => {}
            }
            runs.entry(group.clone())
                .or_default()
                .push(((row_no - 2) / groups, kind.clone()));
        }
        for (group, days) in runs {
            let mut i = 0;
            while i < days.len() {
                let mut j = i;
                while j + 1 < days.len()
                    && days[j + 1].0 == days[j].0 + 1
                    && days[j + 1].1 == days[i].1
                {
                    j += 1;
                }
                let len = j - i + 1;
                let max = match days[i].1.as_str() {
                    "timing" | "fx_revaluation" => 3,
                    "rounding" | "sign_flip" | "fat_finger" => 1,
                    "missing_entry" => 5,
                    "duplicate_entry" => 2,
                    "stale_balance" => 6,
                    _ => 15,
                };
                assert!(len <= max, "{group}: {} run of {len}", days[i].1);
                i = j + 1;
            }
        }
    }

    #[test]
    fn gl_break_rate_zero_is_all_match() {
        let o = GenerateOptions {
            break_rate: 0.0,
            ..opts(GenProfile::GlIhub, 5000, 2, false)
        };
        let (csv, lab, s) = run(&o);
        assert_eq!(s.labelled_rows, 0);
        assert_eq!(lab.lines().count(), 1);
        assert!(!csv.contains(",Break,"));
    }

    #[test]
    fn gl_messy_has_every_quirk() {
        let (csv, lab, s) = run(&opts(GenProfile::GlIhub, 20000, 9, true));
        let (_, rows) = rows_of(&csv);
        assert_eq!(rows.len(), s.rows);
        let labels = labels_of(&lab);
        let placeholders: Vec<usize> = rows
            .iter()
            .enumerate()
            .filter(|(_, r)| r[0] == PLACEHOLDER_DATE)
            .map(|(i, _)| i + 2)
            .collect();
        assert_eq!(placeholders.len(), 1);
        assert!(!labels.contains_key(&placeholders[0]));
        assert!(
            rows.iter()
                .any(|r| r[0].len() == 5 && r[0].parse::<u32>().is_ok())
        );
        assert!(rows.iter().any(|r| r[0].contains('/')));
        assert!(
            rows.iter()
                .any(|r| r[0].len() == 10 && r[0].as_bytes()[2] == b'-')
        );
        assert!(
            rows.iter()
                .any(|r| r[0].len() == 10 && r[0].as_bytes()[4] == b'-')
        );
        assert!(csv.contains("{\""), "brace-wrapped comment");
        assert!(csv.contains("[{\""), "bracket-wrapped comment");
        assert!(rows.iter().any(|r| r[11].starts_with("{\"")));
        assert!(rows.iter().any(|r| r[11].starts_with("[{\"")));
        assert!(has_long_decimals(&csv), "float noise");
        assert!(csv.contains("00000"));
        assert!(
            rows.iter().any(|r| r[6].is_empty()),
            "empty Secondary Account"
        );
        let inconsistent: Vec<usize> = rows
            .iter()
            .enumerate()
            .filter(|(_, r)| units(&r[9], 2) != units(&r[7], 2) - units(&r[8], 2))
            .map(|(i, _)| i + 2)
            .collect();
        assert!(!inconsistent.is_empty());
        assert!(inconsistent.len() < rows.len() / 100);
        // Labels still the ground truth; every date parses.
        for (i, r) in rows.iter().enumerate() {
            let d = parse_date(&r[0]).expect("date parses");
            if r[0] != PLACEHOLDER_DATE {
                assert!(is_business_day(d));
            }
            let gl = units(&r[7], 2);
            let ihub = units(&r[8], 2);
            assert_eq!(labels.contains_key(&(i + 2)), gl != ihub, "row {}", i + 2);
        }
    }

    #[test]
    fn gl_messy_keeps_the_clean_values() {
        let (clean, clean_lab, _) = run(&opts(GenProfile::GlIhub, 6000, 21, false));
        let (messy, messy_lab, _) = run(&opts(GenProfile::GlIhub, 6000, 21, true));
        assert_eq!(clean_lab, messy_lab);
        let (_, a) = rows_of(&clean);
        let (_, b) = rows_of(&messy);
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(&b) {
            if y[0] != PLACEHOLDER_DATE {
                assert_eq!(parse_date(&x[0]), parse_date(&y[0]));
            }
            assert_eq!(x[1..6], y[1..6]);
            assert_eq!(units(&x[7], 2), units(&y[7], 2));
            assert_eq!(units(&x[8], 2), units(&y[8], 2));
            assert_eq!(x[10], y[10]);
        }
    }
}
