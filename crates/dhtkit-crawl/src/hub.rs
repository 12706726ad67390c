//! The hub: the tokio side of [`Discovery`]. It feeds discovery what the nodes hear and what
//! its queries and fetches bring back, carries out the [`Action`]s discovery hands back
//! (sample queries, direct `get_peers`, lookups, metadata fetches), and aggregates sightings
//! into one batch for the store each batch interval.
//!
//! Every decision (whom to ask, when, with which budget) is discovery's; the hub only does
//! I/O and converts tokio's clock into the protocol's [`Instant`].

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use dhtkit::{Dht, Id, Reply, Request};
use dhtkit_proto::Instant;
use tokio::sync::{mpsc, watch};

use crate::crawler::{unix_now, CrawlConfig, Found};
use crate::discovery::{Action, Discovery, DiscoveryConfig, DiscoveryStats};
use crate::metadata::{self, FetchConfig};
use crate::scrape::{rescrape_after, Scheduler, ScrapeConfig};
use crate::stats::CrawlStats;
use crate::store::{Batch, Due, Fetched, Scraped, Sighting, Source, Swarm};
use crate::writer::ToWriter;

/// Due torrents asked of the store at once.
const DUE_BATCH: usize = 256;

/// What a query, a lookup or a fetch reports back to the hub.
enum Outcome {
    Sample(SocketAddr, Option<Reply>),
    Direct(Id, SocketAddr, Option<Reply>),
    Lookup(Id, Vec<SocketAddr>, u32),
    Fetched(Id, Option<Fetched>),
    /// A scrape ended: what it found, if any node answered, and its queries.
    Scraped(Due, Option<Swarm>, u32),
    /// The node would not send it (its budget for that IP was spent, or too many queries
    /// were open): discovery takes it back.
    NotSent(Action),
}

/// The discovery settings a crawl configuration implies.
pub(crate) fn discovery_config(cfg: &CrawlConfig) -> DiscoveryConfig {
    DiscoveryConfig {
        rate: cfg.rate.max(1),
        burst: (cfg.rate / 10).clamp(10, 1000),
        max_nodes: if cfg.sample { cfg.walk_nodes } else { 0 },
        shorten_to: cfg.sample_interval,
        seen_capacity: cfg.seen_capacity,
        metadata: cfg.metadata,
        lookup_queue: cfg.lookup_queue,
        lookup_concurrency: cfg.lookup_concurrency,
        fetch_queue: cfg.fetch_queue,
        fetch_concurrency: cfg.metadata_concurrency,
        peers_per_fetch: cfg.peers_per_infohash,
        retry_after: cfg.retry_after,
        max_attempts: cfg.max_attempts,
        retry_queue: cfg.retry_queue,
        ..DiscoveryConfig::default()
    }
}

/// Counters sampled once a minute, for the per-hour rates.
#[derive(Debug, Clone, Copy)]
struct Mark {
    at: tokio::time::Instant,
    discovered: u64,
    named: u64,
}

/// The pipeline's owner: discovery, the sightings of this batch, and the I/O.
pub(crate) struct Hub {
    cfg: CrawlConfig,
    dhts: Vec<Dht>,
    stats: Arc<CrawlStats>,
    batches: mpsc::Sender<ToWriter>,
    disc: Discovery,
    scrapes: Scheduler,
    scraped: Vec<Scraped>,
    /// Where the store sends due torrents, and whether it has been asked.
    due_tx: mpsc::Sender<Vec<Due>>,
    due_rx: Option<mpsc::Receiver<Vec<Due>>>,
    due_asked: bool,
    start: tokio::time::Instant,
    sightings: HashMap<Id, Sighting>,
    torrents: Vec<Fetched>,
    /// Which node sends the next sample or direct query.
    next_dht: usize,
    /// Local and reserved addresses may be asked (the crawler is bound to one).
    allow_local: bool,
    peer_id: [u8; 20],
    /// The nodes' `queries_out`, and discovery's own queries, at the last accounting.
    last_out: u64,
    last_disc: u64,
    marks: VecDeque<Mark>,
}

