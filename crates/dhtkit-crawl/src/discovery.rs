//! Discovery without I/O: whom to sample next and when, how the peers of a sampled infohash
//! are found, which infohashes are new, what to fetch, and how the packet budget is spent.
//!
//! [`Discovery`] takes what happened (a node heard of, a reply, a failure, an infohash asked
//! about, a fetch's result) with the time it happened, and hands back [`Action`]s to carry
//! out. It never reads a clock and never touches a socket, so the tokio crawler and the
//! simulator run the same decisions.
//!
//! The strategy, in the order the budget is spent:
//!
//! 1. **The nodes' own upkeep and answers** come first: the driver reports them with
//!    [`Discovery::spent`] and they are taken from the same budget before anything else.
//! 2. **Samples**: every node heard of is asked `sample_infohashes` when it is due: at once
//!    when new, then again after the `interval` it gave (at most [`DiscoveryConfig::max_interval`];
//!    nodes that answer without BEP 51 after [`DiscoveryConfig::retry_bep5`], nodes that do
//!    not answer after [`DiscoveryConfig::retry_silent`]). The target of each query sweeps the keyspace on a
//!    low-discrepancy sequence, so the `nodes` that come back spread over the whole DHT
//!    instead of clustering where earlier replies happened to point.
//! 3. **Peers, from the node that sampled them**: a node's samples are infohashes it stores
//!    peers for, so a new one is first asked of that node with one `get_peers`.
//! 4. **Lookups**: only when the sampler had no peers (it dropped them, or it left), or the
//!    infohash was learnt passively (someone asked us about it), a full `get_peers` lookup,
//!    charged at its typical cost up front and settled at its real cost.
//!
//! Never more than one query a second to one IP ([`DiscoveryConfig::per_ip_gap`]): well
//! inside libtorrent's dos_blocker (it ignores an IP after more than 5 packets a second over
//! 10 seconds).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use dhtkit_proto::{Id, Instant};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::seen::BoundedSet;
use crate::source::Source;

/// Lookup parallelism for a crawler's nodes. A crawler's lookup stops at the first reply with
/// peers, so what it costs is about α queries per hop; 3 (BEP 5's) spends a third of what
/// dhtkit's default 8 does, and a crawler trades the lookup's speed for packets.
pub const CRAWL_ALPHA: usize = 3;

/// What discovery may do, and how much of it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DiscoveryConfig {
    /// Outbound queries per second, everything together (the nodes' own included, as reported
    /// with [`Discovery::spent`]).
    pub rate: u32,
    /// The budget's burst, in queries.
    pub burst: u32,
    /// Most nodes the walk schedules (beyond it, new nodes are not scheduled).
    pub max_nodes: usize,
    /// Longest interval honoured: a node asking for more is asked again after this.
    pub max_interval: Duration,
    /// Shortest wait before asking a node again, whatever interval it gives.
    pub min_interval: Duration,
    /// Ask nodes again after at most this long, even when they ask for longer (`None`:
    /// honour their `interval`, up to `max_interval`).
    pub shorten_to: Option<Duration>,
    /// When a node does not answer, it is asked again after this.
    pub retry_silent: Duration,
    /// When a node answers without BEP 51 (no samples, no interval), it is asked again after
    /// this (it may be updated to a client that speaks it).
    pub retry_bep5: Duration,
    /// Nodes that failed this many times in a row are forgotten.
    pub max_silent: u8,
    /// Forgotten nodes remembered as dead, at most (about 24 bytes each): naming them again
    /// does not bring them back (about half the contacts in replies never answer, and each
    /// would cost a query every time it is named).
    pub dead_capacity: usize,
    /// Least time between two queries to one IP.
    pub per_ip_gap: Duration,
    /// Infohashes remembered as seen.
    pub seen_capacity: usize,
    /// Fetch metadata (off: discovery stops at finding an infohash).
    pub metadata: bool,
    /// Infohashes waiting for their sampler's `get_peers`, at most.
    pub direct_queue: usize,
    /// Infohashes waiting for a lookup, at most.
    pub lookup_queue: usize,
    /// Lookups at once.
    pub lookup_concurrency: usize,
    /// What a lookup is charged up front, in queries (settled at its real cost when it ends).
    pub lookup_cost: u32,
    /// Infohashes waiting for a fetch, at most.
    pub fetch_queue: usize,
    /// Infohashes whose peers were found while the fetch queue was full, kept with their
    /// peers until there is room, at most (about 100 bytes each). Beyond it, up to
    /// `retry_queue` more wait without their peers, and their samplers are asked again.
    pub fetch_backlog: usize,
    /// Fetches at once.
    pub fetch_concurrency: usize,
    /// Peers handed to one fetch.
    pub peers_per_fetch: usize,
    /// First wait before an infohash that found no peer or no metadata is tried again (four
    /// times longer per attempt; the sampler is asked again first, while it answers).
    pub retry_after: Duration,
    /// First wait before an infohash whose peers gave no metadata is tried again (four times
    /// longer per attempt). Longer than [`DiscoveryConfig::retry_after`]: the peers just
    /// tried are the ones the sampler would name again until they re-announce (every 30
    /// minutes in most clients), so an early retry costs a query for the same answer.
    pub fetch_retry_after: Duration,
    /// Fetches per infohash, at most (each after its peers were asked for again): a peer
    /// that refused refuses again, so further fetches only pay once other peers announced.
    pub fetch_attempts: u8,
    /// Attempts per infohash.
    pub max_attempts: u8,
    /// Infohashes waiting for a retry, at most.
    pub retry_queue: usize,
    /// How long a "sampled in the last interval" window is.
    pub window: Duration,
    /// Exploration: once every node heard of is waiting for its interval, the nodes that
    /// joined since are only known if someone names them, so spare budget asks a node that
    /// answered for the nodes near the next sweep target. Each infohash discovered earns
    /// this many thousandths of an exploration query (100: exploring costs at most a tenth
    /// of a query per infohash found, plus the floor).
    pub explore_per_infohash: u32,
    /// Exploration's floor: one query per this long even when nothing new turns up.
    pub explore_every: Duration,
}

impl Default for DiscoveryConfig {
    fn default() -> Self {
        DiscoveryConfig {
            rate: 500,
            burst: 50,
            max_nodes: 1_000_000,
            max_interval: Duration::from_secs(6 * 3600),
            min_interval: Duration::from_secs(60),
            shorten_to: None,
            retry_silent: Duration::from_secs(3600),
            retry_bep5: Duration::from_secs(6 * 3600),
            max_silent: 1,
            dead_capacity: 1_000_000,
            per_ip_gap: Duration::from_secs(1),
            seen_capacity: 500_000,
            metadata: true,
            direct_queue: 4_000_000,
            lookup_queue: 10_000,
            lookup_concurrency: 8,
            lookup_cost: 20,
            fetch_queue: 20_000,
            fetch_backlog: 500_000,
            fetch_concurrency: 200,
            peers_per_fetch: 8,
            retry_after: Duration::from_secs(15),
            fetch_retry_after: Duration::from_secs(3600),
            fetch_attempts: 2,
            max_attempts: 5,
            retry_queue: 1_000_000,
            window: Duration::from_secs(6 * 3600),
            explore_per_infohash: 100,
            explore_every: Duration::from_secs(10),
        }
    }
}

