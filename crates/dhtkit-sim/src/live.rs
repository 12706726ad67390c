//! A model of the live Mainline DHT: heavy-tailed round trips, NAT, Weibull churn, Sybils and
//! node kinds, at the scale of the real network.
//!
//! Every part is a field of [`LiveConfig`], with defaults from measurements of the live DHT:
//!
//! - round trips per pair of nodes, log-normal with median 100 ms and p90 300 ms, and 1% of
//!   datagrams lost ([`LogNormalRtt`]);
//! - a share of nodes behind address-restricted NATs ([`Sim::set_nat`]): they query and are
//!   kept by the nodes they talk to, but nobody those nodes tell about them can reach them,
//!   so about half of the contacts in `nodes` replies never answer (the8472/mldht's notes);
//! - sessions Weibull-distributed with shape 0.5 and median 200 minutes (many short sessions,
//!   a long tail: pkarr-churn's survival of 0.86 after an hour and 0.39 after a day), each
//!   departure followed by an arrival at a new address, so the population stays steady while
//!   departed nodes' addresses linger in tables until upkeep evicts them;
//! - 3% Sybil nodes, many ids on one IP, storing nothing (Wang & Kangasharju, 2012), and
//!   optional liars ([`Behaviour::Liar`]);
//! - node kinds: 60% behave as libtorrent: a small peer store (2,000 infohashes), BEP 51
//!   samples held 6 hours, and BEP 44 items kept until the store needs the room (700
//!   items); the rest are BEP 5 only (no samples, no items).
//!
//! The network is built in one go, settled: every node's routing table is filled from a
//! global view of the ids as a table that has run for a while would be, instead of a million
//! joins one after another: each node is told of `heard_per_bucket` nodes drawn from each
//! bucket's range of the keyspace, as if each had answered it with its round trip, and its
//! own table rules decide which it keeps (the first k that fit, or the fastest with
//! round-trip replacement). The population at the start is the steady state of the
//! churn: each node has already been up for part of a length-biased session.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use dhtkit_proto::{Config, Id, Instant};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::net::{Behaviour, Latency, LogNormalRtt, Sim, SimConfig};

/// The live-network model's parameters. `LiveConfig::default()` is the live DHT as measured
/// (see the module documentation), at 10,000 nodes.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct LiveConfig {
    /// Nodes alive at any time (routers and Sybils included).
    pub nodes: usize,
    /// Seed of every random choice.
    pub seed: u64,
    /// Round trips between pairs of nodes.
    pub rtt: LogNormalRtt,
    /// Probability that a datagram is lost.
    pub loss: f64,
    /// Share of nodes behind an address-restricted NAT.
    pub nat_share: f64,
    /// How long a NAT keeps a mapping open after the node last sent to an address.
    pub nat_timeout: Duration,
    /// Weibull shape of session lengths (below 1: many short sessions, a long tail).
    pub session_shape: f64,
    /// Median session length.
    pub session_median: Duration,
    /// Share of nodes that are Sybils: many ids per IP, no peer store.
    pub sybil_share: f64,
    /// Sybil ids per IP.
    pub sybil_ids_per_ip: usize,
    /// Share of nodes that lie ([`Behaviour::Liar`]).
    pub liar_share: f64,
    /// Share of nodes that behave like libtorrent (a store of 2,000 infohashes, 20 BEP 51
    /// samples held for 6 hours); the other ordinary nodes are BEP 5 only.
    pub libtorrent_share: f64,
    /// Router nodes: never leave, never behind NAT; arrivals bootstrap through them.
    pub routers: usize,
    /// Check one `nodes` reply in this many for unreachable contacts (see
    /// [`SimConfig::sample_contacts`]).
    pub sample_contacts: u32,
    /// Nodes of each bucket's range a node has verified when the network starts (its table
    /// keeps k of them, by its own rules). A node that has run for a while has heard from
    /// many more nodes of its far buckets than fit in them.
    pub heard_per_bucket: usize,
    /// Slots of each node's per-destination send limiter (8 bytes each; the node default is
    /// 1,024, sized for a busy public node: a simulated node of a million sends to few
    /// destinations at once, and the limiter's memory is most of an idle node's).
    pub limiter_slots: usize,
    /// The configuration every node runs (its seed and addresses are set per node).
    pub node: Config,
}

