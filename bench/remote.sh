#!/usr/bin/env bash
# Benchmark of remote apply with real processes on loopback: `pogo certs init`, one
# `pogo dispatcher`, four `pogo worker`s (capacity 64 each), and `pogo apply --dispatcher` with
# the local transport:
#
#   throughput: N hosts (default 10,000) running `true`, unconstrained. Target: >= 2,000 tasks/s.
#   latency:    a chain of M hosts (default 200) in one group with max_parallel 1, running
#               `true`: the time per sequential step. Target: < 5 ms.
#
# Also runs the same N hosts with a local `pogo apply` (limit 256) for comparison: on a small
# machine, starting the processes is what bounds both (--no-local skips it). With
# --database URL the dispatcher keeps its state in that PostgreSQL database instead of SQLite
# (bench/postgres.sh compares the two). See bench/README.md.
set -euo pipefail

hosts=10000
chain=200
bin=
database=
local=1
observe=
while (($#)); do
    case $1 in
        --hosts) hosts=$2; shift 2 ;;
        --chain) chain=$2; shift 2 ;;
        --bin) bin=$2; shift 2 ;;
        --database) database=$2; shift 2 ;;
        --no-local) local=; shift ;;
        --observe) observe=1; shift ;;
        -h|--help)
            echo "Usage: bench/remote.sh [--hosts N] [--chain M] [--bin PATH] [--database URL] [--no-local] [--observe]"
            exit 0 ;;
        *) echo "remote bench: unknown option $1" >&2; exit 64 ;;
    esac
done

if [[ -n $bin ]]; then
    bin=$(realpath "$bin")
fi
cd "$(dirname "$0")/.."
if [[ -z $bin ]]; then
    cargo build --release --quiet
    bin=$PWD/target/release/pogo
fi
work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
cd "$work"

"$bin" certs init pki --worker w1 --worker w2 --worker w3 --worker w4 --operator bench >/dev/null
if [[ -n $database ]]; then
    store=(--database "$database")
    label="remote (PostgreSQL)"
else
    store=(--state-dir state)
    label="remote (SQLite)"
fi
if [[ -n $observe ]]; then
    # Metrics served (and scraped once a second) and JSON logs at debug (a line per task).
    store+=(--metrics-listen 127.0.0.1:0 --log-format json --log-level debug)
    label="$label, metrics + JSON logs"
fi
"$bin" dispatcher --listen 127.0.0.1:0 "${store[@]}" \
    --cert pki/dispatcher.pem --key pki/dispatcher-key.pem --ca pki/ca.pem \
    >dispatcher.out 2>dispatcher.err &
pids+=($!)
for _ in $(seq 100); do
    grep -q listening dispatcher.out 2>/dev/null && break
    sleep 0.05
done
url=$(sed -n 's/.*listening on //p' dispatcher.out)
if [[ -n $observe ]]; then
    metrics=$(sed -n 's/.*metrics and health on \(http:[^ ]*\/metrics\).*/\1/p' dispatcher.err | head -1)
    ( while sleep 1; do curl -s "$metrics" >/dev/null 2>&1 || true; done ) &
    pids+=($!)
fi
for w in w1 w2 w3 w4; do
    "$bin" worker --dispatcher "$url" --capacity 64 \
        --cert "pki/worker-$w.pem" --key "pki/worker-$w-key.pem" --ca pki/ca.pem \
        >"$w.log" 2>&1 &
    pids+=($!)
done
export POGO_DISPATCHER=$url POGO_CA=pki/ca.pem POGO_CERT=pki/operator-bench.pem \
    POGO_KEY=pki/operator-bench-key.pem

python3 - "$hosts" "$chain" <<'PY'
import sys
hosts, chain = int(sys.argv[1]), int(sys.argv[2])
with open("fleet.cfg", "w") as f:
    f.write("tag:\n  all:\n" + "".join(f"    - h{i:05d}\n" for i in range(hosts)))
with open("chain.cfg", "w") as f:
    f.write("tag:\n  chain:\n" + "".join(f"    - c{i:03d}\n" for i in range(chain)))
    f.write("constraint:\n  $chain:\n    max_parallel: 1\n")
PY
"$bin" plan --config fleet.cfg --command true --unconstrained -o fleet.plan.json >/dev/null
"$bin" plan --config chain.cfg --command true -o chain.plan.json >/dev/null

seconds() { python3 -c 'import time; print(time.monotonic())'; }

start=$(seconds)
"$bin" apply --dispatcher fleet.plan.json --transport local >/dev/null
end=$(seconds)
python3 -c "d=$end-$start; print(f'$label: {$hosts} no-op tasks, 1 dispatcher + 4 workers x 64: {d:.2f} s, {$hosts/d:.0f} tasks/s')"

start=$(seconds)
"$bin" apply --dispatcher chain.plan.json --transport local >/dev/null
end=$(seconds)
python3 -c "d=$end-$start; print(f'$label: chain of {$chain} hosts at max_parallel 1: {d:.2f} s, {d*1000/$chain:.2f} ms per step')"

[[ -n $local ]] || exit 0

start=$(seconds)
POGO_STATE_DIR=$work/local "$bin" apply fleet.plan.json --transport local --concurrent 256 >/dev/null
end=$(seconds)
python3 -c "d=$end-$start; print(f'local:  {$hosts} no-op tasks, limit 256: {d:.2f} s, {$hosts/d:.0f} tasks/s')"

start=$(seconds)
POGO_STATE_DIR=$work/local "$bin" apply chain.plan.json --transport local >/dev/null
end=$(seconds)
python3 -c "d=$end-$start; print(f'local:  chain of {$chain} hosts at max_parallel 1: {d:.2f} s, {d*1000/$chain:.2f} ms per step')"
