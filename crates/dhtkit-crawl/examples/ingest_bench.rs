//! Store ingestion: discovered rows per second (batched), torrents with file lists per
//! second, bytes on disk per row and per torrent, search latency, and the memory of a full
//! seen-set. SQLite always; PostgreSQL too, side by side, when a URL is given (the bench
//! creates and drops its own databases there).
//!
//! `cargo run --release -p dhtkit-crawl --example ingest_bench -- [SIGHTINGS] [TORRENTS] [PG_URL]`
//! (defaults 1,000,000 and 100,000). SQLite files go to a temporary directory, removed after.

use std::time::Instant;

use dhtkit_crawl::metadata::{parse, FileEntry, TorrentInfo};
use dhtkit_crawl::seen::BoundedSet;
use dhtkit_crawl::store::{Batch, Fetched, Sighting};
use dhtkit_crawl::{PostgresStore, SqliteStore, Store, StoreRead};
use dhtkit_proto::Id;

/// A deterministic pseudo-random generator (xorshift), so every run writes the same data.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn id(&mut self) -> Id {
        let mut b = [0u8; 20];
        for c in b.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            c.copy_from_slice(&v[..c.len()]);
        }
        Id(b)
    }
}

const WORDS: &[&str] = &[
    "Aurora", "Basalt", "Cobalt", "Dahlia", "Ember", "Fjord", "Garnet", "Harbor", "Indigo",
    "Juniper", "Kestrel", "Lagoon", "Meadow", "Nimbus", "Orchid", "Prairie", "Quartz", "Raven",
];

fn name(r: &mut Rng) -> String {
    let w = |r: &mut Rng| WORDS[(r.next() % WORDS.len() as u64) as usize];
    format!(
        "{}.{}.S{:02}E{:02}.1080p.WEB-DL.x264-{}",
        w(r),
        w(r),
        r.next() % 20,
        r.next() % 24,
        w(r).to_uppercase()
    )
}

fn dir_size(d: &std::path::Path) -> u64 {
    std::fs::read_dir(d)
        .unwrap()
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum()
}

/// What one backend did.
struct Figures {
    rows_per_s: f64,
    bytes_per_row: f64,
    torrents_per_s: f64,
    bytes_per_torrent: f64,
    search_ms: f64,
    hits: usize,
}

fn sightings_batch(rng: &mut Rng, n: usize, at: i64) -> Batch {
    Batch {
        sightings: (0..n)
            .map(|i| Sighting {
                info_hash: rng.id(),
                sources: 1,
                first: at + i as i64,
                last: at + i as i64,
                count: 1,
            })
            .collect(),
        ..Batch::default()
    }
}

fn torrents_batch(rng: &mut Rng, n: usize, template: &TorrentInfo) -> Batch {
    let mut batch = Batch::default();
    for _ in 0..n {
        let ih = rng.id();
        let mut info = template.clone();
        info.name = name(rng);
        let count = 1 + (rng.next() % 20) as usize;
        info.files = (0..count)
            .map(|k| FileEntry {
                path: format!("{}/{}.part{k:02}.mkv", info.name, WORDS[k % WORDS.len()]),
                length: rng.next() % (1 << 31),
            })
            .collect();
        info.file_count = count as u64;
        info.total_size = info.files.iter().map(|f| f.length).sum();
        batch.sightings.push(Sighting {
            info_hash: ih,
            sources: 2,
            first: 1_790_000_000,
            last: 1_790_000_000,
            count: 1,
        });
        batch.torrents.push(Fetched {
            info_hash: ih,
            info,
            at: 1_790_000_000,
            peer: "127.0.0.1:6881".parse().unwrap(),
            info_dict: None,
        });
    }
    batch
}

