//! The `breakdesk` command line.

use anyhow::Context;
use breakdesk::config::{Config, DEFAULT_TOML};
use breakdesk::detect::contamination::Contamination;
use breakdesk::detect::model::{DetectorKind, ModelBundle};
use breakdesk::features::Preset;
use breakdesk::ingest::IngestError;
use breakdesk::output::{self, Format};
use breakdesk::pipeline::{
    self, AnalyzeError, DetectError, DetectOptions, Detection, PipelineError, Progress, RunOptions,
    RunOutput, TrainMode,
};
use breakdesk::profile::Profile;
use breakdesk::store::{Store, StoreError};
use breakdesk::text::csv_field;
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

/// Exit codes, documented in the README.
mod exit {
    pub const FAILURE: u8 = 1;
    pub const CONFIG: u8 = 2;
    pub const INPUT: u8 = 3;
    pub const REJECTS: u8 = 4;
    pub const STORE: u8 = 5;
    /// A decision the workflow refuses (illegal transition, maker-checker, missing reason).
    pub const DECISION: u8 = 6;
    /// A dispatch that did not complete: an item was parked, or is still waiting to be retried.
    pub const DISPATCH: u8 = 7;
    /// `breakdesk doctor` found at least one problem.
    pub const DOCTOR: u8 = 8;
}

#[derive(Parser)]
#[command(
    name = "breakdesk",
    version,
    about = "Terminal workstation for reconciliation breaks: ingest, features, anomaly detection and triage",
    long_about = None
)]
struct Cli {
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
enum Command {
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
    Audit {
        /// Only this case (id or ticket).
        #[arg(long = "case", value_name = "ID")]
        case_ref: Option<String>,
        /// csv or jsonl.
        #[arg(long, default_value = "csv")]
        format: String,
        /// Write here instead of standard output.
        #[arg(long, short)]
        out: Option<PathBuf>,
    },
    /// Export the cases in one status (e.g. accepted) with their record, as CSV or JSON lines.
    Export {
        /// PendingReview (or pending), Accepted, Rejected, AutoResolveProposed (or proposed), Approved, Returned.
        #[arg(long)]
        status: String,
        #[arg(long, short)]
        out: PathBuf,
        /// csv or jsonl; default from the file name (.jsonl → jsonl).
        #[arg(long)]
        format: Option<String>,
    },
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

#[derive(Args)]
struct DoctorArgs {
    /// Also call the LLM endpoint with one small completion (it may cost).
    #[arg(long)]
    llm: bool,
    /// text or json.
    #[arg(long, value_enum, default_value = "text")]
    format: DoctorFormat,
    /// The longest any one network check may take, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 10.0)]
    timeout: f64,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum DoctorFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum CasesCommand {
    /// The cases, newest break first, optionally filtered.
    List {
        /// Only cases in this status (PendingReview, Accepted, Rejected, AutoResolveProposed,
        /// Approved, Returned, Cleared).
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        bucket: Option<String>,
        /// Only cases waiting for someone (pending review, proposed, returned).
        #[arg(long)]
        open: bool,
        /// Only breaks at least this many days old.
        #[arg(long, value_name = "DAYS")]
        age_min: Option<i64>,
        /// Only cases this user owns.
        #[arg(long, value_name = "USER")]
        owner: Option<String>,
        /// Only my cases (owned by the user who runs the command).
        #[arg(long, conflicts_with = "owner")]
        mine: bool,
        /// Only undecided cases past their due date.
        #[arg(long)]
        overdue: bool,
        /// table, csv or jsonl.
        #[arg(long, default_value = "table")]
        format: String,
    },
    /// One case (id or ticket) with its record and audit trail.
    Show { id: String },
    /// Decide on a case: accept, reject, propose, approve, return or reopen.
    Decide {
        /// Case id or ticket.
        id: String,
        action: String,
        /// The reason (reject, reopen) or comment (return); optional otherwise.
        #[arg(long)]
        reason: Option<String>,
        /// Who decides; default `[general] user`, else the OS user.
        #[arg(long)]
        user: Option<String>,
        /// analyst or supervisor; default `[general] role`.
        #[arg(long)]
        role: Option<String>,
    },
    /// Give a case to an owner: supervisors assign to anyone, analysts only take an unowned
    /// case for themselves.
    Assign {
        /// Case id or ticket.
        id: String,
        /// The new owner.
        owner: String,
        #[arg(long)]
        user: Option<String>,
        #[arg(long)]
        role: Option<String>,
    },
    /// Take a case: you own it.
    Take {
        /// Case id or ticket.
        id: String,
        #[arg(long)]
        user: Option<String>,
        #[arg(long)]
        role: Option<String>,
    },
    /// Let a case go (its owner, or a supervisor): nobody owns it.
    Release {
        /// Case id or ticket.
        id: String,
        #[arg(long)]
        user: Option<String>,
        #[arg(long)]
        role: Option<String>,
    },
    /// Add a note to a case (kept in its audit trail; not a decision).
    Note {
        /// Case id or ticket.
        id: String,
        /// The note.
        text: String,
        #[arg(long)]
        user: Option<String>,
        #[arg(long)]
        role: Option<String>,
    },
    /// Flag a break the model missed: opens an Accepted case with origin analyst.
    Flag {
        /// Profile (gl_ihub, trades, ...).
        #[arg(long)]
        profile: String,
        /// The record's key columns joined with `|` (as `cases list` shows keys).
        #[arg(long)]
        key: String,
        /// The record's date (YYYY-MM-DD).
        #[arg(long)]
        date: String,
        /// The date the break began (default: `--date`).
        #[arg(long)]
        start_date: Option<String>,
        /// Why it is a break (required).
        #[arg(long)]
        reason: String,
        /// The difference between the books.
        #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
        difference: f64,
        /// Root-cause bucket, if known.
        #[arg(long, default_value = "New Issue")]
        bucket: String,
        #[arg(long)]
        user: Option<String>,
        #[arg(long)]
        role: Option<String>,
    },
}

#[derive(Subcommand)]
enum FeedbackCommand {
    /// Apply a feedback CSV as accept/reject decisions, all rows or none. Columns: case_id (or
    /// ticket), or profile + key (or the profile's key columns) + date; label (accept/1/true or
    /// reject/0/false); reason (required to reject).
    Import {
        file: PathBuf,
        /// The profile whose key columns make the key (when there is no key column).
        #[arg(long)]
        profile: Option<String>,
        /// Who decides; default `[general] user`, else the OS user.
        #[arg(long)]
        user: Option<String>,
        /// analyst or supervisor; default `[general] role`.
        #[arg(long)]
        role: Option<String>,
    },
}

#[derive(Subcommand)]
enum OutboxCommand {
    /// The outbox items, oldest first, with their status, attempts and result.
    List {
        /// table or jsonl.
        #[arg(long, default_value = "table")]
        format: String,
        /// Only items in this state: queued, sending, retry_wait, sent, parked, cancelled.
        #[arg(long)]
        status: Option<String>,
        /// Only this channel: email, jira, webhook.
        #[arg(long)]
        channel: Option<String>,
    },
    /// Send every due item (and items a stopped process left half-sent), then the retries that fall due within --wait seconds; report what was sent, is waiting, or was parked (exit 7 unless all went).
    Flush {
        /// Seconds to wait for retries; default `[outbox] flush_wait_secs`.
        #[arg(long, value_name = "SECS")]
        wait: Option<f64>,
    },
    /// Move a parked item (or one waiting to retry) back to the queue; send it with `outbox flush`.
    Retry {
        id: u64,
        #[arg(long)]
        user: Option<String>,
        #[arg(long)]
        role: Option<String>,
    },
    /// Cancel an item that was not delivered (queued, waiting, parked); its cases may be dispatched again.
    Cancel {
        id: u64,
        #[arg(long)]
        user: Option<String>,
        #[arg(long)]
        role: Option<String>,
    },
}

/// The channels of a dispatch.
#[derive(Args)]
struct ChannelArgs {
    /// Email the cases: an HTML report (plain-text alternative, CSV attachment), per `[email]`.
    #[arg(long)]
    email: bool,
    /// Open Jira issues for the cases, per `[jira]`.
    #[arg(long)]
    jira: bool,
    /// Post one task per case to the webhook, per `[webhook]`.
    #[arg(long)]
    webhook: bool,
    /// Another email recipient for this dispatch, besides `[email] to` (repeatable).
    #[arg(long = "to", value_name = "ADDRESS")]
    to: Vec<String>,
}

impl ChannelArgs {
    fn channels(&self) -> Vec<breakdesk::cases::Channel> {
        use breakdesk::cases::Channel;
        let mut out = Vec::new();
        if self.email {
            out.push(Channel::Email);
        }
        if self.jira {
            out.push(Channel::Jira);
        }
        if self.webhook {
            out.push(Channel::Webhook);
        }
        out
    }
}

#[derive(Args)]
struct DispatchArgs {
    #[command(flatten)]
    channels: ChannelArgs,
    /// The cases in this status that were not yet dispatched on the channel.
    #[arg(long, default_value = "accepted")]
    status: String,
    /// Only queue them; `breakdesk outbox flush` sends them.
    #[arg(long)]
    no_send: bool,
    /// Seconds to wait for retries; default `[outbox] flush_wait_secs`.
    #[arg(long, value_name = "SECS")]
    wait: Option<f64>,
    /// Who dispatches; default `[general] user`, else the OS user.
    #[arg(long)]
    user: Option<String>,
    /// analyst or supervisor; default `[general] role`.
    #[arg(long)]
    role: Option<String>,
}

#[derive(Subcommand)]
enum ModelCommand {
    /// The saved models, with their version, training rows and date.
    List,
    /// Write a saved model bundle (JSON) to a file.
    Export {
        /// Profile of the model (gl_ihub, trades, generic or a custom profile's name).
        #[arg(long)]
        profile: String,
        /// iforest or lof; default `[detect] detector`.
        #[arg(long)]
        detector: Option<String>,
        #[arg(long, short)]
        out: PathBuf,
    },
}

#[derive(Args, Default)]
struct OpenArgs {
    /// The reconciliation file (.csv or an Excel workbook); without it, a file picker in the
    /// current directory.
    file: Option<PathBuf>,
    /// Show the anomalies of a running `breakdesk serve` as they arrive, from its WebSocket
    /// (ws://HOST:PORT/ws), instead of a file; decisions go to the service.
    #[arg(long, value_name = "URL", conflicts_with_all = ["file", "history", "profile", "sheet"])]
    live: Option<String>,
    /// The environment variable holding the service's bearer token (default `[service]
    /// token_env`: BREAKDESK_API_TOKEN); unset or empty sends none.
    #[arg(long, value_name = "VAR", requires = "live")]
    token_env: Option<String>,
    /// Earlier records of the same accounts: context for the features and the training rows.
    #[arg(long, value_name = "FILE")]
    history: Option<PathBuf>,
    /// Profile name (gl_ihub, trades, generic) or path of a profile .toml; default: detected.
    #[arg(long, value_name = "NAME|FILE")]
    profile: Option<String>,
    /// Excel sheet to read (default: the first).
    #[arg(long)]
    sheet: Option<String>,
    /// Who decides; default `[general] user`, else the OS user.
    #[arg(long)]
    user: Option<String>,
    /// analyst or supervisor; default `[general] role`.
    #[arg(long)]
    role: Option<String>,
}

/// Which file to read and how.
#[derive(Args)]
struct InputArgs {
    /// The reconciliation file (.csv or an Excel workbook).
    file: PathBuf,
    /// Earlier records of the same accounts: context for the features and the training rows.
    #[arg(long, value_name = "FILE")]
    history: Option<PathBuf>,
    /// Profile name (gl_ihub, trades, generic) or path of a profile .toml; default: detected.
    #[arg(long, value_name = "NAME|FILE")]
    profile: Option<String>,
    /// Numeric columns to score with the generic profile (comma-separated).
    #[arg(long, value_delimiter = ',', value_name = "A,B,...")]
    columns: Vec<String>,
    /// Excel sheet to read (default: the first).
    #[arg(long)]
    sheet: Option<String>,
    /// CSV delimiter: auto, or a character such as ; or \t.
    #[arg(long)]
    delimiter: Option<String>,
    /// utf8, lossy or windows-1252.
    #[arg(long)]
    encoding: Option<String>,
    /// Feature preset: seed or breaks.
    #[arg(long)]
    preset: Option<String>,
}

/// How to detect.
#[derive(Args)]
struct DetectArgs {
    /// iforest or lof; default `[detect] detector`.
    #[arg(long)]
    detector: Option<String>,
    /// auto, estimate, mad or a share in (0, 0.5]; default `[detect] contamination`.
    #[arg(long)]
    contamination: Option<String>,
    /// What to do with a saved model that does not fit the file (too few training rows, another
    /// population, unseen accounts): retrain, reuse or refuse; default `[detect] model_policy`.
    #[arg(long, value_name = "POLICY")]
    model_policy: Option<String>,
}

#[derive(Args)]
struct RunArgs {
    #[command(flatten)]
    input: InputArgs,
    #[command(flatten)]
    detect: DetectArgs,
    /// Output file (`-` for standard output); default `[output] path`.
    #[arg(long, short, value_name = "PATH")]
    out: Option<PathBuf>,
    /// Write every row with its score (file order), not only the flagged ones (by rank).
    #[arg(long)]
    all_rows: bool,
    /// csv or jsonl; default `[output] format`.
    #[arg(long)]
    format: Option<String>,
    /// Train a new model even when a saved one fits.
    #[arg(long)]
    retrain: bool,
    /// Score with this model bundle (JSON, as `train --export` and `model export` write it)
    /// instead of the store's; nothing is trained.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["retrain", "contamination"])]
    model: Option<PathBuf>,
    /// Process only the accounts of partition I of N, numbered from 0 (0/4 … 3/4): a cluster
    /// worker's share. Needs --model; writes the part with its sidecars (PATH.meta.json,
    /// PATH.rows.bin) for `breakdesk merge`, and records no cases.
    #[arg(long, value_name = "I/N", requires = "model", conflicts_with_all = ["email", "jira", "webhook"])]
    partition: Option<breakdesk::partition::Partition>,
    /// Memory budget in MiB; default `[run] memory_mb`. A CSV file whose run would take more is
    /// split by account into spill files, scored part by part and merged (same output); 0 = no
    /// bound.
    #[arg(long, value_name = "MIB")]
    memory_mb: Option<u64>,
    /// Print how long each stage took.
    #[arg(long)]
    timings: bool,
    /// After the run, dispatch the Accepted cases not yet dispatched on these channels.
    #[command(flatten)]
    dispatch: ChannelArgs,
}

#[derive(Args)]
struct MergeArgs {
    /// The parts, every partition once, as `run --partition` wrote them (each with its
    /// PART.meta.json and PART.rows.bin beside it).
    #[arg(required = true, value_name = "PART")]
    parts: Vec<PathBuf>,
    /// The merged output (`-` for standard output); its cluster summary and rejects report go
    /// beside it.
    #[arg(long, short, value_name = "PATH")]
    out: PathBuf,
    /// csv or jsonl; default: the parts' format.
    #[arg(long)]
    format: Option<String>,
    /// Record a case per anomaly in the store, as `run` does (merge is then the one writer). The
    /// roll-forward of the cases (clearing those whose break is gone) is not done.
    #[arg(long)]
    record: bool,
    /// Print how long each step took.
    #[arg(long)]
    timings: bool,
}

#[derive(Args)]
struct TrainArgs {
    #[command(flatten)]
    input: InputArgs,
    #[command(flatten)]
    detect: DetectArgs,
    /// Also write the trained bundle (JSON) to this file.
    #[arg(long)]
    export: Option<PathBuf>,
    /// Memory budget in MiB; default `[run] memory_mb`. A CSV file whose run would take more is
    /// split by account and the model trained on the largest part's accounts, the model a run
    /// of the file under that budget trains; 0 = no bound.
    #[arg(long, value_name = "MIB")]
    memory_mb: Option<u64>,
}

#[derive(Args)]
struct EvaluateArgs {
    #[command(flatten)]
    input: InputArgs,
    #[command(flatten)]
    detect: DetectArgs,
    /// The labels file of the generator (row,kind,group).
    #[arg(long)]
    labels: PathBuf,
    /// The generator's routine accounts (group,kind), to report the share of their rows flagged.
    /// Default: `<labels>.routine.csv` beside the labels file, when it exists.
    #[arg(long)]
    routine: Option<PathBuf>,
    /// table (markdown) or json.
    #[arg(long, default_value = "table")]
    format: String,
}

#[derive(Args)]
struct GenerateArgs {
    /// gl_ihub or trades.
    #[arg(long, default_value = "gl_ihub")]
    profile: String,
    /// Approximate number of data rows.
    #[arg(long, default_value_t = 10_000)]
    rows: usize,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Output file: CSV, or an Excel workbook when it ends in .xlsx.
    #[arg(long, short)]
    out: PathBuf,
    /// Also write the labels (row, kind, group) of the injected breaks here.
    #[arg(long)]
    labels: Option<PathBuf>,
    /// Inject the quirks of real exports (mixed date formats, float noise, wrapped comments, ...).
    #[arg(long)]
    messy: bool,
    /// Share of account-days that start a break episode.
    #[arg(long, default_value_t = 0.02)]
    break_rate: f64,
    /// gl_ihub: share of accounts whose breaks are all routine for them (a standing item, a
    /// one-day lag of IHub, a month-end accrual that reverses); unlabelled. With --labels, they are
    /// listed in a file beside the labels (`<labels>.routine.csv`: group,kind).
    #[arg(long, default_value_t = breakdesk::generate::DEFAULT_ROUTINE_SHARE)]
    routine_share: f64,
}

/// An error with the exit code it deserves.
struct Failure {
    code: u8,
    error: anyhow::Error,
}

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure {
            code: exit::FAILURE,
            error: e.into(),
        }
    }
}

fn fail(code: u8, error: anyhow::Error) -> Failure {
    Failure { code, error }
}

fn usage(message: String) -> Failure {
    fail(exit::CONFIG, anyhow::anyhow!(message))
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Address and port to listen on (default `[service] bind`, 127.0.0.1:8080). An address other
    /// than loopback needs the bearer token (`[service] token_env`).
    #[arg(long, value_name = "ADDR", env = "BREAKDESK_BIND")]
    bind: Option<std::net::SocketAddr>,
    /// The history file: trains the model when none is saved, and seeds each account's state
    /// (default `[service] history`).
    #[arg(long, value_name = "FILE", env = "BREAKDESK_HISTORY")]
    history: Option<PathBuf>,
    /// The records' profile (name or path; default `[service] profile`, else detected from the
    /// history's header).
    #[arg(long)]
    profile: Option<String>,
}

fn serve(cfg: Config, args: &ServeArgs) -> Result<(), Failure> {
    use breakdesk::server::{self, ServeError, ServeOptions};
    let opts = ServeOptions {
        bind: args.bind,
        history: args.history.clone(),
        profile: args.profile.clone(),
    };
    let serve_failure = |e: ServeError| {
        let code = match e {
            ServeError::Config(_) => exit::CONFIG,
            ServeError::Start(_) => exit::INPUT,
            ServeError::Bind { .. } => exit::FAILURE,
        };
        fail(code, e.into())
    };
    // The address is checked (loopback, or a token) before anything is loaded.
    let addr = server::bind_address(&cfg, &opts).map_err(serve_failure)?;
    let _log = breakdesk::logging::init(&cfg);
    let store = std::sync::Arc::new(open_store(&cfg)?);
    eprintln!("breakdesk serve: loading the model and the account states…");
    let state = server::prepare(cfg, store, &opts).map_err(serve_failure)?;
    let engine = state.stream.engine();
    let (version, status, accounts) = (
        engine.version.clone(),
        engine.status.clone(),
        state.stream.accounts(),
    );
    drop(engine);
    server::serve(state, addr, |bound| {
        eprintln!(
            "breakdesk serve: listening on http://{bound} (model {version}, {status}; {accounts} accounts); Ctrl-C stops"
        );
    })
    .map_err(serve_failure)
}

/// The command-line definition, with the version of this build (`-V` short, `--version` long).
fn cli_command() -> clap::Command {
    static SHORT: std::sync::LazyLock<String> =
        std::sync::LazyLock::new(breakdesk::shipping::short_version);
    static LONG: std::sync::LazyLock<String> =
        std::sync::LazyLock::new(breakdesk::shipping::long_version);
    Cli::command()
        .version(SHORT.as_str())
        .long_version(LONG.as_str())
}

fn main() -> ExitCode {
    let cli = Cli::from_arg_matches(&cli_command().get_matches()).unwrap_or_else(|e| e.exit());
    if !matches!(
        cli.command,
        Some(Command::Serve(_)) | Some(Command::Open(_)) | None
    ) {
        end_quietly_on_closed_pipe();
    }
    match real_main(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("error: {:#}", f.error);
            ExitCode::from(f.code)
        }
    }
}

