use super::*;
use proptest::prelude::*;

fn addr(i: u32) -> SocketAddr {
    let b = i.to_be_bytes();
    SocketAddr::from(([127, b[1], b[2], b[3]], 6881))
}

/// A global address: 0..300 spans two /24s, so the per-subnet cap is hit often.
fn global(i: u32) -> SocketAddr {
    let b = i.to_be_bytes();
    SocketAddr::from(([8, b[1], b[2], b[3]], 6881))
}

#[derive(Debug, Clone)]
enum Op {
    Seen(u8, u32),
    Heard(u8, u32),
    Failed(u8),
    Queried(u8),
    Restore(u8, u32),
    Remove(u8),
    Advance(u16),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (any::<u8>(), 0u32..300).prop_map(|(a, b)| Op::Seen(a, b)),
        2 => (any::<u8>(), 0u32..300).prop_map(|(a, b)| Op::Heard(a, b)),
        2 => any::<u8>().prop_map(Op::Failed),
        1 => any::<u8>().prop_map(Op::Queried),
        1 => (any::<u8>(), 0u32..300).prop_map(|(a, b)| Op::Restore(a, b)),
        1 => any::<u8>().prop_map(Op::Remove),
        1 => any::<u16>().prop_map(Op::Advance),
    ]
}

/// Ids drawn from a small pool, biased to share long prefixes with our own id so that deep
/// buckets and splits are exercised.
fn id_for(seed: u8) -> Id {
    let mut b = [0u8; 20];
    b[0] = if seed.is_multiple_of(3) { 0x80 } else { 0 };
    b[(seed as usize % 19) + 1] = seed | 1;
    b[19] ^= seed;
    Id(b)
}

proptest! {
    #[test]
    fn invariants_hold_under_random_operations(
        ops in proptest::collection::vec(op(), 1..400),
        restrict in any::<bool>(),
        max_nodes in 1usize..200,
        public in any::<bool>(),
    ) {
        let cfg = TableConfig { max_nodes, restrict_ips: restrict, ..TableConfig::default() };
        let addr = |i: u32| if public { global(i) } else { addr(i) };
        let mut now = Instant::ZERO;
        let mut t = RoutingTable::new(Id([0; 20]), cfg, now);
        for op in ops {
            match op {
                Op::Seen(i, a) => { t.node_seen(now, id_for(i), addr(a), None); }
                Op::Heard(i, a) => { t.heard_about(now, id_for(i), addr(a)); }
                Op::Failed(i) => {
                    let id = id_for(i);
                    if let Some(e) = t.get(&id) { t.node_failed(&id, &e.addr); }
                }
                Op::Queried(i) => { let id = id_for(i); t.node_queried(now, &id, &addr(0)); }
                Op::Restore(i, a) => { t.restore(now, id_for(i), addr(a)); }
                Op::Remove(i) => { t.remove(&id_for(i)); }
                Op::Advance(s) => { now = now + Duration::from_secs(s as u64); }
            }
            if let Err(e) = t.check_invariants() {
                prop_assert!(false, "{}", e);
            }
        }
        let mut out = Vec::new();
        t.closest(now, &Id([0x55; 20]), 8, &mut out);
        for w in out.windows(2) {
            prop_assert!(w[0].0.distance(&Id([0x55; 20])) < w[1].0.distance(&Id([0x55; 20])));
        }
    }
}

#[test]
fn closest_matches_brute_force() {
    use rand::SeedableRng;
    let mut rng = rand::rngs::SmallRng::seed_from_u64(1);
    let own = Id::random(&mut rng);
    let mut t = RoutingTable::new(own, TableConfig::default(), Instant::ZERO);
    for i in 0..5000 {
        t.node_seen(Instant::ZERO, Id::random(&mut rng), addr(i), None);
    }
    t.check_invariants().unwrap();
    assert!(t.bucket_count() > 5);
    let mut out = Vec::new();
    for _ in 0..200 {
        let target = Id::random(&mut rng);
        t.closest(Instant::ZERO, &target, 8, &mut out);
        let mut all: Vec<_> = t.iter().map(|e| (e.id, e.addr)).collect();
        all.sort_by_key(|(id, _)| id.distance(&target));
        all.truncate(8);
        assert_eq!(out, all);
    }
}

