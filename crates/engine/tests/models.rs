//! Native ViT / Swin / DINOv2 / CLIP / SigLIP and TorchScript against the transformers / torch reference outputs
//! committed by tests/fixtures/models/gen_models.py (tiny random models, real images), fp32 on CPU.

use std::path::{Path, PathBuf};

use tch::{Kind, Tensor};
use torchlight_engine::model::config::HfConfig;
use torchlight_engine::model::{Embedder, ModelError, ModelOptions, Pooling, count_parameters};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/models")
}

fn expected(dir: &Path) -> Vec<(String, Tensor)> {
    Tensor::read_safetensors(dir.join("expected.safetensors")).unwrap()
}

fn get(exp: &[(String, Tensor)], name: &str) -> Option<Tensor> {
    exp.iter().find(|(n, _)| n == name).map(|(_, t)| t.shallow_clone())
}

fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.size(), b.size());
    (a.to_kind(Kind::Double) - b.to_kind(Kind::Double)).abs().max().double_value(&[])
}

fn load(dir: &Path, pooling: Pooling) -> Result<Embedder, ModelError> {
    Embedder::load(dir.to_str().unwrap(), &ModelOptions { pooling, ..ModelOptions::default() })
}

const HF: [&str; 6] = ["vit_bare", "vit_cls_nonsquare", "vit_cls_tanh", "swin_bare", "swin_cls", "swin_padded"];

