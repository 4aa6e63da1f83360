//! The `meshward-sink` binary: `serve` as a process (crash with kill -9,
//! corruption refusal, torn-tail recovery) and `verify` as an auditor runs it.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use common::*;
use meshward_audit_proto::Action;

const BIN: &str = env!("CARGO_BIN_EXE_meshward-sink");

struct Sink {
    child: Child,
    addr: SocketAddr,
}

impl Sink {
    fn start(dir: &Path) -> Sink {
        let mut child = Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--origin", ORIGIN, "--segment-max-mib", "1", "--data-dir"])
            .arg(dir)
            .env("MESHWARD_AUDIT_SECRET", SECRET)
            .env_remove("MESHWARD_SINK_SIGNING_KEY")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let addr = line
            .trim()
            .strip_prefix("meshward-sink listening on http://")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .parse()
            .unwrap();
        Sink { child, addr }
    }

    fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    fn terminate(mut self) {
        let st = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        assert!(st.success());
        let code = self.child.wait().unwrap();
        assert!(code.success(), "clean shutdown: {code:?}");
    }
}

fn verify(args: &[&str]) -> (i32, String) {
    let out = Command::new(BIN).arg("verify").args(args).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text)
}

fn save(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn fill(addr: SocketAddr, tag: &str, n: u64) {
    for b in 0..n {
        let evs: Vec<_> = (1..=5).map(|s| event("acme", tag, b * 5 + s, Action::Redact, &[("EMAIL", 1)])).collect();
        let r = deliver_events(addr, &format!("{tag}-{b}"), &evs);
        assert_eq!(r.status, 200, "{}", r.text());
    }
}

#[test]
fn verify_cli_passes_then_fails_after_one_flipped_byte_in_the_data_dir() {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    let sink = Sink::start(&data);
    fill(sink.addr, "v", 4);
    let (note1, size1, _) = fresh_checkpoint(sink.addr);
    fill(sink.addr, "w", 4);
    let (note2, size2, _) = fresh_checkpoint(sink.addr);
    assert_eq!((size1, size2), (20, 40));
    let key = get(sink.addr, "/v1/verifier-key").text();
    sink.terminate();
    // The key file was created on first start, private.
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(data.join("signing-key")).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);

    let cp = save(work.path(), "cp", &note2);
    let prev = save(work.path(), "prev", &note1);
    let key_file = save(work.path(), "key", &key);
    let (code, out) = verify(&[
        "--checkpoint",
        cp.to_str().unwrap(),
        "--key",
        key.trim(),
        "--data-dir",
        data.to_str().unwrap(),
        "--previous",
        prev.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("OK:") && out.contains("40 entries"), "{out}");
    // Key from a file works the same.
    let (code, _) = verify(&[
        "--checkpoint",
        cp.to_str().unwrap(),
        "--key",
        key_file.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    assert_eq!(code, 0);
    // A wrong key fails the signature.
    let other = meshward_sink::note::NoteSigner::from_seed(ORIGIN, &[1; 32]).unwrap().verifier().encode();
    let (code, out) =
        verify(&["--checkpoint", cp.to_str().unwrap(), "--key", &other, "--data-dir", data.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("not signed by this key"), "{out}");

    // Flip one byte inside entry 13's payload.
    let lines_seg = data.join("log").join("00000000000000000000.seg");
    let mut bytes = std::fs::read(&lines_seg).unwrap();
    let needle = b"\"index\":13,";
    let at = bytes.windows(needle.len()).position(|w| w == needle).unwrap();
    bytes[at - 30] ^= 0x01;
    std::fs::write(&lines_seg, &bytes).unwrap();
    let (code, out) =
        verify(&["--checkpoint", cp.to_str().unwrap(), "--key", key.trim(), "--data-dir", data.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("entry 13") && out.contains("00000000000000000000.seg"),
        "must name the first bad entry: {out}"
    );

    // The sink itself refuses to start on it, naming the file and offset.
    let out = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--origin", ORIGIN, "--data-dir"])
        .arg(&data)
        .env("MESHWARD_AUDIT_SECRET", SECRET)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("00000000000000000000.seg") && err.contains("offset") && err.contains("corrupt"), "{err}");
}

#[test]
fn verify_cli_on_an_export_names_edits_and_checks_consistency() {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    let sink = Sink::start(&data);
    fill(sink.addr, "e", 2);
    let (note1, _, _) = fresh_checkpoint(sink.addr);
    fill(sink.addr, "f", 3);
    let (note2, size, _) = fresh_checkpoint(sink.addr);
    let export = get(sink.addr, &format!("/v1/entries?start=0&end={size}")).body;
    let key = get(sink.addr, "/v1/verifier-key").text();
    sink.terminate();

    let cp = save(work.path(), "cp", &note2);
    let prev = save(work.path(), "prev", &note1);
    let exp = work.path().join("export.jsonl");
    std::fs::write(&exp, &export).unwrap();
    let args = |e: &Path| {
        vec![
            "--checkpoint".to_string(),
            cp.display().to_string(),
            "--key".into(),
            key.trim().into(),
            "--export".into(),
            e.display().to_string(),
            "--previous".into(),
            prev.display().to_string(),
        ]
    };
    let run = |e: &Path| {
        let a = args(e);
        verify(&a.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let (code, out) = run(&exp);
    assert_eq!(code, 0, "{out}");

    // An edit that keeps valid JSON: the root no longer matches; the earlier
    // checkpoint pins the damage to the entries after it.
    let text = String::from_utf8(export.clone()).unwrap();
    let edited = text.replacen("\"action\":\"redact\"", "\"action\":\"allow\"", 1 + 12); // the 13th entry's action
    let mut lines: Vec<&str> = text.lines().collect();
    let edited_lines: Vec<&str> = edited.lines().collect();
    lines[12] = edited_lines[12];
    let tampered = work.path().join("tampered.jsonl");
    std::fs::write(&tampered, lines.join("\n") + "\n").unwrap();
    let (code, out) = run(&tampered);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("entry 10") && out.contains("entry 24"), "{out}");

    // One entry removed: the next one sits at the wrong position.
    let mut dropped: Vec<&str> = text.lines().collect();
    dropped.remove(7);
    std::fs::write(&tampered, dropped.join("\n") + "\n").unwrap();
    let (code, out) = run(&tampered);
    assert_eq!(code, 1);
    assert!(out.contains("entry 7 says it is entry 8"), "{out}");

    // A broken byte that breaks the JSON.
    let mut broken = export.clone();
    let second_line = broken.iter().position(|b| *b == b'\n').unwrap() + 1;
    broken[second_line] = b'X';
    std::fs::write(&tampered, &broken).unwrap();
    let (code, out) = run(&tampered);
    assert_eq!(code, 1);
    assert!(out.contains("entry 1 is not valid JSON"), "{out}");

    // Truncated export.
    let short: Vec<&str> = text.lines().take(20).collect();
    std::fs::write(&tampered, short.join("\n") + "\n").unwrap();
    let (code, out) = run(&tampered);
    assert_eq!(code, 1);
    assert!(out.contains("entry 20 onward is missing"), "{out}");

    // Usage error: exit 2.
    let (code, _) = verify(&["--checkpoint", "/nonexistent", "--key", key.trim(), "--export", exp.to_str().unwrap()]);
    assert_eq!(code, 2);
}

/// kill -9 under concurrent load, three times over: every acknowledged event
/// is in the log afterwards and the log verifies.
#[test]
fn every_acknowledged_event_survives_kill_9_under_load() {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    let acked: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(Vec::new()));
    for round in 0..3 {
        let sink = Sink::start(&data);
        let addr = sink.addr;
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicUsize::new(0));
        let workers: Vec<_> = (0..4)
            .map(|w| {
                let (stop, sent, acked) = (Arc::clone(&stop), Arc::clone(&sent), Arc::clone(&acked));
                std::thread::spawn(move || {
                    let mut b = 0u64;
                    while !stop.load(Ordering::Relaxed) && b < 2000 {
                        let id = format!("r{round}-w{w}-b{b}");
                        let evs: Vec<_> = (1..=10)
                            .map(|s| event("acme", &format!("r{round}w{w}"), b * 10 + s, Action::Allow, &[]))
                            .collect();
                        let body = serde_json::to_vec(&evs).unwrap();
                        b += 1;
                        sent.fetch_add(1, Ordering::Relaxed);
                        // The connection may die mid-request when the sink is killed.
                        match try_deliver(addr, &id, now(), &body) {
                            Ok(resp) if resp.status == 200 => acked.lock().unwrap().push(id),
                            Ok(resp) => panic!("unexpected {}: {}", resp.status, resp.text()),
                            Err(_) => break,
                        }
                    }
                })
            })
            .collect();
        // Kill once a good number of deliveries are in flight or done.
        while sent.load(Ordering::Relaxed) < 60 {
            std::thread::yield_now();
        }
        sink.kill9();
        stop.store(true, Ordering::Relaxed);
        for w in workers {
            let _ = w.join();
        }
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= 30, "the load produced too few acknowledgements: {}", acked.len());

    let sink = Sink::start(&data);
    let (note, size, root) = fresh_checkpoint(sink.addr);
    let body = get(sink.addr, &format!("/v1/entries?start=0&end={size}")).body;
    let lines = jsonl_lines(&body);
    assert_eq!(plain_root(&lines), root);
    let mut stored: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for l in &lines {
        let v: serde_json::Value = serde_json::from_slice(l).unwrap();
        *stored.entry(v["webhook_id"].as_str().unwrap().to_string()).or_default() += 1;
    }
    for id in &acked {
        assert_eq!(stored.get(id), Some(&10), "acknowledged delivery {id} must be stored whole");
    }
    assert!(stored.values().all(|&n| n == 10), "deliveries are stored whole or not at all");
    let key = get(sink.addr, "/v1/verifier-key").text();
    sink.terminate();
    let cp = save(work.path(), "cp", &note);
    let (code, out) =
        verify(&["--checkpoint", cp.to_str().unwrap(), "--key", key.trim(), "--data-dir", data.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn a_torn_tail_is_truncated_on_start_and_nothing_acknowledged_is_lost() {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    let sink = Sink::start(&data);
    fill(sink.addr, "t", 3);
    sink.kill9();
    // Simulate a write cut short by a crash: half a frame at the end.
    let seg = data.join("log").join("00000000000000000000.seg");
    let before = std::fs::metadata(&seg).unwrap().len();
    let mut f = std::fs::OpenOptions::new().append(true).open(&seg).unwrap();
    std::io::Write::write_all(&mut f, &[0x40, 0, 0, 0, 0xde, 0xad]).unwrap();
    drop(f);
    let sink = Sink::start(&data);
    assert_eq!(std::fs::metadata(&seg).unwrap().len(), before, "torn tail truncated to the last record");
    let (_, size, root) = fresh_checkpoint(sink.addr);
    assert_eq!(size, 15);
    let body = get(sink.addr, "/v1/entries").body;
    assert_eq!(plain_root(&jsonl_lines(&body)), root);
    fill(sink.addr, "u", 1);
    sink.terminate();
}
