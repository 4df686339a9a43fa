//! One trade of the trades profile: the desks and other reference data, the break categories
//! (ordinary and labelled anomalies), and how a new trade is drawn.

use anyhow::{Context, Result};
use rand::Rng;
use rand::distributions::WeightedIndex;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

use super::BreakKind;
use super::write::div_round;

/// One trading desk and how its trades look.
pub(super) struct DeskDef {
    pub(super) name: &'static str,
    pub(super) book_a: &'static str,
    pub(super) book_b: &'static str,
    /// Price tolerance in micros (1e-6).
    pub(super) price_tol: i64,
    /// Mortgage desk: factor below 1 (original face differs from current face).
    pub(super) mbs: bool,
    /// Quantity lot size.
    pub(super) lot: i64,
    /// Price tick in micros.
    pub(super) tick: i64,
    /// London desk: some non-USD trades.
    pub(super) ldn: bool,
    pub(super) weight: f64,
}

pub(super) const DESKS: &[DeskDef] = &[
    DeskDef {
        name: "RATES-NY",
        book_a: "RTNY",
        book_b: "RATES_NY_BK",
        price_tol: 100,
        mbs: false,
        lot: 10_000,
        tick: 1,
        ldn: false,
        weight: 0.22,
    },
    DeskDef {
        name: "RATES-LDN",
        book_a: "RTLN",
        book_b: "RATES_LDN_BK",
        price_tol: 100,
        mbs: false,
        lot: 10_000,
        tick: 1,
        ldn: true,
        weight: 0.10,
    },
    DeskDef {
        name: "MBS-NY",
        book_a: "MBNY",
        book_b: "MBS_NY_BK",
        price_tol: 1000,
        mbs: true,
        lot: 1_000,
        tick: 15_625,
        ldn: false,
        weight: 0.18,
    },
    DeskDef {
        name: "MBS-LDN",
        book_a: "MBLN",
        book_b: "MBS_LDN_BK",
        price_tol: 1000,
        mbs: true,
        lot: 1_000,
        tick: 15_625,
        ldn: true,
        weight: 0.07,
    },
    DeskDef {
        name: "CREDIT-NY",
        book_a: "CRNY",
        book_b: "CREDIT_NY_BK",
        price_tol: 5000,
        mbs: false,
        lot: 1_000,
        tick: 1_000,
        ldn: false,
        weight: 0.16,
    },
    DeskDef {
        name: "CREDIT-LDN",
        book_a: "CRLN",
        book_b: "CREDIT_LDN_BK",
        price_tol: 5000,
        mbs: false,
        lot: 1_000,
        tick: 1_000,
        ldn: true,
        weight: 0.07,
    },
    DeskDef {
        name: "MUNI",
        book_a: "MUNI",
        book_b: "MUNI_BK",
        price_tol: 10_000,
        mbs: false,
        lot: 5_000,
        tick: 1_000,
        ldn: false,
        weight: 0.10,
    },
    DeskDef {
        name: "AGENCY",
        book_a: "AGCY",
        book_b: "AGENCY_BK",
        price_tol: 500,
        mbs: false,
        lot: 10_000,
        tick: 15_625,
        ldn: false,
        weight: 0.10,
    },
];

pub(super) const COUNTERPARTIES: &[(&str, &str)] = &[
    ("GOLDMAN SACHS & CO. LLC", "GSCO"),
    ("J.P. MORGAN SECURITIES LLC", "JPMS"),
    ("BANK OF AMERICA, N.A.", "BOFA"),
    ("CITIGROUP GLOBAL MARKETS INC.", "CGMI"),
    ("MORGAN STANLEY & CO. LLC", "MSCO"),
    ("BARCLAYS CAPITAL INC.", "BCI"),
    ("WELLS FARGO SECURITIES, LLC", "WFS"),
    ("NOMURA SECURITIES INTERNATIONAL", "NSI"),
    ("BNP PARIBAS SECURITIES CORP.", "BNPP"),
    ("DEUTSCHE BANK AG", "DBAG"),
    ("RBC CAPITAL MARKETS, LLC", "RBCCM"),
    ("TD SECURITIES (USA) LLC", "TDSEC"),
    ("MIZUHO SECURITIES USA LLC", "MIZ"),
    ("FEDERAL HOME LOAN MORTGAGE CORP", "FHLMC"),
    ("FEDERAL NATIONAL MORTGAGE ASSN", "FNMA"),
];

