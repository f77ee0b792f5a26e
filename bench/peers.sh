#!/usr/bin/env bash
# pogo against its peers over SSH, on a loopback sshd this script starts with N host aliases:
# `xargs -P L ssh`, parallel-ssh (pssh), pdsh and clush (ClusterShell), whichever are
# installed, all running `true` on every host with at most L at once. Runs alternate between
# the tools (so a slow moment of the machine hits them all; each round starts with the next
# tool), and the figures are medians of wall time, with the CPU the tool's process tree used
# (user + system, from GNU time; sshd's side is the same for all and not counted), each
# tool's ratio to xargs+ssh (of the medians), and the median of the rounds' own ratios
# ("paired").
#
# Also, with --local, 10,000 hosts with the local transport at limit 200 against
# `xargs -P 200 sh -c true`, with the journal's fdatasyncs per run (strace -c, when installed).
#
# See bench/README.md ("peers.sh").
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: bench/peers.sh [options]

  --runs N          runs per tool and size (default 7)
  --hosts "N ..."   host counts (default "100 200")
  --limits "L ..."  limits on hosts at once (default "10 50")
  --local           also the local 10,000-host run against xargs (--local-hosts N)
  --local-only      only that
  --bin PATH        time this pogo binary instead of building the workspace's
  --account NAME    log in to the loopback sshd as NAME (default: the current user); an
                    account whose shell start-up is light measures the tools rather than it
  -h, --help        this text

Needs root (sshd on 127.0.0.1, as the project's tests), openssh-server, GNU time and bc.
The peers are optional: apt-get install -y pssh pdsh clustershell.
EOF
}

die() {
    printf 'peers bench: %s\n' "$*" >&2
    exit 1
}

runs=7
host_counts="100 200"
limits="10 50"
local_run=0
ssh_run=1
local_hosts=10000
bin=
account=$(id -un)
while (($# > 0)); do
    case $1 in
        --runs) runs=${2:?}; shift 2 ;;
        --hosts) host_counts=${2:?}; shift 2 ;;
        --limits) limits=${2:?}; shift 2 ;;
        --local) local_run=1; shift ;;
        --local-only) local_run=1; ssh_run=0; shift ;;
        --local-hosts) local_hosts=${2:?}; shift 2 ;;
        --bin) bin=${2:?}; shift 2 ;;
        --account) account=${2:?}; shift 2 ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; exit 64 ;;
    esac
done

export LC_ALL=C
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD
command -v /usr/bin/time >/dev/null || die "GNU time is needed: apt-get install -y time"
command -v bc >/dev/null || die "bc is needed: apt-get install -y bc"
if [[ -z $bin ]]; then
    echo "building pogo (release)..." >&2
    cargo build --release --quiet -p pogo-cli
    bin=${CARGO_TARGET_DIR:-$root/target}/release/pogo
fi
[[ -x $bin ]] || die "$bin is not an executable"

# shellcheck source=bench/lib/loopback-sshd.sh
source "$root/bench/lib/loopback-sshd.sh"
work=$(mktemp -d)
sshd_pid=
cleanup() {
    [[ -z $sshd_pid ]] || kill "$sshd_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# "WALL CPU" in seconds of a command, its output discarded; CPU is user + system of the
# command and every process it waited for.
measure() {
    local out
    if ! out=$(/usr/bin/time -f '%e %U %S' -o "$work/time" "$@" 2>&1 >/dev/null); then
        die "this failed: $*
$out"
    fi
    read -r wall user sys <"$work/time"
    printf '%s %s\n' "$wall" "$(bc <<<"$user + $sys")"
}

median() {
    awk 'NF' | sort -n | awk '{v[NR]=$1} END {printf "%.3f", v[int((NR+1)/2)]}'
}

start_sshd() {
    local most=0 n
    for n in $host_counts; do ((n > most)) && most=$n; done
    start_loopback_sshd "$work" "$most" "$account"
}

# The command line of each tool for N hosts at limit L (run with `sh -c`).
tool_command() {
    local tool=$1 n=$2 limit=$3 cfg=$work/ssh/config
    case $tool in
        xargs) echo "seq $n | xargs -P $limit -I{} ssh -F $cfg h{} true" ;;
        pogo) echo "$bin apply $work/plan-$n-$limit.json --transport ssh --ssh-config $cfg --state-dir $work/state --quiet" ;;
        pssh) echo "$pssh -p $limit -t 0 -h $work/hosts-$n -x '-F $cfg' true" ;;
        pdsh) echo "PDSH_SSH_ARGS='-F $cfg' pdsh -R ssh -f $limit -w h[1-$n] true" ;;
        clush) echo "clush -f $limit -o '-F $cfg' -w h[1-$n] true" ;;
    esac
}

