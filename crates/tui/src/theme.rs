//! Every colour and style of the browser. With `NO_COLOR` set, styles keep only modifiers (bold,
//! reversed), so the screen stays readable on a monochrome terminal.

use ratatui::style::{Color, Modifier, Style};

use torchlight_store::TagKind;

/// Distinct label colours (the Tableau 10 palette); labels beyond ten reuse them.
const PALETTE: [Color; 10] = [
    Color::Rgb(78, 121, 167),
    Color::Rgb(242, 142, 43),
    Color::Rgb(225, 87, 89),
    Color::Rgb(118, 183, 178),
    Color::Rgb(89, 161, 79),
    Color::Rgb(237, 201, 72),
    Color::Rgb(176, 122, 161),
    Color::Rgb(255, 157, 167),
    Color::Rgb(156, 117, 95),
    Color::Rgb(186, 176, 172),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Theme {
    pub color: bool,
}

impl Theme {
    /// Colour unless `NO_COLOR` is set to anything non-empty (<https://no-color.org>).
    pub fn from_env() -> Theme {
        Theme { color: std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) }
    }

    fn fg(&self, c: Color) -> Style {
        if self.color { Style::new().fg(c) } else { Style::new() }
    }

    pub fn label(&self, label: u32) -> Style {
        self.fg(self.label_color(label))
    }

    pub fn label_color(&self, label: u32) -> Color {
        if !self.color {
            return Color::Reset;
        }
        PALETTE.get(label as usize % PALETTE.len()).copied().unwrap_or(Color::Gray)
    }

    pub fn border(&self) -> Style {
        self.fg(Color::DarkGray)
    }

    pub fn focus_border(&self) -> Style {
        self.fg(Color::Cyan)
    }

    pub fn title(&self) -> Style {
        Style::new().add_modifier(Modifier::BOLD)
    }

    pub fn header(&self) -> Style {
        self.fg(Color::Yellow).add_modifier(Modifier::BOLD)
    }

    pub fn selected_row(&self) -> Style {
        if self.color {
            Style::new().bg(Color::Rgb(40, 60, 90)).add_modifier(Modifier::BOLD)
        } else {
            Style::new().add_modifier(Modifier::REVERSED)
        }
    }

    pub fn marked(&self) -> Style {
        self.fg(Color::Magenta).add_modifier(Modifier::BOLD)
    }

    pub fn dim(&self) -> Style {
        if self.color { Style::new().fg(Color::DarkGray) } else { Style::new().add_modifier(Modifier::DIM) }
    }

    pub fn warn(&self) -> Style {
        self.fg(Color::LightRed).add_modifier(Modifier::BOLD)
    }

    pub fn outlier(&self) -> Style {
        self.fg(Color::LightRed).add_modifier(Modifier::BOLD)
    }

    pub fn highlight(&self) -> Style {
        self.fg(Color::White).add_modifier(Modifier::BOLD)
    }

    /// The training loss curve.
    pub fn loss(&self) -> Style {
        self.fg(Color::LightBlue)
    }

    /// The selected item's trajectory across a series' checkpoints, and the checkpoint on the loss curve.
    pub fn trail(&self) -> Style {
        self.fg(Color::Yellow).add_modifier(Modifier::BOLD)
    }

    pub fn neighbour(&self) -> Style {
        self.fg(Color::LightCyan).add_modifier(Modifier::BOLD)
    }

    pub fn tag(&self, kind: TagKind) -> Style {
        self.fg(match kind {
            TagKind::Ok => Color::Green,
            TagKind::Outlier => Color::LightRed,
            TagKind::Mislabeled => Color::LightYellow,
            TagKind::Duplicate => Color::LightMagenta,
        })
    }

    pub fn status(&self) -> Style {
        if self.color {
            Style::new().bg(Color::Rgb(30, 30, 46)).fg(Color::Gray)
        } else {
            Style::new().add_modifier(Modifier::REVERSED)
        }
    }

    pub fn key(&self) -> Style {
        self.fg(Color::Cyan).add_modifier(Modifier::BOLD)
    }

    pub fn message(&self) -> Style {
        self.fg(Color::LightGreen)
    }
}
