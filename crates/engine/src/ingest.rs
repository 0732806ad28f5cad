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

use std::collections::{BTreeMap, HashMap};
use std::io::Cursor;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::time::{Duration, Instant};

use image::DynamicImage;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::source::{Record, Source, SourceError};
use torchlight_store::{DatasetInfo, Item, ModelSpec, Skipped, SpaceInfo, Store, StoreError};

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
         for it: pass its model again (--model {space}=MODEL, --foundation or --finetuned)"
    )]
    UnfinishedSpace { dir: String, space: String, done: u64, total: u64 },
    #[error("space name {0} is given twice")]
    DuplicateSpace(String),
    #[error("model of space {space} failed: {why}")]
    Model { space: String, why: String },
    #[error(
        "model of space {space} returned {got} values for {n} images; expected {n} x {dim} (the dimension it \
         reported)"
    )]
    ModelShape { space: String, got: usize, n: usize, dim: usize },
    #[error(
        "record {source_ref} was an item of this store but can no longer be read ({why}); the dataset changed: \
         use another --store"
    )]
    Changed { source_ref: String, why: String },
    #[error("the source ended at record {at} of the {total} it announced")]
    SourceEnded { at: u64, total: u64 },
    #[error("embeddings {file}: {why}")]
    Embeddings { file: String, why: String },
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub type Result<T, E = IngestError> = std::result::Result<T, E>;

/// Turns a decoded image into a model input (CHW f32). Runs on the decode pool.
pub type PrepareFn = Arc<dyn Fn(&DynamicImage) -> Vec<f32> + Send + Sync>;

/// Runs a model on `n` prepared images laid end to end; returns embeddings [n * dim] and, with a
/// classifier head, probabilities [n * num_classes]. Runs on the coordinator thread.
pub type EmbedFn = Box<dyn FnMut(&[f32], usize) -> Result<(Vec<f32>, Option<Vec<f32>>), String> + Send>;

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
}

/// Per-space figures of one run.
#[derive(Debug, Clone)]
pub struct SpaceSummary {
    pub name: String,
    pub embedded: u64,
    pub model_time: Duration,
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
    /// Whether every record (up to the limit) is now an item or skipped, and every space caught up.
    pub complete: bool,
}

