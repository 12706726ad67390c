//! The Responder part: answers every query, one small handler per method. It owns the write
//! tokens, the peer store and the BEP 44 item store.
//!
//! This is the hot path. Nothing here allocates once the scratch buffers and the outgoing
//! arena have grown.

use std::net::SocketAddr;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::rpc::Rpc;
use crate::compact;
use crate::event::Answer;
use crate::items::{Item, ItemStore};
use crate::krpc::{
    Body, Message, Method, Query, Response, Values, Want, ERR_METHOD_UNKNOWN, ERR_PROTOCOL,
};
use crate::routing::RoutingTable;
use crate::store::PeerStore;
use crate::token::{Tokens, TOKEN_LEN};
use crate::{Config, Id, Instant};

/// Most infohashes in one BEP 51 sample whatever the configuration (20 bytes each; 50 keep the
/// reply in one datagram of about 1.1 KB).
const MAX_SAMPLES: usize = 50;

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
    /// BEP 44: send the item under this target (its value is in `item_v` when sent).
    item: Option<Id>,
    /// BEP 44: send the stored item's seq and key but not its value (not newer than asked).
    item_value: bool,
    /// BEP 33: the seeds' and the other peers' filters.
    scrape: Option<(crate::scrape::Bloom, crate::scrape::Bloom)>,
}

#[derive(Debug)]
pub(crate) struct Responder {
    tokens: Tokens,
    store: Option<PeerStore>,
    items: Option<ItemStore>,
    k: usize,
    max_values: usize,
    scratch_nodes: Vec<(Id, SocketAddr)>,
    nodes4: Vec<u8>,
    nodes6: Vec<u8>,
    values: Vec<u8>,
    samples: Vec<u8>,
    /// BEP 51 settings; `None`: BEP 5 only.
    sample_cfg: Option<crate::config::SampleConfig>,
    /// With `hold`: when the sample given was drawn, and the sample.
    held: Option<(Instant, Vec<u8>)>,
    /// Draws `hold` samples at random, as libtorrent does.
    sample_rng: SmallRng,
}

impl Responder {
    pub(crate) fn new(cfg: &Config, rng: &mut SmallRng) -> Responder {
        Responder {
            tokens: Tokens::new(rng),
            store: cfg.store.map(PeerStore::new),
            items: cfg.items.map(ItemStore::new),
            k: cfg.table.k,
            max_values: cfg.max_values,
            scratch_nodes: Vec::new(),
            nodes4: Vec::new(),
            nodes6: Vec::new(),
            values: Vec::new(),
            samples: Vec::new(),
            sample_cfg: cfg.samples,
            held: None,
            sample_rng: SmallRng::seed_from_u64(rng.random()),
        }
    }

    /// Frees the answer-building buffers (they grow again with the next answer).
    pub(crate) fn release(&mut self) {
        self.scratch_nodes = Vec::new();
        self.nodes4 = Vec::new();
        self.nodes6 = Vec::new();
        self.values = Vec::new();
        self.samples = Vec::new();
    }

    pub(crate) fn peer_store(&self) -> Option<&PeerStore> {
        self.store.as_ref()
    }

    pub(crate) fn item_store(&self) -> Option<&ItemStore> {
        self.items.as_ref()
    }

    /// Token rotation and store expiry.
    pub(crate) fn rotate_tokens(&mut self, rng: &mut SmallRng) {
        self.tokens.rotate(rng);
    }

