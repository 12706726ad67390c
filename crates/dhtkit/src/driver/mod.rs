//! The task that owns the protocol core and the socket.
//!
//! It waits on four things at once: a datagram, a command from a [`crate::Dht`] handle, the
//! core's next deadline (or the next state save), and a state save finishing. After each
//! wake-up it sends what the core queued and hands on what the core reported. Work per wake-up
//! is one command, or the datagrams waiting in the socket up to [`RECV_BATCH`], so no input can
//! starve the others, and a busy socket costs one wake-up per batch, not per datagram. Protocol policy
//! (bootstrap, held lookups, re-announces) lives in the core; the driver only carries it out.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dhtkit_proto::{
    Config, Event, Instant, LookupId, LookupResult, Node, RequestId, RequestOutcome,
};
use tokio::net::UdpSocket;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::time::Instant as TokioInstant;

mod commands;
mod filter;
mod io;
mod pairs;
mod save;

pub(crate) use commands::{Command, LookupCommand};
use io::{send_one, RECV_SLOT, RECV_SLOTS};
use pairs::Paired;
use save::{joined, Saving};

use crate::state::SavedState;
use crate::{AnnounceResult, Dht, Error, Inner};

/// How long resolving one bootstrap name may take.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);
/// Command channel depth.
const COMMAND_QUEUE: usize = 256;
/// Most datagrams handled per wake-up.
const RECV_BATCH: usize = 256;
/// A wake-up that found at least this many datagrams waiting means the socket is busy: the
/// next read waits [`COALESCE`] first, so that a flood is read in large batches (a few
/// system calls and one wake-up per millisecond) instead of one wake-up per datagram.
const BUSY: usize = 32;
const COALESCE: Duration = Duration::from_millis(1);
pub(crate) struct DriverConfig {
    pub bootstrap: Vec<String>,
    pub state: Option<SavedState>,
    pub state_file: Option<PathBuf>,
    pub save_interval: Duration,
    pub event_capacity: usize,
    /// Drop banned IPv4 sources in the kernel (a socket filter, Linux).
    pub kernel_filter: bool,
}

/// The kernel's copy of the ban list.
struct KernelFilter {
    /// The node's ban count when the filter was last built.
    generation: u64,
    built: TokioInstant,
    /// Addresses in it.
    len: usize,
}

/// Rebuilt at most this often when bans come in,
const FILTER_EVERY: Duration = Duration::from_millis(100);
/// and at least this often while it holds addresses (bans expire).
const FILTER_REFRESH: Duration = Duration::from_secs(5);

/// Who waits for a lookup.
enum LookupWaiter {
    /// The whole result (find_node, BEP 44 get and put).
    Whole(oneshot::Sender<Result<LookupResult, Error>>),
    GetPeers {
        peers: mpsc::UnboundedSender<SocketAddr>,
        done: oneshot::Sender<LookupResult>,
    },
    Announce {
        reply: oneshot::Sender<Result<AnnounceResult, Error>>,
        peers: Vec<SocketAddr>,
    },
}

/// The second socket of a dual-stack node (BEP 32): the other address family.
struct Second {
    socket: UdpSocket,
    udp: Option<quinn_udp::UdpSocketState>,
}

pub(crate) struct Driver {
    node: Node,
    /// Second-family lookup → the first-family lookup whose caller it serves.
    twin_of: HashMap<LookupId, LookupId>,
    /// First-family lookups with a twin, by id.
    paired: HashMap<LookupId, Paired>,
    /// Shared with the handles: the current node id.
    id: Arc<Mutex<dhtkit_proto::Id>>,
    /// The first socket: the IPv4 one on a dual-stack node (the ban filter sits on it).
    socket: UdpSocket,
    /// The IPv6 socket of a dual-stack node.
    second: Option<Second>,
    /// Batched receive state (quinn-udp: `recvmmsg` on Linux, one datagram per call
    /// elsewhere); `None` if the socket refused its options, and then plain `recv_from`.
    udp: Option<quinn_udp::UdpSocketState>,
    /// The ban filter in the kernel; `None` when not built yet, or when it is off.
    kfilter: Option<KernelFilter>,
    kfilter_on: bool,
    local: SocketAddr,
    epoch: TokioInstant,
    rx: mpsc::Receiver<Command>,
    events: broadcast::Sender<Event>,
    cfg: DriverConfig,
    lookups: HashMap<LookupId, LookupWaiter>,
    requests: HashMap<RequestId, oneshot::Sender<Result<RequestOutcome, Error>>>,
    /// Bootstrap names still being resolved.
    resolving: usize,
    bootstrap_waiters: Vec<oneshot::Sender<usize>>,
    next_save: Option<Instant>,
    saving: Option<Saving>,
    /// Save requests that came while a save was running: they get the next one.
    save_again: Vec<oneshot::Sender<Result<(), Error>>>,
}

