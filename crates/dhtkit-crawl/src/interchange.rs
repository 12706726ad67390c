//! Moving an index in and out: magnetico databases and JSON lines.
//!
//! - [`import_magnetico`] reads a magnetico SQLite database (`torrents(id, info_hash, name,
//!   total_size, discovered_on, updated_on, n_seeders, n_leechers, modified_on)`,
//!   `files(id, torrent_id, size, path)`; schema versions 0 to 3) in id order;
//! - [`import_jsonl`] reads JSON lines: what `dhtkit export` prints, what `dhtkit crawl
//!   --jsonl` streams, or hits as `dhtkit search --json` prints them;
//! - [`export_magnetico`] writes a new magnetico database (schema version 3, with its
//!   full-text index and triggers) that magnetico opens as its own.
//!
//! Imports stream: a batch of rows at a time goes through [`Store::write`], the path the
//! crawler's own writes take, and each batch records how far the import has come in the same
//! transaction ([`ImportMark`]). Run again on the same source, an import starts right after
//! the last batch that landed: stopped (SIGINT, a crash, a full disk) or finished, nothing is
//! imported twice, and rows added to the source since are picked up.

use std::io::{BufRead, Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use dhtkit_proto::Id;
use rusqlite::{params, Connection, OpenFlags};

use crate::metadata::{FileEntry, TorrentInfo};
use crate::store::{
    Batch, Dump, Fetched, ImportMark, Scraped, Sighting, Store, StoreError, StoreRead, Swarm,
};
use crate::Source;

/// How an import runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImportOptions {
    /// Torrents per transaction.
    pub batch: usize,
    /// File paths kept per torrent (the real count is always kept).
    pub max_files: usize,
    /// Longest JSON line read, in bytes (longer ones are skipped, never held in memory).
    pub max_line: usize,
}

impl Default for ImportOptions {
    fn default() -> ImportOptions {
        ImportOptions {
            batch: 5_000,
            max_files: 10_000,
            max_line: 16 << 20,
        }
    }
}

/// How an import went (also passed to the progress callback after every batch).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// Rows imported by this run (torrents, or infohashes without metadata).
    pub rows: u64,
    /// Of those, with a name.
    pub named: u64,
    /// Rows skipped: malformed, or not a torrent (a bad infohash, a missing name).
    pub skipped: u64,
    /// The first skipped row's position and why, to show the user.
    pub first_problem: Option<String>,
    /// Where a previous run had stopped, if this one resumed.
    pub resumed_from: Option<i64>,
    /// Where this run stopped (a row id, a byte offset).
    pub position: i64,
    /// Rows in the source, when known (for progress).
    pub total: Option<u64>,
    /// True if it stopped because it was asked to, before the end.
    pub interrupted: bool,
}

/// What can stop an import or an export.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InterchangeError {
    /// The source cannot be read as what it was said to be.
    #[error("{0}")]
    Source(String),
    /// The target store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Reading or writing a file failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

fn src(e: impl std::fmt::Display) -> InterchangeError {
    InterchangeError::Source(e.to_string())
}

/// A batch being filled, flushed with its import mark.
struct Pending<'a> {
    store: &'a mut dyn Store,
    source: Option<String>,
    batch: Batch,
    report: ImportReport,
    done_before: u64,
}

