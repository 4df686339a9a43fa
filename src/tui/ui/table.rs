//! The anomaly table (only the rows on screen are formatted) and the detail pane.

use super::{cell, main_area, table_area};
use crate::pipeline::Stage;
use crate::text::thousands;
use crate::tui::app::App;
use crate::tui::column_store::{Column, ColumnStore};
use crate::tui::results::Loaded;
use crate::tui::theme::Theme;
use ratatui::Frame;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Axis, Block, Borders, Chart, Dataset, GraphType, Paragraph, Wrap};

pub fn table_view(frame: &mut Frame<'_>, app: &App, area: Rect) {
    let Some(d) = &app.data else { return };
    let ta = table_area(app, area);
    table(frame.buffer_mut(), app, d, ta);
    if app.table.detail {
        let main = main_area(area);
        let rest = Rect {
            y: ta.bottom(),
            height: main.bottom().saturating_sub(ta.bottom()),
            ..main
        };
        detail(frame, app, d, rest);
    }
}

/// The columns shown from the left: the frozen ones, then the scrolling ones from the column
/// offset while they fit.
pub(super) fn shown_columns(app: &App, d: &Loaded, width: u16) -> Vec<usize> {
    let cols = &d.table.cols;
    let frozen = d.table.frozen.min(cols.len());
    let mut x = 2u16; // the mark column
    let mut out = Vec::new();
    for i in (0..frozen).chain(app.table.col_offset.max(frozen)..cols.len()) {
        let w = cols[i].width + 1;
        if x + w > width && !out.is_empty() {
            break;
        }
        out.push(i);
        x += w;
    }
    out
}

fn table(buf: &mut Buffer, app: &App, d: &Loaded, r: Rect) {
    if r.height == 0 {
        return;
    }
    let shown = shown_columns(app, d, r.width);
    header(buf, app, d, &shown, r);
    // Rows: only those on screen.
    let body = Rect {
        y: r.y + 1,
        height: r.height - 1,
        ..r
    };
    if app.table.view.is_empty() {
        no_rows(buf, app, d, body);
        return;
    }
    for k in 0..body.height as usize {
        let Some(&row) = app.table.view.get(app.table.offset + k) else {
            break;
        };
        table_row(buf, app, d, &shown, body, k, row as usize);
    }
}

/// The header: the shown columns' titles, the sort arrow and the column cursor.
fn header(buf: &mut Buffer, app: &App, d: &Loaded, shown: &[usize], r: Rect) {
    let th = &app.theme;
    let t = &d.table;
    buf.set_style(Rect { height: 1, ..r }, th.header);
    let mut x = r.x + 2;
    for &i in shown {
        let c: &Column = &t.cols[i];
        let mut title = c.title.clone();
        if let Some((s, desc)) = app.table.sort
            && s == i
        {
            // The arrow always shows: a title that fills the column gives way to it.
            let w = c.width as usize;
            if title.chars().count() + 1 > w {
                title = title.chars().take(w.saturating_sub(2)).collect();
                title.push('…');
            }
            title.push(if desc { '▼' } else { '▲' });
        }
        let mut style = th.header;
        if i == app.table.col {
            style = style.add_modifier(Modifier::UNDERLINED | Modifier::REVERSED);
        }
        cell(
            buf,
            x,
            r.y,
            c.width.min(r.right().saturating_sub(x)),
            &title,
            c.right_aligned(),
            style,
        );
        if i + 1 == t.frozen {
            buf.set_stringn(x + c.width, r.y, "│", 1, th.header);
        }
        x += c.width + 1;
    }
}

/// Why no row shows.
fn no_rows(buf: &mut Buffer, app: &App, d: &Loaded, body: Rect) {
    let t = &d.table;
    let what = if app.live.is_some() && t.rows == 0 {
        "No anomalies yet: they appear here as the service flags them."
    } else if d.complete || !t.flagged.iter().any(|f| *f) {
        "No rows match. 0 clears the filters; A shows every row."
    } else {
        "No rows match."
    };
    buf.set_stringn(body.x + 2, body.y, what, body.width as usize, app.theme.dim);
}

