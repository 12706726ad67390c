//! The crawler server's usage, the Rust way: a node that keeps no peers, listens to the queries
//! others send (announce_peer and get_peers reveal infohashes), and keeps making neighbours.
//!
//! ```sh
//! cargo run -p dhtkit --example crawler_events -- [bootstrap host:port ...]
//! ```
//! Runs until Ctrl-C.

use std::time::Duration;

use dhtkit::{Dht, DhtEvent, Request};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let bootstrap: Vec<String> = std::env::args().skip(1).collect();
    let mut builder = Dht::builder()
        .bind("0.0.0.0:6881".parse()?)
        .max_nodes(2000)
        .peer_store(false); // like the seed: keep no torrent peer information
    if !bootstrap.is_empty() {
        builder = builder.bootstrap(bootstrap);
    }
    let dht = builder.build().await?;
    let mut events = dht.events();
    println!("DHT listening on {}", dht.local_addr()); // dht.on('listening')

    // dht.makeNeighbours(), repeated every few minutes to keep the table full.
    let neighbours = dht.clone();
    tokio::spawn(async move {
        loop {
            if neighbours.make_neighbours().await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_secs(300)).await;
        }
    });

    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            ev = events.recv() => match ev {
                Some(DhtEvent::QueryReceived { query: Request::AnnouncePeer { info_hash, .. }, .. }) => {
                    println!("onAnnouncePeerQuery - new torrent: {info_hash}");
                }
                Some(DhtEvent::QueryReceived { query: Request::GetPeers { info_hash, .. }, .. }) => {
                    println!("onGetPeersQuery - new torrent: {info_hash}");
                }
                Some(DhtEvent::SocketError { message }) => eprintln!("error: {message}"),
                Some(_) => {}
                None => break,
            },
        }
    }
    if events.lost() > 0 {
        eprintln!("{} events were dropped while we were busy", events.lost());
    }
    dht.shutdown().await;
    Ok(())
}