impl Pending<'_> {
    fn add(&mut self, ih: Id, first: i64, last: i64, named: Option<(TorrentInfo, i64)>) {
        self.batch.sightings.push(Sighting {
            info_hash: ih,
            sources: Source::Import.bit(),
            first,
            last: last.max(first),
            count: 1,
        });
        if let Some((info, at)) = named {
            self.batch.torrents.push(Fetched {
                info_hash: ih,
                info,
                at,
                peer: std::net::SocketAddr::from(([0, 0, 0, 0], 0)),
                info_dict: None,
            });
            self.report.named += 1;
        }
        self.report.rows += 1;
    }

    fn scraped(&mut self, ih: Id, swarm: Swarm, first_seen: i64) {
        let age = swarm.at - first_seen;
        self.batch.scrapes.push(Scraped {
            info_hash: ih,
            swarm,
            next_at: swarm.at + crate::scrape::rescrape_after(age, swarm.seeders, swarm.leechers),
        });
    }

    fn skip(&mut self, at: String) {
        self.report.skipped += 1;
        if self.report.first_problem.is_none() {
            self.report.first_problem = Some(at);
        }
    }

    fn full(&self, opts: &ImportOptions) -> bool {
        self.batch.sightings.len() >= opts.batch
    }

    fn flush(&mut self, position: i64) -> Result<(), StoreError> {
        self.report.position = position;
        let mut batch = std::mem::take(&mut self.batch);
        batch.import_mark = self.source.as_ref().map(|s| ImportMark {
            source: s.clone(),
            position,
            rows: self.done_before + self.report.rows,
        });
        self.store.write(&batch)?;
        Ok(())
    }
}

/// Calls `progress` at most every second, and at the end.
struct Ticker(Option<Instant>);

impl Ticker {
    fn due(&mut self) -> bool {
        let due = self.0.is_none_or(|t| t.elapsed() >= Duration::from_secs(1));
        if due {
            self.0 = Some(Instant::now());
        }
        due
    }
}

/// The key an import of `kind` from `path` is remembered by.
fn source_key(kind: &str, path: &Path) -> String {
    let abs = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    format!("{kind}:{}", abs.display())
}

