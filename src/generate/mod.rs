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

mod calendar;
mod gl_accounts;
mod gl_ihub;
#[cfg(test)]
mod test_support;
mod trade;
mod trades;
mod write;

use std::collections::BTreeMap;
use std::fmt;
use std::io::{BufWriter, Write};
use std::str::FromStr;

use anyhow::{Context, Result, bail};
use chrono::NaiveDate;

use gl_ihub::gen_gl_ihub;
use trades::gen_trades;

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

/// Excel serial number of a date (days since 1899-12-30).
pub fn excel_serial(d: NaiveDate) -> i64 {
    let epoch = NaiveDate::from_ymd_opt(1899, 12, 30).unwrap_or_default();
    (d - epoch).num_days()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::test_support::*;
    use super::*;

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
}
