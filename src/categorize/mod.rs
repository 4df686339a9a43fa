//! Root-cause buckets, severity and resolution summaries.
//!
//! Every anomaly is sorted into a fixed bucket by the ordered rules of a rules file
//! (`config/rules.toml`, embedded; a team's own copy through `categorize.rules`): the first rule
//! whose expression holds wins, and records its id and confidence. A row no rule explains goes to
//! the fallback bucket ("New Issue") with details. Severity comes from materiality, age and score
//! (thresholds in the same file); the summary is written by a template that cites the row's own
//! numbers. An optional LLM ([`llm`]) may replace the rules' answer where it gives a valid one.

pub mod fields;
pub mod llm;
mod rules;

use crate::expr::{Expr, ExprError};
use crate::text::fmt_amount;
use fields::{Facts, Schema};
use polars::prelude::DataFrame;
pub use rules::{Bucket, Explanation, Rule, RulesFile, SeverityRules};
use rules::{Piece, render, template};
use serde::{Deserialize, Serialize};

/// What the categorization needs (`[categorize]` and `[llm]`, parsed).
#[derive(Debug, Clone, Default)]
pub struct CategorizeOptions {
    /// The rules file; None: the built-in rules.
    pub rules: Option<std::path::PathBuf>,
    /// The optional LLM pass.
    pub llm: llm::LlmOptions,
}

impl CategorizeOptions {
    /// The rules file named, or the built-in one.
    pub fn rules_file(&self) -> Result<RulesFile, RulesError> {
        RulesFile::load(self.rules.as_deref())
    }
}
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The embedded rules file.
pub const RULES_TOML: &str = include_str!("../../config/rules.toml");

#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    #[error("cannot read the rules file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("rules file {origin}: {message}")]
    Invalid { origin: String, message: String },
    /// The LLM settings or prompt cannot be used.
    #[error("llm: {0}")]
    Llm(String),
}

/// Severity levels, lowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub const ALL: [Severity; 4] = [
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            Severity::Low => "Low",
            Severity::Medium => "Medium",
            Severity::High => "High",
            Severity::Critical => "Critical",
        }
    }

    fn from_level(l: usize) -> Severity {
        Severity::ALL[l.min(3)]
    }

    pub fn parse(s: &str) -> Option<Severity> {
        Severity::ALL
            .into_iter()
            .find(|v| v.as_str().eq_ignore_ascii_case(s.trim()))
    }
}

/// Who decided a row's bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decider {
    Rules,
    Llm,
    Cache,
}

impl Decider {
    pub fn as_str(&self) -> &'static str {
        match self {
            Decider::Rules => "rules",
            Decider::Llm => "llm",
            Decider::Cache => "llm-cache",
        }
    }
}

/// The categorization of one row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Categorization {
    pub bucket: String,
    pub confidence: f64,
    /// The rule id (rules), or `llm:<model>`.
    pub rule: String,
    /// Why: the rule's reason, the details of a New Issue, the LLM's summary.
    pub details: String,
    pub severity: Severity,
    pub severity_reason: String,
    /// The resolution summary.
    pub summary: String,
    /// The rules propose an auto-resolution (a supervisor approves it).
    pub auto_resolve: bool,
    pub is_break: bool,
    pub decided_by: Decider,
    /// Why the LLM's answer was not used, when it was asked and failed.
    pub note: String,
    /// The source comment explains the break (an explanation of the rules file matched).
    #[serde(default)]
    pub explained: bool,
}

/// How many rows each bucket took, by severity (low, medium, high, critical).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BucketTally(pub BTreeMap<String, [usize; 4]>);

impl BucketTally {
    /// The tally of `cats`.
    pub fn of(cats: &[Categorization]) -> BucketTally {
        let mut t = BucketTally::default();
        for c in cats {
            t.add(c);
        }
        t
    }

