//! Interop with libtorrent (2.1.x, through its Python bindings): ten libtorrent sessions and ten
//! `dhtkit node` processes form one DHT on loopback, each on its own 127.x.y.z address in its
//! own /24. Then:
//! (a) a libtorrent session announces an infohash and `dhtkit get-peers` finds it;
//! (b) `dhtkit announce` announces one and libtorrent's `dht_get_peers` returns that peer;
//! (c) every query libtorrent sent to a dhtkit node got a valid reply (no error, no silence).
//!
//! libtorrent's flood protection stays on, so dhtkit must be a polite peer.
//! Needs the virtualenv that `.ci/setup-interop` creates (or `DHTKIT_LT_PYTHON`).

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::{dhtkit_announce, dhtkit_finds, dhtkit_nodes, lt_python, wait_for_tables, Harness};
use serde_json::json;

const DHTKIT_NET: u8 = 70;
const LT_NET: u8 = 80;
const NODES: u8 = 10;
const PORT: u16 = 16881;

fn swarm(bootstrap: &str) -> Harness {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/interop/lt_swarm.py");
    let mut cmd = Command::new(lt_python());
    cmd.arg(script)
        .args(["--count", &NODES.to_string(), "--net", &LT_NET.to_string()])
        .args(["--port", &PORT.to_string(), "--bootstrap", bootstrap]);
    let (h, ready) = Harness::start(cmd, Duration::from_secs(60));
    eprintln!("libtorrent {} swarm up", ready["version"]);
    h
}

fn addr(net: u8, i: u8) -> String {
    format!("127.{net}.{i}.1:{PORT}")
}

#[test]
fn libtorrent_and_dhtkit_share_a_dht() {
    // dhtkit nodes first, so that libtorrent's very first queries find them listening. The
    // first one bootstraps through libtorrent only (it retries until libtorrent is up).
    let _nodes = dhtkit_nodes(DHTKIT_NET, NODES, PORT, &addr(LT_NET, 1));
    let mut swarm = swarm(&format!("{},{}", addr(DHTKIT_NET, 1), addr(LT_NET, 1)));

    // libtorrent never keeps its bootstrap routers in its table, so tell every session about a
    // few ordinary nodes of each kind, as a client learns them from its peers.
    let mut known: Vec<String> = (1..=NODES).map(|i| addr(LT_NET, i)).collect();
    known.extend((1..=3).map(|i| addr(DHTKIT_NET, i)));
    swarm.call(
        json!({"cmd": "add_nodes", "addrs": known}),
        Duration::from_secs(10),
    );

    // The network forms: every libtorrent session knows several nodes.
    wait_for_tables(&mut swarm, 5, Duration::from_secs(90), "libtorrent");

    // (a) libtorrent announces, dhtkit finds it.
    let ih_a = "a1a2a3a4a5a6a7a8a9aab1b2b3b4b5b6b7b8b9ba";
    swarm.call(
        json!({"cmd": "announce", "idx": 2, "ih": ih_a, "port": 7001}),
        Duration::from_secs(10),
    );
    let want_a = format!("127.{LT_NET}.3.1:7001");
    let boot = format!("{},{}", addr(DHTKIT_NET, 5), addr(LT_NET, 7));
    assert!(
        dhtkit_finds(ih_a, &want_a, "127.90.1.1:0", &boot, 10),
        "(a) dhtkit get-peers never found the peer libtorrent announced"
    );

    // (b) dhtkit announces, libtorrent finds it.
    let ih_b = "c1c2c3c4c5c6c7c8c9cad1d2d3d4d5d6d7d8d9da";
    let boot_b = format!("{},{}", addr(DHTKIT_NET, 6), addr(LT_NET, 4));
    dhtkit_announce(ih_b, 7002, "127.91.1.1:0", &boot_b, 3);
    let want_b = "127.91.1.1:7002";
    let mut found_b = false;
    for _ in 0..3 {
        let r = swarm.call(
            json!({"cmd": "get_peers", "idx": 6, "ih": ih_b, "want": want_b, "timeout": 20}),
            Duration::from_secs(40),
        );
        if r["found"] == true {
            found_b = true;
            break;
        }
    }
    assert!(
        found_b,
        "(b) libtorrent's dht_get_peers never returned dhtkit's announce"
    );

    // (c) Every query libtorrent sent to a dhtkit node got a valid reply. Make libtorrent
    // busy first: lookups and announces from every session, then let them settle.
    swarm.call(
        json!({"cmd": "traffic", "count": 3}),
        Duration::from_secs(10),
    );
    swarm.call(
        json!({"cmd": "wait", "seconds": 8}),
        Duration::from_secs(30),
    );
    let p = swarm.call(
        json!({"cmd": "packets", "prefix": format!("127.{DHTKIT_NET}."), "settle": 3.0}),
        Duration::from_secs(30),
    );
    eprintln!("(c) {p}");
    assert!(
        p["queries"].as_u64().unwrap() >= 50,
        "libtorrent queried dhtkit nodes: {p}"
    );
    assert_eq!(p["errors"], json!([]), "dhtkit answered with errors: {p}");
    assert_eq!(
        p["invalid"],
        json!([]),
        "dhtkit sent malformed replies: {p}"
    );
    assert_eq!(
        p["unanswered_count"], 0,
        "dhtkit left queries unanswered: {p}"
    );
    assert_eq!(p["queries"], p["replies"]);
    swarm.call(json!({"cmd": "quit"}), Duration::from_secs(10));
}
