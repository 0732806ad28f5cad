//! NumPy `.npy` files: written as format 1.0, little-endian C order, for Python; read in any of the versions,
//! byte orders and memory orders numpy writes (test fixtures, precomputed embeddings).

use std::io::{Read, Write};

#[derive(Debug, thiserror::Error)]
pub enum NpyError {
    #[error("not a .npy file (bad magic or header): {0}")]
    Format(String),
    #[error("unsupported .npy array: {0}; save a float32/float64/int/uint8/bool array")]
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
    /// The type and whether it is stored big-endian.
    fn parse(descr: &str) -> Option<(Dtype, bool)> {
        let (order, kind) = descr.split_at_checked(1)?;
        let big = match order {
            "<" | "|" | "=" => false,
            ">" => true,
            _ => return None,
        };
        let dtype = match kind {
            "f4" => Dtype::F32,
            "f8" => Dtype::F64,
            "u1" => Dtype::U8,
            "b1" => Dtype::Bool,
            "i4" => Dtype::I32,
            "i8" => Dtype::I64,
            _ => return None,
        };
        Some((dtype, big))
    }

    pub fn size(self) -> usize {
        match self {
            Dtype::U8 | Dtype::Bool => 1,
            Dtype::F32 | Dtype::I32 => 4,
            Dtype::F64 | Dtype::I64 => 8,
        }
    }

    pub fn is_float(self) -> bool {
        matches!(self, Dtype::F32 | Dtype::F64)
    }
}

/// An array read from a .npy file: raw little-endian values in C (row-major) order, whatever the file held.
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
        match self.dtype {
            // Straight from the bytes: a million 768-d rows need no f64 copy.
            Dtype::F32 => self.data.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect(),
            _ => self.to_f64().into_iter().map(|v| v as f32).collect(),
        }
    }
}

/// What a .npy header says about the data that follows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    pub big_endian: bool,
    pub fortran_order: bool,
}

impl Header {
    /// Bytes of data the shape needs; an error when that overflows (a forged header).
    pub fn data_len(&self) -> Result<usize, NpyError> {
        self.shape
            .iter()
            .try_fold(self.dtype.size(), |acc, &d| acc.checked_mul(d))
            .ok_or_else(|| NpyError::Format(format!("shape {:?} overflows", self.shape)))
    }
}

/// Reads the magic, version and header of a .npy stream, leaving the reader at the first byte of data.
/// Returns the header and its length in bytes (magic included).
pub fn read_header(r: &mut impl Read) -> Result<(Header, usize), NpyError> {
    let truncated = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => NpyError::Format("truncated header".into()),
        _ => NpyError::Io(e),
    };
    let mut pre = [0u8; 10];
    r.read_exact(&mut pre).map_err(truncated)?;
    if &pre[..6] != b"\x93NUMPY" {
        return Err(NpyError::Format("missing \\x93NUMPY magic".into()));
    }
    let (header_len, prefix) = match pre[6] {
        1 => (u16::from_le_bytes([pre[8], pre[9]]) as usize, 10),
        2 | 3 => {
            let mut rest = [0u8; 2];
            r.read_exact(&mut rest).map_err(truncated)?;
            (u32::from_le_bytes([pre[8], pre[9], rest[0], rest[1]]) as usize, 12)
        }
        v => return Err(NpyError::Format(format!("format version {v}"))),
    };
    let mut text = Vec::new();
    r.take(header_len as u64).read_to_end(&mut text)?;
    if text.len() < header_len {
        return Err(NpyError::Format("truncated header".into()));
    }
    Ok((parse_header(&String::from_utf8_lossy(&text))?, prefix + header_len))
}

