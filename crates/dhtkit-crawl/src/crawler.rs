//! The crawler: honest DHT nodes, and the hub that runs [`crate::discovery`] over them.
//!
//! ```text
//!  node events (get_peers, announce_peer, nodes added) ─┐
//!                                                        ▼
//!         hub: Discovery decides ─► sample_infohashes, one get_peers to the sampler,
//!                 ▲                 lookups, metadata fetches (≤ N TCP)
//!                 └──────── replies, peers, metadata ◄──┘
//!                 └─► store writer (one batch a second)
//! ```
//!
//! Discovery (sans-IO, shared with the simulator) decides everything: the walk over the
//! keyspace, which node to ask for an infohash's peers, when a lookup is worth its packets,
//! the packet budget by priority. The hub carries it out and aggregates sightings, written
//! once a batch interval.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dhtkit::{Answer, Dht, DhtEvent, Id, Request};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::hub::Hub;
use crate::metadata::FetchConfig;
use crate::stats::CrawlStats;
use crate::store::{Source, Store, StoreError};
use crate::writer::{self, Writer};

/// Everything a crawl can be configured with. `CrawlConfig::default()` is a polite crawler.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CrawlConfig {
    /// UDP addresses of the first node: one, or an IPv4 and an IPv6 address for dual-stack
    /// nodes (BEP 32: one id, a socket and a routing table per family). Node `i` binds each
    /// port + `i` (port 0 stays 0). Empty: `0.0.0.0:6881` and `[::]:6881`, carrying on
    /// IPv4-only, with a warning, where IPv6 is unavailable.
    pub bind: Vec<SocketAddr>,
    /// Bootstrap nodes (`host:port`); empty uses dhtkit's default routers.
    pub bootstrap: Vec<String>,
    /// Honest nodes run in this process (distinct ids spread over the keyspace).
    pub nodes: usize,
    /// Routing table size of each node.
    pub max_nodes: usize,
    /// Queries each node answers per second from one IP (burst: ten seconds' worth); 0 lifts
    /// the limit. Default 5, as a dhtkit node and libtorrent.
    pub per_ip_rate: u32,
    /// Let several nodes share one IP in the tables and lookups: for test networks on one
    /// host (every IPv6 node on `::1`), never on the internet. Default off.
    pub allow_shared_ips: bool,
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
    /// Most nodes the walk keeps track of (about 200 bytes each).
    pub walk_nodes: usize,
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
    /// Packets per second spent on BEP 33 scrapes of named torrents, to keep their seeder
    /// counts live (see [`crate::scrape`]); counted inside `rate`. 0: no scrapes.
    pub scrape_rate: u32,
    /// Scrapes running at once.
    pub scrape_concurrency: usize,
    /// Keep the store under this many bytes (see [`crate::cap`]); `None`: no cap.
    pub max_db_size: Option<u64>,
    /// Keep each fetched info dictionary as it came (piece hashes and all, typically tens of
    /// kilobytes), so that [`crate::serve`] can give it back to the swarm. Default on.
    pub keep_info_dicts: bool,
}