/// A command whose standard output is a closed pipe (`breakdesk audit | head -3`) ends the
/// way Unix tools do, quietly, instead of panicking on the failed write: the default SIGPIPE
/// action is restored (Rust ignores the signal). Not for the service and the terminal UI,
/// which handle their own connections.
fn end_quietly_on_closed_pipe() {
    #[cfg(unix)]
    // SAFETY: setting a signal's disposition to its default before any thread is started.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn load_config(cli: &Cli) -> Result<Config, Failure> {
    let (mut cfg, _source) =
        Config::load(cli.config.as_deref()).map_err(|e| fail(exit::CONFIG, e.into()))?;
    if let Some(d) = &cli.data_dir {
        cfg.general.data_dir = d.display().to_string();
    }
    Ok(cfg)
}

fn open_store(cfg: &Config) -> Result<Store, Failure> {
    let dir = cfg.data_dir().ok_or_else(|| {
        fail(
            exit::STORE,
            anyhow::anyhow!("no data directory: set [general] data_dir or pass --data-dir"),
        )
    })?;
    Store::open(&dir).map_err(store_failure)
}

fn store_failure(e: StoreError) -> Failure {
    fail(exit::STORE, e.into())
}

fn real_main(cli: Cli) -> Result<(), Failure> {
    let Some(command) = &cli.command else {
        let cfg = load_config(&cli)?;
        return open(cfg, &OpenArgs::default());
    };
    match command {
        Command::Open(args) => {
            let cfg = load_config(&cli)?;
            open(cfg, args)
        }
        Command::Serve(args) => {
            let cfg = load_config(&cli)?;
            serve(cfg, args)
        }
        Command::Config => {
            print!("{DEFAULT_TOML}");
            if let Some(p) = breakdesk::config::user_config_path() {
                println!(
                    "\n# user file: {} ({})",
                    p.display(),
                    if p.is_file() { "present" } else { "absent" }
                );
            }
            Ok(())
        }
        Command::Profiles { name } => {
            match name {
                Some(n) => {
                    let p =
                        Profile::by_name_or_path(n).map_err(|e| fail(exit::CONFIG, e.into()))?;
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
        Command::Generate(g) => generate(g, cli.quiet),
        Command::Cases { command } => {
            let cfg = load_config(&cli)?;
            cases_command(&cfg, command)
        }
        Command::Audit {
            case_ref,
            format,
            out,
        } => {
            let cfg = load_config(&cli)?;
            audit(&cfg, case_ref.as_deref(), format, out.as_deref())
        }
        Command::Export {
            status,
            out,
            format,
        } => {
            let cfg = load_config(&cli)?;
            export(&cfg, status, out, format.as_deref(), cli.quiet)
        }
        Command::Rules { check } => {
            let cfg = load_config(&cli)?;
            rules(&cfg, check.as_deref(), cli.quiet)
        }
        Command::Dispatch(args) => {
            let cfg = load_config(&cli)?;
            dispatch_command(&cfg, args, cli.quiet)
        }
        Command::Outbox { command } => {
            let cfg = load_config(&cli)?;
            outbox_command(&cfg, command, cli.quiet)
        }
        Command::Run(args) => {
            let cfg = load_config(&cli)?;
            run(cfg, args, cli.quiet)
        }
        Command::Merge(args) => {
            let cfg = load_config(&cli)?;
            merge(cfg, args, cli.quiet)
        }
        Command::Train(args) => {
            let cfg = load_config(&cli)?;
            train(cfg, args, cli.quiet)
        }
        Command::Retrain(args) => {
            let cfg = load_config(&cli)?;
            train(cfg, args, cli.quiet)
        }
        Command::Feedback { command } => {
            let cfg = load_config(&cli)?;
            feedback_command(&cfg, command, cli.quiet)
        }
        Command::Evaluate(args) => {
            let cfg = load_config(&cli)?;
            evaluate(cfg, args, cli.quiet)
        }
        Command::Model { command } => {
            let cfg = load_config(&cli)?;
            model(cfg, command)
        }
        Command::Doctor(args) => doctor(&cli, args),
        Command::Completions { shell } => {
            breakdesk::shipping::write_completions(
                *shell,
                &mut cli_command(),
                "breakdesk",
                &mut std::io::stdout(),
            );
            Ok(())
        }
        Command::Man { dir } => man(dir.as_deref(), cli.quiet),
        Command::Health { url, timeout } => health(&cli, url.as_deref(), *timeout),
    }
}

/// `breakdesk doctor`: the report on stdout; exit 8 when a check is a problem.
fn doctor(cli: &Cli, args: &DoctorArgs) -> Result<(), Failure> {
    let timeout = std::time::Duration::try_from_secs_f64(args.timeout)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| {
            usage(format!(
                "--timeout must be a number of seconds above 0, found {}",
                args.timeout
            ))
        })?;
    let report = breakdesk::doctor::run(&breakdesk::doctor::Options {
        config: cli.config.clone(),
        data_dir: cli.data_dir.clone(),
        llm: args.llm,
        timeout,
    });
    match args.format {
        DoctorFormat::Text => print!("{}", report.to_text()),
        DoctorFormat::Json => println!("{}", report.to_json()),
    }
    match report.problems() {
        0 => Ok(()),
        n => Err(fail(
            exit::DOCTOR,
            anyhow::anyhow!("doctor found {n} problem{}", if n == 1 { "" } else { "s" }),
        )),
    }
}

/// `breakdesk man`: the page on stdout, or one page per command in `dir`.
fn man(dir: Option<&Path>, quiet: bool) -> Result<(), Failure> {
    match dir {
        None => breakdesk::shipping::write_man(cli_command(), &mut std::io::stdout())
            .context("cannot write the manual page")?,
        Some(dir) => {
            let written = breakdesk::shipping::write_man_pages(cli_command(), dir)
                .with_context(|| format!("cannot write the manual pages into {}", dir.display()))?;
            if !quiet {
                eprintln!(
                    "wrote {} manual pages into {}",
                    written.len(),
                    dir.display()
                );
            }
        }
    }
    Ok(())
}

/// `breakdesk health`: exit 0 when the service answers ok.
fn health(cli: &Cli, url: Option<&str>, timeout: f64) -> Result<(), Failure> {
    let timeout = std::time::Duration::try_from_secs_f64(timeout)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| {
            usage(format!(
                "--timeout must be a number of seconds above 0, found {timeout}"
            ))
        })?;
    let url = match url {
        Some(u) => u.to_string(),
        None => {
            let bind = match std::env::var("BREAKDESK_BIND")
                .ok()
                .filter(|b| !b.trim().is_empty())
            {
                Some(b) => b,
                None => load_config(cli)?.service.bind,
            };
            breakdesk::shipping::default_health_url(&bind).map_err(usage)?
        }
    };
    let answer = breakdesk::shipping::probe_health(&url, timeout)
        .map_err(|e| fail(exit::FAILURE, anyhow::anyhow!("unhealthy: {e}")))?;
    if !cli.quiet {
        println!("{answer}");
    }
    Ok(())
}

/// The terminal UI.
fn open(cfg: Config, args: &OpenArgs) -> Result<(), Failure> {
    use breakdesk::tui::{self, TuiError, app};
    if let Some(url) = &args.live {
        // A URL the live client cannot use is named before anything else.
        tui::live::endpoints(url).map_err(usage)?;
    }
    if !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
        return Err(usage(TuiError::NotATerminal.to_string()));
    }
    // Live, the service decides who acts from the token; locally, [roles] does.
    let actor = if args.live.is_some() {
        cfg.claimed_actor(args.user.as_deref(), args.role.as_deref())
            .map_err(|e| usage(e.to_string()))?
    } else {
        actor(&cfg, args.user.as_deref(), args.role.as_deref())?
    };
    let keymap = tui::keymap::Keymap::with_overrides(&cfg.tui.keys).map_err(usage)?;
    let theme = tui::theme::Theme::by_name(&cfg.tui.theme);
    let _log = breakdesk::logging::init(&cfg);
    if let Some(url) = &args.live {
        return open_live(cfg, args, url, actor, keymap, theme);
    }
    let store = open_store(&cfg)?;
    let base = RunOptions {
        input: args.file.clone().unwrap_or_default(),
        history: args.history.clone(),
        profile: args.profile.clone(),
        sheet: args.sheet.clone(),
        ..Default::default()
    };
    let start = match &args.file {
        Some(_) => app::Start::File(base.clone()),
        None => app::Start::Picker(PathBuf::from(".")),
    };
    let opts = app::AppOptions {
        cfg: std::sync::Arc::new(cfg),
        store: std::sync::Arc::new(store),
        actor,
        keymap,
        theme,
        base,
    };
    tui::run(opts, start).map_err(|e| match e {
        TuiError::NotATerminal => usage(e.to_string()),
        TuiError::Io(_) => e.into(),
    })
}

