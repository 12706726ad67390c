//! The KRPC methods dhtkit speaks: the one list.
//!
//! A method is declared here once: its variant of [`Method`] (the typed arguments), its
//! [`MethodKind`] with the wire name, and its arguments in [`Method::for_each_arg`], which both
//! the encoder and event printers read. Adding a method then means its parse arm
//! (`krpc/parse.rs`), its handler (the node's responder) and, if lookups use it, its
//! [`crate::LookupKind`]. Nothing else names the methods one by one.

use std::net::SocketAddr;

use crate::Id;

/// A query method with its typed arguments, generic over how it holds bytes.
///
/// Parsed from a datagram it borrows from it (`Method<&[u8]>`, `Copy`, nothing to drop); built
/// by a caller or kept in an event it owns its bytes (`Method<Vec<u8>>`, also called
/// [`Request`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Method<B> {
    /// `ping`.
    Ping,
    /// `find_node`.
    FindNode {
        /// The id searched for.
        target: Id,
    },
    /// `get_peers`.
    GetPeers {
        /// The torrent.
        info_hash: Id,
        /// BEP 33 `noseed`: return no seeds.
        noseed: bool,
        /// BEP 33 `scrape`: ask for the bloom filters.
        scrape: bool,
    },
    /// `announce_peer`.
    AnnouncePeer {
        /// The torrent.
        info_hash: Id,
        /// The announced TCP port (ignored when `implied_port`).
        port: u16,
        /// Use the UDP source port instead of `port`.
        implied_port: bool,
        /// Token from an earlier `get_peers` reply.
        token: B,
        /// BEP 33 `seed`.
        seed: bool,
    },
    /// BEP 51 `sample_infohashes`.
    SampleInfohashes {
        /// Target used to pick the nodes returned alongside the samples.
        target: Id,
    },
    /// BEP 44 `get`: the item stored under `target`.
    Get {
        /// SHA-1 of an immutable item's value, or of a mutable item's key and salt.
        target: Id,
        /// Send the value only if the stored item's `seq` is greater than this.
        seq: Option<i64>,
    },
    /// BEP 44 `put`: store an item. Without `k` it is immutable (its target is the SHA-1 of
    /// `v`); with `k` it is mutable (signed by `k`, target SHA-1 of `k` ‖ `salt`).
    Put {
        /// Token from an earlier `get` reply of the same node.
        token: B,
        /// The value, bencoded (any bencode type), as it goes on the wire.
        v: B,
        /// ed25519 public key (32 bytes).
        k: Option<B>,
        /// ed25519 signature (64 bytes).
        sig: Option<B>,
        /// Salt (at most 64 bytes).
        salt: Option<B>,
        /// Sequence number.
        seq: Option<i64>,
        /// Store only if the stored item's `seq` equals this (compare and swap).
        cas: Option<i64>,
    },
    /// Any other method. `target` / `info_hash` are kept so that the query can be answered like
    /// `find_node` / `get_peers` (forward compatibility, as BEP 5 implementations do).
    Other {
        /// The method name.
        name: B,
        /// `a.target`, if 20 bytes.
        target: Option<Id>,
        /// `a.info_hash`, if 20 bytes.
        info_hash: Option<Id>,
    },
}

/// A query to send: an owned [`Method`].
pub type Request = Method<Vec<u8>>;

/// Which method, without its arguments: what a transaction remembers, and how events name
/// queries and the responses that answer them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum MethodKind {
    /// `ping`.
    Ping,
    /// `find_node`.
    FindNode,
    /// `get_peers`.
    GetPeers,
    /// `announce_peer`.
    AnnouncePeer,
    /// `sample_infohashes`.
    SampleInfohashes,
    /// BEP 44 `get`.
    Get,
    /// BEP 44 `put`.
    Put,
    /// A method dhtkit does not know.
    Other,
}

impl MethodKind {
    /// Every method dhtkit knows (not [`MethodKind::Other`]).
    pub const KNOWN: [MethodKind; 7] = [
        MethodKind::Ping,
        MethodKind::FindNode,
        MethodKind::GetPeers,
        MethodKind::AnnouncePeer,
        MethodKind::SampleInfohashes,
        MethodKind::Get,
        MethodKind::Put,
    ];

