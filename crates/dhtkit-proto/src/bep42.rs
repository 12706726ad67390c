//! BEP 42: node ids tied to IP addresses.
//!
//! The first 21 bits of a node's id must equal the first 21 bits of the CRC-32C of its
//! masked IP (the top 4 bytes for IPv4 under mask `03 0f 3f ff`, the top 8 bytes for IPv6
//! under `01 03 07 0f 1f 3f 7f ff`), with a 3-bit `r` ORed into the top of the first byte;
//! `r` is the low 3 bits of the id's last byte. One IP can then own only a few regions of
//! the keyspace. Local and private addresses are exempt: any id is valid for them.
//!
//! A node learns its external address from the `ip` field of other nodes' replies; see
//! [`Votes`].

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use crc::{Crc, CRC_32_ISCSI};
use rand::Rng;

use crate::addr::is_local;
use crate::Id;

const CRC32C: Crc<u32> = Crc::<u32>::new(&CRC_32_ISCSI);
const V4_MASK: [u8; 4] = [0x03, 0x0f, 0x3f, 0xff];
const V6_MASK: [u8; 8] = [0x01, 0x03, 0x07, 0x0f, 0x1f, 0x3f, 0x7f, 0xff];

/// The CRC-32C that ids for `ip` with this `r` (0–7) start with.
fn prefix(ip: IpAddr, r: u8) -> u32 {
    let mut buf = [0u8; 8];
    let n = match ip {
        IpAddr::V4(v4) => {
            for (i, (b, m)) in v4.octets().iter().zip(V4_MASK).enumerate() {
                buf[i] = b & m;
            }
            4
        }
        IpAddr::V6(v6) => {
            for (i, (b, m)) in v6.octets()[..8].iter().zip(V6_MASK).enumerate() {
                buf[i] = b & m;
            }
            8
        }
    };
    buf[0] |= (r & 7) << 5;
    CRC32C.checksum(&buf[..n])
}

/// A new id valid for `ip` (random where BEP 42 leaves it free).
pub fn derive_id<R: Rng + ?Sized>(ip: IpAddr, rng: &mut R) -> Id {
    let mut id: [u8; 20] = rng.random();
    let r = id[19] & 7;
    let crc = prefix(ip, r);
    id[0] = (crc >> 24) as u8;
    id[1] = (crc >> 16) as u8;
    id[2] = ((crc >> 8) as u8 & 0xf8) | (id[2] & 7);
    Id(id)
}

/// True if `id` is valid for `ip` under BEP 42 (always for local and private addresses).
pub fn id_matches(id: &Id, ip: IpAddr) -> bool {
    if is_local(ip) {
        return true;
    }
    let crc = prefix(ip, id.0[19] & 7);
    id.0[0] == (crc >> 24) as u8
        && id.0[1] == (crc >> 16) as u8
        && id.0[2] & 0xf8 == (crc >> 8) as u8 & 0xf8
}

/// Most distinct voters remembered.
const MAX_VOTERS: usize = 256;
/// Votes needed before an address is believed.
pub const VOTES_NEEDED: usize = 5;

/// What other nodes say our external address is (the `ip` field of their replies), one vote
/// per voter IP. An address is believed once [`VOTES_NEEDED`] voters agree and it has more
/// votes than any other.
#[derive(Debug, Default, Clone)]
pub struct Votes {
    by_voter: HashMap<IpAddr, IpAddr>,
    counts: HashMap<IpAddr, usize>,
    /// The address believed now.
    believed: Option<IpAddr>,
}

impl Votes {
    /// `voter` says we are at `seen`. Returns the believed address if this vote changed it.
    /// Local addresses (ours or the voter's) carry no information and are ignored.
    pub fn vote(&mut self, voter: IpAddr, seen: IpAddr) -> Option<IpAddr> {
        if is_local(seen) || is_local(voter) || seen.is_ipv6() != voter.is_ipv6() {
            return None;
        }
        if let Some(old) = self.by_voter.get(&voter).copied() {
            if old == seen {
                return None;
            }
            if let Some(c) = self.counts.get_mut(&old) {
                *c -= 1;
            }
        } else if self.by_voter.len() >= MAX_VOTERS {
            // Make room: forget an arbitrary voter (bounded memory; a voter spoofing many
            // source addresses still gets one vote per address it can receive replies on).
            let gone = *self.by_voter.keys().next().expect("full");
            if let Some(old) = self.by_voter.remove(&gone) {
                if let Some(c) = self.counts.get_mut(&old) {
                    *c -= 1;
                }
            }
        }
        self.by_voter.insert(voter, seen);
        *self.counts.entry(seen).or_default() += 1;
        self.counts.retain(|_, c| *c > 0);
        let (best, n) = self
            .counts
            .iter()
            .max_by_key(|(ip, c)| (**c, **ip))
            .map(|(ip, c)| (*ip, *c))?;
        let unique = self.counts.values().filter(|c| **c == n).count() == 1;
        if n >= VOTES_NEEDED && unique && self.believed != Some(best) {
            self.believed = Some(best);
            return Some(best);
        }
        None
    }

