//! `dhtkit node`: run until SIGINT or SIGTERM.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use dhtkit::{Dht, DhtBuilder, EventJson, Id};
use serde_json::json;

use crate::BadInput;

pub(crate) async fn run(
    b: DhtBuilder,
    advertise: Vec<(Id, u16)>,
    print_events: bool,
    json_status: bool,
    metrics: Option<&str>,
    http: Option<crate::http::HttpOptions>,
) -> Result<ExitCode, BadInput> {
    let dht = match b.build().await {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(1));
        }
    };
    let mut events = dht.events();
    let addrs: Vec<String> = dht.local_addrs().iter().map(|a| a.to_string()).collect();
    eprintln!(
        "dhtkit node {} listening on {}",
        dht.id(),
        addrs.join(" and ")
    );
    if let Some(addr) = metrics {
        let source = crate::metrics::Source {
            nodes: vec![dht.clone()],
            crawl: None,
            served: None,
        };
        let at = crate::metrics::serve(addr, source).await?;
        eprintln!("metrics on http://{at}/metrics");
    }
    if let Some(o) = http {
        let at = crate::http::serve(dht.clone(), o).await?;
        eprintln!("HTTP API on http://{at}/ (see /openapi.json)");
    }
    let stdout = std::io::stdout();
    for (ih, port) in advertise {
        if dht.advertise(ih, Some(port)).await.is_err() {
            eprintln!("error: node stopped");
            return Ok(ExitCode::from(1));
        }
    }
    let Some(mut stop) = crate::StopSignals::install() else {
        return Ok(ExitCode::from(1));
    };
    let mut reported_loss = 0;
    // A status line on a terminal (unless events print to the same terminal), and a word when
    // the node is alone.
    let status_line =
        std::io::stderr().is_terminal() && !(print_events && std::io::stdout().is_terminal());
    let mut status = Status::default();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut ticks: u64 = 0;
    loop {
        tokio::select! {
            _ = stop.recv() => break,
            _ = tick.tick() => {
                ticks += 1;
                // With --json: the status as a JSON line 1 second in, then every 10 seconds.
                let json = json_status && ticks % JSON_STATUS_EVERY == 2;
                if let Some(v) = status.update(&dht, status_line).await.filter(|_| json) {
                    let mut out = stdout.lock();
                    if writeln!(out, "{v}").and_then(|_| out.flush()).is_err() {
                        break;
                    }
                }
            }
            ev = events.recv(), if print_events => {
                let Some(ev) = ev else { break };
                let mut out = stdout.lock();
                if events.lost() > reported_loss {
                    let _ = writeln!(out, "{}", json!({"event": "events_lost", "count": events.lost() - reported_loss}));
                    reported_loss = events.lost();
                }
                if writeln!(out, "{}", ev.to_json()).and_then(|_| out.flush()).is_err() {
                    // Whoever read our events is gone (`dhtkit node --events | head`): stop,
                    // as a filter does, saving state on the way out.
                    break;
                }
            }
        }
    }
    if status_line {
        eprint!("\r\x1b[2K");
    }
    dht.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

/// The node's status line, and whether it has told the user it is alone.
#[derive(Default)]
struct Status {
    started: Option<Instant>,
    last: Option<(Instant, u64, u64)>,
    said_alone: bool,
}

/// Seconds between JSON status lines (`--json`).
const JSON_STATUS_EVERY: u64 = 10;

/// How long a node may have an empty routing table before it says so.
const ALONE_AFTER: Duration = Duration::from_secs(20);

impl Status {
    /// Refreshes the status line (when `line`); returns the status as JSON (`--json`).
    async fn update(&mut self, dht: &Dht, line: bool) -> Option<serde_json::Value> {
        let Ok(s) = dht.stats().await else {
            return None;
        };
        let now = Instant::now();
        let started = *self.started.get_or_insert(now);
        if s.nodes == 0 && !self.said_alone && now.duration_since(started) >= ALONE_AFTER {
            self.said_alone = true;
            if line {
                eprint!("\r\x1b[2K");
            }
            eprintln!(
                "dhtkit node: no DHT node has answered, so this node is alone. Give it a \
                 reachable node with --bootstrap HOST:PORT (the default routers need internet \
                 access, and UDP must be able to leave this host)."
            );
        } else if s.nodes > 0 && self.said_alone {
            self.said_alone = false;
            eprintln!(
                "dhtkit node: joined; {} nodes in the routing table",
                s.nodes
            );
        }
        let (qin, qout) = (s.node.queries_in, s.node.queries_out);
        let rates = self.last.map(|(t, i, o)| {
            let dt = now.duration_since(t).as_secs_f64().max(1e-3);
            (
                (qin - i.min(qin)) as f64 / dt,
                (qout - o.min(qout)) as f64 / dt,
            )
        });
        self.last = Some((now, qin, qout));
        let (rin, rout) = rates.unwrap_or((0.0, 0.0));
        if line {
            let size = s
                .node
                .dht_size_estimate
                .map_or(String::new(), |n| format!(" | DHT ~{n} nodes"));
            eprint!(
                "\r\x1b[2K{} nodes | queries in {rin:.0}/s, out {rout:.0}/s | {} peers stored for {} infohashes | {} advertised{size}",
                s.nodes, s.peers_stored, s.infohashes_stored, s.advertised
            );
        }
        Some(json!({
            "event": "status",
            "nodes": s.nodes,
            "queries_in_per_s": (rin * 10.0).round() / 10.0,
            "queries_out_per_s": (rout * 10.0).round() / 10.0,
            "peers_stored": s.peers_stored,
            "infohashes_stored": s.infohashes_stored,
            "advertised": s.advertised,
            "dht_size_estimate": s.node.dht_size_estimate,
        }))
    }
}
