//! BEP 42 on the simulator, with realistic (public) addresses: nodes learn their external
//! address from the `ip` field of replies, take ids derived from it, and still find each
//! other's announces afterwards; nodes that enforce BEP 42 keep impostors out of their tables.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use dhtkit_proto::bep42::id_matches;
use dhtkit_proto::{Config, Event, Id};
use dhtkit_sim::{Sim, SimConfig};
use rand::Rng;

/// A public-looking address per node: 1.0.0.0/8 upwards, never a local range.
fn public(i: usize) -> SocketAddr {
    let n = i as u32 + 1;
    let ip = Ipv4Addr::new(1 + (n >> 16) as u8, (n >> 8) as u8, n as u8, 7);
    SocketAddr::new(IpAddr::V4(ip), 6881)
}

/// `n` nodes joining 20 per second, each through two earlier ones; `cfg_of(i)` configures
/// node i.
fn network(seed: u64, n: usize, cfg_of: &dyn Fn(usize) -> Config) -> Sim {
    let mut sim = Sim::new(SimConfig {
        seed,
        loss: 0.02,
        record_all_events: true,
        ..SimConfig::default()
    });
    for i in 0..n {
        let me = sim.add_node_at(cfg_of(i), &[public(i)]);
        let via: Vec<SocketAddr> = (0..2)
            .filter(|_| me > 0)
            .map(|_| public(sim.rng().random_range(0..me)))
            .collect();
        sim.with_node(me, |nd, now| nd.bootstrap(now, &via));
        sim.run_for(Duration::from_millis(50));
    }
    sim.run_for(Duration::from_secs(120));
    sim
}

#[test]
fn ids_are_derived_from_voted_addresses() {
    let n = 400;
    let mut sim = network(42, n, &|_| Config::default());
    let mut derived = 0;
    let mut changed = 0;
    for i in 0..n {
        changed += sim
            .take_events(i)
            .iter()
            .filter(|e| matches!(e, Event::IdChanged { .. }))
            .count();
        let node = sim.node(i);
        let id = node.id();
        if let Some(ip) = node.external_ip() {
            assert_eq!(ip, public(i).ip(), "node {i} believes the address it has");
            assert!(id_matches(&id, ip), "node {i}'s id matches its address");
            derived += 1;
        }
    }
    eprintln!("{derived}/{n} nodes derived their id from votes ({changed} id changes)");
    assert!(changed >= derived, "each took a new id once at least");
    assert!(
        derived * 100 >= n * 95,
        "only {derived}/{n} nodes were told their address"
    );

    // The network still works under the new ids.
    let ih = Id::random(sim.rng());
    let lid = sim
        .with_node(17, |nd, now| nd.announce(now, ih, Some(7000), false))
        .unwrap();
    let r = sim.run_lookups(&[(17, lid)], Duration::from_secs(60));
    assert!(r[0].as_ref().unwrap().announced >= 4);
    let lid = sim.with_node(300, |nd, now| nd.get_peers(now, ih)).unwrap();
    sim.run_lookups(&[(300, lid)], Duration::from_secs(60));
    let want = SocketAddr::new(public(17).ip(), 7000);
    assert!(sim
        .take_events(300)
        .iter()
        .any(|e| matches!(e, Event::PeerFound { peer, .. } if *peer == want)));
}

#[test]
fn enforcing_nodes_keep_impostors_out() {
    // One node in five keeps a random id (BEP 42 off); the others derive theirs and enforce.
    let n = 400;
    let impostor = |i: usize| i % 5 == 4;
    let sim = network(43, n, &|i| {
        let mut c = Config::default();
        if impostor(i) {
            c.secure_id = false;
        } else {
            c.enforce_secure_ids = true;
        }
        c
    });
    let mut entries = 0;
    for i in (0..n).filter(|&i| !impostor(i)) {
        for e in sim.node(i).routing_table().iter() {
            entries += 1;
            assert!(
                id_matches(&e.id, e.addr.ip()),
                "node {i} keeps {} at {}, whose id does not match",
                e.id,
                e.addr
            );
        }
    }
    assert!(entries > 0);
    let honest_table = sim.node(0).routing_table().len();
    assert!(
        honest_table >= 8,
        "enforcing nodes still fill their tables: {honest_table}"
    );
    // Impostors without enforcement do keep honest nodes (they are verified ones).
    assert!(sim.node(4).routing_table().len() >= 8);
}
