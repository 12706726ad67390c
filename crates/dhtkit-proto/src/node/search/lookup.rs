//! A lookup's traversal state: candidates by XOR distance, who is in flight, who answered,
//! and whom to ask next. How the [`Search`] runs lookups (queries, replies, retransmissions,
//! the store phase, the result) is in `drive.rs`.
//!
//! A lookup keeps candidates sorted by distance to the target. It keeps up to α queries in
//! flight; a query that passes the slow timeout (from the measured round trips) stops counting
//! against α, so one more can go out while the slow one may still be answered. A candidate is
//! worth querying only while fewer than k closer candidates have answered
//! ([`Lookup::next_query`]); once k have answered, the closer ones left are asked together
//! (up to k at once).
//! The search is done when, walking from the closest, k candidates have answered before any
//! still to be asked or waited for (2k for a get_peers with no peer yet). A get_peers that has
//! found peers does not wait for slow queries then; other lookups, whose result is the closest
//! nodes, wait for them (and their retransmissions) to be exact.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

#[cfg(doc)]
use super::Search;
use crate::event::{LookupId, LookupKind};
use crate::items::Item;
use crate::krpc::{Request, Response};
use crate::{Config, Distance, Id, Instant};

/// How long a lookup waits before trying a node it may not send to yet.
pub(super) const REDRIVE_DELAY: Duration = Duration::from_millis(250);
/// Most distinct peers a single lookup reports.
pub(super) const MAX_PEERS_PER_LOOKUP: usize = 10_000;

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Fresh,
    InFlight { slow: bool },
    Responded { token: Option<Box<[u8]>> },
    Failed,
}

#[derive(Debug, Clone)]
struct Candidate {
    id: Option<Id>,
    addr: SocketAddr,
    dist: Distance,
    /// Its last round trip to us in milliseconds, if the routing table knows it (0: not).
    rtt_ms: u16,
    state: State,
}

impl Candidate {
    /// Leading bits shared with the target (Kademlia's equal distance).
    fn prefix(&self) -> usize {
        self.dist
            .0
            .iter()
            .position(|&b| b != 0)
            .map_or(160, |i| i * 8 + self.dist.0[i].leading_zeros() as usize)
    }

    /// Order among candidates of equal prefix: known fast first, unknown last.
    fn rtt_key(&self) -> u16 {
        if self.rtt_ms == 0 {
            u16::MAX
        } else {
            self.rtt_ms
        }
    }
}

/// Phase of a lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Waiting for the first bootstrap to finish before it starts.
    Held,
    Search,
    Announce {
        pending: usize,
    },
}

/// The state of one traversal.
#[derive(Debug, Clone)]
pub(crate) struct Lookup {
    pub(crate) id: LookupId,
    pub(crate) kind: LookupKind,
    pub(crate) target: Id,
    own: Id,
    cands: Vec<Candidate>,
    pub(super) k: usize,
    alpha: usize,
    max_cands: usize,
    /// One candidate per IP ([`crate::routing::TableConfig::restrict_ips`]).
    one_per_ip: bool,
    /// Ask the fastest of equally distant candidates first ([`Config::rtt_order`]).
    rtt_order: bool,
    pub(crate) started: Instant,
    pub(crate) queries: u32,
    pub(crate) responses: u32,
    pub(crate) timeouts: u32,
    pub(crate) announced: usize,
    pub(crate) peers: HashSet<SocketAddr>,
    pub(crate) phase: Phase,
    /// A candidate was passed over because we may not send to it yet.
    pub(crate) blocked: bool,
    /// Started by the advertise schedule (its peers are reported as `advertised`).
    pub(crate) advertise: bool,
    /// BEP 44: started by the schedule of a kept item; the schedule learns how it went.
    pub(crate) keep: bool,
    /// BEP 44: send no put when at least this many nodes answered the `get` with the item
    /// being put (a kept item's check).
    pub(crate) skip_put_holders: Option<u32>,
    /// BEP 44: no put was sent (see `skip_put_holders`).
    pub(crate) put_skipped: bool,
    /// BEP 44: the salt mutable items found are checked against (get).
    pub(crate) salt: Vec<u8>,
    /// BEP 44: the best item found (get), or the item to store (put).
    pub(crate) item: Option<Item>,
    /// BEP 44: compare-and-swap seq sent with a put.
    pub(crate) cas: Option<i64>,
    /// BEP 44: the nodes that refused our puts.
    pub(crate) put_refusals: Vec<crate::event::PutRefusal>,
    /// BEP 44: puts that got no answer.
    pub(crate) put_unanswered: u32,
    /// BEP 44: the seq (0 for an immutable item) of every valid item a node sent.
    pub(crate) seen_seqs: Vec<i64>,
    /// BEP 44: nodes that answered the `get`, and those whose item failed its check.
    pub(crate) item_answers: u32,
    pub(crate) item_invalid: u32,
    /// BEP 33: the union of the seeds' and the peers' filters received.
    pub(crate) blooms: Option<Box<(crate::scrape::Bloom, crate::scrape::Bloom)>>,
}

