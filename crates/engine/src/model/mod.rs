//! Image embedding models: native tch ViT, Swin, DINOv2 (with and without registers), and the vision towers of
//! CLIP and SigLIP, which load Hugging Face checkpoints (config.json + safetensors), and any TorchScript module.
//! The only module that builds networks with tch.
//!
//! `Embedder::load` takes a hub id (`google/vit-base-patch16-224-in21k`, optionally `@revision`), a local model
//! directory, or a TorchScript file; `Embedder::embed` turns a batch of preprocessed CHW images into embeddings
//! and, for checkpoints with a classifier head, softmax probabilities.

pub mod clip;
pub mod config;
pub mod dinov2;
pub mod layers;
pub mod load;
pub mod siglip;
pub mod swin;
pub mod torchscript;
pub mod vit;

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use tch::{Device, Kind, Tensor};

use crate::hub::{self, HubError, RepoKind};
use crate::preprocess::{PreprocessConfig, PreprocessError, TorchScriptMeta};
use clip::Clip;
use config::{Arch, ConfigError, HfConfig};
use dinov2::Dinov2;
use layers::TowerOutput;
use load::Weights;
use siglip::Siglip;
use swin::Swin;
use torchlight_store::ModelSpec;
use torchscript::TorchScript;
use vit::Vit;

pub use torchlight_cli::Pooling;

#[derive(Debug, Clone)]
pub struct ModelOptions {
    pub device: Device,
    /// Float (default), Half or BFloat16; the last two only on CUDA.
    pub kind: Kind,
    /// Recorded in the model's spec, so a store refuses the same model with another pooling.
    pub pooling: Pooling,
    /// Preprocessing JSON replacing the model's own (HF preprocessor_config.json or the TorchScript form).
    pub preprocess: Option<PathBuf>,
    /// Preprocessing for a model that has none of its own (a Trainer checkpoint without preprocessor_config.json
    /// takes its foundation's); `preprocess` and the model's own come first. Its `channels` are the model's.
    pub fallback_preprocess: Option<PreprocessConfig>,
}

impl Default for ModelOptions {
    fn default() -> Self {
        ModelOptions {
            device: Device::Cpu,
            kind: Kind::Float,
            pooling: Pooling::Cls,
            preprocess: None,
            fallback_preprocess: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("cannot read {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("model config {path}: {what}")]
    Config { path: String, what: ConfigError },
    #[error("model weights {path}: {what}")]
    Weights { path: String, what: String },
    #[error("checkpoint {what} does not match its config.json: {problems}")]
    Mismatch { what: String, problems: String },
    #[error("model directory {dir} has no model.safetensors: {hint}")]
    NoSafetensors { dir: String, hint: String },
    #[error("model '{0}' not found: give a hub id (org/name), a model directory, or a TorchScript file (.pt)")]
    NotFound(String),
    #[error(
        "model '{model}' needs a preprocessing config: put {expected} beside it or pass --preprocess FILE \
         (see the README, section Models)"
    )]
    NoPreprocess { model: String, expected: String },
    #[error(
        "TorchScript output does not follow the contract (a tensor [B, D], a tuple (embedding, logits) or a dict {{\"embedding\", \"logits\"}}): {0}"
    )]
    Contract(String),
    #[error("model forward failed: {0}")]
    Forward(String),
    #[error("{0}")]
    Options(String),
    #[error("input batch: {0}")]
    Input(String),
    #[error(transparent)]
    Hub(#[from] HubError),
    #[error(transparent)]
    Preprocess(#[from] PreprocessError),
}

impl ModelError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> ModelError {
        ModelError::Io { path: path.display().to_string(), source }
    }
}

/// Embeddings of a batch, row-major, and the classifier's softmax probabilities when the model has a head.
#[derive(Debug, Clone)]
pub struct EmbedOutput {
    pub embeddings: Vec<f32>,
    pub probs: Option<Vec<f32>>,
}

