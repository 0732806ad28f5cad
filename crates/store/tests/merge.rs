//! Merge of shard stores: equal to the store of a whole ingest (items renumbered, skipped records in order,
//! thumbnails, embeddings bit for bit, probabilities, labels, cursors, checksums) for any shard count and any
//! order given; every refusal before a write, naming the shard; a stopped merge continued by a rerun; a finished
//! one rerun does nothing. Shards are written here as the engine's `ingest --shard` leaves them.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use torchlight_store::merge::{MergeError, MergeOptions, Progress, Summary, merge, split_range};
use torchlight_store::{
    DatasetInfo, Item, LossPoint, ModelSpec, Series, SeriesStep, ShardInfo, Skipped, SpaceInfo, Store, Tag, TagKind,
    cursors,
};

const FINGERPRINT: &str = "dataset-fp";
const LABELS: [&str; 3] = ["cat", "dog", "eel"];

fn skipped(r: u64) -> bool {
    r % 7 == 3 || r == 10
}

fn item(r: u64) -> Item {
    Item {
        source: format!("data/{r:05}.png"),
        label: Some((r % 3) as u32),
        width: 10 + (r % 5) as u32,
        height: 20,
        hash: r * 7919,
    }
}

fn space(name: &str, dim: u32, classes: u32, weights: &str) -> SpaceInfo {
    SpaceInfo {
        name: name.into(),
        index: 0,
        dim,
        model: ModelSpec {
            kind: "torchscript".into(),
            source: format!("{name}.pt"),
            fingerprint: weights.into(),
            pooling: "model".into(),
            image_size: 28,
        },
        num_classes: classes,
        class_names: (0..classes).map(|c| format!("c{c}")).collect(),
    }
}

fn spaces() -> Vec<SpaceInfo> {
    vec![space("foundation", 8, 0, "w-found"), space("finetuned", 4, 3, "w-fine")]
}

/// Deterministic values with every bit pattern kind a model can return (negative zero, subnormals).
fn values(r: u64, salt: u32, n: u32) -> Vec<f32> {
    (0..n)
        .map(|k| match (r + u64::from(k)) % 11 {
            0 => -0.0,
            1 => f32::from_bits(1 + k),
            _ => ((r as f32) * 0.37 + (k + salt) as f32).sin() * 3.0,
        })
        .collect()
}

/// What an ingest of records `start..end` leaves in `dir` (ids from 0), with the part it holds when `shard`.
fn write_records(dir: &Path, start: u64, end: u64, source_len: u64, shard: Option<ShardInfo>, spaces: &[SpaceInfo]) {
    let store = Store::create_or_open(dir).unwrap();
    let mut w = store.write_txn().unwrap();
    let dataset = DatasetInfo {
        source: "data".into(),
        format: "imagefolder".into(),
        fingerprint: FINGERPRINT.into(),
        complete: false,
    };
    store.put_dataset(&mut w, &dataset).unwrap();
    store.put_label_names(&mut w, &LABELS.map(String::from)).unwrap();
    if let Some(shard) = &shard {
        store.put_shard(&mut w, shard).unwrap();
    }
    let spaces: Vec<SpaceInfo> = spaces.iter().map(|s| store.put_space(&mut w, s.clone()).unwrap()).collect();
    let mut id = 0u32;
    for r in start..end {
        if skipped(r) {
            store
                .push_skipped(&mut w, &Skipped { source: format!("data/{r:05}.png"), reason: "truncated".into() })
                .unwrap();
            continue;
        }
        store.put_item(&mut w, id, &item(r)).unwrap();
        store.put_thumbnail(&mut w, id, &vec![r as u8; 1 + (r % 13) as usize]).unwrap();
        for s in &spaces {
            store.put_embedding(&mut w, s.index, id, &values(r, u32::from(s.index), s.dim)).unwrap();
            if s.num_classes > 0 {
                store.put_probs(&mut w, s.index, id, &values(r, 100, s.num_classes)).unwrap();
            }
        }
        id += 1;
    }
    store.put_cursor(&mut w, cursors::RECORDS, end - start).unwrap();
    for s in &spaces {
        store.put_cursor(&mut w, &cursors::space(&s.name), end - start).unwrap();
        store.put_cursor(&mut w, &cursors::space_items(&s.name), u64::from(id)).unwrap();
    }
    // A shard is complete when its part is; a whole store when the part is the whole source.
    let complete = shard.is_some() || end - start >= source_len;
    store.put_dataset(&mut w, &DatasetInfo { complete, ..dataset }).unwrap();
    store.commit(w).unwrap();
}

