//! `--metrics ADDR` on `node` and `crawl`: the Prometheus endpoint scraped over HTTP and
//! parsed, and the values checked to move with what the node does. Loopback only
//! (127.44.0.0/16).

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::Killed;

/// One sample: name, labels, value.
type Sample = (String, BTreeMap<String, String>, f64);

/// Parses the OpenMetrics text format (the subset Prometheus clients emit): comments, then
/// `name{label="value",...} number` lines, ending in `# EOF`.
fn parse(text: &str) -> Vec<Sample> {
    assert!(
        text.trim_end().ends_with("# EOF"),
        "OpenMetrics ends with # EOF"
    );
    let mut out = Vec::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("no value in {line:?}"));
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            v => v
                .parse()
                .unwrap_or_else(|_| panic!("bad value in {line:?}")),
        };
        let (name, labels) = match series.split_once('{') {
            None => (series.to_string(), BTreeMap::new()),
            Some((name, rest)) => {
                let body = rest.strip_suffix('}').expect("labels end with }");
                let mut labels = BTreeMap::new();
                for pair in body.split("\",").filter(|p| !p.is_empty()) {
                    let (k, v) = pair.split_once("=\"").expect("label=\"value\"");
                    labels.insert(k.to_string(), v.trim_end_matches('"').to_string());
                }
                (name.to_string(), labels)
            }
        };
        assert!(
            name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "metric name {name:?}"
        );
        out.push((name, labels, value));
    }
    out
}

