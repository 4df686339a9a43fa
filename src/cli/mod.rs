//! The `breakdesk` command line: the parser, the commands and their dispatch. The work is the
//! library's; each command's file reads its arguments, calls the library and prints.

mod args;
mod audit;
mod cases;
mod dispatch;
mod doctor;
mod evaluate;
mod exit;
mod feedback;
mod generate;
mod interrupt;
mod merge;
mod model;
mod open;
mod progress;
mod rejects;
mod rules;
mod run;
mod serve;
mod train;

use anyhow::Context;
use breakdesk::config::{Config, DEFAULT_TOML};
use breakdesk::profile::Profile;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use exit::{Failure, fail};
use std::path::PathBuf;
use std::process::ExitCode;

use audit::{AuditArgs, ExportArgs};
use cases::CasesCommand;
use dispatch::{DispatchArgs, OutboxCommand};
use doctor::DoctorArgs;
use evaluate::EvaluateArgs;
use feedback::FeedbackCommand;
use generate::GenerateArgs;
use merge::MergeArgs;
use model::ModelCommand;
use open::OpenArgs;
use run::RunArgs;
use serve::ServeArgs;
use train::TrainArgs;

#[derive(Parser)]
#[command(
    name = "breakdesk",
    version,
    about = "Terminal workstation for reconciliation breaks: ingest, features, anomaly detection and triage",
    long_about = None
)]
pub struct Cli {
    /// Configuration file overriding the defaults (instead of the platform user file).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Where the store and logs live (overrides `[general] data_dir`).
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// No progress bar and no summary on stderr (errors are still printed).
    #[arg(short, long, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
pub enum Command {
    /// Open the terminal UI on a file (the default command; without FILE, a file picker).
    Open(OpenArgs),
    /// Run the service: REST (score one record or a batch, cases and decisions) and a WebSocket of events.
    Serve(ServeArgs),
    /// Score a reconciliation file: write its anomalies (or every row) with score, rank, cluster, root-cause bucket, severity, summary and case.
    Run(RunArgs),
    /// Merge the parts of a partitioned run (`run --partition I/N`) into the output one run on the
    /// whole file writes: ranked across every part, with the analysts' verdicts, the categories
    /// and the cluster summary recomputed.
    Merge(MergeArgs),
    /// Train the model for a file's profile and detector now, and save it in the store.
    Train(TrainArgs),
    /// Retrain with the analysts' feedback: true breaks left out of what is normal, rejected rows
    /// learnt as normal, contamination re-estimated from the precision they found.
    Retrain(TrainArgs),
    /// The analysts' verdicts from a file (case ids or row keys with a label).
    Feedback {
        #[command(subcommand)]
        command: FeedbackCommand,
    },
    /// Measure detection quality (ROC-AUC, PR-AUC, precision@k) and bucket accuracy per break kind on a labelled file.
    Evaluate(EvaluateArgs),
    /// Saved models: list them or export one to a file.
    Model {
        #[command(subcommand)]
        command: ModelCommand,
    },
    /// Write a realistic synthetic reconciliation file with labelled breaks.
    Generate(GenerateArgs),
    /// List the built-in profiles, or print one as TOML to start your own.
    Profiles {
        /// Print this profile's TOML.
        name: Option<String>,
    },
    /// Print the default configuration (every setting with its default) and where user files go.
    Config,
    /// Cases: one per flagged break, with its ticket, status and decisions.
    Cases {
        #[command(subcommand)]
        command: CasesCommand,
    },
    /// The audit trail: every action on every case, in order.
    Audit(AuditArgs),
    /// Export the cases in one status (e.g. accepted) with their record, as CSV or JSON lines.
    Export(ExportArgs),
    /// Send reviewed cases by email, as Jira issues or as webhook tasks: queue them in the outbox (durably), then send.
    Dispatch(DispatchArgs),
    /// The dispatch outbox: list it, send what is due, retry or cancel an item.
    Outbox {
        #[command(subcommand)]
        command: OutboxCommand,
    },
    /// Print the root-cause rules in effect (buckets, rules, severity), or check a rules file.
    Rules {
        /// Check this rules file: its syntax, and every rule against tables of the built-in
        /// gl_ihub and trades profiles (exit 2 with the rule and the problem named).
        #[arg(long, value_name = "FILE")]
        check: Option<PathBuf>,
    },
    /// Check the set-up: configuration, data directory, store and models, secrets, user and
    /// role, and each enabled channel reached without sending anything (exit 8 on a problem).
    ///
    /// One line per check, ok / warning / problem, with the setting to change: the configuration
    /// file (found and valid); the user and role decisions are recorded under; the data
    /// directory (writable); the store (its schema, and whether another process holds it); the
    /// saved models (profile, version, rows trained on, age); the secret of each enabled feature
    /// (whether its variable is set, never its value); each enabled channel reached for real
    /// without sending anything (SMTP: connect, EHLO, STARTTLS or TLS, AUTH when a login is set,
    /// QUIT; Jira: an authenticated /myself; webhook: a HEAD); the LLM with one small completion,
    /// only with --llm. Exit 0 when no check is a problem (warnings allowed), 8 otherwise.
    Doctor(DoctorArgs),
    /// Print the shell completion script for bash, zsh, fish, powershell or elvish.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff), or write one page per command into a directory.
    Man {
        /// Write breakdesk.1, breakdesk-run.1, … here instead of printing breakdesk.1.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Ask a running service's GET /health (exit 0 when it answers ok, 1 otherwise): the
    /// container's health check.
    Health {
        /// Default: /health on $BREAKDESK_BIND, else `[service] bind` (0.0.0.0 asked as 127.0.0.1).
        #[arg(long, value_name = "URL")]
        url: Option<String>,
        /// Seconds to wait for the answer.
        #[arg(long, value_name = "SECS", default_value_t = 5.0)]
        timeout: f64,
    },
}

/// The command-line definition, with the version of this build (`-V` short, `--version` long).
pub fn cli_command() -> clap::Command {
    static SHORT: std::sync::LazyLock<String> =
        std::sync::LazyLock::new(breakdesk::shipping::short_version);
    static LONG: std::sync::LazyLock<String> =
        std::sync::LazyLock::new(breakdesk::shipping::long_version);
    Cli::command()
        .version(SHORT.as_str())
        .long_version(LONG.as_str())
}

pub fn main() -> ExitCode {
    let cli = Cli::from_arg_matches(&cli_command().get_matches()).unwrap_or_else(|e| e.exit());
    if !matches!(
        cli.command,
        Some(Command::Serve(_)) | Some(Command::Open(_)) | None
    ) {
        end_quietly_on_closed_pipe();
    }
    // The commands that read a file stop at their next stage when interrupted; set up before
    // anything is opened, so that no interruption finds the default action still in place.
    if matches!(
        cli.command,
        Some(Command::Run(_))
            | Some(Command::Merge(_))
            | Some(Command::Train(_))
            | Some(Command::Retrain(_))
            | Some(Command::Evaluate(_))
    ) {
        interrupt::flag();
    }
    let code = match real_main(cli) {
        Ok(()) => {
            interrupt::note_finished();
            0
        }
        Err(f) => {
            eprintln!("error: {:#}", f.error);
            f.code
        }
    };
    end_at_once(code)
}

/// Ends the process with `code` once the command is done and has closed what it opened (the
/// store flushed, the files and the log written): standard output and error are flushed, then
/// the process exits without the C library's exit handlers. The allocator's handler would hand
/// every free page back to the system range by range, which the end of the process does at
/// once anyway (40-50 ms after a 1,000,000-row run). If a flush fails, the process returns as
/// usual.
fn end_at_once(code: u8) -> ExitCode {
    #[cfg(unix)]
    {
        use std::io::Write;
        if std::io::stdout().flush().is_ok() && std::io::stderr().flush().is_ok() {
            // SAFETY: `_exit` ends the process; nothing of this program runs after it, and
            // everything it must leave behind is written and flushed above.
            unsafe { libc::_exit(i32::from(code)) }
        }
    }
    ExitCode::from(code)
}

/// A command whose standard output is a closed pipe (`breakdesk audit | head -3`) ends the
/// way Unix tools do, quietly, instead of panicking on the failed write: the default SIGPIPE
/// action is restored (Rust ignores the signal). Not for the service and the terminal UI,
/// which handle their own connections.
pub fn end_quietly_on_closed_pipe() {
    #[cfg(unix)]
    // SAFETY: setting a signal's disposition to its default before any thread is started.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

pub fn load_config(cli: &Cli) -> Result<Config, Failure> {
    let (mut cfg, _source) = breakdesk::wiring::check::load(cli.config.as_deref())
        .map_err(|e| fail(exit::CONFIG, e.into()))?;
    if let Some(d) = &cli.data_dir {
        cfg.general.data_dir = d.display().to_string();
    }
    Ok(cfg)
}

/// Runs the command. Those that need no valid configuration run here (they print what is built
/// in, write what they are given, or check the set-up, the configuration among the rest); the
/// others get it loaded once, in [`configured_command`].
pub fn real_main(cli: Cli) -> Result<(), Failure> {
    let default = Command::Open(OpenArgs::default());
    let command = cli.command.as_ref().unwrap_or(&default);
    match command {
        Command::Config => {
            print_config();
            Ok(())
        }
        Command::Profiles { name } => profiles(name.as_deref()),
        Command::Generate(g) => generate::generate(g, cli.quiet),
        Command::Doctor(args) => doctor::doctor(&cli, args),
        Command::Completions { shell } => {
            doctor::completions(*shell);
            Ok(())
        }
        Command::Man { dir } => doctor::man(dir.as_deref(), cli.quiet),
        Command::Health { url, timeout } => doctor::health(&cli, url.as_deref(), *timeout),
        configured => configured_command(load_config(&cli)?, configured, cli.quiet),
    }
}

/// The commands that work with the configuration, loaded once for them.
fn configured_command(cfg: Config, command: &Command, quiet: bool) -> Result<(), Failure> {
    match command {
        Command::Open(args) => open::open(cfg, args),
        Command::Serve(args) => serve::serve(cfg, args),
        Command::Run(args) => run::run(cfg, args, quiet),
        Command::Merge(args) => merge::merge(cfg, args, quiet),
        Command::Train(args) | Command::Retrain(args) => train::train(cfg, args, quiet),
        Command::Feedback { command } => feedback::feedback_command(&cfg, command, quiet),
        Command::Evaluate(args) => evaluate::evaluate(cfg, args, quiet),
        Command::Model { command } => model::model(cfg, command),
        Command::Cases { command } => cases::cases_command(&cfg, command),
        Command::Audit(args) => audit::audit(&cfg, args),
        Command::Export(args) => audit::export(&cfg, args, quiet),
        Command::Rules { check } => rules::rules(&cfg, check.as_deref(), quiet),
        Command::Dispatch(args) => dispatch::dispatch_command(&cfg, args, quiet),
        Command::Outbox { command } => dispatch::outbox_command(&cfg, command, quiet),
        Command::Config
        | Command::Profiles { .. }
        | Command::Generate(_)
        | Command::Doctor(_)
        | Command::Completions { .. }
        | Command::Man { .. }
        | Command::Health { .. } => unreachable!("run without a configuration by real_main"),
    }
}

/// `breakdesk config`: the default configuration, and where the user file goes.
fn print_config() {
    print!("{DEFAULT_TOML}");
    if let Some(p) = breakdesk::config::user_config_path() {
        println!(
            "\n# user file: {} ({})",
            p.display(),
            if p.is_file() { "present" } else { "absent" }
        );
    }
}

/// `breakdesk profiles [NAME]`: the built-in profiles, or one as TOML.
fn profiles(name: Option<&str>) -> Result<(), Failure> {
    match name {
        Some(n) => {
            let p = Profile::by_name_or_path(n).map_err(|e| fail(exit::CONFIG, e.into()))?;
            print!(
                "{}",
                toml::to_string_pretty(&p).context("cannot print the profile")?
            );
        }
        None => {
            for p in Profile::builtins() {
                println!(
                    "{:<10} {}{}",
                    p.name,
                    p.description,
                    if p.auto_detect {
                        ""
                    } else {
                        " (never auto-detected)"
                    }
                );
            }
        }
    }
    Ok(())
}