fn other_model(dir: &str, space: &str, stored: &ModelSpec, given: &ModelSpec) -> IngestError {
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

fn space_cursor(name: &str) -> String {
    format!("space/{name}")
}

fn space_items_cursor(name: &str) -> String {
    format!("space/{name}/items")
}

/// Checks the store against the dataset and the models, then records the dataset, labels and spaces.
/// Every refusal happens here, before the first write.
fn prepare_store(
    store: &Store,
    source: &dyn Source,
    models: &mut [SpaceModel],
    opts: &IngestOptions,
    total: u64,
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
    for m in models.iter_mut() {
        m.space = store.put_space(&mut wtxn, m.space.clone())?;
    }
    store.commit(wtxn)?;
    Ok(())
}

/// What the decode pool makes of one record.
struct Prepared {
    record: Record,
    /// Decode result: the item fields and thumbnail, or why it cannot be read. None = not decoded
    /// (nothing needed it).
    decoded: Option<Result<DecodedItem, String>>,
}

struct DecodedItem {
    width: u32,
    height: u32,
    hash: u64,
    /// PNG, only for records that become new items.
    thumb: Option<Vec<u8>>,
    /// Model inputs by prepare key index.
    inputs: Vec<Option<Vec<f32>>>,
}

/// One chunk for the decode pool: its records and what each of them needs.
struct ChunkJob {
    n: usize,
    start: u64,
    records: Vec<Record>,
    /// Records from here on become new items (and need thumbnails).
    records_cursor: u64,
    /// Per model: records from here on need its input.
    space_starts: Vec<u64>,
    /// Per model: its prepare function's index.
    model_key: Vec<usize>,
    prepares: Vec<PrepareFn>,
}

impl ChunkJob {
    /// Decodes each record at most once, thumbnails new ones, prepares each distinct model input once.
    fn run(self) -> (usize, Vec<Prepared>) {
        let ChunkJob { n, start, records, records_cursor, space_starts, model_key, prepares } = self;
        let prepared = records
            .into_iter()
            .enumerate()
            .map(|(i, record)| {
                let pos = start + i as u64;
                let is_new = pos >= records_cursor;
                let mut need = vec![false; prepares.len()];
                for (m, &k) in model_key.iter().enumerate() {
                    need[k] |= pos >= space_starts[m];
                }
                if !is_new && !need.iter().any(|&x| x) {
                    return Prepared { record, decoded: None };
                }
                let decoded = record.decode().map(|d| DecodedItem {
                    width: d.image.width(),
                    height: d.image.height(),
                    hash: d.hash,
                    thumb: is_new.then(|| thumbnail_png(&d.image)),
                    inputs: need.iter().zip(&prepares).map(|(&nd, p)| nd.then(|| p(&d.image))).collect(),
                });
                Prepared { record, decoded: Some(decoded) }
            })
            .collect();
        (n, prepared)
    }
}

/// Writes consecutive chunks in one transaction, in order (a later chunk's cursors win).
fn write_batches(store: &Store, group: &[WriteBatch]) -> Result<()> {
    let mut wtxn = store.write_txn()?;
    for wb in group {
        write_batch(store, &mut wtxn, wb)?;
    }
    store.commit(wtxn)?;
    Ok(())
}

fn write_batch(store: &Store, wtxn: &mut torchlight_store::RwTxn<'_>, wb: &WriteBatch) -> Result<()> {
    for (id, item, thumb) in &wb.items {
        store.put_item(wtxn, *id, item)?;
        store.put_thumbnail(wtxn, *id, thumb)?;
    }
    for s in &wb.skipped {
        store.push_skipped(wtxn, s)?;
    }
    for (space, id, v) in &wb.embeddings {
        store.put_embedding(wtxn, *space, *id, v)?;
    }
    for (space, id, p) in &wb.probs {
        store.put_probs(wtxn, *space, *id, p)?;
    }
    for (name, v) in &wb.cursors {
        store.put_cursor(wtxn, name, *v)?;
    }
    if let Some(complete) = wb.complete
        && let Some(mut d) = store.dataset(wtxn)?
    {
        d.complete = complete;
        store.put_dataset(wtxn, &d)?;
    }
    Ok(())
}

/// What the writer commits for one chunk, atomically.
#[derive(Default)]
struct WriteBatch {
    items: Vec<(u32, Item, Vec<u8>)>,
    skipped: Vec<Skipped>,
    embeddings: Vec<(u16, u32, Vec<f32>)>,
    probs: Vec<(u16, u32, Vec<f32>)>,
    cursors: Vec<(String, u64)>,
    complete: Option<bool>,
}

pub fn thumbnail_png(image: &DynamicImage) -> Vec<u8> {
    let small = if image.width().max(image.height()) > THUMB_SIDE {
        image.thumbnail(THUMB_SIDE, THUMB_SIDE)
    } else {
        image.clone()
    };
    let small = match small {
        DynamicImage::ImageLuma8(_) | DynamicImage::ImageRgb8(_) | DynamicImage::ImageRgba8(_) => small,
        DynamicImage::ImageLumaA8(_) => DynamicImage::ImageRgba8(small.to_rgba8()),
        other if other.color().has_alpha() => DynamicImage::ImageRgba8(other.to_rgba8()),
        other => DynamicImage::ImageRgb8(other.to_rgb8()),
    };
    let mut out = Vec::new();
    small.write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png).expect("PNG encoding into memory");
    out
}

