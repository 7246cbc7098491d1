#!/usr/bin/env bash
# The same fan-out scenario against the floor (bench/floor/floor.c: one
# thread, epoll, one send per subscriber and event), Nchan and Tidings, in
# one go, with the same pinning and the same tool: prints each summary line,
# then each server against every one before it (Nchan and Tidings against
# the floor's p50 and p99, Tidings against Nchan). Takes the environment of
# bench/fanout.sh (SUBSCRIBERS, RATE, DURATION, TIDINGS_CMD, ...) and passes
# its arguments to every run.
#
#   bench/compare.sh
#   SUBSCRIBERS=10000 RATE=10 DURATION=30 bench/compare.sh   the latency scenario
#   SUBSCRIBERS=1000 RATE=10 bench/compare.sh --payload 500
#   SERVERS="nchan tidings" bench/compare.sh   without the floor
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
results=${RESULTS:-$root/bench/results}
export RESULTS=$results
# Each run is named after its server (the ratios are read back by name).
unset LABEL

if [ -z "${BENCH_BIN:-}" ]; then
  cargo build --release -q -p tidings-bench >&2
  export BENCH_BIN=${CARGO_TARGET_DIR:-$root/target}/release/tidings-bench
fi

files=()
for server in ${SERVERS:-floor nchan tidings}; do
  echo "== $server" >&2
  "$root/bench/fanout.sh" "$server" "$@" >/dev/null
  files+=("$results/$(readlink "$results/latest-$server.json")")
done
"$BENCH_BIN" compare "${files[@]}"
