//! UMAP (McInnes, Healy & Melville 2018) in 2-D from a precomputed kNN graph, following umap-learn 0.5's
//! documented behaviour, and the two measures used to judge a layout (trustworthiness, k-NN label accuracy).
//!
//! What matches umap-learn: the fuzzy simplicial set (smooth_knn_dist with local_connectivity 1 and
//! bandwidth 1, self counted as a neighbour, fuzzy union a + b - ab), pruning of weights below
//! max / n_epochs, epochs_per_sample, the (a, b) curve fit for min_dist with spread 1, 500 epochs up to 10k
//! points and 200 above, 5 negative samples per positive one, learning rate 1 decaying linearly, gradient
//! clipping at 4, and a PCA start scaled to [0, 10] with 1e-4 noise (umap-learn's "pca" init).
//!
//! What differs, on purpose: umap-learn's seeded run is single-threaded and updates both ends of an edge in
//! place. Here each epoch reads the other points' positions from a snapshot taken at the start of the
//! epoch and every point moves only itself (its attraction step counted twice, since the graph is
//! symmetric and umap-learn moves both ends of each of the two directed edges). Points are independent
//! within an epoch, so epochs run in parallel on rayon and the layout depends only on the seed: it is
//! identical for any thread count. Negative samples come from a per-point splitmix64 stream, and the negative
//! samples of one edge all push from the position the point had before them, summed: independent steps,
//! computed side by side, where a chain of dependent ones would wait on each power in turn
//! (trustworthiness unchanged: tests/projection.rs and benches/analysis.py compare it with umap-learn's).

use rayon::prelude::*;

/// Parameters of [`umap_2d`], defaults as umap-learn's `UMAP()` with `random_state=42`.
#[derive(Debug, Clone, PartialEq)]
pub struct UmapParams {
    /// Size of the local neighbourhood, the point itself included (umap-learn's `n_neighbors`).
    pub n_neighbors: usize,
    /// Minimum distance between points in the layout (umap-learn's `min_dist`, spread is 1).
    pub min_dist: f32,
    /// Seed of the negative sampling and of the initial noise.
    pub seed: u64,
    /// Optimisation epochs; `None`: 500 for n <= 10,000, else 200.
    pub n_epochs: Option<usize>,
    /// Step size at the first epoch, decaying linearly to 0 (umap-learn's `learning_rate`).
    pub learning_rate: f32,
}

impl Default for UmapParams {
    fn default() -> Self {
        UmapParams { n_neighbors: 15, min_dist: 0.1, seed: 42, n_epochs: None, learning_rate: 1.0 }
    }
}

const SMOOTH_K_TOLERANCE: f64 = 1e-5;
const MIN_K_DIST_SCALE: f64 = 1e-3;
const NEGATIVE_SAMPLE_RATE: usize = 5;
const REPULSION_STRENGTH: f32 = 1.0;
const GRAD_CLIP: f32 = 4.0;
/// Points per parallel task in an epoch: fixed, so results do not depend on the thread count.
const CHUNK_POINTS: usize = 256;

/// 2-D UMAP layout (n * 2, row-major) of n items from their kNN graph.
///
/// `knn_ids` / `knn_dists`: n * k row-major, each item's k nearest neighbours WITHOUT itself, nearest first,
/// cosine distances (1 - cos); ids >= n mark missing neighbours. The first `n_neighbors - 1` of them and the
/// item itself form the neighbourhood. `init`: n * 2 starting layout (e.g. PCA coordinates; only its shape
/// matters, it is rescaled); empty for a seeded uniform random start.
///
/// Panics when the slices do not have the sizes above.
pub fn umap_2d(knn_ids: &[u32], knn_dists: &[f32], n: usize, k: usize, params: &UmapParams, init: &[f32]) -> Vec<f32> {
    assert_eq!(knn_ids.len(), n * k, "umap_2d: knn_ids must hold n * k ids");
    assert_eq!(knn_dists.len(), n * k, "umap_2d: knn_dists must hold n * k distances");
    assert!(init.is_empty() || init.len() == n * 2, "umap_2d: init must be empty or hold n * 2 coordinates");
    if n == 0 {
        return Vec::new();
    }
    let n_epochs = params.n_epochs.unwrap_or(default_epochs(n));
    let graph = fuzzy_simplicial_set(knn_ids, knn_dists, n, k, params.n_neighbors);
    let graph = prune(graph, n_epochs.max(1));
    let mut embedding = initial_layout(init, n, params.seed);
    if n_epochs == 0 || graph.weights.is_empty() {
        return embedding;
    }
    let (a, b) = find_ab_params(1.0, params.min_dist as f64);
    optimize_layout(&mut embedding, &graph, n_epochs, a as f32, b as f32, params);
    embedding
}

