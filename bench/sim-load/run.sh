#!/usr/bin/env bash
# Load test of the Sonar simulator: POST /api/v1/messages with wrk (default: 2 threads,
# 32 connections, 10 s), loopback only. Builds and starts the release `sim_server` example,
# runs wrk against it, then stops the server it started.
#
#   bench/sim-load/run.sh                      # defaults
#   DURATION=30s CONNECTIONS=64 bench/sim-load/run.sh
set -euo pipefail

cd "$(dirname "$0")/../.."
addr=${ADDR:-127.0.0.1:4010}
threads=${THREADS:-2}
connections=${CONNECTIONS:-32}
duration=${DURATION:-10s}

command -v wrk >/dev/null || { echo "wrk is missing: apt-get install -y wrk" >&2; exit 2; }
cargo build --release -p weft-sonar-sim --example sim_server

target/release/examples/sim_server "$addr" &
server=$!
trap 'kill "$server" 2>/dev/null; wait "$server" 2>/dev/null || true' EXIT

host=${addr%:*}
port=${addr##*:}
for _ in $(seq 100); do
  if (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; then break; fi
  sleep 0.1
done

wrk -t"$threads" -c"$connections" -d"$duration" --latency \
  -s bench/sim-load/post_message.lua "http://$addr/api/v1/messages"

