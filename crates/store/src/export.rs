//! `torchlight export`: embeddings as `.npy` or `.csv`, or a per-item table of labels, scores and triage tags
//! as `.csv`, `.jsonl` or `.parquet` (loads in pandas).
//!
//! `spotlight` adds the article's dataframe, so that `pd.read_parquet` of the file opens in Renumics Spotlight
//! with the article's `dtype={"image": Image, "nn_image": Image, "embedding_ft": Embedding,
//! "embedding.foundation": Embedding}`: `image`, `label_str`, and per space its vectors and outlier score under
//! the article's names (`embedding_ft` / `outlier_score_ft` for a fine-tuned space, `embedding.foundation` /
//! `outlier_score_found` for a foundation space, `embedding_S` / `outlier_score_S` for another space S), and the
//! nearest neighbour as `nn_id`, `nn_distance`, `nn_flag`, `nn_image` from the fine-tuned space (else the first),
//! `nn_*_S` from the others. `nn_distance` is the cosine distance (the article's Annoy angular distance is
//! `sqrt(2 * nn_distance)`); `nn_flag` is the store's flag where the analysis wrote one, else the article's rule,
//! a nearest neighbour closer than 0.045 (its angular 0.3).
//!
//! An image cell is a struct `{bytes, path}`, the layout of a Hugging Face `datasets` Image, which Spotlight
//! reads like the article's `dataset.to_pandas()`: the absolute path of an item whose record is an image file
//! that still exists, otherwise the item's PNG thumbnail from the store. Spotlight only needs bytes it can
//! decode, and for images up to 96 pixels a side (MNIST, CIFAR, the article's datasets) the thumbnail is the
//! whole image, losslessly; larger images that are not files (parquet, hub) appear as their 96-pixel preview.
//! Image bytes have no text form in `.csv` or `.jsonl`: there an image cell is its path, or empty.
//!
//! Every file is written to a temporary file beside the target and renamed over it once complete and synced:
//! an export that fails (a full disk, a damaged store) leaves an existing file as it was and no partial one.
//! Every export holds exactly one row per item, in id order, or fails naming the store. An export that meets
//! damage (a record, embedding row or analysis column that fails its checksum) refuses it, unless asked to skip
//! damage: then the damaged items' rows and the damaged columns are left out, and the caller is told which.

use std::cell::RefCell;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::Arc;

use parquet::basic::{LogicalType, Repetition, Type as Physical};
use parquet::data_type::{BoolType, ByteArray, ByteArrayType, FloatType, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::Type;

use crate::sums::Part;
use crate::{Column, SpaceInfo, Store, StoreError, columns, ids_text};

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("writing {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("writing parquet {path}: {source}")]
    Parquet { path: String, source: parquet::errors::ParquetError },
    #[error("writing npy {path}: {source}")]
    Npy { path: String, source: crate::npy::NpyError },
    #[error("unknown output format for {0}: name the file .csv, .jsonl or .parquet (a table per item)")]
    Format(String),
    #[error("unknown embeddings format for {0}: name the file .npy (float32 [N, D]) or .csv")]
    EmbeddingFormat(String),
    #[error("no embedding space named '{name}' (the store has: {have})")]
    NoSpace { name: String, have: String },
    #[error("the store has no items: run `torchlight ingest` first")]
    Empty,
    #[error(
        "the store at {dir} is damaged: it counts {items} items but {what} has {rows}; run `torchlight verify \
         --store {dir}` to see which"
    )]
    RowCount { dir: String, items: usize, what: String, rows: usize },
}

pub type Result<T, E = ExportError> = std::result::Result<T, E>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableFormat {
    Csv,
    Jsonl,
    Parquet,
}

impl TableFormat {
    pub fn from_path(path: &Path) -> Result<TableFormat> {
        match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
            Some("csv") => Ok(TableFormat::Csv),
            Some("jsonl") | Some("ndjson") => Ok(TableFormat::Jsonl),
            Some("parquet") | Some("pq") => Ok(TableFormat::Parquet),
            _ => Err(ExportError::Format(path.display().to_string())),
        }
    }
}

/// One column of the exported table; `None` (and NaN) is written as null / empty.
#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    Int(Vec<Option<i64>>),
    Float(Vec<Option<f32>>),
    Bool(Vec<Option<bool>>),
    Str(Vec<Option<String>>),
    FloatList(Vec<Vec<f32>>),
    Image(ImageColumn),
}

