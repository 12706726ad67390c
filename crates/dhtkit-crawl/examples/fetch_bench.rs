//! Metadata fetches per second on loopback: a local peer serves `TORRENTS` info dictionaries
//! (about 10 KiB each) and the crawler's fetcher fetches and verifies all of them, `CONCURRENCY`
//! at once. Peer and fetcher share this process (and the machine's cores).
//!
//! `cargo run --release -p dhtkit-crawl --example fetch_bench -- [TORRENTS] [CONCURRENCY]`
//! (defaults 5,000 and 200).

#[path = "../tests/support/wire.rs"]
mod wire;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use dhtkit_crawl::metadata::{fetch, FetchConfig};
use dhtkit_proto::Id;
use sha1::{Digest, Sha1};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use wire::{piece_data, requested_piece, send_ext};

/// One connection of an honest seeder of every torrent in `infos`.
async fn serve(mut s: TcpStream, infos: Arc<HashMap<[u8; 20], Vec<u8>>>) -> std::io::Result<()> {
    let mut hs = [0u8; 68];
    s.read_exact(&mut hs).await?;
    let ih: [u8; 20] = hs[28..48].try_into().unwrap();
    let Some(info) = infos.get(&ih) else {
        return Ok(());
    };
    hs[25] |= 0x10;
    s.write_all(&hs).await?;
    let ext = format!("d1:md11:ut_metadatai2ee13:metadata_sizei{}ee", info.len());
    send_ext(&mut s, 0, ext.as_bytes()).await?;
    let mut len = [0u8; 4];
    loop {
        s.read_exact(&mut len).await?;
        let mut m = vec![0u8; u32::from_be_bytes(len) as usize];
        s.read_exact(&mut m).await?;
        if m.first() != Some(&20) || m.get(1) != Some(&2) {
            continue;
        }
        send_ext(&mut s, 1, &piece_data(info, requested_piece(&m[2..]))).await?;
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args().skip(1);
    let torrents: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(5_000);
    let concurrency: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(200);
    let mut infos = HashMap::new();
    for i in 0..torrents {
        let pieces = "p".repeat(10_000);
        let info = format!(
            "d6:lengthi{}e4:name14:torrent {i:06}12:piece lengthi16384e6:pieces{}:{pieces}e",
            1 + i,
            pieces.len()
        )
        .into_bytes();
        infos.insert(Sha1::digest(&info).into(), info);
    }
    let hashes: Vec<[u8; 20]> = infos.keys().copied().collect();
    let infos = Arc::new(infos);
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let at = l.local_addr().unwrap();
    let served = infos.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            tokio::spawn(serve(s, served.clone()));
        }
    });
    let slots = Arc::new(Semaphore::new(concurrency));
    let t0 = Instant::now();
    let mut tasks = Vec::with_capacity(torrents);
    for ih in hashes {
        let permit = slots.clone().acquire_owned().await.unwrap();
        tasks.push(tokio::spawn(async move {
            let r = fetch(
                at,
                Id(ih),
                *b"-DK0001-000000000001",
                &FetchConfig::default(),
            )
            .await;
            drop(permit);
            r.is_ok()
        }));
    }
    let mut ok = 0;
    for t in tasks {
        ok += t.await.unwrap() as usize;
    }
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "{ok}/{torrents} fetched and verified in {secs:.2} s = {:.0} fetches/s at {concurrency} concurrent",
        torrents as f64 / secs
    );
}
