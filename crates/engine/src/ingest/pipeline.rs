//! The threads of a run: a reader cuts the source into chunks ending at multiples of the batch size, a pool
//! decodes and preprocesses them, the coordinator puts them back in order, gives ids and runs the models, and a
//! writer commits each chunk with its cursors in one transaction.

use std::collections::BTreeMap;
use std::io::Cursor;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use image::DynamicImage;
use torchlight_store::{Item, Skipped, Store};

use super::progress::Bars;
use super::resume::{Cursors, RECORDS, space_cursor, space_items_cursor};
use super::{IngestError, IngestOptions, PrepareFn, Result, SpaceModel, StageTimes, Summary, THUMB_SIDE};
use crate::source::{Record, Source, Unreadable};

/// What the decode pool makes of one chunk.
struct PreparedChunk {
    records: Vec<Prepared>,
    /// Per prepare key: the model inputs of the chunk's records that need it, end to end, so that the
    /// coordinator hands a whole batch to the model without gathering it image by image.
    inputs: Vec<KeyInputs>,
    /// Decode, preprocess and thumbnail time of this chunk.
    times: StageTimes,
}

#[derive(Default)]
struct KeyInputs {
    data: Vec<f32>,
    /// The chunk index of the record of each input, ascending.
    rows: Vec<usize>,
}

/// What the decode pool makes of one record.
struct Prepared {
    record: Record,
    /// Decode result: the item fields and thumbnail, or why it cannot be read. None = not decoded
    /// (nothing needed it).
    decoded: Option<Result<DecodedItem, Unreadable>>,
}

struct DecodedItem {
    width: u32,
    height: u32,
    hash: u64,
    /// PNG, only for records that become new items.
    thumb: Option<Vec<u8>>,
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
    buffers: Buffers,
}

/// Input buffers the coordinator is done with, for the next chunks: a batch of 224x224 inputs is megabytes,
/// and a fresh allocation of that size is page-faulted in (and zeroed by the kernel) every time.
#[derive(Clone, Default)]
struct Buffers(Arc<Mutex<Vec<Vec<f32>>>>);

impl Buffers {
    fn take(&self) -> Vec<f32> {
        let mut v = self.0.lock().unwrap_or_else(|e| e.into_inner()).pop().unwrap_or_default();
        v.clear();
        v
    }

    fn give(&self, v: Vec<f32>) {
        if v.capacity() > 0 {
            self.0.lock().unwrap_or_else(|e| e.into_inner()).push(v);
        }
    }
}

impl ChunkJob {
    /// Decodes each record at most once, thumbnails new ones, prepares each distinct model input once.
    fn run(self) -> (usize, PreparedChunk) {
        let ChunkJob { n, start, records, records_cursor, space_starts, model_key, prepares, buffers } = self;
        let mut times = StageTimes::default();
        let mut inputs: Vec<KeyInputs> =
            prepares.iter().map(|_| KeyInputs { data: buffers.take(), rows: Vec::new() }).collect();
        let mut need = vec![false; prepares.len()];
        let len = records.len();
        let prepared = records
            .into_iter()
            .enumerate()
            .map(|(i, record)| {
                let pos = start + i as u64;
                let is_new = pos >= records_cursor;
                need.fill(false);
                for (m, &k) in model_key.iter().enumerate() {
                    need[k] |= pos >= space_starts[m];
                }
                if !is_new && !need.iter().any(|&x| x) {
                    return Prepared { record, decoded: None };
                }
                let t = Instant::now();
                let decoded = record.decode();
                times.decode += t.elapsed();
                let decoded = decoded.map(|d| {
                    let t = Instant::now();
                    let thumb = is_new.then(|| thumbnail_png(&d.image));
                    times.thumbnails += t.elapsed();
                    let t = Instant::now();
                    for ((&nd, p), into) in need.iter().zip(&prepares).zip(&mut inputs) {
                        if nd {
                            let first = into.data.is_empty();
                            p(&d.image, &mut into.data);
                            if first {
                                into.data.reserve(into.data.len() * (len - i - 1));
                            }
                            into.rows.push(i);
                        }
                    }
                    times.preprocess += t.elapsed();
                    DecodedItem { width: d.image.width(), height: d.image.height(), hash: d.hash, thumb }
                });
                Prepared { record, decoded: Some(decoded) }
            })
            .collect();
        (n, PreparedChunk { records: prepared, inputs, times })
    }
}

/// The source of the record that became item `id` in this chunk.
fn prepared_source<'p>(prepared: &'p [Prepared], ids: &[Option<u32>], id: u32) -> &'p str {
    ids.iter().position(|&i| i == Some(id)).map_or("?", |at| prepared[at].record.source.as_str())
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

