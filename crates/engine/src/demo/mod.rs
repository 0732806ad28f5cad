//! The embedded demo: 10,000 MNIST digits, EfficientNet-Lite0 (ImageNet) as the foundation model and an MNIST
//! CNN as the fine-tuned model, and a checkpoint series (a small CNN trained on the digits, kept at six steps
//! with its loss log), all compiled into the binary so that `torchlight demo` works offline on a fresh clone.
//! `src/demo/assets/make_assets.py` and `make_series.py` regenerate the files; `assets/CREDITS.md` lists sources
//! and licences.

pub mod summary;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use torchlight_store::Series;

/// One embedded file: its name in the cache directory and its bytes.
#[derive(Debug, Clone, Copy)]
pub struct Asset {
    pub name: &'static str,
    pub bytes: &'static [u8],
}

macro_rules! asset {
    ($name:literal) => {
        Asset { name: $name, bytes: include_bytes!(concat!("assets/", $name)) }
    };
}

pub const IMAGES: Asset = asset!("mnist-digits-images-idx3-ubyte.gz");
pub const LABELS: Asset = asset!("mnist-digits-labels-idx1-ubyte.gz");
pub const FOUNDATION_MODEL: Asset = asset!("efficientnet-lite0.pt");
pub const FOUNDATION_PREPROCESS: Asset = asset!("efficientnet-lite0.json");
pub const FINETUNED_MODEL: Asset = asset!("mnist-cnn.pt");
pub const FINETUNED_PREPROCESS: Asset = asset!("mnist-cnn.json");
pub const CREDITS: Asset = asset!("CREDITS.md");
/// The checkpoints of the series in step order, each a TorchScript file `step-<N>.pt` whose stem is its space,
/// with its preprocessing JSON.
pub const CHECKPOINTS: [(Asset, Asset); 6] = [
    (asset!("step-0.pt"), asset!("step-0.json")),
    (asset!("step-25.pt"), asset!("step-25.json")),
    (asset!("step-50.pt"), asset!("step-50.json")),
    (asset!("step-100.pt"), asset!("step-100.json")),
    (asset!("step-200.pt"), asset!("step-200.json")),
    (asset!("step-400.pt"), asset!("step-400.json")),
];
/// The series record as the store holds it: the checkpoints' spaces in step order and the training loss log.
pub const SERIES: Asset = asset!("series.json");

const SINGLE: [Asset; 8] =
    [IMAGES, LABELS, FOUNDATION_MODEL, FOUNDATION_PREPROCESS, FINETUNED_MODEL, FINETUNED_PREPROCESS, CREDITS, SERIES];

/// Every embedded file.
pub fn all() -> impl Iterator<Item = Asset> {
    SINGLE.into_iter().chain(CHECKPOINTS.into_iter().flat_map(|(model, preprocess)| [model, preprocess]))
}

/// The space a checkpoint's embeddings go to: its file stem (`step-<N>`).
pub fn checkpoint_space(model: Asset) -> &'static str {
    model.name.strip_suffix(".pt").unwrap_or(model.name)
}

/// The series record the demo writes to its store.
pub fn series() -> Result<Series, DemoError> {
    serde_json::from_slice(SERIES.bytes).map_err(DemoError::Series)
}

/// Number of digits in the embedded dataset.
pub const DIGITS: usize = 10_000;
/// Space names the demo ingests under (those of `ingest --foundation` and `--finetuned`).
pub const FOUNDATION_SPACE: &str = "foundation";
pub const FINETUNED_SPACE: &str = "finetuned";

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("no home directory to put the demo files in: pass --store DIR and set XDG_CACHE_HOME")]
    NoHome,
    #[error("cannot write the demo file {path}: {source} (is the directory writable and the disk not full?)")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("the embedded series.json is not a series record: {0} (regenerate it with make_series.py)")]
    Series(serde_json::Error),
}

/// Where the embedded files are written: the platform cache directory's torchlight/demo
/// (e.g. ~/.cache/torchlight/demo).
pub fn default_cache_dir() -> Result<PathBuf, DemoError> {
    directories::ProjectDirs::from("", "", "torchlight").map(|d| d.cache_dir().join("demo")).ok_or(DemoError::NoHome)
}

/// Paths of the demo files on disk.
#[derive(Debug, Clone)]
pub struct DemoFiles {
    pub dir: PathBuf,
    pub images: PathBuf,
    pub labels: PathBuf,
    /// TorchScript; its preprocessing JSON lies beside it (same stem, .json).
    pub foundation_model: PathBuf,
    pub finetuned_model: PathBuf,
    /// The series' TorchScript checkpoints as (space, path), in step order.
    pub checkpoints: Vec<(String, PathBuf)>,
}

/// Writes the embedded files into `dir` unless an identical copy is already there, and returns their paths.
/// Files are written to a temporary name and renamed, so an interrupted run never leaves a truncated model.
pub fn materialize(dir: &Path) -> Result<DemoFiles, DemoError> {
    fs::create_dir_all(dir).map_err(|source| DemoError::Write { path: dir.to_path_buf(), source })?;
    for asset in all() {
        let path = dir.join(asset.name);
        if fs::read(&path).is_ok_and(|on_disk| on_disk == asset.bytes) {
            continue;
        }
        let tmp = dir.join(format!(".{}.tmp", asset.name));
        let write = || -> std::io::Result<()> {
            let mut f = fs::File::create(&tmp)?;
            f.write_all(asset.bytes)?;
            f.sync_all()?;
            fs::rename(&tmp, &path)
        };
        write().map_err(|source| DemoError::Write { path: path.clone(), source })?;
    }
    Ok(DemoFiles {
        dir: dir.to_path_buf(),
        images: dir.join(IMAGES.name),
        labels: dir.join(LABELS.name),
        foundation_model: dir.join(FOUNDATION_MODEL.name),
        finetuned_model: dir.join(FINETUNED_MODEL.name),
        checkpoints: CHECKPOINTS.iter().map(|(m, _)| (checkpoint_space(*m).to_string(), dir.join(m.name))).collect(),
    })
}
