//! The answer path does not allocate: once warm, decoding a query, answering it and encoding
//! the reply touch no heap. Measured with dhat's heap counter (a test allocator; no unsafe here).

use std::net::SocketAddr;

use dhtkit_proto::{Config, Instant, Node};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

fn queries() -> Vec<Vec<u8>> {
    let id = b"abcdefghij0123456789";
    let mut out = Vec::new();
    let mut q = |method: &str, extra: &[u8]| {
        let mut m = b"d1:ad2:id20:".to_vec();
        m.extend_from_slice(id);
        m.extend_from_slice(extra);
        m.extend_from_slice(format!("e1:q{}:{}1:t4:tttt1:y1:qe", method.len(), method).as_bytes());
        out.push(m);
    };
    q("ping", b"");
    q("find_node", b"6:target20:mnopqrstuvwxyz123456");
    q("get_peers", b"9:info_hash20:mnopqrstuvwxyz123456");
    q("get_peers", b"9:info_hash20:00000000000000000000");
    q("sample_infohashes", b"6:target20:mnopqrstuvwxyz123456");
    out
}

#[test]
fn answering_queries_does_not_allocate() {
    let _profiler = dhat::Profiler::builder().testing().build();
    let now = Instant::ZERO;
    let mut cfg = Config::default();
    cfg.seed = 3;
    cfg.allow_local_addrs = true;
    // Every query comes from one IP at one instant: limits on (the per-IP map and the reply
    // budget are on the measured path) but wide enough that every query is answered.
    cfg.per_ip_rate = 100_000;
    cfg.per_ip_burst = 4_000;
    cfg.reply_rate = 100_000;
    cfg.reply_burst = 100_000;
    let mut node = Node::new(cfg, now);
    // A routing table and a peer store with something in them.
    let state: Vec<_> = (1..=40u8)
        .map(|i| {
            let mut id = [i.wrapping_mul(37); 20];
            id[19] = i;
            (
                dhtkit_proto::Id(id),
                SocketAddr::from(([127, 1, 0, i], 6881)),
            )
        })
        .collect();
    node.import_state(now, &state);
    let from = SocketAddr::from(([127, 9, 9, 9], 6881));
    let qs = queries();
    let mut sent = 0usize;
    let mut rounds = 0u64;
    let mut round = |node: &mut Node| {
        // A millisecond per round: the per-IP bucket refills (100 tokens) as it would.
        rounds += 1;
        let t = now + std::time::Duration::from_millis(rounds);
        for q in &qs {
            node.handle_datagram(t, from, q);
            while node.poll_transmit().is_some() {
                sent += 1;
            }
            while node.poll_event().is_some() {}
        }
    };
    // Warm up: buffers grow to size, the querier is checked once.
    for _ in 0..20 {
        round(&mut node);
    }
    // The querier's verification ping times out and settles; then measure.
    node.handle_timeout(now);
    let answered_before = node.stats().replies_out;
    let before = dhat::HeapStats::get();
    for _ in 0..200 {
        round(&mut node);
    }
    let after = dhat::HeapStats::get();
    // Every query was answered, none dropped by a limit.
    let s = node.stats();
    assert_eq!(s.replies_out - answered_before, 200 * qs.len() as u64);
    assert_eq!((s.rate_limited, s.reply_limited), (0, 0));
    assert!(sent >= 220 * qs.len(), "datagrams sent: {sent}");
    dhat::assert_eq!(after.total_blocks - before.total_blocks, 0);
}
