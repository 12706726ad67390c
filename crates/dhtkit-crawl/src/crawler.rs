//! The crawler: honest DHT nodes feeding a pipeline of stages joined by bounded queues.
//!
//! ```text
//!  node events (get_peers, announce_peer) ─┐
//!  BEP 51 walk (sample_infohashes) ────────┴─► hub ─► peer lookups (get_peers) ─┐
//!                                              │  ▲                             │
//!                                              │  └──── peers ◄─────────────────┘
//!                                              ├─► metadata fetches (≤ N TCP) ──► hub
//!                                              └─► store writer (one batch a second)
//! ```
//!
//! The hub owns every queue and decides what runs: new infohashes go to a peer lookup (or
//! straight to a fetch when a token-verified announce gave a peer), lookups start only while
//! the fetch queue has room (backpressure from metadata to discovery), failures wait in a
//! bounded retry queue. Sightings are aggregated and written once a second.

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dhtkit::{Answer, Dht, DhtEvent, Id, Request};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::metadata::{self, FetchConfig};
use crate::seen::BoundedSet;
use crate::stats::CrawlStats;
use crate::store::{Batch, Fetched, Sighting, Source, Store, StoreError};
use crate::walker::{self, WalkConfig};
use crate::writer::{self, Writer};

/// Everything a crawl can be configured with. `CrawlConfig::default()` is a polite crawler.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CrawlConfig {
    /// UDP address of the first node; node `i` binds port + `i`.
    pub bind: SocketAddr,
    /// Bootstrap nodes (`host:port`); empty uses dhtkit's default routers.
    pub bootstrap: Vec<String>,
    /// Honest nodes run in this process (distinct ids spread over the keyspace).
    pub nodes: usize,
    /// Routing table size of each node.
    pub max_nodes: usize,
    /// Outbound DHT queries per second, for all nodes and the BEP 51 walk together (answers
    /// to other nodes' queries are not counted).
    pub rate: u32,
    /// Fetch metadata (off: record infohashes only).
    pub metadata: bool,
    /// Metadata connections at once.
    pub metadata_concurrency: usize,
    /// Limits of each fetch.
    pub fetch: FetchConfig,
    /// Peers tried per infohash before it goes to the retry queue.
    pub peers_per_infohash: usize,
    /// File paths kept per torrent (the real count is always kept).
    pub max_files: usize,
    /// State file of the first node (node `i` uses `FILE.i`).
    pub state: Option<PathBuf>,
    /// Walk the DHT with BEP 51 `sample_infohashes`.
    pub sample: bool,
    /// Ask nodes for samples again after at most this long, shortening the `interval` they
    /// give (off by default: their interval is honoured).
    pub sample_interval: Option<Duration>,
    /// Infohashes remembered as seen (memory stays flat).
    pub seen_capacity: usize,
    /// Infohashes waiting for a peer lookup, at most.
    pub lookup_queue: usize,
    /// Infohashes waiting for a fetch, at most.
    pub fetch_queue: usize,
    /// Infohashes waiting for a retry, at most.
    pub retry_queue: usize,
    /// Peer lookups at once.
    pub lookup_concurrency: usize,
    /// How long a failed infohash waits before it is tried again, doubling per attempt (an
    /// announcer often asks `get_peers` a few seconds before its announce lands).
    pub retry_after: Duration,
    /// Attempts per infohash.
    pub max_attempts: u8,
    /// How often sightings are written.
    pub batch_interval: Duration,
}

impl Default for CrawlConfig {
    fn default() -> Self {
        CrawlConfig {
            bind: SocketAddr::from(([0, 0, 0, 0], 6881)),
            bootstrap: Vec::new(),
            nodes: 1,
            max_nodes: 1280,
            rate: 500,
            metadata: true,
            metadata_concurrency: 200,
            fetch: FetchConfig::default(),
            peers_per_infohash: 8,
            max_files: 10_000,
            state: None,
            sample: true,
            sample_interval: None,
            seen_capacity: 500_000,
            lookup_queue: 10_000,
            fetch_queue: 2_000,
            retry_queue: 20_000,
            lookup_concurrency: 8,
            retry_after: Duration::from_secs(15),
            max_attempts: 5,
            batch_interval: Duration::from_secs(1),
        }
    }
}

