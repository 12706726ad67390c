//! `dhtkit`: run a BitTorrent DHT node, or do one-shot lookups from the shell.
//!
//! Exit codes: 0 success; 1 nothing found (`get-peers` with no peer, a ping with no answer);
//! 2 bad input (malformed hex or address, unreadable or corrupt state file, bad flags).
#![forbid(unsafe_code)]
// The doc comments here are `--help` text (clap), where `[::]:6881` is an address, not a link.
#![allow(rustdoc::broken_intra_doc_links)]

mod config;
mod crawl;
mod http;
mod metrics;
mod oneshot;
mod pkarr;
mod run_node;
mod web;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use dhtkit::{Dht, DhtBuilder, Id};

/// Run a BitTorrent Mainline DHT node, or do one-shot lookups.
#[derive(Parser, Debug)]
#[command(name = "dhtkit", version, about)]
struct Cli {
    /// More log output (-v: debug, -vv: trace). RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// A TOML file that sets any long option (keys as the option names, at the top level for
    /// every command or in a `[COMMAND]` table); the command line wins. See `dhtkit config`.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a node until SIGINT or SIGTERM.
    Node(NodeArgs),
    /// Ping a node and print its id.
    Ping {
        /// The node, ADDR:PORT.
        addr: String,
        #[command(flatten)]
        common: Common,
    },
    /// Find the nodes closest to a target id.
    FindNode {
        /// Target id, 40 hex digits.
        target: String,
        /// Ask only this node (ADDR:PORT) instead of doing a lookup.
        #[arg(long)]
        via: Option<String>,
        #[command(flatten)]
        common: Common,
    },
    /// Find peers for an infohash; prints each as soon as it is found. Exit 1 if none.
    GetPeers {
        /// Infohash, 40 hex digits.
        info_hash: String,
        #[command(flatten)]
        common: Common,
    },
    /// Announce that a peer has an infohash.
    Announce {
        /// Infohash, 40 hex digits.
        info_hash: String,
        /// TCP port of the peer.
        #[arg(
            long,
            conflicts_with = "implied_port",
            required_unless_present = "implied_port"
        )]
        port: Option<u16>,
        /// Let the nodes use the UDP port we send from.
        #[arg(long)]
        implied_port: bool,
        #[command(flatten)]
        common: Common,
    },
    /// Store an item in the DHT (BEP 44). Prints the target (40 hex) first, then how many
    /// nodes stored it. Without --key the item is immutable (its target is the SHA-1 of the
    /// value); with --key it is mutable, signed with that key. Exit 0 if at least one node
    /// stored it.
    Put {
        /// The value, stored as a bencoded byte string (text; with --hex, hex digits).
        #[arg(required_unless_present_any = ["value_file", "info_hash"])]
        value: Option<String>,
        /// Read the value's bytes from FILE (`-`: standard input), stored exactly as a
        /// bencoded byte string (a binary pkarr DNS packet, for example).
        #[arg(long, value_name = "FILE", conflicts_with_all = ["value", "info_hash"])]
        value_file: Option<PathBuf>,
        /// VALUE is hex digits: store the bytes they spell.
        #[arg(long, requires = "value")]
        hex: bool,
        /// BEP 46: store a mutable item pointing at this infohash (40 hex digits) and print
        /// its magnet link (`magnet:?xs=urn:btpk:…`). Needs --key.
        #[arg(
            long,
            value_name = "INFOHASH",
            requires = "key",
            conflicts_with = "value"
        )]
        info_hash: Option<String>,
        /// A file holding an ed25519 secret seed (64 hex digits; see `dhtkit keygen`): store a
        /// mutable item signed with it, under the SHA-1 of its public key and the salt.
        #[arg(long, value_name = "FILE")]
        key: Option<PathBuf>,
        /// Salt for a mutable item (at most 64 bytes): one key can sign many items.
        #[arg(long, requires = "key")]
        salt: Option<String>,
        /// Sequence number for a mutable item. Default: one more than the highest found
        /// (and stored only in place of that one, compare-and-swap).
        #[arg(long, requires = "key")]
        seq: Option<i64>,
        #[command(flatten)]
        common: Common,
    },
    /// Read an item from the DHT (BEP 44) and print its value as text. The item is checked
    /// before it is printed (hash, or key, salt and signature). Given a BEP 46 link
    /// (`magnet:?xs=urn:btpk:<key>&s=<salt hex>`), print the infohash it points at. With
    /// --json, the value's exact bytes are in `value_hex`. Exit 1 if not found.
    Get {
        /// The item's target, 40 hex digits (as `dhtkit put` prints it), or a BEP 46
        /// magnet link.
        target: String,
        /// The salt a mutable item was stored with.
        #[arg(long)]
        salt: Option<String>,
        /// Write the value's exact bytes (a byte string's contents) to standard output
        /// instead of text.
        #[arg(long, conflicts_with = "json")]
        raw: bool,
        #[command(flatten)]
        common: Common,
    },
    /// Write a new ed25519 secret seed (64 hex digits) to FILE, readable by its owner only,
    /// and print its public key (64 hex digits). Refuses to overwrite FILE.
    Keygen {
        /// Where to write the secret seed.
        file: PathBuf,
    },
    /// Ask one node for a sample of the infohashes it stores (BEP 51): one per line.
    Sample {
        /// The node, ADDR:PORT.
        addr: String,
        #[command(flatten)]
        common: Common,
    },
    /// Estimate a torrent's swarm from the DHT (BEP 33): seeds and other peers, counted by
    /// distinct IP. Exit 1 if no node had it.
    Scrape {
        /// Infohash, 40 hex digits.
        info_hash: String,
        #[command(flatten)]
        common: Common,
    },
    /// Crawl the DHT: discover infohashes honestly, fetch and verify their metadata, and keep
    /// them in a database. Runs until SIGINT or SIGTERM.
    Crawl(crawl::CrawlArgs),
    /// Full-text search of the crawler's database: names and file paths.
    Search {
        /// Words to look for (a torrent must have all of them).
        text: String,
        /// The database: a SQLite file (default: crawl.sqlite in the per-user data
        /// directory) or a postgres:// URL.
        #[arg(long)]
        db: Option<String>,
        /// Most results.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
        /// Order: relevance, first_seen, size or seeders (largest, newest first).
        #[arg(long, default_value = "relevance")]
        sort: String,
        /// Smallest, oldest, least seeded first.
        #[arg(long)]
        asc: bool,
        /// Only torrents with at least this many seeders at their last scrape.
        #[arg(long)]
        min_seeders: Option<u64>,
    },
    /// Delete torrents whose scrapes found no seeders for DURATION (30d, 12h): scraped at
    /// least once, last seeded (or, never seeded, first seen) longer ago than that.
    Prune {
        /// How long without seeders: a number and s, m, h, d or w.
        #[arg(long, value_name = "DURATION")]
        dead_for: String,
        /// The database: a SQLite file or a postgres:// URL.
        #[arg(long)]
        db: Option<String>,
    },
    /// Everything the database knows about one infohash, with its file list.
    Show {
        /// Infohash, 40 hex digits.
        info_hash: String,
        /// The database: a SQLite file or a postgres:// URL.
        #[arg(long)]
        db: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Serve the crawler's database as web pages (search, torrent, statistics), a JSON API
    /// (/api/search, /api/torrent/INFOHASH, /api/stats, /healthz), Torznab
    /// (/torznab/api) and an RSS feed of the newest torrents (/feed). Read-only.
    Web(web::WebArgs),
    /// Print the effective configuration (defaults, then --config FILE, then the command
    /// line) of COMMAND, or of every command, as TOML.
    Config {
        /// A command, then any of its options: `dhtkit --config F config node --bind X`.
        #[arg(
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "COMMAND"
        )]
        command: Vec<String>,
    },
    /// Every infohash in the database as JSON lines on stdout (the default), or every named
    /// torrent as a new magnetico database (`--format magnetico FILE`).
    Export {
        /// The database: a SQLite file or a postgres:// URL.
        #[arg(long)]
        db: Option<String>,
        /// Only infohashes first seen at or after this RFC 3339 time (JSON lines).
        #[arg(long)]
        since: Option<String>,
        /// jsonl, or magnetico (a SQLite database magnetico opens, schema version 3).
        #[arg(long, default_value = "jsonl")]
        format: String,
        /// Where a magnetico database goes (a new file).
        file: Option<PathBuf>,
    },
    /// Read a password from stdin and print a line for `dhtkit web --auth FILE`:
    /// `USER:$argon2id$…` (append it to the file).
    HashPassword {
        /// The user name.
        user: Option<String>,
    },
    /// Import an index into the database: a magnetico database (`--from magnetico FILE`) or
    /// JSON lines as `dhtkit export` and `crawl --jsonl` write them (`--from jsonl FILE`,
    /// `-` for stdin). Resumable: run again, it carries on after the last batch that landed.
    Import(crawl::ImportArgs),
    /// Print a completion script for SHELL on stdout (bash: `dhtkit completions bash >
    /// /etc/bash_completion.d/dhtkit`; zsh: into a directory on $fpath as `_dhtkit`; fish:
    /// `~/.config/fish/completions/dhtkit.fish`).
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff) on stdout: `dhtkit manpage > dhtkit.1; man ./dhtkit.1`.
    Manpage,
}

