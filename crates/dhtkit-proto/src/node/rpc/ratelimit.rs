//! Rate limits. Inbound, per source IP: [`InboundLimiter`] keeps exact state for each active
//! IP (a bounded map) and bans IPs that keep exceeding their rate. Outbound, per destination:
//! [`RateLimiter`], a fixed-memory table of token buckets that IPs hash into (colliding IPs
//! share a budget, which only makes us more polite). Node-wide: [`Bucket`].

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::net::IpAddr;

use crate::Instant;

/// 64×64→128-bit multiply, folded: the mixing step of the keyed hash below.
#[inline]
fn fold_mul(a: u64, b: u64) -> u64 {
    let p = (a as u128).wrapping_mul(b as u128);
    (p as u64) ^ ((p >> 64) as u64)
}

/// A keyed hash for IP keys: two folded multiplies with secret 64-bit keys, so that an
/// attacker who does not know the keys cannot aim many addresses at one bucket, and
/// neighbouring addresses land far apart.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KeyedHash {
    k0: u64,
    k1: u64,
}

impl KeyedHash {
    pub(crate) fn new(key: u64) -> KeyedHash {
        // Two keys from one, each odd (a multiplier must not lose its low bits).
        let k0 = fold_mul(key ^ 0x9e37_79b9_7f4a_7c15, 0xbf58_476d_1ce4_e5b9) | 1;
        let k1 = fold_mul(key ^ 0x94d0_49bb_1331_11eb, 0x2545_f491_4f6c_dd1d) | 1;
        KeyedHash { k0, k1 }
    }

    #[inline]
    pub(crate) fn hash(&self, x: u64) -> u64 {
        fold_mul(fold_mul(x ^ self.k0, self.k1) ^ self.k1, self.k0)
    }
}

/// The [`Hasher`] of [`KeyedHash`], for maps keyed by one `u64`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KeyedHasher {
    keys: KeyedHash,
    h: u64,
}

impl Hasher for KeyedHasher {
    fn finish(&self) -> u64 {
        self.keys.hash(self.h)
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(b));
        }
    }

    fn write_u64(&mut self, x: u64) {
        self.h = fold_mul(self.h ^ x, self.keys.k1);
    }
}

impl BuildHasher for KeyedHash {
    type Hasher = KeyedHasher;

    fn build_hasher(&self) -> KeyedHasher {
        KeyedHasher { keys: *self, h: 0 }
    }
}

/// The key of an IP: an IPv4 address; for a global IPv6 address its /64 prefix (one host, for
/// abuse purposes: a host is given a whole /64); for any other IPv6 address (unique local,
/// link-local: a LAN or a test network, where many hosts share a /64) the whole address,
/// folded.
///
/// Keys never collide across the three kinds: IPv4 keys have their top 32 bits set, global
/// IPv6 prefixes (2000::/3) have their top bit clear, and folded addresses have their top bit
/// set and not all of the top 32.
pub(crate) fn ip_key(ip: IpAddr) -> u64 {
    match ip {
        IpAddr::V4(v) => 0xffff_ffff_0000_0000 | u32::from(v) as u64,
        IpAddr::V6(v) if crate::addr::classify(ip) == crate::addr::AddrClass::Global => {
            (u128::from(v) >> 64) as u64
        }
        IpAddr::V6(v) => {
            let a = u128::from(v);
            let h = fold_mul(
                (a >> 64) as u64 ^ 0x9e37_79b9_7f4a_7c15,
                0xbf58_476d_1ce4_e5b9,
            );
            let h = fold_mul(h ^ a as u64, 0x94d0_49bb_1331_11eb);
            let k = h | 1 << 63;
            if k >> 32 == 0xffff_ffff {
                k & !(1 << 62)
            } else {
                k
            }
        }
    }
}

/// The address a key stands for: the IPv4 address, or the first address of a global IPv6
/// /64; `None` for a folded (non-global) IPv6 address.
fn key_ip(k: u64) -> Option<IpAddr> {
    if k >> 32 == 0xffff_ffff {
        Some(IpAddr::V4(std::net::Ipv4Addr::from(k as u32)))
    } else if k >> 63 == 0 {
        Some(IpAddr::V6(std::net::Ipv6Addr::from((k as u128) << 64)))
    } else {
        None
    }
}

