//! `ingest --checkpoints`: the checkpoints of a fine-tuning run found on disk, with their steps and the loss log.
//!
//! A Hugging Face Trainer output folder holds `checkpoint-<step>/` folders (config.json, model.safetensors, its
//! `trainer_state.json` and pickles: optimizer.pt, scheduler.pt, rng_state.pth, training_args.bin, which are never
//! opened here) and, when the script called `save_state`, a `trainer_state.json` of its own. The loss log is the
//! `log_history` entries with a `loss` of the run folder's `trainer_state.json` or of the last checkpoint's,
//! whichever reaches the later step. An explicit list names model directories or TorchScript files; their steps
//! come from `checkpoint-<N>` / `step-<N>` names, else from the list order (1, 2, ...).
//!
//! The models themselves are loaded by the ingest command like any other; each checkpoint becomes a space
//! `step-<N>` and the `Series` record (`torchlight_store::Series`) lists them, the foundation first at step 0.

use std::path::{Path, PathBuf};

use torchlight_store::{LossPoint, Series, SeriesStep};

/// Preprocessing files a checkpoint may carry.
pub const PREPROCESSOR: &str = "preprocessor_config.json";
pub const TRAINER_STATE: &str = "trainer_state.json";

#[derive(Debug, thiserror::Error)]
pub enum SeriesError {
    #[error("--checkpoints names nothing: give a Trainer output folder or a list A,B,C of checkpoints")]
    Empty,
    #[error("--checkpoints {0}: no such file or directory")]
    Missing(String),
    #[error(
        "--checkpoints {dir}: no checkpoint-<step> folder in it (an empty or unfinished run folder?); a single \
         model directory needs its config.json, a finished model alone goes to --finetuned"
    )]
    EmptyRun { dir: String },
    #[error(
        "--checkpoints {path}: a run folder (it holds checkpoint-<step> folders) among other checkpoints: give a \
         run folder alone, or list its checkpoints"
    )]
    RunInList { path: String },
    #[error(
        "--checkpoints {path}: not a model directory (no config.json) nor a TorchScript file; a checkpoint is a \
         folder with config.json and model.safetensors, or a .pt file"
    )]
    NotACheckpoint { path: String },
    #[error("--checkpoints: {first} and {second} are both step {step}: each step once")]
    SameStep { first: String, second: String, step: u64 },
    #[error("--checkpoints: {path} is step 0, the foundation's: the series starts with --foundation at step 0")]
    StepZero { path: String },
    #[error("{path}: {why}")]
    TrainerState { path: String, why: String },
}

/// One checkpoint of a series.
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    pub step: u64,
    /// A model directory (config.json + model.safetensors) or a TorchScript file.
    pub path: PathBuf,
}

impl Checkpoint {
    /// The space this checkpoint's embeddings go to.
    pub fn space(&self) -> String {
        space_name(self.step)
    }
}

pub fn space_name(step: u64) -> String {
    format!("step-{step}")
}

/// Where the steps of the checkpoints came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepsFrom {
    /// `checkpoint-<N>` / `step-<N>` names.
    Names,
    /// The list order, 1, 2, ... (some name gave no step).
    Order,
}

/// The checkpoints of `--checkpoints`, in step order, and the run's loss log.
#[derive(Debug, Clone)]
pub struct Checkpoints {
    pub checkpoints: Vec<Checkpoint>,
    /// The Trainer output folder, when one was given (or the folder the listed checkpoints share).
    pub run_dir: Option<PathBuf>,
    pub steps_from: StepsFrom,
    /// The trainer_state.json the losses come from, when there is one.
    pub loss_log: Option<PathBuf>,
    pub losses: Vec<LossPoint>,
}

/// The step in a `checkpoint-<N>` or `step-<N>` name (a file's without its extension).
pub fn step_of(path: &Path) -> Option<u64> {
    let name = if path.is_dir() { path.file_name() } else { path.file_stem() }?.to_str()?;
    let digits = name.strip_prefix("checkpoint-").or_else(|| name.strip_prefix("step-"))?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The `checkpoint-<N>` folders of a Trainer output folder, in step order (anything else in it, such as the
/// `tmp-checkpoint-<N>` of a save in progress or a final model, is not a checkpoint of the series).
fn run_folder_checkpoints(dir: &Path) -> Vec<Checkpoint> {
    let mut found: Vec<Checkpoint> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.is_dir() && p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("checkpoint-")))
                .filter_map(|path| step_of(&path).map(|step| Checkpoint { step, path }))
                .collect()
        })
        .unwrap_or_default();
    found.sort_by_key(|c| c.step);
    found
}

