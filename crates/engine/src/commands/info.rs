use color_eyre::eyre::{Result, WrapErr};
use torchlight_cli::{InfoArgs, out, outln};
use torchlight_store::{Store, StoreError};

pub fn run(args: InfoArgs) -> Result<()> {
    let d = crate::runtime::devices();
    outln!("libtorch {}", crate::runtime::libtorch_version());
    outln!(
        "devices: cpu ({} threads), cuda: {} device(s){}",
        d.cpu_threads,
        d.cuda_count,
        if d.cudnn { ", cudnn" } else { "" }
    );
    let dir = args.store.dir()?;
    let store = match Store::open_reading(&dir) {
        Err(StoreError::Missing(_)) => {
            outln!("store {}: none yet (run `torchlight ingest SOURCE --store {}`)", dir.display(), dir.display());
            return Ok(());
        }
        opened => opened.wrap_err_with(|| format!("opening store {}", dir.display()))?,
    };
    out!("{}", crate::report::store_summary(&store, args.skipped)?);
    Ok(())
}