impl Lookup {
    /// A lookup for `target` that never queries `own` (our id), sized by `cfg` (k, α, most
    /// candidates).
    pub(crate) fn new(
        id: LookupId,
        kind: LookupKind,
        target: Id,
        own: Id,
        cfg: &Config,
        now: Instant,
    ) -> Self {
        let k = cfg.table.k.max(1);
        Lookup {
            id,
            kind,
            target,
            own,
            cands: Vec::new(),
            k,
            alpha: cfg.alpha.max(1),
            max_cands: cfg.max_lookup_candidates.max(k),
            one_per_ip: cfg.table.restrict_ips,
            rtt_order: cfg.rtt_order,
            started: now,
            queries: 0,
            responses: 0,
            timeouts: 0,
            announced: 0,
            peers: HashSet::new(),
            phase: Phase::Search,
            blocked: false,
            advertise: false,
            keep: false,
            skip_put_holders: None,
            put_skipped: false,
            salt: Vec::new(),
            item: None,
            cas: None,
            put_refusals: Vec::new(),
            put_unanswered: 0,
            seen_seqs: Vec::new(),
            item_answers: 0,
            item_invalid: 0,
            blooms: None,
        }
    }

    /// An item from a `get` reply: kept if it checks out against the target and beats what
    /// we have (an immutable item: the first; a mutable one: a higher seq).
    /// A put's search phase only counts what the node had (see [`Lookup::item_report`]).
    pub(crate) fn offer_item(&mut self, r: &Response<'_>) {
        self.item_answers += 1;
        let Some(v) = r.v else { return };
        let salt = match (&self.kind, &self.item) {
            (LookupKind::PutItem, Some(i)) => i.signed.as_ref().map_or(&[][..], |s| &s.salt[..]),
            _ => &self.salt[..],
        };
        let Some(item) = Item::from_reply(&self.target, salt, v, r.k, r.sig, r.seq) else {
            self.item_invalid += 1;
            return;
        };
        self.seen_seqs.push(item.seq().unwrap_or(0));
        if self.kind != LookupKind::GetItem {
            return;
        }
        let better = match (&self.item, item.seq()) {
            (None, _) => true,
            (Some(have), Some(seq)) => have.seq().is_some_and(|h| seq > h),
            (Some(_), None) => false,
        };
        if better {
            self.item = Some(item);
        }
    }

    /// What the nodes asked had, against the item found (get) or put (put).
    pub(crate) fn item_report(&self) -> crate::event::ItemReport {
        let current = self.item.as_ref().map(|i| i.seq().unwrap_or(0));
        let mut r = crate::event::ItemReport {
            answered: self.item_answers,
            invalid: self.item_invalid,
            ..Default::default()
        };
        for &s in &self.seen_seqs {
            match current {
                Some(c) if s == c => r.current += 1,
                Some(c) if s < c => r.older += 1,
                _ => r.newer += 1,
            }
        }
        r.without = r
            .answered
            .saturating_sub(r.invalid + self.seen_seqs.len() as u32);
        r
    }

    /// The query that stores what this lookup is for at a node that gave us `token`: an
    /// `announce_peer` or a BEP 44 `put`.
    pub(crate) fn store_request(&self, token: Vec<u8>) -> Option<Request> {
        match self.kind {
            LookupKind::Announce { port, seed } => {
                Some(Request::announce_peer(self.target, port, token, seed))
            }
            LookupKind::PutItem => Some(Request::put(token, self.item.as_ref()?, self.cas)),
            _ => None,
        }
    }

