use std::sync::Arc;

use color_eyre::eyre::{Result, WrapErr, eyre};
use torchlight_cli::{IngestArgs, Pooling, Precision, eoutln, out, outln};
use torchlight_store::Store;

use crate::analysis::AnalysisParams;
use crate::ingest::{self, IngestError, IngestOptions, SpaceModel};
use crate::model::{Embedder, ModelOptions};
use crate::preprocess::preprocess;
use crate::source::{self, OpenOptions};

pub fn run(args: IngestArgs) -> Result<()> {
    let open = OpenOptions {
        format: args.format,
        split: Some(args.split.clone()),
        label_column: args.label_column.clone(),
        image_column: args.image_column.clone(),
        allow_outside_paths: args.allow_outside_paths,
    };
    // Everything is checked before the store is created or written: the source, the embedding files, the models.
    let source = source::open(&args.source, &open)?;
    for warning in source.warnings() {
        eoutln!("warning: {warning}");
    }
    let records = args.limit.map_or(source.info().len, |l| l.min(source.info().len));
    if records == 0 {
        return Err(IngestError::NoRecords(args.source.clone()).into());
    }
    let shard = args.shard.map(|s| ingest::resolve_shard(s, &|var| std::env::var(var).ok())).transpose()?;
    if shard.is_some() && !(args.embeddings.is_empty() && args.embedding_columns.is_empty()) {
        return Err(eyre!(
            "--shard takes no --embeddings or --embedding-column: their rows are the whole dataset's; import them \
             into the merged store after `torchlight merge`"
        ));
    }
    let embeddings = args
        .embeddings
        .iter()
        .map(|e| ingest::parse_embeddings_arg(e).ok_or_else(|| eyre!("--embeddings {e}: expected NAME=FILE")))
        .collect::<Result<Vec<_>>>()?;
    for (_, file, column) in &embeddings {
        ingest::check_embeddings_file(file, column.as_deref(), source.info().len)?;
    }
    let columns = args
        .embedding_columns
        .iter()
        .map(|e| {
            ingest::parse_embedding_column_arg(e).ok_or_else(|| eyre!("--embedding-column {e}: expected NAME=COLUMN"))
        })
        .collect::<Result<Vec<_>>>()?;
    for (_, column) in &columns {
        ingest::check_embedding_column(source.as_ref(), column)?;
    }
    let precomputed = embeddings.iter().map(|(n, _, _)| n).chain(columns.iter().map(|(n, _)| n));
    let mut names: Vec<&str> = args.foundation.iter().map(|_| "foundation").collect();
    names.extend(args.finetuned.iter().map(|_| "finetuned"));
    names.extend(args.models.iter().filter_map(|m| m.split_once('=').map(|(n, _)| n)));
    for name in precomputed {
        if names.contains(&name.as_str()) {
            return Err(IngestError::DuplicateSpace(name.clone()).into());
        }
        names.push(name);
    }
    let models = load_models(&args)?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = match args.threads {
        None => cores,
        Some(asked) => {
            // More threads than this only add memory and contention: each holds decoded images in flight.
            let most = 4 * cores;
            if asked > most {
                eoutln!("warning: --threads {asked} lowered to {most} (4 per core on this machine)");
            }
            let threads = asked.min(most);
            // The same budget for libtorch's own CPU threads (the model forward).
            tch::set_num_threads(threads as i32);
            threads
        }
    };

    let dir = args.store.dir()?;
    let store = Store::create_or_open(&dir)?;
    let _lock = store.lock_writer("ingest")?;
    let info = source.info();
    eoutln!(
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
        stop: super::stop_requested,
    };
    if let Some(shard) = shard {
        eoutln!("shard {}", ingest::describe_shard(&ingest::shard_info(source.as_ref(), &opts, shard)));
    }
    let stopped = |store: &Store| -> Result<()> {
        let items = store.read_txn().and_then(|r| store.item_count(&r)).unwrap_or(0);
        Err(super::interrupted(format!(
            "{items} items committed in {}; rerun the same command to resume",
            store.dir().display()
        )))
    };
    let run = match shard {
        Some(shard) => ingest::run_shard(&store, source.as_ref(), models, &opts, shard),
        None => ingest::run(&store, source.as_ref(), models, &opts),
    };
    let summary = match run {
        Err(IngestError::Interrupted) => return stopped(&store),
        other => other?,
    };
    out!("{}", ingest::format_summary(&summary));
    for (name, file, column) in &embeddings {
        let space = match ingest::import_embeddings(&store, source.as_ref(), name, file, column.as_deref(), opts.stop) {
            Err(IngestError::Interrupted) => return stopped(&store),
            other => other?,
        };
        outln!("space {name}: {} x {} imported from {}", summary.items, space.dim, file.display());
    }
    for (name, column) in &columns {
        let space = match ingest::import_embedding_column(&store, source.as_ref(), name, column, opts.stop) {
            Err(IngestError::Interrupted) => return stopped(&store),
            other => other?,
        };
        outln!("space {name}: {} x {} imported from column {column}", summary.items, space.dim);
    }
    let has_spaces = {
        let rtxn = store.read_txn()?;
        !store.spaces(&rtxn)?.is_empty()
    };
    if let Some(shard) = shard {
        outln!(
            "analysis skipped for a shard: when all {} shards are done, `torchlight merge --store OUT SHARD...`, \
             then `torchlight analyze --store OUT`",
            shard.count
        );
    } else if args.no_analyze {
        outln!("analysis skipped (--no-analyze): run `torchlight analyze --store {}`", dir.display());
    } else if !has_spaces {
        outln!("no embedding space to analyse (no model, no --embeddings): items and thumbnails only");
    } else if !summary.complete {
        outln!(
            "ingest not complete (--limit or spaces behind): run `torchlight analyze --store {}` when you want scores",
            dir.display()
        );
        analyze(&store, &args)?;
    } else {
        analyze(&store, &args)?;
    }
    Ok(())
}

