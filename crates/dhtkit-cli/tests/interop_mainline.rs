//! Interop with the `mainline` crate (8.0.1): five mainline nodes in server mode and five
//! `dhtkit node` processes on loopback, each on its own 127.x.y.z address. Then:
//! (a) a mainline node announces an infohash and `dhtkit get-peers` finds it;
//! (b) `dhtkit announce` announces one and mainline's `get_peers` returns that peer.
//! mainline drops any KRPC message whose transaction id is not exactly 4 bytes; dhtkit's are.
//! A second test puts a fresh dhtkit node in a DHT of libtorrent sessions (through its Python
//! bindings, as `.ci/setup-interop` installs them) and mainline nodes, and checks that a
//! mainline announce next to its id reaches it.

mod common;

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use common::{dhtkit_announce, dhtkit_finds, dhtkit_nodes};

const DHTKIT_NET: u8 = 72;
const ML_NET: u8 = 110;
const NODES: u8 = 5;
const PORT: u16 = 16881;

fn addr(net: u8, i: u8) -> String {
    format!("127.{net}.{i}.1:{PORT}")
}

fn mainline_node(i: u8, bootstrap: &[String]) -> mainline::Dht {
    mainline::Dht::builder()
        .bind_address(Ipv4Addr::new(127, ML_NET, i, 1))
        .port(PORT)
        .bootstrap(bootstrap)
        .server_mode()
        .build()
        .expect("mainline binds on loopback")
}

#[test]
fn mainline_and_dhtkit_share_a_dht() {
    let _nodes = dhtkit_nodes(DHTKIT_NET, NODES, PORT, &addr(ML_NET, 1));
    let boot: Vec<String> = (1..=NODES)
        .map(|i| addr(DHTKIT_NET, i))
        .chain((1..=NODES).map(|i| addr(ML_NET, i)))
        .collect();
    let ml: Vec<mainline::Dht> = (1..=NODES).map(|i| mainline_node(i, &boot)).collect();
    // mainline's bootstrap check is one find_node for its own id that must turn up nodes; the
    // first ones can run before the dhtkit nodes know each other, so ask again (bounded).
    for (i, d) in ml.iter().enumerate() {
        #[allow(deprecated)]
        let ok = (0..10).any(|_| {
            d.bootstrapped() || {
                std::thread::sleep(Duration::from_millis(500));
                false
            }
        });
        assert!(ok, "mainline node {i} bootstrapped");
    }

    // (a) mainline announces, dhtkit finds it.
    let ih_a = "b1b2b3b4b5b6b7b8b9bac1c2c3c4c5c6c7c8c9ca";
    #[allow(deprecated)]
    ml[1]
        .announce_peer(ih_a.parse().unwrap(), Some(7201))
        .expect("mainline announce succeeds");
    let want_a = format!("127.{ML_NET}.2.1:7201");
    assert!(
        dhtkit_finds(ih_a, &want_a, "127.95.1.1:0", &addr(DHTKIT_NET, 2), 5),
        "(a) dhtkit get-peers never found the peer mainline announced"
    );

    // (b) dhtkit announces, mainline finds it.
    let ih_b = "d1d2d3d4d5d6d7d8d9dae1e2e3e4e5e6e7e8e9ea";
    let boot_b = format!("{},{}", addr(DHTKIT_NET, 3), addr(ML_NET, 3));
    dhtkit_announce(ih_b, 7202, "127.96.1.1:0", &boot_b, 3);
    let want_b = SocketAddrV4::new(Ipv4Addr::new(127, 96, 1, 1), 7202);
    let mut found = false;
    for _ in 0..3 {
        #[allow(deprecated)]
        let peers = ml[4].get_peers(ih_b.parse().unwrap());
        found = peers.flatten().any(|p| p == want_b);
        if found {
            break;
        }
        std::thread::sleep(Duration::from_secs(2));
    }
    assert!(
        found,
        "(b) mainline's get_peers never returned dhtkit's announce"
    );
}

