//! Dual-stack lookups (BEP 32): a lookup runs in both families for one caller, and the two
//! results are merged into one.

use dhtkit_proto::{Event, LookupResult};

use super::Driver;

/// A lookup a dual-stack node runs in both families for one caller: the first family's
/// result, completed by the second's.
#[derive(Default)]
pub(super) struct Paired {
    /// Lookups of the pair still running.
    pub(super) running: usize,
    /// The first family's result, once in.
    pub(super) first: Option<LookupResult>,
    /// The second family's result, once in.
    pub(super) second: Option<LookupResult>,
}

impl Driver {
    /// For a finished lookup: `None` while its twin (dual-stack) still runs, else `Some(())`.
    pub(super) fn paired_done(&mut self, r: &LookupResult) -> Option<()> {
        let first = self.twin_of.get(&r.id).copied().unwrap_or(r.id);
        let Some(p) = self.paired.get_mut(&first) else {
            return Some(());
        };
        p.running = p.running.saturating_sub(1);
        if first == r.id {
            p.first = Some(r.clone());
        } else {
            p.second = Some(r.clone());
        }
        (p.running == 0).then_some(())
    }

    /// The result to hand the caller: a lone lookup's, or a finished pair's, merged.
    pub(super) fn paired_result(&mut self, e: &Event) -> Option<LookupResult> {
        let Event::LookupFinished(r) = e else {
            return None;
        };
        let first = self.twin_of.get(&r.id).copied().unwrap_or(r.id);
        match self.paired.remove(&first) {
            None => Some((**r).clone()),
            Some(p) => {
                self.twin_of.retain(|_, f| *f != first);
                let mut out = p.first.unwrap_or_else(|| (**r).clone());
                if let Some(b) = p.second {
                    merge_family(&mut out, b);
                }
                Some(out)
            }
        }
    }
}

/// Folds the second family's lookup into the first's: counts add up, the closest nodes of
/// both families are merged (closest first, up to k of each), scrape filters are merged,
/// errors are kept, and the better BEP 44 item wins (the higher seq; any one for an immutable
/// item).
fn merge_family(out: &mut LookupResult, b: LookupResult) {
    let target = out.target;
    out.closest.extend(b.closest);
    // Stable: at equal distance (one dual-stack node in both lists) the first family leads.
    out.closest.sort_by_key(|(id, _)| id.distance(&target));
    out.announced += b.announced;
    out.peers_found += b.peers_found;
    out.queries += b.queries;
    out.responses += b.responses;
    out.timeouts += b.timeouts;
    out.duration = out.duration.max(b.duration);
    out.put_refusals.extend(b.put_refusals);
    out.put_refusals.truncate(dhtkit_proto::MAX_PUT_REFUSALS);
    out.put_unanswered += b.put_unanswered;
    out.put_skipped &= b.put_skipped;
    out.item_report.add(&b.item_report);
    // The same peers may come back in both families (a dual-stack node's filters cover all
    // it stores): merge the filters, then estimate.
    if let Some(f) = b.scrape_filters {
        let merged = match out.scrape_filters.take() {
            Some(mut m) => {
                m.0.merge(&f.0);
                m.1.merge(&f.1);
                m
            }
            None => f,
        };
        out.scrape = Some(dhtkit_proto::ScrapeEstimate {
            seeds: merged.0.estimate(),
            peers: merged.1.estimate(),
        });
        out.scrape_filters = Some(merged);
    }
    let better = match (&out.item, &b.item) {
        (None, Some(_)) => true,
        (Some(x), Some(y)) => y.seq() > x.seq(),
        _ => false,
    };
    if better {
        out.item = b.item;
    }
}
