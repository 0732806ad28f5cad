//! The ingest pipeline through the library with small deterministic models (so these tests need no weights):
//! dense ids, skipped records, thumbnails, resume equal to an uninterrupted run, a space added later,
//! refusals before any write, and precomputed embeddings.

use crate::common;

use std::path::Path;
use std::sync::Arc;

use common::fixtures::npy_bytes;
use image::{DynamicImage, RgbImage};
use torchlight_engine::ingest::{self, IngestOptions, SpaceModel};
use torchlight_engine::source::{self, OpenOptions, Source};
use torchlight_store::{ModelSpec, Store};

fn png(w: u32, h: u32, seed: u32) -> Vec<u8> {
    let img = RgbImage::from_fn(w, h, |x, y| image::Rgb([(seed * 37) as u8, (x * 11 + seed) as u8, (y * 5) as u8]));
    let mut out = Vec::new();
    DynamicImage::ImageRgb8(img).write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png).unwrap();
    out
}

/// 3 classes x 9 images of varied sizes, plus a corrupt and an empty file.
fn folder(dir: &Path) {
    for c in 0..3u32 {
        let class = dir.join(format!("class{c}"));
        std::fs::create_dir_all(&class).unwrap();
        for i in 0..9u32 {
            std::fs::write(class.join(format!("{i:02}.png")), png(20 + i * 15, 12 + c * 40, c * 9 + i)).unwrap();
        }
    }
    std::fs::write(dir.join("class1/03b.png"), b"\x89PNG garbage").unwrap();
    std::fs::write(dir.join("class2/00a.jpg"), b"").unwrap();
}

/// The test models' preprocessing: `input`, appended to the batch.
fn prepare(scale: f32) -> ingest::PrepareFn {
    Arc::new(move |img: &DynamicImage, out: &mut Vec<f32>| out.extend(input(img, scale)))
}

/// Input = per-channel means and the image size, at `scale`: cheap and deterministic.
fn input(img: &DynamicImage, scale: f32) -> Vec<f32> {
    let [r, g, b] = common::channel_means(img);
    vec![r * scale, g * scale, b * scale, img.width() as f32, img.height() as f32]
}

/// A "model" of dimension 4 (and a 2-class head when `head`): a fixed linear map of the input.
fn model(name: &str, weights: &str, head: bool) -> SpaceModel {
    let spec = ModelSpec {
        kind: "test".into(),
        source: format!("test:{weights}"),
        fingerprint: weights.into(),
        pooling: "cls".into(),
        image_size: 0,
    };
    let classes = if head { 2 } else { 0 };
    let w: f32 = weights.len() as f32;
    SpaceModel {
        space: ingest::space_info(name, spec, 4, classes, if head { vec!["a".into(), "b".into()] } else { vec![] }),
        prepare_key: format!("means{w}"),
        prepare: prepare(w),
        embed: Box::new(move |batch: &mut [f32], n: usize| {
            assert_eq!(batch.len(), n * 5);
            let mut emb = Vec::new();
            let mut probs = Vec::new();
            for x in batch.chunks(5) {
                emb.extend_from_slice(&[x[0] + x[3], x[1] - x[4], x[2] * 0.5, x[0] * x[1] / 255.0]);
                probs.extend_from_slice(&head_probs(x));
            }
            Ok((emb, head.then_some(probs)))
        }),
    }
}

/// The test head's two probabilities for one prepared input.
fn head_probs(x: &[f32]) -> [f32; 2] {
    let p = 1.0 / (1.0 + (-(x[0] - x[1]) / 50.0).exp());
    [p, 1.0 - p]
}

fn opts(spec: &str, limit: Option<usize>, batch: usize) -> IngestOptions {
    IngestOptions {
        source_spec: spec.into(),
        limit,
        batch_size: batch,
        threads: 2,
        progress: false,
        stop: || false,
        series: None,
    }
}

fn open(dir: &Path) -> Box<dyn Source> {
    source::open(dir.to_str().unwrap(), &OpenOptions::default()).unwrap()
}

/// Everything a store holds that ingest writes, for equality between runs.
fn dump(store: &Store) -> String {
    let rtxn = store.read_txn().unwrap();
    let mut out = format!("{:?}\n{:?}\n", store.items(&rtxn).unwrap(), store.skipped(&rtxn).unwrap());
    out += &format!("{:?}\n{:?}\n", store.label_names(&rtxn).unwrap(), store.dataset(&rtxn).unwrap());
    let n = store.item_count(&rtxn).unwrap();
    for id in 0..n {
        out +=
            &format!("{:?}", store.thumbnail(&rtxn, id).unwrap().map(|t| torchlight_engine::source::content_hash(&t)));
    }
    let mut spaces = store.spaces(&rtxn).unwrap();
    spaces.sort_by(|a, b| a.name.cmp(&b.name));
    for s in spaces {
        out += &format!("\n{} {} {:?}\n", s.name, s.dim, s.model);
        for id in 0..n {
            let e = store.embedding(&rtxn, s.index, id).unwrap().expect("every item embedded");
            out += &format!(
                "{:?}{:?}",
                e.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                store.probs(&rtxn, s.index, id).unwrap()
            );
        }
    }
    out
}