fn parse_header(header: &str) -> Result<Header, NpyError> {
    let field = |key: &str| -> Option<String> {
        let at = header.find(&format!("'{key}'"))? + key.len() + 2;
        let rest = header[at..].trim_start().strip_prefix(':')?.trim_start();
        if let Some(body) = rest.strip_prefix('(') {
            Some(body[..body.find(')')?].to_string())
        } else {
            let end = rest.find([',', '}']).unwrap_or(rest.len());
            Some(rest[..end].trim().trim_matches(['\'', '"']).to_string())
        }
    };
    let descr = field("descr").ok_or_else(|| NpyError::Format(format!("no descr in header {header}")))?;
    let (dtype, big_endian) = Dtype::parse(&descr).ok_or_else(|| NpyError::Unsupported(format!("dtype {descr}")))?;
    let fortran_order = match field("fortran_order").as_deref() {
        Some("False") => false,
        Some("True") => true,
        _ => return Err(NpyError::Format(format!("no fortran_order in header {header}"))),
    };
    let shape_s = field("shape").ok_or_else(|| NpyError::Format(format!("no shape in header {header}")))?;
    let shape = shape_s
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>().map_err(|_| NpyError::Format(format!("bad shape ({shape_s})"))))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Header { dtype, shape, big_endian, fortran_order })
}

/// Reads a whole .npy stream.
pub fn read(mut r: impl Read) -> Result<NpyArray, NpyError> {
    let mut bytes = Vec::new();
    r.read_to_end(&mut bytes)?;
    parse(bytes)
}

/// Parses a whole .npy file's bytes. The data length is checked against the header before anything is
/// allocated, so a forged shape cannot ask for more memory than the file holds.
pub fn parse(mut bytes: Vec<u8>) -> Result<NpyArray, NpyError> {
    let (header, data_start) = read_header(&mut &bytes[..])?;
    let need = header.data_len()?;
    let have = bytes.len() - data_start;
    if have < need {
        return Err(NpyError::Format(format!("holds {have} bytes of data, shape {:?} needs {need}", header.shape)));
    }
    let size = header.dtype.size();
    bytes.truncate(data_start + need);
    let mut data = bytes.split_off(data_start);
    if header.big_endian {
        data.chunks_exact_mut(size).for_each(<[u8]>::reverse);
    }
    if header.fortran_order && header.shape.len() > 1 {
        data = fortran_to_c(&data, &header.shape, size);
    }
    Ok(NpyArray { dtype: header.dtype, shape: header.shape, data })
}

/// Converts one element of `dtype` (stored with the given byte order) to f32.
pub fn element_f32(dtype: Dtype, big_endian: bool, bytes: &[u8]) -> f32 {
    let mut b = [0u8; 8];
    let n = dtype.size();
    b[..n].copy_from_slice(&bytes[..n]);
    if big_endian {
        b[..n].reverse();
    }
    match dtype {
        Dtype::F32 => f32::from_le_bytes(b[..4].try_into().unwrap()),
        Dtype::F64 => f64::from_le_bytes(b) as f32,
        Dtype::U8 | Dtype::Bool => f32::from(b[0]),
        Dtype::I32 => i32::from_le_bytes(b[..4].try_into().unwrap()) as f32,
        Dtype::I64 => i64::from_le_bytes(b) as f32,
    }
}

/// Reorders column-major elements of `size` bytes into row-major order.
fn fortran_to_c(data: &[u8], shape: &[usize], size: usize) -> Vec<u8> {
    let n: usize = shape.iter().product();
    let mut out = vec![0u8; data.len()];
    let mut index = vec![0usize; shape.len()];
    for c_pos in 0..n {
        // Fortran offset of the element at row-major position c_pos: first axis varies fastest.
        let (mut f_pos, mut stride) = (0, 1);
        for (i, &d) in index.iter().zip(shape) {
            f_pos += i * stride;
            stride *= d;
        }
        out[c_pos * size..(c_pos + 1) * size].copy_from_slice(&data[f_pos * size..(f_pos + 1) * size]);
        for axis in (0..shape.len()).rev() {
            index[axis] += 1;
            if index[axis] < shape[axis] {
                break;
            }
            index[axis] = 0;
        }
    }
    out
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
