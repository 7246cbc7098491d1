#!/usr/bin/env bash
# Starts Nchan (nginx + the nchan module) on loopback, as the peer that
# tidings-bench measures side by side with the Tidings hub.
#
#   bench/nchan/run.sh PORT            start it, in the background
#   bench/nchan/run.sh PORT --foreground
#   bench/nchan/run.sh stop DIR        stop the nginx started in DIR
#
# Endpoints (loopback only):
#   GET  http://127.0.0.1:PORT/sub/CHANNEL   EventSource (text/event-stream)
#   POST http://127.0.0.1:PORT/pub/CHANNEL   publish the raw body as the data
#
# Prints two lines on stdout: "dir DIR" (the temp dir holding nginx.conf,
# logs and the pid file) and "pid PID" (the nginx master; its one worker is
# its child, which `tidings-bench --server-pid` counts too).
# Installs the Debian packages nginx and libnginx-mod-nchan when missing
# (needs root). NCHAN_WORKERS overrides the number of workers (default 1),
# NCHAN_SHM the shared memory zone (default 256M).
set -euo pipefail

if [ "${1:-}" = stop ]; then
  dir=${2:?usage: run.sh stop DIR}
  if [ -f "$dir/nginx.pid" ]; then
    pid=$(cat "$dir/nginx.pid")
    kill -QUIT "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  exit 0
fi

port=${1:?usage: run.sh PORT [--foreground]}
foreground=${2:-}
workers=${NCHAN_WORKERS:-1}
shm=${NCHAN_SHM:-256M}

module=/usr/lib/nginx/modules/ngx_nchan_module.so
if ! command -v nginx >/dev/null 2>&1 || [ ! -f "$module" ]; then
  echo "installing nginx and libnginx-mod-nchan" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
    apt-get install -y -qq nginx libnginx-mod-nchan >&2
fi
if [ ! -f "$module" ]; then
  echo "nchan module not found at $module" >&2
  exit 1
fi

# As many files as this shell may open: the hard limit (nginx, started as
# root, could raise it further, but the machine may forbid that).
nofile=$(ulimit -Hn)
[ "$nofile" = unlimited ] && nofile=1048576
ulimit -n "$nofile"
# One connection is two descriptors at most only for proxies; here each
# subscriber is one file, plus a few for logs and the listener.
connections=$(( nofile > 1100 ? nofile - 100 : nofile ))
# With several workers, one accept queue each, filled evenly by the kernel.
reuseport=
[ "$workers" -gt 1 ] && reuseport=reuseport

dir=$(mktemp -d "${TMPDIR:-/tmp}/nchan-bench.XXXXXX")
mkdir -p "$dir/tmp"
cat > "$dir/nginx.conf" <<CONF
load_module $module;
worker_processes $workers;
worker_rlimit_nofile $nofile;
pid $dir/nginx.pid;
error_log $dir/error.log ${NCHAN_LOG_LEVEL:-warn};
daemon $( [ "$foreground" = --foreground ] && echo off || echo on );

events {
  worker_connections $connections;
  multi_accept on;
}

http {
  access_log off;
  client_body_temp_path $dir/tmp/body;
  proxy_temp_path $dir/tmp/proxy;
  fastcgi_temp_path $dir/tmp/fastcgi;
  uwsgi_temp_path $dir/tmp/uwsgi;
  scgi_temp_path $dir/tmp/scgi;
  keepalive_requests 1000000;
  keepalive_timeout 300s;

  # Messages live in one shared-memory zone: room for every event of a long
  # run, kept a few seconds only, since subscribers read them at once.
  nchan_shared_memory_size $shm;

  server {
    listen 127.0.0.1:$port backlog=65535 $reuseport;

    location ~ ^/sub/(\w+)\$ {
      nchan_subscriber eventsource;
      nchan_channel_id \$1;
      nchan_subscriber_first_message newest;
      nchan_subscriber_timeout 0;
    }

    location ~ ^/pub/(\w+)\$ {
      nchan_publisher;
      nchan_channel_id \$1;
      nchan_message_buffer_length 100;
      nchan_message_timeout 30s;
      client_max_body_size 16m;
      client_body_buffer_size 64k;
    }
  }
}
CONF

echo "dir $dir"
if [ "$foreground" = --foreground ]; then
  echo "pid $$"
  exec nginx -c "$dir/nginx.conf" -p "$dir"
fi
nginx -c "$dir/nginx.conf" -p "$dir"
for _ in $(seq 1 50); do
  [ -s "$dir/nginx.pid" ] && break
  sleep 0.1
done
if [ ! -s "$dir/nginx.pid" ]; then
  echo "nginx did not start; see $dir/error.log" >&2
  cat "$dir/error.log" >&2 || true
  exit 1
fi
echo "pid $(cat "$dir/nginx.pid")"
