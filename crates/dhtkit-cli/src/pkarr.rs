//! pkarr's relay protocol on `dhtkit node --http`: `PUT /:key` stores a signed DNS packet as
//! a BEP 44 mutable item (`k` the key, no salt, `seq` the timestamp in microseconds, `v` the
//! packet), `GET /:key` reads it back, over both address families the node has.
//!
//! The body both ways is the relay payload: the 64-byte ed25519 signature, the timestamp (8
//! bytes, big-endian microseconds), then the DNS packet (at most 1,000 bytes). The key in
//! the path is z-base32 (52 characters), as pkarr writes public keys.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use dhtkit::Item;
use serde::Deserialize;

use crate::http::{read_body, Api};

/// Most bytes of a DNS packet in a record (as pkarr).
pub(crate) const MAX_PACKET: usize = 1000;
/// Bytes before the packet: signature and timestamp.
const HEADER: usize = 64 + 8;

/// The relay's settings.
#[derive(Debug, Clone)]
pub(crate) struct RelayOptions {
    /// Records kept in memory (their latest version), for GETs and 409s.
    pub cache_size: usize,
    /// Requests that reach the DHT (PUTs, and GETs the cache cannot answer) allowed per
    /// client IP per minute (burst: the same number); 0 = no limit.
    pub per_minute: u32,
}

impl Default for RelayOptions {
    fn default() -> Self {
        RelayOptions {
            cache_size: 10_000,
            per_minute: 120,
        }
    }
}

/// A record as the relay holds it.
#[derive(Clone)]
struct Record {
    /// signature ‖ timestamp ‖ packet.
    payload: Bytes,
    timestamp: u64,
    /// When it was put or read from the DHT.
    seen: Instant,
}

/// The relay's state: the record cache and the per-IP request budgets.
pub(crate) struct Relay {
    opts: RelayOptions,
    cache: Mutex<HashMap<[u8; 32], Record>>,
    buckets: Mutex<HashMap<IpAddr, (f64, Instant)>>,
}

/// Most IPs whose budget is tracked (the idlest are forgotten beyond it).
const MAX_TRACKED_IPS: usize = 10_000;