#[test]
fn dense_ids_skips_thumbnails_embeddings_and_probs() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    folder(&data);
    let src = open(&data);
    let store = Store::create_or_open(&tmp.path().join("store")).unwrap();
    let models = vec![model("foundation", "aa", false), model("finetuned", "bbb", true)];
    let s = ingest::run(&store, src.as_ref(), models, &opts("data", None, 4)).unwrap();
    assert_eq!(s.items, 27);
    assert_eq!(s.new_items, 27);
    assert_eq!(s.records, 29);
    assert_eq!(s.skipped.len(), 2);
    assert!(s.complete);
    let text = ingest::format_summary(&s);
    assert!(text.contains("skipped 2 records"), "{text}");
    // Every stage that ran is timed: 29 records decoded, 27 thumbnailed and preprocessed, 2 models, writes.
    let st = &s.stages;
    let ran = [st.decode, st.preprocess, st.thumbnails, st.model, st.writes];
    assert!(ran.iter().all(|t| !t.is_zero()), "{st:?}");
    assert!(text.contains("stages (thread time): decode"), "{text}");

    let rtxn = store.read_txn().unwrap();
    let items = store.items(&rtxn).unwrap();
    assert_eq!(items.len(), 27);
    // Sorted order: class1 has 03b.png (corrupt) after 03.png; class2 starts with 00a.jpg (empty).
    assert!(items[12].source.ends_with("class1/03.png") && items[13].source.ends_with("class1/04.png"));
    assert!(items[18].source.ends_with("class2/00.png"));
    assert_eq!(items.iter().map(|i| i.label.unwrap()).collect::<Vec<_>>(), [[0; 9], [1; 9], [2; 9]].concat());
    assert_eq!((items[10].width, items[10].height), (35, 52));
    let skipped = store.skipped(&rtxn).unwrap();
    assert!(skipped[0].source.ends_with("class1/03b.png") && skipped[0].reason.contains("not an image"), "{skipped:?}");
    assert!(skipped[1].source.ends_with("class2/00a.jpg") && skipped[1].reason.contains("empty"), "{skipped:?}");
    assert_eq!(store.label_names(&rtxn).unwrap(), vec!["class0", "class1", "class2"]);

    // The thumbnail is a PNG with the longest side at most 96 and the aspect kept.
    for id in [0u32, 8, 26] {
        let t = image::load_from_memory(&store.thumbnail(&rtxn, id).unwrap().unwrap()).unwrap();
        let it = &items[id as usize];
        assert!(t.width().max(t.height()) <= 96);
        if it.width.max(it.height) <= 96 {
            assert_eq!((t.width(), t.height()), (it.width, it.height));
        } else {
            let scale = 96.0 / it.width.max(it.height) as f32;
            assert_eq!(t.width().max(t.height()), 96);
            assert!(
                (t.width() as f32 - it.width as f32 * scale).abs() <= 1.0,
                "{}x{} of {}x{}",
                t.width(),
                t.height(),
                it.width,
                it.height
            );
            assert!(
                (t.height() as f32 - it.height as f32 * scale).abs() <= 1.0,
                "{}x{} of {}x{}",
                t.width(),
                t.height(),
                it.width,
                it.height
            );
        }
    }
    // The item hash is the content hash of the file.
    let bytes = std::fs::read(&items[5].source).unwrap();
    assert_eq!(items[5].hash, torchlight_engine::source::content_hash(&bytes));

    let spaces = store.spaces(&rtxn).unwrap();
    assert_eq!(spaces.len(), 2);
    let ft = store.space(&rtxn, "finetuned").unwrap().unwrap();
    assert_eq!((ft.dim, ft.num_classes), (4, 2));
    // Embedding of item 5 = the model on its own image.
    let img = image::load_from_memory(&bytes).unwrap();
    let x = input(&img, 3.0);
    let e = store.embedding(&rtxn, ft.index, 5).unwrap().unwrap();
    assert_eq!(e, vec![x[0] + x[3], x[1] - x[4], x[2] * 0.5, x[0] * x[1] / 255.0]);
    assert_eq!(store.embedding_count(&rtxn, ft.index).unwrap(), 27);
    let p = store.probs(&rtxn, ft.index, 5).unwrap().unwrap();
    assert_eq!(p, head_probs(&x), "the stored probabilities are the head's for item 5");
    let fd = store.space(&rtxn, "foundation").unwrap().unwrap();
    assert!(store.probs(&rtxn, fd.index, 5).unwrap().is_none(), "no head, no probabilities");
    assert_eq!(store.cursor(&rtxn, "records").unwrap(), 29);
    assert_eq!(store.cursor(&rtxn, "space/finetuned/items").unwrap(), 27);
}

#[test]
fn runs_cut_short_then_resumed_equal_one_uninterrupted_run() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    folder(&data);
    let src = open(&data);
    let models = || vec![model("foundation", "aa", false), model("finetuned", "bbb", true)];

    let full = Store::create_or_open(&tmp.path().join("full")).unwrap();
    ingest::run(&full, src.as_ref(), models(), &opts("data", None, 4)).unwrap();

    // Stopped after 6, 13 (mid-batch) and 14 records, then run to the end.
    let parts = Store::create_or_open(&tmp.path().join("parts")).unwrap();
    for limit in [6, 13, 14] {
        let s = ingest::run(&parts, src.as_ref(), models(), &opts("data", Some(limit), 4)).unwrap();
        assert!(!s.complete, "only {limit} of 29 records");
    }
    let s = ingest::run(&parts, src.as_ref(), models(), &opts("data", None, 4)).unwrap();
    assert_eq!(s.records, 29 - 14);
    assert!(s.complete);
    assert_eq!(dump(&parts), dump(&full));
    // A rerun of a finished ingest changes nothing.
    let again = ingest::run(&parts, src.as_ref(), models(), &opts("data", None, 4)).unwrap();
    assert_eq!((again.records, again.new_items), (0, 0));
    assert_eq!(dump(&parts), dump(&full));
}

