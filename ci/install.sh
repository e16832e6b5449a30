#!/usr/bin/env bash
# Installs everything `cargo xtask ci` needs. Idempotent: each step is skipped,
# or is a local no-op, when what it installs is already there. CI runs it as
# root on a fresh machine; a developer runs it once.
set -euxo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

# The nightly toolchain for miri and the fuzzer's sanitizer: named once, in
# ci/nightly-toolchain (xtask reads the same file); GUPIO_NIGHTLY overrides.
nightly="${GUPIO_NIGHTLY:-$(tr -d '[:space:]' < ci/nightly-toolchain)}"

# The pinned stable toolchain with the components and the four bare-metal
# targets that rust-toolchain.toml lists (installs only what is missing).
rustup toolchain install
rustc --version

# Nightly with miri and the standard library sources miri builds from.
nightly_ready() {
    cargo "+$nightly" miri --version >/dev/null 2>&1 &&
        [ -d "$(rustc "+$nightly" --print sysroot)/lib/rustlib/src/rust/library/core" ]
}
if ! nightly_ready; then
    rustup toolchain install "$nightly" --profile minimal --component miri,rust-src
fi
# miri's standard library for the host and for the 32-bit target (a no-op
# when it is already built).
cargo "+$nightly" miri setup
cargo "+$nightly" miri setup --target i686-unknown-linux-gnu

# cargo fuzz, built from crates.io with its own lock file.
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

# cbindgen, which generates the C ABI's header (crates/capi/include/gupio.h):
# pinned, since another release may format the header differently and
# `cargo xtask test` fails on any difference (xtask/src/tools.rs names the
# same version).
cbindgen_version=0.29.2
if [ "$(cbindgen --version 2>/dev/null)" != "cbindgen $cbindgen_version" ]; then
    cargo install cbindgen --version "$cbindgen_version" --locked
fi

# Debian packages: a C compiler for the C ABI's tests, a C++ compiler for libFuzzer, QEMU and the FAT tools for
# the demo kernel.
# The preinstalled qemu-utils conflicts with the qemu-system-misc version from
# the same suite, hence `qemu-utils-` (remove it).
apt_packages=()
if ! command -v cc >/dev/null; then
    apt_packages+=(gcc)
fi
if ! command -v c++ >/dev/null; then
    apt_packages+=(g++)
fi
if ! command -v qemu-system-riscv64 >/dev/null; then
    apt_packages+=(qemu-system-misc qemu-utils-)
fi
# The FAT image of the demo kernel's file scenario: mkfs.fat and fsck.fat
# (dosfstools), mcopy and mtype (mtools).
if ! command -v mkfs.fat >/dev/null || ! command -v fsck.fat >/dev/null; then
    apt_packages+=(dosfstools)
fi
if ! command -v mcopy >/dev/null || ! command -v mtype >/dev/null; then
    apt_packages+=(mtools)
fi
if [ "${#apt_packages[@]}" -gt 0 ]; then
    sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        sudo=(sudo)
    fi
    export DEBIAN_FRONTEND=noninteractive
    "${sudo[@]}" apt-get update
    "${sudo[@]}" apt-get install -y "${apt_packages[@]}"
fi
