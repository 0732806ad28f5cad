//! `torchlight merge`: the shard stores of `ingest --shard I/N` joined into one store, equal to a whole ingest.

use std::ops::ControlFlow;

use color_eyre::eyre::Result;
use torchlight_cli::{MergeArgs, eoutln, outln};
use torchlight_store::merge::{self, MergeOptions};

pub fn run(args: MergeArgs) -> Result<()> {
    let dir = args.store.dir()?;
    let mut shard = None;
    let summary = merge::merge(&dir, &args.shards, &MergeOptions::default(), &mut |p| {
        if shard != Some(p.shard) || p.items == p.total_items {
            eoutln!("merge: shard {}/{}, {} of {} items written", p.shard, p.count, p.items, p.total_items);
            shard = Some(p.shard);
        }
        ControlFlow::Continue(())
    })?;
    if summary.already_done {
        outln!("{} already holds the merge of these {} shards: nothing to do", dir.display(), summary.shards);
        return Ok(());
    }
    outln!(
        "merged {} shards into {}: {} items, {} skipped records, spaces: {}",
        summary.shards,
        dir.display(),
        summary.items,
        summary.skipped,
        if summary.spaces.is_empty() { "none".to_string() } else { summary.spaces.join(", ") }
    );
    if !summary.complete {
        outln!("the shards hold the first records of the source only (--limit): the dataset is not complete");
    }
    if !summary.spaces.is_empty() {
        outln!("next: `torchlight analyze --store {}` for scores and projections", dir.display());
    }
    Ok(())
}
