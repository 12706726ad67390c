//! The Kademlia routing table of BEP 5.
//!
//! Buckets hold up to `k` nodes. Bucket `i` (for `i` below the last) holds nodes whose ids share
//! exactly `i` leading bits with our own; the last bucket holds everything sharing more, and it
//! splits when it fills, so the table is detailed near our own id. Each bucket keeps a small
//! replacement cache of nodes that did not fit.
//!
//! The verbs name the evidence the caller has about a node:
//! - [`RoutingTable::node_seen`]: it answered one of our queries (proof that it is reachable);
//! - [`RoutingTable::heard_about`]: another node told us about it (no proof at all);
//! - [`RoutingTable::node_queried`]: it sent us a query;
//! - [`RoutingTable::node_failed`]: a query to it timed out.
//!
//! Nodes are good while they have answered within the last 15 minutes (or have answered before
//! and queried us within 15 minutes), questionable after that, and bad after repeated failures.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use rand::Rng;

use crate::addr::{classify, AddrClass};
use crate::{Distance, Id, Instant};

/// The /24 (IPv4) or /64 (IPv6) of a global address; `None` for every other address.
fn subnet(ip: std::net::IpAddr) -> Option<u64> {
    if classify(ip) != AddrClass::Global {
        return None;
    }
    Some(match ip {
        std::net::IpAddr::V4(v) => 0xffff_ffff_0000_0000 | (u32::from(v) >> 8) as u64,
        std::net::IpAddr::V6(v) => (u128::from(v) >> 64) as u64,
    })
}

/// Routing-table settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct TableConfig {
    /// Bucket size (BEP 5's `K`, 8).
    pub k: usize,
    /// Most nodes in the table (replacement caches not counted).
    pub max_nodes: usize,
    /// Allow at most one node per IP address, in the table and among a lookup's candidates
    /// (off only for test networks of many nodes on one address, such as `::1`).
    pub restrict_ips: bool,
    /// Most nodes in one bucket from one /24 (IPv4) or /64 (IPv6), as libtorrent (1). Only
    /// global addresses count: local and private networks (test networks, LANs) are exempt.
    /// 0 = no cap.
    pub max_per_subnet: usize,
    /// A node that has neither answered nor queried us for this long is questionable.
    pub questionable_after: Duration,
    /// Consecutive failures after which a node is bad (1: evicted on its first timeout as
    /// soon as a replacement waits, as in Jimenez et al.'s sub-second upkeep; the `stock`
    /// preset keeps 2).
    pub max_failures: u8,
    /// A node that answered with a round trip at most `1 / rtt_replace` of the slowest
    /// resident's of its full bucket (and at least `rtt_replace_margin` faster) takes that
    /// resident's place; the resident moves to the replacement cache. Tables then fill with
    /// nodes that answer fast, and lookups through them are faster. 0 turns it off (the
    /// `stock` preset: first come, first kept).
    pub rtt_replace: u8,
    /// The least round-trip difference that lets a newcomer replace a resident (so that
    /// sub-millisecond differences on a LAN never churn the table).
    pub rtt_replace_margin: Duration,
    /// How long an address evicted for failing is refused when other nodes mention it and
    /// skipped by lookups; an answer from it ends its quarantine. Zero turns it off.
    pub quarantine: Duration,
    /// Most addresses in quarantine at once (12 bytes each; the oldest leaves first).
    pub quarantine_slots: usize,
}

impl Default for TableConfig {
    fn default() -> Self {
        TableConfig {
            k: 8,
            max_nodes: 1280,
            restrict_ips: true,
            max_per_subnet: 1,
            questionable_after: Duration::from_secs(15 * 60),
            max_failures: 1,
            rtt_replace: 2,
            rtt_replace_margin: Duration::from_millis(20),
            quarantine: Duration::from_secs(5 * 60),
            quarantine_slots: 16,
        }
    }
}

/// Liveness of a node, as BEP 5 defines it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Status {
    /// Answered recently.
    Good,
    /// Not heard from for a while, or never verified.
    Questionable,
    /// Failed to answer repeatedly.
    Bad,
}

/// One node in the table or in a replacement cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeEntry {
    /// The node id.
    pub id: Id,
    /// Its UDP address.
    pub addr: SocketAddr,
    /// When it entered the table (or cache).
    pub added: Instant,
    /// Last time it answered one of our queries.
    pub last_response: Option<Instant>,
    /// Last time it sent us a query.
    pub last_query: Option<Instant>,
    /// Consecutive failed queries.
    pub failures: u8,
    /// Round-trip time of its last answer.
    pub rtt: Option<Duration>,
    /// Last time we pinged it to check liveness.
    pub pinged: Option<Instant>,
}

impl NodeEntry {
    /// The node's status at `now`.
    pub fn status(&self, now: Instant, cfg: &TableConfig) -> Status {
        if self.failures >= cfg.max_failures {
            return Status::Bad;
        }
        let recent = |t: Option<Instant>| {
            t.is_some_and(|t| now.saturating_since(t) < cfg.questionable_after)
        };
        if recent(self.last_response) || (self.last_response.is_some() && recent(self.last_query)) {
            Status::Good
        } else {
            Status::Questionable
        }
    }
}

/// An address in 20 bytes (a `SocketAddr` takes 32): the IP's bytes (IPv4 in the first four),
/// the port and the family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Addr {
    ip: [u8; 16],
    port: u16,
    v6: bool,
}

impl Addr {
    fn new(a: &SocketAddr) -> Addr {
        let mut ip = [0u8; 16];
        let v6 = match a.ip() {
            IpAddr::V4(v) => {
                ip[..4].copy_from_slice(&v.octets());
                false
            }
            IpAddr::V6(v) => {
                ip = v.octets();
                true
            }
        };
        Addr {
            ip,
            port: a.port(),
            v6,
        }
    }

    fn ip(&self) -> IpAddr {
        if self.v6 {
            Ipv6Addr::from(self.ip).into()
        } else {
            Ipv4Addr::new(self.ip[0], self.ip[1], self.ip[2], self.ip[3]).into()
        }
    }

    fn get(&self) -> SocketAddr {
        SocketAddr::new(self.ip(), self.port)
    }

    /// A 64-bit digest of the address (FNV-1a), for the quarantine.
    fn hash(&self) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in self
            .ip
            .iter()
            .chain(&self.port.to_be_bytes())
            .chain(&[self.v6 as u8])
        {
            h = (h ^ *b as u64).wrapping_mul(0x100_0000_01b3);
        }
        h
    }

    fn same_ip(&self, o: &Addr) -> bool {
        self.v6 == o.v6 && self.ip == o.ip
    }
}

