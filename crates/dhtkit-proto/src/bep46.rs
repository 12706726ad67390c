//! BEP 46: torrents that can be updated, through a BEP 44 mutable item.
//!
//! A publisher holds an ed25519 key. The mutable item under that key (and an optional salt)
//! has the value `d2:ih20:<infohash>e`; putting a new item with a higher seq points every
//! reader at a new torrent. The magnet link names the key and salt instead of an infohash:
//! `magnet:?xs=urn:btpk:<public key, 64 hex digits>&s=<salt, hex>`.

use crate::bencode::OwnedValue;
use crate::items::{mutable_target, MAX_SALT_LEN};
use crate::Id;

/// A BEP 46 magnet link: the publisher's key and the salt of the item that names the torrent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MutableMagnet {
    /// The ed25519 public key.
    pub key: [u8; 32],
    /// The salt (empty for none), at most 64 bytes.
    pub salt: Vec<u8>,
}

/// Why a link is not a BEP 46 magnet link.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MagnetError {
    /// It is not a magnet link.
    #[error("not a magnet link (magnet:?…)")]
    NotMagnet,
    /// It has no `xs=urn:btpk:` parameter.
    #[error("no xs=urn:btpk:<key> parameter")]
    NoKey,
    /// The key is not 64 hex digits.
    #[error("the urn:btpk key is not 64 hex digits")]
    BadKey,
    /// The salt is not hex, or longer than 64 bytes.
    #[error("the salt (s=) is not hex or longer than 64 bytes")]
    BadSalt,
}

impl MutableMagnet {
    /// Reads `magnet:?xs=urn:btpk:<key hex>[&s=<salt hex>]`; other parameters (`dn`, `tr`, …)
    /// are ignored.
    pub fn parse(link: &str) -> Result<MutableMagnet, MagnetError> {
        let query = link
            .strip_prefix("magnet:?")
            .ok_or(MagnetError::NotMagnet)?;
        let mut key = None;
        let mut salt = Vec::new();
        for pair in query.split('&') {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            match k {
                "xs" => {
                    let hex = v
                        .strip_prefix("urn:btpk:")
                        .or_else(|| v.strip_prefix("urn%3Abtpk%3A"));
                    if let Some(hex) = hex {
                        key = Some(crate::from_hex::<32>(hex).ok_or(MagnetError::BadKey)?);
                    }
                }
                "s" => {
                    salt = hex_bytes(v).ok_or(MagnetError::BadSalt)?;
                    if salt.len() > MAX_SALT_LEN {
                        return Err(MagnetError::BadSalt);
                    }
                }
                _ => {}
            }
        }
        Ok(MutableMagnet {
            key: key.ok_or(MagnetError::NoKey)?,
            salt,
        })
    }

    /// The link, `magnet:?xs=urn:btpk:<key>` and `&s=<salt>` when there is one.
    pub fn to_link(&self) -> String {
        let mut s = format!("magnet:?xs=urn:btpk:{}", crate::to_hex(&self.key));
        if !self.salt.is_empty() {
            s.push_str("&s=");
            s.push_str(&crate::to_hex(&self.salt));
        }
        s
    }

    /// Where the item is stored: SHA-1 of the key and the salt.
    pub fn target(&self) -> Id {
        mutable_target(&self.key, &self.salt)
    }
}

fn hex_bytes(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok())
        .collect()
}

/// The value of an item that points at `info_hash`: `d2:ih20:<infohash>e`.
pub fn pointer_value(info_hash: &Id) -> Vec<u8> {
    let mut d = std::collections::BTreeMap::new();
    d.insert(b"ih".to_vec(), OwnedValue::Bytes(info_hash.0.to_vec()));
    OwnedValue::Dict(d).to_bytes()
}

/// The infohash an item's value points at: a dictionary whose `ih` is 20 bytes. `None` for
/// any other value.
pub fn pointed_info_hash(value: &[u8]) -> Option<Id> {
    let OwnedValue::Dict(d) = OwnedValue::decode(value).ok()? else {
        return None;
    };
    match d.get(&b"ih"[..])? {
        OwnedValue::Bytes(b) => Some(Id(b.as_slice().try_into().ok()?)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::items::{public_key, Item};

    #[test]
    fn a_link_round_trips_and_names_the_item() {
        let seed = [7u8; 32];
        let m = MutableMagnet {
            key: public_key(&seed),
            salt: b"n".to_vec(),
        };
        let link = m.to_link();
        assert!(link.ends_with("&s=6e"), "{link}");
        assert_eq!(MutableMagnet::parse(&link).unwrap(), m);
        let with_more = format!("{link}&dn=Some+name&tr=udp%3A%2F%2Fx");
        assert_eq!(MutableMagnet::parse(&with_more).unwrap(), m);
        let ih = Id([0xab; 20]);
        let item = Item::mutable(&seed, &m.salt, 1, pointer_value(&ih));
        assert_eq!(item.target(), m.target());
        assert_eq!(pointed_info_hash(&item.value), Some(ih));
        assert!(item.check().is_ok());
    }

    #[test]
    fn bad_links_are_named() {
        use MagnetError::*;
        let k = "aa".repeat(32);
        assert_eq!(MutableMagnet::parse("http://x"), Err(NotMagnet));
        assert_eq!(MutableMagnet::parse("magnet:?xt=urn:btih:00"), Err(NoKey));
        assert_eq!(MutableMagnet::parse("magnet:?xs=urn:btpk:abc"), Err(BadKey));
        let odd = format!("magnet:?xs=urn:btpk:{k}&s=abc");
        assert_eq!(MutableMagnet::parse(&odd), Err(BadSalt));
        let long = format!("magnet:?xs=urn:btpk:{k}&s={}", "00".repeat(65));
        assert_eq!(MutableMagnet::parse(&long), Err(BadSalt));
        assert_eq!(pointed_info_hash(b"4:spam"), None);
        assert_eq!(pointed_info_hash(b"d2:ih3:abce"), None);
    }
}