/// Options shared by every command that starts a node.
#[derive(Args, Debug, Clone)]
struct NodeOpts {
    /// Bootstrap node HOST:PORT; repeat or separate with commas. Replaces the default routers.
    #[arg(long, value_delimiter = ',')]
    bootstrap: Vec<String>,
    /// State file: loaded if present, written on exit (and periodically by `node`).
    #[arg(long)]
    state: Option<PathBuf>,
    /// Let several nodes share one IP, in the routing table and in lookups. For test
    /// networks on one host (all IPv6 nodes on ::1); on the internet it lets one host take
    /// many places (a Sybil).
    #[arg(long)]
    allow_shared_ips: bool,
}

#[derive(Args, Debug)]
struct NodeArgs {
    /// UDP address to bind; give it twice (an IPv4 and an IPv6 address) for a dual-stack
    /// node. Default: 0.0.0.0:6881 and [::]:6881, IPv4 only (with a warning) where IPv6 is
    /// unavailable.
    #[arg(long)]
    bind: Vec<String>,
    #[command(flatten)]
    opts: NodeOpts,
    /// Keep no peer store (get_peers is still answered with nodes and a token).
    #[arg(long)]
    no_peer_store: bool,
    /// Most nodes in the routing table.
    #[arg(long)]
    max_nodes: Option<usize>,
    /// Keep announcing INFOHASH:PORT (every 15 minutes); repeatable.
    #[arg(long)]
    advertise: Vec<String>,
    /// Print one JSON object per event on stdout.
    #[arg(long)]
    events: bool,
    /// Print the node's status (the status line's figures and the DHT size estimate) as a
    /// JSON object on stdout, `{"event":"status",...}`, 1 second after start and every 10
    /// seconds (beside --events' lines, if given).
    #[arg(long)]
    json: bool,
    /// Seconds between state saves.
    #[arg(long, default_value_t = 300.0)]
    save_interval: f64,
    /// BEP 43 read-only mode.
    #[arg(long)]
    read_only: bool,
    /// Serve Prometheus metrics at http://ADDR/metrics (for example 127.0.0.1:9100).
    #[arg(long, value_name = "ADDR")]
    metrics: Option<String>,
    /// Queries answered per second from one IP (burst: ten seconds' worth); 0 = no limit.
    /// Protects this node's CPU and upload from a single flooding host: an IP that stays over
    /// it for 3 seconds is banned for 5 minutes, its packets dropped unread. Default as
    /// libtorrent.
    #[arg(long, value_name = "QPS", default_value_t = 5)]
    per_ip_rate: u32,
    /// Replies per second for the whole node; 0 = no limit. Protects the upload and CPU from
    /// floods spread over many IPs; clients that keep to their per-IP rate are served first.
    #[arg(long, value_name = "QPS", default_value_t = 2000)]
    reply_rate: u32,
    /// Serve the node's HTTP/JSON API (described at /openapi.json) and pkarr's relay protocol
    /// (PUT and GET /:z-base32-key) at http://ADDR/; `--http` alone serves 127.0.0.1:8181.
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = "127.0.0.1:8181")]
    http: Option<String>,
    /// Only users in FILE may use --http (HTTP Basic; `user:hash` lines as `dhtkit web
    /// --auth`), the pkarr relay routes included.
    #[arg(long, value_name = "FILE")]
    http_auth: Option<std::path::PathBuf>,
    /// Serve --http on a non-loopback address without --http-auth: anyone who reaches it can
    /// make the node announce, put and look up.
    #[arg(long)]
    public: bool,
    /// An ed25519 seed file (`dhtkit keygen`): the API may then put mutable items the caller
    /// does not sign, signed with it.
    #[arg(long, value_name = "FILE")]
    key: Option<std::path::PathBuf>,
    /// Most --http requests served at once; more get 429.
    #[arg(long, value_name = "N", default_value_t = 64)]
    http_max_requests: usize,
    /// pkarr relay requests that reach the DHT (PUTs, and GETs the cache cannot answer)
    /// allowed per client IP per minute (429 beyond); 0 = no limit.
    #[arg(long, value_name = "N", default_value_t = 120)]
    relay_rate: u32,
    /// pkarr records the relay keeps in memory (for GETs and to refuse older ones with 409).
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    relay_cache: usize,
}