/// Something for the driver to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send `sample_infohashes` for `target` to `to`; report with
    /// [`Discovery::sample_reply`] or [`Discovery::sample_failed`].
    Sample {
        /// The node.
        to: SocketAddr,
        /// The target (spread over the keyspace).
        target: Id,
    },
    /// Send one `get_peers` for `info_hash` to `to`, the node that sampled it; report with
    /// [`Discovery::peers_reply`] or [`Discovery::peers_failed`].
    GetPeers {
        /// The node.
        to: SocketAddr,
        /// The infohash.
        info_hash: Id,
    },
    /// Run a `get_peers` lookup for `info_hash`; report with [`Discovery::lookup_done`].
    Lookup {
        /// The infohash.
        info_hash: Id,
    },
    /// Fetch `info_hash`'s metadata from one of `peers`; report with
    /// [`Discovery::fetch_done`].
    Fetch {
        /// The infohash.
        info_hash: Id,
        /// Peers to try, in order.
        peers: Vec<SocketAddr>,
    },
}

/// What discovery has done so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DiscoveryStats {
    /// Queries discovery sent (samples, direct get_peers, and the lookups' real cost).
    pub queries: u64,
    /// Queries the nodes reported for their own upkeep.
    pub node_queries: u64,
    /// `sample_infohashes` sent.
    pub samples_sent: u64,
    /// Replies with BEP 51 samples or an interval.
    pub samples_answered: u64,
    /// Distinct nodes that ever answered with BEP 51.
    pub bep51_nodes: u64,
    /// Distinct nodes that answered a sample query at all.
    pub nodes_answered: u64,
    /// Of the samples sent, those that explored (asked a node before its turn for new
    /// nodes).
    pub explored: u64,
    /// Direct `get_peers` sent to samplers.
    pub direct_sent: u64,
    /// Direct `get_peers` that came back with peers.
    pub direct_hits: u64,
    /// Lookups started.
    pub lookups: u64,
    /// Lookups that found peers.
    pub lookups_with_peers: u64,
    /// Infohashes not seen before.
    pub discovered: u64,
    /// Of those, found by a sample.
    pub discovered_by_sample: u64,
    /// Infohashes for which peers were found.
    pub peers_found: u64,
    /// Fetches handed out.
    pub fetches: u64,
    /// Fetches that gave metadata.
    pub named: u64,
    /// Infohashes given up on.
    pub given_up: u64,
    /// Work dropped because a queue was full.
    pub dropped: u64,
    /// Nodes scheduled now.
    pub scheduled: u64,
}

#[derive(Debug, Clone, Copy)]
struct NodeState {
    /// When it is due; matches its heap entry (older entries are stale).
    due: Instant,
    /// Failures in a row.
    silent: u8,
    /// It once answered with BEP 51.
    bep51: bool,
    /// Last answered a sample query.
    answered: Option<Instant>,
}

/// An infohash's progress after it was discovered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Waiting for, or in, its sampler's get_peers.
    Direct,
    /// The same, asked a second time after no answer.
    DirectAgain,
    /// Waiting for, or in, a lookup.
    Lookup,
    /// Waiting for, or in, a fetch.
    Fetch,
    /// Waiting to be tried again.
    Retry,
    /// Peers found while the fetch queue was full: fetched from them when there is room (or,
    /// past [`DiscoveryConfig::fetch_backlog`], its sampler is asked again then).
    Backlog,
}

/// The crawler's discovery decisions, without I/O. See the [module docs](self).
#[derive(Debug)]
pub struct Discovery {
    cfg: DiscoveryConfig,
    rng: SmallRng,
    nodes: HashMap<SocketAddr, NodeState>,
    due: BinaryHeap<Reverse<(Instant, SocketAddr)>>,
    /// When each IP may be sent to again (entries past are pruned).
    ip_free: HashMap<IpAddr, Instant>,
    ip_prune_at: Instant,
    /// The sweep's position: the top 64 bits of the next target.
    sweep: u64,
    /// Budget in thousandths of a query, and when it was last refilled.
    tokens: i64,
    refilled: Instant,
    seen: BoundedSet<Id>,
    named: BoundedSet<Id>,
    /// Nodes forgotten as dead, by [`addr_key`].
    dead: BoundedSet<u64>,
    /// Infohashes on their way (by stage), with their attempts so far.
    active: HashMap<Id, (Stage, u8)>,
    /// The node that sampled each infohash on its way, while it still answers for it: retries
    /// ask it again (one query) before anything dearer.
    samplers: HashMap<Id, SocketAddr>,
    /// Another node that sampled an infohash on its way: asked when the first stops
    /// answering.
    alt_samplers: HashMap<Id, SocketAddr>,
    /// Infohashes on their way for which peers were found (counted once).
    peered: HashSet<Id>,
    /// Fetches that ended without metadata, per infohash on its way.
    fetched: HashMap<Id, u8>,
    /// Infohashes on their way that came from a sample: once the nodes storing them have no
    /// peers and a lookup found none either, the torrent is taken for dead.
    sampled: HashSet<Id>,
    /// Infohashes waiting for a direct get_peers, by sampler.
    direct: DirectQueue,
    /// Direct get_peers sent and not yet answered.
    direct_inflight: usize,
    /// Infohashes with peers found that wait for room in the fetch queue, with their peers
    /// (none past `fetch_backlog`: the sampler is asked again).
    backlog: VecDeque<(Id, Box<[SocketAddr]>)>,
    lookups: VecDeque<Id>,
    lookups_running: usize,
    fetches: VecDeque<(Id, Vec<SocketAddr>)>,
    fetches_running: usize,
    retries: VecDeque<(Instant, Id)>,
    /// Nodes that answered a sample query, with when (for the window count).
    recent: VecDeque<(Instant, SocketAddr)>,
    recent_set: HashSet<SocketAddr>,
    /// Nodes that answered, to explore from (entries forgotten since are skipped).
    answering: Vec<SocketAddr>,
    /// Exploration credit in thousandths of a query, and when the floor last added to it.
    explore_credit: i64,
    explore_at: Instant,
    stats: DiscoveryStats,
}

/// Most exploration credit saved up, in queries.
const EXPLORE_CAP: i64 = 100;

/// A node's address as 64 bits: exact for IPv4 (address and port), a hash for IPv6.
fn addr_key(a: &SocketAddr) -> u64 {
    match a.ip() {
        IpAddr::V4(ip) => (u32::from(ip) as u64) << 16 | a.port() as u64,
        IpAddr::V6(ip) => {
            let b = u128::from(ip);
            let mut h = (b as u64) ^ ((b >> 64) as u64).rotate_left(29) ^ a.port() as u64;
            // splitmix64's finaliser; the top bit marks IPv6 so the two never meet.
            h ^= h >> 30;
            h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
            h ^= h >> 27;
            h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
            h ^= h >> 31;
            h | 1 << 63
        }
    }
}

/// How many nodes due are looked at for one whose IP is free, at most.
const DIRECT_SCAN: usize = 64;

/// Infohashes waiting for a direct `get_peers`, queued per sampler, and the samplers in the
/// order their turn comes (one query a gap each): a node that sampled twenty new infohashes
/// does not hold up the others.
#[derive(Debug, Default)]
struct DirectQueue {
    by: HashMap<SocketAddr, VecDeque<Id>>,
    /// (when, sampler): one entry per sampler with a non-empty queue.
    turns: BinaryHeap<Reverse<(Instant, SocketAddr)>>,
    len: usize,
}

impl DirectQueue {
    fn len(&self) -> usize {
        self.len
    }

