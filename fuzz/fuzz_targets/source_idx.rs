//! IDX (MNIST family): arbitrary bytes as the images file, the first byte decides whether a labels file
//! of the remaining length goes with it.
#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use torchlight::source::Format;

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else { return };
    let cut = (split as usize * rest.len()) / 255;
    let (images, labels) = rest.split_at(cut);
    if split & 1 == 0 {
        common::read_dataset(Format::Idx, &[("train-images-idx3-ubyte", rest)], "train-images-idx3-ubyte");
    } else {
        let files: [(&str, &[u8]); 2] = [("train-images-idx3-ubyte", images), ("train-labels-idx1-ubyte", labels)];
        common::read_dataset(Format::Idx, &files, "train-images-idx3-ubyte");
    }
});