/// A model may overwrite its batch (a TorchScript module can work in place on its input, and on the CPU the
/// batch is the input tensor's memory): a model sharing its preprocessing with a later one gets a copy, so the
/// store equals one made by models that leave their batch alone, with and without a space catching up.
#[test]
fn a_model_overwriting_its_batch_leaves_the_next_models_input_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    folder(&data);
    let src = open(&data);
    let vandal = |mut m: SpaceModel| {
        let mut embed = m.embed;
        m.embed = Box::new(move |batch: &mut [f32], n: usize| {
            let out = embed(batch, n);
            batch.fill(f32::NAN);
            out
        });
        m
    };
    // "bbb" and "ccc" share a preprocessing key (the weights' length).
    let models = |overwrite: bool| {
        let ms = vec![model("foundation", "aa", false), model("finetuned", "bbb", true), model("other", "ccc", false)];
        if overwrite { ms.into_iter().map(vandal).collect() } else { ms }
    };
    let clean = Store::create_or_open(&tmp.path().join("clean")).unwrap();
    ingest::run(&clean, src.as_ref(), models(false), &opts("data", None, 4)).unwrap();
    let overwritten = Store::create_or_open(&tmp.path().join("overwritten")).unwrap();
    ingest::run(&overwritten, src.as_ref(), models(true), &opts("data", None, 4)).unwrap();
    assert_eq!(dump(&overwritten), dump(&clean));
    // "other" alone first, then all three: the others catch up on records "other" has (a part of each batch).
    let later = Store::create_or_open(&tmp.path().join("later")).unwrap();
    let first = models(true).into_iter().filter(|m| m.space.name == "other").collect();
    ingest::run(&later, src.as_ref(), first, &opts("data", Some(10), 4)).unwrap();
    ingest::run(&later, src.as_ref(), models(true), &opts("data", None, 4)).unwrap();
    assert_eq!(dump(&later), dump(&clean));
}

#[test]
fn a_space_added_later_catches_up_to_the_same_store() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    folder(&data);
    let src = open(&data);
    let both = Store::create_or_open(&tmp.path().join("both")).unwrap();
    ingest::run(
        &both,
        src.as_ref(),
        vec![model("foundation", "aa", false), model("finetuned", "bbb", true)],
        &opts("d", None, 4),
    )
    .unwrap();

    let later = Store::create_or_open(&tmp.path().join("later")).unwrap();
    ingest::run(&later, src.as_ref(), vec![model("foundation", "aa", false)], &opts("d", Some(10), 4)).unwrap();
    // The new space starts at record 0 while foundation resumes at 10: two passes over different starts.
    ingest::run(
        &later,
        src.as_ref(),
        vec![model("foundation", "aa", false), model("finetuned", "bbb", true)],
        &opts("d", Some(20), 4),
    )
    .unwrap();
    let rtxn = later.read_txn().unwrap();
    assert_eq!(later.cursor(&rtxn, "space/finetuned").unwrap(), 20);
    drop(rtxn);
    ingest::run(
        &later,
        src.as_ref(),
        vec![model("foundation", "aa", false), model("finetuned", "bbb", true)],
        &opts("d", None, 4),
    )
    .unwrap();
    assert_eq!(dump(&later), dump(&both));
}

#[test]
fn another_dataset_or_model_is_refused_before_writing() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    folder(&a);
    folder(&b);
    std::fs::write(b.join("class0/extra.png"), png(9, 9, 1)).unwrap();
    let store = Store::create_or_open(&tmp.path().join("store")).unwrap();
    ingest::run(&store, open(&a).as_ref(), vec![model("foundation", "aa", false)], &opts("a", Some(8), 4)).unwrap();
    let before = dump(&store);

    let err = ingest::run(&store, open(&b).as_ref(), vec![model("foundation", "aa", false)], &opts("b", None, 4))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("holds another dataset") && err.contains("another --store"), "{err}");
    assert_eq!(dump(&store), before);

    let err = ingest::run(&store, open(&a).as_ref(), vec![model("foundation", "zz", false)], &opts("a", None, 4))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("space foundation") && err.contains("weights aa") && err.contains("weights zz"), "{err}");
    assert_eq!(dump(&store), before);

    // An unfinished space must be given again.
    let err = ingest::run(&store, open(&a).as_ref(), vec![], &opts("a", None, 4)).err().unwrap().to_string();
    assert!(err.contains("unfinished"), "{err}");
    let err = ingest::run(
        &store,
        open(&a).as_ref(),
        vec![model("x", "aa", false), model("x", "aa", false)],
        &opts("a", None, 4),
    )
    .err()
    .unwrap()
    .to_string();
    assert!(err.contains("given twice"), "{err}");
    assert_eq!(dump(&store), before);
}

