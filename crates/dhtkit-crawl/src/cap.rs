//! A disk cap that holds (`dhtkit crawl --max-db-size`): after every batch the store thread
//! measures the store and, once it reaches the cap, deletes the rows that matter least until
//! it is back under.
//!
//! Below the cap nothing is deleted. At the cap (98% of it) rows go in the order
//! [`Store::evict`] documents, until the store is at 95%: first infohashes that were never
//! named, least recently seen first; then named torrents, longest without seeders first. The
//! crawler keeps running; new rows reuse the freed space.
//!
//! SQLite says how much of its file holds data (pages not on the free list), so the cap is
//! kept in bytes: the database file stays under the cap, and with its WAL (checkpointed after
//! every batch while capped) never passes it by more than one batch.
//! PostgreSQL does not shrink its files and does not say how much of them is free, so there
//! the cap is kept in rows: the row count at which the database reached the cap becomes the
//! bound (less 5%), deleted space is vacuumed for reuse, and the bound shrinks by 5% whenever
//! the database still grows past the cap.

use crate::store::{DbSize, Store, StoreError};

/// What a check found and did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CapReport {
    /// The store's size after the check.
    pub size: DbSize,
    /// Rows deleted by this check.
    pub evicted: u64,
    /// True when the store is over the cap with nothing left to delete.
    pub stuck: bool,
    /// The WAL the last batch left before it was checkpointed (SQLite): what one batch
    /// adds on disk above the database file.
    pub batch_wal: u64,
}

/// The cap, and what it learnt about the store.
#[derive(Debug)]
pub struct DiskCap {
    cap: u64,
    /// PostgreSQL: the bound on rows, once the cap was reached.
    rows_bound: Option<u64>,
    /// PostgreSQL: the size when it last grew.
    last_bytes: u64,
}

impl DiskCap {
    /// The WAL is checkpointed once it holds more than this share of the cap (1/16, at
    /// least 256 KiB); the data is kept under the rest.
    const WAL_SHARE: u64 = 16;

    /// A cap of `bytes`.
    pub fn new(bytes: u64) -> DiskCap {
        DiskCap {
            cap: bytes,
            rows_bound: None,
            last_bytes: 0,
        }
    }

    /// The cap in bytes.
    pub fn bytes(&self) -> u64 {
        self.cap
    }

    fn wal_budget(&self) -> u64 {
        (self.cap / Self::WAL_SHARE)
            .max(256 << 10)
            .min(self.cap / 2)
    }

    fn high(&self) -> u64 {
        self.cap - self.cap / 50
    }

    fn low(&self) -> u64 {
        self.cap - self.cap / 20
    }

    /// Measures `store` after a write and makes room if it reached the cap. The WAL the
    /// write left is checkpointed first (and its size reported in
    /// [`CapReport::batch_wal`]).
    pub fn check(&mut self, store: &mut dyn Store) -> Result<CapReport, StoreError> {
        let mut size = store.size()?;
        let batch_wal = size.wal;
        if size.wal > 0 {
            store.compact()?;
            size = store.size()?;
        }
        let mut r = self.measured(store, size)?;
        r.batch_wal = batch_wal;
        Ok(r)
    }

    fn measured(&mut self, store: &mut dyn Store, size: DbSize) -> Result<CapReport, StoreError> {
        match size.used {
            Some(used) => self.by_bytes(store, size, used),
            None => self.by_rows(store, size),
        }
    }

    fn by_bytes(
        &mut self,
        store: &mut dyn Store,
        mut size: DbSize,
        mut used: u64,
    ) -> Result<CapReport, StoreError> {
        // The data pages are kept under the cap less the WAL's budget: the file stops
        // growing there, and the WAL fits in the rest (the store thread checkpoints after
        // every batch when capped, and eviction checkpoints after every round, each round
        // small enough that its WAL stays within the budget).
        let room = self.wal_budget();
        let page = 4096u64;
        let per_round = (room / (2 * page)).max(16) as usize;
        let (high, low) = (self.high() - room, self.low() - room);
        let mut report = CapReport::default();
        if used <= high {
            report.size = size;
            return Ok(report);
        }
        let rows = store.stats()?.infohashes.max(1);
        let per_row = (used / rows).max(1);
        for _ in 0..100_000 {
            // Enough rows, at the store's average bytes per row, to get down to 95%; each
            // round deletes few enough that its WAL (a page of the table and of the infohash
            // index per row, at most) stays within the budget.
            let want = ((used.saturating_sub(low)) / per_row + 1).min(per_round as u64) as usize;
            let n = store.evict(want)?;
            report.evicted += n;
            store.compact()?;
            size = store.size()?;
            used = size.used.unwrap_or(size.bytes);
            if n == 0 {
                report.stuck = used > high;
                break;
            }
            if used <= low {
                break;
            }
        }
        report.size = size;
        Ok(report)
    }

    fn by_rows(&mut self, store: &mut dyn Store, size: DbSize) -> Result<CapReport, StoreError> {
        let mut report = CapReport {
            size,
            ..CapReport::default()
        };
        let grew = size.bytes > self.last_bytes + self.cap / 100;
        if grew || self.last_bytes == 0 {
            self.last_bytes = size.bytes;
        }
        if size.bytes <= self.high() && self.rows_bound.is_none() {
            return Ok(report);
        }
        // The server's cheap estimate says whether to look closer; the exact count decides.
        let estimate = match size.rows_estimate {
            Some(n) => n,
            None => store.stats()?.infohashes,
        };
        let bound = match self.rows_bound {
            None => store.stats()?.infohashes,
            // Still growing past the cap at this bound: rows got bigger; tighten it.
            Some(b) if size.bytes > self.high() && grew => b - b / 20,
            Some(b) => b,
        };
        self.rows_bound = Some(bound);
        if estimate <= bound - bound / 50 {
            return Ok(report);
        }
        let rows = store.stats()?.infohashes;
        if rows > bound - bound / 50 {
            let mut left = rows - (bound - bound / 20);
            while left > 0 {
                let n = store.evict(left.min(10_000) as usize)?;
                report.evicted += n;
                if n == 0 {
                    report.stuck = true;
                    break;
                }
                left = left.saturating_sub(n);
            }
            store.compact()?;
            report.size = store.size()?;
        }
        Ok(report)
    }
}

/// `700M`, `2G`, `512MiB`, `10GB`, `4096`: bytes (units are powers of 1,024).
pub fn parse_size(text: &str) -> Option<u64> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let unit = unit.trim().to_ascii_lowercase();
    let unit = unit.trim_end_matches("ib").trim_end_matches('b');
    let mult: u64 = match unit {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        "t" => 1 << 40,
        _ => return None,
    };
    let n: f64 = num.parse().ok()?;
    let v = n * mult as f64;
    (n.is_finite() && n >= 0.0 && v < 9.0e18).then_some(v as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("700M"), Some(700 << 20));
        assert_eq!(parse_size("2 GiB"), Some(2 << 30));
        assert_eq!(parse_size("1.5g"), Some(3 << 29));
        assert_eq!(parse_size("10GB"), Some(10 << 30));
        for bad in ["", "G", "-1G", "5X", "1e30"] {
            assert_eq!(parse_size(bad), None, "{bad}");
        }
    }
}
