//! Analysis parity with cleanlab and scikit-learn on real data (sklearn digits, Fashion-MNIST), using the
//! references that tests/fixtures/analysis/gen_reference.py wrote. Stores are filled directly; no model.

use crate::common;

use std::fs::File;
use std::path::{Path, PathBuf};

use common::fixtures::precomputed_space;
use tch::Device;
use torchlight_engine::analysis::knn::{self, KnnOptions, Metric};
use torchlight_engine::analysis::{self, AnalysisParams, Hooks, duplicates, labels, outlier};
use torchlight_store::npy::{self, NpyArray};
use torchlight_store::{Column, Item, Store, columns};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/analysis").join(name)
}

fn load(name: &str) -> NpyArray {
    let f = File::open(fixture(name)).unwrap_or_else(|e| panic!("fixture {name}: {e}"));
    if name.ends_with(".gz") { npy::read(flate2::read::GzDecoder::new(f)) } else { npy::read(f) }.unwrap()
}

struct Data {
    x: Vec<f32>,
    n: usize,
    d: usize,
}

fn data(name: &str) -> Data {
    let a = load(&format!("{name}_x.npy.gz"));
    Data { x: a.to_f32(), n: a.shape[0], d: a.shape[1] }
}

/// digits with rows 0..29 appended again and row 5 twelve more times, as in gen_reference.py.
fn digits_dup() -> Data {
    let dg = data("digits");
    let mut x = dg.x.clone();
    x.extend_from_slice(&dg.x[..30 * dg.d]);
    for _ in 0..12 {
        x.extend_from_slice(&dg.x[5 * dg.d..6 * dg.d]);
    }
    Data { n: x.len() / dg.d, x, d: dg.d }
}

/// A content hash per row: equal rows are the same picture.
fn row_hashes(data: &Data) -> Vec<u64> {
    use std::hash::{Hash, Hasher};
    let hash = |row: &[f32]| {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        row.iter().for_each(|v| v.to_bits().hash(&mut h));
        h.finish()
    };
    data.x.chunks(data.d).map(hash).collect()
}

/// A store with one space of `data`, optional labels and probabilities.
fn store_with(dir: &Path, data: &Data, labels: Option<&[u32]>, probs: Option<(&[f32], u32)>) -> Store {
    store_hashed(dir, data, labels, probs, &row_hashes(data))
}

fn store_hashed(
    dir: &Path,
    data: &Data,
    labels: Option<&[u32]>,
    probs: Option<(&[f32], u32)>,
    hashes: &[u64],
) -> Store {
    let store = Store::create_or_open(dir).unwrap();
    let mut w = store.write_txn().unwrap();
    let sp = store.put_space(&mut w, precomputed_space("pixels", data.d, probs.map_or(0, |p| p.1))).unwrap();
    if labels.is_some() {
        store.put_label_names(&mut w, &(0..10).map(|i| format!("class {i}")).collect::<Vec<_>>()).unwrap();
    }
    for i in 0..data.n {
        let item =
            Item { source: format!("img{i}.png"), label: labels.map(|l| l[i]), width: 8, height: 8, hash: hashes[i] };
        store.put_item(&mut w, i as u32, &item).unwrap();
        store.put_embedding(&mut w, sp.index, i as u32, &data.x[i * data.d..(i + 1) * data.d]).unwrap();
        if let Some((p, c)) = probs {
            let c = c as usize;
            store.put_probs(&mut w, sp.index, i as u32, &p[i * c..(i + 1) * c]).unwrap();
        }
    }
    store.commit(w).unwrap();
    store
}

fn cpu_params() -> AnalysisParams {
    AnalysisParams { device: Device::Cpu, umap: None, ..AnalysisParams::default() }
}

fn f32_col(store: &Store, name: &str) -> Vec<f32> {
    match store.column(&store.read_txn().unwrap(), "pixels", name).unwrap() {
        Some(Column::F32 { values, .. }) => values,
        other => panic!("column {name}: {other:?}"),
    }
}

fn u32_col(store: &Store, name: &str) -> Vec<u32> {
    match store.column(&store.read_txn().unwrap(), "pixels", name).unwrap() {
        Some(Column::U32 { values, .. }) => values,
        other => panic!("column {name}: {other:?}"),
    }
}

