//! The Responder part: answers every query, one small handler per method. It owns the write
//! tokens and the peer store (and, later, the item store).
//!
//! This is the hot path. Nothing here allocates once the scratch buffers and the outgoing
//! arena have grown.

use std::net::SocketAddr;

use rand::rngs::SmallRng;

use super::rpc::Rpc;
use crate::compact;
use crate::event::Answer;
use crate::krpc::{
    Body, Message, Method, Query, Response, Values, Want, ERR_METHOD_UNKNOWN, ERR_PROTOCOL,
};
use crate::routing::RoutingTable;
use crate::store::PeerStore;
use crate::token::{Tokens, TOKEN_LEN};
use crate::{Config, Id, Instant};

/// Most infohashes in one BEP 51 sample (20 bytes each; keeps the reply in one small datagram).
const MAX_SAMPLES: usize = 20;
/// BEP 51 `interval` we advertise, in seconds.
const SAMPLE_INTERVAL: i64 = 6 * 60 * 60;

/// The routing tables a reply draws nodes from, one per address family the node has.
#[derive(Clone, Copy)]
pub(crate) struct Tables<'a> {
    pub v4: Option<&'a RoutingTable>,
    pub v6: Option<&'a RoutingTable>,
}

/// What the reply being built carries besides the buffers' contents.
#[derive(Default)]
struct Draft {
    /// Nodes near this target go in (`nodes` and/or `nodes6`).
    near: Option<Id>,
    token: Option<[u8; TOKEN_LEN]>,
    /// BEP 51 `num` (samples are in their buffer).
    num: Option<i64>,
}

#[derive(Debug)]
pub(crate) struct Responder {
    tokens: Tokens,
    store: Option<PeerStore>,
    k: usize,
    max_values: usize,
    scratch_nodes: Vec<(Id, SocketAddr)>,
    nodes4: Vec<u8>,
    nodes6: Vec<u8>,
    values: Vec<u8>,
    samples: Vec<u8>,
}

impl Responder {
    pub(crate) fn new(cfg: &Config, rng: &mut SmallRng) -> Responder {
        Responder {
            tokens: Tokens::new(rng),
            store: cfg.store.map(PeerStore::new),
            k: cfg.table.k,
            max_values: cfg.max_values,
            scratch_nodes: Vec::new(),
            nodes4: Vec::new(),
            nodes6: Vec::new(),
            values: Vec::new(),
            samples: Vec::new(),
        }
    }

    pub(crate) fn peer_store(&self) -> Option<&PeerStore> {
        self.store.as_ref()
    }

    /// Token rotation and store expiry.
    pub(crate) fn rotate_tokens(&mut self, rng: &mut SmallRng) {
        self.tokens.rotate(rng);
    }

    pub(crate) fn expire(&mut self, now: Instant) {
        if let Some(store) = &mut self.store {
            store.expire(now);
        }
    }

    /// Answers `q` from `from`, queuing the reply on `rpc`.
    pub(crate) fn answer(
        &mut self,
        now: Instant,
        from: SocketAddr,
        msg: &Message<'_>,
        q: &Query<'_>,
        tables: Tables<'_>,
        rpc: &mut Rpc,
    ) -> Answer {
        let mut d = Draft::default();
        self.values.clear();
        self.samples.clear();
        match &q.method {
            Method::Ping => {}
            Method::FindNode { target } => d.near = Some(*target),
            Method::GetPeers {
                info_hash, noseed, ..
            } => self.get_peers(&mut d, from, *info_hash, *noseed),
            Method::AnnouncePeer {
                info_hash,
                token,
                seed,
                ..
            } => {
                let peer = q.method.announced_peer(from).expect("announce_peer");
                if let Err(reason) = self.announce_peer(now, from, *info_hash, token, peer, *seed) {
                    rpc.send_error(from, msg.tid, ERR_PROTOCOL, reason.as_bytes());
                    return Answer::Error { code: ERR_PROTOCOL };
                }
            }
            Method::SampleInfohashes { target } => self.sample_infohashes(&mut d, *target),
            Method::Other {
                target, info_hash, ..
            } => {
                // Forward compatibility: answer like get_peers / find_node when we can.
                if let Some(ih) = info_hash {
                    self.get_peers(&mut d, from, *ih, false);
                } else if let Some(t) = target {
                    d.near = Some(*t);
                } else {
                    rpc.send_error(from, msg.tid, ERR_METHOD_UNKNOWN, b"method unknown");
                    return Answer::Error {
                        code: ERR_METHOD_UNKNOWN,
                    };
                }
            }
        }
        self.respond(now, from, msg.tid, q.want, d, tables, rpc);
        Answer::Response
    }

