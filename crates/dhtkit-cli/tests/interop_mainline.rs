//! Interop with the `mainline` crate (8.0.1): five mainline nodes in server mode and five
//! `dhtkit node` processes on loopback, each on its own 127.x.y.z address. Then:
//! (a) a mainline node announces an infohash and `dhtkit get-peers` finds it;
//! (b) `dhtkit announce` announces one and mainline's `get_peers` returns that peer.
//! mainline drops any KRPC message whose transaction id is not exactly 4 bytes; dhtkit's are.

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
