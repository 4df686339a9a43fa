//! Typing a raw table through a resolved profile: canonical `bd_*` columns beside the original
//! ones, a rejects report for rows that cannot be used, and data-quality findings for rows that
//! can be used but carry a problem (e.g. a given difference that disagrees with LHS − RHS).
//!
//! Canonical columns (names fixed, whatever the file calls them):
//! - `bd_row`: the record's row number as a spreadsheet shows it (header = 1).
//! - `bd_key`: the key values joined with `|` (zero padding kept).
//! - `bd_date`: the record date.
//! - `bd_<criteria>_lhs`, `bd_<criteria>_rhs`: the two sides (pairs only).
//! - `bd_<criteria>_diff`: lhs − rhs (pairs) or the difference column.
//! - `bd_<criteria>_given`: the given difference of a pair, when the file has one.
//! - `bd_<criteria>_tol`: the tolerance: max(abs, rel·max(|lhs|,|rhs|), tolerance column).
//! - `bd_difference`, `bd_within_tolerance`: the first criteria's difference and its check.
//! - `bd_break`: the status says break (or, without a status column, the difference is out of tolerance).
//! - `bd_comment`: the comment without wrappers.
//! - `bd_cat_<name>`: categorical values; `bd_num_<name>`: extra numeric features;
//!   `bd_date_<name>`: extra dates; `bd_trade_date`: the date a break's age counts from.
//! - `bd_dq`: data-quality findings of the row, `; `-separated (empty when none).

mod cells;
mod decimal;
mod steps;

use super::clean::{DateOptions, Decimal};
use super::{IngestError, RawTable};
use crate::profile::Resolved;
pub(crate) use cells::date_column;
use polars::prelude::*;
use steps::Build;

/// One rejected cell: the row is left out of the run.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Reject {
    pub source: String,
    /// The record's row as a spreadsheet shows it (header = 1); for a CSV file, its line.
    pub row: u32,
    pub column: String,
    pub value: String,
    pub reason: String,
    /// Workbooks: the sheet and cell (`Sheet1!F3`).
    pub cell: Option<String>,
}

/// The decimal separator a file's amounts were read with, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct DecimalChoice {
    pub decimal: Decimal,
    pub how: DecimalSource,
}

#[derive(Debug, Clone, PartialEq)]
pub enum DecimalSource {
    /// `[ingest] decimal` says so.
    Setting,
    /// Detected: these amount columns read only this way.
    Detected(Vec<String>),
    /// No amount reads differently either way.
    NoEvidence,
}

impl DecimalChoice {
    /// For the run summary: `decimal comma (1.234,56), detected from GL Balance, IHub Balance`.
    pub fn describe(&self) -> String {
        let how = match &self.how {
            DecimalSource::Setting => "set by [ingest] decimal".to_string(),
            DecimalSource::Detected(cols) => format!("detected from {}", cols.join(", ")),
            DecimalSource::NoEvidence => "no amount reads differently either way".to_string(),
        };
        format!("{}, {how}", self.decimal.describe())
    }
}

/// How a file's cells are typed through its profile (`[ingest]`, parsed).
#[derive(Debug, Clone, PartialEq)]
pub struct PrepareOptions {
    /// Amounts are rounded to this many decimals (float noise removed).
    pub decimals: u32,
    pub dates: DateOptions,
    /// A file's own difference column may differ from the one computed by this much.
    pub mismatch_tolerance: f64,
    /// Key slots (positions in the profile's keys + optional keys) to build `bd_key` from;
    /// None = every key the file has. Used to align a history file with the current one.
    pub key_slots: Option<Vec<usize>>,
    /// `[ingest] decimal`: None = detected per file.
    pub decimal: Option<Decimal>,
}

impl Default for PrepareOptions {
    /// As `config/default.toml` sets `[ingest]`.
    fn default() -> Self {
        PrepareOptions {
            decimals: 6,
            dates: DateOptions::default(),
            mismatch_tolerance: 0.005,
            key_slots: None,
            decimal: None,
        }
    }
}

/// A typed table: original columns plus canonical ones, rejected rows removed.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub df: DataFrame,
    pub resolved: Resolved,
    pub rejects: Vec<Reject>,
    pub total_rows: usize,
    pub rejected_rows: usize,
    pub dq_rows: usize,
    pub source: String,
    /// Generic profile: the numeric columns chosen (headers).
    pub numeric_columns: Vec<String>,
    /// Blank lines (or rows with every cell empty) skipped while reading.
    pub blank_rows: usize,
    pub decimal: DecimalChoice,
}

