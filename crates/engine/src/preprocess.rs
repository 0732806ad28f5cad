//! Image preprocessing as the Hugging Face image processors with the PIL backend do it (ViT's, CLIP's, BiT's for
//! DINOv2, SigLIP's): RGB conversion, resize with Pillow's resampling filter (to a fixed size, or the shortest edge
//! to a length), optional centre crop, rescale, normalise; output CHW float32.
//!
//! Pure functions: the config is read once from `preprocessor_config.json` (or a TorchScript model's JSON) and
//! `preprocess` turns one decoded image into the values a model takes.

use std::path::Path;

use image::DynamicImage;
use serde::Deserialize;
use serde_json::Value;

/// Pillow's resampling filters (Hugging Face stores them as PIL codes: 0 nearest, 1 lanczos, 2 bilinear,
/// 3 bicubic, 4 box, 5 hamming). Resizing reproduces Pillow's `Image.resize` bit for bit (see `resize`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resample {
    Nearest,
    Bilinear,
    Bicubic,
    Lanczos,
    Box,
    Hamming,
}

impl Resample {
    pub fn from_pil_code(code: i64) -> Option<Resample> {
        Some(match code {
            0 => Resample::Nearest,
            1 => Resample::Lanczos,
            2 => Resample::Bilinear,
            3 => Resample::Bicubic,
            4 => Resample::Box,
            5 => Resample::Hamming,
            _ => return None,
        })
    }

    pub fn from_name(name: &str) -> Option<Resample> {
        Some(match name.to_ascii_lowercase().as_str() {
            "nearest" => Resample::Nearest,
            "bilinear" | "linear" => Resample::Bilinear,
            "bicubic" | "cubic" => Resample::Bicubic,
            "lanczos" | "antialias" => Resample::Lanczos,
            "box" => Resample::Box,
            "hamming" => Resample::Hamming,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Resample::Nearest => "nearest",
            Resample::Bilinear => "bilinear",
            Resample::Bicubic => "bicubic",
            Resample::Lanczos => "lanczos",
            Resample::Box => "box",
            Resample::Hamming => "hamming",
        }
    }
}

/// What resizing aims at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    /// (height, width), whatever the image's aspect ratio.
    Exact(u32, u32),
    /// The shortest edge becomes this long and the other keeps the aspect ratio, rounded down as transformers'
    /// `get_resize_output_image_size` does; only with a centre crop, which gives every image the same size.
    ShortestEdge(u32),
}

#[derive(Debug, Clone, PartialEq)]
pub struct PreprocessConfig {
    pub size: Size,
    pub do_resize: bool,
    pub resample: Resample,
    /// Centre crop (height, width) after resizing, as `do_center_crop` + `crop_size`; an image smaller than the
    /// crop is padded with zeros, as transformers does.
    pub center_crop: Option<(u32, u32)>,
    /// Pixel values (0..255) are multiplied by this; None keeps them as they are.
    pub rescale_factor: Option<f32>,
    pub mean: Vec<f32>,
    /// Empty = no normalisation.
    pub std: Vec<f32>,
    /// 3 (RGB) or 1 (luma, Pillow's "L" conversion).
    pub channels: u8,
}

#[derive(Debug, thiserror::Error)]
pub enum PreprocessError {
    #[error("cannot read preprocessing config {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("preprocessing config {path} is not valid JSON: {source}")]
    Json { path: String, source: serde_json::Error },
    #[error("preprocessing config {path}: {what}")]
    Invalid { path: String, what: Invalid },
}

