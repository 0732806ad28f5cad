//! PCA, UMAP and Procrustes against sklearn, umap-learn and scipy on real data (sklearn digits and the first
//! 2000 Fashion-MNIST t10k images). References: tests/fixtures/projection/gen_reference.py.

use std::io::Read;
use std::path::PathBuf;

use serde_json::Value;
use torchlight_engine::analysis::{pca, procrustes, umap};

fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/projection").join(name)
}

fn read_bytes(name: &str) -> Vec<u8> {
    let raw = std::fs::read(fixture_path(name)).unwrap_or_else(|e| panic!("reading fixture {name}: {e}"));
    if name.ends_with(".gz") {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&raw[..]).read_to_end(&mut out).expect("gunzip fixture");
        out
    } else {
        raw
    }
}

fn read_f32(name: &str) -> Vec<f32> {
    read_bytes(name).chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()
}

fn read_u32(name: &str) -> Vec<u32> {
    read_bytes(name).chunks_exact(4).map(|c| u32::from_le_bytes(c.try_into().unwrap())).collect()
}

fn reference() -> Value {
    serde_json::from_slice(&read_bytes("reference.json")).expect("reference.json parses")
}

fn f64s(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("array")
        .iter()
        .flat_map(|x| x.as_array().cloned().unwrap_or_else(|| vec![x.clone()]))
        .map(|x| x.as_f64().unwrap())
        .collect()
}

struct Dataset {
    x: Vec<f32>,
    labels: Vec<u32>,
    n: usize,
    d: usize,
    k: usize,
    knn_ids: Vec<u32>,
    knn_dists: Vec<f32>,
    umap_learn: Vec<f32>,
    reference: Value,
}

fn dataset(name: &str) -> Dataset {
    let reference = reference()[name].clone();
    let n = reference["n"].as_u64().unwrap() as usize;
    let d = reference["d"].as_u64().unwrap() as usize;
    let k = reference["k"].as_u64().unwrap() as usize;
    let scale = reference["scale"].as_f64().unwrap() as f32;
    let x: Vec<f32> = read_bytes(&format!("{name}.x.u8.gz")).iter().map(|&v| v as f32 / scale).collect();
    assert_eq!(x.len(), n * d);
    let labels: Vec<u32> = read_bytes(&format!("{name}.labels.u8")).iter().map(|&v| v as u32).collect();
    let knn_ids = read_u32(&format!("{name}.knn_ids.u32.gz"));
    let knn_dists = read_f32(&format!("{name}.knn_dists.f32.gz"));
    assert_eq!(knn_ids.len(), n * k);
    let umap_learn = read_f32(&format!("{name}.umap.f32"));
    Dataset { x, labels, n, d, k, knn_ids, knn_dists, umap_learn, reference }
}

fn check_pca(name: &str) {
    let ds = dataset(name);
    let p = pca::pca_2d(&ds.x, ds.n, ds.d);
    let r = &ds.reference["pca"];
    let ev = f64s(&r["explained_variance"]);
    let ratio = f64s(&r["explained_variance_ratio"]);
    for c in 0..2 {
        let tol = 1e-4 * ev[c].abs().max(1.0);
        assert!(
            (p.explained_variance[c] - ev[c]).abs() <= tol,
            "{name} ev[{c}] {} vs sklearn {}",
            p.explained_variance[c],
            ev[c]
        );
        assert!(
            (p.explained_variance_ratio[c] - ratio[c]).abs() <= 1e-5,
            "{name} ratio[{c}] {} vs {}",
            p.explained_variance_ratio[c],
            ratio[c]
        );
    }
    // Same axes with the same signs (svd_flip), hence the same coordinates.
    let comps = f64s(&r["components"]);
    let max_comp = p.components.iter().zip(&comps).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
    assert!(max_comp < 1e-4, "{name}: components differ from sklearn's by {max_comp}");
    let first = f64s(&r["first_coords"]);
    let coord_scale = ev[0].sqrt();
    for (i, (&a, &b)) in p.coords.iter().zip(&first).enumerate() {
        assert!((a as f64 - b).abs() <= 1e-4 * coord_scale, "{name} coord {i}: {a} vs sklearn {b}");
    }
}

#[test]
fn pca_matches_sklearn_on_digits() {
    check_pca("digits");
}

#[test]
fn pca_matches_sklearn_on_fashion_mnist() {
    check_pca("fashion2k");
}

#[test]
fn trustworthiness_equals_sklearn_on_umap_learn_layouts() {
    for name in ["digits", "fashion2k"] {
        let ds = dataset(name);
        let r = &ds.reference["umap_learn"];
        let t = umap::trustworthiness_cosine(&ds.x, ds.n, ds.d, &ds.umap_learn, 10);
        let want = r["trustworthiness_cosine"].as_f64().unwrap();
        assert!((t - want).abs() < 1e-4, "{name}: trustworthiness {t} vs sklearn {want}");
        let acc = umap::knn_label_accuracy(&ds.umap_learn, &ds.labels, 10);
        let want = r["knn10_label_accuracy"].as_f64().unwrap();
        assert!((acc - want).abs() < 1e-3, "{name}: label accuracy {acc} vs python {want}");
    }
}

