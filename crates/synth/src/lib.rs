//! Synthetic stores: a labelled, clustered dataset written through the store API exactly as ingest and
//! analysis write a real one (items, PNG thumbnails, label names, two spaces with embeddings and
//! probabilities, every analysis column, an arroy index). Tests and the 1M-item browse benchmark use it,
//! so they need neither a model nor a download.
//!
//! `series_store` writes a fine-tuning run the same way: the foundation and its checkpoints as spaces in
//! step order, drift columns between them and the `Series` record with a loss log (the browser's drift view).
//!
//! Geometry: class `c` is a Gaussian blob around a point on a circle; a fraction of items are uniform
//! outliers, a fraction carry a wrong label (the point sits in its true class), and a fraction are near
//! copies of the previous item. Neighbours are exact kNN in the 2-D layout, so every column agrees with
//! every other one (the nearest neighbour of a near duplicate is its original, flagged items have low
//! label quality, outliers have low outlier scores).

use std::io::Cursor;
use std::path::Path;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use torchlight_store::ann::AnnParams;
use torchlight_store::{
    Column, DatasetInfo, Item, LossPoint, ModelSpec, Result, Series, SeriesStep, SpaceInfo, Store, columns,
};

/// What to generate. `Default` is a small store for tests.
#[derive(Debug, Clone)]
pub struct SynthParams {
    pub items: u32,
    pub classes: u32,
    /// Embedding width of each space (at least 3).
    pub dim: u32,
    /// Neighbours kept per item (`knn_ids` / `knn_distances` width).
    pub k: u32,
    /// Items `0..thumbnails` get a PNG thumbnail (thumbnails of a million items only cost time).
    pub thumbnails: u32,
    /// Write embeddings and probabilities (ingest's output); needed for the arroy index.
    pub embeddings: bool,
    /// Build an arroy index per space (needs `embeddings`).
    pub ann: bool,
    pub outlier_fraction: f32,
    pub label_noise: f32,
    pub duplicate_fraction: f32,
    pub seed: u64,
    /// The two spaces' names, in order; `SPACES` makes the article's foundation/fine-tuned pair.
    pub spaces: [&'static str; 2],
    /// Write the drift columns from the first space to the second under "", as analysis does for the pair.
    pub drift: bool,
}

impl Default for SynthParams {
    fn default() -> Self {
        SynthParams {
            items: 500,
            classes: 10,
            dim: 8,
            k: 10,
            thumbnails: u32::MAX,
            embeddings: true,
            ann: true,
            outlier_fraction: 0.02,
            label_noise: 0.03,
            duplicate_fraction: 0.01,
            seed: 7,
            spaces: SPACES,
            drift: false,
        }
    }
}

/// Space names as ingest writes them: the foundation model first, the fine-tuned one second.
pub const SPACES: [&str; 2] = ["foundation", "finetuned"];

const FASHION: [&str; 10] =
    ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"];

/// Class names: Fashion-MNIST's for up to ten classes, `class{i}` beyond.
pub fn label_names(classes: u32) -> Vec<String> {
    (0..classes as usize).map(|i| FASHION.get(i).map_or_else(|| format!("class{i}"), |s| s.to_string())).collect()
}

/// A synthetic model's space; `class_names` non-empty gives it a classifier head over those classes.
fn space_info(name: &str, source: &str, dim: u32, class_names: &[String]) -> SpaceInfo {
    SpaceInfo {
        name: name.to_string(),
        index: 0,
        dim,
        model: ModelSpec {
            kind: "synthetic".into(),
            source: source.to_string(),
            fingerprint: format!("synth-{name}"),
            pooling: "cls".into(),
            image_size: 32,
        },
        num_classes: class_names.len() as u32,
        class_names: class_names.to_vec(),
    }
}

/// The generated ground truth, kept for tests that compare what the browser shows with what was written.
#[derive(Debug, Clone)]
pub struct Truth {
    /// Given (possibly wrong) label per item.
    pub label: Vec<u32>,
    /// Class the item really belongs to (what a classifier predicts).
    pub true_class: Vec<u32>,
    pub outlier: Vec<bool>,
    /// Per space: 2-D position (x, y interleaved).
    pub pos: [Vec<f32>; 2],
}

fn gauss(rng: &mut StdRng) -> f32 {
    // Box-Muller; rand_distr is not a dependency.
    let u1: f32 = rng.random_range(f32::EPSILON..1.0);
    let u2: f32 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
}

fn centre(c: u32, classes: u32) -> (f32, f32) {
    let a = std::f32::consts::TAU * c as f32 / classes.max(1) as f32;
    (10.0 * a.cos(), 10.0 * a.sin())
}

/// Generates the ground truth without touching a store.
pub fn truth(p: &SynthParams) -> Truth {
    let n = p.items as usize;
    let mut rng = StdRng::seed_from_u64(p.seed);
    let mut label = Vec::with_capacity(n);
    let mut true_class = Vec::with_capacity(n);
    let mut outlier = Vec::with_capacity(n);
    let mut found = Vec::with_capacity(2 * n);
    let mut fine = Vec::with_capacity(2 * n);
    for i in 0..n {
        let r: f32 = rng.random();
        let c = rng.random_range(0..p.classes.max(1));
        let (cx, cy) = centre(c, p.classes);
        let (mut x, mut y) = (cx + 1.3 * gauss(&mut rng), cy + 1.3 * gauss(&mut rng));
        let mut given = c;
        let mut is_outlier = false;
        if r < p.outlier_fraction {
            x = rng.random_range(-16.0..16.0);
            y = rng.random_range(-16.0..16.0);
            is_outlier = true;
        } else if r < p.outlier_fraction + p.label_noise && p.classes > 1 {
            given = (c + rng.random_range(1..p.classes)) % p.classes;
        } else if r < p.outlier_fraction + p.label_noise + p.duplicate_fraction && i > 0 {
            // A near copy of the previous item, same label: what a re-saved JPEG looks like.
            x = found[2 * (i - 1)] + 0.002 * gauss(&mut rng);
            y = found[2 * (i - 1) + 1] + 0.002 * gauss(&mut rng);
            given = label[i - 1];
            true_class.push(true_class[i - 1]);
            label.push(given);
            outlier.push(outlier[i - 1]);
            found.extend([x, y]);
            fine.extend([fine[2 * (i - 1)], fine[2 * (i - 1) + 1]]);
            continue;
        }
        label.push(given);
        true_class.push(c);
        outlier.push(is_outlier);
        found.extend([x, y]);
        // Fine-tuning tightens the classes; the layout stays aligned with the foundation one.
        let (fx, fy) = if is_outlier { (x * 0.8, y * 0.8) } else { (cx + 0.45 * (x - cx), cy + 0.45 * (y - cy)) };
        fine.extend([fx, fy]);
    }
    Truth { label, true_class, outlier, pos: [found, fine] }
}

/// Exact k nearest neighbours in 2-D (self excluded), through a uniform grid searched in growing rings.
/// Returns ids and distances, `k` per item, nearest first.
pub fn knn_2d(pos: &[f32], k: usize) -> (Vec<u32>, Vec<f32>) {
    let n = pos.len() / 2;
    let k = k.min(n.saturating_sub(1));
    let (mut x0, mut y0, mut x1, mut y1) = (f32::MAX, f32::MAX, f32::MIN, f32::MIN);
    for p in pos.chunks_exact(2) {
        x0 = x0.min(p[0]);
        y0 = y0.min(p[1]);
        x1 = x1.max(p[0]);
        y1 = y1.max(p[1]);
    }
    let g = ((n as f64 / 4.0).sqrt().ceil() as usize).clamp(1, 2048);
    let h = ((x1 - x0).max(y1 - y0).max(1e-6) / g as f32) * 1.0001;
    let cell = |x: f32, y: f32| (((x - x0) / h) as usize).min(g - 1) + g * (((y - y0) / h) as usize).min(g - 1);
    let mut start = vec![0u32; g * g + 1];
    for p in pos.chunks_exact(2) {
        start[cell(p[0], p[1]) + 1] += 1;
    }
    for i in 0..g * g {
        start[i + 1] += start[i];
    }
    let mut fill = start.clone();
    let mut members = vec![0u32; n];
    for (i, p) in pos.chunks_exact(2).enumerate() {
        let c = cell(p[0], p[1]);
        members[fill[c] as usize] = i as u32;
        fill[c] += 1;
    }
    let mut ids = Vec::with_capacity(n * k);
    let mut dists = Vec::with_capacity(n * k);
    let mut best: Vec<(f32, u32)> = Vec::with_capacity(k + 1);
    for i in 0..n {
        let (px, py) = (pos[2 * i], pos[2 * i + 1]);
        let c = cell(px, py);
        let (cx, cy) = ((c % g) as isize, (c / g) as isize);
        best.clear();
        let mut ring = 0isize;
        loop {
            for yy in (cy - ring)..=(cy + ring) {
                for xx in (cx - ring)..=(cx + ring) {
                    let on_ring = (yy - cy).abs() == ring || (xx - cx).abs() == ring;
                    if !on_ring || xx < 0 || yy < 0 || xx >= g as isize || yy >= g as isize {
                        continue;
                    }
                    let cc = yy as usize * g + xx as usize;
                    for &j in &members[start[cc] as usize..start[cc + 1] as usize] {
                        if j as usize == i {
                            continue;
                        }
                        let d = ((pos[2 * j as usize] - px).powi(2) + (pos[2 * j as usize + 1] - py).powi(2)).sqrt();
                        if best.len() < k || d < best[k - 1].0 {
                            let at = best.partition_point(|&(bd, bj)| (bd, bj) < (d, j));
                            best.insert(at, (d, j));
                            best.truncate(k);
                        }
                    }
                }
            }
            // Everything outside ring r is at least r*h away.
            let done = best.len() == k && best[k - 1].0 <= ring as f32 * h;
            if done || ring as usize > g {
                break;
            }
            ring += 1;
        }
        ids.extend(best.iter().map(|b| b.1));
        dists.extend(best.iter().map(|b| b.0));
    }
    (ids, dists)
}

/// A small picture that says what it is: the class colour with `label + 1` stripes; outliers are noise.
pub fn thumbnail_png(id: u32, class: u32, classes: u32, outlier: bool) -> Vec<u8> {
    let hue = class as f32 / classes.max(1) as f32;
    let (r, g, b) = hsv(hue, 0.7, 0.95);
    let stripes = class + 1;
    let img = image::RgbImage::from_fn(32, 32, |x, y| {
        if outlier {
            let v = (x.wrapping_mul(73) ^ y.wrapping_mul(151) ^ id.wrapping_mul(2654435761)) as u8;
            return image::Rgb([v, v.wrapping_mul(3), v.wrapping_mul(7)]);
        }
        let band = (x * stripes * 2 / 32).is_multiple_of(2);
        let inside = (4..28).contains(&y);
        if band && inside { image::Rgb([r, g, b]) } else { image::Rgb([r / 5, g / 5, b / 5]) }
    });
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).expect("PNG encoding into memory cannot fail");
    out.into_inner()
}

