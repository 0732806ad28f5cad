//! Orthogonal Procrustes alignment of two 2-D layouts, as `scipy.spatial.procrustes`, but the aligned
//! target is returned in the reference's own frame and scale, so both can be drawn on the same axes
//! (e.g. the fine-tuned model's projection next to the foundation model's).

/// Rotate/reflect, scale and translate `target` (n * 2, row-major) onto `reference` (n * 2) by least
/// squares. Returns the aligned copy of `target`, n * 2, in the reference's coordinates.
///
/// scipy standardises both sets (centre, divide by the Frobenius norm), finds the orthogonal R and scale s
/// minimising |ref_std - s target_std R|, and reports the disparity between the two standardised sets;
/// [`disparity`] of `reference` and the returned points equals scipy's. A degenerate target (all points
/// equal) comes back as the reference's centroid.
///
/// Panics if either slice is not n * 2 long.
pub fn align(reference: &[f32], target: &[f32], n: usize) -> Vec<f32> {
    assert_eq!(reference.len(), n * 2, "procrustes::align: reference must hold n * 2 values");
    assert_eq!(target.len(), n * 2, "procrustes::align: target must hold n * 2 values");
    if n == 0 {
        return Vec::new();
    }
    let (ref_mean, ref_norm) = centre_and_norm(reference, n);
    let (tgt_mean, tgt_norm) = centre_and_norm(target, n);
    if tgt_norm == 0.0 || ref_norm == 0.0 {
        return (0..n).flat_map(|_| [ref_mean[0] as f32, ref_mean[1] as f32]).collect();
    }
    // M = ref_std^T tgt_std (2 x 2); scipy: U W V^T = svd(M), R = U V^T, aligned = tgt_std R^T * sum(W).
    let mut m = [[0.0f64; 2]; 2];
    for i in 0..n {
        let r = [
            (reference[2 * i] as f64 - ref_mean[0]) / ref_norm,
            (reference[2 * i + 1] as f64 - ref_mean[1]) / ref_norm,
        ];
        let t = [(target[2 * i] as f64 - tgt_mean[0]) / tgt_norm, (target[2 * i + 1] as f64 - tgt_mean[1]) / tgt_norm];
        for a in 0..2 {
            for b in 0..2 {
                m[a][b] += r[a] * t[b];
            }
        }
    }
    let (rot, scale) = orthogonal_factor(m);
    (0..n)
        .flat_map(|i| {
            let t =
                [(target[2 * i] as f64 - tgt_mean[0]) / tgt_norm, (target[2 * i + 1] as f64 - tgt_mean[1]) / tgt_norm];
            // (t R^T)_a = sum_b t_b R[a][b]
            let x = (t[0] * rot[0][0] + t[1] * rot[0][1]) * scale;
            let y = (t[0] * rot[1][0] + t[1] * rot[1][1]) * scale;
            [(x * ref_norm + ref_mean[0]) as f32, (y * ref_norm + ref_mean[1]) as f32]
        })
        .collect()
}

/// scipy's Procrustes disparity between `reference` and an already aligned `aligned` (both n * 2): the sum
/// of squared differences after standardising by the reference's centroid and Frobenius norm. For
/// `aligned = align(reference, target, n)` it equals `scipy.spatial.procrustes(reference, target)[2]`.
pub fn disparity(reference: &[f32], aligned: &[f32], n: usize) -> f64 {
    let (mean, norm) = centre_and_norm(reference, n);
    if norm == 0.0 {
        return 0.0;
    }
    (0..2 * n)
        .map(|i| {
            let a = (reference[i] as f64 - mean[i % 2]) / norm;
            let b = (aligned[i] as f64 - mean[i % 2]) / norm;
            (a - b) * (a - b)
        })
        .sum()
}

fn centre_and_norm(points: &[f32], n: usize) -> ([f64; 2], f64) {
    let mut mean = [0.0f64; 2];
    for p in points.chunks_exact(2) {
        mean[0] += p[0] as f64;
        mean[1] += p[1] as f64;
    }
    mean[0] /= n as f64;
    mean[1] /= n as f64;
    let ss: f64 =
        points.chunks_exact(2).map(|p| (p[0] as f64 - mean[0]).powi(2) + (p[1] as f64 - mean[1]).powi(2)).sum();
    (mean, ss.sqrt())
}

/// For a 2 x 2 matrix M = U diag(w) V^T (w >= 0), returns (U V^T, w1 + w2): the orthogonal factor of
/// its polar decomposition (reflections allowed, as scipy's `orthogonal_procrustes`) and its nuclear norm.
fn orthogonal_factor(m: [[f64; 2]; 2]) -> ([[f64; 2]; 2], f64) {
    // M = Rot(phi) diag(q + r, q - r) Rot(theta) with the closed-form 2 x 2 SVD.
    let e = (m[0][0] + m[1][1]) / 2.0;
    let f = (m[0][0] - m[1][1]) / 2.0;
    let g = (m[1][0] + m[0][1]) / 2.0;
    let h = (m[1][0] - m[0][1]) / 2.0;
    let q = e.hypot(h);
    let r = f.hypot(g);
    let (a1, a2) = (g.atan2(f), h.atan2(e));
    let theta = (a2 - a1) / 2.0;
    let phi = (a2 + a1) / 2.0;
    let sign = if q - r < 0.0 { -1.0 } else { 1.0 };
    let rot = |t: f64| [[t.cos(), -t.sin()], [t.sin(), t.cos()]];
    let (u, vt) = (rot(phi), rot(theta));
    // U diag(1, sign) V^T
    let mut out = [[0.0f64; 2]; 2];
    for (i, row) in out.iter_mut().enumerate() {
        for (j, o) in row.iter_mut().enumerate() {
            *o = u[i][0] * vt[0][j] + sign * u[i][1] * vt[1][j];
        }
    }
    (out, q + r + (q - r).abs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orthogonal_factor_reconstructs_its_svd() {
        for m in [[[1.0, 2.0], [3.0, 4.0]], [[0.0, -1.0], [2.0, 0.5]], [[-3.0, 0.0], [0.0, 2.0]]] {
            let (rot, scale) = orthogonal_factor(m);
            // R is orthogonal and R^T M is symmetric positive semi-definite with trace = nuclear norm.
            let rtm = |i: usize, j: usize| rot[0][i] * m[0][j] + rot[1][i] * m[1][j];
            assert!((rot[0][0] * rot[0][1] + rot[1][0] * rot[1][1]).abs() < 1e-12);
            assert!((rot[0][0].hypot(rot[1][0]) - 1.0).abs() < 1e-12);
            assert!((rtm(0, 1) - rtm(1, 0)).abs() < 1e-12, "{m:?}");
            assert!((rtm(0, 0) + rtm(1, 1) - scale).abs() < 1e-12, "{m:?}");
            assert!(rtm(0, 0) >= -1e-12 && rtm(1, 1) >= -1e-12);
        }
    }
}
