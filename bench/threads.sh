#!/usr/bin/env bash
# Where a server's CPU goes, thread by thread, under the load benchmark's closed loop.
#
#   bench/threads.sh                      # weft serve, its database on disk
#   DB_DIR=/dev/shm bench/threads.sh      # weft serve, its database on tmpfs (no sync cost)
#   SYSTEM=floor bench/threads.sh         # the no-engine floor (bench/floor)
#
# Starts the Sonar simulator and one server (weft serve on the bench scenario with --workers
# WORKERS, or bench-floor), warms it up for 2 s, then loads it for DURATION (6) seconds with
# CONCURRENCY (32) connections, closed loop, as bench/run.sh does. Prints the acknowledgements
# per second and their latency, and the server's CPU per acknowledged webhook for each thread
# name (tokio-rt-worker, weft-sqlite, ...), split into user and system time
# (/proc/PID/task/*/stat, read before and after the window). For weft it also prints how many
# jobs were handed over in memory and how many were claimed from the queue during the window
# (/metrics). WEFT_BIN runs another build of weft. Ports PORT_BASE (4710) to PORT_BASE+2 on
# 127.0.0.1. Quicker than bench/run.sh and without the floor beside it: use it to see where the
# time goes, bench/pairs.sh to compare two builds.
set -euo pipefail

cd "$(dirname "$0")/.."
system=${SYSTEM:-weft}
duration=${DURATION:-6}
concurrency=${CONCURRENCY:-32}
workers=${WORKERS:-64}
port=${PORT_BASE:-4710}
case "$system" in
weft | floor) ;;
*)
  echo "SYSTEM must be weft or floor, not '$system'" >&2
  exit 2
  ;;
esac
cargo build --release -p weft -p weft-bench-floor -p weft-bench-loadgen
weft_bin=${WEFT_BIN:-target/release/weft}
lg=target/release/bench-loadgen
sim_url=http://127.0.0.1:$port
server_addr=127.0.0.1:$((port + 2))

tmp=$(mktemp -d "${TMPDIR:-/tmp}/weft-threads.XXXXXX")
db_dir=${DB_DIR:-$tmp}
db=$db_dir/weft-threads-$$.db
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
  rm -f "$db" "$db-wal" "$db-shm"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# wait_http, hook_url.
. bench/lib.sh

export SONAR_TOKEN=sim-token SONAR_BASE_URL=$sim_url/api
target/release/weft sonar-sim --listen "127.0.0.1:$port" --token sim-token >"$tmp/sim.log" 2>&1 &
pids+=("$!")
wait_http "$sim_url/_sim/state"

metrics=""
if [ "$system" = weft ]; then
  mkdir -p "$tmp/one"
  cp bench/scenarios/bench-sonar.yaml "$tmp/one/"
  "$weft_bin" serve "$tmp/one" --listen "$server_addr" --db "$db" --workers "$workers" \
    >"$tmp/server.log" 2>&1 &
  server=$!
  pids+=("$server")
  wait_http "http://$server_addr/healthz"
  metrics=http://$server_addr/metrics
  url=$(hook_url "$tmp/server.log")
else
  target/release/bench-floor --listen "$server_addr" --sonar-base-url "$SONAR_BASE_URL" \
    --token sim-token >"$tmp/server.log" 2>&1 &
  server=$!
  pids+=("$server")
  wait_http "http://$server_addr/healthz"
  url=http://$server_addr/hooks/bench
fi

# CPU ticks of each thread name: "name total user system".
threads() {
  local t name ticks
  for t in /proc/"$server"/task/*; do
    # A thread may end between the listing and the read: skip it.
    name=$(cat "$t/comm" 2>/dev/null) && ticks=$(awk '{print $14 + $15, $14, $15}' "$t/stat" 2>/dev/null) &&
      echo "${name// /_} $ticks"
  done | awk '{a[$1] += $2; u[$1] += $3; s[$1] += $4} END {for (k in a) print k, a[k], u[k], s[k]}'
}
jobs_counters() {
  if [ -n "$metrics" ]; then curl -fs "$metrics" | grep -E '^weft_jobs_(handed_off|claimed)_total ' || true; fi
}

"$lg" run --url "$url" --concurrency "$concurrency" --duration 2 --run-id warm >/dev/null
if [ -n "$metrics" ]; then "$lg" wait-idle --metrics "$metrics" --timeout 120 >/dev/null; fi
threads >"$tmp/cpu0"
jobs_counters >"$tmp/jobs0"
"$lg" run --url "$url" --concurrency "$concurrency" --duration "$duration" --run-id load \
  --out "$tmp/run.json" >/dev/null
threads >"$tmp/cpu1"
jobs_counters >"$tmp/jobs1"
if [ -n "$metrics" ]; then "$lg" wait-idle --metrics "$metrics" --timeout 120 >/dev/null; fi

python3 - "$tmp" "$system" "$(getconf CLK_TCK)" <<'PY'
import json, sys
tmp, system, hz = sys.argv[1], sys.argv[2], int(sys.argv[3])
run = json.load(open(f"{tmp}/run.json"))
n = run["ok"]
print(f"{system}: {n} webhooks acknowledged in {run['elapsed_s']:.1f} s = {run['ack_per_s']:.0f}/s, "
      f"ack p50 {run['ack_p50_ms']} ms, p99 {run['ack_p99_ms']} ms, errors {run['errors'] + run['non2xx']}")
def table(path):
    out = {}
    for line in open(path):
        name, *ticks = line.split()
        out[name] = [int(t) for t in ticks]
    return out
before, after = table(f"{tmp}/cpu0"), table(f"{tmp}/cpu1")
us = lambda ticks: ticks * 1e6 / hz / max(n, 1)
print("CPU per acknowledged webhook, by thread name (total = user + system):")
rows = []
for name, (total, user, sys_) in after.items():
    t0, u0, s0 = before.get(name, [0, 0, 0])
    rows.append((us(total - t0), us(user - u0), us(sys_ - s0), name))
for total, user, sys_, name in sorted(rows, reverse=True):
    if total >= 0.05:
        print(f"  {name:<20} {total:6.1f} µs  ({user:.1f} user + {sys_:.1f} system)")
print(f"  {'all':<20} {sum(r[0] for r in rows):6.1f} µs")
def counters(path):
    out = {}
    for line in open(path):
        k, v = line.rsplit(" ", 1)
        out[k] = float(v)
    return out
j0, j1 = counters(f"{tmp}/jobs0"), counters(f"{tmp}/jobs1")
if j1:
    handed = j1.get("weft_jobs_handed_off_total", 0) - j0.get("weft_jobs_handed_off_total", 0)
    claimed = j1.get("weft_jobs_claimed_total", 0) - j0.get("weft_jobs_claimed_total", 0)
    print(f"jobs in the window: {handed:.0f} handed over in memory, {claimed:.0f} claimed from the queue")
PY