/// Outlier scores within 1e-5 of cleanlab's and the same 20 most anomalous items.
fn assert_scores_match(scores: &[f64], reference: &[f64]) {
    assert_eq!(scores.len(), reference.len());
    let max_diff = scores.iter().zip(reference).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
    assert!(max_diff <= 1e-5, "max |score - cleanlab| = {max_diff:e}");
    assert_eq!(outlier::most_anomalous(scores, 20), outlier::most_anomalous(reference, 20), "top-20 outliers differ");
}

/// Neighbour ids equal sklearn's wherever the distances are not tied; distances within 1e-5.
fn assert_knn_matches(ids: &[u32], dists: &[f32], name: &str) {
    let ref_ids = load(&format!("{name}_knn_ids.npy")).to_f64();
    let ref_d = load(&format!("{name}_knn_dists.npy")).to_f64();
    assert_eq!(ids.len(), ref_ids.len());
    let mut differ = 0;
    for (p, (&id, &d)) in ids.iter().zip(dists).enumerate() {
        assert!((f64::from(d) - ref_d[p]).abs() < 1e-5, "distance at {p}: {d} vs sklearn {}", ref_d[p]);
        if f64::from(id) != ref_ids[p] {
            differ += 1;
            // A swapped pair must be a tie: sklearn's own distance list has the same value nearby.
            let row = p / 10;
            let tied = (0..10).any(|c| c != p % 10 && (ref_d[row * 10 + c] - f64::from(d)).abs() < 1e-6);
            let at_edge = (ref_d[row * 10 + 9] - f64::from(d)).abs() < 1e-6;
            assert!(tied || at_edge, "neighbour {p} of {name}: {id} vs sklearn {} at distance {d}", ref_ids[p]);
        }
    }
    assert!(differ * 1000 < ids.len(), "{differ} of {} neighbour ids differ from sklearn", ids.len());
}

#[test]
fn digits_scores_and_neighbours_match_cleanlab_and_sklearn() {
    let dir = tempfile::tempdir().unwrap();
    let dg = data("digits");
    let store = store_with(dir.path(), &dg, None, None);
    let report = analysis::run(&store, &cpu_params(), &Hooks::none()).unwrap();
    let scores: Vec<f64> = f32_col(&store, columns::OUTLIER_SCORE).into_iter().map(f64::from).collect();
    // The column is f32; compare the f64 scores from the same neighbours too.
    assert_scores_match(&scores, &load("digits_ood.npy").to_f64());
    assert_knn_matches(&u32_col(&store, columns::KNN_IDS), &f32_col(&store, columns::KNN_DISTANCES), "digits");
    let nn = u32_col(&store, columns::NN_ID);
    assert_eq!(nn, u32_col(&store, columns::KNN_IDS).chunks(10).map(|r| r[0]).collect::<Vec<_>>());
    let sp = &report.spaces[0];
    assert!(sp.ann_recall >= 0.95, "arroy recall@10 {}", sp.ann_recall);
    assert_eq!(sp.top_outliers[0].0, outlier::most_anomalous(&load("digits_ood.npy").to_f64(), 1)[0]);
}

#[test]
fn fashion_mnist_scores_neighbours_and_arroy_recall() {
    let dir = tempfile::tempdir().unwrap();
    let fx = data("fashion");
    let store = store_with(dir.path(), &fx, None, None);
    let report = analysis::run(&store, &cpu_params(), &Hooks::none()).unwrap();
    let reference = load("fashion_ood.npy").to_f64();
    // Full-precision scores from the stored neighbour distances (the column itself is f32).
    let knn =
        knn::exact_knn(&fx.x, fx.n, fx.d, &KnnOptions::new(10, Metric::Cosine, Device::Cpu), &Hooks::none()).unwrap();
    assert_scores_match(&outlier::outlier_scores(&knn, 10, Metric::Cosine).scores, &reference);
    let stored: Vec<f64> = f32_col(&store, columns::OUTLIER_SCORE).into_iter().map(f64::from).collect();
    assert_scores_match(&stored, &reference);
    assert_knn_matches(&knn.ids, &knn.dists, "fashion");
    let sp = &report.spaces[0];
    assert!(sp.ann_recall >= 0.95, "arroy recall@10 {} at default settings", sp.ann_recall);
    assert!(store.has_ann(&store.read_txn().unwrap(), 0));
    // The device path (queries against everything, topk) finds the same neighbours as the symmetric CPU path.
    let opts = KnnOptions {
        force_topk: true,
        device_block_bytes: 1 << 20,
        ..KnnOptions::new(10, Metric::Cosine, Device::Cpu)
    };
    let topk = knn::exact_knn(&fx.x, fx.n, fx.d, &opts, &Hooks::none()).unwrap();
    assert_knn_matches(&topk.ids, &topk.dists, "fashion");
}