/// How a table stores a node's address.
trait SlotAddr: Copy + Eq + std::fmt::Debug {
    /// `a` as stored; `None` if this kind of table cannot hold it.
    fn new(a: &SocketAddr) -> Option<Self>;
    fn get(&self) -> SocketAddr;
    fn ip(&self) -> IpAddr;
    /// A 64-bit digest of the address, for the quarantine.
    fn hash(&self) -> u64;
    fn same_ip(&self, o: &Self) -> bool;
}

impl SlotAddr for Addr {
    fn new(a: &SocketAddr) -> Option<Self> {
        Some(Addr::new(a))
    }
    fn get(&self) -> SocketAddr {
        Addr::get(self)
    }
    fn ip(&self) -> IpAddr {
        Addr::ip(self)
    }
    fn hash(&self) -> u64 {
        Addr::hash(self)
    }
    fn same_ip(&self, o: &Self) -> bool {
        Addr::same_ip(self, o)
    }
}

/// An IPv4 address in 6 bytes, for tables of one family: a slot then takes 48 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct AddrV4 {
    ip: [u8; 4],
    port: [u8; 2],
}

impl SlotAddr for AddrV4 {
    fn new(a: &SocketAddr) -> Option<Self> {
        match a {
            SocketAddr::V4(v) => Some(AddrV4 {
                ip: v.ip().octets(),
                port: v.port().to_be_bytes(),
            }),
            SocketAddr::V6(_) => None,
        }
    }
    fn get(&self) -> SocketAddr {
        SocketAddr::new(self.ip(), u16::from_be_bytes(self.port))
    }
    fn ip(&self) -> IpAddr {
        Ipv4Addr::from(self.ip).into()
    }
    fn hash(&self) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in self.ip.iter().chain(&self.port) {
            h = (h ^ *b as u64).wrapping_mul(0x100_0000_01b3);
        }
        h
    }
    fn same_ip(&self, o: &Self) -> bool {
        self.ip == o.ip
    }
}

/// A time in a table entry: 62 ms steps since the epoch, plus one (0 = never);
/// 4 bytes where an `Option<Instant>` takes 16, good for 8 years of uptime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
struct Tick(u32);

impl Tick {
    const NEVER: Tick = Tick(0);

    fn at(t: Instant) -> Tick {
        let ticks = t.since_epoch().as_millis() / 62;
        Tick(u32::try_from(ticks + 1).unwrap_or(u32::MAX))
    }

    fn is_some(self) -> bool {
        self.0 != 0
    }

    fn get(self) -> Option<Instant> {
        self.is_some()
            .then(|| Instant::from_epoch(Duration::from_millis((self.0 as u64 - 1) * 62)))
    }

    /// This tick plus `d`, rounded down to a tick.
    fn plus(self, d: Duration) -> Tick {
        let steps = u32::try_from(d.as_millis() / 62).unwrap_or(u32::MAX);
        Tick(self.0.saturating_add(steps))
    }

    /// Time from this tick to `now` (zero for never, or for a tick after now).
    fn age(self, now: Tick) -> Duration {
        Duration::from_millis(now.0.saturating_sub(self.0) as u64 * 62)
    }
}

/// One node as the table stores it: 64 bytes (a [`NodeEntry`] takes 128). A table of a
/// million-node DHT holds some 270 of them with its replacement caches.
#[derive(Debug, Clone)]
struct Slot<A> {
    id: Id,
    addr: A,
    added: Tick,
    last_response: Tick,
    last_query: Tick,
    pinged: Tick,
    /// Round trip in microseconds, plus one (0 = not measured).
    rtt_us: u32,
    failures: u8,
}

impl<A: SlotAddr> Slot<A> {
    fn new(id: Id, addr: A, now: Instant) -> Slot<A> {
        Slot {
            id,
            addr,
            added: Tick::at(now),
            last_response: Tick::NEVER,
            last_query: Tick::NEVER,
            pinged: Tick::NEVER,
            rtt_us: 0,
            failures: 0,
        }
    }

    fn set_rtt(&mut self, rtt: Option<Duration>) {
        if let Some(r) = rtt {
            self.rtt_us = u32::try_from(r.as_micros())
                .unwrap_or(u32::MAX - 1)
                .saturating_add(1);
        }
    }

    fn entry(&self) -> NodeEntry {
        NodeEntry {
            id: self.id,
            addr: self.addr.get(),
            added: self.added.get().unwrap_or_default(),
            last_response: self.last_response.get(),
            last_query: self.last_query.get(),
            failures: self.failures,
            rtt: (self.rtt_us != 0).then(|| Duration::from_micros(self.rtt_us as u64 - 1)),
            pinged: self.pinged.get(),
        }
    }

    fn status(&self, now: Tick, cfg: &TableConfig) -> Status {
        if self.failures >= cfg.max_failures {
            return Status::Bad;
        }
        let recent = |t: Tick| t.is_some() && t.age(now) < cfg.questionable_after;
        if recent(self.last_response) || (self.last_response.is_some() && recent(self.last_query)) {
            Status::Good
        } else {
            Status::Questionable
        }
    }

    /// The earliest tick at which the slot can be questionable (a lower bound: ticks round
    /// down); `Tick::NEVER` (now) if it never answered.
    fn questionable_from(&self, cfg: &TableConfig) -> Tick {
        if !self.last_response.is_some() {
            return Tick::NEVER;
        }
        let since = self.last_response.max(self.last_query);
        since.plus(cfg.questionable_after)
    }

    fn last_activity(&self) -> Tick {
        if self.last_response.is_some() {
            self.last_response
        } else {
            self.added
        }
    }

    fn is(&self, id: &Id, addr: &SocketAddr) -> bool {
        self.id == *id && A::new(addr) == Some(self.addr)
    }
}

#[derive(Debug, Clone)]
struct Bucket<A> {
    nodes: Vec<Slot<A>>,
    replacements: Vec<Slot<A>>,
    last_changed: Instant,
}

impl<A> Bucket<A> {
    fn new(now: Instant) -> Self {
        Bucket {
            nodes: Vec::new(),
            replacements: Vec::new(),
            last_changed: now,
        }
    }
}

/// What [`RoutingTable::node_seen`] did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SeenOutcome {
    /// The node was added to the table.
    pub added: bool,
    /// A node was removed to make room.
    pub removed: Option<NodeEntry>,
    /// A questionable node the caller should ping: if it fails, the newcomer (now in the
    /// replacement cache) takes its place.
    pub ping: Option<(Id, SocketAddr)>,
}

