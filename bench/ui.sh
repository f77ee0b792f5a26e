#!/usr/bin/env bash
# Benchmark of the web dashboard in a real headless Chromium, with `pogo ui` in front; two
# cases, each opening the page of a job of N hosts (default 10,000) with
# cli/examples/ui_bench.rs, which prints:
#
#   load:  the page, every host drawn. Target: < 1 s for 10,000 hosts.
#   live:  the events' rate, how late the page's timers fire while they arrive (how long its
#          event loop is blocked), and how many hosts the page shows behind the server.
#          Target: responsive (timers late by tens of ms, not seconds) at 2,000 events/s.
#   end:   how long after the job ended the page shows every host's final state.
#
# synthetic: a local run of the state dir `pogo ui` serves, whose journal a generator writes
#            at --rate events a second (default 2,000: a start and a finish per host), so
#            only pogo ui and the page are measured.
# real:      the same hosts as a job of one `pogo dispatcher` and four `pogo worker`s
#            (capacity 256), each host running `sleep 1`, --parallel at once (default
#            1,000): the whole path, on a machine also busy starting the commands.
#
# Needs chromium and chromium-driver (Debian's); see bench/README.md.
set -euo pipefail

hosts=10000
parallel=1000
rate=2000
while (($#)); do
    case $1 in
        --hosts) hosts=$2; shift 2 ;;
        --parallel) parallel=$2; shift 2 ;;
        --rate) rate=$2; shift 2 ;;
        -h|--help)
            echo "Usage: bench/ui.sh [--hosts N] [--rate EVENTS_PER_S] [--parallel P]"
            exit 0 ;;
        *) echo "ui bench: unknown option $1" >&2; exit 64 ;;
    esac
done

cd "$(dirname "$0")/.."
cargo build --release --quiet -p pogo-cli --bin pogo --example ui_bench
bin=$PWD/target/release/pogo
bench=$PWD/target/release/examples/ui_bench
work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
cd "$work"

wait_for() { # FILE PATTERN
    for _ in $(seq 200); do
        grep -q "$2" "$1" 2>/dev/null && return 0
        sleep 0.05
    done
    echo "ui bench: timed out waiting for '$2' in $1" >&2
    cat "$1" >&2
    exit 1
}

"$bin" certs init pki --worker w1 --worker w2 --worker w3 --worker w4 --operator bench >/dev/null
"$bin" dispatcher --listen 127.0.0.1:0 --state-dir state \
    --cert pki/dispatcher.pem --key pki/dispatcher-key.pem --ca pki/ca.pem \
    >dispatcher.out 2>dispatcher.err &
pids+=($!)
wait_for dispatcher.out listening
url=$(sed -n 's/.*listening on //p' dispatcher.out)
for w in w1 w2 w3 w4; do
    "$bin" worker --dispatcher "$url" --capacity 256 \
        --cert "pki/worker-$w.pem" --key "pki/worker-$w-key.pem" --ca pki/ca.pem \
        >"$w.log" 2>&1 &
    pids+=($!)
done
export POGO_DISPATCHER=$url POGO_CA=pki/ca.pem POGO_CERT=pki/operator-bench.pem \
    POGO_KEY=pki/operator-bench-key.pem

"$bin" ui --listen 127.0.0.1:0 --state-dir local >ui.out 2>ui.err &
pids+=($!)
wait_for ui.out Dashboard
ui=$(sed -n 's/^Dashboard: //p' ui.out)

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
chromedriver --port="$port" >chromedriver.log 2>&1 &
pids+=($!)
wait_for chromedriver.log "started successfully"

