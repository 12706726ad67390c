//! Validation of a decoded document into a typed [`Message`].

use std::fmt;

use super::{Body, ErrorBody, Message, Method, Query, Response, Values, Want, ERR_PROTOCOL};
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
    e.is_query = top.get_bytes(b"y") == Some(b"q");
    let Some(tid) = top.get_bytes(b"t") else {
        e.reason = "missing transaction id";
        return Err(e);
    };
    e.tid = Some(tid);
    let version = top.get_bytes(b"v");
    let read_only = top.get_int(b"ro") == Some(1);
    let ip = top.get_bytes(b"ip").and_then(crate::compact::decode_peer);
    let body = match top.get_bytes(b"y") {
        Some(b"q") => Body::Query(parse_query(top, &mut e)?),
        Some(b"r") => Body::Response(parse_response(top, &mut e)?),
        Some(b"e") => Body::Error(parse_error(top, &mut e)?),
        _ => {
            e.reason = "missing or unknown message type";
            return Err(e);
        }
    };
    Ok(Message {
        tid,
        version,
        read_only,
        ip,
        body,
    })
}

fn fail<'a, T>(e: &mut ParseError<'a>, reason: &'static str) -> Result<T, ParseError<'a>> {
    e.reason = reason;
    Err(e.clone())
}

fn id_arg(d: Dict<'_>, key: &[u8]) -> Option<Option<Id>> {
    match d.get(key) {
        None => Some(None),
        Some(v) => v.as_bytes().and_then(Id::from_slice).map(Some),
    }
}

fn parse_query<'a>(top: Dict<'a>, e: &mut ParseError<'a>) -> Result<Query<'a>, ParseError<'a>> {
    let Some(name) = top.get_bytes(b"q") else {
        return fail(e, "missing method name");
    };
    let Some(a) = top.get_dict(b"a") else {
        return fail(e, "missing arguments");
    };
    let Some(id) = a.get_bytes(b"id").and_then(Id::from_slice) else {
        return fail(e, "missing or malformed id");
    };
    let mut want = Want::default();
    if let Some(list) = a.get_list(b"want") {
        for item in list.iter() {
            match item.as_bytes() {
                Some(b"n4") => want.v4 = true,
                Some(b"n6") => want.v6 = true,
                _ => {}
            }
        }
    }
    let flag = |k: &[u8]| a.get_int(k).is_some_and(|i| i != 0);
    let method = match name {
        b"ping" => Method::Ping,
        b"find_node" => match id_arg(a, b"target") {
            Some(Some(target)) => Method::FindNode { target },
            _ => return fail(e, "missing or malformed target"),
        },
        b"get_peers" => match id_arg(a, b"info_hash") {
            Some(Some(info_hash)) => Method::GetPeers {
                info_hash,
                noseed: flag(b"noseed"),
                scrape: flag(b"scrape"),
            },
            _ => return fail(e, "missing or malformed info_hash"),
        },
        b"announce_peer" => {
            let Some(Some(info_hash)) = id_arg(a, b"info_hash") else {
                return fail(e, "missing or malformed info_hash");
            };
            let implied_port = flag(b"implied_port");
            let port = match a.get_int(b"port") {
                Some(p) if (0..=u16::MAX as i64).contains(&p) => p as u16,
                None if implied_port => 0,
                _ => return fail(e, "missing or malformed port"),
            };
            let Some(token) = a.get_bytes(b"token") else {
                return fail(e, "missing token");
            };
            Method::AnnouncePeer {
                info_hash,
                port,
                implied_port,
                token,
                seed: flag(b"seed"),
            }
        }
        b"sample_infohashes" => match id_arg(a, b"target") {
            Some(Some(target)) => Method::SampleInfohashes { target },
            _ => return fail(e, "missing or malformed target"),
        },
        other => Method::Other {
            name: other,
            target: id_arg(a, b"target").flatten(),
            info_hash: id_arg(a, b"info_hash").flatten(),
        },
    };
    Ok(Query { id, method, want })
}

fn parse_response<'a>(
    top: Dict<'a>,
    e: &mut ParseError<'a>,
) -> Result<Response<'a>, ParseError<'a>> {
    let Some(r) = top.get_dict(b"r") else {
        return fail(e, "missing response dictionary");
    };
    let Some(id) = r.get_bytes(b"id").and_then(Id::from_slice) else {
        return fail(e, "missing or malformed id");
    };
    Ok(Response {
        id,
        nodes: r.get_bytes(b"nodes"),
        nodes6: r.get_bytes(b"nodes6"),
        token: r.get_bytes(b"token"),
        values: r.get_list(b"values").map(Values::Wire),
        interval: r.get_int(b"interval"),
        num: r.get_int(b"num"),
        samples: r.get_bytes(b"samples"),
    })
}

fn parse_error<'a>(top: Dict<'a>, e: &mut ParseError<'a>) -> Result<ErrorBody<'a>, ParseError<'a>> {
    let Some(list) = top.get_list(b"e") else {
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
