//! Column profiles: which columns of a reconciliation file play which role (keys, criteria pairs
//! with tolerances, difference, date, comment, status, categoricals, extra numeric features).
//! Profiles are TOML; three are built in and auto-detected from a file's header.

use crate::header::{normalize_header, slug};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;

const BUILTIN: [(&str, &str); 3] = [
    ("gl_ihub", include_str!("../config/profiles/gl_ihub.toml")),
    ("trades", include_str!("../config/profiles/trades.toml")),
    ("generic", include_str!("../config/profiles/generic.toml")),
];

#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("cannot read profile file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("profile file {path} is invalid: {message}")]
    Invalid { path: String, message: String },
    #[error(
        "unknown profile {name:?}: built-in profiles are gl_ihub, trades, generic (or give the path of a profile .toml file)"
    )]
    Unknown { name: String },
    #[error(
        "{file}: profile {profile} needs column(s) {missing} which the file does not have.\n  columns found: {found}"
    )]
    MissingColumns {
        file: String,
        profile: String,
        missing: String,
        found: String,
    },
    #[error(
        "{file}: cannot tell which profile fits this header.\n{details}\n  columns found: {found}\n  hint: pass --profile NAME|FILE (`generic` scores numeric columns as they are)"
    )]
    NotDetected {
        file: String,
        details: String,
        found: String,
    },
}

/// Accepted spellings of one column: a name or a list of names.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum ColumnRef {
    One(String),
    Many(Vec<String>),
}

impl ColumnRef {
    pub fn names(&self) -> &[String] {
        match self {
            ColumnRef::One(s) => std::slice::from_ref(s),
            ColumnRef::Many(v) => v,
        }
    }
    /// The first (canonical) spelling, for messages.
    pub fn display(&self) -> String {
        self.names().first().cloned().unwrap_or_default()
    }
}

fn yes() -> bool {
    true
}

/// Which explanations of `routine` a profile allows (its `[routine]` table): standing items,
/// recurring breaks, a habitual lag of one side, reversals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Patterns {
    #[serde(default = "yes")]
    pub standing: bool,
    #[serde(default = "yes")]
    pub recurring: bool,
    #[serde(default = "yes")]
    pub lag: bool,
    #[serde(default = "yes")]
    pub reversal: bool,
}

impl Default for Patterns {
    fn default() -> Self {
        Patterns {
            standing: true,
            recurring: true,
            lag: true,
            reversal: true,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Criteria {
    pub name: String,
    #[serde(default)]
    pub lhs: Option<ColumnRef>,
    #[serde(default)]
    pub rhs: Option<ColumnRef>,
    /// The given difference column; derived as lhs − rhs when absent (pairs only).
    #[serde(default)]
    pub difference: Option<ColumnRef>,
    #[serde(default)]
    pub abs_tolerance: f64,
    #[serde(default)]
    pub rel_tolerance: f64,
    /// A column holding a per-row tolerance (e.g. PRICE TOLERANCE).
    #[serde(default)]
    pub tolerance_column: Option<ColumnRef>,
    /// When false the criteria is used only if the file has its columns.
    #[serde(default = "yes")]
    pub required: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default = "yes")]
    pub auto_detect: bool,
    #[serde(default)]
    pub keys: Vec<ColumnRef>,
    #[serde(default)]
    pub optional_keys: Vec<ColumnRef>,
    #[serde(default)]
    pub date: Option<ColumnRef>,
    #[serde(default)]
    pub comment: Option<ColumnRef>,
    #[serde(default)]
    pub status: Option<ColumnRef>,
    #[serde(default)]
    pub break_values: Vec<String>,
    #[serde(default)]
    pub match_values: Vec<String>,
    #[serde(default)]
    pub categoricals: Vec<ColumnRef>,
    #[serde(default)]
    pub numeric: Vec<ColumnRef>,
    /// Use every all-numeric column as a numeric feature (the generic profile).
    #[serde(default)]
    pub numeric_auto: bool,
    #[serde(default)]
    pub extra_dates: Vec<ColumnRef>,
    #[serde(default)]
    pub trade_date: Option<ColumnRef>,
    #[serde(default)]
    pub criteria: Vec<Criteria>,
    /// Which patterns make a break routine for its account (docs/detection.md, "Each account's own
    /// normal"): standing items, recurring breaks, a habitual lag of one side, reversals.
    #[serde(default)]
    pub routine: Patterns,
    /// Whether the same keys come back file after file (balances per account: true) or are
    /// mostly new (trade-level breaks: false). A saved model is retrained when most of a file's
    /// keys are new only where they recur.
    #[serde(default = "yes")]
    pub keys_recur: bool,
}

/// A criteria bound to the actual header names of one file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResolvedCriteria {
    pub name: String,
    pub lhs: Option<String>,
    pub rhs: Option<String>,
    pub difference: Option<String>,
    pub tolerance_column: Option<String>,
    pub abs_tolerance: f64,
    pub rel_tolerance: f64,
}

