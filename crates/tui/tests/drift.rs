//! The drift view over a synthetic fine-tuning series and over a foundation/fine-tuned pair: scrubbing,
//! playing, the trajectory, drift sorting, and snapshots of the view (TestBackend, text-only graphics so they
//! are deterministic).

mod common;

use common::{chars, column_f32, draw, key, screen, sixel};

use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver};

use crossterm::event::KeyCode;
use ratatui::style::Color;
use torchlight_store::{Store, columns};
use torchlight_synth::{self as synth, SeriesTruth, SynthParams, Truth};
use torchlight_tui::app::{App, Options};
use torchlight_tui::event::Event;
use torchlight_tui::filter::SortKey;
use torchlight_tui::layout::Arrangement;
use torchlight_tui::preview::Graphics;
use torchlight_tui::theme::Theme;

const ITEMS: u32 = 300;
const STEPS: u32 = 5;

fn make(dir: &Path) -> (Arc<Store>, SeriesTruth) {
    let (store, truth) = synth::series_store(dir, ITEMS, STEPS).unwrap();
    (Arc::new(store), truth)
}

/// A store without a series but with the foundation and finetuned spaces and the drift between them.
fn make_pair(dir: &Path) -> (Arc<Store>, Truth) {
    let p = SynthParams { items: ITEMS, ann: false, drift: true, ..SynthParams::default() };
    let (store, truth) = synth::generate(dir, &p).unwrap();
    (Arc::new(store), truth)
}

fn open(store: Arc<Store>, w: u16, h: u16) -> (App, Receiver<Event>) {
    let (tx, rx) = mpsc::channel();
    let options =
        Options { store_label: "series-store".into(), space: None, theme: Theme { color: true }, size: (w, h) };
    let mut app = App::new(store, options, &Graphics::Text, tx).unwrap();
    app.resize(w, h);
    (app, rx)
}

#[test]
fn the_series_store_holds_steps_losses_and_drift_that_fine_tuning_explains() {
    let dir = tempfile::tempdir().unwrap();
    let (store, truth) = make(dir.path());
    let r = store.read_txn().unwrap();
    let series = store.series(&r).unwrap().expect("a series record");
    let names: Vec<&str> = series.steps.iter().map(|s| s.space.as_str()).collect();
    assert_eq!(names, ["foundation", "step-10", "step-20", "step-30", "step-40"]);
    assert!(series.losses.first().unwrap().loss > series.losses.last().unwrap().loss + 1.0, "the loss falls");
    drop(r);
    // Consecutive steps move little; first to last moves most for items whose label is wrong (memorised).
    let moved = column_f32(&store, "", columns::DRIFT_MOVEMENT);
    let step = column_f32(&store, "step-10", columns::DRIFT_MOVEMENT);
    let t = &truth.truth;
    let wrong: Vec<usize> = (0..ITEMS as usize).filter(|&i| t.label[i] != t.true_class[i] && !t.outlier[i]).collect();
    assert!(!wrong.is_empty());
    let mut order: Vec<usize> = (0..ITEMS as usize).collect();
    order.sort_by(|&a, &b| moved[b].total_cmp(&moved[a]));
    assert!(order[..wrong.len()].iter().all(|i| wrong.contains(i)), "the top movers are the relabelled items");
    let mean = |v: &[f32]| v.iter().sum::<f32>() / v.len() as f32;
    assert!(mean(&step) < mean(&moved), "one step moves less than the whole run");
    let jaccard = column_f32(&store, "", columns::DRIFT_KNN_JACCARD);
    assert!(jaccard.iter().all(|j| (0.0..=1.0).contains(j)));
    assert!(wrong.iter().all(|&i| jaccard[i] < 0.2), "a memorised item has new neighbours");
}

