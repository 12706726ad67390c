//! How long lookups take, in virtual time, on a network with realistic round trips, and how
//! often they succeed on a hostile one.
//!
//! Run: `cargo bench -p dhtkit-sim --bench lookup_latency -- latency 100000` or
//! `... -- hostile 100000` (the size defaults to 10,000).
//!
//! - `latency`: every link's one-way latency is drawn from 10–150 ms, plus up to 10 ms of
//!   jitter per packet (round trips of 20–320 ms), and 5% of datagrams are lost.
//! - `hostile`: the same latencies, 30% loss, 10% of the nodes liars (they answer every query
//!   with eight fake nodes closer to the target than any real one, at dead addresses), and 20%
//!   churn (a fifth of the nodes leave silently and as many join, over five minutes, between
//!   the announces and the lookups; a joining node bootstraps through three random live
//!   nodes, as a client knows a few routers).
//!
//! Nodes join one per `SPACING_MS` (default 1 ms; BENCHMARKS.md uses 50, that is 20 per
//! virtual second, each through a random earlier node), then the network settles for two
//! minutes. 200 infohashes are announced by random honest nodes, then looked
//! up with get_peers from other random honest nodes; a lookup succeeds if it finds the
//! announcer. 200 find_node lookups for random targets run beside them (cost only).
//!
//! The hostile network joins through three shared routers plus a random earlier node (see
//! `Sim::grow_with_routers`): joining through a random earlier node alone split seed 1's
//! network in two under 30% loss.
//!
//! Knobs (environment): `SEED` (default 2026), `SPACING_MS`, `SETTLE_S` (default 120),
//! `ALPHA` and `RETRIES` (the nodes' α and lookup retries), `NOLIMIT` (per-IP and reply
//! limits off), `NOLIARS` (hostile without the liars), `DEBUG` (the network's connected
//! components; how many of the true 8 closest the announces reached, beside a lossless lookup
//! over the same routing tables; and for each missed get_peers, where the nodes holding the
//! peer rank and where the lookup ended).

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant as WallInstant};

use dhtkit_proto::{Config, Event, Id, LookupResult};
use dhtkit_sim::{Behaviour, Sim, SimConfig};
use rand::Rng;

const LOOKUPS: usize = 200;

fn pct(v: &[f64], q: f64) -> f64 {
    v[((v.len() - 1) as f64 * q).round() as usize]
}

fn report(label: &str, rs: &[Option<LookupResult>], ok: usize) {
    let done: Vec<&LookupResult> = rs.iter().flatten().collect();
    let mut secs: Vec<f64> = done.iter().map(|r| r.duration.as_secs_f64()).collect();
    let mut msgs: Vec<f64> = done.iter().map(|r| r.queries as f64).collect();
    secs.sort_by(|a, b| a.partial_cmp(b).unwrap());
    msgs.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    println!(
        "| {label:<9} | {:>3}/{LOOKUPS} | {ok:>3}/{LOOKUPS} | {:.2} | {:.2} | {:.2} | {:.1} | {:.0} | {:.0} |",
        done.len(),
        pct(&secs, 0.5),
        pct(&secs, 0.95),
        mean(&secs),
        mean(&msgs),
        pct(&msgs, 0.5),
        pct(&msgs, 0.95),
    );
}

