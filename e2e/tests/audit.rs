//! Decision events from the filter in the real Envoy reach the real
//! `meshward-sink`, signed, and land in its verifiable log.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use meshward_e2e::http::{self, Request};
use meshward_e2e::{paths, Fixture, Launch};
use serde_json::Value;

const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
const EMAIL: &str = "jane.doe@example.com";
const CARD: &str = "4111 1111 1111 1111";

/// The real sink binary on an ephemeral port; killed on drop.
struct Sink {
    child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Sink {
    fn start() -> Sink {
        let binary: PathBuf = paths::root().join("target/release/meshward-sink");
        assert!(binary.exists(), "{} is missing: run `make build` (or `make test`)", binary.display());
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(&binary)
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path())
            .env("MESHWARD_AUDIT_SECRET", SECRET)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let addr = line
            .trim()
            .rsplit("http://")
            .next()
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line from the sink: {line:?}"));
        Sink { child, addr, _dir: dir }
    }

    fn get(&self, path: &str) -> http::Response {
        http::send(self.addr, &Request::get(path)).unwrap()
    }

    /// The log's entries, polled until there are at least `n`.
    fn entries(&self, n: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let body = self.get("/v1/entries?start=0").text();
            let entries: Vec<Value> = body.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
            if entries.len() >= n || Instant::now() > deadline {
                return entries;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn audited_policy() -> String {
    let mut policy: Value = serde_json::from_str(&paths::read(&paths::default_policy()).unwrap()).unwrap();
    policy["audit"] = serde_json::json!({ "enabled": true, "flush_interval_ms": 100 });
    policy.to_string()
}

fn start(sink: SocketAddr) -> Fixture {
    Fixture::start_with(|cfg| {
        cfg.sink = sink;
        cfg.policy_json = audited_policy();
        cfg.env.push(("MESHWARD_AUDIT_SECRET".into(), SECRET.into()));
    })
}

#[test]
fn every_decision_reaches_the_sink_without_raw_values() {
    let sink = Sink::start();
    let fx = start(sink.addr);

    let chat = serde_json::json!({
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": format!("mail {EMAIL}, card {CARD}")}]
    });
    let redacted =
        fx.send(&Request::post_json("/v1/chat/completions", chat.to_string()).header("x-request-id", "aud-1"));
    assert_eq!(redacted.status, 200);
    let refused = fx.send(&Request::post_json("/v1/chat/completions", "{oops").header("x-request-id", "aud-2"));
    assert_eq!(refused.status, 400);
    let bodiless = fx.send(&Request::get("/v1/models").header("x-request-id", "aud-3"));
    assert_eq!(bodiless.status, 200);

    let entries = sink.entries(3);
    assert_eq!(entries.len(), 3, "the sink holds one event per request: {entries:#?}");
    let export = entries.iter().map(Value::to_string).collect::<String>();
    assert!(!export.contains(EMAIL) && !export.contains(CARD) && !export.contains("4111111111111111"), "{export}");

    let event = |id: &str| -> Value {
        entries
            .iter()
            .map(|e| e["event"].clone())
            .find(|e| e["request_id"] == id)
            .unwrap_or_else(|| panic!("no event for {id} in {entries:#?}"))
    };
    let first = event("aud-1");
    assert_eq!(first["action"], "redact");
    assert_eq!(first["findings"]["EMAIL"], 1);
    assert_eq!(first["findings"]["CREDIT_CARD"], 1);
    assert_eq!(first["model"], "gpt-4o-mini");
    assert_eq!(first["policy"]["name"], "default");
    assert_eq!(first["guards"][0]["verdict"], "redact");
    assert_eq!(event("aud-2")["action"], "block");
    assert_eq!(event("aud-3")["action"], "allow");
    assert_eq!(event("aud-3")["guards"][0]["status"], "not_applicable");

    // One worker VM: one instance id, sequence numbers 1, 2, 3 with no gap.
    let mut seqs: Vec<u64> = entries.iter().map(|e| e["event"]["seq"].as_u64().unwrap()).collect();
    seqs.sort();
    assert_eq!(seqs, [1, 2, 3]);
    let instance = &entries[0]["event"]["instance_id"];
    assert!(entries.iter().all(|e| &e["event"]["instance_id"] == instance));
    let gaps = sink.get("/v1/gaps").json().unwrap();
    assert_eq!(gaps["total_missing"], 0, "no gaps expected: {gaps}");

    // The filter counts what it shipped (Envoy prefixes custom metrics).
    let sent = fx.envoy.stat("wasmcustom.meshward_audit_events_sent").unwrap();
    assert_eq!(sent, Some(3));
    // Request metrics agree with the events.
    for (action, n) in [("redact", 1), ("block", 1), ("allow", 1)] {
        assert_eq!(fx.envoy.stat(&format!("wasmcustom.meshward_requests_{action}")).unwrap(), Some(n), "{action}");
    }
    assert_eq!(fx.envoy.stat("wasmcustom.meshward_findings_email").unwrap(), Some(1));
}

#[test]
fn an_unreachable_sink_never_delays_or_fails_requests() {
    // Nothing listens on port 9: every delivery fails and is retried.
    let fx = start("127.0.0.1:9".parse().unwrap());
    let started = Instant::now();
    for i in 0..5 {
        let body = format!(r#"{{"messages":[{{"role":"user","content":"hello {i}"}}]}}"#);
        let response = fx.send(&Request::post_json("/v1/chat/completions", body));
        assert_eq!(response.status, 200);
    }
    assert!(started.elapsed() < Duration::from_secs(5), "requests were held up by the audit path");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let retried = fx.envoy.stat("wasmcustom.meshward_audit_batches_retried").unwrap().unwrap_or(0);
        if retried > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "no retry counted; Envoy log:\n{}", fx.envoy.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(fx.envoy.stat("wasmcustom.meshward_audit_events_sent").unwrap().unwrap_or(0), 0);
}

#[test]
fn audit_without_its_secret_keeps_envoy_from_starting() {
    let mock = meshward_mock_provider::MockProvider::start("127.0.0.1:0").unwrap();
    let mut cfg = meshward_e2e::EnvoyConfig::new(mock.addr()).unwrap();
    cfg.policy_json = audited_policy();
    match meshward_e2e::Envoy::launch(&cfg).unwrap() {
        Launch::Exited(exit) => {
            assert!(!exit.status.success());
            assert!(exit.log.contains("MESHWARD_AUDIT_SECRET"), "{}", exit.log);
        }
        Launch::Ready(_) => panic!("Envoy started without the audit secret"),
    }
}
