//! Embedding the crawler: run it for a while into a SQLite file, print its counters, then
//! search what it found. The crawler-server seed's use, the Rust way.
//!
//! `cargo run --release -p dhtkit-crawl --example crawl -- DB_PATH SECONDS [BOOTSTRAP]`
//! (with no BOOTSTRAP, the public routers).

use std::time::Duration;

use dhtkit_crawl::{CrawlConfig, CrawlStats, Crawler, SqliteStore, StoreRead};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let db = args.next().unwrap_or_else(|| "crawl.sqlite".into());
    let secs: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(60);
    let mut cfg = CrawlConfig::default();
    cfg.bind = vec!["0.0.0.0:0".parse()?];
    cfg.bootstrap = args.collect();
    let store = SqliteStore::open(db.as_ref())?;
    let crawler = Crawler::start(cfg, Box::new(store), None).await?;
    for _ in 0..secs.div_ceil(10) {
        tokio::time::sleep(Duration::from_secs(10)).await;
        let s = crawler.stats();
        println!(
            "seen {} infohashes ({} new), metadata for {}, failures {:?}",
            CrawlStats::get(&s.sightings),
            CrawlStats::get(&s.new_infohashes),
            CrawlStats::get(&s.fetched),
            s.failures()
        );
    }
    crawler.shutdown().await;
    let store = SqliteStore::open_read_only(db.as_ref())?;
    for hit in store.search(&dhtkit_crawl::store::SearchQuery::words("1080p", 10))? {
        println!("{} {} ({} bytes)", hit.info_hash, hit.name, hit.size);
    }
    Ok(())
}
