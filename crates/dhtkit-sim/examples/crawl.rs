//! The crawler at DHT scale: one crawler (its real discovery code driving a real node) on the
//! crawl model of the live DHT ([`dhtkit_sim::crawl`]) for hours of virtual time.
//!
//! ```text
//! cargo run --release -p dhtkit-sim --example crawl -- --nodes N --infohashes M [--hours H]
//!     [--rate R] [--seed S] [--strategy discovery|legacy]
//! ```
//!
//! Progress goes to stderr; the last line of stdout is one JSON object: `nodes`,
//! `infohashes`, `reachable` (infohashes in some reachable BEP 51 node's samples during the
//! run), `discovered`, `peers_found`, `named`, `queries_sent` (every query the crawler's node
//! sent: discovery's and its own upkeep), `bep51_nodes` (reachable BEP 51 nodes up for the
//! whole first hour), `bep51_sampled_1h` (of those, sampled within the first hour),
//! `max_qps_one_ip` (most queries to one IP within one second), `peak_rss_mb`, `wall_s`, and
//! beside them `strategy`, `rate`, `hours`, `build_s`, `queries_per_discovered`,
//! `unreachable_share`, `direct_sent`, `direct_hits`, `lookups`, `samples_sent`,
//! `nodes_answered`, `hourly` (discovered, named and queries at each virtual hour).

use std::time::Instant as Wall;

