//! The centred unit rows quantised to int8, and each row's terms of the screen's bound (in the notation of
//! the proof in `screen`).

use rayon::prelude::*;

use crate::analysis::knn::rows::UnitRows;

/// The centred unit rows quantised to int8, and the per-row terms of the bound.
pub(super) struct Quantised {
    pub(super) q: Vec<i8>,
    pub(super) g: Vec<f32>,
    pub(super) e: Vec<f32>,
    pub(super) r: Vec<f32>,
    /// `p` rounded to f32 for the keys; `p64` for the bound.
    pub(super) p: Vec<f32>,
    pub(super) p64: Vec<f64>,
    pub(super) mu_sq: f64,
    pub(super) mu_norm: f64,
    pub(super) e_max: f64,
    pub(super) r_max: f64,
}

/// One item's terms of the keys.
#[derive(Clone, Copy)]
pub(in crate::analysis::knn) struct RowTerms {
    pub(super) g: f32,
    pub(super) p: f32,
    pub(super) e: f32,
    pub(super) r: f32,
}

/// A range of items' terms of the keys.
#[derive(Clone, Copy)]
pub(in crate::analysis::knn) struct ColTerms<'a> {
    pub(super) g: &'a [f32],
    pub(super) p: &'a [f32],
    pub(super) e: &'a [f32],
    pub(super) r: &'a [f32],
}

impl Quantised {
    pub(super) fn row(&self, a: usize) -> RowTerms {
        RowTerms { g: self.g[a], p: self.p[a], e: self.e[a], r: self.r[a] }
    }

    pub(super) fn cols(&self, start: usize, count: usize) -> ColTerms<'_> {
        let end = start + count;
        ColTerms { g: &self.g[start..end], p: &self.p[start..end], e: &self.e[start..end], r: &self.r[start..end] }
    }
}

/// The smallest f32 at or above `v` (v >= 0), inflated for the f64 evaluation errors (relative below
/// d 2^-52 < 1e-9, absolute below 1e-12 from the f64 rounding of u - mu).
pub(super) fn upper_f32(v: f64) -> f32 {
    let v = v * (1.0 + 1e-9) + 1e-12;
    let f = v as f32;
    if f64::from(f) < v { f.next_up() } else { f }
}

/// The unit rows centred on their mean `mu` and quantised.
pub(super) fn quantise(u: &UnitRows, n: usize, d: usize) -> Quantised {
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
                u.kern.quantise_row(ur, &mu, qr, w)
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
pub(in crate::analysis::knn) struct RowQuant {
    g: f32,
    e: f32,
    r: f32,
    p: f64,
}

/// The unit row `ur` less `mu` (into the scratch `w`), quantised into `qr`, and its terms of the bound.
#[inline(always)]
pub(in crate::analysis::knn) fn quantise_row(ur: &[f32], mu: &[f64], qr: &mut [i8], w: &mut [f64]) -> RowQuant {
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
