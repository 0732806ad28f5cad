//! Exact k-nearest neighbours by blocked matrix products in libtorch.
//!
//! Three paths, chosen by device, metric and `KnnOptions::screen` (`exact_knn_with_stats`):
//! - CPU, cosine, f32 (`topk`, `Screen::Never`): the similarity matrix is symmetric, so only blocks `I <= J`
//!   are multiplied (`blocked`), and each product feeds the running top-k of both its row items and its column
//!   items. This halves the flops of the plain approach and avoids `topk`'s per-row sort.
//! - CPU, cosine, screened (`screen`, the default): the same symmetric blocked scan over an int8 product keeps
//!   a few dozen candidates per item, and an f32 re-rank with a proof per item gives the f32 path's
//!   neighbours; items without a proof are searched exactly.
//! - GPU, or euclidean (`device`): blocks of queries against the whole matrix on the device, `topk` there,
//!   and only `k` candidates per query come back to the host.
//!
//! All paths then recompute the distances of the chosen candidates in f64 from the raw vectors (exact
//! duplicates come out at exactly 0, as cleanlab's correction makes them) and sort by (distance, id).
//! Memory is bounded by the block size: the normalised matrix itself, one `B x B` product (CPU) or one
//! `bq x N` product (GPU), and `N x k` results; the screen holds the `N x d` int8 matrix and `N x 2c`
//! candidate slots instead of the normalised matrix (`rows::UnitRows`). The CPU loops' vector code lives in
//! `simd`.

mod blocked;
mod device;
mod rows;
mod screen;
mod simd;
mod topk;

use rayon::prelude::*;
use tch::Device;

pub use simd::Simd;

use super::{AnalysisError, Hooks};

/// Distance of the neighbour search. cleanlab uses cosine above 3 dimensions, euclidean otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// `1 - cos(a, b)`, as sklearn's `cosine_distances` (a zero vector is at distance 1 from everything).
    Cosine,
    Euclidean,
}

impl Metric {
    /// cleanlab's `decide_default_metric`: cosine when the feature dimension is above 3.
    pub fn cleanlab_default(dim: usize) -> Metric {
        if dim > 3 { Metric::Cosine } else { Metric::Euclidean }
    }
}

/// The `k` nearest neighbours of every item (itself excluded), nearest first, row-major `[n, k]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Knn {
    pub n: usize,
    pub k: usize,
    pub ids: Vec<u32>,
    pub dists: Vec<f32>,
}

impl Knn {
    pub fn row_ids(&self, i: usize) -> &[u32] {
        &self.ids[i * self.k..(i + 1) * self.k]
    }

    pub fn row_dists(&self, i: usize) -> &[f32] {
        &self.dists[i * self.k..(i + 1) * self.k]
    }

    /// The first `k` columns (the lists are sorted, so these are the `k` nearest).
    pub fn truncate(&self, k: usize) -> Knn {
        let k = k.min(self.k);
        let mut ids = Vec::with_capacity(self.n * k);
        let mut dists = Vec::with_capacity(self.n * k);
        for i in 0..self.n {
            ids.extend_from_slice(&self.row_ids(i)[..k]);
            dists.extend_from_slice(&self.row_dists(i)[..k]);
        }
        Knn { n: self.n, k, ids, dists }
    }
}

/// How to search. `KnnOptions::new` gives the defaults, where the path follows from the device and the metric;
/// `force_topk`, `screen` and `simd` choose among code paths that give the same neighbours (tests and
/// benchmarks compare them), `block` and `device_block_bytes` bound the memory of one product.
#[derive(Debug, Clone, Copy)]
pub struct KnnOptions {
    pub k: usize,
    pub metric: Metric,
    pub device: Device,
    /// Rows per block on the CPU path (0 = automatic).
    pub block: usize,
    /// Bytes one query-block product may take on the device path.
    pub device_block_bytes: usize,
    /// The device path (query blocks against all items, `topk`) even on the CPU, where the symmetric paths
    /// would run: the GPU's code, run without a GPU.
    pub force_topk: bool,
    /// CPU cosine path: whether to screen candidates with an int8 product and re-rank them exactly (the same
    /// neighbours as the plain f32 path, ties at f32 resolution aside).
    pub screen: Screen,
    /// The machine code of the CPU loops: the CPU's vector instructions, or the portable loops.
    pub simd: Simd,
}

/// When the CPU cosine path uses the int8 screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Screen {
    /// Where a pilot on a few items predicts it pays: on data whose neighbours lie closer together than int8
    /// resolves, most items would end without a proof and be searched again, and plain f32 is faster.
    Auto,
    /// Always, without the pilot: the screen's neighbours are exact whether it pays or not, so this changes
    /// only the speed; it runs the screen on data where the pilot would decline it.
    Always,
    /// Never: f32 products throughout.
    Never,
}

impl KnnOptions {
    pub fn new(k: usize, metric: Metric, device: Device) -> KnnOptions {
        KnnOptions {
            k,
            metric,
            device,
            block: 0,
            device_block_bytes: 1 << 30,
            force_topk: false,
            screen: Screen::Auto,
            simd: Simd::Auto,
        }
    }
}

/// What the int8 screen did: how many candidates it kept per item, and for how many items the proof that the
/// exact neighbours are among them failed, so that they were searched exactly against all items.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScreenStats {
    pub candidates: usize,
    pub rescanned: usize,
    /// `Screen::Auto` only: the pilot predicted too many items without a proof, and the f32 path ran instead.
    pub declined: bool,
}

