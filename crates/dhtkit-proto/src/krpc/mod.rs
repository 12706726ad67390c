//! KRPC messages (BEP 5) with the extensions dhtkit understands: BEP 32 (`nodes6`, `want`),
//! BEP 33 (`noseed`, `scrape`), BEP 42 (`ip`), BEP 43 (`ro`), BEP 44 (`get`, `put`) and BEP 51
//! (`sample_infohashes`).
//!
//! [`Message::parse`] turns a decoded bencode [`Value`] into a typed message that borrows from
//! the datagram; [`Message::encode`] writes the canonical encoding (keys in sorted order).
//! Transaction ids are opaque byte strings of any length.

mod encode;
mod method;
mod parse;

use std::net::SocketAddr;

use crate::bencode::{Iter, Value};
use crate::Id;

pub use method::{Arg, Method, MethodKind, Request};
pub use parse::ParseError;

/// KRPC error code 201: generic error.
pub const ERR_GENERIC: i64 = 201;
/// KRPC error code 202: server error.
pub const ERR_SERVER: i64 = 202;
/// KRPC error code 203: protocol error (malformed packet, invalid arguments, bad token).
pub const ERR_PROTOCOL: i64 = 203;
/// KRPC error code 204: method unknown.
pub const ERR_METHOD_UNKNOWN: i64 = 204;
/// BEP 44 error 205: the value (`v`, bencoded) is larger than 1000 bytes.
pub const ERR_TOO_BIG: i64 = 205;
/// BEP 44 error 206: the signature does not verify.
pub const ERR_BAD_SIGNATURE: i64 = 206;
/// BEP 44 error 207: the salt is larger than 64 bytes.
pub const ERR_SALT_TOO_BIG: i64 = 207;
/// BEP 44 error 301: compare-and-swap: the stored `seq` is not the `cas` given.
pub const ERR_CAS_MISMATCH: i64 = 301;
/// BEP 44 error 302: the `seq` is lower than the stored item's.
pub const ERR_SEQ_TOO_LOW: i64 = 302;

/// A KRPC message.
#[derive(Debug, Clone)]
pub struct Message<'a> {
    /// Transaction id, echoed in the reply.
    pub tid: &'a [u8],
    /// Client version string (`v`), if any.
    pub version: Option<&'a [u8]>,
    /// BEP 43 read-only flag (`ro: 1`) on a query.
    pub read_only: bool,
    /// BEP 42 `ip`: the address the responder saw the querier at.
    pub ip: Option<SocketAddr>,
    /// The query, response or error.
    pub body: Body<'a>,
}

/// The three kinds of KRPC message.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Body<'a> {
    /// `y = q`.
    Query(Query<'a>),
    /// `y = r`.
    Response(Response<'a>),
    /// `y = e`.
    Error(ErrorBody<'a>),
}

/// BEP 32 `want`: which address families the querier wants nodes for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Want {
    /// `n4` was requested.
    pub v4: bool,
    /// `n6` was requested.
    pub v6: bool,
}

impl Want {
    /// True if the query carried a `want` list.
    pub fn given(&self) -> bool {
        self.v4 || self.v6
    }
}

/// A query: the sender's id and the method with its arguments.
#[derive(Debug, Clone)]
pub struct Query<'a> {
    /// The querying node's id (`a.id`).
    pub id: Id,
    /// The method and its arguments.
    pub method: Method<&'a [u8]>,
    /// BEP 32 `want`.
    pub want: Want,
}

/// The peers in a `values` list: either a list borrowed from a received message or compact
/// peers laid end to end (for encoding a reply from the peer store).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Values<'a> {
    /// A bencoded list from the wire; non-string items are skipped.
    Wire(crate::bencode::List<'a>),
    /// Compact peers of `stride` bytes each (6 or 18).
    Compact {
        /// Concatenated compact peers.
        bytes: &'a [u8],
        /// Length of one entry.
        stride: usize,
    },
}

impl<'a> Values<'a> {
    /// Iterates over the raw entries (normally 6 or 18 bytes each).
    pub fn raw(&self) -> ValuesIter<'a> {
        match self {
            Values::Wire(l) => ValuesIter::Wire(l.iter()),
            Values::Compact { bytes, stride } => {
                ValuesIter::Compact(bytes.chunks_exact((*stride).max(1)))
            }
        }
    }

    /// Iterates over the entries that decode as peers.
    pub fn peers(&self) -> impl Iterator<Item = SocketAddr> + 'a {
        self.raw().filter_map(crate::compact::decode_peer)
    }
}

/// Iterator over the entries of [`Values`].
#[non_exhaustive]
pub enum ValuesIter<'a> {
    /// From a wire list.
    Wire(Iter<'a>),
    /// From compact bytes.
    Compact(std::slice::ChunksExact<'a, u8>),
}

impl<'a> Iterator for ValuesIter<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        match self {
            ValuesIter::Wire(it) => it.by_ref().find_map(|v: Value<'a>| v.as_bytes()),
            ValuesIter::Compact(it) => it.next(),
        }
    }
}

/// A response. KRPC responses do not name their method, so this is the union of the fields
/// any supported method returns; the querier knows which query the transaction belonged to.
#[derive(Debug, Clone, Default)]
pub struct Response<'a> {
    /// The responder's id.
    pub id: Id,
    /// Compact IPv4 nodes (raw; see [`crate::compact::nodes`]).
    pub nodes: Option<&'a [u8]>,
    /// Compact IPv6 nodes.
    pub nodes6: Option<&'a [u8]>,
    /// Write token for `announce_peer`.
    pub token: Option<&'a [u8]>,
    /// Peers for the infohash.
    pub values: Option<Values<'a>>,
    /// BEP 51 `interval`.
    pub interval: Option<i64>,
    /// BEP 51 `num`.
    pub num: Option<i64>,
    /// BEP 51 `samples`: concatenated 20-byte infohashes.
    pub samples: Option<&'a [u8]>,
    /// BEP 44 `v`: the item's value, bencoded, as on the wire.
    pub v: Option<&'a [u8]>,
    /// BEP 44 `k`: a mutable item's public key.
    pub k: Option<&'a [u8]>,
    /// BEP 44 `sig`: a mutable item's signature.
    pub sig: Option<&'a [u8]>,
    /// BEP 44 `seq`: a mutable item's sequence number.
    pub seq: Option<i64>,
    /// BEP 33 `BFsd`: bloom filter of seeds' IPs (256 bytes).
    pub bf_seeds: Option<&'a [u8]>,
    /// BEP 33 `BFpe`: bloom filter of the other peers' IPs (256 bytes).
    pub bf_peers: Option<&'a [u8]>,
}

/// An error message: code and text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorBody<'a> {
    /// Error code (201–204 in BEP 5).
    pub code: i64,
    /// Human-readable text.
    pub message: &'a [u8],
}

impl<'a> Message<'a> {
    /// Parses a decoded document into a typed message.
    pub fn parse(v: Value<'a>) -> Result<Message<'a>, ParseError<'a>> {
        parse::parse(v)
    }

    /// Appends the canonical encoding to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        encode::encode(self, out)
    }

    /// The canonical encoding as a new vector.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(128);
        self.encode(&mut out);
        out
    }
}

#[cfg(test)]
mod tests;
