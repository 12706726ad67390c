//! `dhtkit crawl`, `search`, `show` and `export`: the crawler and its index from the shell.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use dhtkit_crawl::store::{self, SearchQuery, Sort, Source, StoreRead};
use dhtkit_crawl::{CrawlConfig, CrawlStats, Crawler};
use serde_json::json;

use crate::{parse_binds, parse_id, parse_secs, BadInput};
use dhtkit_crawl::view::{
    export_json, hit_json, human_size, magnet, parse_rfc3339, record_json, rfc3339,
};

#[derive(Args, Debug)]
pub(crate) struct CrawlArgs {
    /// UDP address of the first node (node i binds port + i). Give an IPv4 and an IPv6
    /// address to crawl both families (BEP 32). Default: 0.0.0.0:6881 and [::]:6881 (IPv4
    /// only, with a warning, where IPv6 is unavailable).
    #[arg(long, value_name = "ADDR:PORT")]
    bind: Vec<String>,
    /// Bootstrap node HOST:PORT; repeat or separate with commas. Replaces the default routers.
    #[arg(long, value_delimiter = ',')]
    bootstrap: Vec<String>,
    /// The database: a SQLite file (default: crawl.sqlite in the per-user data directory) or
    /// a postgres://USER@HOST/DB URL (several crawlers may share one).
    #[arg(long)]
    db: Option<String>,
    /// Also write one JSON line per fetched torrent to PATH (`-`: stdout).
    #[arg(long)]
    jsonl: Option<String>,
    /// Outbound DHT packets per second, all nodes together.
    #[arg(long, default_value_t = 500)]
    rate: u32,
    /// Of --rate, packets per second for BEP 33 scrapes that keep named torrents' seeder
    /// counts live (new torrents hourly, older ones daily or less; default: a tenth of
    /// --rate). 0: no scrapes.
    #[arg(long, value_name = "PPS")]
    scrape_rate: Option<u32>,
    /// Keep the database under SIZE (700M, 20G; SQLite: the file and its WAL; PostgreSQL:
    /// the database). At the cap, infohashes never named go first, then the torrents
    /// longest without seeders; below it nothing is deleted.
    #[arg(long, value_name = "SIZE")]
    max_db_size: Option<String>,
    /// Do not keep fetched info dictionaries nor serve them back to peers over BEP 9 (by
    /// default the crawler keeps each one, tens of kilobytes, and serves it on TCP).
    #[arg(long)]
    no_serve_metadata: bool,
    /// TCP address the stored info dictionaries are served on (default: the first node's
    /// address and port, on TCP).
    #[arg(long, value_name = "ADDR:PORT")]
    serve_metadata_bind: Option<String>,
    /// Metadata bytes served per second, all peers together (1M, 200K).
    #[arg(long, value_name = "SIZE", default_value = "1M")]
    serve_metadata_rate: String,
    /// Peers served at once.
    #[arg(long, value_name = "N", default_value_t = 64)]
    serve_metadata_connections: usize,
    /// Routing table size of each node.
    #[arg(long, default_value_t = 1280)]
    max_nodes: usize,
    /// Queries each node answers per second from one IP (burst: ten seconds' worth); 0 = no
    /// limit. Default as `node` and libtorrent.
    #[arg(long, value_name = "QPS", default_value_t = 5)]
    per_ip_rate: u32,
    /// Let several nodes share one IP, in the routing tables and in lookups. For test
    /// networks on one host (all IPv6 nodes on ::1); never on the internet.
    #[arg(long)]
    allow_shared_ips: bool,
    /// Metadata connections at once.
    #[arg(long, default_value_t = 200)]
    metadata_concurrency: usize,
    /// Record infohashes only; fetch no metadata.
    #[arg(long)]
    no_metadata: bool,
    /// Honest nodes to run (distinct ids spread over the keyspace, consecutive ports).
    #[arg(long, default_value_t = 1)]
    nodes: usize,
    /// State file of the first node (node i uses FILE.i): routing tables survive restarts.
    #[arg(long)]
    state: Option<PathBuf>,
    /// File paths kept per torrent (the real count is always kept).
    #[arg(long, default_value_t = 10_000)]
    max_files: usize,
    /// Largest metadata accepted, in bytes.
    #[arg(long, default_value_t = 10 * 1024 * 1024)]
    max_metadata_size: usize,
    /// Seconds one metadata fetch may take.
    #[arg(long, default_value_t = 10.0)]
    fetch_timeout: f64,
    /// Do not walk the DHT with BEP 51 sample_infohashes.
    #[arg(long)]
    no_sample: bool,
    /// Most nodes the BEP 51 walk keeps track of (about 200 bytes each).
    #[arg(long, default_value_t = 1_000_000)]
    walk_nodes: usize,
    /// Also print the status as one JSON object per line on stdout (every 10 seconds and
    /// when the crawl stops), with `"event": "status"`.
    #[arg(long)]
    json: bool,
    /// Ask nodes for samples again after at most SECS, shorter than the interval they ask
    /// for (by default their interval is honoured).
    #[arg(long)]
    sample_interval: Option<f64>,
    /// Stop by itself after SECS (flushing everything, as on SIGINT).
    #[arg(long)]
    duration: Option<f64>,
    /// Serve Prometheus metrics at http://ADDR/metrics (for example 127.0.0.1:9100).
    #[arg(long, value_name = "ADDR")]
    metrics: Option<String>,
}

