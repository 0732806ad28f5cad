//! The browser's whole state and its one way to change: `handle(event)`, which turns keys into actions for
//! `update(action)`. The state lives in one part per panel (`state/`); `App` holds them with what they
//! share (the store and its columns, the space, the mode, the message line) and, after each change, brings
//! the parts that follow the selection, the size or the view up to date. Drawing (`widgets/`) only reads it.

use std::sync::Arc;
use std::sync::mpsc::Sender;
use std::time::Duration;

use ratatui::layout::Rect;
use torchlight_store::{Result, Store};

use crate::action::Action;
use crate::data::Data;
use crate::event::Event;
use crate::filter::Like;
use crate::keys;
use crate::layout::{self, Areas, Arrangement};
use crate::mode::{InputPurpose, Mode, PickPurpose};
use crate::preview::{Graphics, Plotter, Worker};
use crate::state::scatter::Marks;
use crate::state::{DriftView, Inspector, ListView, Scatter, Triage, drift};
use crate::theme::Theme;

pub struct Options {
    /// How the status line names the store (the path, or a fixed name in tests).
    pub store_label: String,
    pub space: Option<String>,
    pub theme: Theme,
    /// Terminal size at start-up (columns, rows): the first view is laid out for it.
    pub size: (u16, u16),
}

pub struct App {
    store: Arc<Store>,
    store_label: String,
    data: Data,
    theme: Theme,
    /// Index in `data.spaces` of the embedding space shown.
    space: usize,
    mode: Mode,
    message: Option<String>,
    quit: bool,
    size: (u16, u16),
    list: ListView,
    triage: Triage,
    inspector: Inspector,
    scatter: Scatter,
    drift: DriftView,
}

