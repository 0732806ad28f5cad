//! Shard stores (made by `torchlight ingest --shard I/N`) joined into one store equal to a whole ingest.
//!
//! `merge` reads every shard and refuses, before anything is written, shards of another dataset, of another
//! split (count, record total, ranges), with other models, labels or checkpoint series, a missing or repeated
//! index, an unfinished shard, or a merged store that holds anything else. It then copies the shards in index
//! order: each item gets its id in the whole dataset (the items of the shards before it come first), with its
//! thumbnail, every space's embedding and probabilities and its tag, and the shards' checkpoint series (`Series`)
//! with the spaces; each shard's skipped records follow those of the shards before. Writes go through
//! the `put_*` functions, which write the checksums; reads check the shards' checksums, so damage is not copied.
//! The last transaction writes the cursors a whole ingest leaves and the dataset record (complete when the
//! shards cover the whole source), so a later `ingest` into the merged store resumes as after a whole run.
//!
//! Each chunk of items is one transaction together with the merge cursor (`merge` in meta): a killed merge
//! continues after the last committed chunk, and a finished merge run again does nothing.
#![allow(
    clippy::result_large_err,
    reason = "each error names the shard stores involved; a merge fails once, not in a loop"
)]

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use heed::types::Bytes;
use serde::{Deserialize, Serialize};

use crate::sums::{Check, Part};
use crate::{
    DatasetInfo, Item, RoTxn, RwTxn, Series, ShardInfo, SpaceInfo, Store, StoreError, cursors, le_f32, vec_key,
};

mod key {
    pub const SHARD: &str = "shard";
    pub const MERGE: &str = "merge";
}

/// Items copied per transaction: bounds the dirty pages a transaction holds in memory and the work a kill loses.
pub const CHUNK_ITEMS: u32 = 2048;

#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error("no shards given: name the N shard stores of one `torchlight ingest --shard I/N` split")]
    NoShards,
    #[error(
        "{dir} is not a shard store: it was not made by `torchlight ingest --shard I/N` (a whole ingest needs no \
         merge)"
    )]
    NotAShard { dir: PathBuf },
    #[error(
        "{dir} (shard {index}/{count}) holds another dataset ({format}, fingerprint {found}) than {first} \
         (fingerprint {expected}): merge the shards of one dataset"
    )]
    OtherDataset {
        dir: PathBuf,
        index: u32,
        count: u32,
        format: String,
        found: String,
        first: PathBuf,
        expected: String,
    },
    #[error(
        "{dir} is shard {index} of {count}, but {first} is a shard of {expected}: all shards must come from one \
         split (the same N in --shard I/N)"
    )]
    OtherCount { dir: PathBuf, index: u32, count: u32, first: PathBuf, expected: u32 },
    #[error("{dir} is given twice: give each shard once")]
    GivenTwice { dir: PathBuf },
    #[error("{dir} and {other} are both shard {index}/{count}: give each shard once")]
    Overlap { dir: PathBuf, other: PathBuf, index: u32, count: u32 },
    #[error("{missing} of {count} missing (given: {given}): give all {count} shards")]
    Missing { missing: String, count: u32, given: String },
    #[error(
        "{dir} (shard {index}/{count}) holds records {found}, but {expected}: ingest every shard with the same \
         --limit and --batch-size"
    )]
    Range { dir: PathBuf, index: u32, count: u32, found: String, expected: String },
    #[error(
        "{dir} (shard {index}/{count}) is unfinished: {what} has {done} of its {of} records; rerun the same \
         `torchlight ingest --shard` command to finish it"
    )]
    Incomplete { dir: PathBuf, index: u32, count: u32, what: String, done: u64, of: u64 },
    #[error(
        "{dir} (shard {index}/{count}): space {space} was made with {found}, but in {first} with {expected}: \
         ingest every shard with the same models"
    )]
    OtherModel { dir: PathBuf, index: u32, count: u32, space: String, found: String, first: PathBuf, expected: String },
    #[error(
        "{dir} (shard {index}/{count}) has the spaces [{found}], but {first} has [{expected}]: ingest every shard \
         with the same models"
    )]
    OtherSpaces { dir: PathBuf, index: u32, count: u32, found: String, first: PathBuf, expected: String },
    #[error(
        "{dir} (shard {index}/{count}) has the label names [{found}], but {first} has [{expected}]: merge the \
         shards of one dataset"
    )]
    OtherLabels { dir: PathBuf, index: u32, count: u32, found: String, first: PathBuf, expected: String },
    #[error(
        "{dir} (shard {index}/{count}) has {found}, but {first} has {expected}: ingest every shard with the same \
         --checkpoints"
    )]
    OtherSeries { dir: PathBuf, index: u32, count: u32, found: String, first: PathBuf, expected: String },
    #[error("the merged store {out} is also given as a shard: give the merge another --store")]
    OutIsShard { out: PathBuf },
    #[error(
        "the store at {out} holds another dataset ({dataset}, {format}, fingerprint {found}); the shards hold \
         fingerprint {expected}: merge into another --store"
    )]
    OutOtherDataset { out: PathBuf, dataset: String, format: String, found: String, expected: String },
    #[error(
        "the store at {out} already holds {items} items and {skipped} skipped records that no merge of these \
         shards wrote: merge into a new --store"
    )]
    OutNotEmpty { out: PathBuf, items: u32, skipped: usize },
    #[error(
        "the store at {out} holds a merge of other shards ({found}); these are {expected}: finish that merge \
         with its own shards, or merge into a new --store"
    )]
    OutOtherMerge { out: PathBuf, found: String, expected: String },
    /// Stopped by the caller's hook after a commit.
    #[error("merge stopped on request; everything committed so far is kept: rerun the same command to continue")]
    Interrupted,
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub type Result<T, E = MergeError> = std::result::Result<T, E>;

