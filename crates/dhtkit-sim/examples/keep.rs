//! A BEP 44 item kept alive on the live-DHT model (see `dhtkit_sim::keep`): prints the
//! report as JSON.
//!
//! `cargo run --release -p dhtkit-sim --example keep -- [NODES] [HOURS] [default|stock]`
//! (defaults 2,000 nodes, 168 hours, `default`: the adaptive schedule; `stock` puts every
//! hour as before).

use std::time::Duration;

use dhtkit_sim::LiveConfig;

fn main() {
    let mut args = std::env::args().skip(1);
    let nodes = args.next().and_then(|a| a.parse().ok()).unwrap_or(2_000);
    let hours = args.next().and_then(|a| a.parse().ok()).unwrap_or(168);
    let schedule = args.next().unwrap_or_else(|| "default".into());
    let mut cfg = LiveConfig::default();
    cfg.nodes = nodes;
    cfg.node.adaptive_item_refresh = match schedule.as_str() {
        "default" => true,
        "stock" => false,
        other => {
            eprintln!("schedule {other:?}: default or stock");
            std::process::exit(2);
        }
    };
    let wall = std::time::Instant::now();
    let r = dhtkit_sim::keep::keep_for(cfg, hours, Duration::from_secs(30 * 60), |p| {
        eprintln!("{p}")
    });
    let gaps = &r.put_gaps_h;
    let mean_gap = gaps.iter().sum::<f64>() / gaps.len().max(1) as f64;
    println!(
        "{{\"schedule\":\"{schedule}\",\"nodes\":{},\"hours\":{},\"reads\":{},\"found\":{},\
         \"puts\":{},\"checks_skipped\":{},\"fewest_holders\":{},\"mean_hours_between_puts\":{:.1},\
         \"departures\":{},\"wall_s\":{:.0}}}",
        r.nodes,
        r.hours,
        r.reads,
        r.found,
        r.puts,
        r.checks_skipped,
        r.fewest_holders.map_or("null".into(), |h| h.to_string()),
        mean_gap,
        r.departures,
        wall.elapsed().as_secs_f64()
    );
}
