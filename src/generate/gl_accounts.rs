//! The accounts of the gl_ihub profile: chart of accounts, currencies, comments, the account
//! list, each account's evolving balance and postings, and the break episodes planned on it.

use std::collections::HashSet;

use anyhow::{Context, Result, bail};
use rand::Rng;
use rand::distributions::WeightedIndex;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

use super::write::push_field;
use super::{BreakKind, RoutineKind, gl_group_key};

/// Chart of accounts: number and description.
const CHART: &[(u32, &str)] = &[
    (101000, "Cash - Operating"),
    (101500, "Cash - Restricted"),
    (102010, "Due From Banks"),
    (110200, "Fed Funds Sold"),
    (120100, "Loans Receivable"),
    (120500, "Allowance for Loan Losses"),
    (130010, "Accrued Interest Receivable"),
    (140300, "Securities AFS"),
    (140310, "Securities HTM"),
    (150000, "Intercompany Receivable"),
    (160200, "Prepaid Expenses"),
    (170100, "Fixed Assets"),
    (180900, "Suspense - Assets"),
    (190400, "Other Assets, Misc"),
    (201000, "Deposits - Demand"),
    (201500, "Deposits - Time"),
    (210300, "Fed Funds Purchased"),
    (220100, "Accrued Interest Payable"),
    (230400, "Accounts Payable"),
    (240000, "Intercompany Payable"),
    (250600, "Repo Liabilities"),
    (260100, "Deferred Revenue"),
    (270300, "Accrued Expenses, Other"),
    (289900, "Suspense - Liabilities"),
    (310000, "Retained Earnings"),
    (320100, "Capital Stock"),
    (401000, "Interest Income - Loans"),
    (402500, "Interest Income - Securities"),
    (411020, "Cash Clearing"),
    (411030, "Settlement Clearing"),
    (415000, "Fee Income"),
    (420100, "Trading Gains"),
    (430200, "FX Gains/Losses"),
    (501000, "Interest Expense - Deposits"),
    (510300, "Salaries & Benefits"),
    (520100, "Occupancy Expense"),
    (530500, "Technology Expense"),
    (540000, "Professional Fees"),
    (550200, "Provision for Credit Losses"),
    (560100, "Intercompany Expense"),
    (590900, "Miscellaneous Expense"),
];

const GL_CURRENCIES: [(&str, f64); 5] = [
    ("USD", 0.58),
    ("EUR", 0.14),
    ("GBP", 0.11),
    ("CAD", 0.09),
    ("JPY", 0.08),
];

pub(super) const GL_GENERIC_COMMENTS: &[&str] = &[
    "Under review",
    "Investigating with IHub team",
    "Escalated to GL ops",
    "Open - awaiting support",
];

pub(super) fn gl_kind_comments(kind: BreakKind) -> &'static [&'static str] {
    match kind {
        BreakKind::Timing => &[
            "Timing - posted next day",
            "Timing difference, expected to clear",
            "Timing - IHub feed T+1",
        ],
        BreakKind::Rounding => &["Rounding", "Rounding difference - immaterial"],
        BreakKind::FxRevaluation => &[
            "FX reval pending",
            "FX rate mismatch, IHub on prior-day rate",
        ],
        BreakKind::MissingEntry => &["Entry missing in IHub", "JE not in IHub - ticket raised"],
        BreakKind::DuplicateEntry => &[
            "Possible duplicate in IHub",
            "Duplicate posting - reversal requested",
        ],
        BreakKind::SignFlip => &["Sign reversed in IHub feed", "DR/CR flipped in IHub"],
        BreakKind::FatFinger => &["Possible keying error", "Amount looks off - escalated"],
        BreakKind::StaleBalance => &[
            "IHub balance not refreshing",
            "Stale IHub feed - ticket raised",
        ],
        BreakKind::Drift => &["Small recurring difference", "Accrual calc difference"],
    }
}

/// Static description of one account (group).
pub(super) struct GlGroup {
    /// `Company,Account,AU,Currency,Primary Account,` already CSV-encoded.
    pub(super) head: Vec<u8>,
    /// Secondary Account text (CSV-encoded).
    pub(super) secondary: Vec<u8>,
    pub(super) key: String,
    pub(super) account: u32,
    pub(super) usd: bool,
}

/// Evolving state of one account.
pub(super) struct GlState {
    /// GL balance in cents.
    pub(super) gl: i64,
    /// Typical posting size in cents.
    pub(super) scale: f64,
    /// Probability of a day without postings.
    pub(super) quiet: f64,
    /// Bias of postings towards credits or debits.
    pub(super) bias: f64,
    pub(super) ep: Option<Episode>,
    /// The account just left an episode (no new episode today).
    pub(super) cooldown: bool,
}

/// A labelled break episode running on one account.
pub(super) struct Episode {
    pub(super) kind: BreakKind,
    pub(super) day: u32,
    pub(super) len: u32,
    /// Fixed amount in cents (timing, rounding, missing, duplicate) or daily step (drift).
    pub(super) amount: i64,
    /// Proportional rate (fx).
    pub(super) rate: f64,
    /// IHub balance frozen at the start (stale).
    pub(super) base: i64,
    /// Power of ten (fat finger).
    pub(super) pow10: i64,
    /// Fat finger multiplies (true) or divides (false).
    pub(super) up: bool,
}

