use color_eyre::eyre::{Result, eyre};
use torchlight_cli::ExportArgs;
use torchlight_store::Store;
use torchlight_store::export::{self, LeftOut};

pub fn run(args: ExportArgs) -> Result<()> {
    let store = Store::open_reading(&args.store.dir()?)?;
    let out = &args.output;
    if let Some(space) = &args.embeddings {
        let (n, d, left_out) = export::export_embeddings_skipping(&store, space, out, args.skip_damaged)?;
        torchlight_cli::outln!("wrote {} ({n} x {d}, item-id order)", out.display());
        say_left_out(&left_out, &store);
        return Ok(());
    }
    let format = export::TableFormat::from_path(out)?;
    if args.spotlight && format != export::TableFormat::Parquet {
        return Err(eyre!("--spotlight writes image bytes, which only parquet holds: name the output .parquet"));
    }
    let (table, left_out) = export::build_table_skipping(&store, args.spotlight, args.skip_damaged)?;
    export::write_table(&table, out, format)?;
    torchlight_cli::outln!("wrote {} ({} rows, {} columns)", out.display(), table.rows, table.columns.len());
    say_left_out(&left_out, &store);
    Ok(())
}

fn say_left_out(left_out: &LeftOut, store: &Store) {
    if let Some(line) = left_out.describe() {
        torchlight_cli::outln!("{line}; `torchlight verify --store {}` lists all the damage", store.dir().display());
    }
}