/// An image as Hugging Face `datasets` stores one: encoded bytes, or a path to the file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImageCell {
    pub bytes: Option<Vec<u8>>,
    pub path: Option<String>,
}

/// A column of images: row r shows `cells[rows[r]]`, so `image` and `nn_image` share one set of cells.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageColumn {
    pub cells: Arc<Vec<ImageCell>>,
    pub rows: Vec<Option<u32>>,
}

impl ImageColumn {
    pub fn get(&self, r: usize) -> Option<&ImageCell> {
        self.rows[r].and_then(|i| self.cells.get(i as usize))
    }
}

#[derive(Debug, Clone, Default)]
pub struct Table {
    pub rows: usize,
    pub columns: Vec<(String, Values)>,
}

impl Table {
    fn push(&mut self, name: impl Into<String>, values: Values) {
        self.columns.push((name.into(), values));
    }

    pub fn get(&self, name: &str) -> Option<&Values> {
        self.columns.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// Keeps the rows r with `keep[r]`.
    fn retain_rows(&mut self, keep: &[bool]) {
        fn retain<T>(v: &mut Vec<T>, keep: &[bool]) {
            let mut r = 0;
            v.retain(|_| {
                r += 1;
                keep[r - 1]
            });
        }
        for (_, v) in &mut self.columns {
            match v {
                Values::Int(x) => retain(x, keep),
                Values::Float(x) => retain(x, keep),
                Values::Bool(x) => retain(x, keep),
                Values::Str(x) => retain(x, keep),
                Values::FloatList(x) => retain(x, keep),
                Values::Image(x) => retain(&mut x.rows, keep),
            }
        }
        self.rows = keep.iter().filter(|&&k| k).count();
    }
}

/// What an export that skips damage left out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeftOut {
    /// Items whose record, or embedding row in a space the export writes, fails its checksum; sorted.
    pub items: Vec<u32>,
    /// Analysis columns (`space/name`) that fail their checksum: every row of them is suspect.
    pub columns: Vec<String>,
}

impl LeftOut {
    pub fn is_empty(&self) -> bool {
        self.items.is_empty() && self.columns.is_empty()
    }

    fn add_items(&mut self, ids: &[u32]) {
        self.items.extend_from_slice(ids);
        self.items.sort_unstable();
        self.items.dedup();
    }

    /// One line for the user: how many and which (the first few), or None when nothing was left out.
    pub fn describe(&self) -> Option<String> {
        let mut parts = Vec::new();
        if !self.items.is_empty() {
            parts.push(format!("{} damaged {}", self.items.len(), ids_text(&self.items)));
        }
        if !self.columns.is_empty() {
            parts.push(format!(
                "damaged column{} {} (`torchlight analyze` computes them again)",
                if self.columns.len() == 1 { "" } else { "s" },
                self.columns.join(", ")
            ));
        }
        (!parts.is_empty()).then(|| format!("left out {}", parts.join("; ")))
    }
}

/// The store's reads for one export: with `skip` set, damage is recorded in `left_out` instead of failing.
struct Reader<'a, 't> {
    store: &'a Store,
    rtxn: &'a crate::ReadTxn<'t>,
    skip: bool,
    left_out: RefCell<LeftOut>,
}

impl Reader<'_, '_> {
    /// A column; a damaged one reads as absent when skipping.
    fn column(&self, space: &str, name: &str) -> Result<Option<Column>> {
        match self.store.column(self.rtxn, space, name) {
            Err(StoreError::ColumnChecksum { name, .. }) if self.skip => {
                self.left_out.borrow_mut().columns.push(name);
                Ok(None)
            }
            other => Ok(other?),
        }
    }

    /// Every item in id order, a damaged one as a placeholder recorded as left out (when skipping).
    fn items(&self) -> Result<Vec<crate::Item>> {
        if !self.skip {
            return Ok(self.store.items(self.rtxn)?);
        }
        let (checked, damaged) = self.store.items_checked(self.rtxn)?;
        self.left_out.borrow_mut().add_items(&damaged);
        let placeholder = crate::Item { source: String::new(), label: None, width: 0, height: 0, hash: 0 };
        let mut items = vec![placeholder; checked.len() + damaged.len()];
        for (id, item) in checked {
            if let Some(slot) = items.get_mut(id as usize) {
                *slot = item;
            }
        }
        Ok(items)
    }