/// What [`RoutingTable::node_failed`] did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FailOutcome {
    /// The node was removed.
    pub removed: Option<NodeEntry>,
    /// A replacement that took its place.
    pub promoted: Option<NodeEntry>,
}

/// The table itself, over the way it stores addresses.
#[derive(Debug, Clone)]
struct Table<A> {
    own: Id,
    cfg: TableConfig,
    buckets: Vec<Bucket<A>>,
    len: usize,
    /// Addresses evicted for failing, by hash, with when they went in (allocated on first
    /// use, at most `quarantine_slots`).
    quarantined: Vec<(u64, Tick)>,
    /// No node of the table is due for a questionable ping before this tick (a lower bound
    /// kept by every change that can make one due sooner), for `due_interval`.
    due_after: Tick,
    due_interval: Duration,
    /// Where the stale-ping round is: (bucket, position).
    cursor: (u8, u16),
}

impl<A: SlotAddr> Table<A> {
    fn new(own: Id, cfg: TableConfig, now: Instant) -> Self {
        Table {
            own,
            cfg,
            buckets: vec![Bucket::new(now)],
            len: 0,
            quarantined: Vec::new(),
            due_after: Tick::NEVER,
            due_interval: Duration::ZERO,
            cursor: (0, 0),
        }
    }

    /// Our own id.
    pub fn own_id(&self) -> Id {
        self.own
    }

    /// The settings.
    pub fn config(&self) -> &TableConfig {
        &self.cfg
    }

    /// Number of nodes in the table (replacement caches not counted).
    pub fn len(&self) -> usize {
        self.len
    }

    /// True if the table holds no nodes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of buckets.
    pub fn bucket_count(&self) -> usize {
        self.buckets.len()
    }

    /// Index of the bucket that covers `id`.
    pub fn bucket_index(&self, id: &Id) -> usize {
        self.own.common_prefix(id).min(self.buckets.len() - 1)
    }