/// The terminal UI on a service's stream (`open --live`). The service holds the store, so the
/// UI gets a private empty one in a temporary directory, which live mode never reads.
fn open_live(
    cfg: Config,
    args: &OpenArgs,
    url: &str,
    actor: breakdesk::cases::Actor,
    keymap: breakdesk::tui::keymap::Keymap,
    theme: breakdesk::tui::theme::Theme,
) -> Result<(), Failure> {
    use breakdesk::tui::{self, TuiError, app, live};
    let var = args
        .token_env
        .clone()
        .unwrap_or_else(|| cfg.service.token_env.clone());
    let token = std::env::var(&var).ok().filter(|t| !t.trim().is_empty());
    let placeholder = tempfile::tempdir().context("cannot create a temporary directory")?;
    let store = Store::open(placeholder.path()).map_err(store_failure)?;
    let opts = app::AppOptions {
        cfg: std::sync::Arc::new(cfg),
        store: std::sync::Arc::new(store),
        actor,
        keymap,
        theme,
        base: RunOptions::default(),
    };
    let start = app::Start::Live(live::LiveOptions {
        url: url.trim().to_string(),
        token,
    });
    tui::run(opts, start).map_err(|e| match e {
        TuiError::NotATerminal => usage(e.to_string()),
        TuiError::Io(_) => e.into(),
    })
}

fn case_failure(e: breakdesk::cases::CaseError) -> Failure {
    use breakdesk::cases::CaseError;
    let code = match &e {
        CaseError::Store(_) | CaseError::Corrupt { .. } => exit::STORE,
        CaseError::NotFound { .. } => exit::INPUT,
        _ => exit::DECISION,
    };
    fail(code, e.into())
}

fn parse_status(s: &str) -> Result<breakdesk::cases::Status, Failure> {
    breakdesk::cases::Status::parse_loose(s).map_err(|e| usage(e.to_string()))
}

fn actor(
    cfg: &Config,
    user: Option<&str>,
    role: Option<&str>,
) -> Result<breakdesk::cases::Actor, Failure> {
    use breakdesk::config::ActorError;
    cfg.actor(user, role).map_err(|e| match e {
        ActorError::Usage(m) => usage(m),
        ActorError::Refused(m) => fail(exit::DECISION, anyhow::anyhow!(m)),
    })
}

/// A value from a file or a comment as printed to a terminal: no control characters.
fn safe(s: &str) -> std::borrow::Cow<'_, str> {
    breakdesk::text::terminal_safe(s)
}

/// `s` made [`safe`] when the output is a terminal, as it is otherwise.
fn shown(s: &str, tty: bool) -> std::borrow::Cow<'_, str> {
    if tty {
        safe(s)
    } else {
        std::borrow::Cow::Borrowed(s)
    }
}

fn case_line(c: &breakdesk::cases::Case) -> Vec<String> {
    vec![
        c.ticket.clone(),
        c.id.clone(),
        c.status.as_str().to_string(),
        c.bucket.clone(),
        c.severity.clone(),
        c.profile.clone(),
        c.key.clone(),
        c.start_date.to_string(),
        c.last_date.to_string(),
        c.age_days().to_string(),
        format!("{}", c.difference),
        c.jira_key.clone().unwrap_or_default(),
        c.summary.clone(),
        c.first_difference
            .map(|d| format!("{d}"))
            .unwrap_or_default(),
        c.previous_difference
            .map(|d| format!("{}", c.difference - d))
            .unwrap_or_default(),
        c.cleared_on.map(|d| d.to_string()).unwrap_or_default(),
        c.due.map(|d| d.to_string()).unwrap_or_default(),
        if c.overdue(chrono::Utc::now().date_naive()) {
            "true"
        } else {
            "false"
        }
        .to_string(),
        c.owner.clone().unwrap_or_default(),
    ]
}

const CASE_HEADER: [&str; 19] = [
    "ticket",
    "case_id",
    "status",
    "bucket",
    "severity",
    "profile",
    "key",
    "start_date",
    "last_date",
    "age_days",
    "difference",
    "jira_key",
    "summary",
    "first_difference",
    "change",
    "cleared_on",
    "due",
    "overdue",
    "owner",
];