/// What the run does, worked out before its threads start.
pub(super) struct Plan {
    /// Records to reach (the source's length, or --limit).
    pub total: u64,
    pub batch: u64,
    /// The earliest cursor: where reading starts, and the item id there.
    pub start: u64,
    pub start_item: u32,
    pub cursors: Cursors,
    /// Distinct preprocessing functions, and which one each model uses.
    pub prepares: Vec<PrepareFn>,
    pub model_key: Vec<usize>,
    pub source_len: u64,
}

/// Runs the threads until every record up to `plan.total` is committed, an error, or `opts.stop`.
pub(super) fn run(
    store: &Store,
    source: &dyn Source,
    models: &mut [SpaceModel],
    opts: &IngestOptions,
    plan: &Plan,
    bars: &Bars,
    summary: &mut Summary,
) -> Result<()> {
    let Plan { total, batch, start, start_item, ref cursors, ref prepares, ref model_key, source_len } = *plan;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(opts.threads.max(1))
        .thread_name(|i| format!("decode-{i}"))
        .build()
        .expect("decode thread pool");
    // Chunks in flight between reader and coordinator: enough to keep every decode thread busy.
    let inflight = 2 * opts.threads.max(1) + 2;

    let records_cursor = cursors.records;
    let buffers = Buffers::default();
    let buffers_r = buffers.clone();
    let space_starts: Vec<u64> = cursors.spaces.iter().map(|&(r, _)| r).collect();
    std::thread::scope(|scope| -> Result<()> {
        let (done_tx, done_rx) = std::sync::mpsc::channel::<Result<(usize, PreparedChunk)>>();
        // One token per chunk in flight: the reader blocks when the coordinator is behind.
        let (tokens_tx, tokens_rx) = sync_channel::<()>(inflight);
        let (write_tx, write_rx) = sync_channel::<WriteBatch>(8);

        // Reader: cuts the source into chunks ending at multiples of the batch size, hands each to the pool.
        let pool = &pool;
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
                    buffers: buffers_r.clone(),
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
        let writer = scope.spawn(move || -> Result<Duration> {
            let mut busy = Duration::ZERO;
            while let Ok(first) = write_rx.recv() {
                let t = Instant::now();
                let mut group = vec![first];
                group.extend(write_rx.try_iter());
                write_batches(store, &group)?;
                busy += t.elapsed();
            }
            Ok(busy)
        });

        let coordinator = Coordinator {
            store,
            models,
            model_key,
            bars,
            stop: opts.stop,
            progress: opts.progress,
            source_len,
            summary,
            buffers,
            scratch: Vec::new(),
        };
        let coordinated = coordinator.run(cursors, start, start_item, total, Channels { done_rx, tokens_rx, write_tx });
        // The coordinator has dropped its channel ends: a reader or writer still running stops now.
        let written = writer.join().expect("writer thread");
        reader.join().expect("reader thread");
        coordinated?;
        summary.stages.writes += written?;
        Ok(())
    })
}

/// The coordinator's ends of the pipeline's channels; dropped when it returns, which stops the others.
struct Channels {
    done_rx: Receiver<Result<(usize, PreparedChunk)>>,
    tokens_rx: Receiver<()>,
    write_tx: SyncSender<WriteBatch>,
}

/// Puts decoded chunks back in order, gives item ids, runs the models, sends each chunk to the writer.
struct Coordinator<'a, 'm> {
    store: &'a Store,
    models: &'a mut [SpaceModel],
    model_key: &'a [usize],
    bars: &'a Bars,
    stop: fn() -> bool,
    progress: bool,
    source_len: u64,
    summary: &'m mut Summary,
    buffers: Buffers,
    /// A batch for a model that must not overwrite the pool's (a later model reads it too).
    scratch: Vec<f32>,
}

