//! The SQLite store: one file, WAL mode with a bounded WAL, an FTS5 index over names and file
//! paths, versioned migrations.
//!
//! Layout: `torrents` holds one row per infohash (sightings and, once fetched, metadata);
//! `files` holds the kept file list; `search` is a contentless FTS5 table whose rowid is the
//! torrent's, so names and paths are stored once and only indexed twice.
//!
//! The WAL is kept small: SQLite checkpoints it every 4,096 pages (16 MiB), truncates it to
//! 64 MiB after a checkpoint (`journal_size_limit`), and the writer forces a truncating
//! checkpoint after any batch that leaves it larger than that.

use std::path::{Path, PathBuf};

use dhtkit_proto::Id;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};

use super::{
    search_terms, Batch, DbSize, Due, Dump, ExportRow, ImportMark, RecordMetadata, SearchHit,
    SearchQuery, Sort, Store, StoreError, StoreRead, StoreStats, Swarm, TorrentRecord,
};
use crate::metadata::FileEntry;

/// Largest WAL left behind a batch before a truncating checkpoint.
const WAL_LIMIT: u64 = 64 * 1024 * 1024;

/// The schema, one step per version; `PRAGMA user_version` says how many have run.
const MIGRATIONS: &[&str] = &[
    // 1: torrents, files, full-text search.
    "CREATE TABLE torrents (
        id INTEGER PRIMARY KEY,
        info_hash BLOB NOT NULL UNIQUE,
        first_seen INTEGER NOT NULL,
        last_seen INTEGER NOT NULL,
        seen_count INTEGER NOT NULL,
        sources INTEGER NOT NULL,
        name TEXT,
        total_size INTEGER,
        file_count INTEGER,
        piece_length INTEGER,
        private INTEGER,
        meta_version INTEGER,
        fetched_at INTEGER
     );
     CREATE INDEX torrents_first_seen ON torrents(first_seen);
     CREATE INDEX torrents_missing ON torrents(last_seen) WHERE name IS NULL;
     CREATE TABLE files (
        torrent_id INTEGER NOT NULL,
        idx INTEGER NOT NULL,
        path TEXT NOT NULL,
        length INTEGER NOT NULL,
        PRIMARY KEY (torrent_id, idx)
     ) WITHOUT ROWID;
     CREATE VIRTUAL TABLE search USING fts5(
        name, paths, content='', tokenize='unicode61 remove_diacritics 2'
     );",
    // 2: live swarms (BEP 33 scrapes) and when each torrent is due for its next.
    "ALTER TABLE torrents ADD COLUMN seeders INTEGER;
     ALTER TABLE torrents ADD COLUMN leechers INTEGER;
     ALTER TABLE torrents ADD COLUMN scraped_at INTEGER;
     ALTER TABLE torrents ADD COLUMN last_seeded INTEGER;
     ALTER TABLE torrents ADD COLUMN next_scrape INTEGER;
     UPDATE torrents SET next_scrape = fetched_at WHERE name IS NOT NULL;
     CREATE INDEX torrents_next_scrape ON torrents(next_scrape) WHERE next_scrape IS NOT NULL;
     CREATE INDEX torrents_seeders ON torrents(seeders) WHERE seeders IS NOT NULL;
     CREATE INDEX torrents_dead ON torrents(coalesce(last_seeded, first_seen))
        WHERE scraped_at IS NOT NULL;",
    // 3: how far each import has come.
    "CREATE TABLE imports (
        source TEXT PRIMARY KEY,
        position INTEGER NOT NULL,
        rows INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
     );",
    // 4: the order a disk cap deletes named torrents in.
    "CREATE INDEX torrents_evict ON torrents(coalesce(last_seeded, fetched_at))
        WHERE name IS NOT NULL;",
    // 5: info dictionaries as fetched, to serve them back over BEP 9.
    "CREATE TABLE infos (torrent_id INTEGER PRIMARY KEY, info BLOB NOT NULL);",
];