    /// All nodes in the table.
    pub fn iter(&self) -> impl Iterator<Item = NodeEntry> + '_ {
        self.buckets
            .iter()
            .flat_map(|b| b.nodes.iter().map(Slot::entry))
    }

    /// All nodes waiting in replacement caches.
    pub fn replacements(&self) -> impl Iterator<Item = NodeEntry> + '_ {
        self.buckets
            .iter()
            .flat_map(|b| b.replacements.iter().map(Slot::entry))
    }

    /// Nodes in replacement caches that nobody has verified or pinged yet: (id, address).
    pub fn untried_replacements(&self) -> impl Iterator<Item = (Id, SocketAddr)> + '_ {
        self.buckets.iter().flat_map(|b| {
            b.replacements
                .iter()
                .filter(|r| !r.last_response.is_some() && !r.pinged.is_some())
                .map(|r| (r.id, r.addr.get()))
        })
    }

    /// The entry for `id`, if it is in the table.
    pub fn get(&self, id: &Id) -> Option<NodeEntry> {
        self.slot(id).map(Slot::entry)
    }

    /// The round trip of `id`'s last answer, if it is in the table and has answered.
    pub fn rtt_of(&self, id: &Id) -> Option<Duration> {
        let s = self.slot(id)?;
        (s.rtt_us != 0).then(|| Duration::from_micros(s.rtt_us as u64 - 1))
    }

    /// True if `id` is in the table.
    pub fn contains(&self, id: &Id) -> bool {
        self.slot(id).is_some()
    }

    fn slot(&self, id: &Id) -> Option<&Slot<A>> {
        let b = &self.buckets[self.bucket_index(id)];
        b.nodes.iter().find(|n| n.id == *id)
    }

    /// True if a node of the table has `addr`'s IP (what `restrict_ips` forbids twice).
    fn ip_taken(&self, addr: &A) -> bool {
        self.cfg.restrict_ips
            && self
                .buckets
                .iter()
                .any(|b| b.nodes.iter().any(|n| n.addr.same_ip(addr)))
    }

    /// True if bucket `i` already holds its share of `addr`'s subnet (global addresses only).
    fn crowded(&self, i: usize, addr: &SocketAddr) -> bool {
        crowded_in(&self.buckets[i].nodes, self.cfg.max_per_subnet, addr)
    }

    fn find_mut(&mut self, id: &Id) -> Option<&mut Slot<A>> {
        let i = self.bucket_index(id);
        self.buckets[i].nodes.iter_mut().find(|n| n.id == *id)
    }

    /// True if a node at `addr` with `id` would be accepted (or is already present) without
    /// evicting anyone: used to decide whether verifying an unknown node is worth a ping.
    pub fn has_room_for(&self, id: &Id, addr: &SocketAddr) -> bool {
        if *id == self.own || self.len >= self.cfg.max_nodes {
            return false;
        }
        let i = self.bucket_index(id);
        let b = &self.buckets[i];
        // The cheap checks first: the IP check scans the table.
        if !self.bucket_has_room(i) || b.nodes.iter().any(|n| n.id == *id) || self.crowded(i, addr)
        {
            return false;
        }
        A::new(addr).is_some_and(|a| !self.ip_taken(&a))
    }

    /// True if bucket `i` takes one more node without evicting anyone (it has room, or it is
    /// the last and may split).
    fn bucket_has_room(&self, i: usize) -> bool {
        self.buckets[i].nodes.len() < self.cfg.k
            || (i == self.buckets.len() - 1 && self.buckets.len() < 160)
    }

    /// Nodes nobody has verified or pinged yet, waiting in the replacement caches of buckets
    /// with room (the nodes worth a ping to fill the table): (id, address).
    pub fn untried_with_room(&self) -> impl Iterator<Item = (Id, SocketAddr)> + '_ {
        let full = self.len >= self.cfg.max_nodes;
        self.buckets
            .iter()
            .enumerate()
            .filter(move |(i, _)| !full && self.bucket_has_room(*i))
            .flat_map(|(_, b)| {
                b.replacements
                    .iter()
                    .filter(|r| !r.last_response.is_some() && !r.pinged.is_some())
                    .map(|r| (r.id, r.addr.get()))
            })
    }

    /// A node answered one of our queries.
    pub fn node_seen(
        &mut self,
        now: Instant,
        id: Id,
        addr: SocketAddr,
        rtt: Option<Duration>,
    ) -> SeenOutcome {
        self.seen(now, id, addr, rtt, true)
    }

    /// As [`RoutingTable::node_seen`] for a node known to answer (a settled table built at
    /// once, as the simulator does): the same admission rules, but a node that does not fit,
    /// or that a faster one displaces, is not kept in a replacement cache.
    pub fn import_seen(
        &mut self,
        now: Instant,
        id: Id,
        addr: SocketAddr,
        rtt: Option<Duration>,
    ) -> SeenOutcome {
        self.seen(now, id, addr, rtt, false)
    }

    fn seen(
        &mut self,
        now: Instant,
        id: Id,
        addr: SocketAddr,
        rtt: Option<Duration>,
        cache: bool,
    ) -> SeenOutcome {
        let mut out = SeenOutcome::default();
        if id == self.own {
            return out;
        }
        let Some(a) = A::new(&addr) else {
            return out;
        };
        let tick = Tick::at(now);
        let cfg = self.cfg;
        // It answered: whatever failed at this address before, it is alive now.
        self.unquarantine(&a);
        if let Some(e) = self.find_mut(&id) {
            if e.addr == a {
                e.last_response = tick;
                e.failures = 0;
                e.pinged = Tick::NEVER;
                e.set_rtt(rtt);
                let due = e.questionable_from(&cfg);
                self.due_after = self.due_after.min(due);
                let i = self.bucket_index(&id);
                self.buckets[i].last_changed = now;
            }
            // Same id from another address: keep the address we verified first.
            return out;
        }
        let mut entry = Slot::new(id, a, now);
        entry.last_response = tick;
        entry.set_rtt(rtt);
        // One node per IP: checked (a scan of the table) only once the node would go in.
        let mut ip_ok: Option<bool> = None;
        let mut ip_free = |t: &Self| *ip_ok.get_or_insert_with(|| !t.ip_taken(&a));
        loop {
            let i = self.bucket_index(&id);
            let last = i == self.buckets.len() - 1;
            let k = self.cfg.k;
            if self.crowded(i, &addr) {
                // Its subnet has its share of this bucket.
                return out;
            }
            if self.len < self.cfg.max_nodes && self.buckets[i].nodes.len() < k {
                if !ip_free(self) {
                    return out;
                }
                self.insert_live(i, entry, now);
                out.added = true;
                return out;
            }
            if self.len < self.cfg.max_nodes && last && self.buckets.len() < 160 {
                if !ip_free(self) {
                    return out;
                }
                self.split_last(now);
                continue;
            }
            let cfg = self.cfg;
            if let Some(pos) = self.buckets[i]
                .nodes
                .iter()
                .position(|n| n.status(tick, &cfg) == Status::Bad)
            {
                if !ip_free(self) {
                    return out;
                }
                let old = self.buckets[i].nodes.swap_remove(pos);
                self.len -= 1;
                self.insert_live(i, entry, now);
                out.added = true;
                out.removed = Some(old.entry());
                return out;
            }
            if let Some(pos) = faster_than_slowest(&self.buckets[i].nodes, &entry, &cfg) {
                if !ip_free(self) {
                    return out;
                }
                // Much faster than the slowest resident: it takes that place, and the
                // resident (alive, verified) waits in the cache.
                let old = self.buckets[i].nodes.swap_remove(pos);
                self.len -= 1;
                out.removed = Some(old.entry());
                self.insert_live(i, entry, now);
                if cache {
                    push_replacement(&mut self.buckets[i].replacements, old, k);
                }
                out.added = true;
                return out;
            }
            if !cache {
                return out;
            }
            if !ip_free(self) {
                return out;
            }
            // Full of good or questionable nodes: cache the newcomer and ask the caller to
            // check the stalest questionable node.
            let b = &mut self.buckets[i];
            push_replacement(&mut b.replacements, entry, k);
            let stale = b
                .nodes
                .iter_mut()
                .filter(|n| n.status(tick, &cfg) == Status::Questionable && !n.pinged.is_some())
                .min_by_key(|n| n.last_activity());
            if let Some(n) = stale {
                n.pinged = tick;
                out.ping = Some((n.id, n.addr.get()));
            }
            return out;
        }
    }

    fn insert_live(&mut self, i: usize, entry: Slot<A>, now: Instant) {
        let k = self.cfg.k;
        let b = &mut self.buckets[i];
        b.replacements.retain(|r| r.id != entry.id);
        if b.nodes.capacity() == 0 {
            // A bucket holds at most k: no room to grow into.
            b.nodes.reserve_exact(k);
        }
        let due = entry.questionable_from(&self.cfg);
        b.nodes.push(entry);
        b.last_changed = now;
        self.len += 1;
        self.due_after = self.due_after.min(due);
    }

    fn split_last(&mut self, now: Instant) {
        let depth = self.buckets.len() - 1;
        let mut fresh = Bucket::new(now);
        fresh.nodes.reserve_exact(self.cfg.k);
        let old = &mut self.buckets[depth];
        fresh.last_changed = old.last_changed;
        let own = self.own;
        let moves = |v: &mut Vec<Slot<A>>, to: &mut Vec<Slot<A>>| {
            let mut i = 0;
            while i < v.len() {
                if own.common_prefix(&v[i].id) > depth {
                    to.push(v.swap_remove(i));
                } else {
                    i += 1;
                }
            }
        };
        moves(&mut old.nodes, &mut fresh.nodes);
        moves(&mut old.replacements, &mut fresh.replacements);
        // Splits are rare (one per bucket ever): grow by one, not by doubling.
        self.buckets.reserve_exact(1);
        self.buckets.push(fresh);
    }

    /// Another node told us about this one. It goes into the replacement cache of its bucket
    /// (unverified) unless it is already known; returns true if it was cached.
    pub fn heard_about(&mut self, now: Instant, id: Id, addr: SocketAddr) -> bool {
        if id == self.own || self.contains(&id) {
            return false;
        }
        let k = self.cfg.k;
        let i = self.bucket_index(&id);
        let Some(a) = A::new(&addr) else {
            return false;
        };
        if self.quarantined_at(Tick::at(now), &a) {
            return false;
        }
        let b = &mut self.buckets[i];
        if b.replacements.iter().any(|r| r.id == id || r.addr == a) {
            return false;
        }
        push_replacement(&mut b.replacements, Slot::new(id, a, now), k);
        true
    }

    /// A node sent us a query.
    pub fn node_queried(&mut self, now: Instant, id: &Id, addr: &SocketAddr) {
        if let Some(e) = self.find_mut(id) {
            if A::new(addr) == Some(e.addr) {
                e.last_query = Tick::at(now);
            }
        }
    }

    /// A query to this node timed out.
    pub fn node_failed(&mut self, now: Instant, id: &Id, addr: &SocketAddr) -> FailOutcome {
        let mut out = FailOutcome::default();
        let i = self.bucket_index(id);
        let cfg = self.cfg;
        let Some(pos) = self.buckets[i].nodes.iter().position(|n| n.is(id, addr)) else {
            let before = self.buckets[i].replacements.len();
            self.buckets[i].replacements.retain(|r| !r.is(id, addr));
            if self.buckets[i].replacements.len() < before {
                self.quarantine(now, addr);
            }
            return out;
        };
        // Its next questionable ping may now be due at once.
        self.due_after = Tick::NEVER;
        let b = &mut self.buckets[i];
        let e = &mut b.nodes[pos];
        e.failures = e.failures.saturating_add(1);
        e.pinged = Tick::NEVER;
        let verified_waiting = b.replacements.iter().any(|r| r.last_response.is_some());
        if e.failures < cfg.max_failures && !verified_waiting {
            return out;
        }
        if b.replacements.is_empty() {
            // Keep it as a bad node: it is replaced as soon as anyone better turns up.
            return out;
        }
        let old = b.nodes.swap_remove(pos);
        self.len -= 1;
        out.removed = Some(old.entry());
        self.quarantine(now, addr);
        // Promote the best replacement: verified first, most recent first.
        let tick = Tick::at(now);
        let pick = self.buckets[i]
            .replacements
            .iter()
            .enumerate()
            .filter(|(_, r)| {
                !self.quarantined_at(tick, &r.addr)
                    && !self.ip_taken(&r.addr)
                    && !crowded_in(&self.buckets[i].nodes, cfg.max_per_subnet, &r.addr.get())
            })
            .max_by_key(|(_, r)| (r.last_response.is_some(), r.last_response, r.added))
            .map(|(j, _)| j);
        if let Some(j) = pick {
            let b = &mut self.buckets[i];
            let mut r = b.replacements.remove(j);
            r.failures = 0;
            r.pinged = Tick::NEVER;
            out.promoted = Some(r.entry());
            self.due_after = Tick::NEVER;
            b.nodes.push(r);
            self.len += 1;
        }
        out
    }

    /// True if `addr` was evicted for failing within the last [`TableConfig::quarantine`].
    pub fn is_quarantined(&self, now: Instant, addr: &SocketAddr) -> bool {
        A::new(addr).is_some_and(|a| self.quarantined_at(Tick::at(now), &a))
    }

    fn quarantined_at(&self, now: Tick, addr: &A) -> bool {
        if self.quarantined.is_empty() {
            return false;
        }
        let h = addr.hash();
        self.quarantined
            .iter()
            .any(|&(x, t)| x == h && t.age(now) < self.cfg.quarantine)
    }

    fn unquarantine(&mut self, addr: &A) {
        if !self.quarantined.is_empty() {
            let h = addr.hash();
            self.quarantined.retain(|e| e.0 != h);
        }
    }

    fn quarantine(&mut self, now: Instant, addr: &SocketAddr) {
        let slots = self.cfg.quarantine_slots;
        if self.cfg.quarantine.is_zero() || slots == 0 {
            return;
        }
        let Some(a) = A::new(addr) else {
            return;
        };
        let entry = (a.hash(), Tick::at(now));
        if self.quarantined.len() < slots {
            if self.quarantined.capacity() == 0 {
                self.quarantined.reserve_exact(slots);
            }
            self.quarantined.push(entry);
        } else if let Some(oldest) = self.quarantined.iter_mut().min_by_key(|e| e.1) {
            *oldest = entry;
        }
    }

    /// Removes a node outright (for instance one that sent a malformed or hostile reply).
    pub fn remove(&mut self, id: &Id) -> Option<NodeEntry> {
        let i = self.bucket_index(id);
        let b = &mut self.buckets[i];
        let pos = b.nodes.iter().position(|n| n.id == *id)?;
        let e = b.nodes.swap_remove(pos);
        self.len -= 1;
        Some(e.entry())
    }

    /// Adds a node from saved state without verifying it. It counts as questionable until it
    /// answers. Returns true if it was added.
    pub fn restore(&mut self, now: Instant, id: Id, addr: SocketAddr) -> bool {
        if id == self.own || self.contains(&id) {
            return false;
        }
        let Some(a) = A::new(&addr) else {
            return false;
        };
        if self.ip_taken(&a) {
            return false;
        }
        loop {
            let i = self.bucket_index(&id);
            if self.len >= self.cfg.max_nodes {
                return false;
            }
            if self.crowded(i, &addr) {
                return false;
            }
            if self.buckets[i].nodes.len() < self.cfg.k {
                self.insert_live(i, Slot::new(id, a, now), now);
                return true;
            }
            if i == self.buckets.len() - 1 && self.buckets.len() < 160 {
                self.split_last(now);
                continue;
            }
            return false;
        }
    }

    /// Writes the `n` closest non-bad nodes to `target` into `out` (cleared first), closest
    /// first.
    pub fn closest(&self, now: Instant, target: &Id, n: usize, out: &mut Vec<(Id, SocketAddr)>) {
        out.clear();
        if n == 0 {
            return;
        }
        out.reserve(n.min(self.len));
        let cfg = &self.cfg;
        let tick = Tick::at(now);
        let p = self.bucket_index(target);
        // Bucket p holds the closest nodes; buckets deeper than p come next (all at the same
        // leading distance bit), then shallower buckets in decreasing depth, each farther
        // than everything before it. The n best are kept in order as they come (`out` never
        // holds more than n, so a buffer reused for answers stays small).
        let keep = |e: &Slot<A>, out: &mut Vec<(Id, SocketAddr)>| {
            if e.status(tick, cfg) == Status::Bad {
                return;
            }
            let d: Distance = e.id.distance(target);
            if out.len() == n && d >= out[n - 1].0.distance(target) {
                return;
            }
            let at = out.partition_point(|(x, _)| x.distance(target) < d);
            if out.len() == n {
                out.pop();
            }
            out.insert(at, (e.id, e.addr.get()));
        };
        for b in &self.buckets[p..] {
            for e in &b.nodes {
                keep(e, out);
            }
        }
        for b in self.buckets[..p].iter().rev() {
            if out.len() >= n {
                break;
            }
            for e in &b.nodes {
                keep(e, out);
            }
        }
    }

    /// Indices of buckets unchanged for `idle` or more.
    pub fn stale_buckets(&self, now: Instant, idle: Duration) -> impl Iterator<Item = usize> + '_ {
        self.buckets
            .iter()
            .enumerate()
            .filter(move |(_, b)| now.saturating_since(b.last_changed) >= idle)
            .map(|(i, _)| i)
    }

    /// Marks a bucket as refreshed.
    pub fn touch_bucket(&mut self, i: usize, now: Instant) {
        if let Some(b) = self.buckets.get_mut(i) {
            b.last_changed = now;
        }
    }

    /// A random id that falls in bucket `i`.
    pub fn random_id_in_bucket<R: Rng + ?Sized>(&self, i: usize, rng: &mut R) -> Id {
        if i + 1 >= self.buckets.len() {
            // The last bucket covers every id sharing at least `i` bits.
            let mut id = Id::random(rng);
            for bit in 0..i.min(160) {
                let mask = 0x80u8 >> (bit % 8);
                id.0[bit / 8] = (id.0[bit / 8] & !mask) | (self.own.0[bit / 8] & mask);
            }
            id
        } else {
            self.own.random_with_prefix(i, rng)
        }
    }

    /// Questionable nodes not pinged in the last `interval`, at most `max`, in table order;
    /// each is marked as pinged now. The table remembers when the next one can be due, so a
    /// call before then costs nothing.
    pub fn take_questionable(
        &mut self,
        now: Instant,
        interval: Duration,
        max: usize,
        out: &mut Vec<(Id, SocketAddr)>,
    ) {
        out.clear();
        let tick = Tick::at(now);
        if interval == self.due_interval && tick < self.due_after {
            return;
        }
        let cfg = self.cfg;
        let mut next = Tick(u32::MAX);
        for b in &mut self.buckets {
            for n in &mut b.nodes {
                if out.len() >= max {
                    // Not every node was looked at: look again next time.
                    self.due_after = Tick::NEVER;
                    return;
                }
                let status = n.status(tick, &cfg);
                if status == Status::Bad {
                    continue;
                }
                let due = !n.pinged.is_some() || n.pinged.age(tick) >= interval;
                if due && status == Status::Questionable {
                    n.pinged = tick;
                    out.push((n.id, n.addr.get()));
                }
                let ping_ready = if n.pinged.is_some() {
                    n.pinged.plus(interval)
                } else {
                    Tick::NEVER
                };
                next = next.min(n.questionable_from(&cfg).max(ping_ready));
            }
        }
        self.due_interval = interval;
        self.due_after = next;
    }

    /// The next node in turn (round robin over the table) that has neither answered nor
    /// (having answered before) queried us within `idle`, and is not bad, marked as pinged
    /// now. At most a bucket's worth of nodes is
    /// looked at per call, so a call costs a few cache lines, not a scan of the table.
    pub fn next_stale(&mut self, now: Instant, idle: Duration) -> Option<(Id, SocketAddr)> {
        let tick = Tick::at(now);
        let cfg = self.cfg;
        for _ in 0..cfg.k.max(1) {
            let (mut b, mut p) = (self.cursor.0 as usize, self.cursor.1 as usize);
            if b >= self.buckets.len() {
                (b, p) = (0, 0);
            }
            if p >= self.buckets[b].nodes.len() {
                // Next bucket with nodes (or wrap around).
                let len = self.buckets.len();
                let next = (1..=len)
                    .map(|d| (b + d) % len)
                    .find(|&j| !self.buckets[j].nodes.is_empty())?;
                (b, p) = (next, 0);
            }
            self.cursor = (b as u8, (p + 1).min(u16::MAX as usize) as u16);
            let n = &mut self.buckets[b].nodes[p];
            let heard = n.last_response.max(n.last_query);
            let quiet = !n.last_response.is_some() || heard.age(tick) >= idle;
            let recently_pinged = n.pinged.is_some() && n.pinged.age(tick) < idle;
            if quiet && !recently_pinged && n.status(tick, &cfg) != Status::Bad {
                n.pinged = tick;
                return Some((n.id, n.addr.get()));
            }
        }
        None
    }

    /// Checks every structural invariant; returns a description of the first violation.
    pub fn check_invariants(&self) -> Result<(), String> {
        let mut ids = HashSet::new();
        let mut ips = HashSet::new();
        let mut count = 0;
        let last = self.buckets.len() - 1;
        if self.buckets.len() > 160 {
            return Err("more than 160 buckets".into());
        }
        for (i, b) in self.buckets.iter().enumerate() {
            if b.nodes.len() > self.cfg.k {
                return Err(format!("bucket {i} holds {} > k nodes", b.nodes.len()));
            }
            if self.cfg.max_per_subnet > 0 {
                let mut nets = std::collections::BTreeMap::new();
                for n in &b.nodes {
                    if let Some(net) = subnet(n.addr.ip()) {
                        let c = nets.entry(net).or_insert(0usize);
                        *c += 1;
                        if *c > self.cfg.max_per_subnet {
                            return Err(format!(
                                "bucket {i} holds {c} nodes of {}'s subnet",
                                n.addr.get()
                            ));
                        }
                    }
                }
            }
            if b.replacements.len() > self.cfg.k {
                return Err(format!(
                    "bucket {i} caches {} > k nodes",
                    b.replacements.len()
                ));
            }
            for (n, live) in b
                .nodes
                .iter()
                .map(|n| (n, true))
                .chain(b.replacements.iter().map(|n| (n, false)))
            {
                let cp = self.own.common_prefix(&n.id);
                if n.id == self.own {
                    return Err("own id in table".into());
                }
                if (i < last && cp != i) || (i == last && cp < i) {
                    return Err(format!("node with prefix {cp} in bucket {i}"));
                }
                if live {
                    count += 1;
                    if !ids.insert(n.id) {
                        return Err(format!("duplicate id {}", n.id));
                    }
                    if self.cfg.restrict_ips && !ips.insert(n.addr.ip()) {
                        return Err(format!("duplicate ip {}", n.addr.ip()));
                    }
                }
            }
        }
        if count != self.len {
            return Err(format!("len {} but {} nodes", self.len, count));
        }
        if self.len > self.cfg.max_nodes {
            return Err("more nodes than max_nodes".into());
        }
        Ok(())
    }
}

