//! Popups over the view: the help (from the keymap), the command palette (from the keymap),
//! and the confirm dialog.

use crate::tui::app::{App, Confirm};
use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::Modifier;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};

fn popup(frame: &mut Frame<'_>, app: &App, r: Rect, title: &str) -> Rect {
    frame.render_widget(Clear, r);
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(app.theme.accent)
        .style(app.theme.base)
        .title(Span::styled(
            format!(" {title} "),
            app.theme.accent.add_modifier(Modifier::BOLD),
        ));
    let inner = block.inner(r);
    frame.render_widget(block, r);
    inner
}

pub fn help(frame: &mut Frame<'_>, app: &App, scroll: u16) {
    let area = frame.area();
    let r = area.centered(Constraint::Percentage(90), Constraint::Percentage(86));
    let inner = popup(frame, app, r, "Help — keys (any other key closes)");
    let th = &app.theme;
    let mut lines: Vec<Line<'_>> = Vec::new();
    for (ctx, rows) in app.keymap.help() {
        if rows.is_empty() {
            continue;
        }
        lines.push(Line::from(Span::styled(
            ctx.title(),
            th.accent.add_modifier(Modifier::BOLD),
        )));
        for (keys, name, help) in rows {
            lines.push(Line::from(vec![
                Span::styled(format!("  {keys:<16}"), th.key),
                Span::styled(format!("{name:<16}"), th.dim),
                Span::raw(help),
            ]));
        }
        lines.push(Line::from(""));
    }
    lines.push(Line::from(Span::styled(
        "Keys can be changed in the config: [tui.keys] accept = \"y\" (see `breakdesk config`).",
        th.dim,
    )));
    frame.render_widget(Paragraph::new(lines).scroll((scroll, 0)), inner);
}

pub fn palette(frame: &mut Frame<'_>, app: &App, query: &str, cursor: usize) {
    let area = frame.area();
    let h = (area.height * 3 / 5).max(6);
    let r = Rect {
        y: area.y + 2,
        height: h.min(area.height.saturating_sub(2)),
        ..area.centered_horizontally(Constraint::Percentage(70))
    };
    let inner = popup(frame, app, r, "Command palette");
    let th = &app.theme;
    let entries = app.keymap.palette(app.ctx(), query);
    let cursor = cursor.min(entries.len().saturating_sub(1));
    let mut lines = vec![Line::from(vec![
        Span::styled(": ", th.key),
        Span::raw(format!("{query}█")),
    ])];
    let room = inner.height.saturating_sub(1) as usize;
    let off = super::list_offset(cursor, room);
    for (i, b) in entries.iter().enumerate().skip(off).take(room) {
        let keys = b
            .keys
            .iter()
            .map(|k| k.label())
            .collect::<Vec<_>>()
            .join(" ");
        let style = if i == cursor { th.cursor } else { th.base };
        lines.push(Line::from(vec![
            Span::styled(format!("{:<16}", b.name), style),
            Span::styled(
                format!("{keys:<12}"),
                if i == cursor { style } else { th.key },
            ),
            Span::styled(b.help, if i == cursor { style } else { th.dim }),
        ]));
    }
    if entries.is_empty() {
        lines.push(Line::from(Span::styled("no command matches", th.dim)));
    }
    frame.render_widget(Paragraph::new(lines), inner);
}

pub fn confirm(frame: &mut Frame<'_>, app: &App, c: &Confirm) {
    let area = frame.area();
    // Room for the wrapped lines.
    let inner_w = area.width.clamp(3, 76) as usize - 2;
    let rows: usize = c
        .lines
        .iter()
        .map(|l| l.chars().count().div_ceil(inner_w).max(1))
        .sum();
    let h = rows as u16 + 2;
    let r = area.centered(Constraint::Max(76), Constraint::Length(h));
    let inner = popup(frame, app, r, &c.title);
    let lines: Vec<Line<'_>> = c.lines.iter().map(|l| Line::from(l.as_str())).collect();
    frame.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), inner);
}
