//! The vision tower of Hugging Face CLIP (`CLIPVisionModelWithProjection`, `CLIPVisionModel`, or inside a
//! whole `CLIPModel`) in tch: class embedding, pre-layernorm (`pre_layrnorm`, as the checkpoints spell it),
//! pre-norm encoder layers, post_layernorm on the CLS token, and `visual_projection` to the shared image-text
//! space. Field names follow the checkpoint (`embeddings.patch_embedding`, `encoder.layers.N.self_attn.q_proj`).

use tch::Tensor;

use super::config::{Activation, ClipConfig};
use super::layers::{PreNormLayer, TowerOutput, patch_tokens, resize_positions};
use super::load::{LayerNorm, Linear, Weights};

struct Embeddings {
    class_embedding: Tensor,
    patch_embedding: Tensor,
    /// [1, 1 + patches, D].
    position_embedding: Tensor,
    patch: (i64, i64),
    grid: (i64, i64),
}

impl Embeddings {
    fn new(w: &Weights, c: &ClipConfig) -> Embeddings {
        let v = &c.vision;
        let (d, p) = (v.hidden_size, v.patch_size);
        let grid = (v.image_size.0 / p.0, v.image_size.1 / p.1);
        Embeddings {
            class_embedding: w.get("class_embedding", &[d]),
            patch_embedding: w.pp("patch_embedding").get("weight", &[d, v.num_channels, p.0, p.1]),
            position_embedding: w.pp("position_embedding").get("weight", &[grid.0 * grid.1 + 1, d]).unsqueeze(0),
            patch: (p.0, p.1),
            grid,
        }
    }

    fn forward(&self, pixels: &Tensor) -> Tensor {
        let (_, _, height, width) = pixels.size4().expect("NCHW");
        let x = pixels.conv2d::<Tensor>(&self.patch_embedding, None, [self.patch.0, self.patch.1], 0, 1, 1);
        let (x, (h, w)) = patch_tokens(&x);
        let (b, _, d) = x.size3().expect("[batch, tokens, hidden]");
        let x = Tensor::cat(&[self.class_embedding.view([1, 1, d]).expand([b, 1, d], false), x], 1);
        // At the trained size the embeddings as they are; at any other, what transformers computes with
        // interpolate_pos_encoding=True (without it transformers refuses other sizes).
        let pos = if h * w == self.grid.0 * self.grid.1 && height == width {
            self.position_embedding.shallow_clone()
        } else {
            let cls = self.position_embedding.narrow(1, 0, 1);
            let patches = self.position_embedding.narrow(1, 1, self.grid.0 * self.grid.1);
            Tensor::cat(&[cls, resize_positions(&patches, self.grid, (h, w), false, false)], 1)
        };
        x + pos
    }
}

pub struct Clip {
    embeddings: Embeddings,
    pre_layrnorm: LayerNorm,
    layers: Vec<PreNormLayer>,
    post_layernorm: LayerNorm,
    visual_projection: Option<Linear>,
    pub hidden_size: i64,
}

impl Clip {
    /// `tower` is the path of the vision tower's tensors (`vision_model`), `root` that of `visual_projection`.
    pub fn new(tower: &Weights, root: &Weights, projection: bool, c: &ClipConfig) -> Clip {
        let v = &c.vision;
        let act = Activation::parse(&v.hidden_act).expect("checked when the config was read");
        let enc = tower.pp("encoder").pp("layers");
        let d = v.hidden_size;
        Clip {
            embeddings: Embeddings::new(&tower.pp("embeddings"), c),
            pre_layrnorm: LayerNorm::new(&tower.pp("pre_layrnorm"), d, v.layer_norm_eps),
            layers: (0..v.num_hidden_layers)
                .map(|i| {
                    PreNormLayer::new(&enc.pp(i), d, v.intermediate_size, v.num_attention_heads, v.layer_norm_eps, act)
                })
                .collect(),
            post_layernorm: LayerNorm::new(&tower.pp("post_layernorm"), d, v.layer_norm_eps),
            visual_projection: projection
                .then(|| Linear::new(&root.pp("visual_projection"), d, c.projection_dim, false)),
            hidden_size: d,
        }
    }

    pub fn projection_dim(&self) -> Option<i64> {
        self.visual_projection.as_ref().map(|p| p.weight.size()[0])
    }

    pub fn forward(&self, pixels: &Tensor) -> TowerOutput {
        let mut x = self.pre_layrnorm.forward(&self.embeddings.forward(pixels));
        for layer in &self.layers {
            x = layer.forward(&x);
        }
        let pooled = self.post_layernorm.forward(&x.select(1, 0));
        TowerOutput {
            image_embeds: self.visual_projection.as_ref().map(|p| p.forward(&pooled)),
            pooler_output: Some(pooled),
            last_hidden_state: x,
        }
    }
}
