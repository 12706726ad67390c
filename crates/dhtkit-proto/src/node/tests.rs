use super::*;
use crate::krpc::{Method, MethodKind, Request};
use std::time::Duration;

fn cfg(seed: u64) -> Config {
    Config {
        seed,
        allow_local_addrs: true,
        ..Config::default()
    }
}

fn addr(i: u8) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, i], 6881))
}

/// Moves every queued datagram between two nodes until both are quiet.
fn pump(now: Instant, a: (&mut Node, SocketAddr), b: (&mut Node, SocketAddr)) {
    for _ in 0..100 {
        let mut moved = false;
        while let Some(t) = a.0.poll_transmit() {
            let (dest, data) = (t.dest, t.payload.to_vec());
            if dest == b.1 {
                b.0.handle_datagram(now, a.1, &data);
                moved = true;
            }
        }
        while let Some(t) = b.0.poll_transmit() {
            let (dest, data) = (t.dest, t.payload.to_vec());
            if dest == a.1 {
                a.0.handle_datagram(now, b.1, &data);
                moved = true;
            }
        }
        if !moved {
            return;
        }
    }
    panic!("nodes did not go quiet");
}

fn events(n: &mut Node) -> Vec<Event> {
    std::iter::from_fn(|| n.poll_event()).collect()
}

#[test]
fn ping_adds_both_sides_and_reports() {
    let now = Instant::ZERO;
    let mut a = Node::new(cfg(1), now);
    let mut b = Node::new(cfg(2), now);
    let rid = a.ping(now, addr(2)).unwrap();
    pump(now, (&mut a, addr(1)), (&mut b, addr(2)));
    let ev = events(&mut a);
    assert!(ev.iter().any(|e| matches!(e, Event::RequestFinished { id, outcome: RequestOutcome::Response(Reply { id: nid, .. }), .. } if *id == rid && *nid == b.id())));
    assert!(ev.contains(&Event::NodeAdded {
        id: b.id(),
        addr: addr(2)
    }));
    // b heard a query from a and verified it with a ping of its own.
    assert!(b.routing_table().get(&a.id()).is_some());
    let ev = events(&mut b);
    assert!(ev.iter().any(|e| matches!(
        e,
        Event::QueryReceived {
            query: Method::Ping,
            ..
        }
    )));
}

#[test]
fn announce_with_token_is_stored_and_bad_token_rejected() {
    let now = Instant::ZERO;
    let mut a = Node::new(cfg(1), now);
    let mut b = Node::new(cfg(2), now);
    let ih = Id([7; 20]);
    a.request(now, addr(2), Request::get_peers(ih)).unwrap();
    pump(now, (&mut a, addr(1)), (&mut b, addr(2)));
    let token = events(&mut a)
        .into_iter()
        .find_map(|e| match e {
            Event::RequestFinished {
                outcome: RequestOutcome::Response(Reply { token, .. }),
                ..
            } => token,
            _ => None,
        })
        .expect("token");
    a.request(
        now,
        addr(2),
        Request::announce_peer(ih, Some(5000), b"nope".to_vec(), false),
    )
    .unwrap();
    pump(now, (&mut a, addr(1)), (&mut b, addr(2)));
    assert!(events(&mut a).iter().any(|e| matches!(
        e,
        Event::RequestFinished {
            outcome: RequestOutcome::Error { code: 203, .. },
            ..
        }
    )));
    a.request(
        now,
        addr(2),
        Request::announce_peer(ih, Some(5000), token, false),
    )
    .unwrap();
    pump(now, (&mut a, addr(1)), (&mut b, addr(2)));
    let stored: Vec<_> = b.peer_store().unwrap().peers(&ih).collect();
    assert_eq!(stored, vec![SocketAddr::from(([127, 0, 0, 1], 5000))]);
    // A later get_peers returns the peer.
    a.request(now, addr(2), Request::get_peers(ih)).unwrap();
    pump(now, (&mut a, addr(1)), (&mut b, addr(2)));
    let ev = events(&mut a);
    assert!(ev.iter().any(|e| matches!(e, Event::RequestFinished { outcome: RequestOutcome::Response(Reply { peers, .. }), .. } if peers == &stored)), "{ev:#?}");
}

