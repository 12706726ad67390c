//! The Rpc part: what lies between "ask this node that" and datagrams on the wire.
//!
//! It owns the outstanding transactions (ids, deadlines, retransmissions), the outgoing
//! datagram queue, the rate limits in both directions and the node's counters. It is keyed by
//! [`SocketAddr`] and blind to address families and to what the queries are for: the
//! [`Purpose`] it stores comes back with the answer, the timeout or the slow mark, and the
//! caller routes it.

mod outq;
mod ratelimit;
mod transactions;

use std::net::{IpAddr, SocketAddr};

use rand::rngs::SmallRng;
use rand::Rng;

use crate::krpc::{Body, ErrorBody, Message, Method, Query, Want};
use crate::{addr, Config, Id, Instant, Stats};

use outq::OutQueue;
use ratelimit::{Bucket, InboundLimiter, RateLimiter, Standing, Verdict};
use transactions::{Fired, Transactions};
pub(crate) use transactions::{Pending, Purpose};

/// A query to send.
pub(crate) struct Outgoing<'m> {
    pub addr: SocketAddr,
    /// The id we believe the node has, if any.
    pub node_id: Option<Id>,
    pub method: Method<&'m [u8]>,
    pub purpose: Purpose,
    /// Lookups: past the slow timeout the query stops counting against α.
    pub slow: bool,
    /// Retransmissions allowed if it times out.
    pub retries: u8,
}

/// Something due on a transaction.
pub(crate) enum Due {
    /// The query passed the slow timeout and is still waiting.
    Slow { addr: SocketAddr, purpose: Purpose },
    /// The query timed out: [`Rpc::resend`] it or [`Rpc::expire`] it.
    Expired(u32),
}

/// The fields every message we send carries.
#[derive(Debug, Clone, Copy)]
struct Header {
    id: Id,
    version: Option<[u8; 4]>,
    read_only: bool,
}

#[derive(Debug)]
pub(crate) struct Rpc {
    txs: Transactions,
    out: OutQueue,
    /// Queries accepted per source IP, and bans.
    inbound: InboundLimiter,
    /// Replies sent by the whole node.
    replies: Bucket,
    reply_reserve: u64,
    /// Queries sent per destination IP.
    per_dest: RateLimiter,
    /// [`crate::Config::strict_dest_limit`].
    strict_dest: bool,
    /// Queries sent by the whole node.
    budget: Bucket,
    header: Header,
    allow_local: bool,
    max_pending: usize,
    max_outgoing: usize,
    slow_timeout: std::time::Duration,
    slow_timeout_min: std::time::Duration,
    query_timeout: std::time::Duration,
    rtt: RttEstimator,
    pub(crate) stats: Stats,
}

/// The smoothed round trip of the nodes that answer us and its variation (RFC 6298's
/// estimator, over all nodes): a lookup query is "slow" once it has waited longer than
/// `srtt + 4 * rttvar`, between the configured minimum and maximum.
#[derive(Debug, Default, Clone, Copy)]
struct RttEstimator {
    srtt_us: Option<u64>,
    rttvar_us: u64,
    /// How many `rttvar`s past `srtt` a query becomes slow ([`Config::slow_rttvar`]).
    rttvar_mult: u64,
}

impl RttEstimator {
    fn observe(&mut self, rtt: std::time::Duration) {
        let r = u64::try_from(rtt.as_micros())
            .unwrap_or(u64::MAX)
            .min(60_000_000);
        match self.srtt_us {
            None => {
                self.srtt_us = Some(r);
                self.rttvar_us = r / 2;
            }
            Some(s) => {
                self.rttvar_us = (3 * self.rttvar_us + s.abs_diff(r)) / 4;
                self.srtt_us = Some((7 * s + r) / 8);
            }
        }
    }

    fn timeout(&self, min: std::time::Duration, max: std::time::Duration) -> std::time::Duration {
        match self.srtt_us {
            None => max,
            Some(s) => std::time::Duration::from_micros(s + self.rttvar_mult * self.rttvar_us)
                .clamp(min, max.max(min)),
        }
    }
}

