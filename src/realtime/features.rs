//! The features of one record against the account's earlier records, computed the way
//! `features::compute` computes them over a sorted table (same formulas, same order of
//! operations), so that a model trained on files scores a stream the same way.

use super::record::Canonical;
use crate::features::{LabelEncoder, Preset};
use crate::profile::Resolved;
use serde::{Deserialize, Serialize};

/// What the state keeps of one earlier record of an account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Past {
    pub date: Option<i32>,
    /// Per criteria: lhs, rhs (NaN unless a pair), diff, tol. A missing side is NaN, which
    /// JSON has no number for: written as "NaN" (and "inf", "-inf"), so a state round-trips.
    #[serde(with = "nonfinite_rows")]
    pub crit: Vec<[f64; 4]>,
    /// The first criteria's difference within tolerance (true without criteria).
    pub within: bool,
}

/// `[f64; 4]` rows whose values may be NaN or infinite, as JSON: finite values as numbers, the
/// others as the strings "NaN", "inf", "-inf". `null` (how such values were once written) reads
/// as NaN.
mod nonfinite_rows {
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use serde_json::Value;

    fn to_json(x: f64) -> Value {
        if x.is_finite() {
            Value::from(x)
        } else if x.is_nan() {
            Value::from("NaN")
        } else if x > 0.0 {
            Value::from("inf")
        } else {
            Value::from("-inf")
        }
    }

    fn from_json(v: &Value) -> Result<f64, String> {
        match v {
            Value::Null => Ok(f64::NAN),
            Value::Number(n) => n.as_f64().ok_or_else(|| format!("{n} is not a number")),
            Value::String(s) => match s.as_str() {
                "NaN" => Ok(f64::NAN),
                "inf" => Ok(f64::INFINITY),
                "-inf" => Ok(f64::NEG_INFINITY),
                other => Err(format!("{other:?} is not a number")),
            },
            other => Err(format!("{other} is not a number")),
        }
    }

    pub fn serialize<S: Serializer>(rows: &[[f64; 4]], s: S) -> Result<S::Ok, S::Error> {
        let rows: Vec<[Value; 4]> = rows.iter().map(|r| r.map(to_json)).collect();
        rows.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<[f64; 4]>, D::Error> {
        let rows: Vec<[Value; 4]> = Vec::deserialize(d)?;
        rows.iter()
            .map(|r| {
                let mut out = [0.0; 4];
                for (o, v) in out.iter_mut().zip(r) {
                    *o = from_json(v).map_err(D::Error::custom)?;
                }
                Ok(out)
            })
            .collect()
    }
}

impl Past {
    pub fn of(c: &Canonical) -> Past {
        Past {
            date: c.date,
            crit: c
                .crit
                .iter()
                .map(|v| [v.lhs, v.rhs, v.diff, v.tol])
                .collect(),
            within: c.within.unwrap_or(true),
        }
    }
}

/// A criteria column a feature reads.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Slot {
    Lhs(usize),
    Rhs(usize),
    Diff(usize),
    /// The first criteria's unexplained part ([`crate::routine`]).
    Residual,
}

impl Past {
    /// The record as the own-normal explanations read it.
    pub fn routine_rec(&self) -> crate::routine::Rec {
        let out = |c: &[f64; 4]| {
            let t = if c[3].is_finite() { c[3].max(0.0) } else { 0.0 };
            c[2].is_finite() && c[2].abs() > t + 1e-9
        };
        let first = self.crit.first().copied().unwrap_or([f64::NAN; 4]);
        crate::routine::Rec {
            day: self.date.map_or(f64::NAN, |d| d as f64),
            lhs: first[0],
            rhs: first[1],
            diff: first[2],
            tol: first[3],
            other_break: self.crit.iter().skip(1).any(out),
        }
    }

    /// Whether any criteria is out of tolerance.
    pub fn is_break(&self) -> bool {
        self.crit.iter().any(|c| {
            let t = if c[3].is_finite() { c[3].max(0.0) } else { 0.0 };
            c[2].is_finite() && c[2].abs() > t + 1e-9
        })
    }
}

/// The own-normal explanation of a record and of the account's last earlier records: `owns[i]`
/// is the record at `start + i` of (the earlier records, then the record itself).
pub struct OwnView {
    pub start: usize,
    pub owns: Vec<crate::routine::Own>,
}

impl OwnView {
    pub fn me(&self) -> Option<&crate::routine::Own> {
        self.owns.last()
    }

