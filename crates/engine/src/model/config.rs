//! Hugging Face `config.json` for the ViT, Swin, DINOv2 (with and without registers), CLIP and SigLIP families:
//! the fields that change the computation, with transformers' defaults for the ones a file omits. Fields that only
//! matter for training (dropouts, initializer_range, drop_path_rate, layerscale_value: the init of a tensor the
//! checkpoint holds), for other heads or uses (encoder_stride: masked-image decoder; out_features, apply_layernorm:
//! DINOv2 as a backbone) or for the text tower of CLIP and SigLIP are accepted and ignored on purpose.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use super::ModelError;

/// `image_size` / `patch_size`: an int or a [height, width] pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size2(pub i64, pub i64);

impl<'de> Deserialize<'de> for Size2 {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            One(i64),
            Two([i64; 2]),
        }
        Ok(match Raw::deserialize(d)? {
            Raw::One(n) => Size2(n, n),
            Raw::Two([h, w]) => Size2(h, w),
        })
    }
}

/// Activation functions by their transformers `ACT2FN` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// Exact (erf) GELU: "gelu".
    Gelu,
    /// tanh approximation: "gelu_new", "gelu_pytorch_tanh", "gelu_fast".
    GeluTanh,
    QuickGelu,
    Relu,
    Silu,
}

/// What is wrong with a config.json.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("missing: a Hugging Face model directory has config.json and model.safetensors")]
    Missing,
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    #[error("architecture {0} is not supported: torchlight runs {SUPPORTED}, or any TorchScript module (.pt)")]
    Architecture(String),
    #[error("config.json has no model_type; torchlight runs {MODEL_TYPES} checkpoints")]
    NoModelType,
    #[error(
        "model_type '{0}' is not supported: torchlight runs {MODEL_TYPES} checkpoints ({SUPPORTED}), or any \
         model exported to TorchScript (.pt, see the README, section Models)"
    )]
    ModelType(String),
    #[error("architecture {architecture} does not go with model_type '{model_type}'")]
    ArchitectureType { architecture: String, model_type: String },
    #[error("{0} must be positive")]
    NotPositive(&'static str),
    #[error("hidden_act '{0}' is not supported (gelu, gelu_new, relu, silu are)")]
    Activation(String),
    #[error("hidden_size {hidden} is not a multiple of num_attention_heads {heads}")]
    Heads { hidden: i64, heads: i64 },
    #[error("pooler_act '{0}' is not supported (tanh is)")]
    PoolerAct(String),
    #[error("depths {depths:?} and num_heads {heads:?} must have the same length")]
    Depths { depths: Vec<i64>, heads: Vec<i64> },
    #[error("patch_norm = false is not supported (transformers' Swin always normalises patches)")]
    PatchNorm,
    #[error("num_channels {0} is not supported (1 or 3)")]
    Channels(i64),
    #[error("id2label key '{0}' is not an integer")]
    Id2LabelKey(String),
    #[error("id2label ids are not 0..n-1")]
    Id2LabelIds,
}

impl Activation {
    pub fn parse(name: &str) -> Result<Activation, ConfigError> {
        Ok(match name {
            "gelu" => Activation::Gelu,
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Activation::GeluTanh,
            "quick_gelu" => Activation::QuickGelu,
            "relu" => Activation::Relu,
            "silu" | "swish" => Activation::Silu,
            other => return Err(ConfigError::Activation(other.to_string())),
        })
    }

    pub fn apply(self, x: &tch::Tensor) -> tch::Tensor {
        match self {
            Activation::Gelu => x.gelu("none"),
            Activation::GeluTanh => x.gelu("tanh"),
            Activation::QuickGelu => x * (x * 1.702).sigmoid(),
            Activation::Relu => x.relu(),
            Activation::Silu => x.silu(),
        }
    }
}

fn default_act() -> String {
    "gelu".into()
}
fn yes() -> bool {
    true
}
fn three() -> i64 {
    3
}