impl Rpc {
    pub(crate) fn new(cfg: &Config, id: Id, rng: &mut SmallRng, now: Instant) -> Rpc {
        Rpc {
            inbound: InboundLimiter::new(
                cfg.per_ip_rate,
                cfg.per_ip_burst,
                cfg.max_tracked_ips,
                cfg.per_ip_ban_after,
                cfg.per_ip_ban_for,
                rng.random(),
                now,
            ),
            replies: Bucket::new(cfg.reply_rate, cfg.reply_burst, now),
            reply_reserve: cfg.reply_burst.max(1) as u64 * 1000 / 2,
            per_dest: {
                let r = RateLimiter::new(
                    cfg.rate_limiter_slots,
                    cfg.per_dest_rate,
                    cfg.per_dest_burst,
                    rng.random(),
                );
                if cfg.strict_dest_limit {
                    r.exact()
                } else {
                    r
                }
            },
            strict_dest: cfg.strict_dest_limit,
            txs: Transactions::new(rng.random()),
            out: OutQueue::default(),
            budget: Bucket::new(cfg.max_query_rate, cfg.max_query_burst, now),
            header: Header {
                id,
                version: cfg.version,
                read_only: cfg.read_only,
            },
            allow_local: cfg.allow_local_addrs,
            max_pending: cfg.max_pending,
            max_outgoing: cfg.max_outgoing,
            slow_timeout: cfg.slow_timeout,
            slow_timeout_min: cfg.slow_timeout_min,
            rtt: RttEstimator {
                rttvar_mult: u64::from(cfg.slow_rttvar),
                ..RttEstimator::default()
            },
            query_timeout: cfg.query_timeout,
            stats: Stats::default(),
        }
    }

    /// Transactions awaiting an answer.
    pub(crate) fn pending(&self) -> usize {
        self.txs.len()
    }

    /// True when no more transactions may be opened.
    pub(crate) fn pending_full(&self) -> bool {
        self.txs.len() >= self.max_pending
    }

    /// From now on, local addresses may be contacted (the user pointed the node at one).
    pub(crate) fn allow_local_addrs(&mut self) {
        self.allow_local = true;
    }

    /// The address rules: never an invalid address, and local ones only when allowed (or
    /// when the user addressed the request by hand).
    pub(crate) fn may_contact(&self, addr: &SocketAddr, explicit: bool) -> bool {
        addr::may_send(addr, self.allow_local || explicit)
    }

    /// True if a query to `ip` fits the node-wide and per-destination budgets now (nothing is
    /// taken).
    pub(crate) fn has_budget(&mut self, now: Instant, ip: IpAddr) -> bool {
        self.budget.would_allow(now) && self.per_dest.would_allow(now, ip)
    }

    /// Queues a query and opens its transaction. Returns the transaction id, or `None` if the
    /// address may not be contacted, too many transactions are open, the outgoing queue is
    /// full, or (for background checks only) the send budget is spent.
    pub(crate) fn send(&mut self, now: Instant, q: Outgoing<'_>) -> Option<u32> {
        let explicit = matches!(q.purpose, Purpose::Request(_));
        if !self.may_contact(&q.addr, explicit) {
            return None;
        }
        if self.pending_full() {
            self.stats.pending_full += 1;
            return None;
        }
        // Background checks give way when we have talked to this IP a lot or the node's query
        // budget is spent; lookups already checked (they wait for budget); explicit requests
        // always go out.
        if q.purpose == Purpose::Verify && !self.has_budget(now, q.addr.ip()) {
            self.stats.dest_limited += 1;
            return None;
        }
        if self.strict_dest && !self.per_dest.would_allow(now, q.addr.ip()) {
            self.stats.dest_limited += 1;
            return None;
        }
        self.budget.allow(now);
        self.per_dest.allow(now, q.addr.ip());
        let tid = self.txs.insert(Pending {
            addr: q.addr,
            node_id: q.node_id,
            kind: q.method.kind(),
            purpose: q.purpose,
            sent: now,
            attempts: 1,
            retries: q.retries,
            slow_at: q
                .slow
                .then(|| now + self.rtt.timeout(self.slow_timeout_min, self.slow_timeout)),
            // An explicit request is sent once and waits the whole query timeout: the
            // adaptive retransmission deadline would fail the heavy tail's slow answers.
            deadline: now
                + if explicit {
                    self.query_timeout
                } else {
                    self.retransmit_after()
                },
        });
        if self.write_query(q.addr, tid, q.method) {
            Some(tid)
        } else {
            self.txs.remove(tid);
            None
        }
    }

    /// Sends an expired query again under the same transaction id (one retry used).
    pub(crate) fn resend(&mut self, now: Instant, tid: u32, method: Method<&[u8]>) -> bool {
        let Some(p) = self.txs.get(tid) else {
            return false;
        };
        if p.retries == 0 {
            return false;
        }
        let addr = p.addr;
        if self.strict_dest && !self.per_dest.allow(now, addr.ip()) {
            self.stats.dest_limited += 1;
            return false;
        }
        if !self.write_query(addr, tid, method) {
            return false;
        }
        let after = self.retransmit_after();
        let p = self.txs.get_mut(tid).expect("present");
        p.attempts += 1;
        p.retries -= 1;
        p.deadline = now + after;
        self.txs.rearm(tid);
        true
    }

