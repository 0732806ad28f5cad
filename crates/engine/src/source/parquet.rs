//! Parquet files as the Hugging Face hub stores image datasets: an image column that is a struct
//! {bytes, path} (or plain binary), an integer label column, and class names in the file's `huggingface`
//! key-value metadata (`info.features.<column>.names` of a ClassLabel). A directory means all its parquet
//! files (recursively, sorted), narrowed to `--split` when file names carry split names.
//!
//! Read with the parquet crate's record API (no arrow: much less to compile); only the image and label
//! columns are projected, and reading from a position opens only the row groups from there on.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use ::parquet::file::reader::{ChunkReader, FileReader, Length, SerializedFileReader};
use ::parquet::file::serialized_reader::ReadOptionsBuilder;
use ::parquet::record::{Field, Row, reader::RowIter};
use ::parquet::schema::types::Type;

use super::{Fingerprint, Format, OpenOptions, Payload, Record, RecordIter, Result, Source, SourceError, SourceInfo};

/// One parquet file of the dataset and where its rows start.
struct Part {
    path: PathBuf,
    /// Rows in each row group.
    group_rows: Vec<usize>,
    rows: usize,
}

pub struct ParquetSource {
    info: SourceInfo,
    parts: Vec<Part>,
    image_column: String,
    label_column: Option<String>,
    projection: Type,
}

fn perr(path: &Path) -> impl FnOnce(::parquet::errors::ParquetError) -> SourceError + '_ {
    move |source| SourceError::Parquet { path: path.to_path_buf(), source }
}

/// The parquet crate panics (asserts, `expect`s) on some corrupt files instead of returning an error. At this
/// boundary such a panic becomes an error naming the file, so a corrupt file fails its own read, not the process.
pub(super) fn guard<T>(path: &Path, f: impl FnOnce() -> Result<T>) -> Result<T> {
    torchlight_cli::errors::contained(f).unwrap_or_else(|what| {
        Err(SourceError::Invalid {
            path: path.to_path_buf(),
            format: Format::Parquet,
            why: format!("the parquet reader failed on it ({what}): the file is corrupt"),
        })
    })
}

/// Files up to this size are read into memory when opened.
const IN_MEMORY: u64 = 64 << 20;

/// A parquet file, read from memory when small. The parquet crate reads every page header through a fresh
/// reader, so from a `File` each header costs a read syscall, and a small corrupt file can claim millions of
/// headers. From memory that is plain parsing.
pub(super) enum Input {
    Memory(bytes::Bytes),
    File(File),
}

impl Length for Input {
    fn len(&self) -> u64 {
        match self {
            Input::Memory(b) => b.len() as u64,
            Input::File(f) => f.len(),
        }
    }
}

impl ChunkReader for Input {
    type T = Box<dyn Read + Send>;

    fn get_read(&self, start: u64) -> ::parquet::errors::Result<Self::T> {
        Ok(match self {
            Input::Memory(b) => Box::new(b.get_read(start)?),
            Input::File(f) => Box::new(f.get_read(start)?),
        })
    }

    fn get_bytes(&self, start: u64, length: usize) -> ::parquet::errors::Result<bytes::Bytes> {
        match self {
            Input::Memory(b) => b.get_bytes(start, length),
            Input::File(f) => f.get_bytes(start, length),
        }
    }
}

/// The file, in memory when small. `metadata_only` (opening a dataset reads the other files' footers alone)
/// keeps it a `File`, so opening many shards does not read them all; the first file is read in full, as its
/// dictionary pages are checked at open, and reading those pages hit the slow case.
fn open_input(path: &Path, metadata_only: bool) -> Result<Input> {
    let io = |what: &str| SourceError::io(format!("{what} {}", path.display()));
    let (mut file, meta) = super::open_regular(path).map_err(io("opening"))?;
    if metadata_only || meta.len() > IN_MEMORY {
        return Ok(Input::File(file));
    }
    let mut buf = Vec::with_capacity(meta.len() as usize);
    file.read_to_end(&mut buf).map_err(io("reading"))?;
    Ok(Input::Memory(buf.into()))
}

pub(super) fn open_reader(path: &Path, metadata_only: bool) -> Result<SerializedFileReader<Input>> {
    guard(path, || open_reader_unguarded(path, metadata_only))
}

