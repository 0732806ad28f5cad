//! Store round trips: everything written comes back after reopening; schema mismatches are refused.

use torchlight_store::{
    Column, DatasetInfo, Item, LossPoint, ModelSpec, Series, SeriesStep, Skipped, SpaceInfo, Store, StoreError, Tag,
    TagKind,
};

fn space(name: &str, dim: u32) -> SpaceInfo {
    SpaceInfo {
        name: name.into(),
        index: 0,
        dim,
        model: ModelSpec {
            kind: "vit".into(),
            source: "some/model".into(),
            fingerprint: "abc".into(),
            pooling: "cls".into(),
            image_size: 224,
        },
        num_classes: 3,
        class_names: vec!["a".into(), "b".into(), "c".into()],
    }
}

#[test]
fn round_trip_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::create_or_open(dir.path()).unwrap();
        let mut w = store.write_txn().unwrap();
        store
            .put_dataset(
                &mut w,
                &DatasetInfo { source: "x".into(), format: "idx".into(), fingerprint: "f".into(), complete: true },
            )
            .unwrap();
        store.put_label_names(&mut w, &["zero".into(), "one".into()]).unwrap();
        let fo = store.put_space(&mut w, space("foundation", 4)).unwrap();
        let ft = store.put_space(&mut w, space("finetuned", 2)).unwrap();
        assert_eq!((fo.index, ft.index), (0, 1));
        for id in 0..5u32 {
            let item = Item {
                source: format!("img{id}.png"),
                label: Some(id % 2),
                width: 28,
                height: 28,
                hash: id as u64 * 7,
            };
            store.put_item(&mut w, id, &item).unwrap();
            store.put_thumbnail(&mut w, id, &[id as u8; 3]).unwrap();
            store.put_embedding(&mut w, 0, id, &[id as f32, 1.0, 2.0, 3.0]).unwrap();
            store.put_embedding(&mut w, 1, id, &[-(id as f32), 0.5]).unwrap();
            store.put_probs(&mut w, 1, id, &[0.2, 0.3, 0.5]).unwrap();
        }
        store.push_skipped(&mut w, &Skipped { source: "bad.png".into(), reason: "truncated".into() }).unwrap();
        store.put_cursor(&mut w, "items", 6).unwrap();
        store
            .put_column(
                &mut w,
                "foundation",
                "outlier_score",
                &Column::F32 { width: 1, values: vec![0.1, 0.2, 0.3, 0.4, 0.5] },
            )
            .unwrap();
        store
            .put_column(&mut w, "foundation", "knn_ids", &Column::U32 { width: 2, values: (0..10).collect() })
            .unwrap();
        store
            .put_tag(
                &mut w,
                3,
                &Tag {
                    kind: Some(TagKind::Mislabeled),
                    new_label: Some(1),
                    note: Some("looks like a one".into()),
                    updated: 1,
                },
            )
            .unwrap();
        store.commit(w).unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    let r = store.read_txn().unwrap();
    assert_eq!(store.schema_version(&r).unwrap(), torchlight_store::SCHEMA_VERSION);
    assert_eq!(store.item_count(&r).unwrap(), 5);
    assert_eq!(store.item(&r, 4).unwrap().unwrap().source, "img4.png");
    assert_eq!(store.labels(&r).unwrap(), vec![Some(0), Some(1), Some(0), Some(1), Some(0)]);
    assert_eq!(store.label_names(&r).unwrap(), vec!["zero", "one"]);
    assert_eq!(store.thumbnail(&r, 2).unwrap().unwrap(), vec![2, 2, 2]);
    let spaces = store.spaces(&r).unwrap();
    assert_eq!(spaces.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["foundation", "finetuned"]);
    assert_eq!(store.embedding_count(&r, 0).unwrap(), 5);
    assert_eq!(store.embedding(&r, 1, 3).unwrap().unwrap(), vec![-3.0, 0.5]);
    let m = store.embedding_matrix(&r, &spaces[0]).unwrap();
    assert_eq!(m.len(), 20);
    assert_eq!(&m[8..12], &[2.0, 1.0, 2.0, 3.0]);
    let mut part = Vec::new();
    assert_eq!(store.embedding_rows(&r, 0, 3, 10, 4, &mut part).unwrap(), 2);
    assert_eq!(part[0], 3.0);
    assert_eq!(store.probs_matrix(&r, &spaces[1], 5).unwrap().unwrap().len(), 15);
    assert!(store.probs_matrix(&r, &spaces[0], 5).unwrap().is_none());
    assert_eq!(store.skipped(&r).unwrap()[0].reason, "truncated");
    assert_eq!(store.cursor(&r, "items").unwrap(), 6);
    assert_eq!(store.cursor(&r, "space/foundation").unwrap(), 0);
    assert_eq!(
        store.column(&r, "foundation", "outlier_score").unwrap().unwrap(),
        Column::F32 { width: 1, values: vec![0.1, 0.2, 0.3, 0.4, 0.5] }
    );
    let knn = store.column(&r, "foundation", "knn_ids").unwrap().unwrap();
    assert_eq!((knn.width(), knn.rows()), (2, 5));
    assert_eq!(store.column_names(&r, "foundation").unwrap(), vec!["knn_ids", "outlier_score"]);
    assert!(store.column_names(&r, "finetuned").unwrap().is_empty());
    let tags = store.tags(&r).unwrap();
    assert_eq!(tags.len(), 1);
    assert_eq!(tags[0].0, 3);
    assert_eq!(tags[0].1.kind, Some(TagKind::Mislabeled));
    assert_eq!(tags[0].1.note.as_deref(), Some("looks like a one"));
}

