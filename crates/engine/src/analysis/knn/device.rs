//! The device path (GPU, or euclidean): blocks of queries against the whole matrix on the device, `topk`
//! there, and only `k` candidates per query back to the host. The screen also searches its items without a
//! proof this way.

use tch::{Device, Tensor};

use super::rows::normalised_rows;
use super::simd::Kernels;
use super::{Candidates, KnnOptions, Metric, check_cancel};
use crate::analysis::{AnalysisError, Hooks};

/// Blocks of queries against the whole matrix on `opts.device`, self masked, `topk` on the device.
pub(super) fn query_blocks(
    x: &[f32],
    n: usize,
    d: usize,
    queries: &[u32],
    k: usize,
    opts: &KnnOptions,
    hooks: &Hooks,
) -> Result<Candidates, AnalysisError> {
    let dev = opts.device;
    let (base, bias) = match opts.metric {
        Metric::Cosine => (normalised_rows(x, d, Kernels::new(opts.simd)), None),
        Metric::Euclidean => {
            // argmax_j (a.b_j - |b_j|^2 / 2) is argmin_j |a - b_j|^2.
            let half_sq: Vec<f32> = x
                .chunks_exact(d)
                .map(|r| (r.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / 2.0) as f32)
                .collect();
            (x.to_vec(), Some(Tensor::from_slice(&half_sq).to_device(dev).view([1, n as i64])))
        }
    };
    let xt = Tensor::from_slice(&base).view([n as i64, d as i64]).to_device(dev);
    drop(base);
    search_blocks(&xt, bias.as_ref(), queries, k, opts, "neighbours", hooks)
}

/// The queries' `k` best by `x . y - bias` against all rows of `xt` (`[n, d]` on the device), self masked.
pub(super) fn search_blocks(
    xt: &Tensor,
    bias: Option<&Tensor>,
    queries: &[u32],
    k: usize,
    opts: &KnnOptions,
    stage: &str,
    hooks: &Hooks,
) -> Result<Candidates, AnalysisError> {
    let (dev, n) = (xt.device(), xt.size()[0] as usize);
    let bq = (opts.device_block_bytes / (4 * n)).clamp(1, 4096);
    let mut ids = Vec::with_capacity(queries.len() * k);
    let mut sims = Vec::with_capacity(queries.len() * k);
    let total = queries.len().div_ceil(bq);
    for (b, chunk) in queries.chunks(bq).enumerate() {
        check_cancel(hooks)?;
        let q_ids: Vec<i64> = chunk.iter().map(|&q| i64::from(q)).collect();
        let q_idx = Tensor::from_slice(&q_ids).to_device(dev);
        let q = xt.index_select(0, &q_idx);
        let mut s = q.mm(&xt.tr());
        if let Some(bias) = bias {
            s -= bias;
        }
        let _ = s.scatter_value_(1, &q_idx.view([-1, 1]), f64::NEG_INFINITY);
        let (val, idx) = s.topk(k as i64, 1, true, true);
        let idx = Vec::<i64>::try_from(idx.to_device(Device::Cpu).contiguous().view([-1]))?;
        ids.extend(idx.into_iter().map(|i| i as u32));
        sims.extend(Vec::<f32>::try_from(val.to_device(Device::Cpu).contiguous().view([-1]))?);
        (hooks.progress)(stage, b + 1, total);
    }
    Ok(Candidates { queries: queries.to_vec(), ids, sims })
}
