use std::path::{Path, PathBuf};

use clap::Parser;
use color_eyre::eyre::{Result, WrapErr, eyre};

use crate::demo::{self, DemoFiles, summary};
use torchlight_cli::{Cli, Command, DemoArgs, eoutln, exec, out};
use torchlight_store::{Series, Store, columns};

/// The demo store: the platform data dir's torchlight/stores/demo (demo-N for --limit N, so a quick run never
/// clobbers the full one).
fn default_demo_store(limit: Option<usize>) -> Result<PathBuf> {
    let default = torchlight_cli::default_store_dir()?;
    let name = match limit {
        Some(n) => format!("demo-{n}"),
        None => "demo".to_string(),
    };
    Ok(default.with_file_name(name))
}

/// How far a previous run got with a demo store.
#[derive(Debug, PartialEq)]
enum Progress {
    /// No store, or an ingest that did not finish: (re)run ingest, which resumes.
    Ingest,
    /// Every space embedded; the series record or the analysis missing.
    Analyze,
    Done,
}

/// The spaces the demo ingests: foundation, fine-tuned and the series' checkpoints.
fn demo_spaces(series: &Series) -> Vec<&str> {
    let mut names = vec![demo::FOUNDATION_SPACE, demo::FINETUNED_SPACE];
    names.extend(series.steps.iter().map(|s| s.space.as_str()));
    names
}

/// `expected`: the number of items a finished ingest holds (the digits, or --limit of them).
fn progress(dir: &Path, expected: u32, series: &Series) -> Result<Progress> {
    if !dir.join("data.mdb").exists() {
        return Ok(Progress::Ingest);
    }
    let store = Store::open(dir)?;
    let rtxn = store.read_txn()?;
    // A --limit run never marks the dataset complete (records remain), so count the items instead.
    let items = store.item_count(&rtxn)?;
    let complete = store.dataset(&rtxn)?.is_some_and(|d| d.complete) || items >= expected;
    let spaces = store.spaces(&rtxn)?;
    let mut embedded = complete && items > 0;
    // Drift needs the series record before the analysis: a store analysed without it (an older demo's) has no
    // series drift columns and is analysed again.
    let mut analysed = store.series(&rtxn)?.as_ref() == Some(series)
        && store.column(&rtxn, "", columns::DRIFT_KNN_JACCARD)?.is_some_and(|c| c.rows() == items as usize);
    for name in demo_spaces(series) {
        match spaces.iter().find(|s| s.name == name) {
            Some(sp) => {
                embedded &= store.embedding_count(&rtxn, sp.index)? == items;
                analysed &=
                    store.column(&rtxn, name, columns::OUTLIER_SCORE)?.is_some_and(|c| c.rows() == items as usize);
            }
            None => embedded = false,
        }
    }
    Ok(match (embedded, analysed) {
        (false, _) => Progress::Ingest,
        (true, false) => Progress::Analyze,
        (true, true) => Progress::Done,
    })
}

/// Runs another subcommand exactly as if typed, so the demo goes through the same code and defaults as users.
fn run_subcommand(argv: &[String]) -> Result<()> {
    let cli = Cli::try_parse_from(std::iter::once("torchlight".to_string()).chain(argv.iter().cloned()))
        .map_err(|e| eyre!("internal: the demo built an invalid command line {argv:?}: {e}"))?;
    eoutln!("demo: torchlight {}", argv.join(" "));
    match cli.command {
        Command::Ingest(args) => super::ingest::run(*args),
        Command::Analyze(args) => super::analyze::run(args),
        other => Err(eyre!("internal: the demo does not run {other:?}")),
    }
}

