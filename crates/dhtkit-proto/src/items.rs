//! BEP 44 items: what they are, how they are checked, and the bounded store that keeps the
//! ones other nodes put with us.
//!
//! An **immutable** item is a bencoded value of at most 1000 bytes stored under the SHA-1 of
//! that value. A **mutable** item is stored under the SHA-1 of an ed25519 public key followed
//! by an optional salt (at most 64 bytes); it carries a sequence number and a signature of
//! `4:salt<len>:<salt>3:seqi<seq>e1:v<value>` (the salt part only when there is a salt) by
//! that key. A newer sequence number replaces an older one.
//!
//! The store is bounded by item count and bytes; an item not put again within its lifetime
//! (2 hours by default) expires, and when a bound is hit the least recently used item goes.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use sha1::{Digest, Sha1};

use crate::krpc::{
    ERR_BAD_SIGNATURE, ERR_CAS_MISMATCH, ERR_PROTOCOL, ERR_SALT_TOO_BIG, ERR_SEQ_TOO_LOW,
    ERR_TOO_BIG,
};
use crate::{Id, Instant};

/// Largest bencoded value an item may hold.
pub const MAX_VALUE_LEN: usize = 1000;
/// Largest salt.
pub const MAX_SALT_LEN: usize = 64;

/// Item-store bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ItemConfig {
    /// Most items kept.
    pub max_items: usize,
    /// Most bytes kept (values, salts, keys and signatures together).
    pub max_bytes: usize,
    /// How long an item is kept after it was last put (default 48 hours; the store's
    /// bounds evict the least recently used first when it is full). BEP 44 lets nodes drop
    /// items after 2 hours, but libtorrent and `mainline` keep them until they need the
    /// room, and so a kept item's schedule may check rather than put for up to a day
    /// ([`crate::Config::item_refresh_max`]).
    pub lifetime: Duration,
}

impl Default for ItemConfig {
    fn default() -> Self {
        ItemConfig {
            max_items: 1000,
            max_bytes: 2 << 20,
            lifetime: Duration::from_secs(48 * 60 * 60),
        }
    }
}

/// A mutable item's signing part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    /// The ed25519 public key.
    pub key: [u8; 32],
    /// The signature over salt, seq and value.
    pub sig: [u8; 64],
    /// The salt (empty for none).
    pub salt: Vec<u8>,
    /// The sequence number.
    pub seq: i64,
}

/// A BEP 44 item: a bencoded value, and for a mutable item its key, salt, seq and signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// The value, bencoded.
    pub value: Vec<u8>,
    /// `None` for an immutable item.
    pub signed: Option<Signed>,
}

/// Why an item was refused: a BEP 44 error code and its message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    /// The KRPC error code (203, 205, 206, 207, 301 or 302).
    pub code: i64,
    /// What is wrong.
    pub message: &'static str,
}

const fn refuse(code: i64, message: &'static str) -> Refusal {
    Refusal { code, message }
}

/// The target of an immutable item: the SHA-1 of its bencoded value.
pub fn immutable_target(value: &[u8]) -> Id {
    Id(Sha1::digest(value).into())
}

/// The target of a mutable item: the SHA-1 of its public key followed by its salt.
pub fn mutable_target(key: &[u8; 32], salt: &[u8]) -> Id {
    let mut h = Sha1::new();
    h.update(key);
    h.update(salt);
    Id(h.finalize().into())
}

/// The ed25519 public key of the secret `seed`.
pub fn public_key(seed: &[u8; 32]) -> [u8; 32] {
    SigningKey::from_bytes(seed).verifying_key().to_bytes()
}

/// The bytes a mutable item's signature covers.
pub fn signed_bytes(salt: &[u8], seq: i64, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len() + salt.len() + 32);
    if !salt.is_empty() {
        crate::bencode::put_key_bytes(&mut out, b"salt", salt);
    }
    crate::bencode::put_key_int(&mut out, b"seq", seq);
    crate::bencode::put_bytes(&mut out, b"v");
    out.extend_from_slice(value);
    out
}

/// Bencodes `bytes` as a byte string: the usual value of an item.
pub fn bencode_bytes(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + 6);
    crate::bencode::put_bytes(&mut out, bytes);
    out
}

