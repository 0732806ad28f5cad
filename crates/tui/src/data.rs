//! What the browser reads from a store, loaded once as flat vectors so that sorting and filtering touch
//! only memory. Per-item text (sources) is read lazily: a row at a time for the visible rows, all at once
//! only when a source filter needs it.

use std::collections::HashMap;
use std::sync::Arc;

use torchlight_store::{Column, LossPoint, Result, RoTxn, Store, Tag, columns};

/// Label id meaning "none" in the flat label vectors.
pub use torchlight_store::NO_LABEL;

/// A per-item yes/no column as bits: one bit per item where the store keeps a u32.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bits {
    words: Vec<u64>,
    len: usize,
}

impl Bits {
    /// Set where the value is 1 (the stored flag columns' "yes").
    pub fn from_flags(values: &[u32]) -> Bits {
        let mut words = vec![0u64; values.len().div_ceil(64)];
        for (i, _) in values.iter().enumerate().filter(|(_, v)| **v == 1) {
            words[i / 64] |= 1 << (i % 64);
        }
        Bits { words, len: values.len() }
    }

    pub fn get(&self, i: usize) -> bool {
        i < self.len && self.words[i / 64] >> (i % 64) & 1 == 1
    }
}

/// The analysis columns of one embedding space; a column the analysis has not written is `None`.
#[derive(Debug, Clone, Default)]
pub struct SpaceData {
    pub name: String,
    pub index: u16,
    pub outlier: Option<Vec<f32>>,
    pub nn_distance: Option<Vec<f32>>,
    pub label_quality: Option<Vec<f32>>,
    pub pred: Option<Vec<u32>>,
    pub label_issue: Option<Bits>,
    /// cleanlab's near duplicates, relative to the space's nearest-neighbour distances (flag `D`).
    pub near_duplicate: Option<Bits>,
    /// The article's flag: nearest neighbour within an absolute cosine distance (flag `n`).
    pub nn_flag: Option<Bits>,
    /// Each item's near-duplicate group (its smallest member, u32::MAX for none) and the groups' sizes.
    pub duplicate_group: Option<Vec<u32>>,
    pub group_sizes: HashMap<u32, u32>,
    /// The cosine distance of `nn_flag`, from the analysis settings.
    pub nn_threshold: Option<f64>,
    /// 2-D projection (x, y interleaved) and its name (umap, else pca).
    /// Shared with the pixel scatter's worker thread.
    pub projection: Option<(&'static str, Arc<Vec<f32>>)>,
    /// Bounding box of the projection: x0, y0, x1, y1.
    pub bounds: [f32; 4],
    /// Outlier score at or below which an item counts as an outlier (the lowest 1%).
    pub outlier_cut: f32,
    pub has_ann: bool,
    pub k: u32,
    /// In a checkpoint series: how this step drifted from the step before it.
    pub drift: Drift,
}

/// The per-item drift columns between two spaces; a column the analysis has not written is `None`.
#[derive(Debug, Clone, Default)]
pub struct Drift {
    pub knn_jaccard: Option<Vec<f32>>,
    pub movement: Option<Vec<f32>>,
    pub rank_change: Option<Vec<f32>>,
}

impl Drift {
    fn load(store: &Store, r: &RoTxn, space: &str, n: usize) -> Result<Drift> {
        let col = |c: &str| store.column(r, space, c).map(|c| f32s(c, n, 1));
        Ok(Drift {
            knn_jaccard: col(columns::DRIFT_KNN_JACCARD)?,
            movement: col(columns::DRIFT_MOVEMENT)?,
            rank_change: col(columns::DRIFT_RANK_CHANGE)?,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.knn_jaccard.is_none() && self.movement.is_none() && self.rank_change.is_none()
    }

    /// One item's values: (jaccard, movement, rank change), each when its column exists.
    pub fn of(&self, id: u32) -> [Option<f32>; 3] {
        let at = |c: &Option<Vec<f32>>| c.as_ref().and_then(|v| v.get(id as usize).copied());
        [at(&self.knn_jaccard), at(&self.movement), at(&self.rank_change)]
    }
}

/// The spaces of the article's before/after comparison, which a store without a series may hold.
pub const FOUNDATION: &str = "foundation";
pub const FINETUNED: &str = "finetuned";

/// What the steps of a `SeriesData` are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SeriesKind {
    /// A fine-tuning run's checkpoints at their training steps, with its loss log.
    #[default]
    Checkpoints,
    /// `FOUNDATION` then `FINETUNED`: two models, not a run, so no training steps and no loss log.
    Pair,
}

/// Spaces of this store in order, as the drift view steps through them: a fine-tuning run's checkpoints in
/// step order with its loss log, or the foundation/fine-tuned pair.
#[derive(Debug, Clone, Default)]
pub struct SeriesData {
    pub kind: SeriesKind,
    pub steps: Vec<Step>,
    pub losses: Vec<LossPoint>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// Index in `Data::spaces`.
    pub space: usize,
    /// The training step; 0 in a pair, which has none.
    pub step: u64,
}

impl SeriesData {
    /// The foundation/fine-tuned pair, when the store has both spaces: analysis writes their drift under ""
    /// as it does a series' first to last, so the drift view can compare them the same way.
    fn pair(spaces: &[SpaceData]) -> Option<SeriesData> {
        let at = |name: &str| spaces.iter().position(|sp| sp.name == name);
        let steps = [at(FOUNDATION)?, at(FINETUNED)?].map(|space| Step { space, step: 0 });
        Some(SeriesData { kind: SeriesKind::Pair, steps: steps.to_vec(), losses: Vec::new() })
    }

