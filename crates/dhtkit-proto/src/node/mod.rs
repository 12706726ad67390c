//! The [`Node`]: a whole DHT node as a state machine, and a router over its parts.
//!
//! - [`rpc`]: transactions, the outgoing queue, rate limits, counters;
//! - [`responder`]: answers queries (tokens, the peer store);
//! - [`search`]: one per address family — the routing table, lookups, bootstrap, upkeep,
//!   advertised infohashes.
//!
//! The node decodes each datagram once and hands it to the part it concerns: a query to the
//! responder (and the querier to the search of its family), a response or error to the
//! transaction it answers and from there to the search, lookup or request that asked.
//!
//! # Driving a node
//! Feed it inputs and drain its outputs after every input, in this order:
//! 1. inputs: [`Node::handle_datagram`], [`Node::handle_timeout`] (when the deadline from
//!    [`Node::poll_timeout`] passes; extra calls are harmless), and commands such as
//!    [`Node::find_node`] or [`Node::request`];
//! 2. [`Node::poll_transmit`] until `None`, sending each datagram;
//! 3. [`Node::poll_event`] until `None`;
//! 4. [`Node::poll_timeout`] for the next wake-up.
//!
//! The node never blocks, never reads a clock and never allocates without bound: every queue
//! and table has a limit in [`Config`].

mod responder;
mod rpc;
mod search;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::SeedableRng;

use crate::bencode::{Decoder, Value};
use crate::event::{
    Answer, Event, EventQueue, LookupId, LookupKind, Reply, RequestId, RequestOutcome,
};
use crate::krpc::{Body, Message, Query, Request, Response};
use crate::routing::RoutingTable;
use crate::store::PeerStore;
use crate::{compact, Config, Id, Instant};

use responder::{Responder, Tables};
use rpc::{Due, Outgoing, Pending, Purpose, Rpc};
pub use search::Advert;
use search::{Ctx, Search};

/// A datagram to send, borrowed from the node's outgoing queue.
#[must_use = "a transmit must be sent, or the datagram is lost"]
#[derive(Debug)]
pub struct Transmit<'a> {
    /// Where to send it.
    pub dest: SocketAddr,
    /// The bytes.
    pub payload: &'a [u8],
}

/// Counters describing what the node has done.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Datagrams received.
    pub datagrams_in: u64,
    /// Bytes received.
    pub bytes_in: u64,
    /// Datagrams queued for sending.
    pub datagrams_out: u64,
    /// Valid queries received.
    pub queries_in: u64,
    /// Responses received that matched a transaction.
    pub responses_in: u64,
    /// Errors received that matched a transaction.
    pub errors_in: u64,
    /// Datagrams that were not valid KRPC.
    pub invalid_in: u64,
    /// Responses or errors that matched no transaction.
    pub unsolicited_in: u64,
    /// Queries dropped by the per-IP rate limit.
    pub rate_limited: u64,
    /// Queries we sent (retransmissions included).
    pub queries_out: u64,
    /// Queries that timed out for good.
    pub timeouts: u64,
    /// Events dropped because the event queue was full.
    pub events_dropped: u64,
    /// Datagrams dropped because the outgoing queue was full.
    pub transmits_dropped: u64,
    /// Queries not sent because too many transactions were pending.
    pub pending_full: u64,
    /// Background queries not sent because of the per-destination or node-wide rate limit.
    pub dest_limited: u64,
}

/// What a node needs to start again where it left off.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct NodeState {
    /// Our id.
    pub id: Id,
    /// Known nodes of every family, most recently heard from first.
    pub nodes: Vec<(Id, SocketAddr)>,
    /// Infohashes being advertised.
    pub advertised: Vec<(Id, Advert)>,
}

impl NodeState {
    /// A state with `id` and `nodes` and nothing advertised.
    pub fn new(id: Id, nodes: Vec<(Id, SocketAddr)>) -> NodeState {
        NodeState {
            id,
            nodes,
            advertised: Vec::new(),
        }
    }
}

