#!/usr/bin/env bash
# The npm package beside npm bittorrent-dht, both in Node.js processes on loopback, in one
# run: replies per CPU-second under dhtkit-load (saturate and a fixed rate, as bench/load.sh),
# then get_peers time on a loopback network of each kind (bench/lookups.mjs). The `dhtkit node`
# command (limits lifted the same way) is loaded too, as the baseline of the addon's cost.
# Needs `npm ci && npm run build` in bindings/node first.
# usage: bindings/node/bench/node.sh [SECONDS] [RATE] [NODES] [LOOKUPS]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
secs=${1:-10}
rate=${2:-5000}
nodes=${3:-48}
lookups=${4:-40}
(cd "$root" && cargo build --release -q -p dhtkit-load -p dhtkit-cli --bin dhtkit-load --bin dhtkit)
load=$root/target/release/dhtkit-load

run_target() { # name net
  local name=$1 net=$2
  if [ "$name" = cli ]; then
    # shellcheck disable=SC2016
    sh -c 'echo $$; exec "$0" node --bind "$1" --bootstrap "$2" --per-ip-rate 0 --reply-rate 0' \
      "$root/target/release/dhtkit" "127.$net.0.1:6881" "127.$net.0.2:6881" > /tmp/dhtkit-node-target.out 2>/dev/null &
  else
    node "$here/target.mjs" "$name" "127.$net.0.1" 6881 > /tmp/dhtkit-node-target.out 2>/dev/null &
  fi
  local launcher=$!
  sleep 2
  local pid
  pid=$(head -n 1 /tmp/dhtkit-node-target.out)
  echo "== $name (pid $pid)"
  echo "saturate $($load saturate --target "127.$net.0.1:6881" --pid "$pid" --sources 8 --outstanding 16 --duration "$secs" --net $((net + 1)))"
  echo "rate     $($load rate --target "127.$net.0.1:6881" --pid "$pid" --rate "$rate" --sources 8 --duration "$secs" --net $((net + 2)))"
  kill "$launcher" 2>/dev/null || true
  wait "$launcher" 2>/dev/null || true
}

run_target dhtkit 210
run_target bittorrent-dht 220
run_target cli 250
echo "== get_peers on a loopback network of $nodes nodes, $lookups lookups"
node "$here/lookups.mjs" dhtkit "$nodes" "$lookups" 230
node "$here/lookups.mjs" bittorrent-dht "$nodes" "$lookups" 240
