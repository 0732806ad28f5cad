//! cleanlab's `OutOfDistribution().fit_score(features=X)`, from exact neighbour distances.
//!
//! `avg_i` = mean distance to the k nearest neighbours (k = min(10, N-1) in cleanlab);
//! `scale = max(median(avg), 100 * eps_f64)`; `score_i = exp(-avg_i / max(scale, 1e-6))`;
//! with cosine distances, items with `avg_i < 100 * epsneg_f64` (exact duplicate clusters) score 1.
//! Computed in f64: the scores are compared with cleanlab's to 1e-5.

use super::knn::{Knn, Metric};

/// cleanlab's neighbour count for the outlier score.
pub const CLEANLAB_K: usize = 10;

#[derive(Debug, Clone, PartialEq)]
pub struct OutlierScores {
    pub scores: Vec<f64>,
    pub mean_distance: Vec<f64>,
    pub scale: f64,
}

/// Scores from the first `k` neighbours of each item (`knn` sorted nearest first, `k <= knn.k`).
pub fn outlier_scores(knn: &Knn, k: usize, metric: Metric) -> OutlierScores {
    let k = k.min(knn.k).max(1);
    let mean_distance: Vec<f64> =
        (0..knn.n).map(|i| knn.row_dists(i)[..k].iter().map(|&d| f64::from(d)).sum::<f64>() / k as f64).collect();
    let scale = median(&mean_distance).max(100.0 * f64::EPSILON);
    let tolerance = match metric {
        // numpy's finfo(float64).epsneg = 2^-53.
        Metric::Cosine => 100.0 * f64::EPSILON / 2.0,
        Metric::Euclidean => (100.0 * f64::EPSILON).sqrt(),
    };
    let scores =
        mean_distance.iter().map(|&avg| if avg < tolerance { 1.0 } else { (-avg / scale.max(1e-6)).exp() }).collect();
    OutlierScores { scores, mean_distance, scale }
}

/// numpy's median: the mean of the two middle values for an even count.
pub fn median(values: &[f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut v = values.to_vec();
    let mid = v.len() / 2;
    let (lower, &mut m, _) = v.select_nth_unstable_by(mid, f64::total_cmp);
    if values.len() % 2 == 1 {
        m
    } else {
        let below = lower.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        (below + m) / 2.0
    }
}

/// Ids of the `n` lowest scores (most anomalous first; ties by id).
pub fn most_anomalous(scores: &[f64], n: usize) -> Vec<u32> {
    let mut order: Vec<u32> = (0..scores.len() as u32).collect();
    order.sort_by(|&a, &b| scores[a as usize].total_cmp(&scores[b as usize]).then(a.cmp(&b)));
    order.truncate(n);
    order
}
