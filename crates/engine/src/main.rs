//! `torchlight-engine`: ingest, analyze, info and demo, with libtorch loaded. Users run `torchlight`, which
//! parses the command line, runs browse and export itself and execs this binary for the rest.

fn main() -> std::process::ExitCode {
    torchlight_cli::errors::finish(torchlight_engine::commands::main())
}