/// umap-learn's epoch count: 500 up to 10,000 points, 200 above.
pub fn default_epochs(n: usize) -> usize {
    if n <= 10_000 { 500 } else { 200 }
}

/// Epochs of a layout started from a neighbouring layout (the previous checkpoint's) instead of PCA: the
/// coarse structure is already in place, so 30% of the default comes within a few thousandths of a full
/// run's trustworthiness (tests/drift.rs checks it on Fashion-MNIST), and the points move less than a fresh
/// run's would.
pub fn warm_start_epochs(n: usize) -> usize {
    default_epochs(n) * 3 / 10
}

impl UmapParams {
    /// These parameters for a layout started from a neighbouring one (the previous checkpoint's) instead of
    /// PCA: `warm_start_epochs` unless epochs are set, from a quarter of the learning rate, as umap-learn's
    /// `transform` places new points into a fitted layout. The coarse structure is already in place; a full
    /// step would shake it loose before the fewer epochs could settle it again.
    pub fn warm_start(&self, n: usize) -> UmapParams {
        UmapParams {
            n_epochs: self.n_epochs.or(Some(warm_start_epochs(n))),
            learning_rate: self.learning_rate / 4.0,
            ..self.clone()
        }
    }
}

/// Symmetric fuzzy graph in CSR form: the out-edges of point i are `cols[row_ptr[i]..row_ptr[i + 1]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct FuzzyGraph {
    pub row_ptr: Vec<usize>,
    pub cols: Vec<u32>,
    pub weights: Vec<f32>,
}

/// umap-learn's `smooth_knn_dist` for one point: `dists` holds the distances to the point's neighbourhood,
/// itself first (0). Returns (sigma, rho).
fn smooth_knn_dist(dists: &[f32], mean_distances: f64) -> (f32, f32) {
    let target = (dists.len() as f64).log2();
    // local_connectivity = 1: rho is the nearest non-zero distance.
    let rho = dists.iter().copied().find(|&v| v > 0.0).map_or(0.0, |v| v as f64);
    let (mut lo, mut hi, mut mid) = (0.0f64, f64::INFINITY, 1.0f64);
    for _ in 0..64 {
        let mut psum = 0.0f64;
        for &dist in &dists[1..] {
            let d = dist as f64 - rho;
            psum += if d > 0.0 { (-(d / mid)).exp() } else { 1.0 };
        }
        if (psum - target).abs() < SMOOTH_K_TOLERANCE {
            break;
        }
        if psum > target {
            hi = mid;
            mid = (lo + hi) / 2.0;
        } else {
            lo = mid;
            if hi == f64::INFINITY {
                mid *= 2.0;
            } else {
                mid = (lo + hi) / 2.0;
            }
        }
    }
    let floor = if rho > 0.0 {
        MIN_K_DIST_SCALE * dists.iter().map(|&v| v as f64).sum::<f64>() / dists.len() as f64
    } else {
        MIN_K_DIST_SCALE * mean_distances
    };
    // umap-learn keeps sigma and rho in float32.
    (mid.max(floor) as f32, rho as f32)
}