impl Default for LiveConfig {
    fn default() -> Self {
        LiveConfig {
            nodes: 10_000,
            seed: 1,
            rtt: LogNormalRtt {
                median: Duration::from_millis(100),
                p90: Duration::from_millis(300),
            },
            loss: 0.01,
            nat_share: 0.5,
            nat_timeout: Duration::from_secs(120),
            session_shape: 0.5,
            session_median: Duration::from_secs(200 * 60),
            sybil_share: 0.03,
            sybil_ids_per_ip: 50,
            liar_share: 0.0,
            libtorrent_share: 0.6,
            routers: 3,
            sample_contacts: 50,
            heard_per_bucket: 32,
            limiter_slots: 128,
            node: Config::default(),
        }
    }
}

/// The kind of a node in the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Kind {
    /// A bootstrap router: never leaves.
    Router,
    /// An ordinary BEP 5-only node with the default peer store: it answers
    /// `sample_infohashes` like a `find_node`, without samples.
    Plain,
    /// A node that behaves like libtorrent: a store of at most 2,000 infohashes, and BEP 51
    /// samples of at most 20 held for 6 hours.
    Libtorrent,
    /// One of many ids on one IP; stores nothing.
    Sybil,
}

/// What the model has seen of churn so far.
#[derive(Debug, Clone, Default)]
pub struct ChurnStats {
    /// Nodes that left (each replaced by an arrival).
    pub departures: u64,
    /// Lengths of the sessions that ended, in minutes (at most [`ChurnStats::MAX_KEPT`]).
    pub ended_min: Vec<f32>,
}

impl ChurnStats {
    /// Most session lengths kept for the median.
    pub const MAX_KEPT: usize = 1_000_000;

    /// The median length of the sessions that ended, in minutes.
    pub fn median_min(&self) -> Option<f64> {
        let mut v = self.ended_min.clone();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f32::total_cmp);
        Some(v[v.len() / 2] as f64)
    }
}

/// The live network: a [`Sim`] plus the churn that runs it.
pub struct Live {
    /// The network itself.
    pub sim: Sim,
    cfg: LiveConfig,
    rng: SmallRng,
    kinds: Vec<Kind>,
    /// When each slot's node arrived, in ms of virtual time (negative: before the start).
    arrived_ms: Vec<i64>,
    /// (when, slot, generation) of the next departures.
    departures: BinaryHeap<Reverse<(Instant, u32, u32)>>,
    next_ip: u32,
    churn: ChurnStats,
    /// Each kind's node settings, one copy for all its nodes (by `Kind as usize`).
    configs: [Arc<Config>; 4],
}

/// First address counter of Sybil IPs (127.240.0.0 and up), apart from ordinary nodes'.
const SYBIL_IP_BASE: u32 = 0xF0_0000;

