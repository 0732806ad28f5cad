//! Analysis of stored embedding spaces: exact kNN, cleanlab outlier scores, near duplicates, label
//! issues, 2-D projections and the arroy index.

pub mod pca;
pub mod procrustes;
pub mod umap;
