//! The live DHT as a crawler meets it, for hours, at a million nodes.
//!
//! A crawl lasts hours of virtual time, and in that time only the crawler's packets matter:
//! the rest of the network answers, it does not need to run. So this model keeps the live
//! model's figures ([`LiveConfig`]: round trips, loss, NAT, Weibull churn, Sybils, the
//! libtorrent share and its BEP 51 rules) but replaces each background node's code with what
//! that code would answer, computed from a global view:
//!
//! - **Population.** Every slot of the network holds a sequence of occupants: the one there
//!   when the crawl starts (the rest of a steady-state session) and, as each leaves, a
//!   newcomer with a fresh id and address. Sybils (many ids per IP) stay.
//! - **Routing tables.** A node asked for `target` answers with what its bucket for `target`
//!   would hold: 8 nodes drawn (the same ones each time, by a seed of the node and the bucket)
//!   from the subtree of the keyspace that bucket covers, or all of them near its own id.
//!   Departed nodes stay in circulation for [`CrawlModelConfig::linger`], NATed nodes always:
//!   they are referred, they never answer.
//! - **Storage.** Every [`CrawlModelConfig::announce_every`] (the announce round), each
//!   infohash with a peer up is stored on the 8 reachable nodes closest to it then; a node
//!   keeps at most 2,000.
//! - **BEP 51.** A libtorrent-like node draws its 20 samples at the first round it is up and
//!   keeps them for 6 hours once full (a sample that is not full is drawn again at the next
//!   round), and answers with `interval` 6 hours, as libtorrent does.
//! - **Peers** are occupants of the network (any of them, NATed too), up for their session.
//!   A metadata fetch from a peer that is up and reachable takes a few round trips; a share
//!   refuse, a share lie (the metadata does not match); a peer that is down or behind NAT
//!   costs a connect timeout.
//!
//! The crawler is the real thing: [`Discovery`] (the tokio crawler's code) drives a real
//! [`Node`] whose datagrams the model answers, so its lookups, timeouts, upkeep and rate
//! limits are the node's own.
//!
//! What the model leaves out: nobody queries or announces to the crawler's node (passive
//! discovery, which only adds to what is found), and nodes do not move in and out of the
//! 8-closest sets between announce rounds.

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use dhtkit_crawl::discovery::{Action, Discovery, DiscoveryConfig, DiscoveryStats, CRAWL_ALPHA};
use dhtkit_proto::bencode::{Decoder, Limits};
use dhtkit_proto::krpc::{self, Body, Message, Response};
use dhtkit_proto::{Config, Event, Id, Instant, Node, RequestOutcome};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::live::{gamma, LiveConfig};
use crate::LogNormalRtt;

/// The crawl model's parameters: the live model's figures and the crawl's own.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CrawlModelConfig {
    /// Nodes up at any time.
    pub nodes: usize,
    /// Infohashes in the network.
    pub infohashes: usize,
    /// Virtual hours the crawl runs.
    pub hours: f64,
    /// Seed of every random choice.
    pub seed: u64,
    /// Round trips (the crawler's to each node and peer).
    pub rtt: LogNormalRtt,
    /// Probability that a datagram is lost, each way.
    pub loss: f64,
    /// Share of nodes behind NAT (referred, never answering).
    pub nat_share: f64,
    /// Weibull shape of session lengths.
    pub session_shape: f64,
    /// Median session length.
    pub session_median: Duration,
    /// Share of nodes that are Sybils.
    pub sybil_share: f64,
    /// Sybil ids per IP.
    pub sybil_ids_per_ip: usize,
    /// Share of ordinary nodes that behave like libtorrent (BEP 51; the others BEP 5 only).
    pub libtorrent_share: f64,
    /// How long a departed node's address stays in others' tables.
    pub linger: Duration,
    /// Nodes an infohash is stored on.
    pub replicas: usize,
    /// Time between announce rounds.
    pub announce_every: Duration,
    /// Infohashes a node stores, at most (libtorrent: 2,000).
    pub store_max: usize,
    /// Samples a BEP 51 node gives (libtorrent: 20).
    pub samples_max: usize,
    /// How long a full sample is kept, and the `interval` given (libtorrent: 6 hours).
    pub sample_interval: Duration,
    /// Mean number of peers of an infohash over the run (at least 1; geometric).
    pub peers_mean: f64,
    /// Round trips a metadata fetch from a willing peer takes (TCP, handshakes, pieces).
    pub fetch_rtts: u32,
    /// Share of peers that refuse a metadata request.
    pub fetch_refuse: f64,
    /// Share of peers that send metadata that does not match the infohash.
    pub fetch_lie: f64,
    /// What a connection to a peer that is down or behind NAT costs.
    pub connect_timeout: Duration,
    /// Routing table size of the crawler's node (as `dhtkit crawl --max-nodes`).
    pub crawler_table: usize,
    /// The crawler's discovery settings (its rate among them).
    pub discovery: DiscoveryConfig,
    /// The strategy: [`Strategy::Discovery`], or a lookup for every infohash as the crawler
    /// did before it, for comparison.
    pub strategy: Strategy,
}