# Ten steps of N/10 hosts, one after the other: a schedule of ten slots.
python3 - "$hosts" <<'PY'
import sys
hosts = int(sys.argv[1])
step = max(1, hosts // 10)
with open("fleet.cfg", "w") as f:
    f.write("tag:\n  step:\n")
    for s in range(0, hosts, step):
        f.write(f"    s{s // step:02d}:\n" + "".join(f"      - h{i:05d}\n" for i in range(s, min(hosts, s + step))))
    f.write("sequence:\n  rollout:\n" + "".join(f"    - $step.s{s // step:02d}\n" for s in range(0, hosts, step)))
PY

echo "== synthetic: a local run of $hosts hosts, its journal written at $rate events/s"
"$bin" plan --config fleet.cfg --command true --unconstrained -o synthetic.plan.json \
    >/dev/null 2>&1
run=20261206T000000Z-beef
python3 - local "$run" synthetic.plan.json "$rate" >generator.log 2>&1 <<'PY' &
# Writes a run directory as `pogo apply` would, holding its lock, and its journal at RATE
# events a second: every host starts, and finishes about a second later.
import fcntl, json, os, shutil, sys, time
state, run, plan_path, rate = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
d = os.path.join(state, "runs", run)
os.makedirs(d)
shutil.copy(plan_path, os.path.join(d, "plan.json"))
with open(os.path.join(d, "run.json"), "w") as f:
    json.dump({"transport": {"kind": "local"}, "retry_delay_ms": 0}, f)
lock = os.open(d, os.O_RDONLY)
fcntl.flock(lock, fcntl.LOCK_EX)
hosts = json.load(open(plan_path))["hosts"]
journal = open(os.path.join(d, "journal.ndjson"), "w")
start = time.monotonic()
def at():
    return int((time.monotonic() - start) * 1000)
def write(events):
    journal.write("".join(json.dumps(e, separators=(",", ":")) + "\n" for e in events))
    journal.flush()
write([{"event": "run_started", "run_id": run, "hosts": len(hosts), "command": "true", "resumed": False, "at_ms": 0}])
print("started", flush=True)
time.sleep(1)  # the page loads while the first events come
# Finishes come half a second of events after their starts.
lag = rate // 2
events = []
for i, h in enumerate(hosts):
    events.append({"event": "host_started", "host": h, "at_ms": 0})
    if i >= lag // 2:
        events.append({"event": "host_finished", "host": hosts[i - lag // 2], "state": "succeeded", "attempts": 1, "duration_ms": 1000, "message": "exit code 0", "at_ms": 0})
for h in hosts[max(0, len(hosts) - lag // 2):]:
    events.append({"event": "host_finished", "host": h, "state": "succeeded", "attempts": 1, "duration_ms": 1000, "message": "exit code 0", "at_ms": 0})
tick = 0.01
per_tick = max(1, int(rate * tick))
t = time.monotonic()
for i in range(0, len(events), per_tick):
    batch = events[i:i + per_tick]
    for e in batch:
        e["at_ms"] = at()
    write(batch)
    t += tick
    time.sleep(max(0.0, t - time.monotonic()))
n = len(hosts)
write([{"event": "run_finished", "result": "succeeded", "succeeded": n, "failed": 0, "timed_out": 0, "unreachable": 0, "skipped": 0, "cancelled": 0, "at_ms": at()}])
print(f"wrote {len(events) + 2} events in {time.monotonic() - start:.1f} s", flush=True)
time.sleep(2)
PY
pids+=($!)
wait_for generator.log started
"$bench" --driver "http://127.0.0.1:$port" --ui "$ui" --job "$run" --hosts "$hosts" \
    --journal "local/runs/$run/journal.ndjson"

echo "== real: a job of $hosts hosts sleeping 1 s, at most $parallel at once, 4 workers x 256"
"$bin" plan --config fleet.cfg --command 'sleep 1' --concurrent "$parallel" -o fleet.plan.json \
    >/dev/null 2>&1
job=$("$bin" apply --dispatcher fleet.plan.json --transport local --detach 2>/dev/null)
# A new pogo ui: the first one's link worked once.
"$bin" ui --listen 127.0.0.1:0 --state-dir local >ui2.out 2>ui2.err &
pids+=($!)
wait_for ui2.out Dashboard
ui=$(sed -n 's/^Dashboard: //p' ui2.out)
"$bench" --driver "http://127.0.0.1:$port" --ui "$ui" --job "$job" --hosts "$hosts"