/// The routing table.
#[derive(Debug, Clone)]
pub struct RoutingTable(Tables);

#[derive(Debug, Clone)]
enum Tables {
    /// Either family (64 bytes a node).
    Any(Table<Addr>),
    /// IPv4 only (48 bytes a node).
    V4(Table<AddrV4>),
}

/// One of two iterators.
enum Either<L, R> {
    L(L),
    R(R),
}

impl<T, L: Iterator<Item = T>, R: Iterator<Item = T>> Iterator for Either<L, R> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        match self {
            Either::L(l) => l.next(),
            Either::R(r) => r.next(),
        }
    }
}

impl RoutingTable {
    /// An empty table around `own`, for nodes of either family.
    pub fn new(own: Id, cfg: TableConfig, now: Instant) -> Self {
        RoutingTable(Tables::Any(Table::new(own, cfg, now)))
    }

    /// Forgets when the next questionable node can be due (tests: the hint never hides one).
    #[cfg(test)]
    fn forget_due(&mut self) {
        match &mut self.0 {
            Tables::Any(t) => t.due_after = Tick::NEVER,
            Tables::V4(t) => t.due_after = Tick::NEVER,
        }
    }

    /// An empty table around `own` for IPv4 nodes only, in less memory (48 bytes a node
    /// against 64): IPv6 addresses are refused as if the table were full.
    pub fn new_ipv4(own: Id, cfg: TableConfig, now: Instant) -> Self {
        RoutingTable(Tables::V4(Table::new(own, cfg, now)))
    }

