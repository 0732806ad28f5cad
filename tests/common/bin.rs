//! The two binaries a user runs. `cargo test --release` at the repository root builds both (the workspace's
//! default members), so these tests go through exactly what a user runs.
#![allow(dead_code)]

use std::path::PathBuf;

pub fn torchlight() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_torchlight"))
}

/// `torchlight-engine`, beside `torchlight`.
pub fn engine() -> PathBuf {
    let bin = torchlight().with_file_name("torchlight-engine");
    assert!(
        bin.is_file(),
        "{} is missing: run the tests from the repository root with `cargo test --release`, which builds both binaries",
        bin.display()
    );
    bin
}