#[test]
fn a_checkpoint_series_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let series = Series {
        steps: vec![
            SeriesStep { space: "foundation".into(), step: 0 },
            SeriesStep { space: "step-20".into(), step: 20 },
        ],
        losses: vec![LossPoint { step: 10, loss: 2.25 }, LossPoint { step: 20, loss: 1.5 }],
        finetuned: None,
    };
    assert_eq!(series.finetuned_space(), Some("step-20"), "the last step, unless named");
    assert_eq!(Series { finetuned: Some("finetuned".into()), ..series.clone() }.finetuned_space(), Some("finetuned"));
    assert_eq!(series.loss_near(20), Some(LossPoint { step: 20, loss: 1.5 }));
    assert_eq!(series.loss_near(0), Some(LossPoint { step: 10, loss: 2.25 }), "nearest");
    assert_eq!(series.loss_near(15), Some(LossPoint { step: 10, loss: 2.25 }), "the earlier on a tie");
    assert_eq!(Series::default().loss_near(3), None);
    // A record written before `finetuned` existed reads with it unset.
    let old: Series = serde_json::from_str(r#"{"steps":[{"space":"step-1","step":1}],"losses":[]}"#).unwrap();
    assert_eq!((old.finetuned, old.steps.len()), (None, 1));
    {
        let store = Store::create_or_open(dir.path()).unwrap();
        assert_eq!(store.series(&store.read_txn().unwrap()).unwrap(), None);
        let mut w = store.write_txn().unwrap();
        store.put_series(&mut w, &series).unwrap();
        store.commit(w).unwrap();
    }
    let store = Store::open_reading(dir.path()).unwrap();
    assert_eq!(store.series(&store.read_txn().unwrap()).unwrap(), Some(series));
}

#[test]
fn empty_tag_deletes_record() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::create_or_open(dir.path()).unwrap();
    let mut w = store.write_txn().unwrap();
    store.put_tag(&mut w, 1, &Tag { kind: Some(TagKind::Ok), ..Tag::default() }).unwrap();
    store.put_tag(&mut w, 1, &Tag::default()).unwrap();
    store.commit(w).unwrap();
    assert!(store.tags(&store.read_txn().unwrap()).unwrap().is_empty());
}