    /// Our id changed (BEP 42): never ask it.
    pub(crate) fn set_own(&mut self, own: Id) {
        self.own = own;
        self.cands.retain(|c| c.id != Some(own));
    }

    fn dist(&self, id: Option<Id>) -> Distance {
        id.map_or(Distance::MAX, |i| i.distance(&self.target))
    }

    /// Adds a candidate unless it is known (by IP or id), is us, or is farther than every
    /// candidate in a full list. One candidate per IP: a host that claims many ids (a Sybil)
    /// gets one place in a lookup, as in libtorrent. `rtt` is its round trip to us, when the
    /// routing table knows it.
    pub(crate) fn add(&mut self, id: Option<Id>, addr: SocketAddr, rtt: Option<Duration>) {
        let same_host = |c: &Candidate| {
            if self.one_per_ip {
                c.addr.ip() == addr.ip()
            } else {
                c.addr == addr
            }
        };
        if id == Some(self.own)
            || self
                .cands
                .iter()
                .any(|c| same_host(c) || (id.is_some() && c.id == id))
        {
            return;
        }
        let dist = self.dist(id);
        if self.cands.len() >= self.max_cands {
            // Make room: a failed candidate first, wherever it is (it will never be asked
            // again; keeping it would let a flood of dead addresses near the target crowd out
            // the live ones behind it), else the farthest fresh one, if farther than this.
            if let Some(pos) = self.cands.iter().rposition(|c| c.state == State::Failed) {
                self.cands.remove(pos);
            } else {
                let Some(pos) = self.cands.iter().rposition(|c| c.state == State::Fresh) else {
                    return;
                };
                if self.cands[pos].dist <= dist {
                    return;
                }
                self.cands.remove(pos);
            }
        }
        let at = self.cands.partition_point(|c| c.dist <= dist);
        self.cands.insert(
            at,
            Candidate {
                id,
                addr,
                dist,
                rtt_ms: rtt.map_or(0, |r| r.as_millis().clamp(1, u16::MAX as u128 - 1) as u16),
                state: State::Fresh,
            },
        );
    }

    /// How many answers a search wants: k, or 2k for a get_peers that has found no peer yet
    /// (or a get of an item that has found none)
    /// (the nodes that hold the peers may sit just beyond the k closest, after churn brought
    /// newcomers closer to the infohash, or liars crowded in).
    /// BEP 44 lookups count only the nodes that can store items towards their k (those that
    /// give a token for `get`; a BEP 5-only node answers it as find_node, without one): the
    /// item is on the closest of those.
    fn storing_only(&self) -> bool {
        matches!(self.kind, LookupKind::GetItem | LookupKind::PutItem)
    }

    fn wanted(&self) -> usize {
        let nothing_yet = match self.kind {
            LookupKind::GetPeers => self.peers.is_empty(),
            LookupKind::GetItem => self.item.is_none(),
            // Announces scatter over more than the k closest: a scrape asks twice as many.
            LookupKind::Scrape => true,
            _ => false,
        };
        if nothing_yet {
            2 * self.k
        } else {
            self.k
        }
    }

    fn in_flight_fast(&self) -> usize {
        self.cands
            .iter()
            .filter(|c| c.state == State::InFlight { slow: false })
            .count()
    }

