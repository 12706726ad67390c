//! Keeping the table healthy: pinging questionable nodes, trying nodes we only heard about
//! when a bucket has room, and refreshing buckets nobody has touched for a while.

use std::net::SocketAddr;

use super::{Ctx, Search};
use crate::event::LookupKind;
use crate::Id;

/// Questionable nodes pinged per maintenance tick.
const PINGS_PER_TICK: usize = 8;

impl Search {
    pub(super) fn maintenance(&mut self, ctx: &mut Ctx<'_>) {
        let now = ctx.now;
        // Ping questionable nodes, at most a few per tick, each at most once per minute.
        let mut due = std::mem::take(&mut self.scratch);
        self.table.take_questionable(
            now,
            ctx.cfg.maintenance_interval * 6,
            PINGS_PER_TICK,
            &mut due,
        );
        for (id, addr) in due.drain(..) {
            self.verify(ctx, Some(id), addr);
        }
        self.scratch = due;
        // Buckets with room: try nodes we only heard about.
        let candidates: Vec<(Id, SocketAddr)> = self
            .table
            .untried_with_room()
            .take(PINGS_PER_TICK * 4)
            .collect();
        let mut pinged = 0;
        for (id, addr) in candidates {
            if pinged >= PINGS_PER_TICK {
                break;
            }
            if self.table.has_room_for(&id, &addr) && self.verify(ctx, Some(id), addr) {
                pinged += 1;
            }
        }
    }

    /// The stale-ping upkeep ([`crate::Config::stale_ping_interval`]): the next node of the
    /// table in turn that has not answered for a while is pinged, so that a departed node
    /// is found (and, with one timeout, evicted) within one round of the table.
    pub(super) fn ping_stalest(&mut self, ctx: &mut Ctx<'_>) {
        if let Some((id, addr)) = self.table.next_stale(ctx.now, ctx.cfg.stale_ping_idle) {
            self.verify(ctx, Some(id), addr);
        }
    }

    pub(super) fn refresh_stale(&mut self, ctx: &mut Ctx<'_>) {
        if self.table.is_empty() {
            return;
        }
        let stale: Vec<usize> = self
            .table
            .stale_buckets(ctx.now, ctx.cfg.bucket_refresh)
            .collect();
        self.refresh(ctx, stale);
    }

    /// Refreshes every bucket now: one lookup per bucket.
    pub(crate) fn refresh_all(&mut self, ctx: &mut Ctx<'_>) {
        self.refresh(ctx, (0..self.table.bucket_count()).collect());
    }

    /// One refresh lookup for a random id in each of `buckets`, while lookup slots last.
    fn refresh(&mut self, ctx: &mut Ctx<'_>, buckets: Vec<usize>) {
        for b in buckets {
            let target = self.table.random_id_in_bucket(b, ctx.rng);
            self.table.touch_bucket(b, ctx.now);
            if self
                .start_lookup(ctx, LookupKind::Refresh, target, &[])
                .is_none()
            {
                break;
            }
        }
    }
}