fn open_reader_unguarded(path: &Path, metadata_only: bool) -> Result<SerializedFileReader<Input>> {
    let reader = SerializedFileReader::new(open_input(path, metadata_only)?).map_err(perr(path))?;
    // The parquet crate asserts (panics) on a negative column chunk offset or size when it reads rows; a corrupt
    // file must be refused here instead (found by fuzz/source_parquet).
    for rg in reader.metadata().row_groups() {
        for c in rg.columns() {
            let start = c.dictionary_page_offset().unwrap_or(c.data_page_offset());
            if start < 0 || c.compressed_size() < 0 {
                return Err(SourceError::Invalid {
                    path: path.to_path_buf(),
                    format: Format::Parquet,
                    why: format!("column {} has a negative offset or size: the file is corrupt", c.column_path()),
                });
            }
        }
    }
    Ok(reader)
}

/// The parquet crate sizes a dictionary from its page header's value count before decoding it, so a corrupt count
/// can ask for gigabytes and abort the process. A plain dictionary's values each take at
/// least a known number of bytes, so the count is checked against the page's actual (decompressed) bytes first.
/// Only the columns under `top_level` are checked: the projected image and label columns, nothing else is decoded.
pub(super) fn check_dictionaries<R: ChunkReader + 'static>(
    reader: &SerializedFileReader<R>,
    path: &Path,
    top_level: &[&str],
) -> Result<()> {
    use ::parquet::basic::Type as Physical;
    use ::parquet::column::page::Page;
    for (g, rg) in reader.metadata().row_groups().iter().enumerate() {
        for (c, chunk) in rg.columns().iter().enumerate() {
            let projected = chunk.column_path().parts().first().is_some_and(|p| top_level.contains(&p.as_str()));
            if !projected || chunk.dictionary_page_offset().is_none() {
                continue;
            }
            let row_group = reader.get_row_group(g).map_err(perr(path))?;
            let mut pages = row_group.get_column_page_reader(c).map_err(perr(path))?;
            let Some(Page::DictionaryPage { buf, num_values, .. }) = pages.get_next_page().map_err(perr(path))? else {
                continue;
            };
            // Bits per value at the least: booleans are bit-packed, byte arrays carry a 4-byte length.
            let min_bits: u64 = match chunk.column_type() {
                Physical::BOOLEAN => 1,
                Physical::INT32 | Physical::FLOAT | Physical::BYTE_ARRAY => 32,
                Physical::INT64 | Physical::DOUBLE => 64,
                Physical::INT96 => 96,
                Physical::FIXED_LEN_BYTE_ARRAY => 8,
            };
            if (num_values as u64).saturating_mul(min_bits) > (buf.len() as u64).saturating_mul(8) {
                return Err(SourceError::Invalid {
                    path: path.to_path_buf(),
                    format: Format::Parquet,
                    why: format!(
                        "column {}: its dictionary claims {num_values} values in {} bytes: the file is corrupt",
                        chunk.column_path(),
                        buf.len()
                    ),
                });
            }
        }
    }
    Ok(())
}

/// Parquet files below `dir`, sorted by path.
fn collect_parquet(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for p in super::list_dir(dir)? {
        if p.is_dir() {
            collect_parquet(&p, out)?;
        } else if p.extension().is_some_and(|e| e == "parquet") {
            out.push(p);
        }
    }
    Ok(())
}

const SPLIT_NAMES: [&str; 6] = ["train", "test", "validation", "valid", "val", "dev"];

/// Whether a dataset-relative path (`data/train-00000-of-00002.parquet`, `default/test/0000.parquet`,
/// `plain_text/cifar10-train.parquet`) belongs to `split`.
pub fn path_has_split(rel: &str, split: &str) -> bool {
    let lower = rel.to_lowercase();
    let mut parts = lower.split('/').collect::<Vec<_>>();
    let file = parts.pop().unwrap_or("");
    let stem = file.strip_suffix(".parquet").unwrap_or(file);
    parts.contains(&split)
        || stem == split
        || stem.starts_with(&format!("{split}-"))
        || stem.starts_with(&format!("{split}_"))
        || stem.ends_with(&format!("-{split}"))
        || stem.contains(&format!("-{split}-"))
}

