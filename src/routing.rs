//! Owners of new cases by rules (`[[cases.routes]]`): the first route whose expression matches a
//! new case's record gives the case its owner.
//!
//! A route's `when` is an expression of [`crate::expr`] over `profile`, `key`, `bucket`,
//! `severity`, `difference` and the record's own columns (named as in the file, ignoring case;
//! a column the record lacks is missing, so comparisons with it are false).
//!
//! The routes read a [`RoutedCase`], which `cases` gives them: this module does not import
//! `cases`.

use std::cell::RefCell;

use crate::expr::{Expr, Row, Value};

/// What a route reads of a new case: its fields and its record's columns.
#[derive(Debug, Clone, Copy)]
pub struct RoutedCase<'a> {
    /// The reconciliation profile (e.g. `gl_ihub`).
    pub profile: &'a str,
    /// The record's key columns joined as text.
    pub key: &'a str,
    /// Root-cause bucket.
    pub bucket: &'a str,
    /// Severity (e.g. `high`).
    pub severity: &'a str,
    /// The difference between the two books.
    pub difference: f64,
    /// The record's columns.
    pub row: &'a serde_json::Map<String, serde_json::Value>,
}

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
    pub fn owner_for(&self, input: &RoutedCase<'_>) -> Option<(&str, &str)> {
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
    input: &'a RoutedCase<'a>,
    names: &'a [String],
}

impl Row for InputRow<'_> {
    fn get(&self, field: usize) -> Value<'_> {
        let Some(name) = self.names.get(field) else {
            return Value::Missing;
        };
        let i = self.input;
        match name.as_str() {
            "profile" => return Value::Str(i.profile.into()),
            "key" => return Value::Str(i.key.into()),
            "bucket" => return Value::Str(i.bucket.into()),
            "severity" => return Value::Str(i.severity.into()),
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
        for (k, v) in i.row {
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

    fn row(company: &str, account: &str) -> serde_json::Map<String, serde_json::Value> {
        let mut row = serde_json::Map::new();
        row.insert("Company".into(), company.into());
        row.insert("Account".into(), account.into());
        row
    }

    /// A new case of the `gl_ihub` profile with the record's company and account.
    fn routed<'a>(
        key: &'a str,
        row: &'a serde_json::Map<String, serde_json::Value>,
        difference: f64,
    ) -> RoutedCase<'a> {
        RoutedCase {
            profile: "gl_ihub",
            key,
            bucket: "Timing Issue",
            severity: "High",
            difference,
            row,
        }
    }

    fn owner(r: &Router, company: &str, account: &str, difference: f64) -> Option<String> {
        let row = row(company, account);
        let key = format!("{company}|{account}");
        r.owner_for(&routed(&key, &row, difference))
            .map(|(o, _)| o.to_string())
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
        assert_eq!(owner(&r, "00000", "410000", 5.0).unwrap(), "ana");
        assert_eq!(owner(&r, "00100", "410000", 2e6).unwrap(), "raj");
        assert_eq!(owner(&r, "00100", "110000", 5.0).unwrap(), "sue");
        let none = Router::compile(&[("ana".into(), "Region = 'EU'".into())]).unwrap();
        assert!(
            owner(&none, "00000", "410000", 5.0).is_none(),
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
