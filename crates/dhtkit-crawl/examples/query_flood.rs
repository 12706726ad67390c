//! Offers a crawler internet-like discovery load on loopback: `get_peers` queries for fresh
//! random infohashes from many source addresses (127.77.x.y), at a fixed rate, for a fixed
//! time. Used to measure a crawl's memory when its seen-set, queues and database fill up.
//!
//! `cargo run --release -p dhtkit-crawl --example query_flood -- TARGET_ADDR RATE SECONDS`
//! (at most 50,000 queries a second and 600 seconds; loopback targets only).

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

fn main() {
    let mut args = std::env::args().skip(1);
    let target: SocketAddr = args
        .next()
        .and_then(|a| a.parse().ok())
        .expect("TARGET_ADDR (a 127.x.y.z:port address)");
    assert!(target.ip().is_loopback(), "loopback targets only");
    let rate: u64 = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(2000)
        .min(50_000);
    let secs: u64 = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(60)
        .min(600);
    // 512 sources, so that per-IP limits (20 queries a second by default) do not drop them.
    let sockets: Vec<UdpSocket> = (0..512u32)
        .map(|i| {
            let ip = std::net::Ipv4Addr::new(127, 77, (i >> 8) as u8, (i & 0xff) as u8 + 1);
            let s = UdpSocket::bind((ip, 0)).expect("bind a source address");
            s.set_nonblocking(true).unwrap();
            s
        })
        .collect();
    let mut state = 0x243f_6a88_85a3_08d3u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let start = Instant::now();
    let end = start + Duration::from_secs(secs);
    let mut sent = 0u64;
    let mut buf = [0u8; 2048];
    while Instant::now() < end {
        let due = (start.elapsed().as_secs_f64() * rate as f64) as u64;
        while sent < due {
            let s = &sockets[(sent % sockets.len() as u64) as usize];
            let mut id = [0u8; 20];
            let mut ih = [0u8; 20];
            for c in id.chunks_mut(8).chain(ih.chunks_mut(8)) {
                let v = next().to_le_bytes();
                c.copy_from_slice(&v[..c.len()]);
            }
            let mut m = b"d1:ad2:id20:".to_vec();
            m.extend_from_slice(&id);
            m.extend_from_slice(b"9:info_hash20:");
            m.extend_from_slice(&ih);
            m.extend_from_slice(b"e1:q9:get_peers1:t2:aa1:y1:qe");
            let _ = s.send_to(&m, target);
            sent += 1;
        }
        // Drain replies so that no socket buffer fills.
        for s in &sockets[..8] {
            while s.recv_from(&mut buf).is_ok() {}
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    println!(
        "sent {sent} get_peers queries in {:.1} s",
        start.elapsed().as_secs_f64()
    );
}
