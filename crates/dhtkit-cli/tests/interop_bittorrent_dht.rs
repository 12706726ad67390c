//! Interop with npm `bittorrent-dht` (11.x, on the machine's Node.js): five bittorrent-dht nodes
//! and five `dhtkit node` processes on loopback, each on its own 127.x.y.z address. Then:
//! (a) a bittorrent-dht node announces an infohash and `dhtkit get-peers` finds it;
//! (b) `dhtkit announce` announces one and bittorrent-dht's `lookup` finds that peer.
//! bittorrent-dht uses 2-byte transaction ids; dhtkit uses 4-byte ones and echoes any length.
//! Needs `npm ci` in tests/interop/js (`.ci/setup-interop` does it).

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::{dhtkit_announce, dhtkit_finds, dhtkit_nodes, wait_for_tables, Harness};
use serde_json::json;

const DHTKIT_NET: u8 = 71;
const BT_NET: u8 = 100;
const NODES: u8 = 5;
const PORT: u16 = 16881;

fn addr(net: u8, i: u8) -> String {
    format!("127.{net}.{i}.1:{PORT}")
}

fn swarm(bootstrap: &str) -> Harness {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/interop/js");
    assert!(
        dir.join("node_modules/bittorrent-dht").exists(),
        "npm bittorrent-dht is missing: run `bash .ci/setup-interop`"
    );
    let mut cmd = Command::new("node");
    cmd.arg(dir.join("bt_swarm.mjs"))
        .args(["--count", &NODES.to_string(), "--net", &BT_NET.to_string()])
        .args(["--port", &PORT.to_string(), "--bootstrap", bootstrap]);
    Harness::start(cmd, Duration::from_secs(60)).0
}

#[test]
fn bittorrent_dht_and_dhtkit_share_a_dht() {
    let _nodes = dhtkit_nodes(DHTKIT_NET, NODES, PORT, &addr(BT_NET, 1));
    let boot: Vec<String> = (1..=NODES)
        .map(|i| addr(DHTKIT_NET, i))
        .chain((1..=NODES).map(|i| addr(BT_NET, i)))
        .collect();
    let mut swarm = swarm(&boot.join(","));

    wait_for_tables(&mut swarm, 4, Duration::from_secs(60), "bittorrent-dht");

    // (a) bittorrent-dht announces, dhtkit finds it.
    let ih_a = "e1e2e3e4e5e6e7e8e9eaf1f2f3f4f5f6f7f8f9fa";
    let r = swarm.call(
        json!({"cmd": "announce", "idx": 1, "ih": ih_a, "port": 7101}),
        Duration::from_secs(60),
    );
    assert_eq!(r["ok"], true, "{r}");
    let want_a = format!("127.{BT_NET}.2.1:7101");
    assert!(
        dhtkit_finds(ih_a, &want_a, "127.92.1.1:0", &addr(DHTKIT_NET, 3), 5),
        "(a) dhtkit get-peers never found the peer bittorrent-dht announced"
    );

    // (b) dhtkit announces, bittorrent-dht finds it.
    let ih_b = "0a0b0c0d0e0f101112131415161718191a1b1c1d";
    let boot_b = format!("{},{}", addr(DHTKIT_NET, 4), addr(BT_NET, 3));
    dhtkit_announce(ih_b, 7102, "127.93.1.1:0", &boot_b, 3);
    let r = swarm.call(
        json!({"cmd": "lookup", "idx": 4, "ih": ih_b, "want": "127.93.1.1:7102", "timeout": 20}),
        Duration::from_secs(60),
    );
    assert_eq!(
        r["found"], true,
        "(b) bittorrent-dht's lookup did not return dhtkit's announce: {r}"
    );
    swarm.call(json!({"cmd": "quit"}), Duration::from_secs(10));
}