impl Item {
    /// An immutable item holding `value` (already bencoded).
    pub fn immutable(value: Vec<u8>) -> Item {
        Item {
            value,
            signed: None,
        }
    }

    /// A mutable item holding `value` (already bencoded), signed with the ed25519 secret
    /// `seed`.
    pub fn mutable(seed: &[u8; 32], salt: &[u8], seq: i64, value: Vec<u8>) -> Item {
        let signer = SigningKey::from_bytes(seed);
        let sig = signer.sign(&signed_bytes(salt, seq, &value)).to_bytes();
        Item {
            value,
            signed: Some(Signed {
                key: signer.verifying_key().to_bytes(),
                sig,
                salt: salt.to_vec(),
                seq,
            }),
        }
    }

    /// Where the item is stored.
    pub fn target(&self) -> Id {
        match &self.signed {
            None => immutable_target(&self.value),
            Some(s) => mutable_target(&s.key, &s.salt),
        }
    }

    /// The sequence number (`None` for an immutable item).
    pub fn seq(&self) -> Option<i64> {
        self.signed.as_ref().map(|s| s.seq)
    }

    /// Checks sizes and, for a mutable item, the signature.
    pub fn check(&self) -> Result<(), Refusal> {
        if self.value.len() > MAX_VALUE_LEN {
            return Err(refuse(ERR_TOO_BIG, "value too big"));
        }
        let Some(s) = &self.signed else {
            return Ok(());
        };
        if s.salt.len() > MAX_SALT_LEN {
            return Err(refuse(ERR_SALT_TOO_BIG, "salt too big"));
        }
        let bad = refuse(ERR_BAD_SIGNATURE, "invalid signature");
        let key = VerifyingKey::from_bytes(&s.key).map_err(|_| bad)?;
        key.verify(
            &signed_bytes(&s.salt, s.seq, &self.value),
            &Signature::from_bytes(&s.sig),
        )
        .map_err(|_| bad)
    }

    /// The item a `put` carries, checked (sizes, types, signature) in the order BEP 44 nodes
    /// report problems: value size, salt size, then the mutable fields and the signature.
    #[allow(clippy::too_many_arguments)]
    pub fn from_put(
        v: &[u8],
        k: Option<&[u8]>,
        sig: Option<&[u8]>,
        salt: Option<&[u8]>,
        seq: Option<i64>,
    ) -> Result<Item, Refusal> {
        if v.len() > MAX_VALUE_LEN {
            return Err(refuse(ERR_TOO_BIG, "value too big"));
        }
        let salt = salt.unwrap_or_default();
        if salt.len() > MAX_SALT_LEN {
            return Err(refuse(ERR_SALT_TOO_BIG, "salt too big"));
        }
        let Some(k) = k else {
            return Ok(Item::immutable(v.to_vec()));
        };
        let Ok(key) = <[u8; 32]>::try_from(k) else {
            return Err(refuse(ERR_PROTOCOL, "k is not 32 bytes"));
        };
        let Some(Ok(sig)) = sig.map(<[u8; 64]>::try_from) else {
            return Err(refuse(ERR_PROTOCOL, "missing or malformed sig"));
        };
        let Some(seq) = seq else {
            return Err(refuse(ERR_PROTOCOL, "missing seq"));
        };
        let item = Item {
            value: v.to_vec(),
            signed: Some(Signed {
                key,
                sig,
                salt: salt.to_vec(),
                seq,
            }),
        };
        item.check()?;
        Ok(item)
    }

    /// The item a `get` reply carries for `target`, if it is one and it checks out: an
    /// immutable value must hash to the target, a mutable one must be signed by a key that
    /// (with `salt`) hashes to it.
    pub fn from_reply(
        target: &Id,
        salt: &[u8],
        v: &[u8],
        k: Option<&[u8]>,
        sig: Option<&[u8]>,
        seq: Option<i64>,
    ) -> Option<Item> {
        let item = match k {
            None => Item::immutable(v.to_vec()),
            Some(k) => Item {
                value: v.to_vec(),
                signed: Some(Signed {
                    key: k.try_into().ok()?,
                    sig: sig?.try_into().ok()?,
                    salt: salt.to_vec(),
                    seq: seq?,
                }),
            },
        };
        (item.target() == *target && item.check().is_ok()).then_some(item)
    }

