//! Each item's pool of candidate keys during the scan: at most `2c` slots, emptied of the keys at or below a
//! rising threshold, so that every key a pool drops (or never takes) is at most its final threshold, as the
//! proof in `screen` needs.

use rayon::prelude::*;

use crate::analysis::knn::blocked::ItemRange;

/// Per item up to `2c` (key, id) slots: pushes append, and a pool that reaches its `limit` drops the keys at
/// or below a raised threshold, so a push costs O(1) amortised. Every dropped or never pushed key is at most
/// the final threshold, which the proof relies on.
///
/// The threshold is the k-th largest key less the item's window `win` (keys further below would fail the
/// proof's test against the k-th similarity, see `screen_window`), or the c-th largest key where more than
/// `c` keys lie within the window. The k-th key rises faster than the c-th, and early shrinks (a small
/// `limit` while few keys are kept) let it take effect sooner, so that fewer keys are pushed.
pub(in crate::analysis::knn) struct Pool<'a> {
    k: usize,
    c: usize,
    slots: &'a mut [(f32, u32)],
    len: &'a mut [u32],
    /// The length at which the pool next shrinks: soon while few keys are kept, as the threshold rises fastest
    /// early on, at most `2c`.
    limit: &'a mut [u32],
    pub(super) thr: &'a mut [f32],
    win: &'a [f32],
}

/// The pool length at which to shrink next, with `kept` keys: half as many again, at least `k` more.
fn next_limit(kept: usize, k: usize, cap: usize) -> usize {
    (kept + k.max(kept / 2)).max(2 * k).min(cap)
}

/// Keeps the `c` largest keys first; returns the c-th largest.
fn keep_largest(slots: &mut [(f32, u32)], c: usize) -> f32 {
    slots.select_nth_unstable_by(c - 1, |a, b| b.0.total_cmp(&a.0));
    slots[c - 1].0
}

/// Raises the threshold `thr` of a pool holding `slots` (more than `k` keys) to the k-th largest key less
/// `win`, or to the c-th largest where more than `c` keys lie above that, and keeps the keys above it first.
/// Returns the new threshold and how many keys are kept; every other key is at most the threshold.
fn shrink(slots: &mut [(f32, u32)], k: usize, c: usize, win: f32, thr: f32) -> (f32, usize) {
    let kth = keep_largest(slots, k);
    let t = thr.max(kth - win);
    let mut kept = k;
    for i in k..slots.len() {
        if slots[i].0 > t {
            slots.swap(kept, i);
            kept += 1;
        }
    }
    if kept > c {
        return (keep_largest(&mut slots[..kept], c), c);
    }
    (t, kept)
}

impl ItemRange for Pool<'_> {
    fn items(&self) -> usize {
        self.thr.len()
    }

    fn split_at(self, item: usize) -> (Self, Self) {
        Pool::split_at(self, item)
    }
}

impl<'a> Pool<'a> {
    #[inline]
    pub(super) fn push(&mut self, item: usize, key: f32, id: u32) {
        let cap = 2 * self.c;
        let len = self.len[item] as usize;
        let slots = &mut self.slots[item * cap..(item + 1) * cap];
        slots[len] = (key, id);
        if len + 1 == self.limit[item] as usize {
            let (t, kept) = shrink(&mut slots[..=len], self.k, self.c, self.win[item], self.thr[item]);
            self.thr[item] = t;
            self.len[item] = kept as u32;
            self.limit[item] = next_limit(kept, self.k, cap) as u32;
        } else {
            self.len[item] = len as u32 + 1;
        }
    }

    pub(super) fn split_at(self, item: usize) -> (Pool<'a>, Pool<'a>) {
        let cap = 2 * self.c;
        let (s0, s1) = self.slots.split_at_mut(item * cap);
        let (l0, l1) = self.len.split_at_mut(item);
        let (t0, t1) = self.thr.split_at_mut(item);
        let (m0, m1) = self.limit.split_at_mut(item);
        let (w0, w1) = self.win.split_at(item);
        let (k, c) = (self.k, self.c);
        (
            Pool { k, c, slots: s0, len: l0, limit: m0, thr: t0, win: w0 },
            Pool { k, c, slots: s1, len: l1, limit: m1, thr: t1, win: w1 },
        )
    }

    pub(super) fn reborrow(&mut self) -> Pool<'_> {
        let (k, c, win) = (self.k, self.c, self.win);
        Pool { k, c, slots: &mut *self.slots, len: &mut *self.len, limit: &mut *self.limit, thr: &mut *self.thr, win }
    }

    pub(super) fn range(self, start: usize, count: usize) -> Pool<'a> {
        self.split_at(start).1.split_at(count).0
    }
}