impl App {
    /// Loads the store's columns and builds the first view. `tx` receives image worker results (with
    /// text-only graphics no worker starts).
    pub fn new(store: Arc<Store>, options: Options, graphics: &Graphics, tx: Sender<Event>) -> Result<App> {
        let data = Data::load(&store)?;
        let space =
            options.space.as_ref().and_then(|name| data.spaces.iter().position(|s| &s.name == name)).unwrap_or(0);
        let mut message = None;
        if let Some(name) = &options.space
            && data.spaces.get(space).is_none_or(|s| &s.name != name)
        {
            message = Some(format!("no space named {name}; showing the first one"));
        }
        let plots = tx.clone();
        let plotter = Plotter::spawn(graphics, move |p| plots.send(Event::Plot(p)).is_ok());
        let worker = Worker::spawn(store.clone(), graphics, move |r| tx.send(Event::Preview(r)).is_ok());
        let mut app = App {
            list: ListView::new(&data, space),
            drift: DriftView::new(&data),
            store,
            store_label: options.store_label,
            data,
            theme: options.theme,
            space,
            mode: Mode::Normal,
            message,
            quit: false,
            size: options.size,
            triage: Triage::default(),
            inspector: Inspector::new(worker),
            scatter: Scatter::new(plotter),
        };
        app.rebuild(None);
        Ok(app)
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// How the status line names the store.
    pub fn store_label(&self) -> &str {
        &self.store_label
    }

    pub fn data(&self) -> &Data {
        &self.data
    }

    pub fn theme(&self) -> &Theme {
        &self.theme
    }

    /// Index of the embedding space shown.
    pub fn space(&self) -> usize {
        self.space
    }

    pub fn space_name(&self) -> &str {
        self.data.spaces.get(self.space).map_or("-", |s| s.name.as_str())
    }

    pub fn mode(&self) -> &Mode {
        &self.mode
    }

    /// The line that replaces the key hints until Esc or the next message.
    pub fn message(&self) -> Option<&str> {
        self.message.as_deref()
    }

    /// Whether the user asked to quit.
    pub fn should_quit(&self) -> bool {
        self.quit
    }

    /// The terminal size the state is laid out for (columns, rows).
    pub fn size(&self) -> (u16, u16) {
        self.size
    }

    pub fn list(&self) -> &ListView {
        &self.list
    }

    pub fn triage(&self) -> &Triage {
        &self.triage
    }

    pub fn inspector(&self) -> &Inspector {
        &self.inspector
    }

    pub fn scatter(&self) -> &Scatter {
        &self.scatter
    }

    pub fn drift(&self) -> &DriftView {
        &self.drift
    }

    /// Which panels are on screen.
    pub fn arrangement(&self) -> Arrangement {
        if self.drift.is_on() {
            Arrangement::Drift
        } else if self.scatter.view().side_by_side {
            Arrangement::SideBySide
        } else {
            Arrangement::Main
        }
    }

    pub fn areas(&self) -> Areas {
        layout::areas(Rect::new(0, 0, self.size.0, self.size.1), self.arrangement())
    }

    /// How often the UI loop should send `Event::Frame`: while the drift view plays, else never.
    pub fn frame_interval(&self) -> Option<Duration> {
        self.drift.is_playing().then_some(drift::FRAME)
    }

    pub fn selected(&self) -> Option<u32> {
        self.list.selected()
    }

    /// Entries of a picker: "(any)" / "(clear)" then the class names.
    pub fn picker_len(&self) -> usize {
        self.data.label_names.len() + 1
    }

    /// Feeds one event from the channel; returns whether the screen changed (and needs drawing).
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
            Event::Frame => {
                let moved = self.drift.frame_tick();
                if moved {
                    self.show_step();
                }
                moved
            }
            Event::Preview(r) => self.inspector.picture_ready(r),
            Event::Plot(p) => match self.scatter.plot_ready(p) {
                Ok(kept) => kept,
                Err(why) => {
                    self.message = Some(format!("pixel scatter: {why}"));
                    true
                }
            },
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
                    self.update(Action::Select(self.list.top() + (m.row - t.y - 2) as usize));
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

    pub fn update(&mut self, action: Action) {
        match self.mode.clone() {
            Mode::Normal => self.normal(action),
            Mode::Help => self.mode = Mode::Normal,
            Mode::Input { purpose, text } => self.input(purpose, text, action),
            Mode::Picker { purpose, cursor } => self.picker(purpose, cursor, action),
        }
    }

    /// Table rows on screen.
    fn page(&self) -> usize {
        layout::table_rows(self.areas().table).max(1)
    }

    fn normal(&mut self, action: Action) {
        let n = self.list.shown().len();
        let cursor = self.list.cursor() as i64;
        let page = self.page() as i64;
        match action {
            Action::Quit => self.quit = true,
            Action::Move(d) => self.move_to(cursor + d),
            Action::PageDown => self.move_to(cursor + page),
            Action::PageUp => self.move_to(cursor - page),
            Action::Top => self.move_to(0),
            Action::Bottom => self.move_to(n as i64 - 1),
            Action::Select(row) if row < n => self.move_to(row as i64),
            Action::Select(_) => {}
            Action::NextSort => {
                self.list.next_sort(&self.data, self.space);
                self.rebuild(self.selected());
            }
            Action::ReverseSort => {
                self.list.reverse();
                self.rebuild(self.selected());
            }
            Action::Tag(kind) => {
                if let Some(id) = self.selected() {
                    let said = self.triage.toggle_tag(&self.store, &mut self.data.tags, id, kind);
                    let saved = said.is_ok();
                    self.say(said);
                    if saved {
                        self.move_to(cursor + 1);
                    }
                }
            }
            Action::BulkTag(kind) => {
                if let Some(said) = self.triage.bulk_tag(&self.store, &mut self.data.tags, self.list.shown(), kind) {
                    self.say(said);
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
            Action::Undo => self.message = Some(self.triage.undo(&self.store, &mut self.data.tags)),
            Action::ToggleMark => {
                if let Some(id) = self.selected() {
                    self.triage.toggle_mark(id);
                    self.move_to(cursor + 1);
                }
            }
            Action::Escape => {
                self.triage.clear_marks();
                self.message = None;
            }
            Action::SourceFilter => {
                let text = self.list.filter().source.as_ref().map(|s| s.0.clone()).unwrap_or_default();
                self.mode = Mode::Input { purpose: InputPurpose::Source, text };
            }
            Action::LabelFilter => {
                let cursor = self.list.filter().label.map_or(0, |l| l as usize + 1);
                self.mode = Mode::Picker { purpose: PickPurpose::Label, cursor };
            }
            Action::PredFilter => {
                if self.data.spaces.iter().all(|s| s.pred.is_none()) {
                    self.message = Some("no predicted labels in this store (no classifier head)".into());
                } else {
                    let cursor = self.list.filter().pred.map_or(0, |l| l as usize + 1);
                    self.mode = Mode::Picker { purpose: PickPurpose::Pred, cursor };
                }
            }
            Action::CycleTagFilter => {
                self.list.cycle_tag_filter();
                self.rebuild(self.selected());
            }
            Action::CycleFlagFilter => {
                self.list.cycle_flag_filter();
                self.rebuild(self.selected());
            }
            Action::MoreLikeThis => self.more_like_this(),
            Action::ClearFilters => {
                self.list.clear_filters();
                self.rebuild(self.selected());
            }
            Action::NextSpace if self.drift.is_on() => {
                self.message = Some("the drift view shows the series' spaces: [ and ] step through them".into());
            }
            Action::NextSpace => {
                if !self.data.spaces.is_empty() {
                    self.space = (self.space + 1) % self.data.spaces.len();
                    self.message = Some(format!("space {}", self.space_name()));
                    self.inspector.forget();
                    self.rebuild(self.selected());
                }
            }
            Action::SideBySide => {
                if self.drift.is_on() {
                    self.toggle_drift();
                }
                self.scatter.toggle_side_by_side();
                self.after_move();
            }
            Action::ZoomIn => {
                self.scatter.zoom_in();
                self.after_move();
            }
            Action::ZoomOut => {
                self.scatter.zoom_out();
                self.after_move();
            }
            Action::Pan(dx, dy) => {
                self.scatter.pan(dx, dy);
                self.after_move();
            }
            Action::ResetView => {
                self.scatter.reset();
                self.after_move();
            }
            Action::DriftView => self.toggle_drift(),
            Action::Scrub(by) => {
                if !self.drift.is_on() {
                    self.message = Some(self.drift_closed().into());
                } else if self.drift.scrub(by) {
                    self.show_step();
                }
            }
            Action::Play => {
                if self.drift.is_on() {
                    if self.drift.toggle_play() {
                        self.show_step();
                    }
                } else {
                    self.message = Some(self.drift_closed().into());
                }
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
                            let said = self.triage.set_note(&self.store, &mut self.data.tags, id, &text);
                            self.say(said);
                        }
                    }
                    InputPurpose::Source => self.set_source_filter(&text),
                }
            }
            Action::Quit => self.quit = true,
            _ => self.mode = Mode::Input { purpose, text },
        }
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
                            let named = choice.map(|l| (l, self.data.label_name(l).to_string()));
                            let label = named.as_ref().map(|(l, name)| (*l, name.as_str()));
                            let said = self.triage.set_new_label(&self.store, &mut self.data.tags, id, label);
                            self.say(said);
                        }
                    }
                    PickPurpose::Label => {
                        self.list.set_label_filter(choice);
                        self.rebuild(self.selected());
                    }
                    PickPurpose::Pred => {
                        self.list.set_pred_filter(choice);
                        self.rebuild(self.selected());
                    }
                }
            }
            _ => {}
        }
    }

    /// Shows what a triage action says, whether it was saved or not.
    fn say(&mut self, said: crate::state::triage::Said) {
        self.message = Some(said.unwrap_or_else(|e| e));
    }

    fn set_source_filter(&mut self, text: &str) {
        match self.list.set_source_filter(&self.store, text) {
            Ok(()) => self.rebuild(self.selected()),
            Err(why) => self.message = Some(why.to_string()),
        }
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
                self.list.set_like(Like { id, space: self.space, found });
                self.rebuild(Some(id));
            }
            Err(e) => self.message = Some(format!("more like this: {e}")),
        }
    }

    fn drift_closed(&self) -> &'static str {
        if self.drift.available() {
            "F opens the drift view"
        } else {
            "no checkpoint series in this store (`torchlight ingest --checkpoints`)"
        }
    }

    /// Opens or closes the drift view. Open, the scatter frames every step alike and the space shown is
    /// the step's; closed, the space shown stays the last step's.
    fn toggle_drift(&mut self) {
        if !self.drift.available() {
            self.message = Some(self.drift_closed().into());
            return;
        }
        if self.drift.toggle(self.space) {
            self.scatter.set_side_by_side(false);
            self.scatter.set_frame(self.drift.frame());
            self.message = None;
            self.show_step();
        } else {
            self.scatter.set_frame(None);
            self.after_move();
        }
    }

    /// Shows the drift view's current step: its space becomes the one shown.
    fn show_step(&mut self) {
        match self.drift.space() {
            Some(s) if s != self.space => {
                self.space = s;
                self.inspector.forget();
                self.rebuild(self.selected());
            }
            _ => self.after_move(),
        }
    }

    /// Rereads the store: an ingest or analysis may have added items or columns since it was opened.
    fn refresh(&mut self) {
        match Data::load(&self.store) {
            Ok(d) => {
                let keep = self.selected();
                self.data = d;
                self.list.forget_sources();
                if let Some(text) = self.list.filter().source.as_ref().map(|s| s.0.clone())
                    && let Err(why) = self.list.set_source_filter(&self.store, &text)
                {
                    self.message = Some(why.to_string());
                }
                self.space = self.space.min(self.data.spaces.len().saturating_sub(1));
                self.inspector.forget();
                let was_on = self.drift.is_on();
                self.drift = DriftView::new(&self.data);
                if was_on && self.drift.toggle(self.space) {
                    self.scatter.set_frame(self.drift.frame());
                } else {
                    self.scatter.set_frame(None);
                }
                self.message = Some(format!("reread: {} items", self.data.items));
                self.rebuild(keep);
            }
            Err(e) => self.message = Some(format!("reread failed: {e}")),
        }
    }

    /// Filters and sorts the list again, keeping `keep` selected when it is still shown.
    fn rebuild(&mut self, keep: Option<u32>) {
        let page = self.page();
        self.list.rebuild(&self.data, self.space, keep, page);
        self.after_move();
    }

    fn move_to(&mut self, row: i64) {
        self.list.move_to(row);
        self.after_move();
    }

    /// Brings everything that follows the cursor, the size and the view up to date: scroll offset and
    /// visible rows, the inspected item and its pictures, the scatter rasters and pixel plots.
    fn after_move(&mut self) {
        let areas = self.areas();
        let page = self.page();
        self.list.scroll(&self.store, &self.data, page);
        let selected = self.list.selected();
        self.inspector.show(&self.store, &self.data, self.space, selected, areas.inspector);
        let shown = self.list.shown();
        self.scatter.rasterize(&self.data, self.space, shown, self.list.generation(), areas.scatter);
        self.drift.follow(&self.data, selected);
        self.drift.trace(self.scatter.rasters().first());
        let neighbours = self.inspector.current().map_or(&[][..], |i| &i.neighbours[..]);
        let trail = if self.drift.is_on() { self.drift.trajectory() } else { &[][..] };
        let marks = Marks { selected, neighbours, trail };
        self.scatter.request_plots(&self.data, self.space, shown, marks, self.theme);
        // Each move reads a few records and column rows, and the kernel maps pages around every page it
        // faults in: without this, scrolling through a large store would keep adding map pages to the
        // resident set. The next frame refaults the few it needs.
        self.store.release_map();
    }
}
