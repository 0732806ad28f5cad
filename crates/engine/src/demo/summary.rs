//! The `demo --no-browse` report: the top outliers of each space and how the spaces disagree, read from the
//! analysis columns of a store, and a line about the checkpoint series.

use std::collections::HashSet;
use std::fmt::Write;

use torchlight_store::{Column, LossPoint, Result, Store, columns};

/// One item in a ranking.
#[derive(Debug, Clone, PartialEq)]
pub struct Ranked {
    pub id: u32,
    pub label: Option<u32>,
    /// The space's predicted class, when its head predicts the dataset's labels.
    pub pred: Option<u32>,
    /// Outlier score (1 typical, towards 0 anomalous) or label quality (low = likely mislabelled).
    pub score: f32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SpaceSummary {
    pub name: String,
    pub model: String,
    pub dim: u32,
    /// Most anomalous first.
    pub outliers: Vec<Ranked>,
    /// Items confident learning flags in this space, most likely mislabelled first (None: no label analysis).
    pub label_issues: Option<Vec<Ranked>>,
    /// Near duplicates (cleanlab's, relative to the space) and the article's nn flags (absolute); None
    /// when the analysis did not write the column.
    pub near_duplicates: Option<usize>,
    pub nn_flagged: Option<usize>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub items: u32,
    pub label_names: Vec<String>,
    pub spaces: Vec<SpaceSummary>,
    /// For the first two spaces: (k, how many of the k most anomalous items they share).
    pub overlap: Option<(usize, usize)>,
    pub series: Option<SeriesSummary>,
}

/// The checkpoint series: its steps, the ends of the loss log and how much the embedding moved.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesSummary {
    pub steps: Vec<u64>,
    pub first_loss: Option<LossPoint>,
    pub last_loss: Option<LossPoint>,
    /// Mean over the items of the kNN Jaccard between the first and the last step (None before analysis).
    pub mean_jaccard: Option<f32>,
}

fn f32s(col: Option<Column>) -> Option<Vec<f32>> {
    match col {
        Some(Column::F32 { width: 1, values }) => Some(values),
        _ => None,
    }
}

fn u32s(col: Option<Column>) -> Option<Vec<u32>> {
    match col {
        Some(Column::U32 { width: 1, values }) => Some(values),
        _ => None,
    }
}

/// Ids sorted by ascending score (ties by id), NaN last.
fn ascending(scores: &[f32]) -> Vec<u32> {
    let mut ids: Vec<u32> = (0..scores.len() as u32).collect();
    ids.sort_by(|&a, &b| scores[a as usize].total_cmp(&scores[b as usize]).then(a.cmp(&b)));
    ids.retain(|&i| !scores[i as usize].is_nan());
    ids
}

/// Reads the summary of every analysed space; `top` items per ranking, overlap over the `overlap_k` most
/// anomalous. Spaces without an outlier score column are left out, and so are the steps of a series, which
/// get one line of their own.
pub fn summarize(store: &Store, top: usize, overlap_k: usize) -> Result<Summary> {
    let rtxn = store.read_txn()?;
    let labels = store.labels(&rtxn)?;
    let series = store.series(&rtxn)?;
    let mut spaces = Vec::new();
    let mut rankings = Vec::new();
    for sp in store.spaces(&rtxn)? {
        if series.as_ref().is_some_and(|s| s.steps.iter().any(|st| st.space == sp.name)) {
            continue;
        }
        let Some(scores) = f32s(store.column(&rtxn, &sp.name, columns::OUTLIER_SCORE)?) else { continue };
        let preds = u32s(store.column(&rtxn, &sp.name, columns::PRED)?);
        let ranked = |id: u32, score: f32| Ranked {
            id,
            label: labels.get(id as usize).copied().flatten(),
            pred: preds.as_ref().and_then(|p| p.get(id as usize).copied()),
            score,
        };
        let order = ascending(&scores);
        let outliers = order.iter().take(top).map(|&id| ranked(id, scores[id as usize])).collect();
        let issues = u32s(store.column(&rtxn, &sp.name, columns::LABEL_ISSUE)?);
        let quality = f32s(store.column(&rtxn, &sp.name, columns::LABEL_QUALITY)?);
        let label_issues = match (issues, quality) {
            (Some(flags), Some(quality)) => {
                let mut flagged: Vec<u32> = ascending(&quality);
                flagged.retain(|&id| flags.get(id as usize) == Some(&1));
                Some(flagged.into_iter().map(|id| ranked(id, quality[id as usize])).collect())
            }
            _ => None,
        };
        let flagged = |c: Option<Vec<u32>>| c.map(|v| v.iter().filter(|&&f| f == 1).count());
        let near_duplicates = flagged(u32s(store.column(&rtxn, &sp.name, columns::NEAR_DUPLICATE)?));
        let nn_flagged = flagged(u32s(store.column(&rtxn, &sp.name, columns::NN_FLAG)?));
        rankings.push(order);
        spaces.push(SpaceSummary {
            name: sp.name.clone(),
            model: sp.model.source.clone(),
            dim: sp.dim,
            outliers,
            label_issues,
            near_duplicates,
            nn_flagged,
        });
    }
    let overlap = match rankings.as_slice() {
        [a, b, ..] => {
            let k = overlap_k.min(a.len()).min(b.len());
            let first: HashSet<u32> = a[..k].iter().copied().collect();
            Some((k, b[..k].iter().filter(|id| first.contains(id)).count()))
        }
        _ => None,
    };
    let series = match series {
        Some(s) if !s.steps.is_empty() => {
            let jaccard = f32s(store.column(&rtxn, "", columns::DRIFT_KNN_JACCARD)?).filter(|v| !v.is_empty());
            Some(SeriesSummary {
                steps: s.steps.iter().map(|st| st.step).collect(),
                first_loss: s.losses.first().copied(),
                last_loss: s.losses.last().copied(),
                mean_jaccard: jaccard.map(|v| v.iter().sum::<f32>() / v.len() as f32),
            })
        }
        _ => None,
    };
    Ok(Summary { items: store.item_count(&rtxn)?, label_names: store.label_names(&rtxn)?, spaces, overlap, series })
}