#[derive(Debug, Clone, Deserialize)]
pub struct VitConfig {
    #[serde(default = "vit_hidden")]
    pub hidden_size: i64,
    #[serde(default = "vit_layers")]
    pub num_hidden_layers: i64,
    #[serde(default = "vit_layers")]
    pub num_attention_heads: i64,
    #[serde(default = "vit_intermediate")]
    pub intermediate_size: i64,
    #[serde(default = "default_act")]
    pub hidden_act: String,
    #[serde(default = "vit_eps")]
    pub layer_norm_eps: f64,
    #[serde(default = "vit_image")]
    pub image_size: Size2,
    #[serde(default = "vit_patch")]
    pub patch_size: Size2,
    #[serde(default = "three")]
    pub num_channels: i64,
    #[serde(default = "yes")]
    pub qkv_bias: bool,
    /// Pooler width (defaults to hidden_size) and activation (tanh).
    pub pooler_output_size: Option<i64>,
    pub pooler_act: Option<String>,
}

fn vit_hidden() -> i64 {
    768
}
fn vit_layers() -> i64 {
    12
}
fn vit_intermediate() -> i64 {
    3072
}
fn vit_eps() -> f64 {
    1e-12
}
fn vit_image() -> Size2 {
    Size2(224, 224)
}
fn vit_patch() -> Size2 {
    Size2(16, 16)
}

#[derive(Debug, Clone, Deserialize)]
pub struct SwinConfig {
    #[serde(default = "vit_image")]
    pub image_size: Size2,
    #[serde(default = "swin_patch")]
    pub patch_size: Size2,
    #[serde(default = "three")]
    pub num_channels: i64,
    #[serde(default = "swin_embed")]
    pub embed_dim: i64,
    #[serde(default = "swin_depths")]
    pub depths: Vec<i64>,
    #[serde(default = "swin_heads")]
    pub num_heads: Vec<i64>,
    #[serde(default = "swin_window")]
    pub window_size: i64,
    #[serde(default = "swin_mlp")]
    pub mlp_ratio: f64,
    #[serde(default = "yes")]
    pub qkv_bias: bool,
    #[serde(default = "default_act")]
    pub hidden_act: String,
    #[serde(default = "swin_eps")]
    pub layer_norm_eps: f64,
    #[serde(default)]
    pub use_absolute_embeddings: bool,
    /// `patch_norm` / the misspelt `path_norm` of older configs: transformers' SwinEmbeddings always applies its
    /// LayerNorm whatever they say, so they are read only to refuse a value the architecture cannot honour.
    pub patch_norm: Option<bool>,
    pub path_norm: Option<bool>,
}

fn swin_patch() -> Size2 {
    Size2(4, 4)
}
fn swin_embed() -> i64 {
    96
}
fn swin_depths() -> Vec<i64> {
    vec![2, 2, 6, 2]
}
fn swin_heads() -> Vec<i64> {
    vec![3, 6, 12, 24]
}
fn swin_window() -> i64 {
    7
}
fn swin_mlp() -> f64 {
    4.0
}
fn swin_eps() -> f64 {
    1e-5
}

impl SwinConfig {
    pub fn num_features(&self) -> i64 {
        self.embed_dim << (self.depths.len().saturating_sub(1))
    }
}

/// `Dinov2Config` and `Dinov2WithRegistersConfig` (whose defaults differ in patch size and register count).
#[derive(Debug, Clone, Deserialize)]
pub struct Dinov2Config {
    #[serde(default = "vit_hidden")]
    pub hidden_size: i64,
    #[serde(default = "vit_layers")]
    pub num_hidden_layers: i64,
    #[serde(default = "vit_layers")]
    pub num_attention_heads: i64,
    /// An int in transformers' config class, a float in some files: the MLP width is int(hidden * ratio).
    #[serde(default = "dinov2_mlp")]
    pub mlp_ratio: f64,
    #[serde(default = "default_act")]
    pub hidden_act: String,
    #[serde(default = "dinov2_eps")]
    pub layer_norm_eps: f64,
    #[serde(default = "vit_image")]
    pub image_size: Size2,
    pub patch_size: Option<Size2>,
    #[serde(default = "three")]
    pub num_channels: i64,
    #[serde(default = "yes")]
    pub qkv_bias: bool,
    #[serde(default)]
    pub use_swiglu_ffn: bool,
    /// Dinov2Model only: whether the checkpoint has the (unused at inference) mask token.
    #[serde(default = "yes")]
    pub use_mask_token: bool,
    pub num_register_tokens: Option<i64>,
    /// Set from model_type: the interpolation of the position embeddings is antialiased with registers.
    #[serde(skip)]
    pub with_registers: bool,
}

