#!/usr/bin/env bash
# Requests per second of two quickstarts sharing one Redis (--redis), under wrk, next to two
# quickstarts on the in-memory store and meter (each its own). Issue 13, point 8. See BENCHMARKS.md.
#
#   benches/two_instances.sh                     # DURATION=10s CONNS=16 KEYS=1000 ROUNDS=1
#   DURATION=15s CONNS=32 ROUNDS=3 benches/two_instances.sh
#
# Everything on 127.0.0.1: a redis-server on a free port in a temp dir of its own (no persistence),
# two release-built `examples/quickstart` on free ports, given a generated --config of KEYS keys
# (values "benchkey" and the index on 32 digits, as benches/wrk-keys.lua computes them) on one
# plan that never throttles or runs out (10^6 requests a second, 10^12 a day), so every answer is
# a 200 and the figure is the cost. Both instances are loaded at once by two wrk processes (one
# thread and CONNS connections each, GET /items with a random key), started together; the script
# prints each instance's rate and their sum, and the count of answers that were not 2xx.
# Needs: cargo, redis-server, redis-cli, wrk, curl, python3 (for free ports). Stops everything it
# started (by process id) when it ends.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
CONNS=${CONNS:-16}
KEYS=${KEYS:-1000}
ROUNDS=${ROUNDS:-1}
export KEYS
for tool in redis-server redis-cli wrk curl python3; do
    command -v "$tool" >/dev/null || { echo "error: $tool is missing" >&2; exit 1; }
done

cargo build --quiet --release --example quickstart --features redis,metrics,admin
BIN="${CARGO_TARGET_DIR:-target}/release/examples/quickstart"

work=$(mktemp -d)
pids=()
stop_all() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    pids=()
}
trap 'stop_all; rm -rf "$work"' EXIT

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# The configuration: KEYS keys on one plan that never refuses.
{
    printf '{"apiKeys":['
    for ((i = 0; i < KEYS; i++)); do
        ((i > 0)) && printf ','
        printf '{"id":"k%09d","value":"benchkey%032d","name":"c%d","enabled":true}' "$i" "$i" "$i"
    done
    printf '],"usagePlans":[{"id":"plan111","name":"BenchPlan",'
    printf '"apiStages":[{"apiId":"abc123def4","stage":"prod"}],'
    printf '"throttle":{"burstLimit":1000000,"rateLimit":1000000.0},'
    printf '"quota":{"limit":1000000000000,"offset":0,"period":"DAY"}}],'
    printf '"usagePlanKeys":{"plan111":['
    for ((i = 0; i < KEYS; i++)); do
        ((i > 0)) && printf ','
        printf '{"id":"k%09d","type":"API_KEY","name":"c%d"}' "$i" "$i"
    done
    printf ']}}\n'
} >"$work/config.json"

# Waits (bounded: 30 s) until $1 answers 200.
wait_http() {
    for _ in $(seq 300); do
        curl -fs -o /dev/null "$1" && return 0
        sleep 0.1
    done
    echo "error: $1 did not answer" >&2
    return 1
}

# Starts a quickstart on a free port with the extra arguments given; sets $port.
start_instance() {
    port=$(free_port)
    "$BIN" --config "$work/config.json" --listen "127.0.0.1:$port" "$@" >"$work/qs-$port.log" 2>&1 &
    pids+=($!)
    wait_http "http://127.0.0.1:$port/health"
}

# Runs two wrk at once, one against each of ports $1 and $2; prints the rates.
run_wrk() {
    local a=$1 b=$2 label=$3
    wrk -t1 -c"$CONNS" -d"$DURATION" -s benches/wrk-keys.lua "http://127.0.0.1:$a/items" >"$work/wrk-a" &
    local wa=$!
    wrk -t1 -c"$CONNS" -d"$DURATION" -s benches/wrk-keys.lua "http://127.0.0.1:$b/items" >"$work/wrk-b" &
    local wb=$!
    wait "$wa" "$wb"
    local ra rb na nb
    ra=$(awk '/^Requests\/sec:/ {print $2}' "$work/wrk-a")
    rb=$(awk '/^Requests\/sec:/ {print $2}' "$work/wrk-b")
    na=$(awk '/Non-2xx or 3xx responses:/ {print $5}' "$work/wrk-a")
    nb=$(awk '/Non-2xx or 3xx responses:/ {print $5}' "$work/wrk-b")
    printf '%-8s total %10.0f req/s   instance A %10.0f   instance B %10.0f   non-2xx %s + %s\n' \
        "$label" "$(awk "BEGIN {print $ra + $rb}")" "$ra" "$rb" "${na:-0}" "${nb:-0}"
}

echo "$(nproc) cores; wrk -t1 -c$CONNS -d$DURATION per instance; $KEYS keys; $ROUNDS round(s)"
for ((round = 1; round <= ROUNDS; round++)); do
    # Two quickstarts, each with its own in-memory store and meter.
    start_instance --memory; a=$port
    start_instance --memory; b=$port
    run_wrk "$a" "$b" memory
    stop_all

    # Two quickstarts sharing one Redis (store and meter), started empty for each round: the
    # first instance loads the configuration into it, the second serves what it holds.
    rport=$(free_port)
    mkdir -p "$work/redis"
    redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no --dir "$work/redis" \
        >"$work/redis.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 300); do
        [ "$(redis-cli -p "$rport" ping 2>/dev/null)" = PONG ] && break
        sleep 0.1
    done
    start_instance --redis "redis://127.0.0.1:$rport"; a=$port
    start_instance --redis "redis://127.0.0.1:$rport"; b=$port
    grep -h 'Keys, plans and limits in Redis' "$work"/qs-"$a".log "$work"/qs-"$b".log | sed 's/^/  /'
    run_wrk "$a" "$b" redis
    stop_all
done
