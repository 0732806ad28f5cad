//! Drift columns against the reference tests/fixtures/analysis/gen_drift.py computed with scikit-learn and
//! cleanlab on three "checkpoints" of the digits, and the chain of aligned projections of a series.

use crate::common;

use std::fs::File;
use std::path::Path;

use common::fixtures::precomputed_space;
use tch::Device;
use torchlight_engine::analysis::{self, AnalysisParams, Hooks, UmapSettings, pca, procrustes};
use torchlight_store::export::{self, TableFormat, Values};
use torchlight_store::npy::{self, NpyArray};
use torchlight_store::{Column, Item, Series, SeriesStep, Store, columns};

fn load(name: &str) -> NpyArray {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/analysis").join(name);
    let f = File::open(&path).unwrap_or_else(|e| panic!("fixture {name}: {e}"));
    if name.ends_with(".gz") { npy::read(flate2::read::GzDecoder::new(f)) } else { npy::read(f) }.unwrap()
}

/// The fixture's steps: (steps, n, d, row-major x of each step).
fn steps() -> (usize, usize, Vec<Vec<f32>>) {
    let a = load("drift_x.npy.gz");
    let (s, n, d) = (a.shape[0], a.shape[1], a.shape[2]);
    let x = a.to_f32();
    (n, d, (0..s).map(|i| x[i * n * d..(i + 1) * n * d].to_vec()).collect())
}

/// A store with one space per (name, x) and, when `series`, a Series of them at steps 0, 10, 20, ...
fn store_of(dir: &Path, spaces: &[(&str, &[f32])], n: usize, d: usize, series: bool) -> Store {
    let store = Store::create_or_open(dir).unwrap();
    let mut w = store.write_txn().unwrap();
    for i in 0..n {
        let item = Item { source: format!("img{i}.png"), label: None, width: 8, height: 8, hash: i as u64 };
        store.put_item(&mut w, i as u32, &item).unwrap();
    }
    for (name, x) in spaces {
        let sp = store.put_space(&mut w, precomputed_space(name, d, 0)).unwrap();
        for i in 0..n {
            store.put_embedding(&mut w, sp.index, i as u32, &x[i * d..(i + 1) * d]).unwrap();
        }
    }
    if series {
        let steps =
            spaces.iter().enumerate().map(|(i, (name, _))| SeriesStep { space: name.to_string(), step: 10 * i as u64 });
        store.put_series(&mut w, &Series { steps: steps.collect(), losses: Vec::new(), finetuned: None }).unwrap();
    }
    store.commit(w).unwrap();
    store
}

fn f32_col(store: &Store, space: &str, name: &str) -> Vec<f32> {
    match store.column(&store.read_txn().unwrap(), space, name).unwrap() {
        Some(Column::F32 { values, .. }) => values,
        other => panic!("column {name} of '{space}': {other:?}"),
    }
}

fn params(umap: bool) -> AnalysisParams {
    let umap = umap.then_some(UmapSettings { n_neighbors: 15, min_dist: 0.1, seed: 42, n_epochs: None });
    AnalysisParams { device: Device::Cpu, umap, recall_sample: 50, ..AnalysisParams::default() }
}

/// Jaccard within f32 rounding of sklearn's sets, rank changes equal to cleanlab's ranks.
fn assert_matches_reference(store: &Store, under: &str, row: usize) {
    let n = load("drift_jaccard.npy").shape[1];
    let jac = &load("drift_jaccard.npy").to_f64()[row * n..(row + 1) * n];
    let rank = &load("drift_rank_change.npy").to_f64()[row * n..(row + 1) * n];
    let got_j = f32_col(store, under, columns::DRIFT_KNN_JACCARD);
    let got_r = f32_col(store, under, columns::DRIFT_RANK_CHANGE);
    for i in 0..n {
        assert!(
            (f64::from(got_j[i]) - jac[i]).abs() < 1e-6,
            "jaccard of item {i} under '{under}': {} vs {}",
            got_j[i],
            jac[i]
        );
        assert_eq!(f64::from(got_r[i]), rank[i], "rank change of item {i} under '{under}'");
    }
    // The fixture drifts: not every item keeps its neighbours and rank.
    assert!(jac.iter().any(|&j| j < 1.0) && rank.iter().any(|&r| r != 0.0));
}

