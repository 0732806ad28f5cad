//! `ingest --checkpoints` on a real `transformers.Trainer` run (tests/fixtures/checkpoints/make_run.py: a tiny ViT
//! fine-tuned for 40 steps, a checkpoint every 10): every checkpoint is a space `step-<N>` equal to transformers'
//! CLS embedding of it, the `Series` record lists the foundation at step 0 and the checkpoints in step order with
//! the loss log of trainer_state.json, `info` shows them; the pickles of the checkpoints are never opened; an
//! explicit list, `--finetuned` naming a checkpoint, a stopped and resumed series, shards merged; the refusals.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use torchlight_engine::ingest::series::{self, StepsFrom};
use torchlight_engine::ingest::{self, IngestOptions, SpaceModel};
use torchlight_engine::model::{Embedder, ModelOptions};
use torchlight_engine::source::{self, OpenOptions};
use torchlight_store::{LossPoint, Series, Store, npy};

const STEPS: [u64; 4] = [10, 20, 30, 40];
const DIGITS: usize = 32;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/checkpoints")
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn cli<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Command {
    let mut cmd = Command::new(common::bin::torchlight());
    cmd.args(args).env_remove("TORCHLIGHT_STORE");
    cmd
}

/// Runs a command that must succeed: (stdout, stderr).
fn ok(cmd: &mut Command) -> (String, String) {
    let out = cmd.output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{cmd:?}\n{stdout}\n{stderr}");
    (stdout.into_owned(), stderr.into_owned())
}

/// Runs a command that must fail: its stderr.
fn refused(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{cmd:?} succeeded:\n{}\n{stderr}", String::from_utf8_lossy(&out.stdout));
    stderr
}

/// `ingest DIGITS --store STORE --device cpu --no-analyze` and `more`.
fn ingest(store: &Path, more: &[&str]) -> Command {
    let digits = fixture().join("digits");
    let mut args = vec!["ingest", s(&digits), "--store", s(store), "--device", "cpu", "--threads", "2", "--no-analyze"];
    args.extend_from_slice(more);
    cli(&args)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let dest = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_dir(&path, &dest);
        } else {
            std::fs::copy(&path, &dest).unwrap();
        }
    }
}

/// The run folder copied, each checkpoint's pickles replaced by garbage nobody can read.
fn run_with_garbage_pickles(dir: &Path) -> PathBuf {
    let run = dir.join("run");
    copy_dir(&fixture().join("run"), &run);
    for step in STEPS {
        for pickle in ["optimizer.pt", "scheduler.pt", "rng_state.pth", "training_args.bin"] {
            let path = run.join(format!("checkpoint-{step}")).join(pickle);
            assert!(path.is_file(), "the Trainer wrote {}", path.display());
            std::fs::write(&path, b"\x80\x04 not a pickle: opening this is a bug").unwrap();
            std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o000)).unwrap();
        }
    }
    run
}

/// trainer_state.json's losses: (step, loss) of the log_history entries with a loss.
fn trainer_losses(state: &Path) -> Vec<LossPoint> {
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(state).unwrap()).unwrap();
    json["log_history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e.get("loss").is_some())
        .map(|e| LossPoint { step: e["step"].as_u64().unwrap(), loss: e["loss"].as_f64().unwrap() })
        .collect()
}

fn reference(step: u64) -> Vec<f32> {
    let path = fixture().join("reference").join(format!("step-{step}.npy"));
    let array = npy::read(std::fs::File::open(&path).unwrap()).unwrap();
    assert_eq!(array.shape, [DIGITS, 32], "{}", path.display());
    array.to_f32()
}

