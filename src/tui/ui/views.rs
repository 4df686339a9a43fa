//! The status bar, the loading and error screens, the file picker, the clusters, the
//! approval queue and the outbox.

use super::{cell, list_offset};
use crate::dispatch::OutboxItem;
use crate::pipeline::Stage;
use crate::text::thousands;
use crate::tui::app::App;
use crate::tui::theme::Theme;
use crate::tui::worker::LoadError;
use ratatui::Frame;
use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::Modifier;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Gauge, Paragraph, Wrap};

pub fn status_bar(buf: &mut Buffer, app: &App, r: Rect) {
    let th = &app.theme;
    buf.set_style(r, th.bar);
    let mut left = String::from(" breakdesk");
    let mut right = String::new();
    if app.picker.is_some() {
        left.push_str(" · open a file");
    } else if let Some(d) = &app.data {
        left.push_str(&format!(
            " · {} · {} ({})",
            app.view.title(),
            d.source,
            d.info.profile
        ));
        let filters = status_filters(app);
        if !filters.is_empty() {
            left.push_str(&format!(" · [{}]", filters.join(", ")));
        }
        if let Some(l) = &app.loading {
            right.push_str(&progress_text(l));
            right.push_str(" · ");
        }
        if app.exporter.running() > 0 {
            right.push_str("exporting… · ");
        }
        if let Some(l) = &app.live {
            right.push_str(&l.state.label());
            right.push_str(" · ");
        }
        view_position(app, d, &mut right);
    } else if let Some(l) = &app.loading {
        left.push_str(&format!(" · {}", l.source));
        right.push_str(&progress_text(l));
    }
    right.push_str(&format!(" · {} ({}) ", app.actor.user, app.actor.role));
    let rw = right.chars().count() as u16;
    let lw = r.width.saturating_sub(rw + 1);
    buf.set_stringn(
        r.x,
        r.y,
        &left,
        lw as usize,
        th.bar.add_modifier(Modifier::BOLD),
    );
    buf.set_stringn(
        r.right().saturating_sub(rw),
        r.y,
        &right,
        rw as usize,
        th.bar,
    );
}

/// The table's filters in force, as the status bar lists them.
fn status_filters(app: &App) -> Vec<String> {
    let q = &app.table.quick;
    let mut filters = Vec::new();
    if let Some(f) = &app.table.filter {
        filters.push(f.text().to_string());
    }
    if let Some((_, ticket)) = &app.table.case {
        filters.push(format!("case {ticket}"));
    }
    if let Some(s) = &q.status {
        filters.push(format!("status={s}"));
    }
    if let Some(s) = &q.bucket {
        filters.push(format!("bucket={s}"));
    }
    if let Some(s) = &q.severity {
        filters.push(format!("severity={s}"));
    }
    if let Some(k) = q.cluster {
        filters.push(format!("cluster={k}"));
    }
    if app.table.all_rows {
        filters.push("all rows".into());
    }
    filters
}

/// Where the view stands (position, counts), appended to the status bar's right side.
fn view_position(app: &App, d: &crate::tui::results::Loaded, right: &mut String) {
    match app.view {
        crate::tui::message::View::Queue => {
            let n = app.queue.order.len();
            let pos = if n == 0 { 0 } else { app.queue.cursor + 1 };
            right.push_str(&format!("Case {pos}/{n}"));
            if app.queue.mine {
                right.push_str(" · mine");
            }
            let overdue = d.queue.iter().filter(|c| c.overdue(app.today)).count();
            if overdue > 0 {
                right.push_str(&format!(" · {overdue} overdue"));
            }
            if !app.queue.marks.is_empty() {
                right.push_str(&format!(" · {} marked", app.queue.marks.len()));
            }
        }
        crate::tui::message::View::Summary => match &d.summary {
            Some(s) => right.push_str(&format!(
                "cycle as of {}",
                s.as_of.as_deref().unwrap_or("–")
            )),
            None => right.push_str("cycle not ended"),
        },
        crate::tui::message::View::Table => {
            let n = app.table.view.len();
            let pos = if n == 0 { 0 } else { app.table.cursor + 1 };
            right.push_str(&format!("Row {pos}/{n}"));
            if app.table.marked > 0 {
                right.push_str(&format!(" · {} marked", app.table.marked));
            }
        }
        crate::tui::message::View::Clusters => {
            right.push_str(&format!("{} clusters", d.clusters.len()));
        }
        crate::tui::message::View::Approvals => {
            right.push_str(&format!("{} waiting", app.approvals.len()));
        }
        crate::tui::message::View::Outbox => {
            let open = app.outbox.iter().filter(|i| !i.is_settled()).count();
            let parked = app
                .outbox
                .iter()
                .filter(|i| i.status.name() == "parked")
                .count();
            right.push_str(&format!(
                "{} item(s) · {open} to send · {parked} parked",
                app.outbox.len()
            ));
        }
    }
}

