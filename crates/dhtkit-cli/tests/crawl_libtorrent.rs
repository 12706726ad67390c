//! The crawler against a real swarm: twelve libtorrent 2.1 sessions on loopback, each on its
//! own 127.x.y.z, seed small torrents (every third a v1+v2 hybrid) and announce them on the
//! DHT, with libtorrent's flood protection on. Then:
//!
//! 1. `dhtkit crawl` (at most two minutes) discovers at least 90% of the seeded infohashes and
//!    stores the exact name of at least 80%; a hostile peer announced to it with a valid token
//!    (serving an info dictionary that does not match) is tried and yields no stored name.
//! 2. A crawl without metadata is SIGKILLed; the database is consistent and has no duplicate
//!    rows; a restart whose only way into the DHT is the state file resumes the metadata queue
//!    from the rows that lack metadata and fills in their names.
//! 3. When `DHTKIT_TEST_PG` names a PostgreSQL server (`./test` starts one), two crawlers on
//!    two addresses share one database: together they name the seeded torrents, with zero
//!    duplicate rows, each crawler's rows attributed to it.
//!
//! Needs the virtualenv that `.ci/setup-interop` creates (or `DHTKIT_LT_PYTHON`).

mod common;

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{dhtkit, lt_python, Harness, Killed};
use serde_json::{json, Value};

const LT_NET: u8 = 90;
const CRAWL_NET: u8 = 91;
const HOSTILE_NET: u8 = 92;
const SESSIONS: usize = 12;
const PORT: u16 = 17881;
const CRAWL_NODES: u16 = 2;

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("dhtkit-crawl-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn seeders() -> Harness {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/interop/lt_seeders.py");
    let mut cmd = Command::new(lt_python());
    cmd.arg(script)
        .args([
            "--count",
            &SESSIONS.to_string(),
            "--net",
            &LT_NET.to_string(),
        ])
        .args(["--port", &PORT.to_string()]);
    let (h, ready) = Harness::start(cmd, Duration::from_secs(60));
    eprintln!("libtorrent {} seeders up", ready["version"]);
    h
}

fn lt_addr(i: usize) -> String {
    format!("127.{LT_NET}.{i}.1:{PORT}")
}

fn crawl_addrs(host: u8, port: u16) -> Vec<String> {
    (0..CRAWL_NODES)
        .map(|i| format!("127.{CRAWL_NET}.{host}.1:{}", port + i))
        .collect()
}

/// A running `dhtkit crawl`, its first stderr line read (it names the first node's id).
struct Crawl {
    child: Killed,
    first_id: String,
}

fn start_crawl(host: u8, db: &Path, state: &Path, bootstrap: &str, extra: &[&str]) -> Crawl {
    start_crawl_on(host, db.as_os_str(), state, bootstrap, extra)
}

/// `dhtkit crawl` on 127.91.HOST.1 with `--db DB` (a file or a URL).
fn start_crawl_on(
    host: u8,
    db: &std::ffi::OsStr,
    state: &Path,
    bootstrap: &str,
    extra: &[&str],
) -> Crawl {
    let mut child = dhtkit()
        .args([
            "crawl",
            "--bind",
            &format!("127.{CRAWL_NET}.{host}.1:{PORT}"),
        ])
        .args([
            "--nodes",
            &CRAWL_NODES.to_string(),
            "--bootstrap",
            bootstrap,
        ])
        .arg("--db")
        .arg(db)
        .arg("--state")
        .arg(state)
        .args(["--duration", "150"])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("dhtkit crawl starts");
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut first = String::new();
    err.read_line(&mut first).unwrap();
    assert!(first.starts_with("dhtkit crawl:"), "{first}");
    let first_id = first
        .split(", id ")
        .nth(1)
        .and_then(|r| r.split(',').next())
        .expect("the first line names the node id")
        .to_string();
    std::thread::spawn(move || {
        for l in err.lines().map_while(Result::ok) {
            eprintln!("[crawl] {l}");
        }
    });
    Crawl {
        child: Killed(child),
        first_id,
    }
}

