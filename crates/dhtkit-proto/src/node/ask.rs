//! Asking: single requests, sending queries, matching replies and errors to their transactions.

use std::net::SocketAddr;
use std::time::Duration;

use super::Node;
use crate::compact;
use crate::event::{Event, LookupKind, RequestId, RequestKind, RequestOutcome};
use crate::krpc::{Body, Message, Method, Query, Response, Want};
use crate::rpc::{Pending, Purpose};
use crate::{Id, Instant};

/// Most distinct peers a single lookup reports.
const MAX_PEERS_PER_LOOKUP: usize = 10_000;

/// A single query to send with [`Node::request`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// `ping`.
    Ping,
    /// `find_node`.
    FindNode {
        /// Target id.
        target: Id,
    },
    /// `get_peers`.
    GetPeers {
        /// Infohash.
        info_hash: Id,
    },
    /// `announce_peer` with a token from an earlier `get_peers` to the same node.
    AnnouncePeer {
        /// Infohash.
        info_hash: Id,
        /// TCP port, or `None` for `implied_port`.
        port: Option<u16>,
        /// The token.
        token: Vec<u8>,
        /// BEP 33 seed flag.
        seed: bool,
    },
    /// BEP 51 `sample_infohashes`.
    SampleInfohashes {
        /// Target id.
        target: Id,
    },
}

impl Request {
    fn kind(&self) -> RequestKind {
        match self {
            Request::Ping => RequestKind::Ping,
            Request::FindNode { .. } => RequestKind::FindNode,
            Request::GetPeers { .. } => RequestKind::GetPeers,
            Request::AnnouncePeer { .. } => RequestKind::AnnouncePeer,
            Request::SampleInfohashes { .. } => RequestKind::SampleInfohashes,
        }
    }

    fn method(&self) -> Method<'_> {
        match self {
            Request::Ping => Method::Ping,
            Request::FindNode { target } => Method::FindNode { target: *target },
            Request::GetPeers { info_hash } => Method::GetPeers {
                info_hash: *info_hash,
                noseed: false,
                scrape: false,
            },
            Request::AnnouncePeer {
                info_hash,
                port,
                token,
                seed,
            } => Method::AnnouncePeer {
                info_hash: *info_hash,
                port: port.unwrap_or(0),
                implied_port: port.is_none(),
                token,
                seed: *seed,
            },
            Request::SampleInfohashes { target } => Method::SampleInfohashes { target: *target },
        }
    }
}

impl Node {
    /// Sends one query to `addr`; the answer arrives as [`Event::RequestFinished`]. Returns
    /// `None` if the address may not be contacted or too many queries are pending.
    pub fn request(&mut self, now: Instant, addr: SocketAddr, req: Request) -> Option<RequestId> {
        self.advance(now);
        let rid = RequestId(self.next_request);
        let method = req.method();
        self.send_query(
            now,
            addr,
            None,
            req.kind(),
            &method,
            Purpose::Request(rid),
            false,
        )?;
        self.next_request += 1;
        Some(rid)
    }