    /// Our own id.
    pub fn own_id(&self) -> Id {
        match &self.0 {
            Tables::Any(t) => t.own_id(),
            Tables::V4(t) => t.own_id(),
        }
    }

    /// The settings.
    pub fn config(&self) -> &TableConfig {
        match &self.0 {
            Tables::Any(t) => t.config(),
            Tables::V4(t) => t.config(),
        }
    }

    /// Number of nodes in the table (replacement caches not counted).
    pub fn len(&self) -> usize {
        match &self.0 {
            Tables::Any(t) => t.len(),
            Tables::V4(t) => t.len(),
        }
    }

    /// True if the table holds no nodes.
    pub fn is_empty(&self) -> bool {
        match &self.0 {
            Tables::Any(t) => t.is_empty(),
            Tables::V4(t) => t.is_empty(),
        }
    }

    /// Number of buckets.
    pub fn bucket_count(&self) -> usize {
        match &self.0 {
            Tables::Any(t) => t.bucket_count(),
            Tables::V4(t) => t.bucket_count(),
        }
    }

    /// Index of the bucket that covers `id`.
    pub fn bucket_index(&self, id: &Id) -> usize {
        match &self.0 {
            Tables::Any(t) => t.bucket_index(id),
            Tables::V4(t) => t.bucket_index(id),
        }
    }