/// `--db`: as given, or the default SQLite file.
pub(crate) fn db_spec(db: Option<&str>) -> String {
    db.map_or_else(
        || dhtkit_crawl::default_db_path().display().to_string(),
        str::to_string,
    )
}

fn open_read(db: Option<&str>) -> Result<Box<dyn StoreRead + Send>, BadInput> {
    store::open_reader(&db_spec(db)).map_err(|e| BadInput(e.to_string()))
}

/// How this crawler signs the rows it writes to a shared store: host name and bound address.
fn crawler_name(bind: &std::net::SocketAddr) -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "crawler".into());
    format!("{host}@{bind}")
}

pub(crate) async fn crawl(a: CrawlArgs) -> Result<ExitCode, BadInput> {
    let mut cfg = CrawlConfig::default();
    cfg.bind = parse_binds(&a.bind)?;
    cfg.bootstrap = crate::bootstrap_list(&a.bootstrap)?;
    cfg.nodes = a.nodes.clamp(1, 256);
    cfg.max_nodes = a.max_nodes;
    cfg.per_ip_rate = a.per_ip_rate;
    cfg.allow_shared_ips = a.allow_shared_ips;
    cfg.rate = a.rate.max(1);
    cfg.keep_info_dicts = !a.no_serve_metadata;
    let serve = if a.no_serve_metadata {
        None
    } else {
        let rate = dhtkit_crawl::cap::parse_size(&a.serve_metadata_rate)
            .filter(|r| *r >= 1024)
            .ok_or_else(|| {
                BadInput(format!(
                    "--serve-metadata-rate {:?}: bytes a second, at least 1K (200K, 1M)",
                    a.serve_metadata_rate
                ))
            })?;
        if !(1..=10_000).contains(&a.serve_metadata_connections) {
            return Err(BadInput(
                "--serve-metadata-connections must be from 1 to 10,000".into(),
            ));
        }
        let bind = a
            .serve_metadata_bind
            .as_deref()
            .map(crate::parse_addr)
            .transpose()?;
        let mut sc = dhtkit_crawl::serve::ServeConfig::default();
        sc.bytes_per_second = rate;
        sc.max_connections = a.serve_metadata_connections;
        Some((bind, sc))
    };
    cfg.max_db_size = match &a.max_db_size {
        None => None,
        Some(v) => match dhtkit_crawl::cap::parse_size(v) {
            Some(n) if n >= 1 << 20 => Some(n),
            _ => {
                return Err(BadInput(format!(
                    "--max-db-size {v:?}: a size of at least 1M, such as 700M or 20G"
                )))
            }
        },
    };
    cfg.scrape_rate = match a.scrape_rate {
        None => cfg.rate / 10,
        Some(r) if r <= cfg.rate => r,
        Some(r) => {
            return Err(BadInput(format!(
                "--scrape-rate {r} is more than --rate {}: scrapes are part of it",
                cfg.rate
            )))
        }
    };
    cfg.metadata = !a.no_metadata;
    cfg.metadata_concurrency = a.metadata_concurrency.max(1);
    cfg.max_files = a.max_files;
    cfg.fetch.max_metadata_size = a.max_metadata_size;
    cfg.fetch.deadline = parse_secs("--fetch-timeout", a.fetch_timeout)?;
    cfg.sample = !a.no_sample;
    cfg.walk_nodes = a.walk_nodes;
    cfg.sample_interval = a
        .sample_interval
        .map(|s| parse_secs("--sample-interval", s))
        .transpose()?;
    cfg.state = a.state.clone();
    if let Some(p) = &a.state {
        dhtkit::SavedState::load_if_exists(p).map_err(|e| BadInput(e.to_string()))?;
    }
    let duration = a
        .duration
        .map(|s| parse_secs("--duration", s))
        .transpose()?;
    let spec = db_spec(a.db.as_deref());
    let first = cfg.bind.first().copied().unwrap_or(dhtkit::DEFAULT_BIND[0]);
    let (at, name) = (spec.clone(), crawler_name(&first));
    // Opening may block (PostgreSQL's client runs a runtime of its own).
    let store = tokio::task::spawn_blocking(move || store::open_writer(&at, &name))
        .await
        .map_err(|e| BadInput(e.to_string()))?
        .map_err(|e| BadInput(e.to_string()))?;
    let jsonl: Option<Box<dyn Write + Send>> = match a.jsonl.as_deref() {
        None => None,
        Some("-") => Some(Box::new(std::io::stdout())),
        Some(p) => Some(Box::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .map_err(|e| BadInput(format!("--jsonl {p}: {e}")))?,
        )),
    };
    let shown = if store::is_postgres_url(&spec) {
        "PostgreSQL".to_string()
    } else {
        spec.clone()
    };
    let crawler = match Crawler::start(cfg, store, jsonl).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(1));
        }
    };
    let first = &crawler.nodes()[0];
    eprintln!(
        "dhtkit crawl: {} nodes from {}, id {}, database {}",
        crawler.nodes().len(),
        first
            .local_addrs()
            .iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .join(" and "),
        first.id(),
        shown
    );
    let server = match serve {
        None => None,
        Some((given, sc)) => {
            let bind = given.unwrap_or(first.local_addrs()[0]);
            let reader_spec = spec.clone();
            let reader = tokio::task::spawn_blocking(move || store::open_reader(&reader_spec))
                .await
                .map_err(|e| BadInput(e.to_string()))?;
            let started = match reader {
                Ok(r) => dhtkit_crawl::serve::MetadataServer::start(bind, r, sc)
                    .await
                    .map_err(|e| format!("cannot listen on TCP {bind}: {e}")),
                Err(e) => Err(e.to_string()),
            };
            match started {
                Ok(s) => {
                    eprintln!("serving stored metadata (BEP 9) on TCP {}", s.local_addr());
                    Some(s)
                }
                // The default address taken (another BitTorrent program on the port): crawl
                // anyway, and say how to choose.
                Err(e) if given.is_none() => {
                    eprintln!(
                        "warning: not serving metadata: {e}; give --serve-metadata-bind ADDR:PORT, or --no-serve-metadata"
                    );
                    None
                }
                Err(e) => {
                    crawler.shutdown().await;
                    return Err(BadInput(format!("--serve-metadata-bind: {e}")));
                }
            }
        }
    };
    if let Some(addr) = a.metrics.as_deref() {
        let source = crate::metrics::Source {
            nodes: crawler.nodes().to_vec(),
            crawl: Some(crawler.stats().clone()),
            served: server.as_ref().map(|s| s.stats().clone()),
        };
        match crate::metrics::serve(addr, source).await {
            Ok(at) => eprintln!("metrics on http://{at}/metrics"),
            Err(e) => {
                crawler.shutdown().await;
                return Err(e);
            }
        }
    }
    let Some(mut stop) = crate::StopSignals::install() else {
        return Ok(ExitCode::from(1));
    };
    let deadline = async {
        match duration {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(deadline);
    let tty = std::io::stderr().is_terminal();
    let mut status = Status::default();
    let mut tick = tokio::time::interval(if tty {
        Duration::from_secs(1)
    } else {
        Duration::from_secs(30)
    });
    tick.tick().await;
    let mut json_tick = tokio::time::interval(Duration::from_secs(10));
    json_tick.tick().await;
    loop {
        tokio::select! {
            _ = stop.recv() => break,
            _ = &mut deadline => break,
            _ = tick.tick() => {
                let line = status.line(&crawler).await;
                if tty {
                    eprint!("\r\x1b[K{line}");
                } else {
                    eprintln!("dhtkit crawl: {line}");
                }
            }
            _ = json_tick.tick(), if a.json => {
                status.update(&crawler).await;
                print_json(&status.json(crawler.stats(), false));
            }
        }
    }
    if tty {
        eprint!("\r\x1b[K");
    }
    status.update(&crawler).await;
    let stats = crawler.stats().clone();
    if let Some(s) = server {
        s.shutdown().await;
    }
    crawler.shutdown().await;
    // After the shutdown, the counters include the last batch.
    let line = status.text(&stats);
    if a.json {
        print_json(&status.json(&stats, true));
    }
    eprintln!("dhtkit crawl stopped: {line}");
    Ok(ExitCode::SUCCESS)
}

fn print_json(v: &serde_json::Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{v}").and_then(|_| out.flush());
}

/// The status line and `--json`: what the crawl has done, and its rates since the last look.
#[derive(Default)]
struct Status {
    nodes: usize,
    packets: u64,
    pps: f64,
    last_at: Option<std::time::Instant>,
}

impl Status {
    /// Reads the nodes' counters and the packet rate since the last update.
    async fn update(&mut self, c: &Crawler) {
        let (mut nodes, mut packets) = (0, 0);
        for d in c.nodes() {
            if let Ok(s) = d.stats().await {
                nodes += s.nodes;
                packets += s.node.datagrams_in + s.node.datagrams_out;
            }
        }
        if nodes == 0 && packets == 0 && self.last_at.is_some() {
            return; // the nodes have stopped: keep the last figures
        }
        let now = std::time::Instant::now();
        if let Some(t) = self.last_at {
            let secs = t.elapsed().as_secs_f64();
            if secs > 0.0 {
                self.pps = (packets - self.packets.min(packets)) as f64 / secs;
            }
        }
        self.nodes = nodes;
        self.packets = packets;
        self.last_at = Some(now);
    }

    async fn line(&mut self, c: &Crawler) -> String {
        self.update(c).await;
        self.text(c.stats())
    }

    fn text(&self, s: &CrawlStats) -> String {
        let g = CrawlStats::get;
        let (ok, failed) = (g(&s.fetched), g(&s.given_up));
        let pct = if ok + failed > 0 {
            100.0 * ok as f64 / (ok + failed) as f64
        } else {
            0.0
        };
        let fails: Vec<String> = s
            .failures()
            .iter()
            .map(|(r, n)| format!("{r} {n}"))
            .collect();
        format!(
            "nodes {} | sampled {} ({:.0}% BEP 51) | seen {} | new {} ({}/h) | peers {} ({} direct, {}/{} lookups) | metadata {ok} ({}/h) | fetch ok {pct:.0}% | scraped {} | db {} | {:.1} q/new | {:.0} pkt/s | queues {}/{}/{}/{} | RSS {} MB{}{}",
            self.nodes,
            g(&s.nodes_sampled_interval),
            100.0 * s.bep51_share(),
            g(&s.sightings),
            g(&s.new_infohashes),
            g(&s.discovered_per_hour),
            g(&s.peers_found),
            g(&s.direct_hits),
            g(&s.lookups_with_peers),
            g(&s.lookups),
            g(&s.named_per_hour),
            g(&s.scrapes_counted),
            match g(&s.db_cap) {
                0 => human_size(g(&s.db_bytes)),
                cap => format!("{}/{}", human_size(g(&s.db_bytes)), human_size(cap)),
            },
            s.queries_per_infohash(),
            self.pps,
            g(&s.direct_queue),
            g(&s.lookup_queue),
            g(&s.fetch_queue),
            g(&s.retry_queue),
            dhtkit_crawl::stats::rss_bytes() / (1024 * 1024),
            if fails.is_empty() { "" } else { " | failed: " },
            fails.join(", "),
        )
    }

    /// The status as one JSON object (`--json`).
    fn json(&self, s: &CrawlStats, stopped: bool) -> serde_json::Value {
        let g = CrawlStats::get;
        json!({
            "event": "status",
            "stopped": stopped,
            "routing_nodes": self.nodes,
            "packets_per_s": (self.pps * 10.0).round() / 10.0,
            "nodes_scheduled": g(&s.nodes_scheduled),
            "nodes_sampled_interval": g(&s.nodes_sampled_interval),
            "nodes_answered": g(&s.nodes_answered),
            "bep51_nodes": g(&s.bep51_nodes),
            "bep51_share": (s.bep51_share() * 1000.0).round() / 1000.0,
            "sightings": g(&s.sightings),
            "discovered": g(&s.new_infohashes),
            "discovered_by_sample": g(&s.discovered_by_sample),
            "discovered_per_hour": g(&s.discovered_per_hour),
            "samples_sent": g(&s.samples_sent),
            "samples_answered": g(&s.samples_answered),
            "direct_get_peers": g(&s.direct_sent),
            "direct_with_peers": g(&s.direct_hits),
            "lookups": g(&s.lookups),
            "lookups_with_peers": g(&s.lookups_with_peers),
            "peers_found": g(&s.peers_found),
            "named": g(&s.fetched),
            "named_per_hour": g(&s.named_per_hour),
            "given_up": g(&s.given_up),
            "queries_sent": g(&s.discovery_queries) + g(&s.node_queries),
            "queries_by_nodes": g(&s.node_queries),
            "queries_per_infohash": (s.queries_per_infohash() * 100.0).round() / 100.0,
            "queues": {
                "direct": g(&s.direct_queue),
                "lookup": g(&s.lookup_queue),
                "fetch": g(&s.fetch_queue),
                "retry": g(&s.retry_queue),
                "scrape": g(&s.scrape_queue),
            },
            "db_bytes": g(&s.db_bytes),
            "db_cap_bytes": g(&s.db_cap),
            "db_evicted": g(&s.db_evicted),
            "scrapes": g(&s.scrapes),
            "scrapes_counted": g(&s.scrapes_counted),
            "scrape_queries": g(&s.scrape_queries),
            "fetch_failures": s.failures(),
            "rss_mb": dhtkit_crawl::stats::rss_bytes() / (1024 * 1024),
        })
    }
}

/// `dhtkit search`'s options beyond the words.
pub(crate) struct SearchOpts<'a> {
    pub db: Option<&'a str>,
    pub limit: usize,
    pub json: bool,
    pub sort: &'a str,
    pub ascending: bool,
    pub min_seeders: Option<u64>,
}

