//! Browse: key -> action -> state, triage persistence, filters, images through the worker, and snapshots of
//! the main screens (TestBackend, text-only graphics so they are deterministic).

mod common;

use common::{chars, column_f32, draw, key, press, screen, sixel};

use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use crossterm::event::KeyCode;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::style::Color;
use torchlight_store::{Column, Item, Store, TagKind, columns};
use torchlight_synth::{self as synth, SynthParams, Truth};
use torchlight_tui::app::{App, Options};
use torchlight_tui::event::Event;
use torchlight_tui::filter::SortKey;
use torchlight_tui::mode::Mode;
use torchlight_tui::preview::Graphics;
use torchlight_tui::theme::Theme;

fn params() -> SynthParams {
    SynthParams { items: 300, ..SynthParams::default() }
}

fn make(dir: &Path) -> (Arc<Store>, Truth) {
    let (store, truth) = synth::generate(dir, &params()).unwrap();
    (Arc::new(store), truth)
}

fn open(store: Arc<Store>, graphics: &Graphics, w: u16, h: u16) -> (App, Receiver<Event>) {
    let (tx, rx) = mpsc::channel();
    let options =
        Options { store_label: "synth-store".into(), space: None, theme: Theme { color: true }, size: (w, h) };
    let mut app = App::new(store, options, graphics, tx).unwrap();
    app.resize(w, h);
    (app, rx)
}

fn snap(app: &App) -> String {
    screen(&draw(app))
}

#[test]
fn sorts_by_outlier_score_and_reverses() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = make(dir.path());
    let scores = column_f32(&store, "foundation", columns::OUTLIER_SCORE);
    let (mut app, _rx) = open(store, &Graphics::Text, 120, 40);
    assert_eq!(app.list().sort(), SortKey::Outlier);
    assert_eq!(app.list().shown().len(), 300);
    let shown: Vec<f32> = app.list().shown().iter().map(|&i| scores[i as usize]).collect();
    assert!(shown.windows(2).all(|w| w[0] <= w[1]), "most anomalous first");
    key(&mut app, KeyCode::Char('r'));
    let shown: Vec<f32> = app.list().shown().iter().map(|&i| scores[i as usize]).collect();
    assert!(shown.windows(2).all(|w| w[0] >= w[1]), "reversed");
    // s cycles through the other columns; the label sort groups labels.
    for _ in 0..3 {
        key(&mut app, KeyCode::Char('s'));
    }
    assert_eq!(app.list().sort(), SortKey::Label);
    let labels: Vec<u32> = app.list().shown().iter().map(|&i| app.data().label[i as usize]).collect();
    assert!(labels.windows(2).all(|w| w[0] <= w[1]));
}

#[test]
fn moves_pages_and_keeps_cursor_on_screen() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = make(dir.path());
    let (mut app, _rx) = open(store, &Graphics::Text, 80, 24);
    key(&mut app, KeyCode::Char('j'));
    key(&mut app, KeyCode::Down);
    assert_eq!(app.list().cursor(), 2);
    key(&mut app, KeyCode::Char('k'));
    assert_eq!(app.list().cursor(), 1);
    key(&mut app, KeyCode::Char('G'));
    assert_eq!(app.list().cursor(), 299);
    let rows = torchlight_tui::layout::table_rows(app.areas().table);
    assert!(app.list().top() <= app.list().cursor() && app.list().cursor() < app.list().top() + rows);
    assert_eq!(app.list().rows().last().unwrap().id, app.list().shown()[299]);
    key(&mut app, KeyCode::PageUp);
    assert_eq!(app.list().cursor(), 299 - rows);
    key(&mut app, KeyCode::Char('g'));
    assert_eq!((app.list().cursor(), app.list().top()), (0, 0));
    assert_eq!(app.inspector().current().unwrap().id, app.list().shown()[0]);
    assert_eq!(app.inspector().current().unwrap().neighbours.len(), 10);
}