/// True when wrapping millisecond time `a` is later than `b`.
#[inline]
fn later(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

/// How much of the node-wide reply budget a query may use, by its sender's record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Standing {
    /// Within its rate for at least [`KNOWN_AFTER_MS`]: may use the whole budget.
    Known,
    /// New (or its record is young): may use the budget down to a quarter.
    New,
    /// Over its rate recently, or untracked (the table was full): down to a half only.
    Suspect,
}

/// How [`InboundLimiter::check`] judged a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Within its rate, with the sender's standing.
    Accept(Standing),
    /// Over its rate: dropped.
    Limited,
    /// Banned: dropped.
    Banned,
}

/// What the limiter remembers of one IP (20 bytes).
#[derive(Debug, Clone, Copy)]
struct Entry {
    /// Tokens, in thousandths.
    milli: u32,
    /// Last refill (milliseconds since the epoch, wrapping).
    last_ms: u32,
    /// When the current run of refusals began; 0 when the IP is within its rate.
    over_since: u32,
    /// The last refusal.
    last_over: u32,
    /// Banned until then; 0 when not banned.
    banned_until: u32,
    /// When this record began.
    first_ms: u32,
}

/// An IP within its rate for this long is known.
const KNOWN_AFTER_MS: u32 = 2_000;
/// A new IP starts with this share of its burst (it earns the rest at its rate): a flood
/// from many fresh addresses spends little before it is refused.
const INITIAL_BURST_DIVISOR: u64 = 5;
/// A run of refusals ends after this long without one.
const QUIET_MS: u32 = 2_000;
/// An IP refused within this long is a suspect.
const SUSPECT_MS: u32 = 10_000;
/// The table is swept for idle entries at most this often when it is full.
const SWEEP_EVERY_MS: u32 = 1_000;

/// Per-IP limits on the queries a node answers, with bans.
///
/// Each active IP (a global IPv6 /64 counts as one) has its own token bucket in a map of at most
/// `max_ips` entries. An entry whose bucket has refilled and that is neither over its rate
/// nor banned carries no information, so it is what gets evicted when the map is full: an
/// attacker can fill the map only with IPs that keep spending, and cannot push out an IP
/// whose state matters. IPs that find the map full of such spenders share one overflow
/// bucket (and are suspects). An IP refused without a break of [`QUIET_MS`] for `ban_after`
/// is banned for `ban_for`; a banned IP's datagrams are dropped before they are parsed.
#[derive(Debug)]
pub(crate) struct InboundLimiter {
    map: HashMap<u64, Entry, KeyedHash>,
    max_ips: usize,
    /// Tokens per millisecond, in thousandths (= tokens per second); 0 turns the limiter off.
    rate: u64,
    burst: u64,
    ban_after_ms: u32,
    ban_for_ms: u32,
    overflow: Bucket,
    last_sweep: Option<u32>,
    /// Bans so far.
    pub(crate) bans: u64,
}

impl InboundLimiter {
    pub(crate) fn new(
        rate: u32,
        burst: u32,
        max_ips: usize,
        ban_after: std::time::Duration,
        ban_for: std::time::Duration,
        key: u64,
        now: Instant,
    ) -> InboundLimiter {
        let ms = |d: std::time::Duration| d.as_millis().min(u32::MAX as u128 / 4) as u32;
        InboundLimiter {
            map: HashMap::with_hasher(KeyedHash::new(key)),
            max_ips: max_ips.max(1),
            rate: rate as u64,
            burst: (burst.max(1) as u64 * 1000).min(u32::MAX as u64),
            ban_after_ms: ms(ban_after),
            ban_for_ms: ms(ban_for).max(1),
            // Untracked IPs share the budget of a few tracked ones.
            overflow: Bucket::new(rate.saturating_mul(4), burst.saturating_mul(4), now),
            last_sweep: None,
            bans: 0,
        }
    }