    fn push_back(&mut self, ih: Id, sampler: SocketAddr) {
        self.push(ih, sampler, Instant::ZERO, false);
    }

    /// Back at the head of its sampler's queue, its turn not before `at`.
    fn push_front(&mut self, ih: Id, sampler: SocketAddr, at: Instant) {
        self.push(ih, sampler, at, true);
    }

    fn push(&mut self, ih: Id, sampler: SocketAddr, at: Instant, front: bool) {
        let q = self.by.entry(sampler).or_default();
        if q.is_empty() {
            self.turns.push(Reverse((at, sampler)));
        }
        if front {
            q.push_front(ih);
        } else {
            q.push_back(ih);
        }
        self.len += 1;
    }

    /// When the next sampler's turn is.
    fn next_turn(&self) -> Option<Instant> {
        self.turns.peek().map(|Reverse((t, _))| *t)
    }

    /// The sampler whose turn has come, taken off the turns (give it back with
    /// [`DirectQueue::later`] or [`DirectQueue::take`]).
    fn due(&mut self, now: Instant) -> Option<SocketAddr> {
        let Reverse((t, s)) = *self.turns.peek()?;
        if t > now {
            return None;
        }
        self.turns.pop();
        Some(s)
    }

    fn later(&mut self, sampler: SocketAddr, at: Instant) {
        self.turns.push(Reverse((at, sampler)));
    }

    /// The sampler's next infohash still `wanted` (others are dropped); its next turn at
    /// `next` if more wait.
    fn take(
        &mut self,
        sampler: SocketAddr,
        next: Instant,
        wanted: impl Fn(&Id) -> bool,
    ) -> Option<Id> {
        let q = self.by.get_mut(&sampler)?;
        let mut out = None;
        while let Some(ih) = q.pop_front() {
            self.len -= 1;
            if wanted(&ih) {
                out = Some(ih);
                break;
            }
        }
        if q.is_empty() {
            self.by.remove(&sampler);
        } else {
            self.turns.push(Reverse((next, sampler)));
        }
        out
    }
}

impl Discovery {
    /// Discovery with `cfg`; `seed` draws the sweep's start and the targets' low bits.
    pub fn new(cfg: DiscoveryConfig, seed: u64, now: Instant) -> Discovery {
        let mut rng = SmallRng::seed_from_u64(seed);
        Discovery {
            sweep: rng.random(),
            rng,
            nodes: HashMap::new(),
            due: BinaryHeap::new(),
            ip_free: HashMap::new(),
            ip_prune_at: now,
            tokens: cfg.burst as i64 * 1000,
            refilled: now,
            seen: BoundedSet::new(cfg.seen_capacity),
            named: BoundedSet::new((cfg.seen_capacity / 4).max(1)),
            dead: BoundedSet::new(cfg.dead_capacity.max(1)),
            active: HashMap::new(),
            samplers: HashMap::new(),
            alt_samplers: HashMap::new(),
            peered: HashSet::new(),
            fetched: HashMap::new(),
            sampled: HashSet::new(),
            direct: DirectQueue::default(),
            direct_inflight: 0,
            backlog: VecDeque::new(),
            lookups: VecDeque::new(),
            lookups_running: 0,
            fetches: VecDeque::new(),
            fetches_running: 0,
            retries: VecDeque::new(),
            recent: VecDeque::new(),
            recent_set: HashSet::new(),
            answering: Vec::new(),
            explore_credit: 0,
            explore_at: now,
            stats: DiscoveryStats::default(),
            cfg,
        }
    }

    /// The settings.
    pub fn config(&self) -> &DiscoveryConfig {
        &self.cfg
    }

    /// What discovery has done so far.
    pub fn stats(&self) -> DiscoveryStats {
        let mut s = self.stats.clone();
        s.scheduled = self.nodes.len() as u64;
        s
    }

    /// Distinct nodes that answered a sample query within the last
    /// [`DiscoveryConfig::window`].
    pub fn sampled_in_window(&mut self, now: Instant) -> usize {
        self.expire_recent(now);
        self.recent_set.len()
    }

    /// Infohashes waiting in each queue: (direct, lookups, fetches, retries); the retries
    /// count those waiting for room in the fetch queue.
    pub fn queues(&self) -> (usize, usize, usize, usize) {
        (
            self.direct.len(),
            self.lookups.len(),
            self.fetches.len(),
            self.retries.len() + self.backlog.len(),
        )
    }

    /// True if the walk has `addr` scheduled.
    pub fn knows(&self, addr: &SocketAddr) -> bool {
        self.nodes.contains_key(addr)
    }

    /// True if `info_hash` was discovered (and is still remembered).
    pub fn has_seen(&self, info_hash: &Id) -> bool {
        self.seen.contains(info_hash)
    }

    /// The driver could not send `action` now (the node had no budget left for that IP, or
    /// too many queries were open): it is given back, at no cost, and comes again after the
    /// IP's gap.
    pub fn not_sent(&mut self, now: Instant, action: Action) {
        match action {
            Action::Sample { to, .. } => {
                self.refund(1);
                self.stats.samples_sent = self.stats.samples_sent.saturating_sub(1);
                if let Some(st) = self.nodes.get(&to).copied() {
                    self.schedule(to, now + self.cfg.per_ip_gap, st.silent, st.bep51);
                }
            }
            Action::GetPeers { to, info_hash } => {
                self.direct_inflight = self.direct_inflight.saturating_sub(1);
                self.refund(1);
                self.stats.direct_sent = self.stats.direct_sent.saturating_sub(1);
                self.direct
                    .push_front(info_hash, to, now + self.cfg.per_ip_gap);
            }
            Action::Lookup { info_hash } => {
                self.lookups_running = self.lookups_running.saturating_sub(1);
                self.stats.lookups = self.stats.lookups.saturating_sub(1);
                self.refund(self.cfg.lookup_cost);
                self.lookups.push_front(info_hash);
            }
            Action::Fetch { info_hash, peers } => {
                self.fetches_running = self.fetches_running.saturating_sub(1);
                self.stats.fetches = self.stats.fetches.saturating_sub(1);
                self.fetches.push_front((info_hash, peers));
            }
        }
    }

    /// A node was heard of (in a routing table, a reply's `nodes`, a query to us): it is
    /// sampled when its turn comes, at once if new.
    pub fn heard(&mut self, now: Instant, addr: SocketAddr) {
        self.heard_new(now, addr);
    }

    fn heard_new(&mut self, now: Instant, addr: SocketAddr) -> bool {
        if self.nodes.contains_key(&addr)
            || self.nodes.len() >= self.cfg.max_nodes
            || self.dead.contains(&addr_key(&addr))
        {
            return false;
        }
        self.schedule(addr, now, 0, false);
        true
    }

    /// Nodes named in a reply: the new ones are scheduled.
    fn heard_in_reply(&mut self, now: Instant, nodes: &[SocketAddr]) {
        for a in nodes {
            self.heard_new(now, *a);
        }
    }

    /// The nodes reported `n` queries of their own (upkeep, lookups they run for themselves):
    /// taken from the budget first.
    pub fn spent(&mut self, now: Instant, n: u32) {
        self.refill(now);
        self.tokens -= n as i64 * 1000;
        self.stats.node_queries += n as u64;
    }