    /// The training loss at a step: the last one logged at or before it (none before the first log).
    pub fn loss_at(&self, step: u64) -> Option<f64> {
        self.losses.iter().take_while(|l| l.step <= step).last().map(|l| l.loss)
    }
}

/// Everything the table, the filters and the scatter need, for all items.
#[derive(Debug, Clone, Default)]
pub struct Data {
    pub items: u32,
    /// Shared with the pixel scatter's worker thread.
    pub label: Arc<Vec<u32>>,
    pub label_names: Vec<String>,
    pub spaces: Vec<SpaceData>,
    pub tags: HashMap<u32, Tag>,
    pub dataset: Option<String>,
    pub complete: bool,
    /// What every item's source starts with (see `common_source_prefix`); rows show what follows it.
    pub source_prefix: String,
    /// Drift between the first and the last space of the series (or foundation and fine-tuned).
    pub drift: Drift,
    /// The checkpoint series, when the store holds one whose spaces it has; else the foundation/fine-tuned
    /// pair, when it has both.
    pub series: Option<SeriesData>,
}

fn f32s(col: Option<Column>, n: usize, width: u32) -> Option<Vec<f32>> {
    match col {
        Some(Column::F32 { width: w, values }) if w == width && values.len() == n * width as usize => Some(values),
        _ => None,
    }
}

fn u32s(col: Option<Column>, n: usize) -> Option<Vec<u32>> {
    match col {
        Some(Column::U32 { width: 1, values }) if values.len() == n => Some(values),
        _ => None,
    }
}

impl Data {
    /// Reads labels, tags and every space's columns in one snapshot: an ingest committing meanwhile is not seen
    /// half-way. Columns whose length disagrees with the item count (an analysis of an older snapshot) are ignored.
    /// The sources' common prefix is read on a thread of its own, beside the columns.
    pub fn load(store: &Store) -> Result<Data> {
        let r = store.read_txn()?;
        let n = store.item_count(&r)? as usize;
        let names: Vec<(String, u16)> = store.spaces(&r)?.into_iter().map(|s| (s.name, s.index)).collect();
        // Each space's columns load on their own thread (with their own read transaction, validated
        // against this snapshot's item count) while this one scans the labels.
        let (label, spaces, prefix) = std::thread::scope(|scope| {
            let prefix = scope.spawn(|| -> Result<String> {
                let r = store.read_txn()?;
                common_source_prefix(store, &r)
            });
            let workers: Vec<_> = names
                .iter()
                .map(|(name, index)| {
                    scope.spawn(move || -> Result<SpaceData> {
                        let r = store.read_txn()?;
                        load_space(store, &r, name, *index, n)
                    })
                })
                .collect();
            let label = store.label_ids(&r);
            let spaces: Result<Vec<SpaceData>> =
                workers.into_iter().map(|w| w.join().expect("a space loader panicked")).collect();
            let prefix = prefix.join().expect("the source prefix reader panicked");
            label.map(|l| (l, spaces, prefix))
        })?;
        let spaces = spaces?;
        let dataset = store.dataset(&r)?;
        if dataset.as_ref().is_some_and(|d| d.complete) && store.label_column_stale(&r)? {
            upgrade_label_column(store, &label);
        }
        let mut label_names = store.label_names(&r)?;
        let max_label = label.iter().filter(|&&l| l != NO_LABEL).max().copied();
        if let Some(m) = max_label {
            // Labels without names still get a readable one.
            for i in label_names.len()..=m as usize {
                label_names.push(format!("#{i}"));
            }
        }
        let tags = store.tags(&r)?.into_iter().collect();
        let series = store.series(&r)?.map(|s| SeriesData {
            kind: SeriesKind::Checkpoints,
            // A step whose space is not (yet) in the store cannot be shown.
            steps: s
                .steps
                .iter()
                .filter_map(|st| Some(Step { space: spaces.iter().position(|sp| sp.name == st.space)?, step: st.step }))
                .collect(),
            losses: s.losses,
        });
        Ok(Data {
            drift: Drift::load(store, &r, "", n)?,
            series: series.filter(|s| !s.steps.is_empty()).or_else(|| SeriesData::pair(&spaces)),
            items: n as u32,
            label: Arc::new(label),
            label_names,
            spaces,
            tags,
            complete: dataset.as_ref().is_some_and(|d| d.complete),
            dataset: dataset.map(|d| d.source),
            source_prefix: prefix?,
        })
    }