fn progress_text(l: &crate::tui::app::Loading) -> String {
    let secs = l.elapsed.as_secs_f64();
    match &l.progress {
        Some(p) => format!(
            "{} {}/{} · {secs:.1} s · esc cancels",
            stage_name(p.stage),
            p.done,
            p.total
        ),
        None => format!("starting · {secs:.1} s"),
    }
}

/// A stage as the status bar names it: short, but saying when the LLM is at work (its count is
/// then answers, not steps).
fn stage_name(stage: Stage) -> &'static str {
    match stage {
        Stage::CategorizeLlm => "categorizing (LLM)",
        s => s.label().split(" (").next().unwrap_or(""),
    }
}

pub fn loading(frame: &mut Frame<'_>, app: &App, r: Rect) {
    let th = &app.theme;
    let Some(l) = &app.loading else { return };
    let boxr = r.centered(Constraint::Max(70), Constraint::Length(9));
    frame.render_widget(Clear, boxr);
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(th.border)
        .title(Span::styled(
            " Analysing ",
            th.accent.add_modifier(Modifier::BOLD),
        ));
    let inner = block.inner(boxr);
    frame.render_widget(block, boxr);
    let (stage, ratio, steps) = match &l.progress {
        Some(p) => (
            p.stage.label().to_string(),
            if p.total > 0 {
                p.done as f64 / p.total as f64
            } else {
                0.0
            },
            format!("{}/{}", p.done, p.total),
        ),
        None => ("starting".to_string(), 0.0, String::new()),
    };
    let lines = vec![
        Line::from(vec![
            Span::styled("file     ", th.dim),
            Span::raw(l.source.clone()),
        ]),
        Line::from(vec![Span::styled("stage    ", th.dim), Span::raw(stage)]),
        Line::from(vec![
            Span::styled("elapsed  ", th.dim),
            Span::raw(format!("{:.1} s", l.elapsed.as_secs_f64())),
        ]),
        Line::from(""),
    ];
    frame.render_widget(Paragraph::new(lines), inner);
    let g = Rect {
        y: inner.y + 4,
        height: 1,
        ..inner
    };
    frame.render_widget(
        Gauge::default()
            .gauge_style(th.accent)
            .ratio(ratio.clamp(0.0, 1.0))
            .label(steps),
        g,
    );
    let hint = Rect {
        y: inner.y + 6,
        height: 1,
        ..inner
    };
    frame.render_widget(
        Paragraph::new(Span::styled(
            "Results appear as the stages finish. esc cancels.",
            th.dim,
        )),
        hint,
    );
}

pub fn error(frame: &mut Frame<'_>, app: &App, e: &LoadError, r: Rect) {
    let th = &app.theme;
    let boxr = r.centered(Constraint::Max(90), Constraint::Max(14));
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(th.error)
        .title(Span::styled(format!(" {} ", e.title), th.error));
    let mut text: Vec<Line<'_>> = e
        .message
        .lines()
        .map(|l| Line::from(Span::raw(l.to_string())))
        .collect();
    text.extend([
        Line::from(""),
        Line::from(Span::styled(
            "enter or esc: pick another file · q: quit",
            th.dim,
        )),
    ]);
    frame.render_widget(
        Paragraph::new(text).wrap(Wrap { trim: false }).block(block),
        boxr,
    );
}

