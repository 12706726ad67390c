//! The simulated network: nodes, links, the packet queue and the event loop.

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use dhtkit_proto::{Config, Event, Instant, LookupId, LookupResult, Node};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// One-way link latency. Each link (pair of nodes) gets a fixed base latency drawn uniformly
/// from `[min, max]` (the same in both directions); each packet adds up to `jitter` on top.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Latency {
    /// Smallest base latency.
    pub min: Duration,
    /// Largest base latency.
    pub max: Duration,
    /// Largest extra delay per packet.
    pub jitter: Duration,
}

impl Latency {
    /// The same delay on every link, no jitter.
    pub fn fixed(d: Duration) -> Latency {
        Latency {
            min: d,
            max: d,
            jitter: Duration::ZERO,
        }
    }
}

/// Network settings.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Seed for every random choice the network makes.
    pub seed: u64,
    /// Link latencies.
    pub latency: Latency,
    /// Probability that a datagram is lost.
    pub loss: f64,
    /// Probability that a delivered datagram has one byte flipped.
    pub corrupt: f64,
    /// Keep every event of every node (otherwise only lookup results, peers found, request
    /// results and bootstrap ends are kept, which is what tests read).
    pub record_all_events: bool,
    /// Round trips drawn from a log-normal distribution instead of `latency`'s uniform
    /// range (the live-DHT model); `latency.jitter` still applies per packet.
    pub lognormal: Option<LogNormalRtt>,
    /// Check the contacts of one `nodes`/`nodes6` reply in this many (0: none): how many
    /// name an address where no node answers (gone, behind NAT, or never there). Counted in
    /// [`SimStats::contacts_checked`] and [`SimStats::contacts_unreachable`].
    pub sample_contacts: u32,
    /// How long a NATed node's mapping to an address stays open after it last sent there
    /// (see [`Sim::set_nat`]; default 2 minutes, within common home routers' UDP timeouts).
    pub nat_timeout: Duration,
}

/// Seed salt of the log-normal round trips' draws.
const LINK_SEED: u64 = 0x0dd5_1ab1_e5ee_d001;

/// Round trips from a log-normal distribution: each pair of nodes gets a fixed round trip
/// with the given median and 90th percentile. Half of its logarithm's variance comes from
/// the two nodes (each node's own access link: some nodes are fast to everyone) and half from
/// the pair (distance), so the marginal over all pairs is exactly log-normal.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LogNormalRtt {
    /// Median round trip.
    pub median: Duration,
    /// 90th percentile round trip.
    pub p90: Duration,
}

impl LogNormalRtt {
    /// σ of the logarithm: the p90 sits 1.2816 σ above the median.
    pub fn sigma(&self) -> f64 {
        let (m, p) = (self.median.as_secs_f64(), self.p90.as_secs_f64());
        if m <= 0.0 || p <= m {
            return 0.0;
        }
        (p / m).ln() / 1.281_551_565_5
    }

    /// The round trip for standard-normal draws of the two nodes (`za`, `zb`) and the pair
    /// (`zp`).
    pub fn rtt(&self, za: f64, zb: f64, zp: f64) -> Duration {
        let z = 0.5 * za + 0.5 * zb + std::f64::consts::FRAC_1_SQRT_2 * zp;
        let secs = self.median.as_secs_f64() * (self.sigma() * z).exp();
        Duration::from_secs_f64(secs.clamp(0.002, 30.0))
    }
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            seed: 1,
            latency: Latency {
                min: Duration::from_millis(10),
                max: Duration::from_millis(150),
                jitter: Duration::from_millis(10),
            },
            loss: 0.0,
            corrupt: 0.0,
            record_all_events: false,
            lognormal: None,
            sample_contacts: 0,
            nat_timeout: Duration::from_secs(120),
        }
    }
}

/// Counters for the network itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SimStats {
    /// Datagrams handed to their destination.
    pub delivered: u64,
    /// Datagrams dropped by the loss model.
    pub lost: u64,
    /// Datagrams corrupted on the way.
    pub corrupted: u64,
    /// Datagrams sent to a node that has left (or to no node).
    pub undeliverable: u64,
    /// Timer wake-ups handled.
    pub wakeups: u64,
    /// Unsolicited datagrams dropped at a NATed node.
    pub nat_dropped: u64,
    /// Contacts in sampled `nodes` replies (see [`SimConfig::sample_contacts`]).
    pub contacts_checked: u64,
    /// Of those, contacts at an address where no node would answer a query.
    pub contacts_unreachable: u64,
}

struct Packet {
    at: Instant,
    seq: u64,
    from: SocketAddr,
    to: usize,
    /// The slot's generation when sent: a node that replaced a departed one in the same
    /// slot does not get the departed node's packets.
    gen: u32,
    data: Vec<u8>,
}

