//! The 2-D projection drawn two ways: as braille dots (2 x 4 per cell) coloured by label (`rasterize`), and
//! on terminals with pixel graphics as a picture with one pixel per point (`plot_pixels`, run on the preview
//! module's plot worker). Rasterising touches every shown point, so the browser does it only when the shown
//! set, the space, zoom, pan or size change.

use std::sync::Arc;

use ratatui::style::Color;

use crate::data::{Data, NO_LABEL};
use crate::theme::Theme;

/// Zoom and pan of the scatter panel.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScatterView {
    pub zoom: f32,
    /// Pan, as fractions of the projection's extent.
    pub pan: (f32, f32),
    pub side_by_side: bool,
    /// Bounds (x0, y0, x1, y1) to frame instead of the space's own: the drift view frames every step of
    /// a series alike, so that points move while the axes stand still.
    pub frame: Option<[f32; 4]>,
}

impl Default for ScatterView {
    fn default() -> Self {
        ScatterView { zoom: 1.0, pan: (0.0, 0.0), side_by_side: false, frame: None }
    }
}

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
    /// Ids of the marked outliers (the pixel scatter marks the same ones).
    pub outlier_ids: Vec<u32>,
}

/// Braille dot bit of sub-cell (column 0..2, row 0..4).
const DOTS: [[u8; 2]; 4] = [[0x01, 0x08], [0x02, 0x10], [0x04, 0x20], [0x40, 0x80]];
/// Outliers marked per panel: enough to see where they are, few enough not to hide the classes.
const MARKED_OUTLIERS: usize = 30;

fn window(data: &Data, space: usize, view: &ScatterView) -> Window {
    let own = data.spaces.get(space).map_or([0.0, 0.0, 1.0, 1.0], |s| s.bounds);
    let b = view.frame.unwrap_or(own);
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

/// One cell of a braille path: its position and dot bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathCell {
    pub x: u16,
    pub y: u16,
    pub bits: u8,
}

/// The braille cells of a polyline through `points` (projection coordinates) on a raster: straight
/// segments between consecutive points, in dots, clipped to the raster. Non-finite points break the line.
pub fn path(r: &Raster, points: &[(f32, f32)]) -> Vec<PathCell> {
    let win = &r.window;
    let (dw, dh) = (2.0 * f32::from(r.w), 4.0 * f32::from(r.h));
    let to_dots = |(x, y): (f32, f32)| ((x - win.x0) / (win.x1 - win.x0) * dw, (win.y1 - y) / (win.y1 - win.y0) * dh);
    let mut cells: std::collections::BTreeMap<(u16, u16), u8> = std::collections::BTreeMap::new();
    let mut put = |dx: f32, dy: f32| {
        if dx >= 0.0 && dy >= 0.0 && dx < dw && dy < dh {
            let (dx, dy) = (dx as usize, dy as usize);
            *cells.entry(((dy / 4) as u16, (dx / 2) as u16)).or_insert(0) |= DOTS[dy % 4][dx % 2];
        }
    };
    for pair in points.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        if !(a.0.is_finite() && a.1.is_finite() && b.0.is_finite() && b.1.is_finite()) {
            continue;
        }
        let ((ax, ay), (bx, by)) = (to_dots(a), to_dots(b));
        // Long jumps far outside the window would only cost time: at most one step per dot of the raster.
        let steps = (bx - ax).abs().max((by - ay).abs()).ceil().min(dw + dh) as usize;
        for i in 0..=steps.max(1) {
            let t = i as f32 / steps.max(1) as f32;
            put(ax + t * (bx - ax), ay + t * (by - ay));
        }
    }
    cells.into_iter().map(|((y, x), bits)| PathCell { x, y, bits }).collect()
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
            worst.iter().filter_map(|&id| cell(&r, proj[2 * id as usize], proj[2 * id as usize + 1])).collect();
        r.outlier_ids = worst;
    }
    r
}

/// Everything one panel's pixel scatter needs, shared or owned, so that a worker thread can draw it.
#[derive(Debug, Clone)]
pub struct PlotJob {
    /// The space shown (one panel per space).
    pub space: usize,
    pub key: PlotKey,
    /// Size of the plot in cells and in pixels (cells times the terminal's font size).
    pub cells: (u16, u16),
    pub px: (u32, u32),
    pub window: Window,
    pub proj: Arc<Vec<f32>>,
    pub label: Arc<Vec<u32>>,
    /// Shown items; None when every item is shown.
    pub shown: Option<Arc<Vec<u32>>>,
    pub outliers: Vec<u32>,
    /// The selected item and its neighbours (drawn only in the current space's panel).
    pub selected: Option<u32>,
    pub neighbours: Vec<u32>,
    /// The selected item's positions across a series' steps (drift view), joined by a line.
    pub trail: Vec<(f32, f32)>,
    pub theme: Theme,
}