#[test]
fn exact_duplicates_are_neighbours_at_zero_and_grouped() {
    let dir = tempfile::tempdir().unwrap();
    let dd = digits_dup();
    let store = store_with(dir.path(), &dd, None, None);
    analysis::run(&store, &cpu_params(), &Hooks::none()).unwrap();
    let scores: Vec<f64> = f32_col(&store, columns::OUTLIER_SCORE).into_iter().map(f64::from).collect();
    assert_scores_match(&scores, &load("digits_dup_ood.npy").to_f64());
    let nn_id = u32_col(&store, columns::NN_ID);
    let nn_d = f32_col(&store, columns::NN_DISTANCE);
    let flags = u32_col(&store, columns::NEAR_DUPLICATE);
    let groups = u32_col(&store, columns::DUPLICATE_GROUP);
    for i in 0..30 {
        let copy = 1797 + i;
        assert_eq!(nn_d[i], 0.0, "item {i} has an exact copy");
        assert_eq!(nn_d[copy], 0.0);
        assert_eq!(flags[i], 1);
        assert_eq!(flags[copy], 1);
        assert_eq!(groups[copy], groups[i]);
        assert!(groups[i] <= i as u32, "group id is the smallest member");
    }
    // Row 5 has 13 copies, more than k: every copy's neighbours are all copies at distance 0, mean 0, score 1.
    assert!(nn_id[5] == 1802 || (1827..1839).contains(&nn_id[5]), "row 5's nearest is one of its copies");
    let knn_d = f32_col(&store, columns::KNN_DISTANCES);
    assert!(knn_d[5 * 10..6 * 10].iter().all(|&d| d == 0.0));
    assert_eq!(scores[5], 1.0);
    assert!((1827..1839).all(|i| groups[i] == groups[5]));
}

/// cleanlab Datalab's near_duplicate issues on NAME, from gen_near_duplicates.py.
struct NearDuplicateReference {
    issue: Vec<u32>,
    score: Vec<f64>,
    sets: Vec<Vec<u32>>,
    median: f64,
}

fn near_duplicate_reference(name: &str) -> NearDuplicateReference {
    let flat: Vec<u32> = load(&format!("{name}_nd_sets.npy")).to_f64().into_iter().map(|v| v as u32).collect();
    let ends = load(&format!("{name}_nd_set_ends.npy")).to_f64();
    let mut start = 0;
    let sets = ends
        .iter()
        .map(|&e| {
            let set = flat[start..e as usize].to_vec();
            start = e as usize;
            set
        })
        .collect();
    NearDuplicateReference {
        issue: load(&format!("{name}_nd_issue.npy")).to_f64().into_iter().map(|v| v as u32).collect(),
        score: load(&format!("{name}_nd_score.npy")).to_f64(),
        sets,
        median: load(&format!("{name}_nd_median.npy")).to_f64()[0],
    }
}

/// Components of the reference sets, each named by its smallest member (u32::MAX: in none).
fn components(sets: &[Vec<u32>]) -> Vec<u32> {
    let mut group = vec![u32::MAX; sets.len()];
    for start in 0..sets.len() {
        if group[start] != u32::MAX || sets[start].is_empty() {
            continue;
        }
        let mut stack = vec![start as u32];
        group[start] = start as u32;
        while let Some(i) = stack.pop() {
            for &j in &sets[i as usize] {
                if group[j as usize] == u32::MAX {
                    group[j as usize] = start as u32;
                    stack.push(j);
                }
            }
        }
    }
    group
}

