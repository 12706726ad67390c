//! The node's own policies, on the simulator: lookups wait for the first bootstrap, bootstrap
//! retries while the table is small, and advertised infohashes are announced again on schedule
//! (all in the protocol core, so they run here on virtual time).

use std::time::Duration;

use dhtkit_proto::{Advert, Config, Event, Id, LookupKind, LookupResult};
use dhtkit_sim::{Sim, SimConfig};
use rand::Rng;

fn network(n: usize, seed: u64, cfg: &Config) -> Sim {
    let mut sim = Sim::new(SimConfig {
        seed,
        ..SimConfig::default()
    });
    sim.grow(n, cfg, Duration::from_millis(50), Duration::from_secs(60));
    sim
}

fn finished(events: &[Event], kind: fn(&LookupKind) -> bool) -> Vec<LookupResult> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::LookupFinished(r) if kind(&r.kind) => Some((**r).clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn lookups_wait_for_the_first_bootstrap() {
    let cfg = Config::default();
    let mut sim = network(200, 21, &cfg);
    let ih = Id([0x5a; 20]);
    let announcer = 7;
    let lid = sim
        .with_node(announcer, |n, now| n.announce(now, ih, Some(4000), false))
        .unwrap();
    let r = sim.run_lookups(&[(announcer, lid)], Duration::from_secs(60));
    assert!(r[0].as_ref().unwrap().announced > 0);

    // A newcomer whose bootstrap addresses are still being resolved: its lookup is held.
    let newcomer = sim.add_node(cfg.clone());
    let held = sim
        .with_node(newcomer, |n, now| {
            n.expect_bootstrap();
            n.get_peers(now, ih)
        })
        .unwrap();
    sim.run_for(Duration::from_secs(5));
    assert_eq!(
        sim.node(newcomer).lookups_running(),
        1,
        "held, not finished"
    );
    assert_eq!(
        sim.node(newcomer).stats().queries_out,
        0,
        "nothing sent yet"
    );
    assert!(sim.take_events(newcomer).is_empty());

    // The addresses arrive: the bootstrap runs first, then the held lookup finds the peer.
    let via = sim.addr(3);
    sim.with_node(newcomer, |n, now| {
        n.bootstrap(now, &[via]);
        n.bootstrap_sources_done(now);
    });
    let r = sim.run_lookups(&[(newcomer, held)], Duration::from_secs(60));
    assert!(r[0].as_ref().unwrap().peers_found >= 1, "{:?}", r[0]);
    let ev = sim.take_events(newcomer);
    let boot = ev
        .iter()
        .position(|e| matches!(e, Event::Bootstrapped { nodes } if *nodes > 0))
        .expect("bootstrapped with a table");
    let peer = ev
        .iter()
        .position(|e| matches!(e, Event::PeerFound { lookup, .. } if *lookup == held))
        .expect("peer found");
    assert!(boot < peer, "the held lookup ran after the bootstrap");
}

#[test]
fn no_bootstrap_address_releases_held_lookups_empty() {
    let mut sim = Sim::new(SimConfig::default());
    let lonely = sim.add_node(Config::default());
    let lid = sim
        .with_node(lonely, |n, now| {
            n.expect_bootstrap();
            n.find_node(now, Id([1; 20]))
        })
        .unwrap();
    sim.run_for(Duration::from_secs(10));
    assert_eq!(sim.node(lonely).lookups_running(), 1);
    sim.with_node(lonely, |n, now| n.bootstrap_sources_done(now));
    let r = sim.run_lookups(&[(lonely, lid)], Duration::from_secs(1));
    assert_eq!(r[0].as_ref().unwrap().closest, vec![]);
    assert!(sim
        .take_events(lonely)
        .contains(&Event::Bootstrapped { nodes: 0 }));
}

#[test]
fn bootstrap_retries_with_backoff_until_the_table_fills() {
    let cfg = Config::default();
    let mut sim = network(50, 22, &cfg);
    let gateway = 0;
    let via = sim.addr(gateway);
    sim.kill(gateway);
    let newcomer = sim.add_node(cfg.clone());
    sim.with_node(newcomer, |n, now| n.bootstrap(now, &[via]));
    sim.run_for(Duration::from_secs(20));
    let ev = sim.take_events(newcomer);
    assert!(ev.contains(&Event::Bootstrapped { nodes: 0 }));
    let tries = finished(&ev, |k| *k == LookupKind::Bootstrap).len();
    // First try (ends after its retransmissions, ~6 s), then again after 5 s and 10 s.
    assert_eq!(tries, 2, "{ev:?}");
    assert!(sim.node(newcomer).routing_table().is_empty());
    sim.revive(gateway);
    sim.run_for(Duration::from_secs(60));
    assert!(
        sim.node(newcomer).routing_table().len() >= cfg.table.k,
        "joined on a later retry: {}",
        sim.node(newcomer).routing_table().len()
    );
    let later = finished(&sim.take_events(newcomer), |k| *k == LookupKind::Bootstrap);
    assert!(!later.is_empty() && later.last().unwrap().responses > 0);
}

#[test]
fn advertised_infohashes_are_announced_again_on_schedule() {
    let mut cfg = Config::default();
    cfg.advertise_interval = Duration::from_secs(60);
    let mut sim = network(200, 23, &cfg);
    let ih = Id([0xa7; 20]);
    let (a, b) = (11, 12);
    // b is already in the swarm; a advertises.
    let lid = sim
        .with_node(b, |n, now| n.announce(now, ih, Some(5000), false))
        .unwrap();
    sim.run_lookups(&[(b, lid)], Duration::from_secs(60));
    sim.with_node(a, |n, now| {
        n.advertise(
            now,
            ih,
            Advert {
                port: Some(6000),
                seed: false,
            },
        )
    });
    assert_eq!(sim.node(a).lookups_running(), 1, "announced at once");
    sim.run_for(Duration::from_secs(200));
    let ev = sim.take_events(a);
    let announces = finished(&ev, |k| matches!(k, LookupKind::Announce { .. }));
    // At 0, 60, 120 and 180 seconds.
    assert_eq!(announces.len(), 4, "{announces:?}");
    assert!(announces.iter().all(|r| r.announced > 0));
    let b_addr = sim.addr(b);
    assert!(ev.iter().any(|e| matches!(
        e,
        Event::PeerFound { peer, advertised: true, .. } if peer.ip() == b_addr.ip()
    )));
    assert_eq!(sim.node(a).export_state().advertised.len(), 1);

    // Withdrawn: no more announces.
    sim.with_node(a, |n, _| assert!(n.stop_advertising(&ih)));
    sim.run_for(Duration::from_secs(200));
    let ev = sim.take_events(a);
    assert!(finished(&ev, |k| matches!(k, LookupKind::Announce { .. })).is_empty());
}

#[test]
fn an_ipv6_only_network_finds_its_announces() {
    let mut cfg = Config::default();
    cfg.ipv4 = false;
    cfg.ipv6 = true;
    let mut sim = network(300, 24, &cfg);
    assert!(sim.addr(5).is_ipv6());
    let ih = Id([0x66; 20]);
    let lid = sim
        .with_node(5, |n, now| n.announce(now, ih, Some(7000), false))
        .unwrap();
    let r = sim.run_lookups(&[(5, lid)], Duration::from_secs(60));
    assert!(r[0].as_ref().unwrap().announced > 0);
    let lid = sim.with_node(200, |n, now| n.get_peers(now, ih)).unwrap();
    sim.run_lookups(&[(200, lid)], Duration::from_secs(60));
    let want = std::net::SocketAddr::new(sim.addr(5).ip(), 7000);
    assert!(sim
        .take_events(200)
        .iter()
        .any(|e| matches!(e, Event::PeerFound { peer, .. } if *peer == want)));
    assert!(sim.node(200).routing_table().len() >= 8);
    assert!(sim.node(200).routing_table_for(false).is_none());
}

#[test]
fn a_dual_stack_network_carries_both_families() {
    // BEP 32: three nodes in five are dual-stack (one id, an IPv4 and an IPv6 address, a
    // table for each), one in five IPv4-only, one in five IPv6-only. Single-family nodes
    // reach each other through the dual-stack ones, which answer each family from its own
    // table (`nodes` / `nodes6`) and store peers of both.
    let mut sim = Sim::new(SimConfig {
        seed: 32,
        loss: 0.02,
        ..SimConfig::default()
    });
    let n = 600;
    let kind = |i: usize| match i % 5 {
        3 => "v4",
        4 => "v6",
        _ => "dual",
    };
    for i in 0..n {
        let addrs: Vec<std::net::SocketAddr> = match kind(i) {
            "v4" => vec![Sim::addr_of_index(i)],
            "v6" => vec![Sim::addr6_of_index(i)],
            _ => vec![Sim::addr_of_index(i), Sim::addr6_of_index(i)],
        };
        let me = sim.add_node_at(Config::default(), &addrs);
        // Bootstrap through two earlier nodes, at their addresses in our families.
        let mut via = Vec::new();
        for _ in 0..2 {
            if me == 0 {
                break;
            }
            let other = sim.rng().random_range(0..me);
            for a in &addrs {
                via.extend(sim.addr_like(other, a));
            }
        }
        sim.with_node(me, |nd, now| nd.bootstrap(now, &via));
        sim.run_for(Duration::from_millis(50));
    }
    sim.run_for(Duration::from_secs(60));
    let dual = 0;
    assert!(sim.node(dual).routing_table_for(false).unwrap().len() >= 8);
    assert!(sim.node(dual).routing_table_for(true).unwrap().len() >= 8);

    let found = |sim: &mut Sim, asker: usize, ih: Id, want: std::net::SocketAddr| {
        let lid = sim
            .with_node(asker, |nd, now| nd.get_peers(now, ih))
            .unwrap();
        sim.run_lookups(&[(asker, lid)], Duration::from_secs(60));
        sim.take_events(asker)
            .iter()
            .any(|e| matches!(e, Event::PeerFound { peer, .. } if *peer == want))
    };
    // An IPv4-only announce, found by another IPv4-only node; the same for IPv6.
    for (announcer, asker, ih) in [(3, 503, Id([0x44; 20])), (4, 504, Id([0x66; 20]))] {
        let lid = sim
            .with_node(announcer, |nd, now| nd.announce(now, ih, Some(7000), false))
            .unwrap();
        let r = sim.run_lookups(&[(announcer, lid)], Duration::from_secs(60));
        assert!(r[0].as_ref().unwrap().announced > 0);
        let want = std::net::SocketAddr::new(sim.addr(announcer).ip(), 7000);
        assert!(
            found(&mut sim, asker, ih, want),
            "{} announce found",
            kind(announcer)
        );
    }
    // A dual-stack node advertises in both families: found by an IPv4-only node at its IPv4
    // address and by an IPv6-only node at its IPv6 address.
    let ih = Id([0x32; 20]);
    let advertiser = 10;
    sim.with_node(advertiser, |nd, now| {
        nd.advertise(
            now,
            ih,
            Advert {
                port: Some(7000),
                seed: false,
            },
        )
    });
    sim.run_for(Duration::from_secs(30));
    let v4 = std::net::SocketAddr::new(Sim::addr_of_index(advertiser).ip(), 7000);
    let v6 = std::net::SocketAddr::new(Sim::addr6_of_index(advertiser).ip(), 7000);
    assert!(
        found(&mut sim, 508, ih, v4),
        "IPv4-only node finds the IPv4 peer"
    );
    assert!(
        found(&mut sim, 509, ih, v6),
        "IPv6-only node finds the IPv6 peer"
    );
    assert_eq!((kind(508), kind(509)), ("v4", "v6"));
}
