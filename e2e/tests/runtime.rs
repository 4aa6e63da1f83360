//! The runtime half of the matrix on the real Envoy: a policy pushed while
//! Envoy runs (through ECDS, the way Istio delivers a `WasmPlugin`), a bad
//! push that must not disarm the filter, a VM that traps under each
//! failure policy, and the bench's floor guest.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use meshward_e2e::{placeholders, Body, Envoy, EnvoyConfig, Fixture, Request, Response};
use serde_json::json;

const EMAIL: &str = "jane.doe@example.com";

fn chat(id: &str, content: &str) -> Request {
    let body = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": content}]});
    Request::new("POST", "/v1/chat/completions")
        .header("content-type", "application/json")
        .header("x-request-id", id)
        .body(Body::Fixed(body.to_string().into_bytes()))
}

/// The sum of the ECDS stats for our filter whose name ends in `suffix`.
fn ecds_stat(envoy: &Envoy, suffix: &str) -> u64 {
    let stats = envoy.stats_containing("extension_config_discovery").unwrap_or_else(|e| panic!("{e}"));
    stats.iter().filter(|(name, _)| name.contains("meshward") && name.ends_with(suffix)).map(|(_, v)| v).sum()
}

fn wait_for(what: &str, envoy: &Envoy, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}; Envoy log:\n{}", envoy.log());
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn policy(email_action: &str) -> String {
    json!({
        "meshward_policy": 1, "name": format!("email-{email_action}"), "version": "1",
        "detection": {"classes": {"EMAIL": {"action": email_action}}}
    })
    .to_string()
}

fn problem_type(resp: &Response) -> String {
    resp.json().map(|doc| doc["type"].as_str().unwrap_or_default().to_owned()).unwrap_or_default()
}

#[test]
fn a_policy_pushed_while_envoy_runs_takes_effect_and_a_bad_push_keeps_the_last_good_one() {
    let f = Fixture::start_with(|cfg| {
        cfg.filter_via_ecds = true;
        cfg.policy_json = policy("redact");
    });
    let resp = f.send(&chat("before", &format!("mail {EMAIL}")));
    assert_eq!(resp.status, 200, "{}", resp.text());
    let got = f.received().pop().unwrap().body_text();
    assert!(!got.contains(EMAIL) && placeholders(&got, "EMAIL").len() == 1, "{got}");
    let reloads = ecds_stat(&f.envoy, "config_reload");
    assert!(reloads >= 1, "the filter came through ECDS: {:?}", f.envoy.stats_containing("extension_config"));

    // Push a policy that blocks e-mail addresses.
    let mut cfg = EnvoyConfig::new(f.mock.addr()).unwrap();
    cfg.policy_json = policy("block");
    f.envoy.update_filter(&cfg).unwrap();
    wait_for("the new policy", &f.envoy, || ecds_stat(&f.envoy, "config_reload") > reloads);
    let resp = f.send(&chat("after", &format!("mail {EMAIL}")));
    assert_eq!((resp.status, problem_type(&resp).as_str()), (403, "urn:meshward:problem:blocked-content"));
    let resp = f.send(&chat("clean-after", "nothing personal here"));
    assert_eq!(resp.status, 200, "{}", resp.text());

    // A policy the filter refuses: Envoy rejects the update and keeps the
    // last good filter, so e-mail is still blocked, never let through.
    let fails = ecds_stat(&f.envoy, "config_fail");
    cfg.policy_json =
        r#"{"meshward_policy": 1, "name": "broken", "detection": {"classes": {"EMAIL": {"action": "shrug"}}}}"#.into();
    f.envoy.update_filter(&cfg).unwrap();
    wait_for("the bad policy to be refused", &f.envoy, || ecds_stat(&f.envoy, "config_fail") > fails);
    let resp = f.send(&chat("after-bad-push", &format!("mail {EMAIL}")));
    assert_eq!((resp.status, problem_type(&resp).as_str()), (403, "urn:meshward:problem:blocked-content"));
    let sent: Vec<String> = f.received().iter().map(|r| r.body_text()).collect();
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert!(sent.iter().all(|body| !body.contains(EMAIL)), "{sent:?}");
}

