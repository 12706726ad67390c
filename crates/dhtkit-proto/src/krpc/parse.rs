//! Validation of a decoded document into a typed [`Message`].

use std::fmt;

use super::{
    Body, ErrorBody, Message, Method, MethodKind, Query, Response, Values, Want, ERR_PROTOCOL,
};
use crate::bencode::{Dict, Value};
use crate::Id;

/// Why a document is not a valid KRPC message.
///
/// When the document was a query with a transaction id, [`ParseError::reply`] says which KRPC
/// error to send back; otherwise the message is dropped silently (never answer a response or an
/// error, so that two nodes cannot bounce errors at each other).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError<'a> {
    /// The transaction id, if one could be read.
    pub tid: Option<&'a [u8]>,
    /// True if the message said it was a query (`y = q`).
    pub is_query: bool,
    /// KRPC error code to answer with.
    pub code: i64,
    /// What is wrong, for the error message and for logs.
    pub reason: &'static str,
}

impl<'a> ParseError<'a> {
    /// The `(tid, code, reason)` to reply with, or `None` when no reply should be sent.
    pub fn reply(&self) -> Option<(&'a [u8], i64, &'static str)> {
        match (self.is_query, self.tid) {
            (true, Some(t)) => Some((t, self.code, self.reason)),
            _ => None,
        }
    }
}

impl fmt::Display for ParseError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid KRPC message ({}): {}", self.code, self.reason)
    }
}

impl std::error::Error for ParseError<'_> {}

/// Walks a dictionary once and picks out the values under `keys` (the first occurrence of a
/// repeated key wins, as with [`Dict::get`]).
fn fields<'a, const N: usize>(d: Dict<'a>, keys: &[&[u8]; N]) -> [Option<Value<'a>>; N] {
    let mut out = [None; N];
    for (k, v) in d.iter() {
        if let Some(i) = keys.iter().position(|x| *x == k) {
            if out[i].is_none() {
                out[i] = Some(v);
            }
        }
    }
    out
}

fn bytes<'a>(v: Option<Value<'a>>) -> Option<&'a [u8]> {
    v?.as_bytes()
}

fn int(v: Option<Value<'_>>) -> Option<i64> {
    v?.as_int()
}

/// `None`: absent; `Some(None)`: present but not 20 bytes; `Some(Some(id))`: an id.
fn id_field(v: Option<Value<'_>>) -> Option<Option<Id>> {
    v.map(|v| v.as_bytes().and_then(Id::from_slice))
}

pub(super) fn parse<'a>(v: Value<'a>) -> Result<Message<'a>, ParseError<'a>> {
    let mut e = ParseError {
        tid: None,
        is_query: false,
        code: ERR_PROTOCOL,
        reason: "message is not a dictionary",
    };
    let Some(top) = v.as_dict() else {
        return Err(e);
    };
    let [t, y, q, a, r, err, ver, ro, ip] = fields(
        top,
        &[b"t", b"y", b"q", b"a", b"r", b"e", b"v", b"ro", b"ip"],
    );
    let y = bytes(y);
    e.is_query = y == Some(b"q");
    let Some(tid) = bytes(t) else {
        e.reason = "missing transaction id";
        return Err(e);
    };
    e.tid = Some(tid);
    let body = match y {
        Some(b"q") => Body::Query(parse_query(q, a, &mut e)?),
        Some(b"r") => Body::Response(parse_response(r, &mut e)?),
        Some(b"e") => Body::Error(parse_error(err, &mut e)?),
        _ => {
            e.reason = "missing or unknown message type";
            return Err(e);
        }
    };
    Ok(Message {
        tid,
        version: bytes(ver),
        read_only: int(ro) == Some(1),
        ip: bytes(ip).and_then(crate::compact::decode_peer),
        body,
    })
}

fn fail<'a, T>(e: &mut ParseError<'a>, reason: &'static str) -> Result<T, ParseError<'a>> {
    e.reason = reason;
    Err(e.clone())
}