    /// The explanation of the record at `k` (None before `start`).
    pub fn at(&self, k: usize) -> Option<&crate::routine::Own> {
        k.checked_sub(self.start).and_then(|i| self.owns.get(i))
    }
}

/// The slot's value on the record at `k` of `all` (the earlier records then the record).
fn slot_at(slot: Slot, all: &[&Past], own: Option<&OwnView>, k: usize) -> f64 {
    match slot {
        Slot::Lhs(c) => all[k].crit[c][0],
        Slot::Rhs(c) => all[k].crit[c][1],
        Slot::Diff(c) => all[k].crit[c][2],
        Slot::Residual => own.and_then(|o| o.at(k)).map_or(f64::NAN, |o| o.residual),
    }
}

/// Where one feature comes from.
#[derive(Debug, Clone, PartialEq)]
enum Src {
    DaysSinceLast,
    Raw(Slot),
    Change(Slot),
    RollMean(Slot),
    RollStd(Slot),
    Weekday,
    Month,
    Num(usize),
    RelDifference,
    SignAgreement,
    MagnitudeRatio,
    LogAbs(usize),
    OutOfTol(usize),
    RobustZ,
    BreakAge,
    Enc(usize, LabelEncoder),
    // The account preset.
    RelResidual,
    LogAbsResidual,
    OutOfTolResidual,
    RobustZResidual,
    UnexplainedAge,
    OwnZ,
}

/// How to compute a model's features, in the model's order.
#[derive(Debug, Clone)]
pub struct Plan {
    srcs: Vec<Src>,
    pub names: Vec<String>,
    window: usize,
    min_periods: usize,
    has_date: bool,
    /// Whether the first criteria is a pair.
    primary_pair: bool,
    /// Break age counts from the trade date.
    trade_age: bool,
    /// The own-normal thresholds and the profile's patterns, when the profile has a first
    /// criteria and accounts (or dates).
    pub routine: Option<crate::routine::Params>,
    /// The features read earlier records' residuals (the account preset).
    residual_features: bool,
}

/// NaN (a null in the table) → 0, as `fnum` does.
fn fnum(v: f64) -> f64 {
    if v.is_nan() { 0.0 } else { v }
}

/// sign(d)·log10(1 + |d|), NaN → 0.
fn signed_log10_1p(d: f64) -> f64 {
    let sign = if d < 0.0 { -1.0 } else { 1.0 };
    fnum(sign * d.abs().ln_1p() / std::f64::consts::LN_10)
}

/// `emax` of the table code: a when a ≥ b, else b (so a NaN side gives b).
fn emax(a: f64, b: f64) -> f64 {
    if a >= b { a } else { b }
}

