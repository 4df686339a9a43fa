//! Importing analysts' labels from a feedback file.

use std::collections::HashMap;

use chrono::NaiveDate;

use crate::store::TxError;

use super::codec::load_ref;
use super::decide::{apply_decision, check_decision, clean_note};
use super::*;

impl<'s> Cases<'s> {
    /// Applies analysts' labels from a feedback file as `accept`/`reject` decisions by `actor`.
    /// Every row is checked first (its case exists, its label parses, a reject has a reason,
    /// the decision is legal from the case's status, taking the rows before it into account);
    /// if any row is bad, the error lists each bad row with its line and nothing is applied.
    /// Otherwise all rows are applied in one transaction and flushed. A row whose case already
    /// has that label (Accepted or Approved for accept, Rejected for reject) changes nothing.
    pub fn import_feedback(
        &self,
        rows: &[FeedbackRow],
        actor: &Actor,
    ) -> Result<FeedbackReport, CaseError> {
        actor.validate()?;
        let mut problems = Vec::new();
        // (line, case reference, label, reason) of the rows that passed the first checks.
        let mut resolved: Vec<(usize, String, bool, Option<String>)> = Vec::new();
        for row in rows {
            match self.resolve_feedback_row(row) {
                Ok(r) => resolved.push(r),
                Err(problem) => problems.push(RowProblem {
                    line: row.line,
                    problem,
                }),
            }
        }
        let now = self.now();
        self.store.case_transaction(|txn| {
            let mut problems = problems.clone();
            let mut report = FeedbackReport::default();
            let mut working: HashMap<String, Case> = HashMap::new();
            for (line, reference, label, reason) in &resolved {
                let mut case = match working.remove(reference) {
                    Some(c) => c,
                    None => match load_ref(txn, reference) {
                        Ok(c) => c,
                        Err(TxError::Abort(CaseError::NotFound { .. })) => {
                            problems.push(RowProblem {
                                line: *line,
                                problem: format!("unknown case {reference}"),
                            });
                            continue;
                        }
                        Err(e) => return Err(e),
                    },
                };
                if case.status.label() == Some(*label) {
                    report.unchanged += 1;
                } else {
                    let action = if *label {
                        Action::Accept
                    } else {
                        Action::Reject
                    };
                    match check_decision(&case, action, actor, reason.as_deref()) {
                        Ok(()) => {
                            apply_decision(txn, &mut case, action, actor, reason.clone(), now)?;
                            report.applied += 1;
                        }
                        Err(e) => problems.push(RowProblem {
                            line: *line,
                            problem: e.to_string(),
                        }),
                    }
                }
                working.insert(reference.clone(), case);
            }
            if !problems.is_empty() {
                problems.sort_by_key(|p| p.line);
                return Err(TxError::Abort(CaseError::Feedback(problems)));
            }
            Ok(report)
        })
    }

    /// First checks of a feedback row: (line, case id, label, reason), or what is wrong.
    fn resolve_feedback_row(
        &self,
        row: &FeedbackRow,
    ) -> Result<(usize, String, bool, Option<String>), String> {
        let label = parse_label(&row.label)?;
        let reason = clean_note(row.reason.as_deref());
        if !label && reason.is_none() {
            return Err("a reject needs a reason".into());
        }
        fn given(v: &Option<String>) -> Option<&str> {
            v.as_deref().map(str::trim).filter(|s| !s.is_empty())
        }
        let (profile, key, date) = (given(&row.profile), given(&row.key), given(&row.date));
        let date = match date {
            Some(d) => Some(
                d.parse::<NaiveDate>()
                    .map_err(|_| format!("date {d:?} is not a YYYY-MM-DD date"))?,
            ),
            None => None,
        };
        if let Some(reference) = given(&row.case_id) {
            let case = self
                .find(reference)
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("unknown case {reference}"))?;
            if let (Some(p), Some(k), Some(d)) = (profile, key, date)
                && (case.profile != p || case.key != k || d < case.start_date || d > case.last_date)
            {
                return Err(format!(
                    "case {} is profile {}, key {} from {} to {}, not profile {p}, key {k} on {d}",
                    case.id, case.profile, case.key, case.start_date, case.last_date
                ));
            }
            return Ok((row.line, case.id, label, reason));
        }
        let (Some(profile), Some(key), Some(date)) = (profile, key, date) else {
            return Err("the row names no case: give case_id, or profile, key and date".into());
        };
        let found = self
            .find_break(profile, key, date)
            .map_err(|e| e.to_string())?;
        match found.as_slice() {
            [one] => Ok((row.line, one.id.clone(), label, reason)),
            [] => Err(format!(
                "no case for profile {profile}, key {key} on {date}"
            )),
            many => Err(format!(
                "profile {profile}, key {key} on {date} matches several cases: {}",
                many.iter()
                    .map(|c| c.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }
}

pub(super) fn parse_label(s: &str) -> Result<bool, String> {
    match s.trim().to_lowercase().as_str() {
        "accept" | "1" | "true" => Ok(true),
        "reject" | "0" | "false" => Ok(false),
        _ => Err(format!(
            "label {s:?} is not one of accept, reject, 1, 0, true, false"
        )),
    }
}
