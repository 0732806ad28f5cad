//! Hugging Face Swin (`SwinModel`, `SwinForImageClassification`) in tch, with transformers' semantics: patches
//! padded to the patch size, windows padded to the window size, cyclic shift on odd blocks with the -100
//! attention mask, the window shrunk (and the shift dropped) when a stage is no larger than a window, odd
//! stages padded before patch merging, and the pooled output = mean of the final-layernormed tokens.
//! Field names follow the checkpoint (`encoder.layers.S.blocks.B.attention.self.query`, ...).

use tch::{Device, Kind, Tensor};

use super::ModelError;
use super::config::{Activation, SwinConfig};
use super::load::{LayerNorm, Linear, Weights};

struct Embeddings {
    projection_weight: Tensor,
    projection_bias: Tensor,
    norm: LayerNorm,
    position_embeddings: Option<Tensor>,
    patch: (i64, i64),
}

impl Embeddings {
    fn new(w: &Weights, c: &SwinConfig) -> Embeddings {
        let (e, p) = (c.embed_dim, c.patch_size);
        let proj = w.pp("patch_embeddings").pp("projection");
        let patches = (c.image_size.0 / p.0) * (c.image_size.1 / p.1);
        Embeddings {
            projection_weight: proj.get("weight", &[e, c.num_channels, p.0, p.1]),
            projection_bias: proj.get("bias", &[e]),
            // transformers' SwinEmbeddings keeps the LayerNorm default eps here, not config.layer_norm_eps.
            norm: LayerNorm::new(&w.pp("norm"), e, 1e-5),
            position_embeddings: c.use_absolute_embeddings.then(|| w.get("position_embeddings", &[1, patches, e])),
            patch: (p.0, p.1),
        }
    }

    /// [B, C, H, W] -> tokens [B, h*w, E] and the patch grid (h, w).
    fn forward(&self, pixels: &Tensor) -> (Tensor, (i64, i64)) {
        let (_, _, hh, ww) = pixels.size4().expect("NCHW");
        let (ph, pw) = self.patch;
        let pad_w = (pw - ww % pw) % pw;
        let pad_h = (ph - hh % ph) % ph;
        let x = if pad_w + pad_h > 0 { pixels.constant_pad_nd([0, pad_w, 0, pad_h]) } else { pixels.shallow_clone() };
        let x = x.conv2d(&self.projection_weight, Some(&self.projection_bias), [ph, pw], 0, 1, 1);
        let (_, _, h, w) = x.size4().expect("NCHW");
        let x = self.norm.forward(&x.flatten(2, -1).transpose(1, 2));
        let x = match &self.position_embeddings {
            Some(p) => x + p,
            None => x,
        };
        (x, (h, w))
    }
}

/// transformers' relative position index for a (ws x ws) window: [ws*ws * ws*ws] indices into the bias table.
fn relative_position_index(ws: i64) -> Vec<i64> {
    let n = ws * ws;
    let coords: Vec<(i64, i64)> = (0..n).map(|i| (i / ws, i % ws)).collect();
    let mut out = Vec::with_capacity((n * n) as usize);
    for a in &coords {
        for b in &coords {
            let dy = a.0 - b.0 + ws - 1;
            let dx = a.1 - b.1 + ws - 1;
            out.push(dy * (2 * ws - 1) + dx);
        }
    }
    out
}

struct Attention {
    query: Linear,
    key: Linear,
    value: Linear,
    dense: Linear,
    /// [heads, N, N] relative position bias for this block's window, gathered once at load.
    bias: Tensor,
    heads: i64,
}

impl Attention {
    fn new(w: &Weights, c: &SwinConfig, dim: i64, heads: i64, window: i64) -> Attention {
        let s = w.pp("self");
        let table = s.get("relative_position_bias_table", &[(2 * window - 1) * (2 * window - 1), heads]);
        let n = window * window;
        let index = Tensor::from_slice(&relative_position_index(window)).to_device(table.device());
        let bias = if table.size().len() == 2 && table.stride()[0] != 0 {
            table.index_select(0, &index).view([n, n, heads]).permute([2, 0, 1]).contiguous()
        } else {
            // Shape-only or placeholder weights: keep the shape, skip the gather.
            Tensor::zeros([1], (Kind::Float, Device::Cpu)).expand([heads, n, n], false)
        };
        Attention {
            query: Linear::new(&s.pp("query"), dim, dim, c.qkv_bias),
            key: Linear::new(&s.pp("key"), dim, dim, c.qkv_bias),
            value: Linear::new(&s.pp("value"), dim, dim, c.qkv_bias),
            dense: Linear::new(&w.pp("output").pp("dense"), dim, dim, true),
            bias,
            heads,
        }
    }

