//! The column profile (VisiData's frequency sheet): for one column over the rows the table
//! shows, its most frequent values with count and share, or, for a numeric column, its
//! minimum, quartiles, maximum and mean with a histogram. Pure: the column store and the
//! visible rows in, the profile out.

use super::column_store::{ColumnStore, Data};

/// How many values (or histogram bins) a profile lists at most.
pub const TOP: usize = 50;
/// How many bins a numeric column's histogram has.
pub const BINS: usize = 16;

/// One line of a profile: a value (or a bin) and how many rows hold it.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// What the line shows.
    pub label: String,
    pub count: usize,
    /// The filter expression that keeps these rows (`enter` applies it).
    pub filter: String,
}

/// The summary of a numeric column.
#[derive(Debug, Clone, PartialEq)]
pub struct Stats {
    pub count: usize,
    pub missing: usize,
    pub min: f64,
    pub q1: f64,
    pub median: f64,
    pub q3: f64,
    pub max: f64,
    pub mean: f64,
}

/// A column's profile over a set of rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    pub col: usize,
    pub title: String,
    /// The rows profiled.
    pub rows: usize,
    /// Distinct values (text) or bins with rows (numbers).
    pub distinct: usize,
    /// Numbers: the summary (the entries are then the histogram's bins).
    pub stats: Option<Stats>,
    /// The most frequent values, most frequent first (text), or the bins in order (numbers).
    pub entries: Vec<Entry>,
    /// Rows in values not listed (text beyond [`TOP`]).
    pub others: usize,
}

/// A text value as a string literal of the filter language.
fn quoted(v: &str) -> String {
    format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Profiles column `col` of `t` over `rows`.
pub fn profile(t: &ColumnStore, col: usize, rows: &[u32]) -> Option<Profile> {
    let c = t.cols.get(col)?;
    let field = c.field.clone();
    let mut p = Profile {
        col,
        title: c.title.clone(),
        rows: rows.len(),
        distinct: 0,
        stats: None,
        entries: Vec::new(),
        others: 0,
    };
    match &c.data {
        Data::Text(tc) => {
            let mut counts = vec![0usize; tc.dict.len()];
            for r in rows {
                if let Some(code) = tc.codes.get(*r as usize) {
                    counts[*code as usize] += 1;
                }
            }
            let mut seen: Vec<(usize, u32)> = counts
                .iter()
                .enumerate()
                .filter(|(_, n)| **n > 0)
                .map(|(code, n)| (*n, code as u32))
                .collect();
            p.distinct = seen.len();
            seen.sort_unstable_by(|a, b| {
                b.0.cmp(&a.0)
                    .then_with(|| tc.dict[a.1 as usize].cmp(&tc.dict[b.1 as usize]))
            });
            for (n, code) in seen.iter().take(TOP) {
                let v = &tc.dict[*code as usize];
                p.entries.push(Entry {
                    label: if v.is_empty() {
                        "(empty)".into()
                    } else {
                        v.clone()
                    },
                    count: *n,
                    filter: format!("{field} = {}", quoted(v)),
                });
            }
            p.others = seen.iter().skip(TOP).map(|s| s.0).sum();
        }
        Data::Num(v) => {
            let mut xs: Vec<f64> = rows
                .iter()
                .filter_map(|r| v.get(*r as usize).copied())
                .filter(|x| x.is_finite())
                .collect();
            let missing = rows.len() - xs.len();
            if xs.is_empty() {
                p.stats = None;
                p.others = missing;
                return Some(p);
            }
            let n = xs.len();
            let mean = xs.iter().sum::<f64>() / n as f64;
            let (min, max) = xs
                .iter()
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), x| {
                    (l.min(*x), h.max(*x))
                });
            // Quartiles by selection (nearest rank), no full sort.
            let mut at = |q: f64| -> f64 {
                let k = ((n - 1) as f64 * q).round() as usize;
                *xs.select_nth_unstable_by(k, f64::total_cmp).1
            };
            let (q1, median, q3) = (at(0.25), at(0.5), at(0.75));
            p.stats = Some(Stats {
                count: n,
                missing,
                min,
                q1,
                median,
                q3,
                max,
                mean,
            });
            let width = (max - min) / BINS as f64;
            let mut bins = vec![0usize; if width > 0.0 { BINS } else { 1 }];
            for x in &xs {
                let b = if width > 0.0 {
                    (((x - min) / width) as usize).min(BINS - 1)
                } else {
                    0
                };
                bins[b] += 1;
            }
            p.distinct = bins.iter().filter(|b| **b > 0).count();
            let last = bins.len() - 1;
            for (i, count) in bins.into_iter().enumerate() {
                let lo = min + width * i as f64;
                let hi = if i == last {
                    max
                } else {
                    min + width * (i + 1) as f64
                };
                let close = if i == last { "]" } else { ")" };
                p.entries.push(Entry {
                    label: format!("[{}, {}{close}", short(lo), short(hi)),
                    count,
                    filter: if i == last {
                        format!("{field} >= {lo} and {field} <= {hi}")
                    } else {
                        format!("{field} >= {lo} and {field} < {hi}")
                    },
                });
            }
        }
    }
    Some(p)
}

