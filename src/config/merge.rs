//! A user file laid over the defaults key by key: a key the defaults do not have, or a value
//! of another type, is refused with its dotted path and the file.

use super::ConfigError;
use super::sections::VIEW_FIELDS;
use std::path::Path;

/// The lists of tables a user file may give (`[[name]]`): name, what each must be, its keys (all
/// required, all strings).
const TABLE_LISTS: [(&str, &str, &[&str]); 2] = [
    (
        "service.users",
        "a table ([[service.users]] with name, role, token_env)",
        &["name", "role", "token_env"],
    ),
    (
        "cases.routes",
        "a table ([[cases.routes]] with owner, when)",
        &["owner", "when"],
    ),
];

fn type_name(v: &toml::Value) -> &'static str {
    match v {
        toml::Value::String(_) => "a string",
        toml::Value::Integer(_) => "an integer",
        toml::Value::Float(_) => "a number",
        toml::Value::Boolean(_) => "true or false",
        toml::Value::Datetime(_) => "a date-time",
        toml::Value::Array(_) => "a list",
        toml::Value::Table(_) => "a table",
    }
}

/// Overlays `user` on `base`, refusing keys `base` does not have and values of another type.
pub(super) fn merge_checked(
    base: &mut toml::Table,
    user: &toml::Table,
    prefix: &str,
    path: &Path,
) -> Result<(), ConfigError> {
    for (key, value) in user {
        let dotted = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        if dotted.starts_with("tui.keys.") {
            // Free-form: command names are checked by the UI, which knows them.
            check_key_list(value, &dotted, path)?;
            base.insert(key.clone(), value.clone());
            continue;
        }
        if prefix == "tui.views" {
            // Free-form names; each a table of the view's keys.
            check_view(value, &dotted, path)?;
            base.insert(key.clone(), value.clone());
            continue;
        }
        let Some(existing) = base.get_mut(key) else {
            let known: Vec<&str> = base.keys().map(String::as_str).collect();
            return Err(ConfigError::UnknownKey {
                key: dotted,
                path: path.to_path_buf(),
                hint: format!(
                    " (known keys{}: {})",
                    if prefix.is_empty() {
                        String::new()
                    } else {
                        format!(" in [{prefix}]")
                    },
                    known.join(", ")
                ),
            });
        };
        match (existing, value) {
            (toml::Value::Table(b), toml::Value::Table(u)) => merge_checked(b, u, &dotted, path)?,
            (toml::Value::Float(f), toml::Value::Integer(i)) => *f = *i as f64,
            (toml::Value::Array(b), toml::Value::Array(u))
                if TABLE_LISTS.iter().any(|(n, _, _)| *n == dotted) =>
            {
                check_table_list(u, &dotted, path)?;
                *b = u.clone();
            }
            (toml::Value::Array(b), toml::Value::Array(u)) => {
                check_list(b, u, dotted, path)?;
                *b = u.clone();
            }
            (e, u) => {
                if std::mem::discriminant(e) != std::mem::discriminant(u) {
                    return Err(ConfigError::WrongType {
                        key: dotted,
                        path: path.to_path_buf(),
                        expected: type_name(e),
                        found: type_name(u),
                    });
                }
                *e = u.clone();
            }
        }
    }
    Ok(())
}

/// A `[tui.keys]` value: a key or a list of keys.
fn check_key_list(value: &toml::Value, dotted: &str, path: &Path) -> Result<(), ConfigError> {
    let ok = value.is_str()
        || value
            .as_array()
            .is_some_and(|a| a.iter().all(toml::Value::is_str));
    if !ok {
        return Err(ConfigError::WrongType {
            key: dotted.to_string(),
            path: path.to_path_buf(),
            expected: "a key or a list of keys (strings)",
            found: type_name(value),
        });
    }
    Ok(())
}

/// A `[tui.views.NAME]` table: known keys, each of its type.
fn check_view(value: &toml::Value, dotted: &str, path: &Path) -> Result<(), ConfigError> {
    let t = value.as_table().ok_or_else(|| ConfigError::WrongType {
        key: dotted.to_string(),
        path: path.to_path_buf(),
        expected: "a table ([tui.views.NAME] with filter, sort, …)",
        found: type_name(value),
    })?;
    for (k, v) in t {
        let Some((_, expected)) = VIEW_FIELDS.iter().find(|(f, _)| f == k) else {
            let known: Vec<&str> = VIEW_FIELDS.iter().map(|(f, _)| *f).collect();
            return Err(ConfigError::UnknownKey {
                key: format!("{dotted}.{k}"),
                path: path.to_path_buf(),
                hint: format!(" (known keys: {})", known.join(", ")),
            });
        };
        let ok =
            type_name(v) == *expected && v.as_integer().is_none_or(|i| u32::try_from(i).is_ok());
        if !ok {
            return Err(ConfigError::WrongType {
                key: format!("{dotted}.{k}"),
                path: path.to_path_buf(),
                expected,
                found: type_name(v),
            });
        }
    }
    Ok(())
}

/// `[[service.users]]`, `[[cases.routes]]`: tables of strings, each with every key.
fn check_table_list(u: &[toml::Value], dotted: &str, path: &Path) -> Result<(), ConfigError> {
    let (_, expected, fields) = TABLE_LISTS
        .iter()
        .find(|(n, _, _)| *n == dotted)
        .copied()
        .unwrap_or(("", "a table", &[]));
    for (i, x) in u.iter().enumerate() {
        let key = format!("{dotted}[{i}]");
        let t = x.as_table().ok_or_else(|| ConfigError::WrongType {
            key: key.clone(),
            path: path.to_path_buf(),
            expected,
            found: type_name(x),
        })?;
        for (k, v) in t {
            if !fields.contains(&k.as_str()) {
                return Err(ConfigError::UnknownKey {
                    key: format!("{key}.{k}"),
                    path: path.to_path_buf(),
                    hint: format!(" (known keys: {})", fields.join(", ")),
                });
            }
            if !v.is_str() {
                return Err(ConfigError::WrongType {
                    key: format!("{key}.{k}"),
                    path: path.to_path_buf(),
                    expected: "a string",
                    found: type_name(v),
                });
            }
        }
        for k in fields.iter().copied() {
            if !t.contains_key(k) {
                return Err(ConfigError::BadValue {
                    key: key.clone(),
                    path: path.to_path_buf(),
                    message: format!("`{k}` is missing"),
                });
            }
        }
    }
    Ok(())
}

/// A list must hold the same kind of element as the default's (when the default shows one).
fn check_list(
    b: &[toml::Value],
    u: &[toml::Value],
    dotted: String,
    path: &Path,
) -> Result<(), ConfigError> {
    if let Some(proto) = b.first() {
        if let Some(bad) = u.iter().find(|x| type_name(x) != type_name(proto)) {
            return Err(ConfigError::WrongType {
                key: dotted,
                path: path.to_path_buf(),
                expected: "a list of the same kind as the default",
                found: type_name(bad),
            });
        }
    } else if let Some(bad) = u.iter().find(|x| !x.is_str()) {
        // Empty default lists in our config are all lists of strings.
        return Err(ConfigError::WrongType {
            key: dotted,
            path: path.to_path_buf(),
            expected: "a list of strings",
            found: type_name(bad),
        });
    }
    Ok(())
}