    pub(crate) fn expire(&mut self, now: Instant) {
        if let Some(store) = &mut self.store {
            store.expire(now);
        }
        if let Some(items) = &mut self.items {
            items.expire(now);
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
                info_hash,
                noseed,
                scrape,
            } => {
                self.get_peers(&mut d, from, *info_hash, *noseed);
                if *scrape {
                    d.scrape = self.store.as_ref().and_then(|s| s.scrape(info_hash));
                }
            }
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
            Method::SampleInfohashes { target } => self.sample_infohashes(now, &mut d, *target),
            Method::Get { target, seq } => self.get(&mut d, from, *target, *seq),
            Method::Put {
                token,
                v,
                k,
                sig,
                salt,
                seq,
                cas,
            } => {
                let put = self.put(now, from, token, v, *k, *sig, *salt, *seq, *cas);
                if let Err((code, reason)) = put {
                    rpc.send_error(from, msg.tid, code, reason.as_bytes());
                    return Answer::Error { code };
                }
            }
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

    fn get(&mut self, d: &mut Draft, from: SocketAddr, target: Id, seq: Option<i64>) {
        d.near = Some(target);
        if self.items.is_none() {
            // As a BEP 5-only node: the nodes near the target, and no token to put with.
            return;
        }
        d.token = Some(self.tokens.token_for(from.ip()));
        if let Some(item) = self.items.as_mut().and_then(|s| s.get(&target)) {
            d.item = Some(target);
            d.item_value = match (seq, item.seq()) {
                (Some(asked), Some(have)) => have > asked,
                _ => true,
            };
        }
    }

    /// A `put`: checked in the order BEP 44 nodes report problems (sizes, token, signature,
    /// then cas and seq against what is stored).
    #[allow(clippy::too_many_arguments)]
    fn put(
        &mut self,
        now: Instant,
        from: SocketAddr,
        token: &[u8],
        v: &[u8],
        k: Option<&[u8]>,
        sig: Option<&[u8]>,
        salt: Option<&[u8]>,
        seq: Option<i64>,
        cas: Option<i64>,
    ) -> Result<(), (i64, &'static str)> {
        let checked = |r: crate::items::Refusal| (r.code, r.message);
        if self.items.is_none() {
            return Err((ERR_METHOD_UNKNOWN, "method unknown"));
        }
        if v.len() > crate::items::MAX_VALUE_LEN {
            return Err((crate::krpc::ERR_TOO_BIG, "value too big"));
        }
        if salt.is_some_and(|s| s.len() > crate::items::MAX_SALT_LEN) {
            return Err((crate::krpc::ERR_SALT_TOO_BIG, "salt too big"));
        }
        if !self.tokens.validate(from.ip(), token) {
            return Err((ERR_PROTOCOL, "bad token"));
        }
        let item = Item::from_put(v, k, sig, salt, seq).map_err(checked)?;
        match &mut self.items {
            Some(store) => store.put(now, item, cas).map_err(checked),
            None => Err((ERR_METHOD_UNKNOWN, "method unknown")),
        }
    }

    fn sample_infohashes(&mut self, now: Instant, d: &mut Draft, target: Id) {
        d.near = Some(target);
        // BEP 5 only: answered as an unknown method that names a target (like find_node).
        let Some(cfg) = self.sample_cfg else { return };
        d.num = Some(0);
        let Some(store) = &self.store else { return };
        let max = cfg.max_samples.min(MAX_SAMPLES);
        if cfg.hold {
            // As libtorrent: a full sample is given until it is `interval` old; one that is
            // not full yet is drawn again at every query. `num` is always the current count.
            let stale = self.held.as_ref().is_none_or(|(at, buf)| {
                buf.len() < max * 20 || now.saturating_since(*at) >= cfg.interval
            });
            if stale {
                let mut buf = self.held.take().map(|h| h.1).unwrap_or_default();
                buf.clear();
                // Drawn at random from everything stored (libtorrent's way), so that the
                // nodes storing one infohash do not all hold back the same older ones.
                for ih in store.sample_random(max, &mut self.sample_rng) {
                    buf.extend_from_slice(&ih.0);
                }
                self.held = Some((now, buf));
            }
            let (_, buf) = self.held.as_ref().expect("drawn");
            d.num = Some(store.infohashes() as i64);
            self.samples.extend_from_slice(buf);
            return;
        }
        d.num = Some(store.infohashes() as i64);
        for ih in store.sample(max) {
            self.samples.extend_from_slice(&ih.0);
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
            interval: d
                .num
                .and(self.sample_cfg)
                .map(|c| c.interval.as_secs().min(i64::MAX as u64) as i64),
            num: d.num,
            samples: d.num.map(|_| &self.samples[..]),
            ..Response::default()
        };
        let mut r = r;
        if let Some((seeds, peers)) = &d.scrape {
            r.bf_seeds = Some(&seeds.0);
            r.bf_peers = Some(&peers.0);
        }
        if let Some(item) = d
            .item
            .and_then(|t| self.items.as_ref().and_then(|s| s.peek(&t)))
        {
            if d.item_value {
                r.v = Some(&item.value);
            }
            if let Some(s) = &item.signed {
                r.k = Some(&s.key);
                r.seq = Some(s.seq);
                if d.item_value {
                    r.sig = Some(&s.sig);
                }
            }
        }
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

/// True if `nodes` are IPv6 nodes (38 bytes each in compact form, not 26).
fn target_is_v6(nodes: &[(Id, SocketAddr)]) -> bool {
    nodes.first().is_some_and(|(_, a)| a.is_ipv6())
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
    out.reserve(scratch.len() * if target_is_v6(scratch) { 38 } else { 26 });
    for (id, addr) in scratch.iter() {
        compact::encode_node(id, addr, out);
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;
    use crate::bencode::{Decoder, Limits, OwnedValue};

    struct Fixture {
        responder: Responder,
        rpc: Rpc,
        v4: RoutingTable,
        v6: RoutingTable,
        now: Instant,
    }

    fn fixture() -> Fixture {
        fixture_with(|_| {})
    }

    fn fixture_with(adjust: impl FnOnce(&mut Config)) -> Fixture {
        let mut cfg = Config {
            allow_local_addrs: true,
            ..Config::default()
        };
        adjust(&mut cfg);
        let mut rng = SmallRng::seed_from_u64(5);
        let own = Id([0; 20]);
        let now = Instant::ZERO;
        let mut v4 = RoutingTable::new(own, cfg.table, now);
        let mut v6 = RoutingTable::new(own, cfg.table, now);
        for i in 1..=4u8 {
            v4.restore(now, Id([i; 20]), SocketAddr::from(([127, 0, 1, i], 6881)));
            let ip = std::net::Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, i as u16);
            v6.restore(now, Id([0x80 | i; 20]), SocketAddr::new(ip.into(), 6881));
        }
        Fixture {
            responder: Responder::new(&cfg, &mut rng),
            rpc: Rpc::new(&cfg, own, &mut rng, now),
            v4,
            v6,
            now,
        }
    }

    impl Fixture {
        /// Answers the query in `raw` from `from`; returns the answer and the reply's body.
        fn ask(&mut self, from: &str, raw: &[u8]) -> (Answer, OwnedValue) {
            let from: SocketAddr = from.parse().unwrap();
            let mut d = Decoder::new(Limits::default());
            let msg = Message::parse(d.decode(raw).unwrap()).unwrap();
            let Body::Query(q) = &msg.body else { panic!() };
            let tables = Tables {
                v4: Some(&self.v4),
                v6: Some(&self.v6),
            };
            let a = self
                .responder
                .answer(self.now, from, &msg, q, tables, &mut self.rpc);
            let (to, bytes) = self.rpc.poll_transmit().expect("a reply");
            assert_eq!(to, from);
            let OwnedValue::Dict(top) = OwnedValue::decode(bytes).unwrap() else {
                panic!()
            };
            let body = top.get(&b"r"[..]).or(top.get(&b"e"[..])).cloned().unwrap();
            (a, body)
        }
    }

    fn field<'v>(v: &'v OwnedValue, k: &str) -> Option<&'v OwnedValue> {
        match v {
            OwnedValue::Dict(d) => d.get(k.as_bytes()),
            _ => None,
        }
    }

    fn bytes(v: Option<&OwnedValue>) -> Vec<u8> {
        match v {
            Some(OwnedValue::Bytes(b)) => b.clone(),
            other => panic!("not bytes: {other:?}"),
        }
    }

    const FIND: &[u8] = b"d1:ad2:id20:abcdefghij01234567896:target20:mnopqrstuvwxyz123456e1:q9:find_node1:t2:aa1:y1:qe";
    const FIND_BOTH: &[u8] = b"d1:ad2:id20:abcdefghij01234567896:target20:mnopqrstuvwxyz1234564:wantl2:n42:n6ee1:q9:find_node1:t2:aa1:y1:qe";

    #[test]
    fn nodes_follow_the_querier_family_and_want() {
        let mut f = fixture();
        let (a, r) = f.ask("127.9.0.1:1000", FIND);
        assert_eq!(a, Answer::Response);
        assert_eq!(bytes(field(&r, "nodes")).len(), 4 * 26);
        assert!(field(&r, "nodes6").is_none());
        let (_, r) = f.ask("[fd00::99]:1000", FIND);
        assert!(field(&r, "nodes").is_none());
        assert_eq!(bytes(field(&r, "nodes6")).len(), 4 * 38);
        let (_, r) = f.ask("127.9.0.1:1000", FIND_BOTH);
        assert_eq!(bytes(field(&r, "nodes")).len(), 4 * 26);
        assert_eq!(bytes(field(&r, "nodes6")).len(), 4 * 38, "BEP 32 want n6");
    }

    #[test]
    fn tokens_gate_announces_and_peers_come_back() {
        let mut f = fixture();
        let get = b"d1:ad2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz123456e1:q9:get_peers1:t2:aa1:y1:qe";
        let (_, r) = f.ask("127.9.0.1:1000", get);
        let token = bytes(field(&r, "token"));
        assert!(field(&r, "values").is_none());
        let announce = |tok: &[u8]| {
            let mut m = b"d1:ad2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz1234564:porti7000e5:token".to_vec();
            m.extend_from_slice(format!("{}:", tok.len()).as_bytes());
            m.extend_from_slice(tok);
            m.extend_from_slice(b"e1:q13:announce_peer1:t2:aa1:y1:qe");
            m
        };
        let (a, e) = f.ask("127.9.0.2:1000", &announce(&token));
        assert_eq!(a, Answer::Error { code: 203 }, "a token is bound to its IP");
        assert!(matches!(e, OwnedValue::List(ref l) if l[0] == OwnedValue::Int(203)));
        let (a, _) = f.ask("127.9.0.1:1000", &announce(&token));
        assert_eq!(a, Answer::Response);
        let (_, r) = f.ask("127.9.0.3:1000", get);
        let Some(OwnedValue::List(values)) = field(&r, "values") else {
            panic!("{r:?}")
        };
        assert_eq!(values, &[OwnedValue::Bytes(vec![127, 9, 0, 1, 0x1b, 0x58])]);
        let sample = b"d1:ad2:id20:abcdefghij01234567896:target20:mnopqrstuvwxyz123456e1:q17:sample_infohashes1:t2:aa1:y1:qe";
        let (_, r) = f.ask("127.9.0.3:1000", sample);
        assert_eq!(field(&r, "num"), Some(&OwnedValue::Int(1)));
        assert_eq!(bytes(field(&r, "samples")), b"mnopqrstuvwxyz123456");
        assert!(field(&r, "interval").is_some());
    }

    /// Announces `ih` (a printable 20-byte name) from `from`, with the token it is given.
    fn announce_as(f: &mut Fixture, from: &str, ih: &[u8; 20]) {
        let mut get = b"d1:ad2:id20:abcdefghij01234567899:info_hash20:".to_vec();
        get.extend_from_slice(ih);
        get.extend_from_slice(b"e1:q9:get_peers1:t2:aa1:y1:qe");
        let (_, r) = f.ask(from, &get);
        let token = bytes(field(&r, "token"));
        let mut m = b"d1:ad2:id20:abcdefghij01234567899:info_hash20:".to_vec();
        m.extend_from_slice(ih);
        m.extend_from_slice(b"4:porti7000e5:token");
        m.extend_from_slice(format!("{}:", token.len()).as_bytes());
        m.extend_from_slice(&token);
        m.extend_from_slice(b"e1:q13:announce_peer1:t2:aa1:y1:qe");
        assert_eq!(f.ask(from, &m).0, Answer::Response);
    }

    const SAMPLE_Q: &[u8] = b"d1:ad2:id20:abcdefghij01234567896:target20:mnopqrstuvwxyz123456e1:q17:sample_infohashes1:t2:aa1:y1:qe";

    #[test]
    fn a_bep5_only_node_answers_sample_infohashes_with_nodes_only() {
        let mut f = fixture_with(|c| c.samples = None);
        announce_as(&mut f, "127.9.0.1:1000", b"aaaaaaaaaaaaaaaaaaaa");
        let (a, r) = f.ask("127.9.0.3:1000", SAMPLE_Q);
        assert_eq!(a, Answer::Response);
        assert!(field(&r, "nodes").is_some(), "nodes near the target: {r:?}");
        for k in ["samples", "num", "interval"] {
            assert!(field(&r, k).is_none(), "no {k}: {r:?}");
        }
    }

    #[test]
    fn a_libtorrent_like_node_holds_its_sample_for_the_interval() {
        let one = crate::SampleConfig {
            max_samples: 1,
            ..crate::SampleConfig::libtorrent()
        };
        let mut f = fixture_with(|c| c.samples = Some(one));
        // Nothing stored: an empty sample, drawn again at the next query (it is not full).
        let (_, r) = f.ask("127.9.0.3:1000", SAMPLE_Q);
        assert_eq!(field(&r, "num"), Some(&OwnedValue::Int(0)));
        announce_as(&mut f, "127.9.0.1:1000", b"aaaaaaaaaaaaaaaaaaaa");
        let (_, r) = f.ask("127.9.0.3:1000", SAMPLE_Q);
        assert_eq!(bytes(field(&r, "samples")), b"aaaaaaaaaaaaaaaaaaaa");
        assert_eq!(field(&r, "interval"), Some(&OwnedValue::Int(6 * 3600)));
        // A full sample is held: a new infohash an hour later changes `num`, not the sample.
        f.now = f.now + std::time::Duration::from_secs(3600);
        announce_as(&mut f, "127.9.0.2:1000", b"bbbbbbbbbbbbbbbbbbbb");
        let (_, r) = f.ask("127.9.0.3:1000", SAMPLE_Q);
        assert_eq!(bytes(field(&r, "samples")), b"aaaaaaaaaaaaaaaaaaaa");
        assert_eq!(field(&r, "num"), Some(&OwnedValue::Int(2)));
        // Six hours after it was drawn, a new one (the most recently announced first).
        f.now = f.now + std::time::Duration::from_secs(5 * 3600);
        let (_, r) = f.ask("127.9.0.3:1000", SAMPLE_Q);
        assert_eq!(bytes(field(&r, "samples")), b"bbbbbbbbbbbbbbbbbbbb");
    }

    /// A query message for `method`, encoded as dhtkit sends it.
    fn query(method: crate::krpc::Request) -> Vec<u8> {
        Message {
            tid: b"aa",
            version: None,
            read_only: false,
            ip: None,
            body: Body::Query(Query {
                id: Id(*b"abcdefghij0123456789"),
                method: method.view(),
                want: Want::default(),
            }),
        }
        .to_bytes()
    }

    fn put(token: &[u8], item: &Item, cas: Option<i64>) -> crate::krpc::Request {
        crate::krpc::Request::put(token.to_vec(), item, cas)
    }

    fn code(a: Answer, e: &OwnedValue) -> i64 {
        let Answer::Error { code } = a else {
            panic!("not an error: {e:?}")
        };
        assert!(matches!(e, OwnedValue::List(l) if l[0] == OwnedValue::Int(code)));
        code
    }

    #[test]
    fn bep44_items_are_stored_and_served() {
        let mut f = fixture();
        let me = "127.9.0.1:1000";
        let imm = Item::immutable(crate::items::bencode_bytes(b"hello"));
        let (_, r) = f.ask(me, &query(crate::krpc::Request::get(imm.target(), None)));
        let token = bytes(field(&r, "token"));
        assert!(field(&r, "v").is_none() && field(&r, "nodes").is_some());
        let (a, _) = f.ask(me, &query(put(&token, &imm, None)));
        assert_eq!(a, Answer::Response);
        let (_, r) = f.ask(me, &query(crate::krpc::Request::get(imm.target(), None)));
        assert_eq!(field(&r, "v"), Some(&OwnedValue::Bytes(b"hello".to_vec())));
        assert!(field(&r, "seq").is_none() && field(&r, "k").is_none());
        // `v` may be any bencoded value; an integer is kept whole, `e` included, so it is
        // stored under the hash of its real encoding and served as a valid reply.
        let int = Item::immutable(b"i42e".to_vec());
        let (a, _) = f.ask(me, &query(put(&token, &int, None)));
        assert_eq!(a, Answer::Response);
        let (_, r) = f.ask(me, &query(crate::krpc::Request::get(int.target(), None)));
        assert_eq!(field(&r, "v"), Some(&OwnedValue::Int(42)));

        let seed = [9u8; 32];
        let m1 = Item::mutable(&seed, b"salt", 1, b"li1ei2ee".to_vec());
        let (a, _) = f.ask(me, &query(put(&token, &m1, None)));
        assert_eq!(a, Answer::Response);
        let (_, r) = f.ask(me, &query(crate::krpc::Request::get(m1.target(), None)));
        let s = m1.signed.as_ref().unwrap();
        assert_eq!(
            field(&r, "v"),
            Some(&OwnedValue::decode(b"li1ei2ee").unwrap())
        );
        assert_eq!(field(&r, "seq"), Some(&OwnedValue::Int(1)));
        assert_eq!(bytes(field(&r, "k")), s.key);
        assert_eq!(bytes(field(&r, "sig")), s.sig);
        let reply = crate::items::Item::from_reply(
            &m1.target(),
            b"salt",
            b"li1ei2ee",
            Some(&s.key),
            Some(&s.sig),
            Some(1),
        );
        assert_eq!(reply, Some(m1.clone()), "what comes back verifies");
        // Asking with the seq we have: no value, just the seq.
        let (_, r) = f.ask(me, &query(crate::krpc::Request::get(m1.target(), Some(1))));
        assert!(field(&r, "v").is_none() && field(&r, "sig").is_none());
        assert_eq!(field(&r, "seq"), Some(&OwnedValue::Int(1)));
    }

    #[test]
    fn bep44_bad_puts_get_their_error_and_change_nothing() {
        let mut f = fixture();
        let me = "127.9.0.1:1000";
        let seed = [9u8; 32];
        let m2 = Item::mutable(&seed, b"", 2, b"3:two".to_vec());
        let (_, r) = f.ask(me, &query(crate::krpc::Request::get(m2.target(), None)));
        let token = bytes(field(&r, "token"));
        let (a, _) = f.ask(me, &query(put(&token, &m2, None)));
        assert_eq!(a, Answer::Response);
        let stored = || m2.clone();
        let check = |f: &mut Fixture, raw: Vec<u8>, want: i64| {
            let (a, e) = f.ask(me, &raw);
            assert_eq!(code(a, &e), want);
            let store = f.responder.item_store().unwrap();
            assert_eq!(store.len(), 1, "nothing else stored");
            assert_eq!(store.peek(&m2.target()), Some(&stored()), "nothing changed");
        };
        // 205: v longer than 1000 bytes bencoded.
        let big = Item::immutable(crate::items::bencode_bytes(&[b'x'; 1000]));
        check(&mut f, query(put(&token, &big, None)), 205);
        // 207: salt longer than 64 bytes.
        let salty = Item::mutable(&seed, &[b's'; 65], 3, b"1:x".to_vec());
        check(&mut f, query(put(&token, &salty, None)), 207);
        // 203: a bad token, and a token given to another IP.
        check(&mut f, query(put(b"nope", &m2, None)), 203);
        let (_, r) = f.ask(
            "127.9.0.2:1000",
            &query(crate::krpc::Request::get(m2.target(), None)),
        );
        let other = bytes(field(&r, "token"));
        check(&mut f, query(put(&other, &m2, None)), 203);
        // 206: a signature that does not match the value.
        let mut forged = Item::mutable(&seed, b"", 3, b"3:new".to_vec());
        forged.value = b"3:bad".to_vec();
        check(&mut f, query(put(&token, &forged, None)), 206);
        // 302: an older seq; 301: a cas that is not the stored seq.
        let old = Item::mutable(&seed, b"", 1, b"3:one".to_vec());
        check(&mut f, query(put(&token, &old, None)), 302);
        let newer = Item::mutable(&seed, b"", 3, b"5:three".to_vec());
        check(&mut f, query(put(&token, &newer, Some(1))), 301);
        // 203: wrong types (refused by the parser, which the node answers with its code)
        // and missing fields.
        let mut wrong = query(put(&token, &newer, None));
        let at = wrong.windows(8).position(|w| w == b"3:seqi3e").unwrap();
        wrong.splice(at..at + 8, b"3:seq1:3".iter().copied());
        let mut d = Decoder::new(Limits::default());
        let e = Message::parse(d.decode(&wrong).unwrap()).unwrap_err();
        assert_eq!(
            e.reply(),
            Some((&b"aa"[..], 203, "seq and cas must be integers"))
        );
        let mut no_sig = put(&token, &newer, None);
        if let Method::Put { sig, .. } = &mut no_sig {
            *sig = None;
        }
        check(&mut f, query(no_sig), 203);
        let mut short_key = put(&token, &newer, None);
        if let Method::Put { k, .. } = &mut short_key {
            k.as_mut().unwrap().pop();
        }
        check(&mut f, query(short_key), 203);
        // And the right cas goes through.
        let (a, _) = f.ask(me, &query(put(&token, &newer, Some(2))));
        assert_eq!(a, Answer::Response);
        assert_eq!(
            f.responder.item_store().unwrap().peek(&m2.target()),
            Some(&newer)
        );
    }

    #[test]
    fn a_node_without_an_item_store_answers_bep44_as_a_bep5_only_node() {
        let mut f = fixture_with(|c| c.items = None);
        let me = "127.9.0.1:1000";
        let item = Item::immutable(b"4:kept".to_vec());
        let (a, r) = f.ask(me, &query(crate::krpc::Request::get(item.target(), None)));
        assert_eq!(a, Answer::Response);
        assert!(field(&r, "nodes").is_some(), "nodes near the target");
        assert!(field(&r, "token").is_none(), "no token: nobody puts here");
        // A put anyway (with a token from a node that stores): 204, not a false "stored".
        let (a, e) = f.ask(me, &query(put(b"token", &item, None)));
        assert_eq!(code(a, &e), 204);
    }

    #[test]
    fn bep33_scrape_answers_with_filters_of_seeds_and_peers() {
        let mut f = fixture();
        let ih = Id([0x33; 20]);
        for (i, seed) in [(1u8, true), (2, false), (3, false)] {
            let me = format!("127.9.1.{i}:1000");
            let (_, r) = f.ask(&me, &query(crate::krpc::Request::get_peers(ih)));
            let token = bytes(field(&r, "token"));
            let ann = crate::krpc::Request::announce_peer(ih, Some(7000), token, seed);
            assert_eq!(f.ask(&me, &query(ann)).0, Answer::Response);
        }
        let scrape = Method::GetPeers {
            info_hash: ih,
            noseed: false,
            scrape: true,
        };
        let (_, r) = f.ask("127.9.2.1:1000", &query(scrape));
        let sd = crate::scrape::Bloom::from_wire(&bytes(field(&r, "BFsd"))).unwrap();
        let pe = crate::scrape::Bloom::from_wire(&bytes(field(&r, "BFpe"))).unwrap();
        assert_eq!((sd.estimate(), pe.estimate()), (1, 2));
        let (_, r) = f.ask(
            "127.9.2.1:1000",
            &query(crate::krpc::Request::get_peers(ih)),
        );
        assert!(field(&r, "BFsd").is_none(), "only when asked");
        let other = Method::GetPeers {
            info_hash: Id([0x44; 20]),
            noseed: false,
            scrape: true,
        };
        let (_, r) = f.ask("127.9.2.1:1000", &query(other));
        assert!(field(&r, "BFsd").is_none(), "nothing stored, no filters");
    }

    #[test]
    fn unknown_methods_without_a_target_get_204() {
        let mut f = fixture();
        let (a, e) = f.ask(
            "127.9.0.1:1000",
            b"d1:ad2:id20:abcdefghij0123456789e1:q6:frobit1:t2:aa1:y1:qe",
        );
        assert_eq!(a, Answer::Error { code: 204 });
        assert!(matches!(e, OwnedValue::List(ref l) if l[0] == OwnedValue::Int(204)));
    }
}
