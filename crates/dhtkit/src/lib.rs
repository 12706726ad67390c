//! # dhtkit
//!
//! An embeddable BitTorrent Mainline DHT node for tokio programs.
//!
//! ```no_run
//! # async fn demo() -> Result<(), dhtkit::Error> {
//! use dhtkit::{Dht, Id};
//!
//! let dht = Dht::builder().bind("0.0.0.0:6881".parse().unwrap()).build().await?;
//! let infohash: Id = "a4104a9d2f5615601c429fe8bab8177c47c05c84".parse().unwrap();
//! let mut lookup = dht.get_peers(infohash).await?;
//! while let Some(peer) = lookup.next_peer().await {
//!     println!("{peer}");
//! }
//! dht.advertise(infohash, Some(6881)).await?; // announced now and every 15 minutes
//! dht.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! One task owns the protocol core ([`dhtkit_proto::Node`]) and the socket; the [`Dht`] handle
//! talks to it over a channel, so it is cheap to clone and share. Events go out on a bounded
//! broadcast: a slow subscriber loses events (and is told how many), the node never waits.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod builder;
mod driver;
mod error;
mod events;
mod state;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

pub use builder::{DhtBuilder, DEFAULT_BIND, DEFAULT_BOOTSTRAP};
pub use dhtkit_proto::bencode::OwnedValue;
pub use dhtkit_proto::bep46;
pub use dhtkit_proto::items::{self, Item};
/// The events a node reports: the protocol core's own type, handed on unchanged.
pub use dhtkit_proto::Event as DhtEvent;
pub use dhtkit_proto::{
    addr, Advert, Answer, Event, Id, InfoHash, ItemReport, LookupKind, LookupResult, LookupTimes,
    MethodKind, PutRefusal, Reply, Request, RequestOutcome, ScrapeEstimate, Stats as NodeStats,
};
/// The protocol core's settings, for [`DhtBuilder::config`] (and the parts it is made of).
pub use dhtkit_proto::{Config, SampleConfig, StoreConfig};
pub use error::Error;
pub use events::{EventJson, EventStream};
pub use state::{SavedState, StateError, STATE_VERSION};

use driver::{Command, LookupCommand};
use tokio::sync::{broadcast, mpsc, oneshot};

/// A node in the routing table, as [`Dht::routing_table`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NodeInfo {
    /// Node id.
    pub id: Id,
    /// UDP address.
    pub addr: SocketAddr,
    /// Answered one of our queries within the last 15 minutes.
    pub good: bool,
    /// Round-trip time of its last answer.
    pub rtt: Option<std::time::Duration>,
}

/// Counters and sizes of a running node.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DhtStats {
    /// Our id.
    pub id: Id,
    /// The bound address.
    pub local_addr: SocketAddr,
    /// Nodes in the routing table (both tables on a dual-stack node).
    pub nodes: usize,
    /// Peers in the peer store.
    pub peers_stored: usize,
    /// Infohashes in the peer store.
    pub infohashes_stored: usize,
    /// Lookups running.
    pub lookups_running: usize,
    /// Queries awaiting an answer.
    pub pending_queries: usize,
    /// Infohashes being advertised.
    pub advertised: usize,
    /// The protocol core's counters.
    pub node: NodeStats,
}

/// What an announce achieved.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AnnounceResult {
    /// Nodes that acknowledged the announce.
    pub announced: usize,
    /// Peers found on the way.
    pub peers: Vec<SocketAddr>,
    /// The whole lookup.
    pub lookup: LookupResult,
}

/// What a BEP 44 put achieved.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PutResult {
    /// Where the item is stored.
    pub target: Id,
    /// The sequence number put (mutable items).
    pub seq: Option<i64>,
    /// Nodes that stored it.
    pub stored: usize,
    /// The KRPC error codes other nodes answered with (301: cas mismatch, 302: a newer
    /// item is stored), one per refusal.
    pub errors: Vec<i64>,
    /// Each node that refused the put: its address, id, code and message (also those
    /// inside a put most nodes stored).
    pub refusals: Vec<PutRefusal>,
    /// Puts that got no answer in time.
    pub unanswered: u32,
    /// What the nodes asked had before the put: the same item, an older or a newer seq, an
    /// invalid item, or nothing.
    pub report: ItemReport,
    /// The whole lookup.
    pub lookup: LookupResult,
}

