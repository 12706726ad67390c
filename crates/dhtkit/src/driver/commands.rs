//! Commands from [`crate::Dht`] handles and how the driver carries them out.

use std::net::SocketAddr;

use dhtkit_proto::routing::Status;
use dhtkit_proto::{Id, LookupResult, Request};
use tokio::sync::{mpsc, oneshot};

use super::{Driver, LookupWaiter, RequestWaiter, MAX_DEFERRED};
use crate::state::SavedState;
use crate::{AnnounceResult, DhtStats, Error, NodeInfo};

pub(crate) enum Command {
    WaitBootstrap(oneshot::Sender<usize>),
    Ping(SocketAddr, oneshot::Sender<Result<Id, Error>>),
    FindNode(Id, oneshot::Sender<Result<LookupResult, Error>>),
    FindNodeVia(
        Id,
        SocketAddr,
        oneshot::Sender<Result<Vec<(Id, SocketAddr)>, Error>>,
    ),
    GetPeers {
        info_hash: Id,
        peers: mpsc::UnboundedSender<SocketAddr>,
        done: oneshot::Sender<LookupResult>,
        accepted: oneshot::Sender<Result<(), Error>>,
    },
    Announce(
        Id,
        Option<u16>,
        oneshot::Sender<Result<AnnounceResult, Error>>,
    ),
    Advertise(Id, Option<u16>, oneshot::Sender<()>),
    StopAdvertising(Id, oneshot::Sender<()>),
    AddNode(SocketAddr, oneshot::Sender<Result<(), Error>>),
    MakeNeighbours(oneshot::Sender<()>),
    Send(Vec<u8>, SocketAddr, oneshot::Sender<Result<(), Error>>),
    RoutingTable(oneshot::Sender<Vec<NodeInfo>>),
    Stats(oneshot::Sender<DhtStats>),
    State(oneshot::Sender<SavedState>),
    SaveState(oneshot::Sender<Result<(), Error>>),
    Shutdown(oneshot::Sender<()>),
    /// From the resolver task: bootstrap names resolved (possibly to nothing).
    Resolved(Vec<SocketAddr>),
}

impl Driver {
    fn defer(&mut self, c: Command) -> Option<Command> {
        if self.bootstrapped {
            return Some(c);
        }
        if self.deferred.len() < MAX_DEFERRED {
            self.deferred.push(c);
        }
        None
    }

    pub(super) fn on_command(&mut self, c: Command) {
        let now = self.now();
        let c = match c {
            c @ (Command::FindNode(..) | Command::GetPeers { .. } | Command::Announce(..)) => {
                match self.defer(c) {
                    Some(c) => c,
                    None => return,
                }
            }
            c => c,
        };
        match c {
            Command::WaitBootstrap(r) => {
                if self.bootstrapped {
                    let _ = r.send(self.node.routing_table().len());
                } else {
                    self.bootstrap_waiters.push(r);
                }
            }
            Command::Resolved(addrs) => {
                self.resolving = self.resolving.saturating_sub(1);
                if !addrs.is_empty() {
                    let lid = self.node.bootstrap(now, &addrs);
                    if self.bootstrap_lookup.is_none() || !self.bootstrapped {
                        self.bootstrap_lookup = lid.or(self.bootstrap_lookup);
                    }
                }
                self.check_bootstrapped();
            }
            Command::Ping(addr, r) => match self.node.request(now, addr, Request::Ping) {
                Some(rid) => {
                    self.requests.insert(rid, RequestWaiter::Ping(r));
                }
                None => {
                    let _ = r.send(Err(Error::Refused("address not contactable or too busy")));
                }
            },
            Command::FindNodeVia(target, addr, r) => {
                match self.node.request(now, addr, Request::FindNode { target }) {
                    Some(rid) => {
                        self.requests.insert(rid, RequestWaiter::FindNodeVia(r));
                    }
                    None => {
                        let _ = r.send(Err(Error::Refused("address not contactable or too busy")));
                    }
                }
            }
            Command::FindNode(target, r) => match self.node.find_node(now, target) {
                Some(lid) => {
                    self.lookups.insert(lid, LookupWaiter::FindNode(r));
                }
                None => {
                    let _ = r.send(Err(Error::Refused("too many lookups running")));
                }
            },
            Command::GetPeers {
                info_hash,
                peers,
                done,
                accepted,
            } => match self.node.get_peers(now, info_hash) {
                Some(lid) => {
                    self.lookups
                        .insert(lid, LookupWaiter::GetPeers { peers, done });
                    let _ = accepted.send(Ok(()));
                }
                None => {
                    let _ = accepted.send(Err(Error::Refused("too many lookups running")));
                }
            },
            Command::Announce(ih, port, r) => match self.node.announce(now, ih, port, false) {
                Some(lid) => {
                    self.lookups.insert(
                        lid,
                        LookupWaiter::Announce {
                            reply: r,
                            peers: Vec::new(),
                        },
                    );
                }
                None => {
                    let _ = r.send(Err(Error::Refused("too many lookups running")));
                }
            },
            Command::Advertise(ih, port, r) => {
                // Due at once; the timer announces it (after bootstrap) and every interval.
                self.advertised.insert(ih, (port, now));
                let _ = r.send(());
            }
            Command::StopAdvertising(ih, r) => {
                self.advertised.remove(&ih);
                let _ = r.send(());
            }
            Command::AddNode(addr, r) => {
                let ok = self.node.add_node(now, addr);
                let _ = r.send(if ok {
                    Ok(())
                } else {
                    Err(Error::Refused("address not contactable or too busy"))
                });
            }
            Command::MakeNeighbours(r) => {
                self.node.refresh_all(now);
                self.node.bootstrap(now, &[]);
                let _ = r.send(());
            }
            Command::Send(bytes, addr, r) => {
                if addr.port() == 0 || addr.ip().is_unspecified() || addr.ip().is_multicast() {
                    let _ = r.send(Err(Error::Refused("address may not be contacted")));
                } else if self.raw_out.len() >= MAX_DEFERRED {
                    let _ = r.send(Err(Error::Refused("too many custom messages queued")));
                } else {
                    self.raw_out.push((bytes, addr, r));
                }
            }
            Command::RoutingTable(r) => {
                let cfg = *self.node.routing_table().config();
                let nodes = self
                    .node
                    .routing_table()
                    .iter()
                    .map(|e| NodeInfo {
                        id: e.id,
                        addr: e.addr,
                        good: e.status(now, &cfg) == Status::Good,
                        rtt: e.rtt,
                    })
                    .collect();
                let _ = r.send(nodes);
            }
            Command::Stats(r) => {
                let store = self.node.peer_store();
                let _ = r.send(DhtStats {
                    id: self.node.id(),
                    local_addr: self.local,
                    nodes: self.node.routing_table().len(),
                    peers_stored: store.map_or(0, |s| s.len()),
                    infohashes_stored: store.map_or(0, |s| s.infohashes()),
                    lookups_running: self.node.lookups_running(),
                    pending_queries: self.node.pending_queries(),
                    advertised: self.advertised.len(),
                    node: self.node.stats().clone(),
                });
            }
            Command::State(r) => {
                let _ = r.send(self.saved_state());
            }
            Command::SaveState(r) => {
                let _ = r.send(self.save());
            }
            Command::Shutdown(r) => {
                // Handled in the loop; here only if replayed from the deferred queue.
                let _ = r.send(());
            }
        }
    }
}
