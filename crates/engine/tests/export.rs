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
                ("embedding.foundation", Field::ListInternal(list)) => {
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
                _ => {}
            }
        }
    }
    assert_eq!(seen, 3 * N, "outlier scores (both names) and embeddings read back for every row");
    let names: Vec<String> = t.columns.iter().map(|(n, _)| n.clone()).collect();
    for name in [
        "image",
        "label_str",
        "embedding_ft",
        "embedding.foundation",
        "outlier_score_ft",
        "outlier_score_found",
        "nn_id",
        "nn_distance",
        "nn_flag",
        "nn_image",
        "nn_image_found",
    ] {
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
        export::write_table(
            &export::build_table(&store, true).unwrap(),
            &keep.join("spotlight.parquet"),
            TableFormat::Parquet,
        )
        .unwrap();
        let t = export::build_table(&store, false).unwrap();
        for (name, format) in [("table.csv", TableFormat::Csv), ("table.jsonl", TableFormat::Jsonl)] {
            export::write_table(&t, &keep.join(name), format).unwrap();
        }
        std::fs::copy(&out, keep.join("table.parquet")).unwrap();
        std::fs::copy(&npy_out, keep.join("ft.npy")).unwrap();
    }
}

/// The first `n` demo MNIST digits as pixels (784 per row) and 2x2-pooled (196 per row), float32.
fn demo_digits(n: usize) -> (Vec<f32>, Vec<f32>) {
    use std::io::Read;
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/demo/assets/mnist-digits-images-idx3-ubyte.gz");
    let mut bytes = Vec::new();
    flate2::read::GzDecoder::new(File::open(path).unwrap()).read_to_end(&mut bytes).unwrap();
    let px: Vec<f32> = bytes[16..16 + n * 784].iter().map(|&b| f32::from(b) / 255.0).collect();
    let mut pooled = Vec::with_capacity(n * 196);
    for img in px.chunks(784) {
        for (y, x) in (0..14usize).flat_map(|y| (0..14usize).map(move |x| (y, x))) {
            let at = |dy: usize, dx: usize| img[(2 * y + dy) * 28 + 2 * x + dx];
            pooled.push((at(0, 0) + at(0, 1) + at(1, 0) + at(1, 1)) / 4.0);
        }
    }
    (px, pooled)
}

fn write_f32_npy(path: &Path, rows: usize, data: &[f32]) {
    let body: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
    let shape = format!("({rows}, {})", data.len() / rows);
    std::fs::write(path, common::fixtures::npy_bytes("<f4", &shape, false, &body)).unwrap();
}