/// How far a merge has got, kept in the merged store's meta and committed with each chunk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MergeState {
    pub fingerprint: String,
    pub count: u32,
    pub total: u64,
    /// Items and skipped records of each shard, by index: a rerun with shards that no longer hold these is
    /// refused rather than mixed into what the first run wrote.
    pub items: Vec<u32>,
    pub skipped: Vec<u64>,
    /// The next shard to copy, and the next of its items (all items of the shards before it are in).
    pub shard: u32,
    pub item: u32,
    pub done: bool,
}

impl MergeState {
    fn describe(&self) -> String {
        let items: u64 = self.items.iter().map(|&n| u64::from(n)).sum();
        format!(
            "{} shards, {items} items of {} records, dataset fingerprint {}",
            self.count, self.total, self.fingerprint
        )
    }
}

/// Reported after each commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// The shard being copied (its index) and how many there are.
    pub shard: u32,
    pub count: u32,
    /// Items written so far, and in all.
    pub items: u64,
    pub total_items: u64,
}

/// What a merge did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub shards: u32,
    pub items: u64,
    pub skipped: u64,
    pub spaces: Vec<String>,
    /// The shards cover the whole source (no --limit).
    pub complete: bool,
    /// The store already held this finished merge: nothing was written.
    pub already_done: bool,
}

#[derive(Debug, Clone, Copy)]
pub struct MergeOptions {
    /// Items per transaction.
    pub chunk_items: u32,
}

impl Default for MergeOptions {
    fn default() -> Self {
        MergeOptions { chunk_items: CHUNK_ITEMS }
    }
}

impl Store {
    /// The shard this store holds, when it was made by `ingest --shard I/N`.
    pub fn shard(&self, rtxn: &RoTxn) -> crate::Result<Option<ShardInfo>> {
        self.get_meta(rtxn, key::SHARD)
    }

    pub fn put_shard(&self, wtxn: &mut RwTxn, shard: &ShardInfo) -> crate::Result<()> {
        self.put_meta(wtxn, key::SHARD, shard)
    }

