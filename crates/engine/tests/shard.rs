//! `ingest --shard I/N` and `torchlight merge`: the shards of a dataset with broken images, embedded by real
//! models (the demo's MNIST CNN and a tiny ViT with a head), merged into a store equal to a single-process ingest
//! (items, skipped records, thumbnails, embeddings bit for bit, probabilities, labels, cursors; the exported
//! table and each space's `.npy` byte for byte), which a later ingest continues like a whole run's; a shard
//! resumes like any ingest; shard stores refuse other work; `--shard auto` reads Slurm's and Kubernetes'
//! variables.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use image::DynamicImage;
use torchlight_cli::ShardArg;
use torchlight_engine::ingest::{self, IngestOptions, Shard, ShardError, SpaceModel};
use torchlight_engine::source::{self, OpenOptions, Source, content_hash};
use torchlight_store::merge::{MergeOptions, merge};
use torchlight_store::{ModelSpec, Store, cursors};

/// The variables `--shard auto` reads, removed from every child so the machine's own never leak in.
const JOB_VARS: [&str; 6] = [
    "SLURM_ARRAY_TASK_ID",
    "SLURM_ARRAY_TASK_COUNT",
    "SLURM_ARRAY_TASK_MIN",
    "SLURM_ARRAY_TASK_MAX",
    "SLURM_ARRAY_TASK_STEP",
    "JOB_COMPLETION_INDEX",
];

fn cli<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Command {
    let mut cmd = Command::new(common::bin::torchlight());
    cmd.args(args).env_remove("TORCHLIGHT_STORE");
    for var in JOB_VARS {
        cmd.env_remove(var);
    }
    cmd
}

/// Runs a command that must succeed; its stdout.
fn ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{cmd:?}\n{stdout}\n{stderr}");
    stdout.into_owned()
}

fn demo_assets() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src/demo/assets")
}

/// An ImageFolder of the first `n` real MNIST digits (PNG, class = digit) and three broken files among them:
/// garbage, an empty file and a cut-off PNG.
fn digits_folder(dir: &Path, n: usize) {
    let images = demo_assets().join("mnist-digits-images-idx3-ubyte.gz");
    let digits = source::open(images.to_str().unwrap(), &OpenOptions::default()).unwrap();
    let mut first_png = None;
    for (i, record) in digits.records(0).unwrap().take(n).enumerate() {
        let record = record.unwrap();
        let class = dir.join(record.label.unwrap().to_string());
        std::fs::create_dir_all(&class).unwrap();
        let path = class.join(format!("{i:04}.png"));
        record.decode().unwrap().image.save(&path).unwrap();
        first_png.get_or_insert(path);
    }
    std::fs::write(dir.join("3/0000a.png"), b"\x89PNG garbage").unwrap();
    std::fs::write(dir.join("7/zzz.png"), b"").unwrap();
    let png = std::fs::read(first_png.unwrap()).unwrap();
    std::fs::write(dir.join("5/0031b.png"), &png[..png.len() / 2]).unwrap();
}

/// Two real models with different preprocessing: the demo's MNIST CNN (TorchScript, 10 classes) and a tiny ViT
/// with a classifier head.
fn model_args() -> Vec<String> {
    let cnn = demo_assets().join("mnist-cnn.pt");
    let vit = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/models/hf/vit_cls_tanh");
    let mut a = vec!["--foundation".into(), cnn.display().to_string(), "--finetuned".into(), vit.display().to_string()];
    for (k, v) in [("--device", "cpu"), ("--threads", "2"), ("--batch-size", "8")] {
        a.extend([k.to_string(), v.to_string()]);
    }
    a
}

fn ingest_cmd(data: &Path, store: &Path, extra: &[String]) -> Command {
    let mut args =
        vec!["ingest".to_string(), data.display().to_string(), "--store".into(), store.display().to_string()];
    args.extend(model_args());
    args.extend(extra.iter().cloned());
    cli(&args)
}

