#!/usr/bin/env bash
# A producer in shell: publishes a few stock prices to a running Tidings
# hub with curl, the classic tutorials' "script that POSTs every second".
# The events have the demo's shape (type `price` on
# https://demo.tidings.dev/prices/CURL), so the demo page shows a CURL row.
#
#   bash examples/producer.sh [HUB_URL]        default http://127.0.0.1:8080
#   COUNT=20 INTERVAL=0.5 bash examples/producer.sh
#   TOKEN=<publisher JWT> bash examples/producer.sh https://hub.example
#
# Prints the id the hub gave each event.
set -euo pipefail

hub=${1:-http://127.0.0.1:8080}
count=${COUNT:-5}
interval=${INTERVAL:-1}
auth=()
if [ -n "${TOKEN:-}" ]; then auth=(-H "Authorization: Bearer $TOKEN"); fi

open=10000 # cents
cents=$open
for ((i = 0; i < count; i++)); do
  cents=$((cents + RANDOM % 101 - 50))            # a random walk, in cents
  data=$(awk -v c="$cents" -v o="$open" -v t="$(date +%s)000" 'BEGIN {
    printf "{\"symbol\":\"CURL\",\"name\":\"curl producer\",\"price\":%.2f,\"open\":%.2f,", c / 100, o / 100
    printf "\"change\":%.2f,\"changePct\":%.2f,\"time\":%s}", (c - o) / 100, (c - o) * 100 / o, t
  }')
  # Form encoding, as the Mercure protocol has it; /publish is the same
  # endpoint as /.well-known/mercure.
  curl --fail-with-body --silent --show-error "${auth[@]}" "$hub/publish" \
    --data-urlencode "topic=https://demo.tidings.dev/prices/CURL" \
    --data-urlencode "type=price" \
    --data-urlencode "data=$data"
  echo
  if ((i + 1 < count)); then sleep "$interval"; fi
done