/// A SQLite database of discovered torrents.
pub struct SqliteStore {
    conn: Connection,
    path: PathBuf,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish()
    }
}

fn db(e: rusqlite::Error) -> StoreError {
    StoreError::Db(e.to_string())
}

impl SqliteStore {
    /// Opens (creating it and its directory if needed) the database at `path` for writing,
    /// and brings its schema up to date.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let open_err = |reason: String| StoreError::Open {
            path: path.to_owned(),
            reason,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| open_err(e.to_string()))?;
        }
        let conn = Connection::open(path).map_err(|e| open_err(e.to_string()))?;
        let setup = "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = NORMAL;
             PRAGMA journal_size_limit = 67108864;
             PRAGMA wal_autocheckpoint = 4096;
             PRAGMA busy_timeout = 5000;";
        conn.execute_batch(setup)
            .map_err(|e| open_err(e.to_string()))?;
        let mut s = SqliteStore {
            conn,
            path: path.to_owned(),
        };
        s.migrate()?;
        Ok(s)
    }

    /// Opens an existing database read-only (for search, show, export and the web page).
    pub fn open_read_only(path: &Path) -> Result<SqliteStore, StoreError> {
        let open_err = |reason: String| StoreError::Open {
            path: path.to_owned(),
            reason,
        };
        if !path.exists() {
            return Err(open_err("no such file".into()));
        }
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| open_err(e.to_string()))?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(|e| open_err(e.to_string()))?;
        let version = schema_version(&conn).map_err(|e| open_err(e.to_string()))?;
        let known = MIGRATIONS.len() as i64;
        if version > known {
            return Err(StoreError::TooNew {
                path: path.to_owned(),
                found: version,
                known,
            });
        }
        if version == 0 {
            return Err(open_err("not a dhtkit database".into()));
        }
        if version < known {
            return Err(open_err(format!(
                "made by an older dhtkit (schema {version} of {known}): open it once for \
                 writing (dhtkit crawl, import or prune) to upgrade it"
            )));
        }
        Ok(SqliteStore {
            conn,
            path: path.to_owned(),
        })
    }

    fn migrate(&mut self) -> Result<(), StoreError> {
        let path = self.path.clone();
        let open_err = |reason: String| StoreError::Open {
            path: path.clone(),
            reason,
        };
        let version = schema_version(&self.conn).map_err(|e| open_err(e.to_string()))?;
        let known = MIGRATIONS.len() as i64;
        if version > known {
            return Err(StoreError::TooNew {
                path,
                found: version,
                known,
            });
        }
        for (i, step) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            let tx = self.conn.transaction().map_err(db)?;
            tx.execute_batch(step)
                .map_err(|e| open_err(e.to_string()))?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)
                .map_err(db)?;
            tx.commit().map_err(db)?;
        }
        Ok(())
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn wal_size(&self) -> u64 {
        let mut wal = self.path.clone().into_os_string();
        wal.push("-wal");
        std::fs::metadata(wal).map_or(0, |m| m.len())
    }
}

fn schema_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.pragma_query_value(None, "user_version", |r| r.get(0))
}

