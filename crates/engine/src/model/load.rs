//! Checkpoint tensors by name: safetensors files read into a map, handed out to the model structs by path
//! (`w.pp("attention").get("weight", &[d, d])`), with every missing, mis-shaped and unused name collected so a
//! mismatched checkpoint is one clear error before anything runs. (tch's `VarStore::load` would ignore extra
//! tensors silently and allocate every weight twice.) Tensors a checkpoint is known to carry for something else
//! (a CLIPModel's text tower) are left unread.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use sha2::{Digest, Sha256};
use tch::{Device, Kind, Tensor};

use super::ModelError;

/// Tensors that checkpoints carry but the model recomputes: buffers that transformers 4 saved and transformers 5
/// does not (Swin's relative position index; the position ids of CLIP's and SigLIP's embeddings).
fn is_recomputed_buffer(name: &str) -> bool {
    name.ends_with(".relative_position_index") || name.ends_with("embeddings.position_ids")
}

struct Store {
    tensors: BTreeMap<String, Tensor>,
    used: BTreeSet<String>,
    missing: Vec<String>,
    mismatched: Vec<String>,
    device: Device,
    kind: Kind,
    /// Shape-only mode: hand out zero-stride placeholders, nothing is read (parameter counting in tests).
    shapes_only: bool,
    counted: i64,
}

/// A path into the checkpoint, like candle's VarBuilder: cheap to clone, all clones share one store.
#[derive(Clone)]
pub struct Weights {
    store: Rc<RefCell<Store>>,
    prefix: String,
}

impl Weights {
    /// Reads `model.safetensors`, or every shard named by `model.safetensors.index.json`.
    pub fn from_files(files: &[PathBuf], device: Device, kind: Kind) -> Result<Weights, ModelError> {
        Self::from_files_skipping(files, device, kind, &|_| false)
    }

    /// As `from_files`, leaving the tensors `skip` names unread: they are neither loaded nor reported unused.
    pub fn from_files_skipping(
        files: &[PathBuf],
        device: Device,
        kind: Kind,
        skip: &dyn Fn(&str) -> bool,
    ) -> Result<Weights, ModelError> {
        let mut tensors = BTreeMap::new();
        for file in files {
            read_safetensors(file, skip, &mut tensors)
                .map_err(|what| ModelError::Weights { path: file.display().to_string(), what })?;
        }
        Ok(Self::new(tensors, device, kind, false))
    }

    /// Shape-only weights: models built from them have the right structure and parameter count, no values.
    pub fn shapes_only() -> Weights {
        Self::new(BTreeMap::new(), Device::Cpu, Kind::Float, true)
    }

    fn new(tensors: BTreeMap<String, Tensor>, device: Device, kind: Kind, shapes_only: bool) -> Weights {
        let store = Store {
            tensors,
            used: BTreeSet::new(),
            missing: vec![],
            mismatched: vec![],
            device,
            kind,
            shapes_only,
            counted: 0,
        };
        Weights { store: Rc::new(RefCell::new(store)), prefix: String::new() }
    }

    pub fn pp(&self, name: impl std::fmt::Display) -> Weights {
        let prefix = if self.prefix.is_empty() { name.to_string() } else { format!("{}.{name}", self.prefix) };
        Weights { store: self.store.clone(), prefix }
    }

    fn full(&self, name: &str) -> String {
        if self.prefix.is_empty() { name.to_string() } else { format!("{}.{name}", self.prefix) }
    }

    pub fn contains(&self, name: &str) -> bool {
        let s = self.store.borrow();
        s.shapes_only || s.tensors.contains_key(&self.full(name))
    }

    /// Shape of the checkpoint tensor `name` under this path, if there is one.
    pub fn shape(&self, name: &str) -> Option<Vec<i64>> {
        self.store.borrow().tensors.get(&self.full(name)).map(Tensor::size)
    }

