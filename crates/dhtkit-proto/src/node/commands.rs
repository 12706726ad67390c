//! Commands: what a driver or a test asks a node to do — lookups, bootstrap, advertising,
//! single requests, custom messages — and saving and restoring its state.

use std::net::SocketAddr;
use std::time::Duration;

use super::rpc::{Outgoing, Purpose};
use super::search::Search;
use super::{Advert, Node, NodeState};
use crate::event::{LookupId, LookupKind, RequestId};
use crate::krpc::Request;
use crate::{Id, Instant};

impl Node {
    /// Our id, the nodes worth remembering (good and questionable ones, not bad ones) and the
    /// infohashes we advertise.
    pub fn export_state(&self) -> NodeState {
        NodeState {
            id: self.id,
            nodes: self.searches().flat_map(|s| s.export(&self.cfg)).collect(),
            advertised: self.advertised(),
        }
    }

    /// Adds nodes from saved state to the routing tables without contacting them; they are
    /// used for lookups at once and verified over time. Returns how many were added.
    pub fn import_state(&mut self, now: Instant, nodes: &[(Id, SocketAddr)]) -> usize {
        let mut added = 0;
        self.parts(now).each(|s, ctx| added += s.import(ctx, nodes));
        added
    }

    /// Adds nodes known to answer to the routing tables as if each had just answered one of
    /// our queries in `rtt` (for a network built in one go, such as the simulator's model of
    /// a settled DHT; a driver restoring saved state uses [`Node::import_state`], which
    /// verifies). The table's admission rules apply as to any answer (a bucket keeps the
    /// first `k` that fit, or the fastest with [`crate::routing::TableConfig::rtt_replace`]); nodes
    /// that do not fit are not cached as replacements. Returns how many were added.
    pub fn import_verified(
        &mut self,
        now: Instant,
        nodes: &[(Id, SocketAddr, Option<Duration>)],
    ) -> usize {
        let mut added = 0;
        self.parts(now)
            .each(|s, ctx| added += s.import_verified(ctx, nodes));
        added
    }

    /// Starts a lookup for the nodes closest to `target`.
    pub fn find_node(&mut self, now: Instant, target: Id) -> Option<LookupId> {
        self.start_lookup(now, LookupKind::FindNode, target)
    }

    /// Starts a lookup for peers of `info_hash`; each new peer is reported as
    /// [`crate::Event::PeerFound`].
    pub fn get_peers(&mut self, now: Instant, info_hash: Id) -> Option<LookupId> {
        self.start_lookup(now, LookupKind::GetPeers, info_hash)
    }

    /// Looks up `info_hash` and announces us to the k closest nodes. `port: None` asks them
    /// to use our UDP source port (`implied_port`).
    pub fn announce(
        &mut self,
        now: Instant,
        info_hash: Id,
        port: Option<u16>,
        seed: bool,
    ) -> Option<LookupId> {
        self.start_lookup(now, LookupKind::Announce { port, seed }, info_hash)
    }

    /// BEP 33: estimates the swarm of `info_hash` (seeds and other peers) from the bloom
    /// filters of the nodes that store it; the result is in [`crate::LookupResult::scrape`].
    pub fn scrape(&mut self, now: Instant, info_hash: Id) -> Option<LookupId> {
        self.start_lookup(now, LookupKind::Scrape, info_hash)
    }

    /// BEP 44: looks up the item stored under `target`. A mutable item is checked against
    /// `salt` (empty for none) and the highest seq that verifies wins; an immutable one must
    /// hash to `target`. The result is in [`crate::LookupResult::item`].
    pub fn get_item(&mut self, now: Instant, target: Id, salt: &[u8]) -> Option<LookupId> {
        let v6 = self.v4.is_none();
        self.get_item_in(now, target, salt, v6)
    }

    /// [`Node::get_item`] in one address family (`v6`). `None`, before any work, for a salt
    /// longer than [`crate::items::MAX_SALT_LEN`] (BEP 44 error 207).
    pub fn get_item_in(
        &mut self,
        now: Instant,
        target: Id,
        salt: &[u8],
        v6: bool,
    ) -> Option<LookupId> {
        if salt.len() > crate::items::MAX_SALT_LEN {
            return None;
        }
        let p = self.parts(now);
        let mut ctx = p.ctx;
        let s = if v6 { p.v6 } else { p.v4 }?;
        s.start_lookup_with(&mut ctx, LookupKind::GetItem, target, &[], |l| {
            l.salt = salt.to_vec();
        })
    }