/// Largest |difference| between a space's embeddings and the reference of `step`.
fn max_diff(store: &Store, space: &str, step: u64) -> f32 {
    let rtxn = store.read_txn().unwrap();
    let info = store.space(&rtxn, space).unwrap().unwrap_or_else(|| panic!("no space {space}"));
    assert_eq!(info.dim, 32);
    let want = reference(step);
    let mut diff = 0f32;
    for id in 0..DIGITS as u32 {
        let got = store.embedding(&rtxn, info.index, id).unwrap().expect("every digit embedded");
        for (a, b) in got.iter().zip(&want[id as usize * 32..(id as usize + 1) * 32]) {
            diff = diff.max((a - b).abs());
        }
    }
    diff
}

fn series_of(store: &Path) -> Series {
    let store = Store::open_reading(store).unwrap();
    let rtxn = store.read_txn().unwrap();
    store.series(&rtxn).unwrap().expect("a series record")
}

fn steps(series: &Series) -> Vec<(String, u64)> {
    series.steps.iter().map(|st| (st.space.clone(), st.step)).collect()
}

fn foundation_and(steps: &[u64]) -> Vec<(String, u64)> {
    std::iter::once(("foundation".to_string(), 0)).chain(steps.iter().map(|&s| (format!("step-{s}"), s))).collect()
}

/// The Done-when of issue 18's first part: a real Trainer run ingests with `--checkpoints`, each space equal to
/// transformers' CLS embedding of its checkpoint within 1e-4, the series in step order from the foundation at
/// step 0, the losses those of trainer_state.json, in the record and in `info`; the pickles never opened.
#[test]
fn a_trainer_run_ingests_as_a_series_equal_to_transformers() {
    let tmp = tempfile::tempdir().unwrap();
    let run = run_with_garbage_pickles(tmp.path());
    let store = tmp.path().join("store");
    let foundation = fixture().join("foundation");
    let (stdout, stderr) = ok(&mut ingest(&store, &["--foundation", s(&foundation), "--checkpoints", s(&run)]));
    assert!(
        stderr.contains(&format!("checkpoints: 4 in the run folder {}, steps 10, 20, 30, 40", run.display())),
        "{stderr}"
    );
    let state = run.join("checkpoint-40/trainer_state.json");
    assert!(stderr.contains(&format!("loss log: 20 logged losses from {}", state.display())), "{stderr}");
    // The Trainer was given no processor: the checkpoints take the foundation's preprocessing, and say so.
    assert!(stderr.contains("preprocessing of the checkpoints: the foundation model's"), "{stderr}");
    for space in ["foundation", "step-10", "step-40"] {
        assert!(stdout.contains(&format!("space {space}: {DIGITS} embedded")), "{stdout}");
    }

    let series = series_of(&store);
    assert_eq!(steps(&series), foundation_and(&STEPS));
    assert_eq!(series.finetuned, None);
    assert_eq!(series.finetuned_space(), Some("step-40"));
    let losses = trainer_losses(&state);
    assert_eq!(losses.len(), 20);
    assert_eq!(series.losses, losses, "the losses are trainer_state.json's, bit for bit");

    let opened = Store::open_reading(&store).unwrap();
    for (space, step) in steps(&series) {
        let d = max_diff(&opened, &space, step);
        println!("{space:10} max |diff| to transformers {d:.2e}");
        assert!(d < 1e-4, "{space}: {d}");
    }
    // Training moved the embeddings: each checkpoint is a space of its own, not the foundation again.
    let first_vs_last = reference(0).iter().zip(reference(40)).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    assert!(first_vs_last > 0.05, "{first_vs_last}");
    {
        let rtxn = opened.read_txn().unwrap();
        let step = opened.space(&rtxn, "step-20").unwrap().unwrap();
        assert_eq!((step.num_classes, step.class_names.len()), (10, 10));
        let p = opened.probs(&rtxn, step.index, 0).unwrap().expect("the head's probabilities");
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-5);
    }
    drop(opened);

    let (info, _) = ok(&mut cli(&["info", "--store", s(&store)]));
    assert!(info.contains("checkpoint series: 5 steps, fine-tuned space step-40"), "{info}");
    let at = |step: u64| losses.iter().find(|p| p.step == step).unwrap().loss;
    assert!(info.contains(&format!("step       0  foundation  loss {:.4} (logged at step 2)", at(2))), "{info}");
    for step in STEPS {
        assert!(info.contains(&format!("step {step:>7}  step-{step}     loss {:.4}\n", at(step))), "{info}");
    }
    assert!(info.contains(&format!("loss log: 20 points, steps 2..40, loss {:.4} -> {:.4}", at(2), at(40))), "{info}");

    // The same command again finds everything done and keeps the series.
    let (again, _) = ok(&mut ingest(&store, &["--foundation", s(&foundation), "--checkpoints", s(&run)]));
    assert!(again.contains("space step-40: 0 embedded"), "{again}");
    assert_eq!(series_of(&store), series);
}

