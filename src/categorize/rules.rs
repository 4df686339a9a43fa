//! The rules file: buckets, rules, comment explanations, severity thresholds and `reason`
//! templates.

use super::fields::{Facts, Param};
use super::{RULES_TOML, RulesError, Severity};
use crate::expr::Expr;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::path::Path;

/// One bucket of the taxonomy.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Bucket {
    pub name: String,
    /// The generator's break kind this bucket stands for (accuracy reports).
    #[serde(default)]
    pub label: Option<String>,
    pub signature: String,
    pub next_step: String,
    #[serde(default)]
    pub auto_resolve: bool,
    #[serde(default = "yes")]
    pub is_break: bool,
    #[serde(default)]
    pub min_severity: Option<Severity>,
    #[serde(default)]
    pub max_severity: Option<Severity>,
}

fn yes() -> bool {
    true
}

/// One rule.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub id: String,
    pub bucket: String,
    #[serde(default)]
    pub profiles: Vec<String>,
    pub when: String,
    pub confidence: f64,
    #[serde(default)]
    pub reason: String,
}

/// Comment phrases that explain a break: the row is not flagged, takes `bucket`, and its
/// severity is capped (Low, or Medium when the amount is material).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Explanation {
    pub id: String,
    pub bucket: String,
    /// The profiles it applies to (empty: all).
    #[serde(default)]
    pub profiles: Vec<String>,
    /// Matched anywhere in the comment, ignoring case and repeated spaces.
    pub phrases: Vec<String>,
}

/// Lower case with runs of whitespace as one space.
fn fold(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// Severity thresholds (Medium, High, Critical).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SeverityRules {
    pub amount: [f64; 3],
    pub relative: [f64; 3],
    pub age_days: [f64; 3],
    pub score_top_share: f64,
}

/// A parsed and checked rules file.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RulesFile {
    pub version: u32,
    pub fallback: String,
    #[serde(default)]
    pub params: toml::Table,
    pub buckets: Vec<Bucket>,
    pub rules: Vec<Rule>,
    /// Comment phrases that explain a break (tried before the rules).
    #[serde(default)]
    pub explanations: Vec<Explanation>,
    pub severity: BTreeMap<String, SeverityRules>,
    /// Where it came from (messages only).
    #[serde(skip)]
    pub origin: String,
}

impl RulesFile {
    /// The embedded rules.
    pub fn embedded() -> RulesFile {
        // Covered by tests; a failure here is a build defect.
        RulesFile::parse(RULES_TOML, "config/rules.toml (embedded)")
            .expect("embedded config/rules.toml is valid")
    }

