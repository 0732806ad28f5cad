//! Store safety on hostile file systems: a full disk and a read-only mount, each on a tmpfs of its own (mounted
//! as root, or inside a user + mount namespace where a plain container may not mount).

use std::path::Path;
use std::process::Command;

use torchlight_store::{Item, Store, StoreError, Tag, TagKind};

/// Set in the child this test binary starts inside a user + mount namespace.
const IN_NAMESPACE: &str = "TORCHLIGHT_TEST_IN_MOUNT_NAMESPACE";

struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn try_mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(Tmpfs { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn remount_read_only(&self) {
        let ok = Command::new("mount").args(["-o", "remount,ro"]).arg(self.path()).status().unwrap().success();
        assert!(ok, "remount read-only failed");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.dir.path()).status();
    }
}

/// Runs `body` on a fresh tmpfs of `size`: mounted here when this process may mount (root), else in a child of
/// this test binary inside a user + mount namespace (`unshare --user --map-root-user --mount`), where an
/// unprivileged process may mount a tmpfs. Where neither works the test says so loudly, and fails under CI=true.
fn with_tmpfs(test: &str, size: &str, body: impl FnOnce(&Tmpfs)) {
    // One at a time: a process another test spawns holds copies of this one's open files until it execs, so a
    // file just deleted here can keep its blocks a moment longer on a full disk.
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(fs) = Tmpfs::try_mount(size) {
        body(&fs);
        if std::env::var_os(IN_NAMESPACE).is_some() {
            println!("ran {test} on a tmpfs in a user + mount namespace");
        }
        return;
    }
    assert!(std::env::var_os(IN_NAMESPACE).is_none(), "{test}: cannot mount a tmpfs even inside the namespace");
    let child = Command::new("unshare")
        .args(["--user", "--map-root-user", "--mount"])
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--test-threads", "1"])
        .env(IN_NAMESPACE, "1")
        .output();
    match child {
        // The test binary started inside the namespace: its result is the test's.
        Ok(out) if String::from_utf8_lossy(&out.stdout).contains("running 1 test") => {
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(out.status.success(), "{test} in a namespace:\n{stdout}{}", String::from_utf8_lossy(&out.stderr));
            assert!(
                stdout.contains(&format!("ran {test} on a tmpfs")),
                "{test} did not run in the namespace:\n{stdout}"
            );
        }
        other => {
            let why = match other {
                Ok(out) => String::from_utf8_lossy(&out.stderr).into_owned(),
                Err(e) => e.to_string(),
            };
            let msg = format!("{test} NOT RUN: no tmpfs could be mounted, as root or in a user namespace ({why})");
            assert!(std::env::var("CI").as_deref() != Ok("true"), "{msg}");
            eprintln!("{msg}");
        }
    }
}

fn item(id: u32) -> Item {
    Item { source: format!("image-{id}.png"), label: Some(id % 10), width: 28, height: 28, hash: id as u64 }
}

#[test]
fn full_disk_fails_the_commit_and_keeps_what_was_committed() {
    with_tmpfs("full_disk_fails_the_commit_and_keeps_what_was_committed", "2m", full_disk);
}