    /// `from` answered a sample query: its samples, `interval`, and the nodes it listed.
    pub fn sample_reply(
        &mut self,
        now: Instant,
        from: SocketAddr,
        samples: &[Id],
        interval: Option<i64>,
        nodes: &[SocketAddr],
    ) {
        let bep51 = interval.is_some() || !samples.is_empty();
        self.heard_in_reply(now, nodes);
        let Some(st) = self.nodes.get(&from).copied() else {
            return;
        };
        // Only scheduled nodes count, so the window is bounded by `max_nodes` too.
        if !self.recent_set.contains(&from) {
            self.recent_set.insert(from);
            self.recent.push_back((now, from));
        }
        if st.answered.is_none() {
            self.stats.nodes_answered += 1;
            self.answering.push(from);
        }
        if bep51 {
            self.stats.samples_answered += 1;
            if !st.bep51 {
                self.stats.bep51_nodes += 1;
            }
            for ih in samples {
                if self.discover(*ih, Source::Sample) {
                    if self.cfg.metadata {
                        self.queue_direct(*ih, from);
                    }
                } else if self.samplers.get(ih).is_some_and(|s| *s != from) {
                    self.alt_samplers.entry(*ih).or_insert(from);
                }
            }
            let asked = Duration::from_secs(interval.unwrap_or(0).max(0) as u64);
            let wait = self
                .cfg
                .shorten_to
                .map_or(asked, |s| asked.min(s))
                .min(self.cfg.max_interval)
                .max(self.cfg.min_interval);
            self.schedule(from, now + wait, 0, true);
        } else {
            self.schedule(from, now + self.cfg.retry_bep5, 0, st.bep51);
        }
        if let Some(s) = self.nodes.get_mut(&from) {
            s.answered = Some(now);
        }
    }

    /// A sample query to `from` timed out or was refused.
    pub fn sample_failed(&mut self, now: Instant, from: SocketAddr) {
        let Some(st) = self.nodes.get(&from).copied() else {
            return;
        };
        let silent = st.silent.saturating_add(1);
        if silent >= self.cfg.max_silent {
            self.nodes.remove(&from);
            if st.answered.is_none() {
                self.dead.insert(addr_key(&from));
            }
            return;
        }
        self.schedule(from, now + self.cfg.retry_silent, silent, st.bep51);
    }

    /// An infohash learnt without asking: someone asked us `get_peers` for it, or announced
    /// it with a valid token (then `peer` is the announcer, a peer to fetch from).
    pub fn passive(
        &mut self,
        now: Instant,
        info_hash: Id,
        source: Source,
        peer: Option<SocketAddr>,
    ) {
        let new = self.discover(info_hash, source);
        if !self.cfg.metadata || self.named.contains(&info_hash) {
            return;
        }
        match peer {
            Some(p) => {
                let waiting = matches!(self.active.get(&info_hash), Some((Stage::Fetch, _)));
                if !waiting {
                    let attempts = self.active.get(&info_hash).map_or(0, |a| a.1);
                    self.queue_fetch(now, info_hash, vec![p], attempts);
                }
            }
            None if new => self.queue_lookup(info_hash, 0),
            None => {}
        }
    }

    /// An infohash known from an earlier run that still lacks metadata: looked up again
    /// (it is not counted as discovered).
    pub fn resume(&mut self, info_hash: Id) {
        if !self.cfg.metadata || !self.seen.insert(info_hash) {
            return;
        }
        self.queue_lookup(info_hash, 0);
    }

    /// The sampler answered our direct `get_peers` with `peers` (possibly none) and `nodes`.
    pub fn peers_reply(
        &mut self,
        now: Instant,
        info_hash: Id,
        peers: &[SocketAddr],
        nodes: &[SocketAddr],
    ) {
        self.direct_inflight = self.direct_inflight.saturating_sub(1);
        self.heard_in_reply(now, nodes);
        let attempts = self.active.get(&info_hash).map_or(0, |a| a.1);
        if peers.is_empty() && self.sampled.contains(&info_hash) {
            // It no longer has peers for it: the torrent's announcers stopped (the usual
            // case: it died) or moved to nodes that came since. A lookup would cost tens of
            // queries for little; the sampler is asked again on the retry schedule.
            self.retry(now, info_hash, attempts);
        } else if peers.is_empty() {
            self.queue_lookup(info_hash, attempts);
        } else {
            self.stats.direct_hits += 1;
            self.found_peers(info_hash);
            let peers = peers
                .iter()
                .take(self.cfg.peers_per_fetch)
                .copied()
                .collect();
            self.queue_fetch(now, info_hash, peers, attempts);
        }
    }

    /// The direct `get_peers` to `sampler` went unanswered: asked once more (the packet may
    /// have been lost), then a lookup instead.
    pub fn peers_failed(&mut self, now: Instant, info_hash: Id, sampler: SocketAddr) {
        let _ = now;
        self.direct_inflight = self.direct_inflight.saturating_sub(1);
        let (stage, attempts) = self
            .active
            .get(&info_hash)
            .copied()
            .unwrap_or((Stage::Direct, 0));
        if stage == Stage::Direct && self.direct.len() < self.cfg.direct_queue {
            self.active
                .insert(info_hash, (Stage::DirectAgain, attempts));
            self.direct.push_back(info_hash, sampler);
            return;
        }
        // Gone, or not answering: another sampler, else a lookup from now on.
        self.samplers.remove(&info_hash);
        if let Some(other) = self.alt_samplers.remove(&info_hash) {
            if self.direct.len() < self.cfg.direct_queue {
                self.active.insert(info_hash, (Stage::Direct, attempts));
                self.samplers.insert(info_hash, other);
                self.direct.push_back(info_hash, other);
                return;
            }
        }
        self.queue_lookup(info_hash, attempts);
    }

    /// A lookup ended having sent `queries` queries and found `peers`.
    pub fn lookup_done(&mut self, now: Instant, info_hash: Id, peers: &[SocketAddr], queries: u32) {
        self.lookups_running = self.lookups_running.saturating_sub(1);
        // Settle the lookup's real cost against what it was charged.
        self.refill(now);
        self.tokens -= (queries as i64 - self.cfg.lookup_cost as i64) * 1000;
        self.stats.queries =
            (self.stats.queries + queries as u64).saturating_sub(self.cfg.lookup_cost as u64);
        let attempts = self.active.get(&info_hash).map_or(0, |a| a.1);
        if peers.is_empty() && self.sampled.contains(&info_hash) {
            // Its sampler had no peers left, nor had the nodes around it: a dead torrent.
            // Another lookup would cost as much and find as little.
            self.stats.given_up += 1;
            self.forget(&info_hash);
        } else if peers.is_empty() {
            // Learnt passively: its announce may not have landed yet.
            self.retry(now, info_hash, attempts);
        } else {
            self.stats.lookups_with_peers += 1;
            self.found_peers(info_hash);
            let peers = peers
                .iter()
                .take(self.cfg.peers_per_fetch)
                .copied()
                .collect();
            self.queue_fetch(now, info_hash, peers, attempts);
        }
    }

    /// A fetch ended: with metadata (`named`) or without.
    pub fn fetch_done(&mut self, now: Instant, info_hash: Id, named: bool) {
        self.fetches_running = self.fetches_running.saturating_sub(1);
        let fetched = {
            let f = self.fetched.entry(info_hash).or_insert(0);
            *f = f.saturating_add(1);
            *f
        };
        if !named && fetched >= self.cfg.fetch_attempts {
            self.stats.given_up += 1;
            self.forget(&info_hash);
        } else if named {
            self.stats.named += 1;
            self.named.insert(info_hash);
            self.forget(&info_hash);
        } else {
            let attempts = self.active.get(&info_hash).map_or(0, |a| a.1);
            self.retry_in(now, info_hash, attempts, self.cfg.fetch_retry_after);
        }
    }