    /// The tensor `name` under this path, on the target device and kind. A missing or mis-shaped tensor is
    /// recorded (and a placeholder returned) so that `finish` can list every problem at once.
    pub fn get(&self, name: &str, shape: &[i64]) -> Tensor {
        let full = self.full(name);
        let mut s = self.store.borrow_mut();
        s.counted += shape.iter().product::<i64>();
        if s.shapes_only {
            return Tensor::zeros([1], (Kind::Float, Device::Cpu)).expand(shape, false);
        }
        let Some(t) = s.tensors.get(&full) else {
            s.missing.push(format!("{full} {shape:?}"));
            return Tensor::zeros([1], (Kind::Float, Device::Cpu)).expand(shape, false);
        };
        if t.size() != shape {
            let got = t.size();
            s.mismatched.push(format!("{full}: checkpoint {got:?}, config needs {shape:?}"));
            return Tensor::zeros([1], (Kind::Float, Device::Cpu)).expand(shape, false);
        }
        let t = t.to_device(s.device).to_kind(s.kind);
        s.used.insert(full);
        t
    }

    /// Checks that every tensor was found with its shape and that the checkpoint holds nothing unused.
    /// Returns the number of parameter values the model took.
    pub fn finish(&self, what: &str) -> Result<i64, ModelError> {
        let mut s = self.store.borrow_mut();
        let unused: Vec<String> =
            s.tensors.keys().filter(|k| !s.used.contains(*k) && !is_recomputed_buffer(k)).cloned().collect();
        if s.missing.is_empty() && s.mismatched.is_empty() && unused.is_empty() {
            s.tensors.clear();
            return Ok(s.counted);
        }
        let list = |v: &[String]| {
            let mut out = v.iter().take(8).cloned().collect::<Vec<_>>().join(", ");
            if v.len() > 8 {
                out.push_str(&format!(", ... ({} in all)", v.len()));
            }
            out
        };
        let mut problems = vec![];
        if !s.missing.is_empty() {
            problems.push(format!("missing tensors: {}", list(&s.missing)));
        }
        if !s.mismatched.is_empty() {
            problems.push(format!("wrong shapes: {}", list(&s.mismatched)));
        }
        if !unused.is_empty() {
            problems.push(format!("unexpected tensors: {}", list(&unused)));
        }
        Err(ModelError::Mismatch { what: what.to_string(), problems: problems.join("; ") })
    }

    pub fn kind(&self) -> Kind {
        self.store.borrow().kind
    }

    pub fn device(&self) -> Device {
        self.store.borrow().device
    }

    /// Names of all checkpoint tensors (to detect prefixes and heads).
    pub fn names(&self) -> Vec<String> {
        self.store.borrow().tensors.keys().cloned().collect()
    }
}

/// A linear layer as transformers stores it: `weight` [out, in], optional `bias` [out].
pub struct Linear {
    pub weight: Tensor,
    pub bias: Option<Tensor>,
}

impl Linear {
    pub fn new(w: &Weights, in_dim: i64, out_dim: i64, bias: bool) -> Linear {
        Linear { weight: w.get("weight", &[out_dim, in_dim]), bias: bias.then(|| w.get("bias", &[out_dim])) }
    }

    pub fn forward(&self, x: &Tensor) -> Tensor {
        x.linear(&self.weight, self.bias.as_ref())
    }
}

pub struct LayerNorm {
    pub weight: Tensor,
    pub bias: Tensor,
    pub eps: f64,
    pub dim: i64,
}

impl LayerNorm {
    pub fn new(w: &Weights, dim: i64, eps: f64) -> LayerNorm {
        LayerNorm { weight: w.get("weight", &[dim]), bias: w.get("bias", &[dim]), eps, dim }
    }

    pub fn forward(&self, x: &Tensor) -> Tensor {
        x.layer_norm([self.dim], Some(&self.weight), Some(&self.bias), self.eps, true)
    }
}

