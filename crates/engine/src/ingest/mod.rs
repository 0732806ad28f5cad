//! Ingest: source -> decode + preprocess (parallel) -> model(s) -> store, resumable.
//!
//! Threads: a reader walks the source in order and cuts it into chunks (chunk ends at multiples of the
//! batch size, so a resumed run batches exactly as an uninterrupted one); a pool decodes each chunk once,
//! makes its thumbnail and preprocesses it once per distinct model input; the coordinator puts chunks back
//! in order, gives ids, runs each model on the chunk as one batch, and hands the results to a writer that
//! commits each chunk in ONE transaction together with the resume cursors. A kill at any moment leaves
//! the last committed chunk; the next run starts after it.
//!
//! Cursors (in `store.cursor`): `records` = source records turned into items or skipped; per space
//! `space/NAME` = records embedded (skipped ones included) and `space/NAME/items` = items embedded. A
//! space added to an existing store starts at record 0 and catches up while the others wait.
//!
//! Modules: `resume` (the checks that a store belongs to this dataset and these models, and the cursors),
//! `pipeline` (the threads), `import` (precomputed embeddings), `progress` (bars and the summary), `shard`
//! (`--shard I/N`: one part of the records into a store of its own, for `torchlight merge`), `series`
//! (`--checkpoints`: a fine-tuning run's checkpoints, whose spaces are embedded in the same pass as the other
//! models, and the `Series` record written with the spaces).

mod import;
mod pipeline;
mod progress;
mod resume;
pub mod series;
mod shard;

use std::sync::Arc;
use std::time::{Duration, Instant};

use image::DynamicImage;

pub use import::{
    check_embedding_column, check_embeddings_file, import_embedding_column, import_embeddings,
    parse_embedding_column_arg, parse_embeddings_arg,
};
pub use progress::format_summary;
pub use shard::{Shard, ShardError, describe as describe_shard, resolve_shard, run_shard, shard_info};

use crate::source::embeddings::EmbeddingsError;
use crate::source::{Source, SourceError, Unreadable};
use torchlight_store::{ModelSpec, Series, ShardInfo, Skipped, SpaceInfo, Store, StoreError};

