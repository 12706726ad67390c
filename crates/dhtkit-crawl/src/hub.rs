//! The hub: the pipeline's one owner of queues. New infohashes go to a peer lookup (or
//! straight to a fetch when a token-verified announce named a peer), lookups start only while
//! the fetch queue has room, failures wait in a bounded retry queue, and sightings are
//! aggregated and written once a batch interval.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use dhtkit::{Dht, Id};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::time::Instant;

use crate::crawler::{unix_now, CrawlConfig, Found};
use crate::metadata::{self, FetchConfig};
use crate::seen::BoundedSet;
use crate::stats::CrawlStats;
use crate::store::{Batch, Fetched, Sighting};

/// What a lookup or a fetch reports back to the hub.
enum Outcome {
    Peers(Id, Vec<SocketAddr>),
    Fetched(Id, Option<Fetched>),
}

/// The pipeline's one owner of queues.
pub(crate) struct Hub {
    cfg: CrawlConfig,
    dhts: Vec<Dht>,
    stats: Arc<CrawlStats>,
    batches: mpsc::Sender<Batch>,
    pub(crate) seen: BoundedSet<Id>,
    done: BoundedSet<Id>,
    /// Infohashes in a lookup or fetch now.
    active: HashSet<Id>,
    /// Waiting for a peer lookup, with the attempts so far.
    pub(crate) lookups: VecDeque<(Id, u8)>,
    /// Waiting for a fetch.
    fetches: VecDeque<(Id, Vec<SocketAddr>, u8)>,
    /// Waiting for a retry, oldest first.
    retries: VecDeque<(Instant, Id, u8)>,
    attempts: HashMap<Id, u8>,
    sightings: HashMap<Id, Sighting>,
    torrents: Vec<Fetched>,
    lookup_slots: Arc<Semaphore>,
    fetch_slots: Arc<Semaphore>,
    peer_id: [u8; 20],
}

impl Hub {
    pub(crate) fn new(
        cfg: CrawlConfig,
        dhts: Vec<Dht>,
        stats: Arc<CrawlStats>,
        batches: mpsc::Sender<Batch>,
    ) -> Hub {
        let mut peer_id = *b"-DK0001-000000000000";
        let mut tail = [0u8; 12];
        let _ = getrandom::fill(&mut tail);
        for (o, r) in peer_id[8..].iter_mut().zip(tail) {
            *o = b'0' + r % 10;
        }
        Hub {
            seen: BoundedSet::new(cfg.seen_capacity),
            done: BoundedSet::new(cfg.seen_capacity / 4),
            active: HashSet::new(),
            lookups: VecDeque::new(),
            fetches: VecDeque::new(),
            retries: VecDeque::new(),
            attempts: HashMap::new(),
            sightings: HashMap::new(),
            torrents: Vec::new(),
            lookup_slots: Arc::new(Semaphore::new(cfg.lookup_concurrency.max(1))),
            fetch_slots: Arc::new(Semaphore::new(cfg.metadata_concurrency.max(1))),
            peer_id,
            cfg,
            dhts,
            stats,
            batches,
        }
    }

    pub(crate) async fn run(
        mut self,
        mut found: mpsc::Receiver<Found>,
        mut stop: watch::Receiver<bool>,
    ) {
        let (out_tx, mut out_rx) = mpsc::channel::<Outcome>(1024);
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        let mut last_flush = Instant::now();
        loop {
            tokio::select! {
                _ = stop.changed() => break,
                Some(f) = found.recv() => self.on_found(f),
                Some(o) = out_rx.recv() => self.on_outcome(o),
                _ = tick.tick() => self.on_tick(),
            }
            if last_flush.elapsed() >= self.cfg.batch_interval || self.sightings.len() >= 50_000 {
                self.flush().await;
                last_flush = Instant::now();
            }
            self.dispatch(&out_tx);
        }
        // Take what discovery already handed over, then write it.
        while let Ok(f) = found.try_recv() {
            self.on_found(f);
        }
        while let Ok(o) = out_rx.try_recv() {
            self.on_outcome(o);
        }
        self.flush().await;
    }

    fn on_found(&mut self, f: Found) {
        CrawlStats::add(&self.stats.sightings, 1);
        let now = unix_now();
        let s = self.sightings.entry(f.info_hash).or_insert(Sighting {
            info_hash: f.info_hash,
            sources: 0,
            first: now,
            last: now,
            count: 0,
        });
        s.sources |= f.source.bit();
        s.last = now;
        s.count += 1;
        let new = self.seen.insert(f.info_hash);
        if new {
            CrawlStats::add(&self.stats.new_infohashes, 1);
        }
        if !self.cfg.metadata || self.done.contains(&f.info_hash) {
            return;
        }
        match f.peer {
            Some(peer) if !self.active.contains(&f.info_hash) => {
                if self.fetches.len() < self.cfg.fetch_queue {
                    self.active.insert(f.info_hash);
                    self.fetches.push_back((f.info_hash, vec![peer], 0));
                } else {
                    CrawlStats::add(&self.stats.dropped, 1);
                }
            }
            None if new => {
                if self.lookups.len() < self.cfg.lookup_queue {
                    self.lookups.push_back((f.info_hash, 0));
                } else {
                    CrawlStats::add(&self.stats.dropped, 1);
                }
            }
            _ => {}
        }
    }

