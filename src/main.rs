//! `torchlight`, the command users run. Browse, export, verify and merge run here, in a process that never loads
//! libtorch; ingest, analyze, info and demo are handed to `torchlight-engine` by exec (same pid, terminal, signals
//! and exit status), after this binary has parsed the command line, so help and argument errors are instant too.

mod browse;
mod export;
mod merge;
mod verify;

use std::process::ExitCode;

use clap::Parser;
use color_eyre::eyre::Result;
use torchlight_cli::{Cli, Command, errors, exec};

fn main() -> ExitCode {
    errors::finish(run())
}

fn run() -> Result<()> {
    errors::install()?;
    let cli = Cli::parse();
    match cli.command {
        Command::Browse(args) => browse::run(args),
        Command::Export(args) => export::run(args),
        Command::Verify(args) => verify::run(args),
        Command::Merge(args) => merge::run(args),
        Command::Ingest(_) | Command::Analyze(_) | Command::Info(_) | Command::Demo(_) => {
            exec::sibling(exec::ENGINE, std::env::args_os().skip(1))
        }
    }
}
