//! The selected item: its picture, what the analysis says about it, and its nearest neighbours with
//! their pictures, labels and distances.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph, Widget, Wrap};
use torchlight_store::TagKind;

use crate::data::Data;
use crate::layout::{self, InspectorLayout};
use crate::preview::PictureView;
use crate::state::Inspector;
use crate::state::inspector::Inspect;
use crate::theme::Theme;

pub struct InspectorPanel<'a> {
    pub inspector: &'a Inspector,
    pub data: &'a Data,
    pub space: usize,
    pub space_name: &'a str,
    pub theme: &'a Theme,
}

impl Widget for InspectorPanel<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let t = self.theme;
        Block::bordered().border_style(t.border()).title(" inspector ").title_style(t.title()).render(area, buf);
        let Some(ins) = self.inspector.current() else { return };
        let lay = layout::inspector(area, ins.neighbours.len(), self.inspector.shows_images());
        self.picture(ins.id, lay.image, buf);
        Paragraph::new(self.facts(ins)).wrap(Wrap { trim: false }).render(lay.info, buf);
        self.neighbours(ins, &lay, buf);
    }
}

impl InspectorPanel<'_> {
    /// The item's source, labels, scores, flags and triage, a line each.
    fn facts(&self, ins: &Inspect) -> Vec<Line<'static>> {
        let (t, d, space, id) = (self.theme, self.data, self.space, ins.id);
        let label = d.label[id as usize];
        let sp = d.spaces.get(space);
        let mut lines = vec![Line::from(vec![
            Span::styled(format!("#{id} "), t.title()),
            Span::raw(ins.item.as_ref().map_or(String::new(), |i| i.source.clone())),
        ])];
        let mut l2 = vec![Span::raw("label "), Span::styled(d.label_name(label).to_string(), t.label(label))];
        if let Some(p) = d.pred(space, id) {
            l2.push(Span::raw("  pred "));
            l2.push(Span::styled(d.label_name(p).to_string(), if p != label { t.warn() } else { t.label(p) }));
            if let Some(c) = ins.confidence {
                l2.push(Span::raw(format!(" ({c:.2})")));
            }
        }
        lines.push(Line::from(l2));
        let mut l3 = Vec::new();
        if let Some(o) = sp.and_then(|s| s.outlier.as_ref()) {
            let style = if d.is_outlier(space, id) { t.outlier() } else { Style::new() };
            l3.push(Span::styled(format!("outlier {:.4}", o[id as usize]), style));
        }
        if let Some(nn) = sp.and_then(|s| s.nn_distance.as_ref()) {
            l3.push(Span::raw(format!("  nn {:.4}", nn[id as usize])));
        }
        if let Some(q) = d.label_quality(space, id) {
            l3.push(Span::raw(format!("  lq {q:.2}")));
        }
        lines.push(Line::from(l3));
        if let [j, m, r] = d.drift.of(id)
            && (j.is_some() || m.is_some() || r.is_some())
        {
            let mut l = vec![Span::styled("drift ", t.dim())];
            if let Some(j) = j {
                l.push(Span::raw(format!("jaccard {j:.2}  ")));
            }
            if let Some(m) = m {
                l.push(Span::raw(format!("moved {m:.2}  ")));
            }
            if let Some(r) = r {
                l.push(Span::raw(format!("rank {r:+.0}")));
            }
            lines.push(Line::from(l));
        }
        let mut flags = Vec::new();
        if d.near_duplicate(space, id) {
            let text = match d.duplicate_group(space, id) {
                Some((g, size)) => format!("near duplicate (group #{g}, {size} items) "),
                None => "near duplicate ".to_string(),
            };
            flags.push(Span::styled(text, t.tag(TagKind::Duplicate)));
        }
        if d.nn_flag(space, id) {
            let text = match sp.and_then(|s| s.nn_threshold) {
                Some(th) => format!("nn within {th} "),
                None => "nn flag ".to_string(),
            };
            flags.push(Span::styled(text, t.dim()));
        }
        if d.label_issue(space, id) {
            flags.push(Span::styled("label issue ", t.tag(TagKind::Mislabeled)));
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
        lines
    }

    /// The neighbours: pictures with captions where the layout has slots, the rest listed (in two
    /// columns when there is room).
    fn neighbours(&self, ins: &Inspect, lay: &InspectorLayout, buf: &mut Buffer) {
        let (t, d) = (self.theme, self.data);
        if ins.neighbours.is_empty() {
            if lay.list.height > 0 {
                buf.set_string(lay.list.x, lay.list.y, "no neighbours (run `torchlight analyze`)", t.dim());
            }
            return;
        }
        if let Some(first) = lay.thumbs.first() {
            let head = format!("{} nearest in {}", ins.neighbours.len(), self.space_name);
            buf.set_stringn(first.x, first.y - 1, head, lay.list.width.max(first.width) as usize, t.dim());
        }
        // Neighbours in the item's near-duplicate group are marked D.
        let group = d.duplicate_group(self.space, ins.id).map(|(g, _)| g);
        let same_group = |nid: u32| group.is_some() && d.duplicate_group(self.space, nid).map(|(g, _)| g) == group;
        for (slot, &(nid, dist)) in lay.thumbs.iter().zip(&ins.neighbours) {
            self.picture(nid, *slot, buf);
            let nl = d.label[nid as usize];
            let mark = if same_group(nid) { "D " } else { "" };
            let cap = format!("{mark}{dist:.2} {}", d.label_name(nl));
            buf.set_stringn(slot.x, slot.bottom(), cap, slot.width as usize, t.label(nl));
        }
        let col_w = 27;
        let per_col = lay.list.height as usize;
        for (i, &(nid, dist)) in ins.neighbours.iter().skip(lay.thumbs.len()).enumerate() {
            let (c, r) = (i / per_col.max(1), i % per_col.max(1));
            let x = lay.list.x + (c as u16) * col_w;
            if per_col == 0 || x + col_w > lay.list.right() + 1 {
                break;
            }
            let nl = d.label[nid as usize];
            let mark = if same_group(nid) { "D" } else { " " };
            Line::from(vec![
                Span::raw(format!("#{nid:<7}")),
                Span::styled(format!("{mark} "), t.tag(TagKind::Duplicate)),
                Span::styled(format!("{:<10} ", d.label_name(nl)), t.label(nl)),
                Span::raw(format!("{dist:.4}")),
            ])
            .render(Rect::new(x, lay.list.y + r as u16, col_w.min(lay.list.width), 1), buf);
        }
    }

    /// An item's picture, why it has none, or an ellipsis while the worker is on it.
    fn picture(&self, id: u32, area: Rect, buf: &mut Buffer) {
        if area.width == 0 || area.height == 0 {
            return;
        }
        let dim = self.theme.dim();
        match (self.inspector.picture(id), self.inspector.picture_error(id)) {
            (Some(p), _) => PictureView(p).render(area, buf),
            (None, Some(e)) => Paragraph::new(e.to_string()).wrap(Wrap { trim: true }).style(dim).render(area, buf),
            (None, None) => {
                buf.set_stringn(area.x, area.y, "…", area.width as usize, dim);
            }
        }
    }
}