    fn write_query(&mut self, addr: SocketAddr, tid: u32, method: Method<&[u8]>) -> bool {
        let tid_bytes = tid.to_be_bytes();
        let version = self.header.version;
        let m = Message {
            tid: &tid_bytes,
            version: version.as_ref().map(|v| &v[..]),
            read_only: self.header.read_only,
            ip: None,
            body: Body::Query(Query {
                id: self.header.id,
                method,
                want: Want::default(),
            }),
        };
        let kind = method.kind();
        let sent = self.enqueue(addr, &m);
        self.stats.queries_out += sent as u64;
        self.stats.queries_out_by_method[kind.index()] += sent as u64;
        sent
    }

    /// A query was answered: its round trip feeds the slow timeout (not when it was sent more
    /// than once, as the answer may be to any of the copies).
    pub(crate) fn observe_rtt(&mut self, p: &Pending, now: Instant) {
        if p.attempts == 1 {
            self.rtt.observe(now.saturating_since(p.sent));
        }
    }

    /// A round trip measured elsewhere (a node entered as verified, with its round trip).
    pub(crate) fn observe_rtt_sample(&mut self, rtt: std::time::Duration) {
        self.rtt.observe(rtt);
    }

    /// How long a query waits before it is sent again (or fails): twice the slow timeout,
    /// at least 500 ms, at most the configured query timeout. On a network whose round trips
    /// are known, a lost query is retried in about a second, not two.
    fn retransmit_after(&self) -> std::time::Duration {
        let slow = self.rtt.timeout(self.slow_timeout_min, self.slow_timeout);
        (slow * 2).clamp(
            std::time::Duration::from_millis(500).min(self.query_timeout),
            self.query_timeout,
        )
    }

    /// A transaction still open.
    pub(crate) fn get(&self, tid: u32) -> Option<&Pending> {
        self.txs.get(tid)
    }

    /// Takes the transaction a response or error from `from` answers, if any.
    pub(crate) fn take_reply(&mut self, from: SocketAddr, tid: &[u8]) -> Option<Pending> {
        let t = <[u8; 4]>::try_from(tid).ok().map(u32::from_be_bytes);
        match t.and_then(|t| self.txs.get(t).map(|p| (t, p.addr))) {
            Some((t, addr)) if addr == from => self.txs.remove(t),
            _ => {
                self.stats.unsolicited_in += 1;
                None
            }
        }
    }

    /// Closes a transaction that timed out for good.
    pub(crate) fn expire(&mut self, tid: u32) -> Option<Pending> {
        let p = self.txs.remove(tid)?;
        self.stats.timeouts += 1;
        Some(p)
    }

    /// The next thing due on a transaction at `now`.
    pub(crate) fn poll_due(&mut self, now: Instant) -> Option<Due> {
        loop {
            match self.txs.pop_due(now)? {
                Fired::Slow(tid) => {
                    if let Some(p) = self.txs.get(tid) {
                        return Some(Due::Slow {
                            addr: p.addr,
                            purpose: p.purpose,
                        });
                    }
                }
                Fired::Timeout(tid) => return Some(Due::Expired(tid)),
            }
        }
    }

    /// The earliest transaction deadline.
    pub(crate) fn next_deadline(&mut self) -> Option<Instant> {
        self.txs.next_deadline()
    }

    /// Judges a query from `ip` against its per-IP limit, bans and the node-wide reply
    /// budget; false (and counted) when it is not to be answered.
    pub(crate) fn accept_query(&mut self, now: Instant, ip: IpAddr) -> bool {
        match self.inbound.check(now, ip) {
            Verdict::Accept(standing) => {
                // Known clients may spend the whole reply budget, new ones down to a quarter,
                // suspects down to a half: a flood cannot take the last of it.
                let reserve = match standing {
                    Standing::Known => 0,
                    Standing::New => self.reply_reserve / 2,
                    Standing::Suspect => self.reply_reserve,
                };
                let ok = self.replies.allow_above(now, reserve);
                self.stats.reply_limited += !ok as u64;
                ok
            }
            Verdict::Limited => {
                self.stats.rate_limited += 1;
                false
            }
            Verdict::Banned => {
                self.stats.banned_dropped += 1;
                false
            }
        }
    }

    /// True if `ip` is banned (its datagrams are dropped before they are read).
    #[inline]
    pub(crate) fn is_banned(&self, now: Instant, ip: IpAddr) -> bool {
        self.inbound.is_banned(now, ip)
    }