    /// How many kinds there are (the length of per-method counters).
    pub const COUNT: usize = 8;

    /// Every kind, [`MethodKind::Other`] last: the order of [`MethodKind::index`].
    pub const ALL: [MethodKind; Self::COUNT] = [
        MethodKind::Ping,
        MethodKind::FindNode,
        MethodKind::GetPeers,
        MethodKind::AnnouncePeer,
        MethodKind::SampleInfohashes,
        MethodKind::Get,
        MethodKind::Put,
        MethodKind::Other,
    ];

    /// This kind's place in [`MethodKind::ALL`] (for per-method counters).
    pub fn index(self) -> usize {
        match self {
            MethodKind::Ping => 0,
            MethodKind::FindNode => 1,
            MethodKind::GetPeers => 2,
            MethodKind::AnnouncePeer => 3,
            MethodKind::SampleInfohashes => 4,
            MethodKind::Get => 5,
            MethodKind::Put => 6,
            MethodKind::Other => 7,
        }
    }

    /// The wire name (`"other"` for unknown methods).
    pub fn name(self) -> &'static str {
        match self {
            MethodKind::Ping => "ping",
            MethodKind::FindNode => "find_node",
            MethodKind::GetPeers => "get_peers",
            MethodKind::AnnouncePeer => "announce_peer",
            MethodKind::SampleInfohashes => "sample_infohashes",
            MethodKind::Get => "get",
            MethodKind::Put => "put",
            MethodKind::Other => "other",
        }
    }

    /// The method a wire name names.
    pub fn from_name(name: &[u8]) -> MethodKind {
        Self::KNOWN
            .into_iter()
            .find(|k| k.name().as_bytes() == name)
            .unwrap_or(MethodKind::Other)
    }
}