impl Hub {
    pub(crate) fn new(
        cfg: CrawlConfig,
        dhts: Vec<Dht>,
        stats: Arc<CrawlStats>,
        batches: mpsc::Sender<ToWriter>,
    ) -> Hub {
        let mut peer_id = *b"-DK0001-000000000000";
        let mut tail = [0u8; 12];
        let _ = getrandom::fill(&mut tail);
        for (o, r) in peer_id[8..].iter_mut().zip(tail) {
            *o = b'0' + r % 10;
        }
        let allow_local = dhts
            .iter()
            .flat_map(|d| d.local_addrs().to_vec())
            .any(|a| dhtkit::addr::is_local(a.ip()));
        let mut seed = [0u8; 8];
        let _ = getrandom::fill(&mut seed);
        let start = tokio::time::Instant::now();
        let scrape_cfg = ScrapeConfig {
            rate: if cfg.metadata { cfg.scrape_rate } else { 0 },
            burst: cfg.scrape_rate.clamp(10, 1000),
            concurrency: cfg.scrape_concurrency.max(1),
            ..ScrapeConfig::default()
        };
        let (due_tx, due_rx) = mpsc::channel(2);
        Hub {
            scrapes: Scheduler::new(scrape_cfg, Instant::ZERO),
            scraped: Vec::new(),
            due_tx,
            due_rx: Some(due_rx),
            due_asked: false,
            disc: Discovery::new(
                discovery_config(&cfg),
                u64::from_le_bytes(seed),
                Instant::ZERO,
            ),
            start,
            sightings: HashMap::new(),
            torrents: Vec::new(),
            next_dht: 0,
            allow_local,
            peer_id,
            last_out: 0,
            last_disc: 0,
            marks: VecDeque::new(),
            cfg,
            dhts,
            stats,
            batches,
        }
    }

    /// Infohashes from an earlier run that still lack metadata: looked up again.
    pub(crate) fn resume(&mut self, info_hashes: Vec<Id>) {
        for ih in info_hashes {
            self.disc.resume(ih);
        }
    }

    fn now(&self) -> Instant {
        Instant::from_epoch(self.start.elapsed())
    }