/// What is wrong inside a preprocessing config.
#[derive(Debug, thiserror::Error)]
pub enum Invalid {
    #[error("unknown PIL resample code {0} (0..5 are known)")]
    ResampleCode(serde_json::Number),
    #[error("unknown resample filter '{0}'")]
    ResampleName(String),
    #[error("resample must be a PIL code, got {0}")]
    ResampleValue(Value),
    #[error("do_center_crop is set but crop_size is missing")]
    NoCropSize,
    #[error("channels must be 1 or 3, got {0}")]
    Channels(usize),
    #[error("image size {0:?} is empty")]
    EmptySize((u32, u32)),
    #[error(
        "size {{\"shortest_edge\": {0}}} without a centre crop gives every image its own size, which a batch cannot \
         hold: set do_center_crop and crop_size, or give {{\"height\": H, \"width\": W}}"
    )]
    ShortestEdgeNeedsCrop(u32),
    #[error("mean has {mean} values but std has {std}")]
    MeanStd { mean: usize, std: usize },
    #[error("mean/std have {values} values for {channels} channel(s)")]
    MeanChannels { values: usize, channels: usize },
    #[error("std contains 0")]
    StdZero,
    #[error(
        "size {0} is not supported: give {{\"height\": H, \"width\": W}} or {{\"shortest_edge\": N}} with a centre \
         crop"
    )]
    SizeKeys(Value),
    #[error("size {0} is not a positive integer, [height, width] or {{height, width}}")]
    Size(Value),
    #[error("{0} is not a number")]
    NotANumber(Value),
    #[error("expected a list of numbers, got {0}")]
    NotNumbers(Value),
    #[error(transparent)]
    Json(#[from] serde_json::Error),
}

/// The defaults of the image processor a `preprocessor_config.json` names, for the keys it omits.
struct ProcessorDefaults {
    /// How an int `size` reads: (size, size), or the shortest edge (transformers' `default_to_square`).
    int_size_is_square: bool,
    size: Size,
    center_crop: Option<(u32, u32)>,
    resample: Resample,
    /// As f64, like the values a JSON file gives: both become f32 the same way.
    mean: [f64; 3],
    std: [f64; 3],
}

const OPENAI_CLIP_MEAN: [f64; 3] = [0.48145466, 0.4578275, 0.40821073];
const OPENAI_CLIP_STD: [f64; 3] = [0.26862954, 0.26130258, 0.27577711];

impl ProcessorDefaults {
    /// By `image_processor_type` (or the older `feature_extractor_type`): CLIP's and BiT's (DINOv2's) processors
    /// resize the shortest edge to 224 and crop 224, SigLIP's resizes to 224x224; both read an int size as the
    /// shortest edge, and use bicubic resampling. Anything else gets the ViT processor's defaults.
    fn of(json: &Value) -> ProcessorDefaults {
        let kind = ["image_processor_type", "feature_extractor_type"]
            .iter()
            .find_map(|k| json.get(*k).and_then(Value::as_str))
            .unwrap_or("");
        if kind.starts_with("CLIP") || kind.starts_with("Bit") {
            ProcessorDefaults {
                int_size_is_square: false,
                size: Size::ShortestEdge(224),
                center_crop: Some((224, 224)),
                resample: Resample::Bicubic,
                mean: OPENAI_CLIP_MEAN,
                std: OPENAI_CLIP_STD,
            }
        } else if kind.starts_with("Siglip") {
            ProcessorDefaults {
                int_size_is_square: false,
                size: Size::Exact(224, 224),
                center_crop: None,
                resample: Resample::Bicubic,
                mean: [0.5; 3],
                std: [0.5; 3],
            }
        } else {
            ProcessorDefaults {
                int_size_is_square: true,
                size: Size::Exact(224, 224),
                center_crop: None,
                resample: Resample::Bilinear,
                mean: [0.5; 3],
                std: [0.5; 3],
            }
        }
    }
}

impl PreprocessConfig {
    /// The input (height, width) that preprocessing produces.
    pub fn output_size(&self) -> (u32, u32) {
        match (self.center_crop, self.size) {
            (Some(crop), _) => crop,
            (None, Size::Exact(h, w)) => (h, w),
            // Refused by `check`; the edge keeps the answer well-defined for a config built by hand.
            (None, Size::ShortestEdge(n)) => (n, n),
        }
    }

    /// Number of f32 values `preprocess` returns per image.
    pub fn values_per_image(&self) -> usize {
        let (h, w) = self.output_size();
        self.channels as usize * h as usize * w as usize
    }

