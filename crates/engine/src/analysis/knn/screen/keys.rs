//! The scan of the int8 products: each value of a block becomes a key (an upper bound on the similarity, the
//! proof's K~) for the pool of its row item, and off the diagonal also for the pool of its column item.

use std::sync::Mutex;

use rayon::prelude::*;
use tch::{Device, Kind, Tensor};

use super::Pool;
use super::quantise::{ColTerms, Quantised, RowTerms};
use crate::analysis::knn::blocked::{CHUNK, Span, chunk, chunks, symmetric_products};
use crate::analysis::knn::simd::{Kernels, prefetch};
use crate::analysis::{AnalysisError, Hooks};

/// One row of a block into the pool of its row item (item `r` of `st`) against the columns `j0..`, with keys
/// `(v g_a g_b + (r_a e_b + e_a r_b)) + p_b`; `diag` is the column to skip (the item itself). Keys are computed
/// a chunk at a time in fixed-size arrays (vectorised), and only a chunk with a key above the threshold is
/// looked at key by key.
#[inline(always)]
pub(in crate::analysis::knn) fn row_into_pool(
    row: &[i32],
    j0: usize,
    a: RowTerms,
    cols: ColTerms,
    (st, r): (&mut Pool, usize),
    diag: Option<usize>,
) {
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
pub(in crate::analysis::knn) fn row_into_both(
    seg: &[i32],
    a: RowTerms,
    ids: (u32, u32),
    cols: ColTerms,
    rows: (&mut Pool, usize),
    colp: &mut Pool,
) {
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

/// A diagonal block (items `i0..` against themselves, the whole square) feeds the pools of its items, each
/// item skipping itself.
fn screen_diagonal(block: &[i32], cols: usize, i0: usize, qz: &Quantised, state: Pool, kern: Kernels) {
    let j0 = i0;
    let per = state.thr.len().div_ceil(rayon::current_num_threads() * 4).max(1);
    let col_terms = qz.cols(j0, cols);
    chunks(state, per).into_par_iter().for_each(|(r0, mut st)| {
        for r in 0..st.thr.len() {
            let a = qz.row(i0 + r0 + r);
            let row = &block[(r0 + r) * cols..(r0 + r + 1) * cols];
            kern.row_into_pool(row, j0, a, col_terms, (&mut st, r), Some(r0 + r));
        }
    });
}

/// An off-diagonal `[rows, cols]` block feeds the pools of its row items and of its column items in one
/// pass. It is cut into tiles of row ranges x column ranges; in each phase the tasks take tiles on distinct
/// row ranges and distinct column ranges (tile (i, (i + phase) mod m)), so no two tasks share a pool.
fn screen_both(
    block: &[i32],
    cols: usize,
    (i0, j0): (usize, usize),
    qz: &Quantised,
    rows_pool: Pool,
    cols_pool: Pool,
    kern: Kernels,
) {
    let parts = rayon::current_num_threads() * 4;
    let per_rows = rows_pool.thr.len().div_ceil(parts).max(1);
    let row_parts: Vec<Mutex<(usize, Pool)>> = chunks(rows_pool, per_rows).into_iter().map(Mutex::new).collect();
    let col_parts: Vec<Mutex<(usize, Pool)>> =
        chunks(cols_pool, cols.div_ceil(parts).max(1)).into_iter().map(Mutex::new).collect();
    let m = row_parts.len().max(col_parts.len());
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
                kern.row_into_both(seg, a, ids, col_terms, (rp, r), cp);
            }
        });
    }
}

/// The symmetric blocked scan: int8 products by libtorch's `_int_mm`, block by block, into `pool`.
pub(super) fn screen_blocks(
    qz: &Quantised,
    n: usize,
    d: usize,
    block: usize,
    pool: Pool,
    kern: Kernels,
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
            screen_diagonal(prod, cols, i0, qz, from_j.range(0, rows), kern);
        } else {
            screen_both(prod, cols, (i0, j0), qz, before_j.range(i0, rows), from_j.range(0, cols), kern);
        }
    };
    symmetric_products(&qt, block, |a, b, out| a.f_internal_int_mm_out(out, b), hooks, scan)?;
    Ok(())
}
