//! Owners of new cases by rules (`[[cases.routes]]`): the first route whose expression matches a
//! new case's record gives the case its owner.
//!
//! A route's `when` is an expression of [`crate::expr`] over `profile`, `key`, `bucket`,
//! `severity`, `difference` and the record's own columns (named as in the file, ignoring case;
//! a column the record lacks is missing, so comparisons with it are false).

use std::cell::RefCell;

use crate::cases::BreakInput;
use crate::expr::{Expr, Row, Value};

/// One compiled route.
#[derive(Debug)]
struct Route {
    owner: String,
    when: Expr,
}

/// The compiled routes, in order.
#[derive(Debug, Default)]
pub struct Router {
    routes: Vec<Route>,
    /// The field names the expressions use, by index.
    names: Vec<String>,
}

/// The fields every case has, besides its record's columns.
const CASE_FIELDS: [&str; 5] = ["profile", "key", "bucket", "severity", "difference"];

impl Router {
    /// Compiles `(owner, when)` pairs; the error names the route (0-based, as in
    /// `cases.routes[i]`) and what is wrong.
    pub fn compile(routes: &[(String, String)]) -> Result<Router, String> {
        let names: RefCell<Vec<String>> = RefCell::new(Vec::new());
        let schema = |name: &str| -> Option<usize> {
            let lower = name.to_lowercase();
            let mut names = names.borrow_mut();
            Some(match names.iter().position(|n| *n == lower) {
                Some(i) => i,
                None => {
                    names.push(lower);
                    names.len() - 1
                }
            })
        };
        let mut out = Vec::with_capacity(routes.len());
        for (i, (owner, when)) in routes.iter().enumerate() {
            let owner = owner.trim();
            if owner.is_empty() || owner.chars().any(char::is_control) {
                return Err(format!("cases.routes[{i}]: `owner` must be a user name"));
            }
            let when = Expr::compile(when, &schema).map_err(|e| {
                format!(
                    "cases.routes[{i}].when: {} (column {})",
                    e.message, e.column
                )
            })?;
            out.push(Route {
                owner: owner.to_string(),
                when,
            });
        }
        Ok(Router {
            routes: out,
            names: names.into_inner(),
        })
    }

    /// Whether there is no route.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// The owner of a new case opened by `input`, and the route's expression, if a route
    /// matches.
    pub fn owner_for(&self, input: &BreakInput) -> Option<(&str, &str)> {
        let row = InputRow {
            input,
            names: &self.names,
        };
        self.routes
            .iter()
            .find(|r| r.when.matches(&row))
            .map(|r| (r.owner.as_str(), r.when.text()))
    }
}

struct InputRow<'a> {
    input: &'a BreakInput,
    names: &'a [String],
}

impl Row for InputRow<'_> {
    fn get(&self, field: usize) -> Value<'_> {
        let Some(name) = self.names.get(field) else {
            return Value::Missing;
        };
        let i = self.input;
        match name.as_str() {
            "profile" => return Value::Str(i.profile.as_str().into()),
            "key" => return Value::Str(i.key.as_str().into()),
            "bucket" => return Value::Str(i.bucket.as_str().into()),
            "severity" => return Value::Str(i.severity.as_str().into()),
            "difference" => return Value::Num(i.difference),
            _ => {}
        }
        debug_assert!(!CASE_FIELDS.contains(&name.as_str()));
        let norm = |s: &str| -> String {
            s.chars()
                .filter(|c| !matches!(c, ' ' | '_'))
                .flat_map(char::to_lowercase)
                .collect()
        };
        let wanted = norm(name);
        for (k, v) in &i.row {
            if norm(k) == wanted {
                return match v {
                    serde_json::Value::String(s) if s.trim().is_empty() => Value::Missing,
                    serde_json::Value::String(s) => Value::Str(s.as_str().into()),
                    serde_json::Value::Number(n) => n.as_f64().map_or(Value::Missing, Value::Num),
                    serde_json::Value::Bool(b) => Value::Bool(*b),
                    _ => Value::Missing,
                };
            }
        }
        Value::Missing
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(company: &str, account: &str, difference: f64) -> BreakInput {
        let mut row = serde_json::Map::new();
        row.insert("Company".into(), company.into());
        row.insert("Account".into(), account.into());
        BreakInput {
            profile: "gl_ihub".into(),
            key: format!("{company}|{account}"),
            start_date: chrono::NaiveDate::from_ymd_opt(2024, 3, 1).unwrap(),
            date: chrono::NaiveDate::from_ymd_opt(2024, 3, 1).unwrap(),
            bucket: "Timing Issue".into(),
            bucket_rule: "timing".into(),
            confidence: 0.8,
            severity: "High".into(),
            summary: String::new(),
            score: 0.0,
            rank: 1,
            difference,
            model_version: "m".into(),
            row,
        }
    }

    #[test]
    fn the_first_matching_route_gives_the_owner() {
        let r = Router::compile(&[
            (
                "ana".into(),
                "Company = '00000' and Account >= 400000 and Account < 500000".into(),
            ),
            ("raj".into(), "abs(difference) > 1000000".into()),
            ("sue".into(), "severity = 'high'".into()),
        ])
        .unwrap();
        assert_eq!(
            r.owner_for(&input("00000", "410000", 5.0)).unwrap().0,
            "ana"
        );
        assert_eq!(
            r.owner_for(&input("00100", "410000", 2e6)).unwrap().0,
            "raj"
        );
        assert_eq!(
            r.owner_for(&input("00100", "110000", 5.0)).unwrap().0,
            "sue"
        );
        let none = Router::compile(&[("ana".into(), "Region = 'EU'".into())]).unwrap();
        assert!(
            none.owner_for(&input("00000", "410000", 5.0)).is_none(),
            "a column the record lacks matches nothing"
        );
    }

    #[test]
    fn a_bad_route_is_named() {
        let e = Router::compile(&[("ana".into(), "Account >= ".into())]).unwrap_err();
        assert!(e.starts_with("cases.routes[0].when:"), "{e}");
        let e = Router::compile(&[(" ".into(), "true".into())]).unwrap_err();
        assert!(e.contains("owner"), "{e}");
    }
}
