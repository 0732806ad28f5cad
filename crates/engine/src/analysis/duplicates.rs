//! Near duplicates as cleanlab Datalab's `NearDuplicateIssueManager` defines them (cleanlab 2.9,
//! `datalab/internal/issue_manager/duplicate.py`), and the article's absolute nearest-neighbour flag.
//!
//! A fixed cosine threshold means different things in different spaces: where a fine-tuned model collapses
//! each class towards a point, most items have a neighbour within it and "near duplicate" turns into "same
//! class". cleanlab measures against the space instead:
//! - Exact duplicates first get cleanlab's kNN correction (`correct_knn_distances_and_indices`): the other
//!   members of an item's set come first at distance 0, sorted by id; a set larger than `k + 1` gives its
//!   first `k + 1` members each other and every later member the first `k`.
//! - `median` = the median nearest-neighbour distance, at least 1e-6 (cleanlab's `EPSILON`).
//!   The distances are those of the kNN lists recomputed in f64 (`exact_distances`): a near copy's distance
//!   is a few ulps of 1.0 in f32, an error that the division by the median magnifies in the score.
//! - Item `i`'s set holds the neighbours in its `k` list closer than `threshold * median`, then, in id
//!   order, every item whose own list put `i` in its set: the relation is made symmetric.
//! - An item is a near duplicate when its set is not empty.
//! - Score `1 - exp(-d_nn / median)`, 0 where `d_nn` is within 1e-8 of 0: low = more likely a duplicate.
//!
//! Exact duplicates are the items with equal content hashes (`Item.hash`) or equal feature vectors (what
//! cleanlab's `np.unique` finds); they are near duplicates of each other at any threshold.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};

use rayon::prelude::*;

use super::knn::{Knn, Metric};

/// cleanlab's default `threshold`, a fraction of the median nearest-neighbour distance.
pub const CLEANLAB_THRESHOLD: f32 = 0.13;

/// The article's cut: Annoy angular distance 0.3 to the nearest neighbour, which is cosine `0.3^2 / 2`.
pub const ARTICLE_NN_THRESHOLD: f32 = 0.045;

/// cleanlab's `EPSILON`: a space where most items have an exact copy has a median of 0, and the radius
/// must stay positive.
const MEDIAN_FLOOR: f64 = 1e-6;

/// `np.isclose(d, 0)`: distances this close to 0 score 0, as an exact copy does.
const ZERO_DISTANCE: f64 = 1e-8;

#[derive(Debug, Clone, PartialEq)]
pub struct NearDuplicates {
    /// 1 when the item's near-duplicate set is not empty (cleanlab's `is_near_duplicate_issue`).
    pub flags: Vec<u32>,
    /// cleanlab's `near_duplicate_score`.
    pub scores: Vec<f32>,
    /// cleanlab's `near_duplicate_sets`, in its order.
    pub sets: Vec<Vec<u32>>,
    /// Smallest member id of the item's group (the connected component of the sets), u32::MAX for none.
    pub groups: Vec<u32>,
    /// Median nearest-neighbour distance after the correction, floored at 1e-6.
    pub median: f32,
    /// `threshold * median`: neighbours closer than this are near duplicates.
    pub radius: f32,
    pub flagged: usize,
    pub group_count: usize,
    /// Items with an exact duplicate.
    pub exact: usize,
}

fn find(parent: &mut [u32], mut i: u32) -> u32 {
    while parent[i as usize] != i {
        parent[i as usize] = parent[parent[i as usize] as usize];
        i = parent[i as usize];
    }
    i
}

/// Union towards the smaller root, so that every root is its component's smallest member.
fn union(parent: &mut [u32], a: u32, b: u32) {
    let (a, b) = (find(parent, a), find(parent, b));
    if a != b {
        parent[a.max(b) as usize] = a.min(b);
    }
}

/// The bits of a row, with -0.0 as 0.0: `np.unique` compares values, and the two are equal.
fn row_bits(row: &[f32]) -> impl Iterator<Item = u32> + '_ {
    row.iter().map(|&v| (v + 0.0).to_bits())
}

