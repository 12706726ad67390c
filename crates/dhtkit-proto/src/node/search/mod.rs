//! The Search part, one per address family: the routing table and everything that keeps it
//! and uses it — lookups ([`lookup`]), bootstrap ([`bootstrap`]), table upkeep and bucket
//! refresh ([`upkeep`]), and advertised infohashes ([`advertise`]).
//!
//! It sends through the [`Rpc`] part and reports through the event queue, both lent to it for
//! each call in a [`Ctx`].

mod advertise;
mod bootstrap;
mod drive;
mod lookup;
mod upkeep;

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;

use rand::rngs::SmallRng;

use super::rpc::{Outgoing, Pending, Purpose, Rpc};
use crate::event::{Event, EventQueue, LookupId};
use crate::krpc::{Method, Response};
use crate::routing::{NodeEntry, RoutingTable};
use crate::{Config, Id, Instant};

pub use advertise::Advert;
use advertise::Adverts;
use bootstrap::Boot;
use lookup::Lookup;

/// What a part needs from the rest of the node for one call.
pub(crate) struct Ctx<'a> {
    pub now: Instant,
    pub cfg: &'a Config,
    pub rpc: &'a mut Rpc,
    pub events: &'a mut EventQueue,
    pub rng: &'a mut SmallRng,
}

#[derive(Debug, Clone, Copy)]
struct Timers {
    /// Questionable nodes are pinged, replacements tried.
    maintenance: Instant,
    /// Idle buckets are refreshed.
    refresh: Instant,
    /// Lookups waiting for send budget are driven again.
    redrive: Option<Instant>,
    /// The next node of the table is checked ([`Config::stale_ping_interval`]).
    stale_ping: Option<Instant>,
}

#[derive(Debug)]
pub(crate) struct Search {
    v6: bool,
    own: Id,
    table: RoutingTable,
    lookups: BTreeMap<LookupId, Lookup>,
    /// Lookup ids step by two: IPv4 searches use odd ids, IPv6 ones even ids.
    next_lookup: u64,
    /// Addresses we are pinging before they may enter the table.
    verifying: HashSet<SocketAddr>,
    boot: Boot,
    adverts: Adverts,
    timers: Timers,
    scratch: Vec<(Id, SocketAddr)>,
    /// The DHT's size, from the distances our lookups ended at.
    size: crate::size::SizeEstimator,
}

/// An empty table of the family's nodes (an IPv4 one stores its addresses in less memory).
fn table_for(v6: bool, own: Id, cfg: &Config, now: Instant) -> RoutingTable {
    if v6 {
        RoutingTable::new(own, cfg.table, now)
    } else {
        RoutingTable::new_ipv4(own, cfg.table, now)
    }
}

impl Search {
    pub(crate) fn new(v6: bool, own: Id, cfg: &Config, now: Instant) -> Search {
        Search {
            v6,
            own,
            table: table_for(v6, own, cfg, now),
            lookups: BTreeMap::new(),
            next_lookup: if v6 { 2 } else { 1 },
            verifying: HashSet::new(),
            boot: Boot::default(),
            adverts: Adverts::default(),
            timers: Timers {
                maintenance: now + cfg.maintenance_interval,
                refresh: now + cfg.maintenance_interval * 6,
                redrive: None,
                stale_ping: (!cfg.stale_ping_interval.is_zero())
                    .then(|| now + cfg.stale_ping_interval),
            },
            scratch: Vec::new(),
            size: Default::default(),
        }
    }

    /// The estimated number of nodes in this family's DHT, once a few lookups have ended.
    pub(crate) fn size_estimate(&self) -> Option<u64> {
        self.size.estimate()
    }

    /// Takes a new node id (BEP 42): the table is rebuilt around it with the nodes it held
    /// (their buckets depend on our id), and lookups going on skip the new id.
    pub(crate) fn set_own(&mut self, own: Id, cfg: &Config, now: Instant) {
        let mut table = table_for(self.v6, own, cfg, now);
        for e in self.table.iter() {
            table.restore(now, e.id, e.addr);
        }
        self.table = table;
        self.own = own;
        for l in self.lookups.values_mut() {
            l.set_own(own);
        }
    }

    pub(crate) fn is_v6(&self) -> bool {
        self.v6
    }

    pub(crate) fn table(&self) -> &RoutingTable {
        &self.table
    }

    pub(crate) fn lookups_running(&self) -> usize {
        self.lookups.len()
    }

    fn new_lookup_id(&mut self) -> LookupId {
        let id = LookupId(self.next_lookup);
        self.next_lookup += 2;
        id
    }

