//! The embedded demo: 10,000 MNIST digits, EfficientNet-Lite0 (ImageNet) as the foundation model and an MNIST
//! CNN as the fine-tuned model, all compiled into the binary so that `torchlight demo` works offline on a fresh
//! clone. `src/demo/assets/make_assets.py` regenerates the files; `assets/CREDITS.md` lists sources and licences.

pub mod summary;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

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

pub const ALL: [Asset; 7] =
    [IMAGES, LABELS, FOUNDATION_MODEL, FOUNDATION_PREPROCESS, FINETUNED_MODEL, FINETUNED_PREPROCESS, CREDITS];

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
}

/// Writes the embedded files into `dir` unless an identical copy is already there, and returns their paths.
/// Files are written to a temporary name and renamed, so an interrupted run never leaves a truncated model.
pub fn materialize(dir: &Path) -> Result<DemoFiles, DemoError> {
    fs::create_dir_all(dir).map_err(|source| DemoError::Write { path: dir.to_path_buf(), source })?;
    for asset in ALL {
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
    })
}
