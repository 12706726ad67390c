//! Moving an index in and out, as a user does it: `dhtkit import --from magnetico` of a
//! magnetico-schema database this test makes (into SQLite, and into PostgreSQL when
//! `DHTKIT_TEST_PG` names a server), run again to see it resume without importing anything
//! twice, then `dhtkit export --format magnetico` back and the same rows compared; JSON lines
//! out and in again, from a file and from stdin, with malformed lines skipped.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use rusqlite::{params, Connection};

fn dir(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("interchange-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn run(cmd: &mut Command) -> (Output, String) {
    let out = cmd.output().expect("dhtkit runs");
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    eprintln!("{err}");
    (out, err)
}

fn ok(args: &[&str]) -> String {
    let (out, err) = run(common::dhtkit().args(args));
    assert!(out.status.success(), "dhtkit {args:?}: {err}");
    err
}

/// A magnetico database at schema version 3, as magnetico lays it out (its FTS index left
/// out: dhtkit does not read it).
fn magnetico_db(path: &Path) -> Connection {
    let c = Connection::open(path).unwrap();
    c.execute_batch(
        "CREATE TABLE torrents (
            id INTEGER PRIMARY KEY,
            info_hash BLOB NOT NULL UNIQUE,
            name TEXT NOT NULL,
            total_size INTEGER NOT NULL CHECK (total_size > 0),
            discovered_on INTEGER NOT NULL CHECK (discovered_on > 0),
            updated_on INTEGER CHECK (updated_on > 0) DEFAULT NULL,
            n_seeders INTEGER DEFAULT NULL,
            n_leechers INTEGER DEFAULT NULL,
            modified_on INTEGER
         );
         CREATE TABLE files (
            id INTEGER PRIMARY KEY,
            torrent_id INTEGER REFERENCES torrents ON DELETE CASCADE ON UPDATE RESTRICT,
            size INTEGER NOT NULL,
            path TEXT NOT NULL,
            is_readme INTEGER DEFAULT NULL,
            content TEXT DEFAULT NULL
         );
         PRAGMA user_version = 3;",
    )
    .unwrap();
    c
}

const WORDS: [&str; 8] = [
    "Aurora", "Kestrel", "Ubuntu", "Żółw", "年", "Ranger", "1080p", "FLAC",
];

/// Adds torrents `from..to`: names from WORDS, 1 to 5 files, a swarm on every third.
fn add_torrents(c: &mut Connection, from: u32, to: u32) {
    let tx = c.transaction().unwrap();
    for i in from..to {
        let mut ih = [0u8; 20];
        ih[..4].copy_from_slice(&i.to_be_bytes());
        ih[19] = 0x5a;
        let name = format!(
            "{} {} {i:04}",
            WORDS[i as usize % 8],
            WORDS[(i as usize / 8) % 8]
        );
        let nfiles = 1 + i % 5;
        let sizes: Vec<i64> = (0..nfiles).map(|k| 1_000 + (i * 7 + k) as i64).collect();
        let discovered = 1_700_000_000 + i as i64 * 60;
        let swarm = i % 3 == 0;
        tx.execute(
            "INSERT INTO torrents (info_hash, name, total_size, discovered_on, updated_on,
                n_seeders, n_leechers, modified_on) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                &ih[..],
                name,
                sizes.iter().sum::<i64>(),
                discovered,
                swarm.then_some(discovered + 3_600),
                swarm.then_some((i % 17) as i64),
                swarm.then_some((i % 5) as i64),
                discovered + 120,
            ],
        )
        .unwrap();
        let tid = tx.last_insert_rowid();
        for (k, size) in sizes.iter().enumerate() {
            tx.execute(
                "INSERT INTO files (torrent_id, size, path) VALUES (?1, ?2, ?3)",
                params![tid, size, format!("{name}/part {k}.bin")],
            )
            .unwrap();
        }
    }
    tx.commit().unwrap();
}

type TorrentRow = (
    Vec<u8>,
    String,
    i64,
    i64,
    Option<i64>,
    Option<i64>,
    Option<i64>,
);
type FileRow = (Vec<u8>, i64, String);

/// The rows that must survive a round trip, sorted.
fn rows(path: &Path) -> (Vec<TorrentRow>, Vec<FileRow>) {
    let c = Connection::open(path).unwrap();
    let mut t = c
        .prepare(
            "SELECT info_hash, name, total_size, discovered_on, updated_on, n_seeders,
                    n_leechers FROM torrents WHERE length(info_hash) = 20 ORDER BY info_hash",
        )
        .unwrap();
    let torrents = t
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
            ))
        })
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let mut f = c
        .prepare(
            "SELECT t.info_hash, f.size, f.path FROM files f JOIN torrents t ON t.id = f.torrent_id
             WHERE length(t.info_hash) = 20 ORDER BY t.info_hash, f.path",
        )
        .unwrap();
    let files = f
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    (torrents, files)
}

