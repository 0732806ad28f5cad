//! `torchlight export`: embeddings as `.npy` or `.csv`, or a per-item table of labels, scores and triage tags
//! as `.csv`, `.jsonl` or `.parquet` (loads in pandas; `spotlight` adds the column names of the article's
//! dataframe so the file opens in Renumics Spotlight the same way).
//!
//! Every file is written to a temporary file beside the target and renamed over it once complete and synced:
//! an export that fails (a full disk, a damaged store) leaves an existing file as it was and no partial one.
//! Every export holds exactly one row per item, in id order, or fails naming the store.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::Arc;

use parquet::basic::{LogicalType, Repetition, Type as Physical};
use parquet::data_type::{BoolType, ByteArray, ByteArrayType, FloatType, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::Type;

use crate::{Column, SpaceInfo, Store, StoreError, columns};

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

/// The article's short name of a space: `ft` for a fine-tuned model, `found` / `foundation` for the
/// foundation model, otherwise the space's own name.
fn spotlight_names(space: &str) -> (String, String) {
    let s = space.to_ascii_lowercase();
    if s.starts_with("fine") || s == "ft" {
        ("ft".into(), "ft".into())
    } else if s.starts_with("found") {
        ("found".into(), "foundation".into())
    } else {
        (space.to_string(), space.to_string())
    }
}

/// The per-item table: id, source, label, label_name; per space S its scores as `name.S`; tag, new_label, note.
pub fn build_table(store: &Store, spotlight: bool) -> Result<Table> {
    let rtxn = store.read_txn()?;
    let items = store.items(&rtxn)?;
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
    for (si, sp) in spaces.iter().enumerate() {
        let s = &sp.name;
        let col = |name: &str| store.column(&rtxn, s, name);
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
        if spotlight {
            spotlight_columns(store, &rtxn, sp, si == 0, &items, nn.as_deref(), &mut t)?;
        }
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
    Ok(t)
}

/// The article's dataframe columns: `image`, `label_str`, `embedding_<S>` (a list of floats),
/// `outlier_score_<S>`, `nn_image_<S>` (and `nn_image` for the first space).
fn spotlight_columns(
    store: &Store,
    rtxn: &crate::ReadTxn,
    sp: &SpaceInfo,
    first: bool,
    items: &[crate::Item],
    nn: Option<&[u32]>,
    t: &mut Table,
) -> Result<()> {
    let n = items.len();
    let (short, long) = spotlight_names(&sp.name);
    if first {
        t.push("image", Values::Str(items.iter().map(|i| Some(i.source.clone())).collect()));
        let names = store.label_names(rtxn)?;
        t.push(
            "label_str",
            Values::Str(items.iter().map(|i| i.label.and_then(|l| names.get(l as usize).cloned())).collect()),
        );
    }
    let x = store.embedding_matrix(rtxn, sp)?;
    let d = sp.dim as usize;
    one_row_per_item(store, rtxn, &format!("space {}", sp.name), x.len() / d.max(1))?;
    t.push(format!("embedding_{long}"), Values::FloatList(x.chunks_exact(d).map(<[f32]>::to_vec).collect()));
    if let Some(v) = f32_column(store.column(rtxn, &sp.name, columns::OUTLIER_SCORE)?, n) {
        t.push(format!("outlier_score_{short}"), floats(v));
    }
    if let Some(nn) = nn {
        let images = Values::Str(nn.iter().map(|&j| items.get(j as usize).map(|i| i.source.clone())).collect());
        if first {
            t.push("nn_image", images.clone());
        }
        t.push(format!("nn_image_{short}"), images);
    }
    Ok(())
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
    }
}

/// Definition levels of an optional column: 1 present, 0 null; and the present values.
fn present<T: Clone>(x: &[Option<T>]) -> (Vec<T>, Vec<i16>) {
    let defs = x.iter().map(|v| i16::from(v.is_some())).collect();
    (x.iter().flatten().cloned().collect(), defs)
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
    let format = EmbeddingFormat::from_path(path)?;
    let rtxn = store.read_txn()?;
    let spaces = store.spaces(&rtxn)?;
    let sp = spaces.iter().find(|s| s.name == space).ok_or_else(|| ExportError::NoSpace {
        name: space.to_string(),
        have: spaces.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", "),
    })?;
    let x = store.embedding_matrix(&rtxn, sp)?;
    let d = sp.dim as usize;
    let n = x.len() / d.max(1);
    one_row_per_item(store, &rtxn, &format!("space {space}"), n)?;
    let io = |source| ExportError::Io { path: path.display().to_string(), source };
    write_atomically(path, |file| {
        let mut w = BufWriter::new(file);
        match format {
            EmbeddingFormat::Npy => crate::npy::write_f32(&mut w, &[n, d], &x)
                .map_err(|source| ExportError::Npy { path: path.display().to_string(), source })?,
            EmbeddingFormat::Csv => write_embeddings_csv(&x, d, &mut w).map_err(io)?,
        }
        w.flush().map_err(io)
    })?;
    Ok((n, d))
}

fn write_embeddings_csv(x: &[f32], d: usize, w: &mut impl Write) -> std::io::Result<()> {
    let header: Vec<String> = std::iter::once("id".to_string()).chain((0..d).map(|j| format!("e{j}"))).collect();
    writeln!(w, "{}", header.join(","))?;
    for (id, row) in x.chunks_exact(d.max(1)).enumerate() {
        write!(w, "{id}")?;
        for v in row {
            write!(w, ",{v}")?;
        }
        writeln!(w)?;
    }
    Ok(())
}
