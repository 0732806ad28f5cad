//! The one channel the UI loop reads: terminal input, ticks and worker results all arrive as `Event`s.

use std::sync::mpsc::Sender;
use std::thread;
use std::time::Duration;

use crate::preview::{Plotted, Rendered};

pub enum Event {
    Term(crossterm::event::Event),
    Tick,
    /// The animation timer: the UI loop sends one every `App::frame_interval` while the drift view plays.
    Frame,
    Preview(Rendered),
    Plot(Plotted),
}

/// Reads terminal input on its own thread, sending a `Tick` whenever `tick` passes without input. Ends when
/// the receiver is gone.
pub fn spawn_terminal_reader(tx: Sender<Event>, tick: Duration) {
    thread::Builder::new()
        .name("terminal-input".into())
        .spawn(move || {
            loop {
                let ev = match crossterm::event::poll(tick) {
                    Ok(true) => match crossterm::event::read() {
                        Ok(ev) => Event::Term(ev),
                        Err(_) => return,
                    },
                    Ok(false) => Event::Tick,
                    Err(_) => return,
                };
                if tx.send(ev).is_err() {
                    return;
                }
            }
        })
        .expect("spawning the terminal input thread");
}
