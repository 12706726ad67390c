//! Canonical encoding of typed messages. Keys are written in sorted order by construction.

use super::{Arg, Body, ErrorBody, Message, Query, Response, Values};
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

#[inline(never)]
fn query_args(q: &Query<'_>, out: &mut Vec<u8>) {
    // Arguments come in sorted key order from the method; `id` goes in where it sorts and
    // `want` (the largest key) last.
    out.push(b'd');
    let mut id_written = false;
    q.method.for_each_arg(|key, arg| {
        if !id_written && key > "id" {
            put_key_bytes(out, b"id", &q.id.0);
            id_written = true;
        }
        match arg {
            Arg::Id(id) => put_key_bytes(out, key.as_bytes(), &id.0),
            Arg::Int(i) => put_key_int(out, key.as_bytes(), i),
            Arg::Bytes(b) => put_key_bytes(out, key.as_bytes(), b),
            Arg::Raw(raw) => {
                put_bytes(out, key.as_bytes());
                out.extend_from_slice(raw);
            }
        }
    });
    if !id_written {
        put_key_bytes(out, b"id", &q.id.0);
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

#[inline(never)]
fn response_dict(r: &Response<'_>, out: &mut Vec<u8>) {
    // Keys in order: BFpe, BFsd, id, interval, k, nodes, nodes6, num, samples, seq, sig,
    // token, v, values (upper case sorts first).
    out.push(b'd');
    if let Some(b) = r.bf_peers {
        put_key_bytes(out, b"BFpe", b);
    }
    if let Some(b) = r.bf_seeds {
        put_key_bytes(out, b"BFsd", b);
    }
    put_key_bytes(out, b"id", &r.id.0);
    if let Some(i) = r.interval {
        put_key_int(out, b"interval", i);
    }
    if let Some(k) = r.k {
        put_key_bytes(out, b"k", k);
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
    if let Some(seq) = r.seq {
        put_key_int(out, b"seq", seq);
    }
    if let Some(sig) = r.sig {
        put_key_bytes(out, b"sig", sig);
    }
    if let Some(t) = r.token {
        put_key_bytes(out, b"token", t);
    }
    if let Some(v) = r.v {
        put_bytes(out, b"v");
        out.extend_from_slice(v);
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