fn write_npy(path: &Path, rows: usize, cols: usize, f64s: bool) -> Vec<f32> {
    let vals: Vec<f32> = (0..rows * cols).map(|i| i as f32 * 0.25 - 3.0).collect();
    let body: Vec<u8> = if f64s {
        vals.iter().flat_map(|v| f64::from(*v).to_le_bytes()).collect()
    } else {
        vals.iter().flat_map(|v| v.to_le_bytes()).collect()
    };
    let descr = if f64s { "<f8" } else { "<f4" };
    std::fs::write(path, npy_bytes(descr, &format!("({rows}, {cols})"), false, &body)).unwrap();
    vals
}

#[test]
fn precomputed_embeddings_per_item_or_per_record() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    folder(&data);
    let src = open(&data);
    let store = Store::create_or_open(&tmp.path().join("store")).unwrap();
    // No model: items and thumbnails only.
    let s = ingest::run(&store, src.as_ref(), vec![], &opts("d", None, 8)).unwrap();
    assert_eq!((s.items, s.skipped.len()), (27, 2));

    // One row per item.
    let per_item = tmp.path().join("items.npy");
    let vals = write_npy(&per_item, 27, 3, false);
    let sp = ingest::import_embeddings(&store, src.as_ref(), "mine", &per_item, None, || false).unwrap();
    assert_eq!((sp.dim, sp.model.kind.as_str()), (3, "precomputed"));
    let rtxn = store.read_txn().unwrap();
    assert_eq!(store.embedding(&rtxn, sp.index, 26).unwrap().unwrap(), &vals[78..81]);
    drop(rtxn);

    // One row per record (29, float64): the rows of the two skipped records are dropped.
    let per_record = tmp.path().join("records.npy");
    let vals = write_npy(&per_record, 29, 2, true);
    let sp = ingest::import_embeddings(&store, src.as_ref(), "rec", &per_record, None, || false).unwrap();
    let rtxn = store.read_txn().unwrap();
    // Record 12 is class1/03.png = item 12; record 13 is the corrupt 03b.png; item 13 is record 14.
    assert_eq!(store.embedding(&rtxn, sp.index, 12).unwrap().unwrap(), &vals[24..26]);
    assert_eq!(store.embedding(&rtxn, sp.index, 13).unwrap().unwrap(), &vals[28..30]);
    // Record 19 is class2/00.png = item 18; record 20 is the empty 00a.jpg; item 19 is record 21.
    assert_eq!(store.embedding(&rtxn, sp.index, 18).unwrap().unwrap(), &vals[38..40]);
    assert_eq!(store.embedding(&rtxn, sp.index, 19).unwrap().unwrap(), &vals[42..44]);
    assert_eq!(store.embedding_count(&rtxn, sp.index).unwrap(), 27);
    drop(rtxn);

    let wrong = tmp.path().join("wrong.npy");
    write_npy(&wrong, 10, 3, false);
    let err = ingest::import_embeddings(&store, src.as_ref(), "bad", &wrong, None, || false).err().unwrap().to_string();
    assert!(err.contains("10 rows") && err.contains("27 items") && err.contains("29 source records"), "{err}");
    let rtxn = store.read_txn().unwrap();
    assert!(store.space(&rtxn, "bad").unwrap().is_none(), "nothing written");
    drop(rtxn);
    // A truncated file (streamed, not loaded) is refused from its length before anything is written.
    let short = tmp.path().join("short.npy");
    write_npy(&short, 27, 3, false);
    let bytes = std::fs::read(&short).unwrap();
    std::fs::write(&short, &bytes[..bytes.len() - 4]).unwrap();
    let err =
        ingest::import_embeddings(&store, src.as_ref(), "short", &short, None, || false).err().unwrap().to_string();
    assert!(err.contains("short.npy") && err.contains("needs 324"), "{err}");
    assert!(store.space(&store.read_txn().unwrap(), "short").unwrap().is_none(), "nothing written");
    // A FIFO named like an embeddings file is refused without blocking on it.
    let fifo = tmp.path().join("fifo.npy");
    let c_path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o644) }, 0);
    let err = ingest::import_embeddings(&store, src.as_ref(), "fifo", &fifo, None, || false).err().unwrap().to_string();
    assert!(err.contains("fifo.npy") && err.contains("FIFO"), "{err}");
    // Another file under an existing name is refused.
    let err =
        ingest::import_embeddings(&store, src.as_ref(), "mine", &per_record, None, || false).err().unwrap().to_string();
    assert!(err.contains("space mine"), "{err}");
}

/// An IDX dataset of `n` 28x28 images with labels, written like MNIST.
fn idx_dataset(dir: &Path, n: usize) {
    std::fs::create_dir_all(dir).unwrap();
    let mut images = vec![0u8, 0, 8, 3];
    for d in [n, 28, 28] {
        images.extend_from_slice(&(d as u32).to_be_bytes());
    }
    let mut state = 12345u32;
    for _ in 0..n * 28 * 28 {
        state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
        images.push((state >> 24) as u8);
    }
    let mut labels = vec![0u8, 0, 8, 1];
    labels.extend_from_slice(&(n as u32).to_be_bytes());
    labels.extend((0..n).map(|i| (i % 10) as u8));
    std::fs::write(dir.join("train-images-idx3-ubyte"), images).unwrap();
    std::fs::write(dir.join("train-labels-idx1-ubyte"), labels).unwrap();
}

fn cli(args: &[&str]) -> std::process::Command {
    let mut cmd = std::process::Command::new(common::bin::torchlight());
    cmd.args(args).env_remove("TORCHLIGHT_STORE");
    cmd
}

