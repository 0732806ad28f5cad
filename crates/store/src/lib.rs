//! torchlight's store: one LMDB environment per store directory, opened through heed. This crate alone knows
//! the layout; everything else reads and writes through these typed functions inside explicit
//! transactions (`read_txn` / `write_txn`, then `commit`). A write is durable once committed, so a
//! crash or kill at any moment leaves the last committed state.
//!
//! Layout (named databases):
//! - `meta`     Str -> JSON              schema version, dataset, label names, spaces, cursors, checkpoint
//!   series; a shard's part of its dataset and a merge's progress (`merge`)
//! - `items`    u32 BE -> bincode Item   dense ids 0..N-1 in ingest order
//! - `thumbs`   u32 BE -> PNG bytes      small previews for the browser
//! - `skipped`  u32 BE -> bincode Skipped source records that could not be read
//! - `vectors`  (u16 BE space, u32 BE id) -> f32 LE   embeddings
//! - `probs`    (u16 BE space, u32 BE id) -> f32 LE   classifier probabilities
//! - `columns`  Str "space/name" -> header + values    per-item analysis results, one blob per column,
//!   so reading one score for a million items is one 4 MB read
//! - `tags`     u32 BE -> bincode Tag    triage decisions
//! - `ann`      arroy Cosine, index = space index      'more like this' queries
//! - `sums`     kind + record key -> CRC-32            checksums of items, thumbnails, vectors, probs, columns

pub mod ann;
pub mod export;
pub mod merge;
pub mod npy;
pub mod schema;
pub mod sums;
pub mod verify;

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use heed::byteorder::BigEndian;
use heed::types::{Bytes, SerdeBincode, SerdeJson, Str, U32, U64};
use heed::{CommitOrAbort, Database, Env, EnvFlags, EnvOpenOptions, WithTls};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sums::{Check, Part};

/// Read methods take `&RoTxn`: a read transaction and a write transaction both deref to it.
pub use heed::{RoTxn, RwTxn};

/// What `Store::read_txn` returns.
pub type ReadTxn<'e> = heed::RoTxn<'e, WithTls>;
pub use schema::*;

/// Virtual size of the memory map. LMDB only uses disk for what is written; 1 TiB covers 1M+ items
/// with several 768-d spaces and their indexes.
const MAP_SIZE: usize = 1 << 40;
const MAX_DBS: u32 = 16;
const LOCK_FILE: &str = "ingest.lock";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("no torchlight store at {0}: run `torchlight ingest SOURCE --store {0}` first")]
    Missing(PathBuf),
    #[error("{0} is not a store directory (it is a file): give --store a directory; ingest creates a new one")]
    NotADirectory(PathBuf),
    #[error(
        "the store at {dir} is damaged: {why}. Nothing was read or changed. Restore data.mdb from a copy (the \
         whole file), or move the directory aside and ingest again"
    )]
    Damaged { dir: PathBuf, why: String },
    #[error(
        "the store at {dir} has schema version {found}, this torchlight reads version {expected}: \
         re-ingest into a new store directory, or use the torchlight version that wrote it"
    )]
    SchemaMismatch { dir: PathBuf, found: u32, expected: u32 },
    #[error(
        "the store at {dir} is busy: `torchlight {what}`{} is writing it (lock file {lock}); wait for it to finish",
        .pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
    )]
    Locked { dir: PathBuf, what: String, pid: Option<u32>, lock: PathBuf },
    #[error(
        "the store at {0} is read-only (read-only directory or media): browsing and export work, changes cannot be saved"
    )]
    ReadOnly(PathBuf),
    #[error("store record {what} is corrupt: {why}")]
    Corrupt { what: String, why: String },
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
    #[error(
        "No space left on device: the disk holding the store at {dir} is full ({free} bytes free). The last \
         transaction was not committed and everything committed before it is intact: free some space and rerun \
         the same command"
    )]
    DiskFull { dir: PathBuf, free: u64 },
    #[error("LMDB error in {dir}: {source}")]
    Heed { dir: PathBuf, source: heed::Error },
    #[error("arroy index error: {0}")]
    Ann(#[from] arroy::Error),
    #[error(
        "the store at {dir} is damaged: {what} of {} do not match their checksums{}. Run `torchlight verify \
         --store {dir}` for the whole list; `export --skip-damaged` leaves them out",
        ids_text(.ids), .space.as_ref().map(|s| format!(" in space {s}")).unwrap_or_default()
    )]
    Checksum { dir: PathBuf, what: &'static str, space: Option<String>, ids: Vec<u32> },
    #[error(
        "the store at {dir} is damaged: column {name} does not match its checksum. Run `torchlight analyze --store \
         {dir}` to compute it again"
    )]
    ColumnChecksum { dir: PathBuf, name: String },
}

