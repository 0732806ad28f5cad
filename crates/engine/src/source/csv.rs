//! CSV manifest: a header row, an image path column and an optional label column. Paths are relative to
//! the CSV's directory (absolute ones are kept). Integer labels are used as they are; text labels become
//! ids in sorted order of their names.
//!
//! A manifest is data, and may come from anyone: a path that leads outside the manifest's folder (`../x.png`,
//! an absolute path elsewhere, a symlink in the folder pointing out of it) is not opened unless the user
//! allows it (`OpenOptions::allow_outside_paths`). Such a record is skipped with the reason, and the source
//! carries one warning saying how many there are.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};

use super::{Fingerprint, Format, OpenOptions, Payload, Record, RecordIter, Result, Source, SourceError, SourceInfo};

const IMAGE_COLUMNS: [&str; 7] = ["path", "image", "image_path", "file", "filename", "filepath", "file_name"];
const LABEL_COLUMNS: [&str; 5] = ["label", "labels", "class", "target", "category"];

pub struct CsvSource {
    info: SourceInfo,
    rows: Vec<(PathBuf, Option<u32>)>,
    /// Per row, whether its path leads outside the manifest's folder and is refused (empty when none is).
    refused: Vec<bool>,
    /// Where the manifest is, for the reason of a refused record.
    dir: PathBuf,
    warnings: Vec<String>,
}

impl CsvSource {
    pub fn open(path: &Path, opts: &OpenOptions) -> Result<CsvSource> {
        let path = path.canonicalize().map_err(SourceError::io(format!("opening {}", path.display())))?;
        let csv_path = if path.is_dir() {
            let csvs: Vec<PathBuf> = super::list_dir(&path)?
                .into_iter()
                .filter(|p| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv")))
                .collect();
            match &csvs[..] {
                [one] => one.clone(),
                _ => {
                    return Err(SourceError::Invalid {
                        path,
                        format: Format::Csv,
                        why: format!("{} CSV files in the directory: name the manifest itself", csvs.len()),
                    });
                }
            }
        } else {
            path
        };
        let invalid = |why: String| SourceError::Invalid { path: csv_path.clone(), format: Format::Csv, why };
        let (file, _) =
            super::open_regular(&csv_path).map_err(SourceError::io(format!("opening {}", csv_path.display())))?;
        let mut reader = ::csv::ReaderBuilder::new().flexible(true).from_reader(file);
        let headers: Vec<String> =
            reader.headers().map_err(|e| invalid(e.to_string()))?.iter().map(|h| h.trim().to_string()).collect();
        let find = |name: &str| headers.iter().position(|h| h.eq_ignore_ascii_case(name));
        let image_col = match &opts.image_column {
            Some(c) => {
                find(c).ok_or_else(|| invalid(format!("no image column {c}; columns: {}", headers.join(", "))))?
            }
            None => IMAGE_COLUMNS.iter().find_map(|c| find(c)).unwrap_or(0),
        };
        let label_col = match &opts.label_column {
            Some(c) => {
                Some(find(c).ok_or_else(|| invalid(format!("no label column {c}; columns: {}", headers.join(", "))))?)
            }
            None => LABEL_COLUMNS.iter().find_map(|c| find(c)).filter(|&c| c != image_col),
        };
        let dir = csv_path.parent().unwrap().to_path_buf();
        let mut paths = Vec::new();
        let mut raw_labels = Vec::new();
        let mut refused = Vec::new();
        let mut first_outside = None;
        let mut real_dirs = HashMap::new();
        for (line, rec) in reader.records().enumerate() {
            let rec = rec.map_err(|e| invalid(format!("row {}: {e}", line + 2)))?;
            let cell = rec.get(image_col).unwrap_or("").trim();
            if cell.is_empty() {
                return Err(invalid(format!("row {}: empty image path", line + 2)));
            }
            let p = Path::new(cell);
            let path = if p.is_absolute() { p.to_path_buf() } else { dir.join(p) };
            if !opts.allow_outside_paths && leads_outside(&dir, &path, &mut real_dirs) {
                refused.resize(paths.len(), false);
                refused.push(true);
                first_outside.get_or_insert_with(|| format!("row {}: {cell}", line + 2));
            }
            paths.push(path);
            raw_labels.push(label_col.and_then(|c| rec.get(c)).map(str::trim).unwrap_or("").to_string());
        }
        let outside = refused.iter().filter(|&&r| r).count();
        let mut warnings = Vec::new();
        if let Some(first) = first_outside {
            warnings.push(format!(
                "{outside} of the {} records of {} name files outside its folder {} (the first, {first}): they \
                 are skipped without being opened; pass --allow-outside-paths to ingest them",
                paths.len(),
                csv_path.display(),
                dir.display()
            ));
        }
        let (labels, label_names) = match label_col {
            None => (vec![None; paths.len()], Vec::new()),
            Some(_) => encode_labels(&raw_labels),
        };
        let mut fp = Fingerprint::new(Format::Csv);
        fp.add_file(&csv_path.file_name().unwrap().to_string_lossy(), &csv_path)?;
        fp.add_u64(image_col as u64);
        fp.add_u64(label_col.map_or(u64::MAX, |c| c as u64));
        if outside > 0 {
            // Refused records are skipped ones, allowed ones items: a store is one or the other.
            fp.add_str("outside paths refused");
        }
        let info = SourceInfo { format: Format::Csv, len: paths.len(), label_names, fingerprint: fp.finish() };
        Ok(CsvSource { info, rows: paths.into_iter().zip(labels).collect(), refused, dir, warnings })
    }
}

/// Whether `path` leads outside `dir` (canonical): by its name (`..`, an absolute path elsewhere), or through a
/// symlink, its own or a directory's on the way. A path that does not exist is judged by its name (opening it
/// fails anyway). `real_dirs` caches the resolved parent directories: a manifest lists many files per folder.
fn leads_outside(dir: &Path, path: &Path, real_dirs: &mut HashMap<PathBuf, Option<PathBuf>>) -> bool {
    let mut named = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                named.pop();
            }
            Component::CurDir => {}
            other => named.push(other),
        }
    }
    if !named.starts_with(dir) {
        return true;
    }
    let Some(parent) = named.parent() else { return false };
    let real_parent = real_dirs.entry(parent.to_path_buf()).or_insert_with(|| parent.canonicalize().ok());
    match real_parent {
        None => false,
        Some(real) if !real.starts_with(dir) => true,
        Some(_) => match std::fs::symlink_metadata(&named) {
            Ok(meta) if meta.file_type().is_symlink() => named.canonicalize().is_ok_and(|real| !real.starts_with(dir)),
            _ => false,
        },
    }
}

