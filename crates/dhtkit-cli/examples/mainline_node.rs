//! The `mainline` crate (8.0.1) as a load-test target: one server-mode node on ADDR:PORT with
//! no bootstrap. Prints its pid, then runs until killed (or 10 minutes).
//!
//! usage: cargo run --release -p dhtkit-cli --example mainline_node -- 127.92.0.1 6881

use std::net::Ipv4Addr;
use std::time::Duration;

fn main() {
    let mut args = std::env::args().skip(1);
    let addr: Ipv4Addr = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(Ipv4Addr::new(127, 92, 0, 1));
    let port: u16 = args.next().and_then(|p| p.parse().ok()).unwrap_or(6881);
    assert!(addr.is_loopback(), "loopback only");
    let _dht = mainline::Dht::builder()
        .bind_address(addr)
        .port(port)
        .bootstrap(&[] as &[String])
        .server_mode()
        .build()
        .expect("the mainline node starts");
    println!("{}", std::process::id());
    std::thread::sleep(Duration::from_secs(600));
}