    /// IPs tracked now.
    pub(crate) fn tracked(&self) -> usize {
        self.map.len()
    }

    /// IPs banned now, the most recently banned first, at most `max`.
    pub(crate) fn banned(&self, now: Instant, max: usize) -> Vec<IpAddr> {
        if self.rate == 0 {
            return Vec::new();
        }
        let now_ms = now.as_millis() as u32;
        let mut v: Vec<(u32, u64)> = self
            .map
            .iter()
            .filter(|(_, e)| e.banned_until != 0 && later(e.banned_until, now_ms))
            .map(|(k, e)| (e.banned_until.wrapping_sub(now_ms), *k))
            .collect();
        v.sort_unstable_by(|a, b| b.cmp(a));
        v.into_iter()
            .filter_map(|(_, k)| key_ip(k))
            .take(max)
            .collect()
    }

    /// True if `ip` is banned: its datagrams are dropped unread.
    #[inline]
    pub(crate) fn is_banned(&self, now: Instant, ip: IpAddr) -> bool {
        if self.rate == 0 || self.map.is_empty() {
            return false;
        }
        self.map
            .get(&ip_key(ip))
            .is_some_and(|e| e.banned_until != 0 && later(e.banned_until, now.as_millis() as u32))
    }

    fn refilled(&self, e: &Entry, now_ms: u32) -> u64 {
        let elapsed = now_ms.wrapping_sub(e.last_ms) as u64;
        (e.milli as u64 + elapsed.saturating_mul(self.rate)).min(self.burst)
    }

    /// Judges one query from `ip`, taking a token when it is accepted.
    pub(crate) fn check(&mut self, now: Instant, ip: IpAddr) -> Verdict {
        if self.rate == 0 {
            return Verdict::Accept(Standing::Known);
        }
        let now_ms = (now.as_millis() as u32).max(1);
        let key = ip_key(ip);
        if !self.map.contains_key(&key) {
            if self.map.len() >= self.max_ips {
                self.sweep(now_ms);
            }
            if self.map.len() >= self.max_ips {
                return if self.overflow.allow(now) {
                    Verdict::Accept(Standing::Suspect)
                } else {
                    Verdict::Limited
                };
            }
            let initial = (self.burst / INITIAL_BURST_DIVISOR).max(1000);
            self.map.insert(
                key,
                Entry {
                    milli: (initial - 1000) as u32,
                    last_ms: now_ms,
                    over_since: 0,
                    last_over: 0,
                    banned_until: 0,
                    first_ms: now_ms,
                },
            );
            return Verdict::Accept(Standing::New);
        }
        let tokens = {
            let e = &self.map[&key];
            if e.banned_until != 0 && later(e.banned_until, now_ms) {
                return Verdict::Banned;
            }
            if e.banned_until != 0 {
                // The ban is over: a fresh start, as a new IP.
                (self.burst / INITIAL_BURST_DIVISOR).max(1000)
            } else {
                self.refilled(e, now_ms)
            }
        };
        let (ban_after, ban_for) = (self.ban_after_ms, self.ban_for_ms);
        let e = self.map.get_mut(&key).expect("present");
        if e.banned_until != 0 {
            *e = Entry {
                milli: 0,
                last_ms: now_ms,
                over_since: 0,
                last_over: 0,
                banned_until: 0,
                first_ms: now_ms,
            };
        }
        e.last_ms = now_ms;
        let quiet = e.last_over == 0 || now_ms.wrapping_sub(e.last_over) > QUIET_MS;
        if tokens >= 1000 {
            e.milli = (tokens - 1000) as u32;
            if quiet {
                e.over_since = 0;
            }
            let standing = if e.last_over != 0 && now_ms.wrapping_sub(e.last_over) < SUSPECT_MS {
                Standing::Suspect
            } else if now_ms.wrapping_sub(e.first_ms) >= KNOWN_AFTER_MS {
                Standing::Known
            } else {
                Standing::New
            };
            return Verdict::Accept(standing);
        }
        e.milli = tokens as u32;
        if e.over_since == 0 || quiet {
            e.over_since = now_ms;
        }
        e.last_over = now_ms;
        if ban_after > 0 && now_ms.wrapping_sub(e.over_since) >= ban_after {
            e.banned_until = now_ms.wrapping_add(ban_for).max(1);
            self.bans += 1;
            return Verdict::Banned;
        }
        Verdict::Limited
    }

