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
    /// Also write the article's dataframe for Renumics Spotlight (a .parquet output only): `image`, `nn_image`,
    /// `label_str`, `embedding_ft`, `embedding.foundation`, `outlier_score_ft`, `outlier_score_found`, `nn_id`,
    /// `nn_distance`, `nn_flag`. An image cell is the file's path where the item is an image file, else its PNG
    /// thumbnail from the store (the whole image up to 96 pixels a side, a 96-pixel preview beyond).
    #[arg(long)]
    pub spotlight: bool,
    /// Leave out, rather than refuse, what fails its checksum (see `torchlight verify`): items whose record (or
    /// embedding row or thumbnail, where the export writes them) is damaged, and damaged analysis columns. The
    /// output says how many and which.
    #[arg(long)]
    pub skip_damaged: bool,
}
