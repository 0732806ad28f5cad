//! Human-readable summaries of a store, shared by `info`, `ingest` and `demo`.

use std::fmt::Write;

use torchlight_store::{Result, Series, Store};

/// Skipped records listed by name; a dataset with more says how many more.
const SKIPPED_LISTED: usize = 20;

/// Schema, items (and the records skipped, by name and reason), spaces with models, labels, tags and which
/// analysis columns exist.
pub fn store_summary(store: &Store, all_skipped: bool) -> Result<String> {
    let rtxn = store.read_txn()?;
    let mut s = String::new();
    let _ = writeln!(s, "store {} ({:.1} MiB)", store.dir().display(), store.disk_size() as f64 / (1 << 20) as f64);
    let _ = writeln!(s, "  schema version {}", store.schema_version(&rtxn)?);
    match store.dataset(&rtxn)? {
        Some(d) => {
            let _ = writeln!(
                s,
                "  dataset {} ({}){}",
                d.source,
                d.format,
                if d.complete { "" } else { ", ingest incomplete" }
            );
        }
        None => {
            let _ = writeln!(s, "  dataset: none ingested yet");
        }
    }
    let skipped = store.skipped(&rtxn)?;
    let _ = writeln!(
        s,
        "  items {}{}",
        store.item_count(&rtxn)?,
        if skipped.is_empty() { String::new() } else { format!(" ({} skipped)", skipped.len()) }
    );
    let listed = if all_skipped { skipped.len() } else { SKIPPED_LISTED };
    for sk in skipped.iter().take(listed) {
        let _ = writeln!(s, "    skipped {}: {}", sk.source, sk.reason);
    }
    if skipped.len() > listed {
        let _ = writeln!(s, "    ... and {} more (`torchlight info --skipped` lists them all)", skipped.len() - listed);
    }
    let labels = store.label_names(&rtxn)?;
    if !labels.is_empty() {
        let _ = writeln!(s, "  labels ({}): {}", labels.len(), labels.join(", "));
    }
    let spaces = store.spaces(&rtxn)?;
    if spaces.is_empty() {
        let _ = writeln!(s, "  spaces: none");
    }
    for sp in &spaces {
        let n = store.embedding_count(&rtxn, sp.index)?;
        let head = if sp.num_classes > 0 { format!(", {}-class head", sp.num_classes) } else { String::new() };
        let _ = writeln!(
            s,
            "  space {} [{}]: {} x {} from {} {} ({} pooling{head})",
            sp.name, sp.index, n, sp.dim, sp.model.kind, sp.model.source, sp.model.pooling
        );
        let cols = store.column_names(&rtxn, &sp.name)?;
        let ann = if store.has_ann(&rtxn, sp.index) { ", arroy index" } else { "" };
        if cols.is_empty() {
            let _ = writeln!(s, "    analysis: none yet (run `torchlight analyze`)");
        } else {
            let _ = writeln!(s, "    analysis: {}{ann}", cols.join(", "));
        }
    }
    if let Some(series) = store.series(&rtxn)? {
        series_summary(&mut s, &series);
    }
    let _ = writeln!(s, "  tagged items {}", store.tags(&rtxn)?.len());
    Ok(s)
}

/// The checkpoint series: each step with its space and the loss logged at (or nearest to) it, then the loss log's
/// length and span.
fn series_summary(s: &mut String, series: &Series) {
    let finetuned = series.finetuned_space().unwrap_or("none");
    let _ = writeln!(s, "  checkpoint series: {} steps, fine-tuned space {finetuned}", series.steps.len());
    let width = series.steps.iter().map(|st| st.space.len()).max().unwrap_or(0);
    for st in &series.steps {
        let loss = match series.loss_near(st.step) {
            None => String::new(),
            Some(p) if p.step == st.step => format!("  loss {:.4}", p.loss),
            Some(p) => format!("  loss {:.4} (logged at step {})", p.loss, p.step),
        };
        let _ = writeln!(s, "    step {:>7}  {:<width$}{loss}", st.step, st.space);
    }
    match (series.losses.first(), series.losses.last()) {
        (Some(first), Some(last)) => {
            let _ = writeln!(
                s,
                "    loss log: {} points, steps {}..{}, loss {:.4} -> {:.4}",
                series.losses.len(),
                first.step,
                last.step,
                first.loss,
                last.loss
            );
        }
        _ => {
            let _ = writeln!(s, "    loss log: none");
        }
    }
}