/// Writes `sightings` discovered rows to `a`, then `torrents` torrents to `b` (fresh stores
/// of one backend), and searches `b`. `size` measures a store's bytes once it is dropped.
fn run(
    mut a: Box<dyn Store>,
    mut b: impl Store + StoreRead,
    sightings: usize,
    torrents: usize,
    size: impl Fn(&str) -> u64,
) -> Figures {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let template = parse(b"d6:lengthi1e4:name1:x12:piece lengthi262144ee", 1).unwrap();
    let t0 = Instant::now();
    let mut done = 0;
    while done < sightings {
        let n = (sightings - done).min(10_000);
        a.write(&sightings_batch(&mut rng, n, 1_790_000_000 + done as i64))
            .unwrap();
        done += n;
    }
    let rows_secs = t0.elapsed().as_secs_f64();
    drop(a);
    let t0 = Instant::now();
    let mut done = 0;
    while done < torrents {
        let n = (torrents - done).min(1_000);
        b.write(&torrents_batch(&mut rng, n, &template)).unwrap();
        done += n;
    }
    let torrent_secs = t0.elapsed().as_secs_f64();
    // The median of 21 searches for two words, after one warm-up.
    let _ = b
        .search(&dhtkit_crawl::store::SearchQuery::words(
            "aurora kestrel",
            20,
        ))
        .unwrap();
    let mut times = Vec::new();
    let mut hits = 0;
    for _ in 0..21 {
        let t = Instant::now();
        hits = b
            .search(&dhtkit_crawl::store::SearchQuery::words(
                "aurora kestrel",
                20,
            ))
            .unwrap()
            .len();
        times.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    drop(b);
    Figures {
        rows_per_s: sightings as f64 / rows_secs,
        bytes_per_row: size("a") as f64 / sightings as f64,
        torrents_per_s: torrents as f64 / torrent_secs,
        bytes_per_torrent: size("b") as f64 / torrents as f64,
        search_ms: times[times.len() / 2],
        hits,
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let sightings: usize = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let torrents: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let pg = args.next();
    let dir = std::env::temp_dir().join(format!("dhtkit-ingest-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut results = vec![(
        "SQLite",
        run(
            Box::new(SqliteStore::open(&dir.join("a/crawl.sqlite")).unwrap()),
            SqliteStore::open(&dir.join("b/crawl.sqlite")).unwrap(),
            sightings,
            torrents,
            |which| dir_size(&dir.join(which)),
        ),
    )];
    let _ = std::fs::remove_dir_all(&dir);
    if let Some(admin) = pg {
        let base = admin
            .rsplit_once('/')
            .map_or(admin.as_str(), |(b, _)| b)
            .to_string();
        let db = |which: &str| format!("dhtkit_bench_{}_{which}", std::process::id());
        let mut c = postgres::Client::connect(&admin, postgres::NoTls).unwrap();
        for w in ["a", "b"] {
            c.batch_execute(&format!("CREATE DATABASE {}", db(w)))
                .unwrap();
        }
        let url = |w: &str| format!("{base}/{}", db(w));
        let size = |w: &str| -> u64 {
            let mut c = postgres::Client::connect(&admin, postgres::NoTls).unwrap();
            c.query_one(&format!("SELECT pg_database_size('{}')::int8", db(w)), &[])
                .unwrap()
                .get::<_, i64>(0) as u64
        };
        let f = run(
            Box::new(PostgresStore::open(&url("a"), "bench").unwrap()),
            PostgresStore::open(&url("b"), "bench").unwrap(),
            sightings,
            torrents,
            size,
        );
        results.push(("PostgreSQL", f));
        for w in ["a", "b"] {
            let _ = c.batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", db(w)));
        }
    }
    println!("| backend | discovered rows/s | bytes per row | torrents/s (with files) | bytes per torrent | search, median of 21 |");
    println!("|---|---|---|---|---|---|");
    for (name, f) in &results {
        println!(
            "| {name} | {:.0} | {:.0} | {:.0} | {:.0} | {:.1} ms ({} hits) |",
            f.rows_per_s,
            f.bytes_per_row,
            f.torrents_per_s,
            f.bytes_per_torrent,
            f.search_ms,
            f.hits
        );
    }

    // A full seen-set at the default capacity.
    let mut rng = Rng(7);
    let before = dhtkit_crawl::stats::rss_bytes();
    let mut seen = BoundedSet::new(500_000);
    for _ in 0..600_000 {
        seen.insert(rng.id());
    }
    let after = dhtkit_crawl::stats::rss_bytes();
    println!(
        "seen-set of {} infohashes: {:.1} MB resident",
        seen.len(),
        (after.saturating_sub(before)) as f64 / 1e6
    );
}