/// The fuzzy simplicial set of umap-learn's `fuzzy_simplicial_set` (set_op_mix_ratio 1), from a kNN graph
/// without self; see [`umap_2d`] for the arguments.
pub fn fuzzy_simplicial_set(knn_ids: &[u32], knn_dists: &[f32], n: usize, k: usize, n_neighbors: usize) -> FuzzyGraph {
    let kk = n_neighbors.saturating_sub(1).clamp(1, k.max(1)).min(k);
    let row = |i: usize| -> Vec<f32> {
        let mut v = Vec::with_capacity(kk + 1);
        v.push(0.0);
        v.extend_from_slice(&knn_dists[i * k..i * k + kk]);
        v
    };
    // umap-learn's mean over the whole (n, n_neighbors) distance matrix, self column included.
    let mean_distances = if kk == 0 {
        0.0
    } else {
        (0..n).map(|i| knn_dists[i * k..i * k + kk].iter().map(|&v| v as f64).sum::<f64>()).sum::<f64>()
            / (n * (kk + 1)) as f64
    };
    let sigma_rho: Vec<(f32, f32)> = (0..n).into_par_iter().map(|i| smooth_knn_dist(&row(i), mean_distances)).collect();

    // Directed memberships (i -> j), then the fuzzy union with the transpose: w = a + b - a b.
    // Entries carry a flag: false for (i, j, a_ij), true for the transposed copy (j, i, a_ij).
    let mut entries: Vec<(u32, u32, bool, f32)> = Vec::with_capacity(2 * n * kk);
    for i in 0..n {
        let (sigma, rho) = sigma_rho[i];
        for j in 0..kk {
            let id = knn_ids[i * k + j];
            if id as usize >= n || id as usize == i {
                continue;
            }
            let d = knn_dists[i * k + j];
            let val = if d - rho <= 0.0 || sigma == 0.0 { 1.0 } else { (-((d - rho) / sigma)).exp() };
            if val > 0.0 {
                entries.push((i as u32, id, false, val));
                entries.push((id, i as u32, true, val));
            }
        }
    }
    entries.par_sort_unstable_by(|x, y| (x.0, x.1, x.2).cmp(&(y.0, y.1, y.2)));
    let mut row_ptr = vec![0usize; n + 1];
    let mut cols = Vec::with_capacity(entries.len());
    let mut weights = Vec::with_capacity(entries.len());
    let mut e = 0;
    while e < entries.len() {
        let (r, c) = (entries[e].0, entries[e].1);
        let (mut a, mut b) = (0.0f32, 0.0f32);
        while e < entries.len() && entries[e].0 == r && entries[e].1 == c {
            // Repeated ids in a row add up, as scipy's sum_duplicates does.
            if entries[e].2 {
                b += entries[e].3;
            } else {
                a += entries[e].3;
            }
            e += 1;
        }
        let w = a + b - a * b;
        if w > 0.0 {
            cols.push(c);
            weights.push(w);
            row_ptr[r as usize + 1] += 1;
        }
    }
    for i in 0..n {
        row_ptr[i + 1] += row_ptr[i];
    }
    FuzzyGraph { row_ptr, cols, weights }
}

/// Drops edges too weak to be sampled once in `n_epochs` (umap-learn's `graph.data < max / n_epochs`).
fn prune(graph: FuzzyGraph, n_epochs: usize) -> FuzzyGraph {
    let max = graph.weights.iter().copied().fold(0.0f32, f32::max);
    let epochs = if n_epochs > 10 { n_epochs } else { 500 } as f32;
    let threshold = max / epochs;
    let n = graph.row_ptr.len() - 1;
    let mut out = FuzzyGraph { row_ptr: vec![0; n + 1], cols: Vec::new(), weights: Vec::new() };
    for i in 0..n {
        for e in graph.row_ptr[i]..graph.row_ptr[i + 1] {
            if graph.weights[e] >= threshold {
                out.cols.push(graph.cols[e]);
                out.weights.push(graph.weights[e]);
            }
        }
        out.row_ptr[i + 1] = out.cols.len();
    }
    out
}