impl PartialEq for Packet {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Packet {}
impl PartialOrd for Packet {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Packet {
    fn cmp(&self, o: &Self) -> Ordering {
        (self.at, self.seq).cmp(&(o.at, o.seq))
    }
}

/// How a simulated node behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Behaviour {
    /// Runs the real protocol.
    Honest,
    /// Answers every query itself, at once, with eight fake nodes whose ids are closer to the
    /// query's target than any real node and whose addresses nobody listens on (routing-table
    /// poisoning); never stores or returns peers.
    Liar,
}

struct SimNode {
    node: Node,
    /// The node's first address (IPv4 if it has one).
    addr: SocketAddr,
    /// Its IPv6 address, when it has both families.
    addr6: Option<SocketAddr>,
    alive: bool,
    /// Behind a NAT: only datagrams from addresses it sent to lately reach it.
    nat: Option<Box<NatMap>>,
    /// Bumped each time the slot gets a new node.
    gen: u32,
    behaviour: Behaviour,
    deadline: Option<Instant>,
    /// The time of the node's earliest entry in the timer queue (entries at other times are
    /// stale and skipped): a deadline that moves later needs no new entry.
    queued: Option<Instant>,
    events: Vec<Event>,
    /// When each of `events` was recorded (same length).
    event_times: Vec<Instant>,
}

/// A simulated network.
pub struct Sim {
    cfg: SimConfig,
    now: Instant,
    rng: SmallRng,
    nodes: Vec<SimNode>,
    by_addr: HashMap<SocketAddr, usize>,
    packets: BinaryHeap<Reverse<Packet>>,
    timers: BinaryHeap<Reverse<(Instant, usize)>>,
    seq: u64,
    stats: SimStats,
    /// Datagram buffers to reuse (a network of a million nodes moves hundreds of thousands
    /// of datagrams per virtual second).
    spare: Vec<Vec<u8>>,
}

/// The round trips of a network's links (see [`Sim::links`]).
#[derive(Debug, Clone, Copy)]
pub struct Links<'a>(&'a SimConfig);

impl Links<'_> {
    /// The base round trip between two addresses (as [`Sim::rtt`]).
    pub fn rtt(&self, a: &SocketAddr, b: &SocketAddr) -> Duration {
        self.base(a, b) * 2
    }

    /// As [`Sim::link_z`].
    pub fn link_z(&self, a: &SocketAddr) -> f64 {
        if self.0.lognormal.is_none() {
            return 0.0;
        }
        normal(hash_addrs(self.0.seed ^ LINK_SEED, a, None))
    }

    /// As [`Sim::rtt_given`].
    pub fn rtt_given(&self, a: &SocketAddr, za: f64, b: &SocketAddr, zb: f64) -> Duration {
        let Some(ln) = self.0.lognormal else {
            return self.rtt(a, b);
        };
        let (x, y) = if a < b { (a, b) } else { (b, a) };
        let zp = normal(hash_addrs(self.0.seed ^ LINK_SEED, x, Some(y)));
        (ln.rtt(za, zb, zp) / 2) * 2
    }

    fn base(&self, a: &SocketAddr, b: &SocketAddr) -> Duration {
        let cfg = self.0;
        if let Some(ln) = cfg.lognormal {
            let (x, y) = if a < b { (a, b) } else { (b, a) };
            let seed = cfg.seed ^ LINK_SEED;
            let za = normal(hash_addrs(seed, x, None));
            let zb = normal(hash_addrs(seed, y, None));
            let zp = normal(hash_addrs(seed, x, Some(y)));
            return ln.rtt(za, zb, zp) / 2;
        }
        let l = cfg.latency;
        if l.max <= l.min {
            return l.min;
        }
        let (x, y) = if a < b { (a, b) } else { (b, a) };
        let mut h = cfg.seed ^ 0x51_7cc1_b727_220a;
        for byte in link_key(x).chain(link_key(y)) {
            h = (h ^ byte as u64).wrapping_mul(0x100_0000_01b3);
        }
        h ^= h >> 31;
        let span = (l.max - l.min).as_micros() as u64;
        l.min + Duration::from_micros(h % (span + 1))
    }
}

/// Most datagram buffers kept for reuse.
const SPARE_BUFFERS: usize = 4096;

impl Sim {
    /// An empty network at virtual time zero.
    pub fn new(cfg: SimConfig) -> Sim {
        Sim {
            rng: SmallRng::seed_from_u64(cfg.seed),
            cfg,
            now: Instant::ZERO,
            nodes: Vec::new(),
            by_addr: HashMap::new(),
            packets: BinaryHeap::new(),
            timers: BinaryHeap::new(),
            seq: 0,
            stats: SimStats::default(),
            spare: Vec::new(),
        }
    }

