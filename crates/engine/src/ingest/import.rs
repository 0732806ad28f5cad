//! Precomputed embeddings as a space: a `.npy` matrix or a parquet list column, one row per item or per
//! source record.

use std::path::{Path, PathBuf};

use torchlight_store::{ModelSpec, SpaceInfo, Store};

use super::resume::{RECORDS, other_model, space_cursor, space_items_cursor};
use super::{IngestError, Result, space_info};
use crate::source::Source;
use crate::source::embeddings::EmbeddingsError;

/// Splits `NAME=FILE[#COLUMN]` of `--embeddings`.
pub fn parse_embeddings_arg(arg: &str) -> Option<(String, PathBuf, Option<String>)> {
    let (name, file) = arg.split_once('=')?;
    if name.is_empty() || file.is_empty() {
        return None;
    }
    let (file, column) = match file.rsplit_once('#') {
        Some((f, c)) if f.ends_with(".parquet") => (f, Some(c.to_string())),
        _ => (file, None),
    };
    Some((name.to_string(), PathBuf::from(file), column))
}

/// Checks an embedding file before anything is written: readable, 2-D float, at least one column, and no more
/// rows than the source has records (the exact match against items or records is made at import).
pub fn check_embeddings_file(file: &Path, column: Option<&str>, records: usize) -> Result<(usize, usize)> {
    let shape = |why: String| IngestError::EmbeddingsShape { file: file.display().to_string(), why };
    let m = crate::source::embeddings::Rows::open(file, column)
        .map_err(|why| IngestError::Embeddings { file: file.display().to_string(), why })?;
    let (rows, cols) = (m.rows(), m.cols());
    if cols == 0 {
        return Err(shape("zero-width embeddings".into()));
    }
    if rows > records {
        return Err(shape(format!(
            "{rows} rows, but the source has {records} records: give one row per item or per record, in the \
             source's order"
        )));
    }
    Ok((rows, cols))
}

/// Imports a precomputed embedding space, rows in the source's record order. The file has one row per
/// item, or one per source record (the rows of records that were skipped are then dropped). The file's shape,
/// type and length are checked before anything is written; a `.npy` is streamed, never loaded whole. `stop` is
/// polled between commits: an import stopped early is redone from its start by the next run.
pub fn import_embeddings(
    store: &Store,
    source: &dyn Source,
    name: &str,
    file: &Path,
    column: Option<&str>,
    stop: fn() -> bool,
) -> Result<SpaceInfo> {
    let err = |why: EmbeddingsError| IngestError::Embeddings { file: file.display().to_string(), why };
    let shape = |why: String| IngestError::EmbeddingsShape { file: file.display().to_string(), why };
    let bytes_hash = crate::source::content_hash_file(file).map_err(|e| err(EmbeddingsError::Open(e)))?;
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
        (store.item_count(&rtxn)?, store.cursor(&rtxn, RECORDS)?)
    };
    let mut m = crate::source::embeddings::Rows::open(file, column).map_err(err)?;
    let (m_rows, cols) = (m.rows(), m.cols());
    if cols == 0 {
        return Err(shape("zero-width embeddings".into()));
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
        return Err(shape(format!(
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
            m.next_row(&mut row).map_err(|why| err(EmbeddingsError::BadRow { row: next, why: why.to_string() }))?;
            next += 1;
        }
        store.put_embedding(&mut wtxn, space.index, id as u32, &row)?;
        if (id + 1) % ROWS_PER_COMMIT == 0 {
            store.commit(wtxn)?;
            if stop() {
                return Err(IngestError::Interrupted);
            }
            wtxn = store.write_txn()?;
        }
    }
    store.put_cursor(&mut wtxn, &space_cursor(name), records)?;
    store.put_cursor(&mut wtxn, &space_items_cursor(name), u64::from(items))?;
    store.commit(wtxn)?;
    Ok(space)
}