/// Kinds whose signature needs a balance of a meaningful size.
fn needs_balance(kind: BreakKind) -> bool {
    matches!(
        kind,
        BreakKind::FxRevaluation | BreakKind::SignFlip | BreakKind::FatFinger | BreakKind::Drift
    )
}

pub(super) fn build_gl_groups(rng: &mut ChaCha8Rng, n_groups: usize) -> Result<Vec<GlGroup>> {
    let n_comp = (n_groups / 40 + 3).min(999);
    let n_au = (n_groups / 10 + 8).min(9999);
    // Company codes: 00000 plus distinct multiples of 100.
    let mut comp_pool: Vec<u32> = (1..=999).collect();
    comp_pool.shuffle(rng);
    let mut companies = vec![0u32];
    companies.extend(comp_pool.iter().take(n_comp - 1).map(|k| k * 100));
    let mut au_pool: Vec<u32> = (1..=9999).collect();
    au_pool.shuffle(rng);
    au_pool.truncate(n_au);
    // Skewed company sizes: a few big legal entities, a long tail.
    let comp_weights: Vec<f64> = (0..companies.len())
        .map(|i| 1.0 / ((i + 1) as f64).powf(0.8))
        .collect();
    let comp_dist = WeightedIndex::new(&comp_weights).context("company weights")?;
    let ccy_dist =
        WeightedIndex::new(GL_CURRENCIES.iter().map(|c| c.1)).context("currency weights")?;

    let mut seen: HashSet<u64> = HashSet::new();
    seen.try_reserve(n_groups)
        .context("rows too large: cannot allocate the account list")?;
    let mut combos: Vec<(u32, usize, u32, usize)> = Vec::new();
    combos
        .try_reserve_exact(n_groups)
        .context("rows too large: cannot allocate the account list")?;
    let max_attempts = n_groups.saturating_mul(100).saturating_add(1000);
    let mut attempts = 0usize;
    while combos.len() < n_groups {
        attempts += 1;
        if attempts > max_attempts {
            bail!("could not draw {n_groups} distinct accounts; use fewer rows");
        }
        let ci = if combos.is_empty() {
            0
        } else {
            comp_dist.sample(rng)
        };
        let ai = rng.gen_range(0..CHART.len());
        let ui = rng.gen_range(0..au_pool.len());
        let cy = ccy_dist.sample(rng);
        let key = ((ci as u64) << 32) | ((ai as u64) << 24) | ((ui as u64) << 4) | cy as u64;
        if seen.insert(key) {
            combos.push((companies[ci], ai, au_pool[ui], cy));
        }
    }
    combos.sort_by(|a, b| {
        (a.0, CHART[a.1].0, a.2, GL_CURRENCIES[a.3].0).cmp(&(
            b.0,
            CHART[b.1].0,
            b.2,
            GL_CURRENCIES[b.3].0,
        ))
    });

    let mut groups = Vec::new();
    groups
        .try_reserve_exact(n_groups)
        .context("rows too large: cannot allocate the account list")?;
    for (comp, ai, au, cy) in combos {
        let (acct, name) = CHART[ai];
        let ccy = GL_CURRENCIES[cy].0;
        let comp_s = format!("{comp:05}");
        let acct_s = format!("{acct:06}");
        let au_s = format!("{au:04}");
        let mut head = Vec::with_capacity(64);
        push_field(&mut head, &comp_s);
        head.push(b',');
        push_field(&mut head, &acct_s);
        head.push(b',');
        push_field(&mut head, &au_s);
        head.push(b',');
        push_field(&mut head, ccy);
        head.push(b',');
        push_field(&mut head, &format!("{acct_s}-{name}"));
        head.push(b',');
        let mut secondary = Vec::with_capacity(16);
        push_field(&mut secondary, &format!("IHUB-{acct_s}"));
        groups.push(GlGroup {
            head,
            secondary,
            key: gl_group_key(&comp_s, &acct_s, &au_s, ccy),
            account: acct,
            usd: ccy == "USD",
        });
    }
    Ok(groups)
}

pub(super) fn init_gl_state(rng: &mut ChaCha8Rng, account: u32) -> GlState {
    let z: f64 = rng.sample(StandardNormal);
    let base = (12.0 + 2.3 * z).exp().clamp(100.0, 5.0e8);
    // Liability, equity and revenue accounts mostly carry credit (negative) balances.
    let credit_family = matches!(account / 100_000, 2..=4);
    let negative = rng.gen_bool(if credit_family { 0.8 } else { 0.08 });
    let cents = (base * 100.0).round() as i64;
    let gl = if negative { -cents } else { cents };
    let scale = (cents as f64 * 10f64.powf(rng.gen_range(-3.0..-1.3))).max(100.0);
    GlState {
        gl,
        scale,
        quiet: rng.gen_range(0.25..0.85),
        bias: rng.gen_range(-0.05..0.05),
        ep: None,
        cooldown: false,
    }
}

