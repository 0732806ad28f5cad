//! End to end in a real terminal: the release binary inside a headless tmux, driven by send-keys. Sorts by
//! outlier score, tags the top item, quits, and finds the tag in the store; on real digits (the demo's MNIST
//! images, ingested and analysed by the CLI) it also finds the tag in the export. On a fine-tuning series it
//! opens the drift view, scrubs, plays to the last checkpoint and quits.
//! Skipped with a notice when tmux is not installed (a failure under CI=true).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common;

use common::tmux::{Tmux, tmux_available};
use torchlight_store::{Column, Store, TagKind, columns};
use torchlight_synth::{self as synth, SynthParams};

/// The most anomalous item of the store's first space (the one browse opens on).
fn first_space_argmin(store: &Store) -> u32 {
    let space = store.spaces(&store.read_txn().unwrap()).unwrap()[0].name.clone();
    argmin(store, &space)
}

fn start_browse(tmux: &Tmux, store_dir: &Path) {
    let bin_path = common::bin::torchlight();
    let bin = bin_path.to_str().expect("a UTF-8 path");
    let cmd = format!(
        "env -u TERM_PROGRAM TERM=xterm-256color {bin} browse --store {} --graphics halfblocks",
        store_dir.display()
    );
    let started = tmux.run(&["-f", "/dev/null", "new-session", "-d", "-s", "browse", "-x", "120", "-y", "40", &cmd]);
    assert!(started.status.success(), "tmux: {}", String::from_utf8_lossy(&started.stderr));
}

fn quit(tmux: &Tmux) {
    tmux.keys(&["q"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while tmux.alive() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!tmux.alive(), "browse did not quit");
}

fn argmin(store: &Store, space: &str) -> u32 {
    let r = store.read_txn().unwrap();
    let Some(Column::F32 { values, .. }) = store.column(&r, space, columns::OUTLIER_SCORE).unwrap() else { panic!() };
    let mut best = 0;
    for (i, v) in values.iter().enumerate() {
        if *v < values[best] {
            best = i;
        }
    }
    best as u32
}

#[test]
fn tmux_sort_tag_quit_and_find_the_tag() {
    if !tmux_available("tmux_sort_tag_quit_and_find_the_tag") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store_dir = dir.path().join("store");
    let (store, _) = synth::generate(&store_dir, &SynthParams { items: 400, ..SynthParams::default() }).unwrap();
    let top = argmin(&store, "foundation");
    drop(store);

    let tmux = Tmux { socket: format!("torchlight-browse-test-{}", std::process::id()) };
    start_browse(&tmux, &store_dir);
    tmux.wait_for("items 400/400");

    // Sort: cycle away from the outlier score and back to it, ascending (most anomalous first).
    tmux.keys(&["s"]);
    tmux.wait_for("sort nn distance");
    for _ in 0..6 {
        tmux.keys(&["s"]);
    }
    let screen = tmux.wait_for("sort outlier score↑");
    let first_row = screen.lines().skip_while(|l| !l.contains(" id ")).nth(1).unwrap_or("").to_string();
    assert!(first_row.starts_with(&format!("│  {top} ")), "top row is item {top}: {first_row}\n{screen}");

    tmux.keys(&["g", "x"]);
    tmux.wait_for(&format!("#{top} tagged outlier"));
    quit(&tmux);

    let store = Store::open(Path::new(&store_dir)).unwrap();
    let r = store.read_txn().unwrap();
    let tags = store.tags(&r).unwrap();
    assert_eq!(tags.len(), 1);
    assert_eq!(tags[0].0, top);
    assert_eq!(tags[0].1.kind, Some(TagKind::Outlier));
}

#[test]
fn tmux_real_digits_ingest_browse_tag_and_export() {
    if !tmux_available("tmux_real_digits_ingest_browse_tag_and_export") {
        return;
    }
    let bin_path = common::bin::torchlight();
    let bin = bin_path.to_str().expect("a UTF-8 path");
    let dir = tempfile::tempdir().unwrap();
    let images = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("crates/engine/src/demo/assets/mnist-digits-images-idx3-ubyte.gz");
    let store_dir = dir.path().join("store");
    // 300 real MNIST digits from the demo's IDX file; their pixels as precomputed embeddings (the model path
    // of ingest is not needed for what this test checks). Ingest runs the analysis at the end.
    const N: usize = 300;
    let mut idx = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(std::fs::File::open(&images).unwrap()), &mut idx)
        .unwrap();
    let pixels: Vec<f32> = idx[16..16 + N * 784].iter().map(|&p| f32::from(p) / 255.0).collect();
    let npy = dir.path().join("pixels.npy");
    torchlight_store::npy::write_f32(std::fs::File::create(&npy).unwrap(), &[N, 784], &pixels).unwrap();
    let out = Command::new(bin)
        .args(["ingest", images.to_str().unwrap(), "--format", "idx", "--limit", "300"])
        .args(["--store", store_dir.to_str().unwrap(), "--embeddings", &format!("pixels={}", npy.display())])
        .output()
        .unwrap();
    assert!(out.status.success(), "ingest failed: {}", String::from_utf8_lossy(&out.stderr));
    let top = {
        let store = Store::open(&store_dir).unwrap();
        first_space_argmin(&store)
    };

    let tmux = Tmux { socket: format!("torchlight-browse-e2e-{}", std::process::id()) };
    start_browse(&tmux, &store_dir);
    let screen = tmux.wait_for("sort outlier score↑");
    assert!(screen.contains("items 300/300"), "{screen}");
    let first_row = screen.lines().skip_while(|l| !l.contains(" id ")).nth(1).unwrap_or("").to_string();
    assert!(first_row.starts_with(&format!("│  {top} ")), "top row is item {top}: {first_row}\n{screen}");
    tmux.keys(&["g", "x"]);
    tmux.wait_for(&format!("#{top} tagged outlier"));
    quit(&tmux);

    let export = dir.path().join("scores.jsonl");
    let out = Command::new(bin)
        .args(["export", "--store", store_dir.to_str().unwrap(), "-o", export.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "export failed: {}", String::from_utf8_lossy(&out.stderr));
    let rows: Vec<serde_json::Value> =
        std::fs::read_to_string(&export).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rows.len(), 300);
    let tagged: Vec<&serde_json::Value> = rows.iter().filter(|r| !r["tag"].is_null()).collect();
    assert_eq!(tagged.len(), 1, "one tagged row");
    assert_eq!(tagged[0]["id"], serde_json::json!(top));
    assert_eq!(tagged[0]["tag"], serde_json::json!("outlier"));
}

