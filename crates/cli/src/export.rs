//! `torchlight export`: embeddings as .npy, or a per-item table.

use std::path::PathBuf;

use clap::Args;

use crate::StoreArg;

#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub store: StoreArg,
    /// Output file: with --embeddings .npy (float32 [N, D]) or .csv; otherwise .csv, .parquet or .jsonl (a row
    /// per item). Written beside the target and renamed into place, so a failed export leaves no partial file.
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
    /// Write this space's embeddings in item-id order instead of the table.
    #[arg(long, value_name = "SPACE")]
    pub embeddings: Option<String>,
    /// Also write the article's Renumics Spotlight column names.
    #[arg(long)]
    pub spotlight: bool,
}
