//! The live DHT in a box: builds the live-network model ([`dhtkit_sim::live`]), runs it under
//! churn, then times get_peers lookups for infohashes that random live nodes announced.
//!
//! ```text
//! cargo run --release -p dhtkit-sim --example live -- --nodes N [--seed S] [--lookups L]
//!     [--preset stock|default] [--minutes M]
//! ```
//!
//! Progress goes to stderr; the last line of stdout is one JSON object (times in
//! milliseconds of virtual time, `build_s` and `wall_s` in seconds of wall time):
//! `nodes`, `preset`, `build_s` (building the settled network), `settle_s` (running it M
//! virtual minutes), `wall_s`, `peak_rss_mb`, `lookups`, `found` (lookups that returned the
//! announcer), `first_peer_ms_p50`/`_p95` (a lookup that found nothing counts as slowest),
//! `done_ms_p50`/`_p95`, `msgs_per_lookup`, `size_estimate` (`Stats::dht_size_estimate` of
//! one node after 32 find_node lookups for random targets), `unreachable_share` (of the contacts in sampled `nodes` replies),
//! `sessions_median_min` (of the sessions that ended during the run), `departures`.

use std::collections::HashMap;
use std::time::{Duration, Instant as Wall};

use dhtkit_proto::{Config, Event, Id, LookupId};
use dhtkit_sim::{Live, LiveConfig};
use rand::{Rng, SeedableRng};

struct Args {
    nodes: usize,
    seed: u64,
    lookups: usize,
    preset: String,
    minutes: u64,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        nodes: 10_000,
        seed: 1,
        lookups: 200,
        preset: "default".into(),
        minutes: 10,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().ok_or(format!("{flag} needs a value"));
        let num = |v: String| {
            v.parse::<u64>()
                .map_err(|_| format!("{flag}: not a number: {v}"))
        };
        match flag.as_str() {
            "--nodes" => a.nodes = num(val()?)? as usize,
            "--seed" => a.seed = num(val()?)?,
            "--lookups" => a.lookups = num(val()?)? as usize,
            "--minutes" => a.minutes = num(val()?)?,
            "--preset" => a.preset = val()?,
            "-h" | "--help" => {
                return Err("usage: live --nodes N [--seed S] [--lookups L] \
                            [--preset stock|default] [--minutes M]"
                    .into())
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if !matches!(a.preset.as_str(), "stock" | "default") {
        return Err(format!("--preset: stock or default, not {}", a.preset));
    }
    if a.nodes < 100 {
        return Err("--nodes: at least 100".into());
    }
    Ok(a)
}

fn peak_rss_mb() -> f64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// The value at quantile `q` of `v` (sorted); `None` stands for "never" and sorts last.
fn quantile(v: &[Option<f64>], q: f64) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v[((v.len() - 1) as f64 * q).round() as usize]
}

fn json_num(v: Option<f64>) -> String {
    v.map_or("null".into(), |x| format!("{x:.1}"))
}

fn main() {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let wall = Wall::now();
    let node = if args.preset == "stock" {
        Config::stock()
    } else {
        Config::default()
    };
    let mut node = node;
    // Experiment knobs (not part of the scenario's contract): ALPHA, SLOW_MIN_MS, SLOW_MAX_MS,
    // STALE_PING_S (0: no stale-ping round), RTT_REPLACE (0: off), RTT_ORDER (0: off),
    // MAX_FAILURES, HEARD (nodes heard of per bucket at the start).
    let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u64>().ok());
    if let Some(a) = env("ALPHA") {
        node.alpha = a as usize;
    }
    if let Some(ms) = env("SLOW_MIN_MS") {
        node.slow_timeout_min = Duration::from_millis(ms);
    }
    if let Some(ms) = env("SLOW_MAX_MS") {
        node.slow_timeout = Duration::from_millis(ms);
    }
    if let Some(s) = env("STALE_PING_S") {
        node.stale_ping_interval = Duration::from_secs(s);
    }
    if let Some(f) = env("RTT_REPLACE") {
        node.table.rtt_replace = f as u8;
    }
    if let Some(o) = env("RTT_ORDER") {
        node.rtt_order = o != 0;
    }
    if let Some(m) = env("MAX_FAILURES") {
        node.table.max_failures = m as u8;
    }
    let mut cfg = LiveConfig::default();
    if let Some(h) = env("HEARD") {
        cfg.heard_per_bucket = h as usize;
    }
    cfg.nodes = args.nodes;
    cfg.seed = args.seed;
    cfg.node = node;
    eprintln!("building {} nodes ({} preset)", args.nodes, args.preset);
    let mut live = Live::build(cfg, |m| {
        eprintln!(
            "  {m} ({:.0} s, {:.0} MB)",
            wall.elapsed().as_secs_f64(),
            peak_rss_mb()
        )
    });
    let build_s = wall.elapsed().as_secs_f64();
    eprintln!(
        "built in {build_s:.1} s, {:.0} MB; running {} virtual minutes",
        peak_rss_mb(),
        args.minutes
    );
    for m in 0..args.minutes {
        live.run_for(Duration::from_secs(60));
        eprintln!(
            "  minute {}: {} departures, {:.0} s, {:.0} MB",
            m + 1,
            live.churn().departures,
            wall.elapsed().as_secs_f64(),
            peak_rss_mb()
        );
    }
    let settle_s = wall.elapsed().as_secs_f64() - build_s;