/// The `k`th row on screen, showing table row `r_`.
fn table_row(
    buf: &mut Buffer,
    app: &App,
    d: &Loaded,
    shown: &[usize],
    body: Rect,
    k: usize,
    r_: usize,
) {
    let th = &app.theme;
    let t = &d.table;
    let status_col = t.known.status;
    let severity_col = t.known.severity;
    let y = body.y + k as u16;
    let is_cursor = app.table.offset + k == app.table.cursor;
    let marked = app.table.marks.get(r_) == Some(&true);
    let row_style = row_style(app, d, r_, marked, is_cursor);
    buf.set_style(
        Rect {
            y,
            height: 1,
            ..body
        },
        row_style,
    );
    buf.set_stringn(body.x, y, if marked { "● " } else { "  " }, 2, row_style);
    let mut x = body.x + 2;
    for &i in shown {
        let c = &t.cols[i];
        let text = c.cell(r_);
        let mut style = row_style;
        if !is_cursor && !marked {
            if Some(i) == severity_col {
                style = style.patch(th.severity(&text));
            } else if Some(i) == status_col {
                style = style.patch(th.status(&text));
            }
        }
        if !d.complete && text.is_empty() && (Some(i) == t.known.bucket || Some(i) == severity_col)
        {
            cell(buf, x, y, c.width, "…", false, style.patch(th.dim));
        } else {
            cell(
                buf,
                x,
                y,
                c.width.min(body.right().saturating_sub(x)),
                &text,
                c.right_aligned(),
                style,
            );
        }
        if i + 1 == t.frozen {
            buf.set_stringn(x + c.width, y, "│", 1, row_style.patch(th.border));
        }
        x += c.width + 1;
    }
}

/// A row's style: dim when not flagged or decided, then marked, then the cursor.
fn row_style(app: &App, d: &Loaded, r_: usize, marked: bool, is_cursor: bool) -> Style {
    let th = &app.theme;
    let t = &d.table;
    let status = t.text(t.known.status, r_);
    let mut row_style = if !t.flagged.get(r_).copied().unwrap_or(false) {
        th.dim
    } else if matches!(status, "rejected" | "accepted" | "approved") {
        th.base.patch(th.dim)
    } else {
        th.base
    };
    if marked {
        row_style = row_style.patch(th.marked);
    }
    if is_cursor {
        row_style = row_style.patch(th.cursor);
    }
    row_style
}

/// One row's cells as the detail pane shows them.
struct Cells<'a> {
    t: &'a ColumnStore,
    r_: usize,
}

impl Cells<'_> {
    fn text(&self, c: Option<usize>) -> String {
        self.t.text(c, self.r_).to_string()
    }

    fn amount(&self, c: Option<usize>) -> String {
        self.t
            .num(c, self.r_)
            .map_or("–".to_string(), |v| thousands(v, 2))
    }

    fn title_of(&self, c: Option<usize>, dflt: &str) -> String {
        self.t.col(c).map_or(dflt.to_string(), |c| c.title.clone())
    }
}

fn label(th: &Theme, s: &str) -> Span<'static> {
    Span::styled(format!("{s:<10}"), th.dim)
}

fn detail(frame: &mut Frame<'_>, app: &App, d: &Loaded, r: Rect) {
    let th = &app.theme;
    let Some(row) = app.current_row() else { return };
    let r_ = row as usize;
    let t = &d.table;
    let k = &t.known;
    let cells = Cells { t, r_ };
    let block = Block::default()
        .borders(Borders::TOP)
        .border_style(th.border)
        .title(Span::styled(
            format!(
                " {} · {} · {} ",
                cells.text(k.ticket).if_empty("no case"),
                cells.text(k.key),
                cells.text(k.date)
            ),
            th.accent.add_modifier(Modifier::BOLD),
        ));
    let inner = block.inner(r);
    frame.render_widget(block, r);
    let left_w = (inner.width * 3 / 5).max(20).min(inner.width);
    let left = Rect {
        width: left_w,
        ..inner
    };
    let right = Rect {
        x: inner.x + left_w,
        width: inner.width - left_w,
        ..inner
    };
    let mut lines: Vec<Line<'_>> = Vec::new();
    numbers_lines(app, &cells, &mut lines);
    category_lines(app, d, &cells, &mut lines);
    trail_lines(app, &mut lines);
    frame.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), left);
    chart(frame, app, d, r_, right);
}

