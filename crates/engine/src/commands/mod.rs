//! The subcommands that need libtorch (ingest, analyze, info, demo). Their clap types live in
//! torchlight-cli; the `torchlight` binary parses the command line and execs `torchlight-engine`, which
//! runs `main` below.

mod analyze;
mod demo;
mod info;
mod ingest;
mod interrupt;

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use clap::Parser;
use color_eyre::eyre::Result;

use torchlight_cli::{Cli, Command, eout, eoutln, errors, exec};

pub fn main() -> Result<()> {
    errors::install()?;
    let cli = Cli::parse();
    if matches!(cli.command, Command::Ingest(_) | Command::Analyze(_) | Command::Demo(_)) {
        // Before runtime::init: a restarted process would load the CUDA libraries a second time.
        crate::runtime::ensure_passive_openmp();
        interrupt::install()?;
    }
    crate::runtime::init();
    match cli.command {
        Command::Ingest(args) => ingest::run(*args),
        Command::Analyze(args) => analyze::run(args),
        // Typed at the engine directly: hand them to the binary without libtorch.
        Command::Browse(_) | Command::Export(_) | Command::Verify(_) | Command::Merge(_) => {
            exec::sibling(exec::LIGHT, std::env::args_os().skip(1))
        }
        Command::Info(args) => info::run(args),
        Command::Demo(args) => demo::run(args),
    }
}

/// Progress of the analysis stages on stderr. On a terminal one line is redrawn (`stage done/total`) at most
/// five times a second; into a file or pipe a line is written when a stage starts, every 30 s, and when it is
/// done, so a long stage (arroy queries of a million items) is never silent.
pub(crate) struct StageProgress {
    tty: bool,
    last: Mutex<(String, Instant)>,
}

impl StageProgress {
    pub(crate) fn new() -> StageProgress {
        StageProgress { tty: std::io::stderr().is_terminal(), last: Mutex::new((String::new(), Instant::now())) }
    }

    pub(crate) fn report(&self, stage: &str, done: usize, total: usize) {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let every = if self.tty { Duration::from_millis(200) } else { Duration::from_secs(30) };
        let (new_stage, finished) = (last.0 != stage, done >= total);
        if !(new_stage || finished || last.1.elapsed() >= every) {
            return;
        }
        // On a terminal the line is cleared first (ESC [2K), so a shorter line never shows the end of a longer one.
        match (self.tty, finished) {
            (true, true) => eoutln!("\r\x1b[2K{stage} done ({total})"),
            (true, false) => eout!("\r\x1b[2K{stage} {done}/{total}"),
            (false, true) => eoutln!("{stage} done ({total})"),
            (false, false) => eoutln!("{stage} {done}/{total}"),
        }
        *last = (stage.to_string(), Instant::now());
    }
}

/// Whether SIGINT, SIGTERM or SIGHUP asked the running work to stop (polled between commit points).
pub(crate) fn stop_requested() -> bool {
    interrupt::requested().is_some()
}

/// The error that ends a command stopped by a signal: what was kept, and how to go on.
pub(crate) fn interrupted(what: String) -> color_eyre::eyre::Report {
    let signal = interrupt::requested().unwrap_or(libc::SIGINT);
    color_eyre::eyre::Report::new(errors::Interrupted { signal, what })
}
