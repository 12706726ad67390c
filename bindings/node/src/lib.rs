//! The native half of the `dhtkit` npm package: a [`dhtkit::Dht`] behind Node-API.
//!
//! The JavaScript wrapper (`index.js`) owns the public API; this addon gives it a small,
//! promise-based surface. Every call runs on napi-rs's one tokio runtime per process.
//! Events are pulled, not pushed: the wrapper keeps one `nextEvents()` call pending while
//! the node runs, and that pending promise is what keeps Node's event loop alive. After
//! `close()` the stream ends, nothing native is left pending, and the process can exit.
//!
//! Errors reach JavaScript as `Error`s whose message starts with a code and a `|`
//! (`DHT_TIMEOUT|no answer in time`); the wrapper moves the code to `err.code`.
#![deny(unsafe_code)]

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use dhtkit::{Dht, Error as DhtError, EventJson, EventStream, GetPeers, Id, Item, SavedState};
use napi::bindgen_prelude::Buffer;
use napi_derive::napi;
use serde_json::{json, Value as Json};
use tokio::sync::Mutex;

type Result<T> = napi::Result<T>;

fn fail(code: &str, message: impl std::fmt::Display) -> napi::Error {
    napi::Error::from_reason(format!("{code}|{message}"))
}

fn dht_error(e: DhtError) -> napi::Error {
    match &e {
        DhtError::Timeout => fail("DHT_TIMEOUT", e),
        DhtError::Shutdown => fail("DHT_CLOSED", e),
        DhtError::Refused(_) => fail("DHT_REFUSED", e),
        DhtError::Remote { code, .. } => fail(&format!("DHT_REMOTE_{code}"), e),
        DhtError::BadAddress(_) => fail("DHT_BAD_ADDRESS", e),
        DhtError::State(_) => fail("DHT_STATE", e),
        DhtError::Io(io) => match io.kind() {
            std::io::ErrorKind::AddrInUse => fail("EADDRINUSE", e),
            std::io::ErrorKind::PermissionDenied => fail("EACCES", e),
            std::io::ErrorKind::AddrNotAvailable => fail("EADDRNOTAVAIL", e),
            _ => fail("DHT_IO", e),
        },
        _ => fail("DHT_ERROR", e),
    }
}

fn parse_id(what: &str, hex: &str) -> Result<Id> {
    hex.parse().map_err(|_| {
        fail(
            "DHT_BAD_ARGUMENT",
            format!("{what}: not 40 hex digits: {hex:?}"),
        )
    })
}

/// `host:port` or `[v6]:port`; names are resolved (at most the first address is used).
fn parse_addr(text: &str) -> Result<SocketAddr> {
    if let Ok(a) = text.parse() {
        return Ok(a);
    }
    text.to_socket_addrs()
        .ok()
        .and_then(|mut it| it.next())
        .ok_or_else(|| fail("DHT_BAD_ADDRESS", format!("bad address {text:?}")))
}

fn nodes_json(nodes: &[(Id, SocketAddr)]) -> Json {
    nodes
        .iter()
        .map(|(id, a)| json!({"id": id.to_hex(), "addr": a.to_string()}))
        .collect()
}

fn lookup_json(r: &dhtkit::LookupResult) -> Json {
    dhtkit::Event::LookupFinished(Box::new(r.clone())).to_json()
}

fn item_json(item: &Item) -> Json {
    let mut m = json!({
        "target": item.target().to_hex(),
        "v": dhtkit_proto::to_hex(&item.value),
    });
    if let Some(s) = &item.signed {
        m["k"] = json!(dhtkit_proto::to_hex(&s.key));
        m["sig"] = json!(dhtkit_proto::to_hex(&s.sig));
        m["salt"] = json!(dhtkit_proto::to_hex(&s.salt));
        m["seq"] = json!(s.seq);
    }
    m
}

fn put_json(r: &dhtkit::PutResult) -> String {
    json!({
        "target": r.target.to_hex(),
        "seq": r.seq,
        "stored": r.stored,
        "errors": r.errors,
        "lookup": lookup_json(&r.lookup),
    })
    .to_string()
}

