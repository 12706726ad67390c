//! Fetches one torrent's metadata from one peer and prints what it says:
//! `cargo run -p dhtkit-crawl --example fetch_metadata -- PEER_ADDR INFOHASH_HEX`.

use dhtkit_crawl::metadata::{fetch, parse, FetchConfig};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(peer), Some(ih)) = (args.next(), args.next()) else {
        eprintln!("usage: fetch_metadata PEER_ADDR INFOHASH_HEX");
        std::process::exit(2);
    };
    let peer = peer.parse().expect("PEER_ADDR is ADDR:PORT");
    let ih = ih.parse().expect("INFOHASH_HEX is 40 hex digits");
    match fetch(peer, ih, *b"-DK0001-123456789012", &FetchConfig::default()).await {
        Ok(v) => match parse(&v.info, 100) {
            Ok(t) => println!(
                "{:?} hash: {} ({} files, {} bytes)",
                v.kind, t.name, t.file_count, t.total_size
            ),
            Err(e) => println!("verified, but {e}"),
        },
        Err(e) => {
            println!("failed ({}): {e}", e.reason());
            std::process::exit(1);
        }
    }
}
