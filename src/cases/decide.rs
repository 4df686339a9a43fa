//! Decisions and the other actions of analysts on cases (owners, notes, Jira, dispatch).

use chrono::{DateTime, Utc};

use crate::store::{CaseTxn, TxError};

use super::codec::{abort, append_event, load_case, load_ref, put_case};
use super::record::new_case;
use super::*;

impl<'s> Cases<'s> {
    /// Takes `action` on the case `reference` (a case id or ticket), with an optional reason or
    /// comment (required for reject, return and reopen). Returns the case as stored.
    pub fn decide(
        &self,
        reference: &str,
        action: Action,
        actor: &Actor,
        note: Option<&str>,
    ) -> Result<Case, CaseError> {
        actor.validate()?;
        let note = clean_note(note);
        let now = self.now();
        self.store.case_transaction(|txn| {
            let mut case = load_ref(txn, reference)?;
            check_decision(&case, action, actor, note.as_deref()).map_err(TxError::Abort)?;
            apply_decision(txn, &mut case, action, actor, note.clone(), now)?;
            Ok(case)
        })
    }

    /// Accepts the case: a real break, to be dispatched.
    pub fn accept(
        &self,
        reference: &str,
        actor: &Actor,
        note: Option<&str>,
    ) -> Result<Case, CaseError> {
        self.decide(reference, Action::Accept, actor, note)
    }

    /// Rejects the case as a false positive; `reason` is required.
    pub fn reject(&self, reference: &str, actor: &Actor, reason: &str) -> Result<Case, CaseError> {
        self.decide(reference, Action::Reject, actor, Some(reason))
    }

    /// Proposes auto-resolution of the case.
    pub fn propose(
        &self,
        reference: &str,
        actor: &Actor,
        note: Option<&str>,
    ) -> Result<Case, CaseError> {
        self.decide(reference, Action::Propose, actor, note)
    }

    /// Approves the proposed auto-resolution (a supervisor other than the proposer).
    pub fn approve(
        &self,
        reference: &str,
        actor: &Actor,
        note: Option<&str>,
    ) -> Result<Case, CaseError> {
        self.decide(reference, Action::Approve, actor, note)
    }

    /// Returns the proposed auto-resolution to pending work (a supervisor); `comment` is
    /// required.
    pub fn return_proposal(
        &self,
        reference: &str,
        actor: &Actor,
        comment: &str,
    ) -> Result<Case, CaseError> {
        self.decide(reference, Action::Return, actor, Some(comment))
    }

    /// Reopens a decided case (Accepted, Rejected, Approved); `reason` is required.
    pub fn reopen(&self, reference: &str, actor: &Actor, reason: &str) -> Result<Case, CaseError> {
        self.decide(reference, Action::Reopen, actor, Some(reason))
    }

    /// Opens an `Accepted` case, origin `Analyst`, for a break the model did not flag;
    /// `reason` is required. A break that already has a case is refused, naming it.
    pub fn flag_missed(
        &self,
        input: &BreakInput,
        actor: &Actor,
        reason: &str,
    ) -> Result<Case, CaseError> {
        actor.validate()?;
        input.validate()?;
        let id = case_id(&input.profile, &input.key, input.start_date);
        let Some(reason) = clean_note(Some(reason)) else {
            return Err(CaseError::NoteRequired {
                case_id: id,
                action: EventAction::Flag,
                what: "reason",
            });
        };
        let fingerprint = input.fingerprint()?;
        let now = self.now();
        self.store.case_transaction(|txn| {
            if let Some(existing) = load_case(txn, &id)? {
                return Err(TxError::Abort(CaseError::AlreadyCase {
                    case_id: existing.id,
                    ticket: existing.ticket,
                    status: existing.status,
                }));
            }
            let mut case = new_case(txn, input, &id, fingerprint.clone(), Origin::Analyst, now)?;
            case.status = Status::Accepted;
            append_event(
                txn,
                &case,
                EventAction::Flag,
                &actor.user,
                Some(actor.role),
                None,
                Some(reason.clone()),
                now,
            )?;
            put_case(txn, &case)?;
            Ok(case)
        })
    }

