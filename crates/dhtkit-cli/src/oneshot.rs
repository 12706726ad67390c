//! One-shot commands: start a node on an ephemeral port, do one thing, exit.

use std::future::Future;
use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use dhtkit::{Dht, DhtBuilder, Id};
use serde_json::json;

use crate::{BadInput, Common};

/// One-shot commands are transient clients: they run read-only (BEP 43), so that the nodes
/// they ask do not keep them in their tables after they exit.
async fn start(b: DhtBuilder) -> Result<Dht, ExitCode> {
    match b.read_only(true).build().await {
        Ok(d) => Ok(d),
        Err(e) => {
            eprintln!("error: {e}");
            Err(ExitCode::from(1))
        }
    }
}

fn timeout_of(c: &Common) -> Result<Duration, BadInput> {
    if c.timeout.is_finite() && c.timeout > 0.0 && c.timeout < 1e7 {
        Ok(Duration::from_secs_f64(c.timeout))
    } else {
        Err(BadInput(
            "--timeout must be a positive number of seconds".into(),
        ))
    }
}

/// Set while a progress line is on the terminal, so that output clears it first.
static PROGRESS_SHOWN: AtomicBool = AtomicBool::new(false);

/// Shows "queried / answered / peers" on stderr while `work` runs, when stdout is a terminal.
async fn with_progress<T>(
    dht: &Dht,
    peers: impl Fn() -> usize,
    work: impl Future<Output = T>,
) -> T {
    if !std::io::stdout().is_terminal() {
        return work.await;
    }
    let ticker = async {
        loop {
            tokio::time::sleep(Duration::from_millis(250)).await;
            if let Ok(s) = dht.stats().await {
                PROGRESS_SHOWN.store(true, Ordering::Relaxed);
                eprint!(
                    "\r{} nodes queried, {} answered, {} peers found ",
                    s.node.queries_out,
                    s.node.responses_in,
                    peers()
                );
            }
        }
    };
    let out = tokio::select! {
        v = work => v,
        _ = ticker => unreachable!("the ticker never ends"),
    };
    clear_progress();
    out
}

fn clear_progress() {
    if PROGRESS_SHOWN.swap(false, Ordering::Relaxed) {
        eprint!("\r\x1b[2K");
    }
}

/// The frame every one-shot but `get-peers` shares: check `--timeout`, start a read-only
/// node, run `work` within the timeout, then `report` its answer and return the exit code it
/// gives; an error or a timeout is reported on stderr with exit code 1. The node shuts down
/// either way.
async fn one_shot<T>(
    b: DhtBuilder,
    c: &Common,
    work: impl AsyncFnOnce(&Dht) -> Result<T, dhtkit::Error>,
    report: impl AsyncFnOnce(&Dht, T) -> ExitCode,
) -> Result<ExitCode, BadInput> {
    let limit = timeout_of(c)?;
    let dht = match start(b).await {
        Ok(d) => d,
        Err(code) => return Ok(code),
    };
    let code = match tokio::time::timeout(limit, work(&dht)).await {
        Ok(Ok(v)) => report(&dht, v).await,
        Ok(Err(e)) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
        Err(_) => {
            eprintln!("error: timed out");
            ExitCode::from(1)
        }
    };
    dht.shutdown().await;
    Ok(code)
}

/// Exit code 1 with the reason on stderr, for a lookup that found nothing.
async fn found_nothing(dht: &Dht, had: &str) -> ExitCode {
    eprintln!("{}", why_nothing(dht, had).await);
    ExitCode::from(1)
}

fn emit(line: impl std::fmt::Display) -> bool {
    clear_progress();
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").and_then(|_| out.flush()).is_ok()
}

/// Why a lookup came back empty: nobody answered (a network or bootstrap problem), or nodes
/// answered and none `had` what was asked.
async fn why_nothing(dht: &Dht, had: &str) -> String {
    let Ok(s) = dht.stats().await else {
        return "nothing found".into();
    };
    if s.node.responses_in == 0 {
        format!(
            "nothing found: no DHT node answered ({} queries sent). Check --bootstrap HOST:PORT \
             (the default routers need internet access) and that UDP can leave this host",
            s.node.queries_out
        )
    } else {
        format!(
            "nothing found: {} DHT nodes answered, and none {had}",
            s.node.responses_in
        )
    }
}