pub fn picker(buf: &mut Buffer, app: &App, r: Rect) {
    let th = &app.theme;
    let Some(p) = &app.picker else { return };
    buf.set_style(Rect { height: 1, ..r }, th.header);
    let hist = p
        .history
        .as_ref()
        .map(|h| format!(" · history: {}", h.display()))
        .unwrap_or_default();
    buf.set_stringn(
        r.x,
        r.y,
        format!(" {}{hist}", p.dir.display()),
        r.width as usize,
        th.header,
    );
    let body = Rect {
        y: r.y + 1,
        height: r.height.saturating_sub(1),
        ..r
    };
    if let Some(e) = &p.error {
        note_line(buf, body, e, th.error);
        return;
    }
    if p.entries.is_empty() {
        note_line(
            buf,
            body,
            "No CSV or Excel files here. backspace goes up.",
            th.dim,
        );
        return;
    }
    let off = list_offset(p.cursor, body.height as usize);
    for (k, e) in p
        .entries
        .iter()
        .skip(off)
        .take(body.height as usize)
        .enumerate()
    {
        let y = body.y + k as u16;
        let mut style = if e.is_dir { th.accent } else { th.base };
        if p.history.as_ref() == Some(&e.path) {
            style = style.patch(th.dim);
        }
        if off + k == p.cursor {
            style = style.patch(th.cursor);
        }
        let tag = if p.history.as_ref() == Some(&e.path) {
            "  (history)"
        } else {
            ""
        };
        cell(
            buf,
            body.x,
            y,
            body.width,
            &format!("  {}{tag}", e.name),
            false,
            style,
        );
    }
}

/// A list view: its header ([`header_row`]), then the visible window of rows around `cursor`
/// (the cursor row highlighted), or the line `empty` when there are no items. `row` gives each
/// item's cells and, optionally, one column with its own style (applied off the cursor row).
#[allow(clippy::too_many_arguments)]
fn list_rows<T, const N: usize>(
    buf: &mut Buffer,
    r: Rect,
    widths: &[(u16, &str, bool); N],
    items: &[T],
    cursor: usize,
    empty: &str,
    th: &crate::tui::theme::Theme,
    row: impl Fn(&T) -> ([String; N], Option<(usize, Style)>),
) {
    let body = header_row(buf, r, widths, th);
    if items.is_empty() {
        return note_line(buf, body, empty, th.dim);
    }
    let off = list_offset(cursor, body.height as usize);
    for (k, item) in items
        .iter()
        .skip(off)
        .take(body.height as usize)
        .enumerate()
    {
        let y = body.y + k as u16;
        let on_cursor = off + k == cursor;
        let style = if on_cursor { th.cursor } else { th.base };
        buf.set_style(
            Rect {
                y,
                height: 1,
                ..body
            },
            style,
        );
        let (values, special) = row(item);
        let mut x = r.x + 1;
        for (i, ((w, _, right), v)) in widths.iter().zip(values).enumerate() {
            if x >= r.right() {
                break;
            }
            let s = match special {
                Some((col, st)) if col == i && !on_cursor => style.patch(st),
                _ => style,
            };
            cell(buf, x, y, (*w).min(r.right() - x), &v, *right, s);
            x += w + 1;
        }
    }
}

pub fn clusters(buf: &mut Buffer, app: &App, r: Rect) {
    let th = &app.theme;
    let Some(d) = &app.data else { return };
    let widths: [(u16, &str, bool); 8] = [
        (8, "cluster", true),
        (8, "rows", true),
        (8, "flagged", true),
        (7, "share", true),
        (18, "total |difference|", true),
        (16, "mean difference", true),
        (26, "dominant bucket", false),
        (40, "top accounts", false),
    ];
    list_rows(
        buf,
        r,
        &widths,
        &d.clusters,
        app.cluster_cursor,
        "No clusters.",
        th,
        |c| {
            let bucket = match &c.dominant_bucket {
                Some((b, share)) => format!("{b} ({:.0}%)", share * 100.0),
                None if d.complete => "–".to_string(),
                None => "…".to_string(),
            };
            let accounts = c
                .top_accounts
                .iter()
                .take(3)
                .map(|(a, n)| format!("{a} ({n})"))
                .collect::<Vec<_>>()
                .join(", ");
            let values = [
                c.cluster.to_string(),
                c.size.to_string(),
                c.anomalies.to_string(),
                format!("{:.1}%", c.anomaly_share * 100.0),
                thousands(c.total_abs_difference, 2),
                thousands(c.mean_difference, 2),
                bucket,
                accounts,
            ];
            (values, None)
        },
    );
}

