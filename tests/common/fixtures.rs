//! Small builders for stores that tests fill by hand.
#![allow(dead_code)]

use torchlight::store::{ModelSpec, SpaceInfo};

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