/// Item ids for a message: the first few, and how many more.
pub fn ids_text(ids: &[u32]) -> String {
    const SHOWN: usize = 10;
    let head: Vec<String> = ids.iter().take(SHOWN).map(|id| format!("#{id}")).collect();
    let more = ids.len().saturating_sub(SHOWN);
    let noun = if ids.len() == 1 { "item" } else { "items" };
    if more > 0 { format!("{noun} {} and {more} more", head.join(", ")) } else { format!("{noun} {}", head.join(", ")) }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The store's databases, in one list for creating them and for opening them on read-only media: a tuple (heed
/// commits tuples of databases) with `$each` evaluated once per database and `$name` bound to its name in the file.
#[rustfmt::skip]
macro_rules! all_dbs {
    (|$name:ident| $each:expr) => {
        (
            { let $name = "meta"; $each },
            { let $name = "items"; $each },
            { let $name = "thumbs"; $each },
            { let $name = "skipped"; $each },
            { let $name = "vectors"; $each },
            { let $name = "probs"; $each },
            { let $name = "columns"; $each },
            { let $name = "tags"; $each },
            { let $name = "ann"; $each },
        )
    };
    (into $tuple:expr) => {{
        let (meta, items, thumbs, skipped, vectors, probs, columns, tags, ann) = $tuple;
        Dbs { meta, items, thumbs, skipped, vectors, probs, columns, tags, ann, sums: None }
    }};
}

#[derive(Clone, Copy)]
struct Dbs {
    meta: Database<'static, Str, SerdeJson<serde_json::Value>>,
    items: Database<'static, U32<BigEndian>, SerdeBincode<Item>>,
    thumbs: Database<'static, U32<BigEndian>, Bytes>,
    skipped: Database<'static, U32<BigEndian>, SerdeBincode<Skipped>>,
    vectors: Database<'static, U64<BigEndian>, Bytes>,
    probs: Database<'static, U64<BigEndian>, Bytes>,
    columns: Database<'static, Str, Bytes>,
    tags: Database<'static, U32<BigEndian>, SerdeBincode<Tag>>,
    ann: arroy::Database<'static, arroy::distances::Cosine>,
    /// Absent only in a store of schema version 1 opened for reading.
    sums: Option<Database<'static, Bytes, U32<BigEndian>>>,
}

/// LMDB's file format: each of the first two pages is a meta page (a 16-byte page header, then the meta); the
/// newer of the two (by transaction id) counts the pages the file must hold.
mod lmdb_meta {
    pub const MAGIC: u32 = 0xBEEF_C0DE;
    pub const MAGIC_AT: usize = 16;
    /// `mm_dbs[FREE_DBI].md_pad` of meta page 0 holds the page size.
    pub const PAGE_SIZE_AT: usize = 40;
    pub const LAST_PAGE_AT: usize = 136;
    pub const TXN_ID_AT: usize = 144;
    pub const LEN: usize = 152;
}

/// Refuses a `data.mdb` that LMDB would crash on rather than report: empty, not an LMDB file, or shorter than the
/// pages its meta page counts (a copy that did not finish). Mapping such a file and reading a page past its end
/// kills the process with SIGBUS, so this is read with plain reads, before LMDB opens it.
fn check_data_file(dir: &Path) -> Result<()> {
    use std::io::Read;
    let path = dir.join("data.mdb");
    let damaged = |why: String| StoreError::Damaged { dir: dir.to_path_buf(), why };
    let io = |e| StoreError::Io { what: format!("reading {}", path.display()), source: e };
    let mut file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io(e)),
    };
    let size = file.metadata().map_err(io)?.len();
    if size == 0 {
        return Err(damaged("data.mdb is empty (0 bytes)".into()));
    }
    let mut head = Vec::with_capacity(2 * 65536);
    file.by_ref().take(2 * 65536).read_to_end(&mut head).map_err(io)?;
    let u32_at = |b: &[u8], at: usize| u32::from_le_bytes(b[at..at + 4].try_into().unwrap());
    let u64_at = |b: &[u8], at: usize| u64::from_le_bytes(b[at..at + 8].try_into().unwrap());
    let meta = |at: usize| -> Option<(u64, u64)> {
        let m = head.get(at..at + lmdb_meta::LEN)?;
        (u32_at(m, lmdb_meta::MAGIC_AT) == lmdb_meta::MAGIC)
            .then(|| (u64_at(m, lmdb_meta::TXN_ID_AT), u64_at(m, lmdb_meta::LAST_PAGE_AT)))
    };
    let Some(first) = meta(0) else {
        return Err(damaged(format!("data.mdb ({size} bytes) does not start with an LMDB meta page")));
    };
    let page = u64::from(u32_at(&head, lmdb_meta::PAGE_SIZE_AT));
    if !(512..=65536).contains(&page) || !page.is_power_of_two() {
        return Err(damaged(format!("data.mdb gives an impossible page size ({page})")));
    }
    let newest = meta(page as usize).filter(|second| second.0 > first.0).unwrap_or(first);
    let need = (newest.1 + 1).saturating_mul(page);
    if size < need {
        return Err(damaged(format!(
            "data.mdb is {size} bytes, but LMDB's own record of it needs {need} (pages 0..={} of {page} bytes): \
             the file was cut short, as by a copy that did not finish",
            newest.1
        )));
    }
    Ok(())
}

/// A write that failed for a full disk. LMDB reports a page write that the disk cut short as EIO, not ENOSPC
/// (only a write that wrote nothing gives ENOSPC), so an EIO on a filesystem with next to nothing free is
/// reported as the full disk it is.
fn disk_full(dir: &Path, source: &heed::Error) -> Option<StoreError> {
    let heed::Error::Io(e) = source else { return None };
    let free = free_bytes(dir);
    let full = match e.raw_os_error() {
        Some(libc::ENOSPC) => true,
        Some(libc::EIO) => free.is_some_and(|f| f < 1 << 20),
        _ => false,
    };
    full.then(|| StoreError::DiskFull { dir: dir.to_path_buf(), free: free.unwrap_or(0) })
}

/// Bytes an unprivileged process may still write on the filesystem holding `dir`.
fn free_bytes(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs fills the zeroed struct for a NUL-terminated path and touches nothing else.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    (unsafe { libc::statvfs(path.as_ptr(), &mut st) } == 0).then(|| st.f_bavail as u64 * st.f_frsize as u64)
}

/// A path that exists but is no directory (a file, `/dev/null`) is refused before anything reads or writes it.
fn refuse_non_directory(dir: &Path) -> Result<()> {
    match fs::metadata(dir) {
        Ok(meta) if !meta.is_dir() => Err(StoreError::NotADirectory(dir.to_path_buf())),
        _ => Ok(()),
    }
}

/// Items whose record is whole, with their ids, and the ids of the damaged ones.
pub type CheckedItems = (Vec<(u32, Item)>, Vec<u32>);

/// An open store. Cheap to share by reference across threads; each thread opens its own read transaction.
pub struct Store {
    env: Env,
    db: Dbs,
    dir: PathBuf,
    read_only: bool,
    /// Where data.mdb is mapped in this process (see `release_map`), found on first use.
    map: std::sync::OnceLock<Option<(usize, usize)>>,
}

/// Held while an ingest or analysis writes a store; a second writer process is refused with a clear error.
#[derive(Debug)]
pub struct WriterLock {
    _file: File,
}

mod key {
    pub const SCHEMA: &str = "schema_version";
    pub const DATASET: &str = "dataset";
    pub const LABELS: &str = "label_names";
    pub const SPACES: &str = "spaces";
    pub const CURSOR: &str = "cursor/";
    pub const SERIES: &str = "series";
}

