//! Per-item drift between two embedding spaces of the same items: how much of an item's neighbourhood
//! survived (Jaccard of the k-NN sets), how far it moved in the aligned 2-D projection, and how its
//! outlier-score rank changed. Computed from the columns the per-space analysis stored, so the drift of a
//! series costs no neighbour search of its own.
//!
//! Which pairs are compared (`pairs`): in a checkpoint series, the first and the last space (stored under the
//! dataset-level space "") and each step with the step before it (stored under the later step's space);
//! without a series, "foundation" and "finetuned" when the store has both (stored under "").

use torchlight_store::{Column, Series, SpaceInfo, Store, columns};

use super::Result;

/// Space names of the article's two-space comparison, used when the store has no series.
pub const FOUNDATION: &str = "foundation";
pub const FINETUNED: &str = "finetuned";

/// One comparison: `later` against `earlier`, its columns stored under the space `under` ("" for the
/// dataset-level pair).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriftPair {
    pub earlier: String,
    pub later: String,
    pub under: String,
}

/// The pairs drift is computed for, of the spaces the store has.
pub fn pairs(series: Option<&Series>, spaces: &[SpaceInfo]) -> Vec<DriftPair> {
    let has = |name: &str| spaces.iter().any(|s| s.name == name);
    let pair = |earlier: &str, later: &str, under: &str| DriftPair {
        earlier: earlier.to_string(),
        later: later.to_string(),
        under: under.to_string(),
    };
    let steps: Vec<&str> = series
        .map(|s| s.steps.iter().map(|st| st.space.as_str()).filter(|name| has(name)).collect())
        .unwrap_or_default();
    if steps.len() >= 2 {
        let mut out = vec![pair(steps[0], steps[steps.len() - 1], "")];
        out.extend(steps.windows(2).map(|w| pair(w[0], w[1], w[1])));
        out
    } else if has(FOUNDATION) && has(FINETUNED) {
        vec![pair(FOUNDATION, FINETUNED, "")]
    } else {
        Vec::new()
    }
}

/// The space each space's projections are Procrustes-aligned to: the step before it in a series, else the
/// first space (lowest index); None for the first space itself.
pub fn alignment_reference(series: Option<&Series>, spaces: &[SpaceInfo], name: &str) -> Option<String> {
    let has = |n: &str| spaces.iter().any(|s| s.name == n);
    if let Some(series) = series {
        let steps: Vec<&str> = series.steps.iter().map(|s| s.space.as_str()).filter(|n| has(n)).collect();
        if let Some(pos) = steps.iter().position(|&s| s == name)
            && pos > 0
        {
            return Some(steps[pos - 1].to_string());
        }
    }
    let first = spaces.iter().min_by_key(|s| s.index)?;
    (first.name != name).then(|| first.name.clone())
}

/// Whether both spaces are steps of the series.
pub fn same_series(series: Option<&Series>, a: &str, b: &str) -> bool {
    series.is_some_and(|s| [a, b].iter().all(|name| s.steps.iter().any(|st| st.space == *name)))
}

/// Jaccard overlap of each item's two neighbour sets (row-major, `ka` and `kb` ids per item); ids that do not
/// name an item (>= n, the padding of a short row) are left out. Two empty sets overlap fully.
pub fn knn_jaccard(a: &[u32], ka: usize, b: &[u32], kb: usize, n: usize) -> Vec<f32> {
    let valid = |row: &[u32]| {
        let mut v: Vec<u32> = row.iter().copied().filter(|&id| (id as usize) < n).collect();
        v.sort_unstable();
        v.dedup();
        v
    };
    (0..n)
        .map(|i| {
            let (ra, rb) = (valid(&a[i * ka..(i + 1) * ka]), valid(&b[i * kb..(i + 1) * kb]));
            let shared = ra.iter().filter(|id| rb.binary_search(id).is_ok()).count();
            let union = ra.len() + rb.len() - shared;
            if union == 0 { 1.0 } else { shared as f32 / union as f32 }
        })
        .collect()
}

/// Euclidean distance each item moved between two layouts in the same frame (n * 2 each).
pub fn movement(earlier: &[f32], later: &[f32]) -> Vec<f32> {
    earlier.chunks_exact(2).zip(later.chunks_exact(2)).map(|(p, q)| (q[0] - p[0]).hypot(q[1] - p[1])).collect()
}

