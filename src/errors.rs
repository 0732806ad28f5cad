//! Error reporting: color-eyre for the binary, and a panic hook that restores the terminal first, so a
//! crash inside the browser never leaves the user's shell in raw mode on the alternate screen.

use color_eyre::eyre::Result;

pub fn install() -> Result<()> {
    let (panic_hook, eyre_hook) = color_eyre::config::HookBuilder::default()
        .display_env_section(false)
        .display_location_section(false)
        .into_hooks();
    eyre_hook.install()?;
    let panic_hook = panic_hook.into_panic_hook();
    std::panic::set_hook(Box::new(move |info| {
        restore_terminal();
        panic_hook(info);
    }));
    Ok(())
}

/// Leaves raw mode and the alternate screen; harmless when neither is active.
pub fn restore_terminal() {
    use crossterm::{cursor, event, execute, terminal};
    if terminal::is_raw_mode_enabled().unwrap_or(false) {
        let _ = terminal::disable_raw_mode();
        let _ = execute!(std::io::stdout(), event::DisableMouseCapture, terminal::LeaveAlternateScreen, cursor::Show);
    }
}