    /// A response to one of our queries to a node of this family arrived: the node proved it
    /// is alive, so the table learns it; a lookup's answer goes on to the lookup.
    pub(crate) fn on_response(
        &mut self,
        ctx: &mut Ctx<'_>,
        from: SocketAddr,
        p: &Pending,
        r: &Response<'_>,
    ) {
        if p.purpose == Purpose::Verify {
            self.verified(&p.addr);
        }
        if r.id == self.own {
            // We asked ourselves (others still list us under an id we had before BEP 42
            // gave us a new one, say): a lookup must not wait for that candidate.
            if let Purpose::Lookup(lid) = p.purpose {
                if let Some(l) = self.lookups.get_mut(&lid) {
                    l.on_failed(&from);
                }
                self.drive(ctx, lid);
            }
            return;
        }
        if let Some(old) = p.node_id.filter(|id| *id != r.id) {
            // The node at this address has a new id: the old entry is stale.
            self.fail_node(ctx, &old, &from);
        }
        let rtt = ctx.now.saturating_since(p.sent);
        ctx.rpc.observe_rtt(p, ctx.now);
        // BEP 42 enforced: a node whose id does not match its address stays out of the table
        // (its answer still serves the lookup that asked).
        let admissible = !ctx.cfg.enforce_secure_ids || crate::bep42::id_matches(&r.id, from.ip());
        let seen = if admissible {
            self.table.node_seen(ctx.now, r.id, from, Some(rtt))
        } else {
            Default::default()
        };
        if seen.added {
            ctx.events.push(Event::NodeAdded {
                id: r.id,
                addr: from,
            });
        }
        if let Some(old) = seen.removed {
            ctx.events.push(Event::NodeRemoved {
                id: old.id,
                addr: old.addr,
            });
        }
        if let Some((qid, qaddr)) = seen.ping {
            self.verify(ctx, Some(qid), qaddr);
        }
        if let Purpose::Lookup(lid) = p.purpose {
            self.lookup_response(ctx, lid, from, p, r);
        }
    }

    /// A KRPC error answered one of our queries.
    pub(crate) fn on_error(&mut self, ctx: &mut Ctx<'_>, p: &Pending, code: i64, msg: &[u8]) {
        match p.purpose {
            Purpose::Verify => {
                self.verified(&p.addr);
            }
            Purpose::Lookup(lid) => self.lookup_failed(ctx, lid, p, Some((code, msg))),
            Purpose::Request(_) => {}
        }
    }

    /// One of our queries timed out. Returns true if it was sent again (the transaction stays
    /// open); otherwise the caller closes it and calls [`Search::on_timeout`].
    pub(crate) fn retry(&mut self, ctx: &mut Ctx<'_>, tid: u32) -> bool {
        match ctx.rpc.get(tid).map(|p| p.purpose) {
            Some(Purpose::Lookup(lid)) => self.lookup_retry(ctx, lid, tid),
            _ => false,
        }
    }

    /// One of our queries timed out for good.
    pub(crate) fn on_timeout(&mut self, ctx: &mut Ctx<'_>, p: &Pending) {
        if p.purpose == Purpose::Verify {
            self.verified(&p.addr);
        }
        if let Some(id) = p.node_id {
            self.fail_node(ctx, &id, &p.addr);
        }
        if let Purpose::Lookup(lid) = p.purpose {
            self.lookup_failed(ctx, lid, p, None);
        }
    }

    /// A query passed the short timeout.
    pub(crate) fn on_slow(&mut self, ctx: &mut Ctx<'_>, purpose: Purpose, addr: &SocketAddr) {
        if let Purpose::Lookup(lid) = purpose {
            self.lookup_slow(ctx, lid, addr);
        }
    }

    /// A node of this family sent us a query: it is alive, and may belong in the table.
    pub(crate) fn node_queried(&mut self, ctx: &mut Ctx<'_>, id: Id, from: SocketAddr) {
        if id == self.own {
            return;
        }
        self.table.node_queried(ctx.now, &id, &from);
        if self.table.get(&id).is_none() && ctx.rpc.may_contact(&from, false) {
            self.consider(ctx, id, from);
        }
    }

    /// A node we have not verified showed up: ping it if the table has room for it, otherwise
    /// remember it in the replacement cache.
    fn consider(&mut self, ctx: &mut Ctx<'_>, id: Id, addr: SocketAddr) {
        if self.table.has_room_for(&id, &addr) {
            self.verify(ctx, Some(id), addr);
        } else if !ctx.cfg.enforce_secure_ids || crate::bep42::id_matches(&id, addr.ip()) {
            // (A cached node can be promoted without answering again: with BEP 42 enforced,
            // only one whose id matches its address may wait.)
            self.table.heard_about(ctx.now, id, addr);
        }
    }

