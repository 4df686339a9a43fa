//! Ctrl-C (SIGINT) and SIGTERM during a command that reads files (`run`, `merge`, `train`,
//! `evaluate`): the first one asks the pipeline to stop at its next stage, so that a run over the
//! memory budget removes its spill folder (a merge its stage folder) and nothing half done is
//! left behind: no output is written and no case is recorded. A second one (not the same one
//! delivered twice: [`SAME_WITHIN_MS`]) ends the process at once, as the signal would have.
//!
//! A signal that was ignored when the process started (`breakdesk run … &` from a script, or
//! `nohup`) stays ignored. The terminal UI and the service handle their own keys and signals and
//! never ask for [`flag`].

use std::sync::atomic::{AtomicBool, Ordering};

/// Set by the first SIGINT or SIGTERM, once [`flag`] has set the handlers up.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);
/// Set by the first SIGTERM: which exit code the interruption gets.
static TERMINATED: AtomicBool = AtomicBool::new(false);

/// The exit code of a command stopped by SIGINT (128 + 2, as a shell reports it).
pub const BY_SIGINT: u8 = 130;
/// The exit code of a command stopped by SIGTERM (128 + 15).
pub const BY_SIGTERM: u8 = 143;

/// The flag a pipeline watches for cancellation, set when the process is interrupted. The
/// handlers are set up on the first call; a message says the command is stopping when the first
/// signal comes.
pub fn flag() -> &'static AtomicBool {
    static SET_UP: std::sync::Once = std::sync::Once::new();
    SET_UP.call_once(set_up);
    &INTERRUPTED
}

/// The progress bar the command shows, if any: an interruption is said on it (a line written
/// under a bar that is still drawn would be drawn over).
static BAR: std::sync::Mutex<Option<indicatif::ProgressBar>> = std::sync::Mutex::new(None);

/// Says an interruption on `bar` rather than on a line of its own.
pub fn show_on(bar: &indicatif::ProgressBar) {
    *BAR.lock().unwrap_or_else(|e| e.into_inner()) = Some(bar.clone());
}

/// The exit code of an interrupted command: [`BY_SIGTERM`] after a SIGTERM, else [`BY_SIGINT`].
pub fn exit_code() -> u8 {
    if TERMINATED.load(Ordering::SeqCst) {
        BY_SIGTERM
    } else {
        BY_SIGINT
    }
}

/// Says so when a command finished although it was interrupted: the signal came in its last
/// stage, which is not stopped half way (its cases and output are complete).
pub fn note_finished() {
    if INTERRUPTED.load(Ordering::SeqCst) {
        eprintln!("interrupted in its last stage: the command finished (its output is complete)");
    }
}

/// When the first signal came, in milliseconds of the monotonic clock (0: none yet).
static FIRST_AT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
/// A signal this soon after the first one is the same interruption delivered twice (`timeout`
/// signals the command and then its process group), not a second Ctrl-C.
const SAME_WITHIN_MS: u64 = 300;

/// The monotonic clock in milliseconds (at least 1), through `clock_gettime`, which may be called
/// in a signal handler.
#[cfg(unix)]
fn monotonic_ms() -> u64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into `t`, owned by this frame; it is async-signal-safe.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut t) };
    (t.tv_sec as u64)
        .saturating_mul(1000)
        .saturating_add(t.tv_nsec as u64 / 1_000_000)
        .max(1)
}

#[cfg(unix)]
fn set_up() {
    use signal_hook::consts::{SIGINT, SIGTERM};
    for (signal, code) in [(SIGINT, BY_SIGINT), (SIGTERM, BY_SIGTERM)] {
        if ignored(signal) {
            continue;
        }
        let action = move || {
            let now = monotonic_ms();
            match FIRST_AT.compare_exchange(0, now, Ordering::SeqCst, Ordering::SeqCst) {
                Ok(_) => {
                    if signal == SIGTERM {
                        TERMINATED.store(true, Ordering::SeqCst);
                    }
                    INTERRUPTED.store(true, Ordering::SeqCst);
                }
                Err(first) if now.saturating_sub(first) >= SAME_WITHIN_MS => {
                    signal_hook::low_level::exit(i32::from(code))
                }
                Err(_) => {}
            }
        };
        // SAFETY: the action only reads the monotonic clock, uses atomics and may call `_exit`,
        // all async-signal-safe; it allocates and locks nothing.
        if let Err(e) = unsafe { signal_hook::low_level::register(signal, action) } {
            tracing::warn!(signal, error = %e, "interruption handler not set up");
        }
    }
    // The handlers only set flags; this thread says what happens next, once.
    let watcher = std::thread::Builder::new()
        .name("breakdesk-interrupt".into())
        .spawn(|| {
            while !INTERRUPTED.load(Ordering::SeqCst) {
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            const SAID: &str =
                "interrupted: stopping at the next stage; interrupt again to stop at once";
            match BAR.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
                Some(bar) if !bar.is_finished() => bar.set_message(SAID),
                _ => eprintln!("\n{SAID}"),
            }
        });
    if let Err(e) = watcher {
        tracing::warn!(error = %e, "interruption watcher not started");
    }
}

#[cfg(not(unix))]
fn set_up() {}

/// Whether `signal` is ignored (as a shell leaves SIGINT for a command started in the
/// background).
#[cfg(unix)]
fn ignored(signal: i32) -> bool {
    // SAFETY: sigaction with a null new action only reads the current one into `old`, a
    // zeroed sigaction owned by this frame.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        libc::sigaction(signal, std::ptr::null(), &mut old) == 0
            && old.sa_sigaction == libc::SIG_IGN
    }
}