/// A list of checkpoints: put in step order whatever the order given, the loss log of the last one's
/// trainer_state.json; `--finetuned` naming one of them makes it the fine-tuned space, embedded once; names
/// without a step count 1, 2, ... in list order with no loss log; a checkpoint's own preprocessing is taken
/// before the run folder's, the run folder's before the foundation's.
#[test]
fn a_list_of_checkpoints_and_finetuned_naming_one_of_them() {
    let tmp = tempfile::tempdir().unwrap();
    let run = fixture().join("run");
    let (c10, c30) = (run.join("checkpoint-10"), run.join("checkpoint-30"));
    let store = tmp.path().join("list");
    let foundation = fixture().join("foundation");
    let list = format!("{},{}", c30.display(), c10.display());
    let (stdout, stderr) =
        ok(&mut ingest(&store, &["--foundation", s(&foundation), "--checkpoints", &list, "--finetuned", s(&c30)]));
    assert!(stderr.contains("has the weights of checkpoint step-30: the fine-tuned space is step-30"), "{stderr}");
    assert!(!stdout.contains("space finetuned"), "not embedded twice: {stdout}");
    let series = series_of(&store);
    assert_eq!(steps(&series), foundation_and(&[10, 30]));
    assert_eq!(series.finetuned.as_deref(), Some("step-30"));
    assert_eq!(series.losses, trainer_losses(&c30.join("trainer_state.json")));
    let opened = Store::open_reading(&store).unwrap();
    assert!(opened.space(&opened.read_txn().unwrap(), "finetuned").unwrap().is_none());
    assert!(max_diff(&opened, "step-30", 30) < 1e-4);

    // Names that give no step: list order, and no loss log to line up with it.
    let named = tmp.path().join("named");
    for (name, step) in [("early", 20), ("late", 40)] {
        copy_dir(&run.join(format!("checkpoint-{step}")), &named.join(name));
    }
    let found = series::find(&[s(&named.join("late")).into(), s(&named.join("early")).into()]).unwrap();
    assert_eq!(found.steps_from, StepsFrom::Order);
    assert_eq!(
        found.checkpoints.iter().map(|c| (c.step, c.space())).collect::<Vec<_>>(),
        [(1, "step-1".to_string()), (2, "step-2".to_string())]
    );
    assert!(found.checkpoints[0].path.ends_with("late") && found.losses.is_empty() && found.loss_log.is_none());
    // Preprocessing: the run folder's before the foundation's, the checkpoint's own before both, --preprocess
    // before all.
    let c = &found.checkpoints[0].path;
    assert_eq!(series::preprocess_from(c, Some(&named), None, true), series::PreprocessFrom::Foundation);
    assert_eq!(series::preprocess_from(c, Some(&named), None, false), series::PreprocessFrom::Nothing);
    std::fs::copy(foundation.join(series::PREPROCESSOR), named.join(series::PREPROCESSOR)).unwrap();
    let from = series::preprocess_from(c, Some(&named), None, true);
    assert_eq!(from, series::PreprocessFrom::RunDir(named.join(series::PREPROCESSOR)));
    std::fs::copy(foundation.join(series::PREPROCESSOR), c.join(series::PREPROCESSOR)).unwrap();
    let from = series::preprocess_from(c, Some(&named), None, true);
    assert_eq!(from, series::PreprocessFrom::Own(c.join(series::PREPROCESSOR)));
    let flag = Path::new("pre.json");
    assert_eq!(series::preprocess_from(c, None, Some(flag), true), series::PreprocessFrom::Flag(flag.into()));
    // Through the command, without a foundation: each takes its run folder's.
    let store = tmp.path().join("named-store");
    let list = format!("{},{}", named.join("late").display(), named.join("early").display());
    let (_, stderr) = ok(&mut ingest(&store, &["--checkpoints", &list]));
    assert!(stderr.contains("steps counted 1, 2"), "{stderr}");
    assert!(stderr.contains("preprocessing of step-1: its own"), "{stderr}");
    assert!(stderr.contains("preprocessing of step-2: the run folder's"), "{stderr}");
    let series = series_of(&store);
    assert_eq!(steps(&series), [("step-1".to_string(), 1), ("step-2".to_string(), 2)]);
    let opened = Store::open_reading(&store).unwrap();
    assert!(max_diff(&opened, "step-1", 40) < 1e-4 && max_diff(&opened, "step-2", 20) < 1e-4);
}

