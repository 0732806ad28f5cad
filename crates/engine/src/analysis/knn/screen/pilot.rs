//! The pilot of `Screen::Auto`: the screen's test on a few items predicts whether it pays on this data.

use rayon::prelude::*;

use super::KeyBounds;
use super::quantise::Quantised;
use crate::analysis::knn::rows::UnitRows;

/// Items the pilot looks at, evenly spaced, and the fewest items for which it runs (below, the whole search
/// is too short for the choice to matter).
const PILOT_ITEMS: usize = 16;
pub(super) const PILOT_MIN_ITEMS: usize = 1000;

/// The largest share of items without a proof for which the screen still beats plain f32 products. Each such
/// item costs an exact row (n f32 products and a top-k), while the screen's saving grows with `d` (int8
/// products cost a fraction of f32 ones; the scan of the keys costs the same at any `d`).
pub(super) fn screen_max_share(d: usize) -> f64 {
    (0.02 + d as f64 / 4000.0).min(0.4)
}

/// The share of `PILOT_ITEMS` evenly spaced items that the screen would leave without a proof, by the re-rank's
/// own test: each item's keys against all items (the row direction of the scan), the c-th largest as the
/// threshold, the exact f32 similarities of the c best, and the threshold's bound against their k-th.
pub(super) fn pilot_unproven_share(
    u: &UnitRows,
    qz: &Quantised,
    d: usize,
    k: usize,
    c: usize,
    proof: &KeyBounds,
) -> f64 {
    let n = u.n();
    let sample: Vec<usize> = (0..PILOT_ITEMS).map(|i| i * n / PILOT_ITEMS).collect();
    // Products in Rust rather than libtorch's `_int_mm`: a new shape there costs a kernel generation, more
    // than these few rows of products. The sample's int8 rows are widened to i16 once (vector
    // multiply-adds take i16).
    let rows: Vec<i16> = sample.iter().flat_map(|&a| qz.q[a * d..(a + 1) * d].iter().map(|&v| i16::from(v))).collect();
    // Items outermost, so that the int8 rows stream past once while the sample's rows stay in the cache.
    let mut ints = vec![0i32; n * PILOT_ITEMS];
    ints.par_chunks_mut(PILOT_ITEMS * 64).enumerate().for_each_init(
        || vec![0i16; d],
        |wide, (chunk, out)| {
            for (r, out) in out.chunks_mut(PILOT_ITEMS).enumerate() {
                let b = chunk * 64 + r;
                wide.iter_mut().zip(&qz.q[b * d..(b + 1) * d]).for_each(|(w, &v)| *w = i16::from(v));
                for (o, qa) in out.iter_mut().zip(rows.chunks_exact(d)) {
                    *o = u.kern.dot_i16(qa, wide);
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
            let mut sims: Vec<f32> = keys[..c].iter().map(|&(_, b)| u.dot(a, b as usize)).collect();
            let kth = *sims.select_nth_unstable_by(k - 1, |x, y| y.total_cmp(x)).1;
            f64::from(tau) + proof.margin(a) >= f64::from(kth)
        })
        .count();
    unproven as f64 / PILOT_ITEMS as f64
}
