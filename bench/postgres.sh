#!/usr/bin/env bash
# The dispatcher on PostgreSQL against SQLite, and how long a standby takes to lead.
#
#   throughput and latency: bench/remote.sh (N no-op hosts, default 10,000; a chain of M
#       hosts at max_parallel 1, default 200) once on SQLite and once on PostgreSQL.
#       Target: PostgreSQL within 2x of SQLite's throughput.
#   failover: two dispatchers on one PostgreSQL (default lease, 5 s), two workers that know
#       both, J finished jobs stored (default 1,000), then a long job; the leader is killed
#       with SIGKILL mid-job. Prints the time from the kill until the standby leads, and
#       until the first command started after it leads. Target: under 10 s.
#
# It starts a PostgreSQL server of its own (initdb in a temporary directory, on loopback; as
# the `postgres` account when run as root, since PostgreSQL refuses root), with fsync on, and
# stops it at the end. Needs Debian's postgresql, python3. See bench/README.md.
set -euo pipefail

hosts=10000
chain=200
jobs=1000
bin=
while (($#)); do
    case $1 in
        --hosts) hosts=$2; shift 2 ;;
        --chain) chain=$2; shift 2 ;;
        --jobs) jobs=$2; shift 2 ;;
        --bin) bin=$2; shift 2 ;;
        -h|--help)
            echo "Usage: bench/postgres.sh [--hosts N] [--chain M] [--jobs J] [--bin PATH]"
            exit 0 ;;
        *) echo "postgres bench: unknown option $1" >&2; exit 64 ;;
    esac
done

if [[ -n $bin ]]; then
    bin=$(realpath "$bin")
fi
cd "$(dirname "$0")/.."
repo=$PWD
if [[ -z $bin ]]; then
    cargo build --release --quiet
    bin=$PWD/target/release/pogo
fi

pgbin=
if command -v initdb >/dev/null 2>&1 && command -v postgres >/dev/null 2>&1; then
    pgbin=$(dirname "$(realpath "$(command -v initdb)")")
else
    pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
fi
if [[ -z $pgbin || ! -x $pgbin/initdb ]]; then
    echo "postgres bench: PostgreSQL is not installed (apt-get install postgresql)" >&2
    exit 1
fi
as_pg=()
if [[ $(id -u) -eq 0 ]]; then
    as_pg=(runuser -u postgres --)
fi

