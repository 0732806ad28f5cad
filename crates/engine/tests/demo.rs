//! The embedded demo assets are what they claim: the IDX digits parse with the expected classes, the MNIST CNN
//! classifies them, and EfficientNet-Lite0 recognises a real photograph. Expected values come from
//! src/demo/assets/make_assets.py (tests/fixtures/demo/expected.json); nothing here needs Python or a network.

use crate::common;

use std::io::Read;
use std::path::PathBuf;

use tch::{IValue, Kind, Tensor};
use torchlight_engine::demo;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/demo").join(name)
}

fn expected() -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(fixture("expected.json")).unwrap()).unwrap()
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes).read_to_end(&mut out).unwrap();
    out
}

fn be_u32(b: &[u8], i: usize) -> usize {
    u32::from_be_bytes(b[4 * i..4 * i + 4].try_into().unwrap()) as usize
}

/// (images as n x 28 x 28 u8, labels)
fn digits() -> (Vec<u8>, Vec<u8>) {
    let images = gunzip(demo::IMAGES.bytes);
    let labels = gunzip(demo::LABELS.bytes);
    assert_eq!(be_u32(&images, 0), 2051, "images magic");
    assert_eq!(be_u32(&labels, 0), 2049, "labels magic");
    assert_eq!((be_u32(&images, 1), be_u32(&images, 2), be_u32(&images, 3)), (demo::DIGITS, 28, 28));
    assert_eq!(be_u32(&labels, 1), demo::DIGITS);
    assert_eq!(images.len(), 16 + demo::DIGITS * 784);
    assert_eq!(labels.len(), 8 + demo::DIGITS);
    (images[16..].to_vec(), labels[8..].to_vec())
}

struct Preprocess {
    size: [i64; 2],
    mean: Vec<f64>,
    std: Vec<f64>,
    channels: i64,
    rescale: f64,
    class_names: Vec<String>,
}

fn preprocess(asset: demo::Asset) -> Preprocess {
    let v: serde_json::Value = serde_json::from_slice(asset.bytes).unwrap();
    let floats = |k: &str| v[k].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect::<Vec<_>>();
    let size = floats("image_size");
    Preprocess {
        size: [size[0] as i64, size[1] as i64],
        mean: floats("mean"),
        std: floats("std"),
        channels: v["channels"].as_i64().unwrap(),
        rescale: v["rescale_factor"].as_f64().unwrap(),
        class_names: v["class_names"].as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_string()).collect(),
    }
}

/// u8 pixels NCHW -> normalised float, the contract of the preprocessing JSON.
fn normalise(pixels: Tensor, p: &Preprocess) -> Tensor {
    let c = p.channels;
    let mean = Tensor::from_slice(&p.mean).to_kind(Kind::Float).view([1, c, 1, 1]);
    let std = Tensor::from_slice(&p.std).to_kind(Kind::Float).view([1, c, 1, 1]);
    (pixels.to_kind(Kind::Float) * p.rescale - mean) / std
}

fn load(asset: demo::Asset) -> tch::CModule {
    torchlight_engine::runtime::init();
    let mut m = tch::CModule::load_data(&mut std::io::Cursor::new(asset.bytes)).unwrap();
    m.set_eval();
    m
}

/// Runs a model that returns (embedding, logits).
fn forward(m: &tch::CModule, x: Tensor) -> (Tensor, Tensor) {
    let out = tch::no_grad(|| m.forward_is(&[IValue::Tensor(x)])).unwrap();
    match out {
        IValue::Tuple(mut v) if v.len() == 2 => {
            let logits = v.pop().unwrap();
            let emb = v.pop().unwrap();
            match (emb, logits) {
                (IValue::Tensor(e), IValue::Tensor(l)) => (e, l),
                other => panic!("tuple of non-tensors: {other:?}"),
            }
        }
        other => panic!("expected an (embedding, logits) tuple, got {other:?}"),
    }
}