/// Each item's rank by outlier score: 0 for the lowest score (most anomalous), ties by item id, as
/// `outlier::most_anomalous` orders them.
pub fn outlier_ranks(scores: &[f32]) -> Vec<u32> {
    let mut order: Vec<u32> = (0..scores.len() as u32).collect();
    order.sort_by(|&a, &b| scores[a as usize].total_cmp(&scores[b as usize]).then(a.cmp(&b)));
    let mut ranks = vec![0u32; scores.len()];
    for (r, &i) in order.iter().enumerate() {
        ranks[i as usize] = r as u32;
    }
    ranks
}

/// Rank in the later space minus rank in the earlier one: negative = became more anomalous.
pub fn rank_change(earlier: &[f32], later: &[f32]) -> Vec<f32> {
    let (a, b) = (outlier_ranks(earlier), outlier_ranks(later));
    a.iter().zip(&b).map(|(&ra, &rb)| rb as f32 - ra as f32).collect()
}

/// The drift columns of one pair, each None when a space lacks the columns it needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Drift {
    pub jaccard: Option<Vec<f32>>,
    /// Movement and the projection it was measured in (`columns::UMAP` or `columns::PCA`).
    pub movement: Option<(Vec<f32>, &'static str)>,
    pub rank_change: Option<Vec<f32>>,
}

/// What one pair's drift came to, for the summary.
#[derive(Debug, Clone, PartialEq)]
pub struct DriftReport {
    pub pair: DriftPair,
    pub n: usize,
    pub mean_jaccard: Option<f64>,
    /// Items that moved most in the projection, most first: (id, distance), and the projection's name.
    pub most_moved: Vec<(u32, f32)>,
    pub projection: Option<&'static str>,
    /// Items whose outlier rank rose most towards the anomalous end: (id, rank change), most first.
    pub most_rank_gained: Vec<(u32, f32)>,
}

fn f32_column(col: Option<Column>, width: u32, n: usize) -> Option<Vec<f32>> {
    match col {
        Some(Column::F32 { width: w, values }) if w == width && values.len() == n * width as usize => Some(values),
        _ => None,
    }
}

fn ids_column(col: Option<Column>, n: usize) -> Option<(Vec<u32>, usize)> {
    match col {
        Some(Column::U32 { width, values }) if width > 0 && values.len() == n * width as usize => {
            Some((values, width as usize))
        }
        _ => None,
    }
}

/// The drift of `pair` from the two spaces' stored columns (n items).
pub fn compute(store: &Store, pair: &DriftPair, n: usize) -> Result<Drift> {
    let rtxn = store.read_txn()?;
    let col = |space: &str, name: &str| store.column(&rtxn, space, name);
    let (e, l) = (pair.earlier.as_str(), pair.later.as_str());
    let jaccard = match (ids_column(col(e, columns::KNN_IDS)?, n), ids_column(col(l, columns::KNN_IDS)?, n)) {
        (Some((a, ka)), Some((b, kb))) => Some(knn_jaccard(&a, ka, &b, kb, n)),
        _ => None,
    };
    let mut movement_cols = None;
    for proj in [columns::UMAP, columns::PCA] {
        if let (Some(a), Some(b)) = (f32_column(col(e, proj)?, 2, n), f32_column(col(l, proj)?, 2, n)) {
            movement_cols = Some((movement(&a, &b), proj));
            break;
        }
    }
    let rank =
        match (f32_column(col(e, columns::OUTLIER_SCORE)?, 1, n), f32_column(col(l, columns::OUTLIER_SCORE)?, 1, n)) {
            (Some(a), Some(b)) => Some(rank_change(&a, &b)),
            _ => None,
        };
    Ok(Drift { jaccard, movement: movement_cols, rank_change: rank })
}

/// Ids of the `count` largest values (ties by id), with their values.
fn largest(values: &[f32], count: usize) -> Vec<(u32, f32)> {
    let mut order: Vec<u32> = (0..values.len() as u32).collect();
    order.sort_by(|&a, &b| values[b as usize].total_cmp(&values[a as usize]).then(a.cmp(&b)));
    order.into_iter().take(count).map(|i| (i, values[i as usize])).collect()
}