impl Driver {
    /// Starts the node on `socket`, and on `second` too for a dual-stack node (one socket
    /// per address family, the IPv4 one first).
    pub(crate) fn start(
        socket: UdpSocket,
        second: Option<UdpSocket>,
        config: Config,
        cfg: DriverConfig,
    ) -> Dht {
        let local = socket.local_addr().expect("bound socket has an address");
        let locals: Vec<SocketAddr> = std::iter::once(local)
            .chain(second.iter().filter_map(|s| s.local_addr().ok()))
            .collect();
        let epoch = TokioInstant::now();
        let mut node = Node::new(config, Instant::ZERO);
        let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
        let (events, _) = broadcast::channel(cfg.event_capacity);
        let id = node.id();
        if let Some(s) = &cfg.state {
            node.import_state(Instant::ZERO, &s.nodes);
            for (ih, port) in &s.advertised {
                node.advertise(Instant::ZERO, *ih, crate::advert(*port));
            }
            if !s.nodes.is_empty() {
                // Restored nodes are enough to join: bootstrap through the table right away.
                node.bootstrap(Instant::ZERO, &[]);
            }
        }
        if !cfg.bootstrap.is_empty() {
            node.expect_bootstrap();
        }
        let families = (
            locals.iter().any(SocketAddr::is_ipv4),
            locals.iter().any(SocketAddr::is_ipv6),
        );
        for name in &cfg.bootstrap {
            tokio::spawn(resolve(name.clone(), families, tx.clone()));
        }
        let next_save = cfg
            .state_file
            .as_ref()
            .map(|_| Instant::ZERO + cfg.save_interval);
        let udp = match quinn_udp::UdpSocketState::new((&socket).into()) {
            Ok(u) => Some(u),
            Err(e) => {
                tracing::debug!("batched receive unavailable ({e}); one datagram per call");
                None
            }
        };
        let second = second.map(|socket| Second {
            udp: quinn_udp::UdpSocketState::new((&socket).into()).ok(),
            socket,
        });
        let kfilter_on = cfg.kernel_filter && local.is_ipv4();
        let id_cell = Arc::new(Mutex::new(id));
        let d = Driver {
            node,
            twin_of: HashMap::new(),
            paired: HashMap::new(),
            id: id_cell.clone(),
            socket,
            second,
            udp,
            kfilter: None,
            kfilter_on,
            local,
            epoch,
            rx,
            events: events.clone(),
            lookups: HashMap::new(),
            requests: HashMap::new(),
            resolving: cfg.bootstrap.len(),
            bootstrap_waiters: Vec::new(),
            next_save,
            saving: None,
            save_again: Vec::new(),

            cfg,
        };
        let task = tokio::spawn(d.run());
        Dht {
            inner: Arc::new(Inner {
                tx,
                events,
                local_addr: local,
                local_addrs: locals,
                id: id_cell,
                task: Mutex::new(Some(task)),
            }),
        }
    }

    fn now(&self) -> Instant {
        Instant::from_epoch(self.epoch.elapsed())
    }

    fn to_tokio(&self, t: Instant) -> TokioInstant {
        self.epoch + t.since_epoch()
    }

