#!/usr/bin/env bash
# Benchmark of `pogo plan` on a fleet of 100,000 hosts (and 10,000 for comparison).
#
# Builds pogo in release, generates fleet configs with bench/gen-fleet.py (100 colos x 5 roles
# x 200 hosts, tags by colo and role, one sequence per role over the colos, per-colo and
# per-role limits) and times `pogo plan --config FLEET -o plan.json` and `pogo plan --config
# FLEET` (the table operators read) several times each. Reports wall time (min / median), peak
# RSS (max over the runs), the plan's size and host count, against the targets: < 1 s and
# < 500 MB for 100,000 hosts. See bench/README.md.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: bench/plan-100k.sh [options]

  --runs N        runs per figure (default 5)
  --sizes LIST    comma-separated host counts, multiples of 1000 (default 100000,10000)
  --modes LIST    how tags name hosts: list, pattern, mixed (default mixed,list,pattern);
                  see bench/gen-fleet.py
  --bin PATH      time this pogo binary instead of building the workspace's
  --keep DIR      write configs, plans and tables into DIR and keep them
  -h, --help      this text

Targets (100,000 hosts, release build): wall time < 1 s, peak RSS < 500 MB.
EOF
}

die() {
    printf 'plan-100k: %s\n' "$*" >&2
    exit 1
}

runs=5
sizes=100000,10000
modes=mixed,list,pattern
bin=
keep=
while (($# > 0)); do
    case $1 in
        --runs) runs=${2:?--runs needs a value}; shift 2 ;;
        --sizes) sizes=${2:?--sizes needs a value}; shift 2 ;;
        --modes) modes=${2:?--modes needs a value}; shift 2 ;;
        --bin) bin=${2:?--bin needs a value}; shift 2 ;;
        --keep) keep=${2:?--keep needs a value}; shift 2 ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; exit 64 ;;
    esac
done
[[ $runs =~ ^[1-9][0-9]*$ ]] || die "--runs must be a positive number"

export LC_ALL=C # EPOCHREALTIME and printf %f use a dot
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD
command -v python3 >/dev/null || die "python3 is needed (config generator, plan check)"

