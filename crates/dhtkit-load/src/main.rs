//! `dhtkit-load`: load a DHT node on loopback and report replies/s, loss, latency and the
//! target's CPU time, as one JSON object on stdout.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use dhtkit_load::{fixed_rate, flood, saturate, sources, FloodConfig, RateConfig, SaturateConfig};

/// Load a DHT node on loopback (127.0.0.0/8 or ::1 only).
#[derive(Parser, Debug)]
#[command(name = "dhtkit-load", version, about)]
struct Cli {
    #[command(subcommand)]
    run: Run,
}

#[derive(Args, Debug)]
struct Common {
    /// The node under load, ADDR:PORT on loopback.
    #[arg(long)]
    target: SocketAddr,
    /// The node's pid, to report its CPU seconds and memory.
    #[arg(long)]
    pid: Option<u32>,
    /// Seconds to run.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Second octet of the source addresses (127.NET.x.y; flood runs also use NET+1).
    #[arg(long, default_value_t = 60)]
    net: u8,
}

#[derive(Subcommand, Debug)]
enum Run {
    /// Closed loop: SOURCES addresses each keep OUTSTANDING queries in flight.
    Saturate {
        #[command(flatten)]
        common: Common,
        /// Source addresses.
        #[arg(long, default_value_t = 8)]
        sources: usize,
        /// Queries in flight per source.
        #[arg(long, default_value_t = 16)]
        outstanding: usize,
    },
    /// Open loop at a fixed offered rate, spread over SOURCES addresses.
    Rate {
        #[command(flatten)]
        common: Common,
        /// Source addresses.
        #[arg(long, default_value_t = 8)]
        sources: usize,
        /// Queries per second, in total.
        #[arg(long)]
        rate: u64,
    },
    /// A flood from FLOOD_IPS addresses at FLOOD_RATE datagrams/s while GOOD_IPS clients send
    /// GOOD_RATE queries/s each; reports what the well-behaved clients got.
    Flood {
        #[command(flatten)]
        common: Common,
        /// Flooding addresses.
        #[arg(long, default_value_t = 1)]
        flood_ips: usize,
        /// Flood datagrams per second, in total.
        #[arg(long, default_value_t = 200_000)]
        flood_rate: u64,
        /// Well-behaved clients.
        #[arg(long, default_value_t = 16)]
        good_ips: usize,
        /// Queries per second from each well-behaved client.
        #[arg(long, default_value_t = 4.0)]
        good_rate: f64,
    },
}

fn secs(v: f64) -> Result<Duration, String> {
    if v.is_finite() && v > 0.0 && v <= 600.0 {
        Ok(Duration::from_secs_f64(v))
    } else {
        Err("--duration must be from 0 to 600 seconds".into())
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let r = match cli.run {
        Run::Saturate {
            common,
            sources: n,
            outstanding,
        } => secs(common.duration).and_then(|duration| {
            saturate(&SaturateConfig {
                target: common.target,
                pid: common.pid,
                sources: sources(common.net, n.clamp(1, 1000)),
                outstanding,
                duration,
            })
            .map_err(|e| e.to_string())
        }),
        Run::Rate {
            common,
            sources: n,
            rate,
        } => secs(common.duration).and_then(|duration| {
            fixed_rate(&RateConfig {
                target: common.target,
                pid: common.pid,
                sources: sources(common.net, n.clamp(1, 1000)),
                rate,
                duration,
            })
            .map_err(|e| e.to_string())
        }),
        Run::Flood {
            common,
            flood_ips,
            flood_rate,
            good_ips,
            good_rate,
        } => secs(common.duration).and_then(|duration| {
            flood(&FloodConfig {
                target: common.target,
                pid: common.pid,
                flood_sources: sources(common.net, flood_ips.clamp(1, 10_000)),
                flood_rate,
                good_sources: sources(common.net.wrapping_add(1), good_ips.clamp(1, 250)),
                good_rate,
                duration,
            })
            .map_err(|e| e.to_string())
        }),
    };
    match r {
        Ok(report) => {
            println!("{}", report.to_json());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
