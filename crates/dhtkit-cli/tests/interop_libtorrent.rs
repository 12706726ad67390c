//! Interop with libtorrent (2.1.x, through its Python bindings): ten libtorrent sessions and ten
//! `dhtkit node` processes form one DHT on loopback, each on its own 127.x.y.z address in its
//! own /24. Then:
//! (a) a libtorrent session announces an infohash and `dhtkit get-peers` finds it;
//! (b) `dhtkit announce` announces one and libtorrent's `dht_get_peers` returns that peer;
//! (c) every query libtorrent sent to a dhtkit node got a valid reply (no error, no silence);
//! (d) BEP 44: an immutable item and a salted mutable one put by each side are read back by
//!     the other, at the right seq; BEP 51: each side samples the other's nodes;
//! and, in a second test, the same announce and find both ways over IPv6 on ::1 (BEP 32:
//! lookups there run on `nodes6`, peers are 18-byte compact entries).
//!
//! libtorrent's flood protection stays on, so dhtkit must be a polite peer.
//! Needs the virtualenv that `.ci/setup-interop` creates (or `DHTKIT_LT_PYTHON`).

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::{
    dhtkit_announce, dhtkit_finds, dhtkit_node_with, dhtkit_nodes, lt_python, wait_for_tables,
    Harness,
};
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

    // (d) BEP 44 both ways, and BEP 51 both ways.
    items_and_samples(
        &mut swarm,
        &format!("{},{}", addr(DHTKIT_NET, 2), addr(LT_NET, 5)),
    );

    // (c) Every query libtorrent sent to a dhtkit node got a valid reply (BEP 44 get and put
    // included, from (d)). Make libtorrent
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

