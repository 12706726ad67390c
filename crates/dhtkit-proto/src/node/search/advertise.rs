//! Advertised infohashes: announced now and again every [`crate::Config::advertise_interval`]
//! until withdrawn; and BEP 44 items kept alive. The schedule waits for the first bootstrap;
//! a re-announce or re-put that finds no free lookup slot tries again a second later.
//!
//! A kept item is put at once, then checked: a put lookup whose `get` phase counts the
//! nodes still holding it, and which sends the puts only when it must. With
//! [`crate::Config::adaptive_item_refresh`] (the default) the schedule follows what the
//! checks measure:
//!
//! - a check finds enough holders (half the nodes that stored the last put) and the item is
//!   younger than the age limit: no put; three quarters or more double the interval to the
//!   next check (from [`crate::Config::item_refresh`], within
//!   [`crate::Config::item_refresh_min`] and [`crate::Config::item_refresh_max`]);
//! - too few holders: put, halve the interval, and lower the age limit to the oldest age at
//!   which a check still found enough; nearly none (a quarter): the limit may never grow
//!   past that age again (nodes that drop items at a fixed age drop them all at once);
//! - the age limit reached with enough holders: put, and let the limit grow by half.
//!
//! The age limit starts at `item_refresh_max`, and the next check never comes after it. On
//! a network whose nodes keep items and stay up, puts become rare (on the live-DHT model a
//! few a week, against 168 for an hourly put); where nodes leave or drop items, checks and
//! puts come as often as the churn needs. Without the adaptive schedule the item is put
//! every `item_refresh`.

use std::collections::BTreeMap;
use std::time::Duration;

use super::{Ctx, Search};
use crate::event::LookupKind;
use crate::items::Item;
use crate::{Id, Instant};

/// Delay before retrying a re-announce that found no free lookup slot.
const RETRY_BUSY: Duration = Duration::from_secs(1);

/// How an infohash is advertised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Advert {
    /// TCP port announced; `None` means `implied_port` (the UDP port we send from).
    pub port: Option<u16>,
    /// BEP 33 `seed` flag.
    pub seed: bool,
}

#[derive(Debug, Default)]
pub(super) struct Adverts {
    /// Each infohash with how it is advertised and when it is next announced.
    map: BTreeMap<Id, (Advert, Instant)>,
    /// Each kept item by target, with its schedule.
    items: BTreeMap<Id, Kept>,
}

/// A kept item and its schedule.
#[derive(Debug)]
struct Kept {
    item: Item,
    /// When it is next checked (or put); `None` while its lookup runs.
    due: Option<Instant>,
    /// The interval to the next check.
    interval: std::time::Duration,
    /// Nodes that stored it at the last put (0 before the first put that reached one).
    stored: u32,
    /// When it was last put.
    last_put: Option<Instant>,
    /// Longest age (time since its put) at which a check may still skip the put: what the
    /// checks measured, starting at `item_refresh_max`.
    limit: std::time::Duration,
    /// The oldest age at which a check found enough holders since the last put.
    healthy_age: Option<std::time::Duration>,
    /// The most `limit` may grow to: lowered when a check finds the item nearly gone.
    cap: std::time::Duration,
}

impl Adverts {
    /// The earliest re-announce or re-put.
    pub(super) fn next_due(&self) -> Option<Instant> {
        let a = self.map.values().map(|(_, at)| *at);
        let b = self.items.values().filter_map(|k| k.due);
        a.chain(b).min()
    }
}

impl Search {
    /// Advertises `ih`: announced as soon as the node is bootstrapped, then every interval.
    pub(crate) fn advertise(&mut self, ctx: &mut Ctx<'_>, ih: Id, advert: Advert) {
        self.adverts.map.insert(ih, (advert, ctx.now));
        self.announce_due(ctx);
    }

    /// Stops advertising `ih`; false if it was not advertised.
    pub(crate) fn stop_advertising(&mut self, ih: &Id) -> bool {
        self.adverts.map.remove(ih).is_some()
    }

    /// Keeps `item` alive: put as soon as the node is bootstrapped, then checked and put
    /// again as the module documentation says. A kept item with the same target is replaced
    /// (and put at once).
    pub(crate) fn keep_item(&mut self, ctx: &mut Ctx<'_>, item: Item) {
        let kept = Kept {
            item,
            due: Some(ctx.now),
            interval: ctx.cfg.item_refresh,
            stored: 0,
            last_put: None,
            limit: ctx.cfg.item_refresh_max,
            healthy_age: None,
            cap: ctx.cfg.item_refresh_max,
        };
        self.adverts.items.insert(kept.item.target(), kept);
        self.announce_due(ctx);
    }