    pub(crate) async fn run(
        mut self,
        mut found: mpsc::Receiver<Found>,
        mut heard: mpsc::Receiver<SocketAddr>,
        mut stop: watch::Receiver<bool>,
    ) {
        let (out_tx, mut out_rx) = mpsc::channel::<Outcome>(4096);
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_flush = tokio::time::Instant::now();
        let mut due_rx = self.due_rx.take().expect("run once");
        // Node queries at the start are the nodes' bootstrap: theirs, not discovery's.
        self.last_out = self.node_queries().await;
        loop {
            let now = self.now();
            let wake = [self.disc.next_wake(now), self.scrapes.next_wake(now)]
                .into_iter()
                .flatten()
                .min()
                .map(|t| self.start + t.saturating_since(Instant::ZERO))
                .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                _ = stop.changed() => break,
                Some(f) = found.recv() => self.on_found(f),
                Some(a) = heard.recv() => self.on_heard(a),
                Some(o) = out_rx.recv() => self.on_outcome(o),
                Some(due) = due_rx.recv() => {
                    self.due_asked = false;
                    let now = self.now();
                    self.scrapes.offer(now, due);
                }
                _ = tick.tick() => self.on_tick().await,
                _ = tokio::time::sleep_until(wake) => {}
            }
            if last_flush.elapsed() >= self.cfg.batch_interval || self.sightings.len() >= 50_000 {
                self.flush().await;
                last_flush = tokio::time::Instant::now();
            }
            self.dispatch(&out_tx);
        }
        // Take what the nodes and the running queries already handed over, then write it.
        while let Ok(f) = found.try_recv() {
            self.on_found(f);
        }
        while let Ok(o) = out_rx.try_recv() {
            self.on_outcome(o);
        }
        self.publish();
        self.flush().await;
    }

    fn sighting(&mut self, ih: Id, source: Source) {
        CrawlStats::add(&self.stats.sightings, 1);
        let now = unix_now();
        let s = self.sightings.entry(ih).or_insert(Sighting {
            info_hash: ih,
            sources: 0,
            first: now,
            last: now,
            count: 0,
        });
        s.sources |= source.bit();
        s.last = now;
        s.count += 1;
    }

    fn on_found(&mut self, f: Found) {
        self.sighting(f.info_hash, f.source);
        let now = self.now();
        self.disc.passive(now, f.info_hash, f.source, f.peer);
    }

    fn may_send(&self, a: &SocketAddr) -> bool {
        // Addresses come from strangers: never a private, reserved or bogon one unless we are
        // on such a network ourselves.
        dhtkit::addr::may_send(a, self.allow_local)
    }

    fn on_heard(&mut self, a: SocketAddr) {
        if self.may_send(&a) {
            let now = self.now();
            self.disc.heard(now, a);
        }
    }

    fn nodes_of(&self, r: &Reply) -> Vec<SocketAddr> {
        r.nodes
            .iter()
            .map(|(_, a)| *a)
            .filter(|a| self.may_send(a))
            .collect()
    }

    fn on_outcome(&mut self, o: Outcome) {
        let now = self.now();
        match o {
            Outcome::Sample(from, Some(r)) => {
                for ih in &r.samples {
                    self.sighting(*ih, Source::Sample);
                }
                let nodes = self.nodes_of(&r);
                self.disc
                    .sample_reply(now, from, &r.samples, r.interval, &nodes);
            }
            Outcome::Sample(from, None) => self.disc.sample_failed(now, from),
            Outcome::Direct(ih, _, Some(r)) => {
                let nodes = self.nodes_of(&r);
                self.disc.peers_reply(now, ih, &r.peers, &nodes);
            }
            Outcome::Direct(ih, to, None) => self.disc.peers_failed(now, ih, to),
            Outcome::Lookup(ih, peers, queries) => {
                self.disc.lookup_done(now, ih, &peers, queries);
            }
            Outcome::NotSent(a) => self.disc.not_sent(now, a),
            Outcome::Scraped(due, swarm, queries) => {
                self.scrapes
                    .done(now, due.info_hash, queries, swarm.is_some());
                if let Some(swarm) = swarm {
                    let age = swarm.at.saturating_sub(due.first_seen);
                    self.scraped.push(Scraped {
                        info_hash: due.info_hash,
                        swarm,
                        next_at: swarm.at + rescrape_after(age, swarm.seeders, swarm.leechers),
                    });
                }
            }
            Outcome::Fetched(ih, got) => {
                self.disc.fetch_done(now, ih, got.is_some());
                if let Some(t) = got {
                    CrawlStats::add(&self.stats.fetched, 1);
                    self.torrents.push(t);
                }
            }
        }
    }

    /// Sum of the nodes' outbound queries (their upkeep, discovery's queries, lookups).
    async fn node_queries(&self) -> u64 {
        let mut n = 0;
        for d in &self.dhts {
            if let Ok(s) = d.stats().await {
                n += s.node.queries_out;
            }
        }
        n
    }

    /// Once a second: charge the nodes' own queries to the budget and publish the counters.
    async fn on_tick(&mut self) {
        let out = self.node_queries().await;
        let disc = self.disc.stats().queries;
        let theirs = (out.saturating_sub(self.last_out)).saturating_sub(disc - self.last_disc);
        self.last_out = out;
        self.last_disc = disc;
        let now = self.now();
        if theirs > 0 {
            self.disc.spent(now, theirs.min(u32::MAX as u64) as u32);
        }
        if self.scrapes.wants_more() && !self.due_asked {
            let ask = ToWriter::Due {
                now: unix_now(),
                limit: DUE_BATCH,
                reply: self.due_tx.clone(),
            };
            self.due_asked = self.batches.try_send(ask).is_ok();
        }
        self.publish();
    }

    /// Copies discovery's counters and gauges into the shared stats.
    fn publish(&mut self) {
        let now = self.now();
        let d: DiscoveryStats = self.disc.stats();
        let s = &self.stats;
        let set = CrawlStats::set;
        set(&s.new_infohashes, d.discovered);
        set(&s.discovered_by_sample, d.discovered_by_sample);
        set(&s.samples_sent, d.samples_sent);
        set(&s.samples_answered, d.samples_answered);
        set(&s.nodes_answered, d.nodes_answered);
        set(&s.bep51_nodes, d.bep51_nodes);
        set(&s.nodes_scheduled, d.scheduled);
        set(
            &s.nodes_sampled_interval,
            self.disc.sampled_in_window(now) as u64,
        );
        set(&s.direct_sent, d.direct_sent);
        set(&s.direct_hits, d.direct_hits);
        set(&s.lookups, d.lookups);
        set(&s.lookups_with_peers, d.lookups_with_peers);
        set(&s.peers_found, d.peers_found);
        set(&s.given_up, d.given_up);
        set(&s.discovery_dropped, d.dropped);
        set(&s.discovery_queries, d.queries);
        set(&s.node_queries, d.node_queries);
        let (direct, lookups, fetches, retries) = self.disc.queues();
        set(&s.direct_queue, direct as u64);
        set(&s.lookup_queue, lookups as u64);
        set(&s.fetch_queue, fetches as u64);
        set(&s.retry_queue, retries as u64);
        let sc = self.scrapes.stats();
        set(&s.scrapes, sc.started);
        set(&s.scrapes_counted, sc.counted);
        set(&s.scrape_queries, sc.queries);
        set(&s.scrape_queue, self.scrapes.queued().0 as u64);
        // Per-hour rates over the last hour (since the start, scaled, in the first hour).
        let at = tokio::time::Instant::now();
        let named = CrawlStats::get(&s.fetched);
        if self
            .marks
            .back()
            .is_none_or(|m| at.duration_since(m.at) >= Duration::from_secs(60))
        {
            self.marks.push_back(Mark {
                at,
                discovered: d.discovered,
                named,
            });
        }
        while self.marks.len() > 61 {
            self.marks.pop_front();
        }
        if let Some(first) = self.marks.front() {
            let secs = at.duration_since(first.at).as_secs_f64();
            if secs >= 1.0 {
                let per_hour = |n: u64| (n as f64 * 3600.0 / secs).round() as u64;
                set(
                    &s.discovered_per_hour,
                    per_hour(d.discovered - first.discovered),
                );
                set(&s.named_per_hour, per_hour(named - first.named));
            }
        }
    }

    async fn flush(&mut self) {
        let batch = Batch {
            sightings: self.sightings.drain().map(|(_, s)| s).collect(),
            torrents: std::mem::take(&mut self.torrents),
            scrapes: std::mem::take(&mut self.scraped),
            import_mark: None,
        };
        if !batch.is_empty() {
            let _ = self.batches.send(ToWriter::Batch(batch)).await;
        }
    }

    /// The node that sends the next sample or direct query: each in turn.
    fn query_node(&mut self) -> Dht {
        self.next_dht = self.next_dht.wrapping_add(1);
        self.dhts[self.next_dht % self.dhts.len()].clone()
    }

    /// The node that runs peer lookups: always the first. Every node shares one IP, and other
    /// implementations limit queries per source IP (libtorrent ignores an IP for five minutes
    /// after about 50 packets in 10 seconds), so one node's per-destination budget must govern
    /// all of the crawler's lookups.
    fn lookup_node(&self) -> Dht {
        self.dhts[0].clone()
    }

    /// Carries out what discovery and the scrape scheduler ask for now.
    fn dispatch(&mut self, out: &mpsc::Sender<Outcome>) {
        let now = self.now();
        while let Some(due) = self.scrapes.poll(now) {
            let (out, dht) = (out.clone(), self.lookup_node());
            tokio::spawn(async move {
                let r =
                    tokio::time::timeout(Duration::from_secs(60), dht.scrape_lookup(due.info_hash))
                        .await;
                let o = match r {
                    // No node answered: nothing learnt (it stays due).
                    Ok(Ok(l)) if l.responses == 0 => Outcome::Scraped(due, None, l.queries),
                    Ok(Ok(l)) => {
                        // Nodes answered but none sent filters: none of them holds a peer.
                        let (seeders, leechers) = l.scrape.map_or((0, 0), |e| (e.seeds, e.peers));
                        let swarm = Swarm {
                            seeders,
                            leechers,
                            at: unix_now(),
                        };
                        Outcome::Scraped(due, Some(swarm), l.queries)
                    }
                    // Ended without a result: charged what a scrape is guessed to cost.
                    _ => Outcome::Scraped(due, None, ScrapeConfig::default().cost),
                };
                let _ = out.send(o).await;
            });
        }
        while let Some(action) = self.disc.poll_action(now) {
            let out = out.clone();
            match action {
                Action::Sample { to, target } => {
                    let dht = self.query_node();
                    tokio::spawn(async move {
                        let r = dht.request(to, Request::sample_infohashes(target)).await;
                        let o = match r {
                            Err(dhtkit::Error::Refused(_)) => {
                                Outcome::NotSent(Action::Sample { to, target })
                            }
                            r => Outcome::Sample(to, r.ok()),
                        };
                        let _ = out.send(o).await;
                    });
                }
                Action::GetPeers { to, info_hash } => {
                    let dht = self.query_node();
                    tokio::spawn(async move {
                        let r = dht.request(to, Request::get_peers(info_hash)).await;
                        let o = match r {
                            Err(dhtkit::Error::Refused(_)) => {
                                Outcome::NotSent(Action::GetPeers { to, info_hash })
                            }
                            r => Outcome::Direct(info_hash, to, r.ok()),
                        };
                        let _ = out.send(o).await;
                    });
                }
                Action::Lookup { info_hash } => {
                    let (dht, want) = (self.lookup_node(), self.cfg.peers_per_infohash);
                    let charged = self.disc.config().lookup_cost;
                    tokio::spawn(async move {
                        let (peers, queries) = find_peers(&dht, info_hash, want).await;
                        let queries = queries.unwrap_or(charged);
                        let _ = out.send(Outcome::Lookup(info_hash, peers, queries)).await;
                    });
                }
                Action::Fetch { info_hash, peers } => {
                    let (cfg, max_files, keep) =
                        (self.cfg.fetch, self.cfg.max_files, self.cfg.keep_info_dicts);
                    let (stats, peer_id) = (self.stats.clone(), self.peer_id);
                    tokio::spawn(async move {
                        let got =
                            fetch_any(info_hash, &peers, peer_id, &cfg, max_files, keep, &stats)
                                .await;
                        let _ = out.send(Outcome::Fetched(info_hash, got)).await;
                    });
                }
            }
        }
    }
}