    /// Reads a Hugging Face `preprocessor_config.json` (ViTImageProcessor / ViTFeatureExtractor, CLIP's, BiT's,
    /// SigLIP's), with the defaults of the processor it names for keys the file omits (old feature-extractor
    /// files have no `do_rescale`: the processor rescales by 1/255 anyway).
    pub fn from_hf_json(path: &Path) -> Result<Self, PreprocessError> {
        let json = read_json(path)?;
        Self::from_hf_value(&json).map_err(|what| invalid(path, what))
    }

    pub fn from_hf_value(json: &Value) -> Result<Self, Invalid> {
        let defaults = ProcessorDefaults::of(json);
        let flag = |key: &str, default: bool| json.get(key).and_then(Value::as_bool).unwrap_or(default);
        let size = match json.get("size") {
            None | Some(Value::Null) => defaults.size,
            Some(v) => parse_resize(v, defaults.int_size_is_square)?,
        };
        let resample = match json.get("resample") {
            None | Some(Value::Null) => defaults.resample,
            Some(Value::Number(n)) => {
                n.as_i64().and_then(Resample::from_pil_code).ok_or_else(|| Invalid::ResampleCode(n.clone()))?
            }
            Some(Value::String(s)) => Resample::from_name(s).ok_or_else(|| Invalid::ResampleName(s.clone()))?,
            Some(v) => return Err(Invalid::ResampleValue(v.clone())),
        };
        let center_crop = if flag("do_center_crop", defaults.center_crop.is_some()) {
            Some(match (json.get("crop_size"), defaults.center_crop) {
                (Some(v), _) if !v.is_null() => parse_size(v)?,
                (_, Some(crop)) => crop,
                _ => return Err(Invalid::NoCropSize),
            })
        } else {
            None
        };
        let rescale_factor = if flag("do_rescale", true) {
            Some(json.get("rescale_factor").and_then(Value::as_f64).unwrap_or(1.0 / 255.0) as f32)
        } else {
            None
        };
        let (mean, std) = if flag("do_normalize", true) {
            (floats(json.get("image_mean"), defaults.mean)?, floats(json.get("image_std"), defaults.std)?)
        } else {
            (vec![], vec![])
        };
        let cfg = PreprocessConfig {
            size,
            do_resize: flag("do_resize", true),
            resample,
            center_crop,
            rescale_factor,
            mean,
            std,
            channels: 3,
        };
        cfg.check()?;
        Ok(cfg)
    }

    /// Reads the JSON beside a TorchScript module (see the README's Models section):
    /// `{"image_size": [H, W] | N, "mean": [..], "std": [..], "resample": "bilinear", "channels": 3,
    /// "rescale_factor": 0.00392156862745098, "class_names": [..]}`; only image_size is required.
    pub fn from_torchscript_json(path: &Path) -> Result<Self, PreprocessError> {
        let json = read_json(path)?;
        let meta: TorchScriptMeta = serde_json::from_value(json).map_err(|e| invalid(path, e.into()))?;
        meta.preprocess_config().map_err(|what| invalid(path, what))
    }

    fn check(&self) -> Result<(), Invalid> {
        let c = self.channels as usize;
        if c != 1 && c != 3 {
            return Err(Invalid::Channels(c));
        }
        match self.size {
            Size::Exact(h, w) if h == 0 || w == 0 => return Err(Invalid::EmptySize((h, w))),
            Size::ShortestEdge(0) => return Err(Invalid::EmptySize((0, 0))),
            Size::ShortestEdge(n) if self.do_resize && self.center_crop.is_none() => {
                return Err(Invalid::ShortestEdgeNeedsCrop(n));
            }
            _ => {}
        }
        if let Some((ch, cw)) = self.center_crop
            && (ch == 0 || cw == 0)
        {
            return Err(Invalid::EmptySize((ch, cw)));
        }
        if self.mean.len() != self.std.len() {
            return Err(Invalid::MeanStd { mean: self.mean.len(), std: self.std.len() });
        }
        if !self.mean.is_empty() && self.mean.len() != 1 && self.mean.len() != c {
            return Err(Invalid::MeanChannels { values: self.mean.len(), channels: c });
        }
        if self.std.contains(&0.0) {
            return Err(Invalid::StdZero);
        }
        Ok(())
    }
}