/// Draws a list view's header (title, width, right-aligned) on the first line of `r`; returns
/// the rest of `r`, where the rows go.
pub(super) fn header_row(
    buf: &mut Buffer,
    r: Rect,
    widths: &[(u16, &str, bool)],
    th: &Theme,
) -> Rect {
    buf.set_style(Rect { height: 1, ..r }, th.header);
    let mut x = r.x + 1;
    for &(w, t, right) in widths {
        if x >= r.right() {
            break;
        }
        cell(buf, x, r.y, w.min(r.right() - x), t, right, th.header);
        x += w + 1;
    }
    Rect {
        y: r.y + 1,
        height: r.height.saturating_sub(1),
        ..r
    }
}

pub fn approvals(buf: &mut Buffer, app: &App, r: Rect) {
    let th = &app.theme;
    let widths: [(u16, &str, bool); 8] = [
        (22, "ticket", false),
        (22, "key", false),
        (10, "date", false),
        (16, "bucket", false),
        (8, "severity", false),
        (16, "difference", true),
        (22, "proposed by", false),
        (60, "summary", false),
    ];
    list_rows(
        buf,
        r,
        &widths,
        &app.approvals,
        app.approval_cursor,
        "No auto-resolutions are waiting for approval.",
        th,
        |c| {
            let values = [
                c.ticket.clone(),
                c.key.clone(),
                c.last_date.to_string(),
                c.bucket.clone(),
                c.severity.clone(),
                thousands(c.difference, 2),
                c.proposed_by.clone().unwrap_or_default(),
                c.summary.clone(),
            ];
            let severity = th.severity(&c.severity);
            (values, Some((4, severity)))
        },
    );
}

/// When an outbox time is shown: local time, to the minute.
pub(super) fn when(t: chrono::DateTime<chrono::Utc>) -> String {
    t.with_timezone(&chrono::Local)
        .format("%Y-%m-%d %H:%M")
        .to_string()
}

/// The outbox: the list of items, and below it the detail of the item under the cursor.
pub fn outbox(frame: &mut Frame<'_>, app: &App, area: Rect) {
    let list = super::outbox_list_area(app, area);
    outbox_list(frame.buffer_mut(), app, list);
    let main = super::main_area(area);
    if let Some(item) = app.outbox.get(app.outbox_cursor)
        && main.bottom() > list.bottom()
    {
        let rest = Rect {
            y: list.bottom(),
            height: main.bottom() - list.bottom(),
            ..main
        };
        outbox_detail(frame, app, item, rest);
    }
}

fn outbox_list(buf: &mut Buffer, app: &App, r: Rect) {
    use crate::dispatch::ItemStatus;
    let th = &app.theme;
    let widths: [(u16, &str, bool); 9] = [
        (5, "id", true),
        (8, "channel", false),
        (10, "status", false),
        (5, "tries", true),
        (5, "cases", true),
        (16, "created", false),
        (16, "next attempt", false),
        (50, "result / error", false),
        (60, "tickets", false),
    ];
    list_rows(
        buf,
        r,
        &widths,
        &app.outbox,
        app.outbox_cursor,
        "The outbox is empty: e emails the accepted cases, J opens Jira issues, W posts webhook tasks.",
        th,
        |item| {
            let next = match &item.status {
                ItemStatus::Queued => "now".to_string(),
                ItemStatus::RetryWait { next_attempt_at } => when(*next_attempt_at),
                ItemStatus::Sending { .. } => "sending".to_string(),
                _ => String::new(),
            };
            let result = match &item.status {
                ItemStatus::Parked { reason, .. } => reason.clone(),
                ItemStatus::RetryWait { .. } => item.last_error.clone().unwrap_or_default(),
                ItemStatus::Sent { at } => match &item.result {
                    Some(r) => format!("{r} ({})", when(*at)),
                    None => format!("sent {}", when(*at)),
                },
                ItemStatus::Cancelled { .. } => "cancelled".to_string(),
                _ => item.title.clone(),
            };
            let values = [
                format!("#{}", item.id),
                item.channel.to_string(),
                item.status.name().to_string(),
                item.attempts.to_string(),
                item.case_ids.len().to_string(),
                when(item.created_at),
                next,
                result,
                item.tickets.join(", "),
            ];
            let status_style = match &item.status {
                ItemStatus::Sent { .. } => th.ok,
                ItemStatus::Parked { .. } | ItemStatus::RetryWait { .. } => th.error,
                ItemStatus::Cancelled { .. } => th.dim,
                _ => th.base,
            };
            (values, Some((2, status_style)))
        },
    );
}