impl ResolvedCriteria {
    pub fn is_pair(&self) -> bool {
        self.lhs.is_some() && self.rhs.is_some()
    }
}

/// One role column: its canonical name (from the profile, so differently spelled files agree)
/// and the header as written in this file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoleColumn {
    pub slug: String,
    pub header: String,
}

/// A profile bound to one file's header: every role names the header as written in the file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Resolved {
    pub profile: Profile,
    /// Key columns found, with their position in `keys` + `optional_keys` (for matching files).
    pub keys: Vec<(usize, String)>,
    pub date: Option<String>,
    pub comment: Option<String>,
    pub status: Option<String>,
    pub categoricals: Vec<RoleColumn>,
    pub numeric: Vec<RoleColumn>,
    pub extra_dates: Vec<RoleColumn>,
    pub trade_date: Option<String>,
    pub criteria: Vec<ResolvedCriteria>,
    /// How many of the profile's columns were found (used to rank detection).
    pub matched: usize,
}

impl Resolved {
    /// Key column names.
    pub fn key_names(&self) -> Vec<String> {
        self.keys.iter().map(|(_, n)| n.clone()).collect()
    }

    /// Whether a status value means a break.
    pub fn is_break_status(&self, value: &str) -> bool {
        let v = value.trim();
        if !self.profile.break_values.is_empty() {
            self.profile
                .break_values
                .iter()
                .any(|b| b.eq_ignore_ascii_case(v))
        } else {
            !v.is_empty()
                && !self
                    .profile
                    .match_values
                    .iter()
                    .any(|m| m.eq_ignore_ascii_case(v))
        }
    }
}