fn shard_info(index: u32, count: u32, total: u64, source_len: u64, batch: u64) -> ShardInfo {
    let (start, end) = split_range(total, batch, index, count);
    ShardInfo { index, count, start, end, total, source_len, batch_size: batch, fingerprint: FINGERPRINT.into() }
}

/// The `count` shard stores of `total` records, in `root/shard-I`.
fn shards(root: &Path, count: u32, total: u64, source_len: u64, batch: u64) -> Vec<PathBuf> {
    (0..count)
        .map(|i| {
            let dir = root.join(format!("shard-{i}"));
            let info = shard_info(i, count, total, source_len, batch);
            write_records(&dir, info.start, info.end, source_len, Some(info), &spaces());
            dir
        })
        .collect()
}

/// Everything an ingest writes, plus the cursors and the label column, for equality.
fn dump(store: &Store) -> String {
    let rtxn = store.read_txn().unwrap();
    let mut out = format!("{:?}\n{:?}\n", store.items(&rtxn).unwrap(), store.skipped(&rtxn).unwrap());
    out += &format!("{:?}\n{:?}\n", store.label_names(&rtxn).unwrap(), store.dataset(&rtxn).unwrap());
    out += &format!("{:?}\n", store.column(&rtxn, "", torchlight_store::columns::LABEL).unwrap());
    let n = store.item_count(&rtxn).unwrap();
    for id in 0..n {
        out += &format!("{:?}", store.thumbnail(&rtxn, id).unwrap());
    }
    out += &format!("\n{:?}\n", store.tags(&rtxn).unwrap());
    out += &format!("records {}\n", store.cursor(&rtxn, cursors::RECORDS).unwrap());
    for s in store.spaces(&rtxn).unwrap() {
        out += &format!("\n{s:?}\n");
        out += &format!(
            "cursors {} {}\n",
            store.cursor(&rtxn, &cursors::space(&s.name)).unwrap(),
            store.cursor(&rtxn, &cursors::space_items(&s.name)).unwrap()
        );
        assert_eq!(store.embedding_count(&rtxn, s.index).unwrap(), n, "{}", s.name);
        for id in 0..n {
            let e = store.embedding(&rtxn, s.index, id).unwrap().unwrap();
            let p = store.probs(&rtxn, s.index, id).unwrap();
            out += &format!(
                "{:?}{:?}",
                e.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                p.map(|p| p.iter().map(|v| v.to_bits()).collect::<Vec<_>>())
            );
        }
    }
    out
}

#[allow(clippy::result_large_err, reason = "the error merge itself returns")]
fn merge_into(out: &Path, dirs: &[PathBuf], chunk: u32) -> Result<Summary, MergeError> {
    merge(out, dirs, &MergeOptions { chunk_items: chunk }, &mut |_| ControlFlow::Continue(()))
}

fn assert_no_damage(store: &Store) {
    let report = store.verify(&|_, _, _| {}).unwrap();
    assert!(!report.is_damaged(), "{:?}", report.problems);
    assert!(report.checked > 0);
}

