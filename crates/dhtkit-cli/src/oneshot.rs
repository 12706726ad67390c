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

/// The exit code for a bounded call: `on_ok` for an answer, 1 (with the reason on stderr) for
/// an error or a timeout.
fn outcome<T>(
    r: Result<Result<T, dhtkit::Error>, tokio::time::error::Elapsed>,
    on_ok: impl FnOnce(T) -> ExitCode,
) -> ExitCode {
    match r {
        Ok(Ok(v)) => on_ok(v),
        Ok(Err(e)) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
        Err(_) => {
            eprintln!("error: timed out");
            ExitCode::from(1)
        }
    }
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
    let limit = timeout_of(c)?;
    let dht = match start(b).await {
        Ok(d) => d,
        Err(code) => return Ok(code),
    };
    let started = std::time::Instant::now();
    let r = tokio::time::timeout(limit, dht.ping(addr)).await;
    let code = outcome(r, |id| {
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        if c.json {
            emit(json!({"addr": addr.to_string(), "id": id.to_hex(), "rtt_ms": ms}));
        } else {
            emit(format!("{id} {addr} {ms:.1} ms"));
        }
        ExitCode::SUCCESS
    });
    dht.shutdown().await;
    Ok(code)
}

pub(crate) async fn find_node(
    b: DhtBuilder,
    target: Id,
    via: Option<SocketAddr>,
    c: &Common,
) -> Result<ExitCode, BadInput> {
    let limit = timeout_of(c)?;
    let dht = match start(b).await {
        Ok(d) => d,
        Err(code) => return Ok(code),
    };
    let work = async {
        match via {
            Some(v) => dht.find_node_via(target, v).await,
            None => dht.find_node(target).await,
        }
    };
    let r = tokio::time::timeout(limit, with_progress(&dht, || 0, work)).await;
    if matches!(&r, Ok(Ok(nodes)) if nodes.is_empty()) {
        eprintln!("{}", why_nothing(&dht, "returned a node").await);
    }
    let code = outcome(r, |nodes| {
        if nodes.is_empty() {
            return ExitCode::from(1);
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
    });
    dht.shutdown().await;
    Ok(code)
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
    let limit = timeout_of(c)?;
    let dht = match start(b).await {
        Ok(d) => d,
        Err(code) => return Ok(code),
    };
    let r = tokio::time::timeout(limit, with_progress(&dht, || 0, dht.announce(ih, port))).await;
    let code = outcome(r, |a| {
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
    });
    dht.shutdown().await;
    Ok(code)
}
