//! Synthetic, labelled reconciliation files for tests, samples and benchmarks.
//!
//! Two profiles are supported:
//!
//! * [`GenProfile::GlIhub`]: daily GL vs IHub balance extracts per
//!   Company/Account/AU/Currency (D ~ 60 business days, rows ordered by date
//!   then account), with injected break episodes whose data signatures follow
//!   the [`BreakKind`] taxonomy. Outside the labelled episodes GL == IHub.
//! * [`GenProfile::Trades`]: trade-level breaks between two booking systems
//!   (SYSA and SYSB), one record per trade per recon day while it is in break.
//!   Most rows are ordinary low-risk breaks (price differences within
//!   tolerance, short one-sided timing breaks); about `5 * break_rate` of the
//!   rows are labelled anomalies. QUANTITYDIFFERENCE is the signed SYSA
//!   quantity minus the signed SYSB quantity (SELL counts negative); PRICE
//!   DIFFERENCE is SYSA_PRICE - SYSB_PRICE (empty on one-sided rows).
//!
//! Output is reproducible: the same [`GenerateOptions`] give byte-identical
//! files. The optional labels CSV (`row,kind,group`) is the ground truth: it
//! lists every anomalous data row by its spreadsheet row number (the header is
//! row 1, the first data row is row 2); `group` is [`gl_group_key`] for
//! gl_ihub and the TRADEID for trades.
//!
//! With `messy = true` the files also carry the quirks of real extracts:
//!
//! * every date column mixes ISO `2024-04-30` (~45%), `4/30/2024` (~37%),
//!   `04-30-2024` (~10%) and Excel serials `45412` (~8%);
//! * `1900-01-01` meaning "missing": exactly one gl_ihub row's As of Date
//!   (an unlabelled, otherwise clean row that an ingest should reject), and
//!   ~2% of the trades' SETTLE DATE cells;
//! * float noise on ~2% of the amounts (`20000.010000000002`): rounding to 6
//!   decimals gives back the exact value;
//! * comments wrapped as `{"..."}` (~12%) or `[{"..."}]` (~8%), CSV-quoted
//!   per RFC 4180 (the first two comments always get one of each);
//! * empty cells: ~3% of Secondary Account, ~2% of the SYSx_BOOK, SYSx_TRADER,
//!   SYSx_ACCOUNT and SYSx_STRATEGY cells;
//! * gl_ihub: ~0.2% of rows (at least one) whose Balance Difference is stale
//!   (not GL - IHub); they are not labelled unless inside an episode, and
//!   their Match Status still follows GL - IHub.
//!
//! The quirks come from a separate random stream, so a messy file holds the
//! same values, row order and labels as the clean file with the same seed.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::io::{BufWriter, Write};
use std::str::FromStr;

use anyhow::{Context, Result, bail};
use chrono::{Datelike, NaiveDate, Weekday};
use rand::distributions::WeightedIndex;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

/// Exact header of the `gl_ihub` profile.
pub const GL_IHUB_HEADER: &str = "As of Date,Company,Account,AU,Currency,Primary Account,Secondary Account,GL Balance,IHub Balance,Balance Difference,Match Status,Comments";

/// Exact header of the `trades` profile (16 recon columns, then 14 columns per system).
pub const TRADES_HEADER: &str = "TRADEID,DESKNAME,MatchStatus,RECONDATE,TRADE_DATE,SETTLE DATE,BUY_SELL,CUSIP,QUANTITY,PRICE,QUANTITYDIFFERENCE,PRICE DIFFERENCE,ORIGINAL FACE DIFFERENCE,PRICE TOLERANCE,QUANTITY TOLERANCE,COMMENT,\
SYSA_TRADEID,SYSA_BOOK,SYSA_TRADER,SYSA_COUNTERPARTY,SYSA_ENTITY,SYSA_BUY_SELL,SYSA_QUANTITY,SYSA_PRICE,SYSA_CCY,SYSA_STATUS,SYSA_ENTRY_TS,SYSA_ACCOUNT,SYSA_STRATEGY,SYSA_VERSION,\
SYSB_TRADEID,SYSB_BOOK,SYSB_TRADER,SYSB_COUNTERPARTY,SYSB_ENTITY,SYSB_BUY_SELL,SYSB_QUANTITY,SYSB_PRICE,SYSB_CCY,SYSB_STATUS,SYSB_ENTRY_TS,SYSB_ACCOUNT,SYSB_STRATEGY,SYSB_VERSION";

/// Header of the labels CSV.
pub const LABELS_HEADER: &str = "row,kind,group";

/// The date written (in `messy` mode) where a date is missing.
pub const PLACEHOLDER_DATE: &str = "1900-01-01";

/// Largest accepted `rows`.
pub const MAX_ROWS: usize = 2_000_000_000;

/// Salt for the random stream that drives the `messy` quirks.
const MESSY_SALT: u64 = 0x6D65_7373_795F_7175;

/// Salt for the random stream that chooses and shapes the routine accounts.
const ROUTINE_SALT: u64 = 0x726F_7574_696E_6521;

/// Default share of gl_ihub accounts whose breaks are routine for them.
pub const DEFAULT_ROUTINE_SHARE: f64 = 0.3;

/// Header of the routine-accounts list.
pub const ROUTINE_HEADER: &str = "group,kind";

// ---------------------------------------------------------------------------
// Public types
// ---------------------------------------------------------------------------

/// Which kind of reconciliation file to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GenProfile {
    /// GL vs IHub balances per Company/Account/AU/Currency per business day.
    GlIhub,
    /// Trade-level breaks between booking systems SYSA and SYSB.
    Trades,
}

impl GenProfile {
    /// All profiles.
    pub const ALL: [GenProfile; 2] = [GenProfile::GlIhub, GenProfile::Trades];

    /// The name accepted by [`FromStr`]: `gl_ihub` or `trades`.
    pub fn as_str(&self) -> &'static str {
        match self {
            GenProfile::GlIhub => "gl_ihub",
            GenProfile::Trades => "trades",
        }
    }

    /// The exact CSV header of this profile.
    pub fn header(&self) -> &'static str {
        match self {
            GenProfile::GlIhub => GL_IHUB_HEADER,
            GenProfile::Trades => TRADES_HEADER,
        }
    }
}

impl fmt::Display for GenProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for GenProfile {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        let norm = s.trim().to_ascii_lowercase().replace('-', "_");
        match norm.as_str() {
            "gl_ihub" => Ok(GenProfile::GlIhub),
            "trades" => Ok(GenProfile::Trades),
            _ => bail!("unknown profile {s:?}: expected one of gl_ihub, trades"),
        }
    }
}

/// The taxonomy of breaks analysts know, used as labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BreakKind {
    Timing,
    Rounding,
    FxRevaluation,
    MissingEntry,
    DuplicateEntry,
    SignFlip,
    FatFinger,
    StaleBalance,
    Drift,
}

impl BreakKind {
    /// Every kind, in declaration order.
    pub const ALL: [BreakKind; 9] = [
        BreakKind::Timing,
        BreakKind::Rounding,
        BreakKind::FxRevaluation,
        BreakKind::MissingEntry,
        BreakKind::DuplicateEntry,
        BreakKind::SignFlip,
        BreakKind::FatFinger,
        BreakKind::StaleBalance,
        BreakKind::Drift,
    ];