#[derive(Args, Debug)]
struct Common {
    /// UDP address to bind; give it twice (IPv4 and IPv6) to look up over both families.
    /// Default: an ephemeral port (so it runs beside a node on 6881) on 0.0.0.0, and on [::]
    /// too where this host has a route to the IPv6 internet or an IPv6 address is named.
    #[arg(long, value_name = "ADDR:PORT")]
    bind: Vec<String>,
    #[command(flatten)]
    opts: NodeOpts,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 30.0)]
    timeout: f64,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// SIGINT and SIGTERM, the two ways to ask a long-running command to stop.
pub(crate) struct StopSignals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
}

impl StopSignals {
    /// Installs the handlers; `None` (after saying so on stderr) if that fails.
    pub(crate) fn install() -> Option<StopSignals> {
        use tokio::signal::unix::{signal, SignalKind};
        match (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) {
            (Ok(int), Ok(term)) => Some(StopSignals { int, term }),
            _ => {
                eprintln!("error: cannot install signal handlers");
                None
            }
        }
    }

    /// Resolves on the next SIGINT or SIGTERM.
    pub(crate) async fn recv(&mut self) {
        tokio::select! {
            _ = self.int.recv() => {}
            _ = self.term.recv() => {}
        }
    }
}

/// A one-line user error; exit code 2.
#[derive(Debug)]
pub(crate) struct BadInput(String);