    /// The next thing to do now, if any: fetches (no packets), then samples, then direct
    /// get_peers, then lookups, within the budget and one query a second per IP.
    pub fn poll_action(&mut self, now: Instant) -> Option<Action> {
        self.refill(now);
        self.prune_ips(now);
        self.promote_retries(now);
        if self.fetches_running < self.cfg.fetch_concurrency {
            if let Some((info_hash, peers)) = self.fetches.pop_front() {
                self.fetches_running += 1;
                self.stats.fetches += 1;
                return Some(Action::Fetch { info_hash, peers });
            }
        }
        if self.tokens < 1000 {
            return None;
        }
        if let Some(a) = self.next_sample(now) {
            return Some(a);
        }
        self.drain_backlog();
        if self.direct_open() {
            if let Some(a) = self.next_direct(now) {
                return Some(a);
            }
        }
        if self.lookups_running < self.cfg.lookup_concurrency
            && self.tokens >= self.cfg.lookup_cost as i64 * 1000
            && self.fetches.len() < self.cfg.fetch_queue / 2
        {
            while let Some(info_hash) = self.lookups.pop_front() {
                if !self.in_stage(&info_hash, Stage::Lookup) {
                    continue; // found another way since
                }
                self.lookups_running += 1;
                self.stats.lookups += 1;
                self.charge(self.cfg.lookup_cost);
                return Some(Action::Lookup { info_hash });
            }
        }
        self.next_explore(now)
    }

    /// When [`Discovery::poll_action`] may have something new without any input: the next
    /// node due, the next retry, or budget coming back.
    pub fn next_wake(&self, now: Instant) -> Option<Instant> {
        let mut t: Option<Instant> = None;
        let mut at = |x: Instant| t = Some(t.map_or(x, |t| t.min(x)));
        if let Some((d, _)) = self.retries.front() {
            at(*d);
        }
        // Whatever sends waits for the budget as well as for its own time.
        let budget_at = |need: u32| -> Option<Instant> {
            let need = need as i64 * 1000;
            if self.tokens >= need {
                return Some(now);
            }
            if self.cfg.rate == 0 {
                return None;
            }
            let missing = (need - self.tokens) as u64;
            Some(now + Duration::from_micros(missing * 1000 / self.cfg.rate as u64 + 1))
        };
        if let Some(Reverse((d, _))) = self.due.peek() {
            if let Some(b) = budget_at(1) {
                at((*d).max(b));
            }
        }
        if let Some(turn) = self.direct.next_turn().filter(|_| self.direct_open()) {
            if let Some(b) = budget_at(1) {
                at(turn.max(b));
            }
        }
        if !self.lookups.is_empty()
            && self.lookups_running < self.cfg.lookup_concurrency
            && self.fetches.len() < self.cfg.fetch_queue / 2
        {
            if let Some(b) = budget_at(self.cfg.lookup_cost.max(1)) {
                at(b.max(now + Duration::from_millis(1)));
            }
        }
        if !self.fetches.is_empty() && self.fetches_running < self.cfg.fetch_concurrency {
            at(now);
        }
        if !self.answering.is_empty() {
            if let Some(b) = budget_at(1) {
                // Not sooner than 10 ms: the random picks may all have been busy.
                at(b.max(self.explore_ready_at(now))
                    .max(now + Duration::from_millis(10)));
            }
        }
        t
    }

    /// When exploration has a query's credit (now, or when the floor brings it).
    fn explore_ready_at(&self, now: Instant) -> Instant {
        let credit = self.explore_credit + self.floor_credit(now);
        if credit >= 1000 {
            return now;
        }
        let every = self.cfg.explore_every.max(Duration::from_millis(1));
        let missing = (1000 - credit) as u128;
        now + Duration::from_micros((every.as_micros() * missing / 1000) as u64 + 1)
    }

    fn floor_credit(&self, now: Instant) -> i64 {
        let every = self.cfg.explore_every.as_micros().max(1);
        (now.saturating_since(self.explore_at).as_micros() * 1000 / every) as i64
    }

    /// An exploration sample, if there is credit for one and a node to ask.
    fn next_explore(&mut self, now: Instant) -> Option<Action> {
        let floor = self.floor_credit(now);
        if floor > 0 {
            self.explore_credit = (self.explore_credit + floor).min(EXPLORE_CAP * 1000);
            self.explore_at = now;
        }
        if self.explore_credit < 1000 {
            return None;
        }
        // A few random picks: a node that still answers and whose IP is free.
        for _ in 0..8 {
            if self.answering.is_empty() {
                return None;
            }
            let i = self.rng.random_range(0..self.answering.len());
            let addr = self.answering[i];
            let Some(st) = self.nodes.get(&addr).copied() else {
                self.answering.swap_remove(i); // forgotten
                continue;
            };
            if st.answered.is_none() || !self.ip_ready(&addr.ip(), now) {
                continue;
            }
            self.used_ip(addr.ip(), now);
            self.explore_credit -= 1000;
            self.charge(1);
            self.stats.samples_sent += 1;
            self.stats.explored += 1;
            // Its own turn stays as it was: an early answer reschedules it after its interval.
            return Some(Action::Sample {
                to: addr,
                target: self.next_target(),
            });
        }
        None
    }

    /// Room for the peers a direct get_peers may find: in the fetch queue or its backlog
    /// (peers found with nowhere to wait would be asked for again).
    fn direct_open(&self) -> bool {
        !self.cfg.metadata
            || self.fetches.len() + self.backlog.len() + self.direct_inflight
                < self.cfg.fetch_queue + self.cfg.fetch_backlog + self.cfg.retry_queue
    }

    /// Backlogged infohashes go back to their samplers while the fetch queue is under half
    /// full (counting the direct get_peers on their way), a few at a time.
    fn drain_backlog(&mut self) {
        for _ in 0..DIRECT_SCAN {
            if self.fetches.len() + self.direct_inflight + self.direct.len()
                >= self.cfg.fetch_queue / 2
            {
                return;
            }
            let Some((ih, peers)) = self.backlog.pop_front() else {
                return;
            };
            if !self.in_stage(&ih, Stage::Backlog) {
                continue;
            }
            let attempts = self.active.get(&ih).map_or(0, |a| a.1);
            if !peers.is_empty() {
                self.active.insert(ih, (Stage::Fetch, attempts));
                self.fetches.push_back((ih, peers.into_vec()));
                continue;
            }
            match self.samplers.get(&ih).copied() {
                Some(sampler) => {
                    self.active.insert(ih, (Stage::Direct, attempts));
                    self.direct.push_back(ih, sampler);
                }
                None => self.queue_lookup(ih, attempts),
            }
        }
    }

    /// `ih` leaves the pipeline (named, given up or dropped).
    fn forget(&mut self, ih: &Id) {
        self.active.remove(ih);
        self.samplers.remove(ih);
        self.alt_samplers.remove(ih);
        self.peered.remove(ih);
        self.fetched.remove(ih);
        self.sampled.remove(ih);
    }

    fn found_peers(&mut self, ih: Id) {
        if self.peered.insert(ih) {
            self.stats.peers_found += 1;
        }
    }

    fn in_stage(&self, ih: &Id, stage: Stage) -> bool {
        self.active.get(ih).is_some_and(|a| a.0 == stage)
    }