/// Options for [`open`]; the wrapper documents each.
#[napi(object)]
#[derive(Default)]
pub struct NativeOptions {
    /// Addresses to bind (`"127.0.0.1:0"`); at most one IPv4 and one IPv6.
    pub bind: Option<Vec<String>>,
    /// Bootstrap nodes as `host:port`; `[]` for none.
    pub bootstrap: Option<Vec<String>>,
    /// A saved state, in the JSON form `save()` returns.
    pub state: Option<String>,
    /// A state file: read at start, written periodically and on close.
    pub state_file: Option<String>,
    /// The node id (hex); a saved state's id wins.
    pub id: Option<String>,
    /// BEP 43 read-only.
    pub read_only: Option<bool>,
    /// Routing-table size cap.
    pub max_nodes: Option<u32>,
    /// Store announced peers (on by default).
    pub peer_store: Option<bool>,
    /// Report every datagram as a `datagram` event.
    pub message_events: Option<bool>,
    /// Events buffered for a slow consumer.
    pub event_capacity: Option<u32>,
    /// Parallel queries per lookup.
    pub alpha: Option<u32>,
    /// Queries answered per second for one source IP (0: no limit).
    pub per_ip_rate: Option<u32>,
    /// The burst allowed above `per_ip_rate` (default ten seconds' worth).
    pub per_ip_burst: Option<u32>,
    /// Replies sent per second in all (0: no limit).
    pub reply_rate: Option<u32>,
    /// Queries sent per second to one destination IP (0: no limit).
    pub outbound_rate: Option<u32>,
    /// Burst for `outbound_rate`.
    pub outbound_burst: Option<u32>,
    /// Milliseconds between re-announces of advertised infohashes.
    pub advertise_interval_ms: Option<u32>,
    /// Milliseconds between state-file saves.
    pub save_interval_ms: Option<u32>,
}

/// One event of the node: its core name, its JSON form, and the raw bytes of a datagram.
#[napi(object)]
pub struct NativeEvent {
    /// The core's event name (`peer_found`, `query`, …).
    pub name: String,
    /// The event as JSON text.
    pub json: String,
    /// A `datagram` event's bytes.
    pub bytes: Option<Buffer>,
}

/// Starts a node.
#[napi]
pub async fn open(options: NativeOptions) -> Result<NativeDht> {
    let o = options;
    let mut b = Dht::builder();
    for a in o.bind.unwrap_or_else(|| vec!["0.0.0.0:0".into()]) {
        b = b.bind(parse_addr(&a)?);
    }
    if let Some(list) = o.bootstrap {
        b = b.bootstrap(list);
    }
    if let Some(text) = o.state {
        let s = SavedState::from_json(&text).map_err(|e| fail("DHT_STATE", e))?;
        b = b.state(s);
    }
    if let Some(path) = o.state_file {
        b = b.state_file(path);
    }
    if let Some(id) = o.id {
        b = b.node_id(parse_id("id", &id)?);
    }
    if let Some(on) = o.read_only {
        b = b.read_only(on);
    }
    if let Some(n) = o.max_nodes {
        b = b.max_nodes(n as usize);
    }
    if let Some(on) = o.peer_store {
        b = b.peer_store(on);
    }
    if let Some(on) = o.message_events {
        b = b.message_events(on);
    }
    if let Some(n) = o.event_capacity {
        b = b.event_capacity(n.max(1) as usize);
    }
    if let Some(n) = o.alpha {
        b = b.alpha(n.max(1) as usize);
    }
    match (o.per_ip_rate, o.per_ip_burst) {
        (Some(r), Some(burst)) => b = b.inbound_rate(r, burst),
        (Some(r), None) => b = b.per_ip_rate(r),
        (None, Some(burst)) => {
            b = b.inbound_rate(dhtkit_proto::Config::default().per_ip_rate, burst)
        }
        (None, None) => {}
    }
    if let Some(r) = o.reply_rate {
        b = b.reply_rate(r);
    }
    if let Some(r) = o.outbound_rate {
        b = b.outbound_rate(r, o.outbound_burst.unwrap_or(r));
    }
    if let Some(ms) = o.advertise_interval_ms {
        b = b.advertise_interval(Duration::from_millis(ms.into()));
    }
    if let Some(ms) = o.save_interval_ms {
        b = b.save_interval(Duration::from_millis(ms.into()));
    }
    let dht = b.build().await.map_err(dht_error)?;
    let events = dht.events();
    Ok(NativeDht {
        dht,
        events: Arc::new(Mutex::new(Some(events))),
        wanted: Arc::new(std::sync::RwLock::new(None)),
        closed: tokio::sync::watch::channel(false).0,
    })
}

/// A running node.
#[napi]
pub struct NativeDht {
    dht: Dht,
    events: Arc<Mutex<Option<EventStream>>>,
    /// The event names JavaScript listens to (`None`: all). Others are dropped here, before
    /// they are turned into JSON or wake the event loop: a node that answers thousands of
    /// queries a second costs JavaScript nothing unless it listens to `query`.
    wanted: Arc<std::sync::RwLock<Option<std::collections::HashSet<String>>>>,
    /// Set by `close`: ends the event stream (the handle itself keeps the core's event
    /// channel open, so the stream would never end on its own).
    closed: tokio::sync::watch::Sender<bool>,
}

