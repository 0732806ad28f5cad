//! Exact k-nearest neighbours by blocked matrix products in libtorch.
//!
//! Two paths, chosen by device and metric:
//! - CPU, cosine: the similarity matrix is symmetric, so only blocks `I <= J` are multiplied, and each
//!   product feeds the running top-k of both its row items and its column items. The scan keeps a
//!   per-item threshold (the k-th best so far), so almost every value costs one comparison; it runs in
//!   Rust on the product's memory, in parallel over disjoint items. This halves the flops of the plain
//!   approach and avoids `topk`'s per-row sort.
//! - GPU, or euclidean: blocks of queries against the whole matrix on the device, `topk` there, and only
//!   `k` candidates per query come back to the host.
//!
//! Both paths then recompute the distances of the chosen candidates in f64 from the raw vectors (exact
//! duplicates come out at exactly 0, as cleanlab's correction makes them) and sort by (distance, id).
//! Memory is bounded by the block size: the normalised matrix itself, one `B x B` product (CPU) or one
//! `bq x N` product (GPU), and `N x k` results.

use rayon::prelude::*;
use tch::{Device, Kind, Tensor};

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

#[derive(Debug, Clone, Copy)]
pub struct KnnOptions {
    pub k: usize,
    pub metric: Metric,
    pub device: Device,
    /// Rows per block on the CPU path (0 = automatic).
    pub block: usize,
    /// Bytes one query-block product may take on the device path.
    pub device_block_bytes: usize,
    /// Force the query-block + `topk` path even on CPU (used to test it without a GPU).
    pub force_topk: bool,
}

impl KnnOptions {
    pub fn new(k: usize, metric: Metric, device: Device) -> KnnOptions {
        KnnOptions { k, metric, device, block: 0, device_block_bytes: 1 << 30, force_topk: false }
    }
}

/// Exact kNN of all `n` rows of the row-major `[n, d]` matrix `x`.
pub fn exact_knn(x: &[f32], n: usize, d: usize, opts: &KnnOptions, hooks: &Hooks) -> Result<Knn, AnalysisError> {
    assert_eq!(x.len(), n * d, "matrix is not n x d");
    if n < 2 {
        return Err(AnalysisError::TooFewItems { n });
    }
    let k = opts.k.min(n - 1);
    let candidates = if opts.device == Device::Cpu && opts.metric == Metric::Cosine && !opts.force_topk {
        symmetric_cpu(x, n, d, k, opts.block, hooks)?
    } else {
        let queries: Vec<u32> = (0..n as u32).collect();
        query_blocks(x, n, d, &queries, k, opts, hooks)?
    };
    Ok(refine(x, d, opts.metric, candidates, n, k))
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
    let candidates = query_blocks(x, n, d, queries, k, opts, hooks)?;
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

fn normalised_rows(x: &[f32], d: usize) -> Vec<f32> {
    let mut out = x.to_vec();
    out.par_chunks_mut(d).for_each(|row| {
        let norm = row.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>().sqrt();
        if norm > 0.0 {
            let inv = (1.0 / norm) as f32;
            row.iter_mut().for_each(|v| *v *= inv);
        }
    });
    out
}

fn check_cancel(hooks: &Hooks) -> Result<(), AnalysisError> {
    if (hooks.cancel)() { Err(AnalysisError::Cancelled) } else { Ok(()) }
}

/// Running top-k by similarity (larger is nearer) for a contiguous range of items.
struct TopK<'a> {
    k: usize,
    sims: &'a mut [f32],
    ids: &'a mut [u32],
    /// The smallest kept similarity of each item (-inf while it has fewer than k).
    thr: &'a mut [f32],
}

