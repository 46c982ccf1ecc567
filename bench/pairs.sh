#!/usr/bin/env bash
# Alternated A/B comparison of two weft settings under the load benchmark's closed loop.
#
#   bench/pairs.sh N "ENV_A" "ENV_B"
#   bench/pairs.sh 8 "WEFT_THREADS=1" "WEFT_THREADS=2"
#   bench/pairs.sh 6 "WEFT_BIN=/tmp/weft-old" "WEFT_BIN=target/release/weft"
#
# Runs bench/run.sh N times for each setting (A B, then B A, alternating the order so that
# a machine that slows down or speeds up during the comparison does not favour one side),
# each run a floor and a weft measurement of DURATION (6) seconds: SYSTEMS="floor weft"
# REPS=1 SKIP_STARTUP=1 SKIP_DRAIN=1 RATE=0. ENV_A and ENV_B are space-separated NAME=VALUE
# assignments exported to that run only (weft reads WEFT_THREADS...; the harness reads
# WORKERS, WEFT_BIN, DB_DIR...). Prints one line per pair: each side's completed
# executions/s, its ratio to the floor measured in the same run, and B ÷ A; then the mean,
# median, minimum and maximum of B ÷ A. On a shared, noisy machine a difference is real
# when it holds in most pairs, not when the means differ.
set -euo pipefail

cd "$(dirname "$0")/.."
if [[ $# -ne 3 || ! $1 =~ ^[0-9]+$ || $1 -lt 1 ]]; then
  echo "usage: bench/pairs.sh N \"ENV_A\" \"ENV_B\"   (N ≥ 1 pairs; e.g. 8 \"WEFT_THREADS=1\" \"WEFT_THREADS=2\")" >&2
  exit 2
fi
n=$1
env_a=$2
env_b=$3
duration=${DURATION:-6}

# One harness run with the assignments in $1; prints "weft_completed_per_s floor_per_s".
measure() {
  local assignments=$1 log
  log=$(mktemp "${TMPDIR:-/tmp}/weft-pairs.XXXXXX")
  # shellcheck disable=SC2086 # the assignments are meant to be split into words
  if ! env $assignments SYSTEMS="floor weft" REPS=1 SKIP_STARTUP=1 SKIP_DRAIN=1 RATE=0 \
    DURATION="$duration" bash bench/run.sh >"$log" 2>&1; then
    echo "bench/run.sh failed with \"$assignments\"; its output:" >&2
    tail -20 "$log" >&2
    rm -f "$log"
    exit 1
  fi
  local results
  results=$(grep -o 'target/bench/results-[0-9-]*\.jsonl' "$log" | tail -1)
  rm -f "$log"
  python3 - "$results" <<'EOF'
import json, sys
rate = {}
for line in open(sys.argv[1]):
    line = line.strip()
    if line:
        r = json.loads(line)
        if "completed_per_s" in r and r.get("system") in ("floor", "weft"):
            rate[r["system"]] = r["completed_per_s"]
print(rate["weft"], rate["floor"])
EOF
}

ratios=()
printf '%-4s | %-19s | %-19s | %s\n' pair "A: weft/s (÷ floor)" "B: weft/s (÷ floor)" "B ÷ A"
for ((i = 1; i <= n; i++)); do
  if ((i % 2)); then
    read -r wa fa < <(measure "$env_a")
    read -r wb fb < <(measure "$env_b")
  else
    read -r wb fb < <(measure "$env_b")
    read -r wa fa < <(measure "$env_a")
  fi
  # One line of the table; its last field, B ÷ A, is kept for the summary.
  line=$(python3 -c "print(f'{$i:<4} | {$wa:7.0f} ({$wa / $fa:.2f})      | {$wb:7.0f} ({$wb / $fb:.2f})      | {$wb / $wa:.3f}')")
  echo "$line"
  ratios+=("${line##* }")
done
python3 - "$env_a" "$env_b" "${ratios[@]}" <<'EOF'
import statistics, sys
a, b, rs = sys.argv[1], sys.argv[2], [float(x) for x in sys.argv[3:]]
print(f"B ({b}) ÷ A ({a}) over {len(rs)} pairs: mean {statistics.mean(rs):.3f}, "
      f"median {statistics.median(rs):.3f}, min {min(rs):.3f}, max {max(rs):.3f}; "
      f"B ahead in {sum(r > 1 for r in rs)} of {len(rs)}")
EOF
