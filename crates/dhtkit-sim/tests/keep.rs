//! Issue 20's item 5: a BEP 44 item kept alive for a week of the live-DHT model's churn
//! (Weibull sessions, median 200 minutes; NAT; 40% of the nodes BEP 5 only, storing no items;
//! libtorrent-like nodes keeping items until they need the room) stays readable, with the
//! adaptive schedule putting it far less often than the hourly one. Deterministic: the seed
//! fixes every draw. The `keep` example runs it larger, and with the hourly schedule beside.

use std::time::Duration;

use dhtkit_sim::LiveConfig;

#[test]
fn a_kept_item_stays_readable_for_a_week_of_churn_with_few_puts() {
    let mut cfg = LiveConfig::default();
    cfg.nodes = 500;
    let r = dhtkit_sim::keep::keep_for(cfg, 7 * 24, Duration::from_secs(30 * 60), |_| {});
    eprintln!("{r:?}");
    assert!(r.departures > 5_000, "churn: {} departures", r.departures);
    assert!(r.reads >= 300, "{} reads", r.reads);
    assert_eq!(r.found, r.reads, "every read found the item");
    // The hourly schedule puts 168 times a week; the adaptive one at most a quarter of that
    // (it checks in between, a get of the closest nodes).
    assert!((2..=42).contains(&r.puts), "{} puts", r.puts);
    assert!(r.checks_skipped >= 1, "{r:?}");
    assert!(r.fewest_holders.is_some_and(|h| h >= 1), "{r:?}");
}