    fn next_wakeup(&mut self) -> Option<Instant> {
        let t = self.node.poll_timeout();
        match (t, self.next_save) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    async fn run(mut self) {
        let mut buf = vec![0u8; 65_536];
        let mut slots = vec![
            0u8;
            if self.udp.is_some() || self.second.is_some() {
                RECV_SLOTS * RECV_SLOT
            } else {
                0
            }
        ];
        let mut meta = [quinn_udp::RecvMeta::default(); RECV_SLOTS];
        let mut busy = false;
        self.flush().await;
        loop {
            let wake = self.next_wakeup().map(|t| self.to_tokio(t));
            let sleep = async {
                match wake {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            };
            let saved = async {
                match &mut self.saving {
                    Some(s) => (&mut s.task).await,
                    None => std::future::pending().await,
                }
            };
            let batched = self.udp.is_some();
            let readable = async {
                if busy {
                    tokio::time::sleep(COALESCE).await;
                }
                self.socket.readable().await
            };
            let readable6 = async {
                match &self.second {
                    Some(s) => s.socket.readable().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                r = readable6 => match r {
                    Ok(()) => {
                        self.recv_second(&mut slots, &mut meta);
                        self.update_filter();
                        self.flush().await;
                    }
                    Err(e) => {
                        let _ = self.events.send(Event::SocketError { message: e.to_string() });
                    }
                },
                r = readable, if batched => match r {
                    Ok(()) => {
                        let (handled, drained) = self.recv_batches(&mut slots, &mut meta);
                        self.update_filter();
                        let answered = self.flush().await;
                        // Pause only after emptying a socket busy with datagrams that were
                        // mostly dropped (a flood); a socket with more waiting is read again
                        // at once, and clients waiting for answers are not kept waiting.
                        busy = drained && handled >= BUSY && answered < handled / 4;
                    }
                    Err(e) => {
                        let _ = self.events.send(Event::SocketError { message: e.to_string() });
                    }
                },
                r = self.socket.recv_from(&mut buf), if !batched => match r {
                    Ok((n, from)) => {
                        let now = self.now();
                        self.node.handle_datagram(now, from, &buf[..n]);
                        // Whatever else is waiting, without another trip through the loop.
                        for _ in 1..RECV_BATCH {
                            match self.socket.try_recv_from(&mut buf) {
                                Ok((n, from)) => self.node.handle_datagram(now, from, &buf[..n]),
                                Err(_) => break,
                            }
                        }
                    }
                    Err(e) => {
                        // ICMP port-unreachable surfaces here on Linux; the node carries on.
                        let _ = self.events.send(Event::SocketError { message: e.to_string() });
                    }
                },
                cmd = self.rx.recv() => match cmd {
                    Some(Command::Shutdown(ack)) => {
                        self.final_save().await;
                        let _ = ack.send(());
                        return;
                    }
                    Some(c) => self.on_command(c),
                    None => {
                        self.final_save().await;
                        return;
                    }
                },
                r = saved => self.save_done(joined(r)),
                _ = sleep => self.on_timers(),
            }
            self.flush().await;
        }
    }

    /// Brings the kernel's ban filter up to date: soon after new bans, and now and then
    /// while it holds addresses whose bans may have ended.
    fn update_filter(&mut self) {
        if !self.kfilter_on {
            return;
        }
        let generation = self.node.ban_count();
        let now = TokioInstant::now();
        let due = match &self.kfilter {
            None => generation > 0,
            Some(f) => {
                let age = now.duration_since(f.built);
                (f.generation != generation && age >= FILTER_EVERY)
                    || (f.len > 0 && age >= FILTER_REFRESH)
            }
        };
        if !due {
            return;
        }
        let banned: Vec<std::net::Ipv4Addr> = self
            .node
            .banned_ips(self.now(), filter::MAX_KERNEL_BANS)
            .into_iter()
            .filter_map(|ip| match ip {
                std::net::IpAddr::V4(v) => Some(v),
                std::net::IpAddr::V6(_) => None,
            })
            .collect();
        match filter::install(&self.socket, &banned) {
            Ok(()) => {
                self.kfilter = Some(KernelFilter {
                    generation,
                    built: now,
                    len: banned.len(),
                });
            }
            Err(e) => {
                tracing::debug!("no socket filter for bans ({e}); the node drops them itself");
                self.kfilter_on = false;
            }
        }
    }

    fn on_timers(&mut self) {
        let now = self.now();
        self.node.handle_timeout(now);
        self.update_filter();
        if self.next_save.is_some_and(|t| t <= now) {
            self.next_save = Some(now + self.cfg.save_interval);
            if self.saving.is_none() {
                self.start_save(Vec::new());
            }
        }
    }

    /// Sends what the core queued and hands on its events; returns how many datagrams went.
    /// (Batched sends with `sendmmsg` were tried and did not pay here: see BENCHMARKS.md.)
    async fn flush(&mut self) -> usize {
        let mut sent = 0;
        while let Some(t) = self.node.poll_transmit() {
            sent += 1;
            // A dual-stack node sends each datagram from the socket of its family.
            let socket = match &self.second {
                Some(s) if t.dest.is_ipv6() != self.local.is_ipv6() => &s.socket,
                _ => &self.socket,
            };
            send_one(socket, t.payload, t.dest).await;
        }
        while let Some(e) = self.node.poll_event() {
            self.on_event(e);
        }
        sent
    }

    /// Hands an event to whoever waits for it, then to subscribers.
    fn on_event(&mut self, e: Event) {
        match &e {
            Event::IdChanged { id } => {
                *self.id.lock().unwrap_or_else(|p| p.into_inner()) = *id;
            }
            Event::PeerFound { lookup, peer, .. } => match self
                .lookups
                .get_mut(self.twin_of.get(lookup).unwrap_or(lookup))
            {
                // Nobody reads its peers any more (the handle was dropped): the lookup ends
                // here instead of spending queries for no one.
                Some(LookupWaiter::GetPeers { peers, .. }) if peers.send(*peer).is_err() => {
                    let first = *self.twin_of.get(lookup).unwrap_or(lookup);
                    let now = self.now();
                    self.node.end_lookup(now, first);
                    let twins: Vec<LookupId> = self
                        .twin_of
                        .iter()
                        .filter(|(_, f)| **f == first)
                        .map(|(t, _)| *t)
                        .collect();
                    for t in twins {
                        self.node.end_lookup(now, t);
                    }
                }
                Some(LookupWaiter::Announce { peers, .. }) => peers.push(*peer),
                _ => {}
            },
            Event::LookupFinished(r) if self.paired_done(r).is_none() => {}
            Event::LookupFinished(_) => match self.paired_result(&e).and_then(|r| {
                let w = self.lookups.remove(&r.id)?;
                Some((w, r))
            }) {
                None => {}
                Some((w, r)) => self.complete(w, &r),
            },
            Event::RequestFinished { id, outcome, .. } => {
                if let Some(tx) = self.requests.remove(id) {
                    let _ = tx.send(Ok(outcome.clone()));
                }
            }
            Event::Bootstrapped { .. } => self.wake_bootstrap_waiters(),
            _ => {}
        }
        let _ = self.events.send(e);
    }

    /// Hands a finished lookup to its caller.
    fn complete(&mut self, w: LookupWaiter, r: &LookupResult) {
        match w {
            LookupWaiter::Whole(tx) => {
                let _ = tx.send(Ok(r.clone()));
            }
            LookupWaiter::GetPeers { done, .. } => {
                let _ = done.send(r.clone());
            }
            LookupWaiter::Announce { reply, peers } => {
                let _ = reply.send(Ok(AnnounceResult {
                    announced: r.announced,
                    peers,
                    lookup: r.clone(),
                }));
            }
        }
    }

    /// Nodes in the routing tables (both, on a dual-stack node).
    fn table_len(&self) -> usize {
        self.node.routing_tables().map(|t| t.len()).sum()
    }

    fn wake_bootstrap_waiters(&mut self) {
        if self.node.is_bootstrapped() {
            let nodes = self.table_len();
            for w in self.bootstrap_waiters.drain(..) {
                let _ = w.send(nodes);
            }
        }
    }
}

/// Resolves one bootstrap name in the background (a few seconds at most) to the addresses
/// of the families we have sockets for (`families`: IPv4, IPv6), and reports them, possibly
/// none.
async fn resolve(name: String, families: (bool, bool), tx: mpsc::Sender<Command>) {
    let mut out = Vec::new();
    if let Ok(a) = name.parse::<SocketAddr>() {
        out.push(a);
    } else {
        match tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host(name.as_str())).await {
            Ok(Ok(addrs)) => out.extend(addrs),
            Ok(Err(e)) => tracing::warn!("bootstrap node {name} did not resolve: {e}"),
            Err(_) => tracing::warn!("bootstrap node {name}: resolving timed out"),
        }
    }
    out.retain(|a| if a.is_ipv6() { families.1 } else { families.0 });
    out.dedup();
    let _ = tx.send(Command::Resolved(out)).await;
}
