//! Arguments of the subcommands that the engine runs (they need libtorch). They are defined here so that
//! `torchlight --help` and argument errors come from the light binary; the engine parses the same command
//! line again with these same types.

use std::path::PathBuf;

use clap::Args;

use super::StoreArg;

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
    #[arg(long, value_parser = ["parquet", "hf", "imagefolder", "flat", "idx", "cifar", "csv"])]
    pub format: Option<String>,
    /// Split of a hub dataset.
    #[arg(long, default_value = "train")]
    pub split: String,
    /// Only the first N records of the source.
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// Label column (parquet, CSV).
    #[arg(long)]
    pub label_column: Option<String>,
    /// Image column (parquet, CSV).
    #[arg(long)]
    pub image_column: Option<String>,
    /// Embedding pooling for transformer models.
    #[arg(long, default_value = "cls", value_parser = ["cls", "mean", "pooler"])]
    pub pooling: String,
    /// auto (CUDA when libtorch sees it), cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Model precision; fp16 and bf16 only on CUDA.
    #[arg(long, default_value = "fp32", value_parser = ["fp32", "fp16", "bf16"])]
    pub precision: String,
    /// Images per model batch.
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// Decode/preprocess threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Skip the analysis after embedding (run `torchlight analyze` later).
    #[arg(long)]
    pub no_analyze: bool,
    /// Preprocessing JSON for TorchScript models (image_size, mean, std, resample, channels).
    #[arg(long, value_name = "FILE")]
    pub preprocess: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct AnalyzeArgs {
    #[command(flatten)]
    pub store: StoreArg,
    /// Only these spaces (default: all). Repeatable.
    #[arg(long = "space", value_name = "NAME")]
    pub spaces: Vec<String>,
    /// Neighbours per item for outlier scores and the browser.
    #[arg(long, default_value_t = 10)]
    pub k: usize,
    /// Cosine distance to the nearest neighbour under which an item is a near duplicate
    /// (the article's Annoy angular 0.3 is cosine 0.045).
    #[arg(long, default_value_t = 0.045)]
    pub duplicate_threshold: f32,
    /// auto, cpu, cuda or cuda:N for the kNN products.
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Trees of the arroy index (explicit, so builds are reproducible).
    #[arg(long, default_value_t = 50)]
    pub n_trees: usize,
    /// Random seed for the index and UMAP.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// UMAP neighbours.
    #[arg(long, default_value_t = 15)]
    pub umap_neighbors: usize,
    /// UMAP minimum distance.
    #[arg(long, default_value_t = 0.1)]
    pub umap_min_dist: f32,
    /// Skip UMAP (PCA only).
    #[arg(long)]
    pub no_umap: bool,
    /// Use the approximate arroy index instead of exact kNN (for very large stores).
    #[arg(long)]
    pub approximate: bool,
}

#[derive(Debug, Args)]
pub struct InfoArgs {
    #[command(flatten)]
    pub store: StoreArg,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    #[command(flatten)]
    pub store: StoreArg,
    /// Stop after printing a summary of the top outliers per space instead of opening the browser.
    #[arg(long)]
    pub no_browse: bool,
    /// auto, cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Outliers listed per space with --no-browse.
    #[arg(long, default_value_t = 10)]
    pub top: usize,
    /// Only the first N digits (classes are interleaved, so every class is in); for quick checks and tests.
    #[arg(long, value_name = "N", hide = true)]
    pub limit: Option<usize>,
    /// Where the embedded dataset and models are written (default: the platform cache dir's torchlight/demo).
    #[arg(long, value_name = "DIR", hide = true)]
    pub assets_dir: Option<PathBuf>,
}