fn has_column(conn: &Connection, table: &str, column: &str) -> rusqlite::Result<bool> {
    let mut q = conn.prepare(&format!("PRAGMA table_info({table})"))?;
    let names = q.query_map([], |r| r.get::<_, String>(1))?;
    for n in names {
        if n? == column {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Imports the magnetico database at `path` into `store` (see the module docs). `stop` is
/// checked between batches; `progress` sees the report after each.
pub fn import_magnetico(
    path: &Path,
    store: &mut dyn Store,
    opts: &ImportOptions,
    stop: &AtomicBool,
    progress: &mut dyn FnMut(&ImportReport),
) -> Result<ImportReport, InterchangeError> {
    if !path.is_file() {
        return Err(src(format!("{}: no such file", path.display())));
    }
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| src(format!("{}: {e}", path.display())))?;
    let not_magnetico = |why: String| {
        src(format!(
            "{} is not a magnetico database: {why}",
            path.display()
        ))
    };
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(|e| not_magnetico(e.to_string()))?;
    if !(0..=3).contains(&version) {
        return Err(not_magnetico(format!(
            "schema version {version} (known: 0 to 3)"
        )));
    }
    for (table, column) in [
        ("torrents", "info_hash"),
        ("torrents", "name"),
        ("torrents", "total_size"),
        ("torrents", "discovered_on"),
        ("files", "torrent_id"),
        ("files", "path"),
        ("files", "size"),
    ] {
        if !has_column(&conn, table, column).map_err(|e| not_magnetico(e.to_string()))? {
            return Err(not_magnetico(format!("no {table}.{column}")));
        }
    }
    let swarms = has_column(&conn, "torrents", "n_seeders").map_err(src)?;
    let modified = has_column(&conn, "torrents", "modified_on").map_err(src)?;
    let key = source_key("magnetico", path);
    let before = store.import_position(&key)?;
    let start = before.as_ref().map_or(0, |m| m.position);
    let total: i64 = conn
        .query_row(
            "SELECT count(*) FROM torrents WHERE id > ?1",
            [start],
            |r| r.get(0),
        )
        .map_err(src)?;
    let mut p = Pending {
        store,
        source: Some(key),
        batch: Batch::default(),
        report: ImportReport {
            resumed_from: before.as_ref().map(|m| m.position),
            position: start,
            total: Some(total as u64),
            ..ImportReport::default()
        },
        done_before: before.map_or(0, |m| m.rows),
    };
    let mut torrents = conn
        .prepare(&format!(
            "SELECT id, info_hash, name, total_size, discovered_on, {}, {}, {}, {}
             FROM torrents WHERE id > ?1 ORDER BY id LIMIT ?2",
            if modified { "modified_on" } else { "NULL" },
            if swarms { "updated_on" } else { "NULL" },
            if swarms { "n_seeders" } else { "NULL" },
            if swarms { "n_leechers" } else { "NULL" },
        ))
        .map_err(src)?;
    let mut files = conn
        .prepare(
            "SELECT torrent_id, size, path FROM files
             WHERE torrent_id > ?1 AND torrent_id <= ?2 ORDER BY torrent_id, id",
        )
        .map_err(src)?;
    type Row = (
        i64,
        Vec<u8>,
        Option<String>,
        Option<i64>,
        Option<i64>,
        Option<i64>,
        Option<i64>,
        Option<i64>,
        Option<i64>,
    );
    let mut ticker = Ticker(None);
    let mut at = start;
    loop {
        if stop.load(Ordering::Relaxed) {
            p.report.interrupted = true;
            break;
        }
        let rows: Vec<Row> = torrents
            .query_map(params![at, opts.batch as i64], |r| {
                Ok((
                    r.get(0)?,
                    r.get::<_, Option<Vec<u8>>>(1)?.unwrap_or_default(),
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                    r.get(8)?,
                ))
            })
            .and_then(|rows| rows.collect())
            .map_err(src)?;
        let Some(last_id) = rows.last().map(|r| r.0) else {
            break;
        };
        // The files of this batch's torrents, in one ordered pass.
        let mut by_torrent: std::collections::HashMap<i64, Vec<FileEntry>> =
            std::collections::HashMap::new();
        let mut counts: std::collections::HashMap<i64, u64> = std::collections::HashMap::new();
        {
            let mut fr = files.query(params![at, last_id]).map_err(src)?;
            while let Some(r) = fr.next().map_err(src)? {
                let tid: i64 = r.get(0).map_err(src)?;
                let size: Option<i64> = r.get(1).map_err(src)?;
                let path: Option<String> = r.get(2).map_err(src)?;
                *counts.entry(tid).or_default() += 1;
                let kept = by_torrent.entry(tid).or_default();
                if kept.len() < opts.max_files {
                    kept.push(FileEntry {
                        path: path.unwrap_or_default(),
                        length: size.map_or(0, |s| s.max(0) as u64),
                    });
                }
            }
        }
        for (id, ih, name, size, discovered, modified_on, updated, seeders, leechers) in rows {
            let Some(info_hash) = Id::from_slice(&ih) else {
                p.skip(format!(
                    "torrent id {id}: an infohash of {} bytes",
                    ih.len()
                ));
                continue;
            };
            let Some(name) = name else {
                p.skip(format!("torrent id {id}: no name"));
                continue;
            };
            let first = discovered.unwrap_or(0).max(0);
            let last = modified_on.unwrap_or(first);
            let files = by_torrent.remove(&id).unwrap_or_default();
            let info = TorrentInfo {
                name,
                total_size: size.unwrap_or(0).max(0) as u64,
                file_count: counts.get(&id).copied().unwrap_or(0),
                files,
                piece_length: 0,
                private: false,
                meta_version: 1,
            };
            p.add(info_hash, first, last, Some((info, first)));
            if let (Some(at), Some(s)) = (updated, seeders) {
                let swarm = Swarm {
                    seeders: s.max(0) as u64,
                    leechers: leechers.unwrap_or(0).max(0) as u64,
                    at,
                };
                p.scraped(info_hash, swarm, first);
            }
        }
        at = last_id;
        p.flush(at)?;
        if ticker.due() {
            progress(&p.report);
        }
    }
    progress(&p.report);
    Ok(p.report)
}

/// A number, or an RFC 3339 time, as Unix seconds.
fn time_field(v: &serde_json::Value) -> Option<i64> {
    match v {
        serde_json::Value::Number(n) => n.as_i64(),
        serde_json::Value::String(s) => crate::view::parse_rfc3339(s),
        _ => None,
    }
}

/// One JSON line as a row, or why not.
fn jsonl_row(
    line: &[u8],
    opts: &ImportOptions,
    p: &mut Pending<'_>,
    now: i64,
) -> Result<(), String> {
    let v: serde_json::Value =
        serde_json::from_slice(line).map_err(|e| format!("not JSON ({e})"))?;
    let ih = v
        .get("infohash")
        .or_else(|| v.get("info_hash"))
        .and_then(|h| h.as_str())
        .ok_or("no infohash")?;
    let info_hash: Id = ih
        .parse()
        .map_err(|_| format!("infohash {ih:?} is not 40 hex digits"))?;
    let first = ["discovered_at", "first_seen"]
        .iter()
        .find_map(|k| v.get(*k).and_then(time_field))
        .unwrap_or(now);
    let last = v.get("last_seen").and_then(time_field).unwrap_or(first);
    let named = match v.get("name").and_then(|n| n.as_str()) {
        None => None,
        Some(name) => {
            let list: Vec<FileEntry> = v
                .get("file_list")
                .and_then(|l| l.as_array())
                .map(|l| {
                    l.iter()
                        .take(opts.max_files)
                        .filter_map(|f| {
                            Some(FileEntry {
                                path: f.get("path")?.as_str()?.to_string(),
                                length: f.get("length")?.as_u64()?,
                            })
                        })
                        .collect()
                })
                .unwrap_or_default();
            let u = |k: &str| v.get(k).and_then(|x| x.as_u64());
            let info = TorrentInfo {
                name: name.to_string(),
                total_size: u("size").unwrap_or_else(|| list.iter().map(|f| f.length).sum()),
                file_count: u("files").unwrap_or(list.len() as u64),
                files: list,
                piece_length: u("piece_length").unwrap_or(0),
                private: v.get("private").and_then(|x| x.as_bool()).unwrap_or(false),
                meta_version: u("meta_version").map_or(1, |m| m.clamp(1, 3) as u8),
            };
            let at = v.get("fetched_at").and_then(time_field).unwrap_or(first);
            Some((info, at))
        }
    };
    let has_name = named.is_some();
    p.add(info_hash, first, last, named);
    if let (true, Some(s), Some(at)) = (
        has_name,
        v.get("seeders").and_then(|x| x.as_u64()),
        v.get("scraped_at").and_then(time_field),
    ) {
        let leechers = v.get("leechers").and_then(|x| x.as_u64()).unwrap_or(0);
        p.scraped(
            info_hash,
            Swarm {
                seeders: s,
                leechers,
                at,
            },
            first,
        );
    }
    Ok(())
}

/// Imports JSON lines from `input` (see the module docs). With `path` (a file, not stdin)
/// the import is resumable: it seeks to where the last run stopped.
pub fn import_jsonl(
    path: Option<&Path>,
    store: &mut dyn Store,
    opts: &ImportOptions,
    stop: &AtomicBool,
    progress: &mut dyn FnMut(&ImportReport),
) -> Result<ImportReport, InterchangeError> {
    let (mut input, key, total): (Box<dyn BufRead>, Option<String>, Option<u64>) = match path {
        Some(p) => {
            let f = std::fs::File::open(p).map_err(|e| src(format!("{}: {e}", p.display())))?;
            let len = f.metadata().map(|m| m.len()).ok();
            (
                Box::new(std::io::BufReader::with_capacity(1 << 20, f)),
                Some(source_key("jsonl", p)),
                len,
            )
        }
        None => (Box::new(std::io::stdin().lock()), None, None),
    };
    let before = match &key {
        Some(k) => store.import_position(k)?,
        None => None,
    };
    let mut offset = before.as_ref().map_or(0, |m| m.position);
    if offset > 0 {
        if let Some(p) = path {
            // Reopened at the offset: BufReader over a File cannot seek through the box.
            let mut f = std::fs::File::open(p)?;
            f.seek(SeekFrom::Start(offset as u64))?;
            input = Box::new(std::io::BufReader::with_capacity(1 << 20, f));
        }
    }
    let mut p = Pending {
        store,
        source: key,
        batch: Batch::default(),
        report: ImportReport {
            resumed_from: before.as_ref().map(|m| m.position),
            position: offset,
            total,
            ..ImportReport::default()
        },
        done_before: before.map_or(0, |m| m.rows),
    };
    let now = crate::crawler::unix_now();
    let mut ticker = Ticker(None);
    let mut line = Vec::new();
    let mut line_no = 0u64;
    loop {
        if stop.load(Ordering::Relaxed) {
            p.report.interrupted = true;
            break;
        }
        line.clear();
        let n = (&mut input)
            .take(opts.max_line as u64 + 1)
            .read_until(b'\n', &mut line)?;
        if n == 0 {
            break;
        }
        offset += n as i64;
        line_no += 1;
        if line.len() > opts.max_line && !line.ends_with(b"\n") {
            // Too long: skip to its end without holding it.
            loop {
                let buf = input.fill_buf()?;
                if buf.is_empty() {
                    break;
                }
                match buf.iter().position(|b| *b == b'\n') {
                    Some(i) => {
                        input.consume(i + 1);
                        offset += i as i64 + 1;
                        break;
                    }
                    None => {
                        let l = buf.len();
                        input.consume(l);
                        offset += l as i64;
                    }
                }
            }
            p.skip(format!(
                "line {line_no}: longer than {} bytes",
                opts.max_line
            ));
            continue;
        }
        let text = line.trim_ascii();
        if text.is_empty() {
            continue;
        }
        if let Err(why) = jsonl_row(text, opts, &mut p, now) {
            p.skip(format!("line {line_no}: {why}"));
        }
        if p.full(opts) {
            p.flush(offset)?;
            if ticker.due() {
                progress(&p.report);
            }
        }
    }
    p.flush(offset)?;
    progress(&p.report);
    Ok(p.report)
}

/// magnetico's schema at version 3, written here from its documented shape: the tables, the
/// constraints magnetico checks, its full-text index over names (porter stemming, its
/// separators) and the triggers that keep that index current.
const MAGNETICO_SCHEMA: &str = r##"
PRAGMA journal_mode = WAL;
PRAGMA encoding = 'UTF-8';
CREATE TABLE torrents (
    id INTEGER PRIMARY KEY,
    info_hash BLOB NOT NULL UNIQUE,
    name TEXT NOT NULL,
    total_size INTEGER NOT NULL CHECK (total_size > 0),
    discovered_on INTEGER NOT NULL CHECK (discovered_on > 0),
    updated_on INTEGER CHECK (updated_on > 0) DEFAULT NULL,
    n_seeders INTEGER CHECK ((updated_on IS NOT NULL AND n_seeders >= 0)
        OR (updated_on IS NULL AND n_seeders IS NULL)) DEFAULT NULL,
    n_leechers INTEGER CHECK ((updated_on IS NOT NULL AND n_leechers >= 0)
        OR (updated_on IS NULL AND n_leechers IS NULL)) DEFAULT NULL,
    modified_on INTEGER
);
CREATE TABLE files (
    id INTEGER PRIMARY KEY,
    torrent_id INTEGER REFERENCES torrents ON DELETE CASCADE ON UPDATE RESTRICT,
    size INTEGER NOT NULL,
    path TEXT NOT NULL,
    is_readme INTEGER CHECK (is_readme IS NULL OR is_readme = 1) DEFAULT NULL,
    content TEXT CHECK ((content IS NULL AND is_readme IS NULL)
        OR (content IS NOT NULL AND is_readme = 1)) DEFAULT NULL
);
CREATE UNIQUE INDEX info_hash_index ON torrents (info_hash);
CREATE UNIQUE INDEX readme_index ON files (torrent_id, is_readme);
CREATE INDEX modified_on_index ON torrents (modified_on);
CREATE VIRTUAL TABLE torrents_idx USING fts5(name, content='torrents', content_rowid='id',
    tokenize="porter unicode61 separators ' !""#$%&''()*+,-./:;<=>?@[\]^_`{|}~'");
CREATE TRIGGER torrents_ai AFTER INSERT ON torrents BEGIN
    INSERT INTO torrents_idx (rowid, name) VALUES (new.id, new.name);
END;
CREATE TRIGGER torrents_ad AFTER DELETE ON torrents BEGIN
    INSERT INTO torrents_idx (torrents_idx, rowid, name) VALUES ('delete', old.id, old.name);
END;
CREATE TRIGGER torrents_au AFTER UPDATE ON torrents BEGIN
    INSERT INTO torrents_idx (torrents_idx, rowid, name) VALUES ('delete', old.id, old.name);
    INSERT INTO torrents_idx (rowid, name) VALUES (new.id, new.name);
END;
PRAGMA user_version = 3;
"##;

/// How an export went.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExportReport {
    /// Torrents written.
    pub torrents: u64,
    /// Files written.
    pub files: u64,
    /// Torrents left out: magnetico requires a size above zero.
    pub skipped: u64,
}

fn write_dumps(tx: &rusqlite::Transaction<'_>, dumps: &[Dump]) -> rusqlite::Result<u64> {
    let mut t = tx.prepare_cached(
        "INSERT INTO torrents (info_hash, name, total_size, discovered_on, updated_on,
            n_seeders, n_leechers, modified_on)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) RETURNING id",
    )?;
    let mut f =
        tx.prepare_cached("INSERT INTO files (torrent_id, size, path) VALUES (?1, ?2, ?3)")?;
    let mut files = 0;
    for d in dumps {
        let discovered = d.first_seen.max(1);
        let swarm = d.swarm.filter(|s| s.at > 0);
        let id: i64 = t.query_row(
            params![
                &d.info_hash.0[..],
                d.name,
                d.size as i64,
                discovered,
                swarm.map(|s| s.at),
                swarm.map(|s| s.seeders as i64),
                swarm.map(|s| s.leechers as i64),
                d.last_seen.max(discovered),
            ],
            |r| r.get(0),
        )?;
        for file in &d.files {
            f.execute(params![id, file.length as i64, file.path])?;
            files += 1;
        }
    }
    Ok(files)
}

