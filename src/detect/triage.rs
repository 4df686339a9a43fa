//! From the detector's scores to the triage ranking and the flags.
//!
//! A row is a *candidate* when it is a break (a criteria out of tolerance; every row when the
//! profile has no tolerance) that nothing explains. The other rows are *quiet*, for a reason:
//! within tolerance, routine for the account ([`crate::routine`]), explained by its comment, or
//! judged normal by an analyst earlier and not changed materially since.
//!
//! A candidate is **flagged** when it is unusual for its account (own z above `own_z_min`) or
//! for its peers (the detector's score below the model's offset). Quiet rows are never flagged.
//!
//! The triage **score** ranks the rows for review (higher = more normal, as the detector's): a
//! candidate's score is the detector's minus `own_weight × ln(1 + own z)`; a quiet break's is
//! `1 + max(detector's, −1)` and a row within tolerance's `3 + max(detector's, −1)`, so every
//! candidate (≤ 0) ranks before every quiet break (0 to 1), every break before every row within
//! tolerance (2 to 3), and each group keeps the detector's order. A row within tolerance is
//! only given a detector score when every row is asked for (`--all-rows`, the TUI, `evaluate`);
//! unscored (NaN) it counts as the most normal of its group, so the ranks of the breaks never
//! depend on whether the rows within tolerance were scored.

use crate::routine::Reason;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Why a row is not a candidate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Quiet {
    /// Every criteria within its tolerance: not a break.
    WithinTolerance,
    /// A break routine for its account.
    Routine(Reason),
    /// A break its source comment explains.
    Explained,
    /// A break an analyst judged normal, not changed materially since.
    Judged,
}

