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
//!    nodes that do not speak BEP 51 or do not answer after
//!    [`DiscoveryConfig::retry_silent`]). The target of each query sweeps the keyspace on a
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
    /// When a node does not answer or does not speak BEP 51, it is asked again after this.
    pub retry_silent: Duration,
    /// Nodes that failed this many times in a row are forgotten.
    pub max_silent: u8,
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
    /// Fetches at once.
    pub fetch_concurrency: usize,
    /// Peers handed to one fetch.
    pub peers_per_fetch: usize,
    /// First wait before an infohash that found no peer or no metadata is tried again
    /// (doubling per attempt).
    pub retry_after: Duration,
    /// Attempts per infohash.
    pub max_attempts: u8,
    /// Infohashes waiting for a retry, at most.
    pub retry_queue: usize,
    /// How long a "sampled in the last interval" window is.
    pub window: Duration,
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
            max_silent: 3,
            per_ip_gap: Duration::from_secs(1),
            seen_capacity: 500_000,
            metadata: true,
            direct_queue: 50_000,
            lookup_queue: 10_000,
            lookup_concurrency: 8,
            lookup_cost: 20,
            fetch_queue: 2_000,
            fetch_concurrency: 200,
            peers_per_fetch: 8,
            retry_after: Duration::from_secs(15),
            max_attempts: 5,
            retry_queue: 20_000,
            window: Duration::from_secs(6 * 3600),
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
    /// Waiting for, or in, a lookup.
    Lookup,
    /// Waiting for, or in, a fetch.
    Fetch,
    /// Waiting to be tried again.
    Retry,
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
    /// Infohashes on their way (by stage), with their attempts so far.
    active: HashMap<Id, (Stage, u8)>,
    /// (infohash, sampler) waiting for a direct get_peers, by sampler IP turn.
    direct: VecDeque<(Id, SocketAddr)>,
    lookups: VecDeque<Id>,
    lookups_running: usize,
    fetches: VecDeque<(Id, Vec<SocketAddr>)>,
    fetches_running: usize,
    retries: VecDeque<(Instant, Id)>,
    /// Nodes that answered a sample query, with when (for the window count).
    recent: VecDeque<(Instant, SocketAddr)>,
    recent_set: HashSet<SocketAddr>,
    stats: DiscoveryStats,
}

