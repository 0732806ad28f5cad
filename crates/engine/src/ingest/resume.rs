//! Where a run continues from. Before the first write, the store is checked against the dataset and the models
//! (another dataset, another model under a space name, or an unfinished space left out are refused); the
//! cursors then say which records and items each space still needs.

use torchlight_store::{DatasetInfo, ModelSpec, Series, ShardInfo, Store, cursors};

use super::{IngestError, IngestOptions, Result, SpaceModel};
use crate::source::Source;

/// Records turned into items or skipped.
pub(super) const RECORDS: &str = cursors::RECORDS;

pub(super) fn other_model(dir: &str, space: &str, stored: &ModelSpec, given: &ModelSpec) -> IngestError {
    IngestError::OtherModel(format!(
        "space {space} of the store at {dir} was made with {} {} (weights {}, {} pooling); now given {} {} \
         (weights {}, {} pooling). Use the same model, another space name, or another --store",
        stored.kind,
        stored.source,
        stored.fingerprint,
        stored.pooling,
        given.kind,
        given.source,
        given.fingerprint,
        given.pooling
    ))
}

pub(super) fn space_cursor(name: &str) -> String {
    cursors::space(name)
}

pub(super) fn space_items_cursor(name: &str) -> String {
    cursors::space_items(name)
}

/// Checks the store against the dataset, the models and the shard, then records the dataset, labels, spaces and
/// the shard. Every refusal happens here, before the first write.
pub(super) fn prepare_store(
    store: &Store,
    source: &dyn Source,
    models: &mut [SpaceModel],
    opts: &IngestOptions,
    total: u64,
    shard: Option<&ShardInfo>,
) -> Result<()> {
    let info = source.info();
    let dir = store.dir().display().to_string();
    let mut names: Vec<&str> = models.iter().map(|m| m.space.name.as_str()).collect();
    names.sort();
    if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
        return Err(IngestError::DuplicateSpace(w[0].to_string()));
    }
    {
        let rtxn = store.read_txn()?;
        super::shard::check_store(store, &rtxn, shard)?;
        if let Some(stored) = store.dataset(&rtxn)?
            && (stored.fingerprint != info.fingerprint || stored.format != info.format.to_string())
        {
            return Err(IngestError::OtherDataset(format!(
                "the store at {dir} holds another dataset ({}, {}, fingerprint {}); {} has fingerprint {}. \
                 Use another --store for this dataset",
                stored.source, stored.format, stored.fingerprint, opts.source_spec, info.fingerprint
            )));
        }
        let spaces = store.spaces(&rtxn)?;
        for m in models.iter() {
            if let Some(s) = spaces.iter().find(|s| s.name == m.space.name) {
                let (a, b) = (&s.model, &m.space.model);
                if a.fingerprint != b.fingerprint || a.pooling != b.pooling || a.kind != b.kind || s.dim != m.space.dim
                {
                    return Err(other_model(&dir, &s.name, a, b));
                }
            }
        }
        if let (Some(stored), Some(given)) = (store.series(&rtxn)?, &opts.series) {
            check_series(&dir, &stored, given)?;
        }
        // A model space left out would fall behind the items: it must come along until it has caught up.
        for s in spaces.iter().filter(|s| s.model.kind != "precomputed") {
            let done = store.cursor(&rtxn, &space_cursor(&s.name))?;
            if done < total && !models.iter().any(|m| m.space.name == s.name) {
                return Err(IngestError::UnfinishedSpace { dir, space: s.name.clone(), done, total });
            }
        }
    }
    let mut wtxn = store.write_txn()?;
    let existing = store.dataset(&wtxn)?;
    store.put_dataset(
        &mut wtxn,
        &DatasetInfo {
            source: existing.as_ref().map_or_else(|| opts.source_spec.clone(), |d| d.source.clone()),
            format: info.format.to_string(),
            fingerprint: info.fingerprint.clone(),
            complete: existing.is_some_and(|d| d.complete),
        },
    )?;
    store.put_label_names(&mut wtxn, &info.label_names)?;
    if let Some(shard) = shard {
        store.put_shard(&mut wtxn, shard)?;
    }
    for m in models.iter_mut() {
        m.space = store.put_space(&mut wtxn, m.space.clone())?;
    }
    if let Some(series) = &opts.series {
        store.put_series(&mut wtxn, series)?;
    }
    store.commit(wtxn)?;
    Ok(())
}

/// A store's series goes on only with every step it has (same space, same step); new checkpoints may join.
fn check_series(dir: &str, stored: &Series, given: &Series) -> Result<()> {
    let text = |s: &Series| s.steps.iter().map(|st| format!("{}@{}", st.space, st.step)).collect::<Vec<_>>().join(", ");
    let missing: Vec<String> = stored
        .steps
        .iter()
        .filter(|st| !given.steps.contains(st))
        .map(|st| format!("{}@{}", st.space, st.step))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(IngestError::OtherSeries {
        dir: dir.to_string(),
        stored: format!("[{}]", text(stored)),
        given: format!("[{}]", text(given)),
        missing: missing.join(", "),
    })
}

/// Where each cursor stands at the start of a run.
pub(super) struct Cursors {
    pub records: u64,
    pub items: u32,
    /// Per model (same order as `models`): (records, items).
    pub spaces: Vec<(u64, u32)>,
}

pub(super) fn read_cursors(store: &Store, models: &[SpaceModel]) -> Result<Cursors> {
    let rtxn = store.read_txn()?;
    let records = store.cursor(&rtxn, RECORDS)?;
    let items = store.item_count(&rtxn)?;
    let mut spaces = Vec::new();
    for m in models {
        let r = store.cursor(&rtxn, &space_cursor(&m.space.name))?;
        let i = store.cursor(&rtxn, &space_items_cursor(&m.space.name))? as u32;
        spaces.push((r, i));
    }
    Ok(Cursors { records, items, spaces })
}
