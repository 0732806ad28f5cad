//! Any TorchScript module (`torch.jit.trace` / `torch.jit.script` output) that takes float NCHW images and
//! returns an embedding [B, D], a tuple (embedding, logits), or a dict {"embedding": .., "logits": ..}.

use std::path::Path;

use tch::{CModule, Device, IValue, Kind, Tensor};

use super::ModelError;

pub struct TorchScript {
    module: CModule,
}

/// Embedding and optional logits of one forward pass.
pub struct ScriptOutput {
    pub embedding: Tensor,
    pub logits: Option<Tensor>,
}

impl TorchScript {
    pub fn load(path: &Path, device: Device, kind: Kind) -> Result<TorchScript, ModelError> {
        let mut module = CModule::load_on_device(path, device).map_err(|e| ModelError::Weights {
            path: path.display().to_string(),
            what: format!("not a loadable TorchScript module: {e}"),
        })?;
        module.set_eval();
        if kind != Kind::Float {
            module.to(device, kind, false);
        }
        Ok(TorchScript { module })
    }

    pub fn forward(&self, pixels: &Tensor) -> Result<ScriptOutput, ModelError> {
        let out = self
            .module
            .forward_is(&[IValue::Tensor(pixels.shallow_clone())])
            .map_err(|e| ModelError::Forward(e.to_string()))?;
        let bad = |what: &str| ModelError::Contract(what.to_string());
        let (embedding, logits) = match out {
            IValue::Tensor(t) => (t, None),
            IValue::Tuple(items) | IValue::GenericList(items) => {
                let mut it = items.into_iter();
                let e = match it.next() {
                    Some(IValue::Tensor(t)) => t,
                    _ => return Err(bad("the output tuple's first element is not a tensor")),
                };
                let l = match it.next() {
                    None => None,
                    Some(IValue::Tensor(t)) => Some(t),
                    Some(_) => return Err(bad("the output tuple's second element is not a tensor")),
                };
                if it.next().is_some() {
                    return Err(bad("the output tuple has more than two elements"));
                }
                (e, l)
            }
            IValue::GenericDict(entries) => {
                let (mut e, mut l) = (None, None);
                for (k, v) in entries {
                    match (k, v) {
                        (IValue::String(k), IValue::Tensor(t)) if k == "embedding" => e = Some(t),
                        (IValue::String(k), IValue::Tensor(t)) if k == "logits" => l = Some(t),
                        _ => {}
                    }
                }
                (e.ok_or_else(|| bad("the output dict has no \"embedding\" tensor"))?, l)
            }
            IValue::TensorList(ts) if !ts.is_empty() && ts.len() <= 2 => {
                let mut it = ts.into_iter();
                (it.next().expect("non-empty"), it.next())
            }
            _ => return Err(bad("the module returned neither a tensor, a tuple nor a dict")),
        };
        let b = pixels.size()[0];
        let check = |t: &Tensor, what: &str| -> Result<(), ModelError> {
            let s = t.size();
            if s.len() != 2 || s[0] != b {
                return Err(bad(&format!("{what} has shape {s:?}; expected [{b}, N]")));
            }
            Ok(())
        };
        check(&embedding, "the embedding")?;
        if let Some(l) = &logits {
            check(l, "the logits")?;
        }
        Ok(ScriptOutput { embedding, logits })
    }
}
