use color_eyre::eyre::Result;
use torchlight_cli::{AnalyzeArgs, out};
use torchlight_store::Store;
use torchlight_store::ann::AnnParams;

use crate::analysis::{self, AnalysisError, AnalysisParams, Hooks, UmapSettings};

pub fn run(args: AnalyzeArgs) -> Result<()> {
    let device = crate::runtime::parse_device(args.device)?;
    let dir = args.store.dir()?;
    let store = Store::open(&dir)?;
    let _lock = store.lock_writer("analyze")?;
    let params = AnalysisParams {
        spaces: args.spaces,
        k: args.k,
        near_duplicate_threshold: args.near_duplicate_threshold,
        duplicate_threshold: args.duplicate_threshold,
        device,
        ann: AnnParams { n_trees: args.n_trees, seed: args.seed },
        umap: (!args.no_umap).then_some(UmapSettings {
            n_neighbors: args.umap_neighbors,
            min_dist: args.umap_min_dist,
            seed: args.seed,
            n_epochs: None,
        }),
        approximate: args.approximate,
        ..AnalysisParams::default()
    };
    analyze(&store, &params)
}

/// Runs the analysis with progress on stderr and prints its summary; a signal stops it between spaces'
/// commits, and the error then says how to finish.
pub(super) fn analyze(store: &Store, params: &AnalysisParams) -> Result<()> {
    let progress = super::StageProgress::new();
    let report_progress = |stage: &str, done, total| progress.report(stage, done, total);
    let hooks = Hooks { progress: &report_progress, cancel: &super::stop_requested };
    match analysis::run(store, params, &hooks) {
        Ok(report) => {
            out!("{}", analysis::summary(&report));
            Ok(())
        }
        Err(AnalysisError::Cancelled) => Err(super::interrupted(format!(
            "the analysis keeps every space it finished; run `torchlight analyze --store {}` to finish it",
            store.dir().display()
        ))),
        Err(e) => Err(e.into()),
    }
}
