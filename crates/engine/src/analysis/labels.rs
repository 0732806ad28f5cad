//! Label scores from classifier probabilities: prediction, confidence, self-confidence and cleanlab's
//! `find_label_issues(filter_by='confident_learning')`:
//! - per-class threshold `t_k` = mean of `p[i, k]` over items given label `k` (2 for a class nobody has);
//! - an item is confident about class `k` when `p[i, k] >= t_k - 1e-6`; its guessed true label is the
//!   argmax of `p` when it is confident about several classes, else the confident one;
//! - it is an issue when it is confident about something and the guess differs from its given label,
//!   unless its given label is (within 1e-6) the argmax of `p` anyway.

/// Per-item results; items without a given label have NaN quality and no issue flag.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelScores {
    pub pred: Vec<u32>,
    pub confidence: Vec<f32>,
    pub quality: Vec<f32>,
    pub issue: Vec<u32>,
    pub issue_count: usize,
}

/// numpy's argmax: the first maximum.
fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (j, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = j;
        }
    }
    best
}

/// `probs` row-major `[n, c]`; `labels[i]` the given label (None when unlabelled; ids >= c are ignored).
pub fn label_scores(probs: &[f32], c: usize, labels: &[Option<u32>]) -> LabelScores {
    let n = labels.len();
    assert_eq!(probs.len(), n * c, "probabilities are not n x classes");
    let row = |i: usize| &probs[i * c..(i + 1) * c];
    let given = |i: usize| labels[i].filter(|&l| (l as usize) < c).map(|l| l as usize);

    let mut sum = vec![0f64; c];
    let mut count = vec![0usize; c];
    for i in 0..n {
        if let Some(l) = given(i) {
            sum[l] += f64::from(row(i)[l]);
            count[l] += 1;
        }
    }
    // cleanlab compares in the probabilities' own precision (f32 here): thresholds and the 1e-6 margins too.
    let thresholds: Vec<f32> =
        (0..c).map(|k| if count[k] > 0 { (sum[k] / count[k] as f64) as f32 } else { 2.0 }).collect();

    let mut out = LabelScores {
        pred: Vec::with_capacity(n),
        confidence: Vec::with_capacity(n),
        quality: Vec::with_capacity(n),
        issue: Vec::with_capacity(n),
        issue_count: 0,
    };
    for i in 0..n {
        let p = row(i);
        let pred = argmax(p);
        out.pred.push(pred as u32);
        out.confidence.push(p[pred]);
        let Some(l) = given(i) else {
            out.quality.push(f32::NAN);
            out.issue.push(0);
            continue;
        };
        out.quality.push(p[l]);
        let confident: Vec<usize> = (0..c).filter(|&k| p[k] >= thresholds[k] - 1e-6).collect();
        let guess = match confident.len() {
            0 => None,
            1 => Some(confident[0]),
            _ => Some(pred),
        };
        let off_diagonal = guess.is_some_and(|g| g != l);
        // cleanlab's _reduce_issues: keep only items whose given label is not the prediction, with the
        // given label's probability nudged up by 1e-6.
        let nudged_pred = {
            let mut best = 0;
            let val = |k: usize| if k == l { p[k] + 1e-6 } else { p[k] };
            for k in 1..c {
                if val(k) > val(best) {
                    best = k;
                }
            }
            best
        };
        let issue = off_diagonal && nudged_pred != l;
        out.issue.push(u32::from(issue));
        out.issue_count += usize::from(issue);
    }
    out
}
