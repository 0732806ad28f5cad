use std::time::Duration;

use color_eyre::eyre::{Result, WrapErr};
use torchlight_cli::{BrowseArgs, Graphics};
use torchlight_tui::preview::Choice;

pub fn run(args: BrowseArgs) -> Result<()> {
    let dir = args.store.dir()?;
    torchlight_tui::run(torchlight_tui::RunOptions {
        dir: dir.clone(),
        graphics: match args.graphics {
            Graphics::Auto => Choice::Auto,
            Graphics::Kitty => Choice::Kitty,
            Graphics::Sixel => Choice::Sixel,
            Graphics::Iterm2 => Choice::Iterm2,
            Graphics::Halfblocks => Choice::Halfblocks,
            Graphics::None => Choice::None,
        },
        detect_timeout: Duration::from_millis(args.detect_timeout_ms),
        space: args.space,
    })
    .wrap_err_with(|| format!("browsing store {}", dir.display()))
}
