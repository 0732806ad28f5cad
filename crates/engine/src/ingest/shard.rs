//! `ingest --shard I/N`: one contiguous part of the records into a store of its own, so that the tasks of a job
//! array (Slurm, or a Kubernetes Indexed Job) each ingest a part; `torchlight merge` joins the parts into the
//! store a whole run makes.
//!
//! The part is `torchlight_store::merge::split_range`: whole batches, so every model batch of a shard is the
//! batch a whole run makes and the embeddings agree bit for bit. The pipeline runs unchanged over a view of the
//! source that starts at the part's first record, so ids and cursors are local to the shard (a shard cannot
//! know how many records before its part are skipped); the store records which part it holds (`ShardInfo`),
//! from which merge renumbers and checks.

use torchlight_cli::ShardArg;
use torchlight_store::merge::split_range;
use torchlight_store::{ShardInfo, Store};

use super::{IngestOptions, Result, SpaceModel, Summary};
use crate::source::{RecordIter, Source, SourceInfo};

/// Which part of how many.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum ShardError {
    #[error(
        "--shard auto found no job array: it reads SLURM_ARRAY_TASK_ID and SLURM_ARRAY_TASK_COUNT (a Slurm job \
         array, sbatch --array=0-N-1) or JOB_COMPLETION_INDEX (a Kubernetes Indexed Job, with --shard auto/N); \
         elsewhere give --shard I/N"
    )]
    NoJobArray,
    #[error("--shard auto: {var}={value} is not a whole number")]
    NotANumber { var: &'static str, value: String },
    #[error(
        "--shard auto: SLURM_ARRAY_TASK_ID is set but not {var}: this Slurm is too old for --shard auto; give --shard I/N"
    )]
    SlurmVar { var: &'static str },
    #[error(
        "--shard auto: Slurm array task {id} is not one of {count} evenly spaced tasks from {min} (step {step}): \
         submit the array as a range, such as --array=0-{last}"
    )]
    SlurmArray { id: u64, min: u64, step: u64, count: u64, last: u64 },
    #[error(
        "--shard auto/{given}: the Slurm job array has {count} tasks; give --shard auto (the count is the array's)"
    )]
    SlurmCount { given: u32, count: u64 },
    #[error(
        "--shard auto: JOB_COMPLETION_INDEX={index} is set, but not how many shards there are: give --shard auto/N \
         with N the Job's completions"
    )]
    NoCount { index: u64 },
    #[error("--shard auto/{count}: JOB_COMPLETION_INDEX={index} is not below {count}: N must be the Job's completions")]
    IndexTooBig { index: u64, count: u32 },
    #[error(
        "the store at {dir} holds shard {stored}; now asked for shard {given}: give the same --shard, --limit and \
         --batch-size, or another --store"
    )]
    OtherShard { dir: String, stored: String, given: String },
    #[error(
        "the store at {dir} holds shard {stored}: continue it with the same --shard, or join the shards with \
         `torchlight merge`; a whole ingest needs a store of its own"
    )]
    ShardStore { dir: String, stored: String },
    #[error("the store at {dir} holds a whole ingest, not a shard: give each shard a store of its own (--store)")]
    WholeStore { dir: String },
    #[error(
        "the store at {dir} is an unfinished merge: rerun the same `torchlight merge` to finish it before ingesting \
         into it"
    )]
    UnfinishedMerge { dir: String },
}