/// Everything ingest writes and a later run reads back, for equality between stores.
fn dump(store: &Store) -> String {
    let rtxn = store.read_txn().unwrap();
    let mut out = format!("{:?}\n{:?}\n", store.items(&rtxn).unwrap(), store.skipped(&rtxn).unwrap());
    out += &format!("{:?}\n{:?}\n", store.label_names(&rtxn).unwrap(), store.dataset(&rtxn).unwrap());
    out += &format!("{:?}\n", store.column(&rtxn, "", torchlight_store::columns::LABEL).unwrap());
    out += &format!("records {}\n", store.cursor(&rtxn, cursors::RECORDS).unwrap());
    let n = store.item_count(&rtxn).unwrap();
    for id in 0..n {
        out += &format!("{:x} ", content_hash(&store.thumbnail(&rtxn, id).unwrap().expect("every item has one")));
    }
    for s in store.spaces(&rtxn).unwrap() {
        out += &format!(
            "\n{s:?} cursors {} {}\n",
            store.cursor(&rtxn, &cursors::space(&s.name)).unwrap(),
            store.cursor(&rtxn, &cursors::space_items(&s.name)).unwrap()
        );
        assert_eq!(store.embedding_count(&rtxn, s.index).unwrap(), n, "space {}", s.name);
        for id in 0..n {
            let bits = |v: Vec<f32>| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            let e = store.embedding(&rtxn, s.index, id).unwrap().unwrap();
            out += &format!("{:?}{:?}", bits(e), store.probs(&rtxn, s.index, id).unwrap().map(bits));
        }
    }
    out
}

/// The exported table and each space's embeddings, as bytes.
fn exports(store: &Path, tmp: &Path) -> Vec<(String, Vec<u8>)> {
    let dir = tempfile::tempdir_in(tmp).unwrap();
    let mut files = vec![("table.csv".to_string(), Vec::new())];
    let s = store.display().to_string();
    ok(&mut cli(&["export", "--store", &s, "-o", &dir.path().join("table.csv").display().to_string()]));
    for space in ["foundation", "finetuned"] {
        let name = format!("{space}.npy");
        let path = dir.path().join(&name).display().to_string();
        ok(&mut cli(&["export", "--store", &s, "--embeddings", space, "-o", &path]));
        files.push((name, Vec::new()));
    }
    for (name, bytes) in &mut files {
        *bytes = std::fs::read(dir.path().join(&*name)).unwrap();
        assert!(!bytes.is_empty(), "{name}");
    }
    files
}

/// Ingests shards `0..count` (each a store of its own, in the order `order`) and merges them with the
/// `torchlight merge` command; the merged store's directory.
fn shard_and_merge(data: &Path, root: &Path, count: u32, extra: &[String]) -> PathBuf {
    let mut dirs = Vec::new();
    for i in 0..count {
        let dir = root.join(format!("shard-{i}"));
        let mut args = extra.to_vec();
        args.extend(["--shard".to_string(), format!("{i}/{count}")]);
        let out = ok(&mut ingest_cmd(data, &dir, &args));
        assert!(out.contains("analysis skipped for a shard"), "{out}");
        dirs.push(dir.display().to_string());
    }
    dirs.reverse();
    let merged = root.join("merged");
    let mut args = vec!["merge".to_string(), "--store".into(), merged.display().to_string()];
    args.extend(dirs);
    let out = ok(&mut cli(&args));
    assert!(out.contains(&format!("merged {count} shards")), "{out}");
    merged
}

