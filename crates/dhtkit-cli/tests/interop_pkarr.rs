//! Interop with the real pkarr client (8.1, on mainline 8) over loopback: records published
//! through the DHT are read by `dhtkit get`; records published through `dhtkit node --http`
//! as a relay are resolved by a pkarr client in DHT mode; a stale record gets 409.

mod common;

use std::net::{Ipv4Addr, TcpStream};
use std::time::{Duration, Instant};

use common::{dhtkit_get_json, dhtkit_node_with, Killed};
use pkarr::{Client, Keypair, ResolvePolicy, SignedPacket, Timestamp};
use serde_json::Value;

const NET: u8 = 53;

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Six dhtkit nodes (IPv4 and IPv6), and the relay node with `--http`.
fn network() -> (Vec<Killed>, String) {
    let first = format!("127.{NET}.1.1:16881");
    let mut nodes: Vec<Killed> = (1..=6u16)
        .map(|i| {
            let boot = if i == 1 {
                "127.0.0.1:9".to_string()
            } else {
                first.clone()
            };
            dhtkit_node_with(
                &format!("127.{NET}.{i}.1:16881"),
                &boot,
                &[
                    "--bind",
                    &format!("[::1]:{}", 19880 + i),
                    "--per-ip-rate",
                    "0",
                ],
            )
        })
        .collect();
    nodes.push(dhtkit_node_with(
        &format!("127.{NET}.10.1:16881"),
        &format!("{first},[::1]:19881"),
        &[
            "--bind",
            "[::1]:19899",
            "--per-ip-rate",
            "0",
            "--http",
            &format!("127.{NET}.10.1:18181"),
        ],
    ));
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(format!("127.{NET}.10.1:18181")).is_err() {
        assert!(Instant::now() < deadline, "the relay never listened");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Wait until the relay node knows the network.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let v: Value = ureq::get(&format!("http://127.{NET}.10.1:18181/api/stats"))
            .call()
            .unwrap()
            .into_json()
            .unwrap();
        if v["nodes"].as_u64().unwrap_or(0) >= 6 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the relay node stayed alone: {v}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    (nodes, first)
}

/// A pkarr client in DHT mode only, on its own loopback address.
fn dht_client(host: u8, bootstrap: &str) -> Client {
    Client::builder()
        .no_relays()
        .bootstrap(&[bootstrap])
        .dht(|c| {
            c.bind_address = Some(Ipv4Addr::new(127, NET, host, 1));
            c.port = Some(0);
            c
        })
        .dht_request_timeout(Duration::from_secs(2))
        .build()
        .expect("pkarr DHT client")
}

/// A pkarr client in relay mode only.
fn relay_client() -> Client {
    Client::builder()
        .no_dht()
        .relays(&[format!("http://127.{NET}.10.1:18181")])
        .expect("a relay URL")
        .relay_request_timeout(Duration::from_secs(20))
        .build()
        .expect("pkarr relay client")
}

fn packet(kp: &Keypair, text: &str, ts: Option<u64>) -> SignedPacket {
    let mut b =
        SignedPacket::builder().txt("_dhtkit".try_into().unwrap(), text.try_into().unwrap(), 300);
    if let Some(ts) = ts {
        b = b.timestamp(Timestamp::from(ts));
    }
    b.sign(kp).unwrap()
}

#[test]
fn pkarr_clients_publish_and_resolve_through_dhtkit() {
    let (_nodes, boot) = network();
    let rt = tokio::runtime::Runtime::new().unwrap();

    // 1. A pkarr client in DHT mode publishes; `dhtkit get` reads and verifies the record.
    let kp = Keypair::from_secret_key(&[21u8; 32]);
    let sp = packet(&kp, "published over the DHT", None);
    let publisher = dht_client(20, &boot);
    let stored = rt
        .block_on(publisher.publish(&sp))
        .expect("pkarr publishes to dhtkit nodes");
    assert!(stored >= 3, "stored on {stored} nodes");
    let key = *kp.public_key().as_bytes();
    let target = dhtkit::items::mutable_target(&key, b"").to_hex();
    let v = dhtkit_get_json(&target, &format!("127.{NET}.21.1:0"), &boot);
    // dhtkit checked the signature before printing; it is pkarr's, over pkarr's packet.
    assert_eq!(v["value_hex"], hex(&sp.encoded_packet()), "{v}");
    assert_eq!(v["seq"].as_u64(), Some(sp.timestamp().as_u64()));
    assert_eq!(v["key"], hex(&key));
    assert_eq!(v["sig"], hex(&sp.signature().to_bytes()));
    // The relay serves it too, to a relay-mode client.
    let via_relay = rt
        .block_on(relay_client().resolve(&kp.public_key(), ResolvePolicy::NetworkOnly))
        .expect("the relay resolves a record published over the DHT");
    assert_eq!(via_relay.as_bytes(), sp.as_bytes());

    // 2. A pkarr client in relay mode publishes through `dhtkit node --http`; another pkarr
    // client in DHT mode resolves it.
    let kp2 = Keypair::from_secret_key(&[22u8; 32]);
    let sp2 = packet(&kp2, "published through the relay", None);
    let stored = rt
        .block_on(relay_client().publish(&sp2))
        .expect("the relay takes the record");
    assert!(stored >= 3, "Pkarr-Dht-Stored-Nodes {stored}");
    let resolver = dht_client(22, &boot);
    let got = rt
        .block_on(resolver.resolve(&kp2.public_key(), ResolvePolicy::NetworkOnly))
        .expect("a DHT-mode pkarr client resolves what the relay stored");
    assert_eq!(got.as_bytes(), sp2.as_bytes());

    // 3. A stale record (an older timestamp), from a client with no cache of its own: 409,
    // which pkarr reports as NotMostRecent; the record stays.
    let stale = packet(&kp2, "stale", Some(sp2.timestamp().as_u64() - 1_000_000));
    let err = rt
        .block_on(relay_client().publish(&stale))
        .expect_err("a stale record is refused");
    assert!(
        matches!(err, pkarr::errors::PublishError::NotMostRecent),
        "{err:?}"
    );
    let r = ureq::put(&format!("http://127.{NET}.10.1:18181/{}", kp2.public_key()))
        .send_bytes(&stale.to_relay_payload());
    assert!(matches!(r, Err(ureq::Error::Status(409, _))), "{r:?}");
    let got = rt
        .block_on(dht_client(23, &boot).resolve(&kp2.public_key(), ResolvePolicy::NetworkOnly))
        .unwrap();
    assert_eq!(got.as_bytes(), sp2.as_bytes(), "the newer record stays");
}
