//! Dataset sources: one reader per format behind the `Source` trait. A source knows how many records it
//! has, their labels and class names, a stable fingerprint, and yields records in a fixed order from any
//! position (so an interrupted ingest resumes where it stopped). Reading is cheap and sequential; the
//! expensive part, decoding, happens on `Record::decode` in the ingest's worker threads.

pub mod cifar;
pub mod column;
pub mod csv;
pub mod embeddings;
pub mod folder;
pub mod hub;
pub mod idx;
pub mod parquet;

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use image::DynamicImage;
use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error(
        "{0} does not exist: give a parquet file or directory, hf:NAME, an image folder, IDX or CIFAR files, or a CSV"
    )]
    Missing(PathBuf),
    #[error("cannot tell what dataset format {path} is: {why}; pass --format")]
    Undetected { path: PathBuf, why: String },
    #[error("{path} is not a valid {format} dataset: {why}")]
    Invalid { path: PathBuf, format: Format, why: String },
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
    #[error("reading parquet {path}: {source}")]
    Parquet { path: PathBuf, source: ::parquet::errors::ParquetError },
    /// A hub dataset's files do not hold what was asked for (config, split, any parquet).
    #[error("{0}")]
    Hub(String),
    /// A hub dataset repository has no parquet files on the revision read.
    #[error("{0}")]
    HubNoParquet(String),
    #[error(transparent)]
    HubRepo(#[from] crate::hub::HubError),
}

impl SourceError {
    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> SourceError {
        let what = what.into();
        move |source| SourceError::Io { what, source }
    }
}

pub type Result<T, E = SourceError> = std::result::Result<T, E>;

/// The dataset formats torchlight reads; `name()` is what `--format` takes and what the store records.
pub use torchlight_cli::Format;

/// How to open a source: what the user typed besides the path.
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    pub format: Option<Format>,
    /// Split of a hub dataset or a CIFAR directory (train, test, ...).
    pub split: Option<String>,
    pub label_column: Option<String>,
    pub image_column: Option<String>,
    /// Open files a CSV manifest names outside its own folder (refused by default).
    pub allow_outside_paths: bool,
}

/// What a record holds before decoding.
#[derive(Debug, Clone)]
pub enum Payload {
    /// Encoded image bytes (PNG, JPEG, ...), e.g. from a parquet image column.
    Encoded(Vec<u8>),
    /// An image file, read and decoded by a worker.
    File(PathBuf),
    /// Raw 8-bit pixels, row-major, channels interleaved (IDX, CIFAR).
    Raw { width: u32, height: u32, channels: u8, pixels: Vec<u8> },
    /// The record exists but has no image (e.g. a null cell); the reason.
    Unreadable(String),
}

/// One source record: where it comes from, its label, and its image.
#[derive(Debug, Clone)]
pub struct Record {
    /// A reference to the original: a path, `file.parquet#row=12`, `data_batch_1.bin#7`, ...
    pub source: String,
    pub label: Option<u32>,
    pub payload: Payload,
}

/// A decoded record: the image and the hash of what it was decoded from.
pub struct Decoded {
    pub image: DynamicImage,
    pub hash: u64,
}

/// Why a record's image cannot be used; the message is the reason kept in the skipped list.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Unreadable {
    #[error("empty file (0 bytes)")]
    Empty,
    #[error("not an image format torchlight can decode")]
    NotAnImage,
    #[error("{format:?} decode failed: {why}")]
    Decode { format: image::ImageFormat, why: String },
    #[error("file is {} MiB, over the {} MiB limit for one image", .0 >> 20, MAX_IMAGE_FILE_BYTES >> 20)]
    TooBig(u64),
    /// A FIFO, device, directory or socket where an image file was expected.
    #[error("{0}, not a regular file: not read")]
    NotRegular(&'static str),
    #[error("cannot read file: {0}")]
    Io(String),
    #[error("{width}x{height}x{channels} raw pixels do not fit the buffer")]
    RawSize { width: u32, height: u32, channels: u8 },
    /// What the dataset reader found wrong with the record itself (a null cell, a missing column).
    #[error("{0}")]
    Record(String),
}

