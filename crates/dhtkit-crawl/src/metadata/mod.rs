//! Metadata: fetching a torrent's info dictionary from a peer (BEP 3 + 10 + 9 over TCP), and
//! reading it.

mod fetch;
mod info;

pub use fetch::{fetch, FetchConfig, FetchError, VerifiedInfo};
pub use info::{parse, verify, FileEntry, HashKind, InfoError, TorrentInfo};
