//! How an infohash was found.

/// How an infohash was found (a row keeps every way it was found, as a bit set).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Source {
    /// Someone asked us `get_peers` for it.
    GetPeers,
    /// Someone announced it to us with a valid token.
    Announce,
    /// A BEP 51 `sample_infohashes` reply listed it.
    Sample,
    /// Imported from another index (`dhtkit import`).
    Import,
}

impl Source {
    /// The bit this source sets in `TorrentRecord::sources` (in the store).
    pub fn bit(self) -> i64 {
        match self {
            Source::GetPeers => 1,
            Source::Announce => 2,
            Source::Sample => 4,
            Source::Import => 8,
        }
    }

    /// The names of the sources in a bit set.
    pub fn names(bits: i64) -> Vec<&'static str> {
        [
            (Source::GetPeers, "get_peers"),
            (Source::Announce, "announce_peer"),
            (Source::Sample, "sample_infohashes"),
            (Source::Import, "import"),
        ]
        .into_iter()
        .filter(|(s, _)| bits & s.bit() != 0)
        .map(|(_, n)| n)
        .collect()
    }
}
