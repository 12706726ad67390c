//! What a node reports: one event type for the core and every driver.
//!
//! [`crate::Node`] emits most variants; a few (marked "from the driver") are only ever emitted
//! by a driver such as the tokio one, which hands the node's events on unchanged beside its own.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::bencode::OwnedValue;
use crate::krpc::{MethodKind, Request};
use crate::Id;

/// Identifies a lookup started with [`crate::Node::find_node`] and friends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LookupId(pub u64);

/// Identifies a single query started with [`crate::Node::request`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub u64);

/// What a lookup is for. Each kind sends one method ([`LookupKind::method`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LookupKind {
    /// Find the nodes closest to a target.
    FindNode,
    /// Find peers for an infohash.
    GetPeers,
    /// Find peers, then announce to the closest nodes that gave us tokens.
    Announce {
        /// TCP port announced; `None` means `implied_port` (the UDP source port).
        port: Option<u16>,
        /// BEP 33 `seed` flag.
        seed: bool,
    },
    /// Bootstrap: a lookup for our own id.
    Bootstrap,
    /// Bucket refresh: a lookup for a random id in a stale bucket.
    Refresh,
    /// BEP 44: find an item ([`LookupResult::item`]: for a mutable item, the highest seq
    /// found that verifies).
    GetItem,
    /// BEP 44: find the closest nodes with `get`, then put an item to those that gave us
    /// tokens ([`LookupResult::announced`] counts those that stored it).
    PutItem,
    /// BEP 33: a get_peers with `scrape`, merging the nodes' bloom filters
    /// ([`LookupResult::scrape`]); peers are reported as with [`LookupKind::GetPeers`].
    Scrape,
}

impl LookupKind {
    /// The query this kind of lookup sends to each node it visits.
    pub fn method(self, target: Id) -> Request {
        match self {
            LookupKind::GetPeers | LookupKind::Announce { .. } => Request::get_peers(target),
            LookupKind::FindNode | LookupKind::Bootstrap | LookupKind::Refresh => {
                Request::find_node(target)
            }
            LookupKind::GetItem | LookupKind::PutItem => Request::get(target, None),
            LookupKind::Scrape => Request::GetPeers {
                info_hash: target,
                noseed: false,
                scrape: true,
            },
        }
    }

    /// A short name for logs and event printers.
    pub fn name(self) -> &'static str {
        match self {
            LookupKind::FindNode => "find_node",
            LookupKind::GetPeers => "get_peers",
            LookupKind::Announce { .. } => "announce",
            LookupKind::Bootstrap => "bootstrap",
            LookupKind::Refresh => "refresh",
            LookupKind::GetItem => "get",
            LookupKind::PutItem => "put",
            LookupKind::Scrape => "scrape",
        }
    }
}

/// A BEP 33 swarm-size estimate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScrapeEstimate {
    /// Seeds (distinct IPs).
    pub seeds: u64,
    /// Other peers (distinct IPs).
    pub peers: u64,
}

/// How the node dealt with a query it received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Answer {
    /// Answered with a response (for `announce_peer`: the announce was accepted).
    Response,
    /// Answered with a KRPC error (for `announce_peer`, 203 means a bad token or port).
    Error {
        /// The error code sent.
        code: i64,
    },
    /// Not answered: the node is read-only (BEP 43).
    NotAnswered,
}

/// A response to one of our requests, owned.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Reply {
    /// Responder's id.
    pub id: Id,
    /// Nodes it returned, IPv4 and IPv6 together.
    pub nodes: Vec<(Id, SocketAddr)>,
    /// Peers it returned.
    pub peers: Vec<SocketAddr>,
    /// Write token.
    pub token: Option<Vec<u8>>,
    /// BEP 51 samples.
    pub samples: Vec<Id>,
    /// BEP 51 `num`.
    pub num: Option<i64>,
    /// BEP 51 `interval`.
    pub interval: Option<i64>,
    /// The whole `r` dictionary, for methods dhtkit does not know.
    pub raw: Option<OwnedValue>,
}

/// What came back for a single request.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RequestOutcome {
    /// A response.
    Response(Reply),
    /// A KRPC error.
    Error {
        /// Error code.
        code: i64,
        /// Error text (lossily decoded, at most 256 bytes).
        message: String,
    },
    /// No answer in time.
    Timeout,
}