    /// Snake-case name used in the labels CSV.
    pub fn as_str(&self) -> &'static str {
        match self {
            BreakKind::Timing => "timing",
            BreakKind::Rounding => "rounding",
            BreakKind::FxRevaluation => "fx_revaluation",
            BreakKind::MissingEntry => "missing_entry",
            BreakKind::DuplicateEntry => "duplicate_entry",
            BreakKind::SignFlip => "sign_flip",
            BreakKind::FatFinger => "fat_finger",
            BreakKind::StaleBalance => "stale_balance",
            BreakKind::Drift => "drift",
        }
    }
}

impl fmt::Display for BreakKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for BreakKind {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        let norm = s.trim().to_ascii_lowercase();
        BreakKind::ALL
            .into_iter()
            .find(|k| k.as_str() == norm)
            .with_context(|| {
                let names: Vec<&str> = BreakKind::ALL.iter().map(|k| k.as_str()).collect();
                format!(
                    "unknown break kind {s:?}: expected one of {}",
                    names.join(", ")
                )
            })
    }
}

/// The routine breaks an account can carry: breaks that are normal for that account and that
/// analysts mark "in line with previous months". They are not labelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RoutineKind {
    /// A reconciling item carried at the same amount on every record.
    StandingItem,
    /// The sub-ledger books every posting one record late: IHub today = GL on the previous record.
    HabitualLag,
    /// A month-end accrual in the GL that reverses on the next record (the amount varies a little
    /// from month to month).
    MonthEndAccrual,
}

impl RoutineKind {
    pub const ALL: [RoutineKind; 3] = [
        RoutineKind::StandingItem,
        RoutineKind::HabitualLag,
        RoutineKind::MonthEndAccrual,
    ];

    /// Snake-case name used in the routine list.
    pub fn as_str(&self) -> &'static str {
        match self {
            RoutineKind::StandingItem => "standing_item",
            RoutineKind::HabitualLag => "habitual_lag",
            RoutineKind::MonthEndAccrual => "month_end_accrual",
        }
    }
}

/// Comments analysts write next to routine breaks (a minority of the rows carry one).
fn routine_comments(kind: RoutineKind) -> &'static [&'static str] {
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

/// Options of [`generate`].
#[derive(Debug, Clone)]
pub struct GenerateOptions {
    /// Which file to generate.
    pub profile: GenProfile,
    /// Approximate number of data rows wanted (the actual count is in the summary).
    pub rows: usize,
    /// Seed of the random streams; same options and seed give identical bytes.
    pub seed: u64,
    /// gl_ihub: share of account-days that start a break episode.
    /// trades: labelled rows are about `5 * break_rate` of all rows.
    pub break_rate: f64,
    /// Inject the quirks of real-world extracts.
    pub messy: bool,
    /// First business day (a weekend date rolls forward to Monday).
    pub start_date: NaiveDate,
    /// gl_ihub: share of accounts whose breaks are all routine for them (a standing item, a
    /// one-record lag of the sub-ledger, a month-end accrual that reverses): unlabelled, and
    /// listed in the routine list. 0 for none.
    pub routine_share: f64,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            profile: GenProfile::GlIhub,
            rows: 10_000,
            seed: 42,
            break_rate: 0.02,
            messy: false,
            start_date: NaiveDate::from_ymd_opt(2024, 1, 2).unwrap_or_default(),
            routine_share: DEFAULT_ROUTINE_SHARE,
        }
    }
}

/// What [`generate`] wrote.
#[derive(Debug, Clone, Default)]
pub struct GenerateSummary {
    /// Data rows written (header excluded).
    pub rows: usize,
    /// gl_ihub: accounts (Company/Account/AU/Currency); trades: distinct trades.
    pub groups: usize,
    /// Business days covered (As of Date / RECONDATE values).
    pub dates: usize,
    /// Rows listed in the labels CSV.
    pub labelled_rows: usize,
    /// Labelled rows per [`BreakKind::as_str`].
    pub by_kind: BTreeMap<&'static str, usize>,
    /// Labelled episodes (gl_ihub) or anomalous trades (trades).
    pub episodes: usize,
    /// gl_ihub: accounts whose breaks are routine, per [`RoutineKind::as_str`].
    pub routine_accounts: BTreeMap<&'static str, usize>,
    /// gl_ihub: out-of-tolerance rows of the routine accounts (unlabelled).
    pub routine_break_rows: usize,
}

/// Group key used in the labels CSV for a gl_ihub account:
/// the four key columns joined with `|`, e.g. `00100|411020|0042|USD`.
pub fn gl_group_key(company: &str, account: &str, au: &str, currency: &str) -> String {
    format!("{company}|{account}|{au}|{currency}")
}

/// Writes the CSV (with header) to `out` and, when given, the labels CSV to `labels`.
pub fn generate(
    opts: &GenerateOptions,
    out: &mut dyn Write,
    labels: Option<&mut dyn Write>,
) -> Result<GenerateSummary> {
    generate_with_routine(opts, out, labels, None)
}

/// [`generate`], also writing the routine accounts (`group,kind`, [`ROUTINE_HEADER`]) to
/// `routine` when given (gl_ihub; the list of a trades file is only its header).
pub fn generate_with_routine(
    opts: &GenerateOptions,
    out: &mut dyn Write,
    labels: Option<&mut dyn Write>,
    routine: Option<&mut dyn Write>,
) -> Result<GenerateSummary> {
    validate(opts)?;
    let mut w = BufWriter::with_capacity(1 << 20, out);
    let mut lw = labels.map(|l| BufWriter::with_capacity(1 << 16, l));
    let mut rw = routine.map(|r| BufWriter::with_capacity(1 << 16, r));
    if let Some(r) = rw.as_mut() {
        writeln!(r, "{ROUTINE_HEADER}").context("writing the routine list")?;
    }
    let summary = match opts.profile {
        GenProfile::GlIhub => gen_gl_ihub(opts, &mut w, lw.as_mut(), rw.as_mut())?,
        GenProfile::Trades => gen_trades(opts, &mut w, lw.as_mut())?,
    };
    w.flush().context("writing generated CSV")?;
    if let Some(l) = lw.as_mut() {
        l.flush().context("writing labels CSV")?;
    }
    if let Some(r) = rw.as_mut() {
        r.flush().context("writing the routine list")?;
    }
    Ok(summary)
}