fn run_ok(args: &[&std::ffi::OsStr]) -> String {
    let out = std::process::Command::new(common::bin::torchlight())
        .args(args)
        .env_remove("TORCHLIGHT_STORE")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The spotlight parquet's top-level columns: name -> what its type is, in words.
fn spotlight_schema(path: &Path) -> Vec<(String, String)> {
    use parquet::basic::{LogicalType, Type as Physical};
    let reader = SerializedFileReader::new(File::open(path).unwrap()).unwrap();
    let root = reader.metadata().file_metadata().schema_descr().root_schema().clone();
    let leaf = |t: &parquet::schema::types::Type| match (t.get_physical_type(), t.get_basic_info().logical_type_ref()) {
        (Physical::BYTE_ARRAY, Some(LogicalType::String)) => "string",
        (Physical::BYTE_ARRAY, None) => "binary",
        (Physical::FLOAT, _) => "float",
        (Physical::INT64, _) => "int64",
        (Physical::BOOLEAN, _) => "bool",
        _ => "other",
    };
    root.get_fields()
        .iter()
        .map(|f| {
            let kind = if f.is_primitive() {
                leaf(f).to_string()
            } else if f.get_basic_info().logical_type_ref() == Some(&parquet::basic::LogicalType::List) {
                format!("list<{}>", leaf(&f.get_fields()[0].get_fields()[0]))
            } else {
                let members: Vec<String> =
                    f.get_fields().iter().map(|m| format!("{}: {}", m.name(), leaf(m))).collect();
                format!("{{{}}}", members.join(", "))
            };
            (f.name().to_string(), kind)
        })
        .collect()
}

/// The image of a `{bytes, path}` cell: decoded bytes, or the file at the path.
fn cell_image(field: &Field) -> image::DynamicImage {
    let Field::Group(cell) = field else { panic!("image cell {field:?}") };
    let member = |name: &str| cell.get_column_iter().find(|(n, _)| n.as_str() == name).map(|(_, f)| f.clone());
    match (member("bytes"), member("path")) {
        (Some(Field::Bytes(b)), Some(Field::Null)) => image::load_from_memory(b.data()).unwrap(),
        (Some(Field::Null), Some(Field::Str(p))) => image::open(p).unwrap(),
        other => panic!("image cell {other:?}"),
    }
}

/// An IDX store (200 demo digits, no file per image) exports the article's dataframe for Renumics Spotlight:
/// the article's column names and types, and every `image` and `nn_image` cell decodable PNG bytes.
#[test]
fn spotlight_export_of_an_idx_store_has_decodable_image_cells() {
    let tmp = tempfile::tempdir().unwrap();
    let (px, pooled) = demo_digits(200);
    let (ft, found) = (tmp.path().join("px.npy"), tmp.path().join("pooled.npy"));
    write_f32_npy(&ft, 200, &px);
    write_f32_npy(&found, 200, &pooled);
    let images = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/demo/assets/mnist-digits-images-idx3-ubyte.gz");
    let store = tmp.path().join("store");
    let (ft_arg, found_arg) = (format!("finetuned={}", ft.display()), format!("foundation={}", found.display()));
    let args: Vec<&std::ffi::OsStr> = vec![
        "ingest".as_ref(),
        images.as_os_str(),
        "--limit".as_ref(),
        "200".as_ref(),
        "--store".as_ref(),
        store.as_os_str(),
        "--embeddings".as_ref(),
        ft_arg.as_ref(),
        "--embeddings".as_ref(),
        found_arg.as_ref(),
    ];
    run_ok(&args);
    let out = tmp.path().join("spotlight.parquet");
    let stdout = run_ok(&[
        "export".as_ref(),
        "--spotlight".as_ref(),
        "--store".as_ref(),
        store.as_os_str(),
        "-o".as_ref(),
        out.as_os_str(),
    ]);
    assert!(stdout.contains("200 rows"), "{stdout}");
    let schema = spotlight_schema(&out);
    let image = "{bytes: binary, path: string}";
    for (name, kind) in [
        ("image", image),
        ("nn_image", image),
        ("label_str", "string"),
        ("embedding_ft", "list<float>"),
        ("embedding.foundation", "list<float>"),
        ("outlier_score_ft", "float"),
        ("outlier_score_found", "float"),
        ("nn_id", "int64"),
        ("nn_distance", "float"),
        ("nn_flag", "bool"),
        ("nn_image_found", image),
    ] {
        assert!(schema.iter().any(|(n, k)| n == name && k == kind), "{name}: {kind} not in {schema:?}");
    }
    let reader = SerializedFileReader::new(File::open(&out).unwrap()).unwrap();
    let mut decoded = 0;
    for row in reader.get_row_iter(None).unwrap() {
        for (name, field) in row.unwrap().get_column_iter() {
            if name.as_str() == "image" || name.starts_with("nn_image") {
                let img = cell_image(field);
                assert_eq!((img.width(), img.height()), (28, 28));
                decoded += 1;
            }
        }
    }
    assert_eq!(decoded, 3 * 200, "image, nn_image and nn_image_found of every row");
    let csv = tmp.path().join("spotlight.csv");
    let run = std::process::Command::new(common::bin::torchlight())
        .args([
            "export".as_ref(),
            "--spotlight".as_ref(),
            "--store".as_ref(),
            store.as_os_str(),
            "-o".as_ref(),
            csv.as_os_str(),
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success() && err.contains("only parquet holds"), "{err}");
}

/// Items whose records are image files export as their paths.
#[test]
fn spotlight_image_cells_of_image_files_are_their_paths() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    for i in 0..6u8 {
        let class = data.join(format!("c{}", i % 2));
        std::fs::create_dir_all(&class).unwrap();
        let img = image::RgbImage::from_fn(12, 10, |x, y| image::Rgb([i * 40, x as u8 * 9, y as u8 * 11]));
        img.save(class.join(format!("{i}.png"))).unwrap();
    }
    let emb = tmp.path().join("emb.npy");
    write_f32_npy(&emb, 6, &(0..18).map(|v| ((v * 7) % 5) as f32 + 0.5).collect::<Vec<_>>());
    let store = tmp.path().join("store");
    let arg = format!("finetuned={}", emb.display());
    run_ok(&[
        "ingest".as_ref(),
        data.as_os_str(),
        "--store".as_ref(),
        store.as_os_str(),
        "--embeddings".as_ref(),
        arg.as_ref(),
    ]);
    let out = tmp.path().join("s.parquet");
    run_ok(&[
        "export".as_ref(),
        "--spotlight".as_ref(),
        "--store".as_ref(),
        store.as_os_str(),
        "-o".as_ref(),
        out.as_os_str(),
    ]);
    let reader = SerializedFileReader::new(File::open(&out).unwrap()).unwrap();
    for row in reader.get_row_iter(None).unwrap() {
        let row = row.unwrap();
        let source = row.get_column_iter().find(|(n, _)| n.as_str() == "source").map(|(_, f)| f.to_string()).unwrap();
        let (_, image) = row.get_column_iter().find(|(n, _)| n.as_str() == "image").unwrap();
        let Field::Group(cell) = image else { panic!("{image:?}") };
        let path = cell.get_column_iter().find(|(n, _)| n.as_str() == "path").map(|(_, f)| f.to_string()).unwrap();
        assert_eq!(path, source, "the item's own file");
        assert!(Path::new(path.trim_matches('"')).is_file());
        assert_eq!(cell_image(image).width(), 12);
    }
}