    fn on_outcome(&mut self, o: Outcome) {
        match o {
            Outcome::Peers(ih, peers) => {
                let attempt = self.attempts.remove(&ih).unwrap_or(0);
                if peers.is_empty() {
                    self.active.remove(&ih);
                    self.retry(ih, attempt);
                } else {
                    self.fetches.push_front((ih, peers, attempt));
                }
            }
            Outcome::Fetched(ih, Some(t)) => {
                self.active.remove(&ih);
                self.attempts.remove(&ih);
                self.done.insert(ih);
                CrawlStats::add(&self.stats.fetched, 1);
                self.torrents.push(t);
            }
            Outcome::Fetched(ih, None) => {
                self.active.remove(&ih);
                let attempt = self.attempts.remove(&ih).unwrap_or(0);
                self.retry(ih, attempt);
            }
        }
    }

    fn retry(&mut self, ih: Id, attempt: u8) {
        let attempt = attempt.saturating_add(1);
        if attempt >= self.cfg.max_attempts || self.retries.len() >= self.cfg.retry_queue {
            CrawlStats::add(&self.stats.given_up, 1);
            return;
        }
        let wait = self.cfg.retry_after * (1u32 << (attempt - 1).min(8));
        self.retries.push_back((Instant::now() + wait, ih, attempt));
    }

    fn on_tick(&mut self) {
        let now = Instant::now();
        while self.retries.front().is_some_and(|(at, _, _)| *at <= now) {
            let (_, ih, attempt) = self.retries.pop_front().expect("front");
            if !self.done.contains(&ih) && self.lookups.len() < self.cfg.lookup_queue {
                self.lookups.push_back((ih, attempt));
            }
        }
        let s = &self.stats;
        CrawlStats::set(&s.lookup_queue, self.lookups.len() as u64);
        CrawlStats::set(&s.fetch_queue, self.fetches.len() as u64);
        CrawlStats::set(&s.retry_queue, self.retries.len() as u64);
        CrawlStats::set(
            &s.fetching,
            (self.cfg.metadata_concurrency - self.fetch_slots.available_permits()) as u64,
        );
    }

    async fn flush(&mut self) {
        let batch = Batch {
            sightings: self.sightings.drain().map(|(_, s)| s).collect(),
            torrents: std::mem::take(&mut self.torrents),
        };
        if !batch.is_empty() {
            let _ = self.batches.send(batch).await;
        }
    }

    /// The node that runs peer lookups: always the first. Every node shares one IP, and other
    /// implementations limit queries per source IP (libtorrent ignores an IP for five minutes
    /// after about 50 packets in 10 seconds), so one node's per-destination budget must govern
    /// all of the crawler's lookups.
    fn lookup_node(&self) -> Dht {
        self.dhts[0].clone()
    }

    /// Starts fetches and lookups while there are free slots; lookups only while the fetch
    /// queue has room.
    fn dispatch(&mut self, out: &mpsc::Sender<Outcome>) {
        while !self.fetches.is_empty() {
            let Ok(permit) = self.fetch_slots.clone().try_acquire_owned() else {
                break;
            };
            let (ih, peers, attempt) = self.fetches.pop_front().expect("non-empty");
            self.attempts.insert(ih, attempt);
            let (cfg, max_files, per_ih) = (
                self.cfg.fetch,
                self.cfg.max_files,
                self.cfg.peers_per_infohash,
            );
            let (out, stats, peer_id) = (out.clone(), self.stats.clone(), self.peer_id);
            tokio::spawn(async move {
                let got = fetch_any(
                    ih,
                    &peers[..peers.len().min(per_ih)],
                    peer_id,
                    &cfg,
                    max_files,
                    &stats,
                )
                .await;
                drop(permit);
                let _ = out.send(Outcome::Fetched(ih, got)).await;
            });
        }
        while !self.lookups.is_empty() && self.fetches.len() < self.cfg.fetch_queue / 2 {
            let Ok(permit) = self.lookup_slots.clone().try_acquire_owned() else {
                break;
            };
            let (ih, attempt) = self.lookups.pop_front().expect("non-empty");
            if self.done.contains(&ih) || !self.active.insert(ih) {
                continue;
            }
            self.attempts.insert(ih, attempt);
            CrawlStats::add(&self.stats.lookups, 1);
            let (dht, out, want) = (self.lookup_node(), out.clone(), self.cfg.peers_per_infohash);
            let stats = self.stats.clone();
            tokio::spawn(async move {
                let peers = find_peers(&dht, ih, want).await;
                if !peers.is_empty() {
                    CrawlStats::add(&stats.lookups_with_peers, 1);
                }
                drop(permit);
                let _ = out.send(Outcome::Peers(ih, peers)).await;
            });
        }
    }
}

/// Peers for `ih` from a get_peers lookup (only `values`: never the nodes that asked).
async fn find_peers(dht: &Dht, ih: Id, want: usize) -> Vec<SocketAddr> {
    let Ok(mut lookup) = dht.get_peers(ih).await else {
        return Vec::new();
    };
    let mut peers = Vec::new();
    let collect = async {
        while let Some(p) = lookup.next_peer().await {
            if !peers.contains(&p) {
                peers.push(p);
            }
            if peers.len() >= want {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(30), collect).await;
    peers
}

/// Tries `peers` in turn until one gives verified metadata.
async fn fetch_any(
    ih: Id,
    peers: &[SocketAddr],
    peer_id: [u8; 20],
    cfg: &FetchConfig,
    max_files: usize,
    stats: &CrawlStats,
) -> Option<Fetched> {
    for &peer in peers {
        match metadata::fetch(peer, ih, peer_id, cfg).await {
            Ok(v) => match metadata::parse(&v.info, max_files) {
                Ok(info) => {
                    return Some(Fetched {
                        info_hash: ih,
                        info,
                        at: unix_now(),
                        peer,
                    })
                }
                Err(_) => stats.failed("bad_info"),
            },
            Err(e) => stats.failed(e.reason()),
        }
    }
    None
}