/// Everything about one outbox item: channel, status, attempts, times, where it goes, the
/// result or the whole last error (wrapped), and the cases it carries.
fn outbox_detail(frame: &mut Frame<'_>, app: &App, item: &OutboxItem, r: Rect) {
    let th = &app.theme;
    let block = Block::default()
        .borders(Borders::TOP)
        .border_style(th.border)
        .title(Span::styled(
            format!(" #{} · {} · {} ", item.id, item.channel, item.title),
            th.accent.add_modifier(Modifier::BOLD),
        ));
    let inner = block.inner(r);
    frame.render_widget(block, r);
    let mut lines: Vec<Line<'_>> = Vec::new();
    outbox_status_lines(app, item, &mut lines);
    outbox_target_lines(app, item, &mut lines);
    outbox_outcome_lines(th, item, &mut lines);
    outbox_case_lines(app, item, &mut lines);
    frame.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), inner);
}

fn outbox_label(th: &Theme, s: &str) -> Span<'static> {
    Span::styled(format!("{s:<12} "), th.dim)
}

fn outbox_row(th: &Theme, name: &str, value: String) -> Line<'static> {
    Line::from(vec![outbox_label(th, name), Span::raw(value)])
}

/// The outbox item's status, tries, next attempt and queueing.
fn outbox_status_lines(app: &App, item: &OutboxItem, lines: &mut Vec<Line<'_>>) {
    use crate::dispatch::ItemStatus;
    let th = &app.theme;
    let (status, status_style) = match &item.status {
        ItemStatus::Queued => ("queued: sent at the next attempt".to_string(), th.base),
        ItemStatus::Sending { since } => (format!("sending since {}", when(*since)), th.base),
        ItemStatus::RetryWait { .. } => (
            "retry_wait: failed, will be tried again".to_string(),
            th.error,
        ),
        ItemStatus::Sent { at } => (format!("sent {}", when(*at)), th.ok),
        ItemStatus::Parked { at, .. } => (
            format!("parked {} (R retries, X cancels)", when(*at)),
            th.error,
        ),
        ItemStatus::Cancelled { at } => (format!("cancelled {}", when(*at)), th.dim),
    };
    lines.push(Line::from(vec![
        outbox_label(th, "status"),
        Span::styled(status, status_style),
    ]));
    lines.push(outbox_row(
        th,
        "tries",
        format!(
            "{} of at most {} ([outbox] max_attempts)",
            item.attempts, app.cfg.outbox.max_attempts
        ),
    ));
    lines.push(outbox_row(
        th,
        "next attempt",
        match &item.status {
            ItemStatus::Queued => "now".to_string(),
            ItemStatus::RetryWait { next_attempt_at } => when(*next_attempt_at),
            _ => "–".to_string(),
        },
    ));
    lines.push(outbox_row(
        th,
        "queued",
        format!(
            "{} by {} ({}); last change {}",
            when(item.created_at),
            item.queued_by.user,
            item.queued_by.role,
            when(item.updated_at)
        ),
    ));
}

