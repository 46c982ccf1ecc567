#!/usr/bin/env bash
# The end-to-end load benchmark of issue 6: weft against a no-engine floor, loopback only.
#
#   bench/run.sh
#
# Builds the release binaries (weft, bench-floor, bench-loadgen), starts the Sonar
# simulator (`weft sonar-sim`), then, REPS times, runs the floor (bench/floor) and
# `weft serve bench/scenarios` back to back under the same load: CONCURRENCY connections
# (closed loop) POSTing Sonar-style JSON webhooks for DURATION seconds after a WARMUP.
# Then: start-up time and idle RSS (1 and 100 scenarios), and the drain of a BACKLOG of
# queued webhooks. Prints the table (docs/performance.md, "Load benchmark (issue 6)").
#
# Then one more run of each paced at RATE webhooks/s (below weft's capacity), for the
# webhook-to-Sonar latency of a server that keeps up.
#
# PostgreSQL (issue 9): the systems `pg1` and `pg2` are weft on PostgreSQL with one node and
# with two nodes sharing one database (the load generator spreads its connections over the
# two nodes' hook URLs, round robin), measured in the same run as SQLite (`weft`). Each
# measurement gets a fresh database (CREATE DATABASE weft_bench_..., dropped after it and on
# exit) on PG_HOST:PG_PORT (127.0.0.1:5432, user PG_USER=postgres, trust authentication;
# `psql` must be installed). The CPU of that database's backends plus PostgreSQL's WAL
# writer, checkpointer and background writer is measured as `pg`.
#
# Knobs (environment): DURATION=10 WARMUP=2 REPS=2 RATE=2000 (0: no paced run) CONCURRENCY=32 WORKERS=64
# LOADGEN_THREADS=1 BACKLOG=100000 DRAIN_ROUNDS=2 (fill + drain on the same database, so the
# second round starts with BACKLOG executions of history) PORT_BASE=4410 WEFT_LOG=info; for experiments:
# SYSTEMS="floor weft pg1 pg2" (which systems the load runs cover; "floor weft" for SQLite only), DB_DIR=/dev/shm (where weft's
# databases go: tmpfs makes fsync free), SKIP_STARTUP=1, SKIP_DRAIN=1, WEFT_BIN=path (the weft binary
# measured under load instead of target/release/weft: alternate runs of two builds to compare them).
# Every process it starts is stopped on exit; every step has a time bound.
set -euo pipefail

cd "$(dirname "$0")/.."
duration=${DURATION:-10}
warmup=${WARMUP:-2}
reps=${REPS:-2}
concurrency=${CONCURRENCY:-32}
workers=${WORKERS:-64}
lg_threads=${LOADGEN_THREADS:-1}
backlog=${BACKLOG:-100000}
systems=${SYSTEMS:-floor weft pg1 pg2}
pg_host=${PG_HOST:-127.0.0.1}
pg_port=${PG_PORT:-5432}
pg_user=${PG_USER:-postgres}
rate=${RATE:-2000}
rounds=${DRAIN_ROUNDS:-2}
# The simulator keeps the newest 100,000 messages: a run stops at DURATION or at this many
# webhooks, whichever comes first, so that every message of the run can be counted.
max_requests=100000
port=${PORT_BASE:-4410}
sim_addr=127.0.0.1:$port
floor_addr=127.0.0.1:$((port + 1))
weft_addr=127.0.0.1:$((port + 2))
hole_addr=127.0.0.1:$((port + 3))
weft2_addr=127.0.0.1:$((port + 4))
sim_url=http://$sim_addr

cargo build --release -p weft -p weft-bench-floor -p weft-bench-loadgen
bin=target/release
lg=$bin/bench-loadgen
weft_bin=${WEFT_BIN:-$bin/weft}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/weft-bench.XXXXXX")
db_dir=$(mktemp -d "${DB_DIR:-$tmp}/weft-bench-db.XXXXXX")
mkdir -p target/bench
results=target/bench/results-$(date +%Y%m%d-%H%M%S).jsonl
: >"$results"

pids=()
pg_dbs=()
psql_admin() {
  timeout 60 psql -X -q -h "$pg_host" -p "$pg_port" -U "$pg_user" -d test -v ON_ERROR_STOP=1 -c "$1" >/dev/null
}
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  for d in "${pg_dbs[@]}"; do psql_admin "DROP DATABASE IF EXISTS $d WITH (FORCE)" 2>/dev/null || true; done
  rm -rf "$db_dir" "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# wait_http, hook_url, stop.
. bench/lib.sh

export SONAR_TOKEN=sim-token
export SONAR_BASE_URL=$sim_url/api

