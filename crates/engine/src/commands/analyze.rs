use color_eyre::eyre::{Result, eyre};

use crate::analysis::{self, AnalysisParams, Hooks, UmapSettings};
use torchlight_store::Store;
use torchlight_store::ann::AnnParams;

use torchlight_cli::AnalyzeArgs;

pub fn run(args: AnalyzeArgs) -> Result<()> {
    let device = crate::runtime::parse_device(&args.device).map_err(|e| eyre!(e))?;
    let store = Store::open(&args.store.dir()?)?;
    let _lock = store.lock_writer("analyze")?;
    let params = AnalysisParams {
        spaces: args.spaces,
        k: args.k,
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
    let progress = super::StageProgress::new();
    let hooks = Hooks { progress: &|stage, done, total| progress.report(stage, done, total), cancel: &|| false };
    let report = analysis::run(&store, &params, &hooks)?;
    print!("{}", analysis::summary(&report));
    Ok(())
}
