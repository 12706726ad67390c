//! The PostgreSQL store, for several crawlers sharing one index.
//!
//! Same model as SQLite: `torrents` (one row per infohash; `first_crawler` says which crawler
//! saw it first, `crawler` which fetched its metadata) and `files`; full-text search through a
//! `tsvector` column with a GIN index. Batches are multi-row upserts through `UNNEST`, sorted
//! by infohash so that two crawlers writing overlapping batches take row locks in the same
//! order (no deadlocks); `ON CONFLICT` keeps one row per infohash whoever writes first.
//! Migrations are numbered and run under an advisory lock, so crawlers starting together
//! migrate once.

use std::sync::Mutex;

use dhtkit_proto::Id;
use postgres::{Client, NoTls};

use super::{
    search_terms, Batch, DbSize, Due, Dump, ExportRow, ImportMark, RecordMetadata, SearchHit,
    SearchQuery, Sort, Store, StoreError, StoreRead, StoreStats, Swarm, TorrentRecord,
};
use crate::metadata::FileEntry;

/// The schema, one step per version.
const MIGRATIONS: &[&str] = &[
    "
    CREATE TABLE torrents (
        id BIGSERIAL PRIMARY KEY,
        info_hash BYTEA NOT NULL UNIQUE,
        first_seen BIGINT NOT NULL,
        last_seen BIGINT NOT NULL,
        seen_count BIGINT NOT NULL,
        sources INTEGER NOT NULL,
        first_crawler TEXT,
        name TEXT,
        total_size BIGINT,
        file_count BIGINT,
        piece_length BIGINT,
        private BOOLEAN,
        meta_version SMALLINT,
        fetched_at BIGINT,
        crawler TEXT,
        search TSVECTOR
    );
    CREATE INDEX torrents_first_seen ON torrents (first_seen);
    CREATE INDEX torrents_missing ON torrents (last_seen) WHERE name IS NULL;
    CREATE INDEX torrents_search ON torrents USING GIN (search);
    CREATE TABLE files (
        torrent_id BIGINT NOT NULL REFERENCES torrents (id),
        idx INTEGER NOT NULL,
        path TEXT NOT NULL,
        length BIGINT NOT NULL,
        PRIMARY KEY (torrent_id, idx)
    );
",
    "
    ALTER TABLE torrents ADD COLUMN seeders BIGINT, ADD COLUMN leechers BIGINT,
        ADD COLUMN scraped_at BIGINT, ADD COLUMN last_seeded BIGINT, ADD COLUMN next_scrape BIGINT;
    UPDATE torrents SET next_scrape = fetched_at WHERE name IS NOT NULL;
    CREATE INDEX torrents_next_scrape ON torrents (next_scrape) WHERE next_scrape IS NOT NULL;
    CREATE INDEX torrents_seeders ON torrents (seeders) WHERE seeders IS NOT NULL;
    CREATE INDEX torrents_dead ON torrents ((coalesce(last_seeded, first_seen)))
        WHERE scraped_at IS NOT NULL;
    CREATE INDEX torrents_named_first_seen ON torrents (first_seen) WHERE name IS NOT NULL;
",
    "
    CREATE TABLE imports (
        source TEXT PRIMARY KEY,
        position BIGINT NOT NULL,
        rows BIGINT NOT NULL,
        updated_at BIGINT NOT NULL
    );
",
    "
    CREATE INDEX torrents_evict ON torrents ((coalesce(last_seeded, fetched_at)))
        WHERE name IS NOT NULL;
",
    "
    CREATE TABLE infos (
        torrent_id BIGINT PRIMARY KEY REFERENCES torrents (id),
        info BYTEA NOT NULL
    );
",
];

/// An arbitrary key for the migration lock.
const MIGRATION_LOCK: i64 = 0x6468_746b_6974;

/// A PostgreSQL database of discovered torrents.
pub struct PostgresStore {
    client: Mutex<Conn>,
    crawler: String,
    url: String,
}

/// The connection, given up only when the store is dropped.
struct Conn(Option<Client>);