pub(crate) async fn ping(
    b: DhtBuilder,
    addr: SocketAddr,
    c: &Common,
) -> Result<ExitCode, BadInput> {
    let started = std::time::Instant::now();
    one_shot(
        b,
        c,
        async |dht| dht.ping(addr).await,
        async |_, id| {
            let ms = started.elapsed().as_secs_f64() * 1000.0;
            if c.json {
                emit(json!({"addr": addr.to_string(), "id": id.to_hex(), "rtt_ms": ms}));
            } else {
                emit(format!("{id} {addr} {ms:.1} ms"));
            }
            ExitCode::SUCCESS
        },
    )
    .await
}

pub(crate) async fn find_node(
    b: DhtBuilder,
    target: Id,
    via: Option<SocketAddr>,
    c: &Common,
) -> Result<ExitCode, BadInput> {
    one_shot(
        b,
        c,
        async |dht| {
            let work = async {
                match via {
                    Some(v) => dht.find_node_via(target, v).await,
                    None => dht.find_node(target).await,
                }
            };
            with_progress(dht, || 0, work).await
        },
        async |dht, nodes| {
            if nodes.is_empty() {
                return found_nothing(dht, "returned a node").await;
            }
            for (id, addr) in nodes {
                if c.json {
                    emit(
                        json!({"id": id.to_hex(), "addr": addr.to_string(), "distance": dhtkit_distance(&id, &target)}),
                    );
                } else {
                    emit(format!("{id} {addr}"));
                }
            }
            ExitCode::SUCCESS
        },
    )
    .await
}

fn dhtkit_distance(a: &Id, b: &Id) -> String {
    a.distance(b).0.iter().map(|x| format!("{x:02x}")).collect()
}

pub(crate) async fn get_peers(b: DhtBuilder, ih: Id, c: &Common) -> Result<ExitCode, BadInput> {
    let limit = timeout_of(c)?;
    let dht = match start(b).await {
        Ok(d) => d,
        Err(code) => return Ok(code),
    };
    let found = AtomicUsize::new(0);
    let work = async {
        let mut lookup = dht.get_peers(ih).await?;
        while let Some(peer) = lookup.next_peer().await {
            found.fetch_add(1, Ordering::Relaxed);
            let ok = if c.json {
                emit(json!({"info_hash": ih.to_hex(), "peer": peer.to_string()}))
            } else {
                emit(peer)
            };
            if !ok {
                return Ok(());
            }
        }
        lookup.finish().await.map(|_| ())
    };
    let r = tokio::time::timeout(
        limit,
        with_progress(&dht, || found.load(Ordering::Relaxed), work),
    )
    .await;
    if let Ok(Err(e)) = &r {
        eprintln!("error: {e}");
    }
    let n = found.load(Ordering::Relaxed);
    if n == 0 {
        eprintln!(
            "{}",
            why_nothing(&dht, &format!("knows a peer for {ih}")).await
        );
    }
    dht.shutdown().await;
    Ok(if n > 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

pub(crate) async fn announce(
    b: DhtBuilder,
    ih: Id,
    port: Option<u16>,
    c: &Common,
) -> Result<ExitCode, BadInput> {
    one_shot(
        b,
        c,
        async |dht| with_progress(dht, || 0, dht.announce(ih, port)).await,
        async |_, a| {
            if c.json {
                emit(json!({
                    "info_hash": ih.to_hex(),
                    "announced": a.announced,
                    "nodes": a.lookup.closest.iter().map(|(id, addr)| json!({"id": id.to_hex(), "addr": addr.to_string()})).collect::<Vec<_>>(),
                    "peers": a.peers.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
                }));
            } else {
                emit(format!("announced {ih} to {} nodes", a.announced));
            }
            if a.announced > 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        },
    )
    .await
}

/// Reads an ed25519 secret seed: 64 hex digits (surrounding whitespace ignored).
pub(crate) fn read_key(path: &std::path::Path) -> Result<[u8; 32], BadInput> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| BadInput(format!("cannot read key file {}: {e}", path.display())))?;
    let bytes = from_hex(text.trim()).filter(|b| b.len() == 32);
    bytes.and_then(|b| b.try_into().ok()).ok_or_else(|| {
        BadInput(format!(
            "key file {} does not hold 64 hex digits (an ed25519 seed; see `dhtkit keygen`)",
            path.display()
        ))
    })
}

/// The bytes spelled by hex digits (either case; an even count).
pub(crate) fn parse_hex_bytes(s: &str) -> Option<Vec<u8>> {
    from_hex(s.trim())
}