    /// Queues a query and records its transaction. Returns the transaction id.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn send_query(
        &mut self,
        now: Instant,
        addr: SocketAddr,
        node_id: Option<Id>,
        kind: RequestKind,
        method: &Method<'_>,
        purpose: Purpose,
        slow: bool,
    ) -> Option<u32> {
        let explicit = matches!(purpose, Purpose::Request(_));
        if !self.sendable(&addr, self.cfg.allow_local_addrs || explicit) {
            return None;
        }
        if self.txs.len() >= self.cfg.max_pending {
            self.stats.pending_full += 1;
            return None;
        }
        // Background checks give way when we have talked to this IP a lot or the node's query
        // budget is spent; lookups already checked (they wait for budget); explicit requests
        // always go out.
        if purpose == Purpose::Verify
            && !(self.query_budget.would_allow(now)
                && self.dest_limiter.would_allow(now, addr.ip()))
        {
            self.stats.dest_limited += 1;
            return None;
        }
        self.query_budget.allow(now);
        self.dest_limiter.allow(now, addr.ip());
        let tid = self.txs.insert(Pending {
            addr,
            node_id,
            kind,
            purpose,
            sent: now,
            attempts: 1,
            slow_at: slow.then_some(now + self.cfg.slow_timeout),
            deadline: now + self.cfg.query_timeout,
        });
        if self.write_query(addr, tid, method) {
            Some(tid)
        } else {
            self.txs.remove(tid);
            None
        }
    }

    pub(super) fn write_query(&mut self, addr: SocketAddr, tid: u32, method: &Method<'_>) -> bool {
        let tid_bytes = tid.to_be_bytes();
        let m = Message {
            tid: &tid_bytes,
            version: self.cfg.version.as_ref().map(|v| &v[..]),
            read_only: self.cfg.read_only,
            ip: None,
            body: Body::Query(Query {
                id: self.id,
                method: method.clone(),
                want: Want::default(),
            }),
        };
        if self.out.push(addr, self.cfg.max_outgoing, |b| m.encode(b)) {
            self.stats.datagrams_out += 1;
            self.stats.queries_out += 1;
            true
        } else {
            self.stats.transmits_dropped += 1;
            false
        }
    }

    /// Pings a node to see whether it belongs in the table.
    pub(super) fn verify(&mut self, now: Instant, id: Option<Id>, addr: SocketAddr) -> bool {
        if self.verifying.contains(&addr) || self.verifying.len() >= self.cfg.max_pending / 4 {
            return false;
        }
        let sent = self
            .send_query(
                now,
                addr,
                id,
                RequestKind::Ping,
                &Method::Ping,
                Purpose::Verify,
                false,
            )
            .is_some();
        if sent {
            self.verifying.insert(addr);
        }
        sent
    }

    /// A node we have not verified showed up: ping it if the table has room for it, otherwise
    /// remember it in the replacement cache.
    pub(super) fn consider(&mut self, now: Instant, id: Id, addr: SocketAddr) {
        if self.table.has_room_for(&id, &addr) {
            self.verify(now, Some(id), addr);
        } else {
            self.table.heard_about(now, id, addr);
        }
    }

    fn tid_of(tid: &[u8]) -> Option<u32> {
        Some(u32::from_be_bytes(tid.try_into().ok()?))
    }

    /// Takes the transaction a reply from `from` answers, if any.
    fn take_pending(&mut self, from: SocketAddr, tid: &[u8]) -> Option<(u32, Pending)> {
        let Some(t) = Self::tid_of(tid) else {
            self.stats.unsolicited_in += 1;
            return None;
        };
        match self.txs.get(t) {
            Some(p) if p.addr == from => {}
            _ => {
                self.stats.unsolicited_in += 1;
                return None;
            }
        }
        let p = self.txs.remove(t)?;
        if p.purpose == Purpose::Verify {
            self.verifying.remove(&p.addr);
        }
        Some((t, p))
    }

    pub(super) fn on_response(
        &mut self,
        now: Instant,
        from: SocketAddr,
        tid: &[u8],
        r: &Response<'_>,
    ) {
        let Some((_, p)) = self.take_pending(from, tid) else {
            return;
        };
        self.stats.responses_in += 1;
        if r.id == self.id {
            return;
        }
        if p.node_id.is_some_and(|id| id != r.id) {
            // The node at this address has a new id: the old entry is stale.
            if let Some(old) = p.node_id {
                self.fail_node(&old, &from);
            }
        }
        let rtt = now.saturating_since(p.sent);
        let seen = self.table.node_seen(now, r.id, from, Some(rtt));
        if seen.added {
            self.emit(Event::NodeAdded {
                id: r.id,
                addr: from,
            });
        }
        if let Some(old) = seen.removed {
            self.emit(Event::NodeRemoved {
                id: old.id,
                addr: old.addr,
            });
        }
        if let Some((qid, qaddr)) = seen.ping {
            self.verify(now, Some(qid), qaddr);
        }
        self.emit(Event::ResponseReceived {
            from,
            id: r.id,
            kind: p.kind,
        });
        let nodes_raw = if self.cfg.ipv6 { r.nodes6 } else { r.nodes };
        let nodes = compact::nodes(nodes_raw.unwrap_or_default(), self.cfg.ipv6);
        match p.purpose {
            Purpose::Lookup(lid) => {
                let Some(l) = self.lookups.get_mut(&lid) else {
                    return;
                };
                if p.kind == RequestKind::AnnouncePeer {
                    l.announce_done(true);
                    self.drive_lookup(now, lid);
                    return;
                }
                l.on_response(&from, r.id, r.token);
                for (id, addr) in nodes {
                    if self.may_contact(&addr) {
                        let l = self.lookups.get_mut(&lid).expect("present");
                        l.add(Some(id), addr);
                        self.table.heard_about(now, id, addr);
                    }
                }
                if let Some(values) = &r.values {
                    let l = self.lookups.get_mut(&lid).expect("present");
                    if matches!(l.kind, LookupKind::GetPeers | LookupKind::Announce { .. }) {
                        let own_announce = matches!(l.kind, LookupKind::Announce { .. });
                        for peer in values.peers() {
                            if peer.port() == 0 || l.peers.len() >= MAX_PEERS_PER_LOOKUP {
                                continue;
                            }
                            if l.peers.insert(peer) {
                                let e = Event::PeerFound {
                                    lookup: lid,
                                    info_hash: l.target,
                                    peer,
                                    own_announce,
                                };
                                super::push_event(
                                    &mut self.events,
                                    &mut self.stats,
                                    self.cfg.max_events,
                                    e,
                                );
                            }
                        }
                    }
                }
                self.drive_lookup(now, lid);
            }
            Purpose::Request(rid) => {
                let outcome = RequestOutcome::Response {
                    id: r.id,
                    nodes: nodes.collect(),
                    peers: r
                        .values
                        .as_ref()
                        .map(|v| v.peers().collect())
                        .unwrap_or_default(),
                    token: r.token.map(<[u8]>::to_vec),
                    samples: r
                        .samples
                        .unwrap_or_default()
                        .chunks_exact(20)
                        .filter_map(Id::from_slice)
                        .collect(),
                    num: r.num,
                    interval: r.interval,
                };
                self.emit(Event::RequestFinished {
                    id: rid,
                    addr: from,
                    kind: p.kind,
                    outcome,
                });
            }
            Purpose::Verify => {}
        }
    }

    pub(super) fn on_error(
        &mut self,
        now: Instant,
        from: SocketAddr,
        tid: &[u8],
        code: i64,
        msg: &[u8],
    ) {
        let Some((_, p)) = self.take_pending(from, tid) else {
            return;
        };
        self.stats.errors_in += 1;
        self.emit(Event::ErrorReceived {
            from,
            kind: p.kind,
            code,
        });
        match p.purpose {
            Purpose::Lookup(lid) => self.lookup_query_failed(now, lid, p.kind, &from, false),
            Purpose::Request(rid) => self.emit(Event::RequestFinished {
                id: rid,
                addr: from,
                kind: p.kind,
                outcome: RequestOutcome::Error {
                    code,
                    message: String::from_utf8_lossy(&msg[..msg.len().min(256)]).into_owned(),
                },
            }),
            Purpose::Verify => {}
        }
    }

    pub(super) fn fail_node(&mut self, id: &Id, addr: &SocketAddr) {
        let f = self.table.node_failed(id, addr);
        if let Some(old) = f.removed {
            self.emit(Event::NodeRemoved {
                id: old.id,
                addr: old.addr,
            });
        }
        if let Some(new) = f.promoted {
            self.emit(Event::NodeAdded {
                id: new.id,
                addr: new.addr,
            });
            if new.last_response.is_none() {
                // Promoted without proof of life: check it.
                self.verify(self.now, Some(new.id), new.addr);
            }
        }
    }

    /// Pings `addr` (an explicit ping; the answer is [`Event::RequestFinished`]).
    pub fn ping(&mut self, now: Instant, addr: SocketAddr) -> Option<RequestId> {
        self.request(now, addr, Request::Ping)
    }

    /// The default per-query timeout, for drivers that want to size their own waits.
    pub fn query_timeout(&self) -> Duration {
        self.cfg.query_timeout
    }
}