#[test]
fn reply_echoes_tid_and_errors_follow_bep5() {
    let now = Instant::ZERO;
    let mut b = Node::new(cfg(2), now);
    let send = |b: &mut Node, m: &[u8]| -> Vec<u8> {
        b.handle_datagram(now, addr(9), m);
        // Skip our own queries (a verification ping to the new querier); return the reply.
        let mut reply = None;
        while let Some(t) = b.poll_transmit() {
            assert_eq!(t.dest, addr(9));
            if !t.payload.ends_with(b"1:y1:qe") {
                reply = Some(t.payload.to_vec());
            }
        }
        reply.expect("a reply")
    };
    let r = send(
        &mut b,
        b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t3:xyz1:y1:qe",
    );
    let v = crate::bencode::OwnedValue::decode(&r).unwrap();
    let crate::bencode::OwnedValue::Dict(d) = v else {
        panic!()
    };
    assert_eq!(
        d[&b"t"[..]],
        crate::bencode::OwnedValue::Bytes(b"xyz".to_vec())
    );
    assert_eq!(
        d[&b"y"[..]],
        crate::bencode::OwnedValue::Bytes(b"r".to_vec())
    );
    let e = send(
        &mut b,
        b"d1:ad2:id20:abcdefghij0123456789e1:q6:frobit1:t2:aa1:y1:qe",
    );
    assert!(
        e.windows(9).any(|w| w == b"li204e14:"),
        "{}",
        String::from_utf8_lossy(&e)
    );
    let e = send(&mut b, b"d1:ad2:id2:abe1:q4:ping1:t2:aa1:y1:qe");
    assert!(e.windows(6).any(|w| w == b"li203e"));
    // Unknown method with info_hash is answered like get_peers (token present).
    let r = send(&mut b, b"d1:ad2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz123456e1:q8:get_seed1:t2:aa1:y1:qe");
    assert!(r.windows(7).any(|w| w == b"5:token"));
    // Responses and garbage are never answered.
    b.handle_datagram(
        now,
        addr(9),
        b"d1:rd2:id20:abcdefghij0123456789e1:t2:aa1:y1:re",
    );
    b.handle_datagram(now, addr(9), b"garbage");
    assert!(b.poll_transmit().is_none());
}

#[test]
fn timeouts_fire_and_poll_timeout_is_a_minimum() {
    let now = Instant::ZERO;
    let mut a = Node::new(cfg(1), now);
    let rid = a.ping(now, addr(2)).unwrap();
    while a.poll_transmit().is_some() {}
    let d = a.poll_timeout().unwrap();
    assert!(d <= now + Duration::from_secs(2));
    a.handle_timeout(now + Duration::from_millis(500));
    assert!(events(&mut a).is_empty());
    a.handle_timeout(d);
    a.handle_timeout(d);
    let ev = events(&mut a);
    assert_eq!(
        ev,
        vec![Event::RequestFinished {
            id: rid,
            addr: addr(2),
            kind: MethodKind::Ping,
            outcome: RequestOutcome::Timeout
        }]
    );
}

#[test]
fn never_contacts_forbidden_addresses() {
    let now = Instant::ZERO;
    let mut a = Node::new(
        Config {
            seed: 1,
            ..Config::default()
        },
        now,
    );
    for bad in ["0.0.0.0:1", "224.0.0.1:1", "255.255.255.255:1", "8.8.8.8:0"] {
        assert!(a.ping(now, bad.parse().unwrap()).is_none(), "{bad}");
    }
    // Local addresses: never on the node's own initiative, but an explicit request may go.
    for local in ["127.0.0.1:1", "10.0.0.1:1", "192.168.1.1:1"] {
        let addr: SocketAddr = local.parse().unwrap();
        assert!(!a.may_contact(&addr), "{local}");
        assert!(!a.add_node(now, addr), "{local}");
        a.bootstrap(now, &[addr]);
        assert_eq!(a.lookups_running(), 0, "no bootstrap query to {local}");
        assert!(a.ping(now, addr).is_some(), "{local}");
    }
    assert!(a.may_contact(&"8.8.8.8:53".parse().unwrap()));
    // Until the driver says the user pointed it at a local network.
    a.allow_local_addrs();
    let lan: SocketAddr = "192.168.1.1:1".parse().unwrap();
    assert!(a.may_contact(&lan));
    assert!(a.add_node(now, lan));
    assert!(!a.may_contact(&"0.0.0.0:1".parse().unwrap()));
}

