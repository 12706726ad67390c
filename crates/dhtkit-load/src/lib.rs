//! A load generator for DHT nodes on loopback, so that anyone can reproduce BENCHMARKS.md.
//!
//! Three runs, each bounded in time and count, each sending only to the target it is given
//! (which must be on 127.0.0.0/8 or ::1) from its own 127.x.y.z source addresses:
//!
//! - [`saturate`]: S sources, each keeping O queries outstanding (closed loop): the most the
//!   target answers, with latency percentiles.
//! - [`fixed_rate`]: an open-loop offered rate spread over S sources: what one load costs the
//!   target (CPU seconds per thousand replies), whatever its ceiling.
//! - [`flood`]: an open-loop flood from F addresses while G well-behaved clients send a few
//!   queries a second each: what the well-behaved lose, and their latency.
//!
//! Queries are a mix of `ping`, `find_node` and `get_peers` with 4-byte transaction ids that
//! number them, so that each reply is matched to its query. The target's CPU time (every
//! thread, from `/proc/PID/task/*/schedstat`) and resident memory are read before and after
//! when its pid is given. Datagrams are sent and received in batches per wake-up.

#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

/// Longest run accepted.
pub const MAX_DURATION: Duration = Duration::from_secs(600);
/// Highest offered rate accepted (queries per second).
pub const MAX_RATE: u64 = 2_000_000;
/// How long replies are waited for after the last query.
pub const REPLY_WAIT: Duration = Duration::from_secs(1);

/// What went wrong before a run could start.
#[derive(Debug)]
pub struct LoadError(pub String);

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for LoadError {}

fn err(e: impl std::fmt::Display) -> LoadError {
    LoadError(e.to_string())
}

/// The three query kinds sent, in turn.
const KINDS: [&str; 3] = ["ping", "find_node", "get_peers"];

/// A KRPC query of kind `k` (0 ping, 1 find_node, 2 get_peers) with transaction id `tid`.
pub fn query(k: usize, tid: u32, id: &[u8; 20]) -> Vec<u8> {
    let mut m = Vec::with_capacity(100);
    m.extend_from_slice(b"d1:ad2:id20:");
    m.extend_from_slice(id);
    let target = {
        let mut t = *id;
        t[..4].copy_from_slice(&tid.to_be_bytes());
        t
    };
    match k % 3 {
        0 => m.extend_from_slice(b"e1:q4:ping"),
        1 => {
            m.extend_from_slice(b"6:target20:");
            m.extend_from_slice(&target);
            m.extend_from_slice(b"e1:q9:find_node");
        }
        _ => {
            m.extend_from_slice(b"9:info_hash20:");
            m.extend_from_slice(&target);
            m.extend_from_slice(b"e1:q9:get_peers");
        }
    }
    m.extend_from_slice(b"1:t4:");
    m.extend_from_slice(&tid.to_be_bytes());
    m.extend_from_slice(b"1:y1:qe");
    m
}

/// The transaction id of a reply (response or error) to one of our queries.
pub fn reply_tid(d: &[u8]) -> Option<u32> {
    let at = d.windows(5).rposition(|w| w == b"1:t4:")?;
    let t = d.get(at + 5..at + 9)?;
    Some(u32::from_be_bytes(t.try_into().ok()?))
}

/// The target process's CPU time (all threads) and resident memory.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcSample {
    /// CPU time in nanoseconds.
    pub cpu_ns: u64,
    /// Resident set size in bytes.
    pub rss: u64,
}

/// Reads `pid`'s CPU time and memory from /proc (Linux); `None` elsewhere or if it is gone.
pub fn proc_sample(pid: u32) -> Option<ProcSample> {
    let mut cpu_ns = 0;
    for t in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let Ok(t) = t else { continue };
        if let Ok(s) = std::fs::read_to_string(t.path().join("schedstat")) {
            cpu_ns += s
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024);
    Some(ProcSample { cpu_ns, rss })
}

/// Latency percentiles, in milliseconds.
#[derive(Debug, Clone, Copy, Default)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 90th.
    pub p90: f64,
    /// 99th.
    pub p99: f64,
    /// Slowest.
    pub max: f64,
}