    /// How far a merge into this store has got; None when no merge wrote it.
    pub fn merge_state(&self, rtxn: &RoTxn) -> crate::Result<Option<MergeState>> {
        self.get_meta(rtxn, key::MERGE)
    }

    fn put_merge_state(&self, wtxn: &mut RwTxn, state: &MergeState) -> crate::Result<()> {
        self.put_meta(wtxn, key::MERGE, state)
    }
}

/// One shard, opened for reading, with what the checks need.
struct Shard {
    dir: PathBuf,
    store: Store,
    info: ShardInfo,
    dataset: DatasetInfo,
    spaces: Vec<SpaceInfo>,
    labels: Vec<String>,
    items: u32,
    skipped: u64,
    /// Per space (same order as `spaces`): (records, items) cursors.
    space_cursors: Vec<(u64, u64)>,
    /// The checkpoint series (`ingest --checkpoints`), the same in every shard.
    series: Option<Series>,
}

/// Merges the shard stores `shards` into the store at `out` (created when there is none), from where an
/// earlier merge into it stopped. Every check comes before the first write. `on_commit` is called after each
/// committed transaction; `Break` stops the merge (`MergeError::Interrupted`), which a rerun continues.
pub fn merge(
    out: &Path,
    shards: &[PathBuf],
    opts: &MergeOptions,
    on_commit: &mut dyn FnMut(&Progress) -> ControlFlow<()>,
) -> Result<Summary> {
    let plan = Plan::open(shards)?;
    // LMDB maps a store once per process: the output must be refused before it is opened a second time.
    if let Ok(out_dir) = std::fs::canonicalize(out)
        && plan.shards.iter().any(|s| std::fs::canonicalize(&s.dir).is_ok_and(|d| d == out_dir))
    {
        return Err(MergeError::OutIsShard { out: out.to_path_buf() });
    }
    let store = Store::create_or_open(out)?;
    let _lock = store.lock_writer("merge")?;
    plan.run(&store, opts, on_commit)
}

/// The shards of one split, checked and in index order.
struct Plan {
    shards: Vec<Shard>,
}

fn model_text(s: &SpaceInfo) -> String {
    let m = &s.model;
    format!(
        "{} {} (weights {}, {} pooling, dim {}, {} classes)",
        m.kind, m.source, m.fingerprint, m.pooling, s.dim, s.num_classes
    )
}

fn same_model(a: &SpaceInfo, b: &SpaceInfo) -> bool {
    let (x, y) = (&a.model, &b.model);
    x.kind == y.kind
        && x.fingerprint == y.fingerprint
        && x.pooling == y.pooling
        && a.dim == b.dim
        && a.num_classes == b.num_classes
}

impl Shard {
    fn open(dir: &Path) -> Result<Shard> {
        let store = Store::open_reading(dir)?;
        let rtxn = store.read_txn()?;
        let info = store.shard(&rtxn)?.ok_or_else(|| MergeError::NotAShard { dir: dir.to_path_buf() })?;
        let dataset = store.dataset(&rtxn)?.ok_or_else(|| MergeError::NotAShard { dir: dir.to_path_buf() })?;
        let mut spaces = store.spaces(&rtxn)?;
        spaces.sort_by_key(|s| s.index);
        let mut space_cursors = Vec::new();
        for s in &spaces {
            space_cursors.push((
                store.cursor(&rtxn, &cursors::space(&s.name))?,
                store.cursor(&rtxn, &cursors::space_items(&s.name))?,
            ));
        }
        let labels = store.label_names(&rtxn)?;
        let series = store.series(&rtxn)?;
        let items = store.item_count(&rtxn)?;
        let skipped = store.db.skipped.len(&rtxn).map_err(|e| store.heed_err(e))?;
        drop(rtxn);
        Ok(Shard {
            dir: dir.to_path_buf(),
            store,
            info,
            dataset,
            spaces,
            labels,
            items,
            skipped,
            space_cursors,
            series,
        })
    }

