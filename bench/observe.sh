#!/usr/bin/env bash
# What observing the dispatcher costs: bench/remote.sh's throughput (N no-op hosts, default
# 10,000) with metrics served and scraped every second and JSON logs at debug level (a line per
# task handed out and finished), against without, alternating, R rounds (default 3); prints
# the medians and their ratio. Target: within 5 %. See bench/README.md.
set -euo pipefail
hosts=10000
rounds=3
bin=
while (($#)); do
    case $1 in
        --hosts) hosts=$2; shift 2 ;;
        --rounds) rounds=$2; shift 2 ;;
        --bin) bin=$(realpath "$2"); shift 2 ;;
        -h|--help) echo "Usage: bench/observe.sh [--hosts N] [--rounds R] [--bin PATH]"; exit 0 ;;
        *) echo "observe bench: unknown option $1" >&2; exit 64 ;;
    esac
done
cd "$(dirname "$0")/.."
if [[ -z $bin ]]; then
    cargo build --release --quiet
    bin=$PWD/target/release/pogo
fi
off=() on=()
for _ in $(seq "$rounds"); do
    off+=("$(bench/remote.sh --bin "$bin" --hosts "$hosts" --chain 10 --no-local | sed -n 's/.* \([0-9]*\) tasks\/s$/\1/p')")
    on+=("$(bench/remote.sh --bin "$bin" --hosts "$hosts" --chain 10 --no-local --observe | sed -n 's/.* \([0-9]*\) tasks\/s$/\1/p')")
done
python3 - "${off[*]}" "${on[*]}" <<'PY'
import statistics, sys
off = [float(x) for x in sys.argv[1].split()]
on = [float(x) for x in sys.argv[2].split()]
a, b = statistics.median(off), statistics.median(on)
print(f"without: {off} tasks/s, median {a:.0f}")
print(f"metrics + JSON logs: {on} tasks/s, median {b:.0f}")
print(f"ratio {b/a:.3f}; target within 5%: {'PASS' if b >= 0.95 * a else 'FAIL'}")
PY
