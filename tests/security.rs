//! Security (issue 7), through the CLI as a user runs it: pickle weights are refused without ever being opened
//! (inotify watches the file), and the Hugging Face hub is contacted only for a hub id and never with
//! HF_HUB_OFFLINE=1 (HF_ENDPOINT points at a local listener that counts connections).

use crate::common;

use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// 10 real MNIST digits: the models are loaded (and refused) after the dataset opens.
fn digits() -> String {
    root().join("crates/engine/src/demo/assets/mnist-digits-images-idx3-ubyte.gz").to_string_lossy().into_owned()
}

/// An endpoint where nothing listens (a port bound, then released): a request that should never be made fails
/// there instead of reaching the real hub.
fn dead_endpoint() -> String {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    format!("http://127.0.0.1:{port}")
}

/// `torchlight ingest DIGITS --store STORE --limit 10 EXTRA...` with a clean hub environment plus `env`. The hub
/// endpoint is a dead local port unless `env` gives one.
fn ingest(store: &Path, hf_home: &Path, extra: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(common::bin::torchlight());
    cmd.args(["ingest", &digits(), "--store", store.to_str().unwrap(), "--limit", "10", "--device", "cpu"])
        .args(extra)
        .env_remove("TORCHLIGHT_STORE")
        .env_remove("HF_HUB_OFFLINE")
        .env("HF_ENDPOINT", dead_endpoint())
        .env_remove("HF_HUB_CACHE")
        .env_remove("HF_TOKEN")
        .env("HF_HOME", hf_home);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// Watches files for opens and reads (inotify); `events` says whether anything opened or read one since.
struct OpenWatch {
    fd: i32,
}

impl OpenWatch {
    fn new(paths: &[&Path]) -> OpenWatch {
        // SAFETY: plain syscalls on a descriptor this struct owns; paths are NUL-terminated C strings.
        let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        assert!(fd >= 0, "inotify_init1: {}", std::io::Error::last_os_error());
        for p in paths {
            let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
            let wd = unsafe { libc::inotify_add_watch(fd, c.as_ptr(), libc::IN_OPEN | libc::IN_ACCESS) };
            assert!(wd >= 0, "inotify_add_watch {}: {}", p.display(), std::io::Error::last_os_error());
        }
        OpenWatch { fd }
    }

    /// Number of open/read events queued since the last call.
    fn events(&self) -> usize {
        let mut n = 0;
        let mut buf = [0u8; 4096];
        loop {
            // SAFETY: buf is writable for its length.
            let r = unsafe { libc::read(self.fd, buf.as_mut_ptr().cast(), buf.len()) };
            if r <= 0 {
                return n;
            }
            // Each event is a 16-byte header plus its name length.
            let mut off = 0usize;
            while off + 16 <= r as usize {
                let len = u32::from_ne_bytes(buf[off + 12..off + 16].try_into().unwrap()) as usize;
                n += 1;
                off += 16 + len;
            }
        }
    }
}

impl Drop for OpenWatch {
    fn drop(&mut self) {
        // SAFETY: fd is ours and closed once.
        unsafe { libc::close(self.fd) };
    }
}

/// A Hugging Face model directory as `transformers` 4.x used to save it: config and preprocessing, weights only as
/// a pickle (`pytorch_model.bin`). The pickle is a real one whose loading would run `os.system`.
fn pickle_only_model(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let vit = root().join("crates/engine/tests/fixtures/models/hf/vit_bare");
    for f in ["config.json", "preprocessor_config.json"] {
        std::fs::copy(vit.join(f), dir.join(f)).unwrap();
    }
    let marker = dir.join("pwned");
    // pickle protocol 2: GLOBAL os.system, (command,), REDUCE, STOP.
    let cmd = format!("touch {}", marker.display());
    let mut p = b"\x80\x02cos\nsystem\nX".to_vec();
    p.extend_from_slice(&(cmd.len() as u32).to_le_bytes());
    p.extend_from_slice(cmd.as_bytes());
    p.extend_from_slice(b"\x85R.");
    let bin = dir.join("pytorch_model.bin");
    std::fs::write(&bin, p).unwrap();
    bin
}

#[test]
fn pickle_weights_are_refused_without_being_opened() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("vit-pickle");
    let bin = pickle_only_model(&model);
    let store = tmp.path().join("store");
    let watch = OpenWatch::new(&[&bin]);

    // The directory as --foundation: refused, with the file named and the way out.
    let out = ingest(&store, tmp.path(), &["--foundation", model.to_str().unwrap()], &[]);
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(1), "{msg}");
    assert!(msg.contains("pytorch_model.bin") && msg.contains("pickle") && msg.contains("safetensors"), "{msg}");
    // The pickle file itself as a model (a TorchScript module is a .pt): refused as well.
    let out = ingest(&store, tmp.path(), &["--model", &format!("m={}", bin.display())], &[]);
    let msg2 = text(&out);
    assert_eq!(out.status.code(), Some(1), "{msg2}");
    assert!(msg2.contains("pytorch_model.bin") && msg2.contains(".pt"), "{msg2}");

    assert_eq!(watch.events(), 0, "pytorch_model.bin was opened or read");
    assert!(!model.join("pwned").exists(), "the pickle ran");
    assert!(!store.join("data.mdb").exists(), "a refused model must not leave a store behind");
    // The watch works: opening the file ourselves shows up.
    let read = std::fs::File::open(&bin).unwrap().read(&mut [0u8; 4]).unwrap();
    assert_eq!(read, 4);
    assert!(watch.events() > 0, "inotify saw no open: the check above proves nothing");
}