#[test]
fn hidden_states_pooled_and_logits_match_transformers() {
    let mut failures = vec![];
    for name in HF {
        let dir = fixtures().join("hf").join(name);
        let exp = expected(&dir);
        let model = load(&dir, Pooling::Cls).unwrap();
        let pixels = get(&exp, "pixel_values").unwrap();
        let out = model.forward(&pixels).unwrap();
        let hidden = max_diff(&out.last_hidden_state.unwrap(), &get(&exp, "last_hidden_state").unwrap());
        println!("{name:18} last_hidden_state max |diff| {hidden:.2e}");
        if hidden > 1e-4 {
            failures.push(format!("{name}: last hidden state differs by {hidden}"));
        }
        match (out.pooler_output, get(&exp, "pooler_output")) {
            (Some(ours), Some(theirs)) => {
                let d = max_diff(&ours, &theirs);
                println!("{name:18} pooler_output     max |diff| {d:.2e}");
                if d > 1e-4 {
                    failures.push(format!("{name}: pooler output differs by {d}"));
                }
            }
            (None, None) => {}
            (ours, theirs) => panic!("{name}: pooler ours {} theirs {}", ours.is_some(), theirs.is_some()),
        }
        match (out.logits, get(&exp, "logits")) {
            (Some(ours), Some(theirs)) => {
                let d = max_diff(&ours, &theirs);
                println!("{name:18} logits            max |diff| {d:.2e}");
                if d > 1e-4 {
                    failures.push(format!("{name}: logits differ by {d}"));
                }
                assert_eq!(model.num_classes() as i64, theirs.size()[1]);
            }
            (None, None) => assert_eq!(model.num_classes(), 0),
            (ours, theirs) => panic!("{name}: logits ours {} theirs {}", ours.is_some(), theirs.is_some()),
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn embed_gives_cls_or_pooled_and_softmax_probs() {
    for name in HF {
        let dir = fixtures().join("hf").join(name);
        let exp = expected(&dir);
        let model = load(&dir, Pooling::Cls).unwrap();
        let pixels = get(&exp, "pixel_values").unwrap();
        let n = pixels.size()[0] as usize;
        let flat: Vec<f32> = pixels.flatten(0, -1).try_into().unwrap();
        let out = model.embed(&flat, n).unwrap();
        let want = if name.starts_with("vit") {
            get(&exp, "last_hidden_state").unwrap().select(1, 0)
        } else {
            get(&exp, "pooler_output").unwrap()
        };
        assert_eq!(want.size(), [n as i64, model.dim() as i64], "{name}");
        let ours = Tensor::from_slice(&out.embeddings).view([n as i64, -1]);
        assert!(max_diff(&ours, &want) <= 1e-4, "{name}");
        match get(&exp, "logits") {
            Some(l) => {
                let probs = Tensor::from_slice(out.probs.as_ref().unwrap()).view([n as i64, -1]);
                assert!(max_diff(&probs, &l.softmax(-1, Kind::Float)) <= 1e-5, "{name}");
            }
            None => assert!(out.probs.is_none()),
        }
        // A batch of the wrong length is refused, not misread.
        assert!(matches!(model.embed(&flat[1..], n), Err(ModelError::Input(_))));
    }
}

#[test]
fn specs_labels_and_pooling_choices() {
    let dir = fixtures().join("hf/vit_cls_nonsquare");
    let m = load(&dir, Pooling::Cls).unwrap();
    assert_eq!(m.class_names(), ["cat", "dog", "bird", "frog", "ship"]);
    assert_eq!((m.dim(), m.num_classes()), (24, 5));
    let spec = m.spec();
    assert_eq!((spec.kind.as_str(), spec.pooling.as_str(), spec.image_size), ("vit", "cls", 40));
    assert_eq!(spec.fingerprint.len(), 64);
    assert_eq!(m.preprocess_config().output_size(), (24, 40));
    // A classifier checkpoint has no pooler: asking for it is a clear error.
    let err = load(&dir, Pooling::Pooler).err().unwrap().to_string();
    assert!(err.contains("no pooler") && err.contains("--pooling cls"), "{err}");

    // Bare ViT: mean of patch tokens and the pooler.
    let dir = fixtures().join("hf/vit_bare");
    let exp = expected(&dir);
    let pixels = get(&exp, "pixel_values").unwrap();
    let hidden = get(&exp, "last_hidden_state").unwrap();
    let mean = load(&dir, Pooling::Mean).unwrap().forward(&pixels).unwrap().embedding;
    let tokens = hidden.size()[1];
    assert!(max_diff(&mean, &hidden.narrow(1, 1, tokens - 1).mean_dim(1, false, None)) <= 1e-5);
    let pooler = load(&dir, Pooling::Pooler).unwrap();
    assert!(max_diff(&pooler.forward(&pixels).unwrap().embedding, &get(&exp, "pooler_output").unwrap()) <= 1e-4);
    assert_eq!(pooler.class_names(), Vec::<String>::new());
    assert_eq!(pooler.spec().pooling, "pooler");

    // Swin: no CLS token, every pooling but `first` is the pooled output.
    let dir = fixtures().join("hf/swin_cls");
    let m = load(&dir, Pooling::Mean).unwrap();
    assert_eq!((m.dim(), m.num_classes(), m.spec().kind.as_str()), (24, 4, "swin"));
    assert_eq!(m.class_names(), ["LABEL_0", "LABEL_1", "LABEL_2", "LABEL_3"]);
}

/// `--pooling first` is `last_hidden_state[:, 0]` as transformers computes it: Swin's first token after the final
/// layernorm (square, non-square, windows padded), ViT's CLS token.
#[test]
fn first_pooling_is_token_zero_of_transformers_last_hidden_state() {
    for name in ["swin_bare", "swin_cls", "swin_padded"] {
        let dir = fixtures().join("hf").join(name);
        let exp = expected(&dir);
        let pixels = get(&exp, "pixel_values").unwrap();
        let want = get(&exp, "first_token").unwrap();
        let first = load(&dir, Pooling::First).unwrap();
        assert_eq!((first.spec().pooling.as_str(), first.dim() as i64), ("first", want.size()[1]), "{name}");
        let n = pixels.size()[0] as usize;
        let flat: Vec<f32> = pixels.flatten(0, -1).try_into().unwrap();
        let ours = Tensor::from_slice(&first.embed(&flat, n).unwrap().embeddings).view([n as i64, -1]);
        let d = max_diff(&ours, &want);
        println!("{name:18} first token       max |diff| {d:.2e}");
        assert!(d <= 1e-4, "{name}: first token differs by {d}");
        // The default stays the pooled output, which is not the first token.
        let pooled = load(&dir, Pooling::Cls).unwrap().forward(&pixels).unwrap().embedding;
        assert!(max_diff(&pooled, &get(&exp, "pooler_output").unwrap()) <= 1e-4, "{name}");
        assert!(max_diff(&pooled, &want) > 1e-2, "{name}: pooled output and first token coincide");
    }
    for name in ["vit_bare", "vit_cls_nonsquare", "vit_cls_tanh"] {
        let dir = fixtures().join("hf").join(name);
        let exp = expected(&dir);
        let pixels = get(&exp, "pixel_values").unwrap();
        let first = load(&dir, Pooling::First).unwrap();
        let ours = first.forward(&pixels).unwrap().embedding;
        let d = max_diff(&ours, &get(&exp, "last_hidden_state").unwrap().select(1, 0));
        assert!(d <= 1e-4, "{name}: CLS token differs by {d}");
        let cls = load(&dir, Pooling::Cls).unwrap();
        assert!(ours.equal(&cls.forward(&pixels).unwrap().embedding), "{name}: first and cls differ on ViT");
        // Equal vectors, but another recorded pooling: a store made with one refuses the other.
        assert_eq!((first.spec().pooling.as_str(), cls.spec().pooling.as_str()), ("first", "cls"));
    }
}

fn engine(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_torchlight-engine"))
        .args(args)
        .env_remove("TORCHLIGHT_STORE")
        .output()
        .unwrap()
}

fn poolings(store: &Path) -> Vec<(String, String)> {
    let store = torchlight_store::Store::open(store).unwrap();
    let rtxn = store.read_txn().unwrap();
    store.spaces(&rtxn).unwrap().into_iter().map(|s| (s.name, s.model.pooling)).collect()
}

/// `--pooling-of NAME=POOLING` gives one space its own pooling, `--pooling` the rest; the store records each, and
/// a later ingest that would embed a space with another pooling is refused before writing.
#[test]
fn pooling_per_space_is_recorded_and_another_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("images");
    copy_dir(&fixtures().join("images"), &data);
    let store = tmp.path().join("store");
    let hf = |name: &str| fixtures().join("hf").join(name).to_str().unwrap().to_string();
    let (foundation, finetuned, vit) = (hf("swin_cls"), hf("swin_padded"), format!("vit={}", hf("vit_bare")));
    let base = [data.to_str().unwrap(), "--store", store.to_str().unwrap(), "--format", "flat", "--device", "cpu"];
    let run = |more: &[&str]| engine(&[&["ingest"], &base[..], more, &["--no-analyze"]].concat());

    let out = run(&[
        "--foundation",
        &foundation,
        "--finetuned",
        &finetuned,
        "--model",
        &vit,
        "--pooling-of",
        "finetuned=first",
        "--pooling-of",
        "vit=mean",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let want = [("foundation", "cls"), ("finetuned", "first"), ("vit", "mean")];
    let recorded = poolings(&store);
    assert_eq!(recorded.iter().map(|(n, p)| (n.as_str(), p.as_str())).collect::<Vec<_>>(), want);

    // `--pooling first` now reaches the foundation space too, made with cls: refused, nothing written.
    let out = run(&["--foundation", &foundation, "--finetuned", &finetuned, "--model", &vit, "--pooling", "first"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("space foundation") && err.contains("cls pooling") && err.contains("first pooling"), "{err}");
    assert_eq!(poolings(&store), recorded);

    // A pooling for a space no model makes, the same space twice, an unknown pooling, no NAME=.
    let out = run(&["--foundation", &foundation, "--pooling-of", "finetuned=first"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("no model makes space finetuned"), "{err}");
    let out = run(&["--foundation", &foundation, "--pooling-of", "foundation=first", "--pooling-of", "foundation=cls"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("given twice"), "{err}");
    for bad in ["foundation=firts", "first"] {
        let out = run(&["--foundation", &foundation, "--pooling-of", bad]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{bad}: {err}");
        assert!(err.contains("cls, mean, pooler, first"), "{bad}: {err}");
    }
    assert_eq!(poolings(&store), recorded);
}

#[test]
fn real_checkpoint_configs_parse_to_their_parameter_counts() {
    // gen_models.py writes each config and the parameter count transformers gives it (meta device).
    let dir = fixtures().join("real_configs");
    let counts: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("parameter_counts.json")).unwrap()).unwrap();
    let counts = counts.as_object().unwrap();
    assert_eq!(counts.len(), 10, "the article's six checkpoints and four foundation models");
    for (name, want) in counts {
        let cfg = HfConfig::read(&dir.join(format!("{name}.json"))).unwrap();
        assert_eq!(cfg.kind(), want["model_type"].as_str().unwrap(), "{name}");
        let ours = count_parameters(&cfg).unwrap() as u64;
        println!("{name:54} {ours:>10} parameters");
        assert_eq!(ours, want["parameters"].as_u64().unwrap(), "{name}");
    }
    let beans = HfConfig::read(&fixtures().join("real_configs/nateraw--vit-base-beans.json")).unwrap();
    assert_eq!(beans.labels, ["angular_leaf_spot", "bean_rust", "healthy"]);
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

#[test]
fn mismatched_checkpoints_and_unsupported_models_fail_clearly() {
    let tmp = tempfile::tempdir().unwrap();
    // Extra tensor in the checkpoint: VarStore::load would ignore it; we refuse.
    let extra = tmp.path().join("extra");
    copy_dir(&fixtures().join("hf/vit_bare"), &extra);
    let mut tensors = Tensor::read_safetensors(extra.join("model.safetensors")).unwrap();
    tensors.push(("encoder.layer.9.mystery.weight".into(), Tensor::zeros([2], (Kind::Float, tch::Device::Cpu))));
    Tensor::write_safetensors(&tensors, extra.join("model.safetensors")).unwrap();
    let err = load(&extra, Pooling::Cls).err().unwrap().to_string();
    assert!(err.contains("unexpected tensors: encoder.layer.9.mystery.weight"), "{err}");

    // Weights of another model under this config: missing and mis-shaped tensors are listed.
    let wrong = tmp.path().join("wrong");
    copy_dir(&fixtures().join("hf/vit_bare"), &wrong);
    std::fs::copy(fixtures().join("hf/vit_cls_tanh/model.safetensors"), wrong.join("model.safetensors")).unwrap();
    let err = load(&wrong, Pooling::Cls).err().unwrap().to_string();
    assert!(err.contains("does not match") && err.contains("a classifier head"), "{err}");

    // Unsupported architecture, and an unsupported model_type with none named: the supported ones, and the
    // TorchScript way for the rest.
    let other = tmp.path().join("resnet");
    copy_dir(&fixtures().join("hf/vit_bare"), &other);
    std::fs::write(other.join("config.json"), r#"{"model_type": "resnet", "architectures": ["ResNetModel"]}"#).unwrap();
    let err = load(&other, Pooling::Cls).err().unwrap().to_string();
    assert!(err.contains("ResNetModel is not supported") && err.contains("Dinov2Model"), "{err}");
    std::fs::write(other.join("config.json"), r#"{"model_type": "resnet"}"#).unwrap();
    let err = load(&other, Pooling::Cls).err().unwrap().to_string();
    assert!(err.contains("model_type 'resnet' is not supported"), "{err}");
    for family in ["vit", "swin", "dinov2", "dinov2_with_registers", "clip", "siglip", "TorchScript"] {
        assert!(err.contains(family), "{family}: {err}");
    }
    std::fs::write(other.join("config.json"), r#"{"model_type": "vit", "architectures": ["Dinov2Model"]}"#).unwrap();
    let err = load(&other, Pooling::Cls).err().unwrap().to_string();
    assert!(err.contains("Dinov2Model does not go with model_type 'vit'"), "{err}");

    // Pickle weights only: refused with the way out.
    let pickle = tmp.path().join("pickle");
    copy_dir(&fixtures().join("hf/vit_bare"), &pickle);
    std::fs::rename(pickle.join("model.safetensors"), pickle.join("pytorch_model.bin")).unwrap();
    let err = load(&pickle, Pooling::Cls).err().unwrap().to_string();
    assert!(err.contains("pytorch_model.bin") && err.contains("safetensors"), "{err}");

    // fp16 needs CUDA.
    let opts = ModelOptions { kind: Kind::Half, ..ModelOptions::default() };
    let err = Embedder::load(fixtures().join("hf/vit_bare").to_str().unwrap(), &opts).err().unwrap().to_string();
    assert!(err.contains("only on CUDA"), "{err}");

    let err = Embedder::load("./no/such/model.pt", &ModelOptions::default()).err().unwrap().to_string();
    assert!(err.contains("not found"), "{err}");
}

/// The foundation-model fixtures: name, the tokens before the patches in last_hidden_state (CLS, registers), and
/// whether the checkpoint has CLIP's visual_projection.
const FOUNDATION: [(&str, i64, bool); 7] = [
    ("dinov2_plain", 1, false),
    ("dinov2_swiglu", 1, false),
    ("dinov2_registers", 4, false),
    ("clip_vision_proj", 1, true),
    ("clip_full", 1, true),
    ("siglip_vision", 0, false),
    ("siglip_full", 0, false),
];

/// DINOv2, CLIP and SigLIP: last hidden state, pooler output and CLIP's image_embeds on the processor's images,
/// and again on another input size (`*_alt`) where the position embeddings are interpolated.
#[test]
fn foundation_models_match_transformers() {
    let mut failures = vec![];
    for (name, _, _) in FOUNDATION {
        let dir = fixtures().join("hf").join(name);
        let exp = expected(&dir);
        let model = load(&dir, Pooling::Cls).unwrap();
        for run in ["", "_alt"] {
            let pixels = get(&exp, &format!("pixel_values{run}")).unwrap();
            let out = model.forward(&pixels).unwrap();
            let ours = [
                ("last_hidden_state", out.last_hidden_state),
                ("pooler_output", out.pooler_output),
                ("image_embeds", out.image_embeds),
            ];
            for (what, ours) in ours {
                match (ours, get(&exp, &format!("{what}{run}"))) {
                    (Some(ours), Some(theirs)) => {
                        let d = max_diff(&ours, &theirs);
                        let (h, w) = (pixels.size()[2], pixels.size()[3]);
                        println!("{name:18} {h:>2}x{w:<2} {what:18} max |diff| {d:.2e}");
                        if d > 1e-4 {
                            failures.push(format!("{name}{run}: {what} differs by {d}"));
                        }
                    }
                    (None, None) => {}
                    (ours, theirs) => panic!("{name}{run} {what}: ours {} theirs {}", ours.is_some(), theirs.is_some()),
                }
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// `cls` is CLIP's image_embeds and everyone else's pooler_output; `pooler` the pooler output (CLIP's
/// unprojected); `mean` the mean of the patch tokens (CLS and registers left out); `first` token 0.
#[test]
fn foundation_poolings_dimensions_and_specs() {
    for (name, prefix, projection) in FOUNDATION {
        let dir = fixtures().join("hf").join(name);
        let exp = expected(&dir);
        let pixels = get(&exp, "pixel_values").unwrap();
        let hidden = get(&exp, "last_hidden_state").unwrap();
        let pooler = get(&exp, "pooler_output").unwrap();
        let tokens = hidden.size()[1];
        let cls_want = if projection { get(&exp, "image_embeds").unwrap() } else { pooler.shallow_clone() };
        let wants = [
            (Pooling::Cls, cls_want),
            (Pooling::Pooler, pooler.shallow_clone()),
            (Pooling::Mean, hidden.narrow(1, prefix, tokens - prefix).mean_dim(1, false, None)),
            (Pooling::First, hidden.select(1, 0)),
        ];
        for (pooling, want) in wants {
            let m = load(&dir, pooling).unwrap();
            assert_eq!(m.dim() as i64, want.size()[1], "{name} {pooling}");
            assert_eq!(m.num_classes(), 0, "{name}");
            let n = pixels.size()[0] as usize;
            let flat: Vec<f32> = pixels.flatten(0, -1).try_into().unwrap();
            let out = m.embed(&flat, n).unwrap();
            assert!(out.probs.is_none(), "{name}");
            let ours = Tensor::from_slice(&out.embeddings).view([n as i64, -1]);
            let d = max_diff(&ours, &want);
            assert!(d <= 1e-4, "{name} {pooling}: differs by {d}");
            let spec = m.spec();
            assert_eq!(spec.pooling, pooling.to_string());
            let family = name.split('_').next().unwrap();
            let kind = if name == "dinov2_registers" { "dinov2_with_registers" } else { family };
            assert_eq!(spec.kind, kind, "{name}");
        }
    }
}

/// A whole CLIPModel / SiglipModel carries a text tower: expected, not read. The same tensor anywhere else, a
/// vision tensor missing or mis-shaped: one clear error, before anything runs.
#[test]
fn foundation_checkpoints_are_checked_tensor_by_tensor() {
    let tmp = tempfile::tempdir().unwrap();
    type Named = Vec<(String, Tensor)>;
    let with = |src: &str, dst: &str, edit: &dyn Fn(&mut Named)| {
        let dir = tmp.path().join(dst);
        copy_dir(&fixtures().join("hf").join(src), &dir);
        let mut tensors = Tensor::read_safetensors(dir.join("model.safetensors")).unwrap();
        edit(&mut tensors);
        Tensor::write_safetensors(&tensors, dir.join("model.safetensors")).unwrap();
        dir
    };
    let zeros = |shape: &[i64]| Tensor::zeros(shape, (Kind::Float, tch::Device::Cpu));

    // The text tower of a whole CLIPModel is in the file, and not an error; a text tensor in a vision-only
    // checkpoint is.
    let names: Vec<String> = Tensor::read_safetensors(fixtures().join("hf/clip_full/model.safetensors"))
        .unwrap()
        .into_iter()
        .map(|t| t.0)
        .collect();
    assert!(names.iter().any(|n| n.starts_with("text_model.")) && names.iter().any(|n| n == "logit_scale"));
    let stray = with("clip_vision_proj", "stray", &|t| t.push(("text_projection.weight".into(), zeros(&[12, 12]))));
    let err = load(&stray, Pooling::Cls).err().unwrap().to_string();
    assert!(err.contains("unexpected tensors: text_projection.weight"), "{err}");
    // Anything else beside the text tower stays unexpected.
    let extra = with("clip_full", "extra", &|t| t.push(("vision_model.mystery".into(), zeros(&[2]))));
    let err = load(&extra, Pooling::Cls).err().unwrap().to_string();
    assert!(err.contains("unexpected tensors: vision_model.mystery") && !err.contains("text_model"), "{err}");

    // Missing and mis-shaped vision tensors are listed together.
    let broken = with("clip_full", "broken", &|t| {
        t.retain(|(n, _)| n != "vision_model.post_layernorm.weight");
        let proj = t.iter_mut().find(|(n, _)| n == "visual_projection.weight").unwrap();
        proj.1 = zeros(&[8, 24]);
    });
    let err = load(&broken, Pooling::Cls).err().unwrap().to_string();
    assert!(err.contains("missing tensors: vision_model.post_layernorm.weight [24]"), "{err}");
    assert!(err.contains("visual_projection.weight: checkpoint [8, 24], config needs [16, 24]"), "{err}");

    // Transformers 4 saved CLIP's position ids: a buffer, recomputed, accepted.
    let ids = with("clip_full", "ids", &|t| {
        t.push((
            "vision_model.embeddings.position_ids".into(),
            Tensor::arange(10, (Kind::Int64, tch::Device::Cpu)).view([1, 10]),
        ))
    });
    assert_eq!(load(&ids, Pooling::Cls).unwrap().dim(), 16);

    // DINOv2's register tokens and SwiGLU width come from the config: another checkpoint's tensors do not fit.
    let dir = tmp.path().join("registers_as_plain");
    copy_dir(&fixtures().join("hf/dinov2_registers"), &dir);
    let cfg = std::fs::read_to_string(dir.join("config.json")).unwrap();
    std::fs::write(dir.join("config.json"), cfg.replace("\"num_register_tokens\": 3", "\"num_register_tokens\": 2"))
        .unwrap();
    let err = load(&dir, Pooling::Cls).err().unwrap().to_string();
    assert!(err.contains("embeddings.register_tokens: checkpoint [1, 3, 32], config needs [1, 2, 32]"), "{err}");

    // SigLIP without its attention-pooling head: no pooler output, so `cls` is refused and `mean` works.
    let headless = with("siglip_vision", "headless", &|t| t.retain(|(n, _)| !n.starts_with("head.")));
    let cfg = std::fs::read_to_string(headless.join("config.json")).unwrap();
    std::fs::write(
        headless.join("config.json"),
        cfg.replace("\"vision_use_head\": true", "\"vision_use_head\": false"),
    )
    .unwrap();
    let err = load(&headless, Pooling::Cls).err().unwrap().to_string();
    assert!(err.contains("no attention-pooling head") && err.contains("--pooling mean"), "{err}");
    let exp = expected(&fixtures().join("hf/siglip_vision"));
    let mean = load(&headless, Pooling::Mean).unwrap().forward(&get(&exp, "pixel_values").unwrap()).unwrap();
    assert!(mean.pooler_output.is_none());
    let hidden = get(&exp, "last_hidden_state").unwrap();
    assert!(max_diff(&mean.embedding, &hidden.mean_dim(1, false, None)) <= 1e-4);
}

#[test]
fn torchscript_tensor_tuple_and_dict_outputs() {
    let dir = fixtures().join("torchscript");
    let exp = expected(&dir);
    let input = get(&exp, "input").unwrap();
    for mode in ["tensor", "tuple", "dict"] {
        let path = dir.join(format!("cnn_{mode}.pt"));
        let m = Embedder::load(path.to_str().unwrap(), &ModelOptions::default()).unwrap();
        assert_eq!(m.dim(), 6);
        assert_eq!(m.preprocess_config().output_size(), (16, 16));
        let out = m.forward(&input).unwrap();
        let d = max_diff(&out.embedding, &get(&exp, &format!("{mode}_embedding")).unwrap());
        assert!(d <= 1e-5, "{mode}: embedding differs by {d}");
        if mode == "tensor" {
            assert_eq!(m.num_classes(), 0);
            assert!(out.logits.is_none());
        } else {
            assert_eq!(m.num_classes(), 3);
            assert_eq!(m.class_names(), ["red", "green", "blue"]);
            let d = max_diff(&out.logits.unwrap(), &get(&exp, &format!("{mode}_logits")).unwrap());
            assert!(d <= 1e-5, "{mode}: logits differ by {d}");
        }
        assert_eq!(m.spec().kind, "torchscript");
    }
    // Without its JSON the module cannot be preprocessed: a clear error naming the file to write.
    let tmp = tempfile::tempdir().unwrap();
    let lone = tmp.path().join("lone.pt");
    std::fs::copy(dir.join("cnn_tensor.pt"), &lone).unwrap();
    let err = Embedder::load(lone.to_str().unwrap(), &ModelOptions::default()).err().unwrap().to_string();
    assert!(err.contains("lone.json") && err.contains("--preprocess"), "{err}");
    // --preprocess FILE replaces the JSON beside it.
    let opts = ModelOptions { preprocess: Some(dir.join("cnn_dict.json")), ..ModelOptions::default() };
    let m = Embedder::load(lone.to_str().unwrap(), &opts).unwrap();
    assert_eq!(m.num_classes(), 0);
}

#[test]
fn embedder_is_send() {
    fn send<T: Send>() {}
    send::<Embedder>();
}