/// The raw tensors of one forward pass (for tests against the reference and for callers that want more).
pub struct Outputs {
    /// [B, tokens, hidden] as transformers' `last_hidden_state`: after the final layernorm, except CLIP's (the
    /// encoder's output); None for TorchScript.
    pub last_hidden_state: Option<Tensor>,
    /// ViT pooler output (checkpoints with a pooler) / Swin pooled output / DINOv2's layernormed CLS token / CLIP's
    /// post_layernormed CLS token / SigLIP's attention-pooling head.
    pub pooler_output: Option<Tensor>,
    /// CLIP: the projected pooler output, when the checkpoint has `visual_projection`.
    pub image_embeds: Option<Tensor>,
    pub embedding: Tensor,
    pub logits: Option<Tensor>,
}

enum Net {
    Vit(Vit),
    Swin(Swin),
    Dinov2(Dinov2),
    Clip(Clip),
    Siglip(Siglip),
    Script(TorchScript),
}

pub struct Embedder {
    net: Net,
    preprocess: PreprocessConfig,
    spec: ModelSpec,
    dim: usize,
    num_classes: usize,
    class_names: Vec<String>,
    device: Device,
    kind: Kind,
    pooling: Pooling,
    /// The host tensor each batch is copied into, kept from batch to batch: a fresh one would be zero-filled
    /// and page-faulted in on the coordinator thread every batch. Pinned when the model is on CUDA, so that the
    /// copy to the device can be asynchronous.
    staging: Mutex<Option<Tensor>>,
}

/// Where a Hugging Face model's files are.
struct HfFiles {
    config: PathBuf,
    preprocessor: Option<PathBuf>,
    weights: Vec<PathBuf>,
}

impl Embedder {
    pub fn load(model: &str, opts: &ModelOptions) -> Result<Embedder, ModelError> {
        crate::runtime::init();
        check_precision(opts)?;
        let path = Path::new(model);
        if path.is_file() {
            return Self::load_torchscript(model, path, opts);
        }
        if path.is_dir() {
            let dir = path;
            let preprocessor = dir.join("preprocessor_config.json");
            let files = HfFiles {
                config: dir.join("config.json"),
                preprocessor: preprocessor.is_file().then_some(preprocessor),
                weights: load::safetensors_files(dir)?,
            };
            if !files.config.is_file() {
                return Err(ModelError::Config {
                    path: files.config.display().to_string(),
                    what: ConfigError::Missing,
                });
            }
            return Self::load_hf(model, files, opts);
        }
        if !looks_like_hub_id(model) {
            return Err(ModelError::NotFound(model.to_string()));
        }
        let (repo, revision) = match model.split_once('@') {
            Some((r, rev)) => (r, Some(rev)),
            None => (model, None),
        };
        let config = hub::snapshot_files(repo, RepoKind::Model, revision, &["config.json"])?.remove(0);
        let preprocessor = match &opts.preprocess {
            Some(_) => None,
            None => {
                Some(hub::snapshot_files(repo, RepoKind::Model, revision, &["preprocessor_config.json"])?.remove(0))
            }
        };
        let weights = if hub::has_file(repo, RepoKind::Model, revision, "model.safetensors")? {
            hub::snapshot_files(repo, RepoKind::Model, revision, &["model.safetensors"])?
        } else if hub::has_file(repo, RepoKind::Model, revision, "model.safetensors.index.json")? {
            let index = hub::snapshot_files(repo, RepoKind::Model, revision, &["model.safetensors.index.json"])?;
            let shards = load::shard_files(&index[0])?;
            let names: Vec<String> =
                shards.iter().filter_map(|p| p.file_name()).map(|n| n.to_string_lossy().into_owned()).collect();
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            hub::snapshot_files(repo, RepoKind::Model, revision, &names)?
        } else {
            // Ask for the file anyway: the error then says what is missing, offline or online.
            hub::snapshot_files(repo, RepoKind::Model, revision, &["model.safetensors"])?
        };
        Self::load_hf(model, HfFiles { config, preprocessor, weights }, opts)
    }