/// Where each cursor stands at the start of a run.
struct Cursors {
    records: u64,
    items: u32,
    /// Per model (same order as `models`): (records, items).
    spaces: Vec<(u64, u32)>,
}

fn read_cursors(store: &Store, models: &[SpaceModel]) -> Result<Cursors> {
    let rtxn = store.read_txn()?;
    let records = store.cursor(&rtxn, "records")?;
    let items = store.item_count(&rtxn)?;
    let mut spaces = Vec::new();
    for m in models {
        let r = store.cursor(&rtxn, &space_cursor(&m.space.name))?;
        let i = store.cursor(&rtxn, &space_items_cursor(&m.space.name))? as u32;
        spaces.push((r, i));
    }
    Ok(Cursors { records, items, spaces })
}

struct Bars {
    multi: MultiProgress,
    bars: Vec<ProgressBar>,
    enabled: bool,
}

impl Bars {
    fn new(names: &[String], total: u64, starts: &[u64], enabled: bool) -> Bars {
        let target = if enabled { ProgressDrawTarget::stderr() } else { ProgressDrawTarget::hidden() };
        let multi = MultiProgress::with_draw_target(target);
        let style = ProgressStyle::with_template(
            "{prefix:>12} [{bar:32.cyan/blue}] {pos}/{len} {per_sec:>12} ETA {eta:>4} {elapsed:>4}",
        )
        .expect("valid template")
        .progress_chars("=> ");
        let bars = names
            .iter()
            .zip(starts)
            .map(|(name, &start)| {
                let bar = multi.add(ProgressBar::new(total));
                bar.set_style(style.clone());
                bar.set_prefix(name.clone());
                bar.set_position(start);
                bar.reset_eta();
                bar
            })
            .collect();
        Bars { multi, bars, enabled }
    }

    fn warn(&self, msg: &str) {
        if self.enabled {
            self.multi.suspend(|| eprintln!("warning: {msg}"));
        }
    }

    fn finish(&self) {
        for b in &self.bars {
            b.finish();
        }
    }
}