/// Analysis columns of every space, bit for bit, for equality between runs.
fn dump_columns(store: &Store) -> String {
    let rtxn = store.read_txn().unwrap();
    let mut out = String::new();
    for s in store.spaces(&rtxn).unwrap() {
        let names = store.column_names(&rtxn, &s.name).unwrap();
        assert!(names.iter().any(|c| c == torchlight_store::columns::OUTLIER_SCORE), "{}: {names:?}", s.name);
        for c in names {
            let bits = match store.column(&rtxn, &s.name, &c).unwrap().unwrap() {
                torchlight_store::Column::F32 { values, .. } => values.iter().map(|v| v.to_bits()).collect(),
                torchlight_store::Column::U32 { values, .. } => values,
            };
            out +=
                &format!("{}/{c} {:x}\n", s.name, torchlight_engine::source::content_hash(bytemuck::cast_slice(&bits)));
        }
    }
    out
}

/// "space NAME: N embedded" of an ingest summary.
fn embedded(summary: &str, space: &str) -> u64 {
    let prefix = format!("space {space}: ");
    let line = summary.lines().find(|l| l.starts_with(&prefix) && l.contains(" embedded")).expect(summary);
    line[prefix.len()..].split_whitespace().next().unwrap().parse().unwrap()
}

/// kill -9, SIGINT and SIGTERM of an ingest with two real models (the demo's MNIST CNN, TorchScript, and a tiny
/// ViT with a head, different preprocessing) on real digits, in the middle of the embedding: SIGINT and SIGTERM
/// stop at the next commit with one line saying what was kept and exit 130 / 143; after each, the rerun of the
/// same command embeds exactly the items not yet committed, and the store (items, thumbnails, embeddings bit for
/// bit, probabilities, analysis columns) equals that of an uninterrupted run.
#[test]
fn stopped_mid_run_by_kill_9_sigint_or_sigterm_then_rerun_equals_an_uninterrupted_run() {
    let tmp = tempfile::tempdir().unwrap();
    let assets = demo_assets();
    let images = assets.join("mnist-digits-images-idx3-ubyte.gz");
    let cnn = assets.join("mnist-cnn.pt");
    let vit = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/models/hf/vit_cls_tanh");
    let n = 1000u64;
    let args = |store: &Path| -> Vec<String> {
        let mut a: Vec<String> = vec!["ingest".into(), images.to_str().unwrap().into(), "--store".into()];
        a.push(store.to_str().unwrap().into());
        for (k, v) in [("--foundation", cnn.to_str().unwrap()), ("--finetuned", vit.to_str().unwrap())] {
            a.extend([k.to_string(), v.to_string()]);
        }
        let limit = n.to_string();
        for (k, v) in [("--limit", limit.as_str()), ("--batch-size", "32"), ("--device", "cpu"), ("--threads", "2")] {
            a.extend([k.to_string(), v.to_string()]);
        }
        a
    };
    let run = |store: &Path| {
        let out = cli(&args(store).iter().map(String::as_str).collect::<Vec<_>>()).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let full_dir = tmp.path().join("full");
    let out = run(&full_dir);
    assert_eq!((embedded(&out, "foundation"), embedded(&out, "finetuned")), (n, n), "{out}");
    let full = Store::open(&full_dir).unwrap();

    for signal in [libc::SIGKILL, libc::SIGINT, libc::SIGTERM] {
        let dir = tmp.path().join(format!("stopped-{signal}"));
        let mut child = cli(&args(&dir).iter().map(String::as_str).collect::<Vec<_>>())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Wait for some committed chunks, then the signal in the middle of the embedding.
        let started = std::time::Instant::now();
        while !dir.join("data.mdb").exists() {
            assert!(started.elapsed().as_secs() < 60, "the ingest never created its store");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let store = Store::open(&dir).unwrap();
        while store.cursor(&store.read_txn().unwrap(), "records").unwrap() < 192 {
            assert!(child.try_wait().unwrap().is_none(), "the ingest ended before it could be stopped");
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        // SAFETY: a plain syscall on our own child's pid.
        assert_eq!(unsafe { libc::kill(child.id() as i32, signal) }, 0);
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        // What the stopped run committed: items, both spaces' embeddings and all cursors went in together.
        let at_stop = {
            let rtxn = store.read_txn().unwrap();
            let records = store.cursor(&rtxn, "records").unwrap();
            assert!(records < n, "stopped after the end ({records}): make the dataset bigger");
            assert_eq!(u64::from(store.item_count(&rtxn).unwrap()), records, "items and records cursor together");
            for s in store.spaces(&rtxn).unwrap() {
                assert_eq!(store.cursor(&rtxn, &format!("space/{}", s.name)).unwrap(), records, "{}", s.name);
                assert_eq!(store.cursor(&rtxn, &format!("space/{}/items", s.name)).unwrap(), records, "{}", s.name);
                assert_eq!(u64::from(store.embedding_count(&rtxn, s.index).unwrap()), records, "{}", s.name);
            }
            records
        };
        if signal == libc::SIGKILL {
            assert_eq!(std::os::unix::process::ExitStatusExt::signal(&out.status), Some(libc::SIGKILL));
        } else {
            assert_eq!(out.status.code(), Some(128 + signal), "{stderr}");
            let last = stderr.trim_end().lines().last().unwrap_or_default();
            let want = format!(
                "interrupted: {at_stop} items committed in {}; rerun the same command to resume",
                dir.display()
            );
            assert_eq!(last, want, "{stderr}");
            assert!(!stderr.contains("panicked"), "{stderr}");
        }

        // The rerun embeds only what was missing: nothing committed before the stop goes through a model again.
        let out = run(&dir);
        assert!(
            out.contains(&format!("ingested {} new items ({n} in the store)", n - at_stop)),
            "signal {signal} at {at_stop}: {out}"
        );
        for space in ["foundation", "finetuned"] {
            assert_eq!(embedded(&out, space), n - at_stop, "{space}, signal {signal} at {at_stop}: {out}");
        }
        assert_eq!(dump(&store), dump(&full), "signal {signal}");
        assert_eq!(dump_columns(&store), dump_columns(&full), "signal {signal}");
    }
}

#[test]
fn a_second_ingest_into_a_busy_store_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("idx");
    idx_dataset(&data, 10);
    let store_dir = tmp.path().join("store");
    let store = Store::create_or_open(&store_dir).unwrap();
    let _lock = store.lock_writer("ingest").unwrap();
    let out = cli(&["ingest", data.to_str().unwrap(), "--store", store_dir.to_str().unwrap(), "--no-analyze"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("busy") && err.contains("torchlight ingest"), "{err}");
    // The lock names the process holding it: this test's own.
    assert!(err.contains(&format!("(pid {})", std::process::id())), "{err}");
    assert_eq!(store.item_count(&store.read_txn().unwrap()).unwrap(), 0);
}

#[test]
fn cli_imports_npy_embeddings_then_runs_the_analysis() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("idx");
    idx_dataset(&data, 60);
    let npy = tmp.path().join("emb.npy");
    let vals = write_npy(&npy, 60, 8, true);
    let store_dir = tmp.path().join("store");
    let arg = format!("pre={}", npy.display());
    let out = cli(&["ingest", data.to_str().unwrap(), "--store", store_dir.to_str().unwrap(), "--embeddings", &arg])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("space pre: 60 x 8 imported"), "{stdout}");
    let store = Store::open(&store_dir).unwrap();
    let rtxn = store.read_txn().unwrap();
    let sp = store.space(&rtxn, "pre").unwrap().unwrap();
    assert_eq!(store.embedding(&rtxn, sp.index, 59).unwrap().unwrap(), &vals[59 * 8..]);
    let scores = store.column(&rtxn, "pre", torchlight_store::columns::OUTLIER_SCORE).unwrap();
    assert_eq!(scores.expect("ingest ran the analysis").rows(), 60);
    assert_eq!(store.label_names(&rtxn).unwrap().len(), 10);

    // Rows that match neither the items nor the records: refused with the counts.
    let bad = tmp.path().join("bad.npy");
    write_npy(&bad, 59, 8, false);
    let arg = format!("bad={}", bad.display());
    let out = cli(&[
        "ingest",
        data.to_str().unwrap(),
        "--store",
        store_dir.to_str().unwrap(),
        "--embeddings",
        &arg,
        "--no-analyze",
    ])
    .output()
    .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("59 rows") && err.contains("60 items"), "{err}");
}

