//! Advertised infohashes: announced now and again every [`crate::Config::advertise_interval`]
//! until withdrawn; and BEP 44 items kept alive, put again every
//! [`crate::Config::item_refresh`] (nodes drop an item 2 hours after its last put). The
//! schedule waits for the first bootstrap; a re-announce or re-put that finds no free lookup
//! slot tries again a second later.

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
    /// Each kept item by target, with when it is next put.
    items: BTreeMap<Id, (Item, Instant)>,
}

impl Adverts {
    /// The earliest re-announce or re-put.
    pub(super) fn next_due(&self) -> Option<Instant> {
        let a = self.map.values().map(|(_, at)| *at);
        let b = self.items.values().map(|(_, at)| *at);
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

    /// Keeps `item` alive: put as soon as the node is bootstrapped, then every
    /// [`crate::Config::item_refresh`]. A kept item with the same target is replaced.
    pub(crate) fn keep_item(&mut self, ctx: &mut Ctx<'_>, item: Item) {
        self.adverts.items.insert(item.target(), (item, ctx.now));
        self.announce_due(ctx);
    }

    /// Stops keeping the item under `target` alive; false if it was not kept.
    pub(crate) fn stop_keeping(&mut self, target: &Id) -> bool {
        self.adverts.items.remove(target).is_some()
    }

    /// The items kept alive.
    pub(crate) fn kept_items(&self) -> impl Iterator<Item = &Item> + '_ {
        self.adverts.items.values().map(|(i, _)| i)
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
        let due: Vec<Item> = self
            .adverts
            .items
            .values()
            .filter(|(_, at)| *at <= now)
            .map(|(i, _)| i.clone())
            .collect();
        for item in due {
            let target = item.target();
            let again = item.clone();
            let started = self.start_lookup_with(ctx, LookupKind::PutItem, target, &[], |l| {
                l.item = Some(again);
            });
            let next = match started {
                Some(_) => now + ctx.cfg.item_refresh,
                None => now + RETRY_BUSY,
            };
            self.adverts.items.insert(target, (item, next));
        }
    }
}
