//! The records the store keeps. Plain data; the LMDB layout that holds them lives in `store/mod.rs`.

use serde::{Deserialize, Serialize};

/// Bumped whenever the layout or a record's encoding changes; a store of another version is refused on open.
/// Version 2 added the `sums` database (checksums).
pub const SCHEMA_VERSION: u32 = 2;

/// The oldest version this torchlight opens: a version 1 store reads as one without checksums, and gains them
/// (and version 2) the first time it is opened for writing.
pub const OLDEST_READABLE: u32 = 1;

/// What was ingested: enough to refuse a second ingest of a different dataset into the same store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetInfo {
    /// What the user typed (path or hub id).
    pub source: String,
    /// Detected or forced format: parquet, hub, imagefolder, flat, idx, cifar, csv, ...
    pub format: String,
    /// Stable identity of the source (e.g. hash of its file list); equal on resume, different for another dataset.
    pub fingerprint: String,
    /// Set once every source record has been turned into an item or skipped.
    pub complete: bool,
}

/// How one embedding space was produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelSpec {
    /// vit, swin, torchscript, precomputed, ...
    pub kind: String,
    /// Hub id, directory or file the user named.
    pub source: String,
    /// Hash of the weights file(s), so a resume with other weights is refused.
    pub fingerprint: String,
    /// cls, mean, pooler, or what the TorchScript module returns.
    pub pooling: String,
    /// Input resolution (square side in pixels), 0 when not applicable.
    pub image_size: u32,
}

/// A named embedding space (e.g. "foundation", "finetuned").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpaceInfo {
    pub name: String,
    /// Dense index 0..; also the arroy index of this space.
    pub index: u16,
    pub dim: u32,
    pub model: ModelSpec,
    /// Number of classes of the model's classifier head; 0 when it has none (no probabilities stored).
    pub num_classes: u32,
    /// Class names of the model's head (config id2label), empty when unknown.
    #[serde(default)]
    pub class_names: Vec<String>,
}

/// One dataset item. Ids are dense 0..N-1 in ingest order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Item {
    /// Where the original lives: a path, or `file.parquet#row=12`, `data_batch_1.bin#7`, ...
    pub source: String,
    pub label: Option<u32>,
    pub width: u32,
    pub height: u32,
    /// Hash of the encoded image bytes (or raw pixels for IDX/CIFAR).
    pub hash: u64,
}

/// The leading fields of an `Item`, borrowed from the store (see `Store::for_each_item_ref`).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
pub struct ItemRef<'a> {
    pub source: &'a str,
    pub label: Option<u32>,
}

/// A source record that could not become an item, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Skipped {
    pub source: String,
    pub reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TagKind {
    Ok,
    Outlier,
    Mislabeled,
    Duplicate,
}

impl TagKind {
    pub const ALL: [TagKind; 4] = [TagKind::Ok, TagKind::Outlier, TagKind::Mislabeled, TagKind::Duplicate];

    pub fn as_str(self) -> &'static str {
        match self {
            TagKind::Ok => "ok",
            TagKind::Outlier => "outlier",
            TagKind::Mislabeled => "mislabeled",
            TagKind::Duplicate => "duplicate",
        }
    }

    pub fn parse(s: &str) -> Option<TagKind> {
        TagKind::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

/// A triage decision on one item. An item with no tag, no new label and no note has no record.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Tag {
    pub kind: Option<TagKind>,
    pub new_label: Option<u32>,
    pub note: Option<String>,
    /// Unix seconds of the last change.
    pub updated: u64,
}

impl Tag {
    pub fn is_empty(&self) -> bool {
        self.kind.is_none() && self.new_label.is_none() && self.note.as_deref().is_none_or(str::is_empty)
    }
}

/// A column of per-item values (scores, neighbours, projections): `width` values per item, item-major.
#[derive(Debug, Clone, PartialEq)]
pub enum Column {
    F32 { width: u32, values: Vec<f32> },
    U32 { width: u32, values: Vec<u32> },
}

impl Column {
    pub fn width(&self) -> u32 {
        match self {
            Column::F32 { width, .. } | Column::U32 { width, .. } => *width,
        }
    }

    pub fn rows(&self) -> usize {
        let len = match self {
            Column::F32 { values, .. } => values.len(),
            Column::U32 { values, .. } => values.len(),
        };
        len / self.width().max(1) as usize
    }
}

/// Label id meaning "no label" in label columns (`Store::label_ids`).
pub const NO_LABEL: u32 = u32::MAX;