    fn expire_recent(&mut self, now: Instant) {
        while let Some(&(t, a)) = self.recent.front() {
            if now.saturating_since(t) <= self.cfg.window {
                break;
            }
            self.recent.pop_front();
            self.recent_set.remove(&a);
        }
    }

    fn schedule(&mut self, addr: SocketAddr, at: Instant, silent: u8, bep51: bool) {
        let answered = self.nodes.get(&addr).and_then(|s| s.answered);
        self.nodes.insert(
            addr,
            NodeState {
                due: at,
                silent,
                bep51,
                answered,
            },
        );
        self.due.push(Reverse((at, addr)));
    }

    fn discover(&mut self, ih: Id, source: Source) -> bool {
        let new = self.seen.insert(ih);
        if new {
            self.stats.discovered += 1;
            self.explore_credit = (self.explore_credit + self.cfg.explore_per_infohash as i64)
                .min(EXPLORE_CAP * 1000);
            if source == Source::Sample {
                self.stats.discovered_by_sample += 1;
            }
        }
        new
    }

    fn queue_direct(&mut self, ih: Id, from: SocketAddr) {
        if self.active.contains_key(&ih) {
            return;
        }
        if self.direct.len() >= self.cfg.direct_queue {
            // No room to ask the sampler: a lookup later, if there is room for that.
            self.queue_lookup(ih, 0);
            return;
        }
        self.active.insert(ih, (Stage::Direct, 0));
        self.samplers.insert(ih, from);
        self.sampled.insert(ih);
        self.direct.push_back(ih, from);
    }

    fn queue_lookup(&mut self, ih: Id, attempts: u8) {
        if self.lookups.len() >= self.cfg.lookup_queue {
            self.stats.dropped += 1;
            self.forget(&ih);
            return;
        }
        self.active.insert(ih, (Stage::Lookup, attempts));
        self.lookups.push_back(ih);
    }

    fn queue_fetch(&mut self, now: Instant, ih: Id, peers: Vec<SocketAddr>, attempts: u8) {
        if self.fetches.len() >= self.cfg.fetch_queue {
            let n = self.backlog.len();
            if n < self.cfg.fetch_backlog
                || (self.samplers.contains_key(&ih)
                    && n < self.cfg.fetch_backlog + self.cfg.retry_queue)
            {
                // Fetched when fetches catch up (from these peers while the backlog holds
                // them; else its sampler is asked again then).
                let keep = if n < self.cfg.fetch_backlog {
                    peers
                } else {
                    Vec::new()
                };
                self.active.insert(ih, (Stage::Backlog, attempts));
                self.backlog.push_back((ih, keep.into_boxed_slice()));
            } else {
                self.stats.dropped += 1;
                self.retry(now, ih, attempts);
            }
            return;
        }
        self.active.insert(ih, (Stage::Fetch, attempts));
        self.fetches.push_back((ih, peers));
    }

    fn retry(&mut self, now: Instant, ih: Id, attempts: u8) {
        self.retry_in(now, ih, attempts, self.cfg.retry_after);
    }

    fn retry_in(&mut self, now: Instant, ih: Id, attempts: u8, first: Duration) {
        let attempts = attempts.saturating_add(1);
        if attempts >= self.cfg.max_attempts || self.retries.len() >= self.cfg.retry_queue {
            self.stats.given_up += 1;
            self.forget(&ih);
            return;
        }
        // Four times longer each time: 15 s, 1 min, 4 min, 16 min by default, so later
        // attempts meet peers that came back, not the same ones again.
        let wait = first * (1u32 << (2 * (attempts - 1)).min(16));
        self.active.insert(ih, (Stage::Retry, attempts));
        // Waits grow with attempts, so a later retry may be due before an earlier one: the
        // queue is kept in order of due time.
        let at = now + wait;
        let pos = self.retries.partition_point(|(t, _)| *t <= at);
        self.retries.insert(pos, (at, ih));
    }

