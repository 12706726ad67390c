//! # dhtkit-crawl
//!
//! An honest DHT crawler and indexer: it runs real DHT nodes (real tokens, its own ids, real
//! answers), learns infohashes from what other nodes ask and announce to them and from BEP 51
//! samples, finds peers with ordinary `get_peers` lookups, fetches each torrent's metadata over
//! the peer wire (BEP 3, 10, 9), checks it against the infohash, and keeps it in a store
//! (SQLite by default).
//!
//! | module | owns |
//! |---|---|
//! | [`cap`] | the disk cap: what is deleted first when the store reaches `--max-db-size` |
//! | [`crawler`] | the nodes, passive discovery, and the pipeline's wiring |
//! | [`discovery`] | the decisions, without I/O: whom to sample when, how peers are found, what to fetch, the packet budget |
//! | `hub` | discovery's tokio side: carries out its actions, feeds it what comes back, batches sightings |
//! | [`interchange`] | magnetico databases and JSON lines, in and out (resumable imports) |
//! | [`metadata`] | fetching and reading info dictionaries |
//! | [`store`] | the [`store::Store`] / [`store::StoreRead`] traits; SQLite (default) and PostgreSQL (several crawlers, one index) backends |
//! | [`scrape`] | when named torrents are scraped again (BEP 33), within a packet budget |
//! | [`seen`] | the bounded seen-set |
//! | [`view`] | the JSON shapes of hits and torrents, magnet links, sizes and times for people |
//! | [`serve`] | giving stored info dictionaries back to the swarm over BEP 9 |
//! | [`stats`] | what each stage counts |
//!
//! What it refuses to do: answer with anything but its real state (no spoofed ids next to each
//! querier, no fake `values`), connect for metadata to nodes that merely *asked* about an
//! infohash (only to announced peers with valid tokens and to peers in `values`), send to
//! private, reserved or bogon addresses unless bound to one, or exceed its packet budget.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(feature = "runtime")]
pub mod cap;
#[cfg(feature = "runtime")]
pub mod crawler;
pub mod discovery;
#[cfg(feature = "runtime")]
mod hub;
#[cfg(feature = "runtime")]
pub mod interchange;
#[cfg(feature = "runtime")]
pub mod metadata;
#[cfg(feature = "runtime")]
pub mod scrape;
pub mod seen;
#[cfg(feature = "runtime")]
pub mod serve;
mod source;
#[cfg(feature = "runtime")]
pub mod stats;
#[cfg(feature = "runtime")]
pub mod store;
#[cfg(feature = "runtime")]
pub mod view;
#[cfg(feature = "runtime")]
mod writer;

#[cfg(feature = "runtime")]
pub use crawler::{CrawlConfig, CrawlError, Crawler};
pub use source::Source;
#[cfg(feature = "runtime")]
pub use stats::CrawlStats;
#[cfg(feature = "runtime")]
pub use store::{PostgresStore, SqliteStore, Store, StoreError, StoreRead};
#[cfg(feature = "runtime")]
pub use writer::torrent_json;

/// A random id from the operating system's generator.
#[cfg(feature = "runtime")]
pub(crate) fn random_id() -> dhtkit::Id {
    let mut b = [0u8; 20];
    let _ = getrandom::fill(&mut b);
    dhtkit::Id(b)
}

/// The default database: `dhtkit/crawl.sqlite` in the per-user data directory
/// (`$XDG_DATA_HOME`, else `~/.local/share`; `~/Library/Application Support` on macOS).
#[cfg(feature = "runtime")]
pub fn default_db_path() -> std::path::PathBuf {
    use std::path::PathBuf;
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let base = match std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        Some(d) => PathBuf::from(d),
        None if cfg!(target_os = "macos") => home
            .unwrap_or_else(|| PathBuf::from("."))
            .join("Library/Application Support"),
        None => home
            .unwrap_or_else(|| PathBuf::from("."))
            .join(".local/share"),
    };
    base.join("dhtkit").join("crawl.sqlite")
}