impl Relay {
    pub(crate) fn new(opts: RelayOptions) -> Relay {
        Relay {
            opts,
            cache: Mutex::new(HashMap::new()),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    fn cached(&self, key: &[u8; 32]) -> Option<Record> {
        self.cache.lock().ok()?.get(key).cloned()
    }

    /// Keeps `r` if it is newer than what is cached.
    fn remember(&self, key: [u8; 32], r: Record) {
        let Ok(mut c) = self.cache.lock() else { return };
        if c.get(&key).is_some_and(|old| old.timestamp > r.timestamp) {
            return;
        }
        if c.len() >= self.opts.cache_size && !c.contains_key(&key) {
            // Forget the record seen longest ago.
            if let Some(k) = c.iter().min_by_key(|(_, r)| r.seen).map(|(k, _)| *k) {
                c.remove(&k);
            }
        }
        if self.opts.cache_size > 0 {
            c.insert(key, r);
        }
    }

    /// Takes one request from `ip`'s budget; false when it is spent.
    fn allow(&self, ip: IpAddr) -> bool {
        let per_minute = self.opts.per_minute;
        if per_minute == 0 {
            return true;
        }
        let Ok(mut b) = self.buckets.lock() else {
            return false;
        };
        let now = Instant::now();
        let cap = f64::from(per_minute);
        if b.len() >= MAX_TRACKED_IPS && !b.contains_key(&ip) {
            // Full buckets carry no information: forget those first, else the idlest.
            b.retain(|_, (tokens, at)| {
                *tokens + now.duration_since(*at).as_secs_f64() * cap / 60.0 < cap
            });
            if b.len() >= MAX_TRACKED_IPS {
                if let Some(k) = b.iter().min_by_key(|(_, (_, at))| *at).map(|(k, _)| *k) {
                    b.remove(&k);
                }
            }
        }
        let (tokens, at) = b.entry(ip).or_insert((cap, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * cap / 60.0).min(cap);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The z-base32 alphabet (as pkarr's keys use).
const ZBASE32: &[u8; 32] = b"ybndrfg8ejkmcpqxot1uwisza345h769";

/// A 32-byte key from its 52 z-base32 characters, also inside a longer name as pkarr reads
/// them (`pk:KEY`, `_sub.KEY`, `KEY.`). As pkarr, the 4 spare bits of the last character are
/// ignored.
pub(crate) fn decode_key(s: &str) -> Option<[u8; 32]> {
    let mut s = s;
    if s.len() > 52 {
        s = s.rsplit(':').next()?.trim_end_matches('.');
        s = s.rsplit('.').next()?;
    }
    if s.len() != 52 {
        return None;
    }
    let mut out = [0u8; 32];
    let (mut acc, mut bits, mut n) = (0u32, 0u32, 0usize);
    for c in s.bytes() {
        let v = ZBASE32.iter().position(|&a| a == c)? as u32;
        acc = ((acc << 5) | v) & 0xFFFF;
        bits += 5;
        if bits >= 8 && n < 32 {
            bits -= 8;
            out[n] = (acc >> bits) as u8;
            n += 1;
        }
    }
    (n == 32).then_some(out)
}

/// The 52 z-base32 characters of a 32-byte key.
pub(crate) fn encode_key(key: &[u8; 32]) -> String {
    let mut out = String::with_capacity(52);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &b in key {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ZBASE32[((acc >> bits) & 31) as usize] as char);
        }
        acc &= (1 << bits) - 1;
    }
    if bits > 0 {
        out.push(ZBASE32[((acc << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// Bounds of the `Cache-Control: max-age` the relay sends, and of how long a cached record
/// is served without asking the DHT (seconds; pkarr's defaults).
const MIN_TTL: u32 = 300;
const MAX_TTL: u32 = 86_400;

/// Walks a DNS message: `Some(min TTL of its answers, or None when it has none)` when every
/// section parses, `None` when it does not.
pub(crate) fn dns_min_ttl(packet: &[u8]) -> Option<Option<u32>> {
    fn skip_name(p: &[u8], mut at: usize) -> Option<usize> {
        // Labels end with a zero byte or a 2-byte compression pointer; a name has at most
        // 127 labels.
        for _ in 0..128 {
            let len = *p.get(at)?;
            match len {
                0 => return Some(at + 1),
                l if l & 0xC0 == 0xC0 => {
                    p.get(at + 1)?;
                    return Some(at + 2);
                }
                l if l & 0xC0 == 0 => at += 1 + usize::from(l),
                _ => return None,
            }
        }
        None
    }
    let get16 = |at: usize| -> Option<u16> {
        Some(u16::from_be_bytes(packet.get(at..at + 2)?.try_into().ok()?))
    };
    let (qd, an, ns, ar) = (get16(4)?, get16(6)?, get16(8)?, get16(10)?);
    let mut at = 12;
    for _ in 0..qd {
        at = skip_name(packet, at)? + 4;
    }
    if at > packet.len() {
        return None;
    }
    let mut min: Option<u32> = None;
    for i in 0..u32::from(an) + u32::from(ns) + u32::from(ar) {
        at = skip_name(packet, at)?;
        let ttl = u32::from_be_bytes(packet.get(at + 4..at + 8)?.try_into().ok()?);
        let rdlen = usize::from(get16(at + 8)?);
        at += 10 + rdlen;
        if at > packet.len() {
            return None;
        }
        if i < u32::from(an) {
            min = Some(min.map_or(ttl, |m| m.min(ttl)));
        }
    }
    (at == packet.len()).then_some(min)
}

/// The record's TTL as pkarr reads it: the smallest answer TTL, within [300 s, 1 day].
fn ttl_of(packet: &[u8]) -> u32 {
    dns_min_ttl(packet)
        .flatten()
        .unwrap_or(MIN_TTL)
        .clamp(MIN_TTL, MAX_TTL)
}

/// A relay error: a text body, as pkarr-relay answers.
fn relay_error(status: StatusCode, message: impl Into<String>, req: &HeaderMap) -> Response {
    let mut r = (status, message.into()).into_response();
    cors(r.headers_mut(), req);
    r
}

/// CORS as pkarr-relay sends it (any origin, credentials allowed, the pkarr headers exposed).
fn cors(h: &mut HeaderMap, req: &HeaderMap) {
    if let Some(origin) = req.get(header::ORIGIN) {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
    }
    h.insert(
        header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
        HeaderValue::from_static("true"),
    );
    h.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("pkarr-invalid-signed-packet-seq,pkarr-dht-stored-nodes"),
    );
    h.insert(
        header::VARY,
        HeaderValue::from_static(
            "origin, access-control-request-method, access-control-request-headers",
        ),
    );
}

/// `OPTIONS /:key`: CORS preflight (200, the method and headers asked for allowed).
pub(crate) async fn preflight(req: HeaderMap) -> Response {
    let mut r = StatusCode::OK.into_response();
    cors(r.headers_mut(), &req);
    let h = r.headers_mut();
    let methods = req
        .get(header::ACCESS_CONTROL_REQUEST_METHOD)
        .cloned()
        .unwrap_or(HeaderValue::from_static("GET, HEAD, PUT"));
    h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, methods);
    if let Some(asked) = req.get(header::ACCESS_CONTROL_REQUEST_HEADERS) {
        h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, asked.clone());
    }
    h.insert(header::ALLOW, HeaderValue::from_static("GET,HEAD,PUT"));
    r
}

fn bad_key(s: &str, req: &HeaderMap) -> Response {
    relay_error(
        StatusCode::BAD_REQUEST,
        format!("Invalid URL: {s:?} is not a pkarr public key (52 z-base32 characters)"),
        req,
    )
}

/// Largest body a PUT reads (pkarr-relay's limit): beyond it, 413.
const MAX_PUT_BODY: usize = 1104;

/// Whether `a` is more recent than `b`, as pkarr orders records: a higher timestamp, or the
/// same one and a packet that sorts after.
fn more_recent(a: &Record, b: &Record) -> bool {
    (a.timestamp, &a.payload[HEADER..]) > (b.timestamp, &b.payload[HEADER..])
}

/// `PUT /:key`: checks the signed packet, refuses it when a more recent one is known (409),
/// stores it on the DHT, answers 204 with `Pkarr-Dht-Stored-Nodes`.
pub(crate) async fn put_record(
    State(api): State<Arc<Api>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(path): Path<String>,
    req: HeaderMap,
    body: Body,
) -> Response {
    let Some(key) = decode_key(&path) else {
        return bad_key(&path, &req);
    };
    let body = match read_body(body, MAX_PUT_BODY).await {
        Ok(b) => b,
        Err(_) => {
            return relay_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("Failed to buffer the request body: over {MAX_PUT_BODY} bytes"),
                &req,
            )
        }
    };
    if body.len() < HEADER {
        return relay_error(
            StatusCode::BAD_REQUEST,
            format!(
                "Invalid SignedPacket: the body is the 64-byte signature, the 8-byte timestamp \
                 and the DNS packet; got {} bytes",
                body.len()
            ),
            &req,
        );
    }
    if body.len() > HEADER + MAX_PACKET {
        return relay_error(
            StatusCode::BAD_REQUEST,
            format!(
                "Invalid SignedPacket: DNS Packet is too large, {} bytes; at most {MAX_PACKET}",
                body.len() - HEADER
            ),
            &req,
        );
    }
    if !api.pkarr.allow(peer.ip()) {
        return relay_error(StatusCode::TOO_MANY_REQUESTS, "Too many requests", &req);
    }
    let sig: [u8; 64] = body[..64].try_into().expect("64 bytes");
    let ts = u64::from_be_bytes(body[64..72].try_into().expect("8 bytes"));
    let packet = &body[HEADER..];
    let Ok(seq) = i64::try_from(ts) else {
        return relay_error(
            StatusCode::BAD_REQUEST,
            "Invalid SignedPacket: timestamp out of range",
            &req,
        );
    };
    let item = Item {
        value: dhtkit::items::bencode_bytes(packet),
        signed: Some(dhtkit::items::Signed {
            key,
            sig,
            salt: Vec::new(),
            seq,
        }),
    };
    if let Err(r) = item.check() {
        return relay_error(
            StatusCode::BAD_REQUEST,
            format!("Invalid SignedPacket: {} ({})", r.message, r.code),
            &req,
        );
    }
    if dns_min_ttl(packet).is_none() {
        return relay_error(
            StatusCode::BAD_REQUEST,
            "Invalid SignedPacket: the packet is not a DNS message",
            &req,
        );
    }
    let record = Record {
        payload: body.clone(),
        timestamp: ts,
        seen: Instant::now(),
    };
    if api
        .pkarr
        .cached(&key)
        .is_some_and(|known| more_recent(&known, &record))
    {
        return relay_error(StatusCode::CONFLICT, "packet is not the most recent", &req);
    }
    match api.dht.put(item, None).await {
        Ok(p) if p.stored > 0 => {
            api.pkarr.remember(key, record);
            let mut r = StatusCode::NO_CONTENT.into_response();
            cors(r.headers_mut(), &req);
            r.headers_mut()
                .insert("pkarr-dht-stored-nodes", HeaderValue::from(p.stored as u64));
            r
        }
        // Nodes hold a newer record (301/302) and none stored ours.
        Ok(p) if p.errors.iter().any(|c| *c == 301 || *c == 302) => {
            relay_error(StatusCode::CONFLICT, "packet is not the most recent", &req)
        }
        Ok(p) if p.lookup.closest.is_empty() => relay_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "DHT query found no closest nodes",
            &req,
        ),
        Ok(_) => relay_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "no DHT node stored the packet",
            &req,
        ),
        Err(dhtkit::Error::InvalidItem { message, .. }) => relay_error(
            StatusCode::BAD_REQUEST,
            format!("Invalid SignedPacket: {message}"),
            &req,
        ),
        Err(e) => relay_error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string(), &req),
    }
}

/// Where a GET may look (`?policy=`, as pkarr clients send it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
pub(crate) enum Policy {
    /// The cache while the record's TTL lasts, else the DHT.
    #[default]
    CacheFirst,
    /// The cache alone.
    CacheOnly,
    /// The DHT alone.
    NetworkOnly,
}

/// `GET /:key`'s query.
#[derive(Debug, Deserialize)]
pub(crate) struct GetQuery {
    #[serde(default)]
    policy: Policy,
}

/// `GET /:key`: the most recent record, from the cache or the DHT as `policy` says.
pub(crate) async fn get_record(
    State(api): State<Arc<Api>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(path): Path<String>,
    q: Result<Query<GetQuery>, QueryRejection>,
    req: HeaderMap,
) -> Response {
    let Some(key) = decode_key(&path) else {
        return bad_key(&path, &req);
    };
    let policy = match q {
        Ok(Query(q)) => q.policy,
        Err(e) => {
            return relay_error(
                StatusCode::BAD_REQUEST,
                format!("Failed to deserialize query string: {}", e.body_text()),
                &req,
            )
        }
    };
    let cached = api.pkarr.cached(&key);
    let fresh = cached
        .as_ref()
        .filter(|r| r.seen.elapsed().as_secs() < u64::from(ttl_of(&r.payload[HEADER..])));
    let record = match (policy, fresh) {
        (Policy::CacheOnly, _) => cached,
        (Policy::CacheFirst, Some(r)) => Some(r.clone()),
        _ => {
            if !api.pkarr.allow(peer.ip()) {
                return relay_error(StatusCode::TOO_MANY_REQUESTS, "Too many requests", &req);
            }
            let target = dhtkit::items::mutable_target(&key, &[]);
            let found = match api.dht.get_lookup(target, &[]).await {
                Ok(l) => l,
                Err(e) => return relay_error(StatusCode::SERVICE_UNAVAILABLE, e.to_string(), &req),
            };
            if found.item.is_none() && found.item_report.answered == 0 {
                if policy == Policy::CacheFirst && cached.is_some() {
                    cached
                } else {
                    return relay_error(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "No queried DHT nodes responded",
                        &req,
                    );
                }
            } else {
                match found.item.as_ref().and_then(record_of) {
                    Some(r) => {
                        api.pkarr.remember(key, r.clone());
                        // Never older than what the cache holds.
                        match cached {
                            Some(c) if policy == Policy::CacheFirst && more_recent(&c, &r) => {
                                Some(c)
                            }
                            _ => Some(r),
                        }
                    }
                    None => {
                        if let Some(seq) = found.item.as_ref().and_then(|i| i.seq()) {
                            let mut r = StatusCode::NOT_FOUND.into_response();
                            cors(r.headers_mut(), &req);
                            r.headers_mut()
                                .insert("pkarr-invalid-signed-packet-seq", HeaderValue::from(seq));
                            return r;
                        }
                        if policy == Policy::CacheFirst {
                            cached
                        } else {
                            None
                        }
                    }
                }
            }
        }
    };
    let Some(record) = record else {
        let mut r = StatusCode::NOT_FOUND.into_response();
        cors(r.headers_mut(), &req);
        return r;
    };
    let modified = UNIX_EPOCH + Duration::from_micros(record.timestamp);
    let not_modified = req
        .get(header::IF_MODIFIED_SINCE)
        .and_then(|h| h.to_str().ok())
        .and_then(|s| httpdate::parse_http_date(s).ok())
        .is_some_and(|since| modified <= since);
    let mut r = if not_modified {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(header::CONTENT_TYPE, "application/pkarr.org/relays#payload")],
            record.payload.clone(),
        )
            .into_response()
    };
    let seen = SystemTime::now()
        .checked_sub(record.seen.elapsed())
        .unwrap_or(UNIX_EPOCH);
    let h = r.headers_mut();
    for (name, value) in [
        (header::LAST_MODIFIED, httpdate::fmt_http_date(modified)),
        (
            header::CACHE_CONTROL,
            format!("public, max-age={}", ttl_of(&record.payload[HEADER..])),
        ),
        (
            header::HeaderName::from_static("memento-datetime"),
            httpdate::fmt_http_date(seen),
        ),
    ] {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(name, v);
        }
    }
    cors(h, &req);
    r
}

