//! Commands from [`crate::Dht`] handles and how the driver carries them out: each is one call
//! into the core, plus a waiter for the answer.

use std::net::SocketAddr;

use dhtkit_proto::routing::Status;
use dhtkit_proto::{Id, LookupKind, Request, RequestOutcome};
use tokio::sync::{mpsc, oneshot};

use super::{Driver, LookupWaiter};
use crate::state::SavedState;
use crate::{DhtStats, Error, NodeInfo};

/// What a lookup command asks for, with its waiter.
pub(crate) enum LookupCommand {
    FindNode(oneshot::Sender<Result<dhtkit_proto::LookupResult, Error>>),
    GetPeers {
        peers: mpsc::UnboundedSender<SocketAddr>,
        done: oneshot::Sender<dhtkit_proto::LookupResult>,
    },
    /// The port (`None`: implied), BEP 33's seed flag, and who waits.
    Announce(
        Option<u16>,
        bool,
        oneshot::Sender<Result<crate::AnnounceResult, Error>>,
    ),
    Scrape(oneshot::Sender<Result<dhtkit_proto::LookupResult, Error>>),
    GetItem {
        salt: Vec<u8>,
        done: oneshot::Sender<Result<dhtkit_proto::LookupResult, Error>>,
    },
    PutItem {
        item: dhtkit_proto::Item,
        cas: Option<i64>,
        done: oneshot::Sender<Result<dhtkit_proto::LookupResult, Error>>,
    },
}

pub(crate) enum Command {
    WaitBootstrap(oneshot::Sender<usize>),
    Request(
        SocketAddr,
        Request,
        oneshot::Sender<Result<RequestOutcome, Error>>,
    ),
    Lookup {
        target: Id,
        what: LookupCommand,
        accepted: oneshot::Sender<Result<(), Error>>,
    },
    Advertise(Id, Option<u16>, oneshot::Sender<()>),
    StopAdvertising(Id, oneshot::Sender<()>),
    KeepItem(dhtkit_proto::Item, oneshot::Sender<()>),
    StopKeeping(Id, oneshot::Sender<bool>),
    SetRpcEvents(bool, oneshot::Sender<()>),
    AddNode(SocketAddr, oneshot::Sender<Result<(), Error>>),
    MakeNeighbours(oneshot::Sender<()>),
    Send(Vec<u8>, SocketAddr, oneshot::Sender<Result<(), Error>>),
    RoutingTable(oneshot::Sender<Vec<NodeInfo>>),
    Stats(oneshot::Sender<DhtStats>),
    State(oneshot::Sender<SavedState>),
    SaveState(oneshot::Sender<Result<(), Error>>),
    Shutdown(oneshot::Sender<()>),
    /// From a resolver task: one bootstrap name resolved (possibly to nothing).
    Resolved(Vec<SocketAddr>),
}

const NOT_CONTACTABLE: Error = Error::Refused("address not contactable or too busy");