fn cases_command(cfg: &Config, command: &CasesCommand) -> Result<(), Failure> {
    use breakdesk::cases::{Action, CaseFilter, Cases};
    let store = open_store(cfg)?;
    let cases = Cases::new(&store);
    match command {
        CasesCommand::List {
            status,
            bucket,
            open,
            age_min,
            owner,
            mine,
            overdue,
            format,
        } => {
            let owner = if *mine {
                Some(actor(cfg, None, None)?.user)
            } else {
                owner.clone()
            };
            let today = chrono::Utc::now().date_naive();
            let filter = CaseFilter {
                status: status.as_deref().map(parse_status).transpose()?,
                bucket: bucket.clone(),
                profile: None,
            };
            let (mut list, unreadable) = cases.list_readable(&filter).map_err(case_failure)?;
            for u in &unreadable {
                eprintln!(
                    "warning: case {} is unreadable and left out: {}",
                    safe(&u.case_id),
                    u.error
                );
            }
            list.retain(|c| {
                (!open || c.status.is_open())
                    && age_min.is_none_or(|m| c.age_days() >= m)
                    && owner.as_ref().is_none_or(|o| c.owner.as_ref() == Some(o))
                    && (!overdue || c.overdue(today))
            });
            list.sort_by(|a, b| b.last_date.cmp(&a.last_date).then(a.rank.cmp(&b.rank)));
            match format.as_str() {
                "jsonl" => {
                    for c in &list {
                        let line = serde_json::to_string(c)?;
                        println!("{}", breakdesk::text::json_terminal_safe(&line));
                    }
                }
                "csv" => {
                    let tty = std::io::stdout().is_terminal();
                    println!("{}", CASE_HEADER.join(","));
                    for c in &list {
                        let l: Vec<String> = case_line(c)
                            .iter()
                            .map(|f| csv_field(&shown(f, tty)))
                            .collect();
                        println!("{}", l.join(","));
                    }
                }
                "table" => {
                    println!(
                        "{:<22} {:<20} {:<16} {:<8} {:<24} {:>10} {:>4} {:>16} {:>11} {:<10} {:>10}",
                        "ticket",
                        "status",
                        "bucket",
                        "severity",
                        "key",
                        "last date",
                        "age",
                        "difference",
                        "due",
                        "owner",
                        "cleared"
                    );
                    for c in &list {
                        // Overdue is marked with `!`, visible without colour.
                        let due = c
                            .due
                            .map(|d| format!("{d}{}", if c.overdue(today) { "!" } else { " " }))
                            .unwrap_or_default();
                        println!(
                            "{:<22} {:<20} {:<16} {:<8} {:<24} {:>10} {:>4} {:>16} {:>11} {:<10} {:>10}",
                            c.ticket,
                            c.status.as_str(),
                            safe(&c.bucket),
                            safe(&c.severity),
                            safe(&c.key),
                            c.last_date.to_string(),
                            c.age_days(),
                            breakdesk::categorize::facts::fmt_amount(c.difference),
                            due,
                            safe(c.owner.as_deref().unwrap_or("")),
                            c.cleared_on.map(|d| d.to_string()).unwrap_or_default()
                        );
                    }
                    eprintln!("{} case(s)", list.len());
                }
                other => {
                    return Err(usage(format!(
                        "--format must be table, csv or jsonl, found {other:?}"
                    )));
                }
            }
            Ok(())
        }
        CasesCommand::Show { id } => {
            let c = cases.find(id).map_err(case_failure)?.ok_or_else(|| {
                fail(
                    exit::INPUT,
                    anyhow::anyhow!("no case {id:?} (give a case id or a BRK- ticket)"),
                )
            })?;
            for (h, v) in CASE_HEADER.iter().zip(case_line(&c)) {
                println!("{h:>12}: {}", safe(&v));
            }
            println!("{:>12}: {:?}", "origin", c.origin);
            println!("{:>12}: {} ({})", "rule", c.bucket_rule, c.confidence);
            if let Some(p) = &c.proposed_by {
                println!("{:>12}: {p}", "proposed by");
            }
            for d in &c.dispatches {
                println!(
                    "{:>12}: {} {} (outbox #{}, {}){}{}",
                    "dispatch",
                    d.channel,
                    d.state,
                    d.outbox_id,
                    d.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    d.reference
                        .as_deref()
                        .map(|r| format!(" {}", safe(r)))
                        .unwrap_or_default(),
                    d.note
                        .as_deref()
                        .map(|n| format!(" — {}", safe(n)))
                        .unwrap_or_default()
                );
            }
            if c.dispatches.is_empty() {
                println!("{:>12}: not dispatched", "dispatch");
            }
            println!(
                "{:>12}: {}",
                "legal now",
                c.status
                    .allowed_actions()
                    .iter()
                    .map(|a| a.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            println!("record:");
            for (k, v) in &c.row {
                let v = v
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| v.to_string());
                println!("  {}: {}", safe(k), safe(&v));
            }
            println!("audit trail:");
            for e in cases.events_for(&c.id).map_err(case_failure)? {
                println!(
                    "  #{} {} {} ({}) {}: {} -> {}{}",
                    e.seq,
                    e.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    safe(&e.user),
                    e.role
                        .map(|r| r.to_string())
                        .unwrap_or_else(|| "system".into()),
                    serde_json::to_value(e.action)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default(),
                    e.from.map(|s| s.as_str()).unwrap_or("-"),
                    e.to.map(|s| s.as_str()).unwrap_or("-"),
                    e.reason
                        .as_deref()
                        .map(|r| format!(" — {}", safe(r)))
                        .unwrap_or_default()
                );
            }
            Ok(())
        }
        CasesCommand::Decide {
            id,
            action,
            reason,
            user,
            role,
        } => {
            let action: Action = action
                .parse()
                .map_err(|e: breakdesk::cases::CaseError| usage(e.to_string()))?;
            let who = actor(cfg, user.as_deref(), role.as_deref())?;
            let c = cases
                .decide(id, action, &who, reason.as_deref())
                .map_err(case_failure)?;
            // Printed only after the decision is durable (decide flushes before returning).
            println!("{} {} -> {}", c.ticket, c.id, c.status.as_str());
            Ok(())
        }
        CasesCommand::Assign {
            id,
            owner,
            user,
            role,
        } => {
            let who = actor(cfg, user.as_deref(), role.as_deref())?;
            let c = cases.assign(id, owner, &who).map_err(case_failure)?;
            println!("{} {} owner {}", c.ticket, c.id, safe(owner));
            Ok(())
        }
        CasesCommand::Take { id, user, role } => {
            let who = actor(cfg, user.as_deref(), role.as_deref())?;
            let c = cases.assign(id, &who.user, &who).map_err(case_failure)?;
            println!("{} {} owner {}", c.ticket, c.id, safe(&who.user));
            Ok(())
        }
        CasesCommand::Release { id, user, role } => {
            let who = actor(cfg, user.as_deref(), role.as_deref())?;
            let c = cases.release(id, &who).map_err(case_failure)?;
            println!("{} {} owner none", c.ticket, c.id);
            Ok(())
        }
        CasesCommand::Note {
            id,
            text,
            user,
            role,
        } => {
            let who = actor(cfg, user.as_deref(), role.as_deref())?;
            let c = cases.note(id, text, &who).map_err(case_failure)?;
            println!("{} {} note by {}", c.ticket, c.id, safe(&who.user));
            Ok(())
        }
        CasesCommand::Flag {
            profile,
            key,
            date,
            start_date,
            reason,
            difference,
            bucket,
            user,
            role,
        } => {
            let day = |flag: &str, v: &str| {
                chrono::NaiveDate::parse_from_str(v.trim(), "%Y-%m-%d").map_err(|_| {
                    usage(format!(
                        "{flag} must be a date like 2024-05-01, found {v:?}"
                    ))
                })
            };
            let date = day("--date", date)?;
            let start = match start_date {
                Some(s) => day("--start-date", s)?,
                None => date,
            };
            if !difference.is_finite() {
                return Err(usage("--difference must be a finite number".into()));
            }
            let who = actor(cfg, user.as_deref(), role.as_deref())?;
            let input = breakdesk::cases::BreakInput {
                profile: profile.trim().to_string(),
                key: key.trim().to_string(),
                start_date: start,
                date,
                bucket: bucket.clone(),
                bucket_rule: "analyst".into(),
                confidence: 1.0,
                severity: String::new(),
                summary: reason.clone(),
                score: 0.0,
                rank: 0,
                difference: *difference,
                model_version: String::new(),
                row: serde_json::Map::new(),
            };
            let c = cases
                .flag_missed(&input, &who, reason)
                .map_err(case_failure)?;
            println!(
                "{} {} -> {} (missed break)",
                c.ticket,
                c.id,
                c.status.as_str()
            );
            Ok(())
        }
    }
}

fn feedback_command(cfg: &Config, command: &FeedbackCommand, quiet: bool) -> Result<(), Failure> {
    match command {
        FeedbackCommand::Import {
            file,
            profile,
            user,
            role,
        } => {
            let who = actor(cfg, user.as_deref(), role.as_deref())?;
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("cannot read the feedback file {}", file.display()))
                .map_err(|e| fail(exit::INPUT, e))?;
            let name = file.display().to_string();
            let rows = breakdesk::feedback_file::parse(&text, &name, profile.as_deref())
                .map_err(|e| fail(exit::INPUT, e.into()))?;
            let store = open_store(cfg)?;
            let report = breakdesk::cases::Cases::new(&store)
                .import_feedback(&rows, &who)
                .map_err(|e| match e {
                    breakdesk::cases::CaseError::Feedback(problems) => {
                        let mut m = format!(
                            "{name}: {} of {} rows cannot be applied; nothing was imported:",
                            problems.len(),
                            rows.len()
                        );
                        for p in &problems {
                            m.push_str(&format!("\n  line {}: {}", p.line, p.problem));
                        }
                        fail(exit::INPUT, anyhow::anyhow!(m))
                    }
                    other => case_failure(other),
                })?;
            if !quiet {
                eprintln!(
                    "{name}: {} decisions applied, {} rows already decided that way; `breakdesk retrain` uses them",
                    report.applied, report.unchanged
                );
            }
            Ok(())
        }
    }
}

fn audit(
    cfg: &Config,
    case_ref: Option<&str>,
    format: &str,
    out: Option<&Path>,
) -> Result<(), Failure> {
    use breakdesk::cases::Cases;
    if !matches!(format, "csv" | "jsonl") {
        return Err(usage(format!(
            "--format must be csv or jsonl, found {format:?}"
        )));
    }
    let store = open_store(cfg)?;
    let cases = Cases::new(&store);
    let events = match case_ref {
        Some(r) => cases.events_for(r).map_err(case_failure)?,
        None => cases.events().map_err(case_failure)?,
    };
    // Printed to a terminal, values from files (comments, keys) lose their control characters.
    let tty = out.is_none() && std::io::stdout().is_terminal();
    let mut text = String::new();
    if format == "jsonl" {
        for e in &events {
            text.push_str(&serde_json::to_string(e)?);
            text.push('\n');
        }
    } else {
        text.push_str("seq,at,user,role,case_id,ticket,action,from,to,reason,model_version\n");
        for e in &events {
            let action = serde_json::to_value(e.action)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            let fields = [
                e.seq.to_string(),
                e.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                e.user.clone(),
                e.role.map(|r| r.to_string()).unwrap_or_default(),
                e.case_id.clone(),
                e.ticket.clone(),
                action,
                e.from.map(|s| s.as_str().to_string()).unwrap_or_default(),
                e.to.map(|s| s.as_str().to_string()).unwrap_or_default(),
                e.reason.clone().unwrap_or_default(),
                e.model_version.clone(),
            ];
            let l: Vec<String> = fields.iter().map(|f| csv_field(&shown(f, tty))).collect();
            text.push_str(&l.join(","));
            text.push('\n');
        }
    }
    match out {
        Some(p) => {
            std::fs::write(p, text).with_context(|| format!("cannot write {}", p.display()))?
        }
        None => print!("{}", breakdesk::text::json_terminal_safe(&text)),
    }
    Ok(())
}

fn export(
    cfg: &Config,
    status: &str,
    out: &Path,
    format: Option<&str>,
    quiet: bool,
) -> Result<(), Failure> {
    use breakdesk::cases::Cases;
    let status = parse_status(status)?;
    let format = format.map(str::to_string).unwrap_or_else(|| {
        if out.extension().is_some_and(|e| e == "jsonl") {
            "jsonl".into()
        } else {
            "csv".into()
        }
    });
    let store = open_store(cfg)?;
    let cases = Cases::new(&store);
    let list = cases.export(status).map_err(case_failure)?;
    let mut text = String::new();
    match format.as_str() {
        "jsonl" => {
            for c in &list {
                text.push_str(&serde_json::to_string(c)?);
                text.push('\n');
            }
        }
        "csv" => {
            // The case columns, then the record's own columns (union, in first-seen order).
            let mut cols: Vec<String> = Vec::new();
            for c in &list {
                for k in c.row.keys() {
                    if !cols.contains(k) {
                        cols.push(k.clone());
                    }
                }
            }
            let mut head: Vec<String> = CASE_HEADER.iter().map(|s| s.to_string()).collect();
            head.extend(cols.iter().map(|c| csv_field(c)));
            text.push_str(&head.join(","));
            text.push('\n');
            for c in &list {
                let mut l: Vec<String> = case_line(c).iter().map(|f| csv_field(f)).collect();
                for k in &cols {
                    let v = c
                        .row
                        .get(k)
                        .map(|v| {
                            v.as_str()
                                .map(str::to_string)
                                .unwrap_or_else(|| v.to_string())
                        })
                        .unwrap_or_default();
                    l.push(csv_field(&v));
                }
                text.push_str(&l.join(","));
                text.push('\n');
            }
        }
        other => {
            return Err(usage(format!(
                "--format must be csv or jsonl, found {other:?}"
            )));
        }
    }
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    std::fs::write(out, text).with_context(|| format!("cannot write {}", out.display()))?;
    if !quiet {
        eprintln!(
            "exported {} {} case(s) to {}",
            list.len(),
            status.as_str(),
            out.display()
        );
    }
    Ok(())
}

fn rules(cfg: &Config, check: Option<&Path>, quiet: bool) -> Result<(), Failure> {
    let Some(path) = check else {
        let p = cfg.categorize.rules.trim();
        if p.is_empty() {
            print!("{}", breakdesk::categorize::RULES_TOML);
        } else {
            // Checked before printing: a broken configured file is reported, not shown.
            pipeline::rules_file(cfg).map_err(|e| fail(exit::CONFIG, e.into()))?;
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read the rules file {p}"))?;
            print!("{text}");
        }
        return Ok(());
    };
    let file = breakdesk::categorize::RulesFile::load(Some(path))
        .map_err(|e| fail(exit::CONFIG, e.into()))?;
    // Compile every rule against small generated tables of the built-in profiles.
    let tmp = tempfile::tempdir().context("cannot create a temporary directory")?;
    for profile in [
        breakdesk::generate::GenProfile::GlIhub,
        breakdesk::generate::GenProfile::Trades,
    ] {
        let csv = tmp.path().join("sample.csv");
        let mut f = std::fs::File::create(&csv).context("cannot write a sample table")?;
        let opts = breakdesk::generate::GenerateOptions {
            profile,
            rows: 300,
            ..Default::default()
        };
        breakdesk::generate::generate(&opts, &mut f, None)?;
        drop(f);
        let run_opts = RunOptions {
            input: csv,
            ..Default::default()
        };
        let out = pipeline::run(
            cfg,
            &run_opts,
            "",
            &mut |_| {},
            &std::sync::atomic::AtomicBool::new(false),
        )
        .context("cannot build a sample table")?;
        breakdesk::categorize::Categorizer::new(&file, &out.features.df, &out.resolved)
            .map_err(|e| fail(exit::CONFIG, e.into()))?;
    }
    if !quiet {
        eprintln!(
            "{}: {} buckets, {} rules; every rule compiles for gl_ihub and trades",
            path.display(),
            file.buckets.len(),
            file.rules.len()
        );
    }
    Ok(())
}