    /// Whether the ingest of this shard finished: every record an item or skipped, every space caught up.
    fn check_finished(&self) -> Result<()> {
        let of = self.info.end - self.info.start;
        let incomplete = |what: String, done: u64| MergeError::Incomplete {
            dir: self.dir.clone(),
            index: self.info.index,
            count: self.info.count,
            what,
            done,
            of,
        };
        let records = {
            let rtxn = self.store.read_txn()?;
            self.store.cursor(&rtxn, cursors::RECORDS)?
        };
        if records < of || u64::from(self.items) + self.skipped < of {
            return Err(incomplete("the ingest".into(), records.min(u64::from(self.items) + self.skipped)));
        }
        for (s, &(done, _)) in self.spaces.iter().zip(&self.space_cursors) {
            if done < of {
                return Err(incomplete(format!("space {}", s.name), done));
            }
        }
        Ok(())
    }
}

impl Plan {
    /// Opens every shard (read-only) and checks that together they are one whole split of one dataset, each
    /// shard finished. Nothing is written.
    fn open(dirs: &[PathBuf]) -> Result<Plan> {
        if dirs.is_empty() {
            return Err(MergeError::NoShards);
        }
        let mut seen = std::collections::HashSet::new();
        for dir in dirs {
            if !seen.insert(std::fs::canonicalize(dir).unwrap_or_else(|_| dir.clone())) {
                return Err(MergeError::GivenTwice { dir: dir.clone() });
            }
        }
        let shards = dirs.iter().map(|d| Shard::open(d)).collect::<Result<Vec<_>>>()?;
        let first = &shards[0];
        for s in &shards {
            let (dir, index, count) = (s.dir.clone(), s.info.index, s.info.count);
            if s.info.fingerprint != first.info.fingerprint || s.dataset.format != first.dataset.format {
                return Err(MergeError::OtherDataset {
                    dir,
                    index,
                    count,
                    format: s.dataset.format.clone(),
                    found: s.info.fingerprint.clone(),
                    first: first.dir.clone(),
                    expected: first.info.fingerprint.clone(),
                });
            }
            if count != first.info.count {
                return Err(MergeError::OtherCount {
                    dir,
                    index,
                    count,
                    first: first.dir.clone(),
                    expected: first.info.count,
                });
            }
        }
        let count = first.info.count;
        let mut by_index: BTreeMap<u32, &Shard> = BTreeMap::new();
        for s in &shards {
            if let Some(other) = by_index.insert(s.info.index, s) {
                return Err(MergeError::Overlap {
                    dir: s.dir.clone(),
                    other: other.dir.clone(),
                    index: s.info.index,
                    count,
                });
            }
        }
        let missing: Vec<String> = (0..count).filter(|i| !by_index.contains_key(i)).map(|i| i.to_string()).collect();
        if !missing.is_empty() || by_index.len() != count as usize {
            let given = shards
                .iter()
                .map(|s| format!("{} = {}/{}", s.dir.display(), s.info.index, s.info.count))
                .collect::<Vec<_>>()
                .join(", ");
            let missing = match missing.len() {
                1 => format!("shard {}", missing[0]),
                _ => format!("shards {}", missing.join(", ")),
            };
            return Err(MergeError::Missing { missing, count, given });
        }
        // Each range must be the one the split gives its index, so together they tile the records.
        for s in by_index.values() {
            let (i, f) = (&s.info, &first.info);
            let (want_start, want_end) = split_range(f.total, f.batch_size, i.index, count);
            if (i.start, i.end, i.total, i.source_len, i.batch_size)
                != (want_start, want_end, f.total, f.source_len, f.batch_size)
            {
                return Err(MergeError::Range {
                    dir: s.dir.clone(),
                    index: i.index,
                    count,
                    found: format!("{}..{} of {} (batch size {})", i.start, i.end, i.total, i.batch_size),
                    expected: format!(
                        "the split of {} puts records {want_start}..{want_end} of {} there (batch size {})",
                        first.dir.display(),
                        f.total,
                        f.batch_size
                    ),
                });
            }
        }
        let names = |s: &Shard| s.spaces.iter().map(|s| s.name.clone()).collect::<Vec<_>>();
        for s in &shards {
            let (dir, index) = (s.dir.clone(), s.info.index);
            let mut found = names(s);
            let mut expected = names(first);
            found.sort();
            expected.sort();
            if found != expected {
                return Err(MergeError::OtherSpaces {
                    dir,
                    index,
                    count,
                    found: found.join(", "),
                    first: first.dir.clone(),
                    expected: expected.join(", "),
                });
            }
            for space in &s.spaces {
                let want = first.spaces.iter().find(|f| f.name == space.name).expect("same names");
                if !same_model(space, want) {
                    return Err(MergeError::OtherModel {
                        dir,
                        index,
                        count,
                        space: space.name.clone(),
                        found: model_text(space),
                        first: first.dir.clone(),
                        expected: model_text(want),
                    });
                }
            }
            if s.labels != first.labels {
                return Err(MergeError::OtherLabels {
                    dir,
                    index,
                    count,
                    found: s.labels.join(", "),
                    first: first.dir.clone(),
                    expected: first.labels.join(", "),
                });
            }
            if s.series != first.series {
                let text = |s: &Shard| match &s.series {
                    None => "no checkpoint series".to_string(),
                    Some(series) => format!(
                        "the checkpoint series [{}] (fine-tuned space {}, {} losses)",
                        series
                            .steps
                            .iter()
                            .map(|st| format!("{}@{}", st.space, st.step))
                            .collect::<Vec<_>>()
                            .join(", "),
                        series.finetuned_space().unwrap_or("none"),
                        series.losses.len()
                    ),
                };
                return Err(MergeError::OtherSeries {
                    dir,
                    index,
                    count,
                    found: text(s),
                    first: first.dir.clone(),
                    expected: text(first),
                });
            }
            s.check_finished()?;
        }
        let mut shards = shards;
        shards.sort_by_key(|s| s.info.index);
        Ok(Plan { shards })
    }