fn u(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// The last scrape, from the seeders, leechers and scraped_at columns.
fn swarm(seeders: Option<i64>, leechers: Option<i64>, at: Option<i64>) -> Option<Swarm> {
    Some(Swarm {
        seeders: u(seeders?),
        leechers: u(leechers.unwrap_or(0)),
        at: at?,
    })
}

impl Store for SqliteStore {
    fn write(&mut self, batch: &Batch) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let tx = self.conn.transaction().map_err(db)?;
        {
            let mut seen = tx
                .prepare_cached(
                    "INSERT INTO torrents (info_hash, first_seen, last_seen, seen_count, sources)
                     VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (info_hash) DO UPDATE SET
                        first_seen = min(first_seen, excluded.first_seen),
                        last_seen = max(last_seen, excluded.last_seen),
                        seen_count = seen_count + excluded.seen_count,
                        sources = sources | excluded.sources",
                )
                .map_err(db)?;
            for s in &batch.sightings {
                seen.execute(params![
                    &s.info_hash.0[..],
                    s.first,
                    s.last,
                    s.count,
                    s.sources
                ])
                .map_err(db)?;
            }
            let mut ensure = tx
                .prepare_cached(
                    "INSERT INTO torrents (info_hash, first_seen, last_seen, seen_count, sources)
                     VALUES (?1, ?2, ?2, 0, 0) ON CONFLICT (info_hash) DO NOTHING",
                )
                .map_err(db)?;
            let mut meta = tx
                .prepare_cached(
                    "UPDATE torrents SET name = ?2, total_size = ?3, file_count = ?4,
                        piece_length = ?5, private = ?6, meta_version = ?7, fetched_at = ?8,
                        next_scrape = ?8
                     WHERE info_hash = ?1 AND name IS NULL RETURNING id",
                )
                .map_err(db)?;
            let mut file = tx
                .prepare_cached(
                    "INSERT INTO files (torrent_id, idx, path, length) VALUES (?1, ?2, ?3, ?4)",
                )
                .map_err(db)?;
            let mut fts = tx
                .prepare_cached("INSERT INTO search (rowid, name, paths) VALUES (?1, ?2, ?3)")
                .map_err(db)?;
            let mut dict = tx
                .prepare_cached("INSERT OR IGNORE INTO infos (torrent_id, info) VALUES (?1, ?2)")
                .map_err(db)?;
            for t in &batch.torrents {
                let i = &t.info;
                ensure
                    .execute(params![&t.info_hash.0[..], t.at])
                    .map_err(db)?;
                let id: Option<i64> = meta
                    .query_row(
                        params![
                            &t.info_hash.0[..],
                            i.name,
                            i.total_size as i64,
                            i.file_count as i64,
                            i.piece_length as i64,
                            i.private,
                            i.meta_version,
                            t.at
                        ],
                        |r| r.get(0),
                    )
                    .optional()
                    .map_err(db)?;
                // Already fetched (by us earlier, or by another crawler): nothing to add.
                let Some(id) = id else { continue };
                let mut paths = String::new();
                for (n, f) in i.files.iter().enumerate() {
                    file.execute(params![id, n as i64, f.path, f.length as i64])
                        .map_err(db)?;
                    paths.push_str(&f.path);
                    paths.push('\n');
                }
                fts.execute(params![id, i.name, paths]).map_err(db)?;
                if let Some(d) = &t.info_dict {
                    dict.execute(params![id, d]).map_err(db)?;
                }
            }
            let mut scraped = tx
                .prepare_cached(
                    "UPDATE torrents SET seeders = ?2, leechers = ?3, scraped_at = ?4,
                        last_seeded = CASE WHEN ?2 > 0 THEN ?4 ELSE last_seeded END,
                        next_scrape = ?5
                     WHERE info_hash = ?1",
                )
                .map_err(db)?;
            if let Some(m) = &batch.import_mark {
                tx.prepare_cached(
                    "INSERT INTO imports (source, position, rows, updated_at)
                     VALUES (?1, ?2, ?3, strftime('%s', 'now'))
                     ON CONFLICT (source) DO UPDATE SET position = excluded.position,
                        rows = excluded.rows, updated_at = excluded.updated_at",
                )
                .and_then(|mut q| q.execute(params![m.source, m.position, m.rows as i64]))
                .map_err(db)?;
            }
            for s in &batch.scrapes {
                scraped
                    .execute(params![
                        &s.info_hash.0[..],
                        s.swarm.seeders as i64,
                        s.swarm.leechers as i64,
                        s.swarm.at,
                        s.next_at
                    ])
                    .map_err(db)?;
            }
        }
        tx.commit().map_err(db)?;
        if self.wal_size() > WAL_LIMIT {
            self.conn
                .execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
                .map_err(db)?;
        }
        Ok(())
    }

    fn missing_metadata(&mut self, limit: usize) -> Result<Vec<Id>, StoreError> {
        let mut q = self
            .conn
            .prepare_cached(
                "SELECT info_hash FROM torrents WHERE name IS NULL ORDER BY last_seen DESC LIMIT ?1",
            )
            .map_err(db)?;
        let rows = q
            .query_map([limit as i64], |r| r.get::<_, Vec<u8>>(0))
            .map_err(db)?;
        let mut out = Vec::new();
        for r in rows {
            if let Some(id) = Id::from_slice(&r.map_err(db)?) {
                out.push(id);
            }
        }
        Ok(out)
    }

    fn stats(&mut self) -> Result<StoreStats, StoreError> {
        self.totals()
    }

    fn due_scrapes(&mut self, now: i64, limit: usize) -> Result<Vec<Due>, StoreError> {
        let mut q = self
            .conn
            .prepare_cached(
                "SELECT info_hash, first_seen FROM torrents
                 WHERE next_scrape IS NOT NULL AND next_scrape <= ?1
                 ORDER BY next_scrape LIMIT ?2",
            )
            .map_err(db)?;
        let rows = q
            .query_map(params![now, limit as i64], |r| {
                Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, i64>(1)?))
            })
            .map_err(db)?;
        let mut out = Vec::new();
        for r in rows {
            let (ih, first_seen) = r.map_err(db)?;
            if let Some(info_hash) = Id::from_slice(&ih) {
                out.push(Due {
                    info_hash,
                    first_seen,
                });
            }
        }
        Ok(out)
    }

    fn size(&mut self) -> Result<DbSize, StoreError> {
        let pragma = |name: &str| -> Result<u64, StoreError> {
            self.conn
                .pragma_query_value(None, name, |r| r.get::<_, i64>(0))
                .map(u)
                .map_err(db)
        };
        let (page, pages, free) = (
            pragma("page_size")?,
            pragma("page_count")?,
            pragma("freelist_count")?,
        );
        let wal = self.wal_size();
        let file = std::fs::metadata(&self.path).map_or(page * pages, |m| m.len());
        Ok(DbSize {
            bytes: file + wal,
            wal,
            used: Some(page * pages.saturating_sub(free)),
            rows_estimate: None,
        })
    }

    fn evict(&mut self, rows: usize) -> Result<u64, StoreError> {
        let tx = self.conn.transaction().map_err(db)?;
        let unnamed = tx
            .execute(
                "DELETE FROM torrents WHERE id IN (SELECT id FROM torrents WHERE name IS NULL
                    ORDER BY last_seen LIMIT ?1)",
                [rows as i64],
            )
            .map_err(db)? as u64;
        let mut gone = unnamed;
        if (unnamed as usize) < rows {
            let ids: Vec<i64> = {
                let mut q = tx
                    .prepare_cached(
                        "SELECT id FROM torrents WHERE name IS NOT NULL
                         ORDER BY coalesce(last_seeded, fetched_at) LIMIT ?1",
                    )
                    .map_err(db)?;
                let r = q
                    .query_map([(rows - unnamed as usize) as i64], |r| r.get(0))
                    .map_err(db)?;
                r.collect::<Result<_, _>>().map_err(db)?
            };
            for id in &ids {
                delete_torrent(&tx, *id)?;
            }
            gone += ids.len() as u64;
        }
        tx.commit().map_err(db)?;
        Ok(gone)
    }

    fn compact(&mut self) -> Result<(), StoreError> {
        self.conn
            .execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
            .map_err(db)
    }

    fn import_position(&mut self, source: &str) -> Result<Option<ImportMark>, StoreError> {
        self.conn
            .query_row(
                "SELECT position, rows FROM imports WHERE source = ?1",
                [source],
                |r| {
                    Ok(ImportMark {
                        source: source.to_string(),
                        position: r.get(0)?,
                        rows: u(r.get(1)?),
                    })
                },
            )
            .optional()
            .map_err(db)
    }

    fn prune_dead(&mut self, before: i64) -> Result<u64, StoreError> {
        let ids: Vec<i64> = {
            let mut q = self
                .conn
                .prepare(
                    "SELECT id FROM torrents WHERE scraped_at IS NOT NULL
                       AND coalesce(last_seeded, first_seen) < ?1",
                )
                .map_err(db)?;
            let rows = q.query_map([before], |r| r.get(0)).map_err(db)?;
            rows.collect::<Result<_, _>>().map_err(db)?
        };
        let mut gone = 0;
        // In transactions of a bounded size, so that the crawler writing alongside waits
        // for one chunk at a time, not for the whole prune.
        for chunk in ids.chunks(1_000) {
            let tx = self.conn.transaction().map_err(db)?;
            for &id in chunk {
                delete_torrent(&tx, id)?;
            }
            tx.commit().map_err(db)?;
            gone += chunk.len() as u64;
        }
        Ok(gone)
    }
}

