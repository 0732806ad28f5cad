//! Preprocessing against transformers' ViT image processor (PIL backend) on real images: the expected tensors
//! come from tests/fixtures/models/gen_models.py.

use std::path::{Path, PathBuf};

use torchlight_engine::preprocess::{Invalid, PreprocessConfig, Resample, preprocess};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/models")
}

fn expected(dir: &Path, name: &str) -> tch::Tensor {
    tch::Tensor::read_safetensors(dir.join("expected.safetensors"))
        .unwrap()
        .into_iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("{name} in {}", dir.display()))
        .1
}

#[test]
fn matches_transformers_processor_on_real_images() {
    let mut worst = 0f32;
    let mut failures = vec![];
    for model in ["vit_bare", "vit_cls_nonsquare", "vit_cls_tanh", "swin_bare", "swin_cls"] {
        let dir = fixtures().join("hf").join(model);
        let cfg = PreprocessConfig::from_hf_json(&dir.join("preprocessor_config.json")).unwrap();
        let pixels = expected(&dir, "pixel_values");
        let images = std::fs::read_to_string(dir.join("images.txt")).unwrap();
        for (i, name) in images.lines().enumerate() {
            let img = image::open(fixtures().join("images").join(name)).unwrap();
            let ours = preprocess(&img, &cfg);
            let theirs: Vec<f32> = pixels.get(i as i64).flatten(0, -1).try_into().unwrap();
            assert_eq!(ours.len(), theirs.len(), "{model} {name}");
            let diff = ours.iter().zip(&theirs).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            println!("{model:18} {name:24} {:?} max |diff| {diff:.2e}", cfg.resample);
            // JPEG: the image crate's decoder (zune-jpeg) and Pillow's libjpeg-turbo round their IDCTs apart by
            // up to 2 levels on a few pixels (109 of 9216 values on this file); preprocessing itself is exact, as
            // the PNGs show. So a JPEG may differ by those 2 levels after normalisation, and no more.
            let min_std = cfg.std.iter().cloned().fold(f32::INFINITY, f32::min);
            let allowed = if name.ends_with(".jpg") { 2.0 / 255.0 / min_std + 1e-3 } else { 1e-3 };
            if diff > allowed {
                failures.push(format!("{model} {name}: max |diff| {diff} > {allowed}"));
            }
            if !name.ends_with(".jpg") {
                worst = worst.max(diff);
            }
        }
    }
    println!("worst max |diff| on lossless images {worst:.2e}");
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn reads_legacy_and_current_processor_configs() {
    let legacy = PreprocessConfig::from_hf_json(&fixtures().join("hf/vit_bare/preprocessor_config.json")).unwrap();
    // 2021 feature-extractor form: int size, no do_rescale key (the processor rescales by 1/255 anyway).
    assert_eq!(legacy.size, (32, 32));
    assert_eq!(legacy.resample, Resample::Bilinear);
    assert!((legacy.rescale_factor.unwrap() - 1.0 / 255.0).abs() < 1e-9);
    assert_eq!(legacy.mean, vec![0.5; 3]);
    let current =
        PreprocessConfig::from_hf_json(&fixtures().join("hf/vit_cls_nonsquare/preprocessor_config.json")).unwrap();
    assert_eq!(current.size, (24, 40));
    assert_eq!(current.resample, Resample::Bicubic);
    assert_eq!(current.values_per_image(), 3 * 24 * 40);

    let v = serde_json::json!({"size": {"shortest_edge": 224}});
    let err = PreprocessConfig::from_hf_value(&v).unwrap_err();
    assert!(matches!(err, Invalid::ShortestEdge(_)) && err.to_string().contains("shortest_edge"), "{err}");
    let v = serde_json::json!({"size": 8, "resample": 9});
    let err = PreprocessConfig::from_hf_value(&v).unwrap_err();
    assert!(matches!(err, Invalid::ResampleCode(_)) && err.to_string().contains("resample"), "{err}");
    let v = serde_json::json!({"size": 8, "do_normalize": false, "do_rescale": false});
    let c = PreprocessConfig::from_hf_value(&v).unwrap();
    assert!(c.std.is_empty() && c.rescale_factor.is_none());
}

#[test]
fn torchscript_json_and_grayscale() {
    let cfg = PreprocessConfig::from_torchscript_json(&fixtures().join("torchscript/cnn_dict.json")).unwrap();
    assert_eq!((cfg.size, cfg.channels, cfg.resample), ((16, 16), 3, Resample::Bilinear));
    // One channel: Pillow's "L" weights (299/587/114), then rescale and normalise.
    let mut one = cfg.clone();
    one.channels = 1;
    one.mean = vec![0.0];
    one.std = vec![1.0];
    one.rescale_factor = None;
    one.size = (1, 2);
    let img = image::DynamicImage::ImageRgb8(image::RgbImage::from_raw(2, 1, vec![255, 0, 0, 10, 200, 30]).unwrap());
    let v = preprocess(&img, &one);
    assert_eq!(v, vec![76.0, 124.0]);
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, r#"{"image_size": [16, 16], "mean": [0.5], "std": [0.5, 0.5]}"#).unwrap();
    let err = PreprocessConfig::from_torchscript_json(&bad).unwrap_err().to_string();
    assert!(err.contains("mean has 1 values but std has 2"), "{err}");
}