    fn count(&self) -> u32 {
        self.shards.len() as u32
    }

    fn items(&self) -> u64 {
        self.shards.iter().map(|s| u64::from(s.items)).sum()
    }

    fn state(&self) -> MergeState {
        let first = &self.shards[0].info;
        MergeState {
            fingerprint: first.fingerprint.clone(),
            count: first.count,
            total: first.total,
            items: self.shards.iter().map(|s| s.items).collect(),
            skipped: self.shards.iter().map(|s| s.skipped).collect(),
            shard: 0,
            item: 0,
            done: false,
        }
    }

    /// Where a merge into `out` starts: a new state for an empty store, or the state a merge of these shards
    /// left there. Anything else in `out` is refused. Nothing is written.
    fn check_out(&self, out: &Store) -> Result<MergeState> {
        let fresh = self.state();
        let rtxn = out.read_txn()?;
        if let Some(found) = out.merge_state(&rtxn)? {
            let same = found.fingerprint == fresh.fingerprint
                && found.count == fresh.count
                && found.total == fresh.total
                && found.items == fresh.items
                && found.skipped == fresh.skipped;
            if !same {
                return Err(MergeError::OutOtherMerge {
                    out: out.dir().to_path_buf(),
                    found: found.describe(),
                    expected: fresh.describe(),
                });
            }
            return Ok(found);
        }
        if let Some(d) = out.dataset(&rtxn)?
            && d.fingerprint != fresh.fingerprint
        {
            return Err(MergeError::OutOtherDataset {
                out: out.dir().to_path_buf(),
                dataset: d.source,
                format: d.format,
                found: d.fingerprint,
                expected: fresh.fingerprint,
            });
        }
        let items = out.item_count(&rtxn)?;
        let skipped = out.skipped(&rtxn)?.len();
        if items > 0 || skipped > 0 || !out.spaces(&rtxn)?.is_empty() || out.cursor(&rtxn, cursors::RECORDS)? > 0 {
            return Err(MergeError::OutNotEmpty { out: out.dir().to_path_buf(), items, skipped });
        }
        Ok(fresh)
    }