/// The shard of `--shard`: as given, or for `auto` from the job array's variables, read through `env`.
pub fn resolve_shard(arg: ShardArg, env: &dyn Fn(&str) -> Option<String>) -> Result<Shard, ShardError> {
    let count = match arg {
        ShardArg::Index { index, count } => return Ok(Shard { index, count }),
        ShardArg::Auto { count } => count,
    };
    let number = |var: &'static str| -> Result<Option<u64>, ShardError> {
        match env(var) {
            None => Ok(None),
            Some(value) => {
                value.trim().parse().map(Some).map_err(|_| ShardError::NotANumber { var, value: value.clone() })
            }
        }
    };
    if let Some(id) = number("SLURM_ARRAY_TASK_ID")? {
        let needed = |var| number(var)?.ok_or(ShardError::SlurmVar { var });
        let tasks = needed("SLURM_ARRAY_TASK_COUNT")?;
        // Arrays need not start at 0 (--array=1-4) and may step (--array=0-6:2).
        let min = needed("SLURM_ARRAY_TASK_MIN")?;
        let step = number("SLURM_ARRAY_TASK_STEP")?.unwrap_or(1).max(1);
        let index = id.checked_sub(min).filter(|d| d % step == 0).map(|d| d / step).filter(|&i| i < tasks);
        let index =
            index.ok_or(ShardError::SlurmArray { id, min, step, count: tasks, last: tasks.saturating_sub(1) })?;
        if let Some(given) = count
            && u64::from(given) != tasks
        {
            return Err(ShardError::SlurmCount { given, count: tasks });
        }
        return Ok(Shard { index: index as u32, count: tasks as u32 });
    }
    if let Some(index) = number("JOB_COMPLETION_INDEX")? {
        let count = count.ok_or(ShardError::NoCount { index })?;
        if index >= u64::from(count) {
            return Err(ShardError::IndexTooBig { index, count });
        }
        return Ok(Shard { index: index as u32, count });
    }
    Err(ShardError::NoJobArray)
}

/// The part of the records shard `shard` holds, with `opts.limit` and `opts.batch_size` as given.
pub fn shard_info(source: &dyn Source, opts: &IngestOptions, shard: Shard) -> ShardInfo {
    let info = source.info();
    let total = opts.limit.map_or(info.len, |l| l.min(info.len)) as u64;
    let batch = opts.batch_size.max(1) as u64;
    let (start, end) = split_range(total, batch, shard.index, shard.count);
    ShardInfo {
        index: shard.index,
        count: shard.count,
        start,
        end,
        total,
        source_len: info.len as u64,
        batch_size: batch,
        fingerprint: info.fingerprint.clone(),
    }
}

/// `I/N` and the records of a shard, for messages.
pub fn describe(s: &ShardInfo) -> String {
    format!("{}/{} (records {}..{} of {}, batch size {})", s.index, s.count, s.start, s.end, s.total, s.batch_size)
}

/// Ingests shard `shard` of the source into `store`, resumable like any ingest.
pub fn run_shard(
    store: &Store,
    source: &dyn Source,
    models: Vec<SpaceModel>,
    opts: &IngestOptions,
    shard: Shard,
) -> Result<Summary> {
    let part = shard_info(source, opts, shard);
    let view = Part {
        inner: source,
        start: part.start as usize,
        info: SourceInfo { len: (part.end - part.start) as usize, ..source.info().clone() },
    };
    super::run_in(store, &view, models, &IngestOptions { limit: None, ..opts.clone() }, Some(&part))
}

/// The checks a store gets before a shard (or a whole run, `given` None) writes it: a shard store only takes the
/// same shard again, a whole run's store no shard, and an unfinished merge nothing.
pub(super) fn check_store(store: &Store, rtxn: &torchlight_store::RoTxn, given: Option<&ShardInfo>) -> Result<()> {
    let dir = store.dir().display().to_string();
    if let Some(m) = store.merge_state(rtxn)?
        && !m.done
    {
        return Err(ShardError::UnfinishedMerge { dir }.into());
    }
    match (store.shard(rtxn)?, given) {
        (Some(stored), Some(given)) if stored != *given => {
            Err(ShardError::OtherShard { dir, stored: describe(&stored), given: describe(given) }.into())
        }
        (Some(stored), None) => Err(ShardError::ShardStore { dir, stored: describe(&stored) }.into()),
        (None, Some(_))
            if store.item_count(rtxn)? > 0
                || store.cursor(rtxn, torchlight_store::cursors::RECORDS)? > 0
                || !store.skipped(rtxn)?.is_empty() =>
        {
            Err(ShardError::WholeStore { dir }.into())
        }
        _ => Ok(()),
    }
}

/// The records `start..start + info.len` of a source, as a source of their own.
struct Part<'a> {
    inner: &'a dyn Source,
    start: usize,
    info: SourceInfo,
}

impl Source for Part<'_> {
    fn info(&self) -> &SourceInfo {
        &self.info
    }

    fn records(&self, start: usize) -> crate::source::Result<RecordIter<'_>> {
        let left = self.info.len.saturating_sub(start);
        Ok(Box::new(self.inner.records(self.start + start)?.take(left)))
    }
}