#[test]
fn tags_persist_across_reopen_and_undo_removes_them() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = make(dir.path());
    let (mut app, _rx) = open(store, &Graphics::Text, 120, 40);
    let top = app.list().shown()[0];
    let second = app.list().shown()[1];
    key(&mut app, KeyCode::Char('x'));
    assert_eq!(app.list().cursor(), 1, "tagging moves on to the next item");
    key(&mut app, KeyCode::Char('m'));
    drop(app);
    {
        let store = Store::open(dir.path()).unwrap();
        let r = store.read_txn().unwrap();
        assert_eq!(store.tag(&r, top).unwrap().unwrap().kind, Some(TagKind::Outlier));
        assert_eq!(store.tag(&r, second).unwrap().unwrap().kind, Some(TagKind::Mislabeled));
    }
    // A new session sees the tags and can undo its own actions.
    let store = Arc::new(Store::open(dir.path()).unwrap());
    let (mut app, _rx) = open(store.clone(), &Graphics::Text, 120, 40);
    assert_eq!(app.data().tags.len(), 2);
    key(&mut app, KeyCode::Char('a'));
    {
        let r = store.read_txn().unwrap();
        assert_eq!(store.tag(&r, top).unwrap().unwrap().kind, Some(TagKind::Ok));
    }
    key(&mut app, KeyCode::Char('u'));
    let r = store.read_txn().unwrap();
    assert_eq!(store.tag(&r, top).unwrap().unwrap().kind, Some(TagKind::Outlier), "undo restores the old tag");
    drop(r);
    // Tagging the same kind again removes it.
    key(&mut app, KeyCode::Char('g'));
    key(&mut app, KeyCode::Char('x'));
    let r = store.read_txn().unwrap();
    assert!(store.tag(&r, top).unwrap().is_none());
}

#[test]
fn relabel_and_note_are_saved() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = make(dir.path());
    let (mut app, _rx) = open(store.clone(), &Graphics::Text, 80, 24);
    let id = app.list().shown()[0];
    key(&mut app, KeyCode::Char('e'));
    assert!(matches!(app.mode(), Mode::Picker { .. }));
    chars(&mut app, "jjj");
    key(&mut app, KeyCode::Enter);
    key(&mut app, KeyCode::Char('n'));
    chars(&mut app, "blurry, looks like a bag");
    key(&mut app, KeyCode::Backspace);
    key(&mut app, KeyCode::Enter);
    assert_eq!(*app.mode(), Mode::Normal);
    let r = store.read_txn().unwrap();
    let tag = store.tag(&r, id).unwrap().unwrap();
    assert_eq!(tag.new_label, Some(2));
    assert_eq!(tag.note.as_deref(), Some("blurry, looks like a ba"));
    assert_eq!(tag.kind, None);
}

#[test]
fn bulk_tags_marked_items_or_the_whole_filter() {
    let dir = tempfile::tempdir().unwrap();
    let (store, truth) = make(dir.path());
    let (mut app, _rx) = open(store.clone(), &Graphics::Text, 120, 40);
    let (a, b) = (app.list().shown()[0], app.list().shown()[1]);
    key(&mut app, KeyCode::Char(' '));
    key(&mut app, KeyCode::Char(' '));
    assert_eq!(app.triage().marks().len(), 2);
    key(&mut app, KeyCode::Char('X'));
    assert!(app.triage().marks().is_empty());
    {
        let r = store.read_txn().unwrap();
        let tags = store.tags(&r).unwrap();
        assert_eq!(tags.iter().map(|t| t.0).collect::<Vec<_>>(), {
            let mut v = vec![a, b];
            v.sort();
            v
        });
    }
    key(&mut app, KeyCode::Char('u'));
    assert!(store.tags(&store.read_txn().unwrap()).unwrap().is_empty());
    // Label filter through the picker, then tag everything shown.
    key(&mut app, KeyCode::Char('l'));
    chars(&mut app, "jj");
    key(&mut app, KeyCode::Enter);
    let want = truth.label.iter().filter(|&&l| l == 1).count();
    assert_eq!(app.list().shown().len(), want);
    assert!(app.list().shown().iter().all(|&i| app.data().label[i as usize] == 1));
    key(&mut app, KeyCode::Char('D'));
    let r = store.read_txn().unwrap();
    let tags = store.tags(&r).unwrap();
    assert_eq!(tags.len(), want);
    assert!(tags.iter().all(|(_, t)| t.kind == Some(TagKind::Duplicate)));
    drop(r);
    // The tag filter then finds exactly them.
    key(&mut app, KeyCode::Char('c'));
    assert_eq!(app.list().shown().len(), 300);
    chars(&mut app, "tt");
    assert_eq!(app.list().shown().len(), want, "tag=tagged");
}

