//! Pure drawing: every function here reads the app and writes the frame, nothing else. The
//! layout helpers are shared with the app (page size, mouse clicks), so both agree on where
//! things are.
//!
//! Screen: status bar (top), the view, the message or prompt line, the footer of key hints.

mod overlay;
mod queue;
mod table;
mod views;

use super::app::{App, Level, Mode};
use ratatui::Frame;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Style;

/// The view's area: everything but the status bar, the message line and the footer.
pub fn main_area(area: Rect) -> Rect {
    Rect {
        x: area.x,
        y: area.y.saturating_add(1),
        width: area.width,
        height: area.height.saturating_sub(3),
    }
}

/// The anomaly table's part of the main area (the detail pane takes the rest when open).
pub fn table_area(app: &App, area: Rect) -> Rect {
    let main = main_area(area);
    if app.table.detail {
        let table_h = (main.height * 2 / 5).max(4).min(main.height);
        Rect {
            height: table_h,
            ..main
        }
    } else {
        main
    }
}

/// The table's rows (below its header line).
pub fn table_body(app: &App, area: Rect) -> Rect {
    below_header(table_area(app, area))
}

/// The outbox's list (with its header line); the detail pane of the item under the cursor
/// takes the rest of the main area when there is an item.
pub fn outbox_list_area(app: &App, area: Rect) -> Rect {
    let main = main_area(area);
    if app.outbox.is_empty() {
        return main;
    }
    let h = (main.height * 2 / 5).max(4).min(main.height);
    Rect { height: h, ..main }
}

/// The case queue's list (with its header line); the pane of the case under the cursor takes
/// the rest of the main area when there is a case.
pub fn queue_area(app: &App, area: Rect) -> Rect {
    let main = main_area(area);
    if app.queue.order.is_empty() {
        return main;
    }
    let h = (main.height * 3 / 5).max(4).min(main.height);
    Rect { height: h, ..main }
}

/// The queue's lines (below its header line).
pub fn queue_body(app: &App, area: Rect) -> Rect {
    below_header(queue_area(app, area))
}

/// The rows of whichever list is shown (table, clusters, approvals, outbox, picker).
pub fn list_body(app: &App, area: Rect) -> Rect {
    if app.picker.is_some() {
        return below_header(main_area(area));
    }
    match app.view {
        super::message::View::Table => table_body(app, area),
        super::message::View::Queue => queue_body(app, area),
        super::message::View::Outbox => below_header(outbox_list_area(app, area)),
        _ => below_header(main_area(area)),
    }
}

/// The anomaly table's column under screen column `x` (the header and the rows share the
/// columns), if any.
pub fn table_column_at(app: &App, area: Rect, x: u16) -> Option<usize> {
    let d = app.data.as_ref()?;
    let r = table_area(app, area);
    let mut left = r.x + 2; // the mark column
    for i in table::shown_columns(app, d, r.width) {
        let w = d.table.cols[i].width;
        if x >= left && x < left + w {
            return Some(i);
        }
        left += w + 1;
    }
    None
}

fn below_header(r: Rect) -> Rect {
    Rect {
        y: r.y.saturating_add(1),
        height: r.height.saturating_sub(1),
        ..r
    }
}

/// The first entry shown of a list of `height` rows with the cursor at `cursor`.
pub fn list_offset(cursor: usize, height: usize) -> usize {
    if height == 0 || cursor < height {
        0
    } else {
        cursor + 1 - height
    }
}