    fn bytes(&self) -> usize {
        self.value.len()
            + self
                .signed
                .as_ref()
                .map_or(0, |s| 32 + 64 + s.salt.len() + 8)
    }
}

#[derive(Debug, Clone)]
struct Stored {
    item: Item,
    last_put: Instant,
    used: u64,
}

/// The items other nodes put with us.
#[derive(Debug, Clone)]
pub struct ItemStore {
    cfg: ItemConfig,
    items: HashMap<Id, Stored>,
    /// Targets by last use: the eviction order.
    lru: BTreeMap<u64, Id>,
    tick: u64,
    bytes: usize,
}

impl ItemStore {
    /// An empty store with these bounds.
    pub fn new(cfg: ItemConfig) -> ItemStore {
        ItemStore {
            cfg,
            items: HashMap::new(),
            lru: BTreeMap::new(),
            tick: 0,
            bytes: 0,
        }
    }

    /// Items held.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True if nothing is held.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Bytes held (values, salts, keys and signatures).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The item under `target`, without counting it as used.
    pub fn peek(&self, target: &Id) -> Option<&Item> {
        self.items.get(target).map(|s| &s.item)
    }

    /// The item under `target`, counted as used (it goes last in the eviction order).
    pub fn get(&mut self, target: &Id) -> Option<&Item> {
        let s = self.items.get_mut(target)?;
        self.lru.remove(&s.used);
        self.tick += 1;
        s.used = self.tick;
        self.lru.insert(self.tick, *target);
        Some(&s.item)
    }

    /// Stores a checked `item` (see [`Item::from_put`]) under its target, unless the stored
    /// one is newer (302) or `cas` does not match the stored one's seq (301). Putting the
    /// same item again renews its lifetime. A store configured for no items acknowledges and
    /// keeps nothing (as a node without a store does); one configured for fewer bytes than
    /// this item refuses it (205) and keeps what it has.
    pub fn put(&mut self, now: Instant, item: Item, cas: Option<i64>) -> Result<(), Refusal> {
        let size = item.bytes();
        if self.cfg.max_items == 0 {
            return Ok(());
        }
        if size > self.cfg.max_bytes {
            return Err(refuse(ERR_TOO_BIG, "item too big for this node's store"));
        }
        let target = item.target();
        if let (Some(old), Some(new)) = (self.items.get(&target), &item.signed) {
            let old_seq = old.item.seq().unwrap_or(i64::MIN);
            if cas.is_some_and(|c| c != old_seq) {
                return Err(refuse(ERR_CAS_MISMATCH, "cas mismatch"));
            }
            if new.seq < old_seq || (new.seq == old_seq && item != old.item) {
                return Err(refuse(ERR_SEQ_TOO_LOW, "sequence number less than current"));
            }
        }
        self.remove(&target);
        while !self.items.is_empty()
            && (self.items.len() >= self.cfg.max_items || self.bytes + size > self.cfg.max_bytes)
        {
            let (_, oldest) = self.lru.pop_first().expect("in step with items");
            let gone = self.items.remove(&oldest).expect("in step with lru");
            self.bytes -= gone.item.bytes();
        }
        self.tick += 1;
        self.lru.insert(self.tick, target);
        self.bytes += size;
        self.items.insert(
            target,
            Stored {
                item,
                last_put: now,
                used: self.tick,
            },
        );
        Ok(())
    }

    fn remove(&mut self, target: &Id) {
        if let Some(s) = self.items.remove(target) {
            self.lru.remove(&s.used);
            self.bytes -= s.item.bytes();
        }
    }

