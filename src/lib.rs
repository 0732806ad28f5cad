//! torchlight: embed an image dataset with a foundation and a fine-tuned model, score outliers,
//! near duplicates and label issues in each space, and triage them in the terminal.
//!
//! Pipeline: `source` -> `preprocess` -> `model` -> `store` -> `analysis` -> `browse` / `export`.

// The libtorch-free half lives in core/ (package torchlight-core) so the `torchlight` binary never loads
// libtorch; re-exported here so the pipeline reads as one crate.
pub use torchlight_core::{browse, errors, export, npy, store, synth};

pub mod analysis;
pub mod cli;
pub mod demo;
pub mod hub;
pub mod ingest;
pub mod model;
pub mod preprocess;
pub mod report;
pub mod runtime;
pub mod source;
