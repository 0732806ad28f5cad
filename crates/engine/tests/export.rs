//! Export round trips: a store analysed from real digits is written as .npy, .csv, .jsonl and .parquet and
//! read back; values equal what the store holds. (tests/fixtures/analysis/check_export.py does the same
//! check from pandas.)

use crate::common;

use std::fs::File;
use std::path::Path;

use common::fixtures::precomputed_space;
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::Field;
use tch::Device;
use torchlight_engine::analysis::{self, AnalysisParams, Hooks};
use torchlight_store::export::{self, TableFormat, Values};
use torchlight_store::npy;
use torchlight_store::{Column, Item, Store, Tag, TagKind, columns};

const N: usize = 300;

fn digits() -> (Vec<f32>, Vec<u32>) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/analysis");
    let x = npy::read(flate2::read::GzDecoder::new(File::open(dir.join("digits_x.npy.gz")).unwrap())).unwrap();
    let y = npy::read(File::open(dir.join("digits_y.npy")).unwrap()).unwrap();
    (x.to_f32()[..N * 64].to_vec(), y.to_f64()[..N].iter().map(|&v| v as u32).collect())
}

/// Two spaces (raw digits as "foundation", a 10-d probability space as "finetuned"), labels and tags, analysed.
fn analysed_store(dir: &Path) -> (Store, Vec<f32>) {
    let (x, y) = digits();
    let store = Store::create_or_open(dir).unwrap();
    let mut w = store.write_txn().unwrap();
    store.put_label_names(&mut w, &(0..10).map(|i| format!("digit, \"{i}\"")).collect::<Vec<_>>()).unwrap();
    let fo = store.put_space(&mut w, precomputed_space("foundation", 64, 0)).unwrap();
    let ft = store.put_space(&mut w, precomputed_space("finetuned", 10, 10)).unwrap();
    for i in 0..N {
        let item = Item { source: format!("digits/{i}.png"), label: Some(y[i]), width: 8, height: 8, hash: i as u64 };
        store.put_item(&mut w, i as u32, &item).unwrap();
        store.put_embedding(&mut w, fo.index, i as u32, &x[i * 64..(i + 1) * 64]).unwrap();
        // A peaked distribution on the label, wrong for every 7th item.
        let target = if i % 7 == 0 { (y[i] + 1) % 10 } else { y[i] };
        let p: Vec<f32> = (0..10).map(|c| if c == target { 0.82 } else { 0.02 }).collect();
        store.put_embedding(&mut w, ft.index, i as u32, &p).unwrap();
        store.put_probs(&mut w, ft.index, i as u32, &p).unwrap();
    }
    let tag = Tag {
        kind: Some(TagKind::Mislabeled),
        new_label: Some(3),
        note: Some("looks like a 3, not \"8\"".into()),
        updated: 1,
    };
    store.put_tag(&mut w, 5, &tag).unwrap();
    store.commit(w).unwrap();
    let params = AnalysisParams { device: Device::Cpu, umap: None, ..AnalysisParams::default() };
    analysis::run(&store, &params, &Hooks::none()).unwrap();
    (store, x)
}

fn store_f32(store: &Store, space: &str, name: &str) -> Vec<f32> {
    match store.column(&store.read_txn().unwrap(), space, name).unwrap() {
        Some(Column::F32 { values, .. }) => values,
        other => panic!("{other:?}"),
    }
}

#[test]
fn embeddings_npy_round_trips_with_a_v1_header() {
    let dir = tempfile::tempdir().unwrap();
    let (store, x) = analysed_store(dir.path());
    let path = dir.path().join("fo.npy");
    assert_eq!(export::export_embeddings(&store, "foundation", &path).unwrap(), (N, 64));
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(&bytes[..8], b"\x93NUMPY\x01\x00");
    let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    assert_eq!((10 + header_len) % 64, 0, "data starts on a 64-byte boundary");
    let header = std::str::from_utf8(&bytes[10..10 + header_len]).unwrap();
    assert!(header.contains("'descr': '<f4'") && header.contains("'shape': (300, 64)"), "{header}");
    let back = npy::read(File::open(&path).unwrap()).unwrap();
    assert_eq!(back.shape, vec![N, 64]);
    assert_eq!(back.to_f32(), x);
    let err = export::export_embeddings(&store, "nope", &path).unwrap_err().to_string();
    assert!(err.contains("foundation") && err.contains("finetuned"), "{err}");
}

