//! The case queue (only the lines on screen are formatted), the pane of the case under its
//! cursor, and the run summary with its bar charts and trend.

use super::views::{header_row, when};
use super::{cell, main_area, queue_area};
use crate::text::thousands;
use crate::tui::app::App;
use crate::tui::column_store::short_status;
use crate::tui::queue::{QueueCase, arrow, sparkline};
use crate::tui::results::Loaded;
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::Modifier;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Bar, BarChart, Block, Borders, Paragraph, Wrap};

/// The queue's columns: (width, title, right-aligned).
const COLUMNS: [(u16, &str, bool); 12] = [
    (19, "ticket", false),
    (21, "key", false),
    (14, "bucket", false),
    (8, "severity", false),
    (8, "status", false),
    (4, "age", true),
    (12, "due", false),
    (8, "owner", false),
    (13, "first diff", true),
    (13, "latest diff", true),
    (8, "trend", false),
    (60, "summary", false),
];

/// How many of a case's records its trend shows at most.
const TREND_POINTS: usize = 8;

pub fn queue(frame: &mut Frame<'_>, app: &App, area: Rect) {
    let Some(d) = &app.data else { return };
    let list = queue_area(app, area);
    queue_list(frame, app, d, list);
    let main = main_area(area);
    if let Some(c) = app.queue_current()
        && main.bottom() > list.bottom()
    {
        let rest = Rect {
            y: list.bottom(),
            height: main.bottom() - list.bottom(),
            ..main
        };
        case_pane(frame, app, c, rest);
    }
}

fn queue_list(frame: &mut Frame<'_>, app: &App, d: &Loaded, r: Rect) {
    let th = &app.theme;
    let buf = frame.buffer_mut();
    // The mark column first, then the columns.
    let shifted = Rect {
        x: r.x + 1,
        width: r.width.saturating_sub(1),
        ..r
    };
    // The columns that fit (a column that would show only a sliver is left out).
    let mut shown = 0;
    let mut x = shifted.x;
    for (w, _, _) in COLUMNS {
        if x + w.min(10) > shifted.right() {
            break;
        }
        shown += 1;
        x += w + 1;
    }
    let body = header_row(buf, shifted, &COLUMNS[..shown], th);
    let body = Rect {
        x: r.x,
        width: r.width,
        ..body
    };
    if app.queue.order.is_empty() {
        let what = if let Some(e) = &d.queue_error {
            format!("The cases cannot be read: {e}")
        } else if !d.complete {
            "The cases are recorded when the analysis ends; 1 shows the scored records.".into()
        } else {
            "No outstanding cases for this profile: every break has cleared.".into()
        };
        let style = if d.queue_error.is_some() {
            th.error
        } else {
            th.dim
        };
        buf.set_stringn(body.x + 2, body.y, what, body.width as usize, style);
        return;
    }
    for k in 0..body.height as usize {
        let pos = app.queue.offset + k;
        let Some(&i) = app.queue.order.get(pos) else {
            break;
        };
        let c = &d.queue[i as usize];
        let y = body.y + k as u16;
        let on_cursor = pos == app.queue.cursor;
        let marked = app.queue.marks.contains(&c.id);
        let mut style = if c.status.is_decided() {
            th.base.patch(th.dim)
        } else {
            th.base
        };
        if marked {
            style = style.patch(th.marked);
        }
        if on_cursor {
            style = style.patch(th.cursor);
        }
        buf.set_style(
            Rect {
                y,
                height: 1,
                ..body
            },
            style,
        );
        buf.set_stringn(body.x, y, if marked { "●" } else { " " }, 1, style);
        let overdue = c.overdue(app.today);
        let values = [
            c.ticket.clone(),
            c.key.clone(),
            c.bucket.clone(),
            c.severity.clone(),
            short_status(c.status.as_str()).to_string(),
            c.age_days().to_string(),
            match c.due {
                // Marked without colour too.
                Some(due) if overdue => format!("{due} !"),
                Some(due) => due.to_string(),
                None => "–".into(),
            },
            c.owner.clone().unwrap_or_else(|| "–".into()),
            thousands(c.first_difference, 2),
            thousands(c.difference, 2),
            trend(d, c),
            c.summary.clone(),
        ];
        let plain = on_cursor || marked;
        let mut x = body.x + 1;
        for (n, ((w, _, right), v)) in COLUMNS[..shown].iter().zip(values).enumerate() {
            let s = match n {
                3 if !plain => style.patch(th.severity(&c.severity)),
                4 if !plain => style.patch(th.status(short_status(c.status.as_str()))),
                6 if overdue && !plain => style.patch(th.error),
                6 if overdue => style.add_modifier(Modifier::BOLD),
                7 if c.owner.as_deref() == Some(app.actor.user.as_str()) && !plain => {
                    style.patch(th.accent)
                }
                _ => style,
            };
            cell(buf, x, y, (*w).min(body.right() - x), &v, *right, s);
            x += w + 1;
        }
    }
}