/// Names of the per-space analysis columns (`Store::column(space, name)`), shared by analysis, browse and export.
pub mod columns {
    /// U32 x1, dataset-level (space ""): each item's label, `NO_LABEL` when none. Derived from the item
    /// records by `Store::put_label_column`; trusted only while its length equals the item count.
    pub const LABEL: &str = "label";
    /// F32 x1: cleanlab OutOfDistribution score, 1 = typical, towards 0 = most anomalous.
    pub const OUTLIER_SCORE: &str = "outlier_score";
    /// F32 x1: mean cosine distance (1 - cos) to the k nearest neighbours.
    pub const KNN_MEAN_DISTANCE: &str = "knn_mean_distance";
    /// U32 x1 / F32 x1: the nearest neighbour and its cosine distance.
    pub const NN_ID: &str = "nn_id";
    pub const NN_DISTANCE: &str = "nn_distance";
    /// U32 xk / F32 xk: the k nearest neighbours (self excluded), nearest first.
    pub const KNN_IDS: &str = "knn_ids";
    pub const KNN_DISTANCES: &str = "knn_distances";
    /// U32 x1: 1 for a near duplicate as cleanlab Datalab defines it: a neighbour closer than a fraction
    /// (the near-duplicate threshold) of the space's median nearest-neighbour distance, or an exact duplicate.
    pub const NEAR_DUPLICATE: &str = "near_duplicate";
    /// F32 x1: cleanlab's near_duplicate_score, `1 - exp(-nn distance / median)`: 0 = exact duplicate.
    pub const NEAR_DUPLICATE_SCORE: &str = "near_duplicate_score";
    /// U32 x1: id of the smallest member of the item's near-duplicate group, u32::MAX when none.
    pub const DUPLICATE_GROUP: &str = "duplicate_group";
    /// U32 x1: 1 when the nearest neighbour is closer than the absolute cosine duplicate threshold (the
    /// article's near-duplicate rule).
    pub const NN_FLAG: &str = "nn_flag";
    /// With classifier probabilities: U32 predicted class, F32 its probability, F32 self-confidence
    /// p(given label), U32 1 when confident learning flags the label.
    pub const PRED: &str = "pred";
    pub const CONFIDENCE: &str = "confidence";
    pub const LABEL_QUALITY: &str = "label_quality";
    pub const LABEL_ISSUE: &str = "label_issue";
    /// F32 x2: 2-D projections; every space after the first is Procrustes-aligned to the first, and in a
    /// checkpoint series (`Series`) each step to the step before it.
    pub const PCA: &str = "pca";
    pub const UMAP: &str = "umap";
    /// Drift between two spaces. Stored under the dataset-level space "" they compare the first and the last
    /// space of the series (or foundation and fine-tuned when there is no series); stored under a series
    /// step's space they compare that step with the step before it.
    /// F32 x1: Jaccard overlap of the two k-nearest-neighbour sets, 1 = same neighbours, 0 = none shared.
    pub const DRIFT_KNN_JACCARD: &str = "drift_knn_jaccard";
    /// F32 x1: distance moved in the aligned 2-D projection (UMAP when present, else PCA).
    pub const DRIFT_MOVEMENT: &str = "drift_movement";
    /// F32 x1: outlier-score rank (0 = most anomalous) in the later space minus the rank in the earlier one.
    pub const DRIFT_RANK_CHANGE: &str = "drift_rank_change";
}

/// A fine-tuning run ingested with `--checkpoints`: its spaces in training order and the loss log.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Series {
    /// The spaces of the run, in step order; the foundation, when given, is the first at step 0.
    pub steps: Vec<SeriesStep>,
    /// Training loss per logged step (trainer_state.json `log_history` entries with a `loss`), in step order.
    pub losses: Vec<LossPoint>,
    /// The space of the fine-tuned model: None = the last step's (`Series::finetuned_space`). Set when
    /// `ingest --finetuned` named another model: a step's space when its weights are that checkpoint's (it is not
    /// embedded twice), else the space `finetuned`, which is then no step of the series.
    #[serde(default)]
    pub finetuned: Option<String>,
}

impl Series {
    /// The space of the fine-tuned model: `finetuned` when set, else the last step's.
    pub fn finetuned_space(&self) -> Option<&str> {
        self.finetuned.as_deref().or_else(|| self.steps.last().map(|s| s.space.as_str()))
    }

    /// The logged loss at `step`, else the one logged nearest to it (the earlier on a tie): (logged step, loss).
    pub fn loss_near(&self, step: u64) -> Option<LossPoint> {
        self.losses.iter().copied().min_by_key(|p| (p.step.abs_diff(step), p.step))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesStep {
    /// The space holding this checkpoint's embeddings (`step-<N>`, or the foundation's name at step 0).
    pub space: String,
    pub step: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LossPoint {
    pub step: u64,
    pub loss: f64,
}

/// Which part of a dataset a shard store holds (written by `torchlight ingest --shard I/N`, read by `merge`).
/// Item ids of a shard start at 0: a shard cannot know how many records before its range were skipped, so
/// merge renumbers them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardInfo {
    /// 0-based index of this shard, of `count`.
    pub index: u32,
    pub count: u32,
    /// Source records `start..end` (positions in the source).
    pub start: u64,
    pub end: u64,
    /// Records all shards together cover (the source's length, or --limit): the shards tile `0..total`.
    pub total: u64,
    /// Records in the source: the merged dataset is complete when `total` reaches it.
    pub source_len: u64,
    /// The batch size the range was cut for: ranges end on multiples of it, so every model batch of a shard is
    /// the batch a whole run would make.
    pub batch_size: u64,
    /// The dataset's fingerprint (as in `DatasetInfo`).
    pub fingerprint: String,
}

/// Names of the resume cursors an ingest keeps (`Store::cursor`), shared by the engine's ingest and merge.
pub mod cursors {
    /// Source records turned into items or skipped.
    pub const RECORDS: &str = "records";

    /// Records a space has embedded (skipped ones included).
    pub fn space(name: &str) -> String {
        format!("space/{name}")
    }

    /// Items a space has embedded.
    pub fn space_items(name: &str) -> String {
        format!("space/{name}/items")
    }
}
