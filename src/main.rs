//! `torchlight-engine`: every subcommand, with libtorch loaded. Users run `torchlight` (core/src/main.rs), which
//! runs browse and export itself and execs this binary for ingest, analyze, info and demo.

fn main() -> color_eyre::Result<()> {
    torchlight::cli::main()
}