if [[ -n $bin ]]; then
    [[ $bin == /* ]] || bin=$root/$bin
    [[ -x $bin ]] || die "--bin $bin is not an executable"
else
    echo "building pogo (release)..." >&2
    cargo build --release --quiet -p pogo-cli || die "cargo build --release failed"
    target_dir=$(cargo metadata --format-version 1 --no-deps |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
    bin=$target_dir/release/pogo
fi

if [[ -n $keep ]]; then
    mkdir -p "$keep"
    work=$(cd "$keep" && pwd)
else
    work=$(mktemp -d "${TMPDIR:-/tmp}/pogo-bench.XXXXXX")
    trap 'rm -rf "$work"' EXIT
fi

# How peak RSS is read: GNU time's %M (the "Maximum resident set size" of -v), or, where GNU
# time is missing (apt-get install -y time), getrusage(RUSAGE_CHILDREN) through python3.
if /usr/bin/time -f %M -o /dev/null true 2>/dev/null; then
    rss_method="GNU time (/usr/bin/time -f %M)"
else
    rss_method="python3 getrusage(RUSAGE_CHILDREN)"
fi

# measure OUT CMD...: runs CMD with stdout to OUT; sets wall_us and rss_kb. Fails loudly.
measure() {
    local out=$1 start end
    shift
    if [[ $rss_method == GNU* ]]; then
        start=$EPOCHREALTIME
        /usr/bin/time -f %M -o "$work/rss" "$@" >"$out" 2>"$work/stderr" ||
            die "failed: $* (see below)"$'\n'"$(cat "$work/stderr")"
        end=$EPOCHREALTIME
        wall_us=$((${end/./} - ${start/./}))
        rss_kb=$(tail -n 1 "$work/rss")
    else
        python3 -c '
import resource, subprocess, sys, time
start = time.perf_counter()
with open(sys.argv[1], "wb") as out, open(sys.argv[2], "wb") as err:
    rc = subprocess.call(sys.argv[4:], stdout=out, stderr=err)
wall_us = int((time.perf_counter() - start) * 1e6)
rss_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
with open(sys.argv[3], "w") as f:
    f.write(f"{wall_us} {rss_kb}\n")
sys.exit(rc)' "$out" "$work/stderr" "$work/rss" "$@" ||
            die "failed: $* (see below)"$'\n'"$(cat "$work/stderr")"
        read -r wall_us rss_kb <"$work/rss"
    fi
}

# seconds US: microseconds as seconds with 3 decimals.
seconds() {
    printf '%d.%03d' $(($1 / 1000000)) $(($1 % 1000000 / 1000))
}

# megabytes KB: KiB as MB (10^6 bytes), the unit of the target.
megabytes() {
    printf '%d' $(($1 * 1024 / 1000000))
}

verdict() { # VALUE LIMIT: PASS when VALUE < LIMIT
    if (($1 < $2)); then echo PASS; else echo MISS; fi
}

commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ $commit != unknown ]] && ! git diff --quiet HEAD -- 2>/dev/null; then
    commit="$commit + uncommitted changes"
fi
cpu=$(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ *//' || true)

echo
echo "pogo plan benchmark, $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "machine: $(nproc) cores (${cpu:-unknown cpu}), $(free -g 2>/dev/null | awk '/^Mem:/ {print $2 " GB RAM"}')"
echo "pogo:    $bin (commit $commit)"
echo "runs:    $runs per figure; wall = min / median; peak RSS = max over the runs ($rss_method)"
echo "targets: 100,000 hosts in < 1 s and < 500 MB peak RSS (release build)"
echo

printf '%-7s %-8s %-14s %9s %9s %9s %11s %7s  %s\n' \
    hosts mode command "wall min" median "peak RSS" output "in plan" "verdict"
results=()
for size in ${sizes//,/ }; do
    if ! [[ $size =~ ^[0-9]+$ ]] || ((size % 1000 != 0 || size == 0 || size > 999000)); then
        die "size $size is not a multiple of 1000 up to 999000 (colos x 5 roles x 200 hosts)"
    fi
    colos=$((size / 1000))
    for mode in ${modes//,/ }; do
        case $mode in list | pattern | mixed) ;; *) die "unknown mode $mode" ;; esac
        config=$work/fleet-$size-$mode.cfg
        python3 bench/gen-fleet.py --colos "$colos" --mode "$mode" >"$config"

        for command in "plan -o" "plan (table)"; do
            walls=()
            peak=0
            plan=$work/plan-$size-$mode.json
            table=$work/table-$size-$mode.txt
            for ((i = 1; i <= runs; i++)); do
                if [[ $command == "plan -o" ]]; then
                    measure "$work/stdout" "$bin" plan --config "$config" -o "$plan"
                    if ((i == 1)); then
                        cp "$plan" "$work/first.json"
                    elif ! cmp -s "$plan" "$work/first.json"; then
                        die "run $i wrote a different plan than run 1 (plans must be byte-identical)"
                    fi
                else
                    measure "$table" "$bin" plan --config "$config"
                fi
                walls+=("$wall_us")
                ((rss_kb > peak)) && peak=$rss_kb
            done
            mapfile -t sorted < <(printf '%s\n' "${walls[@]}" | sort -n)
            min=${sorted[0]}
            median=${sorted[$(((runs - 1) / 2))]}
            if [[ $command == "plan -o" ]]; then
                output="$(wc -c <"$plan" | tr -d ' ') B"
                in_plan=$(python3 -c '
import json, sys
plan = json.load(open(sys.argv[1]))
slots = sum(len(t["slots"]) for t in plan["threads"])
print(len(plan["hosts"]), len(plan["threads"]), slots, len(plan["constraints"]))' "$plan")
                read -r hosts threads slots groups <<<"$in_plan"
                ((hosts == size)) || die "the plan holds $hosts hosts, not $size"
                in_plan=$hosts
                plan_detail="plan: $hosts hosts, $threads threads, $slots slots, $groups constraint groups"
            else
                output="$(wc -c <"$table" | tr -d ' ') B"
                in_plan=-
            fi
            if ((size == 100000)); then
                verdict="time $(verdict "$median" 1000000), rss $(verdict "$peak" 488281)"
            elif ((size > 100000)); then
                verdict="(100k targets:) time $(verdict "$median" 1000000), rss $(verdict "$peak" 488281)"
            else
                # The original Perl scheduler took about 10 minutes for 10,000 hosts.
                verdict="$(((600000000 * size / 10000) / median))x faster than Perl (~10 min/10k)"
            fi
            printf '%-7s %-8s %-14s %7s s %7s s %6s MB %11s %7s  %s\n' \
                "$size" "$mode" "$command" "$(seconds "$min")" "$(seconds "$median")" \
                "$(megabytes "$peak")" "$output" "$in_plan" "$verdict"
        done
        results+=("$size $mode: config $(wc -c <"$config" | tr -d ' ') B, $plan_detail")
    done
done
echo
printf '%s\n' "${results[@]}"
echo "plans are byte-identical across runs; verdicts use the median time and the peak RSS"
echo "(500 MB = 500,000,000 bytes = 488,281 KiB). 'plan -o' also prints the table, as pogo does."
if [[ -n $keep ]]; then
    echo "configs, plans and tables kept in $work"
fi