/// `--embeddings` rows holding NaN or inf are refused before anything is written, naming the file and the
/// rows (the first few and how many), from a `.npy` and from a parquet list column alike; so is a file with
/// more rows than the dataset has records.
#[test]
fn embeddings_with_nan_inf_or_too_many_rows_are_refused_before_writing() {
    use torchlight_store::export::{self, Table, TableFormat, Values};
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("idx");
    idx_dataset(&data, 60);
    let store = tmp.path().join("store");
    let ingest = |file: &Path| {
        let arg = format!("e={}", file.display());
        let out = cli(&["ingest", data.to_str().unwrap(), "--store", store.to_str().unwrap(), "--embeddings", &arg])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stdout));
        assert!(!store.exists(), "a store was written for {}", file.display());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let with_bad = |bad: &[(usize, f32)]| {
        let mut vals: Vec<f32> = (0..60 * 4).map(|i| i as f32 * 0.5).collect();
        for &(row, v) in bad {
            vals[row * 4 + 2] = v;
        }
        vals
    };
    let npy = tmp.path().join("e.npy");
    let vals = with_bad(&[(3, f32::NAN), (10, f32::INFINITY), (41, f32::NEG_INFINITY)]);
    let body: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(&npy, npy_bytes("<f4", "(60, 4)", false, &body)).unwrap();
    let err = ingest(&npy);
    assert!(err.contains(&npy.display().to_string()), "{err}");
    assert!(err.contains("3 of its 60 rows hold NaN or infinite values: rows 3, 10, 41 (counted from 0)"), "{err}");

    // Many: the first eight and how many more.
    let bad: Vec<(usize, f32)> = (20..32).map(|r| (r, f32::NAN)).collect();
    let body: Vec<u8> = with_bad(&bad).iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(&npy, npy_bytes("<f4", "(60, 4)", false, &body)).unwrap();
    let err = ingest(&npy);
    assert!(
        err.contains("12 of its 60 rows") && err.contains("rows 20, 21, 22, 23, 24, 25, 26, 27 and 4 more"),
        "{err}"
    );

    let body: Vec<u8> = (0..61 * 4).flat_map(|i| (i as f32).to_le_bytes()).collect();
    std::fs::write(&npy, npy_bytes("<f4", "(61, 4)", false, &body)).unwrap();
    let err = ingest(&npy);
    assert!(err.contains("61 rows, but the source has 60 records"), "{err}");

    let pq = tmp.path().join("e.parquet");
    let vals = with_bad(&[(59, f32::NAN)]);
    let rows = vals.chunks(4).map(<[f32]>::to_vec).collect();
    let table = Table { rows: 60, columns: vec![("embedding".into(), Values::FloatList(rows))] };
    export::write_table(&table, &pq, TableFormat::Parquet).unwrap();
    let err = ingest(&pq);
    assert!(
        err.contains(&pq.display().to_string()) && err.contains("1 of its 60 rows") && err.contains("row 59 "),
        "{err}"
    );
}

