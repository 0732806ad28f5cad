use std::time::Duration;

use clap::Args;
use color_eyre::eyre::{Result, WrapErr};

use super::StoreArg;

#[derive(Debug, Args)]
pub struct BrowseArgs {
    #[command(flatten)]
    pub store: StoreArg,
    /// Terminal image protocol; auto detects it (halfblocks work everywhere, none shows text only).
    #[arg(long, default_value = "auto", value_parser = ["auto", "kitty", "sixel", "iterm2", "halfblocks", "none"])]
    pub graphics: String,
    /// How long to wait for the terminal to answer the graphics query, in milliseconds.
    #[arg(long, default_value_t = 500)]
    pub detect_timeout_ms: u64,
    /// Space shown first (default: the first one).
    #[arg(long)]
    pub space: Option<String>,
}

pub fn run(args: BrowseArgs) -> Result<()> {
    let dir = args.store.dir()?;
    crate::browse::run(crate::browse::RunOptions {
        dir: dir.clone(),
        graphics: args.graphics,
        detect_timeout: Duration::from_millis(args.detect_timeout_ms),
        space: args.space,
    })
    .wrap_err_with(|| format!("browsing store {}", dir.display()))
}
