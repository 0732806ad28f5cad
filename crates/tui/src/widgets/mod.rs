//! Drawing: `impl Widget for &App` places the panels; each panel reads the state and draws, nothing more.

pub mod help;
pub mod inspector;
pub mod scatter;
pub mod status;
pub mod table;

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::widgets::{Block, Clear, Paragraph, Widget, Wrap};

use super::app::{App, Mode};

impl Widget for &App {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let areas = super::app::layout(area, self.scatter.side_by_side);
        if self.data.items == 0 {
            empty_store(self, areas.table.union(areas.inspector).union(areas.scatter[0]), buf);
        } else {
            table::Table(self).render(areas.table, buf);
            if !self.scatter.side_by_side {
                inspector::Inspector(self).render(areas.inspector, buf);
            }
            for (raster, panel) in self.rasters.iter().zip(areas.scatter) {
                scatter::Scatter { app: self, raster }.render(panel, buf);
            }
        }
        status::Status(self).render(areas.status, buf);
        status::Hints(self).render(areas.hints, buf);
        match &self.mode {
            Mode::Normal => {}
            Mode::Help => help::Help(self).render(area, buf),
            Mode::Picker { .. } => help::Picker(self).render(area, buf),
            Mode::Input { .. } => help::Input(self).render(areas.hints, buf),
        }
    }
}

fn empty_store(app: &App, area: Rect, buf: &mut Buffer) {
    let t = &app.theme;
    let text = format!(
        "The store {} has no items yet.\n\nRun `torchlight ingest SOURCE --store {}` to fill it. If an ingest is \
         running now, press R to reread the store as items are committed; q quits.",
        app.store_label, app.store_label
    );
    let [_, mid, _] = Layout::vertical([Constraint::Fill(1), Constraint::Length(7), Constraint::Fill(1)]).areas(area);
    Paragraph::new(text)
        .wrap(Wrap { trim: true })
        .block(Block::bordered().border_style(t.border()).title(" torchlight browse ").title_style(t.title()))
        .render(mid, buf);
}

/// A centred rectangle of at most `w` x `h` cells.
pub fn centred(area: Rect, w: u16, h: u16) -> Rect {
    let w = w.min(area.width);
    let h = h.min(area.height);
    Rect::new(area.x + (area.width - w) / 2, area.y + (area.height - h) / 2, w, h)
}

/// Clears an area before an overlay is drawn on it.
pub fn clear(area: Rect, buf: &mut Buffer) {
    Clear.render(area, buf);
}
