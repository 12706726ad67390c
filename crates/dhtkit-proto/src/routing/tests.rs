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
    Take,
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
        1 => Just(Op::Take),
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
        v4_only in any::<bool>(),
    ) {
        let cfg = TableConfig { max_nodes, restrict_ips: restrict, ..TableConfig::default() };
        let addr = |i: u32| if public { global(i) } else { addr(i) };
        let mut now = Instant::ZERO;
        let mut t = if v4_only {
            RoutingTable::new_ipv4(Id([0; 20]), cfg, now)
        } else {
            RoutingTable::new(Id([0; 20]), cfg, now)
        };
        for op in ops {
            match op {
                Op::Seen(i, a) => { t.node_seen(now, id_for(i), addr(a), None); }
                Op::Heard(i, a) => { t.heard_about(now, id_for(i), addr(a)); }
                Op::Failed(i) => {
                    let id = id_for(i);
                    if let Some(e) = t.get(&id) { t.node_failed(now, &id, &e.addr); }
                }
                Op::Queried(i) => { let id = id_for(i); t.node_queried(now, &id, &addr(0)); }
                Op::Restore(i, a) => { t.restore(now, id_for(i), addr(a)); }
                Op::Remove(i) => { t.remove(&id_for(i)); }
                Op::Advance(s) => { now = now + Duration::from_secs(s as u64); }
                Op::Take => {
                    // The remembered "nothing due before" never hides a due node: the same
                    // call on a copy that forgot it returns the same nodes.
                    let mut fresh = t.clone();
                    fresh.forget_due();
                    let (mut a, mut b) = (Vec::new(), Vec::new());
                    t.take_questionable(now, Duration::from_secs(60), 1000, &mut a);
                    fresh.take_questionable(now, Duration::from_secs(60), 1000, &mut b);
                    prop_assert_eq!(a, b);
                }
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
    let (mut t, far) = full_far_bucket(TableConfig::default(), 100);
    // Still good: the newcomer is cached, nobody is pinged.
    let o = t.node_seen(Instant::ZERO, far(20), addr(20), None);
    assert!(!o.added && o.ping.is_none());
    // Twenty minutes on, everyone is questionable: a newcomer asks for a ping.
    let later = Instant::ZERO + Duration::from_secs(20 * 60);
    let o = t.node_seen(later, far(21), addr(21), None);
    let (pid, paddr) = o.ping.expect("ping a questionable node");
    let f = t.node_failed(later, &pid, &paddr);
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

/// A table whose bucket 0 (the far half) is full: eight nodes answering in `rtt` ms (plus
/// their index), and one node in bucket 1 so that bucket 0 cannot split.
fn full_far_bucket(cfg: TableConfig, rtt: u64) -> (RoutingTable, impl Fn(u8) -> Id) {
    let mut t = RoutingTable::new(Id([0; 20]), cfg, Instant::ZERO);
    t.node_seen(Instant::ZERO, Id([0x01; 20]), addr(999), None);
    let far = |i: u8| {
        let mut b = [i; 20];
        b[0] = 0x80 | i;
        Id(b)
    };
    for i in 0..8 {
        let ms = Some(Duration::from_millis(rtt + i as u64));
        assert!(t.node_seen(Instant::ZERO, far(i), addr(i as u32), ms).added);
    }
    (t, far)
}

#[test]
fn a_much_faster_newcomer_replaces_the_slowest_resident() {
    let ms = |m: u64| Some(Duration::from_millis(m));
    let now = Instant::ZERO;
    let (mut t, far) = full_far_bucket(TableConfig::default(), 200);
    // 150 ms is not twice as fast as the slowest (207 ms): cached.
    assert!(!t.node_seen(now, far(20), addr(20), ms(150)).added);
    // 60 ms is: it takes the slowest's place, and the slowest waits in the cache.
    let o = t.node_seen(now, far(21), addr(21), ms(60));
    assert!(o.added);
    assert_eq!(o.removed.map(|e| e.id), Some(far(7)));
    assert!(t.contains(&far(21)) && !t.contains(&far(7)));
    assert!(t.replacements().any(|e| e.id == far(7)));
    t.check_invariants().unwrap();

    // On a LAN, half of a millisecond is not worth a change (the margin).
    let (mut t, far) = full_far_bucket(TableConfig::default(), 2);
    assert!(!t.node_seen(now, far(22), addr(22), ms(0)).added);

    // `stock`: first come, first kept.
    let stock = crate::Config::stock().table;
    let (mut t, far) = full_far_bucket(stock, 200);
    assert!(!t.node_seen(now, far(23), addr(23), ms(5)).added);

    // Importing a settled table applies the same rule, and caches nothing.
    let (mut t, far) = full_far_bucket(TableConfig::default(), 200);
    assert!(t.import_seen(now, far(24), addr(24), ms(10)).added);
    assert!(!t.import_seen(now, far(25), addr(25), ms(300)).added);
    assert_eq!(t.replacements().count(), 0);
}

#[test]
fn an_evicted_node_is_quarantined_for_minutes() {
    let now = Instant::ZERO;
    let (mut t, far) = full_far_bucket(TableConfig::default(), 100);
    t.heard_about(now, far(30), addr(30));
    // One timeout evicts it (a replacement waits), and its address is quarantined.
    let victim = t.get(&far(3)).unwrap();
    let f = t.node_failed(now, &victim.id, &victim.addr);
    assert_eq!(f.removed.map(|e| e.id), Some(far(3)));
    assert!(t.is_quarantined(now, &victim.addr));
    // Mentioned by others: refused while quarantined, taken again after.
    t.node_failed(now, &far(30), &addr(30));
    assert!(!t.heard_about(now, far(3), victim.addr));
    let later = now + Duration::from_secs(5 * 60 + 1);
    assert!(!t.is_quarantined(later, &victim.addr));
    assert!(t.heard_about(later, far(3), victim.addr));
    // An answer ends a quarantine at once.
    let victim2 = t.get(&far(4)).unwrap();
    t.heard_about(now, far(31), addr(31));
    t.node_failed(now, &victim2.id, &victim2.addr);
    assert!(t.is_quarantined(now, &victim2.addr));
    t.node_seen(now, victim2.id, victim2.addr, None);
    assert!(!t.is_quarantined(now, &victim2.addr));
    // `stock` keeps a node through its first timeout and quarantines nothing.
    let (mut t, far) = full_far_bucket(crate::Config::stock().table, 100);
    t.heard_about(now, far(30), addr(30));
    let v = t.get(&far(3)).unwrap();
    assert!(t.node_failed(now, &v.id, &v.addr).removed.is_none());
    assert!(!t.is_quarantined(now, &v.addr));
}

#[test]
fn questionable_pings_skip_the_scan_until_one_can_be_due() {
    let (mut t, _) = full_far_bucket(TableConfig::default(), 100);
    let mut out = Vec::new();
    let minute = Duration::from_secs(60);
    t.take_questionable(Instant::ZERO, minute, 100, &mut out);
    assert!(out.is_empty(), "all good");
    let later = Instant::ZERO + Duration::from_secs(16 * 60);
    t.take_questionable(later, minute, 100, &mut out);
    assert_eq!(out.len(), 9, "all questionable after 15 minutes");
    t.take_questionable(later + Duration::from_secs(30), minute, 100, &mut out);
    assert!(out.is_empty(), "each pinged at most once a minute");
    t.take_questionable(later + Duration::from_secs(61), minute, 100, &mut out);
    assert_eq!(out.len(), 9);
}

#[test]
fn the_stale_round_visits_every_quiet_node_in_turn() {
    let (mut t, _) = full_far_bucket(TableConfig::default(), 100);
    let idle = Duration::from_secs(300);
    assert_eq!(
        t.next_stale(Instant::ZERO, idle),
        None,
        "all answered just now"
    );
    let later = Instant::ZERO + Duration::from_secs(400);
    let mut seen = std::collections::HashSet::new();
    while let Some((id, _)) = t.next_stale(later, idle) {
        assert!(seen.insert(id), "each once per round");
    }
    assert_eq!(seen.len(), t.len(), "every node of the table");
    // One answers again: the next round skips it.
    let (id, addr) = t.iter().map(|e| (e.id, e.addr)).next().unwrap();
    let again = later + Duration::from_secs(400);
    t.node_seen(again, id, addr, None);
    let mut round = Vec::new();
    while let Some((n, _)) = t.next_stale(again, idle) {
        round.push(n);
    }
    assert_eq!(round.len(), t.len() - 1);
    assert!(!round.contains(&id));
}

/// An IPv4 table holds what a table of either family holds, in 48 bytes a node, and refuses
/// IPv6 addresses.
#[test]
fn ipv4_tables_are_compact_and_refuse_ipv6() {
    assert_eq!(std::mem::size_of::<Slot<AddrV4>>(), 48);
    assert_eq!(std::mem::size_of::<Slot<Addr>>(), 64);
    let now = Instant::ZERO;
    let own = Id([0; 20]);
    let (mut any, mut v4) = (
        RoutingTable::new(own, TableConfig::default(), now),
        RoutingTable::new_ipv4(own, TableConfig::default(), now),
    );
    use rand::SeedableRng;
    let mut rng = rand::rngs::SmallRng::seed_from_u64(3);
    for i in 1..600u32 {
        let rtt = Some(Duration::from_millis(10 + (i % 200) as u64));
        let id = Id::random(&mut rng);
        let a = any.node_seen(now, id, addr(i), rtt);
        let b = v4.node_seen(now, id, addr(i), rtt);
        assert_eq!(a, b);
        if i % 3 == 0 {
            let id = Id::random(&mut rng);
            assert_eq!(
                any.heard_about(now, id, addr(i + 1000)),
                v4.heard_about(now, id, addr(i + 1000))
            );
        }
    }
    assert!(v4.len() > 40);
    assert_eq!(
        any.iter().collect::<Vec<_>>(),
        v4.iter().collect::<Vec<_>>()
    );
    assert_eq!(
        any.replacements().collect::<Vec<_>>(),
        v4.replacements().collect::<Vec<_>>()
    );
    let six: SocketAddr = "[2001:db8::1]:6881".parse().unwrap();
    let id = Id::random(&mut rng);
    assert!(!v4.node_seen(now, id, six, None).added);
    assert!(!v4.heard_about(now, id, six));
    assert!(!v4.restore(now, id, six));
    assert!(!v4.has_room_for(&id, &six));
    assert!(!v4.is_quarantined(now, &six));
    assert!(v4.check_invariants().is_ok());
}
