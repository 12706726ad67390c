//! Lookup cost on the simulator: messages sent and virtual round trips per lookup, by network
//! size.
//!
//! Run: `cargo bench -p dhtkit-sim --bench lookup_cost` (sizes 1000 10000 100000), or name the
//! sizes: `cargo bench -p dhtkit-sim --bench lookup_cost -- 1000 10000`.
//!
//! Every link has the same one-way latency (50 ms, so one round trip is 100 ms) and no loss, so
//! a lookup's virtual duration divided by 100 ms is the number of sequential round trips it
//! took. Nodes join 1000 per virtual second, each through a random earlier node, then the
//! network settles for two minutes. 200 find_node and 200 get_peers lookups (for infohashes
//! announced beforehand) then run from random nodes, and 200 BEP 44 puts (half immutable,
//! half mutable with a salt) and 200 gets of those items. A put's cost includes its put
//! messages and the round trip they take after the lookup.

use std::time::{Duration, Instant as WallInstant};

use dhtkit_proto::items::{bencode_bytes, Item};
use dhtkit_proto::{Config, Id, LookupResult};
use dhtkit_sim::{Latency, Sim, SimConfig};
use rand::Rng;

const RTT: Duration = Duration::from_millis(100);
const LOOKUPS: usize = 200;

fn summarize(label: &str, n: usize, rs: &[Option<LookupResult>]) {
    let done: Vec<&LookupResult> = rs.iter().flatten().collect();
    let mut queries: Vec<u32> = done.iter().map(|r| r.queries).collect();
    let mut rtts: Vec<f64> = done
        .iter()
        .map(|r| r.duration.as_secs_f64() / RTT.as_secs_f64())
        .collect();
    queries.sort_unstable();
    rtts.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let mean_q = queries.iter().map(|&q| q as f64).sum::<f64>() / queries.len().max(1) as f64;
    let mean_rtt = rtts.iter().sum::<f64>() / rtts.len().max(1) as f64;
    let resp = done.iter().map(|r| r.responses as f64).sum::<f64>() / done.len().max(1) as f64;
    println!(
        "| {n:>7} | {label:<9} | {:>3}/{LOOKUPS} | {mean_q:>6.1} | {:>4} | {:>4} | {resp:>6.1} | {mean_rtt:>5.2} | {:>5.2} |",
        done.len(),
        queries[queries.len() / 2],
        queries[queries.len() * 95 / 100],
        rtts[rtts.len() * 95 / 100],
    );
}

fn run(n: usize) {
    let wall = WallInstant::now();
    let mut sim = Sim::new(SimConfig {
        seed: 2024,
        latency: Latency::fixed(RTT / 2),
        loss: 0.0,
        ..SimConfig::default()
    });
    sim.grow(
        n,
        &Config::default(),
        Duration::from_millis(1),
        Duration::from_secs(120),
    );
    let built = wall.elapsed();
    let alive: Vec<usize> = sim.alive().collect();
    let pick = |sim: &mut Sim| {
        let i = sim.rng().random_range(0..alive.len());
        alive[i]
    };
    // Announce first (not measured), then measure get_peers for those infohashes.
    let mut anns = Vec::new();
    for _ in 0..LOOKUPS {
        let ih = Id::random(sim.rng());
        let who = pick(&mut sim);
        let lid = sim
            .with_node(who, |nd, now| nd.announce(now, ih, Some(6881), false))
            .unwrap();
        anns.push(((who, lid), ih));
    }
    let w: Vec<_> = anns.iter().map(|a| a.0).collect();
    sim.run_lookups(&w, Duration::from_secs(300));
    let mut finds = Vec::new();
    for _ in 0..LOOKUPS {
        let t = Id::random(sim.rng());
        let who = pick(&mut sim);
        finds.push((
            who,
            sim.with_node(who, |nd, now| nd.find_node(now, t)).unwrap(),
        ));
    }
    let rf = sim.run_lookups(&finds, Duration::from_secs(300));
    let mut gets = Vec::new();
    for (_, ih) in &anns {
        let who = pick(&mut sim);
        gets.push((
            who,
            sim.with_node(who, |nd, now| nd.get_peers(now, *ih))
                .unwrap(),
        ));
    }
    let rg = sim.run_lookups(&gets, Duration::from_secs(300));
    // BEP 44: puts from random nodes, then gets from other random nodes.
    let mut items = Vec::new();
    for i in 0..LOOKUPS {
        let v = bencode_bytes(format!("item {i}").as_bytes());
        items.push(if i % 2 == 0 {
            Item::immutable(v)
        } else {
            let seed: [u8; 32] = sim.rng().random();
            Item::mutable(&seed, b"salt", 1, v)
        });
    }
    let mut puts = Vec::new();
    for item in &items {
        let who = pick(&mut sim);
        let lid = sim.with_node(who, |nd, now| nd.put_item(now, item.clone(), None));
        puts.push((who, lid.unwrap()));
    }
    let rp = sim.run_lookups(&puts, Duration::from_secs(300));
    let mut gets_i = Vec::new();
    for item in &items {
        let who = pick(&mut sim);
        let salt = item
            .signed
            .as_ref()
            .map_or(&[][..], |s| &s.salt[..])
            .to_vec();
        let lid = sim.with_node(who, |nd, now| nd.get_item(now, item.target(), &salt));
        gets_i.push((who, lid.unwrap()));
    }
    let ri = sim.run_lookups(&gets_i, Duration::from_secs(300));
    let found = items
        .iter()
        .zip(&ri)
        .filter(|(it, r)| r.as_ref().and_then(|r| r.item.as_ref()) == Some(*it))
        .count();
    summarize("find_node", n, &rf);
    summarize("get_peers", n, &rg);
    summarize("put", n, &rp);
    summarize("get", n, &ri);
    eprintln!("  ({n} nodes: gets found {found}/{LOOKUPS} items)");
    eprintln!(
        "  ({n} nodes: built in {:.1} s wall, whole run {:.1} s wall, {:?})",
        built.as_secs_f64(),
        wall.elapsed().as_secs_f64(),
        sim.stats()
    );
}

fn main() {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![1_000, 10_000, 100_000]
    } else {
        sizes
    };
    println!("| nodes   | lookup    | done    | msgs mean | p50 | p95 | responses | RTTs mean | RTTs p95 |");
    println!("|---------|-----------|---------|-----------|-----|-----|-----------|-----------|----------|");
    for n in sizes {
        run(n);
    }
}