/// Writes every named torrent of `store` to a new magnetico database at `path` (refusing to
/// touch an existing file).
pub fn export_magnetico(
    store: &dyn StoreRead,
    path: &Path,
    progress: &mut dyn FnMut(&ExportReport),
) -> Result<ExportReport, InterchangeError> {
    if path.exists() {
        return Err(src(format!(
            "{} exists; give a new file name",
            path.display()
        )));
    }
    let mut conn = Connection::open(path).map_err(|e| src(format!("{}: {e}", path.display())))?;
    conn.execute_batch(MAGNETICO_SCHEMA).map_err(src)?;
    let mut report = ExportReport::default();
    let mut pending: Vec<Dump> = Vec::new();
    let mut ticker = Ticker(None);
    let flush = |conn: &mut Connection,
                 pending: &mut Vec<Dump>,
                 report: &mut ExportReport|
     -> std::io::Result<()> {
        let tx = conn.transaction().map_err(std::io::Error::other)?;
        report.files += write_dumps(&tx, pending).map_err(std::io::Error::other)?;
        tx.commit().map_err(std::io::Error::other)?;
        report.torrents += pending.len() as u64;
        pending.clear();
        Ok(())
    };
    store.dump(&mut |d| {
        if d.size == 0 {
            report.skipped += 1;
            return Ok(());
        }
        pending.push(d);
        if pending.len() >= 10_000 {
            flush(&mut conn, &mut pending, &mut report)?;
            if ticker.due() {
                progress(&report);
            }
        }
        Ok(())
    })?;
    flush(&mut conn, &mut pending, &mut report)?;
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE); PRAGMA journal_mode = DELETE;")
        .map_err(src)?;
    progress(&report);
    Ok(report)
}