/// Deletes torrent `id`, its files and its search entry. The search table keeps no copy of
/// what it indexed (it is contentless), so its entry is deleted by giving back the same name
/// and paths it was made from.
fn delete_torrent(tx: &rusqlite::Transaction<'_>, id: i64) -> Result<(), StoreError> {
    let name: Option<String> = tx
        .prepare_cached("SELECT name FROM torrents WHERE id = ?1")
        .and_then(|mut q| q.query_row([id], |r| r.get(0)).optional())
        .map_err(db)?
        .flatten();
    if let Some(name) = name {
        let mut paths = String::new();
        {
            let mut q = tx
                .prepare_cached("SELECT path FROM files WHERE torrent_id = ?1 ORDER BY idx")
                .map_err(db)?;
            let rows = q.query_map([id], |r| r.get::<_, String>(0)).map_err(db)?;
            for p in rows {
                paths.push_str(&p.map_err(db)?);
                paths.push('\n');
            }
        }
        tx.prepare_cached(
            "INSERT INTO search (search, rowid, name, paths) VALUES ('delete', ?1, ?2, ?3)",
        )
        .and_then(|mut q| q.execute(params![id, name, paths]))
        .map_err(db)?;
        tx.prepare_cached("DELETE FROM files WHERE torrent_id = ?1")
            .and_then(|mut q| q.execute([id]))
            .map_err(db)?;
        tx.prepare_cached("DELETE FROM infos WHERE torrent_id = ?1")
            .and_then(|mut q| q.execute([id]))
            .map_err(db)?;
    }
    tx.prepare_cached("DELETE FROM torrents WHERE id = ?1")
        .and_then(|mut q| q.execute([id]))
        .map_err(db)?;
    Ok(())
}

