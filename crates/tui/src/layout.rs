//! Where things go on screen. Both sides read these: `App` to size what it asks for (page length, picture
//! and raster sizes), the widgets to draw into the same rectangles.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::widgets::Block;

/// Which panels the screen shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Arrangement {
    /// Table, inspector and the current space's scatter.
    #[default]
    Main,
    /// Table over the scatters of the first two spaces.
    SideBySide,
    /// Table beside the current checkpoint's scatter over the loss curve.
    Drift,
}

/// Where each panel goes for a terminal of a given size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Areas {
    pub table: Rect,
    pub inspector: Rect,
    /// One or two scatter panels (the second is empty unless side by side).
    pub scatter: [Rect; 2],
    /// The loss curve (drift view only).
    pub loss: Rect,
    pub status: Rect,
    pub hints: Rect,
}

pub fn areas(area: Rect, arrangement: Arrangement) -> Areas {
    let [body, status, hints] =
        Layout::vertical([Constraint::Min(3), Constraint::Length(1), Constraint::Length(1)]).areas(area);
    match arrangement {
        Arrangement::SideBySide => {
            let [table, plots] = Layout::vertical([Constraint::Percentage(40), Constraint::Min(4)]).areas(body);
            let [a, b] = Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(plots);
            Areas { table, scatter: [a, b], status, hints, ..Areas::default() }
        }
        Arrangement::Drift => {
            let [table, right] = Layout::horizontal([Constraint::Percentage(45), Constraint::Min(20)]).areas(body);
            let chart = (body.height * 3 / 10).clamp(7, 12);
            let [plot, loss] = Layout::vertical([Constraint::Min(4), Constraint::Length(chart)]).areas(right);
            Areas { table, scatter: [plot, Rect::default()], loss, status, hints, ..Areas::default() }
        }
        Arrangement::Main => {
            let [table, right] = Layout::horizontal([Constraint::Percentage(52), Constraint::Min(20)]).areas(body);
            let [inspector, plot] = Layout::vertical([Constraint::Percentage(50), Constraint::Min(4)]).areas(right);
            Areas { table, inspector, scatter: [plot, Rect::default()], status, hints, ..Areas::default() }
        }
    }
}

/// Rows of the table that fit on screen (borders and header excluded).
pub fn table_rows(table: Rect) -> usize {
    table.height.saturating_sub(3) as usize
}

/// Where the inspector puts the selected item's picture, its facts and its neighbours.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InspectorLayout {
    pub image: Rect,
    pub info: Rect,
    /// Neighbour pictures, one per shown neighbour, with a caption line under each.
    pub thumbs: Vec<Rect>,
    pub list: Rect,
}

/// `k` is the number of neighbours available. Cells are about twice as tall as wide, so a square
/// picture is twice as many columns as rows.
pub fn inspector(panel: Rect, k: usize, images: bool) -> InspectorLayout {
    let inner = Block::bordered().inner(panel);
    if inner.width < 8 || inner.height < 3 {
        return InspectorLayout { info: inner, ..Default::default() };
    }
    if !images {
        // Text only: the facts on top, the neighbours listed under them.
        let info_h = 6.min(inner.height);
        let info = Rect { height: info_h, ..inner };
        let list = Rect { y: inner.y + info_h, height: inner.height - info_h, ..inner };
        return InspectorLayout { image: Rect::default(), info, thumbs: Vec::new(), list };
    }
    let top_h = (inner.height * 6 / 10).max(3);
    let iw = (top_h * 2).min(inner.width / 2);
    let image = Rect::new(inner.x, inner.y, iw, top_h);
    let info = Rect::new(inner.x + iw + 1, inner.y, inner.width.saturating_sub(iw + 1), top_h);
    let rest = Rect::new(inner.x, inner.y + top_h, inner.width, inner.height - top_h);
    let mut thumbs = Vec::new();
    let mut list = rest;
    if rest.height >= 5 && k > 0 {
        let th = (rest.height - 2).min(6);
        let tw = th * 2;
        let count = (rest.width / (tw + 1)).min(k as u16);
        for i in 0..count {
            thumbs.push(Rect::new(rest.x + i * (tw + 1), rest.y + 1, tw, th));
        }
        list = Rect::new(rest.x, rest.y + 1 + th + 1, rest.width, rest.height.saturating_sub(th + 2));
        if count == 0 {
            list = rest;
        }
    }
    InspectorLayout { image, info, thumbs, list }
}

/// The plot inside a scatter panel: the block's inside less the legend line.
pub fn plot_area(panel: Rect) -> Rect {
    let inner = Block::bordered().inner(panel);
    Rect { height: inner.height.saturating_sub(1), ..inner }
}

/// A centred rectangle of at most `w` x `h` cells.
pub fn centred(area: Rect, w: u16, h: u16) -> Rect {
    let w = w.min(area.width);
    let h = h.min(area.height);
    Rect::new(area.x + (area.width - w) / 2, area.y + (area.height - h) / 2, w, h)
}