/// Runs `dhtkit ARGS --bind BIND --bootstrap BOOT --timeout 20`; returns (exit, stdout, stderr).
fn dhtkit_run(args: &[&str], bind: &str, boot: &str) -> (i32, String, String) {
    let out = common::dhtkit()
        .args(args)
        .args(["--bind", bind, "--bootstrap", boot, "--timeout", "20"])
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn items_and_samples(swarm: &mut Harness, boot: &str) {
    let t = Duration::from_secs(60);
    // libtorrent puts an immutable item; dhtkit reads it.
    let r = swarm.call(
        json!({"cmd": "put_immutable", "idx": 1, "value": "from libtorrent"}),
        t,
    );
    eprintln!("(d) libtorrent put immutable: {r}");
    let target = r["target"].as_str().unwrap().to_string();
    assert!(r["stored"].as_u64().unwrap() >= 1, "{r}");
    let (code, out, err) = dhtkit_run(&["get", &target], "127.92.1.1:0", boot);
    assert_eq!((code, out.trim()), (0, "from libtorrent"), "{err}");

    // dhtkit puts an immutable item; libtorrent reads it.
    let (code, out, err) = dhtkit_run(&["put", "from dhtkit"], "127.92.2.1:0", boot);
    assert_eq!(code, 0, "{err}");
    let target = out.lines().next().unwrap().to_string();
    let r = swarm.call(
        json!({"cmd": "get_immutable", "idx": 8, "target": target, "timeout": 20}),
        t,
    );
    assert_eq!(r["value"], "from dhtkit", "(d) libtorrent's get: {r}");

    // A key for both sides: dhtkit keygen writes the seed and prints the public key.
    let dir = std::env::temp_dir().join(format!("dhtkit-lt-bep44-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("key");
    let _ = std::fs::remove_file(&key);
    let out = common::dhtkit()
        .args(["keygen", key.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success());
    let public = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let seed = std::fs::read_to_string(&key).unwrap().trim().to_string();

    // libtorrent puts a salted mutable item (seq 1); dhtkit reads it with its seq.
    let r = swarm.call(
        json!({"cmd": "put_mutable", "idx": 2, "seed": seed, "public": public,
               "value": "lt v1", "salt": "interop"}),
        t,
    );
    eprintln!("(d) libtorrent put mutable: {r}");
    assert!(r["stored"].as_u64().unwrap() >= 1, "{r}");
    let lt_seq = r["seq"].as_i64().unwrap();
    let target = {
        let (code, out, err) = dhtkit_run(
            &[
                "get",
                "--salt",
                "interop",
                "--json",
                &mutable_target(&public, "interop"),
            ],
            "127.92.3.1:0",
            boot,
        );
        assert_eq!(code, 0, "{err}");
        let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        assert_eq!(
            (v["value"].as_str(), v["seq"].as_i64()),
            (Some("lt v1"), Some(lt_seq)),
            "{v}"
        );
        assert_eq!(v["key"], public.as_str());
        v["target"].as_str().unwrap().to_string()
    };

    // dhtkit puts the next version (it reads seq 1 and puts seq 2 with cas); libtorrent
    // reads seq 2.
    let (code, out, err) = dhtkit_run(
        &[
            "put",
            "dhtkit v2",
            "--key",
            key.to_str().unwrap(),
            "--salt",
            "interop",
            "--json",
        ],
        "127.92.4.1:0",
        boot,
    );
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(
        (v["target"].as_str(), v["seq"].as_i64()),
        (Some(target.as_str()), Some(lt_seq + 1)),
        "{v}"
    );
    let r = swarm.call(
        json!({"cmd": "get_mutable", "idx": 7, "public": public, "salt": "interop", "timeout": 20}),
        t,
    );
    assert_eq!(
        (r["value"].as_str(), r["seq"].as_i64()),
        (Some("dhtkit v2"), Some(lt_seq + 1)),
        "(d) libtorrent's get_mutable: {r}"
    );

    // BEP 33: three libtorrent sessions announce as seeds and two as leechers, and two
    // dhtkit one-shots as leechers (each from its own IP); dhtkit scrape counts them from the
    // filters of the libtorrent and dhtkit nodes that store them. Filters built differently
    // by the two would not merge into the exact counts.
    let ih_s = "5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c";
    for (idx, seed) in [(3, true), (4, true), (5, true), (6, false), (7, false)] {
        swarm.call(
            json!({"cmd": "announce", "idx": idx, "ih": ih_s, "port": 7100 + idx, "seed": seed}),
            t,
        );
    }
    for (i, bind) in ["127.94.1.1:0", "127.94.2.1:0"].iter().enumerate() {
        let (code, _, err) = dhtkit_run(
            &["announce", ih_s, "--port", &(7200 + i).to_string()],
            bind,
            boot,
        );
        assert_eq!(code, 0, "{err}");
    }
    // libtorrent's announces run in the background: scrape until all are counted (bounded).
    let mut v = serde_json::Value::Null;
    for attempt in 0..8 {
        swarm.call(json!({"cmd": "wait", "seconds": 3}), t);
        let bind = format!("127.94.{}.1:0", 10 + attempt);
        let (code, out, err) = dhtkit_run(&["scrape", ih_s, "--json"], &bind, boot);
        assert_eq!(code, 0, "{err}");
        v = serde_json::from_str(out.trim()).unwrap();
        eprintln!("(d) dhtkit scrape: {v}");
        if v["seeds"].as_u64() >= Some(3) && v["peers"].as_u64() >= Some(4) {
            break;
        }
    }
    assert_eq!(
        (v["seeds"].as_u64(), v["peers"].as_u64()),
        (Some(3), Some(4)),
        "{v}"
    );

    // BEP 51: dhtkit samples libtorrent nodes, libtorrent samples dhtkit nodes. Between them
    // the nodes hold the infohashes announced in (a) and (b).
    let announced = [
        "a1a2a3a4a5a6a7a8a9aab1b2b3b4b5b6b7b8b9ba",
        "c1c2c3c4c5c6c7c8c9cad1d2d3d4d5d6d7d8d9da",
    ];
    let mut from_lt = Vec::new();
    for i in 1..=NODES {
        let (code, out, err) = dhtkit_run(
            &["sample", &addr(LT_NET, i), "--json"],
            &format!("127.93.{i}.1:0"),
            boot,
        );
        assert_eq!(code, 0, "{err}");
        let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        for s in v["samples"].as_array().unwrap() {
            from_lt.push(s.as_str().unwrap().to_string());
        }
    }
    eprintln!("(d) dhtkit sampled from libtorrent: {from_lt:?}");
    assert!(
        announced.iter().any(|a| from_lt.iter().any(|s| s == a)),
        "libtorrent's samples hold an announced infohash"
    );
    let mut from_dhtkit = Vec::new();
    for i in 1..=NODES {
        let r = swarm.call(
            json!({"cmd": "sample", "idx": (i as usize) % 10, "addr": addr(DHTKIT_NET, i), "timeout": 10}),
            t,
        );
        assert!(
            r["samples"].is_array(),
            "libtorrent got no BEP 51 answer: {r}"
        );
        assert!(r["interval"].as_f64().unwrap() > 0.0, "{r}");
        for s in r["samples"].as_array().unwrap() {
            from_dhtkit.push(s.as_str().unwrap().to_string());
        }
    }
    eprintln!("(d) libtorrent sampled from dhtkit: {from_dhtkit:?}");
    assert!(
        announced.iter().any(|a| from_dhtkit.iter().any(|s| s == a)),
        "dhtkit's samples hold an announced infohash"
    );
}

/// The target of a mutable item: SHA-1 of the public key (hex) and the salt.
fn mutable_target(public_hex: &str, salt: &str) -> String {
    let key: Vec<u8> = (0..public_hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&public_hex[i..i + 2], 16).unwrap())
        .collect();
    let key: [u8; 32] = key.try_into().expect("a 32-byte public key");
    dhtkit::items::mutable_target(&key, salt.as_bytes()).to_hex()
}

#[test]
fn libtorrent_and_dhtkit_over_ipv6() {
    // Everyone on ::1 (the one IPv6 loopback address), so both sides lift one node per IP
    // and their per-IP limits, as libtorrent's own test networks do.
    const LT6: u16 = 26880;
    const DK6: u16 = 26980;
    let lt1 = format!("[::1]:{}", LT6 + 1);
    let dk1 = format!("[::1]:{}", DK6 + 1);
    let extra = ["--per-ip-rate", "0", "--allow-shared-ips"];
    let _nodes: Vec<_> = (1..=4)
        .map(|i| {
            let boot = if i == 1 {
                lt1.clone()
            } else {
                format!("{lt1},{dk1}")
            };
            dhtkit_node_with(&format!("[::1]:{}", DK6 + i), &boot, &extra)
        })
        .collect();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/interop/lt_swarm.py");
    let mut cmd = Command::new(lt_python());
    cmd.arg(script)
        .args(["--count", "4", "--ipv6", "--port", &LT6.to_string()])
        .args(["--bootstrap", &format!("{dk1},{lt1}")]);
    let (mut swarm, _) = Harness::start(cmd, Duration::from_secs(60));
    let mut known: Vec<String> = (1..=4).map(|i| format!("[::1]:{}", LT6 + i)).collect();
    known.extend((1..=2).map(|i| format!("[::1]:{}", DK6 + i)));
    swarm.call(
        json!({"cmd": "add_nodes", "addrs": known}),
        Duration::from_secs(10),
    );
    wait_for_tables(&mut swarm, 3, Duration::from_secs(90), "libtorrent (IPv6)");
    let boot = format!("[::1]:{},[::1]:{}", DK6 + 2, LT6 + 3);

    // libtorrent announces an IPv6 peer; dhtkit finds it.
    let ih = "6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a";
    swarm.call(
        json!({"cmd": "announce", "idx": 1, "ih": ih, "port": 7601}),
        Duration::from_secs(10),
    );
    let mut found = false;
    for _ in 0..5 {
        let out = common::dhtkit()
            .args(["get-peers", ih, "--bind", "[::1]:0", "--allow-shared-ips"])
            .args(["--bootstrap", &boot, "--timeout", "15"])
            .output()
            .unwrap();
        if String::from_utf8_lossy(&out.stdout)
            .lines()
            .any(|l| l.trim() == "[::1]:7601")
        {
            found = true;
            break;
        }
        std::thread::sleep(Duration::from_secs(2));
    }
    assert!(found, "dhtkit found libtorrent's IPv6 peer");

    // dhtkit announces over IPv6; libtorrent finds the peer.
    let ih2 = "6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b";
    let out = common::dhtkit()
        .args([
            "announce",
            ih2,
            "--port",
            "7602",
            "--json",
            "--allow-shared-ips",
        ])
        .args(["--bind", "[::1]:0", "--bootstrap", &boot, "--timeout", "20"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["announced"].as_u64().unwrap() >= 2, "{v}");
    assert!(v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .all(|n| n["addr"].as_str().unwrap().starts_with("[::1]")));
    let mut lt_found = false;
    for _ in 0..3 {
        let r = swarm.call(
            json!({"cmd": "get_peers", "idx": 3, "ih": ih2, "want": "[::1]:7602", "timeout": 20}),
            Duration::from_secs(40),
        );
        eprintln!("libtorrent get_peers over IPv6: {r}");
        if r["found"] == true {
            lt_found = true;
            break;
        }
    }
    assert!(lt_found, "libtorrent found dhtkit's IPv6 announce");
    swarm.call(json!({"cmd": "quit"}), Duration::from_secs(10));
}
