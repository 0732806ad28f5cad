//! The int8 screen (CPU, cosine): the symmetric blocked scan over an int8 product of the centred unit rows
//! keeps `k` + a few dozen candidates per item (`keys`, `pool`); an f32 re-rank of the candidates (`rerank`)
//! with a proof per item that the exact neighbours are among them gives the f32 path's neighbours; items
//! without a proof are searched exactly (`unproven`). Under `Screen::Auto` a pilot on a few items first
//! predicts whether the screen pays (`pilot`).
//!
//! # The proof
//!
//! Notation: u_a are the f32 unit rows (exact real numbers from here on), T_ab = u_a . u_b their exact
//! similarity, F_ab the same in f32 arithmetic. Any f32 dot product, in any summation order (the f32 GEMM of
//! `symmetric_cpu`, sklearn's, `Kernels::dot`), satisfies |F_ab - T_ab| <= gamma_d |u_a| |u_b| with
//! gamma_d = d u / (1 - d u), u = 2^-24 (Higham, Accuracy and Stability, 3.1); |u_a| <= 1 + 1e-6.
//!
//! Centring: for any vector mu, with w_a = u_a - mu and p_a = mu . u_a,
//!
//! ```text
//!     T_ab = w_a . w_b + p_a + p_b - mu . mu.
//! ```
//!
//! mu is the mean row, which takes out the large common component that image features (and most embeddings)
//! share, so the quantised part w is smaller and so is its error.
//!
//! Quantisation: q_a = round(w_a / g_a) in [-127, 127] with an f32 step g_a = max|w_a| / 127 per row;
//! w^_a = q_a g_a, residual delta_a = w_a - w^_a, e_a >= |delta_a|, r_a >= max(|w_a|, |w^_a|). Then
//!
//! ```text
//!     w_a . w_b - w^_a . w^_b = delta_a . w_b + w^_a . delta_b,  so  |w_a . w_b - w^_a . w^_b| <= e_a r_b + r_a e_b
//! ```
//!
//! (Cauchy-Schwarz), and w^_a . w^_b = I_ab g_a g_b with I_ab = q_a . q_b, which int32 accumulates exactly
//! while d 127^2 < 2^31.
//!
//! Key of b for item a: K_ab = I_ab g_a g_b + p_b + r_a e_b + e_a r_b. Then for every b
//!
//! ```text
//!     T_ab <= K_ab + p_a - mu . mu.                                                                    (1)
//! ```
//!
//! The scan evaluates K in f32 (K~, the same formula with the roles swapped when a is a column of a block),
//! |K~ - K| <= key_slack (a few roundings of terms bounded by r_max^2, |mu| and 2 r_max e_max).
//! The scan keeps per item a a pool of its largest K~, at most c of them once it ends; every other item has
//! K~_ab <= tau_a, the final threshold (-inf when no item was ever dropped). So every non-candidate b has,
//! by (1),
//!
//! ```text
//!     T_ab <= UB_a := tau_a + key_slack + p_a - mu . mu  (+ 1e-9 for the f64 evaluation).
//! ```
//!
//! The re-rank computes F'_ab (f32) for the candidates; let L_a be the k-th largest. If
//!
//! ```text
//!     UB_a + 3 gamma_d < L_a,
//! ```
//!
//! every non-candidate b has T_ab <= UB_a and F_ab <= UB_a + gamma_d < L_a - 2 gamma_d, while each of the k
//! best candidates has T >= L_a - gamma_d and F >= L_a - 2 gamma_d: in exact arithmetic and in any f32
//! evaluation, no non-candidate ranks above those k candidates. The top k of the candidates by F' (ties by
//! id) are then the f32 path's neighbours, up to pairs whose similarities are within 2 gamma_d (ties at f32
//! resolution, where the f32 path's own choice depends on its blocking). The same test applied to a
//! candidate's own key (K~_ab instead of tau_a) lets the re-rank skip it, and all after it in key order.
//! Items without the proof are searched exactly: their rows of f32 products against all items, as the
//! device path does.

pub(super) mod keys;
mod pilot;
mod pool;
pub(super) mod quantise;
mod rerank;
mod unproven;

use rayon::prelude::*;

pub(super) use pool::Pool;
pub(super) use quantise::{ColTerms, RowQuant, RowTerms};

use super::rows::UnitRows;
use super::simd::Kernels;
use super::topk::symmetric_cpu;
use super::{Candidates, KnnOptions, Screen, ScreenStats};
use crate::analysis::{AnalysisError, Hooks};
use quantise::{Quantised, upper_f32};