/// A BEP 51 sample of the infohashes one node stores.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Samples {
    /// Seconds the node asks us to wait before asking again.
    pub interval: Option<i64>,
    /// How many infohashes the node stores in all.
    pub num: Option<i64>,
    /// The sample.
    pub samples: Vec<Id>,
    /// Nodes it returned beside the sample (near our id).
    pub nodes: Vec<(Id, SocketAddr)>,
}

/// Most times [`Dht::put_mutable`] reads the stored seq again and retries after nodes
/// answered that a newer item is stored (301 or 302).
pub const PUT_MUTABLE_TRIES: usize = 3;

/// A get_peers lookup in progress: peers arrive as they are found.
pub struct GetPeers {
    peers: mpsc::UnboundedReceiver<SocketAddr>,
    done: oneshot::Receiver<LookupResult>,
}

impl GetPeers {
    /// The next peer found; `None` when the lookup has finished and every peer was read.
    pub async fn next_peer(&mut self) -> Option<SocketAddr> {
        self.peers.recv().await
    }

    /// Waits for the lookup to finish (peers not yet read are dropped).
    pub async fn finish(self) -> Result<LookupResult, Error> {
        self.done.await.map_err(|_| Error::Shutdown)
    }
}

struct Inner {
    tx: mpsc::Sender<Command>,
    events: broadcast::Sender<DhtEvent>,
    local_addr: SocketAddr,
    local_addrs: Vec<SocketAddr>,
    /// The node's id; the driver updates it when BEP 42 derives a new one.
    id: Arc<Mutex<Id>>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// A handle to a running DHT node. Cloning it is cheap; the node runs until
/// [`Dht::shutdown`] or until every handle is dropped.
#[derive(Clone)]
pub struct Dht {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Dht {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dht")
            .field("id", &self.id())
            .field("local_addr", &self.inner.local_addr)
            .finish()
    }
}

impl Dht {
    /// A builder with the defaults: bind `0.0.0.0:6881` and `[::]:6881` (IPv4 only, with a
    /// warning, where IPv6 is unavailable), the public bootstrap routers.
    pub fn builder() -> DhtBuilder {
        DhtBuilder::default()
    }

    /// Our node id.
    pub fn id(&self) -> Id {
        *self.inner.id.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The bound address (the IPv4 one on a dual-stack node).
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr
    }

    /// Every bound address: one, or two on a dual-stack node (IPv4 first).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.inner.local_addrs
    }

    /// Subscribes to events from now on. The stream opens with a [`DhtEvent::Listening`] for
    /// each bound address (IPv4 first on a dual-stack node).
    pub fn events(&self) -> EventStream {
        let id = self.id();
        EventStream {
            rx: self.inner.events.subscribe(),
            lost: 0,
            first: self
                .inner
                .local_addrs
                .iter()
                .rev()
                .map(|&addr| DhtEvent::Listening { addr, id })
                .collect(),
        }
    }

    async fn call<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Result<T, Error> {
        let (tx, rx) = oneshot::channel();
        self.inner
            .tx
            .send(make(tx))
            .await
            .map_err(|_| Error::Shutdown)?;
        rx.await.map_err(|_| Error::Shutdown)
    }

    /// Waits until the first bootstrap has finished; returns the routing table size then.
    pub async fn bootstrapped(&self) -> Result<usize, Error> {
        self.call(Command::WaitBootstrap).await
    }

    /// Sends one query to `addr` and waits for its answer: the one path for pings, asking a
    /// single node, and methods dhtkit does not know (their whole `r` dictionary is in
    /// [`Reply::raw`]). A KRPC error comes back as [`Error::Remote`], silence as
    /// [`Error::Timeout`].
    pub async fn request(&self, addr: SocketAddr, request: Request) -> Result<Reply, Error> {
        match self.call(|r| Command::Request(addr, request, r)).await?? {
            RequestOutcome::Response(reply) => Ok(reply),
            RequestOutcome::Error { code, message } => Err(Error::Remote { code, message }),
            _ => Err(Error::Timeout),
        }
    }

    /// Pings a node; returns its id.
    pub async fn ping(&self, addr: SocketAddr) -> Result<Id, Error> {
        Ok(self.request(addr, Request::Ping).await?.id)
    }

    /// Starts a lookup and waits until the node has accepted it.
    async fn lookup(&self, target: Id, what: LookupCommand) -> Result<(), Error> {
        self.call(|accepted| Command::Lookup {
            target,
            what,
            accepted,
        })
        .await?
    }