#[napi]
impl NativeDht {
    /// The node id, hex.
    #[napi]
    pub fn id(&self) -> String {
        self.dht.id().to_hex()
    }

    /// Bound addresses, IPv4 first.
    #[napi]
    pub fn addresses(&self) -> Vec<String> {
        self.dht
            .local_addrs()
            .iter()
            .map(|a| a.to_string())
            .collect()
    }

    /// Turns the core's per-message `query` and `response` events on or off.
    #[napi]
    pub async fn set_rpc_events(&self, on: bool) -> Result<()> {
        self.dht.set_rpc_events(on).await.map_err(dht_error)
    }

    /// Limits the events `next_events` returns to these core names (`null`: every event).
    #[napi]
    pub fn set_events(&self, names: Option<Vec<String>>) {
        let set = names.map(|n| n.into_iter().collect());
        *self.wanted.write().unwrap_or_else(|p| p.into_inner()) = set;
    }

    fn wants(&self, e: &dhtkit::Event) -> bool {
        match &*self.wanted.read().unwrap_or_else(|p| p.into_inner()) {
            None => true,
            Some(set) => set.contains(e.name()),
        }
    }

    /// Up to `max` events of the names asked for; waits for at least one. `null` once the
    /// node has shut down.
    #[napi]
    pub async fn next_events(&self, max: u32) -> Result<Option<Vec<NativeEvent>>> {
        let mut closed = self.closed.subscribe();
        let mut guard = self.events.lock().await;
        let Some(stream) = guard.as_mut() else {
            return Ok(None);
        };
        let first = loop {
            let e = tokio::select! {
                e = stream.recv() => e,
                _ = closed.wait_for(|c| *c) => None,
            };
            match e {
                Some(e) if !self.wants(&e) => continue,
                e => break e,
            }
        };
        let Some(first) = first else {
            *guard = None;
            return Ok(None);
        };
        let mut out = vec![event(first)];
        while out.len() < max.max(1) as usize {
            // Whatever is already queued, without waiting.
            match tokio::time::timeout(Duration::ZERO, stream.recv()).await {
                Ok(Some(e)) if self.wants(&e) => out.push(event(e)),
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(_) => break,
            }
        }
        Ok(Some(out))
    }

    /// Resolves with the routing-table size once the first bootstrap has finished.
    #[napi]
    pub async fn bootstrapped(&self) -> Result<u32> {
        Ok(self.dht.bootstrapped().await.map_err(dht_error)? as u32)
    }

    /// Pings `addr`; resolves with its id.
    #[napi]
    pub async fn ping(&self, addr: String) -> Result<String> {
        let a = parse_addr(&addr)?;
        Ok(self.dht.ping(a).await.map_err(dht_error)?.to_hex())
    }

    /// An iterative find_node; JSON list of `{id, addr}`, closest first.
    #[napi]
    pub async fn find_node(&self, target: String) -> Result<String> {
        let t = parse_id("target", &target)?;
        let nodes = self.dht.find_node(t).await.map_err(dht_error)?;
        Ok(nodes_json(&nodes).to_string())
    }

    /// One query to one node: `method` is ping, find_node, get_peers, announce_peer (with
    /// `token` and `port`), sample_infohashes or get; resolves with the reply as JSON.
    #[napi]
    pub async fn request(
        &self,
        addr: String,
        method: String,
        target: Option<String>,
        token: Option<Buffer>,
        port: Option<u32>,
    ) -> Result<String> {
        use dhtkit::Request;
        let a = parse_addr(&addr)?;
        let target = match target {
            Some(t) => Some(parse_id("target", &t)?),
            None => None,
        };
        let need = || target.ok_or_else(|| fail("DHT_BAD_ARGUMENT", "this method needs a target"));
        let req = match method.as_str() {
            "ping" => Request::Ping,
            "find_node" => Request::find_node(need()?),
            "get_peers" => Request::get_peers(need()?),
            "sample_infohashes" => Request::sample_infohashes(need()?),
            "get" => Request::get(need()?, None),
            "announce_peer" => {
                let token =
                    token.ok_or_else(|| fail("DHT_BAD_ARGUMENT", "announce_peer needs a token"))?;
                let port = port.map(|p| p as u16);
                Request::announce_peer(need()?, port, token.to_vec(), false)
            }
            m => return Err(fail("DHT_BAD_ARGUMENT", format!("unknown method {m:?}"))),
        };
        let r = self.dht.request(a, req).await.map_err(dht_error)?;
        let peers: Vec<String> = r.peers.iter().map(|p| p.to_string()).collect();
        Ok(json!({
            "id": r.id.to_hex(),
            "nodes": nodes_json(&r.nodes),
            "peers": peers,
            "token": r.token.as_ref().map(|t| dhtkit_proto::to_hex(t)),
            "samples": r.samples.iter().map(|s| s.to_hex()).collect::<Vec<_>>(),
            "num": r.num,
            "interval": r.interval,
        })
        .to_string())
    }

