//! A BEP 44 item kept alive for days on the live-DHT model: one node keeps a mutable item
//! (a pkarr-sized record) with [`dhtkit_proto::Node::keep_item`] while the network churns,
//! and random live nodes try to read it at a fixed interval. The `keep` example prints its
//! [`KeepReport`]; a test runs a week.

use std::time::Duration;

use dhtkit_proto::items::{bencode_bytes, mutable_target, public_key, Item};
use dhtkit_proto::{Event, LookupKind};
use rand::{Rng, SeedableRng};

use crate::{Live, LiveConfig};

/// What a keep run measured.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct KeepReport {
    /// Nodes alive.
    pub nodes: usize,
    /// Virtual hours run.
    pub hours: u64,
    /// Reads tried, and how many found the item.
    pub reads: usize,
    /// Reads that found the item.
    pub found: usize,
    /// The keeper's lookups for the item: puts sent (the first included).
    pub puts: usize,
    /// Checks that found enough holders and sent no put.
    pub checks_skipped: usize,
    /// Fewest nodes holding the item that a check or put found (after the first put).
    pub fewest_holders: Option<u32>,
    /// Departures (each replaced by an arrival) during the run.
    pub departures: u64,
    /// Hours of virtual time between the keeper's puts, in order.
    pub put_gaps_h: Vec<f64>,
}

/// Builds the network of `cfg`, lets it settle for ten minutes, has a router (they never
/// leave) keep a mutable item, and reads it from a random live ordinary node every
/// `read_every` for `hours` of virtual time.
pub fn keep_for(
    cfg: LiveConfig,
    hours: u64,
    read_every: Duration,
    mut progress: impl FnMut(&str),
) -> KeepReport {
    let seed = cfg.seed;
    let mut live = Live::build(cfg, &mut progress);
    live.run_for(Duration::from_secs(600));
    let keeper = 0;
    let secret = [7u8; 32];
    let value = bencode_bytes(&[0x5a; 600]);
    let item = Item::mutable(&secret, b"", 1, value);
    let target = mutable_target(&public_key(&secret), b"");
    live.sim
        .with_node(keeper, |n, now| n.keep_item(now, item.clone()));
    let mut rng = rand::rngs::SmallRng::seed_from_u64(seed ^ 0x6b656570);
    let mut r = KeepReport {
        hours,
        ..KeepReport::default()
    };
    let departures = live.churn().departures;
    let end = live.sim.now() + Duration::from_secs(hours * 3600);
    let mut last_put: Option<dhtkit_proto::Instant> = None;
    let mut reads = Vec::new();
    while live.sim.now() < end {
        live.run_for(read_every);
        // The keeper's lookups.
        for (at, ev) in live.sim.take_timed_events(keeper) {
            let Event::LookupFinished(l) = ev else {
                continue;
            };
            if l.kind != LookupKind::PutItem || l.target != target {
                continue;
            }
            progress(&format!(
                "keeper at {:.2} h: {} (holders {}, stored {}, answered {})",
                at.as_millis() as f64 / 3.6e6,
                if l.put_skipped { "check" } else { "put" },
                l.item_report.current,
                l.announced,
                l.item_report.answered
            ));
            if l.put_skipped {
                r.checks_skipped += 1;
            } else {
                r.puts += 1;
                if let Some(t) = last_put {
                    r.put_gaps_h
                        .push(at.saturating_since(t).as_secs_f64() / 3600.0);
                }
                last_put = Some(at);
            }
            if r.puts + r.checks_skipped > 1 {
                let h = l.item_report.current;
                r.fewest_holders = Some(r.fewest_holders.map_or(h, |f| f.min(h)));
            }
        }
        // Last round's reads.
        collect(&mut live, &mut reads, &mut r);
        // This round's: a node up for ten minutes at least, as a client that has joined.
        let pool = live.ordinary();
        for _ in 0..pool.len() {
            let who = pool[rng.random_range(0..pool.len())];
            if live.sim.node(who).routing_table().len() < 16 {
                continue;
            }
            live.sim.take_events(who);
            if let Some(lid) = live
                .sim
                .with_node(who, |n, now| n.get_item(now, target, b""))
            {
                reads.push((who, live.sim.generation(who), lid));
            }
            break;
        }
        progress(&format!(
            "{:.1} h: {} of {} reads found it, {} puts, {} checks without a put",
            (live
                .sim
                .now()
                .saturating_since(end - Duration::from_secs(hours * 3600)))
            .as_secs_f64()
                / 3600.0,
            r.found,
            r.reads,
            r.puts,
            r.checks_skipped
        ));
    }
    live.run_for(Duration::from_secs(60));
    collect(&mut live, &mut reads, &mut r);
    r.nodes = live.sim.alive().count();
    r.departures = live.churn().departures - departures;
    r
}

/// Counts the reads that ended, from readers still up (one that left took its answer along).
fn collect(
    live: &mut Live,
    reads: &mut Vec<(usize, u32, dhtkit_proto::LookupId)>,
    r: &mut KeepReport,
) {
    for (who, generation, lid) in reads.drain(..) {
        if live.sim.generation(who) != generation {
            continue;
        }
        r.reads += 1;
        let found = live
            .sim
            .take_events(who)
            .into_iter()
            .any(|e| matches!(&e, Event::LookupFinished(l) if l.id == lid && l.item.is_some()));
        r.found += usize::from(found);
    }
}
