use color_eyre::eyre::{Result, WrapErr};

use torchlight_cli::InfoArgs;
use torchlight_store::Store;

pub fn run(args: InfoArgs) -> Result<()> {
    let d = crate::runtime::devices();
    println!("libtorch {}", crate::runtime::libtorch_version());
    println!(
        "devices: cpu ({} threads), cuda: {} device(s){}",
        d.cpu_threads,
        d.cuda_count,
        if d.cudnn { ", cudnn" } else { "" }
    );
    let dir = args.store.dir()?;
    if !dir.join("data.mdb").exists() {
        println!("store {}: none yet (run `torchlight ingest SOURCE --store {}`)", dir.display(), dir.display());
        return Ok(());
    }
    let store = Store::open(&dir).wrap_err_with(|| format!("opening store {}", dir.display()))?;
    print!("{}", crate::report::store_summary(&store)?);
    Ok(())
}
