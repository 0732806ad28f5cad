//! CIFAR-10 and CIFAR-100, binary version. CIFAR-10: `data_batch_{1..5}.bin` (train) and `test_batch.bin`,
//! records of 1 label byte + 3072 pixel bytes (R, G, B planes of 32x32), names in `batches.meta.txt`.
//! CIFAR-100: `train.bin` / `test.bin`, records of a coarse and a fine label byte + 3072 pixel bytes, names in
//! `coarse_label_names.txt` / `fine_label_names.txt`; the fine label is used unless `--label-column coarse`.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::{
    Fingerprint, Format, OpenOptions, Payload, Record, RecordIter, Result, Source, SourceError, SourceInfo, list_dir,
};

const SIDE: u32 = 32;
const PIXELS: usize = 3 * 32 * 32;

pub struct CifarSource {
    info: SourceInfo,
    /// Batch files and their record counts, in order.
    files: Vec<(PathBuf, usize)>,
    /// 1 (CIFAR-10) or 2 (CIFAR-100) label bytes per record.
    label_bytes: usize,
    /// Which label byte is the label.
    label_index: usize,
}

/// `data_batch_3.bin`, `test_batch.bin`, `train.bin`, `test.bin`.
pub fn is_cifar_batch_name(name: &str) -> bool {
    (name.starts_with("data_batch_") || name == "test_batch.bin" || name == "train.bin" || name == "test.bin")
        && name.ends_with(".bin")
}

fn batch_number(p: &Path) -> u32 {
    let name = p.file_name().unwrap().to_string_lossy();
    name.trim_start_matches("data_batch_").trim_end_matches(".bin").parse().unwrap_or(u32::MAX)
}

fn read_names(path: &Path) -> Vec<String> {
    let mut text = String::new();
    super::open_regular(path)
        .and_then(|(f, _)| f.take(1 << 20).read_to_string(&mut text))
        .map(|_| text.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect())
        .unwrap_or_default()
}

impl CifarSource {
    pub fn open(path: &Path, opts: &OpenOptions) -> Result<CifarSource> {
        let path = path.canonicalize().map_err(SourceError::io(format!("opening {}", path.display())))?;
        let invalid = |why: String| SourceError::Invalid { path: path.clone(), format: Format::Cifar, why };
        let split = opts.split.as_deref().unwrap_or("train");
        let (dir, mut files) = if path.is_dir() {
            let names: Vec<PathBuf> = list_dir(&path)?;
            let name = |p: &PathBuf| p.file_name().unwrap().to_string_lossy().into_owned();
            let files: Vec<PathBuf> = match split {
                "train" => {
                    let mut batches: Vec<PathBuf> = names
                        .iter()
                        .filter(|p| name(p).starts_with("data_batch_") && name(p).ends_with(".bin"))
                        .cloned()
                        .collect();
                    batches.sort_by_key(|p| batch_number(p));
                    if batches.is_empty() {
                        names.iter().filter(|p| name(p) == "train.bin").cloned().collect()
                    } else {
                        batches
                    }
                }
                "test" => {
                    names.iter().filter(|p| name(p) == "test_batch.bin" || name(p) == "test.bin").cloned().collect()
                }
                other => return Err(invalid(format!("split {other} unknown: CIFAR has train and test"))),
            };
            if files.is_empty() {
                return Err(invalid(format!(
                    "no {split} batch files (data_batch_N.bin / test_batch.bin, or train.bin / test.bin)"
                )));
            }
            (path.clone(), files)
        } else {
            (path.parent().unwrap().to_path_buf(), vec![path.clone()])
        };
        let cifar100 = dir.join("fine_label_names.txt").is_file()
            || files.iter().any(|p| matches!(p.file_name().unwrap().to_str(), Some("train.bin" | "test.bin")));
        let label_bytes = if cifar100 { 2 } else { 1 };
        let record = label_bytes + PIXELS;
        let label_index = match (cifar100, opts.label_column.as_deref()) {
            (true, None | Some("fine") | Some("fine_label")) => 1,
            (true, Some("coarse") | Some("coarse_label")) => 0,
            (false, None | Some("label")) => 0,
            (_, Some(other)) => {
                return Err(invalid(format!(
                    "label column {other} unknown: CIFAR-100 has fine and coarse, CIFAR-10 has label"
                )));
            }
        };
        let mut fp = Fingerprint::new(Format::Cifar);
        fp.add_u64(label_index as u64);
        let mut counted = Vec::new();
        for f in files.drain(..) {
            let len =
                super::open_regular(&f).map_err(SourceError::io(format!("opening {}", f.display())))?.1.len() as usize;
            if !len.is_multiple_of(record) {
                return Err(SourceError::Invalid {
                    path: f,
                    format: Format::Cifar,
                    why: format!("{len} bytes is not a whole number of {record}-byte records"),
                });
            }
            fp.add_file(&f.file_name().unwrap().to_string_lossy(), &f)?;
            counted.push((f, len / record));
        }
        let label_names = if cifar100 {
            read_names(&dir.join(if label_index == 1 { "fine_label_names.txt" } else { "coarse_label_names.txt" }))
        } else {
            read_names(&dir.join("batches.meta.txt"))
        };
        let len = counted.iter().map(|(_, n)| n).sum();
        let info = SourceInfo { format: Format::Cifar, len, label_names, fingerprint: fp.finish() };
        Ok(CifarSource { info, files: counted, label_bytes, label_index })
    }
}

impl Source for CifarSource {
    fn info(&self) -> &SourceInfo {
        &self.info
    }

    fn records(&self, start: usize) -> Result<RecordIter<'_>> {
        let record = self.label_bytes + PIXELS;
        let mut skip = start;
        let mut iters: Vec<RecordIter<'_>> = Vec::new();
        for (path, count) in &self.files {
            if skip >= *count {
                skip -= count;
                continue;
            }
            let first = skip;
            skip = 0;
            let (path, count) = (path.clone(), *count);
            let mut reader: Option<BufReader<File>> = None;
            let base = path.to_string_lossy().into_owned();
            iters.push(Box::new((first..count).map(move |i| {
                if reader.is_none() {
                    let (mut f, _) =
                        super::open_regular(&path).map_err(SourceError::io(format!("opening {}", path.display())))?;
                    f.seek(SeekFrom::Start((i * record) as u64))
                        .map_err(SourceError::io(format!("reading {}", path.display())))?;
                    reader = Some(BufReader::with_capacity(1 << 20, f));
                }
                let mut buf = vec![0u8; record];
                reader
                    .as_mut()
                    .unwrap()
                    .read_exact(&mut buf)
                    .map_err(SourceError::io(format!("reading record {i} of {}", path.display())))?;
                let planes = &buf[self.label_bytes..];
                let plane = (SIDE * SIDE) as usize;
                let mut pixels = Vec::with_capacity(PIXELS);
                for p in 0..plane {
                    pixels.extend_from_slice(&[planes[p], planes[plane + p], planes[2 * plane + p]]);
                }
                Ok(Record {
                    source: format!("{base}#{i}"),
                    label: Some(u32::from(buf[self.label_index])),
                    payload: Payload::Raw { width: SIDE, height: SIDE, channels: 3, pixels },
                })
            })));
        }
        Ok(Box::new(iters.into_iter().flatten()))
    }
}