echo "# machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GB", $2/1048576}' /proc/meminfo); load before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# commit: $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- crates 2>/dev/null || echo ' + uncommitted changes in crates/')"
case " $systems " in
  *" pg1 "* | *" pg2 "*)
    echo "# PostgreSQL: $(timeout 10 psql -X -At -h "$pg_host" -p "$pg_port" -U "$pg_user" -d test -c 'SHOW server_version') on $pg_host:$pg_port, synchronous_commit=$(timeout 10 psql -X -At -h "$pg_host" -p "$pg_port" -U "$pg_user" -d test -c 'SHOW synchronous_commit'), fsync=$(timeout 10 psql -X -At -h "$pg_host" -p "$pg_port" -U "$pg_user" -d test -c 'SHOW fsync')" ;;
esac
echo "# load: $concurrency connections, ${warmup} s warm-up + ${duration} s per run, $reps runs each, weft --workers $workers"

"$bin/weft" sonar-sim --listen "$sim_addr" --token sim-token >"$tmp/sim.log" 2>&1 &
sim_pid=$!
pids+=("$sim_pid")
wait_http "$sim_url/_sim/state"

mkdir -p "$tmp/one"
cp bench/scenarios/bench-sonar.yaml "$tmp/one/"

# PostgreSQL's processes whose CPU counts for a run on database $1: its backends, and the
# WAL writer, checkpointer and background writer (shared, but idle without load).
pg_pids() {
  pgrep -u "$pg_user" -f "postgres: .* $1 |walwriter|checkpointer|background writer" 2>/dev/null || true
}

# One measurement: start SYSTEM, warm up, reset the simulator, load it (closed loop, or
# paced at RATE webhooks/s when given), wait for weft's queue to drain, report, stop it.
# SYSTEM: floor, weft (SQLite), pg1 (PostgreSQL, one node), pg2 (PostgreSQL, two nodes).
measure() {
  local system=$1 rep=$2 rate=${3:-} server url pace=() servers=() urls=() metrics=() cpu=() label=$1 db=""
  if [ -n "$rate" ]; then pace=(--rate "$rate"); fi
  curl -fs -X POST "$sim_url/_sim/reset" >/dev/null
  case "$system" in
  floor)
    "$bin/bench-floor" --listen "$floor_addr" --sonar-base-url "$SONAR_BASE_URL" --token sim-token \
      >"$tmp/floor.log" 2>&1 &
    server=$!
    pids+=("$server")
    servers=("$server")
    wait_http "http://$floor_addr/healthz"
    urls=(--url "http://$floor_addr/hooks/bench")
    ;;
  weft)
    "$weft_bin" serve "$tmp/one" --listen "$weft_addr" --db "$db_dir/weft-$rep.db" --workers "$workers" \
      >"$tmp/weft-$rep.log" 2>&1 &
    server=$!
    pids+=("$server")
    servers=("$server")
    wait_http "http://$weft_addr/healthz"
    urls=(--url "$(hook_url "$tmp/weft-$rep.log")")
    metrics=("http://$weft_addr/metrics")
    ;;
  pg1 | pg2)
    label=weft-$system
    db=weft_bench_$$_$(od -An -N4 -tx4 /dev/urandom | tr -d ' ')
    pg_dbs+=("$db")
    psql_admin "CREATE DATABASE $db"
    local dburl="postgres://$pg_user@$pg_host:$pg_port/$db" addrs=("$weft_addr") n=0 path=""
    if [ "$system" = pg2 ]; then addrs+=("$weft2_addr"); fi
    # One node after the other: the first creates the hook tokens, the second finds them.
    for a in "${addrs[@]}"; do
      n=$((n + 1))
      "$bin/weft" serve "$tmp/one" --listen "$a" --db "$dburl" --workers "$workers" \
        >"$tmp/$system-$rep-$n.log" 2>&1 &
      server=$!
      pids+=("$server")
      servers+=("$server")
      wait_http "http://$a/healthz"
      if [ -z "$path" ]; then path=$(hook_url "$tmp/$system-$rep-$n.log" | sed 's|^http://[^/]*||'); fi
      urls+=(--url "http://$a$path")
      metrics+=("http://$a/metrics")
    done
    server=${servers[0]}
    ;;
  esac
  echo "## $label, run $rep${rate:+ (paced at $rate/s)}"
  "$lg" run "${urls[@]}" --concurrency "$concurrency" --duration "$warmup" --run-id "warm$rep" \
    --threads "$lg_threads" "${pace[@]}" >/dev/null
  wait_queues
  curl -fs -X POST "$sim_url/_sim/reset" >/dev/null
  for p in "${servers[@]}"; do cpu+=(--pid "server=$p"); done
  if [ -n "$db" ]; then
    for p in $(pg_pids "$db"); do cpu+=(--pid "pg=$p"); done
  fi
  "$lg" run "${urls[@]}" --concurrency "$concurrency" --duration "$duration" --run-id "m$rep" \
    --count "$max_requests" --threads "$lg_threads" "${pace[@]}" "${cpu[@]}" --pid "sim=$sim_pid" \
    --out "$tmp/run.json" >/dev/null
  wait_queues
  "$lg" report --run-json "$tmp/run.json" --sim "$sim_url" --system "$label" --rep "$rep" \
    --pid "$server" --out "$results"
  for p in "${servers[@]}"; do stop "$p"; done
  if [ -n "$db" ]; then psql_admin "DROP DATABASE IF EXISTS $db WITH (FORCE)"; fi
}