impl Plan {
    /// The plan for `names` (a model's features) over records of `resolved`. A name the record
    /// path cannot compute is an error naming it.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        resolved: &Resolved,
        preset: Preset,
        window: usize,
        min_periods: usize,
        routine: &crate::routine::Params,
        names: &[String],
        encoders: &[LabelEncoder],
    ) -> Result<Plan, String> {
        let r = resolved;
        let has_date = r.date.is_some();
        let has_keys = !r.keys.is_empty();
        let own = !r.criteria.is_empty() && (has_keys || has_date);
        let acc = own && preset == Preset::Account;
        let routine = own.then_some(crate::routine::Params {
            patterns: r.profile.routine,
            ..*routine
        });
        let mut known = series_sources(r, has_keys, has_date, acc);
        let primary = r.criteria.first();
        break_sources(&mut known, r, preset, acc);
        for (i, role) in r.categoricals.iter().enumerate() {
            let enc = encoders
                .iter()
                .find(|e| e.name == role.slug)
                .cloned()
                .unwrap_or_else(|| LabelEncoder {
                    name: role.slug.clone(),
                    classes: Vec::new(),
                });
            known.push((format!("f_enc_{}", role.slug), Src::Enc(i, enc)));
        }
        let mut srcs = Vec::with_capacity(names.len());
        for n in names {
            match known.iter().find(|(k, _)| k == n) {
                Some((_, s)) => srcs.push(s.clone()),
                None => {
                    return Err(format!(
                        "the model's feature {n} cannot be computed from records of profile {}",
                        r.profile.name
                    ));
                }
            }
        }
        let trade_age = has_date
            && r.trade_date
                .as_ref()
                .is_some_and(|t| r.extra_dates.iter().any(|d| &d.header == t));
        Ok(Plan {
            srcs,
            names: names.to_vec(),
            window: window.max(1),
            min_periods: min_periods.max(1),
            has_date,
            primary_pair: primary.is_some_and(|c| c.is_pair()),
            trade_age,
            routine,
            residual_features: acc,
        })
    }

    /// The own-normal explanations of `me` and of the account's earlier records (None when the
    /// profile has none). The account preset's features read every earlier record's residual
    /// (its robust z and the unexplained run's age see what the batch sees), so all are
    /// explained; otherwise only `me`'s explanation is read, and the records it reaches suffice
    /// ([`crate::routine::reach`]).
    pub fn own(&self, me: &Past, prev: &[Past]) -> Option<OwnView> {
        let p = self.routine.as_ref()?;
        let start = if self.residual_features {
            0
        } else {
            prev.len().saturating_sub(crate::routine::reach(p))
        };
        let recs: Vec<crate::routine::Rec> = prev[start..]
            .iter()
            .chain(std::iter::once(me))
            .map(Past::routine_rec)
            .collect();
        Some(OwnView {
            start,
            owns: crate::routine::explain(&recs, p),
        })
    }

    /// The features of `cur` (`me` is [`Past::of`] it) with `prev` (the account's earlier
    /// records, oldest first) before it.
    pub fn compute(&self, cur: &Canonical, me: &Past, prev: &[Past]) -> Vec<f64> {
        let own = self.own(me, prev);
        self.compute_with(cur, me, prev, own.as_ref())
    }

    /// [`Plan::compute`] with the own-normal explanations already made ([`Plan::own`]).
    pub fn compute_with(
        &self,
        cur: &Canonical,
        me: &Past,
        prev: &[Past],
        own: Option<&OwnView>,
    ) -> Vec<f64> {
        let last = prev.last();
        let all: Vec<&Past> = prev.iter().chain(std::iter::once(me)).collect();
        let n = all.len();
        let own_me = own.and_then(|o| o.me());
        let residual = own_me.map_or(f64::NAN, |o| o.residual);
        let mut out = Vec::with_capacity(self.srcs.len());
        for s in &self.srcs {
            let v = match s {
                Src::DaysSinceLast => match (last.and_then(|p| p.date), me.date) {
                    (Some(a), Some(b)) => (b - a) as f64,
                    _ => 0.0,
                },
                Src::Raw(slot) => fnum(slot_at(*slot, &all, own, n - 1)),
                Src::Change(slot) => match last {
                    Some(_) => {
                        fnum(slot_at(*slot, &all, own, n - 1) - slot_at(*slot, &all, own, n - 2))
                    }
                    None => 0.0,
                },
                Src::RollMean(slot) | Src::RollStd(slot) => {
                    let (mean, std) = self.rolling(*slot, &all, own);
                    fnum(if matches!(s, Src::RollMean(_)) {
                        mean
                    } else {
                        std
                    })
                }
                Src::Weekday => me.date.map_or(0.0, |d| (d as i64 + 3).rem_euclid(7) as f64),
                Src::Month => me
                    .date
                    .and_then(crate::ingest::clean::days_to_date)
                    .map_or(0.0, |d| chrono::Datelike::month(&d) as f64),
                Src::Num(i) => fnum(cur.nums[*i]),
                Src::RelDifference => {
                    let c = me.crit[0];
                    fnum(c[2] / emax(self.scale(c), 1.0))
                }
                Src::SignAgreement => {
                    let c = me.crit[0];
                    if c[0] * c[1] < 0.0 { -1.0 } else { 1.0 }
                }
                Src::MagnitudeRatio => {
                    let c = me.crit[0];
                    if c[0].abs() > 0.005 && c[1].abs() > 0.005 {
                        fnum((c[0].abs() / c[1].abs()).log10())
                    } else {
                        0.0
                    }
                }
                Src::LogAbs(i) => signed_log10_1p(me.crit[*i][2]),
                Src::OutOfTol(i) => {
                    let c = me.crit[*i];
                    if c[2].abs() > c[3] + 1e-9 { 1.0 } else { 0.0 }
                }
                Src::RobustZ => robust_z(me, prev),
                Src::BreakAge => self.break_age(cur, me, prev),
                Src::Enc(i, enc) => enc.encode(&cur.cats[*i]),
                Src::RelResidual => fnum(residual / emax(self.scale(me.crit[0]), 1.0)),
                Src::LogAbsResidual => signed_log10_1p(residual),
                Src::OutOfTolResidual => {
                    if residual.abs() > me.crit[0][3] + 1e-9 {
                        1.0
                    } else {
                        0.0
                    }
                }
                Src::RobustZResidual => match own {
                    Some(o) => robust_z_residual(me, prev, o, residual),
                    None => 0.0,
                },
                Src::UnexplainedAge => match own {
                    Some(o) => self.unexplained_age(&all, o),
                    None => 0.0,
                },
                Src::OwnZ => own_me.map_or(0.0, |o| {
                    if o.own_z.is_finite() {
                        o.own_z.ln_1p()
                    } else {
                        0.0
                    }
                }),
            };
            out.push(v);
        }
        out
    }

    /// What a relative difference divides by (before the floor of 1): the larger side of a pair,
    /// otherwise the tolerance.
    fn scale(&self, c: [f64; 4]) -> f64 {
        if self.primary_pair {
            emax(c[0].abs(), c[1].abs())
        } else {
            c[3]
        }
    }

    /// Days (records, without dates) since the current run of records whose unexplained part is
    /// out of tolerance began.
    fn unexplained_age(&self, all: &[&Past], own: &OwnView) -> f64 {
        let out = |k: usize| {
            let r = own.at(k).map_or(0.0, |o| o.residual);
            let t = all[k].crit[0][3];
            let t = if t.is_finite() { t } else { 0.0 };
            r.is_finite() && r.abs() > t + 1e-9
        };
        let n = all.len();
        if !out(n - 1) {
            return 0.0;
        }
        let mut start = n - 1;
        while start > 0 && out(start - 1) {
            start -= 1;
        }
        if self.has_date {
            match (all[start].date, all[n - 1].date) {
                (Some(s), Some(d)) => (d - s) as f64,
                _ => 0.0,
            }
        } else {
            (n - 1 - start) as f64
        }
    }

    /// Rolling mean and sample std over the record (the last of `all`) and the `window − 1`
    /// before it.
    fn rolling(&self, slot: Slot, all: &[&Past], own: Option<&OwnView>) -> (f64, f64) {
        let n = all.len();
        let x0 = slot_at(slot, all, own, n - 1);
        let back: Vec<f64> = (0..n - 1)
            .rev()
            .take(self.window - 1)
            .map(|k| slot_at(slot, all, own, k))
            .collect();
        let mut sum = x0;
        for v in &back {
            sum += v;
        }
        let count = 1.0 + back.len() as f64;
        let mean = sum / count;
        let mut ss = (x0 - mean).powi(2);
        for v in &back {
            ss += (v - mean).powi(2);
        }
        let min = self.min_periods as f64;
        let mean_out = if count >= min { mean } else { f64::NAN };
        let std_out = if count >= min && count >= 2.0 {
            (ss / (count - 1.0)).sqrt()
        } else {
            f64::NAN
        };
        (mean_out, std_out)
    }

    /// The record's break age as a file run computes it (`f_break_age`): days since the trade
    /// date when the profile has one, otherwise since the current run of out-of-tolerance
    /// records began (0 within tolerance).
    pub fn break_age(&self, cur: &Canonical, me: &Past, prev: &[Past]) -> f64 {
        if self.trade_age {
            match (me.date, cur.trade_date) {
                (Some(d), Some(t)) => ((d - t) as f64).max(0.0),
                _ => 0.0,
            }
        } else {
            self.run_age(me, prev)
        }
    }

    /// Days (records, without dates) since the current run of out-of-tolerance records began.
    fn run_age(&self, me: &Past, prev: &[Past]) -> f64 {
        if me.within {
            return 0.0;
        }
        let mut start = prev.len();
        while start > 0 && !prev[start - 1].within {
            start -= 1;
        }
        if self.has_date {
            match (prev.get(start).map_or(me.date, |p| p.date), me.date) {
                (Some(s), Some(d)) => (d - s) as f64,
                _ => 0.0,
            }
        } else {
            (prev.len() - start) as f64
        }
    }
}