/// Finds the checkpoints `--checkpoints` names: one Trainer output folder, or a list of checkpoints.
pub fn find(args: &[String]) -> Result<Checkpoints, SeriesError> {
    let args: Vec<&String> = args.iter().filter(|a| !a.is_empty()).collect();
    if args.is_empty() {
        return Err(SeriesError::Empty);
    }
    for a in &args {
        if !Path::new(a.as_str()).exists() {
            return Err(SeriesError::Missing(a.to_string()));
        }
    }
    let is_run = |p: &Path| p.is_dir() && !run_folder_checkpoints(p).is_empty();
    if let [one] = args.as_slice() {
        let dir = Path::new(one.as_str());
        if is_run(dir) {
            let checkpoints = run_folder_checkpoints(dir);
            check_steps(&checkpoints)?;
            let (loss_log, losses) = loss_log(Some(dir), checkpoints.last())?;
            return Ok(Checkpoints {
                checkpoints,
                run_dir: Some(dir.to_path_buf()),
                steps_from: StepsFrom::Names,
                loss_log,
                losses,
            });
        }
        if dir.is_dir() && !dir.join("config.json").is_file() {
            return Err(SeriesError::EmptyRun { dir: one.to_string() });
        }
    }
    let paths: Vec<PathBuf> = args.iter().map(|a| PathBuf::from(a.as_str())).collect();
    for (p, a) in paths.iter().zip(&args) {
        if is_run(p) && !p.join("config.json").is_file() {
            return Err(SeriesError::RunInList { path: a.to_string() });
        }
        if p.is_dir() && !p.join("config.json").is_file() {
            return Err(SeriesError::NotACheckpoint { path: a.to_string() });
        }
    }
    let steps: Option<Vec<u64>> = paths.iter().map(|p| step_of(p)).collect();
    let (mut checkpoints, steps_from) = match steps {
        Some(steps) => (
            paths.iter().zip(steps).map(|(p, step)| Checkpoint { step, path: p.clone() }).collect::<Vec<_>>(),
            StepsFrom::Names,
        ),
        None => (
            paths.iter().enumerate().map(|(i, p)| Checkpoint { step: i as u64 + 1, path: p.clone() }).collect(),
            StepsFrom::Order,
        ),
    };
    checkpoints.sort_by_key(|c| c.step);
    check_steps(&checkpoints)?;
    // The folder the checkpoints share, where a Trainer keeps them.
    let parents: Vec<Option<PathBuf>> = paths.iter().map(|p| parent(p)).collect();
    let run_dir = parents[0].clone().filter(|first| parents.iter().all(|p| p.as_ref() == Some(first)));
    let (loss_log, losses) = match steps_from {
        // Steps counted by list order are no training steps: a loss log would not line up with them.
        StepsFrom::Order => (None, vec![]),
        StepsFrom::Names => loss_log(run_dir.as_deref(), checkpoints.last())?,
    };
    Ok(Checkpoints { checkpoints, run_dir, steps_from, loss_log, losses })
}

fn parent(p: &Path) -> Option<PathBuf> {
    let abs = std::fs::canonicalize(p).ok()?;
    abs.parent().map(Path::to_path_buf)
}

fn check_steps(checkpoints: &[Checkpoint]) -> Result<(), SeriesError> {
    if let Some(c) = checkpoints.iter().find(|c| c.step == 0) {
        return Err(SeriesError::StepZero { path: c.path.display().to_string() });
    }
    if let Some(w) = checkpoints.windows(2).find(|w| w[0].step == w[1].step) {
        return Err(SeriesError::SameStep {
            first: w[0].path.display().to_string(),
            second: w[1].path.display().to_string(),
            step: w[0].step,
        });
    }
    Ok(())
}

