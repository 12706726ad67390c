//! # dhtkit-proto
//!
//! The BitTorrent Mainline DHT (BEP 5) as a sans-IO state machine.
//!
//! Nothing in this crate touches a socket, reads a clock or draws from the operating system's
//! random source. A driver feeds the [`Node`] datagrams, commands and the current time, and takes
//! out datagrams to send, events and the next deadline:
//!
//! ```text
//!  UDP socket ──handle_datagram──► [ Node ] ──poll_transmit──► UDP socket
//!  timer      ──handle_timeout───►          ──poll_timeout───► next deadline
//!  API call   ──find_node, …─────►          ──poll_event─────► events, results
//! ```
//!
//! The pieces are usable on their own: [`bencode`] (a borrowing, bounded decoder and a canonical
//! encoder), [`krpc`] (typed KRPC messages), [`routing`] (the routing table), [`token`] (write
//! tokens), [`store`] (the peer store) and [`lookup`] (iterative lookups).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod bencode;
pub mod compact;
mod config;
mod event;
mod id;
pub mod krpc;
pub mod lookup;
mod node;
mod outq;
mod ratelimit;
pub mod routing;
mod rpc;
pub mod store;
mod time;
pub mod token;
mod util;

pub use config::{Config, StoreConfig};
pub use event::{
    Event, LookupId, LookupKind, LookupResult, QueryInfo, RequestId, RequestKind, RequestOutcome,
};
pub use id::{Distance, Id, InfoHash, ParseIdError};
pub use node::{Node, NodeState, Request, Stats, Transmit};
pub use time::Instant;
pub use util::{from_hex, to_hex};
