//! The events a running node reports, the stream that delivers them, and their JSON form.
//!
//! The event type is the protocol core's own [`dhtkit_proto::Event`], re-exported as
//! [`crate::DhtEvent`]: the driver hands the node's events on unchanged, beside a few of its own
//! (listening, socket errors, state saved).

use dhtkit_proto::bencode::OwnedValue;
use dhtkit_proto::krpc::Arg;
use dhtkit_proto::{Event, LookupKind, RequestOutcome};
use serde_json::{json, Map, Value as Json};
use tokio::sync::broadcast;

fn value_json(v: &OwnedValue) -> Json {
    match v {
        OwnedValue::Int(i) => json!(i),
        OwnedValue::Bytes(b) => bytes_json(b),
        OwnedValue::List(l) => Json::Array(l.iter().map(value_json).collect()),
        OwnedValue::Dict(d) => Json::Object(
            d.iter()
                .map(|(k, v)| (String::from_utf8_lossy(k).into_owned(), value_json(v)))
                .collect(),
        ),
    }
}

/// Printable text as a string; anything else as `{"hex": ...}`.
fn bytes_json(b: &[u8]) -> Json {
    match std::str::from_utf8(b) {
        Ok(s) if s.chars().all(|c| !c.is_control()) => json!(s),
        _ => json!({ "hex": dhtkit_proto::to_hex(b) }),
    }
}

fn nodes_json(nodes: &[(dhtkit_proto::Id, std::net::SocketAddr)]) -> Json {
    nodes
        .iter()
        .map(|(id, a)| json!({"id": id.to_hex(), "addr": a.to_string()}))
        .collect()
}

/// The JSON form of an event: one object whose `"event"` field is [`Event::name`] (what
/// `dhtkit node --events` prints, one per line).
pub trait EventJson {
    /// The event as a JSON object.
    fn to_json(&self) -> Json;
}

impl EventJson for Event {
    fn to_json(&self) -> Json {
        let mut m = Map::new();
        m.insert("event".into(), json!(self.name()));
        let mut put = |k: &str, v: Json| {
            m.insert(k.into(), v);
        };
        match self {
            Event::Listening { addr, id } => {
                put("addr", json!(addr.to_string()));
                put("id", json!(id.to_hex()));
            }
            Event::SocketError { message } => put("message", json!(message)),
            Event::StateSaved { nodes } | Event::Bootstrapped { nodes } => {
                put("nodes", json!(nodes))
            }
            Event::Datagram { from, bytes } => {
                put("from", json!(from.to_string()));
                put("hex", json!(dhtkit_proto::to_hex(bytes)));
            }
            Event::Message { from, message } => {
                put("from", json!(from.to_string()));
                put("message", value_json(message));
            }
            Event::QueryReceived {
                from,
                id,
                query,
                read_only,
                answer,
            } => {
                put("from", json!(from.to_string()));
                put("id", json!(id.to_hex()));
                put("read_only", json!(read_only));
                put("method", json!(String::from_utf8_lossy(query.name())));
                query.for_each_arg(|k, a| {
                    let v = match a {
                        Arg::Id(id) => json!(id.to_hex()),
                        Arg::Int(i) => json!(i),
                        Arg::Bytes(b) | Arg::Raw(b) => json!(dhtkit_proto::to_hex(b)),
                        _ => Json::Null,
                    };
                    put(k, v);
                });
                if let Some(peer) = query.announced_peer(*from) {
                    put("peer", json!(peer.to_string()));
                }
                match answer {
                    dhtkit_proto::Answer::Response => put("answer", json!("response")),
                    dhtkit_proto::Answer::Error { code } => put("answer", json!(code)),
                    _ => put("answer", Json::Null),
                }
            }
            Event::ResponseReceived { from, id, kind } => {
                put("from", json!(from.to_string()));
                put("id", json!(id.to_hex()));
                put("kind", json!(kind.name()));
            }
            Event::ErrorReceived { from, kind, code } => {
                put("from", json!(from.to_string()));
                put("kind", json!(kind.name()));
                put("code", json!(code));
            }
            Event::InvalidMessage { from, reason } => {
                put("from", json!(from.to_string()));
                put("reason", json!(reason));
            }
            Event::NodeAdded { id, addr } | Event::NodeRemoved { id, addr } => {
                put("id", json!(id.to_hex()));
                put("addr", json!(addr.to_string()));
            }
            Event::PeerFound {
                info_hash,
                peer,
                advertised,
                ..
            } => {
                put("info_hash", json!(info_hash.to_hex()));
                put("peer", json!(peer.to_string()));
                put("advertised", json!(advertised));
            }
            Event::LookupFinished(r) => {
                put("kind", json!(r.kind.name()));
                put("target", json!(r.target.to_hex()));
                put("closest", nodes_json(&r.closest));
                put("peers_found", json!(r.peers_found));
                put("announced", json!(r.announced));
                put("queries", json!(r.queries));
                put("responses", json!(r.responses));
                put("timeouts", json!(r.timeouts));
                put("duration_ms", json!(r.duration.as_millis() as u64));
                if matches!(r.kind, LookupKind::GetItem | LookupKind::PutItem) {
                    let f = &r.item_report;
                    put(
                        "found",
                        json!({
                            "answered": f.answered, "current": f.current, "older": f.older,
                            "newer": f.newer, "invalid": f.invalid, "without": f.without,
                        }),
                    );
                }
                if r.kind == LookupKind::PutItem {
                    put("put_skipped", json!(r.put_skipped));
                    let codes: Vec<i64> = r.put_refusals.iter().map(|p| p.code).collect();
                    put("refused", json!(codes));
                }
            }
            Event::RequestFinished {
                addr,
                kind,
                outcome,
                ..
            } => {
                put("addr", json!(addr.to_string()));
                put("kind", json!(kind.name()));
                match outcome {
                    RequestOutcome::Response(r) => {
                        put("id", json!(r.id.to_hex()));
                        put("nodes", nodes_json(&r.nodes));
                        let peers: Vec<String> = r.peers.iter().map(|p| p.to_string()).collect();
                        put("peers", json!(peers));
                    }
                    RequestOutcome::Error { code, message } => {
                        put("code", json!(code));
                        put("message", json!(message));
                    }
                    _ => put("timeout", json!(true)),
                }
            }
            Event::ExternalAddress { ip } => put("ip", json!(ip.to_string())),
            Event::IdChanged { id } => put("id", json!(id.to_hex())),
            _ => {}
        }
        Json::Object(m)
    }
}

/// A subscription to a node's events. It starts with an [`Event::Listening`] for each bound
/// address (two on a dual-stack node, IPv4 first), then delivers events as they happen. Bounded: a consumer that falls behind loses the
/// oldest events, and [`EventStream::lost`] counts them; the node itself never waits for a
/// consumer.
pub struct EventStream {
    pub(crate) rx: broadcast::Receiver<Event>,
    pub(crate) lost: u64,
    /// Events to deliver before the live ones, in reverse order.
    pub(crate) first: Vec<Event>,
}

impl EventStream {
    /// The next event; `None` once the node has shut down.
    pub async fn recv(&mut self) -> Option<Event> {
        if let Some(e) = self.first.pop() {
            return Some(e);
        }
        loop {
            match self.rx.recv().await {
                Ok(e) => return Some(e),
                Err(broadcast::error::RecvError::Lagged(n)) => self.lost += n,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }

    /// Events this subscriber missed because it fell behind.
    pub fn lost(&self) -> u64 {
        self.lost
    }
}