/// Per-item vectors are keyed by space in the high 32 bits and id in the low ones, so big-endian key
/// order is (space, id) order and one space is one contiguous key range.
fn vec_key(space: u16, id: u32) -> u64 {
    (u64::from(space) << 32) | u64::from(id)
}

fn space_range(space: u16) -> std::ops::Range<u64> {
    vec_key(space, 0)..vec_key(space + 1, 0)
}

fn column_key(space: &str, name: &str) -> String {
    format!("{space}/{name}")
}

/// Column blobs: 1 byte type (0 = f32, 1 = u32), 3 zero bytes, u32 LE width, then LE values.
/// Public (with `decode_column` and `decode_column_row`) so fuzz/ can feed them arbitrary bytes.
/// A column blob: `[type, format, 0, 0]`, the width (u32 LE), then for format 1 the CRC-32 of the type, width
/// and values (u32 LE), then the values. Format 0 (stores of schema version 1) has no checksum. A column carries
/// its own checksum, rather than one in `sums`, so reading it touches no other page.
pub(crate) const COLUMN_CHECKED: u8 = 1;

pub fn encode_column(col: &Column) -> Vec<u8> {
    let (tag, width, payload): (u8, u32, &[u8]) = match col {
        Column::F32 { width, values } => (0, *width, bytemuck::cast_slice(values)),
        Column::U32 { width, values } => (1, *width, bytemuck::cast_slice(values)),
    };
    let mut out = Vec::with_capacity(12 + payload.len());
    out.extend_from_slice(&[tag, COLUMN_CHECKED, 0, 0]);
    out.extend_from_slice(&width.to_le_bytes());
    out.extend_from_slice(&column_crc(tag, width, payload).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

fn column_crc(tag: u8, width: u32, payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&[tag]);
    h.update(&width.to_le_bytes());
    h.update(payload);
    h.finalize()
}

/// Where a column blob's values start, by its format byte.
fn column_body_start(format: u8) -> Option<usize> {
    match format {
        0 => Some(8),
        COLUMN_CHECKED => Some(12),
        _ => None,
    }
}

/// Why a column blob was refused when it fails its checksum (the other reasons say what is malformed).
pub const COLUMN_CHECKSUM_MISMATCH: &str = "does not match its checksum";

pub fn decode_column(name: &str, bytes: &[u8]) -> Result<Column> {
    let corrupt = |why: &str| StoreError::Corrupt { what: format!("column {name}"), why: why.to_string() };
    let Some(start) = bytes.get(1).and_then(|&f| column_body_start(f)) else {
        return Err(corrupt("bad header"));
    };
    if bytes.len() < start || !(bytes.len() - start).is_multiple_of(4) {
        return Err(corrupt("bad length"));
    }
    let width = u32::from_le_bytes(bytes[4..8].try_into().unwrap());
    if width == 0 {
        return Err(corrupt("zero width"));
    }
    // Found by fuzz/store_column: without these, a blob with junk in its padding or a partial last row
    // decoded as if it were whole.
    if bytes[2..4] != [0, 0] {
        return Err(corrupt("nonzero padding"));
    }
    let body = &bytes[start..];
    if start == 12 && u32::from_le_bytes(bytes[8..12].try_into().unwrap()) != column_crc(bytes[0], width, body) {
        return Err(corrupt(COLUMN_CHECKSUM_MISMATCH));
    }
    if !(body.len() / 4).is_multiple_of(width as usize) {
        return Err(corrupt("length is not a whole number of rows"));
    }
    match bytes[0] {
        0 => Ok(Column::F32 { width, values: le_f32(body) }),
        1 => Ok(Column::U32 {
            width,
            values: body.chunks_exact(4).map(|c| u32::from_le_bytes(c.try_into().unwrap())).collect(),
        }),
        t => Err(corrupt(&format!("unknown type {t}"))),
    }
}

/// One row of a column blob; None when the row is past the end. Offsets are checked: a corrupt width must not
/// overflow into a wrong slice.
pub fn decode_column_row(name: &str, bytes: &[u8], row: u32) -> Result<Option<Column>> {
    let Some(header) = bytes.get(1).and_then(|&f| column_body_start(f)).filter(|&h| bytes.len() >= h) else {
        return Err(StoreError::Corrupt { what: format!("column {name}"), why: "bad header".into() });
    };
    let width = u32::from_le_bytes(bytes[4..8].try_into().unwrap()) as usize;
    let row_bytes = width.checked_mul(4);
    let start = row_bytes.and_then(|r| r.checked_mul(row as usize)).and_then(|o| o.checked_add(header));
    let Some(body) = start.zip(row_bytes).and_then(|(s, r)| bytes.get(s..s.checked_add(r)?)) else {
        return Ok(None);
    };
    // One row cannot be checked against the whole column's checksum: it is decoded as an unchecked blob.
    let mut one = vec![bytes[0], 0, bytes[2], bytes[3]];
    one.extend_from_slice(&bytes[4..8]);
    one.extend_from_slice(body);
    decode_column(name, &one).map(Some)
}

/// Address and length of this process's mapping of `dir/data.mdb` (mdb_env_info reports the address only for
/// MDB_FIXEDMAP environments, so it is looked up in /proc/self/maps). None off Linux or when not found.
fn data_map(dir: &Path) -> Option<(usize, usize)> {
    let file = fs::canonicalize(dir.join("data.mdb")).ok()?;
    let file = file.to_str()?;
    let maps = fs::read_to_string("/proc/self/maps").ok()?;
    maps.lines().find_map(|line| {
        // "start-end perms offset dev inode path": the path is the rest after five fields.
        let mut fields = line.splitn(6, ' ');
        let range = fields.next()?;
        let path = fields.nth(4)?.trim_start();
        if path != file {
            return None;
        }
        let (a, b) = range.split_once('-')?;
        let (a, b) = (usize::from_str_radix(a, 16).ok()?, usize::from_str_radix(b, 16).ok()?);
        (b > a).then_some((a, b - a))
    })
}

/// LMDB values carry no alignment guarantee, so f32s are copied out rather than cast in place.
fn le_f32(bytes: &[u8]) -> Vec<f32> {
    bytes.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()
}

fn f32_le(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

impl Store {
    /// Opens the store at `dir`, creating the directory and an empty store when there is none.
    pub fn create_or_open(dir: &Path) -> Result<Store> {
        refuse_non_directory(dir)?;
        check_data_file(dir)?;
        fs::create_dir_all(dir)
            .map_err(|e| StoreError::Io { what: format!("creating store directory {}", dir.display()), source: e })?;
        if !dir.join("data.mdb").exists() {
            Store::create_data_file(dir)?;
        }
        Store::open_env(dir)
    }

    /// Makes a new store's data.mdb in a folder beside it and links it into place only once its databases and
    /// schema are committed, so a kill at any moment leaves no data.mdb or a whole one: an empty or headless
    /// data.mdb is always damage, never a start cut short. Linking (not renaming) never replaces a data.mdb
    /// that another process made meanwhile.
    fn create_data_file(dir: &Path) -> Result<()> {
        let new = dir.join(format!(".creating-{}", std::process::id()));
        let io = |what: String| move |e| StoreError::Io { what, source: e };
        match fs::remove_dir_all(&new) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(io(format!("removing {}", new.display()))(e));
            }
            _ => {}
        }
        fs::create_dir(&new).map_err(io(format!("creating {}", new.display())))?;
        drop(Store::open_env(&new)?);
        let target = dir.join("data.mdb");
        match fs::hard_link(new.join("data.mdb"), &target) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            // A filesystem without hard links: a rename, which only a second creator at the same instant could race.
            Err(_) => {
                fs::rename(new.join("data.mdb"), &target).map_err(io(format!("creating {}", target.display())))?
            }
        }
        File::open(dir).and_then(|d| d.sync_all()).map_err(io(format!("syncing {}", dir.display())))?;
        fs::remove_dir_all(&new).map_err(io(format!("removing {}", new.display())))
    }

    /// Opens an existing store; a directory without one is an error that says how to make one.
    /// A store on read-only media or in a directory the user may not write opens read-only: browsing,
    /// `info` and `export` work, and any write fails with `StoreError::ReadOnly`.
    pub fn open(dir: &Path) -> Result<Store> {
        Store::check_existing(dir)?;
        match Store::open_env(dir) {
            Err(StoreError::Heed { source: heed::Error::Io(e), .. })
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem
                ) =>
            {
                Store::open_read_only(dir)
            }
            other => other,
        }
    }

    /// Opens an existing store for reading only, for the commands that never write (info, export, verify):
    /// nothing in data.mdb is ever changed, even for a store a newer version would upgrade.
    pub fn open_reading(dir: &Path) -> Result<Store> {
        Store::check_existing(dir)?;
        Store::open_read_only(dir)
    }

    /// The checks every open of an existing store makes before LMDB reads the file.
    fn check_existing(dir: &Path) -> Result<()> {
        refuse_non_directory(dir)?;
        if !dir.join("data.mdb").exists() {
            return Err(StoreError::Missing(dir.to_path_buf()));
        }
        check_data_file(dir)
    }

    fn open_read_only(dir: &Path) -> Result<Store> {
        let heed_err = |source| StoreError::Heed { dir: dir.to_path_buf(), source };
        // SAFETY: the file is only modified through LMDB, and the reader table in lock.mdb keeps this reader
        // safe beside a writer in another process.
        let env =
            unsafe { EnvOpenOptions::new().map_size(MAP_SIZE).max_dbs(MAX_DBS).flags(EnvFlags::READ_ONLY).open(dir) };
        let env = match env {
            Ok(env) => env,
            // Read-only media or directory: lock.mdb cannot be made there. Without it LMDB cannot see writers;
            // none can exist where nothing can be written.
            // SAFETY: as above; NO_LOCK only drops the reader table, which nothing here can need.
            Err(heed::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem
                ) =>
            {
                unsafe {
                    EnvOpenOptions::new()
                        .map_size(MAP_SIZE)
                        .max_dbs(MAX_DBS)
                        .flags(EnvFlags::READ_ONLY | EnvFlags::NO_LOCK)
                        .open(dir)
                }
                .map_err(heed_err)?
            }
            Err(e) => return Err(heed_err(e)),
        };
        let rtxn = env.read_txn().map_err(heed_err)?;
        // A database missing from the file is reported as NotFound and turned into a clear error below.
        let (db, sums) = env
            .open_databases_and_commit(rtxn, |dbo, rtxn| -> heed::Result<_> {
                let required = all_dbs!(|name| dbo
                    .open_database(rtxn, Some(name))?
                    .ok_or(heed::Error::Mdb(heed::MdbError::NotFound))?);
                Ok(CommitOrAbort::<_, ()>::Commit((required, dbo.open_database(rtxn, Some("sums"))?)))
            })
            .map_err(|e| match e {
                heed::Error::Mdb(heed::MdbError::NotFound) => StoreError::Corrupt {
                    what: format!("store {}", dir.display()),
                    why: "a database is missing".into(),
                },
                other => heed_err(other),
            })?
            .unwrap_commit();
        let db = Dbs { sums, ..all_dbs!(into db) };
        let store = Store { env, db, dir: dir.to_path_buf(), read_only: true, map: Default::default() };
        let found = {
            let rtxn = store.read_txn()?;
            store.schema_version(&rtxn)?
        };
        if !(OLDEST_READABLE..=SCHEMA_VERSION).contains(&found) {
            return Err(StoreError::SchemaMismatch { dir: dir.to_path_buf(), found, expected: SCHEMA_VERSION });
        }
        Ok(store)
    }

    /// True when the store was opened for reading only (`open_reading`, or read-only media or directory).
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    fn open_env(dir: &Path) -> Result<Store> {
        let heed_err = |source| StoreError::Heed { dir: dir.to_path_buf(), source };
        // SAFETY: the environment is opened once per Store and the data file is only modified through LMDB.
        let env = unsafe { EnvOpenOptions::new().map_size(MAP_SIZE).max_dbs(MAX_DBS).open(dir) }.map_err(heed_err)?;
        let wtxn = env.write_txn().map_err(heed_err)?;
        let (db, sums) = env
            .create_databases_and_commit(wtxn, |dbo, wtxn| -> heed::Result<_> {
                let all = all_dbs!(|name| dbo.create_database(wtxn, Some(name))?);
                Ok(CommitOrAbort::<_, ()>::Commit((all, dbo.create_database(wtxn, Some("sums"))?)))
            })
            .map_err(heed_err)?
            .unwrap_commit();
        let db = Dbs { sums: Some(sums), ..all_dbs!(into db) };
        let mut wtxn = env.write_txn().map_err(heed_err)?;
        let found = db.meta.get(&wtxn, key::SCHEMA).map_err(heed_err)?.map(|v| v.as_u64().unwrap_or(0) as u32);
        match found {
            Some(SCHEMA_VERSION) => {}
            // A new store, or a version 1 store, which needs only the sums database to be version 2.
            None | Some(OLDEST_READABLE) => {
                db.meta.put(&mut wtxn, key::SCHEMA, &serde_json::json!(SCHEMA_VERSION)).map_err(heed_err)?;
            }
            Some(found) => {
                return Err(StoreError::SchemaMismatch { dir: dir.to_path_buf(), found, expected: SCHEMA_VERSION });
            }
        }
        wtxn.commit().map_err(heed_err)?;
        Ok(Store { env, db, dir: dir.to_path_buf(), read_only: false, map: Default::default() })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub(crate) fn heed_err(&self, source: heed::Error) -> StoreError {
        disk_full(&self.dir, &source).unwrap_or_else(|| StoreError::Heed { dir: self.dir.clone(), source })
    }

    /// Takes the store's writer lock for `what` (e.g. "ingest"); fails at once if another process holds it.
    pub fn lock_writer(&self, what: &str) -> Result<WriterLock> {
        if self.read_only {
            return Err(StoreError::ReadOnly(self.dir.clone()));
        }
        let lock = self.dir.join(LOCK_FILE);
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .read(true)
            .open(&lock)
            .map_err(|e| StoreError::Io { what: format!("opening {}", lock.display()), source: e })?;
        match file.try_lock() {
            Ok(()) => {
                let _ = file.set_len(0);
                let _ =
                    std::io::Write::write_all(&mut &file, format!("{what} pid {}\n", std::process::id()).as_bytes());
                Ok(WriterLock { _file: file })
            }
            Err(fs::TryLockError::WouldBlock) => {
                // The holder wrote "<what> pid <pid>".
                let text = fs::read_to_string(&lock).unwrap_or_default();
                let mut words = text.split_whitespace();
                let holder = words.next().unwrap_or(what).to_string();
                let pid = words.nth(1).and_then(|p| p.parse().ok());
                Err(StoreError::Locked { dir: self.dir.clone(), what: holder, pid, lock })
            }
            Err(fs::TryLockError::Error(e)) => {
                Err(StoreError::Io { what: format!("locking {}", lock.display()), source: e })
            }
        }
    }

    pub fn read_txn(&self) -> Result<ReadTxn<'_>> {
        self.env.read_txn().map_err(|e| self.heed_err(e))
    }

    pub fn write_txn(&self) -> Result<RwTxn<'_>> {
        if self.read_only {
            return Err(StoreError::ReadOnly(self.dir.clone()));
        }
        self.env.write_txn().map_err(|e| self.heed_err(e))
    }

    /// Commits a write transaction, mapping the error (a full disk shows up here) to one naming the store.
    pub fn commit(&self, wtxn: RwTxn<'_>) -> Result<()> {
        wtxn.commit().map_err(|e| self.heed_err(e))
    }

    /// Bytes the store occupies on disk.
    pub fn disk_size(&self) -> u64 {
        fs::metadata(self.dir.join("data.mdb")).map(|m| m.len()).unwrap_or(0)
    }

    // ---- meta ----

    fn get_meta<T: DeserializeOwned>(&self, rtxn: &RoTxn, key: &str) -> Result<Option<T>> {
        match self.db.meta.get(rtxn, key).map_err(|e| self.heed_err(e))? {
            None => Ok(None),
            Some(v) => serde_json::from_value(v)
                .map(Some)
                .map_err(|e| StoreError::Corrupt { what: format!("meta {key}"), why: e.to_string() }),
        }
    }

    fn put_meta<T: Serialize>(&self, wtxn: &mut RwTxn, key: &str, value: &T) -> Result<()> {
        let v = serde_json::to_value(value).expect("meta records serialise");
        self.db.meta.put(wtxn, key, &v).map_err(|e| self.heed_err(e))
    }

    pub fn schema_version(&self, rtxn: &RoTxn) -> Result<u32> {
        Ok(self.get_meta::<u32>(rtxn, key::SCHEMA)?.unwrap_or(0))
    }

    pub fn dataset(&self, rtxn: &RoTxn) -> Result<Option<DatasetInfo>> {
        self.get_meta(rtxn, key::DATASET)
    }

    /// Records the dataset. Marking it complete also writes the label column (`put_label_column`), so that
    /// readers get every label in one read instead of a scan of the item records.
    pub fn put_dataset(&self, wtxn: &mut RwTxn, info: &DatasetInfo) -> Result<()> {
        self.put_meta(wtxn, key::DATASET, info)?;
        if info.complete && self.label_column_stale(wtxn)? {
            self.put_label_column(wtxn)?;
        }
        Ok(())
    }

    /// Class names of the dataset's labels (index = label id); empty when unknown.
    pub fn label_names(&self, rtxn: &RoTxn) -> Result<Vec<String>> {
        Ok(self.get_meta(rtxn, key::LABELS)?.unwrap_or_default())
    }

    pub fn put_label_names(&self, wtxn: &mut RwTxn, names: &[String]) -> Result<()> {
        self.put_meta(wtxn, key::LABELS, &names)
    }

    pub fn spaces(&self, rtxn: &RoTxn) -> Result<Vec<SpaceInfo>> {
        Ok(self.get_meta(rtxn, key::SPACES)?.unwrap_or_default())
    }

    pub fn space(&self, rtxn: &RoTxn, name: &str) -> Result<Option<SpaceInfo>> {
        Ok(self.spaces(rtxn)?.into_iter().find(|s| s.name == name))
    }

    /// Adds or replaces a space by name. A new space gets the next free index.
    pub fn put_space(&self, wtxn: &mut RwTxn, mut space: SpaceInfo) -> Result<SpaceInfo> {
        let mut spaces = self.spaces(wtxn)?;
        match spaces.iter_mut().find(|s| s.name == space.name) {
            Some(existing) => {
                space.index = existing.index;
                *existing = space.clone();
            }
            None => {
                space.index = spaces.iter().map(|s| s.index + 1).max().unwrap_or(0);
                spaces.push(space.clone());
            }
        }
        self.put_meta(wtxn, key::SPACES, &spaces)?;
        Ok(space)
    }

    /// The checkpoint series of the store, if one was ingested.
    pub fn series(&self, rtxn: &RoTxn) -> Result<Option<Series>> {
        self.get_meta(rtxn, key::SERIES)
    }

    pub fn put_series(&self, wtxn: &mut RwTxn, series: &Series) -> Result<()> {
        self.put_meta(wtxn, key::SERIES, series)
    }

    /// A named resume cursor (e.g. "items", "space/foundation"): how far a stage has committed.
    pub fn cursor(&self, rtxn: &RoTxn, name: &str) -> Result<u64> {
        Ok(self.get_meta(rtxn, &format!("{}{name}", key::CURSOR))?.unwrap_or(0))
    }

    pub fn put_cursor(&self, wtxn: &mut RwTxn, name: &str, value: u64) -> Result<()> {
        self.put_meta(wtxn, &format!("{}{name}", key::CURSOR), &value)
    }

    /// Arbitrary small JSON settings (e.g. the analysis parameters last used).
    pub fn setting(&self, rtxn: &RoTxn, name: &str) -> Result<Option<serde_json::Value>> {
        self.get_meta(rtxn, &format!("setting/{name}"))
    }

    pub fn put_setting(&self, wtxn: &mut RwTxn, name: &str, value: &serde_json::Value) -> Result<()> {
        self.put_meta(wtxn, &format!("setting/{name}"), value)
    }

    // ---- items ----

    pub fn item_count(&self, rtxn: &RoTxn) -> Result<u32> {
        Ok(self.db.items.len(rtxn).map_err(|e| self.heed_err(e))? as u32)
    }

    pub fn item(&self, rtxn: &RoTxn, id: u32) -> Result<Option<Item>> {
        self.db.items.get(rtxn, &id).map_err(|e| self.heed_err(e))
    }

    pub fn put_item(&self, wtxn: &mut RwTxn, id: u32, item: &Item) -> Result<()> {
        // Encoded here, so the bytes summed are the bytes stored (the database's codec is the same bincode).
        let bytes = bincode::serialize(item)
            .map_err(|e| StoreError::Corrupt { what: format!("item {id}"), why: e.to_string() })?;
        self.db.items.remap_data_type::<Bytes>().put(wtxn, &id, &bytes).map_err(|e| self.heed_err(e))?;
        self.put_sum(wtxn, Part::Item, &id.to_be_bytes(), &bytes)
    }

    /// All items in id order; an item record that does not match its checksum is an error naming it.
    pub fn items(&self, rtxn: &RoTxn) -> Result<Vec<Item>> {
        let (items, damaged) = self.items_checked(rtxn)?;
        if damaged.is_empty() {
            return Ok(items.into_iter().map(|(_, item)| item).collect());
        }
        Err(StoreError::Checksum { dir: self.dir.clone(), what: "the records", space: None, ids: damaged })
    }

    /// The items whose record matches its checksum (with their ids, in id order), and the ids of those that do
    /// not or cannot be decoded.
    pub fn items_checked(&self, rtxn: &RoTxn) -> Result<CheckedItems> {
        let iter = self.db.items.remap_data_type::<Bytes>().iter(rtxn).map_err(|e| self.heed_err(e))?;
        let (mut items, mut damaged) = (Vec::new(), Vec::new());
        for r in iter {
            let (id, bytes) = r.map_err(|e| self.heed_err(e))?;
            let item = match self.check_sum(rtxn, Part::Item, &id.to_be_bytes(), bytes)? {
                Check::Mismatch => None,
                Check::Ok | Check::Unchecked => bincode::deserialize::<Item>(bytes).ok(),
            };
            match item {
                Some(item) => items.push((id, item)),
                None => damaged.push(id),
            }
        }
        Ok((items, damaged))
    }

    /// Dataset label of every item (id order).
    pub fn labels(&self, rtxn: &RoTxn) -> Result<Vec<Option<u32>>> {
        Ok(self.label_ids(rtxn)?.into_iter().map(|l| (l != NO_LABEL).then_some(l)).collect())
    }

    /// Dataset label of every item (id order), `NO_LABEL` for none: from the label column when it covers every
    /// item (one read of 4 bytes per item), else from a scan of the item records (every record page).
    pub fn label_ids(&self, rtxn: &RoTxn) -> Result<Vec<u32>> {
        let n = self.item_count(rtxn)? as usize;
        if let Some(Column::U32 { width: 1, values }) = self.column(rtxn, "", columns::LABEL)?
            && values.len() == n
        {
            return Ok(values);
        }
        self.scan_label_ids(rtxn, n)
    }

    fn scan_label_ids(&self, rtxn: &RoTxn, n: usize) -> Result<Vec<u32>> {
        let mut out = Vec::with_capacity(n);
        self.for_each_item_ref(rtxn, |_, item| out.push(item.label.unwrap_or(NO_LABEL)))?;
        Ok(out)
    }

    /// Whether the label column is missing or does not cover every item (a store written before it existed,
    /// or an ingest still running): `label_ids` then falls back to a scan.
    pub fn label_column_stale(&self, rtxn: &RoTxn) -> Result<bool> {
        let n = self.item_count(rtxn)? as usize;
        let key = column_key("", columns::LABEL);
        Ok(match self.db.columns.get(rtxn, &key).map_err(|e| self.heed_err(e))? {
            None => true,
            Some(bytes) => {
                let start = bytes.get(1).and_then(|&f| column_body_start(f));
                bytes[0] != 1 || start.is_none_or(|s| bytes.len() != s + 4 * n)
            }
        })
    }

    /// Writes the label column from the item records. `put_dataset` does it when a dataset is marked complete;
    /// call it directly after adding items to a complete dataset, or to upgrade an older store.
    pub fn put_label_column(&self, wtxn: &mut RwTxn) -> Result<()> {
        let n = self.item_count(wtxn)? as usize;
        let values = self.scan_label_ids(wtxn, n)?;
        self.put_column(wtxn, "", columns::LABEL, &Column::U32 { width: 1, values })
    }

    /// Calls `f` with every item's source and label, in id order, borrowing from the map: a scan of a
    /// million items allocates nothing. The record pages it touches are dropped from this process's resident
    /// set as it goes (see `release_map`).
    pub fn for_each_item_ref(&self, rtxn: &RoTxn, mut f: impl FnMut(u32, ItemRef<'_>)) -> Result<()> {
        let iter = self.db.items.remap_data_type::<Bytes>().iter(rtxn).map_err(|e| self.heed_err(e))?;
        for (i, r) in iter.enumerate() {
            let (id, bytes) = r.map_err(|e| self.heed_err(e))?;
            // The leading fields of an `Item` record (bincode ignores the trailing ones).
            let item: ItemRef = bincode::deserialize(bytes)
                .map_err(|e| StoreError::Corrupt { what: format!("item {id}"), why: e.to_string() })?;
            f(id, item);
            // Every ~4 MB of records, so a scan's resident peak stays small too (a release costs microseconds).
            if i % 65_536 == 65_535 {
                self.release_map();
            }
        }
        self.release_map();
        Ok(())
    }

    /// Drops every page of the store's memory map from this process's resident set. Nothing is lost: the map
    /// is read-only and file-backed, so a later read faults the page back in from the page cache. Long-lived
    /// readers (the browser) call it after a scan whose results they have copied out.
    pub fn release_map(&self) {
        let Some((addr, len)) = *self.map.get_or_init(|| data_map(&self.dir)) else { return };
        let used = (self.disk_size() as usize).min(len);
        if used > 0 {
            // SAFETY: the range lies inside LMDB's own mapping of data.mdb (found in /proc/self/maps; LMDB maps
            // once per environment and never moves it). Without MDB_WRITEMAP that mapping is read-only, so
            // MADV_DONTNEED only unmaps clean shared pages.
            unsafe { libc::madvise(addr as *mut libc::c_void, used, libc::MADV_DONTNEED) };
        }
    }

    pub fn thumbnail(&self, rtxn: &RoTxn, id: u32) -> Result<Option<Vec<u8>>> {
        Ok(self.db.thumbs.get(rtxn, &id).map_err(|e| self.heed_err(e))?.map(<[u8]>::to_vec))
    }

    pub fn put_thumbnail(&self, wtxn: &mut RwTxn, id: u32, png: &[u8]) -> Result<()> {
        self.db.thumbs.put(wtxn, &id, png).map_err(|e| self.heed_err(e))?;
        self.put_sum(wtxn, Part::Thumbnail, &id.to_be_bytes(), png)
    }

    pub fn skipped(&self, rtxn: &RoTxn) -> Result<Vec<Skipped>> {
        let iter = self.db.skipped.iter(rtxn).map_err(|e| self.heed_err(e))?;
        iter.map(|r| r.map(|(_, s)| s).map_err(|e| self.heed_err(e))).collect()
    }

    pub fn push_skipped(&self, wtxn: &mut RwTxn, skipped: &Skipped) -> Result<()> {
        let next = self.db.skipped.len(wtxn).map_err(|e| self.heed_err(e))? as u32;
        self.db.skipped.put(wtxn, &next, skipped).map_err(|e| self.heed_err(e))
    }

    // ---- embeddings and probabilities ----

    pub fn put_embedding(&self, wtxn: &mut RwTxn, space: u16, id: u32, v: &[f32]) -> Result<()> {
        let (key, bytes) = (vec_key(space, id), f32_le(v));
        self.db.vectors.put(wtxn, &key, &bytes).map_err(|e| self.heed_err(e))?;
        self.put_sum(wtxn, Part::Embedding, &key.to_be_bytes(), &bytes)
    }

    pub fn embedding(&self, rtxn: &RoTxn, space: u16, id: u32) -> Result<Option<Vec<f32>>> {
        Ok(self.db.vectors.get(rtxn, &vec_key(space, id)).map_err(|e| self.heed_err(e))?.map(le_f32))
    }

    /// Number of items with an embedding in `space`.
    pub fn embedding_count(&self, rtxn: &RoTxn, space: u16) -> Result<u32> {
        let n = self.db.vectors.range(rtxn, &space_range(space)).map_err(|e| self.heed_err(e))?.count();
        Ok(n as u32)
    }

    /// Appends the embeddings of ids `start..start+count` (row-major, `dim` each) to `out`; returns the
    /// number of rows read, stopping at the first id without one. Lets analysis stream big spaces in blocks.
    pub fn embedding_rows(
        &self,
        rtxn: &RoTxn,
        space: u16,
        start: u32,
        count: u32,
        dim: usize,
        out: &mut Vec<f32>,
    ) -> Result<u32> {
        let mut damaged = Vec::new();
        let rows = self.rows_checked(rtxn, Part::Embedding, space, start, count, dim, out, &mut damaged)?;
        if !damaged.is_empty() {
            return Err(StoreError::Checksum {
                dir: self.dir.clone(),
                what: "the embeddings",
                space: self.space_name(rtxn, space),
                ids: damaged,
            });
        }
        Ok(rows)
    }

    /// Consecutive rows of `width` floats of `part` (embeddings or probabilities) of `space` from id `start`,
    /// appended to `out` up to the first missing id; the ids whose row does not match its checksum go to
    /// `damaged` (their rows are appended all the same, so rows and ids stay aligned). Returns the rows read.
    #[allow(clippy::too_many_arguments)]
    pub fn rows_checked(
        &self,
        rtxn: &RoTxn,
        part: Part,
        space: u16,
        start: u32,
        count: u32,
        width: usize,
        out: &mut Vec<f32>,
        damaged: &mut Vec<u32>,
    ) -> Result<u32> {
        let db = if part == Part::Probs { self.db.probs } else { self.db.vectors };
        let end = (u64::from(start) + u64::from(count)).min(u64::from(u32::MAX));
        let range = vec_key(space, start)..(vec_key(space, 0) + end);
        let iter = db.range(rtxn, &range).map_err(|e| self.heed_err(e))?;
        let mut expected = start;
        for r in iter {
            let (k, v) = r.map_err(|e| self.heed_err(e))?;
            let id = k as u32;
            if id != expected {
                break;
            }
            if v.len() != width * 4 {
                return Err(StoreError::Corrupt {
                    what: format!("{} {id} of space {space}", part.name()),
                    why: format!("{} bytes, expected {}", v.len(), width * 4),
                });
            }
            if self.check_sum(rtxn, part, &k.to_be_bytes(), v)? == Check::Mismatch {
                damaged.push(id);
            }
            out.extend(v.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())));
            expected += 1;
        }
        Ok(expected - start)
    }

    /// The name of the space with index `index`, for messages.
    fn space_name(&self, rtxn: &RoTxn, index: u16) -> Option<String> {
        self.spaces(rtxn).ok()?.into_iter().find(|s| s.index == index).map(|s| s.name)
    }

    /// The whole space as a row-major [N, dim] matrix.
    pub fn embedding_matrix(&self, rtxn: &RoTxn, space: &SpaceInfo) -> Result<Vec<f32>> {
        let n = self.embedding_count(rtxn, space.index)?;
        let mut out = Vec::with_capacity(n as usize * space.dim as usize);
        self.embedding_rows(rtxn, space.index, 0, n, space.dim as usize, &mut out)?;
        Ok(out)
    }

    pub fn put_probs(&self, wtxn: &mut RwTxn, space: u16, id: u32, p: &[f32]) -> Result<()> {
        let (key, bytes) = (vec_key(space, id), f32_le(p));
        self.db.probs.put(wtxn, &key, &bytes).map_err(|e| self.heed_err(e))?;
        self.put_sum(wtxn, Part::Probs, &key.to_be_bytes(), &bytes)
    }

    pub fn probs(&self, rtxn: &RoTxn, space: u16, id: u32) -> Result<Option<Vec<f32>>> {
        Ok(self.db.probs.get(rtxn, &vec_key(space, id)).map_err(|e| self.heed_err(e))?.map(le_f32))
    }

    /// Probabilities of ids `0..n` as a row-major [n, classes] matrix; None if any item lacks them.
    pub fn probs_matrix(&self, rtxn: &RoTxn, space: &SpaceInfo, n: u32) -> Result<Option<Vec<f32>>> {
        if space.num_classes == 0 {
            return Ok(None);
        }
        let c = space.num_classes as usize;
        let mut out = Vec::with_capacity(n as usize * c);
        let mut damaged = Vec::new();
        let rows = match self.rows_checked(rtxn, Part::Probs, space.index, 0, n, c, &mut out, &mut damaged) {
            Err(StoreError::Corrupt { .. }) => return Ok(None),
            other => other?,
        };
        if !damaged.is_empty() {
            let (dir, space) = (self.dir.clone(), Some(space.name.clone()));
            return Err(StoreError::Checksum { dir, what: "the probabilities", space, ids: damaged });
        }
        Ok((rows == n).then_some(out))
    }

    // ---- analysis columns ----

    /// Writes a per-item column for `space` ("" for dataset-level columns).
    pub fn put_column(&self, wtxn: &mut RwTxn, space: &str, name: &str, col: &Column) -> Result<()> {
        self.db.columns.put(wtxn, &column_key(space, name), &encode_column(col)).map_err(|e| self.heed_err(e))
    }

    /// The whole column, copied out of the map. Its pages are then dropped from this process's resident set
    /// (they stay in the page cache): a browser holding a million-row column should not pay for it twice.
    pub fn column(&self, rtxn: &RoTxn, space: &str, name: &str) -> Result<Option<Column>> {
        let key = column_key(space, name);
        match self.db.columns.get(rtxn, &key).map_err(|e| self.heed_err(e))? {
            None => Ok(None),
            Some(bytes) => {
                let col = decode_column(&key, bytes);
                // The whole map, not just the blob's pages: the kernel maps pages around each fault, and those
                // around the blob's ends and its path in the tree would stay.
                self.release_map();
                match col {
                    Err(StoreError::Corrupt { why, .. }) if why == COLUMN_CHECKSUM_MISMATCH => {
                        Err(StoreError::ColumnChecksum { dir: self.dir.clone(), name: key })
                    }
                    other => other.map(Some),
                }
            }
        }
    }

    /// One item's row of a column (e.g. its k neighbours) without decoding the whole column: the browser
    /// asks for a handful of rows of million-row columns. None when the column or the row is absent.
    pub fn column_row(&self, rtxn: &RoTxn, space: &str, name: &str, row: u32) -> Result<Option<Column>> {
        let key = column_key(space, name);
        let Some(bytes) = self.db.columns.get(rtxn, &key).map_err(|e| self.heed_err(e))? else {
            return Ok(None);
        };
        decode_column_row(&key, bytes, row)
    }

    pub fn delete_column(&self, wtxn: &mut RwTxn, space: &str, name: &str) -> Result<()> {
        self.db.columns.delete(wtxn, &column_key(space, name)).map_err(|e| self.heed_err(e))?;
        Ok(())
    }

    /// Names of the columns stored for `space`.
    pub fn column_names(&self, rtxn: &RoTxn, space: &str) -> Result<Vec<String>> {
        let prefix = format!("{space}/");
        let iter = self.db.columns.prefix_iter(rtxn, &prefix).map_err(|e| self.heed_err(e))?;
        let mut names = Vec::new();
        for r in iter.remap_data_type::<heed::types::DecodeIgnore>() {
            let (k, ()) = r.map_err(|e| self.heed_err(e))?;
            names.push(k[prefix.len()..].to_string());
        }
        Ok(names)
    }

    // ---- triage tags ----

    pub fn tag(&self, rtxn: &RoTxn, id: u32) -> Result<Option<Tag>> {
        self.db.tags.get(rtxn, &id).map_err(|e| self.heed_err(e))
    }

    /// Sets the tag record of an item; an empty tag deletes the record.
    pub fn put_tag(&self, wtxn: &mut RwTxn, id: u32, tag: &Tag) -> Result<()> {
        if tag.is_empty() {
            self.db.tags.delete(wtxn, &id).map_err(|e| self.heed_err(e))?;
            Ok(())
        } else {
            self.db.tags.put(wtxn, &id, tag).map_err(|e| self.heed_err(e))
        }
    }

    /// Every tagged item, id order.
    pub fn tags(&self, rtxn: &RoTxn) -> Result<Vec<(u32, Tag)>> {
        let iter = self.db.tags.iter(rtxn).map_err(|e| self.heed_err(e))?;
        iter.map(|r| r.map_err(|e| self.heed_err(e))).collect()
    }
}
