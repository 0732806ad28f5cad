//! Precomputed embeddings: a `.npy` float32/float64 [N, D] matrix (read here, no crate needed: the format
//! is a short text header and raw values), or a parquet list-of-float column.

use std::fs::File;
use std::path::Path;

use ::parquet::file::reader::{FileReader, SerializedFileReader};
use ::parquet::record::Field;
use ::parquet::schema::types::Type;

/// A row-major [rows, cols] f32 matrix.
#[derive(Debug, Clone, PartialEq)]
pub struct Matrix {
    pub rows: usize,
    pub cols: usize,
    pub data: Vec<f32>,
}

/// Reads `.npy` or `.parquet` (the list column `column`, or the only list column).
pub fn read(path: &Path, column: Option<&str>) -> Result<Matrix, String> {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_lowercase();
    match ext.as_str() {
        "npy" => read_npy(path),
        "parquet" => read_parquet(path, column),
        _ => Err("unknown file type: give a .npy (float32/float64 [N, D]) or a .parquet with a list column".into()),
    }
}

/// The value of `key` in a numpy header dict (`{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }`).
fn header_value<'h>(header: &'h str, key: &str) -> Option<&'h str> {
    let at = header.find(&format!("'{key}'"))? + key.len() + 2;
    let rest = header[at..].trim_start().strip_prefix(':')?.trim_start();
    let end = if rest.starts_with('(') { rest.find(')')? + 1 } else { rest.find(',').unwrap_or(rest.len()) };
    Some(rest[..end].trim())
}

pub fn read_npy(path: &Path) -> Result<Matrix, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read: {e}"))?;
    parse_npy(&bytes)
}

pub fn parse_npy(bytes: &[u8]) -> Result<Matrix, String> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err("not a .npy file (no \\x93NUMPY magic)".into());
    }
    let (header_len, header_start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (u32::from_le_bytes(bytes[8..12].try_into().unwrap()) as usize, 12),
        v => return Err(format!(".npy format version {v} unknown")),
    };
    let data_start = header_start + header_len;
    let header =
        bytes.get(header_start..data_start).and_then(|h| std::str::from_utf8(h).ok()).ok_or("truncated .npy header")?;
    let descr = header_value(header, "descr").ok_or("no descr in .npy header")?.trim_matches(['\'', '"']);
    let fortran = header_value(header, "fortran_order").ok_or("no fortran_order in .npy header")? == "True";
    let shape: Vec<usize> = header_value(header, "shape")
        .ok_or("no shape in .npy header")?
        .trim_matches(['(', ')'])
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>().map_err(|_| format!("bad shape entry {s}")))
        .collect::<Result<_, _>>()?;
    let (rows, cols) = match shape[..] {
        [r, c] => (r, c),
        _ => return Err(format!("shape {shape:?}: embeddings must be 2-D [N, D]")),
    };
    let (size, big, float64) = match descr {
        "<f4" | "|f4" | "=f4" => (4, false, false),
        ">f4" => (4, true, false),
        "<f8" | "|f8" | "=f8" => (8, false, true),
        ">f8" => (8, true, true),
        other => return Err(format!("dtype {other}: embeddings must be float32 or float64")),
    };
    let body = &bytes[data_start..];
    let n = rows * cols;
    if body.len() < n * size {
        return Err(format!("holds {} bytes of data, shape ({rows}, {cols}) needs {}", body.len(), n * size));
    }
    let values: Vec<f32> = body[..n * size]
        .chunks_exact(size)
        .map(|c| match (float64, big) {
            (false, false) => f32::from_le_bytes(c.try_into().unwrap()),
            (false, true) => f32::from_be_bytes(c.try_into().unwrap()),
            (true, false) => f64::from_le_bytes(c.try_into().unwrap()) as f32,
            (true, true) => f64::from_be_bytes(c.try_into().unwrap()) as f32,
        })
        .collect();
    let data = if fortran {
        // Column-major on disk: value (r, c) is at c * rows + r.
        let mut out = vec![0f32; n];
        for c in 0..cols {
            for r in 0..rows {
                out[r * cols + c] = values[c * rows + r];
            }
        }
        out
    } else {
        values
    };
    Ok(Matrix { rows, cols, data })
}

/// Whether a top-level parquet field is a list (LIST-annotated group, or a repeated field).
fn is_list(field: &Type) -> bool {
    use ::parquet::basic::{ConvertedType, LogicalType};
    field.get_basic_info().converted_type() == ConvertedType::LIST
        || matches!(field.get_basic_info().logical_type_ref(), Some(LogicalType::List))
        || field.get_basic_info().repetition() == ::parquet::basic::Repetition::REPEATED
}

pub fn read_parquet(path: &Path, column: Option<&str>) -> Result<Matrix, String> {
    let file = File::open(path).map_err(|e| format!("cannot open: {e}"))?;
    let reader = SerializedFileReader::new(file).map_err(|e| e.to_string())?;
    let root = reader.metadata().file_metadata().schema_descr().root_schema().clone();
    let lists: Vec<_> = root.get_fields().iter().filter(|f| is_list(f)).cloned().collect();
    let field = match column {
        Some(c) => lists.iter().find(|f| f.name() == c).cloned().ok_or_else(|| {
            format!(
                "no list column {c}; list columns: {}",
                lists.iter().map(|f| f.name()).collect::<Vec<_>>().join(", ")
            )
        })?,
        None => match &lists[..] {
            [one] => one.clone(),
            [] => return Err("no list column (an embedding per row as a list of floats)".into()),
            many => {
                return Err(format!(
                    "several list columns ({}): name one as NAME=FILE.parquet#COLUMN",
                    many.iter().map(|f| f.name()).collect::<Vec<_>>().join(", ")
                ));
            }
        },
    };
    let projection =
        Type::group_type_builder(root.name()).with_fields(vec![field.clone()]).build().map_err(|e| e.to_string())?;
    let rows = reader.get_row_iter(Some(projection)).map_err(|e| e.to_string())?;
    let mut data = Vec::new();
    let mut cols = None;
    let mut n = 0usize;
    for row in rows {
        let row = row.map_err(|e| e.to_string())?;
        let (_, value) = row.get_column_iter().next().ok_or("empty row")?;
        let Field::ListInternal(list) = value else {
            return Err(format!("row {n}: column {} is {value:?}, not a list", field.name()));
        };
        let before = data.len();
        for e in list.elements() {
            data.push(match e {
                Field::Float(v) => *v,
                Field::Double(v) => *v as f32,
                Field::Float16(v) => v.to_f32(),
                other => return Err(format!("row {n}: element {other:?} is not a float")),
            });
        }
        let len = data.len() - before;
        match cols {
            None => cols = Some(len),
            Some(c) if c != len => return Err(format!("row {n} has {len} values, row 0 has {c}")),
            _ => {}
        }
        n += 1;
    }
    Ok(Matrix { rows: n, cols: cols.unwrap_or(0), data })
}
