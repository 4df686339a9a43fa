//! The `breakdesk` command line.

use anyhow::Context;
use breakdesk::config::{Config, DEFAULT_TOML};
use breakdesk::features::Preset;
use breakdesk::ingest::IngestError;
use breakdesk::output::{self, Format};
use breakdesk::pipeline::{self, PipelineError, Progress, RunOptions};
use breakdesk::profile::Profile;
use clap::{Args, Parser, Subcommand};
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
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Read a reconciliation file, check it through its profile and write the rows with their features.
    Run(RunArgs),
    /// Write a realistic synthetic reconciliation file with labelled breaks.
    Generate(GenerateArgs),
    /// List the built-in profiles, or print one as TOML to start your own.
    Profiles {
        /// Print this profile's TOML.
        name: Option<String>,
    },
    /// Print the default configuration (every setting with its default) and where user files go.
    Config,
}

#[derive(Args)]
struct RunArgs {
    /// The current reconciliation file (.csv or an Excel workbook).
    file: PathBuf,
    /// Earlier records of the same accounts, used as context for the features.
    #[arg(long, value_name = "FILE")]
    history: Option<PathBuf>,
    /// Profile name (gl_ihub, trades, generic) or path of a profile .toml; default: detected.
    #[arg(long, value_name = "NAME|FILE")]
    profile: Option<String>,
    /// Numeric columns to score with the generic profile (comma-separated).
    #[arg(long, value_delimiter = ',', value_name = "A,B,...")]
    columns: Vec<String>,
    /// Output file (`-` for standard output); default `[output] path`.
    #[arg(long, short, value_name = "PATH")]
    out: Option<PathBuf>,
    /// Write every row, not only flagged ones. Until detection is built, every row is written anyway.
    #[arg(long)]
    all_rows: bool,
    /// csv or jsonl; default `[output] format`.
    #[arg(long)]
    format: Option<String>,
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    match real_main(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("error: {:#}", f.error);
            ExitCode::from(f.code)
        }
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

fn real_main(cli: Cli) -> Result<(), Failure> {
    match &cli.command {
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
        Command::Run(args) => {
            let cfg = load_config(&cli)?;
            run(cfg, args, cli.quiet)
        }
    }
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
    let opts = breakdesk::generate::GenerateOptions {
        profile,
        rows: g.rows,
        seed: g.seed,
        break_rate: g.break_rate,
        messy: g.messy,
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
    let summary = breakdesk::generate::generate(
        &opts,
        &mut out,
        labels.as_mut().map(|w| w as &mut dyn std::io::Write),
    )
    .map_err(|e| fail(exit::CONFIG, e))?;
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
    }
    Ok(())
}

fn run(mut cfg: Config, args: &RunArgs, quiet: bool) -> Result<(), Failure> {
    let usage = |e: String| fail(exit::CONFIG, anyhow::anyhow!(e));
    if let Some(d) = &args.delimiter {
        breakdesk::ingest::csv::parse_delimiter(d)
            .map_err(|m| usage(format!("--delimiter {m}")))?;
        cfg.ingest.delimiter = d.clone();
    }
    if let Some(e) = &args.encoding {
        if !matches!(e.as_str(), "utf8" | "lossy" | "windows-1252") {
            return Err(usage(format!(
                "--encoding must be utf8, lossy or windows-1252, found {e:?}"
            )));
        }
        cfg.ingest.encoding = e.clone();
    }
    let format: Format = args
        .format
        .as_deref()
        .unwrap_or(&cfg.output.format)
        .parse()
        .map_err(usage)?;
    let preset: Option<Preset> = args
        .preset
        .as_deref()
        .map(str::parse)
        .transpose()
        .map_err(usage)?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from(&cfg.output.path));
    let rejects_file = output::rejects_path(&out);
    let _log = breakdesk::logging::init(&cfg);

    let opts = RunOptions {
        input: args.file.clone(),
        history: args.history.clone(),
        profile: args.profile.clone(),
        columns: args
            .columns
            .iter()
            .map(|c| c.trim().to_string())
            .filter(|c| !c.is_empty())
            .collect(),
        sheet: args.sheet.clone(),
        preset,
    };
    let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
        let b = indicatif::ProgressBar::new(1);
        b.set_style(
            indicatif::ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        b.enable_steady_tick(std::time::Duration::from_millis(120));
        b
    });
    let mut on_progress = |p: Progress| {
        if let Some(b) = &bar {
            b.set_length(p.total);
            b.set_position(p.done);
            b.set_message(p.stage.label());
        }
    };
    let cancel = AtomicBool::new(false);
    let started = Instant::now();
    let hint = format!(" ({})", rejects_file.display());
    let result = pipeline::run(&cfg, &opts, &hint, &mut on_progress, &cancel);
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let result = match result {
        Ok(r) => r,
        Err(PipelineError::TooManyRejects { error, rejects }) => {
            output::write_rejects(&rejects, &rejects_file)?;
            tracing::error!(error = %error, "too many rejects");
            return Err(fail(exit::REJECTS, (*error).into()));
        }
        Err(PipelineError::Ingest(e)) => {
            tracing::error!(error = %e, "input");
            let code = match e {
                IngestError::Config { .. } => exit::CONFIG,
                IngestError::Profile(breakdesk::profile::ProfileError::Unknown { .. })
                | IngestError::Profile(breakdesk::profile::ProfileError::Invalid { .. }) => {
                    exit::CONFIG
                }
                _ => exit::INPUT,
            };
            return Err(fail(code, e.into()));
        }
        Err(PipelineError::Config(m)) => return Err(usage(m)),
        Err(e) => return Err(e.into()),
    };

    output::write_table(&result.features.df, &out, format)?;
    if !result.rejects.is_empty() {
        output::write_rejects(&result.rejects, &rejects_file)?;
    } else if rejects_file.exists() {
        // A stale report from an earlier run would mislead.
        let _ = std::fs::remove_file(&rejects_file);
    }
    tracing::info!(out = %out.display(), rows = result.features.df.height(), "written");
    if !quiet {
        for n in &result.notes {
            eprintln!("note: {n}");
        }
        let history = if result.history_rows_read > 0 {
            format!(" + {} history rows", result.history_rows_read)
        } else {
            String::new()
        };
        let rejects = if result.rejected_rows > 0 {
            format!(
                ", {} rejected (see {})",
                result.rejected_rows,
                rejects_file.display()
            )
        } else {
            ", 0 rejected".to_string()
        };
        eprintln!(
            "profile {}: {} rows{history}{rejects}, {} with data-quality findings; {} features ({}); wrote {} rows to {} in {:.2} s",
            result.profile,
            result.rows_read,
            result.dq_rows,
            result.features.names.len(),
            result.features.preset.as_str(),
            result.features.df.height(),
            out.display(),
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
