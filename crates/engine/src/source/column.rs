//! A list-of-floats column of a parquet dataset, read row by row in record order across its files: embeddings
//! stored beside the images, as the article's prepared datasets carry them (`embedding_ft`,
//! `embedding.foundation`).
//!
//! The column is found by its top-level name, never by a dotted path, so `embedding.foundation` is that column
//! and not a member `foundation` of a struct `embedding`. Only its one leaf is decoded, one row group at a time,
//! with the parquet crate's column reader: its definition and repetition levels say which rows are null, which
//! lists are empty and which elements are null, so every such row is reported by file and row.

use std::path::PathBuf;

use ::parquet::basic::{LogicalType, Repetition, Type as Physical};
use ::parquet::column::reader::{ColumnReader, ColumnReaderImpl};
use ::parquet::data_type::DataType;
use ::parquet::file::reader::{FileReader, SerializedFileReader};
use ::parquet::schema::types::Type;

use super::embeddings::EmbeddingsError;
use super::parquet::{Input, check_dictionaries, guard, open_reader};

type Result<T, E = EmbeddingsError> = std::result::Result<T, E>;

/// Where a list's levels put a row: below `present` the row is null, below `repeated` its list is empty, below
/// `max` the element is null, at `max` it is a value.
#[derive(Debug, Clone, Copy)]
struct Levels {
    present: i16,
    repeated: i16,
    max: i16,
}

/// The element types a column may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Element {
    F32,
    F64,
    F16,
}

/// One file of the dataset as the column is laid out in it.
#[derive(Debug, Clone)]
struct Shard {
    path: PathBuf,
    leaf: usize,
    levels: Levels,
    element: Element,
    group_rows: Vec<usize>,
}

/// The rows of one decoded row group: the values laid end to end and, per row, its range or what is wrong with it.
#[derive(Default)]
struct Batch {
    values: Vec<f32>,
    rows: Vec<std::result::Result<(usize, usize), String>>,
    next: usize,
}

/// A list column read row by row across a dataset's files. `open` checks every file's schema (footers only);
/// the values of a row are checked when the row is read (`next_row`), and `skip_row` passes over a row unread,
/// for records that did not become items.
pub struct ColumnRows {
    column: String,
    shards: Vec<Shard>,
    rows: usize,
    /// The next row's number among all rows.
    position: usize,
    /// Shard and row group being read, and the row within the shard of the batch's next row.
    shard: usize,
    group: usize,
    row_in_shard: usize,
    reader: Option<SerializedFileReader<Input>>,
    batch: Batch,
    /// Length of the first row read, and where it was.
    dim: Option<(usize, String)>,
}

fn describe(field: &Type) -> String {
    if field.is_primitive() {
        let info = field.get_basic_info();
        match info.logical_type_ref() {
            Some(LogicalType::String) => "strings".into(),
            Some(LogicalType::Float16) => "float16".into(),
            Some(l) => format!("{:?} ({l:?})", field.get_physical_type()),
            None => format!("{:?}", field.get_physical_type()),
        }
    } else {
        format!("a struct of {}", field.get_fields().iter().map(|f| f.name()).collect::<Vec<_>>().join(", "))
    }
}

/// The levels and element type of `field` when it is a list of float32, float64 or float16 (a standard three-level
/// LIST, or a repeated primitive); otherwise what it is instead.
fn list_layout(field: &Type) -> std::result::Result<(Levels, Element), String> {
    let mut node = field;
    let (mut def, mut present, mut repeated) = (0i16, None, None);
    loop {
        match node.get_basic_info().repetition() {
            Repetition::OPTIONAL => def += 1,
            Repetition::REPEATED => {
                if repeated.is_some() {
                    return Err("a list of lists, not a list of numbers".into());
                }
                present = Some(def);
                def += 1;
                repeated = Some(def);
            }
            Repetition::REQUIRED => {}
        }
        if node.is_primitive() {
            break;
        }
        match node.get_fields() {
            [one] => node = one,
            _ => {
                return Err(if repeated.is_some() {
                    format!("a list of {}, not of numbers", describe(node))
                } else {
                    format!("{}, not a list of numbers", describe(node))
                });
            }
        }
    }
    let (Some(present), Some(repeated)) = (present, repeated) else {
        return Err(format!("{}, not a list of numbers", describe(field)));
    };
    let element = match (node.get_physical_type(), node.get_basic_info().logical_type_ref()) {
        (Physical::FLOAT, _) => Element::F32,
        (Physical::DOUBLE, _) => Element::F64,
        (Physical::FIXED_LEN_BYTE_ARRAY, Some(LogicalType::Float16))
            if matches!(node, Type::PrimitiveType { type_length: 2, .. }) =>
        {
            Element::F16
        }
        _ => return Err(format!("a list of {}, not of float32, float64 or float16", describe(node))),
    };
    Ok((Levels { present, repeated, max: def }, element))
}

