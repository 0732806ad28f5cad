//! Analysis of stored embedding spaces: exact kNN, cleanlab outlier scores, near duplicates, label
//! issues, 2-D projections and the arroy index.
//!
//! `run` reads each space, computes everything outside any write transaction, then writes all of the
//! space's columns and its arroy index in one transaction: a crash or Ctrl-C leaves the previous results.

pub mod drift;
pub mod duplicates;
pub mod knn;
pub mod labels;
pub mod outlier;
pub mod pca;
pub mod procrustes;
pub mod umap;

use std::fmt::Write as _;
use std::time::Instant;

use rayon::prelude::*;
use tch::Device;

use knn::{Knn, KnnOptions, Metric};
use torchlight_store::ann::AnnParams;
use torchlight_store::{Column, SpaceInfo, Store, StoreError, columns};

#[derive(Debug, thiserror::Error)]
pub enum AnalysisError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("libtorch failed during analysis: {0}")]
    Torch(#[from] tch::TchError),
    #[error("analysis cancelled; the store keeps the results of the last completed space")]
    Cancelled,
    #[error("a space needs at least 2 items for neighbours, this one has {n}: ingest more images")]
    TooFewItems { n: usize },
    #[error("no embedding space named '{name}' in the store (it has: {have}); see `torchlight info`")]
    NoSpace { name: String, have: String },
    #[error("the store has no embedding spaces yet: run `torchlight ingest` first")]
    NoSpaces,
}

pub type Result<T, E = AnalysisError> = std::result::Result<T, E>;

/// Progress and cancellation. `progress(stage, done, total)` is called often; `cancel` is polled between blocks.
pub struct Hooks<'a> {
    pub progress: &'a (dyn Fn(&str, usize, usize) + Sync),
    pub cancel: &'a (dyn Fn() -> bool + Sync + Send),
}

impl Hooks<'static> {
    pub fn none() -> Hooks<'static> {
        Hooks { progress: &|_, _, _| {}, cancel: &|| false }
    }
}

/// UMAP options (cosine metric, PCA initial layout).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UmapSettings {
    pub n_neighbors: usize,
    pub min_dist: f32,
    pub seed: u64,
    pub n_epochs: Option<usize>,
}

#[derive(Debug, Clone)]
pub struct AnalysisParams {
    /// Only these spaces (empty: all).
    pub spaces: Vec<String>,
    /// Neighbours stored per item and used for the outlier score (cleanlab: 10).
    pub k: usize,
    /// cleanlab's near-duplicate threshold, a fraction of the space's median nearest-neighbour distance.
    pub near_duplicate_threshold: f32,
    /// Cosine distance under which the nearest neighbour sets the article's `nn_flag`.
    pub duplicate_threshold: f32,
    pub device: Device,
    pub ann: AnnParams,
    /// UMAP settings; None skips UMAP (PCA is always computed).
    pub umap: Option<UmapSettings>,
    /// kNN through the arroy index instead of exact products.
    pub approximate: bool,
    /// Items whose arroy neighbours are compared with exact ones for the recall figure.
    pub recall_sample: usize,
}

impl Default for AnalysisParams {
    fn default() -> Self {
        AnalysisParams {
            spaces: Vec::new(),
            k: outlier::CLEANLAB_K,
            near_duplicate_threshold: duplicates::CLEANLAB_THRESHOLD,
            duplicate_threshold: duplicates::ARTICLE_NN_THRESHOLD,
            device: Device::cuda_if_available(),
            ann: AnnParams::default(),
            umap: Some(UmapSettings { n_neighbors: 15, min_dist: 0.1, seed: 42, n_epochs: None }),
            approximate: false,
            recall_sample: 1000,
        }
    }
}