    /// The nodes closest to `target`, by an iterative lookup, closest first. A dual-stack
    /// node looks in both families and returns up to k of each, merged by distance.
    pub async fn find_node(&self, target: Id) -> Result<Vec<(Id, SocketAddr)>, Error> {
        let (tx, rx) = oneshot::channel();
        self.lookup(target, LookupCommand::FindNode(tx)).await?;
        Ok(rx.await.map_err(|_| Error::Shutdown)??.closest)
    }

    /// Asks one node for the nodes it knows closest to `target` (the crawler seed's
    /// `findNode(nodeId, node)`).
    pub async fn find_node_via(
        &self,
        target: Id,
        via: SocketAddr,
    ) -> Result<Vec<(Id, SocketAddr)>, Error> {
        Ok(self.request(via, Request::find_node(target)).await?.nodes)
    }

    /// Starts a get_peers lookup; peers stream in as they are found.
    pub async fn get_peers(&self, info_hash: Id) -> Result<GetPeers, Error> {
        let (peers, prx) = mpsc::unbounded_channel();
        let (done, drx) = oneshot::channel();
        self.lookup(info_hash, LookupCommand::GetPeers { peers, done })
            .await?;
        Ok(GetPeers {
            peers: prx,
            done: drx,
        })
    }

    /// Announces that we have `info_hash`, on TCP `port` (`None`: the UDP port we send from,
    /// `implied_port`). Returns when the closest nodes have answered.
    pub async fn announce(
        &self,
        info_hash: Id,
        port: Option<u16>,
    ) -> Result<AnnounceResult, Error> {
        self.announce_as(info_hash, port, false).await
    }

    /// [`Dht::announce`], saying whether we are a seed (BEP 33's `seed` flag: nodes count
    /// seeds and other peers apart, and [`Dht::scrape`] reports both).
    pub async fn announce_as(
        &self,
        info_hash: Id,
        port: Option<u16>,
        seed: bool,
    ) -> Result<AnnounceResult, Error> {
        let (tx, rx) = oneshot::channel();
        self.lookup(info_hash, LookupCommand::Announce(port, seed, tx))
            .await?;
        rx.await.map_err(|_| Error::Shutdown)?
    }

    /// BEP 33: estimates how many seeds and other peers `info_hash` has, from the bloom
    /// filters of the nodes that store it. `None` when no node sent filters.
    pub async fn scrape(&self, info_hash: Id) -> Result<Option<ScrapeEstimate>, Error> {
        Ok(self.scrape_lookup(info_hash).await?.scrape)
    }

    /// BEP 33, with everything the lookup reports: the estimate in
    /// [`LookupResult::scrape`], and what it cost (`queries`, `responses`, `timeouts`).
    pub async fn scrape_lookup(&self, info_hash: Id) -> Result<LookupResult, Error> {
        let (tx, rx) = oneshot::channel();
        self.lookup(info_hash, LookupCommand::Scrape(tx)).await?;
        rx.await.map_err(|_| Error::Shutdown)?
    }

    /// BEP 44: keeps `item` alive until [`Dht::stop_keeping`]: put now, then checked (a
    /// `get` of the closest nodes) and put again on a schedule that follows the churn the
    /// checks measure: only when too few of the nodes that stored it still hold it, or it
    /// reached the age up to which they did ([`dhtkit_proto::Config::adaptive_item_refresh`];
    /// first check after [`dhtkit_proto::Config::item_refresh`], at most a day apart). Each
    /// check and put is reported as a lookup event (`put_skipped` for a check).
    pub async fn keep_item(&self, item: Item) -> Result<(), Error> {
        if let Err(r) = item.check() {
            return Err(Error::InvalidItem {
                code: r.code,
                message: r.message.to_string(),
            });
        }
        self.call(|r| Command::KeepItem(item, r)).await
    }

    /// Stops keeping the item under `target` alive; false if it was not kept.
    pub async fn stop_keeping(&self, target: Id) -> Result<bool, Error> {
        self.call(|r| Command::StopKeeping(target, r)).await
    }

    /// Turns the per-message events ([`DhtEvent::QueryReceived`], [`DhtEvent::ResponseReceived`])
    /// on or off (on by default, [`dhtkit_proto::Config::rpc_events`]). A busy node whose
    /// subscriber does not want them saves an event per message.
    pub async fn set_rpc_events(&self, on: bool) -> Result<(), Error> {
        self.call(|r| Command::SetRpcEvents(on, r)).await
    }