impl<'a> TopK<'a> {
    #[inline]
    fn push(&mut self, item: usize, sim: f32, id: u32) {
        let k = self.k;
        let sims = &mut self.sims[item * k..(item + 1) * k];
        let ids = &mut self.ids[item * k..(item + 1) * k];
        let mut min_at = 0;
        for j in 1..k {
            if sims[j] < sims[min_at] {
                min_at = j;
            }
        }
        sims[min_at] = sim;
        ids[min_at] = id;
        self.thr[item] = sims.iter().copied().fold(f32::INFINITY, f32::min);
    }

    fn split_at(self, item: usize) -> (TopK<'a>, TopK<'a>) {
        let (s0, s1) = self.sims.split_at_mut(item * self.k);
        let (i0, i1) = self.ids.split_at_mut(item * self.k);
        let (t0, t1) = self.thr.split_at_mut(item);
        (TopK { k: self.k, sims: s0, ids: i0, thr: t0 }, TopK { k: self.k, sims: s1, ids: i1, thr: t1 })
    }

    /// Chunks of `per` items each, for parallel scans.
    fn chunks(self, per: usize) -> Vec<(usize, TopK<'a>)> {
        let mut out = Vec::new();
        let mut rest = self;
        let mut start = 0;
        while !rest.thr.is_empty() {
            let take = per.min(rest.thr.len());
            let (head, tail) = rest.split_at(take);
            out.push((start, head));
            start += take;
            rest = tail;
        }
        out
    }
}

/// Rows of a `[rows, cols]` product block feed the top-k of row items; `skip_diag` skips `r == c`.
fn scan_rows(block: &[f32], cols: usize, col0: u32, state: TopK, skip_diag: bool) {
    let per = state.thr.len().div_ceil(rayon::current_num_threads() * 4).max(1);
    state.chunks(per).into_par_iter().for_each(|(r0, mut st)| {
        for r in 0..st.thr.len() {
            let row = &block[(r0 + r) * cols..(r0 + r + 1) * cols];
            let mut thr = st.thr[r];
            for (c, &v) in row.iter().enumerate() {
                if v > thr && !(skip_diag && c == r0 + r) {
                    st.push(r, v, col0 + c as u32);
                    thr = st.thr[r];
                }
            }
        }
    });
}

/// Columns of a `[rows, cols]` product block feed the top-k of column items (row by row, so memory is read
/// in order; each parallel task owns a range of columns).
fn scan_cols(block: &[f32], rows: usize, cols: usize, row0: u32, state: TopK) {
    let per = cols.div_ceil(rayon::current_num_threads() * 4).max(1);
    state.chunks(per).into_par_iter().for_each(|(c0, mut st)| {
        let width = st.thr.len();
        for r in 0..rows {
            let seg = &block[r * cols + c0..r * cols + c0 + width];
            for (c, &v) in seg.iter().enumerate() {
                if v > st.thr[c] {
                    st.push(c, v, row0 + r as u32);
                }
            }
        }
    });
}

