//! Keeping seeder counts live: when each named torrent is scraped again (BEP 33), and the
//! scheduler that spends a bounded share of the crawler's packets on those scrapes.
//!
//! The policy, [`rescrape_after`]: a torrent is scraped as soon as it is named, then again
//! after an interval that grows with its age and shrinks with its swarm:
//!
//! | first seen | interval |
//! |---|---|
//! | under a day ago | 1 hour |
//! | under a week ago | 6 hours |
//! | under 30 days ago | 1 day |
//! | older | 3 days |
//!
//! halved for a popular swarm (100 or more seeders and leechers), doubled for an empty one,
//! and never more than a week, so that `dhtkit prune --dead-for` sees every torrent scraped
//! at least weekly.
//!
//! The [`Scheduler`] holds the torrents the store says are due, runs a few scrapes at once,
//! and charges each its real number of queries against a token bucket of its own (packets
//! per second, a share of `--rate`). The crawler's nodes count those queries as their own, so
//! discovery's budget pays for them too: scrapes never take the crawler past `--rate`.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use dhtkit_proto::{Id, Instant};

use crate::store::Due;

/// Seconds until a torrent first seen `age` seconds ago, whose last scrape found `seeders`
/// and `leechers`, should be scraped again (see the module's table).
pub fn rescrape_after(age: i64, seeders: u64, leechers: u64) -> i64 {
    const HOUR: i64 = 3_600;
    const DAY: i64 = 24 * HOUR;
    let base = if age < DAY {
        HOUR
    } else if age < 7 * DAY {
        6 * HOUR
    } else if age < 30 * DAY {
        DAY
    } else {
        3 * DAY
    };
    let swarm = seeders + leechers;
    let v = if swarm >= 100 {
        base / 2
    } else if swarm == 0 {
        base * 2
    } else {
        base
    };
    v.min(7 * DAY)
}

/// How much scraping the scheduler may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScrapeConfig {
    /// Packets per second for scrapes (0: no scrapes).
    pub rate: u32,
    /// Packets that may be spent at once after a quiet spell.
    pub burst: u32,
    /// Scrapes running at once.
    pub concurrency: usize,
    /// Due torrents held in memory.
    pub queue: usize,
    /// Queries a scrape is charged before it ends (then settled with its real count).
    pub cost: u32,
}

impl Default for ScrapeConfig {
    fn default() -> ScrapeConfig {
        ScrapeConfig {
            rate: 50,
            burst: 100,
            concurrency: 4,
            queue: 512,
            cost: 24,
        }
    }
}

/// Counts for the status line and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScrapeStats {
    /// Scrapes started.
    pub started: u64,
    /// Scrapes that ended with counts (some node sent filters).
    pub counted: u64,
    /// Queries they sent.
    pub queries: u64,
}

/// Which due torrents to scrape when (sans-IO: the caller owns the clock and the sockets).
#[derive(Debug)]
pub struct Scheduler {
    cfg: ScrapeConfig,
    queue: VecDeque<Due>,
    /// Queued, running, or scraped within [`Scheduler::FORGET_AFTER`] (its new due time may
    /// not have reached the store yet): not taken again.
    /// `None` while queued or running, the time it ended after.
    known: HashMap<Id, Option<Instant>>,
    running: usize,
    /// Thousandths of a packet.
    tokens: i64,
    refilled: Instant,
    stats: ScrapeStats,
}

impl Scheduler {
    /// How long a scraped torrent is not taken again, whatever the store says.
    pub const FORGET_AFTER: Duration = Duration::from_secs(600);

    /// A scheduler with a full bucket.
    pub fn new(cfg: ScrapeConfig, now: Instant) -> Scheduler {
        Scheduler {
            cfg,
            queue: VecDeque::new(),
            known: HashMap::new(),
            running: 0,
            tokens: cfg.burst as i64 * 1000,
            refilled: now,
            stats: ScrapeStats::default(),
        }
    }

    /// True when it is worth asking the store for more due torrents.
    pub fn wants_more(&self) -> bool {
        self.cfg.rate > 0 && self.queue.len() < self.cfg.queue / 2
    }