    /// The space's embeddings as a row-major [N, dim] matrix; damaged rows are kept in place (so rows stay
    /// aligned with ids) and recorded as left out when skipping.
    fn embeddings(&self, space: &SpaceInfo) -> Result<Vec<f32>> {
        if !self.skip {
            return Ok(self.store.embedding_matrix(self.rtxn, space)?);
        }
        let n = self.store.embedding_count(self.rtxn, space.index)?;
        let mut out = Vec::with_capacity(n as usize * space.dim as usize);
        let mut damaged = Vec::new();
        let (store, rtxn, dim) = (self.store, self.rtxn, space.dim as usize);
        store.rows_checked(rtxn, Part::Embedding, space.index, 0, n, dim, &mut out, &mut damaged)?;
        self.left_out.borrow_mut().add_items(&damaged);
        Ok(out)
    }

    /// `keep[id]`: whether item `id` is written.
    fn keep(&self, n: usize) -> Vec<bool> {
        let mut keep = vec![true; n];
        for &id in &self.left_out.borrow().items {
            if let Some(k) = keep.get_mut(id as usize) {
                *k = false;
            }
        }
        keep
    }
}

fn f32_column(col: Option<Column>, rows: usize) -> Option<Vec<f32>> {
    match col {
        Some(Column::F32 { width: 1, values }) if values.len() == rows => Some(values),
        _ => None,
    }
}

fn u32_column(col: Option<Column>, rows: usize) -> Option<Vec<u32>> {
    match col {
        Some(Column::U32 { width: 1, values }) if values.len() == rows => Some(values),
        _ => None,
    }
}

fn floats(v: Vec<f32>) -> Values {
    Values::Float(v.into_iter().map(|x| (!x.is_nan()).then_some(x)).collect())
}

fn ints(v: &[u32]) -> Values {
    Values::Int(v.iter().map(|&x| (x != u32::MAX).then_some(i64::from(x))).collect())
}

/// The cosine distance of the article's `nn_flag` (its Annoy angular threshold 0.3: angular distance is
/// `sqrt(2 * (1 - cos))`).
pub const ARTICLE_NN_THRESHOLD: f32 = 0.045;

/// The article's `nn_flag` from nearest-neighbour cosine distances: closer than `ARTICLE_NN_THRESHOLD`.
pub fn article_nn_flags(distances: &[f32]) -> Vec<Option<bool>> {
    distances.iter().map(|&d| (!d.is_nan()).then_some(d < ARTICLE_NN_THRESHOLD)).collect()
}

/// Which of the article's two spaces a space plays, from its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    FineTuned,
    Foundation,
    Other,
}

fn role(space: &str) -> Role {
    let s = space.to_ascii_lowercase();
    if s.starts_with("fine") || s == "ft" {
        Role::FineTuned
    } else if s.starts_with("found") {
        Role::Foundation
    } else {
        Role::Other
    }
}

/// A space's columns under the article's names: (embedding, outlier score, suffix of its other columns).
fn spotlight_names(space: &str, role: Role) -> (String, String, String) {
    match role {
        Role::FineTuned => ("embedding_ft".into(), "outlier_score_ft".into(), "ft".into()),
        Role::Foundation => ("embedding.foundation".into(), "outlier_score_found".into(), "found".into()),
        Role::Other => (format!("embedding_{space}"), format!("outlier_score_{space}"), space.to_string()),
    }
}

const DRIFT_COLUMNS: [&str; 3] = [columns::DRIFT_KNN_JACCARD, columns::DRIFT_MOVEMENT, columns::DRIFT_RANK_CHANGE];

/// The per-item table: id, source, label, label_name; per space S its scores as `name.S` (a series step's drift
/// from the step before as `drift_*.S`); the dataset-level drift as `drift_*`; tag, new_label, note.
pub fn build_table(store: &Store, spotlight: bool) -> Result<Table> {
    Ok(build_table_skipping(store, spotlight, false)?.0)
}

