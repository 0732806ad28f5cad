//! A scatter panel: the pixel scatter when one of the current raster has arrived, else the braille
//! raster with the marked outliers, the selected item and its neighbours on top; a legend under it. In the
//! drift view the title names the checkpoint (or the pair's comparison) and the selected item's trajectory is
//! drawn across it.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Widget};

use crate::data::{Data, FINETUNED, FOUNDATION, SeriesKind};
use crate::layout::plot_area;
use crate::plot::{Raster, cell};
use crate::preview::PictureView;
use crate::state::inspector::Inspect;
use crate::state::{DriftView, Scatter};
use crate::theme::Theme;

pub struct ScatterPanel<'a> {
    pub scatter: &'a Scatter,
    pub raster: &'a Raster,
    pub data: &'a Data,
    /// The current space: its panel is framed when side by side and marks the neighbours.
    pub space: usize,
    pub selected: Option<&'a Inspect>,
    /// The drift view, when it is on.
    pub drift: Option<&'a DriftView>,
    pub theme: &'a Theme,
}

impl Widget for ScatterPanel<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let (t, r, view) = (self.theme, self.raster, self.scatter.view());
        let sp = self.data.spaces.get(r.space);
        let name = sp.map_or("-", |s| s.name.as_str());
        let zoom = if view.zoom > 1.0 { format!(" ×{:.1}", view.zoom) } else { String::new() };
        let focus = r.space == self.space;
        let projection = if r.projection.is_empty() { "projection" } else { r.projection };
        let title = match self.drift {
            Some(d) => {
                let (at, n) = d.position();
                let play = if d.is_playing() { "▶ " } else { "" };
                match d.kind() {
                    SeriesKind::Pair => {
                        format!(" {play}{FOUNDATION} → {FINETUNED} · {name} · {}/{n} {projection}{zoom} ", at + 1)
                    }
                    SeriesKind::Checkpoints => {
                        let step = d.step().unwrap_or(0);
                        let loss = d.loss().map_or("-".to_string(), |l| format!("{l:.3}"));
                        format!(" {play}step {step} · {name} · loss {loss} · {}/{n} {projection}{zoom} ", at + 1)
                    }
                }
            }
            None => format!(" {projection} · {name}{zoom} "),
        };
        let block = Block::bordered()
            .border_style(if focus && view.side_by_side { t.focus_border() } else { t.border() })
            .title(title)
            .title_style(t.title());
        let inner = block.inner(area);
        block.render(area, buf);
        let plot = plot_area(area);
        if r.projection.is_empty() {
            buf.set_string(plot.x, plot.y, "no 2-D projection yet: run `torchlight analyze`", t.dim());
            return;
        }
        if let Some(picture) = self.scatter.picture(r) {
            PictureView(picture).render(plot, buf);
        } else {
            self.braille(plot, buf);
        }
        self.legend(inner, buf);
    }
}

impl ScatterPanel<'_> {
    fn braille(&self, plot: Rect, buf: &mut Buffer) {
        let (t, r) = (self.theme, self.raster);
        for y in 0..r.h.min(plot.height) {
            for x in 0..r.w.min(plot.width) {
                let (bits, label) = r.cells[y as usize * r.w as usize + x as usize];
                if bits != 0 {
                    let ch = char::from_u32(0x2800 + u32::from(bits)).unwrap_or('?');
                    buf[(plot.x + x, plot.y + y)].set_char(ch).set_style(t.label(label));
                }
            }
        }
        for &(x, y) in &r.outliers {
            if x < plot.width && y < plot.height {
                buf[(plot.x + x, plot.y + y)].set_char('×').set_style(t.outlier());
            }
        }
        if let Some(d) = self.drift {
            for c in d.path().iter().filter(|c| c.x < plot.width && c.y < plot.height) {
                let ch = char::from_u32(0x2800 + u32::from(c.bits)).unwrap_or('?');
                buf[(plot.x + c.x, plot.y + c.y)].set_char(ch).set_style(t.trail());
            }
        }
        let proj = self.data.spaces.get(r.space).and_then(|s| s.projection.as_ref());
        let (Some(inspect), Some((_, proj))) = (self.selected, proj) else { return };
        let mut put = |id: u32, ch: char, style: Style| {
            let i = id as usize;
            if 2 * i + 1 < proj.len()
                && let Some((x, y)) = cell(r, proj[2 * i], proj[2 * i + 1])
                && x < plot.width
                && y < plot.height
            {
                buf[(plot.x + x, plot.y + y)].set_char(ch).set_style(style);
            }
        };
        // The selected item last, on top of its neighbours and its trajectory.
        if r.space == self.space {
            for &(n, _) in &inspect.neighbours {
                put(n, '●', t.neighbour());
            }
        }
        put(inspect.id, '◆', t.highlight());
    }

    /// One line of labels in their colours, at the bottom of the panel.
    fn legend(&self, inner: Rect, buf: &mut Buffer) {
        let t = self.theme;
        let mut spans = Vec::new();
        for (i, n) in self.data.label_names.iter().enumerate() {
            spans.push(Span::styled("■", t.label(i as u32)));
            spans.push(Span::raw(format!("{n} ")));
        }
        spans.push(Span::styled("× ", t.outlier()));
        spans.push(Span::raw("outlier "));
        Line::from(spans).render(Rect { y: inner.bottom().saturating_sub(1), height: 1, ..inner }, buf);
    }
}