    /// `x` [B*nW, N, C] tokens of each window; `mask` [nW, N, N] (0 / -100) for shifted windows.
    fn forward(&self, x: &Tensor, mask: Option<&Tensor>) -> Tensor {
        let (bw, n, d) = x.size3().expect("[windows, tokens, dim]");
        let split = |t: Tensor| t.view([bw, n, self.heads, d / self.heads]).transpose(1, 2);
        let q = split(self.query.forward(x));
        let k = split(self.key.forward(x));
        let v = split(self.value.forward(x));
        // Additive attention mask = relative position bias (+ shift mask), broadcast over the batch.
        let mut bias = self.bias.to_kind(q.kind()).unsqueeze(0);
        if let Some(m) = mask {
            let nw = m.size()[0];
            bias = (bias + m.to_kind(q.kind()).unsqueeze(1)).unsqueeze(0); // [1, nW, heads, N, N]
            bias = bias.expand([bw / nw, nw, self.heads, n, n], false).reshape([bw, self.heads, n, n]);
        }
        let out = Tensor::scaled_dot_product_attention(&q, &k, &v, Some(&bias), 0.0, false, None, false);
        self.dense.forward(&out.transpose(1, 2).reshape([bw, n, d]))
    }
}

struct Block {
    layernorm_before: LayerNorm,
    attention: Attention,
    layernorm_after: LayerNorm,
    intermediate: Linear,
    output: Linear,
    act: Activation,
    /// Window size and shift as configured; `forward` shrinks them for small stages like transformers does.
    window: i64,
    shift: i64,
}

/// transformers' rule: a stage no larger than the window uses one window of the stage's size, without shift.
fn effective_window(res: (i64, i64), window: i64, shift: i64) -> (i64, i64) {
    let m = res.0.min(res.1);
    if m <= window { (m, 0) } else { (window, shift) }
}

fn window_partition(x: &Tensor, ws: i64) -> Tensor {
    let (b, h, w, c) = x.size4().expect("[B, H, W, C]");
    x.view([b, h / ws, ws, w / ws, ws, c]).permute([0, 1, 3, 2, 4, 5]).contiguous().view([-1, ws * ws, c])
}

fn window_reverse(windows: &Tensor, ws: i64, h: i64, w: i64) -> Tensor {
    let c = *windows.size().last().expect("[windows, ws, ws, C]");
    windows.view([-1, h / ws, w / ws, ws, ws, c]).permute([0, 1, 3, 2, 4, 5]).contiguous().view([-1, h, w, c])
}

/// The shifted-window mask: 0 within a region, -100 across regions. [nW, N, N].
fn shift_mask(h: i64, w: i64, ws: i64, shift: i64, device: Device) -> Tensor {
    let region = |i: i64, len: i64| {
        if i < len - ws {
            0
        } else if i < len - shift {
            1
        } else {
            2
        }
    };
    let mut img = vec![0f32; (h * w) as usize];
    for y in 0..h {
        for x in 0..w {
            img[(y * w + x) as usize] = (region(y, h) * 3 + region(x, w)) as f32;
        }
    }
    let img = Tensor::from_slice(&img).view([1, h, w, 1]);
    let mw = window_partition(&img, ws).view([-1, ws * ws]);
    let diff = mw.unsqueeze(1) - mw.unsqueeze(2);
    let zeros = diff.zeros_like();
    zeros.where_self(&diff.eq(0.0), &Tensor::full_like(&diff, -100.0)).to_device(device)
}

impl Block {
    fn new(w: &Weights, c: &SwinConfig, dim: i64, heads: i64, res: (i64, i64), shift: i64) -> Block {
        let eps = c.layer_norm_eps;
        let hidden = (c.mlp_ratio * dim as f64) as i64;
        // transformers 4 sized the bias table for the window of the configured resolution.
        let (window, _) = effective_window(res, c.window_size, shift);
        Block {
            layernorm_before: LayerNorm::new(&w.pp("layernorm_before"), dim, eps),
            attention: Attention::new(&w.pp("attention"), c, dim, heads, window),
            layernorm_after: LayerNorm::new(&w.pp("layernorm_after"), dim, eps),
            intermediate: Linear::new(&w.pp("intermediate").pp("dense"), dim, hidden, true),
            output: Linear::new(&w.pp("output").pp("dense"), hidden, dim, true),
            act: Activation::parse(&c.hidden_act).expect("checked when the config was read"),
            window: c.window_size,
            shift,
        }
    }

