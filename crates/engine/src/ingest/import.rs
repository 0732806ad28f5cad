//! Precomputed embeddings as a space: a `.npy` matrix or a parquet list column, one row per item or per
//! source record (`--embeddings`), or a list column of the source's own parquet files (`--embedding-column`).

use std::path::{Path, PathBuf};

use torchlight_store::{ModelSpec, SpaceInfo, Store};

use super::resume::{RECORDS, other_model, space_cursor, space_items_cursor};
use super::{IngestError, Result, space_info};
use crate::source::Source;
use crate::source::column::ColumnRows;
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

/// Splits `NAME=COLUMN` of `--embedding-column` at the first `=`: a column name keeps any dots and `=` after it.
pub fn parse_embedding_column_arg(arg: &str) -> Option<(String, String)> {
    let (name, column) = arg.split_once('=')?;
    (!name.is_empty() && !column.is_empty()).then(|| (name.to_string(), column.to_string()))
}

/// Checks an embedding file before anything is written: readable, 2-D float, at least one column, no more
/// rows than the source has records (the exact match against items or records is made at import), and every
/// value finite. The whole file is read (streamed) for the last.
pub fn check_embeddings_file(file: &Path, column: Option<&str>, records: usize) -> Result<(usize, usize)> {
    let shape = |why: String| IngestError::EmbeddingsShape { file: file.display().to_string(), why };
    let err = |why| IngestError::Embeddings { file: file.display().to_string(), why };
    let mut m = crate::source::embeddings::Rows::open(file, column).map_err(err)?;
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
    let mut row = Vec::with_capacity(cols);
    let mut bad = Vec::new();
    for r in 0..rows {
        m.next_row(&mut row).map_err(|why| err(EmbeddingsError::BadRow { row: r, why: why.to_string() }))?;
        if row.iter().any(|v| !v.is_finite()) {
            bad.push(r);
        }
    }
    if !bad.is_empty() {
        // A vector holding NaN or inf sits at infinite distance from every other and would top every outlier
        // list; a row of a record that is later skipped is refused too, as which records fail is not yet known.
        return Err(shape(format!(
            "{} of its {rows} rows hold NaN or infinite values: {} (counted from 0). Nothing was written: fix \
             those rows (a finite placeholder for a record that cannot be read is dropped with the record)",
            bad.len(),
            rows_text(&bad)
        )));
    }
    Ok((rows, cols))
}

/// Row numbers for a message: the first few, and how many more.
fn rows_text(rows: &[usize]) -> String {
    const SHOWN: usize = 8;
    let head: Vec<String> = rows.iter().take(SHOWN).map(usize::to_string).collect();
    let noun = if rows.len() == 1 { "row" } else { "rows" };
    match rows.len().saturating_sub(SHOWN) {
        0 => format!("{noun} {}", head.join(", ")),
        more => format!("{noun} {} and {more} more", head.join(", ")),
    }
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
    let (items, records) = match progress(store, name, &spec)? {
        Progress::Done(space) => return Ok(space),
        Progress::Todo { items, records } => (items, records),
    };
    let mut m = crate::source::embeddings::Rows::open(file, column).map_err(err)?;
    let (m_rows, cols) = (m.rows(), m.cols());
    if cols == 0 {
        return Err(shape("zero-width embeddings".into()));
    }
    let rows: Vec<usize> = if m_rows == items as usize {
        (0..m_rows).collect()
    } else if m_rows as u64 == records {
        item_rows(store, source, items, records)?
    } else {
        return Err(shape(format!(
            "{m_rows} rows, but the store has {items} items ({records} source records including skipped ones): \
             give one row per item or per record, in the source's order"
        )));
    };
    let mut next = 0usize;
    write_space(store, name, spec, cols, (items, records), stop, |id, row| {
        let r = rows[id];
        while next <= r {
            m.next_row(row).map_err(|why| err(EmbeddingsError::BadRow { row: next, why: why.to_string() }))?;
            next += 1;
        }
        Ok(())
    })
}

/// Checks `--embedding-column` before anything is written: the source is parquet (a file, a directory of
/// shards or a hub dataset) and every one of its files has `column` as a list of float32, float64 or float16.
/// The values are checked by the import.
pub fn check_embedding_column(source: &dyn Source, column: &str) -> Result<()> {
    let files = column_files(source, column)?;
    ColumnRows::open(&files, column).map_err(column_error(column))?;
    Ok(())
}

