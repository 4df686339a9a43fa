//! `open`: the terminal UI on a file, or live on a service's stream.

use super::args::{actor, open_store};
use super::exit::{Failure, store_failure, usage};
use anyhow::Context;
use breakdesk::config::Config;
use breakdesk::pipeline::RunOptions;
use breakdesk::store::Store;
use clap::Args;
use std::io::IsTerminal;
use std::path::PathBuf;

#[derive(Args, Default)]
pub struct OpenArgs {
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

/// The terminal UI.
pub fn open(cfg: Config, args: &OpenArgs) -> Result<(), Failure> {
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
        breakdesk::wiring::check::claimed_actor(&cfg, args.user.as_deref(), args.role.as_deref())
            .map_err(|e| usage(e.to_string()))?
    } else {
        actor(&cfg, args.user.as_deref(), args.role.as_deref())?
    };
    let keymap = tui::keymap::Keymap::with_overrides(&cfg.tui.keys).map_err(usage)?;
    let theme = tui::theme::Theme::by_name(&cfg.tui.theme);
    let _log = breakdesk::logging::init(&breakdesk::wiring::dispatch::logging(&cfg));
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
pub fn open_live(
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