impl StoreRead for SqliteStore {
    fn totals(&self) -> Result<StoreStats, StoreError> {
        self.conn
            .prepare_cached("SELECT count(*), count(name) FROM torrents")
            .and_then(|mut q| {
                q.query_row([], |r| {
                    Ok(StoreStats {
                        infohashes: u(r.get(0)?),
                        with_metadata: u(r.get(1)?),
                    })
                })
            })
            .map_err(db)
    }

    fn discovered_per(&self, bucket: i64, since: i64) -> Result<Vec<(i64, u64)>, StoreError> {
        let bucket = bucket.max(1);
        let mut q = self
            .conn
            .prepare_cached(
                "SELECT first_seen / ?1 * ?1 AS b, count(*) FROM torrents
                 WHERE first_seen >= ?2 GROUP BY b ORDER BY b",
            )
            .map_err(db)?;
        let rows = q
            .query_map(params![bucket, since], |r| {
                Ok((r.get::<_, i64>(0)?, u(r.get(1)?)))
            })
            .map_err(db)?;
        rows.collect::<Result<_, _>>().map_err(db)
    }

    fn search(&self, q: &SearchQuery) -> Result<Vec<SearchHit>, StoreError> {
        let terms = search_terms(&q.text);
        if terms.is_empty() && !q.text.trim().is_empty() {
            return Ok(Vec::new()); // only punctuation: nothing to look for
        }
        let mut args: Vec<rusqlite::types::Value> = Vec::new();
        let mut arg = |v: rusqlite::types::Value| {
            args.push(v);
            format!("?{}", args.len())
        };
        let mut sql = String::from(
            "SELECT t.info_hash, t.name, t.total_size, t.file_count, t.first_seen,
                    t.seeders, t.leechers, t.scraped_at ",
        );
        if terms.is_empty() {
            sql.push_str("FROM torrents t WHERE t.name IS NOT NULL");
        } else {
            // Each word quoted: FTS5 reads it as a plain string, never as syntax.
            let fts = terms
                .iter()
                .map(|t| format!("\"{t}\""))
                .collect::<Vec<_>>()
                .join(" ");
            // The newest MAX_RANKED matches (FTS5 walks them in rowid order and stops), scored
            // there: ranking every match of a common word would cost a scan of them all.
            let (m, k) = (arg(fts.into()), arg((super::MAX_RANKED as i64).into()));
            sql.push_str(&format!(
                "FROM (SELECT rowid AS rid, bm25(search, 10.0, 1.0) AS score FROM search
                       WHERE search MATCH {m} ORDER BY rowid DESC LIMIT {k}) s
                 JOIN torrents t ON t.id = s.rid WHERE 1"
            ));
        }
        if let Some(v) = q.min_size {
            sql.push_str(&format!(" AND t.total_size >= {}", arg((v as i64).into())));
        }
        if let Some(v) = q.max_size {
            sql.push_str(&format!(" AND t.total_size <= {}", arg((v as i64).into())));
        }
        if let Some(v) = q.min_seeders {
            sql.push_str(&format!(" AND t.seeders >= {}", arg((v as i64).into())));
        }
        if let Some(v) = q.since {
            sql.push_str(&format!(" AND t.first_seen >= {}", arg(v.into())));
        }
        let dir = if q.ascending { "ASC" } else { "DESC" };
        let order = match q.sort {
            Sort::Relevance if terms.is_empty() => "t.first_seen DESC".to_string(),
            Sort::Relevance => "s.score".to_string(),
            Sort::FirstSeen => format!("t.first_seen {dir}"),
            Sort::Size => format!("t.total_size {dir}"),
            Sort::Seeders => format!("t.seeders IS NULL, t.seeders {dir}"),
        };
        let limit = arg((q.limit as i64).into());
        let offset = arg((q.offset as i64).into());
        sql.push_str(&format!(
            " ORDER BY {order}, t.id LIMIT {limit} OFFSET {offset}"
        ));
        let mut stmt = self.conn.prepare_cached(&sql).map_err(db)?;
        let rows = stmt
            .query_map(rusqlite::params_from_iter(args.iter()), |r| {
                Ok((
                    r.get::<_, Vec<u8>>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, i64>(4)?,
                    swarm(r.get(5)?, r.get(6)?, r.get(7)?),
                ))
            })
            .map_err(db)?;
        let mut out = Vec::new();
        for r in rows {
            let (ih, name, size, files, first_seen, swarm) = r.map_err(db)?;
            if let Some(info_hash) = Id::from_slice(&ih) {
                out.push(SearchHit {
                    info_hash,
                    name,
                    size: u(size),
                    files: u(files),
                    first_seen,
                    swarm,
                });
            }
        }
        Ok(out)
    }

    fn torrent(&self, info_hash: &Id) -> Result<Option<TorrentRecord>, StoreError> {
        let row = self
            .conn
            .query_row(
                "SELECT id, first_seen, last_seen, seen_count, sources, name, total_size,
                        file_count, piece_length, private, meta_version, fetched_at,
                        seeders, leechers, scraped_at, last_seeded
                 FROM torrents WHERE info_hash = ?1",
                [&info_hash.0[..]],
                |r| {
                    let name: Option<String> = r.get(5)?;
                    let meta = match name {
                        Some(name) => Some(RecordMetadata {
                            name,
                            size: u(r.get(6)?),
                            file_count: u(r.get(7)?),
                            piece_length: u(r.get(8)?),
                            private: r.get::<_, i64>(9)? != 0,
                            meta_version: r.get::<_, i64>(10)? as u8,
                            fetched_at: r.get(11)?,
                            files: Vec::new(),
                        }),
                        None => None,
                    };
                    Ok((
                        r.get::<_, i64>(0)?,
                        TorrentRecord {
                            info_hash: *info_hash,
                            first_seen: r.get(1)?,
                            last_seen: r.get(2)?,
                            seen_count: r.get(3)?,
                            sources: r.get(4)?,
                            metadata: meta,
                            swarm: swarm(r.get(12)?, r.get(13)?, r.get(14)?),
                            last_seeded: r.get(15)?,
                        },
                    ))
                },
            )
            .optional()
            .map_err(db)?;
        let Some((id, mut rec)) = row else {
            return Ok(None);
        };
        if let Some(m) = &mut rec.metadata {
            let mut q = self
                .conn
                .prepare_cached("SELECT path, length FROM files WHERE torrent_id = ?1 ORDER BY idx")
                .map_err(db)?;
            let files = q
                .query_map([id], |r| {
                    Ok(FileEntry {
                        path: r.get(0)?,
                        length: u(r.get(1)?),
                    })
                })
                .map_err(db)?;
            for f in files {
                m.files.push(f.map_err(db)?);
            }
        }
        Ok(Some(rec))
    }

    fn info_dict(&self, info_hash: &Id) -> Result<Option<Vec<u8>>, StoreError> {
        self.conn
            .prepare_cached(
                "SELECT i.info FROM torrents t JOIN infos i ON i.torrent_id = t.id
                 WHERE t.info_hash = ?1",
            )
            .and_then(|mut q| q.query_row([&info_hash.0[..]], |r| r.get(0)).optional())
            .map_err(db)
    }

    fn dump(&self, each: &mut dyn FnMut(Dump) -> std::io::Result<()>) -> Result<(), StoreError> {
        let mut q = self
            .conn
            .prepare(
                "SELECT t.id, t.info_hash, t.name, t.total_size, t.first_seen, t.last_seen,
                        t.seeders, t.leechers, t.scraped_at, f.path, f.length
                 FROM torrents t LEFT JOIN files f ON f.torrent_id = t.id
                 WHERE t.name IS NOT NULL ORDER BY t.id, f.idx",
            )
            .map_err(db)?;
        let mut rows = q.query([]).map_err(db)?;
        let mut cur: Option<(i64, Dump)> = None;
        let mut emit = |d: Dump| -> Result<bool, StoreError> {
            match each(d) {
                Ok(()) => Ok(true),
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
                Err(e) => Err(StoreError::Db(format!("writing: {e}"))),
            }
        };
        while let Some(r) = rows.next().map_err(db)? {
            let id: i64 = r.get(0).map_err(db)?;
            if cur.as_ref().is_none_or(|c| c.0 != id) {
                if let Some((_, d)) = cur.take() {
                    if !emit(d)? {
                        return Ok(());
                    }
                }
                let ih: Vec<u8> = r.get(1).map_err(db)?;
                let Some(info_hash) = Id::from_slice(&ih) else {
                    continue;
                };
                cur = Some((
                    id,
                    Dump {
                        info_hash,
                        name: r.get(2).map_err(db)?,
                        size: u(r.get(3).map_err(db)?),
                        first_seen: r.get(4).map_err(db)?,
                        last_seen: r.get(5).map_err(db)?,
                        swarm: swarm(
                            r.get(6).map_err(db)?,
                            r.get(7).map_err(db)?,
                            r.get(8).map_err(db)?,
                        ),
                        files: Vec::new(),
                    },
                ));
            }
            if let (Some((_, d)), Some(path)) =
                (&mut cur, r.get::<_, Option<String>>(9).map_err(db)?)
            {
                d.files.push(FileEntry {
                    path,
                    length: u(r.get(10).map_err(db)?),
                });
            }
        }
        if let Some((_, d)) = cur {
            emit(d)?;
        }
        Ok(())
    }

    fn export(
        &self,
        since: Option<i64>,
        each: &mut dyn FnMut(ExportRow) -> std::io::Result<()>,
    ) -> Result<(), StoreError> {
        let mut q = self
            .conn
            .prepare(
                "SELECT info_hash, name, total_size, file_count, first_seen FROM torrents
                 WHERE first_seen >= ?1 ORDER BY first_seen, id",
            )
            .map_err(db)?;
        let mut rows = q.query([since.unwrap_or(i64::MIN)]).map_err(db)?;
        while let Some(r) = rows.next().map_err(db)? {
            let ih: Vec<u8> = r.get(0).map_err(db)?;
            let Some(info_hash) = Id::from_slice(&ih) else {
                continue;
            };
            let row = ExportRow {
                info_hash,
                name: r.get(1).map_err(db)?,
                size: r.get::<_, Option<i64>>(2).map_err(db)?.map(u),
                files: r.get::<_, Option<i64>>(3).map_err(db)?.map(u),
                discovered_at: r.get(4).map_err(db)?,
            };
            if let Err(e) = each(row) {
                if e.kind() == std::io::ErrorKind::BrokenPipe {
                    return Ok(());
                }
                return Err(StoreError::Db(format!("writing: {e}")));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("dhtkit-sqlite-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d.join("crawl.sqlite")
    }

    #[test]
    fn a_database_of_the_first_schema_is_upgraded_with_its_rows() {
        let p = temp("upgrade");
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        {
            let c = Connection::open(&p).unwrap();
            c.execute_batch(MIGRATIONS[0]).unwrap();
            c.execute(
                "INSERT INTO torrents (info_hash, first_seen, last_seen, seen_count, sources,
                    name, total_size, file_count, piece_length, private, meta_version, fetched_at)
                 VALUES (?1, 10, 20, 2, 1, 'old torrent', 5, 1, 16384, 0, 1, 15)",
                [&[7u8; 20][..]],
            )
            .unwrap();
            c.execute(
                "INSERT INTO search (rowid, name, paths) VALUES (1, 'old torrent', 'f\n')",
                [],
            )
            .unwrap();
            c.pragma_update(None, "user_version", 1).unwrap();
        }
        let err = SqliteStore::open_read_only(&p).unwrap_err().to_string();
        assert!(err.contains("older dhtkit (schema 1 of"), "{err}");
        let mut s = SqliteStore::open(&p).unwrap();
        let t = s.torrent(&Id([7; 20])).unwrap().unwrap();
        assert_eq!(t.metadata.unwrap().name, "old torrent");
        assert_eq!(t.swarm, None);
        // Named before the upgrade: due for its first scrape.
        assert_eq!(s.due_scrapes(100, 10).unwrap().len(), 1);
        assert_eq!(
            s.search(&SearchQuery::words("old", 10)).unwrap()[0].name,
            "old torrent"
        );
        drop(s);
        assert!(SqliteStore::open_read_only(&p).is_ok());
    }

    #[test]
    fn bad_files_are_refused() {
        let p = temp("corrupt");
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(
            &p,
            b"this is not a database, just some text that is long enough",
        )
        .unwrap();
        assert!(matches!(
            SqliteStore::open(&p),
            Err(StoreError::Open { .. })
        ));
        assert!(matches!(
            SqliteStore::open_read_only(&p),
            Err(StoreError::Open { .. })
        ));
        let missing = temp("missing");
        assert!(SqliteStore::open_read_only(&missing).is_err());
    }
}