/// `build_table`; with `skip_damaged`, damaged items and columns are left out (and returned) instead of failing.
pub fn build_table_skipping(store: &Store, spotlight: bool, skip_damaged: bool) -> Result<(Table, LeftOut)> {
    let rtxn = store.read_txn()?;
    let reader = Reader { store, rtxn: &rtxn, skip: skip_damaged, left_out: RefCell::default() };
    let items = reader.items()?;
    let n = items.len();
    if n == 0 {
        return Err(ExportError::Empty);
    }
    one_row_per_item(store, &rtxn, "the item table", n)?;
    let names = store.label_names(&rtxn)?;
    let label_name = |l: Option<u32>| l.and_then(|l| names.get(l as usize).cloned());
    let mut t = Table { rows: n, columns: Vec::new() };
    t.push("id", Values::Int((0..n as i64).map(Some).collect()));
    t.push("source", Values::Str(items.iter().map(|i| Some(i.source.clone())).collect()));
    t.push("label", Values::Int(items.iter().map(|i| i.label.map(i64::from)).collect()));
    t.push("label_name", Values::Str(items.iter().map(|i| label_name(i.label)).collect()));
    let spaces = store.spaces(&rtxn)?;
    for sp in &spaces {
        let s = &sp.name;
        let col = |name: &str| reader.column(s, name);
        for name in [columns::OUTLIER_SCORE, columns::KNN_MEAN_DISTANCE] {
            if let Some(v) = f32_column(col(name)?, n) {
                t.push(format!("{name}.{s}"), floats(v));
            }
        }
        let nn = u32_column(col(columns::NN_ID)?, n);
        if let Some(v) = &nn {
            t.push(format!("{}.{s}", columns::NN_ID), ints(v));
        }
        if let Some(v) = f32_column(col(columns::NN_DISTANCE)?, n) {
            t.push(format!("{}.{s}", columns::NN_DISTANCE), floats(v));
        }
        if let Some(v) = u32_column(col(columns::NEAR_DUPLICATE)?, n) {
            t.push(format!("{}.{s}", columns::NEAR_DUPLICATE), Values::Bool(v.iter().map(|&f| Some(f == 1)).collect()));
        }
        if let Some(v) = f32_column(col(columns::NEAR_DUPLICATE_SCORE)?, n) {
            t.push(format!("{}.{s}", columns::NEAR_DUPLICATE_SCORE), floats(v));
        }
        if let Some(v) = u32_column(col(columns::DUPLICATE_GROUP)?, n) {
            t.push(format!("{}.{s}", columns::DUPLICATE_GROUP), ints(&v));
        }
        if let Some(v) = u32_column(col(columns::NN_FLAG)?, n) {
            t.push(format!("{}.{s}", columns::NN_FLAG), Values::Bool(v.iter().map(|&f| Some(f == 1)).collect()));
        }
        let xy = match col(columns::UMAP)? {
            Some(Column::F32 { width: 2, values }) if values.len() == 2 * n => Some(values),
            _ => match col(columns::PCA)? {
                Some(Column::F32 { width: 2, values }) if values.len() == 2 * n => Some(values),
                _ => None,
            },
        };
        if let Some(xy) = xy {
            t.push(format!("x.{s}"), floats(xy.iter().step_by(2).copied().collect()));
            t.push(format!("y.{s}"), floats(xy.iter().skip(1).step_by(2).copied().collect()));
        }
        if let Some(v) = u32_column(col(columns::PRED)?, n) {
            t.push(format!("{}.{s}", columns::PRED), ints(&v));
            t.push(format!("pred_name.{s}"), Values::Str(v.iter().map(|&p| label_name(Some(p))).collect()));
        }
        for name in [columns::CONFIDENCE, columns::LABEL_QUALITY] {
            if let Some(v) = f32_column(col(name)?, n) {
                t.push(format!("{name}.{s}"), floats(v));
            }
        }
        if let Some(v) = u32_column(col(columns::LABEL_ISSUE)?, n) {
            t.push(format!("{}.{s}", columns::LABEL_ISSUE), Values::Bool(v.iter().map(|&f| Some(f == 1)).collect()));
        }
        for name in DRIFT_COLUMNS {
            if let Some(v) = f32_column(col(name)?, n) {
                t.push(format!("{name}.{s}"), floats(v));
            }
        }
    }
    // First against last space of the series (or foundation against fine-tuned), under their plain names.
    for name in DRIFT_COLUMNS {
        if let Some(v) = f32_column(store.column(&rtxn, "", name)?, n) {
            t.push(name, floats(v));
        }
    }
    if spotlight {
        spotlight_columns(&reader, &spaces, &items, &mut t)?;
    }
    let mut tags: Vec<Option<crate::Tag>> = vec![None; n];
    for (id, tag) in store.tags(&rtxn)? {
        if let Some(slot) = tags.get_mut(id as usize) {
            *slot = Some(tag);
        }
    }
    t.push("tag", Values::Str(tags.iter().map(|t| t.as_ref()?.kind.map(|k| k.as_str().to_string())).collect()));
    t.push("new_label", Values::Int(tags.iter().map(|t| t.as_ref()?.new_label.map(i64::from)).collect()));
    t.push("new_label_name", Values::Str(tags.iter().map(|t| label_name(t.as_ref()?.new_label)).collect()));
    t.push("note", Values::Str(tags.iter().map(|t| t.as_ref()?.note.clone()).collect()));
    let keep = reader.keep(n);
    if keep.contains(&false) {
        t.retain_rows(&keep);
    }
    Ok((t, reader.left_out.into_inner()))
}