/// Integers stay as they are (no names); text becomes ids of the sorted distinct names. Empty = no label.
fn encode_labels(raw: &[String]) -> (Vec<Option<u32>>, Vec<String>) {
    if raw.iter().all(|s| s.is_empty() || s.parse::<u32>().is_ok()) {
        return (raw.iter().map(|s| s.parse().ok()).collect(), Vec::new());
    }
    let mut names: Vec<String> = raw.iter().filter(|s| !s.is_empty()).cloned().collect();
    names.sort();
    names.dedup();
    let labels =
        raw.iter().map(|s| if s.is_empty() { None } else { names.binary_search(s).ok().map(|i| i as u32) }).collect();
    (labels, names)
}

impl Source for CsvSource {
    fn info(&self) -> &SourceInfo {
        &self.info
    }

    fn records(&self, start: usize) -> Result<RecordIter<'_>> {
        if self.refused.is_empty() {
            return Ok(super::file_records(&self.rows, start));
        }
        Ok(Box::new(self.rows.iter().enumerate().skip(start).map(|(i, (path, label))| {
            let payload = if self.refused.get(i).copied().unwrap_or(false) {
                Payload::Unreadable(format!(
                    "outside the manifest's folder {}: not opened (--allow-outside-paths allows it)",
                    self.dir.display()
                ))
            } else {
                Payload::File(path.clone())
            };
            Ok(Record { source: path.to_string_lossy().into_owned(), label: *label, payload })
        })))
    }

    fn warnings(&self) -> Vec<String> {
        self.warnings.clone()
    }
}
