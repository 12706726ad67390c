//! A fixed-memory per-IP rate limiter: IPs hash (with a secret key) into a table of token
//! buckets. Colliding IPs share a bucket, which errs on the side of limiting; memory never grows.

use std::net::IpAddr;

use crate::Instant;

#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    /// Tokens in thousandths.
    milli: u64,
    last: Instant,
}

#[derive(Debug)]
pub(crate) struct RateLimiter {
    slots: Vec<Slot>,
    key: u64,
    rate: u64,
    burst: u64,
}

impl RateLimiter {
    pub(crate) fn new(slots: usize, rate: u32, burst: u32, key: u64) -> Self {
        RateLimiter {
            slots: vec![Slot::default(); if rate == 0 { 0 } else { slots.max(1) }],
            key,
            rate: rate as u64,
            burst: burst.max(1) as u64 * 1000,
        }
    }

    /// True if `ip` has a token now (nothing is taken).
    pub(crate) fn would_allow(&mut self, now: Instant, ip: IpAddr) -> bool {
        if self.slots.is_empty() {
            return true;
        }
        let i = (self.hash(ip) % self.slots.len() as u64) as usize;
        let s = self.slots[i];
        if s.last == Instant::ZERO && s.milli == 0 {
            return true;
        }
        let refill = now.saturating_since(s.last).as_millis() as u64 * self.rate;
        (s.milli + refill).min(self.burst) >= 1000
    }

    /// Takes one token for `ip`; false if it has none left.
    pub(crate) fn allow(&mut self, now: Instant, ip: IpAddr) -> bool {
        if self.slots.is_empty() {
            return true;
        }
        let i = (self.hash(ip) % self.slots.len() as u64) as usize;
        let s = &mut self.slots[i];
        if s.last == Instant::ZERO && s.milli == 0 {
            s.milli = self.burst;
            s.last = now;
        }
        let elapsed = now.saturating_since(s.last);
        let refill = elapsed.as_millis() as u64 * self.rate;
        s.milli = (s.milli + refill).min(self.burst);
        s.last = now;
        if s.milli >= 1000 {
            s.milli -= 1000;
            true
        } else {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

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