/// Runs the ingest: everything not yet committed, from where the last run stopped.
pub fn run(store: &Store, source: &dyn Source, mut models: Vec<SpaceModel>, opts: &IngestOptions) -> Result<Summary> {
    let started = Instant::now();
    let info = source.info().clone();
    let total = opts.limit.map_or(info.len, |l| l.min(info.len)) as u64;
    prepare_store(store, source, &mut models, opts, total)?;
    let cur = read_cursors(store, &models)?;
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
    let bars = Bars::new(&names, total, &bar_starts, opts.progress);

    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(opts.threads.max(1))
        .thread_name(|i| format!("decode-{i}"))
        .build()
        .expect("decode thread pool");
    // Chunks in flight between reader and coordinator: enough to keep every decode thread busy.
    let inflight = 2 * opts.threads.max(1) + 2;

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
        complete: false,
    };

    let records_cursor = cur.records;
    let space_starts: Vec<u64> = cur.spaces.iter().map(|&(r, _)| r).collect();
    let result = std::thread::scope(|scope| -> Result<()> {
        let (done_tx, done_rx) = std::sync::mpsc::channel::<Result<(usize, Vec<Prepared>)>>();
        // One token per chunk in flight: the reader blocks when the coordinator is behind.
        let (tokens_tx, tokens_rx) = sync_channel::<()>(inflight);
        let (write_tx, write_rx) = sync_channel::<WriteBatch>(8);

        // Reader: cuts the source into chunks ending at multiples of the batch size, hands each to the pool.
        let pool = &pool;
        let prepares = &prepares;
        let model_key_r = model_key.clone();
        let reader = scope.spawn(move || {
            let mut iter = match source.records(start as usize) {
                Ok(it) => it,
                Err(e) => {
                    let _ = done_tx.send(Err(e.into()));
                    return;
                }
            };
            let mut pos = start;
            let mut n = 0usize;
            while pos < total {
                let end = ((pos / batch + 1) * batch).min(total);
                let mut records = Vec::with_capacity((end - pos) as usize);
                for at in pos..end {
                    match iter.next() {
                        Some(Ok(r)) => records.push(r),
                        Some(Err(e)) => {
                            let _ = done_tx.send(Err(e.into()));
                            return;
                        }
                        None => {
                            let _ = done_tx.send(Err(IngestError::SourceEnded { at, total }));
                            return;
                        }
                    }
                }
                if tokens_tx.send(()).is_err() {
                    return;
                }
                let job = ChunkJob {
                    n,
                    start: pos,
                    records,
                    records_cursor,
                    space_starts: space_starts.clone(),
                    model_key: model_key_r.clone(),
                    prepares: prepares.clone(),
                };
                let tx = done_tx.clone();
                pool.spawn(move || {
                    let _ = tx.send(Ok(job.run()));
                });
                pos = end;
                n += 1;
            }
        });

        // Writer: one transaction per chunk, cursors included; chunks that queued up while it committed (the
        // model ran ahead of the disk's syncs) go into one transaction together: fewer syncs, same resume points.
        let writer = scope.spawn(move || -> Result<()> {
            while let Ok(first) = write_rx.recv() {
                let mut group = vec![first];
                group.extend(write_rx.try_iter());
                write_batches(store, &group)?;
            }
            Ok(())
        });

        let coordinator = Coordinator {
            store,
            models: &mut models,
            model_key: &model_key,
            bars: &bars,
            progress: opts.progress,
            source_len: info.len as u64,
            summary: &mut summary,
        };
        let coordinated = coordinator.run(&cur, start, start_item, total, Channels { done_rx, tokens_rx, write_tx });
        // The coordinator has dropped its channel ends: a reader or writer still running stops now.
        let written = writer.join().expect("writer thread");
        reader.join().expect("reader thread");
        coordinated?;
        written
    });
    bars.finish();
    result?;

    let rtxn = store.read_txn()?;
    summary.items = store.item_count(&rtxn)?;
    summary.skipped_total = store.skipped(&rtxn)?.len();
    summary.complete = store.dataset(&rtxn)?.is_some_and(|d| d.complete);
    summary.elapsed = started.elapsed();
    Ok(summary)
}

/// The coordinator's ends of the pipeline's channels; dropped when it returns, which stops the others.
struct Channels {
    done_rx: Receiver<Result<(usize, Vec<Prepared>)>>,
    tokens_rx: Receiver<()>,
    write_tx: SyncSender<WriteBatch>,
}

/// Puts decoded chunks back in order, gives item ids, runs the models, sends each chunk to the writer.
struct Coordinator<'a, 'm> {
    store: &'a Store,
    models: &'a mut [SpaceModel],
    model_key: &'a [usize],
    bars: &'a Bars,
    progress: bool,
    source_len: u64,
    summary: &'m mut Summary,
}