fn percentiles(mut v: Vec<u64>) -> Percentiles {
    if v.is_empty() {
        return Percentiles::default();
    }
    v.sort_unstable();
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize] as f64 / 1e6;
    Percentiles {
        p50: at(0.50),
        p90: at(0.90),
        p99: at(0.99),
        max: at(1.0),
    }
}

/// What a run measured.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Which run.
    pub mode: &'static str,
    /// Wall time of the sending phase.
    pub seconds: f64,
    /// Queries sent (by the measured clients).
    pub sent: u64,
    /// Replies received for them.
    pub replies: u64,
    /// Latency of the replies.
    pub latency: Percentiles,
    /// Flood datagrams sent (flood runs).
    pub flood_sent: u64,
    /// The target's CPU seconds during the run, if its pid was given.
    pub target_cpu_s: Option<f64>,
    /// The target's resident memory before and after, if its pid was given.
    pub target_rss: Option<(u64, u64)>,
    /// The target's CPU use (cores) in each second of the run, if its pid was given.
    pub target_cpu_per_sec: Vec<f64>,
}

impl Report {
    /// Replies per second.
    pub fn replies_per_sec(&self) -> f64 {
        self.replies as f64 / self.seconds.max(1e-9)
    }

    /// The share of queries not answered, in percent.
    pub fn loss_pct(&self) -> f64 {
        if self.sent == 0 {
            0.0
        } else {
            100.0 * (self.sent.saturating_sub(self.replies)) as f64 / self.sent as f64
        }
    }

    /// Replies per CPU-second of the target.
    pub fn replies_per_cpu_sec(&self) -> Option<f64> {
        self.target_cpu_s
            .filter(|c| *c > 0.0)
            .map(|c| self.replies as f64 / c)
    }

    /// As one JSON object.
    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "mode": self.mode,
            "seconds": round(self.seconds, 3),
            "sent": self.sent,
            "replies": self.replies,
            "replies_per_sec": round(self.replies_per_sec(), 1),
            "loss_pct": round(self.loss_pct(), 3),
            "latency_ms": {
                "p50": round(self.latency.p50, 3), "p90": round(self.latency.p90, 3),
                "p99": round(self.latency.p99, 3), "max": round(self.latency.max, 3),
            },
            "flood_sent": self.flood_sent,
            "flood_per_sec": round(self.flood_sent as f64 / self.seconds.max(1e-9), 1),
            "target_cpu_s": self.target_cpu_s.map(|c| round(c, 3)),
            "replies_per_target_cpu_s": self.replies_per_cpu_sec().map(|r| round(r, 1)),
            "target_cpu_s_per_1000_replies": self.target_cpu_s
                .filter(|_| self.replies > 0)
                .map(|c| round(1000.0 * c / self.replies as f64, 5)),
            "target_cpu_per_sec": self.target_cpu_per_sec.iter().map(|c| round(*c, 3)).collect::<Vec<_>>(),
            "target_rss_before": self.target_rss.map(|r| r.0),
            "target_rss_after": self.target_rss.map(|r| r.1),
        })
    }
}

fn round(v: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (v * f).round() / f
}

/// Source addresses: 127.`net`.x.y, `n` of them, x from 0 and y from 1.
pub fn sources(net: u8, n: usize) -> Vec<IpAddr> {
    (0..n)
        .map(|i| {
            IpAddr::V4(Ipv4Addr::new(
                127,
                net,
                (i / 250) as u8,
                (i % 250) as u8 + 1,
            ))
        })
        .collect()
}

fn check(target: SocketAddr, duration: Duration) -> Result<(), LoadError> {
    if !target.ip().is_loopback() {
        return Err(err(format!(
            "{target} is not a loopback address: this tool only sends to 127.0.0.0/8 or ::1"
        )));
    }
    if duration.is_zero() || duration > MAX_DURATION {
        return Err(err(format!(
            "the duration must be from 1 ms to {MAX_DURATION:?}"
        )));
    }
    Ok(())
}