fn dinov2_mlp() -> f64 {
    4.0
}
fn dinov2_eps() -> f64 {
    1e-6
}

impl Dinov2Config {
    pub fn patch(&self) -> Size2 {
        self.patch_size.unwrap_or(if self.with_registers { Size2(16, 16) } else { Size2(14, 14) })
    }

    /// Register tokens: Dinov2Model ignores the key, Dinov2WithRegistersModel defaults to 4.
    pub fn registers(&self) -> i64 {
        if self.with_registers { self.num_register_tokens.unwrap_or(4) } else { 0 }
    }

    pub fn mlp_hidden(&self) -> i64 {
        (self.hidden_size as f64 * self.mlp_ratio) as i64
    }

    /// transformers' Dinov2SwiGLUFFN width: two thirds of the MLP width, rounded up to a multiple of 8.
    pub fn swiglu_hidden(&self) -> i64 {
        ((self.mlp_hidden() as f64 * 2.0 / 3.0) as i64 + 7) / 8 * 8
    }
}

/// `CLIPVisionConfig`: the vision tower, whole or inside a CLIPModel config's `vision_config`.
#[derive(Debug, Clone, Deserialize)]
pub struct ClipVisionConfig {
    #[serde(default = "vit_hidden")]
    pub hidden_size: i64,
    #[serde(default = "vit_intermediate")]
    pub intermediate_size: i64,
    #[serde(default = "clip_projection")]
    pub projection_dim: i64,
    #[serde(default = "vit_layers")]
    pub num_hidden_layers: i64,
    #[serde(default = "vit_layers")]
    pub num_attention_heads: i64,
    #[serde(default = "three")]
    pub num_channels: i64,
    #[serde(default = "vit_image")]
    pub image_size: Size2,
    #[serde(default = "clip_patch")]
    pub patch_size: Size2,
    #[serde(default = "clip_act")]
    pub hidden_act: String,
    #[serde(default = "swin_eps")]
    pub layer_norm_eps: f64,
}

fn clip_projection() -> i64 {
    512
}
fn clip_patch() -> Size2 {
    Size2(32, 32)
}
fn clip_act() -> String {
    "quick_gelu".into()
}

/// A CLIP vision tower and what surrounds it in the checkpoint.
#[derive(Debug, Clone)]
pub struct ClipConfig {
    pub vision: ClipVisionConfig,
    /// Width of `visual_projection`: CLIPModel's top-level projection_dim, else the vision config's.
    pub projection_dim: i64,
    /// Whether the checkpoint has `visual_projection` (CLIPModel, CLIPVisionModelWithProjection; not
    /// CLIPVisionModel); None when config.json names no architecture: the weights tell.
    pub projection: Option<bool>,
    /// A whole CLIPModel: its text tower is in the checkpoint, expected and not read.
    pub full: bool,
}

/// `SiglipVisionConfig`.
#[derive(Debug, Clone, Deserialize)]
pub struct SiglipVisionConfig {
    #[serde(default = "vit_hidden")]
    pub hidden_size: i64,
    #[serde(default = "vit_intermediate")]
    pub intermediate_size: i64,
    #[serde(default = "vit_layers")]
    pub num_hidden_layers: i64,
    #[serde(default = "vit_layers")]
    pub num_attention_heads: i64,
    #[serde(default = "three")]
    pub num_channels: i64,
    #[serde(default = "vit_image")]
    pub image_size: Size2,
    #[serde(default = "vit_patch")]
    pub patch_size: Size2,
    #[serde(default = "siglip_act")]
    pub hidden_act: String,
    #[serde(default = "dinov2_eps")]
    pub layer_norm_eps: f64,
    /// The attention-pooling head that makes pooler_output.
    #[serde(default = "yes")]
    pub vision_use_head: bool,
}

fn siglip_act() -> String {
    "gelu_pytorch_tanh".into()
}

#[derive(Debug, Clone)]
pub struct SiglipConfig {
    pub vision: SiglipVisionConfig,
    /// A whole SiglipModel: its text tower, logit scale and bias are in the checkpoint, expected and not read.
    pub full: bool,
}

#[derive(Debug, Clone)]
pub enum Arch {
    Vit(VitConfig),
    Swin(SwinConfig),
    Dinov2(Dinov2Config),
    Clip(ClipConfig),
    Siglip(SiglipConfig),
}

