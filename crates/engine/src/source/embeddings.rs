//! Precomputed embeddings: a `.npy` float32/float64 [N, D] matrix (torchlight_store::npy), or a parquet list-of-float column.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use torchlight_store::npy::{self, Dtype, NpyError};

use ::parquet::file::reader::{FileReader, SerializedFileReader};
use ::parquet::record::Field;
use ::parquet::schema::types::Type;

#[derive(Debug, thiserror::Error)]
pub enum EmbeddingsError {
    #[error("unknown file type: give a .npy (float32/float64 [N, D]) or a .parquet with a list column")]
    UnknownType,
    #[error("cannot open: {0}")]
    Open(std::io::Error),
    #[error("cannot read: {0}")]
    Read(std::io::Error),
    #[error(transparent)]
    Npy(#[from] NpyError),
    #[error(transparent)]
    Parquet(#[from] ::parquet::errors::ParquetError),
    #[error("shape {0:?}: embeddings must be 2-D [N, D]")]
    NotTwoD(Vec<usize>),
    #[error("dtype {0:?}: embeddings must be float32 or float64")]
    NotFloat(Dtype),
    #[error("holds {have} bytes of data, shape ({rows}, {cols}) needs {need}")]
    Short { have: u64, rows: usize, cols: usize, need: u64 },
    #[error("past the last row")]
    PastEnd,
    #[error("no list column {column}; list columns: {found}")]
    NoSuchColumn { column: String, found: String },
    #[error("no list column (an embedding per row as a list of floats)")]
    NoListColumn,
    #[error("several list columns ({0}): name one as NAME=FILE.parquet#COLUMN")]
    SeveralListColumns(String),
    #[error("row {row}: {why}")]
    BadRow { row: usize, why: String },
    /// A file of a dataset without the column asked for, or with it as something other than a list of floats.
    #[error("{file}: {why}")]
    Column { file: String, why: String },
    /// A row of a dataset's column that is not a vector (null, empty, a null or non-finite element, ragged).
    #[error("{file} row {row}: {why}")]
    Cell { file: String, row: usize, why: String },
    #[error(transparent)]
    Source(#[from] super::SourceError),
}

type Result<T, E = EmbeddingsError> = std::result::Result<T, E>;

/// A row-major [rows, cols] f32 matrix.
#[derive(Debug, Clone, PartialEq)]
pub struct Matrix {
    pub rows: usize,
    pub cols: usize,
    pub data: Vec<f32>,
}

/// Reads `.npy` or `.parquet` (the list column `column`, or the only list column).
pub fn read(path: &Path, column: Option<&str>) -> Result<Matrix> {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_lowercase();
    match ext.as_str() {
        "npy" => read_npy(path),
        "parquet" => read_parquet(path, column),
        _ => Err(EmbeddingsError::UnknownType),
    }
}

/// Rows of a precomputed embedding file, read in order. A C-order `.npy` is streamed from disk, so a million
/// 768-d rows never sit in memory at once; a Fortran-order `.npy` or a parquet column is loaded whole.
pub enum Rows {
    Streamed { reader: BufReader<File>, dtype: Dtype, big_endian: bool, rows: usize, cols: usize, buf: Vec<u8> },
    Loaded { matrix: Matrix, next: usize },
}

impl Rows {
    /// Opens `.npy` or `.parquet` (the list column `column`, or the only list column). Shape, type and the file's
    /// length are checked here, before a row is read.
    pub fn open(path: &Path, column: Option<&str>) -> Result<Rows> {
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_lowercase();
        if ext != "npy" {
            return Ok(Rows::Loaded { matrix: read(path, column)?, next: 0 });
        }
        let (file, meta) = super::open_regular(path).map_err(EmbeddingsError::Open)?;
        let file_len = meta.len();
        let mut reader = BufReader::with_capacity(1 << 20, file);
        let (header, data_start) = npy::read_header(&mut reader)?;
        if header.fortran_order {
            return Ok(Rows::Loaded { matrix: read_npy(path)?, next: 0 });
        }
        let (rows, cols) = check_shape(&header.shape, header.dtype)?;
        let need = header.data_len()? as u64;
        let have = file_len.saturating_sub(data_start as u64);
        if have < need {
            return Err(EmbeddingsError::Short { have, rows, cols, need });
        }
        let buf = vec![0u8; cols * header.dtype.size()];
        Ok(Rows::Streamed { reader, dtype: header.dtype, big_endian: header.big_endian, rows, cols, buf })
    }

    pub fn rows(&self) -> usize {
        match self {
            Rows::Streamed { rows, .. } => *rows,
            Rows::Loaded { matrix, .. } => matrix.rows,
        }
    }

    pub fn cols(&self) -> usize {
        match self {
            Rows::Streamed { cols, .. } => *cols,
            Rows::Loaded { matrix, .. } => matrix.cols,
        }
    }

    /// The next row into `out` (resized to the row width).
    pub fn next_row(&mut self, out: &mut Vec<f32>) -> Result<()> {
        match self {
            Rows::Streamed { reader, dtype, big_endian, buf, .. } => {
                reader.read_exact(buf).map_err(EmbeddingsError::Read)?;
                let size = dtype.size();
                out.clear();
                out.extend(buf.chunks_exact(size).map(|c| npy::element_f32(*dtype, *big_endian, c)));
            }
            Rows::Loaded { matrix, next } => {
                let row =
                    matrix.data.get(*next * matrix.cols..(*next + 1) * matrix.cols).ok_or(EmbeddingsError::PastEnd)?;
                out.clear();
                out.extend_from_slice(row);
                *next += 1;
            }
        }
        Ok(())
    }
}

fn check_shape(shape: &[usize], dtype: Dtype) -> Result<(usize, usize)> {
    let (rows, cols) = match shape {
        [r, c] => (*r, *c),
        _ => return Err(EmbeddingsError::NotTwoD(shape.to_vec())),
    };
    if !dtype.is_float() {
        return Err(EmbeddingsError::NotFloat(dtype));
    }
    Ok((rows, cols))
}

pub fn read_npy(path: &Path) -> Result<Matrix> {
    let bytes = std::fs::read(path).map_err(EmbeddingsError::Read)?;
    parse_npy(bytes)
}

pub fn parse_npy(bytes: Vec<u8>) -> Result<Matrix> {
    let a = npy::parse(bytes)?;
    let (rows, cols) = check_shape(&a.shape, a.dtype)?;
    Ok(Matrix { rows, cols, data: a.to_f32() })
}

/// Whether a top-level parquet field is a list (LIST-annotated group, or a repeated field).
fn is_list(field: &Type) -> bool {
    use ::parquet::basic::{ConvertedType, LogicalType};
    field.get_basic_info().converted_type() == ConvertedType::LIST
        || matches!(field.get_basic_info().logical_type_ref(), Some(LogicalType::List))
        || field.get_basic_info().repetition() == ::parquet::basic::Repetition::REPEATED
}

pub fn read_parquet(path: &Path, column: Option<&str>) -> Result<Matrix> {
    let (file, _) = super::open_regular(path).map_err(EmbeddingsError::Open)?;
    let reader = SerializedFileReader::new(file)?;
    let root = reader.metadata().file_metadata().schema_descr().root_schema().clone();
    let lists: Vec<_> = root.get_fields().iter().filter(|f| is_list(f)).cloned().collect();
    let field = match column {
        Some(c) => lists.iter().find(|f| f.name() == c).cloned().ok_or_else(|| EmbeddingsError::NoSuchColumn {
            column: c.to_string(),
            found: lists.iter().map(|f| f.name()).collect::<Vec<_>>().join(", "),
        })?,
        None => match &lists[..] {
            [one] => one.clone(),
            [] => return Err(EmbeddingsError::NoListColumn),
            many => {
                let names = many.iter().map(|f| f.name()).collect::<Vec<_>>().join(", ");
                return Err(EmbeddingsError::SeveralListColumns(names));
            }
        },
    };
    let projection = Type::group_type_builder(root.name()).with_fields(vec![field.clone()]).build()?;
    let rows = reader.get_row_iter(Some(projection))?;
    let mut data = Vec::new();
    let mut cols = None;
    let mut n = 0usize;
    for row in rows {
        let row = row?;
        let bad = |why: String| EmbeddingsError::BadRow { row: n, why };
        let (_, value) = row.get_column_iter().next().ok_or_else(|| bad("empty row".into()))?;
        let Field::ListInternal(list) = value else {
            return Err(bad(format!("column {} is {value:?}, not a list", field.name())));
        };
        let before = data.len();
        for e in list.elements() {
            data.push(match e {
                Field::Float(v) => *v,
                Field::Double(v) => *v as f32,
                Field::Float16(v) => v.to_f32(),
                other => return Err(bad(format!("element {other:?} is not a float"))),
            });
        }
        let len = data.len() - before;
        match cols {
            None => cols = Some(len),
            Some(c) if c != len => return Err(bad(format!("{len} values, row 0 has {c}"))),
            _ => {}
        }
        n += 1;
    }
    Ok(Matrix { rows: n, cols: cols.unwrap_or(0), data })
}