/// One day's GL posting in cents (0 on quiet days unless `force`).
pub(super) fn gl_posting(rng: &mut ChaCha8Rng, st: &GlState, force: bool) -> i64 {
    if !force && rng.r#gen::<f64>() < st.quiet {
        return 0;
    }
    let z: f64 = rng.sample(StandardNormal);
    let mut mag = st.scale * (0.9 * z).exp();
    if rng.r#gen::<f64>() < 0.03 {
        mag *= rng.gen_range(5.0..30.0);
    }
    let mut cents = (mag.round() as i64).max(1);
    if rng.r#gen::<f64>() < 0.25 {
        cents = (cents / 100).max(1) * 100;
    }
    if rng.r#gen::<f64>() < 0.5 + st.bias {
        cents
    } else {
        -cents
    }
}

const NON_FX: [BreakKind; 8] = [
    BreakKind::Timing,
    BreakKind::Rounding,
    BreakKind::MissingEntry,
    BreakKind::DuplicateEntry,
    BreakKind::SignFlip,
    BreakKind::FatFinger,
    BreakKind::StaleBalance,
    BreakKind::Drift,
];

const BALANCE_FREE: [BreakKind; 4] = [
    BreakKind::Timing,
    BreakKind::Rounding,
    BreakKind::MissingEntry,
    BreakKind::DuplicateEntry,
];

pub(super) fn plan_gl_episode(
    rng: &mut ChaCha8Rng,
    st: &GlState,
    usd: bool,
    fx_share: f64,
) -> Episode {
    let mut kind = if !usd && rng.r#gen::<f64>() < fx_share {
        BreakKind::FxRevaluation
    } else {
        NON_FX[rng.gen_range(0..NON_FX.len())]
    };
    if needs_balance(kind) && st.gl.abs() < 10_000 {
        kind = BALANCE_FREE[rng.gen_range(0..BALANCE_FREE.len())];
    }
    let len = match kind {
        BreakKind::Timing => rng.gen_range(1..=3),
        BreakKind::Rounding | BreakKind::SignFlip | BreakKind::FatFinger => 1,
        BreakKind::FxRevaluation => rng.gen_range(1..=3),
        BreakKind::MissingEntry => rng.gen_range(2..=5),
        BreakKind::DuplicateEntry => rng.gen_range(1..=2),
        BreakKind::StaleBalance => rng.gen_range(3..=6),
        BreakKind::Drift => rng.gen_range(5..=15),
    };
    let sign = if rng.gen_bool(0.5) { 1 } else { -1 };
    let mut ep = Episode {
        kind,
        day: 0,
        len,
        amount: 0,
        rate: 0.0,
        base: st.gl,
        pow10: 1,
        up: true,
    };
    match kind {
        BreakKind::Rounding => ep.amount = sign * rng.gen_range(1..=99),
        BreakKind::FxRevaluation => ep.rate = sign as f64 * rng.gen_range(0.003..0.03),
        BreakKind::MissingEntry => ep.amount = gl_posting(rng, st, true),
        BreakKind::FatFinger => {
            ep.pow10 = 10i64.pow(rng.gen_range(1..=3));
            ep.up = rng.gen_bool(0.5);
        }
        BreakKind::Drift => {
            let rate = rng.gen_range(0.0002..0.001);
            ep.amount = sign * ((st.gl.abs() as f64 * rate).round() as i64).max(1);
        }
        _ => {}
    }
    ep
}

/// Comments analysts write next to routine breaks (a minority of the rows carry one).
pub(super) fn routine_comments(kind: RoutineKind) -> &'static [&'static str] {
    match kind {
        RoutineKind::StandingItem => &[
            "Outstanding balances are in line with previous months",
            "Standing reconciling item - no action",
        ],
        RoutineKind::HabitualLag => &[
            "IHub posts one day behind, in line with previous months",
            "Known one-day lag of the IHub feed - no action",
        ],
        RoutineKind::MonthEndAccrual => &[
            "Month-end accrual, reverses next period",
            "Accrual reverses on the first day - in line with previous months",
        ],
    }
}

/// The routine accounts, from their own random stream: per account, the kind and its amount (the
/// standing item, or the accrual's typical size); `None` for the other accounts.
pub(super) fn plan_routine(
    rrng: &mut ChaCha8Rng,
    routine_share: f64,
    states: &[GlState],
) -> Vec<Option<(RoutineKind, i64)>> {
    states
        .iter()
        .map(|st| {
            if routine_share <= 0.0 || rrng.r#gen::<f64>() >= routine_share {
                return None;
            }
            let kind = RoutineKind::ALL[rrng.gen_range(0..RoutineKind::ALL.len())];
            let z: f64 = rrng.sample(StandardNormal);
            let mag = st.scale * (0.9 * z).exp() * rrng.gen_range(1.0..4.0);
            let mut cents = (mag.round() as i64).max(200);
            if rrng.gen_bool(0.4) {
                cents = (cents / 100).max(2) * 100;
            }
            Some((kind, if rrng.gen_bool(0.5) { cents } else { -cents }))
        })
        .collect()
}