/// Peers for `ih` from a get_peers lookup (only `values`: never the nodes that asked). The
/// lookup stops at the first reply with peers (dropping the handle ends it): the crawler needs
/// someone to fetch from, not every peer. The queries it sent are known only when it ran to
/// its end.
async fn find_peers(dht: &Dht, ih: Id, want: usize) -> (Vec<SocketAddr>, Option<u32>) {
    let Ok(mut lookup) = dht.get_peers(ih).await else {
        return (Vec::new(), Some(0));
    };
    let mut peers = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        // After the first peer, only what arrives with it (the same reply).
        let until = if peers.is_empty() {
            deadline
        } else {
            tokio::time::Instant::now() + Duration::from_millis(20)
        };
        match tokio::time::timeout_at(until.min(deadline), lookup.next_peer()).await {
            Ok(Some(p)) => {
                if !peers.contains(&p) && peers.len() < want {
                    peers.push(p);
                }
            }
            Ok(None) => break,
            Err(_) => return (peers, None),
        }
    }
    let queries = tokio::time::timeout_at(deadline, lookup.finish())
        .await
        .ok()
        .and_then(|r| r.ok())
        .map(|r| r.queries);
    (peers, queries)
}

/// Tries `peers` in turn until one gives verified metadata.
async fn fetch_any(
    ih: Id,
    peers: &[SocketAddr],
    peer_id: [u8; 20],
    cfg: &FetchConfig,
    max_files: usize,
    keep: bool,
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
                        info_dict: keep.then_some(v.info),
                    })
                }
                Err(_) => stats.failed("bad_info"),
            },
            Err(e) => stats.failed(e.reason()),
        }
    }
    None
}