#[test]
fn scrubbing_stays_within_the_series_and_shows_each_steps_space() {
    let dir = tempfile::tempdir().unwrap();
    let (store, truth) = make(dir.path());
    let (mut app, _rx) = open(store, 120, 40);
    assert!(!app.drift().is_on());
    assert!(key(&mut app, KeyCode::Char('F')));
    assert_eq!(app.arrangement(), Arrangement::Drift);
    assert_eq!((app.drift().position(), app.space_name()), ((0, 5), "foundation"));
    key(&mut app, KeyCode::Char('['));
    assert_eq!(app.drift().position().0, 0, "no step before the first");
    for (s, (name, step)) in truth.steps.iter().enumerate().skip(1) {
        key(&mut app, KeyCode::Char(']'));
        assert_eq!(app.drift().position().0, s);
        assert_eq!(app.space_name(), name);
        assert_eq!(app.drift().step(), Some(*step));
    }
    chars(&mut app, "]]]");
    assert_eq!(app.drift().position().0, 4, "no step after the last");
    // The loss shown is the last one logged at or before the step.
    assert!(
        (app.drift().loss().unwrap() - app.data().series.as_ref().unwrap().losses.last().unwrap().loss).abs() < 1e-12
    );
    key(&mut app, KeyCode::Char('['));
    assert_eq!(app.space_name(), "step-30");
    // Closing keeps the step's space and gives the screen back to the inspector.
    key(&mut app, KeyCode::Char('F'));
    assert_eq!(app.arrangement(), Arrangement::Main);
    assert_eq!(app.space_name(), "step-30");
    assert!(app.scatter().view().frame.is_none());
}

#[test]
fn playing_advances_one_step_per_frame_and_stops_at_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = make(dir.path());
    let (mut app, _rx) = open(store, 100, 30);
    assert!(!app.handle(Event::Frame), "nothing plays before the view opens");
    key(&mut app, KeyCode::Char('P'));
    assert!(app.message().unwrap().contains("F opens the drift view"));
    chars(&mut app, "FP");
    assert!(app.drift().is_playing());
    assert!(app.frame_interval().is_some(), "the loop times frames while playing");
    assert!(!app.handle(Event::Tick), "the idle tick is not an animation frame");
    for s in 1..5 {
        assert!(app.handle(Event::Frame));
        assert_eq!(app.drift().position().0, s);
    }
    assert!(!app.drift().is_playing(), "stopped on the last step");
    assert!(app.frame_interval().is_none());
    assert!(!app.handle(Event::Frame));
    assert_eq!(app.drift().position().0, 4);
    // Play from the last step starts again at the first; a scrub stops it.
    key(&mut app, KeyCode::Char('P'));
    assert_eq!((app.drift().position().0, app.space_name()), (0, "foundation"));
    app.handle(Event::Frame);
    key(&mut app, KeyCode::Char(']'));
    assert!(!app.drift().is_playing());
    assert_eq!(app.drift().position().0, 2);
}

#[test]
fn the_trajectory_is_the_selected_items_position_at_every_step() {
    let dir = tempfile::tempdir().unwrap();
    let (store, truth) = make(dir.path());
    let (mut app, _rx) = open(store, 120, 40);
    chars(&mut app, "Fjjj");
    let id = app.selected().unwrap() as usize;
    let want: Vec<(f32, f32)> = truth.pos.iter().map(|p| (p[2 * id], p[2 * id + 1])).collect();
    assert_eq!(app.drift().trajectory(), &want[..]);
    assert!(!app.drift().path().is_empty(), "drawn on the scatter");
    // The frame holds every step's points: scrubbing keeps the window.
    let window = app.scatter().rasters()[0].window;
    chars(&mut app, "]]");
    assert_eq!(app.scatter().rasters()[0].window, window);
    key(&mut app, KeyCode::Char('j'));
    let other = app.selected().unwrap() as usize;
    assert_eq!(app.drift().trajectory()[2], (truth.pos[2][2 * other], truth.pos[2][2 * other + 1]));
}

#[test]
fn the_sort_cycle_reaches_the_drift_columns_and_the_inspector_shows_them() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = make(dir.path());
    let moved = column_f32(&store, "", columns::DRIFT_MOVEMENT);
    let jaccard = column_f32(&store, "", columns::DRIFT_KNN_JACCARD);
    let (mut app, _rx) = open(store, 120, 40);
    assert_eq!(app.list().sort(), SortKey::Outlier);
    key(&mut app, KeyCode::Char('s'));
    assert_eq!(app.list().sort(), SortKey::DriftJaccard);
    let shown: Vec<f32> = app.list().shown().iter().map(|&i| jaccard[i as usize]).collect();
    assert!(shown.windows(2).all(|w| w[0] <= w[1]), "fewest shared neighbours first");
    key(&mut app, KeyCode::Char('s'));
    assert_eq!(app.list().sort(), SortKey::DriftMovement);
    let shown: Vec<f32> = app.list().shown().iter().map(|&i| moved[i as usize]).collect();
    assert!(shown.windows(2).all(|w| w[0] >= w[1]), "moved most first");
    key(&mut app, KeyCode::Char('r'));
    let shown: Vec<f32> = app.list().shown().iter().map(|&i| moved[i as usize]).collect();
    assert!(shown.windows(2).all(|w| w[0] <= w[1]), "r: moved least first");
    key(&mut app, KeyCode::Char('s'));
    assert_eq!(app.list().sort(), SortKey::DriftRankChange);
    key(&mut app, KeyCode::Char('s'));
    assert_eq!(app.list().sort(), SortKey::NnDistance);
    let id = app.selected().unwrap();
    let text = screen(&draw(&app));
    let want = format!("moved {:.2}", moved[id as usize]);
    assert!(text.contains("drift jaccard") && text.contains(&want), "inspector shows {want}:\n{text}");
}

