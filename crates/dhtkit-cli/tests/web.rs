//! `dhtkit web` as a user meets it: the JSON API and the pages over HTTP (SQLite, and
//! PostgreSQL when `DHTKIT_TEST_PG` names a server), and the pages in a real browser: Debian's
//! headless Chromium driven through chromedriver (WebDriver), which types a word into the
//! search box, finds the result in the rendered page, opens the torrent, and saves
//! screenshots under the target directory (`target/tmp/web-*.png`).

mod common;

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::Killed;
use dhtkit_crawl::metadata::{FileEntry, TorrentInfo};
use dhtkit_crawl::store::{Batch, Fetched, Scraped, Sighting, Store, Swarm};
use dhtkit_crawl::{PostgresStore, SqliteStore};
use serde_json::{json, Value};

const EVIL: &str = "<script>document.title='pwned'</script> evilname <b>bold</b>";

fn id(n: u8) -> dhtkit::Id {
    let mut b = [0u8; 20];
    b[0] = 0xab;
    b[19] = n;
    dhtkit::Id(b)
}

fn file(path: &str, length: u64) -> FileEntry {
    FileEntry {
        path: path.into(),
        length,
    }
}

/// The torrents every test database holds: one with a folder tree, one with a hostile name,
/// 45 for paging, and one infohash without metadata.
fn seed(store: &mut dyn Store) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let mut torrents = vec![
        (
            id(1),
            TorrentInfo::new(
                "Ubuntu 24.04 Desktop amd64",
                1 << 20,
                vec![
                    file("ubuntu/casper/vmlinuz", 14_000_000),
                    file("ubuntu/casper/initrd", 70_000_000),
                    file("ubuntu/README.diskdefines", 230),
                ],
            ),
        ),
        (
            id(2),
            TorrentInfo::new(EVIL, 1 << 16, vec![file("x/<img src=x>.txt", 5)]),
        ),
    ];
    for i in 0..45u8 {
        torrents.push((
            id(100 + i),
            TorrentInfo::new(
                format!("Pagingsample volume {i:02}"),
                1 << 16,
                vec![file("a.bin", 1000 + i as u64)],
            ),
        ));
    }
    let mut batch = Batch::default();
    for (n, (ih, _)) in torrents.iter().enumerate() {
        // Spread over three calendar days (UTC), so that the charts have more than one bar:
        // the first minutes of today and of the two days before, whatever the time now.
        let today = now - now % 86_400;
        let t = today + 60 + n as i64 % 60 - (n as i64 % 3) * 86_400;
        batch.sightings.push(Sighting {
            info_hash: *ih,
            sources: 1,
            first: t,
            last: t,
            count: 1,
        });
    }
    batch.sightings.push(Sighting {
        info_hash: id(250),
        sources: 4,
        first: now,
        last: now,
        count: 2,
    });
    batch.torrents = torrents
        .into_iter()
        .map(|(info_hash, info)| Fetched {
            info_hash,
            info,
            at: now,
            peer: "127.0.0.1:6881".parse().unwrap(),
            info_dict: None,
        })
        .collect();
    // Swarms: the Ubuntu torrent 25 seeders and 3 leechers, the paging ones 0 to 44 seeders
    // in a shuffled order (7 × i mod 45), the hostile one never scraped.
    batch.scrapes.push(scraped(id(1), 25, 3, now));
    for i in 0..45u8 {
        batch
            .scrapes
            .push(scraped(id(100 + i), (7 * i as u64) % 45, 1, now));
    }
    store.write(&batch).unwrap();
}

fn scraped(info_hash: dhtkit::Id, seeders: u64, leechers: u64, at: i64) -> Scraped {
    Scraped {
        info_hash,
        swarm: Swarm {
            seeders,
            leechers,
            at,
        },
        next_at: at + 3_600,
    }
}

const TORZNAB: &str = "http://torznab.com/schemas/2015/feed";

/// The `<item>`s of an RSS document.
fn items<'a>(doc: &'a roxmltree::Document<'a>) -> Vec<roxmltree::Node<'a, 'a>> {
    let rss = doc.root_element();
    assert_eq!(rss.tag_name().name(), "rss");
    assert_eq!(rss.attribute("version"), Some("2.0"));
    let channel = rss
        .children()
        .find(|n| n.has_tag_name("channel"))
        .expect("a channel");
    for required in ["title", "link", "description"] {
        assert!(
            channel.children().any(|n| n.has_tag_name(required)),
            "the channel has a {required}"
        );
    }
    channel
        .children()
        .filter(|n| n.has_tag_name("item"))
        .collect()
}