impl Live {
    /// Builds the network, settled, at virtual time zero. `progress` is called now and then
    /// with what is being done.
    pub fn build(cfg: LiveConfig, mut progress: impl FnMut(&str)) -> Live {
        let sim = Sim::new(SimConfig {
            seed: cfg.seed,
            latency: Latency::fixed(Duration::ZERO),
            loss: cfg.loss,
            lognormal: Some(cfg.rtt),
            sample_contacts: cfg.sample_contacts,
            nat_timeout: cfg.nat_timeout,
            ..SimConfig::default()
        });
        let mut live = Live {
            sim,
            rng: SmallRng::seed_from_u64(cfg.seed ^ 0x11fe),
            kinds: Vec::with_capacity(cfg.nodes),
            arrived_ms: Vec::with_capacity(cfg.nodes),
            departures: BinaryHeap::with_capacity(cfg.nodes),
            next_ip: 1,
            churn: ChurnStats::default(),
            configs: [Kind::Router, Kind::Plain, Kind::Libtorrent, Kind::Sybil]
                .map(|k| Arc::new(node_config(&cfg, k))),
            cfg,
        };
        let n = live.cfg.nodes;
        live.sim.reserve(n);
        let sybils = (n as f64 * live.cfg.sybil_share.clamp(0.0, 1.0)) as usize;
        let honest = n - sybils.min(n.saturating_sub(live.cfg.routers));
        for i in 0..n {
            let kind = if i < live.cfg.routers {
                Kind::Router
            } else if i >= honest {
                Kind::Sybil
            } else if live
                .rng
                .random_bool(live.cfg.libtorrent_share.clamp(0.0, 1.0))
            {
                Kind::Libtorrent
            } else {
                Kind::Plain
            };
            let addr = if kind == Kind::Sybil {
                let j = i - honest;
                let per = live.cfg.sybil_ids_per_ip.max(1);
                let ip = SYBIL_IP_BASE + (j / per) as u32;
                SocketAddr::new(ip_of(ip).into(), 6881 + (j % per) as u16)
            } else {
                live.fresh_addr()
            };
            let idx = live
                .sim
                .add_node_shared(&live.configs[kind as usize], &[addr]);
            debug_assert_eq!(idx, i);
            live.kinds.push(kind);
            live.place(i, kind, true);
            if i % 100_000 == 99_999 {
                progress(&format!("{} nodes created", i + 1));
            }
        }
        progress("filling routing tables");
        live.fill_tables(&mut progress);
        live
    }

    /// The model's parameters.
    pub fn config(&self) -> &LiveConfig {
        &self.cfg
    }

    /// Node `i`'s kind.
    pub fn kind(&self, i: usize) -> Kind {
        self.kinds[i]
    }

    /// Churn so far.
    pub fn churn(&self) -> &ChurnStats {
        &self.churn
    }

    /// Indices of the nodes up now that are not routers, Sybils or liars (what a test picks
    /// lookups and announces from).
    pub fn ordinary(&self) -> Vec<usize> {
        (0..self.kinds.len())
            .filter(|&i| matches!(self.kinds[i], Kind::Plain | Kind::Libtorrent))
            .filter(|&i| self.sim.is_alive(i))
            .collect()
    }

    fn fresh_addr(&mut self) -> SocketAddr {
        let n = self.next_ip;
        self.next_ip += 1;
        assert!(n < SYBIL_IP_BASE, "address space of the model exhausted");
        SocketAddr::new(ip_of(n).into(), 6881)
    }

    /// Draws slot `i`'s NAT, behaviour and session (the residual of a steady-state session
    /// when `initial`, a fresh one otherwise).
    fn place(&mut self, i: usize, kind: Kind, initial: bool) {
        let now_ms = self.sim.now().as_millis() as i64;
        if kind == Kind::Router {
            self.arrived_ms.push(now_ms);
            return;
        }
        if self.rng.random_bool(self.cfg.nat_share.clamp(0.0, 1.0)) {
            self.sim.set_nat(i, true);
        }
        if self.rng.random_bool(self.cfg.liar_share.clamp(0.0, 1.0)) {
            self.sim.set_behaviour(i, Behaviour::Liar);
        }
        let (age, left) = if initial {
            let l = self.length_biased_session();
            let left = l * self.rng.random::<f64>();
            (l - left, left)
        } else {
            (0.0, self.session())
        };
        let arrived = now_ms - (age * 1000.0) as i64;
        if i < self.arrived_ms.len() {
            self.arrived_ms[i] = arrived;
        } else {
            self.arrived_ms.push(arrived);
        }
        let at = self.sim.now() + Duration::from_secs_f64(left.min(1e9));
        self.departures
            .push(Reverse((at, i as u32, self.sim.generation(i))));
    }