#[test]
fn a_store_without_a_series_or_the_pair_says_how_to_get_one() {
    let dir = tempfile::tempdir().unwrap();
    let p = SynthParams { items: 50, spaces: ["clip", "dino"], ..SynthParams::default() };
    let (store, _) = synth::generate(dir.path(), &p).unwrap();
    let (mut app, _rx) = open(Arc::new(store), 80, 24);
    key(&mut app, KeyCode::Char('F'));
    assert_eq!(app.arrangement(), Arrangement::Main);
    assert!(app.message().unwrap().contains("--checkpoints"), "{:?}", app.message());
    key(&mut app, KeyCode::Char(']'));
    assert_eq!(app.space_name(), "clip");
    assert!(!screen(&draw(&app)).contains(" F drift"), "no drift hint without a series");
}

#[test]
fn the_pair_steps_from_foundation_to_finetuned_without_training_steps() {
    let dir = tempfile::tempdir().unwrap();
    let (store, truth) = make_pair(dir.path());
    let (mut app, _rx) = open(store, 120, 40);
    assert!(screen(&draw(&app)).contains(" F drift"), "the pair is a drift view to open");
    chars(&mut app, "jjj");
    assert!(key(&mut app, KeyCode::Char('F')));
    assert_eq!(app.arrangement(), Arrangement::Drift);
    assert_eq!((app.drift().position(), app.space_name()), ((0, 2), "foundation"));
    assert_eq!((app.drift().step(), app.drift().loss()), (None, None), "two models, not steps of a run");
    let id = app.selected().unwrap() as usize;
    let want: Vec<(f32, f32)> = truth.pos.iter().map(|p| (p[2 * id], p[2 * id + 1])).collect();
    assert_eq!(app.drift().trajectory(), &want[..]);
    let text = screen(&draw(&app));
    assert!(text.contains(" foundation → finetuned · foundation · 1/2 umap "), "{text}");
    assert!(text.contains(" before → after fine-tuning ") && text.contains("no training log"), "{text}");
    assert!(!text.contains("step 0") && !text.contains("loss") && !text.contains(" since "), "{text}");
    key(&mut app, KeyCode::Char(']'));
    assert_eq!((app.drift().position(), app.space_name()), ((1, 2), "finetuned"));
    chars(&mut app, "]");
    assert_eq!(app.drift().position().0, 1, "no step after the second");
    // The fine-tuned space keeps no drift of its own: the words are the dataset-level ("") columns.
    let col = |name| column_f32(app.store(), "", name)[id];
    let (j, m, r) = (col(columns::DRIFT_KNN_JACCARD), col(columns::DRIFT_MOVEMENT), col(columns::DRIFT_RANK_CHANGE));
    let words = format!(" #{id} since foundation: jaccard {j:.2} · moved {m:.2} · rank {r:+.0} ");
    let text = screen(&draw(&app));
    assert!(text.contains(&words), "{words} in\n{text}");
    assert!(text.contains(" foundation → finetuned · finetuned · 2/2 umap "), "{text}");
    // Play starts over from the foundation and stops on the fine-tuned space.
    key(&mut app, KeyCode::Char('P'));
    assert_eq!(app.drift().position().0, 0);
    assert!(app.handle(Event::Frame));
    assert_eq!((app.drift().position().0, app.drift().is_playing()), (1, false));
}