    /// BEP 44: stores `item` on the k closest nodes to its target (a lookup with `get` for
    /// their tokens, then `put`). With `cas`, nodes store a mutable item only over the seq
    /// given. [`crate::LookupResult::announced`] counts the nodes that stored it and
    /// [`crate::LookupResult::put_refusals`] has the errors the others answered.
    pub fn put_item(
        &mut self,
        now: Instant,
        item: crate::items::Item,
        cas: Option<i64>,
    ) -> Option<LookupId> {
        let v6 = self.v4.is_none();
        self.put_item_in(now, item, cas, v6)
    }

    /// [`Node::put_item`] in one address family (`v6`). `None`, before any work, for an item
    /// that fails [`crate::items::Item::check`] (a salt over 64 bytes, a value over 1,000, a
    /// bad signature): nodes would refuse it.
    pub fn put_item_in(
        &mut self,
        now: Instant,
        item: crate::items::Item,
        cas: Option<i64>,
        v6: bool,
    ) -> Option<LookupId> {
        if item.check().is_err() {
            return None;
        }
        let target = item.target();
        let p = self.parts(now);
        let mut ctx = p.ctx;
        let s = if v6 { p.v6 } else { p.v4 }?;
        s.start_lookup_with(&mut ctx, LookupKind::PutItem, target, &[], |l| {
            l.item = Some(item);
            l.cas = cas;
        })
    }

    /// Starts a lookup of any kind in one address family (`v6`); `None` if the node has no
    /// such family or no free lookup slot. A dual-stack node runs a lookup per family to
    /// reach the peers and nodes of both.
    pub fn start_lookup_in(
        &mut self,
        now: Instant,
        kind: LookupKind,
        target: Id,
        v6: bool,
    ) -> Option<LookupId> {
        let p = self.parts(now);
        let mut ctx = p.ctx;
        let s = if v6 { p.v6 } else { p.v4 }?;
        s.start_lookup(&mut ctx, kind, target, &[])
    }

    /// Ends a running lookup now with what it has found (its [`crate::Event::LookupFinished`]
    /// follows at once): for a caller that has what it needed, such as a crawler that wanted
    /// any peer. False if no such lookup runs (it finished, or is held until the first
    /// bootstrap ends).
    pub fn end_lookup(&mut self, now: Instant, lookup: LookupId) -> bool {
        let p = self.parts(now);
        let mut ctx = p.ctx;
        for s in [p.v4, p.v6].into_iter().flatten() {
            if s.end_lookup(&mut ctx, lookup) {
                return true;
            }
        }
        false
    }

    /// Starts a lookup of any kind in the node's first family. Returns `None` when
    /// [`crate::Config::max_lookups`] lookups are already running. Lookups started while the first
    /// bootstrap runs wait for it.
    pub fn start_lookup(&mut self, now: Instant, kind: LookupKind, target: Id) -> Option<LookupId> {
        let mut p = self.parts(now);
        let (s, ctx) = p.primary()?;
        s.start_lookup(ctx, kind, target, &[])
    }

    /// Joins the network: a lookup for our own id through the table and `via` (each address
    /// goes to the search of its family). The addresses are remembered: while the table holds
    /// fewer than k nodes after a bootstrap, the node tries again through them, backing off
    /// from 5 seconds to 5 minutes. Returns the first family's bootstrap lookup.
    pub fn bootstrap(&mut self, now: Instant, via: &[SocketAddr]) -> Option<LookupId> {
        let mut first = None;
        self.parts(now).each(|s, ctx| {
            let mine: Vec<SocketAddr> = via
                .iter()
                .copied()
                .filter(|a| a.is_ipv6() == s.is_v6())
                .collect();
            let lid = s.bootstrap(ctx, &mine);
            first = first.or(lid);
        });
        first
    }

    /// Tells the node that bootstrap addresses are on their way (a driver resolving names):
    /// lookups wait until they arrive and the bootstrap through them ends, or until
    /// [`Node::bootstrap_sources_done`].
    pub fn expect_bootstrap(&mut self) {
        for s in [self.v4.as_deref_mut(), self.v6.as_deref_mut()]
            .into_iter()
            .flatten()
        {
            s.expect_bootstrap();
        }
    }

    /// Every bootstrap address has been given to [`Node::bootstrap`].
    pub fn bootstrap_sources_done(&mut self, now: Instant) {
        self.parts(now).each(|s, ctx| s.bootstrap_sources_done(ctx));
    }

    /// True once the first bootstrap has ended in every family (or none was asked for).
    pub fn is_bootstrapped(&self) -> bool {
        self.searches().all(Search::is_bootstrapped)
    }