    /// The next candidate to query that `may_send` allows, marked in flight; `None` if α are
    /// in flight or no candidate is worth asking. Candidates `may_send` refuses stay fresh and
    /// set [`Lookup::blocked`](Self) so the caller can try again later.
    pub(crate) fn next_query(
        &mut self,
        mut may_send: impl FnMut(&SocketAddr) -> bool,
    ) -> Option<(Option<Id>, SocketAddr)> {
        self.blocked = false;
        if self.phase != Phase::Search {
            return None;
        }
        // The endgame: once k candidates have answered, the few closer ones still to ask are
        // asked together (up to k in flight) rather than α at a time, so that a cluster of
        // dead or fake addresses near the target costs one slow timeout, not one per α.
        let total = self
            .cands
            .iter()
            .filter(|c| matches!(c.state, State::Responded { .. }))
            .count();
        let wanted = self.wanted();
        let width = if total >= self.k {
            self.k.max(self.alpha)
        } else {
            self.alpha
        };
        if self.in_flight_fast() >= width {
            return None;
        }
        // Walk from the closest; the first candidate that may be asked sets the distance
        // class, and (with `rtt_order`) the fastest known of that class is asked.
        let storing_only = self.storing_only();
        let mut responded = 0;
        let mut pick: Option<(usize, u16, usize)> = None;
        for (i, c) in self.cands.iter().enumerate() {
            if pick.is_some_and(|(_, _, p)| c.prefix() != p) {
                break;
            }
            match &c.state {
                State::Responded { token } => {
                    if storing_only && token.is_none() {
                        continue;
                    }
                    responded += 1;
                    if responded >= wanted {
                        break;
                    }
                }
                State::Fresh => {
                    if !may_send(&c.addr) {
                        self.blocked = true;
                        continue;
                    }
                    let key = c.rtt_key();
                    match pick {
                        None => {
                            pick = Some((i, key, c.prefix()));
                            if !self.rtt_order {
                                break;
                            }
                        }
                        Some((_, best, p)) if key < best => pick = Some((i, key, p)),
                        Some(_) => {}
                    }
                }
                _ => {}
            }
        }
        let (i, _, _) = pick?;
        let c = &mut self.cands[i];
        c.state = State::InFlight { slow: false };
        Some((c.id, c.addr))
    }

    fn find(&mut self, addr: &SocketAddr) -> Option<usize> {
        self.cands.iter().position(|c| c.addr == *addr)
    }

    /// A candidate answered. If its id was unknown (a bootstrap address) it moves to its place.
    pub(crate) fn on_response(&mut self, addr: &SocketAddr, id: Id, token: Option<&[u8]>) {
        self.responses += 1;
        let Some(i) = self.find(addr) else { return };
        let token = token.map(|t| t.to_vec().into_boxed_slice());
        if self.cands[i].id != Some(id) {
            let mut c = self.cands.remove(i);
            if id == self.own || self.cands.iter().any(|o| o.id == Some(id)) {
                return;
            }
            c.id = Some(id);
            c.dist = self.dist(Some(id));
            c.state = State::Responded { token };
            let at = self.cands.partition_point(|o| o.dist <= c.dist);
            self.cands.insert(at, c);
        } else {
            self.cands[i].state = State::Responded { token };
        }
    }

    /// One of our announces was acknowledged (`acked`) or failed (error or timeout).
    pub(crate) fn announce_done(&mut self, acked: bool) {
        if let Phase::Announce { pending } = &mut self.phase {
            *pending = pending.saturating_sub(1);
            self.announced += acked as usize;
        }
    }

    /// A candidate passed the short timeout.
    pub(crate) fn on_slow(&mut self, addr: &SocketAddr) {
        if let Some(i) = self.find(addr) {
            if let State::InFlight { .. } = self.cands[i].state {
                self.cands[i].state = State::InFlight { slow: true };
            }
        }
    }

    /// A candidate failed (timed out for good, or answered with an error).
    pub(crate) fn on_failed(&mut self, addr: &SocketAddr) {
        if let Some(i) = self.find(addr) {
            if let State::InFlight { .. } | State::Fresh = self.cands[i].state {
                self.cands[i].state = State::Failed;
            }
        }
    }

    /// True if a lost query to the candidate at `addr` is worth sending again: fewer than the
    /// answers the search wants have come from closer candidates, so its answer could still
    /// change the result. (Counting only answers, not closer candidates still to be asked,
    /// keeps a crowd of fake addresses next to the target from starving real nodes of their
    /// retries under loss.)
    pub(crate) fn worth_retry(&self, addr: &SocketAddr) -> bool {
        let wanted = self.wanted();
        let mut responded = 0;
        for c in &self.cands {
            if c.addr == *addr {
                return true;
            }
            if matches!(c.state, State::Responded { .. }) {
                responded += 1;
                if responded >= wanted {
                    return false;
                }
            }
        }
        false
    }