/// The article's dataframe columns (see the module doc).
fn spotlight_columns(
    reader: &Reader<'_, '_>,
    spaces: &[SpaceInfo],
    items: &[crate::Item],
    t: &mut Table,
) -> Result<()> {
    let (store, rtxn) = (reader.store, reader.rtxn);
    let n = items.len();
    let cells = Arc::new(image_cells(reader, items)?);
    t.push("image", Values::Image(ImageColumn { cells: cells.clone(), rows: (0..n as u32).map(Some).collect() }));
    let names = store.label_names(rtxn)?;
    t.push(
        "label_str",
        Values::Str(items.iter().map(|i| i.label.and_then(|l| names.get(l as usize).cloned())).collect()),
    );
    // Each role's names go to its first space; the article's nearest neighbour is the fine-tuned space's.
    let first_of = |r: Role| spaces.iter().position(|s| role(&s.name) == r);
    let nn_space = first_of(Role::FineTuned).unwrap_or(0);
    for (si, sp) in spaces.iter().enumerate() {
        let r = role(&sp.name);
        let (embedding, outlier, suffix) =
            spotlight_names(&sp.name, if first_of(r) == Some(si) { r } else { Role::Other });
        let x = reader.embeddings(sp)?;
        let d = sp.dim as usize;
        one_row_per_item(store, rtxn, &format!("space {}", sp.name), x.len() / d.max(1))?;
        t.push(embedding, Values::FloatList(x.chunks_exact(d).map(<[f32]>::to_vec).collect()));
        let col = |name: &str| reader.column(&sp.name, name);
        if let Some(v) = f32_column(col(columns::OUTLIER_SCORE)?, n) {
            t.push(outlier, floats(v));
        }
        let name = |base: &str| if si == nn_space { base.to_string() } else { format!("{base}_{suffix}") };
        let Some(nn) = u32_column(col(columns::NN_ID)?, n) else { continue };
        t.push(name("nn_id"), ints(&nn));
        let distances = f32_column(col(columns::NN_DISTANCE)?, n);
        let flags = match u32_column(col(columns::NN_FLAG)?, n) {
            Some(v) => Some(v.iter().map(|&f| Some(f == 1)).collect()),
            None => distances.as_deref().map(article_nn_flags),
        };
        if let Some(v) = distances {
            t.push(name("nn_distance"), floats(v));
        }
        if let Some(v) = flags {
            t.push(name("nn_flag"), Values::Bool(v));
        }
        // A neighbour without an image (a damaged thumbnail left out) gets no cell rather than an empty one.
        let has_image = |j: u32| cells.get(j as usize).is_some_and(|c| c.bytes.is_some() || c.path.is_some());
        let rows = nn.iter().map(|&j| has_image(j).then_some(j)).collect();
        t.push(name("nn_image"), Values::Image(ImageColumn { cells: cells.clone(), rows }));
    }
    Ok(())
}

/// Each item's image cell: its file where the record is an image file that still exists, else its thumbnail,
/// checked against its checksum (a damaged one is refused, or left out when skipping damage).
fn image_cells(reader: &Reader<'_, '_>, items: &[crate::Item]) -> Result<Vec<ImageCell>> {
    let (store, rtxn) = (reader.store, reader.rtxn);
    let mut damaged = Vec::new();
    let mut cells = Vec::with_capacity(items.len());
    for (id, item) in items.iter().enumerate() {
        let id = id as u32;
        let path = Path::new(&item.source);
        if path.is_absolute() && path.is_file() {
            cells.push(ImageCell { bytes: None, path: Some(item.source.clone()) });
            continue;
        }
        let bytes = store.thumbnail(rtxn, id)?;
        if let Some(b) = &bytes
            && store.check_sum(rtxn, Part::Thumbnail, &id.to_be_bytes(), b)? == crate::sums::Check::Mismatch
        {
            damaged.push(id);
            cells.push(ImageCell::default());
            continue;
        }
        cells.push(ImageCell { bytes, path: None });
    }
    if !damaged.is_empty() && !reader.skip {
        let dir = store.dir().to_path_buf();
        return Err(StoreError::Checksum { dir, what: "the thumbnails", space: None, ids: damaged }.into());
    }
    reader.left_out.borrow_mut().add_items(&damaged);
    Ok(cells)
}