#[test]
fn shards_merged_equal_a_whole_ingest_for_any_count_and_order() {
    let tmp = tempfile::tempdir().unwrap();
    let (total, batch) = (103, 8);
    let whole_dir = tmp.path().join("whole");
    write_records(&whole_dir, 0, total, total, None, &spaces());
    let whole = Store::open(&whole_dir).unwrap();
    for count in [1, 3, 4, 13, 20] {
        let root = tmp.path().join(format!("n{count}"));
        let mut dirs = shards(&root, count, total, total, batch);
        // Any order on the command line: the index decides.
        dirs.reverse();
        dirs.rotate_left(1);
        for chunk in [5, 10_000] {
            let out = root.join(format!("merged-{chunk}"));
            let summary = merge_into(&out, &dirs, chunk).unwrap();
            assert_eq!((summary.shards, summary.complete, summary.already_done), (count, true, false));
            assert_eq!(summary.items + summary.skipped, total);
            let merged = Store::open(&out).unwrap();
            assert_eq!(dump(&merged), dump(&whole), "{count} shards, {chunk} items a transaction");
            assert_no_damage(&merged);
        }
    }
}

fn put_series(dir: &Path, series: &Series) {
    let store = Store::open(dir).unwrap();
    let mut w = store.write_txn().unwrap();
    store.put_series(&mut w, series).unwrap();
    store.commit(w).unwrap();
}

/// The checkpoint series of `ingest --checkpoints` comes along into the merged store; shards of another series
/// are refused.
#[test]
fn the_checkpoint_series_of_the_shards_is_carried_into_the_merged_store() {
    let tmp = tempfile::tempdir().unwrap();
    let series = Series {
        steps: vec![
            SeriesStep { space: "foundation".into(), step: 0 },
            SeriesStep { space: "finetuned".into(), step: 40 },
        ],
        losses: vec![LossPoint { step: 20, loss: 2.5 }, LossPoint { step: 40, loss: 1.25 }],
        finetuned: Some("finetuned".into()),
    };
    let dirs = shards(&tmp.path().join("series"), 3, 50, 50, 4);
    for dir in &dirs {
        put_series(dir, &series);
    }
    let out = tmp.path().join("merged");
    merge_into(&out, &dirs, 7).unwrap();
    let merged = Store::open_reading(&out).unwrap();
    assert_eq!(merged.series(&merged.read_txn().unwrap()).unwrap(), Some(series.clone()));

    let other = Series { losses: vec![], ..series.clone() };
    put_series(&dirs[1], &other);
    let err = refusal(&tmp.path().join("never"), &dirs);
    assert!(err.contains(&name(&dirs[1])) && err.contains("--checkpoints") && err.contains("0 losses"), "{err}");
    assert!(!tmp.path().join("never").exists());
    // A shard without the series is refused too.
    let plain = shards(&tmp.path().join("plain"), 3, 50, 50, 4);
    let mixed = vec![dirs[0].clone(), plain[1].clone(), plain[2].clone()];
    let err = refusal(&tmp.path().join("never"), &mixed);
    assert!(err.contains("no checkpoint series"), "{err}");
}

#[test]
fn shards_of_the_first_records_merge_into_an_incomplete_dataset() {
    let tmp = tempfile::tempdir().unwrap();
    let (total, source_len) = (40, 90);
    let whole_dir = tmp.path().join("whole");
    write_records(&whole_dir, 0, total, source_len, None, &spaces());
    let dirs = shards(tmp.path(), 3, total, source_len, 8);
    let out = tmp.path().join("merged");
    let summary = merge_into(&out, &dirs, 7).unwrap();
    assert!(!summary.complete);
    let merged = Store::open(&out).unwrap();
    assert_eq!(dump(&merged), dump(&Store::open(&whole_dir).unwrap()));
    assert!(!merged.dataset(&merged.read_txn().unwrap()).unwrap().unwrap().complete);
}

