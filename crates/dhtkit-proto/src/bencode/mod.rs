//! Bencode: a borrowing, bounded decoder and a canonical encoder.
//!
//! Decoding goes through a reusable [`Decoder`] that yields a checked [`Value`] view borrowing
//! from the input. Encoding writes straight into a `Vec<u8>` with the `put_*` helpers (the hot
//! path, used by the KRPC encoder) or from an [`OwnedValue`] tree, whose dictionaries are
//! `BTreeMap`s and so always come out with sorted keys.

mod decode;
mod encode;

pub use decode::{DecodeError, Decoder, Dict, ErrorKind, Iter, Limits, List, Value};
pub use encode::{put_bytes, put_int, put_key_bytes, put_key_int};

use std::collections::BTreeMap;

/// An owned bencode value, for building arbitrary messages and for tests.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OwnedValue {
    /// An integer.
    Int(i64),
    /// A byte string.
    Bytes(Vec<u8>),
    /// A list.
    List(Vec<OwnedValue>),
    /// A dictionary; keys are kept sorted, so encoding is canonical.
    Dict(BTreeMap<Vec<u8>, OwnedValue>),
}

impl OwnedValue {
    /// Appends the canonical encoding of this value to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            OwnedValue::Int(i) => put_int(out, *i),
            OwnedValue::Bytes(b) => put_bytes(out, b),
            OwnedValue::List(items) => {
                out.push(b'l');
                for item in items {
                    item.encode(out);
                }
                out.push(b'e');
            }
            OwnedValue::Dict(map) => {
                out.push(b'd');
                for (k, v) in map {
                    put_bytes(out, k);
                    v.encode(out);
                }
                out.push(b'e');
            }
        }
    }

    /// The canonical encoding as a new vector.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }

    /// Decodes `buf` with default limits into an owned tree.
    pub fn decode(buf: &[u8]) -> Result<OwnedValue, DecodeError> {
        let mut d = Decoder::new(Limits::default());
        Ok(d.decode(buf)?.to_owned_value())
    }
}