    /// Makes room for `n` more nodes at once (a node is some 3 KB: a network of a million
    /// grown by doubling would hold half as much again in spare room).
    pub fn reserve(&mut self, n: usize) {
        self.nodes.reserve_exact(n);
        self.by_addr.reserve(n);
    }

    /// Virtual time now.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Network counters.
    pub fn stats(&self) -> SimStats {
        self.stats
    }

    /// Number of nodes ever added (alive or not).
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// True if no node was ever added.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The network's own RNG, for tests that want choices replayable from the same seed.
    pub fn rng(&mut self) -> &mut SmallRng {
        &mut self.rng
    }

    /// The IPv4 address of node `i`: 127.a.b.c, unique per node.
    pub fn addr_of_index(i: usize) -> SocketAddr {
        let n = (i + 1) as u32;
        let ip = Ipv4Addr::new(127, (n >> 16) as u8, (n >> 8) as u8, n as u8);
        SocketAddr::new(ip.into(), 6881)
    }

    /// The IPv6 address of node `i`: fd00::a:b (a unique local address; nothing leaves the
    /// process).
    pub fn addr6_of_index(i: usize) -> SocketAddr {
        let n = (i + 1) as u32;
        let ip = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, (n >> 16) as u16, n as u16);
        SocketAddr::new(ip.into(), 6881)
    }

    /// Adds a node at the address of its index, in the family its config asks for (IPv6 when
    /// `cfg.ipv6` is set without `cfg.ipv4`, IPv4 otherwise). Returns its index.
    pub fn add_node(&mut self, cfg: Config) -> usize {
        let i = self.nodes.len();
        let addr = if cfg.ipv6 && !cfg.ipv4 {
            Self::addr6_of_index(i)
        } else {
            Self::addr_of_index(i)
        };
        self.add_node_at(cfg, &[addr])
    }

    /// Adds a node at `addrs` (one address, or one of each family for a dual-stack node); the
    /// node's families follow the addresses. Its seed comes from the network's RNG unless
    /// `cfg.seed` is set, and local addresses are always allowed. Returns its index.
    ///
    /// # Panics
    /// If `addrs` is empty, holds two addresses of one family, or an address already in use.
    pub fn add_node_at(&mut self, mut cfg: Config, addrs: &[SocketAddr]) -> usize {
        if cfg.seed == 0 {
            cfg.seed = self.rng.random();
        }
        let seed = cfg.seed;
        Self::fit(&mut cfg, addrs);
        self.add_node_seeded(Arc::new(cfg), seed, addrs)
    }

    /// As [`Sim::add_node_at`], with settings shared by many nodes (one copy in memory): `cfg`
    /// should already allow local addresses and have the families of `addrs` (a copy that
    /// does is made otherwise). The node's seed comes from the network's RNG.
    pub fn add_node_shared(&mut self, cfg: &Arc<Config>, addrs: &[SocketAddr]) -> usize {
        let seed = self.rng.random();
        let cfg = Self::fitted(cfg, addrs);
        self.add_node_seeded(cfg, seed, addrs)
    }

    /// Local addresses allowed, the families of `addrs`.
    fn fit(cfg: &mut Config, addrs: &[SocketAddr]) {
        cfg.allow_local_addrs = true;
        cfg.ipv4 = addrs.iter().any(|a| a.is_ipv4());
        cfg.ipv6 = addrs.iter().any(|a| a.is_ipv6());
    }

    fn fitted(cfg: &Arc<Config>, addrs: &[SocketAddr]) -> Arc<Config> {
        let (v4, v6) = (
            addrs.iter().any(|a| a.is_ipv4()),
            addrs.iter().any(|a| a.is_ipv6()),
        );
        if cfg.allow_local_addrs && cfg.ipv4 == v4 && cfg.ipv6 == v6 {
            return cfg.clone();
        }
        let mut c = (**cfg).clone();
        Self::fit(&mut c, addrs);
        Arc::new(c)
    }

    fn add_node_seeded(&mut self, cfg: Arc<Config>, seed: u64, addrs: &[SocketAddr]) -> usize {
        let i = self.nodes.len();
        let v4 = addrs.iter().find(|a| a.is_ipv4()).copied();
        let v6 = addrs.iter().find(|a| a.is_ipv6()).copied();
        assert!(
            !addrs.is_empty() && addrs.len() == v4.is_some() as usize + v6.is_some() as usize,
            "one address per family"
        );
        let addr = v4.or(v6).expect("an address");
        let addr6 = v4.and(v6);
        for a in addrs {
            assert!(self.by_addr.insert(*a, i).is_none(), "{a} is taken");
        }
        self.nodes.push(SimNode {
            node: Node::with_shared_config(cfg, seed, self.now),
            addr,
            addr6,
            alive: true,
            nat: None,
            gen: 0,
            behaviour: Behaviour::Honest,
            deadline: None,
            queued: None,
            events: Vec::new(),
            event_times: Vec::new(),
        });
        self.flush(i);
        i
    }

    /// Replaces node `i` (gone or not) with a new node at `addr`, for churn that keeps memory
    /// flat: the old node's state is dropped, its address is free again (others may still
    /// have it in their tables: their queries go unanswered), and datagrams still on their way
    /// to it are lost. The newcomer is honest, not behind NAT, and knows nobody.
    ///
    /// # Panics
    /// If `addr` is taken by another node.
    pub fn replace_node(&mut self, i: usize, mut cfg: Config, addr: SocketAddr) {
        if cfg.seed == 0 {
            cfg.seed = self.rng.random();
        }
        let seed = cfg.seed;
        Self::fit(&mut cfg, &[addr]);
        self.replace_node_seeded(i, Arc::new(cfg), seed, addr);
    }

    /// As [`Sim::replace_node`], with shared settings (see [`Sim::add_node_shared`]).
    pub fn replace_node_shared(&mut self, i: usize, cfg: &Arc<Config>, addr: SocketAddr) {
        let seed = self.rng.random();
        let cfg = Self::fitted(cfg, &[addr]);
        self.replace_node_seeded(i, cfg, seed, addr);
    }

    fn replace_node_seeded(&mut self, i: usize, cfg: Arc<Config>, seed: u64, addr: SocketAddr) {
        let old = &self.nodes[i];
        for a in [Some(old.addr), old.addr6].into_iter().flatten() {
            self.by_addr.remove(&a);
        }
        assert!(self.by_addr.insert(addr, i).is_none(), "{addr} is taken");
        let sn = &mut self.nodes[i];
        sn.node = Node::with_shared_config(cfg, seed, self.now);
        sn.addr = addr;
        sn.addr6 = None;
        sn.alive = true;
        sn.nat = None;
        sn.gen = sn.gen.wrapping_add(1);
        sn.behaviour = Behaviour::Honest;
        sn.deadline = None;
        sn.queued = None;
        sn.events = Vec::new();
        sn.event_times = Vec::new();
        self.flush(i);
    }

    /// Puts node `i` behind an address-restricted NAT (or takes it out): a datagram reaches
    /// it only from an address it sent to within [`SimConfig::nat_timeout`]. So it gets the
    /// answers to its queries, and nodes it queried lately can reach it (and keep it in their
    /// tables), but nobody they tell about it can: as on the live DHT, where about half the
    /// contacts in `nodes` replies never answer.
    pub fn set_nat(&mut self, i: usize, nat: bool) {
        self.nodes[i].nat = nat.then(Box::default);
    }

    /// How many times slot `i` got a new node ([`Sim::replace_node`]).
    pub fn generation(&self, i: usize) -> u32 {
        self.nodes[i].gen
    }

    /// True if node `i` is behind a NAT.
    pub fn is_nat(&self, i: usize) -> bool {
        self.nodes[i].nat.is_some()
    }

    /// The index of the node at `addr`, if any.
    pub fn index_of(&self, addr: &SocketAddr) -> Option<usize> {
        self.by_addr.get(addr).copied()
    }

    /// Node `i`'s first address (IPv4 if it has one).
    pub fn addr(&self, i: usize) -> SocketAddr {
        self.nodes[i].addr
    }

    /// Node `i`'s address in the family of `like`, if it has one.
    pub fn addr_like(&self, i: usize, like: &SocketAddr) -> Option<SocketAddr> {
        let n = &self.nodes[i];
        [Some(n.addr), n.addr6]
            .into_iter()
            .flatten()
            .find(|a| a.is_ipv6() == like.is_ipv6())
    }

    /// Read access to node `i`.
    pub fn node(&self, i: usize) -> &Node {
        &self.nodes[i].node
    }

    /// True if node `i` has not left.
    pub fn is_alive(&self, i: usize) -> bool {
        self.nodes[i].alive
    }

    /// Indices of nodes that have not left.
    pub fn alive(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.nodes.len()).filter(|&i| self.nodes[i].alive)
    }

    /// Runs `f` on node `i` at the current virtual time, then collects what it wants to send.
    pub fn with_node<R>(&mut self, i: usize, f: impl FnOnce(&mut Node, Instant) -> R) -> R {
        let now = self.now;
        let r = f(&mut self.nodes[i].node, now);
        self.flush(i);
        r
    }

    /// Node `i` leaves silently: it stops answering, as a node that went offline or sits
    /// behind a NAT that stopped forwarding.
    pub fn kill(&mut self, i: usize) {
        self.nodes[i].alive = false;
        self.nodes[i].events.clear();
        self.nodes[i].event_times.clear();
    }

    /// Node `i` comes back with the state it had when it left (its timers resume at once).
    pub fn revive(&mut self, i: usize) {
        self.nodes[i].alive = true;
        self.nodes[i].queued = None;
        self.flush(i);
    }

    /// Makes node `i` behave as `b` from now on.
    pub fn set_behaviour(&mut self, i: usize, b: Behaviour) {
        self.nodes[i].behaviour = b;
    }

    /// Takes the events node `i` has recorded.
    pub fn take_events(&mut self, i: usize) -> Vec<Event> {
        self.nodes[i].event_times.clear();
        std::mem::take(&mut self.nodes[i].events)
    }

    /// Takes the events node `i` has recorded, each with the virtual time it happened.
    pub fn take_timed_events(&mut self, i: usize) -> Vec<(Instant, Event)> {
        let sn = &mut self.nodes[i];
        let times = std::mem::take(&mut sn.event_times);
        times
            .into_iter()
            .zip(std::mem::take(&mut sn.events))
            .collect()
    }

    /// The base round trip between two addresses (twice the one-way base latency; jitter
    /// not included).
    pub fn rtt(&self, a: &SocketAddr, b: &SocketAddr) -> Duration {
        self.links().rtt(a, b)
    }

    /// The log-normal model's draw for `a`'s own access link (0 without that model).
    pub fn link_z(&self, a: &SocketAddr) -> f64 {
        self.links().link_z(a)
    }

    /// [`Sim::rtt`] given both nodes' [`Sim::link_z`] (for callers that compute many round
    /// trips from one node: the same value, without recomputing the nodes' draws).
    pub fn rtt_given(&self, a: &SocketAddr, za: f64, b: &SocketAddr, zb: f64) -> Duration {
        self.links().rtt_given(a, za, b, zb)
    }

    /// The network's round trips, apart from its nodes (so that they can be read while nodes
    /// are changed: [`Sim::par_with_nodes`]).
    pub fn links(&self) -> Links<'_> {
        Links(&self.cfg)
    }

    fn link_base(&self, a: &SocketAddr, b: &SocketAddr) -> Duration {
        self.links().base(a, b)
    }

    /// Calls `f` on every node, on `threads` threads at once (each on its own share of the
    /// nodes, in index order within it), then sends what they queued. For work that is the
    /// same whatever the order (filling tables from a global view); `f` gets the round trips,
    /// the node's index, the node and the time.
    pub fn par_with_nodes<F>(&mut self, threads: usize, f: F)
    where
        F: Fn(Links<'_>, usize, &mut Node, Instant) + Sync,
    {
        let now = self.now;
        let n = self.nodes.len();
        let threads = threads.max(1);
        // In blocks, each sent before the next: what the nodes queue (events, datagrams)
        // must not pile up for the whole network at once.
        let block = 1024 * threads;
        for start in (0..n).step_by(block) {
            let end = (start + block).min(n);
            let per = (end - start).div_ceil(threads).max(1);
            let links = Links(&self.cfg);
            let f = &f;
            std::thread::scope(|scope| {
                for (c, chunk) in self.nodes[start..end].chunks_mut(per).enumerate() {
                    scope.spawn(move || {
                        for (j, sn) in chunk.iter_mut().enumerate() {
                            f(links, start + c * per + j, &mut sn.node, now);
                        }
                    });
                }
            });
            for i in start..end {
                self.flush(i);
            }
        }
    }

    fn flush(&mut self, i: usize) {
        let now = self.now;
        let record_all = self.cfg.record_all_events;
        loop {
            let sn = &mut self.nodes[i];
            let Some(t) = sn.node.poll_transmit() else {
                break;
            };
            let dest = t.dest;
            let mut data = self.spare.pop().unwrap_or_default();
            data.clear();
            data.extend_from_slice(t.payload);
            if let Some(m) = &mut sn.nat {
                m.opened(nat_key(&dest), now);
            }
            // A datagram leaves from the node's address of the destination's family.
            let Some(from) = [Some(sn.addr), sn.addr6]
                .into_iter()
                .flatten()
                .find(|a| a.is_ipv6() == dest.is_ipv6())
            else {
                self.stats.undeliverable += 1;
                continue;
            };
            if self.rng.random_bool(self.cfg.loss.clamp(0.0, 1.0)) {
                self.stats.lost += 1;
                continue;
            }
            let Some(&to) = self.by_addr.get(&dest) else {
                self.stats.undeliverable += 1;
                continue;
            };
            if !data.is_empty() && self.rng.random_bool(self.cfg.corrupt.clamp(0.0, 1.0)) {
                let at = self.rng.random_range(0..data.len());
                data[at] ^= 1 << self.rng.random_range(0..8);
                self.stats.corrupted += 1;
            }
            let jitter = self.cfg.latency.jitter.as_micros() as u64;
            let extra = if jitter == 0 {
                0
            } else {
                self.rng.random_range(0..=jitter)
            };
            let at = now + self.link_base(&from, &dest) + Duration::from_micros(extra);
            self.seq += 1;
            let gen = self.nodes[to].gen;
            self.packets.push(Reverse(Packet {
                at,
                seq: self.seq,
                from,
                to,
                gen,
                data,
            }));
        }
        let sn = &mut self.nodes[i];
        while let Some(e) = sn.node.poll_event() {
            let keep = record_all
                || matches!(
                    e,
                    Event::LookupFinished(_)
                        | Event::PeerFound { .. }
                        | Event::RequestFinished { .. }
                        | Event::Bootstrapped { .. }
                );
            if keep && sn.alive {
                sn.events.push(e);
                sn.event_times.push(now);
            }
        }
        sn.deadline = sn.node.poll_timeout();
        if let Some(d) = sn.deadline {
            let at = d.max(now);
            if sn.queued.is_none_or(|q| at < q) {
                sn.queued = Some(at);
                self.timers.push(Reverse((at, i)));
            }
        }
    }

    fn recycle(&mut self, data: Vec<u8>) {
        if self.spare.len() < SPARE_BUFFERS {
            self.spare.push(data);
        }
    }

    fn next_timer(&mut self) -> Option<Instant> {
        while let Some(&Reverse((t, i))) = self.timers.peek() {
            let sn = &mut self.nodes[i];
            if sn.queued != Some(t) {
                // Superseded by an earlier entry.
                self.timers.pop();
                continue;
            }
            match sn.deadline {
                Some(d) if sn.alive && d <= t => return Some(t),
                Some(d) if sn.alive => {
                    // The deadline moved later: one entry there.
                    self.timers.pop();
                    sn.queued = Some(d);
                    self.timers.push(Reverse((d, i)));
                }
                _ => {
                    self.timers.pop();
                    sn.queued = None;
                }
            }
        }
        None
    }

    /// Processes the next thing that happens, if it happens no later than `limit`. Returns
    /// false when nothing is due by then.
    pub fn step(&mut self, limit: Instant) -> bool {
        let pkt = self.packets.peek().map(|p| p.0.at);
        let tmr = self.next_timer();
        let take_pkt = match (pkt, tmr) {
            (None, None) => return false,
            (Some(p), Some(t)) => p <= t,
            (Some(_), None) => true,
            (None, Some(_)) => false,
        };
        if take_pkt {
            if pkt.expect("some") > limit {
                return false;
            }
            let Reverse(p) = self.packets.pop().expect("peeked");
            self.now = self.now.max(p.at);
            let dest = &self.nodes[p.to];
            if !dest.alive || dest.gen != p.gen {
                self.stats.undeliverable += 1;
                self.recycle(p.data);
                return true;
            }
            let timeout = self.cfg.nat_timeout;
            if let Some(m) = &dest.nat {
                if !m.allows(nat_key(&p.from), self.now, timeout) {
                    self.stats.nat_dropped += 1;
                    self.recycle(p.data);
                    return true;
                }
            }
            if self.cfg.sample_contacts > 0 && p.seq % u64::from(self.cfg.sample_contacts) == 0 {
                self.check_contacts(&p.data);
            }
            self.stats.delivered += 1;
            let now = self.now;
            if self.nodes[p.to].behaviour == Behaviour::Liar {
                self.lie(p.to, p.from, &p.data);
                return true;
            }
            self.nodes[p.to].node.handle_datagram(now, p.from, &p.data);
            self.recycle(p.data);
            self.flush(p.to);
        } else {
            let t = tmr.expect("some");
            if t > limit {
                return false;
            }
            let Reverse((_, i)) = self.timers.pop().expect("peeked");
            self.now = self.now.max(t);
            self.stats.wakeups += 1;
            let now = self.now;
            self.nodes[i].deadline = None;
            self.nodes[i].queued = None;
            self.nodes[i].node.handle_timeout(now);
            self.flush(i);
        }
        true
    }

    /// Runs until virtual time `t` (everything due by then is processed).
    pub fn run_until(&mut self, t: Instant) {
        while self.step(t) {}
        self.now = self.now.max(t);
    }

    /// Runs for `d` of virtual time.
    pub fn run_for(&mut self, d: Duration) {
        let t = self.now + d;
        self.run_until(t);
    }

    /// Runs until every lookup in `wanted` (node index, lookup id) has finished, or until
    /// `timeout` of virtual time has passed. Returns the results found, in `wanted` order
    /// (`None` for lookups that did not finish).
    pub fn run_lookups(
        &mut self,
        wanted: &[(usize, LookupId)],
        timeout: Duration,
    ) -> Vec<Option<LookupResult>> {
        let limit = self.now + timeout;
        let mut results: Vec<Option<LookupResult>> = vec![None; wanted.len()];
        let mut left = wanted.len();
        let mut by_node: HashMap<usize, Vec<usize>> = HashMap::new();
        for (w, (i, _)) in wanted.iter().enumerate() {
            by_node.entry(*i).or_default().push(w);
        }
        let mut check = |sim: &mut Sim, results: &mut Vec<Option<LookupResult>>| {
            for (i, ws) in &by_node {
                for e in &sim.nodes[*i].events {
                    if let Event::LookupFinished(r) = e {
                        for &w in ws {
                            if wanted[w].1 == r.id && results[w].is_none() {
                                results[w] = Some((**r).clone());
                                left -= 1;
                            }
                        }
                    }
                }
            }
            left == 0
        };
        while !check(self, &mut results) {
            // Process in small slices of virtual time so finished lookups are noticed soon.
            let slice = (self.now + Duration::from_millis(200)).min(limit);
            self.run_until(slice);
            if self.now >= limit {
                check(self, &mut results);
                break;
            }
        }
        results
    }

    /// Builds a network of `n` nodes from `cfg`: they join one after another, `spacing`
    /// apart, each bootstrapping through one random node that joined earlier. Returns when the
    /// last node has joined and `settle` more time has passed.
    /// Nodes are of the family `cfg` asks for (see [`Sim::add_node`]) and bootstrap through a
    /// node of that family.
    pub fn grow(&mut self, n: usize, cfg: &Config, spacing: Duration, settle: Duration) {
        self.grow_with_routers(n, 0, cfg, spacing, settle);
    }

    /// [`Sim::grow`], except that every node after the first `routers` also bootstraps
    /// through those first nodes, as real clients join through a few well-known router nodes.
    ///
    /// Under heavy loss, joining through one random earlier node alone can split the network
    /// for good: if the third node loses touch with the first two, everyone who later joins
    /// through either side stays on that side (the hostile lookup bench saw a 10,000-node
    /// network in two parts of 7,355 and 2,645, where no lookup can cross). Shared routers
    /// keep one network, as on the real DHT.
    pub fn grow_with_routers(
        &mut self,
        n: usize,
        routers: usize,
        cfg: &Config,
        spacing: Duration,
        settle: Duration,
    ) {
        let first = self.nodes.len();
        for j in 0..n {
            let mut c = cfg.clone();
            c.seed = 0;
            let i = self.add_node(c);
            let own = self.addr(i);
            let same_family = |n: &SimNode| n.addr.is_ipv6() == own.is_ipv6() || n.addr6.is_some();
            let alive: Vec<usize> = (0..i)
                .filter(|&x| self.nodes[x].alive && same_family(&self.nodes[x]))
                .collect();
            if !alive.is_empty() {
                let pick = alive[self.rng.random_range(0..alive.len())];
                let mut via = vec![self.addr_like(pick, &own).expect("same family")];
                for r in first..(first + routers).min(i) {
                    if r != pick && self.nodes[r].alive && same_family(&self.nodes[r]) {
                        via.extend(self.addr_like(r, &own));
                    }
                }
                self.with_node(i, |node, now| node.bootstrap(now, &via));
            }
            if j + 1 < n {
                self.run_for(spacing);
            }
        }
        self.run_for(settle);
        for i in 0..self.nodes.len() {
            self.nodes[i].events.clear();
            self.nodes[i].event_times.clear();
        }
    }
}