fn validate(opts: &GenerateOptions) -> Result<()> {
    if opts.rows == 0 {
        bail!("rows must be at least 1 (got 0)");
    }
    if opts.rows > MAX_ROWS {
        bail!("rows must be at most {MAX_ROWS} (got {})", opts.rows);
    }
    if !opts.break_rate.is_finite() || !(0.0..=1.0).contains(&opts.break_rate) {
        bail!(
            "break_rate must be between 0 and 1 (got {})",
            opts.break_rate
        );
    }
    if !opts.routine_share.is_finite() || !(0.0..=1.0).contains(&opts.routine_share) {
        bail!(
            "routine_share must be between 0 and 1 (got {})",
            opts.routine_share
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Formatting helpers
// ---------------------------------------------------------------------------

fn push_u64(buf: &mut Vec<u8>, mut v: u64) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    buf.extend_from_slice(&tmp[i..]);
}

fn push_padded(buf: &mut Vec<u8>, v: u64, width: usize) {
    let mut tmp = [b'0'; 24];
    let mut i = tmp.len();
    let mut x = v;
    loop {
        i -= 1;
        tmp[i] = b'0' + (x % 10) as u8;
        x /= 10;
        if x == 0 {
            break;
        }
    }
    let start = i.min(tmp.len().saturating_sub(width));
    buf.extend_from_slice(&tmp[start..]);
}

fn push_i64(buf: &mut Vec<u8>, v: i64) {
    if v < 0 {
        buf.push(b'-');
    }
    push_u64(buf, v.unsigned_abs());
}

/// Fixed-point value `v * 10^-scale`, trailing zeros trimmed down to `min_dec` decimals.
fn push_fixed(buf: &mut Vec<u8>, v: i64, scale: u32, min_dec: u32) {
    if v < 0 {
        buf.push(b'-');
    }
    let a = v.unsigned_abs();
    let p = 10u64.pow(scale);
    push_u64(buf, a / p);
    let mut frac = a % p;
    let mut dec = scale;
    while dec > min_dec && frac.is_multiple_of(10) {
        frac /= 10;
        dec -= 1;
    }
    if dec > 0 {
        buf.push(b'.');
        push_padded(buf, frac, dec as usize);
    }
}

fn push_cents(buf: &mut Vec<u8>, cents: i64) {
    push_fixed(buf, cents, 2, 2);
}

fn decimals_of(s: &str) -> usize {
    s.find('.').map_or(0, |p| s.len() - p - 1)
}

/// Writes `v * 10^-scale` as an f64 with representational noise
/// (e.g. `20000.010000000002`). A parser rounding to 6 decimals gets `v` back.
/// Falls back to the exact form where no such noise exists.
fn push_noisy(buf: &mut Vec<u8>, v: i64, scale: u32, min_dec: u32) {
    let unit = 10f64.powi(-(scale as i32));
    let f = v as f64 * unit;
    if v != 0 && f.abs() < 1e9 {
        let mut s = f.to_string();
        if decimals_of(&s) <= 6 {
            s = f64::from_bits(f.to_bits() + 1).to_string();
        }
        let ok = s
            .parse::<f64>()
            .map(|p| (p / unit).round() as i64 == v && decimals_of(&s) > 6)
            .unwrap_or(false);
        if ok {
            buf.extend_from_slice(s.as_bytes());
            return;
        }
    }
    push_fixed(buf, v, scale, min_dec);
}

/// One CSV field, quoted per RFC 4180 when needed.
fn push_field(buf: &mut Vec<u8>, s: &str) {
    if s.bytes().any(|b| matches!(b, b',' | b'"' | b'\n' | b'\r')) {
        buf.push(b'"');
        for b in s.bytes() {
            if b == b'"' {
                buf.push(b'"');
            }
            buf.push(b);
        }
        buf.push(b'"');
    } else {
        buf.extend_from_slice(s.as_bytes());
    }
}

/// How a comment is wrapped in messy mode.
#[derive(Clone, Copy)]
enum Wrap {
    Plain,
    Brace,
    BracketBrace,
}

fn push_comment(buf: &mut Vec<u8>, c: &str, wrap: Wrap) {
    match wrap {
        Wrap::Plain => push_field(buf, c),
        Wrap::Brace => push_field(buf, &format!("{{\"{c}\"}}")),
        Wrap::BracketBrace => push_field(buf, &format!("[{{\"{c}\"}}]")),
    }
}

/// Chooses comment wrapping in messy mode; the first two comments are always
/// wrapped (one of each style) so a messy file with comments shows both.
struct CommentWrapper {
    messy: bool,
    seen: u64,
}

impl CommentWrapper {
    fn pick(&mut self, mrng: &mut ChaCha8Rng) -> Wrap {
        if !self.messy {
            return Wrap::Plain;
        }
        self.seen += 1;
        match self.seen {
            1 => Wrap::Brace,
            2 => Wrap::BracketBrace,
            _ => {
                let r: f64 = mrng.r#gen();
                if r < 0.12 {
                    Wrap::Brace
                } else if r < 0.20 {
                    Wrap::BracketBrace
                } else {
                    Wrap::Plain
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Dates
// ---------------------------------------------------------------------------

/// One date in the four textual forms real extracts mix.
struct DayFmt {
    iso: String,
    mdy: String,
    dash: String,
    serial: String,
}

const FMT_ISO: u8 = 0;
const FMT_MDY: u8 = 1;
const FMT_DASH: u8 = 2;
const FMT_SERIAL: u8 = 3;

impl DayFmt {
    fn new(d: NaiveDate) -> DayFmt {
        DayFmt {
            iso: format!("{:04}-{:02}-{:02}", d.year(), d.month(), d.day()),
            mdy: format!("{}/{}/{}", d.month(), d.day(), d.year()),
            dash: format!("{:02}-{:02}-{:04}", d.month(), d.day(), d.year()),
            serial: excel_serial(d).to_string(),
        }
    }

    fn get(&self, fmt: u8) -> &str {
        match fmt {
            FMT_MDY => &self.mdy,
            FMT_DASH => &self.dash,
            FMT_SERIAL => &self.serial,
            _ => &self.iso,
        }
    }
}

/// Excel serial number of a date (days since 1899-12-30).
pub fn excel_serial(d: NaiveDate) -> i64 {
    let epoch = NaiveDate::from_ymd_opt(1899, 12, 30).unwrap_or_default();
    (d - epoch).num_days()
}

/// Date format for one messy cell: mostly ISO or M/D/YYYY.
fn pick_date_fmt(mrng: &mut ChaCha8Rng) -> u8 {
    let r: f64 = mrng.r#gen();
    if r < 0.45 {
        FMT_ISO
    } else if r < 0.82 {
        FMT_MDY
    } else if r < 0.92 {
        FMT_DASH
    } else {
        FMT_SERIAL
    }
}

fn is_business_day(d: NaiveDate) -> bool {
    !matches!(d.weekday(), Weekday::Sat | Weekday::Sun)
}

/// Business days for offsets `-before .. after` around `start` (rolled forward
/// to a business day), in order; offset 0 is at index `before`.
fn business_days(start: NaiveDate, before: usize, after: usize) -> Result<Vec<NaiveDate>> {
    let too_late = || format!("start_date {start} is too close to the end of the calendar");
    let mut d0 = start;
    while !is_business_day(d0) {
        d0 = d0.succ_opt().with_context(too_late)?;
    }
    let mut back = Vec::with_capacity(before);
    let mut d = d0;
    while back.len() < before {
        d = d
            .pred_opt()
            .with_context(|| format!("start_date {start} is too early"))?;
        if is_business_day(d) {
            back.push(d);
        }
    }
    back.reverse();
    let mut out = back;
    out.reserve(after);
    let mut d = d0;
    for i in 0..after {
        if i > 0 {
            d = d.succ_opt().with_context(too_late)?;
            while !is_business_day(d) {
                d = d.succ_opt().with_context(too_late)?;
            }
        }
        out.push(d);
    }
    Ok(out)
}

// ---------------------------------------------------------------------------
// gl_ihub profile
// ---------------------------------------------------------------------------

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

const GL_GENERIC_COMMENTS: &[&str] = &[
    "Under review",
    "Investigating with IHub team",
    "Escalated to GL ops",
    "Open - awaiting support",
];

fn gl_kind_comments(kind: BreakKind) -> &'static [&'static str] {
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
struct GlGroup {
    /// `Company,Account,AU,Currency,Primary Account,` already CSV-encoded.
    head: Vec<u8>,
    /// Secondary Account text (CSV-encoded).
    secondary: Vec<u8>,
    key: String,
    account: u32,
    usd: bool,
}

/// Evolving state of one account.
struct GlState {
    /// GL balance in cents.
    gl: i64,
    /// Typical posting size in cents.
    scale: f64,
    /// Probability of a day without postings.
    quiet: f64,
    /// Bias of postings towards credits or debits.
    bias: f64,
    ep: Option<Episode>,
    /// The account just left an episode (no new episode today).
    cooldown: bool,
}

struct Episode {
    kind: BreakKind,
    day: u32,
    len: u32,
    /// Fixed amount in cents (timing, rounding, missing, duplicate) or daily step (drift).
    amount: i64,
    /// Proportional rate (fx).
    rate: f64,
    /// IHub balance frozen at the start (stale).
    base: i64,
    /// Power of ten (fat finger).
    pow10: i64,
    /// Fat finger multiplies (true) or divides (false).
    up: bool,
}

/// Kinds whose signature needs a balance of a meaningful size.
fn needs_balance(kind: BreakKind) -> bool {
    matches!(
        kind,
        BreakKind::FxRevaluation | BreakKind::SignFlip | BreakKind::FatFinger | BreakKind::Drift
    )
}

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

fn build_gl_groups(rng: &mut ChaCha8Rng, n_groups: usize) -> Result<Vec<GlGroup>> {
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

fn init_gl_state(rng: &mut ChaCha8Rng, account: u32) -> GlState {
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
fn gl_posting(rng: &mut ChaCha8Rng, st: &GlState, force: bool) -> i64 {
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

fn plan_gl_episode(rng: &mut ChaCha8Rng, st: &GlState, usd: bool, fx_share: f64) -> Episode {
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

/// Rounded integer division (half away from zero).
fn div_round(a: i64, b: i64) -> i64 {
    let q = a / b;
    let r = a % b;
    if r.abs() * 2 >= b.abs() {
        q + a.signum() * b.signum()
    } else {
        q
    }
}

fn gen_gl_ihub(
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
    let messy = opts.messy;

    // Positions (day, group) of the placeholder-date row and of one forced
    // inconsistent-difference row. Drawn in both modes and kept free of
    // episodes in both modes, so clean and messy files share their values.
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
    let routine: Vec<Option<(RoutineKind, i64)>> = states
        .iter()
        .map(|st| {
            if opts.routine_share <= 0.0 || rrng.r#gen::<f64>() >= opts.routine_share {
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
        .collect();
    let mut summary_routine: BTreeMap<&'static str, usize> = BTreeMap::new();
    if let Some(r) = routine_out {
        for (grp, rt) in groups.iter().zip(&routine) {
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
    // The last business day of each month (the next business day is in another month).
    let month_end: Vec<bool> = dates
        .iter()
        .map(|d| {
            let mut n = d.succ_opt().unwrap_or(*d);
            while !is_business_day(n) {
                n = n.succ_opt().unwrap_or(n);
            }
            n.month() != d.month()
        })
        .collect();

    let non_usd = groups.iter().filter(|g| !g.usd).count() as f64 / n_groups as f64;
    let fx_share = if non_usd > 0.0 {
        (1.0 / (9.0 * non_usd)).min(1.0)
    } else {
        0.0
    };
    let r = opts.break_rate;
    let p_start = if r <= 0.0 {
        0.0
    } else {
        let free = 1.0 - r * GL_MEAN_EPISODE_DAYS;
        if free <= 0.05 {
            1.0
        } else {
            (r / free).min(1.0)
        }
    };

    w.write_all(GL_IHUB_HEADER.as_bytes())?;
    w.write_all(b"\n")?;
    if let Some(l) = labels.as_mut() {
        writeln!(l, "{LABELS_HEADER}")?;
    }

    let mut summary = GenerateSummary {
        groups: n_groups,
        dates: n_days,
        routine_accounts: summary_routine,
        ..GenerateSummary::default()
    };
    let mut wrapper = CommentWrapper { messy, seen: 0 };
    let mut line: Vec<u8> = Vec::with_capacity(512);
    let mut lab_line: Vec<u8> = Vec::with_capacity(64);
    let mut row_no: u64 = 1;
    for (d, day) in day_fmts.iter().enumerate() {
        for (g, grp) in groups.iter().enumerate() {
            row_no += 1;
            let st = &mut states[g];
            let resolved_today = st.cooldown;
            st.cooldown = false;
            let routine_here = routine[g];
            if routine_here.is_none()
                && st.ep.is_none()
                && !resolved_today
                && d >= 1
                && p_start > 0.0
            {
                let start = p_start >= 1.0 || rng.r#gen::<f64>() < p_start;
                if start {
                    let ep = plan_gl_episode(&mut rng, st, grp.usd, fx_share);
                    let end = d + ep.len as usize;
                    let covers = |pos: (usize, usize)| pos.1 == g && pos.0 >= d && pos.0 < end;
                    if !covers(p_row) && !q_row.is_some_and(covers) {
                        st.ep = Some(ep);
                        summary.episodes += 1;
                    }
                }
            }
            let force = st.ep.as_ref().is_some_and(|e| {
                e.kind == BreakKind::StaleBalance
                    || (e.day == 0
                        && matches!(e.kind, BreakKind::Timing | BreakKind::DuplicateEntry))
            });
            let change = gl_posting(&mut rng, st, force);
            st.gl = st.gl.saturating_add(change);
            let gl = st.gl;
            let mut diff = 0i64;
            let mut label = None;
            let mut routine_comment = None;
            if let Some((kind, amount)) = routine_here {
                diff = match kind {
                    RoutineKind::StandingItem => amount,
                    // IHub holds yesterday's GL balance: the difference is today's posting.
                    RoutineKind::HabitualLag => change,
                    RoutineKind::MonthEndAccrual if month_end[d] => {
                        let z: f64 = rrng.sample(StandardNormal);
                        ((amount as f64) * (1.0 + 0.03 * z)).round() as i64
                    }
                    RoutineKind::MonthEndAccrual => 0,
                };
                if diff != 0 {
                    summary.routine_break_rows += 1;
                    if rrng.r#gen::<f64>() < 0.15 {
                        let list = routine_comments(kind);
                        routine_comment = Some(list[rrng.gen_range(0..list.len())]);
                    }
                }
            } else if let Some(ep) = st.ep.as_mut() {
                if ep.day == 0 {
                    match ep.kind {
                        BreakKind::Timing => ep.amount = change,
                        BreakKind::DuplicateEntry => ep.amount = -change,
                        _ => {}
                    }
                }
                diff = match ep.kind {
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
                label = Some(ep.kind);
                ep.day += 1;
                if ep.day >= ep.len {
                    st.ep = None;
                    st.cooldown = true;
                }
            }
            let ihub = gl.saturating_sub(diff);
            let comment: Option<&str> = match label {
                Some(kind) => {
                    if rng.r#gen::<f64>() < 0.3 {
                        let list = if rng.gen_bool(0.5) {
                            gl_kind_comments(kind)
                        } else {
                            GL_GENERIC_COMMENTS
                        };
                        Some(list[rng.gen_range(0..list.len())])
                    } else {
                        None
                    }
                }
                None if routine_comment.is_some() => routine_comment,
                None if resolved_today && rng.r#gen::<f64>() < 0.1 => Some("Cleared"),
                None => None,
            };

            // ---- emit ----
            line.clear();
            let is_p = messy && (d, g) == p_row;
            let is_q = messy && Some((d, g)) == q_row;
            if is_p {
                line.extend_from_slice(PLACEHOLDER_DATE.as_bytes());
            } else if is_q {
                line.extend_from_slice(day.serial.as_bytes());
            } else if messy {
                line.extend_from_slice(day.get(pick_date_fmt(&mut mrng)).as_bytes());
            } else {
                line.extend_from_slice(day.iso.as_bytes());
            }
            line.push(b',');
            line.extend_from_slice(&grp.head);
            if !(messy && mrng.r#gen::<f64>() < 0.03) {
                line.extend_from_slice(&grp.secondary);
            }
            line.push(b',');
            let noisy =
                |mrng: &mut ChaCha8Rng, force: bool| messy && (force || mrng.r#gen::<f64>() < 0.02);
            if noisy(&mut mrng, is_q) {
                push_noisy(&mut line, gl, 2, 2);
            } else {
                push_cents(&mut line, gl);
            }
            line.push(b',');
            if noisy(&mut mrng, false) {
                push_noisy(&mut line, ihub, 2, 2);
            } else {
                push_cents(&mut line, ihub);
            }
            line.push(b',');
            let mut shown_diff = diff;
            if messy && (is_q || (!is_p && mrng.r#gen::<f64>() < 0.002)) {
                // A stale Balance Difference, as if computed before today's posting.
                let delta = if change != 0 {
                    -change
                } else {
                    let m = (st.scale as i64).max(2);
                    let v = mrng.gen_range(1..m);
                    if mrng.gen_bool(0.5) { v } else { -v }
                };
                shown_diff = diff.saturating_add(delta);
            }
            if noisy(&mut mrng, is_q) {
                push_noisy(&mut line, shown_diff, 2, 2);
            } else {
                push_cents(&mut line, shown_diff);
            }
            line.push(b',');
            line.extend_from_slice(if diff != 0 { b"Break" } else { b"Match" });
            line.push(b',');
            if let Some(c) = comment {
                let wrap = wrapper.pick(&mut mrng);
                push_comment(&mut line, c, wrap);
            }
            line.push(b'\n');
            w.write_all(&line).context("writing generated CSV")?;

            if let Some(kind) = label {
                summary.labelled_rows += 1;
                *summary.by_kind.entry(kind.as_str()).or_insert(0) += 1;
                if let Some(l) = labels.as_mut() {
                    lab_line.clear();
                    push_u64(&mut lab_line, row_no);
                    lab_line.push(b',');
                    lab_line.extend_from_slice(kind.as_str().as_bytes());
                    lab_line.push(b',');
                    push_field(&mut lab_line, &grp.key);
                    lab_line.push(b'\n');
                    l.write_all(&lab_line).context("writing labels CSV")?;
                }
            }
        }
    }
    summary.rows = n_days * n_groups;
    Ok(summary)
}

// ---------------------------------------------------------------------------
// trades profile
// ---------------------------------------------------------------------------

struct DeskDef {
    name: &'static str,
    book_a: &'static str,
    book_b: &'static str,
    /// Price tolerance in micros (1e-6).
    price_tol: i64,
    /// Mortgage desk: factor below 1 (original face differs from current face).
    mbs: bool,
    /// Quantity lot size.
    lot: i64,
    /// Price tick in micros.
    tick: i64,
    /// London desk: some non-USD trades.
    ldn: bool,
    weight: f64,
}

const DESKS: &[DeskDef] = &[
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

const COUNTERPARTIES: &[(&str, &str)] = &[
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

const TRADERS: &[(&str, &str)] = &[
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

const STRATEGIES: &[&str] = &["FLOW", "HEDGE", "RV", "CLIENT", "INVENTORY", "MATCHED-BOOK"];
const ENTITIES: &[(&str, f64)] = &[
    ("00000", 0.45),
    ("00100", 0.20),
    ("01200", 0.15),
    ("03400", 0.10),
    ("05100", 0.10),
];
const TRADE_CCYS: &[&str] = &["USD", "GBP", "EUR"];
const STATUS_A: &[&str] = &["VERIFIED", "NEW", "AMENDED"];
const STATUS_B: &[&str] = &["ACTIVE", "PENDING", "AMENDED"];

/// Ordinary (unlabelled) low-risk break types.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Ordinary {
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

#[derive(Clone, Copy, PartialEq, Eq)]
enum Cat {
    Ord(Ordinary),
    Anom(BreakKind),
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Both,
    AOnly,
    BOnly,
}

struct Trade {
    id: u64,
    desk: u8,
    cusip: u32,
    entity: u8,
    ccy: u8,
    cpty: u8,
    trader: u8,
    strategy: u8,
    book: u8,
    status_a: u8,
    status_b: u8,
    ver_a: u32,
    ver_b: u32,
    account: u32,
    sys_a_id: u64,
    sys_b_id: u64,
    /// Entry time of day, seconds.
    ts_a: u32,
    ts_b: u32,
    buy: bool,
    buy_b: bool,
    qa: i64,
    qb: i64,
    /// Prices in micros.
    pa: i64,
    pb: i64,
    /// MBS pool factor in micros (1_000_000 elsewhere).
    factor: i64,
    qty_tol: i64,
    /// Business-day offset of TRADE_DATE (relative to the first RECONDATE).
    trade_off: i64,
    settle_empty: bool,
    /// Offset of the first break day (negative for breaks already open on day 0).
    first_day: i64,
    len: u32,
    cat: Cat,
    side: Side,
    /// Drift / stale step in micros (signed).
    step: i64,
    comment: Option<&'static str>,
    comment_from: i64,
}

/// Business days before the first RECONDATE kept for trade dates.
const TRADE_BACK_DAYS: usize = 16;

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

struct TradeCtx {
    desk_dist: WeightedIndex<f64>,
    entity_dist: WeightedIndex<f64>,
    ord_dist: WeightedIndex<f64>,
    /// CUSIP pools: general and mortgage.
    cusips: Vec<[u8; 9]>,
    mbs_cusips: Vec<[u8; 9]>,
    p_anom: f64,
}

fn new_trade(rng: &mut ChaCha8Rng, ctx: &TradeCtx, id: u64, day: i64, warm: bool) -> Trade {
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
    let desk_i = ctx.desk_dist.sample(rng);
    let desk = &DESKS[desk_i];
    let pool = if desk.mbs && !ctx.mbs_cusips.is_empty() {
        &ctx.mbs_cusips
    } else {
        &ctx.cusips
    };
    let cusip = rng.gen_range(0..pool.len()) as u32 | if desk.mbs { 1 << 31 } else { 0 };

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
    let mut t = Trade {
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
        trade_off: first_day - lag,
        settle_empty: rng.gen_bool(0.05),
        first_day,
        len,
        cat,
        side: Side::Both,
        step: 0,
        comment: None,
        comment_from: 0,
    };
    let sign = if rng.gen_bool(0.5) { 1 } else { -1 };
    let tol = desk.price_tol;
    match cat {
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
    let (p_comment, list) = match cat {
        Cat::Ord(o) => (0.55, ordinary_comments(o)),
        Cat::Anom(k) => (0.3, anomaly_comments(k)),
    };
    if rng.r#gen::<f64>() < p_comment {
        t.comment = Some(list[rng.gen_range(0..list.len())]);
        t.comment_from = first_day + if len > 1 && rng.gen_bool(0.4) { 1 } else { 0 };
    }
    t
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

fn push_ts(line: &mut Vec<u8>, day: &DayFmt, secs: u32) {
    line.extend_from_slice(day.iso.as_bytes());
    line.push(b' ');
    push_padded(line, (secs / 3600) as u64, 2);
    line.push(b':');
    push_padded(line, (secs / 60 % 60) as u64, 2);
    line.push(b':');
    push_padded(line, (secs % 60) as u64, 2);
}

fn gen_trades(
    opts: &GenerateOptions,
    w: &mut dyn Write,
    mut labels: Option<&mut BufWriter<&mut dyn Write>>,
) -> Result<GenerateSummary> {
    let rows = opts.rows;
    let n_days = trades_days(rows);
    // Trade dates reach back before the window, settle dates beyond it.
    let dates = business_days(opts.start_date, TRADE_BACK_DAYS, n_days + 4)?;
    let day_fmts: Vec<DayFmt> = dates.iter().map(|d| DayFmt::new(*d)).collect();
    let fmt_at = |off: i64| day_at(&day_fmts, off);
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
    let mut mrng = ChaCha8Rng::seed_from_u64(opts.seed ^ MESSY_SALT);
    let messy = opts.messy;
    let forced_row = mrng.gen_range(0..rows);

    let s = (opts.break_rate * 5.0).min(1.0);
    let (e_ord, e_anom) = mean_trade_days();
    let p_anom = if s <= 0.0 {
        0.0
    } else if s >= 1.0 {
        1.0
    } else {
        s * e_ord / (e_anom * (1.0 - s) + s * e_ord)
    };
    let pool_size = (rows / 20).clamp(20, 20_000);
    let ctx = TradeCtx {
        desk_dist: WeightedIndex::new(DESKS.iter().map(|d| d.weight)).context("desk weights")?,
        entity_dist: WeightedIndex::new(ENTITIES.iter().map(|e| e.1)).context("entity weights")?,
        ord_dist: WeightedIndex::new(ORDINARY.iter().map(|o| o.1)).context("break weights")?,
        cusips: (0..pool_size).map(|_| gen_cusip(&mut rng, false)).collect(),
        mbs_cusips: (0..pool_size / 3 + 1)
            .map(|_| gen_cusip(&mut rng, true))
            .collect(),
        p_anom,
    };

    w.write_all(TRADES_HEADER.as_bytes())?;
    w.write_all(b"\n")?;
    if let Some(l) = labels.as_mut() {
        writeln!(l, "{LABELS_HEADER}")?;
    }

    let mut summary = GenerateSummary {
        dates: n_days,
        ..GenerateSummary::default()
    };
    let mut wrapper = CommentWrapper { messy, seen: 0 };
    let mut active: Vec<Trade> = Vec::new();
    let mut next_id: u64 = rng.gen_range(100_000..400_000);
    let mut emitted: usize = 0;
    let mut line: Vec<u8> = Vec::with_capacity(1024);
    let mut lab_line: Vec<u8> = Vec::with_capacity(64);
    let base = rows / n_days;
    let extra = rows % n_days;
    let mut cum_target = 0usize;
    let mut first_trade = true;

    for d in 0..n_days {
        let di = d as i64;
        cum_target += base + usize::from(d < extra);
        active.retain(|t| t.first_day + t.len as i64 > di);
        let want_today = cum_target.saturating_sub(emitted);
        let n_new = want_today.saturating_sub(active.len());
        active
            .try_reserve(n_new)
            .context("rows too large: cannot allocate the trade list")?;
        for _ in 0..n_new {
            next_id += rng.gen_range(1..=3);
            let mut t = new_trade(&mut rng, &ctx, next_id, di, d == 0);
            if first_trade {
                // The main broker-dealer entity is code 00000.
                t.entity = 0;
                first_trade = false;
            }
            if matches!(t.cat, Cat::Anom(_)) {
                summary.episodes += 1;
            }
            summary.groups += 1;
            active.push(t);
        }
        let recon = fmt_at(di);
        for t in active.iter_mut() {
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
            let desk = &DESKS[t.desk as usize];
            let is_forced = messy && emitted == forced_row;
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
            let date_fmt = |mrng: &mut ChaCha8Rng| {
                if messy { pick_date_fmt(mrng) } else { FMT_ISO }
            };
            let noisy =
                |mrng: &mut ChaCha8Rng, force: bool| messy && (force || mrng.r#gen::<f64>() < 0.02);

            line.clear();
            line.push(b'T');
            push_padded(&mut line, t.id, 7);
            line.push(b',');
            line.extend_from_slice(desk.name.as_bytes());
            line.push(b',');
            line.extend_from_slice(status.as_bytes());
            line.push(b',');
            let f = if is_forced {
                FMT_SERIAL
            } else {
                date_fmt(&mut mrng)
            };
            line.extend_from_slice(recon.get(f).as_bytes());
            line.push(b',');
            let f = date_fmt(&mut mrng);
            line.extend_from_slice(fmt_at(t.trade_off).get(f).as_bytes());
            line.push(b',');
            let placeholder = messy && (is_forced || mrng.r#gen::<f64>() < 0.02);
            if placeholder {
                line.extend_from_slice(PLACEHOLDER_DATE.as_bytes());
            } else if !t.settle_empty {
                let f = date_fmt(&mut mrng);
                line.extend_from_slice(fmt_at(t.trade_off + 2).get(f).as_bytes());
            }
            line.push(b',');
            let main_buy = if has_a { t.buy } else { t.buy_b };
            line.extend_from_slice(if main_buy { b"BUY" } else { b"SELL" });
            line.push(b',');
            let pool = if t.cusip & (1 << 31) != 0 {
                &ctx.mbs_cusips
            } else {
                &ctx.cusips
            };
            let cusip = &pool[(t.cusip & !(1 << 31)) as usize % pool.len()];
            line.extend_from_slice(cusip);
            line.push(b',');
            let (main_q, main_p) = if has_a { (t.qa, t.pa) } else { (t.qb, t.pb) };
            if noisy(&mut mrng, false) {
                push_noisy(&mut line, main_q, 0, 0);
            } else {
                push_i64(&mut line, main_q);
            }
            line.push(b',');
            if noisy(&mut mrng, is_forced) {
                push_noisy(&mut line, main_p, 6, 2);
            } else {
                push_fixed(&mut line, main_p, 6, 2);
            }
            line.push(b',');
            push_i64(&mut line, qd);
            line.push(b',');
            if has_a && has_b {
                let pd = t.pa - t.pb;
                if pd != 0 && noisy(&mut mrng, false) {
                    push_noisy(&mut line, pd, 6, 1);
                } else {
                    push_fixed(&mut line, pd, 6, 1);
                }
            }
            line.push(b',');
            let ofd_cents = ((qd as f64) * 1e6 / t.factor as f64 * 100.0).round() as i64;
            push_cents(&mut line, ofd_cents);
            line.push(b',');
            push_fixed(&mut line, desk.price_tol, 6, 1);
            line.push(b',');
            push_i64(&mut line, t.qty_tol);
            line.push(b',');
            if let Some(c) = t.comment.filter(|_| di >= t.comment_from) {
                let wrap = wrapper.pick(&mut mrng);
                push_comment(&mut line, c, wrap);
            }
            // ---- per-system columns ----
            for sys in 0..2 {
                line.push(b',');
                let present = if sys == 0 { has_a } else { has_b };
                if !present {
                    line.extend_from_slice(&[b','; 13]);
                    continue;
                }
                let blank = |mrng: &mut ChaCha8Rng| messy && mrng.r#gen::<f64>() < 0.02;
                let (cpty_full, cpty_short) = COUNTERPARTIES[t.cpty as usize];
                let (login, empid) = TRADERS[t.trader as usize];
                // TRADEID
                if sys == 0 {
                    line.extend_from_slice(b"SA");
                    push_u64(&mut line, t.sys_a_id);
                } else {
                    line.extend_from_slice(b"B-");
                    push_padded(&mut line, t.sys_b_id, 7);
                }
                line.push(b',');
                // BOOK
                if !blank(&mut mrng) {
                    if sys == 0 {
                        line.extend_from_slice(desk.book_a.as_bytes());
                        push_padded(&mut line, t.book as u64, 2);
                    } else {
                        line.extend_from_slice(desk.book_b.as_bytes());
                        push_u64(&mut line, t.book as u64);
                    }
                }
                line.push(b',');
                // TRADER
                if !blank(&mut mrng) {
                    line.extend_from_slice(if sys == 0 { login } else { empid }.as_bytes());
                }
                line.push(b',');
                // COUNTERPARTY
                push_field(&mut line, if sys == 0 { cpty_full } else { cpty_short });
                line.push(b',');
                // ENTITY
                line.extend_from_slice(ENTITIES[t.entity as usize].0.as_bytes());
                line.push(b',');
                // BUY_SELL
                let b = if sys == 0 { t.buy } else { t.buy_b };
                line.extend_from_slice(if b { b"BUY" } else { b"SELL" });
                line.push(b',');
                // QUANTITY
                let q = if sys == 0 { t.qa } else { t.qb };
                if noisy(&mut mrng, false) {
                    push_noisy(&mut line, q, 0, 0);
                } else {
                    push_i64(&mut line, q);
                }
                line.push(b',');
                // PRICE
                let p = if sys == 0 { t.pa } else { t.pb };
                if noisy(&mut mrng, false) {
                    push_noisy(&mut line, p, 6, 2);
                } else {
                    push_fixed(&mut line, p, 6, 2);
                }
                line.push(b',');
                // CCY
                line.extend_from_slice(TRADE_CCYS[t.ccy as usize].as_bytes());
                line.push(b',');
                // STATUS
                let st = if sys == 0 {
                    STATUS_A[t.status_a as usize % STATUS_A.len()]
                } else {
                    STATUS_B[t.status_b as usize % STATUS_B.len()]
                };
                line.extend_from_slice(st.as_bytes());
                line.push(b',');
                // ENTRY_TS
                let (ts_day, secs) = if sys == 0 {
                    (t.trade_off, t.ts_a)
                } else {
                    (t.trade_off, t.ts_b)
                };
                push_ts(&mut line, fmt_at(ts_day), secs);
                line.push(b',');
                // ACCOUNT: zero-padded text in SYSA, bare number in SYSB.
                if !blank(&mut mrng) {
                    if sys == 0 {
                        push_padded(&mut line, t.account as u64, 8);
                    } else {
                        push_u64(&mut line, t.account as u64);
                    }
                }
                line.push(b',');
                // STRATEGY
                if !blank(&mut mrng) {
                    line.extend_from_slice(STRATEGIES[t.strategy as usize].as_bytes());
                }
                line.push(b',');
                // VERSION
                push_u64(&mut line, if sys == 0 { t.ver_a } else { t.ver_b } as u64);
            }
            line.push(b'\n');
            w.write_all(&line).context("writing generated CSV")?;
            emitted += 1;

            if let Cat::Anom(kind) = t.cat {
                summary.labelled_rows += 1;
                *summary.by_kind.entry(kind.as_str()).or_insert(0) += 1;
                if let Some(l) = labels.as_mut() {
                    lab_line.clear();
                    push_u64(&mut lab_line, emitted as u64 + 1);
                    lab_line.push(b',');
                    lab_line.extend_from_slice(kind.as_str().as_bytes());
                    lab_line.extend_from_slice(b",T");
                    push_padded(&mut lab_line, t.id, 7);
                    lab_line.push(b'\n');
                    l.write_all(&lab_line).context("writing labels CSV")?;
                }
            }
        }
    }
    summary.rows = emitted;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeSet, HashMap};

    /// Options without routine accounts: every unlabelled row matches.
    fn opts(profile: GenProfile, rows: usize, seed: u64, messy: bool) -> GenerateOptions {
        GenerateOptions {
            profile,
            rows,
            seed,
            messy,
            routine_share: 0.0,
            ..GenerateOptions::default()
        }
    }

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

    fn run(o: &GenerateOptions) -> (String, String, GenerateSummary) {
        let mut out: Vec<u8> = Vec::new();
        let mut lab: Vec<u8> = Vec::new();
        let s = generate(o, &mut out, Some(&mut lab)).expect("generate");
        (
            String::from_utf8(out).expect("utf8 data"),
            String::from_utf8(lab).expect("utf8 labels"),
            s,
        )
    }

    /// Minimal RFC 4180 line splitter (no embedded newlines in generated files).
    fn split_csv(line: &str) -> Vec<String> {
        let mut fields = Vec::new();
        let mut cur = String::new();
        let mut in_q = false;
        let mut chars = line.chars().peekable();
        while let Some(c) = chars.next() {
            match (c, in_q) {
                ('"', true) if chars.peek() == Some(&'"') => {
                    cur.push('"');
                    chars.next();
                }
                ('"', true) => in_q = false,
                ('"', false) if cur.is_empty() => in_q = true,
                (',', false) => fields.push(std::mem::take(&mut cur)),
                _ => cur.push(c),
            }
        }
        fields.push(cur);
        fields
    }

    fn rows_of(csv: &str) -> (Vec<String>, Vec<Vec<String>>) {
        let mut lines = csv.lines();
        let header = split_csv(lines.next().expect("header"));
        let rows: Vec<Vec<String>> = lines.map(split_csv).collect();
        for r in &rows {
            assert_eq!(r.len(), header.len(), "field count in {r:?}");
        }
        (header, rows)
    }

    /// Parse an amount the way an ingest would: round to 6 decimals, then to `scale`.
    fn units(s: &str, scale: i32) -> i64 {
        let v: f64 = s.parse().unwrap_or_else(|_| panic!("number {s:?}"));
        let v6 = (v * 1e6).round() / 1e6;
        (v6 * 10f64.powi(scale)).round() as i64
    }

    fn parse_date(s: &str) -> Option<NaiveDate> {
        if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
            return Some(d);
        }
        if let Ok(d) = NaiveDate::parse_from_str(s, "%m/%d/%Y") {
            return Some(d);
        }
        if let Ok(d) = NaiveDate::parse_from_str(s, "%m-%d-%Y") {
            return Some(d);
        }
        let n: i64 = s.parse().ok()?;
        NaiveDate::from_ymd_opt(1899, 12, 30)?.checked_add_signed(chrono::Duration::days(n))
    }

    /// Labels as row number -> (kind, group).
    fn labels_of(lab: &str) -> BTreeMap<usize, (String, String)> {
        let mut lines = lab.lines();
        assert_eq!(lines.next(), Some(LABELS_HEADER));
        let mut m = BTreeMap::new();
        let mut last = 0;
        for l in lines {
            let f = split_csv(l);
            assert_eq!(f.len(), 3, "{l}");
            let row: usize = f[0].parse().expect("row number");
            assert!(row > last, "labels sorted and unique");
            last = row;
            assert!(f[1].parse::<BreakKind>().is_ok(), "kind {}", f[1]);
            m.insert(row, (f[1].clone(), f[2].clone()));
        }
        m
    }

    fn has_long_decimals(csv: &str) -> bool {
        csv.split([',', '\n'])
            .any(|f| f.parse::<f64>().is_ok() && f.find('.').is_some_and(|p| f.len() - p > 10))
    }

    #[test]
    fn profile_and_kind_names() {
        assert_eq!(
            "gl_ihub".parse::<GenProfile>().ok(),
            Some(GenProfile::GlIhub)
        );
        assert_eq!(
            "trades".parse::<GenProfile>().ok(),
            Some(GenProfile::Trades)
        );
        assert_eq!(
            " GL-IHUB ".parse::<GenProfile>().ok(),
            Some(GenProfile::GlIhub)
        );
        let err = "ledger".parse::<GenProfile>().unwrap_err().to_string();
        assert!(err.contains("gl_ihub") && err.contains("trades"), "{err}");
        let names: BTreeSet<&str> = BreakKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(names.len(), 9);
        for k in BreakKind::ALL {
            assert_eq!(k.as_str().parse::<BreakKind>().ok(), Some(k));
        }
        assert!("nope".parse::<BreakKind>().is_err());
    }

    #[test]
    fn bad_parameters_are_errors() {
        for p in GenProfile::ALL {
            let mut out = Vec::new();
            let err = generate(&opts(p, 0, 1, false), &mut out, None).unwrap_err();
            assert!(err.to_string().contains("rows"), "{err}");
            for r in [f64::NAN, -0.1, 1.5, f64::INFINITY] {
                let o = GenerateOptions {
                    break_rate: r,
                    ..opts(p, 100, 1, false)
                };
                assert!(generate(&o, &mut Vec::new(), None).is_err());
            }
            let o = opts(p, MAX_ROWS + 1, 1, false);
            assert!(generate(&o, &mut Vec::new(), None).is_err());
        }
    }

    #[test]
    fn reproducible_and_seed_sensitive() {
        for p in GenProfile::ALL {
            for messy in [false, true] {
                let a = run(&opts(p, 3000, 7, messy));
                let b = run(&opts(p, 3000, 7, messy));
                assert_eq!(a.0, b.0, "{p} messy={messy}");
                assert_eq!(a.1, b.1, "{p} messy={messy}");
                let c = run(&opts(p, 3000, 8, messy));
                assert_ne!(a.0, c.0, "{p} messy={messy}");
            }
        }
    }

    #[test]
    fn headers_exact() {
        let (csv, _, _) = run(&opts(GenProfile::GlIhub, 50, 1, false));
        assert_eq!(
            csv.lines().next(),
            Some(
                "As of Date,Company,Account,AU,Currency,Primary Account,Secondary Account,GL Balance,IHub Balance,Balance Difference,Match Status,Comments"
            )
        );
        let (csv, _, _) = run(&opts(GenProfile::Trades, 50, 1, false));
        let header = split_csv(csv.lines().next().unwrap_or_default());
        assert_eq!(
            header[..16].join(","),
            "TRADEID,DESKNAME,MatchStatus,RECONDATE,TRADE_DATE,SETTLE DATE,BUY_SELL,CUSIP,QUANTITY,PRICE,QUANTITYDIFFERENCE,PRICE DIFFERENCE,ORIGINAL FACE DIFFERENCE,PRICE TOLERANCE,QUANTITY TOLERANCE,COMMENT"
        );
        assert!(header.len() - 16 >= 24);
        for sys in ["SYSA", "SYSB"] {
            for col in [
                "TRADEID",
                "BOOK",
                "TRADER",
                "COUNTERPARTY",
                "QUANTITY",
                "PRICE",
                "CCY",
                "STATUS",
                "ENTRY_TS",
                "ACCOUNT",
                "STRATEGY",
                "VERSION",
            ] {
                let name = format!("{sys}_{col}");
                assert!(header.contains(&name), "missing {name}");
            }
        }
    }

    #[test]
    fn row_counts_close_to_requested() {
        for p in GenProfile::ALL {
            for rows in [
                1usize, 2, 7, 25, 37, 199, 200, 999, 1000, 4321, 12345, 20000,
            ] {
                let (csv, lab, s) = run(&opts(p, rows, 3, false));
                let n = csv.lines().count() - 1;
                assert_eq!(n, s.rows, "{p} {rows}");
                assert_eq!(lab.lines().count() - 1, s.labelled_rows);
                let tol = (rows / 100).max(5);
                assert!(n.abs_diff(rows) <= tol, "{p}: asked {rows}, got {n}");
                assert_eq!(s.by_kind.values().sum::<usize>(), s.labelled_rows);
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

    #[test]
    fn helpers() {
        let d = NaiveDate::from_ymd_opt(2024, 4, 30).expect("date");
        assert_eq!(excel_serial(d), 45412);
        let f = DayFmt::new(NaiveDate::from_ymd_opt(2025, 2, 6).expect("date"));
        assert_eq!(f.iso, "2025-02-06");
        assert_eq!(f.mdy, "2/6/2025");
        assert_eq!(f.dash, "02-06-2025");
        let mut b = Vec::new();
        push_field(&mut b, "a,\"b\"");
        assert_eq!(b, b"\"a,\"\"b\"\"\"");
        for (v, s) in [
            (0i64, "0.00"),
            (-5, "-0.05"),
            (123_456, "1234.56"),
            (-100, "-1.00"),
        ] {
            let mut b = Vec::new();
            push_cents(&mut b, v);
            assert_eq!(String::from_utf8(b).expect("utf8"), s);
        }
        let mut b = Vec::new();
        push_fixed(&mut b, 101_500_000, 6, 2);
        assert_eq!(b, b"101.50");
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for _ in 0..20_000 {
            let v: i64 = rng.gen_range(-50_000_000_000..50_000_000_000);
            for (scale, min_dec) in [(2u32, 2u32), (6, 2), (0, 0)] {
                let mut b = Vec::new();
                push_noisy(&mut b, v, scale, min_dec);
                let s = String::from_utf8(b).expect("utf8");
                assert_eq!(units(&s, scale as i32), v, "{s}");
            }
        }
        // Weekend start rolls forward to Monday.
        let sat = NaiveDate::from_ymd_opt(2024, 1, 6).expect("date");
        let days = business_days(sat, 2, 3).expect("days");
        assert_eq!(days[2], NaiveDate::from_ymd_opt(2024, 1, 8).expect("date"));
        assert_eq!(days[1], NaiveDate::from_ymd_opt(2024, 1, 5).expect("date"));
        assert!(days.iter().all(|d| is_business_day(*d)));
    }
}