impl Coordinator<'_, '_> {
    fn run(mut self, cur: &Cursors, start: u64, start_item: u32, total: u64, ch: Channels) -> Result<()> {
        let mut pending: BTreeMap<usize, PreparedChunk> = BTreeMap::new();
        let mut next_chunk = 0usize;
        let mut pos = start;
        // Id of the next already-stored item (records below the records cursor), and of the next new one.
        let mut next_item = start_item;
        let mut new_item = cur.items;
        let mut records_pos = cur.records;
        let mut space_pos: Vec<(u64, u32)> = cur.spaces.clone();
        while pos < total {
            if (self.stop)() {
                return Err(IngestError::Interrupted);
            }
            let waiting = Instant::now();
            let mut chunk = loop {
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
            let busy = Instant::now();
            self.summary.stages.waiting += busy - waiting;
            self.summary.stages.add_workers(&chunk.times);
            let model_before = self.summary.stages.model;
            next_chunk += 1;
            let prepared = &mut chunk.records;
            let chunk_start = pos;
            let chunk_end = pos + prepared.len() as u64;
            let mut wb = WriteBatch::default();
            let ids = self.assign_ids(prepared, chunk_start, records_pos, &mut next_item, &mut new_item, &mut wb)?;
            self.summary.records += prepared.len() as u64;
            for (m, sp) in space_pos.iter_mut().enumerate() {
                self.embed_chunk(m, &mut chunk, &ids, chunk_start, sp, &mut wb)?;
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
                wb.cursors.push((RECORDS.to_string(), records_pos));
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
            // The coordinator's own work: ids, gathering, checks, the write batch (the model is counted apart).
            for inputs in chunk.inputs {
                self.buffers.give(inputs.data);
            }
            let model = self.summary.stages.model - model_before;
            self.summary.stages.batching += busy.elapsed().saturating_sub(model);
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
        prepared: &mut [Prepared],
        chunk_start: u64,
        records_pos: u64,
        next_item: &mut u32,
        new_item: &mut u32,
        wb: &mut WriteBatch,
    ) -> Result<Vec<Option<u32>>> {
        let mut ids = Vec::with_capacity(prepared.len());
        let rtxn = if chunk_start < records_pos { Some(self.store.read_txn()?) } else { None };
        for (i, p) in prepared.iter_mut().enumerate() {
            if chunk_start + i as u64 >= records_pos {
                match p.decoded.as_mut().expect("new records are decoded") {
                    Ok(d) => {
                        let item = Item {
                            source: p.record.source.clone(),
                            label: p.record.label,
                            width: d.width,
                            height: d.height,
                            hash: d.hash,
                        };
                        wb.items.push((*new_item, item, d.thumb.take().unwrap_or_default()));
                        ids.push(Some(*new_item));
                        *new_item += 1;
                        *next_item = *new_item;
                        self.summary.new_items += 1;
                    }
                    Err(why) => {
                        self.bars.warn(&format!("skipping {}: {why}", p.record.source));
                        let s = Skipped { source: p.record.source.clone(), reason: why.to_string() };
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
        chunk: &mut PreparedChunk,
        ids: &[Option<u32>],
        chunk_start: u64,
        space_pos: &mut (u64, u32),
        wb: &mut WriteBatch,
    ) -> Result<()> {
        let key = self.model_key[m];
        let prepared = &chunk.records;
        let inputs = &mut chunk.inputs[key];
        let rows: Vec<(u32, usize)> = ids
            .iter()
            .enumerate()
            .filter(|&(i, _)| chunk_start + i as u64 >= space_pos.0)
            .filter_map(|(i, id)| Some(((*id)?, inputs.rows.binary_search(&i).ok()?)))
            .collect();
        if rows.is_empty() {
            return Ok(());
        }
        let model = &mut self.models[m];
        let n = rows.len();
        // The model may overwrite its batch. Every prepared input in the batch and no later model reading
        // them (the usual case): hand the pool's buffer over as it is; else a copy in the scratch buffer.
        let per = inputs.data.len() / inputs.rows.len();
        let flat = if n == inputs.rows.len() && !self.model_key[m + 1..].contains(&key) {
            &mut inputs.data[..]
        } else {
            self.scratch.clear();
            for &(_, slot) in &rows {
                self.scratch.extend_from_slice(&inputs.data[slot * per..(slot + 1) * per]);
            }
            &mut self.scratch[..]
        };
        let t0 = Instant::now();
        let (emb, probs) =
            (model.embed)(flat, n).map_err(|why| IngestError::Model { space: model.space.name.clone(), why })?;
        let took = t0.elapsed();
        self.summary.spaces[m].model_time += took;
        self.summary.stages.model += took;
        self.summary.spaces[m].embedded += n as u64;
        let dim = model.space.dim as usize;
        if emb.len() != n * dim {
            return Err(IngestError::ModelShape { space: model.space.name.clone(), got: emb.len(), n, dim });
        }
        // A NaN or infinite embedding would sit at distance inf from everything and top every outlier list.
        let bad: Vec<&str> = rows
            .iter()
            .zip(emb.chunks_exact(dim.max(1)))
            .filter(|(_, e)| e.iter().any(|v| !v.is_finite()))
            .map(|((id, _), _)| prepared_source(prepared, ids, *id))
            .collect();
        if !bad.is_empty() {
            let sources = bad.iter().take(5).copied().collect::<Vec<_>>().join(", ");
            return Err(IngestError::NotFinite { space: model.space.name.clone(), count: bad.len(), sources });
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