/// The store's item count against the rows an export is about to write: a damaged store fails here.
fn one_row_per_item(store: &Store, rtxn: &crate::ReadTxn, what: &str, rows: usize) -> Result<()> {
    let items = store.item_count(rtxn)? as usize;
    if rows == items {
        return Ok(());
    }
    Err(ExportError::RowCount { dir: store.dir().display().to_string(), items, what: what.to_string(), rows })
}

/// Writes `path` through a temporary file beside it, renamed over it only once `write` succeeded and the data
/// is on disk.
fn write_atomically(path: &Path, write: impl FnOnce(&mut File) -> Result<()>) -> Result<()> {
    let io = |source| ExportError::Io { path: path.display().to_string(), source };
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let mut tmp =
        tempfile::Builder::new().prefix(&format!(".{name}.")).suffix(".partial").tempfile_in(dir).map_err(io)?;
    write(tmp.as_file_mut())?;
    tmp.as_file().sync_all().map_err(io)?;
    tmp.persist(path).map_err(|e| io(e.error))?;
    Ok(())
}

pub fn write_table(table: &Table, path: &Path, format: TableFormat) -> Result<()> {
    let io = |source| ExportError::Io { path: path.display().to_string(), source };
    write_atomically(path, |file| match format {
        TableFormat::Csv => {
            let mut w = BufWriter::new(file);
            write_csv(table, &mut w).map_err(io)?;
            w.flush().map_err(io)
        }
        TableFormat::Jsonl => {
            let mut w = BufWriter::new(file);
            write_jsonl(table, &mut w).map_err(io)?;
            w.flush().map_err(io)
        }
        TableFormat::Parquet => write_parquet(table, file.try_clone().map_err(io)?)
            .map_err(|source| ExportError::Parquet { path: path.display().to_string(), source }),
    })
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_string() }
}

fn cell_text(v: &Values, r: usize) -> Option<String> {
    match v {
        Values::Int(x) => x[r].map(|x| x.to_string()),
        Values::Float(x) => x[r].map(|x| x.to_string()),
        Values::Bool(x) => x[r].map(|x| x.to_string()),
        Values::Str(x) => x[r].clone(),
        Values::FloatList(x) => Some(format!("[{}]", x[r].iter().map(f32::to_string).collect::<Vec<_>>().join(", "))),
        Values::Image(x) => x.get(r).and_then(|c| c.path.clone()),
    }
}

fn write_csv(t: &Table, w: &mut impl Write) -> std::io::Result<()> {
    let header: Vec<String> = t.columns.iter().map(|(n, _)| csv_field(n)).collect();
    writeln!(w, "{}", header.join(","))?;
    for r in 0..t.rows {
        let cells: Vec<String> =
            t.columns.iter().map(|(_, v)| cell_text(v, r).map_or(String::new(), |s| csv_field(&s))).collect();
        writeln!(w, "{}", cells.join(","))?;
    }
    Ok(())
}

fn write_jsonl(t: &Table, w: &mut impl Write) -> std::io::Result<()> {
    use serde_json::{Map, Value, json};
    for r in 0..t.rows {
        let mut obj = Map::with_capacity(t.columns.len());
        for (name, v) in &t.columns {
            let cell = match v {
                Values::Int(x) => x[r].map_or(Value::Null, |x| json!(x)),
                // f64 from f32 prints float noise (0.1f32 -> 0.10000000149011612); go through the f32's shortest text.
                Values::Float(x) => x[r].map_or(Value::Null, |x| {
                    x.to_string().parse::<serde_json::Number>().map_or(Value::Null, Value::Number)
                }),
                Values::Bool(x) => x[r].map_or(Value::Null, Value::Bool),
                Values::Str(x) => x[r].clone().map_or(Value::Null, Value::String),
                Values::FloatList(x) => json!(x[r]),
                Values::Image(x) => x.get(r).and_then(|c| c.path.clone()).map_or(Value::Null, Value::String),
            };
            obj.insert(name.clone(), cell);
        }
        serde_json::to_writer(&mut *w, &Value::Object(obj))?;
        w.write_all(b"\n")?;
    }
    Ok(())
}