#[test]
fn filters_flags_source_and_prediction() {
    let dir = tempfile::tempdir().unwrap();
    let (store, truth) = make(dir.path());
    let (mut app, _rx) = open(store, &Graphics::Text, 120, 40);
    key(&mut app, KeyCode::Char('f'));
    assert!(!app.list().shown().is_empty());
    assert!(app.list().shown().iter().all(|&i| app.data().near_duplicate(0, i)));
    key(&mut app, KeyCode::Char('f'));
    assert!(!app.list().shown().is_empty());
    assert!(app.list().shown().iter().all(|&i| app.data().nn_flag(0, i)));
    key(&mut app, KeyCode::Char('f'));
    let issues = truth.label.iter().zip(&truth.true_class).filter(|(l, c)| l != c).count();
    assert_eq!(app.list().shown().len(), issues, "label issues are the flipped labels");
    key(&mut app, KeyCode::Char('c'));
    key(&mut app, KeyCode::Char('/'));
    chars(&mut app, "Coat|Bag");
    key(&mut app, KeyCode::Enter);
    let want = truth.true_class.iter().filter(|&&c| c == 4 || c == 8).count();
    assert_eq!(app.list().shown().len(), want);
    assert!(app.list().rows().iter().all(|r| r.source.contains("Coat") || r.source.contains("Bag")));
    key(&mut app, KeyCode::Char('c'));
    key(&mut app, KeyCode::Char('p'));
    chars(&mut app, "jjjj");
    key(&mut app, KeyCode::Enter);
    assert_eq!(app.list().shown().len(), truth.true_class.iter().filter(|&&c| c == 3).count());
    // A bad regex is reported, not applied.
    key(&mut app, KeyCode::Char('/'));
    chars(&mut app, "(");
    key(&mut app, KeyCode::Enter);
    assert!(app.message().unwrap().contains("not a regular expression"));
}

#[test]
fn more_like_this_shows_arroy_neighbours_and_spaces_switch() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = make(dir.path());
    let (mut app, _rx) = open(store.clone(), &Graphics::Text, 120, 40);
    chars(&mut app, "jjj");
    let id = app.selected().unwrap();
    key(&mut app, KeyCode::Char('*'));
    assert_eq!(app.list().shown()[0], id);
    assert_eq!(app.list().shown().len(), 51);
    let r = store.read_txn().unwrap();
    let want: Vec<u32> = store.ann_by_item(&r, 0, id, 50, None).unwrap().into_iter().map(|x| x.0).collect();
    assert_eq!(&app.list().shown()[1..], &want[..]);
    drop(r);
    assert_eq!(app.space_name(), "foundation");
    let before = app.inspector().current().unwrap().neighbours.clone();
    key(&mut app, KeyCode::Tab);
    assert_eq!(app.space_name(), "finetuned");
    assert_ne!(app.inspector().current().unwrap().neighbours, before);
}

#[test]
fn only_events_that_change_the_screen_ask_for_a_frame() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = make(dir.path());
    let (mut app, _rx) = open(store, &Graphics::Text, 80, 24);
    assert!(!app.handle(Event::Tick), "a tick with nothing pending");
    assert!(!app.handle(press(KeyCode::Char('z'))), "a key bound to nothing");
    assert_eq!(app.list().cursor(), 0);
    assert!(app.handle(press(KeyCode::Char('j'))), "a key that moves the cursor");
    assert_eq!(app.list().cursor(), 1);
}

