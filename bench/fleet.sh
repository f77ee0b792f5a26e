#!/usr/bin/env bash
# Benchmark of fleets: what the budgets a dispatcher shares between jobs cost in throughput.
# Real processes on loopback, as bench/remote.sh: `pogo certs init`, one `pogo dispatcher`,
# four `pogo worker`s (capacity 64 each: 256 slots), the local transport, `true` on every host.
#
#   baseline: one job of N hosts (default 10,000), unconstrained, on a dispatcher with no
#             fleet; `pogo apply --dispatcher PLAN --transport local`, timed to its exit.
#   fleet:    on a fresh dispatcher, `pogo fleet push` of one fleet of the same N hosts in 10
#             colos (tags colo.c01..colo.c10) with `$colo: {max_parallel: L}` (--colo-limit,
#             default 100: 10% of each colo's 1,000 hosts; 10 x 100 places in all, so the 256
#             slots are hardly held back), then J jobs (default 10) of N/J hosts
#             each (job k runs the hosts i with i % J == k, so every job spans every colo),
#             each planned from a config of its own hosts, unconstrained, all submitted at once
#             with `--detach`; timed from the first submission until `pogo jobs --json` shows
#             every job ended (polled every 0.05 s).
#
# Each measurement runs --runs times (default 3), alternating, each on a fresh dispatcher and
# workers; the medians are compared. Target: the fleet's throughput at least 80% of the
# baseline's (PASS/FAIL; exit 1 on FAIL). Every job must succeed with every host: otherwise the
# script stops with a message and a non-zero exit. See bench/README.md.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: bench/fleet.sh [options]

  --hosts N         hosts in all (default 10000), in 10 colos
  --jobs J          jobs sharing the fleet, N/J hosts each (default 10)
  --colo-limit L    each colo's budget, max_parallel: a number, or a percentage of the
                    colo's hosts (default 100: 10% of a colo at 10,000 hosts)
  --runs R          runs of each measurement; the median is reported (default 3)
  --bin PATH        time this pogo binary instead of building the workspace's (release)
  -h, --help        this text

Target: the fleet's tasks/s at least 80% of the baseline's (exit 1 otherwise).
EOF
}

die() {
    printf 'fleet bench: %s\n' "$*" >&2
    exit 1
}

hosts=10000
jobs=10
colo_limit=100
runs=3
bin=
while (($#)); do
    case $1 in
        --hosts) hosts=${2:?--hosts needs a value}; shift 2 ;;
        --jobs) jobs=${2:?--jobs needs a value}; shift 2 ;;
        --colo-limit) colo_limit=${2:?--colo-limit needs a value}; shift 2 ;;
        --runs) runs=${2:?--runs needs a value}; shift 2 ;;
        --bin) bin=${2:?--bin needs a value}; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "fleet bench: unknown option $1" >&2; usage >&2; exit 64 ;;
    esac
done
colos=10
[[ $hosts =~ ^[1-9][0-9]*$ ]] && ((hosts >= colos)) || die "--hosts must be a number >= $colos"
[[ $jobs =~ ^[1-9][0-9]*$ ]] && ((jobs <= hosts)) || die "--jobs must be a number from 1 to --hosts"
[[ $colo_limit =~ ^[1-9][0-9]*%?$ ]] || die "--colo-limit must be a positive number or percentage"
[[ $runs =~ ^[1-9][0-9]*$ ]] || die "--runs must be a positive number"
command -v python3 >/dev/null || die "python3 is needed"
export LC_ALL=C # printf %f reads and writes a dot

if [[ -n $bin ]]; then
    bin=$(realpath "$bin")
    [[ -x $bin ]] || die "--bin $bin is not an executable"
fi
cd "$(dirname "$0")/.."
if [[ -z $bin ]]; then
    cargo build --release --quiet
    bin=$PWD/target/release/pogo
