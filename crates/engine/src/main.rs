//! `torchlight-engine`: ingest, analyze, info and demo, with libtorch loaded. Users run `torchlight`, which
//! parses the command line, runs browse and export itself and execs this binary for the rest.

fn main() -> color_eyre::Result<()> {
    torchlight_engine::commands::main()
}
