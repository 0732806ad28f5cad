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

/// A store of 50 items with a 16-d space whose rows are easy to find in data.mdb, and one analysis column.
fn store_to_damage(dir: &Path) -> Vec<f32> {
    use torchlight_store::{Column, Item, ModelSpec, SpaceInfo, Store};
    let store = Store::create_or_open(dir).unwrap();
    let mut w = store.write_txn().unwrap();
    let model = ModelSpec {
        kind: "precomputed".into(),
        source: "test".into(),
        fingerprint: "t".into(),
        pooling: "none".into(),
        image_size: 0,
    };
    let space = SpaceInfo { name: "s".into(), index: 0, dim: 16, model, num_classes: 0, class_names: vec![] };
    let space = store.put_space(&mut w, space).unwrap();
    let mut rows = Vec::new();
    for id in 0..50u32 {
        let item =
            Item { source: format!("img-{id:04}.png"), label: Some(id % 5), width: 8, height: 8, hash: u64::from(id) };
        store.put_item(&mut w, id, &item).unwrap();
        store.put_thumbnail(&mut w, id, format!("thumb-{id:04}").as_bytes()).unwrap();
        let row: Vec<f32> = (0..16).map(|j| 1000.0 + (id * 16 + j) as f32 * 0.25).collect();
        store.put_embedding(&mut w, space.index, id, &row).unwrap();
        rows.extend(row);
    }
    let scores: Vec<f32> = (0..50).map(|i| 0.5 + i as f32 * 1e-3).collect();
    store.put_column(&mut w, "s", "outlier_score", &Column::F32 { width: 1, values: scores }).unwrap();
    store.commit(w).unwrap();
    rows
}

/// Flips one bit wherever `needle` occurs in `file` (LMDB may keep an old copy of a page beside the live one).
fn flip_where(file: &Path, needle: &[u8]) {
    let mut bytes = std::fs::read(file).unwrap();
    let at: Vec<usize> =
        bytes.windows(needle.len()).enumerate().filter(|(_, w)| *w == needle).map(|(i, _)| i).collect();
    assert!(!at.is_empty(), "the bytes to damage are not in {}", file.display());
    for i in at {
        bytes[i + needle.len() / 2] ^= 0x10;
    }
    std::fs::write(file, bytes).unwrap();
}

/// Flipped bytes in an embedding, an item record and a column: `verify` names each (item, space, column) and exits
/// 1; `export` refuses to pass the damage on, and `--skip-damaged` writes the rest, saying how many it left out.
#[test]
fn verify_names_flipped_records_and_exports_refuse_them() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let rows = store_to_damage(&store);
    let (code, text) = run(&["verify"], &store);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("no damage found") && text.contains("50 items"), "{text}");

    let data = store.join("data.mdb");
    let row7: Vec<u8> = rows[7 * 16..8 * 16].iter().flat_map(|v| v.to_le_bytes()).collect();
    flip_where(&data, &row7);
    flip_where(&data, b"img-0023.png");
    let scores: Vec<u8> = (10..20).flat_map(|i| (0.5 + i as f32 * 1e-3).to_le_bytes()).collect();
    flip_where(&data, &scores);

    let (code, text) = run(&["verify"], &store);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("the embeddings of item #7 in space s: do not match their checksums"), "{text}");
    assert!(text.contains("the records of item #23: do not match their checksums"), "{text}");
    assert!(text.contains("column s/outlier_score: do not match their checksums"), "{text}");
    assert!(text.contains("torchlight analyze") && text.contains("--skip-damaged"), "{text}");

    let npy = dir.path().join("e.npy");
    let (code, text) = run(&["export", "--embeddings", "s", "-o", npy.to_str().unwrap()], &store);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("damaged") && text.contains("#7") && text.contains("space s"), "{text}");
    assert!(!npy.exists());
    let csv = dir.path().join("t.csv");
    let (code, text) = run(&["export", "-o", csv.to_str().unwrap()], &store);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("damaged") && text.contains("the records of item #23"), "{text}");
    assert!(!csv.exists());
    // analyze reads the embeddings through the same checks: it stops before computing on damaged vectors.
    let (code, text) = run(&["analyze", "--no-umap", "--device", "cpu"], &store);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("damaged") && (text.contains("item #7") || text.contains("item #23")), "{text}");
}