/// Which crawl strategy runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Strategy {
    /// [`Discovery`] as configured.
    Discovery,
    /// As the crawler did before [`Discovery`]: a full `get_peers` lookup for every new
    /// infohash (discovery's walk otherwise).
    Legacy,
}

impl CrawlModelConfig {
    /// The live model's figures ([`LiveConfig::default`]) at `nodes` nodes and `infohashes`
    /// infohashes, for 6 hours, with the crawler's default discovery settings.
    pub fn new(nodes: usize, infohashes: usize) -> CrawlModelConfig {
        let live = LiveConfig::default();
        let mut discovery = DiscoveryConfig::default();
        // The crawler's store remembers every infohash; the model's seen-set stands in for it.
        discovery.seen_capacity = discovery.seen_capacity.max(infohashes + infohashes / 4);
        CrawlModelConfig {
            nodes,
            infohashes,
            hours: 6.0,
            seed: 1,
            rtt: live.rtt,
            loss: live.loss,
            nat_share: live.nat_share,
            session_shape: live.session_shape,
            session_median: live.session_median,
            sybil_share: live.sybil_share,
            sybil_ids_per_ip: live.sybil_ids_per_ip,
            libtorrent_share: live.libtorrent_share,
            linger: Duration::from_secs(15 * 60),
            replicas: 8,
            announce_every: Duration::from_secs(30 * 60),
            store_max: 2000,
            samples_max: 20,
            sample_interval: Duration::from_secs(6 * 3600),
            peers_mean: 3.0,
            fetch_rtts: 4,
            fetch_refuse: 0.1,
            fetch_lie: 0.02,
            connect_timeout: Duration::from_secs(3),
            crawler_table: 1280,
            discovery,
            strategy: Strategy::Discovery,
        }
    }
}

const KIND_PLAIN: u8 = 0;
const KIND_LIBTORRENT: u8 = 1;
const KIND_SYBIL: u8 = 2;
const KIND_ROUTER: u8 = 3;

/// One node's stay in the network.
#[derive(Debug, Clone, Copy)]
struct Occ {
    /// The id's first 64 bits (the rest of the id is derived from the index).
    prefix: u64,
    /// Arrival and departure, in milliseconds from the crawl's start.
    start: i64,
    end: i64,
    /// Its access link's draw for round trips.
    z: f32,
    kind: u8,
    nat: bool,
}

/// Addresses: occupant `i` is at 127.x.y.z for the counter `i + 1`, port 6881; Sybil group
/// `g` shares the address for `SYBIL_BASE + g`, one port per id.
const SYBIL_BASE: u32 = 0x00F0_0000;
const PORT: u16 = 6881;

fn ip_of(n: u32) -> Ipv4Addr {
    Ipv4Addr::new(127, (n >> 16) as u8, (n >> 8) as u8, n as u8)
}

fn counter_of(ip: Ipv4Addr) -> u32 {
    let o = ip.octets();
    ((o[1] as u32) << 16) | ((o[2] as u32) << 8) | o[3] as u32
}