fn f16_to_f32(bits: u16) -> f32 {
    let sign = if bits & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exp = i32::from((bits >> 10) & 0x1f);
    let frac = f32::from(bits & 0x3ff);
    match exp {
        0 => sign * frac * 2f32.powi(-24),
        31 if frac == 0.0 => sign * f32::INFINITY,
        31 => f32::NAN,
        _ => sign * (1.0 + frac / 1024.0) * 2f32.powi(exp - 15),
    }
}

/// Reads all `rows` records of a column chunk, levels and values appended.
fn read_chunk<T: DataType>(
    mut reader: ColumnReaderImpl<T>,
    rows: usize,
    defs: &mut Vec<i16>,
    reps: &mut Vec<i16>,
    values: &mut Vec<T::T>,
) -> ::parquet::errors::Result<()> {
    let mut done = 0;
    while done < rows {
        let (records, _, levels) = reader.read_records(rows - done, Some(defs), Some(reps), values)?;
        if records == 0 && levels == 0 {
            return Err(::parquet::errors::ParquetError::General(format!(
                "the column chunk ends after {done} of its row group's {rows} rows"
            )));
        }
        done += records;
    }
    Ok(())
}

impl ColumnRows {
    /// The list column `column` of `files`, in this order. Every file must have it, as a list of float32,
    /// float64 or float16; the error names the first file that does not.
    pub fn open(files: &[PathBuf], column: &str) -> Result<ColumnRows> {
        let mut shards = Vec::with_capacity(files.len());
        for path in files {
            let reader = open_reader(path, true)?;
            let schema = reader.metadata().file_metadata().schema_descr_ptr();
            let bad = |why: String| EmbeddingsError::Column { file: path.display().to_string(), why };
            let fields = schema.root_schema().get_fields();
            let Some(top) = fields.iter().position(|f| f.name() == column) else {
                let names = fields.iter().map(|f| f.name()).collect::<Vec<_>>().join(", ");
                return Err(bad(format!("no column {column} (its columns: {names})")));
            };
            let (levels, element) =
                list_layout(&fields[top]).map_err(|what| bad(format!("column {column} is {what}")))?;
            let leaf = (0..schema.num_columns())
                .find(|&i| schema.get_column_root_idx(i) == top)
                .ok_or_else(|| bad(format!("column {column} has no values")))?;
            let group_rows = reader.metadata().row_groups().iter().map(|g| g.num_rows() as usize).collect();
            shards.push(Shard { path: path.clone(), leaf, levels, element, group_rows });
        }
        let rows = shards.iter().map(|s| s.group_rows.iter().sum::<usize>()).sum();
        Ok(ColumnRows {
            column: column.to_string(),
            shards,
            rows,
            position: 0,
            shard: 0,
            group: 0,
            row_in_shard: 0,
            reader: None,
            batch: Batch::default(),
            dim: None,
        })
    }

    /// Rows in all files together.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The next row's number among all rows.
    pub fn position(&self) -> usize {
        self.position
    }

    /// Row `r` (at or after `position`), passing over the rows before it unchecked.
    pub fn row(&mut self, r: usize) -> Result<&[f32]> {
        while self.position < r {
            self.skip_row()?;
        }
        self.next_row()
    }

    /// The next row's values, all finite and as many as in the first row read.
    pub fn next_row(&mut self) -> Result<&[f32]> {
        self.fill()?;
        let (shard, row) = (self.shard, self.row_in_shard);
        let at = |why: String| EmbeddingsError::Cell { file: self.shards[shard].path.display().to_string(), row, why };
        let slot = self.batch.rows[self.batch.next].clone();
        self.batch.next += 1;
        self.row_in_shard += 1;
        self.position += 1;
        let (start, end) = slot.map_err(&at)?;
        let len = end - start;
        if len == 0 {
            return Err(at(format!("column {} holds an empty list", self.column)));
        }
        match &self.dim {
            None => self.dim = Some((len, format!("{} row {row}", self.shards[shard].path.display()))),
            Some((dim, first)) if *dim != len => {
                return Err(at(format!(
                    "column {} holds {len} values, but {first} holds {dim}: every row needs the same length",
                    self.column
                )));
            }
            Some(_) => {}
        }
        Ok(&self.batch.values[start..end])
    }

    /// Passes over the next row without checking it.
    pub fn skip_row(&mut self) -> Result<()> {
        self.fill()?;
        self.batch.next += 1;
        self.row_in_shard += 1;
        self.position += 1;
        Ok(())
    }

