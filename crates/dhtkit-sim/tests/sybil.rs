//! Sybil resistance: one host (one IP) runs 1,000 nodes whose ids sit right next to a target.
//! Honest nodes keep at most one of them in their tables, a lookup for the target keeps at
//! most one of them among its results, and finds the honest nodes near the target all the
//! same. The honest nodes' per-IP query limit is lifted here, so that it is the table and
//! lookup rules that are tested, not the rate limit (which would refuse most of the host's
//! traffic anyway).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use dhtkit_proto::{Config, Id};
use dhtkit_sim::{Sim, SimConfig};

#[test]
fn a_thousand_ids_on_one_ip_get_one_place() {
    let mut honest_cfg = Config::default();
    honest_cfg.per_ip_rate = 0;
    let mut sim = Sim::new(SimConfig {
        seed: 61,
        ..SimConfig::default()
    });
    sim.grow(
        400,
        &honest_cfg,
        Duration::from_millis(50),
        Duration::from_secs(30),
    );
    let honest: Vec<usize> = (0..400).collect();
    let target = Id([0x3c; 20]);
    let sybil_ip: IpAddr = "127.250.0.1".parse().unwrap();
    let mut sybils = Vec::new();
    for i in 0..1000u16 {
        let mut c = honest_cfg.clone();
        let mut id = target;
        id.0[17] = (i >> 8) as u8 ^ 0x01;
        id.0[18] = i as u8;
        id.0[19] = 0x77;
        c.id = Some(id);
        let via = sim.addr(i as usize % 400);
        let s = sim.add_node_at(c, &[SocketAddr::new(sybil_ip, 20_000 + i)]);
        sim.with_node(s, |n, now| n.bootstrap(now, &[via]));
        sybils.push(s);
    }
    // The sybils join, query around, and are heard of everywhere.
    sim.run_for(Duration::from_secs(120));
    let sybil_queries: u64 = sybils
        .iter()
        .map(|&s| sim.node(s).stats().queries_out)
        .sum();
    assert!(
        sybil_queries > 10_000,
        "the sybils were busy: {sybil_queries} queries"
    );

    // Tables: at most one node from the host, in every honest table.
    for &h in &honest {
        let from_host = sim
            .node(h)
            .routing_table()
            .iter()
            .filter(|e| e.addr.ip() == sybil_ip)
            .count();
        assert!(
            from_host <= 1,
            "node {h} keeps {from_host} of the host's nodes"
        );
    }

    // Lookups for the target from honest nodes: at most one result from the host, the rest
    // honest, and the honest node closest to the target among them.
    let mut closest_honest: Vec<(Id, SocketAddr)> = honest
        .iter()
        .map(|&h| (sim.node(h).id(), sim.addr(h)))
        .collect();
    closest_honest.sort_by_key(|(id, _)| id.distance(&target));
    let askers = [5usize, 77, 150, 222, 399];
    let lookups: Vec<_> = askers
        .iter()
        .map(|&a| {
            (
                a,
                sim.with_node(a, |n, now| n.find_node(now, target)).unwrap(),
            )
        })
        .collect();
    let results = sim.run_lookups(&lookups, Duration::from_secs(60));
    for (r, a) in results.iter().zip(askers) {
        let r = r.as_ref().expect("the lookup finished");
        let from_host = r
            .closest
            .iter()
            .filter(|(_, ad)| ad.ip() == sybil_ip)
            .count();
        let honest_found = r.closest.len() - from_host;
        assert!(
            from_host <= 1,
            "asker {a}: {from_host} results from the host"
        );
        assert!(
            honest_found >= 7,
            "asker {a}: only {honest_found} honest results"
        );
        assert!(
            r.closest
                .iter()
                .any(|c| c.0 == closest_honest[0].0 || c.0 == closest_honest[1].0),
            "asker {a} found the honest nodes nearest the target"
        );
    }
}