#[test]
fn read_only_node_answers_nothing_and_flags_queries() {
    let now = Instant::ZERO;
    let mut ro = Node::new(
        Config {
            read_only: true,
            ..cfg(3)
        },
        now,
    );
    ro.handle_datagram(
        now,
        addr(9),
        b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe",
    );
    assert!(ro.poll_transmit().is_none());
    ro.ping(now, addr(9)).unwrap();
    let t = ro.poll_transmit().unwrap();
    assert!(t.payload.windows(7).any(|w| w == b"2:roi1e"));
}

#[test]
fn node_wide_query_budget_holds_lookups_back() {
    let now = Instant::ZERO;
    let mut n = Node::new(
        Config {
            max_query_rate: 2,
            max_query_burst: 2,
            per_dest_rate: 0,
            ..cfg(4)
        },
        now,
    );
    let nodes: Vec<_> = (1..=20u8)
        .map(|i| {
            let mut id = [i.wrapping_mul(41); 20];
            id[19] = i;
            (Id(id), SocketAddr::from(([127, 2, 0, i], 6881)))
        })
        .collect();
    assert!(n.import_state(now, &nodes) >= 10);
    n.find_node(now, Id([0x33; 20])).unwrap();
    let sent = |n: &mut Node| std::iter::from_fn(|| n.poll_transmit().map(|_| ())).count();
    assert_eq!(sent(&mut n), 2, "burst of 2, though alpha is 3");
    // The lookup waits rather than failing candidates; half a second refills one token.
    let later = now + Duration::from_millis(500);
    let wake = n.poll_timeout().unwrap();
    assert!(
        wake <= now + Duration::from_millis(250),
        "a redrive is scheduled"
    );
    n.handle_timeout(later);
    assert_eq!(sent(&mut n), 1);
    assert_eq!(n.lookups_running(), 1);
}

/// The find_node queries `a` sent to `to` since last asked, by transaction id.
fn find_node_tids(a: &mut Node, to: SocketAddr) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(t) = a.poll_transmit() {
        let data = t.payload.to_vec();
        if t.dest == to && data.windows(9).any(|w| w == b"find_node") {
            let at = data.windows(5).position(|w| w == b"1:t4:").expect("tid") + 5;
            out.push(data[at..at + 4].to_vec());
        }
    }
    out
}

fn krpc_error(tid: &[u8], code: i64) -> Vec<u8> {
    let mut m = format!("d1:eli{code}e5:oopsee1:t{}:", tid.len()).into_bytes();
    m.extend_from_slice(tid);
    m.extend_from_slice(b"1:y1:ee");
    m
}

#[test]
fn a_lookup_asks_again_after_a_protocol_error_but_not_after_a_refusal() {
    // A 203 to a well-formed query most likely means it was damaged on the way: the lookup
    // asks the same node again, within its retries, and gives up when they run out. A 201
    // (the node refuses) is final.
    for (code, asked) in [(203, 1 + 2), (202, 1 + 2), (201, 1)] {
        let now = Instant::ZERO;
        let mut a = Node::new(cfg(1), now);
        let mut b = Node::new(cfg(2), now);
        a.ping(now, addr(2)).unwrap();
        pump(now, (&mut a, addr(1)), (&mut b, addr(2)));
        let _ = events(&mut a);
        let lid = a.find_node(now, Id([0x5a; 20])).unwrap();
        let mut sent = 0;
        for _ in 0..10 {
            let tids = find_node_tids(&mut a, addr(2));
            if tids.is_empty() {
                break;
            }
            for tid in tids {
                sent += 1;
                a.handle_datagram(now, addr(2), &krpc_error(&tid, code));
            }
        }
        assert_eq!(sent, asked, "code {code}");
        let finished = events(&mut a).into_iter().find_map(|e| match e {
            Event::LookupFinished(r) if r.id == lid => Some(r),
            _ => None,
        });
        let r = finished.expect("the lookup ends");
        assert_eq!(r.queries as usize, asked, "code {code}");
        assert!(r.closest.is_empty());
    }
}