impl Sim {
    /// A liar's answer: eight fake nodes right next to the target, at unused addresses.
    fn lie(&mut self, i: usize, from: SocketAddr, data: &[u8]) {
        use dhtkit_proto::bencode::{Decoder, Limits};
        use dhtkit_proto::krpc::{Body, Message, Method, Response};
        let mut d = Decoder::new(Limits::default());
        let Ok(v) = d.decode(data) else { return };
        let Ok(m) = Message::parse(v) else { return };
        let Body::Query(q) = &m.body else { return };
        let target = match q.method {
            Method::FindNode { target } | Method::SampleInfohashes { target } => target,
            Method::GetPeers { info_hash, .. } => info_hash,
            _ => q.id,
        };
        let v6 = from.is_ipv6();
        let mut nodes = Vec::with_capacity(8 * 38);
        for _ in 0..8 {
            let mut id = target;
            let r: u32 = self.rng.random();
            id.0[16..].copy_from_slice(&r.to_be_bytes());
            let fake: u16 = self.rng.random();
            let ip: IpAddr = if v6 {
                Ipv6Addr::new(0xfd00, 0xfe, 0, 0, 0, 0, 0, fake).into()
            } else {
                Ipv4Addr::new(127, 254, (fake >> 8) as u8, fake as u8).into()
            };
            dhtkit_proto::compact::encode_node(&id, &SocketAddr::new(ip, 6881), &mut nodes);
        }
        let own = self.nodes[i].node.id();
        let token = [7u8; 8];
        let is_get = matches!(q.method, Method::GetPeers { .. });
        let reply = Message {
            tid: m.tid,
            version: None,
            read_only: false,
            ip: None,
            body: Body::Response(Response {
                id: own,
                nodes: (!v6).then_some(&nodes[..]),
                nodes6: v6.then_some(&nodes[..]),
                token: is_get.then_some(&token[..]),
                ..Response::default()
            }),
        }
        .to_bytes();
        let Some(me) = self.addr_like(i, &from) else {
            return;
        };
        let base = self.link_base(&me, &from);
        self.seq += 1;
        if let Some(&to) = self.by_addr.get(&from) {
            self.packets.push(Reverse(Packet {
                at: self.now + base,
                seq: self.seq,
                from: me,
                to,
                gen: self.nodes[to].gen,
                data: reply,
            }));
        }
    }
}

