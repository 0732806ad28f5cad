//! `torchlight merge` as a user runs it: in the binary without libtorch (also when handed over by the engine),
//! killed with SIGKILL mid-way and run again to the same store as a merge in one go, and refusing shards that
//! are not one split with the shard named and nothing written.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use torchlight_store::merge::split_range;
use torchlight_store::{DatasetInfo, Item, ModelSpec, ShardInfo, Skipped, SpaceInfo, Store, cursors};

fn torchlight() -> Command {
    let mut cmd = Command::new(common::bin::torchlight());
    cmd.env_remove("TORCHLIGHT_STORE");
    cmd
}

fn space(name: &str, dim: u32, classes: u32) -> SpaceInfo {
    SpaceInfo {
        name: name.into(),
        index: 0,
        dim,
        model: ModelSpec {
            kind: "torchscript".into(),
            source: format!("{name}.pt"),
            fingerprint: format!("w-{name}"),
            pooling: "model".into(),
            image_size: 28,
        },
        num_classes: classes,
        class_names: Vec::new(),
    }
}

/// Writes the `count` shard stores of `total` records in `root/shard-I`, as `ingest --shard` leaves them (every
/// 9th record skipped), in transactions of a few thousand items.
fn shards(root: &Path, count: u32, total: u64, batch: u64) -> Vec<PathBuf> {
    (0..count)
        .map(|index| {
            let (start, end) = split_range(total, batch, index, count);
            let dir = root.join(format!("shard-{index}"));
            let store = Store::create_or_open(&dir).unwrap();
            let mut w = store.write_txn().unwrap();
            let dataset =
                DatasetInfo { source: "data".into(), format: "idx".into(), fingerprint: "fp".into(), complete: true };
            store.put_dataset(&mut w, &dataset).unwrap();
            store.put_label_names(&mut w, &["even".into(), "odd".into()]).unwrap();
            let info = ShardInfo {
                index,
                count,
                start,
                end,
                total,
                source_len: total,
                batch_size: batch,
                fingerprint: "fp".into(),
            };
            store.put_shard(&mut w, &info).unwrap();
            let spaces = [
                store.put_space(&mut w, space("a", 32, 0)).unwrap(),
                store.put_space(&mut w, space("b", 8, 4)).unwrap(),
            ];
            let mut id = 0u32;
            for r in start..end {
                if r % 9 == 4 {
                    store.push_skipped(&mut w, &Skipped { source: format!("#{r}"), reason: "bad".into() }).unwrap();
                    continue;
                }
                let item =
                    Item { source: format!("#{r}"), label: Some((r % 2) as u32), width: 28, height: 28, hash: r };
                store.put_item(&mut w, id, &item).unwrap();
                store.put_thumbnail(&mut w, id, &[(r % 251) as u8; 96]).unwrap();
                for s in &spaces {
                    let v: Vec<f32> = (0..s.dim).map(|k| (r as f32 * 0.01 + k as f32).cos()).collect();
                    store.put_embedding(&mut w, s.index, id, &v).unwrap();
                    if s.num_classes > 0 {
                        store.put_probs(&mut w, s.index, id, &[0.1, 0.2, 0.3, 0.4]).unwrap();
                    }
                }
                id += 1;
                if id.is_multiple_of(4096) {
                    store.commit(w).unwrap();
                    w = store.write_txn().unwrap();
                }
            }
            store.put_cursor(&mut w, cursors::RECORDS, end - start).unwrap();
            for s in &spaces {
                store.put_cursor(&mut w, &cursors::space(&s.name), end - start).unwrap();
                store.put_cursor(&mut w, &cursors::space_items(&s.name), u64::from(id)).unwrap();
            }
            store.commit(w).unwrap();
            dir
        })
        .collect()
}

fn merge_cmd(out: &Path, shards: &[PathBuf]) -> Command {
    let mut cmd = torchlight();
    cmd.arg("merge").arg("--store").arg(out).args(shards);
    cmd
}

fn ok(out: Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    String::from_utf8(out.stdout).unwrap()
}

/// The exported table and each space's embeddings, as bytes.
fn exports(store: &Path) -> Vec<Vec<u8>> {
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for (name, space) in [("t.csv", None), ("a.npy", Some("a")), ("b.npy", Some("b"))] {
        let path = dir.path().join(name);
        let mut cmd = torchlight();
        cmd.arg("export").arg("--store").arg(store).arg("-o").arg(&path);
        if let Some(space) = space {
            cmd.args(["--embeddings", space]);
        }
        ok(cmd.output().unwrap());
        files.push(std::fs::read(&path).unwrap());
    }
    files
}

/// Probabilities are not exported: compared here, bit for bit.
fn probs(store: &Path) -> Vec<u32> {
    let store = Store::open_reading(store).unwrap();
    let rtxn = store.read_txn().unwrap();
    let b = store.space(&rtxn, "b").unwrap().unwrap();
    let n = store.item_count(&rtxn).unwrap();
    (0..n).flat_map(|id| store.probs(&rtxn, b.index, id).unwrap().unwrap()).map(f32::to_bits).collect()
}

