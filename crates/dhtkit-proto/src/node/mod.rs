//! The [`Node`]: a whole DHT node as a state machine.
//!
//! # Driving a node
//! Feed it inputs and drain its outputs after every input, in this order:
//! 1. inputs: [`Node::handle_datagram`], [`Node::handle_timeout`] (when the deadline from
//!    [`Node::poll_timeout`] passes; extra calls are harmless), and commands such as
//!    [`Node::find_node`];
//! 2. [`Node::poll_transmit`] until `None`, sending each datagram;
//! 3. [`Node::poll_event`] until `None`;
//! 4. [`Node::poll_timeout`] for the next wake-up.
//!
//! The node never blocks, never reads a clock and never allocates without bound: every queue
//! and table has a limit in [`Config`].

mod answer;
mod ask;
mod timers;
mod traverse;

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::bencode::Decoder;
use crate::event::{Event, LookupId, LookupKind};
use crate::krpc::{Body, Message};
use crate::lookup::Lookup;
use crate::outq::OutQueue;
use crate::ratelimit::{Bucket, RateLimiter};
use crate::routing::{NodeEntry, RoutingTable};
use crate::rpc::Transactions;
use crate::store::PeerStore;
use crate::token::Tokens;
use crate::{Config, Id, Instant};

pub use ask::Request;

/// A datagram to send, borrowed from the node's outgoing queue.
#[must_use = "a transmit must be sent, or the datagram is lost"]
#[derive(Debug)]
pub struct Transmit<'a> {
    /// Where to send it.
    pub dest: SocketAddr,
    /// The bytes.
    pub payload: &'a [u8],
}

/// Counters describing what the node has done.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Datagrams received.
    pub datagrams_in: u64,
    /// Bytes received.
    pub bytes_in: u64,
    /// Datagrams queued for sending.
    pub datagrams_out: u64,
    /// Valid queries received.
    pub queries_in: u64,
    /// Responses received that matched a transaction.
    pub responses_in: u64,
    /// Errors received that matched a transaction.
    pub errors_in: u64,
    /// Datagrams that were not valid KRPC.
    pub invalid_in: u64,
    /// Responses or errors that matched no transaction.
    pub unsolicited_in: u64,
    /// Queries dropped by the per-IP rate limit.
    pub rate_limited: u64,
    /// Queries we sent (retransmissions included).
    pub queries_out: u64,
    /// Queries that timed out for good.
    pub timeouts: u64,
    /// Events dropped because the event queue was full.
    pub events_dropped: u64,
    /// Datagrams dropped because the outgoing queue was full.
    pub transmits_dropped: u64,
    /// Queries not sent because too many transactions were pending.
    pub pending_full: u64,
    /// Background queries not sent because of the per-destination or node-wide rate limit.
    pub dest_limited: u64,
}

/// What a node needs to start again where it left off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeState {
    /// Our id.
    pub id: Id,
    /// Known nodes, best first.
    pub nodes: Vec<(Id, SocketAddr)>,
}

#[derive(Debug, Clone, Copy)]
struct Timers {
    rotate: Instant,
    maintenance: Instant,
    refresh: Instant,
    /// Next bootstrap retry, while the table is too small.
    rebootstrap: Option<Instant>,
    /// Lookups waiting for send budget are driven again then.
    redrive: Option<Instant>,
}

/// Most bootstrap addresses remembered for retries.
const MAX_BOOTSTRAP_ADDRS: usize = 32;
/// First delay before bootstrapping again when the table stayed small; it doubles per try.
const REBOOTSTRAP_MIN: std::time::Duration = std::time::Duration::from_secs(5);
/// Longest delay between bootstrap retries.
const REBOOTSTRAP_MAX: std::time::Duration = std::time::Duration::from_secs(300);

