//! torchlight's libtorch-free half: the store (the only module that knows the LMDB layout), the terminal
//! browser, export, and the command line. The `torchlight` binary built from this crate runs browse and export
//! itself and hands every other subcommand to `torchlight-engine` (the root package), so opening the browser
//! never pays for loading libtorch.

pub mod browse;
pub mod cli;
pub mod errors;
pub mod export;
pub mod npy;
pub mod store;
pub mod synth;
