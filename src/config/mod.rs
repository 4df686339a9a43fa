//! One typed configuration, loaded from the embedded `config/default.toml`, then a user file
//! (the platform config dir, or `--config FILE`). The user file is checked key by key against
//! the defaults, so an unknown key or a wrong type is reported with its dotted path and the file.
//!
//! This module imports nothing of the crate: the values only a subsystem's parser can check are
//! checked through [`ValueChecks`], which the loader of `wiring::check` supplies.

mod merge;
mod os_user;
mod sections;
mod validate;

use merge::merge_checked;
pub use os_user::{os_user, process_user};
pub use sections::*;
use serde::Deserialize;
use std::path::{Path, PathBuf};
pub use validate::ValueChecks;

/// The defaults, embedded so the binary runs anywhere without its source tree.
pub const DEFAULT_TOML: &str = include_str!("../../config/default.toml");

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid TOML: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("unknown key `{key}` in config file {path}{hint}")]
    UnknownKey {
        key: String,
        path: PathBuf,
        hint: String,
    },
    #[error("key `{key}` in config file {path} must be {expected}, found {found}")]
    WrongType {
        key: String,
        path: PathBuf,
        expected: &'static str,
        found: &'static str,
    },
    #[error("key `{key}` in config file {path}: {message}")]
    BadValue {
        key: String,
        path: PathBuf,
        message: String,
    },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub general: General,
    pub profile: ProfileConfig,
    pub generic: Generic,
    pub ingest: IngestConfig,
    pub features: FeatureConfig,
    pub detect: DetectConfig,
    pub cluster: ClusterConfig,
    pub categorize: CategorizeConfig,
    pub feedback: FeedbackConfig,
    pub llm: LlmConfig,
    pub output: OutputConfig,
    pub logging: LoggingConfig,
    pub email: EmailConfig,
    pub jira: JiraConfig,
    pub webhook: WebhookConfig,
    pub outbox: OutboxConfig,
    pub tui: TuiConfig,
    pub service: ServiceConfig,
    pub roles: RolesConfig,
    pub cases: CasesConfig,
    pub run: RunConfig,
}

#[derive(Debug, Clone, Default)]
pub struct ConfigSource {
    pub user_file: Option<PathBuf>,
}

impl Config {
    /// The embedded defaults alone.
    pub fn defaults() -> Config {
        // The embedded file is part of the build and covered by tests; failing here is a build defect.
        toml::from_str(DEFAULT_TOML).expect("embedded config/default.toml is valid")
    }

    /// Defaults overridden by `explicit` (from `--config`) or else by the platform user file when
    /// it exists, checked with `checks` besides this module's own checks.
    pub fn load(
        explicit: Option<&Path>,
        checks: &dyn ValueChecks,
    ) -> Result<(Config, ConfigSource), ConfigError> {
        let path = match explicit {
            Some(p) => Some(p.to_path_buf()),
            None => user_config_path().filter(|p| p.is_file()),
        };
        match path {
            None => Ok((Config::defaults(), ConfigSource::default())),
            Some(path) => {
                let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
                    path: path.clone(),
                    source,
                })?;
                let cfg = Config::from_user_toml(&text, &path, checks)?;
                Ok((
                    cfg,
                    ConfigSource {
                        user_file: Some(path),
                    },
                ))
            }
        }
    }

    /// Defaults overridden by the TOML text of a user file (`path` is used in messages only),
    /// checked with `checks` besides this module's own checks.
    pub fn from_user_toml(
        text: &str,
        path: &Path,
        checks: &dyn ValueChecks,
    ) -> Result<Config, ConfigError> {
        let user: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| ConfigError::Syntax {
                path: path.to_path_buf(),
                message: e.to_string().trim().to_string(),
            })?;
        let mut merged: toml::Table = DEFAULT_TOML.parse().expect("embedded defaults parse");
        merge_checked(&mut merged, &user, "", path)?;
        let cfg: Config = toml::Value::Table(merged)
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Syntax {
                path: path.to_path_buf(),
                message: e.to_string().trim().to_string(),
            })?;
        cfg.validate(path, checks)?;
        Ok(cfg)
    }

    /// The data directory: `general.data_dir` when set, else the platform data dir.
    pub fn data_dir(&self) -> Option<PathBuf> {
        if !self.general.data_dir.is_empty() {
            return Some(PathBuf::from(&self.general.data_dir));
        }
        directories::ProjectDirs::from("", "", "breakdesk").map(|d| d.data_dir().to_path_buf())
    }

    /// The user name for the audit trail: `general.user`, else the OS user.
    pub fn user(&self) -> String {
        if !self.general.user.is_empty() {
            return self.general.user.clone();
        }
        os_user().unwrap_or_else(|| "unknown".to_string())
    }
}

