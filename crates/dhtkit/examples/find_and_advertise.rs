//! The dht.js usage, the Rust way: join the DHT, advertise a service under an infohash, wait for
//! someone else to appear on it, save the node's state, and start a second node from that state.
//!
//! ```sh
//! cargo run -p dhtkit --example find_and_advertise -- <infohash-hex> <port> [bootstrap host:port ...]
//! ```
//! With no bootstrap nodes given, the public routers are used.

use std::time::Duration;

use dhtkit::{Dht, DhtEvent, Id};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: find_and_advertise <infohash-hex> <port> [bootstrap host:port ...]";
    let hash: Id = args.next().ok_or(usage)?.parse()?;
    let port: u16 = args.next().ok_or(usage)?.parse()?;
    let bootstrap: Vec<String> = args.collect();

    // Create a DHT node (dht.node.create) and connect it to known nodes (node.connect).
    let mut builder = Dht::builder().bind("0.0.0.0:0".parse()?);
    if !bootstrap.is_empty() {
        builder = builder.bootstrap(bootstrap);
    }
    let node = builder.build().await?;
    let mut events = node.events();
    println!("node {} on {}", node.id(), node.local_addr());

    // Tell everyone that we have a service to advertise (node.advertise); it is announced
    // again every 15 minutes until stopped.
    node.advertise(hash, Some(port)).await?;

    // Wait for someone to appear (node.on('peer:new', ...)), ignoring other infohashes.
    let wait = async {
        while let Some(ev) = events.recv().await {
            if let DhtEvent::PeerFound {
                info_hash,
                peer,
                advertised,
                ..
            } = ev
            {
                if info_hash == hash && advertised {
                    return Some(peer);
                }
            }
        }
        None
    };
    match tokio::time::timeout(Duration::from_secs(120), wait).await {
        Ok(Some(peer)) => println!("peer {peer}"),
        _ => println!("nobody else advertised {hash} within two minutes"),
    }

    // Returns the node's state (node.save), then stop listening (node.close).
    let state = node.state().await?;
    node.shutdown().await;
    println!("saved {} nodes", state.nodes.len());

    // Create a node from the saved state: same id, same neighbours, same advertised hashes.
    let old = Dht::builder()
        .bind("0.0.0.0:0".parse()?)
        .bootstrap(Vec::<String>::new())
        .state(state)
        .build()
        .await?;
    println!("restored node {}", old.id());
    old.shutdown().await;
    Ok(())
}
