//! The peer store: who announced which infohash to us.
//!
//! Entries expire after a time to live (30 minutes by default). The store is bounded three
//! ways, each configurable: peers per infohash, infohashes, and peers in total. When a bound is
//! hit, the least recently announced entry goes first.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::time::Duration;

use crate::{Id, Instant};

/// Peer-store bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreConfig {
    /// Most infohashes tracked.
    pub max_infohashes: usize,
    /// Most peers per infohash.
    pub max_peers_per_infohash: usize,
    /// Most peers in total.
    pub max_peers: usize,
    /// How long an announce is kept.
    pub ttl: Duration,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            max_infohashes: 20_000,
            max_peers_per_infohash: 200,
            max_peers: 200_000,
            ttl: Duration::from_secs(30 * 60),
        }
    }
}

#[derive(Debug, Clone)]
struct PeerEntry {
    addr: SocketAddr,
    seed: bool,
    key: (Instant, u64),
}

#[derive(Debug, Default, Clone)]
struct Swarm {
    peers: Vec<PeerEntry>,
    key: (Instant, u64),
}

/// The peer store.
#[derive(Debug, Clone)]
pub struct PeerStore {
    cfg: StoreConfig,
    swarms: HashMap<Id, Swarm>,
    /// Every peer by (announce time, sequence): the eviction and expiry order.
    by_age: BTreeMap<(Instant, u64), (Id, SocketAddr)>,
    /// Every infohash by the time of its latest announce.
    swarm_age: BTreeMap<(Instant, u64), Id>,
    seq: u64,
}

impl PeerStore {
    /// An empty store.
    pub fn new(cfg: StoreConfig) -> Self {
        PeerStore {
            cfg,
            swarms: HashMap::new(),
            by_age: BTreeMap::new(),
            swarm_age: BTreeMap::new(),
            seq: 0,
        }
    }

    /// Total peers stored.
    pub fn len(&self) -> usize {
        self.by_age.len()
    }

