//! The unit rows `x_a / |x_a|` of cosine similarity: stored for libtorch (`normalised_rows`), or computed where
//! they are used (`UnitRows`), with the same f32 values either way.

use rayon::prelude::*;

use super::simd::Kernels;

pub(super) fn normalised_rows(x: &[f32], d: usize, kern: Kernels) -> Vec<f32> {
    // Zeroed pages come lazily from the OS: the parallel copy below also spreads the page faults.
    let mut out = vec![0f32; x.len()];
    out.par_chunks_mut(d).zip(x.par_chunks(d)).for_each(|(row, src)| {
        row.copy_from_slice(src);
        kern.normalise(row)
    });
    out
}

/// Scales a row to unit norm (the norm summed in f64; a zero row stays zero).
#[inline(always)]
pub(super) fn normalise(row: &mut [f32]) {
    let inv = inv_norm(row);
    row.iter_mut().for_each(|v| *v *= inv);
}

/// The f32 factor that scales `row` to unit length (1 for a zero row, which stays zero).
#[inline(always)]
pub(super) fn inv_norm(row: &[f32]) -> f32 {
    let norm = sum8(row.len(), |i| f64::from(row[i]) * f64::from(row[i])).sqrt();
    if norm > 0.0 { (1.0 / norm) as f32 } else { 1.0 }
}

/// Sum of `f(i)` over `0..len` in 8 running sums, so that it vectorises.
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

/// The unit rows `u_a = x_a / |x_a|` of the screen, kept as `x` and one factor per row: an element is
/// computed where it is used, as `x_a[i] inv_a` in f32, the very value `normalise` stores, so every product
/// and quantisation of these rows equals that of stored ones. Not storing them saves an n x d matrix (3 GB at
/// 1M x 768) and its page faults; the products that read them are bound by memory traffic, which is the same.
pub(super) struct UnitRows<'a> {
    x: &'a [f32],
    inv: Vec<f32>,
    pub(super) d: usize,
    pub(super) kern: Kernels,
}

impl<'a> UnitRows<'a> {
    pub(super) fn new(x: &'a [f32], d: usize, kern: Kernels) -> UnitRows<'a> {
        let inv = x.par_chunks(d).map(|row| kern.inv_norm(row)).collect();
        UnitRows { x, inv, d, kern }
    }

    pub(super) fn n(&self) -> usize {
        self.inv.len()
    }

    fn raw(&self, a: usize) -> &[f32] {
        &self.x[a * self.d..(a + 1) * self.d]
    }

    /// Row `a` into `out`.
    pub(super) fn row_into(&self, a: usize, out: &mut [f32]) {
        let inv = self.inv[a];
        out.iter_mut().zip(self.raw(a)).for_each(|(o, &v)| *o = v * inv);
    }

    /// `u_a . u_b`, as `Kernels::dot` of the stored rows gives it.
    #[inline(always)]
    pub(super) fn dot(&self, a: usize, b: usize) -> f32 {
        self.kern.dot(self.raw(a), self.inv[a], self.raw(b), self.inv[b])
    }
}
