//! The async API over real UDP sockets on loopback: small networks of dhtkit nodes, each on its
//! own 127.x.y.z address. Every wait is bounded.

use std::net::SocketAddr;
use std::time::Duration;

use dhtkit::{Dht, DhtEvent, Id, OwnedValue, SavedState};
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(20);

async fn node(ip: [u8; 4], bootstrap: &[SocketAddr]) -> Dht {
    Dht::builder()
        .bind(SocketAddr::from((ip, 0)))
        .bootstrap(bootstrap.iter().map(|a| a.to_string()))
        .build()
        .await
        .expect("bind on loopback")
}

/// `n` nodes on 127.<net>.<i>.1, each bootstrapping through the first, all bootstrapped.
async fn network(net: u8, n: u8) -> Vec<Dht> {
    let first = node([127, net, 1, 1], &[]).await;
    let seed = first.local_addr();
    let mut all = vec![first];
    for i in 2..=n {
        all.push(node([127, net, i, 1], &[seed]).await);
    }
    for d in &all {
        timeout(WAIT, d.bootstrapped())
            .await
            .expect("bootstrap in time")
            .unwrap();
    }
    // A second round lets the early nodes learn about the later ones.
    for d in &all {
        d.make_neighbours().await.unwrap();
    }
    all
}