fn hsv(h: f32, s: f32, v: f32) -> (u8, u8, u8) {
    let i = (h * 6.0).floor();
    let f = h * 6.0 - i;
    let (p, q, t) = (v * (1.0 - s), v * (1.0 - f * s), v * (1.0 - (1.0 - f) * s));
    let (r, g, b) = match i as i32 % 6 {
        0 => (v, t, p),
        1 => (q, v, p),
        2 => (p, v, t),
        3 => (p, q, v),
        4 => (t, p, v),
        _ => (v, p, q),
    };
    ((r * 255.0) as u8, (g * 255.0) as u8, (b * 255.0) as u8)
}

fn embedding(x: f32, y: f32, dim: usize, rng: &mut StdRng) -> Vec<f32> {
    let mut e = vec![x / 10.0, y / 10.0, 1.5];
    e.extend((3..dim).map(|_| 0.02 * gauss(rng)));
    e
}

/// Distances in the 2-D layout are scaled to the size of cosine distances.
const DIST_SCALE: f32 = 0.05;
/// Near copies sit within 0.002 of their original; real neighbours are farther apart than this. The
/// article's absolute `nn_flag` cuts here.
const DUPLICATE_2D: f32 = 0.02;
/// cleanlab's near-duplicate threshold, a fraction of the median nearest-neighbour distance.
const NEAR_DUPLICATE_FRACTION: f32 = 0.13;