/// Why a crawl could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CrawlError {
    /// A node could not start (the address is taken, or a state file is unreadable).
    #[error("starting node {index}: {source}")]
    Node {
        /// Which node.
        index: usize,
        /// Why.
        source: dhtkit::Error,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// An infohash found by discovery, with a peer to fetch from when the way it was found
/// proves one (a token-verified announce).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Found {
    pub info_hash: Id,
    pub source: Source,
    pub peer: Option<SocketAddr>,
}

/// What a lookup or a fetch reports back to the hub.
enum Outcome {
    Peers(Id, Vec<SocketAddr>),
    Fetched(Id, Option<Fetched>),
}

/// A running crawl.
pub struct Crawler {
    dhts: Vec<Dht>,
    stats: Arc<CrawlStats>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    hub: JoinHandle<()>,
    writer: std::thread::JoinHandle<()>,
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl Crawler {
    /// Starts the nodes and the pipeline. Infohashes in `store` that lack metadata are queued
    /// again first (a restart resumes where the last run stopped).
    pub async fn start(
        cfg: CrawlConfig,
        mut store: Box<dyn Store>,
        jsonl: Option<Box<dyn Write + Send>>,
    ) -> Result<Crawler, CrawlError> {
        let stats = Arc::new(CrawlStats::default());
        // Stores block (PostgreSQL's client runs its own runtime): ask on the blocking pool.
        let (metadata, limit) = (cfg.metadata, cfg.lookup_queue);
        let (store, resume) = tokio::task::spawn_blocking(move || {
            let resume = if metadata {
                store.missing_metadata(limit)
            } else {
                Ok(Vec::new())
            };
            (store, resume)
        })
        .await
        .map_err(|e| StoreError::Db(e.to_string()))?;
        let resume = resume?;
        let dhts = start_nodes(&cfg).await?;
        let (stop, stop_rx) = watch::channel(false);
        let (found_tx, found_rx) = mpsc::channel::<Found>(65_536);
        let (walk_tx, walk_rx) = mpsc::channel::<SocketAddr>(4096);
        let mut tasks = Vec::new();
        for d in &dhts {
            tasks.push(tokio::spawn(listen(
                d.clone(),
                found_tx.clone(),
                walk_tx.clone(),
                stats.clone(),
                stop_rx.clone(),
            )));
            tasks.push(tokio::spawn(keep_table_full(
                d.clone(),
                walk_tx.clone(),
                stop_rx.clone(),
            )));
        }
        if cfg.sample {
            let wc = WalkConfig {
                max_nodes: 100_000,
                concurrency: 32,
                rate: walk_rate(&cfg),
                shorten_to: cfg.sample_interval,
                allow_local: dhtkit::addr::is_local(cfg.bind.ip()),
            };
            tasks.push(tokio::spawn(walker::run(
                dhts.clone(),
                wc,
                walk_rx,
                found_tx.clone(),
                stats.clone(),
                stop_rx.clone(),
            )));
        }
        let Writer {
            tx: batches,
            thread,
        } = writer::spawn(store, jsonl, stats.clone());
        let mut hub = Hub::new(cfg, dhts.clone(), stats.clone(), batches);
        for ih in resume {
            hub.seen.insert(ih);
            hub.lookups.push_back((ih, 0));
        }
        let hub = tokio::spawn(hub.run(found_rx, stop_rx));
        Ok(Crawler {
            dhts,
            stats,
            stop,
            tasks,
            hub,
            writer: thread,
        })
    }

    /// The live counters.
    pub fn stats(&self) -> &Arc<CrawlStats> {
        &self.stats
    }

    /// The nodes.
    pub fn nodes(&self) -> &[Dht] {
        &self.dhts
    }

    /// Stops: writes what is pending, saves the nodes' state, and waits for the store.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.hub.await;
        for t in self.tasks {
            t.abort();
        }
        for d in &self.dhts {
            d.shutdown().await;
        }
        let w = self.writer;
        let _ = tokio::task::spawn_blocking(move || w.join()).await;
    }
}

/// The part of `--rate` the BEP 51 walk may use (a quarter); the nodes share the rest.
fn walk_rate(cfg: &CrawlConfig) -> u32 {
    if cfg.sample {
        (cfg.rate / 4).max(1)
    } else {
        0
    }
}