#[test]
fn the_split_is_whole_batches_that_tile_the_records() {
    for total in [1u64, 7, 8, 9, 100, 1000, 1001] {
        for batch in [1u64, 3, 8, 32] {
            for count in [1u32, 2, 3, 4, 7, 50] {
                let mut at = 0;
                let mut sizes = Vec::new();
                for i in 0..count {
                    let (start, end) = split_range(total, batch, i, count);
                    assert_eq!(start, at, "{total} {batch} {count} {i}");
                    assert!(end >= start);
                    assert!(start % batch == 0, "{total} {batch} {count} {i}");
                    assert!(end % batch == 0 || end == total);
                    sizes.push((end - start).div_ceil(batch));
                    at = end;
                }
                assert_eq!(at, total);
                // Batches spread evenly: shard sizes differ by one batch at most.
                let (lo, hi) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
                assert!(hi - lo <= 1, "{total} {batch} {count}: {sizes:?}");
            }
        }
    }
}

/// A merge stopped after some commits keeps what it committed; the rerun continues and ends equal to a merge in
/// one go; a rerun of the finished merge writes nothing.
#[test]
fn a_stopped_merge_continues_and_a_finished_one_does_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let total = 150;
    let dirs = shards(tmp.path(), 4, total, total, 4);
    let clean = tmp.path().join("clean");
    merge_into(&clean, &dirs, 6).unwrap();
    let clean = dump(&Store::open(&clean).unwrap());
    for stop_after in [1, 2, 7, 11, 19] {
        let out = tmp.path().join(format!("stopped-{stop_after}"));
        let mut commits = 0;
        let mut stop = |_: &Progress| {
            commits += 1;
            if commits == stop_after { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
        };
        let err = merge(&out, &dirs, &MergeOptions { chunk_items: 6 }, &mut stop).unwrap_err();
        assert!(matches!(err, MergeError::Interrupted), "{err}");
        {
            let store = Store::open_reading(&out).unwrap();
            let state = store.merge_state(&store.read_txn().unwrap()).unwrap().unwrap();
            assert!(!state.done && commits == stop_after);
        }
        let summary = merge_into(&out, &dirs, 6).unwrap();
        assert!(!summary.already_done);
        let merged = Store::open(&out).unwrap();
        assert_eq!(dump(&merged), clean, "stopped after {stop_after} commits");
        assert_no_damage(&merged);
    }
    let out = tmp.path().join("stopped-1");
    let before = std::fs::read(out.join("data.mdb")).unwrap();
    let summary = merge_into(&out, &dirs, 6).unwrap();
    assert!(summary.already_done);
    assert_eq!(std::fs::read(out.join("data.mdb")).unwrap(), before, "a finished merge rerun writes nothing");
}

#[test]
fn tags_of_a_shard_move_with_their_items() {
    let tmp = tempfile::tempdir().unwrap();
    let dirs = shards(tmp.path(), 2, 30, 30, 4);
    let tag = Tag { kind: Some(TagKind::Outlier), new_label: None, note: Some("blurry".into()), updated: 5 };
    {
        let store = Store::open(&dirs[1]).unwrap();
        let mut w = store.write_txn().unwrap();
        store.put_tag(&mut w, 2, &tag).unwrap();
        store.commit(w).unwrap();
    }
    let out = tmp.path().join("merged");
    merge_into(&out, &dirs, 4).unwrap();
    let merged = Store::open(&out).unwrap();
    let rtxn = merged.read_txn().unwrap();
    let first = Store::open_reading(&dirs[0]).unwrap();
    let offset = first.item_count(&first.read_txn().unwrap()).unwrap();
    assert_eq!(merged.tags(&rtxn).unwrap(), vec![(offset + 2, tag)]);
}

/// The merge's refusal for `dirs` into `out`.
fn refusal(out: &Path, dirs: &[PathBuf]) -> String {
    merge(out, dirs, &MergeOptions::default(), &mut |_| ControlFlow::Continue(())).unwrap_err().to_string()
}

fn set_shard(dir: &Path, f: impl FnOnce(&mut ShardInfo)) {
    let store = Store::open(dir).unwrap();
    let mut w = store.write_txn().unwrap();
    let mut info = store.shard(&w).unwrap().unwrap();
    f(&mut info);
    store.put_shard(&mut w, &info).unwrap();
    store.commit(w).unwrap();
}