/// Writes a synthetic store into `dir` (created if needed) and returns it with the ground truth.
pub fn generate(dir: &Path, p: &SynthParams) -> Result<(Store, Truth)> {
    let store = Store::create_or_open(dir)?;
    let t = truth(p);
    let n = p.items as usize;
    let names = label_names(p.classes);
    let mut rng = StdRng::seed_from_u64(p.seed ^ 0x5eed);
    let dim = p.dim.max(3);
    let mut dataset = DatasetInfo {
        source: format!("synthetic:{}", p.items),
        format: "synthetic".into(),
        fingerprint: format!("synth-{}-{}-{}", p.items, p.classes, p.seed),
        complete: false,
    };
    let mut w = store.write_txn()?;
    store.put_dataset(&mut w, &dataset)?;
    store.put_label_names(&mut w, &names)?;
    let mut spaces = Vec::new();
    for (s, name) in p.spaces.iter().enumerate() {
        let head = s == 1;
        let classes = if head { names.as_slice() } else { &[] };
        spaces.push(store.put_space(&mut w, space_info(name, &format!("synth/{name}"), dim, classes))?);
    }
    store.commit(w)?;

    // Items, thumbnails, embeddings and probabilities in batches, as ingest commits them.
    const BATCH: usize = 20_000;
    for chunk in (0..n).collect::<Vec<_>>().chunks(BATCH) {
        let mut w = store.write_txn()?;
        for &i in chunk {
            let id = i as u32;
            let item = Item {
                source: format!("synth/{}/{id:07}.png", names[t.true_class[i] as usize]),
                label: Some(t.label[i]),
                width: 32,
                height: 32,
                hash: u64::from(id).wrapping_mul(0x9e37_79b9_7f4a_7c15),
            };
            store.put_item(&mut w, id, &item)?;
            if id < p.thumbnails {
                store.put_thumbnail(&mut w, id, &thumbnail_png(id, t.true_class[i], p.classes, t.outlier[i]))?;
            }
            if p.embeddings {
                for (s, sp) in spaces.iter().enumerate() {
                    let e = embedding(t.pos[s][2 * i], t.pos[s][2 * i + 1], dim as usize, &mut rng);
                    store.put_embedding(&mut w, sp.index, id, &e)?;
                }
                let probs = class_probs(&t, i, p.classes);
                store.put_probs(&mut w, spaces[1].index, id, &probs)?;
            }
        }
        store.put_cursor(&mut w, "items", (chunk[chunk.len() - 1] + 1) as u64)?;
        store.commit(w)?;
    }
    // Marked complete once every item is in, as ingest does (this also writes the label column).
    dataset.complete = true;
    let mut w = store.write_txn()?;
    store.put_dataset(&mut w, &dataset)?;
    store.commit(w)?;

    // Analysis columns, one write per space, as analysis commits them.
    let mut analysed = Vec::new();
    for (s, sp) in spaces.iter().enumerate() {
        analysed.push(put_analysis(&store, sp, &t.pos[s], &t, p)?);
    }
    if p.drift {
        put_drift(&store, "", (&analysed[0], &t.pos[0]), (&analysed[1], &t.pos[1]))?;
    }

    if p.embeddings && p.ann && n > 1 {
        for sp in &spaces {
            let r = store.read_txn()?;
            let matrix = store.embedding_matrix(&r, sp)?;
            drop(r);
            let mut w = store.write_txn()?;
            let params = AnnParams { n_trees: 8, seed: p.seed };
            store.build_ann(&mut w, sp.index, dim as usize, &matrix, params, &|| false)?;
            store.commit(w)?;
        }
    }
    Ok((store, t))
}