#[test]
fn series_drift_matches_sklearn_and_cleanlab() {
    let dir = tempfile::tempdir().unwrap();
    let (n, d, xs) = steps();
    let names = ["foundation", "step-10", "step-20"];
    let spaces: Vec<(&str, &[f32])> = names.iter().zip(&xs).map(|(name, x)| (*name, x.as_slice())).collect();
    let store = store_of(dir.path(), &spaces, n, d, true);
    let report = analysis::run(&store, &params(true), &Hooks::none()).unwrap();
    let umap_stage = |s: usize| report.spaces[s].timings.iter().find(|t| t.0.starts_with("umap")).unwrap().0;
    assert_eq!([umap_stage(0), umap_stage(1), umap_stage(2)], ["umap", "umap (warm start)", "umap (warm start)"]);

    assert_matches_reference(&store, "", 0);
    assert_matches_reference(&store, "step-10", 1);
    assert_matches_reference(&store, "step-20", 2);
    assert!(store.column(&store.read_txn().unwrap(), "foundation", columns::DRIFT_KNN_JACCARD).unwrap().is_none());

    // Each step's PCA is aligned to the step before it, and movement is measured in that chained frame.
    let stored: Vec<Vec<f32>> = names.iter().map(|s| f32_col(&store, s, columns::PCA)).collect();
    for s in 1..names.len() {
        let expected = procrustes::align(&stored[s - 1], &pca::pca_2d(&xs[s], n, d).coords, n);
        let diff = expected.iter().zip(&stored[s]).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(diff < 1e-3, "{}: PCA differs from the one aligned to {} by {diff}", names[s], names[s - 1]);
    }
    // Movement is measured in UMAP, which is present.
    let umaps: Vec<Vec<f32>> = names.iter().map(|s| f32_col(&store, s, columns::UMAP)).collect();
    for s in 1..names.len() {
        let moved = f32_col(&store, names[s], columns::DRIFT_MOVEMENT);
        let (p, q) = (&umaps[s - 1], &umaps[s]);
        for i in 0..n {
            assert!((moved[i] - (q[2 * i] - p[2 * i]).hypot(q[2 * i + 1] - p[2 * i + 1])).abs() < 1e-5);
        }
    }
    let moved = f32_col(&store, "", columns::DRIFT_MOVEMENT);
    let (p, q) = (&umaps[0], &umaps[2]);
    for i in 0..n {
        assert!((moved[i] - (q[2 * i] - p[2 * i]).hypot(q[2 * i + 1] - p[2 * i + 1])).abs() < 1e-5);
    }

    assert_eq!(report.drift.len(), 3);
    let text = analysis::summary(&report);
    assert!(text.contains("drift foundation -> step-20:"), "{text}");
    assert!(text.contains("drift step-10 -> step-20 (columns under step-20):"), "{text}");
    let mean = load("drift_jaccard.npy").to_f64()[..n].iter().sum::<f64>() / n as f64;
    assert!(text.contains(&format!("mean kNN Jaccard {mean:.3}")), "{text}");
}

#[test]
fn foundation_and_finetuned_drift_without_a_series() {
    let dir = tempfile::tempdir().unwrap();
    let (n, d, xs) = steps();
    let store = store_of(dir.path(), &[("foundation", &xs[0]), ("finetuned", &xs[2])], n, d, false);
    analysis::run(&store, &params(false), &Hooks::none()).unwrap();
    assert_matches_reference(&store, "", 0);
    assert!(f32_col(&store, "", columns::DRIFT_MOVEMENT).iter().all(|m| m.is_finite() && *m >= 0.0));
}

#[test]
fn identical_spaces_do_not_drift() {
    let dir = tempfile::tempdir().unwrap();
    let (n, d, xs) = steps();
    let store = store_of(dir.path(), &[("foundation", &xs[1]), ("finetuned", &xs[1])], n, d, false);
    let report = analysis::run(&store, &params(true), &Hooks::none()).unwrap();
    assert!(f32_col(&store, "", columns::DRIFT_KNN_JACCARD).iter().all(|&j| j == 1.0));
    assert!(f32_col(&store, "", columns::DRIFT_RANK_CHANGE).iter().all(|&r| r == 0.0));
    // UMAP is present, so movement is measured there; the same layout aligned to itself stays put.
    assert_eq!(report.drift[0].projection, Some(columns::UMAP));
    let span = f32_col(&store, "foundation", columns::UMAP).iter().fold(0.0f32, |m, v| m.max(v.abs()));
    assert!(f32_col(&store, "", columns::DRIFT_MOVEMENT).iter().all(|&m| m < 1e-3 * span));
}