impl Record {
    /// Reads (for files) and decodes the image.
    pub fn decode(&self) -> Result<Decoded, Unreadable> {
        match &self.payload {
            Payload::Encoded(bytes) => decode_bytes(bytes),
            Payload::File(path) => decode_bytes(&read_image_file(path)?),
            Payload::Raw { width, height, channels, pixels } => {
                let hash = content_hash(pixels);
                let (w, h) = (*width, *height);
                let image = match channels {
                    1 => image::GrayImage::from_raw(w, h, pixels.clone()).map(DynamicImage::ImageLuma8),
                    3 => image::RgbImage::from_raw(w, h, pixels.clone()).map(DynamicImage::ImageRgb8),
                    _ => None,
                };
                let image = image.ok_or(Unreadable::RawSize { width: w, height: h, channels: *channels })?;
                Ok(Decoded { image, hash })
            }
            Payload::Unreadable(why) => Err(Unreadable::Record(why.clone())),
        }
    }
}

/// Largest image file torchlight reads. Real dataset images are far smaller; without a cap one huge file would
/// take that much memory on each decode thread.
pub const MAX_IMAGE_FILE_BYTES: u64 = 256 << 20;

/// What kind of non-regular file `meta` describes, for skip reasons.
fn file_kind(meta: &std::fs::Metadata) -> &'static str {
    let ft = meta.file_type();
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if ft.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if ft.is_char_device() {
            return "a character device";
        }
        if ft.is_block_device() {
            return "a block device";
        }
        if ft.is_socket() {
            return "a socket";
        }
    }
    if ft.is_dir() { "a directory" } else { "not a regular file" }
}

/// Opens a file of a dataset for reading, refusing anything but a regular file: opening a FIFO waits for a writer
/// that may never come, and a device such as /dev/zero never ends. The open itself does not block (O_NONBLOCK, which
/// changes nothing for a regular file), and the file is checked again once open, in case the path changed between.
/// The error says what the file is instead.
pub fn open_regular(path: &Path) -> std::io::Result<(File, std::fs::Metadata)> {
    let not_regular = |meta: &std::fs::Metadata| std::io::Error::other(Unreadable::NotRegular(file_kind(meta)));
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        return Err(not_regular(&meta));
    }
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(&mut options, libc::O_NONBLOCK);
    let file = options.open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(not_regular(&meta));
    }
    Ok((file, meta))
}

/// Reads an image file whole, for decoding. Only regular files: a FIFO would block the decode thread forever and a
/// device such as /dev/zero never ends. At most `MAX_IMAGE_FILE_BYTES`, even when the file grows while it is read.
pub fn read_image_file(path: &Path) -> Result<Vec<u8>, Unreadable> {
    let (file, meta) =
        open_regular(path).map_err(|e| match e.get_ref().and_then(|inner| inner.downcast_ref::<Unreadable>()) {
            Some(why) => why.clone(),
            None => Unreadable::Io(e.to_string()),
        })?;
    if meta.len() > MAX_IMAGE_FILE_BYTES {
        return Err(Unreadable::TooBig(meta.len()));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(MAX_IMAGE_FILE_BYTES + 1).read_to_end(&mut bytes).map_err(|e| Unreadable::Io(e.to_string()))?;
    if bytes.len() as u64 > MAX_IMAGE_FILE_BYTES {
        return Err(Unreadable::TooBig(bytes.len() as u64));
    }
    Ok(bytes)
}

fn decode_bytes(bytes: &[u8]) -> Result<Decoded, Unreadable> {
    if bytes.is_empty() {
        return Err(Unreadable::Empty);
    }
    let format = image::guess_format(bytes).map_err(|_| Unreadable::NotAnImage)?;
    let mut reader = image::ImageReader::with_format(std::io::Cursor::new(bytes), format);
    // Bounded so that a hostile or broken header cannot ask for gigabytes.
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(1 << 15);
    limits.max_image_height = Some(1 << 15);
    reader.limits(limits);
    let image = reader.decode().map_err(|e| Unreadable::Decode { format, why: e.to_string() })?;
    Ok(Decoded { image, hash: content_hash(bytes) })
}

/// Stable 64-bit content hash (first 8 bytes of SHA-256), the same on every platform and version.
pub fn content_hash(bytes: &[u8]) -> u64 {
    let digest = Sha256::digest(bytes);
    u64::from_le_bytes(digest[..8].try_into().unwrap())
}

/// `content_hash` of a file's bytes, read in pieces (embedding files run to gigabytes).
pub fn content_hash_file(path: &Path) -> std::io::Result<u64> {
    let (mut file, _) = open_regular(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        match std::io::Read::read(&mut file, &mut buf)? {
            0 => break,
            n => hasher.update(&buf[..n]),
        }
    }
    let digest = hasher.finalize();
    Ok(u64::from_le_bytes(digest[..8].try_into().unwrap()))
}

/// Facts about an open source.
#[derive(Debug, Clone)]
pub struct SourceInfo {
    pub format: Format,
    /// Number of records (items plus ones that will be skipped).
    pub len: usize,
    /// Class names (index = label id); empty when unknown.
    pub label_names: Vec<String>,
    /// Stable identity: equal when the same dataset is opened again, different for another one.
    pub fingerprint: String,
}

pub type RecordIter<'a> = Box<dyn Iterator<Item = Result<Record>> + Send + 'a>;

/// Records of image files listed with their labels (image folders, CSV manifests), from position `start` on.
fn file_records(files: &[(PathBuf, Option<u32>)], start: usize) -> RecordIter<'_> {
    Box::new(files.iter().skip(start).map(|(path, label)| {
        Ok(Record { source: path.to_string_lossy().into_owned(), label: *label, payload: Payload::File(path.clone()) })
    }))
}