/// What config.json says: the architecture, whether the checkpoint should have a classifier head, and its labels.
#[derive(Debug, Clone)]
pub struct HfConfig {
    pub arch: Arch,
    /// `architectures[0]`, when given.
    pub architecture: Option<String>,
    /// Class names in id order (config id2label), empty when the config has none.
    pub labels: Vec<String>,
    pub num_labels: usize,
}

const SUPPORTED: &str = "ViTModel, ViTForImageClassification, SwinModel, SwinForImageClassification, \
                         Dinov2Model, Dinov2WithRegistersModel, CLIPModel, CLIPVisionModel, \
                         CLIPVisionModelWithProjection, SiglipModel, SiglipVisionModel";
const MODEL_TYPES: &str =
    "vit, swin, dinov2, dinov2_with_registers, clip, clip_vision_model, siglip and siglip_vision_model";

/// The architectures each model_type may name.
fn architectures_of(model_type: &str) -> &'static [&'static str] {
    match model_type {
        "vit" => &["ViTModel", "ViTForImageClassification"],
        "swin" => &["SwinModel", "SwinForImageClassification"],
        "dinov2" => &["Dinov2Model"],
        "dinov2_with_registers" => &["Dinov2WithRegistersModel"],
        "clip" => &["CLIPModel"],
        "clip_vision_model" => &["CLIPVisionModel", "CLIPVisionModelWithProjection"],
        "siglip" => &["SiglipModel"],
        "siglip_vision_model" => &["SiglipVisionModel"],
        _ => &[],
    }
}

/// A whole CLIPModel / SiglipModel config keeps the vision tower's fields in `vision_config`. A CLIP config from
/// early 2022 may instead carry a non-null `vision_config_dict`: transformers then builds the vision config from
/// it alone (its defaults overwrite every field of `vision_config`), and so does this.
fn vision_config(json: &Value, legacy_dict: bool) -> Value {
    if legacy_dict && let Some(dict @ Value::Object(_)) = json.get("vision_config_dict") {
        return dict.clone();
    }
    match json.get("vision_config") {
        Some(v @ Value::Object(_)) => v.clone(),
        _ => Value::Object(serde_json::Map::new()),
    }
}

fn check_heads(hidden: i64, heads: i64) -> Result<(), ConfigError> {
    if heads <= 0 || hidden % heads != 0 {
        return Err(ConfigError::Heads { hidden, heads });
    }
    Ok(())
}

impl HfConfig {
    pub fn read(path: &Path) -> Result<Self, ModelError> {
        let text = std::fs::read_to_string(path).map_err(|e| ModelError::io(path, e))?;
        let json: Value = serde_json::from_str(&text)
            .map_err(|e| ModelError::Config { path: path.display().to_string(), what: e.into() })?;
        Self::from_value(&json).map_err(|what| ModelError::Config { path: path.display().to_string(), what })
    }