    /// A check of `addr` ended; with none left, the set's room is given back.
    fn verified(&mut self, addr: &SocketAddr) {
        self.verifying.remove(addr);
        if self.verifying.is_empty() && self.verifying.capacity() > 0 {
            self.verifying = Default::default();
        }
    }

    /// Pings a node to see whether it belongs in the table. False if it was not sent (already
    /// being checked, too many checks at once, or no budget).
    pub(crate) fn verify(&mut self, ctx: &mut Ctx<'_>, id: Option<Id>, addr: SocketAddr) -> bool {
        if self.verifying.contains(&addr) || self.verifying.len() >= ctx.cfg.max_pending / 4 {
            return false;
        }
        let sent = ctx
            .rpc
            .send(
                ctx.now,
                Outgoing {
                    addr,
                    node_id: id,
                    method: Method::Ping,
                    purpose: Purpose::Verify,
                    slow: false,
                    retries: 0,
                },
            )
            .is_some();
        if sent {
            self.verifying.insert(addr);
        }
        sent
    }

    fn fail_node(&mut self, ctx: &mut Ctx<'_>, id: &Id, addr: &SocketAddr) {
        let f = self.table.node_failed(ctx.now, id, addr);
        if let Some(old) = f.removed {
            ctx.events.push(Event::NodeRemoved {
                id: old.id,
                addr: old.addr,
            });
        }
        if let Some(new) = f.promoted {
            ctx.events.push(Event::NodeAdded {
                id: new.id,
                addr: new.addr,
            });
            if new.last_response.is_none() {
                // Promoted without proof of life: check it.
                self.verify(ctx, Some(new.id), new.addr);
            }
        }
    }

    /// Adds saved nodes to the table without contacting them. Returns how many were added.
    pub(crate) fn import(&mut self, ctx: &mut Ctx<'_>, nodes: &[(Id, SocketAddr)]) -> usize {
        let mut added = 0;
        for (id, addr) in nodes {
            if addr.is_ipv6() == self.v6
                && ctx.rpc.may_contact(addr, false)
                && self.table.restore(ctx.now, *id, *addr)
            {
                added += 1;
                ctx.events.push(Event::NodeAdded {
                    id: *id,
                    addr: *addr,
                });
            }
        }
        added
    }

    /// Nodes known to answer, entered as if each had just answered us (`rtt` its round trip).
    pub(crate) fn import_verified(
        &mut self,
        ctx: &mut Ctx<'_>,
        nodes: &[(Id, SocketAddr, Option<std::time::Duration>)],
    ) -> usize {
        let mut added: usize = 0;
        for &(id, addr, rtt) in nodes {
            if addr.is_ipv6() != self.v6 || !ctx.rpc.may_contact(&addr, false) {
                continue;
            }
            let seen = self.table.import_seen(ctx.now, id, addr, rtt);
            if let Some(r) = rtt {
                ctx.rpc.observe_rtt_sample(r);
            }
            if seen.added {
                added += 1;
                ctx.events.push(Event::NodeAdded { id, addr });
            }
            if let Some(old) = seen.removed {
                // A faster node displaced one (imported before it, most likely).
                added = added.saturating_sub(1);
                ctx.events.push(Event::NodeRemoved {
                    id: old.id,
                    addr: old.addr,
                });
            }
        }
        added
    }

    /// The nodes worth remembering (good and questionable ones, not bad ones), most recently
    /// heard from first.
    /// Frees the scratch buffer (it grows again when next used).
    pub(crate) fn release(&mut self) {
        self.scratch = Vec::new();
    }

    pub(crate) fn export(&self, cfg: &Config) -> Vec<(Id, SocketAddr)> {
        let mut nodes: Vec<NodeEntry> = self
            .table
            .iter()
            .filter(|e| e.failures < cfg.table.max_failures)
            .collect();
        nodes.sort_by_key(|e| std::cmp::Reverse(e.last_response));
        nodes.into_iter().map(|e| (e.id, e.addr)).collect()
    }

    /// When [`Search::handle_timeout`] should next run.
    pub(crate) fn next_timeout(&self) -> Instant {
        let t = &self.timers;
        [
            t.redrive,
            t.stale_ping,
            self.boot.next_retry(),
            self.next_announce(),
        ]
        .into_iter()
        .flatten()
        .fold(t.maintenance.min(t.refresh), Instant::min)
    }

