//! The case store: breakdesk's system of record for analysts' decisions on flagged breaks.
//!
//! Each flagged anomaly (a break: a run of out-of-tolerance records of one key of one profile)
//! becomes one [`Case`], whose id is derived from the break's identity ([`case_id`]), so that
//! running the same file again, or the next day's file in which the break persists, updates the
//! same case instead of opening another. A case gets a ticket (`BRK-YYYYMMDD-NNNNNN`) when it is
//! created, from a counter that is never reused.
//!
//! Analysts and supervisors move cases through a status machine ([`Status`], [`Action`]):
//!
//! ```text
//! PendingReview ─accept→ Accepted ─reopen→ PendingReview
//!               ─reject→ Rejected ─reopen→ PendingReview
//!               ─propose→ AutoResolveProposed ─approve→ Approved ─reopen→ PendingReview
//!                                             ─return→ Returned (accept / reject / propose again)
//! PendingReview, Returned, AutoResolveProposed ─(the break clears by itself)→ Cleared
//! Cleared ─accept / reject→ Accepted / Rejected, ─reopen→ PendingReview
//! ```
//!
//! Breaks roll forward from one reconciliation cycle to the next ([`Cases::roll_forward`]): a
//! case whose account is back within tolerance has cleared (an undecided case becomes
//! `Cleared`, a decided one keeps its decision and records the date); a cleared break that comes
//! back within `reopen_days` reopens its case; a decided case whose difference moves past
//! `recertify_share` goes back to review.
//!
//! Rejecting, returning and reopening need a reason (or comment). Only supervisors approve and
//! return, and never approve an auto-resolution they proposed themselves (maker-checker). Rules
//! only propose: a new case whose bucket says rules may auto-resolve it starts in
//! `AutoResolveProposed`, never further.
//!
//! Every action appends an [`Event`] (events are never changed or deleted); the case and its event
//! are written in one transaction and flushed to disk before the call returns, so a decision that
//! was acknowledged survives a crash. Decided cases also feed the training labels ([`Label`]).
//!
//! All operations go through [`Cases`], a handle on an open [`Store`].

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, SubsecRound, Utc};
use sha2::{Digest, Sha256};

use crate::store::{Store, TxError};

mod actor;
mod binary;
mod case;
mod codec;
mod decide;
mod feedback;
mod input;
mod query;
mod record;
mod roll;
mod summary;
#[cfg(test)]
mod tests;
mod types;

pub use actor::{ActorError, RoleGrants};
pub use binary::{EncodedRow, decode_input, decode_input_row, encode_input, encode_input_row};
pub use case::{
    CASE_CSV_HEAD, Case, CaseError, CaseFilter, Change, Decision, Event, FeedbackReport,
    FeedbackRow, Label, Recorded, RowProblem, UpsertOutcome, case_columns,
};
pub(crate) use codec::{hex, load_case_txn, next_counter, time_format};
pub(crate) use decide::apply_dispatch;
pub use decide::is_jira_key;
pub use input::BreakInput;
pub use roll::{Absent, CaseOptions, Cycle, CycleRecord, RollOutcome, RollParams, date_of_day};
pub use summary::{RunSummary, Tally, age_band, age_band_names};
pub(crate) use types::DispatchChange;
pub use types::{
    Action, Actor, Channel, ChannelDispatch, DispatchState, EventAction, Origin, Role, Status,
    Unreadable,
};

/// The user recorded on events that breakdesk itself writes (a case created from a flagged
/// record).
pub const SYSTEM_USER: &str = "breakdesk";

/// The user recorded on events of auto-resolutions proposed by the bucket rules.
pub const RULES_USER: &str = "rules";

/// The longest note on a case, in characters.
pub const MAX_NOTE_CHARS: usize = 4000;

const TICKET_COUNTER: &[u8] = b"ticket";
const EVENT_COUNTER: &[u8] = b"event";

// ---------------------------------------------------------------------------------------------
// Identity

/// Cases per transaction in [`Cases::upsert_batch`] (and in a roll forward): the store packs
/// many cases to a stored value, and a transaction writes each value it changed once, whole.
/// A batch's new cases touch every index bucket, so each transaction rewrites the whole index:
/// 100,000 cases in transactions of 20,000 wrote it five times. A crash undoes at most the
/// transaction under way; recording the same records again completes it (recording is
/// idempotent). A bounded run's merge records its cases in groups of 20,000 records.
const UPSERT_CHUNK: usize = 100_000;

/// The stable id of the case of a break: `"C-"` followed by the first 12 hex digits of
/// SHA-256(`profile` NUL `key` NUL `start_date` as `YYYY-MM-DD`), where `start_date` is the date
/// the break (the run of out-of-tolerance records) began.
pub fn case_id(profile: &str, key: &str, start_date: NaiveDate) -> String {
    let mut h = Sha256::new();
    h.update(profile.as_bytes());
    h.update([0u8]);
    h.update(key.as_bytes());
    h.update([0u8]);
    h.update(start_date.to_string().as_bytes());
    let digest = h.finalize();
    let mut id = String::with_capacity(14);
    id.push_str("C-");
    id.push_str(&hex(&digest[..6]));
    id
}

// ---------------------------------------------------------------------------------------------
// The handle

type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;
type TxResult<T> = Result<T, TxError<CaseError>>;

/// The case operations on an open [`Store`]. Every mutating call returns only after its writes
/// are on disk.
#[derive(Clone)]
pub struct Cases<'s> {
    store: &'s Store,
    clock: Clock,
    roll: RollParams,
    router: Option<Arc<crate::routing::Router>>,
}

impl<'s> Cases<'s> {
    /// The cases of `store`, timestamped with the system clock.
    pub fn new(store: &'s Store) -> Cases<'s> {
        Cases {
            store,
            clock: Arc::new(Utc::now),
            roll: RollParams::default(),
            router: None,
        }
    }

    /// The cases of `store`, timestamped with `clock` (tickets take the UTC day of `clock`).
    pub fn with_clock(
        store: &'s Store,
        clock: impl Fn() -> DateTime<Utc> + Send + Sync + 'static,
    ) -> Cases<'s> {
        Cases {
            store,
            clock: Arc::new(clock),
            roll: RollParams::default(),
            router: None,
        }
    }

    /// These cases, rolling forward with `roll` (`[cases]`) instead of the defaults.
    pub fn rolling(mut self, roll: RollParams) -> Cases<'s> {
        self.roll = roll;
        self
    }

    /// These cases, giving new cases an owner by `router` (`[[cases.routes]]`).
    pub fn routed(mut self, router: Arc<crate::routing::Router>) -> Cases<'s> {
        self.router = (!router.is_empty()).then_some(router);
        self
    }

    /// The clock's time at the precision stored (milliseconds), so that a case returned by a
    /// call equals the case read back.
    fn now(&self) -> DateTime<Utc> {
        (self.clock)().trunc_subsecs(3)
    }
}