    /// Forgets the records that carry no information (the node calls this once per
    /// maintenance interval, so that the records of IPs that queried once do not stay until
    /// the map is full); frees the map when none is left.
    pub(crate) fn forget_idle(&mut self, now: Instant) {
        if self.map.is_empty() {
            if self.map.capacity() > 0 {
                self.map = HashMap::with_hasher(*self.map.hasher());
            }
            return;
        }
        self.retain_informative((now.as_millis() as u32).max(1));
        if self.map.is_empty() {
            self.map = HashMap::with_hasher(*self.map.hasher());
        }
    }

    /// Forgets the entries that carry no information (bucket full, not over, not banned), at
    /// most once a second.
    fn sweep(&mut self, now_ms: u32) {
        if self
            .last_sweep
            .is_some_and(|t| now_ms.wrapping_sub(t) < SWEEP_EVERY_MS)
        {
            return;
        }
        self.last_sweep = Some(now_ms);
        self.retain_informative(now_ms);
    }

    fn retain_informative(&mut self, now_ms: u32) {
        let (rate, burst) = (self.rate, self.burst);
        self.map.retain(|_, e| {
            let banned = e.banned_until != 0 && later(e.banned_until, now_ms);
            let full = (e.milli as u64
                + (now_ms.wrapping_sub(e.last_ms) as u64).saturating_mul(rate))
                >= burst;
            let over = e.last_over != 0 && now_ms.wrapping_sub(e.last_over) < SUSPECT_MS;
            banned || over || !full
        });
        if self.map.len() * 4 < self.map.capacity() {
            // A burst of new IPs grew the table: give the room back once they are forgotten.
            self.map.shrink_to_fit();
        }
    }
}

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
        // `last_ms` may be up to a millisecond ahead (a token taken is dated by the end of
        // its millisecond): no time has passed then.
        let d = now_ms.wrapping_sub(self.last_ms);
        let elapsed = if (d as i32) < 0 && d > u32::MAX - 2 {
            0
        } else {
            d as u64
        };
        (self.milli as u64 + elapsed.saturating_mul(rate)).min(burst)
    }
}

/// Slots a sparse [`RateLimiter`] holds before it allocates its whole table.
const SPARSE_SLOTS: usize = 16;

/// Outbound budgets per destination IP: `size` token buckets that IPs hash into.
///
/// A slot whose bucket has refilled gives the same budget as one never used, so only the
/// slots in use need memory: while few are (a node that pings one node every few seconds),
/// they are kept in a short list by slot number; past [`SPARSE_SLOTS`] of them the whole
/// table is allocated, and it is freed again once every slot has refilled. Either way the
/// budgets are the same.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    /// The whole table (allocated when the short list overflows), or empty.
    slots: Vec<Slot>,
    /// The slots in use while `slots` is empty: (slot number, slot).
    sparse: Vec<(u32, Slot)>,
    size: usize,
    key: KeyedHash,
    rate: u64,
    burst: u64,
    /// The last time a token was taken (milliseconds, wrapping; 0 = never).
    last_ms: u32,
    /// Date a token taken mid-millisecond from the end of that millisecond, so that at one a
    /// second whole seconds pass between tokens, not 999.x milliseconds (the strict limit a
    /// crawler uses). Off, refill counts from the start of the millisecond, which errs by
    /// under a millisecond the generous way.
    exact: bool,
}

impl RateLimiter {
    pub(crate) fn new(slots: usize, rate: u32, burst: u32, key: u64) -> Self {
        RateLimiter {
            slots: Vec::new(),
            sparse: Vec::new(),
            size: if rate == 0 { 0 } else { slots.max(1) },
            key: KeyedHash::new(key),
            rate: rate as u64,
            burst: (burst.max(1) as u64 * 1000).min(u32::MAX as u64),
            last_ms: 0,
            exact: false,
        }
    }