    fn promote_retries(&mut self, now: Instant) {
        while self.retries.front().is_some_and(|(t, _)| *t <= now) {
            let (_, ih) = self.retries.pop_front().expect("front");
            if self.named.contains(&ih) {
                self.forget(&ih);
                continue;
            }
            let attempts = self.active.get(&ih).map_or(1, |a| a.1);
            match self.samplers.get(&ih).copied() {
                // The sampler first: one query.
                Some(sampler) if self.direct.len() < self.cfg.direct_queue => {
                    self.active.insert(ih, (Stage::Direct, attempts));
                    self.direct.push_back(ih, sampler);
                }
                _ => self.queue_lookup(ih, attempts),
            }
        }
    }

    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_since(self.refilled);
        let add = dt.as_micros() as i64 * self.cfg.rate as i64 / 1000;
        if add > 0 {
            self.tokens = (self.tokens + add).min(self.cfg.burst.max(1) as i64 * 1000);
            self.refilled = now;
        }
    }

    fn refund(&mut self, queries: u32) {
        self.tokens =
            (self.tokens + queries as i64 * 1000).min(self.cfg.burst.max(1) as i64 * 1000);
        self.stats.queries = self.stats.queries.saturating_sub(queries as u64);
    }

    fn charge(&mut self, queries: u32) {
        self.tokens -= queries as i64 * 1000;
        self.stats.queries += queries as u64;
    }

    fn prune_ips(&mut self, now: Instant) {
        if now < self.ip_prune_at {
            return;
        }
        self.ip_free.retain(|_, t| *t > now);
        self.ip_prune_at = now + self.cfg.per_ip_gap.max(Duration::from_millis(100));
    }

    fn ip_ready(&self, ip: &IpAddr, now: Instant) -> bool {
        self.ip_free.get(ip).is_none_or(|t| *t <= now)
    }

    fn used_ip(&mut self, ip: IpAddr, now: Instant) {
        self.ip_free.insert(ip, now + self.cfg.per_ip_gap);
    }

    fn next_sample(&mut self, now: Instant) -> Option<Action> {
        let mut deferred = Vec::new();
        let mut out = None;
        while let Some(&Reverse((at, addr))) = self.due.peek() {
            if at > now {
                break;
            }
            self.due.pop();
            if self.nodes.get(&addr).is_none_or(|s| s.due != at) {
                continue; // rescheduled or forgotten since
            }
            if !self.ip_ready(&addr.ip(), now) {
                // Another port of this IP was asked within the gap: after it.
                deferred.push(addr);
                if deferred.len() >= DIRECT_SCAN {
                    break;
                }
                continue;
            }
            self.used_ip(addr.ip(), now);
            // Asked now; if it never answers, the driver's failure reschedules it.
            let retry_at = now + self.cfg.retry_silent;
            if let Some(s) = self.nodes.get_mut(&addr) {
                s.due = retry_at;
            }
            self.due.push(Reverse((retry_at, addr)));
            self.charge(1);
            self.stats.samples_sent += 1;
            out = Some(Action::Sample {
                to: addr,
                target: self.next_target(),
            });
            break;
        }
        for addr in deferred {
            let at = self.ip_free.get(&addr.ip()).copied().unwrap_or(now);
            if let Some(s) = self.nodes.get_mut(&addr) {
                s.due = at;
            }
            self.due.push(Reverse((at, addr)));
        }
        out
    }

    fn next_direct(&mut self, now: Instant) -> Option<Action> {
        // Bounded: each turn either sends, drops stale entries, or moves a sampler later.
        for _ in 0..DIRECT_SCAN {
            let to = self.direct.due(now)?;
            let gap = self.cfg.per_ip_gap;
            if !self.ip_ready(&to.ip(), now) {
                // Another port of this IP was asked within the gap.
                let at = self.ip_free.get(&to.ip()).copied().unwrap_or(now + gap);
                self.direct.later(to, at);
                continue;
            }
            let active = &self.active;
            let next = self.direct.take(to, now + gap, |ih| {
                active
                    .get(ih)
                    .is_some_and(|a| a.0 == Stage::Direct || a.0 == Stage::DirectAgain)
            });
            if let Some(info_hash) = next {
                self.used_ip(to.ip(), now);
                self.charge(1);
                self.stats.direct_sent += 1;
                self.direct_inflight += 1;
                return Some(Action::GetPeers { to, info_hash });
            }
        }
        None
    }

    /// The next sweep target: the top 64 bits step by 2^64/φ (each step lands in the largest
    /// gap left so far), the rest random.
    fn next_target(&mut self) -> Id {
        self.sweep = self.sweep.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut id = [0u8; 20];
        id[..8].copy_from_slice(&self.sweep.to_be_bytes());
        self.rng.fill(&mut id[8..]);
        Id(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(i: u32) -> SocketAddr {
        SocketAddr::from((std::net::Ipv4Addr::from(0x0a00_0000 + i), 6881))
    }

    fn ih(i: u8) -> Id {
        Id([i; 20])
    }

    fn drain(d: &mut Discovery, now: Instant) -> Vec<Action> {
        std::iter::from_fn(|| d.poll_action(now))
            .take(10_000)
            .collect()
    }

    fn cfg() -> DiscoveryConfig {
        DiscoveryConfig {
            rate: 1000,
            burst: 1000,
            // Exploration has its own test.
            explore_every: Duration::from_secs(10_000_000),
            ..DiscoveryConfig::default()
        }
    }

    #[test]
    fn a_sampled_infohash_is_asked_of_its_sampler_then_fetched() {
        let t0 = Instant::ZERO;
        let mut d = Discovery::new(cfg(), 1, t0);
        d.heard(t0, a(1));
        let acts = drain(&mut d, t0);
        assert!(matches!(acts[..], [Action::Sample { to, .. }] if to == a(1)));
        d.sample_reply(t0, a(1), &[ih(1), ih(2)], Some(21_600), &[a(2)]);
        // a(2) is new: sampled now. a(1) is the sampler of both: one get_peers a second.
        let acts = drain(&mut d, t0);
        assert_eq!(acts.len(), 1, "{acts:?}");
        assert!(matches!(acts[0], Action::Sample { to, .. } if to == a(2)));
        let t1 = t0 + Duration::from_millis(1000);
        let acts = drain(&mut d, t1);
        assert_eq!(
            acts,
            vec![Action::GetPeers {
                to: a(1),
                info_hash: ih(1)
            }]
        );
        d.peers_reply(t1, ih(1), &[a(100)], &[]);
        let acts = drain(&mut d, t1);
        assert_eq!(
            acts,
            vec![Action::Fetch {
                info_hash: ih(1),
                peers: vec![a(100)]
            }]
        );
        d.fetch_done(t1, ih(1), true);
        let s = d.stats();
        assert_eq!(
            (s.discovered, s.direct_hits, s.named, s.lookups),
            (2, 1, 1, 0)
        );
        assert_eq!(s.bep51_nodes, 1);
    }

    #[test]
    fn a_sampler_without_peers_is_asked_again_later_and_a_silent_one_gives_way_to_a_lookup() {
        let t0 = Instant::ZERO;
        let mut d = Discovery::new(cfg(), 1, t0);
        d.heard(t0, a(1));
        drain(&mut d, t0);
        d.sample_reply(t0, a(1), &[ih(1), ih(2)], Some(60), &[]);
        let t1 = t0 + Duration::from_secs(1);
        assert!(
            matches!(drain(&mut d, t1)[..], [Action::GetPeers { info_hash, .. }] if info_hash == ih(1))
        );
        // No peers: its announcers may come back; no lookup (the nodes around it would
        // have what the sampler has), the sampler is asked again after retry_after.
        d.peers_reply(t1, ih(1), &[], &[]);
        assert!(drain(&mut d, t1).is_empty());
        let t2 = t1 + Duration::from_secs(1);
        assert!(
            matches!(drain(&mut d, t2)[..], [Action::GetPeers { info_hash, .. }] if info_hash == ih(2))
        );
        // Unanswered: asked once more (after the IP's gap), then looked up.
        d.peers_failed(t2, ih(2), a(1));
        assert!(drain(&mut d, t2).is_empty());
        let t2 = t2 + Duration::from_secs(1);
        assert_eq!(
            drain(&mut d, t2),
            vec![Action::GetPeers {
                to: a(1),
                info_hash: ih(2)
            }]
        );
        d.peers_failed(t2, ih(2), a(1));
        assert_eq!(drain(&mut d, t2), vec![Action::Lookup { info_hash: ih(2) }]);
        // The lookup's real cost settles the budget; a sampled infohash nobody has peers
        // for is dead.
        d.lookup_done(t2, ih(2), &[], 30);
        let s = d.stats();
        assert_eq!(s.queries, 1 + 3 + 30);
        assert_eq!((s.lookups, s.lookups_with_peers, s.given_up), (1, 0, 1));
        // ih(1)'s retry: its sampler first.
        let t3 = t1 + d.config().retry_after;
        assert_eq!(
            drain(&mut d, t3),
            vec![Action::GetPeers {
                to: a(1),
                info_hash: ih(1)
            }]
        );
        d.peers_reply(t3, ih(1), &[a(9)], &[]);
        assert_eq!(
            drain(&mut d, t3),
            vec![Action::Fetch {
                info_hash: ih(1),
                peers: vec![a(9)]
            }]
        );
        assert_eq!(d.stats().peers_found, 1);
    }

    #[test]
    fn a_failed_fetch_is_tried_once_more_after_the_peers_re_announce() {
        let t0 = Instant::ZERO;
        let mut d = Discovery::new(cfg(), 1, t0);
        d.heard(t0, a(1));
        drain(&mut d, t0);
        d.sample_reply(t0, a(1), &[ih(1)], Some(21_600), &[]);
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(drain(&mut d, t1).len(), 1);
        d.peers_reply(t1, ih(1), &[a(9)], &[]);
        assert_eq!(drain(&mut d, t1).len(), 1); // the fetch
        d.fetch_done(t1, ih(1), false);
        let wait = d.config().fetch_retry_after;
        assert!(drain(&mut d, t1 + wait - Duration::from_secs(1)).is_empty());
        let t2 = t1 + wait;
        assert_eq!(
            drain(&mut d, t2),
            vec![Action::GetPeers {
                to: a(1),
                info_hash: ih(1)
            }]
        );
        d.peers_reply(t2, ih(1), &[a(9)], &[]);
        assert_eq!(drain(&mut d, t2).len(), 1);
        // The second failed fetch is the last (fetch_attempts 2).
        d.fetch_done(t2, ih(1), false);
        assert!(drain(&mut d, t2 + wait * 3).is_empty());
        let s = d.stats();
        assert_eq!((s.fetches, s.given_up, s.direct_sent), (2, 1, 2));
    }

    #[test]
    fn spare_budget_explores_while_it_finds_new_infohashes() {
        let t0 = Instant::ZERO;
        let mut d = Discovery::new(
            DiscoveryConfig {
                explore_every: Duration::from_secs(10),
                metadata: false,
                ..cfg()
            },
            1,
            t0,
        );
        d.heard(t0, a(1));
        drain(&mut d, t0);
        // Everyone known waits for its interval; the floor asks a(1) for nodes every 10 s.
        d.sample_reply(t0, a(1), &[], Some(21_600), &[]);
        let t1 = t0 + Duration::from_secs(10);
        assert!(drain(&mut d, t0 + Duration::from_secs(9)).is_empty());
        assert!(matches!(drain(&mut d, t1)[..], [Action::Sample { to, .. }] if to == a(1)));
        assert!(d
            .next_wake(t1)
            .is_some_and(|w| w > t1 + Duration::from_secs(9)));
        // Twenty new infohashes are worth two more explorations (a tenth each).
        let new: Vec<Id> = (1..=20).map(ih).collect();
        d.sample_reply(t1, a(1), &new, Some(21_600), &[]);
        let mut explored = 0;
        for s in 1..10 {
            explored += drain(&mut d, t1 + Duration::from_secs(s)).len();
        }
        assert_eq!(explored, 2);
        assert_eq!(d.stats().explored, 3);
        assert_eq!(d.stats().discovered, 20);
    }

    #[test]
    fn nodes_are_asked_again_after_their_interval_and_silent_ones_later() {
        let t0 = Instant::ZERO;
        let mut d = Discovery::new(
            DiscoveryConfig {
                max_silent: 2,
                ..cfg()
            },
            1,
            t0,
        );
        d.heard(t0, a(1));
        d.heard(t0, a(2));
        d.heard(t0, a(3));
        assert_eq!(drain(&mut d, t0).len(), 3);
        d.sample_reply(t0, a(1), &[], Some(600), &[]);
        d.sample_reply(t0, a(2), &[], None, &[]); // answers, no BEP 51
        d.sample_failed(t0, a(3));
        let at = |d: &mut Discovery, t: Instant| -> Vec<SocketAddr> {
            drain(d, t)
                .into_iter()
                .filter_map(|x| match x {
                    Action::Sample { to, .. } => Some(to),
                    _ => None,
                })
                .collect()
        };
        assert!(at(&mut d, t0 + Duration::from_secs(599)).is_empty());
        assert_eq!(at(&mut d, t0 + Duration::from_secs(600)), vec![a(1)]);
        // The silent one after an hour, the one without BEP 51 after six.
        assert_eq!(at(&mut d, t0 + Duration::from_secs(3600)), vec![a(3)]);
        // a(3) stays silent: forgotten after max_silent failures in a row, and naming it
        // again does not bring it back.
        d.sample_failed(t0 + Duration::from_secs(3600), a(3));
        assert!(!d.knows(&a(3)));
        d.heard(t0 + Duration::from_secs(3601), a(3));
        assert!(at(&mut d, t0 + Duration::from_secs(100_000))
            .iter()
            .all(|x| *x != a(3)));
        assert_eq!(d.stats().bep51_nodes, 1);
        assert_eq!(d.stats().nodes_answered, 2);
    }

    #[test]
    fn never_more_than_one_query_a_second_to_one_ip() {
        let t0 = Instant::ZERO;
        let mut d = Discovery::new(cfg(), 1, t0);
        // Ten ports of one IP, each with samples to chase: every query to that IP is a
        // second apart, whatever the budget allows.
        let ip = std::net::Ipv4Addr::new(10, 9, 9, 9);
        for p in 0..10u16 {
            d.heard(t0, SocketAddr::from((ip, 7000 + p)));
        }
        let mut sent: Vec<Instant> = Vec::new();
        let mut t = t0;
        for step in 0..400 {
            for act in drain(&mut d, t) {
                match act {
                    Action::Sample { to, .. } => {
                        sent.push(t);
                        let k = (step % 200) as u8;
                        d.sample_reply(t, to, &[ih(k), ih(k.wrapping_add(100))], Some(60), &[]);
                    }
                    Action::GetPeers { info_hash, .. } => {
                        sent.push(t);
                        d.peers_reply(t, info_hash, &[a(1)], &[]);
                    }
                    Action::Fetch { info_hash, .. } => d.fetch_done(t, info_hash, true),
                    Action::Lookup { .. } => panic!("no lookup needed"),
                }
            }
            t = t + Duration::from_millis(250);
        }
        assert!(sent.len() > 50, "it kept working: {}", sent.len());
        for w in sent.windows(2) {
            assert!(
                w[1].saturating_since(w[0]) >= Duration::from_secs(1),
                "{w:?}"
            );
        }
    }

    #[test]
    fn the_budget_holds_and_samples_go_before_peer_finding() {
        let t0 = Instant::ZERO;
        let mut d = Discovery::new(
            DiscoveryConfig {
                rate: 10,
                burst: 10,
                ..DiscoveryConfig::default()
            },
            1,
            t0,
        );
        d.heard(t0, a(1));
        drain(&mut d, t0);
        let many: Vec<Id> = (0..20).map(ih).collect();
        d.sample_reply(t0, a(1), &many, Some(60), &[]);
        for i in 2..5000 {
            d.heard(t0, a(i));
        }
        // 9 tokens left: all go to samples, none to the sampler's get_peers.
        let acts = drain(&mut d, t0);
        assert_eq!(acts.len(), 9);
        assert!(acts.iter().all(|x| matches!(x, Action::Sample { .. })));
        // The nodes' own queries come first: spending the refill leaves nothing.
        let t1 = t0 + Duration::from_secs(1);
        d.spent(t1, 10);
        assert!(drain(&mut d, t1).is_empty());
        // Over 100 s, at most rate × time + burst queries, whatever is queued.
        let mut n = 0;
        let mut t = t1;
        for _ in 0..1000 {
            t = t + Duration::from_millis(100);
            let acts = drain(&mut d, t);
            // Nodes are still due to be sampled: the sampler's get_peers wait.
            assert!(acts.iter().all(|x| matches!(x, Action::Sample { .. })));
            n += acts.len();
        }
        assert!(n <= 10 * 100 + 10, "{n}");
        assert!(n >= 10 * 100 - 20, "{n}");
    }

    #[test]
    fn sweep_targets_spread_evenly_over_the_keyspace() {
        let mut d = Discovery::new(cfg(), 7, Instant::ZERO);
        let mut buckets = [0u32; 16];
        for _ in 0..1600 {
            buckets[(d.next_target().0[0] >> 4) as usize] += 1;
        }
        assert!(
            buckets.iter().all(|&b| (95..=105).contains(&b)),
            "{buckets:?}"
        );
    }

    #[test]
    fn a_passive_announce_goes_straight_to_a_fetch_and_a_question_to_a_lookup() {
        let t0 = Instant::ZERO;
        let mut d = Discovery::new(cfg(), 1, t0);
        d.passive(t0, ih(1), Source::Announce, Some(a(5)));
        d.passive(t0, ih(2), Source::GetPeers, None);
        d.passive(t0, ih(2), Source::GetPeers, None);
        let acts = drain(&mut d, t0);
        assert_eq!(
            acts,
            vec![
                Action::Fetch {
                    info_hash: ih(1),
                    peers: vec![a(5)]
                },
                Action::Lookup { info_hash: ih(2) }
            ]
        );
        assert_eq!(d.stats().discovered, 2);
    }
}