fn mix(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn unit(x: u64) -> f64 {
    (mix(x) >> 11) as f64 / (1u64 << 53) as f64
}

/// A standard normal draw from a hash (Box–Muller).
fn normal_of(x: u64) -> f64 {
    let u1 = 1.0 - unit(x);
    let u2 = unit(x ^ 0x5555_5555_5555_5555);
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

fn ms(d: Duration) -> i64 {
    d.as_millis().min(i64::MAX as u128) as i64
}

/// An id whose first 64 bits are `prefix` and whose last four bytes are `index`.
fn id_from(prefix: u64, index: u32, salt: u64) -> Id {
    let mut b = [0u8; 20];
    b[..8].copy_from_slice(&prefix.to_be_bytes());
    b[8..16].copy_from_slice(&mix(prefix ^ salt).to_be_bytes());
    b[16..].copy_from_slice(&index.to_be_bytes());
    Id(b)
}

fn prefix_of(id: &Id) -> u64 {
    u64::from_be_bytes(id.0[..8].try_into().expect("8 bytes"))
}

fn index_of(id: &Id) -> u32 {
    u32::from_be_bytes(id.0[16..].try_into().expect("4 bytes"))
}

const NODE_SALT: u64 = 0x6e6f_6465;
const IH_SALT: u64 = 0x6968_6173;

/// The network the crawler meets. See the [module docs](self).
pub struct CrawlNet {
    cfg: CrawlModelConfig,
    occs: Vec<Occ>,
    /// Sybil occupants: the first index and how many.
    sybil_first: u32,
    sybils: u32,
    /// Every occupant by id prefix (past, present and future: visibility is checked).
    order: Vec<(u64, u32)>,
    /// Infohash id prefixes.
    ih_prefix: Vec<u64>,
    /// Each infohash's peers (occupants), CSR.
    peer_off: Vec<u32>,
    peers: Vec<u32>,
    /// What each occupant stores since the last announce round, CSR by occupant.
    store_off: Vec<u32>,
    store: Vec<u32>,
    /// The last announce round.
    round_at: i64,
    /// BEP 51 samples: occupant → (drawn at, items).
    samples: HashMap<u32, (i64, Vec<u32>)>,
    /// Infohashes in some reachable BEP 51 node's samples so far.
    reachable: Vec<bool>,
    reachable_count: u64,
    /// The crawler's access link.
    crawler_z: f64,
}

/// What the model counted of the crawl.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct CrawlReport {
    /// Nodes up at any time.
    pub nodes: usize,
    /// Infohashes in the network.
    pub infohashes: usize,
    /// Infohashes an honest crawler could reach: in a reachable BEP 51 node's samples.
    pub reachable: u64,
    /// Discovery's counters.
    pub stats: DiscoveryStats,
    /// Queries the crawler's node sent (discovery's and its own upkeep).
    pub queries_sent: u64,
    /// Reachable BEP 51 nodes up for the whole first hour.
    pub bep51_nodes: u64,
    /// Of those, sampled within the first hour.
    pub bep51_sampled_1h: u64,
    /// Most queries to one IP within one second.
    pub max_qps_one_ip: u32,
    /// Of the contacts in the replies the crawler got, the share that would not answer.
    pub unreachable_share: f64,
    /// (virtual hour, discovered, named, queries) at each hour's end.
    pub hourly: Vec<(f64, u64, u64, u64)>,
}

impl CrawlNet {
    /// Builds the network: occupants for the whole run, peers, and the first announce round.
    pub fn build(cfg: CrawlModelConfig, mut progress: impl FnMut(&str)) -> CrawlNet {
        let mut rng = SmallRng::seed_from_u64(cfg.seed);
        let end_ms = ms(Duration::from_secs_f64(cfg.hours * 3600.0));
        let k = cfg.session_shape;
        let scale = cfg.session_median.as_secs_f64() / std::f64::consts::LN_2.powf(1.0 / k);
        let n_sybil = ((cfg.nodes as f64 * cfg.sybil_share).round() as usize).min(cfg.nodes);
        let routers = 3usize;
        let ordinary = cfg.nodes.saturating_sub(n_sybil + routers);
        let mut occs: Vec<Occ> = Vec::with_capacity(ordinary * 3 / 2 + n_sybil + routers);
        let draw = |rng: &mut SmallRng, kind: u8, nat: bool, start: i64, end: i64| Occ {
            prefix: rng.random(),
            start,
            end,
            z: crate::live::std_normal(rng) as f32,
            kind,
            nat,
        };
        for _ in 0..routers {
            let o = draw(&mut rng, KIND_ROUTER, false, i64::MIN / 4, i64::MAX / 4);
            occs.push(o);
        }
        for _ in 0..ordinary {
            // A node seen at a random moment is in a length-biased session, at a uniform
            // point of it; its successors have fresh sessions.
            let l = scale * gamma(&mut rng, 1.0 + 1.0 / k).powf(1.0 / k);
            let left = l * rng.random::<f64>();
            let mut start = -((l - left) * 1000.0) as i64;
            let mut end = (left * 1000.0) as i64;
            loop {
                let kind = if rng.random_bool(cfg.libtorrent_share.clamp(0.0, 1.0)) {
                    KIND_LIBTORRENT
                } else {
                    KIND_PLAIN
                };
                let nat = rng.random_bool(cfg.nat_share.clamp(0.0, 1.0));
                let o = draw(&mut rng, kind, nat, start, end);
                occs.push(o);
                if end >= end_ms {
                    break;
                }
                start = end;
                let u: f64 = 1.0 - rng.random::<f64>();
                end = start + (scale * (-u.ln()).powf(1.0 / k) * 1000.0).max(1000.0) as i64;
            }
        }
        let sybil_first = occs.len() as u32;
        for _ in 0..n_sybil {
            let o = draw(&mut rng, KIND_SYBIL, false, i64::MIN / 4, i64::MAX / 4);
            occs.push(o);
        }
        assert!(
            (occs.len() as u32) < SYBIL_BASE,
            "too many occupants for the model's address space"
        );
        progress(&format!(
            "{} occupants over {:.1} h ({} ordinary slots, {} Sybils, {} routers)",
            occs.len(),
            cfg.hours,
            ordinary,
            n_sybil,
            routers
        ));
        let mut order: Vec<(u64, u32)> = occs
            .iter()
            .enumerate()
            .map(|(i, o)| (o.prefix, i as u32))
            .collect();
        order.sort_unstable();
        // Infohashes and their peers: ordinary occupants drawn at random, so a torrent lives
        // while one of its peers does.
        let ih_prefix: Vec<u64> = (0..cfg.infohashes).map(|_| rng.random()).collect();
        let mut peer_off = Vec::with_capacity(cfg.infohashes + 1);
        let mut peers = Vec::with_capacity((cfg.infohashes as f64 * cfg.peers_mean) as usize);
        let p_more = 1.0 - 1.0 / cfg.peers_mean.max(1.0);
        let first_ordinary = routers as u32;
        for _ in 0..cfg.infohashes {
            peer_off.push(peers.len() as u32);
            loop {
                peers.push(rng.random_range(first_ordinary..sybil_first.max(first_ordinary + 1)));
                if !rng.random_bool(p_more)
                    || peers.len() - *peer_off.last().unwrap() as usize >= 64
                {
                    break;
                }
            }
        }
        peer_off.push(peers.len() as u32);
        let mut net = CrawlNet {
            crawler_z: normal_of(cfg.seed ^ 0xc4a1),
            reachable: vec![false; cfg.infohashes],
            reachable_count: 0,
            occs,
            sybil_first,
            sybils: n_sybil as u32,
            order,
            ih_prefix,
            peer_off,
            peers,
            store_off: Vec::new(),
            store: Vec::new(),
            round_at: 0,
            samples: HashMap::new(),
            cfg,
        };
        net.announce_round(0);
        progress(&format!(
            "announce round 0: {} stored copies, {} reachable so far",
            net.store.len(),
            net.reachable_count
        ));
        net
    }

    fn addr_of(&self, occ: u32) -> SocketAddr {
        if occ >= self.sybil_first && occ < self.sybil_first + self.sybils {
            let j = occ - self.sybil_first;
            let per = self.cfg.sybil_ids_per_ip.max(1) as u32;
            let ip = ip_of(SYBIL_BASE + j / per);
            SocketAddr::new(IpAddr::V4(ip), PORT + (j % per) as u16)
        } else {
            SocketAddr::new(IpAddr::V4(ip_of(occ + 1)), PORT)
        }
    }

    fn occ_at(&self, addr: &SocketAddr) -> Option<u32> {
        let IpAddr::V4(ip) = addr.ip() else {
            return None;
        };
        if ip.octets()[0] != 127 {
            return None;
        }
        let c = counter_of(ip);
        if c >= SYBIL_BASE {
            let per = self.cfg.sybil_ids_per_ip.max(1) as u32;
            let j = (c - SYBIL_BASE) * per + addr.port().checked_sub(PORT)? as u32;
            return (j < self.sybils).then_some(self.sybil_first + j);
        }
        if addr.port() != PORT || c == 0 {
            return None;
        }
        let i = c - 1;
        (i < self.sybil_first).then_some(i)
    }

    fn node_id(&self, occ: u32) -> Id {
        id_from(self.occs[occ as usize].prefix, occ, NODE_SALT)
    }

    fn ih_id(&self, i: u32) -> Id {
        id_from(self.ih_prefix[i as usize], i, IH_SALT)
    }

    fn ih_index(&self, id: &Id) -> Option<u32> {
        let i = index_of(id);
        ((i as usize) < self.ih_prefix.len() && self.ih_id(i) == *id).then_some(i)
    }

    fn up(&self, occ: u32, t: i64) -> bool {
        let o = &self.occs[occ as usize];
        o.start <= t && t < o.end
    }

    /// In others' tables at `t`: up, or departed less than `linger` ago.
    fn visible(&self, occ: u32, t: i64) -> bool {
        let o = &self.occs[occ as usize];
        o.start <= t && t < o.end.saturating_add(ms(self.cfg.linger))
    }

    /// Answers unsolicited packets at `t`.
    fn answers(&self, occ: u32, t: i64) -> bool {
        self.up(occ, t) && !self.occs[occ as usize].nat
    }

    fn rtt_ms(&self, occ: u32) -> i64 {
        let o = &self.occs[occ as usize];
        let zp = normal_of(occ as u64 ^ 0x9a1d);
        ms(self.cfg.rtt.rtt(self.crawler_z, o.z as f64, zp))
    }

    /// The range of `order` whose prefixes share the first `depth` bits with `key`.
    fn subtree(&self, key: u64, depth: u32) -> (usize, usize) {
        let mask = if depth == 0 {
            0
        } else {
            u64::MAX << (64 - depth.min(64))
        };
        let lo = key & mask;
        let hi = lo | !mask;
        let a = self.order.partition_point(|e| e.0 < lo);
        let b = self.order.partition_point(|e| e.0 <= hi);
        (a, b)
    }

    /// The contacts `occ` gives for `target` at `t`: what its bucket for `target` holds.
    fn contacts(&self, occ: u32, target: &Id, t: i64) -> Vec<u32> {
        let me = self.occs[occ as usize].prefix;
        let tk = prefix_of(target);
        let d = (me ^ tk).leading_zeros().min(63);
        let (a, b) = self.subtree(tk, d + 1);
        let mut out: Vec<u32> = Vec::with_capacity(8);
        if b - a <= 48 {
            out.extend(
                self.order[a..b]
                    .iter()
                    .map(|e| e.1)
                    .filter(|&o| o != occ && self.visible(o, t)),
            );
        } else {
            // The bucket's residents: a fixed pseudo-random sequence of the subtree's nodes,
            // the first 8 in circulation.
            let seed = mix((occ as u64) << 8 | d as u64);
            let n = (b - a) as u64;
            for j in 0..64u64 {
                let pick = self.order[a + (mix(seed.wrapping_add(j)) % n) as usize].1;
                if pick != occ && !out.contains(&pick) && self.visible(pick, t) {
                    out.push(pick);
                    if out.len() == 8 {
                        break;
                    }
                }
            }
        }
        out.sort_unstable_by_key(|&o| self.occs[o as usize].prefix ^ tk);
        out.truncate(8);
        out
    }

    /// An announce round at `t`: every infohash with a peer up is stored on the `replicas`
    /// reachable nodes closest to it; BEP 51 samples are drawn where due.
    fn announce_round(&mut self, t: i64) {
        let storers: Vec<(u64, u32)> = self
            .order
            .iter()
            .copied()
            .filter(|&(_, o)| {
                let oc = &self.occs[o as usize];
                (oc.kind == KIND_PLAIN || oc.kind == KIND_LIBTORRENT) && self.answers(o, t)
            })
            .collect();
        let r = self.cfg.replicas.max(1);
        let mut pairs: Vec<u64> = Vec::with_capacity(self.ih_prefix.len() * r);
        if !storers.is_empty() {
            let w = 24usize.max(r * 3);
            let mut cand: Vec<(u64, u32)> = Vec::with_capacity(2 * w);
            for (i, &p) in self.ih_prefix.iter().enumerate() {
                let (a, b) = (self.peer_off[i] as usize, self.peer_off[i + 1] as usize);
                if !self.peers[a..b].iter().any(|&q| self.up(q, t)) {
                    continue;
                }
                let pos = storers.partition_point(|e| e.0 < p);
                let lo = pos.saturating_sub(w);
                let hi = (pos + w).min(storers.len());
                cand.clear();
                cand.extend(storers[lo..hi].iter().map(|&(q, o)| (q ^ p, o)));
                let take = r.min(cand.len());
                if take < cand.len() {
                    cand.select_nth_unstable(take - 1);
                }
                for &(_, o) in &cand[..take] {
                    pairs.push((o as u64) << 32 | i as u64);
                }
            }
        }
        pairs.sort_unstable();
        let n = self.occs.len();
        let mut off = vec![0u32; n + 1];
        let mut store = Vec::with_capacity(pairs.len());
        let mut at = 0usize;
        for (o, start) in off.iter_mut().enumerate().take(n) {
            *start = store.len() as u32;
            let mut kept = 0;
            while at < pairs.len() && (pairs[at] >> 32) as usize == o {
                if kept < self.cfg.store_max {
                    store.push(pairs[at] as u32);
                    kept += 1;
                }
                at += 1;
            }
        }
        off[n] = store.len() as u32;
        self.store_off = off;
        self.store = store;
        self.round_at = t;
        // BEP 51 samples, libtorrent's way: drawn when due, kept while full and young.
        let interval = ms(self.cfg.sample_interval);
        let max = self.cfg.samples_max;
        for o in 0..n as u32 {
            let oc = self.occs[o as usize];
            if oc.kind != KIND_LIBTORRENT || !self.answers(o, t) {
                continue;
            }
            let stored = &self.store
                [self.store_off[o as usize] as usize..self.store_off[o as usize + 1] as usize];
            let due = match self.samples.get(&o) {
                None => true,
                Some((at, s)) => (s.len() < max && stored.len() > s.len()) || t - at >= interval,
            };
            if !due {
                continue;
            }
            let mut s: Vec<u32> = stored.to_vec();
            let mut rng = SmallRng::seed_from_u64(mix(o as u64 ^ (t as u64) << 20));
            if s.len() > max {
                for j in 0..max {
                    let k = rng.random_range(j..s.len());
                    s.swap(j, k);
                }
                s.truncate(max);
            }
            for &i in &s {
                if !self.reachable[i as usize] {
                    self.reachable[i as usize] = true;
                    self.reachable_count += 1;
                }
            }
            self.samples.insert(o, (t, s));
        }
    }

    fn stored(&self, occ: u32) -> &[u32] {
        &self.store
            [self.store_off[occ as usize] as usize..self.store_off[occ as usize + 1] as usize]
    }

    /// The reply of `occ` at `t` to the query in `data`, if it answers.
    fn answer(&self, occ: u32, data: &[u8], t: i64, dec: &mut Decoder) -> Option<Vec<u8>> {
        let v = dec.decode(data).ok()?;
        let m = Message::parse(v).ok()?;
        let Body::Query(q) = &m.body else {
            return None;
        };
        let oc = &self.occs[occ as usize];
        let mut resp = Response {
            id: self.node_id(occ),
            ..Response::default()
        };
        let mut nodes_buf = Vec::new();
        let mut values: Vec<u8> = Vec::new();
        let mut samples_buf = Vec::new();
        let push_nodes = |target: &Id, buf: &mut Vec<u8>| {
            for c in self.contacts(occ, target, t) {
                dhtkit_proto::compact::encode_node(&self.node_id(c), &self.addr_of(c), buf);
            }
        };
        use dhtkit_proto::krpc::Method;
        match q.method {
            Method::Ping | Method::AnnouncePeer { .. } => {}
            Method::FindNode { target } => push_nodes(&target, &mut nodes_buf),
            Method::GetPeers { info_hash, .. } => {
                resp.token = Some(b"tokn");
                let stored = self
                    .ih_index(&info_hash)
                    .filter(|i| self.stored(occ).binary_search(i).is_ok());
                match stored {
                    Some(i) => {
                        let (a, b) = (
                            self.peer_off[i as usize] as usize,
                            self.peer_off[i as usize + 1] as usize,
                        );
                        for &p in &self.peers[a..b] {
                            if self.up(p, self.round_at) {
                                dhtkit_proto::compact::encode_peer(&self.addr_of(p), &mut values);
                            }
                        }
                        if values.is_empty() {
                            push_nodes(&info_hash, &mut nodes_buf);
                        }
                    }
                    None => push_nodes(&info_hash, &mut nodes_buf),
                }
            }
            Method::SampleInfohashes { target } => {
                push_nodes(&target, &mut nodes_buf);
                if oc.kind == KIND_LIBTORRENT {
                    let s = self.samples.get(&occ).map_or(&[][..], |(_, s)| &s[..]);
                    for &i in s {
                        samples_buf.extend_from_slice(&self.ih_id(i).0);
                    }
                    resp.samples = Some(&samples_buf);
                    resp.num = Some(self.stored(occ).len() as i64);
                    resp.interval = Some(self.cfg.sample_interval.as_secs() as i64);
                }
            }
            _ => {
                let e = Message {
                    tid: m.tid,
                    version: None,
                    read_only: false,
                    ip: None,
                    body: Body::Error(krpc::ErrorBody {
                        code: 204,
                        message: b"Method Unknown",
                    }),
                };
                return Some(e.to_bytes());
            }
        }
        if !nodes_buf.is_empty() {
            resp.nodes = Some(&nodes_buf);
        }
        if !values.is_empty() {
            resp.values = Some(krpc::Values::Compact {
                bytes: &values,
                stride: 6,
            });
        }
        let out = Message {
            tid: m.tid,
            version: None,
            read_only: false,
            ip: None,
            body: Body::Response(resp),
        };
        Some(out.to_bytes())
    }

    /// Infohashes in reachable BEP 51 nodes' samples so far.
    pub fn reachable(&self) -> u64 {
        self.reachable_count
    }
}

/// Something due in the crawl's event queue.
enum Due {
    /// A datagram arrives at the crawler.
    Deliver(SocketAddr, Vec<u8>),
    /// A fetch ends.
    Fetched(Id, bool),
}

struct Queued(Instant, u64, Due);

impl PartialEq for Queued {
    fn eq(&self, o: &Self) -> bool {
        (self.0, self.1) == (o.0, o.1)
    }
}
impl Eq for Queued {}
impl PartialOrd for Queued {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Queued {
    fn cmp(&self, o: &Self) -> Ordering {
        (self.0, self.1).cmp(&(o.0, o.1))
    }
}

/// What a request the crawler's node sends is for.
enum Purpose {
    Sample(SocketAddr),
    Direct(Id, SocketAddr),
}

/// Runs one crawler on `net` for the configured hours; `progress` hears each virtual
/// quarter-hour.
pub fn run_crawl(mut net: CrawlNet, mut progress: impl FnMut(&str)) -> CrawlReport {
    let cfg = net.cfg.clone();
    let end = Instant::ZERO + Duration::from_secs_f64(cfg.hours * 3600.0);
    let mut rng = SmallRng::seed_from_u64(mix(cfg.seed ^ 0xc7a3));
    let mut node_cfg = Config::default();
    node_cfg.seed = rng.random();
    node_cfg.allow_local_addrs = true;
    node_cfg.ipv4 = true;
    node_cfg.ipv6 = false;
    node_cfg.table.max_nodes = cfg.crawler_table;
    node_cfg.alpha = CRAWL_ALPHA;
    node_cfg.max_query_rate = cfg.discovery.rate.max(1);
    node_cfg.max_query_burst = node_cfg.max_query_burst.min(node_cfg.max_query_rate);
    node_cfg.per_dest_rate = 1;
    node_cfg.per_dest_burst = 1;
    node_cfg.strict_dest_limit = true;
    node_cfg.rate_limiter_slots = node_cfg.rate_limiter_slots.max(16_384);
    node_cfg.id = Some(Id::random(&mut rng));
    // Nothing reads them.
    node_cfg.rpc_events = false;
    let mut node = Node::new(node_cfg, Instant::ZERO);
    let mut dcfg = cfg.discovery.clone();
    if cfg.strategy == Strategy::Legacy {
        dcfg = legacy(dcfg);
    }
    let mut disc = Discovery::new(dcfg, mix(cfg.seed ^ 0xd15c), Instant::ZERO);
    let routers: Vec<SocketAddr> = (0..3).map(|i| net.addr_of(i)).collect();
    node.bootstrap(Instant::ZERO, &routers);
    let mut queue: BinaryHeap<Reverse<Queued>> = BinaryHeap::new();
    let mut seq = 0u64;
    let mut dec = Decoder::new(Limits::default());
    let mut purposes: HashMap<u64, Purpose> = HashMap::new();
    let mut lookups: HashMap<u64, (Id, Vec<SocketAddr>)> = HashMap::new();
    // Per destination IP, the send times within the last second.
    let mut recent: HashMap<Ipv4Addr, VecDeque<Instant>> = HashMap::new();
    let mut max_qps = 0u32;
    let mut queries_sent = 0u64;
    let (mut contacts, mut dead_contacts) = (0u64, 0u64);
    let mut sampled_1h: Vec<bool> = vec![false; net.occs.len()];
    let mut next_round = Instant::ZERO + cfg.announce_every;
    let mut next_report = Instant::ZERO + Duration::from_secs(900);
    let mut hourly = Vec::new();
    let mut now = Instant::ZERO;
    let t_ms = |t: Instant| t.as_millis() as i64;
    let loss = cfg.loss.clamp(0.0, 1.0);
    loop {
        // What the node saw, discovery hears.
        while let Some(ev) = node.poll_event() {
            match ev {
                Event::NodeAdded { addr, .. } => disc.heard(now, addr),
                Event::RequestFinished { id, outcome, .. } => {
                    let Some(p) = purposes.remove(&id.0) else {
                        continue;
                    };
                    let reply = match outcome {
                        RequestOutcome::Response(r) => Some(r),
                        _ => None,
                    };
                    if let Some(r) = &reply {
                        let t = t_ms(now);
                        for (_, a) in &r.nodes {
                            contacts += 1;
                            if net.occ_at(a).is_none_or(|o| !net.answers(o, t)) {
                                dead_contacts += 1;
                            }
                        }
                    }
                    let nodes: Vec<SocketAddr> = reply
                        .as_ref()
                        .map(|r| r.nodes.iter().map(|(_, a)| *a).collect())
                        .unwrap_or_default();
                    match (p, reply) {
                        (Purpose::Sample(from), Some(r)) => {
                            let bep51 = r.interval.is_some() || !r.samples.is_empty();
                            if bep51
                                && now.saturating_since(Instant::ZERO) <= Duration::from_secs(3600)
                            {
                                if let Some(o) = net.occ_at(&from) {
                                    sampled_1h[o as usize] = true;
                                }
                            }
                            disc.sample_reply(now, from, &r.samples, r.interval, &nodes);
                        }
                        (Purpose::Sample(from), None) => disc.sample_failed(now, from),
                        (Purpose::Direct(ih, _), Some(r)) => {
                            disc.peers_reply(now, ih, &r.peers, &nodes)
                        }
                        (Purpose::Direct(ih, to), None) => disc.peers_failed(now, ih, to),
                    }
                }
                Event::PeerFound { lookup, peer, .. } => {
                    if let Some((_, peers)) = lookups.get_mut(&lookup.0) {
                        if !peers.contains(&peer) && peers.len() < 64 {
                            peers.push(peer);
                        }
                        // As the tokio crawler: the lookup stops at the first reply with
                        // peers (the rest of that reply's peers are already queued).
                        node.end_lookup(now, lookup);
                    }
                }
                Event::LookupFinished(r) => {
                    if let Some((ih, peers)) = lookups.remove(&r.id.0) {
                        disc.lookup_done(now, ih, &peers, r.queries);
                    }
                }
                _ => {}
            }
        }
        // What discovery wants done now.
        while let Some(a) = disc.poll_action(now) {
            match a {
                Action::Sample { to, target } => {
                    match node.request(now, to, dhtkit_proto::Request::sample_infohashes(target)) {
                        Some(id) => {
                            purposes.insert(id.0, Purpose::Sample(to));
                        }
                        None => disc.not_sent(now, Action::Sample { to, target }),
                    }
                }
                Action::GetPeers { to, info_hash } => {
                    match node.request(now, to, dhtkit_proto::Request::get_peers(info_hash)) {
                        Some(id) => {
                            purposes.insert(id.0, Purpose::Direct(info_hash, to));
                        }
                        None => disc.not_sent(now, Action::GetPeers { to, info_hash }),
                    }
                }
                Action::Lookup { info_hash } => match node.get_peers(now, info_hash) {
                    Some(id) => {
                        lookups.insert(id.0, (info_hash, Vec::new()));
                    }
                    None => {
                        // No lookup slot: it waits for one to end.
                        disc.not_sent(now, Action::Lookup { info_hash });
                        break;
                    }
                },
                Action::Fetch { info_hash, peers } => {
                    let (took, named) = fetch(&net, &cfg, info_hash, &peers, t_ms(now));
                    seq += 1;
                    queue.push(Reverse(Queued(
                        now + Duration::from_millis(took as u64),
                        seq,
                        Due::Fetched(info_hash, named),
                    )));
                }
            }
        }
        // The node's own queries are charged to discovery's budget.
        let own = node.stats().queries_out;
        let theirs = own.saturating_sub(disc.stats().queries + disc.stats().node_queries);
        if theirs > 0 {
            disc.spent(now, theirs as u32);
        }
        // Everything the node wants to send, the model answers (or not).
        while let Some(tx) = node.poll_transmit() {
            let dest = tx.dest;
            queries_sent += 1;
            if let IpAddr::V4(ip) = dest.ip() {
                let q = recent.entry(ip).or_default();
                while q
                    .front()
                    .is_some_and(|&s| now.saturating_since(s) >= Duration::from_secs(1))
                {
                    q.pop_front();
                }
                q.push_back(now);
                max_qps = max_qps.max(q.len() as u32);
                if q.len() > 8 {
                    q.pop_front();
                }
            }
            let Some(occ) = net.occ_at(&dest) else {
                continue;
            };
            let t = t_ms(now);
            if !net.answers(occ, t) || rng.random_bool(loss) || rng.random_bool(loss) {
                continue;
            }
            if let Some(reply) = net.answer(occ, tx.payload, t, &mut dec) {
                let at = now + Duration::from_millis(net.rtt_ms(occ) as u64);
                seq += 1;
                queue.push(Reverse(Queued(at, seq, Due::Deliver(dest, reply))));
            }
        }
        // On to the next thing that happens.
        let mut next = end;
        if let Some(Reverse(q)) = queue.peek() {
            next = next.min(q.0);
        }
        if let Some(t) = node.poll_timeout() {
            next = next.min(t);
        }
        if let Some(t) = disc.next_wake(now) {
            next = next.min(t);
        }
        next = next.min(next_round).min(next_report);
        now = next.max(now);
        if now >= end {
            break;
        }
        if now >= next_report {
            let s = disc.stats();
            progress(&format!(
                "{:>5.2} h: discovered {} of {} reachable, peers {}, named {}, {} queries, {} nodes answered ({} BEP 51)",
                now.as_millis() as f64 / 3.6e6,
                s.discovered,
                net.reachable(),
                s.peers_found,
                s.named,
                queries_sent,
                s.nodes_answered,
                s.bep51_nodes
            ));
            if (now.as_millis() / 900_000).is_multiple_of(4) {
                hourly.push((
                    now.as_millis() as f64 / 3.6e6,
                    s.discovered,
                    s.named,
                    queries_sent,
                ));
            }
            next_report = next_report + Duration::from_secs(900);
        }
        if now >= next_round {
            net.announce_round(t_ms(now));
            next_round = next_round + cfg.announce_every;
        }
        while queue.peek().is_some_and(|Reverse(q)| q.0 <= now) {
            let Reverse(Queued(_, _, due)) = queue.pop().expect("peeked");
            match due {
                Due::Deliver(from, bytes) => node.handle_datagram(now, from, &bytes),
                Due::Fetched(ih, named) => disc.fetch_done(now, ih, named),
            }
        }
        if node.poll_timeout().is_some_and(|t| t <= now) {
            node.handle_timeout(now);
        }
    }
    let s = disc.stats();
    hourly.push((cfg.hours, s.discovered, s.named, queries_sent));
    // BEP 51 nodes that could be sampled at any moment of the first hour.
    let hour = 3_600_000i64;
    let (mut bep51, mut bep51_1h) = (0u64, 0u64);
    for (i, o) in net.occs.iter().enumerate() {
        if o.kind == KIND_LIBTORRENT && !o.nat && o.start <= 0 && o.end >= hour {
            bep51 += 1;
            if sampled_1h[i] {
                bep51_1h += 1;
            }
        }
    }
    CrawlReport {
        nodes: cfg.nodes,
        infohashes: cfg.infohashes,
        reachable: net.reachable(),
        stats: s,
        queries_sent,
        bep51_nodes: bep51,
        bep51_sampled_1h: bep51_1h,
        max_qps_one_ip: max_qps,
        unreachable_share: if contacts > 0 {
            dead_contacts as f64 / contacts as f64
        } else {
            0.0
        },
        hourly,
    }
}

/// The crawler before [`Discovery`], as far as settings express it: no direct get_peers,
/// so every new infohash is looked up.
fn legacy(mut d: DiscoveryConfig) -> DiscoveryConfig {
    d.direct_queue = 0;
    d
}

/// A metadata fetch from `peers` at `t`: how long it takes, and whether it names the
/// torrent.
fn fetch(
    net: &CrawlNet,
    cfg: &CrawlModelConfig,
    ih: Id,
    peers: &[SocketAddr],
    t: i64,
) -> (i64, bool) {
    let Some(i) = net.ih_index(&ih) else {
        return (ms(cfg.connect_timeout), false);
    };
    let (a, b) = (
        net.peer_off[i as usize] as usize,
        net.peer_off[i as usize + 1] as usize,
    );
    let mut took = 0i64;
    for p in peers {
        let Some(o) = net.occ_at(p) else {
            took += ms(cfg.connect_timeout);
            continue;
        };
        let at = t + took;
        if !net.peers[a..b].contains(&o) || !net.answers(o, at) {
            took += ms(cfg.connect_timeout);
            continue;
        }
        let rtt = net.rtt_ms(o);
        let h = mix((i as u64) << 32 | o as u64);
        let u = unit(h);
        if u < cfg.fetch_refuse {
            took += 2 * rtt;
        } else if u < cfg.fetch_refuse + cfg.fetch_lie {
            took += cfg.fetch_rtts as i64 * rtt;
        } else {
            took += cfg.fetch_rtts as i64 * rtt;
            return (took, true);
        }
    }
    (took.max(1), false)
}