/// A BEP 5 DHT node, without I/O.
#[derive(Debug)]
pub struct Node {
    cfg: Config,
    id: Id,
    rng: SmallRng,
    table: RoutingTable,
    tokens: Tokens,
    store: Option<PeerStore>,
    txs: Transactions,
    lookups: BTreeMap<LookupId, Lookup>,
    next_lookup: u64,
    next_request: u64,
    out: OutQueue,
    events: VecDeque<Event>,
    decoder: Decoder,
    limiter: RateLimiter,
    dest_limiter: RateLimiter,
    query_budget: Bucket,
    timers: Timers,
    verifying: HashSet<SocketAddr>,
    bootstrap_addrs: Vec<SocketAddr>,
    bootstrap_running: Option<LookupId>,
    bootstrap_backoff: std::time::Duration,
    scratch_nodes: Vec<(Id, SocketAddr)>,
    scratch_bytes: Vec<u8>,
    scratch_values: Vec<u8>,
    stats: Stats,
    now: Instant,
}

impl Node {
    /// A node with `cfg`, starting at `now`. It knows nobody: call [`Node::bootstrap`],
    /// [`Node::import_state`] or [`Node::add_node`].
    pub fn new(cfg: Config, now: Instant) -> Node {
        let mut rng = SmallRng::seed_from_u64(cfg.seed);
        let id = cfg.id.unwrap_or_else(|| Id::random(&mut rng));
        let tokens = Tokens::new(&mut rng);
        let limiter = RateLimiter::new(
            cfg.rate_limiter_slots,
            cfg.per_ip_rate,
            cfg.per_ip_burst,
            rng.random(),
        );
        let dest_limiter = RateLimiter::new(
            cfg.rate_limiter_slots,
            cfg.per_dest_rate,
            cfg.per_dest_burst,
            rng.random(),
        );
        let txs = Transactions::new(rng.random());
        Node {
            id,
            table: RoutingTable::new(id, cfg.table, now),
            tokens,
            store: cfg.store.map(PeerStore::new),
            txs,
            lookups: BTreeMap::new(),
            next_lookup: 1,
            next_request: 1,
            out: OutQueue::default(),
            events: VecDeque::new(),
            decoder: Decoder::new(cfg.decode_limits),
            limiter,
            dest_limiter,
            query_budget: Bucket::new(cfg.max_query_rate, cfg.max_query_burst, now),
            timers: Timers {
                rotate: now + cfg.token_rotation,
                maintenance: now + cfg.maintenance_interval,
                refresh: now + cfg.maintenance_interval * 6,
                rebootstrap: None,
                redrive: None,
            },
            verifying: HashSet::new(),
            bootstrap_addrs: Vec::new(),
            bootstrap_running: None,
            bootstrap_backoff: REBOOTSTRAP_MIN,
            scratch_nodes: Vec::new(),
            scratch_bytes: Vec::new(),
            scratch_values: Vec::new(),
            stats: Stats::default(),
            now,
            rng,
            cfg,
        }
    }

    /// Our node id.
    pub fn id(&self) -> Id {
        self.id
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// The routing table (read-only).
    pub fn routing_table(&self) -> &RoutingTable {
        &self.table
    }

    /// The peer store, unless disabled.
    pub fn peer_store(&self) -> Option<&PeerStore> {
        self.store.as_ref()
    }

    /// Counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Lookups still running.
    pub fn lookups_running(&self) -> usize {
        self.lookups.len()
    }

    /// Transactions awaiting a reply.
    pub fn pending_queries(&self) -> usize {
        self.txs.len()
    }

    /// Handles one received datagram.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        self.advance(now);
        self.stats.datagrams_in += 1;
        self.stats.bytes_in += data.len() as u64;
        if data.len() > self.cfg.max_datagram || from.port() == 0 {
            self.invalid(from, "datagram too large or from port 0");
            return;
        }
        let mut decoder = std::mem::take(&mut self.decoder);
        match decoder.decode(data) {
            Err(_) => self.invalid(from, "not bencode"),
            Ok(v) => match Message::parse(v) {
                Err(e) => {
                    if let Some((tid, code, reason)) = e.reply() {
                        if !self.cfg.read_only && self.limiter.allow(now, from.ip()) {
                            self.send_error(from, tid, code, reason.as_bytes());
                        }
                    }
                    self.invalid(from, e.reason);
                }
                Ok(msg) => match &msg.body {
                    Body::Query(q) => self.on_query(now, from, &msg, q),
                    Body::Response(r) => self.on_response(now, from, msg.tid, r),
                    Body::Error(e) => self.on_error(now, from, msg.tid, e.code, e.message),
                },
            },
        }
        self.decoder = decoder;
    }

