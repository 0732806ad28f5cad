//! Parquet datasets (the Hugging Face layout and plain image-bytes columns): arbitrary bytes as the file.
//! Seeds are real files (crates/engine/tests/fixtures/sources and bad_inputs) so mutations stay near valid.
#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use torchlight_engine::source::Format;

fuzz_target!(|data: &[u8]| {
    common::read_dataset(Format::Parquet, &[("data.parquet", data)], "data.parquet");
});