/// The demo's real assets: 10,000 MNIST digits (IDX) and a pretrained MNIST CNN (TorchScript + JSON).
fn demo_assets() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src/demo/assets")
}

#[test]
fn real_mnist_digits_through_the_pretrained_cnn() {
    let tmp = tempfile::tempdir().unwrap();
    let assets = demo_assets();
    let images = assets.join("mnist-digits-images-idx3-ubyte.gz");
    let model = format!("cnn={}", assets.join("mnist-cnn.pt").display());
    let store_dir = tmp.path().join("store");
    let out = cli(&[
        "ingest",
        images.to_str().unwrap(),
        "--store",
        store_dir.to_str().unwrap(),
        "--model",
        &model,
        "--limit",
        "600",
        "--device",
        "cpu",
        "--no-analyze",
    ])
    .output()
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("space cnn: 600 embedded"), "{stdout}");
    let store = Store::open(&store_dir).unwrap();
    let rtxn = store.read_txn().unwrap();
    assert_eq!(store.item_count(&rtxn).unwrap(), 600);
    assert_eq!(store.label_names(&rtxn).unwrap(), (0..10).map(|d| d.to_string()).collect::<Vec<_>>());
    let sp = store.space(&rtxn, "cnn").unwrap().unwrap();
    assert_eq!((sp.dim, sp.num_classes, sp.model.kind.as_str()), (256, 10, "torchscript"));
    // A real pretrained classifier on real digits: the stored probabilities mostly pick the true label.
    let labels = store.labels(&rtxn).unwrap();
    let mut correct = 0;
    for (id, label) in labels.iter().enumerate() {
        let p = store.probs(&rtxn, sp.index, id as u32).unwrap().unwrap();
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-4);
        let pred = p.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).unwrap().0 as u32;
        correct += usize::from(Some(pred) == *label);
        assert_eq!(store.embedding(&rtxn, sp.index, id as u32).unwrap().unwrap().len(), 256);
    }
    assert!(correct >= 570, "{correct} of 600 digits classified right");
    let item = store.item(&rtxn, 3).unwrap().unwrap();
    assert_eq!((item.width, item.height), (28, 28));
    assert!(item.source.ends_with("mnist-digits-images-idx3-ubyte.gz#3"));
}

/// A model that returns NaN for one image stops the ingest naming the image and the space; the chunks before it
/// stay committed.
#[test]
fn a_model_returning_nan_is_refused_naming_the_image() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    folder(&data);
    let src = open(&data);
    let store = Store::create_or_open(&tmp.path().join("store")).unwrap();
    let mut m = model("finetuned", "bbb", false);
    let mut batches = 0;
    m.embed = Box::new(move |batch: &mut [f32], n: usize| {
        batches += 1;
        let mut emb = vec![0.5f32; n * 4];
        if batches == 2 {
            emb[4] = f32::NAN;
        }
        let _ = batch;
        Ok((emb, None))
    });
    let err = ingest::run(&store, src.as_ref(), vec![m], &opts("data", None, 4)).err().unwrap();
    let msg = err.to_string();
    assert!(msg.contains("space finetuned") && msg.contains("NaN or infinite values for 1 image"), "{msg}");
    assert!(msg.contains(".png") || msg.contains(".jpg"), "names the image: {msg}");
    let rtxn = store.read_txn().unwrap();
    let sp = store.space(&rtxn, "finetuned").unwrap().unwrap();
    let kept = store.embedding_count(&rtxn, sp.index).unwrap();
    assert!(kept > 0, "the first batch stays committed");
    assert_eq!(u64::from(kept), store.cursor(&rtxn, "space/finetuned/items").unwrap(), "nothing of the second");
}

fn shards() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sources/shards")
}

/// Each space's vectors, bit for bit, by space name.
fn vectors(store: &Store) -> Vec<(String, Vec<u32>)> {
    let rtxn = store.read_txn().unwrap();
    let mut spaces = store.spaces(&rtxn).unwrap();
    spaces.sort_by(|a, b| a.name.cmp(&b.name));
    spaces
        .iter()
        .map(|s| (s.name.clone(), store.embedding_matrix(&rtxn, s).unwrap().iter().map(|v| v.to_bits()).collect()))
        .collect()
}

fn ingest_ok(args: &[&str]) -> String {
    let out = cli(args).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    stdout
}