/// `dhtkit node --http` and its companions.
fn http_options(a: &NodeArgs) -> Result<Option<http::HttpOptions>, BadInput> {
    let Some(addr) = &a.http else {
        for (given, flag) in [
            (a.http_auth.is_some(), "--http-auth"),
            (a.public, "--public"),
            (a.key.is_some(), "--key"),
        ] {
            if given {
                return Err(BadInput(format!("{flag} needs --http ADDR")));
            }
        }
        return Ok(None);
    };
    let bind = parse_addr(addr)?;
    let auth = match &a.http_auth {
        None => None,
        Some(path) => Some(std::sync::Arc::new(
            dhtkit_web::auth::Credentials::load(path)
                .map_err(|e| BadInput(format!("--http-auth {e}")))?,
        )),
    };
    if auth.is_none() && !a.public && !bind.ip().is_loopback() {
        return Err(BadInput(format!(
            "--http {bind} is reachable from other machines: give --http-auth FILE, or \
             --public to let anyone use the node"
        )));
    }
    if a.http_max_requests == 0 {
        return Err(BadInput("--http-max-requests must be at least 1".into()));
    }
    let key = a.key.as_deref().map(oneshot::read_key).transpose()?;
    Ok(Some(http::HttpOptions {
        bind,
        auth,
        key,
        max_requests: a.http_max_requests,
        pkarr: pkarr::RelayOptions {
            cache_size: a.relay_cache,
            per_minute: a.relay_rate,
        },
    }))
}

pub(crate) fn parse_id(what: &str, s: &str) -> Result<Id, BadInput> {
    s.parse()
        .map_err(|_| BadInput(format!("{what} {s:?} is not 40 hex digits")))
}

pub(crate) fn parse_addr(s: &str) -> Result<SocketAddr, BadInput> {
    s.parse()
        .map_err(|_| BadInput(format!("{s:?} is not an ADDR:PORT address")))
}

