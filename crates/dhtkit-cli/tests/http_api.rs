//! `dhtkit node --http`: the JSON API and the pkarr relay protocol, over real HTTP, against a
//! dual-stack loopback network of dhtkit nodes.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{dhtkit, dhtkit_get_json, dhtkit_node_with, Killed};
use serde_json::{json, Value};

/// A response: status, headers (lower-case names) and body.
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "status {} body is not JSON ({e}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(60))
        .build()
}

/// One request; any status is returned, not turned into an error.
fn call(method: &str, url: &str, headers: &[(&str, &str)], body: Option<&[u8]>) -> Resp {
    let mut req = agent().request(method, url);
    for (n, v) in headers {
        req = req.set(n, v);
    }
    let r = match body {
        Some(b) => req.send_bytes(b),
        None => req.call(),
    };
    let r = match r {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{method} {url}: {e}"),
    };
    let status = r.status();
    let headers = r
        .headers_names()
        .into_iter()
        .map(|n| {
            let v = r.header(&n).unwrap_or_default().to_string();
            (n.to_ascii_lowercase(), v)
        })
        .collect();
    let mut body = Vec::new();
    r.into_reader()
        .take(1 << 20)
        .read_to_end(&mut body)
        .unwrap();
    Resp {
        status,
        headers,
        body,
    }
}

fn get(url: &str) -> Resp {
    call("GET", url, &[], None)
}

fn post(url: &str, v: &Value) -> Resp {
    call(
        "POST",
        url,
        &[("Content-Type", "application/json")],
        Some(v.to_string().as_bytes()),
    )
}