/// The small JSON that describes a TorchScript module's input.
#[derive(Debug, Clone, Deserialize)]
pub struct TorchScriptMeta {
    pub image_size: Value,
    #[serde(default)]
    pub mean: Vec<f32>,
    #[serde(default)]
    pub std: Vec<f32>,
    #[serde(default)]
    pub resample: Option<String>,
    #[serde(default)]
    pub channels: Option<u8>,
    #[serde(default)]
    pub rescale_factor: Option<f32>,
    #[serde(default)]
    pub class_names: Vec<String>,
}

impl TorchScriptMeta {
    pub fn read(path: &Path) -> Result<Self, PreprocessError> {
        serde_json::from_value(read_json(path)?).map_err(|e| invalid(path, e.into()))
    }

    pub fn preprocess_config(&self) -> Result<PreprocessConfig, Invalid> {
        let resample = match &self.resample {
            None => Resample::Bilinear,
            Some(s) => Resample::from_name(s).ok_or_else(|| Invalid::ResampleName(s.clone()))?,
        };
        let (h, w) = parse_size(&self.image_size)?;
        let cfg = PreprocessConfig {
            size: Size::Exact(h, w),
            do_resize: true,
            resample,
            center_crop: None,
            rescale_factor: Some(self.rescale_factor.unwrap_or(1.0 / 255.0)),
            mean: self.mean.clone(),
            std: self.std.clone(),
            channels: self.channels.unwrap_or(3),
        };
        cfg.check()?;
        Ok(cfg)
    }
}

fn read_json(path: &Path) -> Result<Value, PreprocessError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| PreprocessError::Read { path: path.display().to_string(), source })?;
    serde_json::from_str(&text).map_err(|source| PreprocessError::Json { path: path.display().to_string(), source })
}

fn invalid(path: &Path, what: Invalid) -> PreprocessError {
    PreprocessError::Invalid { path: path.display().to_string(), what }
}

fn dim(v: &Value) -> Option<u32> {
    v.as_u64().filter(|&n| n > 0 && n < 1 << 16).map(|n| n as u32)
}

/// `224`, `[H, W]`, or `{"height": H, "width": W}`.
fn parse_size(v: &Value) -> Result<(u32, u32), Invalid> {
    let parsed = match v {
        Value::Number(_) => dim(v).map(|n| (n, n)),
        Value::Array(a) if a.len() == 2 => dim(&a[0]).zip(dim(&a[1])),
        Value::Object(o) => match (o.get("height"), o.get("width")) {
            (Some(h), Some(w)) => dim(h).zip(dim(w)),
            _ => return Err(Invalid::SizeKeys(v.clone())),
        },
        _ => None,
    };
    parsed.ok_or_else(|| Invalid::Size(v.clone()))
}

/// A processor's `size`: what `parse_size` reads, `{"shortest_edge": N}`, or an int that is the shortest edge
/// for processors whose int sizes are not square (CLIP's, BiT's, SigLIP's). Sizes with a longest edge or a
/// maximum are refused: they give images of varying size.
fn parse_resize(v: &Value, int_size_is_square: bool) -> Result<Size, Invalid> {
    match v {
        Value::Number(_) if !int_size_is_square => {
            dim(v).map(Size::ShortestEdge).ok_or_else(|| Invalid::Size(v.clone()))
        }
        Value::Object(o) if o.contains_key("shortest_edge") => match (o.len(), o.get("shortest_edge").and_then(dim)) {
            (1, Some(n)) => Ok(Size::ShortestEdge(n)),
            (1, None) => Err(Invalid::Size(v.clone())),
            _ => Err(Invalid::SizeKeys(v.clone())),
        },
        _ => parse_size(v).map(|(h, w)| Size::Exact(h, w)),
    }
}

