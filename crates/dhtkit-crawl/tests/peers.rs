//! Metadata fetching against scripted peers on loopback: an honest one (v1 and v2 hashes), and
//! every way a peer can lie or stall. None of the lies produces metadata, and none outlives the
//! fetch deadline. Then a whole dual-stack crawler indexes a torrent announced over IPv6 and
//! fetches it from the honest peer on `::1`; and a crawler scrapes a named torrent's swarm
//! and stores the seeders and leechers the loopback swarm announced.

#[path = "support/wire.rs"]
mod wire;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use dhtkit_crawl::metadata::{fetch, parse, FetchConfig, FetchError, HashKind};
use dhtkit_proto::Id;
use sha1::{Digest, Sha1};
use sha2::Sha256;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use wire::{piece_data, requested_piece, send_ext};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Peer {
    Honest,
    WrongDict,
    HugeSize,
    Garbage,
    Drip,
    Reject,
    DisconnectMidPiece,
    OtherInfohash,
    NoExtensions,
}

/// A torrent's info dictionary of about `len` bytes (three metadata pieces for 40 KiB).
fn info_dict(name: &str, len: usize) -> Vec<u8> {
    let pad = "x".repeat(len);
    format!(
        "d6:lengthi{len}e4:name{}:{name}12:piece lengthi16384e6:pieces{}:{pad}e",
        name.len(),
        pad.len()
    )
    .into_bytes()
}

async fn read_msg(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).await.ok()?;
    let mut m = vec![0u8; u32::from_be_bytes(len) as usize];
    s.read_exact(&mut m).await.ok()?;
    Some(m)
}

/// Serves one connection the way `kind` does, with `info` as its metadata.
async fn serve(mut s: TcpStream, kind: Peer, info: Vec<u8>) {
    let mut hs = [0u8; 68];
    if s.read_exact(&mut hs).await.is_err() {
        return;
    }
    let mut reply = hs;
    reply[25] = if kind == Peer::NoExtensions { 0 } else { 0x10 };
    if kind == Peer::OtherInfohash {
        reply[28] ^= 0xff;
    }
    if kind == Peer::Garbage {
        let _ = s.write_all(&[0xde; 200]).await;
        return;
    }
    let _ = s.write_all(&reply).await;
    let size = if kind == Peer::HugeSize {
        100 * 1024 * 1024
    } else {
        info.len()
    };
    let ext = format!("d1:md11:ut_metadatai7ee13:metadata_sizei{size}ee");
    let _ = send_ext(&mut s, 0, ext.as_bytes()).await;
    let served = if kind == Peer::WrongDict {
        let mut other = info.clone();
        let n = other.len();
        other[n - 2] ^= 1;
        other
    } else {
        info
    };
    while let Some(m) = read_msg(&mut s).await {
        if m.first() != Some(&20) || m.get(1) != Some(&7) {
            continue;
        }
        let piece = requested_piece(&m[2..]);
        match kind {
            Peer::Reject => {
                let r = format!("d8:msg_typei2e5:piecei{piece}ee");
                let _ = send_ext(&mut s, 1, r.as_bytes()).await;
            }
            Peer::Drip => {
                for b in b"d8:msg_typei1e" {
                    let _ = s.write_all(&[0, 0, 0, 1, *b]).await;
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
            }
            _ => {
                let body = piece_data(&served, piece);
                if kind == Peer::DisconnectMidPiece && piece == 1 {
                    let mut m = ((body.len() + 2) as u32).to_be_bytes().to_vec();
                    m.extend_from_slice(&[20, 1]);
                    m.extend_from_slice(&body[..body.len() / 2]);
                    let _ = s.write_all(&m).await;
                    return;
                }
                let _ = send_ext(&mut s, 1, &body).await;
            }
        }
    }
}

async fn peer(kind: Peer, info: Vec<u8>) -> SocketAddr {
    peer_at("127.0.0.1:0", kind, info).await
}

async fn peer_at(bind: &str, kind: Peer, info: Vec<u8>) -> SocketAddr {
    let l = TcpListener::bind(bind).await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            tokio::spawn(serve(s, kind, info.clone()));
        }
    });
    addr
}

fn v1(info: &[u8]) -> Id {
    Id(Sha1::digest(info).into())
}

fn cfg() -> FetchConfig {
    let mut c = FetchConfig::default();
    c.deadline = Duration::from_secs(3);
    c
}

