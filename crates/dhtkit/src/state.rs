//! The saved state of a node: a small, versioned JSON file, written atomically.
//!
//! The file is written to a temporary file in the same directory, flushed to disk, renamed over
//! the old one, and the directory is flushed too. A crash at any moment (even `SIGKILL`) leaves
//! either the previous file or the new one, never a mix.

use std::fs;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use dhtkit_proto::Id;
use serde::{Deserialize, Serialize};

/// Version written by this release; files from newer versions are refused.
pub const STATE_VERSION: u32 = 1;

/// Everything a node needs to start again where it left off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedState {
    /// The node id.
    pub id: Id,
    /// Known nodes, best first.
    pub nodes: Vec<(Id, SocketAddr)>,
    /// Infohashes being advertised, with their port (`None`: implied port).
    pub advertised: Vec<(Id, Option<u16>)>,
}

#[derive(Serialize, Deserialize)]
struct FileNode {
    id: String,
    addr: SocketAddr,
}

#[derive(Serialize, Deserialize)]
struct FileAdvertised {
    info_hash: String,
    port: Option<u16>,
}

#[derive(Serialize, Deserialize)]
struct FileState {
    version: u32,
    id: String,
    nodes: Vec<FileNode>,
    #[serde(default)]
    advertised: Vec<FileAdvertised>,
}

/// Why a state file could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// Reading or writing failed.
    #[error("state file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not a valid state file.
    #[error("state file {path} is corrupt: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

impl SavedState {
    /// The saved form of a node's exported state.
    pub fn from_node(s: dhtkit_proto::NodeState) -> SavedState {
        SavedState {
            id: s.id,
            nodes: s.nodes,
            advertised: s
                .advertised
                .into_iter()
                .map(|(ih, a)| (ih, a.port))
                .collect(),
        }
    }

    /// Serialises to the file format.
    pub fn to_json(&self) -> String {
        let f = FileState {
            version: STATE_VERSION,
            id: self.id.to_hex(),
            nodes: self
                .nodes
                .iter()
                .map(|(id, addr)| FileNode {
                    id: id.to_hex(),
                    addr: *addr,
                })
                .collect(),
            advertised: self
                .advertised
                .iter()
                .map(|(ih, port)| FileAdvertised {
                    info_hash: ih.to_hex(),
                    port: *port,
                })
                .collect(),
        };
        serde_json::to_string_pretty(&f).expect("plain data serialises")
    }

    /// Parses the file format.
    pub fn from_json(text: &str) -> Result<SavedState, String> {
        let f: FileState = serde_json::from_str(text).map_err(|e| e.to_string())?;
        if f.version == 0 || f.version > STATE_VERSION {
            return Err(format!("unsupported version {}", f.version));
        }
        let id = f.id.parse().map_err(|_| "bad node id".to_string())?;
        let mut nodes = Vec::with_capacity(f.nodes.len());
        for n in f.nodes {
            nodes.push((
                n.id.parse()
                    .map_err(|_| format!("bad node id {:?}", n.id))?,
                n.addr,
            ));
        }
        let mut advertised = Vec::with_capacity(f.advertised.len());
        for a in f.advertised {
            let ih = a
                .info_hash
                .parse()
                .map_err(|_| format!("bad infohash {:?}", a.info_hash))?;
            advertised.push((ih, a.port));
        }
        Ok(SavedState {
            id,
            nodes,
            advertised,
        })
    }

    /// Reads a state file.
    pub fn load(path: &Path) -> Result<SavedState, StateError> {
        let text = fs::read_to_string(path).map_err(|source| StateError::Io {
            path: path.to_owned(),
            source,
        })?;
        SavedState::from_json(&text).map_err(|reason| StateError::Corrupt {
            path: path.to_owned(),
            reason,
        })
    }

    /// Reads a state file if it exists.
    pub fn load_if_exists(path: &Path) -> Result<Option<SavedState>, StateError> {
        match fs::metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            _ => SavedState::load(path).map(Some),
        }
    }

    /// Writes the file atomically: temporary file, fsync, rename, fsync of the directory.
    pub fn save(&self, path: &Path) -> Result<(), StateError> {
        let io = |source| StateError::Io {
            path: path.to_owned(),
            source,
        };
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
            _ => PathBuf::from("."),
        };
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
        let mut f = fs::File::create(&tmp).map_err(io)?;
        f.write_all(self.to_json().as_bytes()).map_err(io)?;
        f.sync_all().map_err(io)?;
        drop(f);
        fs::rename(&tmp, path).map_err(io)?;
        if let Ok(d) = fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_corruption() {
        let s = SavedState {
            id: Id([3; 20]),
            nodes: vec![(Id([4; 20]), "127.0.0.4:6881".parse().unwrap())],
            advertised: vec![(Id([5; 20]), Some(80)), (Id([6; 20]), None)],
        };
        let dir = std::env::temp_dir().join(format!("dhtkit-state-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let p = dir.join("state.json");
        s.save(&p).unwrap();
        assert_eq!(SavedState::load(&p).unwrap(), s);
        fs::write(&p, &s.to_json()[..20]).unwrap();
        assert!(matches!(
            SavedState::load(&p),
            Err(StateError::Corrupt { .. })
        ));
        assert!(SavedState::load_if_exists(&dir.join("none"))
            .unwrap()
            .is_none());
        fs::remove_dir_all(&dir).unwrap();
    }
}
