//! The live-DHT scenario: build the live model, run it under churn, announce infohashes from
//! random live nodes, look each up from another, and measure what the lookups saw. The
//! `live` example prints its [`Report`] as JSON; a test runs it at 100,000 nodes.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::Duration;

use dhtkit_proto::{Event, Id, Instant, LookupId};
use rand::{Rng, SeedableRng};

use crate::{Live, LiveConfig};

/// What a scenario run measured (times in milliseconds of virtual time).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Report {
    /// Nodes alive at the end.
    pub nodes: usize,
    /// Lookups run.
    pub lookups: usize,
    /// Lookups that found the announcer.
    pub found: usize,
    /// Time to the announcer, per lookup, sorted; `None` (not found) sorts last.
    pub first_peer_ms: Vec<Option<f64>>,
    /// Time to the lookup's end, sorted likewise.
    pub done_ms: Vec<Option<f64>>,
    /// Mean queries per finished lookup.
    pub msgs_per_lookup: f64,
    /// One node's `Stats::dht_size_estimate` after 32 find_node lookups for random targets.
    pub size_estimate: Option<u64>,
    /// Share of the contacts in sampled `nodes` replies that never answer.
    pub unreachable_share: f64,
    /// Median length of the sessions that ended, in minutes.
    pub sessions_median_min: Option<f64>,
    /// Departures (each replaced by an arrival) during the run.
    pub departures: u64,
}

/// The value at quantile `q` of `v` (sorted, `None` last); `None` for an empty list or when
/// that quantile never happened.
pub fn quantile(v: &[Option<f64>], q: f64) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v[((v.len() - 1) as f64 * q).round() as usize]
}

/// Runs the scenario on a built network: `minutes` virtual minutes under churn (`progress`
/// is told after each), then `lookups` announces and get_peers lookups chosen from `seed`.
pub fn run(
    live: &mut Live,
    minutes: u64,
    lookups: usize,
    seed: u64,
    mut progress: impl FnMut(&str),
) -> Report {
    for m in 0..minutes {
        live.run_for(Duration::from_secs(60));
        progress(&format!(
            "minute {}: {} departures",
            m + 1,
            live.churn().departures
        ));
    }
    // Announce: each infohash from a random ordinary live node.
    let pool = live.ordinary();
    let mut rng = rand::rngs::SmallRng::seed_from_u64(seed ^ 0xa11);
    let mut anns: Vec<(usize, Id, LookupId)> = Vec::new();
    for _ in 0..lookups {
        let who = pool[rng.random_range(0..pool.len())];
        let ih = Id::random(&mut rng);
        if let Some(l) = live
            .sim
            .with_node(who, |n, now| n.announce(now, ih, None, false))
        {
            anns.push((who, ih, l));
        }
    }
    progress(&format!("{} announces started", anns.len()));
    // Beside them, one node runs 32 find_node lookups for random targets: its size estimate.
    let observer = pool[rng.random_range(0..pool.len())];
    let mut waits: Vec<(usize, LookupId)> = anns.iter().map(|a| (a.0, a.2)).collect();
    for _ in 0..32 {
        let t = Id::random(&mut rng);
        waits.extend(
            live.sim
                .with_node(observer, |n, now| n.find_node(now, t))
                .map(|l| (observer, l)),
        );
    }
    wait_for(live, &waits);
    // Look up each from another random ordinary live node.
    let pool = live.ordinary();
    let mut looks: Vec<(usize, LookupId, Instant, SocketAddr)> = Vec::new();
    for (who, ih, _) in &anns {
        let peer = live.sim.addr(*who);
        let asker = loop {
            let c = pool[rng.random_range(0..pool.len())];
            if c != *who {
                break c;
            }
        };
        let start = live.sim.now();
        if let Some(l) = live.sim.with_node(asker, |n, now| n.get_peers(now, *ih)) {
            looks.push((asker, l, start, peer));
        }
    }
    progress(&format!("{} lookups started", looks.len()));
    let timed = wait_for(live, &looks.iter().map(|l| (l.0, l.1)).collect::<Vec<_>>());

    let mut first: Vec<Option<f64>> = Vec::new();
    let mut done: Vec<Option<f64>> = Vec::new();
    let mut msgs = Vec::new();
    let mut found = 0;
    for (asker, lid, start, peer) in &looks {
        let evs = timed.get(asker).map(Vec::as_slice).unwrap_or(&[]);
        let hit = evs.iter().find(|(_, e)| {
            matches!(e, Event::PeerFound { lookup, peer: p, .. } if lookup == lid && p == peer)
        });
        let ms = |t: Instant| t.saturating_since(*start).as_secs_f64() * 1000.0;
        first.push(hit.map(|(t, _)| ms(*t)));
        found += hit.is_some() as usize;
        let fin = evs.iter().find_map(|(t, e)| match e {
            Event::LookupFinished(r) if r.id == *lid => Some((*t, r.queries)),
            _ => None,
        });
        done.push(fin.map(|(t, _)| ms(t)));
        if let Some((_, q)) = fin {
            msgs.push(q as f64);
        }
    }
    let sort = |v: &mut Vec<Option<f64>>| {
        v.sort_by(|a, b| match (a, b) {
            (Some(x), Some(y)) => x.total_cmp(y),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => std::cmp::Ordering::Equal,
        })
    };
    sort(&mut first);
    sort(&mut done);
    let st = live.sim.stats();
    Report {
        nodes: live.sim.alive().count(),
        lookups: looks.len(),
        found,
        first_peer_ms: first,
        done_ms: done,
        msgs_per_lookup: msgs.iter().sum::<f64>() / msgs.len().max(1) as f64,
        size_estimate: live.sim.node(observer).stats().dht_size_estimate,
        unreachable_share: st.contacts_unreachable as f64 / st.contacts_checked.max(1) as f64,
        sessions_median_min: live.churn().median_min(),
        departures: live.churn().departures,
    }
}

/// Builds the network for `cfg` and runs the scenario on it.
pub fn build_and_run(
    cfg: LiveConfig,
    minutes: u64,
    lookups: usize,
    mut progress: impl FnMut(&str),
) -> Report {
    let seed = cfg.seed;
    let mut live = Live::build(cfg, &mut progress);
    run(&mut live, minutes, lookups, seed, progress)
}

/// Runs (churn included) until every lookup in `wanted` has finished, or 120 virtual seconds
/// have passed; returns the events of the nodes involved, with their times.
fn wait_for(
    live: &mut Live,
    wanted: &[(usize, LookupId)],
) -> HashMap<usize, Vec<(Instant, Event)>> {
    let mut got: HashMap<usize, Vec<(Instant, Event)>> = HashMap::new();
    let mut left: HashSet<(usize, LookupId)> = wanted.iter().copied().collect();
    let limit = live.sim.now() + Duration::from_secs(120);
    while !left.is_empty() && live.sim.now() < limit {
        live.run_for(Duration::from_millis(250));
        let nodes: Vec<usize> = left.iter().map(|w| w.0).collect();
        for i in nodes {
            let evs = live.sim.take_timed_events(i);
            for (_, e) in &evs {
                if let Event::LookupFinished(r) = e {
                    left.remove(&(i, r.id));
                }
            }
            got.entry(i).or_default().extend(evs);
        }
    }
    got
}
