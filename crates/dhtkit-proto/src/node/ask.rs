//! Asking: sending queries, matching replies to transactions, lookups, timers and table upkeep.

use std::net::SocketAddr;
use std::time::Duration;

use super::Node;
use crate::compact;
use crate::event::{
    Event, LookupId, LookupKind, LookupResult, RequestId, RequestKind, RequestOutcome,
};
use crate::krpc::{Body, Message, Method, Query, Response, Want};
use crate::lookup::Phase;
use crate::rpc::{Fired, Pending, Purpose};
use crate::{Id, Instant};

/// Questionable nodes pinged per maintenance tick.
const PINGS_PER_TICK: usize = 8;
/// How long a lookup waits before trying a node it may not send to yet.
const REDRIVE_DELAY: Duration = Duration::from_millis(250);
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
    fn send_query(
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

    fn write_query(&mut self, addr: SocketAddr, tid: u32, method: &Method<'_>) -> bool {
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
            Purpose::Lookup(lid) => {
                if let Some(l) = self.lookups.get_mut(&lid) {
                    if p.kind == RequestKind::AnnouncePeer {
                        l.announce_done(false);
                    } else {
                        l.on_failed(&from);
                    }
                    self.drive_lookup(now, lid);
                }
            }
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

    fn fail_node(&mut self, id: &Id, addr: &SocketAddr) {
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

    /// Handles every timer due at `now`. Calling it early or twice is harmless.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.advance(now);
        while let Some(fired) = self.txs.pop_due(now) {
            match fired {
                Fired::Slow(tid) => {
                    let Some(p) = self.txs.get(tid) else { continue };
                    if let Purpose::Lookup(lid) = p.purpose {
                        let addr = p.addr;
                        if let Some(l) = self.lookups.get_mut(&lid) {
                            l.on_slow(&addr);
                        }
                        self.drive_lookup(now, lid);
                    }
                }
                Fired::Timeout(tid) => self.on_timeout(now, tid),
            }
        }
        if now >= self.timers.rotate {
            self.tokens.rotate(&mut self.rng);
            self.timers.rotate = now + self.cfg.token_rotation;
        }
        if now >= self.timers.maintenance {
            self.timers.maintenance = now + self.cfg.maintenance_interval;
            self.maintenance(now);
        }
        if self.timers.redrive.is_some_and(|t| now >= t) {
            self.timers.redrive = None;
            let ids: Vec<LookupId> = self.lookups.keys().copied().collect();
            for lid in ids {
                self.drive_lookup(now, lid);
            }
        }
        if self.timers.rebootstrap.is_some_and(|t| now >= t) {
            self.start_bootstrap(now);
        }
        if now >= self.timers.refresh {
            self.timers.refresh = now + self.cfg.maintenance_interval * 6;
            self.refresh_buckets(now);
        }
    }

    fn on_timeout(&mut self, now: Instant, tid: u32) {
        let Some(p) = self.txs.get(tid).cloned() else {
            return;
        };
        if let Purpose::Lookup(lid) = p.purpose {
            let retry = p.kind != RequestKind::AnnouncePeer
                && p.attempts <= self.cfg.lookup_retries
                && self
                    .lookups
                    .get(&lid)
                    .is_some_and(|l| l.worth_retry(&p.addr));
            if retry {
                let target = self.lookups[&lid].target;
                let method = lookup_method(p.kind, target);
                if self.write_query(p.addr, tid, &method) {
                    let e = self.txs.get_mut(tid).expect("present");
                    e.attempts += 1;
                    e.deadline = now + self.cfg.query_timeout;
                    self.txs.rearm(tid);
                    return;
                }
            }
        }
        let p = self.txs.remove(tid).expect("present");
        self.stats.timeouts += 1;
        if p.purpose == Purpose::Verify {
            self.verifying.remove(&p.addr);
        }
        if let Some(id) = p.node_id {
            self.fail_node(&id, &p.addr);
        }
        match p.purpose {
            Purpose::Lookup(lid) => {
                if let Some(l) = self.lookups.get_mut(&lid) {
                    if p.kind == RequestKind::AnnouncePeer {
                        l.announce_done(false);
                    } else {
                        l.timeouts += 1;
                        l.on_failed(&p.addr);
                    }
                }
                self.drive_lookup(now, lid);
            }
            Purpose::Request(rid) => self.emit(Event::RequestFinished {
                id: rid,
                addr: p.addr,
                kind: p.kind,
                outcome: RequestOutcome::Timeout,
            }),
            Purpose::Verify => {}
        }
    }

    /// Sends what a lookup wants sent and finishes it when it is done.
    pub(super) fn drive_lookup(&mut self, now: Instant, lid: LookupId) {
        loop {
            let Some(l) = self.lookups.get_mut(&lid) else {
                return;
            };
            if self.txs.len() >= self.cfg.max_pending {
                break;
            }
            let (limiter, budget) = (&mut self.dest_limiter, &mut self.query_budget);
            let next =
                l.next_query(|a| budget.would_allow(now) && limiter.would_allow(now, a.ip()));
            if l.blocked {
                let at = now + REDRIVE_DELAY;
                self.timers.redrive = Some(self.timers.redrive.map_or(at, |r| r.min(at)));
            }
            let Some((id, addr)) = next else {
                break;
            };
            let (kind, target) = (l.kind, l.target);
            let rk = match kind {
                LookupKind::GetPeers | LookupKind::Announce { .. } => RequestKind::GetPeers,
                _ => RequestKind::FindNode,
            };
            let method = lookup_method(rk, target);
            let sent = self.send_query(now, addr, id, rk, &method, Purpose::Lookup(lid), true);
            let l = self.lookups.get_mut(&lid).expect("present");
            match sent {
                Some(_) => l.queries += 1,
                None => l.on_failed(&addr),
            }
        }
        let l = &self.lookups[&lid];
        match l.phase {
            Phase::Search if l.search_done() => {
                if let LookupKind::Announce { port, seed } = l.kind {
                    self.start_announce(now, lid, port, seed);
                } else {
                    self.finish_lookup(now, lid);
                }
            }
            Phase::Announce { pending: 0 } => self.finish_lookup(now, lid),
            _ => {}
        }
    }

    fn start_announce(&mut self, now: Instant, lid: LookupId, port: Option<u16>, seed: bool) {
        let l = &self.lookups[&lid];
        let target = l.target;
        let to: Vec<(Id, SocketAddr, Vec<u8>)> = l
            .closest_responded()
            .filter_map(|(id, addr, tok)| Some((id, addr, tok?.to_vec())))
            .collect();
        let mut pending = 0;
        for (id, addr, token) in to {
            let method = Method::AnnouncePeer {
                info_hash: target,
                port: port.unwrap_or(0),
                implied_port: port.is_none(),
                token: &token,
                seed,
            };
            let sent = self.send_query(
                now,
                addr,
                Some(id),
                RequestKind::AnnouncePeer,
                &method,
                Purpose::Lookup(lid),
                false,
            );
            if sent.is_some() {
                pending += 1;
                self.lookups.get_mut(&lid).expect("present").queries += 1;
            }
        }
        self.lookups.get_mut(&lid).expect("present").phase = Phase::Announce { pending };
        if pending == 0 {
            self.finish_lookup(now, lid);
        }
    }

    fn finish_lookup(&mut self, now: Instant, lid: LookupId) {
        let Some(l) = self.lookups.remove(&lid) else {
            return;
        };
        let closest: Vec<(Id, SocketAddr)> = l
            .closest_responded()
            .map(|(id, addr, _)| (id, addr))
            .collect();
        if matches!(l.kind, LookupKind::Refresh | LookupKind::Bootstrap) {
            let b = self.table.bucket_index(&l.target);
            self.table.touch_bucket(b, now);
        }
        if l.kind == LookupKind::Bootstrap {
            self.bootstrap_finished(now);
        }
        self.emit(Event::LookupFinished(LookupResult {
            id: lid,
            kind: l.kind,
            target: l.target,
            closest,
            peers_found: l.peers.len(),
            announced: l.announced,
            queries: l.queries,
            responses: l.responses,
            timeouts: l.timeouts,
            duration: now.saturating_since(l.started),
        }));
    }

    fn maintenance(&mut self, now: Instant) {
        if let Some(store) = &mut self.store {
            store.expire(now);
        }
        // Ping questionable nodes, at most a few per tick, each at most once per minute.
        let mut due = std::mem::take(&mut self.scratch_nodes);
        self.table.take_questionable(
            now,
            self.cfg.maintenance_interval * 6,
            PINGS_PER_TICK,
            &mut due,
        );
        for (id, addr) in due.drain(..) {
            self.verify(now, Some(id), addr);
        }
        // Buckets with room: try nodes we only heard about.
        let candidates: Vec<(Id, SocketAddr)> = self
            .table
            .replacements()
            .filter(|r| r.last_response.is_none() && r.pinged.is_none())
            .map(|r| (r.id, r.addr))
            .take(PINGS_PER_TICK * 4)
            .collect();
        let mut pinged = 0;
        for (id, addr) in candidates {
            if pinged >= PINGS_PER_TICK {
                break;
            }
            if self.table.has_room_for(&id, &addr) && self.verify(now, Some(id), addr) {
                pinged += 1;
            }
        }
        self.scratch_nodes = due;
    }

    fn refresh_buckets(&mut self, now: Instant) {
        if self.table.is_empty() {
            return;
        }
        let idle = self.cfg.bucket_refresh;
        let stale: Vec<usize> = self.table.stale_buckets(now, idle).collect();
        for b in stale {
            let target = self.table.random_id_in_bucket(b, &mut self.rng);
            self.table.touch_bucket(b, now);
            if self
                .start_lookup(now, LookupKind::Refresh, target, &[])
                .is_none()
            {
                break;
            }
        }
    }

    /// Refreshes every bucket now (after bootstrap, for instance): one lookup per bucket.
    pub fn refresh_all(&mut self, now: Instant) {
        self.advance(now);
        for b in 0..self.table.bucket_count() {
            let target = self.table.random_id_in_bucket(b, &mut self.rng);
            self.table.touch_bucket(b, now);
            if self
                .start_lookup(now, LookupKind::Refresh, target, &[])
                .is_none()
            {
                break;
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

fn lookup_method(kind: RequestKind, target: Id) -> Method<'static> {
    match kind {
        RequestKind::GetPeers => Method::GetPeers {
            info_hash: target,
            noseed: false,
            scrape: false,
        },
        RequestKind::SampleInfohashes => Method::SampleInfohashes { target },
        _ => Method::FindNode { target },
    }
}