fn generate(g: &GenerateArgs, quiet: bool) -> Result<(), Failure> {
    let profile = g
        .profile
        .parse()
        .map_err(|e: anyhow::Error| fail(exit::CONFIG, e))?;
    if !(0.0..=0.5).contains(&g.break_rate) {
        return Err(fail(
            exit::CONFIG,
            anyhow::anyhow!(
                "--break-rate must be between 0 and 0.5, found {}",
                g.break_rate
            ),
        ));
    }
    if !(0.0..=1.0).contains(&g.routine_share) {
        return Err(fail(
            exit::CONFIG,
            anyhow::anyhow!(
                "--routine-share must be between 0 and 1, found {}",
                g.routine_share
            ),
        ));
    }
    let opts = breakdesk::generate::GenerateOptions {
        profile,
        rows: g.rows,
        seed: g.seed,
        break_rate: g.break_rate,
        messy: g.messy,
        routine_share: g.routine_share,
        ..Default::default()
    };
    let t = Instant::now();
    let create = |p: &Path| -> Result<std::io::BufWriter<std::fs::File>, Failure> {
        if let Some(parent) = p.parent().filter(|x| !x.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        let f =
            std::fs::File::create(p).with_context(|| format!("cannot write {}", p.display()))?;
        Ok(std::io::BufWriter::with_capacity(1 << 20, f))
    };
    let xlsx = g
        .out
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("xlsx"));
    // A workbook is written from a CSV generated first into a temporary file.
    let tmp = if xlsx {
        Some(tempfile::Builder::new().suffix(".csv").tempfile()?)
    } else {
        None
    };
    let csv_path = tmp.as_ref().map_or(g.out.as_path(), |t| t.path());
    let mut out = create(csv_path)?;
    let mut labels = g.labels.as_deref().map(create).transpose()?;
    // The routine accounts are listed beside the labels (gl_ihub only: trades have none).
    let routine_path = g
        .labels
        .as_deref()
        .filter(|_| opts.profile == breakdesk::generate::GenProfile::GlIhub)
        .map(breakdesk::evaluate::routine_list_path);
    let mut routine = routine_path.as_deref().map(create).transpose()?;
    let summary = breakdesk::generate::generate_with_routine(
        &opts,
        &mut out,
        labels.as_mut().map(|w| w as &mut dyn std::io::Write),
        routine.as_mut().map(|w| w as &mut dyn std::io::Write),
    )
    .map_err(|e| fail(exit::CONFIG, e))?;
    if let Some(r) = routine.as_mut() {
        r.flush().context("cannot write the routine list")?;
    }
    use std::io::Write;
    out.flush()
        .with_context(|| format!("cannot write {}", g.out.display()))?;
    drop(out);
    if xlsx {
        let cfg = Config::defaults();
        let raw = breakdesk::ingest::csv::read(csv_path, &cfg.ingest)?;
        let resolved =
            Profile::by_name_or_path(&g.profile)?.resolve(&raw.header, &raw.source, &[])?;
        output::write_xlsx(&raw, &resolved, &g.out)?;
    }
    if let Some(l) = labels.as_mut() {
        l.flush().context("cannot write the labels file")?;
    }
    if !quiet {
        let kinds: Vec<String> = summary
            .by_kind
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        eprintln!(
            "wrote {} rows ({} accounts × {} dates, {} labelled break rows: {}) to {} in {:.2} s",
            summary.rows,
            summary.groups,
            summary.dates,
            summary.labelled_rows,
            kinds.join(", "),
            g.out.display(),
            t.elapsed().as_secs_f64()
        );
        if !summary.routine_accounts.is_empty() {
            let kinds: Vec<String> = summary
                .routine_accounts
                .iter()
                .map(|(k, n)| format!("{k} {n}"))
                .collect();
            eprintln!(
                "routine accounts (unlabelled): {} ({} break rows){}",
                kinds.join(", "),
                summary.routine_break_rows,
                routine_path
                    .as_ref()
                    .map(|p| format!(", listed in {}", p.display()))
                    .unwrap_or_default()
            );
        }
    }
    Ok(())
}

/// Applies the input options to the config and builds the pipeline options.
fn input_options(cfg: &mut Config, a: &InputArgs) -> Result<RunOptions, Failure> {
    if let Some(d) = &a.delimiter {
        breakdesk::ingest::csv::parse_delimiter(d)
            .map_err(|m| usage(format!("--delimiter {m}")))?;
        cfg.ingest.delimiter = d.clone();
    }
    if let Some(e) = &a.encoding {
        if !breakdesk::ingest::csv::ENCODINGS.contains(&e.as_str()) {
            return Err(usage(format!(
                "--encoding must be one of {}, found {e:?}",
                breakdesk::ingest::csv::ENCODINGS.join(", ")
            )));
        }
        cfg.ingest.encoding = e.clone();
    }
    let preset: Option<Preset> = a
        .preset
        .as_deref()
        .map(str::parse)
        .transpose()
        .map_err(usage)?;
    Ok(RunOptions {
        input: a.file.clone(),
        history: a.history.clone(),
        profile: a.profile.clone(),
        columns: a
            .columns
            .iter()
            .map(|c| c.trim().to_string())
            .filter(|c| !c.is_empty())
            .collect(),
        sheet: a.sheet.clone(),
        preset,
    })
}

fn detect_options(d: &DetectArgs, train: TrainMode) -> Result<DetectOptions, Failure> {
    Ok(DetectOptions {
        detector: d
            .detector
            .as_deref()
            .map(str::parse::<DetectorKind>)
            .transpose()
            .map_err(|m| usage(format!("--detector: {m}")))?,
        contamination: d
            .contamination
            .as_deref()
            .map(str::parse::<Contamination>)
            .transpose()
            .map_err(|m| usage(format!("--contamination: {m}")))?,
        train,
        all_attributions: false,
        policy: d
            .model_policy
            .as_deref()
            .map(str::parse::<pipeline::ModelPolicy>)
            .transpose()
            .map_err(|m| usage(format!("--model-policy: {m}")))?,
    })
}

/// Runs ingest and features with a progress bar; writes the rejects report when the run fails
/// on too many rejects.
/// The progress bar on stderr, when it is a terminal and not `--quiet`.
fn progress_bar(quiet: bool) -> Option<indicatif::ProgressBar> {
    (!quiet && std::io::stderr().is_terminal()).then(|| {
        let b = indicatif::ProgressBar::new(1);
        b.set_style(
            indicatif::ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        b.enable_steady_tick(std::time::Duration::from_millis(120));
        b
    })
}

/// Runs ingest and features, reporting on `bar` (the detection stages that follow report on it
/// too; the caller clears it).
fn ingest(
    cfg: &Config,
    opts: &RunOptions,
    rejects_file: &Path,
    bar: Option<&indicatif::ProgressBar>,
) -> Result<RunOutput, Failure> {
    let mut on_progress = progress_reporter(bar);
    let cancel = AtomicBool::new(false);
    let hint = format!(" ({})", rejects_file.display());
    let result = pipeline::run(cfg, opts, &hint, &mut on_progress, &cancel);
    if result.is_err()
        && let Some(b) = bar
    {
        b.finish_and_clear();
    }
    result.map_err(|e| pipeline_failure(e, rejects_file))
}

fn progress_reporter(bar: Option<&indicatif::ProgressBar>) -> impl FnMut(Progress) + '_ {
    move |p: Progress| {
        if let Some(b) = bar {
            b.set_length(p.total);
            b.set_position(p.done);
            b.set_message(p.stage.label());
        }
    }
}

fn pipeline_failure(e: PipelineError, rejects_file: &Path) -> Failure {
    match e {
        PipelineError::TooManyRejects { error, rejects } => {
            if let Err(w) = output::write_rejects(&rejects, rejects_file) {
                return w.into();
            }
            tracing::error!(error = %error, "too many rejects");
            fail(exit::REJECTS, (*error).into())
        }
        PipelineError::Ingest(e) => {
            tracing::error!(error = %e, "input");
            let code = match e {
                IngestError::Config { .. } => exit::CONFIG,
                IngestError::Profile(breakdesk::profile::ProfileError::Unknown { .. })
                | IngestError::Profile(breakdesk::profile::ProfileError::Invalid { .. }) => {
                    exit::CONFIG
                }
                _ => exit::INPUT,
            };
            fail(code, e.into())
        }
        PipelineError::Config(m) => usage(m),
        PipelineError::Features(e @ breakdesk::features::FeatureError::Mismatch(_)) => {
            fail(exit::INPUT, e.into())
        }
        e => e.into(),
    }
}

fn analyze_failure(e: AnalyzeError, rejects_file: &Path) -> Failure {
    match e {
        AnalyzeError::Pipeline(p) => pipeline_failure(p, rejects_file),
        AnalyzeError::Detect(d) => detect_failure(d),
        AnalyzeError::Rules(r) => fail(exit::CONFIG, r.into()),
        AnalyzeError::Cases(c) => case_failure(c),
        AnalyzeError::Table(t) => t.into(),
    }
}

fn detect_failure(e: DetectError) -> Failure {
    match e {
        DetectError::Store(s) => store_failure(s),
        DetectError::Config(m) => usage(m),
        e @ DetectError::Unfit { .. } => fail(exit::CONFIG, e.into()),
        e @ DetectError::Bundle { .. } => fail(exit::CONFIG, e.into()),
        DetectError::Model(m @ breakdesk::detect::model::ModelError::TooFewRows(_)) => {
            fail(exit::INPUT, m.into())
        }
        other => other.into(),
    }
}

