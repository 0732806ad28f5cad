//! torchlight's terminal browser (`torchlight browse`): a keyboard-driven UI over a store.
//!
//! One `App` holds all state; keys become `Action`s, `App::update` applies them, and `impl Widget for &App`
//! draws without changing anything. Terminal input, ticks and image worker results arrive on one channel,
//! and the loop below draws only when handling them changed the screen. While the drift view plays, the
//! loop also times the animation's frames (`Event::Frame`).
//!
//! The modules import one way, each only from the layers above its own (`tests/layers.rs` checks it):
//!
//! 1. Leaves, importing nothing else of the browser: `action` (what a key asks for), `mode` (what the
//!    keyboard talks to), `filter` (sort keys and filters), `theme`, `data` (the store's columns), `layout`
//!    (where panels go).
//! 2. `plot` (braille rasters and pixel plots of the projection) and `keys` (the key table).
//! 3. `preview`: terminal images and the workers that make them; the only importer of ratatui-image.
//! 4. `event`: what arrives on the channel.
//! 5. `state/`: one part per panel with private fields, never importing each other: `list` (filter, sort,
//!    cursor, scroll), `triage` (tag writes, undo, marks), `inspector` (the selected item, its neighbours,
//!    their pictures), `scatter` (zoom, pan, rasters, pixel plots), `drift` (the checkpoint shown of a
//!    fine-tuning series, its animation, the loss curve, the selected item's trajectory).
//! 6. `app`: `App` owns the parts and routes events and actions to them; it does not know the widgets.
//! 7. `widgets/`: drawing only, reading the parts.

pub mod action;
pub mod app;
pub mod data;
pub mod event;
pub mod filter;
pub mod keys;
pub mod layout;
pub mod mode;
pub mod plot;
pub mod preview;
pub mod state;
pub mod theme;
mod widgets;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use torchlight_store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum BrowseError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("terminal error: {0}")]
    Terminal(#[from] std::io::Error),
    #[error("`torchlight browse` needs a terminal: run it in an interactive shell (stdin and stdout a tty)")]
    NotATerminal,
}

pub struct RunOptions {
    pub dir: PathBuf,
    pub graphics: preview::Choice,
    pub detect_timeout: Duration,
    pub space: Option<String>,
}

/// Opens the store, takes over the terminal and runs until the user quits. The terminal is restored on
/// every way out, a panic included.
pub fn run(o: RunOptions) -> Result<(), BrowseError> {
    let store = Store::open(&o.dir)?;
    if !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
        return Err(BrowseError::NotATerminal);
    }
    // The graphics query reads stdin: it must finish before the input thread starts.
    let graphics = preview::Graphics::detect(o.graphics, o.detect_timeout);
    let (tx, rx) = mpsc::channel();
    let options = app::Options {
        store_label: o.dir.display().to_string(),
        space: o.space,
        theme: theme::Theme::from_env(),
        size: crossterm::terminal::size()?,
    };
    let mut app = app::App::new(Arc::new(store), options, &graphics, tx.clone())?;
    restore_terminal_on_panic();
    let mut terminal = ratatui::try_init()?;
    let result = ui_loop(&mut terminal, &mut app, &graphics, tx, &rx);
    restore_terminal();
    ratatui::restore();
    result
}

/// Chains a panic hook that leaves raw mode, mouse capture and the alternate screen before the report is
/// printed, so a crash never leaves the user's shell unusable.
fn restore_terminal_on_panic() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        restore_terminal();
        report(info);
    }));
}

/// Leaves raw mode, mouse capture and the alternate screen; harmless when none is active.
fn restore_terminal() {
    use crossterm::{cursor, event, execute, terminal};
    if terminal::is_raw_mode_enabled().unwrap_or(false) {
        let _ = terminal::disable_raw_mode();
        let _ = execute!(std::io::stdout(), event::DisableMouseCapture, terminal::LeaveAlternateScreen, cursor::Show);
    }
}

fn ui_loop(
    terminal: &mut ratatui::DefaultTerminal,
    app: &mut app::App,
    graphics: &preview::Graphics,
    tx: mpsc::Sender<event::Event>,
    rx: &mpsc::Receiver<event::Event>,
) -> Result<(), BrowseError> {
    crossterm::execute!(std::io::stdout(), crossterm::event::EnableMouseCapture)?;
    let size = terminal.size()?;
    app.resize(size.width, size.height);
    event::spawn_terminal_reader(tx, Duration::from_millis(1000));
    let mut shown: Option<u32> = None;
    let mut changed = true;
    // When the next animation frame is due, while the drift view plays.
    let mut next_frame: Option<Instant> = None;
    loop {
        if changed {
            // Pixel images live outside the cell grid: when the selection changes, repaint everything so
            // old pictures do not linger where the new frame has unchanged blank cells. Only a change
            // `handle` reports can move the selection, so this check runs whenever it may have moved.
            if graphics.is_pixel_protocol() && app.selected() != shown {
                terminal.clear()?;
                shown = app.selected();
            }
            terminal.draw(|f| f.render_widget(&*app, f.area()))?;
        }
        let every = app.frame_interval();
        let due = every.map(|every| *next_frame.get_or_insert_with(|| Instant::now() + every));
        if every.is_none() {
            next_frame = None;
        }
        let ev = match due {
            None => rx.recv().map_err(|_| ()),
            Some(due) => match rx.recv_timeout(due.saturating_duration_since(Instant::now())) {
                Ok(ev) => Ok(ev),
                Err(mpsc::RecvTimeoutError::Timeout) => Ok(event::Event::Frame),
                Err(mpsc::RecvTimeoutError::Disconnected) => Err(()),
            },
        };
        let Ok(ev) = ev else { return Ok(()) };
        if matches!(ev, event::Event::Frame) {
            next_frame = None;
        }
        changed = app.handle(ev);
        // Apply everything already waiting (a held key) before drawing once.
        while let Ok(ev) = rx.try_recv() {
            changed |= app.handle(ev);
            if app.should_quit() {
                break;
            }
        }
        // A steady stream of other events must not hold the animation up.
        if next_frame.is_some_and(|due| Instant::now() >= due) {
            next_frame = None;
            changed |= app.handle(event::Event::Frame);
        }
        if app.should_quit() {
            return Ok(());
        }
    }
}
