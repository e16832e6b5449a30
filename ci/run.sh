#!/usr/bin/env bash
# What CI runs: install the tools, then every check (`cargo xtask ci`).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash ci/install.sh
cargo xtask ci