/// The analysis's near-duplicate columns against cleanlab's on `data` at `threshold`: flags and groups
/// equal, scores within 1e-5, the sets equal; nn_flag is the absolute cut on the stored nn distance.
fn assert_near_duplicates_match(data: &Data, name: &str, threshold: f32) -> NearDuplicateReference {
    let reference = near_duplicate_reference(name);
    let dir = tempfile::tempdir().unwrap();
    let store = store_with(dir.path(), data, None, None);
    let params = AnalysisParams { near_duplicate_threshold: threshold, ..cpu_params() };
    let report = analysis::run(&store, &params, &Hooks::none()).unwrap();
    let flags = u32_col(&store, columns::NEAR_DUPLICATE);
    let differ: Vec<usize> = (0..data.n).filter(|&i| flags[i] != reference.issue[i]).collect();
    assert!(differ.is_empty(), "{name}: near-duplicate flags differ from cleanlab at {differ:?}");
    let scores = f32_col(&store, columns::NEAR_DUPLICATE_SCORE);
    let max_diff = scores.iter().zip(&reference.score).map(|(a, b)| (f64::from(*a) - b).abs()).fold(0.0, f64::max);
    assert!(max_diff <= 1e-5, "{name}: max |near_duplicate_score - cleanlab| = {max_diff:e}");
    assert_eq!(u32_col(&store, columns::DUPLICATE_GROUP), components(&reference.sets), "{name}: groups");
    let sp = &report.spaces[0];
    assert_eq!(sp.near_duplicates, reference.issue.iter().sum::<u32>() as usize);
    // The distances themselves agree with sklearn's to f32 rounding, so the median does too.
    let median_diff = (f64::from(sp.nn_median) - reference.median).abs();
    assert!(median_diff <= 1e-5 * reference.median, "{name}: median {} vs {}", sp.nn_median, reference.median);
    let nn_d = f32_col(&store, columns::NN_DISTANCE);
    let nn_flags: Vec<u32> = nn_d.iter().map(|&d| u32::from(d < 0.045)).collect();
    assert_eq!(u32_col(&store, columns::NN_FLAG), nn_flags, "{name}: nn_flag is nn distance < 0.045");
    assert_eq!(sp.nn_flagged, nn_flags.iter().sum::<u32>() as usize);

    // The sets, from the same neighbours the analysis stores.
    let knn =
        knn::exact_knn(&data.x, data.n, data.d, &KnnOptions::new(10, Metric::Cosine, Device::Cpu), &Hooks::none())
            .unwrap();
    let exact = duplicates::exact_duplicate_sets(&data.x, data.d, &row_hashes(data));
    let dists = duplicates::exact_distances(&knn, &data.x, data.d, Metric::Cosine);
    let nd = duplicates::near_duplicates(&knn, &dists, &exact, threshold);
    for (i, (ours, theirs)) in nd.sets.iter().zip(&reference.sets).enumerate() {
        assert_eq!(ours, theirs, "{name}: near-duplicate set of item {i}");
    }
    assert_eq!(nd.flags, flags);
    reference
}

#[test]
fn near_duplicates_match_cleanlab_datalab() {
    let digits = assert_near_duplicates_match(&data("digits"), "digits", 0.13);
    assert_eq!(digits.issue.iter().sum::<u32>(), 0, "digits has no duplicates at cleanlab's default");
    let dup = assert_near_duplicates_match(&digits_dup(), "digits_dup", 0.13);
    assert_eq!(dup.issue.iter().sum::<u32>(), 72, "the exact copies, and only those");
    // The set of 14 copies of row 5 is larger than k + 1: cleanlab's correction decides who is in whose set.
    assert_eq!(dup.sets[5].len(), 13);
    let near = assert_near_duplicates_match(&data("digits_near"), "digits_near", 0.13);
    assert!(near.issue[1839..].iter().all(|&f| f == 1), "near and scaled copies are near duplicates");
    assert_near_duplicates_match(&data("fashion"), "fashion", 0.13);
    let wide = assert_near_duplicates_match(&data("fashion"), "fashion_t05", 0.5);
    assert!(wide.issue.iter().sum::<u32>() > 300);
}