pub(super) const TRADERS: &[(&str, &str)] = &[
    ("jsmith", "E10234"),
    ("mchen", "E10877"),
    ("apatel", "E11302"),
    ("rgarcia", "E09821"),
    ("lnguyen", "E12011"),
    ("kmueller", "E10455"),
    ("sokafor", "E11790"),
    ("dcohen", "E10002"),
    ("tbrown", "E12543"),
    ("ywang", "E11118"),
    ("erossi", "E10666"),
    ("hkim", "E12207"),
];

pub(super) const STRATEGIES: &[&str] =
    &["FLOW", "HEDGE", "RV", "CLIENT", "INVENTORY", "MATCHED-BOOK"];
pub(super) const ENTITIES: &[(&str, f64)] = &[
    ("00000", 0.45),
    ("00100", 0.20),
    ("01200", 0.15),
    ("03400", 0.10),
    ("05100", 0.10),
];
pub(super) const TRADE_CCYS: &[&str] = &["USD", "GBP", "EUR"];
pub(super) const STATUS_A: &[&str] = &["VERIFIED", "NEW", "AMENDED"];
pub(super) const STATUS_B: &[&str] = &["ACTIVE", "PENDING", "AMENDED"];

/// Ordinary (unlabelled) low-risk break types.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Ordinary {
    /// Price difference within tolerance.
    PriceTol,
    /// Booked late in SYSA: shows as SYSB_Only for 1-2 days.
    TimingB,
    /// Booked late in SYSB: shows as SYSA_Only for 1-2 days.
    TimingA,
    /// Face off by 1 within a quantity tolerance of 1.
    QtyTol,
    /// Price within tolerance, cleared after the blotter code was fixed.
    Blotter,
    /// Price within tolerance, left to age off the report.
    Aged,
}

/// (category, weight, min days, max days)
const ORDINARY: &[(Ordinary, f64, u32, u32)] = &[
    (Ordinary::PriceTol, 0.35, 1, 4),
    (Ordinary::TimingB, 0.22, 1, 2),
    (Ordinary::TimingA, 0.13, 1, 2),
    (Ordinary::QtyTol, 0.10, 1, 3),
    (Ordinary::Blotter, 0.10, 2, 6),
    (Ordinary::Aged, 0.10, 5, 7),
];

fn anomaly_days(kind: BreakKind) -> (u32, u32) {
    match kind {
        BreakKind::FatFinger | BreakKind::SignFlip => (1, 4),
        BreakKind::Rounding | BreakKind::DuplicateEntry => (1, 5),
        BreakKind::Timing => (6, 10),
        BreakKind::MissingEntry => (2, 6),
        BreakKind::Drift => (3, 8),
        BreakKind::StaleBalance => (5, 10),
        BreakKind::FxRevaluation => (1, 3),
    }
}

fn ordinary_comments(cat: Ordinary) -> &'static [&'static str] {
    match cat {
        Ordinary::PriceTol => &["rounding", "Rounding - within tolerance", "price rounding"],
        Ordinary::TimingB => &["timing", "booked in SYSB only", "Timing - SYSA booking T+1"],
        Ordinary::TimingA => &["timing", "Timing - pending SYSB feed"],
        Ordinary::QtyTol => &[
            "rounding",
            "face rounding",
            "Factor rounding causing small quantity delta - no action",
        ],
        Ordinary::Blotter => &[
            "blotter code updated",
            "blotter code updated, should clear tomorrow",
            "False break caused by booking artifact, no action needed",
        ],
        Ordinary::Aged => &[
            "drop off from report at 7 days age",
            "aged - drop off from report at 7 days age",
            "Interest update, will drop off the report in a few days",
        ],
    }
}