pub(crate) fn search(text: &str, o: SearchOpts<'_>) -> Result<ExitCode, BadInput> {
    let sort = Sort::from_name(o.sort).ok_or_else(|| {
        BadInput(format!(
            "--sort {:?}: one of relevance, first_seen, size, seeders",
            o.sort
        ))
    })?;
    let store = open_read(o.db)?;
    let q = SearchQuery {
        text: text.to_string(),
        sort,
        ascending: o.ascending,
        min_seeders: o.min_seeders,
        limit: o.limit.clamp(1, 10_000),
        ..SearchQuery::default()
    };
    let json = o.json;
    let hits = store.search(&q).map_err(|e| BadInput(e.to_string()))?;
    let mut out = std::io::stdout().lock();
    for h in &hits {
        let line = if json {
            hit_json(h).to_string()
        } else {
            let swarm = h.swarm.map_or("     –/–    ".to_string(), |s| {
                format!("{:>6}/{:<6}", s.seeders, s.leechers)
            });
            format!(
                "{}  {:>10}  {:>5} files  {swarm}  {}\n    {}",
                h.info_hash,
                human_size(h.size),
                h.files,
                h.name,
                magnet(&h.info_hash, &h.name)
            )
        };
        if writeln!(out, "{line}").is_err() {
            break;
        }
    }
    Ok(if hits.is_empty() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

pub(crate) fn show(ih: &str, db: Option<&str>, json: bool) -> Result<ExitCode, BadInput> {
    let ih = parse_id("infohash", ih)?;
    let store = open_read(db)?;
    let Some(r) = store.torrent(&ih).map_err(|e| BadInput(e.to_string()))? else {
        eprintln!("{ih}: not in the database");
        return Ok(ExitCode::from(1));
    };
    let m = r.metadata.as_ref();
    if json {
        let v = record_json(&r);
        println!("{v}");
        return Ok(ExitCode::SUCCESS);
    }
    println!("infohash    {ih}");
    match m {
        Some(m) => {
            println!("name        {}", m.name);
            println!("size        {} ({} bytes)", human_size(m.size), m.size);
            println!("files       {}", m.file_count);
            println!("piece size  {}", human_size(m.piece_length));
            println!("private     {}", if m.private { "yes" } else { "no" });
            println!("fetched     {}", rfc3339(m.fetched_at));
        }
        None => println!("name        (metadata not fetched yet)"),
    }
    println!("first seen  {}", rfc3339(r.first_seen));
    println!(
        "last seen   {} ({} times)",
        rfc3339(r.last_seen),
        r.seen_count
    );
    println!("found by    {}", Source::names(r.sources).join(", "));
    match r.swarm {
        Some(w) => println!(
            "swarm       {} seeders, {} leechers (scraped {})",
            w.seeders,
            w.leechers,
            rfc3339(w.at)
        ),
        None => println!("swarm       (not scraped yet)"),
    }
    println!("magnet      {}", magnet(&ih, m.map_or("", |m| &m.name)));
    if let Some(m) = m {
        for f in &m.files {
            println!("  {:>10}  {}", human_size(f.length), f.path);
        }
        if (m.files.len() as u64) < m.file_count {
            println!("  … and {} more", m.file_count - m.files.len() as u64);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `dhtkit export --format magnetico FILE`: written to `FILE.partial`, renamed when whole.
fn export_magnetico(db: Option<&str>, path: &std::path::Path) -> Result<ExitCode, BadInput> {
    if path.exists() {
        return Err(BadInput(format!(
            "{} exists; give a new file name",
            path.display()
        )));
    }
    let store = open_read(db)?;
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let _ = std::fs::remove_file(&partial);
    let started = std::time::Instant::now();
    let r = dhtkit_crawl::interchange::export_magnetico(&*store, &partial, &mut |r| {
        eprintln!("exported {} torrents, {} files", r.torrents, r.files);
    })
    .map_err(|e| {
        let _ = std::fs::remove_file(&partial);
        BadInput(e.to_string())
    })?;
    std::fs::rename(&partial, path).map_err(|e| BadInput(format!("{}: {e}", path.display())))?;
    if r.skipped > 0 {
        eprintln!(
            "left out {} torrents of size 0 (magnetico requires a size)",
            r.skipped
        );
    }
    eprintln!(
        "wrote {} ({} torrents, {} files) in {:.1} s",
        path.display(),
        r.torrents,
        r.files,
        started.elapsed().as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}

/// `dhtkit prune --dead-for DURATION`.
pub(crate) fn prune(db: Option<&str>, dead_for: &str) -> Result<ExitCode, BadInput> {
    let secs = parse_span(dead_for).ok_or_else(|| {
        BadInput(format!(
            "--dead-for {dead_for:?}: a duration such as 30d, 12h or 90m"
        ))
    })?;
    let spec = db_spec(db);
    let mut s = store::open_writer(&spec, "prune").map_err(|e| BadInput(e.to_string()))?;
    let before = dhtkit_crawl::crawler::unix_now() - secs;
    let gone = s.prune_dead(before).map_err(|e| BadInput(e.to_string()))?;
    let left = s.stats().map_err(|e| BadInput(e.to_string()))?;
    eprintln!(
        "pruned {gone} torrents without seeders since {}; {} infohashes left",
        rfc3339(before),
        left.infohashes
    );
    Ok(ExitCode::SUCCESS)
}

/// `30d`, `12h`, `90m`, `45s`, `2w`: seconds.
fn parse_span(s: &str) -> Option<i64> {
    let s = s.trim();
    let unit = s.chars().last()?;
    let mult = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3_600,
        'd' => 86_400,
        'w' => 7 * 86_400,
        _ => return None,
    };
    let n: i64 = s[..s.len() - 1].parse().ok().filter(|n| *n > 0)?;
    n.checked_mul(mult).filter(|v| *v < 100 * 365 * 86_400)
}

/// `dhtkit import`.
#[derive(clap::Args, Debug)]
pub(crate) struct ImportArgs {
    /// What FILE is: magnetico (its SQLite database) or jsonl (JSON lines).
    #[arg(long)]
    from: String,
    /// The file (for jsonl, `-` reads stdin, which cannot resume).
    file: PathBuf,
    /// The database imported into: a SQLite file (default: crawl.sqlite in the per-user
    /// data directory) or a postgres:// URL.
    #[arg(long)]
    db: Option<String>,
    /// Torrents per transaction.
    #[arg(long, default_value_t = 5_000)]
    batch: usize,
    /// File paths kept per torrent (the real count is always kept).
    #[arg(long, default_value_t = 10_000)]
    max_files: usize,
}

/// `dhtkit import`: on the blocking pool, stopped between batches by SIGINT or SIGTERM.
pub(crate) async fn import(a: ImportArgs) -> Result<ExitCode, BadInput> {
    use dhtkit_crawl::interchange::{import_jsonl, import_magnetico, ImportOptions, ImportReport};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    if !(1..=1_000_000).contains(&a.batch) {
        return Err(BadInput("--batch must be from 1 to 1,000,000".into()));
    }
    let kind = match a.from.as_str() {
        "magnetico" | "jsonl" => a.from.clone(),
        other => return Err(BadInput(format!("--from {other:?}: magnetico or jsonl"))),
    };
    let opts = ImportOptions {
        batch: a.batch,
        max_files: a.max_files,
        ..ImportOptions::default()
    };
    let spec = db_spec(a.db.as_deref());
    let stop = Arc::new(AtomicBool::new(false));
    let Some(mut signals) = crate::StopSignals::install() else {
        return Ok(ExitCode::from(2));
    };
    let flag = stop.clone();
    tokio::spawn(async move {
        signals.recv().await;
        eprintln!("stopping after this batch (run the same import again to carry on)");
        flag.store(true, Ordering::Relaxed);
    });
    let started = std::time::Instant::now();
    let tty = std::io::stderr().is_terminal();
    let work = tokio::task::spawn_blocking(move || {
        let mut store = store::open_writer(&spec, "import").map_err(|e| BadInput(e.to_string()))?;
        let mut progress = |r: &ImportReport| {
            let rate = r.rows as f64 / started.elapsed().as_secs_f64().max(0.001);
            let of = r.total.map_or(String::new(), |t| match kind.as_str() {
                "jsonl" => format!(
                    " ({:.0}% of the file)",
                    100.0 * r.position as f64 / t.max(1) as f64
                ),
                _ => format!(" of {t}"),
            });
            let line = format!(
                "imported {}{of}, {} named, {} skipped, {rate:.0}/s",
                r.rows, r.named, r.skipped
            );
            if tty {
                eprint!("\r\x1b[K{line}");
            } else {
                eprintln!("{line}");
            }
        };
        let file = a.file.clone();
        let r = match kind.as_str() {
            "magnetico" => import_magnetico(&file, &mut *store, &opts, &stop, &mut progress),
            _ if file.as_os_str() == "-" => {
                import_jsonl(None, &mut *store, &opts, &stop, &mut progress)
            }
            _ => import_jsonl(Some(&file), &mut *store, &opts, &stop, &mut progress),
        };
        if tty {
            eprintln!();
        }
        r.map_err(|e| BadInput(e.to_string()))
    });
    let r = work
        .await
        .map_err(|e| BadInput(format!("the import failed: {e}")))??;
    if let Some(at) = r.resumed_from {
        eprintln!("resumed after position {at} of an earlier run");
    }
    if let Some(p) = &r.first_problem {
        eprintln!("skipped {} rows; the first: {p}", r.skipped);
    }
    eprintln!(
        "{} {} rows ({} named) in {:.1} s",
        if r.interrupted {
            "stopped after"
        } else {
            "done:"
        },
        r.rows,
        r.named,
        started.elapsed().as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn export(
    db: Option<&str>,
    since: Option<&str>,
    format: &str,
    file: Option<&std::path::Path>,
) -> Result<ExitCode, BadInput> {
    match (format, file) {
        ("jsonl", None) => {}
        ("jsonl", Some(_)) => {
            return Err(BadInput(
                "JSON lines go to stdout: redirect them (dhtkit export > FILE)".into(),
            ))
        }
        ("magnetico", None) => {
            return Err(BadInput("--format magnetico needs a FILE to write".into()))
        }
        ("magnetico", Some(path)) => {
            if since.is_some() {
                return Err(BadInput("--since is for JSON lines only".into()));
            }
            return export_magnetico(db, path);
        }
        (other, _) => return Err(BadInput(format!("--format {other:?}: jsonl or magnetico"))),
    }
    let since = since
        .map(|s| parse_rfc3339(s).ok_or_else(|| BadInput(format!("--since {s:?} is not RFC 3339"))))
        .transpose()?;
    let store = open_read(db)?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    store
        .export(since, &mut |r| writeln!(out, "{}", export_json(&r)))
        .map_err(|e| BadInput(e.to_string()))?;
    let _ = out.flush();
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod span_tests {
    use super::parse_span;

    #[test]
    fn spans_need_a_unit_and_a_positive_number() {
        assert_eq!(parse_span("30d"), Some(30 * 86_400));
        assert_eq!(parse_span("12h"), Some(12 * 3_600));
        assert_eq!(parse_span("2w"), Some(14 * 86_400));
        for bad in ["", "d", "30", "-1d", "0d", "1.5d", "30y", "99999999999999d"] {
            assert_eq!(parse_span(bad), None, "{bad}");
        }
    }
}
