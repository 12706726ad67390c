//! A `dhtkit node` under a flood, on loopback: one address, then 500 addresses, flood it
//! open-loop at 200,000 queries a second for 10 seconds while sixteen other addresses send 4
//! queries a second each. The sixteen must lose at most 1% with a p99 latency of at most
//! 50 ms, the node's memory must grow by at most 64 MiB, and it must answer a ping
//! afterwards. (What the node spends dropping the flood is a benchmark, in BENCHMARKS.md.)

mod common;

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use dhtkit_load::{flood, sources, FloodConfig};

fn run(net: u8, flood_ips: usize) {
    let bind = format!("127.{net}.0.1:6881");
    let target: SocketAddr = bind.parse().unwrap();
    let child = common::dhtkit()
        .args([
            "node",
            "--bind",
            &bind,
            "--bootstrap",
            &format!("127.{net}.0.2:6881"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("dhtkit node starts");
    let pid = child.id();
    let _node = common::Killed(child);
    // Listening: a ping is answered (bounded wait).
    let pinged = (0..50).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        ping(net, &bind)
    });
    assert!(pinged, "the node answers before the flood");
    let report = flood(&FloodConfig {
        target,
        pid: Some(pid),
        flood_sources: sources(net + 1, flood_ips),
        flood_rate: 200_000,
        good_sources: sources(net + 2, 16),
        good_rate: 4.0,
        duration: Duration::from_secs(10),
    })
    .expect("the flood runs");
    eprintln!("flood from {flood_ips} addresses: {}", report.to_json());
    assert!(
        report.sent >= 600,
        "the sixteen sent their queries: {}",
        report.sent
    );
    assert!(
        report.loss_pct() <= 1.0,
        "the sixteen lost {:.2}% (at most 1%)",
        report.loss_pct()
    );
    assert!(
        report.latency.p99 <= 50.0,
        "p99 {:.1} ms (at most 50)",
        report.latency.p99
    );
    let (before, after) = report.target_rss.expect("the node's memory is readable");
    assert!(
        after.saturating_sub(before) <= 64 << 20,
        "memory grew {} MiB",
        (after - before) >> 20
    );
    assert!(ping(net, &bind), "the node answers a ping after the flood");
}

/// `dhtkit ping` from an address of its own.
fn ping(net: u8, addr: &str) -> bool {
    common::dhtkit()
        .args([
            "ping",
            addr,
            "--bind",
            &format!("127.{net}.0.9:0"),
            "--bootstrap",
            addr,
            "--timeout",
            "5",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Both floods in one test, one after the other: run side by side on two cores, they would
/// measure each other.
#[test]
fn a_flood_from_one_or_500_addresses_leaves_the_others_answered() {
    run(100, 1);
    run(110, 500);
}
