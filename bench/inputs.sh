#!/usr/bin/env bash
# Inputs that cannot hurt: how long `pogo plan` takes, and how much memory, on inputs built to
# find quadratic corners. Each case must finish in under 2 s and 1 GB (release build, 2 cores):
#
#   long-name:      a config whose one host name is 10 MB (rejected; the message quotes the
#                   name cut short, and its size is printed)
#   long-pattern:   the same name as a pattern, `NAME[1-2]` (rejected)
#   long-output:    a `!command` tag whose command prints a 10 MB line (rejected)
#   one-host-tags:  100,000 tags of one host each (planned)
#   exclusions:     100,000 hosts in one tag, 10,000 exclusions of one host each (planned)
#
# Usage: bench/inputs.sh [--bin PATH] [--runs N]. Needs bash and python3; builds pogo --release
# unless --bin is given.
set -euo pipefail
cd "$(dirname "$0")/.."

bin=
runs=3
while (($#)); do
    case $1 in
        --bin) bin=${2:?--bin needs a value}; shift 2 ;;
        --runs) runs=${2:?--runs needs a value}; shift 2 ;;
        -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 64 ;;
    esac
done
if [[ -z $bin ]]; then
    cargo build --release --quiet --bin pogo
    bin=target/release/pogo
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

python3 - "$work" <<'PY'
import sys
work = sys.argv[1]
name = "a" * (10 * 1024 * 1024)
open(f"{work}/long-name.cfg", "w").write(f"tag:\n  a: [{name}]\n")
open(f"{work}/long-pattern.cfg", "w").write(f'tag:\n  a: ["{name}[1-2]"]\n')
open(f"{work}/long-output.cfg", "w").write(
    "tag:\n  a: !command head -c 10485760 /dev/zero | tr '\\0' a\n")
with open(f"{work}/one-host-tags.cfg", "w") as f:
    f.write("tag:\n")
    for i in range(100_000):
        f.write(f"  t{i}: [h{i}]\n")
with open(f"{work}/exclusions.cfg", "w") as f:
    f.write('tag:\n  all: "h[1-100000]"\n  most:\n    - $all\n')
    for i in range(1, 100_001, 10):
        f.write(f'    - "!h{i}"\n')
    f.write("sequence:\n  - $most\n")
PY

printf '%-15s %8s %10s %6s %14s\n' case "best s" "peak MB" status "stderr bytes"
for case in long-name long-pattern long-output one-host-tags exclusions; do
    python3 - "$bin" "$work/$case.cfg" "$runs" "$case" <<'PY'
import resource, subprocess, sys, time
binary, config, runs, case = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
best, peak = None, 0
for _ in range(runs):
    start = time.perf_counter()
    done = subprocess.run([binary, "plan", "--config", config, "-o", "/dev/null"],
                          capture_output=True)
    wall = time.perf_counter() - start
    best = wall if best is None else min(best, wall)
# The largest child so far: every run is the same command.
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
print(f"{case:<15} {best:8.3f} {peak:10.1f} {done.returncode:6d} {len(done.stderr):14d}")
if best >= 2 or peak >= 1024:
    print(f"  over the target (2 s, 1 GB)", file=sys.stderr)
    sys.exit(1)
PY
done
