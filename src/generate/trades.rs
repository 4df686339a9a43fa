//! The trades profile: one row per trade per recon day while it is in break; every day new
//! trades open so that the rows reach the requested count.
//!
//! Two random streams: the main one (trades, their breaks and evolution) and the messy one
//! (quirks only, drawn while writing), so a messy file holds the values of the clean one.

use std::io::{BufWriter, Write};

use anyhow::{Context, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::calendar::business_days;
use super::trade::{
    COUNTERPARTIES, Cat, DESKS, ENTITIES, STATUS_A, STATUS_B, STRATEGIES, Side, TRADE_CCYS,
    TRADERS, Trade, TradeCtx, new_trade,
};
use super::write::{
    CommentWrapper, DayFmt, FMT_ISO, FMT_SERIAL, pick_date_fmt, push_cents, push_comment,
    push_field, push_fixed, push_i64, push_noisy, push_padded, push_ts, push_u64,
};
use super::{
    BreakKind, GenerateOptions, GenerateSummary, LABELS_HEADER, MESSY_SALT, PLACEHOLDER_DATE,
    TRADES_HEADER,
};

/// Business days before the first RECONDATE kept for trade dates.
const TRADE_BACK_DAYS: usize = 16;

fn trades_days(rows: usize) -> usize {
    if rows >= 6000 {
        60
    } else {
        (rows / 100).clamp(1, 60)
    }
}

/// The date at business-day offset `off` of the trades window.
fn day_at(day_fmts: &[DayFmt], off: i64) -> &DayFmt {
    let last = day_fmts.len().saturating_sub(1) as i64;
    let idx = (off + TRADE_BACK_DAYS as i64).clamp(0, last);
    &day_fmts[idx as usize]
}

/// Writes the rows and labels: the messy stream, the dates, the line buffers, the outputs.
struct TradeWriter<'a> {
    messy: bool,
    mrng: ChaCha8Rng,
    wrapper: CommentWrapper,
    /// From `TRADE_BACK_DAYS` business days before the first RECONDATE to 4 after the last.
    day_fmts: Vec<DayFmt>,
    line: Vec<u8>,
    lab_line: Vec<u8>,
    out: &'a mut dyn Write,
    labels: Option<&'a mut dyn Write>,
}

/// The trades generator between two rows.
struct TradesGen<'a> {
    rng: ChaCha8Rng,
    ctx: TradeCtx,
    /// The trades in break.
    active: Vec<Trade>,
    next_id: u64,
    /// Rows written so far.
    emitted: usize,
    /// The row (counted from 0) with a serial RECONDATE, a placeholder SETTLE DATE and a noisy
    /// PRICE in messy mode.
    forced_row: usize,
    /// Rows wanted per day: `base`, plus one on the first `extra` days.
    base: usize,
    extra: usize,
    /// Rows wanted up to today.
    cum_target: usize,
    first_trade: bool,
    summary: GenerateSummary,
    writer: TradeWriter<'a>,
}

pub(super) fn gen_trades(
    opts: &GenerateOptions,
    w: &mut dyn Write,
    mut labels: Option<&mut BufWriter<&mut dyn Write>>,
) -> Result<GenerateSummary> {
    let rows = opts.rows;
    let n_days = trades_days(rows);
    // Trade dates reach back before the window, settle dates beyond it.
    let dates = business_days(opts.start_date, TRADE_BACK_DAYS, n_days + 4)?;
    let day_fmts: Vec<DayFmt> = dates.iter().map(|d| DayFmt::new(*d)).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
    let mut mrng = ChaCha8Rng::seed_from_u64(opts.seed ^ MESSY_SALT);
    let forced_row = mrng.gen_range(0..rows);
    let ctx = TradeCtx::new(&mut rng, rows, opts.break_rate)?;

    w.write_all(TRADES_HEADER.as_bytes())?;
    w.write_all(b"\n")?;
    if let Some(l) = labels.as_mut() {
        writeln!(l, "{LABELS_HEADER}")?;
    }

    let next_id: u64 = rng.gen_range(100_000..400_000);
    let mut run = TradesGen {
        rng,
        ctx,
        active: Vec::new(),
        next_id,
        emitted: 0,
        forced_row,
        base: rows / n_days,
        extra: rows % n_days,
        cum_target: 0,
        first_trade: true,
        summary: GenerateSummary {
            dates: n_days,
            ..GenerateSummary::default()
        },
        writer: TradeWriter {
            messy: opts.messy,
            mrng,
            wrapper: CommentWrapper::new(opts.messy),
            day_fmts,
            line: Vec::with_capacity(1024),
            lab_line: Vec::with_capacity(64),
            out: w,
            labels: labels.map(|l| l as &mut dyn Write),
        },
    };
    for d in 0..n_days {
        run.day(d)?;
    }
    run.summary.rows = run.emitted;
    Ok(run.summary)
}