#[test]
fn the_status_line_keeps_the_shown_count_when_filters_crowd_it() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = make(dir.path());
    for (w, h) in [(100, 30), (80, 24)] {
        let (tx, _rx) = mpsc::channel();
        let options = Options {
            store_label: "/home/someone/datasets/fashion-mnist/torchlight-store".into(),
            space: None,
            theme: Theme { color: true },
            size: (w, h),
        };
        let mut app = App::new(store.clone(), options, &Graphics::Text, tx).unwrap();
        app.resize(w, h);
        key(&mut app, KeyCode::Char('l'));
        chars(&mut app, "jjjjjj");
        key(&mut app, KeyCode::Enter);
        key(&mut app, KeyCode::Char('t'));
        key(&mut app, KeyCode::Char('f'));
        key(&mut app, KeyCode::Char('/'));
        chars(&mut app, "Sandal|Coat");
        key(&mut app, KeyCode::Enter);
        let f = app.list().filter();
        assert!(f.label.is_some() && f.source.is_some(), "label and source filters are on");
        let n = app.list().shown().len();
        assert!(n > 0 && n < 300);
        let shown = format!("{n}/300 shown");
        let text = screen(&draw(&app));
        let status = text.lines().nth(h as usize - 2).unwrap();
        assert!(status.contains(&shown), "{w} columns: {status:?}");
        assert!(status.contains("filter label=Sandal"), "{w} columns: {status:?}");
        insta::assert_snapshot!(format!("status_with_four_filters_{w}"), status);
    }
}

/// A store whose sources all live in one file, as the demo's do: rows show the record index, the inspector
/// the whole source.
#[test]
fn rows_show_sources_without_the_part_every_item_shares() {
    let dir = tempfile::tempdir().unwrap();
    let file = "/home/someone/.cache/torchlight/demo/mnist-digits-images-idx3-ubyte.gz";
    let store = Store::create_or_open(dir.path()).unwrap();
    let mut w = store.write_txn().unwrap();
    for id in 0..12u32 {
        let item = Item { source: format!("{file}#{id}"), label: Some(id % 3), width: 28, height: 28, hash: id.into() };
        store.put_item(&mut w, id, &item).unwrap();
    }
    store.put_label_names(&mut w, &["zero".into(), "one".into(), "two".into()]).unwrap();
    store.commit(w).unwrap();
    let (app, _rx) = open(Arc::new(store), &Graphics::Text, 100, 20);
    assert_eq!(app.data().source_prefix, file);
    let rows: Vec<&str> = app.list().rows().iter().map(|r| r.source.as_str()).collect();
    assert_eq!(rows[..3], ["#0", "#1", "#2"]);
    assert_eq!(app.inspector().current().unwrap().item.as_ref().unwrap().source, format!("{file}#0"));
    let text = snap(&app);
    assert!(text.contains("│/home/someone/.cache/torchlight/demo/"), "the inspector shows the whole source:\n{text}");
    insta::assert_snapshot!("demo_like_sources_100x20", text);
}

