//! Cost of analysing a checkpoint series against one space: Fashion-MNIST test images (raw pixels) as the
//! foundation and CHECKPOINTS perturbed copies as the steps of a fine-tuning run (each pulled further towards
//! its class mean, with seeded noise), analysed by `analysis::run` on the CPU as `torchlight analyze` does
//! (kNN, scores, PCA, UMAP, arroy index, drift). Prints the per-space stage timings and the ratio.
//!
//! cargo bench -p torchlight-engine --bench series -- [N] [CHECKPOINTS]      (defaults 10000 and 10)
//! Reads t10k-images/labels from $FASHION_MNIST_DIR (default /usr/share/datasets/fashion-mnist).

use std::io::Read;
use std::path::Path;
use std::time::Instant;

use tch::Device;
use torchlight_engine::analysis::{self, AnalysisParams, Hooks, knn, pca, umap};
use torchlight_store::{Column, Item, ModelSpec, Series, SeriesStep, SpaceInfo, Store, columns};

fn idx(path: &Path, header: usize) -> Vec<u8> {
    let file = std::fs::File::open(path)
        .unwrap_or_else(|e| panic!("{}: {e}; set FASHION_MNIST_DIR to Fashion-MNIST's IDX directory", path.display()));
    let mut data = Vec::new();
    flate2::read::GzDecoder::new(file).read_to_end(&mut data).unwrap();
    data[header..].to_vec()
}

fn space(name: &str) -> SpaceInfo {
    let model = ModelSpec {
        kind: "precomputed".into(),
        source: "bench".into(),
        fingerprint: "bench".into(),
        pooling: "none".into(),
        image_size: 0,
    };
    SpaceInfo { name: name.into(), index: 0, dim: 784, model, num_classes: 0, class_names: Vec::new() }
}

/// A store holding `spaces` (name, row-major n x 784) and, with more than one, a Series of them.
fn store_of(dir: &Path, spaces: &[(String, Vec<f32>)], n: usize) -> Store {
    let store = Store::create_or_open(dir).unwrap();
    let mut w = store.write_txn().unwrap();
    for i in 0..n {
        let item = Item { source: format!("t10k#{i}"), label: None, width: 28, height: 28, hash: i as u64 };
        store.put_item(&mut w, i as u32, &item).unwrap();
    }
    for (name, x) in spaces {
        let sp = store.put_space(&mut w, space(name)).unwrap();
        for i in 0..n {
            store.put_embedding(&mut w, sp.index, i as u32, &x[i * 784..(i + 1) * 784]).unwrap();
        }
    }
    if spaces.len() > 1 {
        let steps =
            spaces.iter().enumerate().map(|(s, (name, _))| SeriesStep { space: name.clone(), step: 100 * s as u64 });
        store.put_series(&mut w, &Series { steps: steps.collect(), losses: Vec::new(), finetuned: None }).unwrap();
    }
    store.commit(w).unwrap();
    store
}

fn analyse(store: &Store) -> (f64, analysis::AnalysisReport) {
    let params = AnalysisParams { device: Device::Cpu, ..AnalysisParams::default() };
    let t0 = Instant::now();
    let report = analysis::run(store, &params, &Hooks::none()).unwrap();
    (t0.elapsed().as_secs_f64(), report)
}

fn main() {
    let args: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let n = args.first().copied().unwrap_or(10_000).min(10_000);
    let checkpoints = args.get(1).copied().unwrap_or(10);
    let dir = std::env::var("FASHION_MNIST_DIR").unwrap_or_else(|_| "/usr/share/datasets/fashion-mnist".into());
    let pixels = idx(&Path::new(&dir).join("t10k-images-idx3-ubyte.gz"), 16);
    let labels = idx(&Path::new(&dir).join("t10k-labels-idx1-ubyte.gz"), 8);
    let x0: Vec<f32> = pixels[..n * 784].iter().map(|&p| f32::from(p)).collect();
    let mut means = vec![0f32; 10 * 784];
    let mut counts = [0f32; 10];
    for i in 0..n {
        let c = labels[i] as usize;
        counts[c] += 1.0;
        for j in 0..784 {
            means[c * 784 + j] += x0[i * 784 + j];
        }
    }
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut noise = move || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 20.0
    };
    let mut spaces = vec![("foundation".to_string(), x0.clone())];
    for s in 1..=checkpoints {
        let pull = 0.5 * s as f32 / checkpoints as f32;
        let x = (0..n * 784)
            .map(|p| {
                let c = labels[p / 784] as usize;
                let mean = means[c * 784 + p % 784] / counts[c];
                x0[p] + pull * (mean - x0[p]) + noise()
            })
            .collect();
        spaces.push((format!("step-{}", 100 * s), x));
    }

    let tmp = tempfile::tempdir().unwrap();
    let single = store_of(&tmp.path().join("single"), &spaces[..1], n);
    let (t_single, report) = analyse(&single);
    drop(single);
    let series = store_of(&tmp.path().join("series"), &spaces, n);
    let (t_series, series_report) = analyse(&series);

    // The last step once more with a cold UMAP (PCA start, default epochs) beside the warm-started layout the
    // series stored: time of each and their trustworthiness.
    let (last_name, last_x) = spaces.last().unwrap();
    let warm_layout = match series.column(&series.read_txn().unwrap(), last_name, columns::UMAP).unwrap() {
        Some(Column::F32 { values, .. }) => values,
        other => panic!("no UMAP column in {last_name}: {other:?}"),
    };
    let opts = knn::KnnOptions::new(15, knn::Metric::Cosine, Device::Cpu);
    let g = knn::exact_knn(last_x, n, 784, &opts, &Hooks::none()).unwrap();
    let t0 = Instant::now();
    let cold_params = umap::UmapParams::default();
    let cold = umap::umap_2d(&g.ids, &g.dists, n, g.k, &cold_params, &pca::pca_2d(last_x, n, 784).coords);
    let t_cold = t0.elapsed().as_secs_f64();
    let t_warm = series_report.spaces.last().unwrap().timings.iter().find(|t| t.0.starts_with("umap")).unwrap().1;
    let trust = |layout: &[f32]| umap::trustworthiness_cosine(last_x, n, 784, layout, 10);

    let threads = rayon::current_num_threads();
    println!(
        "{n} items x 784, {threads} threads, load {}",
        std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim()
    );
    for sp in report.spaces.iter().chain(&series_report.spaces) {
        let times: Vec<String> = sp.timings.iter().map(|(k, v)| format!("{k} {v:.2}")).collect();
        println!("  {}: {}", sp.name, times.join(", "));
    }
    println!("single space: {t_single:.2} s");
    println!(
        "series of the foundation + {checkpoints} checkpoints ({} spaces): {t_series:.2} s = {:.2}x the single space",
        checkpoints + 1,
        t_series / t_single
    );
    println!(
        "{last_name} UMAP: warm start ({} epochs) {t_warm:.2} s, trustworthiness {:.4}; cold ({} epochs, PCA start) \
         {t_cold:.2} s, trustworthiness {:.4}",
        umap::warm_start_epochs(n),
        trust(&warm_layout),
        umap::default_epochs(n),
        trust(&cold)
    );
}
