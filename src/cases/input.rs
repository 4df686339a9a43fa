//! A flagged record as the pipeline (or an analyst) hands it over.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::binary::{Cell, RowRef};
use super::codec::date_format;
use super::*;

// ---------------------------------------------------------------------------------------------
// Records

/// One flagged record of a break, as the pipeline hands it over (also what an analyst flags with
/// [`Cases::flag_missed`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BreakInput {
    /// The reconciliation profile (e.g. `gl_ihub`).
    pub profile: String,
    /// The record's key columns joined as text (e.g. `00000|1001|0042`).
    pub key: String,
    /// The date the break began (its first out-of-tolerance record).
    #[serde(with = "date_format")]
    pub start_date: NaiveDate,
    /// The date of this record (not before `start_date`).
    #[serde(with = "date_format")]
    pub date: NaiveDate,
    /// Root-cause bucket.
    pub bucket: String,
    /// The rule (or decider) that chose the bucket.
    pub bucket_rule: String,
    /// Confidence of the bucket, 0 to 1.
    pub confidence: f64,
    /// Severity (e.g. `high`).
    pub severity: String,
    /// One-line summary.
    pub summary: String,
    /// Anomaly score.
    pub score: f64,
    /// Rank of the score in its run (1 = most anomalous).
    pub rank: u64,
    /// The difference between the two books.
    pub difference: f64,
    /// The model that scored the record.
    pub model_version: String,
    /// The record's columns.
    pub row: serde_json::Map<String, serde_json::Value>,
}

impl BreakInput {
    /// Refuses a record no case can be made of (an empty or NUL-bearing profile or key, a date
    /// before its start, a number that is not finite).
    pub fn validate(&self) -> Result<(), CaseError> {
        let bad = |m: String| Err(CaseError::Invalid(m));
        for (name, v) in [("profile", &self.profile), ("key", &self.key)] {
            if v.trim().is_empty() {
                return bad(format!("the {name} of a break must not be empty"));
            }
            if v.contains('\0') {
                return bad(format!("the {name} of a break must not contain NUL"));
            }
        }
        if self.date < self.start_date {
            return bad(format!(
                "break {}/{}: record date {} is before its start date {}",
                self.profile, self.key, self.date, self.start_date
            ));
        }
        for (name, v) in [
            ("confidence", self.confidence),
            ("score", self.score),
            ("difference", self.difference),
        ] {
            if !v.is_finite() {
                return bad(format!(
                    "break {}/{}: {name} is not a finite number",
                    self.profile, self.key
                ));
            }
        }
        Ok(())
    }

    /// A break the model missed, as an analyst flags it (from the command line or the terminal
    /// UI): bucketed by the analyst with full confidence, at no score or rank, of no model and
    /// with no record; the terminal UI adds the row's own when it has them.
    pub fn analyst(
        profile: String,
        key: String,
        (start_date, date): (NaiveDate, NaiveDate),
        bucket: String,
        severity: String,
        summary: String,
        difference: f64,
    ) -> Self {
        BreakInput {
            profile,
            key,
            start_date,
            date,
            bucket,
            bucket_rule: "analyst".into(),
            confidence: 1.0,
            severity,
            summary,
            score: 0.0,
            rank: 0,
            difference,
            model_version: String::new(),
            row: serde_json::Map::new(),
        }
    }

    /// The fingerprint a case keeps of the latest record it took: equal for the same record,
    /// different for any other. `v2:` and SHA-256 (hex) of the record's fields in a fixed
    /// order, binary ([`BreakInput::hash_fields`]); cases written before schema 6 keep the
    /// fingerprint of the record's JSON ([`BreakInput::json_fingerprint`]), which
    /// [`BreakInput::has_fingerprint`] still recognises.
    pub(super) fn fingerprint(&self) -> Result<String, CaseError> {
        self.fingerprint_with(RowRef::Map(&self.row))
    }

    /// [`BreakInput::fingerprint`] of the record with `row` as its columns.
    pub(super) fn fingerprint_with(&self, row: RowRef<'_>) -> Result<String, CaseError> {
        let mut h = Sha256::new();
        self.hash_fields(&mut h, row)?;
        let mut out = String::with_capacity(FINGERPRINT_V2.len() + 64);
        out.push_str(FINGERPRINT_V2);
        out.push_str(&hex(&h.finalize()));
        Ok(out)
    }

