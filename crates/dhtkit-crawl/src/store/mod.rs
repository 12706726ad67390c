//! Where discoveries go: the [`Store`] trait (writes, in batches) and [`StoreRead`] (search,
//! show, export), with SQLite as the default backend.
//!
//! Discovery never talks to a database: it hands [`Batch`]es to a writer thread, which owns the
//! store and commits each batch in one transaction. Another backend (PostgreSQL, when several
//! crawlers share a store) implements the same two traits.

mod postgres;
mod sqlite;

use std::net::SocketAddr;
use std::path::PathBuf;

use dhtkit_proto::Id;

use crate::metadata::{FileEntry, TorrentInfo};

pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

/// True for `postgres://` and `postgresql://` URLs.
pub fn is_postgres_url(db: &str) -> bool {
    db.starts_with("postgres://") || db.starts_with("postgresql://")
}

/// Opens a store for writing: PostgreSQL for a `postgres://` URL (rows attributed to
/// `crawler`), otherwise the SQLite file at that path.
pub fn open_writer(db: &str, crawler: &str) -> Result<Box<dyn Store>, StoreError> {
    Ok(if is_postgres_url(db) {
        Box::new(PostgresStore::open(db, crawler)?)
    } else {
        Box::new(SqliteStore::open(std::path::Path::new(db))?)
    })
}

/// Opens a store read-only (search, show, export, the web page).
pub fn open_reader(db: &str) -> Result<Box<dyn StoreRead + Send>, StoreError> {
    Ok(if is_postgres_url(db) {
        Box::new(PostgresStore::open_read_only(db)?)
    } else {
        Box::new(SqliteStore::open_read_only(std::path::Path::new(db))?)
    })
}

pub use crate::source::Source;

/// Sightings of one infohash since the last batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sighting {
    /// The infohash.
    pub info_hash: Id,
    /// Sources, as [`Source::bit`]s.
    pub sources: i64,
    /// First and last time seen in this batch (Unix seconds).
    pub first: i64,
    /// Last time seen.
    pub last: i64,
    /// Times seen in this batch.
    pub count: i64,
}

/// Metadata fetched and verified for an infohash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// The infohash.
    pub info_hash: Id,
    /// What the info dictionary says.
    pub info: TorrentInfo,
    /// When it was fetched (Unix seconds).
    pub at: i64,
    /// The peer it came from.
    pub peer: SocketAddr,
    /// The info dictionary as fetched (its hash is the infohash), kept to serve it back to
    /// the swarm over BEP 9; `None` when not kept.
    pub info_dict: Option<Vec<u8>>,
}

/// A BEP 33 scrape of one torrent's swarm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Swarm {
    /// Seeders (distinct IPs, estimated from the nodes' Bloom filters).
    pub seeders: u64,
    /// Leechers (distinct IPs).
    pub leechers: u64,
    /// When it was scraped (Unix seconds).
    pub at: i64,
}

/// A scrape to write: the counts, and when the torrent is due again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scraped {
    /// The infohash.
    pub info_hash: Id,
    /// What the scrape found.
    pub swarm: Swarm,
    /// When to scrape it next (Unix seconds), from [`crate::scrape::rescrape_after`].
    pub next_at: i64,
}

/// A named torrent due for a scrape ([`Store::due_scrapes`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Due {
    /// The infohash.
    pub info_hash: Id,
    /// When it was first seen (its age decides how soon it is due again).
    pub first_seen: i64,
}

/// One transaction's worth of writes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    /// Infohashes seen.
    pub sightings: Vec<Sighting>,
    /// Metadata fetched.
    pub torrents: Vec<Fetched>,
    /// Swarms scraped (only torrents already in the store are updated).
    pub scrapes: Vec<Scraped>,
    /// How far an import has come, recorded in the same transaction as its rows (so that a
    /// resumed import starts exactly after the last batch that landed).
    pub import_mark: Option<ImportMark>,
}

/// An import's progress ([`Store::import_position`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportMark {
    /// What is imported: `magnetico:/abs/path.sqlite3`, `jsonl:/abs/path`.
    pub source: String,
    /// Where in it the last batch ended (a row id, a byte offset).
    pub position: i64,
    /// Rows imported from it so far.
    pub rows: u64,
}

/// A named torrent with its files and swarm, as [`StoreRead::dump`] streams them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dump {
    /// The infohash.
    pub info_hash: Id,
    /// The name.
    pub name: String,
    /// Total size.
    pub size: u64,
    /// First seen (Unix seconds).
    pub first_seen: i64,
    /// Last seen.
    pub last_seen: i64,
    /// The last scrape.
    pub swarm: Option<Swarm>,
    /// The files kept, in order.
    pub files: Vec<FileEntry>,
}

impl Batch {
    /// True if there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.sightings.is_empty()
            && self.torrents.is_empty()
            && self.scrapes.is_empty()
            && self.import_mark.is_none()
    }
}

