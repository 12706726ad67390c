//! Timers: transaction deadlines (slow marks, retransmissions, failures), token rotation,
//! table upkeep (pinging questionable nodes, trying cached ones), bucket refresh, bootstrap
//! retries and re-driving lookups that waited for send budget.

use std::net::SocketAddr;

use super::traverse::lookup_method;
use super::Node;
use crate::event::{Event, LookupId, LookupKind, RequestKind, RequestOutcome};
use crate::rpc::{Fired, Purpose};
use crate::{Id, Instant};

/// Questionable nodes pinged per maintenance tick.
const PINGS_PER_TICK: usize = 8;

impl Node {
    /// Handles every timer due at `now`. Calling it early or twice is harmless.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.advance(now);
        while let Some(fired) = self.txs.pop_due(now) {
            match fired {
                Fired::Slow(tid) => {
                    let Some(p) = self.txs.get(tid) else { continue };
                    if let Purpose::Lookup(lid) = p.purpose {
                        let addr = p.addr;
                        if let Some(l) = self.lookups.get_mut(&lid) {
                            l.on_slow(&addr);
                        }
                        self.drive_lookup(now, lid);
                    }
                }
                Fired::Timeout(tid) => self.on_timeout(now, tid),
            }
        }
        if now >= self.timers.rotate {
            self.tokens.rotate(&mut self.rng);
            self.timers.rotate = now + self.cfg.token_rotation;
        }
        if now >= self.timers.maintenance {
            self.timers.maintenance = now + self.cfg.maintenance_interval;
            self.maintenance(now);
        }
        if self.timers.redrive.is_some_and(|t| now >= t) {
            self.timers.redrive = None;
            let ids: Vec<LookupId> = self.lookups.keys().copied().collect();
            for lid in ids {
                self.drive_lookup(now, lid);
            }
        }
        if self.timers.rebootstrap.is_some_and(|t| now >= t) {
            self.start_bootstrap(now);
        }
        if now >= self.timers.refresh {
            self.timers.refresh = now + self.cfg.maintenance_interval * 6;
            self.refresh_buckets(now);
        }
    }

    fn on_timeout(&mut self, now: Instant, tid: u32) {
        let Some(p) = self.txs.get(tid).cloned() else {
            return;
        };
        if let Purpose::Lookup(lid) = p.purpose {
            let retry = p.kind != RequestKind::AnnouncePeer
                && p.attempts <= self.cfg.lookup_retries
                && self
                    .lookups
                    .get(&lid)
                    .is_some_and(|l| l.worth_retry(&p.addr));
            if retry {
                let target = self.lookups[&lid].target;
                let method = lookup_method(p.kind, target);
                if self.write_query(p.addr, tid, &method) {
                    let e = self.txs.get_mut(tid).expect("present");
                    e.attempts += 1;
                    e.deadline = now + self.cfg.query_timeout;
                    self.txs.rearm(tid);
                    return;
                }
            }
        }
        let p = self.txs.remove(tid).expect("present");
        self.stats.timeouts += 1;
        if p.purpose == Purpose::Verify {
            self.verifying.remove(&p.addr);
        }
        if let Some(id) = p.node_id {
            self.fail_node(&id, &p.addr);
        }
        match p.purpose {
            Purpose::Lookup(lid) => {
                self.lookup_query_failed(now, lid, p.kind, &p.addr, true);
            }
            Purpose::Request(rid) => self.emit(Event::RequestFinished {
                id: rid,
                addr: p.addr,
                kind: p.kind,
                outcome: RequestOutcome::Timeout,
            }),
            Purpose::Verify => {}
        }
    }

    fn maintenance(&mut self, now: Instant) {
        if let Some(store) = &mut self.store {
            store.expire(now);
        }
        // Ping questionable nodes, at most a few per tick, each at most once per minute.
        let mut due = std::mem::take(&mut self.scratch_nodes);
        self.table.take_questionable(
            now,
            self.cfg.maintenance_interval * 6,
            PINGS_PER_TICK,
            &mut due,
        );
        for (id, addr) in due.drain(..) {
            self.verify(now, Some(id), addr);
        }
        // Buckets with room: try nodes we only heard about.
        let candidates: Vec<(Id, SocketAddr)> = self
            .table
            .replacements()
            .filter(|r| r.last_response.is_none() && r.pinged.is_none())
            .map(|r| (r.id, r.addr))
            .take(PINGS_PER_TICK * 4)
            .collect();
        let mut pinged = 0;
        for (id, addr) in candidates {
            if pinged >= PINGS_PER_TICK {
                break;
            }
            if self.table.has_room_for(&id, &addr) && self.verify(now, Some(id), addr) {
                pinged += 1;
            }
        }
        self.scratch_nodes = due;
    }

    fn refresh_buckets(&mut self, now: Instant) {
        if self.table.is_empty() {
            return;
        }
        let idle = self.cfg.bucket_refresh;
        let stale: Vec<usize> = self.table.stale_buckets(now, idle).collect();
        self.refresh(now, stale);
    }

    /// Refreshes every bucket now (after bootstrap, for instance): one lookup per bucket.
    pub fn refresh_all(&mut self, now: Instant) {
        self.advance(now);
        self.refresh(now, (0..self.table.bucket_count()).collect());
    }

    /// One refresh lookup for a random id in each of `buckets`, while lookup slots last.
    fn refresh(&mut self, now: Instant, buckets: Vec<usize>) {
        for b in buckets {
            let target = self.table.random_id_in_bucket(b, &mut self.rng);
            self.table.touch_bucket(b, now);
            if self
                .start_lookup(now, LookupKind::Refresh, target, &[])
                .is_none()
            {
                break;
            }
        }
    }
}