    /// BEP 51: asks `addr` for a sample of the infohashes it stores.
    pub async fn sample_infohashes(&self, addr: SocketAddr) -> Result<Samples, Error> {
        let target = self.id();
        let r = self
            .request(addr, Request::sample_infohashes(target))
            .await?;
        Ok(Samples {
            interval: r.interval,
            num: r.num,
            samples: r.samples,
            nodes: r.nodes,
        })
    }

    /// BEP 44: the item stored under `target`, checked before it is returned (an immutable
    /// value must hash to `target`; a mutable item must be signed by a key that, with
    /// `salt`, hashes to it). For a mutable item, the highest seq found. `None` when no node
    /// had one.
    pub async fn get(&self, target: Id, salt: &[u8]) -> Result<Option<Item>, Error> {
        Ok(self.get_lookup(target, salt).await?.item)
    }

    /// [`Dht::get`], returning the whole lookup.
    ///
    /// [`LookupResult::item_report`] says how many nodes answered, had the item found, had an
    /// older seq, sent an invalid item or none. A salt over 64 bytes is refused with
    /// [`Error::InvalidItem`] (207) before any query is sent.
    pub async fn get_lookup(&self, target: Id, salt: &[u8]) -> Result<LookupResult, Error> {
        if salt.len() > items::MAX_SALT_LEN {
            return Err(Error::InvalidItem {
                code: dhtkit_proto::krpc::ERR_SALT_TOO_BIG,
                message: format!("salt of {} bytes; at most 64", salt.len()),
            });
        }
        let (tx, rx) = oneshot::channel();
        let what = LookupCommand::GetItem {
            salt: salt.to_vec(),
            done: tx,
        };
        self.lookup(target, what).await?;
        rx.await.map_err(|_| Error::Shutdown)?
    }

    /// BEP 46: the infohash a mutable torrent link points at now, with the item that says
    /// so (the highest seq found). `None` when no node had the item or its value is not a
    /// `d2:ih20:…e` pointer.
    pub async fn resolve_torrent(
        &self,
        link: &dhtkit_proto::bep46::MutableMagnet,
    ) -> Result<Option<(Id, Item)>, Error> {
        let item = self.get(link.target(), &link.salt).await?;
        Ok(item.and_then(|i| dhtkit_proto::bep46::pointed_info_hash(&i.value).map(|ih| (ih, i))))
    }

    /// BEP 46: points the mutable torrent of key `seed` and `salt` at `info_hash` (a put of
    /// `d2:ih20:…e`, seq one more than the highest found, as [`Dht::put_mutable`]).
    pub async fn publish_torrent(
        &self,
        seed: &[u8; 32],
        salt: &[u8],
        info_hash: Id,
    ) -> Result<PutResult, Error> {
        let v = dhtkit_proto::bep46::pointer_value(&info_hash);
        self.put_mutable(seed, salt, v, None).await
    }

    /// BEP 44: stores `item` on the nodes closest to its target. With `cas`, nodes keep a
    /// mutable item only in place of the seq given.
    ///
    /// An item nodes would refuse (a value over 1,000 bytes, a salt over 64, a signature that
    /// does not verify) is refused with [`Error::InvalidItem`] before any query is sent.
    pub async fn put(&self, item: Item, cas: Option<i64>) -> Result<PutResult, Error> {
        if let Err(r) = item.check() {
            return Err(Error::InvalidItem {
                code: r.code,
                message: r.message.to_string(),
            });
        }
        let target = item.target();
        let seq = item.seq();
        let (tx, rx) = oneshot::channel();
        self.lookup(
            target,
            LookupCommand::PutItem {
                item,
                cas,
                done: tx,
            },
        )
        .await?;
        let lookup = rx.await.map_err(|_| Error::Shutdown)??;
        Ok(PutResult {
            target,
            seq,
            stored: lookup.announced,
            errors: lookup.put_refusals.iter().map(|r| r.code).collect(),
            refusals: lookup.put_refusals.clone(),
            unanswered: lookup.put_unanswered,
            report: lookup.item_report,
            lookup,
        })
    }

    /// BEP 44: stores an immutable item whose value is `value`, already bencoded (for a
    /// string, [`dhtkit_proto::items::bencode_bytes`]). Its target is the SHA-1 of `value`.
    pub async fn put_immutable(&self, value: Vec<u8>) -> Result<PutResult, Error> {
        self.put(Item::immutable(value), None).await
    }

