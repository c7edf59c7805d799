#!/bin/sh
# Installs cargo-modules from crates.io (own target dir so it does not touch the project's).
# The newest release (0.28.0) requires rustc >= 1.98; this toolchain is rustc 1.95.0, for which
# cargo reports "cargo-modules 0.27.0 supports rustc 1.95.0", so that version is pinned here.
set -eu
export CARGO_TARGET_DIR=/work/cargo-modules-target
cargo install cargo-modules --version 0.27.0 --locked
cargo modules --version