fn check_umap(name: &str) {
    let ds = dataset(name);
    let init = pca::pca_2d(&ds.x, ds.n, ds.d).coords;
    let layout = umap::umap_2d(&ds.knn_ids, &ds.knn_dists, ds.n, ds.k, &umap::UmapParams::default(), &init);
    assert_eq!(layout.len(), ds.n * 2);
    assert!(layout.iter().all(|v| v.is_finite()));
    let t = umap::trustworthiness_cosine(&ds.x, ds.n, ds.d, &layout, 10);
    let acc = umap::knn_label_accuracy(&layout, &ds.labels, 10);
    let r = &ds.reference["umap_learn"];
    let (t_ref, acc_ref) = (r["trustworthiness_cosine"].as_f64().unwrap(), r["knn10_label_accuracy"].as_f64().unwrap());
    println!("{name}: torchlight Tcos {t:.4} acc {acc:.4}; umap-learn Tcos {t_ref:.4} acc {acc_ref:.4}");
    assert!(t >= t_ref - 0.01, "{name}: trustworthiness {t} below umap-learn's {t_ref} - 0.01");
    assert!(acc >= acc_ref - 0.03, "{name}: 10-NN label accuracy {acc} below umap-learn's {acc_ref} - 0.03");
}

#[test]
fn umap_matches_umap_learn_quality_on_digits() {
    check_umap("digits");
}

#[test]
fn umap_matches_umap_learn_quality_on_fashion_mnist() {
    check_umap("fashion2k");
}

#[test]
fn umap_is_deterministic_across_thread_counts() {
    let ds = dataset("digits");
    let init = pca::pca_2d(&ds.x, ds.n, ds.d).coords;
    let params = umap::UmapParams { n_epochs: Some(60), ..Default::default() };
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| umap::umap_2d(&ds.knn_ids, &ds.knn_dists, ds.n, ds.k, &params, &init))
    };
    let one = run(1);
    assert_eq!(one, run(3), "layout changed with the thread count");
    assert_eq!(one, run(1), "layout changed between runs");
    let other_seed =
        umap::umap_2d(&ds.knn_ids, &ds.knn_dists, ds.n, ds.k, &umap::UmapParams { seed: 7, ..params }, &init);
    assert_ne!(one, other_seed, "the seed has no effect");
}

#[test]
fn find_ab_params_matches_umap_learn() {
    let r = reference();
    for (min_dist, ab) in r["find_ab_params"].as_object().unwrap() {
        let want = f64s(ab);
        let (a, b) = umap::find_ab_params(1.0, min_dist.parse().unwrap());
        assert!(
            (a - want[0]).abs() < 1e-4 * want[0] && (b - want[1]).abs() < 1e-4 * want[1],
            "min_dist {min_dist}: ({a}, {b}) vs umap-learn {want:?}"
        );
    }
}

#[test]
fn procrustes_recovers_a_rotated_scaled_shifted_reflected_copy() {
    let ds = dataset("fashion2k");
    let reference = pca::pca_2d(&ds.x, ds.n, ds.d).coords;
    let (c, s) = (0.3f32.cos(), 0.3f32.sin());
    // Reflect x, rotate by 0.3 rad, scale by 7, shift by (100, -40).
    let target: Vec<f32> = reference
        .chunks_exact(2)
        .flat_map(|p| {
            let (x, y) = (-p[0], p[1]);
            [7.0 * (c * x - s * y) + 100.0, 7.0 * (s * x + c * y) - 40.0]
        })
        .collect();
    let aligned = procrustes::align(&reference, &target, ds.n);
    let spread = reference.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let worst = aligned.iter().zip(&reference).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    assert!(worst < 1e-4 * spread, "recovered points off by {worst} (spread {spread})");
    assert!(procrustes::disparity(&reference, &aligned, ds.n) < 1e-9);
}

#[test]
fn procrustes_disparity_equals_scipy_on_pca_vs_umap_learn() {
    for name in ["digits", "fashion2k"] {
        let ds = dataset(name);
        let first = f64s(&ds.reference["pca"]["first_coords"]);
        let pca_coords = pca::pca_2d(&ds.x, ds.n, ds.d).coords;
        assert!((pca_coords[0] as f64 - first[0]).abs() < 1e-3);
        let aligned = procrustes::align(&pca_coords, &ds.umap_learn, ds.n);
        let got = procrustes::disparity(&pca_coords, &aligned, ds.n);
        let want = ds.reference["procrustes_pca_vs_umap_learn_disparity"].as_f64().unwrap();
        assert!((got - want).abs() < 1e-5, "{name}: disparity {got} vs scipy {want}");
        // Aligned points live in the reference's frame: same centroid.
        let centroid = |v: &[f32], a: usize| v.iter().skip(a).step_by(2).map(|&x| x as f64).sum::<f64>() / ds.n as f64;
        for axis in 0..2 {
            assert!((centroid(&aligned, axis) - centroid(&pca_coords, axis)).abs() < 1e-3);
        }
    }
}