#[test]
fn export_writes_the_drift_columns() {
    let dir = tempfile::tempdir().unwrap();
    let (n, d, xs) = steps();
    let names = ["foundation", "step-10", "step-20"];
    let spaces: Vec<(&str, &[f32])> = names.iter().zip(&xs).map(|(name, x)| (*name, x.as_slice())).collect();
    let store = store_of(dir.path(), &spaces, n, d, true);
    analysis::run(&store, &params(false), &Hooks::none()).unwrap();
    let table = export::build_table(&store, false).unwrap();
    let wanted = [("", "drift_knn_jaccard"), ("", "drift_movement"), ("", "drift_rank_change")].into_iter().chain(
        names[1..].iter().flat_map(|s| {
            [columns::DRIFT_KNN_JACCARD, columns::DRIFT_MOVEMENT, columns::DRIFT_RANK_CHANGE].map(|c| (*s, c))
        }),
    );
    for (space, name) in wanted {
        let header = if space.is_empty() { name.to_string() } else { format!("{name}.{space}") };
        match table.get(&header) {
            Some(Values::Float(v)) => {
                let stored = f32_col(&store, space, name);
                assert_eq!(v.iter().map(|x| x.unwrap()).collect::<Vec<_>>(), stored, "{header}");
            }
            other => panic!("column {header}: {other:?}"),
        }
    }
    assert!(table.get("drift_knn_jaccard.foundation").is_none(), "the first step has no predecessor");

    // Through a file: the CSV holds the reference's rank changes under the plain name.
    let csv = dir.path().join("t.csv");
    export::write_table(&table, &csv, TableFormat::Csv).unwrap();
    let text = std::fs::read_to_string(&csv).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = header.iter().position(|h| *h == "drift_rank_change").unwrap();
    let rank = load("drift_rank_change.npy").to_f64();
    for (i, line) in lines.enumerate() {
        let v: f64 = line.split(',').nth(col).unwrap().parse().unwrap();
        assert_eq!(v, rank[i], "row {i}");
    }
}

/// Fashion-MNIST's first 2000 test images as step 0 and, as step 1, the same pulled a third of the way towards
/// their class means with seeded noise: a fine-tuning step's worth of change.
fn fashion_steps() -> (usize, usize, Vec<f32>, Vec<f32>) {
    let x = load("fashion_x.npy.gz");
    let y: Vec<usize> = load("fashion_y.npy").to_f64().iter().map(|&v| v as usize).collect();
    let (n, d) = (x.shape[0], x.shape[1]);
    let x0 = x.to_f32();
    let mut means = vec![0f32; 10 * d];
    let mut counts = [0f32; 10];
    for i in 0..n {
        counts[y[i]] += 1.0;
        for j in 0..d {
            means[y[i] * d + j] += x0[i * d + j];
        }
    }
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut noise = || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 40.0
    };
    let x1 = (0..n * d)
        .map(|p| {
            let (i, j) = (p / d, p % d);
            let mean = means[y[i] * d + j] / counts[y[i]];
            x0[p] + (mean - x0[p]) / 3.0 + noise()
        })
        .collect();
    (n, d, x0, x1)
}

#[test]
fn warm_started_umap_keeps_quality_in_fewer_epochs() {
    use torchlight_engine::analysis::knn::{self, KnnOptions, Metric};
    use torchlight_engine::analysis::umap;
    let (n, d, x0, x1) = fashion_steps();
    let opts = KnnOptions::new(15, Metric::Cosine, Device::Cpu);
    let (g0, g1) = (
        knn::exact_knn(&x0, n, d, &opts, &Hooks::none()).unwrap(),
        knn::exact_knn(&x1, n, d, &opts, &Hooks::none()).unwrap(),
    );
    let defaults = umap::UmapParams::default();
    let layout0 = umap::umap_2d(&g0.ids, &g0.dists, n, g0.k, &defaults, &pca::pca_2d(&x0, n, d).coords);
    let cold = umap::umap_2d(&g1.ids, &g1.dists, n, g1.k, &defaults, &pca::pca_2d(&x1, n, d).coords);
    let warm_params = defaults.warm_start(n);
    let warm = umap::umap_2d(&g1.ids, &g1.dists, n, g1.k, &warm_params, &layout0);
    assert!(umap::warm_start_epochs(n) * 3 <= umap::default_epochs(n));

    // Equal quality: seeds of a cold run alone spread the trustworthiness by about 0.0013 here.
    let trust = |l: &[f32]| umap::trustworthiness_cosine(&x1, n, d, l, 10);
    let (t_cold, t_warm) = (trust(&cold), trust(&warm));
    assert!(t_warm >= t_cold - 0.003, "warm-start trustworthiness {t_warm:.4} vs cold {t_cold:.4}");
    // Continuity: aligned to the previous layout, the warm start moved the points much less.
    let moved = |l: &[f32]| procrustes::disparity(&layout0, &procrustes::align(&layout0, l, n), n);
    let (m_cold, m_warm) = (moved(&cold), moved(&warm));
    assert!(m_warm * 2.0 < m_cold, "Procrustes disparity to the previous layout: warm {m_warm:.4}, cold {m_cold:.4}");
}
