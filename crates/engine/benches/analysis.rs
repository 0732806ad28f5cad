//! torchlight's side of benches/analysis.py: exact kNN (k = 10, cosine) + cleanlab outlier scores on
//! Fashion-MNIST raw pixels, then (with LAYOUT.npy) the UMAP projection as `analyze` makes it: exact 15-NN,
//! PCA initialisation, UMAP, and the whole of one space's analysis (that 15-NN search also giving the scores).
//! Prints one JSON line with the timings and writes the scores (and layout) as .npy
//! so the script can check them against cleanlab's (and umap-learn's quality) in the same run.
//!
//! cargo bench --bench analysis -- N SCORES.npy [cpu|cuda] [LAYOUT.npy]
//! With BENCH_FEATURES=X.npy the first N rows of that float matrix (model embeddings) replace the pixels;
//! BENCH_SCREEN=0 turns the int8 screen off (plain f32 products); BENCH_PORTABLE=1 runs the portable loops
//! instead of the CPU's vector instructions (`Simd::Portable`); BENCH_REPEAT=R runs kNN + scores R times
//! and reports the median (and the fastest), which a busy machine's noise moves less than a single run;
//! BENCH_UMAP_EPOCHS=E sets UMAP's epochs (default umap-learn's: 500 up to 10,000 items, else 200).

use std::io::Read;
use std::time::Instant;

use torchlight_engine::analysis::knn::{self, KnnOptions, Metric, Simd};
use torchlight_engine::analysis::{Hooks, outlier, pca, umap};

fn idx_images(path: &str) -> Vec<u8> {
    let mut data = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path).expect("Fashion-MNIST under /usr/share/datasets"))
        .read_to_end(&mut data)
        .unwrap();
    data[16..].to_vec()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let n: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let out = args.get(1).cloned().unwrap_or_else(|| "/tmp/torchlight_scores.npy".into());
    let device =
        torchlight_engine::runtime::parse_device(args.get(2).map_or("cpu", String::as_str).parse().unwrap()).unwrap();
    let (x, d) = match std::env::var("BENCH_FEATURES") {
        Ok(path) => {
            let a = torchlight_store::npy::read(std::fs::File::open(&path).expect("BENCH_FEATURES file")).unwrap();
            let d = a.shape[1];
            (a.to_f32()[..n * d].to_vec(), d)
        }
        Err(_) => {
            let dir = "/usr/share/datasets/fashion-mnist";
            let mut pixels = idx_images(&format!("{dir}/t10k-images-idx3-ubyte.gz"));
            if n > 10_000 {
                pixels.extend(idx_images(&format!("{dir}/train-images-idx3-ubyte.gz")));
            }
            (pixels[..n * 784].iter().map(|&p| f32::from(p)).collect::<Vec<f32>>(), 784)
        }
    };
    let screen = std::env::var("BENCH_SCREEN").map_or(true, |v| v != "0");
    let portable = std::env::var("BENCH_PORTABLE").is_ok_and(|v| v == "1");
    let opts = KnnOptions {
        screen: if screen { knn::Screen::Auto } else { knn::Screen::Never },
        simd: if portable { Simd::Portable } else { Simd::Auto },
        ..KnnOptions::new(10, Metric::Cosine, device)
    };
    let repeat: usize = std::env::var("BENCH_REPEAT").ok().and_then(|v| v.parse().ok()).unwrap_or(1).max(1);
    let mut runs = Vec::new();
    let (mut scores, mut stats) = (None, None);
    for _ in 0..repeat {
        let t0 = Instant::now();
        let (knn, st) = knn::exact_knn_with_stats(&x, n, d, &opts, &Hooks::none()).unwrap();
        let t_knn = t0.elapsed().as_secs_f64();
        scores = Some(outlier::outlier_scores(&knn, 10, Metric::Cosine));
        runs.push((t0.elapsed().as_secs_f64(), t_knn));
        stats = st;
    }
    runs.sort_by(|a, b| a.0.total_cmp(&b.0));
    let ((total, t_knn), fastest) = (runs[runs.len() / 2], runs[0].0);
    let scores = scores.expect("at least one run");
    let f: Vec<f32> = scores.scores.iter().map(|&s| s as f32).collect();
    torchlight_store::npy::write_f32(std::fs::File::create(&out).unwrap(), &[n], &f).unwrap();
    // One space's analysis as `analyze` runs it: one 15-NN search whose first 10 columns give the scores, PCA,
    // UMAP. `umap_s` leaves the scores out, to compare with umap-learn (which searches its own neighbours).
    let (mut umap_s, mut analysis_s, mut stages) = (f64::NAN, f64::NAN, String::new());
    if let Some(layout_path) = args.get(3) {
        let epochs = std::env::var("BENCH_UMAP_EPOCHS").ok().and_then(|v| v.parse().ok());
        let params = umap::UmapParams { n_epochs: epochs, ..umap::UmapParams::default() };
        let t0 = Instant::now();
        let g = knn::exact_knn(&x, n, d, &KnnOptions { k: params.n_neighbors, ..opts }, &Hooks::none()).unwrap();
        let t_knn = t0.elapsed().as_secs_f64();
        std::hint::black_box(outlier::outlier_scores(&g.truncate(10), 10, Metric::Cosine));
        let t_scores = t0.elapsed().as_secs_f64();
        let init = pca::pca_2d(&x, n, d);
        let t_pca = t0.elapsed().as_secs_f64();
        let layout = umap::umap_2d(&g.ids, &g.dists, n, g.k, &params, &init.coords);
        analysis_s = t0.elapsed().as_secs_f64();
        umap_s = analysis_s - (t_scores - t_knn);
        stages = format!(
            ", \"stages\": {{\"knn15\": {t_knn:.4}, \"scores\": {:.4}, \"pca\": {:.4}, \"umap\": {:.4}}}",
            t_scores - t_knn,
            t_pca - t_scores,
            analysis_s - t_pca
        );
        torchlight_store::npy::write_f32(std::fs::File::create(layout_path).unwrap(), &[n, 2], &layout).unwrap();
    }
    let null_or = |v: f64| if v.is_nan() { "null".to_string() } else { format!("{v:.4}") };
    println!(
        "{{\"n\": {n}, \"device\": \"{device:?}\", \"threads\": {}, \"screen\": {screen}, \"portable\": {portable}, \"rescanned\": {}, \"declined\": {}, \"runs\": {repeat}, \"knn_s\": {t_knn:.4}, \"knn_outlier_s\": {total:.4}, \"fastest_s\": {fastest:.4}, \"umap_s\": {}, \"analysis_s\": {}{stages}}}",
        rayon::current_num_threads(),
        stats.map_or("null".to_string(), |s| s.rescanned.to_string()),
        stats.is_some_and(|s| s.declined),
        null_or(umap_s),
        null_or(analysis_s),
    );
}
