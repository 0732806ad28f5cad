//! The table's list: which items are shown (the filter), in what order (the sort), where the cursor is
//! and which row is at the top. The shown list is a vector of item ids rebuilt from the flat columns in
//! `Data`; only the rows on screen are read from the store.

use std::sync::Arc;

use regex::Regex;
use torchlight_store::{Store, TagKind};

use crate::data::{self, Data, NO_LABEL, Sources};
use crate::filter::{Filter, FlagFilter, Like, SortKey, TagFilter};

/// Why a source filter was not applied.
#[derive(Debug, thiserror::Error)]
pub enum SourceFilterError {
    #[error("not a regular expression: {0}")]
    Regex(#[from] regex::Error),
    #[error("reading sources: {0}")]
    Store(#[from] torchlight_store::StoreError),
}

/// A table row on screen.
#[derive(Debug, Clone)]
pub struct Row {
    pub id: u32,
    /// The item's source without the part every item shares (`Data::source_tail`).
    pub source: String,
}

pub struct ListView {
    sort: SortKey,
    desc: bool,
    filter: Filter,
    /// Every item's source; loaded the first time a source filter needs it.
    sources: Option<Sources>,
    /// Shown item ids, in order (shared with the pixel scatter's worker).
    shown: Arc<Vec<u32>>,
    /// Bumped whenever the set of shown items changes (not its order): the scatter depends on it.
    generation: u64,
    cursor: usize,
    /// Index in `shown` of the first row on screen.
    top: usize,
    rows: Vec<Row>,
}

impl ListView {
    /// An empty list sorted by outlier score, or by id when the store has no outlier scores; `rebuild`
    /// fills it.
    pub fn new(data: &Data, space: usize) -> ListView {
        let sort = if has_sort_column(data, space, SortKey::Outlier) { SortKey::Outlier } else { SortKey::Id };
        ListView {
            sort,
            desc: false,
            filter: Filter::default(),
            sources: None,
            shown: Arc::default(),
            generation: 0,
            cursor: 0,
            top: 0,
            rows: Vec::new(),
        }
    }

    pub fn sort(&self) -> SortKey {
        self.sort
    }

    /// Whether the sort is descending.
    pub fn desc(&self) -> bool {
        self.desc
    }

    pub fn filter(&self) -> &Filter {
        &self.filter
    }

    /// Shown item ids, in order.
    pub fn shown(&self) -> &Arc<Vec<u32>> {
        &self.shown
    }

    /// Changes whenever the set of shown items does.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Index in `shown` of the selected item.
    pub fn cursor(&self) -> usize {
        self.cursor
    }

    /// Index in `shown` of the first row on screen.
    pub fn top(&self) -> usize {
        self.top
    }

    /// The rows on screen, from `top` on.
    pub fn rows(&self) -> &[Row] {
        &self.rows
    }

    pub fn selected(&self) -> Option<u32> {
        self.shown.get(self.cursor).copied()
    }

    /// The next sort column the store has, ascending.
    pub fn next_sort(&mut self, data: &Data, space: usize) {
        let at = SortKey::ALL.iter().position(|&k| k == self.sort).unwrap_or(0);
        let n = SortKey::ALL.len();
        if let Some(k) = (1..=n).map(|i| SortKey::ALL[(at + i) % n]).find(|&k| has_sort_column(data, space, k)) {
            self.sort = k;
        }
        self.desc = self.sort.starts_descending();
    }

    pub fn reverse(&mut self) {
        self.desc = !self.desc;
    }

    pub fn set_label_filter(&mut self, label: Option<u32>) {
        self.filter.label = label;
    }

    pub fn set_pred_filter(&mut self, pred: Option<u32>) {
        self.filter.pred = pred;
    }

    pub fn cycle_tag_filter(&mut self) {
        self.filter.tag = self.filter.tag.next();
    }

    pub fn cycle_flag_filter(&mut self) {
        self.filter.flag = self.filter.flag.next();
    }

    pub fn set_like(&mut self, like: Like) {
        self.filter.like = Some(like);
    }

    pub fn clear_filters(&mut self) {
        self.filter = Filter::default();
    }

    /// Filters sources by a regular expression (none when `text` is empty), reading every source the first
    /// time. On an error the filter is left as it was.
    pub fn set_source_filter(&mut self, store: &Store, text: &str) -> Result<(), SourceFilterError> {
        if text.is_empty() {
            self.filter.source = None;
            return Ok(());
        }
        let re = Regex::new(text)?;
        if self.sources.is_none() {
            self.sources = Some(data::sources(store)?);
        }
        self.filter.source = Some((text.to_string(), re));
        Ok(())
    }

    /// Drops the sources read for the source filter: the store has been reread.
    pub fn forget_sources(&mut self) {
        self.sources = None;
    }

    /// Filters and sorts all items into `shown`, keeping `keep` selected when it is still shown, with the
    /// selection in the middle of a page of `page` rows.
    pub fn rebuild(&mut self, data: &Data, space: usize, keep: Option<u32>, page: usize) {
        let shown: Vec<u32> = if let Some(like) = &self.filter.like {
            let k = self.keeper(data, space);
            like.found.iter().map(|&(id, _)| id).filter(|&id| k(id)).collect()
        } else {
            let keys = self.sort_keys(data, space);
            let flip = if self.desc { u32::MAX } else { 0 };
            let pack = |id: u32| (u64::from(keys[id as usize] ^ flip) << 32) | u64::from(id);
            let packed: Vec<u64> = if self.filter.is_empty() {
                (0..data.items).map(pack).collect()
            } else {
                let k = self.keeper(data, space);
                (0..data.items).filter(|&id| k(id)).map(pack).collect()
            };
            radix_sort_by_high_word(packed).into_iter().map(|p| p as u32).collect()
        };
        self.shown = Arc::new(shown);
        self.generation += 1;
        self.cursor = keep.and_then(|id| self.shown.iter().position(|&v| v == id)).unwrap_or(0);
        self.top = self.cursor.saturating_sub(page / 2);
        release_freed_heap();
    }

    /// Puts the cursor on a row of the shown list (clamped to it).
    pub fn move_to(&mut self, row: i64) {
        let n = self.shown.len() as i64;
        self.cursor = row.clamp(0, (n - 1).max(0)) as usize;
    }

    /// Scrolls so that the cursor is on a page of `page` rows, and reads those rows' sources.
    pub fn scroll(&mut self, store: &Store, data: &Data, page: usize) {
        if self.cursor < self.top {
            self.top = self.cursor;
        } else if self.cursor >= self.top + page {
            self.top = self.cursor + 1 - page;
        }
        self.top = self.top.min(self.shown.len().saturating_sub(page));
        let end = (self.top + page).min(self.shown.len());
        let ids = &self.shown[self.top.min(end)..end];
        self.rows = match store.read_txn() {
            Ok(r) => ids
                .iter()
                .map(|&id| {
                    let item = store.item(&r, id).ok().flatten();
                    let source = item.map(|i| data.source_tail(&i.source).to_string()).unwrap_or_default();
                    Row { id, source }
                })
                .collect(),
            Err(_) => ids.iter().map(|&id| Row { id, source: String::new() }).collect(),
        };
    }

    /// The filter as a predicate over ids, with every lookup it needs hoisted out of the per-item call.
    fn keeper<'a>(&'a self, d: &'a Data, space: usize) -> impl Fn(u32) -> bool + 'a {
        let f = &self.filter;
        let sp = d.spaces.get(space);
        let first = |get: fn(&data::SpaceData) -> Option<&Vec<u32>>| {
            sp.and_then(get).or_else(|| d.spaces.iter().find_map(get)).map(Vec::as_slice)
        };
        let pred = first(|s| s.pred.as_ref());
        let issue =
            sp.and_then(|s| s.label_issue.as_ref()).or_else(|| d.spaces.iter().find_map(|s| s.label_issue.as_ref()));
        let dup = sp.and_then(|s| s.near_duplicate.as_ref());
        let nn = sp.and_then(|s| s.nn_flag.as_ref());
        let outlier = sp.and_then(|s| s.outlier.as_deref().map(|o| (o, s.outlier_cut)));
        let source = f.source.as_ref().map(|s| &s.1).zip(self.sources.as_ref());
        move |id: u32| {
            let i = id as usize;
            if f.label.is_some_and(|l| d.label[i] != l) {
                return false;
            }
            if f.pred.is_some() && pred.map(|p| p[i]) != f.pred {
                return false;
            }
            let tag_ok = match f.tag {
                TagFilter::Any => true,
                TagFilter::Untagged => !d.tags.contains_key(&id),
                TagFilter::Tagged => d.tags.contains_key(&id),
                TagFilter::Kind(k) => d.tags.get(&id).is_some_and(|t| t.kind == Some(k)),
                TagFilter::Relabelled => d.tags.get(&id).is_some_and(|t| t.new_label.is_some()),
            };
            let flag_ok = match f.flag {
                FlagFilter::None => true,
                FlagFilter::NearDuplicate => dup.is_some_and(|c| c.get(i)),
                FlagFilter::NnFlag => nn.is_some_and(|c| c.get(i)),
                FlagFilter::LabelIssue => issue.is_some_and(|c| c.get(i)),
                FlagFilter::Outlier => outlier.is_some_and(|(o, cut)| o[i] <= cut),
            };
            tag_ok && flag_ok && source.is_none_or(|(re, src)| re.is_match(src.get(id)))
        }
    }

    /// The sort key of every item as an order-preserving u32 (missing values last).
    fn sort_keys(&self, d: &Data, space: usize) -> Vec<u32> {
        let n = d.items as usize;
        let sp = d.spaces.get(space);
        let floats =
            |c: Option<&Vec<f32>>| c.map_or_else(|| vec![u32::MAX; n], |c| c.iter().map(|&v| ordered(v)).collect());
        let any =
            |get: fn(&data::SpaceData) -> Option<&Vec<f32>>| sp.and_then(get).or_else(|| d.spaces.iter().find_map(get));
        match self.sort {
            SortKey::Outlier => floats(sp.and_then(|s| s.outlier.as_ref())),
            SortKey::DriftJaccard => floats(d.drift.knn_jaccard.as_ref()),
            SortKey::DriftMovement => floats(d.drift.movement.as_ref()),
            SortKey::DriftRankChange => floats(d.drift.rank_change.as_ref()),
            SortKey::NnDistance => floats(sp.and_then(|s| s.nn_distance.as_ref())),
            SortKey::LabelQuality => floats(any(|s| s.label_quality.as_ref())),
            SortKey::Label => d.label.to_vec(),
            SortKey::Pred => sp
                .and_then(|s| s.pred.as_ref())
                .or_else(|| d.spaces.iter().find_map(|s| s.pred.as_ref()))
                .map_or_else(|| vec![NO_LABEL; n], Clone::clone),
            SortKey::Id => (0..n as u32).collect(),
            SortKey::Tag => {
                let mut k = vec![u32::MAX; n];
                for (&id, t) in &d.tags {
                    k[id as usize] = match t.kind {
                        Some(kind) => TagKind::ALL.iter().position(|&x| x == kind).unwrap_or(0) as u32,
                        None => 10,
                    };
                }
                k
            }
        }
    }
}

/// Whether the store has the column a sort key sorts by (in `space`, for the per-space scores).
fn has_sort_column(data: &Data, space: usize, key: SortKey) -> bool {
    let sp = data.spaces.get(space);
    match key {
        SortKey::Outlier => sp.is_some_and(|s| s.outlier.is_some()),
        SortKey::NnDistance => sp.is_some_and(|s| s.nn_distance.is_some()),
        SortKey::DriftJaccard => data.drift.knn_jaccard.is_some(),
        SortKey::DriftMovement => data.drift.movement.is_some(),
        SortKey::DriftRankChange => data.drift.rank_change.is_some(),
        SortKey::LabelQuality => data.spaces.iter().any(|s| s.label_quality.is_some()),
        SortKey::Pred => data.spaces.iter().any(|s| s.pred.is_some()),
        SortKey::Label | SortKey::Id | SortKey::Tag => true,
    }
}

/// Sorts (key << 32 | id) words by key, stably: ids enter in ascending order, so ties stay in id order.
/// Three 11-bit LSD radix passes over the key (a pass whose digit is the same everywhere is skipped), which
/// beats a comparison sort on a list of every item.
fn radix_sort_by_high_word(mut v: Vec<u64>) -> Vec<u64> {
    let mut tmp = vec![0u64; v.len()];
    for shift in [32u32, 43, 54] {
        let digit = |x: u64| ((x >> shift) & 0x7ff) as usize;
        let mut count = [0usize; 2049];
        for &x in &v {
            count[digit(x) + 1] += 1;
        }
        if count.contains(&v.len()) {
            continue;
        }
        for i in 0..2048 {
            count[i + 1] += count[i];
        }
        for &x in &v {
            let d = digit(x);
            tmp[count[d]] = x;
            count[d] += 1;
        }
        std::mem::swap(&mut v, &mut tmp);
    }
    v
}

/// A re-sort frees large buffers of keys and scratch; glibc keeps freed chunks of that size resident in its
/// arenas, so hand them back to the kernel.
fn release_freed_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free memory; it is safe to call at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Maps an f32 to a u32 with the same order (NaN last), so sorting is a sort of plain integers.
fn ordered(f: f32) -> u32 {
    if f.is_nan() {
        return u32::MAX;
    }
    let b = f.to_bits();
    if b >> 31 == 1 { !b } else { b | 0x8000_0000 }
}
