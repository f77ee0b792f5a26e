#!/usr/bin/env bash
# The output path: 50 MB of 60-byte lines from one host through `pogo run --transport local`,
# against an empty run (`true`) and against `cat FILE | cat > COPY`, the least any tool can do
# with the bytes. Prints wall time and CPU (user + system) of each, and pogo's cost beyond the
# empty run as a multiple of the cat pipeline's. Goal: within 2x.
#
# Usage: bench/output.sh [--bin PATH] [--megabytes N] [--runs N]. Needs bash, python3 and bc;
# builds pogo --release unless --bin is given.
set -euo pipefail
cd "$(dirname "$0")/.."

bin=
megabytes=50
runs=3
while (($#)); do
    case $1 in
        --bin) bin=${2:?--bin needs a value}; shift 2 ;;
        --megabytes) megabytes=${2:?--megabytes needs a value}; shift 2 ;;
        --runs) runs=${2:?--runs needs a value}; shift 2 ;;
        -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 64 ;;
    esac
done
if [[ -z $bin ]]; then
    cargo build --release --quiet --bin pogo
    bin=target/release/pogo
fi
bin=$(realpath "$bin")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
lines=$((megabytes * 1000 * 1000 / 60))
awk -v n="$lines" 'BEGIN { for (i = 0; i < n; i++) print "01234567890123456789012345678901234567890123456789012345678" }' >"$work/out.txt"
printf 'tag:\n  all: [h1]\n' >"$work/fleet.cfg"

# best LABEL CMD...: the best of $runs runs, wall and CPU (user + system of the children) in
# seconds, measured to the microsecond by python3 (GNU time counts in hundredths).
best() {
    local label=$1
    shift
    read -r best_wall best_cpu < <(python3 - "$runs" "$@" <<'PY'
import resource, subprocess, sys, time
runs, cmd = int(sys.argv[1]), sys.argv[2:]
best = None
for _ in range(runs):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if best is None or wall < best[0]:
        best = (wall, cpu)
print(f"{best[0]:.3f} {best[1]:.3f}")
PY
)
    printf '%-28s %8s s wall %8s s cpu\n' "$label" "$best_wall" "$best_cpu"
    eval "${label%% *}_wall=$best_wall ${label%% *}_cpu=$best_cpu"
}

cd "$work"
cat >run.sh <<RUN
#!/usr/bin/env bash
rm -rf state
exec "$bin" run --config fleet.cfg --command "\$1" --transport local --yes --state-dir state --max-output 1GB
RUN
chmod +x run.sh
echo "$(du -m out.txt | cut -f1) MB, $lines lines of 60 bytes, best of $runs"
best "empty (pogo run, true)" ./run.sh true
best "pogo (pogo run, cat)" ./run.sh "cat $work/out.txt"
best "cat (cat | cat > copy)" sh -c "cat out.txt | cat > copy.txt"
log=$(find state -name h1.log | head -1)
echo "log kept: $(stat -c %s "$log") bytes (--max-output 1GB: all of it, as cat copies it all)"
beyond_wall=$(echo "$pogo_wall - $empty_wall" | bc)
beyond_cpu=$(echo "$pogo_cpu - $empty_cpu" | bc)
printf 'pogo beyond an empty run: %s s wall, %s s cpu; cat: %s s wall, %s s cpu\n' \
    "$beyond_wall" "$beyond_cpu" "$cat_wall" "$cat_cpu"
printf 'ratio: %.1fx wall, %.1fx cpu (goal: within 2x)\n' \
    "$(echo "$beyond_wall / $cat_wall" | bc -l)" "$(echo "$beyond_cpu / $cat_cpu" | bc -l)"
