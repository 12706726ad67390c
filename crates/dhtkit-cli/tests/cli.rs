//! The `dhtkit` command as scripts see it: output, exit codes, and the state file surviving
//! SIGKILL. Processes talk over loopback only, each on its own 127.x.y.z address; every wait
//! is bounded.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_dhtkit"))
}

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("dhtkit-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Runs a one-shot command; returns (exit code, stdout, stderr).
fn run(args: &[&str]) -> (i32, String, String) {
    let out = bin().args(args).output().expect("runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

struct NodeProc(Child);

impl Drop for NodeProc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `dhtkit node --events` and waits for its listening line.
fn start_node(args: &[&str]) -> (NodeProc, BufReader<std::process::ChildStdout>) {
    let mut child = bin()
        .arg("node")
        .arg("--events")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("starts");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let v: serde_json::Value = serde_json::from_str(&line).expect("first line is JSON");
    assert_eq!(v["event"], "listening", "{line}");
    (NodeProc(child), out)
}

#[test]
fn bad_input_exits_2_with_one_line() {
    let dir = tmpdir("bad");
    let corrupt = dir.join("corrupt.json");
    std::fs::write(&corrupt, "{\"version\": 1, \"id\": \"nope\"").unwrap();
    let corrupt = corrupt.to_str().unwrap().to_owned();
    let cases: Vec<Vec<&str>> = vec![
        vec!["get-peers", "xyz"],
        vec!["find-node", "0123"],
        vec!["ping", "not-an-address"],
        vec![
            "announce",
            "0123456789abcdef0123456789abcdef01234567",
            "--port",
            "99999",
        ],
        vec!["announce", "0123456789abcdef0123456789abcdef01234567"],
        vec!["node", "--bind", "banana"],
        vec!["node", "--advertise", "abc:1"],
        vec![
            "get-peers",
            "0123456789abcdef0123456789abcdef01234567",
            "--bootstrap",
            "nohostport",
        ],
        vec![
            "get-peers",
            "0123456789abcdef0123456789abcdef01234567",
            "--state",
            &corrupt,
        ],
        vec![
            "get-peers",
            "0123456789abcdef0123456789abcdef01234567",
            "--timeout",
            "-1",
        ],
    ];
    for args in cases {
        let (code, stdout, stderr) = run(&args);
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(stdout.is_empty(), "{args:?}");
        let first = stderr.lines().next().unwrap_or_default();
        assert!(first.starts_with("error"), "{args:?}: {stderr}");
    }
    let (_, _, stderr) = run(&["get-peers", "xyz"]);
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(stderr.contains("\"xyz\""), "names the problem: {stderr}");
    let (_, _, stderr) = run(&[
        "get-peers",
        "0123456789abcdef0123456789abcdef01234567",
        "--state",
        &corrupt,
    ]);
    assert!(stderr.contains("corrupt"), "{stderr}");
}

#[test]
fn node_announce_get_peers_find_node_ping_over_loopback() {
    let (seed, _seed_out) = start_node(&[
        "--bind",
        "127.41.1.1:16881",
        "--bootstrap",
        "127.41.2.1:16881",
    ]);
    let (_b, _bo) = start_node(&[
        "--bind",
        "127.41.2.1:16881",
        "--bootstrap",
        "127.41.1.1:16881",
    ]);
    let (_c, _co) = start_node(&[
        "--bind",
        "127.41.3.1:16881",
        "--bootstrap",
        "127.41.1.1:16881",
    ]);
    let boot = "127.41.1.1:16881,127.41.2.1:16881";
    let ih = "00112233445566778899aabbccddeeff00112233";
    let (code, out, err) = run(&[
        "announce",
        ih,
        "--port",
        "5555",
        "--bind",
        "127.41.9.1:0",
        "--bootstrap",
        boot,
        "--timeout",
        "20",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert!(v["announced"].as_u64().unwrap() >= 2, "{out}");

    let (code, out, err) = run(&[
        "get-peers",
        ih,
        "--bind",
        "127.41.8.1:0",
        "--bootstrap",
        boot,
        "--timeout",
        "20",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "127.41.9.1:5555");
    let (code, out, _) = run(&[
        "get-peers",
        ih,
        "--bootstrap",
        boot,
        "--timeout",
        "20",
        "--json",
    ]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["peer"], "127.41.9.1:5555");

    let (code, out, _) = run(&[
        "get-peers",
        "ffffffffffffffffffffffffffffffffffffffff",
        "--bootstrap",
        boot,
        "--timeout",
        "20",
    ]);
    assert_eq!((code, out.as_str()), (1, ""), "no peer: exit 1");

    let (code, out, err) = run(&["find-node", ih, "--bootstrap", boot, "--timeout", "20"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.lines().count() >= 3, "{out}");

    let (code, out, _) = run(&["ping", "127.41.2.1:16881", "--json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["id"].as_str().unwrap().len(), 40);
    drop(seed);
}

#[test]
fn one_shots_bind_ipv6_when_they_name_an_ipv6_address() {
    // No --bind: a one-shot adds [::]:0 to 0.0.0.0:0 when its target or bootstrap is IPv6,
    // whether or not the host routes IPv6.
    let mut child = bin()
        .args([
            "node",
            "--events",
            "--bind",
            "[::1]:0",
            "--bootstrap",
            "[::1]:9",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("starts");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let _node = NodeProc(child);
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let v: serde_json::Value = serde_json::from_str(&line).expect("first line is JSON");
    let at = v["addr"].as_str().expect("listening address").to_string();
    assert!(at.starts_with("[::1]:"), "{line}");
    let (code, out, err) = run(&["ping", &at, "--timeout", "10"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&at), "{out}");
    let (code, out, err) = run(&[
        "find-node",
        "0123456789abcdef0123456789abcdef01234567",
        "--bootstrap",
        &at,
        "--timeout",
        "10",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&at), "{out}");
}

#[test]
fn node_events_are_json_lines() {
    let (_a, mut out) = start_node(&[
        "--bind",
        "127.42.1.1:16881",
        "--bootstrap",
        "127.42.2.1:16881",
    ]);
    let (code, _, _) = run(&["ping", "127.42.1.1:16881", "--bind", "127.42.3.1:0"]);
    assert_eq!(code, 0);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut saw_ping = false;
    let mut line = String::new();
    while Instant::now() < deadline && !saw_ping {
        line.clear();
        if out.read_line(&mut line).unwrap() == 0 {
            break;
        }
        let v: serde_json::Value = serde_json::from_str(&line).expect("every line is JSON");
        saw_ping = v["event"] == "query"
            && v["method"] == "ping"
            && v["from"]
                .as_str()
                .is_some_and(|f| f.starts_with("127.42.3.1:"));
    }
    assert!(saw_ping, "the ping query was reported");
}

#[test]
fn node_json_prints_its_status_with_the_size_estimate() {
    let (_a, mut out) = start_node(&[
        "--json",
        "--bind",
        "127.42.5.1:16881",
        "--bootstrap",
        "127.42.6.1:16881",
    ]);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut status = None;
    let mut line = String::new();
    while Instant::now() < deadline && status.is_none() {
        line.clear();
        if out.read_line(&mut line).unwrap() == 0 {
            break;
        }
        let v: serde_json::Value = serde_json::from_str(&line).expect("every line is JSON");
        if v["event"] == "status" {
            status = Some(v);
        }
    }
    let v = status.expect("a status line within 20 seconds");
    assert_eq!(v["nodes"], 0, "alone: {v}");
    for key in [
        "queries_in_per_s",
        "queries_out_per_s",
        "peers_stored",
        "advertised",
    ] {
        assert!(v[key].is_number(), "{key} in {v}");
    }
    assert!(
        v["dht_size_estimate"].is_null(),
        "no lookup has ended yet: no estimate ({v})"
    );
}

fn valid_state(path: &Path) -> bool {
    let text = std::fs::read_to_string(path).unwrap();
    let v: serde_json::Value =
        serde_json::from_str(&text).expect("state file is always valid JSON");
    v["version"] == 1 && v["id"].as_str().is_some_and(|s| s.len() == 40) && v["nodes"].is_array()
}

#[test]
fn sigkill_never_leaves_a_corrupt_state_file() {
    let dir = tmpdir("kill");
    let state = dir.join("state.json");
    // Keep the peers' stdout open: a node whose event reader goes away exits, like any filter.
    let peers: Vec<_> = (2..5)
        .map(|i| {
            let bind = format!("127.43.{i}.1:16881");
            start_node(&["--bind", &bind, "--bootstrap", "127.43.2.1:16881"])
        })
        .collect();
    let state_s = state.to_str().unwrap().to_owned();
    let mut killed_with_file = 0;
    for round in 0..15u64 {
        let mut child = bin()
            .args([
                "node",
                "--bind",
                "127.43.1.1:16881",
                "--bootstrap",
                "127.43.2.1:16881,127.43.3.1:16881",
            ])
            .args(["--state", &state_s, "--save-interval", "0.002"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Kill at varying moments, from mid start-up to well into the saving loop.
        std::thread::sleep(Duration::from_millis(20 + (round * 37) % 400));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        if state.exists() {
            assert!(valid_state(&state), "round {round}: corrupt state file");
            killed_with_file += 1;
        }
    }
    assert!(
        killed_with_file >= 10,
        "the node saved state in most rounds ({killed_with_file})"
    );
    // One last run long enough to have learnt its neighbours, then SIGKILL.
    let mut child = bin()
        .args([
            "node",
            "--bind",
            "127.43.1.1:16881",
            "--bootstrap",
            "127.43.2.1:16881",
        ])
        .args(["--state", &state_s, "--save-interval", "0.05", "--events"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut saved_nodes = 0;
    while Instant::now() < deadline && saved_nodes < 3 {
        line.clear();
        if out.read_line(&mut line).unwrap() == 0 {
            break;
        }
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        if v["event"] == "state_saved" {
            saved_nodes = v["nodes"].as_u64().unwrap();
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(saved_nodes >= 3, "state with its neighbours was saved");
    assert!(valid_state(&state));
    // No temporary files are mistaken for the state file, and the last state loads.
    let (code, _, err) = run(&[
        "find-node",
        "00112233445566778899aabbccddeeff00112233",
        "--state",
        &state_s,
        "--bind",
        "127.43.1.1:0",
        "--timeout",
        "20",
    ]);
    assert_eq!(
        code, 0,
        "a node restored from the killed node's state works: {err}"
    );
    drop(peers);
}

#[test]
fn crawler_commands_refuse_bad_databases_with_one_line() {
    let dir = tmpdir("baddb");
    let corrupt = dir.join("corrupt.sqlite");
    std::fs::write(&corrupt, vec![0x42u8; 8192]).unwrap();
    let blocker = dir.join("file");
    std::fs::write(&blocker, b"x").unwrap();
    let under_a_file = blocker.join("crawl.sqlite");
    let missing = dir.join("missing.sqlite");
    let cases: Vec<Vec<String>> = vec![
        vec![
            "search".into(),
            "x".into(),
            "--db".into(),
            corrupt.display().to_string(),
        ],
        vec![
            "show".into(),
            "00".repeat(20),
            "--db".into(),
            missing.display().to_string(),
        ],
        vec![
            "export".into(),
            "--db".into(),
            corrupt.display().to_string(),
        ],
        vec![
            "export".into(),
            "--since".into(),
            "yesterday".into(),
            "--db".into(),
            corrupt.display().to_string(),
        ],
        vec![
            "show".into(),
            "nothex".into(),
            "--db".into(),
            corrupt.display().to_string(),
        ],
        vec![
            "crawl".into(),
            "--bind".into(),
            "127.41.7.1:0".into(),
            "--db".into(),
            corrupt.display().to_string(),
        ],
        vec![
            "crawl".into(),
            "--bind".into(),
            "127.41.7.1:0".into(),
            "--db".into(),
            under_a_file.display().to_string(),
        ],
        vec![
            "web".into(),
            "--bind".into(),
            "127.41.7.1:0".into(),
            "--db".into(),
            missing.display().to_string(),
        ],
        vec![
            "web".into(),
            "--bind".into(),
            "127.41.7.1:0".into(),
            "--db".into(),
            corrupt.display().to_string(),
        ],
    ];
    for args in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, out, err) = run(&args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(out.is_empty(), "{args:?}");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: one line: {err}");
        assert!(err.starts_with("error: "), "{args:?}: {err}");
    }
}

/// `--config FILE`: values fill in what the command line leaves out, the command line wins,
/// `dhtkit config` shows the result, and a bad file is a one-line error (exit 2).
#[test]
fn a_config_file_sets_options_and_the_command_line_wins() {
    use dhtkit_crawl::metadata::{FileEntry, TorrentInfo};
    use dhtkit_crawl::store::{Batch, Fetched, Sighting, Store};
    let dir = tmpdir("config");
    let db = dir.join("crawl.sqlite");
    {
        let mut s = dhtkit_crawl::SqliteStore::open(&db).unwrap();
        let ih = dhtkit::Id([0x5a; 20]);
        let mut b = Batch::default();
        b.sightings.push(Sighting {
            info_hash: ih,
            sources: 1,
            first: 1,
            last: 1,
            count: 1,
        });
        b.torrents.push(Fetched {
            info_hash: ih,
            info: TorrentInfo::new(
                "configured torrent",
                1 << 16,
                vec![FileEntry {
                    path: "f".into(),
                    length: 1,
                }],
            ),
            at: 1,
            peer: "127.0.0.1:1".parse().unwrap(),
            info_dict: None,
        });
        s.write(&b).unwrap();
    }
    let cfg = dir.join("dhtkit.toml");
    std::fs::write(
        &cfg,
        format!(
            "# shared by every command with a --db\ndb = {:?}\n\n[node]\nbind = \"127.41.8.1:7000\"\nmax-nodes = 50\nbootstrap = [\"127.41.8.2:1\", \"127.41.8.3:1\"]\n\n[search]\nlimit = 5\n",
            db.display().to_string()
        ),
    )
    .unwrap();
    let c = cfg.to_str().unwrap();

    // The file's db is used: the search finds what is in it.
    let (code, out, err) = run(&["--config", c, "search", "configured", "--json"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("configured torrent"), "{out}");
    // The command line wins over the file.
    let (code, _, err) = run(&[
        "--config",
        c,
        "search",
        "configured",
        "--db",
        dir.join("none.sqlite").to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "the command line's (missing) db: {err}");

    // `dhtkit config node`: the effective options, with the command line's bind.
    let (code, out, err) = run(&["--config", c, "config", "node", "--bind", "127.41.8.9:1"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("[node]"), "{out}");
    assert!(out.contains("bind = [\"127.41.8.9:1\"]"), "{out}");
    assert!(out.contains("max-nodes = 50"), "{out}");
    assert!(
        out.contains("bootstrap = [\"127.41.8.2:1\", \"127.41.8.3:1\"]"),
        "{out}"
    );
    assert!(out.contains("save-interval = 300  # default"), "{out}");
    assert!(
        out.contains("bind = [\"127.41.8.9:1\"]  # command line"),
        "{out}"
    );
    assert!(out.contains("max-nodes = 50  # config file"), "{out}");
    assert!(out.contains("read-only = false"), "{out}");
    // What it prints is a config file that reads back.
    let printed = dir.join("printed.toml");
    std::fs::write(&printed, &out).unwrap();
    let (code, again, err) = run(&["--config", printed.to_str().unwrap(), "config", "node"]);
    assert_eq!(code, 0, "{err}");
    assert!(again.contains("bind = [\"127.41.8.9:1\"]"), "{again}");
    // Without a command: every command's table.
    let (_, all, _) = run(&["--config", c, "config"]);
    for t in ["[node]", "[crawl]", "[web]", "[search]", "[get-peers]"] {
        assert!(all.contains(t), "{t} in {all}");
    }
    assert!(all.contains("limit = 5"), "{all}");

    // Bad files: one line, exit 2, naming the file and the problem.
    for (text, want) in [
        ("[node]\nbindd = 1\n", "bindd"),
        ("[nodes]\nbind = \"x\"\n", "[nodes]"),
        ("[node]\nread-only = \"yes\"\n", "true or false"),
        ("[node\n", "TOML"),
        ("[node]\nbind = \"not an address\"\n", "not an ADDR:PORT"),
    ] {
        let bad = dir.join("bad.toml");
        std::fs::write(&bad, text).unwrap();
        let (code, _, err) = run(&["--config", bad.to_str().unwrap(), "node"]);
        assert_eq!(code, 2, "{text:?}: {err}");
        assert!(err.contains(want), "{text:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
    let (code, _, err) = run(&[
        "--config",
        dir.join("missing.toml").to_str().unwrap(),
        "node",
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("missing.toml"), "{err}");
}

#[test]
fn keygen_put_get_sample_and_scrape_over_loopback() {
    let dir = tmpdir("bep44");
    let mut nodes = Vec::new();
    for i in 1..=4 {
        let bind = format!("127.47.{i}.1:16881");
        nodes.push(start_node(&[
            "--bind",
            &bind,
            "--bootstrap",
            "127.47.1.1:16881",
        ]));
    }
    let boot = "127.47.1.1:16881,127.47.2.1:16881";
    // Each one-shot from its own address, as separate hosts: the nodes' per-IP limits
    // would otherwise see one host making many lookups in a few seconds.
    let next = std::cell::Cell::new(100u8);
    let one_shot = |args: &[&str]| {
        let bind = format!("127.47.{}.1:0", next.get());
        next.set(next.get() + 1);
        let mut a = args.to_vec();
        a.extend(["--bootstrap", boot, "--timeout", "20", "--bind", &bind]);
        run(&a)
    };
    // The same, returning stdout's bytes.
    let one_shot_bytes = |args: &[&str]| {
        let bind = format!("127.47.{}.1:0", next.get());
        next.set(next.get() + 1);
        let mut a = args.to_vec();
        a.extend(["--bootstrap", boot, "--timeout", "20", "--bind", &bind]);
        let out = bin().args(&a).output().expect("runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };

    // keygen: a seed readable by its owner only, the public key on stdout, no overwrite.
    let key = dir.join("key");
    let key_s = key.to_str().unwrap();
    let (code, out, err) = run(&["keygen", key_s]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim().len(), 64, "{out}");
    let seed = std::fs::read_to_string(&key).unwrap();
    assert_eq!(seed.trim().len(), 64);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let (code, _, err) = run(&["keygen", key_s]);
    assert_eq!(code, 2, "refuses to overwrite: {err}");

    // Immutable: the first line is the target, the SHA-1 of "11:hello world".
    let (code, out, err) = one_shot(&["put", "hello world"]);
    assert_eq!(code, 0, "{err}");
    let target = out.lines().next().unwrap().to_string();
    assert_eq!(target, "6d33adc2b6b2c14c3036feefb7fedbca1a880527");
    let (code, out, err) = one_shot(&["get", &target]);
    assert_eq!((code, out.trim()), (0, "hello world"), "{err}");
    let (code, out, _) = one_shot(&["get", &target, "--json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["value"], "hello world");
    assert!(v["seq"].is_null() && v["key"].is_null() && v["sig"].is_null());

    // Mutable with a salt: seq 1, then seq 2 found and bumped by itself.
    let (code, out, err) = one_shot(&["put", "first", "--key", key_s, "--salt", "s1"]);
    assert_eq!(code, 0, "{err}");
    let mtarget = out.lines().next().unwrap().to_string();
    let (code, out, err) = one_shot(&["put", "second", "--key", key_s, "--salt", "s1"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().next(), Some(mtarget.as_str()));
    let (code, out, err) = one_shot(&["get", &mtarget, "--salt", "s1", "--json"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(
        (v["value"].as_str(), v["seq"].as_i64()),
        (Some("second"), Some(2))
    );
    assert_eq!(v["key"].as_str().map(str::len), Some(64));
    assert_eq!(v["sig"].as_str().map(str::len), Some(128));
    // A stale seq is refused everywhere: exit 1, the codes on stderr.
    let (code, _, err) = one_shot(&["put", "old", "--key", key_s, "--salt", "s1", "--seq", "1"]);
    assert_eq!(code, 1);
    assert!(err.contains("302"), "{err}");
    // ... and with --json, each refusal with its node and code, and what the nodes had.
    let (code, out, _) = one_shot(&[
        "put", "old", "--key", key_s, "--salt", "s1", "--seq", "1", "--json",
    ]);
    assert_eq!(code, 1);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let refusals = v["refusals"].as_array().unwrap();
    assert!(!refusals.is_empty(), "{v}");
    assert!(refusals.iter().all(|r| r["code"] == 302), "{v}");
    assert!(refusals
        .iter()
        .all(|r| r["addr"].as_str().unwrap().starts_with("127.47.")));
    assert_eq!(v["stored"], 0);
    assert!(v["found"]["newer"].as_u64().unwrap() >= 1, "{v}");
    // The wrong salt: not found.
    let (code, out, _) = one_shot(&["get", &mtarget, "--salt", "s2"]);
    assert_eq!((code, out.as_str()), (1, ""));
    // A salt over 64 bytes is refused before any query, with BEP 44's code.
    let long_salt = "s".repeat(65);
    let (code, _, err) = one_shot(&["get", &mtarget, "--salt", &long_salt]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("207"), "{err}");
    let (code, _, err) = one_shot(&["put", "x", "--key", key_s, "--salt", &long_salt]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("207"), "{err}");

    // Binary values: from a file (every byte value, as a DNS packet may hold), read back
    // exactly with --raw and as value_hex; and from hex digits.
    let bin: Vec<u8> = (0..=255u8).rev().chain(0..=255u8).collect();
    let bin_file = dir.join("value.bin");
    std::fs::write(&bin_file, &bin).unwrap();
    let (code, out, err) = one_shot(&[
        "put",
        "--value-file",
        bin_file.to_str().unwrap(),
        "--key",
        key_s,
    ]);
    assert_eq!(code, 0, "{err}");
    let btarget = out.lines().next().unwrap().to_string();
    let raw = one_shot_bytes(&["get", &btarget, "--raw"]);
    assert_eq!(raw, bin, "--raw writes the value's exact bytes");
    let (code, out, err) = one_shot(&["get", &btarget, "--json"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let hex_of = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    assert_eq!(v["value_hex"].as_str(), Some(hex_of(&bin).as_str()));
    assert_eq!(v["seq"], 1);
    assert!(v["found"]["current"].as_u64().unwrap() >= 1, "{v}");
    assert!(v["found"]["answered"].as_u64().unwrap() >= v["found"]["current"].as_u64().unwrap());
    let (code, out, err) = one_shot(&["put", "--hex", "00ff10"]);
    assert_eq!(code, 0, "{err}");
    let htarget = out.lines().next().unwrap().to_string();
    let (code, out, _) = one_shot(&["get", &htarget, "--json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["value_hex"], "00ff10");
    assert_eq!(one_shot(&["put", "--hex", "0g"]).0, 2, "bad hex");
    assert_eq!(one_shot(&["put", "--hex"]).0, 2, "--hex needs a value");

    // BEP 46: a mutable torrent published with --info-hash resolves from its magnet link.
    let pointed = "0123456789abcdef0123456789abcdef01234567";
    let (code, out, err) = one_shot(&[
        "put",
        "--key",
        key_s,
        "--salt",
        "torrent",
        "--info-hash",
        pointed,
    ]);
    assert_eq!(code, 0, "{err}");
    let link = out
        .lines()
        .find(|l| l.starts_with("magnet:?xs=urn:btpk:"))
        .unwrap_or_else(|| panic!("a magnet link: {out}"))
        .to_string();
    let (code, out, err) = one_shot(&["get", &link]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().next(), Some(pointed), "{out}");
    let (code, out, _) = one_shot(&["get", &link, "--json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["info_hash"], pointed);
    assert_eq!(v["magnet"], format!("magnet:?xt=urn:btih:{pointed}"));

    // Bad input: exit 2.
    let bad = dir.join("bad");
    std::fs::write(&bad, "not hex\n").unwrap();
    assert_eq!(one_shot(&["put", "x", "--key", bad.to_str().unwrap()]).0, 2);
    assert_eq!(one_shot(&["put", "x", "--key", "/nonexistent/key"]).0, 2);
    assert_eq!(one_shot(&["get", "abc"]).0, 2);
    let big = "x".repeat(1000);
    assert_eq!(one_shot(&["put", &big]).0, 2, "over 1000 bytes bencoded");

    // BEP 51 from one node: after an announce, its infohash is in the node's sample.
    let ih = "00112233445566778899aabbccddeeff00112244";
    let (code, _, err) = one_shot(&["announce", ih, "--port", "5555"]);
    assert_eq!(code, 0, "{err}");
    let mut seen = false;
    for n in 1..=4 {
        let (code, out, err) = one_shot(&["sample", &format!("127.47.{n}.1:16881"), "--json"]);
        assert_eq!(code, 0, "{err}");
        let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        assert!(v["interval"].as_i64().unwrap() > 0);
        let samples = v["samples"].as_array().unwrap();
        assert_eq!(v["num"].as_u64().unwrap() as usize, samples.len());
        seen |= samples.iter().any(|s| s == ih);
    }
    assert!(
        seen,
        "the announced infohash is sampled by a node that stores it"
    );

    // BEP 33: the one announcer (not a seed) is counted; an unknown infohash: exit 1.
    let (code, out, err) = one_shot(&["scrape", ih, "--json"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(
        (v["seeds"].as_u64(), v["peers"].as_u64()),
        (Some(0), Some(1)),
        "{v}"
    );
    let (code, out, _) = one_shot(&["scrape", "ffffffffffffffffffffffffffffffffffffffff"]);
    assert_eq!((code, out.as_str()), (1, ""));
    drop(nodes);
}

#[test]
fn logs_piped_to_a_file_carry_no_colour_codes() {
    let (_, _, err) = run(&[
        "ping",
        "127.0.0.1:9",
        "--bind",
        "127.3.0.1:0",
        "--bootstrap",
        "127.0.0.1:9",
        "--timeout",
        "1",
        "-vv",
    ]);
    assert!(err.contains("DEBUG"), "the debug log is there: {err}");
    assert!(
        !err.contains('\u{1b}'),
        "escape codes in piped logs: {err:?}"
    );
}

#[test]
fn completions_and_the_manual_page() {
    for shell in ["bash", "zsh", "fish"] {
        let (code, out, err) = run(&["completions", shell]);
        assert_eq!(code, 0, "{shell}: {err}");
        assert!(
            out.contains("dhtkit") && out.contains("crawl"),
            "{shell}: {out}"
        );
        let opt = if shell == "fish" {
            "-l bootstrap"
        } else {
            "--bootstrap"
        };
        assert!(out.contains(opt), "{shell} completes options");
    }
    let (code, _, err) = run(&["completions", "tcsh"]);
    assert_eq!(code, 2, "an unknown shell is bad input: {err}");
    let (code, out, _) = run(&["manpage"]);
    assert_eq!(code, 0);
    assert!(
        out.starts_with(".ie") || out.starts_with(".TH"),
        "roff: {out:.80}"
    );
    assert!(out.contains(".TH dhtkit 1"));
    for sub in ["DHTKIT NODE", "DHTKIT CRAWL", "DHTKIT WEB"] {
        assert!(out.contains(sub), "the page has a section for {sub}");
    }
    assert!(
        out.contains("\\-\\-sample\\-interval"),
        "subcommand options are in the page"
    );
}
