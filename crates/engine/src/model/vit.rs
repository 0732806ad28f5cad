//! Hugging Face ViT (`ViTModel`, `ViTForImageClassification`) in tch. Struct fields follow the checkpoint's
//! tensor names (`encoder.layer.N.attention.attention.query`, ...), as transformers saves them.

use tch::Tensor;

use super::config::{Activation, VitConfig};
use super::load::{LayerNorm, Linear, Weights};

struct Embeddings {
    cls_token: Tensor,
    position_embeddings: Tensor,
    projection_weight: Tensor,
    projection_bias: Tensor,
    patch: (i64, i64),
}

impl Embeddings {
    fn new(w: &Weights, c: &VitConfig) -> Embeddings {
        let (h, p) = (c.hidden_size, c.patch_size);
        let patches = (c.image_size.0 / p.0) * (c.image_size.1 / p.1);
        let proj = w.pp("patch_embeddings").pp("projection");
        Embeddings {
            cls_token: w.get("cls_token", &[1, 1, h]),
            position_embeddings: w.get("position_embeddings", &[1, patches + 1, h]),
            projection_weight: proj.get("weight", &[h, c.num_channels, p.0, p.1]),
            projection_bias: proj.get("bias", &[h]),
            patch: (p.0, p.1),
        }
    }

    fn forward(&self, pixels: &Tensor) -> Tensor {
        let x =
            pixels.conv2d(&self.projection_weight, Some(&self.projection_bias), [self.patch.0, self.patch.1], 0, 1, 1);
        let x = x.flatten(2, -1).transpose(1, 2);
        let b = x.size()[0];
        let cls = self.cls_token.expand([b, -1, -1], false);
        Tensor::cat(&[cls, x], 1) + &self.position_embeddings
    }
}

struct Attention {
    query: Linear,
    key: Linear,
    value: Linear,
    dense: Linear,
    heads: i64,
}

impl Attention {
    fn new(w: &Weights, c: &VitConfig) -> Attention {
        let a = w.pp("attention");
        let h = c.hidden_size;
        Attention {
            query: Linear::new(&a.pp("query"), h, h, c.qkv_bias),
            key: Linear::new(&a.pp("key"), h, h, c.qkv_bias),
            value: Linear::new(&a.pp("value"), h, h, c.qkv_bias),
            dense: Linear::new(&w.pp("output").pp("dense"), h, h, true),
            heads: c.num_attention_heads,
        }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        let (b, n, d) = x.size3().expect("[batch, tokens, hidden]");
        let split = |t: Tensor| t.view([b, n, self.heads, d / self.heads]).transpose(1, 2);
        let q = split(self.query.forward(x));
        let k = split(self.key.forward(x));
        let v = split(self.value.forward(x));
        let out = Tensor::scaled_dot_product_attention::<Tensor>(&q, &k, &v, None, 0.0, false, None, false);
        self.dense.forward(&out.transpose(1, 2).reshape([b, n, d]))
    }
}

struct Layer {
    attention: Attention,
    layernorm_before: LayerNorm,
    layernorm_after: LayerNorm,
    intermediate: Linear,
    output: Linear,
    act: Activation,
}

impl Layer {
    fn new(w: &Weights, c: &VitConfig) -> Layer {
        let (h, eps) = (c.hidden_size, c.layer_norm_eps);
        Layer {
            attention: Attention::new(&w.pp("attention"), c),
            layernorm_before: LayerNorm::new(&w.pp("layernorm_before"), h, eps),
            layernorm_after: LayerNorm::new(&w.pp("layernorm_after"), h, eps),
            intermediate: Linear::new(&w.pp("intermediate").pp("dense"), h, c.intermediate_size, true),
            output: Linear::new(&w.pp("output").pp("dense"), c.intermediate_size, h, true),
            act: Activation::parse(&c.hidden_act).expect("checked when the config was read"),
        }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        let x = x + self.attention.forward(&self.layernorm_before.forward(x));
        let y = self.act.apply(&self.intermediate.forward(&self.layernorm_after.forward(&x)));
        x + self.output.forward(&y)
    }
}

/// What one forward pass gives: the normalised last hidden state [B, 1 + patches, hidden], the pooler output
/// (tanh(dense(CLS)), only for checkpoints that have a pooler) and the logits of the classifier head.
pub struct VitOutput {
    pub last_hidden_state: Tensor,
    pub pooler_output: Option<Tensor>,
    pub logits: Option<Tensor>,
}

pub struct Vit {
    embeddings: Embeddings,
    layers: Vec<Layer>,
    layernorm: LayerNorm,
    pooler: Option<Linear>,
    classifier: Option<Linear>,
    pub config: VitConfig,
}

impl Vit {
    /// `base` is the path of the ViTModel tensors (root, or `vit` in a classifier checkpoint); `classifier` the
    /// number of classes when the checkpoint has a head at `classifier.*`; `pooler` whether it has `pooler.dense`.
    pub fn new(base: &Weights, head: Option<(&Weights, i64)>, pooler: bool, c: &VitConfig) -> Vit {
        let enc = base.pp("encoder").pp("layer");
        let h = c.hidden_size;
        Vit {
            embeddings: Embeddings::new(&base.pp("embeddings"), c),
            layers: (0..c.num_hidden_layers).map(|i| Layer::new(&enc.pp(i), c)).collect(),
            layernorm: LayerNorm::new(&base.pp("layernorm"), h, c.layer_norm_eps),
            pooler: pooler
                .then(|| Linear::new(&base.pp("pooler").pp("dense"), h, c.pooler_output_size.unwrap_or(h), true)),
            classifier: head.map(|(w, n)| Linear::new(w, h, n, true)),
            config: c.clone(),
        }
    }

    pub fn pooler_dim(&self) -> Option<i64> {
        self.pooler.as_ref().map(|p| p.weight.size()[0])
    }

    pub fn forward(&self, pixels: &Tensor) -> VitOutput {
        let mut x = self.embeddings.forward(pixels);
        for layer in &self.layers {
            x = layer.forward(&x);
        }
        let x = self.layernorm.forward(&x);
        let cls = x.select(1, 0);
        VitOutput {
            pooler_output: self.pooler.as_ref().map(|p| p.forward(&cls).tanh()),
            logits: self.classifier.as_ref().map(|c| c.forward(&cls)),
            last_hidden_state: x,
        }
    }
}