impl std::ops::Deref for Conn {
    type Target = Client;
    fn deref(&self) -> &Client {
        self.0
            .as_ref()
            .expect("the connection lives as long as the store")
    }
}

impl std::ops::DerefMut for Conn {
    fn deref_mut(&mut self) -> &mut Client {
        self.0
            .as_mut()
            .expect("the connection lives as long as the store")
    }
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        // The blocking client closes its connection on a runtime of its own, which panics on
        // a thread that drives async tasks ("Cannot start a runtime from within a runtime"):
        // a store dropped there (a command's end, a signal's) hands its client to a thread
        // of its own to close.
        let client = self
            .client
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .0
            .take();
        if let Some(c) = client {
            if tokio::runtime::Handle::try_current().is_ok() {
                let _ = std::thread::spawn(move || drop(c)).join();
            } else {
                drop(c);
            }
        }
    }
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("crawler", &self.crawler)
            .finish()
    }
}

fn db(e: postgres::Error) -> StoreError {
    StoreError::Db(pg_message(&e))
}

/// The server's own words when it sent an error (the client's `Display` says only "db error").
fn pg_message(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(d) => format!("{} ({})", d.message(), d.code().code()),
        None => e.to_string(),
    }
}

/// The URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let userinfo = &url[s + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{user}{}", &url[..s + 3], &url[at..])
        }
        _ => url.to_string(),
    }
}

/// Letters and digits only, so that PostgreSQL's parser splits names like
/// `Show.S01E02.1080p` into words rather than reading them as one file name.
fn words(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_alphanumeric() { c } else { ' ' })
        .collect()
}

impl PostgresStore {
    /// Connects to `url` (`postgres://USER[:PASSWORD]@HOST[:PORT]/DB`) and brings the schema
    /// up to date. `crawler` names this crawler in the rows it writes.
    pub fn open(url: &str, crawler: &str) -> Result<PostgresStore, StoreError> {
        let open_err = |reason: String| StoreError::Open {
            path: redact(url).into(),
            reason,
        };
        let mut client = Client::connect(url, NoTls).map_err(|e| open_err(pg_message(&e)))?;
        migrate(&mut client).map_err(|e| match e {
            StoreError::Db(reason) => open_err(reason),
            other => other,
        })?;
        Ok(PostgresStore {
            client: Mutex::new(Conn(Some(client))),
            crawler: crawler.to_string(),
            url: redact(url),
        })
    }

    /// Connects for reading only (search, show, export, the web page): every transaction of
    /// this connection is read-only.
    pub fn open_read_only(url: &str) -> Result<PostgresStore, StoreError> {
        let open_err = |reason: String| StoreError::Open {
            path: redact(url).into(),
            reason,
        };
        let mut client = Client::connect(url, NoTls).map_err(|e| open_err(pg_message(&e)))?;
        client
            .batch_execute("SET default_transaction_read_only = on")
            .map_err(|e| open_err(pg_message(&e)))?;
        let version = schema_version(&mut client).map_err(|e| open_err(pg_message(&e)))?;
        if version == 0 {
            return Err(open_err("not a dhtkit database".into()));
        }
        if version < MIGRATIONS.len() as i64 {
            return Err(open_err(format!(
                "made by an older dhtkit (schema {version} of {}): open it once for writing \
                 (dhtkit crawl, import or prune) to upgrade it",
                MIGRATIONS.len()
            )));
        }
        Ok(PostgresStore {
            client: Mutex::new(Conn(Some(client))),
            crawler: String::new(),
            url: redact(url),
        })
    }

