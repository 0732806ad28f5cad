use std::sync::Arc;

use color_eyre::eyre::{Result, WrapErr, eyre};

use crate::analysis::{self, AnalysisParams, Hooks};
use crate::ingest::{self, IngestOptions, SpaceModel};
use crate::model::{Embedder, ModelOptions};
use crate::preprocess::preprocess;
use crate::source::{self, OpenOptions};
use torchlight_cli::{IngestArgs, Precision};
use torchlight_store::Store;

pub fn run(args: IngestArgs) -> Result<()> {
    let open = OpenOptions {
        format: args.format,
        split: Some(args.split.clone()),
        label_column: args.label_column.clone(),
        image_column: args.image_column.clone(),
    };
    let source = source::open(&args.source, &open)?;
    let embeddings = args
        .embeddings
        .iter()
        .map(|e| ingest::parse_embeddings_arg(e).ok_or_else(|| eyre!("--embeddings {e}: expected NAME=FILE")))
        .collect::<Result<Vec<_>>>()?;
    for (_, file, _) in &embeddings {
        if !file.is_file() {
            return Err(eyre!("--embeddings: {} is not a file", file.display()));
        }
    }
    let models = load_models(&args)?;
    let threads = args.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    if args.threads.is_some() {
        // The same budget for libtorch's own CPU threads (the model forward).
        tch::set_num_threads(threads as i32);
    }

    let dir = args.store.dir()?;
    let store = Store::create_or_open(&dir)?;
    let _lock = store.lock_writer("ingest")?;
    let info = source.info();
    eprintln!(
        "{} ({}, {} records{}) -> {}",
        args.source,
        info.format,
        info.len,
        args.limit.map(|l| format!(", first {l}")).unwrap_or_default(),
        dir.display()
    );
    let opts = IngestOptions {
        source_spec: args.source.clone(),
        limit: args.limit,
        batch_size: args.batch_size,
        threads,
        progress: true,
    };
    let summary = ingest::run(&store, source.as_ref(), models, &opts)?;
    print!("{}", ingest::format_summary(&summary));
    for (name, file, column) in &embeddings {
        let space = ingest::import_embeddings(&store, source.as_ref(), name, file, column.as_deref())?;
        println!("space {name}: {} x {} imported from {}", summary.items, space.dim, file.display());
    }
    let has_spaces = {
        let rtxn = store.read_txn()?;
        !store.spaces(&rtxn)?.is_empty()
    };
    if args.no_analyze {
        println!("analysis skipped (--no-analyze): run `torchlight analyze --store {}`", dir.display());
    } else if !has_spaces {
        println!("no embedding space to analyse (no model, no --embeddings): items and thumbnails only");
    } else if !summary.complete {
        println!(
            "ingest not complete (--limit or spaces behind): run `torchlight analyze --store {}` when you want scores",
            dir.display()
        );
        analyze(&store, &args)?;
    } else {
        analyze(&store, &args)?;
    }
    Ok(())
}

/// The analysis with its defaults on the ingest's device; progress on stderr.
fn analyze(store: &Store, args: &IngestArgs) -> Result<()> {
    let device = crate::runtime::parse_device(&args.device).map_err(|e| eyre!(e))?;
    let params = AnalysisParams { device, ..AnalysisParams::default() };
    let progress = super::StageProgress::new();
    let hooks = Hooks { progress: &|stage, done, total| progress.report(stage, done, total), cancel: &|| false };
    let report = analysis::run(store, &params, &hooks)?;
    print!("{}", analysis::summary(&report));
    Ok(())
}

/// The models of `--foundation`, `--finetuned` and `--model NAME=MODEL`, loaded (and so checked) before
/// anything is written.
fn load_models(args: &IngestArgs) -> Result<Vec<SpaceModel>> {
    let mut named: Vec<(String, String)> = Vec::new();
    if let Some(m) = &args.foundation {
        named.push(("foundation".into(), m.clone()));
    }
    if let Some(m) = &args.finetuned {
        named.push(("finetuned".into(), m.clone()));
    }
    for m in &args.models {
        let (name, model) = m.split_once('=').ok_or_else(|| eyre!("--model {m}: expected NAME=MODEL"))?;
        named.push((name.to_string(), model.to_string()));
    }
    if named.is_empty() {
        return Ok(Vec::new());
    }
    let device = crate::runtime::parse_device(&args.device).map_err(|e| eyre!(e))?;
    let kind = match args.precision {
        Precision::Fp32 => tch::Kind::Float,
        Precision::Fp16 => tch::Kind::Half,
        Precision::Bf16 => tch::Kind::BFloat16,
    };
    if kind != tch::Kind::Float && device == tch::Device::Cpu {
        return Err(eyre!("--precision {} needs a CUDA device; on CPU use fp32", args.precision));
    }
    let opts = ModelOptions { device, kind, pooling: args.pooling, preprocess: args.preprocess.clone() };
    named
        .into_iter()
        .map(|(name, model)| {
            let embedder =
                Embedder::load(&model, &opts).wrap_err_with(|| format!("loading model {model} for space {name}"))?;
            let cfg = embedder.preprocess_config().clone();
            let space = ingest::space_info(
                &name,
                embedder.spec(),
                embedder.dim(),
                embedder.num_classes(),
                embedder.class_names(),
            );
            Ok(SpaceModel {
                space,
                // Models with equal preprocessing share one preprocessed tensor per image.
                prepare_key: format!("{cfg:?}"),
                prepare: Arc::new(move |img| preprocess(img, &cfg)),
                embed: Box::new(move |batch, n| {
                    embedder.embed(batch, n).map(|o| (o.embeddings, o.probs)).map_err(|e| e.to_string())
                }),
            })
        })
        .collect()
}
