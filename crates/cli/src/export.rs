//! `torchlight export`: embeddings as .npy, or a per-item table.

use std::path::PathBuf;

use clap::Args;

use crate::StoreArg;

#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub store: StoreArg,
    /// Output file: .npy with --embeddings; otherwise .csv, .parquet or .jsonl (a row per item).
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
    /// Write this space's embeddings as float32 [N, D] .npy in item-id order.
    #[arg(long, value_name = "SPACE")]
    pub embeddings: Option<String>,
    /// Also write the article's Renumics Spotlight column names.
    #[arg(long)]
    pub spotlight: bool,
}