/// Counts TCP connections to 127.0.0.1:PORT; each is closed at once (a client sees a reset, not a hang).
struct Listener {
    addr: String,
    connections: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Listener {
    fn start() -> Listener {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        let addr = format!("http://{}", l.local_addr().unwrap());
        let connections = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (c, s) = (connections.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                match l.accept() {
                    Ok((conn, _)) => {
                        c.fetch_add(1, Ordering::SeqCst);
                        drop(conn);
                    }
                    Err(_) => std::thread::sleep(std::time::Duration::from_millis(5)),
                }
            }
        });
        Listener { addr, connections, stop, thread: Some(thread) }
    }

    fn count(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[test]
fn the_hub_is_contacted_only_for_a_hub_id_and_never_offline() {
    let tmp = tempfile::tempdir().unwrap();
    let hf_home = tmp.path().join("hf");
    let listener = Listener::start();
    let endpoint = [("HF_ENDPOINT", listener.addr.as_str())];
    let offline = [("HF_ENDPOINT", listener.addr.as_str()), ("HF_HUB_OFFLINE", "1")];
    let store = tmp.path().join("store");

    // Offline, a model that is not in the cache: a clear error naming it, the cache and HF_HUB_OFFLINE; no connection.
    let out = ingest(&store, &hf_home, &["--foundation", "tiny-org/not-cached"], &offline);
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(1), "{msg}");
    assert!(msg.contains("tiny-org/not-cached") && msg.contains("HF_HUB_OFFLINE"), "{msg}");
    assert!(msg.contains(hf_home.to_str().unwrap()), "the cache is not named: {msg}");
    // Offline, a dataset that is not in the cache: the same.
    let out = Command::new(common::bin::torchlight())
        .args(["ingest", "hf:tiny-org/no-such-dataset", "--store", store.to_str().unwrap()])
        .env("HF_HOME", &hf_home)
        .env("HF_ENDPOINT", &listener.addr)
        .env("HF_HUB_OFFLINE", "1")
        .env_remove("HF_HUB_CACHE")
        .env_remove("TORCHLIGHT_STORE")
        .output()
        .unwrap();
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(1), "{msg}");
    assert!(msg.contains("tiny-org/no-such-dataset") && msg.contains("HF_HUB_OFFLINE"), "{msg}");
    // Online, names that are not hub ids (a missing local directory, a missing .pt): not found, no connection.
    for local in ["./models/vit-missing", "/nonexistent/vit", "missing-model.pt"] {
        let out = ingest(&store, &hf_home, &["--foundation", local], &endpoint);
        let msg = text(&out);
        assert_eq!(out.status.code(), Some(1), "{local}: {msg}");
        assert!(msg.contains(local) && msg.contains("not found"), "{local}: {msg}");
    }
    assert_eq!(listener.count(), 0, "the hub was contacted offline or for a local path");
    assert!(!store.join("data.mdb").exists());

    // The listener does see the hub client: online, the same hub id connects (and fails to download).
    let out = ingest(&store, &hf_home, &["--foundation", "tiny-org/not-cached"], &endpoint);
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(1), "{msg}");
    assert!(listener.count() > 0, "no connection online: the zero above proves nothing\n{msg}");
}
