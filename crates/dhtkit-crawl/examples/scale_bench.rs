//! The index at scale: imports generated torrents into a store through the import path
//! (`Store::write` in batches of 5,000, as `dhtkit import` does), and at each checkpoint
//! (100k, 1M, 3M, 10M, 30M torrents) reports the import rate since the last one, bytes on
//! disk per torrent, and search latency (p50 and p95 of 40 queries each) for a common word, two
//! common words, a rare word, and a common word sorted by seeders.
//!
//! The data is deterministic and shaped like a DHT index: titles of two to four words drawn
//! from a 200,000-word vocabulary by a Zipf law (s = 1.1), then one to three release tags
//! from a list of 40 (`1080p`, `x264`, `WEB-DL`, years, ...); file counts heavy-tailed (55%
//! one file, 25% two to five, 15% six to thirty, 5% up to 300), each file path under the
//! title; a third of the torrents scraped.
//!
//! `cargo run --release -p dhtkit-crawl --example scale_bench -- sqlite|PG_URL TORRENTS [DIR]`
//! (SQLite writes `DIR/scale.sqlite`, default the temporary directory, and removes it after;
//! for PostgreSQL the bench creates and drops a database `dhtkit_scale` on that server).

use std::time::Instant;

use dhtkit_crawl::metadata::{FileEntry, TorrentInfo};
use dhtkit_crawl::store::{
    Batch, Fetched, Scraped, SearchQuery, Sighting, Sort, Store, StoreRead, Swarm,
};
use dhtkit_crawl::{PostgresStore, SqliteStore};
use dhtkit_proto::Id;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
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

const TAGS: &[&str] = &[
    "1080p",
    "720p",
    "2160p",
    "x264",
    "x265",
    "HEVC",
    "WEB-DL",
    "WEBRip",
    "BluRay",
    "HDTV",
    "AAC",
    "AC3",
    "DTS",
    "FLAC",
    "MP3",
    "320kbps",
    "Complete",
    "Season",
    "Multi",
    "SUBS",
    "2015",
    "2016",
    "2017",
    "2018",
    "2019",
    "2020",
    "2021",
    "2022",
    "2023",
    "2024",
    "EN",
    "FR",
    "DE",
    "ES",
    "RUS",
    "JPN",
    "Remastered",
    "Deluxe",
    "Edition",
    "PROPER",
];
const EXTS: &[&str] = &[
    "mkv", "mp4", "avi", "flac", "mp3", "jpg", "nfo", "srt", "pdf", "epub",
];
const SYLLABLES: &[&str] = &[
    "ka", "lo", "mi", "ra", "ne", "to", "su", "vi", "de", "ba", "zo", "fi", "gu", "ha", "je", "qu",
    "wy", "xe", "pe", "cor", "lin", "dar", "mor", "ven", "tal", "rin", "sol", "mar",
];

/// The 200,000 title words, and the cumulative Zipf weights to draw them by.
struct Vocab {
    words: Vec<String>,
    cumulative: Vec<f64>,
}

impl Vocab {
    fn new(n: usize) -> Vocab {
        let words: Vec<String> = (0..n)
            .map(|i| {
                let mut w = String::new();
                let mut k = i + 1;
                while k > 0 {
                    w.push_str(SYLLABLES[k % SYLLABLES.len()]);
                    k /= SYLLABLES.len();
                }
                let mut c = w.chars();
                c.next()
                    .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
                    .unwrap_or_default()
            })
            .collect();
        let mut cumulative = Vec::with_capacity(n);
        let mut sum = 0.0;
        for r in 1..=n {
            sum += 1.0 / (r as f64).powf(1.1);
            cumulative.push(sum);
        }
        Vocab { words, cumulative }
    }

    fn draw(&self, r: &mut Rng) -> &str {
        let x = r.unit() * self.cumulative.last().unwrap();
        let i = self.cumulative.partition_point(|c| *c < x);
        &self.words[i.min(self.words.len() - 1)]
    }
}

fn torrent(r: &mut Rng, v: &Vocab, n: u64, now: i64) -> (Id, TorrentInfo, Option<Swarm>) {
    let mut title = Vec::new();
    for _ in 0..2 + r.below(3) {
        title.push(v.draw(r).to_string());
    }
    let mut name = title.join(".");
    for _ in 0..1 + r.below(3) {
        name.push('.');
        name.push_str(TAGS[r.below(TAGS.len() as u64) as usize]);
    }
    let p = r.unit();
    let files = if p < 0.55 {
        1
    } else if p < 0.80 {
        2 + r.below(4)
    } else if p < 0.95 {
        6 + r.below(25)
    } else {
        31 + r.below(270)
    };
    let list: Vec<FileEntry> = (0..files)
        .map(|k| FileEntry {
            path: format!(
                "{name}/{} {k:03}.{}",
                title[0],
                EXTS[r.below(EXTS.len() as u64) as usize]
            ),
            length: 1_000 + r.below(2_000_000_000 / files),
        })
        .collect();
    let swarm = n.is_multiple_of(3).then(|| Swarm {
        seeders: r.below(500),
        leechers: r.below(100),
        at: now,
    });
    (r.id(), TorrentInfo::new(name, 1 << 20, list), swarm)
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() - 1) as f64 * p).round() as usize]
}