/// The loss log: of the run folder's trainer_state.json or the last checkpoint's, whichever reaches the later
/// step (the run folder's on a tie); none when neither exists.
fn loss_log(
    run_dir: Option<&Path>,
    last: Option<&Checkpoint>,
) -> Result<(Option<PathBuf>, Vec<LossPoint>), SeriesError> {
    let candidates =
        [run_dir.map(|d| d.join(TRAINER_STATE)), last.filter(|c| c.path.is_dir()).map(|c| c.path.join(TRAINER_STATE))];
    let mut best: Option<(u64, PathBuf, Vec<LossPoint>)> = None;
    for path in candidates.into_iter().flatten().filter(|p| p.is_file()) {
        let (global_step, losses) = read_trainer_state(&path)?;
        if best.as_ref().is_none_or(|(s, _, _)| global_step > *s) {
            best = Some((global_step, path, losses));
        }
    }
    Ok(best.map_or((None, vec![]), |(_, path, losses)| (Some(path), losses)))
}

/// A Trainer's `trainer_state.json`: its `global_step` (else the last logged step) and the `log_history` entries
/// that hold a training `loss`, in step order.
pub fn read_trainer_state(path: &Path) -> Result<(u64, Vec<LossPoint>), SeriesError> {
    let err = |why: String| SeriesError::TrainerState { path: path.display().to_string(), why };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| err(format!("not valid JSON: {e}")))?;
    let history = json
        .get("log_history")
        .and_then(|h| h.as_array())
        .ok_or_else(|| err("no log_history list: not a Trainer's state".into()))?;
    let mut losses = Vec::new();
    for entry in history {
        let Some(loss) = entry.get("loss") else { continue };
        let step = entry.get("step").and_then(|s| s.as_u64());
        match (step, loss.as_f64()) {
            (Some(step), Some(loss)) => losses.push(LossPoint { step, loss }),
            _ => return Err(err(format!("log_history entry {entry} has a loss but no whole step or numeric loss"))),
        }
    }
    losses.sort_by_key(|p| p.step);
    let global_step = json.get("global_step").and_then(|s| s.as_u64()).or(losses.last().map(|p| p.step)).unwrap_or(0);
    Ok((global_step, losses))
}

/// Where a checkpoint's preprocessing comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum PreprocessFrom {
    /// `--preprocess FILE`, for every model.
    Flag(PathBuf),
    /// Its own: preprocessor_config.json in the checkpoint folder, or the TorchScript file's JSON.
    Own(PathBuf),
    /// The run folder's preprocessor_config.json.
    RunDir(PathBuf),
    /// The foundation model's.
    Foundation,
    /// None anywhere: loading the checkpoint says what is missing.
    Nothing,
}

/// Where the checkpoint (or fine-tuned model) at `model` takes its preprocessing: `--preprocess`, else its own,
/// else the run folder's, else the foundation's (when there is a foundation).
pub fn preprocess_from(model: &Path, run_dir: Option<&Path>, flag: Option<&Path>, foundation: bool) -> PreprocessFrom {
    if let Some(f) = flag {
        return PreprocessFrom::Flag(f.to_path_buf());
    }
    let own = if model.is_dir() { model.join(PREPROCESSOR) } else { model.with_extension("json") };
    if own.is_file() {
        return PreprocessFrom::Own(own);
    }
    if let Some(run) = run_dir.map(|d| d.join(PREPROCESSOR)).filter(|p| p.is_file()) {
        return PreprocessFrom::RunDir(run);
    }
    if foundation { PreprocessFrom::Foundation } else { PreprocessFrom::Nothing }
}

impl std::fmt::Display for PreprocessFrom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PreprocessFrom::Flag(p) => write!(f, "--preprocess {}", p.display()),
            PreprocessFrom::Own(p) => write!(f, "its own {}", p.display()),
            PreprocessFrom::RunDir(p) => write!(f, "the run folder's {}", p.display()),
            PreprocessFrom::Foundation => write!(f, "the foundation model's"),
            PreprocessFrom::Nothing => write!(f, "none found"),
        }
    }
}

/// The series record: `foundation` (its space) at step 0, then each checkpoint's space; `finetuned` as in
/// `Series::finetuned`.
pub fn series(foundation: Option<&str>, found: &Checkpoints, finetuned: Option<String>) -> Series {
    let mut steps: Vec<SeriesStep> =
        foundation.map(|space| SeriesStep { space: space.to_string(), step: 0 }).into_iter().collect();
    steps.extend(found.checkpoints.iter().map(|c| SeriesStep { space: c.space(), step: c.step }));
    Series { steps, losses: found.losses.clone(), finetuned }
}