/// Shards of 1, 3 and 4 merged equal a single-process ingest; a model added later to the merged store embeds
/// all items and nothing else, as in the single-process store; the analysis of the merged store equals that of
/// the whole one.
#[test]
fn shards_through_real_models_merge_into_the_store_of_a_single_process() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("digits");
    digits_folder(&data, 80);
    let limit = vec!["--limit".to_string(), "70".into()];
    let mut whole_dirs = Vec::new();
    for (tag, extra) in [("limited", limit.clone()), ("all", Vec::new())] {
        let dir = tmp.path().join(format!("whole-{tag}"));
        let mut args = extra.clone();
        args.push("--no-analyze".into());
        let out = ok(&mut ingest_cmd(&data, &dir, &args));
        assert!(out.contains("skipped"), "{out}");
        whole_dirs.push((dir, extra));
    }
    {
        let whole = Store::open_reading(&whole_dirs[1].0).unwrap();
        let rtxn = whole.read_txn().unwrap();
        assert_eq!((whole.item_count(&rtxn).unwrap(), whole.skipped(&rtxn).unwrap().len()), (80, 3));
    }
    for (count, (whole_dir, extra)) in [(1, &whole_dirs[0]), (3, &whole_dirs[0]), (4, &whole_dirs[1])] {
        let root = tmp.path().join(format!("n{count}"));
        let merged = shard_and_merge(&data, &root, count, extra);
        {
            let (m, w) = (Store::open_reading(&merged).unwrap(), Store::open_reading(whole_dir).unwrap());
            assert_eq!(dump(&m), dump(&w), "{count} shards");
            assert!(!m.verify(&|_, _, _| {}).unwrap().is_damaged());
        }
        assert_eq!(exports(&merged, tmp.path()), exports(whole_dir, tmp.path()), "{count} shards");
        // A rerun of the finished merge does nothing.
        let mut args = vec!["merge".to_string(), "--store".into(), merged.display().to_string()];
        args.extend((0..count).map(|i| root.join(format!("shard-{i}")).display().to_string()));
        assert!(ok(&mut cli(&args)).contains("nothing to do"));
    }

    // The merged stores of 3 and 4 shards go on like the whole ones: a third model added by a later ingest embeds
    // every item, the others nothing; then the analysis.
    let cnn = format!("again={}", demo_assets().join("mnist-cnn.pt").display());
    for (count, (whole_dir, extra)) in [(3, &whole_dirs[0]), (4, &whole_dirs[1])] {
        let merged = tmp.path().join(format!("n{count}/merged"));
        let mut outs = Vec::new();
        for dir in [&merged, whole_dir] {
            let mut args = extra.clone();
            args.extend(["--model".into(), cnn.clone(), "--no-analyze".into()]);
            let out = ok(&mut ingest_cmd(&data, dir, &args));
            assert!(out.contains("ingested 0 new items"), "{out}");
            outs.push(
                out.lines()
                    .filter(|l| l.starts_with("space "))
                    .map(|l| l.split(',').next().unwrap().to_string())
                    .collect::<Vec<_>>(),
            );
        }
        assert_eq!(outs[0], outs[1], "{count} shards");
        assert!(outs[0].iter().any(|l| l.starts_with("space again: ") && l.ends_with(" embedded")), "{outs:?}");
        let (m, w) = (Store::open_reading(&merged).unwrap(), Store::open_reading(whole_dir).unwrap());
        assert_eq!(dump(&m), dump(&w), "{count} shards, a model added");
    }
    let merged = tmp.path().join("n4/merged");
    for dir in [&merged, &whole_dirs[1].0] {
        ok(&mut cli(&["analyze", "--store", &dir.display().to_string(), "--device", "cpu"]));
    }
    assert_eq!(exports(&merged, tmp.path()), exports(&whole_dirs[1].0, tmp.path()), "analysed");
}

/// Input = mean of each channel: cheap and deterministic.
fn means(img: &DynamicImage) -> Vec<f32> {
    common::channel_means(img).to_vec()
}

/// A model of dimension 3 without a head: the input scaled.
fn test_model() -> SpaceModel {
    let spec = ModelSpec {
        kind: "test".into(),
        source: "test:means".into(),
        fingerprint: "means".into(),
        pooling: "none".into(),
        image_size: 0,
    };
    SpaceModel {
        space: ingest::space_info("means", spec, 3, 0, Vec::new()),
        prepare_key: "means".into(),
        prepare: Arc::new(|img: &DynamicImage, out: &mut Vec<f32>| out.extend(means(img))),
        embed: Box::new(|batch: &mut [f32], _n: usize| Ok((batch.iter().map(|v| v / 255.0).collect(), None))),
    }
}

fn opts(limit: Option<usize>, stop: fn() -> bool) -> IngestOptions {
    IngestOptions {
        source_spec: "digits".into(),
        limit,
        batch_size: 4,
        threads: 2,
        progress: false,
        stop,
        series: None,
    }
}

fn open(dir: &Path) -> Box<dyn Source> {
    source::open(dir.to_str().unwrap(), &OpenOptions::default()).unwrap()
}

static CHUNKS: AtomicUsize = AtomicUsize::new(0);

/// Polled once per chunk: stops the run at the fourth.
fn stop_at_fourth() -> bool {
    CHUNKS.fetch_add(1, Ordering::SeqCst) >= 3
}