fn path_arg(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// Ingest embeds every model in one pass over the digits; the analysis waits for the series record.
fn ingest_argv(files: &DemoFiles, store: &Path, device: &str, limit: Option<usize>) -> Vec<String> {
    let mut argv = vec![
        "ingest".to_string(),
        path_arg(&files.images),
        "--format".to_string(),
        "idx".to_string(),
        "--store".to_string(),
        path_arg(store),
        "--foundation".to_string(),
        path_arg(&files.foundation_model),
        "--finetuned".to_string(),
        path_arg(&files.finetuned_model),
        "--device".to_string(),
        device.to_string(),
        "--no-analyze".to_string(),
    ];
    for (space, path) in &files.checkpoints {
        argv.extend(["--model".to_string(), format!("{space}={}", path_arg(path))]);
    }
    if let Some(n) = limit {
        argv.extend(["--limit".to_string(), n.to_string()]);
    }
    argv
}

/// Writes the series record, so the analysis computes its drift columns and aligned projections. Closed again
/// before the analysis opens the store.
fn write_series(dir: &Path, series: &Series) -> Result<()> {
    let store = Store::open(dir)?;
    let mut w = store.write_txn()?;
    store.put_series(&mut w, series)?;
    store.commit(w)?;
    Ok(())
}

pub fn run(args: DemoArgs) -> Result<()> {
    // Fail on a bad --device before minutes of work.
    crate::runtime::parse_device(args.device)?;
    let assets = match &args.assets_dir {
        Some(dir) => dir.clone(),
        None => demo::default_cache_dir()?,
    };
    let files = demo::materialize(&assets)?;
    let store_dir = match &args.store.store {
        Some(dir) => dir.clone(),
        None => default_demo_store(args.limit)?,
    };
    let series = demo::series()?;
    let expected = args.limit.map_or(demo::DIGITS, |n| n.min(demo::DIGITS)) as u32;
    eoutln!(
        "demo: {} MNIST digits, foundation EfficientNet-Lite0 (ImageNet), fine-tuned MNIST CNN, a series of {} \
         checkpoints of a small CNN; store {}",
        expected,
        series.steps.len(),
        store_dir.display()
    );
    let step = progress(&store_dir, expected, &series)
        .wrap_err_with(|| format!("reading the demo store {}", store_dir.display()))?;
    if step == Progress::Ingest {
        run_subcommand(&ingest_argv(&files, &store_dir, &args.device.to_string(), args.limit))
            .wrap_err("demo: ingest failed")?;
    }
    if progress(&store_dir, expected, &series)? != Progress::Done {
        write_series(&store_dir, &series)?;
        let argv =
            ["analyze", "--store", &path_arg(&store_dir), "--device", &args.device.to_string()].map(String::from);
        run_subcommand(&argv).wrap_err("demo: analysis failed")?;
    }
    if progress(&store_dir, expected, &series)? != Progress::Done {
        return Err(eyre!(
            "demo: the store {} is still missing embeddings or outlier scores after ingest and analysis",
            store_dir.display()
        ));
    }
    if args.no_browse {
        let store = Store::open(&store_dir)?;
        let s = summary::summarize(&store, args.top, 50)?;
        out!("{}", summary::render(&s, args.top));
        Ok(())
    } else {
        // The browser runs in the binary without libtorch, which this process becomes.
        exec::sibling(exec::LIGHT, ["browse".into(), "--store".into(), store_dir.into_os_string()])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_command_lines_parse() {
        let files = DemoFiles {
            dir: "/c".into(),
            images: "/c/i.gz".into(),
            labels: "/c/l.gz".into(),
            foundation_model: "/c/f.pt".into(),
            finetuned_model: "/c/t.pt".into(),
            checkpoints: vec![("step-0".into(), "/c/step-0.pt".into()), ("step-9".into(), "/c/step-9.pt".into())],
        };
        let argv = ingest_argv(&files, Path::new("/s"), "cpu", Some(100));
        let cli = Cli::try_parse_from(std::iter::once("torchlight".to_string()).chain(argv)).unwrap();
        let Command::Ingest(a) = cli.command else { panic!("not an ingest") };
        assert_eq!((a.source.as_str(), a.limit, a.device), ("/c/i.gz", Some(100), torchlight_cli::Device::Cpu));
        assert_eq!(a.foundation.as_deref(), Some("/c/f.pt"));
        assert_eq!(a.finetuned.as_deref(), Some("/c/t.pt"));
        assert_eq!(a.store.store.as_deref(), Some(Path::new("/s")));
        assert_eq!(a.models, ["step-0=/c/step-0.pt", "step-9=/c/step-9.pt"]);
        assert!(a.no_analyze, "the series record must be written before the analysis");
    }

    #[test]
    fn missing_store_needs_ingest() {
        let dir = tempfile::tempdir().unwrap();
        let series = demo::series().unwrap();
        assert_eq!(progress(&dir.path().join("none"), 10, &series).unwrap(), Progress::Ingest);
    }

    #[test]
    fn limited_demo_gets_its_own_store() {
        let full = default_demo_store(None).unwrap();
        let small = default_demo_store(Some(500)).unwrap();
        assert_eq!(full.file_name().unwrap(), "demo");
        assert_eq!(small.file_name().unwrap(), "demo-500");
        assert_eq!(full.parent(), small.parent());
    }
}