/// A fine-tuning run made up: the checkpoints' spaces in step order and what the series was made from.
#[derive(Debug, Clone)]
pub struct SeriesTruth {
    pub truth: Truth,
    /// Space name and training step of each checkpoint, the foundation first at step 0.
    pub steps: Vec<(String, u64)>,
    /// Per step: the 2-D positions written as its projection (x, y interleaved).
    pub pos: Vec<Vec<f32>>,
}

/// Training steps between two checkpoints of `series_store`; the loss is logged every half of it.
pub const SERIES_STEP: u64 = 10;

/// Where item `i` sits at fraction `f` (0 = foundation, 1 = last checkpoint) of a made-up fine-tuning run.
/// Classes tighten steadily; an item with a wrong label is pulled into that label's class in the second
/// half, as a network memorising its training labels does, so those items move most.
fn series_position(t: &Truth, classes: u32, i: usize, f: f32) -> (f32, f32) {
    let ease = f * f * (3.0 - 2.0 * f);
    let (fx, fy) = (t.pos[0][2 * i], t.pos[0][2 * i + 1]);
    let (tx, ty) = (t.pos[1][2 * i], t.pos[1][2 * i + 1]);
    let (x, y) = (fx + ease * (tx - fx), fy + ease * (ty - fy));
    if t.label[i] == t.true_class[i] || t.outlier[i] || f <= 0.5 {
        return (x, y);
    }
    let (cx, cy) = centre(t.true_class[i], classes);
    let (lx, ly) = centre(t.label[i], classes);
    let pull = (f - 0.5) * 2.0;
    (x + pull * (lx - cx), y + pull * (ly - cy))
}