/// How search results are ordered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Sort {
    /// Best match first (for an empty search text: newest first).
    #[default]
    Relevance,
    /// By when first seen.
    FirstSeen,
    /// By total size.
    Size,
    /// By seeders at the last scrape (never scraped last).
    Seeders,
}

impl Sort {
    /// `relevance`, `first_seen`, `size`, `seeders`.
    pub fn name(self) -> &'static str {
        match self {
            Sort::Relevance => "relevance",
            Sort::FirstSeen => "first_seen",
            Sort::Size => "size",
            Sort::Seeders => "seeders",
        }
    }

    /// The sort called `name` (as [`Sort::name`] spells it).
    pub fn from_name(name: &str) -> Option<Sort> {
        [Sort::Relevance, Sort::FirstSeen, Sort::Size, Sort::Seeders]
            .into_iter()
            .find(|s| s.name() == name)
    }
}

/// A search: words, filters, order and page.
///
/// With no words, every named torrent that passes the filters matches (newest first for
/// [`Sort::Relevance`]): the newest torrents for a feed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchQuery {
    /// Words that must all appear in the name or a file path.
    pub text: String,
    /// The order.
    pub sort: Sort,
    /// Smallest first instead of largest (newest, most seeded) first; ignored for relevance.
    pub ascending: bool,
    /// At least this many bytes.
    pub min_size: Option<u64>,
    /// At most this many bytes.
    pub max_size: Option<u64>,
    /// At least this many seeders at the last scrape.
    pub min_seeders: Option<u64>,
    /// First seen at or after (Unix seconds).
    pub since: Option<i64>,
    /// Results wanted.
    pub limit: usize,
    /// Results skipped.
    pub offset: usize,
}

impl SearchQuery {
    /// The first `limit` best matches for `text`.
    pub fn words(text: &str, limit: usize) -> SearchQuery {
        SearchQuery {
            text: text.into(),
            limit,
            ..SearchQuery::default()
        }
    }
}

/// A search result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchHit {
    /// The infohash.
    pub info_hash: Id,
    /// The name.
    pub name: String,
    /// Total size in bytes.
    pub size: u64,
    /// Number of files.
    pub files: u64,
    /// When it was first seen (Unix seconds).
    pub first_seen: i64,
    /// The last scrape, if any.
    pub swarm: Option<Swarm>,
}

/// Everything known about one infohash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TorrentRecord {
    /// The infohash.
    pub info_hash: Id,
    /// First seen (Unix seconds).
    pub first_seen: i64,
    /// Last seen.
    pub last_seen: i64,
    /// Times seen.
    pub seen_count: i64,
    /// How it was found, as [`Source::bit`]s.
    pub sources: i64,
    /// The metadata, once fetched.
    pub metadata: Option<RecordMetadata>,
    /// The last scrape, if any.
    pub swarm: Option<Swarm>,
    /// The last scrape that found seeders.
    pub last_seeded: Option<i64>,
}

/// The metadata part of a [`TorrentRecord`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordMetadata {
    /// The name.
    pub name: String,
    /// Total size.
    pub size: u64,
    /// The real number of files.
    pub file_count: u64,
    /// Piece length.
    pub piece_length: u64,
    /// Private flag.
    pub private: bool,
    /// 1, 2 or 3 (hybrid).
    pub meta_version: u8,
    /// When it was fetched.
    pub fetched_at: i64,
    /// The files kept.
    pub files: Vec<FileEntry>,
}

/// One line of `dhtkit export`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportRow {
    /// The infohash.
    pub info_hash: Id,
    /// The name, once fetched.
    pub name: Option<String>,
    /// Total size, once fetched.
    pub size: Option<u64>,
    /// Number of files, once fetched.
    pub files: Option<u64>,
    /// When it was first seen (Unix seconds).
    pub discovered_at: i64,
}

/// How big a store is on disk ([`Store::size`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DbSize {
    /// Bytes on disk: for SQLite the database file and its WAL, for PostgreSQL the
    /// database's size.
    pub bytes: u64,
    /// Of those, the write-ahead log (SQLite; 0 for PostgreSQL).
    pub wal: u64,
    /// Bytes of the database file holding data (SQLite: pages not on the free list; freed
    /// pages are reused before the file grows), when the store can tell. `None`
    /// (PostgreSQL): only the total is known.
    pub used: Option<u64>,
    /// Rows of torrents, as the server estimates them cheaply (PostgreSQL's live-tuple
    /// count), when it does.
    pub rows_estimate: Option<u64>,
}

/// Counts for status lines and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Infohashes stored.
    pub infohashes: u64,
    /// Of which with metadata.
    pub with_metadata: u64,
}

