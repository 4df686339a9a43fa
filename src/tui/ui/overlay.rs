//! Popups over the view: the help (from the keymap), the command palette (from the keymap and
//! the saved views), and the confirm dialog.

use crate::tui::app::{App, Confirm, ProfileView};
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
    lines.push(Line::from(Span::styled(
        "Saved views: save-view names the table's filters, search, sort and column; `views` (or `view: NAME` in the palette) applies one; [tui.views] in the config ships read-only ones.",
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
    let entries = app.palette_entries(query);
    let cursor = cursor.min(entries.len().saturating_sub(1));
    let mut lines = vec![Line::from(vec![
        Span::styled(": ", th.key),
        Span::raw(format!("{query}█")),
    ])];
    let room = inner.height.saturating_sub(1) as usize;
    let off = super::list_offset(cursor, room);
    // Names are 16 wide, or as wide as the longest shown view name (up to 32).
    let width = entries
        .iter()
        .skip(off)
        .take(room)
        .map(|e| e.name.chars().count() + 1)
        .max()
        .unwrap_or(0)
        .clamp(16, 32);
    for (i, e) in entries.iter().enumerate().skip(off).take(room) {
        let style = if i == cursor { th.cursor } else { th.base };
        let name: String = e.name.chars().take(width - 1).collect();
        lines.push(Line::from(vec![
            Span::styled(format!("{name:<width$}"), style),
            Span::styled(
                format!("{:<12}", e.keys),
                if i == cursor { style } else { th.key },
            ),
            Span::styled(e.help.as_str(), if i == cursor { style } else { th.dim }),
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

/// The column profile: the values with count, share and a bar (or the numeric summary and the
/// histogram's bins), the cursor on the line `enter` filters by.
pub fn profile(frame: &mut Frame<'_>, app: &App, v: &ProfileView) {
    use crate::tui::profile::short;
    let area = frame.area();
    let r = area.centered(Constraint::Percentage(80), Constraint::Percentage(80));
    let p = &v.profile;
    let what = if p.stats.is_some() {
        "bins"
    } else {
        "distinct values"
    };
    let title = format!(
        "Profile: {} · {} rows · {} {what} · {:.0} ms",
        p.title,
        p.rows,
        p.distinct,
        v.elapsed.as_secs_f64() * 1e3
    );
    let inner = popup(frame, app, r, &title);
    let th = &app.theme;
    let mut lines: Vec<Line<'_>> = Vec::new();
    if let Some(s) = &p.stats {
        lines.push(Line::from(vec![
            Span::styled("min ", th.dim),
            Span::raw(short(s.min)),
            Span::styled("  q1 ", th.dim),
            Span::raw(short(s.q1)),
            Span::styled("  median ", th.dim),
            Span::raw(short(s.median)),
            Span::styled("  q3 ", th.dim),
            Span::raw(short(s.q3)),
            Span::styled("  max ", th.dim),
            Span::raw(short(s.max)),
            Span::styled("  mean ", th.dim),
            Span::raw(short(s.mean)),
            Span::styled(
                format!("  ({} numbers, {} empty)", s.count, s.missing),
                th.dim,
            ),
        ]));
    } else if p.entries.is_empty() {
        lines.push(Line::from(Span::styled(
            "No values among the shown rows.",
            th.dim,
        )));
    }
    let label_w = p
        .entries
        .iter()
        .map(|e| e.label.chars().count())
        .max()
        .unwrap_or(0)
        .clamp(8, 40);
    let most = p.entries.iter().map(|e| e.count).max().unwrap_or(1).max(1);
    let bar_room = (inner.width as usize).saturating_sub(label_w + 22).max(1);
    let room = (inner.height as usize).saturating_sub(lines.len() + 1);
    let off = super::list_offset(v.cursor, room);
    for (i, e) in p.entries.iter().enumerate().skip(off).take(room) {
        let share = if p.rows > 0 {
            e.count as f64 / p.rows as f64 * 100.0
        } else {
            0.0
        };
        let label: String = if e.label.chars().count() > label_w {
            let mut s: String = e.label.chars().take(label_w - 1).collect();
            s.push('…');
            s
        } else {
            e.label.clone()
        };
        let bar = "█".repeat((e.count * bar_room).div_ceil(most).min(bar_room));
        let style = if i == v.cursor { th.cursor } else { th.base };
        lines.push(Line::from(vec![
            Span::styled(
                format!("{label:<label_w$} {:>9} {share:>6.1}% ", e.count),
                style,
            ),
            Span::styled(bar, if i == v.cursor { style } else { th.accent }),
        ]));
    }
    if p.others > 0 {
        let what = if p.stats.is_some() {
            "rows without a number"
        } else {
            "rows in other values"
        };
        lines.push(Line::from(Span::styled(
            format!("{} {what}", p.others),
            th.dim,
        )));
    }
    frame.render_widget(Paragraph::new(lines), inner);
}
