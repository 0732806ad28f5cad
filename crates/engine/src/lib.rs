//! torchlight's engine, the half that links libtorch: dataset sources, preprocessing, models, the ingest
//! pipeline, the analysis and the demo. Its binary `torchlight-engine` runs ingest, analyze, info and demo
//! for the `torchlight` command.
//!
//! Pipeline: `source` -> `preprocess` -> `model` -> store (torchlight-store) -> `analysis`.

pub mod analysis;
pub mod commands;
pub mod demo;
pub mod hub;
pub mod ingest;
pub mod model;
pub mod preprocess;
pub mod report;
pub mod runtime;
pub mod source;