    /// True when the search phase is over: walking the candidates from the closest, k have
    /// answered before any that is still to be asked or waited for. Once k candidates have
    /// answered at all, a query past its slow timeout is not waited for (its node is most
    /// likely gone; a late answer still feeds the routing table).
    pub(crate) fn search_done(&self) -> bool {
        let total = self
            .cands
            .iter()
            .filter(|c| matches!(c.state, State::Responded { .. }))
            .count();
        // Only a get_peers that has found peers stops waiting for its slow queries: its answer
        // is in hand. A lookup whose result is the closest nodes (find_node, an announce's
        // targets, bootstrap) waits for them, retransmissions included, to be exact; so does
        // a get_peers with no peer yet (the node that holds them may be the slow one).
        if self.kind == LookupKind::GetItem
            && self.item.as_ref().is_some_and(|i| i.signed.is_none())
        {
            // An immutable item is the item: one copy that hashes right is all there is.
            return true;
        }
        let skip_slow =
            total >= self.k && matches!(self.kind, LookupKind::GetPeers) && !self.peers.is_empty();
        let wanted = self.wanted();
        let storing_only = self.storing_only();
        let mut responded = 0;
        for c in &self.cands {
            match &c.state {
                State::Responded { token } => {
                    if storing_only && token.is_none() {
                        continue;
                    }
                    responded += 1;
                    if responded >= wanted {
                        return true;
                    }
                }
                State::Failed => {}
                State::InFlight { slow: true } if skip_slow => {}
                State::InFlight { .. } | State::Fresh => return false,
            }
        }
        true
    }

    /// Where to announce or put: k of the nodes that answered with a token, nodes whose ids
    /// match their addresses (BEP 42; local addresses count as matching) first, closest
    /// first, from the 2k closest; then the closest others to make up k.
    pub(crate) fn store_targets(&self) -> Vec<(Id, SocketAddr, &[u8])> {
        let with_token: Vec<(Id, SocketAddr, &[u8])> = self
            .cands
            .iter()
            .filter_map(|c| match &c.state {
                State::Responded { token: Some(t) } => Some((c.id?, c.addr, &t[..])),
                _ => None,
            })
            .take(2 * self.k)
            .collect();
        let (mut out, rest): (Vec<_>, Vec<_>) = with_token
            .into_iter()
            .partition(|(id, addr, _)| crate::bep42::id_matches(id, addr.ip()));
        out.truncate(self.k);
        let room = self.k - out.len();
        out.extend(rest.into_iter().take(room));
        out.sort_by_key(|(id, _, _)| id.distance(&self.target));
        out
    }

    /// The token the candidate at `addr` gave us, if it answered with one.
    pub(crate) fn token_of(&self, addr: &SocketAddr) -> Option<&[u8]> {
        self.cands.iter().find_map(|c| match &c.state {
            State::Responded { token: Some(t) } if c.addr == *addr => Some(&t[..]),
            _ => None,
        })
    }

