//! The crawler against thousands of real sockets: a test DHT of 2,300 dhtkit nodes in this
//! process, each on its own 127.93.x.y, of which 300 join and then leave (their addresses stay
//! in the others' tables and never answer again, as NATed and departed nodes do on the live
//! DHT) and one in five speaks no BEP 51; the rest answer `sample_infohashes` as libtorrent
//! does (20 samples, held for 6 hours). 500 scripted BEP 9 seeders, each a DHT node and a TCP
//! listener on its own 127.94.x.y, announce 20 torrents each: 10,000 infohashes.
//!
//! Then `dhtkit crawl`, run as a user would (through the CLI, default rate), must within 5
//! minutes discover at least 90% of the infohashes and store the exact name of at least 80%,
//! without a single ban by the test network's nodes (libtorrent's limits: 5 queries a second
//! per IP). The crawler's peak RSS is reported.

mod common;
#[path = "../../dhtkit-crawl/tests/support/wire.rs"]
mod wire;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{dhtkit, Killed};
use dhtkit::{Dht, Id, SampleConfig};
use serde_json::Value;
use sha1::{Digest, Sha1};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use wire::{piece_data, requested_piece, send_ext};

const NET: u8 = 93;
const SEED_NET: u8 = 94;
const CRAWL_NET: u8 = 95;
const NODES: usize = 2_000;
const GONE: usize = 300;
const SEEDERS: usize = 500;
const PER_SEEDER: usize = 20;
const UDP: u16 = 6881;
const TCP: u16 = 6882;
const CRAWL_FOR: Duration = Duration::from_secs(300);

fn ip(net: u8, i: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, net, (i / 250) as u8, (i % 250) as u8 + 1)
}

/// A small deterministic generator (the network's shape is the same every run).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// A torrent's info dictionary (one file) and its infohash.
fn torrent(name: &str, rng: &mut Lcg) -> ([u8; 20], Vec<u8>) {
    let mut info = format!(
        "d6:lengthi{}e4:name{}:{}12:piece lengthi16384e6:pieces20:",
        16384 + rng.below(1 << 20),
        name.len(),
        name
    )
    .into_bytes();
    for _ in 0..20 {
        info.push(rng.next() as u8);
    }
    info.push(b'e');
    let ih: [u8; 20] = Sha1::digest(&info).into();
    (ih, info)
}

async fn read_msg(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).await.ok()?;
    let n = u32::from_be_bytes(len) as usize;
    if n > 1 << 20 {
        return None;
    }
    let mut m = vec![0u8; n];
    s.read_exact(&mut m).await.ok()?;
    Some(m)
}

/// One seeder connection: the handshake for whichever of `torrents` it asks for, BEP 10's
/// handshake with ut_metadata, then the pieces asked for.
async fn serve(mut s: TcpStream, torrents: Arc<HashMap<[u8; 20], Vec<u8>>>) {
    let mut hs = [0u8; 68];
    if s.read_exact(&mut hs).await.is_err() {
        return;
    }
    let ih: [u8; 20] = hs[28..48].try_into().unwrap();
    let Some(info) = torrents.get(&ih) else {
        return; // not ours: hang up, as a peer does
    };
    let mut reply = hs;
    reply[25] |= 0x10;
    if s.write_all(&reply).await.is_err() {
        return;
    }
    let ext = format!("d1:md11:ut_metadatai7ee13:metadata_sizei{}ee", info.len());
    if send_ext(&mut s, 0, ext.as_bytes()).await.is_err() {
        return;
    }
    for _ in 0..64 {
        let Some(m) = read_msg(&mut s).await else {
            return;
        };
        if m.first() == Some(&20) && m.get(1) == Some(&7) {
            let body = piece_data(info, requested_piece(&m[2..]));
            if send_ext(&mut s, 1, &body).await.is_err() {
                return;
            }
        }
    }
}

/// The crawler's peak resident set, from /proc (Linux).
fn peak_rss_mb(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let l = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = l.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024)
}

