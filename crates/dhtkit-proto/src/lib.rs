//! # dhtkit-proto
//!
//! The BitTorrent Mainline DHT (BEP 5) as a sans-IO state machine.
//!
//! Nothing in this crate touches a socket, reads a clock or draws from the operating system's
//! random source (clippy's `disallowed_methods` enforces it). A driver feeds the [`Node`]
//! datagrams, commands and the current time, and takes out datagrams to send, events and the
//! next deadline:
//!
//! ```text
//!  UDP socket ──handle_datagram──► [ Node ] ──poll_transmit──► UDP socket
//!  timer      ──handle_timeout───►          ──poll_timeout───► next deadline
//!  API call   ──request, find_node, …──►    ──poll_event─────► events, results
//! ```
//!
//! ## Map
//!
//! | module | owns |
//! |---|---|
//! | [`bencode`] | a borrowing, bounded decoder and a canonical encoder |
//! | [`krpc`] | typed KRPC messages; the one list of methods ([`krpc::Method`], [`MethodKind`]) |
//! | [`bep46`] | BEP 46 magnet links (`urn:btpk:`) and the items that point at a torrent |
//! | [`compact`] | compact peer and node encodings (BEP 5, BEP 32) |
//! | [`addr`] | which addresses may be contacted: local, reserved, invalid |
//! | [`routing`] | the routing table (buckets, replacement caches, liveness) |
//! | [`token`] | write tokens bound to the querier's IP |
//! | [`store`] | the peer store |
//! | `node` | the [`Node`], a router over three parts: |
//! | `node::rpc` | — **Rpc**: transactions, retransmissions, timeouts, the outgoing queue, rate limits, counters |
//! | `node::responder` | — **Responder**: one handler per method; tokens and the peer store |
//! | `node::search` | — **Search**, one per address family: the routing table, lookups (`search::lookup`: a lookup's whole life), bootstrap, upkeep, advertised infohashes |
//! | `event` | [`Event`]: what the node (and drivers) report |
//! | `config` | [`Config`]: every bound the node enforces |
//!
//! ## The path of a datagram
//!
//! 1. [`Node::handle_datagram`] checks the size and decodes the bencode **once** into a
//!    borrowed [`bencode::Value`], then [`krpc::Message::parse`] types it.
//! 2. A **query** passes the per-IP inbound limit (Rpc), is answered by the Responder's
//!    handler for its method (nodes from the Search tables, tokens, peers), and the reply is
//!    encoded straight into the Rpc's outgoing queue. The querier is then offered to the
//!    Search of its family (it may be pinged and join the table), and a
//!    [`Event::QueryReceived`] is queued.
//! 3. A **response or error** is matched to its transaction by the Rpc (transaction id and
//!    source address). The Search of the sender's family learns the node (`node_seen`) and
//!    hands the answer to the lookup that asked; a user's [`Node::request`] gets
//!    [`Event::RequestFinished`].
//! 4. [`Node::handle_timeout`] fires transaction deadlines from the Rpc (slow marks widen a
//!    lookup's window; expired queries are retransmitted or failed) and each Search's timers
//!    (table upkeep, bucket refresh, bootstrap retries, re-announces).
//! 5. The driver drains [`Node::poll_transmit`], [`Node::poll_event`] and
//!    [`Node::poll_timeout`].
//!
//! ## Adding a KRPC method
//!
//! Its variant in [`krpc::Method`] and [`MethodKind`] (one file, `krpc/method.rs`), its parse
//! arm (`krpc/parse.rs`), its handler in the Responder, and its [`LookupKind`] if lookups use
//! it. Encoding, event names and requests follow from those.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod addr;
pub mod bencode;
pub mod bep42;
pub mod bep46;
pub mod compact;
mod config;
mod event;
mod id;
pub mod items;
pub mod krpc;
mod node;
pub mod routing;
pub mod scrape;
mod size;
pub mod store;
mod time;
pub mod token;
mod util;

pub use config::{Config, SampleConfig, StoreConfig};
pub use event::{
    Answer, Event, ItemReport, LookupId, LookupKind, LookupResult, PutRefusal, Reply, RequestId,
    RequestOutcome, ScrapeEstimate, MAX_PUT_REFUSALS,
};
pub use id::{Distance, Id, InfoHash, ParseIdError};
pub use items::{Item, ItemConfig};
pub use krpc::{MethodKind, Request};
pub use node::{Advert, LookupTimes, Node, NodeState, Stats, Transmit};
pub use time::Instant;
pub use util::{from_hex, to_hex};
