//! The filter's request metrics, read from the host as Envoy would export
//! them: exchanges by action, findings by class, blocks by guard, time.

use meshward_wasm_host::{CompiledModule, MetricValue, Plugin};
use serde_json::{json, Value};

const KEY: &str = "test-placeholder-key-0123456789";

fn plugin(classes: Value) -> Plugin {
    let policy = json!({"meshward_policy": 1, "name": "m", "version": "1", "detection": {"classes": classes}});
    Plugin::builder_from(&CompiledModule::meshward_filter().unwrap_or_else(|e| panic!("{e}\n(run `make wasm`)")))
        .plugin_config(policy.to_string())
        .env("MESHWARD_PLACEHOLDER_KEY", KEY)
        .build()
        .unwrap()
}

fn send(p: &Plugin, body: &str) -> u32 {
    let headers = [
        (":method", "POST"),
        (":path", "/v1/chat/completions"),
        (":authority", "api.openai.com"),
        ("content-type", "application/json"),
    ];
    let mut ex = p.send_request(&headers, body.as_bytes(), 0).unwrap();
    let status = ex.local_response().map_or(200, |r| r.status);
    ex.finish().unwrap();
    status
}

fn chat(content: &str) -> String {
    json!({"messages": [{"role": "user", "content": content}]}).to_string()
}

#[test]
fn exchanges_findings_and_blocks_are_counted_without_values() {
    let p = plugin(json!({"EMAIL": {"action": "redact"}, "CREDIT_CARD": {"action": "block"}}));
    assert_eq!(send(&p, &chat("mail a@b.co and c@d.co")), 200);
    assert_eq!(send(&p, &chat("hello")), 200);
    assert_eq!(send(&p, "{not json"), 400);
    assert_eq!(send(&p, &chat("card 4111 1111 1111 1111")), 403);

    assert_eq!(p.counter("meshward_requests_redact"), Some(1));
    assert_eq!(p.counter("meshward_requests_allow"), Some(1));
    assert_eq!(p.counter("meshward_requests_block"), Some(2));
    assert_eq!(p.counter("meshward_findings_email"), Some(2));
    assert_eq!(p.counter("meshward_findings_credit_card"), Some(1));
    assert_eq!(p.counter("meshward_findings_phone"), Some(0));
    // Only the card was a guard's block; the malformed body was never scanned.
    assert_eq!(p.counter("meshward_blocks_pii"), Some(1));
    match p.metric("meshward_filter_time_us") {
        Some(MetricValue::Histogram(values)) => assert_eq!(values.len(), 4),
        other => panic!("expected a histogram, got {other:?}"),
    }
    // No metric name carries a value or a request id.
    for (name, _) in p.metrics() {
        assert!(!name.contains('@') && !name.contains("4111"), "{name}");
    }
}
