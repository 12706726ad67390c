//! The events a running node reports, and the stream that delivers them.

use std::net::SocketAddr;
use std::sync::Arc;

use dhtkit_proto::bencode::OwnedValue;
use dhtkit_proto::{Id, LookupKind, LookupResult, QueryInfo, RequestKind};
use serde_json::{json, Value as Json};
use tokio::sync::broadcast;

/// Something that happened on a running node.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DhtEvent {
    /// The socket is bound.
    Listening {
        /// The local address.
        addr: SocketAddr,
        /// Our node id.
        id: Id,
    },
    /// The socket reported an error (the node keeps running).
    SocketError {
        /// The error text.
        message: String,
    },
    /// A datagram arrived (only with [`crate::DhtBuilder::message_events`]).
    Datagram {
        /// Sender.
        from: SocketAddr,
        /// The raw bytes.
        bytes: Arc<[u8]>,
    },
    /// A datagram arrived and decoded as bencode (only with
    /// [`crate::DhtBuilder::message_events`]).
    Message {
        /// Sender.
        from: SocketAddr,
        /// The decoded message.
        message: Arc<OwnedValue>,
    },
    /// A valid query arrived: ping, find_node, get_peers, announce_peer or another method.
    Query {
        /// Sender.
        from: SocketAddr,
        /// Sender's node id.
        id: Id,
        /// The query and its arguments.
        query: QueryInfo,
        /// The sender is read-only (BEP 43).
        read_only: bool,
    },
    /// A response to one of our queries; `kind` tells a ping reply from an announce reply.
    Response {
        /// Responder.
        from: SocketAddr,
        /// Responder's id.
        id: Id,
        /// Which query it answers.
        kind: RequestKind,
    },
    /// A KRPC error answering one of our queries.
    Error {
        /// Sender.
        from: SocketAddr,
        /// Which query it answers.
        kind: RequestKind,
        /// Error code.
        code: i64,
    },
    /// A datagram that was not valid KRPC.
    Invalid {
        /// Sender.
        from: SocketAddr,
        /// What was wrong.
        reason: &'static str,
    },
    /// A lookup found a peer.
    PeerFound {
        /// The infohash.
        info_hash: Id,
        /// The peer.
        peer: SocketAddr,
        /// The lookup was the re-announce of an infohash we advertise (dht.js's
        /// `isAdvertised`).
        advertised: bool,
    },
    /// A node entered the routing table.
    NodeAdded {
        /// Its id.
        id: Id,
        /// Its address.
        addr: SocketAddr,
    },
    /// A node left the routing table.
    NodeRemoved {
        /// Its id.
        id: Id,
        /// Its address.
        addr: SocketAddr,
    },
    /// A lookup (ours or internal: bootstrap, refresh, re-announce) finished.
    LookupFinished(LookupResult),
    /// The first bootstrap finished.
    Bootstrapped {
        /// Nodes in the routing table.
        nodes: usize,
    },
    /// The state file was written.
    StateSaved {
        /// Nodes written.
        nodes: usize,
    },
}

fn kind_str(k: RequestKind) -> &'static str {
    match k {
        RequestKind::Ping => "ping",
        RequestKind::FindNode => "find_node",
        RequestKind::GetPeers => "get_peers",
        RequestKind::AnnouncePeer => "announce_peer",
        RequestKind::SampleInfohashes => "sample_infohashes",
    }
}

fn lookup_str(k: LookupKind) -> &'static str {
    match k {
        LookupKind::FindNode => "find_node",
        LookupKind::GetPeers => "get_peers",
        LookupKind::Announce { .. } => "announce",
        LookupKind::Bootstrap => "bootstrap",
        LookupKind::Refresh => "refresh",
    }
}

fn value_json(v: &OwnedValue) -> Json {
    match v {
        OwnedValue::Int(i) => json!(i),
        OwnedValue::Bytes(b) => match std::str::from_utf8(b) {
            Ok(s) if s.chars().all(|c| !c.is_control()) => json!(s),
            _ => json!({ "hex": dhtkit_proto::to_hex(b) }),
        },
        OwnedValue::List(l) => Json::Array(l.iter().map(value_json).collect()),
        OwnedValue::Dict(d) => Json::Object(
            d.iter()
                .map(|(k, v)| (String::from_utf8_lossy(k).into_owned(), value_json(v)))
                .collect(),
        ),
    }
}