    /// Runs every timer due at `now`.
    pub(crate) fn handle_timeout(&mut self, ctx: &mut Ctx<'_>) {
        let now = ctx.now;
        if self.timers.stale_ping.is_some_and(|t| now >= t) {
            self.timers.stale_ping = Some(now + ctx.cfg.stale_ping_interval);
            self.ping_stalest(ctx);
        }
        if now >= self.timers.maintenance {
            self.timers.maintenance = now + ctx.cfg.maintenance_interval;
            self.maintenance(ctx);
        }
        if self.timers.redrive.is_some_and(|t| now >= t) {
            self.timers.redrive = None;
            let ids: Vec<LookupId> = self.lookups.keys().copied().collect();
            for lid in ids {
                self.drive(ctx, lid);
            }
        }
        if self.boot.next_retry().is_some_and(|t| now >= t) {
            self.start_bootstrap(ctx);
        }
        if now >= self.timers.refresh {
            self.timers.refresh = now + ctx.cfg.maintenance_interval * 6;
            self.refresh_stale(ctx);
        }
        self.announce_due(ctx);
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;
    use crate::event::LookupKind;

    struct Parts {
        cfg: Config,
        rpc: Rpc,
        events: EventQueue,
        rng: SmallRng,
    }

    impl Parts {
        fn new() -> Parts {
            let cfg = Config {
                allow_local_addrs: true,
                ..Config::default()
            };
            let mut rng = SmallRng::seed_from_u64(3);
            let rpc = Rpc::new(&cfg, Id([0; 20]), &mut rng, Instant::ZERO);
            Parts {
                events: EventQueue::new(100),
                cfg,
                rpc,
                rng,
            }
        }

        fn ctx(&mut self, now: Instant) -> Ctx<'_> {
            Ctx {
                now,
                cfg: &self.cfg,
                rpc: &mut self.rpc,
                events: &mut self.events,
                rng: &mut self.rng,
            }
        }
    }

    fn addr(i: u8) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, i], 6881))
    }

    #[test]
    fn a_querier_is_pinged_and_enters_the_table_when_it_answers() {
        let mut p = Parts::new();
        let mut s = Search::new(false, Id([0; 20]), &p.cfg, Instant::ZERO);
        let now = Instant::ZERO;
        s.node_queried(&mut p.ctx(now), Id([7; 20]), addr(7));
        assert_eq!(p.rpc.pending(), 1, "a verification ping");
        assert!(
            s.table().get(&Id([7; 20])).is_none(),
            "not before it answers"
        );
        let (to, bytes) = p.rpc.poll_transmit().unwrap();
        assert_eq!(to, addr(7));
        let tid = crate::bencode::OwnedValue::decode(bytes).unwrap();
        let crate::bencode::OwnedValue::Dict(d) = tid else {
            panic!()
        };
        let crate::bencode::OwnedValue::Bytes(t) = d[&b"t"[..]].clone() else {
            panic!()
        };
        let pending = p.rpc.take_reply(addr(7), &t).unwrap();
        let r = crate::krpc::Response {
            id: Id([7; 20]),
            ..Default::default()
        };
        s.on_response(&mut p.ctx(now), addr(7), &pending, &r);
        assert!(s.table().get(&Id([7; 20])).is_some());
        assert_eq!(
            p.events.pop(),
            Some(Event::NodeAdded {
                id: Id([7; 20]),
                addr: addr(7)
            })
        );
    }

    #[test]
    fn lookups_wait_while_bootstrap_sources_are_pending() {
        let mut p = Parts::new();
        let mut s = Search::new(false, Id([0; 20]), &p.cfg, Instant::ZERO);
        s.expect_bootstrap();
        let lid = s
            .start_lookup(
                &mut p.ctx(Instant::ZERO),
                LookupKind::FindNode,
                Id([1; 20]),
                &[],
            )
            .unwrap();
        assert_eq!((s.held_lookups(), p.rpc.pending()), (1, 0));
        assert!(!s.is_bootstrapped());
        s.bootstrap_sources_done(&mut p.ctx(Instant::ZERO));
        assert!(s.is_bootstrapped());
        assert_eq!(s.held_lookups(), 0);
        let mut finished = false;
        while let Some(e) = p.events.pop() {
            finished |= matches!(e, Event::LookupFinished(ref r) if r.id == lid);
        }
        assert!(finished, "released, and with nobody to ask, finished");
    }
}