    /// Torrents the store says are due; those already known and those beyond the queue's
    /// bound are left for a later turn.
    pub fn offer(&mut self, now: Instant, due: impl IntoIterator<Item = Due>) {
        self.known
            .retain(|_, at| at.is_none_or(|t| now.saturating_since(t) < Self::FORGET_AFTER));
        for d in due {
            if self.queue.len() >= self.cfg.queue {
                break;
            }
            if self.known.contains_key(&d.info_hash) {
                continue;
            }
            self.known.insert(d.info_hash, None);
            self.queue.push_back(d);
        }
    }

    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_since(self.refilled);
        let add = dt.as_micros() as i64 * self.cfg.rate as i64 / 1000;
        if add > 0 {
            self.tokens = (self.tokens + add).min(self.cfg.burst.max(1) as i64 * 1000);
            self.refilled = now;
        }
    }

    /// The next torrent to scrape now, if the bucket and the concurrency allow.
    pub fn poll(&mut self, now: Instant) -> Option<Due> {
        self.refill(now);
        if self.running >= self.cfg.concurrency || self.tokens < self.cfg.cost as i64 * 1000 {
            return None;
        }
        let d = self.queue.pop_front()?;
        self.running += 1;
        self.tokens -= self.cfg.cost as i64 * 1000;
        self.stats.started += 1;
        Some(d)
    }

    /// A scrape ended after sending `queries`; `counted` if it came back with counts.
    pub fn done(&mut self, now: Instant, info_hash: Id, queries: u32, counted: bool) {
        self.refill(now);
        self.running = self.running.saturating_sub(1);
        self.tokens -= (queries as i64 - self.cfg.cost as i64) * 1000;
        self.stats.queries += queries as u64;
        self.stats.counted += counted as u64;
        self.known.insert(info_hash, Some(now));
    }

    /// When [`Scheduler::poll`] may have something, given no other input.
    pub fn next_wake(&self, now: Instant) -> Option<Instant> {
        if self.queue.is_empty() || self.running >= self.cfg.concurrency || self.cfg.rate == 0 {
            return None;
        }
        let need = self.cfg.cost as i64 * 1000;
        if self.tokens >= need {
            return Some(now);
        }
        let missing = (need - self.tokens) as u64;
        Some(now + Duration::from_micros(missing * 1000 / self.cfg.rate as u64 + 1))
    }

    /// Torrents waiting, and scrapes running.
    pub fn queued(&self) -> (usize, usize) {
        (self.queue.len(), self.running)
    }

    /// What it has done.
    pub fn stats(&self) -> ScrapeStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn due(n: u8) -> Due {
        let mut b = [0u8; 20];
        b[0] = n;
        Due {
            info_hash: Id(b),
            first_seen: 0,
        }
    }

    #[test]
    fn fresh_and_popular_torrents_come_back_sooner() {
        let day = 86_400;
        assert_eq!(rescrape_after(60, 5, 5), 3_600);
        assert_eq!(rescrape_after(60, 90, 10), 1_800);
        assert_eq!(rescrape_after(60, 0, 0), 7_200);
        assert_eq!(rescrape_after(3 * day, 1, 0), 6 * 3_600);
        assert_eq!(rescrape_after(10 * day, 1, 0), day);
        assert_eq!(rescrape_after(100 * day, 1, 0), 3 * day);
        // Old and dead: still weekly at the longest.
        assert_eq!(rescrape_after(100 * day, 0, 0), 6 * day);
        assert!(rescrape_after(i64::MAX, 0, 0) <= 7 * day);
    }

    #[test]
    fn packets_stay_within_the_rate() {
        let cfg = ScrapeConfig {
            rate: 100,
            burst: 100,
            concurrency: 1000,
            queue: 100_000,
            cost: 20,
        };
        let mut s = Scheduler::new(cfg, Instant::ZERO);
        s.offer(Instant::ZERO, (0..=255).map(due));
        let mut now = Instant::ZERO;
        let mut sent = 0u64;
        // Ten virtual seconds in 10 ms steps; every scrape ends at once with 30 queries.
        for _ in 0..1000 {
            while let Some(d) = s.poll(now) {
                s.done(now, d.info_hash, 30, true);
                sent += 30;
            }
            now = now + Duration::from_millis(10);
        }
        // 10 s at 100 packets/s plus the burst, overshot by at most one scrape's surprise.
        assert!(sent <= 100 * 10 + 100 + 30, "sent {sent}");
        assert!(sent >= 100 * 10 - 60, "sent {sent}");
    }

    #[test]
    fn a_torrent_is_not_taken_twice_while_its_new_time_is_on_the_way() {
        let mut s = Scheduler::new(ScrapeConfig::default(), Instant::ZERO);
        s.offer(Instant::ZERO, [due(1), due(1), due(2)]);
        assert_eq!(s.queued(), (2, 0));
        let d = s.poll(Instant::ZERO).unwrap();
        s.offer(Instant::ZERO, [due(1), due(2)]);
        assert_eq!(s.queued(), (1, 1));
        let t = Instant::ZERO + Duration::from_secs(1);
        s.done(t, d.info_hash, 10, true);
        s.offer(t, [due(1)]);
        assert_eq!(s.queued(), (1, 0), "just scraped");
        let later = t + Scheduler::FORGET_AFTER;
        s.offer(later, [due(1)]);
        assert_eq!(s.queued(), (2, 0), "due again after a while");
    }

    #[test]
    fn concurrency_and_queue_are_bounded() {
        let cfg = ScrapeConfig {
            queue: 10,
            concurrency: 2,
            ..ScrapeConfig::default()
        };
        let mut s = Scheduler::new(cfg, Instant::ZERO);
        s.offer(Instant::ZERO, (0..50).map(due));
        assert_eq!(s.queued(), (10, 0));
        assert!(!s.wants_more());
        assert!(s.poll(Instant::ZERO).is_some());
        assert!(s.poll(Instant::ZERO).is_some());
        assert!(s.poll(Instant::ZERO).is_none());
        assert_eq!(s.next_wake(Instant::ZERO), None);
        let off = Scheduler::new(ScrapeConfig { rate: 0, ..cfg }, Instant::ZERO);
        assert!(!off.wants_more());
    }
}
