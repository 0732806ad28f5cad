//! IDX files (MNIST, Fashion-MNIST, EMNIST...), plain or gzip-compressed. An images file (magic 0x0803,
//! N x rows x cols unsigned bytes) is paired with its labels file (magic 0x0801, N bytes) by name, whether
//! SOURCE is the directory or the images file.

use std::io::{BufRead, Read};
use std::path::{Path, PathBuf};

use super::{Fingerprint, Format, Payload, Record, RecordIter, Result, Source, SourceError, SourceInfo, list_dir};

const FASHION_MNIST: [&str; 10] =
    ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"];

pub struct IdxSource {
    info: SourceInfo,
    images_path: PathBuf,
    width: u32,
    height: u32,
    channels: u8,
    /// Pixel bytes after the header: record i is `pixels[i*stride..(i+1)*stride]`.
    pixels: Vec<u8>,
    labels: Option<Vec<u8>>,
}

/// True when the file name reads like an IDX file (`train-images-idx3-ubyte`, `t10k-labels.idx1-ubyte.gz`).
pub fn looks_like_idx(path: &Path) -> bool {
    let name = path.file_name().map(|n| n.to_string_lossy().to_lowercase()).unwrap_or_default();
    let name = name.strip_suffix(".gz").unwrap_or(&name);
    path.is_file() && (name.contains("idx1") || name.contains("idx3") || name.ends_with("ubyte"))
}

fn is_images_name(name: &str) -> bool {
    name.contains("idx3") || (name.contains("images") && !name.contains("idx1"))
}

/// Most data bytes an IDX file may hold (EMNIST ByClass, the biggest of the family, has 0.64 GB).
const MAX_IDX_DATA: usize = 8 << 30;
/// Deflate expands by at most about 1032:1: a gzip file of n bytes cannot hold more than this many times n.
const MAX_GZIP_RATIO: u64 = 1032;

/// Reads an IDX file (decompressing `.gz`): its dimensions and exactly the data bytes they call for. The header
/// is checked against what the file can hold before anything big is allocated, and the decompressor is bounded
/// by it: a gzip bomb or a header that lies cannot make torchlight decompress or allocate more than it claims,
/// nor more than `MAX_IDX_DATA`.
fn read_idx(path: &Path) -> Result<(Vec<usize>, Vec<u8>)> {
    let invalid = |why: String| SourceError::Invalid { path: path.to_path_buf(), format: Format::Idx, why };
    let io = |what: &str| SourceError::io(format!("{what} {}", path.display()));
    let (file, meta) = super::open_regular(path).map_err(io("opening"))?;
    let mut file = std::io::BufReader::new(file);
    let gzip = file.fill_buf().map_err(io("reading"))?.starts_with(&[0x1f, 0x8b]);
    let mut reader: Box<dyn Read> =
        if gzip { Box::new(flate2::bufread::MultiGzDecoder::new(file)) } else { Box::new(file) };
    let what = if gzip { "decompressing" } else { "reading" };

    let mut magic = [0u8; 4];
    let got = read_up_to(&mut reader, &mut magic).map_err(io(what))?;
    if got < 4 || magic[0] != 0 || magic[1] != 0 {
        return Err(invalid("no IDX magic number (expected 00 00 08 0N)".into()));
    }
    if magic[2] != 0x08 {
        return Err(invalid(format!("element type 0x{:02x}, only unsigned bytes (0x08) are images", magic[2])));
    }
    let ndims = magic[3] as usize;
    let mut header = vec![0u8; 4 * ndims];
    if read_up_to(&mut reader, &mut header).map_err(io(what))? < header.len() {
        return Err(invalid("truncated header".into()));
    }
    let dims: Vec<usize> = header.chunks_exact(4).map(|c| u32::from_be_bytes(c.try_into().unwrap()) as usize).collect();
    let need =
        dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).filter(|&n| n <= MAX_IDX_DATA).ok_or_else(|| {
            invalid(format!("header {dims:?} claims more than the {} GiB torchlight reads", MAX_IDX_DATA >> 30))
        })?;
    let header_len = 4 + header.len() as u64;
    if gzip {
        let most = meta.len().saturating_mul(MAX_GZIP_RATIO);
        if need as u64 > most {
            return Err(invalid(format!(
                "header {dims:?} claims {need} data bytes, more than a {}-byte gzip file can hold",
                meta.len()
            )));
        }
    } else if need as u64 > meta.len().saturating_sub(header_len) {
        let held = meta.len().saturating_sub(header_len);
        return Err(invalid(format!("holds {held} data bytes, its header {dims:?} says {need}")));
    }
    // Grown as the bytes arrive: a claim that the stream does not back up costs nothing.
    let mut data = Vec::with_capacity(need.min(64 << 20));
    reader.take(need as u64).read_to_end(&mut data).map_err(io(what))?;
    if data.len() < need {
        return Err(invalid(format!("holds {} data bytes, its header {dims:?} says {need}", data.len())));
    }
    Ok((dims, data))
}