    /// Reverts the case's last decision, if `actor` made it and the case was not dispatched;
    /// records an `undo` event. One level: the decision before it cannot be undone this way.
    pub fn undo_last(&self, reference: &str, actor: &Actor) -> Result<Case, CaseError> {
        actor.validate()?;
        let now = self.now();
        self.store.case_transaction(|txn| {
            let mut case = load_ref(txn, reference)?;
            let refuse = |why: String| {
                TxError::Abort(CaseError::UndoRefused {
                    case_id: case.id.clone(),
                    why,
                })
            };
            if case.dispatched {
                return Err(refuse("it has been dispatched".into()));
            }
            let Some(d) = case.last_decision.clone() else {
                return Err(refuse("it has no decision to undo".into()));
            };
            if d.user != actor.user {
                return Err(refuse(format!(
                    "its last decision ({} by {}) was made by another user",
                    d.action, d.user
                )));
            }
            if case.status != d.action.target() {
                return Err(refuse(format!(
                    "its status {} is not the result of its last decision ({})",
                    case.status, d.action
                )));
            }
            case.status = d.from;
            case.proposed_by = d.prev_proposed_by.clone();
            case.last_decision = None;
            case.updated_at = now;
            append_event(
                txn,
                &case,
                EventAction::Undo,
                &actor.user,
                Some(actor.role),
                Some(d.action.target()),
                Some(format!("undoes \"{}\" (event {})", d.action, d.seq)),
                now,
            )?;
            put_case(txn, &case)?;
            Ok(case)
        })
    }

    /// Links the case to its Jira issue (`PROJ-123`). Linking the same key again changes
    /// nothing; another key replaces it (both are in the events).
    pub fn link_jira(&self, reference: &str, key: &str, actor: &Actor) -> Result<Case, CaseError> {
        actor.validate()?;
        let key = key.trim().to_string();
        if !is_jira_key(&key) {
            return Err(CaseError::Invalid(format!(
                "{key:?} is not a Jira key (like PROJ-123)"
            )));
        }
        let now = self.now();
        self.store.case_transaction(|txn| {
            let mut case = load_ref(txn, reference)?;
            if case.jira_key.as_deref() == Some(key.as_str()) {
                return Ok(case);
            }
            let note = match &case.jira_key {
                Some(old) => format!("{key} (was {old})"),
                None => key.clone(),
            };
            case.jira_key = Some(key.clone());
            case.updated_at = now;
            put_with_event(txn, &case, EventAction::LinkJira, actor, Some(note), now)?;
            Ok(case)
        })
    }

    /// Gives the case `reference` to `owner`. Analysts may only take a case for themselves, and
    /// only one nobody owns; supervisors may assign any case to anyone. Assigning to the current
    /// owner changes nothing.
    pub fn assign(&self, reference: &str, owner: &str, actor: &Actor) -> Result<Case, CaseError> {
        actor.validate()?;
        let owner = owner.trim().to_string();
        Actor::analyst(owner.clone())
            .validate()
            .map_err(|_| CaseError::Invalid(format!("{owner:?} is not a user name")))?;
        let now = self.now();
        self.store.case_transaction(|txn| {
            let mut case = load_ref(txn, reference)?;
            if case.owner.as_deref() == Some(owner.as_str()) {
                return Ok(case);
            }
            if actor.role != Role::Supervisor {
                if owner != actor.user {
                    return abort(CaseError::NotAllowed(format!(
                        "an analyst may take a case for themselves only; assigning case {} to {owner} needs a supervisor",
                        case.id
                    )));
                }
                if let Some(current) = &case.owner {
                    return abort(CaseError::NotOwner {
                        case_id: case.id.clone(),
                        owner: current.clone(),
                        user: actor.user.clone(),
                        what: "hand it over",
                    });
                }
            }
            let note = match &case.owner {
                Some(old) => format!("{owner} (was {old})"),
                None => owner.clone(),
            };
            case.owner = Some(owner.clone());
            case.updated_at = now;
            put_with_event(txn, &case, EventAction::Assign, actor, Some(note), now)?;
            Ok(case)
        })
    }

    /// The owner (or a supervisor) lets the case go: nobody owns it. A case nobody owns
    /// changes nothing.
    pub fn release(&self, reference: &str, actor: &Actor) -> Result<Case, CaseError> {
        actor.validate()?;
        let now = self.now();
        self.store.case_transaction(|txn| {
            let mut case = load_ref(txn, reference)?;
            let Some(owner) = case.owner.clone() else {
                return Ok(case);
            };
            if owner != actor.user && actor.role != Role::Supervisor {
                return abort(CaseError::NotOwner {
                    case_id: case.id.clone(),
                    owner,
                    user: actor.user.clone(),
                    what: "release it",
                });
            }
            case.owner = None;
            case.updated_at = now;
            put_with_event(txn, &case, EventAction::Release, actor, Some(owner), now)?;
            Ok(case)
        })
    }