fn bind(ip: IpAddr) -> Result<UdpSocket, LoadError> {
    UdpSocket::bind(SocketAddr::new(ip, 0)).map_err(|e| err(format!("bind {ip}: {e}")))
}

/// One socket on each of `ips`.
fn bind_all(ips: &[IpAddr]) -> Result<Vec<UdpSocket>, LoadError> {
    ips.iter().map(|ip| bind(*ip)).collect()
}

fn our_id(i: usize) -> [u8; 20] {
    let mut id = [0x4c; 20];
    id[19] = i as u8;
    id[18] = (i >> 8) as u8;
    id
}

/// Samples the target around a run, and once a second during it.
struct Watch {
    pid: Option<u32>,
    before: Option<ProcSample>,
    stop: Arc<AtomicBool>,
    sampler: Option<std::thread::JoinHandle<Vec<f64>>>,
}

impl Watch {
    fn start(pid: Option<u32>) -> Watch {
        let stop = Arc::new(AtomicBool::new(false));
        let sampler = pid.map(|pid| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut out = Vec::new();
                let mut last = proc_sample(pid);
                let mut t = Instant::now();
                // At most MAX_DURATION seconds of samples.
                while !stop.load(Ordering::Relaxed) && out.len() < MAX_DURATION.as_secs() as usize {
                    std::thread::sleep(Duration::from_millis(50));
                    if t.elapsed() >= Duration::from_secs(1) {
                        let now = proc_sample(pid);
                        if let (Some(a), Some(b)) = (last, now) {
                            out.push(
                                b.cpu_ns.saturating_sub(a.cpu_ns) as f64
                                    / 1e9
                                    / t.elapsed().as_secs_f64(),
                            );
                        }
                        last = now;
                        t = Instant::now();
                    }
                }
                out
            })
        });
        Watch {
            pid,
            before: pid.and_then(proc_sample),
            stop,
            sampler,
        }
    }

    fn finish(self, r: &mut Report) {
        let after = self.pid.and_then(proc_sample);
        self.stop.store(true, Ordering::Relaxed);
        if let Some(s) = self.sampler {
            r.target_cpu_per_sec = s.join().unwrap_or_default();
        }
        if let (Some(b), Some(a)) = (self.before, after) {
            r.target_cpu_s = Some(a.cpu_ns.saturating_sub(b.cpu_ns) as f64 / 1e9);
            r.target_rss = Some((b.rss, a.rss));
        }
    }
}

/// Settings of a [`saturate`] run.
#[derive(Debug, Clone)]
pub struct SaturateConfig {
    /// The node under load.
    pub target: SocketAddr,
    /// Its pid, to read its CPU time.
    pub pid: Option<u32>,
    /// Source addresses (one socket and one thread each).
    pub sources: Vec<IpAddr>,
    /// Queries kept outstanding per source.
    pub outstanding: usize,
    /// How long.
    pub duration: Duration,
}