/// Longest side of a thumbnail in pixels; smaller images are kept at their size.
pub const THUMB_SIDE: u32 = 96;

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The store holds another dataset (the message names both).
    #[error("{0}")]
    OtherDataset(String),
    /// A space of the store was made with another model (the message names both).
    #[error("{0}")]
    OtherModel(String),
    #[error(
        "space {space} of the store at {dir} is unfinished ({done} of {total} records) and no model was given \
         for it: pass its model again (--model {space}=MODEL, --foundation, --finetuned or --checkpoints)"
    )]
    UnfinishedSpace { dir: String, space: String, done: u64, total: u64 },
    #[error(
        "the store at {dir} holds the checkpoint series {stored}; now given {given}, without {missing}: give the \
         same checkpoints again (more may be added), or another --store"
    )]
    OtherSeries { dir: String, stored: String, given: String, missing: String },
    #[error("space name {0} is given twice")]
    DuplicateSpace(String),
    #[error("model of space {space} failed: {why}")]
    Model { space: String, why: EmbedError },
    #[error(
        "model of space {space} returned {got} values for {n} images; expected {n} x {dim} (the dimension it \
         reported)"
    )]
    ModelShape { space: String, got: usize, n: usize, dim: usize },
    #[error(
        "record {source_ref} was an item of this store but can no longer be read ({why}); the dataset changed: \
         use another --store"
    )]
    Changed { source_ref: String, why: Unreadable },
    #[error(
        "model of space {space} returned NaN or infinite values for {count} image(s) ({sources}); nothing of \
         this batch was written: check the model and its preprocessing"
    )]
    NotFinite { space: String, count: usize, sources: String },
    #[error("{0} holds no records to ingest")]
    NoRecords(String),
    #[error("the source ended at record {at} of the {total} it announced")]
    SourceEnded { at: u64, total: u64 },
    #[error("embeddings {file}: {why}")]
    Embeddings { file: String, why: EmbeddingsError },
    #[error("embeddings {file}: {why}")]
    EmbeddingsShape { file: String, why: String },
    /// Stopped on request (a signal) after committing what was done.
    #[error("ingest stopped on request; everything committed so far is kept")]
    Interrupted,
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Shard(#[from] ShardError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub type Result<T, E = IngestError> = std::result::Result<T, E>;

/// Turns a decoded image into a model input (CHW f32) appended to the batch. Runs on the decode pool.
pub type PrepareFn = Arc<dyn Fn(&DynamicImage, &mut Vec<f32>) + Send + Sync>;

/// Why a model failed on a batch.
pub type EmbedError = Box<dyn std::error::Error + Send + Sync>;

/// Runs a model on `n` prepared images laid end to end; returns embeddings [n * dim] and, with a
/// classifier head, probabilities [n * num_classes]. The batch is the model's to overwrite. Runs on the
/// coordinator thread.
pub type EmbedFn = Box<dyn FnMut(&mut [f32], usize) -> Result<(Vec<f32>, Option<Vec<f32>>), EmbedError> + Send>;

/// One model to ingest with, as the pipeline sees it.
pub struct SpaceModel {
    /// Name, dim, model spec, head classes; the index is assigned by the store.
    pub space: SpaceInfo,
    /// Equal keys = equal preprocessing: the image is then preprocessed once for all of those models.
    pub prepare_key: String,
    pub prepare: PrepareFn,
    pub embed: EmbedFn,
}

#[derive(Debug, Clone)]
pub struct IngestOptions {
    /// What the user typed as SOURCE (recorded in the store).
    pub source_spec: String,
    pub limit: Option<usize>,
    pub batch_size: usize,
    /// Decode/preprocess threads.
    pub threads: usize,
    /// Progress bars and skip warnings on stderr (bars only when it is a terminal).
    pub progress: bool,
    /// Polled between chunks: true stops the run after committing what was done (`IngestError::Interrupted`).
    pub stop: fn() -> bool,
    /// The checkpoint series of `--checkpoints`, written with the spaces before the first item; its spaces must
    /// be among the models (or the store's).
    pub series: Option<Series>,
}

/// Per-space figures of one run.
#[derive(Debug, Clone)]
pub struct SpaceSummary {
    pub name: String,
    pub embedded: u64,
    pub model_time: Duration,
}

/// Where the time of a run went, stage by stage, summed over the threads that ran each stage: decode,
/// preprocess and thumbnails run on the `--threads` pool, the model and batching on the coordinator, the
/// writes on the writer thread.
#[derive(Debug, Clone, Copy, Default)]
pub struct StageTimes {
    pub decode: Duration,
    /// Resize, crop, rescale and normalise, once per distinct model input.
    pub preprocess: Duration,
    pub thumbnails: Duration,
    pub model: Duration,
    /// The coordinator's work besides the model: ids, batches, checks.
    pub batching: Duration,
    /// Store transactions, commits included.
    pub writes: Duration,
    /// The coordinator waiting for the next decoded chunk (the pool is behind the model).
    pub waiting: Duration,
}

impl StageTimes {
    fn add_workers(&mut self, other: &StageTimes) {
        self.decode += other.decode;
        self.preprocess += other.preprocess;
        self.thumbnails += other.thumbnails;
    }
}

#[derive(Debug, Clone)]
pub struct Summary {
    /// Records read by this run (decoded or passed over).
    pub records: u64,
    /// Items in the store after the run.
    pub items: u32,
    /// Items added by this run.
    pub new_items: u64,
    /// Records skipped by this run, with reasons.
    pub skipped: Vec<Skipped>,
    /// All skipped records in the store.
    pub skipped_total: usize,
    pub spaces: Vec<SpaceSummary>,
    pub elapsed: Duration,
    pub stages: StageTimes,
    /// Whether every record (up to the limit) is now an item or skipped, and every space caught up.
    pub complete: bool,
}

/// A space record for a model that the store completes with its index when the ingest starts.
pub fn space_info(name: &str, model: ModelSpec, dim: usize, num_classes: usize, class_names: Vec<String>) -> SpaceInfo {
    SpaceInfo { name: name.to_string(), index: 0, dim: dim as u32, model, num_classes: num_classes as u32, class_names }
}

/// A loaded model as the pipeline runs it, embedding into space `name`. Models with equal preprocessing share
/// one preprocessed tensor per image.
pub fn space_model(name: &str, embedder: crate::model::Embedder) -> SpaceModel {
    let cfg = embedder.preprocess_config().clone();
    let space = space_info(name, embedder.spec(), embedder.dim(), embedder.num_classes(), embedder.class_names());
    SpaceModel {
        space,
        prepare_key: format!("{cfg:?}"),
        prepare: Arc::new(move |img, out| crate::preprocess::preprocess_into(img, &cfg, out)),
        embed: Box::new(move |batch, n| {
            embedder.embed_in_place(batch, n).map(|o| (o.embeddings, o.probs)).map_err(|e| e.into())
        }),
    }
}

/// Runs the ingest: everything not yet committed, from where the last run stopped.
pub fn run(store: &Store, source: &dyn Source, models: Vec<SpaceModel>, opts: &IngestOptions) -> Result<Summary> {
    run_in(store, source, models, opts, None)
}

/// `run` for a whole store (`shard` None) or for a shard store, which records the part it holds.
fn run_in(
    store: &Store,
    source: &dyn Source,
    mut models: Vec<SpaceModel>,
    opts: &IngestOptions,
    shard: Option<&ShardInfo>,
) -> Result<Summary> {
    let started = Instant::now();
    let info = source.info().clone();
    let total = opts.limit.map_or(info.len, |l| l.min(info.len)) as u64;
    resume::prepare_store(store, source, &mut models, opts, total, shard)?;
    let cur = resume::read_cursors(store, &models)?;
    let batch = opts.batch_size.max(1) as u64;

    // Distinct preprocessing, and which one each model uses.
    let mut keys: Vec<String> = Vec::new();
    let mut prepares: Vec<PrepareFn> = Vec::new();
    let mut model_key = Vec::new();
    for m in &models {
        let k = match keys.iter().position(|k| *k == m.prepare_key) {
            Some(k) => k,
            None => {
                keys.push(m.prepare_key.clone());
                prepares.push(m.prepare.clone());
                keys.len() - 1
            }
        };
        model_key.push(k);
    }

    // Where this run starts: the earliest cursor, with the item id there.
    let (start, start_item) =
        cur.spaces.iter().copied().chain(std::iter::once((cur.records, cur.items))).min_by_key(|&(r, _)| r).unwrap();
    let start = start.min(total);

    let names: Vec<String> = if models.is_empty() {
        vec!["items".to_string()]
    } else {
        models.iter().map(|m| m.space.name.clone()).collect()
    };
    let bar_starts: Vec<u64> = if models.is_empty() {
        vec![cur.records.min(total)]
    } else {
        cur.spaces.iter().map(|&(r, _)| r.min(total)).collect()
    };
    let bars = progress::Bars::new(&names, total, &bar_starts, opts.progress);

    let mut summary = Summary {
        records: 0,
        items: cur.items,
        new_items: 0,
        skipped: Vec::new(),
        skipped_total: 0,
        spaces: models
            .iter()
            .map(|m| SpaceSummary { name: m.space.name.clone(), embedded: 0, model_time: Duration::ZERO })
            .collect(),
        elapsed: Duration::ZERO,
        stages: StageTimes::default(),
        complete: false,
    };

    let plan = pipeline::Plan {
        total,
        batch,
        start,
        start_item,
        cursors: cur,
        prepares,
        model_key,
        source_len: info.len as u64,
    };
    let result = pipeline::run(store, source, &mut models, opts, &plan, &bars, &mut summary);
    bars.finish();
    result?;

    let rtxn = store.read_txn()?;
    summary.items = store.item_count(&rtxn)?;
    summary.skipped_total = store.skipped(&rtxn)?.len();
    summary.complete = store.dataset(&rtxn)?.is_some_and(|d| d.complete);
    summary.elapsed = started.elapsed();
    Ok(summary)
}