impl Coordinator<'_, '_> {
    fn run(mut self, cur: &Cursors, start: u64, start_item: u32, total: u64, ch: Channels) -> Result<()> {
        let mut pending: BTreeMap<usize, Vec<Prepared>> = BTreeMap::new();
        let mut next_chunk = 0usize;
        let mut pos = start;
        // Id of the next already-stored item (records below the records cursor), and of the next new one.
        let mut next_item = start_item;
        let mut new_item = cur.items;
        let mut records_pos = cur.records;
        let mut space_pos: Vec<(u64, u32)> = cur.spaces.clone();
        while pos < total {
            let prepared = loop {
                if let Some(p) = pending.remove(&next_chunk) {
                    break p;
                }
                match ch.done_rx.recv() {
                    Ok(msg) => {
                        let (n, p) = msg?;
                        pending.insert(n, p);
                    }
                    // Everyone upstream is gone without an error: only when the writer failed first.
                    Err(_) => return Ok(()),
                }
            };
            let _ = ch.tokens_rx.recv();
            next_chunk += 1;
            let chunk_start = pos;
            let chunk_end = pos + prepared.len() as u64;
            let mut wb = WriteBatch::default();
            let ids = self.assign_ids(&prepared, chunk_start, records_pos, &mut next_item, &mut new_item, &mut wb)?;
            self.summary.records += prepared.len() as u64;
            for (m, sp) in space_pos.iter_mut().enumerate() {
                self.embed_chunk(m, &prepared, &ids, chunk_start, sp, &mut wb)?;
                if chunk_end > sp.0 {
                    sp.0 = chunk_end;
                    let name = &self.models[m].space.name;
                    wb.cursors.push((space_cursor(name), sp.0));
                    wb.cursors.push((space_items_cursor(name), u64::from(sp.1)));
                }
                if self.progress {
                    self.bars.bars[m].set_position(sp.0);
                }
            }
            if chunk_end > records_pos {
                records_pos = chunk_end;
                wb.cursors.push(("records".to_string(), records_pos));
                if self.models.is_empty() && self.progress {
                    self.bars.bars[0].set_position(records_pos);
                }
            }
            if chunk_end == total {
                // Complete = the whole source, not just up to --limit.
                let all = self.source_len;
                wb.complete = Some(records_pos >= all && space_pos.iter().all(|&(r, _)| r >= all));
            }
            pos = chunk_end;
            if ch.write_tx.send(wb).is_err() {
                // The writer stopped on an error; the caller reports it.
                return Ok(());
            }
        }
        Ok(())
    }

    /// Item id of each record of the chunk (None = skipped). New records become items or skipped ones;
    /// records ingested by an earlier run are matched to their stored item by source.
    fn assign_ids(
        &mut self,
        prepared: &[Prepared],
        chunk_start: u64,
        records_pos: u64,
        next_item: &mut u32,
        new_item: &mut u32,
        wb: &mut WriteBatch,
    ) -> Result<Vec<Option<u32>>> {
        let mut ids = Vec::with_capacity(prepared.len());
        let rtxn = if chunk_start < records_pos { Some(self.store.read_txn()?) } else { None };
        for (i, p) in prepared.iter().enumerate() {
            if chunk_start + i as u64 >= records_pos {
                match p.decoded.as_ref().expect("new records are decoded") {
                    Ok(d) => {
                        let item = Item {
                            source: p.record.source.clone(),
                            label: p.record.label,
                            width: d.width,
                            height: d.height,
                            hash: d.hash,
                        };
                        wb.items.push((*new_item, item, d.thumb.clone().unwrap_or_default()));
                        ids.push(Some(*new_item));
                        *new_item += 1;
                        *next_item = *new_item;
                        self.summary.new_items += 1;
                    }
                    Err(why) => {
                        self.bars.warn(&format!("skipping {}: {why}", p.record.source));
                        let s = Skipped { source: p.record.source.clone(), reason: why.clone() };
                        self.summary.skipped.push(s.clone());
                        wb.skipped.push(s);
                        ids.push(None);
                    }
                }
            } else {
                let rtxn = rtxn.as_ref().expect("opened for old records");
                let is_item = self.store.item(rtxn, *next_item)?.is_some_and(|it| it.source == p.record.source);
                if !is_item {
                    ids.push(None);
                    continue;
                }
                if let Some(Err(why)) = &p.decoded {
                    return Err(IngestError::Changed { source_ref: p.record.source.clone(), why: why.clone() });
                }
                ids.push(Some(*next_item));
                *next_item += 1;
            }
        }
        Ok(ids)
    }