    /// Counts one more row.
    pub fn add(&mut self, c: &Categorization) {
        let n = match self.0.get_mut(c.bucket.as_str()) {
            Some(n) => n,
            None => self.0.entry(c.bucket.clone()).or_default(),
        };
        n[c.severity as usize] += 1;
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Rules compiled for one table.
pub struct Categorizer<'f> {
    pub file: &'f RulesFile,
    schema: Schema,
    rules: Vec<(&'f Rule, Expr, Vec<Piece>)>,
    severity: &'f SeverityRules,
    used: Vec<usize>,
    /// Field indices the summary and severity read.
    f: Fields,
    /// Headers of the first criteria's sides, for summaries.
    lhs_name: String,
    rhs_name: String,
    /// "difference", or "<criteria> difference" for a criteria without two sides.
    diff_name: String,
    /// Flagged rows in the run (for the score's top share).
    pub flagged_total: usize,
    profile: String,
}

struct Fields {
    lhs: usize,
    rhs: usize,
    difference: usize,
    abs_difference: usize,
    rel_difference: usize,
    tolerance: usize,
    change: Option<usize>,
    days_since_last: usize,
    break_age: usize,
    score: usize,
    rank: usize,
    top_features: Option<usize>,
    key: Option<usize>,
    date: Option<usize>,
    comment: usize,
    dq: usize,
    out_of_tolerance: usize,
    run_len: usize,
    run_days: usize,
    run_closed: usize,
    status: usize,
    currency: Option<usize>,
    /// Further run measures given to the LLM, by name.
    run_extra: Vec<(String, usize)>,
}

/// A rule compiled for one table: its expression and its `reason` template.
type CompiledRule<'f> = (&'f Rule, Expr, Vec<Piece>);

/// The rules that apply to `profile`, compiled against `schema`, and the fields they read.
fn compile_rules<'f>(
    file: &'f RulesFile,
    profile: &str,
    schema: &Schema,
) -> Result<(Vec<CompiledRule<'f>>, Vec<usize>), RulesError> {
    let lookup = |n: &str| schema.lookup(n);
    let mut rules = Vec::new();
    let mut used: Vec<usize> = Vec::new();
    for r in &file.rules {
        if !r.profiles.is_empty() && !r.profiles.iter().any(|p| p == profile) {
            continue;
        }
        let e = Expr::compile(&r.when, &lookup).map_err(|e: ExprError| RulesError::Invalid {
            origin: file.origin.clone(),
            message: format!(
                "rule {:?} (profile {profile}): `when`: {e}{}",
                r.id,
                if e.message.starts_with("unknown field") {
                    " (limit the rule to the profiles that have it with `profiles = [...]`)"
                } else {
                    ""
                }
            ),
        })?;
        let t = template(&r.reason, &lookup).map_err(|m| RulesError::Invalid {
            origin: file.origin.clone(),
            message: format!("rule {:?} (profile {profile}): `reason`: {m}", r.id),
        })?;
        used.extend_from_slice(e.fields());
        used.extend(t.iter().filter_map(|p| match p {
            Piece::Field(i) => Some(*i),
            Piece::Text(_) => None,
        }));
        rules.push((r, e, t));
    }
    Ok((rules, used))
}

impl Fields {
    /// The standard fields' indices in `schema` (`primary`: the first criteria).
    fn resolve(schema: &Schema, primary: Option<&crate::profile::ResolvedCriteria>) -> Fields {
        let must = |n: &str| {
            schema
                .lookup(n)
                .expect("standard field names are always defined")
        };
        Fields {
            lhs: must("lhs"),
            rhs: must("rhs"),
            difference: must("difference"),
            abs_difference: must("abs_difference"),
            rel_difference: must("rel_difference"),
            tolerance: must("tolerance"),
            change: primary.and_then(|c| schema.lookup(&format!("change_{}_diff", c.name))),
            days_since_last: must("days_since_last"),
            break_age: must("break_age"),
            score: must("score"),
            rank: must("rank"),
            top_features: schema.lookup("top_features"),
            key: schema.lookup("key"),
            date: schema.lookup("date"),
            comment: must("comment"),
            dq: must("dq"),
            out_of_tolerance: must("out_of_tolerance"),
            run_len: must("run_len"),
            run_days: must("run_days"),
            run_closed: must("run_closed"),
            status: must("status"),
            currency: schema.lookup("currency"),
            run_extra: [
                "run_d0",
                "run_dlhs0",
                "run_drhs0",
                "run_const",
                "run_lhs_moves",
                "run_rhs_frozen",
                "run_linear",
                "run_proportional",
            ]
            .iter()
            .map(|n| (n.to_string(), must(n)))
            .collect(),
        }
    }