    fn client(&self) -> std::sync::MutexGuard<'_, Conn> {
        self.client.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The schema version, 0 for a database dhtkit never touched (reads only).
fn schema_version(c: &mut Client) -> Result<i64, postgres::Error> {
    let exists: bool = c
        .query_one("SELECT to_regclass('dhtkit_schema') IS NOT NULL", &[])?
        .get(0);
    if !exists {
        return Ok(0);
    }
    let row = c.query_one("SELECT coalesce(max(version), 0) FROM dhtkit_schema", &[])?;
    Ok(row.get(0))
}

fn migrate(c: &mut Client) -> Result<(), StoreError> {
    let mut tx = c.transaction().map_err(db)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .map_err(db)?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS dhtkit_schema (version BIGINT NOT NULL)")
        .map_err(db)?;
    let version: i64 = tx
        .query_one("SELECT coalesce(max(version), 0) FROM dhtkit_schema", &[])
        .map_err(db)?
        .get(0);
    let known = MIGRATIONS.len() as i64;
    if version > known {
        return Err(StoreError::TooNew {
            path: "PostgreSQL database".into(),
            found: version,
            known,
        });
    }
    for (i, step) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        tx.batch_execute(step).map_err(db)?;
        tx.execute(
            "INSERT INTO dhtkit_schema (version) VALUES ($1)",
            &[&(i as i64 + 1)],
        )
        .map_err(db)?;
    }
    tx.commit().map_err(db)
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

/// Fills in the metadata of `torrents` (sorted, one per infohash) in three statements: make
/// sure each has a row, set the metadata where none was set yet, add the files of the rows
/// that were set.
fn write_metadata(
    tx: &mut postgres::Transaction<'_>,
    torrents: &[&super::Fetched],
    crawler: &str,
) -> Result<(), StoreError> {
    let ih: Vec<&[u8]> = torrents.iter().map(|t| &t.info_hash.0[..]).collect();
    let at: Vec<i64> = torrents.iter().map(|t| t.at).collect();
    tx.execute(
        "INSERT INTO torrents (info_hash, first_seen, last_seen, seen_count, sources, first_crawler)
         SELECT ih, a, a, 0, 0, $3 FROM UNNEST($1::bytea[], $2::int8[]) AS t (ih, a)
         ON CONFLICT (info_hash) DO NOTHING",
        &[&ih, &at, &crawler],
    )
    .map_err(db)?;
    let name: Vec<&str> = torrents.iter().map(|t| t.info.name.as_str()).collect();
    let size: Vec<i64> = torrents.iter().map(|t| t.info.total_size as i64).collect();
    let files: Vec<i64> = torrents.iter().map(|t| t.info.file_count as i64).collect();
    let plen: Vec<i64> = torrents
        .iter()
        .map(|t| t.info.piece_length as i64)
        .collect();
    let private: Vec<bool> = torrents.iter().map(|t| t.info.private).collect();
    let version: Vec<i16> = torrents
        .iter()
        .map(|t| t.info.meta_version as i16)
        .collect();
    let name_words: Vec<String> = torrents.iter().map(|t| words(&t.info.name)).collect();
    let path_words: Vec<String> = torrents
        .iter()
        .map(|t| t.info.files.iter().map(|f| words(&f.path) + " ").collect())
        .collect();
    let set = tx
        .query(
            "UPDATE torrents t SET name = u.name, total_size = u.size, file_count = u.files,
                piece_length = u.plen, private = u.private, meta_version = u.version,
                fetched_at = u.at, next_scrape = u.at, crawler = $11,
                search = setweight(to_tsvector('simple', u.nw), 'A')
                      || setweight(to_tsvector('simple', u.pw), 'B')
             FROM UNNEST($1::bytea[], $2::text[], $3::int8[], $4::int8[], $5::int8[],
                         $6::bool[], $7::int2[], $8::int8[], $9::text[], $10::text[])
                AS u (ih, name, size, files, plen, private, version, at, nw, pw)
             WHERE t.info_hash = u.ih AND t.name IS NULL
             RETURNING t.info_hash, t.id",
            &[
                &ih,
                &name,
                &size,
                &files,
                &plen,
                &private,
                &version,
                &at,
                &name_words,
                &path_words,
                &crawler,
            ],
        )
        .map_err(db)?;
    // Rows already named (by us earlier, or by another crawler) were left alone.
    let ids: std::collections::HashMap<&[u8], i64> = set
        .iter()
        .map(|r| (r.get::<_, &[u8]>(0), r.get(1)))
        .collect();
    let (mut fid, mut fidx, mut fpath, mut flen) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for t in torrents {
        let Some(&id) = ids.get(&t.info_hash.0[..]) else {
            continue;
        };
        for (n, f) in t.info.files.iter().enumerate() {
            fid.push(id);
            fidx.push(n as i32);
            fpath.push(f.path.as_str());
            flen.push(f.length as i64);
        }
    }
    if !fid.is_empty() {
        tx.execute(
            "INSERT INTO files (torrent_id, idx, path, length)
             SELECT * FROM UNNEST($1::int8[], $2::int4[], $3::text[], $4::int8[])",
            &[&fid, &fidx, &fpath, &flen],
        )
        .map_err(db)?;
    }
    let (mut did, mut dict): (Vec<i64>, Vec<&[u8]>) = (Vec::new(), Vec::new());
    for t in torrents {
        if let (Some(&id), Some(d)) = (ids.get(&t.info_hash.0[..]), &t.info_dict) {
            did.push(id);
            dict.push(d);
        }
    }
    if !did.is_empty() {
        tx.execute(
            "INSERT INTO infos (torrent_id, info)
             SELECT * FROM UNNEST($1::int8[], $2::bytea[]) ON CONFLICT DO NOTHING",
            &[&did, &dict],
        )
        .map_err(db)?;
    }
    Ok(())
}

impl Store for PostgresStore {
    fn write(&mut self, batch: &Batch) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let crawler = self.crawler.clone();
        let mut c = self.client();
        let mut tx = c.transaction().map_err(db)?;
        let mut sightings: Vec<_> = batch.sightings.iter().collect();
        sightings.sort_by_key(|s| s.info_hash);
        if !sightings.is_empty() {
            let ih: Vec<&[u8]> = sightings.iter().map(|s| &s.info_hash.0[..]).collect();
            let first: Vec<i64> = sightings.iter().map(|s| s.first).collect();
            let last: Vec<i64> = sightings.iter().map(|s| s.last).collect();
            let count: Vec<i64> = sightings.iter().map(|s| s.count).collect();
            let sources: Vec<i32> = sightings.iter().map(|s| s.sources as i32).collect();
            tx.execute(
                "INSERT INTO torrents (info_hash, first_seen, last_seen, seen_count, sources, first_crawler)
                 SELECT ih, f, l, c, s, $6 FROM UNNEST($1::bytea[], $2::int8[], $3::int8[], $4::int8[], $5::int4[])
                    AS t (ih, f, l, c, s)
                 ON CONFLICT (info_hash) DO UPDATE SET
                    first_seen = LEAST(torrents.first_seen, EXCLUDED.first_seen),
                    last_seen = GREATEST(torrents.last_seen, EXCLUDED.last_seen),
                    seen_count = torrents.seen_count + EXCLUDED.seen_count,
                    sources = torrents.sources | EXCLUDED.sources",
                &[&ih, &first, &last, &count, &sources, &crawler],
            )
            .map_err(db)?;
        }
        let mut torrents: Vec<_> = batch.torrents.iter().collect();
        torrents.sort_by_key(|t| t.info_hash);
        torrents.dedup_by_key(|t| t.info_hash);
        if !torrents.is_empty() {
            write_metadata(&mut tx, &torrents, &crawler)?;
        }
        if let Some(m) = &batch.import_mark {
            tx.execute(
                "INSERT INTO imports (source, position, rows, updated_at)
                 VALUES ($1, $2, $3, extract(epoch FROM now())::bigint)
                 ON CONFLICT (source) DO UPDATE SET position = EXCLUDED.position,
                    rows = EXCLUDED.rows, updated_at = EXCLUDED.updated_at",
                &[&m.source, &m.position, &(m.rows as i64)],
            )
            .map_err(db)?;
        }
        let mut scrapes: Vec<_> = batch.scrapes.iter().collect();
        scrapes.sort_by_key(|s| s.info_hash);
        scrapes.dedup_by_key(|s| s.info_hash);
        if !scrapes.is_empty() {
            let ih: Vec<&[u8]> = scrapes.iter().map(|s| &s.info_hash.0[..]).collect();
            let seeders: Vec<i64> = scrapes.iter().map(|s| s.swarm.seeders as i64).collect();
            let leechers: Vec<i64> = scrapes.iter().map(|s| s.swarm.leechers as i64).collect();
            let at: Vec<i64> = scrapes.iter().map(|s| s.swarm.at).collect();
            let next: Vec<i64> = scrapes.iter().map(|s| s.next_at).collect();
            tx.execute(
                "UPDATE torrents t SET seeders = u.s, leechers = u.l, scraped_at = u.a,
                    last_seeded = CASE WHEN u.s > 0 THEN u.a ELSE t.last_seeded END,
                    next_scrape = u.n
                 FROM UNNEST($1::bytea[], $2::int8[], $3::int8[], $4::int8[], $5::int8[])
                    AS u (ih, s, l, a, n)
                 WHERE t.info_hash = u.ih",
                &[&ih, &seeders, &leechers, &at, &next],
            )
            .map_err(db)?;
        }
        tx.commit().map_err(db)
    }

