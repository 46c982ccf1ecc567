#!/usr/bin/env bash
# Instructions per webhook of `weft serve`, per thread, counted by callgrind: a figure that does
# not move with the neighbours on a shared machine (user-space instructions only: the kernel's
# work for sockets and fsync is not counted).
#
#   bench/instructions.sh [WEFT_BIN|floor] [N]
#
# Starts the Sonar simulator, then runs WEFT_BIN (default target/release/weft; `floor`: the
# no-engine floor, bench/floor, for the same figure per request) under
# `valgrind --tool=callgrind --separate-threads=yes` twice on the bench scenario: once for
# 200 webhooks and once for N+200 (default N=2000), 8 connections, each run until weft's queue
# is empty. The difference divided by N is what one webhook costs, without start-up and
# shutdown. Prints the total and each thread's share (thread 1 is main; with one runtime
# thread, thread 2 is the runtime, then the SQLite checkpoint and writer threads, in the order
# they start). Needs valgrind; ports PORT_BASE (4610) to PORT_BASE+2 on 127.0.0.1.
set -euo pipefail

cd "$(dirname "$0")/.."
weft_bin=${1:-target/release/weft}
n=${2:-2000}
port=${PORT_BASE:-4610}
command -v valgrind >/dev/null || { echo "valgrind is not installed" >&2; exit 1; }
cargo build --release -p weft -p weft-bench-loadgen -p weft-bench-floor
lg=target/release/bench-loadgen

tmp=$(mktemp -d "${TMPDIR:-/tmp}/weft-instr.XXXXXX")
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT

# wait_http, hook_url (valgrind starts slowly: both wait up to 60 s).
. bench/lib.sh

export SONAR_TOKEN=sim-token SONAR_BASE_URL=http://127.0.0.1:$port/api
mkdir -p "$tmp/one"
cp bench/scenarios/bench-sonar.yaml "$tmp/one/"
target/release/weft sonar-sim --listen "127.0.0.1:$port" --token sim-token >"$tmp/sim.log" 2>&1 &
pids+=("$!")

# One callgrind run of COUNT webhooks; its per-thread files go to $tmp/cg.COUNT/.
one() {
  local count=$1 url="" srv
  mkdir -p "$tmp/db.$count" "$tmp/cg.$count"
  if [ "$weft_bin" = floor ]; then
    valgrind --tool=callgrind --separate-threads=yes --callgrind-out-file="$tmp/cg.$count/out" \
      target/release/bench-floor --listen "127.0.0.1:$((port + 2))" --sonar-base-url "$SONAR_BASE_URL" \
      --token sim-token >"$tmp/floor.$count.log" 2>&1 &
    srv=$!
    pids+=("$srv")
    wait_http "http://127.0.0.1:$((port + 2))/healthz" 60
    url=http://127.0.0.1:$((port + 2))/hooks/bench
  else
    valgrind --tool=callgrind --separate-threads=yes --callgrind-out-file="$tmp/cg.$count/out" \
      "$weft_bin" serve "$tmp/one" --listen "127.0.0.1:$((port + 2))" --db "$tmp/db.$count/w.db" \
      --workers 64 >"$tmp/weft.$count.log" 2>&1 &
    srv=$!
    pids+=("$srv")
    url=$(hook_url "$tmp/weft.$count.log" 60)
  fi
  "$lg" run --url "$url" --concurrency 8 --duration 300 --count "$count" --run-id "c$count" >/dev/null
  # weft answers before it executes: wait until its queue is empty (the floor has none).
  if [ "$weft_bin" != floor ]; then
    "$lg" wait-idle --metrics "http://127.0.0.1:$((port + 2))/metrics" --timeout 300 >/dev/null
  fi
  kill -TERM "$srv"
  wait "$srv" || true
}
one 200
one $((n + 200))
python3 - "$tmp" "$n" "$weft_bin" <<'PY'
import glob, re, sys
tmp, n, binary = sys.argv[1], int(sys.argv[2]), sys.argv[3]
def totals(d):
    out = {}
    for f in glob.glob(d + "/out*"):
        m = re.search(r"-(\d+)$", f)
        for line in open(f):
            if line.startswith(("summary:", "totals:")):
                out[int(m.group(1)) if m else 0] = int(line.split()[1])
                break
    return out
a, b = totals(f"{tmp}/cg.200"), totals(f"{tmp}/cg.{n + 200}")
per = {t: (b.get(t, 0) - a.get(t, 0)) / n for t in b}
shown = ", ".join(f"thread {t}: {v:,.0f}" for t, v in sorted(per.items()) if abs(v) >= 500)
print(f"{binary}: {sum(per.values()):,.0f} instructions per webhook or request ({shown})")
PY