/// Jaccard overlap of two items' neighbour sets (`k` ids each).
fn jaccard(a: &[u32], b: &[u32]) -> f32 {
    let shared = a.iter().filter(|x| b.contains(x)).count();
    let union = a.len() + b.len() - shared;
    if union == 0 { 1.0 } else { shared as f32 / union as f32 }
}

/// Each item's rank by outlier score, 0 = most anomalous.
fn outlier_ranks(score: &[f32]) -> Vec<f32> {
    let mut order: Vec<usize> = (0..score.len()).collect();
    order.sort_by(|&a, &b| score[a].total_cmp(&score[b]).then(a.cmp(&b)));
    let mut rank = vec![0.0; score.len()];
    for (r, &i) in order.iter().enumerate() {
        rank[i] = r as f32;
    }
    rank
}

/// The three drift columns from `a` (earlier) to `b` (later), written under `space`.
fn put_drift(store: &Store, space: &str, a: (&Analysed, &[f32]), b: (&Analysed, &[f32])) -> Result<()> {
    let ((a, pa), (b, pb)) = (a, b);
    let n = pa.len() / 2;
    let jac: Vec<f32> =
        (0..n).map(|i| jaccard(&a.knn[i * a.k..(i + 1) * a.k], &b.knn[i * b.k..(i + 1) * b.k])).collect();
    let moved: Vec<f32> =
        (0..n).map(|i| ((pb[2 * i] - pa[2 * i]).powi(2) + (pb[2 * i + 1] - pa[2 * i + 1]).powi(2)).sqrt()).collect();
    let (ra, rb) = (outlier_ranks(&a.outlier_score), outlier_ranks(&b.outlier_score));
    let rank: Vec<f32> = rb.iter().zip(&ra).map(|(b, a)| b - a).collect();
    let mut w = store.write_txn()?;
    for (name, values) in
        [(columns::DRIFT_KNN_JACCARD, jac), (columns::DRIFT_MOVEMENT, moved), (columns::DRIFT_RANK_CHANGE, rank)]
    {
        store.put_column(&mut w, space, name, &Column::F32 { width: 1, values })?;
    }
    store.commit(w)
}

