//! When the allocator gives freed memory back to the system.
//!
//! mimalloc returns memory freed for about a second (`purge_delay`, 1,000 ms) to the system;
//! touching it again costs a page fault and the kernel zeroing the page. A bounded run's parts
//! are alike: each one allocates about what the one before it freed, so while they run the
//! freed memory is kept for the next part instead ([`KeepFreed`]). A whole run's stages are
//! alike in the same way (`breakdesk run` keeps freed memory from reading to writing, within
//! 80 % of its memory budget).

use std::ffi::{c_int, c_long};

unsafe extern "C" {
    /// mimalloc (linked as the global allocator, `src/lib.rs`).
    fn mi_option_get(option: c_int) -> c_long;
    fn mi_option_set(option: c_int, value: c_long);
    fn mi_collect(force: bool);
}

/// `mi_option_purge_delay` in the `mi_option_t` of the mimalloc linked (v3, `mimalloc.h`):
/// milliseconds before freed memory goes back to the system; -1: never.
const PURGE_DELAY: c_int = 15;

/// The purge delay now (ms; -1: memory is never given back).
// `c_long` is 32 bits on some targets.
#[allow(clippy::useless_conversion)]
pub fn purge_delay() -> i64 {
    // SAFETY: reads an option of the linked allocator; any option index is accepted.
    i64::from(unsafe { mi_option_get(PURGE_DELAY) })
}

fn set_purge_delay(ms: i64) {
    // SAFETY: sets an option of the linked allocator, which reads its options as it goes.
    unsafe { mi_option_set(PURGE_DELAY, ms as c_long) }
}

fn give_back_free() {
    // SAFETY: asks the linked allocator to give back what it can; any thread may.
    unsafe { mi_collect(true) }
}

/// How long memory freed is kept while a [`KeepFreed`] lives (an hour: for the whole of it).
const KEEP_MS: i64 = 3_600_000;

/// The [`KeepFreed`] alive in the process, and the purge delay before the first of them.
static KEEPING: std::sync::Mutex<(usize, i64)> = std::sync::Mutex::new((0, 0));

/// While one lives, memory freed is kept by the allocator for what comes next (the option is
/// the process's: runs side by side share it). When the last one is dropped, the delay before
/// the first is restored and what was freed meanwhile and is still free is given back at once.
pub struct KeepFreed {
    /// Past this resident size (MiB), [`KeepFreed::within_limit`] gives what is free back.
    limit_mib: Option<f64>,
}

impl KeepFreed {
    /// Keeps freed memory with no limit of its own.
    pub fn start() -> KeepFreed {
        KeepFreed::up_to(None)
    }

    /// Keeps freed memory while the process holds at most `limit_mib` MiB, as checked by
    /// [`KeepFreed::within_limit`] (None: no limit).
    pub fn up_to(limit_mib: Option<f64>) -> KeepFreed {
        let mut keeping = KEEPING.lock().unwrap_or_else(|e| e.into_inner());
        if keeping.0 == 0 {
            let before = purge_delay();
            keeping.1 = before;
            // Not -1 (never): memory freed with purging off is never given back, even later.
            if before >= 0 {
                set_purge_delay(KEEP_MS.max(before));
            }
        }
        keeping.0 += 1;
        KeepFreed { limit_mib }
    }

    /// Gives back to the system what is free now when the process holds more than the limit
    /// (and goes on keeping what is freed next); `resident` reads the process's resident size
    /// (MiB), which is returned. Without a limit nothing is read.
    pub fn within_limit(&self, resident: impl FnOnce() -> Option<u64>) -> Option<u64> {
        let limit = self.limit_mib?;
        let resident = resident();
        if resident.is_some_and(|r| r as f64 > limit) {
            give_back_free();
        }
        resident
    }
}

impl Drop for KeepFreed {
    fn drop(&mut self) {
        let mut keeping = KEEPING.lock().unwrap_or_else(|e| e.into_inner());
        keeping.0 = keeping.0.saturating_sub(1);
        if keeping.0 == 0 {
            set_purge_delay(keeping.1);
            give_back_free();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The purge delay is the process's: the tests that set it take turns.
    static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());

    /// The option index is the linked mimalloc's purge delay: its default is 1,000 ms (or what
    /// `MIMALLOC_PURGE_DELAY` says), and keeping freed memory sets it to an hour and back.
    #[test]
    fn keeping_freed_memory_sets_the_purge_delay_and_restores_it() {
        let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
        let expected: i64 = std::env::var("MIMALLOC_PURGE_DELAY")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1000);
        assert_eq!(purge_delay(), expected);
        let kept = if expected >= 0 {
            KEEP_MS.max(expected)
        } else {
            expected
        };
        {
            let _keep = KeepFreed::start();
            assert_eq!(purge_delay(), kept);
            let v: Vec<u8> = vec![1; 1 << 20];
            assert_eq!(v.iter().map(|b| *b as usize).sum::<usize>(), 1 << 20);
            // A second one alive at once (two runs side by side): the delay stays until the
            // last one ends.
            let other = std::thread::spawn(KeepFreed::start).join().unwrap();
            assert_eq!(purge_delay(), kept);
            drop(other);
            assert_eq!(purge_delay(), kept);
        }
        assert_eq!(purge_delay(), expected);
    }

    /// A limit is checked against the resident size read: without one nothing is read, and
    /// past one what is free is given back (the keeping goes on).
    #[test]
    fn keeping_within_a_limit_reads_the_resident_size() {
        let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
        let unbounded = KeepFreed::start();
        assert_eq!(
            unbounded.within_limit(|| panic!("read without a limit")),
            None
        );
        let bounded = KeepFreed::up_to(Some(100.0));
        assert_eq!(bounded.within_limit(|| Some(50)), Some(50));
        assert_eq!(bounded.within_limit(|| Some(150)), Some(150));
        assert_eq!(bounded.within_limit(|| None), None);
        assert!(purge_delay() == -1 || purge_delay() >= KEEP_MS);
    }
}