/// Import, resume, import what was added, export, compare: against the database `db`.
fn round_trip(db: &str, work: &Path) {
    let src = work.join("magnetico.sqlite3");
    let mut m = magnetico_db(&src);
    add_torrents(&mut m, 0, 1_200);
    // One row magnetico would never write: an infohash of 3 bytes. Skipped, and said so.
    m.execute(
        "INSERT INTO torrents (info_hash, name, total_size, discovered_on) VALUES (x'010203', 'short', 5, 1700000000)",
        [],
    )
    .unwrap();
    let src_s = src.to_str().unwrap();
    let err = ok(&[
        "import",
        "--from",
        "magnetico",
        src_s,
        "--db",
        db,
        "--batch",
        "500",
    ]);
    assert!(err.contains("done: 1200 rows (1200 named)"), "{err}");
    assert!(
        err.contains("skipped 1 rows; the first: torrent id 1201: an infohash of 3 bytes"),
        "{err}"
    );
    // Again: it resumes where it ended, and imports nothing twice.
    let err = ok(&["import", "--from", "magnetico", src_s, "--db", db]);
    assert!(err.contains("resumed after position 1201"), "{err}");
    assert!(err.contains("done: 0 rows"), "{err}");
    let mut ih = [0u8; 20];
    ih[..4].copy_from_slice(&3u32.to_be_bytes());
    ih[19] = 0x5a;
    let hex: String = ih.iter().map(|b| format!("{b:02x}")).collect();
    let show = common::dhtkit()
        .args(["show", &hex, "--db", db, "--json"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap();
    assert_eq!(v["times_seen"], 1, "{v}");
    assert_eq!(v["found_by"], serde_json::json!(["import"]));
    assert_eq!(
        (&v["seeders"], &v["leechers"]),
        (&serde_json::json!(3), &serde_json::json!(3))
    );
    assert_eq!(v["files"], 4);
    // Rows magnetico added since: only they are imported.
    add_torrents(&mut m, 1_200, 1_250);
    drop(m);
    let err = ok(&["import", "--from", "magnetico", src_s, "--db", db]);
    assert!(err.contains("done: 50 rows"), "{err}");

    // Out again, as a magnetico database with the same rows.
    let out = work.join("out.sqlite3");
    let out_s = out.to_str().unwrap();
    let err = ok(&["export", "--db", db, "--format", "magnetico", out_s]);
    assert!(err.contains("1250 torrents"), "{err}");
    let (want_t, want_f) = rows(&src);
    let (got_t, got_f) = rows(&out);
    assert_eq!(want_t.len(), 1_250);
    assert!(got_t == want_t, "the torrents came back changed");
    assert!(got_f == want_f, "the files came back changed");
    // What magnetico checks when it opens a database: its version, and a name index it can
    // search.
    let c = Connection::open(&out).unwrap();
    let version: i64 = c
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, 3);
    let found: i64 = c
        .query_row(
            "SELECT count(*) FROM torrents_idx WHERE torrents_idx MATCH 'kestrel'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let expect = want_t.iter().filter(|t| t.1.contains("Kestrel")).count() as i64;
    assert_eq!(found, expect);
    // An existing file is never overwritten.
    let (o, err) =
        run(common::dhtkit().args(["export", "--db", db, "--format", "magnetico", out_s]));
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("exists"), "{err}");
}

#[test]
fn a_magnetico_database_imports_resumes_and_exports_back_into_sqlite() {
    let work = dir("sqlite");
    let db = work.join("crawl.sqlite");
    round_trip(db.to_str().unwrap(), &work);
}

#[test]
fn a_magnetico_database_imports_resumes_and_exports_back_into_postgres() {
    let Some(admin) = std::env::var("DHTKIT_TEST_PG")
        .ok()
        .filter(|v| !v.is_empty())
    else {
        eprintln!("DHTKIT_TEST_PG is not set: no PostgreSQL server to test against");
        return;
    };
    let name = format!("dhtkit_import_{}", std::process::id());
    let mut c = postgres::Client::connect(&admin, postgres::NoTls).unwrap();
    c.batch_execute(&format!("DROP DATABASE IF EXISTS {name}"))
        .unwrap();
    c.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
    let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
    let url = format!("{base}/{name}");
    round_trip(&url, &dir("postgres"));
    let _ = c.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
}

#[test]
fn json_lines_go_out_and_come_back_in() {
    let work = dir("jsonl");
    let src = work.join("magnetico.sqlite3");
    let mut m = magnetico_db(&src);
    add_torrents(&mut m, 0, 300);
    drop(m);
    let a = work.join("a.sqlite");
    let a_s = a.to_str().unwrap();
    ok(&[
        "import",
        "--from",
        "magnetico",
        src.to_str().unwrap(),
        "--db",
        a_s,
    ]);
    let first = common::dhtkit()
        .args(["export", "--db", a_s])
        .output()
        .unwrap();
    assert!(first.status.success());
    let lines = String::from_utf8(first.stdout).unwrap();
    assert_eq!(lines.lines().count(), 300);

    // From a file, with two bad lines and a blank one among them.
    let file = work.join("export.jsonl");
    let mut text = lines.clone();
    text.insert_str(0, "{\"infohash\": \"xyz\"}\nnot json at all\n\n");
    std::fs::write(&file, &text).unwrap();
    let b = work.join("b.sqlite");
    let b_s = b.to_str().unwrap();
    let err = ok(&[
        "import",
        "--from",
        "jsonl",
        file.to_str().unwrap(),
        "--db",
        b_s,
    ]);
    assert!(err.contains("done: 300 rows (300 named)"), "{err}");
    assert!(
        err.contains("skipped 2 rows; the first: line 1: infohash \"xyz\""),
        "{err}"
    );
    let again = common::dhtkit()
        .args(["export", "--db", b_s])
        .output()
        .unwrap();
    let mut x: Vec<&str> = lines.lines().collect();
    let back = String::from_utf8(again.stdout).unwrap();
    let mut y: Vec<&str> = back.lines().collect();
    x.sort();
    y.sort();
    assert!(x == y, "the JSON lines came back changed");
    // Resumed: nothing twice; lines appended since are taken.
    let err = ok(&[
        "import",
        "--from",
        "jsonl",
        file.to_str().unwrap(),
        "--db",
        b_s,
    ]);
    assert!(err.contains("done: 0 rows"), "{err}");
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&file)
        .unwrap();
    writeln!(
        f,
        "{{\"infohash\": \"{}\", \"discovered_at\": 1700000000}}",
        "ee".repeat(20)
    )
    .unwrap();
    drop(f);
    let err = ok(&[
        "import",
        "--from",
        "jsonl",
        file.to_str().unwrap(),
        "--db",
        b_s,
    ]);
    assert!(err.contains("done: 1 rows (0 named)"), "{err}");

    // From stdin (not resumable, and said nowhere to be).
    let c = work.join("c.sqlite");
    let mut child = common::dhtkit()
        .args([
            "import",
            "--from",
            "jsonl",
            "-",
            "--db",
            c.to_str().unwrap(),
        ])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(lines.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("done: 300 rows"), "{err}");
    // Nonsense is refused with a one-line error.
    let (o, err) = run(common::dhtkit().args(["import", "--from", "bitmagnet", "x", "--db", a_s]));
    assert_eq!(o.status.code(), Some(2));
    assert!(err.contains("magnetico or jsonl"), "{err}");
    let (o, err) = run(common::dhtkit().args([
        "import",
        "--from",
        "magnetico",
        file.to_str().unwrap(),
        "--db",
        a_s,
    ]));
    assert_eq!(o.status.code(), Some(2));
    assert!(
        err.contains("not a magnetico database") || err.contains("file is not a database"),
        "{err}"
    );
}

#[test]
fn prune_drops_only_torrents_scraped_without_seeders_for_that_long() {
    let work = dir("prune");
    let src = work.join("magnetico.sqlite3");
    let mut m = magnetico_db(&src);
    add_torrents(&mut m, 0, 300);
    drop(m);
    let db = work.join("crawl.sqlite");
    let db_s = db.to_str().unwrap();
    ok(&[
        "import",
        "--from",
        "magnetico",
        src.to_str().unwrap(),
        "--db",
        db_s,
    ]);
    // Every third torrent was scraped (an hour after it was found, in 2023); none of the
    // others ever was. Dead for 10 years: nothing; for a day: the scraped ones.
    let err = ok(&["prune", "--dead-for", "3650d", "--db", db_s]);
    assert!(err.contains("pruned 0 torrents"), "{err}");
    let err = ok(&["prune", "--dead-for", "1d", "--db", db_s]);
    assert!(err.contains("pruned 100 torrents"), "{err}");
    assert!(err.contains("200 infohashes left"), "{err}");
    let (o, err) = run(common::dhtkit().args(["prune", "--dead-for", "soon", "--db", db_s]));
    assert_eq!(o.status.code(), Some(2));
    assert!(err.contains("30d"), "{err}");
}