    /// Adds a free-text note to the case (an event `note`; the status does not change).
    pub fn note(&self, reference: &str, text: &str, actor: &Actor) -> Result<Case, CaseError> {
        actor.validate()?;
        let text = text.trim();
        if text.is_empty() {
            return Err(CaseError::Invalid("a note must not be empty".into()));
        }
        if text.chars().count() > MAX_NOTE_CHARS {
            return Err(CaseError::Invalid(format!(
                "a note holds at most {MAX_NOTE_CHARS} characters, this one has {}",
                text.chars().count()
            )));
        }
        let text = text.to_string();
        let now = self.now();
        self.store.case_transaction(|txn| {
            let mut case = load_ref(txn, reference)?;
            case.updated_at = now;
            let status = case.status;
            append_event(
                txn,
                &case,
                EventAction::Note,
                &actor.user,
                Some(actor.role),
                Some(status),
                Some(text.clone()),
                now,
            )?;
            put_case(txn, &case)?;
            Ok(case)
        })
    }

    /// The notes on a case, oldest first.
    pub fn notes(&self, reference: &str) -> Result<Vec<Event>, CaseError> {
        Ok(self
            .events_for(reference)?
            .into_iter()
            .filter(|e| e.action == EventAction::Note)
            .collect())
    }

    /// Marks an `Accepted` case as dispatched (again: nothing changes). A dispatched case's last
    /// decision can no longer be undone.
    pub fn mark_dispatched(&self, reference: &str, actor: &Actor) -> Result<Case, CaseError> {
        actor.validate()?;
        let now = self.now();
        self.store.case_transaction(|txn| {
            let mut case = load_ref(txn, reference)?;
            if case.status != Status::Accepted {
                return Err(TxError::Abort(CaseError::NotDispatchable {
                    case_id: case.id,
                    status: case.status,
                }));
            }
            if case.dispatched {
                return Ok(case);
            }
            case.dispatched = true;
            case.updated_at = now;
            append_event(
                txn,
                &case,
                EventAction::Dispatched,
                &actor.user,
                Some(actor.role),
                Some(Status::Accepted),
                None,
                now,
            )?;
            put_case(txn, &case)?;
            Ok(case)
        })
    }
}

/// Whether `actor` may take `action` on `case` with `note`; the error says why not.
pub(super) fn check_decision(
    case: &Case,
    action: Action,
    actor: &Actor,
    note: Option<&str>,
) -> Result<(), CaseError> {
    let allowed = case.status.allowed_actions();
    if !allowed.contains(&action) {
        return Err(CaseError::IllegalTransition {
            case_id: case.id.clone(),
            status: case.status,
            action,
            allowed: allowed.to_vec(),
        });
    }
    if action.supervisor_only() && actor.role != Role::Supervisor {
        return Err(CaseError::NeedsSupervisor {
            case_id: case.id.clone(),
            action,
            user: actor.user.clone(),
        });
    }
    if action == Action::Approve && case.proposed_by.as_deref() == Some(actor.user.as_str()) {
        return Err(CaseError::MakerChecker {
            case_id: case.id.clone(),
            user: actor.user.clone(),
        });
    }
    if let Some(what) = action.note_required()
        && note.is_none_or(|n| n.trim().is_empty())
    {
        return Err(CaseError::NoteRequired {
            case_id: case.id.clone(),
            action: action.into(),
            what,
        });
    }
    Ok(())
}

/// Applies a checked decision: new status, event, undo record, written.
pub(super) fn apply_decision(
    txn: &CaseTxn<'_>,
    case: &mut Case,
    action: Action,
    actor: &Actor,
    note: Option<String>,
    now: DateTime<Utc>,
) -> TxResult<()> {
    let from = case.status;
    let prev_proposed_by = case.proposed_by.clone();
    case.status = action.target();
    if action == Action::Reopen && case.cleared_on.is_some() {
        // Reopened by hand: outstanding again, for the next cycle to judge.
        case.cleared_on = None;
    }
    case.judged_difference = case.status.label().map(|_| case.difference);
    if action == Action::Propose {
        case.proposed_by = Some(actor.user.clone());
    }
    case.updated_at = now;
    let seq = append_event(
        txn,
        case,
        action.into(),
        &actor.user,
        Some(actor.role),
        Some(from),
        note,
        now,
    )?;
    case.last_decision = Some(Decision {
        seq,
        user: actor.user.clone(),
        action,
        from,
        prev_proposed_by,
    });
    put_case(txn, case)
}

