//! The hub path end to end against a local server in the hub's URL layout: download a model by id into a fresh
//! HF cache, load it again offline with the server gone, and clear errors for what is not cached.
//! Environment variables are process-wide, so everything runs in one test of its own binary.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use torchlight_engine::hub::{self, RepoKind};
use torchlight_engine::model::{Embedder, ModelOptions};
use torchlight_engine::source::{self, OpenOptions};

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

/// repo url part ("org/name" or "datasets/org/name", with "@REVISION" for a revision other than main)
/// -> files (path, bytes).
type Repos = HashMap<String, Vec<(String, Vec<u8>)>>;

struct Server {
    addr: String,
    stop: Arc<AtomicBool>,
    requests: Arc<Mutex<Vec<String>>>,
    served: Arc<AtomicUsize>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    fn start(repos: Repos) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = format!("http://{}", listener.local_addr().unwrap());
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(Mutex::new(vec![]));
        let served = Arc::new(AtomicUsize::new(0));
        let (s, r, n) = (stop.clone(), requests.clone(), served.clone());
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(conn) = conn {
                    n.fetch_add(1, Ordering::SeqCst);
                    handle(conn, &repos, &r);
                }
            }
        });
        Server { addr, stop, requests, served, thread: Some(thread) }
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr.trim_start_matches("http://"));
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

/// Answers like the hub: `GET /api/{models|datasets}/ID/revision/REV` (file list) and
/// `GET [/datasets]/ID/resolve/REV/FILE` with Range support, `etag` and `x-repo-commit` headers.
fn handle(mut conn: TcpStream, repos: &Repos, log: &Mutex<Vec<String>>) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
    log.lock().unwrap().push(format!("{} {}", line.split_whitespace().next().unwrap_or(""), path));
    let respond = |conn: &mut TcpStream, status: &str, extra: &[(String, String)], body: &[u8]| {
        let mut head = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n", body.len());
        for (k, v) in extra {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        let _ = conn.write_all(head.as_bytes());
        let _ = conn.write_all(body);
    };
    if let Some(rest) = path.strip_prefix("/api/") {
        let (kind, rest) = rest.split_once('/').unwrap_or(("", ""));
        let (id, revision) = rest.split_once("/revision/").unwrap_or((rest, "main"));
        let key = if kind == "datasets" { format!("datasets/{id}") } else { id.to_string() };
        return match lookup(repos, &key, revision) {
            Some(files) => {
                let siblings: Vec<_> = files.iter().map(|(f, _)| serde_json::json!({"rfilename": f})).collect();
                let body = serde_json::json!({"id": id, "sha": COMMIT, "siblings": siblings}).to_string();
                respond(&mut conn, "200 OK", &[("Content-Type".into(), "application/json".into())], body.as_bytes())
            }
            None => respond(&mut conn, "404 Not Found", &[], b"{\"error\":\"Repository not found\"}"),
        };
    }
    let found = path.split_once("/resolve/").and_then(|(repo, rest)| {
        let (revision, file) = rest.split_once('/')?;
        lookup(repos, repo.trim_start_matches('/'), revision)?.iter().find(|(f, _)| f == file)
    });
    let Some((file, bytes)) = found else {
        return respond(&mut conn, "404 Not Found", &[("X-Error-Code".into(), "EntryNotFound".into())], b"");
    };
    let start: usize = headers
        .get("range")
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.split('-').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let end = match headers.get("range").and_then(|r| r.split('-').nth(1)).and_then(|s| s.parse::<usize>().ok()) {
        Some(e) => e.min(bytes.len() - 1),
        None => bytes.len() - 1,
    };
    let etag = format!("\"{:016x}{}\"", bytes.len(), file.len());
    let extra = vec![
        ("ETag".to_string(), etag),
        ("X-Repo-Commit".to_string(), COMMIT.to_string()),
        ("Content-Range".to_string(), format!("bytes {start}-{end}/{}", bytes.len())),
    ];
    respond(&mut conn, "206 Partial Content", &extra, &bytes[start..=end]);
}

