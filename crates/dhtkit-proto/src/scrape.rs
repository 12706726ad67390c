//! BEP 33 scrapes: a node answers a `get_peers` with `scrape: 1` with two bloom filters of
//! the IPs it stores for the infohash, `BFsd` (seeds) and `BFpe` (the other peers). A
//! scraper ORs the filters from the nodes it asks and estimates how many IPs went in.
//!
//! Each filter is 2048 bits (256 bytes) with two hash functions: the first four bytes of the
//! SHA-1 of the IP (4 bytes for IPv4, 16 for IPv6) give two indices, little-endian 16-bit
//! values taken modulo 2048; bit `i` is `bits[i / 8] & (1 << (i % 8))`.

use std::net::IpAddr;

use sha1::{Digest, Sha1};

/// Bytes in a filter.
pub const FILTER_LEN: usize = 256;
const BITS: usize = FILTER_LEN * 8;

/// A BEP 33 bloom filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bloom(pub [u8; FILTER_LEN]);

impl Default for Bloom {
    fn default() -> Self {
        Bloom([0; FILTER_LEN])
    }
}

impl Bloom {
    /// Adds an IP.
    pub fn insert(&mut self, ip: IpAddr) {
        let h: [u8; 20] = match ip {
            IpAddr::V4(v4) => Sha1::digest(v4.octets()).into(),
            IpAddr::V6(v6) => Sha1::digest(v6.octets()).into(),
        };
        for i in [
            usize::from(u16::from_le_bytes([h[0], h[1]])),
            usize::from(u16::from_le_bytes([h[2], h[3]])),
        ] {
            let i = i % BITS;
            self.0[i / 8] |= 1 << (i % 8);
        }
    }

    /// A filter from the wire; `None` unless it is exactly 256 bytes.
    pub fn from_wire(b: &[u8]) -> Option<Bloom> {
        b.try_into().ok().map(Bloom)
    }

    /// ORs `other` in (a union of the sets).
    pub fn merge(&mut self, other: &Bloom) {
        for (a, b) in self.0.iter_mut().zip(other.0.iter()) {
            *a |= *b;
        }
    }

    /// The estimated number of distinct IPs inserted (BEP 33's formula), rounded.
    pub fn estimate(&self) -> u64 {
        let zeros: u32 = self.0.iter().map(|b| b.count_zeros()).sum();
        let m = BITS as f64;
        // A full filter (no zero bit) would be infinite: count it as one zero bit.
        let c = f64::from(zeros).max(1.0);
        let n = (c / m).ln() / (2.0 * (1.0 - 1.0 / m).ln());
        n.round().max(0.0) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimates_track_the_count() {
        assert_eq!(Bloom::default().estimate(), 0);
        for n in [1u32, 10, 100, 1000] {
            let mut b = Bloom::default();
            for i in 0..n {
                b.insert(IpAddr::from(i.to_be_bytes()));
                b.insert(IpAddr::from(i.to_be_bytes())); // twice: counted once
            }
            let e = b.estimate() as f64;
            let n = f64::from(n);
            assert!(
                (e - n).abs() <= n * 0.1 + 1.0,
                "{n} inserted, {e} estimated"
            );
        }
        // A union counts the IPs of both.
        let (mut a, mut b) = (Bloom::default(), Bloom::default());
        for i in 0..50u32 {
            a.insert(IpAddr::from((i).to_be_bytes()));
            b.insert(IpAddr::from((i + 25).to_be_bytes()));
        }
        a.merge(&b);
        let e = a.estimate();
        assert!((70..=80).contains(&e), "75 distinct, {e} estimated");
    }

    #[test]
    fn bits_are_where_bep33_puts_them() {
        // Exactly the two bits the first four bytes of SHA-1(IP) name, no others (the
        // interop test checks the same filters against libtorrent's).
        let ip: IpAddr = "192.168.0.1".parse().unwrap();
        let h: [u8; 20] = Sha1::digest([192u8, 168, 0, 1]).into();
        let i1 = usize::from(u16::from_le_bytes([h[0], h[1]])) % 2048;
        let i2 = usize::from(u16::from_le_bytes([h[2], h[3]])) % 2048;
        let mut b = Bloom::default();
        b.insert(ip);
        let set: Vec<usize> = (0..2048)
            .filter(|i| b.0[i / 8] & (1 << (i % 8)) != 0)
            .collect();
        let mut want = vec![i1, i2];
        want.sort();
        want.dedup();
        assert_eq!(set, want);
    }
}