    /// A source without the part every item shares: the file name, the `#123` record, what tells items apart.
    pub fn source_tail<'a>(&self, source: &'a str) -> &'a str {
        source.strip_prefix(self.source_prefix.as_str()).unwrap_or(source)
    }

    pub fn label_name(&self, label: u32) -> &str {
        if label == NO_LABEL { "-" } else { self.label_names.get(label as usize).map_or("?", String::as_str) }
    }

    /// The predicted label of `id` in `space`, else in any space that has predictions.
    pub fn pred(&self, space: usize, id: u32) -> Option<u32> {
        let own = self.spaces.get(space).and_then(|s| s.pred.as_ref());
        own.or_else(|| self.spaces.iter().find_map(|s| s.pred.as_ref())).map(|p| p[id as usize])
    }

    pub fn label_quality(&self, space: usize, id: u32) -> Option<f32> {
        let own = self.spaces.get(space).and_then(|s| s.label_quality.as_ref());
        own.or_else(|| self.spaces.iter().find_map(|s| s.label_quality.as_ref())).map(|p| p[id as usize])
    }

    pub fn label_issue(&self, space: usize, id: u32) -> bool {
        let own = self.spaces.get(space).and_then(|s| s.label_issue.as_ref());
        own.or_else(|| self.spaces.iter().find_map(|s| s.label_issue.as_ref())).is_some_and(|p| p.get(id as usize))
    }

    pub fn near_duplicate(&self, space: usize, id: u32) -> bool {
        self.spaces.get(space).and_then(|s| s.near_duplicate.as_ref()).is_some_and(|p| p.get(id as usize))
    }

    pub fn nn_flag(&self, space: usize, id: u32) -> bool {
        self.spaces.get(space).and_then(|s| s.nn_flag.as_ref()).is_some_and(|p| p.get(id as usize))
    }

    /// The near-duplicate group of `id` in `space`: its smallest member and how many items it has.
    pub fn duplicate_group(&self, space: usize, id: u32) -> Option<(u32, u32)> {
        let sp = self.spaces.get(space)?;
        let g = *sp.duplicate_group.as_ref()?.get(id as usize)?;
        sp.group_sizes.get(&g).map(|&size| (g, size))
    }