/// The analysis with its defaults on the ingest's device.
fn analyze(store: &Store, args: &IngestArgs) -> Result<()> {
    let device = crate::runtime::parse_device(args.device)?;
    super::analyze::analyze(store, &AnalysisParams { device, ..AnalysisParams::default() })
}

/// The models of `--foundation`, `--finetuned` and `--model NAME=MODEL`, each with its `--pooling-of` or else
/// `--pooling`, loaded (and so checked) before anything is written.
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
    let mut pooling_of: Vec<(&str, Pooling)> = Vec::new();
    for (name, pooling) in &args.pooling_of {
        if !named.iter().any(|(n, _)| n == name) {
            let spaces: Vec<&str> = named.iter().map(|(n, _)| n.as_str()).collect();
            return Err(eyre!(
                "--pooling-of {name}={pooling}: no model makes space {name} (model spaces given: {})",
                if spaces.is_empty() { "none".to_string() } else { spaces.join(", ") }
            ));
        }
        if pooling_of.iter().any(|(n, _)| n == name) {
            return Err(eyre!("--pooling-of {name}=...: given twice for space {name}"));
        }
        pooling_of.push((name, *pooling));
    }
    if named.is_empty() {
        return Ok(Vec::new());
    }
    let device = crate::runtime::parse_device(args.device)?;
    let kind = match args.precision {
        Precision::Fp32 => tch::Kind::Float,
        Precision::Fp16 => tch::Kind::Half,
        Precision::Bf16 => tch::Kind::BFloat16,
    };
    if kind != tch::Kind::Float && device == tch::Device::Cpu {
        return Err(eyre!("--precision {} needs a CUDA device; on CPU use fp32", args.precision));
    }
    named
        .into_iter()
        .map(|(name, model)| {
            let pooling = pooling_of.iter().find(|(n, _)| *n == name).map_or(args.pooling, |(_, p)| *p);
            let opts = ModelOptions { device, kind, pooling, preprocess: args.preprocess.clone() };
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
                    embedder.embed(batch, n).map(|o| (o.embeddings, o.probs)).map_err(|e| e.into())
                }),
            })
        })
        .collect()
}
