#!/usr/bin/env bash
# Benchmark of `pogo apply` against xargs doing the same work with no scheduling at all:
#
#   local: 10,000 hosts running `true` with the local transport under a job-wide limit of 200,
#          against `seq 10000 | xargs -P 200 -n1 sh -c true`. Target: ratio <= 1.2.
#   ssh:   200 hosts over SSH to a loopback sshd (aliases in an ssh config), limit 50, against
#          `xargs -P 50` of plain `ssh ALIAS true`. Target: ratio <= 1.1; peak RSS reported.
#
# Both sides run in the same script, alternately, several times; the figures are min and
# median wall time. See bench/README.md.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: bench/apply.sh [options]

  --runs N         runs per side (default 3)
  --only local|ssh run one of the two benchmarks
  --hosts N        hosts of the local benchmark (default 10000)
  --ssh-hosts N    hosts of the ssh benchmark (default 200)
  --bin PATH       time this pogo binary instead of building the workspace's
  -h, --help       this text

The ssh benchmark starts its own sshd on 127.0.0.1 (needs openssh-server and root, as the
project's tests do) and stops it at exit.
EOF
}

die() {
    printf 'apply bench: %s\n' "$*" >&2
    exit 1
}

runs=3
only=
hosts=10000
ssh_hosts=200
bin=
while (($# > 0)); do
    case $1 in
        --runs) runs=${2:?}; shift 2 ;;
        --only) only=${2:?}; shift 2 ;;
        --hosts) hosts=${2:?}; shift 2 ;;
        --ssh-hosts) ssh_hosts=${2:?}; shift 2 ;;
        --bin) bin=${2:?}; shift 2 ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; exit 64 ;;
    esac
done

export LC_ALL=C
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD
if [[ -z $bin ]]; then
    echo "building pogo (release)..." >&2
    cargo build --release --quiet -p pogo-cli
    bin=$root/target/release/pogo
fi
[[ -x $bin ]] || die "$bin is not an executable"

# shellcheck source=bench/lib/loopback-sshd.sh
source "$root/bench/lib/loopback-sshd.sh"
work=$(mktemp -d)
sshd_pid=
cleanup() {
    if [[ -n $sshd_pid ]]; then
        kill "$sshd_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

# Peak RSS in MB and wall seconds of a command: "SECONDS MB".
measure() {
    local start end rss
    start=$EPOCHREALTIME
    rss=$(/usr/bin/time -f %M "$@" 2>&1 >/dev/null | tail -n 1)
    end=$EPOCHREALTIME
    printf '%.3f %d\n' "$(bc <<<"$end - $start")" "$((rss / 1024))"
}

# min and median of a list of numbers.
stats() {
    awk 'NF' | sort -n | awk '{v[NR]=$1} END {m=v[int((NR+1)/2)]; printf "%.3f %.3f", v[1], m}'
}

command -v /usr/bin/time >/dev/null || die "GNU time is needed: apt-get install -y time"
command -v bc >/dev/null || die "bc is needed: apt-get install -y bc"

report() { # name pogo-times xargs-times target pogo-rss
    local name=$1 target=$4 rss=$5 pmin pmed xmin xmed ratio verdict
    read -r pmin pmed <<<"$(stats <<<"$2")"
    read -r xmin xmed <<<"$(stats <<<"$3")"
    ratio=$(bc -l <<<"$pmed / $xmed")
    verdict=MISS
    (($(bc -l <<<"$ratio <= $target"))) && verdict=PASS
    printf '%-6s pogo %s s (min %s)  xargs %s s (min %s)  ratio %.2f (target <= %s) %s  pogo peak RSS %s MB (the pogo process)\n' \
        "$name" "$pmed" "$pmin" "$xmed" "$xmin" "$ratio" "$target" "$verdict" "$rss"
}

bench_local() {
    printf 'tag:\n  all: h[1-%d]\n' "$hosts" >"$work/local.cfg"
    "$bin" plan --config "$work/local.cfg" --command true --concurrent 200 \
        -o "$work/local.plan.json" >/dev/null 2>&1
    local ptimes="" xtimes="" rss=0 t m
    for ((i = 0; i < runs; i++)); do
        read -r t m <<<"$(measure "$bin" apply "$work/local.plan.json" --transport local \
            --state-dir "$work/state")"
        ptimes+="$t"$'\n'
        ((m > rss)) && rss=$m
        read -r t _ <<<"$(measure sh -c "seq $hosts | xargs -P 200 -n1 sh -c true")"
        xtimes+="$t"$'\n'
    done
    report local "$ptimes" "$xtimes" 1.2 "$rss"
}

bench_ssh() {
    start_loopback_sshd "$work" "$ssh_hosts"
    printf 'tag:\n  all: h[1-%d]\n' "$ssh_hosts" >"$work/ssh.cfg"
    "$bin" plan --config "$work/ssh.cfg" --command true --concurrent 50 \
        -o "$work/ssh.plan.json" >/dev/null 2>&1
    local ptimes="" xtimes="" rss=0 t m
    for ((i = 0; i < runs; i++)); do
        read -r t m <<<"$(measure "$bin" apply "$work/ssh.plan.json" --transport ssh \
            --ssh-config "$work/ssh/config" --state-dir "$work/state")"
        ptimes+="$t"$'\n'
        ((m > rss)) && rss=$m
        read -r t _ <<<"$(measure sh -c "seq $ssh_hosts | xargs -P 50 -I{} ssh -F '$work/ssh/config' h{} true")"
        xtimes+="$t"$'\n'
    done
    report ssh "$ptimes" "$xtimes" 1.1 "$rss"
}

printf 'pogo apply benchmark, %s\n' "$(date -u '+%Y-%m-%d %H:%M UTC')"
printf 'machine: %s cores; %d runs per side; wall = median (min)\n' "$(nproc)" "$runs"
[[ $only == ssh ]] || bench_local
[[ $only == local ]] || bench_ssh