#[test]
fn uncommitted_writes_are_not_visible() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::create_or_open(dir.path()).unwrap();
    let mut w = store.write_txn().unwrap();
    store.put_item(&mut w, 0, &Item { source: "a".into(), label: None, width: 1, height: 1, hash: 0 }).unwrap();
    drop(w);
    assert_eq!(store.item_count(&store.read_txn().unwrap()).unwrap(), 0);
}

#[test]
fn put_space_replaces_by_name_and_keeps_index() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::create_or_open(dir.path()).unwrap();
    let mut w = store.write_txn().unwrap();
    store.put_space(&mut w, space("a", 4)).unwrap();
    store.put_space(&mut w, space("b", 4)).unwrap();
    let again = store.put_space(&mut w, space("b", 8)).unwrap();
    assert_eq!(again.index, 1);
    assert_eq!(store.spaces(&w).unwrap().len(), 2);
    assert_eq!(store.space(&w, "b").unwrap().unwrap().dim, 8);
}

/// A new store's data.mdb is made aside and linked into place whole, so a reader (or a rerun after kill -9) that
/// finds a data.mdb never finds one without its meta pages; what a kill during the making leaves aside is cleared.
#[test]
fn a_new_store_appears_whole_and_leaves_nothing_aside() {
    let dir = tempfile::tempdir().unwrap();
    let stale = dir.path().join(format!(".creating-{}", std::process::id()));
    std::fs::create_dir(&stale).unwrap();
    std::fs::write(stale.join("data.mdb"), b"").unwrap();
    drop(Store::create_or_open(dir.path()).unwrap());
    let mut names: Vec<String> =
        std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["data.mdb", "lock.mdb"]);
    let store = Store::open_reading(dir.path()).unwrap();
    assert_eq!(store.schema_version(&store.read_txn().unwrap()).unwrap(), torchlight_store::SCHEMA_VERSION);
}

#[test]
fn missing_store_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = Store::open(&dir.path().join("nope")).err().unwrap();
    assert!(matches!(err, StoreError::Missing(_)));
    assert!(err.to_string().contains("torchlight ingest"), "{err}");
}

#[test]
fn schema_mismatch_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        // Write a store as a future version would: same layout, other schema number.
        let env = unsafe { heed::EnvOpenOptions::new().max_dbs(16).open(dir.path()) }.unwrap();
        let w = env.write_txn().unwrap();
        let meta: heed::Database<heed::types::Str, heed::types::SerdeJson<serde_json::Value>> = env
            .create_databases_and_commit(w, |dbo, w| -> heed::Result<_> {
                let meta = dbo.create_database(w, Some("meta"))?;
                Ok(heed::CommitOrAbort::<_, ()>::Commit(meta))
            })
            .unwrap()
            .unwrap_commit();
        let mut w = env.write_txn().unwrap();
        meta.put(&mut w, "schema_version", &serde_json::json!(99)).unwrap();
        w.commit().unwrap();
    }
    let err = Store::open(dir.path()).err().expect("a store of another schema must be refused");
    match &err {
        StoreError::SchemaMismatch { found, expected, .. } => {
            assert_eq!((*found, *expected), (99, torchlight_store::SCHEMA_VERSION))
        }
        other => panic!("unexpected error {other}"),
    }
    assert!(err.to_string().contains("schema version 99"));
}

#[test]
fn second_writer_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::create_or_open(dir.path()).unwrap();
    let _held = store.lock_writer("ingest").unwrap();
    // flock locks belong to an open file, so a second lock from this process stands for another process.
    let err = store.lock_writer("analyze").expect_err("second writer must be refused");
    assert!(err.to_string().contains("busy"), "{err}");
    assert!(err.to_string().contains("torchlight ingest"), "names the holder: {err}");
    drop(_held);
    store.lock_writer("ingest").expect("lock is free again");
}