    fn missing_metadata(&mut self, limit: usize) -> Result<Vec<Id>, StoreError> {
        let rows = self
            .client()
            .query(
                "SELECT info_hash FROM torrents WHERE name IS NULL ORDER BY last_seen DESC LIMIT $1",
                &[&(limit as i64)],
            )
            .map_err(db)?;
        Ok(rows
            .iter()
            .filter_map(|r| Id::from_slice(r.get::<_, &[u8]>(0)))
            .collect())
    }

    fn stats(&mut self) -> Result<StoreStats, StoreError> {
        self.totals()
    }

    fn due_scrapes(&mut self, now: i64, limit: usize) -> Result<Vec<Due>, StoreError> {
        let rows = self
            .client()
            .query(
                "SELECT info_hash, first_seen FROM torrents
                 WHERE next_scrape IS NOT NULL AND next_scrape <= $1
                 ORDER BY next_scrape LIMIT $2",
                &[&now, &(limit as i64)],
            )
            .map_err(db)?;
        Ok(rows
            .iter()
            .filter_map(|r| {
                Some(Due {
                    info_hash: Id::from_slice(r.get::<_, &[u8]>(0))?,
                    first_seen: r.get(1),
                })
            })
            .collect())
    }

    fn size(&mut self) -> Result<DbSize, StoreError> {
        let r = self
            .client()
            .query_one(
                "SELECT pg_database_size(current_database()),
                    (SELECT n_live_tup FROM pg_stat_user_tables WHERE relname = 'torrents'
                       AND schemaname = current_schema())",
                &[],
            )
            .map_err(db)?;
        Ok(DbSize {
            bytes: u(r.get(0)),
            wal: 0,
            used: None,
            rows_estimate: r.get::<_, Option<i64>>(1).map(u),
        })
    }