    /// From now on the node may contact local and reserved addresses on its own initiative,
    /// as with [`crate::Config::allow_local_addrs`] (for a driver whose user pointed the node
    /// at a local network after it started).
    pub fn allow_local_addrs(&mut self) {
        self.rpc.allow_local_addrs();
    }

    /// Refreshes every bucket now (after bootstrap, for instance): one lookup per bucket.
    pub fn refresh_all(&mut self, now: Instant) {
        self.parts(now).each(|s, ctx| s.refresh_all(ctx));
    }

    /// Pings `addr`; it enters the routing table if it answers. Returns false if the address
    /// is not contactable or too many queries are pending.
    pub fn add_node(&mut self, now: Instant, addr: SocketAddr) -> bool {
        let mut p = self.parts(now);
        match p.for_addr(&addr) {
            Some((s, ctx)) => s.verify(ctx, None, addr),
            None => false,
        }
    }

    /// Advertises `info_hash`: announced once the node is bootstrapped and again every
    /// [`crate::Config::advertise_interval`], in every family, until [`Node::stop_advertising`].
    pub fn advertise(&mut self, now: Instant, info_hash: Id, advert: Advert) {
        self.parts(now)
            .each(|s, ctx| s.advertise(ctx, info_hash, advert));
    }

    /// Stops advertising `info_hash`; false if it was not advertised.
    pub fn stop_advertising(&mut self, info_hash: &Id) -> bool {
        let mut any = false;
        for s in [self.v4.as_deref_mut(), self.v6.as_deref_mut()]
            .into_iter()
            .flatten()
        {
            any |= s.stop_advertising(info_hash);
        }
        any
    }

    /// BEP 44: keeps `item` alive: put now (or as soon as the node is bootstrapped), then
    /// checked and put again as [`crate::Config::adaptive_item_refresh`] says (every
    /// [`crate::Config::item_refresh`] without it), until [`Node::stop_keeping`]. Each check
    /// and put is a [`crate::LookupKind::PutItem`] lookup, reported like any other (a check
    /// that sent no put has [`crate::LookupResult::put_skipped`]).
    pub fn keep_item(&mut self, now: Instant, item: crate::items::Item) {
        let mut p = self.parts(now);
        if let Some((s, ctx)) = p.primary() {
            s.keep_item(ctx, item);
        }
    }

    /// Stops keeping the item under `target` alive; false if it was not kept.
    pub fn stop_keeping(&mut self, target: &Id) -> bool {
        let mut any = false;
        for s in [self.v4.as_deref_mut(), self.v6.as_deref_mut()]
            .into_iter()
            .flatten()
        {
            any |= s.stop_keeping(target);
        }
        any
    }

    /// The items kept alive.
    pub fn kept_items(&self) -> Vec<crate::items::Item> {
        self.primary().kept_items().cloned().collect()
    }

    /// The infohashes advertised.
    pub fn advertised(&self) -> Vec<(Id, Advert)> {
        self.primary().advertised().collect()
    }

    /// Sends one query to `addr`; the answer arrives as [`crate::Event::RequestFinished`]. Returns
    /// `None` if the address may not be contacted (an explicit request may go to a local
    /// address, never to an invalid one) or too many queries are pending.
    pub fn request(&mut self, now: Instant, addr: SocketAddr, req: Request) -> Option<RequestId> {
        if !self.has_family(&addr) {
            return None;
        }
        let id = RequestId(self.next_request);
        let p = self.parts(now);
        p.ctx.rpc.send(
            p.ctx.now,
            Outgoing {
                addr,
                node_id: None,
                method: req.view(),
                purpose: Purpose::Request(id),
                slow: false,
                retries: 0,
            },
        )?;
        self.next_request += 1;
        Some(id)
    }

    /// Pings `addr` (an explicit request; the answer is [`crate::Event::RequestFinished`]).
    pub fn ping(&mut self, now: Instant, addr: SocketAddr) -> Option<RequestId> {
        self.request(now, addr, Request::Ping)
    }

    /// Queues bytes built by the caller (a custom message) for `addr`, through the same
    /// outgoing queue. False if the address is invalid or the queue is full.
    pub fn send_raw(&mut self, addr: SocketAddr, bytes: &[u8]) -> bool {
        self.rpc.may_contact(&addr, true) && self.rpc.enqueue_raw(addr, bytes)
    }

    /// The default per-query timeout, for drivers that want to size their own waits.
    pub fn query_timeout(&self) -> Duration {
        self.cfg.query_timeout
    }
}