fn parse_query<'a>(
    q: Option<Value<'a>>,
    a: Option<Value<'a>>,
    e: &mut ParseError<'a>,
) -> Result<Query<'a>, ParseError<'a>> {
    let Some(name) = bytes(q) else {
        return fail(e, "missing method name");
    };
    let Some(a) = a.and_then(|a| a.as_dict()) else {
        return fail(e, "missing arguments");
    };
    let [id, target, info_hash, port, implied_port, token, want_list, noseed, scrape, seed, v, k, sig, salt, seq, cas] =
        fields(
            a,
            &[
                b"id",
                b"target",
                b"info_hash",
                b"port",
                b"implied_port",
                b"token",
                b"want",
                b"noseed",
                b"scrape",
                b"seed",
                b"v",
                b"k",
                b"sig",
                b"salt",
                b"seq",
                b"cas",
            ],
        );
    let Some(id) = bytes(id).and_then(Id::from_slice) else {
        return fail(e, "missing or malformed id");
    };
    let mut want = Want::default();
    if let Some(list) = want_list.and_then(|w| w.as_list()) {
        for item in list.iter() {
            match item.as_bytes() {
                Some(b"n4") => want.v4 = true,
                Some(b"n6") => want.v6 = true,
                _ => {}
            }
        }
    }
    let flag = |v: Option<Value<'_>>| int(v).is_some_and(|i| i != 0);
    let method = match MethodKind::from_name(name) {
        MethodKind::Ping => Method::Ping,
        MethodKind::FindNode => match id_field(target) {
            Some(Some(target)) => Method::FindNode { target },
            _ => return fail(e, "missing or malformed target"),
        },
        MethodKind::GetPeers => match id_field(info_hash) {
            Some(Some(info_hash)) => Method::GetPeers {
                info_hash,
                noseed: flag(noseed),
                scrape: flag(scrape),
            },
            _ => return fail(e, "missing or malformed info_hash"),
        },
        MethodKind::AnnouncePeer => {
            let Some(Some(info_hash)) = id_field(info_hash) else {
                return fail(e, "missing or malformed info_hash");
            };
            let implied_port = flag(implied_port);
            let port = match int(port) {
                Some(p) if (0..=u16::MAX as i64).contains(&p) => p as u16,
                None if implied_port => 0,
                _ => return fail(e, "missing or malformed port"),
            };
            let Some(token) = bytes(token) else {
                return fail(e, "missing token");
            };
            Method::AnnouncePeer {
                info_hash,
                port,
                implied_port,
                token,
                seed: flag(seed),
            }
        }
        MethodKind::SampleInfohashes => match id_field(target) {
            Some(Some(target)) => Method::SampleInfohashes { target },
            _ => return fail(e, "missing or malformed target"),
        },
        MethodKind::Get => {
            let Some(Some(target)) = id_field(target) else {
                return fail(e, "missing or malformed target");
            };
            let Some(seq) = optional_int(seq) else {
                return fail(e, "malformed seq");
            };
            Method::Get { target, seq }
        }
        MethodKind::Put => {
            let Some(token) = bytes(token) else {
                return fail(e, "missing token");
            };
            let Some(v) = v else {
                return fail(e, "missing v");
            };
            let (Some(k), Some(sig), Some(salt)) =
                (optional_bytes(k), optional_bytes(sig), optional_bytes(salt))
            else {
                return fail(e, "k, sig and salt must be byte strings");
            };
            let (Some(seq), Some(cas)) = (optional_int(seq), optional_int(cas)) else {
                return fail(e, "seq and cas must be integers");
            };
            Method::Put {
                token,
                v: v.raw(),
                k,
                sig,
                salt,
                seq,
                cas,
            }
        }
        MethodKind::Other => Method::Other {
            name,
            target: id_field(target).flatten(),
            info_hash: id_field(info_hash).flatten(),
        },
    };
    Ok(Query { id, method, want })
}

/// `Some(None)`: absent; `Some(Some(i))`: an integer; `None`: present but not an integer.
fn optional_int(v: Option<Value<'_>>) -> Option<Option<i64>> {
    match v {
        None => Some(None),
        Some(v) => v.as_int().map(Some),
    }
}

/// `Some(None)`: absent; `Some(Some(b))`: a byte string; `None`: present but not one.
fn optional_bytes(v: Option<Value<'_>>) -> Option<Option<&[u8]>> {
    match v {
        None => Some(None),
        Some(v) => v.as_bytes().map(Some),
    }
}

fn parse_response<'a>(
    r: Option<Value<'a>>,
    e: &mut ParseError<'a>,
) -> Result<Response<'a>, ParseError<'a>> {
    let Some(r) = r.and_then(|r| r.as_dict()) else {
        return fail(e, "missing response dictionary");
    };
    let [id, nodes, nodes6, token, values, interval, num, samples, v, k, sig, seq, bfsd, bfpe] =
        fields(
            r,
            &[
                b"id",
                b"nodes",
                b"nodes6",
                b"token",
                b"values",
                b"interval",
                b"num",
                b"samples",
                b"v",
                b"k",
                b"sig",
                b"seq",
                b"BFsd",
                b"BFpe",
            ],
        );
    let Some(id) = bytes(id).and_then(Id::from_slice) else {
        return fail(e, "missing or malformed id");
    };
    Ok(Response {
        id,
        nodes: bytes(nodes),
        nodes6: bytes(nodes6),
        token: bytes(token),
        values: values.and_then(|v| v.as_list()).map(Values::Wire),
        interval: int(interval),
        num: int(num),
        samples: bytes(samples),
        v: v.map(|v| v.raw()),
        k: bytes(k),
        sig: bytes(sig),
        seq: int(seq),
        bf_seeds: bytes(bfsd),
        bf_peers: bytes(bfpe),
    })
}

fn parse_error<'a>(
    err: Option<Value<'a>>,
    e: &mut ParseError<'a>,
) -> Result<ErrorBody<'a>, ParseError<'a>> {
    let Some(list) = err.and_then(|l| l.as_list()) else {
        return fail(e, "missing error list");
    };
    let mut it = list.iter();
    let code = it.next().and_then(|v| v.as_int());
    let message = it.next().and_then(|v| v.as_bytes());
    match (code, message) {
        (Some(code), Some(message)) => Ok(ErrorBody { code, message }),
        (Some(code), None) => Ok(ErrorBody { code, message: b"" }),
        _ => fail(e, "malformed error list"),
    }
}