/// Node-wide timers (each search keeps its own).
#[derive(Debug, Clone, Copy)]
struct Timers {
    /// The token secret rotates.
    rotate: Instant,
    /// The peer store drops expired entries.
    expire: Instant,
}

/// A BEP 5 DHT node, without I/O.
#[derive(Debug)]
pub struct Node {
    cfg: Config,
    id: Id,
    rng: SmallRng,
    now: Instant,
    decoder: Decoder,
    rpc: Rpc,
    responder: Responder,
    v4: Option<Search>,
    v6: Option<Search>,
    events: EventQueue,
    next_request: u64,
    timers: Timers,
}

/// The parts of a node, borrowed at once.
struct Parts<'a> {
    ctx: Ctx<'a>,
    v4: Option<&'a mut Search>,
    v6: Option<&'a mut Search>,
}

impl<'a> Parts<'a> {
    /// The search of `addr`'s family, and the context to call it with.
    fn for_addr(&mut self, addr: &SocketAddr) -> Option<(&mut Search, &mut Ctx<'a>)> {
        let s = if addr.is_ipv6() {
            self.v6.as_deref_mut()
        } else {
            self.v4.as_deref_mut()
        };
        Some((s?, &mut self.ctx))
    }

    /// The first search (IPv4 if the node has it), for lookups not tied to an address.
    fn primary(&mut self) -> Option<(&mut Search, &mut Ctx<'a>)> {
        let s = self.v4.as_deref_mut().or(self.v6.as_deref_mut());
        Some((s?, &mut self.ctx))
    }

    /// Every search the node has.
    fn each(&mut self, mut f: impl FnMut(&mut Search, &mut Ctx<'a>)) {
        for s in [self.v4.as_deref_mut(), self.v6.as_deref_mut()]
            .into_iter()
            .flatten()
        {
            f(s, &mut self.ctx);
        }
    }
}

impl Node {
    /// A node with `cfg`, starting at `now`. It knows nobody: call [`Node::bootstrap`],
    /// [`Node::import_state`] or [`Node::add_node`].
    pub fn new(cfg: Config, now: Instant) -> Node {
        let mut rng = SmallRng::seed_from_u64(cfg.seed);
        let id = cfg.id.unwrap_or_else(|| Id::random(&mut rng));
        let responder = Responder::new(&cfg, &mut rng);
        let rpc = Rpc::new(&cfg, id, &mut rng, now);
        let v4 = cfg.ipv4.then(|| Search::new(false, id, &cfg, now));
        let v6 = cfg.ipv6.then(|| Search::new(true, id, &cfg, now));
        Node {
            id,
            rng,
            now,
            decoder: Decoder::new(cfg.decode_limits),
            rpc,
            responder,
            v4,
            v6,
            events: EventQueue::new(cfg.max_events),
            next_request: 1,
            timers: Timers {
                rotate: now + cfg.token_rotation,
                expire: now + cfg.maintenance_interval,
            },
            cfg,
        }
    }

    fn parts(&mut self, now: Instant) -> Parts<'_> {
        if now > self.now {
            self.now = now;
        }
        Parts {
            ctx: Ctx {
                now: self.now,
                cfg: &self.cfg,
                rpc: &mut self.rpc,
                events: &mut self.events,
                rng: &mut self.rng,
            },
            v4: self.v4.as_mut(),
            v6: self.v6.as_mut(),
        }
    }