    /// Whether `stored`, the fingerprint a case keeps, is this record's: `fingerprint` (this
    /// record's, from [`BreakInput::fingerprint`]), or, for a case written before schema 6,
    /// the fingerprint of the record's JSON.
    #[cfg(test)]
    pub(super) fn has_fingerprint(&self, stored: &str, fingerprint: &str) -> bool {
        self.has_fingerprint_with(RowRef::Map(&self.row), stored, fingerprint)
    }

    /// [`BreakInput::has_fingerprint`] of the record with `row` as its columns.
    pub(super) fn has_fingerprint_with(
        &self,
        row: RowRef<'_>,
        stored: &str,
        fingerprint: &str,
    ) -> bool {
        if stored == fingerprint {
            return true;
        }
        // Only a fingerprint of the earlier kind (64 hex digits) is worth the JSON.
        if stored.starts_with(FINGERPRINT_V2) || stored.len() != 64 {
            return false;
        }
        match row {
            RowRef::Map(_) => self.json_fingerprint(),
            RowRef::Encoded(e) => e.to_map().and_then(|row| {
                BreakInput {
                    row,
                    ..self.clone()
                }
                .json_fingerprint()
            }),
        }
        .is_ok_and(|f| f == stored)
    }

    /// SHA-256 (hex) of the record's JSON: the fingerprint of schema 5 and before.
    pub(super) fn json_fingerprint(&self) -> Result<String, CaseError> {
        let bytes = serde_json::to_vec(self).map_err(|e| CaseError::Invalid(e.to_string()))?;
        Ok(hex(&Sha256::digest(&bytes)))
    }

    /// Feeds every field of the record to `h`, in the order they are declared: texts with
    /// their length (u64 LE) first, dates as days from CE (i32 LE), numbers as their bits
    /// (u64 LE), the columns as their count then each name and value (a string: 0 and its
    /// text; any other value: 1 and its JSON text). Two records feed the same bytes exactly
    /// when their JSON is the same (numbers are finite: [`BreakInput::validate`]).
    fn hash_fields(&self, h: &mut Sha256, row: RowRef<'_>) -> Result<(), CaseError> {
        use chrono::Datelike;
        let text = |h: &mut Sha256, t: &str| {
            h.update((t.len() as u64).to_le_bytes());
            h.update(t.as_bytes());
        };
        // Every field, named: a field added to the record must be added here.
        let BreakInput {
            profile,
            key,
            start_date,
            date,
            bucket,
            bucket_rule,
            confidence,
            severity,
            summary,
            score,
            rank,
            difference,
            model_version,
            // The columns hashed are `row`: the record's own, or given encoded.
            row: _,
        } = self;
        text(h, profile);
        text(h, key);
        h.update(start_date.num_days_from_ce().to_le_bytes());
        h.update(date.num_days_from_ce().to_le_bytes());
        text(h, bucket);
        text(h, bucket_rule);
        h.update(confidence.to_bits().to_le_bytes());
        text(h, severity);
        text(h, summary);
        h.update(score.to_bits().to_le_bytes());
        h.update(rank.to_le_bytes());
        h.update(difference.to_bits().to_le_bytes());
        text(h, model_version);
        let row = match row {
            RowRef::Map(row) => row,
            RowRef::Encoded(e) => {
                // The same bytes as the map of those columns feeds below.
                let h = std::cell::RefCell::new(h);
                return e.visit(
                    &mut |n| h.borrow_mut().update((n as u64).to_le_bytes()),
                    &mut |k, v| {
                        let h = &mut *h.borrow_mut();
                        text(h, k);
                        match v {
                            Cell::Text(s) => {
                                h.update([0u8]);
                                text(h, s);
                            }
                            Cell::Json(json) => {
                                h.update([1u8]);
                                h.update((json.len() as u64).to_le_bytes());
                                h.update(json);
                            }
                        }
                    },
                );
            }
        };
        h.update((row.len() as u64).to_le_bytes());
        for (k, v) in row {
            text(h, k);
            match v {
                serde_json::Value::String(s) => {
                    h.update([0u8]);
                    text(h, s);
                }
                other => {
                    h.update([1u8]);
                    let json = serde_json::to_string(other)
                        .map_err(|e| CaseError::Invalid(e.to_string()))?;
                    text(h, &json);
                }
            }
        }
        Ok(())
    }
}

/// What starts a fingerprint of [`BreakInput::fingerprint`] (schema 6).
const FINGERPRINT_V2: &str = "v2:";
