# Helpers shared by the bench/ scripts (run.sh, threads.sh, instructions.sh); sourced, not run.

# Waits until URL answers 2xx, for at most SECONDS (default 10); fails with a message.
wait_http() {
  local url=$1 deadline=$((SECONDS + ${2:-10}))
  until curl -fs -o /dev/null --max-time 1 "$url"; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "no answer from $url" >&2
      return 1
    fi
    sleep 0.02
  done
}

# Prints the bench scenario's hook URL once `weft serve` has written it to LOG, waiting at
# most SECONDS (default 10); fails with a message.
hook_url() {
  local log=$1 deadline=$((SECONDS + ${2:-10})) url
  while :; do
    url=$(grep -o "bench-sonar: POST http://[^ ]*" "$log" 2>/dev/null | head -n1 | sed 's/^bench-sonar: POST //') || true
    if [ -n "$url" ]; then
      echo "$url"
      return 0
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "weft printed no hook URL; see $log" >&2
      return 1
    fi
    sleep 0.02
  done
}

# Stops a process started by the script: SIGTERM, then SIGKILL after 20 s.
stop() {
  kill -TERM "$1" 2>/dev/null || true
  for _ in $(seq 200); do
    kill -0 "$1" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}