/// Starts `dhtkit node --events` and returns it with its id (from the listening line) and a
/// channel of its event lines.
fn fresh_dhtkit(
    bind: &str,
    bootstrap: &str,
) -> (common::Killed, String, std::sync::mpsc::Receiver<String>) {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let mut child = common::dhtkit()
        .args(["node", "--events", "--bind", bind, "--bootstrap", bootstrap])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    out.read_line(&mut first).unwrap();
    let v: serde_json::Value = serde_json::from_str(&first).unwrap();
    let id = v["id"].as_str().unwrap().to_string();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in out.lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    (common::Killed(child), id, rx)
}

/// The defect from issue 9: on a DHT of libtorrent sessions and `mainline` nodes, a dhtkit
/// node that joined seconds ago never received a `mainline` announce for an infohash next to
/// its id, while a fresh libtorrent session in its place did (within 20 s here; not within
/// 5). Neither kind of neighbour keeps a node that only queried it: `mainline` adds only nodes
/// that answer its own queries, and libtorrent had not checked the newcomer 40 s later. A
/// fresh libtorrent node refreshes all its buckets; a fresh dhtkit node used to look up its
/// own id only, so nobody handed it out. It now refreshes every bucket after its first
/// bootstrap. Without that, this test fails (four runs of four); with it, it passes.
#[test]
fn a_fresh_dhtkit_node_receives_mainline_announces_next_to_its_id() {
    const NET: u8 = 112;
    const LT: u8 = 113;
    let a = |net: u8, i: u8| format!("127.{net}.{i}.1:{PORT}");
    let script =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/interop/lt_swarm.py");
    let mut cmd = std::process::Command::new(common::lt_python());
    cmd.arg(script)
        .args([
            "--count",
            "6",
            "--net",
            &LT.to_string(),
            "--port",
            &PORT.to_string(),
        ])
        .args(["--bootstrap", &format!("{},{}", a(NET, 1), a(LT, 1))]);
    let (mut swarm, _) = common::Harness::start(cmd, Duration::from_secs(60));
    let boot: Vec<String> = (1..=6)
        .map(|i| a(LT, i))
        .chain((1..=4).map(|i| a(NET, i)))
        .collect();
    let ml: Vec<mainline::Dht> = (1..=4)
        .map(|i| {
            mainline::Dht::builder()
                .bind_address(Ipv4Addr::new(127, NET, i, 1))
                .port(PORT)
                .bootstrap(&boot)
                .server_mode()
                .build()
                .expect("mainline binds on loopback")
        })
        .collect();
    swarm.call(
        serde_json::json!({"cmd": "add_nodes", "addrs": boot}),
        Duration::from_secs(10),
    );
    common::wait_for_tables(&mut swarm, 4, Duration::from_secs(90), "libtorrent");
    for d in &ml {
        #[allow(deprecated)]
        let _ = (0..10).any(|_| {
            d.bootstrapped() || {
                std::thread::sleep(Duration::from_millis(500));
                false
            }
        });
    }
    // A fresh dhtkit node joins through one libtorrent session; five seconds later a
    // mainline node announces an infohash next to its id (the last byte flipped).
    let (_fresh, id, events) = fresh_dhtkit("127.75.1.1:16881", &a(LT, 2));
    swarm.call(
        serde_json::json!({"cmd": "wait", "seconds": 5}),
        Duration::from_secs(20),
    );
    let mut ih = id.clone();
    let last = u8::from_str_radix(&ih[38..], 16).unwrap() ^ 1;
    ih.replace_range(38.., &format!("{last:02x}"));
    #[allow(deprecated)]
    ml[3]
        .announce_peer(ih.parse().unwrap(), Some(7301))
        .expect("mainline announce succeeds");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut got = false;
    while !got && std::time::Instant::now() < deadline {
        match events.recv_timeout(Duration::from_millis(200)) {
            Ok(l) => got = l.contains("\"announce_peer\"") && l.contains(&ih),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(_) => break,
        }
    }
    swarm.call(serde_json::json!({"cmd": "quit"}), Duration::from_secs(10));
    assert!(
        got,
        "the fresh dhtkit node never received mainline's announce for {ih}"
    );
}