/// Candidates kept per item beyond `k` by the int8 screen. Fewer leave more items without a proof, and each
/// costs a row of `n` f32 products; more cost little (the scan's pushes grow slowly, the re-rank stops early).
/// More items crowd the k-th neighbour, so larger `n` needs more.
fn screen_extra(n: usize) -> usize {
    (32 + n / 2000).min(128)
}

/// Unit roundoff of f32.
const F32_U: f64 = 1.0 / (1u64 << 24) as f64;

/// Where the screen's bound holds: int32 sums of `d` products of int8 values within +-127 are exact, and the
/// values are finite (NaN or inf have no meaningful quantisation; the f32 path treats them as it always did).
pub(super) fn screen_applies(x: &[f32], d: usize) -> bool {
    d <= i32::MAX as usize / (127 * 127) && x.par_iter().all(|v| v.is_finite())
}

/// Symmetric blocked scan over the int8 product, exact re-rank with the proof (module doc), exact search of the
/// items without one.
pub(super) fn screened_cpu(
    x: &[f32],
    n: usize,
    d: usize,
    k: usize,
    opts: &KnnOptions,
    hooks: &Hooks,
) -> Result<(Candidates, ScreenStats), AnalysisError> {
    let kern = Kernels::new(opts.simd);
    let u = UnitRows::new(x, d, kern);
    let qz = quantise::quantise(&u, n, d);
    let c = (k + screen_extra(n)).min(n - 1);
    let gamma = 1.000_01 * d as f64 * F32_U / (1.0 - d as f64 * F32_U);
    let key_slack = 8.0 * F32_U * (qz.r_max * qz.r_max + 1.001 * qz.mu_norm + 2.0 * qz.r_max * qz.e_max);
    let proof = KeyBounds { qz: &qz, gamma, key_slack };
    if opts.screen == Screen::Auto && n >= pilot::PILOT_MIN_ITEMS {
        let share = pilot::pilot_unproven_share(&u, &qz, d, k, c, &proof);
        if share > pilot::screen_max_share(d) {
            drop((u, qz));
            let cand = symmetric_cpu(x, n, d, k, opts.block, kern, hooks)?;
            return Ok((cand, ScreenStats { candidates: c, rescanned: 0, declined: true }));
        }
    }
    let mut pools = pool::Pools::new(n, k, c, screen_window(&qz, &proof));
    keys::screen_blocks(&qz, n, d, opts.block, pools.all(), kern, hooks)?;
    pools.finish();
    let rerank::Reranked { mut ids, mut sims, proven } = rerank::rerank(&u, &pools, n, k, &proof);
    drop(pools);
    let unproven: Vec<u32> = (0..n as u32).filter(|&a| !proven[a as usize]).collect();
    (hooks.progress)("neighbours: items searched exactly (screen without proof)", unproven.len(), n);
    if unproven.len() * 5 > n * 2 {
        // Most items without a proof (neighbours closer together than int8 resolves, e.g. noise-dominated
        // clusters): one symmetric f32 scan of all items costs less than their full rows one by one.
        drop((u, qz, ids, sims));
        let cand = symmetric_cpu(x, n, d, k, opts.block, kern, hooks)?;
        return Ok((cand, ScreenStats { candidates: c, rescanned: n, declined: false }));
    }
    if !unproven.is_empty() {
        let found = unproven::search_unproven(x, &u, &unproven, k, opts, hooks)?;
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

/// Frees large buffers on another thread: handing them back to the OS takes time the caller need not wait for.
fn free_later<T: Send + 'static>(buffers: T) {
    // Where no thread can be started, the closure (and the buffers with it) is dropped right here.
    let _ = std::thread::Builder::new().name("free".into()).spawn(move || drop(buffers));
}

/// Per item, how far below its k-th largest key the pool's threshold sits. The k best keys' items have
/// `T_ab >= K_ab - 2 (r_a e_b + e_a r_b) + p_a - mu . mu` (a key less its error term twice), so with the
/// error terms at their means the k-th similarity is about the k-th key less `2 (r_a e_mean + e_a r_mean)`,
/// and a key further below than that (plus the roundings) fails the proof's test against it. The bound's
/// worst case (e_max, r_max) would keep more keys without proving more items; only the pool's efficiency
/// depends on this window, as the proof is checked on the computed similarities.
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

/// The bounds of the proof (module doc) for the re-rank and the pilot.
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
