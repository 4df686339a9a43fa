//! A flagged record as the pipeline (or an analyst) hands it over.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

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

    /// SHA-256 (hex) of the record as serialized: equal for the same record.
    pub(super) fn fingerprint(&self) -> Result<String, CaseError> {
        let bytes = serde_json::to_vec(self).map_err(|e| CaseError::Invalid(e.to_string()))?;
        Ok(hex(&Sha256::digest(&bytes)))
    }
}