/// Closed loop: each source keeps `outstanding` queries in flight; a query not answered in
/// one second is counted lost and replaced.
pub fn saturate(cfg: &SaturateConfig) -> Result<Report, LoadError> {
    check(cfg.target, cfg.duration)?;
    let outstanding = cfg.outstanding.clamp(1, 1024);
    let sockets = bind_all(&cfg.sources)?;
    let watch = Watch::start(cfg.pid);
    let start = Instant::now();
    let deadline = start + cfg.duration;
    let target = cfg.target;
    let threads: Vec<_> = sockets
        .into_iter()
        .enumerate()
        .map(|(si, sock)| {
            std::thread::spawn(move || {
                let id = our_id(si);
                let _ = sock.set_read_timeout(Some(Duration::from_millis(50)));
                let mut inflight: HashMap<u32, Instant> = HashMap::new();
                let mut next_tid: u32 = (si as u32) << 24;
                let (mut sent, mut replies) = (0u64, 0u64);
                let mut lat = Vec::new();
                let mut buf = [0u8; 2048];
                while Instant::now() < deadline {
                    while inflight.len() < outstanding {
                        let tid = next_tid;
                        next_tid = next_tid.wrapping_add(1);
                        if sock.send_to(&query(tid as usize, tid, &id), target).is_ok() {
                            inflight.insert(tid, Instant::now());
                            sent += 1;
                        }
                    }
                    // The first reply is waited for (50 ms at most); up to 64 more that are
                    // already waiting are taken in the same turn (a batch).
                    let mut got = sock.recv_from(&mut buf).ok();
                    let mut taken = 0;
                    while let Some((n, _)) = got {
                        if let Some(t0) = reply_tid(&buf[..n]).and_then(|t| inflight.remove(&t)) {
                            replies += 1;
                            lat.push(t0.elapsed().as_nanos() as u64);
                        }
                        if taken == 0 {
                            let _ = sock.set_nonblocking(true);
                        }
                        taken += 1;
                        got = if taken <= 64 {
                            sock.recv_from(&mut buf).ok()
                        } else {
                            None
                        };
                    }
                    if taken > 0 {
                        let _ = sock.set_nonblocking(false);
                    }
                    // Lost: replaced on the next turn.
                    inflight.retain(|_, t| t.elapsed() < REPLY_WAIT);
                }
                (sent - inflight.len() as u64, replies, lat)
            })
        })
        .collect();
    let mut r = Report {
        mode: "saturate",
        ..Report::default()
    };
    let mut lat = Vec::new();
    for t in threads {
        let (s, rep, l) = t.join().map_err(|_| err("a sender thread panicked"))?;
        r.sent += s;
        r.replies += rep;
        lat.extend(l);
    }
    r.seconds = start.elapsed().as_secs_f64();
    watch.finish(&mut r);
    r.latency = percentiles(lat);
    Ok(r)
}

/// Send times by transaction id, shared by a sender and its receivers.
struct Ledger {
    sent_at: Vec<AtomicU64>,
    epoch: Instant,
}

impl Ledger {
    fn new(n: usize) -> Ledger {
        Ledger {
            sent_at: (0..n).map(|_| AtomicU64::new(0)).collect(),
            epoch: Instant::now(),
        }
    }

    fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64 + 1
    }

    fn sent(&self, tid: u32) {
        if let Some(s) = self.sent_at.get(tid as usize) {
            s.store(self.now_ns(), Ordering::Relaxed);
        }
    }

    /// The latency of `tid`'s reply, once (a duplicate reply counts nothing).
    fn answered(&self, tid: u32) -> Option<u64> {
        let s = self.sent_at.get(tid as usize)?;
        let t0 = s.swap(0, Ordering::Relaxed);
        (t0 != 0).then(|| self.now_ns().saturating_sub(t0))
    }
}

/// Receives on `sock` until `stop`, recording replies in the ledger.
fn receiver(sock: UdpSocket, ledger: Arc<Ledger>, stop: Arc<AtomicBool>) -> (u64, Vec<u64>) {
    let _ = sock.set_read_timeout(Some(Duration::from_millis(20)));
    let mut buf = [0u8; 2048];
    let (mut n_ok, mut lat) = (0u64, Vec::new());
    while !stop.load(Ordering::Relaxed) {
        if let Ok((n, _)) = sock.recv_from(&mut buf) {
            if let Some(l) = reply_tid(&buf[..n]).and_then(|t| ledger.answered(t)) {
                n_ok += 1;
                lat.push(l);
            }
        }
    }
    (n_ok, lat)
}

