//! Hugging Face `config.json` for the ViT and Swin families: the fields that change the computation, with
//! transformers' defaults for the ones a file omits. Fields that only matter for training (dropouts,
//! initializer_range, drop_path_rate) or for other heads (encoder_stride: masked-image decoder) are accepted
//! and ignored on purpose.

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
    #[error("config.json has no model_type; torchlight runs ViT and Swin checkpoints")]
    NoModelType,
    #[error(
        "model_type '{0}' is not supported: torchlight runs vit and swin checkpoints ({SUPPORTED}), or any \
         TorchScript module (.pt)"
    )]
    ModelType(String),
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

#[derive(Debug, Clone)]
pub enum Arch {
    Vit(VitConfig),
    Swin(SwinConfig),
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

const SUPPORTED: &str = "ViTModel, ViTForImageClassification, SwinModel, SwinForImageClassification";

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
            "" => return Err(ConfigError::NoModelType),
            other => return Err(ConfigError::ModelType(other.to_string())),
        };
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
        match self.arch {
            Arch::Vit(_) => "vit",
            Arch::Swin(_) => "swin",
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