/// umap-learn's handling of a PCA start: scale so the largest |coordinate| is 10, add N(0, 1e-4) noise
/// (separates duplicates), then scale each axis to [0, 10].
fn initial_layout(init: &[f32], n: usize, seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed ^ 0x5EED_1A17);
    let mut coords: Vec<f32> = if init.is_empty() {
        (0..2 * n).map(|_| rng.uniform() * 20.0 - 10.0).collect()
    } else {
        let max_abs = init.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let expansion = if max_abs > 0.0 && max_abs.is_finite() { 10.0 / max_abs } else { 1.0 };
        init.iter().map(|&v| if v.is_finite() { v * expansion } else { 0.0 } + 1e-4 * rng.normal()).collect()
    };
    for axis in 0..2 {
        let (lo, hi) = coords
            .iter()
            .skip(axis)
            .step_by(2)
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| (lo.min(v), hi.max(v)));
        let range = if hi > lo { hi - lo } else { 1.0 };
        for v in coords.iter_mut().skip(axis).step_by(2) {
            *v = 10.0 * (*v - lo) / range;
        }
    }
    coords
}

/// Fits `1 / (1 + a x^(2b))` to umap-learn's target curve (1 below `min_dist`, `exp(-(x - min_dist) /
/// spread)` above) on 300 points of [0, 3 spread] by least squares, as umap-learn's `find_ab_params`
/// (scipy `curve_fit`, Levenberg-Marquardt from a = b = 1).
pub fn find_ab_params(spread: f64, min_dist: f64) -> (f64, f64) {
    let xs: Vec<f64> = (0..300).map(|i| spread * 3.0 * i as f64 / 299.0).collect();
    let ys: Vec<f64> = xs.iter().map(|&x| if x < min_dist { 1.0 } else { (-(x - min_dist) / spread).exp() }).collect();
    let cost = |a: f64, b: f64| -> f64 {
        xs.iter().zip(&ys).map(|(&x, &y)| (1.0 / (1.0 + a * x.powf(2.0 * b)) - y).powi(2)).sum()
    };
    let (mut a, mut b) = (1.0f64, 1.0f64);
    let mut lambda = 1e-3;
    let mut current = cost(a, b);
    for _ in 0..500 {
        // Normal equations J^T J and J^T r of the residuals r = f - y.
        let (mut jaa, mut jab, mut jbb, mut ga, mut gb) = (0.0, 0.0, 0.0, 0.0, 0.0);
        for (&x, &y) in xs.iter().zip(&ys) {
            if x <= 0.0 {
                continue; // f = 1 and both derivatives vanish at x = 0
            }
            let p = x.powf(2.0 * b);
            let den = 1.0 + a * p;
            let f = 1.0 / den;
            let da = -p / (den * den);
            let db = -a * p * 2.0 * x.ln() / (den * den);
            let r = f - y;
            jaa += da * da;
            jab += da * db;
            jbb += db * db;
            ga += da * r;
            gb += db * r;
        }
        let mut improved = false;
        for _ in 0..40 {
            let (m11, m22) = (jaa * (1.0 + lambda), jbb * (1.0 + lambda));
            let det = m11 * m22 - jab * jab;
            if det == 0.0 {
                lambda *= 10.0;
                continue;
            }
            let step_a = -(m22 * ga - jab * gb) / det;
            let step_b = -(m11 * gb - jab * ga) / det;
            let (na, nb) = (a + step_a, b + step_b);
            let c = if na > 0.0 && nb > 0.0 { cost(na, nb) } else { f64::INFINITY };
            if c < current {
                let done = (current - c) <= 1e-15 * current.max(1e-300)
                    && step_a.abs() <= 1e-12 * a.abs()
                    && step_b.abs() <= 1e-12 * b.abs();
                a = na;
                b = nb;
                current = c;
                lambda = (lambda / 10.0).max(1e-12);
                improved = !done;
                break;
            }
            lambda *= 10.0;
        }
        if !improved {
            break;
        }
    }
    (a, b)
}

/// Per-point splitmix64 stream: cheap, seedable, and independent of the order points are processed in.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform integer below `n` (Lemire's multiply-shift).
    fn below(&mut self, n: u32) -> u32 {
        (((self.next_u64() >> 32) * n as u64) >> 32) as u32
    }

    fn uniform(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }

    /// Standard normal by Box-Muller.
    fn normal(&mut self) -> f32 {
        let u1 = ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
        let u2 = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
    }
}