/// The features of the records' series a plan can compute (by name): the raw values, their
/// changes and rolling statistics, the calendar and the numeric fields.
fn series_sources(r: &Resolved, has_keys: bool, has_date: bool, acc: bool) -> Vec<(String, Src)> {
    let mut known: Vec<(String, Src)> = Vec::new();
    if has_date {
        known.push(("f_days_since_last".into(), Src::DaysSinceLast));
    }
    let diff_of = |i: usize, name: &str| {
        if acc && i == 0 {
            (Slot::Residual, format!("{name}_residual"))
        } else {
            (Slot::Diff(i), format!("{name}_diff"))
        }
    };
    let mut series: Vec<(Slot, String)> = Vec::new();
    for (i, c) in r.criteria.iter().enumerate() {
        if c.is_pair() {
            series.push((Slot::Lhs(i), format!("{}_lhs", c.name)));
            series.push((Slot::Rhs(i), format!("{}_rhs", c.name)));
        } else {
            series.push(diff_of(i, &c.name));
        }
    }
    let diffs: Vec<(Slot, String)> = r
        .criteria
        .iter()
        .enumerate()
        .map(|(i, c)| diff_of(i, &c.name))
        .collect();
    for (slot, stem) in series.iter().chain(diffs.iter()) {
        known.push((format!("f_{stem}"), Src::Raw(*slot)));
        if has_keys || has_date {
            known.push((format!("f_change_{stem}"), Src::Change(*slot)));
        }
    }
    if has_keys || has_date {
        for (slot, stem) in &series {
            known.push((format!("f_roll_mean_{stem}"), Src::RollMean(*slot)));
            known.push((format!("f_roll_std_{stem}"), Src::RollStd(*slot)));
        }
    }
    if has_date {
        known.push(("f_weekday".into(), Src::Weekday));
        known.push(("f_month".into(), Src::Month));
    }
    for (i, role) in r.numeric.iter().enumerate() {
        known.push((format!("f_num_{}", role.slug), Src::Num(i)));
    }
    known
}

