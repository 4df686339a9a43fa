//! Loading the configuration with the checks that need a subsystem's own parser, and the actor
//! the configuration's `[roles]` grant.
//!
//! Every face loads the configuration with [`load`] (or [`from_user_toml`]), never with
//! `Config::load` alone: [`Parsers`] gives `config` the parsers of `ingest`, `detect`,
//! `routing` and `expr`, so a bad value is refused when the file is read, named by its dotted
//! key and the file, in the order of the file's sections.

use std::path::Path;

use crate::cases::{Actor, ActorError, RoleGrants};
use crate::config::{CaseRoute, Config, ConfigError, ConfigSource, ValueChecks, os_user};

/// The subsystems' own parsers, as `config`'s checks of the values they read.
#[derive(Debug, Clone, Copy, Default)]
pub struct Parsers;

impl ValueChecks for Parsers {
    fn encoding(&self, name: &str) -> Result<(), String> {
        name.parse::<crate::ingest::csv::Encoding>().map(drop)
    }

    fn decimal(&self, setting: &str) -> Result<(), String> {
        crate::ingest::clean::Decimal::from_setting(setting).map(drop)
    }

    fn delimiter(&self, setting: &str) -> Result<(), String> {
        crate::ingest::csv::parse_delimiter(setting).map(drop)
    }

    fn is_iso_date(&self, text: &str) -> bool {
        crate::ingest::clean::parse_iso_date(text).is_some()
    }

    fn detector(&self, name: &str) -> Result<(), String> {
        name.parse::<crate::detect::model::DetectorKind>().map(drop)
    }

    fn contamination(&self, setting: &str) -> Result<(), String> {
        setting
            .parse::<crate::detect::contamination::Contamination>()
            .map(drop)
    }

    fn case_routes(&self, routes: &[CaseRoute]) -> Result<(), String> {
        super::run::routes(routes).map(drop)
    }

    fn filter(&self, expression: &str) -> Result<(), String> {
        crate::expr::Expr::compile(expression, &|_| Some(0))
            .map(drop)
            .map_err(|e| e.to_string())
    }
}

/// The configuration: the embedded defaults overridden by `explicit` (`--config`) or else the
/// platform user file when it exists, every value checked.
pub fn load(explicit: Option<&Path>) -> Result<(Config, ConfigSource), ConfigError> {
    Config::load(explicit, &Parsers)
}

/// The defaults overridden by the TOML text of a user file (`path` is used in messages only),
/// every value checked.
pub fn from_user_toml(text: &str, path: &Path) -> Result<Config, ConfigError> {
    Config::from_user_toml(text, path, &Parsers)
}

/// `user` (e.g. `--user`) trimmed, else `[general] user` trimmed; none when that is empty.
fn user_asked(cfg: &Config, user: Option<&str>) -> Option<String> {
    user.map(|u| u.trim().to_string())
        .or_else(|| Some(cfg.general.user.trim().to_string()))
        .filter(|u| !u.is_empty())
}

/// The person acting on cases from the command line and the terminal UI: the OS user
/// ([`os_user`]: `$USER`, `$USERNAME`, else the process's account). `user` (e.g. `--user`)
/// or `[general] user` may name someone else only where `[roles] allow_user_override` is
/// true. The role is `role` (e.g. `--role`), else `[general] role`, and must be one the user
/// holds in `[roles]` ([`Actor::resolve`]).
pub fn actor(cfg: &Config, user: Option<&str>, role: Option<&str>) -> Result<Actor, ActorError> {
    let grants = RoleGrants {
        supervisors: &cfg.roles.supervisors,
        analysts: &cfg.roles.analysts,
        allow_user_override: cfg.roles.allow_user_override,
    };
    Actor::resolve(
        user_asked(cfg, user),
        os_user(),
        role.unwrap_or(&cfg.general.role),
        &grants,
    )
}

/// Who a client of the service says it is (`open --live`): `user`, `[general] user` or the
/// OS user, in the role asked ([`Actor::claimed`]): the service decides from the token who
/// acts and in which role.
pub fn claimed_actor(
    cfg: &Config,
    user: Option<&str>,
    role: Option<&str>,
) -> Result<Actor, ActorError> {
    Actor::claimed(
        user_asked(cfg, user),
        os_user,
        role.unwrap_or(&cfg.general.role),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn p() -> PathBuf {
        PathBuf::from("/tmp/user.toml")
    }

    #[test]
    fn the_embedded_defaults_pass_every_check() {
        let c = from_user_toml("", &p()).unwrap();
        assert_eq!(c.ingest.encoding, Config::defaults().ingest.encoding);
    }

    /// The values only a subsystem's parser checks (moved from `config`'s tests, which have
    /// none of these parsers): the error names the key and the file, as `config`'s own do.
    #[test]
    fn bad_values_are_refused_with_key() {
        for (text, key) in [
            ("[ingest]\ndelimiter = \"ab\"\n", "ingest.delimiter"),
            (
                "[ingest]\nplaceholder_dates = [\"01/01/1900\"]\n",
                "ingest.placeholder_dates",
            ),
            ("[ingest]\nencoding = \"latin9\"\n", "ingest.encoding"),
            ("[ingest]\ndecimal = \"x\"\n", "ingest.decimal"),
            ("[detect]\ndetector = \"svm\"\n", "detect.detector"),
            (
                "[detect]\ncontamination = \"lots\"\n",
                "detect.contamination",
            ),
            (
                "[[cases.routes]]\nowner = \"ana\"\nwhen = \"Account >= \"\n",
                "cases.routes",
            ),
        ] {
            let e = from_user_toml(text, &p()).unwrap_err();
            assert!(e.to_string().contains(key), "{text}: {e}");
            assert!(e.to_string().contains("/tmp/user.toml"), "{text}: {e}");
            assert!(matches!(e, ConfigError::BadValue { .. }), "{text}: {e}");
        }
        let e = from_user_toml("[ingest]\nencoding = \"latin9\"\n", &p()).unwrap_err();
        assert!(
            e.to_string().contains("utf8, lossy"),
            "lists the encodings: {e}"
        );
    }

    #[test]
    fn a_view_with_a_bad_filter_is_named() {
        let e = from_user_toml("[tui.views.mine]\nfilter = \"difference >\"\n", &p()).unwrap_err();
        assert!(e.to_string().contains("`tui.views.mine`"), "{e}");
        assert!(e.to_string().contains("difference >"), "{e}");
    }

    #[test]
    fn the_first_bad_value_in_section_order_is_the_error() {
        // `ingest.delimiter` (a parser's check) comes before `features.preset` (config's own).
        let e = from_user_toml(
            "[ingest]\ndelimiter = \"ab\"\n[features]\npreset = \"fancy\"\n",
            &p(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("ingest.delimiter"), "{e}");
    }
}
