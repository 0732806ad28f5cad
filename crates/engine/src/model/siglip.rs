//! The vision tower of Hugging Face SigLIP (`SiglipVisionModel`, or inside a whole `SiglipModel`) in tch: no CLS
//! token, pre-norm encoder layers as CLIP's, post_layernorm on every token, and the attention-pooling head
//! (`head`: a learned probe attends over the tokens through nn.MultiheadAttention, then a residual MLP) that
//! makes pooler_output.

use tch::Tensor;

use super::config::{Activation, SiglipVisionConfig};
use super::layers::{Mlp, PreNormLayer, TowerOutput, attend, patch_tokens, resize_positions};
use super::load::{LayerNorm, Linear, Weights};

struct Embeddings {
    patch_weight: Tensor,
    patch_bias: Tensor,
    /// [1, patches, D].
    position_embedding: Tensor,
    patch: (i64, i64),
    grid: (i64, i64),
}

impl Embeddings {
    fn new(w: &Weights, c: &SiglipVisionConfig) -> Embeddings {
        let (d, p) = (c.hidden_size, c.patch_size);
        let grid = (c.image_size.0 / p.0, c.image_size.1 / p.1);
        let conv = w.pp("patch_embedding");
        Embeddings {
            patch_weight: conv.get("weight", &[d, c.num_channels, p.0, p.1]),
            patch_bias: conv.get("bias", &[d]),
            position_embedding: w.pp("position_embedding").get("weight", &[grid.0 * grid.1, d]).unsqueeze(0),
            patch: (p.0, p.1),
            grid,
        }
    }

    fn forward(&self, pixels: &Tensor) -> Tensor {
        let (_, _, height, width) = pixels.size4().expect("NCHW");
        let x = pixels.conv2d(&self.patch_weight, Some(&self.patch_bias), [self.patch.0, self.patch.1], 0, 1, 1);
        let (x, (h, w)) = patch_tokens(&x);
        // As CLIP: other sizes as transformers computes them with interpolate_pos_encoding=True.
        let pos = if h * w == self.grid.0 * self.grid.1 && height == width {
            self.position_embedding.shallow_clone()
        } else {
            resize_positions(&self.position_embedding, self.grid, (h, w), false, false)
        };
        x + pos
    }
}

/// SiglipMultiheadAttentionPoolingHead.
struct Head {
    probe: Tensor,
    /// nn.MultiheadAttention's packed `in_proj_weight` / `in_proj_bias`, split into query, key and value.
    q: Linear,
    k: Linear,
    v: Linear,
    out_proj: Linear,
    layernorm: LayerNorm,
    mlp: Mlp,
    heads: i64,
}

impl Head {
    fn new(w: &Weights, c: &SiglipVisionConfig, act: Activation) -> Head {
        let d = c.hidden_size;
        let attn = w.pp("attention");
        let in_w = attn.get("in_proj_weight", &[3 * d, d]);
        let in_b = attn.get("in_proj_bias", &[3 * d]);
        let part = |i: i64| Linear { weight: in_w.narrow(0, i * d, d), bias: Some(in_b.narrow(0, i * d, d)) };
        Head {
            probe: w.get("probe", &[1, 1, d]),
            q: part(0),
            k: part(1),
            v: part(2),
            out_proj: Linear::new(&attn.pp("out_proj"), d, d, true),
            layernorm: LayerNorm::new(&w.pp("layernorm"), d, c.layer_norm_eps),
            mlp: Mlp::new(&w.pp("mlp"), d, c.intermediate_size, act),
            heads: c.num_attention_heads,
        }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        let b = x.size()[0];
        let probe = self.probe.expand([b, -1, -1], false);
        let h = attend(&self.q.forward(&probe), &self.k.forward(x), &self.v.forward(x), self.heads);
        let h = self.out_proj.forward(&h);
        let h = &h + self.mlp.forward(&self.layernorm.forward(&h));
        h.select(1, 0)
    }
}

pub struct Siglip {
    embeddings: Embeddings,
    layers: Vec<PreNormLayer>,
    post_layernorm: LayerNorm,
    head: Option<Head>,
}

impl Siglip {
    /// `w` is the path of the vision tower's tensors (`vision_model` in a SiglipModel).
    pub fn new(w: &Weights, c: &SiglipVisionConfig) -> Siglip {
        let act = Activation::parse(&c.hidden_act).expect("checked when the config was read");
        let enc = w.pp("encoder").pp("layers");
        let d = c.hidden_size;
        Siglip {
            embeddings: Embeddings::new(&w.pp("embeddings"), c),
            layers: (0..c.num_hidden_layers)
                .map(|i| {
                    PreNormLayer::new(&enc.pp(i), d, c.intermediate_size, c.num_attention_heads, c.layer_norm_eps, act)
                })
                .collect(),
            post_layernorm: LayerNorm::new(&w.pp("post_layernorm"), d, c.layer_norm_eps),
            head: c.vision_use_head.then(|| Head::new(&w.pp("head"), c, act)),
        }
    }

    pub fn has_head(&self) -> bool {
        self.head.is_some()
    }

    pub fn forward(&self, pixels: &Tensor) -> TowerOutput {
        let mut x = self.embeddings.forward(pixels);
        for layer in &self.layers {
            x = layer.forward(&x);
        }
        let x = self.post_layernorm.forward(&x);
        TowerOutput {
            pooler_output: self.head.as_ref().map(|h| h.forward(&x)),
            last_hidden_state: x,
            image_embeds: None,
        }
    }
}