bench_ssh() {
    start_sshd
    pssh=$(command -v parallel-ssh || command -v pssh || true)
    local tools=(xargs pogo)
    [[ -z $pssh ]] || tools+=(pssh)
    command -v pdsh >/dev/null && tools+=(pdsh)
    command -v clush >/dev/null && tools+=(clush)
    local missing=()
    [[ -n $pssh ]] || missing+=(pssh)
    command -v pdsh >/dev/null || missing+=(pdsh)
    command -v clush >/dev/null || missing+=(clustershell)
    ((${#missing[@]} == 0)) ||
        printf 'not installed, not measured: %s (apt-get install -y %s)\n' "${missing[*]}" "${missing[*]}"
    printf 'logging in as %s (login shell %s)\n' "$account" "$(getent passwd "$account" | cut -d: -f7)"
    printf '\n%-6s %-6s %-7s %9s %9s %8s %8s\n' hosts limit tool "wall (s)" "cpu (s)" "ratio" "paired"
    local n limit tool r m wall cpu
    for n in $host_counts; do
        seq "$n" | sed 's/^/h/' >"$work/hosts-$n"
        printf 'tag:\n  all: h[1-%d]\n' "$n" >"$work/fleet-$n.cfg"
        for limit in $limits; do
            "$bin" plan --config "$work/fleet-$n.cfg" --command true --concurrent "$limit" \
                -o "$work/plan-$n-$limit.json" >/dev/null 2>&1
            declare -A walls=() cpus=()
            local k=${#tools[@]} i
            for ((r = 0; r < runs; r++)); do
                # Each round starts one tool further on, so that no tool always follows the
                # same one (and finds its sshd sessions still ending).
                for ((i = 0; i < k; i++)); do
                    tool=${tools[(r + i) % k]}
                    m=$(measure sh -c "$(tool_command "$tool" "$n" "$limit")") || exit 1
                    read -r wall cpu <<<"$m"
                    walls[$tool]+="$wall"$'\n'
                    cpus[$tool]+="$cpu"$'\n'
                done
            done
            local base
            base=$(median <<<"${walls[xargs]}")
            for tool in "${tools[@]}"; do
                local w c paired
                w=$(median <<<"${walls[$tool]}")
                c=$(median <<<"${cpus[$tool]}")
                # The median of the rounds' own ratios: a slow stretch of the machine that
                # spans a round moves both sides of it.
                paired=$(paste <(printf '%s' "${walls[$tool]}") <(printf '%s' "${walls[xargs]}") |
                    awk 'NF == 2 && $2 > 0 {printf "%.6f\n", $1 / $2}' | median)
                printf '%-6s %-6s %-7s %9s %9s %8.3f %8.3f\n' "$n" "$limit" "$tool" "$w" "$c" \
                    "$(bc -l <<<"$w / $base")" "$paired"
            done
            unset walls cpus
        done
    done
}

bench_local() {
    printf 'tag:\n  all: h[1-%d]\n' "$local_hosts" >"$work/local.cfg"
    "$bin" plan --config "$work/local.cfg" --command true --concurrent 200 \
        -o "$work/local.plan.json" >/dev/null 2>&1
    local pw="" pc="" xw="" xc="" r wall cpu m
    for ((r = 0; r < runs; r++)); do
        m=$(measure "$bin" apply "$work/local.plan.json" --transport local \
            --state-dir "$work/state" --quiet) || exit 1
        read -r wall cpu <<<"$m"
        pw+="$wall"$'\n'
        pc+="$cpu"$'\n'
        m=$(measure sh -c "seq $local_hosts | xargs -P 200 -n1 sh -c true") || exit 1
        read -r wall cpu <<<"$m"
        xw+="$wall"$'\n'
        xc+="$cpu"$'\n'
    done
    local p x
    p=$(median <<<"$pw")
    x=$(median <<<"$xw")
    printf '\nlocal: %d hosts, limit 200, state dir on %s\n' "$local_hosts" \
        "$(stat -f -c %T "$work")"
    printf '  pogo  %s s (cpu %s s)\n  xargs %s s (cpu %s s)\n  ratio %.3f\n' \
        "$p" "$(median <<<"$pc")" "$x" "$(median <<<"$xc")" "$(bc -l <<<"$p / $x")"
    # A sequential chain: what a step costs beyond its command, group commit included.
    local chain=200 cw="" xw2=""
    printf 'tag:\n  all: c[1-%d]\n' "$chain" >"$work/chain.cfg"
    "$bin" plan --config "$work/chain.cfg" --command true --concurrent 1 \
        -o "$work/chain.plan.json" >/dev/null 2>&1
    for ((r = 0; r < runs; r++)); do
        m=$(measure "$bin" apply "$work/chain.plan.json" --transport local \
            --state-dir "$work/state" --quiet) || exit 1
        read -r wall cpu <<<"$m"
        cw+="$wall"$'\n'
        m=$(measure sh -c "seq $chain | xargs -P 1 -n1 sh -c true") || exit 1
        read -r wall cpu <<<"$m"
        xw2+="$wall"$'\n'
    done
    local c x2
    c=$(median <<<"$cw")
    x2=$(median <<<"$xw2")
    printf '  a chain of %d hosts, one at a time: pogo %s s, xargs %s s: %.2f ms a step beyond xargs\n' \
        "$chain" "$c" "$x2" "$(bc -l <<<"($c - $x2) * 1000 / $chain")"
    if command -v strace >/dev/null; then
        local datasyncs fsyncs
        strace -f -c -e trace=fdatasync,fsync -o "$work/strace" "$bin" apply \
            "$work/local.plan.json" --transport local --state-dir "$work/state" --quiet \
            >/dev/null 2>&1 || true
        # The journal's commits are fdatasyncs; fsyncs make the run's files and directories.
        datasyncs=$(awk '$NF == "fdatasync" {n += $4} END {print n + 0}' "$work/strace")
        fsyncs=$(awk '$NF == "fsync" {n += $4} END {print n + 0}' "$work/strace")
        printf '  journal fdatasyncs in one run: %s (hosts/20 = %d); fsyncs: %s\n' \
            "$datasyncs" $((local_hosts / 20)) "$fsyncs"
    else
        printf '  (strace not installed: the syncs per run are not counted)\n'
    fi
}

printf 'pogo against its peers, %s\n' "$(date -u '+%Y-%m-%d %H:%M UTC')"
printf 'machine: %s cores; %d runs per tool, alternating; medians\n' "$(nproc)" "$runs"
((ssh_run == 0)) || bench_ssh
((local_run == 0)) || bench_local