    /// The ids of the k closest candidates, whether they answered or not (for the size
    /// estimate: nodes behind NAT never answer a lookup, yet they are part of the DHT and
    /// others name them).
    pub(crate) fn closest_heard(&self) -> impl Iterator<Item = Id> + '_ {
        self.cands.iter().filter_map(|c| c.id).take(self.k)
    }

    /// The k closest candidates that answered, with the tokens they gave.
    pub(crate) fn closest_responded(
        &self,
    ) -> impl Iterator<Item = (Id, SocketAddr, Option<&[u8]>)> {
        self.cands
            .iter()
            .filter_map(|c| match &c.state {
                State::Responded { token } => Some((c.id?, c.addr, token.as_deref())),
                _ => None,
            })
            .take(self.k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(i: u8) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, i], 1))
    }

    fn cfg(k: usize, alpha: usize) -> Config {
        let mut c = Config {
            alpha,
            max_lookup_candidates: 10,
            ..Config::default()
        };
        c.table.k = k;
        c
    }

    #[test]
    fn alpha_and_termination() {
        let target = Id([0; 20]);
        let mut l = Lookup::new(
            LookupId(1),
            LookupKind::FindNode,
            target,
            Id([0xff; 20]),
            &cfg(2, 2),
            Instant::ZERO,
        );
        for i in 1..=5u8 {
            l.add(Some(Id([i; 20])), a(i), None);
        }
        let q1 = l.next_query(|_| true).unwrap();
        let q2 = l.next_query(|_| true).unwrap();
        assert_eq!((q1.1, q2.1), (a(1), a(2)));
        assert!(l.next_query(|_| true).is_none(), "alpha = 2 in flight");
        l.on_slow(&a(1));
        assert_eq!(
            l.next_query(|_| true).unwrap().1,
            a(3),
            "slow query widens the window"
        );
        l.on_failed(&a(1));
        assert!(!l.search_done());
        l.on_response(&a(2), Id([2; 20]), None);
        l.on_response(&a(3), Id([3; 20]), Some(b"tok"));
        assert!(l.search_done(), "the two closest live candidates answered");
        let got: Vec<_> = l
            .closest_responded()
            .map(|(i, _, t)| (i, t.is_some()))
            .collect();
        assert_eq!(got, vec![(Id([2; 20]), false), (Id([3; 20]), true)]);
    }

    #[test]
    fn equally_distant_candidates_go_fastest_first() {
        let ms = |m: u64| Some(Duration::from_millis(m));
        let id = |b0: u8, b1: u8| {
            let mut b = [0u8; 20];
            b[0] = b0;
            b[1] = b1;
            Id(b)
        };
        let order = |rtt_order: bool| {
            let mut c = cfg(8, 1);
            c.rtt_order = rtt_order;
            let mut l = Lookup::new(
                LookupId(1),
                LookupKind::FindNode,
                Id([0; 20]),
                Id([0xff; 20]),
                &c,
                Instant::ZERO,
            );
            // Three share one leading bit with the target; the fourth shares none.
            l.add(Some(id(0x40, 0)), a(1), ms(200));
            l.add(Some(id(0x40, 1)), a(2), None);
            l.add(Some(id(0x41, 0)), a(3), ms(30));
            l.add(Some(id(0x80, 0)), a(4), ms(1));
            let mut got = Vec::new();
            while let Some((_, addr)) = l.next_query(|_| true) {
                got.push(addr.ip().to_string());
                l.on_failed(&addr);
            }
            got
        };
        let ip = |i: u8| a(i).ip().to_string();
        assert_eq!(
            order(true),
            vec![ip(3), ip(1), ip(2), ip(4)],
            "fastest known first within a distance class, unknown last; a farther class after"
        );
        assert_eq!(
            order(false),
            vec![ip(1), ip(2), ip(3), ip(4)],
            "by distance"
        );
    }

    #[test]
    fn retries_go_to_any_candidate_that_could_change_the_result() {
        let mut l = Lookup::new(
            LookupId(1),
            LookupKind::FindNode,
            Id([0; 20]),
            Id([0xff; 20]),
            &cfg(2, 8),
            Instant::ZERO,
        );
        // Three unanswered addresses closest to the target (fakes, say), then real nodes.
        for i in 1..=6u8 {
            l.add(Some(Id([i; 20])), a(i), None);
        }
        for _ in 1..=6 {
            l.next_query(|_| true).unwrap();
        }
        assert!(
            l.worth_retry(&a(5)),
            "nothing closer has answered: a lost query to the fifth is worth resending"
        );
        l.on_response(&a(4), Id([4; 20]), None);
        assert!(l.worth_retry(&a(5)), "one answer closer, k = 2");
        l.on_response(&a(2), Id([2; 20]), None);
        assert!(!l.worth_retry(&a(5)), "k closer answers: it cannot matter");
        assert!(
            l.worth_retry(&a(3)),
            "only one answer is closer than the third"
        );
    }

    #[test]
    fn blocked_candidates_wait_instead_of_failing() {
        let mut l = Lookup::new(
            LookupId(1),
            LookupKind::FindNode,
            Id([0; 20]),
            Id([0xff; 20]),
            &cfg(2, 3),
            Instant::ZERO,
        );
        l.add(Some(Id([1; 20])), a(1), None);
        l.add(Some(Id([2; 20])), a(2), None);
        assert_eq!(l.next_query(|x| *x != a(1)).unwrap().1, a(2));
        assert!(l.blocked);
        assert!(l.next_query(|x| *x != a(1)).is_none());
        assert!(
            !l.search_done(),
            "a blocked candidate keeps the lookup open"
        );
        assert_eq!(l.next_query(|_| true).unwrap().1, a(1));
        assert!(!l.blocked);
    }
}