/// How a lookup ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LookupResult {
    /// Which lookup.
    pub id: LookupId,
    /// What it was for.
    pub kind: LookupKind,
    /// The target id or infohash.
    pub target: Id,
    /// The closest nodes that answered, closest first (at most k; a dual-stack driver that
    /// merges its two families' lookups holds up to k of each).
    pub closest: Vec<(Id, SocketAddr)>,
    /// Distinct peers found (get_peers and announce).
    pub peers_found: usize,
    /// Nodes that acknowledged our announce.
    pub announced: usize,
    /// Queries sent, retransmissions included.
    pub queries: u32,
    /// Responses received.
    pub responses: u32,
    /// Queries that timed out for good.
    pub timeouts: u32,
    /// Time from start to finish.
    pub duration: Duration,
    /// BEP 44 ([`LookupKind::GetItem`]): the item found, checked against the target (for a
    /// mutable item, the highest seq whose signature verifies).
    pub item: Option<crate::items::Item>,
    /// BEP 33 ([`LookupKind::Scrape`]): the estimated seeds and other peers, from the union
    /// of the filters the nodes sent; `None` if no node sent any.
    pub scrape: Option<ScrapeEstimate>,
    /// BEP 33: the merged filters behind [`LookupResult::scrape`] (seeds, other peers), to
    /// merge with other lookups' (a dual-stack node scrapes in both families).
    pub scrape_filters: Option<Box<(crate::scrape::Bloom, crate::scrape::Bloom)>>,
    /// BEP 44 ([`LookupKind::PutItem`]): each node that refused our put, with its KRPC error
    /// (301 and 302 say a newer item is stored), at most [`MAX_PUT_REFUSALS`].
    pub put_refusals: Vec<PutRefusal>,
    /// BEP 44 ([`LookupKind::PutItem`]): puts that got no answer in time.
    pub put_unanswered: u32,
    /// BEP 44 ([`LookupKind::PutItem`] of an item kept alive): the check found enough of the
    /// closest nodes still holding the item, so no put was sent
    /// ([`crate::Config::adaptive_item_refresh`]).
    pub put_skipped: bool,
    /// BEP 44 ([`LookupKind::GetItem`] and the search phase of [`LookupKind::PutItem`]):
    /// what the nodes asked said about the item.
    pub item_report: ItemReport,
}

/// Most refusals a put reports (further ones are counted in [`ItemReport`] no more).
pub const MAX_PUT_REFUSALS: usize = 64;

/// A node that refused a BEP 44 put.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutRefusal {
    /// Where the node is.
    pub addr: SocketAddr,
    /// Its id, if we knew it.
    pub id: Option<Id>,
    /// The KRPC error code (203, 205, 206, 207, 301, 302, ...).
    pub code: i64,
    /// The error text it sent (at most 100 bytes, lossy UTF-8).
    pub message: String,
}

/// What the nodes a BEP 44 lookup asked had under its target.
///
/// For a get, "current" means the item the lookup returns (for a mutable item, its seq); for
/// a put, the item being put. A node is counted once, by its reply to the lookup's `get`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ItemReport {
    /// Nodes that answered the `get`.
    pub answered: u32,
    /// Nodes that sent the current item (an immutable item that hashes right; a mutable
    /// item with the current seq whose signature verifies).
    pub current: u32,
    /// Nodes that sent a valid mutable item with a lower seq.
    pub older: u32,
    /// Nodes that sent a valid mutable item with a higher seq than the one put (puts only).
    pub newer: u32,
    /// Nodes that sent an item that failed its check (wrong hash, key, salt or signature).
    pub invalid: u32,
    /// Nodes that answered without an item.
    pub without: u32,
}

impl ItemReport {
    /// Adds another family's counts.
    pub fn add(&mut self, o: &ItemReport) {
        self.answered += o.answered;
        self.current += o.current;
        self.older += o.older;
        self.newer += o.newer;
        self.invalid += o.invalid;
        self.without += o.without;
    }
}