/// Per-edge sampling schedule, laid out like the graph's edges.
struct Schedule {
    epochs_per_sample: Vec<f32>,
    next_sample: Vec<f32>,
    epochs_per_negative: Vec<f32>,
    next_negative: Vec<f32>,
}

fn optimize_layout(embedding: &mut [f32], graph: &FuzzyGraph, n_epochs: usize, a: f32, b: f32, params: &UmapParams) {
    let seed = params.seed;
    let n = graph.row_ptr.len() - 1;
    let max = graph.weights.iter().copied().fold(0.0f32, f32::max);
    // umap-learn: n_samples = n_epochs * w / max; epochs_per_sample = n_epochs / n_samples (in f64).
    let epochs_per_sample: Vec<f32> = graph
        .weights
        .iter()
        .map(|&w| {
            let samples = n_epochs as f64 * (w as f64 / max as f64);
            (n_epochs as f64 / samples) as f32
        })
        .collect();
    let epochs_per_negative: Vec<f32> = epochs_per_sample.iter().map(|&e| e / NEGATIVE_SAMPLE_RATE as f32).collect();
    let mut schedule = Schedule {
        next_sample: epochs_per_sample.clone(),
        next_negative: epochs_per_negative.clone(),
        epochs_per_sample,
        epochs_per_negative,
    };
    let mut rngs: Vec<Rng> =
        (0..n).map(|i| Rng::new(Rng::new(seed ^ (i as u64).wrapping_mul(0xA24B_AED4)).next_u64())).collect();
    let mut snapshot = embedding.to_vec();
    let mut alpha = params.learning_rate;
    for epoch in 0..n_epochs {
        snapshot.copy_from_slice(embedding);
        let ctx = EpochContext { graph, snapshot: &snapshot, a, b, alpha, epoch: epoch as f32, n: n as u32 };
        // Split points, their edges' schedules and their rngs into the same fixed chunks.
        let mut tasks = Vec::with_capacity(n.div_ceil(CHUNK_POINTS));
        let (mut emb, mut rng_rest) = (&mut embedding[..], &mut rngs[..]);
        let (mut eps, mut next, mut epn, mut nextn) = (
            &schedule.epochs_per_sample[..],
            &mut schedule.next_sample[..],
            &schedule.epochs_per_negative[..],
            &mut schedule.next_negative[..],
        );
        let mut start = 0;
        while start < n {
            let end = (start + CHUNK_POINTS).min(n);
            let edges = graph.row_ptr[end] - graph.row_ptr[start];
            let (e_head, e_tail) = emb.split_at_mut((end - start) * 2);
            let (r_head, r_tail) = rng_rest.split_at_mut(end - start);
            let (a1, a2) = eps.split_at(edges);
            let (b1, b2) = next.split_at_mut(edges);
            let (c1, c2) = epn.split_at(edges);
            let (d1, d2) = nextn.split_at_mut(edges);
            tasks.push((start, e_head, r_head, a1, b1, c1, d1));
            (emb, rng_rest, eps, next, epn, nextn) = (e_tail, r_tail, a2, b2, c2, d2);
            start = end;
        }
        tasks.into_par_iter().for_each(|(first, emb, rngs, eps, next, epn, nextn)| {
            ctx.run_chunk(first, emb, rngs, eps, next, epn, nextn);
        });
        alpha = params.learning_rate * (1.0 - epoch as f32 / n_epochs as f32);
    }
}

struct EpochContext<'a> {
    graph: &'a FuzzyGraph,
    snapshot: &'a [f32],
    a: f32,
    b: f32,
    alpha: f32,
    epoch: f32,
    n: u32,
}

/// x^y for x > 0 as 2^(y log2 x) with short polynomials: relative error below 2e-5, several times cheaper
/// than `powf`, which dominates the SGD loop. Gradients are clipped and noisy anyway.
#[inline]
fn fast_pow(x: f32, y: f32) -> f32 {
    fast_exp2(y * fast_log2(x.max(1e-30)))
}