/// Waits until the screen shows every one of `texts`. A frame reaches tmux top to bottom and a capture can
/// fall half-way through one, so a check of a title and of the hint line under it waits for both.
fn wait_for_all(tmux: &Tmux, texts: &[&str]) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let screen = tmux.capture();
        if texts.iter().all(|t| screen.contains(t)) {
            return screen;
        }
        assert!(Instant::now() < deadline, "{texts:?} never all appeared; screen:\n{screen}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn tmux_drift_view_scrubs_plays_to_the_end_and_quits() {
    if !tmux_available("tmux_drift_view_scrubs_plays_to_the_end_and_quits") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store_dir = dir.path().join("store");
    let (store, series) = synth::series_store(&store_dir, 300, 5).unwrap();
    drop(store);
    let (last_space, last_step) = series.steps.last().unwrap().clone();

    let tmux = Tmux { socket: format!("torchlight-drift-test-{}", std::process::id()) };
    start_browse(&tmux, &store_dir);
    // A store with a series names the drift view's key.
    wait_for_all(&tmux, &["items 300/300", "F drift"]);

    tmux.keys(&["F"]);
    wait_for_all(&tmux, &["step 0 · foundation", "training loss", "F close drift"]);
    tmux.keys(&["]", "]"]);
    tmux.wait_for("step 20 · step-20 · loss");
    tmux.keys(&["["]);
    tmux.wait_for("step 10 · step-10 · loss");
    // Play from step 10: the animation reaches the last checkpoint by itself and stops there.
    tmux.keys(&["P"]);
    let last = format!("step {last_step} · {last_space} · loss");
    let screen = wait_for_all(&tmux, &[&last, "P play"]);
    assert!(!screen.contains("▶"), "stopped at the end:\n{screen}");
    quit(&tmux);
}
