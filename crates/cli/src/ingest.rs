//! `torchlight ingest`: embed a dataset into a store.

use std::path::PathBuf;

use clap::Args;

use crate::{Device, Format, Pooling, Precision, StoreArg, counts, positive};

#[derive(Debug, Args)]
pub struct IngestArgs {
    /// Dataset: a parquet file or directory, `hf:NAME[:CONFIG]`, an ImageFolder (DIR/<class>/<image>),
    /// a flat folder of images, IDX files (MNIST family), a CIFAR binary directory, or a CSV manifest.
    pub source: String,
    #[command(flatten)]
    pub store: StoreArg,
    /// Foundation model (space "foundation"): hub id, local checkpoint directory, or TorchScript .pt.
    #[arg(long, value_name = "MODEL")]
    pub foundation: Option<String>,
    /// Fine-tuned model (space "finetuned"): hub id, local checkpoint directory, or TorchScript .pt.
    #[arg(long, value_name = "MODEL")]
    pub finetuned: Option<String>,
    /// More models as NAME=MODEL; NAME becomes the embedding space. Repeatable.
    #[arg(long = "model", value_name = "NAME=MODEL")]
    pub models: Vec<String>,
    /// Precomputed embeddings as NAME=FILE (.npy float32/float64 [N, D], or parquet list column). Repeatable.
    #[arg(long = "embeddings", value_name = "NAME=FILE")]
    pub embeddings: Vec<String>,
    /// Force the dataset format instead of detecting it.
    #[arg(long)]
    pub format: Option<Format>,
    /// Split of a hub dataset.
    #[arg(long, default_value = "train")]
    pub split: String,
    /// Only the first N records of the source.
    #[arg(long, value_name = "N", value_parser = positive)]
    pub limit: Option<usize>,
    /// Label column (parquet, CSV).
    #[arg(long)]
    pub label_column: Option<String>,
    /// Image column (parquet, CSV).
    #[arg(long)]
    pub image_column: Option<String>,
    /// Embedding pooling for transformer models.
    #[arg(long, value_enum, default_value_t = Pooling::Cls)]
    pub pooling: Pooling,
    /// auto (CUDA when libtorch sees it), cpu, cuda or cuda:N.
    #[arg(long, default_value_t = Device::Auto)]
    pub device: Device,
    /// Model precision; fp16 and bf16 only on CUDA.
    #[arg(long, value_enum, default_value_t = Precision::Fp32)]
    pub precision: Precision,
    /// Images per model batch.
    #[arg(long, default_value_t = 32, value_parser = counts(1, 65_536))]
    pub batch_size: usize,
    /// Decode/preprocess threads (default: all cores).
    #[arg(long, value_parser = counts(1, 1024))]
    pub threads: Option<usize>,
    /// Skip the analysis after embedding (run `torchlight analyze` later).
    #[arg(long)]
    pub no_analyze: bool,
    /// Preprocessing JSON for TorchScript models (image_size, mean, std, resample, channels).
    #[arg(long, value_name = "FILE")]
    pub preprocess: Option<PathBuf>,
}
