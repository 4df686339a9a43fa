//! The analysts' verdicts in a training. Isolation Forest and LOF learn what normal looks like
//! from unlabelled rows, so feedback enters through the rows they learn from and the threshold:
//!
//! - true breaks (accepted, approved, or flagged as missed) are left out of the training rows,
//!   with every record of the break's run, so the model does not learn them as normal;
//! - rejected rows (false positives) are added as normal, each repeated `oversample` times, so
//!   what they look like stops being isolated;
//! - the contamination is re-estimated: (share of rows the previous model flagged) × (precision
//!   the analysts found among the flagged rows they decided) + (missed breaks / rows).
//!
//! The precision comes from the cases analysts chose to decide, usually the top of the ranking,
//! where precision is highest; the re-estimate therefore leans high rather than low, which keeps
//! recall.

use serde::{Deserialize, Serialize};

/// What the feedback changed in one training; kept in the model bundle.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FeedbackInfo {
    /// Labels of the profile in the store.
    pub labels: usize,
    /// Labels whose record was found in the training or current rows.
    pub matched: usize,
    /// Matched labels of model-flagged cases decided as true breaks.
    pub accepted: usize,
    /// Matched labels of cases rejected as false positives.
    pub rejected: usize,
    /// Matched labels of breaks the model missed (flagged by an analyst).
    pub missed: usize,
    /// Training rows left out as records of true breaks.
    pub excluded_rows: usize,
    /// Rows added as normal (rejected rows × `oversample`).
    pub added_rows: usize,
    pub oversample: usize,
    /// accepted / (accepted + rejected), when any were decided.
    pub precision: Option<f64>,
    /// The contamination (share of rows flagged) before and after the re-estimate; equal when
    /// there were fewer than `min_reviewed` decided flagged cases or the re-estimate is off.
    pub contamination_before: Option<f64>,
    pub contamination_after: Option<f64>,
}

impl FeedbackInfo {
    /// One line for the user.
    pub fn describe(&self) -> String {
        let pct = |v: Option<f64>| v.map_or("–".to_string(), |v| format!("{:.2}%", v * 100.0));
        format!(
            "feedback: {} of {} labels matched ({} accepted, {} rejected, {} missed); {} true-break rows left out, {} rows added as normal (×{}); precision {}; contamination {} → {}",
            self.matched,
            self.labels,
            self.accepted,
            self.rejected,
            self.missed,
            self.excluded_rows,
            self.added_rows,
            self.oversample,
            self.precision
                .map_or("–".to_string(), |p| format!("{p:.3}")),
            pct(self.contamination_before),
            pct(self.contamination_after),
        )
    }
}

/// The re-estimated contamination: `flag_share × precision + missed / rows`, within
/// [1 / rows, 0.5]; None when fewer than `min_reviewed` flagged cases were decided.
pub fn reestimate(
    flag_share: f64,
    accepted: usize,
    rejected: usize,
    missed: usize,
    rows: usize,
    min_reviewed: usize,
) -> Option<f64> {
    let reviewed = accepted + rejected;
    if reviewed == 0 || reviewed < min_reviewed || rows == 0 || !flag_share.is_finite() {
        return None;
    }
    let precision = accepted as f64 / reviewed as f64;
    let c = flag_share * precision + missed as f64 / rows as f64;
    Some(c.clamp(1.0 / rows as f64, super::contamination::MAX_CONTAMINATION))
}

/// Each of `rows` repeated `times` times, in order.
pub fn repeat_rows(rows: &[usize], times: usize) -> Vec<usize> {
    rows.iter()
        .flat_map(|r| std::iter::repeat_n(*r, times))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reestimate_scales_the_flagged_share_by_precision_and_adds_missed_breaks() {
        // 8% flagged, 3 of 4 decided were true, 10 missed of 1000 rows: 6% + 1%.
        let c = reestimate(0.08, 30, 10, 10, 1000, 20).unwrap();
        assert!((c - 0.07).abs() < 1e-12, "{c}");
        // Too few decided: no re-estimate.
        assert_eq!(reestimate(0.08, 5, 5, 0, 1000, 20), None);
        assert_eq!(reestimate(0.08, 0, 0, 3, 1000, 0), None);
        // All rejected: clamped to one row, never zero.
        assert_eq!(reestimate(0.08, 0, 40, 0, 1000, 20), Some(0.001));
        // Never above the maximum contamination.
        assert_eq!(reestimate(0.5, 40, 0, 900, 1000, 20), Some(0.5));
    }

    #[test]
    fn repeats_rows_in_order() {
        assert_eq!(repeat_rows(&[3, 1], 2), vec![3, 3, 1, 1]);
        assert!(repeat_rows(&[3], 0).is_empty());
    }
}
