//! The ceiling of a load test: a responder that answers every datagram with one fixed
//! `ping` response (the query's transaction id copied in), reading in batches (quinn-udp's
//! `recvmmsg`), with no protocol logic at all. Loopback only.
//!
//! usage: cargo run --release -p dhtkit-load --example fixed_reply -- 127.90.0.1:6881

use std::io::IoSliceMut;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

fn main() {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| "127.90.0.1:6881".parse().unwrap());
    assert!(addr.ip().is_loopback(), "loopback only");
    let sock = UdpSocket::bind(addr).expect("bind");
    let state = quinn_udp::UdpSocketState::new((&sock).into()).expect("socket options");
    sock.set_nonblocking(true).unwrap();
    println!("{}", std::process::id());
    let mut reply = b"d1:rd2:id20:ffffffffffffffffffffe1:t4:TTTT1:y1:re".to_vec();
    let t_at = reply.len() - 11;
    let mut slots = vec![0u8; 32 * 2048];
    let mut meta = [quinn_udp::RecvMeta::default(); 32];
    // Ends by itself after 10 minutes.
    let deadline = Instant::now() + Duration::from_secs(600);
    while Instant::now() < deadline {
        let mut chunks = slots.chunks_exact_mut(2048);
        let mut bufs: [IoSliceMut<'_>; 32] =
            std::array::from_fn(|_| IoSliceMut::new(chunks.next().unwrap()));
        match state.recv((&sock).into(), &mut bufs, &mut meta) {
            Ok(n) => {
                for (m, b) in meta.iter().zip(bufs.iter()).take(n) {
                    let d = &b[..m.len];
                    if let Some(at) = d.windows(5).rposition(|w| w == b"1:t4:") {
                        if let Some(t) = d.get(at + 5..at + 9) {
                            reply[t_at..t_at + 4].copy_from_slice(t);
                            let _ = sock.send_to(&reply, m.addr);
                        }
                    }
                }
            }
            Err(_) => {
                // Nothing waiting: block until something is (at most a second).
                let _ = sock.set_nonblocking(false);
                let _ = sock.set_read_timeout(Some(Duration::from_secs(1)));
                let _ = sock.peek_from(&mut [0u8; 1]);
                let _ = sock.set_nonblocking(true);
            }
        }
    }
}
