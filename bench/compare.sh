#!/usr/bin/env bash
# The same fan-out scenario against Nchan and then Tidings, in one go, with
# the same pinning and the same tool: prints each summary line and how
# Tidings compares with Nchan. Takes the environment of bench/fanout.sh
# (SUBSCRIBERS, RATE, DURATION, TIDINGS_CMD, ...) and passes its arguments
# to every run.
#
#   bench/compare.sh
#   SUBSCRIBERS=1000 RATE=10 bench/compare.sh --payload 500
#   SERVERS="nchan" bench/compare.sh       only Nchan
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
results=${RESULTS:-$root/bench/results}
export RESULTS=$results

if [ -z "${BENCH_BIN:-}" ]; then
  cargo build --release -q -p tidings-bench >&2
  export BENCH_BIN=${CARGO_TARGET_DIR:-$root/target}/release/tidings-bench
fi

files=()
for server in ${SERVERS:-nchan tidings}; do
  echo "== $server" >&2
  "$root/bench/fanout.sh" "$server" "$@" >/dev/null
  files+=("$results/$(readlink "$results/latest-$server.json")")
done
"$BENCH_BIN" compare "${files[@]}"
