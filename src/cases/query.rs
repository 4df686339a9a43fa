//! Reading cases, events and labels.

use chrono::NaiveDate;

use crate::store::CaseTree;

use super::codec::{
    break_prefix, case_events_prefix, decode, decode_case, is_marker, is_ticket, ticket_number,
};
use super::*;

impl<'s> Cases<'s> {
    // ----- reads -------------------------------------------------------------------------------

    /// The case with this id.
    pub fn get(&self, case_id: &str) -> Result<Option<Case>, CaseError> {
        match self.store.case_get(CaseTree::Cases, case_id.as_bytes())? {
            Some(bytes) => Ok(Some(decode_case(&bytes)?)),
            None => Ok(None),
        }
    }

    /// The case with this ticket.
    pub fn get_by_ticket(&self, ticket: &str) -> Result<Option<Case>, CaseError> {
        match self.store.case_get(CaseTree::Tickets, ticket.as_bytes())? {
            Some(id) => {
                let id = String::from_utf8(id).map_err(|e| CaseError::Corrupt {
                    what: format!("ticket index entry {ticket}"),
                    message: e.to_string(),
                })?;
                self.get(&id)
            }
            None => Ok(None),
        }
    }

    /// The case with this id or ticket (`BRK-…`).
    pub fn find(&self, reference: &str) -> Result<Option<Case>, CaseError> {
        if is_ticket(reference) {
            self.get_by_ticket(reference)
        } else {
            self.get(reference)
        }
    }

    /// The cases of `profile` and `key` whose break spans `date` (start to latest record).
    pub fn find_break(
        &self,
        profile: &str,
        key: &str,
        date: NaiveDate,
    ) -> Result<Vec<Case>, CaseError> {
        let prefix = break_prefix(profile, key);
        let mut out = Vec::new();
        let mut reader = self.store.case_reader();
        for (k, id) in reader.scan(CaseTree::BreakIndex, &prefix)? {
            if is_marker(&k, prefix.len()) {
                continue;
            }
            let id = String::from_utf8(id).map_err(|e| CaseError::Corrupt {
                what: "break index entry".into(),
                message: e.to_string(),
            })?;
            let bytes =
                reader
                    .get(CaseTree::Cases, id.as_bytes())?
                    .ok_or_else(|| CaseError::Corrupt {
                        what: "break index entry".into(),
                        message: format!("it names case {id}, which is not stored"),
                    })?;
            let case: Case = decode_case(&bytes)?;
            // A break that reappeared is indexed under each of its starts: listed once.
            if case.start_date <= date
                && date <= case.last_date
                && !out.iter().any(|c: &Case| c.id == case.id)
            {
                out.push(case);
            }
        }
        Ok(out)
    }

    /// The cases that match `filter`, in ticket order (the order they were created). A case
    /// that cannot be read is left out and logged; [`Cases::list_readable`] names them.
    pub fn list(&self, filter: &CaseFilter) -> Result<Vec<Case>, CaseError> {
        let (cases, unreadable) = self.list_readable(filter)?;
        for u in &unreadable {
            tracing::warn!(case_id = %u.case_id, error = %u.error, "unreadable case left out");
        }
        Ok(cases)
    }

    /// The cases that match `filter` (as [`Cases::list`]), and the cases that could not be read,
    /// each with why: one damaged case does not hide the others.
    pub fn list_readable(
        &self,
        filter: &CaseFilter,
    ) -> Result<(Vec<Case>, Vec<Unreadable>), CaseError> {
        let mut out = Vec::new();
        let mut unreadable = Vec::new();
        for kv in self.store.case_scan(CaseTree::Cases, b"")? {
            let (id, bytes) = kv?;
            let case: Case = match decode_case(&bytes) {
                Ok(c) => c,
                Err(e) => {
                    unreadable.push(Unreadable {
                        case_id: String::from_utf8_lossy(&id).to_string(),
                        error: e.to_string(),
                    });
                    continue;
                }
            };
            if filter.status.is_some_and(|s| s != case.status)
                || filter.bucket.as_deref().is_some_and(|b| b != case.bucket)
                || filter.profile.as_deref().is_some_and(|p| p != case.profile)
            {
                continue;
            }
            out.push(case);
        }
        out.sort_by_cached_key(|c| (ticket_number(&c.ticket), c.ticket.clone()));
        Ok((out, unreadable))
    }

    /// The cases in `status`, in ticket order (e.g. the Accepted cases to dispatch).
    pub fn export(&self, status: Status) -> Result<Vec<Case>, CaseError> {
        self.list(&CaseFilter {
            status: Some(status),
            ..CaseFilter::default()
        })
    }

    /// Writes the cases in `status` as JSON lines, one case a line; returns how many.
    pub fn export_json_lines(
        &self,
        status: Status,
        out: &mut dyn std::io::Write,
    ) -> Result<usize, CaseError> {
        let cases = self.export(status)?;
        for c in &cases {
            let line = serde_json::to_string(c).map_err(|e| CaseError::Invalid(e.to_string()))?;
            writeln!(out, "{line}")
                .map_err(|e| CaseError::Invalid(format!("cannot write the export: {e}")))?;
        }
        Ok(cases.len())
    }

    /// Every event, in order.
    pub fn events(&self) -> Result<Vec<Event>, CaseError> {
        let mut out = Vec::new();
        for kv in self.store.case_scan(CaseTree::Events, b"")? {
            let (_, bytes) = kv?;
            out.push(decode(&bytes, "event")?);
        }
        Ok(out)
    }

    /// The events of one case (id or ticket), in order.
    pub fn events_for(&self, reference: &str) -> Result<Vec<Event>, CaseError> {
        let case = self.find(reference)?.ok_or_else(|| CaseError::NotFound {
            reference: reference.to_string(),
        })?;
        let prefix = case_events_prefix(&case.id);
        let mut out = Vec::new();
        let mut reader = self.store.case_reader();
        for (k, _) in reader.scan(CaseTree::CaseEvents, &prefix)? {
            let seq_bytes = k
                .get(prefix.len()..)
                .and_then(|s| <[u8; 8]>::try_from(s).ok())
                .ok_or_else(|| CaseError::Corrupt {
                    what: "case event index entry".into(),
                    message: format!("bad key length {}", k.len()),
                })?;
            let bytes =
                reader
                    .get(CaseTree::Events, &seq_bytes)?
                    .ok_or_else(|| CaseError::Corrupt {
                        what: "case event index entry".into(),
                        message: format!(
                            "it names event {}, which is not stored",
                            u64::from_be_bytes(seq_bytes)
                        ),
                    })?;
            out.push(decode(&bytes, "event")?);
        }
        Ok(out)
    }

    /// The training labels: one per decided case (Accepted, Approved → true break; Rejected →
    /// false positive), dated by the case's latest record, ordered by profile, key and date.
    pub fn labels(&self) -> Result<Vec<Label>, CaseError> {
        let mut out: Vec<Label> = Vec::new();
        for kv in self.store.case_scan(CaseTree::Feedback, b"")? {
            let (_, bytes) = kv?;
            out.push(decode(&bytes, "label")?);
        }
        out.sort_by(|a, b| {
            (&a.profile, &a.key, a.date, &a.case_id).cmp(&(&b.profile, &b.key, b.date, &b.case_id))
        });
        Ok(out)
    }
}
