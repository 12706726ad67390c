//! Outstanding queries ("transactions") and their deadlines.
//!
//! Our transaction ids are 4 bytes (some peers, such as the `mainline` crate, drop any other
//! length). Deadlines sit in a min-heap; an entry whose transaction has gone or whose deadline
//! moved is stale and skipped, so no entry ever needs to be removed from the heap.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::SocketAddr;

use crate::event::{LookupId, RequestId};
use crate::krpc::MethodKind;
use crate::{Id, Instant};

/// Why we sent a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    /// Part of a lookup.
    Lookup(LookupId),
    /// A request the user asked for.
    Request(RequestId),
    /// Checking a node before it enters the table, or a questionable node in it.
    Verify,
}

#[derive(Debug, Clone)]
pub(crate) struct Pending {
    pub addr: SocketAddr,
    /// The id we believe the node has, if any.
    pub node_id: Option<Id>,
    pub kind: MethodKind,
    pub purpose: Purpose,
    pub sent: Instant,
    pub attempts: u8,
    /// Retransmissions still allowed when the query times out.
    pub retries: u8,
    /// When the query stops counting against α (lookups only).
    pub slow_at: Option<Instant>,
    pub deadline: Instant,
}

impl Pending {
    fn next_wake(&self) -> Instant {
        self.slow_at.map_or(self.deadline, |s| s.min(self.deadline))
    }
}

#[derive(Debug, Default)]
pub(crate) struct Transactions {
    map: HashMap<u32, Pending>,
    heap: BinaryHeap<Reverse<(Instant, u32)>>,
    next: u32,
}

/// What fired for a transaction.
pub(crate) enum Fired {
    Slow(u32),
    Timeout(u32),
}

impl Transactions {
    pub(crate) fn new(start: u32) -> Self {
        Transactions {
            next: start,
            ..Default::default()
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    pub(crate) fn insert(&mut self, p: Pending) -> u32 {
        let mut tid = self.next;
        while self.map.contains_key(&tid) {
            tid = tid.wrapping_add(1);
        }
        self.next = tid.wrapping_add(1);
        self.heap.push(Reverse((p.next_wake(), tid)));
        self.map.insert(tid, p);
        tid
    }

    pub(crate) fn get_mut(&mut self, tid: u32) -> Option<&mut Pending> {
        self.map.get_mut(&tid)
    }

    pub(crate) fn get(&self, tid: u32) -> Option<&Pending> {
        self.map.get(&tid)
    }

    /// Re-arms the heap after the caller changed `slow_at` or `deadline`.
    pub(crate) fn rearm(&mut self, tid: u32) {
        if let Some(p) = self.map.get(&tid) {
            self.heap.push(Reverse((p.next_wake(), tid)));
        }
    }

    pub(crate) fn remove(&mut self, tid: u32) -> Option<Pending> {
        let p = self.map.remove(&tid);
        self.release_if_idle();
        p
    }

    /// With nothing pending, gives back what a burst grew (an idle node keeps no buffers:
    /// a simulated network of a million nodes is mostly idle nodes).
    fn release_if_idle(&mut self) {
        if self.map.is_empty() && self.map.capacity() > 0 {
            self.map = HashMap::new();
        }
    }

    /// The earliest live deadline (stale heap entries are discarded on the way).
    pub(crate) fn next_deadline(&mut self) -> Option<Instant> {
        while let Some(Reverse((t, tid))) = self.heap.peek().copied() {
            match self.map.get(&tid) {
                Some(p) if p.next_wake() == t => return Some(t),
                _ => {
                    self.heap.pop();
                }
            }
        }
        if self.heap.capacity() > 0 {
            // Only stale entries were left.
            self.heap = BinaryHeap::new();
        }
        None
    }

    /// Pops one transaction event due at or before `now`.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<Fired> {
        let t = self.next_deadline()?;
        if t > now {
            return None;
        }
        let Reverse((_, tid)) = self.heap.pop().expect("peeked");
        let p = self.map.get_mut(&tid).expect("live");
        if p.slow_at.is_some_and(|s| s <= now && s < p.deadline) {
            p.slow_at = None;
            self.heap.push(Reverse((p.next_wake(), tid)));
            return Some(Fired::Slow(tid));
        }
        Some(Fired::Timeout(tid))
    }
}