    fn invalid(&mut self, from: SocketAddr, reason: &'static str) {
        self.stats.invalid_in += 1;
        self.emit(Event::InvalidMessage { from, reason });
    }

    fn advance(&mut self, now: Instant) {
        if now > self.now {
            self.now = now;
        }
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit<'_>> {
        self.out
            .pop()
            .map(|(dest, payload)| Transmit { dest, payload })
    }

    /// Datagrams waiting in the outgoing queue.
    pub fn pending_transmits(&self) -> usize {
        self.out.len()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Node::handle_timeout`] should next be called.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        let t = &self.timers;
        let mut timers = t.rotate.min(t.maintenance).min(t.refresh);
        for r in [t.rebootstrap, t.redrive].into_iter().flatten() {
            timers = timers.min(r);
        }
        Some(match self.txs.next_deadline() {
            Some(d) => d.min(timers),
            None => timers,
        })
    }

    pub(crate) fn emit(&mut self, e: Event) {
        push_event(&mut self.events, &mut self.stats, self.cfg.max_events, e);
    }

    /// True if the node may send to `addr` on its own initiative: never to unspecified,
    /// multicast or broadcast addresses or port 0, and to private, loopback or link-local
    /// addresses only with [`Config::allow_local_addrs`].
    pub fn may_contact(&self, addr: &SocketAddr) -> bool {
        self.sendable(addr, self.cfg.allow_local_addrs)
    }

    /// The address rules with the local-address switch given explicitly: a request the user
    /// addressed by hand may go to a local address, never to an invalid one.
    pub(crate) fn sendable(&self, addr: &SocketAddr, allow_local: bool) -> bool {
        if addr.port() == 0 || addr.is_ipv6() != self.cfg.ipv6 {
            return false;
        }
        match addr.ip() {
            IpAddr::V4(ip) => {
                if ip.is_unspecified() || ip.is_multicast() || ip.is_broadcast() {
                    return false;
                }
                let o = ip.octets();
                let local = ip.is_private()
                    || ip.is_loopback()
                    || ip.is_link_local()
                    || (o[0] == 100 && (o[1] & 0xc0) == 64)
                    || o[0] == 0;
                allow_local || !local
            }
            IpAddr::V6(ip) => {
                if ip.is_unspecified() || ip.is_multicast() {
                    return false;
                }
                let s = ip.segments();
                let local =
                    ip.is_loopback() || (s[0] & 0xfe00) == 0xfc00 || (s[0] & 0xffc0) == 0xfe80;
                allow_local || !local
            }
        }
    }

    /// Our id and the nodes worth remembering (good and questionable nodes, not bad ones).
    pub fn export_state(&self) -> NodeState {
        let mut nodes: Vec<&NodeEntry> = self
            .table
            .iter()
            .filter(|e| e.failures < self.cfg.table.max_failures)
            .collect();
        nodes.sort_by_key(|e| std::cmp::Reverse(e.last_response));
        NodeState {
            id: self.id,
            nodes: nodes.into_iter().map(|e| (e.id, e.addr)).collect(),
        }
    }

    /// Adds nodes from saved state to the routing table without contacting them; they are
    /// used for lookups at once and verified over time. Returns how many were added.
    pub fn import_state(&mut self, now: Instant, nodes: &[(Id, SocketAddr)]) -> usize {
        self.advance(now);
        let mut added = 0;
        for (id, addr) in nodes {
            if self.may_contact(addr) && self.table.restore(now, *id, *addr) {
                added += 1;
                self.emit(Event::NodeAdded {
                    id: *id,
                    addr: *addr,
                });
            }
        }
        added
    }

    fn new_lookup_id(&mut self) -> LookupId {
        let id = LookupId(self.next_lookup);
        self.next_lookup += 1;
        id
    }

    /// Starts a lookup for the nodes closest to `target`.
    pub fn find_node(&mut self, now: Instant, target: Id) -> Option<LookupId> {
        self.start_lookup(now, LookupKind::FindNode, target, &[])
    }

    /// Starts a lookup for peers of `info_hash`; each new peer is reported as
    /// [`Event::PeerFound`].
    pub fn get_peers(&mut self, now: Instant, info_hash: Id) -> Option<LookupId> {
        self.start_lookup(now, LookupKind::GetPeers, info_hash, &[])
    }

    /// Looks up `info_hash` and announces us to the k closest nodes. `port: None` asks them
    /// to use our UDP source port (`implied_port`).
    pub fn announce(
        &mut self,
        now: Instant,
        info_hash: Id,
        port: Option<u16>,
        seed: bool,
    ) -> Option<LookupId> {
        self.start_lookup(now, LookupKind::Announce { port, seed }, info_hash, &[])
    }

    /// Joins the network: a lookup for our own id through the table and `via`. The addresses
    /// are remembered: while the table holds fewer than k nodes after a bootstrap, the node
    /// tries again through them, backing off from 5 seconds to 5 minutes.
    pub fn bootstrap(&mut self, now: Instant, via: &[SocketAddr]) -> Option<LookupId> {
        for a in via {
            if !self.bootstrap_addrs.contains(a) && self.bootstrap_addrs.len() < MAX_BOOTSTRAP_ADDRS
            {
                self.bootstrap_addrs.push(*a);
            }
        }
        self.start_bootstrap(now)
    }

    fn start_bootstrap(&mut self, now: Instant) -> Option<LookupId> {
        if let Some(running) = self.bootstrap_running {
            if self.lookups.contains_key(&running) {
                return Some(running);
            }
        }
        self.timers.rebootstrap = None;
        let own = self.id;
        let via = std::mem::take(&mut self.bootstrap_addrs);
        let lid = self.start_lookup(now, LookupKind::Bootstrap, own, &via);
        self.bootstrap_addrs = via;
        if self.lookups.contains_key(&lid?) {
            self.bootstrap_running = lid;
        }
        lid
    }

    /// Called when a bootstrap lookup ends: schedule another while the table is too small.
    fn bootstrap_finished(&mut self, now: Instant) {
        self.bootstrap_running = None;
        if self.table.len() < self.cfg.table.k && !self.bootstrap_addrs.is_empty() {
            self.timers.rebootstrap = Some(now + self.bootstrap_backoff);
            self.bootstrap_backoff = (self.bootstrap_backoff * 2).min(REBOOTSTRAP_MAX);
        } else {
            self.bootstrap_backoff = REBOOTSTRAP_MIN;
        }
    }

    /// Starts a lookup of any kind, also asking the addresses in `via` (whose ids are
    /// unknown). Returns `None` when [`Config::max_lookups`] lookups are already running.
    pub fn start_lookup(
        &mut self,
        now: Instant,
        kind: LookupKind,
        target: Id,
        via: &[SocketAddr],
    ) -> Option<LookupId> {
        self.advance(now);
        if self.lookups.len() >= self.cfg.max_lookups {
            return None;
        }
        let lid = self.new_lookup_id();
        let k = self.cfg.table.k;
        let mut l = Lookup::new(
            lid,
            kind,
            target,
            self.id,
            k,
            self.cfg.alpha,
            self.cfg.max_lookup_candidates,
            now,
        );
        let mut seeds = std::mem::take(&mut self.scratch_nodes);
        self.table.closest(now, &target, k * 2, &mut seeds);
        for (id, addr) in &seeds {
            l.add(Some(*id), *addr);
        }
        self.scratch_nodes = seeds;
        for addr in via {
            if self.may_contact(addr) {
                l.add(None, *addr);
            }
        }
        self.lookups.insert(lid, l);
        self.drive_lookup(now, lid);
        Some(lid)
    }

    /// Pings `addr`; it enters the routing table if it answers. Returns false if the address
    /// is not contactable or too many queries are pending.
    pub fn add_node(&mut self, now: Instant, addr: SocketAddr) -> bool {
        self.advance(now);
        self.verify(now, None, addr)
    }
}

fn push_event(events: &mut VecDeque<Event>, stats: &mut Stats, max: usize, e: Event) {
    if events.len() >= max {
        stats.events_dropped += 1;
    } else {
        events.push_back(e);
    }
}

#[cfg(test)]
mod tests;
