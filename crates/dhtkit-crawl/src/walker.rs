//! The BEP 51 walk: ask nodes for samples of the infohashes they store, each node again only
//! after the `interval` it gave (unless the operator shortens it explicitly), and follow the
//! nodes each reply lists to reach the rest of the DHT.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use dhtkit::{Dht, Request};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::crawler::Found;
use crate::stats::CrawlStats;
use crate::store::Source;

/// Longest interval honoured (a node asking for more is asked again after this).
const MAX_INTERVAL: Duration = Duration::from_secs(6 * 60 * 60);
/// When a node does not answer, or does not speak BEP 51, it is tried again after this.
const RETRY_SILENT: Duration = Duration::from_secs(60 * 60);

/// Walk settings.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WalkConfig {
    /// Most nodes scheduled at once.
    pub max_nodes: usize,
    /// Queries in flight at once.
    pub concurrency: usize,
    /// Queries per second, at most.
    pub rate: u32,
    /// Ask nodes again after at most this long, even when they ask for longer (`None`:
    /// honour their `interval`).
    pub shorten_to: Option<Duration>,
    /// Local and reserved addresses may be asked (the crawler is bound to one).
    pub allow_local: bool,
}

pub(crate) async fn run(
    dhts: Vec<Dht>,
    cfg: WalkConfig,
    mut nodes_rx: mpsc::Receiver<SocketAddr>,
    found: mpsc::Sender<Found>,
    stats: Arc<CrawlStats>,
    mut stop: watch::Receiver<bool>,
) {
    let mut due: BinaryHeap<Reverse<(Instant, SocketAddr)>> = BinaryHeap::new();
    let mut known: HashMap<SocketAddr, Instant> = HashMap::new();
    let (done_tx, mut done_rx) = mpsc::channel(cfg.concurrency.max(1) * 2);
    let mut in_flight = 0usize;
    let mut next_dht = 0usize;
    let gap = Duration::from_secs(1) / cfg.rate.max(1);
    let mut next_send = Instant::now();
    let schedule = |due: &mut BinaryHeap<_>, known: &mut HashMap<_, _>, a: SocketAddr, at| {
        // Addresses come from strangers: never a private, reserved or bogon one unless we are
        // on such a network ourselves.
        if !dhtkit::addr::may_send(&a, cfg.allow_local) {
            return;
        }
        if known.len() < cfg.max_nodes || known.contains_key(&a) {
            known.insert(a, at);
            due.push(Reverse((at, a)));
        }
    };
    loop {
        // Send to every node that is due, within the rate and the concurrency.
        let now = Instant::now();
        while in_flight < cfg.concurrency && next_send <= now {
            let Some(Reverse((at, addr))) = due.peek().copied() else {
                break;
            };
            if at > now {
                break;
            }
            due.pop();
            if known.get(&addr) != Some(&at) {
                continue; // rescheduled since
            }
            let dht = dhts[next_dht % dhts.len()].clone();
            next_dht += 1;
            let tx = done_tx.clone();
            let target = crate::random_id();
            in_flight += 1;
            next_send = now.max(next_send) + gap;
            CrawlStats::add(&stats.samples_sent, 1);
            tokio::spawn(async move {
                let r = dht.request(addr, Request::sample_infohashes(target)).await;
                let _ = tx.send((addr, r)).await;
            });
        }
        let wake = due
            .peek()
            .map(|Reverse((at, _))| (*at).max(next_send))
            .unwrap_or_else(|| now + Duration::from_secs(3600));
        tokio::select! {
            _ = stop.changed() => return,
            Some(a) = nodes_rx.recv() => {
                if !known.contains_key(&a) {
                    schedule(&mut due, &mut known, a, Instant::now());
                }
            }
            Some((addr, r)) = done_rx.recv() => {
                in_flight -= 1;
                let now = Instant::now();
                let next = match r {
                    Ok(reply) if reply.interval.is_some() || !reply.samples.is_empty() => {
                        CrawlStats::add(&stats.samples_answered, 1);
                        for ih in &reply.samples {
                            let f = Found { info_hash: *ih, source: Source::Sample, peer: None };
                            if found.try_send(f).is_err() {
                                CrawlStats::add(&stats.dropped, 1);
                            }
                        }
                        for (_, a) in &reply.nodes {
                            if !known.contains_key(a) {
                                schedule(&mut due, &mut known, *a, now);
                            }
                        }
                        let asked = Duration::from_secs(reply.interval.unwrap_or(0).max(0) as u64);
                        let interval = cfg.shorten_to.map_or(asked, |s| asked.min(s)).min(MAX_INTERVAL);
                        now + interval.max(Duration::from_secs(1))
                    }
                    Ok(reply) => {
                        for (_, a) in &reply.nodes {
                            if !known.contains_key(a) {
                                schedule(&mut due, &mut known, *a, now);
                            }
                        }
                        now + RETRY_SILENT
                    }
                    Err(_) => now + RETRY_SILENT,
                };
                schedule(&mut due, &mut known, addr, next);
            }
            _ = tokio::time::sleep_until(wake) => {}
        }
    }
}