/// The case's records in this file as a sparkline of their differences; with fewer than two,
/// an arrow from the first difference to the latest.
fn trend(d: &Loaded, c: &QueueCase) -> String {
    let values = d.case_differences(&c.id);
    if values.len() >= 2 {
        sparkline(&values, TREND_POINTS)
    } else {
        arrow(c.first_difference, c.difference).to_string()
    }
}

/// Everything about the queue's case under the cursor: status, severity, bucket, age, due date
/// (overdue marked), owner, cleared date, the differences, the summary and the notes.
fn case_pane(frame: &mut Frame<'_>, app: &App, c: &QueueCase, r: Rect) {
    let th = &app.theme;
    let block = Block::default()
        .borders(Borders::TOP)
        .border_style(th.border)
        .title(Span::styled(
            format!(" {} · {} · {} ", c.ticket, c.key, c.last_date),
            th.accent.add_modifier(Modifier::BOLD),
        ));
    let inner = block.inner(r);
    frame.render_widget(block, r);
    let label = |s: &str| Span::styled(format!("{s:<11}"), th.dim);
    let mut lines: Vec<Line<'_>> = Vec::new();
    lines.push(Line::from(vec![
        label("status"),
        Span::styled(
            c.status.as_str(),
            th.status(short_status(c.status.as_str())),
        ),
        Span::styled("   severity ", th.dim),
        Span::styled(c.severity.clone(), th.severity(&c.severity)),
        Span::styled("   bucket ", th.dim),
        Span::styled(c.bucket.clone(), th.accent),
    ]));
    let overdue = c.overdue(app.today);
    let due = match c.due {
        Some(d) if overdue => Span::styled(
            format!(
                "{d} ! overdue by {} day(s)",
                (app.today - d).num_days().max(0)
            ),
            th.error,
        ),
        Some(d) => Span::raw(d.to_string()),
        None => Span::styled("–", th.dim),
    };
    lines.push(Line::from(vec![
        label("age"),
        Span::raw(format!(
            "{} day(s), since {} (latest record {})",
            c.age_days(),
            c.start_date,
            c.last_date
        )),
    ]));
    lines.push(Line::from(vec![
        label("due"),
        due,
        Span::styled("   owner ", th.dim),
        match &c.owner {
            Some(o) => Span::styled(o.clone(), th.accent),
            None => Span::styled("nobody (m takes it)", th.dim),
        },
        Span::styled("   cleared ", th.dim),
        Span::raw(c.cleared_on.map_or("–".to_string(), |d| d.to_string())),
    ]));
    let change = c.difference - c.first_difference;
    lines.push(Line::from(vec![
        label("difference"),
        Span::raw(format!(
            "first {} → latest {} (change {}{})",
            thousands(c.first_difference, 2),
            thousands(c.difference, 2),
            if change > 0.0 { "+" } else { "" },
            thousands(change, 2)
        )),
    ]));
    lines.push(Line::from(vec![
        label("summary"),
        Span::raw(if c.summary.is_empty() {
            "–".to_string()
        } else {
            c.summary.clone()
        }),
    ]));
    match app.notes.as_ref().filter(|n| n.case_id == c.id) {
        Some(n) => match &n.events {
            Ok(notes) if notes.is_empty() => lines.push(Line::from(Span::styled(
                "notes      none yet (i adds one)",
                th.dim,
            ))),
            Ok(notes) => {
                lines.push(Line::from(Span::styled(
                    format!("notes ({}, newest first)", notes.len()),
                    th.dim,
                )));
                for e in notes.iter().rev() {
                    lines.push(Line::from(vec![
                        Span::styled(format!("  {} ", when(e.at)), th.dim),
                        Span::styled(format!("{}: ", e.user), th.accent),
                        Span::raw(e.reason.clone().unwrap_or_default()),
                    ]));
                }
            }
            Err(e) => lines.push(Line::from(Span::styled(format!("notes: {e}"), th.error))),
        },
        None => lines.push(Line::from(Span::styled("notes      …", th.dim))),
    }
    frame.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), inner);
}

