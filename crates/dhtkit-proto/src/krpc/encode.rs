//! Canonical encoding of typed messages. Keys are written in sorted order by construction.

use super::{Body, ErrorBody, Message, Method, Query, Response, Values};
use crate::bencode::{put_bytes, put_int, put_key_bytes, put_key_int};

pub(super) fn encode(m: &Message<'_>, out: &mut Vec<u8>) {
    out.push(b'd');
    // Top-level keys in order: a, e, ip, q, r, ro, t, v, y.
    match &m.body {
        Body::Query(q) => {
            put_bytes(out, b"a");
            query_args(q, out);
        }
        Body::Error(err) => error_list(err, out),
        Body::Response(_) => {}
    }
    if let Some(ip) = &m.ip {
        put_bytes(out, b"ip");
        let mut buf = [0u8; 18];
        let n = compact_into(ip, &mut buf);
        put_bytes(out, &buf[..n]);
    }
    match &m.body {
        Body::Query(q) => put_key_bytes(out, b"q", q.method.name()),
        Body::Response(r) => {
            put_bytes(out, b"r");
            response_dict(r, out);
        }
        Body::Error(_) => {}
    }
    if m.read_only {
        put_key_int(out, b"ro", 1);
    }
    put_key_bytes(out, b"t", m.tid);
    if let Some(v) = m.version {
        put_key_bytes(out, b"v", v);
    }
    let y: &[u8] = match m.body {
        Body::Query(_) => b"q",
        Body::Response(_) => b"r",
        Body::Error(_) => b"e",
    };
    put_key_bytes(out, b"y", y);
    out.push(b'e');
}

fn compact_into(addr: &std::net::SocketAddr, buf: &mut [u8; 18]) -> usize {
    match addr.ip() {
        std::net::IpAddr::V4(ip) => {
            buf[..4].copy_from_slice(&ip.octets());
            buf[4..6].copy_from_slice(&addr.port().to_be_bytes());
            6
        }
        std::net::IpAddr::V6(ip) => {
            buf[..16].copy_from_slice(&ip.octets());
            buf[16..18].copy_from_slice(&addr.port().to_be_bytes());
            18
        }
    }
}

fn query_args(q: &Query<'_>, out: &mut Vec<u8>) {
    // Argument keys in order: id, implied_port, info_hash, noseed, port, scrape, seed, target,
    // token, want.
    out.push(b'd');
    put_key_bytes(out, b"id", &q.id.0);
    match &q.method {
        Method::Ping => {}
        Method::FindNode { target } | Method::SampleInfohashes { target } => {
            put_key_bytes(out, b"target", &target.0);
        }
        Method::GetPeers {
            info_hash,
            noseed,
            scrape,
        } => {
            put_key_bytes(out, b"info_hash", &info_hash.0);
            if *noseed {
                put_key_int(out, b"noseed", 1);
            }
            if *scrape {
                put_key_int(out, b"scrape", 1);
            }
        }
        Method::AnnouncePeer {
            info_hash,
            port,
            implied_port,
            token,
            seed,
        } => {
            if *implied_port {
                put_key_int(out, b"implied_port", 1);
            }
            put_key_bytes(out, b"info_hash", &info_hash.0);
            put_key_int(out, b"port", *port as i64);
            if *seed {
                put_key_int(out, b"seed", 1);
            }
            put_key_bytes(out, b"token", token);
        }
        Method::Other {
            target, info_hash, ..
        } => {
            if let Some(ih) = info_hash {
                put_key_bytes(out, b"info_hash", &ih.0);
            }
            if let Some(t) = target {
                put_key_bytes(out, b"target", &t.0);
            }
        }
    }
    if q.want.given() {
        put_bytes(out, b"want");
        out.push(b'l');
        if q.want.v4 {
            put_bytes(out, b"n4");
        }
        if q.want.v6 {
            put_bytes(out, b"n6");
        }
        out.push(b'e');
    }
    out.push(b'e');
}

fn response_dict(r: &Response<'_>, out: &mut Vec<u8>) {
    // Keys in order: id, interval, nodes, nodes6, num, samples, token, values.
    out.push(b'd');
    put_key_bytes(out, b"id", &r.id.0);
    if let Some(i) = r.interval {
        put_key_int(out, b"interval", i);
    }
    if let Some(n) = r.nodes {
        put_key_bytes(out, b"nodes", n);
    }
    if let Some(n) = r.nodes6 {
        put_key_bytes(out, b"nodes6", n);
    }
    if let Some(n) = r.num {
        put_key_int(out, b"num", n);
    }
    if let Some(s) = r.samples {
        put_key_bytes(out, b"samples", s);
    }
    if let Some(t) = r.token {
        put_key_bytes(out, b"token", t);
    }
    if let Some(values) = &r.values {
        put_values(values, out);
    }
    out.push(b'e');
}

fn put_values(values: &Values<'_>, out: &mut Vec<u8>) {
    put_bytes(out, b"values");
    out.push(b'l');
    for v in values.raw() {
        put_bytes(out, v);
    }
    out.push(b'e');
}

fn error_list(err: &ErrorBody<'_>, out: &mut Vec<u8>) {
    put_bytes(out, b"e");
    out.push(b'l');
    put_int(out, err.code);
    put_bytes(out, err.message);
    out.push(b'e');
}