#[inline]
fn fast_log2(x: f32) -> f32 {
    let bits = x.to_bits();
    let exponent = ((bits >> 23) & 0xff) as i32 - 127;
    let m = f32::from_bits((bits & 0x007f_ffff) | 0x3f80_0000); // mantissa in [1, 2)
    // log2(m) = 2 / ln 2 * atanh(t), t = (m - 1) / (m + 1) in [0, 1/3]
    let t = (m - 1.0) / (m + 1.0);
    let t2 = t * t;
    let series = t * (1.0 + t2 * (1.0 / 3.0 + t2 * (1.0 / 5.0 + t2 * (1.0 / 7.0 + t2 * (1.0 / 9.0)))));
    exponent as f32 + series * (2.0 / std::f32::consts::LN_2)
}

#[inline]
fn fast_exp2(y: f32) -> f32 {
    let y = y.clamp(-126.0, 126.0);
    // floor by truncation: `f32::floor` is a libm call on baseline x86-64 (no SSE4.1 round).
    let t = y as i32;
    let i = if (t as f32) > y { t - 1 } else { t };
    let f = (y - i as f32) * std::f32::consts::LN_2; // 2^(y - i) = e^f, f in [0, ln 2)
    let p = 1.0 + f * (1.0 + f * (0.5 + f * (1.0 / 6.0 + f * (1.0 / 24.0 + f * (1.0 / 120.0 + f * (1.0 / 720.0))))));
    f32::from_bits(((i + 127) as u32) << 23) * p
}

/// Negative samples handled side by side: a fixed width the compiler turns into vector instructions.
const LANES: usize = 8;

/// The summed, clipped repulsion from up to `LANES` negative samples at offsets (dx, dy); a zero offset (an
/// unused lane, or the point itself) pushes nothing.
#[inline]
fn repulsion(dx: &[f32; LANES], dy: &[f32; LANES], a: f32, b: f32) -> [f32; 2] {
    let (mut sx, mut sy) = ([0.0f32; LANES], [0.0f32; LANES]);
    for l in 0..LANES {
        let d2 = dx[l] * dx[l] + dy[l] * dy[l];
        let p = fast_pow(d2, b);
        let coeff = 2.0 * REPULSION_STRENGTH * b / ((0.001 + d2) * (a * p + 1.0));
        let coeff = if d2 > 0.0 { coeff } else { 0.0 };
        (sx[l], sy[l]) = (clip(coeff * dx[l]), clip(coeff * dy[l]));
    }
    [sx.iter().sum(), sy.iter().sum()]
}

#[inline]
fn clip(v: f32) -> f32 {
    v.clamp(-GRAD_CLIP, GRAD_CLIP)
}

impl EpochContext<'_> {
    /// One epoch for points `first..first + rngs.len()`; `emb` and the schedule slices cover exactly them.
    #[allow(clippy::too_many_arguments)]
    fn run_chunk(
        &self,
        first: usize,
        emb: &mut [f32],
        rngs: &mut [Rng],
        eps: &[f32],
        next: &mut [f32],
        epn: &[f32],
        nextn: &mut [f32],
    ) {
        let (a, b, alpha, epoch) = (self.a, self.b, self.alpha, self.epoch);
        let snap = self.snapshot;
        let edge0 = self.graph.row_ptr[first];
        for (local, rng) in rngs.iter_mut().enumerate() {
            let j = first + local;
            let mut cur = [emb[2 * local], emb[2 * local + 1]];
            for e in self.graph.row_ptr[j]..self.graph.row_ptr[j + 1] {
                let le = e - edge0;
                if next[le] > epoch {
                    continue;
                }
                let k = self.graph.cols[e] as usize;
                let other = [snap[2 * k], snap[2 * k + 1]];
                let diff = [cur[0] - other[0], cur[1] - other[1]];
                let d2 = diff[0] * diff[0] + diff[1] * diff[1];
                if d2 > 0.0 {
                    let p = fast_pow(d2, b);
                    let coeff = -2.0 * a * b * (p / d2) / (a * p + 1.0);
                    // Twice: umap-learn also moves this point as the tail of the reverse edge.
                    cur[0] += 2.0 * clip(coeff * diff[0]) * alpha;
                    cur[1] += 2.0 * clip(coeff * diff[1]) * alpha;
                }
                next[le] += eps[le];
                let n_neg = ((epoch - nextn[le]) / epn[le]) as usize;
                let mut push = [0.0f32; 2];
                let mut left = n_neg;
                while left > 0 {
                    let (mut dx, mut dy) = ([0.0f32; LANES], [0.0f32; LANES]);
                    for l in 0..left.min(LANES) {
                        let k = rng.below(self.n) as usize;
                        (dx[l], dy[l]) = (cur[0] - snap[2 * k], cur[1] - snap[2 * k + 1]);
                    }
                    let step = repulsion(&dx, &dy, a, b);
                    push = [push[0] + step[0], push[1] + step[1]];
                    left -= left.min(LANES);
                }
                cur[0] += push[0] * alpha;
                cur[1] += push[1] * alpha;
                nextn[le] += n_neg as f32 * epn[le];
            }
            emb[2 * local] = cur[0];
            emb[2 * local + 1] = cur[1];
        }
    }
}