/// Moves a drifting or stale trade on to recon day `d`.
fn evolve(rng: &mut ChaCha8Rng, t: &mut Trade, d: usize) {
    let di = d as i64;
    let i = di - t.first_day;
    match t.cat {
        Cat::Anom(BreakKind::Drift) => t.pb = t.pa - t.step * (i + 1),
        Cat::Anom(BreakKind::StaleBalance) if i > 0 && d > 0 && rng.gen_bool(0.6) => {
            let mv = (t.step as f64 * rng.gen_range(0.5..1.5)).round() as i64;
            t.pa += mv;
            t.ver_a += 1;
        }
        _ => {}
    }
}

impl TradesGen<'_> {
    /// Recon day `d`: the trades whose break is over leave, new ones open, and every trade in
    /// break moves on and is written.
    fn day(&mut self, d: usize) -> Result<()> {
        let di = d as i64;
        self.cum_target += self.base + usize::from(d < self.extra);
        self.active.retain(|t| t.first_day + t.len as i64 > di);
        self.open_trades(d)?;
        for t in self.active.iter_mut() {
            evolve(&mut self.rng, t, d);
            let is_forced = self.writer.messy && self.emitted == self.forced_row;
            self.writer.row(t, &self.ctx, di, is_forced)?;
            self.emitted += 1;
            if let Cat::Anom(kind) = t.cat {
                self.summary.labelled_rows += 1;
                *self.summary.by_kind.entry(kind.as_str()).or_insert(0) += 1;
                self.writer.label(self.emitted, kind, t.id)?;
            }
        }
        Ok(())
    }

    /// Opens the trades that bring the rows up to today's target.
    fn open_trades(&mut self, d: usize) -> Result<()> {
        let di = d as i64;
        let want_today = self.cum_target.saturating_sub(self.emitted);
        let n_new = want_today.saturating_sub(self.active.len());
        self.active
            .try_reserve(n_new)
            .context("rows too large: cannot allocate the trade list")?;
        for _ in 0..n_new {
            self.next_id += self.rng.gen_range(1..=3);
            let mut t = new_trade(&mut self.rng, &self.ctx, self.next_id, di, d == 0);
            if self.first_trade {
                // The main broker-dealer entity is code 00000.
                t.entity = 0;
                self.first_trade = false;
            }
            if matches!(t.cat, Cat::Anom(_)) {
                self.summary.episodes += 1;
            }
            self.summary.groups += 1;
            self.active.push(t);
        }
        Ok(())
    }
}

