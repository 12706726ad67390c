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

use std::time::{Duration, Instant as Wall};

/// mimalloc rather than the system allocator: a million simulated nodes are tens of millions
/// of small allocations, freed and made again as tables and queries change. Measured at
/// 100,000 nodes (BENCHMARKS.md): 22% less wall time, 10% more peak memory than glibc's.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use dhtkit_proto::Config;
use dhtkit_sim::scenario::{self, quantile};
use dhtkit_sim::{Live, LiveConfig};

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
            dhtkit_sim::peak_rss_mb()
        )
    });
    let build_s = wall.elapsed().as_secs_f64();
    eprintln!(
        "built in {build_s:.1} s, {:.0} MB; running {} virtual minutes",
        dhtkit_sim::peak_rss_mb(),
        args.minutes
    );
    let settle_at = std::cell::Cell::new(None);
    let r = scenario::run(&mut live, args.minutes, args.lookups, args.seed, |m| {
        if m.ends_with("announces started") {
            settle_at.set(Some(wall.elapsed().as_secs_f64()));
        }
        eprintln!(
            "  {m} ({:.0} s, {:.0} MB)",
            wall.elapsed().as_secs_f64(),
            dhtkit_sim::peak_rss_mb()
        )
    });
    let settle_s = settle_at.get().unwrap_or(build_s) - build_s;
    let st = live.sim.stats();
    eprintln!(
        "done in {:.0} s; {} datagrams delivered, {} lost, {} dropped by NATs",
        wall.elapsed().as_secs_f64(),
        st.delivered,
        st.lost,
        st.nat_dropped
    );
    println!(
        "{{\"nodes\":{},\"preset\":\"{}\",\"build_s\":{build_s:.1},\"settle_s\":{settle_s:.1},\
         \"wall_s\":{:.1},\"peak_rss_mb\":{:.0},\"lookups\":{},\"found\":{},\
         \"first_peer_ms_p50\":{},\"first_peer_ms_p95\":{},\"done_ms_p50\":{},\"done_ms_p95\":{},\
         \"msgs_per_lookup\":{:.1},\"size_estimate\":{},\"unreachable_share\":{:.3},\
         \"sessions_median_min\":{},\"departures\":{}}}",
        r.nodes,
        args.preset,
        wall.elapsed().as_secs_f64(),
        dhtkit_sim::peak_rss_mb(),
        r.lookups,
        r.found,
        json_num(quantile(&r.first_peer_ms, 0.5)),
        json_num(quantile(&r.first_peer_ms, 0.95)),
        json_num(quantile(&r.done_ms, 0.5)),
        json_num(quantile(&r.done_ms, 0.95)),
        r.msgs_per_lookup,
        r.size_estimate.map_or("null".into(), |e| e.to_string()),
        r.unreachable_share,
        json_num(r.sessions_median_min),
        r.departures,
    );
}
