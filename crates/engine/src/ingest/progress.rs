//! What an ingest shows while it runs (a bar per space on a terminal, warnings) and the summary it prints.

use std::collections::HashMap;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

use super::Summary;

/// Items per second with the precision a person reads: `1234/s`, `56.7/s`, `0.42/s`.
pub fn rate(per_sec: f64) -> String {
    match per_sec {
        r if !r.is_finite() => "-/s".to_string(),
        r if r >= 100.0 => format!("{r:.0}/s"),
        r if r >= 10.0 => format!("{r:.1}/s"),
        r => format!("{r:.2}/s"),
    }
}

pub(super) struct Bars {
    multi: MultiProgress,
    pub bars: Vec<ProgressBar>,
    enabled: bool,
}

impl Bars {
    pub fn new(names: &[String], total: u64, starts: &[u64], enabled: bool) -> Bars {
        let target = if enabled { ProgressDrawTarget::stderr() } else { ProgressDrawTarget::hidden() };
        let multi = MultiProgress::with_draw_target(target);
        let style = ProgressStyle::with_template(
            "{prefix:>12} [{bar:32.cyan/blue}] {pos}/{len} {rate:>10} ETA {eta:>4} {elapsed:>4}",
        )
        .expect("valid template")
        .with_key("rate", |state: &ProgressState, w: &mut dyn std::fmt::Write| {
            let _ = w.write_str(&rate(state.per_sec()));
        })
        .progress_chars("=> ");
        let bars = names
            .iter()
            .zip(starts)
            .map(|(name, &start)| {
                let bar = multi.add(ProgressBar::new(total));
                bar.set_style(style.clone());
                bar.set_prefix(name.clone());
                bar.set_position(start);
                bar.reset_eta();
                bar
            })
            .collect();
        Bars { multi, bars, enabled }
    }

    pub fn warn(&self, msg: &str) {
        if self.enabled {
            self.multi.suspend(|| torchlight_cli::eoutln!("warning: {msg}"));
        }
    }

    pub fn finish(&self) {
        for b in &self.bars {
            b.finish();
        }
    }
}

/// Summary lines for the terminal.
pub fn format_summary(s: &Summary) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let secs = s.elapsed.as_secs_f64().max(1e-9);
    let _ = writeln!(
        out,
        "ingested {} new items ({} in the store) from {} records in {:.1} s ({:.1} records/s){}",
        s.new_items,
        s.items,
        s.records,
        secs,
        s.records as f64 / secs,
        if s.complete { "" } else { ", not complete" }
    );
    if !s.skipped.is_empty() || s.skipped_total > 0 {
        let _ = writeln!(out, "skipped {} records this run ({} in the store):", s.skipped.len(), s.skipped_total);
        let mut reasons: HashMap<&str, usize> = HashMap::new();
        for sk in &s.skipped {
            *reasons.entry(sk.reason.as_str()).or_default() += 1;
        }
        let mut reasons: Vec<_> = reasons.into_iter().collect();
        reasons.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        for (reason, n) in reasons.iter().take(10) {
            let _ = writeln!(out, "  {n:>6} x {reason}");
        }
    }
    let st = &s.stages;
    let stages = [
        ("decode", st.decode),
        ("preprocess", st.preprocess),
        ("thumbnails", st.thumbnails),
        ("model", st.model),
        ("batching", st.batching),
        ("store writes", st.writes),
    ];
    let busy: f64 = stages.iter().map(|(_, t)| t.as_secs_f64()).sum();
    if busy > 0.0 {
        let parts: Vec<String> = stages
            .iter()
            .map(|(name, t)| format!("{name} {:.2} s ({:.0}%)", t.as_secs_f64(), 100.0 * t.as_secs_f64() / busy))
            .collect();
        let _ = writeln!(
            out,
            "stages (thread time): {}; the model waited {:.2} s for decoded batches",
            parts.join(", "),
            st.waiting.as_secs_f64()
        );
    }
    for sp in &s.spaces {
        let t = sp.model_time.as_secs_f64();
        let _ = writeln!(
            out,
            "space {}: {} embedded, model {:.1} s ({:.1} images/s in the model, {:.1} images/s overall)",
            sp.name,
            sp.embedded,
            t,
            if t > 0.0 { sp.embedded as f64 / t } else { 0.0 },
            sp.embedded as f64 / secs
        );
    }
    out
}
