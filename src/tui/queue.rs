//! The case queue's data: one line per outstanding case of the loaded profile (read from the
//! store on the worker thread when a load ends), its order (severity, Critical first, then
//! age, oldest first), the trend of a case's records and the run summaries of earlier cycles.

use crate::cases::{Case, CaseFilter, Cases, Status};
use crate::cycle::RunSummary;
use crate::store::Store;
use chrono::NaiveDate;

/// One outstanding case as the queue shows it (the case without its record snapshot).
#[derive(Debug, Clone, PartialEq)]
pub struct QueueCase {
    pub id: String,
    pub ticket: String,
    pub key: String,
    pub bucket: String,
    pub severity: String,
    pub status: Status,
    pub start_date: NaiveDate,
    pub last_date: NaiveDate,
    pub due: Option<NaiveDate>,
    pub owner: Option<String>,
    pub cleared_on: Option<NaiveDate>,
    /// The difference of the break's first record (the latest when the store does not know it).
    pub first_difference: f64,
    /// The difference of its latest record.
    pub difference: f64,
    pub summary: String,
}

impl QueueCase {
    pub fn of(c: &Case) -> QueueCase {
        QueueCase {
            id: c.id.clone(),
            ticket: c.ticket.clone(),
            key: c.key.clone(),
            bucket: c.bucket.clone(),
            severity: c.severity.clone(),
            status: c.status,
            start_date: c.start_date,
            last_date: c.last_date,
            due: c.due,
            owner: c.owner.clone(),
            cleared_on: c.cleared_on,
            first_difference: c.first_difference.unwrap_or(c.difference),
            difference: c.difference,
            summary: c.summary.clone(),
        }
    }

    /// Age of the break in days (as [`Case::age_days`]).
    pub fn age_days(&self) -> i64 {
        (self.last_date - self.start_date).num_days()
    }

    /// Whether the case waits for someone past its due date on `today` (as [`Case::overdue`]).
    pub fn overdue(&self, today: NaiveDate) -> bool {
        self.status.is_open() && self.due.is_some_and(|d| d < today)
    }

    /// Whether the break is still outstanding (as [`Case::outstanding`]).
    pub fn outstanding(&self) -> bool {
        self.status != Status::Cleared && self.cleared_on.is_none()
    }
}

/// The order of a severity: Critical first, unknown ones last.
pub fn severity_rank(s: &str) -> u8 {
    match s.to_ascii_lowercase().as_str() {
        "critical" => 0,
        "high" => 1,
        "medium" => 2,
        "low" => 3,
        _ => 4,
    }
}

/// Where the case `id` stands in the queue's `order` of `cases`, when it is there.
pub fn position_of(order: &[u32], cases: &[QueueCase], id: Option<&str>) -> Option<usize> {
    let id = id?;
    order.iter().position(|i| cases[*i as usize].id == id)
}

/// The queue's order of `cases`: severity (Critical first), then age (oldest first), then
/// ticket.
pub fn order(cases: &[QueueCase]) -> Vec<u32> {
    let mut keys: Vec<(u8, i64, &str, u32)> = cases
        .iter()
        .enumerate()
        .map(|(i, c)| {
            (
                severity_rank(&c.severity),
                -c.age_days(),
                c.ticket.as_str(),
                i as u32,
            )
        })
        .collect();
    keys.sort_unstable();
    keys.into_iter().map(|k| k.3).collect()
}

/// The outstanding cases of `profile` in the store.
pub fn load(store: &Store, profile: &str) -> Result<Vec<QueueCase>, String> {
    let list = Cases::new(store)
        .list(&CaseFilter {
            profile: Some(profile.to_string()),
            ..CaseFilter::default()
        })
        .map_err(|e| e.to_string())?;
    Ok(list
        .iter()
        .filter(|c| c.outstanding())
        .map(QueueCase::of)
        .collect())
}

/// One earlier cycle of the profile: its as-of date (or when it ran) and the cases then
/// outstanding.
#[derive(Debug, Clone, PartialEq)]
pub struct TrendPoint {
    pub label: String,
    pub outstanding: usize,
}

/// How many cycles the summary's trend shows at most.
pub const TREND_CYCLES: usize = 30;