    /// Drops items not put again within their lifetime.
    pub fn expire(&mut self, now: Instant) {
        let life = self.cfg.lifetime;
        let gone: Vec<Id> = self
            .items
            .iter()
            .filter(|(_, s)| now.saturating_since(s.last_put) >= life)
            .map(|(t, _)| *t)
            .collect();
        for t in gone {
            self.remove(&t);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: [u8; 32] = [7; 32];

    #[test]
    fn immutable_items_are_stored_under_their_hash() {
        let item = Item::immutable(bencode_bytes(b"hello"));
        assert_eq!(item.target(), immutable_target(b"5:hello"));
        let mut s = ItemStore::new(ItemConfig::default());
        s.put(Instant::ZERO, item.clone(), None).unwrap();
        assert_eq!(s.get(&item.target()), Some(&item));
    }

    #[test]
    fn signatures_are_checked_and_newer_seqs_win() {
        let a = Item::mutable(&SEED, b"salt", 1, bencode_bytes(b"one"));
        assert!(a.check().is_ok());
        let mut forged = a.clone();
        forged.value = bencode_bytes(b"two");
        assert_eq!(forged.check().unwrap_err().code, ERR_BAD_SIGNATURE);

        let mut s = ItemStore::new(ItemConfig::default());
        s.put(Instant::ZERO, a.clone(), None).unwrap();
        s.put(Instant::ZERO, a.clone(), None)
            .expect("the same item again renews it");
        let b = Item::mutable(&SEED, b"salt", 2, bencode_bytes(b"two"));
        assert_eq!(
            s.put(Instant::ZERO, b.clone(), Some(5)).unwrap_err().code,
            ERR_CAS_MISMATCH
        );
        s.put(Instant::ZERO, b.clone(), Some(1)).unwrap();
        assert_eq!(
            s.put(Instant::ZERO, a.clone(), None).unwrap_err().code,
            ERR_SEQ_TOO_LOW
        );
        let b2 = Item::mutable(&SEED, b"salt", 2, bencode_bytes(b"other"));
        assert_eq!(
            s.put(Instant::ZERO, b2, None).unwrap_err().code,
            ERR_SEQ_TOO_LOW,
            "the same seq with another value is refused"
        );
        assert_eq!(s.get(&a.target()), Some(&b));
    }

    #[test]
    fn puts_are_checked_in_order() {
        let big = vec![b'x'; MAX_VALUE_LEN + 1];
        let long_salt = [0u8; MAX_SALT_LEN + 1];
        let err = |r: Result<Item, Refusal>| r.unwrap_err().code;
        assert_eq!(
            err(Item::from_put(&big, None, None, None, None)),
            ERR_TOO_BIG
        );
        assert_eq!(
            err(Item::from_put(
                b"1:x",
                Some(&[0; 32]),
                None,
                Some(&long_salt),
                None
            )),
            ERR_SALT_TOO_BIG
        );
        assert_eq!(
            err(Item::from_put(
                b"1:x",
                Some(&[0; 31]),
                Some(&[0; 64]),
                None,
                Some(1)
            )),
            ERR_PROTOCOL
        );
        assert_eq!(
            err(Item::from_put(
                b"1:x",
                Some(&[0; 32]),
                Some(&[0; 64]),
                None,
                None
            )),
            ERR_PROTOCOL
        );
        let good = Item::mutable(&SEED, b"", 3, b"1:x".to_vec());
        let s = good.signed.as_ref().unwrap();
        assert_eq!(
            Item::from_put(b"1:x", Some(&s.key), Some(&s.sig), None, Some(3)),
            Ok(good.clone())
        );
        assert_eq!(
            err(Item::from_put(
                b"1:x",
                Some(&s.key),
                Some(&s.sig),
                None,
                Some(4)
            )),
            ERR_BAD_SIGNATURE
        );
    }

    #[test]
    fn the_store_is_bounded_and_items_expire() {
        let cfg = ItemConfig {
            max_items: 3,
            max_bytes: 1 << 20,
            lifetime: Duration::from_secs(60),
        };
        let mut s = ItemStore::new(cfg);
        let items: Vec<Item> = (0..4u8)
            .map(|i| Item::immutable(bencode_bytes(&[i; 10])))
            .collect();
        for it in &items[..3] {
            s.put(Instant::ZERO, it.clone(), None).unwrap();
        }
        // Using the first makes the second the least recently used.
        assert!(s.get(&items[0].target()).is_some());
        s.put(Instant::ZERO, items[3].clone(), None).unwrap();
        assert_eq!(s.len(), 3);
        assert!(s.peek(&items[1].target()).is_none(), "LRU evicted");
        assert!(s.peek(&items[0].target()).is_some());
        let later = Instant::ZERO + Duration::from_secs(30);
        s.put(later, items[0].clone(), None).unwrap();
        s.expire(Instant::ZERO + Duration::from_secs(61));
        assert_eq!(s.len(), 1, "only the item put again lives on");
        assert!(s.peek(&items[0].target()).is_some());

        let tiny = ItemConfig {
            max_items: 100,
            max_bytes: 30,
            lifetime: Duration::from_secs(60),
        };
        let mut s = ItemStore::new(tiny);
        for it in &items {
            s.put(Instant::ZERO, it.clone(), None).unwrap();
            assert!(s.bytes() <= 30);
        }
        assert_eq!(s.len(), 2, "12 bytes each, 30 bytes in all");
    }

    #[test]
    fn a_store_that_cannot_hold_an_item_refuses_it_and_keeps_its_own() {
        let small = Item::immutable(bencode_bytes(b"ok"));
        let big = Item::immutable(bencode_bytes(&[b'x'; 100]));
        let mut s = ItemStore::new(ItemConfig {
            max_items: 10,
            max_bytes: 50,
            lifetime: Duration::from_secs(60),
        });
        s.put(Instant::ZERO, small.clone(), None).unwrap();
        let err = s.put(Instant::ZERO, big, None).unwrap_err();
        assert_eq!(err.code, ERR_TOO_BIG);
        assert_eq!(
            s.peek(&small.target()),
            Some(&small),
            "nothing evicted for it"
        );
        let mut none = ItemStore::new(ItemConfig {
            max_items: 0,
            ..ItemConfig::default()
        });
        none.put(Instant::ZERO, small, None).unwrap();
        assert!(none.is_empty(), "acknowledged, not kept");
    }

    /// One step of the property test: put an item for key `key` (of 3) and salt `salt` (of
    /// 2) at `seq`, with `cas` when given, a value of `len` bytes; or, with `key` 3, move time.
    type Op = (u8, u8, i64, Option<i64>, usize);

    fn apply(s: &mut ItemStore, now: &mut Instant, (key, salt, seq, cas, len): Op) {
        if key == 3 {
            *now = *now + Duration::from_secs(len as u64);
            s.expire(*now);
            return;
        }
        let item = if key == 0 && salt == 0 {
            Item::immutable(bencode_bytes(&vec![b'i'; len]))
        } else {
            Item::mutable(&[key; 32], &[salt], seq, bencode_bytes(&vec![b'm'; len]))
        };
        let target = item.target();
        let before = s.peek(&target).cloned();
        let (len_before, bytes_before) = (s.len(), s.bytes());
        match s.put(*now, item.clone(), cas) {
            Ok(()) => {
                assert_eq!(s.peek(&target), Some(&item), "a put item is there");
                if let (Some(old), Some(new)) = (before.as_ref().and_then(Item::seq), item.seq()) {
                    assert!(new >= old, "seq went back from {old} to {new}");
                }
            }
            Err(e) => {
                assert!([ERR_CAS_MISMATCH, ERR_SEQ_TOO_LOW, ERR_TOO_BIG].contains(&e.code));
                assert_eq!(
                    s.peek(&target),
                    before.as_ref(),
                    "a refused put changes nothing"
                );
                assert_eq!((s.len(), s.bytes()), (len_before, bytes_before));
            }
        }
    }

    proptest::proptest! {
        // Every put signs with ed25519: 64 runs keep this under two seconds.
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        #[test]
        fn bounded_and_monotonic_under_random_puts(
            ops in proptest::collection::vec(
                (0u8..4, 0u8..2, 0i64..6, proptest::option::of(0i64..6), 0usize..120),
                1..200,
            )
        ) {
            let cfg = ItemConfig {
                max_items: 4,
                max_bytes: 600,
                lifetime: Duration::from_secs(300),
            };
            let mut s = ItemStore::new(cfg);
            let mut now = Instant::ZERO;
            for op in ops {
                apply(&mut s, &mut now, op);
                proptest::prop_assert!(s.len() <= cfg.max_items);
                proptest::prop_assert!(s.bytes() <= cfg.max_bytes);
                let sum: usize = s.items.values().map(|x| x.item.bytes()).sum();
                proptest::prop_assert_eq!(sum, s.bytes());
                proptest::prop_assert_eq!(s.lru.len(), s.items.len());
            }
        }
    }
}