fn full_disk(fs: &Tmpfs) {
    let dir = fs.path().join("store");
    let store = Store::create_or_open(&dir).unwrap();
    let mut committed = 0u32;
    let mut failure = None;
    // Batches of 100 items with 4 KiB of embedding each: the 2 MiB disk fills within a few batches.
    'fill: for batch in 0..100u32 {
        let mut w = match store.write_txn() {
            Ok(w) => w,
            Err(e) => {
                failure = Some(e);
                break;
            }
        };
        for id in batch * 100..(batch + 1) * 100 {
            let res = store
                .put_item(&mut w, id, &item(id))
                .and_then(|()| store.put_embedding(&mut w, 0, id, &[id as f32; 1024]));
            if let Err(e) = res {
                failure = Some(e);
                break 'fill;
            }
        }
        match store.commit(w) {
            Ok(()) => committed = (batch + 1) * 100,
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    let err = failure.expect("a 2 MiB disk must fill up");
    assert!(err.to_string().contains(&dir.display().to_string()), "error names the store: {err}");
    assert!(committed > 0, "some batches fit before the disk filled");
    drop(store);
    // Reopen: everything committed before the failure is intact and readable.
    let store = Store::open(&dir).unwrap();
    let r = store.read_txn().unwrap();
    assert_eq!(store.item_count(&r).unwrap(), committed);
    assert_eq!(store.embedding_count(&r, 0).unwrap(), committed);
    assert_eq!(store.item(&r, committed - 1).unwrap().unwrap(), item(committed - 1));
    assert_eq!(store.embedding(&r, 0, 7).unwrap().unwrap()[1023], 7.0);
}

#[test]
fn read_only_mount_opens_for_reading_and_refuses_writes_clearly() {
    with_tmpfs("read_only_mount_opens_for_reading_and_refuses_writes_clearly", "8m", read_only_mount);
}

fn read_only_mount(fs: &Tmpfs) {
    let dir = fs.path().join("store");
    {
        let store = Store::create_or_open(&dir).unwrap();
        let mut w = store.write_txn().unwrap();
        for id in 0..10 {
            store.put_item(&mut w, id, &item(id)).unwrap();
        }
        store.put_tag(&mut w, 3, &Tag { kind: Some(TagKind::Outlier), ..Tag::default() }).unwrap();
        store.commit(w).unwrap();
    }
    fs.remount_read_only();
    let store = Store::open(&dir).expect("a read-only store opens for reading");
    assert!(store.is_read_only());
    let r = store.read_txn().unwrap();
    assert_eq!(store.item_count(&r).unwrap(), 10);
    assert_eq!(store.tags(&r).unwrap()[0].1.kind, Some(TagKind::Outlier));
    drop(r);
    let err = store.write_txn().map(|_| ()).unwrap_err();
    assert!(matches!(err, StoreError::ReadOnly(_)), "{err}");
    assert!(err.to_string().contains("read-only"), "{err}");
    assert!(matches!(store.lock_writer("ingest").unwrap_err(), StoreError::ReadOnly(_)));
}

/// A store of `n` items with a 256-d space, on the normal disk.
fn store_with_embeddings(dir: &Path, n: u32) -> Store {
    let store = Store::create_or_open(dir).unwrap();
    let mut w = store.write_txn().unwrap();
    let space = torchlight_store::SpaceInfo {
        name: "s".into(),
        index: 0,
        dim: 256,
        model: torchlight_store::ModelSpec {
            kind: "precomputed".into(),
            source: "test".into(),
            fingerprint: "t".into(),
            pooling: "none".into(),
            image_size: 0,
        },
        num_classes: 0,
        class_names: Vec::new(),
    };
    let space = store.put_space(&mut w, space).unwrap();
    for id in 0..n {
        store.put_item(&mut w, id, &item(id)).unwrap();
        let row: Vec<f32> = (0..256).map(|j| (id * 256 + j) as f32 * 0.001).collect();
        store.put_embedding(&mut w, space.index, id, &row).unwrap();
    }
    store.commit(w).unwrap();
    store
}

/// Every export format onto an existing file on a disk that fills up: the export fails with the disk's error,
/// the old file keeps its bytes, and no partial file is left beside it.
#[test]
fn an_export_that_fills_the_disk_leaves_the_old_file_whole() {
    with_tmpfs("an_export_that_fills_the_disk_leaves_the_old_file_whole", "256k", export_on_full_disk);
}

fn export_on_full_disk(fs: &Tmpfs) {
    use torchlight_store::export::{self, TableFormat};
    let home = tempfile::tempdir().unwrap();
    let store = store_with_embeddings(&home.path().join("store"), 2000);
    let old = b"id,previous\n0,kept\n".to_vec();
    for name in ["e.csv", "e.npy", "t.csv", "t.parquet", "t.jsonl"] {
        let out = fs.path().join(name);
        std::fs::write(&out, &old).unwrap();
        let err = if name.starts_with('e') {
            export::export_embeddings(&store, "s", &out).map(|_| ()).unwrap_err()
        } else {
            let table = export::build_table(&store, true).unwrap();
            export::write_table(&table, &out, TableFormat::from_path(&out).unwrap()).unwrap_err()
        };
        let msg = err.to_string();
        assert!(msg.contains(name) && msg.contains("No space left on device"), "{name}: {msg}");
        assert_eq!(std::fs::read(&out).unwrap(), old, "{name}: the old file changed");
        let left: Vec<_> = std::fs::read_dir(fs.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert!(left.iter().all(|f| !f.to_string_lossy().contains(".partial")), "{name}: partial file left: {left:?}");
    }
}

/// A transaction bigger than the free space (as an embedding import or an analysis writes): LMDB reports the
/// write the disk cut short as EIO; the store says the disk is full, and what was committed before stays.
#[test]
fn a_big_transaction_on_a_full_disk_says_no_space() {
    with_tmpfs("a_big_transaction_on_a_full_disk_says_no_space", "2m", big_transaction_on_full_disk);
}

fn big_transaction_on_full_disk(fs: &Tmpfs) {
    let dir = fs.path().join("store");
    let store = store_with_embeddings(&dir, 100);
    let mut w = store.write_txn().unwrap();
    let row = vec![0.25f32; 4096];
    let failed = (100..2000u32)
        .map(|id| store.put_embedding(&mut w, 0, id, &row))
        .find_map(Result::err)
        .or_else(|| store.commit(w).err())
        .expect("8 MB cannot fit on a 2 MB disk");
    assert!(matches!(failed, StoreError::DiskFull { .. }), "{failed:?}");
    let msg = failed.to_string();
    assert!(msg.contains("No space left on device") && msg.contains(&dir.display().to_string()), "{msg}");
    drop(store);
    let store = Store::open(&dir).unwrap();
    assert_eq!(store.embedding_count(&store.read_txn().unwrap(), 0).unwrap(), 100);
}