/// Most bytes `--value-file` reads: one more than an item holds, so a larger file is told
/// apart without reading all of it.
const MAX_VALUE_FILE: u64 = dhtkit::items::MAX_VALUE_LEN as u64 + 1;

/// A value's bytes from FILE, or standard input for `-`.
pub(crate) fn read_value_file(path: &std::path::Path) -> Result<Vec<u8>, BadInput> {
    use std::io::Read;
    let mut buf = Vec::new();
    let read = if path.as_os_str() == "-" {
        std::io::stdin().take(MAX_VALUE_FILE).read_to_end(&mut buf)
    } else {
        std::fs::File::open(path).and_then(|f| f.take(MAX_VALUE_FILE).read_to_end(&mut buf))
    };
    read.map_err(|e| BadInput(format!("cannot read {}: {e}", path.display())))?;
    if buf.len() as u64 >= MAX_VALUE_FILE {
        return Err(BadInput(format!(
            "{} holds more than an item can (1000 bytes bencoded)",
            path.display()
        )));
    }
    Ok(buf)
}

fn from_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.bytes().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

/// Lower-case hex of `b`.
pub(crate) fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub(crate) fn keygen(path: &std::path::Path) -> Result<ExitCode, BadInput> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| BadInput(format!("no randomness: {e}")))?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| BadInput(format!("cannot create {}: {e}", path.display())))?;
    writeln!(f, "{}", hex(&seed))
        .and_then(|_| f.sync_all())
        .map_err(|e| BadInput(format!("cannot write {}: {e}", path.display())))?;
    emit(hex(&dhtkit::items::public_key(&seed)));
    Ok(ExitCode::SUCCESS)
}

/// A mutable item's seed, salt and optional seq.
type Signing = ([u8; 32], Vec<u8>, Option<i64>);

pub(crate) async fn put(
    b: DhtBuilder,
    value: Vec<u8>,
    signing: Option<Signing>,
    link: Option<String>,
    c: &Common,
) -> Result<ExitCode, BadInput> {
    let target = match &signing {
        None => dhtkit::items::immutable_target(&value),
        Some((seed, salt, _)) => {
            dhtkit::items::mutable_target(&dhtkit::items::public_key(seed), salt)
        }
    };
    one_shot(
        b,
        c,
        async |dht| {
            if !c.json {
                emit(target);
                if let Some(l) = &link {
                    emit(l);
                }
            }
            let work = async {
                match &signing {
                    None => dht.put_immutable(value).await,
                    Some((seed, salt, seq)) => dht.put_mutable(seed, salt, value, *seq).await,
                }
            };
            with_progress(dht, || 0, work).await
        },
        async |_, p| {
            if c.json {
                let mut v = put_json(&p);
                v["magnet"] = json!(link);
                emit(v);
            } else {
                let seq = p.seq.map(|s| format!(" (seq {s})")).unwrap_or_default();
                let refused = match p.refusals.len() {
                    0 => String::new(),
                    n => format!(", refused by {n}"),
                };
                emit(format!("stored on {} nodes{seq}{refused}", p.stored));
                for r in &p.refusals {
                    eprintln!("refused by {} ({}): {}", r.addr, r.code, r.message);
                }
            }
            if p.stored == 0 && !p.errors.is_empty() {
                eprintln!("error: no node stored it; they answered {:?}", p.errors);
            }
            if p.stored > 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        },
    )
    .await
}

/// What a put did, as JSON (`put --json` and the HTTP API).
pub(crate) fn put_json(p: &dhtkit::PutResult) -> serde_json::Value {
    json!({
        "target": p.target.to_hex(),
        "seq": p.seq,
        "stored": p.stored,
        "errors": p.errors,
        "refusals": p.refusals.iter().map(refusal_json).collect::<Vec<_>>(),
        "unanswered": p.unanswered,
        "found": report_json(&p.report),
    })
}

pub(crate) fn refusal_json(r: &dhtkit::PutRefusal) -> serde_json::Value {
    json!({
        "addr": r.addr.to_string(),
        "id": r.id.map(|i| i.to_hex()),
        "code": r.code,
        "message": r.message,
    })
}

/// What the nodes asked had, as JSON (also the HTTP API's shape).
pub(crate) fn report_json(r: &dhtkit::ItemReport) -> serde_json::Value {
    json!({
        "answered": r.answered,
        "current": r.current,
        "older": r.older,
        "newer": r.newer,
        "invalid": r.invalid,
        "without": r.without,
    })
}

/// An item's value for printing: a byte string's contents as text; any other bencode value
/// as its encoding.
fn value_text(v: &[u8]) -> String {
    String::from_utf8_lossy(&value_bytes(v)).into_owned()
}