    /// Makes the batch hold the next row: decodes the next row group, opening the next file when one ends.
    fn fill(&mut self) -> Result<()> {
        while self.batch.next >= self.batch.rows.len() {
            let Some(shard) = self.shards.get(self.shard) else {
                return Err(EmbeddingsError::PastEnd);
            };
            if self.group >= shard.group_rows.len() {
                self.shard += 1;
                self.group = 0;
                self.row_in_shard = 0;
                self.reader = None;
                continue;
            }
            let shard = shard.clone();
            if self.reader.is_none() {
                let reader = open_reader(&shard.path, false)?;
                guard(&shard.path, || check_dictionaries(&reader, &shard.path, &[self.column.as_str()]))?;
                self.reader = Some(reader);
            }
            let reader = self.reader.as_ref().expect("opened above");
            let rows = shard.group_rows[self.group];
            let column = &self.column;
            self.batch = guard(&shard.path, || {
                decode_group(reader, &shard, self.group, rows, column)
                    .map_err(|source| super::SourceError::Parquet { path: shard.path.clone(), source })
            })?;
            self.group += 1;
        }
        Ok(())
    }
}

/// Decodes row group `group` of the column: each row's values, or why the row is not a vector.
fn decode_group(
    reader: &SerializedFileReader<Input>,
    shard: &Shard,
    group: usize,
    rows: usize,
    column: &str,
) -> ::parquet::errors::Result<Batch> {
    let chunk = reader.get_row_group(group)?.get_column_reader(shard.leaf)?;
    let (mut defs, mut reps) = (Vec::new(), Vec::new());
    // Converted to f32 here, with what a conversion lost: a float64 beyond float32's range.
    let mut values: Vec<f32> = Vec::new();
    let mut too_big: Vec<Option<f64>> = Vec::new();
    match (chunk, shard.element) {
        (ColumnReader::FloatColumnReader(r), Element::F32) => read_chunk(r, rows, &mut defs, &mut reps, &mut values)?,
        (ColumnReader::DoubleColumnReader(r), Element::F64) => {
            let mut raw = Vec::new();
            read_chunk(r, rows, &mut defs, &mut reps, &mut raw)?;
            values = raw.iter().map(|&v| v as f32).collect();
            too_big = raw.iter().map(|&v| (v.is_finite() && !(v as f32).is_finite()).then_some(v)).collect();
        }
        (ColumnReader::FixedLenByteArrayColumnReader(r), Element::F16) => {
            let mut raw = Vec::new();
            read_chunk(r, rows, &mut defs, &mut reps, &mut raw)?;
            values = raw
                .iter()
                .map(|b| match b.data() {
                    [lo, hi] => f16_to_f32(u16::from_le_bytes([*lo, *hi])),
                    _ => f32::NAN,
                })
                .collect();
        }
        _ => {
            return Err(::parquet::errors::ParquetError::General(format!(
                "column {column}'s values are not of the type its schema gives"
            )));
        }
    }
    let levels = shard.levels;
    let mut batch = Batch { values: Vec::with_capacity(values.len()), rows: Vec::with_capacity(rows), next: 0 };
    let mut next_value = 0;
    let mut start = 0;
    let mut problem: Option<String> = None;
    let mut element = 0usize;
    let close = |batch: &mut Batch, start: usize, problem: &mut Option<String>| {
        let end = batch.values.len();
        batch.rows.push(problem.take().map_or(Ok((start, end)), Err));
    };
    for (k, &d) in defs.iter().enumerate() {
        if reps[k] == 0 && k > 0 {
            close(&mut batch, start, &mut problem);
            start = batch.values.len();
            element = 0;
        }
        if d == levels.max {
            let v = *values.get(next_value).ok_or_else(|| {
                ::parquet::errors::ParquetError::General(format!("column {column} has fewer values than levels"))
            })?;
            let lost = too_big.get(next_value).copied().flatten();
            next_value += 1;
            if problem.is_none() {
                problem = match lost {
                    Some(big) => Some(format!("column {column}: element {element} ({big}) is beyond float32's range")),
                    None if v.is_nan() => Some(format!("column {column}: element {element} is NaN")),
                    None if v.is_infinite() => Some(format!("column {column}: element {element} is {v}")),
                    None => None,
                };
            }
            batch.values.push(v);
            element += 1;
        } else if d >= levels.repeated {
            problem.get_or_insert_with(|| format!("column {column}: element {element} is null"));
            element += 1;
        } else if d < levels.present {
            problem.get_or_insert_with(|| format!("column {column} is null"));
        }
    }
    if !defs.is_empty() {
        close(&mut batch, start, &mut problem);
    }
    if batch.rows.len() != rows {
        return Err(::parquet::errors::ParquetError::General(format!(
            "column {column} holds {} rows in a row group of {rows}",
            batch.rows.len()
        )));
    }
    Ok(batch)
}
