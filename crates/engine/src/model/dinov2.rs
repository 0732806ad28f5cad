//! Hugging Face DINOv2 (`Dinov2Model`) and DINOv2 with registers (`Dinov2WithRegistersModel`) in tch. Field
//! names follow the checkpoints on the hub (`encoder.layer.N.attention.attention.query`, `mlp.weights_in` for
//! SwiGLU), which transformers 5 still writes: it renames them only in memory.

use tch::Tensor;

use super::config::{Activation, Dinov2Config};
use super::layers::{Mlp, TowerOutput, attend, patch_tokens, resize_positions};
use super::load::{LayerNorm, Linear, Weights};

struct Embeddings {
    cls_token: Tensor,
    position_embeddings: Tensor,
    register_tokens: Option<Tensor>,
    projection_weight: Tensor,
    projection_bias: Tensor,
    patch: (i64, i64),
    /// The trained patch grid of the position embeddings.
    grid: (i64, i64),
    antialias: bool,
}

impl Embeddings {
    fn new(w: &Weights, c: &Dinov2Config) -> Embeddings {
        let (h, p) = (c.hidden_size, c.patch());
        let grid = (c.image_size.0 / p.0, c.image_size.1 / p.1);
        let proj = w.pp("patch_embeddings").pp("projection");
        if c.with_registers || c.use_mask_token {
            // Only masked-image pre-training uses it; taking it keeps the checkpoint check strict.
            let _ = w.get("mask_token", &[1, h]);
        }
        let registers = c.registers();
        Embeddings {
            cls_token: w.get("cls_token", &[1, 1, h]),
            position_embeddings: w.get("position_embeddings", &[1, grid.0 * grid.1 + 1, h]),
            register_tokens: c.with_registers.then(|| w.get("register_tokens", &[1, registers, h])),
            projection_weight: proj.get("weight", &[h, c.num_channels, p.0, p.1]),
            projection_bias: proj.get("bias", &[h]),
            patch: (p.0, p.1),
            grid,
            antialias: c.with_registers,
        }
    }

    fn forward(&self, pixels: &Tensor) -> Tensor {
        let (_, _, height, width) = pixels.size4().expect("NCHW");
        let x =
            pixels.conv2d(&self.projection_weight, Some(&self.projection_bias), [self.patch.0, self.patch.1], 0, 1, 1);
        let (x, (h, w)) = patch_tokens(&x);
        let b = x.size()[0];
        let x = Tensor::cat(&[self.cls_token.expand([b, -1, -1], false), x], 1);
        // transformers keeps the trained embeddings only for a square input with as many patches.
        let pos = if h * w == self.grid.0 * self.grid.1 && height == width {
            self.position_embeddings.shallow_clone()
        } else {
            let cls = self.position_embeddings.narrow(1, 0, 1);
            let patches = self.position_embeddings.narrow(1, 1, self.grid.0 * self.grid.1);
            Tensor::cat(&[cls, resize_positions(&patches, self.grid, (h, w), self.antialias, true)], 1)
        };
        let x = x + pos;
        match &self.register_tokens {
            Some(r) => {
                let n = x.size()[1];
                Tensor::cat(&[x.narrow(1, 0, 1), r.expand([b, -1, -1], false), x.narrow(1, 1, n - 1)], 1)
            }
            None => x,
        }
    }
}

enum Ffn {
    Mlp(Mlp),
    /// `weights_in` holds the gate and up projections stacked: silu(first half) * second half.
    SwiGlu {
        weights_in: Linear,
        weights_out: Linear,
        hidden: i64,
    },
}

impl Ffn {
    fn forward(&self, x: &Tensor) -> Tensor {
        match self {
            Ffn::Mlp(m) => m.forward(x),
            Ffn::SwiGlu { weights_in, weights_out, hidden } => {
                let x12 = weights_in.forward(x);
                let gate = x12.narrow(-1, 0, *hidden);
                let up = x12.narrow(-1, *hidden, *hidden);
                weights_out.forward(&(gate.silu() * up))
            }
        }
    }
}

struct Layer {
    norm1: LayerNorm,
    query: Linear,
    key: Linear,
    value: Linear,
    dense: Linear,
    layer_scale1: Tensor,
    norm2: LayerNorm,
    mlp: Ffn,
    layer_scale2: Tensor,
    heads: i64,
}

impl Layer {
    fn new(w: &Weights, c: &Dinov2Config) -> Layer {
        let (h, eps) = (c.hidden_size, c.layer_norm_eps);
        let a = w.pp("attention").pp("attention");
        let mlp = w.pp("mlp");
        let mlp = if c.use_swiglu_ffn {
            let hidden = c.swiglu_hidden();
            Ffn::SwiGlu {
                weights_in: Linear::new(&mlp.pp("weights_in"), h, 2 * hidden, true),
                weights_out: Linear::new(&mlp.pp("weights_out"), hidden, h, true),
                hidden,
            }
        } else {
            let act = Activation::parse(&c.hidden_act).expect("checked when the config was read");
            Ffn::Mlp(Mlp::new(&mlp, h, c.mlp_hidden(), act))
        };
        Layer {
            norm1: LayerNorm::new(&w.pp("norm1"), h, eps),
            query: Linear::new(&a.pp("query"), h, h, c.qkv_bias),
            key: Linear::new(&a.pp("key"), h, h, c.qkv_bias),
            value: Linear::new(&a.pp("value"), h, h, c.qkv_bias),
            dense: Linear::new(&w.pp("attention").pp("output").pp("dense"), h, h, true),
            layer_scale1: w.pp("layer_scale1").get("lambda1", &[h]),
            norm2: LayerNorm::new(&w.pp("norm2"), h, eps),
            mlp,
            layer_scale2: w.pp("layer_scale2").get("lambda1", &[h]),
            heads: c.num_attention_heads,
        }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        let h = self.norm1.forward(x);
        let a = attend(&self.query.forward(&h), &self.key.forward(&h), &self.value.forward(&h), self.heads);
        let x = x + self.dense.forward(&a) * &self.layer_scale1;
        let y = self.mlp.forward(&self.norm2.forward(&x)) * &self.layer_scale2;
        x + y
    }
}

pub struct Dinov2 {
    embeddings: Embeddings,
    layers: Vec<Layer>,
    layernorm: LayerNorm,
    /// Tokens between CLS and the patches.
    pub registers: i64,
}

impl Dinov2 {
    pub fn new(w: &Weights, c: &Dinov2Config) -> Dinov2 {
        let enc = w.pp("encoder").pp("layer");
        Dinov2 {
            embeddings: Embeddings::new(&w.pp("embeddings"), c),
            layers: (0..c.num_hidden_layers).map(|i| Layer::new(&enc.pp(i), c)).collect(),
            layernorm: LayerNorm::new(&w.pp("layernorm"), c.hidden_size, c.layer_norm_eps),
            registers: c.registers(),
        }
    }

    /// Any input of at least one patch: the position embeddings follow its grid.
    pub fn forward(&self, pixels: &Tensor) -> TowerOutput {
        let mut x = self.embeddings.forward(pixels);
        for layer in &self.layers {
            x = layer.forward(&x);
        }
        let x = self.layernorm.forward(&x);
        TowerOutput { pooler_output: Some(x.select(1, 0)), last_hidden_state: x, image_embeds: None }
    }
}
