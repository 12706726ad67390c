//! Joining the network, and the policy around it.
//!
//! A bootstrap is a lookup for our own id through the table and the bootstrap addresses. The
//! addresses are remembered: while the table holds fewer than k nodes after a bootstrap, the
//! search tries again through them, backing off from 5 seconds to 5 minutes.
//!
//! When the first bootstrap ends, every bucket is refreshed once (a lookup for a random id
//! in it), so that nodes all over the keyspace hear from us and check us.
//!
//! Lookups started while the first bootstrap runs (or while the driver still waits for
//! bootstrap addresses and the table is empty) are held, and start when it ends; the end is
//! reported as [`Event::Bootstrapped`]. A search that was never asked to bootstrap holds
//! nothing.

use std::net::SocketAddr;
use std::time::Duration;

use super::{Ctx, Search};
use crate::event::{Event, LookupId, LookupKind};
use crate::Instant;

/// Most bootstrap addresses remembered for retries.
const MAX_BOOTSTRAP_ADDRS: usize = 32;
/// First delay before bootstrapping again when the table stayed small; it doubles per try.
const REBOOTSTRAP_MIN: Duration = Duration::from_secs(5);
/// Longest delay between bootstrap retries.
const REBOOTSTRAP_MAX: Duration = Duration::from_secs(300);

#[derive(Debug)]
pub(super) struct Boot {
    addrs: Vec<SocketAddr>,
    running: Option<LookupId>,
    backoff: Duration,
    retry_at: Option<Instant>,
    /// A bootstrap was asked for (until then no lookup is held).
    asked: bool,
    /// The driver is still resolving bootstrap addresses.
    sources_pending: bool,
    /// The first bootstrap has ended.
    first_done: bool,
}

impl Default for Boot {
    fn default() -> Self {
        Boot {
            addrs: Vec::new(),
            running: None,
            backoff: REBOOTSTRAP_MIN,
            retry_at: None,
            asked: false,
            sources_pending: false,
            first_done: false,
        }
    }
}

impl Boot {
    /// True while new lookups must wait for the first bootstrap.
    pub(super) fn holds_lookups(&self) -> bool {
        self.asked && !self.first_done
    }

    /// When to bootstrap again, if the table stayed small.
    pub(super) fn next_retry(&self) -> Option<Instant> {
        self.retry_at
    }
}

impl Search {
    /// Joins the network through the table and `via` (remembered for retries). While a
    /// bootstrap runs, `via` joins it.
    pub(crate) fn bootstrap(&mut self, ctx: &mut Ctx<'_>, via: &[SocketAddr]) -> Option<LookupId> {
        self.boot.asked = true;
        for a in via {
            if !self.boot.addrs.contains(a) && self.boot.addrs.len() < MAX_BOOTSTRAP_ADDRS {
                self.boot.addrs.push(*a);
            }
        }
        if let Some(l) = self.boot.running.and_then(|r| self.lookups.get_mut(&r)) {
            let lid = l.id;
            for a in via {
                if ctx.rpc.may_contact(a, false) {
                    l.add(None, *a, None);
                }
            }
            self.drive(ctx, lid);
            return Some(lid);
        }
        self.start_bootstrap(ctx)
    }

    /// Bootstrap addresses are on their way (names being resolved): hold lookups until they
    /// arrive and the bootstrap through them ends, or [`Search::bootstrap_sources_done`].
    pub(crate) fn expect_bootstrap(&mut self) {
        self.boot.asked = true;
        self.boot.sources_pending = true;
    }

    /// Every bootstrap address the driver will give has been given.
    pub(crate) fn bootstrap_sources_done(&mut self, ctx: &mut Ctx<'_>) {
        self.boot.sources_pending = false;
        self.check_bootstrapped(ctx);
    }

    /// True once the first bootstrap has ended (or none was asked for).
    pub(crate) fn is_bootstrapped(&self) -> bool {
        !self.boot.holds_lookups()
    }

    pub(super) fn start_bootstrap(&mut self, ctx: &mut Ctx<'_>) -> Option<LookupId> {
        if let Some(running) = self.boot.running {
            if self.lookups.contains_key(&running) {
                return Some(running);
            }
        }
        self.boot.retry_at = None;
        let via = std::mem::take(&mut self.boot.addrs);
        let own = self.own;
        let lid = self.start_lookup(ctx, LookupKind::Bootstrap, own, &via);
        self.boot.addrs = via;
        // A lookup with nobody to ask has already finished.
        self.boot.running = lid.filter(|l| self.lookups.contains_key(l));
        if lid.is_none() {
            self.check_bootstrapped(ctx);
        }
        lid
    }

    /// A bootstrap lookup ended: try again later while the table is too small.
    pub(super) fn bootstrap_finished(&mut self, ctx: &mut Ctx<'_>, lid: LookupId) {
        if self.boot.running == Some(lid) {
            self.boot.running = None;
        }
        if self.table.len() < ctx.cfg.table.k && !self.boot.addrs.is_empty() {
            self.boot.retry_at = Some(ctx.now + self.boot.backoff);
            self.boot.backoff = (self.boot.backoff * 2).min(REBOOTSTRAP_MAX);
        } else {
            self.boot.backoff = REBOOTSTRAP_MIN;
        }
        self.check_bootstrapped(ctx);
    }

    /// Ends the first bootstrap once nothing is left to wait for: report it, start the held
    /// lookups and the advertise schedule.
    fn check_bootstrapped(&mut self, ctx: &mut Ctx<'_>) {
        let b = &self.boot;
        if !b.holds_lookups() || b.running.is_some() || (b.sources_pending && self.table.is_empty())
        {
            return;
        }
        self.boot.first_done = true;
        ctx.events.push(Event::Bootstrapped {
            nodes: self.table.len(),
        });
        self.release_held(ctx);
        self.announce_due(ctx);
        // Make ourselves known beyond the few nodes nearest our id: one refresh lookup per
        // bucket, as a fresh libtorrent node does. Nodes that only hear a query from us do
        // not keep us (mainline adds only nodes that answer its own queries; libtorrent
        // keeps a querier as unverified and may never check it), so until someone who keeps
        // us hands us out, their lookups do not find us. A read-only node (BEP 43) is never
        // kept anyway, and skips this.
        if !ctx.cfg.read_only && !self.table.is_empty() {
            self.refresh_all(ctx);
        }
    }
}
