//! The status line (store, space, sort, filter, counts) and the key hint / message line under it.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Widget;

use crate::app::{App, FlagFilter, TagFilter};

pub struct Status<'a>(pub &'a App);

/// The active filters in words, empty when none.
pub fn filter_text(app: &App) -> String {
    let f = &app.filter;
    let d = &app.data;
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
        let app = self.0;
        let t = &app.theme;
        buf.set_style(area, t.status());
        let sort = if app.filter.like.is_some() {
            "similarity".to_string()
        } else {
            format!("{}{}", app.sort.name(), if app.desc { "↓" } else { "↑" })
        };
        let filter = filter_text(app);
        let mut spans = vec![
            Span::raw(format!(" {} ", app.store_label)),
            Span::raw("│ "),
            Span::styled(app.space_name().to_string(), t.key()),
            Span::raw(" │ sort "),
            Span::raw(sort),
            Span::raw(" │ "),
        ];
        if !filter.is_empty() {
            spans.push(Span::raw(format!("filter {filter} │ ")));
        }
        spans.push(Span::raw(format!("{}/{} shown", app.view.len(), app.data.items)));
        if !app.marks.is_empty() {
            spans.push(Span::styled(format!(" │ {} marked", app.marks.len()), t.marked()));
        }
        if !app.data.complete && app.data.dataset.is_some() {
            spans.push(Span::styled(" │ ingest incomplete (R rereads)", t.warn()));
        }
        Line::from(spans).render(area, buf);
    }
}

pub struct Hints<'a>(pub &'a App);

impl Widget for Hints<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let app = self.0;
        let t = &app.theme;
        if let Some(m) = &app.message {
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
