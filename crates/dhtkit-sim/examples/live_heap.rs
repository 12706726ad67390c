//! Where a simulated node's memory goes: builds the live model with dhat's heap profiler as
//! the allocator, runs it, and writes `dhat-heap.json` (open it in dhat's viewer, or read the
//! totals at the peak printed on exit).
//!
//! `cargo run --release -p dhtkit-sim --example live_heap -- NODES MINUTES`

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

use std::time::Duration;

use dhtkit_sim::{Live, LiveConfig};

fn main() {
    let mut args = std::env::args().skip(1);
    let nodes: usize = args.next().and_then(|v| v.parse().ok()).unwrap_or(20_000);
    let minutes: u64 = args.next().and_then(|v| v.parse().ok()).unwrap_or(10);
    let _profiler = dhat::Profiler::new_heap();
    let mut cfg = LiveConfig::default();
    cfg.nodes = nodes;
    let mut live = Live::build(cfg, |m| eprintln!("{m}"));
    let built = dhat::HeapStats::get();
    eprintln!(
        "built: {} bytes in {} blocks ({} bytes a node)",
        built.curr_bytes,
        built.curr_blocks,
        built.curr_bytes / nodes
    );
    live.run_for(Duration::from_secs(60 * minutes));
    let after = dhat::HeapStats::get();
    eprintln!(
        "after {minutes} min: {} bytes in {} blocks ({} bytes a node); peak {} bytes",
        after.curr_bytes,
        after.curr_blocks,
        after.curr_bytes / nodes,
        after.max_bytes
    );
}
