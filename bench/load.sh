#!/usr/bin/env bash
# Load test of running DHT nodes on loopback, side by side in one run: dhtkit (limits lifted
# with --per-ip-rate 0 --reply-rate 0), libtorrent 2.1.1 (Python bindings, limits raised),
# the `mainline` crate 8.0.1, npm bittorrent-dht, and a fixed-reply responder (the ceiling).
# Each target gets its own 127.x address; dhtkit-load measures replies/s, loss, latency and
# the target's CPU seconds. Needs `bash .ci/setup-interop` (or ./test) once.
#
# usage: bench/load.sh [SECONDS] [RATE]
#   SECONDS: length of each run (default 10); RATE: the fixed offered rate (default 5000/s)
# DHTKIT_BEFORE="command" adds another target, run as `command 127.155.0.1:6881`: it must bind
# that address and print its pid first (BENCHMARKS.md used an older dhtkit built with a small
# example that lifts its per-IP limit through the library, as that version had no flag).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
rate=${2:-5000}
cargo build --release -q -p dhtkit-cli -p dhtkit-load --bin dhtkit --bin dhtkit-load \
  --example fixed_reply --example mainline_node
bin=target/release
py=.ci/venv/bin/python
js=crates/dhtkit-cli/tests/interop/js

run_target() { # name net command...
  local name=$1 net=$2; shift 2
  "$@" > /tmp/dhtkit-load-target.out 2>/dev/null &
  local launcher=$!
  sleep 2
  local pid
  pid=$(head -n 1 /tmp/dhtkit-load-target.out 2>/dev/null | grep -E '^[0-9]+$' || echo "$launcher")
  local target="127.$net.0.1:6881"
  echo "== $name (pid $pid)"
  echo "saturate $($bin/dhtkit-load saturate --target "$target" --pid "$pid" --sources 8 --outstanding 16 --duration "$secs" --net $((net + 1)))"
  echo "rate     $($bin/dhtkit-load rate --target "$target" --pid "$pid" --rate "$rate" --sources 8 --duration "$secs" --net $((net + 2)))"
  kill "$pid" "$launcher" 2>/dev/null || true
  wait "$launcher" 2>/dev/null || true
}

run_target dhtkit 150 $bin/dhtkit node --bind 127.150.0.1:6881 --bootstrap 127.150.0.2:6881 \
  --per-ip-rate 0 --reply-rate 0
if [ -n "${DHTKIT_BEFORE:-}" ]; then
  # shellcheck disable=SC2086
  run_target dhtkit-before 155 $DHTKIT_BEFORE 127.155.0.1:6881
fi
run_target libtorrent 160 $py bench/lt_node.py 127.160.0.1 6881
run_target mainline 170 $bin/examples/mainline_node 127.170.0.1 6881
run_target bittorrent-dht 180 node "$js/bt_node.mjs" 127.180.0.1 6881
run_target fixed-reply 190 $bin/examples/fixed_reply 127.190.0.1:6881