work=$(mktemp -d)
chmod 755 "$work"
pids=()
pg_started=
cleanup() {
    for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
    if [[ -n $pg_started ]]; then
        "${as_pg[@]}" "$pgbin/pg_ctl" -D "$work/pg/data" -m fast -w stop >/dev/null 2>&1 || true
    fi
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

mkdir "$work/pg"
if ((${#as_pg[@]})); then chown postgres: "$work/pg"; fi
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"${as_pg[@]}" "$pgbin/initdb" -D "$work/pg/data" -U pogo --auth=trust -E UTF8 --locale=C >/dev/null
"${as_pg[@]}" "$pgbin/pg_ctl" -D "$work/pg/data" -l "$work/pg/server.log" -w \
    -o "-p $port -k $work/pg -c listen_addresses=127.0.0.1 -c max_connections=200" start >/dev/null
pg_started=1
"$pgbin/createdb" -h 127.0.0.1 -p "$port" -U pogo throughput
"$pgbin/createdb" -h 127.0.0.1 -p "$port" -U pogo failover
db() { echo "postgres://pogo@127.0.0.1:$port/$1?sslmode=disable"; }

echo "== throughput and latency"
bench/remote.sh --bin "$bin" --hosts "$hosts" --chain "$chain" --no-local | tee "$work/sqlite.txt"
bench/remote.sh --bin "$bin" --hosts "$hosts" --chain "$chain" --no-local \
    --database "$(db throughput)" | tee "$work/postgres.txt"
python3 - "$work/sqlite.txt" "$work/postgres.txt" <<'PY'
import re, sys
def rate(path):
    text = open(path).read()
    tasks = float(re.search(r"([\d.]+) tasks/s", text).group(1))
    step = float(re.search(r"([\d.]+) ms per step", text).group(1))
    return tasks, step
(st, sl), (pt, pl) = rate(sys.argv[1]), rate(sys.argv[2])
print(f"PostgreSQL/SQLite: throughput {pt/st:.2f}x ({pt:.0f} against {st:.0f} tasks/s), "
      f"per-step latency {pl/sl:.2f}x ({pl:.2f} against {sl:.2f} ms); "
      f"target: throughput within 2x: {'PASS' if st <= 2 * pt else 'FAIL'}")
PY

echo "== failover"
cd "$work"
"$bin" certs init pki --worker w1 --worker w2 --operator bench >/dev/null
start_dispatcher() {
    "$bin" dispatcher --listen 127.0.0.1:0 --database "$(db failover)" \
        --cert pki/dispatcher.pem --key pki/dispatcher-key.pem --ca pki/ca.pem \
        >"$1.out" 2>"$1.err" &
    pids+=($!)
    disown $!
    for _ in $(seq 200); do
        grep -q listening "$1.out" 2>/dev/null && break
        sleep 0.05
    done
}
start_dispatcher d1
for _ in $(seq 200); do grep -q "leading" d1.err && break; sleep 0.05; done
leader_pid=${pids[-1]}
start_dispatcher d2
url1=$(sed -n 's/.*listening on //p' d1.out)
url2=$(sed -n 's/.*listening on //p' d2.out)
export POGO_DISPATCHER="$url1,$url2" POGO_CA=pki/ca.pem POGO_CERT=pki/operator-bench.pem \
    POGO_KEY=pki/operator-bench-key.pem
for w in w1 w2; do
    "$bin" worker --dispatcher "$url1,$url2" --capacity 16 --max-backoff 1s \
        --cert "pki/worker-$w.pem" --key "pki/worker-$w-key.pem" --ca pki/ca.pem \
        >"$w.log" 2>&1 &
    pids+=($!)
    disown $!
done

"$bin" plan --targets one --command true -o one.plan.json >/dev/null 2>&1
printf 'storing %s finished jobs... ' "$jobs"
seq "$jobs" | xargs -P 4 -I{} "$bin" apply --dispatcher one.plan.json --transport local --detach >/dev/null 2>&1
# Each ends within moments; the last few are waited for.
POGO_BIN=$bin python3 - <<'PY'
import json, os, subprocess, time
deadline = time.monotonic() + 120
while time.monotonic() < deadline:
    out = subprocess.run([os.environ["POGO_BIN"], "jobs", "--json"],
                         capture_output=True, text=True).stdout
    jobs = json.loads(out or "[]")
    if jobs and all(j["state"] != "running" for j in jobs):
        break
    time.sleep(0.5)
PY
echo done

"$bin" plan --targets 'x[0001-4000]' --concurrent 16 \
    --command "date +%s%N >> $work/starts; sleep 0.05" -o long.plan.json >/dev/null 2>&1
"$bin" apply --dispatcher long.plan.json --transport local --detach >/dev/null 2>&1
for _ in $(seq 600); do
    [[ -f starts ]] && (($(wc -l <starts) >= 200)) && break
    sleep 0.05
done
killed=$(date +%s%N)
kill -9 "$leader_pid"
for _ in $(seq 1200); do
    grep -q "leading (epoch 2)" d2.err && break
    sleep 0.01
done
led=$(date +%s%N)
for _ in $(seq 1200); do
    (($(awk -v t="$led" '$1 > t' starts | wc -l) > 0)) && break
    sleep 0.01
done
first=$(awk -v t="$led" '$1 > t' starts | sort -n | head -1)
python3 -c "
k, l, f = $killed, $led, ${first:-0}
print(f'failover with $jobs finished jobs stored, lease 5 s: the standby leads {(l-k)/1e9:.2f} s after the kill of the leader, '
      f'the first command starts {(f-k)/1e9:.2f} s after it; target under 10 s: {\"PASS\" if f and f-k < 10e9 else \"FAIL\"}')
"
cd "$repo"
