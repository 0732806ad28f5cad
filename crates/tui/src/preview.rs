//! Terminal images: the only module that knows ratatui-image. The rest of the browser asks for "these items'
//! thumbnails at these cell sizes" and later draws the `Picture`s that come back; decoding, resizing and
//! encoding (slow for sixel) happen on a worker thread, which hands each result to a callback.
//!
//! The worker holds one waiting request: a newer one replaces it, so holding `j` down over a thousand
//! items encodes only the images of where the cursor stops. Results carry the selection they were made
//! for; the app drops those that arrive after the selection moved on.
//!
//! On pixel terminals a second worker, the `Plotter`, draws the scatter panels as pictures the same way
//! (one waiting request, newest wins), so a plot of every point never holds up a key.

use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::Duration;

use image::imageops::FilterType;
use ratatui::buffer::Buffer;
use ratatui::layout::{Rect, Size};
use ratatui::widgets::Widget;
use ratatui_image::picker::cap_parser::QueryStdioOptions;
use ratatui_image::picker::{Picker, ProtocolType};
use ratatui_image::protocol::Protocol;
use ratatui_image::{Image, Resize};

use crate::plot::{PlotJob, PlotKey, plot_pixels};
use torchlight_store::Store;

/// How images reach the terminal.
#[derive(Clone)]
pub enum Graphics {
    /// `--graphics none`: text only.
    Text,
    Images(Picker),
}

impl std::fmt::Debug for Graphics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The image protocol the user asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    /// Ask the terminal; halfblocks when it does not answer in time.
    Auto,
    Kitty,
    Sixel,
    Iterm2,
    Halfblocks,
    /// Text only.
    None,
}

impl Graphics {
    /// Picks the protocol once at start-up. `auto` asks the terminal (waiting at most `timeout`); a named
    /// protocol is forced, still asking for the cell size that sixel/kitty/iTerm2 need to scale images.
    /// Must run before anything else reads stdin.
    pub fn detect(choice: Choice, timeout: Duration) -> Graphics {
        let query = || {
            let options = QueryStdioOptions {
                timeout_ms: timeout.as_millis().min(i32::MAX as u128) as i32,
                ..Default::default()
            };
            Picker::from_query_stdio_with_options(options).unwrap_or_else(|_| Picker::halfblocks())
        };
        let forced = |p: ProtocolType| {
            let mut picker = query();
            picker.set_protocol_type(p);
            Graphics::Images(picker)
        };
        match choice {
            Choice::None => Graphics::Text,
            Choice::Halfblocks => Graphics::halfblocks(),
            Choice::Sixel => forced(ProtocolType::Sixel),
            Choice::Kitty => forced(ProtocolType::Kitty),
            Choice::Iterm2 => forced(ProtocolType::Iterm2),
            Choice::Auto => Graphics::Images(query()),
        }
    }

    /// Halfblocks without asking the terminal anything: deterministic, works everywhere (tests use it).
    pub fn halfblocks() -> Graphics {
        Graphics::Images(Picker::halfblocks())
    }

    fn name(&self) -> &'static str {
        match self {
            Graphics::Text => "none",
            Graphics::Images(p) => match p.protocol_type() {
                ProtocolType::Halfblocks => "halfblocks",
                ProtocolType::Sixel => "sixel",
                ProtocolType::Kitty => "kitty",
                ProtocolType::Iterm2 => "iterm2",
            },
        }
    }

    /// Whether images are drawn outside the cell grid (the terminal must be cleared when they move).
    pub fn is_pixel_protocol(&self) -> bool {
        matches!(self, Graphics::Images(p) if p.protocol_type() != ProtocolType::Halfblocks)
    }
}

/// One wanted image: an item's thumbnail fitted into `cells`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Want {
    pub item: u32,
    pub cells: (u16, u16),
}

/// Everything wanted for one selection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub selection: u32,
    pub wants: Vec<Want>,
}

/// An encoded image, ready to draw.
#[derive(Clone)]
pub struct Picture {
    protocol: Protocol,
}

pub struct Rendered {
    pub selection: u32,
    pub want: Want,
    /// The picture, or why there is none (no thumbnail stored, undecodable bytes).
    pub picture: Result<Picture, PictureError>,
}

/// Draws a picture at the top-left of the area (nothing when it does not fit).
pub struct PictureView<'a>(pub &'a Picture);

impl Widget for PictureView<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        Image::new(&self.0.protocol).render(area, buf);
    }
}

/// One waiting request for a worker thread; a newer one replaces it.
struct Slot<T> {
    waiting: Mutex<Option<T>>,
    wake: Condvar,
}

impl<T> Default for Slot<T> {
    fn default() -> Self {
        Slot { waiting: Mutex::new(None), wake: Condvar::new() }
    }
}

impl<T> Slot<T> {
    fn put(&self, req: T) {
        *self.waiting.lock().unwrap_or_else(|e| e.into_inner()) = Some(req);
        self.wake.notify_one();
    }

    /// Blocks until there is a request.
    fn take(&self) -> T {
        let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(r) = waiting.take() {
                return r;
            }
            waiting = self.wake.wait(waiting).unwrap_or_else(|e| e.into_inner());
        }
    }

    fn newer_waiting(&self) -> bool {
        self.waiting.lock().unwrap_or_else(|e| e.into_inner()).is_some()
    }
}