fn anomaly_comments(kind: BreakKind) -> &'static [&'static str] {
    match kind {
        BreakKind::FatFinger => &["Under review", "Qty mismatch - checking with desk"],
        BreakKind::SignFlip => &["Under review", "Direction mismatch, escalated to desk"],
        BreakKind::Rounding => &["Price diff - checking rounding with desk", "rounding"],
        BreakKind::Timing => &["timing", "booked in SYSB only"],
        BreakKind::DuplicateEntry => &["Possible duplicate booking", "Under review"],
        BreakKind::MissingEntry => &["Missing booking - escalated", "timing"],
        BreakKind::Drift => &["Under review", "price diff increasing, checking marks"],
        BreakKind::StaleBalance => &["Price not updated in SYSB", "Under review"],
        BreakKind::FxRevaluation => &["FX rate mismatch", "Under review"],
    }
}

/// Break category of a trade: ordinary (unlabelled) or a labelled anomaly.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Cat {
    Ord(Ordinary),
    Anom(BreakKind),
}

/// Which systems hold the trade.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Side {
    Both,
    AOnly,
    BOnly,
}

/// One trade in break, as both systems hold it.
pub(super) struct Trade {
    pub(super) id: u64,
    pub(super) desk: u8,
    pub(super) cusip: u32,
    pub(super) entity: u8,
    pub(super) ccy: u8,
    pub(super) cpty: u8,
    pub(super) trader: u8,
    pub(super) strategy: u8,
    pub(super) book: u8,
    pub(super) status_a: u8,
    pub(super) status_b: u8,
    pub(super) ver_a: u32,
    pub(super) ver_b: u32,
    pub(super) account: u32,
    pub(super) sys_a_id: u64,
    pub(super) sys_b_id: u64,
    /// Entry time of day, seconds.
    pub(super) ts_a: u32,
    pub(super) ts_b: u32,
    pub(super) buy: bool,
    pub(super) buy_b: bool,
    pub(super) qa: i64,
    pub(super) qb: i64,
    /// Prices in micros.
    pub(super) pa: i64,
    pub(super) pb: i64,
    /// MBS pool factor in micros (1_000_000 elsewhere).
    pub(super) factor: i64,
    pub(super) qty_tol: i64,
    /// Business-day offset of TRADE_DATE (relative to the first RECONDATE).
    pub(super) trade_off: i64,
    pub(super) settle_empty: bool,
    /// Offset of the first break day (negative for breaks already open on day 0).
    pub(super) first_day: i64,
    pub(super) len: u32,
    pub(super) cat: Cat,
    pub(super) side: Side,
    /// Drift / stale step in micros (signed).
    pub(super) step: i64,
    pub(super) comment: Option<&'static str>,
    pub(super) comment_from: i64,
}

fn cusip_check_digit(base: &[u8]) -> u8 {
    let mut sum = 0u32;
    for (i, &c) in base.iter().enumerate() {
        let mut v = match c {
            b'0'..=b'9' => (c - b'0') as u32,
            b'A'..=b'Z' => (c - b'A') as u32 + 10,
            _ => 0,
        };
        if i % 2 == 1 {
            v *= 2;
        }
        sum += v / 10 + v % 10;
    }
    b'0' + ((10 - sum % 10) % 10) as u8
}

fn gen_cusip(rng: &mut ChaCha8Rng, mbs: bool) -> [u8; 9] {
    const ALNUM: &[u8] = b"0123456789ABCDEFGHJKLMNPQRSTUVWXYZ";
    let mut c = [b'0'; 9];
    if mbs {
        let prefixes: [&[u8]; 3] = [b"3140", b"3128", b"3617"];
        let p = prefixes[rng.gen_range(0..prefixes.len())];
        c[..4].copy_from_slice(p);
        for x in c.iter_mut().take(6).skip(4) {
            *x = ALNUM[rng.gen_range(0..ALNUM.len())];
        }
    } else {
        c[0] = b'0' + rng.gen_range(0..10u8);
        for x in c.iter_mut().take(6).skip(1) {
            *x = ALNUM[rng.gen_range(0..ALNUM.len())];
        }
    }
    c[6] = b'0' + rng.gen_range(0..10u8);
    c[7] = ALNUM[rng.gen_range(0..ALNUM.len())];
    c[8] = cusip_check_digit(&c[..8]);
    c
}