fn run(mut cfg: Config, args: &RunArgs, quiet: bool) -> Result<(), Failure> {
    let opts = input_options(&mut cfg, &args.input)?;
    let train = if args.retrain {
        TrainMode::Force
    } else {
        TrainMode::Auto
    };
    let mut dopts = detect_options(&args.detect, train)?;
    dopts.all_attributions = args.all_rows;
    let format: Format = args
        .format
        .as_deref()
        .unwrap_or(&cfg.output.format)
        .parse()
        .map_err(usage)?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from(&cfg.output.path));
    let rejects_file = output::rejects_path(&out);
    let clusters_file = output::sibling_path(&out, "clusters", "csv");
    // A dispatch asked for on a channel that is not usable fails before any work is done.
    let channels = args.dispatch.channels();
    if !args.dispatch.to.is_empty() && !args.dispatch.email {
        return Err(usage("--to is for --email".into()));
    }
    let dispatcher_actor = if channels.is_empty() {
        None
    } else {
        for ch in &channels {
            breakdesk::notify::check_channel(&cfg, *ch).map_err(notify_failure)?;
        }
        Some(actor(&cfg, None, None)?)
    };
    let bundle = args.model.as_deref().map(read_bundle).transpose()?;
    if args.partition.is_some() && out.as_os_str() == "-" {
        return Err(usage(
            "--partition writes its part with sidecars beside it: give --out FILE, not -".into(),
        ));
    }
    let _log = breakdesk::logging::init(&cfg);
    // The store first: a store held by another process fails before any work is done. A
    // partition's worker has none (a cluster's workers cannot share one): an empty store of its
    // own stands in, and the LLM pass is left to the merge.
    let scratch = match args.partition {
        Some(_) => {
            cfg.llm.enabled = false;
            Some(tempfile::tempdir().context("cannot create a scratch directory")?)
        }
        None => None,
    };
    let store = match &scratch {
        Some(dir) => Store::open(dir.path()).map_err(store_failure)?,
        None => open_store(&cfg)?,
    };
    let started = Instant::now();

    let bar = progress_bar(quiet);
    let cancel = AtomicBool::new(false);
    let hint = format!(" ({})", rejects_file.display());
    let aopts = pipeline::AnalyzeOptions {
        detect: dopts,
        all_rows: args.all_rows,
    };
    let model_file = args
        .model
        .as_deref()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let memory_mb = memory_budget(args.memory_mb, &cfg)?;
    let plan = match args.partition {
        Some(_) => None,
        None => breakdesk::bounded::plan(&cfg, &opts, memory_mb),
    };
    if let Some(plan) = plan {
        let run = breakdesk::bounded::analyze_bounded(
            &cfg,
            &opts,
            &aopts,
            &plan,
            bundle.map(|b| (b, model_file.clone())),
            &store,
            (&out, format),
            &mut progress_reporter(bar.as_ref()),
            &cancel,
        );
        if let Some(b) = &bar {
            b.finish_and_clear();
        }
        let run = run.map_err(|e| bounded_failure(e, &rejects_file))?;
        let t = Instant::now();
        output::write_clusters(&run.merged.clusters, &clusters_file)?;
        if !run.rejects.is_empty() {
            output::write_rejects(&run.rejects, &rejects_file)?;
        } else if rejects_file.exists() {
            let _ = std::fs::remove_file(&rejects_file);
        }
        for p in [
            breakdesk::parts::meta_path(&out),
            breakdesk::parts::rows_path(&out),
        ] {
            if out.as_os_str() != "-" && p.is_file() {
                let _ = std::fs::remove_file(p);
            }
        }
        if args.timings {
            let mut parts: Vec<String> = run
                .timings
                .iter()
                .map(|(s, d)| format!("{s} {:.3} s", d.as_secs_f64()))
                .collect();
            parts.push(format!("write {:.3} s", t.elapsed().as_secs_f64()));
            eprintln!("timings: {}", parts.join(", "));
        }
        tracing::info!(out = %out.display(), rows = run.merged.written, parts = run.parts, "written");
        if !quiet {
            print_bounded(&run, &plan, &rejects_file);
            print_buckets(&run.merged.buckets);
            if let Some(r) = &run.merged.llm {
                eprintln!("{}", r.describe());
            }
            if let Some(summary) = &run.merged.summary {
                for line in summary.lines() {
                    eprintln!("{line}");
                }
            }
            eprintln!(
                "wrote {} {} to {} and the cluster summary to {} in {:.2} s",
                run.merged.written,
                if args.all_rows { "rows" } else { "anomalies" },
                out.display(),
                clusters_file.display(),
                started.elapsed().as_secs_f64()
            );
        }
        if let Some(who) = dispatcher_actor {
            dispatch(
                &cfg,
                &store,
                &channels,
                &args.dispatch.to,
                breakdesk::cases::Status::Accepted,
                &who,
                Some(flush_wait(&cfg, None)?),
                quiet,
            )?;
        }
        return Ok(());
    }
    let analysis = match bundle {
        Some(bundle) => pipeline::analyze_with_bundle(
            &cfg,
            &opts,
            &aopts,
            pipeline::BundleRun {
                bundle,
                file: &model_file,
                partition: args.partition.as_ref(),
                record_cases: args.partition.is_none(),
                known: None,
                spill: None,
                prepared: None,
            },
            &store,
            &hint,
            &mut progress_reporter(bar.as_ref()),
            &cancel,
        ),
        None => pipeline::analyze(
            &cfg,
            &opts,
            &aopts,
            &store,
            &hint,
            &mut progress_reporter(bar.as_ref()),
            &cancel,
        ),
    };
    if analysis.is_err()
        && let Some(b) = &bar
    {
        b.finish_and_clear();
    }
    let analysis = analysis.map_err(|e| analyze_failure(e, &rejects_file))?;
    if let Some(b) = &bar {
        b.set_message("writing");
    }
    let t = Instant::now();
    output::write_table(&analysis.table, &out, format)?;
    output::write_clusters(&analysis.det.clusters, &clusters_file)?;
    if let Some(p) = &args.partition {
        let src = breakdesk::parts::PartSource {
            partition: p,
            input: &opts.input,
            history: opts.history.as_deref(),
            all_rows: args.all_rows,
            format,
        };
        breakdesk::parts::write_sidecars(&cfg, &out, &analysis, &src, &store)
            .map_err(part_failure)?;
    } else if out.as_os_str() != "-" {
        // A part's sidecars left beside the file from an earlier run would pass it for a part.
        for p in [
            breakdesk::parts::meta_path(&out),
            breakdesk::parts::rows_path(&out),
        ] {
            if p.is_file() {
                let _ = std::fs::remove_file(p);
            }
        }
    }
    let write_time = t.elapsed();
    let pipeline::Analysis {
        run: result,
        det,
        table,
        categorized,
        summary,
        timings,
        ..
    } = analysis;
    let written = table.height();
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    if args.timings {
        let mut parts: Vec<String> = result
            .timings
            .iter()
            .map(|(s, d)| format!("{} {:.3} s", s.label(), d.as_secs_f64()))
            .collect();
        parts.extend(
            det.timings
                .iter()
                .map(|(s, d)| format!("{s} {:.3} s", d.as_secs_f64())),
        );
        parts.extend(
            timings
                .iter()
                .map(|(s, d)| format!("{s} {:.3} s", d.as_secs_f64())),
        );
        parts.push(format!("write {:.3} s", write_time.as_secs_f64()));
        eprintln!("timings: {}", parts.join(", "));
    }
    if !result.rejects.is_empty() {
        output::write_rejects(&result.rejects, &rejects_file)?;
    } else if rejects_file.exists() {
        // A stale report from an earlier run would mislead.
        let _ = std::fs::remove_file(&rejects_file);
    }
    tracing::info!(out = %out.display(), rows = written, model = %det.bundle.version(), "written");
    if !quiet {
        print_summary(&result, &det, &rejects_file);
        print_buckets(&breakdesk::categorize::BucketTally::of(&categorized.cats));
        if let Some(r) = &categorized.llm {
            eprintln!("{}", r.describe());
        }
        if let Some(p) = &args.partition {
            eprintln!(
                "partition {p}: {} of the file's {} rows; ranks, severities and clusters are this part's own until `breakdesk merge`; no cases recorded",
                result.features.df.height(),
                result.rows_read
            );
        } else {
            for line in summary.lines() {
                eprintln!("{line}");
            }
        }
        eprintln!(
            "wrote {written} {} to {} and the cluster summary to {} in {:.2} s",
            if args.all_rows { "rows" } else { "anomalies" },
            out.display(),
            clusters_file.display(),
            started.elapsed().as_secs_f64()
        );
    }
    if let Some(who) = dispatcher_actor {
        dispatch(
            &cfg,
            &store,
            &channels,
            &args.dispatch.to,
            breakdesk::cases::Status::Accepted,
            &who,
            Some(flush_wait(&cfg, None)?),
            quiet,
        )?;
    }
    Ok(())
}

/// A model bundle file (`--model`).
fn read_bundle(path: &Path) -> Result<ModelBundle, Failure> {
    let bytes = std::fs::read(path).map_err(|e| {
        fail(
            exit::INPUT,
            anyhow::anyhow!("cannot read the model file {}: {e}", path.display()),
        )
    })?;
    ModelBundle::from_json(&bytes).map_err(|e| {
        fail(
            exit::INPUT,
            anyhow::anyhow!(
                "the model file {} is not a model bundle (write one with `breakdesk train FILE --export {}`): {e}",
                path.display(),
                path.display()
            ),
        )
    })
}

fn part_failure(e: breakdesk::parts::PartError) -> Failure {
    use breakdesk::parts::PartError;
    match e {
        PartError::Read { .. }
        | PartError::Invalid { .. }
        | PartError::Mismatch { .. }
        | PartError::Incomplete(_) => fail(exit::INPUT, e.into()),
        PartError::Rules(r) => fail(exit::CONFIG, r.into()),
        PartError::Detect(d) => detect_failure(d),
        PartError::Cases(c) => case_failure(c),
        e => e.into(),
    }
}

