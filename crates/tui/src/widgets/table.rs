//! The item table: only the rows on screen are built, whatever the number of items.

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, Paragraph, Row, Table as RTable, Widget};

use std::collections::HashSet;

use crate::data::{Data, NO_LABEL};
use crate::filter::SortKey;
use crate::state::ListView;
use crate::theme::Theme;
use torchlight_store::{Tag, TagKind};

pub struct Table<'a> {
    pub list: &'a ListView,
    pub data: &'a Data,
    pub marks: &'a HashSet<u32>,
    pub space: usize,
    pub theme: &'a Theme,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Col {
    Mark,
    Id,
    Label,
    Pred,
    Outlier,
    Nn,
    Quality,
    /// The drift column the list is sorted by.
    Drift(SortKey),
    Flags,
    Tag,
    Source,
}

impl Col {
    fn header(self) -> &'static str {
        match self {
            Col::Mark => "",
            Col::Id => "id",
            Col::Label => "label",
            Col::Pred => "pred",
            Col::Outlier => "outlier",
            Col::Nn => "nn dist",
            Col::Quality => "lq",
            Col::Drift(SortKey::DriftJaccard) => "jaccard",
            Col::Drift(SortKey::DriftMovement) => "moved",
            Col::Drift(_) => "rank Δ",
            Col::Flags => "flag",
            Col::Tag => "tag",
            Col::Source => "source",
        }
    }

    fn width(self) -> Constraint {
        match self {
            Col::Mark => Constraint::Length(1),
            Col::Id => Constraint::Length(7),
            Col::Label | Col::Pred => Constraint::Length(10),
            Col::Outlier | Col::Nn | Col::Drift(_) => Constraint::Length(8),
            Col::Quality => Constraint::Length(5),
            Col::Flags => Constraint::Length(4),
            Col::Tag => Constraint::Length(5),
            Col::Source => Constraint::Min(4),
        }
    }

    fn sort_key(self) -> Option<SortKey> {
        match self {
            Col::Id => Some(SortKey::Id),
            Col::Label => Some(SortKey::Label),
            Col::Pred => Some(SortKey::Pred),
            Col::Outlier => Some(SortKey::Outlier),
            Col::Nn => Some(SortKey::NnDistance),
            Col::Quality => Some(SortKey::LabelQuality),
            Col::Tag => Some(SortKey::Tag),
            Col::Drift(k) => Some(k),
            _ => None,
        }
    }
}

/// Which columns fit: the narrowest layout still shows the sorted column. A drift sort shows its column
/// in the place of the nearest-neighbour distance, or of the label quality.
fn columns(width: u16, sort: SortKey) -> Vec<Col> {
    use Col::*;
    if width >= 90 {
        let mut c = vec![Mark, Id, Label, Pred, Outlier, Nn, Quality, Flags, Tag, Source];
        if sort.is_drift() {
            c[5] = Drift(sort);
        }
        return c;
    }
    if width >= 58 {
        let mut c = vec![Mark, Id, Label, Pred, Outlier, Quality, Flags, Tag, Source];
        if sort == SortKey::NnDistance {
            c[5] = Nn;
        } else if sort.is_drift() {
            c[5] = Drift(sort);
        }
        return c;
    }
    let score = match sort {
        SortKey::NnDistance => Nn,
        SortKey::LabelQuality => Quality,
        SortKey::Pred => Pred,
        k if k.is_drift() => Drift(k),
        _ => Outlier,
    };
    vec![Mark, Id, Label, score, Flags, Tag, Source]
}

fn tag_text(tag: Option<&Tag>) -> String {
    let Some(t) = tag else { return String::new() };
    let kind = match t.kind {
        Some(TagKind::Ok) => "ok",
        Some(TagKind::Outlier) => "outl",
        Some(TagKind::Mislabeled) => "misl",
        Some(TagKind::Duplicate) => "dup",
        None => "",
    };
    let extra = if t.new_label.is_some() || t.note.is_some() { "+" } else { "" };
    format!("{kind}{extra}")
}

fn num(v: Option<f32>) -> String {
    match v {
        Some(v) if v.is_finite() => format!("{v:.4}"),
        Some(_) => "nan".into(),
        None => "-".into(),
    }
}