    fn load_hf(source: &str, files: HfFiles, opts: &ModelOptions) -> Result<Embedder, ModelError> {
        let cfg = HfConfig::read(&files.config)?;
        let mut pre = match (&opts.preprocess, &files.preprocessor) {
            (Some(p), _) => read_any_preprocess(p)?,
            (None, Some(p)) => PreprocessConfig::from_hf_json(p)?,
            (None, None) if opts.fallback_preprocess.is_some() => opts.fallback_preprocess.clone().expect("checked"),
            (None, None) => {
                return Err(ModelError::NoPreprocess {
                    model: source.to_string(),
                    expected: "preprocessor_config.json".into(),
                });
            }
        };
        let channels = cfg.num_channels();
        if channels != 1 && channels != 3 {
            return Err(ModelError::Config {
                path: files.config.display().to_string(),
                what: ConfigError::Channels(channels),
            });
        }
        pre.channels = channels as u8;
        let (h, w) = pre.output_size();
        if let Arch::Vit(c) = &cfg.arch
            && (h as i64, w as i64) != (c.image_size.0, c.image_size.1)
        {
            return Err(ModelError::Options(format!(
                "{source}: preprocessing makes {h}x{w} images but the ViT takes {}x{} (its position embeddings \
                 are fixed): fix the preprocessing config",
                c.image_size.0, c.image_size.1
            )));
        }
        let patch = match &cfg.arch {
            Arch::Dinov2(c) => Some(c.patch()),
            Arch::Clip(c) => Some(c.vision.patch_size),
            Arch::Siglip(c) => Some(c.vision.patch_size),
            Arch::Vit(_) | Arch::Swin(_) => None,
        };
        if let Some(p) = patch
            && ((h as i64) < p.0 || (w as i64) < p.1)
        {
            return Err(ModelError::Options(format!(
                "{source}: preprocessing makes {h}x{w} images, smaller than one {}x{} patch: fix the preprocessing \
                 config",
                p.0, p.1
            )));
        }

        let weights =
            Weights::from_files_skipping(&files.weights, opts.device, opts.kind, &|name| other_tower(&cfg.arch, name))?;
        let names = weights.names();
        let prefix = match cfg.arch {
            Arch::Vit(_) => "vit",
            Arch::Swin(_) => "swin",
            Arch::Dinov2(_) => "dinov2",
            Arch::Clip(_) | Arch::Siglip(_) => "vision_model",
        };
        let root = Weights::clone(&weights);
        let base = if names.iter().any(|n| n.starts_with(&format!("{prefix}."))) { root.pp(prefix) } else { root };
        let head_rows = weights.shape("classifier.weight").map(|s| s[0]);
        match (cfg.expects_head(), head_rows) {
            (Some(true), None) => {
                return Err(ModelError::Mismatch {
                    what: source.to_string(),
                    problems: format!(
                        "config.json says {} but the weights have no classifier head",
                        cfg.architecture.as_deref().unwrap_or("")
                    ),
                });
            }
            (Some(false), Some(_)) => {
                return Err(ModelError::Mismatch {
                    what: source.to_string(),
                    problems: format!(
                        "config.json says {} but the weights have a classifier head",
                        cfg.architecture.as_deref().unwrap_or("")
                    ),
                });
            }
            _ => {}
        }
        let head_w = weights.pp("classifier");
        let head = head_rows.map(|n| (&head_w, n));
        let (net, dim) = match &cfg.arch {
            Arch::Vit(c) => {
                let pooler = base.pp("pooler").contains("dense.weight");
                let vit = Vit::new(&base, head, pooler, c);
                let dim = match opts.pooling {
                    Pooling::Pooler => vit.pooler_dim().ok_or_else(|| {
                        ModelError::Options(format!(
                            "{source} has no pooler (ViTForImageClassification checkpoints drop it): \
                             use --pooling cls or mean"
                        ))
                    })?,
                    _ => c.hidden_size,
                };
                (Net::Vit(vit), dim)
            }
            Arch::Swin(c) => (Net::Swin(Swin::new(&base, head, c)), c.num_features()),
            Arch::Dinov2(c) => (Net::Dinov2(Dinov2::new(&base, c)), c.hidden_size),
            Arch::Clip(c) => {
                let projection = c.projection.unwrap_or_else(|| weights.contains("visual_projection.weight"));
                let clip = Clip::new(&base, &weights, projection, c);
                let dim = match (opts.pooling, clip.projection_dim()) {
                    (Pooling::Cls, Some(d)) => d,
                    _ => clip.hidden_size,
                };
                (Net::Clip(clip), dim)
            }
            Arch::Siglip(c) => {
                let siglip = Siglip::new(&base, &c.vision);
                if matches!(opts.pooling, Pooling::Cls | Pooling::Pooler) && !siglip.has_head() {
                    return Err(ModelError::Options(format!(
                        "{source} has no attention-pooling head (vision_use_head is false): use --pooling mean or \
                         first"
                    )));
                }
                (Net::Siglip(siglip), c.vision.hidden_size)
            }
        };
        weights.finish(source)?;
        let num_classes = head_rows.unwrap_or(0) as usize;
        if num_classes > 0 && !cfg.labels.is_empty() && cfg.labels.len() != num_classes {
            return Err(ModelError::Mismatch {
                what: source.to_string(),
                problems: format!(
                    "config.json names {} classes (id2label) but the classifier has {num_classes} outputs",
                    cfg.labels.len()
                ),
            });
        }
        let class_names = if num_classes > 0 { cfg.labels.clone() } else { vec![] };
        let spec = ModelSpec {
            kind: cfg.kind().to_string(),
            source: source.to_string(),
            fingerprint: load::fingerprint(&files.weights)?,
            pooling: opts.pooling.to_string(),
            image_size: h.max(w),
        };
        Ok(Embedder {
            net,
            preprocess: pre,
            spec,
            dim: dim as usize,
            num_classes,
            class_names,
            device: opts.device,
            kind: opts.kind,
            pooling: opts.pooling,
            staging: Mutex::new(None),
        })
    }

