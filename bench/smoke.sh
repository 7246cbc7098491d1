#!/usr/bin/env bash
# The load generator against the real hub, small: what CI runs of the
# benchmarks. 500 subscribers, 40 events at 20/s, through bench/fanout.sh
# (the same script and pinning as the measured runs); fails unless every
# subscriber connected and got every event exactly once, in order.
#
#   bench/smoke.sh            with target/release binaries
#   PROFILE=ci bench/smoke.sh with the binaries scripts/test-all builds
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
target_dir=${CARGO_TARGET_DIR:-$root/target}/${PROFILE:-release}
[ -x "$target_dir/tidings" ] && [ -x "$target_dir/tidings-bench" ] || {
  echo "build first: cargo build --profile ${PROFILE:-release} -p tidings -p tidings-bench" >&2
  exit 1
}
results=$(mktemp -d "${TMPDIR:-/tmp}/tidings-smoke.XXXXXX")
trap 'rm -rf "$results"' EXIT
data=$results/data

RESULTS=$results BENCH_BIN=$target_dir/tidings-bench PORT=${PORT:-18485} \
  SUBSCRIBERS=500 RATE=20 EVENTS=40 WARMUP=1 DRAIN=5 \
  TIDINGS_CMD="$target_dir/tidings serve --listen 127.0.0.1:\$PORT --data-dir $data --log warn" \
  bench/fanout.sh tidings

python3 - "$results/$(readlink "$results/latest-tidings.json")" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
c, p, d = r["connect"], r["publish"], r["delivery"]
problems = []
if c["connected"] != 500 or c["failed"]:
    problems.append(f"connected {c['connected']} of 500, failed {c['failed']}: {c['errors']}")
if p["ok"] != 40 or p["failed"]:
    problems.append(f"published {p['ok']} of 40: {p['errors']}")
if d["delivered"] != d["expected"] or d["expected"] != 500 * 40:
    problems.append(f"delivered {d['delivered']} of {d['expected']}")
for key in ("duplicates", "out_of_order", "foreign", "unrecognized", "out_of_range", "dropped"):
    if d.get(key):
        problems.append(f"{key}: {d[key]}")
if problems:
    sys.exit("load generator smoke failed: " + "; ".join(problems))
print("load generator smoke: 500 subscribers, 40 events, all delivered once and in order")
PY