#[test]
fn equal_content_hashes_are_near_duplicates_whatever_the_embeddings() {
    let dg = data("digits");
    let mut hashes = row_hashes(&dg);
    hashes[8] = hashes[7];
    let dir = tempfile::tempdir().unwrap();
    let store = store_hashed(dir.path(), &dg, None, None, &hashes);
    let report = analysis::run(&store, &cpu_params(), &Hooks::none()).unwrap();
    let flags = u32_col(&store, columns::NEAR_DUPLICATE);
    assert_eq!(flags.iter().enumerate().filter(|(_, f)| **f == 1).map(|(i, _)| i).collect::<Vec<_>>(), [7, 8]);
    assert_eq!(u32_col(&store, columns::DUPLICATE_GROUP)[7..9], [7, 7]);
    assert_eq!(f32_col(&store, columns::NEAR_DUPLICATE_SCORE)[7..9], [0.0, 0.0]);
    assert_eq!((report.spaces[0].exact_duplicates, report.spaces[0].duplicate_groups), (2, 1));
    let text = analysis::summary(&report);
    assert!(text.contains("near duplicates: 2 items in 1 groups, 2 of them exact"), "{text}");
}

#[test]
fn three_dimensional_features_use_euclidean_like_cleanlab() {
    let dg = data("digits");
    let x: Vec<f32> = dg.x.chunks(dg.d).flat_map(|r| r[20..23].to_vec()).collect();
    let opts = KnnOptions::new(10, Metric::cleanlab_default(3), Device::Cpu);
    assert_eq!(opts.metric, Metric::Euclidean);
    let knn = knn::exact_knn(&x, dg.n, 3, &opts, &Hooks::none()).unwrap();
    let scores = outlier::outlier_scores(&knn, 10, Metric::Euclidean).scores;
    assert_scores_match(&scores, &load("low3_ood.npy").to_f64());
}

#[test]
fn label_issues_agree_with_cleanlab_confident_learning() {
    let probs = load("labels_probs.npy").to_f32();
    let given: Vec<Option<u32>> = load("labels_given.npy").to_f64().into_iter().map(|l| Some(l as u32)).collect();
    let expected: Vec<u32> = load("labels_issues.npy").to_f64().into_iter().map(|v| v as u32).collect();
    let quality = load("labels_quality.npy").to_f32();
    let ls = labels::label_scores(&probs, 10, &given);
    let disagree = ls.issue.iter().zip(&expected).filter(|(a, b)| a != b).count();
    assert_eq!(disagree, 0, "{disagree} label-issue flags differ from cleanlab ({} flagged there)", expected.len());
    assert!(expected.iter().sum::<u32>() > 100, "the reference flags a realistic number of issues");
    assert_eq!(ls.quality, quality);
    for i in 0..given.len() {
        let row = &probs[i * 10..(i + 1) * 10];
        assert_eq!(ls.confidence[i], row.iter().copied().fold(f32::MIN, f32::max));
        assert_eq!(row[ls.pred[i] as usize], ls.confidence[i]);
    }
}

#[test]
fn label_columns_only_when_classes_match_dataset_labels() {
    let probs = load("labels_probs.npy").to_f32();
    let given: Vec<u32> = load("labels_given.npy").to_f64().into_iter().map(|l| l as u32).collect();
    let dg = data("digits");
    let dir = tempfile::tempdir().unwrap();
    let store = store_with(dir.path(), &dg, Some(&given), Some((&probs, 10)));
    let report = analysis::run(&store, &cpu_params(), &Hooks::none()).unwrap();
    let expected: u32 = load("labels_issues.npy").to_f64().into_iter().map(|v| v as u32).sum();
    assert_eq!(report.spaces[0].label_issues, Some(expected as usize));
    assert_eq!(u32_col(&store, columns::LABEL_ISSUE).iter().sum::<u32>(), expected);
    assert_eq!(f32_col(&store, columns::LABEL_QUALITY), load("labels_quality.npy").to_f32());

    // A head with other classes than the dataset's (e.g. ImageNet on digits): no label scores, stale ones removed.
    let mut w = store.write_txn().unwrap();
    store.put_label_names(&mut w, &["a".to_string(), "b".to_string()]).unwrap();
    store.commit(w).unwrap();
    let report = analysis::run(&store, &cpu_params(), &Hooks::none()).unwrap();
    assert_eq!(report.spaces[0].label_issues, None);
    assert!(report.spaces[0].label_note.as_deref().unwrap().contains("10 classes"));
    assert!(store.column(&store.read_txn().unwrap(), "pixels", columns::LABEL_ISSUE).unwrap().is_none());
}