    pub fn is_outlier(&self, space: usize, id: u32) -> bool {
        self.spaces
            .get(space)
            .and_then(|s| s.outlier.as_ref().map(|o| o[id as usize] <= s.outlier_cut))
            .unwrap_or(false)
    }
}

/// A store written before the label column existed pays a scan of every item record on each open: the first
/// browse of a complete dataset writes the column (from the labels it just read) so later opens do not. Best
/// effort: a read-only store, or one an ingest or analysis is writing (writer lock held), is left as it is.
fn upgrade_label_column(store: &Store, label: &[u32]) {
    let Ok(_lock) = store.lock_writer("browse") else { return };
    let _ = (|| -> Result<()> {
        let mut w = store.write_txn()?;
        if store.item_count(&w)? as usize == label.len() && store.label_column_stale(&w)? {
            store.put_column(&mut w, "", columns::LABEL, &Column::U32 { width: 1, values: label.to_vec() })?;
        }
        store.commit(w)
    })();
}

fn load_space(store: &Store, r: &RoTxn, name: &str, index: u16, n: usize) -> Result<SpaceData> {
    let col = |c: &str| store.column(r, name, c);
    let outlier = f32s(col(columns::OUTLIER_SCORE)?, n, 1);
    let projection = match f32s(col(columns::UMAP)?, n, 2) {
        Some(p) => Some(("umap", Arc::new(p))),
        None => f32s(col(columns::PCA)?, n, 2).map(|p| ("pca", Arc::new(p))),
    };
    let mut bounds = [0.0, 0.0, 1.0, 1.0];
    if let Some((_, p)) = &projection
        && !p.is_empty()
    {
        bounds = [f32::MAX, f32::MAX, f32::MIN, f32::MIN];
        for q in p.chunks_exact(2).filter(|q| q[0].is_finite() && q[1].is_finite()) {
            bounds = [bounds[0].min(q[0]), bounds[1].min(q[1]), bounds[2].max(q[0]), bounds[3].max(q[1])];
        }
    }
    let outlier_cut = outlier.as_ref().map_or(f32::MIN, |o| {
        let mut v = o.clone();
        let at = (v.len() / 100).min(v.len().saturating_sub(1));
        if v.is_empty() { f32::MIN } else { *v.select_nth_unstable_by(at, f32::total_cmp).1 }
    });
    let k = store.column_row(r, name, columns::KNN_IDS, 0)?.map_or(0, |c| c.width());
    let duplicate_group = u32s(col(columns::DUPLICATE_GROUP)?, n);
    let mut group_sizes = HashMap::new();
    for &g in duplicate_group.iter().flatten().filter(|&&g| g != u32::MAX) {
        *group_sizes.entry(g).or_insert(0) += 1;
    }
    let nn_threshold = store.setting(r, "analysis")?.and_then(|s| s.get("duplicate_threshold")?.as_f64());
    Ok(SpaceData {
        name: name.to_string(),
        index,
        nn_distance: f32s(col(columns::NN_DISTANCE)?, n, 1),
        label_quality: f32s(col(columns::LABEL_QUALITY)?, n, 1),
        pred: u32s(col(columns::PRED)?, n),
        label_issue: u32s(col(columns::LABEL_ISSUE)?, n).map(|v| Bits::from_flags(&v)),
        near_duplicate: u32s(col(columns::NEAR_DUPLICATE)?, n).map(|v| Bits::from_flags(&v)),
        nn_flag: u32s(col(columns::NN_FLAG)?, n).map(|v| Bits::from_flags(&v)),
        duplicate_group,
        group_sizes,
        nn_threshold,
        outlier,
        projection,
        bounds,
        outlier_cut,
        has_ann: store.has_ann(r, index),
        k,
        drift: Drift::load(store, r, name, n)?,
    })
}

