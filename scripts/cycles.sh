#!/usr/bin/env bash
# Import cycles between the library's modules (not run by CI: cargo-modules takes minutes to
# install). Installs cargo-modules 0.27.0 if missing (scripts/install-cargo-modules.sh), dumps
# the library's item graph, and lifts it to modules with scripts/module_cycles.py: every
# item-level `uses` edge becomes an edge between the modules that own the two items; the
# strongly connected components of more than one module are the cycles.
#
# Why not `cargo modules dependencies --acyclic` alone: in 0.27.0 it stops at the first
# item-level cycle, and every type with a method that names it (a Debug impl) is one (a type
# "owns" its methods, which "use" it), so it fails on any crate. The module-level lift of the
# same graph is what "import cycles" means here.
#
# Usage: bash scripts/cycles.sh [--top]   (--top: collapse to the crate's top-level modules)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo-modules >/dev/null || bash scripts/install-cargo-modules.sh
cargo modules --version
out=$(mktemp)
cargo modules dependencies --lib --all-features --no-externs --no-sysroot > "$out"
python3 scripts/module_cycles.py "$out" "$@"
rm -f "$out"
