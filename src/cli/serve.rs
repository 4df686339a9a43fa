//! `serve`: the REST and WebSocket service.

use super::args::open_store;
use super::exit::{Failure, serve_failure};
use breakdesk::config::Config;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct ServeArgs {
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

pub fn serve(cfg: Config, args: &ServeArgs) -> Result<(), Failure> {
    use breakdesk::server::{self, ServeOptions};
    let opts = ServeOptions {
        bind: args.bind,
        history: args.history.clone(),
        profile: args.profile.clone(),
    };
    // The address is checked (loopback, or a token) before anything is loaded.
    let addr = server::bind_address(&cfg, &opts).map_err(serve_failure)?;
    let _log = breakdesk::logging::init(&breakdesk::wiring::dispatch::logging(&cfg));
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
