//! A fixed-memory per-IP rate limiter: IPs hash (with a secret key) into a table of token
//! buckets. Colliding IPs share a bucket, which errs on the side of limiting; memory never grows.

use std::net::IpAddr;

use crate::Instant;

/// One bucket in 8 bytes: tokens in thousandths, and the last refill in milliseconds since
/// the epoch modulo 2^32 (elapsed times are taken with wrapping arithmetic, which is exact as
/// long as a slot is touched at least every 49 days; a slot idle longer is simply full).
#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    milli: u32,
    last_ms: u32,
}

impl Slot {
    fn is_new(&self) -> bool {
        self.milli == 0 && self.last_ms == 0
    }

    fn refilled(&self, now_ms: u32, rate: u64, burst: u64) -> u64 {
        let elapsed = now_ms.wrapping_sub(self.last_ms) as u64;
        (self.milli as u64 + elapsed.saturating_mul(rate)).min(burst)
    }
}

#[derive(Debug)]
pub(crate) struct RateLimiter {
    /// Allocated on first use; empty forever when the limiter is disabled.
    slots: Vec<Slot>,
    size: usize,
    key: u64,
    rate: u64,
    burst: u64,
}

impl RateLimiter {
    pub(crate) fn new(slots: usize, rate: u32, burst: u32, key: u64) -> Self {
        RateLimiter {
            slots: Vec::new(),
            size: if rate == 0 { 0 } else { slots.max(1) },
            key,
            rate: rate as u64,
            burst: (burst.max(1) as u64 * 1000).min(u32::MAX as u64),
        }
    }

    fn slot(&self, ip: IpAddr) -> usize {
        (self.hash(ip) % self.slots.len() as u64) as usize
    }

    /// True if `ip` has a token now (nothing is taken).
    pub(crate) fn would_allow(&mut self, now: Instant, ip: IpAddr) -> bool {
        if self.slots.is_empty() {
            return true;
        }
        let s = self.slots[self.slot(ip)];
        s.is_new() || s.refilled(now.as_millis() as u32, self.rate, self.burst) >= 1000
    }

    /// Takes one token for `ip`; false if it has none left.
    pub(crate) fn allow(&mut self, now: Instant, ip: IpAddr) -> bool {
        if self.size == 0 {
            return true;
        }
        if self.slots.is_empty() {
            self.slots = vec![Slot::default(); self.size];
        }
        let now_ms = now.as_millis() as u32;
        let (rate, burst) = (self.rate, self.burst);
        let i = self.slot(ip);
        let s = &mut self.slots[i];
        let tokens = if s.is_new() {
            burst
        } else {
            s.refilled(now_ms, rate, burst)
        };
        s.last_ms = now_ms;
        if tokens >= 1000 {
            // Never store the all-zero "new" pattern for a used slot.
            s.milli = (tokens - 1000).max(1) as u32;
            true
        } else {
            s.milli = tokens.max(1) as u32;
            false
        }
    }

    fn hash(&self, ip: IpAddr) -> u64 {
        let mut h = self.key ^ 0x9e37_79b9_7f4a_7c15;
        let mut mix = |b: &[u8]| {
            for &x in b {
                h = (h ^ x as u64).wrapping_mul(0x100_0000_01b3);
            }
        };
        match ip {
            IpAddr::V4(v) => mix(&v.octets()),
            IpAddr::V6(v) => mix(&v.octets()[..8]),
        }
        h ^ (h >> 29)
    }
}

/// One token bucket for the whole node: bounds how many queries it sends per second.
#[derive(Debug)]
pub(crate) struct Bucket {
    milli: u64,
    last: Instant,
    rate: u64,
    burst: u64,
}

impl Bucket {
    /// `rate` tokens per second up to `burst`; a rate of 0 never limits.
    pub(crate) fn new(rate: u32, burst: u32, now: Instant) -> Self {
        let burst = burst.max(1) as u64 * 1000;
        Bucket {
            milli: burst,
            last: now,
            rate: rate as u64,
            burst,
        }
    }

    fn refill(&mut self, now: Instant) {
        let ms = now.saturating_since(self.last).as_millis() as u64;
        self.milli = (self.milli + ms.saturating_mul(self.rate)).min(self.burst);
        self.last = self.last.max(now);
    }

    /// True if a token is available now (nothing is taken).
    pub(crate) fn would_allow(&mut self, now: Instant) -> bool {
        if self.rate == 0 {
            return true;
        }
        self.refill(now);
        self.milli >= 1000
    }

    /// Takes a token if one is available.
    pub(crate) fn allow(&mut self, now: Instant) -> bool {
        if !self.would_allow(now) {
            return false;
        }
        if self.rate != 0 {
            self.milli -= 1000;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn global_bucket() {
        let t = Instant::ZERO;
        let mut b = Bucket::new(100, 10, t);
        assert_eq!((0..50).filter(|_| b.allow(t)).count(), 10);
        assert!(!b.would_allow(t));
        let later = t + Duration::from_millis(55);
        assert_eq!((0..50).filter(|_| b.allow(later)).count(), 5);
        let mut off = Bucket::new(0, 1, t);
        assert!((0..1000).all(|_| off.allow(t)));
    }

    #[test]
    fn limits_and_refills() {
        let mut r = RateLimiter::new(64, 10, 5, 1);
        let ip: IpAddr = "127.0.0.9".parse().unwrap();
        let t = Instant::ZERO + Duration::from_secs(1);
        let allowed = (0..20).filter(|_| r.allow(t, ip)).count();
        assert_eq!(allowed, 5);
        let t2 = t + Duration::from_millis(300);
        let allowed = (0..20).filter(|_| r.allow(t2, ip)).count();
        assert_eq!(allowed, 3);
    }
}