/// Trustworthiness of a 2-D layout (n * 2) of `x` (n * d row-major) with cosine distance in the input
/// space and euclidean in the layout: sklearn's `sklearn.manifold.trustworthiness(x, layout, n_neighbors=k,
/// metric="cosine")`. 1 means every layout neighbour is also an input neighbour. O(n^2 d), parallel.
pub fn trustworthiness_cosine(x: &[f32], n: usize, d: usize, layout: &[f32], k: usize) -> f64 {
    assert_eq!(x.len(), n * d, "trustworthiness: x must hold n * d values");
    assert_eq!(layout.len(), n * 2, "trustworthiness: layout must hold n * 2 values");
    assert!(k < n / 2, "trustworthiness: k must be below n / 2");
    let unit: Vec<f32> = x
        .par_chunks(d)
        .flat_map_iter(|row| {
            let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt();
            let s = if norm > 0.0 { 1.0 / norm } else { 0.0 };
            row.iter().map(move |v| v * s)
        })
        .collect();
    let layout_nn = layout_neighbours(layout, n, k);
    const BLOCK: usize = 64;
    let penalty: u64 = (0..n.div_ceil(BLOCK))
        .into_par_iter()
        .map(|blk| {
            let r0 = blk * BLOCK;
            let rows = BLOCK.min(n - r0);
            let mut sim = vec![0.0f32; rows * n];
            // sim = unit[r0..r0+rows] (rows x d) * unit^T (d x n)
            unsafe {
                matrixmultiply::sgemm(
                    rows,
                    d,
                    n,
                    1.0,
                    unit[r0 * d..].as_ptr(),
                    d as isize,
                    1,
                    unit.as_ptr(),
                    1,
                    d as isize,
                    0.0,
                    sim.as_mut_ptr(),
                    n as isize,
                    1,
                );
            }
            let mut total = 0u64;
            let mut thresholds = vec![(0.0f32, 0usize); k];
            let mut ranks = vec![0usize; k];
            for r in 0..rows {
                let i = r0 + r;
                let dist = |m: usize| (1.0 - sim[r * n + m]).clamp(0.0, 2.0);
                for (t, &j) in thresholds.iter_mut().zip(&layout_nn[i * k..(i + 1) * k]) {
                    *t = (dist(j as usize), j as usize);
                }
                ranks.iter_mut().for_each(|v| *v = 1);
                for m in (0..n).filter(|&m| m != i) {
                    let dm = dist(m);
                    for (rank, &(dj, j)) in ranks.iter_mut().zip(&thresholds) {
                        // Rank of j in i's input-space order (1 = nearest); ties by index.
                        *rank += (dm < dj || (dm == dj && m < j)) as usize;
                    }
                }
                total += ranks.iter().map(|&r| r.saturating_sub(k) as u64).sum::<u64>();
            }
            total
        })
        .sum();
    let (n, k) = (n as f64, k as f64);
    1.0 - penalty as f64 * 2.0 / (n * k * (2.0 * n - 3.0 * k - 1.0))
}