    // Announce: each infohash from a random ordinary live node.
    let pool = live.ordinary();
    let mut rng = rand::rngs::SmallRng::seed_from_u64(args.seed ^ 0xa11);
    let mut anns: Vec<(usize, Id, LookupId)> = Vec::new();
    for _ in 0..args.lookups {
        let who = pool[rng.random_range(0..pool.len())];
        let ih = Id::random(&mut rng);
        if let Some(l) = live
            .sim
            .with_node(who, |n, now| n.announce(now, ih, None, false))
        {
            anns.push((who, ih, l));
        }
    }
    eprintln!("{} announces started", anns.len());
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
    wait_for(&mut live, &waits);
    // Look up each from another random ordinary live node.
    let pool = live.ordinary();
    let mut looks: Vec<(usize, LookupId, dhtkit_proto::Instant, std::net::SocketAddr)> = Vec::new();
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
    eprintln!("{} lookups started", looks.len());
    let timed = wait_for(
        &mut live,
        &looks.iter().map(|l| (l.0, l.1)).collect::<Vec<_>>(),
    );

    let mut first: Vec<Option<f64>> = Vec::new();
    let mut done: Vec<Option<f64>> = Vec::new();
    let mut msgs = Vec::new();
    let mut found = 0;
    for (asker, lid, start, peer) in &looks {
        let evs = timed.get(asker).map(Vec::as_slice).unwrap_or(&[]);
        let hit = evs.iter().find(|(_, e)| {
            matches!(e, Event::PeerFound { lookup, peer: p, .. } if lookup == lid && p == peer)
        });
        let ms = |t: dhtkit_proto::Instant| t.saturating_since(*start).as_secs_f64() * 1000.0;
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
    let size_estimate = live
        .sim
        .node(observer)
        .stats()
        .dht_size_estimate
        .map(|e| e as f64);
    let st = live.sim.stats();
    let unreachable = st.contacts_unreachable as f64 / st.contacts_checked.max(1) as f64;
    let alive = live.sim.alive().count();
    eprintln!(
        "done in {:.0} s; {} datagrams delivered, {} lost, {} dropped by NATs",
        wall.elapsed().as_secs_f64(),
        st.delivered,
        st.lost,
        st.nat_dropped
    );
    println!(
        "{{\"nodes\":{alive},\"preset\":\"{}\",\"build_s\":{build_s:.1},\"settle_s\":{settle_s:.1},\
         \"wall_s\":{:.1},\"peak_rss_mb\":{:.0},\"lookups\":{},\"found\":{found},\
         \"first_peer_ms_p50\":{},\"first_peer_ms_p95\":{},\"done_ms_p50\":{},\"done_ms_p95\":{},\
         \"msgs_per_lookup\":{:.1},\"size_estimate\":{},\"unreachable_share\":{unreachable:.3},\
         \"sessions_median_min\":{},\"departures\":{}}}",
        args.preset,
        wall.elapsed().as_secs_f64(),
        peak_rss_mb(),
        looks.len(),
        json_num(quantile(&first, 0.5)),
        json_num(quantile(&first, 0.95)),
        json_num(quantile(&done, 0.5)),
        json_num(quantile(&done, 0.95)),
        msgs.iter().sum::<f64>() / msgs.len().max(1) as f64,
        size_estimate.map_or("null".into(), |e| format!("{e:.0}")),
        json_num(live.churn().median_min()),
        live.churn().departures,
    );
}

/// Runs (churn included) until every lookup in `wanted` has finished, or 120 virtual seconds
/// have passed; returns the events of the nodes involved, with their times.
fn wait_for(
    live: &mut Live,
    wanted: &[(usize, LookupId)],
) -> HashMap<usize, Vec<(dhtkit_proto::Instant, Event)>> {
    let mut got: HashMap<usize, Vec<(dhtkit_proto::Instant, Event)>> = HashMap::new();
    let mut left: std::collections::HashSet<(usize, LookupId)> = wanted.iter().copied().collect();
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