    fn slot(&self, ip: IpAddr) -> usize {
        (self.hash(ip) % self.size as u64) as usize
    }

    /// The slot `i` as stored (the never-used pattern when it is not).
    fn get(&self, i: usize) -> Slot {
        if !self.slots.is_empty() {
            return self.slots[i];
        }
        self.sparse
            .iter()
            .find(|(j, _)| *j as usize == i)
            .map(|(_, s)| *s)
            .unwrap_or_default()
    }

    /// Tokens taken mid-millisecond are dated from its end (see `exact`).
    pub(crate) fn exact(mut self) -> Self {
        self.exact = true;
        self
    }

    /// True if `ip` has a token now (nothing is taken).
    pub(crate) fn would_allow(&mut self, now: Instant, ip: IpAddr) -> bool {
        if self.size == 0 {
            return true;
        }
        let s = self.get(self.slot(ip));
        s.is_new() || s.refilled(now.as_millis() as u32, self.rate, self.burst) >= 1000
    }

    /// Takes one token for `ip`; false if it has none left.
    pub(crate) fn allow(&mut self, now: Instant, ip: IpAddr) -> bool {
        if self.size == 0 {
            return true;
        }
        let now_ms = now.as_millis() as u32;
        let (rate, burst) = (self.rate, self.burst);
        let i = self.slot(ip);
        let mut s = self.get(i);
        let tokens = if s.is_new() {
            burst
        } else {
            s.refilled(now_ms, rate, burst)
        };
        let ok = tokens >= 1000;
        if !self.exact {
            s.last_ms = now_ms;
            // Never store the all-zero "new" pattern for a used slot.
            s.milli = if ok { tokens - 1000 } else { tokens }.max(1) as u32;
            self.put(i, s, now_ms);
            self.last_ms = now_ms.max(1);
            return ok;
        }
        // Refill counts from the end of the millisecond a token was taken in, so that whole
        // seconds pass between queries at one a second, not 999.x milliseconds.
        let sub_ms = !now.since_epoch().subsec_nanos().is_multiple_of(1_000_000);
        let ahead = (now_ms.wrapping_sub(s.last_ms) as i32) < 0 && !s.is_new();
        s.last_ms = if ok && sub_ms {
            now_ms.wrapping_add(1)
        } else if ahead {
            s.last_ms
        } else {
            now_ms
        };
        s.milli = if ok { tokens - 1000 } else { tokens } as u32;
        if s.is_new() {
            // Never store the all-zero "new" pattern for a used slot (only possible at
            // millisecond 0 of the wrapping clock): one thousandth of a token is the least
            // error that avoids it.
            s.milli = 1;
        }
        self.put(i, s, now_ms);
        self.last_ms = now_ms.max(1);
        ok
    }

    fn put(&mut self, i: usize, s: Slot, now_ms: u32) {
        if !self.slots.is_empty() {
            self.slots[i] = s;
            return;
        }
        if let Some(e) = self.sparse.iter_mut().find(|(j, _)| *j as usize == i) {
            e.1 = s;
            return;
        }
        if self.sparse.len() >= SPARSE_SLOTS {
            let (rate, burst) = (self.rate, self.burst);
            self.sparse
                .retain(|(_, x)| x.refilled(now_ms, rate, burst) < burst);
        }
        if self.sparse.len() >= SPARSE_SLOTS {
            let mut all = vec![Slot::default(); self.size];
            for (j, x) in self.sparse.drain(..) {
                all[j as usize] = x;
            }
            all[i] = s;
            self.slots = all;
            self.sparse = Vec::new();
            return;
        }
        self.sparse.push((i as u32, s));
    }

    /// Frees what the budgets no longer need: the whole table once every slot has refilled
    /// (no token taken for as long as an empty bucket takes to fill), the short list's
    /// refilled slots.
    pub(crate) fn release_if_full(&mut self, now: Instant) {
        let now_ms = now.as_millis() as u32;
        let (rate, burst) = (self.rate, self.burst);
        if !self.slots.is_empty() {
            let fill_ms = burst / rate.max(1) + 1;
            if now_ms.wrapping_sub(self.last_ms) as u64 >= fill_ms {
                self.slots = Vec::new();
            }
            return;
        }
        self.sparse
            .retain(|(_, x)| x.refilled(now_ms, rate, burst) < burst);
        if self.sparse.is_empty() {
            self.sparse = Vec::new();
        }
    }

