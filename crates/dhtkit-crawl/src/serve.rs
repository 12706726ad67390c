//! Giving metadata back to the swarm: a TCP listener that serves the info dictionaries the
//! crawler has stored to peers that ask for them over BEP 9 (`ut_metadata`), as the BEP 51
//! author asked crawlers to.
//!
//! It is a peer with no pieces: after the BEP 3 handshake for an infohash whose dictionary is
//! stored (any other is hung up on), it sends a BEP 10 extension handshake offering
//! `ut_metadata` with the dictionary's size, and answers each request for a 16 KiB piece with
//! the piece (or a reject). Everything else a peer sends is read and ignored. The crawler's
//! DHT nodes never announce it: peers reach it when given its address, or when it asks them
//! for metadata itself.
//!
//! Bounds, all in [`ServeConfig`]: connections at once (others are refused at accept),
//! bytes per second for all of them together, a handshake deadline, an idle timeout, a
//! lifetime per connection, requests per connection, and the longest message read.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dhtkit_proto::Id;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};

use crate::store::StoreRead;

/// BEP 9 piece size.
const PIECE: usize = 16 * 1024;
/// The extension-protocol message id (BEP 10).
const EXTENDED: u8 = 20;
/// Our `ut_metadata` id (peers use it when they send to us).
const OUR_UT_METADATA: u8 = 2;
/// What we call ourselves in the extension handshake.
const CLIENT: &str = concat!("dhtkit ", env!("CARGO_PKG_VERSION"));

/// The limits of the metadata server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServeConfig {
    /// Connections served at once; more are closed at accept.
    pub max_connections: usize,
    /// Metadata bytes sent per second, all connections together.
    pub bytes_per_second: u64,
    /// Time a peer has for its BEP 3 handshake.
    pub handshake_timeout: Duration,
    /// A connection on which nothing arrives for this long is closed.
    pub idle_timeout: Duration,
    /// The longest any connection lives.
    pub max_lifetime: Duration,
    /// Piece requests answered per connection.
    pub max_requests: u32,
    /// Longest peer-wire message read (a longer one closes the connection).
    pub max_message: usize,
}

impl Default for ServeConfig {
    fn default() -> ServeConfig {
        ServeConfig {
            max_connections: 64,
            bytes_per_second: 1 << 20,
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            max_lifetime: Duration::from_secs(120),
            max_requests: 1_000,
            max_message: 1 << 20,
        }
    }
}

/// What the server has done.
#[derive(Debug, Default)]
pub struct ServeStats {
    /// Connections accepted.
    pub connections: std::sync::atomic::AtomicU64,
    /// Connections refused because the server was full.
    pub refused: std::sync::atomic::AtomicU64,
    /// Handshakes for an infohash we hold the dictionary of.
    pub known: std::sync::atomic::AtomicU64,
    /// Pieces sent.
    pub pieces: std::sync::atomic::AtomicU64,
    /// Metadata bytes sent.
    pub bytes: std::sync::atomic::AtomicU64,
}

/// A shared token bucket of bytes.
struct Bucket {
    rate: u64,
    tokens: f64,
    at: tokio::time::Instant,
}

impl Bucket {
    /// How long to wait before `n` bytes may go (and takes them).
    fn take(&mut self, n: u64) -> Duration {
        let now = tokio::time::Instant::now();
        let burst = self.rate.max(PIECE as u64 * 4) as f64;
        self.tokens =
            (self.tokens + now.duration_since(self.at).as_secs_f64() * self.rate as f64).min(burst);
        self.at = now;
        self.tokens -= n as f64;
        if self.tokens >= 0.0 || self.rate == 0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.rate as f64)
        }
    }
}

struct Shared {
    cfg: ServeConfig,
    reader: Mutex<Box<dyn StoreRead + Send>>,
    bucket: Mutex<Bucket>,
    stats: Arc<ServeStats>,
    peer_id: [u8; 20],
}