/// A shard stopped mid-way resumes like any ingest; a merge of shards with empty ones (fewer batches than
/// shards) equals the whole store; shard stores take only their own shard again.
#[test]
fn a_shard_resumes_and_shard_stores_refuse_other_work() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("digits");
    digits_folder(&data, 40);
    let src = open(&data);
    let shard = |index, count| Shard { index, count };

    let one_go = Store::create_or_open(&tmp.path().join("one-go")).unwrap();
    ingest::run_shard(&one_go, src.as_ref(), vec![test_model()], &opts(None, || false), shard(1, 2)).unwrap();
    let stopped = Store::create_or_open(&tmp.path().join("stopped")).unwrap();
    let err = ingest::run_shard(&stopped, src.as_ref(), vec![test_model()], &opts(None, stop_at_fourth), shard(1, 2));
    assert!(matches!(err, Err(ingest::IngestError::Interrupted)), "{:?}", err.err());
    let items = stopped.item_count(&stopped.read_txn().unwrap()).unwrap();
    assert!(items > 0 && items < one_go.item_count(&one_go.read_txn().unwrap()).unwrap());
    let summary =
        ingest::run_shard(&stopped, src.as_ref(), vec![test_model()], &opts(None, || false), shard(1, 2)).unwrap();
    assert_eq!(summary.new_items + u64::from(items), u64::from(summary.items));
    assert_eq!(dump(&stopped), dump(&one_go));
    let info = stopped.shard(&stopped.read_txn().unwrap()).unwrap().unwrap();
    assert_eq!((info.index, info.count, info.start, info.end, info.total, info.batch_size), (1, 2, 20, 43, 43, 4));

    // Shards 0 and 2 of 5 over 3 batches are empty; merged, they equal the whole run.
    let whole = tmp.path().join("whole");
    ingest::run(&Store::create_or_open(&whole).unwrap(), src.as_ref(), vec![test_model()], &opts(Some(10), || false))
        .unwrap();
    let dirs: Vec<PathBuf> = (0..5).map(|i| tmp.path().join(format!("small-{i}"))).collect();
    for (i, dir) in dirs.iter().enumerate() {
        let store = Store::create_or_open(dir).unwrap();
        ingest::run_shard(&store, src.as_ref(), vec![test_model()], &opts(Some(10), || false), shard(i as u32, 5))
            .unwrap();
    }
    let merged = tmp.path().join("small-merged");
    merge(&merged, &dirs, &MergeOptions::default(), &mut |_| std::ops::ControlFlow::Continue(())).unwrap();
    assert_eq!(dump(&Store::open_reading(&merged).unwrap()), dump(&Store::open_reading(&whole).unwrap()));

    // A shard store takes its own shard only; a whole store no shard.
    let refused = |store: &Store, shard: Option<Shard>, limit| {
        let o = opts(limit, || false);
        let r = match shard {
            Some(s) => ingest::run_shard(store, src.as_ref(), vec![test_model()], &o, s),
            None => ingest::run(store, src.as_ref(), vec![test_model()], &o),
        };
        match r {
            Ok(_) => panic!("the ingest was not refused"),
            Err(e) => e.to_string(),
        }
    };
    let dir = stopped.dir().display().to_string();
    let err = refused(&stopped, Some(shard(0, 2)), None);
    assert!(err.contains(&dir) && err.contains("holds shard 1/2") && err.contains("now asked for shard 0/2"), "{err}");
    let err = refused(&stopped, Some(shard(1, 2)), Some(30));
    assert!(err.contains("of 43") && err.contains("of 30"), "{err}");
    let err = refused(&stopped, None, None);
    assert!(err.contains(&dir) && err.contains("torchlight merge"), "{err}");
    let whole = Store::open(&whole).unwrap();
    let err = refused(&whole, Some(shard(0, 2)), Some(10));
    assert!(err.contains("holds a whole ingest"), "{err}");
    assert_eq!(dump(&stopped), dump(&one_go), "nothing written by a refused run");

    // A merge stopped half-way is finished by merge, not by an ingest.
    let half = tmp.path().join("half");
    let stop = merge(&half, &dirs, &MergeOptions { chunk_items: 1 }, &mut |_| std::ops::ControlFlow::Break(()));
    assert!(stop.is_err());
    let err = refused(&Store::open(&half).unwrap(), None, Some(10));
    assert!(err.contains("unfinished merge"), "{err}");
}

fn env_of(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let vars: Vec<(String, String)> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    move |name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
}

fn resolve(arg: ShardArg, vars: &[(&str, &str)]) -> Result<Shard, ShardError> {
    ingest::resolve_shard(arg, &env_of(vars))
}