/// Draws the whole screen.
pub fn draw(frame: &mut Frame<'_>, app: &App) {
    let area = frame.area();
    let buf = frame.buffer_mut();
    buf.set_style(area, app.theme.base);
    if area.height < 4 || area.width < 20 {
        buf.set_stringn(
            area.x,
            area.y,
            "breakdesk: the terminal is too small",
            area.width as usize,
            app.theme.error,
        );
        return;
    }
    views::status_bar(buf, app, Rect { height: 1, ..area });
    let main = main_area(area);
    if app.picker.is_some() {
        views::picker(buf, app, main);
    } else if let Some(e) = &app.error {
        views::error(frame, app, e, main);
    } else if app.data.is_some() {
        match app.view {
            super::message::View::Table => table::table_view(frame, app, area),
            super::message::View::Clusters => views::clusters(frame.buffer_mut(), app, main),
            super::message::View::Approvals => views::approvals(frame.buffer_mut(), app, main),
            super::message::View::Outbox => views::outbox(frame, app, area),
            super::message::View::Queue => queue::queue(frame, app, area),
            super::message::View::Summary => queue::summary(frame, app, main),
        }
    } else {
        views::loading(frame, app, main);
    }
    let buf = frame.buffer_mut();
    message_line(
        buf,
        app,
        Rect {
            y: area.bottom() - 2,
            height: 1,
            ..area
        },
    );
    footer(
        buf,
        app,
        Rect {
            y: area.bottom() - 1,
            height: 1,
            ..area
        },
    );
    match &app.mode {
        Mode::Help { scroll } => overlay::help(frame, app, *scroll),
        Mode::Palette { query, cursor } => overlay::palette(frame, app, query, *cursor),
        Mode::Confirm(c) => overlay::confirm(frame, app, c),
        Mode::Profile(p) => overlay::profile(frame, app, p),
        Mode::Prompt(_) | Mode::Normal => {}
    }
}

fn message_line(buf: &mut Buffer, app: &App, r: Rect) {
    if let Mode::Prompt(p) = &app.mode {
        let text = format!("{}: {}█", p.label, p.text);
        // Keep the end (what is being typed) in view.
        let chars: Vec<char> = text.chars().collect();
        let w = r.width as usize;
        let shown: String = chars[chars.len().saturating_sub(w)..].iter().collect();
        buf.set_stringn(r.x, r.y, shown, w, app.theme.accent);
        return;
    }
    if let Some(m) = &app.message {
        let style = match m.level {
            Level::Info => app.theme.ok,
            Level::Error => app.theme.error,
        };
        buf.set_stringn(r.x, r.y, &m.text, r.width as usize, style);
    }
}

fn footer(buf: &mut Buffer, app: &App, r: Rect) {
    buf.set_style(r, app.theme.bar);
    let hints = match &app.mode {
        Mode::Prompt(_) => vec![
            ("enter".to_string(), "ok"),
            ("esc".to_string(), "cancel"),
            ("ctrl-u".to_string(), "clear"),
        ],
        Mode::Confirm(_) => vec![("y".to_string(), "yes"), ("n".to_string(), "no")],
        Mode::Palette { .. } => vec![
            ("↑↓".to_string(), "choose"),
            ("enter".to_string(), "run"),
            ("esc".to_string(), "close"),
        ],
        Mode::Help { .. } => vec![
            ("j/k".to_string(), "scroll"),
            ("any key".to_string(), "close"),
        ],
        Mode::Profile(_) => vec![
            ("j/k".to_string(), "choose"),
            ("enter".to_string(), "filter by it"),
            ("any key".to_string(), "close"),
        ],
        Mode::Normal if app.picker.is_none() && app.data.is_none() => {
            let quit = app.keymap.keys_of(app.ctx(), super::message::Cmd::Quit);
            let back = app.keymap.keys_of(app.ctx(), super::message::Cmd::Back);
            if app.error.is_some() {
                vec![(back, "pick another file"), (quit, "quit")]
            } else {
                vec![(back, "cancel"), (quit, "quit")]
            }
        }
        Mode::Normal => app.keymap.footer(app.ctx()),
    };
    let mut x = r.x;
    for (k, name) in hints {
        let need = (k.chars().count() + name.len() + 3) as u16;
        if x + need > r.right() {
            break;
        }
        let (nx, _) = buf.set_stringn(
            x,
            r.y,
            format!(" {k}"),
            (r.right() - x) as usize,
            app.theme.bar.patch(app.theme.key),
        );
        let (nx, _) = buf.set_stringn(
            nx,
            r.y,
            format!(" {name} "),
            (r.right() - nx) as usize,
            app.theme.bar,
        );
        x = nx;
    }
}

/// Writes `text` in a cell of `width`, right-aligned or not, truncated with `…`.
pub(crate) fn cell(
    buf: &mut Buffer,
    x: u16,
    y: u16,
    width: u16,
    text: &str,
    right: bool,
    style: Style,
) {
    let w = width as usize;
    let n = text.chars().count();
    let shown: String = if n > w {
        let mut s: String = text.chars().take(w.saturating_sub(1)).collect();
        s.push('…');
        s
    } else if right {
        format!("{}{text}", " ".repeat(w - n))
    } else {
        format!("{text}{}", " ".repeat(w - n))
    };
    buf.set_stringn(x, y, shown, w, style);
}
