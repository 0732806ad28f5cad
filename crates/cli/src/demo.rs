//! `torchlight demo`: the whole job on the embedded digits.

use std::path::PathBuf;

use clap::Args;

use crate::{Device, StoreArg, counts, positive};

#[derive(Debug, Args)]
pub struct DemoArgs {
    #[command(flatten)]
    pub store: StoreArg,
    /// Stop after printing a summary of the top outliers per space instead of opening the browser.
    #[arg(long)]
    pub no_browse: bool,
    /// auto, cpu, cuda or cuda:N.
    #[arg(long, default_value_t = Device::Auto)]
    pub device: Device,
    /// Outliers listed per space with --no-browse.
    #[arg(long, default_value_t = 10, value_parser = counts(1, 100_000))]
    pub top: usize,
    /// Only the first N digits (classes are interleaved, so every class is in); for quick checks and tests.
    #[arg(long, value_name = "N", hide = true, value_parser = positive)]
    pub limit: Option<usize>,
    /// Where the embedded dataset and models are written (default: the platform cache dir's torchlight/demo).
    #[arg(long, value_name = "DIR", hide = true)]
    pub assets_dir: Option<PathBuf>,
}