/// The pools of all `n` items, owned: `all` lends them to the scan, `finish` ends it.
pub(super) struct Pools {
    k: usize,
    c: usize,
    slots: Vec<(f32, u32)>,
    len: Vec<u32>,
    limit: Vec<u32>,
    thr: Vec<f32>,
    win: Vec<f32>,
}

impl Pools {
    /// Empty pools of `c` candidates (`2c` slots) each, with the items' windows `win`.
    pub(super) fn new(n: usize, k: usize, c: usize, win: Vec<f32>) -> Pools {
        let cap = 2 * c;
        Pools {
            k,
            c,
            slots: vec![(f32::NEG_INFINITY, u32::MAX); n * cap],
            len: vec![0u32; n],
            limit: vec![next_limit(0, k, cap) as u32; n],
            thr: vec![f32::NEG_INFINITY; n],
            win,
        }
    }

    pub(super) fn all(&mut self) -> Pool<'_> {
        let (k, c) = (self.k, self.c);
        let (slots, len, limit, thr, win) = (&mut self.slots, &mut self.len, &mut self.limit, &mut self.thr, &self.win);
        Pool { k, c, slots, len, limit, thr, win }
    }

    /// After the scan: every pool shrunk once more and its keys sorted, largest first.
    pub(super) fn finish(&mut self) {
        let (k, c, cap) = (self.k, self.c, 2 * self.c);
        self.slots
            .par_chunks_mut(cap)
            .zip(self.len.par_iter_mut().zip(self.thr.par_iter_mut()))
            .zip(&self.win)
            .for_each(|((pool, (l, tau)), &w)| {
                if *l as usize > k {
                    let (t, kept) = shrink(&mut pool[..*l as usize], k, c, w, *tau);
                    (*tau, *l) = (t, kept as u32);
                }
                pool[..*l as usize].sort_unstable_by(|p, q| q.0.total_cmp(&p.0));
            });
    }

    /// Item `a`'s candidates, (key, id) in key order once `finish`ed.
    pub(super) fn candidates(&self, a: usize) -> &[(f32, u32)] {
        let cap = 2 * self.c;
        &self.slots[a * cap..a * cap + self.len[a] as usize]
    }

    /// Item `a`'s threshold: every item not among its candidates has a key at most this.
    pub(super) fn threshold(&self, a: usize) -> f32 {
        self.thr[a]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The proof needs every key a pool drops to be at most its threshold; the re-rank needs the k largest kept.
    #[test]
    fn shrink_keeps_every_key_above_the_threshold_and_the_k_largest() {
        let mut seed = 7u64;
        let mut next = || {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (seed >> 40) as f32 / (1u64 << 24) as f32
        };
        let (k, c) = (3, 8);
        for case in 0..500 {
            let len = k + 1 + case % (2 * c - k);
            // Ties on purpose: keys on a coarse grid.
            let mut slots: Vec<(f32, u32)> = (0..len).map(|i| ((next() * 16.0).floor() / 16.0, i as u32)).collect();
            let before = slots.clone();
            let (win, thr) = (next() * 0.5, if case % 3 == 0 { f32::NEG_INFINITY } else { next() * 0.3 });
            let (t, kept) = shrink(&mut slots, k, c, win, thr);
            assert!(t >= thr && kept >= k.min(len) && kept <= c, "case {case}: t {t} kept {kept}");
            let mut sorted: Vec<f32> = before.iter().map(|s| s.0).collect();
            sorted.sort_by(|a, b| b.total_cmp(a));
            let mut kept_keys: Vec<f32> = slots[..kept].iter().map(|s| s.0).collect();
            kept_keys.sort_by(|a, b| b.total_cmp(a));
            assert_eq!(kept_keys[..k], sorted[..k], "case {case}: the k largest");
            assert!(slots[kept..].iter().all(|s| s.0 <= t), "case {case}: a dropped key above the threshold");
            let mut ids: Vec<u32> = slots.iter().map(|s| s.1).collect();
            ids.sort_unstable();
            assert_eq!(ids, (0..len as u32).collect::<Vec<_>>(), "case {case}: slots permuted, none lost");
        }
    }

    #[test]
    fn shrink_limits_grow_with_the_kept_keys_up_to_the_slots() {
        assert_eq!(next_limit(0, 10, 94), 20);
        assert_eq!(next_limit(12, 10, 94), 22);
        assert_eq!(next_limit(40, 10, 94), 60);
        assert_eq!(next_limit(47, 10, 94), 70);
        assert_eq!(next_limit(80, 10, 94), 94);
    }
}