/// What can go wrong with a store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database could not be opened: a bad path, not a database, or corrupt.
    #[error("cannot open {path}: {reason}")]
    Open {
        /// The path.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The database was made by a newer dhtkit.
    #[error("{path} has schema version {found}; this dhtkit knows up to {known}")]
    TooNew {
        /// The path.
        path: PathBuf,
        /// Its version.
        found: i64,
        /// Ours.
        known: i64,
    },
    /// A query failed.
    #[error("database: {0}")]
    Db(String),
}

/// Writing to a store. Each call is one transaction: all of it lands, or none.
pub trait Store: Send {
    /// Writes one batch.
    fn write(&mut self, batch: &Batch) -> Result<(), StoreError>;

    /// Infohashes seen but without metadata yet, most recently seen first (to rebuild the
    /// metadata queue after a restart).
    fn missing_metadata(&mut self, limit: usize) -> Result<Vec<Id>, StoreError>;

    /// Counts.
    fn stats(&mut self) -> Result<StoreStats, StoreError>;

    /// Named torrents due for a scrape at `now`, the longest overdue first (a torrent is due
    /// once named, then again at the time its last scrape set).
    fn due_scrapes(&mut self, now: i64, limit: usize) -> Result<Vec<Due>, StoreError>;

    /// Deletes the torrents whose scrapes have found no seeders since `before` (Unix
    /// seconds): scraped at least once, and seeded last (or, never seeded, first seen)
    /// before it. Returns how many went.
    fn prune_dead(&mut self, before: i64) -> Result<u64, StoreError>;

    /// Its size on disk.
    fn size(&mut self) -> Result<DbSize, StoreError>;

    /// Deletes up to `rows` rows to make room, in this order: infohashes never named, least
    /// recently seen first; then named torrents, longest without seeders first (last seeded,
    /// or, never seeded, named, longest ago). Returns how many went.
    fn evict(&mut self, rows: usize) -> Result<u64, StoreError>;

    /// Gives space back for reuse: SQLite checkpoints and truncates its WAL; PostgreSQL
    /// vacuums the tables.
    fn compact(&mut self) -> Result<(), StoreError>;

    /// Where the import of `source` last stopped, if it ran before.
    fn import_position(&mut self, source: &str) -> Result<Option<ImportMark>, StoreError>;
}

/// Reading a store.
pub trait StoreRead {
    /// Full-text search over names and file paths, filtered and ordered as `q` says. The
    /// text is split into words; a torrent matches when it has all of them. No words: every
    /// named torrent passing the filters. Of words matching more than [`MAX_RANKED`]
    /// torrents, the most recently added that many are filtered and ordered.
    fn search(&self, q: &SearchQuery) -> Result<Vec<SearchHit>, StoreError>;

    /// Everything known about `info_hash`.
    fn torrent(&self, info_hash: &Id) -> Result<Option<TorrentRecord>, StoreError>;

    /// How many infohashes, and how many with metadata.
    fn totals(&self) -> Result<StoreStats, StoreError>;

    /// Infohashes first seen at or after `since`, counted per `bucket` seconds: `(start of
    /// the bucket, count)`, oldest first, buckets with none left out. Buckets start at
    /// multiples of `bucket` (UTC days for 86,400).
    fn discovered_per(&self, bucket: i64, since: i64) -> Result<Vec<(i64, u64)>, StoreError>;

    /// The info dictionary of `info_hash` as fetched, if it was kept (to serve over BEP 9).
    fn info_dict(&self, info_hash: &Id) -> Result<Option<Vec<u8>>, StoreError>;

    /// Every named torrent with its files and swarm, in the order they were stored.
    fn dump(&self, each: &mut dyn FnMut(Dump) -> std::io::Result<()>) -> Result<(), StoreError>;

    /// Every infohash first seen at or after `since` (Unix seconds), oldest first.
    fn export(
        &self,
        since: Option<i64>,
        each: &mut dyn FnMut(ExportRow) -> std::io::Result<()>,
    ) -> Result<(), StoreError>;
}

/// Most matches of a search that are ordered (by relevance, size, seeders or time): for words
/// that match more torrents, the order is that of the most recently added this many. Ranking
/// every match of a common word costs time in proportion to the index (a second at ten
/// million torrents); this bound keeps such a search at tens of milliseconds whatever the
/// size (see BENCHMARKS.md, "The index at scale").
pub const MAX_RANKED: usize = 20_000;

/// The words of a search, for a full-text engine: letters and digits only, each quoted, so
/// that nothing a user types is read as query syntax.
pub(crate) fn search_terms(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .take(16)
        .map(|w| w.to_lowercase())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_are_words_only() {
        assert_eq!(search_terms("'; DROP TABLE x--"), ["drop", "table", "x"]);
        assert_eq!(
            search_terms("Ubuntu-24.04 \"iso\""),
            ["ubuntu", "24", "04", "iso"]
        );
        assert!(search_terms("*** \" ()").is_empty());
        assert_eq!(Source::names(5), ["get_peers", "sample_infohashes"]);
    }
}