/// The platform path of the user config file.
pub fn user_config_path() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "breakdesk").map(|d| d.config_dir().join("config.toml"))
}

#[cfg(test)]
mod tests {

    #[cfg(unix)]
    #[test]
    fn the_process_user_is_the_account_of_its_uid() {
        use std::os::unix::fs::MetadataExt;
        let uid = tempfile::tempfile().unwrap().metadata().unwrap().uid();
        let name = process_user().expect("a name");
        // The name /etc/passwd gives that uid, or uid-N.
        let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
        let listed = passwd
            .lines()
            .any(|l| l.split(':').nth(2) == Some(&uid.to_string()) && l.starts_with(&name));
        assert!(
            listed || name == format!("uid-{uid}"),
            "{name} for uid {uid}"
        );
    }

    use super::*;

    fn p() -> PathBuf {
        PathBuf::from("/tmp/user.toml")
    }

    /// No subsystem's checks (this module imports none): those are tested with the loader of
    /// `wiring::check`, which supplies them.
    struct Plain;

    impl ValueChecks for Plain {
        fn encoding(&self, _: &str) -> Result<(), String> {
            Ok(())
        }
        fn decimal(&self, _: &str) -> Result<(), String> {
            Ok(())
        }
        fn delimiter(&self, _: &str) -> Result<(), String> {
            Ok(())
        }
        fn is_iso_date(&self, _: &str) -> bool {
            true
        }
        fn detector(&self, _: &str) -> Result<(), String> {
            Ok(())
        }
        fn contamination(&self, _: &str) -> Result<(), String> {
            Ok(())
        }
        fn case_routes(&self, _: &[CaseRoute]) -> Result<(), String> {
            Ok(())
        }
        fn filter(&self, _: &str) -> Result<(), String> {
            Ok(())
        }
    }

    #[test]
    fn defaults_load_and_validate() {
        let c = Config::defaults();
        c.validate(&p(), &Plain).unwrap();
        assert_eq!(c.ingest.amount_decimals, 6);
        assert_eq!(c.features.rolling_window, 3);
        assert_eq!(c.profile.default, "auto");
    }

    #[test]
    fn user_value_overrides_default() {
        let c = Config::from_user_toml("[ingest]\nmax_reject_share = 0.5\n", &p(), &Plain).unwrap();
        assert_eq!(c.ingest.max_reject_share, 0.5);
        // Untouched keys keep their defaults.
        assert_eq!(c.ingest.amount_decimals, 6);
    }

    #[test]
    fn integer_accepted_for_float() {
        let c = Config::from_user_toml("[ingest]\nmax_reject_share = 1\n", &p(), &Plain).unwrap();
        assert_eq!(c.ingest.max_reject_share, 1.0);
    }

    #[test]
    fn unknown_key_names_key_and_file() {
        let e = Config::from_user_toml("[ingest]\ndelimeter = \";\"\n", &p(), &Plain).unwrap_err();
        let m = e.to_string();
        assert!(m.contains("`ingest.delimeter`"), "{m}");
        assert!(m.contains("/tmp/user.toml"), "{m}");
        assert!(m.contains("delimiter"), "lists the known keys: {m}");
    }

