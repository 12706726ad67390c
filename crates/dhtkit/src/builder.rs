//! [`DhtBuilder`]: everything a node can be configured with, and starting it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use dhtkit_proto::addr::is_local;
use dhtkit_proto::{Config, Id, StoreConfig};
use tokio::net::UdpSocket;

use crate::driver::{Driver, DriverConfig};
use crate::state::SavedState;
use crate::{Dht, Error};

/// The public bootstrap routers used when no bootstrap node is given.
pub const DEFAULT_BOOTSTRAP: &[&str] = &[
    "router.bittorrent.com:6881",
    "dht.transmissionbt.com:6881",
    "router.utorrent.com:6881",
    "dht.libtorrent.org:25401",
];

/// The addresses a node binds when none is given: `0.0.0.0:6881` and `[::]:6881` (the IPv6
/// one is dropped, with a warning, where the host has no IPv6).
pub const DEFAULT_BIND: [SocketAddr; 2] = [
    SocketAddr::V4(std::net::SocketAddrV4::new(
        std::net::Ipv4Addr::UNSPECIFIED,
        6881,
    )),
    SocketAddr::V6(std::net::SocketAddrV6::new(
        std::net::Ipv6Addr::UNSPECIFIED,
        6881,
        0,
        0,
    )),
];

/// Configures and starts a [`Dht`]. Get one from [`Dht::builder`].
#[derive(Debug, Clone)]
pub struct DhtBuilder {
    /// Addresses given with [`DhtBuilder::bind`]; none means the default pair.
    bind: Vec<SocketAddr>,
    bootstrap: Vec<String>,
    state: Option<SavedState>,
    state_file: Option<PathBuf>,
    save_interval: Duration,
    event_capacity: usize,
    recv_buffer: usize,
    kernel_filter: bool,
    config: Config,
}

impl Default for DhtBuilder {
    fn default() -> Self {
        DhtBuilder {
            bind: Vec::new(),
            bootstrap: DEFAULT_BOOTSTRAP.iter().map(|s| s.to_string()).collect(),
            state: None,
            state_file: None,
            save_interval: Duration::from_secs(5 * 60),
            event_capacity: 4096,
            recv_buffer: 4 << 20,
            kernel_filter: true,
            config: Config::default(),
        }
    }
}

impl DhtBuilder {
    /// The sockets to run on: the IPv4 one first. At most one per family.
    fn sockets(&self) -> Result<(UdpSocket, Option<UdpSocket>), Error> {
        let invalid = |m: &str| Error::Io(std::io::Error::new(std::io::ErrorKind::InvalidInput, m));
        let mut addrs = self.bind.clone();
        if addrs.len() > 2 || (addrs.len() == 2 && addrs[0].is_ipv6() == addrs[1].is_ipv6()) {
            return Err(invalid("bind at most one IPv4 and one IPv6 address"));
        }
        addrs.sort_by_key(SocketAddr::is_ipv6);
        let default = addrs.is_empty();
        if default {
            addrs = DEFAULT_BIND.to_vec();
        }
        let first = self.socket(addrs[0])?;
        let second = match addrs.get(1) {
            None => None,
            Some(a) => match self.socket(*a) {
                Ok(s) => Some(s),
                Err(e) if default => {
                    tracing::warn!("IPv6 unavailable ({e}): running on IPv4 only");
                    None
                }
                Err(e) => return Err(e),
            },
        };
        Ok((first, second))
    }

    /// One bound socket; an IPv6 one takes IPv6 only, so that it can share its port with
    /// the IPv4 one.
    fn socket(&self, addr: SocketAddr) -> Result<UdpSocket, Error> {
        use socket2::{Domain, Protocol, Socket, Type};
        let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
        if addr.is_ipv6() {
            s.set_only_v6(true)?;
        }
        s.bind(&addr.into())?;
        s.set_nonblocking(true)?;
        if self.recv_buffer > 0 {
            // Room for bursts (the kernel caps it at net.core.rmem_max); a failure only costs
            // headroom.
            if let Err(e) = s.set_recv_buffer_size(self.recv_buffer) {
                tracing::debug!("SO_RCVBUF {}: {e}", self.recv_buffer);
            }
            tracing::debug!("receive buffer: {:?} bytes", s.recv_buffer_size());
        }
        Ok(UdpSocket::from_std(s.into())?)
    }

