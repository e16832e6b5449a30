//! libFuzzer entry point; the checks are in `gupio_fuzz::bio_builder`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| gupio_fuzz::bio_builder::run(data));
