//! Small builders for stores that tests fill by hand.
#![allow(dead_code)]

use torchlight_store::{ModelSpec, SpaceInfo};

/// An embedding space without a model (embeddings put directly), with `num_classes` probabilities per item.
pub fn precomputed_space(name: &str, dim: usize, num_classes: u32) -> SpaceInfo {
    SpaceInfo {
        name: name.into(),
        index: 0,
        dim: dim as u32,
        model: ModelSpec {
            kind: "precomputed".into(),
            source: "test".into(),
            fingerprint: "t".into(),
            pooling: "none".into(),
            image_size: 0,
        },
        num_classes,
        class_names: Vec::new(),
    }
}

/// A .npy file's bytes (format 1.0) around `body`, as numpy writes them: `descr` like "<f4", `shape` like "(2, 3)".
pub fn npy_bytes(descr: &str, shape: &str, fortran: bool, body: &[u8]) -> Vec<u8> {
    let mut header = format!(
        "{{'descr': '{descr}', 'fortran_order': {}, 'shape': {shape}, }}",
        if fortran { "True" } else { "False" }
    );
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(body);
    out
}
