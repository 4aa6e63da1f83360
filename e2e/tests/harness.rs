//! The harness itself: the mock provider answered directly, and a plain
//! Envoy (no wasm filter) in front of it. When these pass and the filter
//! tests fail, the filter is at fault, not the plumbing.

use meshward_e2e::http::{self, parse_sse};
use meshward_e2e::{Fixture, MockProvider, Request};
use serde_json::{json, Value};

const CHAT: &str = r#"{"model":"gpt-4o-mini","messages":[{"role":"system","content":"You are terse."},{"role":"user","content":[{"type":"text","text":"Hello"},{"type":"text","text":"world"}]}]}"#;

fn plain_fixture() -> Fixture {
    Fixture::start_with(|cfg| cfg.with_filter = false)
}

#[test]
fn mock_replies_with_the_transcript_as_a_chat_completion() {
    let mock = MockProvider::start("127.0.0.1:0").unwrap();
    let resp = http::send(mock.addr(), &Request::post_json("/v1/chat/completions", CHAT)).unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("content-type"), Some("application/json"));
    let v = resp.json().unwrap();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], "gpt-4o-mini");
    assert_eq!(v["choices"][0]["message"]["content"], "system: You are terse.\nuser: Hello\nworld");
    let got = mock.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].method, "POST");
    assert_eq!(got[0].path, "/v1/chat/completions");
    assert_eq!(got[0].body, CHAT.as_bytes());
    assert_eq!(got[0].header("content-type"), Some("application/json"));
}

#[test]
fn mock_streams_sse_and_accepts_chunked_requests() {
    let mock = MockProvider::start("127.0.0.1:0").unwrap();
    let body = r#"{"stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"stream me please"}]}"#;
    let resp = http::send(mock.addr(), &Request::post_json("/v1/chat/completions", body).chunked_into(4)).unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("content-type"), Some("text/event-stream"));
    let events = parse_sse(&resp.text());
    assert_eq!(events.last().unwrap().data, "[DONE]");
    let chunks: Vec<Value> =
        events[..events.len() - 1].iter().map(|e| serde_json::from_str(&e.data).unwrap()).collect();
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let text: String = chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
    assert_eq!(text, "user: stream me please");
    assert!(chunks.len() > 5, "the reply must come in small pieces");
    assert!(chunks.iter().any(|c| c["choices"][0]["finish_reason"] == "stop"));
    assert_eq!(chunks.last().unwrap()["usage"]["total_tokens"], 8);
    let got = mock.received();
    assert_eq!(got[0].body, body.as_bytes(), "chunked body reassembled");
    assert_eq!(got[0].header("transfer-encoding"), Some("chunked"));
}

#[test]
fn mock_answers_anthropic_echoes_unknown_paths_and_lists_requests() {
    let mock = MockProvider::start("127.0.0.1:0").unwrap();
    let resp = http::send(
        mock.addr(),
        &Request::post_json(
            "/v1/messages",
            r#"{"model":"claude","system":"sys","messages":[{"role":"user","content":"hi"}]}"#,
        ),
    )
    .unwrap();
    assert_eq!(resp.json().unwrap()["content"][0]["text"], "system: sys\nuser: hi");

    let resp = http::send(mock.addr(), &Request::post_json("/v2/whatever?x=1", "raw \u{e9} body")).unwrap();
    assert_eq!(resp.json().unwrap(), json!({"received": "raw \u{e9} body"}));

    let resp = http::send(mock.addr(), &Request::post_json("/v1/chat/completions", "{nope")).unwrap();
    assert_eq!(resp.status, 400);

    let listed = http::send(mock.addr(), &Request::get("/__mock/requests")).unwrap();
    let listed = listed.json().unwrap();
    let paths: Vec<&str> = listed.as_array().unwrap().iter().map(|r| r["path"].as_str().unwrap()).collect();
    assert_eq!(paths, ["/v1/messages", "/v2/whatever?x=1", "/v1/chat/completions"]);
    assert_eq!(listed[1]["body"], "raw \u{e9} body");
    assert_eq!(mock.received().len(), 3, "control endpoints are not recorded");
}

#[test]
fn plain_envoy_forwards_bodies_and_keeps_the_request_id() {
    let f = plain_fixture();
    let resp = f.send(&Request::post_json("/v1/chat/completions", CHAT).header("x-request-id", "harness-req-1"));
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.header("x-request-id"), Some("harness-req-1"));
    let v = resp.json().unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], "system: You are terse.\nuser: Hello\nworld");
    let got = f.received_one();
    assert_eq!(got.body, CHAT.as_bytes());
    assert_eq!(got.header("x-request-id"), Some("harness-req-1"));
    assert_eq!(f.envoy.stat("cluster.llm_provider.upstream_rq_total").unwrap(), Some(1));
    assert_eq!(f.envoy.stat("no.such.stat").unwrap(), None);
}

#[test]
fn plain_envoy_forwards_chunked_requests_and_streams() {
    let f = plain_fixture();
    let body = r#"{"stream":true,"messages":[{"role":"user","content":"chunk by chunk"}]}"#;
    let resp = f.send(&Request::post_json("/v1/chat/completions", body).chunked_into(5));
    assert_eq!(resp.status, 200, "{}", resp.text());
    let events = parse_sse(&resp.text());
    assert_eq!(events.last().unwrap().data, "[DONE]");
    assert_eq!(f.received_one().body, body.as_bytes());
}