impl Widget for Table<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let (t, list) = (self.theme, self.list);
        let title = format!(" items {}/{} ", list.shown().len(), self.data.items);
        let block = Block::bordered().border_style(t.focus_border()).title(title).title_style(t.title());
        if list.shown().is_empty() {
            let msg = "No item matches the filter: c clears filters.";
            Paragraph::new(msg).style(t.dim()).block(block).render(area, buf);
            return;
        }
        let cols = columns(area.width.saturating_sub(2), list.sort());
        let arrow = if list.desc() { "↓" } else { "↑" };
        let header = Row::new(cols.iter().map(|c| {
            let mut h = c.header().to_string();
            if c.sort_key() == Some(list.sort()) {
                h.push_str(arrow);
            }
            Cell::from(h)
        }))
        .style(t.header());
        let rows = list.rows().iter().enumerate().map(|(i, row)| {
            let r = Row::new(cols.iter().map(|&c| self.cell(c, row)));
            if list.top() + i == list.cursor() { r.style(t.selected_row()) } else { r }
        });
        RTable::new(rows, cols.iter().map(|c| c.width()))
            .header(header)
            .column_spacing(1)
            .block(block)
            .render(area, buf);
    }
}

impl Table<'_> {
    fn cell(&self, col: Col, row: &crate::state::list::Row) -> Cell<'static> {
        let (t, d, space) = (self.theme, self.data, self.space);
        let id = row.id;
        let idx = id as usize;
        let label = d.label[idx];
        let sp = d.spaces.get(space);
        match col {
            Col::Mark if self.marks.contains(&id) => Cell::from(Span::styled("●", t.marked())),
            Col::Mark => Cell::from(" "),
            Col::Id => Cell::from(id.to_string()),
            Col::Label => Cell::from(Span::styled(d.label_name(label).to_string(), t.label(label))),
            Col::Pred => match d.pred(space, id) {
                Some(p) => {
                    let style = if p != label && label != NO_LABEL { t.warn() } else { t.label(p) };
                    Cell::from(Span::styled(d.label_name(p).to_string(), style))
                }
                None => Cell::from("-"),
            },
            Col::Outlier => {
                let v = sp.and_then(|s| s.outlier.as_ref()).map(|o| o[idx]);
                let style = if d.is_outlier(space, id) { t.outlier() } else { Style::new() };
                Cell::from(Span::styled(num(v), style))
            }
            Col::Nn => Cell::from(num(sp.and_then(|s| s.nn_distance.as_ref()).map(|o| o[idx]))),
            Col::Quality => Cell::from(match d.label_quality(space, id) {
                Some(q) => format!("{q:.2}"),
                None => "-".into(),
            }),
            Col::Drift(k) => {
                let column = match k {
                    SortKey::DriftJaccard => &d.drift.knn_jaccard,
                    SortKey::DriftMovement => &d.drift.movement,
                    _ => &d.drift.rank_change,
                };
                let v = column.as_ref().map(|c| c[idx]);
                Cell::from(if k == SortKey::DriftRankChange {
                    v.map_or("-".into(), |v| format!("{v:+.0}"))
                } else {
                    num(v)
                })
            }
            Col::Flags => {
                let mut spans = Vec::new();
                if d.near_duplicate(space, id) {
                    spans.push(Span::styled("D", t.tag(TagKind::Duplicate)));
                }
                if d.nn_flag(space, id) {
                    spans.push(Span::styled("n", t.dim()));
                }
                if d.label_issue(space, id) {
                    spans.push(Span::styled("!", t.tag(TagKind::Mislabeled)));
                }
                if d.is_outlier(space, id) {
                    spans.push(Span::styled("o", t.outlier()));
                }
                Cell::from(Line::from(spans))
            }
            Col::Tag => {
                let tag = d.tags.get(&id);
                let style = tag.and_then(|x| x.kind).map_or(Style::new(), |k| t.tag(k));
                Cell::from(Span::styled(tag_text(tag), style))
            }
            Col::Source => Cell::from(row.source.clone()),
        }
    }
}