    /// IPs banned now, most recent first, at most `max`.
    pub(crate) fn banned(&self, now: Instant, max: usize) -> Vec<IpAddr> {
        self.inbound.banned(now, max)
    }

    /// Bans so far.
    pub(crate) fn inbound_bans(&self) -> u64 {
        self.inbound.bans
    }

    /// IPs the inbound limiter tracks.
    pub(crate) fn tracked_ips(&self) -> usize {
        self.inbound.tracked()
    }

    /// Our node id, as every message we send carries it.
    pub(crate) fn id(&self) -> Id {
        self.header.id
    }

    /// Takes a new node id (BEP 42).
    pub(crate) fn set_id(&mut self, id: Id) {
        self.header.id = id;
    }

    /// The `v` every message carries.
    pub(crate) fn version(&self) -> Option<[u8; 4]> {
        self.header.version
    }

    /// Queues a KRPC error.
    pub(crate) fn send_error(&mut self, to: SocketAddr, tid: &[u8], code: i64, message: &[u8]) {
        let version = self.header.version;
        let m = Message {
            tid,
            version: version.as_ref().map(|v| &v[..]),
            read_only: false,
            ip: None,
            body: Body::Error(ErrorBody { code, message }),
        };
        self.enqueue(to, &m);
    }

    /// Encodes `m` straight into the outgoing queue; false (and counted) when it is full.
    pub(crate) fn enqueue(&mut self, to: SocketAddr, m: &Message<'_>) -> bool {
        self.push(to, |buf| m.encode(buf))
    }

    /// Queues raw bytes (a custom message built by the caller).
    pub(crate) fn enqueue_raw(&mut self, to: SocketAddr, bytes: &[u8]) -> bool {
        self.push(to, |buf| buf.extend_from_slice(bytes))
    }

    fn push(&mut self, to: SocketAddr, write: impl FnOnce(&mut Vec<u8>)) -> bool {
        let queued = self.out.push(to, self.max_outgoing, write);
        if queued {
            self.stats.datagrams_out += 1;
        } else {
            self.stats.transmits_dropped += 1;
        }
        queued
    }

    /// Gives back what an idle node should not carry: the outgoing queue's buffers (once
    /// drained), the inbound limiter's records of IPs back within their rate, the outbound
    /// limiter's table when every destination's budget is full again.
    pub(crate) fn release(&mut self, now: Instant) {
        self.out.release_when_empty();
        self.inbound.forget_idle(now);
        self.per_dest.release_if_full(now);
    }

    /// The next datagram to send.
    pub(crate) fn poll_transmit(&mut self) -> Option<(SocketAddr, &[u8])> {
        self.out.pop()
    }

    /// Datagrams waiting to be sent.
    pub(crate) fn pending_transmits(&self) -> usize {
        self.out.len()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use rand::SeedableRng;

    use super::*;
    use crate::event::{LookupId, RequestId};

    fn rpc(cfg: &Config) -> Rpc {
        let mut rng = SmallRng::seed_from_u64(1);
        Rpc::new(cfg, Id([1; 20]), &mut rng, Instant::ZERO)
    }

    fn local_cfg() -> Config {
        Config {
            allow_local_addrs: true,
            ..Config::default()
        }
    }

    fn ping(addr: SocketAddr, purpose: Purpose, retries: u8) -> Outgoing<'static> {
        Outgoing {
            addr,
            node_id: None,
            method: Method::Ping,
            purpose,
            slow: matches!(purpose, Purpose::Lookup(_)),
            retries,
        }
    }

    fn tid_of(r: &mut Rpc) -> Vec<u8> {
        let (_, bytes) = r.poll_transmit().expect("queued");
        let v = crate::bencode::OwnedValue::decode(bytes).unwrap();
        let crate::bencode::OwnedValue::Dict(d) = v else {
            panic!()
        };
        match &d[&b"t"[..]] {
            crate::bencode::OwnedValue::Bytes(t) => t.clone(),
            _ => panic!(),
        }
    }

    #[test]
    fn replies_match_by_transaction_and_address() {
        let mut r = rpc(&local_cfg());
        let a: SocketAddr = "127.0.0.2:6881".parse().unwrap();
        let b: SocketAddr = "127.0.0.3:6881".parse().unwrap();
        let now = Instant::ZERO;
        r.send(now, ping(a, Purpose::Request(RequestId(1)), 0))
            .unwrap();
        let tid = tid_of(&mut r);
        assert_eq!(tid.len(), 4, "our transaction ids are 4 bytes");
        assert!(r.take_reply(b, &tid).is_none(), "wrong source address");
        assert!(r.take_reply(a, b"xx").is_none(), "unknown transaction");
        assert_eq!(r.stats.unsolicited_in, 2);
        let p = r.take_reply(a, &tid).expect("matches");
        assert_eq!(p.purpose, Purpose::Request(RequestId(1)));
        assert!(r.take_reply(a, &tid).is_none(), "answered once");
        assert_eq!(r.pending(), 0);
    }