/// Reads until `buf` is full or the stream ends; the number of bytes read.
fn read_up_to(reader: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(k) => filled += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

impl IdxSource {
    /// `path`: a directory holding IDX files (the `split` one chosen: train or t10k/test), or an images file.
    pub fn open(path: &Path, split: Option<&str>) -> Result<IdxSource> {
        let path = path.canonicalize().map_err(SourceError::io(format!("opening {}", path.display())))?;
        let (images_path, labels_path) = if path.is_dir() { pick_in_dir(&path, split)? } else { pair_file(&path) };
        let (dims, pixels) = read_idx(&images_path)?;
        let (n, height, width, channels) = match dims[..] {
            [n, h, w] => (n, h, w, 1),
            [n, h, w, c @ (1 | 3)] => (n, h, w, c),
            _ => {
                return Err(SourceError::Invalid {
                    path: images_path,
                    format: Format::Idx,
                    why: format!("dimensions {dims:?} are not images (N x rows x cols [x 1|3])"),
                });
            }
        };
        let labels = match &labels_path {
            Some(lp) => {
                let (ldims, lb) = read_idx(lp)?;
                if ldims.len() != 1 || ldims[0] != n {
                    return Err(SourceError::Invalid {
                        path: lp.clone(),
                        format: Format::Idx,
                        why: format!("labels file has dimensions {ldims:?}, the images file {n} images"),
                    });
                }
                Some(lb)
            }
            None => None,
        };
        let mut fp = Fingerprint::new(Format::Idx);
        for p in std::iter::once(&images_path).chain(labels_path.as_ref()) {
            fp.add_file(&p.file_name().unwrap().to_string_lossy(), p)?;
        }
        let label_names = match &labels {
            Some(l) if l.iter().all(|&x| x < 10) => {
                let fashion = images_path.to_string_lossy().to_lowercase().contains("fashion");
                (0..10).map(|i| if fashion { FASHION_MNIST[i].to_string() } else { i.to_string() }).collect()
            }
            _ => Vec::new(),
        };
        let info = SourceInfo { format: Format::Idx, len: n, label_names, fingerprint: fp.finish() };
        Ok(IdxSource {
            info,
            images_path,
            width: width as u32,
            height: height as u32,
            channels: channels as u8,
            pixels,
            labels,
        })
    }
}

/// The labels file beside an images file: `...images-idx3-ubyte[.gz]` -> `...labels-idx1-ubyte[.gz]`.
fn pair_file(images: &Path) -> (PathBuf, Option<PathBuf>) {
    let name = images.file_name().unwrap().to_string_lossy().into_owned();
    let candidates = [
        name.replace("images-idx3", "labels-idx1"),
        name.replace("images.idx3", "labels.idx1"),
        name.replace("idx3", "idx1").replace("images", "labels"),
    ];
    let labels = candidates.iter().filter(|c| **c != name).map(|c| images.with_file_name(c)).find(|p| p.is_file());
    let labels = labels.or_else(|| {
        // The other compression of the same name.
        let alt = |c: &str| match c.strip_suffix(".gz") {
            Some(plain) => plain.to_string(),
            None => format!("{c}.gz"),
        };
        candidates.iter().map(|c| images.with_file_name(alt(c))).find(|p| p.is_file() && *p != images)
    });
    (images.to_path_buf(), labels)
}

fn pick_in_dir(dir: &Path, split: Option<&str>) -> Result<(PathBuf, Option<PathBuf>)> {
    let images: Vec<PathBuf> = list_dir(dir)?
        .into_iter()
        .filter(|p| looks_like_idx(p) && is_images_name(&p.file_name().unwrap().to_string_lossy().to_lowercase()))
        .collect();
    let prefixes: &[&str] = match split {
        Some("test") | Some("t10k") => &["t10k", "test"],
        Some(s) => &[if s == "train" { "train" } else { s }],
        None => &["train"],
    };
    let chosen = if images.len() == 1 {
        images[0].clone()
    } else {
        images
            .iter()
            .find(|p| {
                let n = p.file_name().unwrap().to_string_lossy().to_lowercase();
                prefixes.iter().any(|pre| n.starts_with(pre))
            })
            .cloned()
            .ok_or_else(|| SourceError::Invalid {
                path: dir.to_path_buf(),
                format: Format::Idx,
                why: format!(
                    "no images file for split {} among {} (use --split, or point at the images file)",
                    split.unwrap_or("train"),
                    images.iter().map(|p| p.file_name().unwrap().to_string_lossy()).collect::<Vec<_>>().join(", ")
                ),
            })?
    };
    Ok(pair_file(&chosen))
}

impl Source for IdxSource {
    fn info(&self) -> &SourceInfo {
        &self.info
    }

    fn records(&self, start: usize) -> Result<RecordIter<'_>> {
        // In usize: width * height of a (0-image) header can overflow u32 (found by fuzz/source_idx).
        let stride = self.width as usize * self.height as usize * self.channels as usize;
        let base = self.images_path.to_string_lossy().into_owned();
        Ok(Box::new((start..self.info.len).map(move |i| {
            Ok(Record {
                source: format!("{base}#{i}"),
                label: self.labels.as_ref().map(|l| u32::from(l[i])),
                payload: Payload::Raw {
                    width: self.width,
                    height: self.height,
                    channels: self.channels,
                    pixels: self.pixels[i * stride..(i + 1) * stride].to_vec(),
                },
            })
        })))
    }
}
