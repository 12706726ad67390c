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

mod commands;
mod responder;
mod rpc;
mod search;

use std::net::SocketAddr;
use std::sync::Arc;

use rand::rngs::SmallRng;
use rand::SeedableRng;

use crate::bencode::{Decoder, Value};
use crate::event::{Answer, Event, EventQueue, Reply, RequestOutcome};
use crate::krpc::{Body, Message, Query, Response};
use crate::routing::RoutingTable;
use crate::store::PeerStore;
use crate::{compact, Config, Id, Instant};

use responder::{Responder, Tables};
use rpc::{Due, Pending, Purpose, Rpc};
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
    /// Valid queries received, by method (indexed by [`crate::MethodKind::index`]).
    pub queries_in_by_method: [u64; crate::krpc::MethodKind::COUNT],
    /// Queries answered with a response.
    pub replies_out: u64,
    /// Queries answered with a KRPC error.
    pub errors_out: u64,
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
    /// Datagrams dropped unread because their IP is banned.
    pub banned_dropped: u64,
    /// IPs banned for exceeding their per-IP rate.
    pub bans: u64,
    /// Queries not answered because the node-wide reply budget was spent.
    pub reply_limited: u64,
    /// IPs the per-IP limiter tracks now (a gauge).
    pub tracked_ips: u64,
    /// Queries we sent (retransmissions included).
    pub queries_out: u64,
    /// Queries we sent, by method (indexed by [`crate::MethodKind::index`]).
    pub queries_out_by_method: [u64; crate::krpc::MethodKind::COUNT],
    /// Lookups finished, and how long they took.
    pub lookups: LookupTimes,
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
    /// Estimated number of nodes in the DHT (of the node's first family, IPv4 if it has it):
    /// the median over the last 32 lookups of the size that the distances to their closest
    /// nodes imply. `None` until a few lookups have ended.
    pub dht_size_estimate: Option<u64>,
}

/// A histogram of lookup durations (for metrics): fixed bounds, cumulative counts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LookupTimes {
    /// Lookups finished.
    pub count: u64,
    /// Their durations added up, in milliseconds.
    pub sum_ms: u64,
    /// For each bound in [`LookupTimes::BOUNDS_MS`], the lookups that took at most that long.
    pub at_most: [u64; 9],
}

impl LookupTimes {
    /// Bucket bounds in milliseconds.
    pub const BOUNDS_MS: [u64; 9] = [250, 500, 1000, 2000, 4000, 8000, 16000, 32000, 64000];