/// p50 and p95 in milliseconds of `q` for each of `texts`.
fn timed(s: &dyn StoreRead, texts: &[String], sort: Sort) -> (f64, f64, usize) {
    let mut ms = Vec::new();
    let mut hits = 0;
    for t in texts {
        let q = SearchQuery {
            text: t.clone(),
            sort,
            limit: 20,
            ..SearchQuery::default()
        };
        let t0 = Instant::now();
        hits += s.search(&q).unwrap().len();
        ms.push(t0.elapsed().as_secs_f64() * 1000.0);
    }
    (
        percentile(&mut ms, 0.5),
        percentile(&mut ms, 0.95),
        hits / texts.len().max(1),
    )
}

trait Both: Store + StoreRead {}

/// Bytes on disk of a store.
type SizeOf = Box<dyn Fn(&mut dyn Both) -> u64>;
impl<T: Store + StoreRead> Both for T {}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let target = args.get(1).map(String::as_str).unwrap_or("sqlite");
    let total: u64 = args
        .get(2)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let dir = args
        .get(3)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
        .join(format!("dhtkit-scale-{}", std::process::id()));
    let (mut store, size): (Box<dyn Both>, SizeOf) = if target == "sqlite" {
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("scale.sqlite");
        (
            Box::new(SqliteStore::open(&path).unwrap()),
            Box::new(|s: &mut dyn Both| {
                s.compact().unwrap();
                s.size().unwrap().bytes
            }),
        )
    } else {
        let mut c = postgres::Client::connect(target, postgres::NoTls).unwrap();
        c.batch_execute("DROP DATABASE IF EXISTS dhtkit_scale")
            .unwrap();
        c.batch_execute("CREATE DATABASE dhtkit_scale").unwrap();
        let base = target.rsplit_once('/').map_or(target, |(b, _)| b);
        (
            Box::new(PostgresStore::open(&format!("{base}/dhtkit_scale"), "bench").unwrap()),
            Box::new(|s: &mut dyn Both| s.size().unwrap().bytes),
        )
    };
    let now = 1_790_000_000;
    let vocab = Vocab::new(200_000);
    let mut r = Rng(0x5eed_1234_abcd_9876);
    // Queries: words of the vocabulary's head and tail, and tags.
    let common: Vec<String> = (0..40).map(|i| TAGS[i % TAGS.len()].to_string()).collect();
    let two: Vec<String> = (0..40)
        .map(|i| format!("{} {}", TAGS[i % 5], TAGS[3 + i % 4]))
        .collect();
    let rare: Vec<String> = (0..40)
        .map(|i| vocab.words[20_000 + i * 4_000].clone())
        .collect();
    let checkpoints: Vec<u64> = [100_000, 1_000_000, 3_000_000, 10_000_000, 30_000_000]
        .into_iter()
        .filter(|c| *c <= total)
        .chain(std::iter::once(total))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    println!(
        "| torrents | import torrents/s | files | bytes/torrent | 1 common word p50/p95 ms | 2 common words p50/p95 | rare word p50/p95 | common, by seeders p50/p95 |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let (mut done, mut files) = (0u64, 0u64);
    for cp in checkpoints {
        let t0 = Instant::now();
        let from = done;
        while done < cp {
            let mut b = Batch::default();
            for _ in 0..5_000.min(cp - done) {
                let (ih, info, swarm) = torrent(&mut r, &vocab, done, now);
                files += info.files.len() as u64;
                let at = now - (total - done) as i64 / 10;
                b.sightings.push(Sighting {
                    info_hash: ih,
                    sources: 1,
                    first: at,
                    last: at,
                    count: 1,
                });
                if let Some(s) = swarm {
                    b.scrapes.push(Scraped {
                        info_hash: ih,
                        swarm: s,
                        next_at: now + 3_600,
                    });
                }
                b.torrents.push(Fetched {
                    info_hash: ih,
                    info,
                    at,
                    peer: "0.0.0.0:0".parse().unwrap(),
                    info_dict: None,
                });
                done += 1;
            }
            store.write(&b).unwrap();
        }
        let rate = (done - from) as f64 / t0.elapsed().as_secs_f64();
        let bytes = size(&mut *store);
        let s: &dyn StoreRead = &*store;
        let _ = timed(s, &common[..5], Sort::Relevance); // warm
        let (c50, c95, _) = timed(s, &common, Sort::Relevance);
        let (t50, t95, _) = timed(s, &two, Sort::Relevance);
        let (r50, r95, rh) = timed(s, &rare, Sort::Relevance);
        let (s50, s95, _) = timed(s, &common, Sort::Seeders);
        println!(
            "| {done} | {rate:.0} | {files} | {} | {c50:.1} / {c95:.1} | {t50:.1} / {t95:.1} | {r50:.2} / {r95:.2} ({rh} hits) | {s50:.1} / {s95:.1} |",
            bytes / done
        );
    }
    drop(store);
    if target == "sqlite" {
        let _ = std::fs::remove_dir_all(&dir);
    }
}
