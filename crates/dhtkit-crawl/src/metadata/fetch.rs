//! Fetching one torrent's info dictionary from one peer: the BEP 3 handshake, the BEP 10
//! extension handshake and BEP 9 `ut_metadata`, over TCP.
//!
//! Everything the peer says is checked before it is trusted: the handshake must name our
//! infohash and offer extensions, the announced `metadata_size` must be within the cap before a
//! single piece is asked for, every piece must have the right index and length, and the
//! assembled dictionary must hash to the infohash. The whole exchange has one deadline, so a
//! peer that drips bytes costs at most that long.

use std::net::SocketAddr;
use std::time::Duration;

use dhtkit_proto::Id;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::info::{verify, HashKind};

/// BEP 9 piece size.
const PIECE: usize = 16 * 1024;
/// Largest peer-wire message read (longer ones end the exchange): a metadata piece plus its
/// header, or a bitfield of a torrent with up to 8 million pieces.
const MAX_MESSAGE: usize = 1 << 20;
/// Metadata pieces requested at once.
const PIPELINE: usize = 16;
/// Our `ut_metadata` message id (the peer uses it when sending to us).
const OUR_UT_METADATA: u8 = 1;
/// What we call ourselves in the extension handshake.
const CLIENT: &str = concat!("dhtkit ", env!("CARGO_PKG_VERSION"));
/// The extension-protocol message id (BEP 10).
const EXTENDED: u8 = 20;

/// Limits for one fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct FetchConfig {
    /// Largest `metadata_size` accepted; a peer announcing more is left before any piece is
    /// requested.
    pub max_metadata_size: usize,
    /// The whole exchange, from connecting to the last piece.
    pub deadline: Duration,
}

impl Default for FetchConfig {
    fn default() -> Self {
        FetchConfig {
            max_metadata_size: 10 * 1024 * 1024,
            deadline: Duration::from_secs(10),
        }
    }
}

/// Why a fetch failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// The TCP connection failed.
    #[error("connect: {0}")]
    Connect(std::io::Error),
    /// The deadline passed.
    #[error("deadline passed")]
    Timeout,
    /// The connection failed or closed mid-exchange.
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
    /// The BitTorrent handshake was wrong.
    #[error("handshake: {0}")]
    Handshake(&'static str),
    /// The peer does not do BEP 10 extensions or BEP 9 metadata exchange.
    #[error("peer does not offer metadata")]
    NoMetadata,
    /// The announced metadata is larger than allowed (or zero).
    #[error("metadata size {0} refused")]
    BadSize(u64),
    /// The peer rejected a piece request.
    #[error("peer rejected a metadata request")]
    Rejected,
    /// The peer broke the protocol.
    #[error("protocol: {0}")]
    Protocol(&'static str),
    /// The assembled dictionary does not hash to the infohash.
    #[error("metadata does not match the infohash")]
    HashMismatch,
}

impl FetchError {
    /// A short label for counting failures by reason.
    pub fn reason(&self) -> &'static str {
        match self {
            FetchError::Connect(_) => "connect",
            FetchError::Timeout => "timeout",
            FetchError::Io(_) => "io",
            FetchError::Handshake(_) => "handshake",
            FetchError::NoMetadata => "no_metadata",
            FetchError::BadSize(_) => "bad_size",
            FetchError::Rejected => "rejected",
            FetchError::Protocol(_) => "protocol",
            FetchError::HashMismatch => "hash_mismatch",
        }
    }
}

/// A verified info dictionary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedInfo {
    /// The bencoded info dictionary.
    pub info: Vec<u8>,
    /// Which hash of it matched.
    pub kind: HashKind,
}

/// Fetches `info_hash`'s info dictionary from `peer`, within `cfg`'s deadline.
pub async fn fetch(
    peer: SocketAddr,
    info_hash: Id,
    peer_id: [u8; 20],
    cfg: &FetchConfig,
) -> Result<VerifiedInfo, FetchError> {
    match tokio::time::timeout(cfg.deadline, exchange(peer, info_hash, peer_id, cfg)).await {
        Ok(r) => r,
        Err(_) => Err(FetchError::Timeout),
    }
}

