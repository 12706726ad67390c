//! Reading a torrent's info dictionary: checking it against the infohash, and picking out
//! what an index shows (name, size, files, piece length, private flag).
//!
//! BEP 3 (v1) torrents list `files` (or one `length`); BEP 52 (v2) torrents have a `file tree`;
//! hybrid torrents have both, and either infohash may be the one seen on the DHT: the SHA-1 of
//! the info dictionary (v1) or its SHA-256 cut to 20 bytes (v2, as BEP 52 says the DHT uses).

use dhtkit_proto::bencode::{Decoder, Dict, Limits, Value};
use dhtkit_proto::Id;
use sha1::{Digest, Sha1};
use sha2::Sha256;

/// Which hash of the info dictionary matched the infohash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HashKind {
    /// SHA-1 (BEP 3, v1 and hybrid torrents).
    V1,
    /// SHA-256 truncated to 20 bytes (BEP 52, v2 and hybrid torrents).
    V2,
}

/// Checks the assembled info dictionary against the infohash it was fetched for.
pub fn verify(info: &[u8], info_hash: &Id) -> Option<HashKind> {
    if Sha1::digest(info)[..] == info_hash.0 {
        return Some(HashKind::V1);
    }
    if Sha256::digest(info)[..20] == info_hash.0 {
        return Some(HashKind::V2);
    }
    None
}

/// One file of a torrent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    /// The path inside the torrent, components joined with `/`.
    pub path: String,
    /// Size in bytes.
    pub length: u64,
}

/// What the index keeps of a torrent.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TorrentInfo {
    /// The torrent's name (`name.utf-8` when present, else `name`, lossily decoded).
    pub name: String,
    /// Total size of all files.
    pub total_size: u64,
    /// Files kept (at most the configured maximum; see [`TorrentInfo::file_count`]).
    pub files: Vec<FileEntry>,
    /// The real number of files, also when more than the kept ones.
    pub file_count: u64,
    /// Piece length in bytes.
    pub piece_length: u64,
    /// BEP 27 private flag.
    pub private: bool,
    /// 1 for v1, 2 for v2, 3 for hybrid torrents.
    pub meta_version: u8,
}

impl TorrentInfo {
    /// A v1, public torrent of `files` (total size and file count from them), for callers that
    /// build records themselves: imports, tests, benchmarks.
    pub fn new(name: impl Into<String>, piece_length: u64, files: Vec<FileEntry>) -> TorrentInfo {
        TorrentInfo {
            name: name.into(),
            total_size: files.iter().map(|f| f.length).sum(),
            file_count: files.len() as u64,
            files,
            piece_length,
            private: false,
            meta_version: 1,
        }
    }
}

/// Why an info dictionary could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad info dictionary: {0}")]
pub struct InfoError(pub &'static str);

/// Deepest `file tree` nesting followed (paths deeper than this are not listed).
const MAX_TREE_DEPTH: usize = 64;
/// Longest path kept, in bytes.
const MAX_PATH: usize = 4096;

/// Decoding limits for an info dictionary of at most `max_size` bytes.
fn limits(max_size: usize) -> Limits {
    Limits {
        max_depth: MAX_TREE_DEPTH + 8,
        max_tokens: max_size.max(64),
        max_string_len: max_size,
    }
}

/// Parses an info dictionary, keeping at most `max_files` file paths.
pub fn parse(info: &[u8], max_files: usize) -> Result<TorrentInfo, InfoError> {
    let mut decoder = Decoder::new(limits(info.len()));
    let v = decoder.decode(info).map_err(|_| InfoError("not bencode"))?;
    let d = v.as_dict().ok_or(InfoError("not a dictionary"))?;
    let name_raw = d
        .get_bytes(b"name.utf-8")
        .or_else(|| d.get_bytes(b"name"))
        .ok_or(InfoError("no name"))?;
    let name = clean(name_raw);
    let piece_length = uint(d.get(b"piece length")).ok_or(InfoError("no piece length"))?;
    let private = d.get_int(b"private") == Some(1);
    let mut files = Vec::new();
    let mut count = 0u64;
    let mut total = 0u64;
    let v1 = d.get(b"files").is_some() || d.get(b"length").is_some();
    let tree = d.get_dict(b"file tree");
    if let Some(list) = d.get_list(b"files") {
        for f in list.iter() {
            let f = f.as_dict().ok_or(InfoError("file is not a dictionary"))?;
            // BEP 47 padding files are alignment, not content.
            if f.get_bytes(b"attr").is_some_and(|a| a.contains(&b'p')) {
                continue;
            }
            let length = uint(f.get(b"length")).ok_or(InfoError("file without length"))?;
            let parts = f
                .get_list(b"path.utf-8")
                .or_else(|| f.get_list(b"path"))
                .ok_or(InfoError("file without path"))?;
            let path = join(parts.iter().filter_map(|p| p.as_bytes()));
            add(&mut files, &mut count, &mut total, max_files, path, length);
        }
    } else if let Some(length) = uint(d.get(b"length")) {
        add(
            &mut files,
            &mut count,
            &mut total,
            max_files,
            name.clone(),
            length,
        );
    } else if let Some(tree) = tree {
        let mut prefix = Vec::new();
        walk_tree(tree, &mut prefix, 0, &mut |path, length| {
            add(&mut files, &mut count, &mut total, max_files, path, length)
        })?;
    } else {
        return Err(InfoError("no files"));
    }
    let meta_version = match (v1, tree.is_some() && d.get_int(b"meta version") == Some(2)) {
        (true, true) => 3,
        (false, true) => 2,
        _ => 1,
    };
    Ok(TorrentInfo {
        name,
        total_size: total,
        files,
        file_count: count,
        piece_length,
        private,
        meta_version,
    })
}

fn add(
    files: &mut Vec<FileEntry>,
    count: &mut u64,
    total: &mut u64,
    max: usize,
    path: String,
    length: u64,
) {
    *count += 1;
    *total = total.saturating_add(length);
    if files.len() < max {
        files.push(FileEntry { path, length });
    }
}

/// Walks a BEP 52 `file tree`: a file is a dictionary whose `""` key holds its `length`.
fn walk_tree<'a>(
    dir: Dict<'a>,
    prefix: &mut Vec<&'a [u8]>,
    depth: usize,
    f: &mut dyn FnMut(String, u64),
) -> Result<(), InfoError> {
    if depth > MAX_TREE_DEPTH {
        return Err(InfoError("file tree too deep"));
    }
    for (k, v) in dir.iter() {
        let Some(sub) = v.as_dict() else {
            return Err(InfoError("file tree entry is not a dictionary"));
        };
        if k.is_empty() {
            let length = uint(sub.get(b"length")).ok_or(InfoError("file without length"))?;
            f(join(prefix.iter().copied()), length);
        } else {
            prefix.push(k);
            walk_tree(sub, prefix, depth + 1, f)?;
            prefix.pop();
        }
    }
    Ok(())
}