    fn load_torchscript(source: &str, path: &Path, opts: &ModelOptions) -> Result<Embedder, ModelError> {
        if path.extension().is_some_and(|e| e == "json" || e == "safetensors" || e == "bin") {
            return Err(ModelError::NotFound(format!(
                "{source} (a TorchScript module is a .pt file; a Hugging Face model is its directory)"
            )));
        }
        let meta_path = match &opts.preprocess {
            Some(p) => p.clone(),
            None => path.with_extension("json"),
        };
        if !meta_path.is_file() && opts.fallback_preprocess.is_none() {
            return Err(ModelError::NoPreprocess {
                model: source.to_string(),
                expected: meta_path.display().to_string(),
            });
        }
        let (pre, class_names) = if !meta_path.is_file() {
            (opts.fallback_preprocess.clone().expect("checked"), vec![])
        } else if is_hf_preprocessor(&meta_path)? {
            (PreprocessConfig::from_hf_json(&meta_path)?, vec![])
        } else {
            let meta = TorchScriptMeta::read(&meta_path)?;
            let pre = meta
                .preprocess_config()
                .map_err(|what| PreprocessError::Invalid { path: meta_path.display().to_string(), what })?;
            (pre, meta.class_names)
        };
        let module = TorchScript::load(path, opts.device, opts.kind)?;
        let (h, w) = pre.output_size();
        // One dummy forward tells the embedding width and whether there are logits.
        let dummy = Tensor::zeros([1, pre.channels as i64, h as i64, w as i64], (opts.kind, opts.device));
        let out = tch::no_grad(|| module.forward(&dummy))?;
        let dim = out.embedding.size()[1] as usize;
        let num_classes = out.logits.as_ref().map_or(0, |l| l.size()[1] as usize);
        if num_classes > 0 && !class_names.is_empty() && class_names.len() != num_classes {
            return Err(ModelError::Contract(format!(
                "{} names {} classes but the module returns {num_classes} logits",
                meta_path.display(),
                class_names.len()
            )));
        }
        let spec = ModelSpec {
            kind: "torchscript".into(),
            source: source.to_string(),
            fingerprint: load::fingerprint(&[path.to_path_buf()])?,
            pooling: "module".into(),
            image_size: h.max(w),
        };
        Ok(Embedder {
            net: Net::Script(module),
            preprocess: pre,
            spec,
            dim,
            num_classes,
            class_names: if num_classes > 0 { class_names } else { vec![] },
            device: opts.device,
            kind: opts.kind,
            pooling: opts.pooling,
            staging: Mutex::new(None),
        })
    }