#[test]
fn ann_index_finds_neighbours_with_cosine_distance() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::create_or_open(dir.path()).unwrap();
    let dim = 8;
    // Two tight clusters on different axes.
    let mut m = Vec::new();
    for i in 0..40 {
        let mut v = vec![0.01 * (i % 7) as f32; dim];
        v[if i < 20 { 0 } else { 1 }] = 1.0;
        m.extend(v);
    }
    let mut w = store.write_txn().unwrap();
    store.build_ann(&mut w, 0, dim, &m, Default::default(), &|| false).unwrap();
    store.commit(w).unwrap();
    let r = store.read_txn().unwrap();
    assert!(store.has_ann(&r, 0));
    assert!(!store.has_ann(&r, 1));
    let nn = store.ann_by_item(&r, 0, 3, 5, None).unwrap();
    assert_eq!(nn.len(), 5);
    assert!(nn.iter().all(|&(id, d)| id != 3 && id < 20 && (0.0..0.1).contains(&d)), "{nn:?}");
    let q = store.ann_by_vector(&r, 0, &m[25 * dim..26 * dim], 3).unwrap();
    assert!(q.iter().all(|&(id, _)| id >= 20), "{q:?}");
}

fn item(id: u32, label: Option<u32>) -> Item {
    Item { source: format!("img{id}.png"), label, width: 28, height: 28, hash: u64::from(id) }
}

#[test]
fn label_column_is_written_on_completion_and_trusted_only_while_whole() {
    use torchlight_store::{NO_LABEL, columns};
    let dir = tempfile::tempdir().unwrap();
    let store = Store::create_or_open(dir.path()).unwrap();
    let mut info = DatasetInfo { source: "x".into(), format: "idx".into(), fingerprint: "f".into(), complete: false };
    let mut w = store.write_txn().unwrap();
    store.put_dataset(&mut w, &info).unwrap();
    for (id, label) in [Some(0), Some(1), None, Some(0)].into_iter().enumerate() {
        store.put_item(&mut w, id as u32, &item(id as u32, label)).unwrap();
    }
    store.commit(w).unwrap();
    let r = store.read_txn().unwrap();
    assert!(store.label_column_stale(&r).unwrap());
    assert!(store.column(&r, "", columns::LABEL).unwrap().is_none());
    assert_eq!(store.label_ids(&r).unwrap(), vec![0, 1, NO_LABEL, 0], "from the scan");
    drop(r);

    info.complete = true;
    let mut w = store.write_txn().unwrap();
    store.put_dataset(&mut w, &info).unwrap();
    store.commit(w).unwrap();
    let r = store.read_txn().unwrap();
    assert!(!store.label_column_stale(&r).unwrap());
    assert_eq!(
        store.column(&r, "", columns::LABEL).unwrap(),
        Some(Column::U32 { width: 1, values: vec![0, 1, NO_LABEL, 0] })
    );
    assert_eq!(store.labels(&r).unwrap(), vec![Some(0), Some(1), None, Some(0)]);
    drop(r);

    // An item added afterwards: the column no longer covers every item and readers fall back to the scan.
    let mut w = store.write_txn().unwrap();
    store.put_item(&mut w, 4, &item(4, Some(2))).unwrap();
    store.commit(w).unwrap();
    let r = store.read_txn().unwrap();
    assert!(store.label_column_stale(&r).unwrap());
    assert_eq!(store.label_ids(&r).unwrap(), vec![0, 1, NO_LABEL, 0, 2]);
    drop(r);
    let mut w = store.write_txn().unwrap();
    store.put_label_column(&mut w).unwrap();
    store.commit(w).unwrap();
    let r = store.read_txn().unwrap();
    assert!(!store.label_column_stale(&r).unwrap());
    assert_eq!(store.label_ids(&r).unwrap(), vec![0, 1, NO_LABEL, 0, 2]);
}

/// Resident kB of this process's mapping of `file` (from /proc/self/smaps).
fn mapped_rss_kb(file: &std::path::Path) -> u64 {
    let file = std::fs::canonicalize(file).unwrap();
    let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
    let mut lines = smaps.lines();
    let mut total = 0;
    while let Some(line) = lines.next() {
        if line.ends_with(file.to_str().unwrap()) {
            let rss = lines.by_ref().find_map(|l| l.strip_prefix("Rss:")).unwrap();
            total += rss.trim().trim_end_matches("kB").trim().parse::<u64>().unwrap();
        }
    }
    total
}

