//! # dhtkit-sim
//!
//! A deterministic network of many [`dhtkit_proto::Node`]s in one process, on virtual time.
//!
//! Time jumps straight to the next thing that happens (a datagram arriving or a node's
//! deadline), so thousands of nodes and hours of protocol time run in seconds. Every random
//! choice (link latencies, loss, corruption, which node bootstraps through which) comes from one
//! seed: a failing run replays exactly.
//!
//! Each node gets its own address in 127.0.0.0/8; nothing leaves the process.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod crawl;
pub mod keep;
pub mod live;
mod net;
pub mod scenario;

pub use live::{Live, LiveConfig};

/// This process's peak resident set in MB (Linux's `VmHWM`; 0 where /proc is missing), for
/// the examples' reports.
pub fn peak_rss_mb() -> f64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}
pub use net::{Behaviour, Latency, Links, LogNormalRtt, Sim, SimConfig, SimStats};

use dhtkit_proto::{Id, Instant};

/// The `n` ids closest to `target` among `ids` (a global view, for checking lookups).
pub fn true_closest(ids: impl Iterator<Item = Id>, target: &Id, n: usize) -> Vec<Id> {
    let mut all: Vec<Id> = ids.collect();
    let n = n.min(all.len());
    if n == 0 {
        return Vec::new();
    }
    all.select_nth_unstable_by_key(n - 1, |id| id.distance(target));
    all.truncate(n);
    all.sort_by_key(|id| id.distance(target));
    all
}

/// Convenience: an [`Instant`] `secs` seconds after the epoch.
pub fn at_secs(secs: u64) -> Instant {
    Instant::from_epoch(std::time::Duration::from_secs(secs))
}