/// Where the outbox item goes, by channel.
fn outbox_target_lines(app: &App, item: &OutboxItem, lines: &mut Vec<Line<'_>>) {
    use crate::dispatch::Payload;
    let th = &app.theme;
    let row = |name: &str, value: String| outbox_row(th, name, value);
    match &item.payload {
        Payload::Email(p) => {
            lines.push(row("from", p.from.clone()));
            lines.push(row("to", p.recipients.join(", ")));
            lines.push(row("subject", p.subject.clone()));
            lines.push(row("message id", p.message_id.clone()));
        }
        Payload::Jira(p) => {
            let project = p.body["fields"]["project"]["key"]
                .as_str()
                .unwrap_or("?")
                .to_string();
            lines.push(row(
                "target",
                format!(
                    "Jira {} project {project} (API v{})",
                    app.cfg.jira.base_url.trim(),
                    p.api_version
                ),
            ));
            lines.push(row("summary", p.summary.clone()));
            lines.push(row("label", p.label.clone()));
        }
        Payload::Webhook(p) => {
            lines.push(row(
                "target",
                format!("POST {}", app.cfg.webhook.url.trim()),
            ));
            lines.push(row("task", p.task_name.clone()));
            if let Some(due) = p.body["due_date"].as_str() {
                lines.push(row("due", due.to_string()));
            }
            lines.push(row("idempotency", p.idempotency_key.clone()));
        }
    }
}

/// The outbox item's result, response, parking reason and last error.
fn outbox_outcome_lines(th: &Theme, item: &OutboxItem, lines: &mut Vec<Line<'_>>) {
    use crate::dispatch::ItemStatus;
    if let Some(res) = &item.result {
        lines.push(Line::from(vec![
            outbox_label(th, "result"),
            Span::styled(res.clone(), th.ok),
        ]));
    }
    if let Some(resp) = &item.response {
        lines.push(outbox_row(th, "response", resp.clone()));
    }
    let reason = match &item.status {
        ItemStatus::Parked { reason, .. } => Some(reason.as_str()),
        _ => None,
    };
    if let Some(reason) = reason {
        lines.push(Line::from(vec![
            outbox_label(th, "parked"),
            Span::styled(reason.to_string(), th.error),
        ]));
    }
    if let Some(e) = &item.last_error
        && !reason.is_some_and(|r| r.contains(e.as_str()))
    {
        lines.push(Line::from(vec![
            outbox_label(th, "last error"),
            Span::styled(e.clone(), th.error),
        ]));
    }
}

/// The cases the outbox item carries (its tickets while they are not loaded).
fn outbox_case_lines(app: &App, item: &OutboxItem, lines: &mut Vec<Line<'_>>) {
    let th = &app.theme;
    lines.push(Line::from(Span::styled(
        format!("cases ({})", item.case_ids.len()),
        th.dim,
    )));
    match app
        .outbox_cases
        .as_ref()
        .filter(|c| c.item_id == item.id)
        .map(|c| &c.cases)
    {
        Some(Ok(cases)) => {
            for c in cases {
                lines.push(Line::from(vec![
                    Span::raw(format!("  {} ", c.ticket)),
                    Span::raw(format!("{} · {} · ", c.key, c.last_date)),
                    Span::styled(c.bucket.clone(), th.accent),
                    Span::raw(" · "),
                    Span::styled(c.severity.clone(), th.severity(&c.severity)),
                    Span::raw(format!(
                        " · difference {} · {}",
                        thousands(c.difference, 2),
                        c.status.as_str()
                    )),
                ]));
            }
        }
        Some(Err(e)) => {
            lines.push(Line::from(Span::styled(format!("  {e}"), th.error)));
            for t in &item.tickets {
                lines.push(Line::from(format!("  {t}")));
            }
        }
        None => {
            for t in &item.tickets {
                lines.push(Line::from(format!("  {t}")));
            }
        }
    }
}

/// One line of text on the first row of a list's body: why it is empty, or what went wrong.
fn note_line(buf: &mut Buffer, body: Rect, text: &str, style: ratatui::style::Style) {
    buf.set_stringn(body.x + 1, body.y, text, body.width as usize, style);
}
