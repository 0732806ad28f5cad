//! The symmetric blocked scan that both CPU cosine paths share: the similarity matrix is symmetric, so only
//! the blocks on and above the diagonal are multiplied, and each product feeds the state of its row items and
//! of its column items. Also the pieces their scans share: per-item state split into parallel chunks, and
//! values read a fixed-size chunk at a time.

use tch::{Device, Tensor};

use super::check_cancel;
use crate::analysis::{AnalysisError, Hooks};

/// A range of items, `start..end`.
pub(super) type Span = (usize, usize);

/// Per-item state over a range of items that splits into disjoint parts (the f32 top-k, the screen's pools).
pub(super) trait ItemRange: Sized {
    fn items(&self) -> usize;
    fn split_at(self, item: usize) -> (Self, Self);
}

/// Chunks of `per` items each with their first item's offset, for parallel scans.
pub(super) fn chunks<S: ItemRange>(state: S, per: usize) -> Vec<(usize, S)> {
    let mut out = Vec::new();
    let mut rest = state;
    let mut start = 0;
    while rest.items() > 0 {
        let take = per.min(rest.items());
        let (head, tail) = rest.split_at(take);
        out.push((start, head));
        start += take;
        rest = tail;
    }
    out
}

/// Values per step of the scans: a chunk is compared with the thresholds at once (vectorised), and only the
/// values above them are looked at one by one.
pub(super) const CHUNK: usize = 32;

/// `CHUNK` values from `base` (fewer at the end, the rest of the array is left as it is).
#[inline(always)]
pub(super) fn chunk<T: Copy>(v: &[T], base: usize, fill: T) -> [T; CHUNK] {
    if let Some(full) = v.get(base..base + CHUNK) {
        // A fixed-size copy the compiler keeps in registers (a variable-length one calls memmove).
        return full.try_into().expect("CHUNK values");
    }
    let mut out = [fill; CHUNK];
    for (o, &x) in out.iter_mut().zip(&v[base..]) {
        *o = x;
    }
    out
}

/// Every product of the symmetric blocked scan of the rows of `m` (`symmetric_tasks`), by `mm(rows,
/// columns^T, out)` into one reused buffer of `T`s, handed to `visit` with its row and column ranges.
pub(super) fn symmetric_products<T: tch::kind::Element>(
    m: &Tensor,
    block: usize,
    mm: impl Fn(&Tensor, &Tensor, &Tensor) -> Result<Tensor, tch::TchError>,
    hooks: &Hooks,
    mut visit: impl FnMut(&[T], Span, Span),
) -> Result<(), AnalysisError> {
    let (bsize, tasks) = symmetric_tasks(m.size()[0] as usize, block);
    // One buffer for every product: each block's output is a contiguous view of its first rows * cols.
    let buffer = Tensor::empty([(bsize * bsize) as i64], (T::KIND, Device::Cpu));
    for (done, &((i0, i1), (j0, j1))) in tasks.iter().enumerate() {
        check_cancel(hooks)?;
        let (rows, cols) = (i1 - i0, j1 - j0);
        let out = buffer.narrow(0, 0, (rows * cols) as i64).view([rows as i64, cols as i64]);
        let _ = mm(&m.narrow(0, i0 as i64, rows as i64), &m.narrow(0, j0 as i64, cols as i64).tr(), &out)?;
        // SAFETY: `out` is a contiguous CPU tensor of rows * cols elements of T's kind, alive for this scope.
        let prod = unsafe { std::slice::from_raw_parts(out.data_ptr() as *const T, rows * cols) };
        visit(prod, (i0, i1), (j0, j1));
        (hooks.progress)("neighbours", done + 1, tasks.len());
    }
    Ok(())
}

/// The block size (`block`, or 2048 for 0, evened out over `n`) and the products of the symmetric scan.
fn symmetric_tasks(n: usize, block: usize) -> (usize, Vec<(Span, Span)>) {
    let target = if block > 0 { block } else { 2048 };
    let nblocks = n.div_ceil(target);
    let bsize = n.div_ceil(nblocks);
    let bounds: Vec<Span> = (0..nblocks).map(|b| (b * bsize, ((b + 1) * bsize).min(n))).collect();
    (bsize, block_pairs(&bounds))
}

/// The products the symmetric scan needs, as (rows, columns) ranges with rows first: each block against
/// itself and every later block. A block against itself is cut into quarters (the quarters' own squares
/// plus their pairs), so that of the square's redundant lower half only the quarters' halves remain.
fn block_pairs(bounds: &[Span]) -> Vec<(Span, Span)> {
    let mut tasks = Vec::new();
    for (b, &(i0, i1)) in bounds.iter().enumerate() {
        let parts = 4.min(i1 - i0);
        let step = (i1 - i0).div_ceil(parts);
        let quarters: Vec<(usize, usize)> = (i0..i1).step_by(step).map(|s| (s, (s + step).min(i1))).collect();
        for (q, &rows) in quarters.iter().enumerate() {
            tasks.extend(quarters[q..].iter().map(|&cols| (rows, cols)));
        }
        tasks.extend(bounds[b + 1..].iter().map(|&cols| ((i0, i1), cols)));
    }
    tasks
}
