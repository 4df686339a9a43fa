//! JSON logs to a daily-rotated file in `<data_dir>/logs`. Nothing is logged to the terminal:
//! the terminal belongs to the progress bar, the summary and error messages.

use std::path::PathBuf;
use tracing_appender::non_blocking::WorkerGuard;
use tracing_appender::rolling::{RollingFileAppender, Rotation};
use tracing_subscriber::EnvFilter;

/// Keeps the log writer alive; logs are flushed when it is dropped.
pub struct LogGuard {
    _guard: Option<WorkerGuard>,
    pub dir: Option<PathBuf>,
}

/// Where and what to log (built by the faces from `[logging]` and the data directory).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogOptions {
    /// Whether to write a log file at all.
    pub file: bool,
    /// The directory of the log files (`None`: there is no data directory, so no log file).
    pub dir: Option<PathBuf>,
    /// The most detailed level written (the `BREAKDESK_LOG` environment variable overrides it).
    pub level: tracing::Level,
    /// How many daily files are kept (at least one).
    pub max_files: usize,
}

/// Starts file logging when `options.file` is on and the log directory is writable. A failure to
/// set up logging is reported as a warning and the run goes on.
pub fn init(options: &LogOptions) -> LogGuard {
    let none = LogGuard {
        _guard: None,
        dir: None,
    };
    if !options.file {
        return none;
    }
    let Some(dir) = options.dir.clone() else {
        return none;
    };
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("warning: no log file: cannot create {}: {e}", dir.display());
        return none;
    }
    let appender = match RollingFileAppender::builder()
        .rotation(Rotation::DAILY)
        .filename_prefix("breakdesk")
        .filename_suffix("log")
        .max_log_files(options.max_files.max(1))
        .build(&dir)
    {
        Ok(a) => a,
        Err(e) => {
            eprintln!("warning: no log file in {}: {e}", dir.display());
            return none;
        }
    };
    let (writer, guard) = tracing_appender::non_blocking(appender);
    let filter = EnvFilter::try_from_env("BREAKDESK_LOG")
        .unwrap_or_else(|_| EnvFilter::new(format!("breakdesk={}", level_name(options.level))));
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_writer(writer)
        .with_env_filter(filter)
        .with_ansi(false)
        .finish();
    if tracing::subscriber::set_global_default(subscriber).is_err() {
        return none;
    }
    LogGuard {
        _guard: Some(guard),
        dir: Some(dir),
    }
}

/// The level as the configuration and `BREAKDESK_LOG` write it (`info`).
fn level_name(level: tracing::Level) -> String {
    level.as_str().to_ascii_lowercase()
}

/// The process's resident memory in MiB (Linux; `None` elsewhere), for the debug log's memory
/// marks of long runs.
pub fn resident_mib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn level_names_are_the_configurations() {
        assert_eq!(level_name(tracing::Level::INFO), "info");
        assert_eq!(level_name(tracing::Level::TRACE), "trace");
    }
}
