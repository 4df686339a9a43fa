//! Business days (Monday to Friday; no holiday calendar).

use anyhow::{Context, Result};
use chrono::{Datelike, NaiveDate, Weekday};

pub(super) fn is_business_day(d: NaiveDate) -> bool {
    !matches!(d.weekday(), Weekday::Sat | Weekday::Sun)
}

/// Business days for offsets `-before .. after` around `start` (rolled forward
/// to a business day), in order; offset 0 is at index `before`.
pub(super) fn business_days(
    start: NaiveDate,
    before: usize,
    after: usize,
) -> Result<Vec<NaiveDate>> {
    let too_late = || format!("start_date {start} is too close to the end of the calendar");
    let mut d0 = start;
    while !is_business_day(d0) {
        d0 = d0.succ_opt().with_context(too_late)?;
    }
    let mut back = Vec::with_capacity(before);
    let mut d = d0;
    while back.len() < before {
        d = d
            .pred_opt()
            .with_context(|| format!("start_date {start} is too early"))?;
        if is_business_day(d) {
            back.push(d);
        }
    }
    back.reverse();
    let mut out = back;
    out.reserve(after);
    let mut d = d0;
    for i in 0..after {
        if i > 0 {
            d = d.succ_opt().with_context(too_late)?;
            while !is_business_day(d) {
                d = d.succ_opt().with_context(too_late)?;
            }
        }
        out.push(d);
    }
    Ok(out)
}

/// Per date: whether it is the last business day of its month (the next business day is in
/// another month).
pub(super) fn month_ends(dates: &[NaiveDate]) -> Vec<bool> {
    dates
        .iter()
        .map(|d| {
            let mut n = d.succ_opt().unwrap_or(*d);
            while !is_business_day(n) {
                n = n.succ_opt().unwrap_or(n);
            }
            n.month() != d.month()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weekend_start_rolls_forward() {
        // Weekend start rolls forward to Monday.
        let sat = NaiveDate::from_ymd_opt(2024, 1, 6).expect("date");
        let days = business_days(sat, 2, 3).expect("days");
        assert_eq!(days[2], NaiveDate::from_ymd_opt(2024, 1, 8).expect("date"));
        assert_eq!(days[1], NaiveDate::from_ymd_opt(2024, 1, 5).expect("date"));
        assert!(days.iter().all(|d| is_business_day(*d)));
    }
}