/// Records a dispatch change on the case `case_id` inside the outbox's transaction: its
/// per-channel entry, and one event (acting as `actor`, who queued the dispatch). When the change
/// is `Sent`: a Jira key from the answer is linked to the case (a `link_jira` event when it is
/// new), and an Accepted case is marked dispatched. A case that no longer exists is skipped
/// (`Ok(None)`): the dispatch it was part of stays valid for the others.
pub(crate) fn apply_dispatch(
    txn: &CaseTxn<'_>,
    case_id: &str,
    change: &DispatchChange,
    actor: &Actor,
    now: DateTime<Utc>,
) -> TxResult<Option<Case>> {
    let Some(mut case) = load_case(txn, case_id)? else {
        return Ok(None);
    };
    let item = format!("outbox #{}", change.outbox_id);
    let entry = ChannelDispatch {
        channel: change.channel,
        state: change.state,
        outbox_id: change.outbox_id,
        reference: change.reference.clone(),
        note: change.note.clone(),
        at: now,
    };
    match case
        .dispatches
        .iter_mut()
        .find(|d| d.channel == change.channel)
    {
        Some(d) => *d = entry,
        None => case.dispatches.push(entry),
    }
    case.dispatches.sort_by_key(|d| d.channel);
    case.updated_at = now;
    let status = case.status;
    let with_note = |text: String| match &change.note {
        Some(n) => format!("{text}: {n}"),
        None => text,
    };
    let (action, reason) = match change.state {
        DispatchState::Queued => (
            EventAction::DispatchQueued,
            with_note(format!("{} via {item}", change.channel)),
        ),
        DispatchState::Parked => (
            EventAction::DispatchParked,
            with_note(format!("{} via {item} parked", change.channel)),
        ),
        DispatchState::Cancelled => (
            EventAction::DispatchCancelled,
            with_note(format!("{} via {item} cancelled", change.channel)),
        ),
        DispatchState::Sent => {
            if change.channel == Channel::Jira
                && let Some(key) = change.reference.as_deref().filter(|k| is_jira_key(k))
                && case.jira_key.as_deref() != Some(key)
            {
                let note = match &case.jira_key {
                    Some(old) => format!("{key} (was {old})"),
                    None => key.to_string(),
                };
                case.jira_key = Some(key.to_string());
                append_event(
                    txn,
                    &case,
                    EventAction::LinkJira,
                    &actor.user,
                    Some(actor.role),
                    Some(status),
                    Some(note),
                    now,
                )?;
            }
            if status == Status::Accepted {
                case.dispatched = true;
            }
            let answer = change
                .reference
                .as_deref()
                .map(|r| format!(" {r}"))
                .unwrap_or_default();
            (
                EventAction::Dispatched,
                format!("{}{answer} via {item}", change.channel),
            )
        }
    };
    append_event(
        txn,
        &case,
        action,
        &actor.user,
        Some(actor.role),
        Some(status),
        Some(reason),
        now,
    )?;
    put_case(txn, &case)?;
    Ok(Some(case))
}

pub(super) fn clean_note(note: Option<&str>) -> Option<String> {
    note.map(str::trim)
        .filter(|n| !n.is_empty())
        .map(str::to_string)
}

/// Whether `key` looks like a Jira issue key (`PROJ-123`).
pub fn is_jira_key(key: &str) -> bool {
    let Some((project, number)) = key.split_once('-') else {
        return false;
    };
    let mut p = project.chars();
    p.next().is_some_and(|c| c.is_ascii_uppercase())
        && p.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        && !number.is_empty()
        && number.chars().all(|c| c.is_ascii_digit())
}

/// `case` written back with an event of `action` by `actor` that leaves its status as it is
/// (a link, an owner, a release).
fn put_with_event(
    txn: &CaseTxn<'_>,
    case: &Case,
    action: EventAction,
    actor: &Actor,
    note: Option<String>,
    now: DateTime<Utc>,
) -> TxResult<()> {
    append_event(
        txn,
        case,
        action,
        &actor.user,
        Some(actor.role),
        Some(case.status),
        note,
        now,
    )?;
    put_case(txn, case)
}