/// The k nearest points of each point in a 2-D layout (euclidean, self excluded, ties by index), n * k.
pub fn layout_neighbours(layout: &[f32], n: usize, k: usize) -> Vec<u32> {
    (0..n)
        .into_par_iter()
        .flat_map_iter(|i| {
            let (xi, yi) = (layout[2 * i], layout[2 * i + 1]);
            let mut best: Vec<(f32, u32)> = Vec::with_capacity(k + 1);
            for m in (0..n).filter(|&m| m != i) {
                let (dx, dy) = (layout[2 * m] - xi, layout[2 * m + 1] - yi);
                let d2 = dx * dx + dy * dy;
                if best.len() == k && d2 >= best[k - 1].0 {
                    continue;
                }
                let pos = best.partition_point(|&(v, _)| v <= d2);
                best.insert(pos, (d2, m as u32));
                best.truncate(k);
            }
            best.into_iter().map(|(_, m)| m)
        })
        .collect()
}

/// Leave-one-out k-NN label accuracy on a 2-D layout: each point takes the majority label of its k nearest
/// layout neighbours (ties to the smallest label); the fraction whose vote equals its own label.
pub fn knn_label_accuracy(layout: &[f32], labels: &[u32], k: usize) -> f64 {
    let n = labels.len();
    assert_eq!(layout.len(), n * 2, "knn_label_accuracy: layout must hold n * 2 values");
    if n == 0 {
        return 0.0;
    }
    let nn = layout_neighbours(layout, n, k);
    let classes = labels.iter().copied().max().unwrap_or(0) as usize + 1;
    let correct = (0..n)
        .filter(|&i| {
            let mut votes = vec![0u32; classes];
            for &j in &nn[i * k..(i + 1) * k] {
                votes[labels[j as usize] as usize] += 1;
            }
            let best = (0..classes).fold(0, |b, c| if votes[c] > votes[b] { c } else { b });
            best as u32 == labels[i]
        })
        .count();
    correct as f64 / n as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_pow_is_accurate() {
        for &x in &[1e-12f32, 1e-6, 0.003, 0.5, 1.0, 1.7, 42.0, 1e4, 3e7] {
            for &y in &[0.79f32, 0.895, 1.33, 1.92] {
                let (got, want) = (fast_pow(x, y), (x as f64).powf(y as f64));
                assert!(((got as f64 - want) / want).abs() < 2e-5, "{x}^{y}: {got} vs {want}");
            }
        }
    }

    #[test]
    fn smooth_knn_dist_hits_log2_k() {
        let dists = [0.0, 0.1, 0.2, 0.25, 0.4, 0.41, 0.5, 0.7];
        let (sigma, rho) = smooth_knn_dist(&dists, 0.3);
        assert_eq!(rho, 0.1);
        let psum: f64 = dists[1..].iter().map(|&d| (-((d as f64 - 0.1).max(0.0)) / sigma as f64).exp()).sum();
        assert!((psum - 3.0).abs() < 1e-4, "psum {psum}");
    }

    #[test]
    fn fuzzy_union_is_symmetric() {
        // 4 points, 2 neighbours each.
        let ids = [1, 2, 0, 2, 1, 3, 2, 1];
        let dists = [0.1, 0.3, 0.1, 0.2, 0.2, 0.25, 0.25, 0.5];
        let g = fuzzy_simplicial_set(&ids, &dists, 4, 2, 3);
        let w = |i: usize, j: u32| {
            (g.row_ptr[i]..g.row_ptr[i + 1]).find(|&e| g.cols[e] == j).map(|e| g.weights[e]).unwrap_or(0.0)
        };
        for i in 0..4 {
            for j in 0..4u32 {
                assert_eq!(w(i, j), w(j as usize, i as u32));
            }
        }
        assert_eq!(w(0, 1), 1.0, "nearest neighbour has membership 1");
    }
}
