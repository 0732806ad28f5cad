//! IDX (MNIST family): the first two bytes (u16 LE) say where the images file ends and a labels file begins;
//! 0 means an images file alone.
#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use torchlight_engine::source::Format;

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let cut = u16::from_le_bytes([data[0], data[1]]) as usize;
    let rest = &data[2..];
    if cut == 0 {
        common::read_dataset(Format::Idx, &[("train-images-idx3-ubyte", rest)], "train-images-idx3-ubyte");
    } else {
        let (images, labels) = rest.split_at(cut.min(rest.len()));
        let files: [(&str, &[u8]); 2] = [("train-images-idx3-ubyte", images), ("train-labels-idx1-ubyte", labels)];
        common::read_dataset(Format::Idx, &files, "train-images-idx3-ubyte");
    }
});