fn run(mode: &str, n: usize) {
    let wall = WallInstant::now();
    let hostile = mode == "hostile";
    let mut sim = Sim::new(SimConfig {
        seed: std::env::var("SEED")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(2026),
        loss: if hostile { 0.30 } else { 0.05 },
        ..SimConfig::default()
    });
    let mut cfg = Config::default();
    if let Some(r) = std::env::var("RETRIES").ok().and_then(|v| v.parse().ok()) {
        cfg.lookup_retries = r;
    }
    if let Some(a) = std::env::var("ALPHA").ok().and_then(|v| v.parse().ok()) {
        cfg.alpha = a;
    }
    if std::env::var_os("NOLIMIT").is_some() {
        cfg.reply_rate = 0;
        cfg.per_ip_rate = 0;
    }
    let spacing: u64 = std::env::var("SPACING_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let settle = std::env::var("SETTLE_S")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(120);
    sim.grow_with_routers(
        n,
        if hostile { 3 } else { 0 },
        &cfg,
        Duration::from_millis(spacing),
        Duration::from_secs(settle),
    );
    let built = wall.elapsed();
    let debug = std::env::var_os("DEBUG").is_some();
    if debug {
        let parts = components(&sim);
        eprintln!(
            "network: {} connected component(s), largest {:?}",
            parts.len(),
            &parts[..parts.len().min(5)]
        );
    }
    let liars = hostile && std::env::var_os("NOLIARS").is_none();
    let liar = |i: usize| liars && i % 10 == 3;
    if hostile {
        for i in (0..n).filter(|&i| liar(i)) {
            sim.set_behaviour(i, Behaviour::Liar);
        }
    }
    let honest = |sim: &Sim| -> Vec<usize> { sim.alive().filter(|&i| !liar(i)).collect() };
    let pool = honest(&sim);
    let mut anns = Vec::new();
    for _ in 0..LOOKUPS {
        let ih = Id::random(sim.rng());
        let pick = sim.rng().random_range(0..pool.len());
        let who = pool[pick];
        let lid = sim
            .with_node(who, |nd, now| nd.announce(now, ih, Some(6881), false))
            .unwrap();
        anns.push(((who, lid), ih));
    }
    let w: Vec<_> = anns.iter().map(|a| a.0).collect();
    let ra = sim.run_lookups(&w, Duration::from_secs(300));
    if debug {
        let acks: Vec<usize> = ra.iter().flatten().map(|r| r.announced).collect();
        eprintln!("announce acks: {acks:?}");
        let targets: Vec<(usize, Id)> = anns.iter().map(|a| (a.0 .0, a.1)).collect();
        let (real, ideal) = reach(&sim, &targets, &ra);
        eprintln!("announces reaching n of the true 8 closest, n = 0..8: {real:?}");
        eprintln!("the same for lossless lookups over the same tables:  {ideal:?}");
    }
    if hostile {
        // 20% churn over five virtual minutes; announcers stay (their peers are the answer).
        let announcers: HashSet<usize> = anns.iter().map(|a| a.0 .0).collect();
        let (leave, steps) = (n / 5, 50);
        for _ in 0..steps {
            for _ in 0..leave / steps {
                let alive: Vec<usize> = sim.alive().filter(|i| !announcers.contains(i)).collect();
                let pick = sim.rng().random_range(0..alive.len());
                let victim = alive[pick];
                sim.kill(victim);
            }
            for _ in 0..leave / steps {
                // A joining client knows a few bootstrap nodes, as real ones do (a lone
                // bootstrap node that lies would leave it with nothing).
                let alive: Vec<usize> = sim.alive().collect();
                let via: Vec<_> = (0..3)
                    .map(|_| {
                        let pick = sim.rng().random_range(0..alive.len());
                        sim.addr(alive[pick])
                    })
                    .collect();
                let i = sim.add_node(cfg.clone());
                sim.with_node(i, |nd, now| nd.bootstrap(now, &via));
            }
            sim.run_for(Duration::from_secs(6));
        }
    }
    let pool = honest(&sim);
    let mut gets = Vec::new();
    for ((who, _), ih) in &anns {
        let mut asker = *who;
        while asker == *who {
            let pick = sim.rng().random_range(0..pool.len());
            asker = pool[pick];
        }
        gets.push((
            asker,
            sim.with_node(asker, |nd, now| nd.get_peers(now, *ih))
                .unwrap(),
            sim.addr(*who).ip(),
        ));
    }
    let mut finds = Vec::new();
    for _ in 0..LOOKUPS {
        let t = Id::random(sim.rng());
        let pick = sim.rng().random_range(0..pool.len());
        let who = pool[pick];
        finds.push((
            who,
            sim.with_node(who, |nd, now| nd.find_node(now, t)).unwrap(),
        ));
    }
    let wg: Vec<_> = gets.iter().map(|g| (g.0, g.1)).collect();
    let rg = sim.run_lookups(&wg, Duration::from_secs(300));
    let rf = sim.run_lookups(&finds, Duration::from_secs(300));
    let mut events: HashMap<usize, Vec<Event>> = Default::default();
    let mut ok = 0;
    for ((asker, lid, ip), r) in gets.iter().zip(&rg) {
        let ev = events
            .entry(*asker)
            .or_insert_with(|| sim.take_events(*asker));
        let found = ev.iter().any(|e| {
            matches!(e, Event::PeerFound { lookup, peer, .. } if lookup == lid && peer.ip() == *ip)
        });
        ok += found as usize;
        if !found && debug {
            let r = r.as_ref().unwrap();
            let ih = anns
                .iter()
                .find(|a| sim.addr(a.0 .0).ip() == *ip)
                .map(|a| a.1)
                .unwrap();
            let storers: Vec<usize> = sim
                .alive()
                .filter(|&i| {
                    sim.node(i)
                        .peer_store()
                        .is_some_and(|st| st.peers(&ih).next().is_some())
                })
                .collect();
            let mut dist: Vec<(usize, bool)> = sim.alive().map(|i| (i, liar(i))).collect();
            dist.sort_by_key(|(i, _)| sim.node(*i).id().distance(&ih));
            let rank: Vec<usize> = storers
                .iter()
                .map(|s| dist.iter().position(|d| d.0 == *s).unwrap())
                .collect();
            let liars_top: usize = dist.iter().take(8).filter(|d| d.1).count();
            let closest_ranks: Vec<usize> = r
                .closest
                .iter()
                .filter_map(|(id, _)| dist.iter().position(|d| sim.node(d.0).id() == *id))
                .collect();
            eprintln!("  storers alive {} at ranks {rank:?}; liars in top 8: {liars_top}; lookup's closest at ranks {closest_ranks:?}", storers.len());
            eprintln!(
                "miss: peers_found {} responses {} timeouts {} queries {} dur {:?}",
                r.peers_found, r.responses, r.timeouts, r.queries, r.duration
            );
        }
    }
    println!("{mode}, {n} nodes:");
    println!("| lookup    | done    | found   | p50 s | p95 s | mean s | msgs mean | msgs p50 | msgs p95 |");
    println!("|-----------|---------|---------|-------|-------|--------|-----------|----------|----------|");
    report("get_peers", &rg, ok);
    report("find_node", &rf, rf.iter().flatten().count());
    eprintln!(
        "  ({n} nodes: built in {:.1} s wall, whole run {:.1} s wall, {:?})",
        built.as_secs_f64(),
        wall.elapsed().as_secs_f64(),
        sim.stats()
    );
}

/// Sizes of the connected components of the who-knows-whom graph (routing table entries,
/// taken as undirected links), largest first.
fn components(sim: &Sim) -> Vec<usize> {
    let alive: Vec<usize> = sim.alive().collect();
    let index: HashMap<Id, usize> = alive
        .iter()
        .enumerate()
        .map(|(k, &i)| (sim.node(i).id(), k))
        .collect();
    let mut parent: Vec<usize> = (0..alive.len()).collect();
    fn root(p: &mut [usize], mut x: usize) -> usize {
        while p[x] != x {
            p[x] = p[p[x]];
            x = p[x];
        }
        x
    }
    for (k, &i) in alive.iter().enumerate() {
        for e in sim.node(i).routing_table().iter() {
            if let Some(&j) = index.get(&e.id) {
                let (a, b) = (root(&mut parent, k), root(&mut parent, j));
                parent[a] = b;
            }
        }
    }
    let mut sizes: HashMap<usize, usize> = HashMap::new();
    for k in 0..alive.len() {
        *sizes.entry(root(&mut parent, k)).or_default() += 1;
    }
    let mut v: Vec<usize> = sizes.into_values().collect();
    v.sort_unstable_by(|a, b| b.cmp(a));
    v
}

/// For each announce (announcer, infohash): how many of the 8 live nodes truly closest to the
/// infohash its lookup ended with, as a histogram over 0..=8; and the same for a lossless,
/// instant lookup from the same announcer over today's routing tables (what the tables allow).
fn reach(
    sim: &Sim,
    targets: &[(usize, Id)],
    results: &[Option<LookupResult>],
) -> ([usize; 9], [usize; 9]) {
    let index: HashMap<Id, usize> = sim.alive().map(|i| (sim.node(i).id(), i)).collect();
    let (mut real, mut ideal) = ([0; 9], [0; 9]);
    let mut out = Vec::new();
    for ((who, ih), r) in targets.iter().zip(results) {
        let mut ids: Vec<Id> = index.keys().copied().collect();
        ids.sort_unstable_by_key(|id| id.distance(ih));
        let truth: HashSet<Id> = ids.into_iter().take(8).collect();
        if let Some(r) = r {
            real[r
                .closest
                .iter()
                .filter(|(id, _)| truth.contains(id))
                .count()] += 1;
        }
        sim.node(*who)
            .routing_table()
            .closest(sim.now(), ih, 16, &mut out);
        let mut cands: Vec<Id> = out.iter().map(|x| x.0).collect();
        let mut asked = HashSet::new();
        loop {
            cands.sort_unstable_by_key(|c| c.distance(ih));
            cands.dedup();
            let Some(c) = cands.iter().take(8).find(|c| !asked.contains(*c)).copied() else {
                break;
            };
            asked.insert(c);
            // A table entry nobody lives at (a liar's fake that got in) answers nothing.
            let Some(&j) = index.get(&c) else {
                cands.retain(|x| *x != c);
                continue;
            };
            sim.node(j)
                .routing_table()
                .closest(sim.now(), ih, 8, &mut out);
            cands.extend(out.iter().map(|x| x.0));
        }
        ideal[cands.iter().take(8).filter(|c| truth.contains(c)).count()] += 1;
    }
    (real, ideal)
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let mode = args.first().map_or("latency", String::as_str).to_string();
    let n = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(10_000);
    assert!(
        mode == "latency" || mode == "hostile",
        "mode: latency or hostile"
    );
    run(&mode, n);
}