impl TradeWriter<'_> {
    /// Date format of one cell: ISO, or one of the mix in messy mode.
    fn date_fmt(&mut self) -> u8 {
        if self.messy {
            pick_date_fmt(&mut self.mrng)
        } else {
            FMT_ISO
        }
    }

    /// Whether an amount is written with float noise (messy mode; always when `force`).
    fn noisy(&mut self, force: bool) -> bool {
        self.messy && (force || self.mrng.r#gen::<f64>() < 0.02)
    }

    /// Whether an optional cell is left empty (messy mode).
    fn blank(&mut self) -> bool {
        self.messy && self.mrng.r#gen::<f64>() < 0.02
    }

    /// Writes the CSV line of trade `t` on recon day `di`.
    fn row(&mut self, t: &Trade, ctx: &TradeCtx, di: i64, is_forced: bool) -> Result<()> {
        self.line.clear();
        self.recon_columns(t, ctx, di, is_forced);
        // ---- per-system columns ----
        for sys in 0..2 {
            self.system_columns(t, sys);
        }
        self.line.push(b'\n');
        self.out
            .write_all(&self.line)
            .context("writing generated CSV")
    }

    /// The 16 recon columns, TRADEID to COMMENT.
    fn recon_columns(&mut self, t: &Trade, ctx: &TradeCtx, di: i64, is_forced: bool) {
        let desk = &DESKS[t.desk as usize];
        let has_a = t.side != Side::BOnly;
        let has_b = t.side != Side::AOnly;
        let signed_a = if has_a {
            if t.buy { t.qa } else { -t.qa }
        } else {
            0
        };
        let signed_b = if has_b {
            if t.buy_b { t.qb } else { -t.qb }
        } else {
            0
        };
        let qd = signed_a - signed_b;
        let status: &str = match t.side {
            Side::AOnly => "SYSA_Only",
            Side::BOnly => "SYSB_Only",
            Side::Both if qd != 0 => "Quantity_Break",
            Side::Both => "Price_Break",
        };
        self.line.push(b'T');
        push_padded(&mut self.line, t.id, 7);
        self.line.push(b',');
        self.line.extend_from_slice(desk.name.as_bytes());
        self.line.push(b',');
        self.line.extend_from_slice(status.as_bytes());
        self.line.push(b',');
        self.dates(t, di, is_forced);
        let main_buy = if has_a { t.buy } else { t.buy_b };
        self.line
            .extend_from_slice(if main_buy { b"BUY" } else { b"SELL" });
        self.line.push(b',');
        let pool = if t.cusip & (1 << 31) != 0 {
            &ctx.mbs_cusips
        } else {
            &ctx.cusips
        };
        let cusip = &pool[(t.cusip & !(1 << 31)) as usize % pool.len()];
        self.line.extend_from_slice(cusip);
        self.line.push(b',');
        let (main_q, main_p) = if has_a { (t.qa, t.pa) } else { (t.qb, t.pb) };
        if self.noisy(false) {
            push_noisy(&mut self.line, main_q, 0, 0);
        } else {
            push_i64(&mut self.line, main_q);
        }
        self.line.push(b',');
        if self.noisy(is_forced) {
            push_noisy(&mut self.line, main_p, 6, 2);
        } else {
            push_fixed(&mut self.line, main_p, 6, 2);
        }
        self.line.push(b',');
        push_i64(&mut self.line, qd);
        self.line.push(b',');
        if has_a && has_b {
            let pd = t.pa - t.pb;
            if pd != 0 && self.noisy(false) {
                push_noisy(&mut self.line, pd, 6, 1);
            } else {
                push_fixed(&mut self.line, pd, 6, 1);
            }
        }
        self.line.push(b',');
        let ofd_cents = ((qd as f64) * 1e6 / t.factor as f64 * 100.0).round() as i64;
        push_cents(&mut self.line, ofd_cents);
        self.line.push(b',');
        push_fixed(&mut self.line, desk.price_tol, 6, 1);
        self.line.push(b',');
        push_i64(&mut self.line, t.qty_tol);
        self.line.push(b',');
        if let Some(c) = t.comment.filter(|_| di >= t.comment_from) {
            let wrap = self.wrapper.pick(&mut self.mrng);
            push_comment(&mut self.line, c, wrap);
        }
    }

    /// RECONDATE, TRADE_DATE and SETTLE DATE, each followed by its comma.
    fn dates(&mut self, t: &Trade, di: i64, is_forced: bool) {
        let f = if is_forced {
            FMT_SERIAL
        } else {
            self.date_fmt()
        };
        let recon = day_at(&self.day_fmts, di);
        self.line.extend_from_slice(recon.get(f).as_bytes());
        self.line.push(b',');
        let f = self.date_fmt();
        let trade_date = day_at(&self.day_fmts, t.trade_off);
        self.line.extend_from_slice(trade_date.get(f).as_bytes());
        self.line.push(b',');
        let placeholder = self.messy && (is_forced || self.mrng.r#gen::<f64>() < 0.02);
        if placeholder {
            self.line.extend_from_slice(PLACEHOLDER_DATE.as_bytes());
        } else if !t.settle_empty {
            let f = self.date_fmt();
            let settle = day_at(&self.day_fmts, t.trade_off + 2);
            self.line.extend_from_slice(settle.get(f).as_bytes());
        }
        self.line.push(b',');
    }

    /// The 14 columns of system `sys` (0: SYSA, 1: SYSB), after a comma; empty cells when the
    /// system does not hold the trade.
    fn system_columns(&mut self, t: &Trade, sys: usize) {
        self.line.push(b',');
        let present = if sys == 0 {
            t.side != Side::BOnly
        } else {
            t.side != Side::AOnly
        };
        if !present {
            self.line.extend_from_slice(&[b','; 13]);
            return;
        }
        let desk = &DESKS[t.desk as usize];
        let (cpty_full, cpty_short) = COUNTERPARTIES[t.cpty as usize];
        let (login, empid) = TRADERS[t.trader as usize];
        // TRADEID
        if sys == 0 {
            self.line.extend_from_slice(b"SA");
            push_u64(&mut self.line, t.sys_a_id);
        } else {
            self.line.extend_from_slice(b"B-");
            push_padded(&mut self.line, t.sys_b_id, 7);
        }
        self.line.push(b',');
        // BOOK
        if !self.blank() {
            if sys == 0 {
                self.line.extend_from_slice(desk.book_a.as_bytes());
                push_padded(&mut self.line, t.book as u64, 2);
            } else {
                self.line.extend_from_slice(desk.book_b.as_bytes());
                push_u64(&mut self.line, t.book as u64);
            }
        }
        self.line.push(b',');
        // TRADER
        if !self.blank() {
            self.line
                .extend_from_slice(if sys == 0 { login } else { empid }.as_bytes());
        }
        self.line.push(b',');
        // COUNTERPARTY
        push_field(
            &mut self.line,
            if sys == 0 { cpty_full } else { cpty_short },
        );
        self.line.push(b',');
        // ENTITY
        self.line
            .extend_from_slice(ENTITIES[t.entity as usize].0.as_bytes());
        self.line.push(b',');
        // BUY_SELL
        let b = if sys == 0 { t.buy } else { t.buy_b };
        self.line
            .extend_from_slice(if b { b"BUY" } else { b"SELL" });
        self.line.push(b',');
        self.system_amounts(t, sys);
        // CCY
        self.line
            .extend_from_slice(TRADE_CCYS[t.ccy as usize].as_bytes());
        self.line.push(b',');
        // STATUS
        let st = if sys == 0 {
            STATUS_A[t.status_a as usize % STATUS_A.len()]
        } else {
            STATUS_B[t.status_b as usize % STATUS_B.len()]
        };
        self.line.extend_from_slice(st.as_bytes());
        self.line.push(b',');
        // ENTRY_TS
        let (ts_day, secs) = if sys == 0 {
            (t.trade_off, t.ts_a)
        } else {
            (t.trade_off, t.ts_b)
        };
        push_ts(&mut self.line, day_at(&self.day_fmts, ts_day), secs);
        self.line.push(b',');
        // ACCOUNT: zero-padded text in SYSA, bare number in SYSB.
        if !self.blank() {
            if sys == 0 {
                push_padded(&mut self.line, t.account as u64, 8);
            } else {
                push_u64(&mut self.line, t.account as u64);
            }
        }
        self.line.push(b',');
        // STRATEGY
        if !self.blank() {
            self.line
                .extend_from_slice(STRATEGIES[t.strategy as usize].as_bytes());
        }
        self.line.push(b',');
        // VERSION
        push_u64(
            &mut self.line,
            if sys == 0 { t.ver_a } else { t.ver_b } as u64,
        );
    }

    /// QUANTITY and PRICE of system `sys`, each followed by its comma.
    fn system_amounts(&mut self, t: &Trade, sys: usize) {
        // QUANTITY
        let q = if sys == 0 { t.qa } else { t.qb };
        if self.noisy(false) {
            push_noisy(&mut self.line, q, 0, 0);
        } else {
            push_i64(&mut self.line, q);
        }
        self.line.push(b',');
        // PRICE
        let p = if sys == 0 { t.pa } else { t.pb };
        if self.noisy(false) {
            push_noisy(&mut self.line, p, 6, 2);
        } else {
            push_fixed(&mut self.line, p, 6, 2);
        }
        self.line.push(b',');
    }

    /// Writes the label of the `emitted`-th row (a labelled anomaly of trade `id`) when asked.
    fn label(&mut self, emitted: usize, kind: BreakKind, id: u64) -> Result<()> {
        if let Some(l) = self.labels.as_mut() {
            self.lab_line.clear();
            push_u64(&mut self.lab_line, emitted as u64 + 1);
            self.lab_line.push(b',');
            self.lab_line.extend_from_slice(kind.as_str().as_bytes());
            self.lab_line.extend_from_slice(b",T");
            push_padded(&mut self.lab_line, id, 7);
            self.lab_line.push(b'\n');
            l.write_all(&self.lab_line).context("writing labels CSV")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeSet, HashMap};

    use chrono::NaiveDate;

    use super::super::GenProfile;
    use super::super::test_support::*;
    use super::*;

    /// Trades row view by column name.
    struct TradeRows {
        idx: HashMap<String, usize>,
        rows: Vec<Vec<String>>,
    }

    impl TradeRows {
        fn new(csv: &str) -> TradeRows {
            let (header, rows) = rows_of(csv);
            let idx = header
                .into_iter()
                .enumerate()
                .map(|(i, h)| (h, i))
                .collect();
            TradeRows { idx, rows }
        }
        fn get<'a>(&self, r: &'a [String], col: &str) -> &'a str {
            &r[self.idx[col]]
        }
    }

    #[test]
    fn trades_labels_are_the_ground_truth() {
        let (csv, lab, s) = run(&opts(GenProfile::Trades, 20000, 4, false));
        let t = TradeRows::new(&csv);
        let labels = labels_of(&lab);
        for k in BreakKind::ALL {
            assert!(
                s.by_kind.get(k.as_str()).copied().unwrap_or(0) > 0,
                "{k} missing"
            );
        }
        let share = s.labelled_rows as f64 / s.rows as f64;
        assert!((0.05..0.16).contains(&share), "labelled share {share}");
        let mut days_of: HashMap<String, Vec<NaiveDate>> = HashMap::new();
        for (i, r) in t.rows.iter().enumerate() {
            let row_no = i + 2;
            let id = t.get(r, "TRADEID");
            assert!(id.len() == 8 && id.starts_with('T'));
            assert_eq!(t.get(r, "CUSIP").len(), 9);
            let recon = parse_date(t.get(r, "RECONDATE")).expect("recon date");
            let trade = parse_date(t.get(r, "TRADE_DATE")).expect("trade date");
            assert!(trade <= recon);
            days_of.entry(id.to_string()).or_default().push(recon);
            let status = t.get(r, "MatchStatus");
            let one_sided = status == "SYSA_Only" || status == "SYSB_Only";
            let qd: i64 = t.get(r, "QUANTITYDIFFERENCE").parse().expect("qd");
            let qt: i64 = t.get(r, "QUANTITY TOLERANCE").parse().expect("qt");
            let pt = units(t.get(r, "PRICE TOLERANCE"), 6);
            assert!((100..=10_000).contains(&pt));
            assert!(qt == 0 || qt == 1);
            let beyond = if one_sided {
                None
            } else {
                let pd = units(t.get(r, "PRICE DIFFERENCE"), 6);
                let pa = units(t.get(r, "SYSA_PRICE"), 6);
                let pb = units(t.get(r, "SYSB_PRICE"), 6);
                assert_eq!(pd, pa - pb);
                assert!(qd != 0 || pd != 0, "row {row_no} is not a break");
                assert_eq!(status == "Quantity_Break", qd != 0);
                Some(qd.abs() > qt || pd.abs() > pt)
            };
            if status == "SYSA_Only" {
                assert!(t.get(r, "SYSB_TRADEID").is_empty());
            }
            if status == "SYSB_Only" {
                assert!(t.get(r, "SYSA_TRADEID").is_empty());
            }
            match labels.get(&row_no) {
                Some((kind, group)) => {
                    assert_eq!(group, id);
                    assert!(
                        beyond != Some(false),
                        "labelled {kind} row {row_no} within tolerance"
                    );
                    if kind == "sign_flip" {
                        assert_ne!(t.get(r, "SYSA_BUY_SELL"), t.get(r, "SYSB_BUY_SELL"));
                    }
                    if kind == "duplicate_entry" {
                        assert_eq!(qd.abs(), t.get(r, "QUANTITY").parse::<i64>().expect("qty"));
                    }
                }
                None => assert!(
                    beyond != Some(true),
                    "unlabelled row {row_no} beyond tolerance"
                ),
            }
        }
        // Persisting breaks: same TRADEID on several consecutive recon days.
        let all_days: BTreeSet<NaiveDate> = days_of.values().flatten().copied().collect();
        let all_days: Vec<NaiveDate> = all_days.into_iter().collect();
        assert_eq!(all_days.len(), s.dates);
        assert_eq!(days_of.len(), s.groups);
        assert!(days_of.values().any(|v| v.len() >= 5));
        for v in days_of.values() {
            let first = all_days.binary_search(&v[0]).expect("day");
            for (k, d) in v.iter().enumerate() {
                assert_eq!(Some(d), all_days.get(first + k), "consecutive recon days");
            }
        }
    }

    #[test]
    fn trades_messy_has_every_quirk() {
        let (csv, lab, s) = run(&opts(GenProfile::Trades, 20000, 6, true));
        let t = TradeRows::new(&csv);
        assert_eq!(t.rows.len(), s.rows);
        assert_eq!(labels_of(&lab).len(), s.labelled_rows);
        assert!(
            t.rows
                .iter()
                .any(|r| t.get(r, "SETTLE DATE") == PLACEHOLDER_DATE)
        );
        for col in ["RECONDATE", "TRADE_DATE", "SETTLE DATE"] {
            let vals: Vec<&str> = t.rows.iter().map(|r| t.get(r, col)).collect();
            assert!(vals.iter().any(|v| v.contains('/')), "{col} M/D/YYYY");
            assert!(
                vals.iter()
                    .any(|v| v.len() == 5 && v.parse::<u32>().is_ok()),
                "{col} serial"
            );
            assert!(
                vals.iter()
                    .any(|v| v.len() == 10 && v.as_bytes()[2] == b'-'),
                "{col}"
            );
            assert!(
                vals.iter().all(|v| v.is_empty() || parse_date(v).is_some()),
                "{col}"
            );
        }
        assert!(csv.contains("{\"") && csv.contains("[{\""));
        assert!(has_long_decimals(&csv));
        assert!(csv.contains(",00000,"));
        assert!(
            t.rows
                .iter()
                .any(|r| t.get(r, "SYSA_TRADEID").starts_with("SA")
                    && t.get(r, "SYSA_TRADER").is_empty())
        );
    }
}