    /// Runs model `m` on the chunk's items it has not embedded yet, as one batch.
    fn embed_chunk(
        &mut self,
        m: usize,
        prepared: &[Prepared],
        ids: &[Option<u32>],
        chunk_start: u64,
        space_pos: &mut (u64, u32),
        wb: &mut WriteBatch,
    ) -> Result<()> {
        let k = self.model_key[m];
        let rows: Vec<(u32, &Vec<f32>)> = prepared
            .iter()
            .zip(ids)
            .enumerate()
            .filter(|(i, _)| chunk_start + *i as u64 >= space_pos.0)
            .filter_map(|(_, (p, id))| {
                let input = p.decoded.as_ref()?.as_ref().ok()?.inputs[k].as_ref()?;
                Some(((*id)?, input))
            })
            .collect();
        if rows.is_empty() {
            return Ok(());
        }
        let model = &mut self.models[m];
        let n = rows.len();
        let mut flat = Vec::with_capacity(n * rows[0].1.len());
        for (_, input) in &rows {
            flat.extend_from_slice(input);
        }
        let t0 = Instant::now();
        let (emb, probs) =
            (model.embed)(&flat, n).map_err(|why| IngestError::Model { space: model.space.name.clone(), why })?;
        self.summary.spaces[m].model_time += t0.elapsed();
        self.summary.spaces[m].embedded += n as u64;
        let dim = model.space.dim as usize;
        if emb.len() != n * dim {
            return Err(IngestError::ModelShape { space: model.space.name.clone(), got: emb.len(), n, dim });
        }
        let classes = model.space.num_classes as usize;
        for (j, (id, _)) in rows.iter().enumerate() {
            wb.embeddings.push((model.space.index, *id, emb[j * dim..(j + 1) * dim].to_vec()));
            if let Some(p) = &probs
                && classes > 0
                && p.len() == n * classes
            {
                wb.probs.push((model.space.index, *id, p[j * classes..(j + 1) * classes].to_vec()));
            }
        }
        space_pos.1 = rows.last().unwrap().0 + 1;
        Ok(())
    }
}

/// Summary lines for the terminal.
pub fn format_summary(s: &Summary) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let secs = s.elapsed.as_secs_f64().max(1e-9);
    let _ = writeln!(
        out,
        "ingested {} new items ({} in the store) from {} records in {:.1} s ({:.1} records/s){}",
        s.new_items,
        s.items,
        s.records,
        secs,
        s.records as f64 / secs,
        if s.complete { "" } else { ", not complete" }
    );
    if !s.skipped.is_empty() || s.skipped_total > 0 {
        let _ = writeln!(out, "skipped {} records this run ({} in the store):", s.skipped.len(), s.skipped_total);
        let mut reasons: HashMap<&str, usize> = HashMap::new();
        for sk in &s.skipped {
            *reasons.entry(sk.reason.as_str()).or_default() += 1;
        }
        let mut reasons: Vec<_> = reasons.into_iter().collect();
        reasons.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        for (reason, n) in reasons.iter().take(10) {
            let _ = writeln!(out, "  {n:>6} x {reason}");
        }
    }
    for sp in &s.spaces {
        let t = sp.model_time.as_secs_f64();
        let _ = writeln!(
            out,
            "space {}: {} embedded, model {:.1} s ({:.1} images/s in the model, {:.1} images/s overall)",
            sp.name,
            sp.embedded,
            t,
            if t > 0.0 { sp.embedded as f64 / t } else { 0.0 },
            sp.embedded as f64 / secs
        );
    }
    out
}

/// A space record for a model that `prepare_store` completes with the store's index.
pub fn space_info(name: &str, model: ModelSpec, dim: usize, num_classes: usize, class_names: Vec<String>) -> SpaceInfo {
    SpaceInfo { name: name.to_string(), index: 0, dim: dim as u32, model, num_classes: num_classes as u32, class_names }
}