# Waits until the queue behind `metrics` (set by measure) is empty. On PostgreSQL the depth
# in /metrics is read back from the shared database every second: wait for a fresh reading.
wait_queues() {
  local m
  if [ "${#metrics[@]}" -gt 0 ] && [ -n "$db" ]; then sleep 1.2; fi
  for m in "${metrics[@]}"; do
    "$lg" wait-idle --metrics "$m" --timeout 300 >/dev/null
  done
}

for rep in $(seq "$reps"); do
  for system in $systems; do
    measure "$system" "$rep"
  done
done
# Webhook-to-Sonar latency below saturation: both paced at the same rate.
if [ "$rate" != 0 ]; then
  for system in $systems; do
    measure "$system" paced "$rate"
  done
fi

# Start-up and idle RSS.
if [ -z "${SKIP_STARTUP:-}" ]; then
echo "## start-up"
"$lg" startup --label "bench-floor" --out "$results" --healthz "http://$floor_addr/healthz" -- \
  "$bin/bench-floor" --listen "$floor_addr" --sonar-base-url "$SONAR_BASE_URL"
"$lg" startup --label "weft serve, 1 scenario, new db" --out "$results" --healthz "http://$weft_addr/healthz" -- \
  "$bin/weft" serve "$tmp/one" --listen "$weft_addr" --db "$db_dir/startup-1.db" --workers "$workers"
mkdir -p "$tmp/hundred"
for i in $(seq -w 1 100); do
  sed "s/^name: bench-sonar$/name: bench-sonar-$i/" bench/scenarios/bench-sonar.yaml >"$tmp/hundred/bench-sonar-$i.yaml"
done
for label in "new db" "existing db" "existing db"; do
  "$lg" startup --label "weft serve, 100 scenarios, $label" --out "$results" --healthz "http://$weft_addr/healthz" -- \
    "$bin/weft" serve "$tmp/hundred" --listen "$weft_addr" --db "$db_dir/startup-100.db" --workers "$workers"
done
fi

# Backlog: fill the queue through the HTTP intake while the only worker is stalled on a
# socket that never answers (the scenario copy waits up to 300 s for Sonar), stop weft
# (the stalled job is given back to the queue), then start weft with its workers and the
# simulator and time the drain.
if [ -z "${SKIP_DRAIN:-}" ]; then
  mkdir -p "$tmp/fill"
  sed 's/^    max_retries: 0$/    max_retries: 0\n    timeout_secs: 300/' bench/scenarios/bench-sonar.yaml >"$tmp/fill/bench-sonar.yaml"
  for round in $(seq "$rounds"); do
    echo "## backlog of $backlog, round $round"
    "$lg" blackhole --listen "$hole_addr" --seconds 900 >/dev/null &
    hole=$!
    pids+=("$hole")
    SONAR_BASE_URL=http://$hole_addr/api "$bin/weft" serve "$tmp/fill" --listen "$weft_addr" \
      --db "$db_dir/drain.db" --workers 1 --grace 1s >"$tmp/fill.log" 2>&1 &
    server=$!
    pids+=("$server")
    wait_http "http://$weft_addr/healthz"
    url=$(hook_url "$tmp/fill.log")
    "$lg" run --kind fill --url "$url" --concurrency "$concurrency" --duration 600 --count "$backlog" \
      --run-id "fill$round" --threads "$lg_threads" --pid "server=$server" --out "$tmp/fill.json" >/dev/null
    cat "$tmp/fill.json" >>"$results"
    echo >>"$results"
    stop "$server"
    stop "$hole"
    curl -fs -X POST "$sim_url/_sim/reset" >/dev/null
    "$lg" drain --label "drain round $round (history at start: $(( (round - 1) * backlog )) executions)" \
      --metrics "http://$weft_addr/metrics" --total "$backlog" --chunk $((backlog / 10)) \
      --timeout 600 --sim "$sim_url" --log "$tmp/drain.log" --out "$results" -- \
      "$bin/weft" serve "$tmp/one" --listen "$weft_addr" --db "$db_dir/drain.db" --workers "$workers"
  done
fi

echo
echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg); results: $results"
echo
"$lg" table "$results"