fn floats(v: Option<&Value>, default: [f64; 3]) -> Result<Vec<f32>, Invalid> {
    match v {
        None | Some(Value::Null) => Ok(default.iter().map(|&f| f as f32).collect()),
        Some(Value::Number(n)) => Ok(vec![n.as_f64().unwrap_or(default[0]) as f32]),
        Some(Value::Array(a)) => {
            a.iter().map(|x| x.as_f64().map(|f| f as f32).ok_or_else(|| Invalid::NotANumber(x.clone()))).collect()
        }
        Some(v) => Err(Invalid::NotNumbers(v.clone())),
    }
}

/// The (height, width) an image of `height` x `width` is resized to.
fn resized_size(size: Size, height: u32, width: u32) -> (u32, u32) {
    match size {
        Size::Exact(h, w) => (h, w),
        Size::ShortestEdge(n) => {
            // transformers' get_resize_output_image_size(default_to_square=False): the long edge is
            // int(n * long / short), a correctly rounded division truncated, as f64 division gives it.
            let (short, long) = if width <= height { (width, height) } else { (height, width) };
            let new_long = (n as f64 * long as f64 / short as f64) as u32;
            if width <= height { (new_long, n) } else { (n, new_long) }
        }
    }
}

/// One axis of transformers' centre crop: (first source pixel, first output pixel, pixels copied). A crop that
/// fits starts at (size - crop) // 2; a larger one pads with zeros, the image starting at ceil((crop - size) / 2).
fn crop_axis(size: u32, crop: u32) -> (usize, usize, usize) {
    if size >= crop {
        (((size - crop) / 2) as usize, 0, crop as usize)
    } else {
        (0, (crop - size).div_ceil(2) as usize, size as usize)
    }
}

/// Converts to RGB (or Pillow's luma), resizes, crops, rescales and normalises: `channels * h * w` values, CHW.
pub fn preprocess(img: &DynamicImage, cfg: &PreprocessConfig) -> Vec<f32> {
    let mut out = Vec::new();
    preprocess_into(img, cfg, &mut out);
    out
}

/// `preprocess`, appending to `out`: the decode pool writes each image straight into its batch.
pub fn preprocess_into(img: &DynamicImage, cfg: &PreprocessConfig, out: &mut Vec<f32>) {
    let c = cfg.channels as usize;
    // A grey image made RGB has three equal channels, and resizing treats channels apart: resize the grey
    // plane alone and read it for all three.
    let grey = c == 3 && matches!(img, DynamicImage::ImageLuma8(_));
    let (pixels, width, height) = to_pixels(img, if grey { 1 } else { cfg.channels });
    let stored = if grey { 1 } else { c };
    let target = resized_size(cfg.size, height, width);
    let (pixels, width, height) = if cfg.do_resize && (width, height) != (target.1, target.0) {
        (resize(pixels, width, height, target, stored, cfg.resample), target.1, target.0)
    } else {
        (pixels, width, height)
    };
    let (out_h, out_w) = cfg.center_crop.unwrap_or((height, width));
    let (src_y, dst_y, rows) = crop_axis(height, out_h);
    let (src_x, dst_x, cols) = crop_axis(width, out_w);
    let (out_h, out_w, width) = (out_h as usize, out_w as usize, width as usize);
    let plane_len = out_h * out_w;
    let scale = cfg.rescale_factor.unwrap_or(1.0);
    let norm = |ch: usize| match cfg.mean.len() {
        0 => (0.0, 1.0),
        1 => (cfg.mean[0], cfg.std[0]),
        _ => (cfg.mean[ch], cfg.std[ch]),
    };
    // Each of the 256 levels normalised once, by the same f32 arithmetic as pixel by pixel.
    let lut = |ch: usize| -> [f32; 256] {
        let (mean, std) = norm(ch);
        std::array::from_fn(|v| (v as f32 * scale - mean) / std)
    };
    let base = out.len();
    let padded = (rows, cols) != (out_h, out_w);
    for ch in 0..c {
        let (mean, std) = norm(ch);
        // A grey image's channels normalised alike are the same plane.
        if grey && ch > 0 && norm(0) == (mean, std) {
            out.extend_from_within(base..base + plane_len);
            continue;
        }
        let lut = lut(ch);
        let at = if grey { 0 } else { ch };
        let src_row = |y: usize| {
            let row = (y + src_y) * width + src_x;
            pixels[row * stored + at..(row + cols) * stored].iter().step_by(stored).map(|&p| lut[p as usize])
        };
        if !padded {
            // Each value written once, without zeroing the plane first.
            (0..rows).for_each(|y| out.extend(src_row(y)));
            continue;
        }
        // Padding is pixel value 0 before rescaling and normalising.
        let plane_start = out.len();
        out.resize(plane_start + plane_len, (0.0 - mean) / std);
        let plane = &mut out[plane_start..];
        for y in 0..rows {
            let dst = &mut plane[(y + dst_y) * out_w + dst_x..][..cols];
            for (d, v) in dst.iter_mut().zip(src_row(y)) {
                *d = v;
            }
        }
    }
}

