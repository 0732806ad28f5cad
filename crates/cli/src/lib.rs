//! The command line both binaries parse: clap types for every subcommand (one file each, no logic), error
//! reporting, exit codes and output that survives a closed pipe. `torchlight` parses it first, so help and argument errors never wait for
//! libtorch; `torchlight-engine` parses the same command line again with the same types.

mod analyze;
mod browse;
mod choices;
mod demo;
pub mod errors;
pub mod exec;
mod export;
mod info;
mod ingest;
mod merge;
pub mod output;
mod verify;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use color_eyre::eyre::{Result, eyre};

pub use analyze::AnalyzeArgs;
pub use browse::BrowseArgs;
pub use choices::{Device, Format, Graphics, Pooling, Precision};
pub use demo::DemoArgs;
pub use export::ExportArgs;
pub use info::InfoArgs;
pub use ingest::{IngestArgs, ShardArg};
pub use merge::MergeArgs;
pub use verify::VerifyArgs;

/// torchlight: a terminal explorer for image datasets. Embed a dataset with a foundation model and a
/// fine-tuned model, score outliers, near duplicates and label issues in each space, and triage them
/// with the keyboard, over plain SSH.
#[derive(Debug, Parser)]
#[command(name = "torchlight", version, propagate_version = true, max_term_width = 100)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Embed a dataset with one or more models into a store (then analyse it).
    Ingest(Box<IngestArgs>),
    /// Recompute neighbours, outlier, duplicate and label scores and projections of a store.
    Analyze(AnalyzeArgs),
    /// Triage a store in the terminal: sort, filter, look at images and neighbours, tag.
    Browse(BrowseArgs),
    /// Write embeddings (.npy) or a per-item table of scores and tags (.csv, .parquet, .jsonl).
    Export(ExportArgs),
    /// Show libtorch, devices, and what a store holds.
    Info(InfoArgs),
    /// Check every record of a store against its checksum and name what is damaged.
    Verify(VerifyArgs),
    /// Join the shard stores of `ingest --shard I/N` into one store, equal to a whole ingest.
    Merge(MergeArgs),
    /// Run the whole job on the embedded demo: MNIST digits, EfficientNet-Lite0 and an MNIST CNN.
    Demo(DemoArgs),
}

/// `--store DIR`, shared by every subcommand.
#[derive(Debug, Clone, Args)]
pub struct StoreArg {
    /// Store directory (an LMDB environment). Default: the platform data directory's
    /// torchlight/stores/default (e.g. ~/.local/share/torchlight/stores/default).
    #[arg(long, value_name = "DIR", env = "TORCHLIGHT_STORE", global = false)]
    pub store: Option<PathBuf>,
}

impl StoreArg {
    pub fn dir(&self) -> Result<PathBuf> {
        match &self.store {
            Some(dir) => Ok(dir.clone()),
            None => default_store_dir(),
        }
    }
}

/// A whole number from `min` to `max`; out of range is a usage error that gives the range.
fn counts(min: usize, max: usize) -> clap::builder::RangedU64ValueParser<usize> {
    clap::builder::RangedU64ValueParser::new().range(min as u64..=max as u64)
}

/// A whole number of at least 1.
fn positive(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("'{s}' is not a whole number")),
    }
}

pub fn default_store_dir() -> Result<PathBuf> {
    let dirs = directories::ProjectDirs::from("", "", "torchlight")
        .ok_or_else(|| eyre!("no home directory found for the default store: pass --store DIR"))?;
    Ok(dirs.data_dir().join("stores").join("default"))
}