/// The detail pane's balances, score, account normal and drivers.
fn numbers_lines(app: &App, cells: &Cells<'_>, lines: &mut Vec<Line<'_>>) {
    let th = &app.theme;
    let (t, r_) = (cells.t, cells.r_);
    let k = &t.known;
    lines.push(Line::from(vec![
        label(th, "balances"),
        Span::raw(format!(
            "{} {}",
            cells.title_of(k.lhs, "lhs"),
            cells.amount(k.lhs)
        )),
        Span::styled("  vs  ", th.dim),
        Span::raw(format!(
            "{} {}",
            cells.title_of(k.rhs, "rhs"),
            cells.amount(k.rhs)
        )),
        Span::styled("  difference ", th.dim),
        Span::styled(
            cells.amount(k.difference),
            Style::default().add_modifier(Modifier::BOLD),
        ),
    ]));
    let score = t.num(k.score, r_).map_or("–".into(), |v| format!("{v:.4}"));
    let rank = t.num(k.rank, r_).map_or("–".into(), |v| format!("{v:.0}"));
    let cluster = t
        .num(k.cluster, r_)
        .map_or("–".into(), |v| format!("{v:.0}"));
    let flagged = if t.flagged.get(r_) == Some(&true) {
        "flagged"
    } else {
        "not flagged"
    };
    lines.push(Line::from(vec![
        label(th, "score"),
        Span::raw(format!(
            "{score} (rank {rank}, {flagged}, cluster {cluster})"
        )),
    ]));
    // The account's own normal: routine, or how unusual the break is for the account.
    let routine = cells.text(k.routine);
    let account = if !routine.is_empty() {
        Some(format!("routine for the account: {routine}"))
    } else {
        t.num(k.own_z, r_).filter(|z| *z > 0.0).map(|z| {
            let min = app.cfg.detect.own_z_min;
            format!(
                "{} for the account: own z {} (threshold {min})",
                if z > min { "unusual" } else { "usual" },
                if z >= 1e5 {
                    format!("{z:.1e}")
                } else {
                    format!("{z:.1}")
                }
            )
        })
    };
    if let Some(a) = account {
        lines.push(Line::from(vec![label(th, "account"), Span::raw(a)]));
    }
    lines.push(Line::from(vec![
        label(th, "drivers"),
        Span::raw(cells.text(k.top_features).if_empty("–")),
    ]));
}

/// The detail pane's bucket, severity, status, note and summary (or, while categorizing,
/// what is at work).
fn category_lines(app: &App, d: &Loaded, cells: &Cells<'_>, lines: &mut Vec<Line<'_>>) {
    let th = &app.theme;
    let (t, r_) = (cells.t, cells.r_);
    let k = &t.known;
    // Until the categorization's stage ends: which part of it is at work (with the LLM's
    // answers so far).
    let pending = match app.loading.as_ref().and_then(|l| l.progress) {
        Some(p) if p.stage == Stage::CategorizeLlm => format!(
            "generating… ({} of {} LLM answers received)",
            p.done, p.total
        ),
        _ => "categorizing…".to_string(),
    };
    if d.complete || !cells.text(k.bucket).is_empty() {
        let conf = t
            .num(k.confidence, r_)
            .map_or(String::new(), |v| format!(" (confidence {v:.2})"));
        let by = cells.text(k.categorized_by);
        let rule = cells.text(k.rule);
        lines.push(Line::from(vec![
            label(th, "bucket"),
            Span::styled(cells.text(k.bucket).if_empty("–"), th.accent),
            Span::raw(conf),
            Span::styled(
                if rule.is_empty() {
                    String::new()
                } else {
                    format!(" · {by} {rule}")
                },
                th.dim,
            ),
        ]));
        let sev = cells.text(k.severity);
        let status = cells.text(k.status);
        lines.push(Line::from(vec![
            label(th, "severity"),
            Span::styled(sev.clone().if_empty("–"), th.severity(&sev)),
            Span::styled("   status ", th.dim),
            Span::styled(status.clone().if_empty("no case"), th.status(&status)),
        ]));
        let note = cells.text(k.note);
        if !note.is_empty() {
            lines.push(Line::from(vec![
                label(th, "note"),
                Span::styled(note, th.dim),
            ]));
        }
        lines.push(Line::from(vec![
            label(th, "summary"),
            Span::raw(cells.text(k.summary).if_empty("– (not flagged)")),
        ]));
    } else {
        lines.push(Line::from(vec![
            label(th, "bucket"),
            Span::styled(pending.clone(), th.dim),
        ]));
        lines.push(Line::from(vec![
            label(th, "summary"),
            Span::styled(pending, th.dim),
        ]));
    }
}

/// The detail pane's audit trail: the case's last six events, newest first.
fn trail_lines(app: &App, lines: &mut Vec<Line<'_>>) {
    let th = &app.theme;
    lines.push(Line::from(Span::styled("audit trail", th.dim)));
    match &app.trail {
        Some(tr) => match &tr.events {
            Ok(events) => {
                for e in events.iter().rev().take(6) {
                    lines.push(Line::from(vec![
                        Span::styled(format!("  {} ", e.at.format("%Y-%m-%d %H:%M")), th.dim),
                        Span::raw(format!(
                            "{} ({}) {} {} → {}",
                            e.user,
                            e.role.map_or("system".to_string(), |r| r.to_string()),
                            e.action,
                            e.from.map_or("-", |s| s.as_str()),
                            e.to.map_or("-", |s| s.as_str()),
                        )),
                        Span::styled(
                            e.reason
                                .as_deref()
                                .map(|r| format!(" — {r}"))
                                .unwrap_or_default(),
                            th.dim,
                        ),
                    ]));
                }
            }
            Err(e) => lines.push(Line::from(Span::styled(format!("  {e}"), th.error))),
        },
        None => lines.push(Line::from(Span::styled("  no case", th.dim))),
    }
}

