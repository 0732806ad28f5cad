//! The machine code of the hot loops, in the manner of arroy's `spaces/simple.rs`: each kernel is plain Rust,
//! written once, and also compiled with AVX2 and FMA enabled; `Kernels` says once per search which of the two
//! runs. The crate is built for baseline x86-64 (SSE2), so only these copies use the wider vectors.
//!
//! This module holds all of the kNN's `target_feature` and SIMD `unsafe` code, behind safe methods. Both
//! versions of a kernel give the same results bit for bit, except `Kernels::dot`, whose AVX2 version fuses
//! multiply and add (the screen's proof allows any f32 evaluation of a dot product, fused or not).

use super::rows;
use super::screen::{ColTerms, Pool, RowQuant, RowTerms, keys, quantise};
use super::topk::{self, TopK};

/// Which machine code the CPU loops of the kNN run (`KnnOptions::simd`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Simd {
    /// AVX2 and FMA where the CPU has both, else the portable loops.
    #[default]
    Auto,
    /// The portable loops even where the CPU has AVX2: the code a CPU without it runs, to test or to time.
    Portable,
}

/// The kernels one search runs: `Simd` resolved against the CPU.
#[derive(Debug, Clone, Copy)]
pub(super) struct Kernels {
    avx2: bool,
}

impl Kernels {
    pub(super) fn new(simd: Simd) -> Kernels {
        Kernels { avx2: simd == Simd::Auto && has_avx2_fma() }
    }
}

fn has_avx2_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Each kernel as a method of `Kernels` that runs `portable`, or `avx2` compiled with AVX2 and FMA where the
/// CPU has them. The bodies are `#[inline(always)]`, so that they are compiled anew inside each version.
macro_rules! kernels {
    ($(
        $(#[$doc:meta])*
        fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? {
            portable: $portable:expr,
            avx2: $avx2:expr $(,)?
        }
    )*) => {
        impl Kernels {$(
            $(#[$doc])*
            #[inline]
            pub(super) fn $name(self, $($arg: $ty),*) $(-> $ret)? {
                #[cfg(target_arch = "x86_64")]
                if self.avx2 {
                    #[target_feature(enable = "avx2,fma")]
                    fn avx2($($arg: $ty),*) $(-> $ret)? {
                        $avx2($($arg),*)
                    }
                    // SAFETY: `avx2` is set only where the CPU has AVX2 and FMA (`Kernels::new`).
                    return unsafe { avx2($($arg),*) };
                }
                $portable($($arg),*)
            }
        )*}
    };
}

kernels! {
    /// Scales a row to unit norm (`rows::normalise`).
    fn normalise(row: &mut [f32]) { portable: rows::normalise, avx2: rows::normalise }

    /// The f32 factor that scales `row` to unit norm (`rows::inv_norm`).
    fn inv_norm(row: &[f32]) -> f32 { portable: rows::inv_norm, avx2: rows::inv_norm }

    /// Rows of an f32 product into their items' top-k (`topk::rows_into_topk`).
    fn rows_into_topk(rows: &[f32], cols: usize, col0: u32, st: &mut TopK, diag: Option<usize>) {
        portable: topk::rows_into_topk,
        avx2: topk::rows_into_topk,
    }

    /// Columns of an f32 product into their items' top-k (`topk::cols_into_topk`).
    fn cols_into_topk(block: &[f32], rows: usize, cols: usize, c0: usize, row0: u32, st: &mut TopK) {
        portable: topk::cols_into_topk,
        avx2: topk::cols_into_topk,
    }

    /// One centred unit row to int8 and its terms of the bound (`quantise::quantise_row`).
    fn quantise_row(ur: &[f32], mu: &[f64], qr: &mut [i8], w: &mut [f64]) -> RowQuant {
        portable: quantise::quantise_row,
        avx2: quantise::quantise_row,
    }

    /// One row of a diagonal int8 block into its item's pool (`keys::row_into_pool`).
    fn row_into_pool(
        row: &[i32],
        j0: usize,
        a: RowTerms,
        cols: ColTerms,
        pool: (&mut Pool, usize),
        diag: Option<usize>,
    ) {
        portable: keys::row_into_pool,
        avx2: keys::row_into_pool,
    }

    /// One row segment of an off-diagonal int8 block into the pools of both its items (`keys::row_into_both`).
    fn row_into_both(
        seg: &[i32],
        a: RowTerms,
        ids: (u32, u32),
        cols: ColTerms,
        rows: (&mut Pool, usize),
        colp: &mut Pool,
    ) {
        portable: keys::row_into_both,
        avx2: keys::row_into_both,
    }

    /// `(a ia) . (b ib)` in f32, each element scaled before the product (a factor of 1 leaves it as it is).
    fn dot(a: &[f32], ia: f32, b: &[f32], ib: f32) -> f32 { portable: dot_body::<false>, avx2: dot_body::<true> }

    /// Dot product of int8 values held in i16, in i32 (exact: `d` 127^2 < 2^31 where the screen applies).
    fn dot_i16(a: &[i16], b: &[i16]) -> i32 { portable: dot_i16_body, avx2: dot_i16_avx2 }
}

/// f32 dot product with 16 running sums, which the compiler vectorises. Any order of summation, with or
/// without fused multiply-adds, obeys the gamma_d bound the screen's proof uses.
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

/// Asks the CPU to bring `v` into the cache (SSE, part of baseline x86-64).
#[inline(always)]
pub(super) fn prefetch(v: &[i32]) {
    #[cfg(target_arch = "x86_64")]
    for line in v.chunks(16) {
        // SAFETY: a prefetch is only a hint; it never faults, and the address is inside `v`.
        unsafe { std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(line.as_ptr().cast()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = v;
}
