//! Node configuration. Every bound the node enforces is here.

use std::time::Duration;

use crate::bencode::Limits;
use crate::routing::TableConfig;
pub use crate::store::StoreConfig;
use crate::Id;

/// Settings for a [`crate::Node`]. `Config::default()` is a normal public IPv4 node; change
/// fields on it to adjust (new fields may be added, so the struct cannot be built literally
/// outside this crate).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// Our node id; drawn from the RNG when `None`.
    pub id: Option<Id>,
    /// Seed of the node's RNG (ids, tokens, transaction ids). Drivers seed it from the OS;
    /// tests and the simulator pick it, so runs replay exactly.
    pub seed: u64,
    /// The node has an IPv4 socket: it keeps an IPv4 routing table and runs IPv4 lookups.
    pub ipv4: bool,
    /// The node has an IPv6 socket (BEP 32): it keeps an IPv6 routing table, runs IPv6
    /// lookups and answers with `nodes6`.
    pub ipv6: bool,
    /// Routing table settings (k, `max_nodes`, one node per IP, liveness).
    pub table: TableConfig,
    /// Peer store bounds; `None` stores nothing (get_peers is still answered with nodes and a
    /// token, as a crawler that keeps no peers should).
    pub store: Option<StoreConfig>,
    /// BEP 51 (`sample_infohashes`); `None` answers it as a BEP 5-only node does, like a
    /// `find_node` for its target, without samples.
    pub samples: Option<SampleConfig>,
    /// BEP 44 item store bounds; `None` stores no items and answers as a BEP 5-only node:
    /// `get` with the nodes near its target and no token, `put` with error 204 (method
    /// unknown), so that no putter counts it as a node that stored its item.
    pub items: Option<crate::items::ItemConfig>,
    /// An item kept alive with [`crate::Node::keep_item`] is checked this long after its
    /// first put (default 1 hour): a `get` of the closest nodes counts those still holding
    /// it. With `adaptive_item_refresh` off, it is simply put again at this interval.
    pub item_refresh: Duration,
    /// Adapt a kept item's schedule to the churn its checks measure (default on; off in
    /// [`Config::stock`]): each check is a `get` of the closest nodes, and the item is put
    /// again only when fewer than half of the nodes that stored it last time still hold it,
    /// or it has reached the age up to which checks found enough of them. The intervals
    /// grow while checks find the item well kept and shrink when they do not, within
    /// `item_refresh_min` and `item_refresh_max` (the module `search::advertise` documents
    /// the rules).
    pub adaptive_item_refresh: bool,
    /// Shortest interval between a kept item's checks (default 15 minutes).
    pub item_refresh_min: Duration,
    /// Longest interval between a kept item's checks, and between its puts, whatever the
    /// checks find (default 24 hours: libtorrent and `mainline` keep items until they need
    /// the room, dhtkit for [`crate::items::ItemConfig::lifetime`], 48 hours).
    pub item_refresh_max: Duration,
    /// BEP 42: take a node id derived from our external address once other nodes agree on
    /// it (the `ip` field of their replies), and derive it again when they agree on a new
    /// one. Local and private addresses are never voted on. Default on.
    pub secure_id: bool,
    /// BEP 42: keep only nodes whose ids match their addresses in the routing table (local
    /// and private addresses exempt). Default off, as in libtorrent: many nodes on the DHT
    /// still have random ids.
    pub enforce_secure_ids: bool,
    /// Lookup parallelism α: queries in flight that are not slow yet (8; BEP 5 suggests 3,
    /// libtorrent uses 5). With slow queries not counted, α is how many answers a lookup
    /// waits for at once, which on a network where half the contacts never answer is what
    /// keeps it moving: on the live-DHT model, α = 6 with queries slow after the mean round
    /// trip halves the time to a first peer of α = 3 with a one-second slow timeout, and
    /// α = 8 with a 50 ms floor takes another fifth off at 100,000 nodes (BENCHMARKS.md).
    pub alpha: usize,
    /// A lookup query not answered within `srtt + slow_rttvar * rttvar` of the round trips
    /// measured so far (RFC 6298's estimator over every node that answers), kept between
    /// `slow_timeout_min` and this, is slow: it no longer counts against α, so one more
    /// request goes out, and once k closer nodes have answered the lookup no longer waits for
    /// it. Also the slow timeout before any round trip is measured.
    pub slow_timeout: Duration,
    /// Among the candidates a lookup may ask next that share as many leading bits with the
    /// target (Kademlia's equal distance), ask the one with the fastest known round trip
    /// first (from the routing table; unknown counts as slowest), as Jimenez et al.'s
    /// sub-second lookups do. Off: strictly closest first.
    pub rtt_order: bool,
    /// The shortest slow timeout.
    pub slow_timeout_min: Duration,
    /// How many mean deviations past the smoothed round trip a lookup query becomes slow:
    /// 0 (the default) marks it slow once it has waited the mean round trip, so that on a
    /// network where half the contacts never answer a dead one holds a slot of α for about
    /// a round trip, not for the heavy tail's `srtt + 4 rttvar` (RFC 6298's retransmission
    /// rule, which the `stock` preset keeps). A slow query is still waited for and may still
    /// be answered; it only stops counting against α.
    pub slow_rttvar: u32,
    /// A query not answered within this time has failed (or is retransmitted, see
    /// `lookup_retries`).
    pub query_timeout: Duration,
    /// Retransmissions of a lookup query to a node that is among the k closest candidates.
    pub lookup_retries: u8,
    /// Most candidates a lookup keeps.
    pub max_lookup_candidates: usize,
    /// Most lookups running at once.
    pub max_lookups: usize,
    /// Most outstanding transactions (queries awaiting a reply).
    pub max_pending: usize,
    /// Most datagrams waiting in the outgoing queue; more are dropped and counted.
    pub max_outgoing: usize,
    /// Most events waiting to be polled; more are dropped and counted.
    pub max_events: usize,
    /// Queries accepted per second from one IP (a global IPv6 /64 counts as one); 0 turns the
    /// per-IP limit, and bans, off. Protects the node's CPU and upload from one flooding
    /// host. The default, 5 per second with a burst of 50, is libtorrent's (it blocks an IP
    /// after 50 packets in 10 seconds); a dhtkit node itself sends at most 2 per second to
    /// one IP.
    pub per_ip_rate: u32,
    /// Burst size of the per-IP token bucket.
    pub per_ip_burst: u32,
    /// An IP refused by its per-IP limit without a break of 2 seconds for this long is banned
    /// (default 3 seconds). Zero never bans.
    pub per_ip_ban_after: Duration,
    /// How long a ban lasts (libtorrent: 5 minutes). A banned IP's datagrams are dropped
    /// before they are parsed.
    pub per_ip_ban_for: Duration,
    /// Most IPs the per-IP limiter tracks at once (about 40 bytes each). IPs beyond that,
    /// when every tracked IP is busy, share one small budget.
    pub max_tracked_ips: usize,
    /// Replies (responses and errors) the whole node sends per second; 0 = no limit. Protects
    /// the node's upload and CPU from floods spread over many IPs. Known clients are served
    /// first: an IP within its rate for 2 seconds may use the whole budget, a new one only
    /// while more than a quarter of the burst is left, and one refused by its per-IP limit in
    /// the last 10 seconds only while more than half is left.
    pub reply_rate: u32,
    /// Burst size of the node-wide reply budget.
    pub reply_burst: u32,
    /// Queries per second we send to one IP (token bucket refill rate); 0 disables. Kept low
    /// so that we stay under other implementations' flood protection (libtorrent ignores an IP
    /// for five minutes after about 50 packets in 10 seconds). Lookups wait for budget rather
    /// than skip a node.
    pub per_dest_rate: u32,
    /// Burst size of the per-destination token bucket.
    pub per_dest_burst: u32,
    /// Every query waits for the per-destination budget: explicit requests are refused
    /// (not sent) and retransmissions skipped when an IP has none left. Off by default
    /// (explicit requests always go out); a crawler turns it on to never exceed
    /// `per_dest_rate` queries a second to one IP.
    pub strict_dest_limit: bool,
    /// Queries per second the whole node sends (replies are not counted); 0 disables. Lookups
    /// wait for budget; background checks are skipped.
    pub max_query_rate: u32,
    /// Burst size of the node-wide query budget.
    pub max_query_burst: u32,
    /// Slots in the per-destination limiter, 8 bytes each (IPs hash into them with a secret
    /// key; IPs sharing a slot share its budget; memory is fixed).
    pub rate_limiter_slots: usize,
    /// Most peers returned in one `values` list.
    pub max_values: usize,
    /// Limits applied to every incoming datagram's bencode.
    pub decode_limits: Limits,
    /// Largest datagram accepted, in bytes.
    pub max_datagram: usize,
    /// BEP 43: do not answer queries and ask others not to add us to their tables.
    pub read_only: bool,
    /// Allow talking to private, loopback and link-local addresses (on for test networks and
    /// LANs; drivers turn it on when bound to such an address).
    pub allow_local_addrs: bool,
    /// How often the token secret rotates (tokens stay valid for two periods).
    pub token_rotation: Duration,
    /// Buckets unchanged for this long are refreshed with a lookup.
    pub bucket_refresh: Duration,
    /// How often the next node of the routing table, in turn, is checked: pinged unless it
    /// answered within `stale_ping_idle` (Jimenez et al.'s upkeep; libtorrent pings one node
    /// every 5 seconds). The default, 10 seconds, shares the maintenance tick's wake-up. With
    /// one timeout evicting a node (`table.max_failures` 1), a node that left is out of the
    /// table within one round of it. Zero turns it off (the `stock` preset, which only pings
    /// nodes questionable after 15 minutes).
    pub stale_ping_interval: Duration,
    /// A node that answered within this long is skipped by the stale-ping round.
    pub stale_ping_idle: Duration,
    /// How often questionable nodes are pinged and the peer store is expired.
    pub maintenance_interval: Duration,
    /// Client version sent as `v` in every message (two letters and two version bytes).
    pub version: Option<[u8; 4]>,
    /// How often each advertised infohash is announced again.
    pub advertise_interval: Duration,
    /// Most lookups held while the first bootstrap runs; more are refused.
    pub max_held_lookups: usize,
    /// Emit every received datagram as [`crate::Event::Datagram`] and, when it decodes,
    /// [`crate::Event::Message`] (copies every datagram; off by default).
    pub message_events: bool,
    /// Emit [`crate::Event::QueryReceived`] for every query and
    /// [`crate::Event::ResponseReceived`] for every response (on by default). A node nobody
    /// watches message by message (a simulated one, one of many in a crawler) saves the
    /// event's copy of the query and the queue's buffer.
    pub rpc_events: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            id: None,
            seed: 0,
            ipv4: true,
            ipv6: false,
            table: TableConfig::default(),
            store: Some(StoreConfig::default()),
            samples: Some(SampleConfig::default()),
            items: Some(crate::items::ItemConfig::default()),
            item_refresh: Duration::from_secs(60 * 60),
            adaptive_item_refresh: true,
            item_refresh_min: Duration::from_secs(15 * 60),
            item_refresh_max: Duration::from_secs(24 * 60 * 60),
            secure_id: true,
            enforce_secure_ids: false,
            alpha: 8,
            slow_timeout: Duration::from_secs(1),
            slow_timeout_min: Duration::from_millis(50),
            slow_rttvar: 0,
            rtt_order: true,
            query_timeout: Duration::from_secs(2),
            lookup_retries: 2,
            max_lookup_candidates: 100,
            max_lookups: 64,
            max_pending: 2048,
            max_outgoing: 4096,
            max_events: 4096,
            per_ip_rate: 5,
            per_ip_burst: 50,
            per_ip_ban_after: Duration::from_secs(3),
            per_ip_ban_for: Duration::from_secs(5 * 60),
            max_tracked_ips: 16_384,
            reply_rate: 2_000,
            reply_burst: 500,
            per_dest_rate: 2,
            per_dest_burst: 10,
            strict_dest_limit: false,
            max_query_rate: 1000,
            max_query_burst: 200,
            rate_limiter_slots: 1024,
            max_values: 100,
            decode_limits: Limits::default(),
            max_datagram: 4096,
            read_only: false,
            allow_local_addrs: false,
            token_rotation: Duration::from_secs(5 * 60),
            bucket_refresh: Duration::from_secs(15 * 60),
            stale_ping_interval: Duration::from_secs(10),
            stale_ping_idle: Duration::from_secs(5 * 60),
            maintenance_interval: Duration::from_secs(10),
            version: Some(*b"DK\x00\x01"),
            advertise_interval: Duration::from_secs(15 * 60),
            max_held_lookups: 1024,
            message_events: false,
            rpc_events: true,
        }
    }
}

