//! SQLite ingestion: discovered rows per second (batched), torrents with file lists per
//! second, bytes on disk per row and per torrent, and the memory of a full seen-set.
//!
//! `cargo run --release -p dhtkit-crawl --example ingest_bench -- [SIGHTINGS] [TORRENTS]`
//! (defaults 1,000,000 and 100,000). Writes to a temporary directory and removes it.

use std::time::Instant;

use dhtkit_crawl::metadata::{parse, FileEntry};
use dhtkit_crawl::seen::BoundedSet;
use dhtkit_crawl::store::{Batch, Fetched, Sighting};
use dhtkit_crawl::{SqliteStore, Store};
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

fn main() {
    let mut args = std::env::args().skip(1);
    let sightings: usize = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let torrents: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let dir = std::env::temp_dir().join(format!("dhtkit-ingest-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let template = parse(b"d6:lengthi1e4:name1:x12:piece lengthi262144ee", 1).unwrap();

    // Discovered infohashes only, in batches of 10,000 (about what one second holds at
    // internet scale).
    let a = dir.join("sightings");
    let mut store = SqliteStore::open(&a.join("crawl.sqlite")).unwrap();
    let t0 = Instant::now();
    let mut done = 0;
    while done < sightings {
        let n = (sightings - done).min(10_000);
        let batch = Batch {
            sightings: (0..n)
                .map(|i| Sighting {
                    info_hash: rng.id(),
                    sources: 1,
                    first: 1_790_000_000 + (done + i) as i64,
                    last: 1_790_000_000 + (done + i) as i64,
                    count: 1,
                })
                .collect(),
            torrents: Vec::new(),
        };
        store.write(&batch).unwrap();
        done += n;
    }
    let secs = t0.elapsed().as_secs_f64();
    drop(store); // closing checkpoints the WAL into the database
    let size_a = dir_size(&a);
    println!(
        "discovered rows: {sightings} in {secs:.2} s = {:.0} rows/s; {:.0} bytes per row on disk",
        sightings as f64 / secs,
        size_a as f64 / sightings as f64
    );

    // Torrents with metadata (names, 1-20 files each), in batches of 1,000.
    let b = dir.join("torrents");
    let mut store = SqliteStore::open(&b.join("crawl.sqlite")).unwrap();
    let t0 = Instant::now();
    let (mut done, mut files) = (0, 0u64);
    while done < torrents {
        let n = (torrents - done).min(1_000);
        let mut batch = Batch::default();
        for _ in 0..n {
            let ih = rng.id();
            let mut info = template.clone();
            info.name = name(&mut rng);
            let count = 1 + (rng.next() % 20) as usize;
            info.files = (0..count)
                .map(|k| FileEntry {
                    path: format!("{}/{}.part{k:02}.mkv", info.name, WORDS[k % WORDS.len()]),
                    length: rng.next() % (1 << 31),
                })
                .collect();
            info.file_count = count as u64;
            info.total_size = info.files.iter().map(|f| f.length).sum();
            files += count as u64;
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
            });
        }
        store.write(&batch).unwrap();
        done += n;
    }
    let secs = t0.elapsed().as_secs_f64();
    let t_search = Instant::now();
    let hits = dhtkit_crawl::StoreRead::search(&store, "aurora kestrel", 20, 0).unwrap();
    let search_ms = t_search.elapsed().as_secs_f64() * 1000.0;
    drop(store);
    let size_b = dir_size(&b);
    println!(
        "torrents with file lists: {torrents} ({files} files) in {secs:.2} s = {:.0} torrents/s; {:.0} bytes per torrent on disk",
        torrents as f64 / secs,
        size_b as f64 / torrents as f64
    );
    println!(
        "search \"aurora kestrel\" over {torrents} torrents: {} hits, {search_ms:.1} ms",
        hits.len()
    );

    // A full seen-set at the default capacity.
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
    let _ = std::fs::remove_dir_all(&dir);
}
