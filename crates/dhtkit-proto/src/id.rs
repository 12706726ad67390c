//! 160-bit identifiers (node ids and infohashes) and the XOR metric.

use std::fmt;
use std::str::FromStr;

use rand::Rng;

/// A 160-bit identifier: a node id or an infohash.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Id(pub [u8; 20]);

/// The infohash of a torrent; the same space as node ids.
pub type InfoHash = Id;

/// The XOR distance between two ids; compares as a big-endian 160-bit number.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct Distance(pub [u8; 20]);

impl Distance {
    /// The largest possible distance.
    pub const MAX: Distance = Distance([0xff; 20]);
}

impl Id {
    /// Length of an id in bytes.
    pub const LEN: usize = 20;

    /// The id from a 20-byte slice, or `None` if the length differs.
    pub fn from_slice(b: &[u8]) -> Option<Id> {
        b.try_into().ok().map(Id)
    }

    /// A uniformly random id.
    pub fn random<R: Rng + ?Sized>(rng: &mut R) -> Id {
        let mut b = [0u8; 20];
        rng.fill(&mut b[..]);
        Id(b)
    }

    /// XOR distance to `other`.
    #[inline]
    pub fn distance(&self, other: &Id) -> Distance {
        let mut d = [0u8; 20];
        for (i, o) in d.iter_mut().enumerate() {
            *o = self.0[i] ^ other.0[i];
        }
        Distance(d)
    }

    /// Number of leading bits `self` and `other` share (160 when equal).
    #[inline]
    pub fn common_prefix(&self, other: &Id) -> usize {
        for i in 0..20 {
            let x = self.0[i] ^ other.0[i];
            if x != 0 {
                return i * 8 + x.leading_zeros() as usize;
            }
        }
        160
    }

    /// Value of bit `i` (0 is the most significant).
    pub fn bit(&self, i: usize) -> bool {
        self.0[i / 8] & (0x80 >> (i % 8)) != 0
    }

    /// A random id that shares exactly `prefix` leading bits with `self` (or all 160 bits when
    /// `prefix == 160`).
    pub fn random_with_prefix<R: Rng + ?Sized>(&self, prefix: usize, rng: &mut R) -> Id {
        let mut out = Id::random(rng);
        for i in 0..prefix.min(160) {
            set_bit(&mut out.0, i, self.bit(i));
        }
        if prefix < 160 {
            set_bit(&mut out.0, prefix, !self.bit(prefix));
        }
        out
    }

    /// Lower-case hex.
    pub fn to_hex(&self) -> String {
        crate::util::to_hex(&self.0)
    }
}

fn set_bit(b: &mut [u8; 20], i: usize, v: bool) {
    let mask = 0x80 >> (i % 8);
    if v {
        b[i / 8] |= mask;
    } else {
        b[i / 8] &= !mask;
    }
}

impl fmt::Debug for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Id({})", self.to_hex())
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// Error parsing an [`Id`] from hex.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected 40 hex digits")]
pub struct ParseIdError;

impl FromStr for Id {
    type Err = ParseIdError;
    fn from_str(s: &str) -> Result<Id, ParseIdError> {
        crate::util::from_hex::<20>(s).map(Id).ok_or(ParseIdError)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn prefix_and_distance() {
        let a = Id([0; 20]);
        let mut b = Id([0; 20]);
        b.0[2] = 0b0001_0000;
        assert_eq!(a.common_prefix(&b), 19);
        assert_eq!(a.common_prefix(&a), 160);
        assert!(a.distance(&b) > a.distance(&a));
        let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
        for p in [0, 1, 7, 8, 100, 159, 160] {
            let r = b.random_with_prefix(p, &mut rng);
            assert_eq!(b.common_prefix(&r), p);
        }
    }

    #[test]
    fn hex_roundtrip() {
        let s = "a4104a9d2f5615601c429fe8bab8177c47c05c84";
        let id: Id = s.parse().unwrap();
        assert_eq!(id.to_string(), s);
        assert!("zz".parse::<Id>().is_err());
    }
}