/// A dataset: a fixed, deterministic sequence of records.
pub trait Source: Send + Sync {
    fn info(&self) -> &SourceInfo;
    /// Records from position `start` on, in order. Cheap: files are read by `Record::decode`.
    fn records(&self, start: usize) -> Result<RecordIter<'_>>;
    /// The parquet files the records are read from, in record order, when the source is parquet (a local file or
    /// directory, or a hub dataset): where its other columns, such as stored embeddings, are read from.
    fn parquet_files(&self) -> Option<Vec<PathBuf>> {
        None
    }
    /// What the user should know about the dataset before it is read (one line each).
    fn warnings(&self) -> Vec<String> {
        Vec::new()
    }
}

/// Builds a fingerprint from the files that make up a dataset: their names (relative to the dataset root),
/// sizes, and the hash of their first 64 KiB. Cheap on big files, and different for another dataset.
#[derive(Default)]
pub struct Fingerprint {
    hasher: Sha256,
}

impl Fingerprint {
    pub fn new(format: Format) -> Fingerprint {
        let mut f = Fingerprint::default();
        f.add_str(&format.to_string());
        f
    }

    pub fn add_str(&mut self, s: &str) {
        self.hasher.update((s.len() as u64).to_le_bytes());
        self.hasher.update(s.as_bytes());
    }

    pub fn add_u64(&mut self, v: u64) {
        self.hasher.update(v.to_le_bytes());
    }

    /// Adds a file under `name` (relative, so a moved dataset keeps its fingerprint).
    pub fn add_file(&mut self, name: &str, path: &Path) -> Result<()> {
        let (mut file, meta) = open_regular(path).map_err(SourceError::io(format!("opening {}", path.display())))?;
        let len = meta.len();
        let mut head = Vec::with_capacity(64 << 10);
        (&mut file)
            .take(64 << 10)
            .read_to_end(&mut head)
            .map_err(SourceError::io(format!("reading {}", path.display())))?;
        self.add_str(name);
        self.add_u64(len);
        self.hasher.update(Sha256::digest(&head));
        Ok(())
    }

    pub fn finish(self) -> String {
        let digest = self.hasher.finalize();
        digest[..16].iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Extensions of image files torchlight lists in folders. Others are ignored, except that a file with one
/// of these extensions that fails to decode is skipped with its reason.
pub const IMAGE_EXTENSIONS: &[&str] =
    &["png", "jpg", "jpeg", "jpe", "jfif", "gif", "bmp", "tif", "tiff", "webp", "pgm", "ppm", "pbm", "pnm", "ico"];

pub fn is_image_file(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)))
}