pub(crate) fn parse_secs(what: &str, v: f64) -> Result<Duration, BadInput> {
    if v.is_finite() && v > 0.0 && v < 1e9 {
        Ok(Duration::from_secs_f64(v))
    } else {
        Err(BadInput(format!(
            "{what} must be a positive number of seconds"
        )))
    }
}

/// The `--bootstrap` list, checked: each entry HOST:PORT.
pub(crate) fn bootstrap_list(given: &[String]) -> Result<Vec<String>, BadInput> {
    let boot: Vec<String> = given
        .iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    for n in &boot {
        let ok = n.parse::<SocketAddr>().is_ok()
            || n.rsplit_once(':')
                .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
        if !ok {
            return Err(BadInput(format!("bootstrap node {n:?} is not HOST:PORT")));
        }
    }
    Ok(boot)
}

impl Common {
    /// `--bind` as given, or the one-shot default: IPv4, and IPv6 too where the host routes
    /// it or where this command must reach an IPv6 address (`to`, or a `--bootstrap` one).
    fn binds(&self, to: Option<SocketAddr>) -> Vec<String> {
        if !self.bind.is_empty() {
            return self.bind.clone();
        }
        let v6_needed = to.is_some_and(|a| a.is_ipv6())
            || self
                .opts
                .bootstrap
                .iter()
                .any(|n| n.trim().parse::<SocketAddr>().is_ok_and(|a| a.is_ipv6()));
        let mut b = vec!["0.0.0.0:0".to_string()];
        if v6_needed || ipv6_routed() {
            b.push("[::]:0".to_string());
        }
        b
    }
}

/// Whether this host has a route to the IPv6 internet: connecting a UDP socket only looks the
/// route up (no packet is sent). A host with IPv6 on loopback alone has none, so a one-shot
/// there does not wait on IPv6 routers it cannot reach.
fn ipv6_routed() -> bool {
    std::net::UdpSocket::bind("[::]:0")
        .and_then(|s| s.connect("[2001:4860:4860::8888]:6881"))
        .is_ok()
}

/// `--bind`, given at most twice: one address, or an IPv4 and an IPv6 one.
fn parse_binds(bind: &[String]) -> Result<Vec<SocketAddr>, BadInput> {
    let addrs = bind
        .iter()
        .map(|a| parse_addr(a))
        .collect::<Result<Vec<_>, _>>()?;
    if addrs.len() > 2 || (addrs.len() == 2 && addrs[0].is_ipv6() == addrs[1].is_ipv6()) {
        return Err(BadInput(
            "--bind takes at most one IPv4 and one IPv6 address".into(),
        ));
    }
    Ok(addrs)
}

fn builder(bind: &[String], opts: &NodeOpts) -> Result<DhtBuilder, BadInput> {
    let mut b = Dht::builder();
    for a in parse_binds(bind)? {
        b = b.bind(a);
    }
    let boot = bootstrap_list(&opts.bootstrap)?;
    if !boot.is_empty() {
        b = b.bootstrap(boot);
    }
    if opts.allow_shared_ips {
        b = b.config(|c| c.table.restrict_ips = false);
    }
    if let Some(p) = &opts.state {
        // Check it now, so a corrupt file is a clean exit 2 rather than a failure later.
        dhtkit::SavedState::load_if_exists(p).map_err(|e| BadInput(e.to_string()))?;
        b = b.state_file(p.clone());
    }
    Ok(b)
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // Colour only on a terminal, and never with NO_COLOR set (https://no-color.org): piped or
    // redirected logs carry no escape codes.
    use std::io::IsTerminal;
    let colour = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour)
        .init();
}