/// Reads the tensors of one safetensors file that `skip` does not name into `out`: the 8-byte header length, the
/// JSON header (name -> dtype, shape, byte range after the header), then only the byte ranges wanted.
fn read_safetensors(
    path: &Path,
    skip: &dyn Fn(&str) -> bool,
    out: &mut BTreeMap<String, Tensor>,
) -> Result<(), String> {
    use std::io::{Seek, SeekFrom};

    #[derive(serde::Deserialize)]
    struct Entry {
        dtype: String,
        shape: Vec<i64>,
        data_offsets: [u64; 2],
    }
    let mut file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let file_len = file.metadata().map_err(|e| e.to_string())?.len();
    let mut len = [0u8; 8];
    file.read_exact(&mut len).map_err(|e| format!("not a safetensors file: {e}"))?;
    let header_len = u64::from_le_bytes(len);
    if header_len > file_len.saturating_sub(8) || header_len > 100 << 20 {
        return Err(format!("not a safetensors file: a header of {header_len} bytes in {file_len}"));
    }
    let mut header = vec![0u8; header_len as usize];
    file.read_exact(&mut header).map_err(|e| e.to_string())?;
    let header: BTreeMap<String, serde_json::Value> =
        serde_json::from_slice(&header).map_err(|e| format!("safetensors header: {e}"))?;
    let data_start = 8 + header_len;
    for (name, entry) in header {
        if name == "__metadata__" || skip(&name) {
            continue;
        }
        let entry: Entry = serde_json::from_value(entry).map_err(|e| format!("safetensors header, {name}: {e}"))?;
        let kind = match entry.dtype.as_str() {
            "F64" => Kind::Double,
            "F32" => Kind::Float,
            "F16" => Kind::Half,
            "BF16" => Kind::BFloat16,
            "I64" => Kind::Int64,
            "I32" => Kind::Int,
            "I16" => Kind::Int16,
            "I8" => Kind::Int8,
            "U8" => Kind::Uint8,
            "BOOL" => Kind::Bool,
            other => return Err(format!("{name}: dtype {other} is not supported")),
        };
        let [start, end] = entry.data_offsets;
        let numel: i64 = entry.shape.iter().product();
        let bytes = numel as u64 * kind.elt_size_in_bytes() as u64;
        if entry.shape.iter().any(|&d| d < 0) || end < start || end - start != bytes || data_start + end > file_len {
            return Err(format!("{name}: shape {:?} does not match bytes {start}..{end}", entry.shape));
        }
        let mut data = vec![0u8; bytes as usize];
        file.seek(SeekFrom::Start(data_start + start)).map_err(|e| e.to_string())?;
        file.read_exact(&mut data).map_err(|e| e.to_string())?;
        let t = Tensor::f_from_data_size(&data, &entry.shape, kind).map_err(|e| format!("{name}: {e}"))?;
        out.insert(name, t);
    }
    Ok(())
}

/// The weight files of a Hugging Face model directory: model.safetensors, or the shards of its index.
pub fn safetensors_files(dir: &Path) -> Result<Vec<PathBuf>, ModelError> {
    let single = dir.join("model.safetensors");
    if single.is_file() {
        return Ok(vec![single]);
    }
    let index = dir.join("model.safetensors.index.json");
    if index.is_file() {
        return shard_files(&index);
    }
    let pickle = ["pytorch_model.bin", "tf_model.h5", "flax_model.msgpack"].iter().find(|f| dir.join(f).is_file());
    Err(ModelError::NoSafetensors {
        dir: dir.display().to_string(),
        hint: match pickle {
            Some(f) => format!(
                "it has {f}, which torchlight does not load (pickle files can run code): convert it once with \
                 `python -c \"from transformers import AutoModel as M; M.from_pretrained('{}').save_pretrained('OUT')\"` \
                 (safetensors is the default), or use the hub's safetensors conversion (revision refs/pr/N)",
                dir.display()
            ),
            None => "no weight file at all".into(),
        },
    })
}

pub fn shard_files(index: &Path) -> Result<Vec<PathBuf>, ModelError> {
    let text = std::fs::read_to_string(index).map_err(|e| ModelError::io(index, e))?;
    let json: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| ModelError::Weights { path: index.display().to_string(), what: e.to_string() })?;
    let names: BTreeSet<&str> = json
        .get("weight_map")
        .and_then(|m| m.as_object())
        .map(|m| m.values().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();
    if names.is_empty() {
        return Err(ModelError::Weights { path: index.display().to_string(), what: "no weight_map".into() });
    }
    let dir = index.parent().unwrap_or(Path::new("."));
    Ok(names.into_iter().map(|n| dir.join(n)).collect())
}

/// SHA-256 over the weight files' bytes (in the order given), hex: a store remembers it to refuse a resume
/// with other weights.
pub fn fingerprint(files: &[PathBuf]) -> Result<String, ModelError> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    for f in files {
        let mut file = std::fs::File::open(f).map_err(|e| ModelError::io(f, e))?;
        loop {
            let n = file.read(&mut buf).map_err(|e| ModelError::io(f, e))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
    }
    Ok(hasher.finalize().iter().map(|b| format!("{b:02x}")).collect())
}