fn round_to(v: i64, step: i64) -> i64 {
    if step <= 1 {
        v
    } else {
        div_round(v, step) * step
    }
}

/// What every new trade is drawn from.
pub(super) struct TradeCtx {
    pub(super) desk_dist: WeightedIndex<f64>,
    pub(super) entity_dist: WeightedIndex<f64>,
    pub(super) ord_dist: WeightedIndex<f64>,
    /// CUSIP pools: general and mortgage.
    pub(super) cusips: Vec<[u8; 9]>,
    pub(super) mbs_cusips: Vec<[u8; 9]>,
    pub(super) p_anom: f64,
}

/// Expected break days of an ordinary trade and of an anomalous one.
fn mean_trade_days() -> (f64, f64) {
    let wsum: f64 = ORDINARY.iter().map(|o| o.1).sum();
    let ord = ORDINARY
        .iter()
        .map(|o| o.1 * (o.2 + o.3) as f64 / 2.0)
        .sum::<f64>()
        / wsum;
    let anom = BreakKind::ALL
        .iter()
        .map(|k| {
            let (lo, hi) = anomaly_days(*k);
            (lo + hi) as f64 / 2.0
        })
        .sum::<f64>()
        / BreakKind::ALL.len() as f64;
    (ord, anom)
}

impl TradeCtx {
    /// The distributions and the CUSIP pools (drawn from `rng`) for a file of `rows` rows
    /// where labelled rows are about `5 * break_rate` of all rows.
    pub(super) fn new(rng: &mut ChaCha8Rng, rows: usize, break_rate: f64) -> Result<TradeCtx> {
        let s = (break_rate * 5.0).min(1.0);
        let (e_ord, e_anom) = mean_trade_days();
        let p_anom = if s <= 0.0 {
            0.0
        } else if s >= 1.0 {
            1.0
        } else {
            s * e_ord / (e_anom * (1.0 - s) + s * e_ord)
        };
        let pool_size = (rows / 20).clamp(20, 20_000);
        Ok(TradeCtx {
            desk_dist: WeightedIndex::new(DESKS.iter().map(|d| d.weight))
                .context("desk weights")?,
            entity_dist: WeightedIndex::new(ENTITIES.iter().map(|e| e.1))
                .context("entity weights")?,
            ord_dist: WeightedIndex::new(ORDINARY.iter().map(|o| o.1)).context("break weights")?,
            cusips: (0..pool_size).map(|_| gen_cusip(rng, false)).collect(),
            mbs_cusips: (0..pool_size / 3 + 1)
                .map(|_| gen_cusip(rng, true))
                .collect(),
            p_anom,
        })
    }
}

/// When a new trade is in break: its category, number of break days, first break day and the
/// lag of its trade date.
struct BreakSpan {
    cat: Cat,
    len: u32,
    first_day: i64,
    lag: i64,
}

/// A new trade entering the break report on `day` (`warm`: the first day, where breaks already
/// open for a while are drawn too).
pub(super) fn new_trade(
    rng: &mut ChaCha8Rng,
    ctx: &TradeCtx,
    id: u64,
    day: i64,
    warm: bool,
) -> Trade {
    let span = draw_span(rng, ctx, day, warm);
    let mut t = draw_trade(rng, ctx, id, &span);
    apply_category(rng, &mut t);
    draw_comment(rng, &mut t);
    t
}

