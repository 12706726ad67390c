//! Time as the protocol core sees it: a monotonic instant supplied by the driver.
//!
//! The core never reads a clock. Drivers map their clock onto [`Instant`] (the tokio driver uses
//! the time elapsed since it started; the simulator uses virtual time).

use std::ops::{Add, Sub};
use std::time::Duration;

/// A point in time: nanoseconds from an arbitrary epoch chosen by the driver (8 bytes, good
/// for 584 years).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
pub struct Instant(u64);

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl Instant {
    /// The epoch.
    pub const ZERO: Instant = Instant(0);

    /// The instant `d` after the epoch.
    pub fn from_epoch(d: Duration) -> Instant {
        Instant(nanos(d))
    }

    /// Time since the epoch.
    pub const fn since_epoch(self) -> Duration {
        Duration::from_nanos(self.0)
    }

    /// Milliseconds since the epoch.
    pub const fn as_millis(self) -> u64 {
        self.0 / 1_000_000
    }

    /// Time elapsed from `earlier` to `self`, zero if `earlier` is later.
    pub fn saturating_since(self, earlier: Instant) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, d: Duration) -> Instant {
        Instant(self.0.saturating_add(nanos(d)))
    }
}

impl Sub<Duration> for Instant {
    type Output = Instant;
    fn sub(self, d: Duration) -> Instant {
        Instant(self.0.saturating_sub(nanos(d)))
    }
}