/// The run summary: the cycle's lines, outstanding cases by bucket and by age band as bar
/// charts, and the outstanding cases after each of the profile's latest cycles.
pub fn summary(frame: &mut Frame<'_>, app: &App, r: Rect) {
    let th = &app.theme;
    let Some(d) = &app.data else { return };
    let Some(s) = &d.summary else {
        frame.render_widget(
            Paragraph::new("The run summary is ready when the analysis ends.").style(th.dim),
            r,
        );
        return;
    };
    let overdue = d.queue.iter().filter(|c| c.overdue(app.today)).count();
    let mut lines: Vec<Line<'_>> = s.lines().into_iter().take(2).map(Line::from).collect();
    lines.push(Line::from(Span::styled(
        format!(
            "{} absent (not in this file) · {overdue} overdue · 5 shows the queue of the {} outstanding",
            s.absent, s.outstanding
        ),
        th.dim,
    )));
    let top_h = (lines.len() as u16 + 1).min(r.height);
    let top = Rect { height: top_h, ..r };
    frame.render_widget(
        Paragraph::new(lines).wrap(Wrap { trim: false }).block(
            Block::default()
                .borders(Borders::BOTTOM)
                .border_style(th.border),
        ),
        top,
    );
    let rest = Rect {
        y: r.y + top_h,
        height: r.height.saturating_sub(top_h),
        ..r
    };
    if rest.height < 4 {
        return;
    }
    let trend_h = (rest.height / 3).clamp(4, 8);
    let charts = Rect {
        height: rest.height.saturating_sub(trend_h),
        ..rest
    };
    let left = Rect {
        width: charts.width * 11 / 20,
        ..charts
    };
    let right = Rect {
        x: charts.x + left.width,
        width: charts.width - left.width,
        ..charts
    };
    tally_chart(frame, app, " outstanding by bucket ", &s.by_bucket, left);
    tally_chart(frame, app, " outstanding by age (days) ", &s.by_age, right);
    let tr = Rect {
        y: charts.bottom(),
        height: rest.bottom().saturating_sub(charts.bottom()),
        ..rest
    };
    trend_chart(frame, app, d, tr);
}

/// Horizontal bars: each tally's count, with its total |difference|.
fn tally_chart(
    frame: &mut Frame<'_>,
    app: &App,
    title: &str,
    tallies: &[crate::cycle::Tally],
    r: Rect,
) {
    let th = &app.theme;
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(th.border)
        .title(Span::styled(title.to_string(), th.accent));
    if tallies.iter().all(|t| t.cases == 0) {
        frame.render_widget(
            Paragraph::new("No outstanding cases.")
                .style(th.dim)
                .block(block),
            r,
        );
        return;
    }
    let room = r.height.saturating_sub(2) as usize;
    let name_w = tallies
        .iter()
        .map(|t| t.name.chars().count())
        .max()
        .unwrap_or(0);
    let count_w = tallies
        .iter()
        .map(|t| t.cases.to_string().len())
        .max()
        .unwrap_or(1);
    let amount_w = tallies
        .iter()
        .map(|t| thousands(t.abs_difference, 0).len())
        .max()
        .unwrap_or(1);
    // The label carries the numbers (count and total |difference|); the bar is the count.
    let bars: Vec<Bar<'_>> = tallies
        .iter()
        .take(room)
        .map(|t| {
            Bar::default()
                .value(t.cases as u64)
                .label(Line::from(format!(
                    "{:<name_w$} {:>count_w$} {:>amount_w$} ",
                    t.name,
                    t.cases,
                    thousands(t.abs_difference, 0)
                )))
                .text_value(String::new())
        })
        .collect();
    let chart = BarChart::horizontal(bars)
        .block(block)
        .bar_width(1)
        .bar_gap(0)
        .bar_style(th.accent)
        .value_style(th.base.add_modifier(Modifier::BOLD))
        .label_style(th.base);
    frame.render_widget(chart, r);
}

/// The outstanding cases after each of the profile's latest cycles.
fn trend_chart(frame: &mut Frame<'_>, app: &App, d: &Loaded, r: Rect) {
    let th = &app.theme;
    let t = &d.trend;
    let title = match (t.first(), t.last()) {
        (Some(a), Some(b)) if t.len() > 1 => format!(
            " outstanding cases, last {} cycles: {} ({}) → {} ({}) ",
            t.len(),
            a.outstanding,
            a.label,
            b.outstanding,
            b.label
        ),
        (Some(a), _) => format!(
            " outstanding cases: {} ({}); the trend grows with each cycle ",
            a.outstanding, a.label
        ),
        _ => " outstanding cases over the cycles: none recorded yet ".to_string(),
    };
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(th.border)
        .title(Span::styled(title, th.accent));
    // One bar per cycle (its month and day below), the latest at the right.
    const BAR: u16 = 5;
    let fit = (r.width.saturating_sub(2) / (BAR + 1)) as usize;
    let shown = &t[t.len().saturating_sub(fit)..];
    let bars: Vec<Bar<'_>> = shown
        .iter()
        .map(|p| {
            let label: String = p.label.chars().skip(5).collect();
            Bar::default()
                .value(p.outstanding as u64)
                .label(Line::from(label))
        })
        .collect();
    frame.render_widget(
        BarChart::vertical(bars)
            .block(block)
            .bar_width(BAR)
            .bar_gap(1)
            .bar_style(th.accent)
            .value_style(th.accent.add_modifier(Modifier::REVERSED | Modifier::BOLD))
            .label_style(th.dim),
        r,
    );
}