fn draw_span(rng: &mut ChaCha8Rng, ctx: &TradeCtx, day: i64, warm: bool) -> BreakSpan {
    let cat = if ctx.p_anom > 0.0 && rng.r#gen::<f64>() < ctx.p_anom {
        Cat::Anom(BreakKind::ALL[rng.gen_range(0..BreakKind::ALL.len())])
    } else {
        Cat::Ord(ORDINARY[ctx.ord_dist.sample(rng)].0)
    };
    let (lo, hi) = match cat {
        Cat::Anom(k) => anomaly_days(k),
        Cat::Ord(o) => ORDINARY
            .iter()
            .find(|x| x.0 == o)
            .map_or((1, 2), |x| (x.2, x.3)),
    };
    let len = rng.gen_range(lo..=hi);
    let age = if warm {
        rng.gen_range(0..len) as i64
    } else {
        0
    };
    let first_day = day - age;
    let lag: i64 = match rng.r#gen::<f64>() {
        x if x < 0.6 => 0,
        x if x < 0.9 => 1,
        _ => 2,
    };
    BreakSpan {
        cat,
        len,
        first_day,
        lag,
    }
}

/// The trade as booked, identical in both systems (the break comes after).
fn draw_trade(rng: &mut ChaCha8Rng, ctx: &TradeCtx, id: u64, span: &BreakSpan) -> Trade {
    let desk_i = ctx.desk_dist.sample(rng);
    let desk = &DESKS[desk_i];
    let pool = if desk.mbs && !ctx.mbs_cusips.is_empty() {
        &ctx.mbs_cusips
    } else {
        &ctx.cusips
    };
    let cusip = rng.gen_range(0..pool.len()) as u32 | if desk.mbs { 1 << 31 } else { 0 };
    let (qty, price) = draw_size(rng, desk);
    let factor = if desk.mbs {
        rng.gen_range(200_000..980_000)
    } else {
        1_000_000
    };
    let ccy = if desk.ldn && rng.gen_bool(0.5) {
        rng.gen_range(1..TRADE_CCYS.len()) as u8
    } else {
        0
    };
    let buy = rng.gen_bool(0.5);
    let ts_a = rng.gen_range(7 * 3600..18 * 3600);
    let ts_b = (ts_a + rng.gen_range(5..4 * 3600)).min(23 * 3600 + 59 * 60 + 59);
    Trade {
        id,
        desk: desk_i as u8,
        cusip,
        entity: ctx.entity_dist.sample(rng) as u8,
        ccy,
        cpty: rng.gen_range(0..COUNTERPARTIES.len()) as u8,
        trader: rng.gen_range(0..TRADERS.len()) as u8,
        strategy: rng.gen_range(0..STRATEGIES.len()) as u8,
        book: rng.gen_range(1..=4),
        status_a: if rng.gen_bool(0.8) { 0 } else { 1 },
        status_b: if rng.gen_bool(0.85) { 0 } else { 1 },
        ver_a: 1,
        ver_b: rng.gen_range(1..=2),
        account: rng.gen_range(10_000..999_999),
        sys_a_id: rng.gen_range(100_000_000..999_999_999),
        sys_b_id: rng.gen_range(1_000_000..9_999_999),
        ts_a,
        ts_b,
        buy,
        buy_b: buy,
        qa: qty,
        qb: qty,
        pa: price,
        pb: price,
        factor,
        qty_tol: if rng.gen_bool(0.3) { 1 } else { 0 },
        trade_off: span.first_day - span.lag,
        settle_empty: rng.gen_bool(0.05),
        first_day: span.first_day,
        len: span.len,
        cat: span.cat,
        side: Side::Both,
        step: 0,
        comment: None,
        comment_from: 0,
    }
}

