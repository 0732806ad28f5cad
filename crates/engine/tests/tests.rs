//! The engine's integration tests, one module per area, in one binary (each test binary links libtorch).

mod common;

mod analysis;
mod checkpoints;
mod demo;
mod drift;
mod export;
mod hub;
mod ingest;
mod knn_screen;
mod models;
mod preprocess;
mod projection;
mod shard;
mod sources;
mod tch_smoke;