static POLLS: AtomicUsize = AtomicUsize::new(0);

/// Polled once per chunk: stops the run at the third.
fn stop_at_third() -> bool {
    POLLS.fetch_add(1, Ordering::SeqCst) >= 2
}

/// The models `ingest --foundation F --checkpoints RUN` makes, through the library.
fn series_models() -> Vec<SpaceModel> {
    let foundation = Embedder::load(s(&fixture().join("foundation")), &ModelOptions::default()).unwrap();
    let pre = foundation.preprocess_config().clone();
    let mut models = vec![ingest::space_model("foundation", foundation)];
    for step in STEPS {
        let opts = ModelOptions { fallback_preprocess: Some(pre.clone()), ..ModelOptions::default() };
        let dir = fixture().join(format!("run/checkpoint-{step}"));
        models.push(ingest::space_model(&format!("step-{step}"), Embedder::load(s(&dir), &opts).unwrap()));
    }
    models
}

/// Everything an ingest writes, bit for bit.
fn dump(store: &Store) -> String {
    let rtxn = store.read_txn().unwrap();
    let mut out = format!(
        "{:?}\n{:?}\n{:?}\n",
        store.items(&rtxn).unwrap(),
        store.dataset(&rtxn).unwrap(),
        store.series(&rtxn).unwrap()
    );
    let mut spaces = store.spaces(&rtxn).unwrap();
    spaces.sort_by_key(|s| s.index);
    for sp in spaces {
        out += &format!("\n{} {:?}\n", sp.name, sp.model);
        for id in 0..store.item_count(&rtxn).unwrap() {
            let e = store.embedding(&rtxn, sp.index, id).unwrap().expect("embedded");
            let p = store.probs(&rtxn, sp.index, id).unwrap();
            out += &format!("{:?}{:?}", e.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), p);
        }
    }
    out
}