    pub fn preprocess_config(&self) -> &PreprocessConfig {
        &self.preprocess
    }

    pub fn spec(&self) -> ModelSpec {
        self.spec.clone()
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    pub fn num_classes(&self) -> usize {
        self.num_classes
    }

    pub fn class_names(&self) -> Vec<String> {
        self.class_names.clone()
    }

    pub fn device(&self) -> Device {
        self.device
    }

    /// The tensors of one forward pass on `pixels` [B, C, H, W] (any device/kind: moved to the model's).
    pub fn forward(&self, pixels: &Tensor) -> Result<Outputs, ModelError> {
        let x = pixels.to_device(self.device).to_kind(self.kind);
        tch::no_grad(|| match &self.net {
            Net::Vit(m) => {
                let o = m.forward(&x);
                let embedding = match self.pooling {
                    Pooling::Cls | Pooling::First => o.last_hidden_state.select(1, 0),
                    Pooling::Mean => {
                        let n = o.last_hidden_state.size()[1];
                        o.last_hidden_state.narrow(1, 1, n - 1).mean_dim(1, false, None)
                    }
                    Pooling::Pooler => o.pooler_output.as_ref().expect("checked at load").shallow_clone(),
                };
                Ok(Outputs {
                    last_hidden_state: Some(o.last_hidden_state),
                    pooler_output: o.pooler_output,
                    image_embeds: None,
                    embedding,
                    logits: o.logits,
                })
            }
            Net::Swin(m) => {
                let o = m.forward(&x)?;
                let embedding = match self.pooling {
                    // Token 0 is the top-left patch of the last stage, not a summary of the image; it is here
                    // to reproduce pipelines that take `last_hidden_state[:, 0]` for every model.
                    Pooling::First => o.last_hidden_state.select(1, 0),
                    Pooling::Cls | Pooling::Mean | Pooling::Pooler => o.pooler_output.shallow_clone(),
                };
                Ok(Outputs {
                    embedding,
                    last_hidden_state: Some(o.last_hidden_state),
                    pooler_output: Some(o.pooler_output),
                    image_embeds: None,
                    logits: o.logits,
                })
            }
            Net::Dinov2(m) => Ok(pool_tower(m.forward(&x), self.pooling, 1 + m.registers)),
            Net::Clip(m) => Ok(pool_tower(m.forward(&x), self.pooling, 1)),
            Net::Siglip(m) => Ok(pool_tower(m.forward(&x), self.pooling, 0)),
            Net::Script(m) => {
                let o = m.forward(&x)?;
                Ok(Outputs {
                    last_hidden_state: None,
                    pooler_output: None,
                    image_embeds: None,
                    embedding: o.embedding,
                    logits: o.logits,
                })
            }
        })
    }

    /// Embeds `n` preprocessed images (`n * channels * h * w` values, CHW each, as `preprocess` makes them).
    pub fn embed(&self, batch: &[f32], n: usize) -> Result<EmbedOutput, ModelError> {
        let Some(shape) = self.batch_shape(batch.len(), n)? else { return Ok(self.no_output()) };
        let mut staging = self.staging.lock().unwrap_or_else(|e| e.into_inner());
        self.stage(&mut staging, batch, shape)
    }

    /// `embed` on a batch the model may overwrite: on the CPU it runs on the batch's own memory, without the
    /// copy into an input tensor (a TorchScript module may work in place on its input).
    pub fn embed_in_place(&self, batch: &mut [f32], n: usize) -> Result<EmbedOutput, ModelError> {
        let Some(shape) = self.batch_shape(batch.len(), n)? else { return Ok(self.no_output()) };
        if self.device.is_cuda() {
            let mut staging = self.staging.lock().unwrap_or_else(|e| e.into_inner());
            return self.stage(&mut staging, batch, shape);
        }
        // SAFETY: `batch` holds exactly n*c*h*w f32 values (checked above), is borrowed mutably for the whole
        // call and outlives `x`; `run` copies every output out before `x` and the outputs are dropped.
        let x = unsafe { Tensor::from_blob(batch.as_mut_ptr().cast(), &shape, &[], Kind::Float, Device::Cpu) };
        self.run(&x, n)
    }

    /// The input tensor's shape for `len` values of `n` images; None for no images.
    fn batch_shape(&self, len: usize, n: usize) -> Result<Option<[i64; 4]>, ModelError> {
        let (h, w) = self.preprocess.output_size();
        let c = self.preprocess.channels as usize;
        let per = c * h as usize * w as usize;
        if len != n * per {
            return Err(ModelError::Input(format!(
                "{len} values for {n} images of {c}x{h}x{w} (expected {})",
                n * per
            )));
        }
        Ok((n > 0).then_some([n as i64, c as i64, h as i64, w as i64]))
    }

    fn no_output(&self) -> EmbedOutput {
        EmbedOutput { embeddings: vec![], probs: (self.num_classes > 0).then(Vec::new) }
    }

    /// Copies the batch into the input tensor the model keeps (pinned on CUDA) and runs it.
    fn stage(&self, staging: &mut Option<Tensor>, batch: &[f32], shape: [i64; 4]) -> Result<EmbedOutput, ModelError> {
        if staging.as_ref().is_none_or(|t| t.size() != shape) {
            let t = Tensor::empty(shape, (Kind::Float, Device::Cpu));
            *staging = Some(if self.device.is_cuda() { t.pin_memory(self.device) } else { t });
        }
        let x = staging.as_mut().expect("set above");
        // SAFETY: `batch` holds exactly n*c*h*w f32 values (checked by `batch_shape`) and outlives `view`, which
        // is only read by the copy and dropped right after it.
        let view = unsafe { Tensor::from_blob(batch.as_ptr().cast(), &shape, &[], Kind::Float, Device::Cpu) };
        x.f_copy_(&view).map_err(|e| ModelError::Forward(e.to_string()))?;
        drop(view);
        // Pinned memory lets the copy to the GPU run without blocking; the forward pass queues behind it on the
        // same stream, and reading the outputs back below waits for both.
        let x =
            if self.device.is_cuda() { x.to_device_(self.device, self.kind, true, false) } else { x.shallow_clone() };
        self.run(&x, shape[0] as usize)
    }

    /// The forward pass on an input tensor of `n` images, its outputs copied to host vectors.
    fn run(&self, x: &Tensor, n: usize) -> Result<EmbedOutput, ModelError> {
        let out = self.forward(x)?;
        let to_vec = |t: &Tensor| -> Result<Vec<f32>, ModelError> {
            let t = t.to_kind(Kind::Float).to_device(Device::Cpu).contiguous().view(-1);
            Vec::<f32>::try_from(&t).map_err(|e| ModelError::Forward(e.to_string()))
        };
        let embeddings = to_vec(&out.embedding)?;
        if embeddings.len() != n * self.dim {
            return Err(ModelError::Contract(format!(
                "embedding has {} values for {n} images of dimension {}",
                embeddings.len(),
                self.dim
            )));
        }
        let probs = match &out.logits {
            Some(l) => Some(to_vec(&l.to_kind(Kind::Float).softmax(-1, Kind::Float))?),
            None => None,
        };
        Ok(EmbedOutput { embeddings, probs })
    }
}

/// The embedding of a DINOv2, CLIP or SigLIP forward pass. `cls` (the default): CLIP's `image_embeds` (the
/// projected pooled output; the pooled output itself without a projection), everyone else's `pooler_output`;
/// `pooler`: the pooler output, so CLIP's unprojected one; `mean`: the mean of the patch tokens of
/// `last_hidden_state`, the `prefix` tokens before them (CLS, registers) left out; `first`: its token 0.
fn pool_tower(o: TowerOutput, pooling: Pooling, prefix: i64) -> Outputs {
    let pooled = || o.pooler_output.as_ref().expect("checked at load").shallow_clone();
    let embedding = match pooling {
        Pooling::Cls => o.image_embeds.as_ref().map_or_else(pooled, Tensor::shallow_clone),
        Pooling::Pooler => pooled(),
        Pooling::Mean => {
            let n = o.last_hidden_state.size()[1];
            o.last_hidden_state.narrow(1, prefix, n - prefix).mean_dim(1, false, None)
        }
        Pooling::First => o.last_hidden_state.select(1, 0),
    };
    Outputs {
        last_hidden_state: Some(o.last_hidden_state),
        pooler_output: o.pooler_output,
        image_embeds: o.image_embeds,
        embedding,
        logits: None,
    }
}

/// Tensors of a whole CLIPModel or SiglipModel checkpoint that belong to its text side: expected there, and not
/// read, since only the image tower embeds.
fn other_tower(arch: &Arch, name: &str) -> bool {
    match arch {
        Arch::Clip(c) if c.full => {
            name.starts_with("text_model.") || name.starts_with("text_projection.") || name == "logit_scale"
        }
        Arch::Siglip(c) if c.full => name.starts_with("text_model.") || name == "logit_scale" || name == "logit_bias",
        _ => false,
    }
}

fn check_precision(opts: &ModelOptions) -> Result<(), ModelError> {
    match opts.kind {
        Kind::Float => Ok(()),
        Kind::Half | Kind::BFloat16 if opts.device.is_cuda() => Ok(()),
        Kind::Half | Kind::BFloat16 => {
            Err(ModelError::Options("fp16/bf16 run only on CUDA: use fp32 on CPU (or --device cuda)".into()))
        }
        other => Err(ModelError::Options(format!("precision {other:?} is not supported: use fp32, fp16 or bf16"))),
    }
}

/// `org/name`, `name`, optionally `@revision`: hub ids never start with a path character.
fn looks_like_hub_id(s: &str) -> bool {
    let id = s.split_once('@').map_or(s, |(id, _)| id);
    let ok = |part: &str| {
        !part.is_empty()
            && !part.starts_with(['.', '-'])
            && part.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    let parts: Vec<&str> = id.split('/').collect();
    (parts.len() == 1 || parts.len() == 2) && parts.iter().all(|p| ok(p)) && !id.ends_with(".pt")
}

fn is_hf_preprocessor(path: &Path) -> Result<bool, ModelError> {
    let text = std::fs::read_to_string(path).map_err(|e| ModelError::io(path, e))?;
    let v: serde_json::Value = serde_json::from_str(&text)
        .map_err(|source| PreprocessError::Json { path: path.display().to_string(), source })?;
    Ok(v.get("image_size").is_none() && (v.get("size").is_some() || v.get("image_mean").is_some()))
}

/// `--preprocess FILE` in either form: a HF preprocessor_config.json or the TorchScript JSON.
fn read_any_preprocess(path: &Path) -> Result<PreprocessConfig, ModelError> {
    if is_hf_preprocessor(path)? {
        Ok(PreprocessConfig::from_hf_json(path)?)
    } else {
        Ok(PreprocessConfig::from_torchscript_json(path)?)
    }
}

/// Number of parameter values a checkpoint of this config has (the classifier head when config.json names a
/// ForImageClassification architecture, the ViT pooler for bare ViTModel; for a whole CLIPModel or SiglipModel
/// the vision tower and projection that torchlight reads, not the text tower), computed without any weights:
/// proves that every field of a real config is understood, down to the tensor shapes.
pub fn count_parameters(cfg: &HfConfig) -> Result<i64, ModelError> {
    let w = Weights::shapes_only();
    let head_w = w.pp("classifier");
    let head = (cfg.expects_head() == Some(true)).then_some((&head_w, cfg.num_labels as i64));
    match &cfg.arch {
        Arch::Vit(c) => {
            let base = if head.is_some() { w.pp("vit") } else { w.clone() };
            Vit::new(&base, head, head.is_none(), c);
        }
        Arch::Swin(c) => {
            let base = if head.is_some() { w.pp("swin") } else { w.clone() };
            Swin::new(&base, head, c);
        }
        Arch::Dinov2(c) => {
            Dinov2::new(&w, c);
        }
        Arch::Clip(c) => {
            Clip::new(&w.pp("vision_model"), &w, c.projection.unwrap_or(true), c);
        }
        Arch::Siglip(c) => {
            Siglip::new(&w.pp("vision_model"), &c.vision);
        }
    }
    w.finish("shape-only")
}
