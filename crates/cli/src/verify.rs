//! `torchlight verify`: check a store against its checksums.

use clap::Args;

use crate::StoreArg;

#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub store: StoreArg,
}
