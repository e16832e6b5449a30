//! libFuzzer entry point; the checks are in `gupio_fuzz::pfn_encoding`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| gupio_fuzz::pfn_encoding::run(data));