/// The k nearest neighbours of `id` in a space, from the analysis's lists, as (id, distance).
pub fn neighbours(store: &Store, r: &RoTxn, space: &str, id: u32) -> Result<Vec<(u32, f32)>> {
    let ids = store.column_row(r, space, columns::KNN_IDS, id)?;
    let dists = store.column_row(r, space, columns::KNN_DISTANCES, id)?;
    Ok(match (ids, dists) {
        (Some(Column::U32 { values: ids, .. }), Some(Column::F32 { values: d, .. })) => {
            ids.into_iter().zip(d).collect()
        }
        (Some(Column::U32 { values: ids, .. }), _) => ids.into_iter().map(|i| (i, f32::NAN)).collect(),
        _ => Vec::new(),
    })
}

/// The confidence of the prediction `Data::pred` shows for `id`: the same space's column, else the first space
/// with predictions.
pub fn confidence(store: &Store, r: &RoTxn, data: &Data, space: usize, id: u32) -> Option<f32> {
    let own = data.spaces.get(space).filter(|s| s.pred.is_some());
    let sp = own.or_else(|| data.spaces.iter().find(|s| s.pred.is_some()))?;
    match store.column_row(r, &sp.name, columns::CONFIDENCE, id) {
        Ok(Some(Column::F32 { values, .. })) => values.first().copied(),
        _ => None,
    }
}

/// Every item's source in one buffer rather than a `String` each, which would cost several times the memory.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    text: String,
    ends: Vec<usize>,
}

impl Sources {
    pub fn get(&self, id: u32) -> &str {
        let i = id as usize;
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.text[start..self.ends[i]]
    }
}

/// Every item's source, id order (only for the source filter).
pub fn sources(store: &Store) -> Result<Sources> {
    let r = store.read_txn()?;
    let mut s = Sources::default();
    store.for_each_item_ref(&r, |_, item| {
        s.text.push_str(item.source);
        s.ends.push(s.text.len());
    })?;
    s.text.shrink_to_fit();
    Ok(s)
}

/// The longest start all sources share, cut back to a path separator (kept) or a `#` (not kept), so that
/// what is left of a source begins at a file or folder name or at its `#` record index. Empty for an empty
/// store or sources with nothing in common.
fn common_source_prefix(store: &Store, r: &RoTxn) -> Result<String> {
    let mut first: Option<String> = None;
    let mut len = 0;
    store.for_each_item_ref(r, |_, item| match &first {
        None => {
            first = Some(item.source.to_string());
            len = item.source.len();
        }
        Some(f) => len = common_len(&f[..len], item.source),
    })?;
    let first = first.unwrap_or_default();
    Ok(up_to_separator(&first[..len]).to_string())
}

/// `common` cut back to its last path separator (kept) or `#` (not kept).
fn up_to_separator(common: &str) -> &str {
    match common.rfind(['/', '\\', '#']) {
        Some(i) if common.as_bytes()[i] == b'#' => &common[..i],
        Some(i) => &common[..=i],
        None => "",
    }
}

/// Length in bytes of the common start of two strings, on a character boundary of both.
fn common_len(a: &str, b: &str) -> usize {
    let n = a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count();
    (0..=n).rev().find(|&i| a.is_char_boundary(i)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::{common_len, up_to_separator};

    #[test]
    fn common_len_stops_on_a_character_boundary() {
        assert_eq!(common_len("a/b/c", "a/b/d"), 4);
        assert_eq!(common_len("é", "è"), 0, "the two share a first byte, not a character");
        assert_eq!(common_len("abc", "abc"), 3);
        assert_eq!(common_len("", "abc"), 0);
    }

    #[test]
    fn the_prefix_ends_before_a_file_name_or_a_record_index() {
        assert_eq!(up_to_separator("/home/u/.cache/demo/mnist.gz#1"), "/home/u/.cache/demo/mnist.gz");
        assert_eq!(up_to_separator("synth/"), "synth/");
        assert_eq!(up_to_separator("data/img_00"), "data/");
        assert_eq!(up_to_separator(r"C:\data\cat"), r"C:\data\");
        assert_eq!(up_to_separator("img_00"), "");
    }
}