impl DhtEvent {
    /// The event as one JSON object with an `"event"` field naming it (what `dhtkit node
    /// --events` prints).
    pub fn to_json(&self) -> Json {
        match self {
            DhtEvent::Listening { addr, id } => {
                json!({"event": "listening", "addr": addr.to_string(), "id": id.to_hex()})
            }
            DhtEvent::SocketError { message } => {
                json!({"event": "socket_error", "message": message})
            }
            DhtEvent::Datagram { from, bytes } => json!({
                "event": "datagram", "from": from.to_string(), "hex": dhtkit_proto::to_hex(bytes)
            }),
            DhtEvent::Message { from, message } => json!({
                "event": "message", "from": from.to_string(), "message": value_json(message)
            }),
            DhtEvent::Query {
                from,
                id,
                query,
                read_only,
            } => {
                let mut o = json!({
                    "event": "query", "from": from.to_string(), "id": id.to_hex(),
                    "read_only": read_only,
                });
                let m = o.as_object_mut().expect("object");
                match query {
                    QueryInfo::Ping => {
                        m.insert("method".into(), json!("ping"));
                    }
                    QueryInfo::FindNode { target } => {
                        m.insert("method".into(), json!("find_node"));
                        m.insert("target".into(), json!(target.to_hex()));
                    }
                    QueryInfo::GetPeers { info_hash } => {
                        m.insert("method".into(), json!("get_peers"));
                        m.insert("info_hash".into(), json!(info_hash.to_hex()));
                    }
                    QueryInfo::AnnouncePeer {
                        info_hash,
                        peer,
                        seed,
                        token_valid,
                    } => {
                        m.insert("method".into(), json!("announce_peer"));
                        m.insert("info_hash".into(), json!(info_hash.to_hex()));
                        m.insert("peer".into(), json!(peer.to_string()));
                        m.insert("seed".into(), json!(seed));
                        m.insert("token_valid".into(), json!(token_valid));
                    }
                    QueryInfo::SampleInfohashes { target } => {
                        m.insert("method".into(), json!("sample_infohashes"));
                        m.insert("target".into(), json!(target.to_hex()));
                    }
                    QueryInfo::Other {
                        method,
                        target,
                        info_hash,
                    } => {
                        m.insert("method".into(), json!(String::from_utf8_lossy(method)));
                        if let Some(t) = target {
                            m.insert("target".into(), json!(t.to_hex()));
                        }
                        if let Some(ih) = info_hash {
                            m.insert("info_hash".into(), json!(ih.to_hex()));
                        }
                    }
                }
                o
            }
            DhtEvent::Response { from, id, kind } => json!({
                "event": "response", "from": from.to_string(), "id": id.to_hex(), "kind": kind_str(*kind)
            }),
            DhtEvent::Error { from, kind, code } => json!({
                "event": "error", "from": from.to_string(), "kind": kind_str(*kind), "code": code
            }),
            DhtEvent::Invalid { from, reason } => {
                json!({"event": "invalid", "from": from.to_string(), "reason": reason})
            }
            DhtEvent::PeerFound {
                info_hash,
                peer,
                advertised,
            } => json!({
                "event": "peer", "info_hash": info_hash.to_hex(), "peer": peer.to_string(),
                "advertised": advertised
            }),
            DhtEvent::NodeAdded { id, addr } => {
                json!({"event": "node_added", "id": id.to_hex(), "addr": addr.to_string()})
            }
            DhtEvent::NodeRemoved { id, addr } => {
                json!({"event": "node_removed", "id": id.to_hex(), "addr": addr.to_string()})
            }
            DhtEvent::LookupFinished(r) => json!({
                "event": "lookup_finished",
                "kind": lookup_str(r.kind),
                "target": r.target.to_hex(),
                "closest": r.closest.iter().map(|(id, a)| json!({"id": id.to_hex(), "addr": a.to_string()})).collect::<Vec<_>>(),
                "peers_found": r.peers_found,
                "announced": r.announced,
                "queries": r.queries,
                "responses": r.responses,
                "timeouts": r.timeouts,
                "duration_ms": r.duration.as_millis() as u64,
            }),
            DhtEvent::Bootstrapped { nodes } => json!({"event": "bootstrapped", "nodes": nodes}),
            DhtEvent::StateSaved { nodes } => json!({"event": "state_saved", "nodes": nodes}),
        }
    }
}

/// A subscription to a node's events. It starts with a [`DhtEvent::Listening`] describing the
/// node, then delivers events as they happen. Bounded: a consumer that falls behind loses the
/// oldest events, and [`EventStream::lost`] counts them; the node itself never waits for a
/// consumer.
pub struct EventStream {
    pub(crate) rx: broadcast::Receiver<DhtEvent>,
    pub(crate) lost: u64,
    pub(crate) first: Option<DhtEvent>,
}

impl EventStream {
    /// The next event; `None` once the node has shut down.
    pub async fn recv(&mut self) -> Option<DhtEvent> {
        if let Some(e) = self.first.take() {
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
