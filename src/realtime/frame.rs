//! The table of flagged records a file run would have, for categorizing them.

use super::{Engine, Observed};
use crate::ingest::prepare::{crit_col, date_column as date_col};
use crate::profile::Resolved;
use polars::prelude::{Column, DataFrame, PolarsError};
use std::collections::HashSet;

/// The table of flagged records a file run would have: the records' own fields, the canonical
/// `bd_*` columns, the features, the run context and the detection columns.
pub(super) fn frame(
    engine: &Engine,
    items: &[&Observed],
    rank: &[u32],
) -> Result<DataFrame, PolarsError> {
    let r = &engine.reader.resolved;
    let n = items.len();
    let mut cols = Columns::default();
    own_fields(&mut cols, items);
    canonical(&mut cols, r, items);
    features(&mut cols, engine, items);
    detection(&mut cols, items, rank);
    DataFrame::new(n, cols.cols)
}

/// The table's columns: one pushed under a name already there replaces that column in place.
#[derive(Default)]
struct Columns {
    cols: Vec<Column>,
    names: HashSet<String>,
}

impl Columns {
    fn push(&mut self, c: Column) {
        if self.names.insert(c.name().to_string()) {
            self.cols.push(c);
        } else if let Some(slot) = self.cols.iter_mut().find(|x| x.name() == c.name()) {
            *slot = c;
        }
    }
}

/// One number per record.
fn num(items: &[&Observed], f: impl Fn(&Observed) -> f64) -> Vec<f64> {
    items.iter().map(|o| f(o)).collect()
}

fn own_fields(cols: &mut Columns, items: &[&Observed]) {
    // The records' own fields (the union, in first-seen order; missing → empty).
    let mut own: Vec<String> = Vec::new();
    for o in items {
        for (k, _) in &o.record.fields {
            if !own.contains(k) {
                own.push(k.clone());
            }
        }
    }
    for k in &own {
        let v: Vec<String> = items
            .iter()
            .map(|o| {
                o.record
                    .fields
                    .iter()
                    .find(|(f, _)| f == k)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default()
            })
            .collect();
        cols.push(Column::new(k.as_str().into(), v));
    }
}

/// The canonical `bd_*` columns.
fn canonical(cols: &mut Columns, r: &Resolved, items: &[&Observed]) {
    if !r.keys.is_empty() {
        let v: Vec<String> = items.iter().map(|o| o.record.key.clone()).collect();
        cols.push(Column::new("bd_key".into(), v));
    }
    if r.date.is_some() {
        cols.push(date_col(
            "bd_date",
            items.iter().map(|o| o.record.date).collect(),
        ));
    }
    criteria(cols, r, items);
    if items.iter().any(|o| o.record.brk.is_some()) {
        cols.push(Column::new(
            "bd_break".into(),
            items
                .iter()
                .map(|o| o.record.brk.unwrap_or(false))
                .collect::<Vec<bool>>(),
        ));
    }
    if r.comment.is_some() {
        let v: Vec<String> = items
            .iter()
            .map(|o| o.record.comment.clone().unwrap_or_default())
            .collect();
        cols.push(Column::new("bd_comment".into(), v));
    }
    for (i, role) in r.categoricals.iter().enumerate() {
        let v: Vec<String> = items.iter().map(|o| o.record.cats[i].clone()).collect();
        cols.push(Column::new(format!("bd_cat_{}", role.slug).into(), v));
    }
    for (i, role) in r.numeric.iter().enumerate() {
        cols.push(Column::new(
            format!("bd_num_{}", role.slug).into(),
            num(items, |o| o.record.nums[i]),
        ));
    }
    for (i, role) in r.extra_dates.iter().enumerate() {
        let v: Vec<Option<i32>> = items.iter().map(|o| o.record.extra_dates[i]).collect();
        if r.trade_date.as_deref() == Some(role.header.as_str()) {
            cols.push(date_col("bd_trade_date", v.clone()));
        }
        cols.push(date_col(&format!("bd_date_{}", role.slug), v));
    }
    let dq: Vec<String> = items.iter().map(|o| o.record.dq.join("; ")).collect();
    cols.push(Column::new("bd_dq".into(), dq));
}

/// The criteria's columns, and the first one's difference and whether it is within tolerance.
fn criteria(cols: &mut Columns, r: &Resolved, items: &[&Observed]) {
    for (i, c) in r.criteria.iter().enumerate() {
        if c.is_pair() {
            cols.push(Column::new(
                crit_col(&c.name, "lhs").into(),
                num(items, |o| o.record.crit[i].lhs),
            ));
            cols.push(Column::new(
                crit_col(&c.name, "rhs").into(),
                num(items, |o| o.record.crit[i].rhs),
            ));
            if c.difference.is_some() {
                cols.push(Column::new(
                    crit_col(&c.name, "given").into(),
                    num(items, |o| o.record.crit[i].given.unwrap_or(f64::NAN)),
                ));
            }
        }
        cols.push(Column::new(
            crit_col(&c.name, "diff").into(),
            num(items, |o| o.record.crit[i].diff),
        ));
        cols.push(Column::new(
            crit_col(&c.name, "tol").into(),
            num(items, |o| o.record.crit[i].tol),
        ));
    }
    if !r.criteria.is_empty() {
        cols.push(Column::new(
            "bd_difference".into(),
            num(items, |o| o.record.crit[0].diff),
        ));
        cols.push(Column::new(
            "bd_within_tolerance".into(),
            items
                .iter()
                .map(|o| o.record.within.unwrap_or(true))
                .collect::<Vec<bool>>(),
        ));
    }
}

/// The features, the break's age and the run context.
fn features(cols: &mut Columns, engine: &Engine, items: &[&Observed]) {
    for (j, name) in engine.plan.names.iter().enumerate() {
        cols.push(Column::new(
            name.as_str().into(),
            num(items, |o| o.features[j]),
        ));
    }
    // The break's age, as a file run reports it (whether or not the model uses it).
    cols.push(Column::new(
        "f_break_age".into(),
        num(items, |o| o.break_age),
    ));
    for (j, name) in crate::break_runs::RUN_COLUMNS.iter().enumerate() {
        let v = num(items, |o| {
            o.run_context
                .as_ref()
                .and_then(|c| c.get(j).copied())
                .unwrap_or(f64::NAN)
        });
        cols.push(Column::new((*name).into(), v));
    }
}

/// The detection columns.
fn detection(cols: &mut Columns, items: &[&Observed], rank: &[u32]) {
    cols.push(Column::new("score".into(), num(items, |o| o.score)));
    cols.push(Column::new("decision".into(), num(items, |o| o.decision)));
    cols.push(Column::new(
        "is_anomaly".into(),
        items.iter().map(|o| o.flag).collect::<Vec<bool>>(),
    ));
    cols.push(Column::new("rank".into(), rank.to_vec()));
    cols.push(Column::new(
        "cluster".into(),
        items.iter().map(|o| o.cluster as u32).collect::<Vec<u32>>(),
    ));
    cols.push(Column::new(
        "top_features".into(),
        items
            .iter()
            .map(|o| o.top_features.clone())
            .collect::<Vec<String>>(),
    ));
    cols.push(Column::new(
        "model_version".into(),
        items
            .iter()
            .map(|o| o.model_version.clone())
            .collect::<Vec<String>>(),
    ));
}