/// Files of `split` among `rels` when any file name carries a split name; all of them when none does.
pub fn select_split<'a>(rels: &[&'a str], split: &str) -> Vec<&'a str> {
    let any_split = rels.iter().any(|r| SPLIT_NAMES.iter().any(|s| path_has_split(r, s)));
    if !any_split {
        return rels.to_vec();
    }
    rels.iter().copied().filter(|r| path_has_split(r, split)).collect()
}

/// Class names of `column` from the `huggingface` metadata JSON (datasets' Features of a ClassLabel).
pub fn hf_class_names(meta: &serde_json::Value, column: &str) -> Vec<String> {
    let feature = meta.pointer("/info/features").and_then(|f| f.get(column));
    feature
        .and_then(|f| f.get("names"))
        .and_then(|n| n.as_array())
        .map(|names| names.iter().filter_map(|n| n.as_str().map(String::from)).collect())
        .unwrap_or_default()
}

/// Columns of a given datasets feature `_type` (Image, ClassLabel), in schema order.
fn hf_columns_of_type(meta: &serde_json::Value, ty: &str) -> Vec<String> {
    match meta.pointer("/info/features").and_then(|f| f.as_object()) {
        Some(features) => features
            .iter()
            .filter(|(_, f)| f.get("_type").and_then(|t| t.as_str()) == Some(ty))
            .map(|(name, _)| name.clone())
            .collect(),
        None => Vec::new(),
    }
}

impl ParquetSource {
    pub fn open(path: &Path, opts: &OpenOptions) -> Result<ParquetSource> {
        let path = path.canonicalize().map_err(SourceError::io(format!("opening {}", path.display())))?;
        let files = if path.is_dir() {
            let mut all = Vec::new();
            collect_parquet(&path, &mut all)?;
            let rels: Vec<String> = all.iter().map(|p| super::relative_name(&path, p)).collect();
            let rel_refs: Vec<&str> = rels.iter().map(String::as_str).collect();
            let split = opts.split.as_deref().unwrap_or("train");
            let chosen = select_split(&rel_refs, split);
            if chosen.is_empty() {
                return Err(SourceError::Invalid {
                    path,
                    format: Format::Parquet,
                    why: format!("no parquet files of split {split} (found: {}); use --split", rels.join(", ")),
                });
            }
            chosen.into_iter().map(|r| path.join(r)).collect()
        } else {
            vec![path.clone()]
        };
        ParquetSource::from_files(&path, files, opts)
    }