    /// UDP address to bind; port 0 picks a free port. Call it twice, with an IPv4 and an IPv6
    /// address, for a dual-stack node (BEP 32: one id, a socket and a routing table per
    /// family). Default: `0.0.0.0:6881` and `[::]:6881`, carrying on IPv4-only, with a
    /// warning, where IPv6 is unavailable.
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.bind.push(addr);
        self
    }

    /// Bootstrap nodes as `host:port` (names are resolved in the background; one that is
    /// dead or does not resolve never blocks start-up). Replaces the default routers.
    pub fn bootstrap<I, S>(mut self, nodes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.bootstrap = nodes.into_iter().map(Into::into).collect();
        self
    }

    /// Start with our node id (otherwise random, or the one in the saved state).
    pub fn node_id(mut self, id: Id) -> Self {
        self.config.id = Some(id);
        self
    }

    /// Start from saved state: its id, nodes and advertised infohashes. A node restored this
    /// way works without any bootstrap node.
    pub fn state(mut self, state: SavedState) -> Self {
        self.state = Some(state);
        self
    }

    /// Load state from `path` if it exists, and save to it periodically and on shutdown.
    pub fn state_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.state_file = Some(path.into());
        self
    }

    /// How often the state file is written (default 5 minutes).
    pub fn save_interval(mut self, every: Duration) -> Self {
        self.save_interval = every.max(Duration::from_millis(1));
        self
    }

    /// Most nodes in the routing table.
    pub fn max_nodes(mut self, n: usize) -> Self {
        self.config.table.max_nodes = n;
        self
    }

    /// Keep a peer store (default) or store nothing (a crawler: get_peers is still answered
    /// with nodes and a token).
    pub fn peer_store(mut self, on: bool) -> Self {
        self.config.store = on.then(|| self.config.store.unwrap_or_default());
        self
    }

    /// Peer store limits (turns the store on).
    pub fn store_limits(mut self, limits: StoreConfig) -> Self {
        self.config.store = Some(limits);
        self
    }

    /// Lookup parallelism α (default 4).
    pub fn alpha(mut self, alpha: usize) -> Self {
        self.config.alpha = alpha.max(1);
        self
    }

    /// BEP 43 read-only mode: answer nothing, ask others not to keep us in their tables.
    pub fn read_only(mut self, on: bool) -> Self {
        self.config.read_only = on;
        self
    }

    /// Queries accepted per second from one IP, and the burst allowed (0 disables).
    pub fn inbound_rate(mut self, per_second: u32, burst: u32) -> Self {
        self.config.per_ip_rate = per_second;
        self.config.per_ip_burst = burst;
        self
    }

    /// Queries accepted per second from one IP (a global IPv6 /64 counts as one), with a burst of
    /// ten seconds' worth; 0 turns the per-IP limit and bans off. Default 5 (burst 50), as
    /// libtorrent. Protects the node from one flooding host.
    pub fn per_ip_rate(mut self, per_second: u32) -> Self {
        self.config.per_ip_rate = per_second;
        self.config.per_ip_burst = per_second.saturating_mul(10).max(1);
        self
    }

    /// Bans: an IP over its per-IP rate for `after` (without a 2-second break) is ignored for
    /// `duration`, its datagrams dropped unread. A zero `after` never bans. Default 10 s and
    /// 5 minutes.
    pub fn ban(mut self, after: std::time::Duration, duration: std::time::Duration) -> Self {
        self.config.per_ip_ban_after = after;
        self.config.per_ip_ban_for = duration;
        self
    }

    /// Replies the whole node sends per second (burst: a quarter second's worth); 0 = no
    /// limit. Default 2,000. Protects the node's upload and CPU from floods spread over many
    /// IPs; clients with a clean record are served first.
    pub fn reply_rate(mut self, per_second: u32) -> Self {
        self.config.reply_rate = per_second;
        self.config.reply_burst = (per_second / 4).max(1);
        self
    }

    /// Drop the datagrams of banned IPv4 sources in the kernel, with a socket filter rebuilt
    /// as bans come and go (Linux; default on). The node drops them unread either way; the
    /// filter saves it the cost of receiving a banned flood.
    pub fn kernel_filter(mut self, on: bool) -> Self {
        self.kernel_filter = on;
        self
    }

    /// The socket's receive buffer in bytes, for bursts (default 4 MiB; the kernel caps it at
    /// `net.core.rmem_max`; 0 leaves the system default).
    pub fn recv_buffer(mut self, bytes: usize) -> Self {
        self.recv_buffer = bytes;
        self
    }

    /// Queries sent per second to one IP, and the burst allowed (0 disables).
    pub fn outbound_rate(mut self, per_second: u32, burst: u32) -> Self {
        self.config.per_dest_rate = per_second;
        self.config.per_dest_burst = burst;
        self
    }

    /// How often advertised infohashes are announced again (default 15 minutes).
    pub fn advertise_interval(mut self, every: Duration) -> Self {
        self.config.advertise_interval = every.max(Duration::from_secs(1));
        self
    }

    /// Events buffered per subscriber before the oldest are dropped (default 4096).
    pub fn event_capacity(mut self, n: usize) -> Self {
        self.event_capacity = n.max(1);
        self
    }

    /// Also emit every datagram raw and decoded ([`crate::DhtEvent::Datagram`] and
    /// [`crate::DhtEvent::Message`]; the node decodes each datagram once for both itself and
    /// the event). Off by default: it copies every datagram.
    pub fn message_events(mut self, on: bool) -> Self {
        self.config.message_events = on;
        self
    }

    /// Direct access to the protocol core's configuration, for every other setting.
    pub fn config(mut self, f: impl FnOnce(&mut Config)) -> Self {
        f(&mut self.config);
        self
    }

    /// Binds the socket and starts the node. Fails if the socket cannot be bound or the state
    /// file exists but cannot be read.
    pub async fn build(self) -> Result<Dht, Error> {
        let (socket, second) = self.sockets()?;
        let mut state = self.state;
        if let Some(path) = &self.state_file {
            if let Some(s) = SavedState::load_if_exists(path)? {
                state = Some(s);
            }
        }
        let local = socket.local_addr()?;
        let locals: Vec<SocketAddr> = std::iter::once(local)
            .chain(second.iter().filter_map(|s| s.local_addr().ok()))
            .collect();
        let mut config = self.config;
        let mut seed = [0u8; 8];
        getrandom::fill(&mut seed).map_err(|e| Error::Io(std::io::Error::other(e.to_string())))?;
        config.seed = u64::from_le_bytes(seed) | 1;
        config.ipv4 = locals.iter().any(SocketAddr::is_ipv4);
        config.ipv6 = locals.iter().any(SocketAddr::is_ipv6);
        if let Some(s) = &state {
            config.id = Some(s.id);
        }
        // Talk to private and loopback addresses only when we are on such a network or were
        // pointed at one explicitly.
        let local_bootstrap = self.bootstrap.iter().any(|b| {
            b.parse::<SocketAddr>().is_ok_and(|a| is_local(a.ip())) || b.starts_with("localhost:")
        });
        let state_local = state
            .as_ref()
            .is_some_and(|s| s.nodes.iter().any(|(_, a)| is_local(a.ip())));
        config.allow_local_addrs |=
            locals.iter().any(|a| is_local(a.ip())) || local_bootstrap || state_local;
        Ok(Driver::start(
            socket,
            second,
            config,
            DriverConfig {
                bootstrap: self.bootstrap,
                state,
                state_file: self.state_file,
                save_interval: self.save_interval,
                event_capacity: self.event_capacity,
                kernel_filter: self.kernel_filter,
            },
        ))
    }
}