/// How many queued direct get_peers are looked at for one whose IP is free, at most.
const DIRECT_SCAN: usize = 64;

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
            active: HashMap::new(),
            direct: VecDeque::new(),
            lookups: VecDeque::new(),
            lookups_running: 0,
            fetches: VecDeque::new(),
            fetches_running: 0,
            retries: VecDeque::new(),
            recent: VecDeque::new(),
            recent_set: HashSet::new(),
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

    /// Infohashes waiting in each queue: (direct, lookups, fetches, retries).
    pub fn queues(&self) -> (usize, usize, usize, usize) {
        (
            self.direct.len(),
            self.lookups.len(),
            self.fetches.len(),
            self.retries.len(),
        )
    }

    /// True if `info_hash` was discovered (and is still remembered).
    pub fn has_seen(&self, info_hash: &Id) -> bool {
        self.seen.contains(info_hash)
    }

    /// A node was heard of (in a routing table, a reply's `nodes`, a query to us): it is
    /// sampled when its turn comes, at once if new.
    pub fn heard(&mut self, now: Instant, addr: SocketAddr) {
        if self.nodes.contains_key(&addr) || self.nodes.len() >= self.cfg.max_nodes {
            return;
        }
        self.schedule(addr, now, 0, false);
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
        for a in nodes {
            self.heard(now, *a);
        }
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
        }
        if bep51 {
            self.stats.samples_answered += 1;
            if !st.bep51 {
                self.stats.bep51_nodes += 1;
            }
            for ih in samples {
                if self.discover(*ih, Source::Sample) && self.cfg.metadata {
                    self.queue_direct(*ih, from);
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
            self.schedule(from, now + self.cfg.retry_silent, 0, st.bep51);
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
        for a in nodes {
            self.heard(now, *a);
        }
        let attempts = self.active.get(&info_hash).map_or(0, |a| a.1);
        if peers.is_empty() {
            self.queue_lookup(info_hash, attempts);
        } else {
            self.stats.direct_hits += 1;
            self.stats.peers_found += 1;
            let peers = peers
                .iter()
                .take(self.cfg.peers_per_fetch)
                .copied()
                .collect();
            self.queue_fetch(now, info_hash, peers, attempts);
        }
    }

    /// The direct `get_peers` went unanswered: a lookup instead.
    pub fn peers_failed(&mut self, now: Instant, info_hash: Id) {
        let _ = now;
        let attempts = self.active.get(&info_hash).map_or(0, |a| a.1);
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
        if peers.is_empty() {
            self.retry(now, info_hash, attempts);
        } else {
            self.stats.lookups_with_peers += 1;
            self.stats.peers_found += 1;
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
        if named {
            self.stats.named += 1;
            self.named.insert(info_hash);
            self.active.remove(&info_hash);
        } else {
            let attempts = self.active.get(&info_hash).map_or(0, |a| a.1);
            self.retry(now, info_hash, attempts);
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
        if let Some(a) = self.next_direct(now) {
            return Some(a);
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
        None
    }

    /// When [`Discovery::poll_action`] may have something new without any input: the next
    /// node due, the next retry, or budget coming back.
    pub fn next_wake(&self, now: Instant) -> Option<Instant> {
        let mut t: Option<Instant> = None;
        let mut at = |x: Instant| t = Some(t.map_or(x, |t| t.min(x)));
        if let Some(Reverse((d, _))) = self.due.peek() {
            at(*d);
        }
        if let Some((d, _)) = self.retries.front() {
            at(*d);
        }
        let busy = !self.direct.is_empty() || !self.lookups.is_empty() || !self.due.is_empty();
        if busy && self.tokens < 1000 && self.cfg.rate > 0 {
            let missing = (1000 - self.tokens) as u64;
            at(now + Duration::from_micros(missing * 1000 / self.cfg.rate as u64 + 1));
        }
        if !self.direct.is_empty() {
            // A queued sampler's IP frees within a gap.
            at(now + self.cfg.per_ip_gap.min(Duration::from_millis(100)));
        }
        t
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
        self.direct.push_back((ih, from));
    }

    fn queue_lookup(&mut self, ih: Id, attempts: u8) {
        if self.lookups.len() >= self.cfg.lookup_queue {
            self.stats.dropped += 1;
            self.active.remove(&ih);
            return;
        }
        self.active.insert(ih, (Stage::Lookup, attempts));
        self.lookups.push_back(ih);
    }

    fn queue_fetch(&mut self, now: Instant, ih: Id, peers: Vec<SocketAddr>, attempts: u8) {
        if self.fetches.len() >= self.cfg.fetch_queue {
            self.stats.dropped += 1;
            self.retry(now, ih, attempts);
            return;
        }
        self.active.insert(ih, (Stage::Fetch, attempts));
        self.fetches.push_back((ih, peers));
    }

    fn retry(&mut self, now: Instant, ih: Id, attempts: u8) {
        let attempts = attempts.saturating_add(1);
        if attempts >= self.cfg.max_attempts || self.retries.len() >= self.cfg.retry_queue {
            self.stats.given_up += 1;
            self.active.remove(&ih);
            return;
        }
        let wait = self.cfg.retry_after * (1u32 << (attempts - 1).min(8));
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
                self.active.remove(&ih);
                continue;
            }
            let attempts = self.active.get(&ih).map_or(1, |a| a.1);
            self.queue_lookup(ih, attempts);
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
        while self
            .direct
            .front()
            .is_some_and(|(ih, _)| !self.in_stage(ih, Stage::Direct))
        {
            self.direct.pop_front(); // found another way since
        }
        let n = self.direct.len().min(DIRECT_SCAN);
        for i in 0..n {
            let (_, to) = self.direct[i];
            if self.ip_ready(&to.ip(), now) {
                let (info_hash, to) = self.direct.remove(i).expect("in range");
                self.used_ip(to.ip(), now);
                self.charge(1);
                self.stats.direct_sent += 1;
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
    fn a_sampler_without_peers_gives_way_to_a_lookup() {
        let t0 = Instant::ZERO;
        let mut d = Discovery::new(cfg(), 1, t0);
        d.heard(t0, a(1));
        drain(&mut d, t0);
        d.sample_reply(t0, a(1), &[ih(1), ih(2)], Some(60), &[]);
        let t1 = t0 + Duration::from_secs(1);
        assert!(
            matches!(drain(&mut d, t1)[..], [Action::GetPeers { info_hash, .. }] if info_hash == ih(1))
        );
        d.peers_reply(t1, ih(1), &[], &[]);
        assert_eq!(drain(&mut d, t1), vec![Action::Lookup { info_hash: ih(1) }]);
        let t2 = t1 + Duration::from_secs(1);
        assert!(
            matches!(drain(&mut d, t2)[..], [Action::GetPeers { info_hash, .. }] if info_hash == ih(2))
        );
        d.peers_failed(t2, ih(2));
        assert_eq!(drain(&mut d, t2), vec![Action::Lookup { info_hash: ih(2) }]);
        // The lookups' real cost settles the budget.
        d.lookup_done(t2, ih(1), &[a(50)], 12);
        d.lookup_done(t2, ih(2), &[], 30);
        let s = d.stats();
        assert_eq!(s.queries, 1 + 2 + 12 + 30);
        assert_eq!(s.lookups, 2);
        assert_eq!(s.lookups_with_peers, 1);
        // ih(2) waits for a retry: a lookup again after retry_after.
        let acts = drain(&mut d, t2);
        assert!(matches!(acts[..], [Action::Fetch { info_hash, .. }] if info_hash == ih(1)));
        let t3 = t2 + d.config().retry_after;
        assert_eq!(drain(&mut d, t3), vec![Action::Lookup { info_hash: ih(2) }]);
    }

    #[test]
    fn nodes_are_asked_again_after_their_interval_and_silent_ones_later() {
        let t0 = Instant::ZERO;
        let mut d = Discovery::new(cfg(), 1, t0);
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
        let mut later = at(&mut d, t0 + Duration::from_secs(3600));
        later.sort();
        assert_eq!(later, vec![a(2), a(3)]);
        // a(3) stays silent: forgotten after max_silent failures in a row.
        d.sample_failed(t0 + Duration::from_secs(3600), a(3));
        d.sample_failed(t0 + Duration::from_secs(7200), a(3));
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
