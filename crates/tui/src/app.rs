//! The browser's whole state and its one way to change: `update(action)`. Drawing (`widgets/`) only reads it.
//!
//! The shown list is a vector of item ids: filtering and sorting rebuild it from the flat columns in
//! `Data`; the table draws only the rows on screen, whose sources `update` reads from the store. Every
//! triage action is one committed write transaction, so a killed browser loses nothing.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use ratatui::layout::{Constraint, Layout, Rect};
use regex::Regex;

use super::action::Action;
use super::data::{self, Data, NO_LABEL};
use super::event::Event;
use super::keys;
use super::preview::{Graphics, Picture, Plotted, Plotter, Rendered, Request, Want, Worker};
use super::theme::Theme;
use super::widgets::{inspector, scatter};
use torchlight_store::{Item, Result, Store, Tag, TagKind};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    Outlier,
    NnDistance,
    LabelQuality,
    Label,
    Pred,
    Id,
    Tag,
}

impl SortKey {
    pub const ALL: [SortKey; 7] = [
        SortKey::Outlier,
        SortKey::NnDistance,
        SortKey::LabelQuality,
        SortKey::Label,
        SortKey::Pred,
        SortKey::Id,
        SortKey::Tag,
    ];

    pub fn name(self) -> &'static str {
        match self {
            SortKey::Outlier => "outlier score",
            SortKey::NnDistance => "nn distance",
            SortKey::LabelQuality => "label quality",
            SortKey::Label => "label",
            SortKey::Pred => "predicted",
            SortKey::Id => "id",
            SortKey::Tag => "tag",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagFilter {
    Any,
    Untagged,
    Tagged,
    Kind(TagKind),
    Relabelled,
}

impl TagFilter {
    fn next(self) -> TagFilter {
        match self {
            TagFilter::Any => TagFilter::Untagged,
            TagFilter::Untagged => TagFilter::Tagged,
            TagFilter::Tagged => TagFilter::Kind(TagKind::Ok),
            TagFilter::Kind(TagKind::Ok) => TagFilter::Kind(TagKind::Outlier),
            TagFilter::Kind(TagKind::Outlier) => TagFilter::Kind(TagKind::Mislabeled),
            TagFilter::Kind(TagKind::Mislabeled) => TagFilter::Kind(TagKind::Duplicate),
            TagFilter::Kind(TagKind::Duplicate) => TagFilter::Relabelled,
            TagFilter::Relabelled => TagFilter::Any,
        }
    }

    pub fn name(self) -> String {
        match self {
            TagFilter::Any => "any".into(),
            TagFilter::Untagged => "untagged".into(),
            TagFilter::Tagged => "tagged".into(),
            TagFilter::Kind(k) => k.as_str().into(),
            TagFilter::Relabelled => "relabelled".into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagFilter {
    None,
    NearDuplicate,
    LabelIssue,
    Outlier,
}

impl FlagFilter {
    fn next(self) -> FlagFilter {
        match self {
            FlagFilter::None => FlagFilter::NearDuplicate,
            FlagFilter::NearDuplicate => FlagFilter::LabelIssue,
            FlagFilter::LabelIssue => FlagFilter::Outlier,
            FlagFilter::Outlier => FlagFilter::None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            FlagFilter::None => "none",
            FlagFilter::NearDuplicate => "near-duplicate",
            FlagFilter::LabelIssue => "label-issue",
            FlagFilter::Outlier => "outlier (lowest 1%)",
        }
    }
}

/// 'More like this': an item's arroy neighbours in one space, nearest first.
#[derive(Debug, Clone)]
pub struct Like {
    pub id: u32,
    pub space: usize,
    pub found: Vec<(u32, f32)>,
}

#[derive(Debug, Clone)]
pub struct Filter {
    pub label: Option<u32>,
    pub pred: Option<u32>,
    pub tag: TagFilter,
    pub flag: FlagFilter,
    pub source: Option<(String, Regex)>,
    pub like: Option<Like>,
}

impl Default for Filter {
    fn default() -> Self {
        Filter { label: None, pred: None, tag: TagFilter::Any, flag: FlagFilter::None, source: None, like: None }
    }
}

impl Filter {
    pub fn is_empty(&self) -> bool {
        self.label.is_none()
            && self.pred.is_none()
            && self.tag == TagFilter::Any
            && self.flag == FlagFilter::None
            && self.source.is_none()
            && self.like.is_none()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputPurpose {
    Note,
    Source,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PickPurpose {
    Relabel,
    Label,
    Pred,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    Normal,
    Help,
    Input { purpose: InputPurpose, text: String },
    Picker { purpose: PickPurpose, cursor: usize },
}

/// A table row on screen.
#[derive(Debug, Clone)]
pub struct Row {
    pub id: u32,
    pub source: String,
}

/// The selected item, read from the store when the selection changes.
#[derive(Debug, Clone)]
pub struct Inspect {
    pub id: u32,
    pub item: Option<Item>,
    /// k nearest neighbours in the current space, from the analysis (id, cosine distance).
    pub neighbours: Vec<(u32, f32)>,
    /// Probability of the predicted class (read per item: no sort or filter needs the whole column).
    pub confidence: Option<f32>,
}

/// Zoom and pan of the scatter panel.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScatterView {
    pub zoom: f32,
    /// Pan, as fractions of the projection's extent.
    pub pan: (f32, f32),
    pub side_by_side: bool,
}

impl Default for ScatterView {
    fn default() -> Self {
        ScatterView { zoom: 1.0, pan: (0.0, 0.0), side_by_side: false }
    }
}

/// Where each panel goes for a terminal of a given size; shared by `update` (page size, image sizes,
/// raster size) and drawing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Areas {
    pub table: Rect,
    pub inspector: Rect,
    /// One or two scatter panels (the second is empty unless side by side).
    pub scatter: [Rect; 2],
    pub status: Rect,
    pub hints: Rect,
}

pub fn layout(area: Rect, side_by_side: bool) -> Areas {
    let [body, status, hints] =
        Layout::vertical([Constraint::Min(3), Constraint::Length(1), Constraint::Length(1)]).areas(area);
    if side_by_side {
        let [table, plots] = Layout::vertical([Constraint::Percentage(40), Constraint::Min(4)]).areas(body);
        let [a, b] = Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(plots);
        return Areas { table, inspector: Rect::default(), scatter: [a, b], status, hints };
    }
    let [table, right] = Layout::horizontal([Constraint::Percentage(52), Constraint::Min(20)]).areas(body);
    let [inspector, plot] = Layout::vertical([Constraint::Percentage(50), Constraint::Min(4)]).areas(right);
    Areas { table, inspector, scatter: [plot, Rect::default()], status, hints }
}

/// Rows of the table that fit on screen (borders and header excluded).
pub fn table_rows(table: Rect) -> usize {
    table.height.saturating_sub(3) as usize
}

pub struct Options {
    /// How the status line names the store (the path, or a fixed name in tests).
    pub store_label: String,
    pub space: Option<String>,
    pub theme: Theme,
    /// Terminal size at start-up (columns, rows): the first view is laid out for it.
    pub size: (u16, u16),
}

pub struct App {
    pub store: Arc<Store>,
    pub store_label: String,
    pub data: Data,
    /// Every item's source; loaded the first time a source filter needs it.
    pub sources: Option<data::Sources>,
    pub theme: Theme,
    pub graphics: &'static str,
    pub space: usize,
    pub sort: SortKey,
    pub desc: bool,
    pub filter: Filter,
    /// Shown item ids, in order (shared with the pixel scatter's worker).
    pub view: Arc<Vec<u32>>,
    pub cursor: usize,
    /// First shown row.
    pub top: usize,
    pub marks: HashSet<u32>,
    /// Previous tag records of each triage action, newest last.
    pub undo: Vec<Vec<(u32, Option<Tag>)>>,
    pub mode: Mode,
    pub message: Option<String>,
    pub quit: bool,
    pub size: (u16, u16),
    pub rows: Vec<Row>,
    pub inspect: Option<Inspect>,
    pub scatter: ScatterView,
    pub rasters: Vec<scatter::Raster>,
    /// Pictures of the selected item and its neighbours, by item id.
    pub pictures: HashMap<u32, Picture>,
    pub picture_errors: HashMap<u32, String>,
    worker: Option<Worker>,
    last_request: Option<Request>,
    /// Pixel scatters by space, on pixel terminals; the braille raster shows until one for the current
    /// raster arrives.
    pub plots: HashMap<usize, (scatter::PlotKey, Picture)>,
    plotter: Option<Plotter>,
    last_plot: Vec<scatter::PlotKey>,
    /// Bumped whenever the rasters are rebuilt: a pixel scatter of an older raster is not shown.
    raster_gen: u64,
    /// Bumped whenever the set of shown items changes (not its order): the scatter depends on it.
    filter_gen: u64,
    raster_key: Option<RasterKey>,
}

/// What the scatter rasters depend on: space, shown set, plot size, zoom and pan bits, side by side.
type RasterKey = (usize, u64, (u16, u16), [u32; 4], bool);

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Sorts (key << 32 | id) words by key, stably: ids enter in ascending order, so ties stay in id order.
/// Three 11-bit LSD radix passes over the key (a pass whose digit is the same everywhere is skipped):
/// a million items in a few milliseconds, several times faster than a comparison sort.
fn radix_sort_by_high_word(mut v: Vec<u64>) -> Vec<u64> {
    let mut tmp = vec![0u64; v.len()];
    for shift in [32u32, 43, 54] {
        let digit = |x: u64| ((x >> shift) & 0x7ff) as usize;
        let mut count = [0usize; 2049];
        for &x in &v {
            count[digit(x) + 1] += 1;
        }
        if count.contains(&v.len()) {
            continue;
        }
        for i in 0..2048 {
            count[i + 1] += count[i];
        }
        for &x in &v {
            let d = digit(x);
            tmp[count[d]] = x;
            count[d] += 1;
        }
        std::mem::swap(&mut v, &mut tmp);
    }
    v
}

/// A re-sort frees tens of MB of keys and scratch; glibc keeps freed chunks of that size resident in its
/// arenas, so hand them back to the kernel (well under a millisecond).
fn release_freed_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free memory; it is safe to call at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Maps an f32 to a u32 with the same order (NaN last), so sorting is a sort of plain integers.
fn ordered(f: f32) -> u32 {
    if f.is_nan() {
        return u32::MAX;
    }
    let b = f.to_bits();
    if b >> 31 == 1 { !b } else { b | 0x8000_0000 }
}

impl App {
    /// Loads the store's columns and builds the first view. `tx` receives image worker results (with
    /// text-only graphics no worker starts).
    pub fn new(
        store: Arc<Store>,
        options: Options,
        graphics: &Graphics,
        tx: std::sync::mpsc::Sender<Event>,
    ) -> Result<App> {
        let data = Data::load(&store)?;
        let space =
            options.space.as_ref().and_then(|name| data.spaces.iter().position(|s| &s.name == name)).unwrap_or(0);
        let mut message = None;
        if let Some(name) = &options.space
            && data.spaces.get(space).is_none_or(|s| &s.name != name)
        {
            message = Some(format!("no space named {name}; showing the first one"));
        }
        let plotter = Plotter::spawn(graphics, tx.clone());
        let worker = Worker::spawn(store.clone(), graphics, tx);
        let mut app = App {
            store,
            store_label: options.store_label,
            data,
            sources: None,
            theme: options.theme,
            graphics: graphics.name(),
            space,
            sort: SortKey::Outlier,
            desc: false,
            filter: Filter::default(),
            view: Arc::default(),
            cursor: 0,
            top: 0,
            marks: HashSet::new(),
            undo: Vec::new(),
            mode: Mode::Normal,
            message,
            quit: false,
            size: options.size,
            rows: Vec::new(),
            inspect: None,
            scatter: ScatterView::default(),
            rasters: Vec::new(),
            pictures: HashMap::new(),
            picture_errors: HashMap::new(),
            worker,
            last_request: None,
            plots: HashMap::new(),
            plotter,
            last_plot: Vec::new(),
            raster_gen: 0,
            filter_gen: 0,
            raster_key: None,
        };
        if !app.has_sort_column(app.sort) {
            app.sort = SortKey::Id;
        }
        app.rebuild_view(None);
        Ok(app)
    }

    pub fn areas(&self) -> Areas {
        layout(Rect::new(0, 0, self.size.0, self.size.1), self.scatter.side_by_side)
    }

    pub fn selected(&self) -> Option<u32> {
        self.view.get(self.cursor).copied()
    }

    pub fn space_name(&self) -> &str {
        self.data.spaces.get(self.space).map_or("-", |s| s.name.as_str())
    }

    /// Feeds one event from the channel; returns whether the screen needs drawing.
    pub fn handle(&mut self, ev: Event) -> bool {
        match ev {
            Event::Term(crossterm::event::Event::Key(key)) => match keys::action(&self.mode, key) {
                Some(a) => {
                    self.update(a);
                    true
                }
                None => false,
            },
            Event::Term(crossterm::event::Event::Resize(w, h)) => {
                self.resize(w, h);
                true
            }
            Event::Term(crossterm::event::Event::Mouse(m)) => self.mouse(m),
            Event::Term(_) | Event::Tick => false,
            Event::Preview(r) => self.picture_ready(r),
            Event::Plot(p) => self.plot_ready(p),
        }
    }

    fn mouse(&mut self, m: crossterm::event::MouseEvent) -> bool {
        use crossterm::event::{MouseButton, MouseEventKind};
        if self.mode != Mode::Normal {
            return false;
        }
        match m.kind {
            MouseEventKind::ScrollDown => self.update(Action::Move(3)),
            MouseEventKind::ScrollUp => self.update(Action::Move(-3)),
            MouseEventKind::Down(MouseButton::Left) => {
                let t = self.areas().table;
                // Rows start below the border and the header.
                if m.column > t.x && m.column < t.right() && m.row >= t.y + 2 && m.row < t.bottom().saturating_sub(1) {
                    self.update(Action::Select(self.top + (m.row - t.y - 2) as usize));
                } else {
                    return false;
                }
            }
            _ => return false,
        }
        true
    }

    pub fn resize(&mut self, w: u16, h: u16) {
        self.size = (w, h);
        self.after_move();
    }

    fn picture_ready(&mut self, r: Rendered) -> bool {
        if Some(r.selection) != self.selected() {
            return false; // the cursor has moved on
        }
        match r.picture {
            Ok(p) => {
                self.pictures.insert(r.want.item, p);
            }
            Err(e) => {
                self.picture_errors.insert(r.want.item, e);
            }
        }
        true
    }

    fn plot_ready(&mut self, p: Plotted) -> bool {
        if p.key.raster != self.raster_gen {
            return false; // drawn for a raster that has since changed
        }
        match p.picture {
            Ok(picture) => {
                self.plots.insert(p.space, (p.key, picture));
                true
            }
            // The braille raster stays; say why once.
            Err(e) => {
                self.message = Some(format!("pixel scatter: {e}"));
                true
            }
        }
    }

    /// The pixel scatter to draw for a raster, if one of this raster has arrived.
    pub fn plot_picture(&self, r: &scatter::Raster) -> Option<&Picture> {
        self.plots.get(&r.space).filter(|(k, _)| k.raster == self.raster_gen).map(|(_, p)| p)
    }

    pub fn update(&mut self, action: Action) {
        match self.mode.clone() {
            Mode::Normal => self.normal(action),
            Mode::Help => self.mode = Mode::Normal,
            Mode::Input { purpose, text } => self.input(purpose, text, action),
            Mode::Picker { purpose, cursor } => self.picker(purpose, cursor, action),
        }
    }

    fn page(&self) -> i64 {
        table_rows(self.areas().table).max(1) as i64
    }

    fn normal(&mut self, action: Action) {
        let n = self.view.len();
        match action {
            Action::Quit => self.quit = true,
            Action::Move(d) => self.move_to(self.cursor as i64 + d),
            Action::PageDown => self.move_to(self.cursor as i64 + self.page()),
            Action::PageUp => self.move_to(self.cursor as i64 - self.page()),
            Action::Top => self.move_to(0),
            Action::Bottom => self.move_to(n as i64 - 1),
            Action::Select(row) if row < n => self.move_to(row as i64),
            Action::Select(_) => {}
            Action::NextSort => {
                let at = SortKey::ALL.iter().position(|&k| k == self.sort).unwrap_or(0);
                let mut next = self.sort;
                for i in 1..=SortKey::ALL.len() {
                    let k = SortKey::ALL[(at + i) % SortKey::ALL.len()];
                    if self.has_sort_column(k) {
                        next = k;
                        break;
                    }
                }
                self.sort = next;
                self.desc = false;
                self.rebuild_view(self.selected());
            }
            Action::ReverseSort => {
                self.desc = !self.desc;
                self.rebuild_view(self.selected());
            }
            Action::Tag(kind) => {
                if let Some(id) = self.selected() {
                    let mut tag = self.data.tags.get(&id).cloned().unwrap_or_default();
                    tag.kind = if tag.kind == Some(kind) { None } else { Some(kind) };
                    let verb = if tag.kind.is_some() { "tagged" } else { "untagged" };
                    if self.write_tags(vec![(id, tag)]) {
                        self.message = Some(format!("#{id} {verb} {}", kind.as_str()));
                        self.move_to(self.cursor as i64 + 1);
                    }
                }
            }
            Action::BulkTag(kind) => {
                let targets: Vec<u32> = if self.marks.is_empty() {
                    self.view.to_vec()
                } else {
                    let mut m: Vec<u32> = self.marks.iter().copied().collect();
                    m.sort_unstable();
                    m
                };
                let changes: Vec<(u32, Tag)> = targets
                    .iter()
                    .map(|&id| {
                        let mut tag = self.data.tags.get(&id).cloned().unwrap_or_default();
                        tag.kind = Some(kind);
                        (id, tag)
                    })
                    .collect();
                let count = changes.len();
                if count > 0 && self.write_tags(changes) {
                    let what = if self.marks.is_empty() { "shown" } else { "marked" };
                    self.marks.clear();
                    self.message = Some(format!("tagged {count} {what} items {} (u undoes)", kind.as_str()));
                }
            }
            Action::Relabel => {
                if let Some(id) = self.selected() {
                    let current = self.data.tags.get(&id).and_then(|t| t.new_label).map_or(0, |l| l as usize + 1);
                    self.mode = Mode::Picker { purpose: PickPurpose::Relabel, cursor: current };
                }
            }
            Action::Note => {
                if let Some(id) = self.selected() {
                    let text = self.data.tags.get(&id).and_then(|t| t.note.clone()).unwrap_or_default();
                    self.mode = Mode::Input { purpose: InputPurpose::Note, text };
                }
            }
            Action::Undo => self.undo(),
            Action::ToggleMark => {
                if let Some(id) = self.selected() {
                    if !self.marks.remove(&id) {
                        self.marks.insert(id);
                    }
                    self.move_to(self.cursor as i64 + 1);
                }
            }
            Action::Escape => {
                self.marks.clear();
                self.message = None;
            }
            Action::SourceFilter => {
                let text = self.filter.source.as_ref().map(|s| s.0.clone()).unwrap_or_default();
                self.mode = Mode::Input { purpose: InputPurpose::Source, text };
            }
            Action::LabelFilter => {
                let cursor = self.filter.label.map_or(0, |l| l as usize + 1);
                self.mode = Mode::Picker { purpose: PickPurpose::Label, cursor };
            }
            Action::PredFilter => {
                if self.data.spaces.iter().all(|s| s.pred.is_none()) {
                    self.message = Some("no predicted labels in this store (no classifier head)".into());
                } else {
                    let cursor = self.filter.pred.map_or(0, |l| l as usize + 1);
                    self.mode = Mode::Picker { purpose: PickPurpose::Pred, cursor };
                }
            }
            Action::CycleTagFilter => {
                self.filter.tag = self.filter.tag.next();
                self.rebuild_view(self.selected());
            }
            Action::CycleFlagFilter => {
                self.filter.flag = self.filter.flag.next();
                self.rebuild_view(self.selected());
            }
            Action::MoreLikeThis => self.more_like_this(),
            Action::ClearFilters => {
                self.filter = Filter::default();
                self.rebuild_view(self.selected());
            }
            Action::NextSpace => {
                if !self.data.spaces.is_empty() {
                    self.space = (self.space + 1) % self.data.spaces.len();
                    self.message = Some(format!("space {}", self.space_name()));
                    self.rebuild_view(self.selected());
                    self.inspect = None; // neighbours differ per space
                    self.after_move();
                }
            }
            Action::SideBySide => {
                self.scatter.side_by_side = !self.scatter.side_by_side;
                self.after_move();
            }
            Action::ZoomIn => {
                self.scatter.zoom = (self.scatter.zoom * 1.5).min(200.0);
                self.after_move();
            }
            Action::ZoomOut => {
                self.scatter.zoom = (self.scatter.zoom / 1.5).max(1.0);
                self.after_move();
            }
            Action::Pan(dx, dy) => {
                let z = self.scatter.zoom;
                self.scatter.pan = (self.scatter.pan.0 + dx / z, self.scatter.pan.1 + dy / z);
                self.after_move();
            }
            Action::ResetView => {
                self.scatter = ScatterView { side_by_side: self.scatter.side_by_side, ..ScatterView::default() };
                self.after_move();
            }
            Action::Refresh => self.refresh(),
            Action::Help => self.mode = Mode::Help,
            Action::Char(_) | Action::Backspace | Action::Confirm | Action::PickerMove(_) => {}
        }
    }

    fn input(&mut self, purpose: InputPurpose, mut text: String, action: Action) {
        match action {
            Action::Char(c) => {
                text.push(c);
                self.mode = Mode::Input { purpose, text };
            }
            Action::Backspace => {
                text.pop();
                self.mode = Mode::Input { purpose, text };
            }
            Action::Escape => self.mode = Mode::Normal,
            Action::Confirm => {
                self.mode = Mode::Normal;
                match purpose {
                    InputPurpose::Note => {
                        if let Some(id) = self.selected() {
                            let mut tag = self.data.tags.get(&id).cloned().unwrap_or_default();
                            tag.note = (!text.trim().is_empty()).then(|| text.trim().to_string());
                            if self.write_tags(vec![(id, tag)]) {
                                self.message = Some(format!("#{id} note saved"));
                            }
                        }
                    }
                    InputPurpose::Source => self.set_source_filter(&text),
                }
            }
            Action::Quit => self.quit = true,
            _ => self.mode = Mode::Input { purpose, text },
        }
    }

    /// Entries of a picker: "(any)" / "(clear)" then the class names.
    pub fn picker_len(&self) -> usize {
        self.data.label_names.len() + 1
    }

    fn picker(&mut self, purpose: PickPurpose, cursor: usize, action: Action) {
        match action {
            Action::PickerMove(d) => {
                let c = (cursor as i64 + d).clamp(0, self.picker_len() as i64 - 1) as usize;
                self.mode = Mode::Picker { purpose, cursor: c };
            }
            Action::Escape => self.mode = Mode::Normal,
            Action::Quit => self.quit = true,
            Action::Confirm => {
                self.mode = Mode::Normal;
                let choice = cursor.checked_sub(1).map(|c| c as u32);
                match purpose {
                    PickPurpose::Relabel => {
                        if let Some(id) = self.selected() {
                            let mut tag = self.data.tags.get(&id).cloned().unwrap_or_default();
                            tag.new_label = choice;
                            if self.write_tags(vec![(id, tag)]) {
                                self.message = Some(match choice {
                                    Some(l) => format!("#{id} relabelled {}", self.data.label_name(l)),
                                    None => format!("#{id} new label cleared"),
                                });
                            }
                        }
                    }
                    PickPurpose::Label => {
                        self.filter.label = choice;
                        self.rebuild_view(self.selected());
                    }
                    PickPurpose::Pred => {
                        self.filter.pred = choice;
                        self.rebuild_view(self.selected());
                    }
                }
            }
            _ => {}
        }
    }

    fn set_source_filter(&mut self, text: &str) {
        if text.is_empty() {
            self.filter.source = None;
        } else {
            match Regex::new(text) {
                Ok(re) => {
                    if self.sources.is_none() {
                        match data::sources(&self.store) {
                            Ok(s) => self.sources = Some(s),
                            Err(e) => {
                                self.message = Some(format!("reading sources: {e}"));
                                return;
                            }
                        }
                    }
                    self.filter.source = Some((text.to_string(), re));
                }
                Err(e) => {
                    self.message = Some(format!("not a regular expression: {e}"));
                    return;
                }
            }
        }
        self.rebuild_view(self.selected());
    }

    fn more_like_this(&mut self) {
        let Some(id) = self.selected() else { return };
        let Some(sp) = self.data.spaces.get(self.space) else { return };
        if !sp.has_ann {
            self.message = Some(format!("space {} has no arroy index: run `torchlight analyze`", sp.name));
            return;
        }
        let found = self.store.read_txn().and_then(|r| self.store.ann_by_item(&r, sp.index, id, 50, None));
        match found {
            Ok(mut found) => {
                found.insert(0, (id, 0.0));
                self.message = Some(format!("{} items like #{id} in {}", found.len() - 1, sp.name));
                self.filter.like = Some(Like { id, space: self.space, found });
                self.rebuild_view(Some(id));
            }
            Err(e) => self.message = Some(format!("more like this: {e}")),
        }
    }

    /// Writes tag records in one transaction and remembers what they replace for undo. False (with a
    /// message) when the store refused the write.
    fn write_tags(&mut self, changes: Vec<(u32, Tag)>) -> bool {
        let result = (|| -> Result<()> {
            let mut w = self.store.write_txn()?;
            for (id, tag) in &changes {
                let mut tag = tag.clone();
                tag.updated = now();
                self.store.put_tag(&mut w, *id, &tag)?;
            }
            self.store.commit(w)
        })();
        if let Err(e) = result {
            self.message = Some(format!("not saved: {e}"));
            return false;
        }
        let mut previous = Vec::with_capacity(changes.len());
        for (id, mut tag) in changes {
            tag.updated = now();
            let old = if tag.is_empty() { self.data.tags.remove(&id) } else { self.data.tags.insert(id, tag) };
            previous.push((id, old));
        }
        self.undo.push(previous);
        true
    }

    fn undo(&mut self) {
        let Some(previous) = self.undo.pop() else {
            self.message = Some("nothing to undo".into());
            return;
        };
        let result = (|| -> Result<()> {
            let mut w = self.store.write_txn()?;
            for (id, old) in &previous {
                self.store.put_tag(&mut w, *id, &old.clone().unwrap_or_default())?;
            }
            self.store.commit(w)
        })();
        match result {
            Ok(()) => {
                for (id, old) in &previous {
                    match old {
                        Some(t) => self.data.tags.insert(*id, t.clone()),
                        None => self.data.tags.remove(id),
                    };
                }
                self.message =
                    Some(format!("undone ({} item{})", previous.len(), if previous.len() == 1 { "" } else { "s" }));
            }
            Err(e) => {
                self.message = Some(format!("undo not saved: {e}"));
                self.undo.push(previous);
            }
        }
    }

    fn refresh(&mut self) {
        match Data::load(&self.store) {
            Ok(d) => {
                let keep = self.selected();
                self.data = d;
                self.sources = None;
                if let Some((text, _)) = self.filter.source.clone() {
                    self.set_source_filter(&text);
                }
                self.space = self.space.min(self.data.spaces.len().saturating_sub(1));
                self.inspect = None;
                self.message = Some(format!("reread: {} items", self.data.items));
                self.rebuild_view(keep);
            }
            Err(e) => self.message = Some(format!("reread failed: {e}")),
        }
    }

    pub fn has_sort_column(&self, key: SortKey) -> bool {
        let sp = self.data.spaces.get(self.space);
        match key {
            SortKey::Outlier => sp.is_some_and(|s| s.outlier.is_some()),
            SortKey::NnDistance => sp.is_some_and(|s| s.nn_distance.is_some()),
            SortKey::LabelQuality => self.data.spaces.iter().any(|s| s.label_quality.is_some()),
            SortKey::Pred => self.data.spaces.iter().any(|s| s.pred.is_some()),
            SortKey::Label | SortKey::Id | SortKey::Tag => true,
        }
    }

    /// The filter as a predicate over ids, with every lookup it needs hoisted out of the per-item call.
    fn keeper(&self) -> impl Fn(u32) -> bool + '_ {
        let d = &self.data;
        let f = &self.filter;
        let sp = d.spaces.get(self.space);
        let first = |get: fn(&data::SpaceData) -> Option<&Vec<u32>>| {
            sp.and_then(get).or_else(|| d.spaces.iter().find_map(get)).map(Vec::as_slice)
        };
        let pred = first(|s| s.pred.as_ref());
        let issue =
            sp.and_then(|s| s.label_issue.as_ref()).or_else(|| d.spaces.iter().find_map(|s| s.label_issue.as_ref()));
        let dup = sp.and_then(|s| s.near_duplicate.as_ref());
        let outlier = sp.and_then(|s| s.outlier.as_deref().map(|o| (o, s.outlier_cut)));
        let source = f.source.as_ref().map(|s| &s.1).zip(self.sources.as_ref());
        move |id: u32| {
            let i = id as usize;
            if f.label.is_some_and(|l| d.label[i] != l) {
                return false;
            }
            if f.pred.is_some() && pred.map(|p| p[i]) != f.pred {
                return false;
            }
            let tag_ok = match f.tag {
                TagFilter::Any => true,
                TagFilter::Untagged => !d.tags.contains_key(&id),
                TagFilter::Tagged => d.tags.contains_key(&id),
                TagFilter::Kind(k) => d.tags.get(&id).is_some_and(|t| t.kind == Some(k)),
                TagFilter::Relabelled => d.tags.get(&id).is_some_and(|t| t.new_label.is_some()),
            };
            let flag_ok = match f.flag {
                FlagFilter::None => true,
                FlagFilter::NearDuplicate => dup.is_some_and(|c| c.get(i)),
                FlagFilter::LabelIssue => issue.is_some_and(|c| c.get(i)),
                FlagFilter::Outlier => outlier.is_some_and(|(o, cut)| o[i] <= cut),
            };
            tag_ok && flag_ok && source.is_none_or(|(re, src)| re.is_match(src.get(id)))
        }
    }

    /// The sort key of every item as an order-preserving u32 (missing values last).
    fn sort_keys(&self) -> Vec<u32> {
        let d = &self.data;
        let n = d.items as usize;
        let sp = d.spaces.get(self.space);
        let floats =
            |c: Option<&Vec<f32>>| c.map_or_else(|| vec![u32::MAX; n], |c| c.iter().map(|&v| ordered(v)).collect());
        let any =
            |get: fn(&data::SpaceData) -> Option<&Vec<f32>>| sp.and_then(get).or_else(|| d.spaces.iter().find_map(get));
        match self.sort {
            SortKey::Outlier => floats(sp.and_then(|s| s.outlier.as_ref())),
            SortKey::NnDistance => floats(sp.and_then(|s| s.nn_distance.as_ref())),
            SortKey::LabelQuality => floats(any(|s| s.label_quality.as_ref())),
            SortKey::Label => d.label.to_vec(),
            SortKey::Pred => sp
                .and_then(|s| s.pred.as_ref())
                .or_else(|| d.spaces.iter().find_map(|s| s.pred.as_ref()))
                .map_or_else(|| vec![NO_LABEL; n], Clone::clone),
            SortKey::Id => (0..n as u32).collect(),
            SortKey::Tag => {
                let mut k = vec![u32::MAX; n];
                for (&id, t) in &d.tags {
                    k[id as usize] = match t.kind {
                        Some(kind) => TagKind::ALL.iter().position(|&x| x == kind).unwrap_or(0) as u32,
                        None => 10,
                    };
                }
                k
            }
        }
    }

    /// Filters and sorts all items into `view`, keeping `keep` selected when it is still shown.
    fn rebuild_view(&mut self, keep: Option<u32>) {
        let view: Vec<u32> = if let Some(like) = &self.filter.like {
            let k = self.keeper();
            like.found.iter().map(|&(id, _)| id).filter(|&id| k(id)).collect()
        } else {
            let keys = self.sort_keys();
            let flip = if self.desc { u32::MAX } else { 0 };
            let pack = |id: u32| (u64::from(keys[id as usize] ^ flip) << 32) | u64::from(id);
            let packed: Vec<u64> = if self.filter.is_empty() {
                (0..self.data.items).map(pack).collect()
            } else {
                let k = self.keeper();
                (0..self.data.items).filter(|&id| k(id)).map(pack).collect()
            };
            radix_sort_by_high_word(packed).into_iter().map(|p| p as u32).collect()
        };
        self.view = Arc::new(view);
        self.filter_gen += 1;
        self.cursor = keep.and_then(|id| self.view.iter().position(|&v| v == id)).unwrap_or(0);
        self.top = self.cursor.saturating_sub(table_rows(self.areas().table) / 2);
        self.after_move();
        release_freed_heap();
    }

    fn move_to(&mut self, row: i64) {
        let n = self.view.len() as i64;
        self.cursor = row.clamp(0, (n - 1).max(0)) as usize;
        self.after_move();
    }

    /// Brings everything that depends on the cursor, the size and the view up to date: scroll offset,
    /// visible rows, the inspected item and its pictures, the scatter rasters.
    fn after_move(&mut self) {
        let areas = self.areas();
        let h = table_rows(areas.table).max(1);
        if self.cursor < self.top {
            self.top = self.cursor;
        } else if self.cursor >= self.top + h {
            self.top = self.cursor + 1 - h;
        }
        self.top = self.top.min(self.view.len().saturating_sub(h));
        self.refresh_rows(h);
        self.refresh_inspect(&areas);
        self.refresh_rasters(&areas);
        self.request_plots();
        // Each move reads a few records and column rows, and the kernel maps up to 64 kB around every page it
        // faults in: without this, scrolling through a million items would keep adding map pages to the
        // resident set. Dropping them costs microseconds; the next frame refaults the few it needs.
        self.store.release_map();
    }

    fn refresh_rows(&mut self, h: usize) {
        let end = (self.top + h).min(self.view.len());
        let ids = &self.view[self.top.min(end)..end];
        self.rows = match self.store.read_txn() {
            Ok(r) => ids
                .iter()
                .map(|&id| Row {
                    id,
                    source: self.store.item(&r, id).ok().flatten().map(|i| i.source).unwrap_or_default(),
                })
                .collect(),
            Err(_) => ids.iter().map(|&id| Row { id, source: String::new() }).collect(),
        };
    }

    fn refresh_inspect(&mut self, areas: &Areas) {
        let Some(id) = self.selected() else {
            self.inspect = None;
            return;
        };
        if self.inspect.as_ref().is_none_or(|i| i.id != id) {
            let space = self.space_name().to_string();
            let (item, neighbours, confidence) = match self.store.read_txn() {
                Ok(r) => (
                    self.store.item(&r, id).ok().flatten(),
                    data::neighbours(&self.store, &r, &space, id).unwrap_or_default(),
                    data::confidence(&self.store, &r, &self.data, self.space, id),
                ),
                Err(_) => (None, Vec::new(), None),
            };
            self.inspect = Some(Inspect { id, item, neighbours, confidence });
            self.pictures.clear();
            self.picture_errors.clear();
        }
        let Some(worker) = &self.worker else { return };
        let Some(inspect) = &self.inspect else { return };
        let lay = inspector::layout(areas.inspector, inspect.neighbours.len(), true);
        let mut wants = Vec::new();
        if lay.image.width > 0 && lay.image.height > 0 {
            wants.push(Want { item: id, cells: (lay.image.width, lay.image.height) });
        }
        for (slot, &(nid, _)) in lay.thumbs.iter().zip(&inspect.neighbours) {
            wants.push(Want { item: nid, cells: (slot.width, slot.height) });
        }
        let req = Request { selection: id, wants };
        if self.last_request.as_ref() != Some(&req) {
            // Pictures of another size are stale too.
            if self.last_request.as_ref().is_some_and(|r| r.selection == id) {
                self.pictures.clear();
            }
            worker.request(req.clone());
            self.last_request = Some(req);
        }
    }

    fn refresh_rasters(&mut self, areas: &Areas) {
        let plots: Vec<Rect> = areas.scatter.iter().copied().filter(|r| r.width > 2 && r.height > 2).collect();
        let inner = plots.first().map_or((0, 0), |r| (r.width - 2, r.height - 2));
        let pz = [self.scatter.zoom.to_bits(), self.scatter.pan.0.to_bits(), self.scatter.pan.1.to_bits(), 0];
        let key = (self.space, self.filter_gen, inner, pz, self.scatter.side_by_side);
        if self.raster_key == Some(key) {
            return;
        }
        self.raster_key = Some(key);
        self.raster_gen += 1;
        let spaces: Vec<usize> =
            if self.scatter.side_by_side { (0..self.data.spaces.len().min(2)).collect() } else { vec![self.space] };
        self.rasters = spaces
            .into_iter()
            .zip(plots)
            .map(|(s, r)| {
                let inner = scatter::plot_area(r);
                scatter::rasterize(&self.data, s, &self.view, &self.scatter, inner.width, inner.height)
            })
            .collect();
    }

    /// On pixel terminals, asks the plot worker for the scatter panels of the current rasters and selection
    /// (once per change: the worker keeps only the newest request).
    fn request_plots(&mut self) {
        let Some(plotter) = &self.plotter else { return };
        let keys: Vec<scatter::PlotKey> = self
            .rasters
            .iter()
            .map(|_| scatter::PlotKey { raster: self.raster_gen, selection: self.selected() })
            .collect();
        if keys == self.last_plot {
            return;
        }
        let (fw, fh) = plotter.font_size();
        let all = self.view.len() == self.data.items as usize;
        let jobs = self
            .rasters
            .iter()
            .zip(&keys)
            .filter_map(|(r, &key)| {
                let (_, proj) = self.data.spaces.get(r.space)?.projection.as_ref()?;
                let current = r.space == self.space;
                Some(scatter::PlotJob {
                    space: r.space,
                    key,
                    cells: (r.w, r.h),
                    px: (u32::from(r.w) * u32::from(fw), u32::from(r.h) * u32::from(fh)),
                    window: r.window,
                    proj: proj.clone(),
                    label: self.data.label.clone(),
                    shown: (!all).then(|| self.view.clone()),
                    outliers: r.outlier_ids.clone(),
                    selected: if current { self.selected() } else { None },
                    neighbours: match (&self.inspect, current) {
                        (Some(i), true) => i.neighbours.iter().map(|n| n.0).collect(),
                        _ => Vec::new(),
                    },
                    theme: self.theme,
                })
            })
            .collect();
        plotter.request(jobs);
        self.last_plot = keys;
    }
}
