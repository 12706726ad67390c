//! BEP 44 on the simulator: items put by random nodes are found by other random nodes, at
//! 10,000 nodes with 5% loss. Mutable items are updated (a higher seq, with cas) and the
//! newest is what a get returns; a stale put is refused by the storing nodes.

use std::time::Duration;

use dhtkit_proto::items::{bencode_bytes, Item};
use dhtkit_proto::{Config, Id, LookupResult};
use dhtkit_sim::{Sim, SimConfig};
use rand::Rng;

fn network_size() -> usize {
    std::env::var("DHTKIT_SIM_NODES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000)
}

fn pick_other(sim: &mut Sim, not: usize) -> usize {
    let alive: Vec<usize> = sim.alive().collect();
    loop {
        let i = alive[sim.rng().random_range(0..alive.len())];
        if i != not {
            return i;
        }
    }
}

/// Puts every item from a random node; returns (putter, result) per item.
fn put_all(sim: &mut Sim, items: &[(Item, Option<i64>)]) -> Vec<(usize, LookupResult)> {
    let mut started = Vec::new();
    for (item, cas) in items {
        let who = pick_other(sim, usize::MAX);
        let lid = sim
            .with_node(who, |n, now| n.put_item(now, item.clone(), *cas))
            .expect("lookup slot");
        started.push((who, lid));
    }
    let results = sim.run_lookups(&started, Duration::from_secs(120));
    started
        .iter()
        .zip(results)
        .map(|((w, _), r)| (*w, r.expect("every put finishes")))
        .collect()
}

/// Gets every target from a node other than its putter.
fn get_all(sim: &mut Sim, wanted: &[(usize, Id, Vec<u8>)]) -> Vec<LookupResult> {
    let mut started = Vec::new();
    for (putter, target, salt) in wanted {
        let who = pick_other(sim, *putter);
        let lid = sim
            .with_node(who, |n, now| n.get_item(now, *target, salt))
            .expect("lookup slot");
        started.push((who, lid));
    }
    sim.run_lookups(&started, Duration::from_secs(120))
        .into_iter()
        .map(|r| r.expect("every get finishes"))
        .collect()
}

#[test]
fn put_and_get_at_ten_thousand_nodes_with_loss() {
    let n = network_size();
    let mut sim = Sim::new(SimConfig {
        seed: 44,
        loss: 0.05,
        ..SimConfig::default()
    });
    sim.grow(
        n,
        &Config::default(),
        Duration::from_millis(50),
        Duration::from_secs(120),
    );

    // 100 immutable items and 100 mutable ones (each under its own key, half with a salt).
    let mut items = Vec::new();
    for i in 0..100u32 {
        items.push((
            Item::immutable(bencode_bytes(format!("immutable {i}").as_bytes())),
            None,
        ));
    }
    let mut keys = Vec::new();
    for i in 0..100u32 {
        let seed: [u8; 32] = sim.rng().random();
        let salt = if i % 2 == 0 {
            b"salt".to_vec()
        } else {
            Vec::new()
        };
        items.push((
            Item::mutable(
                &seed,
                &salt,
                1,
                bencode_bytes(format!("v1 of {i}").as_bytes()),
            ),
            None,
        ));
        keys.push((seed, salt));
    }
    let puts = put_all(&mut sim, &items);
    let stored = puts.iter().filter(|(_, r)| r.announced > 0).count();
    let acks: usize = puts.iter().map(|(_, r)| r.announced).sum();
    let put_msgs: u32 = puts.iter().map(|(_, r)| r.queries).sum();
    eprintln!(
        "puts: {stored}/{} stored somewhere, {:.1} acks and {:.1} messages each",
        puts.len(),
        acks as f64 / puts.len() as f64,
        put_msgs as f64 / puts.len() as f64
    );

    let wanted: Vec<(usize, Id, Vec<u8>)> = items
        .iter()
        .zip(&puts)
        .map(|((item, _), (putter, _))| {
            let salt = item.signed.as_ref().map_or(Vec::new(), |s| s.salt.clone());
            (*putter, item.target(), salt)
        })
        .collect();
    let gets = get_all(&mut sim, &wanted);
    let found = items
        .iter()
        .zip(&gets)
        .filter(|((item, _), r)| r.item.as_ref() == Some(item))
        .count();
    let get_msgs: u32 = gets.iter().map(|r| r.queries).sum();
    eprintln!(
        "gets: {found}/{} found, {:.1} messages each; {:?}",
        gets.len(),
        get_msgs as f64 / gets.len() as f64,
        sim.stats()
    );
    assert!(found * 100 >= items.len() * 99, "put/get below 99%");

    // Updates: seq 2 with cas 1 everywhere, then a stale seq-1 put with other content, which
    // the storing nodes refuse (302); a get returns seq 2.
    let updates: Vec<(Item, Option<i64>)> = keys
        .iter()
        .enumerate()
        .take(20)
        .map(|(i, (seed, salt))| {
            let v = bencode_bytes(format!("v2 of {i}").as_bytes());
            (Item::mutable(seed, salt, 2, v), Some(1))
        })
        .collect();
    let up = put_all(&mut sim, &updates);
    assert!(
        up.iter().all(|(_, r)| r.announced > 0),
        "every update stored"
    );
    let stale: Vec<(Item, Option<i64>)> = keys
        .iter()
        .take(20)
        .map(|(seed, salt)| (Item::mutable(seed, salt, 1, bencode_bytes(b"stale")), None))
        .collect();
    let st = put_all(&mut sim, &stale);
    let refused = st
        .iter()
        .filter(|(_, r)| r.put_refusals.iter().any(|f| f.code == 302))
        .count();
    assert!(refused >= 19, "stale puts refused with 302: {refused}/20");
    // The stale puts' searches saw the newer item on the nodes they asked.
    let saw_newer = st.iter().filter(|(_, r)| r.item_report.newer > 0).count();
    assert!(
        saw_newer >= 19,
        "stale puts saw seq 2 first: {saw_newer}/20"
    );
    for (_, r) in &st {
        let rep = r.item_report;
        assert_eq!(
            rep.answered,
            rep.current + rep.older + rep.newer + rep.invalid + rep.without,
            "every answer is counted once: {rep:?}"
        );
    }
    let wanted: Vec<(usize, Id, Vec<u8>)> = updates
        .iter()
        .zip(&up)
        .map(|((item, _), (p, _))| {
            (
                *p,
                item.target(),
                item.signed.as_ref().unwrap().salt.clone(),
            )
        })
        .collect();
    let newest = get_all(&mut sim, &wanted);
    let ok = updates
        .iter()
        .zip(&newest)
        .filter(|((item, _), r)| r.item.as_ref() == Some(item))
        .count();
    eprintln!("updates: {ok}/20 read back at seq 2; stale puts refused by {refused}/20");
    assert!(ok >= 19, "the newest seq comes back: {ok}/20");
    let good = newest.iter().filter(|r| r.item_report.current >= 3).count();
    assert!(good >= 19, "gets name the nodes that had seq 2: {good}/20");

    minority_refusals(&mut sim, &keys[0].0, &updates[0].0, up[0].1.closest.clone());
}

/// Two of the nodes holding `item` (seq 2, signed with `seed`) are given seq 3 directly; putting `item` again
/// then mostly succeeds, and the put reports exactly those two as refusing it with 302. A
/// get afterwards returns seq 3 and counts the nodes still at seq 2 as older.
fn minority_refusals(
    sim: &mut Sim,
    seed: &[u8; 32],
    item: &Item,
    holders: Vec<(Id, std::net::SocketAddr)>,
) {
    use dhtkit_proto::{Event, Request, RequestOutcome};
    let signed = item.signed.as_ref().unwrap();
    let target = item.target();
    let newer = Item::mutable(seed, &signed.salt, 3, bencode_bytes(b"v3 by two nodes"));
    let asker = pick_other(sim, usize::MAX);
    let picked: Vec<std::net::SocketAddr> = holders
        .iter()
        .map(|(_, a)| *a)
        .filter(|a| {
            sim.index_of(a)
                .is_some_and(|i| sim.is_alive(i) && i != asker)
        })
        .take(2)
        .collect();
    assert_eq!(picked.len(), 2, "two live holders");
    for y in &picked {
        // get for a token, then put seq 3 on that node alone (a lost datagram is retried).
        let mut stored = false;
        for _ in 0..5 {
            let rid = sim.with_node(asker, |n, now| {
                n.request(now, *y, Request::get(target, None))
            });
            sim.run_for(Duration::from_secs(20));
            let token = sim.take_events(asker).into_iter().find_map(|e| match e {
                Event::RequestFinished {
                    id,
                    outcome: RequestOutcome::Response(r),
                    ..
                } if Some(id) == rid => r.token,
                _ => None,
            });
            let Some(token) = token else { continue };
            let rid = sim.with_node(asker, |n, now| {
                n.request(now, *y, Request::put(token, &newer, None))
            });
            sim.run_for(Duration::from_secs(20));
            stored = sim.take_events(asker).into_iter().any(|e| {
                matches!(e, Event::RequestFinished {
                    id,
                    outcome: RequestOutcome::Response(_),
                    ..
                } if Some(id) == rid)
            });
            if stored {
                break;
            }
        }
        assert!(stored, "seq 3 stored on {y}");
    }
    let putter = pick_other(sim, asker);
    let lid = sim
        .with_node(putter, |n, now| n.put_item(now, item.clone(), None))
        .expect("lookup slot");
    let r = sim.run_lookups(&[(putter, lid)], Duration::from_secs(120))[0]
        .clone()
        .expect("the put finishes");
    eprintln!(
        "minority: stored on {}, refusals {:?}, report {:?}",
        r.announced, r.put_refusals, r.item_report
    );
    assert!(
        r.announced >= 4,
        "the put mostly succeeded: {}",
        r.announced
    );
    assert!(!r.put_refusals.is_empty(), "the refusals are reported");
    for f in &r.put_refusals {
        assert_eq!(f.code, 302, "refused as older: {f:?}");
        assert!(
            picked.contains(&f.addr),
            "only the nodes at seq 3 refuse: {f:?}"
        );
        assert!(!f.message.is_empty());
    }
    assert!(
        r.item_report.newer >= 1 && r.item_report.current >= 3,
        "{:?}",
        r.item_report
    );

    let getter = pick_other(sim, putter);
    let lid = sim
        .with_node(getter, |n, now| n.get_item(now, target, &signed.salt))
        .expect("lookup slot");
    let g = sim.run_lookups(&[(getter, lid)], Duration::from_secs(120))[0]
        .clone()
        .expect("the get finishes");
    assert_eq!(
        g.item.as_ref().and_then(|i| i.seq()),
        Some(3),
        "the highest seq wins"
    );
    assert!(g.item_report.current >= 1, "{:?}", g.item_report);
    assert!(
        g.item_report.older >= 3,
        "the nodes at seq 2 count as older: {:?}",
        g.item_report
    );
}

/// Nodes that drop items two hours after their last put (as BEP 44 allows).
fn two_hour_nodes() -> Config {
    let mut c = Config::default();
    let mut items = dhtkit_proto::items::ItemConfig::default();
    items.lifetime = Duration::from_secs(2 * 3600);
    c.items = Some(items);
    c
}

#[test]
fn kept_items_outlive_the_two_hour_expiry() {
    let mut sim = Sim::new(SimConfig {
        seed: 45,
        loss: 0.02,
        ..SimConfig::default()
    });
    // The fixed schedule (a put every hour), on nodes that drop items after two hours.
    let mut cfg = two_hour_nodes();
    cfg.adaptive_item_refresh = false;
    sim.grow(
        300,
        &cfg,
        Duration::from_millis(50),
        Duration::from_secs(60),
    );
    let kept = Item::immutable(bencode_bytes(b"kept alive"));
    let once = Item::immutable(bencode_bytes(b"put once"));
    let owner = 7;
    sim.with_node(owner, |n, now| n.keep_item(now, kept.clone()));
    let lid = sim
        .with_node(owner, |n, now| n.put_item(now, once.clone(), None))
        .unwrap();
    assert!(sim.run_lookups(&[(owner, lid)], Duration::from_secs(60))[0].is_some());
    // Three virtual hours: past the 2-hour expiry of the item put once.
    sim.run_for(Duration::from_secs(3 * 3600));
    let gets: Vec<(usize, Id, Vec<u8>)> = vec![
        (owner, kept.target(), Vec::new()),
        (owner, once.target(), Vec::new()),
    ];
    let r = get_all(&mut sim, &gets);
    assert_eq!(
        r[0].item.as_ref(),
        Some(&kept),
        "the kept item is still there"
    );
    assert_eq!(r[1].item, None, "the item put once expired");
    assert_eq!(sim.node(owner).kept_items(), vec![kept.clone()]);
    assert!(sim.with_node(owner, |n, _| n.stop_keeping(&kept.target())));
}

#[test]
fn scrape_estimates_seeds_and_peers() {
    // BEP 33 on 2,000 nodes: 30 seeds and 20 other peers announce one infohash; a scrape from
    // another node estimates both from the nodes' merged filters.
    let mut sim = Sim::new(SimConfig {
        seed: 33,
        loss: 0.02,
        ..SimConfig::default()
    });
    sim.grow(
        2_000,
        &Config::default(),
        Duration::from_millis(50),
        Duration::from_secs(60),
    );
    let ih = Id::random(sim.rng());
    let mut started = Vec::new();
    for i in 0..50usize {
        let who = 100 + i * 7;
        let seed = i < 30;
        let lid = sim
            .with_node(who, |n, now| n.announce(now, ih, Some(6881), seed))
            .unwrap();
        started.push((who, lid));
    }
    let done = sim.run_lookups(&started, Duration::from_secs(120));
    assert!(done
        .iter()
        .all(|r| r.as_ref().is_some_and(|r| r.announced > 0)));
    let asker = 1_999;
    let lid = sim.with_node(asker, |n, now| n.scrape(now, ih)).unwrap();
    let r = sim.run_lookups(&[(asker, lid)], Duration::from_secs(60))[0]
        .clone()
        .expect("scrape finishes");
    let s = r.scrape.expect("nodes sent filters");
    eprintln!("scrape: {s:?}, {} peers found", r.peers_found);
    assert!(
        (27..=33).contains(&s.seeds),
        "30 seeds, estimated {}",
        s.seeds
    );
    assert!(
        (17..=23).contains(&s.peers),
        "20 peers, estimated {}",
        s.peers
    );
}

#[test]
fn the_adaptive_schedule_learns_a_two_hour_expiry_and_then_keeps_the_item_readable() {
    // On nodes that drop items two hours after their last put, the adaptive schedule's first
    // long interval finds the holders gone (one gap), and from then on it puts before the age
    // at which they went: every later read finds the item.
    let mut sim = Sim::new(SimConfig {
        seed: 46,
        loss: 0.02,
        ..SimConfig::default()
    });
    sim.grow(
        300,
        &two_hour_nodes(),
        Duration::from_millis(50),
        Duration::from_secs(60),
    );
    let kept = Item::immutable(bencode_bytes(b"kept on forgetful nodes"));
    let owner = 7;
    sim.with_node(owner, |n, now| n.keep_item(now, kept.clone()));
    sim.run_for(Duration::from_secs(4 * 3600));
    let (mut reads, mut found) = (0, 0);
    for _ in 0..48 {
        sim.run_for(Duration::from_secs(10 * 60));
        let r = get_all(&mut sim, &[(owner, kept.target(), Vec::new())]);
        reads += 1;
        found += usize::from(r[0].item.as_ref() == Some(&kept));
    }
    assert_eq!(found, reads, "every read from hour 4 to hour 12 finds it");
    let puts = sim
        .take_events(owner)
        .into_iter()
        .filter(|e| {
            matches!(e, dhtkit_proto::Event::LookupFinished(l)
                if l.kind == dhtkit_proto::LookupKind::PutItem && !l.put_skipped)
        })
        .count();
    // Eight hours after learning: a put about every hour, never more than every 15 minutes.
    assert!((6..=32).contains(&puts), "{puts} puts in 12 hours");
}
