//! The engine's command line: the subcommands that need libtorch (ingest, analyze, info, demo). The clap
//! types, browse and export live in `torchlight_core::cli`; the light `torchlight` binary parses the command
//! line and hands these subcommands over to the `torchlight-engine` binary, which runs `main` below.

mod analyze;
mod demo;
mod info;
mod ingest;

use clap::Parser;
use color_eyre::eyre::Result;

pub use torchlight_core::cli::*;

pub fn main() -> Result<()> {
    crate::errors::install()?;
    let cli = Cli::parse();
    // Before runtime::init: a restarted process would load the CUDA libraries a second time.
    if matches!(cli.command, Command::Ingest(_) | Command::Analyze(_) | Command::Demo(_)) {
        crate::runtime::ensure_passive_openmp();
    }
    crate::runtime::init();
    match cli.command {
        Command::Ingest(args) => ingest::run(*args),
        Command::Analyze(args) => analyze::run(args),
        Command::Browse(args) => browse::run(args),
        Command::Export(args) => export::run(args),
        Command::Info(args) => info::run(args),
        Command::Demo(args) => demo::run(args),
    }
}