/// An item's value as bytes: a byte string's contents; any other bencode value as its
/// encoding.
pub(crate) fn value_bytes(v: &[u8]) -> Vec<u8> {
    match dhtkit::OwnedValue::decode(v) {
        Ok(dhtkit::OwnedValue::Bytes(b)) => b,
        _ => v.to_vec(),
    }
}

pub(crate) async fn get(
    b: DhtBuilder,
    target: Id,
    salt: &[u8],
    raw: bool,
    c: &Common,
) -> Result<ExitCode, BadInput> {
    one_shot(
        b,
        c,
        async |dht| with_progress(dht, || 0, dht.get_lookup(target, salt)).await,
        async |dht, lookup| {
            let report = lookup.item_report;
            let Some(item) = lookup.item else {
                if c.json {
                    emit(json!({"target": target.to_hex(), "found": report_json(&report)}));
                }
                return found_nothing(dht, &format!("holds an item under {target}")).await;
            };
            let s = item.signed.as_ref();
            if c.json {
                emit(json!({
                    "target": target.to_hex(),
                    "value": value_text(&item.value),
                    "value_hex": hex(&value_bytes(&item.value)),
                    "v_hex": hex(&item.value),
                    "seq": s.map(|s| s.seq),
                    "key": s.map(|s| hex(&s.key)),
                    "sig": s.map(|s| hex(&s.sig)),
                    "salt_hex": s.map(|s| hex(&s.salt)),
                    "found": report_json(&report),
                }));
            } else if raw {
                clear_progress();
                let mut out = std::io::stdout().lock();
                let ok = out
                    .write_all(&value_bytes(&item.value))
                    .and_then(|_| out.flush());
                if ok.is_err() {
                    return ExitCode::from(1);
                }
            } else {
                emit(value_text(&item.value));
            }
            ExitCode::SUCCESS
        },
    )
    .await
}

/// BEP 46: prints the infohash a mutable torrent link points at, then its magnet link.
pub(crate) async fn resolve_torrent(
    b: DhtBuilder,
    link: dhtkit::bep46::MutableMagnet,
    c: &Common,
) -> Result<ExitCode, BadInput> {
    let target = link.target();
    one_shot(
        b,
        c,
        async |dht| with_progress(dht, || 0, dht.get(target, &link.salt)).await,
        async |dht, item| {
            let Some(item) = item else {
                return found_nothing(dht, &format!("holds an item under {target}")).await;
            };
            let Some(ih) = dhtkit::bep46::pointed_info_hash(&item.value) else {
                eprintln!(
                    "error: the item under {target} does not point at a torrent (no 20-byte ih)"
                );
                return ExitCode::from(1);
            };
            if c.json {
                emit(json!({
                    "target": target.to_hex(),
                    "info_hash": ih.to_hex(),
                    "seq": item.seq(),
                    "magnet": format!("magnet:?xt=urn:btih:{}", ih.to_hex()),
                }));
            } else {
                emit(ih);
                emit(format!("magnet:?xt=urn:btih:{}", ih.to_hex()));
            }
            ExitCode::SUCCESS
        },
    )
    .await
}

pub(crate) async fn sample(
    b: DhtBuilder,
    addr: SocketAddr,
    c: &Common,
) -> Result<ExitCode, BadInput> {
    one_shot(
        b,
        c,
        async |dht| dht.sample_infohashes(addr).await,
        async |_, s| {
            if c.json {
                emit(json!({
                    "interval": s.interval,
                    "num": s.num,
                    "samples": s.samples.iter().map(|i| i.to_hex()).collect::<Vec<_>>(),
                }));
            } else {
                for ih in &s.samples {
                    emit(ih);
                }
            }
            ExitCode::SUCCESS
        },
    )
    .await
}

pub(crate) async fn scrape(b: DhtBuilder, ih: Id, c: &Common) -> Result<ExitCode, BadInput> {
    one_shot(
        b,
        c,
        async |dht| with_progress(dht, || 0, dht.scrape(ih)).await,
        async |dht, s| {
            let Some(s) = s else {
                return found_nothing(dht, &format!("stores peers for {ih}")).await;
            };
            if c.json {
                emit(json!({"seeds": s.seeds, "peers": s.peers}));
            } else {
                emit(format!("{} seeds, {} peers", s.seeds, s.peers));
            }
            ExitCode::SUCCESS
        },
    )
    .await
}