#[test]
fn images_come_from_the_worker_and_stale_ones_are_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = make(dir.path());
    let (mut app, rx) = open(store.clone(), &Graphics::halfblocks(), 120, 40);
    let first = app.selected().unwrap();
    // The worker answers with the selected item's own picture first. Hold that answer back, move on, then
    // hand it over: it arrives after the selection has moved, as a slow answer does, and must be dropped.
    let deadline = Instant::now() + Duration::from_secs(20);
    let stale = rx.recv_timeout(deadline - Instant::now()).expect("picture from the worker");
    assert!(matches!(&stale, Event::Preview(r) if r.selection == first && r.want.item == first));
    key(&mut app, KeyCode::Char('j'));
    let id = app.selected().unwrap();
    let neighbours = &app.inspector().current().unwrap().neighbours;
    assert!(neighbours.iter().all(|n| n.0 != first), "the new selection does not show the first item");
    assert!(!app.handle(stale), "a picture for a selection that moved on changes nothing");
    assert!(!app.inspector().has_picture(first));
    while !app.inspector().has_picture(id) {
        let ev = rx.recv_timeout(deadline - Instant::now()).expect("picture from the worker");
        app.handle(ev);
    }
    assert!(!app.inspector().has_picture(first), "nothing made for the first selection was kept");
    let t = draw(&app);
    let lay = torchlight_tui::layout::inspector(app.areas().inspector, 10, true);
    let buf = t.backend().buffer();
    let coloured = (lay.image.x..lay.image.right())
        .flat_map(|x| (lay.image.y..lay.image.bottom()).map(move |y| (x, y)))
        .filter(|&(x, y)| matches!(buf[(x, y)].fg, Color::Rgb(..)) || matches!(buf[(x, y)].bg, Color::Rgb(..)))
        .count();
    assert!(coloured > (lay.image.width * lay.image.height / 2) as usize, "halfblock picture drawn: {coloured}");
}

#[test]
fn empty_and_missing_stores_get_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nothing-here");
    let err = torchlight_tui::run(torchlight_tui::RunOptions {
        dir: missing.clone(),
        graphics: torchlight_tui::preview::Choice::None,
        detect_timeout: Duration::from_millis(10),
        space: None,
    })
    .unwrap_err();
    assert!(err.to_string().contains("torchlight ingest"), "{err}");
    let store = Arc::new(Store::create_or_open(dir.path()).unwrap());
    let (mut app, _rx) = open(store, &Graphics::Text, 80, 24);
    chars(&mut app, "jkxsg*/");
    key(&mut app, KeyCode::Esc);
    let t = draw(&app);
    assert!(screen(&t).contains("has no items yet"));
}

#[test]
fn no_color_draws_without_colours() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = make(dir.path());
    let (tx, _rx) = mpsc::channel();
    let options = Options { store_label: "s".into(), space: None, theme: Theme { color: false }, size: (120, 40) };
    let mut app = App::new(store, options, &Graphics::Text, tx).unwrap();
    app.resize(120, 40);
    let t = draw(&app);
    let buf = t.backend().buffer();
    assert!(buf.content().iter().all(|c| c.fg == Color::Reset && c.bg == Color::Reset));
    // The selected row is still visible: reversed.
    assert!(buf.content().iter().any(|c| c.modifier.contains(ratatui::style::Modifier::REVERSED)));
}

#[test]
fn column_row_reads_one_item() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = make(dir.path());
    let r = store.read_txn().unwrap();
    let all = store.column(&r, "foundation", columns::KNN_IDS).unwrap().unwrap();
    let one = store.column_row(&r, "foundation", columns::KNN_IDS, 7).unwrap().unwrap();
    let (Column::U32 { width, values }, Column::U32 { values: row, .. }) = (all, one) else { panic!() };
    assert_eq!(row, values[7 * width as usize..8 * width as usize]);
    assert!(store.column_row(&r, "foundation", columns::KNN_IDS, 300).unwrap().is_none());
    assert!(store.column_row(&r, "nope", columns::KNN_IDS, 0).unwrap().is_none());
}

mod snapshots {
    use super::*;

    #[test]
    fn screens() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = make(dir.path());
        let (mut app, _rx) = open(store.clone(), &Graphics::Text, 80, 24);
        insta::assert_snapshot!("main_80x24", snap(&app));
        key(&mut app, KeyCode::Char('?'));
        insta::assert_snapshot!("help_80x24", snap(&app));
        key(&mut app, KeyCode::Char('q'));
        key(&mut app, KeyCode::Char('e'));
        insta::assert_snapshot!("relabel_picker_80x24", snap(&app));
        key(&mut app, KeyCode::Esc);

