use std::path::PathBuf;

use clap::Args;
use color_eyre::eyre::Result;

use super::StoreArg;
use crate::export;
use crate::store::Store;

#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub store: StoreArg,
    /// Output file: .npy with --embeddings; otherwise .csv, .parquet or .jsonl (a row per item).
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
    /// Write this space's embeddings as float32 [N, D] .npy in item-id order.
    #[arg(long, value_name = "SPACE")]
    pub embeddings: Option<String>,
    /// Also write the article's Renumics Spotlight column names.
    #[arg(long)]
    pub spotlight: bool,
}

pub fn run(args: ExportArgs) -> Result<()> {
    let store = Store::open(&args.store.dir()?)?;
    let out = &args.output;
    if let Some(space) = &args.embeddings {
        let (n, d) = export::export_embeddings(&store, space, out)?;
        println!("wrote {} ({n} x {d} float32, item-id order)", out.display());
        return Ok(());
    }
    let format = export::TableFormat::from_path(out)?;
    let table = export::build_table(&store, args.spotlight)?;
    export::write_table(&table, out, format)?;
    println!("wrote {} ({} rows, {} columns)", out.display(), table.rows, table.columns.len());
    Ok(())
}