    fn evict(&mut self, rows: usize) -> Result<u64, StoreError> {
        let mut c = self.client();
        let mut tx = c.transaction().map_err(db)?;
        let limit = rows as i64;
        let mut ids: Vec<i64> = tx
            .query(
                "SELECT id FROM torrents WHERE name IS NULL ORDER BY last_seen LIMIT $1
                 FOR UPDATE SKIP LOCKED",
                &[&limit],
            )
            .map_err(db)?
            .iter()
            .map(|r| r.get(0))
            .collect();
        if ids.len() < rows {
            let more = (rows - ids.len()) as i64;
            ids.extend(
                tx.query(
                    "SELECT id FROM torrents WHERE name IS NOT NULL
                     ORDER BY coalesce(last_seeded, fetched_at) LIMIT $1 FOR UPDATE SKIP LOCKED",
                    &[&more],
                )
                .map_err(db)?
                .iter()
                .map(|r| r.get::<_, i64>(0)),
            );
        }
        tx.execute("DELETE FROM files WHERE torrent_id = ANY($1)", &[&ids])
            .map_err(db)?;
        tx.execute("DELETE FROM infos WHERE torrent_id = ANY($1)", &[&ids])
            .map_err(db)?;
        let n = tx
            .execute("DELETE FROM torrents WHERE id = ANY($1)", &[&ids])
            .map_err(db)?;
        tx.commit().map_err(db)?;
        Ok(n)
    }