/// kill -9 of `torchlight merge` once it has committed some chunks; the rerun of the same command continues and
/// ends with the store of a merge in one go (the exported table, each space's `.npy`, the probabilities, the
/// cursors), checked by `torchlight verify`.
#[test]
fn merge_killed_mid_way_then_rerun_equals_a_clean_merge() {
    let tmp = tempfile::tempdir().unwrap();
    let dirs = shards(tmp.path(), 4, 160_000, 64);
    let clean = tmp.path().join("clean");
    let started = Instant::now();
    let text = ok(merge_cmd(&clean, &dirs).output().unwrap());
    let took = started.elapsed();
    assert!(text.contains("merged 4 shards") && text.contains("142222 items, 17778 skipped"), "{text}");

    let out = tmp.path().join("killed");
    let mut child = merge_cmd(&out, &dirs).stdout(std::process::Stdio::null()).spawn().unwrap();
    // Wait for a few committed chunks, then SIGKILL in the middle of the copy.
    let state = loop {
        assert!(started.elapsed() < took * 3 + Duration::from_secs(60), "the merge never started");
        if out.join("data.mdb").exists()
            && let Ok(store) = Store::open_reading(&out)
            && let Ok(Some(state)) = store.merge_state(&store.read_txn().unwrap())
            && (state.shard > 0 || state.item >= 3 * 2048)
        {
            break state;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the merge ended before it could be killed: make the shards bigger"
        );
        std::thread::sleep(Duration::from_millis(2));
    };
    // SAFETY: a plain syscall on our own child's pid.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGKILL) }, 0);
    let status = child.wait().unwrap();
    assert_eq!(std::os::unix::process::ExitStatusExt::signal(&status), Some(libc::SIGKILL));
    let at_kill = {
        let store = Store::open_reading(&out).unwrap();
        store.merge_state(&store.read_txn().unwrap()).unwrap().unwrap()
    };
    assert!(!at_kill.done, "killed after the end ({state:?}): make the shards bigger");

    let text = ok(merge_cmd(&out, &dirs).output().unwrap());
    assert!(text.contains("merged 4 shards"), "{text}");
    assert_eq!(exports(&out), exports(&clean), "killed at {at_kill:?}");
    assert_eq!(probs(&out), probs(&clean));
    for dir in [&out, &clean] {
        let store = Store::open_reading(dir).unwrap();
        let rtxn = store.read_txn().unwrap();
        assert_eq!(store.cursor(&rtxn, cursors::RECORDS).unwrap(), 160_000);
        assert_eq!(store.cursor(&rtxn, &cursors::space_items("b")).unwrap(), 142_222);
    }
    let verify = torchlight().arg("verify").arg("--store").arg(&out).output().unwrap();
    assert!(ok(verify).contains("no damage found"));
    // Run once more: nothing to do, nothing written.
    let before = std::fs::read(out.join("data.mdb")).unwrap();
    assert!(ok(merge_cmd(&out, &dirs).output().unwrap()).contains("nothing to do"));
    assert_eq!(std::fs::read(out.join("data.mdb")).unwrap(), before);
}

/// glibc's loader prints every library it loads under LD_DEBUG=libs.
fn loads_libtorch(out: &Output) -> bool {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter_map(|l| l.split_once("calling init: ").map(|(_, lib)| lib.to_string()))
        .any(|lib| lib.contains("torch") || lib.contains("c10"))
}

/// Merge runs in the light binary: a copy of it alone, with nothing on PATH, merges without loading libtorch; the
/// engine hands `merge` over to it.
#[test]
fn merge_runs_without_libtorch_and_the_engine_hands_it_over() {
    let tmp = tempfile::tempdir().unwrap();
    let dirs = shards(tmp.path(), 3, 500, 8);
    let lonely = tmp.path().join("bin/torchlight");
    std::fs::create_dir_all(lonely.parent().unwrap()).unwrap();
    std::fs::copy(common::bin::torchlight(), &lonely).unwrap();
    let out = Command::new(&lonely)
        .arg("merge")
        .arg("--store")
        .arg(tmp.path().join("light"))
        .args(&dirs)
        .env("PATH", "")
        .env("LD_DEBUG", "libs")
        .output()
        .unwrap();
    assert!(!loads_libtorch(&out), "merge loaded libtorch");
    assert!(ok(out).contains("merged 3 shards"));

    let mut engine = Command::new(common::bin::engine());
    engine.arg("merge").arg("--store").arg(tmp.path().join("handed")).args(&dirs).env_remove("TORCHLIGHT_STORE");
    assert!(ok(engine.output().unwrap()).contains("merged 3 shards"));
    assert_eq!(exports(&tmp.path().join("light")), exports(&tmp.path().join("handed")));
}

/// Each refusal exits 1 naming the shard, and creates no merged store.
#[test]
fn merge_refuses_shards_of_no_one_split_naming_the_shard() {
    let tmp = tempfile::tempdir().unwrap();
    let dirs = shards(tmp.path(), 3, 300, 8);
    let others = shards(&tmp.path().join("others"), 4, 300, 8);
    let out = tmp.path().join("never");
    let cases: [(Vec<PathBuf>, &Path, &str); 3] = [
        (dirs[..2].to_vec(), &dirs[0], "shard 2 of 3 missing"),
        (vec![dirs[0].clone(), dirs[1].clone(), others[2].clone()], &others[2], "is shard 2 of 4"),
        (vec![dirs[0].clone(), dirs[1].clone(), tmp.path().to_path_buf()], tmp.path(), "no torchlight store"),
    ];
    for (given, named, want) in cases {
        let res = merge_cmd(&out, &given).output().unwrap();
        let stderr = String::from_utf8_lossy(&res.stderr);
        assert_eq!(res.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains(want) && stderr.contains(&named.display().to_string()), "{stderr}");
        assert!(!out.exists(), "{stderr}");
    }
    let res = torchlight().args(["merge", "--store"]).arg(&out).output().unwrap();
    assert_eq!(res.status.code(), Some(2), "a merge of no shards is a usage error");
}
