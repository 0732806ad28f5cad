//! `torchlight ingest`: embed a dataset into a store.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

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
    /// The checkpoints of a fine-tuning run, each a space `step-<N>`: a Hugging Face Trainer output folder (its
    /// checkpoint-<N>/ folders, and the loss log of its trainer_state.json), or a list A,B,C of model
    /// directories or TorchScript files (steps from checkpoint-<N> / step-<N> names, else 1, 2, ...). The
    /// foundation is step 0, the last checkpoint the fine-tuned model unless --finetuned names another.
    #[arg(long, value_name = "RUN_DIR|A,B,...", value_delimiter = ',')]
    pub checkpoints: Vec<String>,
    /// More models as NAME=MODEL; NAME becomes the embedding space. Repeatable.
    #[arg(long = "model", value_name = "NAME=MODEL")]
    pub models: Vec<String>,
    /// Precomputed embeddings as NAME=FILE (.npy float32/float64 [N, D], or parquet list column). Repeatable.
    #[arg(long = "embeddings", value_name = "NAME=FILE")]
    pub embeddings: Vec<String>,
    /// Embeddings stored in the dataset itself as NAME=COLUMN: a list column (float32/float64/float16, one
    /// length) of a parquet or hf: source, read in record order across all its files; COLUMN is a top-level
    /// name and may hold dots (`foundation=embedding.foundation`). Repeatable.
    #[arg(long = "embedding-column", value_name = "NAME=COLUMN")]
    pub embedding_columns: Vec<String>,
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
    /// Open the files a CSV manifest names outside its own folder (`../x.png`, absolute paths elsewhere,
    /// symlinks leading out). Without it they are skipped unopened, with one warning saying how many.
    #[arg(long)]
    pub allow_outside_paths: bool,
    /// Embedding pooling for transformer models, for every model without its own --pooling-of.
    #[arg(long, value_enum, default_value_t = Pooling::Cls)]
    pub pooling: Pooling,
    /// One space's pooling as NAME=POOLING, NAME being foundation, finetuned, a --model NAME or a checkpoint's
    /// step-<N>: e.g. `--pooling first --pooling-of foundation=cls` (pooled foundation, fine-tuned first). A flag
    /// of its own so that no model id or path (org/name@rev, C:\models\vit) is ever split for a pooling.
    /// Repeatable.
    #[arg(long = "pooling-of", value_name = "NAME=POOLING", value_parser = space_pooling)]
    pub pooling_of: Vec<(String, Pooling)>,
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
    /// Ingest only part I of N (I from 0) of the records into this --store, for one task of a job array; join
    /// the N shard stores with `torchlight merge`. `auto` takes I and N from a Slurm job array
    /// (SLURM_ARRAY_TASK_ID, SLURM_ARRAY_TASK_COUNT), `auto/N` takes I from a Kubernetes Indexed Job
    /// (JOB_COMPLETION_INDEX). No analysis: analyze the merged store.
    #[arg(long, value_name = "I/N|auto|auto/N", value_parser = shard)]
    pub shard: Option<ShardArg>,
}

/// `--shard`: a part given as I/N, or read from a job array's environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardArg {
    Index {
        index: u32,
        count: u32,
    },
    /// From the job array; `count` checks (Slurm) or gives (Kubernetes) the number of shards.
    Auto {
        count: Option<u32>,
    },
}

fn shard(s: &str) -> Result<ShardArg, String> {
    let usage = "expected I/N (I from 0 to N-1), auto (a Slurm job array) or auto/N (a Kubernetes Indexed Job)";
    let number = |t: &str| t.parse::<u32>().map_err(|_| format!("'{t}' is not a whole number: {usage}"));
    let (index, count) = s.split_once('/').map_or((s, None), |(i, n)| (i, Some(n)));
    let count = count.map(number).transpose()?;
    if count == Some(0) {
        return Err(format!("N must be at least 1: {usage}"));
    }
    if index == "auto" {
        return Ok(ShardArg::Auto { count });
    }
    let (index, count) = (number(index)?, count.ok_or_else(|| usage.to_string())?);
    if index >= count {
        return Err(format!("shard {index} of {count} does not exist: I goes from 0 to {}", count - 1));
    }
    Ok(ShardArg::Index { index, count })
}

/// `NAME=POOLING` of `--pooling-of`; whether NAME is a model space is checked once the models are known.
fn space_pooling(s: &str) -> Result<(String, Pooling), String> {
    let values = || Pooling::value_variants().iter().map(Pooling::to_string).collect::<Vec<_>>().join(", ");
    let (name, pooling) =
        s.split_once('=').ok_or_else(|| format!("expected NAME=POOLING, POOLING one of {}", values()))?;
    if name.is_empty() {
        return Err("expected NAME=POOLING: the space NAME is empty".into());
    }
    let pooling = Pooling::from_str(pooling, false)
        .map_err(|_| format!("unknown pooling '{pooling}': use one of {}", values()))?;
    Ok((name.to_string(), pooling))
}