    fn compact(&mut self) -> Result<(), StoreError> {
        // One statement at a time: VACUUM cannot run inside the implicit transaction of a
        // multi-statement batch.
        let mut c = self.client();
        c.batch_execute("VACUUM torrents").map_err(db)?;
        c.batch_execute("VACUUM files").map_err(db)
    }

    fn import_position(&mut self, source: &str) -> Result<Option<ImportMark>, StoreError> {
        Ok(self
            .client()
            .query_opt(
                "SELECT position, rows FROM imports WHERE source = $1",
                &[&source],
            )
            .map_err(db)?
            .map(|r| ImportMark {
                source: source.to_string(),
                position: r.get(0),
                rows: u(r.get(1)),
            }))
    }

    fn prune_dead(&mut self, before: i64) -> Result<u64, StoreError> {
        let mut gone = 0u64;
        let mut c = self.client();
        // A thousand at a time, each in its own transaction: crawlers writing alongside wait
        // for one chunk, not for the whole prune.
        loop {
            let mut tx = c.transaction().map_err(db)?;
            let ids: Vec<i64> = tx
                .query(
                    "SELECT id FROM torrents WHERE scraped_at IS NOT NULL
                       AND coalesce(last_seeded, first_seen) < $1
                     ORDER BY id LIMIT 1000 FOR UPDATE SKIP LOCKED",
                    &[&before],
                )
                .map_err(db)?
                .iter()
                .map(|r| r.get(0))
                .collect();
            if ids.is_empty() {
                return Ok(gone);
            }
            tx.execute("DELETE FROM files WHERE torrent_id = ANY($1)", &[&ids])
                .map_err(db)?;
            tx.execute("DELETE FROM infos WHERE torrent_id = ANY($1)", &[&ids])
                .map_err(db)?;
            let n = tx
                .execute("DELETE FROM torrents WHERE id = ANY($1)", &[&ids])
                .map_err(db)?;
            tx.commit().map_err(db)?;
            gone += n;
        }
    }
}

impl StoreRead for PostgresStore {
    fn totals(&self) -> Result<StoreStats, StoreError> {
        let r = self
            .client()
            .query_one("SELECT count(*), count(name) FROM torrents", &[])
            .map_err(db)?;
        Ok(StoreStats {
            infohashes: u(r.get(0)),
            with_metadata: u(r.get(1)),
        })
    }

    fn discovered_per(&self, bucket: i64, since: i64) -> Result<Vec<(i64, u64)>, StoreError> {
        let bucket = bucket.max(1);
        let rows = self
            .client()
            .query(
                "SELECT first_seen / $1 * $1 AS b, count(*) FROM torrents
                 WHERE first_seen >= $2 GROUP BY b ORDER BY b",
                &[&bucket, &since],
            )
            .map_err(db)?;
        Ok(rows.iter().map(|r| (r.get(0), u(r.get(1)))).collect())
    }

