//! Both stores through one scenario: SQLite always; PostgreSQL against a real server when
//! `DHTKIT_TEST_PG` names one (an admin URL such as
//! `postgres://postgres@127.0.0.1:54329/postgres`; `./test` starts a throwaway cluster and
//! sets it), failing when it is set and the server cannot be reached. Each PostgreSQL test
//! works in a database of its own, dropped at the end.

use std::sync::atomic::{AtomicUsize, Ordering};

use dhtkit_crawl::metadata::{FileEntry, TorrentInfo};
use dhtkit_crawl::store::{
    Batch, Fetched, Scraped, SearchQuery, Sighting, Sort, Store, StoreRead, StoreStats, Swarm,
};
use dhtkit_crawl::{PostgresStore, SqliteStore};
use dhtkit_proto::Id;

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A fresh database on the test server, dropped when this is dropped.
struct TestDb {
    admin: String,
    name: String,
    url: String,
}

impl TestDb {
    fn new() -> Option<TestDb> {
        let Some(admin) = std::env::var("DHTKIT_TEST_PG")
            .ok()
            .filter(|v| !v.is_empty())
        else {
            eprintln!("DHTKIT_TEST_PG is not set: no PostgreSQL server to test against (./test sets one up)");
            return None;
        };
        let name = format!(
            "dhtkit_test_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        let mut c = postgres::Client::connect(&admin, postgres::NoTls)
            .expect("DHTKIT_TEST_PG is set, so its server must be reachable");
        c.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
        let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
        let url = format!("{base}/{name}");
        Some(TestDb { admin, name, url })
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Ok(mut c) = postgres::Client::connect(&self.admin, postgres::NoTls) {
            let _ = c.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
    }
}

fn info(name: &str, files: &[&str]) -> TorrentInfo {
    let files = files
        .iter()
        .map(|p| FileEntry {
            path: p.to_string(),
            length: 10,
        })
        .collect();
    TorrentInfo::new(name, 16384, files)
}

fn sighting(ih: Id, at: i64, sources: i64) -> Sighting {
    Sighting {
        info_hash: ih,
        sources,
        first: at,
        last: at,
        count: 1,
    }
}

fn fetched(ih: Id, name: &str, files: &[&str], at: i64) -> Fetched {
    Fetched {
        info_hash: ih,
        info: info(name, files),
        at,
        peer: "127.0.0.1:1".parse().unwrap(),
        info_dict: None,
    }
}

/// The same story for every backend: sightings merge, metadata fills a row in once, search
/// finds words in names and paths and reads nothing as syntax, export filters by time.
fn scenario(s: &mut (impl Store + StoreRead)) {
    let (a, b) = (Id([1; 20]), Id([2; 20]));
    s.write(&Batch {
        sightings: vec![sighting(a, 100, 1), sighting(b, 200, 1)],
        torrents: vec![],
        ..Batch::default()
    })
    .unwrap();
    s.write(&Batch {
        sightings: vec![sighting(a, 300, 2)],
        torrents: vec![fetched(
            a,
            "Ubuntu.Desktop.24.04",
            &["ubuntu/desktop.iso", "README"],
            310,
        )],
        ..Batch::default()
    })
    .unwrap();
    let r = s.torrent(&a).unwrap().unwrap();
    assert_eq!(
        (r.first_seen, r.last_seen, r.seen_count, r.sources),
        (100, 300, 2, 3)
    );
    let m = r.metadata.unwrap();
    assert_eq!(
        (m.name.as_str(), m.files.len()),
        ("Ubuntu.Desktop.24.04", 2)
    );
    assert_eq!(s.missing_metadata(10).unwrap(), vec![b]);
    assert_eq!(
        s.stats().unwrap(),
        StoreStats {
            infohashes: 2,
            with_metadata: 1
        }
    );
    assert_eq!(
        s.search(&SearchQuery::words("desktop", 10)).unwrap().len(),
        1,
        "words inside dotted names"
    );
    assert_eq!(
        s.search(&SearchQuery::words("readme", 10)).unwrap().len(),
        1,
        "file paths are indexed"
    );
    assert!(s
        .search(&SearchQuery::words("'; DROP TABLE torrents; --", 10))
        .unwrap()
        .is_empty());
    assert!(s
        .search(&SearchQuery::words("\"unbalanced ( & |", 10))
        .unwrap()
        .is_empty());
    let mut rows = Vec::new();
    s.export(Some(150), &mut |r| {
        rows.push(r);
        Ok(())
    })
    .unwrap();
    assert_eq!(rows.len(), 1, "only the one first seen since 150");
    assert_eq!(rows[0].name, None);
    // A second fetch of the same torrent changes nothing.
    s.write(&Batch {
        sightings: vec![],
        torrents: vec![fetched(a, "Other", &["x"], 400)],
        ..Batch::default()
    })
    .unwrap();
    assert_eq!(
        s.search(&SearchQuery::words("desktop", 10)).unwrap().len(),
        1
    );
    assert!(s
        .search(&SearchQuery::words("other", 10))
        .unwrap()
        .is_empty());
}

fn scraped(ih: Id, seeders: u64, leechers: u64, at: i64, next_at: i64) -> Scraped {
    Scraped {
        info_hash: ih,
        swarm: Swarm {
            seeders,
            leechers,
            at,
        },
        next_at,
    }
}

/// Live swarms: named torrents are due for a scrape at once, a scrape stores its counts and
/// the next due time, search sorts and filters by them, and pruning drops only torrents
/// scraped without seeders for long enough (with their files and search entries).
fn swarms(s: &mut (impl Store + StoreRead)) {
    let ids: Vec<Id> = (1..=4u8).map(|i| Id([i; 20])).collect();
    let named = [
        ("Alpha film 1080p", 5_000u64),
        ("Beta film 720p", 9_000),
        ("Gamma film 2160p", 1_000),
    ];
    s.write(&Batch {
        sightings: ids.iter().map(|&ih| sighting(ih, 100, 1)).collect(),
        torrents: named
            .iter()
            .zip(&ids)
            .map(|((n, size), &ih)| {
                let mut f = fetched(ih, n, &[&format!("{n}/video.mkv")], 200);
                f.info.total_size = *size;
                f
            })
            .collect(),
        ..Batch::default()
    })
    .unwrap();
    // Named torrents are due once named; the unnamed one never.
    let mut due: Vec<Id> = s
        .due_scrapes(1_000, 10)
        .unwrap()
        .iter()
        .map(|d| d.info_hash)
        .collect();
    due.sort();
    assert_eq!(due, ids[..3]);
    assert!(
        s.due_scrapes(199, 10).unwrap().is_empty(),
        "not before it was named"
    );
    s.write(&Batch {
        scrapes: vec![
            scraped(ids[0], 12, 3, 1_000, 5_000),
            scraped(ids[1], 0, 0, 1_000, 2_000),
            scraped(ids[2], 40, 1, 1_000, 9_000),
        ],
        ..Batch::default()
    })
    .unwrap();
    assert!(s.due_scrapes(1_999, 10).unwrap().is_empty());
    let due = s.due_scrapes(6_000, 10).unwrap();
    assert_eq!(
        due.iter().map(|d| d.info_hash).collect::<Vec<_>>(),
        [ids[1], ids[0]],
        "the longest overdue first"
    );
    assert_eq!(due[0].first_seen, 100);
    let r = s.torrent(&ids[0]).unwrap().unwrap();
    assert_eq!(
        r.swarm,
        Some(Swarm {
            seeders: 12,
            leechers: 3,
            at: 1_000
        })
    );
    assert_eq!(r.last_seeded, Some(1_000));
    assert_eq!(s.torrent(&ids[1]).unwrap().unwrap().last_seeded, None);
    assert_eq!(s.torrent(&ids[3]).unwrap().unwrap().swarm, None);

    fn names(s: &impl StoreRead, q: SearchQuery) -> Vec<String> {
        s.search(&q).unwrap().into_iter().map(|h| h.name).collect()
    }
    let film = |sort, ascending| SearchQuery {
        text: "film".into(),
        sort,
        ascending,
        limit: 10,
        ..SearchQuery::default()
    };
    assert_eq!(
        names(&*s, film(Sort::Seeders, false)),
        ["Gamma film 2160p", "Alpha film 1080p", "Beta film 720p"]
    );
    assert_eq!(
        names(&*s, film(Sort::Size, true)),
        ["Gamma film 2160p", "Alpha film 1080p", "Beta film 720p"]
    );
    assert_eq!(
        names(
            &*s,
            SearchQuery {
                min_seeders: Some(10),
                max_size: Some(4_000),
                ..film(Sort::Size, false)
            }
        ),
        ["Gamma film 2160p"]
    );
    let hit = &s.search(&film(Sort::Seeders, false)).unwrap()[0];
    assert_eq!(hit.swarm.map(|w| (w.seeders, w.leechers)), Some((40, 1)));
    // No words: every named torrent, newest first, with the filters.
    assert_eq!(
        names(
            &*s,
            SearchQuery {
                limit: 10,
                ..SearchQuery::default()
            }
        )
        .len(),
        3
    );
    assert_eq!(
        names(
            &*s,
            SearchQuery {
                sort: Sort::Seeders,
                limit: 1,
                ..SearchQuery::default()
            }
        ),
        ["Gamma film 2160p"]
    );
    assert!(names(
        &*s,
        SearchQuery {
            text: "+++".into(),
            limit: 10,
            ..SearchQuery::default()
        }
    )
    .is_empty());

    // Seeded ones stay; the one never seeded since first seen at 100 goes at 101 and later.
    assert_eq!(s.prune_dead(100).unwrap(), 0);
    assert_eq!(s.prune_dead(101).unwrap(), 1);
    assert!(s.torrent(&ids[1]).unwrap().is_none());
    assert!(s
        .search(&SearchQuery::words("beta", 10))
        .unwrap()
        .is_empty());
    assert_eq!(names(&*s, film(Sort::Relevance, false)).len(), 2);
    // A later scrape without seeders: dead since its last seeded scrape.
    s.write(&Batch {
        scrapes: vec![scraped(ids[0], 0, 2, 3_000, 9_000)],
        ..Batch::default()
    })
    .unwrap();
    assert_eq!(
        s.torrent(&ids[0]).unwrap().unwrap().last_seeded,
        Some(1_000)
    );
    assert_eq!(s.prune_dead(1_000).unwrap(), 0);
    assert_eq!(s.prune_dead(1_001).unwrap(), 2, "both last seeded at 1,000");
    assert!(s
        .search(&SearchQuery::words("film", 10))
        .unwrap()
        .is_empty());
    // Never scraped (the unnamed one): never pruned.
    assert!(s.torrent(&ids[3]).unwrap().is_some());
    assert_eq!(s.stats().unwrap().infohashes, 1);
}

#[test]
fn sqlite_store_scrapes_sorts_and_prunes() {
    let dir = std::env::temp_dir().join(format!("dhtkit-swarms-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut s = SqliteStore::open(&dir.join("crawl.sqlite")).unwrap();
    swarms(&mut s);
    drop(s);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn postgres_store_scrapes_sorts_and_prunes() {
    let Some(db) = TestDb::new() else { return };
    let mut s = PostgresStore::open(&db.url, "crawler-a").unwrap();
    swarms(&mut s);
}

/// Writes batches of new infohashes (a few named, the rest only seen) through a disk cap,
/// as the crawler's store thread does: nothing is deleted until the cap is reached, the
/// store never passes it by more than `slack` bytes, the oldest unnamed infohashes go first,
/// and the named torrents stay.
fn capped(s: &mut (impl Store + StoreRead), cap: u64, slack: u64, batches: u32) {
    use dhtkit_crawl::cap::DiskCap;
    let mut c = DiskCap::new(cap);
    let mut written = 0u64;
    let mut first_eviction = None;
    let mut max_bytes = 0;
    let ih = |n: u32| {
        let mut b = [0u8; 20];
        b[..4].copy_from_slice(&n.to_be_bytes());
        b[4..8].copy_from_slice(&n.wrapping_mul(2_654_435_761).to_le_bytes());
        Id(b)
    };
    for k in 0..batches {
        let base = k * 2_000;
        let mut batch = Batch {
            sightings: (0..2_000)
                .map(|i| sighting(ih(base + i), (base + i) as i64 + 1, 1))
                .collect(),
            ..Batch::default()
        };
        // One named torrent a batch.
        batch.torrents.push(fetched(
            ih(base),
            &format!("named torrent {k}"),
            &["a/file.bin", "b/other.bin"],
            (base + 1) as i64,
        ));
        s.write(&batch).unwrap();
        written += 2_000;
        let r = c.check(s).unwrap();
        assert!(!r.stuck, "stuck at batch {k}: {r:?}, {:?}", s.stats());
        max_bytes = max_bytes.max(r.size.bytes);
        let n = s.stats().unwrap().infohashes;
        if r.evicted == 0 && first_eviction.is_none() {
            assert_eq!(n, written, "nothing is deleted below the cap");
        }
        if r.evicted > 0 && first_eviction.is_none() {
            first_eviction = Some(k);
        }
    }
    let k = first_eviction.expect("the writes reached the cap");
    assert!(k >= 1, "not at the first batch: {k}");
    assert!(
        max_bytes <= cap + slack,
        "{max_bytes} bytes with a cap of {cap}"
    );
    // The oldest infohash that was never named went first; the named ones stayed.
    assert!(s.torrent(&ih(1)).unwrap().is_none());
    for k in 0..batches {
        let t = s.torrent(&ih(k * 2_000)).unwrap();
        assert!(
            t.and_then(|t| t.metadata).is_some(),
            "named torrent {k} kept"
        );
    }
    assert_eq!(
        s.search(&SearchQuery::words("named torrent", 1_000))
            .unwrap()
            .len(),
        batches as usize
    );
    let newest = ih(batches * 2_000 - 1);
    assert!(s.torrent(&newest).unwrap().is_some(), "the newest kept");
}

#[test]
fn sqlite_store_holds_a_disk_cap() {
    let dir = std::env::temp_dir().join(format!("dhtkit-cap-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let path = dir.join("crawl.sqlite");
    let mut s = SqliteStore::open(&path).unwrap();
    // 4 MiB: about 25,000 infohashes; 60 batches write 120,000. A batch of 2,000 rows is
    // about 400 KB, the slack allowed.
    capped(&mut s, 4 << 20, 512 << 10, 60);
    let on_disk = std::fs::metadata(&path).unwrap().len();
    assert!(on_disk <= (4 << 20) + (512 << 10), "{on_disk}");
    drop(s);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn postgres_store_holds_a_disk_cap() {
    let Some(db) = TestDb::new() else { return };
    let mut s = PostgresStore::open(&db.url, "crawler-a").unwrap();
    // An empty database is about 8 MB; the cap leaves room for some 100,000 rows.
    let empty = s.size().unwrap().bytes;
    capped(&mut s, empty + (24 << 20), 8 << 20, 100);
}

#[test]
fn sqlite_store_keeps_sightings_metadata_and_search() {
    let dir = std::env::temp_dir().join(format!("dhtkit-stores-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let path = dir.join("crawl.sqlite");
    let mut s = SqliteStore::open(&path).unwrap();
    scenario(&mut s);
    drop(s);
    let ro = SqliteStore::open_read_only(&path).unwrap();
    assert_eq!(
        ro.search(&SearchQuery::words("ubuntu", 10)).unwrap().len(),
        1
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn postgres_store_keeps_sightings_metadata_and_search() {
    let Some(db) = TestDb::new() else { return };
    let mut s = PostgresStore::open(&db.url, "crawler-a").unwrap();
    scenario(&mut s);
    // Read-only connections read, and refuse to write.
    let mut ro = PostgresStore::open_read_only(&db.url).unwrap();
    assert_eq!(
        ro.search(&SearchQuery::words("ubuntu", 10)).unwrap().len(),
        1
    );
    assert!(ro
        .write(&Batch {
            sightings: vec![sighting(Id([9; 20]), 1, 1)],
            ..Batch::default()
        })
        .is_err());
    // Opening again runs no migration twice.
    drop(s);
    let s2 = PostgresStore::open(&db.url, "crawler-b").unwrap();
    assert_eq!(
        s2.search(&SearchQuery::words("ubuntu", 10)).unwrap().len(),
        1
    );
}

#[test]
fn two_crawlers_write_overlapping_batches_without_duplicates() {
    let Some(db) = TestDb::new() else { return };
    // Both open (and migrate) at once.
    let urls = [db.url.clone(), db.url.clone()];
    let stores: Vec<PostgresStore> = std::thread::scope(|sc| {
        let hs: Vec<_> = urls
            .iter()
            .enumerate()
            .map(|(i, u)| {
                sc.spawn(move || PostgresStore::open(u, &format!("crawler-{i}")).unwrap())
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let ids: Vec<Id> = (0..2000u32)
        .map(|i| {
            let mut b = [0u8; 20];
            b[..4].copy_from_slice(&i.to_be_bytes());
            Id(b)
        })
        .collect();
    std::thread::scope(|sc| {
        for (k, mut s) in stores.into_iter().enumerate() {
            let ids = &ids;
            sc.spawn(move || {
                for round in 0..20 {
                    // Overlapping halves, in opposite orders.
                    let mut batch = Batch::default();
                    for j in 0..200 {
                        let i = if k == 0 {
                            round * 50 + j
                        } else {
                            1999 - (round * 50 + j)
                        };
                        batch
                            .sightings
                            .push(sighting(ids[i], 1000 + round as i64, 1));
                    }
                    batch.torrents.push(fetched(
                        ids[round * 7],
                        &format!("torrent {round}"),
                        &["f"],
                        5,
                    ));
                    s.write(&batch).unwrap();
                }
            });
        }
    });
    let mut c = postgres::Client::connect(&db.url, postgres::NoTls).unwrap();
    let dup: i64 = c
        .query_one(
            "SELECT count(*) FROM (SELECT info_hash FROM torrents GROUP BY info_hash HAVING count(*) > 1) d",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(dup, 0, "no duplicate rows");
    let seen: i64 = c
        .query_one(
            "SELECT coalesce(sum(seen_count), 0)::int8 FROM torrents",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(seen, 2 * 20 * 200, "every sighting counted once");
    let attributed: i64 = c
        .query_one("SELECT count(DISTINCT first_crawler) FROM torrents", &[])
        .unwrap()
        .get(0);
    assert_eq!(
        attributed, 2,
        "rows are attributed to the crawler that saw them first"
    );
    let named: i64 = c
        .query_one("SELECT count(*) FROM torrents WHERE name IS NOT NULL", &[])
        .unwrap()
        .get(0);
    assert_eq!(named, 20, "each torrent named once");
}