/// A store holding a fine-tuning series as `torchlight ingest --checkpoints` and its analysis write one:
/// `steps` spaces (at least 2: the foundation at step 0, then `step-10`, `step-20`, ...) whose layouts drift
/// from the foundation's clusters to tighter ones, every space's analysis columns and aligned projections,
/// the drift columns between consecutive steps (under each step's space) and between the first and the
/// last (under ""), and the `Series` record with a decreasing training loss logged every 5 steps.
pub fn series_store(dir: &Path, items: u32, steps: u32) -> Result<(Store, SeriesTruth)> {
    let p = SynthParams { items, ann: false, ..SynthParams::default() };
    let store = Store::create_or_open(dir)?;
    let t = truth(&p);
    let n = items as usize;
    let steps = steps.max(2) as usize;
    let names = label_names(p.classes);
    let series: Vec<(String, u64)> = (0..steps)
        .map(|s| {
            let step = s as u64 * SERIES_STEP;
            (if s == 0 { "foundation".to_string() } else { format!("step-{step}") }, step)
        })
        .collect();
    let pos: Vec<Vec<f32>> = (0..steps)
        .map(|s| {
            let f = s as f32 / (steps - 1) as f32;
            (0..n).flat_map(|i| <[f32; 2]>::from(series_position(&t, p.classes, i, f))).collect()
        })
        .collect();
    let mut dataset = DatasetInfo {
        source: format!("synthetic-series:{items}"),
        format: "synthetic".into(),
        fingerprint: format!("synth-series-{items}-{steps}"),
        complete: false,
    };
    let mut w = store.write_txn()?;
    store.put_dataset(&mut w, &dataset)?;
    store.put_label_names(&mut w, &names)?;
    let mut spaces = Vec::new();
    for (s, (name, _)) in series.iter().enumerate() {
        let head = s > 0;
        let classes = if head { names.as_slice() } else { &[] };
        spaces.push(store.put_space(&mut w, space_info(name, &format!("synth/run/{name}"), p.dim, classes))?);
    }
    let mut rng = StdRng::seed_from_u64(p.seed ^ 0x5e1e5);
    for i in 0..n {
        let id = i as u32;
        let item = Item {
            source: format!("synth/{}/{id:07}.png", names[t.true_class[i] as usize]),
            label: Some(t.label[i]),
            width: 32,
            height: 32,
            hash: u64::from(id).wrapping_mul(0x9e37_79b9_7f4a_7c15),
        };
        store.put_item(&mut w, id, &item)?;
        store.put_thumbnail(&mut w, id, &thumbnail_png(id, t.true_class[i], p.classes, t.outlier[i]))?;
        for (sp, pos) in spaces.iter().zip(&pos) {
            store.put_embedding(
                &mut w,
                sp.index,
                id,
                &embedding(pos[2 * i], pos[2 * i + 1], p.dim as usize, &mut rng),
            )?;
            if sp.num_classes > 0 {
                store.put_probs(&mut w, sp.index, id, &class_probs(&t, i, p.classes))?;
            }
        }
    }
    store.put_cursor(&mut w, "items", n as u64)?;
    store.commit(w)?;
    dataset.complete = true;
    let mut w = store.write_txn()?;
    store.put_dataset(&mut w, &dataset)?;
    store.commit(w)?;

    let mut analysed = Vec::new();
    for (sp, pos) in spaces.iter().zip(&pos) {
        analysed.push(put_analysis(&store, sp, pos, &t, &p)?);
    }
    for s in 1..steps {
        put_drift(&store, &series[s].0, (&analysed[s - 1], &pos[s - 1]), (&analysed[s], &pos[s]))?;
    }
    put_drift(&store, "", (&analysed[0], &pos[0]), (&analysed[steps - 1], &pos[steps - 1]))?;

    let last = series[steps - 1].1;
    let losses = (1..=last / (SERIES_STEP / 2))
        .map(|k| {
            let step = k * SERIES_STEP / 2;
            let x = step as f64 / last.max(1) as f64;
            LossPoint { step, loss: 0.12 + 2.1 * (-4.0 * x).exp() + 0.04 * (step as f64).sin() }
        })
        .collect();
    let record = Series {
        steps: series.iter().map(|(space, step)| SeriesStep { space: space.clone(), step: *step }).collect(),
        losses,
        finetuned: None,
    };
    let mut w = store.write_txn()?;
    store.put_series(&mut w, &record)?;
    store.commit(w)?;
    Ok((store, SeriesTruth { truth: t, steps: series, pos }))
}