/// Exact kNN of all `n` rows of the row-major `[n, d]` matrix `x`.
pub fn exact_knn(x: &[f32], n: usize, d: usize, opts: &KnnOptions, hooks: &Hooks) -> Result<Knn, AnalysisError> {
    Ok(exact_knn_with_stats(x, n, d, opts, hooks)?.0)
}

/// `exact_knn`, with what the int8 screen did when it ran (None when another path ran).
pub fn exact_knn_with_stats(
    x: &[f32],
    n: usize,
    d: usize,
    opts: &KnnOptions,
    hooks: &Hooks,
) -> Result<(Knn, Option<ScreenStats>), AnalysisError> {
    assert_eq!(x.len(), n * d, "matrix is not n x d");
    if n < 2 {
        return Err(AnalysisError::TooFewItems { n });
    }
    let k = opts.k.min(n - 1);
    let mut stats = None;
    let candidates = if opts.device == Device::Cpu && opts.metric == Metric::Cosine && !opts.force_topk {
        if opts.screen != Screen::Never && screen::screen_applies(x, d) {
            let (cand, st) = screen::screened_cpu(x, n, d, k, opts, hooks)?;
            stats = Some(st);
            cand
        } else {
            topk::symmetric_cpu(x, n, d, k, opts.block, simd::Kernels::new(opts.simd), hooks)?
        }
    } else {
        let queries: Vec<u32> = (0..n as u32).collect();
        device::query_blocks(x, n, d, &queries, k, opts, hooks)?
    };
    Ok((refine(x, d, opts.metric, candidates, n, k), stats))
}

/// Exact kNN of the given query items (each excluding itself) against all `n` rows: the reference for
/// measuring an approximate index on a sample.
pub fn exact_knn_of(
    x: &[f32],
    n: usize,
    d: usize,
    queries: &[u32],
    opts: &KnnOptions,
    hooks: &Hooks,
) -> Result<Knn, AnalysisError> {
    if n < 2 {
        return Err(AnalysisError::TooFewItems { n });
    }
    let k = opts.k.min(n - 1);
    let candidates = device::query_blocks(x, n, d, queries, k, opts, hooks)?;
    let mut knn = refine(x, d, opts.metric, candidates, queries.len(), k);
    knn.n = queries.len();
    Ok(knn)
}

/// Candidate neighbour ids per query, `k` each (u32::MAX for none), with the similarity that chose them.
struct Candidates {
    queries: Vec<u32>,
    ids: Vec<u32>,
    sims: Vec<f32>,
}

fn check_cancel(hooks: &Hooks) -> Result<(), AnalysisError> {
    if (hooks.cancel)() { Err(AnalysisError::Cancelled) } else { Ok(()) }
}

/// Distances of the candidates, sorted by (distance, id). Cosine distances come from the f32 similarity
/// of the unit rows (sklearn computes them in f32 too); an exact duplicate, whose similarity rounds to
/// about 1 - 6e-8, gets exactly 0 as cleanlab's correction gives it. Euclidean distances are recomputed in
/// f64 (the product form cancels badly).
fn refine(x: &[f32], d: usize, metric: Metric, cand: Candidates, rows: usize, k: usize) -> Knn {
    let mut ids = vec![0u32; rows * k];
    let mut dists = vec![0f32; rows * k];
    ids.par_chunks_mut(k).zip(dists.par_chunks_mut(k)).enumerate().for_each(|(r, (out_ids, out_d))| {
        let q = cand.queries[r] as usize;
        let a = &x[q * d..(q + 1) * d];
        let mut row: Vec<(f64, u32)> = cand.ids[r * k..(r + 1) * k]
            .iter()
            .zip(&cand.sims[r * k..(r + 1) * k])
            .map(|(&j, &sim)| {
                if j == u32::MAX {
                    return (f64::INFINITY, j);
                }
                let b = &x[j as usize * d..(j as usize + 1) * d];
                let dist = match metric {
                    Metric::Cosine => {
                        let dist = (1.0 - f64::from(sim)).clamp(0.0, 2.0);
                        if dist < 1e-5 && a == b { 0.0 } else { dist }
                    }
                    Metric::Euclidean => {
                        a.iter().zip(b).map(|(&u, &v)| (f64::from(u) - f64::from(v)).powi(2)).sum::<f64>().sqrt()
                    }
                };
                (dist, j)
            })
            .collect();
        row.sort_by(|p, q| p.0.total_cmp(&q.0).then(p.1.cmp(&q.1)));
        for (c, (dist, j)) in row.into_iter().enumerate() {
            out_ids[c] = j;
            out_d[c] = dist as f32;
        }
    });
    Knn { n: rows, k, ids, dists }
}

/// Recall@k of approximate neighbour lists against exact ones: the share of exact neighbours found.
pub fn recall(exact: &[Vec<u32>], approx: &[Vec<u32>]) -> f64 {
    let mut hit = 0usize;
    let mut total = 0usize;
    for (e, a) in exact.iter().zip(approx) {
        total += e.len();
        hit += e.iter().filter(|id| a.contains(id)).count();
    }
    if total == 0 { 1.0 } else { hit as f64 / total as f64 }
}
