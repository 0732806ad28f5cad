//! The 2-D projection as braille dots (2 x 4 per cell) coloured by label. Rasterising a million points
//! takes milliseconds, so `update` does it only when the shown set, the space, zoom, pan or size change;
//! drawing copies the raster and overlays the selected item and its neighbours.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Widget};

use crate::browse::app::{App, ScatterView};
use crate::browse::data::{Data, NO_LABEL};

/// The visible window of the projection, in projection coordinates.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Window {
    pub x0: f32,
    pub y0: f32,
    pub x1: f32,
    pub y1: f32,
}

#[derive(Debug, Clone, Default)]
pub struct Raster {
    pub space: usize,
    pub w: u16,
    pub h: u16,
    /// Per cell: braille dot bits and the label of the last point drawn there (NO_LABEL: empty).
    pub cells: Vec<(u8, u32)>,
    /// Cells of the most anomalous shown items.
    pub outliers: Vec<(u16, u16)>,
    pub window: Window,
    pub projection: &'static str,
    pub points: usize,
}

/// Braille dot bit of sub-cell (column 0..2, row 0..4).
const DOTS: [[u8; 2]; 4] = [[0x01, 0x08], [0x02, 0x10], [0x04, 0x20], [0x40, 0x80]];
/// Outliers marked per panel: enough to see where they are, few enough not to hide the classes.
const MARKED_OUTLIERS: usize = 30;

/// The plot inside a panel: the block's inside less the legend line.
pub fn plot_area(panel: Rect) -> Rect {
    let inner = Block::bordered().inner(panel);
    Rect { height: inner.height.saturating_sub(1), ..inner }
}

fn window(data: &Data, space: usize, view: &ScatterView) -> Window {
    let b = data.spaces.get(space).map_or([0.0, 0.0, 1.0, 1.0], |s| s.bounds);
    let (w, h) = ((b[2] - b[0]).max(1e-6) * 1.04, (b[3] - b[1]).max(1e-6) * 1.04);
    let cx = (b[0] + b[2]) / 2.0 + view.pan.0 * w;
    let cy = (b[1] + b[3]) / 2.0 + view.pan.1 * h;
    let (hw, hh) = (w / 2.0 / view.zoom, h / 2.0 / view.zoom);
    Window { x0: cx - hw, y0: cy - hh, x1: cx + hw, y1: cy + hh }
}

/// Dot coordinates of a point, if inside the window.
fn dot(win: &Window, w: u16, h: u16, x: f32, y: f32) -> Option<(usize, usize)> {
    let fx = (x - win.x0) / (win.x1 - win.x0);
    let fy = (win.y1 - y) / (win.y1 - win.y0);
    if !(0.0..1.0).contains(&fx) || !(0.0..1.0).contains(&fy) {
        return None;
    }
    Some(((fx * 2.0 * w as f32) as usize, (fy * 4.0 * h as f32) as usize))
}

/// The cell of a point, if inside the raster's window.
pub fn cell(r: &Raster, x: f32, y: f32) -> Option<(u16, u16)> {
    dot(&r.window, r.w, r.h, x, y).map(|(dx, dy)| ((dx / 2) as u16, (dy / 4) as u16))
}

pub fn rasterize(data: &Data, space: usize, ids: &[u32], view: &ScatterView, w: u16, h: u16) -> Raster {
    let win = window(data, space, view);
    let mut r =
        Raster { space, w, h, cells: vec![(0, NO_LABEL); w as usize * h as usize], window: win, ..Default::default() };
    let Some(sp) = data.spaces.get(space) else { return r };
    let Some((name, proj)) = &sp.projection else { return r };
    r.projection = name;
    // With nothing filtered out, walk the columns in id order: sequential reads, not a random gather.
    let all = ids.len() == data.items as usize;
    let each = |f: &mut dyn FnMut(usize)| {
        if all {
            (0..ids.len()).for_each(&mut *f);
        } else {
            ids.iter().for_each(|&id| f(id as usize));
        }
    };
    each(&mut |i| {
        if let Some((dx, dy)) = dot(&win, w, h, proj[2 * i], proj[2 * i + 1]) {
            let c = &mut r.cells[(dy / 4) * w as usize + dx / 2];
            c.0 |= DOTS[dy % 4][dx % 2];
            c.1 = data.label[i];
            r.points += 1;
        }
    });
    if let Some(scores) = &sp.outlier {
        // Only items under the outlier cut can be marked: a small set to select from.
        let mut worst: Vec<u32> = Vec::new();
        each(&mut |i| {
            if scores[i] <= sp.outlier_cut {
                worst.push(i as u32);
            }
        });
        let m = MARKED_OUTLIERS.min(worst.len());
        if m > 0 && m < worst.len() {
            worst.select_nth_unstable_by(m, |&a, &b| scores[a as usize].total_cmp(&scores[b as usize]));
        }
        worst.truncate(m);
        r.outliers =
            worst.into_iter().filter_map(|id| cell(&r, proj[2 * id as usize], proj[2 * id as usize + 1])).collect();
    }
    r
}

pub struct Scatter<'a> {
    pub app: &'a App,
    pub raster: &'a Raster,
}

impl Widget for Scatter<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let (app, r) = (self.app, self.raster);
        let t = &app.theme;
        let sp = app.data.spaces.get(r.space);
        let name = sp.map_or("-", |s| s.name.as_str());
        let zoom = if app.scatter.zoom > 1.0 { format!(" ×{:.1}", app.scatter.zoom) } else { String::new() };
        let focus = r.space == app.space;
        let title = format!(" {} · {name}{zoom} ", if r.projection.is_empty() { "projection" } else { r.projection });
        let block = Block::bordered()
            .border_style(if focus && app.scatter.side_by_side { t.focus_border() } else { t.border() })
            .title(title)
            .title_style(t.title());
        let inner = block.inner(area);
        block.render(area, buf);
        let plot = plot_area(area);
        if r.projection.is_empty() {
            buf.set_string(plot.x, plot.y, "no 2-D projection yet: run `torchlight analyze`", t.dim());
            return;
        }
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
        // The selected item and its neighbours, on top.
        if let (Some(inspect), Some((_, proj))) = (&app.inspect, sp.and_then(|s| s.projection.as_ref())) {
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
            if r.space == app.space {
                for &(n, _) in &inspect.neighbours {
                    put(n, '●', t.neighbour());
                }
            }
            put(inspect.id, '◆', t.highlight());
        }
        // Legend: one line of labels in their colours.
        let mut spans = Vec::new();
        for (i, n) in app.data.label_names.iter().enumerate() {
            spans.push(Span::styled("■", t.label(i as u32)));
            spans.push(Span::raw(format!("{n} ")));
        }
        spans.push(Span::styled("× ", t.outlier()));
        spans.push(Span::raw("outlier "));
        Line::from(spans).render(Rect { y: inner.bottom().saturating_sub(1), height: 1, ..inner }, buf);
    }
}