/// `export --skip-damaged` writes every item but the damaged ones, in id order, and says which it left out.
#[test]
fn skip_damaged_exports_everything_else_and_names_what_it_left_out() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let rows = store_to_damage(&store);
    let data = store.join("data.mdb");
    let row7: Vec<u8> = rows[7 * 16..8 * 16].iter().flat_map(|v| v.to_le_bytes()).collect();
    flip_where(&data, &row7);
    flip_where(&data, b"img-0023.png");
    let scores: Vec<u8> = (10..20).flat_map(|i| (0.5 + i as f32 * 1e-3).to_le_bytes()).collect();
    flip_where(&data, &scores);
    let skip = |args: &[&str]| run(&[&["export", "--skip-damaged"][..], args].concat(), &store);

    // Embeddings: the row of item 7 is left out, every other row is the one written.
    let npy = dir.path().join("e.npy");
    let (code, text) = skip(&["--embeddings", "s", "-o", npy.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("(49 x 16, item-id order)") && text.contains("left out 1 damaged item #7"), "{text}");
    let got = torchlight_store::npy::read(std::fs::File::open(&npy).unwrap()).unwrap();
    assert_eq!(got.shape, [49, 16]);
    let want: Vec<f32> = (0..50).filter(|&id| id != 7).flat_map(|id| rows[id * 16..(id + 1) * 16].to_vec()).collect();
    assert_eq!(got.to_f32(), want);
    let csv = dir.path().join("e.csv");
    let (code, text) = skip(&["--embeddings", "s", "-o", csv.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{text}");
    let ids: Vec<String> =
        std::fs::read_to_string(&csv).unwrap().lines().skip(1).map(|l| l.split(',').next().unwrap().into()).collect();
    assert_eq!(ids.len(), 49);
    assert!(!ids.contains(&"7".to_string()) && ids.contains(&"8".to_string()), "{ids:?}");

    // The table: item 23's record is damaged, so its row goes; the damaged column goes, named with what to do.
    let jsonl = dir.path().join("t.jsonl");
    let (code, text) = skip(&["-o", jsonl.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("(49 rows") && text.contains("left out 1 damaged item #23"), "{text}");
    assert!(text.contains("column s/outlier_score") && text.contains("torchlight analyze"), "{text}");
    let lines: Vec<serde_json::Value> =
        std::fs::read_to_string(&jsonl).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 49);
    let ids: Vec<i64> = lines.iter().map(|l| l["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, (0..50).filter(|&i| i != 23).collect::<Vec<i64>>());
    assert_eq!(lines[23]["source"], "img-0024.png");
    assert!(lines[0].get("outlier_score.s").is_none(), "{}", lines[0]);

    // The Spotlight table also writes embeddings and thumbnails: a damaged thumbnail is refused, or its item
    // left out with the others.
    flip_where(&data, b"thumb-0031");
    let pq = dir.path().join("t.parquet");
    let (code, text) = run(&["export", "--spotlight", "-o", pq.to_str().unwrap()], &store);
    assert_eq!(code, Some(1), "{text}");
    let (code, text) = skip(&["--spotlight", "-o", pq.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("(47 rows") && text.contains("left out 3 damaged items #7, #23, #31"), "{text}");
    let plain = dir.path().join("plain.jsonl");
    let (code, text) = run(&["export", "--skip-damaged", "-o", plain.to_str().unwrap()], &store);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("(49 rows"), "a table without images does not read thumbnails: {text}");
}