/// A repository's files at a revision (URL-encoded, as clients send `refs%2Fconvert%2Fparquet`).
fn lookup<'r>(repos: &'r Repos, key: &str, revision: &str) -> Option<&'r Vec<(String, Vec<u8>)>> {
    match revision.replace("%2F", "/").as_str() {
        "main" => repos.get(key),
        other => repos.get(&format!("{key}@{other}")),
    }
}

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/models").join(rel)
}

fn set(key: &str, value: Option<&str>) {
    // SAFETY: this binary has a single test, so no other thread reads the environment meanwhile.
    unsafe {
        match value {
            Some(v) => std::env::set_var(key, v),
            None => std::env::remove_var(key),
        }
    }
}

#[test]
fn download_into_cache_then_offline_reuse() {
    let model_files: Vec<(String, Vec<u8>)> = ["config.json", "preprocessor_config.json", "model.safetensors"]
        .iter()
        .map(|f| (f.to_string(), std::fs::read(fixture("hf/vit_cls_nonsquare").join(f)).unwrap()))
        .collect();
    // A tiny ImageFolder-style parquet (8 images, ClassLabel names cat/dog/bird).
    let parquet =
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sources/tiny.parquet")).unwrap();
    let file = |name: &str, bytes: &[u8]| (name.to_string(), bytes.to_vec());
    let mut repos = Repos::new();
    repos.insert("tiny-org/vit-tiny".into(), model_files);
    repos.insert(
        "datasets/tiny-org/pictures".into(),
        vec![
            file("README.md", b"# tiny"),
            file("data/test-00000-of-00001.parquet", &parquet),
            file("data/train-00000-of-00001.parquet", &parquet),
        ],
    );
    // A dataset stored as a loading script: the hub serves its parquet conversion on refs/convert/parquet.
    repos.insert("datasets/tiny-org/scripted".into(), vec![file("README.md", b"# s"), file("scripted.py", b"")]);
    repos.insert(
        "datasets/tiny-org/scripted@refs/convert/parquet".into(),
        vec![file("default/train/0000.parquet", &parquet)],
    );
    let mut server = Server::start(repos);
    let home = tempfile::tempdir().unwrap();
    set("HF_HOME", Some(home.path().to_str().unwrap()));
    set("HF_HUB_CACHE", None);
    set("HF_TOKEN", None);
    set("HF_HUB_OFFLINE", None);
    set("HF_ENDPOINT", Some(&server.addr));

    // Online: downloaded into the standard cache layout.
    let online = Embedder::load("tiny-org/vit-tiny", &ModelOptions::default()).unwrap();
    assert_eq!((online.dim(), online.num_classes()), (24, 5));
    let snapshot = home.path().join("hub/models--tiny-org--vit-tiny/snapshots").join(COMMIT);
    for f in ["config.json", "preprocessor_config.json", "model.safetensors"] {
        assert!(snapshot.join(f).is_file(), "{f} not in the cache");
    }
    assert_eq!(std::fs::read_to_string(home.path().join("hub/models--tiny-org--vit-tiny/refs/main")).unwrap(), COMMIT);
    let log = server.requests.lock().unwrap().clone();
    assert!(log.iter().any(|l| l == "GET /tiny-org/vit-tiny/resolve/main/model.safetensors"), "{log:?}");

    // Datasets: file list from the API, files into datasets--*.
    let files = hub::list_files("tiny-org/pictures", RepoKind::Dataset, None).unwrap();
    assert_eq!(files, ["README.md", "data/test-00000-of-00001.parquet", "data/train-00000-of-00001.parquet"]);

    // `hf:NAME` as an ingest source: only the split's parquet file is downloaded, into datasets--*.
    let test_split = OpenOptions { split: Some("test".into()), ..OpenOptions::default() };
    let src = source::open("hf:tiny-org/pictures", &test_split).unwrap();
    assert_eq!(src.info().len, 8);
    assert_eq!(src.info().label_names, vec!["cat", "dog", "bird"]);
    let first = src.records(0).unwrap().next().unwrap().unwrap();
    assert!(first.source.contains("test-00000-of-00001.parquet#row=0"), "{}", first.source);
    let data_snapshot = home.path().join("hub/datasets--tiny-org--pictures/snapshots").join(COMMIT);
    assert_eq!(std::fs::read(data_snapshot.join("data/test-00000-of-00001.parquet")).unwrap(), parquet);
    assert!(!data_snapshot.join("data/train-00000-of-00001.parquet").exists(), "the train split was fetched too");
    // No parquet on main: the parquet conversion branch, cached under its own ref.
    let src = source::open("hf:tiny-org/scripted", &OpenOptions::default()).unwrap();
    assert_eq!(src.info().len, 8);
    let converted = home.path().join("hub/datasets--tiny-org--scripted");
    assert_eq!(std::fs::read_to_string(converted.join("refs/refs/convert/parquet")).unwrap(), COMMIT);
    // What is not there: named, with what there is.
    let err = source::open(
        "hf:tiny-org/pictures",
        &OpenOptions { split: Some("validation".into()), ..OpenOptions::default() },
    )
    .err()
    .unwrap()
    .to_string();
    assert!(err.contains("no split validation") && err.contains("splits: train, test"), "{err}");
    let err = source::open("hf:tiny-org/no-such-data", &OpenOptions::default()).err().unwrap().to_string();
    assert!(err.contains("tiny-org/no-such-data") && err.contains("not found"), "{err}");

    // Unknown repository online: not found, by name.
    let err = Embedder::load("tiny-org/nothing-here", &ModelOptions::default()).err().unwrap().to_string();
    assert!(err.contains("tiny-org/nothing-here") && err.contains("not found"), "{err}");

    // Offline with the server gone: the same model from the cache, same weights.
    server.shutdown();
    let served = server.served.load(Ordering::SeqCst);
    set("HF_HUB_OFFLINE", Some("1"));
    let offline = Embedder::load("tiny-org/vit-tiny", &ModelOptions::default()).unwrap();
    assert_eq!(offline.spec().fingerprint, online.spec().fingerprint);
    assert_eq!(offline.class_names(), online.class_names());
    let cached = hub::list_files("tiny-org/pictures", RepoKind::Dataset, None).unwrap();
    assert_eq!(cached, ["data/test-00000-of-00001.parquet"]);
    // The same splits offline, from the cache; the conversion branch too; a missing one by name.
    assert_eq!(source::open("hf:tiny-org/pictures", &test_split).unwrap().info().len, 8);
    assert_eq!(source::open("hf:tiny-org/scripted", &OpenOptions::default()).unwrap().info().len, 8);
    let err = source::open("hf:tiny-org/absent", &OpenOptions::default()).err().unwrap().to_string();
    assert!(err.contains("tiny-org/absent") && err.contains("HF_HUB_OFFLINE"), "{err}");

    // Offline and not cached: a clear error naming the repository, the file and the cache.
    let err = Embedder::load("google/vit-base-patch16-224-in21k", &ModelOptions::default()).err().unwrap().to_string();
    assert!(
        err.contains("google/vit-base-patch16-224-in21k")
            && err.contains("config.json")
            && err.contains("HF_HUB_OFFLINE"),
        "{err}"
    );
    assert!(err.contains(home.path().to_str().unwrap()), "{err}");

    // Online but the server unreachable: a download error that says how to work offline.
    set("HF_HUB_OFFLINE", None);
    let err = Embedder::load("tiny-org/other", &ModelOptions::default()).err().unwrap().to_string();
    assert!(err.contains("cannot download") && err.contains("HF_HUB_OFFLINE=1"), "{err}");
    assert_eq!(server.served.load(Ordering::SeqCst), served);
}