    /// A source over `files` (in this order); `root` names the dataset in messages and fingerprints.
    pub fn from_files(root: &Path, files: Vec<PathBuf>, opts: &OpenOptions) -> Result<ParquetSource> {
        let first = files.first().ok_or_else(|| SourceError::Invalid {
            path: root.to_path_buf(),
            format: Format::Parquet,
            why: "no parquet files".into(),
        })?;
        let reader = open_reader(first, false)?;
        let file_meta = reader.metadata().file_metadata();
        let hf_meta: serde_json::Value = file_meta
            .key_value_metadata()
            .and_then(|kv| kv.iter().find(|k| k.key == "huggingface"))
            .and_then(|k| k.value.as_deref())
            .and_then(|v| serde_json::from_str(v).ok())
            .unwrap_or(serde_json::Value::Null);
        let root_schema = file_meta.schema_descr().root_schema();
        let fields = root_schema.get_fields();
        let names: Vec<&str> = fields.iter().map(|f| f.name()).collect();
        let invalid = |why: String| SourceError::Invalid { path: first.clone(), format: Format::Parquet, why };
        let find = |name: &str| fields.iter().find(|f| f.name() == name).cloned();

        let image_field = match &opts.image_column {
            Some(c) => find(c).ok_or_else(|| invalid(format!("no image column {c}; columns: {}", names.join(", "))))?,
            None => hf_columns_of_type(&hf_meta, "Image")
                .iter()
                .find_map(|c| find(c))
                .or_else(|| {
                    // A struct with a `bytes` member, as datasets writes images.
                    fields.iter().find(|f| f.is_group() && f.get_fields().iter().any(|c| c.name() == "bytes")).cloned()
                })
                .or_else(|| ["image", "img"].iter().find_map(|c| find(c)))
                .ok_or_else(|| {
                    invalid(format!("no image column found (columns: {}); use --image-column", names.join(", ")))
                })?,
        };
        let label_field = match &opts.label_column {
            Some(c) => {
                Some(find(c).ok_or_else(|| invalid(format!("no label column {c}; columns: {}", names.join(", "))))?)
            }
            None => hf_columns_of_type(&hf_meta, "ClassLabel")
                .iter()
                .find_map(|c| find(c))
                .or_else(|| ["label", "labels", "fine_label"].iter().find_map(|c| find(c))),
        };
        let mut projected = vec![image_field.clone()];
        projected.extend(label_field.clone());
        let projection =
            Type::group_type_builder(root_schema.name()).with_fields(projected).build().map_err(perr(first))?;
        let image_column = image_field.name().to_string();
        let label_column = label_field.as_ref().map(|f| f.name().to_string());
        let label_names = label_column.as_deref().map(|c| hf_class_names(&hf_meta, c)).unwrap_or_default();
        // Here for the first file, so a corrupt dictionary fails the open; `records` checks every file it reads.
        let top_level: Vec<&str> = std::iter::once(image_column.as_str()).chain(label_column.as_deref()).collect();
        guard(first, || check_dictionaries(&reader, first, &top_level))?;

        let mut fp = Fingerprint::new(Format::Parquet);
        fp.add_str(&image_column);
        fp.add_str(label_column.as_deref().unwrap_or(""));
        let mut parts = Vec::new();
        for f in &files {
            let group_rows: Vec<usize> = if f == first {
                reader.metadata().row_groups().iter().map(|g| g.num_rows() as usize).collect()
            } else {
                open_reader(f, true)?.metadata().row_groups().iter().map(|g| g.num_rows() as usize).collect()
            };
            let rows = group_rows.iter().sum();
            // The footer of a parquet file (its last 64 KiB) changes with any content; the name keeps order.
            fp.add_str(&f.file_name().unwrap().to_string_lossy());
            fp.add_u64(rows as u64);
            fp.add_file_tail(f)?;
            parts.push(Part { path: f.clone(), group_rows, rows });
        }
        let len = parts.iter().map(|p| p.rows).sum();
        let info = SourceInfo { format: Format::Parquet, len, label_names, fingerprint: fp.finish() };
        Ok(ParquetSource { info, parts, image_column, label_column, projection })
    }
}

fn field_label(field: &Field) -> Option<u32> {
    let v: i64 = match field {
        Field::Byte(v) => i64::from(*v),
        Field::Short(v) => i64::from(*v),
        Field::Int(v) => i64::from(*v),
        Field::Long(v) => *v,
        Field::UByte(v) => i64::from(*v),
        Field::UShort(v) => i64::from(*v),
        Field::UInt(v) => i64::from(*v),
        Field::ULong(v) => i64::try_from(*v).ok()?,
        _ => return None,
    };
    // datasets writes -1 for "no label" (e.g. unlabelled test splits).
    u32::try_from(v).ok()
}

fn field_payload(field: &Field, dir: &Path) -> Payload {
    match field {
        Field::Bytes(b) => Payload::Encoded(b.data().to_vec()),
        Field::Group(row) => {
            let get = |name: &str| row.get_column_iter().find(|(n, _)| n.as_str() == name).map(|(_, f)| f);
            match (get("bytes"), get("path")) {
                (Some(Field::Bytes(b)), _) => Payload::Encoded(b.data().to_vec()),
                (_, Some(Field::Str(p))) if !p.is_empty() => {
                    let path = dir.join(p);
                    if path.is_file() {
                        Payload::File(path)
                    } else {
                        Payload::Unreadable(format!("no image bytes, and its path {p} is not a file"))
                    }
                }
                _ => Payload::Unreadable("image cell has neither bytes nor a path".into()),
            }
        }
        Field::Null => Payload::Unreadable("image cell is null".into()),
        other => Payload::Unreadable(format!("image cell is {other:?}, not bytes or {{bytes, path}}")),
    }
}