    /// Merges the shards into `out` (opened for writing, its writer lock held), from where an earlier run
    /// stopped.
    fn run(
        &self,
        out: &Store,
        opts: &MergeOptions,
        on_commit: &mut dyn FnMut(&Progress) -> ControlFlow<()>,
    ) -> Result<Summary> {
        let mut state = self.check_out(out)?;
        let first = &self.shards[0];
        let total_items = self.items();
        let summary = |already_done| Summary {
            shards: self.count(),
            items: total_items,
            skipped: self.shards.iter().map(|s| s.skipped).sum(),
            spaces: first.spaces.iter().map(|s| s.name.clone()).collect(),
            complete: first.info.total >= first.info.source_len,
            already_done,
        };
        if state.done {
            return Ok(summary(true));
        }
        if state.shard == 0 && state.item == 0 {
            // The dataset, labels and spaces first, in the first shard's space order, so that space indices
            // equal a whole run's.
            let mut wtxn = out.write_txn()?;
            out.put_dataset(&mut wtxn, &DatasetInfo { complete: false, ..first.dataset.clone() })?;
            out.put_label_names(&mut wtxn, &first.labels)?;
            for s in &first.spaces {
                out.put_space(&mut wtxn, s.clone())?;
            }
            if let Some(series) = &first.series {
                out.put_series(&mut wtxn, series)?;
            }
            out.put_merge_state(&mut wtxn, &state)?;
            out.commit(wtxn)?;
        }
        let out_spaces = {
            let rtxn = out.read_txn()?;
            out.spaces(&rtxn)?
        };
        let chunk = opts.chunk_items.max(1);
        let offsets: Vec<u32> =
            self.shards.iter().scan(0u32, |sum, s| Some(std::mem::replace(sum, *sum + s.items))).collect();
        while !state.done {
            let shard = &self.shards[state.shard as usize];
            let (from, to) = (state.item, (state.item.saturating_add(chunk)).min(shard.items));
            let mut wtxn = out.write_txn()?;
            let rtxn = shard.store.read_txn()?;
            if from == 0 {
                for s in shard.store.skipped(&rtxn)? {
                    out.push_skipped(&mut wtxn, &s)?;
                }
                for (id, tag) in shard.store.tags(&rtxn)? {
                    out.put_tag(&mut wtxn, offsets[state.shard as usize] + id, &tag)?;
                }
            }
            shard.copy(&rtxn, from..to, out, &mut wtxn, offsets[state.shard as usize], &out_spaces)?;
            drop(rtxn);
            if to == shard.items {
                state.shard += 1;
                state.item = 0;
            } else {
                state.item = to;
            }
            if state.shard == self.count() {
                self.finish(out, &mut wtxn)?;
                state.done = true;
            }
            out.put_merge_state(&mut wtxn, &state)?;
            out.commit(wtxn)?;
            let done = offsets.get(state.shard as usize).map_or(total_items, |&o| u64::from(o) + u64::from(state.item));
            let progress =
                Progress { shard: state.shard.min(self.count() - 1), count: self.count(), items: done, total_items };
            if on_commit(&progress).is_break() && !state.done {
                return Err(MergeError::Interrupted);
            }
        }
        Ok(summary(false))
    }

    /// The cursors a whole ingest of the split's records leaves, and the dataset record, complete when the
    /// records are the whole source (which also writes the label column).
    fn finish(&self, out: &Store, wtxn: &mut RwTxn) -> Result<()> {
        let first = &self.shards[0];
        out.put_cursor(wtxn, cursors::RECORDS, first.info.total)?;
        for s in &first.spaces {
            let (mut records, mut items) = (0, 0);
            for shard in &self.shards {
                let at = shard.spaces.iter().position(|x| x.name == s.name).expect("checked: same spaces");
                records += shard.space_cursors[at].0;
                items += shard.space_cursors[at].1;
            }
            out.put_cursor(wtxn, &cursors::space(&s.name), records)?;
            out.put_cursor(wtxn, &cursors::space_items(&s.name), items)?;
        }
        let complete = first.info.total >= first.info.source_len;
        out.put_dataset(wtxn, &DatasetInfo { complete, ..first.dataset.clone() })?;
        Ok(())
    }
}