/// An ImageFolder of `per_class` crops of each fixture photo, one class per photo.
fn image_folder(dir: &Path, per_class: u32) {
    for (class, photo) in [("china", "china_96x64.png"), ("flower", "flower_50x70.png")] {
        let img = image::open(fixture("images").join(photo)).unwrap();
        std::fs::create_dir_all(dir.join(class)).unwrap();
        for i in 0..per_class {
            let (x, y) = ((i * 7) % (img.width() - 32), (i * 5) % (img.height() - 32));
            img.crop_imm(x, y, 32, 32).save(dir.join(class).join(format!("{i:02}.png"))).unwrap();
        }
    }
}

/// A foundation model by hub id through `ingest`, end to end: a whole CLIPModel (text tower included) served in
/// the hub's layout, downloaded into a fresh cache, its vision tower embedding an ImageFolder, then the analysis
/// on its space. The environment goes to the child process only, so this runs beside the test above.
#[test]
fn foundation_model_by_hub_id_through_ingest_and_analysis() {
    let repo: Vec<(String, Vec<u8>)> = ["config.json", "preprocessor_config.json", "model.safetensors"]
        .iter()
        .map(|f| (f.to_string(), std::fs::read(fixture("hf/clip_full").join(f)).unwrap()))
        .collect();
    let mut server = Server::start(Repos::from([("tiny-org/clip-tiny".to_string(), repo)]));
    let tmp = tempfile::tempdir().unwrap();
    let (data, store_dir, home) = (tmp.path().join("data"), tmp.path().join("store"), tmp.path().join("hf"));
    image_folder(&data, 20);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_torchlight-engine"))
        .args(["ingest", data.to_str().unwrap(), "--store", store_dir.to_str().unwrap()])
        .args(["--foundation", "tiny-org/clip-tiny", "--device", "cpu"])
        .env("HF_HOME", &home)
        .env("HF_ENDPOINT", &server.addr)
        .env_remove("HF_HUB_CACHE")
        .env_remove("HF_TOKEN")
        .env_remove("HF_HUB_OFFLINE")
        .env_remove("TORCHLIGHT_STORE")
        .output()
        .unwrap();
    server.shutdown();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}\n{stderr}", String::from_utf8_lossy(&out.stdout));
    let log = server.requests.lock().unwrap().clone();
    assert!(log.iter().any(|l| l == "GET /tiny-org/clip-tiny/resolve/main/model.safetensors"), "{log:?}");
    assert!(home.join("hub/models--tiny-org--clip-tiny/snapshots").join(COMMIT).join("model.safetensors").is_file());

    let store = torchlight_store::Store::open(&store_dir).unwrap();
    let rtxn = store.read_txn().unwrap();
    assert_eq!(store.item_count(&rtxn).unwrap(), 40);
    let space = store.space(&rtxn, "foundation").unwrap().unwrap();
    // CLIP's image_embeds: the projection's 16 dimensions, not the tower's 24.
    assert_eq!((space.dim, space.model.kind.as_str(), space.model.source.as_str()), (16, "clip", "tiny-org/clip-tiny"));
    assert_eq!((space.model.pooling.as_str(), space.model.image_size), ("cls", 24));
    let embedding = store.embedding(&rtxn, space.index, 0).unwrap().unwrap();
    assert!(embedding.len() == 16 && embedding.iter().all(|v| v.is_finite()) && embedding.iter().any(|&v| v != 0.0));
    use torchlight_store::columns;
    for column in [columns::OUTLIER_SCORE, columns::NN_ID, columns::PCA] {
        let col = store.column(&rtxn, "foundation", column).unwrap();
        assert_eq!(col.unwrap_or_else(|| panic!("no {column} column: {stderr}")).rows(), 40, "{column}");
    }
}