/// A number as a histogram's bound shows it: 1.2M, 350.5k, 12.34.
pub fn short(v: f64) -> String {
    let a = v.abs();
    if a >= 1e9 {
        format!("{:.2}B", v / 1e9)
    } else if a >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if a >= 1e4 {
        format!("{:.1}k", v / 1e3)
    } else {
        format!("{v:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tui::column_store::{Column, Kind, TextCol};

    fn store() -> ColumnStore {
        let mut s = ColumnStore {
            rows: 6,
            ..Default::default()
        };
        let b = [
            "Timing",
            "Timing",
            "Fat \"Finger\"",
            "Timing",
            "",
            "Fat \"Finger\"",
        ];
        s.cols.push(Column::text(
            "bucket",
            "bucket",
            TextCol::from_values(b.iter().map(|x| Some(*x))),
        ));
        s.cols.push(Column::num(
            "difference",
            "difference",
            Kind::Amount,
            vec![1.0, 2.0, 3.0, 4.0, f64::NAN, 100.0],
        ));
        s
    }

    #[test]
    fn text_values_by_count_with_their_filters() {
        let s = store();
        let p = profile(&s, 0, &[0, 1, 2, 3, 4, 5]).unwrap();
        assert_eq!(p.distinct, 3);
        let got: Vec<(&str, usize)> = p
            .entries
            .iter()
            .map(|e| (e.label.as_str(), e.count))
            .collect();
        assert_eq!(got, [("Timing", 3), ("Fat \"Finger\"", 2), ("(empty)", 1)]);
        assert_eq!(p.entries[1].filter, r#"bucket = "Fat \"Finger\"""#);
        // The filter compiles and keeps exactly those rows.
        let f = s.compile(&p.entries[1].filter).unwrap();
        assert_eq!(s.filter(&[0, 1, 2, 3, 4, 5], &f), [2, 5]);
        // Only the rows given count.
        let p = profile(&s, 0, &[2]).unwrap();
        assert_eq!(p.entries.len(), 1);
    }

    #[test]
    fn numbers_have_quartiles_and_a_histogram_whose_bins_filter() {
        let s = store();
        let rows = [0, 1, 2, 3, 4, 5];
        let p = profile(&s, 1, &rows).unwrap();
        let st = p.stats.clone().unwrap();
        assert_eq!((st.count, st.missing), (5, 1));
        assert_eq!(
            (st.min, st.q1, st.median, st.q3, st.max),
            (1.0, 2.0, 3.0, 4.0, 100.0)
        );
        assert_eq!(p.entries.len(), BINS);
        assert_eq!(p.entries.iter().map(|e| e.count).sum::<usize>(), 5);
        assert_eq!(p.entries[0].count, 4);
        assert_eq!(p.entries[BINS - 1].count, 1);
        let f = s.compile(&p.entries[BINS - 1].filter).unwrap();
        assert_eq!(s.filter(&rows, &f), [5]);
        let f = s.compile(&p.entries[0].filter).unwrap();
        assert_eq!(s.filter(&rows, &f), [0, 1, 2, 3]);
    }
}
