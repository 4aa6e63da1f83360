//! Resource bounds from the policy's `limits` section: each one is
//! configurable, each is answered with a 413 problem that names it, a body
//! just inside it passes, and a zero bound is a configuration error.

use meshward_engine::policy::{PolicySet, Secrets};
use meshward_engine::problem::ProblemKind;
use meshward_engine::response::ResponseMeta;
use meshward_engine::restore::RestoreMap;
use meshward_engine::{Engine, RequestMeta, Verdict};
use serde_json::{json, Value};

fn engine(limits: Value) -> Engine {
    let doc = json!({
        "meshward_policy": 1, "name": "limits", "version": "1",
        "detection": {"classes": {"EMAIL": {"action": "redact"}}},
        "limits": limits
    });
    let secrets =
        Secrets { placeholder_key: Some("limits-test-placeholder-key-0123456789".into()), ..Secrets::default() };
    PolicySet::from_json(doc.to_string().as_bytes(), &secrets).unwrap().into_default_profile()
}

fn evaluate(engine: &Engine, body: &Value) -> Verdict {
    let meta = RequestMeta {
        request_id: "req-limits",
        path: "/v1/chat/completions",
        content_type: Some("application/json"),
        ..RequestMeta::default()
    };
    engine.evaluate_request(&meta, body.to_string().as_bytes()).verdict
}

/// The limit named in a 413 `limit-exceeded` problem's detail.
fn refused_for(verdict: &Verdict) -> String {
    let Verdict::Block(problem) = verdict else { panic!("expected a refusal, got {verdict:?}") };
    assert_eq!((problem.kind, problem.status()), (ProblemKind::LimitExceeded, 413), "{problem:?}");
    let doc: Value = serde_json::from_slice(&problem.to_json()).unwrap();
    assert_eq!(doc["type"], "urn:meshward:problem:limit-exceeded");
    assert_eq!(doc["request_id"], "req-limits");
    let detail = doc["detail"].as_str().unwrap().to_owned();
    assert!(!detail.contains("@example.com"), "never echoes the input: {detail}");
    detail
}

fn messages(n: usize) -> Value {
    let list: Vec<Value> =
        (0..n).map(|i| json!({"role": "user", "content": format!("m{i} a{i}@example.com")})).collect();
    json!({"model": "gpt-4o", "messages": list})
}

#[test]
fn messages_per_body() {
    let e = engine(json!({"max_messages": 3}));
    assert!(matches!(evaluate(&e, &messages(3)), Verdict::Rewrite(_)));
    assert!(refused_for(&evaluate(&e, &messages(4))).contains("limits.max_messages"));
}

#[test]
fn text_parts_per_body() {
    let e = engine(json!({"max_text_parts": 4}));
    let parts = |n: usize| {
        let content: Vec<Value> = (0..n).map(|i| json!({"type": "text", "text": format!("part {i}")})).collect();
        json!({"model": "gpt-4o", "messages": [{"role": "user", "content": content}]})
    };
    assert!(matches!(evaluate(&e, &parts(4)), Verdict::Allow));
    assert!(refused_for(&evaluate(&e, &parts(5))).contains("limits.max_text_parts"));
}

#[test]
fn string_length() {
    let e = engine(json!({"max_string_bytes": 64}));
    let chat = |text: String| json!({"model": "gpt-4o", "messages": [{"role": "user", "content": text}]});
    assert!(matches!(evaluate(&e, &chat("a".repeat(64))), Verdict::Allow));
    // Escapes count as their raw bytes: 33 × `\n` is 66 bytes on the wire.
    assert!(refused_for(&evaluate(&e, &chat("\n".repeat(33)))).contains("limits.max_string_bytes"));
    // Any string, not only message text.
    let long_key_value = json!({"model": "gpt-4o", "messages": [], "user": "u".repeat(65)});
    assert!(refused_for(&evaluate(&e, &long_key_value)).contains("limits.max_string_bytes"));
}

#[test]
fn findings_per_body() {
    let e = engine(json!({"max_findings": 5}));
    let addresses = |n: usize| {
        let text: Vec<String> = (0..n).map(|i| format!("user{i}@example.com")).collect();
        json!({"model": "gpt-4o", "messages": [{"role": "user", "content": text.join(" and ")}]})
    };
    assert!(matches!(evaluate(&e, &addresses(5)), Verdict::Rewrite(_)));
    assert!(refused_for(&evaluate(&e, &addresses(6))).contains("limits.max_findings"));
}

#[test]
fn defaults_leave_ordinary_bodies_alone() {
    let e = engine(json!({}));
    assert!(matches!(evaluate(&e, &messages(200)), Verdict::Rewrite(_)));
}

#[test]
fn stream_event_size() {
    let e = engine(json!({"max_stream_event_bytes": 128}));
    let meta = ResponseMeta {
        request_id: "req-limits",
        request_path: "/v1/chat/completions",
        content_type: Some("text/event-stream"),
        content_encoding: None,
        status: 200,
    };
    let event = |text: &str| {
        format!("data: {}\n\n", json!({"choices": [{"index": 0, "delta": {"content": text}}]})).into_bytes()
    };
    let mut small = e.response_stream(&meta, RestoreMap::new());
    let out = small.push(&e, &event("hello"));
    assert!(small.problem().is_none() && !out.is_empty());

    let mut big = e.response_stream(&meta, RestoreMap::new());
    let out = big.push(&e, &event(&"x".repeat(200)));
    let problem = big.problem().expect("an event over the limit stops the stream");
    assert_eq!(problem.kind, ProblemKind::UpstreamUnreadable, "{problem:?}");
    assert!(!String::from_utf8_lossy(&out).contains(&"x".repeat(200)), "the event is not forwarded");
}

#[test]
fn zero_bounds_are_configuration_errors() {
    let secrets =
        Secrets { placeholder_key: Some("limits-test-placeholder-key-0123456789".into()), ..Secrets::default() };
    for name in [
        "max_body_bytes",
        "max_messages",
        "max_text_parts",
        "max_string_bytes",
        "max_findings",
        "max_stream_event_bytes",
        "max_hold_back_bytes",
    ] {
        let doc = json!({"meshward_policy": 1, "name": "limits", "version": "1", "limits": {name: 0}});
        let Err(err) = PolicySet::from_json(doc.to_string().as_bytes(), &secrets) else {
            panic!("limits.{name} = 0 was accepted");
        };
        assert!(err.to_string().contains(&format!("limits.{name}")), "{name}: {err}");
    }
}

#[test]
fn hold_back_below_one_private_key_is_a_configuration_error() {
    let secrets =
        Secrets { placeholder_key: Some("limits-test-placeholder-key-0123456789".into()), ..Secrets::default() };
    for (value, ok) in [(8191, false), (8192, true)] {
        let doc =
            json!({"meshward_policy": 1, "name": "limits", "version": "1", "limits": {"max_hold_back_bytes": value}});
        let result = PolicySet::from_json(doc.to_string().as_bytes(), &secrets);
        assert_eq!(result.is_ok(), ok, "{value}: {:?}", result.err().map(|e| e.to_string()));
    }
}