    #[test]
    fn unknown_section_is_an_error() {
        let e = Config::from_user_toml("[ingset]\nsheet = \"x\"\n", &p(), &Plain).unwrap_err();
        assert!(e.to_string().contains("`ingset`"), "{e}");
    }

    #[test]
    fn wrong_type_names_key_and_types() {
        let e = Config::from_user_toml("[features]\nrolling_window = \"3\"\n", &p(), &Plain)
            .unwrap_err();
        let m = e.to_string();
        assert!(m.contains("`features.rolling_window`"), "{m}");
        assert!(m.contains("an integer") && m.contains("a string"), "{m}");
    }

    #[test]
    fn wrong_list_element_type() {
        let e = Config::from_user_toml("[generic]\ncolumns = [1, 2]\n", &p(), &Plain).unwrap_err();
        assert!(e.to_string().contains("`generic.columns`"), "{e}");
    }

    #[test]
    fn bad_values_are_refused_with_key() {
        for (text, key) in [
            ("[general]\nrole = \"boss\"\n", "general.role"),
            (
                "[ingest]\nmax_reject_share = 2.0\n",
                "ingest.max_reject_share",
            ),
            ("[features]\npreset = \"fancy\"\n", "features.preset"),
            ("[output]\nformat = \"xml\"\n", "output.format"),
            ("[email]\ntls = \"ssl\"\n", "email.tls"),
            ("[jira]\napi_version = 4\n", "jira.api_version"),
            ("[jira]\nmode = \"each\"\n", "jira.mode"),
            ("[outbox]\nmax_attempts = 0\n", "outbox.max_attempts"),
            ("[cluster]\nmax_iterations = 0\n", "cluster.max_iterations"),
            (
                "[outbox]\nbackoff_base_secs = 0\n",
                "outbox.backoff_base_secs",
            ),
            ("[webhook]\ntimeout_secs = -1.0\n", "webhook.timeout_secs"),
            ("[roles]\nsupervisors = [\" \"]\n", "roles.supervisors"),
            (
                "[[service.users]]\nname = \"sue\"\nrole = \"boss\"\ntoken_env = \"T_SUE\"\n",
                "service.users[0]",
            ),
            (
                "[[service.users]]\nname = \"sue\"\nrole = \"supervisor\"\ntoken_env = \"T\"\n\
                 [[service.users]]\nname = \"ann\"\nrole = \"analyst\"\ntoken_env = \"T\"\n",
                "service.users[1]",
            ),
            (
                "[[service.users]]\nname = \"sue\"\nrole = \"analyst\"\ntoken_env = \"BREAKDESK_API_TOKEN\"\n",
                "service.users[0]",
            ),
            (
                "[[service.users]]\nname = \"sue\"\nrole = \"analyst\"\n",
                "service.users[0]",
            ),
            (
                "[[service.users]]\nname = \"sue\"\nrole = \"analyst\"\ntoken_env = \"T\"\ntoken = \"x\"\n",
                "service.users[0].token",
            ),
        ] {
            let e = Config::from_user_toml(text, &p(), &Plain).unwrap_err();
            assert!(e.to_string().contains(key), "{text}: {e}");
        }
    }