    fn forward(&self, x: &Tensor, (h, w): (i64, i64)) -> Result<Tensor, ModelError> {
        let (b, _, c) = x.size3().expect("[B, L, C]");
        let (ws, shift) = effective_window((h, w), self.window, self.shift);
        let table_window = (self.attention.bias.size()[1] as f64).sqrt() as i64;
        if ws != table_window {
            return Err(ModelError::Forward(format!(
                "a {h}x{w} Swin stage needs {ws}x{ws} windows but the checkpoint's bias table is for \
                 {table_window}x{table_window}: feed images of the size in config.json"
            )));
        }
        let y = self.layernorm_before.forward(x).view([b, h, w, c]);
        let pad_r = (ws - w % ws) % ws;
        let pad_b = (ws - h % ws) % ws;
        let y = if pad_r + pad_b > 0 { y.constant_pad_nd([0, 0, 0, pad_r, 0, pad_b]) } else { y };
        let (hp, wp) = (h + pad_b, w + pad_r);
        let y = if shift > 0 { y.roll([-shift, -shift], [1, 2]) } else { y };
        let mask = (shift > 0).then(|| shift_mask(hp, wp, ws, shift, x.device()));
        let windows = window_partition(&y, ws);
        let attended = self.attention.forward(&windows, mask.as_ref());
        let y = window_reverse(&attended.view([-1, ws, ws, c]), ws, hp, wp);
        let y = if shift > 0 { y.roll([shift, shift], [1, 2]) } else { y };
        let y = if pad_r + pad_b > 0 { y.narrow(1, 0, h).narrow(2, 0, w) } else { y };
        let x = x + y.contiguous().view([b, h * w, c]);
        let z = self.act.apply(&self.intermediate.forward(&self.layernorm_after.forward(&x)));
        Ok(&x + self.output.forward(&z))
    }
}

struct PatchMerging {
    norm: LayerNorm,
    reduction: Linear,
}

impl PatchMerging {
    fn new(w: &Weights, dim: i64) -> PatchMerging {
        PatchMerging {
            // transformers builds this LayerNorm with the default eps.
            norm: LayerNorm::new(&w.pp("norm"), 4 * dim, 1e-5),
            reduction: Linear::new(&w.pp("reduction"), 4 * dim, 2 * dim, false),
        }
    }

    fn forward(&self, x: &Tensor, (h, w): (i64, i64)) -> Tensor {
        let (b, _, c) = x.size3().expect("[B, L, C]");
        let x = x.view([b, h, w, c]);
        let x = if h % 2 == 1 || w % 2 == 1 { x.constant_pad_nd([0, 0, 0, w % 2, 0, h % 2]) } else { x };
        let even_odd = |r: i64, c0: i64| x.slice(1, r, None, 2).slice(2, c0, None, 2);
        let x = Tensor::cat(&[even_odd(0, 0), even_odd(1, 0), even_odd(0, 1), even_odd(1, 1)], -1);
        let x = x.view([b, -1, 4 * c]);
        self.reduction.forward(&self.norm.forward(&x))
    }
}

struct Stage {
    blocks: Vec<Block>,
    downsample: Option<PatchMerging>,
}

pub struct SwinOutput {
    /// [B, tokens of the last stage, num_features] after the final layernorm.
    pub last_hidden_state: Tensor,
    /// Mean over tokens of `last_hidden_state`: [B, num_features].
    pub pooler_output: Tensor,
    pub logits: Option<Tensor>,
}

pub struct Swin {
    embeddings: Embeddings,
    stages: Vec<Stage>,
    layernorm: LayerNorm,
    classifier: Option<Linear>,
    pub config: SwinConfig,
}

impl Swin {
    pub fn new(base: &Weights, head: Option<(&Weights, i64)>, c: &SwinConfig) -> Swin {
        let enc = base.pp("encoder").pp("layers");
        let mut res = (c.image_size.0 / c.patch_size.0, c.image_size.1 / c.patch_size.1);
        let n = c.depths.len();
        let mut stages = Vec::with_capacity(n);
        for (s, (&depth, &heads)) in c.depths.iter().zip(&c.num_heads).enumerate() {
            let dim = c.embed_dim << s;
            let w = enc.pp(s);
            let blocks = (0..depth)
                .map(|i| {
                    let shift = if i % 2 == 0 { 0 } else { c.window_size / 2 };
                    Block::new(&w.pp("blocks").pp(i), c, dim, heads, res, shift)
                })
                .collect();
            let downsample = (s + 1 < n).then(|| PatchMerging::new(&w.pp("downsample"), dim));
            stages.push(Stage { blocks, downsample });
            res = ((res.0 + 1) / 2, (res.1 + 1) / 2);
        }
        let nf = c.num_features();
        Swin {
            embeddings: Embeddings::new(&base.pp("embeddings"), c),
            stages,
            layernorm: LayerNorm::new(&base.pp("layernorm"), nf, c.layer_norm_eps),
            classifier: head.map(|(w, k)| Linear::new(w, nf, k, true)),
            config: c.clone(),
        }
    }

    pub fn forward(&self, pixels: &Tensor) -> Result<SwinOutput, ModelError> {
        let (mut x, mut res) = self.embeddings.forward(pixels);
        for stage in &self.stages {
            for block in &stage.blocks {
                x = block.forward(&x, res)?;
            }
            if let Some(d) = &stage.downsample {
                x = d.forward(&x, res);
                res = ((res.0 + 1) / 2, (res.1 + 1) / 2);
            }
        }
        let x = self.layernorm.forward(&x);
        let pooled = x.mean_dim(1, false, None);
        Ok(SwinOutput {
            logits: self.classifier.as_ref().map(|c| c.forward(&pooled)),
            pooler_output: pooled,
            last_hidden_state: x,
        })
    }
}
