#!/usr/bin/env bash
# Latency with and without churn, in one run: SUBSCRIBERS subscribers
# receive RATE events/s; during the second half of the publishing,
# CHURN_RATE other subscribers a second connect, read the response head and
# leave beside them (`tidings-bench fanout --churn-rate`). The summary line
# ends with the p50 and p99 of each half and their ratios (JSON: `churn`).
# The server is pinned to CPU 0 and the tool to CPU 1, as in
# bench/fanout.sh, which this runs.
#
#   bench/churn-fanout.sh                       the hub of target/release
#   bench/churn-fanout.sh path/to/tidings       another hub binary (before/after)
#   bench/churn-fanout.sh floor                 the floor (bench/floor/floor.c):
#                                               what the churn costs the kernel
#                                               and the tool, as a control
#   bench/churn-fanout.sh nchan
#   SUBSCRIBERS=2000 CHURN_RATE=200 DURATION=20 bench/churn-fanout.sh
#   bench/churn-fanout.sh tidings --churn-guard 2   extra tidings-bench options
#
# Environment (defaults in brackets): SUBSCRIBERS [10000], RATE events/s
# [10], DURATION seconds of publishing [60: 30 without churn, then 30 with
# it], CHURN_RATE cycles/s [1000], CHURN_IN_FLIGHT [1000], and the rest of
# bench/fanout.sh's (PORT, SERVER_CPU, TOOL_CPU, LABEL, RESULTS, ...).
#
# Open files: the tool holds SUBSCRIBERS + CHURN_IN_FLIGHT descriptors in
# one process (it refuses, or shards, past its limit: 20,000 here); the
# hub as many (Tidings' --max-connections defaults to 16,000).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

target=${1:-tidings}
if [ $# -gt 0 ]; then shift; fi
case "$target" in
  floor | nchan | tidings)
    server=$target
    ;;
  *)
    if [ ! -x "$target" ] || [ -d "$target" ]; then
      echo "$target: neither a server (floor, nchan, tidings) nor an executable hub binary" >&2
      exit 2
    fi
    server=tidings
    TIDINGS_BIN=$(cd "$(dirname "$target")" && pwd)/$(basename "$target")
    export TIDINGS_BIN
    ;;
esac

export SUBSCRIBERS=${SUBSCRIBERS:-10000}
export RATE=${RATE:-10}
export DURATION=${DURATION:-60}
export LABEL=${LABEL:-$server+churn}
exec "$root/bench/fanout.sh" "$server" \
  --churn-rate "${CHURN_RATE:-1000}" --churn-in-flight "${CHURN_IN_FLIGHT:-1000}" "$@"
