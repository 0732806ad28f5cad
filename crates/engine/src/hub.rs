//! Hugging Face hub repositories in the standard local cache (`$HF_HUB_CACHE`, else `$HF_HOME/hub`, else
//! `~/.cache/huggingface/hub`, the layout Python's huggingface_hub uses), downloaded through hf-hub's blocking
//! API when missing. `HF_ENDPOINT` picks the server; with `HF_HUB_OFFLINE=1` the network is never contacted.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use hf_hub::api::sync::{ApiBuilder, ApiError};
use hf_hub::{Cache, Repo, RepoType};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RepoKind {
    Model,
    Dataset,
}

impl RepoKind {
    fn repo_type(self) -> RepoType {
        match self {
            RepoKind::Model => RepoType::Model,
            RepoKind::Dataset => RepoType::Dataset,
        }
    }

    fn word(self) -> &'static str {
        match self {
            RepoKind::Model => "model",
            RepoKind::Dataset => "dataset",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// `what` is "model org/name: file".
    #[error(
        "{what} is not in the Hugging Face cache ({cache}) and HF_HUB_OFFLINE is set: unset HF_HUB_OFFLINE to \
         download it, or copy the repository into the cache"
    )]
    NotCachedOffline { what: String, cache: String },
    #[error(
        "{what} was not found on {endpoint} (check the repository id, revision and file name; a private or gated \
         repository needs HF_TOKEN)"
    )]
    NotFound { what: String, endpoint: String },
    #[error(
        "cannot download {what} from {endpoint}: {detail}. Without network, set HF_HUB_OFFLINE=1 and put the \
         repository in the Hugging Face cache ({})",
        cache_dir().display()
    )]
    Download { what: String, endpoint: String, detail: String },
}

fn what(repo_id: &str, kind: RepoKind, file: &str) -> String {
    format!("{} {repo_id}: {file}", kind.word())
}

/// The hub cache directory, as huggingface_hub resolves it.
pub fn cache_dir() -> PathBuf {
    if let Some(p) = std::env::var_os("HF_HUB_CACHE").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    if let Some(p) = std::env::var_os("HF_HOME").filter(|p| !p.is_empty()) {
        return PathBuf::from(p).join("hub");
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
    let xdg = std::env::var_os("XDG_CACHE_HOME").filter(|p| !p.is_empty()).map(PathBuf::from);
    xdg.unwrap_or_else(|| home.join(".cache")).join("huggingface").join("hub")
}

/// `HF_HUB_OFFLINE` as huggingface_hub reads it (1, true, yes, on).
pub fn offline() -> bool {
    std::env::var("HF_HUB_OFFLINE")
        .map(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on"))
        .unwrap_or(false)
}

pub fn endpoint() -> String {
    std::env::var("HF_ENDPOINT")
        .ok()
        .filter(|e| !e.is_empty())
        .map(|e| e.trim_end_matches('/').to_string())
        .unwrap_or_else(|| "https://huggingface.co".into())
}

fn repo(repo_id: &str, kind: RepoKind, revision: Option<&str>) -> Repo {
    Repo::with_revision(repo_id.to_string(), kind.repo_type(), revision.unwrap_or("main").to_string())
}

/// The snapshot directory of `revision` in the cache (a branch or tag through `refs/`, or a commit hash), if any.
fn cached_snapshot(repo_id: &str, kind: RepoKind, revision: Option<&str>) -> Option<PathBuf> {
    let folder = cache_dir().join(repo(repo_id, kind, revision).folder_name());
    let revision = revision.unwrap_or("main");
    let commit = std::fs::read_to_string(folder.join("refs").join(revision))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| revision.to_string());
    let dir = folder.join("snapshots").join(commit);
    dir.is_dir().then_some(dir)
}

/// Local paths of `files` of a hub repository: from the cache when there, else downloaded into it.
pub fn snapshot_files(
    repo_id: &str,
    kind: RepoKind,
    revision: Option<&str>,
    files: &[&str],
) -> Result<Vec<PathBuf>, HubError> {
    let snapshot = cached_snapshot(repo_id, kind, revision);
    let mut out = Vec::with_capacity(files.len());
    for &file in files {
        if let Some(p) = snapshot.as_ref().map(|d| d.join(file)).filter(|p| p.is_file()) {
            out.push(p);
            continue;
        }
        if offline() {
            return Err(HubError::NotCachedOffline {
                what: what(repo_id, kind, file),
                cache: cache_dir().display().to_string(),
            });
        }
        out.push(download(repo_id, kind, revision, file)?);
    }
    Ok(out)
}

/// Whether `file` exists in the repository: in the cached snapshot, or (online) in the repository's file list.
pub fn has_file(repo_id: &str, kind: RepoKind, revision: Option<&str>, file: &str) -> Result<bool, HubError> {
    if cached_snapshot(repo_id, kind, revision).is_some_and(|d| d.join(file).is_file()) {
        return Ok(true);
    }
    Ok(list_files(repo_id, kind, revision)?.iter().any(|f| f == file))
}

/// Files of a repository (paths relative to its root). Online: the hub's file list; offline: the cached snapshot.
pub fn list_files(repo_id: &str, kind: RepoKind, revision: Option<&str>) -> Result<Vec<String>, HubError> {
    if offline() {
        let Some(dir) = cached_snapshot(repo_id, kind, revision) else {
            return Err(HubError::NotCachedOffline {
                what: what(repo_id, kind, "(any file)"),
                cache: cache_dir().display().to_string(),
            });
        };
        let mut files = vec![];
        walk(&dir, &dir, &mut files);
        files.sort();
        return Ok(files);
    }
    let api = api().map_err(|e| download_error(repo_id, kind, "(file list)", e))?;
    let info =
        api.repo(repo(repo_id, kind, revision)).info().map_err(|e| download_error(repo_id, kind, "(file list)", e))?;
    let mut files: Vec<String> = info.siblings.into_iter().map(|s| s.rfilename).collect();
    files.sort();
    Ok(files)
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(root, &p, out);
        } else if let Ok(rel) = p.strip_prefix(root) {
            out.push(rel.to_string_lossy().into_owned());
        }
    }
}

fn api() -> Result<hf_hub::api::sync::Api, ApiError> {
    let mut builder = ApiBuilder::from_cache(Cache::new(cache_dir()))
        .with_endpoint(endpoint())
        .with_progress(std::io::stderr().is_terminal());
    if let Ok(token) = std::env::var("HF_TOKEN")
        && !token.is_empty()
    {
        builder = builder.with_token(Some(token));
    }
    builder.build()
}

fn download(repo_id: &str, kind: RepoKind, revision: Option<&str>, file: &str) -> Result<PathBuf, HubError> {
    let api = api().map_err(|e| download_error(repo_id, kind, file, e))?;
    api.repo(repo(repo_id, kind, revision)).download(file).map_err(|e| download_error(repo_id, kind, file, e))
}

fn download_error(repo_id: &str, kind: RepoKind, file: &str, e: ApiError) -> HubError {
    if let ApiError::RequestError(err) = &e
        && let ureq::Error::Status(404 | 401, _) = err.as_ref()
    {
        // The hub answers 401 for a repository that does not exist when no token is sent.
        return HubError::NotFound { what: what(repo_id, kind, file), endpoint: endpoint() };
    }
    HubError::Download { what: what(repo_id, kind, file), endpoint: endpoint(), detail: e.to_string() }
}