/// The image worker: resize and encode off the UI thread.
pub struct Worker {
    slot: Arc<Slot<Request>>,
}

impl Worker {
    /// Starts the worker, which hands each result to `send` until `send` says no one listens any more.
    /// Returns None for text-only graphics.
    pub fn spawn(
        store: Arc<Store>,
        graphics: &Graphics,
        send: impl Fn(Rendered) -> bool + Send + 'static,
    ) -> Option<Worker> {
        let Graphics::Images(picker) = graphics.clone() else {
            return None;
        };
        let slot = Arc::new(Slot::default());
        let theirs = slot.clone();
        thread::Builder::new()
            .name("preview".into())
            .spawn(move || work(&store, &picker, &theirs, &send))
            .expect("spawning the preview thread");
        Some(Worker { slot })
    }

    /// Replaces any request still waiting: only the newest selection matters.
    pub fn request(&self, req: Request) {
        self.slot.put(req);
    }
}

fn work(store: &Store, picker: &Picker, slot: &Slot<Request>, send: &impl Fn(Rendered) -> bool) {
    loop {
        let req = slot.take();
        for want in req.wants {
            // A newer selection makes the rest of this one pointless.
            if slot.newer_waiting() {
                break;
            }
            let picture = encode(store, picker, want);
            if !send(Rendered { selection: req.selection, want, picture }) {
                return;
            }
        }
    }
}

/// Why a picture could not be made; shown in its place.
#[derive(Debug, thiserror::Error)]
pub enum PictureError {
    #[error("no thumbnail")]
    NoThumbnail,
    #[error(transparent)]
    Store(#[from] torchlight_store::StoreError),
    #[error("thumbnail: {0}")]
    Decode(#[from] image::ImageError),
    /// ratatui-image's encoder failed (its error type is not Send).
    #[error("encoding: {0}")]
    Encode(String),
}

/// Reads, decodes, scales and encodes one thumbnail.
fn encode(store: &Store, picker: &Picker, want: Want) -> Result<Picture, PictureError> {
    let bytes = {
        let r = store.read_txn()?;
        store.thumbnail(&r, want.item)?.ok_or(PictureError::NoThumbnail)?
    };
    let img = image::load_from_memory(&bytes)?;
    // Small images (MNIST's 28 px) keep crisp pixels; photos get a smooth filter.
    let filter = if img.width().max(img.height()) <= 64 { FilterType::Nearest } else { FilterType::Triangle };
    let size = Size::new(want.cells.0, want.cells.1);
    let protocol =
        picker.new_protocol(img, size, Resize::Scale(Some(filter))).map_err(|e| PictureError::Encode(e.to_string()))?;
    Ok(Picture { protocol })
}

/// A scatter panel drawn as a picture.
pub struct Plotted {
    pub space: usize,
    pub key: PlotKey,
    pub picture: Result<Picture, PictureError>,
}

/// The pixel scatter worker: draws and encodes the scatter panels off the UI thread.
pub struct Plotter {
    slot: Arc<Slot<Vec<PlotJob>>>,
    font: (u16, u16),
}

impl Plotter {
    /// Starts the worker for pixel protocols only: drawn as halfblocks a scatter is coarser than braille.
    /// Each panel drawn goes to `send` until `send` says no one listens any more.
    pub fn spawn(graphics: &Graphics, send: impl Fn(Plotted) -> bool + Send + 'static) -> Option<Plotter> {
        let Graphics::Images(picker) = graphics.clone() else {
            return None;
        };
        if !graphics.is_pixel_protocol() {
            return None;
        }
        let font = picker.font_size();
        let slot: Arc<Slot<Vec<PlotJob>>> = Arc::new(Slot::default());
        let theirs = slot.clone();
        thread::Builder::new()
            .name("plot".into())
            .spawn(move || {
                loop {
                    for job in theirs.take() {
                        if theirs.newer_waiting() {
                            break;
                        }
                        let picture = plot(&picker, &job);
                        if !send(Plotted { space: job.space, key: job.key, picture }) {
                            return;
                        }
                    }
                }
            })
            .expect("spawning the plot thread");
        Some(Plotter { slot, font: (font.width.max(1), font.height.max(1)) })
    }

    /// Pixels per cell (width, height) of the terminal's font.
    pub fn font_size(&self) -> (u16, u16) {
        self.font
    }

    /// Replaces any jobs still waiting.
    pub fn request(&self, jobs: Vec<PlotJob>) {
        self.slot.put(jobs);
    }
}

/// Draws and encodes one panel; the image is exactly the plot's cells in pixels, so nothing is rescaled.
fn plot(picker: &Picker, job: &PlotJob) -> Result<Picture, PictureError> {
    let img = image::DynamicImage::ImageRgb8(plot_pixels(job));
    let size = Size::new(job.cells.0, job.cells.1);
    let protocol =
        picker.new_protocol(img, size, Resize::Fit(None)).map_err(|e| PictureError::Encode(e.to_string()))?;
    Ok(Picture { protocol })
}
