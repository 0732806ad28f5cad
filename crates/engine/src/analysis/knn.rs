//! Exact k-nearest neighbours by blocked matrix products in libtorch.
//!
//! Three paths, chosen by device, metric and `KnnOptions::screen`:
//! - CPU, cosine, f32 (`Screen::Never`): the similarity matrix is symmetric, so only blocks `I <= J` are
//!   multiplied, and each product feeds the running top-k of both its row items and its column items. The
//!   scan keeps a per-item threshold (the k-th best so far), so almost every value costs one comparison; it
//!   runs in Rust on the product's memory, in parallel over disjoint items. This halves the flops of the
//!   plain approach and avoids `topk`'s per-row sort.
//! - CPU, cosine, screened (the default): the same symmetric blocked scan over an int8 product of the
//!   centred rows keeps `k` + a few dozen candidates per item; an f32 re-rank of the candidates with a
//!   proof per item that the exact neighbours are among them (see `screened_cpu`) gives the f32 path's
//!   neighbours at about 2.5x its speed; items without a proof are searched exactly.
//! - GPU, or euclidean: blocks of queries against the whole matrix on the device, `topk` there, and only
//!   `k` candidates per query come back to the host.
//!
//! All paths then recompute the distances of the chosen candidates in f64 from the raw vectors (exact
//! duplicates come out at exactly 0, as cleanlab's correction makes them) and sort by (distance, id).
//! Memory is bounded by the block size: the normalised matrix itself, one `B x B` product (CPU) or one
//! `bq x N` product (GPU), and `N x k` results; the screen holds the `N x d` int8 matrix and `N x 2c`
//! candidate slots instead of the normalised matrix (`UnitRows`).

use std::sync::Mutex;

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
    /// CPU cosine path: whether to screen candidates with an int8 product and re-rank them exactly (the same
    /// neighbours as the plain f32 path, ties at f32 resolution aside; 3x faster on 10k x 784).
    pub screen: Screen,
}

/// When the CPU cosine path uses the int8 screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Screen {
    /// Where a pilot on a few items predicts it pays: on data whose neighbours lie closer together than int8
    /// resolves, most items would end without a proof and be searched again, and plain f32 is faster.
    Auto,
    /// Always (tests of the screen itself).
    Always,
    /// Never: f32 products throughout.
    Never,
}