/// Everything a node reports. Poll with [`crate::Node::poll_event`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// From the driver: a socket is bound. Every subscription to a running node's events
    /// opens with one per bound address.
    Listening {
        /// The local address.
        addr: SocketAddr,
        /// Our node id.
        id: Id,
    },
    /// From the driver: the socket or the state file reported an error (the node keeps
    /// running).
    SocketError {
        /// The error text.
        message: String,
    },
    /// From the driver: the state file was written.
    StateSaved {
        /// Nodes written.
        nodes: usize,
    },
    /// A datagram arrived (only with [`crate::Config::message_events`]).
    Datagram {
        /// Sender.
        from: SocketAddr,
        /// The raw bytes.
        bytes: Arc<[u8]>,
    },
    /// A datagram arrived and decoded as bencode (only with
    /// [`crate::Config::message_events`]; decoded once, by the node).
    Message {
        /// Sender.
        from: SocketAddr,
        /// The decoded message.
        message: Arc<OwnedValue>,
    },
    /// A valid query arrived (dropped ones, over the per-IP limit, are only counted).
    QueryReceived {
        /// Sender.
        from: SocketAddr,
        /// Sender's node id.
        id: Id,
        /// The query and its arguments.
        query: Request,
        /// The sender marked itself read-only (BEP 43).
        read_only: bool,
        /// How we answered.
        answer: Answer,
    },
    /// A response to one of our queries arrived.
    ResponseReceived {
        /// Responder.
        from: SocketAddr,
        /// Responder's id.
        id: Id,
        /// Which query it answers.
        kind: MethodKind,
    },
    /// A KRPC error answering one of our queries arrived.
    ErrorReceived {
        /// Sender.
        from: SocketAddr,
        /// Which query it answers.
        kind: MethodKind,
        /// Error code.
        code: i64,
    },
    /// A datagram was dropped as malformed (after answering with a KRPC error if it was a
    /// query with a transaction id).
    InvalidMessage {
        /// Sender.
        from: SocketAddr,
        /// What was wrong.
        reason: &'static str,
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
    /// A lookup found a peer.
    PeerFound {
        /// The lookup.
        lookup: LookupId,
        /// The infohash.
        info_hash: Id,
        /// The peer.
        peer: SocketAddr,
        /// The lookup was the re-announce of an infohash we advertise (dht.js's
        /// `isAdvertised`).
        advertised: bool,
    },
    /// A lookup (ours or internal: bootstrap, refresh, re-announce) finished. Boxed: the
    /// result is large, and every queued event takes the size of the largest.
    LookupFinished(Box<LookupResult>),
    /// A single request finished.
    RequestFinished {
        /// The request.
        id: RequestId,
        /// Who was asked.
        addr: SocketAddr,
        /// What was asked.
        kind: MethodKind,
        /// The answer.
        outcome: RequestOutcome,
    },
    /// The first bootstrap finished: lookups held until then have started.
    Bootstrapped {
        /// Nodes in the routing table.
        nodes: usize,
    },
    /// BEP 42: other nodes agree that our external address is `ip`.
    ExternalAddress {
        /// The address.
        ip: std::net::IpAddr,
    },
    /// Our node id changed (BEP 42: derived from a new external address).
    IdChanged {
        /// The new id.
        id: Id,
    },
}

impl Event {
    /// The event's name in `snake_case` (what `dhtkit node --events` prints as `"event"`).
    pub fn name(&self) -> &'static str {
        match self {
            Event::Listening { .. } => "listening",
            Event::SocketError { .. } => "socket_error",
            Event::StateSaved { .. } => "state_saved",
            Event::Datagram { .. } => "datagram",
            Event::Message { .. } => "message",
            Event::QueryReceived { .. } => "query",
            Event::ResponseReceived { .. } => "response",
            Event::ErrorReceived { .. } => "error",
            Event::InvalidMessage { .. } => "invalid",
            Event::NodeAdded { .. } => "node_added",
            Event::NodeRemoved { .. } => "node_removed",
            Event::PeerFound { .. } => "peer_found",
            Event::LookupFinished(_) => "lookup_finished",
            Event::RequestFinished { .. } => "request_finished",
            Event::Bootstrapped { .. } => "bootstrapped",
            Event::ExternalAddress { .. } => "external_address",
            Event::IdChanged { .. } => "id_changed",
        }
    }
}

/// The node's bounded event queue: when full, new events are dropped and counted.
#[derive(Debug)]
pub(crate) struct EventQueue {
    queue: std::collections::VecDeque<Event>,
    max: usize,
    /// Free the buffer the next time the queue is drained, whatever its size.
    release: bool,
    pub(crate) dropped: u64,
}

impl EventQueue {
    pub(crate) fn new(max: usize) -> Self {
        EventQueue {
            queue: std::collections::VecDeque::new(),
            max,
            release: false,
            dropped: 0,
        }
    }

    pub(crate) fn push(&mut self, e: Event) {
        if self.queue.len() >= self.max {
            self.dropped += 1;
        } else {
            self.queue.push_back(e);
        }
    }

    pub(crate) fn pop(&mut self) -> Option<Event> {
        let e = self.queue.pop_front();
        if e.is_none() && (self.queue.capacity() > Self::KEEP || self.release) {
            self.release = false;
            // A burst (a table filled at once, a flood) left a large buffer behind: an idle
            // node should not carry it (an event is some 300 bytes, and a simulated network
            // has a million idle nodes). Small bursts keep theirs, so steady traffic does not
            // allocate.
            self.queue = std::collections::VecDeque::new();
        }
        e
    }

    /// Frees the buffer once the queue is next found empty (now, if it is).
    pub(crate) fn release_when_empty(&mut self) {
        if self.queue.is_empty() {
            self.queue = std::collections::VecDeque::new();
        } else {
            self.release = true;
        }
    }

    /// Most capacity kept when the queue empties.
    const KEEP: usize = 4;
}
