//! `torchlight`, the command users run. Browse and export run here, in a process that never loads libtorch;
//! ingest, analyze, info and demo are handed to `torchlight-engine` by exec (same pid, terminal, signals and
//! exit status), after this binary has parsed the command line, so help and argument errors are instant too.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;

use clap::Parser;
use color_eyre::eyre::{Result, eyre};
use torchlight_core::cli::{self, Cli, Command};

const ENGINE: &str = "torchlight-engine";

fn main() -> Result<()> {
    torchlight_core::errors::install()?;
    let cli = Cli::parse();
    match cli.command {
        Command::Browse(args) => cli::browse::run(args),
        Command::Export(args) => cli::export::run(args),
        Command::Ingest(_) | Command::Analyze(_) | Command::Info(_) | Command::Demo(_) => exec_engine(),
    }
}

/// The engine beside this binary (cargo builds both into one directory, and `cargo install` puts both in one
/// bin directory), else the first one on PATH.
fn engine_path() -> Option<PathBuf> {
    let beside = std::env::current_exe().ok()?.parent()?.join(ENGINE);
    if beside.is_file() {
        return Some(beside);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(ENGINE)).find(|p| p.is_file())
}

fn exec_engine() -> Result<()> {
    let engine = engine_path().ok_or_else(|| {
        eyre!(
            "{ENGINE} was not found beside this binary or on PATH; ingest, analyze, info and demo run in it. \
             Build it with `cargo build --release` at the repository root (or install it with `cargo install --path .`)"
        )
    })?;
    let mut cmd = std::process::Command::new(&engine);
    cmd.arg0("torchlight").args(std::env::args_os().skip(1));
    // libgomp reads this once, when libtorch loads; setting it here spares the engine restarting itself for it.
    if std::env::var_os("OMP_WAIT_POLICY").is_none() {
        cmd.env("OMP_WAIT_POLICY", "PASSIVE");
    }
    let err = cmd.exec();
    Err(eyre!("could not start {}: {err}", engine.display()))
}