/// The bytes of an address that pick its links' latency: IP and port.
fn link_key(a: &SocketAddr) -> impl Iterator<Item = u8> {
    let mut k = [0u8; 18];
    let n = match a.ip() {
        IpAddr::V4(v4) => {
            k[..4].copy_from_slice(&v4.octets());
            4
        }
        IpAddr::V6(v6) => {
            k[..16].copy_from_slice(&v6.octets());
            16
        }
    };
    k[n..n + 2].copy_from_slice(&a.port().to_be_bytes());
    k.into_iter().take(n + 2)
}

impl Sim {
    /// True if a query sent to `addr` now by a node that never sent to it would be answered:
    /// a live node, not behind NAT, is there.
    pub fn answers_at(&self, addr: &SocketAddr) -> bool {
        self.by_addr
            .get(addr)
            .is_some_and(|&i| self.nodes[i].alive && self.nodes[i].nat.is_none())
    }

    /// Counts the contacts of a `nodes`/`nodes6` reply that nobody would answer.
    fn check_contacts(&mut self, data: &[u8]) {
        use dhtkit_proto::bencode::{Decoder, Limits};
        use dhtkit_proto::krpc::{Body, Message};
        let mut d = Decoder::new(Limits::default());
        let Ok(v) = d.decode(data) else { return };
        let Ok(m) = Message::parse(v) else { return };
        let Body::Response(r) = &m.body else { return };
        let mut contacts = Vec::new();
        if let Some(n) = r.nodes {
            contacts.extend(dhtkit_proto::compact::nodes(n, false));
        }
        if let Some(n) = r.nodes6 {
            contacts.extend(dhtkit_proto::compact::nodes(n, true));
        }
        for (_, a) in contacts {
            self.stats.contacts_checked += 1;
            if !self.answers_at(&a) {
                self.stats.contacts_unreachable += 1;
            }
        }
    }
}