/// Sets of exact duplicates among the `n` rows of the `[n, d]` matrix `x`: items sharing a content hash
/// (`hashes[i]`, where present) or a feature vector, transitively. Each set is sorted and has at least
/// two members; the sets are ordered by their smallest member.
pub fn exact_duplicate_sets(x: &[f32], d: usize, hashes: &[u64]) -> Vec<Vec<u32>> {
    let n = x.len() / d.max(1);
    let mut parent: Vec<u32> = (0..n as u32).collect();
    let mut first_with_hash: HashMap<u64, u32> = HashMap::new();
    for (i, &h) in hashes.iter().enumerate().take(n) {
        let first = *first_with_hash.entry(h).or_insert(i as u32);
        union(&mut parent, first, i as u32);
    }
    if d > 0 {
        let fingerprints: Vec<u64> = x
            .par_chunks(d)
            .map(|row| {
                let mut h = std::collections::hash_map::DefaultHasher::new();
                row_bits(row).for_each(|b| b.hash(&mut h));
                h.finish()
            })
            .collect();
        let mut order: Vec<u32> = (0..n as u32).collect();
        order.sort_unstable_by_key(|&i| (fingerprints[i as usize], i));
        let row = |i: u32| &x[i as usize * d..(i as usize + 1) * d];
        for run in order.chunk_by(|&a, &b| fingerprints[a as usize] == fingerprints[b as usize]) {
            // Within one fingerprint, rows are compared in full: a fingerprint collision is not a duplicate.
            let mut distinct: Vec<u32> = Vec::new();
            for &i in run {
                match distinct.iter().find(|&&j| row_bits(row(j)).eq(row_bits(row(i)))) {
                    Some(&j) => union(&mut parent, j, i),
                    None => distinct.push(i),
                }
            }
        }
    }
    let roots: Vec<u32> = (0..n as u32).map(|i| find(&mut parent, i)).collect();
    let mut size = vec![0u32; n];
    for &r in &roots {
        size[r as usize] += 1;
    }
    // A root is its set's smallest member, so sets appear in the order of their smallest members.
    let mut slot: HashMap<u32, usize> = HashMap::new();
    let mut sets: Vec<Vec<u32>> = Vec::new();
    for (i, &r) in roots.iter().enumerate().filter(|&(_, &r)| size[r as usize] > 1) {
        let at = *slot.entry(r).or_insert_with(|| {
            sets.push(Vec::new());
            sets.len() - 1
        });
        sets[at].push(i as u32);
    }
    sets
}

/// The distances of the neighbours in `knn`, row-major like `knn.dists`, in f64 from the `[n, d]` matrix `x`:
/// cosine `1 - cos` (1 from a zero vector, as sklearn has it), or euclidean as the lists already hold it.
pub fn exact_distances(knn: &Knn, x: &[f32], d: usize, metric: Metric) -> Vec<f64> {
    if metric == Metric::Euclidean {
        return knn.dists.iter().map(|&v| f64::from(v)).collect();
    }
    let row = |i: usize| &x[i * d..(i + 1) * d];
    let norms: Vec<f64> =
        (0..knn.n).into_par_iter().map(|i| row(i).iter().map(|&v| f64::from(v).powi(2)).sum::<f64>().sqrt()).collect();
    let mut out = vec![f64::INFINITY; knn.n * knn.k];
    out.par_chunks_mut(knn.k.max(1)).enumerate().for_each(|(i, dists)| {
        for (slot, &j) in dists.iter_mut().zip(knn.row_ids(i)) {
            if j == u32::MAX {
                continue;
            }
            let (ni, nj) = (norms[i], norms[j as usize]);
            *slot = if ni == 0.0 || nj == 0.0 {
                1.0
            } else {
                let dot: f64 = row(i).iter().zip(row(j as usize)).map(|(&a, &b)| f64::from(a) * f64::from(b)).sum();
                (1.0 - dot / (ni * nj)).clamp(0.0, 2.0)
            };
        }
    });
    out
}

/// cleanlab's correction of the kNN lists for exact duplicates (`knn.k` neighbours per item).
fn correct(knn: &Knn, dists: &[f64], exact: &[Vec<u32>], set_of: &[u32]) -> (Vec<u32>, Vec<f64>) {
    let k = knn.k;
    let (mut ids, mut out) = (knn.ids.clone(), dists.to_vec());
    for (g, set) in exact.iter().enumerate() {
        let m = set.len();
        let base = &set[..m.min(k + 1)];
        for (p, &i) in set.iter().enumerate() {
            let i = i as usize;
            let mut row: Vec<(u32, f64)> = if p < base.len() {
                base.iter().filter(|&&j| j as usize != i).map(|&j| (j, 0.0)).collect()
            } else {
                set[..k].iter().map(|&j| (j, 0.0)).collect()
            };
            if m <= k {
                // The rest of the list: the item's other neighbours, in their order.
                let others = knn.row_ids(i).iter().zip(&dists[i * k..(i + 1) * k]).map(|(&j, &d)| (j, d));
                row.extend(others.filter(|&(j, _)| set_of.get(j as usize) != Some(&(g as u32))));
            }
            for (c, (j, d)) in row.into_iter().take(k).enumerate() {
                ids[i * k + c] = j;
                out[i * k + c] = d;
            }
        }
    }
    (ids, out)
}