/// A series ingest stopped after two chunks: the series is recorded with the spaces before the first item, and
/// the rerun finishes every checkpoint's space into a store equal to one made in one go.
#[test]
fn a_stopped_series_ingest_resumes_into_the_same_store() {
    let tmp = tempfile::tempdir().unwrap();
    let digits = source::open(s(&fixture().join("digits")), &OpenOptions::default()).unwrap();
    let found = series::find(&[s(&fixture().join("run")).to_string()]).unwrap();
    let series = series::series(Some("foundation"), &found, None);
    let opts = |stop: fn() -> bool| IngestOptions {
        source_spec: "digits".into(),
        limit: None,
        batch_size: 4,
        threads: 2,
        progress: false,
        stop,
        series: Some(series.clone()),
    };
    let one_go = Store::create_or_open(&tmp.path().join("one-go")).unwrap();
    let summary = ingest::run(&one_go, digits.as_ref(), series_models(), &opts(|| false)).unwrap();
    assert!(summary.complete && summary.items == DIGITS as u32);

    let stopped = Store::create_or_open(&tmp.path().join("stopped")).unwrap();
    let err = ingest::run(&stopped, digits.as_ref(), series_models(), &opts(stop_at_third));
    assert!(matches!(err, Err(ingest::IngestError::Interrupted)), "{:?}", err.err());
    {
        let rtxn = stopped.read_txn().unwrap();
        let items = stopped.item_count(&rtxn).unwrap();
        assert!(items > 0 && items < DIGITS as u32, "{items}");
        assert_eq!(stopped.series(&rtxn).unwrap().as_ref(), Some(&series), "recorded with the spaces");
    }
    let resumed = ingest::run(&stopped, digits.as_ref(), series_models(), &opts(|| false)).unwrap();
    assert!(resumed.complete && resumed.new_items > 0 && resumed.new_items < DIGITS as u64);
    assert_eq!(dump(&stopped), dump(&one_go));
    for (space, step) in steps(&series) {
        assert!(max_diff(&stopped, &space, step) < 1e-4, "{space}");
    }
}

/// `ingest --shard` of a series, merged: the series comes along, and the store equals a whole ingest's.
#[test]
fn shards_of_a_series_merge_with_their_series() {
    let tmp = tempfile::tempdir().unwrap();
    let (run, foundation) = (fixture().join("run"), fixture().join("foundation"));
    let models = ["--foundation", s(&foundation), "--checkpoints", s(&run), "--batch-size", "8"];
    let whole = tmp.path().join("whole");
    ok(&mut ingest(&whole, &models));
    let shards: Vec<PathBuf> = (0..2).map(|i| tmp.path().join(format!("shard-{i}"))).collect();
    for (i, shard) in shards.iter().enumerate() {
        let part = format!("{i}/2");
        let mut args = models.to_vec();
        args.extend(["--shard", part.as_str()]);
        // --no-analyze is implied for a shard; the helper passes it anyway.
        ok(&mut ingest(shard, &args));
        assert_eq!(series_of(shard), series_of(&whole));
    }
    let merged = tmp.path().join("merged");
    ok(&mut cli(&["merge", "--store", s(&merged), s(&shards[0]), s(&shards[1])]));
    assert_eq!(series_of(&merged), series_of(&whole));
    assert_eq!(dump(&Store::open_reading(&merged).unwrap()), dump(&Store::open_reading(&whole).unwrap()));
}