async fn shutdown(all: Vec<Dht>) {
    for d in all {
        d.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn announce_get_peers_find_node_ping() {
    let all = network(31, 6).await;
    let ih: Id = "0123456789abcdef0123456789abcdef01234567".parse().unwrap();
    let a = timeout(WAIT, all[1].announce(ih, Some(4242)))
        .await
        .unwrap()
        .unwrap();
    assert!(a.announced >= 3, "announced to {} nodes", a.announced);

    let mut lookup = all[4].get_peers(ih).await.unwrap();
    let expected = SocketAddr::from(([127, 31, 2, 1], 4242));
    let mut found = Vec::new();
    while let Some(p) = timeout(WAIT, lookup.next_peer())
        .await
        .expect("lookup ends")
    {
        found.push(p);
    }
    assert_eq!(found, vec![expected]);

    let target = all[5].id();
    let closest = timeout(WAIT, all[0].find_node(target))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        closest.first().map(|c| c.0),
        Some(target),
        "exact match comes first"
    );

    let via = timeout(WAIT, all[0].find_node_via(target, all[2].local_addr()))
        .await
        .unwrap()
        .unwrap();
    assert!(!via.is_empty());

    let id = timeout(WAIT, all[0].ping(all[3].local_addr()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(id, all[3].id());

    let table = all[0].routing_table().await.unwrap();
    assert!(table.len() >= 4, "table has {} nodes", table.len());
    let stats = all[1].stats().await.unwrap();
    assert!(
        stats.node.queries_out > 0 && stats.nodes == all[1].routing_table().await.unwrap().len()
    );
    shutdown(all).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn advertised_infohash_reports_peers_as_advertised() {
    let all = network(32, 5).await;
    let ih = Id([0x42; 20]);
    // Someone else is already in the swarm.
    timeout(WAIT, all[2].announce(ih, Some(5000)))
        .await
        .unwrap()
        .unwrap();
    let mut events = all[3].events();
    all[3].advertise(ih, Some(6000)).await.unwrap();
    let other = SocketAddr::from(([127, 32, 3, 1], 5000));
    let seen = timeout(WAIT, async {
        while let Some(e) = events.recv().await {
            if let DhtEvent::PeerFound {
                info_hash,
                peer,
                advertised,
                ..
            } = e
            {
                if info_hash == ih && peer == other {
                    return advertised;
                }
            }
        }
        false
    })
    .await
    .expect("peer found while advertising");
    assert!(
        seen,
        "a peer found by our own re-announce is flagged as advertised"
    );
    assert_eq!(
        all[3].state().await.unwrap().advertised,
        vec![(ih, Some(6000))]
    );
    all[3].stop_advertising(ih).await.unwrap();
    assert!(all[3].state().await.unwrap().advertised.is_empty());
    shutdown(all).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restored_node_works_without_bootstrap_nodes() {
    let all = network(33, 5).await;
    let dir = std::env::temp_dir().join(format!("dhtkit-restore-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("state.json");
    let a = Dht::builder()
        .bind(SocketAddr::from(([127, 33, 9, 1], 0)))
        .bootstrap([all[0].local_addr().to_string()])
        .state_file(&path)
        .build()
        .await
        .unwrap();
    timeout(WAIT, a.bootstrapped()).await.unwrap().unwrap();
    let ih = Id([7; 20]);
    a.advertise(ih, Some(7000)).await.unwrap();
    let id = a.id();
    a.shutdown().await;
    let saved = SavedState::load(&path).unwrap();
    assert_eq!(saved.id, id);
    assert!(saved.nodes.len() >= 3, "saved {} nodes", saved.nodes.len());
    assert_eq!(saved.advertised, vec![(ih, Some(7000))]);

    // No bootstrap nodes at all: the saved nodes are enough.
    let b = Dht::builder()
        .bind(SocketAddr::from(([127, 33, 9, 1], 0)))
        .bootstrap(Vec::<String>::new())
        .state_file(&path)
        .build()
        .await
        .unwrap();
    assert_eq!(b.id(), id, "id comes from the state file");
    let n = timeout(WAIT, b.bootstrapped()).await.unwrap().unwrap();
    assert!(n >= 3);
    let closest = timeout(WAIT, b.find_node(all[4].id()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(closest.first().map(|c| c.0), Some(all[4].id()));
    b.shutdown().await;
    std::fs::remove_dir_all(&dir).unwrap();
    shutdown(all).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_subscriber_loses_events_and_the_node_keeps_answering() {
    let quiet = Dht::builder()
        .bind(SocketAddr::from(([127, 34, 1, 1], 0)))
        .bootstrap(Vec::<String>::new())
        .event_capacity(4)
        // 30 quick pings from one IP are over the default per-IP limit; this is about events.
        .per_ip_rate(0)
        .build()
        .await
        .unwrap();
    let mut lagging = quiet.events(); // never read until the end
    assert_eq!(
        lagging.recv().await,
        Some(DhtEvent::Listening {
            addr: quiet.local_addr(),
            id: quiet.id()
        }),
        "every subscription opens with the listening event"
    );
    let asker = node([127, 34, 2, 1], &[]).await;
    for _ in 0..30 {
        timeout(WAIT, asker.ping(quiet.local_addr()))
            .await
            .unwrap()
            .unwrap();
    }
    // The subscriber fell behind: the first read reports the loss, not a stall.
    let first = timeout(WAIT, lagging.recv()).await.unwrap();
    assert!(first.is_some());
    assert!(lagging.lost() >= 20, "lost {} events", lagging.lost());
    // And the node never waited for it.
    let id = timeout(WAIT, asker.ping(quiet.local_addr()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(id, quiet.id());
    quiet.shutdown().await;
    asker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_messages_and_message_events() {
    let listener = Dht::builder()
        .bind(SocketAddr::from(([127, 35, 1, 1], 0)))
        .bootstrap(Vec::<String>::new())
        .message_events(true)
        .build()
        .await
        .unwrap();
    let sender = node([127, 35, 2, 1], &[]).await;
    let mut events = listener.events();
    let mut q = std::collections::BTreeMap::new();
    q.insert(b"t".to_vec(), OwnedValue::Bytes(b"zz".to_vec()));
    q.insert(b"y".to_vec(), OwnedValue::Bytes(b"q".to_vec()));
    q.insert(b"q".to_vec(), OwnedValue::Bytes(b"vote".to_vec()));
    let mut a = std::collections::BTreeMap::new();
    a.insert(b"id".to_vec(), OwnedValue::Bytes(vec![1; 20]));
    q.insert(b"a".to_vec(), OwnedValue::Dict(a));
    let msg = OwnedValue::Dict(q);
    sender
        .send_message(&msg, listener.local_addr())
        .await
        .unwrap();
    let (mut raw, mut decoded, mut query) = (false, false, false);
    timeout(WAIT, async {
        while let Some(e) = events.recv().await {
            match e {
                DhtEvent::Datagram { bytes, .. } => {
                    raw |= bytes.as_ref() == msg.to_bytes().as_slice()
                }
                DhtEvent::Message { message, .. } => decoded |= *message == msg,
                DhtEvent::QueryReceived { query: q, .. } => {
                    query |= q.name() == b"vote" && q.kind() == dhtkit::MethodKind::Other
                }
                _ => {}
            }
            if raw && decoded && query {
                break;
            }
        }
    })
    .await
    .expect("events arrive");
    listener.shutdown().await;
    sender.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bep44_put_and_get_over_loopback() {
    let all = network(36, 6).await;
    // Immutable: the target is the SHA-1 of the bencoded value.
    let value = dhtkit::items::bencode_bytes(b"hello from dhtkit");
    let put = timeout(WAIT, all[1].put_immutable(value.clone()))
        .await
        .unwrap()
        .unwrap();
    assert!(put.stored >= 3, "stored on {} nodes", put.stored);
    assert_eq!(put.target, dhtkit::items::immutable_target(&value));
    let got = timeout(WAIT, all[4].get(put.target, b""))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.map(|i| i.value), Some(value));

    // Mutable with a salt: the first put gets seq 1, the next seq 2 (read, then cas).
    let seed = [42u8; 32];
    let first = timeout(
        WAIT,
        all[2].put_mutable(&seed, b"profile", dhtkit::items::bencode_bytes(b"v1"), None),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!((first.seq, first.errors.len()), (Some(1), 0));
    let second = timeout(
        WAIT,
        all[3].put_mutable(&seed, b"profile", dhtkit::items::bencode_bytes(b"v2"), None),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(second.seq, Some(2));
    assert!(second.stored >= 3, "stored on {} nodes", second.stored);
    let got = timeout(WAIT, all[5].get(second.target, b"profile"))
        .await
        .unwrap()
        .unwrap()
        .expect("found");
    assert_eq!(got.seq(), Some(2));
    assert_eq!(got.value, dhtkit::items::bencode_bytes(b"v2"));
    // A stale seq is refused by the nodes that hold seq 2.
    let stale = timeout(
        WAIT,
        all[0].put_mutable(
            &seed,
            b"profile",
            dhtkit::items::bencode_bytes(b"old"),
            Some(1),
        ),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(stale.errors.contains(&302), "errors: {:?}", stale.errors);
    // The wrong salt finds nothing that verifies.
    let none = timeout(WAIT, all[5].get(second.target, b"other"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(none, None);
    // keep_item puts at once (then checks and puts again as the churn needs); another node
    // reads it.
    let kept = dhtkit::Item::immutable(dhtkit::items::bencode_bytes(b"kept"));
    all[1].keep_item(kept.clone()).await.unwrap();
    let mut got = None;
    for _ in 0..50 {
        got = all[3].get(kept.target(), b"").await.unwrap();
        if got.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(got, Some(kept.clone()));
    assert!(all[1].stop_keeping(kept.target()).await.unwrap());
    assert!(!all[1].stop_keeping(kept.target()).await.unwrap());
    shutdown(all).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dual_stack_nodes_serve_both_families() {
    // Four dual-stack nodes (127.38.i.1 and ::1), two IPv6-only and an IPv4-only node.
    // Every IPv6 node is on ::1, the one IPv6 loopback address: one node per IP and the
    // per-IP query limit are lifted, as libtorrent's test networks do.
    let lift = |c: &mut dhtkit_proto::Config| c.table.restrict_ips = false;
    let dual = |i: u8, boot: Vec<SocketAddr>| async move {
        Dht::builder()
            .bind(SocketAddr::from(([127, 38, i, 1], 0)))
            .bind("[::1]:0".parse().unwrap())
            .per_ip_rate(0)
            .config(lift)
            .bootstrap(boot.iter().map(|a| a.to_string()))
            .build()
            .await
            .expect("bind both families on loopback")
    };
    let first = dual(1, Vec::new()).await;
    assert_eq!(first.local_addrs().len(), 2);
    assert!(first.local_addrs()[0].is_ipv4() && first.local_addrs()[1].is_ipv6());
    // A subscription opens with one Listening event per socket.
    let mut ev = first.events();
    for want in first.local_addrs().to_vec() {
        match ev.recv().await {
            Some(dhtkit::DhtEvent::Listening { addr, .. }) => assert_eq!(addr, want),
            other => panic!("expected Listening on {want}, got {other:?}"),
        }
    }
    let seeds = first.local_addrs().to_vec();
    let mut all = vec![first];
    for i in 2..=4 {
        all.push(dual(i, seeds.clone()).await);
    }
    let single = |bind: SocketAddr, boot: SocketAddr| async move {
        Dht::builder()
            .bind(bind)
            .per_ip_rate(0)
            .config(lift)
            .bootstrap([boot.to_string()])
            .build()
            .await
            .unwrap()
    };
    let v6a = single("[::1]:0".parse().unwrap(), seeds[1]).await;
    let v6b = single("[::1]:0".parse().unwrap(), seeds[1]).await;
    let v4 = single(SocketAddr::from(([127, 38, 9, 1], 0)), seeds[0]).await;
    for d in all.iter().chain([&v6a, &v6b, &v4]) {
        timeout(WAIT, d.bootstrapped()).await.unwrap().unwrap();
    }
    for d in all.iter().chain([&v6a, &v6b, &v4]) {
        d.make_neighbours().await.unwrap();
    }
    // An IPv6 peer announced over IPv6 (nodes6 carry the lookup) is found by another
    // IPv6-only node.
    let ih: Id = "6666666666666666666666666666666666666666".parse().unwrap();
    let a = timeout(WAIT, v6a.announce(ih, Some(4646)))
        .await
        .unwrap()
        .unwrap();
    assert!(a.announced >= 2, "announced to {} nodes", a.announced);
    let mut lookup = v6b.get_peers(ih).await.unwrap();
    let want: SocketAddr = "[::1]:4646".parse().unwrap();
    let mut found = Vec::new();
    while let Some(p) = timeout(WAIT, lookup.next_peer()).await.unwrap() {
        found.push(p);
    }
    assert_eq!(found, vec![want]);
    // A dual-stack node looks in both families: it finds the IPv6 peer too.
    let mut lookup = all[2].get_peers(ih).await.unwrap();
    let mut found = Vec::new();
    while let Some(p) = timeout(WAIT, lookup.next_peer()).await.unwrap() {
        found.push(p);
    }
    assert_eq!(
        found,
        vec![want],
        "a dual-stack get_peers reaches IPv6 peers"
    );
    // And it announces in both: an IPv4-only and an IPv6-only node find it, each at its
    // address in their family.
    let ih2: Id = "3232323232323232323232323232323232323232".parse().unwrap();
    let a = timeout(WAIT, all[3].announce(ih2, None))
        .await
        .unwrap()
        .unwrap();
    assert!(
        a.announced >= 4,
        "announced to {} nodes in all",
        a.announced
    );
    for (asker, want) in [
        (&v4, all[3].local_addrs()[0]),
        (&v6b, all[3].local_addrs()[1]),
    ] {
        let mut lookup = asker.get_peers(ih2).await.unwrap();
        let mut found = Vec::new();
        while let Some(p) = timeout(WAIT, lookup.next_peer()).await.unwrap() {
            found.push(p);
        }
        assert_eq!(found, vec![want]);
    }
    // BEP 44 and BEP 33 in both families too: an item put over IPv6 only is read by a
    // dual-stack node, and a dual-stack scrape counts the IPv6 announcer.
    let item = dhtkit::Item::immutable(dhtkit::items::bencode_bytes(b"over IPv6"));
    let put = timeout(WAIT, v6a.put(item.clone(), None))
        .await
        .unwrap()
        .unwrap();
    assert!(put.stored >= 2, "stored on {} nodes", put.stored);
    let got = timeout(WAIT, all[1].get(item.target(), b""))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, Some(item));
    let s = timeout(WAIT, all[1].scrape(ih))
        .await
        .unwrap()
        .unwrap()
        .expect("filters");
    assert_eq!(
        (s.seeds, s.peers),
        (0, 1),
        "the IPv6 announcer, counted once"
    );
    // find_node too: a dual-stack node's answer has nodes of both families, closest first;
    // an IPv6-only node's has IPv6 nodes only.
    let target = all[3].id();
    let closest = timeout(WAIT, all[0].find_node(target))
        .await
        .unwrap()
        .unwrap();
    assert!(closest.iter().any(|(_, a)| a.is_ipv4()), "{closest:?}");
    assert!(closest.iter().any(|(_, a)| a.is_ipv6()), "{closest:?}");
    assert!(
        closest
            .windows(2)
            .all(|w| w[0].0.distance(&target) <= w[1].0.distance(&target)),
        "closest first: {closest:?}"
    );
    assert_eq!(closest[0].0, target, "the target node itself answered");
    let closest6 = timeout(WAIT, v6b.find_node(target)).await.unwrap().unwrap();
    assert!(!closest6.is_empty() && closest6.iter().all(|(_, a)| a.is_ipv6()));
    // The snapshot and the count cover both tables.
    let table = all[0].routing_table().await.unwrap();
    assert!(table.iter().any(|n| n.addr.is_ipv4()) && table.iter().any(|n| n.addr.is_ipv6()));
    assert_eq!(all[0].stats().await.unwrap().nodes, table.len());
    // The dual-stack nodes keep a table per family, and their state has both.
    let state = all[0].state().await.unwrap();
    assert!(
        state.nodes.iter().any(|(_, a)| a.is_ipv4()),
        "{:?}",
        state.nodes
    );
    assert!(
        state.nodes.iter().any(|(_, a)| a.is_ipv6()),
        "{:?}",
        state.nodes
    );
    let ping = timeout(WAIT, v4.ping(all[1].local_addrs()[0]))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ping, all[1].id());
    let ping6 = timeout(WAIT, v6a.ping(all[1].local_addrs()[1]))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ping6, all[1].id(), "one id on both sockets");
    shutdown(all).await;
    shutdown(vec![v6a, v6b, v4]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_on_wildcard_address_joins_a_local_network_given_by_hand() {
    // dht.js's way in: a node on 0.0.0.0 with no bootstrap nodes, then `connect` to a node on
    // a local network. Before, the node refused local addresses it was not bootstrapped with.
    let all = network(37, 4).await;
    let lone = Dht::builder()
        .bind(SocketAddr::from(([0, 0, 0, 0], 0)))
        .bootstrap(Vec::<String>::new())
        .build()
        .await
        .unwrap();
    lone.add_node(all[0].local_addr()).await.unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    while lone.routing_table().await.unwrap().is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the node given by hand answered"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    lone.make_neighbours().await.unwrap();
    let found = timeout(WAIT, lone.find_node(all[3].id()))
        .await
        .unwrap()
        .unwrap();
    assert!(
        found.iter().any(|(_, a)| *a == all[3].local_addr()),
        "the lookup went through local nodes: {found:?}"
    );
    lone.shutdown().await;
    shutdown(all).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_events_can_be_turned_off_and_on() {
    let a = node([127, 38, 1, 1], &[]).await;
    let b = node([127, 38, 2, 1], &[]).await;
    let mut events = a.events();
    a.set_rpc_events(false).await.unwrap();
    b.ping(a.local_addr()).await.unwrap();
    a.set_rpc_events(true).await.unwrap();
    b.ping(a.local_addr()).await.unwrap();
    // The first query left no event; the second did, and it is the first one seen.
    let mut queries = 0;
    while let Ok(Some(e)) = timeout(Duration::from_millis(500), events.recv()).await {
        if let DhtEvent::QueryReceived { .. } = e {
            queries += 1;
        }
    }
    assert_eq!(
        queries, 1,
        "one query event, for the ping made with events on"
    );
    shutdown(vec![a, b]).await;
}