    fn get_peers(&mut self, d: &mut Draft, from: SocketAddr, ih: Id, noseed: bool) {
        d.near = Some(ih);
        d.token = Some(self.tokens.token_for(from.ip()));
        if let Some(store) = &self.store {
            store.peers_compact(
                &ih,
                from.is_ipv6(),
                noseed,
                self.max_values,
                &mut self.values,
            );
        }
    }

    fn announce_peer(
        &mut self,
        now: Instant,
        from: SocketAddr,
        ih: Id,
        token: &[u8],
        peer: SocketAddr,
        seed: bool,
    ) -> Result<(), &'static str> {
        if !self.tokens.validate(from.ip(), token) {
            return Err("bad token");
        }
        if peer.port() == 0 {
            return Err("invalid port");
        }
        if let Some(store) = &mut self.store {
            store.announce(now, ih, peer, seed);
        }
        Ok(())
    }

    fn sample_infohashes(&mut self, d: &mut Draft, target: Id) {
        d.near = Some(target);
        d.num = Some(0);
        if let Some(store) = &self.store {
            d.num = Some(store.infohashes() as i64);
            for ih in store.sample(MAX_SAMPLES) {
                self.samples.extend_from_slice(&ih.0);
            }
        }
    }

    /// Encodes and queues the response the handler drafted. Nodes come from the querier's
    /// address family, or from the families its BEP 32 `want` names.
    #[allow(clippy::too_many_arguments)]
    fn respond(
        &mut self,
        now: Instant,
        to: SocketAddr,
        tid: &[u8],
        want: Want,
        d: Draft,
        tables: Tables<'_>,
        rpc: &mut Rpc,
    ) {
        let (want4, want6) = if want.given() {
            (want.v4, want.v6)
        } else {
            (to.is_ipv4(), to.is_ipv6())
        };
        let mut nodes4 = None;
        let mut nodes6 = None;
        if let Some(target) = d.near {
            if let (true, Some(t)) = (want4, tables.v4) {
                fill_nodes(
                    t,
                    now,
                    &target,
                    self.k,
                    &mut self.scratch_nodes,
                    &mut self.nodes4,
                );
                nodes4 = Some(&self.nodes4[..]);
            }
            if let (true, Some(t)) = (want6, tables.v6) {
                fill_nodes(
                    t,
                    now,
                    &target,
                    self.k,
                    &mut self.scratch_nodes,
                    &mut self.nodes6,
                );
                nodes6 = Some(&self.nodes6[..]);
            }
        }
        let stride = if to.is_ipv6() {
            compact::PEER_V6_LEN
        } else {
            compact::PEER_V4_LEN
        };
        let r = Response {
            id: rpc.id(),
            nodes: nodes4,
            nodes6,
            token: d.token.as_ref().map(|t| &t[..]),
            values: (!self.values.is_empty()).then_some(Values::Compact {
                bytes: &self.values,
                stride,
            }),
            interval: d.num.map(|_| SAMPLE_INTERVAL),
            num: d.num,
            samples: d.num.map(|_| &self.samples[..]),
        };
        let version = rpc.version();
        let m = Message {
            tid,
            version: version.as_ref().map(|v| &v[..]),
            read_only: false,
            ip: Some(to),
            body: Body::Response(r),
        };
        rpc.enqueue(to, &m);
    }
}

/// The compact form of the `k` nodes in `table` closest to `target`.
fn fill_nodes(
    table: &RoutingTable,
    now: Instant,
    target: &Id,
    k: usize,
    scratch: &mut Vec<(Id, SocketAddr)>,
    out: &mut Vec<u8>,
) {
    out.clear();
    table.closest(now, target, k, scratch);
    for (id, addr) in scratch.iter() {
        compact::encode_node(id, addr, out);
    }
}