fn name(dir: &Path) -> String {
    dir.display().to_string()
}

#[test]
fn shards_that_are_not_one_split_are_refused_naming_the_shard_before_any_write() {
    let tmp = tempfile::tempdir().unwrap();
    let (total, batch) = (60, 4);
    let fresh = |tag: &str| shards(&tmp.path().join(tag), 4, total, total, batch);
    let out = tmp.path().join("never");
    let check = |dirs: &[PathBuf], wants: &[&str]| {
        let err = refusal(&out, dirs);
        for want in wants {
            assert!(err.contains(want), "wanted {want:?} in: {err}");
        }
        assert!(!out.exists(), "nothing written for: {err}");
    };

    // Another dataset.
    let dirs = fresh("dataset");
    {
        let store = Store::open(&dirs[2]).unwrap();
        let mut w = store.write_txn().unwrap();
        let d = store.dataset(&w).unwrap().unwrap();
        store.put_dataset(&mut w, &DatasetInfo { fingerprint: "other-fp".into(), ..d }).unwrap();
        store.commit(w).unwrap();
    }
    set_shard(&dirs[2], |s| s.fingerprint = "other-fp".into());
    check(&dirs, &[&name(&dirs[2]), "another dataset", "other-fp", FINGERPRINT]);

    // Another N.
    let dirs = fresh("count");
    set_shard(&dirs[3], |s| s.count = 5);
    check(&dirs, &[&name(&dirs[3]), "shard 3 of 5", "of 4"]);

    // An index twice (two shards overlap), and one missing.
    let dirs = fresh("twice");
    let twice = [dirs[0].clone(), dirs[1].clone(), dirs[1].clone(), dirs[3].clone()];
    check(&twice, &[&name(&dirs[1]), "given twice"]);
    let copy = tmp.path().join("twice/copy-of-1");
    std::fs::create_dir(&copy).unwrap();
    std::fs::copy(dirs[1].join("data.mdb"), copy.join("data.mdb")).unwrap();
    check(
        &[dirs[0].clone(), dirs[1].clone(), copy.clone(), dirs[3].clone()],
        &[&name(&copy), &name(&dirs[1]), "both shard 1/4"],
    );
    check(&dirs[..3], &["shard 3 of 4 missing", &name(&dirs[0])]);
    check(&[dirs[0].clone(), dirs[2].clone()], &["shards 1, 3 of 4 missing"]);

    // A range cut with another --batch-size or --limit.
    let dirs = fresh("range");
    set_shard(&dirs[1], |s| {
        s.batch_size = 5;
        (s.start, s.end) = split_range(total, 5, 1, 4);
    });
    check(&dirs, &[&name(&dirs[1]), "shard 1/4", "batch size 5", "--batch-size"]);
    let dirs = fresh("limit");
    set_shard(&dirs[2], |s| s.total = 50);
    check(&dirs, &[&name(&dirs[2]), "of 50", "--limit"]);

    // Unfinished: the records, or one space.
    let dirs = fresh("unfinished");
    {
        let store = Store::open(&dirs[1]).unwrap();
        let mut w = store.write_txn().unwrap();
        store.put_cursor(&mut w, cursors::RECORDS, 3).unwrap();
        store.commit(w).unwrap();
    }
    check(&dirs, &[&name(&dirs[1]), "unfinished", "rerun"]);
    let dirs = fresh("space-behind");
    {
        let store = Store::open(&dirs[0]).unwrap();
        let mut w = store.write_txn().unwrap();
        store.put_cursor(&mut w, &cursors::space("finetuned"), 4).unwrap();
        store.commit(w).unwrap();
    }
    check(&dirs, &[&name(&dirs[0]), "space finetuned has 4 of its 12 records"]);

    // Another model under a space name: weights, pooling, dimension.
    for (tag, change) in [
        ("weights", (|s: &mut SpaceInfo| s.model.fingerprint = "w-other".into()) as fn(&mut SpaceInfo)),
        ("pooling", |s: &mut SpaceInfo| s.model.pooling = "mean".into()),
        ("dim", |s: &mut SpaceInfo| s.dim = 5),
    ] {
        let dirs = fresh(tag);
        {
            let store = Store::open(&dirs[3]).unwrap();
            let mut w = store.write_txn().unwrap();
            let mut s = store.space(&w, "foundation").unwrap().unwrap();
            change(&mut s);
            store.put_space(&mut w, s).unwrap();
            store.commit(w).unwrap();
        }
        check(&dirs, &[&name(&dirs[3]), "space foundation", "same models"]);
    }

    // A space only some shards have.
    let dirs = fresh("spaces");
    let extra = tmp.path().join("spaces/extra");
    let info = shard_info(2, 4, total, total, batch);
    let mut more = spaces();
    more.push(space("third", 2, 0, "w3"));
    write_records(&extra, info.start, info.end, total, Some(info), &more);
    check(&[dirs[0].clone(), dirs[1].clone(), extra.clone(), dirs[3].clone()], &[&name(&extra), "third"]);

    // Other label names.
    let dirs = fresh("labels");
    {
        let store = Store::open(&dirs[1]).unwrap();
        let mut w = store.write_txn().unwrap();
        store.put_label_names(&mut w, &["x".into()]).unwrap();
        store.commit(w).unwrap();
    }
    check(&dirs, &[&name(&dirs[1]), "label names"]);

    // Not a shard: a whole ingest, and a directory without a store.
    let dirs = fresh("whole");
    let whole = tmp.path().join("whole-store");
    write_records(&whole, 0, total, total, None, &spaces());
    check(&[whole.clone(), dirs[1].clone()], &[&name(&whole), "not a shard"]);
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    check(&[dirs[0].clone(), empty.clone()], &[&name(&empty)]);
    check(&[], &["no shards"]);
}