/// Sends `total` numbered queries over `sockets` in turn at `rate` per second (open loop),
/// in batches of one millisecond's worth; returns how many were sent.
fn paced_sender(
    sockets: &[UdpSocket],
    target: SocketAddr,
    rate: u64,
    duration: Duration,
    ledger: Option<&Ledger>,
    tid_base: u32,
) -> u64 {
    let start = Instant::now();
    let deadline = start + duration;
    let ids: Vec<[u8; 20]> = (0..sockets.len()).map(our_id).collect();
    let mut sent: u64 = 0;
    let mut pkt = query(0, 0, &ids[0]);
    loop {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        let due = (rate as f64 * (now - start).as_secs_f64()) as u64;
        // At most 10 ms' worth at once: a stalled sender does not burst to catch up.
        let batch = due.saturating_sub(sent).min((rate / 100).max(1));
        for _ in 0..batch {
            let tid = tid_base.wrapping_add(sent as u32);
            let s = (sent % sockets.len() as u64) as usize;
            if ledger.is_some() {
                pkt = query(sent as usize, tid, &ids[s]);
            } else {
                // A flood repeats one ping; only the transaction id changes.
                let n = pkt.len();
                pkt[n - 11..n - 7].copy_from_slice(&tid.to_be_bytes());
            }
            if sockets[s].send_to(&pkt, target).is_ok() {
                if let Some(l) = ledger {
                    l.sent(tid.wrapping_sub(tid_base));
                }
            }
            sent += 1;
        }
        if batch == 0 {
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    sent
}

/// Settings of a [`fixed_rate`] run.
#[derive(Debug, Clone)]
pub struct RateConfig {
    /// The node under load.
    pub target: SocketAddr,
    /// Its pid.
    pub pid: Option<u32>,
    /// Source addresses.
    pub sources: Vec<IpAddr>,
    /// Queries per second offered, in total.
    pub rate: u64,
    /// How long.
    pub duration: Duration,
}

/// Open loop at a fixed rate: what the load costs the target.
pub fn fixed_rate(cfg: &RateConfig) -> Result<Report, LoadError> {
    check(cfg.target, cfg.duration)?;
    if cfg.rate == 0 || cfg.rate > MAX_RATE || cfg.sources.is_empty() {
        return Err(err(format!(
            "the rate must be from 1 to {MAX_RATE}, with a source"
        )));
    }
    let total = (cfg.rate as f64 * cfg.duration.as_secs_f64()).ceil() as usize + 1;
    let ledger = Arc::new(Ledger::new(total));
    let sockets = bind_all(&cfg.sources)?;
    let stop = Arc::new(AtomicBool::new(false));
    let receivers: Vec<_> = sockets
        .iter()
        .map(|s| {
            let (s, l, st) = (s.try_clone().map_err(err)?, ledger.clone(), stop.clone());
            Ok(std::thread::spawn(move || receiver(s, l, st)))
        })
        .collect::<Result<_, LoadError>>()?;
    let watch = Watch::start(cfg.pid);
    let start = Instant::now();
    let sent = paced_sender(
        &sockets,
        cfg.target,
        cfg.rate,
        cfg.duration,
        Some(&ledger),
        0,
    );
    let seconds = start.elapsed().as_secs_f64();
    std::thread::sleep(REPLY_WAIT);
    stop.store(true, Ordering::Relaxed);
    let mut r = Report {
        mode: "rate",
        seconds,
        sent,
        ..Report::default()
    };
    let mut lat = Vec::new();
    for t in receivers {
        let (n, l) = t.join().map_err(|_| err("a receiver thread panicked"))?;
        r.replies += n;
        lat.extend(l);
    }
    watch.finish(&mut r);
    r.latency = percentiles(lat);
    Ok(r)
}

/// Settings of a [`flood`] run.
#[derive(Debug, Clone)]
pub struct FloodConfig {
    /// The node under attack.
    pub target: SocketAddr,
    /// Its pid.
    pub pid: Option<u32>,
    /// Where the flood comes from.
    pub flood_sources: Vec<IpAddr>,
    /// Flood datagrams per second (open loop), in total.
    pub flood_rate: u64,
    /// The well-behaved clients.
    pub good_sources: Vec<IpAddr>,
    /// Queries per second from each well-behaved client.
    pub good_rate: f64,
    /// How long.
    pub duration: Duration,
}

/// A flood from many addresses while well-behaved clients carry on: the report's `sent`,
/// `replies` and `latency` are the well-behaved clients'.
pub fn flood(cfg: &FloodConfig) -> Result<Report, LoadError> {
    check(cfg.target, cfg.duration)?;
    if cfg.flood_rate > MAX_RATE || !(0.01..=1000.0).contains(&cfg.good_rate) {
        return Err(err("flood rate or well-behaved rate out of range"));
    }
    let flood_socks = bind_all(&cfg.flood_sources)?;
    let per_good = (cfg.good_rate * cfg.duration.as_secs_f64()).ceil() as usize + 1;
    let ledger = Arc::new(Ledger::new(per_good * cfg.good_sources.len().max(1)));
    let stop = Arc::new(AtomicBool::new(false));
    let watch = Watch::start(cfg.pid);
    let start = Instant::now();
    // Each well-behaved client: its own socket, a sender on a steady beat, a receiver.
    let mut good_threads = Vec::new();
    for (gi, ip) in cfg.good_sources.iter().enumerate() {
        let sock = bind(*ip)?;
        let rx = sock.try_clone().map_err(err)?;
        let (l, st) = (ledger.clone(), stop.clone());
        let recv = std::thread::spawn(move || receiver(rx, l, st));
        let (l, target, rate, duration) = (ledger.clone(), cfg.target, cfg.good_rate, cfg.duration);
        let send = std::thread::spawn(move || {
            let id = our_id(1000 + gi);
            let gap = Duration::from_secs_f64(1.0 / rate);
            // Spread the clients' beats over the first gap.
            let mut next = start + gap.mul_f64(gi as f64 / 16.0 % 1.0);
            let mut sent = 0u64;
            while next < start + duration && (sent as usize) < per_good {
                if let Some(wait) = next.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                let tid = (gi * per_good) as u32 + sent as u32;
                l.sent(tid);
                let _ = sock.send_to(&query(sent as usize, tid, &id), target);
                sent += 1;
                next += gap;
            }
            sent
        });
        good_threads.push((send, recv));
    }
    let flood_sent = if cfg.flood_sources.is_empty() || cfg.flood_rate == 0 {
        std::thread::sleep(cfg.duration);
        0
    } else {
        paced_sender(
            &flood_socks,
            cfg.target,
            cfg.flood_rate,
            cfg.duration,
            None,
            0x8000_0000,
        )
    };
    let seconds = start.elapsed().as_secs_f64();
    let mut r = Report {
        mode: "flood",
        seconds,
        flood_sent,
        ..Report::default()
    };
    let mut senders = Vec::new();
    let mut receivers = Vec::new();
    for (s, rcv) in good_threads {
        senders.push(s);
        receivers.push(rcv);
    }
    for s in senders {
        r.sent += s.join().map_err(|_| err("a client thread panicked"))?;
    }
    std::thread::sleep(REPLY_WAIT);
    stop.store(true, Ordering::Relaxed);
    let mut lat = Vec::new();
    for t in receivers {
        let (n, l) = t.join().map_err(|_| err("a receiver thread panicked"))?;
        r.replies += n;
        lat.extend(l);
    }
    watch.finish(&mut r);
    r.latency = percentiles(lat);
    Ok(r)
}

/// The names of the query kinds sent, in turn.
pub fn kinds() -> &'static [&'static str] {
    &KINDS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_bencoded_and_replies_matched() {
        let q = query(2, 0x01020304, &[7; 20]);
        assert!(q.starts_with(b"d1:ad2:id20:"));
        assert!(q.ends_with(b"1:y1:qe"));
        assert_eq!(reply_tid(&q), Some(0x01020304));
        let r = b"d1:rd2:id20:aaaaaaaaaaaaaaaaaaaae1:t4:\x00\x00\x00\x091:y1:re";
        assert_eq!(reply_tid(r), Some(9));
        assert_eq!(reply_tid(b"d1:y1:re"), None);
    }

    #[test]
    fn only_loopback_targets() {
        let c = SaturateConfig {
            target: "8.8.8.8:6881".parse().unwrap(),
            pid: None,
            sources: sources(99, 1),
            outstanding: 1,
            duration: Duration::from_millis(10),
        };
        assert!(saturate(&c).is_err());
    }

    #[test]
    fn percentiles_of_a_known_set() {
        let p = percentiles((1..=100).map(|i| i * 1_000_000).collect());
        assert_eq!((p.p50, p.p99, p.max), (51.0, 99.0, 100.0));
    }
}
