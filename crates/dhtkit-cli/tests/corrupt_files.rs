//! Issue 21's truncated and garbled files: a state file and a SQLite index cut short or
//! overwritten at many offsets give a one-line error (exit 2) or a clean start, never a
//! panic.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use common::{dhtkit, dhtkit_node};

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("dhtkit-corrupt-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The damaged copies of `good`: cut at nine lengths, and three kinds of byte written at
/// twenty offsets each.
fn damaged(good: &[u8]) -> Vec<(String, Vec<u8>)> {
    let n = good.len();
    let mut out = Vec::new();
    for cut in [0, 1, 2, n / 8, n / 4, n / 2, 3 * n / 4, n - 2, n - 1] {
        out.push((format!("cut at {cut}"), good[..cut].to_vec()));
    }
    for i in 0..20 {
        let at = i * n / 20;
        for b in [0xffu8, b'{', 0] {
            let mut v = good.to_vec();
            v[at] = b;
            if v != good {
                out.push((format!("byte {b:#x} at {at}"), v));
            }
        }
    }
    out
}

/// Asserts that a run on a damaged file ended as a program should: no panic, and either
/// success, "nothing found" or a one-line error.
fn assert_clean(what: &str, o: &Output) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!err.contains("panicked"), "{what}: {err}");
    match o.status.code() {
        Some(0 | 1) => {}
        Some(2) => {
            let first = err.lines().next().unwrap_or_default();
            assert!(first.starts_with("error"), "{what}: {err}");
            assert_eq!(err.lines().count(), 1, "{what}: one line: {err}");
        }
        other => panic!("{what}: exit {other:?}: {err}"),
    }
}

fn wait_for(path: &Path, limit: Duration) {
    let deadline = Instant::now() + limit;
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_damaged_state_file_gives_a_clear_error_or_a_clean_start() {
    let d = dir("state");
    let state = d.join("state.json");
    let _peer = dhtkit_node("127.62.2.1:16881", "127.62.3.1:16881");
    let _peer2 = dhtkit_node("127.62.3.1:16881", "127.62.2.1:16881");
    let state_s = state.to_str().unwrap();
    let mut node = dhtkit()
        .args(["node", "--bind", "127.62.1.1:16881"])
        .args(["--bootstrap", "127.62.2.1:16881,127.62.3.1:16881"])
        .args(["--state", state_s, "--save-interval", "0.2"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for(&state, Duration::from_secs(20));
    std::thread::sleep(Duration::from_millis(500));
    node.kill().unwrap();
    node.wait().unwrap();
    let good = std::fs::read(&state).unwrap();
    assert!(good.len() > 100, "a state with nodes: {}", good.len());
    let cases = damaged(&good);
    let mut refused = 0;
    for (i, (what, bytes)) in cases.iter().enumerate() {
        let f = d.join(format!("damaged-{i}.json"));
        std::fs::write(&f, bytes).unwrap();
        let o = dhtkit()
            .args([
                "find-node",
                &"ab".repeat(20),
                "--state",
                f.to_str().unwrap(),
            ])
            .args(["--bind", "127.62.9.1:0", "--bootstrap", "127.0.0.1:9"])
            .args(["--timeout", "2"])
            .output()
            .unwrap();
        assert_clean(what, &o);
        if o.status.code() == Some(2) {
            refused += 1;
            let err = String::from_utf8_lossy(&o.stderr);
            assert!(
                err.contains(f.to_str().unwrap()),
                "{what}: names the file: {err}"
            );
        }
    }
    assert!(
        refused * 2 >= cases.len(),
        "most damage is refused: {refused}/{}",
        cases.len()
    );
}

#[test]
fn a_damaged_sqlite_index_gives_a_clear_error_never_a_panic() {
    let d = dir("sqlite");
    // A small index, from JSON lines.
    let lines: String = (0..200)
        .map(|i| {
            let ih = format!("{:040x}", 0x1234_5678u64 * (i + 1));
            format!(
                "{{\"infohash\":\"{ih}\",\"name\":\"ubuntu {i} desktop amd64\",\"size\":{},\
                 \"files\":1,\"file_list\":[{{\"path\":\"ubuntu-{i}.iso\",\"length\":{}}}]}}\n",
                1000 + i,
                1000 + i
            )
        })
        .collect();
    let src = d.join("in.jsonl");
    std::fs::write(&src, lines).unwrap();
    let db = d.join("good.sqlite");
    let o = dhtkit()
        .args(["import", "--from", "jsonl", src.to_str().unwrap()])
        .args(["--db", db.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = dhtkit()
        .args(["search", "ubuntu", "--db", db.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "the good index answers");
    let good = std::fs::read(&db).unwrap();
    let mut refused = 0;
    for (i, (what, bytes)) in damaged(&good).iter().enumerate() {
        let f = d.join(format!("damaged-{i}.sqlite"));
        std::fs::write(&f, bytes).unwrap();
        let f = f.to_str().unwrap();
        for args in [
            vec!["search", "ubuntu", "--db", f],
            vec!["export", "--db", f],
        ] {
            let o = dhtkit().args(&args).output().unwrap();
            assert_clean(&format!("{what}: {args:?}"), &o);
            refused += usize::from(o.status.code() == Some(2));
        }
    }
    // A file cut short is refused (damage inside unused space need not be).
    eprintln!("{refused} damaged runs refused");
    assert!(refused >= 8, "{refused} refused");
}