    fn search(&self, q: &SearchQuery) -> Result<Vec<SearchHit>, StoreError> {
        let terms = search_terms(&q.text);
        if terms.is_empty() && !q.text.trim().is_empty() {
            return Ok(Vec::new()); // only punctuation: nothing to look for
        }
        let mut args: Vec<Box<dyn postgres::types::ToSql + Sync>> = Vec::new();
        let mut arg = |v: Box<dyn postgres::types::ToSql + Sync>| {
            args.push(v);
            format!("${}", args.len())
        };
        const COLUMNS: &str = "id, info_hash, name, total_size, file_count, first_seen, seeders,
                    leechers, scraped_at";
        let mut sql = String::from(
            "SELECT t.info_hash, t.name, t.total_size, t.file_count, t.first_seen, t.seeders,
                    t.leechers, t.scraped_at",
        );
        if terms.is_empty() {
            sql.push_str(" FROM torrents t WHERE t.name IS NOT NULL");
        } else {
            // Words only (letters and digits), each a plain term: nothing is read as syntax.
            // The newest MAX_RANKED matches are ranked, not every match of a common word;
            // they carry every column out, so no second pass over the table is planned.
            let a = arg(Box::new(terms.join(" ")));
            let k = arg(Box::new(super::MAX_RANKED as i64));
            sql.push_str(&format!(
                " FROM (SELECT {COLUMNS}, ts_rank(search, plainto_tsquery('simple', {a})) AS score
                        FROM torrents WHERE search @@ plainto_tsquery('simple', {a})
                        ORDER BY id DESC LIMIT {k}) t WHERE true"
            ));
        }
        if let Some(v) = q.min_size {
            sql.push_str(&format!(" AND t.total_size >= {}", arg(Box::new(v as i64))));
        }
        if let Some(v) = q.max_size {
            sql.push_str(&format!(" AND t.total_size <= {}", arg(Box::new(v as i64))));
        }
        if let Some(v) = q.min_seeders {
            sql.push_str(&format!(" AND t.seeders >= {}", arg(Box::new(v as i64))));
        }
        if let Some(v) = q.since {
            sql.push_str(&format!(" AND t.first_seen >= {}", arg(Box::new(v))));
        }
        let dir = if q.ascending { "ASC" } else { "DESC" };
        let order = match q.sort {
            Sort::Relevance if terms.is_empty() => "t.first_seen DESC".to_string(),
            Sort::Relevance => "t.score DESC".to_string(),
            Sort::FirstSeen => format!("t.first_seen {dir}"),
            Sort::Size => format!("t.total_size {dir}"),
            Sort::Seeders => format!("t.seeders {dir} NULLS LAST"),
        };
        let limit = arg(Box::new(q.limit as i64));
        let offset = arg(Box::new(q.offset as i64));
        sql.push_str(&format!(
            " ORDER BY {order}, t.id LIMIT {limit} OFFSET {offset}"
        ));
        let params: Vec<&(dyn postgres::types::ToSql + Sync)> =
            args.iter().map(|b| &**b as _).collect();
        let rows = self.client().query(&sql, &params).map_err(db)?;
        Ok(rows
            .iter()
            .filter_map(|r| {
                Some(SearchHit {
                    info_hash: Id::from_slice(r.get::<_, &[u8]>(0))?,
                    name: r.get(1),
                    size: u(r.get(2)),
                    files: u(r.get(3)),
                    first_seen: r.get(4),
                    swarm: swarm(r.get(5), r.get(6), r.get(7)),
                })
            })
            .collect())
    }

    fn torrent(&self, info_hash: &Id) -> Result<Option<TorrentRecord>, StoreError> {
        let mut c = self.client();
        let Some(r) = c
            .query_opt(
                "SELECT id, first_seen, last_seen, seen_count, sources, name, total_size,
                        file_count, piece_length, private, meta_version, fetched_at,
                        seeders, leechers, scraped_at, last_seeded
                 FROM torrents WHERE info_hash = $1",
                &[&&info_hash.0[..]],
            )
            .map_err(db)?
        else {
            return Ok(None);
        };
        let id: i64 = r.get(0);
        let metadata = match r.get::<_, Option<String>>(5) {
            Some(name) => {
                let files = c
                    .query(
                        "SELECT path, length FROM files WHERE torrent_id = $1 ORDER BY idx",
                        &[&id],
                    )
                    .map_err(db)?
                    .iter()
                    .map(|f| FileEntry {
                        path: f.get(0),
                        length: u(f.get(1)),
                    })
                    .collect();
                Some(RecordMetadata {
                    name,
                    size: u(r.get::<_, Option<i64>>(6).unwrap_or(0)),
                    file_count: u(r.get::<_, Option<i64>>(7).unwrap_or(0)),
                    piece_length: u(r.get::<_, Option<i64>>(8).unwrap_or(0)),
                    private: r.get::<_, Option<bool>>(9).unwrap_or(false),
                    meta_version: r.get::<_, Option<i16>>(10).unwrap_or(1) as u8,
                    fetched_at: r.get::<_, Option<i64>>(11).unwrap_or(0),
                    files,
                })
            }
            None => None,
        };
        Ok(Some(TorrentRecord {
            info_hash: *info_hash,
            first_seen: r.get(1),
            last_seen: r.get(2),
            seen_count: r.get(3),
            sources: r.get::<_, i32>(4) as i64,
            metadata,
            swarm: swarm(r.get(12), r.get(13), r.get(14)),
            last_seeded: r.get(15),
        }))
    }

    fn info_dict(&self, info_hash: &Id) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .client()
            .query_opt(
                "SELECT i.info FROM torrents t JOIN infos i ON i.torrent_id = t.id
                 WHERE t.info_hash = $1",
                &[&&info_hash.0[..]],
            )
            .map_err(db)?
            .map(|r| r.get(0)))
    }

    fn dump(&self, each: &mut dyn FnMut(Dump) -> std::io::Result<()>) -> Result<(), StoreError> {
        let mut c = self.client();
        let mut tx = c.transaction().map_err(db)?;
        let portal = tx
            .bind(
                "SELECT t.id, t.info_hash, t.name, t.total_size, t.first_seen, t.last_seen,
                        t.seeders, t.leechers, t.scraped_at, f.path, f.length
                 FROM torrents t LEFT JOIN files f ON f.torrent_id = t.id
                 WHERE t.name IS NOT NULL ORDER BY t.id, f.idx",
                &[],
            )
            .map_err(db)?;
        let mut cur: Option<(i64, Dump)> = None;
        let mut emit = |d: Dump| -> Result<bool, StoreError> {
            match each(d) {
                Ok(()) => Ok(true),
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
                Err(e) => Err(StoreError::Db(format!("writing: {e}"))),
            }
        };
        loop {
            let rows = tx.query_portal(&portal, 10_000).map_err(db)?;
            if rows.is_empty() {
                break;
            }
            for r in &rows {
                let id: i64 = r.get(0);
                if cur.as_ref().is_none_or(|c| c.0 != id) {
                    if let Some((_, d)) = cur.take() {
                        if !emit(d)? {
                            return Ok(());
                        }
                    }
                    let Some(info_hash) = Id::from_slice(r.get::<_, &[u8]>(1)) else {
                        continue;
                    };
                    cur = Some((
                        id,
                        Dump {
                            info_hash,
                            name: r.get(2),
                            size: u(r.get::<_, Option<i64>>(3).unwrap_or(0)),
                            first_seen: r.get(4),
                            last_seen: r.get(5),
                            swarm: swarm(r.get(6), r.get(7), r.get(8)),
                            files: Vec::new(),
                        },
                    ));
                }
                if let (Some((_, d)), Some(path)) = (&mut cur, r.get::<_, Option<String>>(9)) {
                    d.files.push(FileEntry {
                        path,
                        length: u(r.get::<_, Option<i64>>(10).unwrap_or(0)),
                    });
                }
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
        let mut c = self.client();
        let mut tx = c.transaction().map_err(db)?;
        let portal = tx
            .bind(
                "SELECT info_hash, name, total_size, file_count, first_seen FROM torrents
                 WHERE first_seen >= $1 ORDER BY first_seen, id",
                &[&since.unwrap_or(i64::MIN)],
            )
            .map_err(db)?;
        loop {
            let rows = tx.query_portal(&portal, 10_000).map_err(db)?;
            if rows.is_empty() {
                return Ok(());
            }
            for r in &rows {
                let Some(info_hash) = Id::from_slice(r.get::<_, &[u8]>(0)) else {
                    continue;
                };
                let row = ExportRow {
                    info_hash,
                    name: r.get(1),
                    size: r.get::<_, Option<i64>>(2).map(u),
                    files: r.get::<_, Option<i64>>(3).map(u),
                    discovered_at: r.get(4),
                };
                if let Err(e) = each(row) {
                    if e.kind() == std::io::ErrorKind::BrokenPipe {
                        return Ok(());
                    }
                    return Err(StoreError::Db(format!("writing: {e}")));
                }
            }
        }
    }
}

impl PostgresStore {
    /// The server, as given (password left out).
    pub fn url(&self) -> &str {
        &self.url
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_password_in_messages() {
        assert_eq!(redact("postgres://u:secret@h:5/db"), "postgres://u@h:5/db");
        assert_eq!(redact("postgres://h/db"), "postgres://h/db");
        assert_eq!(words("Show.S01E02.1080p-X"), "Show S01E02 1080p X");
    }
}
