//! The task that owns the protocol core and the socket.
//!
//! It waits on three things at once: a datagram, a command from a [`crate::Dht`] handle, and
//! the earliest deadline (the core's, the next re-announce, the next state save). After each
//! wake-up it sends what the core queued and delivers what the core reported. Work per wake-up
//! is one datagram or one command, so no input can starve the others.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dhtkit_proto::bencode::OwnedValue;
use dhtkit_proto::{
    Config, Event, Id, Instant, LookupId, LookupResult, Node, RequestId, RequestOutcome,
};
use tokio::net::UdpSocket;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::time::Instant as TokioInstant;

mod commands;

pub(crate) use commands::Command;

use crate::state::SavedState;
use crate::{AnnounceResult, Dht, DhtEvent, Error, Inner};

/// Commands queued before the first bootstrap finishes, at most.
const MAX_DEFERRED: usize = 1024;
/// How long resolving one bootstrap name may take.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);
/// Command channel depth.
const COMMAND_QUEUE: usize = 256;

pub(crate) struct DriverConfig {
    pub bootstrap: Vec<String>,
    pub state: Option<SavedState>,
    pub state_file: Option<PathBuf>,
    pub save_interval: Duration,
    pub advertise_interval: Duration,
    pub event_capacity: usize,
    pub message_events: bool,
}

enum LookupWaiter {
    FindNode(oneshot::Sender<Result<LookupResult, Error>>),
    GetPeers {
        peers: mpsc::UnboundedSender<SocketAddr>,
        done: oneshot::Sender<LookupResult>,
    },
    Announce {
        reply: oneshot::Sender<Result<AnnounceResult, Error>>,
        peers: Vec<SocketAddr>,
    },
    Advertise,
}

/// A custom datagram waiting to be sent, and who to tell.
type RawSend = (Vec<u8>, SocketAddr, oneshot::Sender<Result<(), Error>>);

enum RequestWaiter {
    Ping(oneshot::Sender<Result<Id, Error>>),
    FindNodeVia(oneshot::Sender<Result<Vec<(Id, SocketAddr)>, Error>>),
}

pub(crate) struct Driver {
    node: Node,
    socket: UdpSocket,
    local: SocketAddr,
    epoch: TokioInstant,
    rx: mpsc::Receiver<Command>,
    events: broadcast::Sender<DhtEvent>,
    cfg: DriverConfig,
    lookups: HashMap<LookupId, LookupWaiter>,
    requests: HashMap<RequestId, RequestWaiter>,
    advertised: BTreeMap<Id, (Option<u16>, Instant)>,
    bootstrap_lookup: Option<LookupId>,
    /// Bootstrap names still being resolved.
    resolving: usize,
    bootstrapped: bool,
    bootstrap_waiters: Vec<oneshot::Sender<usize>>,
    deferred: Vec<Command>,
    next_save: Option<Instant>,
    /// Custom datagrams from `send_message`, sent on the next flush.
    raw_out: Vec<RawSend>,
}