impl Profile {
    /// A built-in profile by name.
    pub fn builtin(name: &str) -> Option<Profile> {
        BUILTIN
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(n, text)| Profile::from_toml(text, n).expect("built-in profiles are valid"))
    }

    pub fn builtins() -> Vec<Profile> {
        BUILTIN
            .iter()
            .map(|(n, text)| Profile::from_toml(text, n).expect("built-in profiles are valid"))
            .collect()
    }

    pub fn from_toml(text: &str, origin: &str) -> Result<Profile, ProfileError> {
        let p: Profile = toml::from_str(text).map_err(|e| ProfileError::Invalid {
            path: origin.to_string(),
            message: e.to_string().trim().to_string(),
        })?;
        p.check(origin)?;
        Ok(p)
    }

    pub fn from_file(path: &Path) -> Result<Profile, ProfileError> {
        let text = std::fs::read_to_string(path).map_err(|source| ProfileError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Profile::from_toml(&text, &path.display().to_string())
    }

    /// A built-in name or a path to a TOML file.
    pub fn by_name_or_path(spec: &str) -> Result<Profile, ProfileError> {
        if let Some(p) = Profile::builtin(spec) {
            return Ok(p);
        }
        let path = Path::new(spec);
        if spec.ends_with(".toml") || path.exists() {
            return Profile::from_file(path);
        }
        Err(ProfileError::Unknown {
            name: spec.to_string(),
        })
    }

    fn check(&self, origin: &str) -> Result<(), ProfileError> {
        let invalid = |message: String| ProfileError::Invalid {
            path: origin.to_string(),
            message,
        };
        if self.name.trim().is_empty() {
            return Err(invalid("`name` is empty".into()));
        }
        for c in &self.criteria {
            if c.lhs.is_some() != c.rhs.is_some() {
                return Err(invalid(format!(
                    "criteria {:?} needs both `lhs` and `rhs`, or neither",
                    c.name
                )));
            }
            if c.lhs.is_none() && c.difference.is_none() {
                return Err(invalid(format!(
                    "criteria {:?} needs `lhs` and `rhs`, or a `difference` column",
                    c.name
                )));
            }
            if c.abs_tolerance < 0.0 || c.rel_tolerance < 0.0 {
                return Err(invalid(format!(
                    "criteria {:?}: tolerances cannot be negative",
                    c.name
                )));
            }
            if slug(&c.name).is_empty() {
                return Err(invalid(format!(
                    "criteria name {:?} has no letters or digits",
                    c.name
                )));
            }
        }
        let mut seen = std::collections::HashSet::new();
        for c in &self.criteria {
            if !seen.insert(slug(&c.name)) {
                return Err(invalid(format!("criteria name {:?} is used twice", c.name)));
            }
        }
        if !self.break_values.is_empty() && !self.match_values.is_empty() {
            // Both may be given; break_values decides. Nothing to check.
        }
        Ok(())
    }

    /// A header naming every column of the profile by its first spelling (for records that come
    /// without a file, e.g. the service's).
    pub fn canonical_header(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let mut add = |c: &ColumnRef| {
            let n = c.display();
            if !n.is_empty() && !out.contains(&n) {
                out.push(n);
            }
        };
        self.keys.iter().for_each(&mut add);
        self.optional_keys.iter().for_each(&mut add);
        for c in [&self.date, &self.comment, &self.status, &self.trade_date]
            .into_iter()
            .flatten()
        {
            add(c);
        }
        self.categoricals.iter().for_each(&mut add);
        self.numeric.iter().for_each(&mut add);
        self.extra_dates.iter().for_each(&mut add);
        for c in &self.criteria {
            for r in [&c.lhs, &c.rhs, &c.difference, &c.tolerance_column]
                .into_iter()
                .flatten()
            {
                add(r);
            }
        }
        out
    }

    /// Binds the profile to a header. `numeric_override` replaces `numeric` (e.g. `--columns`).
    pub fn resolve(
        &self,
        header: &[String],
        file: &str,
        numeric_override: &[String],
    ) -> Result<Resolved, ProfileError> {
        let index: HashMap<String, &String> =
            header.iter().map(|h| (normalize_header(h), h)).collect();
        let find = |c: &ColumnRef| -> Option<String> {
            c.names()
                .iter()
                .find_map(|n| index.get(&normalize_header(n)).map(|h| (*h).clone()))
        };
        let mut missing: Vec<String> = Vec::new();
        let mut matched = 0usize;
        let mut need = |c: &ColumnRef, missing: &mut Vec<String>| -> Option<String> {
            let f = find(c);
            match &f {
                Some(_) => matched += 1,
                None => missing.push(format!("`{}`", c.display())),
            }
            f
        };

        let mut keys = Vec::new();
        for (i, k) in self.keys.iter().enumerate() {
            if let Some(h) = need(k, &mut missing) {
                keys.push((i, h));
            }
        }
        let date = self.date.as_ref().and_then(|d| need(d, &mut missing));
        let criteria = self.resolve_criteria(&find, &mut missing, &mut matched);
        if !missing.is_empty() {
            return Err(ProfileError::MissingColumns {
                file: file.to_string(),
                profile: self.name.clone(),
                missing: missing.join(", "),
                found: header.join(", "),
            });
        }
        let mut optional = |c: &ColumnRef| {
            let f = find(c);
            if f.is_some() {
                matched += 1;
            }
            f
        };
        for (i, k) in self.optional_keys.iter().enumerate() {
            if let Some(h) = optional(k) {
                keys.push((self.keys.len() + i, h));
            }
        }
        let comment = self.comment.as_ref().and_then(&mut optional);
        let status = self.status.as_ref().and_then(&mut optional);
        let mut roles = |list: &[ColumnRef]| -> Vec<RoleColumn> {
            list.iter()
                .filter_map(|c| {
                    optional(c).map(|header| RoleColumn {
                        slug: slug(&c.display()),
                        header,
                    })
                })
                .collect()
        };
        let categoricals = roles(&self.categoricals);
        let extra_dates = roles(&self.extra_dates);
        let numeric: Vec<RoleColumn> = if numeric_override.is_empty() {
            roles(&self.numeric)
        } else {
            self.numeric_columns(&find, numeric_override, header, file)?
        };
        let trade_date = self.trade_date.as_ref().and_then(&find);
        Ok(Resolved {
            profile: self.clone(),
            keys,
            date,
            comment,
            status,
            categoricals,
            numeric,
            extra_dates,
            trade_date,
            criteria,
            matched,
        })
    }

    /// The criteria whose columns are in the file (a pair's two sides, or a difference), with
    /// the columns a required one lacks added to `missing` and the columns found to `matched`.
    fn resolve_criteria(
        &self,
        find: &dyn Fn(&ColumnRef) -> Option<String>,
        missing: &mut Vec<String>,
        matched: &mut usize,
    ) -> Vec<ResolvedCriteria> {
        let mut criteria = Vec::new();
        for c in &self.criteria {
            let lhs = c.lhs.as_ref().and_then(find);
            let rhs = c.rhs.as_ref().and_then(find);
            let diff = c.difference.as_ref().and_then(find);
            let tol = c.tolerance_column.as_ref().and_then(find);
            let usable = if c.lhs.is_some() {
                lhs.is_some() && rhs.is_some()
            } else {
                diff.is_some()
            };
            if !usable {
                if c.required {
                    if c.lhs.is_some() {
                        for (r, f) in [(&c.lhs, &lhs), (&c.rhs, &rhs)] {
                            if f.is_none() {
                                missing.push(format!(
                                    "`{}`",
                                    r.as_ref().map(ColumnRef::display).unwrap_or_default()
                                ));
                            }
                        }
                    } else {
                        missing.push(format!(
                            "`{}`",
                            c.difference
                                .as_ref()
                                .map(ColumnRef::display)
                                .unwrap_or_default()
                        ));
                    }
                }
                continue;
            }
            *matched += [&lhs, &rhs, &diff, &tol]
                .iter()
                .filter(|x| x.is_some())
                .count();
            criteria.push(ResolvedCriteria {
                name: slug(&c.name),
                lhs,
                rhs,
                difference: diff,
                tolerance_column: tol,
                abs_tolerance: c.abs_tolerance,
                rel_tolerance: c.rel_tolerance,
            });
        }
        criteria
    }

    /// The numeric columns `--columns` names instead of the profile's; one the file lacks is
    /// the error.
    fn numeric_columns(
        &self,
        find: &dyn Fn(&ColumnRef) -> Option<String>,
        names: &[String],
        header: &[String],
        file: &str,
    ) -> Result<Vec<RoleColumn>, ProfileError> {
        let mut v = Vec::new();
        let mut absent = Vec::new();
        for n in names {
            match find(&ColumnRef::One(n.clone())) {
                Some(h) => v.push(RoleColumn {
                    slug: slug(&h),
                    header: h,
                }),
                None => absent.push(format!("`{n}`")),
            }
        }
        if !absent.is_empty() {
            return Err(ProfileError::MissingColumns {
                file: file.to_string(),
                profile: self.name.clone(),
                missing: absent.join(", "),
                found: header.join(", "),
            });
        }
        Ok(v)
    }
}