fn uint(v: Option<Value<'_>>) -> Option<u64> {
    u64::try_from(v?.as_int()?).ok()
}

/// Path components joined with `/`, each cleaned, cut at [`MAX_PATH`] bytes.
fn join<'a>(parts: impl Iterator<Item = &'a [u8]>) -> String {
    let mut out = String::new();
    for p in parts {
        if !out.is_empty() {
            out.push('/');
        }
        out.push_str(&clean(p).replace('/', "_"));
        if out.len() > MAX_PATH {
            let mut cut = MAX_PATH;
            while !out.is_char_boundary(cut) {
                cut -= 1;
            }
            out.truncate(cut);
            break;
        }
    }
    out
}

/// Text from a stranger: lossily decoded, control characters dropped.
fn clean(b: &[u8]) -> String {
    String::from_utf8_lossy(b)
        .chars()
        .filter(|c| !c.is_control())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_multi_file_with_utf8_names() {
        let info = b"d5:filesld6:lengthi3e4:pathl1:a5:b.txteed4:attr1:p6:lengthi9e4:pathl4:.pad1:9eed6:lengthi5e4:pathl1:ceee4:name4:test10:name.utf-85:t\xc3\xa9st12:piece lengthi16384e6:pieces0:7:privatei1ee";
        let t = parse(info, 10).unwrap();
        assert_eq!(t.name, "tést");
        assert_eq!(t.total_size, 8);
        assert_eq!(t.file_count, 2);
        assert_eq!(t.files[0].path, "a/b.txt");
        assert!(t.private);
        assert_eq!(t.meta_version, 1);
        let capped = parse(info, 1).unwrap();
        assert_eq!((capped.files.len(), capped.file_count), (1, 2));
    }

    #[test]
    fn v2_file_tree_and_single_file() {
        let info = b"d9:file treed3:dird1:xd0:d6:lengthi7e11:pieces root32:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaeee1:yd0:d6:lengthi1eeee12:meta versioni2e4:name1:n12:piece lengthi16384ee";
        let t = parse(info, 10).unwrap();
        assert_eq!(t.meta_version, 2);
        assert_eq!(t.total_size, 8);
        let paths: Vec<_> = t.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["dir/x", "y"]);
        let single = parse(
            b"d6:lengthi42e4:name3:one12:piece lengthi1024e6:pieces0:e",
            10,
        )
        .unwrap();
        assert_eq!(
            (single.total_size, single.files[0].path.as_str()),
            (42, "one")
        );
    }

    #[test]
    fn rejects_garbage_and_checks_hashes() {
        assert!(parse(b"le", 10).is_err());
        assert!(parse(b"d4:name1:xe", 10).is_err());
        assert!(parse(b"d4:name1:x12:piece lengthi-1e6:lengthi1ee", 10).is_err());
        let info = b"d6:lengthi1e4:name1:x12:piece lengthi1ee";
        let v1 = Id(Sha1::digest(info).into());
        let mut v2 = [0u8; 20];
        v2.copy_from_slice(&Sha256::digest(info)[..20]);
        assert_eq!(verify(info, &v1), Some(HashKind::V1));
        assert_eq!(verify(info, &Id(v2)), Some(HashKind::V2));
        assert_eq!(verify(info, &Id([0; 20])), None);
    }
}