/// Every refusal says what is wrong, before anything is written.
#[test]
fn refusals_name_the_problem() {
    let tmp = tempfile::tempdir().unwrap();
    let run = fixture().join("run");
    let foundation = fixture().join("foundation");
    let store = tmp.path().join("never");
    let check = |args: &[&str], wants: &[&str]| {
        let err = refused(&mut ingest(&store, args));
        for want in wants {
            assert!(err.contains(want), "wanted {want:?} in:\n{err}");
        }
        assert!(!store.exists(), "nothing written for:\n{err}");
    };
    // An empty run folder, and one whose Trainer has not saved yet.
    let empty = tmp.path().join("empty-run");
    std::fs::create_dir_all(empty.join("runs")).unwrap();
    std::fs::create_dir_all(empty.join("tmp-checkpoint-10")).unwrap();
    check(&["--foundation", s(&foundation), "--checkpoints", s(&empty)], &["no checkpoint-<step> folder", s(&empty)]);
    check(&["--checkpoints", s(&tmp.path().join("nowhere"))], &["no such file or directory"]);
    // A checkpoint without weights, and one with only a pickle: the pickle is refused, never opened.
    let broken = tmp.path().join("broken");
    copy_dir(&run, &broken);
    std::fs::remove_file(broken.join("checkpoint-20/model.safetensors")).unwrap();
    check(
        &["--foundation", s(&foundation), "--checkpoints", s(&broken)],
        &["checkpoint-20", "step-20", "no weight file"],
    );
    std::fs::write(broken.join("checkpoint-20/pytorch_model.bin"), b"garbage").unwrap();
    check(
        &["--foundation", s(&foundation), "--checkpoints", s(&broken)],
        &["checkpoint-20", "pytorch_model.bin", "pickle"],
    );
    // No preprocessing anywhere and no foundation to take it from.
    check(&["--checkpoints", s(&run)], &["no preprocessor_config.json of its own", "--foundation", "--preprocess"]);
    // Two runs' checkpoints of different widths; a foundation of another architecture.
    let other = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/models/hf/vit_cls_tanh");
    let mixed = format!("{},{}", run.join("checkpoint-10").display(), other.display());
    check(
        &["--foundation", s(&foundation), "--checkpoints", &mixed],
        &["share one architecture", "width 16", "width 32"],
    );
    check(
        &["--foundation", s(&other), "--checkpoints", s(&run)],
        &["step-10 (preprocessing: the foundation model's)", "16x24"],
    );
    let with_pre = tmp.path().join("with-pre");
    copy_dir(&run, &with_pre);
    std::fs::copy(foundation.join(series::PREPROCESSOR), with_pre.join(series::PREPROCESSOR)).unwrap();
    let cnn = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/demo/assets/mnist-cnn.pt");
    check(
        &["--foundation", s(&cnn), "--checkpoints", s(&with_pre)],
        &["the foundation is a torchscript model", "vit models of width 32"],
    );
    // The same step twice; a checkpoint at the foundation's step 0; a run folder inside a list.
    let twin = tmp.path().join("twin/checkpoint-10");
    copy_dir(&run.join("checkpoint-10"), &twin);
    let list = format!("{},{}", run.join("checkpoint-10").display(), twin.display());
    check(&["--foundation", s(&foundation), "--checkpoints", &list], &["both step 10"]);
    let zero = tmp.path().join("zero/step-0");
    copy_dir(&run.join("checkpoint-10"), &zero);
    check(&["--foundation", s(&foundation), "--checkpoints", s(&zero)], &["step 0", "--foundation"]);
    let list = format!("{},{}", run.display(), twin.display());
    check(&["--foundation", s(&foundation), "--checkpoints", &list], &["a run folder", "give a run folder alone"]);
    // A store's series goes on only with all its steps.
    let store = tmp.path().join("store");
    ok(&mut ingest(&store, &["--foundation", s(&foundation), "--checkpoints", s(&run)]));
    let fewer = format!("{},{}", run.join("checkpoint-10").display(), run.join("checkpoint-20").display());
    let err = refused(&mut ingest(&store, &["--foundation", s(&foundation), "--checkpoints", &fewer]));
    assert!(err.contains("without step-30@30, step-40@40"), "{err}");
    assert_eq!(steps(&series_of(&store)), foundation_and(&STEPS), "kept");
    // Without --foundation, a store that has one starts the series with it; a new checkpoint joins the series.
    let one_more = tmp.path().join("more/checkpoint-50");
    copy_dir(&run.join("checkpoint-40"), &one_more);
    let all: Vec<String> = STEPS.iter().map(|s| run.join(format!("checkpoint-{s}")).display().to_string()).collect();
    let more = format!("{},{}", all.join(","), one_more.display());
    let pre = foundation.join(series::PREPROCESSOR);
    let (stdout, stderr) = ok(&mut ingest(&store, &["--checkpoints", &more, "--preprocess", s(&pre)]));
    assert!(stderr.contains(&format!("preprocessing of the checkpoints: --preprocess {}", pre.display())), "{stderr}");
    assert!(
        stdout.contains(&format!("space step-50: {DIGITS} embedded")) && stdout.contains("space step-10: 0 embedded")
    );
    let mut expected = foundation_and(&STEPS);
    expected.push(("step-50".into(), 50));
    let series = series_of(&store);
    assert_eq!(steps(&series), expected);
    assert_eq!(series.losses, trainer_losses(&one_more.join("trainer_state.json")));
}
