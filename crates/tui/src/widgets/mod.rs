//! Drawing only: `impl Widget for &App` places the panels and hands each one the parts of the state it
//! reads. Every widget here borrows state and changes none of it.

mod drift;
mod help;
mod inspector;
mod scatter;
mod status;
mod table;

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::widgets::{Block, Clear, Paragraph, Widget, Wrap};

use crate::app::App;
use crate::layout::{self, Arrangement};
use crate::mode::Mode;
use crate::theme::Theme;

impl Widget for &App {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let arrangement = self.arrangement();
        let areas = layout::areas(area, arrangement);
        let (data, theme, space) = (self.data(), self.theme(), self.space());
        if data.items == 0 {
            let rest = areas.table.union(areas.inspector).union(areas.scatter[0]);
            EmptyStore { store_label: self.store_label(), theme }.render(rest, buf);
        } else {
            let list = self.list();
            table::Table { list, data, marks: self.triage().marks(), space, theme }.render(areas.table, buf);
            let inspector = self.inspector();
            if arrangement == Arrangement::Main {
                let space_name = self.space_name();
                inspector::InspectorPanel { inspector, data, space, space_name, theme }.render(areas.inspector, buf);
            }
            let scatter = self.scatter();
            let drift = Some(self.drift()).filter(|d| d.is_on());
            for (raster, panel) in scatter.rasters().iter().zip(areas.scatter) {
                let selected = inspector.current();
                scatter::ScatterPanel { scatter, raster, data, space, selected, drift, theme }.render(panel, buf);
            }
            if let Some(drift) = drift {
                let selected = self.selected();
                drift::LossChart { drift, data, selected, theme }.render(areas.loss, buf);
            }
        }
        let marked = self.triage().marks().len();
        let (store_label, space_name) = (self.store_label(), self.space_name());
        status::Status { store_label, space_name, list: self.list(), data, marked, theme }.render(areas.status, buf);
        let drift = self.drift();
        let drift = status::DriftHint { available: drift.available(), on: drift.is_on(), playing: drift.is_playing() };
        status::Hints { message: self.message(), drift, theme }.render(areas.hints, buf);
        let selected = self.selected();
        match self.mode() {
            Mode::Normal => {}
            Mode::Help => help::Help { theme }.render(area, buf),
            &Mode::Picker { purpose, cursor } => {
                let len = self.picker_len();
                help::Picker { purpose, cursor, len, selected, data, theme }.render(area, buf);
            }
            Mode::Input { purpose, text } => {
                help::Input { purpose: *purpose, text, selected, theme }.render(areas.hints, buf);
            }
        }
    }
}

/// What an empty store shows instead of the panels.
struct EmptyStore<'a> {
    store_label: &'a str,
    theme: &'a Theme,
}

impl Widget for EmptyStore<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let t = self.theme;
        let text = format!(
            "The store {} has no items yet.\n\nRun `torchlight ingest SOURCE --store {}` to fill it. If an ingest is \
             running now, press R to reread the store as items are committed; q quits.",
            self.store_label, self.store_label
        );
        let [_, mid, _] =
            Layout::vertical([Constraint::Fill(1), Constraint::Length(7), Constraint::Fill(1)]).areas(area);
        Paragraph::new(text)
            .wrap(Wrap { trim: true })
            .block(Block::bordered().border_style(t.border()).title(" torchlight browse ").title_style(t.title()))
            .render(mid, buf);
    }
}

/// Clears an area before an overlay is drawn on it.
fn clear(area: Rect, buf: &mut Buffer) {
    Clear.render(area, buf);
}
