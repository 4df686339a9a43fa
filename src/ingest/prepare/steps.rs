//! The steps of [`super::prepare`]: the state of one call, and one method per group of columns.

use super::cells::{
    Num, OnEmpty, RowPlace, Rows, date_column, numeric_columns, par_ranges, par_slices,
    parse_amounts, parse_dates, text_col,
};
use super::decimal::{amount_headers, detect_decimal};
use super::{DecimalChoice, DecimalSource, PrepareOptions, Prepared, Reject, crit_col};
use crate::ingest::clean::{self, NumCell};
use crate::ingest::{IngestError, ROW_COL, RawTable};
use crate::profile::{Resolved, ResolvedCriteria, RoleColumn};
use polars::prelude::*;
use std::collections::HashMap;

/// One `prepare` call under way: the raw table and profile, the per-row outcomes, and the
/// canonical columns built so far (in the order they are added to the frame).
pub(super) struct Build<'a> {
    raw: &'a RawTable,
    resolved: &'a Resolved,
    opts: &'a PrepareOptions,
    df: &'a DataFrame,
    n: usize,
    place: RowPlace<'a>,
    decimal: DecimalChoice,
    num: Num,
}

/// A polars error as a data error of `source`.
fn data_err(source: &str) -> impl Fn(PolarsError) -> IngestError + '_ {
    move |e| IngestError::Data {
        file: source.to_string(),
        message: e.to_string(),
    }
}

/// A data error raised without a file name, given `source`'s.
fn with_file(source: &str) -> impl Fn(IngestError) -> IngestError + '_ {
    move |e| match e {
        IngestError::Data { message, .. } => IngestError::Data {
            file: source.to_string(),
            message,
        },
        other => other,
    }
}

/// The columns one step adds (in order) and its rows' outcomes.
pub(super) struct Step<'b> {
    rows: Rows<'b>,
    cols: Vec<Column>,
}

