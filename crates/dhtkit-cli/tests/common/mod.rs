//! Shared plumbing for the interop tests: child processes that die with the test, a JSON-lines
//! peer harness, and `dhtkit node` processes.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

/// A child process killed when dropped.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A peer implementation's harness that takes one JSON command per line on stdin and answers
/// with one JSON object per line on stdout.
pub struct Harness {
    _child: Killed,
    stdin: ChildStdin,
    lines: mpsc::Receiver<String>,
}

impl Harness {
    /// Starts `cmd` and waits (bounded) for its `{"ready": true, ...}` line.
    pub fn start(mut cmd: Command, ready_wait: Duration) -> (Harness, Value) {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("peer harness starts");
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut h = Harness {
            _child: Killed(child),
            stdin,
            lines,
        };
        let ready = h.read(ready_wait);
        assert_eq!(ready["ready"], true, "{ready}");
        (h, ready)
    }

    /// The next answer, waiting at most `wait`.
    pub fn read(&mut self, wait: Duration) -> Value {
        let line = self
            .lines
            .recv_timeout(wait)
            .expect("peer harness answers in time");
        serde_json::from_str(&line).expect("JSON from the peer harness")
    }

    /// Sends a command and waits at most `wait` for its answer.
    pub fn call(&mut self, cmd: Value, wait: Duration) -> Value {
        writeln!(self.stdin, "{cmd}").unwrap();
        self.stdin.flush().unwrap();
        self.read(wait)
    }
}

/// Polls the harness's `status` until every peer's routing table holds at least `min` nodes;
/// panics after `limit`.
pub fn wait_for_tables(h: &mut Harness, min: u64, limit: Duration, who: &str) {
    let deadline = std::time::Instant::now() + limit;
    loop {
        let st = h.call(
            serde_json::json!({"cmd": "status"}),
            Duration::from_secs(30),
        );
        let tables: Vec<u64> = st["tables"]
            .as_array()
            .expect("status lists tables")
            .iter()
            .map(|v| v.as_u64().unwrap_or(0))
            .collect();
        if tables.iter().all(|&n| n >= min) {
            eprintln!("{who} routing tables: {tables:?}");
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{who} routing tables did not fill: {tables:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The Python that has libtorrent's bindings: the virtualenv `.ci/setup-interop` makes, or
/// `DHTKIT_LT_PYTHON`.
pub fn lt_python() -> std::path::PathBuf {
    if let Some(p) = std::env::var_os("DHTKIT_LT_PYTHON").filter(|p| !p.is_empty()) {
        return std::path::PathBuf::from(p);
    }
    let p = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.ci/venv/bin/python");
    assert!(
        p.exists(),
        "libtorrent's Python bindings are missing: run `bash .ci/setup-interop` (or set DHTKIT_LT_PYTHON)"
    );
    p
}

/// The `dhtkit` binary under test.
pub fn dhtkit() -> Command {
    Command::new(env!("CARGO_BIN_EXE_dhtkit"))
}

/// Starts `dhtkit node --events` on `bind`, waits for it to listen, and keeps draining its
/// events so that the pipe never fills.
pub fn dhtkit_node(bind: &str, bootstrap: &str) -> Killed {
    dhtkit_node_with(bind, bootstrap, &[])
}

/// [`dhtkit_node`] with more options.
pub fn dhtkit_node_with(bind: &str, bootstrap: &str, extra: &[&str]) -> Killed {
    let mut child = dhtkit()
        .args(["node", "--events", "--bind", bind, "--bootstrap", bootstrap])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("dhtkit node starts");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    out.read_line(&mut first).unwrap();
    assert!(first.contains("\"listening\""), "{first}");
    std::thread::spawn(move || for _ in out.lines().map_while(Result::ok) {});
    Killed(child)
}

/// Starts `n` dhtkit nodes on 127.<net>.<i>.1:<port>. The first bootstraps through `peer`
/// (the other implementation's first node) only; the rest through `peer` and the first.
pub fn dhtkit_nodes(net: u8, n: u8, port: u16, peer: &str) -> Vec<Killed> {
    let first = format!("127.{net}.1.1:{port}");
    (1..=n)
        .map(|i| {
            let boot = if i == 1 {
                peer.to_string()
            } else {
                format!("{peer},{first}")
            };
            dhtkit_node(&format!("127.{net}.{i}.1:{port}"), &boot)
        })
        .collect()
}

/// Runs `dhtkit announce IH --port PORT --json` from `bind` through `bootstrap`; asserts it
/// succeeded and reached at least `min_nodes` nodes. Returns its JSON output.
pub fn dhtkit_announce(ih: &str, port: u16, bind: &str, bootstrap: &str, min_nodes: u64) -> Value {
    let out = dhtkit()
        .args([
            "announce",
            ih,
            "--port",
            &port.to_string(),
            "--json",
            "--timeout",
            "20",
        ])
        .args(["--bind", bind, "--bootstrap", bootstrap])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "dhtkit announce failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("announce prints JSON");
    let n = v["announced"].as_u64().unwrap_or(0);
    assert!(n >= min_nodes, "announced to {n} nodes: {v}");
    eprintln!("dhtkit announced {ih} to {n} nodes");
    v
}

/// Runs `dhtkit get-peers` up to `attempts` times until `want` (IP:PORT) is printed.
pub fn dhtkit_finds(ih: &str, want: &str, bind: &str, bootstrap: &str, attempts: usize) -> bool {
    for attempt in 0..attempts {
        let out = dhtkit()
            .args([
                "get-peers",
                ih,
                "--bind",
                bind,
                "--timeout",
                "15",
                "--bootstrap",
                bootstrap,
            ])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        if stdout.lines().any(|l| l.trim() == want) {
            assert_eq!(out.status.code(), Some(0));
            eprintln!("dhtkit get-peers found {want} on attempt {attempt}");
            return true;
        }
        std::thread::sleep(Duration::from_secs(2));
    }
    false
}

/// Runs `dhtkit get TARGET --json` from `bind` through `bootstrap`; asserts it found the
/// item and returns its JSON.
pub fn dhtkit_get_json(target: &str, bind: &str, bootstrap: &str) -> Value {
    let out = dhtkit()
        .args(["get", target, "--json", "--timeout", "20"])
        .args(["--bind", bind, "--bootstrap", bootstrap])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "dhtkit get failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("get --json prints JSON")
}
