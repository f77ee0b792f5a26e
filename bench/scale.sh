#!/usr/bin/env bash
# Planning at scale and `pogo diff`, against their targets: a million hosts planned in under
# 1 s and 600 MB; 100,000 (pattern mode) in under 80 ms; a diff of two 100,000-host plans in
# no more time than planning one of them (`plan -o`, the plan written with fsync). Fleets from
# bench/gen-fleet.py; medians of --runs runs (wall time from bash's EPOCHREALTIME), peak RSS
# from GNU time. See bench/README.md ("Hashing, memory, and a million hosts").
set -euo pipefail

usage() {
    cat <<'USAGE'
Usage: bench/scale.sh [--runs N] [--bin PATH]

  --runs N     runs per figure (default 9; the million-host figures take 3)
  --bin PATH   time this pogo binary instead of building the workspace's
USAGE
}

runs=9
bin=
while (($# > 0)); do
    case $1 in
        --runs) runs=${2:?}; shift 2 ;;
        --bin) bin=${2:?}; shift 2 ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; exit 64 ;;
    esac
done
[[ $runs =~ ^[1-9][0-9]*$ ]] || { echo "scale: --runs must be a positive number" >&2; exit 64; }

export LC_ALL=C
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD
command -v /usr/bin/time >/dev/null || { echo "scale: GNU time is needed: apt-get install -y time" >&2; exit 1; }
if [[ -z $bin ]]; then
    echo "building pogo (release)..." >&2
    cargo build --release --quiet -p pogo-cli
    bin=${CARGO_TARGET_DIR:-$root/target}/release/pogo
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

python3 bench/gen-fleet.py --colos 100 --mode pattern >"$work/100k.cfg"
# The new side of the diff: one colo renamed (1,000 hosts out, 1,000 in) and a raised limit.
sed 's/c001/c00X/' "$work/100k.cfg" >"$work/100k-b.cfg"
python3 bench/gen-fleet.py --colos 250 --per-role 800 --mode pattern >"$work/1m.cfg"
"$bin" plan --config "$work/100k-b.cfg" --concurrent 40 -o "$work/b.json" >/dev/null 2>&1

# "MEDIAN_SECONDS PEAK_KB" of N runs of a command, its output discarded. Exit status 2 is
# fine for `pogo diff` (the rollouts differ), nothing else.
measure() {
    local n=$1 i start end peak=0 kb status
    shift
    local times=()
    for ((i = 0; i < n; i++)); do
        start=$EPOCHREALTIME
        status=0
        /usr/bin/time -f '%M' -o "$work/rss" "$@" >/dev/null 2>&1 || status=$?
        end=$EPOCHREALTIME
        if ((status != 0)) && ! [[ $2 == diff && $status == 2 ]]; then
            echo "scale: failed ($status): $*" >&2
            exit 1
        fi
        times+=("$(bc <<<"$end - $start")")
        kb=$(tail -1 "$work/rss")
        ((kb > peak)) && peak=$kb
    done
    printf '%s\n' "${times[@]}" | sort -n | awk -v peak="$peak" \
        '{v[NR]=$1} END {printf "%.3f %d\n", v[int((NR+1)/2)], peak}'
}

row() { printf '%-34s %8s s %7s MB  %s\n' "$1" "$2" "$(($3 * 1024 / 1000000))" "$4"; }
verdict() { if (($(bc <<<"$1"))); then echo PASS; else echo FAIL; fi; }

printf '%-34s %10s %10s  %s\n' "" "median" "peak RSS" "target"
read -r t m <<<"$(measure 3 "$bin" plan --config "$work/1m.cfg")"
row "plan 1M (table)" "$t" "$m" "< 1 s, < 600 MB: $(verdict "$t < 1 && $m * 1024 < 600000000")"
read -r t m <<<"$(measure 3 "$bin" plan --config "$work/1m.cfg" -o "$work/1m.json")"
row "plan 1M -o" "$t" "$m" "< 1 s, < 600 MB: $(verdict "$t < 1 && $m * 1024 < 600000000")"
read -r t m <<<"$(measure "$runs" "$bin" plan --config "$work/100k.cfg")"
row "plan 100k (table)" "$t" "$m" "< 0.080 s: $(verdict "$t < 0.080")"
read -r plan m <<<"$(measure "$runs" "$bin" plan --config "$work/100k.cfg" -o "$work/a.json")"
row "plan 100k -o" "$plan" "$m" "(the diff's yardstick)"
read -r t m <<<"$(measure "$runs" "$bin" diff "$work/a.json" "$work/b.json")"
row "diff of two 100k plans" "$t" "$m" "<= plan 100k -o: $(verdict "$t <= $plan")"
