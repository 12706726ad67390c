//! The disk cap during a crawl: a crawler on SQLite with `max_db_size` 2 MiB hears
//! `get_peers` for tens of thousands of new infohashes from a loopback client. Below the cap
//! every infohash it heard is in the database; past it, the database file and its WAL
//! (sampled every 20 ms) never pass the cap by more than one batch, the oldest unnamed
//! infohashes go first, and the crawler keeps recording what it hears.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dhtkit::Dht;
use dhtkit_crawl::store::StoreRead;
use dhtkit_crawl::{CrawlConfig, CrawlStats, Crawler, SqliteStore};
use dhtkit_proto::Id;
use tokio::net::UdpSocket;

fn ih(n: u32) -> Id {
    let mut b = [0u8; 20];
    b[..4].copy_from_slice(&n.to_be_bytes());
    b[4..8].copy_from_slice(&n.wrapping_mul(2_654_435_761).to_le_bytes());
    b[19] = 0xc4;
    Id(b)
}

/// A `get_peers` query for `ih`, bencoded.
fn get_peers(ih: &Id, tid: u32) -> Vec<u8> {
    let mut q = b"d1:ad2:id20:".to_vec();
    q.extend_from_slice(&[0x42; 20]);
    q.extend_from_slice(b"9:info_hash20:");
    q.extend_from_slice(&ih.0);
    q.extend_from_slice(b"e1:q9:get_peers1:t4:");
    q.extend_from_slice(&tid.to_be_bytes());
    q.extend_from_slice(b"1:y1:qe");
    q
}

/// Sends `get_peers` for infohashes `from..to_n` to `to` from a plain UDP socket, about
/// 1,500 a second, under the node's reply budget (answers are not awaited: the crawler
/// records what it hears).
async fn ask(sock: &UdpSocket, to: SocketAddr, from: u32, to_n: u32) {
    for (k, n) in (from..to_n).enumerate() {
        let _ = sock.send_to(&get_peers(&ih(n), n), to).await;
        if k % 150 == 149 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Waits (bounded) until what the crawler heard is written: the distinct infohashes it
/// heard, once they stop growing and as many rows have gone to the store.
async fn settled(stats: &CrawlStats) -> u64 {
    let t0 = Instant::now();
    let mut last = u64::MAX;
    loop {
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        let heard = CrawlStats::get(&stats.new_infohashes);
        let written = CrawlStats::get(&stats.rows_written);
        if (heard == last && written >= heard) || t0.elapsed() > Duration::from_secs(60) {
            return heard;
        }
        last = heard;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_disk_cap_holds_during_a_crawl_and_nothing_is_lost_below_it() {
    const CAP: u64 = 2 << 20;
    let dir = std::env::temp_dir().join(format!("dhtkit-crawl-cap-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("crawl.sqlite");
    let client = Dht::builder()
        .bind("127.67.0.1:0".parse().unwrap())
        .bootstrap(Vec::<String>::new())
        .build()
        .await
        .unwrap();
    let sock = UdpSocket::bind("127.67.0.2:0").await.unwrap();
    let mut cfg = CrawlConfig::default();
    cfg.bind = vec!["127.67.1.1:0".parse().unwrap()];
    cfg.bootstrap = vec![client.local_addr().to_string()];
    cfg.per_ip_rate = 0;
    cfg.metadata = false;
    cfg.sample = false;
    cfg.max_db_size = Some(CAP);
    let crawler = Crawler::start(cfg, Box::new(SqliteStore::open(&db).unwrap()), None)
        .await
        .unwrap();
    let at = crawler.nodes()[0].local_addrs()[0];
    let stats = crawler.stats().clone();

    // Sizes of the file, and of the file and its WAL, every 20 ms, for the whole crawl.
    let max_seen = Arc::new(AtomicU64::new(0));
    let max_file = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (max_seen, max_file, done, db) =
            (max_seen.clone(), max_file.clone(), done.clone(), db.clone());
        std::thread::spawn(move || {
            let mut wal = db.clone().into_os_string();
            wal.push("-wal");
            let t0 = Instant::now();
            while !done.load(Ordering::Relaxed) && t0.elapsed() < Duration::from_secs(300) {
                let file = std::fs::metadata(&db).map_or(0, |m| m.len());
                let size = file + std::fs::metadata(&wal).map_or(0, |m| m.len());
                max_file.fetch_max(file, Ordering::Relaxed);
                max_seen.fetch_max(size, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };

    // Below the cap: every infohash heard is there.
    ask(&sock, at, 0, 4_000).await;
    let heard = settled(&stats).await;
    assert!(
        heard >= 3_900,
        "the crawler heard {heard} of 4,000 ({:?} dropped)",
        CrawlStats::get(&stats.dropped)
    );
    {
        let ro = SqliteStore::open_read_only(&db).unwrap();
        assert_eq!(
            ro.totals().unwrap().infohashes,
            heard,
            "nothing lost below the cap"
        );
    }
    assert_eq!(CrawlStats::get(&stats.db_evicted), 0);

    // Far past it: 36,000 more (about two and a half times what fits).
    let t0 = Instant::now();
    ask(&sock, at, 4_000, 40_000).await;
    let rows_per_second = 36_000.0 / t0.elapsed().as_secs_f64();
    let heard = settled(&stats).await;
    assert!(heard >= 38_000, "the crawler heard {heard} of 40,000");
    let evicted = CrawlStats::get(&stats.db_evicted);
    assert!(evicted > 0, "the cap was reached");
    // Still recording after the evictions.
    ask(&sock, at, 100_000, 100_001).await;
    let heard = settled(&stats).await;
    crawler.shutdown().await;
    client.shutdown().await;
    done.store(true, Ordering::Relaxed);
    sampler.join().unwrap();

    // The file never passes the cap; with its WAL, never by more than one batch: the
    // largest WAL a batch left, as the store thread measured it (and, for eviction's own
    // rounds, the WAL budget of 256 KiB).
    let batch_bytes = CrawlStats::get(&stats.db_batch_wal_max).max(256 << 10);
    let (max, file) = (
        max_seen.load(Ordering::Relaxed),
        max_file.load(Ordering::Relaxed),
    );
    assert!(
        file <= CAP,
        "the database file reached {file} bytes against a cap of {CAP}"
    );
    assert!(
        max <= CAP + batch_bytes,
        "the database and its WAL reached {max} bytes against a cap of {CAP} (one batch {batch_bytes})"
    );
    assert!(batch_bytes < CAP / 2, "a batch is {batch_bytes} bytes");
    let ro = SqliteStore::open_read_only(&db).unwrap();
    let left = ro.totals().unwrap().infohashes;
    assert_eq!(
        left + evicted,
        heard,
        "every infohash heard is kept or was evicted"
    );
    assert!(
        ro.torrent(&ih(0)).unwrap().is_none(),
        "the oldest went first"
    );
    assert!(
        ro.torrent(&ih(100_000)).unwrap().is_some(),
        "the newest is kept"
    );
    eprintln!(
        "cap {CAP}: file at most {file} bytes, with the WAL {max}, one batch {batch_bytes}; {evicted} rows evicted, {left} kept, {rows_per_second:.0} rows/s"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