/// Adds the break features a plan can compute (the account preset's on the residual).
fn break_sources(known: &mut Vec<(String, Src)>, r: &Resolved, preset: Preset, acc: bool) {
    let primary = r.criteria.first();
    if acc {
        known.push(("f_rel_residual".into(), Src::RelResidual));
        if primary.is_some_and(|c| c.is_pair()) {
            known.push(("f_sign_agreement".into(), Src::SignAgreement));
            known.push(("f_magnitude_ratio".into(), Src::MagnitudeRatio));
        }
        for (i, c) in r.criteria.iter().enumerate() {
            if i == 0 {
                known.push((
                    format!("f_log_abs_{}_residual", c.name),
                    Src::LogAbsResidual,
                ));
                known.push((
                    format!("f_out_of_tol_{}_residual", c.name),
                    Src::OutOfTolResidual,
                ));
            } else {
                known.push((format!("f_log_abs_{}_diff", c.name), Src::LogAbs(i)));
                known.push((format!("f_out_of_tol_{}", c.name), Src::OutOfTol(i)));
            }
        }
        known.push(("f_robust_z_residual".into(), Src::RobustZResidual));
        known.push(("f_unexplained_age".into(), Src::UnexplainedAge));
        known.push(("f_own_z".into(), Src::OwnZ));
    } else if preset.has_break_features() && primary.is_some() {
        known.push(("f_rel_difference".into(), Src::RelDifference));
        if primary.is_some_and(|c| c.is_pair()) {
            known.push(("f_sign_agreement".into(), Src::SignAgreement));
            known.push(("f_magnitude_ratio".into(), Src::MagnitudeRatio));
        }
        for (i, c) in r.criteria.iter().enumerate() {
            known.push((format!("f_log_abs_{}_diff", c.name), Src::LogAbs(i)));
            known.push((format!("f_out_of_tol_{}", c.name), Src::OutOfTol(i)));
        }
        known.push(("f_robust_z".into(), Src::RobustZ));
        known.push(("f_break_age".into(), Src::BreakAge));
    }
}

/// (d − median) / max(1.4826·MAD, tolerance, 0.01) against the account's records dated before
/// this one (every earlier record without dates); 0 without any.
fn robust_z(me: &Past, prev: &[Past]) -> f64 {
    let past: Vec<f64> = prev
        .iter()
        .filter(|p| match (p.date, me.date) {
            (Some(a), Some(b)) => a < b,
            _ => true,
        })
        .map(|p| p.crit[0][2])
        .collect();
    let c = me.crit[0];
    robust_z_of(c[2], c[3], past)
}

