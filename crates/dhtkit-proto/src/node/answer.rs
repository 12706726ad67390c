//! Answering queries: the hot path. Nothing here allocates once the scratch buffers and the
//! outgoing arena have grown (an unknown method name is the one copy, for its event).

use std::net::SocketAddr;

use super::Node;
use crate::compact;
use crate::event::{Event, QueryInfo};
use crate::krpc::{
    Body, ErrorBody, Message, Method, Query, Response, Values, ERR_METHOD_UNKNOWN, ERR_PROTOCOL,
};
use crate::outq::OutQueue;
use crate::{Id, Instant, Stats};

/// Most infohashes in one BEP 51 sample (20 bytes each; keeps the reply in one small datagram).
const MAX_SAMPLES: usize = 20;
/// BEP 51 `interval` we advertise, in seconds.
const SAMPLE_INTERVAL: i64 = 6 * 60 * 60;

fn enqueue(out: &mut OutQueue, stats: &mut Stats, max: usize, to: SocketAddr, m: &Message<'_>) {
    if out.push(to, max, |buf| m.encode(buf)) {
        stats.datagrams_out += 1;
    } else {
        stats.transmits_dropped += 1;
    }
}

impl Node {
    pub(super) fn send_error(&mut self, to: SocketAddr, tid: &[u8], code: i64, message: &[u8]) {
        let m = Message {
            tid,
            version: self.cfg.version.as_ref().map(|v| &v[..]),
            read_only: false,
            ip: None,
            body: Body::Error(ErrorBody { code, message }),
        };
        enqueue(
            &mut self.out,
            &mut self.stats,
            self.cfg.max_outgoing,
            to,
            &m,
        );
    }

    pub(super) fn on_query(
        &mut self,
        now: Instant,
        from: SocketAddr,
        msg: &Message<'_>,
        q: &Query<'_>,
    ) {
        self.stats.queries_in += 1;
        let info = query_info(from, q);
        if self.cfg.read_only {
            // BEP 43: read-only nodes answer nothing.
            self.emit_query(from, q.id, info, msg.read_only);
            return;
        }
        if !self.limiter.allow(now, from.ip()) {
            self.stats.rate_limited += 1;
            return;
        }
        let info = match q.method {
            Method::Ping => {
                self.reply(from, msg.tid, None, None, None);
                info
            }
            Method::FindNode { target } => {
                self.reply(from, msg.tid, Some(target), None, None);
                info
            }
            Method::GetPeers {
                info_hash, noseed, ..
            } => {
                self.reply(
                    from,
                    msg.tid,
                    Some(info_hash),
                    Some((info_hash, noseed)),
                    None,
                );
                info
            }
            Method::SampleInfohashes { target } => {
                self.reply(from, msg.tid, Some(target), None, Some(()));
                info
            }
            Method::AnnouncePeer {
                info_hash,
                port,
                implied_port,
                token,
                seed,
            } => {
                let valid = self.tokens.validate(from.ip(), token);
                let peer =
                    SocketAddr::new(from.ip(), if implied_port { from.port() } else { port });
                if !valid {
                    self.send_error(from, msg.tid, ERR_PROTOCOL, b"bad token");
                } else if peer.port() == 0 {
                    self.send_error(from, msg.tid, ERR_PROTOCOL, b"invalid port");
                } else {
                    if let Some(store) = &mut self.store {
                        store.announce(now, info_hash, peer, seed);
                    }
                    self.reply(from, msg.tid, None, None, None);
                }
                QueryInfo::AnnouncePeer {
                    info_hash,
                    peer,
                    seed,
                    token_valid: valid,
                }
            }
            Method::Other {
                target, info_hash, ..
            } => {
                // Forward compatibility: answer like get_peers / find_node when we can.
                if let Some(ih) = info_hash {
                    self.reply(from, msg.tid, Some(ih), Some((ih, false)), None);
                } else if let Some(t) = target {
                    self.reply(from, msg.tid, Some(t), None, None);
                } else {
                    self.send_error(from, msg.tid, ERR_METHOD_UNKNOWN, b"method unknown");
                }
                info
            }
        };
        // After the reply, so that answering is never delayed by our own checks.
        if !msg.read_only && q.id != self.id {
            self.table.node_queried(now, &q.id, &from);
            if self.table.get(&q.id).is_none() && self.may_contact(&from) {
                self.consider(now, q.id, from);
            }
        }
        self.emit_query(from, q.id, info, msg.read_only);
    }