/// 8-bit interleaved pixels with `channels` values each, as transformers' `convert_to_rgb` gives them: images
/// with alpha are composited onto white (Pillow's `alpha_composite`), grey is replicated; one channel is
/// Pillow's `convert("L")` (ITU-R 601-2 integer weights).
fn to_pixels(img: &DynamicImage, channels: u8) -> (Vec<u8>, u32, u32) {
    let (w, h) = (img.width(), img.height());
    if channels == 1 {
        if let DynamicImage::ImageLuma8(g) = img {
            return (g.as_raw().clone(), w, h);
        }
        let (rgb, _, _) = to_pixels(img, 3);
        let luma = rgb
            .chunks_exact(3)
            .map(|p| ((p[0] as u32 * 19595 + p[1] as u32 * 38470 + p[2] as u32 * 7471 + 0x8000) >> 16) as u8)
            .collect();
        return (luma, w, h);
    }
    if img.color().has_alpha() {
        let rgba = img.to_rgba8();
        let rgb = rgba.pixels().flat_map(|p| composite_on_white(p.0)).collect();
        return (rgb, w, h);
    }
    (img.to_rgb8().into_raw(), w, h)
}

/// Pillow's `alpha_composite(white, src)` for one pixel (AlphaComposite.c, 7-bit precision, integer /255).
fn composite_on_white([r, g, b, a]: [u8; 4]) -> [u8; 3] {
    match a {
        0 => [255, 255, 255],
        255 => [r, g, b],
        _ => {
            const PRECISION_BITS: u32 = 7;
            let a = a as u32;
            let blend = 255 * (255 - a);
            let outa255 = a * 255 + blend;
            let coef1 = a * 255 * 255 * (1 << PRECISION_BITS) / outa255;
            let coef2 = 255 * (1 << PRECISION_BITS) - coef1;
            let shift_div255 = |v: u32| ((v >> 8) + v) >> 8;
            let mix = |c: u8| {
                let t = c as u32 * coef1 + 255 * coef2 + (0x80 << PRECISION_BITS);
                (shift_div255(t) >> PRECISION_BITS) as u8
            };
            [mix(r), mix(g), mix(b)]
        }
    }
}