    fn hash(&self, ip: IpAddr) -> u64 {
        self.key.hash(ip_key(ip))
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

    /// Takes a token if one is available beyond `reserve` (in thousandths of a token): the
    /// reserve is kept for callers that use [`Bucket::allow`].
    pub(crate) fn allow_above(&mut self, now: Instant, reserve: u64) -> bool {
        if self.rate == 0 {
            return true;
        }
        self.refill(now);
        if self.milli >= 1000 + reserve {
            self.milli -= 1000;
            true
        } else {
            false
        }
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

    fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
        IpAddr::from([a, b, c, d])
    }

    fn limiter(max_ips: usize) -> InboundLimiter {
        InboundLimiter::new(
            5,
            50,
            max_ips,
            Duration::from_secs(10),
            Duration::from_secs(300),
            42,
            Instant::ZERO,
        )
    }

    /// The case that starved innocents when IPs shared hashed buckets: a flood from 500 IPs,
    /// 16 well-behaved IPs next to them. Every query of the sixteen is accepted, and the
    /// flooders are refused and then banned.
    #[test]
    fn a_flood_from_many_ips_never_limits_the_well_behaved() {
        let mut l = limiter(16_384);
        let flood: Vec<IpAddr> = (0..500u32)
            .map(|i| v4(127, 1, (i / 250) as u8, (i % 250) as u8 + 1))
            .collect();
        let good: Vec<IpAddr> = (0..16u8).map(|i| v4(127, 2, 0, i + 1)).collect();
        let start = Instant::ZERO + Duration::from_secs(1);
        let mut good_refused = 0;
        let mut flood_accepted = 0;
        // 12 simulated seconds in 10 ms steps: each flooder sends 4 queries per step (400/s),
        // each good IP one query every 250 ms (4/s).
        for step in 0..1200u64 {
            let now = start + Duration::from_millis(10 * step);
            for ip in &flood {
                for _ in 0..4 {
                    if l.is_banned(now, *ip) {
                        continue;
                    }
                    flood_accepted += matches!(l.check(now, *ip), Verdict::Accept(_)) as u64;
                }
            }
            if step % 25 == 0 {
                for ip in &good {
                    assert!(!l.is_banned(now, *ip));
                    match l.check(now, *ip) {
                        Verdict::Accept(s) => assert_ne!(s, Standing::Suspect, "a clean record"),
                        _ => good_refused += 1,
                    }
                }
            }
        }
        assert_eq!(good_refused, 0);
        assert_eq!(l.bans, 500, "every flooder banned");
        // Each flooder got a fifth of its burst and about 5/s until its ban (10 s of refusals).
        assert!(flood_accepted <= 500 * (10 + 5 * 11), "{flood_accepted}");
        let later = start + Duration::from_secs(12);
        assert!(flood.iter().all(|ip| l.is_banned(later, *ip)));
        // A ban ends.
        let after = later + Duration::from_secs(301);
        assert!(!l.is_banned(after, flood[0]));
        assert_eq!(l.check(after, flood[0]), Verdict::Accept(Standing::New));
    }

    #[test]
    fn a_short_burst_is_limited_but_not_banned() {
        let mut l = limiter(100);
        let ip = v4(8, 8, 8, 8);
        let t = Instant::ZERO + Duration::from_secs(5);
        let ok = (0..80)
            .filter(|_| matches!(l.check(t, ip), Verdict::Accept(_)))
            .count();
        assert_eq!(ok, 10, "a new IP starts with a fifth of its burst");
        // Within its rate again after a pause: accepted, a suspect for a while, never banned,
        // then known; a known IP has its whole burst.
        let t2 = t + Duration::from_secs(3);
        assert_eq!(l.check(t2, ip), Verdict::Accept(Standing::Suspect));
        let t3 = t + Duration::from_secs(30);
        assert_eq!(l.check(t3, ip), Verdict::Accept(Standing::Known));
        let ok = (0..80)
            .filter(|_| matches!(l.check(t3, ip), Verdict::Accept(_)))
            .count();
        assert_eq!(ok, 49, "the rest of the burst");
        assert_eq!(l.bans, 0);
    }

    /// A full table evicts only entries that carry nothing; an IP over its rate keeps its
    /// state however many new IPs arrive, and the newcomers share the overflow budget.
    #[test]
    fn newcomers_cannot_evict_an_ip_whose_state_matters() {
        let mut l = limiter(4);
        let t = Instant::ZERO + Duration::from_secs(1);
        let busy = v4(9, 9, 9, 9);
        while matches!(l.check(t, busy), Verdict::Accept(_)) {}
        for i in 0..200u8 {
            let _ = l.check(t + Duration::from_millis(i as u64), v4(10, 0, 0, i));
        }
        assert!(l.tracked() <= 4);
        // Its state survived: still refused at once, and a suspect once it has a token again
        // (a forgotten IP would start afresh with a full burst and a clean record).
        assert_eq!(
            l.check(t + Duration::from_millis(100), busy),
            Verdict::Limited
        );
        assert_eq!(
            l.check(t + Duration::from_millis(400), busy),
            Verdict::Accept(Standing::Suspect)
        );
        // Overflow IPs are suspects and share a budget of four IPs' burst.
        let mut l = limiter(1);
        let _ = l.check(t, v4(1, 1, 1, 1));
        let over = (0..1000u32)
            .filter(|i| {
                l.check(t, v4(2, 2, (i >> 8) as u8, *i as u8)) == Verdict::Accept(Standing::Suspect)
            })
            .count();
        assert_eq!(over, 200);
        // Once the tracked IP is idle (its bucket full), it may be swept for a newcomer.
        let idle = t + Duration::from_secs(60);
        assert_eq!(
            l.check(idle, v4(3, 3, 3, 3)),
            Verdict::Accept(Standing::New)
        );
    }

    #[test]
    fn local_ipv6_hosts_are_counted_one_by_one() {
        let mut l = limiter(100);
        let t = Instant::ZERO + Duration::from_secs(1);
        for i in 0..100u16 {
            let ip = IpAddr::from([0xfd00, 0, 0, 0, 0, 0, 0, i + 1]);
            assert!(matches!(l.check(t, ip), Verdict::Accept(_)), "{ip}");
        }
        assert_eq!(
            l.tracked(),
            100,
            "each unique local address is its own host"
        );
        let v4 = ip_key(v4(255, 255, 255, 255));
        let local = ip_key(IpAddr::from([0xfd00, 0, 0, 0, 0, 0, 0, 1]));
        let global = ip_key(IpAddr::from([0x2001, 0x4860, 0, 0, 0, 0, 0, 1]));
        assert!(v4 != local && local != global && v4 != global);
        assert_eq!(
            key_ip(global),
            Some(IpAddr::from([0x2001, 0x4860, 0, 0, 0, 0, 0, 0]))
        );
        assert_eq!(key_ip(local), None);
    }

    #[test]
    fn ipv6_hosts_are_counted_by_their_64() {
        let mut l = limiter(100);
        let t = Instant::ZERO + Duration::from_secs(1);
        let mut ok = 0;
        for i in 0..100u16 {
            let ip = IpAddr::from([0x2001, 0x4860, 1, 2, i, i, i, i]);
            ok += matches!(l.check(t, ip), Verdict::Accept(_)) as usize;
        }
        assert_eq!(ok, 10, "one /64, one budget");
        assert_eq!(l.tracked(), 1);
    }

    /// Neighbouring addresses spread over the slots like random ones would.
    #[test]
    fn the_keyed_hash_spreads_neighbours() {
        for key in [0u64, 1, 0xdead_beef] {
            let h = KeyedHash::new(key);
            let mut load = [0u32; 1024];
            for i in 0..1024u32 {
                let ip = v4(127, 0, (i >> 8) as u8, i as u8);
                load[(h.hash(ip_key(ip)) % 1024) as usize] += 1;
            }
            let used = load.iter().filter(|&&n| n > 0).count();
            let max = *load.iter().max().unwrap();
            // Random placement: about 647 slots used, the fullest holding 5 or 6.
            assert!((600..=700).contains(&used), "key {key}: {used} slots used");
            assert!(max <= 8, "key {key}: a slot holds {max}");
        }
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

    /// The short list, the whole table and their release give exactly the budgets of a
    /// plain table of token buckets, whatever the traffic.
    #[test]
    fn the_sparse_table_gives_the_budgets_of_a_full_one() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
        let (mut freed, mut dense) = (0, 0);
        for round in 0..20u64 {
            let mut r = RateLimiter::new(64, 2, 10, round);
            let mut reference = vec![Slot::default(); 64];
            let mut t = Instant::ZERO + Duration::from_secs(1);
            let mut dense_seen = false;
            for step in 0..3_000 {
                t = t + Duration::from_millis(
                    rng.random_range(0..if round % 2 == 0 { 30 } else { 400 }),
                );
                let ip = v4(
                    10,
                    0,
                    0,
                    rng.random_range(0..if step % 500 < 250 { 8 } else { 200 }),
                );
                let i = r.slot(ip);
                let now_ms = t.as_millis() as u32;
                let s = &mut reference[i];
                let tokens = if s.is_new() {
                    r.burst
                } else {
                    s.refilled(now_ms, r.rate, r.burst)
                };
                s.last_ms = now_ms;
                let want = tokens >= 1000;
                s.milli = if want { tokens - 1000 } else { tokens }.max(1) as u32;
                assert_eq!(r.allow(t, ip), want, "round {round} step {step}");
                dense_seen |= !r.slots.is_empty();
                if step % 1000 == 999 {
                    // A quiet spell: every bucket refills.
                    t = t + Duration::from_secs(6);
                }
                if step % 97 == 0 || step % 1000 == 999 {
                    r.release_if_full(t);
                    freed += (dense_seen && r.slots.is_empty()) as usize;
                }
            }
            dense += dense_seen as usize;
        }
        assert!(dense >= 5, "the table was allocated in {dense} rounds");
        assert!(freed > 0, "the table was never freed");
        // An idle limiter holds nothing.
        let mut r = RateLimiter::new(64, 2, 10, 1);
        let t = Instant::ZERO + Duration::from_secs(1);
        for i in 0..40 {
            r.allow(t, v4(10, 0, 1, i));
        }
        assert!(!r.slots.is_empty());
        r.release_if_full(t + Duration::from_secs(6));
        assert!(r.slots.is_empty() && r.sparse.is_empty());
        r.allow(t + Duration::from_secs(7), v4(10, 0, 1, 1));
        assert_eq!((r.slots.len(), r.sparse.len()), (0, 1));
        r.release_if_full(t + Duration::from_secs(8));
        assert_eq!(r.sparse.capacity(), 0);
    }
}

#[cfg(test)]
mod strict_tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn one_a_second_means_a_whole_second_between_queries() {
        let mut r = RateLimiter::new(64, 1, 1, 7).exact();
        let ip: IpAddr = "127.240.0.5".parse().unwrap();
        let t0 = Instant::ZERO + Duration::from_millis(1295);
        assert!(r.allow(t0, ip));
        for ms in [1, 500, 992, 999] {
            let t = t0 + Duration::from_millis(ms);
            assert!(!r.would_allow(t, ip), "allowed {ms} ms later");
        }
        assert!(r.would_allow(t0 + Duration::from_millis(1000), ip));
        // Taken in the middle of a millisecond: the next one a whole second later.
        let t1 = t0 + Duration::from_micros(5_000_500);
        assert!(r.allow(t1, ip));
        assert!(!r.would_allow(t1 + Duration::from_micros(999_900), ip));
        assert!(!r.allow(t1 + Duration::from_micros(100), ip));
        assert!(!r.would_allow(t1 + Duration::from_micros(999_900), ip));
        assert!(r.would_allow(t1 + Duration::from_micros(1_000_500), ip));
    }
}