/// The running server; stops when [`MetadataServer::shutdown`] is called or it is dropped.
#[derive(Debug)]
pub struct MetadataServer {
    addr: SocketAddr,
    stats: Arc<ServeStats>,
    stop: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl MetadataServer {
    /// Listens on `bind` (TCP) and serves the dictionaries `reader` holds.
    pub async fn start(
        bind: SocketAddr,
        reader: Box<dyn StoreRead + Send>,
        cfg: ServeConfig,
    ) -> std::io::Result<MetadataServer> {
        let listener = TcpListener::bind(bind).await?;
        let addr = listener.local_addr()?;
        let stats = Arc::new(ServeStats::default());
        let mut peer_id = *b"-DK0001-000000000000";
        let mut tail = [0u8; 12];
        let _ = getrandom::fill(&mut tail);
        for (o, r) in peer_id[8..].iter_mut().zip(tail) {
            *o = b'0' + r % 10;
        }
        let shared = Arc::new(Shared {
            cfg,
            reader: Mutex::new(reader),
            bucket: Mutex::new(Bucket {
                rate: cfg.bytes_per_second,
                tokens: cfg.bytes_per_second as f64,
                at: tokio::time::Instant::now(),
            }),
            stats: stats.clone(),
            peer_id,
        });
        let (stop, mut stopped) = watch::channel(false);
        let slots = Arc::new(Semaphore::new(cfg.max_connections.max(1)));
        let task = tokio::spawn(async move {
            loop {
                let (sock, _) = tokio::select! {
                    _ = stopped.changed() => break,
                    r = listener.accept() => match r {
                        Ok(c) => c,
                        Err(_) => {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    },
                };
                use std::sync::atomic::Ordering::Relaxed;
                let Ok(permit) = slots.clone().try_acquire_owned() else {
                    shared.stats.refused.fetch_add(1, Relaxed);
                    drop(sock);
                    continue;
                };
                shared.stats.connections.fetch_add(1, Relaxed);
                let (shared, mut stop) = (shared.clone(), stopped.clone());
                tokio::spawn(async move {
                    let life = shared.cfg.max_lifetime;
                    tokio::select! {
                        _ = tokio::time::timeout(life, serve(sock, shared)) => {}
                        _ = stop.changed() => {}
                    }
                    drop(permit);
                });
            }
        });
        Ok(MetadataServer {
            addr,
            stats,
            stop,
            task: Some(task),
        })
    }

    /// Where it listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// What it has done.
    pub fn stats(&self) -> &Arc<ServeStats> {
        &self.stats
    }

    /// Stops listening and closes every connection.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for MetadataServer {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// Why a connection ended early (only for the tests' and the logs' sake).
#[derive(Debug)]
enum End {
    Io,
    Protocol,
    Unknown,
}

impl From<std::io::Error> for End {
    fn from(_: std::io::Error) -> End {
        End::Io
    }
}

async fn read_message(
    s: &mut TcpStream,
    buf: &mut Vec<u8>,
    cfg: &ServeConfig,
) -> Result<Option<()>, End> {
    let mut len = [0u8; 4];
    match tokio::time::timeout(cfg.idle_timeout, s.read_exact(&mut len)).await {
        Err(_) => return Err(End::Io),
        Ok(r) => r?,
    };
    let len = u32::from_be_bytes(len) as usize;
    if len == 0 {
        return Ok(None); // keep-alive
    }
    if len > cfg.max_message {
        return Err(End::Protocol);
    }
    buf.resize(len, 0);
    match tokio::time::timeout(cfg.idle_timeout, s.read_exact(&mut buf[..])).await {
        Err(_) => Err(End::Io),
        Ok(r) => {
            r?;
            Ok(Some(()))
        }
    }
}

async fn send_extended(s: &mut TcpStream, ext_id: u8, dict: &[u8], tail: &[u8]) -> Result<(), End> {
    let len = 2 + dict.len() + tail.len();
    let mut m = Vec::with_capacity(4 + len);
    m.extend_from_slice(&(len as u32).to_be_bytes());
    m.push(EXTENDED);
    m.push(ext_id);
    m.extend_from_slice(dict);
    m.extend_from_slice(tail);
    s.write_all(&m).await?;
    Ok(())
}

/// The peer's `ut_metadata` id from its extension handshake (0: it has none).
fn their_ut_metadata(payload: &[u8]) -> u8 {
    let mut d = dhtkit_proto::bencode::Decoder::new(dhtkit_proto::bencode::Limits::default());
    d.decode(payload)
        .ok()
        .and_then(|v| {
            v.as_dict()?
                .get_dict(b"m")?
                .get_int(b"ut_metadata")
                .filter(|i| (1..=255).contains(i))
        })
        .map_or(0, |i| i as u8)
}

/// A BEP 9 message's `msg_type` and `piece`.
fn request(payload: &[u8]) -> Option<(i64, i64)> {
    let mut d = dhtkit_proto::bencode::Decoder::new(dhtkit_proto::bencode::Limits::default());
    // Requests carry nothing after the dictionary; a data message would, and is not ours
    // to receive, so trailing bytes make it unreadable here.
    let v = d.decode(payload).ok()?;
    let dict = v.as_dict()?;
    Some((dict.get_int(b"msg_type")?, dict.get_int(b"piece")?))
}

async fn serve(mut s: TcpStream, sh: Arc<Shared>) -> Result<(), End> {
    use std::sync::atomic::Ordering::Relaxed;
    let cfg = &sh.cfg;
    let mut hs = [0u8; 68];
    match tokio::time::timeout(cfg.handshake_timeout, s.read_exact(&mut hs)).await {
        Err(_) => return Err(End::Io),
        Ok(r) => r?,
    };
    if hs[0] != 19 || &hs[1..20] != b"BitTorrent protocol" {
        return Err(End::Protocol);
    }
    let extensions = hs[25] & 0x10 != 0;
    let ih = Id(hs[28..48].try_into().expect("20 bytes"));
    // The store blocks: the lookup (by infohash, indexed) runs on the blocking pool.
    let lookup = {
        let sh = sh.clone();
        tokio::task::spawn_blocking(move || {
            sh.reader
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .info_dict(&ih)
        })
    };
    let Ok(Ok(Some(dict))) = lookup.await else {
        return Err(End::Unknown);
    };
    if !extensions {
        return Err(End::Protocol);
    }
    sh.stats.known.fetch_add(1, Relaxed);
    let mut ours = [0u8; 68];
    ours[0] = 19;
    ours[1..20].copy_from_slice(b"BitTorrent protocol");
    ours[25] = 0x10;
    ours[28..48].copy_from_slice(&ih.0);
    ours[48..68].copy_from_slice(&sh.peer_id);
    s.write_all(&ours).await?;
    let ext = format!(
        "d1:md11:ut_metadatai{OUR_UT_METADATA}ee13:metadata_sizei{}e4:reqqi16e1:v{}:{CLIENT}e",
        dict.len(),
        CLIENT.len()
    );
    send_extended(&mut s, 0, ext.as_bytes(), &[]).await?;
    let pieces = dict.len().div_ceil(PIECE) as i64;
    let mut their_id = 0u8;
    let mut answered = 0u32;
    let mut buf = Vec::new();
    loop {
        if read_message(&mut s, &mut buf, cfg).await?.is_none() {
            continue;
        }
        if buf[0] != EXTENDED || buf.len() < 2 {
            continue; // interested, bitfield, have, …: a peer with nothing has nothing to say
        }
        let payload = &buf[2..];
        match buf[1] {
            0 => their_id = their_ut_metadata(payload),
            OUR_UT_METADATA if their_id != 0 => {
                let Some((0, piece)) = request(payload) else {
                    continue; // not a request
                };
                answered += 1;
                if answered > cfg.max_requests {
                    return Err(End::Protocol);
                }
                if !(0..pieces).contains(&piece) {
                    let reject = format!("d8:msg_typei2e5:piecei{piece}ee");
                    send_extended(&mut s, their_id, reject.as_bytes(), &[]).await?;
                    continue;
                }
                let start = piece as usize * PIECE;
                let chunk = &dict[start..(start + PIECE).min(dict.len())];
                let wait = sh
                    .bucket
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .take(chunk.len() as u64);
                if !wait.is_zero() {
                    tokio::time::sleep(wait).await;
                }
                let head = format!(
                    "d8:msg_typei1e5:piecei{piece}e10:total_sizei{}ee",
                    dict.len()
                );
                send_extended(&mut s, their_id, head.as_bytes(), chunk).await?;
                sh.stats.pieces.fetch_add(1, Relaxed);
                sh.stats.bytes.fetch_add(chunk.len() as u64, Relaxed);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_handshakes_are_read_strictly() {
        assert_eq!(request(b"d8:msg_typei0e5:piecei3ee"), Some((0, 3)));
        assert_eq!(request(b"d8:msg_typei0ee"), None);
        assert_eq!(request(b"garbage"), None);
        assert_eq!(their_ut_metadata(b"d1:md11:ut_metadatai7eee"), 7);
        assert_eq!(their_ut_metadata(b"d1:md11:ut_metadatai999eee"), 0);
        assert_eq!(their_ut_metadata(b"de"), 0);
    }

    #[test]
    fn the_bucket_spaces_out_what_it_cannot_send_now() {
        let mut b = Bucket {
            rate: 100_000,
            tokens: 100_000.0,
            at: tokio::time::Instant::now(),
        };
        assert!(b.take(50_000).is_zero());
        assert!(b.take(50_000).is_zero());
        let w = b.take(50_000);
        assert!(
            w >= Duration::from_millis(400) && w <= Duration::from_millis(600),
            "{w:?}"
        );
    }
}
