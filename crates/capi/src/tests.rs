//! Unit tests of the C ABI from Rust (run under miri too).