async fn exchange(
    peer: SocketAddr,
    info_hash: Id,
    peer_id: [u8; 20],
    cfg: &FetchConfig,
) -> Result<VerifiedInfo, FetchError> {
    let mut s = TcpStream::connect(peer)
        .await
        .map_err(FetchError::Connect)?;
    let _ = s.set_nodelay(true);
    s.write_all(&handshake(&info_hash, &peer_id)).await?;
    let mut theirs = [0u8; 68];
    s.read_exact(&mut theirs).await?;
    if theirs[0] != 19 || &theirs[1..20] != b"BitTorrent protocol" {
        return Err(FetchError::Handshake("not BitTorrent"));
    }
    if theirs[28..48] != info_hash.0 {
        return Err(FetchError::Handshake("other infohash"));
    }
    if theirs[25] & 0x10 == 0 {
        return Err(FetchError::NoMetadata);
    }
    send_extended(&mut s, 0, &our_ext_handshake(), &[]).await?;
    let mut buf = Vec::with_capacity(PIECE + 128);
    // Wait for the peer's extension handshake.
    let (their_id, size) = loop {
        let (id, payload) = read_message(&mut s, &mut buf).await?;
        if id == Some(EXTENDED) && payload.first() == Some(&0) {
            break parse_ext_handshake(&payload[1..])?;
        }
    };
    if size == 0 || size > cfg.max_metadata_size as u64 {
        return Err(FetchError::BadSize(size));
    }
    let size = size as usize;
    let pieces = size.div_ceil(PIECE);
    let mut info = vec![0u8; size];
    let mut got = vec![false; pieces];
    let (mut next, mut received) = (0usize, 0usize);
    while received < pieces {
        while next < pieces && next < received + PIPELINE {
            let req = format!("d8:msg_typei0e5:piecei{next}ee");
            send_extended(&mut s, their_id, req.as_bytes(), &[]).await?;
            next += 1;
        }
        let (id, payload) = read_message(&mut s, &mut buf).await?;
        if id != Some(EXTENDED) || payload.first() != Some(&OUR_UT_METADATA) {
            continue;
        }
        let (msg_type, piece, data) = parse_data(&payload[1..])?;
        match msg_type {
            1 => {}
            2 => return Err(FetchError::Rejected),
            _ => continue,
        }
        let piece = usize::try_from(piece)
            .ok()
            .filter(|p| *p < pieces)
            .ok_or(FetchError::Protocol("piece out of range"))?;
        let start = piece * PIECE;
        let len = (size - start).min(PIECE);
        if data.len() != len {
            return Err(FetchError::Protocol("piece of the wrong length"));
        }
        if !got[piece] {
            info[start..start + len].copy_from_slice(data);
            got[piece] = true;
            received += 1;
        }
    }
    match verify(&info, &info_hash) {
        Some(kind) => Ok(VerifiedInfo { info, kind }),
        None => Err(FetchError::HashMismatch),
    }
}

/// Our BEP 10 extension handshake: `ut_metadata` and our client name.
fn our_ext_handshake() -> Vec<u8> {
    format!(
        "d1:md11:ut_metadatai{OUR_UT_METADATA}ee1:v{}:{CLIENT}e",
        CLIENT.len()
    )
    .into_bytes()
}

fn handshake(info_hash: &Id, peer_id: &[u8; 20]) -> [u8; 68] {
    let mut h = [0u8; 68];
    h[0] = 19;
    h[1..20].copy_from_slice(b"BitTorrent protocol");
    h[25] = 0x10; // BEP 10 extension protocol
    h[28..48].copy_from_slice(&info_hash.0);
    h[48..68].copy_from_slice(peer_id);
    h
}

async fn send_extended(
    s: &mut TcpStream,
    ext_id: u8,
    dict: &[u8],
    tail: &[u8],
) -> Result<(), FetchError> {
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

/// Reads one peer-wire message into `buf`: its id (`None` for a keep-alive) and payload.
async fn read_message<'b>(
    s: &mut TcpStream,
    buf: &'b mut Vec<u8>,
) -> Result<(Option<u8>, &'b [u8]), FetchError> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).await?;
    let len = u32::from_be_bytes(len) as usize;
    if len == 0 {
        return Ok((None, &[]));
    }
    if len > MAX_MESSAGE {
        return Err(FetchError::Protocol("message too long"));
    }
    buf.resize(len, 0);
    s.read_exact(&mut buf[..]).await?;
    Ok((Some(buf[0]), &buf[1..]))
}