impl<'a> Build<'a> {
    /// An empty step, to run one or more of the steps below in.
    pub(super) fn step(&self) -> Step<'_> {
        Step {
            rows: Rows::new(&self.place),
            cols: Vec::new(),
        }
    }

    /// Row numbers, workbook cell letters and the decimal separator (set, or detected from the
    /// amount columns).
    pub(super) fn new(
        raw: &'a RawTable,
        resolved: &'a Resolved,
        opts: &'a PrepareOptions,
    ) -> Result<Build<'a>, IngestError> {
        let df = &raw.df;
        let n = df.height();
        let data_err = data_err(&raw.source);
        let row_numbers: Vec<u32> = df
            .column(ROW_COL)
            .and_then(|c| c.cast(&DataType::UInt32))
            .map_err(&data_err)?
            .u32()
            .map_err(&data_err)?
            .into_no_null_iter()
            .collect();
        let cells = raw.sheet.as_ref().map(|sh| {
            let letters: HashMap<&str, String> = raw
                .header
                .iter()
                .enumerate()
                .map(|(j, h)| {
                    (
                        h.as_str(),
                        crate::ingest::xlsx::column_letters(sh.first_col + j as u32),
                    )
                })
                .collect();
            (sh.name.as_str(), letters)
        });
        let place = RowPlace {
            source: &raw.source,
            cells,
            row_numbers,
        };

        // The decimal separator: set, or detected from the amount columns.
        let decimal = match opts.decimal {
            Some(d) => DecimalChoice {
                decimal: d,
                how: DecimalSource::Setting,
            },
            None => {
                let mut headers = amount_headers(resolved);
                if resolved.profile.numeric_auto && resolved.numeric.is_empty() {
                    headers = raw.header.iter().map(String::as_str).collect();
                }
                detect_decimal(df, &raw.source, &headers)?
            }
        };
        let num = Num {
            decimals: opts.decimals,
            decimal: decimal.decimal,
        };
        Ok(Build {
            raw,
            resolved,
            opts,
            df,
            n,
            place,
            decimal,
            num,
        })
    }

    /// `bd_key`; rows whose keys are all empty, or whose required keys are empty, are rejected.
    pub(super) fn keys(&self, s: &mut Step<'_>) -> Result<(), IngestError> {
        let (resolved, opts, df, n) = (self.resolved, self.opts, self.df, self.n);
        let keys: Vec<&String> = resolved
            .keys
            .iter()
            .filter(|(slot, _)| opts.key_slots.as_ref().is_none_or(|s| s.contains(slot)))
            .map(|(_, h)| h)
            .collect();
        if !keys.is_empty() {
            let cas: Vec<&StringChunked> = keys
                .iter()
                .map(|h| text_col(df, h))
                .collect::<Result<_, _>>()
                .map_err(with_file(&self.raw.source))?;
            let names: Vec<&str> = keys.iter().map(|k| k.as_str()).collect();
            // Keys the profile requires (optional ones, such as Currency, may be empty).
            let required: Vec<bool> = resolved
                .keys
                .iter()
                .filter(|(slot, _)| opts.key_slots.as_ref().is_none_or(|s| s.contains(slot)))
                .map(|(slot, _)| *slot < resolved.profile.keys.len())
                .collect();
            // Trimmed key values joined with `|`, slices of rows on every core; a row's empty
            // keys are noted as (row, key index), `None` when every key is empty.
            let parts = par_ranges(n, |range| {
                let slices: Vec<StringChunked> = cas
                    .iter()
                    .map(|c| c.slice(range.start as i64, range.len()))
                    .collect();
                let mut iters: Vec<_> = slices.iter().map(|c| c.iter()).collect();
                let mut builder = StringChunkedBuilder::new("bd_key".into(), range.len());
                let mut buf = String::new();
                let mut empty: Vec<(usize, Option<usize>)> = Vec::new();
                let mut empty_required: Vec<usize> = Vec::new();
                for i in range {
                    buf.clear();
                    let mut all_empty = true;
                    empty_required.clear();
                    for (k, it) in iters.iter_mut().enumerate() {
                        let v = it.next().flatten().unwrap_or("").trim();
                        if !v.is_empty() {
                            all_empty = false;
                        } else if required[k] {
                            empty_required.push(k);
                        }
                        if k > 0 {
                            buf.push('|');
                        }
                        buf.push_str(v);
                    }
                    if all_empty {
                        empty.push((i, None));
                    } else {
                        empty.extend(empty_required.iter().map(|&k| (i, Some(k))));
                    }
                    builder.append_value(&buf);
                }
                (builder.finish(), empty)
            });
            let mut column = StringChunked::full_null("bd_key".into(), 0);
            for (ca, empty) in parts {
                column
                    .append_owned(ca)
                    .map_err(data_err(&self.raw.source))?;
                for (i, k) in empty {
                    match k {
                        None => s.rows.reject(
                            i,
                            &names.join("+"),
                            None,
                            "every key column is empty; the record identifies no account".into(),
                        ),
                        Some(k) => s.rows.reject(
                            i,
                            names[k],
                            None,
                            "a key column is empty; the record cannot be matched to its account"
                                .into(),
                        ),
                    }
                }
            }
            s.cols.push(column.rechunk().into_owned().into_column());
        }
        Ok(())
    }

    /// `bd_date`: the record date (required).
    pub(super) fn date(&self, s: &mut Step<'_>) -> Result<(), IngestError> {
        if let Some(h) = &self.resolved.date {
            let d = parse_dates(&mut s.rows, self.df, h, &self.opts.dates, true)
                .map_err(with_file(&self.raw.source))?;
            s.cols.push(date_column("bd_date", d));
        }
        Ok(())
    }

    /// The columns of every criteria, then `bd_difference` and `bd_within_tolerance` from the
    /// first one. Returns the within-tolerance check, for the break flag.
    pub(super) fn criteria(&self, s: &mut Step<'_>) -> Result<Option<Vec<bool>>, IngestError> {
        let resolved = self.resolved;
        let mut primary: Option<(Vec<f64>, Vec<f64>)> = None;
        for c in &resolved.criteria {
            let (diff, tol) = self.criterion(s, c)?;
            if primary.is_none() {
                primary = Some((diff.clone(), tol.clone()));
            }
            s.cols
                .push(Column::new(crit_col(&c.name, "diff").into(), diff));
            s.cols
                .push(Column::new(crit_col(&c.name, "tol").into(), tol));
        }
        let within: Option<Vec<bool>> = primary
            .as_ref()
            .map(|(d, t)| d.iter().zip(t).map(|(d, t)| d.abs() <= *t + 1e-9).collect());
        if let Some((d, _)) = primary {
            s.cols.push(Column::new("bd_difference".into(), d));
        }
        if let Some(w) = &within {
            s.cols
                .push(Column::new("bd_within_tolerance".into(), w.clone()));
        }
        Ok(within)
    }

    /// One criteria's difference and tolerance (a pair's sides and given difference are added
    /// to the columns on the way).
    fn criterion(
        &self,
        s: &mut Step<'_>,
        c: &ResolvedCriteria,
    ) -> Result<(Vec<f64>, Vec<f64>), IngestError> {
        let (df, n, num) = (self.df, self.n, self.num);
        let (diff, scale) = if let (Some(l), Some(r)) = (&c.lhs, &c.rhs) {
            self.pair(s, c, l, r)?
        } else {
            let h = c
                .difference
                .as_ref()
                .expect("resolved criteria has a difference");
            let diff = parse_amounts(&mut s.rows, df, h, num, OnEmpty::Zero)
                .map_err(with_file(&self.raw.source))?;
            (diff, vec![0.0; n])
        };
        let mut tol: Vec<f64> = scale
            .iter()
            .map(|s| c.abs_tolerance.max(c.rel_tolerance * s))
            .collect();
        if let Some(t) = &c.tolerance_column {
            let ca = text_col(df, t).map_err(with_file(&self.raw.source))?;
            for (i, v) in ca.iter().enumerate() {
                match num.parse(v.unwrap_or("")) {
                    NumCell::Value(x) => tol[i] = tol[i].max(x.abs()),
                    NumCell::Empty => {}
                    NumCell::Invalid => s.rows.finding(
                        i,
                        format!(
                            "{t} unreadable ({:?}), profile tolerance used",
                            v.unwrap_or("")
                        ),
                    ),
                }
            }
        }
        Ok((diff, tol))
    }

    /// A pair's difference lhs − rhs (rows where it overflows are rejected) and its scale
    /// max(|lhs|, |rhs|); adds the given difference (checked against it), lhs and rhs columns.
    fn pair(
        &self,
        s: &mut Step<'_>,
        c: &ResolvedCriteria,
        l: &str,
        r: &str,
    ) -> Result<(Vec<f64>, Vec<f64>), IngestError> {
        let (df, n, num, opts) = (self.df, self.n, self.num, self.opts);
        let with_file = with_file(&self.raw.source);
        let rows = &mut s.rows;
        let lhs = parse_amounts(rows, df, l, num, OnEmpty::ZeroWithFinding).map_err(&with_file)?;
        let rhs = parse_amounts(rows, df, r, num, OnEmpty::ZeroWithFinding).map_err(&with_file)?;
        let diff: Vec<f64> = lhs
            .iter()
            .zip(&rhs)
            .map(|(a, b)| clean::round_to(a - b, opts.decimals))
            .collect();
        // Amounts near the limits of f64 (1e308 and -1e308) overflow when subtracted.
        for i in 0..n {
            if diff[i].is_infinite() {
                let (lv, rv) = (lhs[i], rhs[i]);
                let raw_l = text_col(df, l)
                    .ok()
                    .and_then(|c| c.get(i))
                    .unwrap_or("")
                    .to_string();
                rows.reject(
                    i,
                    l,
                    Some(&raw_l),
                    format!("difference is not finite: {l} - {r} = {lv:e} - {rv:e} overflows"),
                );
            }
        }
        if let Some(g) = &c.difference {
            let given = parse_amounts(rows, df, g, num, OnEmpty::Nan).map_err(&with_file)?;
            for i in 0..n {
                let (gv, dv) = (given[i], diff[i]);
                if gv.is_finite() && (gv - dv).abs() > opts.mismatch_tolerance {
                    rows.finding(
                        i,
                        format!("{g} {gv} disagrees with {l} - {r} = {dv}; using {dv}"),
                    );
                }
            }
            s.cols
                .push(Column::new(crit_col(&c.name, "given").into(), given));
        }
        let scale: Vec<f64> = lhs
            .iter()
            .zip(&rhs)
            .map(|(a, b)| a.abs().max(b.abs()))
            .collect();
        s.cols
            .push(Column::new(crit_col(&c.name, "lhs").into(), lhs));
        s.cols
            .push(Column::new(crit_col(&c.name, "rhs").into(), rhs));
        Ok((diff, scale))
    }

    /// `bd_break`: from the status column, or (without one) out of tolerance.
    pub(super) fn status(
        &self,
        s: &mut Step<'_>,
        within: Option<&[bool]>,
    ) -> Result<(), IngestError> {
        if let Some(h) = &self.resolved.status {
            let ca = text_col(self.df, h).map_err(with_file(&self.raw.source))?;
            let flags: Vec<bool> = ca
                .iter()
                .map(|v| self.resolved.is_break_status(v.unwrap_or("")))
                .collect();
            s.cols.push(Column::new("bd_break".into(), flags));
        } else if let Some(w) = within {
            s.cols.push(Column::new(
                "bd_break".into(),
                w.iter().map(|x| !x).collect::<Vec<bool>>(),
            ));
        }
        Ok(())
    }

    /// `bd_comment`: cleaned once per distinct value (empty for a missing one), and only copied
    /// where cleaning changed it.
    pub(super) fn comment(&self, s: &mut Step<'_>) -> Result<(), IngestError> {
        if let Some(h) = &self.resolved.comment {
            let ca = text_col(self.df, h).map_err(with_file(&self.raw.source))?;
            s.cols.push(comment_column(ca).into_column());
        }
        Ok(())
    }

    /// `bd_cat_<name>`: categorical values, trimmed.
    pub(super) fn categoricals(&self, s: &mut Step<'_>) -> Result<(), IngestError> {
        for role in &self.resolved.categoricals {
            let ca = text_col(self.df, &role.header).map_err(with_file(&self.raw.source))?;
            let name = format!("bd_cat_{}", role.slug);
            let needs_trim = ca
                .iter()
                .any(|v| v.is_some_and(|v| v.len() != v.trim().len()));
            if needs_trim {
                let v: Vec<String> = ca
                    .iter()
                    .map(|v| v.unwrap_or("").trim().to_string())
                    .collect();
                s.cols.push(Column::new(name.into(), v));
            } else {
                // Already clean: share the original column's buffers instead of copying them.
                s.cols.push(ca.clone().with_name(name.into()).into_column());
            }
        }
        Ok(())
    }

    /// `bd_num_<name>`: extra numeric features (generic: detected when none are listed).
    /// Returns the numeric roles used.
    pub(super) fn numeric(&self, s: &mut Step<'_>) -> Result<Vec<RoleColumn>, IngestError> {
        let (raw, resolved) = (self.raw, self.resolved);
        let mut numeric = resolved.numeric.clone();
        if resolved.profile.numeric_auto && numeric.is_empty() {
            numeric = numeric_columns(raw, self.num)?
                .into_iter()
                .map(|h| RoleColumn {
                    slug: clean::slug(&h),
                    header: h,
                })
                .collect();
            if numeric.is_empty() {
                return Err(IngestError::Data {
                    file: raw.source.clone(),
                    message: format!(
                        "the generic profile found no numeric column to score (columns: {}); list them with --columns",
                        raw.header.join(", ")
                    ),
                });
            }
        }
        let strict_numeric = resolved.profile.numeric_auto;
        for role in &numeric {
            let on_empty = if strict_numeric {
                OnEmpty::Reject
            } else {
                OnEmpty::Nan
            };
            let v = parse_amounts(&mut s.rows, self.df, &role.header, self.num, on_empty)
                .map_err(with_file(&raw.source))?;
            s.cols
                .push(Column::new(format!("bd_num_{}", role.slug).into(), v));
        }
        Ok(numeric)
    }

    /// `bd_date_<name>`: extra dates, and `bd_trade_date`.
    pub(super) fn extra_dates(&self, s: &mut Step<'_>) -> Result<(), IngestError> {
        let resolved = self.resolved;
        for role in &resolved.extra_dates {
            let d = parse_dates(&mut s.rows, self.df, &role.header, &self.opts.dates, false)
                .map_err(with_file(&self.raw.source))?;
            if resolved.trade_date.as_deref() == Some(role.header.as_str()) {
                s.cols.push(date_column("bd_trade_date", d.clone()));
            }
            s.cols
                .push(date_column(&format!("bd_date_{}", role.slug), d));
        }
        Ok(())
    }

    /// `bd_dq` from the findings, the steps' columns added to the frame (in step order), the
    /// rejected rows removed and reported after the reader's rejects.
    pub(super) fn finish(
        &self,
        steps: Vec<Step<'_>>,
        numeric: Vec<RoleColumn>,
    ) -> Result<Prepared, IngestError> {
        let (raw, n) = (self.raw, self.n);
        let data_err = data_err(&raw.source);
        let mut rejected = vec![false; n];
        let mut checked: Vec<(usize, Reject)> = Vec::new();
        let mut findings: Vec<(usize, String)> = Vec::new();
        let mut cols: Vec<Column> = Vec::new();
        for step in steps {
            for (i, r) in step.rows.rejects {
                rejected[i] = true;
                checked.push((i, r));
            }
            findings.extend(step.rows.findings);
            cols.extend(step.cols);
        }
        // The checks' rejects in the file's order (a row's in the order found, step by step),
        // after the reader's: the order of any part of the file, or of its partitions, merged.
        checked.sort_by_key(|(i, _)| *i);
        let mut rejects = raw.rejects.clone();
        rejects.extend(checked.into_iter().map(|(_, r)| r));
        // Each row's findings in the order found (step by step), joined.
        findings.sort_by_key(|(i, _)| *i);
        let mut dq: Vec<String> = vec![String::new(); n];
        let mut dq_rows = 0;
        for group in findings.chunk_by(|a, b| a.0 == b.0) {
            let i = group[0].0;
            if !rejected[i] {
                dq_rows += 1;
            }
            dq[i] = group
                .iter()
                .map(|(_, t)| t.as_str())
                .collect::<Vec<_>>()
                .join("; ");
        }
        cols.push(Column::new("bd_dq".into(), dq));

        let mut out = self.df.clone();
        for c in cols {
            out.with_column(c).map_err(&data_err)?;
        }
        // Rows the reader already rejected (a record with more or fewer fields than the header) come
        // first in the report and count as rows of the file.
        let rejected_rows = rejected.iter().filter(|r| **r).count() + raw.rejects.len();
        if rejected_rows > 0 {
            let keep = BooleanChunked::from_iter_values("keep".into(), rejected.iter().map(|r| !r));
            out = out.filter(&keep).map_err(&data_err)?;
        }
        // The resolved profile carries the numeric columns actually used (detected for `generic`).
        let mut resolved = self.resolved.clone();
        resolved.numeric = numeric.clone();
        Ok(Prepared {
            df: out,
            resolved,
            rejects,
            total_rows: n + raw.rejects.len(),
            rejected_rows,
            dq_rows,
            source: raw.source.clone(),
            numeric_columns: numeric.iter().map(|r| r.header.clone()).collect(),
            blank_rows: raw.blank_rows,
            decimal: self.decimal.clone(),
        })
    }
}