/// The sum of every sample called `name` whose labels include `with`.
fn total(samples: &[Sample], name: &str, with: &[(&str, &str)]) -> Option<f64> {
    let hits: Vec<f64> = samples
        .iter()
        .filter(|(n, l, _)| {
            n == name
                && with
                    .iter()
                    .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.2)
        .collect();
    (!hits.is_empty()).then(|| hits.iter().sum())
}

fn scrape(url: &str) -> Vec<Sample> {
    let r = ureq::get(url)
        .timeout(Duration::from_secs(10))
        .call()
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    assert!(
        r.content_type().contains("openmetrics"),
        "{}",
        r.content_type()
    );
    parse(&r.into_string().unwrap())
}

/// Starts a dhtkit command and returns it with the metrics URL it printed.
fn start(args: &[&str]) -> (Killed, String) {
    let mut child = common::dhtkit()
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("dhtkit starts");
    let err = BufReader::new(child.stderr.take().unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in err.lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let child = Killed(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .expect("dhtkit prints its metrics address");
        if let Some(url) = line.split_whitespace().find(|w| w.ends_with("/metrics")) {
            return (child, url.to_string());
        }
    }
}

/// Polls until `check` holds on a scrape; panics after `limit`.
fn wait_for(
    url: &str,
    limit: Duration,
    what: &str,
    check: impl Fn(&[Sample]) -> bool,
) -> Vec<Sample> {
    let deadline = Instant::now() + limit;
    loop {
        let s = scrape(url);
        if check(&s) {
            return s;
        }
        assert!(Instant::now() < deadline, "{what} within {limit:?}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn a_node_reports_what_it_does() {
    let (_a, url_a) = start(&[
        "node",
        "--bind",
        "127.44.1.1:6881",
        "--bootstrap",
        "127.44.1.2:6881",
        "--metrics",
        "127.0.0.1:0",
    ]);
    let (_b, _) = start(&[
        "node",
        "--bind",
        "127.44.1.2:6881",
        "--bootstrap",
        "127.44.1.1:6881",
        "--metrics",
        "127.0.0.1:0",
    ]);
    // The two find each other: A answers B's bootstrap lookup and finishes its own.
    let s = wait_for(
        &url_a,
        Duration::from_secs(30),
        "A knows B and finished a lookup",
        |s| {
            total(s, "dhtkit_routing_table_nodes", &[]) >= Some(1.0)
                && total(s, "dhtkit_lookup_duration_seconds_count", &[]) >= Some(1.0)
        },
    );
    let node = [("node", "127.44.1.1:6881")];
    assert!(
        total(
            &s,
            "dhtkit_queries_received_total",
            &[("method", "find_node")]
        ) > Some(0.0)
    );
    assert!(total(&s, "dhtkit_queries_sent_total", &[("method", "find_node")]) > Some(0.0));
    // Two nodes are too few for a size estimate (it needs lookups that end at k nodes): the
    // gauge is there, at 0.
    assert_eq!(total(&s, "dhtkit_dht_size_estimate", &[]), Some(0.0));
    assert!(total(&s, "dhtkit_replies_sent_total", &[("kind", "response")]) > Some(0.0));
    assert!(total(&s, "dhtkit_datagrams_received_total", &node) > Some(0.0));
    assert!(total(&s, "dhtkit_responses_received_total", &node) > Some(0.0));
    assert!(total(&s, "process_resident_memory_bytes", &[]) > Some(1e6));
    // The histogram is whole: +Inf holds every lookup.
    let count = total(&s, "dhtkit_lookup_duration_seconds_count", &[]).unwrap();
    let buckets: Vec<f64> = s
        .iter()
        .filter(|x| x.0 == "dhtkit_lookup_duration_seconds_bucket")
        .map(|x| x.2)
        .collect();
    assert!(
        buckets.len() >= 2 && buckets.windows(2).all(|w| w[0] <= w[1]),
        "cumulative: {buckets:?}"
    );
    assert_eq!(
        total(
            &s,
            "dhtkit_lookup_duration_seconds_bucket",
            &[("le", "+Inf")]
        ),
        Some(count)
    );
    for name in [
        "dhtkit_dropped_total",
        "dhtkit_peer_store_peers",
        "dhtkit_peer_store_infohashes",
        "dhtkit_query_timeouts_total",
        "dhtkit_bytes_received_total",
    ] {
        assert!(total(&s, name, &[]).is_some(), "{name} is exported");
    }
    assert!(total(&s, "dhtkit_dropped_total", &[("reason", "per_ip_rate")]).is_some());

    // Pings and an announce move their counters by exactly what was sent.
    let pings =
        |s: &[Sample]| total(s, "dhtkit_queries_received_total", &[("method", "ping")]).unwrap();
    let before = pings(&s);
    for _ in 0..3 {
        let out = common::dhtkit()
            .args([
                "ping",
                "127.44.1.1:6881",
                "--bind",
                "127.44.1.9:0",
                "--bootstrap",
                "127.44.1.1:6881",
                "--timeout",
                "10",
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    wait_for(
        &url_a,
        Duration::from_secs(10),
        "three more pings counted",
        |s| pings(s) == before + 3.0,
    );
    let ih = "44".repeat(20);
    let out = common::dhtkit()
        .args([
            "announce",
            &ih,
            "--port",
            "4444",
            "--bind",
            "127.44.1.9:0",
            "--bootstrap",
            "127.44.1.1:6881",
            "--timeout",
            "20",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = wait_for(
        &url_a,
        Duration::from_secs(10),
        "the announce stored",
        |s| total(s, "dhtkit_peer_store_peers", &[]) >= Some(1.0),
    );
    assert!(
        total(
            &s,
            "dhtkit_queries_received_total",
            &[("method", "announce_peer")]
        ) >= Some(1.0)
    );
    assert!(
        total(
            &s,
            "dhtkit_queries_received_total",
            &[("method", "get_peers")]
        ) >= Some(1.0)
    );
}

#[test]
fn a_crawler_reports_its_stages() {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("metrics-crawl-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("crawl.sqlite");
    let (_a, _) = start(&[
        "node",
        "--bind",
        "127.44.2.1:6881",
        "--bootstrap",
        "127.44.2.9:6881",
        "--metrics",
        "127.0.0.1:0",
    ]);
    let (_c, url) = start(&[
        "crawl",
        "--bind",
        "127.44.2.9:6881",
        "--bootstrap",
        "127.44.2.1:6881",
        "--db",
        db.to_str().unwrap(),
        "--metrics",
        "127.0.0.1:0",
        "--duration",
        "60",
    ]);
    // The walker asks the node for samples (BEP 51), and the node answers.
    let s = wait_for(
        &url,
        Duration::from_secs(30),
        "sample_infohashes answered",
        |s| total(s, "dhtkit_crawl_samples_answered_total", &[]) >= Some(1.0),
    );
    assert!(total(&s, "dhtkit_crawl_samples_sent_total", &[]) >= Some(1.0));
    assert!(
        total(
            &s,
            "dhtkit_queries_sent_total",
            &[("method", "sample_infohashes")]
        ) >= Some(1.0)
    );
    for name in [
        "dhtkit_crawl_infohashes_seen_total",
        "dhtkit_crawl_infohashes_new_total",
        "dhtkit_crawl_metadata_fetched_total",
        "dhtkit_crawl_metadata_given_up_total",
        "dhtkit_crawl_fetches_running",
        "dhtkit_crawl_db_rows_written_total",
        "dhtkit_crawl_db_infohashes",
        "dhtkit_crawl_db_batch_seconds_count",
        "dhtkit_routing_table_nodes",
        "process_resident_memory_bytes",
    ] {
        assert!(total(&s, name, &[]).is_some(), "{name} is exported");
    }
    for q in ["lookup", "fetch", "retry"] {
        assert!(
            total(&s, "dhtkit_crawl_queue_depth", &[("queue", q)]).is_some(),
            "queue {q}"
        );
    }
    // An infohash asked for at one of the crawler's nodes is seen, new, and written.
    let ih = "45".repeat(20);
    let _ = common::dhtkit()
        .args([
            "get-peers",
            &ih,
            "--bind",
            "127.44.2.5:0",
            "--bootstrap",
            "127.44.2.9:6881",
            "--timeout",
            "5",
        ])
        .output()
        .unwrap();
    let s = wait_for(
        &url,
        Duration::from_secs(20),
        "the sighting counted and written",
        |s| {
            total(s, "dhtkit_crawl_infohashes_new_total", &[]) >= Some(1.0)
                && total(s, "dhtkit_crawl_db_rows_written_total", &[]) >= Some(1.0)
        },
    );
    assert!(total(&s, "dhtkit_crawl_db_batch_seconds_count", &[]) >= Some(1.0));
    assert!(total(&s, "dhtkit_crawl_infohashes_seen_total", &[]) >= Some(1.0));
}

#[test]
fn a_taken_metrics_address_is_a_clean_error() {
    let taken = std::net::TcpListener::bind("127.44.3.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = common::dhtkit()
        .args([
            "node",
            "--bind",
            "127.44.3.2:6881",
            "--bootstrap",
            "127.44.3.3:6881",
            "--metrics",
            &addr,
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--metrics") && err.contains(&addr), "{err}");
}