/// Quantity (face, in round-ish lots) and price (in micros, around 80-120 on the desk's tick).
fn draw_size(rng: &mut ChaCha8Rng, desk: &DeskDef) -> (i64, i64) {
    // Quantity: face amounts in round-ish lots.
    let z: f64 = rng.sample(StandardNormal);
    let raw = (2.0e6 * (1.3 * z).exp()).clamp(1_000.0, 5.0e7);
    let lot = if raw > 1.0e6 && rng.gen_bool(0.7) {
        desk.lot.max(100_000)
    } else {
        desk.lot
    };
    let qty = (round_to(raw as i64, lot)).clamp(desk.lot.max(1_000), 50_000_000);
    // Price around 80-120 on the desk's tick.
    let zp: f64 = rng.sample(StandardNormal);
    let price_f = (100.0 + 6.0 * zp).clamp(80.0, 120.0);
    let mut price = round_to((price_f * 1e6).round() as i64, desk.tick);
    if desk.tick == 1 && rng.gen_bool(0.5) {
        price = round_to(price, 1_000);
    }
    (qty, price)
}

/// Makes the trade's break: the difference between the systems its category calls for.
fn apply_category(rng: &mut ChaCha8Rng, t: &mut Trade) {
    let sign = if rng.gen_bool(0.5) { 1 } else { -1 };
    let tol = DESKS[t.desk as usize].price_tol;
    match t.cat {
        Cat::Ord(Ordinary::PriceTol | Ordinary::Blotter | Ordinary::Aged) => {
            t.pb = t.pa - sign * rng.gen_range(1..=tol);
        }
        Cat::Ord(Ordinary::TimingB) => t.side = Side::BOnly,
        Cat::Ord(Ordinary::TimingA) => t.side = Side::AOnly,
        Cat::Ord(Ordinary::QtyTol) => {
            t.qty_tol = 1;
            t.qb = t.qa + sign;
        }
        Cat::Anom(kind) => match kind {
            BreakKind::FatFinger => {
                let p = 10i64.pow(rng.gen_range(1..=3));
                t.qb = if t.qa % p == 0 && rng.gen_bool(0.5) {
                    t.qa / p
                } else {
                    t.qa * p
                };
            }
            BreakKind::SignFlip => t.buy_b = !t.buy,
            BreakKind::Rounding => {
                let pd = ((tol as f64 * rng.gen_range(1.3..4.0)).round() as i64).max(tol + 1);
                t.pb = t.pa - sign * pd;
            }
            BreakKind::Timing => {
                t.side = if rng.gen_bool(0.5) {
                    Side::AOnly
                } else {
                    Side::BOnly
                };
            }
            BreakKind::DuplicateEntry => t.qb = t.qa * 2,
            BreakKind::MissingEntry => {
                let big = rng.gen_range(10..=50) * 1_000_000;
                t.qa = big;
                t.qb = big;
                t.side = if rng.gen_bool(0.5) {
                    Side::AOnly
                } else {
                    Side::BOnly
                };
            }
            BreakKind::Drift => {
                t.step =
                    sign * ((tol as f64 * rng.gen_range(1.5..5.0)).round() as i64).max(tol + 1);
            }
            BreakKind::StaleBalance => {
                t.step = sign * ((tol.max(1_000) as f64 * rng.gen_range(2.0..5.0)).round() as i64);
                t.pa = t.pb + t.step;
                t.ver_a += 1;
                t.status_a = 2;
            }
            BreakKind::FxRevaluation => {
                t.ccy = rng.gen_range(1..TRADE_CCYS.len()) as u8;
                let r = rng.gen_range(0.005..0.03);
                let pd = ((t.pa as f64 * r).round() as i64).max(tol + 1);
                t.pb = t.pa - sign * pd;
            }
        },
    }
}

/// Maybe a comment, shown from the first break day or the next one.
fn draw_comment(rng: &mut ChaCha8Rng, t: &mut Trade) {
    let (p_comment, list) = match t.cat {
        Cat::Ord(o) => (0.55, ordinary_comments(o)),
        Cat::Anom(k) => (0.3, anomaly_comments(k)),
    };
    if rng.r#gen::<f64>() < p_comment {
        t.comment = Some(list[rng.gen_range(0..list.len())]);
        t.comment_from = t.first_day + if t.len > 1 && rng.gen_bool(0.4) { 1 } else { 0 };
    }
}