    /// Starts a get_peers lookup; read peers from the handle it resolves with.
    #[napi]
    pub async fn get_peers(&self, info_hash: String) -> Result<PeerLookup> {
        let ih = parse_id("infoHash", &info_hash)?;
        let lookup = self.dht.get_peers(ih).await.map_err(dht_error)?;
        Ok(PeerLookup {
            inner: Arc::new(Mutex::new(Some(lookup))),
        })
    }

    /// Announces once (`port` absent: implied port); resolves with JSON `{announced, peers,
    /// lookup}`.
    #[napi]
    pub async fn announce(&self, info_hash: String, port: Option<u32>) -> Result<String> {
        let ih = parse_id("infoHash", &info_hash)?;
        let r = self
            .dht
            .announce(ih, port.map(|p| p as u16))
            .await
            .map_err(dht_error)?;
        let peers: Vec<String> = r.peers.iter().map(|p| p.to_string()).collect();
        Ok(
            json!({"announced": r.announced, "peers": peers, "lookup": lookup_json(&r.lookup)})
                .to_string(),
        )
    }

    /// Keeps announcing `info_hash` until `unadvertise`.
    #[napi]
    pub async fn advertise(&self, info_hash: String, port: Option<u32>) -> Result<()> {
        let ih = parse_id("infoHash", &info_hash)?;
        self.dht
            .advertise(ih, port.map(|p| p as u16))
            .await
            .map_err(dht_error)
    }

    /// Stops advertising `info_hash`.
    #[napi]
    pub async fn unadvertise(&self, info_hash: String) -> Result<()> {
        let ih = parse_id("infoHash", &info_hash)?;
        self.dht.stop_advertising(ih).await.map_err(dht_error)
    }

    /// BEP 33 estimate: JSON `{seeds, peers}` or `null`.
    #[napi]
    pub async fn scrape(&self, info_hash: String) -> Result<String> {
        let ih = parse_id("infoHash", &info_hash)?;
        let r = self.dht.scrape(ih).await.map_err(dht_error)?;
        Ok(
            r.map_or(Json::Null, |s| json!({"seeds": s.seeds, "peers": s.peers}))
                .to_string(),
        )
    }

    /// BEP 51 sample of `addr`: JSON `{interval, num, samples, nodes}`.
    #[napi]
    pub async fn sample(&self, addr: String) -> Result<String> {
        let a = parse_addr(&addr)?;
        let s = self.dht.sample_infohashes(a).await.map_err(dht_error)?;
        Ok(json!({
            "interval": s.interval,
            "num": s.num,
            "samples": s.samples.iter().map(|i| i.to_hex()).collect::<Vec<_>>(),
            "nodes": nodes_json(&s.nodes),
        })
        .to_string())
    }

    /// BEP 44 immutable put of a bencoded value.
    #[napi]
    pub async fn put_immutable(&self, value: Buffer) -> Result<String> {
        let r = self
            .dht
            .put_immutable(value.to_vec())
            .await
            .map_err(dht_error)?;
        Ok(put_json(&r))
    }

    /// BEP 44 mutable put of a bencoded value, signed with the 32-byte ed25519 `seed`.
    #[napi]
    pub async fn put_mutable(
        &self,
        seed: Buffer,
        salt: Buffer,
        value: Buffer,
        seq: Option<i64>,
    ) -> Result<String> {
        let seed: [u8; 32] = seed[..]
            .try_into()
            .map_err(|_| fail("DHT_BAD_ARGUMENT", "the secret key seed must be 32 bytes"))?;
        let r = self
            .dht
            .put_mutable(&seed, &salt, value.to_vec(), seq)
            .await
            .map_err(dht_error)?;
        Ok(put_json(&r))
    }

    /// BEP 44 get: JSON item or `null`.
    #[napi]
    pub async fn get(&self, target: String, salt: Option<Buffer>) -> Result<String> {
        let t = parse_id("target", &target)?;
        let salt = salt.map(|s| s.to_vec()).unwrap_or_default();
        let item = self.dht.get(t, &salt).await.map_err(dht_error)?;
        Ok(item.as_ref().map_or(Json::Null, item_json).to_string())
    }