/// What `put_analysis` computed that drift between spaces is measured with.
struct Analysed {
    /// k nearest neighbours per item, `k` each.
    knn: Vec<u32>,
    k: usize,
    outlier_score: Vec<f32>,
}

/// Writes one space's analysis columns for items at the 2-D positions `pos`, in one write, as analysis
/// commits them.
fn put_analysis(store: &Store, sp: &SpaceInfo, pos: &[f32], t: &Truth, p: &SynthParams) -> Result<Analysed> {
    let n = pos.len() / 2;
    let (ids, d) = knn_2d(pos, p.k as usize);
    let k = ids.len().checked_div(n).unwrap_or(0);
    let dist: Vec<f32> = d.iter().map(|v| v * DIST_SCALE).collect();
    let mean: Vec<f32> = (0..n).map(|i| dist[i * k..(i + 1) * k].iter().sum::<f32>() / k.max(1) as f32).collect();
    let typical = {
        let mut m = mean.clone();
        m.sort_unstable_by(f32::total_cmp);
        m.get(n / 2).copied().unwrap_or(1.0).max(1e-6)
    };
    let score: Vec<f32> = mean.iter().map(|m| (-m / (4.0 * typical)).exp()).collect();
    let nn_id: Vec<u32> = (0..n).map(|i| ids.get(i * k).copied().unwrap_or(i as u32)).collect();
    let nn_d: Vec<f32> = (0..n).map(|i| dist.get(i * k).copied().unwrap_or(0.0)).collect();
    let nn_flag: Vec<u32> = nn_d.iter().map(|&d| u32::from(d < DUPLICATE_2D * DIST_SCALE)).collect();
    let median_nn = {
        let mut m = nn_d.clone();
        m.sort_unstable_by(f32::total_cmp);
        m.get(n / 2).copied().unwrap_or(1.0).max(1e-6)
    };
    let close: Vec<u32> = nn_d.iter().map(|&d| u32::from(d < NEAR_DUPLICATE_FRACTION * median_nn)).collect();
    let group = duplicate_groups(&close, &nn_id);
    // Near duplicates pair up both ways, as cleanlab's sets do: an item's close nearest neighbour is one too.
    let dup: Vec<u32> = group.iter().map(|&g| u32::from(g != u32::MAX)).collect();
    let dup_score: Vec<f32> = nn_d.iter().map(|&d| 1.0 - (-d / median_nn).exp()).collect();
    let pca: Vec<f32> = pos
        .chunks_exact(2)
        .flat_map(|q| {
            let (c, sn) = (0.5f32.cos(), 0.5f32.sin());
            [0.3 * (c * q[0] - sn * q[1]), 0.3 * (sn * q[0] + c * q[1])]
        })
        .collect();
    let mut w = store.write_txn()?;
    let f32c = |v: Vec<f32>, width: u32| Column::F32 { width, values: v };
    let u32c = |v: Vec<u32>, width: u32| Column::U32 { width, values: v };
    let name = sp.name.as_str();
    store.put_column(&mut w, name, columns::OUTLIER_SCORE, &f32c(score.clone(), 1))?;
    store.put_column(&mut w, name, columns::KNN_MEAN_DISTANCE, &f32c(mean, 1))?;
    store.put_column(&mut w, name, columns::NN_ID, &u32c(nn_id, 1))?;
    store.put_column(&mut w, name, columns::NN_DISTANCE, &f32c(nn_d, 1))?;
    store.put_column(&mut w, name, columns::KNN_IDS, &u32c(ids.clone(), k.max(1) as u32))?;
    store.put_column(&mut w, name, columns::KNN_DISTANCES, &f32c(dist, k.max(1) as u32))?;
    store.put_column(&mut w, name, columns::NEAR_DUPLICATE, &u32c(dup, 1))?;
    store.put_column(&mut w, name, columns::NEAR_DUPLICATE_SCORE, &f32c(dup_score, 1))?;
    store.put_column(&mut w, name, columns::DUPLICATE_GROUP, &u32c(group, 1))?;
    store.put_column(&mut w, name, columns::NN_FLAG, &u32c(nn_flag, 1))?;
    store.put_column(&mut w, name, columns::PCA, &f32c(pca, 2))?;
    store.put_column(&mut w, name, columns::UMAP, &f32c(pos.to_vec(), 2))?;
    if sp.num_classes > 0 {
        let (mut pred, mut conf, mut quality, mut issue) = (vec![], vec![], vec![], vec![]);
        for i in 0..n {
            let probs = class_probs(t, i, p.classes);
            let best = (0..probs.len()).max_by(|&a, &b| probs[a].total_cmp(&probs[b])).unwrap_or(0);
            pred.push(best as u32);
            conf.push(probs[best]);
            quality.push(probs[t.label[i] as usize]);
            issue.push(u32::from(best as u32 != t.label[i]));
        }
        store.put_column(&mut w, name, columns::PRED, &u32c(pred, 1))?;
        store.put_column(&mut w, name, columns::CONFIDENCE, &f32c(conf, 1))?;
        store.put_column(&mut w, name, columns::LABEL_QUALITY, &f32c(quality, 1))?;
        store.put_column(&mut w, name, columns::LABEL_ISSUE, &u32c(issue, 1))?;
    }
    store.commit(w)?;
    Ok(Analysed { knn: ids, k, outlier_score: score })
}

