#!/usr/bin/env bash
# One fan-out comparison run: start a server pinned to one CPU, run
# tidings-bench pinned to another, write the JSON result under
# bench/results/, print the one-line summary.
#
#   bench/fanout.sh nchan   [extra tidings-bench fanout options]
#   bench/fanout.sh tidings [extra tidings-bench fanout options]
#   bench/fanout.sh floor   [extra tidings-bench fanout options]
#
# floor is bench/floor/floor.c, the least an SSE hub can do per event (one
# thread, epoll, one send per subscriber), compiled here with gcc into the
# run's temporary directory.
#
# Environment (defaults in brackets):
#   SUBSCRIBERS [10000]  RATE events/s [50]  DURATION seconds of publishing [40]
#   EVENTS [RATE*DURATION]  PAYLOAD bytes [100]  CONNECT_RATE [5000]
#   WARMUP [3]  DRAIN [5]  SERVER_CPU [0]  TOOL_CPU [1]
#   PORT [18490 for nchan, 18480 for tidings, 18495 for floor; must be free]
#   LABEL        names the run and its result files [the server's name]
#   CC           the C compiler for floor [gcc]
#   TIDINGS_BIN  the hub binary [target/release/tidings, built when missing]
#   TIDINGS_CMD  command that starts the hub; $PORT is set for it
#                [$TIDINGS_BIN serve --listen 127.0.0.1:$PORT
#                 --data-dir <temp dir>]
#   BENCH_BIN    the tidings-bench binary [built with cargo build --release]
#   RESULTS      result directory [bench/results]
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

server=${1:?usage: bench/fanout.sh nchan|tidings|floor [tidings-bench options]}
shift
subscribers=${SUBSCRIBERS:-10000}
rate=${RATE:-50}
duration=${DURATION:-40}
events=${EVENTS:-$(awk -v r="$rate" -v d="$duration" 'BEGIN { printf "%d", r * d }')}
payload=${PAYLOAD:-100}
connect_rate=${CONNECT_RATE:-5000}
warmup=${WARMUP:-3}
drain=${DRAIN:-5}
server_cpu=${SERVER_CPU:-0}
tool_cpu=${TOOL_CPU:-1}
results=${RESULTS:-$root/bench/results}
mkdir -p "$results"

target_dir=${CARGO_TARGET_DIR:-$root/target}
bin=${BENCH_BIN:-}
if [ -z "$bin" ]; then
  cargo build --release -q -p tidings-bench >&2
  bin=$target_dir/release/tidings-bench
fi

# Pin only where there are CPUs to pin to.
pin_server=()
pin_tool=()
if command -v taskset >/dev/null && [ "$(nproc --all)" -gt "$(( server_cpu > tool_cpu ? server_cpu : tool_cpu ))" ]; then
  pin_server=(taskset -c "$server_cpu")
  pin_tool=(taskset -c "$tool_cpu")
else
  echo "warning: not pinning (taskset missing or too few CPUs)" >&2
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/tidings-fanout.XXXXXX")
server_pid=
stop_server() { :; }
cleanup() {
  stop_server
  rm -rf "$tmp"
}
trap cleanup EXIT

wait_for_port() {
  for _ in $(seq 1 300); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
      return 0
    fi
    sleep 0.1
  done
  echo "nothing listens on 127.0.0.1:$1 after 30 s" >&2
  return 1
}

# Refuse a port someone else listens on: the tool would measure their server.
port_free() {
  if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
    echo "something already listens on 127.0.0.1:$1: set PORT to a free port" >&2
    exit 1
  fi
}

case "$server" in
  nchan)
    port=${PORT:-18490}
    port_free "$port"
    out=$("${pin_server[@]}" "$root/bench/nchan/run.sh" "$port" 2>"$tmp/nchan.log") || {
      cat "$tmp/nchan.log" >&2
      exit 1
    }
    nchan_dir=$(awk '/^dir /{print $2}' <<<"$out")
    server_pid=$(awk '/^pid /{print $2}' <<<"$out")
    stop_server() { "$root/bench/nchan/run.sh" stop "$nchan_dir"; rm -rf "$nchan_dir"; }
    sub_url="http://127.0.0.1:$port/sub/bench"
    pub_url="http://127.0.0.1:$port/pub/bench"
    format=(--pub-format raw)
    ;;
  tidings)
    port=${PORT:-18480}
    port_free "$port"
    export PORT=$port
    cmd=${TIDINGS_CMD:-}
    if [ -z "$cmd" ]; then
      hub=${TIDINGS_BIN:-$target_dir/release/tidings}
      if [ ! -x "$hub" ]; then
        [ -z "${TIDINGS_BIN:-}" ] || { echo "TIDINGS_BIN=$hub is not an executable" >&2; exit 1; }
        cargo build --release -q -p tidings >&2
      fi
      cmd="$hub serve --listen 127.0.0.1:$port --data-dir $tmp/data"
    fi
    "${pin_server[@]}" bash -c "exec $cmd" >"$tmp/tidings.log" 2>&1 &
    server_pid=$!
    stop_server() {
      kill "$server_pid" 2>/dev/null || true
      wait "$server_pid" 2>/dev/null || true
    }
    wait_for_port "$port" || { cat "$tmp/tidings.log" >&2; exit 1; }
    if ! kill -0 "$server_pid" 2>/dev/null; then
      echo "the hub exited:" >&2
      cat "$tmp/tidings.log" >&2
      exit 1
    fi
    sub_url="http://127.0.0.1:$port/.well-known/mercure?topic=bench"
    pub_url="http://127.0.0.1:$port/.well-known/mercure"
    format=(--pub-format mercure --topic bench)
    ;;
  floor)
    port=${PORT:-18495}
    port_free "$port"
    "${CC:-gcc}" -O2 -Wall -Wextra -o "$tmp/floor" "$root/bench/floor/floor.c" || {
      echo "cannot compile bench/floor/floor.c (set CC to a C compiler)" >&2
      exit 1
    }
    "${pin_server[@]}" "$tmp/floor" "$port" >"$tmp/floor.log" 2>&1 &
    server_pid=$!
    stop_server() {
      kill "$server_pid" 2>/dev/null || true
      wait "$server_pid" 2>/dev/null || true
      # Its count of sends that did not take the whole event (0 expected).
      tail -n 1 "$tmp/floor.log" >&2
    }
    wait_for_port "$port" || { cat "$tmp/floor.log" >&2; exit 1; }
    sub_url="http://127.0.0.1:$port/sub/bench"
    pub_url="http://127.0.0.1:$port/pub/bench"
    format=(--pub-format raw)
    ;;
  *)
    echo "unknown server $server: nchan, tidings or floor" >&2
    exit 2
    ;;
esac
wait_for_port "$port"

label=${LABEL:-$server}
name=$(printf %s "$label" | tr -c 'A-Za-z0-9._+-' '_')
stamp=$(date +%Y%m%d-%H%M%S)
json="$results/$name-$subscribers-subs-$rate-eps-$stamp.json"
"${pin_tool[@]}" "$bin" fanout \
  --label "$label" \
  --sub-url "$sub_url" --pub-url "$pub_url" "${format[@]}" \
  --subscribers "$subscribers" --connect-rate "$connect_rate" \
  --events "$events" --rate "$rate" --payload "$payload" \
  --warmup "$warmup" --drain "$drain" \
  --server-pid "$server_pid" --json "$json" "$@"
ln -sf "$(basename "$json")" "$results/latest-$name.json"
echo "result: $json" >&2