    /// BEP 44: stores a mutable item whose value is `value` (already bencoded), signed with
    /// the ed25519 secret `seed`, under the SHA-1 of its public key and `salt`.
    ///
    /// With `seq: None` it reads the item first and puts one more than the highest seq
    /// found, with `cas` set to that seq; when nodes answer that someone else stored a newer
    /// one meanwhile (301 or 302) and none stored ours, it reads and tries again, up to
    /// [`PUT_MUTABLE_TRIES`] times. With `seq: Some(n)` it puts seq `n` once, without cas.
    pub async fn put_mutable(
        &self,
        seed: &[u8; 32],
        salt: &[u8],
        value: Vec<u8>,
        seq: Option<i64>,
    ) -> Result<PutResult, Error> {
        if let Some(seq) = seq {
            return self.put(Item::mutable(seed, salt, seq, value), None).await;
        }
        let mut tries = 0;
        loop {
            tries += 1;
            let target = items::mutable_target(&items::public_key(seed), salt);
            let current = self.get(target, salt).await?.and_then(|i| i.seq());
            let next = current.map_or(1, |s| s.saturating_add(1));
            let item = Item::mutable(seed, salt, next, value.clone());
            let r = self.put(item, current).await?;
            let raced = r.stored == 0 && r.errors.iter().any(|c| *c == 301 || *c == 302);
            if !raced || tries >= PUT_MUTABLE_TRIES {
                return Ok(r);
            }
        }
    }

    /// Keeps announcing `info_hash` (now, then every advertise interval) until
    /// [`Dht::stop_advertising`]. Peers found for it are reported with `advertised: true`.
    pub async fn advertise(&self, info_hash: Id, port: Option<u16>) -> Result<(), Error> {
        self.call(|r| Command::Advertise(info_hash, port, r)).await
    }

    /// Stops advertising `info_hash`.
    pub async fn stop_advertising(&self, info_hash: Id) -> Result<(), Error> {
        self.call(|r| Command::StopAdvertising(info_hash, r)).await
    }

    /// Adds a node: it is pinged and enters the table if it answers (dht.js's `connect`).
    pub async fn add_node(&self, addr: SocketAddr) -> Result<(), Error> {
        self.call(|r| Command::AddNode(addr, r)).await?
    }

    /// Same as [`Dht::add_node`].
    pub async fn connect(&self, addr: SocketAddr) -> Result<(), Error> {
        self.add_node(addr).await
    }

    /// Fills the routing table by asking known nodes: a lookup in every bucket and another
    /// bootstrap (the crawler seed's `makeNeighbours`). Returns at once.
    pub async fn make_neighbours(&self) -> Result<(), Error> {
        self.call(Command::MakeNeighbours).await
    }

    /// Sends a custom message as it is (the crawler seed's `sendMessage`), through the node's
    /// outgoing queue. Answers to it show up as [`DhtEvent::Datagram`] /
    /// [`DhtEvent::Message`] when message events are on; for a query that should be matched
    /// to its answer, use [`Dht::request`].
    pub async fn send_message(&self, message: &OwnedValue, addr: SocketAddr) -> Result<(), Error> {
        let bytes = message.to_bytes();
        self.call(|r| Command::Send(bytes, addr, r)).await?
    }

    /// A snapshot of the routing table: both tables on a dual-stack node, IPv4 first.
    pub async fn routing_table(&self) -> Result<Vec<NodeInfo>, Error> {
        self.call(Command::RoutingTable).await
    }

    /// Counters and sizes.
    pub async fn stats(&self) -> Result<DhtStats, Error> {
        self.call(Command::Stats).await
    }

    /// The current state (id, nodes, advertised infohashes), for saving elsewhere.
    pub async fn state(&self) -> Result<SavedState, Error> {
        self.call(Command::State).await
    }

    /// Writes the state file now (when one was configured).
    pub async fn save_state(&self) -> Result<(), Error> {
        self.call(Command::SaveState).await?
    }

    /// Stops the node: saves the state file (if any), then waits for the task to end.
    pub async fn shutdown(&self) {
        let _ = self.call(Command::Shutdown).await;
        let task = self.inner.task.lock().ok().and_then(|mut t| t.take());
        if let Some(t) = task {
            let _ = t.await;
        }
    }
}

/// An advertisement of ours: no seed flag from the API yet.
pub(crate) fn advert(port: Option<u16>) -> Advert {
    Advert { port, seed: false }
}
