use clap::Args;
use color_eyre::eyre::Result;

use super::StoreArg;

#[derive(Debug, Args)]
pub struct DemoArgs {
    #[command(flatten)]
    pub store: StoreArg,
    /// Stop after printing a summary of the top outliers per space instead of opening the browser.
    #[arg(long)]
    pub no_browse: bool,
    /// auto, cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    pub device: String,
}

pub fn run(_args: DemoArgs) -> Result<()> {
    super::not_yet("demo", 6)
}