/// `bd_comment` from the comment column: each distinct value cleaned once, on every core; the
/// original column's buffers shared when cleaning changes nothing and no value is missing.
fn comment_column(ca: &StringChunked) -> StringChunked {
    let name: PlSmallStr = "bd_comment".into();
    // The distinct values cleaning changes, found on every core over slices of the rows.
    let found: Vec<Vec<(String, String)>> = par_slices(ca, |part| {
        let mut seen: PlHashMap<&str, Option<String>> = PlHashMap::new();
        for s in part.iter().flatten() {
            if !seen.contains_key(s) {
                let c = clean::clean_comment(s);
                seen.insert(s, (c != s).then_some(c));
            }
        }
        seen.into_iter()
            .filter_map(|(s, c)| c.map(|c| (s.to_string(), c)))
            .collect()
    });
    let mut cleaned: PlHashMap<String, String> = PlHashMap::new();
    for f in found {
        cleaned.extend(f);
    }
    if cleaned.is_empty() && !ca.has_nulls() {
        // Nothing to clean: share the original column's buffers instead of copying them.
        return ca.clone().with_name(name);
    }
    let values = ca.iter().map(|v| match v {
        Some(s) => cleaned.get(s).map_or(s, String::as_str),
        None => "",
    });
    StringChunked::from_iter_values(name, values)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `bd_comment` is each comment cleaned, and empty where the comment is missing, however the
    /// rows are sliced across the cores; a column with nothing to clean keeps its buffers.
    #[test]
    fn comments_are_cleaned_row_by_row_on_every_core() {
        let n = 100_000;
        let values: Vec<Option<String>> = (0..n)
            .map(|i| match i % 5 {
                0 => None,
                1 => Some(format!("[\"late feed {}\"]", i % 13)),
                2 => Some(format!("  spaced   out {}  ", i % 3)),
                _ => Some(format!("plain {}", i % 11)),
            })
            .collect();
        let ca = StringChunked::new("c".into(), &values);
        let out = comment_column(&ca);
        assert_eq!(out.name().as_str(), "bd_comment");
        assert_eq!(out.len(), n);
        assert_eq!(out.null_count(), 0);
        for (i, (v, got)) in values.iter().zip(out.iter()).enumerate() {
            let want = v.as_deref().map(clean::clean_comment).unwrap_or_default();
            assert_eq!(got, Some(want.as_str()), "row {i}");
        }
        assert_eq!(out.get(1), Some("late feed 1"));

        let clean: Vec<String> = (0..n).map(|i| format!("plain {}", i % 11)).collect();
        let ca = StringChunked::new("c".into(), &clean);
        let out = comment_column(&ca);
        assert_eq!(out.get(12), Some("plain 1"));
        assert!(std::ptr::eq(
            ca.downcast_iter().next().unwrap().data_buffers().as_ptr(),
            out.downcast_iter().next().unwrap().data_buffers().as_ptr()
        ));
    }
}
