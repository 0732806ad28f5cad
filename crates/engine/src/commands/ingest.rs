use std::path::Path;

use color_eyre::eyre::{Result, WrapErr, eyre};
use torchlight_cli::{IngestArgs, Pooling, Precision, eoutln, out, outln};
use torchlight_store::Store;

use crate::analysis::AnalysisParams;
use crate::ingest::{self, IngestError, IngestOptions, SpaceModel, series};
use crate::model::{Embedder, ModelOptions};
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
    let Models { models, checkpoints } = load_models(&args)?;
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
    // The series starts with the foundation: this run's, or the one the store already holds.
    let series = match &checkpoints {
        None => None,
        Some((found, finetuned)) => {
            let has_foundation = args.foundation.is_some() || {
                let rtxn = store.read_txn()?;
                store.space(&rtxn, "foundation")?.is_some()
            };
            Some(series::series(has_foundation.then_some("foundation"), found, finetuned.clone()))
        }
    };
    let opts = IngestOptions {
        source_spec: args.source.clone(),
        limit: args.limit,
        batch_size: args.batch_size,
        threads,
        progress: true,
        stop: super::stop_requested,
        series,
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

/// The models to ingest with and, with `--checkpoints`, the run they come from.
struct Models {
    models: Vec<SpaceModel>,
    /// The checkpoints found, and the space of the fine-tuned model when `--finetuned` named one.
    checkpoints: Option<(series::Checkpoints, Option<String>)>,
}

/// The models of `--foundation`, `--finetuned`, `--model NAME=MODEL` and `--checkpoints`, each with its
/// `--pooling-of` or else `--pooling`, loaded (and so checked) before anything is written.
fn load_models(args: &IngestArgs) -> Result<Models> {
    let found = if args.checkpoints.is_empty() { None } else { Some(series::find(&args.checkpoints)?) };
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
    if let Some(found) = &found {
        describe_checkpoints(found);
        for c in &found.checkpoints {
            named.push((c.space(), c.path.display().to_string()));
        }
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
        return Ok(Models { models: Vec::new(), checkpoints: None });
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
    let mut loaded: Vec<(String, Embedder)> = Vec::new();
    // Where each checkpoint's preprocessing comes from, said once for all when they agree.
    let mut preprocessing: Vec<(String, series::PreprocessFrom)> = Vec::new();
    for (name, model) in named {
        let pooling = pooling_of.iter().find(|(n, _)| *n == name).map_or(args.pooling, |(_, p)| *p);
        let mut opts =
            ModelOptions { device, kind, pooling, preprocess: args.preprocess.clone(), fallback_preprocess: None };
        // A checkpoint, or a fine-tuned model on disk, without preprocessing of its own takes its run folder's,
        // else the foundation's.
        let checkpoint = found.as_ref().is_some_and(|f| f.checkpoints.iter().any(|c| c.space() == name));
        let mut from = None;
        if (checkpoint || name == "finetuned") && Path::new(&model).exists() {
            let foundation = loaded.iter().find(|(n, _)| n == "foundation").map(|(_, e)| e.preprocess_config());
            let run_dir = found.as_ref().and_then(|f| f.run_dir.as_deref());
            let f =
                series::preprocess_from(Path::new(&model), run_dir, args.preprocess.as_deref(), foundation.is_some());
            match &f {
                series::PreprocessFrom::RunDir(p) => opts.preprocess = Some(p.clone()),
                series::PreprocessFrom::Foundation => opts.fallback_preprocess = foundation.cloned(),
                _ => {}
            }
            match (&f, checkpoint) {
                (_, true) => preprocessing.push((name.clone(), f.clone())),
                (series::PreprocessFrom::RunDir(_) | series::PreprocessFrom::Foundation, false) => {
                    eoutln!("preprocessing of {name}: {f}")
                }
                _ => {}
            }
            from = Some(f);
        }
        let embedder = Embedder::load(&model, &opts).wrap_err_with(|| match from {
            Some(series::PreprocessFrom::Nothing) if checkpoint => format!(
                "loading {model} for space {name}: it has no {} of its own, nor has its run folder; give \
                 --foundation (its preprocessing is taken) or --preprocess FILE",
                series::PREPROCESSOR
            ),
            Some(f @ (series::PreprocessFrom::RunDir(_) | series::PreprocessFrom::Foundation)) => {
                format!("loading {model} for space {name} (preprocessing: {f})")
            }
            _ if checkpoint => format!("loading checkpoint {model} for space {name}"),
            _ => format!("loading model {model} for space {name}"),
        })?;
        loaded.push((name, embedder));
    }
    let checkpoints = match found {
        None => None,
        Some(found) => {
            say_preprocessing(&preprocessing);
            check_one_architecture(&loaded, &found)?;
            let finetuned = args.finetuned.as_ref().map(|_| finetuned_space(&mut loaded, &found));
            Some((found, finetuned))
        }
    };
    let models = loaded.into_iter().map(|(name, embedder)| ingest::space_model(&name, embedder)).collect();
    Ok(Models { models, checkpoints })
}

/// What `--checkpoints` found, on stderr.
fn describe_checkpoints(found: &series::Checkpoints) {
    let steps: Vec<String> = found.checkpoints.iter().map(|c| c.step.to_string()).collect();
    let whence = match (&found.run_dir, found.steps_from) {
        (_, series::StepsFrom::Order) => "as listed (their names give no step: steps counted 1, 2, ...)".to_string(),
        (Some(dir), _) if found.checkpoints.iter().all(|c| c.path.parent() == Some(dir.as_path())) => {
            format!("in the run folder {}", dir.display())
        }
        _ => "as listed".to_string(),
    };
    eoutln!("checkpoints: {} {whence}, steps {}", found.checkpoints.len(), steps.join(", "));
    match &found.loss_log {
        Some(log) => eoutln!("loss log: {} logged losses from {}", found.losses.len(), log.display()),
        None => eoutln!("loss log: none (no {} beside the checkpoints)", series::TRAINER_STATE),
    }
}

/// Where the checkpoints' preprocessing comes from, on stderr: one line when they agree.
fn say_preprocessing(preprocessing: &[(String, series::PreprocessFrom)]) {
    let same_kind =
        preprocessing.windows(2).all(|w| std::mem::discriminant(&w[0].1) == std::mem::discriminant(&w[1].1));
    match preprocessing {
        [] => {}
        [(_, series::PreprocessFrom::Own(_)), ..] if same_kind => {
            eoutln!("preprocessing of the checkpoints: each its own");
        }
        [(_, first), ..] if preprocessing.iter().all(|(_, f)| f == first) => {
            eoutln!("preprocessing of the checkpoints: {first}");
        }
        _ => {
            for (space, from) in preprocessing {
                eoutln!("preprocessing of {space}: {from}");
            }
        }
    }
}

/// The checkpoints of one run share one architecture and width, and so does its foundation.
fn check_one_architecture(loaded: &[(String, Embedder)], found: &series::Checkpoints) -> Result<()> {
    let spaces: Vec<String> = found.checkpoints.iter().map(|c| c.space()).collect();
    let shape = |e: &Embedder| (e.spec().kind, e.dim());
    let mut steps = loaded.iter().filter(|(n, _)| spaces.contains(n));
    let Some((first_name, first)) = steps.next() else { return Ok(()) };
    for (name, e) in steps {
        if shape(e) != shape(first) {
            return Err(eyre!(
                "--checkpoints: {name} is a {} model of width {} but {first_name} a {} model of width {}: the \
                 checkpoints of one run share one architecture (two runs go to two stores, or --model NAME=MODEL)",
                e.spec().kind,
                e.dim(),
                first.spec().kind,
                first.dim()
            ));
        }
    }
    if let Some((_, f)) = loaded.iter().find(|(n, _)| n == "foundation")
        && shape(f) != shape(first)
    {
        return Err(eyre!(
            "--checkpoints: the foundation is a {} model of width {} but the checkpoints {} models of width {}: \
             the series starts from the model the run fine-tuned (an unrelated model goes to --model NAME=MODEL)",
            f.spec().kind,
            f.dim(),
            first.spec().kind,
            first.dim()
        ));
    }
    Ok(())
}

/// The space of `--finetuned` beside `--checkpoints`: a checkpoint's with the same weights (the `finetuned`
/// model is then dropped, not embedded twice), else `finetuned`.
fn finetuned_space(loaded: &mut Vec<(String, Embedder)>, found: &series::Checkpoints) -> String {
    let Some(at) = loaded.iter().position(|(n, _)| n == "finetuned") else { return "finetuned".into() };
    let spec = loaded[at].1.spec();
    let twin = found.checkpoints.iter().map(|c| c.space()).find(|space| {
        loaded
            .iter()
            .any(|(n, e)| n == space && e.spec().fingerprint == spec.fingerprint && e.spec().pooling == spec.pooling)
    });
    match twin {
        Some(space) => {
            eoutln!(
                "--finetuned {} has the weights of checkpoint {space}: the fine-tuned space is {space}",
                spec.source
            );
            loaded.remove(at);
            space
        }
        None => "finetuned".into(),
    }
}