/// Resizes interleaved 8-bit pixels to `size` (height, width) exactly as Pillow 13's `Image.resize(size, filter)`
/// does (Resample.c): nearest through its affine scaling; the other filters as two separable passes (in
/// Pillow's order, see below), with the filter support
/// widened by the downscale factor, coefficients normalised and rounded to 22-bit fixed point, and a rounded,
/// clipped 8-bit result after each pass. (fast_image_resize follows Pillow-SIMD's adaptive coefficient precision
/// and differs from Pillow by 1-2 levels, which is 0.008-0.016 after ViT normalisation: too far for 1e-3.)
fn resize(pixels: Vec<u8>, width: u32, height: u32, size: (u32, u32), channels: usize, filter: Resample) -> Vec<u8> {
    let (in_w, in_h) = (width as usize, height as usize);
    let (out_h, out_w) = (size.0 as usize, size.1 as usize);
    if filter == Resample::Nearest {
        let xs = nearest_indices(in_w, out_w);
        let mut out = Vec::with_capacity(out_w * out_h * channels);
        for y in nearest_indices(in_h, out_h) {
            let row = y * in_w;
            for &x in &xs {
                out.extend_from_slice(&pixels[(row + x) * channels..(row + x + 1) * channels]);
            }
        }
        return out;
    }
    let horiz = Coefficients::new(in_w, out_w, filter);
    let vert = Coefficients::new(in_h, out_h, filter);
    match (out_w != in_w, out_h != in_h) {
        (false, false) => pixels,
        (true, false) => horizontal(&pixels, in_w, 0..in_h, channels, &horiz),
        (false, true) => vertical(&pixels, in_w, channels, &vert),
        // Pillow 13 (PR #9549) resizes vertically first when the height shrinks by more than twice as many pixels
        // as the width; Pillow 12 and older always went horizontally first.
        (true, true) if out_h < in_h && (in_h - out_h) as i64 > 2 * (in_w as i64 - out_w as i64) => {
            let tmp = vertical(&pixels, in_w, channels, &vert);
            horizontal(&tmp, in_w, 0..out_h, channels, &horiz)
        }
        (true, true) => {
            // Only the source rows the vertical pass reads, with its bounds shifted to match.
            let first = vert.bounds[0].0;
            let last = vert.bounds[out_h - 1].0 + vert.bounds[out_h - 1].1;
            let tmp = horizontal(&pixels, in_w, first..last, channels, &horiz);
            let shifted = vert.bounds.iter().map(|&(y, n)| (y - first, n)).collect();
            vertical(&tmp, out_w, channels, &Coefficients { bounds: shifted, ..vert })
        }
    }
}

/// Pillow's horizontal pass over `rows` of an image `w` pixels wide.
fn horizontal(img: &[u8], w: usize, rows: std::ops::Range<usize>, channels: usize, horiz: &Coefficients) -> Vec<u8> {
    let out_w = horiz.bounds.len();
    let mut out = vec![0u8; out_w * rows.len() * channels];
    for (ty, y) in rows.enumerate() {
        let src = &img[y * w * channels..(y + 1) * w * channels];
        let dst = &mut out[ty * out_w * channels..(ty + 1) * out_w * channels];
        for (xx, &(xmin, n)) in horiz.bounds.iter().enumerate() {
            let k = &horiz.k[xx * horiz.ksize..xx * horiz.ksize + n];
            for c in 0..channels {
                let mut ss: i32 = 1 << (PRECISION_BITS - 1);
                for (i, &kv) in k.iter().enumerate() {
                    ss += src[(xmin + i) * channels + c] as i32 * kv;
                }
                dst[xx * channels + c] = clip8(ss);
            }
        }
    }
    out
}

/// Pillow's vertical pass over an image `w` pixels wide.
fn vertical(img: &[u8], w: usize, channels: usize, vert: &Coefficients) -> Vec<u8> {
    let row_len = w * channels;
    let mut out = vec![0u8; vert.bounds.len() * row_len];
    // Whole source rows times one weight at a time (vectorises); integer sums, so the order changes nothing.
    let mut acc = vec![0i32; row_len];
    for (yy, &(ymin, n)) in vert.bounds.iter().enumerate() {
        let k = &vert.k[yy * vert.ksize..yy * vert.ksize + n];
        acc.fill(1 << (PRECISION_BITS - 1));
        for (j, &kv) in k.iter().enumerate() {
            let src = &img[(ymin + j) * row_len..(ymin + j + 1) * row_len];
            for (a, &v) in acc.iter_mut().zip(src) {
                *a += v as i32 * kv;
            }
        }
        for (d, &a) in out[yy * row_len..(yy + 1) * row_len].iter_mut().zip(&acc) {
            *d = clip8(a);
        }
    }
    out
}

