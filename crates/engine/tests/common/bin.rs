//! The `torchlight` binary users run (no libtorch, the root package). `cargo test` at the repository
//! root builds it beside this package's `torchlight-engine`, which it hands ingest, analyze, info and demo to,
//! so tests go through the same two binaries a user does.
#![allow(dead_code)]

use std::path::PathBuf;

pub fn torchlight() -> PathBuf {
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_torchlight-engine")).with_file_name("torchlight");
    assert!(
        bin.is_file(),
        "{} is missing: run the tests from the repository root with `cargo test --release`, which builds both binaries",
        bin.display()
    );
    bin
}