    #[test]
    fn dispatch_channels_are_off_by_default_and_secrets_come_from_named_variables() {
        let c = Config::defaults();
        assert!(!c.email.enabled && !c.jira.enabled && !c.webhook.enabled);
        assert_eq!(c.email.password_env, "BREAKDESK_SMTP_PASSWORD");
        assert_eq!(c.jira.token_env, "BREAKDESK_JIRA_TOKEN");
        assert_eq!(c.webhook.token_env, "BREAKDESK_WEBHOOK_TOKEN");
        // Fractions of a second are allowed where tests need fast retries.
        let c = Config::from_user_toml(
            "[outbox]\nbackoff_base_secs = 0.05\nbackoff_max_secs = 1\n[webhook.sla_days]\nhigh = 3\n",
            &p(), &Plain,
        )
        .unwrap();
        assert_eq!(c.outbox.backoff_base_secs, 0.05);
        assert_eq!(c.outbox.backoff_max_secs, 1.0);
        assert_eq!(c.webhook.sla_days.high, 3);
        assert_eq!(c.webhook.sla_days.low, 10);
        // No key holds a secret itself.
        let e = Config::from_user_toml("[email]\npassword = \"x\"\n", &p(), &Plain).unwrap_err();
        assert!(e.to_string().contains("`email.password`"), "{e}");
    }

    #[test]
    fn tui_keys_are_free_form_but_typed() {
        let c = Config::from_user_toml(
            "[tui]\ntheme = \"light\"\n[tui.keys]\naccept = \"A\"\ndown = [\"j\", \"ctrl-n\"]\n",
            &p(),
            &Plain,
        )
        .unwrap();
        assert_eq!(c.tui.theme, "light");
        assert_eq!(c.tui.keys["accept"].keys(), vec!["A"]);
        assert_eq!(c.tui.keys["down"].keys(), vec!["j", "ctrl-n"]);
        let e = Config::from_user_toml("[tui.keys]\naccept = 1\n", &p(), &Plain).unwrap_err();
        assert!(e.to_string().contains("`tui.keys.accept`"), "{e}");
        let e = Config::from_user_toml("[tui]\ntheme = \"pink\"\n", &p(), &Plain).unwrap_err();
        assert!(e.to_string().contains("tui.theme"), "{e}");
    }

    #[test]
    fn tui_views_are_typed_and_their_filters_checked() {
        let c = Config::from_user_toml(
            "[tui.views.\"big pending\"]\nfilter = \"difference > 1000 and status = pending\"\nsort = \"difference\"\ndescending = true\nseverity = \"High\"\ncluster = 2\n[tui.views.all]\nall_rows = true\n",
            &p(), &Plain,
        )
        .unwrap();
        let v = &c.tui.views["big pending"];
        assert_eq!(v.filter, "difference > 1000 and status = pending");
        assert_eq!(v.sort, "difference");
        assert!(v.descending);
        assert_eq!(v.severity, "High");
        assert_eq!(v.cluster, Some(2));
        assert_eq!(v.status, "");
        assert!(c.tui.views["all"].all_rows);
        assert!(Config::defaults().tui.views.is_empty());
        // A bad expression names the view: tested in `wiring::check`, which parses it.
        // An unknown key or a wrong type names the key.
        let e =
            Config::from_user_toml("[tui.views.mine]\nfiltre = \"x\"\n", &p(), &Plain).unwrap_err();
        assert!(e.to_string().contains("`tui.views.mine.filtre`"), "{e}");
        assert!(e.to_string().contains("filter"), "{e}");
        let e = Config::from_user_toml("[tui.views.mine]\ndescending = \"yes\"\n", &p(), &Plain)
            .unwrap_err();
        assert!(e.to_string().contains("`tui.views.mine.descending`"), "{e}");
        let e =
            Config::from_user_toml("[tui.views.mine]\ncluster = -1\n", &p(), &Plain).unwrap_err();
        assert!(e.to_string().contains("`tui.views.mine.cluster`"), "{e}");
        let e = Config::from_user_toml("[tui.views]\nmine = 1\n", &p(), &Plain).unwrap_err();
        assert!(e.to_string().contains("`tui.views.mine`"), "{e}");
    }

    #[test]
    fn syntax_error_names_file() {
        let e = Config::from_user_toml("[ingest\n", &p(), &Plain).unwrap_err();
        assert!(e.to_string().contains("/tmp/user.toml"), "{e}");
    }
}