/// `dhtkit manpage`: the whole command, every subcommand in one page.
fn manpage() -> Result<ExitCode, BadInput> {
    let cmd = <Cli as clap::CommandFactory>::command();
    let mut out = Vec::new();
    let man = clap_mangen::Man::new(cmd.clone());
    man.render(&mut out)
        .map_err(|e| BadInput(format!("manpage: {e}")))?;
    // One section per subcommand, with its own options, after the main page.
    for sub in cmd.get_subcommands().filter(|c| c.get_name() != "help") {
        let name = format!("dhtkit {}", sub.get_name());
        out.extend_from_slice(format!(".SH \"{}\"\n", name.to_uppercase()).as_bytes());
        let sub = sub.clone();
        let m = clap_mangen::Man::new(sub);
        m.render_description_section(&mut out)
            .and_then(|()| m.render_options_section(&mut out))
            .map_err(|e| BadInput(format!("manpage: {e}")))?;
    }
    use std::io::Write;
    std::io::stdout()
        .write_all(&out)
        .map_err(|e| BadInput(format!("manpage: {e}")))?;
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    let cli = match config::apply(std::env::args_os().collect()) {
        Ok(argv) => Cli::parse_from(argv),
        Err(BadInput(msg)) => {
            eprintln!("error: {msg}");
            return ExitCode::from(2);
        }
    };
    init_logging(cli.verbose);
    // Reading the index needs no runtime (and PostgreSQL's blocking client must not run
    // inside one).
    let read = match &cli.command {
        Command::Search {
            text,
            db,
            limit,
            json,
            sort,
            asc,
            min_seeders,
        } => Some(crawl::search(
            text,
            crawl::SearchOpts {
                db: db.as_deref(),
                limit: *limit,
                json: *json,
                sort,
                ascending: *asc,
                min_seeders: *min_seeders,
            },
        )),
        Command::Prune { dead_for, db } => Some(crawl::prune(db.as_deref(), dead_for)),
        Command::HashPassword { user } => Some(web::hash_password(user.as_deref())),
        Command::Show {
            info_hash,
            db,
            json,
        } => Some(crawl::show(info_hash, db.as_deref(), *json)),
        Command::Export {
            db,
            since,
            format,
            file,
        } => Some(crawl::export(
            db.as_deref(),
            since.as_deref(),
            format,
            file.as_deref(),
        )),
        Command::Config { command } => {
            Some(config::print(cli.config.as_deref(), command).map(|()| ExitCode::SUCCESS))
        }
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(*shell, &mut cmd, "dhtkit", &mut std::io::stdout());
            Some(Ok(ExitCode::SUCCESS))
        }
        Command::Manpage => Some(manpage()),
        _ => None,
    };
    if let Some(r) = read {
        return match r {
            Ok(code) => code,
            Err(BadInput(msg)) => {
                eprintln!("error: {msg}");
                ExitCode::from(2)
            }
        };
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match rt.block_on(dispatch(cli.command)) {
        Ok(code) => code,
        Err(BadInput(msg)) => {
            eprintln!("error: {msg}");
            ExitCode::from(2)
        }
    }
}