    /// Our node id.
    pub fn id(&self) -> Id {
        self.id
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    fn primary(&self) -> &Search {
        self.v4
            .as_ref()
            .or(self.v6.as_ref())
            .expect("a node has at least one address family")
    }

    /// The routing table of the node's first family (IPv4 if it has it).
    pub fn routing_table(&self) -> &RoutingTable {
        self.primary().table()
    }

    /// The routing table of one family, if the node has it.
    pub fn routing_table_for(&self, v6: bool) -> Option<&RoutingTable> {
        if v6 { &self.v6 } else { &self.v4 }
            .as_ref()
            .map(Search::table)
    }

    /// The peer store, unless disabled.
    pub fn peer_store(&self) -> Option<&PeerStore> {
        self.responder.peer_store()
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        Stats {
            events_dropped: self.events.dropped,
            ..self.rpc.stats.clone()
        }
    }

    /// Lookups running (or held until the first bootstrap ends).
    pub fn lookups_running(&self) -> usize {
        self.searches().map(Search::lookups_running).sum()
    }

    fn searches(&self) -> impl Iterator<Item = &Search> {
        self.v4.iter().chain(self.v6.iter())
    }

    /// Transactions awaiting a reply.
    pub fn pending_queries(&self) -> usize {
        self.rpc.pending()
    }

    /// Handles one received datagram.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        let stats = &mut self.rpc.stats;
        stats.datagrams_in += 1;
        stats.bytes_in += data.len() as u64;
        if data.len() > self.cfg.max_datagram || from.port() == 0 {
            self.invalid(from, "datagram too large or from port 0");
            return;
        }
        if self.cfg.message_events {
            self.events.push(Event::Datagram {
                from,
                bytes: Arc::from(data),
            });
        }
        let mut decoder = std::mem::take(&mut self.decoder);
        match decoder.decode(data) {
            Err(_) => self.invalid(from, "not bencode"),
            Ok(v) => self.on_message(now, from, v),
        }
        self.decoder = decoder;
    }

    fn on_message(&mut self, now: Instant, from: SocketAddr, v: Value<'_>) {
        if self.cfg.message_events {
            self.events.push(Event::Message {
                from,
                message: Arc::new(v.to_owned_value()),
            });
        }
        match Message::parse(v) {
            Err(e) => {
                if let Some((tid, code, reason)) = e.reply() {
                    if !self.cfg.read_only && self.rpc.accept_query(now, from.ip()) {
                        self.rpc.send_error(from, tid, code, reason.as_bytes());
                    }
                }
                self.invalid(from, e.reason);
            }
            Ok(msg) => match &msg.body {
                Body::Query(q) => self.on_query(now, from, &msg, q),
                Body::Response(r) => self.on_response(now, from, msg.tid, r, v),
                Body::Error(e) => self.on_error(now, from, msg.tid, e.code, e.message),
            },
        }
    }

    fn invalid(&mut self, from: SocketAddr, reason: &'static str) {
        self.rpc.stats.invalid_in += 1;
        self.events.push(Event::InvalidMessage { from, reason });
    }

    fn on_query(&mut self, now: Instant, from: SocketAddr, msg: &Message<'_>, q: &Query<'_>) {
        self.rpc.stats.queries_in += 1;
        let answer = if self.cfg.read_only {
            // BEP 43: read-only nodes answer nothing.
            Answer::NotAnswered
        } else {
            if !self.rpc.accept_query(now, from.ip()) {
                return;
            }
            let tables = Tables {
                v4: self.v4.as_ref().map(Search::table),
                v6: self.v6.as_ref().map(Search::table),
            };
            self.responder
                .answer(now, from, msg, q, tables, &mut self.rpc)
        };
        // After the reply, so that answering is never delayed by our own checks.
        if !self.cfg.read_only && !msg.read_only {
            let mut p = self.parts(now);
            if let Some((s, ctx)) = p.for_addr(&from) {
                s.node_queried(ctx, q.id, from);
            }
        }
        self.events.push(Event::QueryReceived {
            from,
            id: q.id,
            query: q.method.clone().into_owned(),
            read_only: msg.read_only,
            answer,
        });
    }

