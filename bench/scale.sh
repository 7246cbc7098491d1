#!/usr/bin/env bash
# Many subscribers on one machine whose processes may hold at most 20,000
# open files each: several hub processes share one port (SO_REUSEPORT) and
# one event log (a Redis Stream, `--cluster`), and tidings-bench spreads its
# subscribers over shard processes and 127.0.0.x source addresses.
#
#   bench/scale.sh                         100,000 subscribers on 8 hubs
#   SUBSCRIBERS=50000 HUBS=4 bench/scale.sh
#   bench/scale.sh --source-ips 50     extra arguments go to tidings-bench fanout
#
# Environment (defaults in brackets): SUBSCRIBERS [100000], HUBS [8],
# EVENTS [30], RATE events/s [1], CONNECT_RATE [4000], PORT [18470],
# REDIS_PORT [18471], RESULTS [bench/results]. Needs redis-server.
# Nothing is pinned: the hubs, Redis and the tool share both cores.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

subscribers=${SUBSCRIBERS:-100000}
hubs=${HUBS:-8}
events=${EVENTS:-30}
rate=${RATE:-1}
connect_rate=${CONNECT_RATE:-4000}
port=${PORT:-18470}
redis_port=${REDIS_PORT:-18471}
results=${RESULTS:-$root/bench/results}
mkdir -p "$results"

target_dir=${CARGO_TARGET_DIR:-$root/target}
cargo build --release -q --bin tidings -p tidings -p tidings-bench >&2
tidings=$target_dir/release/tidings
bench=$target_dir/release/tidings-bench

tmp=$(mktemp -d "${TMPDIR:-/tmp}/tidings-scale.XXXXXX")
group_pid=
redis_pid=
cleanup() {
  [ -n "$group_pid" ] && kill -- "-$group_pid" 2>/dev/null || true
  [ -n "$redis_pid" ] && kill "$redis_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no \
  --dir "$tmp" >"$tmp/redis.log" 2>&1 &
redis_pid=$!
for _ in $(seq 50); do
  redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break
  sleep 0.1
done

# Every hub is a child of one shell, so that --server-pid samples them all
# (memory, CPU, open files) as one server.
per_hub=$(( subscribers / hubs + subscribers / hubs / 5 + 100 ))
setsid bash -c '
  for i in $(seq "$1"); do
    "$2" serve --listen "127.0.0.1:$3" --reuse-port --cluster "redis://127.0.0.1:$4" \
      --max-connections "$5" --log warn &
  done
  wait' _ "$hubs" "$tidings" "$port" "$redis_port" "$per_hub" >"$tmp/hubs.log" 2>&1 &
group_pid=$!
for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done
sleep 1

stamp=$(date +%Y%m%d-%H%M%S)
json=$results/scale-$subscribers-subs-$hubs-hubs-$stamp.json
"$bench" fanout \
  --sub-url "http://127.0.0.1:$port/.well-known/mercure?topic=bench" \
  --pub-url "http://127.0.0.1:$port/.well-known/mercure" --pub-format mercure --topic bench \
  --subscribers "$subscribers" --connect-rate "$connect_rate" \
  --events "$events" --rate "$rate" --warmup 5 --drain 10 \
  --server-pid "$group_pid" --label "tidings x$hubs (reuse-port, redis)" --json "$json" "$@"
echo "result: $json" >&2