#[test]
fn shard_auto_reads_slurm_job_arrays_and_kubernetes_indexed_jobs() {
    let auto = ShardArg::Auto { count: None };
    let slurm = |id, min, count| {
        vec![("SLURM_ARRAY_TASK_ID", id), ("SLURM_ARRAY_TASK_MIN", min), ("SLURM_ARRAY_TASK_COUNT", count)]
    };
    let shard = |index, count| Shard { index, count };
    assert_eq!(resolve(ShardArg::Index { index: 2, count: 5 }, &[]).unwrap(), shard(2, 5));
    // Arrays from 0, from 1 (--array=1-4), and stepping (--array=0-6:2).
    assert_eq!(resolve(auto, &slurm("0", "0", "4")).unwrap(), shard(0, 4));
    assert_eq!(resolve(auto, &slurm("3", "0", "4")).unwrap(), shard(3, 4));
    assert_eq!(resolve(auto, &slurm("1", "1", "4")).unwrap(), shard(0, 4));
    assert_eq!(resolve(auto, &slurm("4", "1", "4")).unwrap(), shard(3, 4));
    let mut stepped = slurm("4", "0", "4");
    stepped.push(("SLURM_ARRAY_TASK_STEP", "2"));
    assert_eq!(resolve(auto, &stepped).unwrap(), shard(2, 4));
    assert_eq!(resolve(ShardArg::Auto { count: Some(4) }, &slurm("2", "0", "4")).unwrap(), shard(2, 4));
    // A list such as --array=1,3,9 is not a range: its tasks cannot be numbered 0..N.
    let err = resolve(auto, &slurm("9", "1", "3")).unwrap_err().to_string();
    assert!(err.contains("--array=0-2"), "{err}");
    let err = resolve(ShardArg::Auto { count: Some(3) }, &slurm("1", "0", "4")).unwrap_err().to_string();
    assert!(err.contains("auto/3") && err.contains("4 tasks"), "{err}");
    let err = resolve(auto, &[("SLURM_ARRAY_TASK_ID", "2"), ("SLURM_ARRAY_TASK_COUNT", "4")]).unwrap_err().to_string();
    assert!(err.contains("SLURM_ARRAY_TASK_MIN"), "{err}");
    let err = resolve(auto, &slurm("x", "0", "4")).unwrap_err().to_string();
    assert!(err.contains("SLURM_ARRAY_TASK_ID=x"), "{err}");

    // Kubernetes gives the index only: the count comes with auto/N.
    let k8s = [("JOB_COMPLETION_INDEX", "2")];
    assert_eq!(resolve(ShardArg::Auto { count: Some(3) }, &k8s).unwrap(), shard(2, 3));
    let err = resolve(auto, &k8s).unwrap_err().to_string();
    assert!(err.contains("auto/N") && err.contains("completions"), "{err}");
    let err = resolve(ShardArg::Auto { count: Some(2) }, &k8s).unwrap_err().to_string();
    assert!(err.contains("not below 2"), "{err}");
    let err = resolve(auto, &[]).unwrap_err().to_string();
    assert!(err.contains("SLURM_ARRAY_TASK_ID") && err.contains("JOB_COMPLETION_INDEX"), "{err}");
}

/// The ingest command takes `--shard auto` from the environment, and says what is missing without it.
#[test]
fn ingest_shard_auto_from_the_environment() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("digits");
    digits_folder(&data, 24);
    let d = data.display().to_string();
    let run = |store: &str, shard: &str, vars: &[(&str, &str)]| {
        let mut cmd = cli(&["ingest", &d, "--store", store, "--batch-size", "4", "--shard", shard]);
        cmd.envs(vars.iter().copied());
        cmd.output().unwrap()
    };
    for (tag, shard, vars, want) in [
        (
            "slurm",
            "auto",
            &[("SLURM_ARRAY_TASK_ID", "6"), ("SLURM_ARRAY_TASK_MIN", "5"), ("SLURM_ARRAY_TASK_COUNT", "3")][..],
            (1, 3),
        ),
        ("k8s", "auto/4", &[("JOB_COMPLETION_INDEX", "3")][..], (3, 4)),
    ] {
        let store = tmp.path().join(tag);
        let out = run(&store.display().to_string(), shard, vars);
        assert!(out.status.success(), "{tag}: {}", String::from_utf8_lossy(&out.stderr));
        let store = Store::open_reading(&store).unwrap();
        let info = store.shard(&store.read_txn().unwrap()).unwrap().unwrap();
        assert_eq!((info.index, info.count), want, "{tag}");
    }
    let store = tmp.path().join("none");
    let out = run(&store.display().to_string(), "auto", &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("--shard auto found no job array"), "{err}");
    assert!(!store.exists(), "nothing created");
    let out = cli(&["ingest", &d, "--shard", "4/4"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("shard 4 of 4 does not exist"), "{err}");
}