    fn on_response(
        &mut self,
        now: Instant,
        from: SocketAddr,
        tid: &[u8],
        r: &Response<'_>,
        whole: Value<'_>,
    ) {
        let Some(p) = self.rpc.take_reply(from, tid) else {
            return;
        };
        self.rpc.stats.responses_in += 1;
        self.events.push(Event::ResponseReceived {
            from,
            id: r.id,
            kind: p.kind,
        });
        let mut parts = self.parts(now);
        if let Some((s, ctx)) = parts.for_addr(&from) {
            s.on_response(ctx, from, &p, r);
        }
        if let Purpose::Request(id) = p.purpose {
            let raw = whole
                .as_dict()
                .and_then(|d| d.get(b"r"))
                .map(|r| r.to_owned_value());
            self.events.push(Event::RequestFinished {
                id,
                addr: from,
                kind: p.kind,
                outcome: RequestOutcome::Response(reply_of(r, raw)),
            });
        }
    }

    fn on_error(&mut self, now: Instant, from: SocketAddr, tid: &[u8], code: i64, msg: &[u8]) {
        let Some(p) = self.rpc.take_reply(from, tid) else {
            return;
        };
        self.rpc.stats.errors_in += 1;
        self.events.push(Event::ErrorReceived {
            from,
            kind: p.kind,
            code,
        });
        let mut parts = self.parts(now);
        if let Some((s, ctx)) = parts.for_addr(&from) {
            s.on_error(ctx, &p);
        }
        if let Purpose::Request(id) = p.purpose {
            let message = String::from_utf8_lossy(&msg[..msg.len().min(256)]).into_owned();
            self.events.push(Event::RequestFinished {
                id,
                addr: from,
                kind: p.kind,
                outcome: RequestOutcome::Error { code, message },
            });
        }
    }

    /// Handles every timer due at `now`. Calling it early or twice is harmless.
    pub fn handle_timeout(&mut self, now: Instant) {
        let mut parts = self.parts(now);
        while let Some(due) = parts.ctx.rpc.poll_due(now) {
            match due {
                Due::Slow { addr, purpose } => {
                    if let Some((s, ctx)) = parts.for_addr(&addr) {
                        s.on_slow(ctx, purpose, &addr);
                    }
                }
                Due::Expired(tid) => {
                    let Some(addr) = parts.ctx.rpc.get(tid).map(|p| p.addr) else {
                        continue;
                    };
                    let search = parts.for_addr(&addr);
                    if let Some((s, ctx)) = search {
                        if s.retry(ctx, tid) {
                            continue;
                        }
                    }
                    let p = parts.ctx.rpc.expire(tid).expect("present");
                    if let Some((s, ctx)) = parts.for_addr(&addr) {
                        s.on_timeout(ctx, &p);
                    }
                    request_timed_out(parts.ctx.events, &p);
                }
            }
        }
        parts.each(|s, ctx| {
            if now >= s.next_timeout() {
                s.handle_timeout(ctx);
            }
        });
        if now >= self.timers.rotate {
            self.responder.rotate_tokens(&mut self.rng);
            self.timers.rotate = now + self.cfg.token_rotation;
        }
        if now >= self.timers.expire {
            self.responder.expire(now);
            self.timers.expire = now + self.cfg.maintenance_interval;
        }
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit<'_>> {
        self.rpc
            .poll_transmit()
            .map(|(dest, payload)| Transmit { dest, payload })
    }

    /// Datagrams waiting in the outgoing queue.
    pub fn pending_transmits(&self) -> usize {
        self.rpc.pending_transmits()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop()
    }