/// What one space's analysis found and how long it took.
#[derive(Debug, Clone)]
pub struct SpaceReport {
    pub name: String,
    pub n: usize,
    pub dim: usize,
    pub metric: Metric,
    pub device: Device,
    pub approximate: bool,
    pub k: usize,
    /// Most anomalous items first: (id, outlier score).
    pub top_outliers: Vec<(u32, f64)>,
    pub outlier_scale: f64,
    pub near_duplicates: usize,
    pub duplicate_groups: usize,
    /// Items with an exact duplicate (content hash or feature vector).
    pub exact_duplicates: usize,
    /// The median nearest-neighbour distance the near-duplicate radius is relative to, and the radius.
    pub nn_median: f32,
    pub near_duplicate_radius: f32,
    /// Items whose nearest neighbour is within the absolute cosine `nn_threshold` (`nn_flag`).
    pub nn_flagged: usize,
    pub nn_threshold: f32,
    /// None when no label scores were computed; `label_note` says why.
    pub label_issues: Option<usize>,
    pub label_note: Option<String>,
    /// Recall@10 of the arroy index against exact neighbours, on `recall_sample` items.
    pub ann_recall: f64,
    pub recall_sample: usize,
    /// sklearn's `explained_variance_ratio_` of the two PCA components.
    pub pca_explained_variance_ratio: [f64; 2],
    pub timings: Vec<(&'static str, f64)>,
}

#[derive(Debug, Clone, Default)]
pub struct AnalysisReport {
    pub spaces: Vec<SpaceReport>,
    /// Drift of each compared pair of spaces (`drift::pairs`).
    pub drift: Vec<drift::DriftReport>,
}

/// Analyses every selected space of `store` and writes the results. The caller holds the writer lock.
pub fn run(store: &Store, params: &AnalysisParams, hooks: &Hooks) -> Result<AnalysisReport> {
    let (spaces, labels, series) = {
        let rtxn = store.read_txn()?;
        let all = store.spaces(&rtxn)?;
        if all.is_empty() {
            return Err(AnalysisError::NoSpaces);
        }
        for name in &params.spaces {
            if !all.iter().any(|s| &s.name == name) {
                let have = all.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ");
                return Err(AnalysisError::NoSpace { name: name.clone(), have });
            }
        }
        let hashes: Vec<u64> = store.items(&rtxn)?.into_iter().map(|i| i.hash).collect();
        (all, (store.labels(&rtxn)?, store.label_names(&rtxn)?, hashes), store.series(&rtxn)?)
    };
    let mut report = AnalysisReport::default();
    for space in analysis_order(&spaces, series.as_ref())
        .into_iter()
        .filter(|s| params.spaces.is_empty() || params.spaces.contains(&s.name))
    {
        // Projections are aligned to the step before in a series, else to the first space, as stored (this
        // run's or an earlier one): the order above analyses a space's reference before the space.
        let reference = drift::alignment_reference(series.as_ref(), &spaces, &space.name);
        // A checkpoint's UMAP starts from the step before's layout, which it is close to.
        let warm_start = reference.as_ref().is_some_and(|r| drift::same_series(series.as_ref(), r, &space.name));
        let dataset = Dataset { labels: &labels.0, label_names: labels.1.len(), hashes: &labels.2 };
        let alignment = Alignment { reference: reference.as_deref(), warm_start };
        report.spaces.push(run_space(store, space, &dataset, alignment, params, hooks)?);
    }
    report.drift = drift::run(store)?;
    let mut wtxn = store.write_txn()?;
    let settings = serde_json::json!({
        "k": params.k,
        "near_duplicate_threshold": params.near_duplicate_threshold,
        "duplicate_threshold": params.duplicate_threshold,
        "n_trees": params.ann.n_trees,
        "seed": params.ann.seed,
        "approximate": params.approximate,
    });
    store.put_setting(&mut wtxn, "analysis", &settings)?;
    store.commit(wtxn)?;
    Ok(report)
}

/// Spaces by index, except that the members of a series take their slots in step order, so each step's
/// predecessor (its alignment reference) is analysed before it.
fn analysis_order<'a>(spaces: &'a [SpaceInfo], series: Option<&torchlight_store::Series>) -> Vec<&'a SpaceInfo> {
    let mut order: Vec<&SpaceInfo> = spaces.iter().collect();
    order.sort_by_key(|s| s.index);
    let Some(series) = series else { return order };
    let in_series = |s: &SpaceInfo| series.steps.iter().position(|st| st.space == s.name);
    let mut members: Vec<&SpaceInfo> = order.iter().copied().filter(|s| in_series(s).is_some()).collect();
    members.sort_by_key(|s| in_series(s));
    let mut members = members.into_iter();
    order.into_iter().map(|s| if in_series(s).is_some() { members.next().unwrap_or(s) } else { s }).collect()
}