    /// All nodes in the table.
    pub fn iter(&self) -> impl Iterator<Item = NodeEntry> + '_ {
        match &self.0 {
            Tables::Any(t) => Either::L(t.iter()),
            Tables::V4(t) => Either::R(t.iter()),
        }
    }

    /// All nodes waiting in replacement caches.
    pub fn replacements(&self) -> impl Iterator<Item = NodeEntry> + '_ {
        match &self.0 {
            Tables::Any(t) => Either::L(t.replacements()),
            Tables::V4(t) => Either::R(t.replacements()),
        }
    }

    /// Nodes in replacement caches that nobody has verified or pinged yet: (id, address).
    pub fn untried_replacements(&self) -> impl Iterator<Item = (Id, SocketAddr)> + '_ {
        match &self.0 {
            Tables::Any(t) => Either::L(t.untried_replacements()),
            Tables::V4(t) => Either::R(t.untried_replacements()),
        }
    }

    /// The entry for `id`, if it is in the table.
    pub fn get(&self, id: &Id) -> Option<NodeEntry> {
        match &self.0 {
            Tables::Any(t) => t.get(id),
            Tables::V4(t) => t.get(id),
        }
    }

    /// The round trip of `id`'s last answer, if it is in the table and has answered.
    pub fn rtt_of(&self, id: &Id) -> Option<Duration> {
        match &self.0 {
            Tables::Any(t) => t.rtt_of(id),
            Tables::V4(t) => t.rtt_of(id),
        }
    }

    /// True if `id` is in the table.
    pub fn contains(&self, id: &Id) -> bool {
        match &self.0 {
            Tables::Any(t) => t.contains(id),
            Tables::V4(t) => t.contains(id),
        }
    }

    /// True if a node at `addr` with `id` would be accepted (or is already present) without
    /// evicting anyone: used to decide whether verifying an unknown node is worth a ping.
    pub fn has_room_for(&self, id: &Id, addr: &SocketAddr) -> bool {
        match &self.0 {
            Tables::Any(t) => t.has_room_for(id, addr),
            Tables::V4(t) => t.has_room_for(id, addr),
        }
    }

    /// Nodes nobody has verified or pinged yet, waiting in the replacement caches of buckets
    /// with room (the nodes worth a ping to fill the table): (id, address).
    pub fn untried_with_room(&self) -> impl Iterator<Item = (Id, SocketAddr)> + '_ {
        match &self.0 {
            Tables::Any(t) => Either::L(t.untried_with_room()),
            Tables::V4(t) => Either::R(t.untried_with_room()),
        }
    }

    /// A node answered one of our queries.
    pub fn node_seen(
        &mut self,
        now: Instant,
        id: Id,
        addr: SocketAddr,
        rtt: Option<Duration>,
    ) -> SeenOutcome {
        match &mut self.0 {
            Tables::Any(t) => t.node_seen(now, id, addr, rtt),
            Tables::V4(t) => t.node_seen(now, id, addr, rtt),
        }
    }

    /// As [`RoutingTable::node_seen`] for a node known to answer (a settled table built at
    /// once, as the simulator does): the same admission rules, but a node that does not fit,
    /// or that a faster one displaces, is not kept in a replacement cache.
    pub fn import_seen(
        &mut self,
        now: Instant,
        id: Id,
        addr: SocketAddr,
        rtt: Option<Duration>,
    ) -> SeenOutcome {
        match &mut self.0 {
            Tables::Any(t) => t.import_seen(now, id, addr, rtt),
            Tables::V4(t) => t.import_seen(now, id, addr, rtt),
        }
    }

    /// Another node told us about this one. It goes into the replacement cache of its bucket
    /// (unverified) unless it is already known; returns true if it was cached.
    pub fn heard_about(&mut self, now: Instant, id: Id, addr: SocketAddr) -> bool {
        match &mut self.0 {
            Tables::Any(t) => t.heard_about(now, id, addr),
            Tables::V4(t) => t.heard_about(now, id, addr),
        }
    }

    /// A node sent us a query.
    pub fn node_queried(&mut self, now: Instant, id: &Id, addr: &SocketAddr) {
        match &mut self.0 {
            Tables::Any(t) => t.node_queried(now, id, addr),
            Tables::V4(t) => t.node_queried(now, id, addr),
        }
    }

    /// A query to this node timed out.
    pub fn node_failed(&mut self, now: Instant, id: &Id, addr: &SocketAddr) -> FailOutcome {
        match &mut self.0 {
            Tables::Any(t) => t.node_failed(now, id, addr),
            Tables::V4(t) => t.node_failed(now, id, addr),
        }
    }

    /// True if `addr` was evicted for failing within the last [`TableConfig::quarantine`].
    pub fn is_quarantined(&self, now: Instant, addr: &SocketAddr) -> bool {
        match &self.0 {
            Tables::Any(t) => t.is_quarantined(now, addr),
            Tables::V4(t) => t.is_quarantined(now, addr),
        }
    }

    /// Removes a node outright (for instance one that sent a malformed or hostile reply).
    pub fn remove(&mut self, id: &Id) -> Option<NodeEntry> {
        match &mut self.0 {
            Tables::Any(t) => t.remove(id),
            Tables::V4(t) => t.remove(id),
        }
    }

    /// Adds a node from saved state without verifying it. It counts as questionable until it
    /// answers. Returns true if it was added.
    pub fn restore(&mut self, now: Instant, id: Id, addr: SocketAddr) -> bool {
        match &mut self.0 {
            Tables::Any(t) => t.restore(now, id, addr),
            Tables::V4(t) => t.restore(now, id, addr),
        }
    }

    /// Writes the `n` closest non-bad nodes to `target` into `out` (cleared first), closest
    /// first.
    pub fn closest(&self, now: Instant, target: &Id, n: usize, out: &mut Vec<(Id, SocketAddr)>) {
        match &self.0 {
            Tables::Any(t) => t.closest(now, target, n, out),
            Tables::V4(t) => t.closest(now, target, n, out),
        }
    }

    /// Indices of buckets unchanged for `idle` or more.
    pub fn stale_buckets(&self, now: Instant, idle: Duration) -> impl Iterator<Item = usize> + '_ {
        match &self.0 {
            Tables::Any(t) => Either::L(t.stale_buckets(now, idle)),
            Tables::V4(t) => Either::R(t.stale_buckets(now, idle)),
        }
    }

    /// Marks a bucket as refreshed.
    pub fn touch_bucket(&mut self, i: usize, now: Instant) {
        match &mut self.0 {
            Tables::Any(t) => t.touch_bucket(i, now),
            Tables::V4(t) => t.touch_bucket(i, now),
        }
    }

    /// A random id that falls in bucket `i`.
    pub fn random_id_in_bucket<R: Rng + ?Sized>(&self, i: usize, rng: &mut R) -> Id {
        match &self.0 {
            Tables::Any(t) => t.random_id_in_bucket(i, rng),
            Tables::V4(t) => t.random_id_in_bucket(i, rng),
        }
    }

    /// Questionable nodes not pinged in the last `interval`, at most `max`, in table order;
    /// each is marked as pinged now. The table remembers when the next one can be due, so a
    /// call before then costs nothing.
    pub fn take_questionable(
        &mut self,
        now: Instant,
        interval: Duration,
        max: usize,
        out: &mut Vec<(Id, SocketAddr)>,
    ) {
        match &mut self.0 {
            Tables::Any(t) => t.take_questionable(now, interval, max, out),
            Tables::V4(t) => t.take_questionable(now, interval, max, out),
        }
    }

    /// The next node in turn (round robin over the table) that has neither answered nor
    /// (having answered before) queried us within `idle`, and is not bad, marked as pinged
    /// now. At most a bucket's worth of nodes is
    /// looked at per call, so a call costs a few cache lines, not a scan of the table.
    pub fn next_stale(&mut self, now: Instant, idle: Duration) -> Option<(Id, SocketAddr)> {
        match &mut self.0 {
            Tables::Any(t) => t.next_stale(now, idle),
            Tables::V4(t) => t.next_stale(now, idle),
        }
    }

    /// Checks every structural invariant; returns a description of the first violation.
    pub fn check_invariants(&self) -> Result<(), String> {
        match &self.0 {
            Tables::Any(t) => t.check_invariants(),
            Tables::V4(t) => t.check_invariants(),
        }
    }
}