    fn emit_query(&mut self, from: SocketAddr, id: Id, query: QueryInfo, read_only: bool) {
        self.emit(Event::QueryReceived {
            from,
            id,
            query,
            read_only,
        });
    }

    /// Encodes and queues a response: `nodes` closest to `near`, plus a token and stored
    /// peers for `peers_for`, plus BEP 51 samples when `samples` is set.
    fn reply(
        &mut self,
        to: SocketAddr,
        tid: &[u8],
        near: Option<Id>,
        peers_for: Option<(Id, bool)>,
        samples: Option<()>,
    ) {
        let k = self.cfg.table.k;
        let v6 = self.cfg.ipv6;
        self.scratch_bytes.clear();
        if let Some(target) = near {
            let mut nodes = std::mem::take(&mut self.scratch_nodes);
            self.table.closest(self.now, &target, k, &mut nodes);
            for (id, addr) in &nodes {
                compact::encode_node(id, addr, &mut self.scratch_bytes);
            }
            self.scratch_nodes = nodes;
        }
        let nodes_end = self.scratch_bytes.len();
        let mut token = [0u8; crate::token::TOKEN_LEN];
        let mut n_values = 0;
        self.scratch_values.clear();
        if let Some((ih, noseed)) = peers_for {
            token = self.tokens.token_for(to.ip());
            if let Some(store) = &self.store {
                n_values = store.peers_compact(
                    &ih,
                    v6,
                    noseed,
                    self.cfg.max_values,
                    &mut self.scratch_values,
                );
            }
        }
        let mut num = None;
        if samples.is_some() {
            if let Some(store) = &self.store {
                num = Some(store.infohashes() as i64);
                for ih in store.sample(MAX_SAMPLES) {
                    self.scratch_bytes.extend_from_slice(&ih.0);
                }
            } else {
                num = Some(0);
            }
        }
        let (nodes, sample_bytes) = self.scratch_bytes.split_at(nodes_end);
        let nodes = (near.is_some()).then_some(nodes);
        let r = Response {
            id: self.id,
            nodes: if v6 { None } else { nodes },
            nodes6: if v6 { nodes } else { None },
            token: peers_for.map(|_| &token[..]),
            values: (n_values > 0).then_some(Values::Compact {
                bytes: &self.scratch_values,
                stride: if v6 {
                    compact::PEER_V6_LEN
                } else {
                    compact::PEER_V4_LEN
                },
            }),
            interval: num.map(|_| SAMPLE_INTERVAL),
            num,
            samples: num.map(|_| sample_bytes),
        };
        let m = Message {
            tid,
            version: self.cfg.version.as_ref().map(|v| &v[..]),
            read_only: false,
            ip: Some(to),
            body: Body::Response(r),
        };
        enqueue(
            &mut self.out,
            &mut self.stats,
            self.cfg.max_outgoing,
            to,
            &m,
        );
    }
}

fn query_info(from: SocketAddr, q: &Query<'_>) -> QueryInfo {
    match &q.method {
        Method::Ping => QueryInfo::Ping,
        Method::FindNode { target } => QueryInfo::FindNode { target: *target },
        Method::GetPeers { info_hash, .. } => QueryInfo::GetPeers {
            info_hash: *info_hash,
        },
        Method::AnnouncePeer { info_hash, .. } => QueryInfo::AnnouncePeer {
            info_hash: *info_hash,
            peer: from,
            seed: false,
            token_valid: false,
        },
        Method::SampleInfohashes { target } => QueryInfo::SampleInfohashes { target: *target },
        Method::Other {
            name,
            target,
            info_hash,
        } => QueryInfo::Other {
            method: name[..name.len().min(64)].to_vec(),
            target: *target,
            info_hash: *info_hash,
        },
    }
}
