//! Light and dark themes: every colour the UI uses, by what it means.

use ratatui::style::{Color, Modifier, Style};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThemeName {
    Dark,
    Light,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Theme {
    pub name: ThemeName,
    pub base: Style,
    pub header: Style,
    pub bar: Style,
    pub cursor: Style,
    pub marked: Style,
    pub dim: Style,
    pub accent: Style,
    pub key: Style,
    pub error: Style,
    pub ok: Style,
    pub border: Style,
    pub chart_lhs: Color,
    pub chart_rhs: Color,
}

impl Theme {
    pub fn by_name(name: &str) -> Theme {
        if name.eq_ignore_ascii_case("light") {
            Theme::light()
        } else {
            Theme::dark()
        }
    }

    pub fn dark() -> Theme {
        Theme {
            name: ThemeName::Dark,
            base: Style::default().fg(Color::Gray).bg(Color::Black),
            header: Style::default()
                .fg(Color::White)
                .bg(Color::DarkGray)
                .add_modifier(Modifier::BOLD),
            bar: Style::default().fg(Color::Black).bg(Color::Gray),
            cursor: Style::default()
                .bg(Color::Blue)
                .fg(Color::White)
                .add_modifier(Modifier::BOLD),
            marked: Style::default().bg(Color::Magenta).fg(Color::White),
            dim: Style::default().fg(Color::DarkGray),
            accent: Style::default().fg(Color::Cyan),
            key: Style::default()
                .fg(Color::Yellow)
                .add_modifier(Modifier::BOLD),
            error: Style::default()
                .fg(Color::LightRed)
                .add_modifier(Modifier::BOLD),
            ok: Style::default().fg(Color::LightGreen),
            border: Style::default().fg(Color::DarkGray),
            chart_lhs: Color::Cyan,
            chart_rhs: Color::Yellow,
        }
    }

    pub fn light() -> Theme {
        Theme {
            name: ThemeName::Light,
            base: Style::default().fg(Color::Black).bg(Color::White),
            header: Style::default()
                .fg(Color::Black)
                .bg(Color::Gray)
                .add_modifier(Modifier::BOLD),
            bar: Style::default().fg(Color::White).bg(Color::DarkGray),
            cursor: Style::default()
                .bg(Color::LightBlue)
                .fg(Color::Black)
                .add_modifier(Modifier::BOLD),
            marked: Style::default().bg(Color::LightMagenta).fg(Color::Black),
            dim: Style::default().fg(Color::DarkGray),
            accent: Style::default().fg(Color::Blue),
            key: Style::default()
                .fg(Color::Magenta)
                .add_modifier(Modifier::BOLD),
            error: Style::default().fg(Color::Red).add_modifier(Modifier::BOLD),
            ok: Style::default().fg(Color::Green),
            border: Style::default().fg(Color::Gray),
            chart_lhs: Color::Blue,
            chart_rhs: Color::Red,
        }
    }

    pub fn toggled(&self) -> Theme {
        match self.name {
            ThemeName::Dark => Theme::light(),
            ThemeName::Light => Theme::dark(),
        }
    }

    /// The colour of a severity (`Low` … `Critical`).
    pub fn severity(&self, s: &str) -> Style {
        let dark = self.name == ThemeName::Dark;
        match s {
            "Critical" => Style::default()
                .fg(if dark { Color::LightRed } else { Color::Red })
                .add_modifier(Modifier::BOLD),
            "High" => Style::default().fg(if dark { Color::LightRed } else { Color::Red }),
            "Medium" => Style::default().fg(if dark {
                Color::Yellow
            } else {
                Color::Rgb(160, 110, 0)
            }),
            "Low" => Style::default().fg(Color::Green),
            _ => Style::default(),
        }
    }

    /// The colour of a case status (short name: `pending`, `accepted`, …).
    pub fn status(&self, s: &str) -> Style {
        let dark = self.name == ThemeName::Dark;
        match s {
            "accepted" => Style::default().fg(if dark {
                Color::LightGreen
            } else {
                Color::Green
            }),
            "rejected" => self.dim.add_modifier(Modifier::CROSSED_OUT),
            "proposed" => Style::default().fg(if dark { Color::LightCyan } else { Color::Cyan }),
            "approved" => Style::default().fg(if dark { Color::LightBlue } else { Color::Blue }),
            "returned" => Style::default().fg(if dark {
                Color::LightMagenta
            } else {
                Color::Magenta
            }),
            _ => Style::default(),
        }
    }
}
