//! `torchlight analyze`: neighbours, scores and projections of every space.

use clap::Args;

use crate::StoreArg;

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
