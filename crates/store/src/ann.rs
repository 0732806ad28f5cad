//! The arroy `Cosine` index of each embedding space, kept in the store's `ann` database with the
//! space's index as arroy index. Distances returned here are cosine distances `1 - cos`
//! (arroy's own `(1 - cos) / 2`, doubled), the convention of every score in torchlight.

use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::{Result, RoTxn, RwTxn, Store, StoreError};

pub type Cosine = arroy::distances::Cosine;

/// How to build an index. An explicit tree count makes the build reproducible for a given seed.
#[derive(Debug, Clone, Copy)]
pub struct AnnParams {
    pub n_trees: usize,
    pub seed: u64,
}

impl Default for AnnParams {
    fn default() -> Self {
        AnnParams { n_trees: 50, seed: 42 }
    }
}

impl Store {
    /// (Re)builds the index of `space` from a row-major matrix of `dim`-wide rows, ids 0..N-1.
    /// `cancel` is polled by arroy during the build.
    pub fn build_ann(
        &self,
        wtxn: &mut RwTxn,
        space: u16,
        dim: usize,
        matrix: &[f32],
        params: AnnParams,
        cancel: &(dyn Fn() -> bool + Sync + Send),
    ) -> Result<()> {
        let writer = arroy::Writer::<Cosine>::new(self.db.ann, space, dim);
        let built = (|| -> arroy::Result<()> {
            writer.clear(wtxn)?;
            for (id, row) in matrix.chunks_exact(dim).enumerate() {
                writer.add_item(wtxn, id as u32, row)?;
            }
            let mut rng = StdRng::seed_from_u64(params.seed);
            writer.builder(&mut rng).n_trees(params.n_trees).cancel(cancel).build(wtxn)
        })();
        built.map_err(|e| self.ann_err(e))
    }

    /// arroy's own errors, but a full disk is reported as such, whichever layer hit it.
    fn ann_err(&self, e: arroy::Error) -> StoreError {
        match e {
            arroy::Error::Heed(h) => self.heed_err(h),
            arroy::Error::Io(io) => self.heed_err(heed::Error::Io(io)),
            other => StoreError::Ann(other),
        }
    }

    /// Whether `space` has a built index.
    pub fn has_ann(&self, rtxn: &RoTxn, space: u16) -> bool {
        arroy::Reader::<Cosine>::open(rtxn, space, self.db.ann).is_ok()
    }

    /// The `k` nearest items to item `id` in `space`, itself excluded, as (id, cosine distance).
    pub fn ann_by_item(
        &self,
        rtxn: &RoTxn,
        space: u16,
        id: u32,
        k: usize,
        search_k: Option<usize>,
    ) -> Result<Vec<(u32, f32)>> {
        let reader = arroy::Reader::<Cosine>::open(rtxn, space, self.db.ann)?;
        let mut q = reader.nns(k + 1);
        if let Some(s) = search_k.and_then(std::num::NonZeroUsize::new) {
            q.search_k(s);
        }
        let found = q.by_item(rtxn, id)?.unwrap_or_default();
        Ok(found.into_iter().filter(|&(i, _)| i != id).take(k).map(|(i, d)| (i, 2.0 * d)).collect())
    }

    /// The `k` nearest items to `vector` in `space`, as (id, cosine distance).
    pub fn ann_by_vector(&self, rtxn: &RoTxn, space: u16, vector: &[f32], k: usize) -> Result<Vec<(u32, f32)>> {
        let reader = arroy::Reader::<Cosine>::open(rtxn, space, self.db.ann)?;
        let found = reader.nns(k).by_vector(rtxn, vector)?;
        Ok(found.into_iter().map(|(i, d)| (i, 2.0 * d)).collect())
    }
}
