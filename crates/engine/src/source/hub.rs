//! `hf:NAME[:CONFIG]` datasets: the split's parquet files from the Hugging Face hub, then read as parquet.
//! Which files: the repository's file list narrowed to CONFIG and `--split`, in the layouts the hub uses:
//! `data/train-00000-of-00001.parquet` (datasets' push_to_hub), `CONFIG/train-*.parquet`, and the
//! parquet conversion branch's `CONFIG/train/0000.parquet` or `CONFIG/NAME-train.parquet`.

use std::path::Path;

use super::parquet::{ParquetSource, path_has_split, select_split};
use super::{OpenOptions, Result, SourceError};
use crate::hub::{self, RepoKind};

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
        return Err(SourceError::HubNoParquet(format!(
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

/// The hub's parquet conversion of datasets stored in other formats (scripts, images, JSON).
const PARQUET_REVISION: &str = "refs/convert/parquet";

/// Opens `NAME[:CONFIG]`'s split as a parquet source: the repository's parquet files on `main`, else those of its
/// parquet conversion branch; from the HF cache, downloaded into it when missing (never with HF_HUB_OFFLINE=1).
pub fn open(spec: &str, opts: &OpenOptions) -> Result<ParquetSource> {
    let (repo, config) = parse_spec(spec);
    let split = opts.split.as_deref().unwrap_or("train");
    let mut first_err = None;
    for revision in [None, Some(PARQUET_REVISION)] {
        let chosen = hub::list_files(repo, RepoKind::Dataset, revision)
            .map_err(SourceError::from)
            .and_then(|files| split_files(repo, &files, config, split));
        match chosen {
            Ok(chosen) => {
                let names: Vec<&str> = chosen.iter().map(String::as_str).collect();
                let paths = hub::snapshot_files(repo, RepoKind::Dataset, revision, &names)?;
                return ParquetSource::from_files(Path::new(repo), paths, opts);
            }
            // A config or split that is missing from parquet files on main is final; no parquet at all, or main
            // not in an offline cache, may still be served by the conversion branch.
            Err(e) if revision.is_none() && is_worth_retrying(&e) => first_err = Some(e),
            // When the conversion branch is merely absent too, main's error says more.
            Err(e) => return Err(first_err.filter(|_| is_absent(&e)).unwrap_or(e)),
        }
    }
    unreachable!("the second revision always returns")
}

fn is_worth_retrying(e: &SourceError) -> bool {
    matches!(e, SourceError::HubNoParquet(_)) || is_absent(e)
}

fn is_absent(e: &SourceError) -> bool {
    matches!(e, SourceError::HubRepo(hub::HubError::NotCachedOffline { .. } | hub::HubError::NotFound { .. }))
}