#[tokio::test]
async fn honest_peer_gives_verified_metadata_by_either_hash() {
    let info = info_dict("Ubuntu 24.04 desktop", 40_000);
    let at = peer(Peer::Honest, info.clone()).await;
    let got = fetch(at, v1(&info), *b"-DK0001-000000000001", &cfg())
        .await
        .unwrap();
    assert_eq!((got.info.as_slice(), got.kind), (&info[..], HashKind::V1));
    assert_eq!(parse(&got.info, 10).unwrap().name, "Ubuntu 24.04 desktop");
    let mut v2 = [0u8; 20];
    v2.copy_from_slice(&Sha256::digest(&info)[..20]);
    let got = fetch(at, Id(v2), *b"-DK0001-000000000001", &cfg())
        .await
        .unwrap();
    assert_eq!(got.kind, HashKind::V2);
}

#[tokio::test]
async fn lying_peers_never_give_metadata() {
    let info = info_dict("a torrent", 40_000);
    let ih = v1(&info);
    let cases = [
        (Peer::WrongDict, "hash_mismatch"),
        (Peer::HugeSize, "bad_size"),
        (Peer::Garbage, "handshake"),
        (Peer::Drip, "timeout"),
        (Peer::Reject, "rejected"),
        (Peer::DisconnectMidPiece, "io"),
        (Peer::OtherInfohash, "handshake"),
        (Peer::NoExtensions, "no_metadata"),
    ];
    for (kind, reason) in cases {
        let at = peer(kind, info.clone()).await;
        let t0 = Instant::now();
        let r = fetch(at, ih, *b"-DK0001-000000000001", &cfg()).await;
        let err: FetchError = r.expect_err("a lie is never accepted");
        assert_eq!(err.reason(), reason, "{kind:?}: {err}");
        assert!(
            t0.elapsed() < Duration::from_secs(4),
            "{kind:?} outlived the deadline"
        );
    }
    // Nobody listening.
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gone = closed.local_addr().unwrap();
    drop(closed);
    let err = fetch(gone, ih, *b"-DK0001-000000000001", &cfg())
        .await
        .unwrap_err();
    assert_eq!(err.reason(), "connect");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dual_stack_crawler_indexes_a_torrent_announced_over_ipv6() {
    use dhtkit::Dht;
    use dhtkit_crawl::{CrawlConfig, CrawlStats, Crawler, SqliteStore, StoreRead};

    let info = info_dict("seen over IPv6", 40_000);
    let ih = v1(&info);
    let seeder = peer_at("[::1]:0", Peer::Honest, info).await;
    // Two IPv6-only dhtkit nodes (every IPv6 node is on ::1, so one node per IP and the
    // per-IP limit are lifted, as on libtorrent's test networks).
    let v6_node = |boot: Vec<String>| async move {
        Dht::builder()
            .bind("[::1]:0".parse().unwrap())
            .per_ip_rate(0)
            .config(|c| c.table.restrict_ips = false)
            .bootstrap(boot)
            .build()
            .await
            .unwrap()
    };
    let a = v6_node(Vec::new()).await;
    let dir = std::env::temp_dir().join(format!("dhtkit-crawl-v6-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("crawl.sqlite");
    let mut cfg = CrawlConfig::default();
    cfg.bind = vec!["127.63.0.1:0".parse().unwrap(), "[::1]:0".parse().unwrap()];
    cfg.bootstrap = vec![a.local_addr().to_string()];
    cfg.per_ip_rate = 0;
    cfg.allow_shared_ips = true;
    cfg.fetch.deadline = Duration::from_secs(5);
    let crawler = Crawler::start(cfg, Box::new(SqliteStore::open(&db).unwrap()), None)
        .await
        .unwrap();
    let node = &crawler.nodes()[0];
    assert_eq!(
        node.local_addrs().len(),
        2,
        "the crawler's node is dual-stack"
    );
    let crawler_v6 = node.local_addrs()[1];
    let b = v6_node(vec![a.local_addr().to_string()]).await;
    for d in [&a, &b] {
        tokio::time::timeout(Duration::from_secs(20), d.bootstrapped())
            .await
            .unwrap()
            .unwrap();
        d.make_neighbours().await.unwrap();
    }
    // The announce names the seeder's port; the crawler sees it on its IPv6 socket, from
    // [::1], so the seeder is [::1]:port.
    let announced =
        tokio::time::timeout(Duration::from_secs(20), b.announce(ih, Some(seeder.port())))
            .await
            .unwrap()
            .unwrap();
    assert!(
        announced
            .lookup
            .closest
            .iter()
            .any(|(_, at)| *at == crawler_v6),
        "the announce reached the crawler: {:?}",
        announced.lookup.closest
    );
    let stats = crawler.stats().clone();
    let t0 = Instant::now();
    while CrawlStats::get(&stats.fetched) == 0 && t0.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The BEP 51 walk reaches the IPv6 nodes too (they queried the crawler, so it knows them).
    while CrawlStats::get(&stats.samples_answered) == 0 && t0.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(CrawlStats::get(&stats.fetched), 1, "{:?}", stats.failures());
    assert!(
        CrawlStats::get(&stats.samples_answered) > 0,
        "no IPv6 node answered a sample"
    );
    crawler.shutdown().await;
    a.shutdown().await;
    b.shutdown().await;
    let store = SqliteStore::open_read_only(&db).unwrap();
    let t = store.torrent(&ih).unwrap().expect("the infohash is stored");
    assert_eq!(
        t.metadata.expect("with its metadata").name,
        "seen over IPv6"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_crawler_scrapes_the_seeders_and_leechers_a_swarm_announced() {
    use dhtkit::Dht;
    use dhtkit_crawl::{CrawlConfig, CrawlStats, Crawler, SqliteStore, StoreRead};

    const SEEDS: usize = 4;
    const LEECHERS: usize = 3;
    let info = info_dict("a swarm to count", 20_000);
    let ih = v1(&info);
    // Ten nodes, each on its own 127.66.0.x; the first SEEDS + LEECHERS of them after the
    // first are the swarm, each with an honest metadata peer on its own IP.
    let mut nodes: Vec<Dht> = Vec::new();
    for i in 0..10 {
        let boot = nodes
            .first()
            .map(|n| vec![n.local_addr().to_string()])
            .unwrap_or_default();
        let d = Dht::builder()
            .bind(format!("127.66.0.{}:0", i + 1).parse().unwrap())
            .per_ip_rate(0)
            .bootstrap(boot)
            .build()
            .await
            .unwrap();
        nodes.push(d);
    }
    for d in &nodes[1..] {
        tokio::time::timeout(Duration::from_secs(20), d.bootstrapped())
            .await
            .unwrap()
            .unwrap();
    }
    for d in &nodes {
        d.make_neighbours().await.unwrap();
    }
    for (k, d) in nodes[1..=SEEDS + LEECHERS].iter().enumerate() {
        let ip = d.local_addr().ip();
        let tcp = peer_at(&format!("{ip}:0"), Peer::Honest, info.clone()).await;
        let r = tokio::time::timeout(
            Duration::from_secs(20),
            d.announce_as(ih, Some(tcp.port()), k < SEEDS),
        )
        .await
        .unwrap()
        .unwrap();
        assert!(r.lookup.announced > 0, "announce {k} landed nowhere");
    }
    let dir = std::env::temp_dir().join(format!("dhtkit-crawl-swarm-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("crawl.sqlite");
    let mut cfg = CrawlConfig::default();
    cfg.bind = vec!["127.66.1.1:0".parse().unwrap()];
    cfg.bootstrap = vec![nodes[0].local_addr().to_string()];
    cfg.per_ip_rate = 0;
    cfg.fetch.deadline = Duration::from_secs(5);
    cfg.scrape_rate = 100;
    let crawler = Crawler::start(cfg, Box::new(SqliteStore::open(&db).unwrap()), None)
        .await
        .unwrap();
    let stats = crawler.stats().clone();
    let t0 = Instant::now();
    while CrawlStats::get(&stats.scrapes_counted) == 0 && t0.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(CrawlStats::get(&stats.fetched), 1, "{:?}", stats.failures());
    assert!(
        CrawlStats::get(&stats.scrapes_counted) >= 1,
        "no scrape came back in 60 s ({} started)",
        CrawlStats::get(&stats.scrapes)
    );
    assert!(CrawlStats::get(&stats.scrape_queries) > 0);
    crawler.shutdown().await;
    for d in &nodes {
        d.shutdown().await;
    }
    let store = SqliteStore::open_read_only(&db).unwrap();
    let t = store.torrent(&ih).unwrap().expect("the infohash is stored");
    let swarm = t.swarm.expect("its swarm is stored");
    assert_eq!(
        (swarm.seeders, swarm.leechers),
        (SEEDS as u64, LEECHERS as u64),
        "the counts the swarm announced"
    );
    assert_eq!(t.last_seeded, Some(swarm.at));
    // The info dictionary is kept as fetched, to be served back over BEP 9.
    assert_eq!(store.info_dict(&ih).unwrap().as_deref(), Some(&info[..]));
    let _ = std::fs::remove_dir_all(&dir);
}
