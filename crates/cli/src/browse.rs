//! `torchlight browse`: the terminal browser over a store.

use clap::Args;

use crate::{Graphics, StoreArg};

#[derive(Debug, Args)]
pub struct BrowseArgs {
    #[command(flatten)]
    pub store: StoreArg,
    /// Terminal image protocol; auto detects it (halfblocks work everywhere, none shows text only).
    #[arg(long, value_enum, default_value_t = Graphics::Auto)]
    pub graphics: Graphics,
    /// How long to wait for the terminal to answer the graphics query, in milliseconds.
    #[arg(long, default_value_t = 500)]
    pub detect_timeout_ms: u64,
    /// Space shown first (default: the first one).
    #[arg(long)]
    pub space: Option<String>,
}
