//! SIGINT, SIGTERM and SIGHUP during ingest or analyze: the first one asks the work to stop at its next
//! commit point (the store keeps everything committed, and the command says how to resume); a second one
//! ends the process at once, which is as safe for the store as `kill -9`.

use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

struct Flags {
    asked: Arc<AtomicBool>,
    signal: Arc<AtomicUsize>,
}

static FLAGS: OnceLock<Flags> = OnceLock::new();

/// Starts listening; later calls do nothing. Without it, `requested` is always None and signals keep their
/// default action.
pub fn install() -> std::io::Result<()> {
    if FLAGS.get().is_some() {
        return Ok(());
    }
    let flags = Flags { asked: Arc::new(AtomicBool::new(false)), signal: Arc::new(AtomicUsize::new(0)) };
    for sig in [SIGINT, SIGTERM, SIGHUP] {
        // Registered first, so it sees the flag as the previous signal left it: the second signal exits.
        signal_hook::flag::register_conditional_shutdown(sig, 128 + sig, Arc::clone(&flags.asked))?;
        signal_hook::flag::register_usize(sig, Arc::clone(&flags.signal), sig as usize)?;
        signal_hook::flag::register(sig, Arc::clone(&flags.asked))?;
    }
    let _ = FLAGS.set(flags);
    Ok(())
}

/// The signal that asked the work to stop, if one did.
pub fn requested() -> Option<i32> {
    let flags = FLAGS.get()?;
    flags.asked.load(Ordering::Relaxed).then(|| flags.signal.load(Ordering::Relaxed) as i32)
}