#[test]
fn full_bucket_asks_to_ping_questionable_and_replaces_on_failure() {
    let own = Id([0; 20]);
    let cfg = TableConfig::default();
    let mut t = RoutingTable::new(own, cfg, Instant::ZERO);
    // Fill bucket 0 (ids with the top bit set); it cannot split once bucket 1 exists.
    t.node_seen(Instant::ZERO, Id([0x01; 20]), addr(999), None);
    let far = |i: u8| {
        let mut b = [i; 20];
        b[0] = 0x80 | i;
        Id(b)
    };
    for i in 0..8 {
        assert!(
            t.node_seen(Instant::ZERO, far(i), addr(i as u32), None)
                .added
        );
    }
    // Still good: the newcomer is cached, nobody is pinged.
    let o = t.node_seen(Instant::ZERO, far(20), addr(20), None);
    assert!(!o.added && o.ping.is_none());
    // Twenty minutes on, everyone is questionable: a newcomer asks for a ping.
    let later = Instant::ZERO + Duration::from_secs(20 * 60);
    let o = t.node_seen(later, far(21), addr(21), None);
    let (pid, paddr) = o.ping.expect("ping a questionable node");
    let f = t.node_failed(&pid, &paddr);
    assert_eq!(f.removed.map(|e| e.id), Some(pid));
    assert!(f.promoted.is_some());
    assert!(t.get(&pid).is_none());
    t.check_invariants().unwrap();
}

#[test]
fn one_node_per_ip() {
    let mut t = RoutingTable::new(Id([0; 20]), TableConfig::default(), Instant::ZERO);
    assert!(t.node_seen(Instant::ZERO, Id([1; 20]), addr(1), None).added);
    let other_port = SocketAddr::from(([127, 0, 0, 1], 7000));
    assert!(
        !t.node_seen(Instant::ZERO, Id([2; 20]), other_port, None)
            .added
    );
    assert_eq!(t.len(), 1);
}

/// One node per /24 (or /64) in a bucket for global addresses, as libtorrent; local networks
/// (test networks, LANs) are exempt.
#[test]
fn a_subnet_gets_one_place_per_bucket() {
    let now = Instant::ZERO;
    let own = Id([0; 20]);
    // Ids all in the far half (bucket 0 until it splits).
    let far = |n: u8| {
        let mut b = [0u8; 20];
        b[0] = 0x80 | n;
        b[19] = n;
        Id(b)
    };
    let mut t = RoutingTable::new(own, TableConfig::default(), now);
    for n in 0..8u8 {
        t.node_seen(
            now,
            far(n),
            SocketAddr::from(([8, 8, 8, n + 1], 6881)),
            None,
        );
    }
    assert_eq!(t.len(), 1, "eight hosts of 8.8.8.0/24: one place");
    for n in 8..15u8 {
        t.node_seen(now, far(n), SocketAddr::from(([8, 9, n, 1], 6881)), None);
    }
    assert_eq!(t.len(), 8, "seven more /24s: all kept");
    let v6 = |n: u16| SocketAddr::from(([0x2001, 0x4860, 1, 1, n, 0, 0, 1], 6881));
    let mut t6 = RoutingTable::new(own, TableConfig::default(), now);
    for n in 0..8u8 {
        t6.node_seen(now, far(n), v6(n as u16), None);
    }
    assert_eq!(t6.len(), 1, "one /64: one place");
    let mut local = RoutingTable::new(own, TableConfig::default(), now);
    for n in 0..8u8 {
        local.node_seen(
            now,
            far(n),
            SocketAddr::from(([10, 0, 0, n + 1], 6881)),
            None,
        );
    }
    assert_eq!(local.len(), 8, "a private network is exempt");
    t.check_invariants().unwrap();
}