fn tmpdir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("dhtkit-crawl-net-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Total bans by `nodes` so far.
async fn bans(nodes: &[Dht]) -> u64 {
    let mut n = 0;
    for d in nodes {
        if let Ok(s) = d.stats().await {
            n += s.node.bans;
        }
    }
    n
}

#[test]
fn crawler_covers_a_two_thousand_node_network_through_the_cli() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut rng = Lcg(0x5eed_2000);
    let t_build = Instant::now();

    // The network: everyone bootstraps from three others, so tables fill without routers.
    let total = NODES + GONE;
    let addr = |i: usize| SocketAddr::new(IpAddr::V4(ip(NET, i)), UDP);
    let plans: Vec<(usize, Vec<String>)> = (0..total)
        .map(|i| {
            let boot = (0..3)
                .map(|_| addr((i + 1 + rng.below(total - 1)) % total).to_string())
                .collect();
            (i, boot)
        })
        .collect();
    let nodes: Vec<Dht> = rt.block_on(async {
        let mut out = Vec::with_capacity(total);
        for (i, boot) in plans {
            let bep51 = i % 5 != 0;
            let d = Dht::builder()
                .bind(addr(i))
                .bootstrap(boot)
                .config(|c| {
                    c.samples = bep51.then(SampleConfig::libtorrent);
                })
                .build()
                .await
                .unwrap_or_else(|e| panic!("node {i} on {}: {e}", addr(i)));
            out.push(d);
        }
        for (i, d) in out.iter().enumerate() {
            let waited = tokio::time::timeout(Duration::from_secs(60), d.bootstrapped()).await;
            assert!(waited.is_ok(), "node {i} did not bootstrap within a minute");
        }
        out
    });
    // The last GONE leave: their addresses stay in circulation, silent.
    let (nodes, gone) = {
        let mut nodes = nodes;
        let gone = nodes.split_off(NODES);
        (nodes, gone)
    };
    rt.block_on(async {
        for d in &gone {
            d.shutdown().await;
        }
    });
    drop(gone);
    let tables: usize = rt.block_on(async {
        let mut n = 0;
        for d in &nodes {
            n += d.stats().await.map_or(0, |s| s.nodes);
        }
        n
    });
    eprintln!(
        "{NODES} nodes up ({GONE} left), {:.0} contacts per table, in {:.0} s",
        tables as f64 / NODES as f64,
        t_build.elapsed().as_secs_f64()
    );
    assert!(tables >= NODES * 20, "tables too small: {tables}");

    // The seeders: a DHT node and a BEP 9 listener on one IP, announcing their torrents.
    let t_seed = Instant::now();
    let mut names: HashMap<String, String> = HashMap::new();
    let mut per_seeder = Vec::new();
    for s in 0..SEEDERS {
        let mut torrents = HashMap::new();
        for j in 0..PER_SEEDER {
            let name = format!("loopback torrent {s:03}-{j:02} {:08x}", rng.next());
            let (ih, info) = torrent(&name, &mut rng);
            names.insert(to_hex(&ih), name);
            torrents.insert(ih, info);
        }
        let boot: Vec<String> = (0..3).map(|_| addr(rng.below(NODES)).to_string()).collect();
        per_seeder.push((Arc::new(torrents), boot));
    }
    let announced: usize = rt.block_on(async {
        let mut seeders = tokio::task::JoinSet::new();
        for (s, (torrents, boot)) in per_seeder.into_iter().enumerate() {
            let l = TcpListener::bind((ip(SEED_NET, s), TCP))
                .await
                .unwrap_or_else(|e| panic!("seeder {s}: {e}"));
            let t = torrents.clone();
            tokio::spawn(async move {
                while let Ok((c, _)) = l.accept().await {
                    tokio::spawn(serve(c, t.clone()));
                }
            });
            let d = Dht::builder()
                .bind(SocketAddr::new(IpAddr::V4(ip(SEED_NET, s)), UDP))
                .bootstrap(boot)
                .build()
                .await
                .unwrap_or_else(|e| panic!("seeder {s}'s node: {e}"));
            seeders.spawn(async move {
                let _ = tokio::time::timeout(Duration::from_secs(60), d.bootstrapped()).await;
                let mut ok = 0;
                for ih in torrents.keys() {
                    let r = tokio::time::timeout(
                        Duration::from_secs(60),
                        d.announce(Id(*ih), Some(TCP)),
                    )
                    .await;
                    if matches!(r, Ok(Ok(a)) if a.announced > 0) {
                        ok += 1;
                    }
                }
                // The seeder's DHT node stays up (it answers like any other node).
                (d, ok)
            });
        }
        let mut ok = 0;
        let mut keep = Vec::new();
        while let Some(r) = seeders.join_next().await {
            let (d, n) = r.unwrap();
            ok += n;
            keep.push(d);
        }
        std::mem::forget(keep); // alive until the process ends
        ok
    });
    let total_ih = SEEDERS * PER_SEEDER;
    eprintln!(
        "{announced} of {total_ih} infohashes announced by {SEEDERS} seeders in {:.0} s",
        t_seed.elapsed().as_secs_f64()
    );
    assert!(
        announced * 100 >= total_ih * 98,
        "only {announced} announces landed"
    );
    let bans_before = rt.block_on(bans(&nodes));

    // The crawl, as a user runs it.
    let dir = tmpdir();
    let db = dir.join("crawl.db");
    let boot: Vec<String> = (0..4).map(|_| addr(rng.below(NODES)).to_string()).collect();
    let mut child = Killed(
        dhtkit()
            .args(["crawl", "--bind"])
            .arg(SocketAddr::new(IpAddr::V4(ip(CRAWL_NET, 0)), UDP).to_string())
            .args(["--bootstrap", &boot.join(",")])
            .arg("--db")
            .arg(&db)
            .args(["--json", "--duration", &CRAWL_FOR.as_secs().to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("dhtkit crawl starts"),
    );
    let pid = child.0.id();
    let err = BufReader::new(child.0.stderr.take().unwrap());
    std::thread::spawn(move || {
        for l in err.lines().map_while(Result::ok) {
            eprintln!("[crawl] {l}");
        }
    });
    let out = BufReader::new(child.0.stdout.take().unwrap());
    let t_crawl = Instant::now();
    let mut peak = 0;
    let mut last = Value::Null;
    let mut reached = None;
    for line in out.lines().map_while(Result::ok) {
        let Ok(v) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        if v["event"] != "status" {
            continue;
        }
        peak = peak.max(peak_rss_mb(pid).unwrap_or(0));
        let (d, n) = (
            v["discovered"].as_u64().unwrap_or(0) as usize,
            v["named"].as_u64().unwrap_or(0) as usize,
        );
        if reached.is_none() && d * 100 >= total_ih * 90 && n * 100 >= total_ih * 80 {
            reached = Some(t_crawl.elapsed());
        }
        let stopped = v["stopped"] == true;
        last = v;
        if stopped || reached.is_some() || t_crawl.elapsed() > CRAWL_FOR + Duration::from_secs(30) {
            break;
        }
    }
    let _ = Command::new("sh")
        .args(["-c", &format!("kill -INT {pid}")])
        .status();
    let end = Instant::now() + Duration::from_secs(30);
    while Instant::now() < end && child.0.try_wait().unwrap().is_none() {
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!(
        "crawl: {} s, peak RSS {peak} MB; last status {last}",
        t_crawl.elapsed().as_secs()
    );

    // What the index holds.
    let exported = dhtkit().args(["export", "--db"]).arg(&db).output().unwrap();
    assert_eq!(exported.status.code(), Some(0));
    let (mut found, mut named) = (0, 0);
    for line in String::from_utf8_lossy(&exported.stdout).lines() {
        let v: Value = serde_json::from_str(line).expect("JSON lines");
        let Some(want) = names.get(v["infohash"].as_str().unwrap_or("")) else {
            continue;
        };
        found += 1;
        if v["name"].as_str() == Some(want.as_str()) {
            named += 1;
        }
    }
    eprintln!("crawler: {found} of {total_ih} discovered, {named} named, reached at {reached:?}");
    assert!(
        found * 100 >= total_ih * 90,
        "discovered {found} of {total_ih}"
    );
    assert!(named * 100 >= total_ih * 80, "named {named} of {total_ih}");
    assert!(
        reached.is_some_and(|t| t <= CRAWL_FOR),
        "not within 5 minutes"
    );
    // One query a second per IP at most: nobody banned the crawler.
    let bans_after = rt.block_on(bans(&nodes));
    assert_eq!(
        bans_after, bans_before,
        "the network banned someone during the crawl"
    );
    assert!(peak > 0, "the crawler's peak RSS could not be read");
    let _ = std::fs::remove_dir_all(&dir);
}

fn to_hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
