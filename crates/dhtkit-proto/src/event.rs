//! What the node reports to its driver.

use std::net::SocketAddr;
use std::time::Duration;

use crate::Id;

/// Identifies a lookup started with [`crate::Node::find_node`] and friends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LookupId(pub u64);

/// Identifies a single query started with [`crate::Node::request`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub u64);

/// What a lookup is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
}

/// Which of our queries a response or error answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    /// `ping`.
    Ping,
    /// `find_node`.
    FindNode,
    /// `get_peers`.
    GetPeers,
    /// `announce_peer`.
    AnnouncePeer,
    /// `sample_infohashes`.
    SampleInfohashes,
}

/// A query received, with its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryInfo {
    /// `ping`.
    Ping,
    /// `find_node`.
    FindNode {
        /// Target id.
        target: Id,
    },
    /// `get_peers`.
    GetPeers {
        /// Infohash asked for.
        info_hash: Id,
    },
    /// `announce_peer`.
    AnnouncePeer {
        /// Infohash announced.
        info_hash: Id,
        /// The announced peer (port resolved from `implied_port`).
        peer: SocketAddr,
        /// BEP 33 seed flag.
        seed: bool,
        /// Whether the token was valid (an invalid one is answered with error 203).
        token_valid: bool,
    },
    /// `sample_infohashes`.
    SampleInfohashes {
        /// Target id.
        target: Id,
    },
    /// Any other method (answered like find_node / get_peers when it carries a target or an
    /// infohash, with error 204 otherwise).
    Other {
        /// Method name (at most 64 bytes are kept).
        method: Vec<u8>,
        /// `target`, if present.
        target: Option<Id>,
        /// `info_hash`, if present.
        info_hash: Option<Id>,
    },
}

/// What came back for a single request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestOutcome {
    /// A response.
    Response {
        /// Responder's id.
        id: Id,
        /// Nodes it returned (of our address family).
        nodes: Vec<(Id, SocketAddr)>,
        /// Peers it returned.
        peers: Vec<SocketAddr>,
        /// Write token.
        token: Option<Vec<u8>>,
        /// BEP 51 samples.
        samples: Vec<Id>,
        /// BEP 51 `num`.
        num: Option<i64>,
        /// BEP 51 `interval`.
        interval: Option<i64>,
    },
    /// A KRPC error.
    Error {
        /// Error code.
        code: i64,
        /// Error text (lossily decoded).
        message: String,
    },
    /// No answer in time.
    Timeout,
}

/// How a lookup ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LookupResult {
    /// Which lookup.
    pub id: LookupId,
    /// What it was for.
    pub kind: LookupKind,
    /// The target id or infohash.
    pub target: Id,
    /// The closest nodes that answered, closest first (at most k).
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
}

/// Everything the node reports. Poll with [`crate::Node::poll_event`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A valid query arrived (and was answered unless the node is read-only or rate limited).
    QueryReceived {
        /// Sender.
        from: SocketAddr,
        /// Sender's node id.
        id: Id,
        /// The query.
        query: QueryInfo,
        /// The sender marked itself read-only (BEP 43).
        read_only: bool,
    },
    /// A response to one of our queries arrived.
    ResponseReceived {
        /// Responder.
        from: SocketAddr,
        /// Responder's id.
        id: Id,
        /// Which query it answers.
        kind: RequestKind,
    },
    /// A KRPC error answering one of our queries arrived.
    ErrorReceived {
        /// Sender.
        from: SocketAddr,
        /// Which query it answers.
        kind: RequestKind,
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
        /// True if the lookup was our own announce (dht.js's `isAdvertised`).
        own_announce: bool,
    },
    /// A lookup finished.
    LookupFinished(LookupResult),
    /// A single request finished.
    RequestFinished {
        /// The request.
        id: RequestId,
        /// Who was asked.
        addr: SocketAddr,
        /// What was asked.
        kind: RequestKind,
        /// The answer.
        outcome: RequestOutcome,
    },
}
