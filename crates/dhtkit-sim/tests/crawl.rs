//! The crawl model: the crawler's real discovery on a small live-DHT network reaches what it
//! should with few packets, and the strategy it replaced spends more for less.

use dhtkit_sim::crawl::{run_crawl, CrawlModelConfig, CrawlNet, CrawlReport, Strategy};

fn crawl(strategy: Strategy) -> CrawlReport {
    let mut cfg = CrawlModelConfig::new(3_000, 12_000);
    cfg.hours = 1.5;
    cfg.seed = 7;
    cfg.strategy = strategy;
    run_crawl(CrawlNet::build(cfg, |_| {}), |_| {})
}

#[test]
fn discovery_samples_the_bep51_nodes_in_the_first_hour_and_finds_peers_in_about_one_query() {
    let r = crawl(Strategy::Discovery);
    let s = &r.stats;
    assert!(r.bep51_nodes > 300, "{r:?}");
    // Every reachable BEP 51 node that stayed up is sampled within the hour (a few are
    // never named to the crawler, or lost their one packet).
    assert!(
        r.bep51_sampled_1h * 100 >= r.bep51_nodes * 90,
        "sampled {} of {}",
        r.bep51_sampled_1h,
        r.bep51_nodes
    );
    assert!(s.discovered * 100 >= r.reachable * 85, "{r:?}");
    assert!(s.peers_found * 100 >= s.discovered * 80, "{r:?}");
    assert!(r.queries_sent <= 3 * s.discovered, "{r:?}");
    // Peers come from the node that sampled them: lookups are the exception.
    assert!(s.direct_hits > 10 * s.lookups, "{r:?}");
    assert!(r.max_qps_one_ip <= 1, "{r:?}");
    // About half the contacts in replies never answer, as on the live DHT.
    assert!((0.35..0.65).contains(&r.unreachable_share), "{r:?}");
}

#[test]
fn a_lookup_per_infohash_costs_more_queries_and_finds_fewer_peers() {
    let new = crawl(Strategy::Discovery);
    let old = crawl(Strategy::Legacy);
    assert_eq!(old.stats.direct_sent, 0);
    let per = |r: &CrawlReport| r.queries_sent as f64 / r.stats.discovered.max(1) as f64;
    assert!(per(&old) > per(&new), "old {} new {}", per(&old), per(&new));
    assert!(
        old.stats.peers_found < new.stats.peers_found,
        "old {} new {}",
        old.stats.peers_found,
        new.stats.peers_found
    );
}