impl Driver {
    pub(super) fn on_command(&mut self, c: Command) {
        let now = self.now();
        match c {
            Command::WaitBootstrap(r) => {
                self.bootstrap_waiters.push(r);
                self.wake_bootstrap_waiters();
            }
            Command::Resolved(addrs) => {
                self.resolving = self.resolving.saturating_sub(1);
                if !addrs.is_empty() {
                    self.node.bootstrap(now, &addrs);
                }
                if self.resolving == 0 {
                    self.node.bootstrap_sources_done(now);
                }
            }
            Command::Request(addr, req, r) => match self.node.request(now, addr, req) {
                Some(rid) => {
                    self.requests.insert(rid, r);
                }
                None => {
                    let _ = r.send(Err(NOT_CONTACTABLE));
                }
            },
            Command::Lookup {
                target,
                what,
                accepted,
            } => {
                let started = match &what {
                    LookupCommand::FindNode(_) => {
                        self.node.start_lookup(now, LookupKind::FindNode, target)
                    }
                    LookupCommand::GetPeers { .. } => {
                        self.node.start_lookup(now, LookupKind::GetPeers, target)
                    }
                    LookupCommand::Announce(port, seed, _) => {
                        let kind = LookupKind::Announce {
                            port: *port,
                            seed: *seed,
                        };
                        self.node.start_lookup(now, kind, target)
                    }
                    LookupCommand::GetItem { salt, .. } => self.node.get_item(now, target, salt),
                    LookupCommand::Scrape(_) => self.node.scrape(now, target),
                    LookupCommand::PutItem { item, cas, .. } => {
                        self.node.put_item(now, item.clone(), *cas)
                    }
                };
                let Some(lid) = started else {
                    let _ = accepted.send(Err(Error::Refused("too many lookups running")));
                    return;
                };
                // A dual-stack node runs the lookup in both families; the second family's
                // lookup serves the same caller.
                let v6 = !self.local.is_ipv6();
                let twin = match (&what, self.second.is_some()) {
                    (_, false) => None,
                    (LookupCommand::FindNode(_), _) => {
                        self.node
                            .start_lookup_in(now, LookupKind::FindNode, target, v6)
                    }
                    (LookupCommand::GetPeers { .. }, _) => {
                        self.node
                            .start_lookup_in(now, LookupKind::GetPeers, target, v6)
                    }
                    (LookupCommand::Announce(port, seed, _), _) => {
                        let kind = LookupKind::Announce {
                            port: *port,
                            seed: *seed,
                        };
                        self.node.start_lookup_in(now, kind, target, v6)
                    }
                    (LookupCommand::Scrape(_), _) => {
                        self.node
                            .start_lookup_in(now, LookupKind::Scrape, target, v6)
                    }
                    (LookupCommand::GetItem { salt, .. }, _) => {
                        self.node.get_item_in(now, target, salt, v6)
                    }
                    (LookupCommand::PutItem { item, cas, .. }, _) => {
                        self.node.put_item_in(now, item.clone(), *cas, v6)
                    }
                };
                if let Some(twin) = twin {
                    self.twin_of.insert(twin, lid);
                    self.paired.insert(
                        lid,
                        super::pairs::Paired {
                            running: 2,
                            ..Default::default()
                        },
                    );
                }
                let waiter = match what {
                    LookupCommand::FindNode(tx)
                    | LookupCommand::Scrape(tx)
                    | LookupCommand::GetItem { done: tx, .. }
                    | LookupCommand::PutItem { done: tx, .. } => LookupWaiter::Whole(tx),
                    LookupCommand::GetPeers { peers, done } => {
                        LookupWaiter::GetPeers { peers, done }
                    }
                    LookupCommand::Announce(_, _, reply) => LookupWaiter::Announce {
                        reply,
                        peers: Vec::new(),
                    },
                };
                self.lookups.insert(lid, waiter);
                let _ = accepted.send(Ok(()));
            }
            Command::Advertise(ih, port, r) => {
                self.node.advertise(now, ih, crate::advert(port));
                let _ = r.send(());
            }
            Command::StopAdvertising(ih, r) => {
                self.node.stop_advertising(&ih);
                let _ = r.send(());
            }
            Command::KeepItem(item, r) => {
                self.node.keep_item(now, item);
                let _ = r.send(());
            }
            Command::StopKeeping(target, r) => {
                let _ = r.send(self.node.stop_keeping(&target));
            }
            Command::SetRpcEvents(on, r) => {
                self.node.set_rpc_events(on);
                let _ = r.send(());
            }
            Command::AddNode(addr, r) => {
                // A local node given by hand points the node at a local network, as a local
                // bootstrap node does (see the builder): it may talk to local addresses.
                if dhtkit_proto::addr::is_local(addr.ip()) {
                    self.node.allow_local_addrs();
                }
                let ok = self.node.add_node(now, addr);
                let _ = r.send(if ok { Ok(()) } else { Err(NOT_CONTACTABLE) });
            }
            Command::MakeNeighbours(r) => {
                self.node.refresh_all(now);
                self.node.bootstrap(now, &[]);
                let _ = r.send(());
            }
            Command::Send(bytes, addr, r) => {
                let _ = r.send(if self.node.send_raw(addr, &bytes) {
                    Ok(())
                } else {
                    Err(Error::Refused("address may not be contacted or queue full"))
                });
            }
            Command::RoutingTable(r) => {
                // Both families' tables on a dual-stack node, IPv4 first.
                let nodes = self
                    .node
                    .routing_tables()
                    .flat_map(|table| {
                        let cfg = *table.config();
                        table.iter().map(move |e| NodeInfo {
                            id: e.id,
                            addr: e.addr,
                            good: e.status(now, &cfg) == Status::Good,
                            rtt: e.rtt,
                        })
                    })
                    .collect();
                let _ = r.send(nodes);
            }
            Command::Stats(r) => {
                let store = self.node.peer_store();
                let _ = r.send(DhtStats {
                    id: self.node.id(),
                    local_addr: self.local,
                    nodes: self.table_len(),
                    peers_stored: store.map_or(0, |s| s.len()),
                    infohashes_stored: store.map_or(0, |s| s.infohashes()),
                    lookups_running: self.node.lookups_running(),
                    pending_queries: self.node.pending_queries(),
                    advertised: self.node.advertised().len(),
                    node: self.node.stats(),
                });
            }
            Command::State(r) => {
                let _ = r.send(self.saved_state());
            }
            Command::SaveState(r) => self.start_save(vec![r]),
            Command::Shutdown(r) => {
                // Handled in the loop.
                let _ = r.send(());
            }
        }
    }
}