    /// Weibull scale λ from the median: median = λ (ln 2)^(1/k).
    fn scale_secs(&self) -> f64 {
        let k = self.cfg.session_shape;
        self.cfg.session_median.as_secs_f64() / std::f64::consts::LN_2.powf(1.0 / k)
    }

    /// A session length in seconds: Weibull(k, λ).
    fn session(&mut self) -> f64 {
        let u: f64 = 1.0 - self.rng.random::<f64>();
        self.scale_secs() * (-u.ln()).powf(1.0 / self.cfg.session_shape)
    }

    /// The length of the session a node seen at a random moment is in: length-biased, so
    /// (L/λ)^k is Gamma(1 + 1/k) distributed.
    fn length_biased_session(&mut self) -> f64 {
        let k = self.cfg.session_shape;
        let g = gamma(&mut self.rng, 1.0 + 1.0 / k);
        self.scale_secs() * g.powf(1.0 / k)
    }

    /// Fills every node's routing table from the global view of ids.
    fn fill_tables(&mut self, progress: &mut impl FnMut(&str)) {
        let n = self.kinds.len();
        // Everything a table is filled from, sorted by id, one cache line per node (reading
        // the nodes themselves would be a cache miss per candidate).
        let mut ids: Vec<Known> = (0..n)
            .map(|i| {
                let addr = self.sim.addr(i);
                Known {
                    id: self.sim.node(i).id(),
                    idx: i as u32,
                    z: self.sim.link_z(&addr),
                    addr,
                }
            })
            .collect();
        ids.sort_unstable_by_key(|e| e.id);
        let mut me_of = vec![0u32; n];
        for (pos, e) in ids.iter().enumerate() {
            me_of[e.idx as usize] = pos as u32;
        }
        let k = self.cfg.node.table.k;
        let heard = self.cfg.heard_per_bucket.max(k);
        let seed = self.rng.random::<u64>();
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        // Each node's picks come from an RNG of its own, so the tables are the same whatever
        // the number of threads.
        self.sim.par_with_nodes(threads, |links, i, node, now| {
            let me = ids[me_of[i] as usize];
            let mut rng =
                SmallRng::seed_from_u64(seed ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
            let mut picks = Vec::new();
            oracle_picks(&ids, &me.id, k, heard, &mut rng, &mut picks);
            let entries: Vec<_> = picks
                .iter()
                .map(|p| {
                    (
                        p.id,
                        p.addr,
                        Some(links.rtt_given(&me.addr, me.z, &p.addr, p.z)),
                    )
                })
                .collect();
            node.import_verified(now, &entries);
            // Table events only (nodes added and displaced), which the model does not keep:
            // dropped here rather than queued for a whole block of nodes.
            while node.poll_event().is_some() {}
        });
        progress(&format!("{n} tables filled on {threads} threads"));
    }

    /// Runs the network, churn included, until virtual time `t`.
    pub fn run_until(&mut self, t: Instant) {
        while let Some(&Reverse((at, i, gen))) = self.departures.peek() {
            if at > t {
                break;
            }
            self.departures.pop();
            if self.sim.generation(i as usize) != gen {
                continue;
            }
            self.sim.run_until(at);
            self.depart_and_replace(i as usize);
        }
        self.sim.run_until(t);
    }

    /// Runs for `d` of virtual time.
    pub fn run_for(&mut self, d: Duration) {
        let t = self.sim.now() + d;
        self.run_until(t);
    }

    fn depart_and_replace(&mut self, i: usize) {
        let now_ms = self.sim.now().as_millis() as i64;
        self.churn.departures += 1;
        if self.churn.ended_min.len() < ChurnStats::MAX_KEPT {
            let mins = (now_ms - self.arrived_ms[i]) as f64 / 60_000.0;
            self.churn.ended_min.push(mins as f32);
        }
        // A newcomer takes the slot, at a new address; a Sybil comes back as a Sybil.
        let kind = match self.kinds[i] {
            Kind::Sybil => Kind::Sybil,
            _ if self
                .rng
                .random_bool(self.cfg.libtorrent_share.clamp(0.0, 1.0)) =>
            {
                Kind::Libtorrent
            }
            _ => Kind::Plain,
        };
        let addr = if kind == Kind::Sybil {
            // Same IP block, a port of its own.
            let old = self.sim.addr(i);
            let mut a = old;
            for p in 1..=u16::MAX {
                a.set_port(old.port().wrapping_add(p).max(1024));
                if self.sim.index_of(&a).is_none() {
                    break;
                }
            }
            a
        } else {
            self.fresh_addr()
        };
        self.sim
            .replace_node_shared(i, &self.configs[kind as usize], addr);
        self.kinds[i] = kind;
        self.place(i, kind, false);
        // Bootstrap through the routers and one node a client might remember.
        let mut via: Vec<SocketAddr> = (0..self.cfg.routers.min(self.kinds.len()))
            .map(|r| self.sim.addr(r))
            .collect();
        let other = self.rng.random_range(0..self.kinds.len());
        if other != i && self.sim.answers_at(&self.sim.addr(other)) {
            via.push(self.sim.addr(other));
        }
        self.sim.with_node(i, |node, now| node.bootstrap(now, &via));
    }
}

/// A node as the table filling sees it.
#[derive(Debug, Clone, Copy)]
struct Known {
    id: Id,
    idx: u32,
    /// Its link's draw ([`Sim::link_z`]).
    z: f64,
    addr: SocketAddr,
}

/// 127.a.b.c from a 24-bit counter.
fn ip_of(n: u32) -> Ipv4Addr {
    Ipv4Addr::new(127, (n >> 16) as u8, (n >> 8) as u8, n as u8)
}

/// Bit `bit` of an id (0 = most significant).
fn bit(id: &Id, bit: usize) -> bool {
    id.0[bit / 8] & (0x80 >> (bit % 8)) != 0
}

/// The node settings of `kind` in the model `cfg` (IPv4 only, local addresses allowed: the
/// model's addresses are in 127.0.0.0/8).
fn node_config(cfg: &LiveConfig, kind: Kind) -> Config {
    let mut c = cfg.node.clone();
    c.seed = 0;
    c.allow_local_addrs = true;
    c.ipv4 = true;
    c.ipv6 = false;
    c.rate_limiter_slots = cfg.limiter_slots;
    // Nothing reads them (the simulator keeps only lookup and request outcomes).
    c.rpc_events = false;
    match kind {
        Kind::Sybil => {
            c.store = None;
            c.samples = None;
        }
        Kind::Libtorrent => {
            if let Some(s) = c.store.as_mut() {
                s.max_infohashes = 2_000;
            }
            c.samples = Some(dhtkit_proto::SampleConfig::libtorrent());
            // libtorrent keeps BEP 44 items until it needs the room (`dht_item_lifetime` 0,
            // `dht_max_dht_items` 700, the least recently announced evicted first).
            let mut items = dhtkit_proto::items::ItemConfig::default();
            items.max_items = 700;
            items.lifetime = Duration::from_secs(365 * 24 * 3600);
            c.items = Some(items);
        }
        Kind::Plain => {
            // BEP 5 only: no samples, no items (`get` without a token, `put` refused).
            c.samples = None;
            c.items = None;
        }
        Kind::Router => {}
    }
    c
}

/// What a settled node around `own` has heard from: for each bucket depth, up to `heard`
/// nodes drawn at random from the ids sharing exactly that many leading bits with `own`, and
/// every node of the deepest range once at most `k` are left. `ids` is sorted by id.
fn oracle_picks(
    ids: &[Known],
    own: &Id,
    k: usize,
    heard: usize,
    rng: &mut SmallRng,
    out: &mut Vec<Known>,
) {
    let (mut lo, mut hi) = (0usize, ids.len());
    for depth in 0..160 {
        // Within ids[lo..hi] every id shares `depth` bits with ours; split on the next bit.
        let mid = lo + ids[lo..hi].partition_point(|e| !bit(&e.id, depth));
        let (same, other) = if bit(own, depth) {
            ((mid, hi), (lo, mid))
        } else {
            ((lo, mid), (mid, hi))
        };
        let span = other.1 - other.0;
        if span <= heard {
            // All of them, in random order (the order they answered in).
            let start = out.len();
            out.extend_from_slice(&ids[other.0..other.1]);
            for j in (start + 1..out.len()).rev() {
                let r = start + rng.random_range(0..=j - start);
                out.swap(j, r);
            }
        } else {
            // `heard` distinct draws (rejection is cheap while `heard` is small next to span).
            let start = out.len();
            while out.len() - start < heard {
                let e = ids[other.0 + rng.random_range(0..span)];
                if !out[start..].iter().any(|o| o.idx == e.idx) {
                    out.push(e);
                }
            }
        }
        (lo, hi) = same;
        if hi - lo <= k + 1 {
            out.extend(ids[lo..hi].iter().filter(|e| e.id != *own));
            return;
        }
    }
}

/// A Gamma(shape, 1) draw (Marsaglia and Tsang, for shape ≥ 1).
pub(crate) fn gamma(rng: &mut SmallRng, shape: f64) -> f64 {
    let d = shape - 1.0 / 3.0;
    let c = 1.0 / (9.0 * d).sqrt();
    loop {
        let (x, v) = loop {
            let x = std_normal(rng);
            let v = 1.0 + c * x;
            if v > 0.0 {
                break (x, v * v * v);
            }
        };
        let u: f64 = rng.random();
        if u < 1.0 - 0.0331 * x.powi(4) || u.ln() < 0.5 * x * x + d * (1.0 - v + v.ln()) {
            return d * v;
        }
    }
}

pub(crate) fn std_normal(rng: &mut SmallRng) -> f64 {
    let u1: f64 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gamma_has_its_mean() {
        let mut rng = SmallRng::seed_from_u64(3);
        let n = 20_000;
        let mean = (0..n).map(|_| gamma(&mut rng, 3.0)).sum::<f64>() / n as f64;
        assert!((mean - 3.0).abs() < 0.1, "{mean}");
    }

    #[test]
    fn oracle_fills_buckets_from_their_ranges() {
        let mut rng = SmallRng::seed_from_u64(4);
        let addr = SocketAddr::from(([127, 0, 0, 1], 1));
        let mut ids: Vec<Known> = (0..5000)
            .map(|idx| Known {
                id: Id::random(&mut rng),
                idx,
                z: 0.0,
                addr,
            })
            .collect();
        ids.sort_unstable_by_key(|e| e.id);
        let own = ids[1234].id;
        let mut out = Vec::new();
        oracle_picks(&ids, &own, 8, 8, &mut rng, &mut out);
        let mut per_depth = [0usize; 161];
        for e in &out {
            per_depth[own.common_prefix(&e.id).min(160)] += 1;
        }
        // log2(5000/8) ≈ 9 full buckets, then the few nodes closest to us.
        for (d, &c) in per_depth.iter().enumerate().take(8) {
            assert_eq!(c, 8, "bucket {d}");
        }
        assert!(
            !out.iter().any(|e| e.idx == ids[1234].idx),
            "never ourselves"
        );
        let closest = crate::true_closest(ids.iter().map(|e| e.id).filter(|i| *i != own), &own, 8);
        for c in closest {
            assert!(out.iter().any(|e| e.id == c), "the 8 closest are all known");
        }
    }
}
