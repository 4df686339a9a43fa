//! `doctor`, `man`, `completions` and `health`: the set-up and the service's health check.

use super::exit::{self, Failure, fail, usage};
use super::{Cli, cli_command, load_config};
use anyhow::Context;
use clap::Args;
use std::path::Path;

#[derive(Args)]
pub struct DoctorArgs {
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
pub enum DoctorFormat {
    Text,
    Json,
}

/// `breakdesk doctor`: the report on stdout; exit 8 when a check is a problem.
pub fn doctor(cli: &Cli, args: &DoctorArgs) -> Result<(), Failure> {
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

/// `breakdesk completions SHELL`: the script on stdout.
pub fn completions(shell: clap_complete::Shell) {
    breakdesk::shipping::write_completions(
        shell,
        &mut cli_command(),
        "breakdesk",
        &mut std::io::stdout(),
    );
}

/// `breakdesk man`: the page on stdout, or one page per command in `dir`.
pub fn man(dir: Option<&Path>, quiet: bool) -> Result<(), Failure> {
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
pub fn health(cli: &Cli, url: Option<&str>, timeout: f64) -> Result<(), Failure> {
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
