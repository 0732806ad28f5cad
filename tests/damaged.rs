//! Damaged stores: what a half-finished copy or a wiped file does to a store must come out as an error that
//! names the store and says what to do, never a crash (SIGBUS from a mapped page past the end of the file), and
//! a read-only command must not change a byte.

use std::path::Path;
use std::process::Command;

use crate::common;
use torchlight_synth::{self as synth, SynthParams};

fn run(args: &[&str], store: &Path) -> (Option<i32>, String) {
    let out = Command::new(common::bin::torchlight()).args(args).arg("--store").arg(store).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code(), text)
}

/// The commands that read a store, each given the store by `run`.
const READERS: [&[&str]; 3] = [&["info"], &["export", "-o", "/dev/null/never.csv"], &["browse", "--graphics", "none"]];

#[test]
fn a_truncated_data_file_is_refused_by_name_not_a_sigbus() {
    let dir = tempfile::tempdir().unwrap();
    let whole = dir.path().join("whole");
    drop(synth::generate(&whole, &SynthParams { items: 3000, ..SynthParams::default() }).unwrap());
    let bytes = std::fs::read(whole.join("data.mdb")).unwrap();
    for percent in [1, 9, 50, 99] {
        let cut = dir.path().join(format!("cut-{percent}"));
        std::fs::create_dir(&cut).unwrap();
        let kept = &bytes[..bytes.len() * percent / 100];
        std::fs::write(cut.join("data.mdb"), kept).unwrap();
        for args in READERS {
            let (code, text) = run(args, &cut);
            assert_eq!(code, Some(1), "{args:?} on {percent}%: {text}");
            assert!(
                text.contains(&cut.display().to_string()) && text.contains("damaged") && text.contains("cut short"),
                "{args:?} on {percent}%: {text}"
            );
            assert!(text.contains("Restore data.mdb from a copy"), "{args:?}: {text}");
        }
        assert_eq!(std::fs::read(cut.join("data.mdb")).unwrap(), kept, "{percent}%: the file changed");
    }
}

#[test]
fn an_empty_data_file_is_reported_damaged_and_left_as_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    std::fs::create_dir(&store).unwrap();
    std::fs::write(store.join("data.mdb"), b"").unwrap();
    for args in READERS {
        let (code, text) = run(args, &store);
        assert_eq!(code, Some(1), "{args:?}: {text}");
        assert!(text.contains("damaged") && text.contains("data.mdb is empty"), "{args:?}: {text}");
        assert!(!text.contains("none yet"), "{args:?} took it for a missing store: {text}");
        assert_eq!(std::fs::metadata(store.join("data.mdb")).unwrap().len(), 0, "{args:?} wrote to it");
    }
    // ingest refuses it too, rather than starting a new store over it.
    let digits = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("crates/engine/src/demo/assets/mnist-digits-images-idx3-ubyte.gz");
    let (code, text) = run(&["ingest", digits.to_str().unwrap(), "--limit", "5", "--no-analyze"], &store);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("damaged"), "{text}");
    assert_eq!(std::fs::metadata(store.join("data.mdb")).unwrap().len(), 0, "ingest wrote to it");
}

/// `info` and `export` open a store for reading only: the data file is byte for byte the same afterwards.
#[test]
fn read_only_commands_never_change_the_data_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    drop(synth::generate(&store, &SynthParams { items: 500, ..SynthParams::default() }).unwrap());
    let before = std::fs::read(store.join("data.mdb")).unwrap();
    let out = dir.path().join("t.csv");
    for args in [&["info"][..], &["export", "-o", out.to_str().unwrap()]] {
        let (code, text) = run(args, &store);
        assert_eq!(code, Some(0), "{args:?}: {text}");
    }
    assert_eq!(std::fs::read(store.join("data.mdb")).unwrap(), before);
}