/// Pillow's nearest-neighbour source indices: its affine scaling starts at scale / 2 and adds the scale per
/// pixel (ImagingScaleAffine), truncating; the accumulation is kept so boundary cases round the same way.
fn nearest_indices(in_len: usize, out_len: usize) -> Vec<usize> {
    let scale = in_len as f64 / out_len as f64;
    let mut pos = scale * 0.5;
    (0..out_len)
        .map(|_| {
            let i = (pos as usize).min(in_len - 1);
            pos += scale;
            i
        })
        .collect()
}

const PRECISION_BITS: u32 = 32 - 8 - 2;

fn clip8(v: i32) -> u8 {
    if v >= (1 << PRECISION_BITS << 8) {
        255
    } else if v <= 0 {
        0
    } else {
        (v >> PRECISION_BITS) as u8
    }
}

/// Per output pixel: the first source index, how many source pixels, and their fixed-point weights.
struct Coefficients {
    bounds: Vec<(usize, usize)>,
    ksize: usize,
    k: Vec<i32>,
}

impl Coefficients {
    /// Pillow's `precompute_coeffs` + `normalize_coeffs_8bpc` for the whole axis (box 0..in_size).
    fn new(in_size: usize, out_size: usize, filter: Resample) -> Coefficients {
        let (support, f): (f64, fn(f64) -> f64) = match filter {
            Resample::Box => (0.5, |x| if x > -0.5 && x <= 0.5 { 1.0 } else { 0.0 }),
            Resample::Bilinear => (1.0, |x: f64| {
                let x = x.abs();
                if x < 1.0 { 1.0 - x } else { 0.0 }
            }),
            Resample::Hamming => (1.0, |x: f64| {
                let x = x.abs();
                if x == 0.0 {
                    1.0
                } else if x >= 1.0 {
                    0.0
                } else {
                    let x = x * std::f64::consts::PI;
                    x.sin() / x * (0.54 + 0.46 * x.cos())
                }
            }),
            Resample::Bicubic => (2.0, |x: f64| {
                const A: f64 = -0.5;
                let x = x.abs();
                if x < 1.0 {
                    ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
                } else if x < 2.0 {
                    (((x - 5.0) * x + 8.0) * x - 4.0) * A
                } else {
                    0.0
                }
            }),
            Resample::Lanczos => (3.0, |x: f64| {
                let sinc = |x: f64| {
                    if x == 0.0 {
                        1.0
                    } else {
                        let x = x * std::f64::consts::PI;
                        x.sin() / x
                    }
                };
                if (-3.0..3.0).contains(&x) { sinc(x) * sinc(x / 3.0) } else { 0.0 }
            }),
            Resample::Nearest => unreachable!("nearest does not convolve"),
        };
        // Pillow passes the box as C floats.
        let scale = (in_size as f32 - 0.0) as f64 / out_size as f64;
        let filterscale = scale.max(1.0);
        let support = support * filterscale;
        let ksize = support.ceil() as usize * 2 + 1;
        let mut bounds = Vec::with_capacity(out_size);
        let mut k = vec![0i32; out_size * ksize];
        let mut weights = vec![0f64; ksize];
        for xx in 0..out_size {
            let center = (xx as f64 + 0.5) * scale;
            let ss = 1.0 / filterscale;
            let xmin = ((center - support + 0.5) as i64).max(0) as usize;
            let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
            let n = xmax.saturating_sub(xmin);
            let mut ww = 0.0;
            for (x, w) in weights.iter_mut().enumerate().take(n) {
                *w = f((x as f64 + xmin as f64 - center + 0.5) * ss);
                ww += *w;
            }
            for x in 0..n {
                let w = if ww != 0.0 { weights[x] / ww } else { weights[x] };
                let fixed = w * (1i64 << PRECISION_BITS) as f64;
                k[xx * ksize + x] = if w < 0.0 { (fixed - 0.5) as i32 } else { (fixed + 0.5) as i32 };
            }
            bounds.push((xmin, n));
        }
        Coefficients { bounds, ksize, k }
    }
}