fn chart(frame: &mut Frame<'_>, app: &App, d: &Loaded, row: usize, r: Rect) {
    let th = &app.theme;
    if r.width < 16 || r.height < 5 {
        return;
    }
    let t = &d.table;
    let rows = d.account_rows(row);
    let past = d.account_history(row);
    let pair = t.known.lhs.is_some() && t.known.rhs.is_some();
    // The history's records first, then this file's, one x step per record.
    let series = |c: Option<usize>,
                  hist: &dyn Fn(&crate::tui::results::HistoryPoint) -> Option<f64>|
     -> Vec<(f64, f64)> {
        past.iter()
            .map(hist)
            .chain(rows.iter().map(|x| t.num(c, *x as usize)))
            .enumerate()
            .filter_map(|(i, v)| v.map(|v| (i as f64, v)))
            .collect()
    };
    let (a, b) = if pair {
        (
            series(t.known.lhs, &|p| Some(p.lhs)),
            series(t.known.rhs, &|p| p.rhs),
        )
    } else {
        (series(t.known.difference, &|p| Some(p.lhs)), Vec::new())
    };
    let title = if app.live.is_some() {
        format!(" balance history · {} records received ", rows.len())
    } else if past.is_empty() {
        format!(" balance history · {} records in this file ", rows.len())
    } else {
        format!(
            " balance history · {} history + {} current records ",
            past.len(),
            rows.len()
        )
    };
    let block = Block::default()
        .borders(Borders::LEFT | Borders::TOP)
        .border_style(th.border)
        .title(Span::styled(title, th.dim));
    if a.len() < 2 {
        frame.render_widget(
            Paragraph::new("Too few records of this account to chart.")
                .style(th.dim)
                .block(block),
            r,
        );
        return;
    }
    let ys = a.iter().chain(b.iter()).map(|p| p.1);
    let (lo, hi) = ys.fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| {
        (l.min(v), h.max(v))
    });
    let pad = ((hi - lo).abs() * 0.05).max(1.0);
    let first = match past.first() {
        Some(p) => p.date.clone(),
        None => t
            .text(t.known.date, rows.first().map_or(0, |x| *x as usize))
            .to_string(),
    };
    let last = t
        .text(t.known.date, rows.last().map_or(0, |x| *x as usize))
        .to_string();
    let names =
        |c: Option<usize>, dflt: &str| t.col(c).map_or(dflt.to_string(), |c| c.title.clone());
    let mut sets = vec![
        Dataset::default()
            .name(if b.is_empty() {
                names(t.known.difference, "difference")
            } else {
                names(t.known.lhs, "lhs")
            })
            .marker(Marker::Braille)
            .graph_type(GraphType::Line)
            .style(Style::default().fg(th.chart_lhs))
            .data(&a),
    ];
    if !b.is_empty() {
        sets.push(
            Dataset::default()
                .name(names(t.known.rhs, "rhs"))
                .marker(Marker::Braille)
                .graph_type(GraphType::Line)
                .style(Style::default().fg(th.chart_rhs))
                .data(&b),
        );
    }
    let chart = Chart::new(sets)
        .block(block)
        .x_axis(
            Axis::default()
                .bounds([0.0, (past.len() + rows.len()).saturating_sub(1) as f64])
                .labels([Span::raw(first), Span::raw(last)])
                .style(th.dim),
        )
        .y_axis(
            Axis::default()
                .bounds([lo - pad, hi + pad])
                .labels([Span::raw(compact(lo)), Span::raw(compact(hi))])
                .style(th.dim),
        );
    frame.render_widget(chart, r);
}

/// A short amount for an axis: 1.2M, 350k, 12.
fn compact(v: f64) -> String {
    let a = v.abs();
    let (x, suffix) = if a >= 1e9 {
        (v / 1e9, "B")
    } else if a >= 1e6 {
        (v / 1e6, "M")
    } else if a >= 1e3 {
        (v / 1e3, "k")
    } else {
        (v, "")
    };
    if suffix.is_empty() {
        format!("{x:.0}")
    } else {
        format!("{x:.1}{suffix}")
    }
}

trait IfEmpty {
    fn if_empty(self, alt: &str) -> String;
}

impl IfEmpty for String {
    fn if_empty(self, alt: &str) -> String {
        if self.is_empty() {
            alt.to_string()
        } else {
            self
        }
    }
}
