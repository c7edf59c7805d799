#!/usr/bin/env bash
# Instructions per request through the layer, over the bare service (callgrind, deterministic):
# examples/admit_loop.rs with N=10 keys and 200,192 requests per case, minus MODE=bare, divided by
# the requests. Prints one line per case. Not run by CI (a few minutes under valgrind).
#
# Usage: bash scripts/callgrind.sh [FEATURES]   (FEATURES: cargo --features, default none)
set -euo pipefail
cd "$(dirname "$0")/.."
features=${1:-}
cargo build --release --example admit_loop ${features:+--features "$features"} >/dev/null 2>&1
bin=target/release/examples/admit_loop
out=$(mktemp -d)
reqs=200192
ir() { # env... -> total Ir
  env "$@" N=10 valgrind --tool=callgrind --callgrind-out-file="$out/cg.%p" "$bin" "$reqs" \
    2>&1 >/dev/null | grep -o 'Collected : [0-9]*' | grep -o '[0-9]*'
}
bare=$(ir MODE=bare)
printf '%-34s %10s\n' case 'Ir/req'
for case in "admitted|" "headers on|H=1" "tower_governor|MODE=tg" "throttled|CASE=throttled" \
            "quota used up|CASE=quota" "forbidden|CASE=forbidden"; do
  name=${case%%|*}; envs=${case#*|}
  total=$(ir $envs)
  printf '%-34s %10.1f\n' "$name" "$(echo "($total - $bare) / $reqs" | bc -l)"
done
rm -rf "$out"