    /// Every field index read by the summary, severity and LLM.
    fn indices(&self) -> Vec<usize> {
        let f = self;
        let mut used = Vec::new();
        used.extend([
            f.lhs,
            f.rhs,
            f.difference,
            f.abs_difference,
            f.rel_difference,
            f.tolerance,
            f.days_since_last,
            f.break_age,
            f.score,
            f.rank,
            f.comment,
            f.dq,
            f.out_of_tolerance,
            f.run_len,
            f.run_days,
            f.run_closed,
            f.status,
        ]);
        used.extend(
            [f.change, f.top_features, f.key, f.date, f.currency]
                .into_iter()
                .flatten(),
        );
        used.extend(f.run_extra.iter().map(|(_, i)| *i));
        used
    }
}

impl<'f> Categorizer<'f> {
    /// Compiles the rules that apply to `resolved`'s profile against the columns of `df`.
    pub fn new(
        file: &'f RulesFile,
        df: &DataFrame,
        resolved: &crate::profile::Resolved,
    ) -> Result<Categorizer<'f>, RulesError> {
        let schema = Schema::new(df, resolved, &file.params());
        let profile = resolved.profile.name.as_str();
        let (rules, mut used) = compile_rules(file, profile, &schema)?;
        let primary = resolved.criteria.first();
        let f = Fields::resolve(&schema, primary);
        used.extend(f.indices());
        used.sort_unstable();
        used.dedup();
        let (lhs_name, rhs_name) = match primary {
            Some(c) => (
                c.lhs.clone().unwrap_or_else(|| "left side".into()),
                c.rhs.clone().unwrap_or_else(|| "right side".into()),
            ),
            None => ("left side".into(), "right side".into()),
        };
        let diff_name = match primary {
            Some(c) if !c.is_pair() => format!("{} difference", c.name.replace('_', " ")),
            _ => "difference".to_string(),
        };
        Ok(Categorizer {
            profile: profile.to_string(),
            diff_name,
            file,
            schema,
            rules,
            severity: file.severity_for(profile),
            used,
            f,
            lhs_name,
            rhs_name,
            flagged_total: 0,
        })
    }

    /// Field names available for this table (for `breakdesk rules --fields`).
    pub fn field_names(&self) -> &[String] {
        self.schema.names()
    }

    /// Reads the fields for `rows` of `df` (the same columns as at compile time).
    pub fn facts(&self, df: &DataFrame, rows: &[usize]) -> Facts {
        Facts::build(df, rows, &self.schema, &self.used)
    }

    /// Categorizes every row of `facts` by the rules.
    pub fn categorize(&self, facts: &Facts) -> Vec<Categorization> {
        use rayon::prelude::*;
        (0..facts.len())
            .into_par_iter()
            .map(|k| self.one(facts, k))
            .collect()
    }

    fn one(&self, facts: &Facts, k: usize) -> Categorization {
        let f = &self.f;
        // A break whose comment explains it (and whose data is sound).
        if facts.num(f.out_of_tolerance, k) == 1.0 && facts.text(f.dq, k).is_empty() {
            let comment = facts.text(f.comment, k);
            if let Some(e) = self.file.explanation(&self.profile, &comment) {
                let mut c = self.finish(
                    facts,
                    k,
                    e.bucket.clone(),
                    0.9,
                    format!("explained:{}", e.id),
                    format!("the comment explains it: {comment}"),
                );
                c.explained = true;
                self.cap_explained(facts, k, &mut c);
                return c;
            }
        }
        let row = facts.row(k);
        let hit = self.rules.iter().find(|(_, e, _)| e.matches(&row));
        let (bucket_name, confidence, rule, details) = match hit {
            Some((r, _, t)) => (
                r.bucket.clone(),
                r.confidence,
                r.id.clone(),
                render(t, facts, k),
            ),
            None => (
                self.file.fallback.clone(),
                0.5,
                "none".to_string(),
                self.new_issue_details(facts, k),
            ),
        };
        self.finish(facts, k, bucket_name, confidence, rule, details)
    }

    /// Severity, summary and flags for a bucket chosen for row `k`.
    pub fn finish(
        &self,
        facts: &Facts,
        k: usize,
        bucket_name: String,
        confidence: f64,
        rule: String,
        details: String,
    ) -> Categorization {
        let bucket = self.file.bucket(&bucket_name);
        let is_break = bucket.is_none_or(|b| b.is_break);
        let (severity, severity_reason) = self.severity(facts, k, bucket);
        let mut c = Categorization {
            bucket: bucket_name,
            confidence,
            rule,
            details,
            severity,
            severity_reason,
            summary: String::new(),
            auto_resolve: bucket.is_some_and(|b| b.auto_resolve && b.is_break),
            is_break,
            decided_by: Decider::Rules,
            note: String::new(),
            explained: false,
        };
        c.summary = self.summary(facts, k, &c);
        c
    }

    /// The severity of an explained break: Low, or at most Medium when its amount is material
    /// (at least the first amount threshold of the severity table).
    fn cap_explained(&self, facts: &Facts, k: usize, c: &mut Categorization) {
        let amount = facts.num(self.f.abs_difference, k);
        let material = amount.is_finite() && amount >= self.severity.amount[0];
        let cap = if material {
            Severity::Medium
        } else {
            Severity::Low
        };
        if c.severity > cap {
            c.severity = cap;
            c.severity_reason = format!(
                "{}; at most {} when the comment explains the break{}",
                c.severity_reason,
                cap.as_str(),
                if material { " (material amount)" } else { "" }
            );
            c.summary = self.summary(facts, k, c);
        }
    }

    /// What was seen on a row no rule explains.
    fn new_issue_details(&self, facts: &Facts, k: usize) -> String {
        let f = &self.f;
        let mut parts = vec![format!(
            "no rule matched; difference {} (tolerance {})",
            facts.text(f.difference, k),
            facts.text(f.tolerance, k)
        )];
        if facts.present(f.lhs, k) {
            parts.push(format!(
                "{} {} vs {} {}",
                self.lhs_name,
                facts.text(f.lhs, k),
                self.rhs_name,
                facts.text(f.rhs, k)
            ));
        }
        if facts.present(f.run_len, k) {
            parts.push(format!(
                "out of tolerance for {} record(s) over {} day(s), {}",
                facts.text(f.run_len, k),
                facts.text(f.run_days, k),
                if facts.num(f.run_closed, k) == 1.0 {
                    "cleared since"
                } else {
                    "still open"
                }
            ));
        }
        let status = facts.text(f.status, k);
        if !status.is_empty() {
            parts.push(format!("status {status}"));
        }
        parts.join("; ")
    }

    fn severity(&self, facts: &Facts, k: usize, bucket: Option<&Bucket>) -> (Severity, String) {
        let s = self.severity;
        let f = &self.f;
        let level = |v: f64, th: &[f64; 3]| th.iter().filter(|t| v.is_finite() && v >= **t).count();
        let mut reasons = Vec::new();
        let amount = facts.num(f.abs_difference, k);
        let amount_l = level(amount, &s.amount);
        if amount_l > 0 {
            reasons.push(format!(
                "|difference| {} ≥ {}",
                fmt_amount(amount),
                fmt_amount(s.amount[amount_l - 1])
            ));
        }
        let rel = facts.num(f.rel_difference, k).abs();
        let rel_l = if amount_l > 0 {
            level(rel, &s.relative)
        } else {
            0
        };
        if rel_l > 0 {
            reasons.push(format!(
                "{:.1}% of the balance ≥ {}%",
                rel * 100.0,
                s.relative[rel_l - 1] * 100.0
            ));
        }
        let age = facts.num(f.break_age, k);
        let age_l = level(age, &s.age_days);
        if age_l > 0 {
            reasons.push(format!(
                "open {} days ≥ {}",
                fmt_amount(age),
                fmt_amount(s.age_days[age_l - 1])
            ));
        }
        let mut l = amount_l.max(rel_l).max(age_l);
        let rank = facts.num(f.rank, k);
        let top = ((self.flagged_total as f64) * s.score_top_share)
            .ceil()
            .max(1.0);
        if self.flagged_total > 0 && rank.is_finite() && rank <= top && l < 3 {
            l += 1;
            reasons.push(format!(
                "score among the top {}% (rank {})",
                s.score_top_share * 100.0,
                fmt_amount(rank)
            ));
        }
        let mut sev = Severity::from_level(l);
        if let Some(b) = bucket {
            if !b.is_break {
                sev = Severity::Low;
                reasons.push("not a break".into());
            }
            if let Some(lo) = b.min_severity
                && sev < lo
            {
                sev = lo;
                reasons.push(format!("at least {} for {}", lo.as_str(), b.name));
            }
            if let Some(hi) = b.max_severity
                && sev > hi
            {
                sev = hi;
                reasons.push(format!("at most {} for {}", hi.as_str(), b.name));
            }
        }
        if reasons.is_empty() {
            reasons.push("below every threshold".into());
        }
        (sev, reasons.join("; "))
    }

    /// The template summary: the bucket, the row's own numbers, what drove the score, next step.
    pub fn summary(&self, facts: &Facts, k: usize, c: &Categorization) -> String {
        use std::fmt::Write;
        let f = &self.f;
        // Written into one string (a summary per anomaly: hundreds of thousands in a large run).
        let mut s = String::with_capacity(720);
        let pct = (c.confidence * 100.0).round();
        let _ = write!(
            s,
            "{} ({} severity, confidence {pct}%, {} {}): {}.",
            c.bucket,
            c.severity.as_str(),
            if c.decided_by == Decider::Rules {
                "rule"
            } else {
                "by"
            },
            c.rule,
            c.details.trim_end_matches('.')
        );
        let key = f.key.map(|i| facts.text_ref(i, k));
        let key = key.as_deref().filter(|t| !t.is_empty());
        if let Some(key) = key {
            let date = f.date.map(|i| facts.text_ref(i, k));
            match date.as_deref().filter(|t| !t.is_empty()) {
                Some(date) => {
                    let _ = write!(s, " {key} on {date}:");
                }
                None => {
                    let _ = write!(s, " {key}:");
                }
            }
        }
        if facts.present(f.lhs, k) {
            let _ = write!(
                s,
                " {} {} vs {} {},",
                self.lhs_name,
                facts.text_ref(f.lhs, k),
                self.rhs_name,
                facts.text_ref(f.rhs, k)
            );
        }
        let _ = write!(
            s,
            " {} {} (tolerance {})",
            self.diff_name,
            facts.text_ref(f.difference, k),
            facts.text_ref(f.tolerance, k)
        );
        if let Some(ch) = f.change
            && facts.present(ch, k)
        {
            let v = facts.num(ch, k);
            let days = facts.num(f.days_since_last, k);
            let _ = write!(
                s,
                ", changed by {}{}",
                if v > 0.0 { "+" } else { "" },
                fmt_amount(v)
            );
            if days.is_finite() && days > 0.0 {
                let _ = write!(s, " since the record {} day(s) earlier", fmt_amount(days));
            }
        }
        s.push('.');
        if facts.present(f.score, k) {
            let _ = write!(
                s,
                " Anomaly score {:.3} (rank {})",
                facts.num(f.score, k),
                facts.text_ref(f.rank, k)
            );
            let drivers = f.top_features.map(|i| facts.text_ref(i, k));
            if let Some(t) = drivers.as_deref().filter(|t| !t.is_empty()) {
                s.push_str(", driven by ");
                let names = t.split("; ").filter_map(|p| p.split_whitespace().next());
                for (n, name) in names.enumerate() {
                    if n > 0 {
                        s.push_str(", ");
                    }
                    s.push_str(name);
                }
            }
            s.push('.');
        }
        if let Some(b) = self.file.bucket(&c.bucket) {
            s.push_str(" Next step: ");
            s.push_str(&b.next_step);
            if c.auto_resolve {
                s.push_str(" Proposed for auto-resolution (a supervisor approves).");
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_tally_counts_each_bucket_by_severity() {
        let cat = |bucket: &str, severity: Severity| Categorization {
            bucket: bucket.into(),
            confidence: 0.9,
            rule: "r".into(),
            details: String::new(),
            severity,
            severity_reason: String::new(),
            summary: String::new(),
            auto_resolve: false,
            is_break: true,
            decided_by: Decider::Rules,
            note: String::new(),
            explained: false,
        };
        let cats = [
            cat("Sign Flip", Severity::Critical),
            cat("Timing Issue", Severity::Low),
            cat("Sign Flip", Severity::Critical),
            cat("Timing Issue", Severity::High),
        ];
        let mut t = BucketTally::default();
        assert!(t.is_empty());
        for c in &cats {
            t.add(c);
        }
        assert_eq!(t, BucketTally::of(&cats));
        assert_eq!(t.0.len(), 2);
        assert_eq!(t.0["Sign Flip"], [0, 0, 0, 2]);
        assert_eq!(t.0["Timing Issue"], [1, 0, 1, 0]);
    }

    #[test]
    fn embedded_rules_parse_and_cover_the_taxonomy() {
        let f = RulesFile::embedded();
        for name in [
            "Timing Issue",
            "Rounding Error",
            "FX Revaluation",
            "Missing Entry",
            "Duplicate Entry",
            "Sign Flip",
            "Fat Finger",
            "Stale Balance",
            "Systematic Drift",
            "Data Quality",
            "New Issue",
        ] {
            assert!(f.bucket(name).is_some(), "bucket {name}");
        }
        assert_eq!(f.fallback, "New Issue");
        assert_eq!(
            f.bucket_for_label("timing").map(|b| b.name.as_str()),
            Some("Timing Issue")
        );
    }

    #[test]
    fn bad_rules_files_name_the_problem() {
        let base = RULES_TOML.to_string();
        let check = |text: &str, want: &str| {
            let e = RulesFile::parse(text, "team.toml").unwrap_err().to_string();
            assert!(e.contains(want), "{e:?} should contain {want:?}");
            assert!(e.contains("team.toml"), "{e}");
        };
        check(
            &base.replacen("bucket = \"Sign Flip\"", "bucket = \"Sign Flipp\"", 1),
            "rule \"sign_flip\": bucket \"Sign Flipp\" is not one of the buckets",
        );
        check(
            &base.replacen("confidence = 0.95", "confidence = 1.5", 1),
            "confidence must be between 0 and 1",
        );
        check(
            &base.replacen("when = \"not out_of_tolerance\"", "when = \"not (\"", 1),
            "rule \"within_tolerance\": `when`: expected a value",
        );
        check(
            &base.replacen("fallback = \"New Issue\"", "fallback = \"Other\"", 1),
            "fallback \"Other\" is not one of the buckets",
        );
        check(
            &base.replacen("version = 1", "version = 7", 1),
            "version 7 is not supported",
        );
        check(
            &base.replacen(
                "amount = [1000.0, 100000.0, 1000000.0]",
                "amount = [1000.0, 10.0, 1000000.0]",
                1,
            ),
            "severity.default.amount must be three ascending numbers",
        );
        check(
            &base.replacen("id = \"stale\"", "id = \"drift\"", 1),
            "rule id \"drift\" is used twice",
        );
        check(
            &base.replacen(
                "reason = \"every difference",
                "reason = \"{oops every difference",
                1,
            ),
            "unclosed `{`",
        );
        check(&format!("{base}\n[oops]\nx = 1\n"), "unknown field `oops`");
    }
}