use dhtkit_sim::crawl::{run_crawl, CrawlModelConfig, CrawlNet, Strategy};
use serde_json_lite::Json;

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Args {
    nodes: usize,
    infohashes: usize,
    hours: f64,
    rate: Option<u32>,
    seed: u64,
    strategy: Strategy,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        nodes: 0,
        infohashes: 0,
        hours: 6.0,
        rate: None,
        seed: 1,
        strategy: Strategy::Discovery,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().ok_or(format!("{flag} needs a value"));
        let num = |v: String| {
            v.parse::<u64>()
                .map_err(|_| format!("{flag}: not a whole number: {v}"))
        };
        match flag.as_str() {
            "--nodes" => a.nodes = num(val()?)? as usize,
            "--infohashes" => a.infohashes = num(val()?)? as usize,
            "--hours" => {
                let v = val()?;
                a.hours = v
                    .parse::<f64>()
                    .ok()
                    .filter(|h| *h > 0.0 && *h <= 1000.0)
                    .ok_or(format!("--hours: a number of hours, not {v}"))?;
            }
            "--rate" => a.rate = Some(num(val()?)?.clamp(1, 1_000_000) as u32),
            "--seed" => a.seed = num(val()?)?,
            "--strategy" => {
                a.strategy = match val()?.as_str() {
                    "discovery" => Strategy::Discovery,
                    "legacy" => Strategy::Legacy,
                    s => return Err(format!("--strategy: discovery or legacy, not {s}")),
                }
            }
            "-h" | "--help" => {
                return Err(
                    "usage: crawl --nodes N --infohashes M [--hours H] [--rate R] \
                            [--seed S] [--strategy discovery|legacy]"
                        .into(),
                )
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if a.nodes < 100 {
        return Err("--nodes: at least 100".into());
    }
    if a.infohashes == 0 {
        return Err("--infohashes: at least 1".into());
    }
    Ok(a)
}

fn main() {
    let a = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let wall = Wall::now();
    let mut cfg = CrawlModelConfig::new(a.nodes, a.infohashes);
    cfg.hours = a.hours;
    cfg.seed = a.seed;
    cfg.strategy = a.strategy;
    if let Some(r) = a.rate {
        cfg.discovery.rate = r;
    }
    let rate = cfg.discovery.rate;
    let log = |m: &str| {
        eprintln!(
            "  {m} ({:.0} s, {:.0} MB)",
            wall.elapsed().as_secs_f64(),
            dhtkit_sim::peak_rss_mb()
        )
    };
    eprintln!(
        "crawl model: {} nodes, {} infohashes, {} h at {} queries/s ({:?})",
        a.nodes, a.infohashes, a.hours, rate, a.strategy
    );
    let net = CrawlNet::build(cfg, log);
    let build_s = wall.elapsed().as_secs_f64();
    let r = run_crawl(net, log);
    let s = &r.stats;
    let per = if s.discovered > 0 {
        r.queries_sent as f64 / s.discovered as f64
    } else {
        0.0
    };
    let hourly: Vec<Json> = r
        .hourly
        .iter()
        .map(|(h, d, n, q)| {
            Json::obj(vec![
                ("hour", Json::Num(*h)),
                ("discovered", Json::Int(*d as i64)),
                ("named", Json::Int(*n as i64)),
                ("queries", Json::Int(*q as i64)),
            ])
        })
        .collect();
    let out = Json::obj(vec![
        ("nodes", Json::Int(r.nodes as i64)),
        ("infohashes", Json::Int(r.infohashes as i64)),
        (
            "strategy",
            Json::Str(format!("{:?}", a.strategy).to_lowercase()),
        ),
        ("rate", Json::Int(rate as i64)),
        ("hours", Json::Num(a.hours)),
        ("reachable", Json::Int(r.reachable as i64)),
        ("discovered", Json::Int(s.discovered as i64)),
        ("peers_found", Json::Int(s.peers_found as i64)),
        ("named", Json::Int(s.named as i64)),
        ("queries_sent", Json::Int(r.queries_sent as i64)),
        (
            "queries_per_discovered",
            Json::Num((per * 1000.0).round() / 1000.0),
        ),
        ("bep51_nodes", Json::Int(r.bep51_nodes as i64)),
        ("bep51_sampled_1h", Json::Int(r.bep51_sampled_1h as i64)),
        ("max_qps_one_ip", Json::Int(r.max_qps_one_ip as i64)),
        (
            "unreachable_share",
            Json::Num((r.unreachable_share * 1000.0).round() / 1000.0),
        ),
        ("samples_sent", Json::Int(s.samples_sent as i64)),
        ("explored", Json::Int(s.explored as i64)),
        ("nodes_answered", Json::Int(s.nodes_answered as i64)),
        ("bep51_answered", Json::Int(s.bep51_nodes as i64)),
        ("direct_sent", Json::Int(s.direct_sent as i64)),
        ("direct_hits", Json::Int(s.direct_hits as i64)),
        ("lookups", Json::Int(s.lookups as i64)),
        ("given_up", Json::Int(s.given_up as i64)),
        ("dropped", Json::Int(s.dropped as i64)),
        ("hourly", Json::Arr(hourly)),
        ("build_s", Json::Num((build_s * 10.0).round() / 10.0)),
        ("peak_rss_mb", Json::Num(dhtkit_sim::peak_rss_mb().round())),
        (
            "wall_s",
            Json::Num((wall.elapsed().as_secs_f64() * 10.0).round() / 10.0),
        ),
    ]);
    println!("{out}");
}

/// Just enough JSON for one line of output.
mod serde_json_lite {
    use std::fmt;

    pub enum Json {
        Int(i64),
        Num(f64),
        Str(String),
        Arr(Vec<Json>),
        Obj(Vec<(&'static str, Json)>),
    }

    impl Json {
        pub fn obj(v: Vec<(&'static str, Json)>) -> Json {
            Json::Obj(v)
        }
    }

    impl fmt::Display for Json {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match self {
                Json::Int(i) => write!(f, "{i}"),
                Json::Num(x) if x.is_finite() => write!(f, "{x}"),
                Json::Num(_) => write!(f, "null"),
                Json::Str(s) => write!(f, "\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\"")),
                Json::Arr(a) => {
                    write!(f, "[")?;
                    for (i, v) in a.iter().enumerate() {
                        if i > 0 {
                            write!(f, ",")?;
                        }
                        write!(f, "{v}")?;
                    }
                    write!(f, "]")
                }
                Json::Obj(o) => {
                    write!(f, "{{")?;
                    for (i, (k, v)) in o.iter().enumerate() {
                        if i > 0 {
                            write!(f, ",")?;
                        }
                        write!(f, "\"{k}\":{v}")?;
                    }
                    write!(f, "}}")
                }
            }
        }
    }
}