impl Default for CrawlConfig {
    fn default() -> Self {
        // Discovery's defaults are the crawler's (the simulator runs discovery on them).
        let d = crate::discovery::DiscoveryConfig::default();
        CrawlConfig {
            bind: Vec::new(),
            bootstrap: Vec::new(),
            nodes: 1,
            max_nodes: 1280,
            per_ip_rate: 5,
            allow_shared_ips: false,
            rate: d.rate,
            metadata: d.metadata,
            metadata_concurrency: d.fetch_concurrency,
            fetch: FetchConfig::default(),
            peers_per_infohash: d.peers_per_fetch,
            max_files: 10_000,
            state: None,
            sample: true,
            walk_nodes: d.max_nodes,
            sample_interval: d.shorten_to,
            seen_capacity: d.seen_capacity,
            lookup_queue: d.lookup_queue,
            fetch_queue: d.fetch_queue,
            retry_queue: d.retry_queue,
            lookup_concurrency: d.lookup_concurrency,
            retry_after: d.retry_after,
            max_attempts: d.max_attempts,
            batch_interval: Duration::from_secs(1),
            scrape_rate: d.rate / 10,
            scrape_concurrency: crate::scrape::ScrapeConfig::default().concurrency,
            max_db_size: None,
            keep_info_dicts: true,
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

/// A running crawl.
pub struct Crawler {
    dhts: Vec<Dht>,
    stats: Arc<CrawlStats>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    hub: JoinHandle<()>,
    writer: std::thread::JoinHandle<()>,
}

/// Now, in Unix seconds (0 if the clock is before 1970).
pub fn unix_now() -> i64 {
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
        let (walk_tx, walk_rx) = mpsc::channel::<SocketAddr>(16_384);
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
        let Writer {
            tx: batches,
            thread,
        } = writer::spawn(store, jsonl, stats.clone(), cfg.max_db_size);
        let mut hub = Hub::new(cfg, dhts.clone(), stats.clone(), batches);
        hub.resume(resume);
        let hub = tokio::spawn(hub.run(found_rx, walk_rx, stop_rx));
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

/// The addresses the first node binds: `cfg.bind`, or by default `0.0.0.0:6881` and
/// `[::]:6881`, without the IPv6 one (and with a warning) where this host has no IPv6.
fn bind_addrs(cfg: &CrawlConfig) -> Vec<SocketAddr> {
    if !cfg.bind.is_empty() {
        return cfg.bind.clone();
    }
    match std::net::UdpSocket::bind(SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 0))) {
        Ok(_) => dhtkit::DEFAULT_BIND.to_vec(),
        Err(e) => {
            tracing::warn!("IPv6 unavailable ({e}): crawling on IPv4 only");
            dhtkit::DEFAULT_BIND[..1].to_vec()
        }
    }
}

/// Starts `cfg.nodes` nodes on consecutive ports with ids spread over the keyspace.
async fn start_nodes(cfg: &CrawlConfig) -> Result<Vec<Dht>, CrawlError> {
    let n = cfg.nodes.max(1);
    let addrs = bind_addrs(cfg);
    let mut dhts: Vec<Dht> = Vec::with_capacity(n);
    for i in 0..n {
        let binds: Vec<SocketAddr> = addrs
            .iter()
            .map(|a| {
                let mut a = *a;
                if a.port() != 0 {
                    a.set_port(a.port().wrapping_add(i as u16));
                }
                a
            })
            .collect();
        let mut id = crate::random_id();
        id.0[0] = ((i * 256) / n) as u8;
        let mut boot: Vec<String> = cfg.bootstrap.clone();
        if let Some(first) = dhts.first() {
            boot.extend(first.local_addrs().iter().map(|a| a.to_string()));
        }
        let mut b = binds
            .iter()
            .fold(Dht::builder(), |b, a| b.bind(*a))
            .node_id(id)
            .max_nodes(cfg.max_nodes)
            .per_ip_rate(cfg.per_ip_rate)
            .config(|c| {
                c.table.restrict_ips = !cfg.allow_shared_ips;
                // Discovery spends `rate` with the nodes' upkeep charged first; no node may
                // exceed it on its own either.
                c.max_query_rate = cfg.rate.max(1);
                c.max_query_burst = c.max_query_burst.min(c.max_query_rate);
                // Never more than one query a second to one IP, retransmissions included:
                // queries that would exceed it are not sent (discovery takes them back).
                c.per_dest_rate = c.per_dest_rate.min(1);
                c.per_dest_burst = 1;
                c.strict_dest_limit = true;
                // Tens of thousands of IPs a minute: enough slots that few share a budget.
                c.rate_limiter_slots = c.rate_limiter_slots.max(16_384);
                c.alpha = crate::discovery::CRAWL_ALPHA;
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