/// Opens SOURCE: `hf:NAME[:CONFIG]`, or a path whose format is detected (or forced with `opts.format`).
pub fn open(spec: &str, opts: &OpenOptions) -> Result<Box<dyn Source>> {
    if let Some(rest) = spec.strip_prefix("hf:") {
        return Ok(Box::new(hub::open(rest, opts)?));
    }
    if opts.format == Some(Format::Hub) {
        return Ok(Box::new(hub::open(spec, opts)?));
    }
    let path = Path::new(spec);
    if !path.exists() {
        return Err(SourceError::Missing(path.to_path_buf()));
    }
    let format = match opts.format {
        Some(f) => f,
        None => detect(path)?,
    };
    Ok(match format {
        Format::Parquet => Box::new(parquet::ParquetSource::open(path, opts)?),
        Format::Hub => unreachable!("handled above"),
        Format::ImageFolder => Box::new(folder::FolderSource::open(path, true)?),
        Format::Flat => Box::new(folder::FolderSource::open(path, false)?),
        Format::Idx => Box::new(idx::IdxSource::open(path, opts.split.as_deref())?),
        Format::Cifar => Box::new(cifar::CifarSource::open(path, opts)?),
        Format::Csv => Box::new(csv::CsvSource::open(path, opts)?),
    })
}

/// Guesses the format of a path from file names: parquet, CSV, IDX, CIFAR, then folders of images.
pub fn detect(path: &Path) -> Result<Format> {
    let name_of = |p: &Path| p.file_name().map(|n| n.to_string_lossy().to_lowercase()).unwrap_or_default();
    if path.is_file() {
        let name = name_of(path);
        return if name.ends_with(".parquet") {
            Ok(Format::Parquet)
        } else if name.ends_with(".csv") {
            Ok(Format::Csv)
        } else if idx::looks_like_idx(path) {
            Ok(Format::Idx)
        } else if name.ends_with(".bin") {
            Ok(Format::Cifar)
        } else {
            Err(SourceError::Undetected {
                path: path.to_path_buf(),
                why: "a single file that is not .parquet, .csv, IDX (…-idx3-ubyte[.gz]) or CIFAR .bin".into(),
            })
        };
    }
    let entries = list_dir(path)?;
    let names: Vec<String> = entries.iter().map(|p| name_of(p)).collect();
    if names.iter().any(|n| n.ends_with(".parquet")) || has_parquet_below(path, 3, true) {
        return Ok(Format::Parquet);
    }
    if entries.iter().any(|p| idx::looks_like_idx(p)) {
        return Ok(Format::Idx);
    }
    if names.iter().any(|n| cifar::is_cifar_batch_name(n)) {
        return Ok(Format::Cifar);
    }
    if entries.iter().any(|p| p.is_file() && is_image_file(p)) {
        return Ok(Format::Flat);
    }
    if entries.iter().any(|p| p.is_dir()) {
        return Ok(Format::ImageFolder);
    }
    if names.iter().any(|n| n.ends_with(".csv")) {
        return Ok(Format::Csv);
    }
    Err(SourceError::Undetected {
        path: path.to_path_buf(),
        why: "no images, parquet, IDX, CIFAR or CSV files in it".into(),
    })
}

fn has_parquet_below(dir: &Path, depth: usize, top: bool) -> bool {
    if depth == 0 {
        return false;
    }
    let Ok(entries) = list_dir(dir) else { return false };
    if entries.iter().any(|p| p.extension().is_some_and(|e| e == "parquet")) {
        return true;
    }
    // Image folders hold images, not parquet: below the top, a directory with images is not searched further
    // (by name, so a class folder of an ImageFolder costs one listing and no stat per file).
    if !top && entries.iter().any(|p| is_image_file(p)) {
        return false;
    }
    entries.iter().any(|p| p.is_dir() && has_parquet_below(p, depth - 1, false))
}

/// Entries of a directory, sorted by name, hidden ones left out.
pub fn list_dir(dir: &Path) -> Result<Vec<PathBuf>> {
    let rd = std::fs::read_dir(dir).map_err(SourceError::io(format!("listing {}", dir.display())))?;
    let mut out = Vec::new();
    for entry in rd {
        let entry = entry.map_err(SourceError::io(format!("listing {}", dir.display())))?;
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        out.push(entry.path());
    }
    out.sort();
    Ok(out)
}

/// `path` relative to `root` as a forward-slash string (for item sources and fingerprints).
pub fn relative_name(root: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(root).unwrap_or(path);
    rel.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/")
}