/// The mappings of an address-restricted NAT: the last [`NatMap::SLOTS`] addresses a node
/// sent to, with when (a home router keeps far more, but a DHT node talks to few at once).
struct NatMap {
    slots: [(u32, u32); NatMap::SLOTS],
    next: usize,
}

impl Default for NatMap {
    fn default() -> Self {
        NatMap {
            slots: [(0, 0); NatMap::SLOTS],
            next: 0,
        }
    }
}

impl NatMap {
    const SLOTS: usize = 64;

    fn ms(now: Instant) -> u32 {
        u32::try_from(now.as_millis()).unwrap_or(u32::MAX)
    }

    fn opened(&mut self, key: u32, now: Instant) {
        let t = Self::ms(now);
        if let Some(s) = self.slots.iter_mut().find(|s| s.0 == key && s.1 != 0) {
            s.1 = t.max(1);
            return;
        }
        self.slots[self.next] = (key, t.max(1));
        self.next = (self.next + 1) % Self::SLOTS;
    }

    fn allows(&self, key: u32, now: Instant, timeout: Duration) -> bool {
        let t = Self::ms(now);
        let window = u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX);
        self.slots
            .iter()
            .any(|s| s.0 == key && s.1 != 0 && t.saturating_sub(s.1) <= window)
    }
}

/// The key a NAT mapping is kept under: a hash of the remote address.
fn nat_key(a: &SocketAddr) -> u32 {
    hash_addrs(0x006e_6174, a, None) as u32
}

/// A 64-bit hash of one address (or an ordered pair), seeded.
fn hash_addrs(seed: u64, a: &SocketAddr, b: Option<&SocketAddr>) -> u64 {
    let mut h = seed ^ 0x51_7cc1_b727_220a;
    let bytes = link_key(a).chain(b.into_iter().flat_map(link_key));
    for byte in bytes {
        h = (h ^ byte as u64).wrapping_mul(0x100_0000_01b3);
    }
    // Finalise (splitmix64) so nearby addresses get unrelated values.
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// A standard-normal value from 64 random bits (Box-Muller over two 32-bit halves).
fn normal(bits: u64) -> f64 {
    let u1 = ((bits >> 32) as f64 + 0.5) / 4_294_967_296.0;
    let u2 = ((bits & 0xffff_ffff) as f64 + 0.5) / 4_294_967_296.0;
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}
