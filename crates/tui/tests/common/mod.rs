//! What the browser's test binaries share: keys into an `App`, the screen it draws as text, a sixel picker.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use torchlight_store::{Column, Store};
use torchlight_tui::app::App;
use torchlight_tui::event::Event;
use torchlight_tui::preview::Graphics;

pub fn press(code: KeyCode) -> Event {
    Event::Term(crossterm::event::Event::Key(KeyEvent::new(code, KeyModifiers::NONE)))
}

/// One key; whether the screen changed.
pub fn key(app: &mut App, code: KeyCode) -> bool {
    app.handle(press(code))
}

pub fn chars(app: &mut App, s: &str) {
    for c in s.chars() {
        key(app, KeyCode::Char(c));
    }
}

pub fn draw(app: &App) -> Terminal<TestBackend> {
    let mut t = Terminal::new(TestBackend::new(app.size().0, app.size().1)).unwrap();
    t.draw(|f| f.render_widget(app, f.area())).unwrap();
    t
}

pub fn screen(t: &Terminal<TestBackend>) -> String {
    let buf = t.backend().buffer();
    let mut s = String::new();
    for y in 0..buf.area.height {
        for x in 0..buf.area.width {
            s.push_str(buf[(x, y)].symbol());
        }
        s.push('\n');
    }
    s
}

/// A space's f32 column, which the test expects to exist.
pub fn column_f32(store: &Store, space: &str, name: &str) -> Vec<f32> {
    let r = store.read_txn().unwrap();
    match store.column(&r, space, name).unwrap().unwrap() {
        Column::F32 { values, .. } => values,
        _ => panic!("{name} is not f32"),
    }
}

/// A sixel picker without a terminal to ask (the deprecated constructor is the only way to get one).
#[allow(deprecated)]
pub fn sixel() -> Graphics {
    let mut picker = ratatui_image::picker::Picker::from_fontsize(ratatui_image::FontSize { width: 8, height: 16 });
    picker.set_protocol_type(ratatui_image::picker::ProtocolType::Sixel);
    Graphics::Images(picker)
}
