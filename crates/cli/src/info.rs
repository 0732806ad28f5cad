//! `torchlight info`: libtorch, devices and what a store holds.

use clap::Args;

use crate::StoreArg;

#[derive(Debug, Args)]
pub struct InfoArgs {
    #[command(flatten)]
    pub store: StoreArg,
    /// List every skipped record (by default the first 20).
    #[arg(long)]
    pub skipped: bool,
}