/// A record from a mutable item found on the DHT, if it is a pkarr record (no salt, a byte
/// string value that is a DNS message, a timestamp that is not negative).
fn record_of(item: &Item) -> Option<Record> {
    let s = item.signed.as_ref().filter(|s| s.salt.is_empty())?;
    let ts = u64::try_from(s.seq).ok()?;
    let packet = match dhtkit::OwnedValue::decode(&item.value) {
        Ok(dhtkit::OwnedValue::Bytes(b)) => b,
        _ => return None,
    };
    if packet.len() > MAX_PACKET {
        return None;
    }
    dns_min_ttl(&packet)?;
    let mut payload = Vec::with_capacity(HEADER + packet.len());
    payload.extend_from_slice(&s.sig);
    payload.extend_from_slice(&ts.to_be_bytes());
    payload.extend_from_slice(&packet);
    Some(Record {
        payload: payload.into(),
        timestamp: ts,
        seen: Instant::now(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zbase32_keys_round_trip_and_bad_ones_are_refused() {
        for seed in [[0u8; 32], [0xff; 32], core::array::from_fn(|i| i as u8 * 7)] {
            let s = encode_key(&seed);
            assert_eq!(s.len(), 52);
            assert_eq!(decode_key(&s), Some(seed));
            assert_eq!(decode_key(&format!("pk:{s}")), Some(seed));
        }
        assert_eq!(encode_key(&[0; 32]), "y".repeat(52));
        assert_eq!(decode_key("short"), None);
        assert_eq!(
            decode_key(&"0".repeat(52)),
            None,
            "0 is not in the alphabet"
        );
        assert_eq!(
            decode_key(&"Y".repeat(52)),
            None,
            "lower case only, as pkarr"
        );
        let k = encode_key(&[9; 32]);
        assert_eq!(decode_key(&format!("_foo.{k}")), Some([9; 32]));
        assert_eq!(decode_key(&format!("{k}.")), Some([9; 32]));
        // The last character's 4 spare bits are ignored, as pkarr does.
        assert_eq!(decode_key(&format!("{}n", "y".repeat(51))), Some([0; 32]));
    }

    #[test]
    fn the_smallest_answer_ttl_is_read() {
        // A response with no question and two answers: A (ttl 7200) and TXT (ttl 600).
        let mut p = vec![0, 0, 0x84, 0, 0, 0, 0, 2, 0, 0, 0, 0];
        for (ttl, rtype, rdata) in [
            (7200u32, 1u16, vec![1, 2, 3, 4]),
            (600, 16, vec![2, b'h', b'i']),
        ] {
            p.extend_from_slice(&[1, b'a', 0]);
            p.extend_from_slice(&rtype.to_be_bytes());
            p.extend_from_slice(&1u16.to_be_bytes());
            p.extend_from_slice(&ttl.to_be_bytes());
            p.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
            p.extend_from_slice(&rdata);
        }
        assert_eq!(dns_min_ttl(&p), Some(Some(600)));
        assert_eq!(ttl_of(&p), 600);
        assert_eq!(dns_min_ttl(&p[..p.len() - 1]), None, "cut short");
        assert_eq!(
            dns_min_ttl(&p[..12]),
            None,
            "header only, two answers promised"
        );
        let empty = [0u8, 0, 0x84, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(dns_min_ttl(&empty), Some(None));
        assert_eq!(ttl_of(&empty), 300, "no answers: the minimum");
        let mut trailing = p.clone();
        trailing.push(0);
        assert_eq!(dns_min_ttl(&trailing), None, "bytes after the last record");
    }
}