fn symmetric_cpu(
    x: &[f32],
    n: usize,
    d: usize,
    k: usize,
    block: usize,
    hooks: &Hooks,
) -> Result<Candidates, AnalysisError> {
    let xn = normalised_rows(x, d);
    let xt = Tensor::from_slice(&xn).view([n as i64, d as i64]);
    drop(xn);
    let target = if block > 0 { block } else { 2048 };
    let nblocks = n.div_ceil(target);
    let bsize = n.div_ceil(nblocks);
    let bounds: Vec<(usize, usize)> = (0..nblocks).map(|b| (b * bsize, ((b + 1) * bsize).min(n))).collect();
    let mut sims = vec![f32::NEG_INFINITY; n * k];
    let mut ids = vec![u32::MAX; n * k];
    let mut thr = vec![f32::NEG_INFINITY; n];
    let total = nblocks * (nblocks + 1) / 2;
    let mut done = 0;
    let mut out = Tensor::empty([bsize as i64, bsize as i64], (Kind::Float, Device::Cpu));
    for (bi, &(i0, i1)) in bounds.iter().enumerate() {
        let xi = xt.narrow(0, i0 as i64, (i1 - i0) as i64);
        for &(j0, j1) in &bounds[bi..] {
            check_cancel(hooks)?;
            let (rows, cols) = (i1 - i0, j1 - j0);
            if out.size() != [rows as i64, cols as i64] {
                out = Tensor::empty([rows as i64, cols as i64], (Kind::Float, Device::Cpu));
            }
            let xj = xt.narrow(0, j0 as i64, cols as i64);
            let _ = xi.mm_out(&out, &xj.tr());
            // SAFETY: `out` is a contiguous CPU f32 tensor of rows * cols elements, alive for this scope.
            let prod = unsafe { std::slice::from_raw_parts(out.data_ptr() as *const f32, rows * cols) };
            let state = TopK { k, sims: &mut sims, ids: &mut ids, thr: &mut thr };
            let (_, from_i) = state.split_at(i0);
            let (row_state, rest) = from_i.split_at(i1 - i0);
            if i0 == j0 {
                scan_rows(prod, cols, j0 as u32, row_state, true);
            } else {
                let (_, from_j) = rest.split_at(j0 - i1);
                let (col_state, _) = from_j.split_at(cols);
                rayon::join(
                    || scan_rows(prod, cols, j0 as u32, row_state, false),
                    || scan_cols(prod, rows, cols, i0 as u32, col_state),
                );
            }
            done += 1;
            (hooks.progress)("neighbours", done, total);
        }
    }
    Ok(Candidates { queries: (0..n as u32).collect(), ids, sims })
}

/// Blocks of queries against the whole matrix on `opts.device`, self masked, `topk` on the device.
fn query_blocks(
    x: &[f32],
    n: usize,
    d: usize,
    queries: &[u32],
    k: usize,
    opts: &KnnOptions,
    hooks: &Hooks,
) -> Result<Candidates, AnalysisError> {
    let dev = opts.device;
    let (base, bias) = match opts.metric {
        Metric::Cosine => (normalised_rows(x, d), None),
        Metric::Euclidean => {
            // argmax_j (a.b_j - |b_j|^2 / 2) is argmin_j |a - b_j|^2.
            let half_sq: Vec<f32> = x
                .chunks_exact(d)
                .map(|r| (r.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / 2.0) as f32)
                .collect();
            (x.to_vec(), Some(Tensor::from_slice(&half_sq).to_device(dev).view([1, n as i64])))
        }
    };
    let xt = Tensor::from_slice(&base).view([n as i64, d as i64]).to_device(dev);
    drop(base);
    let bq = (opts.device_block_bytes / (4 * n)).clamp(1, 4096);
    let mut ids = Vec::with_capacity(queries.len() * k);
    let mut sims = Vec::with_capacity(queries.len() * k);
    let total = queries.len().div_ceil(bq);
    for (b, chunk) in queries.chunks(bq).enumerate() {
        check_cancel(hooks)?;
        let q_ids: Vec<i64> = chunk.iter().map(|&q| i64::from(q)).collect();
        let q_idx = Tensor::from_slice(&q_ids).to_device(dev);
        let q = xt.index_select(0, &q_idx);
        let mut s = q.mm(&xt.tr());
        if let Some(bias) = &bias {
            s -= bias;
        }
        let _ = s.scatter_value_(1, &q_idx.view([-1, 1]), f64::NEG_INFINITY);
        let (val, idx) = s.topk(k as i64, 1, true, true);
        let idx = Vec::<i64>::try_from(idx.to_device(Device::Cpu).contiguous().view([-1]))?;
        ids.extend(idx.into_iter().map(|i| i as u32));
        sims.extend(Vec::<f32>::try_from(val.to_device(Device::Cpu).contiguous().view([-1]))?);
        (hooks.progress)("neighbours", b + 1, total);
    }
    Ok(Candidates { queries: queries.to_vec(), ids, sims })
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
