//! The hand-over between the two binaries: each finds the other in its own directory (cargo builds both
//! into one, `cargo install` puts both in one bin directory), else on PATH, and execs it in place.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;

use color_eyre::eyre::{Result, eyre};

/// The binary that links libtorch: ingest, analyze, info and demo.
pub const ENGINE: &str = "torchlight-engine";
/// The binary users run: browse and export, no libtorch.
pub const LIGHT: &str = "torchlight";

fn find(name: &str) -> Option<PathBuf> {
    let beside = std::env::current_exe().ok()?.parent()?.join(name);
    if beside.is_file() {
        return Some(beside);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(name)).find(|p| p.is_file())
}

/// Replaces this process with the binary `name` run with `args` (its argv[0] is `torchlight`, so its
/// messages read as the command the user typed). Returns only on failure.
pub fn sibling(name: &str, args: impl IntoIterator<Item = impl Into<OsString>>) -> Result<()> {
    let path = find(name).ok_or_else(|| {
        eyre!(
            "{name} was not found beside this binary or on PATH; both torchlight binaries belong together. \
             Build them with `cargo build --release` at the repository root (or install both with \
             `cargo install --path . && cargo install --path crates/engine`)"
        )
    })?;
    let mut cmd = std::process::Command::new(&path);
    cmd.arg0(LIGHT).args(args.into_iter().map(Into::into));
    // libgomp reads this once, when libtorch loads; setting it here spares the engine restarting itself for it.
    if name == ENGINE && std::env::var_os("OMP_WAIT_POLICY").is_none() {
        cmd.env("OMP_WAIT_POLICY", "PASSIVE");
    }
    let err = cmd.exec();
    Err(eyre!("could not start {}: {err}", path.display()))
}