/// `dhtkit export`: infohash → name (None until fetched). Panics on a duplicate row.
fn export(db: impl AsRef<std::ffi::OsStr>) -> HashMap<String, Option<String>> {
    let out = dhtkit().args(["export", "--db"]).arg(db).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "export: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut rows = HashMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let v: Value = serde_json::from_str(line).expect("JSON lines");
        let ih = v["infohash"].as_str().unwrap().to_string();
        assert_eq!(ih.len(), 40);
        let name = v["name"].as_str().map(str::to_string);
        assert!(
            rows.insert(ih.clone(), name).is_none(),
            "duplicate row {ih}"
        );
    }
    rows
}

/// (discovered, with the exact name) among `torrents`.
fn score(rows: &HashMap<String, Option<String>>, torrents: &[Value]) -> (usize, usize) {
    let mut found = 0;
    let mut named = 0;
    for t in torrents {
        let name = t["name"].as_str().unwrap();
        let v1 = rows.get(t["v1"].as_str().unwrap());
        let v2 = t["v2"].as_str().and_then(|v2| rows.get(v2));
        if v1.is_some() || v2.is_some() {
            found += 1;
        }
        if [v1, v2]
            .into_iter()
            .flatten()
            .any(|n| n.as_deref() == Some(name))
        {
            named += 1;
        }
    }
    (found, named)
}

/// A peer that answers every metadata request with an info dictionary whose hash is not the
/// infohash asked for. Counts the connections that named `ih` in their handshake.
fn hostile_peer(addr: &str, ih: [u8; 20]) -> Arc<AtomicUsize> {
    let l = TcpListener::bind(addr).expect("hostile peer binds");
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    std::thread::spawn(move || {
        for s in l.incoming().take(64) {
            let Ok(mut s) = s else { continue };
            let h = h.clone();
            std::thread::spawn(move || {
                let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
                let mut hs = [0u8; 68];
                if s.read_exact(&mut hs).is_err() {
                    return;
                }
                if hs[28..48] == ih {
                    h.fetch_add(1, Ordering::SeqCst);
                }
                hs[25] |= 0x10;
                let fake = b"d6:lengthi1e4:name21:EVIL HOSTILE TORRENT12:piece lengthi16384e6:pieces20:aaaaaaaaaaaaaaaaaaaae";
                let ext = format!("d1:md11:ut_metadatai3ee13:metadata_sizei{}ee", fake.len());
                let _ = s.write_all(&hs);
                let _ = send(&mut s, 0, ext.as_bytes());
                let mut len = [0u8; 4];
                while s.read_exact(&mut len).is_ok() {
                    let mut m = vec![0u8; u32::from_be_bytes(len) as usize];
                    if s.read_exact(&mut m).is_err() {
                        return;
                    }
                    if m.first() == Some(&20) && m.get(1) == Some(&3) {
                        let mut body =
                            format!("d8:msg_typei1e5:piecei0e10:total_sizei{}ee", fake.len())
                                .into_bytes();
                        body.extend_from_slice(fake);
                        let _ = send(&mut s, 1, &body);
                    }
                }
            });
        }
    });
    hits
}

fn send(s: &mut TcpStream, id: u8, body: &[u8]) -> std::io::Result<()> {
    let mut m = ((body.len() + 2) as u32).to_be_bytes().to_vec();
    m.extend_from_slice(&[20, id]);
    m.extend_from_slice(body);
    s.write_all(&m)
}

/// SIGINT, through the shell's own `kill` (no procps needed).
fn interrupt(c: &mut Child) {
    let _ = Command::new("sh")
        .args(["-c", &format!("kill -INT {}", c.id())])
        .status();
}

