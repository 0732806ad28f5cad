use std::collections::BTreeSet;

use color_eyre::eyre::{Result, eyre};
use torchlight_cli::{VerifyArgs, eoutln, outln};
use torchlight_store::Store;
use torchlight_store::sums::Part;
use torchlight_store::verify::Report;

pub fn run(args: VerifyArgs) -> Result<()> {
    let dir = args.store.dir()?;
    let store = Store::open_reading(&dir)?;
    let report = store.verify(&|stage, done, total| {
        if done == 0 {
            eoutln!("checking {stage} ({total} items)");
        }
    })?;
    let unchecked = match report.unchecked {
        0 => String::new(),
        n => format!("; {n} written before checksums existed could only be read"),
    };
    outln!(
        "{}: {} items, {} records checked against their checksums{unchecked}",
        dir.display(),
        report.items,
        report.checked
    );
    if !report.is_damaged() {
        outln!("no damage found");
        return Ok(());
    }
    for problem in &report.problems {
        outln!("damaged: {problem}");
    }
    Err(eyre!("the store at {} is damaged: {}", dir.display(), what_to_do(&report, &dir.display().to_string())))
}

/// What a user can do about each kind of damage found.
fn what_to_do(report: &Report, dir: &str) -> String {
    let parts: BTreeSet<Part> = report.problems.iter().map(|p| p.part).collect();
    let mut advice = Vec::new();
    if parts.contains(&Part::Item) || parts.contains(&Part::Thumbnail) {
        advice.push(format!(
            "{} damaged items: `torchlight export --skip-damaged --store {dir}` writes everything else (tags \
             included), and a new ingest of the dataset replaces them",
            report.damaged_items(&[Part::Item, Part::Thumbnail]).len()
        ));
    }
    if parts.contains(&Part::Embedding) || parts.contains(&Part::Probs) {
        advice.push("damaged embeddings or probabilities: ingest that space again into a new store".to_string());
    }
    if parts.contains(&Part::Column) {
        advice.push(format!("damaged analysis columns: `torchlight analyze --store {dir}` computes them again"));
    }
    advice.join("; ")
}
