use color_eyre::eyre::{Result, eyre};
use torchlight_cli::ExportArgs;
use torchlight_store::Store;
use torchlight_store::export;

pub fn run(args: ExportArgs) -> Result<()> {
    let store = Store::open_reading(&args.store.dir()?)?;
    let out = &args.output;
    if let Some(space) = &args.embeddings {
        let (n, d) = export::export_embeddings(&store, space, out)?;
        torchlight_cli::outln!("wrote {} ({n} x {d}, item-id order)", out.display());
        return Ok(());
    }
    let format = export::TableFormat::from_path(out)?;
    if args.spotlight && format != export::TableFormat::Parquet {
        return Err(eyre!("--spotlight writes image bytes, which only parquet holds: name the output .parquet"));
    }
    let table = export::build_table(&store, args.spotlight)?;
    export::write_table(&table, out, format)?;
    torchlight_cli::outln!("wrote {} ({} rows, {} columns)", out.display(), table.rows, table.columns.len());
    Ok(())
}