/// Waits (bounded) for the process to exit; its exit code.
fn wait_exit(c: &mut Child, limit: Duration) -> Option<i32> {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if let Some(st) = c.try_wait().unwrap() {
            return st.code();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

fn hex_id(s: &str) -> [u8; 20] {
    let mut b = [0u8; 20];
    for (i, o) in b.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
    }
    b
}

fn to_hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn crawler_indexes_a_libtorrent_swarm_and_resumes_after_sigkill() {
    let dir = tmpdir("swarm");
    let mut lt = seeders();
    let lt_boot = (1..=3).map(lt_addr).collect::<Vec<_>>().join(",");

    // 1. The acceptance crawl.
    let db = dir.join("crawl.sqlite");
    let state = dir.join("state.json");
    let started = Instant::now();
    let mut crawl = start_crawl(1, &db, &state, &lt_boot, &[]);
    let mut everyone: Vec<String> = crawl_addrs(1, PORT);
    everyone.extend((1..=SESSIONS).map(lt_addr));
    lt.call(
        json!({"cmd": "add_nodes", "addrs": everyone}),
        Duration::from_secs(30),
    );
    lt.call(
        json!({"cmd": "wait", "seconds": 5}),
        Duration::from_secs(30),
    );
    let seeded = lt.call(
        json!({"cmd": "seed", "per_session": 2, "dir": dir.join("data")}),
        Duration::from_secs(90),
    );
    let torrents = seeded["torrents"].as_array().unwrap().clone();
    assert_eq!(
        seeded["seeding"].as_u64(),
        Some(torrents.len() as u64),
        "{seeded}"
    );
    lt.call(json!({"cmd": "announce"}), Duration::from_secs(30));

    // The hostile peer: an infohash next to the crawler's first node id, announced with a
    // valid token by `dhtkit announce` from the hostile peer's address.
    let mut hostile = hex_id(&crawl.first_id);
    hostile[19] ^= 0x5a;
    let hostile_hex = to_hex(&hostile);
    let hostile_at = format!("127.{HOSTILE_NET}.1.1:{}", PORT + 100);
    let hits = hostile_peer(&hostile_at, hostile);
    let out = dhtkit()
        .args([
            "announce",
            &hostile_hex,
            "--port",
            &(PORT + 100).to_string(),
            "--json",
        ])
        .args([
            "--bind",
            &format!("127.{HOSTILE_NET}.1.1:0"),
            "--timeout",
            "20",
        ])
        .args([
            "--bootstrap",
            &format!("{},{}", crawl_addrs(1, PORT)[0], lt_addr(1)),
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let need = torrents.len();
    let mut rounds = 0;
    while started.elapsed() < Duration::from_secs(115) {
        lt.call(
            json!({"cmd": "wait", "seconds": 3}),
            Duration::from_secs(30),
        );
        rounds += 1;
        if rounds % 10 == 0 {
            lt.call(json!({"cmd": "announce"}), Duration::from_secs(30));
        }
        let named = score(&export(&db), &torrents).1;
        if named == need && hits.load(Ordering::SeqCst) > 0 {
            break;
        }
    }
    interrupt(&mut crawl.child.0);
    let st = lt.call(json!({"cmd": "status"}), Duration::from_secs(30));
    assert_eq!(
        st["blocked_count"], 0,
        "libtorrent banned the crawler for flooding: {st}"
    );
    assert_eq!(
        wait_exit(&mut crawl.child.0, Duration::from_secs(20)),
        Some(0),
        "SIGINT: exit 0"
    );
    let elapsed = started.elapsed();
    let rows = export(&db);
    let (found, named) = score(&rows, &torrents);
    eprintln!(
        "crawl: {found}/{need} seeded infohashes discovered, {named}/{need} named, {} rows, {:.0} s; hostile peer tried {} times",
        rows.len(),
        elapsed.as_secs_f64(),
        hits.load(Ordering::SeqCst)
    );
    assert!(elapsed < Duration::from_secs(125));
    assert!(found * 10 >= need * 9, "discovered {found}/{need}");
    assert!(named * 10 >= need * 8, "named {named}/{need}");
    assert!(
        hits.load(Ordering::SeqCst) > 0,
        "the hostile peer was never tried"
    );
    assert!(
        matches!(rows.get(&hostile_hex), Some(None)),
        "the hostile infohash is seen, never named: {:?}",
        rows.get(&hostile_hex)
    );
    // Nothing stored came from the hostile peer, under any infohash.
    let search = dhtkit()
        .args(["search", "EVIL HOSTILE", "--db"])
        .arg(&db)
        .output()
        .unwrap();
    assert_eq!(search.status.code(), Some(1), "no result");
    // The names are searchable, and show lists the files.
    let t0 = &torrents[0];
    let word = t0["name"].as_str().unwrap().split(' ').nth(1).unwrap();
    let search = dhtkit()
        .args(["search", word, "--json", "--db"])
        .arg(&db)
        .output()
        .unwrap();
    let hit: Value = serde_json::from_slice(
        String::from_utf8_lossy(&search.stdout)
            .lines()
            .next()
            .expect("a search result")
            .as_bytes(),
    )
    .unwrap();
    assert!(hit["name"].as_str().unwrap().contains(word), "{hit}");
    assert!(hit["magnet"]
        .as_str()
        .unwrap()
        .starts_with("magnet:?xt=urn:btih:"));
    assert!(state.exists(), "the state file was written on exit");

    // 2. SIGKILL and resume.
    let db2 = dir.join("resume.sqlite");
    let mut crawl = start_crawl(2, &db2, &state, &lt_boot, &["--no-metadata"]);
    let mut everyone2 = crawl_addrs(2, PORT);
    everyone2.extend((1..=SESSIONS).map(lt_addr));
    lt.call(
        json!({"cmd": "add_nodes", "addrs": everyone2}),
        Duration::from_secs(30),
    );
    let t1 = Instant::now();
    let mut seen = 0;
    while t1.elapsed() < Duration::from_secs(60) {
        lt.call(json!({"cmd": "announce"}), Duration::from_secs(30));
        lt.call(
            json!({"cmd": "wait", "seconds": 4}),
            Duration::from_secs(30),
        );
        let rows = export(&db2);
        seen = score(&rows, &torrents).0;
        if seen * 10 >= need * 9 {
            break;
        }
    }
    assert!(
        seen * 10 >= need * 9,
        "the no-metadata crawl saw {seen}/{need}"
    );
    crawl.child.0.kill().unwrap(); // SIGKILL
    let _ = crawl.child.0.wait();
    let rows = export(&db2); // opens and reads cleanly: consistent, no duplicate rows
    assert!(
        rows.values().all(Option::is_none),
        "no metadata was fetched"
    );
    let unique: HashSet<&String> = rows.keys().collect();
    assert_eq!(unique.len(), rows.len());

    // The restart knows the DHT only through the state file (its bootstrap node is dead).
    let t2 = Instant::now();
    let mut crawl = start_crawl(2, &db2, &state, "127.0.0.1:9", &["--no-sample"]);
    let mut resumed = 0;
    while t2.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_secs(3));
        resumed = score(&export(&db2), &torrents).1;
        if resumed * 10 >= need * 8 {
            break;
        }
    }
    interrupt(&mut crawl.child.0);
    assert_eq!(
        wait_exit(&mut crawl.child.0, Duration::from_secs(20)),
        Some(0)
    );
    let after = export(&db2);
    eprintln!(
        "resume: {resumed}/{need} named from the rebuilt queue in {:.0} s; {} rows before, {} after",
        t2.elapsed().as_secs_f64(),
        rows.len(),
        after.len()
    );
    assert!(resumed * 10 >= need * 8, "resumed {resumed}/{need}");
    assert!(after.len() >= rows.len(), "no row lost");
    for ih in rows.keys() {
        assert!(after.contains_key(ih), "{ih} survived the restart");
    }

    // 3. Two crawlers, one PostgreSQL.
    if let Some(admin) = std::env::var("DHTKIT_TEST_PG")
        .ok()
        .filter(|v| !v.is_empty())
    {
        two_crawlers_share_postgres(&admin, &mut lt, &torrents, &lt_boot, &dir);
    } else {
        eprintln!("DHTKIT_TEST_PG is not set: the two-crawler PostgreSQL part did not run (./test sets it)");
    }
    lt.call(json!({"cmd": "quit"}), Duration::from_secs(30));
    let _ = std::fs::remove_dir_all(&dir);
}

fn two_crawlers_share_postgres(
    admin: &str,
    lt: &mut Harness,
    torrents: &[Value],
    lt_boot: &str,
    dir: &Path,
) {
    let name = format!("dhtkit_crawl_{}", std::process::id());
    let mut c = postgres::Client::connect(admin, postgres::NoTls)
        .expect("DHTKIT_TEST_PG is set, so its server must be reachable");
    c.batch_execute(&format!("DROP DATABASE IF EXISTS {name}"))
        .unwrap();
    c.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
    let base = admin.rsplit_once('/').map_or(admin, |(b, _)| b);
    let url = format!("{base}/{name}");
    let t0 = Instant::now();
    let mut crawls: Vec<Crawl> = [3u8, 4]
        .iter()
        .map(|&host| {
            let state = dir.join(format!("pg-state-{host}.json"));
            start_crawl_on(host, url.as_ref(), &state, lt_boot, &[])
        })
        .collect();
    let mut everyone: Vec<String> = crawl_addrs(3, PORT);
    everyone.extend(crawl_addrs(4, PORT));
    lt.call(
        json!({"cmd": "add_nodes", "addrs": everyone}),
        Duration::from_secs(30),
    );
    let need = torrents.len();
    let mut named = 0;
    while t0.elapsed() < Duration::from_secs(100) {
        lt.call(json!({"cmd": "announce"}), Duration::from_secs(30));
        lt.call(
            json!({"cmd": "wait", "seconds": 4}),
            Duration::from_secs(30),
        );
        named = score(&export(&url), torrents).1;
        if named == need {
            break;
        }
    }
    // One stops on SIGINT, the other on SIGTERM: both close their PostgreSQL connections
    // and exit 0.
    for (i, cr) in crawls.iter_mut().enumerate() {
        let sig = if i == 0 { "INT" } else { "TERM" };
        let _ = Command::new("sh")
            .args(["-c", &format!("kill -{sig} {}", cr.child.0.id())])
            .status();
    }
    for cr in &mut crawls {
        assert_eq!(wait_exit(&mut cr.child.0, Duration::from_secs(20)), Some(0));
    }
    let rows = export(&url); // panics on a duplicate
    let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let dup: i64 = c
        .query_one(
            "SELECT count(*) FROM (SELECT info_hash FROM torrents GROUP BY info_hash HAVING count(*) > 1) d",
            &[],
        )
        .unwrap()
        .get(0);
    let crawlers: i64 = c
        .query_one(
            "SELECT count(DISTINCT w) FROM (SELECT first_crawler AS w FROM torrents UNION SELECT crawler FROM torrents WHERE crawler IS NOT NULL) x",
            &[],
        )
        .unwrap()
        .get(0);
    eprintln!(
        "postgres: two crawlers named {named}/{need} in {:.0} s, {} rows, {dup} duplicates, rows from {crawlers} crawlers",
        t0.elapsed().as_secs_f64(),
        rows.len()
    );
    assert_eq!(dup, 0);
    assert_eq!(
        named, need,
        "the two crawlers together named every seeded torrent"
    );
    assert_eq!(crawlers, 2, "each crawler's rows are attributed to it");
    drop(c);
    let mut admin_c = postgres::Client::connect(admin, postgres::NoTls).unwrap();
    let _ = admin_c.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
}