/// Record range of shard `index` of `count` over `total` records: whole batches of `batch` records, spread as
/// evenly as whole batches allow, so that every model batch of a shard is the one a whole run makes. A shard
/// gets no records when there are fewer batches than shards.
pub fn split_range(total: u64, batch: u64, index: u32, count: u32) -> (u64, u64) {
    let batch = batch.max(1);
    let batches = total.div_ceil(batch);
    let (count, index) = (u64::from(count.max(1)), u64::from(index));
    let at = |i: u64| (batches * i / count * batch).min(total);
    (at(index), at(index + 1))
}

impl Shard {
    /// Copies items `ids` of this shard into `out` as `offset + id`, with their thumbnails, embeddings and
    /// probabilities (into the out space of the same name), checking every record against its checksum.
    fn copy(
        &self,
        rtxn: &RoTxn,
        ids: std::ops::Range<u32>,
        out: &Store,
        wtxn: &mut RwTxn,
        offset: u32,
        out_spaces: &[SpaceInfo],
    ) -> Result<()> {
        let store = &self.store;
        let lmdb = |e: heed::Error| store.heed_err(e);
        let damaged = |what, space: Option<&str>, ids: Vec<u32>| {
            MergeError::Store(StoreError::Checksum {
                dir: self.dir.clone(),
                what,
                space: space.map(str::to_string),
                ids,
            })
        };
        let (mut bad_items, mut bad_thumbs) = (Vec::new(), Vec::new());
        for r in store.db.items.remap_data_type::<Bytes>().range(rtxn, &ids).map_err(lmdb)? {
            let (id, bytes) = r.map_err(lmdb)?;
            let item = match store.check_sum(rtxn, Part::Item, &id.to_be_bytes(), bytes)? {
                Check::Mismatch => None,
                Check::Ok | Check::Unchecked => bincode::deserialize::<Item>(bytes).ok(),
            };
            match item {
                Some(item) => out.put_item(wtxn, offset + id, &item)?,
                None => bad_items.push(id),
            }
        }
        for r in store.db.thumbs.range(rtxn, &ids).map_err(lmdb)? {
            let (id, png) = r.map_err(lmdb)?;
            match store.check_sum(rtxn, Part::Thumbnail, &id.to_be_bytes(), png)? {
                Check::Mismatch => bad_thumbs.push(id),
                _ => out.put_thumbnail(wtxn, offset + id, png)?,
            }
        }
        if !bad_items.is_empty() {
            return Err(damaged("the records", None, bad_items));
        }
        if !bad_thumbs.is_empty() {
            return Err(damaged("the thumbnails", None, bad_thumbs));
        }
        for s in &self.spaces {
            let to = out_spaces.iter().find(|o| o.name == s.name).expect("merge wrote every space").index;
            let range = vec_key(s.index, ids.start)..vec_key(s.index, 0) + u64::from(ids.end);
            for (part, db, what) in [
                (Part::Embedding, store.db.vectors, "the embeddings"),
                (Part::Probs, store.db.probs, "the probabilities"),
            ] {
                let mut bad = Vec::new();
                for r in db.range(rtxn, &range).map_err(lmdb)? {
                    let (k, v) = r.map_err(lmdb)?;
                    let id = k as u32;
                    if store.check_sum(rtxn, part, &k.to_be_bytes(), v)? == Check::Mismatch || v.len() % 4 != 0 {
                        bad.push(id);
                        continue;
                    }
                    let values = le_f32(v);
                    match part {
                        Part::Embedding => out.put_embedding(wtxn, to, offset + id, &values)?,
                        _ => out.put_probs(wtxn, to, offset + id, &values)?,
                    }
                }
                if !bad.is_empty() {
                    return Err(damaged(what, Some(&s.name), bad));
                }
            }
        }
        Ok(())
    }
}