fi
work=$(mktemp -d)
dispatcher_pid=
worker_pids=()
current=   # the directory of the deployment running now, for the logs shown on failure
# Stops these processes: TERM, then KILL those still there after 5 s (a worker told to stop
# waits for its dispatcher to take the results it holds, and the dispatcher may be gone).
stop_pids() {
    local pid alive i
    for pid; do kill "$pid" 2>/dev/null || true; done
    for ((i = 0; i < 50; i++)); do
        alive=0
        for pid; do kill -0 "$pid" 2>/dev/null && alive=1; done
        ((alive)) || break
        sleep 0.1
    done
    for pid; do
        ((alive == 0)) || kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
}
# Stops the deployment running now, if any: its workers first, then its dispatcher.
stop_deployment() {
    ((${#worker_pids[@]} == 0)) || stop_pids "${worker_pids[@]}"
    [[ -z $dispatcher_pid ]] || stop_pids "$dispatcher_pid"
    worker_pids=()
    dispatcher_pid=
    current=
}
cleanup() {
    local status=$? failed=$current
    stop_deployment
    if ((status != 0)) && [[ -n $failed && -d $work/$failed ]]; then
        echo "fleet bench: failed (exit $status); the last lines of $failed's logs:" >&2
        for log in "$work/$failed"/*.err "$work/$failed"/w?.log; do
            [[ -s $log ]] || continue
            echo "--- ${log#"$work"/}" >&2
            tail -n 5 "$log" >&2
        done
    fi
    rm -rf "$work"
}
trap cleanup EXIT
cd "$work"

"$bin" certs init pki --worker w1 --worker w2 --worker w3 --worker w4 --operator bench >/dev/null
export POGO_CA=$work/pki/ca.pem POGO_CERT=$work/pki/operator-bench.pem \
    POGO_KEY=$work/pki/operator-bench-key.pem NO_COLOR=1
unset POGO_CLIENT_CONFIG POGO_STATE_DIR

# The helper: writes the configs, waits for workers, times the jobs and checks their states.
cat >bench.py <<'PY'
import json, subprocess, sys, time

BIN = sys.argv[2]
ENDED = {"succeeded", "failed", "stopped"}


def fail(message):
    sys.exit(f"fleet bench: {message}")


def pogo(*args, timeout=120):
    run = subprocess.run([BIN, *args], capture_output=True, text=True, timeout=timeout)
    if run.returncode != 0:
        fail(f"`pogo {' '.join(args)}` exited {run.returncode}:\n{run.stderr.strip()}")
    return run.stdout


def host_lines(names):
    return "".join(f"    - {name}\n" for name in names)


def gen(hosts, jobs, colos, limit):
    """all.cfg (every host), fleet.cfg (the colos and their budget), jobK.cfg (job K's hosts)."""
    width = max(5, len(str(hosts - 1)))
    names = [f"h{i:0{width}d}" for i in range(hosts)]
    with open("all.cfg", "w") as f:
        f.write("tag:\n  all:\n" + host_lines(names))
    with open("fleet.cfg", "w") as f:
        f.write("tag:\n  colo:\n")
        for c in range(colos):
            members = [n for i, n in enumerate(names) if i * colos // hosts == c]
            f.write(f"    c{c + 1:02d}:\n" + "".join(f"      - {n}\n" for n in members))
        f.write(f"constraint:\n  $colo:\n    max_parallel: {limit}\n")
    for k in range(jobs):
        with open(f"job{k}.cfg", "w") as f:
            f.write("tag:\n  all:\n" + host_lines(names[k::jobs]))


def wait_workers(count):
    deadline = time.monotonic() + 30
    while True:
        workers = json.loads(pogo("workers", "--json"))
        if sum(1 for w in workers if w.get("connected")) >= count:
            return
        if time.monotonic() > deadline:
            fail(f"{count} workers did not connect within 30 s: {workers}")
        time.sleep(0.05)


def jobs_by_id():
    return {job["id"]: job for job in json.loads(pogo("jobs", "--json"))}


def check(jobs, expected):
    """Every job succeeded with all its hosts; the hosts add up to `expected`."""
    bad = [j for j in jobs if j["state"] != "succeeded" or j["counts"]["succeeded"] != j["hosts"]]
    for j in bad:
        reasons = "; ".join(j.get("reasons", []))
        counts = {k: v for k, v in j["counts"].items() if v}
        print(f"fleet bench: job {j['id']} ended {j['state']}: {counts} {reasons}", file=sys.stderr)
    if bad:
        fail(f"{len(bad)} of {len(jobs)} jobs did not succeed on every host")
    total = sum(j["hosts"] for j in jobs)
    if total != expected:
        fail(f"the jobs ran {total} hosts, not {expected}")


def baseline(plan, hosts):
    start = time.monotonic()
    run = subprocess.run([BIN, "apply", "--dispatcher", plan, "--transport", "local"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    elapsed = time.monotonic() - start
    if run.returncode != 0:
        fail(f"`pogo apply --dispatcher {plan}` exited {run.returncode}:\n{run.stderr.strip()}")
    jobs = list(jobs_by_id().values())
    if len(jobs) != 1:
        fail(f"expected one job on the baseline dispatcher, found {len(jobs)}")
    check(jobs, hosts)
    print(f"{elapsed:.6f}")


def fleet(plans, hosts):
    # All at once: every `pogo apply --detach` started before any is waited for.
    start = time.monotonic()
    procs = [subprocess.Popen([BIN, "apply", "--dispatcher", plan, "--transport", "local",
                               "--detach"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for plan in plans]
    outputs = [proc.communicate() for proc in procs]
    submitted = time.monotonic() - start
    ids = []
    for plan, proc, (out, err) in zip(plans, procs, outputs):
        job = out.strip()
        if proc.returncode != 0 or not job.startswith("job-"):
            fail(f"`pogo apply --dispatcher {plan} --detach` exited {proc.returncode}, printed "
                 f"{job!r}:\n{err.strip()}")
        ids.append(job)
    # The end is seen by polling: at most one interval and one `pogo jobs` late.
    progress, moved, most = -1, time.monotonic(), 0
    while True:
        polled = time.monotonic()
        jobs = jobs_by_id()
        missing = [j for j in ids if j not in jobs]
        if missing:
            fail(f"`pogo jobs` does not list {missing}")
        mine = [jobs[j] for j in ids]
        if all(j["state"] in ENDED for j in mine):
            elapsed = polled - start
            break
        done = sum(j["hosts"] - j["counts"]["pending"] - j["counts"]["running"] for j in mine)
        most = max(most, sum(j["counts"]["running"] for j in mine))
        if done != progress:
            progress, moved = done, polled
        elif polled - moved > 120:
            states = ", ".join(f"{j['id']} {j['state']}" for j in mine)
            fail(f"no host ended in 120 s ({done} of {hosts} done): {states}")
        time.sleep(0.05)
    check(mine, hosts)
    print(f"{elapsed:.6f} {submitted:.6f} {most}")


def budgets():
    """The colo budgets of fleet `bench`, as `min-max` (or one number) and their count."""
    groups = json.loads(pogo("fleet", "show", "bench", "--json"))["groups"]
    values = sorted(g["max_parallel"]["value"] for g in groups)
    sizes = sorted(len(g["hosts"]) for g in groups)
    span = lambda v: f"{v[0]}" if v[0] == v[-1] else f"{v[0]}-{v[-1]}"
    print(f"{len(groups)} {span(values)} {span(sizes)}")


def median(values):
    values = sorted(float(v) for v in values)
    mid = len(values) // 2
    print(values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2)


cmd, args = sys.argv[1], sys.argv[3:]
if cmd == "gen":
    gen(int(args[0]), int(args[1]), int(args[2]), args[3])
elif cmd == "wait-workers":
    wait_workers(int(args[0]))
elif cmd == "baseline":
    baseline(args[0], int(args[1]))
elif cmd == "fleet":
    fleet(args[1:], int(args[0]))
elif cmd == "budgets":
    budgets()
elif cmd == "median":
    median(args)
else:
    fail(f"bench.py: unknown command {cmd}")
PY
helper() { python3 "$work/bench.py" "$1" "$bin" "${@:2}"; }

helper gen "$hosts" "$jobs" "$colos" "$colo_limit"
"$bin" plan --config all.cfg --command true --unconstrained -o all.plan.json >/dev/null 2>plan.err ||
    die "pogo plan --config all.cfg failed: $(cat plan.err)"
job_plans=()
for ((k = 0; k < jobs; k++)); do
    "$bin" plan --config "job$k.cfg" --command true --unconstrained -o "job$k.plan.json" \
        >/dev/null 2>plan.err || die "pogo plan --config job$k.cfg failed: $(cat plan.err)"
    job_plans+=("job$k.plan.json")
done

# Starts a dispatcher with the fresh state dir $1/state and four workers, waits until they are
# connected, and exports the dispatcher's URL.
start_deployment() {
    current=$1
    mkdir "$1"
    "$bin" dispatcher --listen 127.0.0.1:0 --state-dir "$1/state" \
        --cert pki/dispatcher.pem --key pki/dispatcher-key.pem --ca pki/ca.pem \
        >"$1/dispatcher.out" 2>"$1/dispatcher.err" &
    dispatcher_pid=$!
    for _ in $(seq 200); do
        grep -q listening "$1/dispatcher.out" 2>/dev/null && break
        kill -0 "$dispatcher_pid" 2>/dev/null || die "the dispatcher exited at start"
        sleep 0.05
    done
    local url
    url=$(sed -n 's/.*listening on //p' "$1/dispatcher.out")
    [[ -n $url ]] || die "the dispatcher did not say where it listens within 10 s"
    for w in w1 w2 w3 w4; do
        "$bin" worker --dispatcher "$url" --capacity 64 \
            --cert "pki/worker-$w.pem" --key "pki/worker-$w-key.pem" --ca pki/ca.pem \
            >"$1/$w.log" 2>&1 &
        worker_pids+=($!)
    done
    export POGO_DISPATCHER=$url
    helper wait-workers 4
}
rate() { python3 -c "print(f'{$1/$2:.0f}')"; }

echo "fleet bench: $hosts hosts running \`true\`, 1 dispatcher + 4 workers x 64 slots," \
    "$runs run(s) of each"
base_times=()
fleet_times=()
budget_line=
for ((r = 1; r <= runs; r++)); do
    start_deployment "base$r"
    t=$(helper baseline all.plan.json "$hosts")
    stop_deployment
    base_times+=("$t")
    printf 'baseline run %d/%d: 1 job of %d tasks, no fleet: %.2f s, %s tasks/s\n' \
        "$r" "$runs" "$hosts" "$t" "$(rate "$hosts" "$t")"

    start_deployment "fleet$r"
    "$bin" fleet push bench fleet.cfg --json >"fleet$r/push.json" ||
        die "pogo fleet push bench fleet.cfg failed"
    out=$(helper budgets)
    read -r n_budgets limits sizes <<<"$out"
    ((n_budgets == colos)) || die "the fleet has $n_budgets budgets, not $colos"
    budget_line="$colos colos of $sizes hosts, \$colo max_parallel $colo_limit"
    [[ $colo_limit == "$limits" ]] || budget_line+=" = $limits"
    budget_line+=" per colo"
    out=$(helper fleet "$hosts" "${job_plans[@]}")
    read -r t submit most <<<"$out"
    stop_deployment
    fleet_times+=("$t")
    printf 'fleet    run %d/%d: %d jobs sharing one fleet: %.2f s, %s tasks/s' \
        "$r" "$runs" "$jobs" "$t" "$(rate "$hosts" "$t")"
    printf ' (submitting took %.2f s; most hosts running at a poll: %d)\n' "$submit" "$most"
done

base=$(helper median "${base_times[@]}")
flt=$(helper median "${fleet_times[@]}")
printf 'baseline: 1 job of %d no-op tasks, unconstrained, no fleet: median %.2f s, %s tasks/s\n' \
    "$hosts" "$base" "$(rate "$hosts" "$base")"
per_job=$((hosts / jobs))
((hosts % jobs == 0)) || per_job="~$per_job"
printf 'fleet:    %d jobs of %s tasks at once, one fleet (%s): median %.2f s, %s tasks/s\n' \
    "$jobs" "$per_job" "$budget_line" "$flt" "$(rate "$hosts" "$flt")"
verdict=$(python3 -c "r=$base/$flt; print(f'{r:.2f}', 'PASS' if r >= 0.8 else 'FAIL')")
read -r ratio pass <<<"$verdict"
echo "summary: fleet/baseline throughput $ratio (target >= 0.80, the fleet costing at most 20%): $pass"
[[ $pass == PASS ]] || exit 1
