//! Error reporting for both binaries: color-eyre for errors, and a panic hook that stays quiet for a
//! dependency's panic that the caller turns into an error (`contained`).

use color_eyre::eyre::Result;

pub fn install() -> Result<()> {
    let (panic_hook, eyre_hook) = color_eyre::config::HookBuilder::default()
        .display_env_section(false)
        .display_location_section(false)
        .into_hooks();
    eyre_hook.install()?;
    let panic_hook = panic_hook.into_panic_hook();
    std::panic::set_hook(Box::new(move |info| {
        // A dependency's panic that a caller turns into an error (see `contained`) is not a crash to report.
        if CONTAINED.get() {
            return;
        }
        panic_hook(info);
    }));
    Ok(())
}

thread_local! {
    static CONTAINED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f`, catching a panic from inside it (a dependency's assert on corrupt input) without the panic hook's
/// crash report; the caller turns `Err(message)` into an error that names the input.
pub fn contained<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    let outer = CONTAINED.replace(true);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    CONTAINED.set(outer);
    result.map_err(|payload| {
        payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_default()
    })
}
