//! `torchlight analyze`: neighbours, scores and projections of every space.

use clap::Args;

use crate::{Device, StoreArg, counts};

#[derive(Debug, Args)]
pub struct AnalyzeArgs {
    #[command(flatten)]
    pub store: StoreArg,
    /// Only these spaces (default: all). Repeatable.
    #[arg(long = "space", value_name = "NAME")]
    pub spaces: Vec<String>,
    /// Neighbours per item for outlier scores and the browser.
    #[arg(long, default_value_t = 10, value_parser = counts(1, 1000))]
    pub k: usize,
    /// Near duplicate: a neighbour closer than this fraction of the space's median nearest-neighbour
    /// distance (cleanlab Datalab's near_duplicate threshold). Exact duplicates always are.
    #[arg(long, default_value_t = 0.13, value_parser = fraction)]
    pub near_duplicate_threshold: f32,
    /// nn_flag: the nearest neighbour within this cosine distance (the article's Annoy angular 0.3 is
    /// cosine 0.045).
    #[arg(long, default_value_t = 0.045, value_parser = cosine_distance)]
    pub duplicate_threshold: f32,
    /// auto, cpu, cuda or cuda:N for the kNN products.
    #[arg(long, default_value_t = Device::Auto)]
    pub device: Device,
    /// Trees of the arroy index (explicit, so builds are reproducible).
    #[arg(long, default_value_t = 50, value_parser = counts(1, 1000))]
    pub n_trees: usize,
    /// Random seed for the index and UMAP.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// UMAP neighbours.
    #[arg(long, default_value_t = 15, value_parser = counts(2, 200))]
    pub umap_neighbors: usize,
    /// UMAP minimum distance.
    #[arg(long, default_value_t = 0.1, value_parser = min_dist)]
    pub umap_min_dist: f32,
    /// Skip UMAP (PCA only).
    #[arg(long)]
    pub no_umap: bool,
    /// Use the approximate arroy index instead of exact kNN (for very large stores).
    #[arg(long)]
    pub approximate: bool,
}

/// A cosine distance, 0 to 2.
fn cosine_distance(s: &str) -> Result<f32, String> {
    let v: f32 = s.parse().map_err(|_| format!("'{s}' is not a number"))?;
    if (0.0..=2.0).contains(&v) { Ok(v) } else { Err(format!("{v} is not a cosine distance (0 to 2)")) }
}

/// A non-negative multiple of the median nearest-neighbour distance.
fn fraction(s: &str) -> Result<f32, String> {
    let v: f32 = s.parse().map_err(|_| format!("'{s}' is not a number"))?;
    if v.is_finite() && v >= 0.0 { Ok(v) } else { Err(format!("{v} is not a non-negative number")) }
}

/// UMAP's minimum distance, 0 to 1 (its spread).
fn min_dist(s: &str) -> Result<f32, String> {
    let v: f32 = s.parse().map_err(|_| format!("'{s}' is not a number"))?;
    if (0.0..=1.0).contains(&v) { Ok(v) } else { Err(format!("{v} is outside 0 to 1")) }
}