/// Asserts a JSON error with this status and code; returns its body.
fn assert_error(r: &Resp, status: u16, code: &str) -> Value {
    assert_eq!(r.status, status, "{}", String::from_utf8_lossy(&r.body));
    let v = r.json();
    assert_eq!(v["code"], code, "{v}");
    assert_eq!(v["status"], status, "{v}");
    assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
    v
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// The loopback network: six dual-stack nodes, without per-IP limits (the API node makes
/// every lookup from one address).
fn network(net: u8, v6_port: u16) -> (Vec<Killed>, String) {
    let first = format!("127.{net}.1.1:16881");
    let first6 = format!("[::1]:{v6_port}");
    let nodes = (1..=6u16)
        .map(|i| {
            let boot = if i == 1 {
                // Nothing yet: it waits to be found.
                "127.0.0.1:9".to_string()
            } else {
                format!("{first},{first6}")
            };
            dhtkit_node_with(
                &format!("127.{net}.{i}.1:16881"),
                &boot,
                &[
                    "--bind",
                    &format!("[::1]:{}", v6_port + i - 1),
                    "--per-ip-rate",
                    "0",
                ],
            )
        })
        .collect();
    (nodes, format!("{first},{first6}"))
}

/// Polls `/api/stats` until the node's tables hold `min` nodes.
fn wait_for_nodes(base: &str, min: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = get(&format!("{base}/api/stats"));
        assert_eq!(r.status, 200);
        let v = r.json();
        if v["nodes"].as_u64().unwrap_or(0) >= min {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "the API node found too few nodes: {v}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Starts the API node and waits for its HTTP server.
fn api_node(bind: &str, bind6: &str, boot: &str, extra: &[&str]) -> Killed {
    let mut args = vec!["--bind", bind6, "--per-ip-rate", "0"];
    args.extend_from_slice(extra);
    let node = dhtkit_node_with(bind, boot, &args);
    let addr = extra
        .iter()
        .position(|a| *a == "--http")
        .map(|i| extra[i + 1])
        .expect("--http given");
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "--http {addr} never listened");
        std::thread::sleep(Duration::from_millis(100));
    }
    node
}

fn sha1_hex(b: &[u8]) -> String {
    use sha1::{Digest, Sha1};
    hex(&Sha1::digest(b))
}

#[test]
fn the_json_api_answers_every_route_and_refuses_bad_input() {
    let (_net, boot) = network(49, 17881);
    let dir = std::env::temp_dir().join(format!("dhtkit-http-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("node.key");
    let out = dhtkit()
        .args(["keygen", key.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success());
    let node_pub = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let _api = api_node(
        "127.49.10.1:16881",
        "[::1]:17899",
        &boot,
        &[
            "--http",
            "127.49.10.1:18181",
            "--key",
            key.to_str().unwrap(),
        ],
    );
    let base = "http://127.49.10.1:18181";

    // The OpenAPI document names every route.
    let doc = get(&format!("{base}/openapi.json"));
    assert_eq!(doc.status, 200);
    let doc = doc.json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."), "{doc}");
    for p in [
        "/api/stats",
        "/api/size",
        "/api/routing-table",
        "/api/peers/{info_hash}",
        "/api/announce",
        "/api/advertise",
        "/api/advertise/{info_hash}",
        "/api/find_node/{target}",
        "/api/ping",
        "/api/sample",
        "/api/scrape/{info_hash}",
        "/api/items/{target}",
        "/api/items/immutable",
        "/api/items/mutable",
        "/{key}",
    ] {
        assert!(doc["paths"][p].is_object(), "{p} is not described");
    }

    // Six IPv4 nodes, and on IPv6 one (the table keeps one node per address, and all share ::1).
    let stats = wait_for_nodes(base, 7);
    assert_eq!(stats["local_addrs"].as_array().unwrap().len(), 2, "{stats}");
    let table = get(&format!("{base}/api/routing-table")).json();
    let table = table.as_array().unwrap();
    assert!(table.len() >= 7, "{table:?}");
    assert!(
        table
            .iter()
            .any(|n| n["addr"].as_str().unwrap().starts_with("[::1]")),
        "both families: {table:?}"
    );
    assert!(
        get(&format!("{base}/api/size")).json()["nodes"]
            .as_u64()
            .unwrap()
            >= 7
    );

    // ping and find_node.
    let pong = post(
        &format!("{base}/api/ping"),
        &json!({"addr": "127.49.2.1:16881"}),
    );
    assert_eq!(pong.status, 200);
    assert_eq!(pong.json()["id"].as_str().unwrap().len(), 40);
    let target = "ab".repeat(20);
    let found = get(&format!("{base}/api/find_node/{target}")).json();
    assert!(found["nodes"].as_array().unwrap().len() >= 6, "{found}");

    // Announce as a seed, then find ourselves streamed by get_peers, and count the seed.
    let ih = sha1_hex(b"http api torrent");
    let a = post(
        &format!("{base}/api/announce"),
        &json!({"info_hash": ih, "port": 7001, "seed": true}),
    );
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    assert!(a.json()["announced"].as_u64().unwrap() >= 3, "{}", a.json());
    let r = get(&format!("{base}/api/peers/{ih}"));
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/x-ndjson"));
    let lines: Vec<Value> = String::from_utf8(r.body)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    let last = lines.last().unwrap();
    assert_eq!(last["done"], true, "{lines:?}");
    assert!(
        lines.iter().any(|l| l["peer"] == "127.49.10.1:7001"),
        "{lines:?}"
    );
    assert_eq!(last["peers"].as_u64().unwrap() as usize, lines.len() - 1);
    let s = get(&format!("{base}/api/scrape/{ih}"));
    assert_eq!(s.status, 200, "{}", String::from_utf8_lossy(&s.body));
    assert!(s.json()["seeds"].as_u64().unwrap() >= 1, "{}", s.json());
    let sample = get(&format!("{base}/api/sample?addr=127.49.3.1:16881"));
    assert_eq!(sample.status, 200);
    assert!(sample.json()["samples"].is_array());

    // Advertise and stop.
    let ih2 = sha1_hex(b"advertised over http");
    let r = post(
        &format!("{base}/api/advertise"),
        &json!({"info_hash": ih2, "port": 7002}),
    );
    assert_eq!(r.status, 200);
    assert_eq!(get(&format!("{base}/api/stats")).json()["advertised"], 1);
    let r = call("DELETE", &format!("{base}/api/advertise/{ih2}"), &[], None);
    assert_eq!(r.status, 200);
    assert_eq!(get(&format!("{base}/api/stats")).json()["advertised"], 0);

    // Immutable items: put text, read it back with the report.
    let put = post(
        &format!("{base}/api/items/immutable"),
        &json!({"value": "hello http"}),
    );
    assert_eq!(put.status, 200, "{}", String::from_utf8_lossy(&put.body));
    let put = put.json();
    let t = sha1_hex(b"10:hello http");
    assert_eq!(put["target"], t.as_str());
    assert!(put["stored"].as_u64().unwrap() >= 3, "{put}");
    assert_eq!(put["refusals"], json!([]));
    let got = get(&format!("{base}/api/items/{t}")).json();
    assert_eq!(got["value"], "hello http", "{got}");
    assert_eq!(got["value_hex"], hex(b"hello http"));
    // An immutable item is final: the lookup may stop at the first node that has it.
    assert!(got["found"]["current"].as_u64().unwrap() >= 1, "{got}");
    assert_eq!(got["found"]["invalid"], 0, "{got}");
    // Bytes: value_hex round-trips exactly.
    let bytes = [0u8, 255, 1, 254, 10, 13];
    let put = post(
        &format!("{base}/api/items/immutable"),
        &json!({"value_hex": hex(&bytes)}),
    )
    .json();
    let got = get(&format!(
        "{base}/api/items/{}",
        put["target"].as_str().unwrap()
    ))
    .json();
    assert_eq!(unhex(got["value_hex"].as_str().unwrap()), bytes);

    // Mutable items signed by the caller.
    let seed = [7u8; 32];
    let salt = b"http";
    let signed = |seq: i64, text: &str| {
        let item = dhtkit::Item::mutable(
            &seed,
            salt,
            seq,
            dhtkit::items::bencode_bytes(text.as_bytes()),
        );
        let s = item.signed.unwrap();
        json!({
            "value": text, "seq": seq, "salt_hex": hex(salt),
            "key": hex(&s.key), "sig": hex(&s.sig),
        })
    };
    let mtarget = dhtkit::items::mutable_target(&dhtkit::items::public_key(&seed), salt).to_hex();
    let r = post(&format!("{base}/api/items/mutable"), &signed(5, "five"));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let r = r.json();
    assert_eq!(r["target"], mtarget.as_str());
    assert!(r["stored"].as_u64().unwrap() >= 3, "{r}");
    let item_url = format!("{base}/api/items/{mtarget}?salt_hex={}", hex(salt));
    let read = |want_seq: i64| {
        let got = get(&item_url).json();
        assert_eq!(got["seq"], want_seq, "{got}");
        got
    };
    let got = read(5);
    assert_eq!(got["value"], "five");
    // An older seq, validly signed: refused by every node with 302, each refusal reported,
    // and nothing changes.
    let r = post(&format!("{base}/api/items/mutable"), &signed(3, "three")).json();
    assert_eq!(r["stored"], 0, "{r}");
    let refusals = r["refusals"].as_array().unwrap();
    assert!(refusals.len() >= 3, "{r}");
    assert!(refusals.iter().all(|x| x["code"] == 302), "{r}");
    assert!(r["found"]["newer"].as_u64().unwrap() >= 3, "{r}");
    read(5);
    // A bad signature: 400 with the KRPC code, before anything is sent.
    let mut bad = signed(6, "six");
    let mut sig = unhex(bad["sig"].as_str().unwrap());
    sig[0] ^= 1;
    bad["sig"] = json!(hex(&sig));
    let v = assert_error(
        &post(&format!("{base}/api/items/mutable"), &bad),
        400,
        "invalid_item",
    );
    assert_eq!(v["krpc_code"], 206);
    read(5);
    // Bad hex, a short key, an unknown field, no value, a long salt, a large value.
    let mut h = signed(6, "six");
    h["sig"] = json!("zz");
    assert_error(
        &post(&format!("{base}/api/items/mutable"), &h),
        400,
        "bad_hex",
    );
    let mut k = signed(6, "six");
    k["key"] = json!("abcd");
    assert_error(
        &post(&format!("{base}/api/items/mutable"), &k),
        400,
        "bad_key",
    );
    let mut u = signed(6, "six");
    u["colour"] = json!("red");
    assert_error(
        &post(&format!("{base}/api/items/mutable"), &u),
        400,
        "bad_json",
    );
    assert_error(
        &post(&format!("{base}/api/items/immutable"), &json!({})),
        400,
        "bad_value",
    );
    let v = assert_error(
        &post(
            &format!("{base}/api/items/mutable"),
            &json!({"value": "x", "salt_hex": "ab".repeat(65)}),
        ),
        400,
        "invalid_item",
    );
    assert_eq!(v["krpc_code"], 207);
    let v = assert_error(
        &post(
            &format!("{base}/api/items/immutable"),
            &json!({"value": "x".repeat(1000)}),
        ),
        400,
        "invalid_item",
    );
    assert_eq!(v["krpc_code"], 205);
    let v = assert_error(
        &get(&format!(
            "{base}/api/items/{mtarget}?salt_hex={}",
            "ab".repeat(65)
        )),
        400,
        "invalid_item",
    );
    assert_eq!(v["krpc_code"], 207);
    read(5);
    // An oversized body: 413, as JSON.
    let huge = format!("{{\"value\": \"{}\"}}", "x".repeat(20_000));
    assert_error(
        &call(
            "POST",
            &format!("{base}/api/items/immutable"),
            &[],
            Some(huge.as_bytes()),
        ),
        413,
        "too_large",
    );
    assert_error(
        &call("POST", &format!("{base}/api/ping"), &[], Some(b"{not json")),
        400,
        "bad_json",
    );
    assert_error(
        &post(&format!("{base}/api/ping"), &json!({"addr": "nowhere"})),
        400,
        "bad_address",
    );
    assert_error(&get(&format!("{base}/api/find_node/xyz")), 400, "bad_id");
    assert_error(&get(&format!("{base}/api/sample")), 400, "bad_query");
    assert_error(&get(&format!("{base}/api/nothing/here")), 404, "not_found");
    assert_error(
        &call("POST", &format!("{base}/api/stats"), &[], Some(b"{}")),
        405,
        "method_not_allowed",
    );
    let missing = assert_error(
        &get(&format!("{base}/api/items/{}", "cd".repeat(20))),
        404,
        "not_found",
    );
    assert!(
        missing["found"]["answered"].as_u64().unwrap() >= 3,
        "{missing}"
    );

    // Signed by the node's --key: seq 1, then one more.
    let r = post(
        &format!("{base}/api/items/mutable"),
        &json!({"value": "by the node"}),
    )
    .json();
    assert_eq!(r["seq"], 1, "{r}");
    let r = post(
        &format!("{base}/api/items/mutable"),
        &json!({"value": "again"}),
    )
    .json();
    assert_eq!(r["seq"], 2, "{r}");
    let nt = dhtkit::items::mutable_target(&unhex(&node_pub).try_into().unwrap(), b"").to_hex();
    let got = get(&format!("{base}/api/items/{nt}")).json();
    assert_eq!(
        (got["value"].as_str(), got["seq"].as_i64()),
        (Some("again"), Some(2))
    );
    assert_eq!(got["key"], node_pub.as_str());
}

#[test]
fn credentials_and_the_concurrency_limit_hold_and_public_binds_need_a_word() {
    // A non-loopback --http without --http-auth is refused before anything starts.
    let out = dhtkit()
        .args(["node", "--bind", "127.50.9.1:0", "--http", "0.0.0.0:18182"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--http-auth") && err.contains("--public"),
        "{err}"
    );
    let out = dhtkit()
        .args(["node", "--key", "/nonexistent"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "--key needs --http");

    let dir = std::env::temp_dir().join(format!("dhtkit-http-auth-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut hp = dhtkit()
        .args(["hash-password", "ann"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    hp.stdin.take().unwrap().write_all(b"sesame\n").unwrap();
    let line = hp.wait_with_output().unwrap().stdout;
    let users = dir.join("users");
    std::fs::write(&users, &line).unwrap();
    let _api = api_node(
        "127.50.10.1:16881",
        "[::1]:17999",
        "127.0.0.1:9",
        &[
            "--http",
            "127.50.10.1:18181",
            "--http-auth",
            users.to_str().unwrap(),
            "--http-max-requests",
            "1",
        ],
    );
    let base = "http://127.50.10.1:18181";
    let r = get(&format!("{base}/api/stats"));
    assert_error(&r, 401, "unauthorized");
    assert!(r.header("www-authenticate").unwrap().starts_with("Basic"));
    // ann:sesame
    let good = ("Authorization", "Basic YW5uOnNlc2FtZQ==");
    let wrong = ("Authorization", "Basic YW5uOm5vcGU=");
    assert_error(
        &call("GET", &format!("{base}/api/stats"), &[wrong], None),
        401,
        "unauthorized",
    );
    assert_eq!(
        call("GET", &format!("{base}/api/stats"), &[good], None).status,
        200
    );

    // One request holds the only permit while its body trickles in: the next gets 429.
    let mut slow = TcpStream::connect("127.50.10.1:18181").unwrap();
    write!(
        slow,
        "POST /api/ping HTTP/1.1\r\nHost: x\r\nAuthorization: Basic YW5uOnNlc2FtZQ==\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"addr\""
    )
    .unwrap();
    slow.flush().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = call("GET", &format!("{base}/api/stats"), &[good], None);
        if r.status == 429 {
            assert_error(&r, 429, "too_many_requests");
            assert_eq!(r.header("retry-after"), Some("1"));
            break;
        }
        assert!(Instant::now() < deadline, "never limited: {}", r.status);
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(slow);
    let deadline = Instant::now() + Duration::from_secs(20);
    while call("GET", &format!("{base}/api/stats"), &[good], None).status != 200 {
        assert!(Instant::now() < deadline, "the permit came back");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A DNS response with one TXT answer (`_dhtkit` → `text`, the given TTL), uncompressed.
fn dns_packet(text: &str, ttl: u32) -> Vec<u8> {
    let mut p = vec![0, 0, 0x84, 0, 0, 0, 0, 1, 0, 0, 0, 0];
    p.extend_from_slice(&[7]);
    p.extend_from_slice(b"_dhtkit");
    p.push(0);
    p.extend_from_slice(&16u16.to_be_bytes());
    p.extend_from_slice(&1u16.to_be_bytes());
    p.extend_from_slice(&ttl.to_be_bytes());
    p.extend_from_slice(&((text.len() + 1) as u16).to_be_bytes());
    p.push(text.len() as u8);
    p.extend_from_slice(text.as_bytes());
    p
}

/// A relay payload: signature ‖ timestamp ‖ packet, signed with `seed`.
fn payload(seed: &[u8; 32], ts: u64, packet: &[u8]) -> Vec<u8> {
    let item = dhtkit::Item::mutable(seed, b"", ts as i64, dhtkit::items::bencode_bytes(packet));
    let mut out = item.signed.unwrap().sig.to_vec();
    out.extend_from_slice(&ts.to_be_bytes());
    out.extend_from_slice(packet);
    out
}

/// z-base32 of a key, as pkarr writes it.
fn z32(key: &[u8; 32]) -> String {
    const A: &[u8] = b"ybndrfg8ejkmcpqxot1uwisza345h769";
    let mut bits = String::new();
    for b in key {
        bits.push_str(&format!("{b:08b}"));
    }
    while !bits.len().is_multiple_of(5) {
        bits.push('0');
    }
    (0..bits.len() / 5)
        .map(|i| A[usize::from_str_radix(&bits[i * 5..i * 5 + 5], 2).unwrap()] as char)
        .collect()
}

#[test]
fn the_pkarr_relay_protocol_stores_on_both_families_and_refuses_what_pkarr_refuses() {
    let (_net, boot) = network(51, 18881);
    let _api = api_node(
        "127.51.10.1:16881",
        "[::1]:18899",
        &boot,
        &["--http", "127.51.10.1:18181"],
    );
    let base = "http://127.51.10.1:18181";
    wait_for_nodes(base, 7);
    let seed = [42u8; 32];
    let key = dhtkit::items::public_key(&seed);
    let url = format!("{base}/{}", z32(&key));
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64;

    // Unknown: 404 with an empty body.
    let r = get(&url);
    assert_eq!(r.status, 404);
    assert!(r.body.is_empty());

    let packet = dns_packet("hello pkarr", 30);
    let body = payload(&seed, now, &packet);
    let r = call(
        "PUT",
        &url,
        &[("Origin", "https://app.example")],
        Some(&body),
    );
    assert_eq!(r.status, 204, "{}", String::from_utf8_lossy(&r.body));
    let stored: u32 = r.header("pkarr-dht-stored-nodes").unwrap().parse().unwrap();
    assert!(stored >= 6, "stored on {stored} nodes (both families)");
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example")
    );

    // GET: the same bytes, with the headers pkarr clients read.
    let r = get(&format!("{url}?policy=NetworkOnly"));
    assert_eq!(r.status, 200);
    assert_eq!(r.body, body);
    assert_eq!(
        r.header("content-type"),
        Some("application/pkarr.org/relays#payload")
    );
    assert_eq!(
        r.header("cache-control"),
        Some("public, max-age=300"),
        "TTL 30 → the minimum"
    );
    let lm = r.header("last-modified").unwrap().to_string();
    assert!(lm.ends_with(" GMT"), "{lm}");
    assert!(r.header("memento-datetime").is_some());
    // If-Modified-Since a second after the record: 304. At the record's second (its
    // microseconds are past it): 200, as pkarr-relay.
    let later = httpdate_plus(&lm, 1);
    let r = call("GET", &url, &[("If-Modified-Since", &later)], None);
    assert_eq!(r.status, 304);
    assert!(r.body.is_empty());
    if !now.is_multiple_of(1_000_000) {
        assert_eq!(
            call("GET", &url, &[("If-Modified-Since", &lm)], None).status,
            200
        );
    }
    assert_eq!(get(&format!("{url}?policy=Nonsense")).status, 400);

    // The DHT holds it on both families: an IPv6-only `dhtkit get` reads the packet.
    let target = dhtkit::items::mutable_target(&key, b"").to_hex();
    let v = dhtkit_get_json(&target, "[::1]:0", "[::1]:18881");
    assert_eq!(v["value_hex"], hex(&packet), "{v}");
    assert_eq!(v["seq"], now as i64);

    // Older: 409. Same again: 204. Newer: 204 and served.
    let older = payload(&seed, now - 1_000_000, &dns_packet("older", 30));
    let r = call("PUT", &url, &[], Some(&older));
    assert_eq!(r.status, 409, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(call("PUT", &url, &[], Some(&body)).status, 204);
    let newer_packet = dns_packet("newer", 7200);
    let newer = payload(&seed, now + 1, &newer_packet);
    assert_eq!(call("PUT", &url, &[], Some(&newer)).status, 204);
    let r = get(&url);
    assert_eq!(r.body, newer);
    assert_eq!(r.header("cache-control"), Some("public, max-age=7200"));

    // Bad signature, wrong key, bad DNS, short, too large: refused, nothing changes.
    let mut bad = payload(&seed, now + 2, &dns_packet("forged", 30));
    bad[5] ^= 1;
    assert_eq!(call("PUT", &url, &[], Some(&bad)).status, 400);
    let other = payload(&[43u8; 32], now + 2, &dns_packet("someone else", 30));
    assert_eq!(call("PUT", &url, &[], Some(&other)).status, 400);
    let not_dns = payload(&seed, now + 2, b"not a dns packet");
    assert_eq!(call("PUT", &url, &[], Some(&not_dns)).status, 400);
    assert_eq!(call("PUT", &url, &[], Some(&body[..40])).status, 400);
    assert_eq!(call("PUT", &url, &[], Some(&vec![0u8; 1100])).status, 400);
    assert_eq!(call("PUT", &url, &[], Some(&vec![0u8; 1105])).status, 413);
    assert_eq!(
        call("PUT", &format!("{base}/notakey"), &[], Some(&body)).status,
        400
    );
    let r = get(&format!("{url}?policy=NetworkOnly"));
    assert_eq!(r.body, newer, "nothing changed");
    // CORS preflight.
    let r = call(
        "OPTIONS",
        &url,
        &[
            ("Origin", "https://app.example"),
            ("Access-Control-Request-Method", "PUT"),
        ],
        None,
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("access-control-allow-methods"), Some("PUT"));
}

/// An HTTP date `secs` seconds after `date`.
fn httpdate_plus(date: &str, secs: u64) -> String {
    let t = httpdate::parse_http_date(date).expect("an HTTP date");
    httpdate::fmt_http_date(t + Duration::from_secs(secs))
}