    /// True if nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.by_age.is_empty()
    }

    /// Number of infohashes with at least one peer.
    pub fn infohashes(&self) -> usize {
        self.swarms.len()
    }

    /// Records that `addr` announced `ih`.
    pub fn announce(&mut self, now: Instant, ih: Id, addr: SocketAddr, seed: bool) {
        if self.cfg.max_peers == 0
            || self.cfg.max_infohashes == 0
            || self.cfg.max_peers_per_infohash == 0
        {
            return;
        }
        self.seq += 1;
        let key = (now, self.seq);
        if !self.swarms.contains_key(&ih) && self.swarms.len() >= self.cfg.max_infohashes {
            if let Some((_, old)) = self.swarm_age.pop_first() {
                self.drop_swarm(&old);
            }
        }
        let swarm = self.swarms.entry(ih).or_default();
        if swarm.key.1 != 0 {
            self.swarm_age.remove(&swarm.key);
        }
        swarm.key = key;
        self.swarm_age.insert(key, ih);
        if let Some(p) = swarm.peers.iter_mut().find(|p| p.addr == addr) {
            self.by_age.remove(&p.key);
            p.key = key;
            p.seed = seed;
            self.by_age.insert(key, (ih, addr));
            return;
        }
        if swarm.peers.len() >= self.cfg.max_peers_per_infohash {
            if let Some(pos) = (0..swarm.peers.len()).min_by_key(|&i| swarm.peers[i].key) {
                let old = swarm.peers.swap_remove(pos);
                self.by_age.remove(&old.key);
            }
        }
        swarm.peers.push(PeerEntry { addr, seed, key });
        self.by_age.insert(key, (ih, addr));
        while self.by_age.len() > self.cfg.max_peers {
            let Some((k, (oih, oaddr))) = self.by_age.pop_first() else {
                break;
            };
            self.remove_peer(&oih, &oaddr, k);
        }
    }

    fn remove_peer(&mut self, ih: &Id, addr: &SocketAddr, key: (Instant, u64)) {
        let Some(s) = self.swarms.get_mut(ih) else {
            return;
        };
        if let Some(pos) = s.peers.iter().position(|p| p.addr == *addr && p.key == key) {
            s.peers.swap_remove(pos);
        }
        if s.peers.is_empty() {
            self.swarm_age.remove(&s.key);
            self.swarms.remove(ih);
        }
    }

    fn drop_swarm(&mut self, ih: &Id) {
        if let Some(s) = self.swarms.remove(ih) {
            for p in s.peers {
                self.by_age.remove(&p.key);
            }
        }
    }

    /// Drops every announce older than the time to live.
    pub fn expire(&mut self, now: Instant) {
        while let Some((&k, _)) = self.by_age.first_key_value() {
            if now.saturating_since(k.0) < self.cfg.ttl {
                break;
            }
            let (k, (ih, addr)) = self.by_age.pop_first().expect("non-empty");
            self.remove_peer(&ih, &addr, k);
        }
    }

    /// Appends up to `max` compact peers for `ih` of the same address family as `v6` to `out`,
    /// most recent first; with `noseed`, seeds are left out. Returns how many were written.
    pub fn peers_compact(
        &self,
        ih: &Id,
        v6: bool,
        noseed: bool,
        max: usize,
        out: &mut Vec<u8>,
    ) -> usize {
        let Some(s) = self.swarms.get(ih) else {
            return 0;
        };
        let mut n = 0;
        for p in s.peers.iter().rev() {
            if n >= max {
                break;
            }
            if p.addr.is_ipv6() != v6 || (noseed && p.seed) {
                continue;
            }
            crate::compact::encode_peer(&p.addr, out);
            n += 1;
        }
        n
    }

    /// BEP 33: bloom filters of the IPs stored for `ih`, seeds and the others; `None` if
    /// `ih` is not stored.
    pub fn scrape(&self, ih: &Id) -> Option<(crate::scrape::Bloom, crate::scrape::Bloom)> {
        let s = self.swarms.get(ih)?;
        let (mut seeds, mut peers) = Default::default();
        for p in &s.peers {
            let f: &mut crate::scrape::Bloom = if p.seed { &mut seeds } else { &mut peers };
            f.insert(p.addr.ip());
        }
        Some((seeds, peers))
    }

    /// The peers stored for `ih`.
    pub fn peers(&self, ih: &Id) -> impl Iterator<Item = SocketAddr> + '_ {
        self.swarms
            .get(ih)
            .into_iter()
            .flat_map(|s| s.peers.iter().map(|p| p.addr))
    }

    /// Up to `max` stored infohashes, most recently announced first (for BEP 51 samples).
    pub fn sample(&self, max: usize) -> impl Iterator<Item = Id> + '_ {
        self.swarm_age.values().rev().take(max).copied()
    }

    /// Up to `max` infohashes drawn uniformly at random (reservoir sampling: one pass over
    /// the stored infohashes, at most `max` kept).
    pub fn sample_random(&self, max: usize, rng: &mut impl rand::Rng) -> Vec<Id> {
        let mut out: Vec<Id> = Vec::with_capacity(max.min(self.swarm_age.len()));
        if max == 0 {
            return out;
        }
        for (seen, ih) in self.swarm_age.values().enumerate() {
            if out.len() < max {
                out.push(*ih);
            } else {
                let j = rng.random_range(0..=seen);
                if j < max {
                    out[j] = *ih;
                }
            }
        }
        out
    }

    /// Checks that the indexes agree with the swarms.
    pub fn check_invariants(&self) -> Result<(), String> {
        let total: usize = self.swarms.values().map(|s| s.peers.len()).sum();
        if total != self.by_age.len() {
            return Err(format!(
                "{total} peers but {} in age index",
                self.by_age.len()
            ));
        }
        if self.swarms.len() != self.swarm_age.len() {
            return Err("swarm index out of sync".into());
        }
        if total > self.cfg.max_peers || self.swarms.len() > self.cfg.max_infohashes {
            return Err("bound exceeded".into());
        }
        if self
            .swarms
            .values()
            .any(|s| s.peers.len() > self.cfg.max_peers_per_infohash)
        {
            return Err("per-infohash bound exceeded".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn p(i: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, (i >> 8) as u8, i as u8], 1000 + i))
    }

    #[test]
    fn expiry_and_bounds() {
        let cfg = StoreConfig {
            max_infohashes: 2,
            max_peers_per_infohash: 2,
            max_peers: 3,
            ttl: Duration::from_secs(60),
        };
        let mut s = PeerStore::new(cfg);
        let t0 = Instant::ZERO;
        s.announce(t0, Id([1; 20]), p(1), false);
        s.announce(t0, Id([1; 20]), p(2), false);
        s.announce(t0, Id([1; 20]), p(3), false); // evicts p(1)
        assert_eq!(s.peers(&Id([1; 20])).collect::<Vec<_>>().len(), 2);
        assert!(!s.peers(&Id([1; 20])).any(|a| a == p(1)));
        s.announce(t0, Id([2; 20]), p(4), false);
        s.announce(t0, Id([3; 20]), p(5), false); // third infohash evicts the oldest swarm
        assert_eq!(s.infohashes(), 2);
        s.check_invariants().unwrap();
        s.expire(t0 + Duration::from_secs(61));
        assert!(s.is_empty());
        s.check_invariants().unwrap();
    }

    #[test]
    fn reannounce_refreshes() {
        let mut s = PeerStore::new(StoreConfig {
            ttl: Duration::from_secs(60),
            ..StoreConfig::default()
        });
        s.announce(Instant::ZERO, Id([1; 20]), p(1), false);
        s.announce(
            Instant::ZERO + Duration::from_secs(50),
            Id([1; 20]),
            p(1),
            true,
        );
        s.expire(Instant::ZERO + Duration::from_secs(70));
        assert_eq!(s.len(), 1);
        let mut out = Vec::new();
        assert_eq!(s.peers_compact(&Id([1; 20]), false, true, 10, &mut out), 0);
        assert_eq!(s.peers_compact(&Id([1; 20]), false, false, 10, &mut out), 1);
    }

    proptest! {
        #[test]
        fn bounded_under_random_announces(ops in proptest::collection::vec((0u8..20, 0u16..50, 0u16..200), 1..500)) {
            let cfg = StoreConfig { max_infohashes: 7, max_peers_per_infohash: 5, max_peers: 20, ttl: Duration::from_secs(100) };
            let mut s = PeerStore::new(cfg);
            let mut now = Instant::ZERO;
            for (ih, peer, dt) in ops {
                now = now + Duration::from_secs(dt as u64 / 4);
                s.announce(now, Id([ih; 20]), p(peer), peer % 2 == 0);
                if dt % 7 == 0 { s.expire(now); }
                prop_assert!(s.check_invariants().is_ok(), "{:?}", s.check_invariants());
            }
        }
    }
}