fn parquet_field(name: &str, v: &Values) -> parquet::errors::Result<Type> {
    let prim = |p: Physical, logical: Option<LogicalType>| {
        Type::primitive_type_builder(name, p).with_repetition(Repetition::OPTIONAL).with_logical_type(logical).build()
    };
    match v {
        Values::Int(_) => prim(Physical::INT64, None),
        Values::Float(_) => prim(Physical::FLOAT, None),
        Values::Bool(_) => prim(Physical::BOOLEAN, None),
        Values::Str(_) => prim(Physical::BYTE_ARRAY, Some(LogicalType::String)),
        Values::FloatList(_) => {
            let element = Type::primitive_type_builder("element", Physical::FLOAT)
                .with_repetition(Repetition::REQUIRED)
                .build()?;
            let list = Type::group_type_builder("list")
                .with_repetition(Repetition::REPEATED)
                .with_fields(vec![Arc::new(element)])
                .build()?;
            Type::group_type_builder(name)
                .with_repetition(Repetition::OPTIONAL)
                .with_logical_type(Some(LogicalType::List))
                .with_fields(vec![Arc::new(list)])
                .build()
        }
        Values::Image(_) => {
            let bytes = Type::primitive_type_builder("bytes", Physical::BYTE_ARRAY)
                .with_repetition(Repetition::OPTIONAL)
                .build()?;
            let path = Type::primitive_type_builder("path", Physical::BYTE_ARRAY)
                .with_repetition(Repetition::OPTIONAL)
                .with_logical_type(Some(LogicalType::String))
                .build()?;
            Type::group_type_builder(name)
                .with_repetition(Repetition::OPTIONAL)
                .with_fields(vec![Arc::new(bytes), Arc::new(path)])
                .build()
        }
    }
}

/// Definition levels of an optional column: 1 present, 0 null; and the present values.
fn present<T: Clone>(x: &[Option<T>]) -> (Vec<T>, Vec<i16>) {
    let defs = x.iter().map(|v| i16::from(v.is_some())).collect();
    (x.iter().flatten().cloned().collect(), defs)
}

/// One member of an image column's cells: the present values, and definition levels 0 = no image, 1 = this
/// member null, 2 = present.
fn image_member(x: &ImageColumn, member: impl Fn(&ImageCell) -> Option<&[u8]>) -> (Vec<ByteArray>, Vec<i16>) {
    let mut vals = Vec::new();
    let defs = (0..x.rows.len())
        .map(|r| match x.get(r).map(&member) {
            None => 0,
            Some(None) => 1,
            Some(Some(b)) => {
                vals.push(ByteArray::from(b.to_vec()));
                2
            }
        })
        .collect();
    (vals, defs)
}

fn write_parquet(t: &Table, file: File) -> parquet::errors::Result<()> {
    let fields = t.columns.iter().map(|(n, v)| parquet_field(n, v).map(Arc::new)).collect::<Result<Vec<_>, _>>()?;
    let schema = Arc::new(Type::group_type_builder("schema").with_fields(fields).build()?);
    let props = Arc::new(WriterProperties::builder().set_created_by("torchlight".into()).build());
    let mut writer = SerializedFileWriter::new(file, schema, props)?;
    let mut rg = writer.next_row_group()?;
    for (_, v) in &t.columns {
        let mut col = rg.next_column()?.expect("one leaf column per table column");
        match v {
            Values::Int(x) => {
                let (vals, defs) = present(x);
                col.typed::<Int64Type>().write_batch(&vals, Some(&defs), None)?;
            }
            Values::Float(x) => {
                let (vals, defs) = present(x);
                col.typed::<FloatType>().write_batch(&vals, Some(&defs), None)?;
            }
            Values::Bool(x) => {
                let (vals, defs) = present(x);
                col.typed::<BoolType>().write_batch(&vals, Some(&defs), None)?;
            }
            Values::Str(x) => {
                let (vals, defs) = present(x);
                let vals: Vec<ByteArray> = vals.into_iter().map(|s| ByteArray::from(s.into_bytes())).collect();
                col.typed::<ByteArrayType>().write_batch(&vals, Some(&defs), None)?;
            }
            Values::FloatList(x) => {
                // Levels: definition 2 = an element, 1 = an empty list; repetition 0 starts a row.
                let mut vals = Vec::new();
                let mut defs = Vec::new();
                let mut reps = Vec::new();
                for row in x {
                    if row.is_empty() {
                        defs.push(1);
                        reps.push(0);
                    }
                    for (i, &v) in row.iter().enumerate() {
                        vals.push(v);
                        defs.push(2);
                        reps.push(i16::from(i > 0));
                    }
                }
                col.typed::<FloatType>().write_batch(&vals, Some(&defs), Some(&reps))?;
            }
            Values::Image(x) => {
                // Two leaves, `bytes` then `path`.
                let (vals, defs) = image_member(x, |c| c.bytes.as_deref());
                col.typed::<ByteArrayType>().write_batch(&vals, Some(&defs), None)?;
                col.close()?;
                col = rg.next_column()?.expect("a second leaf column per image column");
                let (vals, defs) = image_member(x, |c| c.path.as_deref().map(str::as_bytes));
                col.typed::<ByteArrayType>().write_batch(&vals, Some(&defs), None)?;
            }
        }
        col.close()?;
    }
    rg.close()?;
    writer.close()?;
    Ok(())
}