#[test]
fn a_merged_store_that_holds_something_else_is_refused_before_any_write() {
    let tmp = tempfile::tempdir().unwrap();
    let (total, batch) = (40, 4);
    let dirs = shards(tmp.path(), 3, total, total, batch);

    // Another dataset.
    let other = tmp.path().join("other");
    {
        let store = Store::create_or_open(&other).unwrap();
        let mut w = store.write_txn().unwrap();
        let d = DatasetInfo {
            source: "elsewhere".into(),
            format: "idx".into(),
            fingerprint: "nope".into(),
            complete: true,
        };
        store.put_dataset(&mut w, &d).unwrap();
        store.commit(w).unwrap();
    }
    // This dataset, from a whole ingest.
    let whole = tmp.path().join("whole");
    write_records(&whole, 0, total, total, None, &spaces());
    for (out, want) in [(&other, "another dataset"), (&whole, "already holds 34 items")] {
        let before = dump(&Store::open(out).unwrap());
        let err = refusal(out, &dirs);
        assert!(err.contains(want) && err.contains(&name(out)), "{err}");
        assert_eq!(dump(&Store::open(out).unwrap()), before, "{err}");
    }
    // One of the shards as the output.
    let err = refusal(&dirs[1], &dirs);
    assert!(err.contains("also given as a shard") && err.contains(&name(&dirs[1])), "{err}");

    // An unfinished merge of other shards.
    let half = tmp.path().join("half");
    let stopped = merge(&half, &dirs, &MergeOptions { chunk_items: 2 }, &mut |_| ControlFlow::Break(()));
    assert!(matches!(stopped, Err(MergeError::Interrupted)));
    let others = shards(&tmp.path().join("others"), 2, total, total, batch);
    let err = refusal(&half, &others);
    assert!(err.contains("merge of other shards") && err.contains(&name(&half)), "{err}");
}