/// Compiles the trapping guest into the test's temp dir.
fn trap_guest(dir: &tempfile::TempDir) -> PathBuf {
    let wat = include_str!("../guests/trap.wat");
    let wasm = wat::parse_str(wat).unwrap_or_else(|e| panic!("guests/trap.wat: {e}"));
    let path = dir.path().join("trap.wasm");
    std::fs::write(&path, wasm).unwrap();
    path
}

#[test]
fn a_vm_that_traps_fails_closed_under_the_shipped_failure_policy() {
    let dir = tempfile::tempdir().unwrap();
    let module = trap_guest(&dir);
    let f = Fixture::start_with(|cfg| cfg.wasm_module = Some(module));
    assert_eq!(f.send(&chat("healthy", "hi")).status, 200);

    let resp = f.send(&chat("trap", "hi").header("x-trap", "1"));
    assert!(resp.status >= 500, "a trap must not pass the request: {} {}", resp.status, resp.text());
    // The VM is gone: with `fail_open: false` every later request is
    // refused too, until Envoy is restarted or the filter re-pushed.
    // Envoy may answer at the headers and close, so a reset also counts as
    // refused; what matters is that nothing reaches the provider (below).
    for i in 0..3 {
        match f.envoy.send(&chat(&format!("after-trap-{i}"), "hi")) {
            Ok(resp) => assert!(resp.status >= 500, "fail closed after a trap: {} {}", resp.status, resp.text()),
            Err(e) => eprintln!("after-trap-{i}: connection refused or reset ({e})"),
        }
    }
    assert_eq!(f.received().len(), 1, "only the request before the trap reached the provider");
}

#[test]
fn with_fail_reload_a_trapped_vm_is_replaced_and_nothing_passes_unfiltered_meanwhile() {
    let dir = tempfile::tempdir().unwrap();
    let module = trap_guest(&dir);
    let f = Fixture::start_with(|cfg| {
        cfg.wasm_module = Some(module);
        cfg.config_edits.push((
            "fail_open: false".into(),
            "failure_policy: FAIL_RELOAD\n                reload_config: { backoff: { base_interval: 0.1s, max_interval: 1s } }"
                .into(),
        ));
    });
    assert_eq!(f.send(&chat("healthy", "hi")).status, 200);
    let resp = f.send(&chat("trap", "hi").header("x-trap", "1"));
    assert!(resp.status >= 500, "{} {}", resp.status, resp.text());

    let mut passed = 1;
    let mut refused = 0;
    wait_for("a reloaded VM", &f.envoy, || {
        let resp = f.send(&chat("after-trap", "hi"));
        if resp.status == 200 {
            passed += 1;
        } else {
            refused += 1;
        }
        resp.status == 200
    });
    assert_eq!(f.received().len(), passed, "every request refused while reloading stayed away ({refused} refused)");
    let resp = f.send(&chat("trap-again", "hi").header("x-trap", "1"));
    assert!(resp.status >= 500, "the reloaded VM traps like the first: {}", resp.status);
}

/// The bench's floor guest (`make bench` reads meshward's cost against
/// it) must load in Envoy and pass a body it held to its end unchanged:
/// a guest Envoy refused, or one that lost bodies, would make the floor
/// figures meaningless.
#[test]
fn the_bench_floor_guest_passes_requests_and_replies_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = wat::parse_str(include_str!("../guests/floor.wat")).unwrap_or_else(|e| panic!("guests/floor.wat: {e}"));
    let module = dir.path().join("floor.wasm");
    std::fs::write(&module, wasm).unwrap();
    let f = Fixture::start_with(|cfg| cfg.wasm_module = Some(module));
    // Bigger than one read from the socket, so Envoy delivers it in parts
    // and the guest must hold it to the end.
    let content = format!("mail {EMAIL} {}", "and the quarterly figures ".repeat(4000));
    let resp = f.send(&chat("floor", &content));
    assert_eq!(resp.status, 200, "{}", resp.text());
    let sent = f.received();
    assert_eq!(sent.len(), 1);
    assert!(sent[0].body_text().contains(&content), "the floor changed or cut the body");
}
