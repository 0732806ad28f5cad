//! The `torchlight` binary itself: browse and export run without ever loading libtorch, and the subcommands
//! that need it are handed to `torchlight-engine`, with a clear error when that binary is missing. (Tests
//! that go through both binaries live in the root package's tests/.)

use std::process::{Command, Output};

fn light() -> Command {
    Command::new(env!("CARGO_BIN_EXE_torchlight"))
}

/// glibc's loader prints every library it loads under LD_DEBUG=libs.
fn loaded_libraries(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter_map(|l| l.split_once("calling init: ").map(|(_, lib)| lib.trim().to_string()))
        .collect()
}

#[test]
fn browse_and_export_never_load_libtorch() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-store");
    let browse =
        light().args(["browse", "--graphics", "none", "--store"]).arg(&missing).env("LD_DEBUG", "libs").output();
    let export = light()
        .args(["export", "-o"])
        .arg(dir.path().join("out.csv"))
        .arg("--store")
        .arg(&missing)
        .env("LD_DEBUG", "libs")
        .output();
    for (what, out) in [("browse", browse.unwrap()), ("export", export.unwrap())] {
        let libs = loaded_libraries(&out);
        assert!(libs.iter().any(|l| l.contains("libc.so")), "{what}: LD_DEBUG gave no library list: {libs:?}");
        assert!(!libs.iter().any(|l| l.contains("torch") || l.contains("c10")), "{what} loaded libtorch: {libs:?}");
        // A missing store is a clear error, not a crash.
        assert_eq!(out.status.code(), Some(1), "{what} on a missing store");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("no-store"), "{what}: the error does not name the store: {stderr}");
    }
}

#[test]
fn help_lists_every_subcommand_without_the_engine() {
    let out = light().arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for sub in ["ingest", "analyze", "browse", "export", "info", "demo"] {
        assert!(text.lines().any(|l| l.trim_start().starts_with(sub)), "--help lacks {sub}:\n{text}");
    }
}

#[test]
fn a_missing_engine_is_a_clear_error() {
    // A copy of the light binary alone in a directory, with nothing on PATH.
    let dir = tempfile::tempdir().unwrap();
    let lonely = dir.path().join("torchlight");
    std::fs::copy(env!("CARGO_BIN_EXE_torchlight"), &lonely).unwrap();
    let out = Command::new(&lonely).args(["info", "--store"]).arg(dir.path()).env("PATH", "").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("torchlight-engine was not found"), "{stderr}");
    // Argument errors still come from the light binary, before any hand-over.
    let out = Command::new(&lonely).args(["ingest", "--no-such-flag"]).env("PATH", "").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--no-such-flag"));
}