/// True if `nodes` already hold `cap` nodes of `addr`'s subnet (global addresses only;
/// `cap` 0 is no cap).
fn crowded_in<A: SlotAddr>(nodes: &[Slot<A>], cap: usize, addr: &SocketAddr) -> bool {
    let Some(net) = subnet(addr.ip()).filter(|_| cap > 0) else {
        return false;
    };
    nodes
        .iter()
        .filter(|n| subnet(n.addr.ip()) == Some(net))
        .count()
        >= cap
}

/// The position of the resident `entry` should replace by round trip
/// ([`TableConfig::rtt_replace`]): the slowest measured resident, if `entry` answered at most
/// `1 / rtt_replace` of its round trip and at least the margin faster.
fn faster_than_slowest<A>(nodes: &[Slot<A>], entry: &Slot<A>, cfg: &TableConfig) -> Option<usize> {
    if cfg.rtt_replace == 0 || entry.rtt_us == 0 {
        return None;
    }
    let (pos, slowest) = nodes
        .iter()
        .enumerate()
        .filter(|(_, n)| n.rtt_us != 0)
        .max_by_key(|(_, n)| n.rtt_us)?;
    let (new, old) = (entry.rtt_us as u64, slowest.rtt_us as u64);
    let margin = cfg.rtt_replace_margin.as_micros() as u64;
    (new * cfg.rtt_replace as u64 <= old && new + margin <= old).then_some(pos)
}

fn push_replacement<A>(cache: &mut Vec<Slot<A>>, entry: Slot<A>, k: usize) {
    if let Some(pos) = cache.iter().position(|r| r.id == entry.id) {
        cache[pos] = entry;
        return;
    }
    if cache.len() >= k {
        // Drop the least useful: unverified before verified, oldest first.
        if let Some(pos) = cache
            .iter()
            .enumerate()
            .min_by_key(|(_, r)| (r.last_response.is_some(), r.last_response, r.added))
            .map(|(i, _)| i)
        {
            cache.remove(pos);
        }
    }
    cache.push(entry);
}

#[cfg(test)]
mod tests;
