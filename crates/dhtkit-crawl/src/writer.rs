//! The store stage: a thread that owns the [`Store`] and commits each batch in one
//! transaction, then streams fetched torrents to the JSON-lines sink.

use std::io::Write;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc;

use crate::cap::DiskCap;
use crate::stats::CrawlStats;
use crate::store::{Batch, Due, Fetched, Store};

/// Batches waiting for the writer, at most (senders wait beyond that: backpressure).
const QUEUE: usize = 16;
/// How often the writer counts the rows in the store.
const COUNT_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

/// The JSON line for a fetched torrent.
pub fn torrent_json(t: &Fetched, discovered_at: Option<i64>) -> serde_json::Value {
    serde_json::json!({
        "infohash": t.info_hash.to_hex(),
        "name": t.info.name,
        "size": t.info.total_size,
        "files": t.info.file_count,
        "discovered_at": discovered_at.unwrap_or(t.at),
        "fetched_at": t.at,
        "private": t.info.private,
        "piece_length": t.info.piece_length,
        "file_list": t.info.files.iter().map(|f| serde_json::json!({"path": f.path, "length": f.length})).collect::<Vec<_>>(),
    })
}

/// What the store thread is asked to do.
pub(crate) enum ToWriter {
    /// Write a batch.
    Batch(Batch),
    /// Send back up to `limit` torrents due for a scrape at `now` (Unix seconds).
    Due {
        now: i64,
        limit: usize,
        reply: mpsc::Sender<Vec<Due>>,
    },
}

pub(crate) struct Writer {
    pub tx: mpsc::Sender<ToWriter>,
    pub thread: std::thread::JoinHandle<()>,
}

pub(crate) fn spawn(
    mut store: Box<dyn Store>,
    mut jsonl: Option<Box<dyn Write + Send>>,
    stats: Arc<CrawlStats>,
    cap: Option<u64>,
) -> Writer {
    let (tx, mut rx) = mpsc::channel::<ToWriter>(QUEUE);
    let thread = std::thread::Builder::new()
        .name("dhtkit-store".into())
        .spawn(move || {
            let mut counted: Option<Instant> = None;
            let mut cap = cap.map(DiskCap::new);
            if let Some(c) = &cap {
                CrawlStats::set(&stats.db_cap, c.bytes());
            }
            let mut stuck_said = false;
            if let Ok(s) = store.size() {
                CrawlStats::set(&stats.db_bytes, s.bytes);
            }
            while let Some(msg) = rx.blocking_recv() {
                let batch = match msg {
                    ToWriter::Batch(b) => b,
                    ToWriter::Due { now, limit, reply } => {
                        let due = store.due_scrapes(now, limit).unwrap_or_else(|e| {
                            tracing::warn!("finding torrents due for a scrape: {e}");
                            Vec::new()
                        });
                        let _ = reply.blocking_send(due);
                        continue;
                    }
                };
                let t0 = Instant::now();
                match store.write(&batch) {
                    Ok(()) => {
                        let rows =
                            batch.sightings.len() + batch.torrents.len() + batch.scrapes.len();
                        CrawlStats::add(&stats.rows_written, rows as u64);
                        stats.batch_took(t0.elapsed().as_micros() as u64);
                    }
                    Err(e) => {
                        CrawlStats::add(&stats.store_errors, 1);
                        tracing::error!("writing a batch failed: {e}");
                    }
                }
                if let Some(c) = &mut cap {
                    match c.check(&mut *store) {
                        Ok(r) => {
                            CrawlStats::set(&stats.db_bytes, r.size.bytes);
                            stats
                                .db_batch_wal_max
                                .fetch_max(r.batch_wal, std::sync::atomic::Ordering::Relaxed);
                            if r.evicted > 0 {
                                CrawlStats::add(&stats.db_evicted, r.evicted);
                                tracing::info!(
                                    "at the disk cap: deleted {} rows (store now {} bytes)",
                                    r.evicted,
                                    r.size.bytes
                                );
                            }
                            if r.stuck && !stuck_said {
                                stuck_said = true;
                                tracing::warn!(
                                    "the store is at its cap of {} bytes with nothing left to delete; raise --max-db-size",
                                    c.bytes()
                                );
                            }
                        }
                        Err(e) => {
                            CrawlStats::add(&stats.store_errors, 1);
                            tracing::error!("keeping the store under its cap failed: {e}");
                        }
                    }
                }
                // The row counts (for metrics), now and then: counting is not free.
                if counted.is_none_or(|t| t.elapsed() >= COUNT_EVERY) {
                    counted = Some(Instant::now());
                    if cap.is_none() {
                        if let Ok(s) = store.size() {
                            CrawlStats::set(&stats.db_bytes, s.bytes);
                        }
                    }
                    if let Ok(n) = store.stats() {
                        CrawlStats::set(&stats.db_infohashes, n.infohashes);
                        CrawlStats::set(&stats.db_with_metadata, n.with_metadata);
                    }
                }
                if let Some(out) = &mut jsonl {
                    for t in &batch.torrents {
                        let line = torrent_json(t, None);
                        if writeln!(out, "{line}").and_then(|_| out.flush()).is_err() {
                            tracing::warn!(
                                "the JSON-lines output went away; not writing it any more"
                            );
                            jsonl = None;
                            break;
                        }
                    }
                }
            }
        })
        .expect("spawning the store thread");
    Writer { tx, thread }
}