    /// The 32-byte ed25519 public key of `seed`.
    #[napi]
    pub fn public_key(&self, seed: Buffer) -> Result<Buffer> {
        let seed: [u8; 32] = seed[..]
            .try_into()
            .map_err(|_| fail("DHT_BAD_ARGUMENT", "the secret key seed must be 32 bytes"))?;
        Ok(dhtkit::items::public_key(&seed).to_vec().into())
    }

    /// Pings `addr`; it enters the table if it answers.
    #[napi]
    pub async fn add_node(&self, addr: String) -> Result<()> {
        let a = parse_addr(&addr)?;
        self.dht.add_node(a).await.map_err(dht_error)
    }

    /// Refreshes every bucket and bootstraps again.
    #[napi]
    pub async fn make_neighbours(&self) -> Result<()> {
        self.dht.make_neighbours().await.map_err(dht_error)
    }

    /// Sends a bencoded message as it is.
    #[napi]
    pub async fn send_message(&self, bytes: Buffer, addr: String) -> Result<()> {
        let a = parse_addr(&addr)?;
        let mut d = dhtkit_proto::bencode::Decoder::default();
        let v = d
            .decode(&bytes)
            .map_err(|e| fail("DHT_BAD_ARGUMENT", format!("not bencode: {e}")))?
            .to_owned_value();
        self.dht.send_message(&v, a).await.map_err(dht_error)
    }

    /// The routing table: JSON list of `{id, addr, good, rtt_ms}`.
    #[napi]
    pub async fn routing_table(&self) -> Result<String> {
        let t = self.dht.routing_table().await.map_err(dht_error)?;
        let list: Vec<Json> = t
            .iter()
            .map(|n| {
                json!({
                    "id": n.id.to_hex(),
                    "addr": n.addr.to_string(),
                    "good": n.good,
                    "rtt_ms": n.rtt.map(|d| d.as_secs_f64() * 1000.0),
                })
            })
            .collect();
        Ok(Json::Array(list).to_string())
    }

    /// Counters: JSON.
    #[napi]
    pub async fn stats(&self) -> Result<String> {
        let s = self.dht.stats().await.map_err(dht_error)?;
        Ok(json!({
            "id": s.id.to_hex(),
            "address": s.local_addr.to_string(),
            "nodes": s.nodes,
            "peersStored": s.peers_stored,
            "infohashesStored": s.infohashes_stored,
            "lookupsRunning": s.lookups_running,
            "pendingQueries": s.pending_queries,
            "advertised": s.advertised,
            "node": format!("{:?}", s.node),
        })
        .to_string())
    }

    /// The state (id, nodes, advertised) in the state-file JSON form.
    #[napi]
    pub async fn state(&self) -> Result<String> {
        Ok(self.dht.state().await.map_err(dht_error)?.to_json())
    }

    /// Writes the state file now (when one was configured).
    #[napi]
    pub async fn save_state(&self) -> Result<()> {
        self.dht.save_state().await.map_err(dht_error)
    }

    /// Stops the node (saving the state file, if any); the event stream then ends.
    #[napi]
    pub async fn close(&self) {
        self.dht.shutdown().await;
        self.closed.send_replace(true);
    }
}

/// A get_peers lookup in progress.
#[napi]
pub struct PeerLookup {
    inner: Arc<Mutex<Option<GetPeers>>>,
}

#[napi]
impl PeerLookup {
    /// The next peer (`ip:port`), or `null` when the lookup is over.
    #[napi]
    pub async fn next(&self) -> Option<String> {
        let mut g = self.inner.lock().await;
        g.as_mut()?.next_peer().await.map(|p| p.to_string())
    }

    /// Waits for the lookup to end; JSON result (peers not yet read are dropped).
    #[napi]
    pub async fn finish(&self) -> Result<String> {
        let l = self.inner.lock().await.take();
        match l {
            None => Err(fail("DHT_BAD_ARGUMENT", "the lookup was already finished")),
            Some(l) => Ok(lookup_json(&l.finish().await.map_err(dht_error)?).to_string()),
        }
    }
}

fn event(e: dhtkit::Event) -> NativeEvent {
    let bytes = match &e {
        dhtkit::Event::Datagram { bytes, .. } => Some(bytes.to_vec().into()),
        _ => None,
    };
    NativeEvent {
        name: e.name().to_string(),
        json: e.to_json().to_string(),
        bytes,
    }
}