/// Classifier probabilities: confident in the true class, less so for outliers.
fn class_probs(t: &Truth, i: usize, classes: u32) -> Vec<f32> {
    let c = classes.max(1) as usize;
    let top = if t.outlier[i] { 0.35 } else { 0.85 + 0.1 * ((i * 2654435761) % 97) as f32 / 97.0 };
    let rest = (1.0 - top) / (c.max(2) - 1) as f32;
    let mut p = vec![rest; c];
    p[t.true_class[i] as usize % c] = if c == 1 { 1.0 } else { top };
    p
}

/// Groups near duplicates with their nearest neighbour (union-find); a group is named by its smallest id.
fn duplicate_groups(dup: &[u32], nn: &[u32]) -> Vec<u32> {
    let n = dup.len();
    let mut parent: Vec<u32> = (0..n as u32).collect();
    fn find(parent: &mut [u32], mut x: u32) -> u32 {
        while parent[x as usize] != x {
            parent[x as usize] = parent[parent[x as usize] as usize];
            x = parent[x as usize];
        }
        x
    }
    for i in 0..n {
        if dup[i] == 1 {
            let (a, b) = (find(&mut parent, i as u32), find(&mut parent, nn[i]));
            let (lo, hi) = (a.min(b), a.max(b));
            parent[hi as usize] = lo;
        }
    }
    let mut in_group = vec![false; n];
    for i in 0..n {
        if dup[i] == 1 {
            in_group[i] = true;
            in_group[nn[i] as usize] = true;
        }
    }
    (0..n).map(|i| if in_group[i] { find(&mut parent, i as u32) } else { u32::MAX }).collect()
}
