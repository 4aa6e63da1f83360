//! Audit shipping by the real filter, driven through the host with a manual
//! clock: batches leave from the root context on a tick, signed per Standard
//! Webhooks, are retried under the same id, and `audit.required` refuses
//! requests instead of dropping events.

use std::time::Duration;

use meshward_audit_proto::Secret;
use meshward_wasm_host::{CompiledModule, Plugin};
use serde_json::{json, Value};

const KEY: &str = "test-placeholder-key-0123456789";
const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
const START_NANOS: u64 = 1_700_000_000_000_000_000;

fn filter() -> CompiledModule {
    CompiledModule::meshward_filter().unwrap_or_else(|e| panic!("{e}\n(run `make wasm`)"))
}

fn policy(audit: Value) -> Vec<u8> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../policies/default.json");
    let mut policy: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    policy["audit"] = audit;
    policy.to_string().into_bytes()
}

fn plugin(audit: Value) -> Plugin {
    Plugin::builder_from(&filter())
        .plugin_config(policy(audit))
        .env("MESHWARD_PLACEHOLDER_KEY", KEY)
        .env("MESHWARD_AUDIT_SECRET", SECRET)
        .clusters(["meshward_audit"])
        .manual_clock(START_NANOS)
        .build()
        .unwrap_or_else(|e| panic!("the filter refused the policy: {e}"))
}

fn send(p: &Plugin, id: &str, content: &str) -> u32 {
    let headers = [
        (":method", "POST"),
        (":path", "/v1/chat/completions"),
        (":authority", "api.openai.com"),
        ("content-type", "application/json"),
        ("x-request-id", id),
    ];
    let body = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": content}]}).to_string();
    let mut ex = p.send_request(&headers, body.as_bytes(), 7).unwrap();
    let status = ex.local_response().map(|r| r.status).unwrap_or(200);
    ex.finish().unwrap();
    status
}

#[test]
fn events_leave_on_the_tick_signed_and_without_values() {
    let p = plugin(json!({"enabled": true, "flush_interval_ms": 100, "batch_max_events": 10}));
    assert_eq!(send(&p, "r1", "mail jane@example.com"), 200);
    assert_eq!(send(&p, "r2", "hello"), 200);
    assert!(p.http_calls().is_empty(), "nothing is sent from the request path");

    p.advance_time(Duration::from_millis(250)).unwrap();
    let calls = p.http_calls();
    assert_eq!(calls.len(), 1, "one batch for both events");
    let call = &calls[0];
    assert_eq!(call.upstream, "meshward_audit");
    assert_eq!(call.headers.get(":path"), Some("/v1/events"));
    let (id, ts, sig) = (
        call.headers.get("webhook-id").unwrap(),
        call.headers.get("webhook-timestamp").unwrap(),
        call.headers.get("webhook-signature").unwrap(),
    );
    let now = (START_NANOS / 1_000_000_000) as i64;
    Secret::parse(SECRET).unwrap().verify(id, ts, sig, &call.body, now).expect("a valid Standard Webhooks signature");
    let text = String::from_utf8(call.body.clone()).unwrap();
    assert!(!text.contains("jane@example.com"), "{text}");
    let events: Vec<Value> = serde_json::from_str(&text).unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["request_id"], "r1");
    assert_eq!(events[0]["findings"]["EMAIL"], 1);
    assert_eq!((events[0]["seq"].as_u64(), events[1]["seq"].as_u64()), (Some(1), Some(2)));

    p.respond_to_http_call(call.token, &[(":status", "200")], b"{}").unwrap();
    assert_eq!(p.counter("meshward_audit_events_sent"), Some(2));
}

#[test]
fn a_failed_batch_is_retried_with_the_same_webhook_id() {
    let p = plugin(json!({"enabled": true, "flush_interval_ms": 100}));
    send(&p, "r1", "hello");
    p.advance_time(Duration::from_millis(150)).unwrap();
    let first = p.http_calls().remove(0);
    p.respond_to_http_call(first.token, &[(":status", "503")], b"").unwrap();
    assert_eq!(p.counter("meshward_audit_batches_retried"), Some(1));
    // Backoff: not resent at once, resent after it.
    p.advance_time(Duration::from_millis(200)).unwrap();
    assert_eq!(p.http_calls().len(), 1);
    p.advance_time(Duration::from_secs(2)).unwrap();
    let calls = p.http_calls();
    assert_eq!(calls.len(), 2, "the batch was resent");
    assert_eq!(calls[1].headers.get("webhook-id"), first.headers.get("webhook-id"));
    assert_eq!(calls[1].body, first.body);
    // 409: the sink already had it. Counted as delivered.
    p.respond_to_http_call(calls[1].token, &[(":status", "409")], b"").unwrap();
    assert_eq!(p.counter("meshward_audit_events_sent"), Some(1));
}

#[test]
fn required_audit_refuses_requests_when_the_queue_is_full() {
    let p = plugin(json!({"enabled": true, "required": true, "batch_max_events": 1, "queue_max_events": 1}));
    assert_eq!(send(&p, "r1", "hello"), 200);
    // The queue holds one event and no tick has drained it.
    assert_eq!(send(&p, "r2", "hello"), 503);
    p.advance_time(Duration::from_millis(250)).unwrap();
    assert_eq!(send(&p, "r3", "hello"), 200, "drained by the tick: requests flow again");
}

#[test]
fn without_required_a_full_queue_drops_and_counts() {
    let p = plugin(json!({"enabled": true, "batch_max_events": 1, "queue_max_events": 1}));
    assert_eq!(send(&p, "r1", "hello"), 200);
    assert_eq!(send(&p, "r2", "hello"), 200);
    assert_eq!(p.counter("meshward_audit_events_dropped"), Some(1));
}