    pub(crate) fn record(&mut self, took: std::time::Duration) {
        let ms = u64::try_from(took.as_millis()).unwrap_or(u64::MAX);
        self.count += 1;
        self.sum_ms = self.sum_ms.saturating_add(ms);
        for (n, bound) in self.at_most.iter_mut().zip(Self::BOUNDS_MS) {
            if ms <= bound {
                *n += 1;
            }
        }
    }
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
    /// Shared with other nodes of the same settings ([`Node::with_shared_config`]).
    cfg: Arc<Config>,
    id: Id,
    rng: SmallRng,
    now: Instant,
    decoder: Decoder,
    rpc: Rpc,
    responder: Responder,
    /// The family's search state, boxed: a single-stack node (most) carries no space for the
    /// other.
    v4: Option<Box<Search>>,
    v6: Option<Box<Search>>,
    events: EventQueue,
    next_request: u64,
    timers: Timers,
    /// BEP 42: what other nodes say our external address is.
    votes: crate::bep42::Votes,
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
        let seed = cfg.seed;
        Node::with_shared_config(Arc::new(cfg), seed, now)
    }

    /// A node with settings shared with other nodes (many nodes in one process keep one
    /// copy), seeded with `seed` in place of `cfg.seed`. With `cfg.id` set every such node
    /// has that id; leave it unset for nodes of their own.
    pub fn with_shared_config(cfg: Arc<Config>, seed: u64, now: Instant) -> Node {
        let mut rng = SmallRng::seed_from_u64(seed);
        let id = cfg.id.unwrap_or_else(|| Id::random(&mut rng));
        let responder = Responder::new(&cfg, &mut rng);
        let rpc = Rpc::new(&cfg, id, &mut rng, now);
        let v4 = cfg
            .ipv4
            .then(|| Box::new(Search::new(false, id, &cfg, now)));
        let v6 = cfg.ipv6.then(|| Box::new(Search::new(true, id, &cfg, now)));
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
            votes: crate::bep42::Votes::default(),
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
            v4: self.v4.as_deref_mut(),
            v6: self.v6.as_deref_mut(),
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

    /// Turns [`Config::rpc_events`] on or off from now on (a driver whose user starts or
    /// stops watching queries and responses).
    pub fn set_rpc_events(&mut self, on: bool) {
        // Only the router reads this setting: parts holding the old Arc do not need it.
        std::sync::Arc::make_mut(&mut self.cfg).rpc_events = on;
    }

    fn primary(&self) -> &Search {
        self.v4
            .as_deref()
            .or(self.v6.as_deref())
            .expect("a node has at least one address family")
    }

    /// The routing table of the node's first family (IPv4 if it has it).
    pub fn routing_table(&self) -> &RoutingTable {
        self.primary().table()
    }

    /// The node's routing tables: IPv4 first, then IPv6 (one of them on a single-stack node).
    pub fn routing_tables(&self) -> impl Iterator<Item = &RoutingTable> {
        [&self.v4, &self.v6]
            .into_iter()
            .filter_map(|s| s.as_deref().map(Search::table))
    }

    /// The routing table of one family, if the node has it.
    pub fn routing_table_for(&self, v6: bool) -> Option<&RoutingTable> {
        if v6 { &self.v6 } else { &self.v4 }
            .as_deref()
            .map(Search::table)
    }

    /// The peer store, unless disabled.
    pub fn peer_store(&self) -> Option<&PeerStore> {
        self.responder.peer_store()
    }

    /// The BEP 44 items other nodes put with us (`None` if [`Config::items`] is off).
    pub fn item_store(&self) -> Option<&crate::items::ItemStore> {
        self.responder.item_store()
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        Stats {
            events_dropped: self.events.dropped,
            bans: self.rpc.inbound_bans(),
            tracked_ips: self.rpc.tracked_ips() as u64,
            dht_size_estimate: self.primary().size_estimate(),
            ..self.rpc.stats.clone()
        }
    }

    /// IPs banned now (for exceeding their per-IP rate), the most recently banned first, at
    /// most `max`. A driver may drop their datagrams before they reach it (a socket filter in
    /// the kernel); the node drops them unread either way.
    pub fn banned_ips(&self, now: Instant, max: usize) -> Vec<std::net::IpAddr> {
        self.rpc.banned(now, max)
    }

    /// Bans so far: changes whenever an IP is banned (cheap to poll).
    pub fn ban_count(&self) -> u64 {
        self.rpc.inbound_bans()
    }

    /// Lookups running (or held until the first bootstrap ends).
    pub fn lookups_running(&self) -> usize {
        self.searches().map(Search::lookups_running).sum()
    }

    fn searches(&self) -> impl Iterator<Item = &Search> {
        self.v4.as_deref().into_iter().chain(self.v6.as_deref())
    }

    /// Transactions awaiting a reply.
    pub fn pending_queries(&self) -> usize {
        self.rpc.pending()
    }

    /// Handles one received datagram.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        let banned = self.rpc.is_banned(now, from.ip());
        let stats = &mut self.rpc.stats;
        stats.datagrams_in += 1;
        stats.bytes_in += data.len() as u64;
        if banned {
            // Before anything is read: a banned flood costs one lookup per datagram.
            stats.banned_dropped += 1;
            return;
        }
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
                Body::Response(r) => {
                    if let Some(seen) = msg.ip {
                        self.external_vote(now, from, seen);
                    }
                    self.on_response(now, from, msg.tid, r, v)
                }
                Body::Error(e) => self.on_error(now, from, msg.tid, e.code, e.message),
            },
        }
    }

    /// BEP 42: `from` says it sees us at `seen`. When the nodes agree on a new external
    /// address that our id does not match, we take an id derived from it.
    fn external_vote(&mut self, now: Instant, from: SocketAddr, seen: SocketAddr) {
        let Some(ip) = self.votes.vote(from.ip(), seen.ip()) else {
            return;
        };
        self.events.push(Event::ExternalAddress { ip });
        if self.cfg.secure_id && !crate::bep42::id_matches(&self.id, ip) {
            let id = crate::bep42::derive_id(ip, &mut self.rng);
            self.set_id(now, id);
        }
    }

    /// Takes a new node id: every message says it from now on, and the routing tables are
    /// rebuilt around it. Reported as [`Event::IdChanged`].
    pub fn set_id(&mut self, now: Instant, id: Id) {
        if id == self.id {
            return;
        }
        self.id = id;
        self.rpc.set_id(id);
        let cfg = &self.cfg;
        for s in [self.v4.as_deref_mut(), self.v6.as_deref_mut()]
            .into_iter()
            .flatten()
        {
            s.set_own(id, cfg, now);
        }
        self.events.push(Event::IdChanged { id });
    }

    /// BEP 42: the external address other nodes agree on, if they do.
    pub fn external_ip(&self) -> Option<std::net::IpAddr> {
        self.votes.believed()
    }

    fn invalid(&mut self, from: SocketAddr, reason: &'static str) {
        self.rpc.stats.invalid_in += 1;
        self.events.push(Event::InvalidMessage { from, reason });
    }

    fn on_query(&mut self, now: Instant, from: SocketAddr, msg: &Message<'_>, q: &Query<'_>) {
        self.rpc.stats.queries_in += 1;
        self.rpc.stats.queries_in_by_method[q.method.kind().index()] += 1;
        let answer = if self.cfg.read_only {
            // BEP 43: read-only nodes answer nothing.
            Answer::NotAnswered
        } else {
            if !self.rpc.accept_query(now, from.ip()) {
                return;
            }
            let tables = Tables {
                v4: self.v4.as_deref().map(Search::table),
                v6: self.v6.as_deref().map(Search::table),
            };
            self.responder
                .answer(now, from, msg, q, tables, &mut self.rpc)
        };
        match answer {
            Answer::Response => self.rpc.stats.replies_out += 1,
            Answer::Error { .. } => self.rpc.stats.errors_out += 1,
            Answer::NotAnswered => {}
        }
        // After the reply, so that answering is never delayed by our own checks.
        if !self.cfg.read_only && !msg.read_only {
            let mut p = self.parts(now);
            if let Some((s, ctx)) = p.for_addr(&from) {
                s.node_queried(ctx, q.id, from);
            }
        }
        if self.cfg.rpc_events {
            self.events.push(Event::QueryReceived {
                from,
                id: q.id,
                query: q.method.to_request(),
                read_only: msg.read_only,
                answer,
            });
        }
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
        if self.cfg.rpc_events {
            self.events.push(Event::ResponseReceived {
                from,
                id: r.id,
                kind: p.kind,
            });
        }
        let mut parts = self.parts(now);
        if let Some((s, ctx)) = parts.for_addr(&from) {
            s.on_response(ctx, from, &p, r);
        }
        request_finished(&mut self.events, &p, || {
            let raw = whole
                .as_dict()
                .and_then(|d| d.get(b"r"))
                .map(|r| r.to_owned_value());
            RequestOutcome::Response(reply_of(r, raw))
        });
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
            s.on_error(ctx, &p, code, msg);
        }
        request_finished(&mut self.events, &p, || RequestOutcome::Error {
            code,
            message: String::from_utf8_lossy(&msg[..msg.len().min(256)]).into_owned(),
        });
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
                    request_finished(parts.ctx.events, &p, || RequestOutcome::Timeout);
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
            self.trim(now);
        }
    }

    /// Gives back, once per maintenance interval, the working memory a burst of traffic left
    /// behind: scratch buffers, the outgoing and event queues' buffers (freed once drained),
    /// the rate limiters' records that say nothing (refilled buckets). An idle node then
    /// carries little more than its table; a busy one reallocates at most once per interval.
    fn trim(&mut self, now: Instant) {
        self.decoder.release();
        self.responder.release();
        self.rpc.release(now);
        self.events.release_when_empty();
        for s in [self.v4.as_deref_mut(), self.v6.as_deref_mut()]
            .into_iter()
            .flatten()
        {
            s.release();
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
}

/// Reports how a user's request ended (other purposes need nothing more); `outcome` is built
/// only for a request.
fn request_finished(
    events: &mut EventQueue,
    p: &Pending,
    outcome: impl FnOnce() -> RequestOutcome,
) {
    if let Purpose::Request(id) = p.purpose {
        events.push(Event::RequestFinished {
            id,
            addr: p.addr,
            kind: p.kind,
            outcome: outcome(),
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
