#!/usr/bin/env bash
# A/B of two dhtkit builds answering queries at a fixed rate, alternating, so that a noisy box
# hits both alike. Each run starts `BIN node` (limits lifted) on its own loopback address and
# loads it with `dhtkit-load rate`; one JSON line per run.
#
# usage: bench/ab.sh NEW_BIN OLD_BIN [ROUNDS] [SECONDS] [RATE]
#   defaults: 3 rounds of 8 s at 5,000 queries/s
# Build an old commit with, for example:
#   git worktree add /tmp/old COMMIT && (cd /tmp/old && CARGO_TARGET_DIR=/tmp/old-target \
#     cargo build --release -p dhtkit-cli --bin dhtkit)
set -euo pipefail
cd "$(dirname "$0")/.."
new=${1:?NEW_BIN}
old=${2:?OLD_BIN}
rounds=${3:-3}
secs=${4:-8}
rate=${5:-5000}
cargo build --release -q -p dhtkit-load --bin dhtkit-load
load=target/release/dhtkit-load

run() { # name bin net
  local name=$1 bin=$2 net=$3
  "$bin" node --bind "127.$net.0.1:6881" --bootstrap "127.$net.0.2:6881" \
    --per-ip-rate 0 --reply-rate 0 > /dev/null 2>&1 &
  local pid=$!
  sleep 1.5
  echo "$name $($load rate --target "127.$net.0.1:6881" --pid "$pid" --rate "$rate" \
    --sources 8 --duration "$secs" --net $((net + 2)))"
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

for _ in $(seq 1 "$rounds"); do
  run new "$new" 150
  run old "$old" 155
done