fn name(names: &[String], class: Option<u32>) -> String {
    match class {
        Some(c) => names.get(c as usize).cloned().unwrap_or_else(|| c.to_string()),
        None => "-".to_string(),
    }
}

fn table(s: &mut String, rows: &[Ranked], names: &[String], score: &str) {
    let _ = writeln!(s, "    {:>6}  {:>5}  {:>5}  {score}", "id", "label", "pred");
    for r in rows {
        let pred = if r.pred.is_some() { name(names, r.pred) } else { "-".to_string() };
        let _ = writeln!(s, "    {:>6}  {:>5}  {:>5}  {:.4}", r.id, name(names, r.label), pred, r.score);
    }
}

/// The summary as plain text for the terminal.
pub fn render(summary: &Summary, top: usize) -> String {
    let mut s = String::new();
    let names = &summary.label_names;
    let _ = write!(s, "{} items, {} analysed spaces", summary.items, summary.spaces.len());
    if let Some(series) = &summary.series {
        let _ = write!(s, " and a series of {} checkpoints", series.steps.len());
    }
    s.push('\n');
    for sp in &summary.spaces {
        let _ = writeln!(
            s,
            "\nspace {} ({}-d, {}): top {} outliers (outlier score, low = anomalous)",
            sp.name,
            sp.dim,
            sp.model,
            sp.outliers.len()
        );
        table(&mut s, &sp.outliers, names, "score");
        match &sp.label_issues {
            Some(issues) => {
                let _ = writeln!(s, "  label issues flagged in {}: {}", sp.name, issues.len());
                if !issues.is_empty() {
                    let shown = &issues[..issues.len().min(top)];
                    let _ = writeln!(s, "  most likely mislabelled (label quality, low = suspicious):");
                    table(&mut s, shown, names, "quality");
                }
            }
            None => {
                let _ =
                    writeln!(s, "  no label analysis in {} (its head does not predict the dataset's labels)", sp.name);
            }
        }
        if let Some(dups) = sp.near_duplicates {
            let _ = write!(s, "  near duplicates in {}: {dups} (relative to the space's nn distances)", sp.name);
            if let Some(nn) = sp.nn_flagged {
                let _ = write!(s, "; nn_flag (nn within the absolute cosine threshold): {nn}");
            }
            s.push('\n');
        }
    }
    if let (Some((k, common)), [a, b, ..]) = (summary.overlap, summary.spaces.as_slice()) {
        let _ = writeln!(s, "\n{} and {} share {common} of their {k} most anomalous items.", a.name, b.name);
    }
    if let Some(series) = &summary.series {
        s.push_str(&series_line(series));
    }
    s
}

fn series_line(series: &SeriesSummary) -> String {
    let steps: Vec<String> = series.steps.iter().map(u64::to_string).collect();
    let mut s = format!("\nseries: steps {}", steps.join(", "));
    if let (Some(a), Some(b)) = (series.first_loss, series.last_loss) {
        let _ = write!(s, "; training loss {:.3} at step {} -> {:.3} at step {}", a.loss, a.step, b.loss, b.step);
    }
    if let (Some(j), [first, .., last]) = (series.mean_jaccard, series.steps.as_slice()) {
        let _ = write!(s, "; mean kNN Jaccard step {first} vs {last}: {j:.3} (key F in the browser: the drift view)");
    }
    s.push('\n');
    s
}
