//! How the [`Search`] runs its lookups: starting them (held while the first bootstrap runs),
//! sending queries as [`Lookup::next_query`] allows, taking replies, timeouts and
//! retransmissions, the store phase (announce_peer or put to the closest with tokens), and
//! the result.

use std::net::SocketAddr;

use super::lookup::{Lookup, Phase, MAX_PEERS_PER_LOOKUP, REDRIVE_DELAY};
use super::{Ctx, Search};
use crate::event::{Event, LookupId, LookupKind, LookupResult};
use crate::krpc::{MethodKind, Request, Response};
use crate::node::rpc::{Outgoing, Pending, Purpose};
use crate::{compact, Id};

impl Search {
    /// Starts a lookup of `kind` for `target`, also asking the addresses in `via` (whose ids
    /// are unknown). While the first bootstrap runs, other lookups are held and start when it
    /// ends. `None` when [`Config::max_lookups`] lookups run or too many are held.
    pub(crate) fn start_lookup(
        &mut self,
        ctx: &mut Ctx<'_>,
        kind: LookupKind,
        target: Id,
        via: &[SocketAddr],
    ) -> Option<LookupId> {
        self.start_lookup_with(ctx, kind, target, via, |_| {})
    }

    /// [`Search::start_lookup`], with `prep` filling in what the lookup carries besides its
    /// kind and target (a BEP 44 salt or item) before it sends anything.
    pub(crate) fn start_lookup_with(
        &mut self,
        ctx: &mut Ctx<'_>,
        kind: LookupKind,
        target: Id,
        via: &[SocketAddr],
        prep: impl FnOnce(&mut Lookup),
    ) -> Option<LookupId> {
        if self.lookups.len() >= ctx.cfg.max_lookups {
            return None;
        }
        let hold = kind != LookupKind::Bootstrap && self.boot.holds_lookups();
        if hold && self.held_lookups() >= ctx.cfg.max_held_lookups {
            return None;
        }
        let lid = self.new_lookup_id();
        let mut l = Lookup::new(lid, kind, target, self.own, ctx.cfg, ctx.now);
        prep(&mut l);
        if hold {
            l.phase = Phase::Held;
            self.lookups.insert(lid, l);
            return Some(lid);
        }
        self.lookups.insert(lid, l);
        self.begin(ctx, lid, via);
        Some(lid)
    }

    pub(crate) fn held_lookups(&self) -> usize {
        self.lookups
            .values()
            .filter(|l| l.phase == Phase::Held)
            .count()
    }

    /// Starts every held lookup (the first bootstrap has ended).
    pub(crate) fn release_held(&mut self, ctx: &mut Ctx<'_>) {
        let held: Vec<LookupId> = self
            .lookups
            .values()
            .filter(|l| l.phase == Phase::Held)
            .map(|l| l.id)
            .collect();
        for lid in held {
            let l = self.lookups.get_mut(&lid).expect("present");
            l.phase = Phase::Search;
            l.started = ctx.now;
            self.begin(ctx, lid, &[]);
        }
    }

    /// Seeds a lookup with the closest nodes we know (and `via`), then drives it.
    fn begin(&mut self, ctx: &mut Ctx<'_>, lid: LookupId, via: &[SocketAddr]) {
        let l = self.lookups.get_mut(&lid).expect("present");
        self.table
            .closest(ctx.now, &l.target, l.k * 2, &mut self.scratch);
        for (id, addr) in &self.scratch {
            l.add(Some(*id), *addr, self.table.rtt_of(id));
        }
        for addr in via {
            if ctx.rpc.may_contact(addr, false) {
                l.add(None, *addr, None);
            }
        }
        self.drive(ctx, lid);
    }

    /// Sends what a lookup wants sent, and finishes it when it is done.
    pub(crate) fn drive(&mut self, ctx: &mut Ctx<'_>, lid: LookupId) {
        let now = ctx.now;
        loop {
            let Some(l) = self.lookups.get_mut(&lid) else {
                return;
            };
            if ctx.rpc.pending_full() {
                break;
            }
            let rpc = &mut *ctx.rpc;
            let next = l.next_query(|a| rpc.has_budget(now, a.ip()));
            if l.blocked {
                let at = now + REDRIVE_DELAY;
                self.timers.redrive = Some(self.timers.redrive.map_or(at, |r| r.min(at)));
            }
            let Some((id, addr)) = next else {
                break;
            };
            let method = l.kind.method(l.target);
            let sent = ctx.rpc.send(
                now,
                Outgoing {
                    addr,
                    node_id: id,
                    method: method.view(),
                    purpose: Purpose::Lookup(lid),
                    slow: true,
                    retries: ctx.cfg.lookup_retries,
                },
            );
            match sent {
                Some(_) => l.queries += 1,
                None => l.on_failed(&addr),
            }
        }
        let l = &self.lookups[&lid];
        match l.phase {
            Phase::Search if l.search_done() => {
                let held = l
                    .skip_put_holders
                    .is_some_and(|n| l.item_report().current >= n);
                if held {
                    if let Some(l) = self.lookups.get_mut(&lid) {
                        l.put_skipped = true;
                    }
                    self.finish(ctx, lid);
                } else if matches!(l.kind, LookupKind::Announce { .. } | LookupKind::PutItem) {
                    self.start_store(ctx, lid);
                } else {
                    self.finish(ctx, lid);
                }
            }
            Phase::Announce { pending: 0 } => self.finish(ctx, lid),
            _ => {}
        }
    }