    /// The rules file at `path`, or the embedded one.
    pub fn load(path: Option<&Path>) -> Result<RulesFile, RulesError> {
        match path {
            None => Ok(RulesFile::embedded()),
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|source| RulesError::Read {
                    path: p.to_path_buf(),
                    source,
                })?;
                RulesFile::parse(&text, &p.display().to_string())
            }
        }
    }

    /// Parses and checks a rules file's text.
    pub fn parse(text: &str, origin: &str) -> Result<RulesFile, RulesError> {
        let bad = |message: String| RulesError::Invalid {
            origin: origin.to_string(),
            message,
        };
        let mut f: RulesFile =
            toml::from_str(text).map_err(|e| bad(e.to_string().trim().to_string()))?;
        f.origin = origin.to_string();
        if f.version != 1 {
            return Err(bad(format!(
                "version {} is not supported (this breakdesk reads version 1)",
                f.version
            )));
        }
        let mut names = HashSet::new();
        for b in &f.buckets {
            if b.name.trim().is_empty() {
                return Err(bad("a bucket has an empty name".into()));
            }
            if !names.insert(b.name.as_str()) {
                return Err(bad(format!("bucket {:?} is defined twice", b.name)));
            }
            if let (Some(lo), Some(hi)) = (b.min_severity, b.max_severity)
                && lo > hi
            {
                return Err(bad(format!(
                    "bucket {:?}: min_severity {} is above max_severity {}",
                    b.name,
                    lo.as_str(),
                    hi.as_str()
                )));
            }
        }
        if !names.contains(f.fallback.as_str()) {
            return Err(bad(format!(
                "fallback {:?} is not one of the buckets ({})",
                f.fallback,
                f.buckets
                    .iter()
                    .map(|b| b.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        for (k, v) in &f.params {
            if !(v.is_integer() || v.is_float() || v.is_str()) {
                return Err(bad(format!(
                    "params.{k} must be a number or a string, found {}",
                    v.type_str()
                )));
            }
        }
        let mut ids = HashSet::new();
        for r in &f.rules {
            if !ids.insert(r.id.as_str()) {
                return Err(bad(format!("rule id {:?} is used twice", r.id)));
            }
            if !names.contains(r.bucket.as_str()) {
                return Err(bad(format!(
                    "rule {:?}: bucket {:?} is not one of the buckets",
                    r.id, r.bucket
                )));
            }
            if !(0.0..=1.0).contains(&r.confidence) {
                return Err(bad(format!(
                    "rule {:?}: confidence must be between 0 and 1, found {}",
                    r.id, r.confidence
                )));
            }
            // Syntax only: field names are checked against each table.
            Expr::compile(&r.when, &|_| Some(0))
                .map_err(|e| bad(format!("rule {:?}: `when`: {e}", r.id)))?;
            template(&r.reason, &|_| Some(0))
                .map_err(|m| bad(format!("rule {:?}: `reason`: {m}", r.id)))?;
        }
        let mut eids = HashSet::new();
        for e in &f.explanations {
            if !eids.insert(e.id.as_str()) {
                return Err(bad(format!("explanation id {:?} is used twice", e.id)));
            }
            if !names.contains(e.bucket.as_str()) {
                return Err(bad(format!(
                    "explanation {:?}: bucket {:?} is not one of the buckets",
                    e.id, e.bucket
                )));
            }
            if e.phrases.is_empty() || e.phrases.iter().any(|p| p.trim().is_empty()) {
                return Err(bad(format!(
                    "explanation {:?}: phrases must be a non-empty list of non-empty texts",
                    e.id
                )));
            }
        }
        if !f.severity.contains_key("default") {
            return Err(bad("[severity.default] is missing".into()));
        }
        for (name, s) in &f.severity {
            for (key, th) in [
                ("amount", s.amount),
                ("relative", s.relative),
                ("age_days", s.age_days),
            ] {
                if !(th[0] <= th[1] && th[1] <= th[2]) || th.iter().any(|v| !v.is_finite()) {
                    return Err(bad(format!(
                        "severity.{name}.{key} must be three ascending numbers (Medium, High, Critical), found {th:?}"
                    )));
                }
            }
            if !(0.0..=1.0).contains(&s.score_top_share) {
                return Err(bad(format!(
                    "severity.{name}.score_top_share must be between 0 and 1, found {}",
                    s.score_top_share
                )));
            }
        }
        Ok(f)
    }

    pub fn bucket(&self, name: &str) -> Option<&Bucket> {
        self.buckets.iter().find(|b| b.name == name)
    }

    /// The first explanation of `profile` whose phrase the comment contains.
    pub fn explanation(&self, profile: &str, comment: &str) -> Option<&Explanation> {
        if comment.trim().is_empty() {
            return None;
        }
        let c = fold(comment);
        self.explanations.iter().find(|e| {
            (e.profiles.is_empty() || e.profiles.iter().any(|p| p == profile))
                && e.phrases.iter().any(|p| c.contains(&fold(p)))
        })
    }

    /// Whether a break explained by `e` is proposed for auto-resolution (its bucket allows it).
    pub fn explained_auto_resolves(&self, e: &Explanation) -> bool {
        self.bucket(&e.bucket)
            .is_some_and(|b| b.auto_resolve && b.is_break)
    }

    /// The bucket a generator label stands for.
    pub fn bucket_for_label(&self, label: &str) -> Option<&Bucket> {
        self.buckets
            .iter()
            .find(|b| b.label.as_deref() == Some(label))
    }

    pub(super) fn params(&self) -> Vec<(String, Param)> {
        self.params
            .iter()
            .filter_map(|(k, v)| {
                let p = match v {
                    toml::Value::Integer(i) => Param::Num(*i as f64),
                    toml::Value::Float(x) => Param::Num(*x),
                    toml::Value::String(s) => Param::Text(s.clone()),
                    _ => return None,
                };
                Some((k.clone(), p))
            })
            .collect()
    }

    pub(super) fn severity_for(&self, profile: &str) -> &SeverityRules {
        self.severity
            .get(profile)
            .or_else(|| self.severity.get("default"))
            .expect("checked at parse: [severity.default] exists")
    }
}

/// A piece of a `reason` template.
#[derive(Debug, Clone)]
pub(super) enum Piece {
    Text(String),
    Field(usize),
}

pub(super) fn template(
    text: &str,
    schema: &dyn Fn(&str) -> Option<usize>,
) -> Result<Vec<Piece>, String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        out.push(Piece::Text(rest[..open].to_string()));
        let Some(close) = rest[open..].find('}') else {
            return Err(format!("unclosed `{{` in {text:?}"));
        };
        let name = rest[open + 1..open + close].trim();
        match schema(name) {
            Some(i) => out.push(Piece::Field(i)),
            None => return Err(format!("unknown field `{name}` in {text:?}")),
        }
        rest = &rest[open + close + 1..];
    }
    out.push(Piece::Text(rest.to_string()));
    Ok(out)
}

pub(super) fn render(pieces: &[Piece], facts: &Facts, k: usize) -> String {
    let mut s = String::new();
    for p in pieces {
        match p {
            Piece::Text(t) => s.push_str(t),
            Piece::Field(i) => {
                let v = facts.text(*i, k);
                s.push_str(if v.is_empty() { "(none)" } else { &v });
            }
        }
    }
    s
}