/// What a pixel scatter was drawn for: the raster it matches (space, shown set, size, zoom, pan) and the
/// selection it marks. A picture of the current raster with an older selection is still shown while the
/// new one is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlotKey {
    pub raster: u64,
    pub selection: Option<u32>,
}

fn rgb(c: Color) -> [u8; 3] {
    match c {
        Color::Rgb(r, g, b) => [r, g, b],
        _ => [200, 200, 200],
    }
}

/// Draws the shown points of a projection into an RGB image: one pixel per point (2 x 2 when few enough to
/// be lost otherwise) in its label's colour, marked outliers as red crosses, the neighbours as cyan squares,
/// the selected item's trail across a series as a yellow line and the selected item as a white diamond.
pub fn plot_pixels(job: &PlotJob) -> image::RgbImage {
    let (w, h) = job.px;
    let mut img = image::RgbImage::new(w.max(1), h.max(1));
    let win = &job.window;
    let (sx, sy) = (w as f32 / (win.x1 - win.x0), h as f32 / (win.y1 - win.y0));
    let at = |id: u32| -> Option<(i64, i64)> {
        let i = id as usize;
        let (x, y) = (*job.proj.get(2 * i)?, *job.proj.get(2 * i + 1)?);
        let (px, py) = ((x - win.x0) * sx, (win.y1 - y) * sy);
        (px >= 0.0 && py >= 0.0 && px < w as f32 && py < h as f32).then_some((px as i64, py as i64))
    };
    let mut put = |x: i64, y: i64, c: [u8; 3]| {
        if x >= 0 && y >= 0 && x < i64::from(w) && y < i64::from(h) {
            img.put_pixel(x as u32, y as u32, image::Rgb(c));
        }
    };
    let count = job.shown.as_ref().map_or(job.proj.len() / 2, |s| s.len());
    let dot = if count <= 50_000 { 2 } else { 1 };
    let colour = |label: u32| if job.theme.color { rgb(job.theme.label_color(label)) } else { [210, 210, 210] };
    let mut point = |id: u32| {
        if let Some((x, y)) = at(id) {
            let c = colour(job.label.get(id as usize).copied().unwrap_or(NO_LABEL));
            for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)].into_iter().take(dot * dot) {
                put(x + dx, y + dy, c);
            }
        }
    };
    match &job.shown {
        Some(ids) => ids.iter().for_each(|&id| point(id)),
        None => (0..(job.proj.len() / 2) as u32).for_each(&mut point),
    }
    let red = if job.theme.color { [255, 80, 80] } else { [255, 255, 255] };
    for &(x, y) in job.outliers.iter().filter_map(|&id| at(id)).collect::<Vec<_>>().iter() {
        for d in -3..=3 {
            put(x + d, y + d, red);
            put(x + d, y - d, red);
        }
    }
    let cyan = if job.theme.color { [120, 230, 255] } else { [255, 255, 255] };
    for &(x, y) in job.neighbours.iter().filter_map(|&id| at(id)).collect::<Vec<_>>().iter() {
        for d in -4..=4 {
            for (a, b) in [(d, -4), (d, 4), (-4, d), (4, d), (d, -5), (d, 5), (-5, d), (5, d)] {
                put(x + a, y + b, cyan);
            }
        }
    }
    let yellow = if job.theme.color { [255, 220, 90] } else { [255, 255, 255] };
    let to_px = |(x, y): (f32, f32)| ((x - win.x0) * sx, (win.y1 - y) * sy);
    for pair in job.trail.windows(2) {
        let ((ax, ay), (bx, by)) = (to_px(pair[0]), to_px(pair[1]));
        if !(ax.is_finite() && ay.is_finite() && bx.is_finite() && by.is_finite()) {
            continue;
        }
        let steps = (bx - ax).abs().max((by - ay).abs()).ceil().min((w + h) as f32) as i64;
        for i in 0..=steps.max(1) {
            let t = i as f32 / steps.max(1) as f32;
            let (x, y) = ((ax + t * (bx - ax)) as i64, (ay + t * (by - ay)) as i64);
            for (dx, dy) in [(0, 0), (1, 0), (0, 1)] {
                put(x + dx, y + dy, yellow);
            }
        }
    }
    if let Some((x, y)) = job.selected.and_then(at) {
        for dy in -10i64..=10 {
            for dx in -10i64..=10 {
                let r = dx.abs() + dy.abs();
                if r <= 10 {
                    put(x + dx, y + dy, if r >= 8 { [0, 0, 0] } else { [255, 255, 255] });
                }
            }
        }
    }
    img
}