/// The robust z of the record's residual against the residuals of the account's records dated
/// before it (every earlier record without dates).
fn robust_z_residual(me: &Past, prev: &[Past], o: &OwnView, residual: f64) -> f64 {
    let past: Vec<f64> = prev
        .iter()
        .enumerate()
        .filter(|(_, p)| match (p.date, me.date) {
            (Some(a), Some(b)) => a < b,
            _ => true,
        })
        .filter_map(|(k, _)| o.at(k).map(|o| o.residual))
        .collect();
    robust_z_of(residual, me.crit[0][3], past)
}

/// (v − median) / max(1.4826·MAD, tolerance, 0.01) of `past` (its finite values); 0 without any.
fn robust_z_of(v: f64, tol: f64, past: Vec<f64>) -> f64 {
    let mut buf: Vec<f64> = past.into_iter().filter(|d| d.is_finite()).collect();
    let (med, mad) = crate::linalg::median_mad(&mut buf);
    let t = if tol.is_finite() { tol } else { 0.0 };
    let scale = (mad * 1.4826).max(t.max(0.01));
    let z = (v - med) / scale;
    if z.is_finite() {
        z.clamp(-1e4, 1e4)
    } else {
        0.0
    }
}

/// The run context (`break_runs::RUN_COLUMNS`) of `me` as the last record after `prev`.
pub fn run_context(me: &Past, prev: &[Past]) -> Vec<f64> {
    let n = prev.len() + 1;
    let all: Vec<&Past> = prev.iter().chain(std::iter::once(me)).collect();
    let groups = vec![0u32; n];
    let dated = me.date.is_some();
    let days: Vec<f64> = if dated {
        all.iter()
            .map(|p| p.date.map_or(f64::NAN, |d| d as f64))
            .collect()
    } else {
        (0..n).map(|i| i as f64).collect()
    };
    let ncrit = me.crit.len();
    let cols: Vec<[Vec<f64>; 4]> = (0..ncrit)
        .map(|c| std::array::from_fn(|k| all.iter().map(|p| p.crit[c][k]).collect()))
        .collect();
    let crit: Vec<crate::break_runs::CriteriaValues<'_>> = cols
        .iter()
        .map(|[l, r, d, t]| crate::break_runs::CriteriaValues {
            diff: d,
            tol: t,
            sides: (!l[n - 1].is_nan()).then_some((l.as_slice(), r.as_slice())),
        })
        .collect();
    crate::break_runs::run_context(&groups, &days, dated, &crit)
        .into_iter()
        .map(|c| c[n - 1])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// Any f64 survives the state's JSON: finite values bit for bit (serde_json writes the
    /// shortest representation that reads back exactly), NaN as NaN, ±inf as themselves.
    #[test]
    fn a_state_round_trips_every_float() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let specials = [
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            -0.0,
            0.0,
            f64::MIN_POSITIVE,
            f64::MAX,
            f64::MIN,
            5e-324,
            1e308,
        ];
        for case in 0..2000 {
            let n = rng.gen_range(0..4);
            let crit: Vec<[f64; 4]> = (0..n)
                .map(|_| {
                    std::array::from_fn(|_| {
                        if rng.gen_bool(0.3) {
                            specials[rng.gen_range(0..specials.len())]
                        } else {
                            f64::from_bits(rng.r#gen::<u64>())
                        }
                    })
                })
                .collect();
            let p = Past {
                date: Some(rng.gen_range(-100_000..100_000)),
                crit,
                within: rng.r#gen(),
            };
            let text = serde_json::to_string(&p).unwrap();
            let back: Past = serde_json::from_str(&text).unwrap();
            assert_eq!(back.date, p.date);
            assert_eq!(back.within, p.within);
            for (a, b) in p.crit.iter().flatten().zip(back.crit.iter().flatten()) {
                assert!(
                    (a.is_nan() && b.is_nan()) || a.to_bits() == b.to_bits(),
                    "case {case}: {a:e} came back as {b:e} ({text})"
                );
            }
        }
        // A state written before non-finite values had a form of their own (null) still reads.
        let old: Past =
            serde_json::from_str(r#"{"date":19800,"crit":[[1.5,null,null,0.01]],"within":false}"#)
                .unwrap();
        assert!(old.crit[0][1].is_nan() && old.crit[0][0] == 1.5);
        // Anything else is an error, not a panic.
        assert!(
            serde_json::from_str::<Past>(r#"{"date":1,"crit":[[1,2,"x",4]],"within":true}"#)
                .is_err()
        );
    }
}