    pub fn from_value(json: &Value) -> Result<Self, ConfigError> {
        let model_type = json.get("model_type").and_then(Value::as_str).unwrap_or("");
        let architecture = json.get("architectures").and_then(|a| a.get(0)).and_then(Value::as_str).map(str::to_string);
        if let Some(a) = &architecture
            && !SUPPORTED.split(", ").any(|s| s == a)
        {
            return Err(ConfigError::Architecture(a.clone()));
        }
        let arch = match model_type {
            "vit" => {
                let c: VitConfig = serde_json::from_value(json.clone())?;
                Activation::parse(&c.hidden_act)?;
                if c.hidden_size % c.num_attention_heads != 0 {
                    return Err(ConfigError::Heads { hidden: c.hidden_size, heads: c.num_attention_heads });
                }
                if let Some(act) = c.pooler_act.as_deref()
                    && act != "tanh"
                {
                    return Err(ConfigError::PoolerAct(act.to_string()));
                }
                Arch::Vit(c)
            }
            "swin" => {
                let c: SwinConfig = serde_json::from_value(json.clone())?;
                Activation::parse(&c.hidden_act)?;
                if c.depths.is_empty() || c.depths.len() != c.num_heads.len() {
                    return Err(ConfigError::Depths { depths: c.depths.clone(), heads: c.num_heads.clone() });
                }
                if c.patch_norm == Some(false) || c.path_norm == Some(false) {
                    return Err(ConfigError::PatchNorm);
                }
                Arch::Swin(c)
            }
            "dinov2" | "dinov2_with_registers" => {
                let mut c: Dinov2Config = serde_json::from_value(json.clone())?;
                c.with_registers = model_type == "dinov2_with_registers";
                Activation::parse(&c.hidden_act)?;
                check_heads(c.hidden_size, c.num_attention_heads)?;
                if c.registers() < 0 {
                    return Err(ConfigError::NotPositive("num_register_tokens"));
                }
                if c.mlp_hidden() <= 0 {
                    return Err(ConfigError::NotPositive("mlp_ratio"));
                }
                Arch::Dinov2(c)
            }
            "clip" | "clip_vision_model" => {
                let full = model_type == "clip";
                let vision: ClipVisionConfig =
                    serde_json::from_value(if full { vision_config(json, true) } else { json.clone() })?;
                Activation::parse(&vision.hidden_act)?;
                check_heads(vision.hidden_size, vision.num_attention_heads)?;
                let projection_dim = match json.get("projection_dim").and_then(Value::as_i64) {
                    Some(n) if full => n,
                    _ if full => clip_projection(),
                    _ => vision.projection_dim,
                };
                let projection = match architecture.as_deref() {
                    Some("CLIPVisionModel") => Some(false),
                    Some(_) => Some(true),
                    None if full => Some(true),
                    None => None,
                };
                Arch::Clip(ClipConfig { vision, projection_dim, projection, full })
            }
            "siglip" | "siglip_vision_model" => {
                let full = model_type == "siglip";
                let vision: SiglipVisionConfig =
                    serde_json::from_value(if full { vision_config(json, false) } else { json.clone() })?;
                Activation::parse(&vision.hidden_act)?;
                check_heads(vision.hidden_size, vision.num_attention_heads)?;
                Arch::Siglip(SiglipConfig { vision, full })
            }
            "" => return Err(ConfigError::NoModelType),
            other => return Err(ConfigError::ModelType(other.to_string())),
        };
        if let Some(a) = &architecture
            && !architectures_of(model_type).contains(&a.as_str())
        {
            return Err(ConfigError::ArchitectureType { architecture: a.clone(), model_type: model_type.to_string() });
        }
        let labels = id2label(json.get("id2label"))?;
        let num_labels = match json.get("num_labels").and_then(Value::as_u64) {
            Some(n) => n as usize,
            None => labels.len(),
        };
        Ok(HfConfig { arch, architecture, labels, num_labels })
    }

    /// Whether config.json says the checkpoint has a classifier head (None: it does not say).
    pub fn expects_head(&self) -> Option<bool> {
        self.architecture.as_deref().map(|a| a.ends_with("ForImageClassification"))
    }

    pub fn kind(&self) -> &'static str {
        match &self.arch {
            Arch::Vit(_) => "vit",
            Arch::Swin(_) => "swin",
            Arch::Dinov2(c) if c.with_registers => "dinov2_with_registers",
            Arch::Dinov2(_) => "dinov2",
            Arch::Clip(_) => "clip",
            Arch::Siglip(_) => "siglip",
        }
    }

    /// Input channels the model takes.
    pub fn num_channels(&self) -> i64 {
        match &self.arch {
            Arch::Vit(c) => c.num_channels,
            Arch::Swin(c) => c.num_channels,
            Arch::Dinov2(c) => c.num_channels,
            Arch::Clip(c) => c.vision.num_channels,
            Arch::Siglip(c) => c.vision.num_channels,
        }
    }
}

/// id2label keyed by stringified ids: names in id order; ids must be 0..n-1.
fn id2label(v: Option<&Value>) -> Result<Vec<String>, ConfigError> {
    let Some(Value::Object(map)) = v else { return Ok(vec![]) };
    let mut by_id = BTreeMap::new();
    for (k, v) in map {
        let id: usize = k.parse().map_err(|_| ConfigError::Id2LabelKey(k.clone()))?;
        by_id.insert(id, v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()));
    }
    if by_id.keys().enumerate().any(|(i, &id)| i != id) {
        return Err(ConfigError::Id2LabelIds);
    }
    Ok(by_id.into_values().collect())
}