    /// A kept item's lookup ended: `holders` nodes had it, `stored` stored the put (if one
    /// was sent). Plans the next check (see the module documentation).
    pub(crate) fn kept_item_checked(
        &mut self,
        now: Instant,
        target: &Id,
        holders: u32,
        stored: usize,
        skipped: bool,
        cfg: &crate::Config,
    ) {
        let Some(k) = self.adverts.items.get_mut(target) else {
            return;
        };
        let (lo, hi) = (
            cfg.item_refresh_min.min(cfg.item_refresh_max),
            cfg.item_refresh_max,
        );
        let age = k.last_put.map(|t| now.saturating_since(t));
        if !cfg.adaptive_item_refresh {
            k.interval = cfg.item_refresh;
        } else if let (true, Some(age)) = (k.stored > 0, age) {
            let need = k.stored.div_ceil(2).max(1);
            let danger = k.stored.div_ceil(4).max(1);
            if holders >= need {
                k.healthy_age = Some(k.healthy_age.map_or(age, |h| h.max(age)));
                if skipped {
                    if holders * 4 >= k.stored * 3 {
                        k.interval = (k.interval * 2).clamp(lo, hi);
                    }
                } else {
                    // Put because of its age, with enough holders left: allow older ones.
                    k.limit = (k.limit * 3 / 2).min(k.cap).clamp(lo, hi);
                }
            } else {
                // The holders went faster than the interval: check twice as often, and put
                // before the age at which too few were left (at the latest at the oldest age
                // that still had enough).
                k.interval = (k.interval / 2).clamp(lo, hi);
                let healthy = k.healthy_age.unwrap_or(age / 2);
                k.limit = k.limit.min(healthy).clamp(lo, hi);
                if holders < danger {
                    // Nearly gone (on a network whose nodes drop items at a fixed age, all
                    // at once): never let it get that old again. This costs one gap in the
                    // item's life, once.
                    k.cap = k.cap.min(healthy).clamp(lo, hi);
                }
            }
        }
        if !skipped {
            k.healthy_age = None;
            k.last_put = Some(now);
            if stored > 0 {
                k.stored = u32::try_from(stored).unwrap_or(u32::MAX);
            }
        }
        let mut wait = k.interval;
        if !skipped && stored == 0 {
            // Nobody stored it: try again soon.
            wait = wait.min(lo);
        } else if cfg.adaptive_item_refresh {
            // The next check comes no later than the age up to which a check may skip.
            let age = k
                .last_put
                .map_or(Duration::ZERO, |t| now.saturating_since(t));
            wait = wait.min(k.limit.saturating_sub(age)).max(lo);
        }
        k.due = Some(now + wait);
    }

    /// Stops keeping the item under `target` alive; false if it was not kept.
    pub(crate) fn stop_keeping(&mut self, target: &Id) -> bool {
        self.adverts.items.remove(target).is_some()
    }

    /// The items kept alive.
    pub(crate) fn kept_items(&self) -> impl Iterator<Item = &Item> + '_ {
        self.adverts.items.values().map(|k| &k.item)
    }

    /// The infohashes advertised.
    pub(crate) fn advertised(&self) -> impl Iterator<Item = (Id, Advert)> + '_ {
        self.adverts.map.iter().map(|(ih, (a, _))| (*ih, *a))
    }

    /// When the schedule next wants to run (never while lookups are held).
    pub(super) fn next_announce(&self) -> Option<Instant> {
        if self.boot.holds_lookups() {
            None
        } else {
            self.adverts.next_due()
        }
    }

    /// Starts the re-announces that are due.
    pub(super) fn announce_due(&mut self, ctx: &mut Ctx<'_>) {
        if self.boot.holds_lookups() {
            return;
        }
        let now = ctx.now;
        let due: Vec<(Id, Advert)> = self
            .adverts
            .map
            .iter()
            .filter(|(_, (_, at))| *at <= now)
            .map(|(ih, (a, _))| (*ih, *a))
            .collect();
        for (ih, a) in due {
            let kind = LookupKind::Announce {
                port: a.port,
                seed: a.seed,
            };
            let next = match self.start_lookup(ctx, kind, ih, &[]) {
                Some(lid) => {
                    if let Some(l) = self.lookups.get_mut(&lid) {
                        l.advertise = true;
                    }
                    now + ctx.cfg.advertise_interval
                }
                None => now + RETRY_BUSY,
            };
            self.adverts.map.insert(ih, (a, next));
        }
        let due: Vec<Id> = self
            .adverts
            .items
            .iter()
            .filter(|(_, k)| k.due.is_some_and(|at| at <= now))
            .map(|(t, _)| *t)
            .collect();
        for target in due {
            let Some(k) = self.adverts.items.get(&target) else {
                continue;
            };
            let item = k.item.clone();
            // A check may skip the put when half the nodes that stored it still hold it,
            // unless the last put is as old as the schedule allows.
            let fresh = k
                .last_put
                .is_some_and(|t| now.saturating_since(t) + ctx.cfg.item_refresh_min <= k.limit);
            let skip = (ctx.cfg.adaptive_item_refresh && k.stored > 0 && fresh)
                .then(|| k.stored.div_ceil(2).max(1));
            let started = self.start_lookup_with(ctx, LookupKind::PutItem, target, &[], |l| {
                l.item = Some(item);
                l.keep = true;
                l.skip_put_holders = skip;
            });
            if let Some(k) = self.adverts.items.get_mut(&target) {
                k.due = match started {
                    Some(_) => None,
                    None => Some(now + RETRY_BUSY),
                };
            }
        }
    }
}
