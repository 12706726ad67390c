//! Giving metadata back: `dhtkit crawl` serves the info dictionaries it has stored over BEP 9.
//! A libtorrent 2.1 session given only a magnet link and the crawler's address as its single
//! peer fetches the metadata from it (a three-piece dictionary, so the pieces, their order
//! and the total size are all checked by libtorrent's own hash check). With
//! `--no-serve-metadata` nothing listens.
//!
//! Needs the virtualenv that `.ci/setup-interop` creates (or `DHTKIT_LT_PYTHON`).

mod common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{dhtkit, lt_python, Killed};
use dhtkit_crawl::metadata::parse;
use dhtkit_crawl::store::{Batch, Fetched, Sighting, Store};
use dhtkit_crawl::SqliteStore;
use serde_json::Value;
use sha1::{Digest, Sha1};

/// A v1 info dictionary of two files (36,044,800 bytes in 2,200 pieces of 16 KiB), whose
/// piece hashes take three BEP 9 pieces.
fn info_dict() -> Vec<u8> {
    let pieces: Vec<u8> = (0..2_200u32)
        .flat_map(|i| Sha1::digest(i.to_be_bytes()).to_vec())
        .collect();
    let mut d = b"d5:filesld6:lengthi10000000e4:pathl8:part.oneeed6:lengthi26044800e4:pathl8:part.twoeee4:name19:served back by dhtk12:piece lengthi16384e6:pieces".to_vec();
    d.extend_from_slice(format!("{}:", pieces.len()).as_bytes());
    d.extend_from_slice(&pieces);
    d.push(b'e');
    d
}

#[test]
fn libtorrent_fetches_metadata_from_the_crawler_as_its_only_peer() {
    let dir = std::env::temp_dir().join(format!("dhtkit-serve-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("crawl.sqlite");
    let dict = info_dict();
    assert!(dict.len() > 2 * 16_384, "three pieces");
    let ih = dhtkit::Id(Sha1::digest(&dict).into());
    {
        let mut s = SqliteStore::open(&db).unwrap();
        let info = parse(&dict, 100).unwrap();
        s.write(&Batch {
            sightings: vec![Sighting {
                info_hash: ih,
                sources: 2,
                first: 1,
                last: 1,
                count: 1,
            }],
            torrents: vec![Fetched {
                info_hash: ih,
                info,
                at: 1,
                peer: "127.0.0.1:1".parse().unwrap(),
                info_dict: Some(dict.clone()),
            }],
            ..Batch::default()
        })
        .unwrap();
    }
    // The crawler, its DHT bootstrapped to nothing reachable: only its TCP side matters.
    let mut child = dhtkit()
        .args([
            "crawl",
            "--db",
            db.to_str().unwrap(),
            "--bind",
            "127.68.0.1:0",
            "--bootstrap",
            "127.68.9.9:9",
            "--serve-metadata-bind",
            "127.68.0.1:0",
            "--metrics",
            "127.68.0.1:0",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let err = BufReader::new(child.stderr.take().unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in err.lines().map_while(Result::ok) {
            eprintln!("dhtkit crawl: {line}");
            let _ = tx.send(line);
        }
    });
    let _crawler = Killed(child);
    let (mut served_on, mut metrics) = (None, None);
    while served_on.is_none() || metrics.is_none() {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the crawler says where it serves metadata and metrics");
        if let Some(at) = line.strip_prefix("serving stored metadata (BEP 9) on TCP ") {
            served_on = Some(at.trim().to_string());
        }
        if let Some(at) = line.strip_prefix("metrics on ") {
            metrics = Some(at.trim().to_string());
        }
    }
    let (served_on, metrics) = (served_on.unwrap(), metrics.unwrap());
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/interop/lt_fetch_metadata.py");
    let out = Command::new(lt_python())
        .arg(script)
        .args([
            "--ip",
            "127.68.1.1",
            "--magnet",
            &format!("magnet:?xt=urn:btih:{}", ih.to_hex()),
            "--peer",
            &served_on,
            "--timeout",
            "60",
            "--save",
            dir.to_str().unwrap(),
        ])
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    let line = String::from_utf8_lossy(&out.stdout);
    let v: Value = serde_json::from_str(line.trim()).unwrap_or_else(|e| panic!("{e}: {line}"));
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["name"], "served back by dhtk", "{v}");
    assert_eq!(v["info_hash"], ih.to_hex(), "{v}");
    assert_eq!(v["files"], 2);
    assert_eq!(v["size"], 36_044_800);
    // The server counted what it gave.
    let text = ureq::get(&metrics)
        .timeout(Duration::from_secs(10))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    let value = |name: &str| -> Option<String> {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .map(str::to_string)
    };
    assert_eq!(
        value("dhtkit_crawl_metadata_served_pieces_total").as_deref(),
        Some("3"),
        "{text}"
    );
    assert_eq!(
        value("dhtkit_crawl_metadata_served_bytes_total"),
        Some(dict.len().to_string())
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn no_serve_metadata_keeps_the_port_closed() {
    let dir = std::env::temp_dir().join(format!("dhtkit-noserve-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("crawl.sqlite");
    let port = {
        let l = std::net::TcpListener::bind("127.68.2.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut child = dhtkit()
        .args([
            "crawl",
            "--db",
            db.to_str().unwrap(),
            "--bind",
            &format!("127.68.2.1:{port}"),
            "--bootstrap",
            "127.68.9.9:9",
            "--no-serve-metadata",
            "--duration",
            "3",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let err = BufReader::new(child.stderr.take().unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in err.lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut child = Killed(child);
    let first = rx.recv_timeout(Duration::from_secs(30)).unwrap();
    assert!(first.starts_with("dhtkit crawl:"), "{first}");
    assert!(
        std::net::TcpStream::connect(("127.68.2.1", port)).is_err(),
        "nothing listens on TCP"
    );
    let st = child.0.wait().unwrap();
    assert!(st.success());
    let lines: Vec<String> = rx.try_iter().collect();
    assert!(
        !lines.iter().any(|l| l.contains("serving stored metadata")),
        "{lines:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
