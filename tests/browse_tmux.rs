//! End to end in a real terminal: the release binary inside a headless tmux, driven by send-keys. Sorts by
//! outlier score, tags the top item, quits, and finds the tag in the store.
//! Skipped with a notice when tmux is not installed.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use torchlight::store::{Column, Store, TagKind, columns};
use torchlight::synth::{self, SynthParams};

struct Tmux {
    socket: String,
}

impl Tmux {
    fn run(&self, args: &[&str]) -> std::process::Output {
        Command::new("tmux").arg("-L").arg(&self.socket).args(args).output().expect("running tmux")
    }

    fn capture(&self) -> String {
        String::from_utf8_lossy(&self.run(&["capture-pane", "-p", "-t", "browse"]).stdout).into_owned()
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "browse"];
        args.extend_from_slice(keys);
        assert!(self.run(&args).status.success());
    }

    /// Waits until the screen contains `text`; panics with the screen when it never does.
    fn wait_for(&self, text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let screen = self.capture();
            if screen.contains(text) {
                return screen;
            }
            if Instant::now() > deadline {
                panic!("'{text}' never appeared; screen:\n{screen}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn alive(&self) -> bool {
        self.run(&["has-session", "-t", "browse"]).status.success()
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        // Only our own server, by its socket name.
        let _ = self.run(&["kill-server"]);
    }
}

fn tmux_available() -> bool {
    Command::new("tmux").arg("-V").output().is_ok_and(|o| o.status.success())
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
    if !tmux_available() {
        eprintln!("NOTICE: tmux is not installed; skipping the end-to-end browse test (apt-get install tmux)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store_dir = dir.path().join("store");
    let (store, _) = synth::generate(&store_dir, &SynthParams { items: 400, ..SynthParams::default() }).unwrap();
    let top = argmin(&store, "foundation");
    drop(store);

    let bin = env!("CARGO_BIN_EXE_torchlight");
    let tmux = Tmux { socket: format!("torchlight-browse-test-{}", std::process::id()) };
    let cmd = format!(
        "env -u TERM_PROGRAM TERM=xterm-256color {bin} browse --store {} --graphics halfblocks",
        store_dir.display()
    );
    let started = tmux.run(&["-f", "/dev/null", "new-session", "-d", "-s", "browse", "-x", "120", "-y", "40", &cmd]);
    assert!(started.status.success(), "tmux: {}", String::from_utf8_lossy(&started.stderr));
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
    tmux.keys(&["q"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while tmux.alive() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!tmux.alive(), "browse did not quit");

    let store = Store::open(Path::new(&store_dir)).unwrap();
    let r = store.read_txn().unwrap();
    let tags = store.tags(&r).unwrap();
    assert_eq!(tags.len(), 1);
    assert_eq!(tags[0].0, top);
    assert_eq!(tags[0].1.kind, Some(TagKind::Outlier));
}