        let (mut app, _rx) = open(store.clone(), &Graphics::Text, 120, 40);
        chars(&mut app, "jjx");
        insta::assert_snapshot!("main_120x40", snap(&app));
        key(&mut app, KeyCode::Char('v'));
        insta::assert_snapshot!("side_by_side_120x40", snap(&app));
        key(&mut app, KeyCode::Char('v'));
        chars(&mut app, "f++");
        insta::assert_snapshot!("duplicates_zoomed_120x40", snap(&app));
        key(&mut app, KeyCode::Char('?'));
        insta::assert_snapshot!("help_120x40", snap(&app));
        key(&mut app, KeyCode::Char('q'));
        key(&mut app, KeyCode::Char('f'));
        insta::assert_snapshot!("nn_flag_zoomed_120x40", snap(&app));
    }
}

#[test]
fn labels_come_from_the_label_column_and_older_stores_get_one_on_first_open() {
    let dir = tempfile::tempdir().unwrap();
    let (store, truth) = make(dir.path());
    {
        let r = store.read_txn().unwrap();
        assert!(!store.label_column_stale(&r).unwrap(), "the generator marks the dataset complete at the end");
    }
    // A store from before the label column: labels come from the item records, and the browser writes
    // the column for next time.
    let mut w = store.write_txn().unwrap();
    store.delete_column(&mut w, "", columns::LABEL).unwrap();
    store.commit(w).unwrap();
    let (app, _rx) = open(store.clone(), &Graphics::Text, 120, 40);
    assert_eq!(*app.data().label, truth.label);
    let r = store.read_txn().unwrap();
    assert!(!store.label_column_stale(&r).unwrap());
    assert_eq!(store.label_ids(&r).unwrap(), truth.label);
    drop(r);

    // While an analysis holds the writer lock the browser leaves the store alone (and still shows the labels).
    let mut w = store.write_txn().unwrap();
    store.delete_column(&mut w, "", columns::LABEL).unwrap();
    store.commit(w).unwrap();
    let lock = store.lock_writer("analyze").unwrap();
    let (app, _rx) = open(store.clone(), &Graphics::Text, 120, 40);
    assert_eq!(*app.data().label, truth.label);
    assert!(store.label_column_stale(&store.read_txn().unwrap()).unwrap());
    drop(lock);
}

#[test]
fn flag_bits_match_the_stored_flag_columns() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = make(dir.path());
    let r = store.read_txn().unwrap();
    let flags = |space: &str, name: &str| match store.column(&r, space, name).unwrap().unwrap() {
        Column::U32 { values, .. } => values,
        _ => panic!("{name} is not u32"),
    };
    let dup = flags("foundation", columns::NEAR_DUPLICATE);
    let nn = flags("foundation", columns::NN_FLAG);
    let issue = flags("finetuned", columns::LABEL_ISSUE);
    assert!(dup.contains(&1) && nn.contains(&1) && issue.contains(&1), "the generator makes every kind");
    drop(r);
    let (app, _rx) = open(store.clone(), &Graphics::Text, 120, 40);
    for id in 0..dup.len() as u32 {
        assert_eq!(app.data().near_duplicate(0, id), dup[id as usize] == 1, "item {id}");
        assert_eq!(app.data().nn_flag(0, id), nn[id as usize] == 1, "item {id}");
        assert_eq!(app.data().label_issue(0, id), issue[id as usize] == 1, "item {id} (from the finetuned space)");
    }
}

