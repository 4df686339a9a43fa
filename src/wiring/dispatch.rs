//! The dispatch channels', the outbox's, the probes' and the logs' options from the configuration.
//!
//! `logging.level` is checked when the configuration is loaded (`config`'s validation names the
//! dotted key and the file), so a loaded configuration always converts.

use crate::config::Config;
use crate::logging::LogOptions;

/// `[logging]`, with the log directory under the data directory.
pub fn logging(cfg: &Config) -> LogOptions {
    LogOptions {
        file: cfg.logging.file,
        dir: cfg.data_dir().map(|d| d.join("logs")),
        // `logging.level` is one of error, warn, info, debug, trace once loaded.
        level: cfg.logging.level.parse().unwrap_or(tracing::Level::INFO),
        max_files: cfg.logging.max_files,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_level_the_configuration_accepts_is_its_own() {
        for (text, level) in [
            ("error", tracing::Level::ERROR),
            ("warn", tracing::Level::WARN),
            ("info", tracing::Level::INFO),
            ("debug", tracing::Level::DEBUG),
            ("trace", tracing::Level::TRACE),
        ] {
            let mut cfg = Config::defaults();
            cfg.logging.level = text.into();
            assert_eq!(logging(&cfg).level, level, "{text}");
        }
    }
}