/// The peer's `ut_metadata` id and `metadata_size` from its extension handshake.
fn parse_ext_handshake(payload: &[u8]) -> Result<(u8, u64), FetchError> {
    let mut d = dhtkit_proto::bencode::Decoder::new(dhtkit_proto::bencode::Limits::default());
    let v = d
        .decode(payload)
        .map_err(|_| FetchError::Protocol("bad extension handshake"))?;
    let dict = v
        .as_dict()
        .ok_or(FetchError::Protocol("bad extension handshake"))?;
    let id = dict
        .get_dict(b"m")
        .and_then(|m| m.get_int(b"ut_metadata"))
        .filter(|i| (1..=255).contains(i))
        .ok_or(FetchError::NoMetadata)?;
    let size = dict
        .get_int(b"metadata_size")
        .ok_or(FetchError::NoMetadata)?;
    let size = u64::try_from(size).map_err(|_| FetchError::BadSize(0))?;
    Ok((id as u8, size))
}

/// Splits a BEP 9 message into its `msg_type`, `piece` and the bytes after the dictionary.
fn parse_data(payload: &[u8]) -> Result<(i64, i64, &[u8]), FetchError> {
    let end = dict_end(payload).ok_or(FetchError::Protocol("bad metadata message"))?;
    let mut d = dhtkit_proto::bencode::Decoder::new(dhtkit_proto::bencode::Limits::default());
    let v = d
        .decode(&payload[..end])
        .map_err(|_| FetchError::Protocol("bad metadata message"))?;
    let dict = v
        .as_dict()
        .ok_or(FetchError::Protocol("bad metadata message"))?;
    let msg_type = dict
        .get_int(b"msg_type")
        .ok_or(FetchError::Protocol("no msg_type"))?;
    let piece = dict
        .get_int(b"piece")
        .ok_or(FetchError::Protocol("no piece"))?;
    Ok((msg_type, piece, &payload[end..]))
}

/// The length of the bencoded value at the start of `b` (strings, integers, and lists and
/// dictionaries of them, at most 8 deep).
fn dict_end(b: &[u8]) -> Option<usize> {
    fn value(b: &[u8], at: usize, depth: usize) -> Option<usize> {
        if depth > 8 {
            return None;
        }
        match *b.get(at)? {
            b'i' => Some(at + b[at..].iter().position(|&c| c == b'e')? + 1),
            b'l' | b'd' => {
                let mut i = at + 1;
                while *b.get(i)? != b'e' {
                    i = value(b, i, depth + 1)?;
                }
                Some(i + 1)
            }
            b'0'..=b'9' => {
                let colon = at + b[at..].iter().position(|&c| c == b':')?;
                let n: usize = std::str::from_utf8(&b[at..colon]).ok()?.parse().ok()?;
                let end = colon.checked_add(1)?.checked_add(n)?;
                (end <= b.len()).then_some(end)
            }
            _ => None,
        }
    }
    value(b, 0, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_data_messages() {
        let m = b"d8:msg_typei1e5:piecei0e10:total_sizei3eeabc";
        let (t, p, data) = parse_data(m).unwrap();
        assert_eq!((t, p, data), (1, 0, &b"abc"[..]));
        assert!(parse_data(b"d8:msg_typei1e").is_err());
        assert!(parse_data(b"99999999999999999999:x").is_err());
        assert_eq!(dict_end(b"d1:ali1ei2eee..."), Some(13));
    }

    #[test]
    fn our_extension_handshake_is_bencode() {
        let m = our_ext_handshake();
        let mut d = dhtkit_proto::bencode::Decoder::new(dhtkit_proto::bencode::Limits::default());
        let v = d.decode(&m).expect("valid bencode");
        let dict = v.as_dict().unwrap();
        assert_eq!(
            dict.get_dict(b"m").and_then(|m| m.get_int(b"ut_metadata")),
            Some(OUR_UT_METADATA as i64)
        );
        assert!(dict.get_bytes(b"v").unwrap().starts_with(b"dhtkit "));
    }

    #[test]
    fn extension_handshake_fields() {
        let (id, size) =
            parse_ext_handshake(b"d1:md11:ut_metadatai3ee13:metadata_sizei31235ee").unwrap();
        assert_eq!((id, size), (3, 31235));
        assert!(matches!(
            parse_ext_handshake(b"d1:mdee"),
            Err(FetchError::NoMetadata)
        ));
    }
}