    /// A lookup's query was answered: learn the nodes and peers it returned.
    pub(crate) fn lookup_response(
        &mut self,
        ctx: &mut Ctx<'_>,
        lid: LookupId,
        from: SocketAddr,
        p: &Pending,
        r: &Response<'_>,
    ) {
        let Some(l) = self.lookups.get_mut(&lid) else {
            return;
        };
        if matches!(p.kind, MethodKind::AnnouncePeer | MethodKind::Put) {
            l.announce_done(true);
            self.drive(ctx, lid);
            return;
        }
        l.on_response(&from, r.id, r.token);
        if matches!(l.kind, LookupKind::GetItem | LookupKind::PutItem) {
            l.offer_item(r);
        }
        if l.kind == LookupKind::Scrape {
            use crate::scrape::Bloom;
            let sd = r.bf_seeds.and_then(Bloom::from_wire);
            let pe = r.bf_peers.and_then(Bloom::from_wire);
            if sd.is_some() || pe.is_some() {
                let b = l.blooms.get_or_insert_with(Default::default);
                b.0.merge(&sd.unwrap_or_default());
                b.1.merge(&pe.unwrap_or_default());
            }
        }
        let raw = if self.v6 { r.nodes6 } else { r.nodes };
        let enforce = ctx.cfg.enforce_secure_ids;
        for (id, addr) in compact::nodes(raw.unwrap_or_default(), self.v6) {
            if ctx.rpc.may_contact(&addr, false) && !self.table.is_quarantined(ctx.now, &addr) {
                l.add(Some(id), addr, self.table.rtt_of(&id));
                if !enforce || crate::bep42::id_matches(&id, addr.ip()) {
                    self.table.heard_about(ctx.now, id, addr);
                }
            }
        }
        if let (
            Some(values),
            LookupKind::GetPeers | LookupKind::Announce { .. } | LookupKind::Scrape,
        ) = (&r.values, l.kind)
        {
            for peer in values.peers() {
                if peer.port() == 0 || l.peers.len() >= MAX_PEERS_PER_LOOKUP {
                    continue;
                }
                if l.peers.insert(peer) {
                    ctx.events.push(Event::PeerFound {
                        lookup: lid,
                        info_hash: l.target,
                        peer,
                        advertised: l.advertise,
                    });
                }
            }
        }
        self.drive(ctx, lid);
    }

    /// A lookup's query got an error (`error`: its code) or no answer in time (`None`).
    pub(crate) fn lookup_failed(
        &mut self,
        ctx: &mut Ctx<'_>,
        lid: LookupId,
        p: &Pending,
        failure: Option<(i64, &[u8])>,
    ) {
        let Some(l) = self.lookups.get_mut(&lid) else {
            return;
        };
        let error = failure.map(|f| f.0);
        let timed_out = error.is_none();
        if matches!(p.kind, MethodKind::AnnouncePeer | MethodKind::Put) {
            l.announce_done(false);
            match failure {
                None if p.kind == MethodKind::Put => l.put_unanswered += 1,
                Some((code, msg))
                    if p.kind == MethodKind::Put
                        && l.put_refusals.len() < crate::event::MAX_PUT_REFUSALS =>
                {
                    l.put_refusals.push(crate::event::PutRefusal {
                        addr: p.addr,
                        id: p.node_id,
                        code,
                        message: String::from_utf8_lossy(&msg[..msg.len().min(100)]).into_owned(),
                    });
                }
                _ => {}
            }
        } else {
            // A server or protocol error (202, 203) to a query we know was well formed most
            // likely means the query was damaged on the way: ask again, from the same retries
            // a lost query gets, while its answer could still change the result.
            let damaged = matches!(error, Some(202 | 203));
            let resent = damaged && p.retries > 0 && l.worth_retry(&p.addr) && {
                let method = l.kind.method(l.target);
                ctx.rpc
                    .send(
                        ctx.now,
                        Outgoing {
                            addr: p.addr,
                            node_id: p.node_id,
                            method: method.view(),
                            purpose: Purpose::Lookup(lid),
                            slow: true,
                            retries: p.retries - 1,
                        },
                    )
                    .is_some()
            };
            if resent {
                l.queries += 1;
            } else {
                l.timeouts += timed_out as u32;
                l.on_failed(&p.addr);
            }
        }
        self.drive(ctx, lid);
    }

