//! How both binaries end: an error is printed once (in colour only on a terminal that wants it), a
//! signal that stopped the work cleanly gives 128 + its number, a closed output pipe ends quietly, and a
//! dependency's panic that a caller turns into an error (`contained`) is not reported as a crash.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use color_eyre::config::{HookBuilder, Theme};
use color_eyre::eyre::{Report, Result};

/// Installs the error and panic reports. Colour only when stderr is a terminal, `NO_COLOR` is unset and
/// `TERM` is not `dumb`.
pub fn install() -> Result<()> {
    let mut builder = HookBuilder::default().display_env_section(false).display_location_section(false);
    if !colour_wanted() {
        builder = builder.theme(Theme::new());
    }
    let (panic_hook, eyre_hook) = builder.into_hooks();
    eyre_hook.install()?;
    let panic_hook = panic_hook.into_panic_hook();
    std::panic::set_hook(Box::new(move |info| {
        if CONTAINED.get() {
            return;
        }
        panic_hook(info);
    }));
    Ok(())
}

fn colour_wanted() -> bool {
    std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        && std::env::var_os("TERM").is_none_or(|t| t != "dumb")
}

/// A command stopped by SIGINT, SIGTERM or SIGHUP after keeping everything it had committed. `what` says
/// what was kept and how to go on; the process exits with 128 + `signal`.
#[derive(Debug)]
pub struct Interrupted {
    pub signal: i32,
    pub what: String,
}

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "interrupted: {}", self.what)
    }
}

impl std::error::Error for Interrupted {}

/// Ends the process for `result`: 0 on success or when the output pipe was closed (as `rg` does), 128 +
/// signal after an interruption, 1 for any other error. Writing the message never panics.
pub fn finish(result: Result<()>) -> ExitCode {
    let Err(report) = result else { return ExitCode::SUCCESS };
    if let Some(stop) = report.downcast_ref::<Interrupted>() {
        let _ = writeln!(std::io::stderr(), "{stop}");
        return ExitCode::from((128 + stop.signal).clamp(0, 255) as u8);
    }
    if closed_pipe(&report) {
        return ExitCode::SUCCESS;
    }
    let _ = writeln!(std::io::stderr(), "Error: {report:?}");
    ExitCode::FAILURE
}

fn closed_pipe(report: &Report) -> bool {
    report
        .chain()
        .any(|cause| cause.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe))
}

thread_local! {
    static CONTAINED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// A panic inside a dependency, with its message.
#[derive(Debug)]
pub struct Panicked(pub String);

impl std::fmt::Display for Panicked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Panicked {}

/// Runs `f`, catching a panic from inside it (a dependency's assert on corrupt input) without the panic
/// hook's crash report; the caller turns the error into one that names the input.
pub fn contained<T>(f: impl FnOnce() -> T) -> Result<T, Panicked> {
    let outer = CONTAINED.replace(true);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    CONTAINED.set(outer);
    result.map_err(|payload| {
        Panicked(
            payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_default(),
        )
    })
}