/// The article's prepared datasets carry their embeddings as list columns over parquet shards. gen_shards.py's
/// two shards (by `datasets`, one record an unreadable image) ingested with `--embedding-column` give the store
/// `--embeddings` gives with the same vectors as .npy, scores included; a rerun adds nothing; an `hf:` dataset
/// reads the columns from the same files it reads the images from.
#[test]
fn embedding_columns_of_a_sharded_dataset_score_like_the_same_npy() {
    let tmp = tempfile::tempdir().unwrap();
    let data = shards();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let from_columns = [
        "ingest",
        data.to_str().unwrap(),
        "--store",
        a.to_str().unwrap(),
        "--embedding-column",
        "finetuned=embedding_ft",
        "--embedding-column",
        "foundation=embedding.foundation",
    ];
    let stdout = ingest_ok(&from_columns);
    assert!(stdout.contains("space finetuned: 39 x 6 imported from column embedding_ft"), "{stdout}");
    assert!(stdout.contains("space foundation: 39 x 10 imported from column embedding.foundation"), "{stdout}");
    let ft = format!("finetuned={}", data.join("ft.npy").display());
    let found = format!("foundation={}", data.join("foundation.npy").display());
    ingest_ok(&[
        "ingest",
        data.to_str().unwrap(),
        "--store",
        b.to_str().unwrap(),
        "--embeddings",
        &ft,
        "--embeddings",
        &found,
    ]);
    let (sa, sb) = (Store::open(&a).unwrap(), Store::open(&b).unwrap());
    assert_eq!(sa.skipped(&sa.read_txn().unwrap()).unwrap().len(), 1, "record 27 is not an image");
    assert_eq!(vectors(&sa), vectors(&sb));
    assert_eq!(dump_columns(&sa), dump_columns(&sb), "equal scores, neighbours and projections");
    let before = (dump(&sa), dump_columns(&sa));
    drop((sa, sb));

    let stdout = ingest_ok(&from_columns);
    assert!(stdout.contains("space finetuned: 39 x 6 imported"), "{stdout}");
    let sa = Store::open(&a).unwrap();
    assert_eq!((dump(&sa), dump_columns(&sa)), before, "a rerun changes nothing");

    // The same files as a hub dataset in an offline cache.
    let commit = "0123456789abcdef0123456789abcdef01234567";
    let repo = tmp.path().join("hf/datasets--renumics--tiny-outlier");
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), commit).unwrap();
    let snap = repo.join("snapshots").join(commit).join("data");
    std::fs::create_dir_all(&snap).unwrap();
    for f in ["train-00000-of-00002.parquet", "train-00001-of-00002.parquet"] {
        std::fs::copy(data.join("data").join(f), snap.join(f)).unwrap();
    }
    let h = tmp.path().join("h");
    let out = cli(&[
        "ingest",
        "hf:renumics/tiny-outlier",
        "--store",
        h.to_str().unwrap(),
        "--embedding-column",
        "finetuned=embedding_ft",
        "--embedding-column",
        "foundation=embedding.foundation",
        "--no-analyze",
    ])
    .env("HF_HUB_CACHE", tmp.path().join("hf"))
    .env("HF_HUB_OFFLINE", "1")
    .output()
    .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(vectors(&Store::open(&h).unwrap()), vectors(&sa));
}

/// `--embedding-column` refusals: a column missing from a shard, a source without columns, a name given twice
/// (before the store exists); a bad value in an item's row (after the items, before the space is written).
#[test]
fn embedding_column_refusals_name_the_shard_and_row() {
    let tmp = tempfile::tempdir().unwrap();
    let fixtures = shards().parent().unwrap().to_path_buf();
    let store = tmp.path().join("store");
    let idx = tmp.path().join("idx");
    idx_dataset(&idx, 20);
    let npy = format!("finetuned={}", shards().join("ft.npy").display());
    for (source, extra, what) in [
        (
            fixtures.join("missing_in_shard"),
            vec!["--embedding-column", "e=emb"],
            "train-00001-of-00002.parquet: no column emb (its columns: image, label)",
        ),
        (
            shards(),
            vec!["--embedding-column", "e=embedding"],
            "no column embedding (its columns: image, label, embedding_ft, embedding.foundation)",
        ),
        (
            idx.clone(),
            vec!["--embedding-column", "e=emb"],
            "a idx source has no columns: --embedding-column reads parquet",
        ),
        (
            shards(),
            vec!["--embeddings", &npy, "--embedding-column", "finetuned=embedding_ft"],
            "space name finetuned is given twice",
        ),
        (shards(), vec!["--embedding-column", "finetuned"], "--embedding-column finetuned: expected NAME=COLUMN"),
    ] {
        let mut args = vec!["ingest", source.to_str().unwrap(), "--store", store.to_str().unwrap()];
        args.extend(extra);
        let out = cli(&args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains(what), "{what}: {err}");
        assert!(!store.exists(), "nothing written for {what}");
    }
    let errors = fixtures.join("column_errors.parquet");
    let out = cli(&[
        "ingest",
        errors.to_str().unwrap(),
        "--store",
        store.to_str().unwrap(),
        "--embedding-column",
        "bad=nulls",
    ])
    .output()
    .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("embeddings column nulls: ") && err.contains("column_errors.parquet row 2: column nulls is null"),
        "{err}"
    );
    let s = Store::open(&store).unwrap();
    let rtxn = s.read_txn().unwrap();
    assert_eq!(s.item_count(&rtxn).unwrap(), 5);
    assert!(s.space(&rtxn, "bad").unwrap().is_none(), "no space written");
}