#[test]
fn idx_digits_parse_with_the_expected_classes() {
    let (images, labels) = digits();
    let exp = expected();
    let mut per_class = [0u64; 10];
    for &l in &labels {
        assert!(l < 10, "label {l} out of 0..9");
        per_class[l as usize] += 1;
    }
    let want: Vec<u64> = exp["mnist"]["per_class"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
    assert_eq!(per_class.to_vec(), want);
    // Classes are interleaved, so any prefix holds every class.
    assert_eq!(&labels[..20], &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    // Real digits: dark background, some ink, full 0..255 range.
    let ink = images.iter().filter(|&&p| p > 127).count() as f64 / images.len() as f64;
    assert!((0.05..0.3).contains(&ink), "fraction of ink pixels {ink}");
    assert_eq!(images.iter().max(), Some(&255));
    assert_eq!(images[..28].iter().max(), Some(&0), "first row of the first digit should be background");
}

#[test]
fn materialize_writes_the_files_once() {
    let dir = tempfile::tempdir().unwrap();
    let files = demo::materialize(dir.path()).unwrap();
    assert_eq!(std::fs::read(&files.images).unwrap(), demo::IMAGES.bytes);
    assert_eq!(std::fs::metadata(&files.foundation_model).unwrap().len(), demo::FOUNDATION_MODEL.bytes.len() as u64);
    assert!(files.foundation_model.with_extension("json").exists(), "preprocessing JSON beside the model");
    assert!(files.finetuned_model.with_extension("json").exists(), "preprocessing JSON beside the model");
    // A damaged file is replaced, an intact one is left alone.
    std::fs::write(&files.labels, b"truncated").unwrap();
    let before = std::fs::metadata(&files.images).unwrap().modified().unwrap();
    demo::materialize(dir.path()).unwrap();
    assert_eq!(std::fs::read(&files.labels).unwrap(), demo::LABELS.bytes);
    assert_eq!(std::fs::metadata(&files.images).unwrap().modified().unwrap(), before);
}

#[test]
fn cnn_classifies_the_digits() {
    let (images, labels) = digits();
    let p = preprocess(demo::FINETUNED_PREPROCESS);
    assert_eq!((p.size, p.channels), ([28, 28], 1));
    assert_eq!(p.class_names, (0..10).map(|d| d.to_string()).collect::<Vec<_>>());
    let model = load(demo::FINETUNED_MODEL);
    // Every 10th digit: 1,000 images, all classes.
    let idx: Vec<usize> = (0..demo::DIGITS).step_by(10).collect();
    let mut batch = Vec::with_capacity(idx.len() * 784);
    for &i in &idx {
        batch.extend_from_slice(&images[i * 784..(i + 1) * 784]);
    }
    let x = normalise(Tensor::from_slice(&batch).view([idx.len() as i64, 1, 28, 28]), &p);
    let (emb, logits) = forward(&model, x);
    assert_eq!(emb.size(), [idx.len() as i64, 256]);
    assert_eq!(logits.size(), [idx.len() as i64, 10]);
    let pred: Vec<i64> = logits.argmax(1, false).try_into().unwrap();
    let correct = idx.iter().zip(&pred).filter(|&(&i, &p)| labels[i] as i64 == p).count();
    let acc = correct as f64 / idx.len() as f64;
    assert!(acc >= 0.95, "CNN accuracy {acc} on {} digits", idx.len());

    // Parity with Python on the first digit.
    let exp = expected();
    let want: Vec<f64> = exp["cnn"]["first_logits"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    let got: Vec<f32> = logits.get(0).try_into().unwrap();
    for (g, w) in got.iter().zip(&want) {
        assert!((*g as f64 - w).abs() < 1e-3, "first digit logits {got:?} vs Python {want:?}");
    }
}

fn chelsea(size: u32) -> Tensor {
    let img = image::open(fixture("chelsea-224.jpg")).unwrap().to_rgb8();
    assert_eq!(img.dimensions(), (224, 224));
    let img = if size == 224 {
        img
    } else {
        image::imageops::resize(&img, size, size, image::imageops::FilterType::Triangle)
    };
    Tensor::from_slice(img.as_raw()).view([1, size as i64, size as i64, 3]).permute([0, 3, 1, 2])
}

#[test]
fn efficientnet_recognises_the_cat() {
    let p = preprocess(demo::FOUNDATION_PREPROCESS);
    assert_eq!((p.channels, p.class_names.len()), (3, 1000));
    let model = load(demo::FOUNDATION_MODEL);
    let exp = expected();
    // The preprocessing JSON's size and the model's native 224: the traced model is exact at multiples of 32.
    for size in [p.size[0], 224] {
        let (feats, logits) = forward(&model, normalise(chelsea(size as u32), &p));
        assert_eq!(feats.size(), [1, 1280]);
        assert_eq!(logits.size(), [1, 1000]);
        let top5: Vec<i64> = logits.get(0).topk(5, 0, true, true).1.try_into().unwrap();
        let names: Vec<&str> = top5.iter().map(|&i| p.class_names[i as usize].as_str()).collect();
        // 281 tabby, 282 tiger cat, 285 Egyptian cat.
        assert!([281, 282, 285].contains(&top5[0]), "top-1 at {size} is not a cat: {names:?}");
        let want: Vec<i64> = exp["efficientnet"][format!("chelsea_{size}")]["top5"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_i64().unwrap())
            .collect();
        // JPEG decoders and resizers differ slightly between PIL and the image crate: the top 3 must agree.
        assert_eq!(&top5[..3], &want[..3], "top-5 at {size}: {names:?}, Python had {want:?}");
    }
}

/// A store as ingest + analysis leave it, small enough to know the answer: 8 items, two spaces, label analysis
/// only in the fine-tuned one.
fn analysed_store(dir: &std::path::Path) -> torchlight_store::Store {
    use torchlight_store::{Column, DatasetInfo, Item, ModelSpec, SpaceInfo, Store, columns};
    let store = Store::create_or_open(dir).unwrap();
    let mut w = store.write_txn().unwrap();
    let labels = [0u32, 1, 0, 1, 0, 1, 0, 1];
    for (id, &label) in labels.iter().enumerate() {
        let item = Item { source: format!("d.gz#{id}"), label: Some(label), width: 28, height: 28, hash: id as u64 };
        store.put_item(&mut w, id as u32, &item).unwrap();
    }
    store.put_label_names(&mut w, &["zero".to_string(), "one".to_string()]).unwrap();
    let complete = DatasetInfo { source: "d.gz".into(), format: "idx".into(), fingerprint: "f".into(), complete: true };
    store.put_dataset(&mut w, &complete).unwrap();
    for (name, dim, classes) in [(demo::FOUNDATION_SPACE, 4, 0), (demo::FINETUNED_SPACE, 2, 2)] {
        let model = ModelSpec {
            kind: "torchscript".into(),
            source: format!("{name}.pt"),
            fingerprint: "x".into(),
            pooling: "tuple".into(),
            image_size: 28,
        };
        let space = SpaceInfo { name: name.into(), index: 0, dim, model, num_classes: classes, class_names: vec![] };
        store.put_space(&mut w, space).unwrap();
    }
    let f32s = |v: &[f32]| Column::F32 { width: 1, values: v.to_vec() };
    let u32s = |v: &[u32]| Column::U32 { width: 1, values: v.to_vec() };
    // Foundation: 3 most anomalous are 5, 2, 7. Fine-tuned: 2, 6, 1 (ties broken by id).
    let foundation = [0.9, 0.8, 0.2, 0.7, 0.6, 0.1, 0.95, 0.3];
    let finetuned = [0.9, 0.4, 0.1, 0.8, 0.7, 0.6, 0.4, 0.5];
    store.put_column(&mut w, demo::FOUNDATION_SPACE, columns::OUTLIER_SCORE, &f32s(&foundation)).unwrap();
    store.put_column(&mut w, demo::FINETUNED_SPACE, columns::OUTLIER_SCORE, &f32s(&finetuned)).unwrap();
    store.put_column(&mut w, demo::FINETUNED_SPACE, columns::PRED, &u32s(&[0, 1, 1, 1, 0, 0, 0, 1])).unwrap();
    let quality = [0.9, 0.9, 0.05, 0.9, 0.9, 0.2, 0.9, 0.9];
    store.put_column(&mut w, demo::FINETUNED_SPACE, columns::LABEL_QUALITY, &f32s(&quality)).unwrap();
    store.put_column(&mut w, demo::FINETUNED_SPACE, columns::LABEL_ISSUE, &u32s(&[0, 0, 1, 0, 0, 1, 0, 0])).unwrap();
    store.commit(w).unwrap();
    store
}

#[test]
fn summary_ranks_outliers_and_compares_the_spaces() {
    let dir = tempfile::tempdir().unwrap();
    let store = analysed_store(dir.path());
    let s = demo::summary::summarize(&store, 3, 3).unwrap();
    assert_eq!(s.items, 8);
    let ids = |i: usize| s.spaces[i].outliers.iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(s.spaces[0].name, demo::FOUNDATION_SPACE);
    assert_eq!(ids(0), [5, 2, 7]);
    assert_eq!(ids(1), [2, 1, 6]);
    assert_eq!(s.overlap, Some((3, 1)), "only item 2 is in both top-3s");
    assert_eq!(s.spaces[0].label_issues, None);
    let issues = s.spaces[1].label_issues.as_ref().unwrap();
    assert_eq!(
        issues.iter().map(|r| (r.id, r.label, r.pred)).collect::<Vec<_>>(),
        [(2, Some(0), Some(1)), (5, Some(1), Some(0))]
    );

    let text = demo::summary::render(&s, 3);
    assert!(text.contains("8 items, 2 analysed spaces"), "{text}");
    assert!(text.contains("label issues flagged in finetuned: 2"), "{text}");
    assert!(text.contains("share 1 of their 3 most anomalous"), "{text}");
    // Item 2: given "zero", the CNN says "one", label quality 0.05.
    assert!(text.lines().any(|l| l.split_whitespace().collect::<Vec<_>>() == ["2", "zero", "one", "0.0500"]), "{text}");
}

/// The README's main command, shortened with --limit: ingest through both real models, analysis, the summary;
/// run again it resumes from the finished store instead of redoing the work.
#[test]
fn demo_no_browse_end_to_end_and_resume() {
    let tmp = tempfile::tempdir().unwrap();
    let run = || {
        std::process::Command::new(common::bin::torchlight())
            .args(["demo", "--no-browse", "--limit", "40", "--device", "cpu", "--top", "3", "--store"])
            .arg(tmp.path().join("store"))
            .arg("--assets-dir")
            .arg(tmp.path().join("assets"))
            .env("NO_COLOR", "1")
            .output()
            .unwrap()
    };
    let first = run();
    let (out, err) = (String::from_utf8_lossy(&first.stdout), String::from_utf8_lossy(&first.stderr));
    assert!(first.status.success(), "demo failed:\n{out}\n{err}");
    // Ingest embeds all eight models in one pass; the analysis follows once the series record is written.
    assert!(err.contains("demo: torchlight ingest") && err.contains("neighbours done"), "{err}");
    // Ingest and analysis report on stdout first; the summary comes last.
    let at = out
        .find("40 items, 2 analysed spaces and a series of 6 checkpoints")
        .unwrap_or_else(|| panic!("no summary:\n{out}"));
    let summary = out[at..].to_string();
    let out = &summary;
    for space in [demo::FOUNDATION_SPACE, demo::FINETUNED_SPACE] {
        assert!(out.contains(&format!("\nspace {space} (")), "no outliers of {space}:\n{out}");
    }
    // The CNN's head predicts the digits' labels, so the fine-tuned space gets a label analysis.
    assert!(out.contains(&format!("label issues flagged in {}", demo::FINETUNED_SPACE)), "{out}");
    assert!(out.contains("share") && out.contains("most anomalous items"), "{out}");
    assert!(out.contains("\nseries: steps 0, 25, 50, 100, 200, 400; training loss 2.332 at step 0 -> "), "{out}");
    assert!(out.contains("mean kNN Jaccard step 0 vs 400: "), "{out}");
    assert!(!out.contains("\nspace step-"), "series steps get one line, not a table each:\n{out}");
    assert_demo_store_holds_the_series(&tmp.path().join("store"), 40);

    let second = run();
    let err2 = String::from_utf8_lossy(&second.stderr);
    assert!(second.status.success(), "{err2}");
    assert!(!err2.contains("demo: torchlight ingest") && !err2.contains("demo: torchlight analyze"), "{err2}");
    assert_eq!(String::from_utf8_lossy(&second.stdout), summary, "the rerun printed more than the same summary");
}

/// The embedded series names one embedded checkpoint per step, in step order, and training shows in it: the
/// initialisation guesses, the last step classifies.
#[test]
fn series_checkpoints_learn_in_step_order() {
    let series = demo::series().unwrap();
    let spaces: Vec<&str> = series.steps.iter().map(|s| s.space.as_str()).collect();
    let files: Vec<&str> = demo::CHECKPOINTS.iter().map(|(m, _)| demo::checkpoint_space(*m)).collect();
    assert_eq!(spaces, files);
    assert_eq!(series.steps.iter().map(|s| s.step).collect::<Vec<_>>(), [0, 25, 50, 100, 200, 400]);
    for st in &series.steps {
        assert_eq!(st.space, format!("step-{}", st.step));
    }
    assert!(series.losses.windows(2).all(|w| w[0].step < w[1].step), "loss log out of step order");
    let (first, last) = (series.losses[0], *series.losses.last().unwrap());
    assert_eq!(first.step, 0);
    // Ten classes at random: ln 10 = 2.30 at the start; well below it at the end.
    assert!((first.loss - 10f64.ln()).abs() < 0.2 && last.loss < 0.5, "loss {first:?} -> {last:?}");

    let (images, labels) = digits();
    let idx: Vec<usize> = (0..demo::DIGITS).step_by(10).collect();
    let mut batch = Vec::with_capacity(idx.len() * 784);
    for &i in &idx {
        batch.extend_from_slice(&images[i * 784..(i + 1) * 784]);
    }
    let mut accuracy = Vec::new();
    for (model, pre) in demo::CHECKPOINTS {
        let p = preprocess(pre);
        assert_eq!((p.size, p.channels, p.class_names.len()), ([28, 28], 1, 10));
        let x = normalise(Tensor::from_slice(&batch).view([idx.len() as i64, 1, 28, 28]), &p);
        let (emb, logits) = forward(&load(model), x);
        assert_eq!((emb.size(), logits.size()), (vec![idx.len() as i64, 32], vec![idx.len() as i64, 10]));
        let pred: Vec<i64> = logits.argmax(1, false).try_into().unwrap();
        let correct = idx.iter().zip(&pred).filter(|&(&i, &p)| labels[i] as i64 == p).count();
        accuracy.push(correct as f64 / idx.len() as f64);
    }
    assert!(accuracy[0] < 0.3 && accuracy[5] > 0.9, "accuracy over the steps {accuracy:?}");
    assert!(accuracy[0] < accuracy[2] && accuracy[2] < accuracy[5], "accuracy over the steps {accuracy:?}");
}

/// What `torchlight demo` leaves for the drift view: the series record as embedded, a space per step with every
/// item embedded, and the drift columns of the analysis.
fn assert_demo_store_holds_the_series(dir: &std::path::Path, items: usize) {
    use torchlight_store::{Store, columns};
    let store = Store::open(dir).unwrap();
    let rtxn = store.read_txn().unwrap();
    let series = store.series(&rtxn).unwrap().expect("no series record in the demo store");
    assert_eq!(series, demo::series().unwrap(), "the stored series differs from the embedded one");
    let spaces = store.spaces(&rtxn).unwrap();
    for st in &series.steps {
        let sp = spaces.iter().find(|s| s.name == st.space).unwrap_or_else(|| panic!("no space {}", st.space));
        assert_eq!(sp.dim, 32, "{}", st.space);
        assert_eq!(store.embedding_count(&rtxn, sp.index).unwrap() as usize, items, "{}", st.space);
    }
    let rows = |space: &str, name: &str| store.column(&rtxn, space, name).unwrap().map(|c| c.rows());
    // First against last under "", each step against the one before it under the later step.
    for under in std::iter::once("").chain(series.steps[1..].iter().map(|s| s.space.as_str())) {
        for name in [columns::DRIFT_KNN_JACCARD, columns::DRIFT_MOVEMENT, columns::DRIFT_RANK_CHANGE] {
            assert_eq!(rows(under, name), Some(items), "{name} under '{under}'");
        }
    }
    assert_eq!(rows(&series.steps[0].space, columns::DRIFT_KNN_JACCARD), None, "the first step has no step before");
    // Training reshapes the neighbourhoods: from the random initialisation to the last step they are not all kept.
    let Some(torchlight_store::Column::F32 { values, .. }) =
        store.column(&rtxn, "", columns::DRIFT_KNN_JACCARD).unwrap()
    else {
        panic!("drift_knn_jaccard is not an F32 column")
    };
    let mean = values.iter().sum::<f32>() / values.len() as f32;
    assert!((0.0..0.95).contains(&mean), "mean Jaccard step 0 vs 400: {mean}");
}
