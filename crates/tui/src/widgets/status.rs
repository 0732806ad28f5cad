//! The status line (store, space, sort, filter, counts) and the key hint / message line under it.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Widget;

use crate::data::Data;
use crate::filter::{Filter, FlagFilter, TagFilter};
use crate::state::ListView;
use crate::theme::Theme;

pub struct Status<'a> {
    pub store_label: &'a str,
    pub space_name: &'a str,
    pub list: &'a ListView,
    pub data: &'a Data,
    /// Items marked for a bulk action.
    pub marked: usize,
    pub theme: &'a Theme,
}

/// The active filters in words, empty when none.
fn filter_text(f: &Filter, d: &Data) -> String {
    let mut parts = Vec::new();
    if let Some(like) = &f.like {
        let space = d.spaces.get(like.space).map_or("-", |s| s.name.as_str());
        parts.push(format!("like #{} ({space})", like.id));
    }
    if let Some(l) = f.label {
        parts.push(format!("label={}", d.label_name(l)));
    }
    if let Some(p) = f.pred {
        parts.push(format!("pred={}", d.label_name(p)));
    }
    if f.tag != TagFilter::Any {
        parts.push(format!("tag={}", f.tag.name()));
    }
    if f.flag != FlagFilter::None {
        parts.push(f.flag.name().to_string());
    }
    if let Some((text, _)) = &f.source {
        parts.push(format!("source~/{text}/"));
    }
    parts.join(" ")
}

impl Widget for Status<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let (t, list, d) = (self.theme, self.list, self.data);
        buf.set_style(area, t.status());
        let sort = if list.filter().like.is_some() {
            "similarity".to_string()
        } else {
            format!("{}{}", list.sort().name(), if list.desc() { "↓" } else { "↑" })
        };
        let filter = filter_text(list.filter(), d);
        let mut spans = vec![
            Span::raw(format!(" {} ", self.store_label)),
            Span::raw("│ "),
            Span::styled(self.space_name.to_string(), t.key()),
            Span::raw(" │ sort "),
            Span::raw(sort),
            Span::raw(" │ "),
        ];
        if !filter.is_empty() {
            spans.push(Span::raw(format!("filter {filter} │ ")));
        }
        spans.push(Span::raw(format!("{}/{} shown", list.shown().len(), d.items)));
        if self.marked > 0 {
            spans.push(Span::styled(format!(" │ {} marked", self.marked), t.marked()));
        }
        if !d.complete && d.dataset.is_some() {
            spans.push(Span::styled(" │ ingest incomplete (R rereads)", t.warn()));
        }
        Line::from(spans).render(area, buf);
    }
}

pub struct Hints<'a> {
    /// Shown instead of the hints when set.
    pub message: Option<&'a str>,
    pub theme: &'a Theme,
}

impl Widget for Hints<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let t = self.theme;
        if let Some(m) = self.message {
            Line::from(Span::styled(format!(" {m}"), t.message())).render(area, buf);
            return;
        }
        let keys = [
            ("?", "help"),
            ("q", "quit"),
            ("s/r", "sort"),
            ("a x m d", "tag"),
            ("e", "label"),
            ("u", "undo"),
            ("/ l t f", "filter"),
            ("*", "like"),
            ("Tab", "space"),
            ("v", "both"),
        ];
        let mut spans = vec![Span::raw(" ")];
        for (k, what) in keys {
            spans.push(Span::styled(k, t.key()));
            spans.push(Span::raw(format!(" {what}  ")));
        }
        Line::from(spans).render(area, buf);
    }
}