#[test]
fn pixel_terminals_get_the_scatter_as_a_picture_drawn_off_the_ui_thread() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = make(dir.path());
    let (mut app, rx) = open(store, &sixel(), 120, 40);
    let plot = torchlight_tui::layout::plot_area(app.areas().scatter[0]);
    let braille = |t: &Terminal<TestBackend>| {
        let buf = t.backend().buffer();
        (plot.x..plot.right())
            .flat_map(|x| (plot.y..plot.bottom()).map(move |y| (x, y)))
            .filter(|&(x, y)| {
                buf[(x, y)].symbol().chars().next().is_some_and(|c| ('\u{2801}'..='\u{28ff}').contains(&c))
            })
            .count()
    };
    // Nothing from the worker has been handled yet (results only enter through `handle`): the braille
    // raster shows.
    let space = app.space();
    assert!(app.scatter().plot_key(space).is_none());
    assert!(braille(&draw(&app)) > 20);
    key(&mut app, KeyCode::Char('j'));
    let selected = app.selected();
    let deadline = Instant::now() + Duration::from_secs(20);
    while app.scatter().plot_key(space).is_none_or(|k| k.selection != selected) {
        let ev = rx.recv_timeout(deadline - Instant::now()).expect("a plot from the worker");
        app.handle(ev);
    }
    let t = draw(&app);
    let first = t.backend().buffer()[(plot.x, plot.y)].symbol().to_string();
    // The cell holds the whole image: the area cleared, then the sixel (DCS ... q ... ST).
    let dcs = first.find("\x1bP").expect("a sixel sequence at the plot's top-left");
    assert!(first[dcs..].contains('q') && first.ends_with("\x1b\\"), "{:?}", &first[dcs..dcs + 12]);
    assert!(first.len() > 1000, "a {}x{} px picture", plot.width * 8, plot.height * 16);
    assert_eq!(braille(&t), 0, "the picture replaces the braille dots");
    // A new raster (zoom) makes the old picture stale: braille until one of the new raster is handled.
    key(&mut app, KeyCode::Char('+'));
    assert!(app.scatter().plot_key(space).is_some(), "the old picture is still held");
    assert!(app.scatter().picture(&app.scatter().rasters()[0]).is_none(), "but not shown");
    assert!(braille(&draw(&app)) > 0);
    while app.scatter().picture(&app.scatter().rasters()[0]).is_none() {
        let ev = rx.recv_timeout(deadline - Instant::now()).expect("a plot of the zoomed raster");
        app.handle(ev);
    }
    assert_eq!(braille(&draw(&app)), 0, "the zoomed picture replaces the braille dots");
}

#[test]
fn plot_pixels_draws_points_in_label_colours_and_marks_the_selection() {
    use torchlight_tui::plot::{PlotJob, PlotKey, Window, plot_pixels};
    let theme = Theme { color: true };
    let job = PlotJob {
        space: 0,
        key: PlotKey { raster: 1, selection: Some(2) },
        cells: (10, 5),
        px: (100, 100),
        window: Window { x0: 0.0, y0: 0.0, x1: 10.0, y1: 10.0 },
        // Items 0, 1, 2 at (1, 9), (9, 1), (5, 5); item 3 outside the window.
        proj: Arc::new(vec![1.0, 9.0, 9.0, 1.0, 5.0, 5.0, 20.0, 20.0]),
        label: Arc::new(vec![0, 1, 2, 0]),
        shown: Some(Arc::new(vec![0, 2, 3])),
        outliers: Vec::new(),
        selected: Some(2),
        neighbours: Vec::new(),
        trail: Vec::new(),
        theme,
    };
    let img = plot_pixels(&job);
    assert_eq!(img.dimensions(), (100, 100));
    let rgb = |c: Color| match c {
        Color::Rgb(r, g, b) => [r, g, b],
        _ => panic!("palette colours are RGB"),
    };
    // y grows upwards in the projection, downwards in the image.
    assert_eq!(img.get_pixel(10, 10).0, rgb(theme.label_color(0)));
    assert_eq!(img.get_pixel(90, 90).0, [0, 0, 0], "item 1 is not shown");
    assert_eq!(img.get_pixel(50, 50).0, [255, 255, 255], "the selected item");
    let lit = img.pixels().filter(|p| p.0 != [0, 0, 0]).count();
    assert!(lit < 200, "two points and one marker, nothing else: {lit} pixels");
}