#[test]
fn approximate_mode_reports_recall_against_exact() {
    let dir = tempfile::tempdir().unwrap();
    let dg = data("digits");
    let store = store_with(dir.path(), &dg, None, None);
    let params = AnalysisParams { approximate: true, recall_sample: 300, ..cpu_params() };
    let report = analysis::run(&store, &params, &Hooks::none()).unwrap();
    let sp = &report.spaces[0];
    assert!(sp.approximate);
    assert_eq!(sp.recall_sample, 300);
    assert!(sp.ann_recall >= 0.95, "recall {}", sp.ann_recall);
    let ids = u32_col(&store, columns::KNN_IDS);
    assert!(ids.iter().all(|&j| (j as usize) < dg.n));
    assert!(ids.chunks(10).enumerate().all(|(i, r)| !r.contains(&(i as u32))), "self is excluded");
}

#[test]
fn unknown_space_and_cancel_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let dg = data("digits");
    let store = store_with(dir.path(), &dg, None, None);
    let params = AnalysisParams { spaces: vec!["nope".into()], ..cpu_params() };
    let err = analysis::run(&store, &params, &Hooks::none()).unwrap_err().to_string();
    assert!(err.contains("nope") && err.contains("pixels"), "{err}");
    let hooks = Hooks { progress: &|_, _, _| {}, cancel: &|| true };
    assert!(matches!(analysis::run(&store, &cpu_params(), &hooks), Err(analysis::AnalysisError::Cancelled)));
    assert!(store.column(&store.read_txn().unwrap(), "pixels", columns::OUTLIER_SCORE).unwrap().is_none());
}

#[test]
fn analyze_command_prints_a_summary_and_refuses_a_second_writer() {
    let dir = tempfile::tempdir().unwrap();
    let dg = data("digits");
    let store = store_with(dir.path(), &dg, None, None);
    let bin_path = common::bin::torchlight();
    let bin = bin_path.to_str().expect("a UTF-8 path");
    let out = std::process::Command::new(bin)
        .args(["analyze", "--no-umap", "--device", "cpu", "--store"])
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("top outliers") && stdout.contains("arroy recall@10"), "{stdout}");
    let _lock = store.lock_writer("ingest").unwrap();
    let out = std::process::Command::new(bin).args(["analyze", "--store"]).arg(dir.path()).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("busy") && stderr.contains("torchlight ingest"), "{stderr}");
}

#[test]
fn projections_are_written_and_later_spaces_aligned_to_the_first() {
    let dg = data("digits");
    // The same digits with columns reversed and negated: identical cosine geometry, PCA axes flipped.
    let flipped: Vec<f32> = dg.x.chunks(dg.d).flat_map(|r| r.iter().rev().map(|v| -v).collect::<Vec<_>>()).collect();
    let dir = tempfile::tempdir().unwrap();
    let store = store_with(dir.path(), &dg, None, None);
    let mut w = store.write_txn().unwrap();
    let sp = store.put_space(&mut w, precomputed_space("flipped", dg.d, 0)).unwrap();
    for i in 0..dg.n {
        store.put_embedding(&mut w, sp.index, i as u32, &flipped[i * dg.d..(i + 1) * dg.d]).unwrap();
    }
    store.commit(w).unwrap();
    let umap = analysis::UmapSettings { n_neighbors: 15, min_dist: 0.1, seed: 42, n_epochs: Some(100) };
    let report = analysis::run(&store, &AnalysisParams { umap: Some(umap), ..cpu_params() }, &Hooks::none()).unwrap();
    let col = |space: &str, name: &str| match store.column(&store.read_txn().unwrap(), space, name).unwrap() {
        Some(Column::F32 { width: 2, values }) => values,
        other => panic!("{space}/{name}: {other:?}"),
    };
    let (a, b) = (col("pixels", columns::PCA), col("flipped", columns::PCA));
    let scale = a.iter().fold(0f32, |m, v| m.max(v.abs()));
    let diff = a.iter().zip(&b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
    assert!(diff <= 1e-3 * scale, "aligned PCA differs by {diff} (scale {scale})");
    for space in ["pixels", "flipped"] {
        let u = col(space, columns::UMAP);
        assert_eq!(u.len(), 2 * dg.n);
        assert!(u.iter().all(|v| v.is_finite()));
    }
    let ratio = report.spaces[0].pca_explained_variance_ratio;
    assert!(ratio[0] > ratio[1] && ratio[1] > 0.05, "{ratio:?}");
}
