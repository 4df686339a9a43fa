//! The terminal UI (`breakdesk open`, the default command): the app state and its `update`
//! ([`app`]), the actions ([`action`]), the one keymap ([`keymap`]), the background analysis
//! ([`worker`]), the background CSV export ([`export`]), the column store behind the table
//! ([`table`]), its saved views ([`saved`]), pure drawing ([`ui`]) and the themes. This module owns the terminal: raw mode,
//! the alternate screen and mouse capture are undone on every exit — normal, error or panic (a
//! panic hook and a drop guard).
//!
//! Nothing in the library's core imports this module (dependency direction: tui → pipeline →
//! stages).
//!
//! Dispatch: `e` (email), `J` (Jira) and `W` (webhook) queue the accepted cases in the store's
//! outbox ([`crate::dispatch`]); one background [`crate::dispatch::OutboxSender`] (the store's one sender
//! while the UI runs) sends them, and its reports reach [`app::App::update`] as
//! [`message::Message::Dispatch`], polled here beside the analysis worker's messages and the
//! exports' results. The outbox view (`4`) lists the items with the one under the cursor in
//! full; `R` retries a parked one, `X` cancels an undelivered one.
//!
//! Live mode (`open --live ws://…`, [`live`]): a client thread holds the service's WebSocket
//! and makes its REST calls; its events reach [`app::App::update`] as
//! [`message::Message::Live`], polled here too.

pub mod app;
pub mod column_store;
pub mod export;
pub mod keymap;
pub mod live;
pub mod message;
pub mod profile;
pub mod queue;
pub mod results;
pub mod saved;
pub mod theme;
pub mod ui;
pub mod worker;

use app::{App, AppOptions, Start};
use message::Message;
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use ratatui::crossterm::{
    cursor,
    event::{self, DisableMouseCapture, EnableMouseCapture, Event},
    execute,
    terminal::{self, EnterAlternateScreen, LeaveAlternateScreen},
};
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// Why the UI could not run.
#[derive(Debug, thiserror::Error)]
pub enum TuiError {
    #[error(
        "breakdesk open draws a terminal UI, but standard output is not a terminal; use `breakdesk run FILE` for batch work"
    )]
    NotATerminal,
    #[error("terminal: {0}")]
    Io(#[from] std::io::Error),
}

/// Puts the terminal back as it was. Safe to call more than once.
pub fn restore_terminal() {
    let mut out = std::io::stdout();
    let _ = execute!(out, DisableMouseCapture, LeaveAlternateScreen, cursor::Show);
    let _ = terminal::disable_raw_mode();
    let _ = out.flush();
}

/// Restores the terminal when dropped (normal return, `?` errors, unwinding).
struct TerminalGuard;

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore_terminal();
    }
}

/// Runs the UI until the user quits. The terminal is restored on every way out.
pub fn run(opts: AppOptions, start: Start) -> Result<(), TuiError> {
    if !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
        return Err(TuiError::NotATerminal);
    }
    // A panic of the UI thread restores the terminal first, so its message is readable. A
    // panic of the background analysis is caught there and shown on the error screen: it is
    // only logged, not printed over the UI.
    let previous = std::panic::take_hook();
    let ui_thread = std::thread::current().id();
    std::panic::set_hook(Box::new(move |info| {
        if std::thread::current().id() == ui_thread {
            restore_terminal();
            previous(info);
        } else {
            tracing::error!(panic = %info, "background panic");
        }
    }));
    let started = Instant::now();
    terminal::enable_raw_mode()?;
    let _guard = TerminalGuard;
    execute!(std::io::stdout(), EnterAlternateScreen, EnableMouseCapture)?;
    let mut term = Terminal::new(CrosstermBackend::new(std::io::stdout()))?;
    term.clear()?;
    let size = term.size()?;
    let mut app = App::new(opts);
    app.update(Message::Resize(size.width, size.height));
    app.start(start);
    // With a channel enabled, the sender starts now (it also sends what an earlier session left
    // queued); otherwise at the first dispatch.
    app.start_sender_if_enabled();
    let result = event_loop(&mut term, &mut app, started);
    // Leave the store consistent: stop a load in progress (cases are written in durable chunks),
    // and the sender after its attempt in progress (what is not sent stays in the outbox).
    app.worker.cancel();
    app.stop_sender();
    // An export in progress is finished, so no file is left half written.
    app.exporter.join();
    // Dropping the live client's end stops its thread.
    app.live = None;
    let _ = std::panic::take_hook();
    result
}

fn event_loop(
    term: &mut Terminal<CrosstermBackend<std::io::Stdout>>,
    app: &mut App,
    started: Instant,
) -> Result<(), TuiError> {
    let mut load_started = started;
    let mut generation = app.worker.generation;
    while !app.quit {
        if app.worker.generation != generation {
            generation = app.worker.generation;
            load_started = Instant::now();
        }
        if app.dirty {
            term.draw(|f| ui::draw(f, app))?;
            app.dirty = false;
        }
        // Input first; background messages (analysis, dispatch, live) and the clock between
        // keys.
        let wait = if app.loading.is_some() || app.live.is_some() {
            Duration::from_millis(50)
        } else {
            Duration::from_millis(250)
        };
        if event::poll(wait)? {
            match event::read()? {
                Event::Key(k) => app.update(Message::Key(k)),
                Event::Mouse(m) => app.update(Message::Mouse(m)),
                Event::Resize(w, h) => app.update(Message::Resize(w, h)),
                _ => {}
            }
        }
        app.pump(None);
        if app.loading.is_some() {
            app.update(Message::Tick(load_started.elapsed()));
        }
    }
    Ok(())
}