/// Imports a list column of the source itself as a space: the column's row of each item, read in record order
/// across all the source's parquet files (the rows of skipped records are dropped). Every item's row is read
/// and checked (a null, an empty or ragged list, a null, NaN or infinite element fail naming the file and
/// row) before the space is written, then read again to write it; a rerun finds the space complete and reads
/// nothing. `stop` is polled between commits, as for `import_embeddings`.
pub fn import_embedding_column(
    store: &Store,
    source: &dyn Source,
    name: &str,
    column: &str,
    stop: fn() -> bool,
) -> Result<SpaceInfo> {
    let files = column_files(source, column)?;
    let err = column_error(column);
    let spec = ModelSpec {
        kind: "precomputed".into(),
        source: format!("column {column}"),
        // The source's fingerprint covers every file's footer, so it changes with the column's content.
        fingerprint: format!("{}#{column}", source.info().fingerprint),
        pooling: "precomputed".into(),
        image_size: 0,
    };
    let (items, records) = match progress(store, name, &spec)? {
        Progress::Done(space) => return Ok(space),
        Progress::Todo { items, records } => (items, records),
    };
    let shape = |why: String| IngestError::EmbeddingsShape { file: format!("column {column}"), why };
    let mut rows = ColumnRows::open(&files, column).map_err(err)?;
    if records > rows.rows() as u64 {
        return Err(shape(format!("{} rows, but the store holds {records} records", rows.rows())));
    }
    let wanted: Vec<usize> = if u64::from(items) == records {
        (0..items as usize).collect()
    } else {
        item_rows(store, source, items, records)?
    };
    let mut cols = None;
    for &r in &wanted {
        cols.get_or_insert(rows.row(r).map_err(err)?.len());
    }
    let Some(cols) = cols else {
        return Err(shape("the store has no items to import it for".into()));
    };
    let mut rows = ColumnRows::open(&files, column).map_err(err)?;
    write_space(store, name, spec, cols, (items, records), stop, |id, out| {
        out.clear();
        out.extend_from_slice(rows.row(wanted[id]).map_err(err)?);
        Ok(())
    })
}

fn column_error(column: &str) -> impl Fn(EmbeddingsError) -> IngestError + Copy + '_ {
    move |why| IngestError::Embeddings { file: format!("column {column}"), why }
}

fn column_files(source: &dyn Source, column: &str) -> Result<Vec<std::path::PathBuf>> {
    source.parquet_files().ok_or_else(|| IngestError::EmbeddingsShape {
        file: format!("column {column}"),
        why: format!(
            "a {} source has no columns: --embedding-column reads parquet datasets (files, shards, hf:NAME); \
                 give other embeddings as --embeddings NAME=FILE",
            source.info().format
        ),
    })
}

/// Whether a precomputed space is already complete, else the items and records it is imported for. A space of
/// that name made from something else is refused.
enum Progress {
    Done(SpaceInfo),
    Todo { items: u32, records: u64 },
}

fn progress(store: &Store, name: &str, spec: &ModelSpec) -> Result<Progress> {
    let rtxn = store.read_txn()?;
    if let Some(s) = store.space(&rtxn, name)? {
        if s.model.kind != "precomputed" || s.model.fingerprint != spec.fingerprint {
            return Err(other_model(&store.dir().display().to_string(), name, &s.model, spec));
        }
        if store.embedding_count(&rtxn, s.index)? == store.item_count(&rtxn)? {
            return Ok(Progress::Done(s));
        }
    }
    Ok(Progress::Todo { items: store.item_count(&rtxn)?, records: store.cursor(&rtxn, RECORDS)? })
}

/// The record (row) of each item, for rows given per record: records that match the next item's source are
/// items, the others were skipped.
fn item_rows(store: &Store, source: &dyn Source, items: u32, records: u64) -> Result<Vec<usize>> {
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
    Ok(rows)
}

/// Writes a space of `cols` values per item, item `id`'s row filled by `row_of(id, row)` in id order.
/// Streamed in bounded transactions: an LMDB write transaction holds its dirty pages in memory. The cursors
/// come last, so an interrupted import is redone from the start by the next run.
fn write_space(
    store: &Store,
    name: &str,
    spec: ModelSpec,
    cols: usize,
    (items, records): (u32, u64),
    stop: fn() -> bool,
    mut row_of: impl FnMut(usize, &mut Vec<f32>) -> Result<()>,
) -> Result<SpaceInfo> {
    const ROWS_PER_COMMIT: usize = 16_384;
    let mut wtxn = store.write_txn()?;
    let space = store.put_space(&mut wtxn, space_info(name, spec, cols, 0, Vec::new()))?;
    let mut row = Vec::with_capacity(cols);
    for id in 0..items as usize {
        row_of(id, &mut row)?;
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