#[test]
fn released_map_pages_leave_the_resident_set_and_read_back_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::create_or_open(dir.path()).unwrap();
    let values: Vec<f32> = (0..400_000).map(|i| i as f32 * 0.5).collect();
    let mut w = store.write_txn().unwrap();
    for id in 0..20_000 {
        store.put_item(&mut w, id, &item(id, Some(id % 7))).unwrap();
    }
    store.put_column(&mut w, "s", "big", &Column::F32 { width: 2, values: values.clone() }).unwrap();
    store.commit(w).unwrap();
    let data = dir.path().join("data.mdb");
    let r = store.read_txn().unwrap();
    let items: Vec<Item> = (0..20_000).map(|id| store.item(&r, id).unwrap().unwrap()).collect();
    assert!(mapped_rss_kb(&data) > 400, "reading 20,000 records maps their pages");
    store.release_map();
    assert_eq!(mapped_rss_kb(&data), 0);
    // The 1.6 MB column is copied out and its pages dropped at once.
    assert_eq!(store.column(&r, "s", "big").unwrap(), Some(Column::F32 { width: 2, values }));
    assert!(mapped_rss_kb(&data) < 100, "{} kB still mapped", mapped_rss_kb(&data));
    for (id, it) in items.iter().enumerate() {
        assert_eq!(store.item(&r, id as u32).unwrap().as_ref(), Some(it));
    }
    assert_eq!(store.labels(&r).unwrap().len(), 20_000);
}

/// A store whose space lost an embedding record (what flipped bytes in data.mdb did to a key): every export
/// refuses to write rows that no longer match the items, naming the store.
#[test]
fn exports_refuse_a_store_whose_rows_do_not_match_its_items() {
    use torchlight_store::export::{self, TableFormat};
    let dir = tempfile::tempdir().unwrap();
    let store = Store::create_or_open(&dir.path().join("store")).unwrap();
    let mut w = store.write_txn().unwrap();
    let sp = store.put_space(&mut w, space("s", 4)).unwrap();
    for id in 0..20 {
        store.put_item(&mut w, id, &item(id, Some(id % 3))).unwrap();
        if id != 7 {
            store.put_embedding(&mut w, sp.index, id, &[id as f32; 4]).unwrap();
        }
    }
    store.commit(w).unwrap();
    let out = dir.path().join("e.npy");
    let err = export::export_embeddings(&store, "s", &out).unwrap_err().to_string();
    assert!(err.contains(&store.dir().display().to_string()) && err.contains("20 items"), "{err}");
    assert!(err.contains("space s has 7") && err.contains("torchlight verify"), "{err}");
    assert!(!out.exists(), "nothing written");
    let err = export::build_table(&store, true).unwrap_err().to_string();
    assert!(err.contains("damaged") && err.contains("space s has 7"), "{err}");
    assert!(TableFormat::from_path(&dir.path().join("t.csv")).is_ok());
}

/// `--embeddings S -o FILE` writes by the file's extension: real CSV for .csv, .npy for .npy, and refuses others.
#[test]
fn embeddings_export_by_extension() {
    use torchlight_store::export;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::create_or_open(&dir.path().join("store")).unwrap();
    let mut w = store.write_txn().unwrap();
    let sp = store.put_space(&mut w, space("s", 3)).unwrap();
    for id in 0..2 {
        store.put_item(&mut w, id, &item(id, None)).unwrap();
        store.put_embedding(&mut w, sp.index, id, &[id as f32, 0.5, -1.25]).unwrap();
    }
    store.commit(w).unwrap();
    let csv = dir.path().join("e.csv");
    assert_eq!(export::export_embeddings(&store, "s", &csv).unwrap(), (2, 3));
    assert_eq!(std::fs::read_to_string(&csv).unwrap(), "id,e0,e1,e2\n0,0,0.5,-1.25\n1,1,0.5,-1.25\n");
    let npy = dir.path().join("e.npy");
    export::export_embeddings(&store, "s", &npy).unwrap();
    let back = torchlight_store::npy::read(std::fs::File::open(&npy).unwrap()).unwrap();
    assert_eq!((back.shape.clone(), back.to_f32()), (vec![2, 3], vec![0.0, 0.5, -1.25, 1.0, 0.5, -1.25]));
    let txt = dir.path().join("e.txt");
    let err = export::export_embeddings(&store, "s", &txt).unwrap_err().to_string();
    assert!(err.contains("e.txt") && err.contains(".npy") && err.contains(".csv"), "{err}");
    assert!(!txt.exists());
}

