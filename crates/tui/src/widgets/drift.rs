//! The drift view's loss panel: the training loss over the steps with the checkpoint shown marked (a
//! foundation/fine-tuned pair has no loss to show), and the selected item's drift from the step before it.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Axis, Block, Chart, Dataset, GraphType, Paragraph, Widget};

use crate::data::{Data, Drift, SeriesKind};
use crate::state::DriftView;
use crate::theme::Theme;

pub struct LossChart<'a> {
    pub drift: &'a DriftView,
    pub data: &'a Data,
    pub selected: Option<u32>,
    pub theme: &'a Theme,
}

/// An item's drift values in words, or None when the columns are missing.
fn drift_words(drift: &Drift, id: u32) -> Option<String> {
    let [jaccard, moved, rank] = drift.of(id);
    let mut parts = Vec::new();
    if let Some(j) = jaccard {
        parts.push(format!("jaccard {j:.2}"));
    }
    if let Some(m) = moved {
        parts.push(format!("moved {m:.2}"));
    }
    if let Some(r) = rank {
        parts.push(format!("rank {r:+.0}"));
    }
    (!parts.is_empty()).then(|| parts.join(" · "))
}

impl Widget for LossChart<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let (t, d) = (self.theme, self.drift);
        let bottom = match (self.selected, d.step_drift(self.data)) {
            (Some(id), Some((since, drift))) => drift_words(drift, id).map(|w| format!(" #{id} since {since}: {w} ")),
            _ => None,
        };
        let title = match (d.kind(), d.step(), d.loss()) {
            (SeriesKind::Pair, ..) => " before → after fine-tuning ".to_string(),
            (_, Some(step), Some(loss)) => format!(" training loss · step {step}: {loss:.3} "),
            (_, Some(step), None) => format!(" training loss · step {step} "),
            _ => " training loss ".to_string(),
        };
        let mut block = Block::bordered().border_style(t.border()).title(title).title_style(t.title());
        if let Some(bottom) = bottom {
            block = block.title_bottom(Line::from(Span::styled(bottom, t.trail())));
        }
        let empty = match d.kind() {
            SeriesKind::Pair => "no training log for a foundation/fine-tuned pair",
            SeriesKind::Checkpoints => "no loss log in this series",
        };
        if d.losses().is_empty() {
            Paragraph::new(empty).style(t.dim()).block(block).render(area, buf);
            return;
        }
        let [x0, x1] = d.step_range();
        let [y0, y1] = d.loss_range();
        let marker = d.step_marker();
        let datasets = vec![
            Dataset::default().marker(Marker::Braille).graph_type(GraphType::Line).style(t.loss()).data(d.losses()),
            Dataset::default().marker(Marker::Braille).graph_type(GraphType::Line).style(t.trail()).data(&marker),
        ];
        let x_axis = Axis::default().style(t.dim()).bounds([x0, x1]).labels([format!("{x0:.0}"), format!("{x1:.0}")]);
        let y_axis = Axis::default().style(t.dim()).bounds([y0, y1]).labels([format!("{y0:.2}"), format!("{y1:.2}")]);
        Chart::new(datasets).block(block).x_axis(x_axis).y_axis(y_axis).render(area, buf);
    }
}
