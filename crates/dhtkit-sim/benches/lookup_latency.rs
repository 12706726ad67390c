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
//! Knobs (environment): `SEED` (default 2026), `SPACING_MS`, `ALPHA` and `RETRIES` (the
//! nodes' α and lookup retries), `NOLIMIT` (per-IP and reply limits off), `DEBUG` (each
//! missed get_peers: where the nodes holding the peer rank, and where the lookup ended).

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
    sim.grow(
        n,
        &cfg,
        Duration::from_millis(spacing),
        Duration::from_secs(120),
    );
    let built = wall.elapsed();
    let liar = |i: usize| hostile && i % 10 == 3;
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
    if std::env::var_os("DEBUG").is_some() {
        let acks: Vec<usize> = ra.iter().flatten().map(|r| r.announced).collect();
        eprintln!("announce acks: {acks:?}");
    }
    if hostile {
        // 20% churn over five virtual minutes; announcers stay (their peers are the answer).
        let announcers: std::collections::HashSet<usize> = anns.iter().map(|a| a.0 .0).collect();
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
    let mut events: std::collections::HashMap<usize, Vec<Event>> = Default::default();
    let mut ok = 0;
    for ((asker, lid, ip), r) in gets.iter().zip(&rg) {
        let ev = events
            .entry(*asker)
            .or_insert_with(|| sim.take_events(*asker));
        let found = ev.iter().any(|e| {
            matches!(e, Event::PeerFound { lookup, peer, .. } if lookup == lid && peer.ip() == *ip)
        });
        ok += found as usize;
        if !found && std::env::var_os("DEBUG").is_some() {
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
