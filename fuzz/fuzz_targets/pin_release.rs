//! libFuzzer entry point; the checks are in `gupio_fuzz::pin_release`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| gupio_fuzz::pin_release::run(data));
