//! CIFAR binary batches: arbitrary bytes as data_batch_1.bin (CIFAR-10) or train.bin (CIFAR-100).
#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use torchlight_engine::source::Format;

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else { return };
    let name = if which & 1 == 0 { "data_batch_1.bin" } else { "train.bin" };
    common::read_dataset(Format::Cifar, &[(name, rest), ("batches.meta.txt", b"cat\ndog\n")], "");
});