#[test]
fn table_has_scores_per_space_labels_and_tags() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = analysed_store(dir.path());
    let t = export::build_table(&store, false).unwrap();
    assert_eq!(t.rows, N);
    for name in [
        "id",
        "source",
        "label",
        "label_name",
        "outlier_score.foundation",
        "knn_mean_distance.foundation",
        "nn_id.foundation",
        "nn_distance.foundation",
        "near_duplicate.foundation",
        "outlier_score.finetuned",
        "pred.finetuned",
        "confidence.finetuned",
        "label_quality.finetuned",
        "label_issue.finetuned",
        "tag",
        "new_label",
        "note",
    ] {
        assert!(t.get(name).is_some(), "missing column {name}");
    }
    assert!(t.get("pred.foundation").is_none(), "no probabilities in the foundation space");
    match t.get("label_issue.finetuned").unwrap() {
        Values::Bool(v) => assert!(v.iter().filter(|b| **b == Some(true)).count() > 10),
        other => panic!("{other:?}"),
    }
    match t.get("tag").unwrap() {
        Values::Str(v) => {
            assert_eq!(v[5].as_deref(), Some("mislabeled"));
            assert_eq!(v.iter().flatten().count(), 1);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn csv_and_jsonl_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = analysed_store(dir.path());
    let t = export::build_table(&store, false).unwrap();
    let scores = store_f32(&store, "foundation", columns::OUTLIER_SCORE);

    let csv = dir.path().join("t.csv");
    export::write_table(&t, &csv, TableFormat::from_path(&csv).unwrap()).unwrap();
    let text = std::fs::read_to_string(&csv).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), N + 1);
    let header: Vec<&str> = lines[0].split(',').collect();
    let col = header.iter().position(|h| *h == "outlier_score.foundation").unwrap();
    // Label names hold a comma and quotes, so rows are parsed with quoting in mind.
    let row0 = split_csv(lines[1]);
    assert_eq!(row0.len(), header.len());
    assert_eq!(row0[3], "digit, \"0\"");
    assert_eq!(row0[col].parse::<f32>().unwrap(), scores[0]);
    let row5 = split_csv(lines[6]);
    let note = header.iter().position(|h| *h == "note").unwrap();
    assert_eq!(row5[note], "looks like a 3, not \"8\"");

    let jsonl = dir.path().join("t.jsonl");
    export::write_table(&t, &jsonl, TableFormat::Jsonl).unwrap();
    let rows: Vec<serde_json::Value> =
        std::fs::read_to_string(&jsonl).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rows.len(), N);
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(r["outlier_score.foundation"].as_f64().unwrap() as f32, scores[i]);
    }
    assert_eq!(rows[5]["new_label"], 3);
    assert!(rows[4]["tag"].is_null());
    assert!(TableFormat::from_path(Path::new("x.xlsx")).is_err());
}

fn split_csv(line: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                out.last_mut().unwrap().push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => out.push(String::new()),
            _ => out.last_mut().unwrap().push(c),
        }
    }
    out
}

#[test]
fn parquet_round_trips_with_spotlight_columns() {
    let dir = tempfile::tempdir().unwrap();
    let (store, x) = analysed_store(dir.path());
    let t = export::build_table(&store, true).unwrap();
    let path = dir.path().join("t.parquet");
    export::write_table(&t, &path, TableFormat::Parquet).unwrap();
    let reader = SerializedFileReader::new(File::open(&path).unwrap()).unwrap();
    assert_eq!(reader.metadata().file_metadata().num_rows(), N as i64);
    let scores = store_f32(&store, "foundation", columns::OUTLIER_SCORE);
    let mut seen = 0;
    for (i, row) in reader.get_row_iter(None).unwrap().enumerate() {
        let row = row.unwrap();
        for (name, field) in row.get_column_iter() {
            match (name.as_str(), field) {
                ("id", Field::Long(v)) => assert_eq!(*v, i as i64),
                ("outlier_score.foundation", Field::Float(v)) | ("outlier_score_found", Field::Float(v)) => {
                    assert_eq!(*v, scores[i]);
                    seen += 1;
                }
                ("embedding_foundation", Field::ListInternal(list)) => {
                    let got: Vec<f32> = list
                        .elements()
                        .iter()
                        .map(|f| match f {
                            Field::Float(v) => *v,
                            other => panic!("{other:?}"),
                        })
                        .collect();
                    assert_eq!(got, x[i * 64..(i + 1) * 64]);
                    seen += 1;
                }
                ("tag", Field::Null) => assert_ne!(i, 5),
                ("tag", Field::Str(s)) => assert_eq!((i, s.as_str()), (5, "mislabeled")),
                ("nn_image_ft", Field::Str(s)) => assert!(s.starts_with("digits/")),
                _ => {}
            }
        }
    }
    assert_eq!(seen, 3 * N, "outlier scores (both names) and embeddings read back for every row");
    let names: Vec<String> = t.columns.iter().map(|(n, _)| n.clone()).collect();
    for name in ["image", "label_str", "embedding_ft", "outlier_score_ft", "nn_image", "nn_image_found"] {
        assert!(names.iter().any(|n| n == name), "spotlight column {name} missing: {names:?}");
    }
}

#[test]
fn export_command_writes_files() {
    let dir = tempfile::tempdir().unwrap();
    let _ = analysed_store(dir.path());
    let bin_path = common::bin::torchlight();
    let bin = bin_path.to_str().expect("a UTF-8 path");
    let out = dir.path().join("scores.parquet");
    let run = std::process::Command::new(bin)
        .args(["export", "--store"])
        .arg(dir.path())
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    assert!(String::from_utf8_lossy(&run.stdout).contains("300 rows"));
    assert!(std::fs::metadata(&out).unwrap().len() > 1000);
    let npy_out = dir.path().join("ft.npy");
    let run = std::process::Command::new(bin)
        .args(["export", "--embeddings", "finetuned", "--store"])
        .arg(dir.path())
        .arg("-o")
        .arg(&npy_out)
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    assert_eq!(npy::read(File::open(&npy_out).unwrap()).unwrap().shape, vec![N, 10]);
    // For tests/fixtures/analysis/check_export.py: keep the files (and a spotlight parquet) when asked.
    if let Ok(keep) = std::env::var("TORCHLIGHT_KEEP_EXPORT") {
        let store = Store::open(dir.path()).unwrap();
        let keep = Path::new(&keep);
        std::fs::create_dir_all(keep).unwrap();
        let t = export::build_table(&store, true).unwrap();
        for (name, format) in [
            ("spotlight.parquet", TableFormat::Parquet),
            ("table.csv", TableFormat::Csv),
            ("table.jsonl", TableFormat::Jsonl),
        ] {
            export::write_table(&t, &keep.join(name), format).unwrap();
        }
        std::fs::copy(&out, keep.join("table.parquet")).unwrap();
        std::fs::copy(&npy_out, keep.join("ft.npy")).unwrap();
    }
}