/// How embeddings are written, by the output's extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmbeddingFormat {
    /// float32 `[N, D]`.
    Npy,
    /// A header `id,e0,e1,...` and a row per item.
    Csv,
}

impl EmbeddingFormat {
    pub fn from_path(path: &Path) -> Result<EmbeddingFormat> {
        match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
            Some("npy") => Ok(EmbeddingFormat::Npy),
            Some("csv") => Ok(EmbeddingFormat::Csv),
            _ => Err(ExportError::EmbeddingFormat(path.display().to_string())),
        }
    }
}

/// Writes one space's embeddings in item-id order, as `.npy` (float32 `[N, D]`) or `.csv`; returns (N, D).
pub fn export_embeddings(store: &Store, space: &str, path: &Path) -> Result<(usize, usize)> {
    let (n, d, _) = export_embeddings_skipping(store, space, path, false)?;
    Ok((n, d))
}

/// `export_embeddings`; with `skip_damaged`, the rows that fail their checksums are left out (the `.csv` `id`
/// column names the rows written; a `.npy` holds the others in id order) and their ids returned.
pub fn export_embeddings_skipping(
    store: &Store,
    space: &str,
    path: &Path,
    skip_damaged: bool,
) -> Result<(usize, usize, LeftOut)> {
    let format = EmbeddingFormat::from_path(path)?;
    let rtxn = store.read_txn()?;
    let reader = Reader { store, rtxn: &rtxn, skip: skip_damaged, left_out: RefCell::default() };
    let spaces = store.spaces(&rtxn)?;
    let sp = spaces.iter().find(|s| s.name == space).ok_or_else(|| ExportError::NoSpace {
        name: space.to_string(),
        have: spaces.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", "),
    })?;
    let mut x = reader.embeddings(sp)?;
    let d = sp.dim as usize;
    let n = x.len() / d.max(1);
    one_row_per_item(store, &rtxn, &format!("space {space}"), n)?;
    let keep = reader.keep(n);
    let mut ids: Vec<u32> = (0..n as u32).collect();
    if keep.contains(&false) {
        ids.retain(|&id| keep[id as usize]);
        x = ids.iter().flat_map(|&id| &x[id as usize * d..(id as usize + 1) * d]).copied().collect();
    }
    let rows = ids.len();
    let io = |source| ExportError::Io { path: path.display().to_string(), source };
    write_atomically(path, |file| {
        let mut w = BufWriter::new(file);
        match format {
            EmbeddingFormat::Npy => crate::npy::write_f32(&mut w, &[rows, d], &x)
                .map_err(|source| ExportError::Npy { path: path.display().to_string(), source })?,
            EmbeddingFormat::Csv => write_embeddings_csv(&ids, &x, d, &mut w).map_err(io)?,
        }
        w.flush().map_err(io)
    })?;
    Ok((rows, d, reader.left_out.into_inner()))
}

fn write_embeddings_csv(ids: &[u32], x: &[f32], d: usize, w: &mut impl Write) -> std::io::Result<()> {
    let header: Vec<String> = std::iter::once("id".to_string()).chain((0..d).map(|j| format!("e{j}"))).collect();
    writeln!(w, "{}", header.join(","))?;
    for (id, row) in ids.iter().zip(x.chunks_exact(d.max(1))) {
        write!(w, "{id}")?;
        for v in row {
            write!(w, ",{v}")?;
        }
        writeln!(w)?;
    }
    Ok(())
}
