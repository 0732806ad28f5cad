//! The re-rank: exact f32 similarities of each item's candidates, its k best among them, and the proof's test
//! that no other item can rank above those.

use rayon::prelude::*;

use super::KeyBounds;
use super::pool::Pools;
use crate::analysis::knn::rows::UnitRows;

/// Each item's k best candidates by f32 similarity (ties by smaller id), row-major `[n, k]`, and whether the
/// proof holds for it.
pub(super) struct Reranked {
    pub(super) ids: Vec<u32>,
    pub(super) sims: Vec<f32>,
    pub(super) proven: Vec<bool>,
}

/// The re-rank of the candidates of the `finish`ed `pools` of all `n` items.
pub(super) fn rerank(u: &UnitRows, pools: &Pools, n: usize, k: usize, proof: &KeyBounds) -> Reranked {
    let cands = |a: usize| pools.candidates(a);
    // The re-rank in two rounds of f32 products: first each item's k best keys; then the candidates after
    // them whose bound reaches the k-th similarity found so far (the rest cannot be among the k nearest).
    let first = pairs_of(n, |a| &cands(a)[..k.min(cands(a).len())]);
    let first_sims = pair_sims(u, &first.pairs);
    let more: Vec<usize> = (0..n)
        .into_par_iter()
        .map(|a| {
            let cand = cands(a);
            let found = &first_sims[first.start[a]..first.start[a + 1]];
            let kth = found.iter().copied().fold(f32::INFINITY, f32::min);
            let margin = proof.margin(a);
            cand[found.len()..].partition_point(|&(key, _)| f64::from(key) + margin >= f64::from(kth))
        })
        .collect();
    let second = pairs_of(n, |a| {
        let (cand, from) = (cands(a), first.start[a + 1] - first.start[a]);
        &cand[from..from + more[a]]
    });
    let second_sims = pair_sims(u, &second.pairs);
    let mut ids = vec![u32::MAX; n * k];
    let mut sims = vec![f32::NEG_INFINITY; n * k];
    let proven: Vec<bool> = ids
        .par_chunks_mut(k)
        .zip(sims.par_chunks_mut(k))
        .enumerate()
        .map(|(a, (out_ids, out_sims))| {
            let computed = [(&first, &first_sims), (&second, &second_sims)].map(|(round, sims)| {
                round.pairs[round.start[a]..round.start[a + 1]].iter().zip(&sims[round.start[a]..])
            });
            // Top k by (similarity, then smaller id).
            let mut best: Vec<(f32, u32)> = computed.into_iter().flatten().map(|(&(_, b), &sim)| (sim, b)).collect();
            let m = best.len();
            best.sort_unstable_by(|p, q| q.0.total_cmp(&p.0).then(p.1.cmp(&q.1)));
            for (t, &(sim, b)) in best.iter().take(k).enumerate() {
                out_ids[t] = b;
                out_sims[t] = sim;
            }
            let kth = f64::from(best[k - 1].0);
            let margin = proof.margin(a);
            // Every candidate not computed, and every non-candidate, has a key at most the first one not
            // computed (or the threshold), whose bound must fall below the k-th.
            match cands(a).get(m) {
                Some(&(key, _)) => f64::from(key) + margin < kth,
                None => pools.threshold(a) == f32::NEG_INFINITY || f64::from(pools.threshold(a)) + margin < kth,
            }
        })
        .collect();
    Reranked { ids, sims, proven }
}

/// (item, candidate) pairs, item after item from `start[a]`.
struct Pairs {
    start: Vec<usize>,
    pairs: Vec<(u32, u32)>,
}

fn pairs_of<'a>(n: usize, cand: impl Fn(usize) -> &'a [(f32, u32)]) -> Pairs {
    let mut start = Vec::with_capacity(n + 1);
    let mut pairs = Vec::new();
    for a in 0..n {
        start.push(pairs.len());
        pairs.extend(cand(a).iter().map(|&(_, b)| (a as u32, b)));
    }
    start.push(pairs.len());
    Pairs { start, pairs }
}

/// Bytes of rows one pass of `pair_sims` keeps hot: the cores share the L3 cache, which must also hold the
/// item rows streaming past.
const RERANK_BLOCK_BYTES: usize = 12 << 20;

/// f32 similarities of the (item, candidate) pairs, computed in passes over blocks of candidate rows that
/// stay in the cache while the item rows stream past once per pass. In item order each product would fetch
/// its candidate row from memory, and the re-rank would be bound by memory.
fn pair_sims(u: &UnitRows, pairs: &[(u32, u32)]) -> Vec<f32> {
    let (n, d) = (u.n(), u.d);
    let per_block = (RERANK_BLOCK_BYTES / (4 * d.max(1))).max(1);
    let blocks = n.div_ceil(per_block).max(1);
    // Counting sort by the candidate's block, stable (items ascending within each block).
    let mut next = vec![0usize; blocks + 1];
    for &(_, b) in pairs {
        next[b as usize / per_block + 1] += 1;
    }
    for blk in 0..blocks {
        next[blk + 1] += next[blk];
    }
    let block_start = next.clone();
    let mut sorted = vec![(0u32, 0u32, 0u32); pairs.len()];
    for (at, &(a, b)) in pairs.iter().enumerate() {
        let slot = &mut next[b as usize / per_block];
        sorted[*slot] = (a, b, at as u32);
        *slot += 1;
    }
    let mut sims_sorted = vec![0f32; pairs.len()];
    for blk in 0..blocks {
        let range = block_start[blk]..block_start[blk + 1];
        sims_sorted[range.clone()].par_chunks_mut(1024).zip(sorted[range].par_chunks(1024)).for_each(|(out, pairs)| {
            for (o, &(a, b, _)) in out.iter_mut().zip(pairs) {
                *o = u.dot(a as usize, b as usize);
            }
        });
    }
    let mut sims = vec![0f32; pairs.len()];
    for (&(_, _, at), &sim) in sorted.iter().zip(&sims_sorted) {
        sims[at as usize] = sim;
    }
    sims
}
