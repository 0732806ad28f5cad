//! The f32 path (CPU, cosine): f32 products of the symmetric blocked scan, each value offered to the running
//! top-k of its row item and of its column item. The scan keeps a per-item threshold (the k-th best so far),
//! so almost every value costs one comparison; it runs in Rust on the product's memory, in parallel over
//! disjoint items, and avoids `topk`'s per-row sort.

use rayon::prelude::*;
use tch::{Device, Kind, Tensor};

use super::Candidates;
use super::blocked::{CHUNK, ItemRange, Span, chunk, chunks, symmetric_products};
use super::rows::normalised_rows;
use super::simd::Kernels;
use crate::analysis::{AnalysisError, Hooks};

/// Running top-k by similarity (larger is nearer) for a contiguous range of items.
pub(super) struct TopK<'a> {
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

impl ItemRange for TopK<'_> {
    fn items(&self) -> usize {
        self.thr.len()
    }

    fn split_at(self, item: usize) -> (Self, Self) {
        TopK::split_at(self, item)
    }
}

/// Rows of a `[rows, cols]` product block feed the top-k of row items; `skip_diag` skips `r == c`.
fn scan_rows(block: &[f32], cols: usize, col0: u32, state: TopK, skip_diag: bool, kern: Kernels) {
    let per = state.thr.len().div_ceil(rayon::current_num_threads() * 4).max(1);
    chunks(state, per).into_par_iter().for_each(|(r0, mut st)| {
        let rows = &block[r0 * cols..(r0 + st.thr.len()) * cols];
        let diag = skip_diag.then_some(r0);
        kern.rows_into_topk(rows, cols, col0, &mut st, diag)
    });
}

/// Each row `r` of `rows` into item r's top-k; with `diag = Some(c0)`, column `c0 + r` is the item itself.
/// A chunk of values is compared at once (vectorised); only those above the threshold are looked at.
#[inline(always)]
pub(super) fn rows_into_topk(rows: &[f32], cols: usize, col0: u32, st: &mut TopK, diag: Option<usize>) {
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

/// Columns of a `[rows, cols]` product block feed the top-k of column items (row by row, so memory is read
/// in order; each parallel task owns a range of columns).
fn scan_cols(block: &[f32], rows: usize, cols: usize, row0: u32, state: TopK, kern: Kernels) {
    let per = cols.div_ceil(rayon::current_num_threads() * 4).max(1);
    chunks(state, per)
        .into_par_iter()
        .for_each(|(c0, mut st)| kern.cols_into_topk(block, rows, cols, c0, row0, &mut st));
}

/// Columns `c0..` of every row into the columns' top-k (`st` holds those columns' items).
#[inline(always)]
pub(super) fn cols_into_topk(block: &[f32], rows: usize, cols: usize, c0: usize, row0: u32, st: &mut TopK) {
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

/// The k most similar items of every item by the f32 products of its unit row with all others.
pub(super) fn symmetric_cpu(
    x: &[f32],
    n: usize,
    d: usize,
    k: usize,
    block: usize,
    kern: Kernels,
    hooks: &Hooks,
) -> Result<Candidates, AnalysisError> {
    let xn = normalised_rows(x, d, kern);
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
            scan_rows(prod, cols, j0 as u32, from_j.split_at(rows).0, true, kern);
        } else {
            let row_state = before_j.split_at(i0).1.split_at(rows).0;
            let col_state = from_j.split_at(cols).0;
            rayon::join(
                || scan_rows(prod, cols, j0 as u32, row_state, false, kern),
                || scan_cols(prod, rows, cols, i0 as u32, col_state, kern),
            );
        }
    };
    symmetric_products(&xt, block, |a, b, out| a.f_mm_out(out, b), hooks, scan)?;
    drop(xt);
    Ok(Candidates { queries: (0..n as u32).collect(), ids, sims })
}