fn f32s(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

/// What a space's projections are aligned to, and whether its UMAP starts from that space's layout.
#[derive(Clone, Copy)]
struct Alignment<'a> {
    reference: Option<&'a str>,
    warm_start: bool,
}

/// What the analysis of every space reads from the items.
#[derive(Clone, Copy)]
struct Dataset<'a> {
    labels: &'a [Option<u32>],
    label_names: usize,
    /// Content hashes: items with equal ones are exact duplicates.
    hashes: &'a [u64],
}

fn run_space(
    store: &Store,
    space: &SpaceInfo,
    dataset: &Dataset,
    alignment: Alignment,
    params: &AnalysisParams,
    hooks: &Hooks,
) -> Result<SpaceReport> {
    let Dataset { labels, label_names, hashes } = *dataset;
    let reference = alignment.reference;
    let mut timings = Vec::new();
    let mut clock = Instant::now();
    let mut lap = |name: &'static str, timings: &mut Vec<(&'static str, f64)>| {
        timings.push((name, clock.elapsed().as_secs_f64()));
        clock = Instant::now();
    };
    let name = space.name.as_str();
    let d = space.dim as usize;
    let (x, probs) = {
        let rtxn = store.read_txn()?;
        let x = store.embedding_matrix(&rtxn, space)?;
        let n = (x.len() / d.max(1)) as u32;
        (x, store.probs_matrix(&rtxn, space, n)?)
    };
    let n = x.len() / d.max(1);
    if n < 2 {
        return Err(AnalysisError::TooFewItems { n });
    }
    lap("read", &mut timings);
    let k = params.k.max(1).min(n - 1);
    let umap_k = params.umap.as_ref().map_or(0, |u| u.n_neighbors.min(n - 1));
    let k_eff = k.max(umap_k);
    let in_space = |stage: &str, done: usize, total: usize| (hooks.progress)(&format!("{name}: {stage}"), done, total);
    let knn_hooks = Hooks { progress: &in_space, cancel: hooks.cancel };
    let opts = KnnOptions::new(k_eff, Metric::Cosine, params.device);

    // The approximate path needs the index before the neighbours; it is committed on its own.
    let (cos_knn, ann_recall, recall_sample) = if params.approximate {
        let mut wtxn = store.write_txn()?;
        store.build_ann(&mut wtxn, space.index, d, &x, params.ann, hooks.cancel)?;
        store.commit(wtxn)?;
        lap("arroy build", &mut timings);
        let knn = ann_knn(store, space.index, n, k_eff, &knn_hooks)?;
        lap("neighbours (arroy)", &mut timings);
        let sample = recall_sample_ids(n, params.recall_sample);
        let exact = knn::exact_knn_of(&x, n, d, &sample, &KnnOptions { k: 10, ..opts }, &knn_hooks)?;
        let approx: Vec<Vec<u32>> = sample.iter().map(|&q| knn.row_ids(q as usize)[..10.min(k_eff)].to_vec()).collect();
        let recall = knn::recall(&rows(&exact), &approx);
        lap("recall check", &mut timings);
        (knn, recall, sample.len())
    } else {
        let knn = knn::exact_knn(&x, n, d, &opts, &knn_hooks)?;
        lap("neighbours (exact)", &mut timings);
        (knn, f64::NAN, 0)
    };

    // cleanlab scores with euclidean distances below 4 dimensions.
    let metric = Metric::cleanlab_default(d);
    let score_knn = match metric {
        Metric::Cosine => cos_knn.truncate(k),
        Metric::Euclidean => knn::exact_knn(&x, n, d, &KnnOptions::new(k, metric, params.device), &knn_hooks)?,
    };
    let scores = outlier::outlier_scores(&score_knn, k, metric);
    let stored = cos_knn.truncate(k);
    // cleanlab's near duplicates come from the graph its outlier score uses; the article's flag is cosine.
    let exact = duplicates::exact_duplicate_sets(&x, d, &hashes[..n.min(hashes.len())]);
    let exact_d = duplicates::exact_distances(&score_knn, &x, d, metric);
    let dups = duplicates::near_duplicates(&score_knn, &exact_d, &exact, params.near_duplicate_threshold);
    let nn_flags = duplicates::nn_flags(&stored, params.duplicate_threshold);
    let nn_flagged = nn_flags.iter().filter(|&&f| f == 1).count();
    lap("scores", &mut timings);

    let (label_cols, label_issues, label_note) = match (&probs, space.num_classes as usize) {
        (None, _) => (None, None, Some("no classifier probabilities in this space".to_string())),
        (Some(_), c) if c != label_names => (
            None,
            None,
            Some(format!("the model has {c} classes, the dataset {label_names} label names: no label scores")),
        ),
        (Some(_), _) if labels.iter().all(Option::is_none) => {
            (None, None, Some("the dataset has no labels".to_string()))
        }
        (Some(p), c) => {
            let ls = labels::label_scores(p, c, &labels[..n.min(labels.len())]);
            let count = ls.issue_count;
            (Some(ls), Some(count), None)
        }
    };
    lap("labels", &mut timings);

    (hooks.progress)(&format!("{name}: projections"), 0, 1);
    let pca = pca::pca_2d(&x, n, d);
    lap("pca", &mut timings);
    let umap_layout = match &params.umap {
        Some(u) if umap_k >= 2 => {
            let g = cos_knn.truncate(umap_k);
            let previous = match reference.filter(|_| alignment.warm_start) {
                Some(r) => {
                    let rtxn = store.read_txn()?;
                    match store.column(&rtxn, r, columns::UMAP)? {
                        Some(Column::F32 { width: 2, values }) if values.len() == 2 * n => Some(values),
                        _ => None,
                    }
                }
                None => None,
            };
            let up = umap::UmapParams {
                n_neighbors: u.n_neighbors,
                min_dist: u.min_dist,
                seed: u.seed,
                n_epochs: u.n_epochs,
                ..Default::default()
            };
            let up = if previous.is_some() { up.warm_start(n) } else { up };
            let layout = umap::umap_2d(&g.ids, &g.dists, n, g.k, &up, previous.as_deref().unwrap_or(&pca.coords));
            lap(if previous.is_some() { "umap (warm start)" } else { "umap" }, &mut timings);
            Some(layout)
        }
        _ => None,
    };
    let aligned = |coords: Vec<f32>, column: &str| -> Result<Vec<f32>> {
        let Some(reference) = reference else { return Ok(coords) };
        let rtxn = store.read_txn()?;
        match store.column(&rtxn, reference, column)? {
            Some(Column::F32 { width: 2, values }) if values.len() == coords.len() => {
                Ok(procrustes::align(&values, &coords, n))
            }
            _ => Ok(coords),
        }
    };
    let pca_coords = aligned(pca.coords, columns::PCA)?;
    let umap_coords = umap_layout.map(|l| aligned(l, columns::UMAP)).transpose()?;

    let mut wtxn = store.write_txn()?;
    let f1 = |values: Vec<f32>| Column::F32 { width: 1, values };
    let u1 = |values: Vec<u32>| Column::U32 { width: 1, values };
    store.put_column(&mut wtxn, name, columns::OUTLIER_SCORE, &f1(f32s(&scores.scores)))?;
    store.put_column(&mut wtxn, name, columns::KNN_MEAN_DISTANCE, &f1(f32s(&scores.mean_distance)))?;
    store.put_column(&mut wtxn, name, columns::NN_ID, &u1((0..n).map(|i| stored.row_ids(i)[0]).collect()))?;
    store.put_column(&mut wtxn, name, columns::NN_DISTANCE, &f1((0..n).map(|i| stored.row_dists(i)[0]).collect()))?;
    store.put_column(
        &mut wtxn,
        name,
        columns::KNN_IDS,
        &Column::U32 { width: k as u32, values: stored.ids.clone() },
    )?;
    store.put_column(
        &mut wtxn,
        name,
        columns::KNN_DISTANCES,
        &Column::F32 { width: k as u32, values: stored.dists.clone() },
    )?;
    store.put_column(&mut wtxn, name, columns::NEAR_DUPLICATE, &u1(dups.flags))?;
    store.put_column(&mut wtxn, name, columns::NEAR_DUPLICATE_SCORE, &f1(dups.scores))?;
    store.put_column(&mut wtxn, name, columns::DUPLICATE_GROUP, &u1(dups.groups))?;
    store.put_column(&mut wtxn, name, columns::NN_FLAG, &u1(nn_flags))?;
    let label_names_cols = [columns::PRED, columns::CONFIDENCE, columns::LABEL_QUALITY, columns::LABEL_ISSUE];
    match label_cols {
        Some(ls) => {
            store.put_column(&mut wtxn, name, columns::PRED, &u1(ls.pred))?;
            store.put_column(&mut wtxn, name, columns::CONFIDENCE, &f1(ls.confidence))?;
            store.put_column(&mut wtxn, name, columns::LABEL_QUALITY, &f1(ls.quality))?;
            store.put_column(&mut wtxn, name, columns::LABEL_ISSUE, &u1(ls.issue))?;
        }
        None => {
            // Results of an earlier run with other probabilities or labels would be stale.
            for col in label_names_cols {
                store.delete_column(&mut wtxn, name, col)?;
            }
        }
    }
    store.put_column(&mut wtxn, name, columns::PCA, &Column::F32 { width: 2, values: pca_coords })?;
    if let Some(u) = umap_coords {
        store.put_column(&mut wtxn, name, columns::UMAP, &Column::F32 { width: 2, values: u })?;
    }
    if !params.approximate {
        store.build_ann(&mut wtxn, space.index, d, &x, params.ann, hooks.cancel)?;
        lap("arroy build", &mut timings);
    }
    store.commit(wtxn)?;
    lap("write", &mut timings);

    let (ann_recall, recall_sample) = if params.approximate {
        (ann_recall, recall_sample)
    } else {
        let sample = recall_sample_ids(n, params.recall_sample);
        let exact10 = if k_eff >= 10.min(n - 1) {
            sample.iter().map(|&q| cos_knn.row_ids(q as usize)[..10.min(n - 1)].to_vec()).collect()
        } else {
            rows(&knn::exact_knn_of(&x, n, d, &sample, &KnnOptions { k: 10, ..opts }, &knn_hooks)?)
        };
        let approx = ann_rows(store, space.index, &sample, 10.min(n - 1))?;
        let recall = knn::recall(&exact10, &approx);
        lap("arroy recall", &mut timings);
        (recall, sample.len())
    };

    let top = outlier::most_anomalous(&scores.scores, 10);
    Ok(SpaceReport {
        name: name.to_string(),
        n,
        dim: d,
        metric,
        device: params.device,
        approximate: params.approximate,
        k,
        top_outliers: top.iter().map(|&i| (i, scores.scores[i as usize])).collect(),
        outlier_scale: scores.scale,
        near_duplicates: dups.flagged,
        duplicate_groups: dups.group_count,
        exact_duplicates: dups.exact,
        nn_median: dups.median,
        near_duplicate_radius: dups.radius,
        nn_flagged,
        nn_threshold: params.duplicate_threshold,
        label_issues,
        label_note,
        ann_recall,
        recall_sample,
        pca_explained_variance_ratio: pca.explained_variance_ratio,
        timings,
    })
}

