//! Shared by the dataset-reader targets: the readers take paths, so each input is written to a file in a
//! per-process directory (on /dev/shm when it exists) and opened through `torchlight_engine::source`,
//! exactly as `torchlight ingest` opens a dataset; then the first records are read and decoded.

use std::path::PathBuf;
use std::sync::OnceLock;

use torchlight_engine::source::{self, Format, OpenOptions};

fn dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base =
            if std::path::Path::new("/dev/shm").is_dir() { PathBuf::from("/dev/shm") } else { std::env::temp_dir() };
        let d = base.join(format!("torchlight-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    })
}

/// Writes `files` (name, bytes) into a fresh dataset directory and reads it as `format`; `open` names the
/// path handed to the reader ("" for the directory itself). Errors are expected; panics are the bugs.
pub fn read_dataset(format: Format, files: &[(&str, &[u8])], open: &str) {
    // torchlight turns a dependency's panic on a corrupt file into an error (catch_unwind at the reader's
    // boundary); libfuzzer-sys's hook would abort before that. With the default hook back, a panic that escapes
    // torchlight still ends the process: it cannot unwind out of libFuzzer's extern "C" callback.
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| drop(std::panic::take_hook()));
    let root = dir().join("ds");
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    for (name, bytes) in files {
        std::fs::write(root.join(name), bytes).unwrap();
    }
    let path = if open.is_empty() { root.clone() } else { root.join(open) };
    let opts = OpenOptions { format: Some(format), split: None, label_column: None, image_column: None };
    let Ok(src) = source::open(path.to_str().unwrap(), &opts) else { return };
    let len = src.info().len;
    let Ok(records) = src.records(0) else { return };
    let mut seen = 0;
    for rec in records.take(64) {
        seen += 1;
        if let Ok(rec) = rec {
            let _ = rec.decode();
        }
    }
    assert!(seen <= len.max(64), "the reader yielded more records than its info says ({len})");
}