impl Quiet {
    pub fn describe(&self) -> String {
        match self {
            Quiet::WithinTolerance => "within tolerance".into(),
            Quiet::Routine(r) => format!("routine: {}", r.as_str()),
            Quiet::Explained => "explained by its comment".into(),
            Quiet::Judged => "judged normal by an analyst".into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TriageParams {
    /// A candidate whose own z exceeds this is unusual for its account.
    pub own_z_min: f64,
    /// Weight of ln(1 + own z) in the triage score.
    pub own_weight: f64,
}

impl Default for TriageParams {
    fn default() -> Self {
        TriageParams {
            own_z_min: 5.0,
            own_weight: 0.1,
        }
    }
}

/// What the triage did to a set of rows.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TriageSummary {
    pub rows: usize,
    /// Rows that are breaks (out of tolerance).
    pub breaks: usize,
    /// Breaks nothing explains.
    pub candidates: usize,
    pub flagged: usize,
    /// Flagged as unusual for their account (some may also be unusual for their peers).
    pub flagged_own: usize,
    /// Flagged only as unusual for their peers.
    pub flagged_peers: usize,
    /// Quiet breaks by reason (`Quiet::describe`).
    pub quiet_breaks: BTreeMap<String, usize>,
}

impl TriageSummary {
    /// One line for the run summary.
    pub fn describe(&self) -> String {
        let quiet: usize = self.quiet_breaks.values().sum();
        let mut s = format!(
            "{} rows, {} breaks: {} flagged ({} unusual for their account, {} for their peers), {} unflagged",
            self.rows,
            self.breaks,
            self.flagged,
            self.flagged_own,
            self.flagged_peers,
            self.candidates - self.flagged
        );
        if quiet > 0 {
            let parts: Vec<String> = self
                .quiet_breaks
                .iter()
                .map(|(k, n)| format!("{n} {k}"))
                .collect();
            s.push_str(&format!("; {quiet} quiet ({})", parts.join(", ")));
        }
        s
    }
}

/// The triage of rows: `model` are the detector's scores (higher = more normal), `offset` the
/// model's, `own_z` each row's own z (0 when unknown), `quiet` why a row is not a candidate.
/// Returns the triage scores, the flags, and the summary.
pub fn triage(
    model: &[f64],
    offset: f64,
    own_z: &[f64],
    quiet: &[Option<Quiet>],
    p: &TriageParams,
) -> (Vec<f64>, Vec<bool>, TriageSummary) {
    let n = model.len();
    let mut score = Vec::with_capacity(n);
    let mut flag = Vec::with_capacity(n);
    let mut sum = TriageSummary {
        rows: n,
        ..Default::default()
    };
    for (i, &m) in model.iter().enumerate() {
        let m = if m.is_finite() { m } else { 0.0 };
        let z = own_z
            .get(i)
            .copied()
            .filter(|z| z.is_finite() && *z > 0.0)
            .unwrap_or(0.0);
        match quiet.get(i).copied().flatten() {
            Some(q) => {
                let band = if q == Quiet::WithinTolerance {
                    3.0
                } else {
                    1.0
                };
                score.push(band + m.max(-1.0));
                flag.push(false);
                if q != Quiet::WithinTolerance {
                    sum.breaks += 1;
                    *sum.quiet_breaks.entry(q.describe()).or_default() += 1;
                }
            }
            None => {
                sum.breaks += 1;
                sum.candidates += 1;
                score.push(m - p.own_weight * z.ln_1p());
                let own = z > p.own_z_min;
                let peers = m < offset;
                flag.push(own || peers);
                if own {
                    sum.flagged_own += 1;
                } else if peers {
                    sum.flagged_peers += 1;
                }
            }
        }
    }
    sum.flagged = sum.flagged_own + sum.flagged_peers;
    (score, flag, sum)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_rows_rank_after_every_candidate_and_are_never_flagged() {
        let model = [-0.9, -0.3, -0.8, -0.45, -0.2];
        let quiet = [
            Some(Quiet::WithinTolerance),
            None,
            Some(Quiet::Routine(Reason::Standing)),
            None,
            None,
        ];
        let own = [0.0, 0.0, 0.0, 0.0, 40.0];
        let (score, flag, sum) = triage(&model, -0.5, &own, &quiet, &TriageParams::default());
        assert_eq!(flag, vec![false, false, false, false, true]);
        // Candidates first (rows 4, 3, 1 by score), then the quiet break (row 2), then the row
        // within tolerance although the model finds it less normal than the quiet break.
        let mut order: Vec<usize> = (0..5).collect();
        order.sort_by(|a, b| score[*a].total_cmp(&score[*b]));
        assert_eq!(order, vec![4, 3, 1, 2, 0]);
        assert_eq!(sum.breaks, 4);
        assert_eq!(sum.candidates, 3);
        assert_eq!(sum.flagged, 1);
        assert_eq!(sum.flagged_own, 1);
        assert_eq!(sum.quiet_breaks.get("routine: standing item"), Some(&1));
        assert!(
            sum.describe()
                .contains("1 quiet (1 routine: standing item)"),
            "{}",
            sum.describe()
        );
    }

    #[test]
    fn an_unscored_row_within_tolerance_ranks_after_every_break() {
        let model = [f64::NAN, -0.1, -0.95, f64::NAN];
        let quiet = [
            Some(Quiet::WithinTolerance),
            Some(Quiet::Explained),
            None,
            Some(Quiet::WithinTolerance),
        ];
        let (score, flag, sum) = triage(&model, -0.5, &[0.0; 4], &quiet, &TriageParams::default());
        assert_eq!(flag, vec![false, false, true, false]);
        assert_eq!(score[0], 3.0);
        assert_eq!(score[3], 3.0);
        assert!(
            score[2] < 0.0 && (0.0..=1.0).contains(&score[1]),
            "{score:?}"
        );
        assert_eq!((sum.rows, sum.breaks, sum.candidates), (4, 2, 1));
    }

    #[test]
    fn a_candidate_is_flagged_for_its_peers_or_its_account() {
        let model = [-0.7, -0.3, -0.3];
        let own = [0.0, 2.0, 6.0];
        let (_, flag, sum) = triage(
            &model,
            -0.5,
            &own,
            &[None, None, None],
            &TriageParams::default(),
        );
        assert_eq!(flag, vec![true, false, true]);
        assert_eq!((sum.flagged_own, sum.flagged_peers), (1, 1));
    }
}
