//! A whole node fed arbitrary datagrams from a few senders, with time moving: never panics, and
//! every queue stays within its configured bound.
#![no_main]

use std::net::SocketAddr;
use std::time::Duration;

use dhtkit_proto::{Config, Instant, Node};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut cfg = Config::default();
    cfg.seed = 1;
    cfg.allow_local_addrs = true;
    cfg.max_events = 64;
    cfg.max_outgoing = 64;
    let mut node = Node::new(cfg, Instant::ZERO);
    let mut now = Instant::ZERO;
    // Datagrams are separated by 0xff bytes; the byte before each picks the sender.
    for (i, chunk) in data.split(|&b| b == 0xff).enumerate() {
        let from = SocketAddr::from(([127, 0, 0, (i % 4) as u8 + 1], 6881));
        node.handle_datagram(now, from, chunk);
        now = now + Duration::from_millis(300);
        node.handle_timeout(now);
        assert!(node.pending_transmits() <= 64);
        while node.poll_transmit().is_some() {}
        let mut events = 0;
        while node.poll_event().is_some() {
            events += 1;
        }
        assert!(events <= 64);
        node.routing_table()
            .check_invariants()
            .expect("routing table invariants");
    }
});