    /// When [`Node::handle_timeout`] should next be called.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        let t = self
            .searches()
            .map(Search::next_timeout)
            .fold(self.timers.rotate.min(self.timers.expire), Instant::min);
        Some(self.rpc.next_deadline().map_or(t, |d| d.min(t)))
    }

    /// True if the node may send to `addr` on its own initiative: never to unspecified,
    /// multicast or broadcast addresses or port 0, and to local or reserved addresses (see
    /// [`crate::addr`]) only with [`Config::allow_local_addrs`]; and only to a family the
    /// node has.
    pub fn may_contact(&self, addr: &SocketAddr) -> bool {
        self.has_family(addr) && self.rpc.may_contact(addr, false)
    }

    fn has_family(&self, addr: &SocketAddr) -> bool {
        if addr.is_ipv6() {
            self.v6.is_some()
        } else {
            self.v4.is_some()
        }
    }

    /// Our id, the nodes worth remembering (good and questionable ones, not bad ones) and the
    /// infohashes we advertise.
    pub fn export_state(&self) -> NodeState {
        NodeState {
            id: self.id,
            nodes: self.searches().flat_map(|s| s.export(&self.cfg)).collect(),
            advertised: self.advertised(),
        }
    }

    /// Adds nodes from saved state to the routing tables without contacting them; they are
    /// used for lookups at once and verified over time. Returns how many were added.
    pub fn import_state(&mut self, now: Instant, nodes: &[(Id, SocketAddr)]) -> usize {
        let mut added = 0;
        self.parts(now).each(|s, ctx| added += s.import(ctx, nodes));
        added
    }

    /// Starts a lookup for the nodes closest to `target`.
    pub fn find_node(&mut self, now: Instant, target: Id) -> Option<LookupId> {
        self.start_lookup(now, LookupKind::FindNode, target)
    }

    /// Starts a lookup for peers of `info_hash`; each new peer is reported as
    /// [`Event::PeerFound`].
    pub fn get_peers(&mut self, now: Instant, info_hash: Id) -> Option<LookupId> {
        self.start_lookup(now, LookupKind::GetPeers, info_hash)
    }

    /// Looks up `info_hash` and announces us to the k closest nodes. `port: None` asks them
    /// to use our UDP source port (`implied_port`).
    pub fn announce(
        &mut self,
        now: Instant,
        info_hash: Id,
        port: Option<u16>,
        seed: bool,
    ) -> Option<LookupId> {
        self.start_lookup(now, LookupKind::Announce { port, seed }, info_hash)
    }

    /// Starts a lookup of any kind in the node's first family. Returns `None` when
    /// [`Config::max_lookups`] lookups are already running. Lookups started while the first
    /// bootstrap runs wait for it.
    pub fn start_lookup(&mut self, now: Instant, kind: LookupKind, target: Id) -> Option<LookupId> {
        let mut p = self.parts(now);
        let (s, ctx) = p.primary()?;
        s.start_lookup(ctx, kind, target, &[])
    }

    /// Joins the network: a lookup for our own id through the table and `via` (each address
    /// goes to the search of its family). The addresses are remembered: while the table holds
    /// fewer than k nodes after a bootstrap, the node tries again through them, backing off
    /// from 5 seconds to 5 minutes. Returns the first family's bootstrap lookup.
    pub fn bootstrap(&mut self, now: Instant, via: &[SocketAddr]) -> Option<LookupId> {
        let mut first = None;
        self.parts(now).each(|s, ctx| {
            let mine: Vec<SocketAddr> = via
                .iter()
                .copied()
                .filter(|a| a.is_ipv6() == s.is_v6())
                .collect();
            let lid = s.bootstrap(ctx, &mine);
            first = first.or(lid);
        });
        first
    }

    /// Tells the node that bootstrap addresses are on their way (a driver resolving names):
    /// lookups wait until they arrive and the bootstrap through them ends, or until
    /// [`Node::bootstrap_sources_done`].
    pub fn expect_bootstrap(&mut self) {
        for s in [self.v4.as_mut(), self.v6.as_mut()].into_iter().flatten() {
            s.expect_bootstrap();
        }
    }

    /// Every bootstrap address has been given to [`Node::bootstrap`].
    pub fn bootstrap_sources_done(&mut self, now: Instant) {
        self.parts(now).each(|s, ctx| s.bootstrap_sources_done(ctx));
    }

    /// True once the first bootstrap has ended in every family (or none was asked for).
    pub fn is_bootstrapped(&self) -> bool {
        self.searches().all(Search::is_bootstrapped)
    }

    /// Refreshes every bucket now (after bootstrap, for instance): one lookup per bucket.
    pub fn refresh_all(&mut self, now: Instant) {
        self.parts(now).each(|s, ctx| s.refresh_all(ctx));
    }

    /// Pings `addr`; it enters the routing table if it answers. Returns false if the address
    /// is not contactable or too many queries are pending.
    pub fn add_node(&mut self, now: Instant, addr: SocketAddr) -> bool {
        let mut p = self.parts(now);
        match p.for_addr(&addr) {
            Some((s, ctx)) => s.verify(ctx, None, addr),
            None => false,
        }
    }

    /// Advertises `info_hash`: announced once the node is bootstrapped and again every
    /// [`Config::advertise_interval`], in every family, until [`Node::stop_advertising`].
    pub fn advertise(&mut self, now: Instant, info_hash: Id, advert: Advert) {
        self.parts(now)
            .each(|s, ctx| s.advertise(ctx, info_hash, advert));
    }

    /// Stops advertising `info_hash`; false if it was not advertised.
    pub fn stop_advertising(&mut self, info_hash: &Id) -> bool {
        let mut any = false;
        for s in [self.v4.as_mut(), self.v6.as_mut()].into_iter().flatten() {
            any |= s.stop_advertising(info_hash);
        }
        any
    }

    /// The infohashes advertised.
    pub fn advertised(&self) -> Vec<(Id, Advert)> {
        self.primary().advertised().collect()
    }

    /// Sends one query to `addr`; the answer arrives as [`Event::RequestFinished`]. Returns
    /// `None` if the address may not be contacted (an explicit request may go to a local
    /// address, never to an invalid one) or too many queries are pending.
    pub fn request(&mut self, now: Instant, addr: SocketAddr, req: Request) -> Option<RequestId> {
        if !self.has_family(&addr) {
            return None;
        }
        let id = RequestId(self.next_request);
        let p = self.parts(now);
        p.ctx.rpc.send(
            p.ctx.now,
            Outgoing {
                addr,
                node_id: None,
                method: &req,
                purpose: Purpose::Request(id),
                slow: false,
                retries: 0,
            },
        )?;
        self.next_request += 1;
        Some(id)
    }

    /// Pings `addr` (an explicit request; the answer is [`Event::RequestFinished`]).
    pub fn ping(&mut self, now: Instant, addr: SocketAddr) -> Option<RequestId> {
        self.request(now, addr, Request::Ping)
    }

    /// Queues bytes built by the caller (a custom message) for `addr`, through the same
    /// outgoing queue. False if the address is invalid or the queue is full.
    pub fn send_raw(&mut self, addr: SocketAddr, bytes: &[u8]) -> bool {
        self.rpc.may_contact(&addr, true) && self.rpc.enqueue_raw(addr, bytes)
    }

    /// The default per-query timeout, for drivers that want to size their own waits.
    pub fn query_timeout(&self) -> Duration {
        self.cfg.query_timeout
    }
}

/// A user request that timed out is reported; other purposes need nothing more.
fn request_timed_out(events: &mut EventQueue, p: &Pending) {
    if let Purpose::Request(id) = p.purpose {
        events.push(Event::RequestFinished {
            id,
            addr: p.addr,
            kind: p.kind,
            outcome: RequestOutcome::Timeout,
        });
    }
}

/// An owned copy of a response, for the request that asked.
fn reply_of(r: &Response<'_>, raw: Option<crate::bencode::OwnedValue>) -> Reply {
    let nodes4 = compact::nodes(r.nodes.unwrap_or_default(), false);
    let nodes6 = compact::nodes(r.nodes6.unwrap_or_default(), true);
    Reply {
        id: r.id,
        nodes: nodes4.chain(nodes6).collect(),
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
        raw,
    }
}

#[cfg(test)]
mod tests;