/// Computes and stores the drift columns of every pair the store has (`pairs`), in one write transaction.
/// Columns of a pair whose spaces lack what they need are deleted, so no stale drift survives a re-analysis.
pub fn run(store: &Store) -> Result<Vec<DriftReport>> {
    let (all_pairs, n) = {
        let rtxn = store.read_txn()?;
        let spaces = store.spaces(&rtxn)?;
        (pairs(store.series(&rtxn)?.as_ref(), &spaces), store.item_count(&rtxn)? as usize)
    };
    let mut results = Vec::with_capacity(all_pairs.len());
    for pair in &all_pairs {
        results.push(compute(store, pair, n)?);
    }
    let mut wtxn = store.write_txn()?;
    let mut reports = Vec::new();
    for (pair, drift) in all_pairs.into_iter().zip(results) {
        let under = pair.under.as_str();
        let put = |wtxn: &mut _, name: &str, values: Option<&Vec<f32>>| match values {
            Some(v) => store.put_column(wtxn, under, name, &Column::F32 { width: 1, values: v.clone() }),
            None => store.delete_column(wtxn, under, name),
        };
        put(&mut wtxn, columns::DRIFT_KNN_JACCARD, drift.jaccard.as_ref())?;
        put(&mut wtxn, columns::DRIFT_MOVEMENT, drift.movement.as_ref().map(|(m, _)| m))?;
        put(&mut wtxn, columns::DRIFT_RANK_CHANGE, drift.rank_change.as_ref())?;
        let mean_jaccard =
            drift.jaccard.as_ref().map(|j| j.iter().map(|&v| f64::from(v)).sum::<f64>() / j.len().max(1) as f64);
        let most_moved = drift.movement.as_ref().map_or_else(Vec::new, |(m, _)| largest(m, 5));
        let most_rank_gained = drift
            .rank_change
            .as_ref()
            .map_or_else(Vec::new, |r| largest(&r.iter().map(|v| -v).collect::<Vec<_>>(), 5))
            .into_iter()
            .map(|(i, v)| (i, -v))
            .collect();
        reports.push(DriftReport {
            pair,
            n,
            mean_jaccard,
            most_moved,
            projection: drift.movement.map(|(_, p)| p),
            most_rank_gained,
        });
    }
    store.commit(wtxn)?;
    Ok(reports)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jaccard_counts_shared_neighbours_and_skips_padding() {
        // Item 0: {1, 2} vs {2, 3} -> 1/3; item 1: {0, 2} vs {2, 0} -> 1; item 2: {0} vs {} (padding) -> 0;
        // item 3: nothing on either side -> 1.
        let pad = u32::MAX;
        let a = [1, 2, 0, 2, 0, pad, pad, pad];
        let b = [2, 3, 2, 0, pad, pad, pad, pad];
        assert_eq!(knn_jaccard(&a, 2, &b, 2, 4), vec![1.0 / 3.0, 1.0, 0.0, 1.0]);
    }

    #[test]
    fn ranks_put_the_lowest_score_first_and_break_ties_by_id() {
        assert_eq!(outlier_ranks(&[0.5, 0.1, 0.5, 0.9]), vec![1, 0, 2, 3]);
        assert_eq!(rank_change(&[0.5, 0.1, 0.5, 0.9], &[0.1, 0.5, 0.6, 0.9]), vec![-1.0, 1.0, 0.0, 0.0]);
    }

    fn space(name: &str, index: u16) -> SpaceInfo {
        SpaceInfo {
            name: name.into(),
            index,
            dim: 2,
            model: torchlight_store::ModelSpec {
                kind: "precomputed".into(),
                source: String::new(),
                fingerprint: String::new(),
                pooling: String::new(),
                image_size: 0,
            },
            num_classes: 0,
            class_names: Vec::new(),
        }
    }

    #[test]
    fn a_series_compares_ends_and_neighbours_and_aligns_to_the_step_before() {
        let spaces = [space("foundation", 0), space("step-20", 1), space("step-10", 2), space("finetuned", 3)];
        let step = |space: &str, step| torchlight_store::SeriesStep { space: space.into(), step };
        let series = Series {
            steps: vec![step("foundation", 0), step("step-10", 10), step("step-20", 20)],
            losses: vec![],
            finetuned: None,
        };
        let p = pairs(Some(&series), &spaces);
        let names: Vec<(&str, &str, &str)> =
            p.iter().map(|p| (p.earlier.as_str(), p.later.as_str(), p.under.as_str())).collect();
        assert_eq!(
            names,
            [("foundation", "step-20", ""), ("foundation", "step-10", "step-10"), ("step-10", "step-20", "step-20")]
        );
        assert_eq!(alignment_reference(Some(&series), &spaces, "step-20").as_deref(), Some("step-10"));
        assert_eq!(alignment_reference(Some(&series), &spaces, "finetuned").as_deref(), Some("foundation"));
        assert_eq!(alignment_reference(Some(&series), &spaces, "foundation"), None);
        // Without a series: the article's two spaces, or nothing.
        let p = pairs(None, &spaces);
        assert_eq!(p, [DriftPair { earlier: "foundation".into(), later: "finetuned".into(), under: String::new() }]);
        assert!(pairs(None, &spaces[1..3]).is_empty());
    }
}