pub fn crit_col(criteria: &str, part: &str) -> String {
    format!("bd_{criteria}_{part}")
}
/// Types `raw` through `resolved`.
pub fn prepare(
    raw: &RawTable,
    resolved: &Resolved,
    opts: &PrepareOptions,
) -> Result<Prepared, IngestError> {
    let b = Build::new(raw, resolved, opts)?;
    // Two groups of steps at once, each step on its own columns and outcomes, put together in
    // the order of the steps (which is the order of the columns, the rejects and the findings).
    let (text, numbers) = rayon::join(
        || -> Result<_, IngestError> {
            let (mut ids, mut texts) = (b.step(), b.step());
            b.keys(&mut ids)?;
            b.date(&mut ids)?;
            b.comment(&mut texts)?;
            b.categoricals(&mut texts)?;
            Ok((ids, texts))
        },
        || -> Result<_, IngestError> {
            let (mut amounts, mut others) = (b.step(), b.step());
            let within = b.criteria(&mut amounts)?;
            b.status(&mut amounts, within.as_deref())?;
            let numeric = b.numeric(&mut others)?;
            b.extra_dates(&mut others)?;
            Ok((amounts, others, numeric))
        },
    );
    let (ids, texts) = text?;
    let (amounts, others, numeric) = numbers?;
    b.finish(vec![ids, amounts, texts, others], numeric)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::ROW_COL;
    use crate::ingest::clean;
    use crate::profile::Profile;
    use std::collections::HashMap;

    fn raw(header: &[&str], rows: &[&[&str]]) -> RawTable {
        let mut cols = vec![Column::new(
            ROW_COL.into(),
            (0..rows.len()).map(|i| i as u32 + 2).collect::<Vec<u32>>(),
        )];
        for (j, h) in header.iter().enumerate() {
            let v: Vec<Option<&str>> = rows
                .iter()
                .map(|r| Some(r[j]).filter(|s| !s.is_empty()))
                .collect();
            cols.push(Column::new((*h).into(), v));
        }
        RawTable::new(
            DataFrame::new_infer_height(cols).unwrap(),
            header.iter().map(|s| s.to_string()).collect(),
            "t.csv".into(),
        )
    }

    fn opts() -> PrepareOptions {
        PrepareOptions::default()
    }

    const GL: [&str; 8] = [
        "Asofdate",
        "Company",
        "Account",
        "AU",
        "Match Status",
        "GL Balance",
        "IHub balance",
        "Balance difference",
    ];

    fn prep(rows: &[&[&str]]) -> Prepared {
        let r = raw(&GL, rows);
        let res = Profile::builtin("gl_ihub")
            .unwrap()
            .resolve(&r.header, "t.csv", &[])
            .unwrap();
        prepare(&r, &res, &opts()).unwrap()
    }

    fn f64s(df: &DataFrame, c: &str) -> Vec<f64> {
        df.column(c)
            .unwrap()
            .f64()
            .unwrap()
            .into_no_null_iter()
            .collect()
    }
    fn strs(df: &DataFrame, c: &str) -> Vec<String> {
        df.column(c)
            .unwrap()
            .str()
            .unwrap()
            .iter()
            .map(|s| s.unwrap_or("").to_string())
            .collect()
    }

    #[test]
    fn mixed_dates_noise_and_zero_padded_keys() {
        let p = prep(&[
            &[
                "4/30/2024",
                "00000",
                "1001",
                "0042",
                "Match",
                "20000.009999999998",
                "20000.01",
                "0",
            ],
            &[
                "2024-05-01",
                "00000",
                "1001",
                "0042",
                "Break",
                "100",
                "90",
                "10",
            ],
            &["45414", "00100", "1001", "0042", "Match", "1", "1", ""],
            &[
                "05-03-2024",
                "00100",
                "1001",
                "0042",
                "Match",
                "1",
                "1",
                "0",
            ],
        ]);
        assert_eq!(p.rejected_rows, 0);
        let dates: Vec<i32> =
            p.df.column("bd_date")
                .unwrap()
                .to_physical_repr()
                .i32()
                .unwrap()
                .into_no_null_iter()
                .collect();
        let d = |y, m, dd| clean::ymd_to_days(y, m, dd).unwrap();
        assert_eq!(
            dates,
            vec![d(2024, 4, 30), d(2024, 5, 1), d(2024, 5, 2), d(2024, 5, 3)]
        );
        assert_eq!(strs(&p.df, "bd_key")[0], "00000|1001|0042");
        assert_eq!(
            strs(&p.df, "Company")[0],
            "00000",
            "original column untouched"
        );
        assert_eq!(f64s(&p.df, "bd_balance_lhs")[0], 20000.01);
        assert_eq!(f64s(&p.df, "bd_difference"), vec![0.0, 10.0, 0.0, 0.0]);
        let brk: Vec<bool> =
            p.df.column("bd_break")
                .unwrap()
                .bool()
                .unwrap()
                .iter()
                .map(|v| v.unwrap())
                .collect();
        assert_eq!(brk, vec![false, true, false, false]);
        assert_eq!(p.dq_rows, 0);
    }

    #[test]
    fn disagreeing_difference_is_a_finding_not_a_reject() {
        let p = prep(&[&["2024-05-01", "1", "2", "3", "Break", "100", "90", "12"]]);
        assert_eq!(p.rejected_rows, 0);
        assert_eq!(p.dq_rows, 1);
        assert_eq!(f64s(&p.df, "bd_difference"), vec![10.0], "derived wins");
        assert_eq!(f64s(&p.df, "bd_balance_given"), vec![12.0], "given kept");
        let dq = strs(&p.df, "bd_dq");
        assert!(
            dq[0].contains("Balance difference 12 disagrees"),
            "{}",
            dq[0]
        );
    }

    #[test]
    fn bad_rows_go_to_rejects_with_row_column_value_reason() {
        let p = prep(&[
            &["2024-05-01", "1", "2", "3", "Match", "1", "1", "0"],
            &["1900-01-01", "1", "2", "3", "Match", "1", "1", "0"],
            &["2024-05-02", "1", "2", "3", "Match", "abc", "1", "0"],
            &["someday", "1", "2", "3", "Match", "1", "1", "0"],
            &["2024-05-03", "", "", "", "Match", "1", "1", "0"],
            &["2024-05-04", "1", "2", "3", "Break", "", "5", ""],
        ]);
        assert_eq!(p.total_rows, 6);
        assert_eq!(p.rejected_rows, 4);
        assert_eq!(p.df.height(), 2);
        let by_row: HashMap<u32, &Reject> = p.rejects.iter().map(|r| (r.row, r)).collect();
        assert_eq!(by_row[&3].column, "Asofdate");
        assert!(by_row[&3].reason.contains("placeholder"));
        assert_eq!(by_row[&4].column, "GL Balance");
        assert_eq!(by_row[&4].value, "abc");
        assert_eq!(by_row[&4].reason, "not a number");
        assert_eq!(by_row[&5].value, "someday");
        assert!(by_row[&6].reason.contains("every key column is empty"));
        // In the file's order, whichever check rejected the row (keys are checked before
        // dates and amounts).
        let rows: Vec<u32> = p.rejects.iter().map(|r| r.row).collect();
        assert_eq!(rows, [3, 4, 5, 6]);
        // An empty side is read as 0 and noted.
        assert_eq!(f64s(&p.df, "bd_difference"), vec![0.0, -5.0]);
        assert!(strs(&p.df, "bd_dq")[1].contains("GL Balance empty, read as 0"));
        let kept: Vec<u32> =
            p.df.column(ROW_COL)
                .unwrap()
                .u32()
                .unwrap()
                .into_no_null_iter()
                .collect();
        assert_eq!(kept, vec![2, 7]);
    }

    /// The keys are built on slices of rows on every core: each row's key and each empty-key
    /// reject come out as a row-by-row build gives them, in row order, across the slices.
    #[test]
    fn keys_built_on_every_core_are_those_of_each_row_in_order() {
        let n = 150_000;
        let cells: Vec<[String; 8]> = (0..n)
            .map(|i| {
                let (company, account) = match i % 40_001 {
                    7 => (String::new(), String::new()),
                    8 => (" 1 ".to_string(), String::new()),
                    _ => (format!(" {}", i % 9), format!("{} ", i % 1_000)),
                };
                [
                    "2024-05-01".to_string(),
                    company,
                    account,
                    if i % 40_001 == 7 {
                        String::new()
                    } else {
                        format!("{}", i % 3)
                    },
                    "Match".into(),
                    "1".into(),
                    "1".into(),
                    "0".into(),
                ]
            })
            .collect();
        let rows: Vec<Vec<&str>> = cells
            .iter()
            .map(|r| r.iter().map(String::as_str).collect())
            .collect();
        let rows: Vec<&[&str]> = rows.iter().map(Vec::as_slice).collect();
        let p = prep(&rows);
        let bad: Vec<usize> = (0..n).filter(|i| matches!(i % 40_001, 7 | 8)).collect();
        assert_eq!(bad.len(), 8);
        let got: Vec<(u32, &str, bool)> = p
            .rejects
            .iter()
            .map(|r| {
                (
                    r.row,
                    r.column.as_str(),
                    r.reason.contains("every key column is empty"),
                )
            })
            .collect();
        let want: Vec<(u32, &str, bool)> = bad
            .iter()
            .map(|&i| {
                let row = i as u32 + 2;
                if i % 40_001 == 7 {
                    (row, "Company+Account+AU", true)
                } else {
                    (row, "Account", false)
                }
            })
            .collect();
        assert_eq!(got, want);
        let keys = strs(&p.df, "bd_key");
        assert_eq!(keys.len(), n - bad.len());
        let kept: Vec<usize> = (0..n).filter(|i| !bad.contains(i)).collect();
        for (k, i) in keys.iter().zip(&kept) {
            assert_eq!(k, &format!("{}|{}|{}", i % 9, i % 1_000, i % 3), "row {i}");
        }
    }

    #[test]
    fn trades_tolerance_columns_and_extra_dates() {
        let header = [
            "TRADEID",
            "MatchStatus",
            "RECONDATE",
            "TRADE_DATE",
            "SETTLE DATE",
            "QUANTITY",
            "PRICE",
            "QUANTITYDIFFERENCE",
            "PRICE DIFFERENCE",
            "PRICE TOLERANCE",
            "QUANTITY TOLERANCE",
            "COMMENT",
            "SYSA_BOOK",
        ];
        let r = raw(
            &header,
            &[
                &[
                    "T1",
                    "Price_Break",
                    "2024-05-02",
                    "4/30/2024",
                    "1900-01-01",
                    "1000",
                    "99.5",
                    "",
                    "0.004",
                    "0.01",
                    "0",
                    "[{\"factor rounding\"}]",
                    "BK1",
                ],
                &[
                    "T2",
                    "SYSA_Only",
                    "2024-05-02",
                    "2024-05-01",
                    "2024-05-03",
                    "500",
                    "101",
                    "500",
                    "",
                    "0.01",
                    "1",
                    "",
                    "",
                ],
            ],
        );
        let res = Profile::builtin("trades")
            .unwrap()
            .resolve(&r.header, "t.csv", &[])
            .unwrap();
        assert_eq!(
            res.criteria.len(),
            2,
            "ORIGINAL FACE DIFFERENCE is optional"
        );
        let p = prepare(&r, &res, &opts()).unwrap();
        assert_eq!(p.rejected_rows, 0);
        assert_eq!(f64s(&p.df, "bd_price_tol"), vec![0.01, 0.01]);
        assert_eq!(f64s(&p.df, "bd_quantity_diff"), vec![0.0, 500.0]);
        assert_eq!(f64s(&p.df, "bd_difference"), vec![0.0, 500.0]);
        assert_eq!(strs(&p.df, "bd_comment")[0], "factor rounding");
        let settle = p.df.column("bd_date_settle_date").unwrap();
        assert_eq!(
            settle.null_count(),
            1,
            "placeholder settle date read as missing"
        );
        assert!(p.df.column("bd_trade_date").is_ok());
        assert_eq!(strs(&p.df, "SYSA_BOOK"), vec!["BK1", ""], "carried through");
    }

    #[test]
    fn generic_detects_numeric_columns() {
        let r = raw(
            &["id", "x", "y", "label"],
            &[
                &["a", "1", "2.5", "n"],
                &["b", "3", "", "y"],
                &["c", "1e3", "4", "n"],
            ],
        );
        let res = Profile::builtin("generic")
            .unwrap()
            .resolve(&r.header, "g.csv", &[])
            .unwrap();
        let p = prepare(&r, &res, &opts()).unwrap();
        assert_eq!(p.numeric_columns, vec!["x", "y"]);
        let roles: Vec<&str> = p.resolved.numeric.iter().map(|r| r.slug.as_str()).collect();
        assert_eq!(
            roles,
            vec!["x", "y"],
            "detected columns become the profile's numeric roles"
        );
        // An empty value in a scored generic column cannot be scored: rejected.
        assert_eq!(p.rejected_rows, 1);
        assert_eq!(f64s(&p.df, "bd_num_x"), vec![1.0, 1000.0]);
    }
}