async fn dispatch(cmd: Command) -> Result<ExitCode, BadInput> {
    match cmd {
        Command::Node(a) => {
            let mut advertise = Vec::new();
            for s in &a.advertise {
                let (ih, port) = s
                    .rsplit_once(':')
                    .ok_or_else(|| BadInput(format!("--advertise {s:?} is not INFOHASH:PORT")))?;
                let port: u16 = port
                    .parse()
                    .map_err(|_| BadInput(format!("--advertise {s:?}: bad port")))?;
                advertise.push((parse_id("infohash", ih)?, port));
            }
            let mut b = builder(&a.bind, &a.opts)?
                .peer_store(!a.no_peer_store)
                .read_only(a.read_only)
                .save_interval(parse_secs("--save-interval", a.save_interval)?)
                .per_ip_rate(a.per_ip_rate)
                .reply_rate(a.reply_rate);
            if let Some(n) = a.max_nodes {
                b = b.max_nodes(n);
            }
            let http = http_options(&a)?;
            run_node::run(b, advertise, a.events, a.json, a.metrics.as_deref(), http).await
        }
        Command::Ping { addr, common } => {
            let addr = parse_addr(&addr)?;
            let b = builder(&common.binds(Some(addr)), &common.opts)?;
            oneshot::ping(b, addr, &common).await
        }
        Command::FindNode {
            target,
            via,
            common,
        } => {
            let target = parse_id("target", &target)?;
            let via = via.as_deref().map(parse_addr).transpose()?;
            let b = builder(&common.binds(via), &common.opts)?;
            oneshot::find_node(b, target, via, &common).await
        }
        Command::GetPeers { info_hash, common } => {
            let ih = parse_id("infohash", &info_hash)?;
            let b = builder(&common.binds(None), &common.opts)?;
            oneshot::get_peers(b, ih, &common).await
        }
        Command::Announce {
            info_hash,
            port,
            implied_port,
            common,
        } => {
            let ih = parse_id("infohash", &info_hash)?;
            let port = if implied_port { None } else { port };
            let b = builder(&common.binds(None), &common.opts)?;
            oneshot::announce(b, ih, port, &common).await
        }
        Command::Put {
            value,
            value_file,
            hex,
            info_hash,
            key,
            salt,
            seq,
            common,
        } => {
            let seed = key.as_deref().map(oneshot::read_key).transpose()?;
            let salt = salt.unwrap_or_default().into_bytes();
            if salt.len() > dhtkit::items::MAX_SALT_LEN {
                return Err(BadInput(format!(
                    "--salt is {} bytes; at most 64 (BEP 44 error 207)",
                    salt.len()
                )));
            }
            let pointer = info_hash
                .as_deref()
                .map(|ih| parse_id("--info-hash", ih))
                .transpose()?;
            let v = match (&value, &value_file, pointer) {
                (_, _, Some(ih)) => dhtkit::bep46::pointer_value(&ih),
                (_, Some(f), _) => dhtkit::items::bencode_bytes(&oneshot::read_value_file(f)?),
                (Some(v), _, _) if hex => dhtkit::items::bencode_bytes(
                    &oneshot::parse_hex_bytes(v)
                        .ok_or_else(|| BadInput("VALUE is not hex digits (with --hex)".into()))?,
                ),
                (Some(v), _, _) => dhtkit::items::bencode_bytes(v.as_bytes()),
                (None, None, None) => unreachable!("clap requires one"),
            };
            if v.len() > dhtkit::items::MAX_VALUE_LEN {
                return Err(BadInput(format!(
                    "the value is {} bytes bencoded; an item holds at most 1000",
                    v.len()
                )));
            }
            let b = builder(&common.binds(None), &common.opts)?;
            let link = pointer.is_some().then(|| {
                let seed = seed.as_ref().expect("clap requires --key");
                dhtkit::bep46::MutableMagnet {
                    key: dhtkit::items::public_key(seed),
                    salt: salt.clone(),
                }
                .to_link()
            });
            oneshot::put(b, v, seed.map(|s| (s, salt, seq)), link, &common).await
        }
        Command::Get {
            target,
            salt,
            raw,
            common,
        } => {
            let b = builder(&common.binds(None), &common.opts)?;
            if target.starts_with("magnet:") {
                if salt.is_some() {
                    return Err(BadInput("a BEP 46 link carries its salt (s=)".into()));
                }
                let link = dhtkit::bep46::MutableMagnet::parse(&target)
                    .map_err(|e| BadInput(format!("{target}: {e}")))?;
                return oneshot::resolve_torrent(b, link, &common).await;
            }
            let target = parse_id("target", &target)?;
            let salt = salt.unwrap_or_default().into_bytes();
            if salt.len() > dhtkit::items::MAX_SALT_LEN {
                return Err(BadInput(format!(
                    "--salt is {} bytes; at most 64 (BEP 44 error 207)",
                    salt.len()
                )));
            }
            oneshot::get(b, target, &salt, raw, &common).await
        }
        Command::Keygen { file } => oneshot::keygen(&file),
        Command::Scrape { info_hash, common } => {
            let ih = parse_id("infohash", &info_hash)?;
            let b = builder(&common.binds(None), &common.opts)?;
            oneshot::scrape(b, ih, &common).await
        }
        Command::Sample { addr, common } => {
            let addr = parse_addr(&addr)?;
            let b = builder(&common.binds(Some(addr)), &common.opts)?;
            oneshot::sample(b, addr, &common).await
        }
        Command::Crawl(a) => crawl::crawl(a).await,
        Command::Web(a) => web::web(a).await,
        Command::Import(a) => crawl::import(a).await,
        Command::Search { .. }
        | Command::Prune { .. }
        | Command::HashPassword { .. }
        | Command::Show { .. }
        | Command::Export { .. }
        | Command::Config { .. }
        | Command::Completions { .. }
        | Command::Manpage => {
            unreachable!("handled before the runtime starts")
        }
    }
}