    /// The external address believed, if any.
    pub fn believed(&self) -> Option<IpAddr> {
        self.believed
    }
}

impl Votes {
    /// How many voters have voted.
    pub fn voters(&self) -> usize {
        self.by_voter.len()
    }

    /// The voters that named `ip`.
    pub fn voters_for(&self, ip: IpAddr) -> HashSet<IpAddr> {
        self.by_voter
            .iter()
            .filter(|(_, s)| **s == ip)
            .map(|(v, _)| *v)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn the_bep_examples_hold() {
        // BEP 42's table: IP, r (the id's last byte) and the first three bytes of the id;
        // only the top 21 bits are fixed, so the third byte's low 3 bits are masked.
        let cases = [
            ("124.31.75.21", 0x01u8, [0x5f, 0xbf, 0xbf]),
            ("21.75.31.124", 0x56, [0x5a, 0x3c, 0xe9]),
            ("65.23.51.170", 0x16, [0xa5, 0xd4, 0x32]),
            ("84.124.73.14", 0x41, [0x1b, 0x03, 0x21]),
            ("43.213.53.83", 0x5a, [0xe5, 0x6f, 0x6c]),
        ];
        for (ip, last, head) in cases {
            let ip: IpAddr = ip.parse().unwrap();
            let mut id = [0u8; 20];
            id[..3].copy_from_slice(&head);
            id[19] = last;
            assert!(id_matches(&Id(id), ip), "{ip}");
            id[1] ^= 1;
            assert!(!id_matches(&Id(id), ip), "{ip} with a wrong bit");
        }
    }

    #[test]
    fn derived_ids_match_their_address_only() {
        let mut rng = rand::rngs::SmallRng::seed_from_u64(42);
        for ip in ["1.2.3.4", "203.0.113.9", "2001:db8::1", "2a00:1450::5"] {
            let ip: IpAddr = ip.parse().unwrap();
            for _ in 0..50 {
                let id = derive_id(ip, &mut rng);
                assert!(id_matches(&id, ip));
            }
        }
        let a: IpAddr = "1.2.3.4".parse().unwrap();
        let b: IpAddr = "9.8.7.6".parse().unwrap();
        let misses = (0..200)
            .filter(|_| !id_matches(&derive_id(a, &mut rng), b))
            .count();
        assert!(misses > 195, "an id for one address rarely fits another");
        assert!(
            id_matches(&Id([0; 20]), "192.168.1.1".parse().unwrap()),
            "local exempt"
        );
    }

    #[test]
    fn votes_need_a_clear_majority_of_distinct_voters() {
        let me: IpAddr = "198.51.100.7".parse().unwrap();
        let other: IpAddr = "198.51.100.8".parse().unwrap();
        let mut v = Votes::default();
        let voter = |i: u8| IpAddr::from([203, 0, 113, i]);
        for i in 1..VOTES_NEEDED as u8 {
            assert_eq!(v.vote(voter(i), me), None);
            assert_eq!(v.vote(voter(i), me), None, "a repeat vote counts once");
        }
        assert_eq!(v.vote(voter(99), other), None);
        assert_eq!(v.vote(voter(50), me), Some(me), "five distinct voters");
        assert_eq!(v.believed(), Some(me));
        // Voters change their minds: the new address wins once it leads.
        for i in 1..=5u8 {
            v.vote(voter(i), other);
        }
        assert_eq!(v.believed(), Some(other));
        assert_eq!(
            v.vote(voter(7), "10.0.0.1".parse().unwrap()),
            None,
            "local ignored"
        );
    }
}
