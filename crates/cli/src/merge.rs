//! `torchlight merge`: shard stores joined into one.

use std::path::PathBuf;

use clap::Args;

use crate::StoreArg;

#[derive(Debug, Args)]
pub struct MergeArgs {
    /// The merged store (new, or one an interrupted merge of the same shards left: the merge continues).
    #[command(flatten)]
    pub store: StoreArg,
    /// The shard stores written by `torchlight ingest --shard I/N`, all N of them, in any order.
    #[arg(value_name = "SHARD", required = true)]
    pub shards: Vec<PathBuf>,
}
