//! Native ViT / Swin and TorchScript against the transformers / torch reference outputs committed by
//! tests/fixtures/models/gen_models.py (tiny random models, real images), fp32 on CPU.

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
    assert_eq!(m.preprocess_config().size, (24, 40));
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
    assert_eq!(counts.len(), 6, "the article's six checkpoints");
    for (name, want) in counts {
        let cfg = HfConfig::read(&dir.join(format!("{name}.json"))).unwrap();
        assert_eq!(cfg.kind(), want["model_type"].as_str().unwrap(), "{name}");
        assert_eq!(count_parameters(&cfg).unwrap() as u64, want["parameters"].as_u64().unwrap(), "{name}");
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

    // Unsupported architecture.
    let other = tmp.path().join("resnet");
    copy_dir(&fixtures().join("hf/vit_bare"), &other);
    std::fs::write(other.join("config.json"), r#"{"model_type": "resnet", "architectures": ["ResNetModel"]}"#).unwrap();
    let err = load(&other, Pooling::Cls).err().unwrap().to_string();
    assert!(err.contains("ResNetModel is not supported"), "{err}");

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

#[test]
fn torchscript_tensor_tuple_and_dict_outputs() {
    let dir = fixtures().join("torchscript");
    let exp = expected(&dir);
    let input = get(&exp, "input").unwrap();
    for mode in ["tensor", "tuple", "dict"] {
        let path = dir.join(format!("cnn_{mode}.pt"));
        let m = Embedder::load(path.to_str().unwrap(), &ModelOptions::default()).unwrap();
        assert_eq!(m.dim(), 6);
        assert_eq!(m.preprocess_config().size, (16, 16));
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