impl Config {
    /// The `stock` preset: lookups and upkeep as a stock client runs them (libtorrent's
    /// defaults, and dhtkit's before the live-DHT work): α = 3, a fixed one-second short
    /// timeout instead of one adapted to the measured round trips, candidates strictly by
    /// distance, a node evicted after two timeouts, first come first kept in a bucket (no
    /// replacement by round trip), no quarantine, no stale-ping round (only questionable
    /// nodes are pinged). Everything else as [`Config::default`].
    /// Benchmarks run it beside the default so that every figure is a ratio measured in the
    /// same run.
    pub fn stock() -> Config {
        Config {
            alpha: 3,
            slow_timeout: Duration::from_secs(1),
            slow_timeout_min: Duration::from_secs(1),
            slow_rttvar: 4,
            rtt_order: false,
            stale_ping_interval: Duration::ZERO,
            adaptive_item_refresh: false,
            table: TableConfig {
                max_failures: 2,
                rtt_replace: 0,
                quarantine: Duration::ZERO,
                ..TableConfig::default()
            },
            ..Config::default()
        }
    }
}

/// How a node answers BEP 51's `sample_infohashes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct SampleConfig {
    /// Most infohashes in one sample (at most 50; default 20, as libtorrent).
    pub max_samples: usize,
    /// The `interval` advertised: how long a crawler should wait before asking again
    /// (default 6 hours, as libtorrent).
    pub interval: std::time::Duration,
    /// Give the same sample until it is `interval` old, as libtorrent does (a sample that
    /// is not full yet is drawn again at every query); off (the default), each answer
    /// samples the most recently announced infohashes afresh.
    pub hold: bool,
}

impl Default for SampleConfig {
    fn default() -> Self {
        SampleConfig {
            max_samples: 20,
            interval: std::time::Duration::from_secs(6 * 60 * 60),
            hold: false,
        }
    }
}

impl SampleConfig {
    /// libtorrent's behaviour: 20 samples, held for 6 hours.
    pub fn libtorrent() -> SampleConfig {
        SampleConfig {
            hold: true,
            ..SampleConfig::default()
        }
    }
}
