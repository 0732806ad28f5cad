//! Pieces the DINOv2, CLIP and SigLIP vision towers share: multi-head attention, the pre-norm encoder layer of
//! CLIP and SigLIP (the same tensor names in both), and position embeddings at another input size.

use tch::{Kind, Tensor};

use super::config::Activation;
use super::load::{LayerNorm, Linear, Weights};

/// Scaled dot-product attention of `q` [B, n, d] over `k`, `v` [B, m, d] in `heads` heads: [B, n, d].
pub fn attend(q: &Tensor, k: &Tensor, v: &Tensor, heads: i64) -> Tensor {
    let (b, n, d) = q.size3().expect("[batch, tokens, hidden]");
    let m = k.size()[1];
    let split = |t: &Tensor, len: i64| t.view([b, len, heads, d / heads]).transpose(1, 2);
    let out = Tensor::scaled_dot_product_attention::<Tensor>(
        &split(q, n),
        &split(k, m),
        &split(v, m),
        None,
        0.0,
        false,
        None,
        false,
    );
    out.transpose(1, 2).reshape([b, n, d])
}

/// `fc1`, the activation, `fc2` (CLIPMLP / SiglipMLP / Dinov2MLP).
pub struct Mlp {
    fc1: Linear,
    fc2: Linear,
    act: Activation,
}

impl Mlp {
    pub fn new(w: &Weights, dim: i64, hidden: i64, act: Activation) -> Mlp {
        Mlp {
            fc1: Linear::new(&w.pp("fc1"), dim, hidden, true),
            fc2: Linear::new(&w.pp("fc2"), hidden, dim, true),
            act,
        }
    }

    pub fn forward(&self, x: &Tensor) -> Tensor {
        self.fc2.forward(&self.act.apply(&self.fc1.forward(x)))
    }
}

/// The encoder layer of CLIP and SigLIP: `x + attn(layer_norm1(x))`, then `x + mlp(layer_norm2(x))`, with
/// `self_attn.{q,k,v,out}_proj` and `mlp.{fc1,fc2}`.
pub struct PreNormLayer {
    q_proj: Linear,
    k_proj: Linear,
    v_proj: Linear,
    out_proj: Linear,
    layer_norm1: LayerNorm,
    layer_norm2: LayerNorm,
    mlp: Mlp,
    heads: i64,
}

impl PreNormLayer {
    pub fn new(w: &Weights, dim: i64, intermediate: i64, heads: i64, eps: f64, act: Activation) -> PreNormLayer {
        let a = w.pp("self_attn");
        PreNormLayer {
            q_proj: Linear::new(&a.pp("q_proj"), dim, dim, true),
            k_proj: Linear::new(&a.pp("k_proj"), dim, dim, true),
            v_proj: Linear::new(&a.pp("v_proj"), dim, dim, true),
            out_proj: Linear::new(&a.pp("out_proj"), dim, dim, true),
            layer_norm1: LayerNorm::new(&w.pp("layer_norm1"), dim, eps),
            layer_norm2: LayerNorm::new(&w.pp("layer_norm2"), dim, eps),
            mlp: Mlp::new(&w.pp("mlp"), dim, intermediate, act),
            heads,
        }
    }

    pub fn forward(&self, x: &Tensor) -> Tensor {
        let h = self.layer_norm1.forward(x);
        let (q, k, v) = (self.q_proj.forward(&h), self.k_proj.forward(&h), self.v_proj.forward(&h));
        let x = x + self.out_proj.forward(&attend(&q, &k, &v, self.heads));
        let y = self.mlp.forward(&self.layer_norm2.forward(&x));
        x + y
    }
}

/// Patch position embeddings `pos` [1, gh * gw, D] of a trained (gh, gw) grid, resized to a (h, w) grid as
/// transformers' `interpolate_pos_encoding` does: `interpolate(size=(h, w), mode="bicubic",
/// align_corners=False)`, which gives libtorch the output size and no scale factors; `antialias` as DINOv2 with
/// registers asks for it. `float32` interpolates in fp32 and casts back, as DINOv2 does (CLIP and SigLIP
/// interpolate in the model's precision).
pub fn resize_positions(pos: &Tensor, grid: (i64, i64), to: (i64, i64), antialias: bool, float32: bool) -> Tensor {
    let d = pos.size()[2];
    let kind = pos.kind();
    let x = pos.reshape([1, grid.0, grid.1, d]).permute([0, 3, 1, 2]);
    let x = if float32 { x.to_kind(Kind::Float) } else { x };
    let x = if antialias {
        x.internal_upsample_bicubic2d_aa([to.0, to.1], false, None, None)
    } else {
        x.upsample_bicubic2d([to.0, to.1], false, None, None)
    };
    x.permute([0, 2, 3, 1]).reshape([1, to.0 * to.1, d]).to_kind(kind)
}

/// A patch embedding convolution's output [B, D, h, w] as tokens [B, h * w, D], and its grid (h, w).
pub fn patch_tokens(x: &Tensor) -> (Tensor, (i64, i64)) {
    let (_, _, h, w) = x.size4().expect("NCHW");
    (x.flatten(2, -1).transpose(1, 2), (h, w))
}

/// What one forward pass of a foundation-model vision tower gives.
pub struct TowerOutput {
    /// [B, tokens, hidden]: layernormed for DINOv2 and SigLIP; CLIP's is the encoder's output, before
    /// post_layernorm, as transformers returns it.
    pub last_hidden_state: Tensor,
    /// DINOv2: the layernormed CLS token; CLIP: post_layernorm(CLS); SigLIP: the attention-pooling head (None
    /// without a head).
    pub pooler_output: Option<Tensor>,
    /// CLIP: visual_projection(pooler_output), when the checkpoint has the projection.
    pub image_embeds: Option<Tensor>,
}
