//! Driving lookups: sending what a traversal wants sent, the announce phase, and reporting
//! the result.

use std::net::SocketAddr;
use std::time::Duration;

use super::Node;
use crate::event::{Event, LookupId, LookupKind, LookupResult, RequestKind};
use crate::krpc::Method;
use crate::lookup::Phase;
use crate::rpc::Purpose;
use crate::{Id, Instant};

/// How long a lookup waits before trying a node it may not send to yet.
const REDRIVE_DELAY: Duration = Duration::from_millis(250);

impl Node {
    /// Sends what a lookup wants sent and finishes it when it is done.
    pub(super) fn drive_lookup(&mut self, now: Instant, lid: LookupId) {
        loop {
            let Some(l) = self.lookups.get_mut(&lid) else {
                return;
            };
            if self.txs.len() >= self.cfg.max_pending {
                break;
            }
            let (limiter, budget) = (&mut self.dest_limiter, &mut self.query_budget);
            let next =
                l.next_query(|a| budget.would_allow(now) && limiter.would_allow(now, a.ip()));
            if l.blocked {
                let at = now + REDRIVE_DELAY;
                self.timers.redrive = Some(self.timers.redrive.map_or(at, |r| r.min(at)));
            }
            let Some((id, addr)) = next else {
                break;
            };
            let (kind, target) = (l.kind, l.target);
            let rk = match kind {
                LookupKind::GetPeers | LookupKind::Announce { .. } => RequestKind::GetPeers,
                _ => RequestKind::FindNode,
            };
            let method = lookup_method(rk, target);
            let sent = self.send_query(now, addr, id, rk, &method, Purpose::Lookup(lid), true);
            let l = self.lookups.get_mut(&lid).expect("present");
            match sent {
                Some(_) => l.queries += 1,
                None => l.on_failed(&addr),
            }
        }
        let l = &self.lookups[&lid];
        match l.phase {
            Phase::Search if l.search_done() => {
                if let LookupKind::Announce { port, seed } = l.kind {
                    self.start_announce(now, lid, port, seed);
                } else {
                    self.finish_lookup(now, lid);
                }
            }
            Phase::Announce { pending: 0 } => self.finish_lookup(now, lid),
            _ => {}
        }
    }

    /// A lookup's query got an error (`timed_out` false) or no answer in time.
    pub(super) fn lookup_query_failed(
        &mut self,
        now: Instant,
        lid: LookupId,
        kind: RequestKind,
        addr: &SocketAddr,
        timed_out: bool,
    ) {
        let Some(l) = self.lookups.get_mut(&lid) else {
            return;
        };
        if kind == RequestKind::AnnouncePeer {
            l.announce_done(false);
        } else {
            l.timeouts += timed_out as u32;
            l.on_failed(addr);
        }
        self.drive_lookup(now, lid);
    }

    fn start_announce(&mut self, now: Instant, lid: LookupId, port: Option<u16>, seed: bool) {
        let l = &self.lookups[&lid];
        let target = l.target;
        let to: Vec<(Id, SocketAddr, Vec<u8>)> = l
            .closest_responded()
            .filter_map(|(id, addr, tok)| Some((id, addr, tok?.to_vec())))
            .collect();
        let mut pending = 0;
        for (id, addr, token) in to {
            let method = Method::AnnouncePeer {
                info_hash: target,
                port: port.unwrap_or(0),
                implied_port: port.is_none(),
                token: &token,
                seed,
            };
            let sent = self.send_query(
                now,
                addr,
                Some(id),
                RequestKind::AnnouncePeer,
                &method,
                Purpose::Lookup(lid),
                false,
            );
            if sent.is_some() {
                pending += 1;
                self.lookups.get_mut(&lid).expect("present").queries += 1;
            }
        }
        self.lookups.get_mut(&lid).expect("present").phase = Phase::Announce { pending };
        if pending == 0 {
            self.finish_lookup(now, lid);
        }
    }

    fn finish_lookup(&mut self, now: Instant, lid: LookupId) {
        let Some(l) = self.lookups.remove(&lid) else {
            return;
        };
        let closest: Vec<(Id, SocketAddr)> = l
            .closest_responded()
            .map(|(id, addr, _)| (id, addr))
            .collect();
        if matches!(l.kind, LookupKind::Refresh | LookupKind::Bootstrap) {
            let b = self.table.bucket_index(&l.target);
            self.table.touch_bucket(b, now);
        }
        if l.kind == LookupKind::Bootstrap {
            self.bootstrap_finished(now);
        }
        self.emit(Event::LookupFinished(LookupResult {
            id: lid,
            kind: l.kind,
            target: l.target,
            closest,
            peers_found: l.peers.len(),
            announced: l.announced,
            queries: l.queries,
            responses: l.responses,
            timeouts: l.timeouts,
            duration: now.saturating_since(l.started),
        }));
    }
}

/// The query a lookup of this kind sends.
pub(super) fn lookup_method(kind: RequestKind, target: Id) -> Method<'static> {
    match kind {
        RequestKind::GetPeers => Method::GetPeers {
            info_hash: target,
            noseed: false,
            scrape: false,
        },
        RequestKind::SampleInfohashes => Method::SampleInfohashes { target },
        _ => Method::FindNode { target },
    }
}