impl Driver {
    pub(crate) fn start(socket: UdpSocket, config: Config, cfg: DriverConfig) -> Dht {
        let local = socket.local_addr().expect("bound socket has an address");
        let epoch = TokioInstant::now();
        let mut node = Node::new(config, Instant::ZERO);
        let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
        let (events, _) = broadcast::channel(cfg.event_capacity);
        let id = node.id();
        let mut advertised = BTreeMap::new();
        let has_state_nodes = cfg.state.as_ref().is_some_and(|s| !s.nodes.is_empty());
        if let Some(s) = &cfg.state {
            node.import_state(Instant::ZERO, &s.nodes);
            for (ih, port) in &s.advertised {
                advertised.insert(*ih, (*port, Instant::ZERO));
            }
        }
        let next_save = cfg
            .state_file
            .as_ref()
            .map(|_| Instant::ZERO + cfg.save_interval);
        let mut d = Driver {
            node,
            socket,
            local,
            epoch,
            rx,
            events: events.clone(),
            lookups: HashMap::new(),
            requests: HashMap::new(),
            advertised,
            bootstrap_lookup: None,
            resolving: cfg.bootstrap.len(),
            bootstrapped: false,
            bootstrap_waiters: Vec::new(),
            deferred: Vec::new(),
            next_save,
            raw_out: Vec::new(),
            cfg,
        };
        if has_state_nodes {
            // Restored nodes are enough to join: bootstrap through the table right away.
            d.bootstrap_lookup = d.node.bootstrap(Instant::ZERO, &[]);
        }
        for name in d.cfg.bootstrap.clone() {
            tokio::spawn(resolve(name, local.is_ipv6(), tx.clone()));
        }
        d.check_bootstrapped();
        let task = tokio::spawn(d.run());
        Dht {
            inner: Arc::new(Inner {
                tx,
                events,
                local_addr: local,
                id,
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
        let mut t = self.node.poll_timeout();
        let mut min = |x: Option<Instant>| {
            if let Some(x) = x {
                t = Some(t.map_or(x, |t| t.min(x)));
            }
        };
        if self.bootstrapped {
            min(self.advertised.values().map(|(_, at)| *at).min());
        }
        min(self.next_save);
        t
    }

    async fn run(mut self) {
        let mut buf = vec![0u8; 65_536];
        self.flush().await;
        loop {
            let wake = self.next_wakeup().map(|t| self.to_tokio(t));
            let sleep = async {
                match wake {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                r = self.socket.recv_from(&mut buf) => match r {
                    Ok((n, from)) => self.on_datagram(from, &buf[..n]),
                    Err(e) => {
                        // ICMP port-unreachable surfaces here on Linux; the node carries on.
                        let _ = self.events.send(DhtEvent::SocketError { message: e.to_string() });
                    }
                },
                cmd = self.rx.recv() => match cmd {
                    Some(Command::Shutdown(ack)) => {
                        self.save_quietly();
                        let _ = ack.send(());
                        return;
                    }
                    Some(c) => self.on_command(c),
                    None => {
                        self.save_quietly();
                        return;
                    }
                },
                _ = sleep => self.on_timers(),
            }
            self.flush().await;
        }
    }

    fn on_datagram(&mut self, from: SocketAddr, data: &[u8]) {
        if self.cfg.message_events && self.events.receiver_count() > 0 {
            let bytes: Arc<[u8]> = Arc::from(data);
            let _ = self.events.send(DhtEvent::Datagram { from, bytes });
            if let Ok(v) = OwnedValue::decode(data) {
                let _ = self.events.send(DhtEvent::Message {
                    from,
                    message: Arc::new(v),
                });
            }
        }
        let now = self.now();
        self.node.handle_datagram(now, from, data);
    }

    fn on_timers(&mut self) {
        let now = self.now();
        self.node.handle_timeout(now);
        if self.bootstrapped {
            let due: Vec<(Id, Option<u16>)> = self
                .advertised
                .iter()
                .filter(|(_, (_, at))| *at <= now)
                .map(|(ih, (port, _))| (*ih, *port))
                .collect();
            for (ih, port) in due {
                let next = now + self.cfg.advertise_interval;
                match self.node.announce(now, ih, port, false) {
                    Some(lid) => {
                        self.lookups.insert(lid, LookupWaiter::Advertise);
                        self.advertised.insert(ih, (port, next));
                    }
                    // Too many lookups running: try again shortly.
                    None => {
                        self.advertised
                            .insert(ih, (port, now + Duration::from_secs(1)));
                    }
                }
            }
        }
        if self.next_save.is_some_and(|t| t <= now) {
            self.next_save = Some(now + self.cfg.save_interval);
            self.save_quietly();
        }
    }

    fn saved_state(&self) -> SavedState {
        let s = self.node.export_state();
        SavedState {
            id: s.id,
            nodes: s.nodes,
            advertised: self
                .advertised
                .iter()
                .map(|(ih, (p, _))| (*ih, *p))
                .collect(),
        }
    }

    fn save(&mut self) -> Result<(), Error> {
        let Some(path) = self.cfg.state_file.clone() else {
            return Err(Error::Refused("no state file configured"));
        };
        let state = self.saved_state();
        state.save(&path)?;
        let _ = self.events.send(DhtEvent::StateSaved {
            nodes: state.nodes.len(),
        });
        Ok(())
    }

    fn save_quietly(&mut self) {
        if self.cfg.state_file.is_some() {
            if let Err(e) = self.save() {
                tracing::warn!("saving state failed: {e}");
                let _ = self.events.send(DhtEvent::SocketError {
                    message: e.to_string(),
                });
            }
        }
    }

    fn check_bootstrapped(&mut self) {
        if self.bootstrapped {
            return;
        }
        // Wait for the bootstrap lookup; wait for names still resolving only when we have no
        // node at all to start from.
        let waiting_names = self.resolving > 0 && self.node.routing_table().is_empty();
        if waiting_names || self.bootstrap_lookup.is_some() {
            return;
        }
        self.bootstrapped = true;
        let nodes = self.node.routing_table().len();
        let _ = self.events.send(DhtEvent::Bootstrapped { nodes });
        for w in self.bootstrap_waiters.drain(..) {
            let _ = w.send(nodes);
        }
        for c in std::mem::take(&mut self.deferred) {
            self.on_command(c);
        }
    }

    async fn flush(&mut self) {
        for (bytes, addr, r) in std::mem::take(&mut self.raw_out) {
            let res = self.socket.send_to(&bytes, addr).await;
            let _ = r.send(res.map(|_| ()).map_err(Error::Io));
        }
        while let Some(t) = self.node.poll_transmit() {
            if let Err(e) = self.socket.send_to(t.payload, t.dest).await {
                tracing::debug!("send to {} failed: {e}", t.dest);
            }
        }
        while let Some(e) = self.node.poll_event() {
            self.on_event(e);
        }
    }

    fn on_event(&mut self, e: Event) {
        let out = match e {
            Event::QueryReceived {
                from,
                id,
                query,
                read_only,
            } => Some(DhtEvent::Query {
                from,
                id,
                query,
                read_only,
            }),
            Event::ResponseReceived { from, id, kind } => {
                Some(DhtEvent::Response { from, id, kind })
            }
            Event::ErrorReceived { from, kind, code } => Some(DhtEvent::Error { from, kind, code }),
            Event::InvalidMessage { from, reason } => Some(DhtEvent::Invalid { from, reason }),
            Event::NodeAdded { id, addr } => Some(DhtEvent::NodeAdded { id, addr }),
            Event::NodeRemoved { id, addr } => Some(DhtEvent::NodeRemoved { id, addr }),
            Event::PeerFound {
                lookup,
                info_hash,
                peer,
                ..
            } => {
                let mut advertised = false;
                match self.lookups.get_mut(&lookup) {
                    Some(LookupWaiter::GetPeers { peers, .. }) => {
                        let _ = peers.send(peer);
                    }
                    Some(LookupWaiter::Announce { peers, .. }) => peers.push(peer),
                    Some(LookupWaiter::Advertise) => advertised = true,
                    _ => {}
                }
                Some(DhtEvent::PeerFound {
                    info_hash,
                    peer,
                    advertised,
                })
            }
            Event::LookupFinished(r) => {
                match self.lookups.remove(&r.id) {
                    Some(LookupWaiter::FindNode(tx)) => {
                        let _ = tx.send(Ok(r.clone()));
                    }
                    Some(LookupWaiter::GetPeers { done, .. }) => {
                        let _ = done.send(r.clone());
                    }
                    Some(LookupWaiter::Announce { reply, peers }) => {
                        let _ = reply.send(Ok(AnnounceResult {
                            announced: r.announced,
                            peers,
                            lookup: r.clone(),
                        }));
                    }
                    Some(LookupWaiter::Advertise) | None => {}
                }
                let first_bootstrap = Some(r.id) == self.bootstrap_lookup;
                let _ = self.events.send(DhtEvent::LookupFinished(r));
                if first_bootstrap {
                    self.bootstrap_lookup = None;
                    self.check_bootstrapped();
                }
                None
            }
            Event::RequestFinished { id, outcome, .. } => {
                match self.requests.remove(&id) {
                    Some(RequestWaiter::Ping(tx)) => {
                        let _ = tx.send(match outcome {
                            RequestOutcome::Response { id, .. } => Ok(id),
                            other => Err(outcome_error(other)),
                        });
                    }
                    Some(RequestWaiter::FindNodeVia(tx)) => {
                        let _ = tx.send(match outcome {
                            RequestOutcome::Response { nodes, .. } => Ok(nodes),
                            other => Err(outcome_error(other)),
                        });
                    }
                    None => {}
                }
                None
            }
        };
        if let Some(ev) = out {
            let _ = self.events.send(ev);
        }
    }
}

fn outcome_error(o: RequestOutcome) -> Error {
    match o {
        RequestOutcome::Error { code, message } => Error::Remote { code, message },
        _ => Error::Timeout,
    }
}

/// Resolves one bootstrap name in the background (a few seconds at most) and reports the
/// addresses, possibly none.
async fn resolve(name: String, v6: bool, tx: mpsc::Sender<Command>) {
    let mut out = Vec::new();
    if let Ok(a) = name.parse::<SocketAddr>() {
        out.push(a);
    } else {
        match tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host(name.as_str())).await {
            Ok(Ok(addrs)) => out.extend(addrs),
            Ok(Err(e)) => tracing::info!("bootstrap node {name} did not resolve: {e}"),
            Err(_) => tracing::info!("bootstrap node {name}: resolving timed out"),
        }
    }
    out.retain(|a| a.is_ipv6() == v6);
    out.dedup();
    let _ = tx.send(Command::Resolved(out)).await;
}
