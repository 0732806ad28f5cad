//! The exact search of the items the proof leaves without one: their rows of f32 products against all items.

use rayon::prelude::*;
use tch::{Device, Kind, Tensor};

use crate::analysis::knn::device::search_blocks;
use crate::analysis::knn::rows::{UnitRows, normalised_rows};
use crate::analysis::knn::{Candidates, KnnOptions};
use crate::analysis::{AnalysisError, Hooks};

/// The k best of each of the `unproven` items (by similarity, then smaller id) against all items.
pub(super) fn search_unproven(
    x: &[f32],
    u: &UnitRows,
    unproven: &[u32],
    k: usize,
    opts: &KnnOptions,
    hooks: &Hooks,
) -> Result<Candidates, AnalysisError> {
    if unproven.len() <= FEW_ROWS {
        return Ok(few_rows(u, unproven, k));
    }
    let (n, d) = (u.n(), u.d);
    // The same values as `UnitRows` computes, stored for libtorch.
    let u = normalised_rows(x, d, u.kern);
    // SAFETY: `u` holds n * d f32 values and outlives `xt`, which search_blocks only reads.
    let xt = unsafe {
        Tensor::f_from_blob(u.as_ptr().cast(), &[n as i64, d as i64], &[d as i64, 1], Kind::Float, Device::Cpu)?
    };
    search_blocks(&xt, None, unproven, k, opts, "neighbours: exact search", hooks)
}

/// Up to this many items are searched exactly by `few_rows`; more go through libtorch's blocked products.
const FEW_ROWS: usize = 64;

/// Exact rows of a few items against all items (each excluding itself), the k best by (similarity, then
/// smaller id). The items stream past once with the few rows in the cache; a BLAS call would first copy the
/// whole matrix into packed panels, which costs more than these products.
fn few_rows(u: &UnitRows, queries: &[u32], k: usize) -> Candidates {
    let (n, d) = (u.n(), u.d);
    let nq = queries.len();
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
                    *o = u.kern.dot(ua, 1.0, ub, 1.0);
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
