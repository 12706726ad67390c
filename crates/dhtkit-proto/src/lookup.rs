//! Iterative lookups (BEP 5 / Kademlia traversals).
//!
//! A lookup keeps candidates sorted by XOR distance to the target. It keeps up to α queries in
//! flight; a query that passes the short timeout stops counting against α, so one more can go
//! out while the slow one may still be answered. A candidate is worth querying only while fewer
//! than k closer candidates have answered, and the search is done when the k closest candidates
//! that have not failed have all answered (or nothing is left to ask).
//!
//! This type holds the traversal state only; [`crate::Node`] sends the queries and feeds the
//! answers back.

use std::collections::HashSet;
use std::net::SocketAddr;

use crate::event::{LookupId, LookupKind};
use crate::{Distance, Id, Instant};

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
    state: State,
}

/// Phase of a lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Search,
    Announce { pending: usize },
}

/// The state of one traversal.
#[derive(Debug, Clone)]
pub struct Lookup {
    pub(crate) id: LookupId,
    pub(crate) kind: LookupKind,
    pub(crate) target: Id,
    own: Id,
    cands: Vec<Candidate>,
    k: usize,
    alpha: usize,
    max_cands: usize,
    pub(crate) started: Instant,
    pub(crate) queries: u32,
    pub(crate) responses: u32,
    pub(crate) timeouts: u32,
    pub(crate) announced: usize,
    pub(crate) peers: HashSet<SocketAddr>,
    pub(crate) phase: Phase,
    /// A candidate was passed over because we may not send to it yet.
    pub(crate) blocked: bool,
}

impl Lookup {
    /// A lookup for `target` that never queries `own` (our id).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        id: LookupId,
        kind: LookupKind,
        target: Id,
        own: Id,
        k: usize,
        alpha: usize,
        max_cands: usize,
        now: Instant,
    ) -> Self {
        Lookup {
            id,
            kind,
            target,
            own,
            cands: Vec::new(),
            k: k.max(1),
            alpha: alpha.max(1),
            max_cands: max_cands.max(k),
            started: now,
            queries: 0,
            responses: 0,
            timeouts: 0,
            announced: 0,
            peers: HashSet::new(),
            phase: Phase::Search,
            blocked: false,
        }
    }

    fn dist(&self, id: Option<Id>) -> Distance {
        id.map_or(Distance::MAX, |i| i.distance(&self.target))
    }

    /// Adds a candidate unless it is known (by address or id), is us, or is farther than every
    /// candidate in a full list.
    pub(crate) fn add(&mut self, id: Option<Id>, addr: SocketAddr) {
        if id == Some(self.own)
            || self
                .cands
                .iter()
                .any(|c| c.addr == addr || (id.is_some() && c.id == id))
        {
            return;
        }
        let dist = self.dist(id);
        if self.cands.len() >= self.max_cands {
            // Make room by dropping the farthest candidate that is not in use.
            let Some(pos) = self
                .cands
                .iter()
                .rposition(|c| matches!(c.state, State::Fresh | State::Failed))
            else {
                return;
            };
            if self.cands[pos].dist <= dist {
                return;
            }
            self.cands.remove(pos);
        }
        let at = self.cands.partition_point(|c| c.dist <= dist);
        self.cands.insert(
            at,
            Candidate {
                id,
                addr,
                dist,
                state: State::Fresh,
            },
        );
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
        if self.phase != Phase::Search || self.in_flight_fast() >= self.alpha {
            return None;
        }
        let mut responded = 0;
        for c in &mut self.cands {
            match c.state {
                State::Responded { .. } => {
                    responded += 1;
                    if responded >= self.k {
                        return None;
                    }
                }
                State::Fresh => {
                    if !may_send(&c.addr) {
                        self.blocked = true;
                        continue;
                    }
                    c.state = State::InFlight { slow: false };
                    return Some((c.id, c.addr));
                }
                _ => {}
            }
        }
        None
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

    /// True if the candidate at `addr` is among the k closest that have not failed, so that a
    /// lost query to it is worth sending again.
    pub(crate) fn worth_retry(&self, addr: &SocketAddr) -> bool {
        self.cands
            .iter()
            .filter(|c| c.state != State::Failed)
            .take(self.k)
            .any(|c| c.addr == *addr)
    }

    /// True when the search phase is over.
    pub(crate) fn search_done(&self) -> bool {
        let mut live = self.cands.iter().filter(|c| c.state != State::Failed);
        let closest_all_answered = live
            .by_ref()
            .take(self.k)
            .all(|c| matches!(c.state, State::Responded { .. }));
        if closest_all_answered {
            return true;
        }
        // Otherwise continue while anything is in flight or worth asking.
        let mut responded = 0;
        for c in &self.cands {
            match c.state {
                State::InFlight { .. } => return false,
                State::Responded { .. } => {
                    responded += 1;
                    if responded >= self.k {
                        return true;
                    }
                }
                State::Fresh => return false,
                State::Failed => {}
            }
        }
        true
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

    /// This lookup's id.
    pub fn id(&self) -> LookupId {
        self.id
    }

    /// Number of candidates held.
    pub fn candidates(&self) -> usize {
        self.cands.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(i: u8) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, i], 1))
    }

    #[test]
    fn alpha_and_termination() {
        let target = Id([0; 20]);
        let mut l = Lookup::new(
            LookupId(1),
            LookupKind::FindNode,
            target,
            Id([0xff; 20]),
            2,
            2,
            10,
            Instant::ZERO,
        );
        for i in 1..=5u8 {
            l.add(Some(Id([i; 20])), a(i));
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
    fn blocked_candidates_wait_instead_of_failing() {
        let mut l = Lookup::new(
            LookupId(1),
            LookupKind::FindNode,
            Id([0; 20]),
            Id([0xff; 20]),
            2,
            3,
            10,
            Instant::ZERO,
        );
        l.add(Some(Id([1; 20])), a(1));
        l.add(Some(Id([2; 20])), a(2));
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