fn merge(cfg: Config, args: &MergeArgs, quiet: bool) -> Result<(), Failure> {
    use breakdesk::parts::{self, MergeOptions};
    let format: Option<Format> = args
        .format
        .as_deref()
        .map(str::parse)
        .transpose()
        .map_err(usage)?;
    let _log = breakdesk::logging::init(&cfg);
    // The analysts' verdicts, the LLM's cache and the cases are in the store.
    let store = open_store(&cfg)?;
    let started = Instant::now();
    let bar = progress_bar(quiet);
    if let Some(b) = &bar {
        b.set_message("merging");
    }
    let merged = parts::merge(
        &cfg,
        &args.parts,
        &store,
        MergeOptions {
            record: args.record,
            roll: None,
            out: args.out.clone(),
            format,
            stage_dir: Some(breakdesk::bounded::spill_root(&cfg)),
            ..Default::default()
        },
    );
    if merged.is_err()
        && let Some(b) = &bar
    {
        b.finish_and_clear();
    }
    let merged = merged.map_err(part_failure)?;
    let merge_time = started.elapsed();
    if let Some(b) = &bar {
        b.set_message("writing");
    }
    let t = Instant::now();
    let clusters_file = output::sibling_path(&args.out, "clusters", "csv");
    output::write_clusters(&merged.clusters, &clusters_file)?;
    let rejects_file = output::rejects_path(&args.out);
    match &merged.rejects {
        Some(r) => {
            std::fs::copy(r, &rejects_file).with_context(|| {
                format!("cannot copy {} to {}", r.display(), rejects_file.display())
            })?;
        }
        None if rejects_file.exists() => {
            let _ = std::fs::remove_file(&rejects_file);
        }
        None => {}
    }
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    if args.timings {
        let mut parts: Vec<String> = merged
            .timings
            .iter()
            .map(|(s, d)| format!("{s} {:.3} s", d.as_secs_f64()))
            .collect();
        parts.push(format!("write {:.3} s", t.elapsed().as_secs_f64()));
        eprintln!(
            "timings: {} (merge {:.3} s)",
            parts.join(", "),
            merge_time.as_secs_f64()
        );
    }
    tracing::info!(out = %args.out.display(), rows = merged.written, parts = merged.parts, "merged");
    if !quiet {
        eprintln!(
            "merged {} parts of {} ({} rows of the file's {}), model {}",
            merged.parts, merged.profile, merged.rows, merged.rows_read, merged.model_version
        );
        eprintln!("triage: {}", merged.triage.describe());
        if merged.judged > 0 {
            eprintln!(
                "verdicts: {} breaks judged normal by an analyst quieted ({} of them flagged by a part)",
                merged.judged, merged.judged_flagged
            );
        }
        print_buckets(&merged.buckets);
        if args.record {
            eprintln!(
                "cases: {} recorded (not rolled forward: the parts do not hold the day's other rows)",
                merged.cases.len()
            );
        }
        eprintln!(
            "wrote {} {} to {} and the cluster summary to {} in {:.2} s",
            merged.written,
            if merged.all_rows { "rows" } else { "anomalies" },
            args.out.display(),
            clusters_file.display(),
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

fn notify_failure(e: breakdesk::notify::NotifyError) -> Failure {
    use breakdesk::notify::NotifyError;
    let code = match e {
        NotifyError::Case(c) => return case_failure(c),
        NotifyError::NotConfigured(_) | NotifyError::Invalid(_) => exit::CONFIG,
        NotifyError::NotFound(_) => exit::INPUT,
        NotifyError::Refused { .. } => exit::DECISION,
        NotifyError::Store(_) | NotifyError::Corrupt { .. } => exit::STORE,
        NotifyError::Runtime(_) => exit::FAILURE,
    };
    fail(code, e.into())
}

/// The flush bound: `--wait SECS`, else `[outbox] flush_wait_secs`.
fn flush_wait(cfg: &Config, wait: Option<f64>) -> Result<std::time::Duration, Failure> {
    let secs = wait.unwrap_or(cfg.outbox.flush_wait_secs);
    std::time::Duration::try_from_secs_f64(secs)
        .ok()
        .filter(|d| d.as_secs() <= 86_400)
        .ok_or_else(|| {
            usage(format!(
                "--wait must be between 0 and 86400 seconds, found {secs}"
            ))
        })
}

fn dispatch_command(cfg: &Config, args: &DispatchArgs, quiet: bool) -> Result<(), Failure> {
    let channels = args.channels.channels();
    if channels.is_empty() {
        return Err(usage(
            "say where to dispatch: --email, --jira and/or --webhook".into(),
        ));
    }
    if !args.channels.to.is_empty() && !args.channels.email {
        return Err(usage("--to is for --email".into()));
    }
    let status = parse_status(&args.status)?;
    let who = actor(cfg, args.user.as_deref(), args.role.as_deref())?;
    let wait = if args.no_send {
        None
    } else {
        Some(flush_wait(cfg, args.wait)?)
    };
    let _log = breakdesk::logging::init(cfg);
    let store = open_store(cfg)?;
    dispatch(
        cfg,
        &store,
        &channels,
        &args.channels.to,
        status,
        &who,
        wait,
        quiet,
    )
}

/// Queues the cases in `status` not yet dispatched on each channel, then (with `wait`) sends
/// them. Every channel is checked before anything is queued.
#[allow(clippy::too_many_arguments)]
fn dispatch(
    cfg: &Config,
    store: &Store,
    channels: &[breakdesk::cases::Channel],
    to: &[String],
    status: breakdesk::cases::Status,
    who: &breakdesk::cases::Actor,
    wait: Option<std::time::Duration>,
    quiet: bool,
) -> Result<(), Failure> {
    use breakdesk::notify;
    for ch in channels {
        notify::check_channel(cfg, *ch).map_err(notify_failure)?;
    }
    let mut queued_any = false;
    for ch in channels {
        let cases = notify::dispatchable(store, status, *ch).map_err(notify_failure)?;
        if cases.is_empty() {
            if !quiet {
                eprintln!(
                    "{ch}: nothing to dispatch (no {} case that is not yet dispatched on {ch})",
                    status.as_str()
                );
            }
            continue;
        }
        let q = notify::queue(store, cfg, *ch, &cases, to, who).map_err(notify_failure)?;
        queued_any |= !q.ids.is_empty();
        if !quiet {
            for s in &q.skipped {
                eprintln!("{ch}: skipped {} ({}): {}", s.ticket, s.case_id, s.reason);
            }
            if !q.ids.is_empty() {
                eprintln!(
                    "{ch}: queued {} case(s) as outbox {}",
                    q.case_ids.len(),
                    id_list(&q.ids)
                );
            }
        }
    }
    match wait {
        Some(wait) if queued_any => flush(cfg, store, wait, quiet),
        _ => {
            if queued_any && !quiet {
                eprintln!("queued only; send with `breakdesk outbox flush`");
            }
            Ok(())
        }
    }
}

fn id_list(ids: &[u64]) -> String {
    match ids {
        [one] => format!("#{one}"),
        [first, .., last] if ids.windows(2).all(|w| w[1] == w[0] + 1) => {
            format!("#{first}–#{last}")
        }
        _ => ids
            .iter()
            .map(|i| format!("#{i}"))
            .collect::<Vec<_>>()
            .join(", "),
    }
}

/// Flushes the outbox, printing each attempt; exit 7 when something was parked or is still
/// waiting, exit 2 when a channel is not usable with these settings.
fn flush(
    cfg: &Config,
    store: &Store,
    wait: std::time::Duration,
    quiet: bool,
) -> Result<(), Failure> {
    use breakdesk::notify::{Dispatcher, ItemOutcome, Outbox};
    let dispatcher = Dispatcher::new(cfg).map_err(notify_failure)?;
    let outbox = Outbox::new(store);
    let report = outbox
        .flush(&dispatcher, wait, |item, outcome| {
            if quiet {
                return;
            }
            match outcome {
                ItemOutcome::Sent { reference, detail } => eprintln!(
                    "sent #{} {}{} ({detail})",
                    item.id,
                    item.channel,
                    reference
                        .as_deref()
                        .map(|r| format!(" {r}"))
                        .unwrap_or_default()
                ),
                ItemOutcome::Retrying {
                    next_attempt_at,
                    error,
                } => eprintln!(
                    "failed #{} {} (attempt {}): {error}; retry at {}",
                    item.id,
                    item.channel,
                    item.attempts,
                    next_attempt_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
                ),
                ItemOutcome::Parked { reason } => {
                    eprintln!("parked #{} {}: {reason}", item.id, item.channel)
                }
                ItemOutcome::Skipped { reason } => {
                    eprintln!("not sent #{} {}: {reason}", item.id, item.channel)
                }
            }
        })
        .map_err(notify_failure)?;
    let skipped: Vec<&str> = report
        .outcomes
        .iter()
        .filter_map(|(_, _, o)| match o {
            ItemOutcome::Skipped { reason } => Some(reason.as_str()),
            _ => None,
        })
        .collect();
    let waiting: Vec<String> = report
        .pending
        .iter()
        .filter_map(|i| {
            i.next_attempt_at().map(|t| {
                format!(
                    "#{} at {}",
                    i.id,
                    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                )
            })
        })
        .collect();
    if !quiet {
        eprintln!(
            "outbox: {} sent, {} parked, {} waiting{}",
            report.sent(),
            report.parked(),
            report.pending.len(),
            if waiting.is_empty() {
                String::new()
            } else {
                format!(" ({})", waiting.join(", "))
            }
        );
    }
    if let Some(reason) = skipped.first() {
        return Err(usage(format!(
            "{} outbox item(s) not sent: {reason}",
            skipped.len()
        )));
    }
    if !report.is_complete() {
        return Err(fail(
            exit::DISPATCH,
            anyhow::anyhow!(
                "dispatch incomplete: {} parked, {} still waiting (see `breakdesk outbox list`; a later `breakdesk outbox flush` sends what waits, `outbox retry ID` requeues a parked item)",
                report.parked(),
                report.pending.len()
            ),
        ));
    }
    Ok(())
}

fn outbox_command(cfg: &Config, command: &OutboxCommand, quiet: bool) -> Result<(), Failure> {
    use breakdesk::notify::{ItemStatus, Outbox, OutboxFilter};
    match command {
        OutboxCommand::List {
            format,
            status,
            channel,
        } => {
            if !matches!(format.as_str(), "table" | "jsonl") {
                return Err(usage(format!(
                    "--format must be table or jsonl, found {format:?}"
                )));
            }
            const STATES: [&str; 6] = [
                "queued",
                "sending",
                "retry_wait",
                "sent",
                "parked",
                "cancelled",
            ];
            if let Some(s) = status
                && !STATES.contains(&s.as_str())
            {
                return Err(usage(format!(
                    "--status must be one of {}, found {s:?}",
                    STATES.join(", ")
                )));
            }
            let channel = channel
                .as_deref()
                .map(str::parse::<breakdesk::cases::Channel>)
                .transpose()
                .map_err(|e| usage(e.to_string()))?;
            let store = open_store(cfg)?;
            let items = Outbox::new(&store)
                .list(&OutboxFilter {
                    channel,
                    status: status.clone(),
                })
                .map_err(notify_failure)?;
            if format == "jsonl" {
                for i in &items {
                    // Everything but the rendered payload (an email can be large).
                    let time = |t: chrono::DateTime<chrono::Utc>| {
                        t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
                    };
                    let line = serde_json::json!({
                        "id": i.id,
                        "channel": i.channel,
                        "status": i.status.name(),
                        "next_attempt_at": i.next_attempt_at().map(time),
                        "reason": match &i.status { ItemStatus::Parked { reason, .. } => Some(reason), _ => None },
                        "attempts": i.attempts,
                        "last_error": i.last_error,
                        "result": i.result,
                        "response": i.response,
                        "case_ids": i.case_ids,
                        "tickets": i.tickets,
                        "title": i.title,
                        "queued_by": i.queued_by.user,
                        "created_at": time(i.created_at),
                        "updated_at": time(i.updated_at),
                    });
                    println!("{line}");
                }
                return Ok(());
            }
            println!(
                "{:>6} {:<8} {:<10} {:>8} {:>6}  {:<40} title",
                "id", "channel", "status", "attempts", "cases", "result / next attempt / reason"
            );
            for i in &items {
                let detail = match &i.status {
                    ItemStatus::Sent { .. } => i.result.clone().unwrap_or_else(|| "-".into()),
                    ItemStatus::RetryWait { next_attempt_at } => format!(
                        "retry at {} ({})",
                        next_attempt_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                        i.last_error.as_deref().unwrap_or("")
                    ),
                    ItemStatus::Parked { reason, .. } => reason.clone(),
                    ItemStatus::Queued => i.last_error.clone().unwrap_or_default(),
                    ItemStatus::Sending { since } => format!(
                        "since {}",
                        since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                    ),
                    ItemStatus::Cancelled { .. } => String::new(),
                };
                println!(
                    "{:>6} {:<8} {:<10} {:>8} {:>6}  {:<40} {}",
                    i.id,
                    i.channel.as_str(),
                    i.status.name(),
                    i.attempts,
                    i.case_ids.len(),
                    detail,
                    i.title
                );
            }
            if !quiet {
                eprintln!("{} item(s)", items.len());
            }
            Ok(())
        }
        OutboxCommand::Flush { wait } => {
            let wait = flush_wait(cfg, *wait)?;
            let _log = breakdesk::logging::init(cfg);
            let store = open_store(cfg)?;
            flush(cfg, &store, wait, quiet)
        }
        OutboxCommand::Retry { id, user, role } => {
            let who = actor(cfg, user.as_deref(), role.as_deref())?;
            let store = open_store(cfg)?;
            let item = Outbox::new(&store)
                .retry(*id, &who)
                .map_err(notify_failure)?;
            println!("#{} {} -> {}", item.id, item.channel, item.status.name());
            if !quiet {
                eprintln!("send it with `breakdesk outbox flush`");
            }
            Ok(())
        }
        OutboxCommand::Cancel { id, user, role } => {
            let who = actor(cfg, user.as_deref(), role.as_deref())?;
            let store = open_store(cfg)?;
            let item = Outbox::new(&store)
                .cancel(*id, &who)
                .map_err(notify_failure)?;
            println!("#{} {} -> {}", item.id, item.channel, item.status.name());
            Ok(())
        }
    }
}

fn print_buckets(tally: &breakdesk::categorize::BucketTally) {
    if tally.is_empty() {
        return;
    }
    let mut rows: Vec<(&str, [usize; 4])> = tally.0.iter().map(|(b, n)| (b.as_str(), *n)).collect();
    rows.sort_by_key(|(b, n)| (std::cmp::Reverse(n.iter().sum::<usize>()), *b));
    let parts: Vec<String> = rows
        .iter()
        .map(|(b, n)| {
            let crit = if n[3] > 0 {
                format!(", {} critical", n[3])
            } else {
                String::new()
            };
            format!("{b} {}{crit}", n.iter().sum::<usize>())
        })
        .collect();
    eprintln!("buckets: {}", parts.join("; "));
}

fn print_summary(result: &RunOutput, det: &Detection, rejects_file: &Path) {
    for n in &result.notes {
        eprintln!("note: {n}");
    }
    let rows = rows_line(
        &result.profile,
        (result.rows_read, result.history_rows_read),
        (result.rejected_rows, result.blank_rows, result.dq_rows),
        rejects_file,
    );
    eprintln!(
        "{rows}; {} features ({})",
        result.features.names.len(),
        result.features.preset.as_str(),
    );
    eprintln!("amounts: {}", result.decimal.describe());
    let flagged = det.scored.flag.iter().filter(|f| **f).count();
    eprintln!(
        "{}",
        model_line(
            &det.bundle,
            &det.status,
            (flagged, det.scored.flag.len()),
            det.clusters.len()
        )
    );
    if det.scored.triage.rows > 0 {
        eprintln!("triage: {}", det.scored.triage.describe());
    }
}

/// "profile P: N rows + H history rows, R rejected (see F), B blank skipped, D with data-quality
/// findings", as a run's summary says it.
fn rows_line(
    profile: &str,
    (rows, history_rows): (usize, usize),
    (rejected, blank, dq): (usize, usize, usize),
    rejects_file: &Path,
) -> String {
    let history = if history_rows > 0 {
        format!(" + {history_rows} history rows")
    } else {
        String::new()
    };
    let rejects = if rejected > 0 {
        format!(", {rejected} rejected (see {})", rejects_file.display())
    } else {
        ", 0 rejected".to_string()
    };
    let blank = if blank > 0 {
        format!(", {blank} blank skipped")
    } else {
        String::new()
    };
    format!(
        "profile {profile}: {rows} rows{history}{rejects}{blank}, {dq} with data-quality findings"
    )
}

/// The model, why it is the one used, and how many of the rows it flagged.
fn model_line(
    b: &breakdesk::detect::model::ModelBundle,
    status: &breakdesk::pipeline::ModelStatus,
    (flagged, rows): (usize, usize),
    clusters: usize,
) -> String {
    format!(
        "model {} ({}; {} on {} rows, contamination {}{}); {flagged} of {rows} rows flagged; {clusters} clusters",
        b.version(),
        status.describe(),
        b.spec.detector.as_str(),
        b.training_rows,
        b.contamination,
        b.contamination_value
            .map(|v| format!(" = {v:.4}"))
            .unwrap_or_default(),
    )
}

/// The summary of a bounded-memory run (as [`print_summary`] prints a run's).
fn print_bounded(
    run: &breakdesk::bounded::Bounded,
    plan: &breakdesk::bounded::Plan,
    rejects_file: &Path,
) {
    for n in &run.notes {
        eprintln!("note: {n}");
    }
    let m = &run.merged;
    eprintln!(
        "memory: about {:.0} MiB needed, above the budget of {} MiB: split by account into {} parts ({:.0} MiB spilled), scored one after another and merged",
        plan.estimate_mb,
        plan.budget_mb,
        run.parts,
        run.spilled as f64 / (1024.0 * 1024.0)
    );
    eprintln!(
        "{}",
        rows_line(
            &m.profile,
            (run.rows_read, run.history_rows_read),
            (run.rejected_rows, run.blank_rows, run.dq_rows),
            rejects_file,
        )
    );
    let flagged = m.summary.as_ref().map(|s| s.flagged).unwrap_or(m.written);
    eprintln!(
        "{}",
        model_line(
            &run.bundle,
            &run.status,
            (flagged, m.rows),
            m.clusters.len()
        )
    );
    if m.triage.rows > 0 {
        eprintln!("triage: {}", m.triage.describe());
    }
}

fn bounded_failure(e: breakdesk::bounded::BoundedError, rejects_file: &Path) -> Failure {
    use breakdesk::bounded::BoundedError;
    match e {
        BoundedError::Analyze(a) => analyze_failure(a, rejects_file),
        BoundedError::Part(p) => part_failure(p),
        e @ BoundedError::NoKeys(_) => fail(exit::CONFIG, e.into()),
        e @ BoundedError::Split(_) => fail(exit::INPUT, e.into()),
        e @ BoundedError::Spill { .. } => e.into(),
    }
}

/// The memory budget of a run or training: `--memory-mb`, else `[run] memory_mb`.
fn memory_budget(arg: Option<u64>, cfg: &Config) -> Result<u64, Failure> {
    let memory_mb = arg.unwrap_or(cfg.run.memory_mb);
    if memory_mb != 0 && memory_mb < 64 {
        return Err(usage(format!(
            "--memory-mb must be 0 (no bound) or at least 64, found {memory_mb}"
        )));
    }
    Ok(memory_mb)
}

fn train(mut cfg: Config, args: &TrainArgs, quiet: bool) -> Result<(), Failure> {
    let opts = input_options(&mut cfg, &args.input)?;
    let dopts = detect_options(&args.detect, TrainMode::Force)?;
    let memory_mb = memory_budget(args.memory_mb, &cfg)?;
    let _log = breakdesk::logging::init(&cfg);
    let store = open_store(&cfg)?;
    // The rejects report goes to the data directory (training writes no file of its own
    // elsewhere), and the summary names it.
    let rejects_file = cfg
        .data_dir()
        .map(|d| d.join("train.rejects.csv"))
        .unwrap_or_else(|| PathBuf::from("breakdesk-train.rejects.csv"));
    let bar = progress_bar(quiet);
    let mut split_note = None;
    let det = match breakdesk::bounded::plan(&cfg, &opts, memory_mb) {
        // Over the budget: the model a bounded run of the file trains, on its largest part.
        Some(plan) => {
            if let Some(b) = &bar {
                b.set_message("splitting by account and training");
            }
            let cancel = AtomicBool::new(false);
            breakdesk::bounded::train_bounded(&cfg, &opts, &dopts, &plan, &store, &cancel)
                .map(|t| {
                    split_note = Some(format!(
                        "memory: about {:.0} MiB needed, above the budget of {} MiB: split by account into {} parts ({} MiB spilled); trained on the accounts of the largest part ({} of the file's rows)",
                        plan.estimate_mb,
                        plan.budget_mb,
                        t.parts,
                        t.spilled / (1 << 20),
                        t.run.rows_read
                    ));
                    (t.run, t.det)
                })
                .map_err(|e| bounded_failure(e, &rejects_file))
        }
        None => {
            let result = ingest(&cfg, &opts, &rejects_file, bar.as_ref());
            if let Some(b) = &bar {
                b.set_message("training");
            }
            result.and_then(|mut result| {
                pipeline::score(&cfg, &mut result, &store, &dopts)
                    .map(|d| (result, d))
                    .map_err(detect_failure)
            })
        }
    };
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let (result, det) = det?;
    if !result.rejects.is_empty() {
        output::write_rejects(&result.rejects, &rejects_file)?;
    } else if rejects_file.exists() {
        let _ = std::fs::remove_file(&rejects_file);
    }
    if let Some(p) = &args.export {
        std::fs::write(p, det.bundle.to_json())
            .with_context(|| format!("cannot write {}", p.display()))?;
    }
    if !quiet {
        if let Some(note) = &split_note {
            eprintln!("{note}");
        }
        print_summary(&result, &det, &rejects_file);
        match &det.bundle.feedback {
            Some(f) => eprintln!("{}", f.describe()),
            None => eprintln!("feedback: no decided cases for this profile yet"),
        }
        eprintln!("saved in {}", store.path().display());
    }
    Ok(())
}

fn evaluate(mut cfg: Config, args: &EvaluateArgs, quiet: bool) -> Result<(), Failure> {
    let opts = input_options(&mut cfg, &args.input)?;
    let dopts = detect_options(&args.detect, TrainMode::Force)?;
    if !matches!(args.format.as_str(), "table" | "json") {
        return Err(usage(format!(
            "--format must be table or json, found {:?}",
            args.format
        )));
    }
    // A throw-away store: evaluation never replaces the user's saved models.
    let tmp = tempfile::tempdir().context("cannot create a temporary store")?;
    let store = Store::open(tmp.path()).map_err(store_failure)?;
    let rejects_file = std::env::temp_dir().join("breakdesk-evaluate.rejects.csv");
    let mut result = ingest(&cfg, &opts, &rejects_file, None)?;
    let det = pipeline::score(&cfg, &mut result, &store, &dopts).map_err(detect_failure)?;
    let labels = read_labels(&args.labels)?;
    let rows: Vec<u32> = result
        .features
        .df
        .column(breakdesk::ingest::ROW_COL)
        .and_then(|c| c.cast(&polars::prelude::DataType::UInt32))
        .and_then(|c| c.u32().map(|ca| ca.into_no_null_iter().collect()))
        .context("row numbers")?;
    let row_labels: Vec<Option<String>> = rows.iter().map(|r| labels.get(r).cloned()).collect();
    // Anomaly score: higher = more anomalous.
    let anomaly: Vec<f64> = det.scored.score.iter().map(|s| -s).collect();
    let metrics = breakdesk::evaluate::evaluate(&anomaly, &det.scored.flag, &row_labels);
    // Root-cause buckets of every labelled row, flagged or not.
    let rules = pipeline::rules_file(&cfg).map_err(|e| fail(exit::CONFIG, e.into()))?;
    let table = pipeline::with_detection(&result.features.df, &det, &result.features.names, true)?;
    let labelled: Vec<usize> = (0..row_labels.len())
        .filter(|i| row_labels[*i].is_some())
        .collect();
    let flagged_total = det.scored.flag.iter().filter(|f| **f).count();
    let cats =
        pipeline::categorize_rows(&rules, &table, &result.resolved, &labelled, flagged_total)
            .map_err(|e| fail(exit::CONFIG, e.into()))?;
    let kinds: Vec<&str> = labelled
        .iter()
        .map(|i| row_labels[*i].as_deref().unwrap_or(""))
        .collect();
    let buckets: Vec<&str> = cats.iter().map(|c| c.bucket.as_str()).collect();
    let flags: Vec<bool> = labelled.iter().map(|i| det.scored.flag[*i]).collect();
    let accuracy = breakdesk::evaluate::bucket_accuracy(&rules, &kinds, &buckets, &flags);
    // Flag volume, and the routine accounts' rows among the flags.
    let routine_path = args.routine.clone().or_else(|| {
        let p = breakdesk::evaluate::routine_list_path(&args.labels);
        p.exists().then_some(p)
    });
    let routine = routine_path.as_deref().map(read_routine_list).transpose()?;
    let keys: Vec<String> = match result.features.df.column("bd_key") {
        Ok(c) => c
            .str()
            .map(|ca| ca.iter().map(|v| v.unwrap_or("").to_string()).collect())
            .unwrap_or_default(),
        Err(_) => Vec::new(),
    };
    let in_routine: Option<Vec<bool>> = routine.as_ref().map(|set| {
        keys.iter()
            .map(|k| set.contains(k.as_str()))
            .collect::<Vec<bool>>()
    });
    let volume = breakdesk::evaluate::flag_volume(&det.scored.flag, in_routine.as_deref());
    if args.format == "json" {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "detection": metrics,
                "flags": volume,
                "triage": det.scored.triage,
                "buckets": accuracy,
            }))?
        );
    } else {
        let f = |v: Option<f64>| v.map_or("–".to_string(), |x| format!("{x:.3}"));
        println!(
            "| kind | rows | ROC-AUC | PR-AUC | precision@k | recall of flags | precision of flags |"
        );
        println!("|---|---:|---:|---:|---:|---:|---:|");
        for m in &metrics {
            println!(
                "| {} | {} | {} | {} | {} | {} | {} |",
                m.kind,
                m.positives,
                f(m.roc_auc),
                f(m.pr_auc),
                f(m.precision_at_k),
                f(m.recall_flagged),
                f(m.precision_flagged)
            );
        }
        println!();
        println!("{}", volume.describe());
        println!("triage: {}", det.scored.triage.describe());
        println!();
        println!(
            "| kind | bucket | rows | accuracy | flagged rows | accuracy (flagged) | most often instead |"
        );
        println!("|---|---|---:|---:|---:|---:|---|");
        for a in &accuracy {
            println!(
                "| {} | {} | {} | {:.3} | {} | {} | {} |",
                a.kind,
                a.bucket,
                a.rows,
                a.accuracy,
                a.flagged_rows,
                if a.flagged_rows > 0 {
                    format!("{:.3}", a.flagged_correct as f64 / a.flagged_rows as f64)
                } else {
                    "–".into()
                },
                a.confused_with
                    .iter()
                    .map(|(b, n)| format!("{b} {n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    if !quiet {
        eprintln!(
            "{} rows, {} labelled; model {} ({} on {} rows, preset {}, contamination {})",
            rows.len(),
            row_labels.iter().filter(|l| l.is_some()).count(),
            det.bundle.version(),
            det.bundle.spec.detector.as_str(),
            det.bundle.training_rows,
            result.features.preset.as_str(),
            det.bundle.contamination
        );
    }
    Ok(())
}

/// The generator's routine-account list (group,kind): the groups.
fn read_routine_list(path: &Path) -> Result<std::collections::HashSet<String>, Failure> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the routine list {}", path.display()))
        .map_err(|e| fail(exit::INPUT, e))?;
    let mut out = std::collections::HashSet::new();
    for (i, line) in text.lines().enumerate().skip(1) {
        if line.trim().is_empty() {
            continue;
        }
        // The group is everything before the last comma (the kind has none).
        match line.rsplit_once(',') {
            Some((group, _)) if !group.trim().is_empty() => {
                out.insert(group.trim().trim_matches('"').to_string());
            }
            _ => {
                return Err(fail(
                    exit::INPUT,
                    anyhow::anyhow!(
                        "{} line {}: expected `group,kind`, found {line:?}",
                        path.display(),
                        i + 1
                    ),
                ));
            }
        }
    }
    Ok(out)
}

/// The generator's labels file: row,kind[,group].
fn read_labels(path: &Path) -> Result<std::collections::HashMap<u32, String>, Failure> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the labels file {}", path.display()))
        .map_err(|e| fail(exit::INPUT, e))?;
    let mut out = std::collections::HashMap::new();
    for (i, line) in text.lines().enumerate().skip(1) {
        let mut parts = line.split(',');
        let row = parts.next().and_then(|r| r.trim().parse::<u32>().ok());
        let kind = parts.next().map(str::trim).filter(|k| !k.is_empty());
        match (row, kind) {
            (Some(r), Some(k)) => {
                out.insert(r, k.to_string());
            }
            _ => {
                return Err(fail(
                    exit::INPUT,
                    anyhow::anyhow!(
                        "{} line {}: expected `row,kind`, found {line:?}",
                        path.display(),
                        i + 1
                    ),
                ));
            }
        }
    }
    Ok(out)
}

fn model(cfg: Config, command: &ModelCommand) -> Result<(), Failure> {
    let store = open_store(&cfg)?;
    match command {
        ModelCommand::List => {
            for name in store.model_names().map_err(store_failure)? {
                let bytes = store
                    .get_model(&name)
                    .map_err(store_failure)?
                    .unwrap_or_default();
                match ModelBundle::from_json(&bytes) {
                    Ok(b) => println!(
                        "{name:<20} {}  trained {} on {} rows, {} features, contamination {}",
                        b.version(),
                        b.trained_at,
                        b.training_rows,
                        b.feature_names.len(),
                        b.contamination
                    ),
                    Err(e) => println!("{name:<20} unreadable: {e}"),
                }
            }
            Ok(())
        }
        ModelCommand::Export {
            profile,
            detector,
            out,
        } => {
            let detector = detector.as_deref().unwrap_or(&cfg.detect.detector);
            let key = format!("{profile}/{detector}");
            let bytes = store
                .get_model(&key)
                .map_err(store_failure)?
                .ok_or_else(|| {
                    fail(
                        exit::INPUT,
                        anyhow::anyhow!(
                            "no saved model {key:?} in {}; train one with `breakdesk train FILE`",
                            store.path().display()
                        ),
                    )
                })?;
            std::fs::write(out, bytes)
                .with_context(|| format!("cannot write {}", out.display()))?;
            Ok(())
        }
    }
}
