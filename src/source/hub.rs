//! `hf:NAME[:CONFIG]` datasets: the split's parquet files from the Hugging Face hub, then read as parquet.
//! Which files: the repository's file list narrowed to CONFIG and `--split`, in the layouts the hub uses:
//! `data/train-00000-of-00001.parquet` (datasets' push_to_hub), `CONFIG/train-*.parquet`, and the
//! parquet conversion branch's `CONFIG/train/0000.parquet` or `CONFIG/NAME-train.parquet`.

use std::path::{Path, PathBuf};

use super::parquet::{ParquetSource, path_has_split, select_split};
use super::{OpenOptions, Result, SourceError};

/// `NAME[:CONFIG]` -> (repo id, config).
pub fn parse_spec(spec: &str) -> (&str, Option<&str>) {
    match spec.split_once(':') {
        Some((name, config)) if !config.is_empty() => (name, Some(config)),
        Some((name, _)) => (name, None),
        None => (spec, None),
    }
}

/// The parquet files of `config` / `split` among a repository's files, sorted. Errors say what there is.
pub fn split_files(repo: &str, files: &[String], config: Option<&str>, split: &str) -> Result<Vec<String>> {
    let parquet: Vec<&str> = files.iter().map(String::as_str).filter(|f| f.ends_with(".parquet")).collect();
    if parquet.is_empty() {
        return Err(SourceError::Hub(format!(
            "dataset {repo} has no parquet files; torchlight reads hub datasets stored as parquet \
             (its refs/convert/parquet branch, or data/*.parquet)"
        )));
    }
    let top = |f: &str| f.split('/').next().unwrap_or("").to_string();
    // Directories that name configs: everything at the top except the generic `data` folder.
    let mut configs: Vec<String> =
        parquet.iter().filter(|f| f.contains('/')).map(|f| top(f)).filter(|t| t != "data").collect();
    configs.sort();
    configs.dedup();
    let in_config: Vec<&str> = match config {
        Some(c) => {
            let chosen: Vec<&str> = parquet.iter().copied().filter(|f| top(f) == c).collect();
            if chosen.is_empty() {
                return Err(SourceError::Hub(format!(
                    "dataset {repo} has no config {c}; configs: {}",
                    if configs.is_empty() { "none (use hf:NAME)".to_string() } else { configs.join(", ") }
                )));
            }
            chosen
        }
        None => {
            let is_split_dir = |t: &str| ["train", "test", "validation", "valid", "val", "dev"].contains(&t);
            let named: Vec<&String> = configs.iter().filter(|c| !is_split_dir(c)).collect();
            match named.as_slice() {
                [] => parquet.clone(),
                [one] => parquet.iter().copied().filter(|f| top(f) == **one).collect(),
                many => {
                    let default = many.iter().find(|c| c.as_str() == "default" || c.as_str() == "plain_text");
                    match default {
                        Some(d) => parquet.iter().copied().filter(|f| top(f) == d.as_str()).collect(),
                        None => {
                            return Err(SourceError::Hub(format!(
                                "dataset {repo} has several configs ({}): use hf:{repo}:CONFIG",
                                many.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(", ")
                            )));
                        }
                    }
                }
            }
        }
    };
    let mut chosen: Vec<String> = select_split(&in_config, split).into_iter().map(String::from).collect();
    if chosen.is_empty() {
        let mut splits: Vec<&str> = ["train", "test", "validation", "valid", "val", "dev"]
            .into_iter()
            .filter(|s| in_config.iter().any(|f| path_has_split(f, s)))
            .collect();
        splits.dedup();
        return Err(SourceError::Hub(format!(
            "dataset {repo} has no split {split}{}; splits: {}",
            config.map(|c| format!(" in config {c}")).unwrap_or_default(),
            splits.join(", ")
        )));
    }
    chosen.sort();
    Ok(chosen)
}

/// The HF cache root: `$HF_HUB_CACHE`, else `$HF_HOME/hub`, else `~/.cache/huggingface/hub`.
pub fn cache_dir() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("HF_HUB_CACHE") {
        return Some(PathBuf::from(p));
    }
    if let Some(p) = std::env::var_os("HF_HOME") {
        return Some(PathBuf::from(p).join("hub"));
    }
    directories::BaseDirs::new().map(|d| d.home_dir().join(".cache").join("huggingface").join("hub"))
}

/// Files (relative paths) of every snapshot of a dataset repo in the local cache, and the snapshot dirs.
fn cached_files(cache: &Path, repo: &str) -> Vec<(String, PathBuf)> {
    let repo_dir = cache.join(format!("datasets--{}", repo.replace('/', "--")));
    let mut out = Vec::new();
    let Ok(snapshots) = super::list_dir(&repo_dir.join("snapshots")) else { return out };
    for snap in snapshots {
        let mut files = Vec::new();
        walk(&snap, &mut files);
        for f in files {
            out.push((super::relative_name(&snap, &f), f));
        }
    }
    out
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    if let Ok(entries) = super::list_dir(dir) {
        for p in entries {
            if p.is_dir() {
                walk(&p, out);
            } else {
                out.push(p);
            }
        }
    }
}

/// Opens `NAME[:CONFIG]`'s split as a parquet source, from the local HF cache.
pub fn open(spec: &str, opts: &OpenOptions) -> Result<ParquetSource> {
    let cache =
        cache_dir().ok_or_else(|| SourceError::Hub("no home directory for the HF cache: set HF_HOME".into()))?;
    open_cached(&cache, spec, opts)
}

/// Opens `NAME[:CONFIG]`'s split from the HF cache directory `cache` (the `hub` folder).
pub fn open_cached(cache: &Path, spec: &str, opts: &OpenOptions) -> Result<ParquetSource> {
    let (repo, config) = parse_spec(spec);
    let split = opts.split.as_deref().unwrap_or("train");
    let cached = cached_files(cache, repo);
    if cached.is_empty() {
        return Err(SourceError::Hub(format!(
            "dataset {repo} is not in the HF cache {} and this build cannot download it: \
             fetch it with `huggingface-cli download --repo-type dataset {repo}` (or its parquet branch \
             `--revision refs/convert/parquet`), or pass the parquet files' directory as SOURCE",
            cache.display()
        )));
    }
    let mut names: Vec<String> = cached.iter().map(|(rel, _)| rel.clone()).collect();
    names.sort();
    names.dedup();
    let chosen = split_files(repo, &names, config, split)?;
    let paths: Vec<PathBuf> =
        chosen.iter().filter_map(|c| cached.iter().find(|(rel, _)| rel == c).map(|(_, p)| p.clone())).collect();
    ParquetSource::from_files(Path::new(repo), paths, opts)
}