    #[test]
    fn slow_mark_then_retransmission_then_expiry() {
        let cfg = local_cfg();
        let mut r = rpc(&cfg);
        let a: SocketAddr = "127.0.0.2:6881".parse().unwrap();
        let now = Instant::ZERO;
        let tid = r
            .send(now, ping(a, Purpose::Lookup(LookupId(1)), 1))
            .unwrap();
        let first = tid_of(&mut r);
        assert!(r.poll_due(now).is_none());
        let slow = now + cfg.slow_timeout;
        assert!(matches!(r.poll_due(slow), Some(Due::Slow { addr, .. }) if addr == a));
        let t1 = now + cfg.query_timeout;
        assert!(matches!(r.poll_due(t1), Some(Due::Expired(t)) if t == tid));
        assert!(r.resend(t1, tid, Method::Ping));
        assert_eq!(
            tid_of(&mut r),
            first,
            "a retransmission reuses the transaction id"
        );
        assert_eq!(r.get(tid).unwrap().attempts, 2);
        let t2 = t1 + cfg.query_timeout;
        assert!(r.poll_due(t2 - Duration::from_millis(1)).is_none());
        assert!(matches!(r.poll_due(t2), Some(Due::Expired(t)) if t == tid));
        assert!(!r.resend(t2, tid, Method::Ping), "no retries left");
        assert!(r.expire(tid).is_some());
        assert_eq!((r.stats.timeouts, r.stats.queries_out), (1, 2));
    }

    #[test]
    fn address_rules_and_limits() {
        let cfg = Config {
            max_pending: 1,
            per_ip_rate: 1,
            // A new IP starts with a fifth of it: 2.
            per_ip_burst: 10,
            ..Config::default()
        };
        let mut r = rpc(&cfg);
        let now = Instant::ZERO;
        let local: SocketAddr = "10.0.0.1:6881".parse().unwrap();
        let public: SocketAddr = "8.8.8.8:6881".parse().unwrap();
        assert!(r.send(now, ping(local, Purpose::Verify, 0)).is_none());
        assert!(r
            .send(now, ping(local, Purpose::Request(RequestId(1)), 0))
            .is_some());
        assert!(r.send(now, ping(public, Purpose::Verify, 0)).is_none());
        assert_eq!(r.stats.pending_full, 1);
        let accepted = (0..5).filter(|_| r.accept_query(now, public.ip())).count();
        assert_eq!((accepted, r.stats.rate_limited), (2, 3));
    }

    /// The node-wide reply budget by standing: a known client may spend all of it, a new one
    /// down to a quarter, a suspect (refused by its own limit recently) down to a half.
    #[test]
    fn the_reply_budget_serves_known_clients_first() {
        let cfg = Config {
            per_ip_rate: 1000,
            per_ip_burst: 10,
            reply_rate: 1,
            reply_burst: 8,
            ..Config::default()
        };
        let mut r = rpc(&cfg);
        let ms = Duration::from_millis;
        let ip = |s: &str| -> IpAddr { s.parse().unwrap() };
        let (known, bad, fresh) = (ip("7.7.7.7"), ip("8.8.8.8"), ip("9.9.9.9"));
        let t1 = Instant::ZERO + Duration::from_secs(1);
        assert!(r.accept_query(t1, known), "first heard of at 1 s");
        let t = t1 + Duration::from_secs(3); // the budget is full again (8)
                                             // `bad` overruns its own limit (a new IP has 2 of its 10): two answered, one refused.
        let answered = (0..3).filter(|_| r.accept_query(t, bad)).count();
        assert_eq!((answered, r.stats.rate_limited), (2, 1));
        let spaced = |r: &mut Rpc, from: IpAddr, start: Instant| {
            (0..10u64)
                .filter(|i| r.accept_query(start + ms(2 * i), from))
                .count()
        };
        // Budget 6: the suspect may take it down to 4.
        assert_eq!(spaced(&mut r, bad, t + ms(2)), 2);
        // A new client, down to 2.
        assert_eq!(spaced(&mut r, fresh, t + ms(30)), 2);
        // A known client gets the last of it.
        assert_eq!(spaced(&mut r, known, t + ms(60)), 2);
        assert_eq!(r.stats.reply_limited, 8 + 8 + 8);
    }
}
