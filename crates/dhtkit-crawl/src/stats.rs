//! What each stage counts: taken in, passed on, dropped. These counts are the crawler's
//! metrics and its status line.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Live counters, shared by the stages.
#[derive(Debug, Default)]
pub struct CrawlStats {
    /// Infohash sightings (incoming queries and BEP 51 samples).
    pub sightings: AtomicU64,
    /// Infohashes not seen before (by the bounded seen-set).
    pub new_infohashes: AtomicU64,
    /// Discoveries dropped because a queue was full (backpressure).
    pub dropped: AtomicU64,
    /// `sample_infohashes` queries sent.
    pub samples_sent: AtomicU64,
    /// `sample_infohashes` replies.
    pub samples_answered: AtomicU64,
    /// Of the new infohashes, found in a BEP 51 sample.
    pub discovered_by_sample: AtomicU64,
    /// Distinct nodes that answered a sample query.
    pub nodes_answered: AtomicU64,
    /// Distinct nodes that answered with BEP 51 samples or an interval.
    pub bep51_nodes: AtomicU64,
    /// Nodes the walk has scheduled now.
    pub nodes_scheduled: AtomicU64,
    /// Distinct nodes that answered a sample query within the last interval (6 hours,
    /// libtorrent's).
    pub nodes_sampled_interval: AtomicU64,
    /// One-query `get_peers` sent to the node that sampled an infohash.
    pub direct_sent: AtomicU64,
    /// Of those, answered with peers.
    pub direct_hits: AtomicU64,
    /// Infohashes for which peers were found (directly or by a lookup).
    pub peers_found: AtomicU64,
    /// get_peers lookups started for metadata (when the sampler had no peers, or the
    /// infohash was learnt passively).
    pub lookups: AtomicU64,
    /// Lookups that found at least one peer.
    pub lookups_with_peers: AtomicU64,
    /// Metadata fetches that succeeded.
    pub fetched: AtomicU64,
    /// Metadata fetch attempts that failed (one per peer tried).
    pub fetch_failed: AtomicU64,
    /// Infohashes given up on after every retry.
    pub given_up: AtomicU64,
    /// Queries discovery sent: samples, direct get_peers, and the lookups' real cost.
    pub discovery_queries: AtomicU64,
    /// Queries the nodes sent for their own upkeep (charged to the same budget first).
    pub node_queries: AtomicU64,
    /// Work discovery dropped because a queue was full.
    pub discovery_dropped: AtomicU64,
    /// New infohashes per hour, over the last hour.
    pub discovered_per_hour: AtomicU64,
    /// Metadata fetched per hour, over the last hour.
    pub named_per_hour: AtomicU64,
    /// Infohashes waiting for their sampler's get_peers.
    pub direct_queue: AtomicU64,
    /// Infohashes waiting for a peer lookup.
    pub lookup_queue: AtomicU64,
    /// Infohashes waiting for a fetch.
    pub fetch_queue: AtomicU64,
    /// Infohashes waiting to be retried.
    pub retry_queue: AtomicU64,
    /// Fetches running.
    pub fetching: AtomicU64,
    /// BEP 33 scrapes of named torrents started.
    pub scrapes: AtomicU64,
    /// Of those, with counts stored.
    pub scrapes_counted: AtomicU64,
    /// Queries the scrapes sent.
    pub scrape_queries: AtomicU64,
    /// Named torrents due for a scrape, waiting in memory.
    pub scrape_queue: AtomicU64,
    /// Rows written (sightings and torrents).
    pub rows_written: AtomicU64,
    /// Batches committed.
    pub batches: AtomicU64,
    /// Time spent committing, in microseconds.
    pub batch_micros: AtomicU64,
    /// Batches that failed to commit.
    pub store_errors: AtomicU64,
    /// Batches that took at most each of [`CrawlStats::BATCH_BOUNDS_MICROS`] (cumulative).
    pub batch_at_most: [AtomicU64; 7],
    /// The store's size on disk in bytes, after the last batch (with a cap; else every 30 s).
    pub db_bytes: AtomicU64,
    /// The disk cap in bytes (0: none).
    pub db_cap: AtomicU64,
    /// Rows deleted to stay under the cap.
    pub db_evicted: AtomicU64,
    /// The largest WAL one batch left before its checkpoint (SQLite, with a cap).
    pub db_batch_wal_max: AtomicU64,
    /// Infohashes in the database, as last counted by the writer (every 30 s at most).
    pub db_infohashes: AtomicU64,
    /// Of which with metadata.
    pub db_with_metadata: AtomicU64,
    failures: Mutex<BTreeMap<&'static str, u64>>,
}

impl CrawlStats {
    /// Bucket bounds of the batch commit time histogram, in microseconds.
    pub const BATCH_BOUNDS_MICROS: [u64; 7] =
        [1_000, 5_000, 25_000, 100_000, 250_000, 1_000_000, 5_000_000];

    pub(crate) fn batch_took(&self, micros: u64) {
        Self::add(&self.batches, 1);
        Self::add(&self.batch_micros, micros);
        for (n, bound) in self.batch_at_most.iter().zip(Self::BATCH_BOUNDS_MICROS) {
            if micros <= bound {
                Self::add(n, 1);
            }
        }
    }

    pub(crate) fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn set(c: &AtomicU64, n: u64) {
        c.store(n, Ordering::Relaxed);
    }

    /// Reads a counter.
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }

    /// Queries sent (discovery's and the nodes' own) per infohash discovered; 0 before the
    /// first.
    pub fn queries_per_infohash(&self) -> f64 {
        let n = Self::get(&self.new_infohashes);
        if n == 0 {
            return 0.0;
        }
        (Self::get(&self.discovery_queries) + Self::get(&self.node_queries)) as f64 / n as f64
    }

    /// Of the nodes that answered a sample query, the share that speak BEP 51 (0 to 1).
    pub fn bep51_share(&self) -> f64 {
        let n = Self::get(&self.nodes_answered);
        if n == 0 {
            return 0.0;
        }
        Self::get(&self.bep51_nodes) as f64 / n as f64
    }

    pub(crate) fn failed(&self, reason: &'static str) {
        Self::add(&self.fetch_failed, 1);
        if let Ok(mut m) = self.failures.lock() {
            *m.entry(reason).or_default() += 1;
        }
    }

    /// Failed fetch attempts by reason.
    pub fn failures(&self) -> BTreeMap<&'static str, u64> {
        self.failures.lock().map(|m| m.clone()).unwrap_or_default()
    }
}

/// Resident memory of this process in bytes (Linux; 0 elsewhere).
pub fn rss_bytes() -> u64 {
    let Ok(s) = std::fs::read_to_string("/proc/self/statm") else {
        return 0;
    };
    s.split_whitespace()
        .nth(1)
        .and_then(|p| p.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}
