//! Overlays: the help screen (read from the key table), the class picker and the one-line text editor.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Widget};

use super::clear;
use crate::data::Data;
use crate::keys::{NORMAL, key_name};
use crate::layout::centred;
use crate::mode::{InputPurpose, PickPurpose};
use crate::theme::Theme;

pub struct Help<'a> {
    pub theme: &'a Theme,
}

impl Widget for Help<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let t = self.theme;
        let entries: Vec<(String, &str)> =
            NORMAL.iter().map(|b| (b.keys.iter().map(key_name).collect::<Vec<_>>().join(" "), b.help)).collect();
        let cols: u16 = if area.width >= 120 { 3 } else { 2 };
        let rows = entries.len().div_ceil(cols as usize) as u16;
        let col_w = (area.width.saturating_sub(2) / cols).min(44);
        let rect = centred(area, col_w * cols + 2, rows + 2);
        clear(rect, buf);
        let block =
            Block::bordered().border_style(t.focus_border()).title(" keys (any key closes) ").title_style(t.title());
        let inner = block.inner(rect);
        block.render(rect, buf);
        for (i, (keys, help)) in entries.iter().enumerate() {
            let (c, r) = (i as u16 / rows, i as u16 % rows);
            if r >= inner.height {
                continue;
            }
            let line = Line::from(vec![Span::styled(format!("{keys:>10} "), t.key()), Span::raw(*help)]);
            line.render(Rect::new(inner.x + c * col_w, inner.y + r, col_w.saturating_sub(1), 1), buf);
        }
    }
}

/// The class list: `len` entries, "(any)" or "(clear)" first, then the class names.
pub struct Picker<'a> {
    pub purpose: PickPurpose,
    pub cursor: usize,
    pub len: usize,
    pub selected: Option<u32>,
    pub data: &'a Data,
    pub theme: &'a Theme,
}

impl Widget for Picker<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let t = self.theme;
        let (title, first) = match self.purpose {
            PickPurpose::Relabel => (format!(" new label for #{} ", self.selected.unwrap_or(0)), "(clear new label)"),
            PickPurpose::Label => (" filter by label ".to_string(), "(any label)"),
            PickPurpose::Pred => (" filter by predicted label ".to_string(), "(any prediction)"),
        };
        let n = self.len;
        let rect = centred(area, 34, (n as u16 + 2).min(area.height.saturating_sub(2)).max(3));
        clear(rect, buf);
        let block = Block::bordered().border_style(t.focus_border()).title(title).title_style(t.title());
        let inner = block.inner(rect);
        block.render(rect, buf);
        let h = inner.height as usize;
        let start = self.cursor.saturating_sub(h.saturating_sub(1));
        for (row, i) in (start..n).take(h).enumerate() {
            let (text, style) = if i == 0 {
                (first.to_string(), t.dim())
            } else {
                let label = (i - 1) as u32;
                (format!("{i:>3} {}", self.data.label_name(label)), t.label(label))
            };
            let style = if i == self.cursor { style.patch(t.selected_row()) } else { style };
            let line = Rect::new(inner.x, inner.y + row as u16, inner.width, 1);
            buf.set_style(line, style);
            buf.set_stringn(line.x, line.y, text, line.width as usize, style);
        }
    }
}

/// The text editor, drawn over the hint line.
pub struct Input<'a> {
    pub purpose: InputPurpose,
    pub text: &'a str,
    pub selected: Option<u32>,
    pub theme: &'a Theme,
}

impl Widget for Input<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let t = self.theme;
        let prompt = match self.purpose {
            InputPurpose::Note => format!(" note for #{}: ", self.selected.unwrap_or(0)),
            InputPurpose::Source => " source regex: ".to_string(),
        };
        clear(area, buf);
        Line::from(vec![
            Span::styled(prompt, t.key()),
            Span::raw(self.text),
            Span::styled("█", t.key()),
            Span::styled("   Enter saves, Esc cancels", t.dim()),
        ])
        .render(area, buf);
    }
}