/// Splits `NAME=FILE[#COLUMN]` of `--embeddings`.
pub fn parse_embeddings_arg(arg: &str) -> Option<(String, std::path::PathBuf, Option<String>)> {
    let (name, file) = arg.split_once('=')?;
    if name.is_empty() || file.is_empty() {
        return None;
    }
    let (file, column) = match file.rsplit_once('#') {
        Some((f, c)) if f.ends_with(".parquet") => (f, Some(c.to_string())),
        _ => (file, None),
    };
    Some((name.to_string(), std::path::PathBuf::from(file), column))
}

/// Imports a precomputed embedding space, rows in the source's record order. The file has one row per
/// item, or one per source record (the rows of records that were skipped are then dropped). The file's shape,
/// type and length are checked before anything is written; a `.npy` is streamed, never loaded whole.
pub fn import_embeddings(
    store: &Store,
    source: &dyn Source,
    name: &str,
    file: &std::path::Path,
    column: Option<&str>,
) -> Result<SpaceInfo> {
    let err = |why: String| IngestError::Embeddings { file: file.display().to_string(), why };
    let bytes_hash = crate::source::content_hash_file(file).map_err(|e| err(e.to_string()))?;
    let spec = ModelSpec {
        kind: "precomputed".into(),
        source: file.display().to_string(),
        fingerprint: format!("{bytes_hash:016x}{}", column.map(|c| format!("#{c}")).unwrap_or_default()),
        pooling: "precomputed".into(),
        image_size: 0,
    };
    let (items, records) = {
        let rtxn = store.read_txn()?;
        if let Some(s) = store.space(&rtxn, name)? {
            if s.model.kind != "precomputed" || s.model.fingerprint != spec.fingerprint {
                return Err(other_model(&store.dir().display().to_string(), name, &s.model, &spec));
            }
            if store.embedding_count(&rtxn, s.index)? == store.item_count(&rtxn)? {
                return Ok(s);
            }
        }
        (store.item_count(&rtxn)?, store.cursor(&rtxn, "records")?)
    };
    let mut m = crate::source::embeddings::Rows::open(file, column).map_err(err)?;
    let (m_rows, cols) = (m.rows(), m.cols());
    if cols == 0 {
        return Err(err("zero-width embeddings".into()));
    }
    // Row index of each item.
    let rows: Vec<usize> = if m_rows == items as usize {
        (0..m_rows).collect()
    } else if m_rows as u64 == records {
        let rtxn = store.read_txn()?;
        let mut rows = Vec::with_capacity(items as usize);
        let mut next = 0u32;
        for (r, rec) in source.records(0)?.take(records as usize).enumerate() {
            let rec = rec?;
            if next < items && store.item(&rtxn, next)?.is_some_and(|it| it.source == rec.source) {
                rows.push(r);
                next += 1;
            }
        }
        rows
    } else {
        return Err(err(format!(
            "{m_rows} rows, but the store has {items} items ({records} source records including skipped ones): \
             give one row per item or per record, in the source's order"
        )));
    };
    // Streamed in bounded transactions: an LMDB write transaction holds its dirty pages in memory. The cursors
    // come last, so an interrupted import is redone from the start by the next run.
    const ROWS_PER_COMMIT: usize = 16_384;
    let mut wtxn = store.write_txn()?;
    let space = store.put_space(&mut wtxn, space_info(name, spec, cols, 0, Vec::new()))?;
    let (mut row, mut next) = (Vec::with_capacity(cols), 0usize);
    for (id, &r) in rows.iter().enumerate() {
        while next <= r {
            m.next_row(&mut row).map_err(|why| err(format!("row {next}: {why}")))?;
            next += 1;
        }
        store.put_embedding(&mut wtxn, space.index, id as u32, &row)?;
        if (id + 1) % ROWS_PER_COMMIT == 0 {
            store.commit(wtxn)?;
            wtxn = store.write_txn()?;
        }
    }
    store.put_cursor(&mut wtxn, &space_cursor(name), records)?;
    store.put_cursor(&mut wtxn, &space_items_cursor(name), u64::from(items))?;
    store.commit(wtxn)?;
    Ok(space)
}