impl ParquetSource {
    fn record(&self, part: &Part, index: usize, row: Row) -> Record {
        let dir = part.path.parent().unwrap_or(Path::new("."));
        let mut payload = Payload::Unreadable(format!("no column {}", self.image_column));
        let mut label = None;
        for (name, field) in row.get_column_iter() {
            if *name == self.image_column {
                payload = field_payload(field, dir);
            } else if Some(name) == self.label_column.as_ref() {
                label = field_label(field);
            }
        }
        Record { source: format!("{}#row={index}", part.path.display()), label, payload }
    }
}

impl Source for ParquetSource {
    fn info(&self) -> &SourceInfo {
        &self.info
    }

    fn records(&self, start: usize) -> Result<RecordIter<'_>> {
        let mut skip = start;
        let mut iters: Vec<RecordIter<'_>> = Vec::new();
        for part in &self.parts {
            if skip >= part.rows {
                skip -= part.rows;
                continue;
            }
            // The row group holding row `skip`, and the rows of it to pass over.
            let mut first_group = 0;
            let mut group_start = 0;
            while group_start + part.group_rows[first_group] <= skip {
                group_start += part.group_rows[first_group];
                first_group += 1;
            }
            let (offset, first_row) = (skip - group_start, skip);
            skip = 0;
            let projection = self.projection.clone();
            let columns: Vec<String> = std::iter::once(&self.image_column).chain(&self.label_column).cloned().collect();
            let path = part.path.clone();
            let mut rows: Option<RowIter<'static>> = None;
            let mut failed = false;
            let mut index = first_row;
            iters.push(Box::new(
                std::iter::from_fn(move || {
                    if failed {
                        return None;
                    }
                    if rows.is_none() {
                        let opened = guard(&path, || -> Result<RowIter<'static>> {
                            let input = open_input(&path, false)?;
                            let options = ReadOptionsBuilder::new()
                                .with_predicate(Box::new(move |_, i| i >= first_group))
                                .build();
                            let reader = SerializedFileReader::new_with_options(input, options).map_err(perr(&path))?;
                            let top_level: Vec<&str> = columns.iter().map(String::as_str).collect();
                            check_dictionaries(&reader, &path, &top_level)?;
                            let mut it = RowIter::from_file_into(Box::new(reader))
                                .project(Some(projection.clone()))
                                .map_err(perr(&path))?;
                            for _ in 0..offset {
                                if let Some(Err(e)) = it.next() {
                                    return Err(perr(&path)(e));
                                }
                            }
                            Ok(it)
                        });
                        match opened {
                            Ok(it) => rows = Some(it),
                            Err(e) => {
                                failed = true;
                                return Some(Err(e));
                            }
                        }
                    }
                    let it = rows.as_mut().expect("opened above");
                    let row = match guard(&path, || Ok(it.next())) {
                        Ok(row) => row?,
                        Err(e) => {
                            failed = true;
                            return Some(Err(e));
                        }
                    };
                    let i = index;
                    index += 1;
                    Some(row.map(|r| (i, r)).map_err(perr(&path)))
                })
                .map(move |r| r.map(|(i, row)| self.record(part, i, row))),
            ));
        }
        Ok(Box::new(iters.into_iter().flatten()))
    }

    fn parquet_files(&self) -> Option<Vec<PathBuf>> {
        Some(self.parts.iter().map(|p| p.path.clone()).collect())
    }
}

impl Fingerprint {
    /// Adds the last 64 KiB of a file (for parquet: the footer, which describes the whole content).
    pub fn add_file_tail(&mut self, path: &Path) -> Result<()> {
        use std::io::{Read, Seek, SeekFrom};
        let (mut file, meta) =
            super::open_regular(path).map_err(SourceError::io(format!("opening {}", path.display())))?;
        let len = meta.len();
        file.seek(SeekFrom::Start(len.saturating_sub(64 << 10)))
            .map_err(SourceError::io(format!("reading {}", path.display())))?;
        let mut tail = Vec::new();
        file.read_to_end(&mut tail).map_err(SourceError::io(format!("reading {}", path.display())))?;
        self.add_u64(len);
        self.add_str(&super::content_hash(&tail).to_string());
        Ok(())
    }
}
