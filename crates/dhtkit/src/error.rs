//! Errors of the async API.

use crate::state::StateError;

/// What can go wrong with a running node.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Binding or using the socket failed.
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
    /// The state file could not be read or written.
    #[error(transparent)]
    State(#[from] StateError),
    /// The node has shut down.
    #[error("the DHT node has shut down")]
    Shutdown,
    /// The node refused the request (a limit was reached, or the address may not be contacted).
    #[error("request refused: {0}")]
    Refused(&'static str),
    /// The remote node did not answer in time.
    #[error("no answer in time")]
    Timeout,
    /// The remote node answered with a KRPC error.
    #[error("remote error {code}: {message}")]
    Remote {
        /// KRPC error code.
        code: i64,
        /// Error text.
        message: String,
    },
    /// A BEP 44 item or salt that nodes would refuse, refused here before any query was
    /// sent: `code` is the KRPC error they would answer (205: value over 1,000 bytes; 206:
    /// bad signature; 207: salt over 64 bytes).
    #[error("invalid item ({code}): {message}")]
    InvalidItem {
        /// KRPC error code.
        code: i64,
        /// What is wrong.
        message: String,
    },
    /// An address could not be understood.
    #[error("bad address {0:?}")]
    BadAddress(String),
}