/// Median of `v` as `np.median` computes it: the middle value, or the mean of the two middle ones.
fn median(v: &[f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_unstable_by(f64::total_cmp);
    let h = s.len() / 2;
    if s.len() % 2 == 1 { s[h] } else { (s[h - 1] + s[h]) / 2.0 }
}

/// The article's flag: 1 where the nearest neighbour in `knn` (cosine) is closer than `threshold`.
pub fn nn_flags(knn: &Knn, threshold: f32) -> Vec<u32> {
    (0..knn.n).map(|i| u32::from(knn.row_dists(i).first().is_some_and(|&d| d < threshold))).collect()
}

/// Near duplicates from the kNN lists cleanlab would build (`knn`: cosine above 3 dimensions) with their
/// distances (`exact_distances`), the exact duplicate sets (`exact_duplicate_sets`) and cleanlab's relative
/// `threshold`.
pub fn near_duplicates(knn: &Knn, dists: &[f64], exact: &[Vec<u32>], threshold: f32) -> NearDuplicates {
    let (n, k) = (knn.n, knn.k);
    let mut set_of = vec![u32::MAX; n];
    for (g, set) in exact.iter().enumerate() {
        for &i in set {
            set_of[i as usize] = g as u32;
        }
    }
    let (ids, dists) = correct(knn, dists, exact, &set_of);
    let nn_d: Vec<f64> = (0..n).map(|i| if k == 0 { f64::INFINITY } else { dists[i * k] }).collect();
    let median = median(&nn_d).max(MEDIAN_FLOOR);
    let radius = f64::from(threshold) * median;

    let exact_pair = |i: usize, j: u32| set_of[i] != u32::MAX && set_of.get(j as usize) == Some(&set_of[i]);
    let mut sets: Vec<Vec<u32>> = (0..n)
        .map(|i| {
            let row = ids[i * k..(i + 1) * k].iter().zip(&dists[i * k..(i + 1) * k]);
            row.filter(|&(&j, &d)| j != u32::MAX && (d < radius || exact_pair(i, j))).map(|(&j, _)| j).collect()
        })
        .collect();
    // cleanlab's second pass makes the relation reciprocal: j joins i's set when i is in j's, after i's own.
    let mut extra: Vec<Vec<u32>> = vec![Vec::new(); n];
    for i in 0..n {
        for &j in &sets[i] {
            if !sets[j as usize].contains(&(i as u32)) {
                extra[j as usize].push(i as u32);
            }
        }
    }
    for (set, more) in sets.iter_mut().zip(extra) {
        set.extend(more);
    }

    let mut parent: Vec<u32> = (0..n as u32).collect();
    for (i, set) in sets.iter().enumerate() {
        for &j in set {
            union(&mut parent, i as u32, j);
        }
    }
    let flags: Vec<u32> = sets.iter().map(|s| u32::from(!s.is_empty())).collect();
    let groups: Vec<u32> = (0..n).map(|i| if flags[i] == 1 { find(&mut parent, i as u32) } else { u32::MAX }).collect();
    let scores: Vec<f32> =
        nn_d.iter().map(|&d| if d.abs() <= ZERO_DISTANCE { 0.0 } else { (1.0 - (-d / median).exp()) as f32 }).collect();
    NearDuplicates {
        flagged: flags.iter().filter(|&&f| f == 1).count(),
        group_count: (0..n).filter(|&i| groups[i] == i as u32).count(),
        exact: exact.iter().map(Vec::len).sum(),
        flags,
        scores,
        sets,
        groups,
        median: median as f32,
        radius: radius as f32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f64s(knn: &Knn) -> Vec<f64> {
        knn.dists.iter().map(|&d| f64::from(d)).collect()
    }

    fn knn(rows: &[&[(u32, f32)]]) -> Knn {
        let k = rows[0].len();
        Knn {
            n: rows.len(),
            k,
            ids: rows.iter().flat_map(|r| r.iter().map(|p| p.0)).collect(),
            dists: rows.iter().flat_map(|r| r.iter().map(|p| p.1)).collect(),
        }
    }

    #[test]
    fn exact_sets_join_hashes_and_equal_rows() {
        let x = [1.0, 2.0, 3.0, 4.0, 1.0, 2.0, -0.0, 1.0, 0.0, 1.0, 5.0, 5.0];
        // Rows 0 and 2 are equal, 3 and 4 too (-0.0 == 0.0), and 4 shares a hash with 5.
        assert_eq!(exact_duplicate_sets(&x, 2, &[10, 11, 12, 13, 14, 14]), vec![vec![0, 2], vec![3, 4, 5]]);
        assert_eq!(exact_duplicate_sets(&x, 2, &[]), vec![vec![0, 2], vec![3, 4]]);
    }

    #[test]
    fn a_set_larger_than_k_plus_one_is_corrected_as_cleanlab_does() {
        // Items 0..4 are copies; k = 2; item 4's list lacks its copies.
        let rows: Vec<Vec<(u32, f32)>> = (0..6u32)
            .map(|i| match i {
                4 => vec![(5, 0.5), (3, 0.0)],
                5 => vec![(4, 0.5), (0, 0.6)],
                _ => vec![((i + 1) % 4, 0.0), ((i + 2) % 4, 0.0)],
            })
            .collect();
        let refs: Vec<&[(u32, f32)]> = rows.iter().map(Vec::as_slice).collect();
        let exact = vec![vec![0, 1, 2, 3, 4]];
        let set_of = [0, 0, 0, 0, 0, u32::MAX];
        let k = knn(&refs);
        let (ids, d) = correct(&k, &f64s(&k), &exact, &set_of);
        // The first k + 1 share their circulant; the later ones get the first k.
        assert_eq!(ids, [1, 2, 0, 2, 0, 1, 0, 1, 0, 1, 4, 0]);
        assert_eq!(&d[..10], &[0.0; 10]);
        assert_eq!(d[10..], [0.5, 0.6000000238418579]);
    }

    #[test]
    fn sets_are_reciprocal_and_scores_relative_to_the_median() {
        // nn distances 0.001, 0.001, 0.1, 0.2, 0.3: median 0.1, radius 0.013.
        let k = knn(&[
            &[(1, 0.001), (2, 0.2)],
            &[(0, 0.001), (3, 0.2)],
            &[(0, 0.1), (3, 0.2)],
            &[(2, 0.2), (0, 0.3)],
            &[(3, 0.3), (0, 0.4)],
        ]);
        let nd = near_duplicates(&k, &f64s(&k), &[], 0.13);
        assert_eq!(nd.median, 0.1);
        assert_eq!(nd.flags, [1, 1, 0, 0, 0]);
        assert_eq!(nd.sets, vec![vec![1], vec![0], vec![], vec![], vec![]]);
        assert_eq!(nd.groups, [0, 0, u32::MAX, u32::MAX, u32::MAX]);
        assert_eq!(nn_flags(&k, 0.15), [1, 1, 1, 0, 0]);
        assert!((nd.scores[2] - (1.0 - (-1.0f32).exp())).abs() < 1e-6);
        // A one-sided pair: only 2's list holds 3 under a wider radius, 3 gets 2 by reciprocity.
        let nd = near_duplicates(&k, &f64s(&k), &[], 1.9);
        assert_eq!(nd.sets[2], [0]);
        assert_eq!(nd.sets[0], [1, 2]);
        assert_eq!(nd.sets[3], Vec::<u32>::new());
        assert_eq!(nd.group_count, 1);
    }

    #[test]
    fn cosine_distances_are_recomputed_in_f64() {
        // Row 1 is row 0 scaled (distance 0), row 2 is orthogonal to both, row 3 is zero (distance 1).
        let x = [3.0, 4.0, 0.6, 0.8, -4.0, 3.0, 0.0, 0.0];
        let k = knn(&[&[(1, 1e-7), (2, 1.0)], &[(0, 1e-7), (3, 1.0)], &[(0, 1.0), (1, 1.0)], &[(0, 1.0), (1, 1.0)]]);
        let d = exact_distances(&k, &x, 2, Metric::Cosine);
        assert!(d[0].abs() < 1e-15 && d[2].abs() < 1e-15 && (d[1] - 1.0).abs() < 1e-15, "{d:?}");
        assert_eq!(d[3], 1.0);
        assert_eq!(d[6..], [1.0, 1.0]);
    }

    #[test]
    fn exact_duplicates_are_near_duplicates_at_threshold_zero() {
        let k = knn(&[&[(1, 0.0)], &[(0, 0.0)], &[(1, 0.3)]]);
        let nd = near_duplicates(&k, &f64s(&k), &[vec![0, 1]], 0.0);
        assert_eq!(nd.flags, [1, 1, 0]);
        assert_eq!(nd.median, MEDIAN_FLOOR as f32);
        assert_eq!(nd.scores[..2], [0.0, 0.0]);
    }
}