/// Picks the profile that fits a header best among `candidates` (those with `auto_detect`).
pub fn detect(
    header: &[String],
    file: &str,
    candidates: &[Profile],
) -> Result<Resolved, ProfileError> {
    let mut best: Option<Resolved> = None;
    let mut details = Vec::new();
    for p in candidates.iter().filter(|p| p.auto_detect) {
        match p.resolve(header, file, &[]) {
            Ok(r) => {
                if best.as_ref().is_none_or(|b| r.matched > b.matched) {
                    best = Some(r);
                }
            }
            Err(ProfileError::MissingColumns { missing, .. }) => {
                details.push(format!("  {}: lacks {}", p.name, missing))
            }
            Err(e) => return Err(e),
        }
    }
    best.ok_or_else(|| ProfileError::NotDetected {
        file: file.to_string(),
        details: details.join("\n"),
        found: header.join(", "),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> Vec<String> {
        s.split(", ").map(str::to_string).collect()
    }

    /// Every header a resolved profile gives a role to.
    fn role_columns(r: &Resolved) -> Vec<String> {
        let mut v: Vec<String> = r.key_names();
        v.extend(r.date.iter().cloned());
        v.extend(r.comment.iter().cloned());
        v.extend(r.status.iter().cloned());
        for role in r
            .categoricals
            .iter()
            .chain(&r.numeric)
            .chain(&r.extra_dates)
        {
            v.push(role.header.clone());
        }
        for c in &r.criteria {
            v.extend(c.lhs.iter().cloned());
            v.extend(c.rhs.iter().cloned());
            v.extend(c.difference.iter().cloned());
            v.extend(c.tolerance_column.iter().cloned());
        }
        v.sort();
        v.dedup();
        v
    }

    const GL_SHORT: &str = "Asofdate, Company, Account, AU, Match Status, GL Balance, IHub balance, Balance difference";
    const GL_LONG: &str = "As of Date, Company, Account, AU, Currency, Primary Account, Secondary Account, GL Balance, IHub Balance, Balance Difference, Match Status, Comments";
    const TRADES: &str = "TRADEID, DESKNAME, MatchStatus, RECONDATE, TRADE_DATE, SETTLE DATE, BUY_SELL, CUSIP, QUANTITY, PRICE, QUANTITYDIFFERENCE, PRICE DIFFERENCE, ORIGINAL FACE DIFFERENCE, PRICE TOLERANCE, QUANTITY TOLERANCE, COMMENT, SYSA_BOOK, SYSB_BOOK";

    #[test]
    fn builtins_parse() {
        let all = Profile::builtins();
        assert_eq!(all.len(), 3);
        assert!(Profile::builtin("generic").unwrap().numeric_auto);
    }

    #[test]
    fn both_gl_spellings_detect_as_gl_ihub() {
        let all = Profile::builtins();
        let short = detect(&h(GL_SHORT), "f.csv", &all).unwrap();
        assert_eq!(short.profile.name, "gl_ihub");
        assert_eq!(short.date.as_deref(), Some("Asofdate"));
        assert_eq!(short.key_names(), vec!["Company", "Account", "AU"]);
        assert_eq!(short.criteria[0].rhs.as_deref(), Some("IHub balance"));
        assert_eq!(
            short.criteria[0].difference.as_deref(),
            Some("Balance difference")
        );
        assert_eq!(short.comment, None);

        let long = detect(&h(GL_LONG), "f.csv", &all).unwrap();
        assert_eq!(long.profile.name, "gl_ihub");
        assert_eq!(long.date.as_deref(), Some("As of Date"));
        assert_eq!(
            long.key_names(),
            vec!["Company", "Account", "AU", "Currency"]
        );
        assert_eq!(long.keys[3].0, 3, "Currency is the first optional key");
        assert_eq!(long.comment.as_deref(), Some("Comments"));
        assert_eq!(long.status.as_deref(), Some("Match Status"));
        assert!(long.is_break_status("break") && !long.is_break_status("Match"));
    }

    #[test]
    fn trades_detected_with_per_system_columns_left_alone() {
        let r = detect(&h(TRADES), "t.csv", &Profile::builtins()).unwrap();
        assert_eq!(r.profile.name, "trades");
        assert_eq!(r.criteria.len(), 3);
        assert_eq!(r.criteria[0].name, "quantity");
        assert_eq!(
            r.criteria[0].tolerance_column.as_deref(),
            Some("QUANTITY TOLERANCE")
        );
        let dates: Vec<&str> = r.extra_dates.iter().map(|d| d.header.as_str()).collect();
        assert_eq!(dates, vec!["TRADE_DATE", "SETTLE DATE"]);
        assert_eq!(r.extra_dates[1].slug, "settle_date");
        assert!(!role_columns(&r).contains(&"SYSA_BOOK".to_string()));
        assert!(r.is_break_status("Quantity_Break"));
        assert!(r.is_break_status("SYSA_Only"));
        assert!(!r.is_break_status("Matched"));
    }

    #[test]
    fn header_match_ignores_case_spaces_underscores() {
        let r = detect(
            &h("as_of_date, COMPANY, account, a u, gl_balance, IHUB BALANCE"),
            "f.csv",
            &Profile::builtins(),
        )
        .unwrap();
        assert_eq!(r.profile.name, "gl_ihub");
        assert_eq!(r.criteria[0].difference, None, "difference is derived");
    }

    #[test]
    fn missing_columns_are_named_with_the_header() {
        let e = Profile::builtin("gl_ihub")
            .unwrap()
            .resolve(&h("As of Date, Company, Account, GL Balance"), "x.csv", &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("x.csv"), "{e}");
        assert!(e.contains("`AU`") && e.contains("`IHub Balance`"), "{e}");
        assert!(
            e.contains("columns found: As of Date, Company, Account, GL Balance"),
            "{e}"
        );
    }

    #[test]
    fn undetectable_header_explains_each_profile() {
        let e = detect(&h("a, b, c"), "x.csv", &Profile::builtins())
            .unwrap_err()
            .to_string();
        assert!(e.contains("gl_ihub: lacks"), "{e}");
        assert!(e.contains("trades: lacks"), "{e}");
        assert!(
            !e.contains("generic: lacks"),
            "generic is never auto-detected: {e}"
        );
        assert!(e.contains("--profile"), "{e}");
    }

    #[test]
    fn user_profile_from_toml_and_errors() {
        let p = Profile::from_toml(
            "name = \"mine\"\nkeys = [\"Acct\"]\ndate = \"Dt\"\n[[criteria]]\nname = \"bal\"\nlhs = \"A\"\nrhs = \"B\"\nabs_tolerance = 1.0\n",
            "mine.toml",
        )
        .unwrap();
        let r = p
            .resolve(&h("Acct, Dt, A, B, Extra"), "f.csv", &[])
            .unwrap();
        assert_eq!(r.criteria[0].abs_tolerance, 1.0);
        let e = Profile::from_toml("name = \"x\"\nkeyz = []\n", "bad.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("bad.toml") && e.contains("keyz"), "{e}");
        let e = Profile::from_toml(
            "name = \"x\"\n[[criteria]]\nname = \"c\"\nlhs = \"A\"\n",
            "half.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("both `lhs` and `rhs`"), "{e}");
        assert!(matches!(
            Profile::by_name_or_path("nope"),
            Err(ProfileError::Unknown { .. })
        ));
    }

    #[test]
    fn generic_numeric_override_must_exist() {
        let g = Profile::builtin("generic").unwrap();
        let r = g
            .resolve(&h("x, y, label"), "g.csv", &["x".into(), "Y".into()])
            .unwrap();
        let n: Vec<&str> = r.numeric.iter().map(|x| x.header.as_str()).collect();
        assert_eq!(n, vec!["x", "y"]);
        let e = g
            .resolve(&h("x, y"), "g.csv", &["z".into()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("`z`"), "{e}");
    }
}