    /// A lookup's query passed the short timeout: let one more go out beside it.
    pub(crate) fn lookup_slow(&mut self, ctx: &mut Ctx<'_>, lid: LookupId, addr: &SocketAddr) {
        if let Some(l) = self.lookups.get_mut(&lid) {
            l.on_slow(addr);
            self.drive(ctx, lid);
        }
    }

    /// A lookup's query timed out: send it again if the node is still among the k closest
    /// and retries are left. True if it went out again.
    pub(crate) fn lookup_retry(&mut self, ctx: &mut Ctx<'_>, lid: LookupId, tid: u32) -> bool {
        let (Some(l), Some(p)) = (self.lookups.get(&lid), ctx.rpc.get(tid)) else {
            return false;
        };
        if matches!(p.kind, MethodKind::AnnouncePeer | MethodKind::Put) {
            // A lost announce or put is sent again with the token that node gave us: under
            // loss, the peer or item would otherwise be stored on fewer of the closest nodes.
            let Some(method) = l
                .token_of(&p.addr)
                .and_then(|token| l.store_request(token.to_vec()))
            else {
                return false;
            };
            return ctx.rpc.resend(ctx.now, tid, method.view());
        }
        if !l.worth_retry(&p.addr) {
            return false;
        }
        let method = l.kind.method(l.target);
        ctx.rpc.resend(ctx.now, tid, method.view())
    }

    /// The second phase of an announce or a put: the store query to each of the k closest
    /// nodes that gave us a token.
    fn start_store(&mut self, ctx: &mut Ctx<'_>, lid: LookupId) {
        let l = &self.lookups[&lid];
        let to: Vec<(Id, SocketAddr, Request)> = l
            .store_targets()
            .into_iter()
            .filter_map(|(id, addr, tok)| Some((id, addr, l.store_request(tok.to_vec())?)))
            .collect();
        let mut pending = 0;
        for (id, addr, method) in to {
            let sent = ctx.rpc.send(
                ctx.now,
                Outgoing {
                    addr,
                    node_id: Some(id),
                    method: method.view(),
                    purpose: Purpose::Lookup(lid),
                    slow: false,
                    retries: ctx.cfg.lookup_retries,
                },
            );
            if sent.is_some() {
                pending += 1;
                self.lookups.get_mut(&lid).expect("present").queries += 1;
            }
        }
        self.lookups.get_mut(&lid).expect("present").phase = Phase::Announce { pending };
        if pending == 0 {
            self.finish(ctx, lid);
        }
    }

    /// Ends lookup `lid` now, as if it had converged (its queries still in flight are
    /// answered into the table only). False if it is not running here.
    pub(crate) fn end_lookup(&mut self, ctx: &mut Ctx<'_>, lid: LookupId) -> bool {
        if !self.lookups.contains_key(&lid) {
            return false;
        }
        self.finish(ctx, lid);
        true
    }

    fn finish(&mut self, ctx: &mut Ctx<'_>, lid: LookupId) {
        let Some(l) = self.lookups.remove(&lid) else {
            return;
        };
        let now = ctx.now;
        let closest: Vec<(Id, SocketAddr)> = l
            .closest_responded()
            .map(|(id, addr, _)| (id, addr))
            .collect();
        self.size
            .record(&l.target, l.closest_heard(), ctx.cfg.table.k);
        if matches!(l.kind, LookupKind::Refresh | LookupKind::Bootstrap) {
            let b = self.table.bucket_index(&l.target);
            self.table.touch_bucket(b, now);
        }
        ctx.rpc
            .stats
            .lookups
            .record(now.saturating_since(l.started));
        let report = if matches!(l.kind, LookupKind::GetItem | LookupKind::PutItem) {
            l.item_report()
        } else {
            Default::default()
        };
        ctx.events
            .push(Event::LookupFinished(Box::new(LookupResult {
                id: lid,
                kind: l.kind,
                target: l.target,
                closest,
                peers_found: l.peers.len(),
                announced: l.announced,
                item_report: report,
                item: (l.kind == LookupKind::GetItem).then_some(l.item).flatten(),
                put_refusals: l.put_refusals,
                put_unanswered: l.put_unanswered,
                put_skipped: l.put_skipped,
                scrape: l.blooms.as_ref().map(|b| crate::event::ScrapeEstimate {
                    seeds: b.0.estimate(),
                    peers: b.1.estimate(),
                }),
                scrape_filters: l.blooms,
                queries: l.queries,
                responses: l.responses,
                timeouts: l.timeouts,
                duration: now.saturating_since(l.started),
            })));
        if l.kind == LookupKind::Bootstrap {
            self.bootstrap_finished(ctx, lid);
        }
        if l.keep {
            self.kept_item_checked(
                now,
                &l.target,
                report.current,
                l.announced,
                l.put_skipped,
                ctx.cfg,
            );
        }
    }
}