impl KnnOptions {
    pub fn new(k: usize, metric: Metric, device: Device) -> KnnOptions {
        KnnOptions { k, metric, device, block: 0, device_block_bytes: 1 << 30, force_topk: false, screen: Screen::Auto }
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
        if opts.screen != Screen::Never && screen_applies(x, d) {
            let (cand, st) = screened_cpu(x, n, d, k, opts, hooks)?;
            stats = Some(st);
            cand
        } else {
            symmetric_cpu(x, n, d, k, opts.block, hooks)?
        }
    } else {
        let queries: Vec<u32> = (0..n as u32).collect();
        query_blocks(x, n, d, &queries, k, opts, hooks)?
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
    // Zeroed pages come lazily from the OS: the parallel copy below also spreads the page faults.
    let mut out = vec![0f32; x.len()];
    let fast = avx2();
    out.par_chunks_mut(d).zip(x.par_chunks(d)).for_each(|(row, src)| {
        row.copy_from_slice(src);
        #[cfg(target_arch = "x86_64")]
        if fast {
            // SAFETY: `fast` is true only where the CPU has AVX2 and FMA.
            return unsafe { normalise_avx2(row) };
        }
        normalise(row)
    });
    out
}

/// Scales a row to unit norm (the norm summed in f64; a zero row stays zero).
#[inline(always)]
fn normalise(row: &mut [f32]) {
    let inv = inv_norm(row);
    row.iter_mut().for_each(|v| *v *= inv);
}

/// The f32 factor that scales `row` to unit length (1 for a zero row, which stays zero).
#[inline(always)]
fn inv_norm(row: &[f32]) -> f32 {
    let norm = sum8(row.len(), |i| f64::from(row[i]) * f64::from(row[i])).sqrt();
    if norm > 0.0 { (1.0 / norm) as f32 } else { 1.0 }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn inv_norm_avx2(row: &[f32]) -> f32 {
    inv_norm(row)
}

/// The unit rows `u_a = x_a / |x_a|` of the screen, kept as `x` and one factor per row: an element is
/// computed where it is used, as `x_a[i] inv_a` in f32, the very value `normalise` stores, so every product
/// and quantisation of these rows equals that of stored ones. Not storing them saves an n x d matrix (51 MB
/// at 10k x 1280, 3 GB at 1M x 768) and its page faults; the products that read them are bound by memory
/// traffic, which is the same.
struct UnitRows<'a> {
    x: &'a [f32],
    inv: Vec<f32>,
    d: usize,
}

impl<'a> UnitRows<'a> {
    fn new(x: &'a [f32], d: usize) -> UnitRows<'a> {
        let fast = avx2();
        let inv = x
            .par_chunks(d)
            .map(|row| {
                #[cfg(target_arch = "x86_64")]
                if fast {
                    // SAFETY: `fast` is true only where the CPU has AVX2 and FMA.
                    return unsafe { inv_norm_avx2(row) };
                }
                let _ = fast;
                inv_norm(row)
            })
            .collect();
        UnitRows { x, inv, d }
    }

    fn n(&self) -> usize {
        self.inv.len()
    }

    fn raw(&self, a: usize) -> &[f32] {
        &self.x[a * self.d..(a + 1) * self.d]
    }

    /// Row `a` into `out`.
    fn row_into(&self, a: usize, out: &mut [f32]) {
        let inv = self.inv[a];
        out.iter_mut().zip(self.raw(a)).for_each(|(o, &v)| *o = v * inv);
    }

    /// `u_a . u_b`, as `dot` of the stored rows gives it.
    fn dot(&self, a: usize, b: usize, avx2: bool) -> f32 {
        dot_scaled(self.raw(a), self.inv[a], self.raw(b), self.inv[b], avx2)
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn normalise_avx2(row: &mut [f32]) {
    normalise(row)
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
}

/// Per-item state over a range of items that splits into disjoint parts (the f32 top-k, the screen's pools).
trait ItemRange: Sized {
    fn items(&self) -> usize;
    fn split_at(self, item: usize) -> (Self, Self);
}

impl ItemRange for TopK<'_> {
    fn items(&self) -> usize {
        self.thr.len()
    }

    fn split_at(self, item: usize) -> (Self, Self) {
        TopK::split_at(self, item)
    }
}

/// Chunks of `per` items each with their first item's offset, for parallel scans.
fn chunks<S: ItemRange>(state: S, per: usize) -> Vec<(usize, S)> {
    let mut out = Vec::new();
    let mut rest = state;
    let mut start = 0;
    while rest.items() > 0 {
        let take = per.min(rest.items());
        let (head, tail) = rest.split_at(take);
        out.push((start, head));
        start += take;
        rest = tail;
    }
    out
}

/// Rows of a `[rows, cols]` product block feed the top-k of row items; `skip_diag` skips `r == c`.
fn scan_rows(block: &[f32], cols: usize, col0: u32, state: TopK, skip_diag: bool) {
    let per = state.thr.len().div_ceil(rayon::current_num_threads() * 4).max(1);
    let fast = avx2();
    chunks(state, per).into_par_iter().for_each(|(r0, mut st)| {
        let rows = &block[r0 * cols..(r0 + st.thr.len()) * cols];
        let diag = skip_diag.then_some(r0);
        #[cfg(target_arch = "x86_64")]
        if fast {
            // SAFETY: `fast` is true only where the CPU has AVX2 and FMA.
            return unsafe { rows_into_topk_avx2(rows, cols, col0, &mut st, diag) };
        }
        let _ = fast;
        rows_into_topk(rows, cols, col0, &mut st, diag)
    });
}

/// Each row `r` of `rows` into item r's top-k; with `diag = Some(c0)`, column `c0 + r` is the item itself.
/// A chunk of values is compared at once (vectorised); only those above the threshold are looked at.
#[inline(always)]
fn rows_into_topk(rows: &[f32], cols: usize, col0: u32, st: &mut TopK, diag: Option<usize>) {
    for (r, row) in rows.chunks_exact(cols).enumerate() {
        for base in (0..cols).step_by(CHUNK) {
            let (v, thr) = (chunk(row, base, f32::NEG_INFINITY), st.thr[r]);
            let mut above = 0u32;
            for (t, &v) in v.iter().enumerate() {
                above |= u32::from(v > thr) << t;
            }
            while above != 0 {
                let t = above.trailing_zeros() as usize;
                above &= above - 1;
                if v[t] > st.thr[r] && diag.is_none_or(|c0| base + t != c0 + r) {
                    st.push(r, v[t], col0 + (base + t) as u32);
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn rows_into_topk_avx2(rows: &[f32], cols: usize, col0: u32, st: &mut TopK, diag: Option<usize>) {
    rows_into_topk(rows, cols, col0, st, diag)
}

/// Columns of a `[rows, cols]` product block feed the top-k of column items (row by row, so memory is read
/// in order; each parallel task owns a range of columns).
fn scan_cols(block: &[f32], rows: usize, cols: usize, row0: u32, state: TopK) {
    let per = cols.div_ceil(rayon::current_num_threads() * 4).max(1);
    let fast = avx2();
    chunks(state, per).into_par_iter().for_each(|(c0, mut st)| {
        #[cfg(target_arch = "x86_64")]
        if fast {
            // SAFETY: `fast` is true only where the CPU has AVX2 and FMA.
            return unsafe { cols_into_topk_avx2(block, rows, cols, c0, row0, &mut st) };
        }
        let _ = fast;
        cols_into_topk(block, rows, cols, c0, row0, &mut st)
    });
}

/// Columns `c0..` of every row into the columns' top-k (`st` holds those columns' items).
#[inline(always)]
fn cols_into_topk(block: &[f32], rows: usize, cols: usize, c0: usize, row0: u32, st: &mut TopK) {
    let width = st.thr.len();
    for r in 0..rows {
        let seg = &block[r * cols + c0..r * cols + c0 + width];
        for base in (0..width).step_by(CHUNK) {
            let (v, thr) = (chunk(seg, base, f32::NEG_INFINITY), chunk(st.thr, base, f32::INFINITY));
            let mut above = 0u32;
            for t in 0..CHUNK {
                above |= u32::from(v[t] > thr[t]) << t;
            }
            while above != 0 {
                let t = above.trailing_zeros() as usize;
                above &= above - 1;
                if v[t] > st.thr[base + t] {
                    st.push(base + t, v[t], row0 + r as u32);
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn cols_into_topk_avx2(block: &[f32], rows: usize, cols: usize, c0: usize, row0: u32, st: &mut TopK) {
    cols_into_topk(block, rows, cols, c0, row0, st)
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
    // SAFETY: `xn` holds n * d f32 values and outlives `xt`, which is dropped at the end of this function.
    let xt = unsafe {
        Tensor::f_from_blob(xn.as_ptr().cast(), &[n as i64, d as i64], &[d as i64, 1], Kind::Float, Device::Cpu)?
    };
    let mut sims = vec![f32::NEG_INFINITY; n * k];
    let mut ids = vec![u32::MAX; n * k];
    let mut thr = vec![f32::NEG_INFINITY; n];
    let scan = |prod: &[f32], (i0, i1): Span, (j0, j1): Span| {
        let (rows, cols) = (i1 - i0, j1 - j0);
        let state = TopK { k, sims: &mut sims, ids: &mut ids, thr: &mut thr };
        let (before_j, from_j) = state.split_at(j0);
        if i0 == j0 {
            scan_rows(prod, cols, j0 as u32, from_j.split_at(rows).0, true);
        } else {
            let row_state = before_j.split_at(i0).1.split_at(rows).0;
            let col_state = from_j.split_at(cols).0;
            rayon::join(
                || scan_rows(prod, cols, j0 as u32, row_state, false),
                || scan_cols(prod, rows, cols, i0 as u32, col_state),
            );
        }
    };
    symmetric_products(&xt, block, |a, b, out| a.f_mm_out(out, b), hooks, scan)?;
    drop(xt);
    Ok(Candidates { queries: (0..n as u32).collect(), ids, sims })
}

// ---------------------------------------------------------------------------------------------------------
// The int8 screen.
//
// Notation: u_a are the f32 unit rows (exact real numbers from here on), T_ab = u_a . u_b their exact
// similarity, F_ab the same in f32 arithmetic. Any f32 dot product, in any summation order (the f32 GEMM of
// `symmetric_cpu`, sklearn's, `dot` below), satisfies |F_ab - T_ab| <= gamma_d |u_a| |u_b| with
// gamma_d = d u / (1 - d u), u = 2^-24 (Higham, Accuracy and Stability, 3.1); |u_a| <= 1 + 1e-6.
//
// Centring: for any vector mu, with w_a = u_a - mu and p_a = mu . u_a,
//     T_ab = w_a . w_b + p_a + p_b - mu . mu.
// mu is the mean row, which takes out the large common component that image features (and most embeddings)
// share, so the quantised part w is smaller and so is its error.
// Quantisation: q_a = round(w_a / g_a) in [-127, 127] with an f32 step g_a = max|w_a| / 127 per row;
// w^_a = q_a g_a, residual delta_a = w_a - w^_a, e_a >= |delta_a|, r_a >= max(|w_a|, |w^_a|). Then
//     w_a . w_b - w^_a . w^_b = delta_a . w_b + w^_a . delta_b,  so  |w_a . w_b - w^_a . w^_b| <= e_a r_b + r_a e_b
// (Cauchy-Schwarz), and w^_a . w^_b = I_ab g_a g_b with I_ab = q_a . q_b, which int32 accumulates exactly
// while d 127^2 < 2^31.
// Key of b for item a: K_ab = I_ab g_a g_b + p_b + r_a e_b + e_a r_b. Then for every b
//     T_ab <= K_ab + p_a - mu . mu.                                                                    (1)
// The scan evaluates K in f32 (K~, the same formula with the roles swapped when a is a column of a block),
// |K~ - K| <= key_slack (a few roundings of terms bounded by r_max^2, |mu| and 2 r_max e_max).
// The scan keeps per item a the c largest K~; every other item has K~_ab <= tau_a, the final threshold
// (-inf when no item was ever dropped). So every non-candidate b has, by (1),
//     T_ab <= UB_a := tau_a + key_slack + p_a - mu . mu  (+ 1e-9 for the f64 evaluation).
// The re-rank computes F'_ab (f32) for the c candidates; let L_a be the k-th largest. If
//     UB_a + 3 gamma_d < L_a,
// every non-candidate b has T_ab <= UB_a and F_ab <= UB_a + gamma_d < L_a - 2 gamma_d, while each of the k
// best candidates has T >= L_a - gamma_d and F >= L_a - 2 gamma_d: in exact arithmetic and in any f32
// evaluation, no non-candidate ranks above those k candidates. The top k of the candidates by F' (ties by
// id) are then the f32 path's neighbours, up to pairs whose similarities are within 2 gamma_d (ties at f32
// resolution, where the f32 path's own choice depends on its blocking). The same test applied to a
// candidate's own key (K~_ab instead of tau_a) lets the re-rank skip it, and all after it in key order.
// Items without the proof are searched exactly: their rows of f32 products against all items, as the
// device path does.

/// Candidates kept per item beyond `k` by the int8 screen. Fewer leave more items without a proof, and each
/// costs a row of `n` f32 products; more cost little (the scan's pushes grow slowly, the re-rank stops early).
/// More items crowd the k-th neighbour, so larger `n` needs more: on Fashion-MNIST pixels, 32 extra leave
/// 0.08% of 10k items without a proof but 3.7% of 70k, 64 extra 0.09% of 70k.
fn screen_extra(n: usize) -> usize {
    (32 + n / 2000).min(128)
}

/// Unit roundoff of f32.
const F32_U: f64 = 1.0 / (1u64 << 24) as f64;

/// Where the screen's bound holds: int32 sums of `d` products of int8 values within +-127 are exact, and the
/// values are finite (NaN or inf have no meaningful quantisation; the f32 path treats them as it always did).
fn screen_applies(x: &[f32], d: usize) -> bool {
    d <= i32::MAX as usize / (127 * 127) && x.par_iter().all(|v| v.is_finite())
}

/// The centred unit rows quantised to int8, and the per-row terms of the bound (notation above).
struct Quantised {
    q: Vec<i8>,
    g: Vec<f32>,
    e: Vec<f32>,
    r: Vec<f32>,
    /// `p` rounded to f32 for the keys; `p64` for the bound.
    p: Vec<f32>,
    p64: Vec<f64>,
    mu_sq: f64,
    mu_norm: f64,
    e_max: f64,
    r_max: f64,
}

/// One item's terms of the keys.
#[derive(Clone, Copy)]
struct RowTerms {
    g: f32,
    p: f32,
    e: f32,
    r: f32,
}

/// A range of items' terms of the keys.
#[derive(Clone, Copy)]
struct ColTerms<'a> {
    g: &'a [f32],
    p: &'a [f32],
    e: &'a [f32],
    r: &'a [f32],
}

impl Quantised {
    fn row(&self, a: usize) -> RowTerms {
        RowTerms { g: self.g[a], p: self.p[a], e: self.e[a], r: self.r[a] }
    }

    fn cols(&self, start: usize, count: usize) -> ColTerms<'_> {
        let end = start + count;
        ColTerms { g: &self.g[start..end], p: &self.p[start..end], e: &self.e[start..end], r: &self.r[start..end] }
    }
}

/// The smallest f32 at or above `v` (v >= 0), inflated for the f64 evaluation errors (relative below
/// d 2^-52 < 1e-9, absolute below 1e-12 from the f64 rounding of u - mu).
fn upper_f32(v: f64) -> f32 {
    let v = v * (1.0 + 1e-9) + 1e-12;
    let f = v as f32;
    if f64::from(f) < v { f.next_up() } else { f }
}

fn quantise(u: &UnitRows, n: usize, d: usize) -> Quantised {
    let fast = avx2();
    let sums = (0..n.div_ceil(256))
        .into_par_iter()
        .map(|chunk| {
            let (mut s, mut row) = (vec![0f64; d], vec![0f32; d]);
            for a in chunk * 256..(chunk * 256 + 256).min(n) {
                u.row_into(a, &mut row);
                s.iter_mut().zip(&row).for_each(|(a, &v)| *a += f64::from(v));
            }
            s
        })
        .reduce(
            || vec![0f64; d],
            |mut a, b| {
                a.iter_mut().zip(&b).for_each(|(x, y)| *x += y);
                a
            },
        );
    let mu: Vec<f64> = sums.into_iter().map(|s| s / n as f64).collect();
    let mu_sq: f64 = mu.iter().map(|m| m * m).sum();
    let mut q = vec![0i8; n * d];
    let rows: Vec<RowQuant> = q
        .par_chunks_mut(d)
        .enumerate()
        .map_init(
            || (vec![0f64; d], vec![0f32; d]),
            |(w, ur), (a, qr)| {
                u.row_into(a, ur);
                #[cfg(target_arch = "x86_64")]
                if fast {
                    // SAFETY: `fast` is true only where the CPU has AVX2 and FMA.
                    return unsafe { quantise_row_avx2(ur, &mu, qr, w) };
                }
                quantise_row(ur, &mu, qr, w)
            },
        )
        .collect();
    let e: Vec<f32> = rows.iter().map(|r| r.e).collect();
    let r: Vec<f32> = rows.iter().map(|r| r.r).collect();
    Quantised {
        q,
        g: rows.iter().map(|r| r.g).collect(),
        e_max: e.iter().copied().fold(0f32, f32::max).into(),
        r_max: r.iter().copied().fold(0f32, f32::max).into(),
        e,
        r,
        p: rows.iter().map(|r| r.p as f32).collect(),
        p64: rows.iter().map(|r| r.p).collect(),
        mu_sq,
        mu_norm: mu_sq.sqrt(),
    }
}

/// One row's step, residual norm bound, norm bound and `p = mu . u`.
struct RowQuant {
    g: f32,
    e: f32,
    r: f32,
    p: f64,
}

/// Sum of `f(i)` over `0..len` in 8 running sums (vectorisable; the order only changes f64 rounding, which
/// `upper_f32` covers).
#[inline(always)]
fn sum8(len: usize, f: impl Fn(usize) -> f64) -> f64 {
    let mut acc = [0f64; 8];
    let full = len / 8 * 8;
    for base in (0..full).step_by(8) {
        for (t, a) in acc.iter_mut().enumerate() {
            *a += f(base + t);
        }
    }
    acc.iter().sum::<f64>() + (full..len).map(f).sum::<f64>()
}

#[inline(always)]
fn quantise_row(ur: &[f32], mu: &[f64], qr: &mut [i8], w: &mut [f64]) -> RowQuant {
    // Two passes over the row, each with 8 running sums per quantity so that both vectorise.
    let mut max = [0f64; 8];
    let mut p = [0f64; 8];
    let full = ur.len() / 8 * 8;
    for ((ur8, mu8), w8) in ur.chunks_exact(8).zip(mu.chunks_exact(8)).zip(w.chunks_exact_mut(8)) {
        for t in 0..8 {
            let (ui, mi) = (f64::from(ur8[t]), mu8[t]);
            w8[t] = ui - mi;
            let a = (ui - mi).abs();
            max[t] = if a > max[t] { a } else { max[t] };
            p[t] += mi * ui;
        }
    }
    let mut max = max.iter().fold(0f64, |m, &a| if a > m { a } else { m });
    let mut p = p.iter().sum::<f64>();
    for i in full..ur.len() {
        let (ui, mi) = (f64::from(ur[i]), mu[i]);
        w[i] = ui - mi;
        let a = (ui - mi).abs();
        max = if a > max { a } else { max };
        p += mi * ui;
    }
    // Any positive step gives a valid bound; max/127 uses the whole int8 range. f32 so that q * g is exact
    // in f64 and the scan's f32 keys use the very same step.
    let g = if max > 0.0 { (max / 127.0) as f32 } else { 1.0 };
    let (g64, inv) = (f64::from(g), 1.0 / f64::from(g));
    // Any rounding gives a valid bound, since the residual is measured from the chosen q. Nearest (ties to
    // even) by the 1.5 * 2^52 trick: for |t| < 2^31 the sum's low 32 mantissa bits are round(t) in two's
    // complement. Plain bit operations vectorise, where a float-to-int conversion (saturating in Rust) and
    // f64::round (a libm call without SSE4.1) do not. |t| <= 127 up to rounding; the clamp keeps q in range.
    let quant = |wi: f64| {
        let t = wi * inv;
        ((t + 6_755_399_441_055_744.0).to_bits() as i32).clamp(-127, 127)
    };
    let (mut res, mut wn, mut qn) = ([0f64; 8], [0f64; 8], [0f64; 8]);
    for (w8, q8) in w.chunks_exact(8).zip(qr.chunks_exact_mut(8)) {
        for t in 0..8 {
            let wi = w8[t];
            let qi = quant(wi);
            q8[t] = qi as i8;
            let back = f64::from(qi) * g64;
            res[t] += (wi - back) * (wi - back);
            wn[t] += wi * wi;
            qn[t] += back * back;
        }
    }
    let (mut res, mut wn, mut qn) = (res.iter().sum::<f64>(), wn.iter().sum::<f64>(), qn.iter().sum::<f64>());
    for i in full..ur.len() {
        let wi = w[i];
        let qi = quant(wi);
        qr[i] = qi as i8;
        let back = f64::from(qi) * g64;
        res += (wi - back) * (wi - back);
        wn += wi * wi;
        qn += back * back;
    }
    RowQuant { g, e: upper_f32(res.sqrt()), r: upper_f32(wn.sqrt().max(qn.sqrt())), p }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn quantise_row_avx2(ur: &[f32], mu: &[f64], qr: &mut [i8], w: &mut [f64]) -> RowQuant {
    quantise_row(ur, mu, qr, w)
}

/// Whether this CPU runs the AVX2 + FMA versions of the hot loops (the crate is built for baseline x86-64).
/// `TORCHLIGHT_PORTABLE_LOOPS` set forces the portable versions: tests/knn_screen.rs runs itself again that
/// way, so the code a CPU without AVX2 takes is tested on one that has it.
#[inline]
fn avx2() -> bool {
    static FAST: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *FAST.get_or_init(|| {
        if std::env::var_os("TORCHLIGHT_PORTABLE_LOOPS").is_some() {
            return false;
        }
        #[cfg(target_arch = "x86_64")]
        {
            std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    })
}

/// f32 dot product with 16 running sums, which the compiler vectorises. Any order of summation, with or
/// without fused multiply-adds, obeys the gamma_d bound the proof uses.
/// The factors `ia`, `ib` scale each element first (`UnitRows`); a factor of 1 leaves it as it is.
#[inline(always)]
fn dot_body<const FMA: bool>(a: &[f32], ia: f32, b: &[f32], ib: f32) -> f32 {
    let mut acc = [0f32; 16];
    let (a16, b16) = (a.chunks_exact(16), b.chunks_exact(16));
    let tail: f32 = a16.remainder().iter().zip(b16.remainder()).map(|(x, y)| (x * ia) * (y * ib)).sum();
    for (x, y) in a16.zip(b16) {
        for t in 0..16 {
            let (x, y) = (x[t] * ia, y[t] * ib);
            acc[t] = if FMA { x.mul_add(y, acc[t]) } else { acc[t] + x * y };
        }
    }
    acc.iter().sum::<f32>() + tail
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn dot_avx2(a: &[f32], ia: f32, b: &[f32], ib: f32) -> f32 {
    dot_body::<true>(a, ia, b, ib)
}

fn dot(a: &[f32], b: &[f32], avx2: bool) -> f32 {
    dot_scaled(a, 1.0, b, 1.0, avx2)
}

/// `(a ia) . (b ib)`, each element scaled in f32 before the product.
fn dot_scaled(a: &[f32], ia: f32, b: &[f32], ib: f32, avx2: bool) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if avx2 {
        // SAFETY: `avx2` is true only where the CPU has AVX2 and FMA (`avx2()`).
        return unsafe { dot_avx2(a, ia, b, ib) };
    }
    let _ = avx2;
    dot_body::<false>(a, ia, b, ib)
}

/// Per item up to `2c` (key, id) slots: pushes append, and a pool that reaches its `limit` drops the keys at
/// or below a raised threshold, so a push costs O(1) amortised. Every dropped or never pushed key is at most
/// the final threshold, which the proof relies on.
///
/// The threshold is the k-th largest key less the item's window `win` (keys further below would fail the
/// proof's test against the k-th similarity, see `screen_window`), or the c-th largest key where more than
/// `c` keys lie within the window. The k-th key rises faster than the c-th, and early shrinks (a small
/// `limit` while few keys are kept) let it take effect sooner: on 10k Fashion-MNIST EfficientNet embeddings
/// 1.7M keys are pushed instead of 4.0M with the c-th key at `2c` slots, the search ~7% faster.
struct Pool<'a> {
    k: usize,
    c: usize,
    slots: &'a mut [(f32, u32)],
    len: &'a mut [u32],
    /// The length at which the pool next shrinks: soon while few keys are kept, as the threshold rises fastest
    /// early on, at most `2c`.
    limit: &'a mut [u32],
    thr: &'a mut [f32],
    win: &'a [f32],
}

/// The pool length at which to shrink next, with `kept` keys: half as many again, at least `k` more.
fn next_limit(kept: usize, k: usize, cap: usize) -> usize {
    (kept + k.max(kept / 2)).max(2 * k).min(cap)
}

/// Keeps the `c` largest keys first; returns the c-th largest.
fn keep_largest(slots: &mut [(f32, u32)], c: usize) -> f32 {
    slots.select_nth_unstable_by(c - 1, |a, b| b.0.total_cmp(&a.0));
    slots[c - 1].0
}

/// Raises the threshold `thr` of a pool holding `slots` (more than `k` keys) to the k-th largest key less
/// `win`, or to the c-th largest where more than `c` keys lie above that, and keeps the keys above it first.
/// Returns the new threshold and how many keys are kept; every other key is at most the threshold.
fn shrink(slots: &mut [(f32, u32)], k: usize, c: usize, win: f32, thr: f32) -> (f32, usize) {
    let kth = keep_largest(slots, k);
    let t = thr.max(kth - win);
    let mut kept = k;
    for i in k..slots.len() {
        if slots[i].0 > t {
            slots.swap(kept, i);
            kept += 1;
        }
    }
    if kept > c {
        return (keep_largest(&mut slots[..kept], c), c);
    }
    (t, kept)
}

impl ItemRange for Pool<'_> {
    fn items(&self) -> usize {
        self.thr.len()
    }

    fn split_at(self, item: usize) -> (Self, Self) {
        Pool::split_at(self, item)
    }
}

impl<'a> Pool<'a> {
    #[inline]
    fn push(&mut self, item: usize, key: f32, id: u32) {
        let cap = 2 * self.c;
        let len = self.len[item] as usize;
        let slots = &mut self.slots[item * cap..(item + 1) * cap];
        slots[len] = (key, id);
        if len + 1 == self.limit[item] as usize {
            let (t, kept) = shrink(&mut slots[..=len], self.k, self.c, self.win[item], self.thr[item]);
            self.thr[item] = t;
            self.len[item] = kept as u32;
            self.limit[item] = next_limit(kept, self.k, cap) as u32;
        } else {
            self.len[item] = len as u32 + 1;
        }
    }

    fn split_at(self, item: usize) -> (Pool<'a>, Pool<'a>) {
        let cap = 2 * self.c;
        let (s0, s1) = self.slots.split_at_mut(item * cap);
        let (l0, l1) = self.len.split_at_mut(item);
        let (t0, t1) = self.thr.split_at_mut(item);
        let (m0, m1) = self.limit.split_at_mut(item);
        let (w0, w1) = self.win.split_at(item);
        let (k, c) = (self.k, self.c);
        (
            Pool { k, c, slots: s0, len: l0, limit: m0, thr: t0, win: w0 },
            Pool { k, c, slots: s1, len: l1, limit: m1, thr: t1, win: w1 },
        )
    }

    fn reborrow(&mut self) -> Pool<'_> {
        let (k, c, win) = (self.k, self.c, self.win);
        Pool { k, c, slots: &mut *self.slots, len: &mut *self.len, limit: &mut *self.limit, thr: &mut *self.thr, win }
    }

    fn range(self, start: usize, count: usize) -> Pool<'a> {
        self.split_at(start).1.split_at(count).0
    }
}

/// Columns per step of the key scans: keys are computed for a chunk at once (vectorised), and only a chunk
/// with a key above the threshold is looked at one by one.
const CHUNK: usize = 32;

/// `CHUNK` values from `base` (fewer at the end, the rest of the array is left as it is).
#[inline(always)]
fn chunk<T: Copy>(v: &[T], base: usize, fill: T) -> [T; CHUNK] {
    if let Some(full) = v.get(base..base + CHUNK) {
        // A fixed-size copy the compiler keeps in registers (a variable-length one calls memmove).
        return full.try_into().expect("CHUNK values");
    }
    let mut out = [fill; CHUNK];
    for (o, &x) in out.iter_mut().zip(&v[base..]) {
        *o = x;
    }
    out
}

/// One row `r` of a block into the pool of its row item: keys `(v g_a g_b + (r_a e_b + e_a r_b)) + p_b` against
/// the columns `j0..`; `diag` is the column to skip (the item itself). Keys are computed a chunk at a time in
/// fixed-size arrays (vectorised), and only a chunk with a key above the threshold is looked at key by key.
#[inline(always)]
fn row_into_pool(row: &[i32], j0: usize, a: RowTerms, cols: ColTerms, st: &mut Pool, r: usize, diag: Option<usize>) {
    let RowTerms { g: ga, r: ra, e: ea, .. } = a;
    let ColTerms { g: gc, p: pc, e: ec, r: rc } = cols;
    let mut keys = [0f32; CHUNK];
    for base in (0..row.len()).step_by(CHUNK) {
        let w = CHUNK.min(row.len() - base);
        // The tail's missing columns get key -inf through p = -inf.
        let (v, g, p) = (chunk(row, base, 0), chunk(gc, base, 0.0), chunk(pc, base, f32::NEG_INFINITY));
        let (e, rr) = (chunk(ec, base, 0.0), chunk(rc, base, 0.0));
        let thr = st.thr[r];
        let mut above = 0u32;
        for t in 0..CHUNK {
            keys[t] = (v[t] as f32 * (ga * g[t]) + (ra * e[t] + ea * rr[t])) + p[t];
            above |= u32::from(keys[t] > thr) << t;
        }
        // Only the keys above the threshold, by their bits (the threshold may rise on the way).
        while above != 0 {
            let t = above.trailing_zeros() as usize;
            above &= above - 1;
            if t < w && keys[t] > st.thr[r] && diag != Some(base + t) {
                st.push(r, keys[t], (j0 + base + t) as u32);
            }
        }
    }
}

/// One row segment of an off-diagonal block, for row item a against column items `c0..`, into both a's pool
/// (keys `S + p_b`) and the column items' pools (keys `S + p_a`), with `S = v g_a g_b + (r_a e_b + e_a r_b)`:
/// the product is read once for both directions.
#[inline(always)]
fn row_into_both(seg: &[i32], a: RowTerms, ids: (u32, u32), cols: ColTerms, rows: (&mut Pool, usize), colp: &mut Pool) {
    let ColTerms { g: gc, p: pc, e: ec, r: rc } = cols;
    let (rp, r) = rows;
    let (a_id, col0) = ids;
    let (mut rkeys, mut ckeys) = ([0f32; CHUNK], [0f32; CHUNK]);
    for base in (0..seg.len()).step_by(CHUNK) {
        let w = CHUNK.min(seg.len() - base);
        // Missing tail columns: p = -inf (no row key) and threshold +inf (no column key).
        let (v, g, p) = (chunk(seg, base, 0), chunk(gc, base, 0.0), chunk(pc, base, f32::NEG_INFINITY));
        let (e, rr, cthr) = (chunk(ec, base, 0.0), chunk(rc, base, 0.0), chunk(colp.thr, base, f32::INFINITY));
        let rthr = rp.thr[r];
        let (mut rabove, mut cabove) = (0u32, 0u32);
        for t in 0..CHUNK {
            let shared = v[t] as f32 * (a.g * g[t]) + (a.r * e[t] + a.e * rr[t]);
            rkeys[t] = shared + p[t];
            ckeys[t] = shared + a.p;
            rabove |= u32::from(rkeys[t] > rthr) << t;
            cabove |= u32::from(ckeys[t] > cthr[t]) << t;
        }
        while rabove != 0 {
            let t = rabove.trailing_zeros() as usize;
            rabove &= rabove - 1;
            if t < w && rkeys[t] > rp.thr[r] {
                rp.push(r, rkeys[t], col0 + (base + t) as u32);
            }
        }
        while cabove != 0 {
            let t = cabove.trailing_zeros() as usize;
            cabove &= cabove - 1;
            if t < w && ckeys[t] > colp.thr[base + t] {
                colp.push(base + t, ckeys[t], a_id);
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn row_into_pool_avx2(
    row: &[i32],
    j0: usize,
    a: RowTerms,
    cols: ColTerms,
    st: &mut Pool,
    r: usize,
    diag: Option<usize>,
) {
    row_into_pool(row, j0, a, cols, st, r, diag)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn row_into_both_avx2(
    seg: &[i32],
    a: RowTerms,
    ids: (u32, u32),
    cols: ColTerms,
    rows: (&mut Pool, usize),
    colp: &mut Pool,
) {
    row_into_both(seg, a, ids, cols, rows, colp)
}

/// A diagonal block (items `i0..` against themselves, the whole square) feeds the pools of its items, each
/// item skipping itself.
fn screen_diagonal(block: &[i32], cols: usize, i0: usize, qz: &Quantised, state: Pool) {
    let j0 = i0;
    let per = state.thr.len().div_ceil(rayon::current_num_threads() * 4).max(1);
    let col_terms = qz.cols(j0, cols);
    let fast = avx2();
    chunks(state, per).into_par_iter().for_each(|(r0, mut st)| {
        for r in 0..st.thr.len() {
            let a = qz.row(i0 + r0 + r);
            let row = &block[(r0 + r) * cols..(r0 + r + 1) * cols];
            let diag = Some(r0 + r);
            #[cfg(target_arch = "x86_64")]
            if fast {
                // SAFETY: `fast` is true only where the CPU has AVX2 and FMA.
                unsafe { row_into_pool_avx2(row, j0, a, col_terms, &mut st, r, diag) };
                continue;
            }
            let _ = fast;
            row_into_pool(row, j0, a, col_terms, &mut st, r, diag);
        }
    });
}

/// Asks the CPU to bring `v` into the cache.
#[inline(always)]
fn prefetch(v: &[i32]) {
    #[cfg(target_arch = "x86_64")]
    for line in v.chunks(16) {
        // SAFETY: a prefetch is only a hint; it never faults, and the address is inside `v`.
        unsafe { std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(line.as_ptr().cast()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = v;
}

/// An off-diagonal `[rows, cols]` block feeds the pools of its row items and of its column items in one
/// pass. It is cut into tiles of row ranges x column ranges; in each phase the tasks take tiles on distinct
/// row ranges and distinct column ranges (tile (i, (i + phase) mod m)), so no two tasks share a pool.
fn screen_both(block: &[i32], cols: usize, i0: usize, j0: usize, qz: &Quantised, rows_pool: Pool, cols_pool: Pool) {
    let parts = rayon::current_num_threads() * 4;
    let per_rows = rows_pool.thr.len().div_ceil(parts).max(1);
    let row_parts: Vec<Mutex<(usize, Pool)>> = chunks(rows_pool, per_rows).into_iter().map(Mutex::new).collect();
    let col_parts: Vec<Mutex<(usize, Pool)>> =
        chunks(cols_pool, cols.div_ceil(parts).max(1)).into_iter().map(Mutex::new).collect();
    let m = row_parts.len().max(col_parts.len());
    let fast = avx2();
    for phase in 0..m {
        (0..row_parts.len()).into_par_iter().for_each(|i| {
            let Some(col_part) = col_parts.get((i + phase) % m) else { return };
            // Uncontended: within a phase every row range and every column range has one task.
            let mut rows = row_parts[i].lock().expect("tile lock");
            let mut colp = col_part.lock().expect("tile lock");
            let ((r0, rp), (c0, cp)) = (&mut *rows, &mut *colp);
            let width = cp.thr.len();
            let col_terms = qz.cols(j0 + *c0, width);
            for r in 0..rp.thr.len() {
                let a = qz.row(i0 + *r0 + r);
                let seg = &block[(*r0 + r) * cols + *c0..(*r0 + r) * cols + *c0 + width];
                if r + 1 < rp.thr.len() {
                    // The next row's segment starts a new stream the hardware prefetcher has not seen.
                    prefetch(&block[(*r0 + r + 1) * cols + *c0..(*r0 + r + 1) * cols + *c0 + width]);
                }
                let ids = ((i0 + *r0 + r) as u32, (j0 + *c0) as u32);
                #[cfg(target_arch = "x86_64")]
                if fast {
                    // SAFETY: `fast` is true only where the CPU has AVX2 and FMA.
                    unsafe { row_into_both_avx2(seg, a, ids, col_terms, (rp, r), cp) };
                    continue;
                }
                let _ = fast;
                row_into_both(seg, a, ids, col_terms, (rp, r), cp);
            }
        });
    }
}

/// A range of items, `start..end`.
type Span = (usize, usize);

/// Every product of the symmetric blocked scan of the rows of `m` (`symmetric_tasks`), by `mm(rows,
/// columns^T, out)` into one reused buffer of `T`s, handed to `visit` with its row and column ranges.
fn symmetric_products<T: tch::kind::Element>(
    m: &Tensor,
    block: usize,
    mm: impl Fn(&Tensor, &Tensor, &Tensor) -> Result<Tensor, tch::TchError>,
    hooks: &Hooks,
    mut visit: impl FnMut(&[T], Span, Span),
) -> Result<(), AnalysisError> {
    let (bsize, tasks) = symmetric_tasks(m.size()[0] as usize, block);
    // One buffer for every product: each block's output is a contiguous view of its first rows * cols.
    let buffer = Tensor::empty([(bsize * bsize) as i64], (T::KIND, Device::Cpu));
    for (done, &((i0, i1), (j0, j1))) in tasks.iter().enumerate() {
        check_cancel(hooks)?;
        let (rows, cols) = (i1 - i0, j1 - j0);
        let out = buffer.narrow(0, 0, (rows * cols) as i64).view([rows as i64, cols as i64]);
        let _ = mm(&m.narrow(0, i0 as i64, rows as i64), &m.narrow(0, j0 as i64, cols as i64).tr(), &out)?;
        // SAFETY: `out` is a contiguous CPU tensor of rows * cols elements of T's kind, alive for this scope.
        let prod = unsafe { std::slice::from_raw_parts(out.data_ptr() as *const T, rows * cols) };
        visit(prod, (i0, i1), (j0, j1));
        (hooks.progress)("neighbours", done + 1, tasks.len());
    }
    Ok(())
}

/// The block size (`block`, or 2048 for 0, evened out over `n`) and the products of the symmetric scan.
fn symmetric_tasks(n: usize, block: usize) -> (usize, Vec<(Span, Span)>) {
    let target = if block > 0 { block } else { 2048 };
    let nblocks = n.div_ceil(target);
    let bsize = n.div_ceil(nblocks);
    let bounds: Vec<Span> = (0..nblocks).map(|b| (b * bsize, ((b + 1) * bsize).min(n))).collect();
    (bsize, block_pairs(&bounds))
}

/// The products the symmetric scan needs, as (rows, columns) ranges with rows first: each block against
/// itself and every later block. A block against itself is cut into quarters (the quarters' own squares
/// plus their pairs), so that of the square's redundant lower half only the quarters' halves remain.
fn block_pairs(bounds: &[Span]) -> Vec<(Span, Span)> {
    let mut tasks = Vec::new();
    for (b, &(i0, i1)) in bounds.iter().enumerate() {
        let parts = 4.min(i1 - i0);
        let step = (i1 - i0).div_ceil(parts);
        let quarters: Vec<(usize, usize)> = (i0..i1).step_by(step).map(|s| (s, (s + step).min(i1))).collect();
        for (q, &rows) in quarters.iter().enumerate() {
            tasks.extend(quarters[q..].iter().map(|&cols| (rows, cols)));
        }
        tasks.extend(bounds[b + 1..].iter().map(|&cols| ((i0, i1), cols)));
    }
    tasks
}

/// The symmetric blocked scan: int8 products by libtorch's `_int_mm`, block by block, into `pool`.
fn screen_blocks(
    qz: &Quantised,
    n: usize,
    d: usize,
    block: usize,
    pool: Pool,
    hooks: &Hooks,
) -> Result<(), AnalysisError> {
    // SAFETY: `qz.q` holds n * d int8 values and outlives `qt`, which is dropped at the end of this function.
    let qt = unsafe {
        Tensor::f_from_blob(qz.q.as_ptr().cast(), &[n as i64, d as i64], &[d as i64, 1], Kind::Int8, Device::Cpu)?
    };
    let mut pool = pool;
    let scan = |prod: &[i32], (i0, i1): Span, (j0, j1): Span| {
        let (rows, cols) = (i1 - i0, j1 - j0);
        let (before_j, from_j) = pool.reborrow().split_at(j0);
        if i0 == j0 {
            screen_diagonal(prod, cols, i0, qz, from_j.range(0, rows));
        } else {
            screen_both(prod, cols, i0, j0, qz, before_j.range(i0, rows), from_j.range(0, cols));
        }
    };
    symmetric_products(&qt, block, |a, b, out| a.f_internal_int_mm_out(out, b), hooks, scan)?;
    Ok(())
}

/// Symmetric blocked scan over the int8 product, exact re-rank with the proof above, exact search of the
/// items without one.
fn screened_cpu(
    x: &[f32],
    n: usize,
    d: usize,
    k: usize,
    opts: &KnnOptions,
    hooks: &Hooks,
) -> Result<(Candidates, ScreenStats), AnalysisError> {
    let u = UnitRows::new(x, d);
    let qz = quantise(&u, n, d);
    let c = (k + screen_extra(n)).min(n - 1);
    let cap = 2 * c;
    let gamma = 1.000_01 * d as f64 * F32_U / (1.0 - d as f64 * F32_U);
    let key_slack = 8.0 * F32_U * (qz.r_max * qz.r_max + 1.001 * qz.mu_norm + 2.0 * qz.r_max * qz.e_max);
    let proof = KeyBounds { qz: &qz, gamma, key_slack };
    if opts.screen == Screen::Auto && n >= PILOT_MIN_ITEMS {
        let share = pilot_unproven_share(&u, &qz, d, k, c, &proof);
        if share > screen_max_share(d) {
            drop((u, qz));
            let cand = symmetric_cpu(x, n, d, k, opts.block, hooks)?;
            return Ok((cand, ScreenStats { candidates: c, rescanned: 0, declined: true }));
        }
    }
    let mut slots = vec![(f32::NEG_INFINITY, u32::MAX); n * cap];
    let mut len = vec![0u32; n];
    let mut limit = vec![next_limit(0, k, cap) as u32; n];
    let mut thr = vec![f32::NEG_INFINITY; n];
    let win = screen_window(&qz, &proof);
    let pool = Pool { k, c, slots: &mut slots, len: &mut len, limit: &mut limit, thr: &mut thr, win: &win };
    screen_blocks(&qz, n, d, opts.block, pool, hooks)?;

    // Each item's candidates in key order.
    slots.par_chunks_mut(cap).zip(len.par_iter_mut().zip(thr.par_iter_mut())).zip(&win).for_each(
        |((pool, (l, tau)), &w)| {
            if *l as usize > k {
                let (t, kept) = shrink(&mut pool[..*l as usize], k, c, w, *tau);
                (*tau, *l) = (t, kept as u32);
            }
            pool[..*l as usize].sort_unstable_by(|p, q| q.0.total_cmp(&p.0));
        },
    );
    let cands = |a: usize| &slots[a * cap..a * cap + len[a] as usize];
    // The re-rank in two rounds of f32 products: first each item's k best keys; then the candidates after
    // them whose bound reaches the k-th similarity found so far (the rest cannot be among the k nearest).
    let first = pairs_of(n, |a| &cands(a)[..k.min(cands(a).len())]);
    let first_sims = pair_sims(&u, &first.pairs);
    let more: Vec<usize> = (0..n)
        .into_par_iter()
        .map(|a| {
            let cand = cands(a);
            let found = &first_sims[first.start[a]..first.start[a + 1]];
            let kth = found.iter().copied().fold(f32::INFINITY, f32::min);
            let margin = proof.margin(a);
            cand[found.len()..].partition_point(|&(key, _)| f64::from(key) + margin >= f64::from(kth))
        })
        .collect();
    let second = pairs_of(n, |a| {
        let (cand, from) = (cands(a), first.start[a + 1] - first.start[a]);
        &cand[from..from + more[a]]
    });
    let second_sims = pair_sims(&u, &second.pairs);
    let mut ids = vec![u32::MAX; n * k];
    let mut sims = vec![f32::NEG_INFINITY; n * k];
    let proven: Vec<bool> = ids
        .par_chunks_mut(k)
        .zip(sims.par_chunks_mut(k))
        .enumerate()
        .map(|(a, (out_ids, out_sims))| {
            let computed = [(&first, &first_sims), (&second, &second_sims)].map(|(round, sims)| {
                round.pairs[round.start[a]..round.start[a + 1]].iter().zip(&sims[round.start[a]..])
            });
            // Top k by (similarity, then smaller id).
            let mut best: Vec<(f32, u32)> = computed.into_iter().flatten().map(|(&(_, b), &sim)| (sim, b)).collect();
            let m = best.len();
            best.sort_unstable_by(|p, q| q.0.total_cmp(&p.0).then(p.1.cmp(&q.1)));
            for (t, &(sim, b)) in best.iter().take(k).enumerate() {
                out_ids[t] = b;
                out_sims[t] = sim;
            }
            let kth = f64::from(best[k - 1].0);
            let margin = proof.margin(a);
            // Every candidate not computed, and every non-candidate, has a key at most the first one not
            // computed (or the threshold), whose bound must fall below the k-th.
            match cands(a).get(m) {
                Some(&(key, _)) => f64::from(key) + margin < kth,
                None => thr[a] == f32::NEG_INFINITY || f64::from(thr[a]) + margin < kth,
            }
        })
        .collect();
    drop((first, first_sims, second, second_sims));
    drop(slots);
    let unproven: Vec<u32> = (0..n as u32).filter(|&a| !proven[a as usize]).collect();
    (hooks.progress)("neighbours: items searched exactly (screen without proof)", unproven.len(), n);
    if unproven.len() * 5 > n * 2 {
        // Most items without a proof (neighbours closer together than int8 resolves, e.g. noise-dominated
        // clusters): one symmetric f32 scan of all items costs less than their full rows one by one.
        drop((u, qz, ids, sims));
        let cand = symmetric_cpu(x, n, d, k, opts.block, hooks)?;
        return Ok((cand, ScreenStats { candidates: c, rescanned: n, declined: false }));
    }
    if !unproven.is_empty() {
        let found = if unproven.len() <= FEW_ROWS {
            few_rows(&u, &unproven, k)
        } else {
            // The same values as `UnitRows` computes, stored for libtorch.
            let u = normalised_rows(x, d);
            // SAFETY: `u` holds n * d f32 values and outlives `xt`, which search_blocks only reads.
            let xt = unsafe {
                Tensor::f_from_blob(u.as_ptr().cast(), &[n as i64, d as i64], &[d as i64, 1], Kind::Float, Device::Cpu)?
            };
            search_blocks(&xt, None, &unproven, k, opts, "neighbours: exact search", hooks)?
        };
        for (r, &a) in unproven.iter().enumerate() {
            let a = a as usize;
            ids[a * k..(a + 1) * k].copy_from_slice(&found.ids[r * k..(r + 1) * k]);
            sims[a * k..(a + 1) * k].copy_from_slice(&found.sims[r * k..(r + 1) * k]);
        }
    }
    let stats = ScreenStats { candidates: c, rescanned: unproven.len(), declined: false };
    free_later(qz);
    Ok((Candidates { queries: (0..n as u32).collect(), ids, sims }, stats))
}

/// Frees large buffers on another thread: handing 50 MB back to the OS takes milliseconds (2% of a 10k x
/// 1280 search) that the caller need not wait for.
fn free_later<T: Send + 'static>(buffers: T) {
    // Where no thread can be started, the closure (and the buffers with it) is dropped right here.
    let _ = std::thread::Builder::new().name("free".into()).spawn(move || drop(buffers));
}

/// Up to this many items are searched exactly by `few_rows`; more go through libtorch's blocked products.
const FEW_ROWS: usize = 64;

/// Exact rows of a few items against all items (each excluding itself), the k best by (similarity, then
/// smaller id). The items stream past once with the few rows in the cache; a BLAS call would first copy the
/// whole matrix into packed panels, which costs more than these products.
fn few_rows(u: &UnitRows, queries: &[u32], k: usize) -> Candidates {
    let (n, d) = (u.n(), u.d);
    let nq = queries.len();
    let fast = avx2();
    let mut query_rows = vec![0f32; nq * d];
    for (row, &a) in query_rows.chunks_mut(d).zip(queries) {
        u.row_into(a as usize, row);
    }
    let mut all = vec![0f32; n * nq];
    all.par_chunks_mut(nq * 64).enumerate().for_each_init(
        || vec![0f32; d],
        |ub, (chunk, out)| {
            for (r, out) in out.chunks_mut(nq).enumerate() {
                u.row_into(chunk * 64 + r, ub);
                for (o, ua) in out.iter_mut().zip(query_rows.chunks(d)) {
                    *o = dot(ua, ub, fast);
                }
            }
        },
    );
    let rows: Vec<Vec<(f32, u32)>> = queries
        .par_iter()
        .enumerate()
        .map(|(i, &a)| {
            let mut row: Vec<(f32, u32)> =
                (0..n as u32).filter(|&b| b != a).map(|b| (all[b as usize * nq + i], b)).collect();
            let order = |p: &(f32, u32), q: &(f32, u32)| q.0.total_cmp(&p.0).then(p.1.cmp(&q.1));
            let k = k.min(row.len());
            row.select_nth_unstable_by(k - 1, order);
            row.truncate(k);
            row.sort_unstable_by(order);
            row
        })
        .collect();
    Candidates {
        queries: queries.to_vec(),
        ids: rows.iter().flatten().map(|&(_, b)| b).collect(),
        sims: rows.iter().flatten().map(|&(s, _)| s).collect(),
    }
}

/// Items the pilot looks at, evenly spaced, and the fewest items for which it runs (below, the whole search
/// takes milliseconds either way).
const PILOT_ITEMS: usize = 16;
const PILOT_MIN_ITEMS: usize = 1000;

/// The largest share of items without a proof for which the screen still beats plain f32 products. Each such
/// item costs an exact row (n f32 products and a top-k), while the screen's saving grows with `d` (int8
/// products are ~4x cheaper; the scan of the keys costs the same at any `d`). Measured at 10k items, 2 cores:
/// 256-d CNN features with a third of the items unproven took 0.46-0.64 s screened against 0.30 s in f32;
/// at 1280-d the screen wins up to ~40% (0.4 s against 1.3 s with 0.3% unproven).
fn screen_max_share(d: usize) -> f64 {
    (0.02 + d as f64 / 4000.0).min(0.4)
}

/// The share of `PILOT_ITEMS` evenly spaced items that the screen would leave without a proof, by the re-rank's
/// own test: each item's keys against all items (the row direction of the scan), the c-th largest as the
/// threshold, the exact f32 similarities of the c best, and the threshold's bound against their k-th.
fn pilot_unproven_share(u: &UnitRows, qz: &Quantised, d: usize, k: usize, c: usize, proof: &KeyBounds) -> f64 {
    let n = u.n();
    let sample: Vec<usize> = (0..PILOT_ITEMS).map(|i| i * n / PILOT_ITEMS).collect();
    // Products in Rust rather than libtorch's `_int_mm`: a new shape there costs ~12 ms of kernel generation,
    // more than these 16 rows of products. The sample's int8 rows are widened to i16 once (vector
    // multiply-adds take i16).
    let rows: Vec<i16> = sample.iter().flat_map(|&a| qz.q[a * d..(a + 1) * d].iter().map(|&v| i16::from(v))).collect();
    // Items outermost, so that the int8 rows stream past once while the sample's rows stay in the cache.
    let fast = avx2();
    let mut ints = vec![0i32; n * PILOT_ITEMS];
    ints.par_chunks_mut(PILOT_ITEMS * 64).enumerate().for_each_init(
        || vec![0i16; d],
        |wide, (chunk, out)| {
            for (r, out) in out.chunks_mut(PILOT_ITEMS).enumerate() {
                let b = chunk * 64 + r;
                wide.iter_mut().zip(&qz.q[b * d..(b + 1) * d]).for_each(|(w, &v)| *w = i16::from(v));
                for (o, qa) in out.iter_mut().zip(rows.chunks_exact(d)) {
                    *o = dot_i16(qa, wide, fast);
                }
            }
        },
    );
    let unproven = sample
        .par_iter()
        .enumerate()
        .filter(|&(i, &a)| {
            let ar = qz.row(a);
            let mut keys: Vec<(f32, u32)> = (0..n)
                .filter(|&b| b != a)
                .map(|b| {
                    let v = ints[b * PILOT_ITEMS + i] as f32;
                    (v * (ar.g * qz.g[b]) + (ar.r * qz.e[b] + ar.e * qz.r[b]) + qz.p[b], b as u32)
                })
                .collect();
            keys.select_nth_unstable_by(c - 1, |x, y| y.0.total_cmp(&x.0));
            let tau = keys[c - 1].0;
            let mut sims: Vec<f32> = keys[..c].iter().map(|&(_, b)| u.dot(a, b as usize, fast)).collect();
            let kth = *sims.select_nth_unstable_by(k - 1, |x, y| y.total_cmp(x)).1;
            f64::from(tau) + proof.margin(a) >= f64::from(kth)
        })
        .count();
    unproven as f64 / PILOT_ITEMS as f64
}

/// Dot product of int8 values held in i16, in i32 (exact: `d` 127^2 < 2^31 where the screen applies).
#[inline(always)]
fn dot_i16_body(a: &[i16], b: &[i16]) -> i32 {
    a.iter().zip(b).map(|(&x, &y)| i32::from(x) * i32::from(y)).sum()
}

/// `dot_i16_body` with `vpmaddwd`: 16 products and their pairwise sums per instruction.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn dot_i16_avx2(a: &[i16], b: &[i16]) -> i32 {
    use std::arch::x86_64::*;
    let len = a.len().min(b.len());
    let full = len / 16 * 16;
    let mut acc = _mm256_setzero_si256();
    for j in (0..full).step_by(16) {
        // SAFETY: j + 16 <= len for both slices; unaligned loads.
        unsafe {
            let x = _mm256_loadu_si256(a.as_ptr().add(j).cast());
            let y = _mm256_loadu_si256(b.as_ptr().add(j).cast());
            acc = _mm256_add_epi32(acc, _mm256_madd_epi16(x, y));
        }
    }
    let mut lanes = [0i32; 8];
    // SAFETY: an unaligned store of 8 i32 into an array of 8.
    unsafe { _mm256_storeu_si256(lanes.as_mut_ptr().cast(), acc) };
    lanes.iter().sum::<i32>() + dot_i16_body(&a[full..len], &b[full..len])
}

fn dot_i16(a: &[i16], b: &[i16], avx2: bool) -> i32 {
    #[cfg(target_arch = "x86_64")]
    if avx2 {
        // SAFETY: `avx2` is true only where the CPU has AVX2 and FMA (`avx2()`).
        return unsafe { dot_i16_avx2(a, b) };
    }
    let _ = avx2;
    dot_i16_body(a, b)
}

/// Per item, how far below its k-th largest key the pool's threshold sits. The k best keys' items have
/// `T_ab >= K_ab - 2 (r_a e_b + e_a r_b) + p_a - mu . mu` (a key less its error term twice), so with the
/// error terms at their means the k-th similarity is about the k-th key less `2 (r_a e_mean + e_a r_mean)`,
/// and a key further below than that (plus the roundings) fails the proof's test against it. The bound's
/// worst case (e_max, r_max) kept a third more keys and left as many items without a proof (MNIST and
/// Fashion-MNIST embeddings, 10k); only the pool's efficiency depends on this window, as the proof is checked
/// on the computed similarities.
fn screen_window(qz: &Quantised, proof: &KeyBounds) -> Vec<f32> {
    let slack = 2.0 * proof.key_slack + 4.0 * proof.gamma + 1e-9;
    let n = qz.e.len() as f64;
    let e_mean = qz.e.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
    let r_mean = qz.r.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
    qz.e.iter()
        .zip(&qz.r)
        .map(|(&e, &r)| upper_f32(2.0 * (f64::from(r) * e_mean + f64::from(e) * r_mean) + slack))
        .collect()
}

/// The bounds of the proof above for the re-rank.
struct KeyBounds<'a> {
    qz: &'a Quantised,
    gamma: f64,
    key_slack: f64,
}

impl KeyBounds<'_> {
    /// `UB + 3 gamma = key + margin`: the bound on an item's f32 similarities from a key (or the threshold).
    fn margin(&self, a: usize) -> f64 {
        self.key_slack + self.qz.p64[a] - self.qz.mu_sq + 1e-9 + 3.0 * self.gamma
    }
}

/// (item, candidate) pairs, item after item from `start[a]`.
struct Pairs {
    start: Vec<usize>,
    pairs: Vec<(u32, u32)>,
}

fn pairs_of<'a>(n: usize, cand: impl Fn(usize) -> &'a [(f32, u32)]) -> Pairs {
    let mut start = Vec::with_capacity(n + 1);
    let mut pairs = Vec::new();
    for a in 0..n {
        start.push(pairs.len());
        pairs.extend(cand(a).iter().map(|&(_, b)| (a as u32, b)));
    }
    start.push(pairs.len());
    Pairs { start, pairs }
}

/// Bytes of rows one pass of `pair_sims` keeps hot: both cores share the L3 cache (32 MiB on the machines
/// measured), which must also hold the item rows streaming past.
const RERANK_BLOCK_BYTES: usize = 12 << 20;

/// f32 similarities of the (item, candidate) pairs, computed in passes over blocks of candidate rows that
/// stay in the cache while the item rows stream past once per pass. In item order each product would fetch
/// its candidate row from memory (5 KB for 1280-d): that made the re-rank memory-bound.
fn pair_sims(u: &UnitRows, pairs: &[(u32, u32)]) -> Vec<f32> {
    let (n, d) = (u.n(), u.d);
    let per_block = (RERANK_BLOCK_BYTES / (4 * d.max(1))).max(1);
    let blocks = n.div_ceil(per_block).max(1);
    // Counting sort by the candidate's block, stable (items ascending within each block).
    let mut next = vec![0usize; blocks + 1];
    for &(_, b) in pairs {
        next[b as usize / per_block + 1] += 1;
    }
    for blk in 0..blocks {
        next[blk + 1] += next[blk];
    }
    let block_start = next.clone();
    let mut sorted = vec![(0u32, 0u32, 0u32); pairs.len()];
    for (at, &(a, b)) in pairs.iter().enumerate() {
        let slot = &mut next[b as usize / per_block];
        sorted[*slot] = (a, b, at as u32);
        *slot += 1;
    }
    let fast = avx2();
    let mut sims_sorted = vec![0f32; pairs.len()];
    for blk in 0..blocks {
        let range = block_start[blk]..block_start[blk + 1];
        sims_sorted[range.clone()].par_chunks_mut(1024).zip(sorted[range].par_chunks(1024)).for_each(|(out, pairs)| {
            for (o, &(a, b, _)) in out.iter_mut().zip(pairs) {
                *o = u.dot(a as usize, b as usize, fast);
            }
        });
    }
    let mut sims = vec![0f32; pairs.len()];
    for (&(_, _, at), &sim) in sorted.iter().zip(&sims_sorted) {
        sims[at as usize] = sim;
    }
    sims
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
    search_blocks(&xt, bias.as_ref(), queries, k, opts, "neighbours", hooks)
}

/// The queries' `k` best by `x . y - bias` against all rows of `xt` (`[n, d]` on the device), self masked.
fn search_blocks(
    xt: &Tensor,
    bias: Option<&Tensor>,
    queries: &[u32],
    k: usize,
    opts: &KnnOptions,
    stage: &str,
    hooks: &Hooks,
) -> Result<Candidates, AnalysisError> {
    let (dev, n) = (xt.device(), xt.size()[0] as usize);
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
        if let Some(bias) = bias {
            s -= bias;
        }
        let _ = s.scatter_value_(1, &q_idx.view([-1, 1]), f64::NEG_INFINITY);
        let (val, idx) = s.topk(k as i64, 1, true, true);
        let idx = Vec::<i64>::try_from(idx.to_device(Device::Cpu).contiguous().view([-1]))?;
        ids.extend(idx.into_iter().map(|i| i as u32));
        sims.extend(Vec::<f32>::try_from(val.to_device(Device::Cpu).contiguous().view([-1]))?);
        (hooks.progress)(stage, b + 1, total);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The proof needs every key a pool drops to be at most its threshold; the re-rank needs the k largest kept.
    #[test]
    fn shrink_keeps_every_key_above_the_threshold_and_the_k_largest() {
        let mut seed = 7u64;
        let mut next = || {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (seed >> 40) as f32 / (1u64 << 24) as f32
        };
        let (k, c) = (3, 8);
        for case in 0..500 {
            let len = k + 1 + case % (2 * c - k);
            // Ties on purpose: keys on a coarse grid.
            let mut slots: Vec<(f32, u32)> = (0..len).map(|i| ((next() * 16.0).floor() / 16.0, i as u32)).collect();
            let before = slots.clone();
            let (win, thr) = (next() * 0.5, if case % 3 == 0 { f32::NEG_INFINITY } else { next() * 0.3 });
            let (t, kept) = shrink(&mut slots, k, c, win, thr);
            assert!(t >= thr && kept >= k.min(len) && kept <= c, "case {case}: t {t} kept {kept}");
            let mut sorted: Vec<f32> = before.iter().map(|s| s.0).collect();
            sorted.sort_by(|a, b| b.total_cmp(a));
            let mut kept_keys: Vec<f32> = slots[..kept].iter().map(|s| s.0).collect();
            kept_keys.sort_by(|a, b| b.total_cmp(a));
            assert_eq!(kept_keys[..k], sorted[..k], "case {case}: the k largest");
            assert!(slots[kept..].iter().all(|s| s.0 <= t), "case {case}: a dropped key above the threshold");
            let mut ids: Vec<u32> = slots.iter().map(|s| s.1).collect();
            ids.sort_unstable();
            assert_eq!(ids, (0..len as u32).collect::<Vec<_>>(), "case {case}: slots permuted, none lost");
        }
    }

    #[test]
    fn shrink_limits_grow_with_the_kept_keys_up_to_the_slots() {
        assert_eq!(next_limit(0, 10, 94), 20);
        assert_eq!(next_limit(12, 10, 94), 22);
        assert_eq!(next_limit(40, 10, 94), 60);
        assert_eq!(next_limit(47, 10, 94), 70);
        assert_eq!(next_limit(80, 10, 94), 94);
    }
}