fn child<'a>(n: roxmltree::Node<'a, 'a>, tag: &str) -> String {
    n.children()
        .find(|c| c.has_tag_name(tag) && c.tag_name().namespace().is_none())
        .and_then(|c| c.text())
        .unwrap_or_else(|| panic!("<{tag}> in an item"))
        .to_string()
}

fn torznab_attr(n: roxmltree::Node<'_, '_>, name: &str) -> String {
    n.children()
        .find(|c| c.has_tag_name((TORZNAB, "attr")) && c.attribute("name") == Some(name))
        .and_then(|c| c.attribute("value"))
        .unwrap_or_else(|| panic!("torznab:attr {name}"))
        .to_string()
}

/// Torznab and the RSS feed, as Prowlarr and a feed reader meet them.
fn check_feeds(web: &Web) {
    let (s, caps, _) = web.get("/torznab/api?t=caps");
    assert_eq!(s, 200, "{caps}");
    let doc = roxmltree::Document::parse(&caps).expect("caps is XML");
    assert_eq!(doc.root_element().tag_name().name(), "caps");
    for mode in ["search", "tv-search", "movie-search"] {
        let n = doc
            .descendants()
            .find(|n| n.has_tag_name(mode))
            .unwrap_or_else(|| panic!("{mode} in caps"));
        assert_eq!(n.attribute("available"), Some("yes"));
    }
    assert!(doc
        .descendants()
        .any(|n| n.has_tag_name("category") && n.attribute("id").is_some()));

    // A search finds the seeded torrent, with its swarm.
    let (s, x, _) = web.get("/torznab/api?t=search&q=ubuntu&cat=8000&extended=1");
    assert_eq!(s, 200, "{x}");
    let doc = roxmltree::Document::parse(&x).expect("results are XML");
    let found = items(&doc);
    assert_eq!(found.len(), 1, "{x}");
    let it = found[0];
    assert_eq!(child(it, "title"), "Ubuntu 24.04 Desktop amd64");
    assert_eq!(child(it, "guid"), id(1).to_hex());
    assert!(child(it, "link").starts_with("magnet:?xt=urn:btih:"));
    assert!(child(it, "pubDate").ends_with("+0000"));
    assert_eq!(
        child(it, "size"),
        (14_000_000u64 + 70_000_000 + 230).to_string()
    );
    assert_eq!(torznab_attr(it, "seeders"), "25");
    assert_eq!(torznab_attr(it, "peers"), "28");
    assert_eq!(torznab_attr(it, "infohash"), id(1).to_hex());
    assert!(torznab_attr(it, "magneturl").starts_with("magnet:"));
    let enclosure = it
        .children()
        .find(|c| c.has_tag_name("enclosure"))
        .expect("an enclosure");
    assert!(enclosure.attribute("url").unwrap().starts_with("magnet:"));
    // TV searches add the episode to the words; the hostile name is text in valid XML.
    let (_, x, _) = web.get("/torznab/api?t=search&q=evilname");
    let doc = roxmltree::Document::parse(&x).expect("a hostile name keeps the XML valid");
    assert_eq!(child(items(&doc)[0], "title"), EVIL);
    // Prowlarr's test: no words, the newest, paged.
    let (_, x, _) = web.get("/torznab/api?t=search&limit=5");
    let doc = roxmltree::Document::parse(&x).unwrap();
    assert_eq!(items(&doc).len(), 5);
    let (_, x, _) = web.get("/torznab/api?t=tvsearch&q=pagingsample&limit=100&offset=40");
    let doc = roxmltree::Document::parse(&x).unwrap();
    assert_eq!(items(&doc).len(), 5, "45 paging torrents, from the 41st");
    // Errors are Newznab errors.
    for (path, status, code) in [
        ("/torznab/api?t=nothing", 400, "202"),
        ("/torznab/api", 400, "200"),
        ("/torznab/api?t=search&limit=x", 400, "201"),
    ] {
        let (s, x, _) = web.get(path);
        assert_eq!(s, status, "{path}: {x}");
        let doc = roxmltree::Document::parse(&x).unwrap();
        assert_eq!(doc.root_element().tag_name().name(), "error");
        assert_eq!(doc.root_element().attribute("code"), Some(code), "{path}");
    }

    // The RSS feed: the newest named torrents, newest first.
    let (s, x, _) = web.get("/feed");
    assert_eq!(s, 200);
    let doc = roxmltree::Document::parse(&x).expect("the feed is XML");
    let all = items(&doc);
    assert_eq!(
        all.len(),
        47,
        "every named torrent, under the feed's cap of 50"
    );
    let (_, x, _) = web.get("/feed?q=ubuntu");
    let doc = roxmltree::Document::parse(&x).unwrap();
    let one = items(&doc);
    assert_eq!(one.len(), 1);
    assert!(child(one[0], "comments").ends_with(&format!("/torrent/{}", id(1).to_hex())));

    // Sorting and filtering in the API.
    let (s, v) = web.json("/api/search?q=pagingsample&sort=seeders&limit=3");
    assert_eq!(s, 200, "{v}");
    let seeders: Vec<u64> = v["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["seeders"].as_u64().unwrap())
        .collect();
    assert_eq!(seeders, [44, 43, 42]);
    let (_, v) = web.json("/api/search?q=pagingsample&sort=seeders&order=asc&limit=1");
    assert_eq!(v["results"][0]["seeders"], 0);
    let (_, v) = web.json("/api/search?q=pagingsample&min_seeders=40&limit=100");
    assert_eq!(v["results"].as_array().unwrap().len(), 5);
    let (_, v) = web.json("/api/search?sort=seeders&limit=1");
    assert_eq!(
        v["results"][0]["seeders"], 44,
        "no words: every named torrent"
    );
    let (_, v) = web.json(&format!("/api/torrent/{}", id(1).to_hex()));
    assert_eq!(
        (&v["seeders"], &v["leechers"]),
        (&json!(25), &json!(3)),
        "{v}"
    );
    for bad in ["sort=name", "order=sideways", "min_size=lots", "since=soon"] {
        assert_eq!(web.json(&format!("/api/search?q=x&{bad}")).0, 400, "{bad}");
    }
}

fn sqlite_db(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("web-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("crawl.sqlite");
    let mut s = SqliteStore::open(&path).unwrap();
    seed(&mut s);
    path
}

/// `dhtkit web` on an ephemeral port; its address read from what it prints.
struct Web {
    _child: Killed,
    base: String,
}

impl Web {
    fn start(db: &str) -> Web {
        Web::start_with(&["--db", db])
    }

    fn start_with(args: &[&str]) -> Web {
        let mut child = common::dhtkit()
            .arg("web")
            .args(args)
            .args(if args.contains(&"--bind") {
                &[][..]
            } else {
                &["--bind", "127.0.0.1:0"][..]
            })
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("dhtkit web starts");
        let err = BufReader::new(child.stderr.take().unwrap());
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in err.lines().map_while(Result::ok) {
                eprintln!("dhtkit web: {line}");
                let _ = tx.send(line);
            }
        });
        let child = Killed(child);
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("dhtkit web says where it serves");
        let base = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .trim_end_matches('/')
            .to_string();
        Web {
            _child: child,
            base,
        }
    }

    /// Sends `signal` (INT or TERM) and waits (bounded) for the exit: its code, or `None`
    /// when it died of a signal or did not exit within 20 s.
    fn stop(&mut self, signal: &str) -> Option<i32> {
        let pid = self._child.0.id();
        let _ = Command::new("sh")
            .args(["-c", &format!("kill -{signal} {pid}")])
            .status();
        let end = Instant::now() + Duration::from_secs(20);
        while Instant::now() < end {
            if let Some(st) = self._child.0.try_wait().unwrap() {
                return st.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// Status, body and Content-Security-Policy of `GET path`.
    fn get(&self, path: &str) -> (u16, String, String) {
        let url = format!("{}{path}", self.base);
        let r = match ureq::get(&url).timeout(Duration::from_secs(20)).call() {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("GET {url}: {e}"),
        };
        let status = r.status();
        let csp = r
            .header("content-security-policy")
            .unwrap_or("")
            .to_string();
        (status, r.into_string().unwrap(), csp)
    }

    /// Status and `WWW-Authenticate` of `GET path`, with HTTP Basic `user:password` if given.
    fn get_as(&self, path: &str, login: Option<&str>) -> (u16, String) {
        use base64::Engine;
        let url = format!("{}{path}", self.base);
        let mut req = ureq::get(&url).timeout(Duration::from_secs(20));
        if let Some(l) = login {
            let b = base64::engine::general_purpose::STANDARD.encode(l);
            req = req.set("Authorization", &format!("Basic {b}"));
        }
        let r = match req.call() {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("GET {url}: {e}"),
        };
        (
            r.status(),
            r.header("www-authenticate").unwrap_or("").to_string(),
        )
    }

    fn json(&self, path: &str) -> (u16, Value) {
        let (status, body, _) = self.get(path);
        (
            status,
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}")),
        )
    }
}

/// Everything a client of the API and the pages relies on.
fn check_http(web: &Web) {
    let (s, body, _) = web.get("/healthz");
    assert_eq!((s, body.as_str()), (200, "ok\n"));

    // Search: the result, its magnet link, and the paging fields.
    let (s, v) = web.json("/api/search?q=ubuntu%20desktop");
    assert_eq!(s, 200, "{v}");
    let r = &v["results"];
    assert_eq!(r.as_array().unwrap().len(), 1, "{v}");
    assert_eq!(r[0]["name"], "Ubuntu 24.04 Desktop amd64");
    assert_eq!(r[0]["infohash"], id(1).to_hex());
    assert_eq!(r[0]["files"], 3);
    assert!(r[0]["magnet"]
        .as_str()
        .unwrap()
        .starts_with(&format!("magnet:?xt=urn:btih:{}", id(1).to_hex())));
    // File paths are searched too.
    let (_, v) = web.json("/api/search?q=vmlinuz");
    assert_eq!(v["results"][0]["infohash"], id(1).to_hex(), "{v}");

    // Paging: 45 matches, 20 at a time, no overlap, all of them once.
    let mut seen = std::collections::HashSet::new();
    for (offset, want, more) in [(0, 20, true), (20, 20, true), (40, 5, false)] {
        let (_, v) = web.json(&format!(
            "/api/search?q=pagingsample&limit=20&offset={offset}"
        ));
        let page = v["results"].as_array().unwrap();
        assert_eq!(
            (page.len(), v["more"].as_bool().unwrap()),
            (want, more),
            "{v}"
        );
        for h in page {
            assert!(seen.insert(h["infohash"].as_str().unwrap().to_string()));
        }
    }
    assert_eq!(seen.len(), 45);

    // Bad numbers get a clear 400 in JSON; limits are bounded.
    let (s, v) = web.json("/api/search?q=x&limit=abc");
    assert_eq!(s, 400);
    assert!(v["error"].as_str().unwrap().contains("limit"), "{v}");
    assert_eq!(web.json("/api/search?q=x&limit=100000").0, 400);
    assert_eq!(web.json("/api/search?q=x&offset=99999999").0, 400);

    // SQL in the search box is words, nothing more: it finds nothing and harms nothing.
    for q in [
        "%27%3B%20DROP%20TABLE%20torrents%3B%20--",
        "%27%20OR%201%3D1%20--",
        "%22%20OR%20%22%22%3D%22",
        "*",
        "NEAR(a%20b)",
    ] {
        let (s, v) = web.json(&format!("/api/search?q={q}"));
        assert_eq!(s, 200, "{q}: {v}");
        assert_eq!(v["results"].as_array().unwrap().len(), 0, "{q}: {v}");
    }
    // The API is described (schemathesis reads this).
    let (s, doc) = web.json("/openapi.json");
    assert_eq!(s, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."), "{doc}");
    for p in [
        "/api/search",
        "/api/torrent/{infohash}",
        "/api/stats",
        "/healthz",
    ] {
        assert!(doc["paths"][p]["get"].is_object(), "{p} is not described");
    }
    let (_, stats) = web.json("/api/stats");
    assert_eq!(stats["infohashes"], 48, "{stats}");
    assert_eq!(stats["with_metadata"], 47, "{stats}");
    let per_day: u64 = stats["per_day"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["count"].as_u64().unwrap())
        .sum();
    assert_eq!(per_day, 48, "{stats}");
    assert_eq!(stats["per_day"].as_array().unwrap().len(), 30);
    assert_eq!(stats["per_hour"].as_array().unwrap().len(), 48);
    let nonzero_days = stats["per_day"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["count"].as_u64().unwrap() > 0)
        .count();
    assert_eq!(nonzero_days, 3, "{stats}");

    // One torrent, as JSON; unknown and malformed infohashes.
    let (s, t) = web.json(&format!("/api/torrent/{}", id(1).to_hex()));
    assert_eq!(s, 200);
    assert_eq!(t["file_list"].as_array().unwrap().len(), 3, "{t}");
    assert_eq!(t["file_list"][0]["path"], "ubuntu/casper/vmlinuz");
    let (s, t) = web.json(&format!("/api/torrent/{}", id(250).to_hex()));
    assert_eq!(
        (s, &t["name"]),
        (200, &Value::Null),
        "seen, not fetched: {t}"
    );
    assert_eq!(t["found_by"], json!(["sample_infohashes"]));
    assert_eq!(
        web.json(&format!("/api/torrent/{}", id(251).to_hex())).0,
        404
    );
    assert_eq!(web.json("/api/torrent/nothex").0, 400);

    // The hostile name, as JSON (verbatim) and as a page (escaped, never markup).
    let (_, v) = web.json("/api/search?q=evilname");
    assert_eq!(v["results"][0]["name"], EVIL);
    for path in [
        "/search?q=evilname".to_string(),
        format!("/torrent/{}", id(2).to_hex()),
    ] {
        let (s, html, csp) = web.get(&path);
        assert_eq!(s, 200, "{path}");
        assert!(!html.contains("<script>document"), "{path}: {html}");
        assert!(!html.contains("<b>bold"), "{path}");
        assert!(!html.contains("<img src=x>"), "{path}");
        assert!(html.contains("&lt;script&gt;document.title="), "{path}");
        assert!(
            csp.contains("default-src 'none'") && !csp.contains("script-src"),
            "{path}: a Content-Security-Policy that allows no script: {csp:?}"
        );
    }

    // Pages: search with paging links, the torrent's tree, statistics with two charts, 404.
    let (s, html, _) = web.get("/search?q=pagingsample&page=2");
    assert_eq!(s, 200);
    assert!(html.contains("Results 21–40"), "{html}");
    assert!(html.contains("rel=\"prev\"") && html.contains("rel=\"next\""));
    let (_, html, _) = web.get(&format!("/torrent/{}", id(1).to_hex()));
    for part in ["casper", "vmlinuz", "initrd", "README.diskdefines"] {
        assert!(html.contains(part), "{part} in the tree: {html}");
    }
    let (s, html, _) = web.get("/stats");
    assert_eq!(s, 200);
    assert_eq!(html.matches("<svg").count(), 2, "{html}");
    assert!(html.contains(">48<"), "the total on the page: {html}");
    assert_eq!(web.get("/no/such/page").0, 404);
    assert_eq!(web.get("/search?q=x&page=zz").0, 400);
}

#[test]
fn the_api_and_pages_over_sqlite() {
    let db = sqlite_db("http");
    let before = std::fs::read(&db).unwrap();
    let web = Web::start(db.to_str().unwrap());
    check_http(&web);
    check_feeds(&web);
    drop(web);
    // With an API key, Torznab wants it (and nothing else changes).
    let web = Web::start_with(&["--db", db.to_str().unwrap(), "--api-key", "s3cret"]);
    let (s, x, _) = web.get("/torznab/api?t=caps");
    assert_eq!(s, 401, "{x}");
    assert!(x.contains("code=\"100\""), "{x}");
    assert_eq!(web.get("/torznab/api?t=caps&apikey=s3cre").0, 401);
    assert_eq!(web.get("/torznab/api?t=caps&apikey=s3cret").0, 200);
    assert_eq!(
        web.get("/torznab/api?t=search&q=ubuntu&apikey=s3cret").0,
        200
    );
    assert_eq!(web.get("/feed").0, 200);
    drop(web);
    // Read-only: the database file is byte for byte what it was.
    assert!(
        std::fs::read(&db).unwrap() == before,
        "the web server changed the database"
    );
}

/// A bcrypt hash (cost 4) of "battery staple", as magneticow's credentials files hold them.
const BOB: &str = "bob:$2y$04$/uaF/uaF/uaF/uaF/uaF/ugMhtPyT89nWo55j1MFoYlJNmAGTVsRG";

#[test]
fn with_auth_only_listed_users_get_in_and_public_addresses_need_a_choice() {
    let db = sqlite_db("auth");
    let db_s = db.to_str().unwrap();
    // A line from `dhtkit hash-password`, and a bcrypt one.
    let mut child = common::dhtkit()
        .args(["hash-password", "ann"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"correct horse\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let ann = String::from_utf8(out.stdout).unwrap();
    assert!(ann.starts_with("ann:$argon2id$"), "{ann}");
    let creds = db.parent().unwrap().join("users");
    std::fs::write(&creds, format!("# who may look\n{ann}{BOB}\n")).unwrap();
    let creds_s = creds.to_str().unwrap();

    let web = Web::start_with(&["--db", db_s, "--auth", creds_s, "--api-key", "k"]);
    let (s, challenge) = web.get_as("/api/stats", None);
    assert_eq!(s, 401);
    assert!(challenge.starts_with("Basic realm="), "{challenge}");
    assert_eq!(web.get_as("/", None).0, 401);
    assert_eq!(web.get_as("/feed", None).0, 401);
    assert_eq!(web.get_as("/api/stats", Some("ann:correct horse")).0, 200);
    assert_eq!(web.get_as("/", Some("ann:correct horse")).0, 200);
    assert_eq!(web.get_as("/api/stats", Some("bob:battery staple")).0, 200);
    assert_eq!(web.get_as("/api/stats", Some("bob:correct horse")).0, 401);
    assert_eq!(
        web.get_as("/api/stats", Some("carol:battery staple")).0,
        401
    );
    assert_eq!(web.get_as("/api/stats", Some("nocolon")).0, 401);
    // Health checks stay open; Torznab is guarded by its key instead.
    assert_eq!(web.get_as("/healthz", None).0, 200);
    assert_eq!(web.get_as("/torznab/api?t=caps&apikey=k", None).0, 200);
    assert_eq!(web.get_as("/torznab/api?t=caps", None).0, 401);
    drop(web);

    // Other machines' addresses: not without --auth or --public.
    let out = common::dhtkit()
        .args(["web", "--db", db_s, "--bind", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--public"), "{err}");
    for extra in [&["--public"][..], &["--auth", creds_s][..]] {
        let mut args = vec!["--db", db_s, "--bind", "0.0.0.0:0"];
        args.extend_from_slice(extra);
        let web = Web::start_with(&args);
        let port = web.base.rsplit(':').next().unwrap().to_string();
        let local = Web {
            _child: Killed(Command::new("true").spawn().unwrap()),
            base: format!("http://127.0.0.1:{port}"),
        };
        assert_eq!(local.get_as("/healthz", None).0, 200, "{extra:?}");
        drop(web);
    }
    // A credentials file that is not one is refused, with the line.
    std::fs::write(&creds, "ann:hunter2\n").unwrap();
    let out = common::dhtkit()
        .args(["web", "--db", db_s, "--auth", creds_s])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 1"));
}

#[test]
fn the_api_and_pages_over_postgres() {
    let Some(admin) = std::env::var("DHTKIT_TEST_PG")
        .ok()
        .filter(|v| !v.is_empty())
    else {
        eprintln!(
            "DHTKIT_TEST_PG is not set: no PostgreSQL server to test against (./test sets one up)"
        );
        return;
    };
    let name = format!("dhtkit_web_{}", std::process::id());
    let mut c = postgres::Client::connect(&admin, postgres::NoTls)
        .expect("DHTKIT_TEST_PG is set, so its server must be reachable");
    c.batch_execute(&format!("DROP DATABASE IF EXISTS {name}"))
        .unwrap();
    c.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
    let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
    let url = format!("{base}/{name}");
    {
        let mut s = PostgresStore::open(&url, "web-test").unwrap();
        seed(&mut s);
    }
    {
        let web = Web::start(&url);
        check_http(&web);
        check_feeds(&web);
        // The server drops every connection (as a restart does): the next requests still
        // answer, on connections opened afresh.
        let killed: i64 = c
            .query_one(
                &format!(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                     WHERE datname = '{name}' AND pid <> pg_backend_pid()"
                ),
                &[],
            )
            .unwrap()
            .get(0);
        assert!(
            killed >= 1,
            "the web server's connections were there to drop"
        );
        for _ in 0..8 {
            let (s, v) = web.json("/api/stats");
            assert_eq!((s, &v["infohashes"]), (200, &json!(48)), "{v}");
        }
    }
    // SIGTERM and SIGINT stop it cleanly, its PostgreSQL connections closed (it used to
    // abort: the blocking client was dropped inside the async runtime).
    for signal in ["TERM", "INT"] {
        let mut web = Web::start(&url);
        assert_eq!(web.json("/api/stats").0, 200);
        assert_eq!(web.stop(signal), Some(0), "dhtkit web on SIG{signal}");
    }
    let _ = c.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
}

// ---- the browser ----

/// A WebDriver session in headless Chromium (chromedriver), ended when dropped.
struct Browser {
    _driver: Killed,
    session: String,
}

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn chromedriver() -> PathBuf {
    if let Some(p) = std::env::var_os("DHTKIT_CHROMEDRIVER").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let p = PathBuf::from("/usr/bin/chromedriver");
    assert!(
        p.exists(),
        "chromedriver is missing: `./test` installs Debian's chromium and chromium-driver \
         (or set DHTKIT_CHROMEDRIVER)"
    );
    p
}

impl Browser {
    fn start(profile: &Path) -> Browser {
        let port = free_port();
        let driver = Killed(
            Command::new(chromedriver())
                .arg(format!("--port={port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("chromedriver starts"),
        );
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = ureq::get(&format!("{base}/status"))
                .timeout(Duration::from_secs(2))
                .call()
                .ok()
                .and_then(|r| r.into_json::<Value>().ok())
                .is_some_and(|v| v["value"]["ready"] == true);
            if ready {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver did not get ready in 30 s"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        let binary =
            std::env::var("DHTKIT_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": binary,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--window-size=1200,900",
                    format!("--user-data-dir={}", profile.display()),
                ]
            }
        }}});
        let v = ureq::post(&format!("{base}/session"))
            .timeout(Duration::from_secs(60))
            .send_json(caps)
            .map_err(|e| match e {
                ureq::Error::Status(_, r) => r.into_string().unwrap_or_default(),
                e => e.to_string(),
            })
            .expect("a Chromium session starts")
            .into_json::<Value>()
            .unwrap();
        let session = format!(
            "{base}/session/{}",
            v["value"]["sessionId"].as_str().expect("a session id")
        );
        Browser {
            _driver: driver,
            session,
        }
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}{path}", self.session);
        let req = ureq::request(method, &url).timeout(Duration::from_secs(30));
        let r = match body {
            Some(b) => req.send_json(b),
            None => req.call(),
        };
        match r {
            Ok(r) => r.into_json::<Value>().unwrap()["value"].clone(),
            Err(ureq::Error::Status(code, r)) => {
                panic!(
                    "{method} {path}: {code} {}",
                    r.into_string().unwrap_or_default()
                )
            }
            Err(e) => panic!("{method} {path}: {e}"),
        }
    }

    fn go(&self, url: &str) {
        self.call("POST", "/url", Some(json!({ "url": url })));
    }

    fn find_all(&self, css: &str) -> Vec<String> {
        let v = self.call(
            "POST",
            "/elements",
            Some(json!({"using": "css selector", "value": css})),
        );
        v.as_array()
            .unwrap_or_else(|| panic!("elements {css:?}: {v}"))
            .iter()
            .map(|e| {
                e[ELEMENT]
                    .as_str()
                    .unwrap_or_else(|| panic!("an element reference: {e}"))
                    .to_string()
            })
            .collect()
    }

    /// The first element matching `css`, waiting (bounded) for it to appear.
    fn find(&self, css: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(e) = self.find_all(css).into_iter().next() {
                return e;
            }
            assert!(Instant::now() < deadline, "no {css:?} on the page in 15 s");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits (bounded) until the page's URL contains `part` (a click's navigation landed).
    fn wait_url(&self, part: &str) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let url = self.call("GET", "/url", None);
            if url.as_str().is_some_and(|u| u.contains(part)) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the page never went to …{part}: {url}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn text(&self, element: &str) -> String {
        self.call("GET", &format!("/element/{element}/text"), None)
            .as_str()
            .unwrap()
            .to_string()
    }

    fn script(&self, js: &str) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            Some(json!({"script": js, "args": []})),
        )
    }

    fn screenshot(&self, name: &str) -> PathBuf {
        use base64::Engine;
        let b64 = self.call("GET", "/screenshot", None);
        let png = base64::engine::general_purpose::STANDARD
            .decode(b64.as_str().unwrap())
            .unwrap();
        assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
        let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("web-{name}.png"));
        std::fs::write(&path, png).unwrap();
        eprintln!("screenshot: {}", path.display());
        path
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = ureq::delete(&self.session)
            .timeout(Duration::from_secs(10))
            .call();
    }
}

#[test]
fn a_browser_searches_and_sees_names_as_text() {
    let db = sqlite_db("browser");
    let web = Web::start(db.to_str().unwrap());
    let profile = db.parent().unwrap().join("chromium-profile");
    let b = Browser::start(&profile);

    // Type a word of a seeded name into the search box and submit the form.
    b.go(&format!("{}/", web.base));
    let input = b.find("input[name=q]");
    b.call(
        "POST",
        &format!("/element/{input}/value"),
        Some(json!({"text": "desktop"})),
    );
    let button = b.find("form.search button[type=submit]");
    b.call("POST", &format!("/element/{button}/click"), Some(json!({})));
    let hit = b.find("table#results a.result");
    assert_eq!(b.text(&hit), "Ubuntu 24.04 Desktop amd64");
    let url = b.call("GET", "/url", None);
    assert!(url.as_str().unwrap().contains("/search?q=desktop"), "{url}");
    b.screenshot("search");

    // Follow it: the torrent page with its file tree.
    b.call("POST", &format!("/element/{hit}/click"), Some(json!({})));
    let files = b.find("#files");
    let tree = b.text(&files);
    for part in ["ubuntu", "casper", "vmlinuz", "initrd"] {
        assert!(tree.contains(part), "{part} in {tree:?}");
    }
    b.screenshot("torrent");

    // The hostile name renders as text: the same characters on screen, no script element,
    // nothing ran.
    b.go(&format!("{}/search?q=evilname", web.base));
    let hit = b.find("table#results a.result");
    assert_eq!(b.text(&hit), EVIL);
    assert_eq!(
        b.script("return document.getElementsByTagName('script').length"),
        json!(0)
    );
    assert_eq!(
        b.script("return document.getElementsByTagName('b').length"),
        json!(0)
    );
    assert_ne!(b.script("return document.title"), json!("pwned"));
    b.screenshot("hostile-name");

    // Sorting by seeders: click the heading, most seeded first; click again, least first.
    b.go(&format!("{}/search?q=pagingsample", web.base));
    let heading = b.find("#sort-seeders");
    b.call(
        "POST",
        &format!("/element/{heading}/click"),
        Some(json!({})),
    );
    b.wait_url("sort=seeders&order=desc");
    let column = |b: &Browser| -> Vec<String> {
        b.find("table#results td.seeders");
        b.find_all("table#results td.seeders")
            .iter()
            .map(|e| b.text(e))
            .collect()
    };
    let down = column(&b);
    assert_eq!(down.len(), 20, "a page of results");
    assert_eq!(down[..3], ["44", "43", "42"]);
    b.screenshot("sorted-by-seeders");
    let heading = b.find("#sort-seeders");
    b.call(
        "POST",
        &format!("/element/{heading}/click"),
        Some(json!({})),
    );
    b.wait_url("order=asc");
    assert_eq!(column(&b)[..3], ["0", "1", "2"]);
    // A filter from the form keeps the order.
    let input = b.find("input[name=min_seeders]");
    b.call(
        "POST",
        &format!("/element/{input}/value"),
        Some(json!({"text": "40"})),
    );
    let button = b.find("form.search button[type=submit]");
    b.call("POST", &format!("/element/{button}/click"), Some(json!({})));
    b.wait_url("min_seeders=40");
    assert_eq!(column(&b), ["40", "41", "42", "43", "44"]);

    // Statistics: two charts drawn.
    b.go(&format!("{}/stats", web.base));
    b.find("svg.chart");
    assert_eq!(b.find_all("svg.chart").len(), 2);
    assert_eq!(b.text(&b.find("#infohashes")), "48");
    b.screenshot("stats");
}