fn rows(knn: &Knn) -> Vec<Vec<u32>> {
    (0..knn.n).map(|i| knn.row_ids(i).to_vec()).collect()
}

/// Evenly spread item ids (deterministic, so recall figures repeat run to run).
pub fn recall_sample_ids(n: usize, sample: usize) -> Vec<u32> {
    let s = sample.clamp(1, n);
    (0..s).map(|i| (i * n / s) as u32).collect()
}

/// arroy neighbours of the given items, in parallel with one read transaction per task.
fn ann_rows(store: &Store, space: u16, ids: &[u32], k: usize) -> Result<Vec<Vec<u32>>> {
    let chunks: Vec<Result<Vec<Vec<u32>>>> = ids
        .par_chunks(64)
        .map(|chunk| {
            let rtxn = store.read_txn()?;
            chunk
                .iter()
                .map(|&id| Ok(store.ann_by_item(&rtxn, space, id, k, None)?.into_iter().map(|(j, _)| j).collect()))
                .collect()
        })
        .collect();
    let mut out = Vec::with_capacity(ids.len());
    for c in chunks {
        out.extend(c?);
    }
    Ok(out)
}

/// kNN of every item through the arroy index (distances as cosine `1 - cos`), padded with u32::MAX / inf
/// when the index returns fewer.
fn ann_knn(store: &Store, space: u16, n: usize, k: usize, hooks: &Hooks) -> Result<Knn> {
    let ids: Vec<u32> = (0..n as u32).collect();
    let mut out_ids = vec![u32::MAX; n * k];
    let mut out_d = vec![f32::INFINITY; n * k];
    let per = 256;
    let total = n.div_ceil(per);
    let done = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<Result<()>> = out_ids
        .par_chunks_mut(per * k)
        .zip(out_d.par_chunks_mut(per * k))
        .zip(ids.par_chunks(per))
        .map(|((oi, od), chunk)| {
            if (hooks.cancel)() {
                return Err(AnalysisError::Cancelled);
            }
            let rtxn = store.read_txn()?;
            for (r, &id) in chunk.iter().enumerate() {
                for (c, (j, dist)) in store.ann_by_item(&rtxn, space, id, k, None)?.into_iter().enumerate() {
                    oi[r * k + c] = j;
                    od[r * k + c] = dist;
                }
            }
            let d = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            (hooks.progress)("arroy neighbours", d, total);
            Ok(())
        })
        .collect();
    results.into_iter().collect::<Result<Vec<()>>>()?;
    Ok(Knn { n, k, ids: out_ids, dists: out_d })
}

