//! torchlight: embed an image dataset with a foundation and a fine-tuned model, score outliers,
//! near duplicates and label issues in each space, and triage them in the terminal.
//!
//! Pipeline: `source` -> `preprocess` -> `model` -> `store` -> `analysis` -> `browse` / `export`.

pub mod analysis;
pub mod browse;
pub mod cli;
pub mod demo;
pub mod errors;
pub mod export;
pub mod hub;
pub mod ingest;
pub mod model;
pub mod npy;
pub mod preprocess;
pub mod report;
pub mod runtime;
pub mod source;
pub mod store;
pub mod synth;