impl std::fmt::Display for MethodKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One argument of a query, as [`Method::for_each_arg`] reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Arg<'b> {
    /// A 20-byte id or infohash.
    Id(&'b Id),
    /// An integer (flags are 1).
    Int(i64),
    /// A byte string.
    Bytes(&'b [u8]),
    /// A value already bencoded (BEP 44 `v`), written as is.
    Raw(&'b [u8]),
}

/// Most bytes of an unknown method's name kept when a query is turned into an owned request.
const MAX_OWNED_NAME: usize = 64;

impl<B: AsRef<[u8]>> Method<B> {
    /// Which method this is.
    pub fn kind(&self) -> MethodKind {
        match self {
            Method::Ping => MethodKind::Ping,
            Method::FindNode { .. } => MethodKind::FindNode,
            Method::GetPeers { .. } => MethodKind::GetPeers,
            Method::AnnouncePeer { .. } => MethodKind::AnnouncePeer,
            Method::SampleInfohashes { .. } => MethodKind::SampleInfohashes,
            Method::Get { .. } => MethodKind::Get,
            Method::Put { .. } => MethodKind::Put,
            Method::Other { .. } => MethodKind::Other,
        }
    }

    /// The wire name of the method.
    pub fn name(&self) -> &[u8] {
        match self {
            Method::Other { name, .. } => name.as_ref(),
            m => m.kind().name().as_bytes(),
        }
    }

    /// Calls `f` with every argument but `id` and `want`, in the sorted key order of the
    /// canonical encoding. Flags that are off are left out, as on the wire.
    #[inline]
    pub fn for_each_arg(&self, mut f: impl FnMut(&'static str, Arg<'_>)) {
        match self {
            Method::Ping => {}
            Method::FindNode { target } | Method::SampleInfohashes { target } => {
                f("target", Arg::Id(target))
            }
            Method::GetPeers {
                info_hash,
                noseed,
                scrape,
            } => {
                f("info_hash", Arg::Id(info_hash));
                if *noseed {
                    f("noseed", Arg::Int(1));
                }
                if *scrape {
                    f("scrape", Arg::Int(1));
                }
            }
            Method::AnnouncePeer {
                info_hash,
                port,
                implied_port,
                token,
                seed,
            } => {
                if *implied_port {
                    f("implied_port", Arg::Int(1));
                }
                f("info_hash", Arg::Id(info_hash));
                f("port", Arg::Int(*port as i64));
                if *seed {
                    f("seed", Arg::Int(1));
                }
                f("token", Arg::Bytes(token.as_ref()));
            }
            Method::Get { target, seq } => {
                if let Some(seq) = seq {
                    f("seq", Arg::Int(*seq));
                }
                f("target", Arg::Id(target));
            }
            Method::Put {
                token,
                v,
                k,
                sig,
                salt,
                seq,
                cas,
            } => {
                if let Some(cas) = cas {
                    f("cas", Arg::Int(*cas));
                }
                if let Some(k) = k {
                    f("k", Arg::Bytes(k.as_ref()));
                }
                if let Some(salt) = salt.as_ref().filter(|s| !s.as_ref().is_empty()) {
                    f("salt", Arg::Bytes(salt.as_ref()));
                }
                if let Some(seq) = seq {
                    f("seq", Arg::Int(*seq));
                }
                if let Some(sig) = sig {
                    f("sig", Arg::Bytes(sig.as_ref()));
                }
                f("token", Arg::Bytes(token.as_ref()));
                f("v", Arg::Raw(v.as_ref()));
            }
            Method::Other {
                target, info_hash, ..
            } => {
                if let Some(ih) = info_hash {
                    f("info_hash", Arg::Id(ih));
                }
                if let Some(t) = target {
                    f("target", Arg::Id(t));
                }
            }
        }
    }

    /// The same method owning its bytes (an unknown method's name is cut to 64 bytes).
    pub fn to_request(&self) -> Request {
        self.map(
            |b| b[..b.len().min(MAX_OWNED_NAME)].to_vec(),
            <[u8]>::to_vec,
        )
    }

    /// A borrowed view of the method (what the encoder and the transaction layer take).
    pub fn view(&self) -> Method<&[u8]> {
        self.map(|b| b, |b| b)
    }

    /// The method with its name mapped by `name` and its other bytes by `bytes`.
    fn map<'s, C>(
        &'s self,
        name: impl Fn(&'s [u8]) -> C,
        bytes: impl Fn(&'s [u8]) -> C,
    ) -> Method<C> {
        match self {
            Method::Ping => Method::Ping,
            Method::FindNode { target } => Method::FindNode { target: *target },
            Method::GetPeers {
                info_hash,
                noseed,
                scrape,
            } => Method::GetPeers {
                info_hash: *info_hash,
                noseed: *noseed,
                scrape: *scrape,
            },
            Method::AnnouncePeer {
                info_hash,
                port,
                implied_port,
                token,
                seed,
            } => Method::AnnouncePeer {
                info_hash: *info_hash,
                port: *port,
                implied_port: *implied_port,
                token: bytes(token.as_ref()),
                seed: *seed,
            },
            Method::SampleInfohashes { target } => Method::SampleInfohashes { target: *target },
            Method::Get { target, seq } => Method::Get {
                target: *target,
                seq: *seq,
            },
            Method::Put {
                token,
                v,
                k,
                sig,
                salt,
                seq,
                cas,
            } => Method::Put {
                token: bytes(token.as_ref()),
                v: bytes(v.as_ref()),
                k: k.as_ref().map(|x| bytes(x.as_ref())),
                sig: sig.as_ref().map(|x| bytes(x.as_ref())),
                salt: salt.as_ref().map(|x| bytes(x.as_ref())),
                seq: *seq,
                cas: *cas,
            },
            Method::Other {
                name: n,
                target,
                info_hash,
            } => Method::Other {
                name: name(n.as_ref()),
                target: *target,
                info_hash: *info_hash,
            },
        }
    }

    /// The peer an `announce_peer` from `from` announces (its port resolved from
    /// `implied_port`); `None` for other methods.
    pub fn announced_peer(&self, from: SocketAddr) -> Option<SocketAddr> {
        match self {
            Method::AnnouncePeer {
                port, implied_port, ..
            } => Some(SocketAddr::new(
                from.ip(),
                if *implied_port { from.port() } else { *port },
            )),
            _ => None,
        }
    }

    /// The infohash the query is about (`get_peers`, `announce_peer`, or an unknown method
    /// carrying `info_hash`).
    pub fn info_hash(&self) -> Option<Id> {
        match self {
            Method::GetPeers { info_hash, .. } | Method::AnnouncePeer { info_hash, .. } => {
                Some(*info_hash)
            }
            Method::Other { info_hash, .. } => *info_hash,
            _ => None,
        }
    }
}

impl Method<Vec<u8>> {
    /// `find_node` for `target`.
    pub fn find_node(target: Id) -> Request {
        Method::FindNode { target }
    }

    /// `get_peers` for `info_hash`.
    pub fn get_peers(info_hash: Id) -> Request {
        Method::GetPeers {
            info_hash,
            noseed: false,
            scrape: false,
        }
    }

    /// `announce_peer` with a token from an earlier `get_peers` to the same node; `port:
    /// None` asks for `implied_port` (our UDP source port).
    pub fn announce_peer(info_hash: Id, port: Option<u16>, token: Vec<u8>, seed: bool) -> Request {
        Method::AnnouncePeer {
            info_hash,
            port: port.unwrap_or(0),
            implied_port: port.is_none(),
            token,
            seed,
        }
    }

    /// BEP 51 `sample_infohashes` around `target`.
    pub fn sample_infohashes(target: Id) -> Request {
        Method::SampleInfohashes { target }
    }

    /// BEP 44 `put` of `item` with a token from an earlier `get` to the same node; `cas`
    /// asks the node to replace only that seq.
    pub fn put(token: Vec<u8>, item: &crate::items::Item, cas: Option<i64>) -> Request {
        let s = item.signed.as_ref();
        Method::Put {
            token,
            v: item.value.clone(),
            k: s.map(|s| s.key.to_vec()),
            sig: s.map(|s| s.sig.to_vec()),
            salt: s.map(|s| s.salt.clone()).filter(|x| !x.is_empty()),
            seq: s.map(|s| s.seq),
            cas,
        }
    }

    /// BEP 44 `get` for `target`; with `seq`, the value is sent only if newer.
    pub fn get(target: Id, seq: Option<i64>) -> Request {
        Method::Get { target, seq }
    }

    /// A method dhtkit does not know, with an optional `target` and `info_hash`.
    pub fn other(name: &[u8], target: Option<Id>, info_hash: Option<Id>) -> Request {
        Method::Other {
            name: name.to_vec(),
            target,
            info_hash,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for k in MethodKind::KNOWN {
            assert_eq!(MethodKind::from_name(k.name().as_bytes()), k);
        }
        assert_eq!(MethodKind::from_name(b"vote"), MethodKind::Other);
        assert_eq!(Request::other(b"vote", None, None).name(), b"vote");
        assert_eq!(Request::get_peers(Id([1; 20])).name(), b"get_peers");
    }

    #[test]
    fn args_are_sorted() {
        let m = Request::announce_peer(Id([1; 20]), None, vec![9], true);
        let mut keys = Vec::new();
        m.for_each_arg(|k, _| keys.push(k));
        assert_eq!(keys, ["implied_port", "info_hash", "port", "seed", "token"]);
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
        let from: SocketAddr = "127.0.0.1:7000".parse().unwrap();
        assert_eq!(m.announced_peer(from), Some(from));
        let put = Request::Put {
            token: vec![1],
            v: b"1:x".to_vec(),
            k: Some(vec![2; 32]),
            sig: Some(vec![3; 64]),
            salt: Some(b"s".to_vec()),
            seq: Some(4),
            cas: Some(3),
        };
        let mut keys = Vec::new();
        put.for_each_arg(|k, _| keys.push(k));
        assert_eq!(keys, ["cas", "k", "salt", "seq", "sig", "token", "v"]);
        let mut keys = Vec::new();
        Request::get(Id([1; 20]), Some(1)).for_each_arg(|k, _| keys.push(k));
        assert_eq!(keys, ["seq", "target"]);
    }
}