/// A few lines per space for the terminal.
pub fn summary(report: &AnalysisReport) -> String {
    let mut s = String::new();
    for sp in &report.spaces {
        let how = if sp.approximate { "approximate (arroy)" } else { "exact" };
        let _ = writeln!(
            s,
            "space {}: {} items x {} dims, {} kNN k={} on {:?}, outlier metric {:?}",
            sp.name, sp.n, sp.dim, how, sp.k, sp.device, sp.metric
        );
        let tops: Vec<String> = sp.top_outliers.iter().map(|&(id, score)| format!("{id} ({score:.2e})")).collect();
        let _ = writeln!(s, "  top outliers (score; 1 = typical): {}", tops.join(", "));
        let _ = writeln!(
            s,
            "  near duplicates: {} items in {} groups, {} of them exact (neighbour under {:.2e} = {:.2} x the median \
             nn distance)",
            sp.near_duplicates,
            sp.duplicate_groups,
            sp.exact_duplicates,
            sp.near_duplicate_radius,
            sp.near_duplicate_radius / sp.nn_median,
        );
        let _ = writeln!(s, "  nn_flag (nn within cosine {}): {}", sp.nn_threshold, sp.nn_flagged);
        match (sp.label_issues, &sp.label_note) {
            (Some(c), _) => {
                let _ = writeln!(s, "  label issues (confident learning): {c}");
            }
            (None, Some(note)) => {
                let _ = writeln!(s, "  label issues: {note}");
            }
            (None, None) => {}
        }
        let _ = writeln!(s, "  arroy recall@10 vs exact: {:.4} on {} items", sp.ann_recall, sp.recall_sample);
        let [r1, r2] = sp.pca_explained_variance_ratio;
        let _ = writeln!(s, "  PCA explained variance ratio: {r1:.3}, {r2:.3}");
        let times: Vec<String> = sp.timings.iter().map(|(k, v)| format!("{k} {v:.2}s")).collect();
        let _ = writeln!(s, "  timings: {}", times.join(", "));
    }
    for d in &report.drift {
        let under = if d.pair.under.is_empty() { String::new() } else { format!(" (columns under {})", d.pair.under) };
        let _ = writeln!(s, "drift {} -> {}{under}:", d.pair.earlier, d.pair.later);
        if let Some(j) = d.mean_jaccard {
            let _ = writeln!(s, "  mean kNN Jaccard {j:.3} (1 = same neighbours)");
        }
        if let Some(p) = d.projection {
            let moved: Vec<String> = d.most_moved.iter().map(|&(id, m)| format!("{id} ({m:.2})")).collect();
            let _ = writeln!(s, "  moved most in {p}: {}", moved.join(", "));
        }
        if !d.most_rank_gained.is_empty() {
            let ranks: Vec<String> = d.most_rank_gained.iter().map(|&(id, r)| format!("{id} ({r:+})")).collect();
            let _ = writeln!(s, "  became most anomalous (outlier rank change): {}", ranks.join(", "));
        }
    }
    s
}
