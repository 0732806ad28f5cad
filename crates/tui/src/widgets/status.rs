//! The status line (store, space, sort, filter, counts) and the key hint / message line under it.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Style;
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

/// One part of the status line, and how it gives way when the line is too long.
struct Part {
    text: String,
    style: Style,
    /// Parts give way lowest rank first; `KEEP` never does.
    rank: u8,
    /// A shorter text to try before the part is dropped.
    short: Option<String>,
    /// Whether the text may be cut (with an ellipsis) before the part is dropped.
    elide: bool,
}

const KEEP: u8 = u8::MAX;
const SEPARATOR: &str = " │ ";

impl Part {
    fn new(text: String, style: Style, rank: u8) -> Part {
        Part { text, style, rank, short: None, elide: false }
    }
}

fn width(s: &str) -> usize {
    Span::raw(s).width()
}

/// `s` cut to at most `w` columns, the last of them an ellipsis.
fn elide(s: &str, w: usize) -> String {
    let mut out = String::new();
    for c in s.chars() {
        out.push(c);
        if width(&out) + 1 > w {
            out.pop();
            break;
        }
    }
    let mut out = out.trim_end().to_string();
    out.push('…');
    out
}

/// Shortens, cuts or drops parts, lowest rank first, until the line fits `w` columns or only the parts
/// that are always kept are left.
fn fit(mut parts: Vec<Part>, w: usize) -> Vec<Part> {
    loop {
        let total =
            1 + parts.iter().map(|p| width(&p.text)).sum::<usize>() + width(SEPARATOR) * parts.len().saturating_sub(1);
        let over = total.saturating_sub(w);
        let weakest = parts.iter().enumerate().filter(|(_, p)| p.rank != KEEP).min_by_key(|(_, p)| p.rank);
        let (Some((i, _)), true) = (weakest, over > 0) else { return parts };
        let part = &mut parts[i];
        if let Some(short) = part.short.take() {
            part.text = short;
        } else if part.elide && width(&part.text) > over + MIN_ELIDED {
            part.text = elide(&part.text, width(&part.text) - over);
            part.elide = false;
        } else {
            parts.remove(i);
        }
    }
}

/// Shorter than this, a cut filter says too little to be worth its room.
const MIN_ELIDED: usize = 12;

impl Widget for Status<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let (t, list, d) = (self.theme, self.list, self.data);
        buf.set_style(area, t.status());
        let sort = if list.filter().like.is_some() {
            "similarity".to_string()
        } else {
            format!("{}{}", list.sort().name(), if list.desc() { "↓" } else { "↑" })
        };
        let plain = Style::new();
        let mut store = Part::new(self.store_label.to_string(), plain, 0);
        let base = std::path::Path::new(self.store_label).file_name().map(|n| n.to_string_lossy().into_owned());
        store.short = base.filter(|b| b != self.store_label);
        let mut parts = vec![
            store,
            Part::new(self.space_name.to_string(), t.key(), 3),
            Part::new(format!("sort {sort}"), plain, 2),
        ];
        let filter = filter_text(list.filter(), d);
        if !filter.is_empty() {
            parts.push(Part { elide: true, ..Part::new(format!("filter {filter}"), plain, 1) });
        }
        parts.push(Part::new(format!("{}/{} shown", list.shown().len(), d.items), plain, KEEP));
        if self.marked > 0 {
            parts.push(Part::new(format!("{} marked", self.marked), t.marked(), 5));
        }
        if !d.complete && d.dataset.is_some() {
            let short = Some("ingest incomplete".to_string());
            parts.push(Part { short, ..Part::new("ingest incomplete (R rereads)".into(), t.warn(), 4) });
        }
        let mut spans = vec![Span::raw(" ")];
        for (i, p) in fit(parts, area.width as usize).into_iter().enumerate() {
            if i > 0 {
                spans.push(Span::raw(SEPARATOR));
            }
            spans.push(Span::styled(p.text, p.style));
        }
        Line::from(spans).render(area, buf);
    }
}

pub struct Hints<'a> {
    /// Shown instead of the hints when set.
    pub message: Option<&'a str>,
    pub drift: DriftHint,
    pub theme: &'a Theme,
}

/// What the hints say about the drift view.
#[derive(Clone, Copy)]
pub struct DriftHint {
    /// The store has a checkpoint series or the foundation/fine-tuned pair.
    pub available: bool,
    pub on: bool,
    pub playing: bool,
}

impl Widget for Hints<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let t = self.theme;
        if let Some(m) = self.message {
            Line::from(Span::styled(format!(" {m}"), t.message())).render(area, buf);
            return;
        }
        let drift: &[(&str, &str)] = match self.drift {
            DriftHint { on: true, playing, .. } => {
                &[("[ ]", "step"), ("P", if playing { "stop" } else { "play" }), ("F", "close drift"), ("?", "help")]
            }
            DriftHint { available: true, .. } => &[("F", "drift")],
            _ => &[],
        };
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
        // In the drift view its keys come first; a store with a series names the view's key first.
        let rest = if self.drift.on { &keys[1..] } else { &keys[..] };
        for &(k, what) in drift.iter().chain(rest) {
            spans.push(Span::styled(k, t.key()));
            spans.push(Span::raw(format!(" {what}  ")));
        }
        Line::from(spans).render(area, buf);
    }
}
