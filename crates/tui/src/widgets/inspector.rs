//! The selected item: its picture, what the analysis says about it, and its nearest neighbours with
//! their pictures, labels and distances.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph, Widget, Wrap};

use crate::app::App;
use crate::preview::PictureView;

/// Where the inspector puts things (also used by `update` to ask for pictures of the right size).
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
pub fn layout(area: Rect, k: usize, images: bool) -> InspectorLayout {
    let inner = Block::bordered().inner(area);
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

pub struct Inspector<'a>(pub &'a App);

impl Widget for Inspector<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let app = self.0;
        let t = &app.theme;
        let block = Block::bordered().border_style(t.border()).title(" inspector ").title_style(t.title());
        block.render(area, buf);
        let Some(ins) = &app.inspect else { return };
        let images = app.graphics != "none";
        let lay = layout(area, ins.neighbours.len(), images);
        picture(app, ins.id, lay.image, buf);

        let d = &app.data;
        let id = ins.id;
        let label = d.label[id as usize];
        let sp = d.spaces.get(app.space);
        let mut lines = vec![Line::from(vec![
            Span::styled(format!("#{id} "), t.title()),
            Span::raw(ins.item.as_ref().map_or(String::new(), |i| i.source.clone())),
        ])];
        let mut l2 = vec![Span::raw("label "), Span::styled(d.label_name(label).to_string(), t.label(label))];
        if let Some(p) = d.pred(app.space, id) {
            l2.push(Span::raw("  pred "));
            l2.push(Span::styled(d.label_name(p).to_string(), if p != label { t.warn() } else { t.label(p) }));
            if let Some(c) = ins.confidence {
                l2.push(Span::raw(format!(" ({c:.2})")));
            }
        }
        lines.push(Line::from(l2));
        let mut l3 = Vec::new();
        if let Some(o) = sp.and_then(|s| s.outlier.as_ref()) {
            let style = if d.is_outlier(app.space, id) { t.outlier() } else { Style::new() };
            l3.push(Span::styled(format!("outlier {:.4}", o[id as usize]), style));
        }
        if let Some(nn) = sp.and_then(|s| s.nn_distance.as_ref()) {
            l3.push(Span::raw(format!("  nn {:.4}", nn[id as usize])));
        }
        if let Some(q) = d.label_quality(app.space, id) {
            l3.push(Span::raw(format!("  lq {q:.2}")));
        }
        lines.push(Line::from(l3));
        let mut flags = Vec::new();
        if d.near_duplicate(app.space, id) {
            flags.push(Span::styled("near duplicate ", t.tag(torchlight_store::TagKind::Duplicate)));
        }
        if d.label_issue(app.space, id) {
            flags.push(Span::styled("label issue ", t.tag(torchlight_store::TagKind::Mislabeled)));
        }
        if !flags.is_empty() {
            lines.push(Line::from(flags));
        }
        if let Some(tag) = d.tags.get(&id) {
            let mut l = vec![Span::raw("tag ")];
            if let Some(k) = tag.kind {
                l.push(Span::styled(k.as_str(), t.tag(k)));
            }
            if let Some(n) = tag.new_label {
                l.push(Span::raw(format!(" → {}", d.label_name(n))));
            }
            lines.push(Line::from(l));
            if let Some(note) = &tag.note {
                lines.push(Line::from(vec![Span::styled("note ", t.dim()), Span::raw(note.clone())]));
            }
        }
        Paragraph::new(lines).wrap(Wrap { trim: false }).render(lay.info, buf);

        if ins.neighbours.is_empty() {
            if lay.list.height > 0 {
                buf.set_string(lay.list.x, lay.list.y, "no neighbours (run `torchlight analyze`)", t.dim());
            }
            return;
        }
        if let Some(first) = lay.thumbs.first() {
            let head = format!("{} nearest in {}", ins.neighbours.len(), app.space_name());
            buf.set_stringn(first.x, first.y - 1, head, lay.list.width.max(first.width) as usize, t.dim());
        }
        for (slot, &(nid, dist)) in lay.thumbs.iter().zip(&ins.neighbours) {
            picture(app, nid, *slot, buf);
            let nl = d.label[nid as usize];
            let cap = format!("{dist:.2} {}", d.label_name(nl));
            buf.set_stringn(slot.x, slot.bottom(), cap, slot.width as usize, t.label(nl));
        }
        let listed = if lay.thumbs.is_empty() { 0 } else { lay.thumbs.len() };
        let rows: Vec<Line> = ins
            .neighbours
            .iter()
            .skip(listed)
            .map(|&(nid, dist)| {
                let nl = d.label[nid as usize];
                Line::from(vec![
                    Span::raw(format!("#{nid:<7} ")),
                    Span::styled(format!("{:<10} ", d.label_name(nl)), t.label(nl)),
                    Span::raw(format!("{dist:.4}")),
                ])
            })
            .collect();
        // Two columns when there is room.
        let col_w = 27;
        let per_col = lay.list.height as usize;
        for (i, line) in rows.into_iter().enumerate() {
            let (c, r) = (i / per_col.max(1), i % per_col.max(1));
            let x = lay.list.x + (c as u16) * col_w;
            if per_col == 0 || x + col_w > lay.list.right() + 1 {
                break;
            }
            line.render(Rect::new(x, lay.list.y + r as u16, col_w.min(lay.list.width), 1), buf);
        }
    }
}

fn picture(app: &App, id: u32, area: Rect, buf: &mut Buffer) {
    if area.width == 0 || area.height == 0 {
        return;
    }
    match (app.pictures.get(&id), app.picture_errors.get(&id)) {
        (Some(p), _) => PictureView(p).render(area, buf),
        (None, Some(e)) => {
            Paragraph::new(e.as_str()).wrap(Wrap { trim: true }).style(app.theme.dim()).render(area, buf);
        }
        (None, None) => {
            buf.set_stringn(area.x, area.y, "…", area.width as usize, app.theme.dim());
        }
    }
}
