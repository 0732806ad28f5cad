//! NumPy `.npy` files, format version 1.0, little-endian C order: enough to write embeddings for Python
//! and to read back arrays that Python wrote (test fixtures, precomputed embeddings).

use std::io::{Read, Write};

#[derive(Debug, thiserror::Error)]
pub enum NpyError {
    #[error("not a .npy file (bad magic or header): {0}")]
    Format(String),
    #[error("unsupported .npy array: {0}; save a little-endian, C-order float32/float64/int/uint8/bool array")]
    Unsupported(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Element types this module reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dtype {
    F32,
    F64,
    U8,
    Bool,
    I32,
    I64,
}

impl Dtype {
    fn parse(descr: &str) -> Option<Dtype> {
        Some(match descr {
            "<f4" => Dtype::F32,
            "<f8" => Dtype::F64,
            "|u1" | "<u1" => Dtype::U8,
            "|b1" => Dtype::Bool,
            "<i4" => Dtype::I32,
            "<i8" => Dtype::I64,
            _ => return None,
        })
    }

    fn size(self) -> usize {
        match self {
            Dtype::U8 | Dtype::Bool => 1,
            Dtype::F32 | Dtype::I32 => 4,
            Dtype::F64 | Dtype::I64 => 8,
        }
    }
}

/// An array read from a .npy file; values are kept as raw little-endian bytes.
#[derive(Debug, Clone)]
pub struct NpyArray {
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    pub data: Vec<u8>,
}

impl NpyArray {
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Values converted to f64 (every supported dtype converts exactly except i64 beyond 2^53).
    pub fn to_f64(&self) -> Vec<f64> {
        let b = &self.data;
        match self.dtype {
            Dtype::F32 => b.chunks_exact(4).map(|c| f64::from(f32::from_le_bytes(c.try_into().unwrap()))).collect(),
            Dtype::F64 => b.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap())).collect(),
            Dtype::U8 | Dtype::Bool => b.iter().map(|&v| f64::from(v)).collect(),
            Dtype::I32 => b.chunks_exact(4).map(|c| f64::from(i32::from_le_bytes(c.try_into().unwrap()))).collect(),
            Dtype::I64 => b.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap()) as f64).collect(),
        }
    }

    pub fn to_f32(&self) -> Vec<f32> {
        self.to_f64().into_iter().map(|v| v as f32).collect()
    }
}

/// Reads a whole .npy stream.
pub fn read(mut r: impl Read) -> Result<NpyArray, NpyError> {
    let mut magic = [0u8; 8];
    r.read_exact(&mut magic)?;
    if &magic[..6] != b"\x93NUMPY" {
        return Err(NpyError::Format("missing \\x93NUMPY magic".into()));
    }
    let header_len = match magic[6] {
        1 => {
            let mut b = [0u8; 2];
            r.read_exact(&mut b)?;
            u16::from_le_bytes(b) as usize
        }
        2 | 3 => {
            let mut b = [0u8; 4];
            r.read_exact(&mut b)?;
            u32::from_le_bytes(b) as usize
        }
        v => return Err(NpyError::Format(format!("format version {v}"))),
    };
    let mut header = vec![0u8; header_len];
    r.read_exact(&mut header)?;
    let header = String::from_utf8_lossy(&header).to_string();
    let field = |key: &str| -> Option<String> {
        let at = header.find(&format!("'{key}'"))? + key.len() + 2;
        let rest = header[at..].trim_start().strip_prefix(':')?.trim_start();
        if let Some(body) = rest.strip_prefix('(') {
            Some(body[..body.find(')')?].to_string())
        } else {
            let end = rest.find([',', '}']).unwrap_or(rest.len());
            Some(rest[..end].trim().trim_matches('\'').to_string())
        }
    };
    let descr = field("descr").ok_or_else(|| NpyError::Format(format!("no descr in header {header}")))?;
    let dtype = Dtype::parse(&descr).ok_or_else(|| NpyError::Unsupported(format!("dtype {descr}")))?;
    if field("fortran_order").as_deref() != Some("False") {
        return Err(NpyError::Unsupported("Fortran order".into()));
    }
    let shape_s = field("shape").ok_or_else(|| NpyError::Format(format!("no shape in header {header}")))?;
    let shape = shape_s
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>().map_err(|_| NpyError::Format(format!("bad shape ({shape_s})"))))
        .collect::<Result<Vec<_>, _>>()?;
    let mut data = vec![0u8; shape.iter().product::<usize>() * dtype.size()];
    r.read_exact(&mut data)?;
    Ok(NpyArray { dtype, shape, data })
}

/// Writes a float32 array of the given shape (row-major) as .npy v1.0.
pub fn write_f32(mut w: impl Write, shape: &[usize], values: &[f32]) -> Result<(), NpyError> {
    assert_eq!(shape.iter().product::<usize>(), values.len(), "shape does not match the number of values");
    let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
    let shape_s = if dims.len() == 1 { format!("({},)", dims[0]) } else { format!("({})", dims.join(", ")) };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape_s}, }}");
    // Magic (6) + version (2) + length (2) + header + '\n' is padded to a multiple of 64 bytes.
    let total = 10 + header.len() + 1;
    header.push_str(&" ".repeat(total.next_multiple_of(64) - total));
    header.push('\n');
    let len = u16::try_from(header.len()).map_err(|_| NpyError::Unsupported("header over 64 KiB".into()))?;
    w.write_all(b"\x93NUMPY\x01\x00")?;
    w.write_all(&len.to_le_bytes())?;
    w.write_all(header.as_bytes())?;
    let mut buf = Vec::with_capacity(1 << 16);
    for chunk in values.chunks(1 << 14) {
        buf.clear();
        buf.extend(chunk.iter().flat_map(|v| v.to_le_bytes()));
        w.write_all(&buf)?;
    }
    Ok(())
}