#[test]
fn the_trajectory_and_loss_marker_are_drawn_in_their_colour() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = make(dir.path());
    let (mut app, _rx) = open(store, 120, 40);
    // The item that moved most has the longest trajectory.
    chars(&mut app, "ssgF]]");
    let t = draw(&app);
    let buf = t.backend().buffer();
    let plot = torchlight_tui::layout::plot_area(app.areas().scatter[0]);
    let trail = app.drift().path();
    let yellow = trail.iter().filter(|c| buf[(plot.x + c.x, plot.y + c.y)].fg == Color::Yellow).count();
    assert!(trail.len() > 5 && yellow * 10 >= trail.len() * 8, "{yellow} of {} trail cells", trail.len());
    let loss = app.areas().loss;
    let marked = (loss.x..loss.right())
        .flat_map(|x| (loss.y..loss.bottom()).map(move |y| (x, y)))
        .filter(|&(x, y)| buf[(x, y)].fg == Color::Yellow)
        .count();
    assert!(marked >= 3, "the step marker crosses the loss chart: {marked} cells");
}

#[test]
fn plot_pixels_draws_the_trail() {
    use torchlight_tui::plot::{PlotJob, PlotKey, Window, plot_pixels};
    let job = PlotJob {
        space: 0,
        key: PlotKey { raster: 1, selection: None },
        cells: (10, 5),
        px: (100, 100),
        window: Window { x0: 0.0, y0: 0.0, x1: 10.0, y1: 10.0 },
        proj: Arc::new(vec![]),
        label: Arc::new(vec![]),
        shown: Some(Arc::new(vec![])),
        outliers: Vec::new(),
        selected: None,
        neighbours: Vec::new(),
        trail: vec![(1.0, 5.0), (9.0, 5.0), (f32::NAN, f32::NAN), (9.0, 9.0)],
        theme: Theme { color: true },
    };
    let img = plot_pixels(&job);
    assert_eq!(img.get_pixel(50, 50).0, [255, 220, 90], "on the segment");
    assert_eq!(img.get_pixel(90, 30).0, [0, 0, 0], "a missing step breaks the line");
}

#[test]
fn pixel_terminals_get_each_step_as_a_picture() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = make(dir.path());
    let (tx, rx) = mpsc::channel();
    let options = Options { store_label: "s".into(), space: None, theme: Theme { color: true }, size: (120, 40) };
    let mut app = App::new(store, options, &sixel(), tx).unwrap();
    app.resize(120, 40);
    chars(&mut app, "ssgF]");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let current = |app: &App| app.scatter().picture(&app.scatter().rasters()[0]).is_some();
    while !current(&app) {
        let ev = rx.recv_timeout(deadline - std::time::Instant::now()).expect("a plot of the step from the worker");
        app.handle(ev);
    }
    assert_eq!(app.scatter().rasters()[0].space, app.space(), "drawn for the step shown");
    let plot = torchlight_tui::layout::plot_area(app.areas().scatter[0]);
    let t = draw(&app);
    let first = t.backend().buffer()[(plot.x, plot.y)].symbol().to_string();
    assert!(first.contains("\x1bP"), "a sixel sequence at the plot's top-left");
    // The next step is a new raster: its own picture follows.
    key(&mut app, KeyCode::Char(']'));
    assert!(!current(&app), "the previous step's picture is not shown for this one");
    while !current(&app) {
        let ev = rx.recv_timeout(deadline - std::time::Instant::now()).expect("a plot of the next step");
        app.handle(ev);
    }
}

mod snapshots {
    use super::*;

    #[test]
    fn drift_view() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = make(dir.path());
        let (mut app, _rx) = open(store.clone(), 80, 24);
        key(&mut app, KeyCode::Char('F'));
        insta::assert_snapshot!("drift_first_step_80x24", screen(&draw(&app)));
        // Sorted by movement, the top item is one fine-tuning moved far: its trajectory crosses the plot.
        let (mut app, _rx) = open(store, 120, 40);
        chars(&mut app, "ssgF]]");
        insta::assert_snapshot!("drift_step_20_trajectory_120x40", screen(&draw(&app)));
        chars(&mut app, "]]P");
        insta::assert_snapshot!("drift_last_step_replay_120x40", screen(&draw(&app)));
    }

    #[test]
    fn drift_view_of_the_pair() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = make_pair(dir.path());
        // Sorted by movement, the top item is one fine-tuning moved far.
        let (mut app, _rx) = open(store, 120, 40);
        chars(&mut app, "ssgF]");
        insta::assert_snapshot!("drift_pair_finetuned_120x40", screen(&draw(&app)));
    }
}