/// Starts `cfg.nodes` nodes on consecutive ports with ids spread over the keyspace.
async fn start_nodes(cfg: &CrawlConfig) -> Result<Vec<Dht>, CrawlError> {
    let n = cfg.nodes.max(1);
    let mut dhts: Vec<Dht> = Vec::with_capacity(n);
    for i in 0..n {
        let mut bind = cfg.bind;
        if bind.port() != 0 {
            bind.set_port(bind.port().wrapping_add(i as u16));
        }
        let mut id = crate::random_id();
        id.0[0] = ((i * 256) / n) as u8;
        let mut boot: Vec<String> = cfg.bootstrap.clone();
        if let Some(first) = dhts.first() {
            boot.push(first.local_addr().to_string());
        }
        let mut b = Dht::builder()
            .bind(bind)
            .node_id(id)
            .max_nodes(cfg.max_nodes)
            .config(|c| {
                c.max_query_rate = (cfg.rate.saturating_sub(walk_rate(cfg)) / n as u32).max(1);
                c.max_query_burst = c.max_query_burst.min(c.max_query_rate.max(1));
                // The nodes share one IP, and their answers count against it too: each node
                // sends at most 1 query a second to one IP (burst 4).
                c.per_dest_rate = c.per_dest_rate.min(1);
                c.per_dest_burst = c.per_dest_burst.min(4);
            });
        if !boot.is_empty() {
            b = b.bootstrap(boot);
        }
        if let Some(s) = &cfg.state {
            let path = if i == 0 {
                s.clone()
            } else {
                PathBuf::from(format!("{}.{i}", s.display()))
            };
            b = b.state_file(path);
        }
        let d = b
            .build()
            .await
            .map_err(|source| CrawlError::Node { index: i, source })?;
        dhts.push(d);
    }
    Ok(dhts)
}

/// Passive discovery: what other nodes ask and announce to one of our nodes.
async fn listen(
    dht: Dht,
    found: mpsc::Sender<Found>,
    walk: mpsc::Sender<SocketAddr>,
    stats: Arc<CrawlStats>,
    mut stop: watch::Receiver<bool>,
) {
    let mut events = dht.events();
    loop {
        let e = tokio::select! {
            _ = stop.changed() => return,
            e = events.recv() => match e { Some(e) => e, None => return },
        };
        let f = match e {
            DhtEvent::QueryReceived {
                query: query @ Request::GetPeers { .. },
                ..
            } => query.info_hash().map(|ih| Found {
                info_hash: ih,
                source: Source::GetPeers,
                peer: None,
            }),
            DhtEvent::QueryReceived {
                from,
                query: query @ Request::AnnouncePeer { .. },
                answer: Answer::Response,
                ..
            } => query.info_hash().map(|ih| Found {
                info_hash: ih,
                source: Source::Announce,
                // A valid token proves the announcer is at this IP: a peer to fetch from.
                peer: query.announced_peer(from),
            }),
            DhtEvent::NodeAdded { addr, .. } => {
                let _ = walk.try_send(addr);
                None
            }
            _ => None,
        };
        if let Some(f) = f {
            if found.try_send(f).is_err() {
                CrawlStats::add(&stats.dropped, 1);
            }
        }
    }
}

/// Keeps the routing table full (every ten minutes, refresh every bucket) and hands the walk
/// every node in it: at start (nodes restored from a state file joined before anyone could
/// hear of them) and after each refresh.
async fn keep_table_full(
    dht: Dht,
    walk: mpsc::Sender<SocketAddr>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        if let Ok(nodes) = dht.routing_table().await {
            for n in nodes {
                // No walk (--no-sample), or its queue is full: it hears of them later.
                let _ = walk.try_send(n.addr);
            }
        }
        tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::sleep(Duration::from_secs(600)) => {}
        }
        if dht.make_neighbours().await.is_err() {
            return;
        }
    }
}

/// The pipeline's one owner of queues.
struct Hub {
    cfg: CrawlConfig,
    dhts: Vec<Dht>,
    stats: Arc<CrawlStats>,
    batches: mpsc::Sender<Batch>,
    seen: BoundedSet<Id>,
    done: BoundedSet<Id>,
    /// Infohashes in a lookup or fetch now.
    active: HashSet<Id>,
    /// Waiting for a peer lookup, with the attempts so far.
    lookups: VecDeque<(Id, u8)>,
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
    fn new(
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

    async fn run(mut self, mut found: mpsc::Receiver<Found>, mut stop: watch::Receiver<bool>) {
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
