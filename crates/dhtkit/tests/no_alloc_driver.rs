//! The whole answer path of a running node does not allocate per query: batched receive
//! (recvmmsg), the core, and the send, over a real socket on loopback. Counted with dhat's
//! heap counter while a client sends queries one after another and reads each answer.
//!
//! The runtime, timers and channels may allocate now and then; the test allows a few dozen
//! allocations over 3,000 answered queries (one per query would be 3,000).

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use dhtkit::Dht;

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

const QUERIES: usize = 3_000;

#[test]
fn answering_over_a_socket_does_not_allocate_per_query() {
    let _profiler = dhat::Profiler::builder().testing().build();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let dht: Dht = rt.block_on(async {
        Dht::builder()
            .bind(SocketAddr::from(([127, 61, 0, 1], 0)))
            .bootstrap(Vec::<String>::new())
            .per_ip_rate(0)
            .reply_rate(0)
            .build()
            .await
            .unwrap()
    });
    let node = dht.local_addr();
    let client = UdpSocket::bind("127.61.0.2:0").unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    // Queries prepared up front: ping, find_node and get_peers, each with its own tid.
    let mut queries = Vec::new();
    for (i, m) in ["4:ping", "9:find_node", "9:get_peers"].iter().enumerate() {
        let args = match i {
            0 => String::new(),
            1 => "6:target20:mnopqrstuvwxyz123456".into(),
            _ => "9:info_hash20:mnopqrstuvwxyz123456".into(),
        };
        queries.push(
            format!("d1:ad2:id20:abcdefghij0123456789{args}e1:q{m}1:t2:t{i}1:y1:qe").into_bytes(),
        );
    }
    let mut buf = [0u8; 2048];
    let mut ask = |n: usize| {
        let mut answered = 0;
        for k in 0..n {
            let q = &queries[k % queries.len()];
            client.send_to(q, node).unwrap();
            // The node may query us too (it checks new contacts with a ping): skip those.
            for _ in 0..3 {
                match client.recv_from(&mut buf) {
                    Ok((len, _)) if buf[..len].windows(6).any(|w| w == b"1:y1:r") => {
                        answered += 1;
                        break;
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
        }
        answered
    };
    // Warm up: buffers grow, the client is checked once (a ping back to it), and so on.
    assert_eq!(ask(500), 500, "every warm-up query answered");
    std::thread::sleep(Duration::from_millis(200));
    let before = dhat::HeapStats::get();
    let answered = ask(QUERIES);
    let after = dhat::HeapStats::get();
    assert_eq!(answered, QUERIES, "every query answered");
    let allocations = after.total_blocks - before.total_blocks;
    eprintln!("{allocations} allocations over {QUERIES} answered queries");
    dhat::assert!(
        allocations <= 50,
        "{allocations} allocations for {QUERIES} queries"
    );
    rt.block_on(dht.shutdown());
}
