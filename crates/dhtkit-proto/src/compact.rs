//! Compact encodings of peers and nodes (BEP 5, BEP 32).
//!
//! A peer is 6 bytes (IPv4 + port) or 18 bytes (IPv6 + port), network byte order. A node is its
//! 20-byte id followed by a compact peer: 26 or 38 bytes.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::Id;

/// Length of a compact IPv4 peer.
pub const PEER_V4_LEN: usize = 6;
/// Length of a compact IPv6 peer.
pub const PEER_V6_LEN: usize = 18;
/// Length of a compact IPv4 node.
pub const NODE_V4_LEN: usize = 26;
/// Length of a compact IPv6 node.
pub const NODE_V6_LEN: usize = 38;

/// Decodes a compact peer of 6 or 18 bytes.
pub fn decode_peer(b: &[u8]) -> Option<SocketAddr> {
    match b.len() {
        PEER_V4_LEN => {
            let ip = Ipv4Addr::new(b[0], b[1], b[2], b[3]);
            Some(SocketAddr::new(
                IpAddr::V4(ip),
                u16::from_be_bytes([b[4], b[5]]),
            ))
        }
        PEER_V6_LEN => {
            let mut o = [0u8; 16];
            o.copy_from_slice(&b[..16]);
            let port = u16::from_be_bytes([b[16], b[17]]);
            Some(SocketAddr::new(IpAddr::V6(Ipv6Addr::from(o)), port))
        }
        _ => None,
    }
}

/// Appends the compact form of `addr` (6 or 18 bytes).
pub fn encode_peer(addr: &SocketAddr, out: &mut Vec<u8>) {
    match addr.ip() {
        IpAddr::V4(ip) => out.extend_from_slice(&ip.octets()),
        IpAddr::V6(ip) => out.extend_from_slice(&ip.octets()),
    }
    out.extend_from_slice(&addr.port().to_be_bytes());
}

/// Appends the compact form of a node (26 or 38 bytes).
pub fn encode_node(id: &Id, addr: &SocketAddr, out: &mut Vec<u8>) {
    out.extend_from_slice(&id.0);
    encode_peer(addr, out);
}

/// Iterates over compact nodes of one family; a trailing partial entry is ignored.
pub fn nodes(buf: &[u8], v6: bool) -> impl Iterator<Item = (Id, SocketAddr)> + '_ {
    let stride = if v6 { NODE_V6_LEN } else { NODE_V4_LEN };
    buf.chunks_exact(stride).filter_map(|c| {
        let id = Id::from_slice(&c[..20])?;
        Some((id, decode_peer(&c[20..])?))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip() {
        let a: SocketAddr = "127.1.2.3:6881".parse().unwrap();
        let b: SocketAddr = "[::1]:1".parse().unwrap();
        let mut out = Vec::new();
        encode_node(&Id([9; 20]), &a, &mut out);
        out.push(0); // trailing junk is ignored
        let got: Vec<_> = nodes(&out, false).collect();
        assert_eq!(got, vec![(Id([9; 20]), a)]);
        let mut out = Vec::new();
        encode_peer(&b, &mut out);
        assert_eq!(decode_peer(&out), Some(b));
        assert_eq!(decode_peer(&out[..5]), None);
    }
}