/// A store written before checksums (schema version 1: no `sums` database, columns without a checksum) reads
/// as it is, counted as unchecked rather than damaged; the first write-open upgrades it to version 2.
#[test]
fn a_version_1_store_reads_unchecked_and_upgrades_on_write() {
    use heed::types::{Bytes, SerdeJson, Str, U32};
    let dir = tempfile::tempdir().unwrap();
    {
        let env = unsafe { heed::EnvOpenOptions::new().max_dbs(16).map_size(1 << 30).open(dir.path()) }.unwrap();
        let w = env.write_txn().unwrap();
        type Meta<'e> = heed::Database<'e, Str, SerdeJson<serde_json::Value>>;
        type Items<'e> = heed::Database<'e, U32<heed::byteorder::BigEndian>, Bytes>;
        let (meta, items, columns): (Meta, Items, heed::Database<Str, Bytes>) = env
            .create_databases_and_commit(w, |dbo, w| -> heed::Result<_> {
                for name in ["thumbs", "skipped", "vectors", "probs", "tags", "ann"] {
                    dbo.create_database::<Bytes, Bytes>(w, Some(name))?;
                }
                let meta = dbo.create_database(w, Some("meta"))?;
                let items = dbo.create_database(w, Some("items"))?;
                let columns = dbo.create_database(w, Some("columns"))?;
                Ok(heed::CommitOrAbort::<_, ()>::Commit((meta, items, columns)))
            })
            .unwrap()
            .unwrap_commit();
        let mut w = env.write_txn().unwrap();
        meta.put(&mut w, "schema_version", &serde_json::json!(1)).unwrap();
        items.put(&mut w, &0, &bincode::serialize(&item(0, Some(2))).unwrap()).unwrap();
        let mut old_column = vec![0u8, 0, 0, 0];
        old_column.extend_from_slice(&1u32.to_le_bytes());
        old_column.extend_from_slice(&0.75f32.to_le_bytes());
        columns.put(&mut w, "s/outlier_score", &old_column).unwrap();
        w.commit().unwrap();
    }
    {
        let store = Store::open_reading(dir.path()).unwrap();
        let r = store.read_txn().unwrap();
        assert_eq!(store.schema_version(&r).unwrap(), 1);
        assert_eq!(store.items(&r).unwrap(), vec![item(0, Some(2))]);
        assert_eq!(store.column(&r, "s", "outlier_score").unwrap(), Some(Column::F32 { width: 1, values: vec![0.75] }));
        drop(r);
        let report = store.verify(&|_, _, _| {}).unwrap();
        assert!(!report.is_damaged(), "{:?}", report.problems);
        assert_eq!((report.checked, report.unchecked), (0, 2));
    }
    let store = Store::open(dir.path()).unwrap();
    let mut w = store.write_txn().unwrap();
    store.put_item(&mut w, 1, &item(1, None)).unwrap();
    store.commit(w).unwrap();
    let r = store.read_txn().unwrap();
    assert_eq!(store.schema_version(&r).unwrap(), torchlight_store::SCHEMA_VERSION);
    drop(r);
    let report = store.verify(&|_, _, _| {}).unwrap();
    assert_eq!((report.checked, report.unchecked, report.is_damaged()), (1, 2, false), "{:?}", report.problems);
}