/// The outstanding cases of `profile` after each of its latest cycles (at most
/// [`TREND_CYCLES`]), oldest first, from the run summaries in the store.
pub fn trend(store: &Store, profile: &str) -> Result<Vec<TrendPoint>, String> {
    // Runs of every profile share the log: read further back than the cycles shown.
    let runs = store.runs(TREND_CYCLES * 10).map_err(|e| e.to_string())?;
    let mut out: Vec<TrendPoint> = runs
        .iter()
        .filter_map(|b| serde_json::from_slice::<RunSummary>(b).ok())
        .filter(|s| s.profile == profile)
        .take(TREND_CYCLES)
        .map(|s| TrendPoint {
            label: s
                .as_of
                .clone()
                .unwrap_or_else(|| s.at.chars().take(10).collect()),
            outstanding: s.outstanding,
        })
        .collect();
    out.reverse();
    Ok(out)
}

const LEVELS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/// A one-line sparkline of `values` (scaled from their least to their largest), at most
/// `width` characters (the latest values).
pub fn sparkline(values: &[f64], width: usize) -> String {
    let shown = &values[values.len().saturating_sub(width)..];
    let (lo, hi) = shown
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| {
            (l.min(*v), h.max(*v))
        });
    shown
        .iter()
        .map(|v| {
            if hi - lo <= f64::EPSILON * hi.abs().max(1.0) {
                LEVELS[3]
            } else {
                let k = ((v - lo) / (hi - lo) * 7.0).round() as usize;
                LEVELS[k.min(7)]
            }
        })
        .collect()
}

/// The direction of a break from its first to its latest difference: `↑` grew (in absolute
/// amount), `↓` shrank, `→` unchanged.
pub fn arrow(first: f64, latest: f64) -> &'static str {
    let (a, b) = (first.abs(), latest.abs());
    if b > a {
        "↑"
    } else if b < a {
        "↓"
    } else {
        "→"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn case(ticket: &str, severity: &str, age: i64) -> QueueCase {
        let last = NaiveDate::from_ymd_opt(2024, 3, 8).unwrap();
        QueueCase {
            id: format!("C-{ticket}"),
            ticket: ticket.into(),
            key: "k".into(),
            bucket: "b".into(),
            severity: severity.into(),
            status: Status::PendingReview,
            start_date: last - chrono::Duration::days(age),
            last_date: last,
            due: None,
            owner: None,
            cleared_on: None,
            first_difference: 1.0,
            difference: 1.0,
            summary: String::new(),
        }
    }

    #[test]
    fn order_is_severity_then_oldest_first() {
        let cases = vec![
            case("T1", "Low", 30),
            case("T2", "Critical", 1),
            case("T3", "High", 2),
            case("T4", "Critical", 9),
            case("T5", "high", 7),
        ];
        let o: Vec<&str> = order(&cases)
            .iter()
            .map(|i| cases[*i as usize].ticket.as_str())
            .collect();
        assert_eq!(o, ["T4", "T2", "T5", "T3", "T1"]);
    }

    #[test]
    fn sparkline_scales_and_arrow_points_the_way() {
        assert_eq!(sparkline(&[1.0, 2.0, 3.0], 8), "▁▅█");
        assert_eq!(sparkline(&[5.0, 5.0], 8), "▄▄");
        assert_eq!(sparkline(&[0.0, 1.0, 2.0, 3.0], 2), "▁█");
        assert_eq!(arrow(100.0, -150.0), "↑");
        assert_eq!(arrow(100.0, 50.0), "↓");
        assert_eq!(arrow(100.0, 100.0), "→");
    }

    #[test]
    fn overdue_only_while_open() {
        let mut c = case("T1", "High", 3);
        let today = NaiveDate::from_ymd_opt(2024, 3, 10).unwrap();
        c.due = Some(NaiveDate::from_ymd_opt(2024, 3, 9).unwrap());
        assert!(c.overdue(today));
        c.status = Status::Accepted;
        assert!(!c.overdue(today));
        c.status = Status::PendingReview;
        c.due = Some(today);
        assert!(!c.overdue(today));
    }
}
