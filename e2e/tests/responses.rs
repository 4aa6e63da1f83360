//! Responses through the real Envoy: reversible placeholders go to the
//! provider and come back restored, in JSON replies and in streams whose
//! deltas split the placeholder into pieces; irreversible ones and
//! placeholders the client forged stay as they are.

use meshward_e2e::http::parse_sse;
use meshward_e2e::{paths, placeholders, Fixture, Request, Response};
use serde_json::{json, Value};

const EMAIL: &str = "jane.doe@example.com";
const CARD: &str = "4111 1111 1111 1111";

/// The default policy with e-mail addresses reversible (cards stay `redact`).
fn reversible_email_policy() -> String {
    let mut policy: Value = serde_json::from_str(&paths::read(&paths::default_policy()).unwrap()).unwrap();
    policy["detection"]["classes"]["EMAIL"] = json!({ "action": "reversible" });
    policy.to_string()
}

fn start() -> Fixture {
    Fixture::start_with(|cfg| cfg.policy_json = reversible_email_policy())
}

fn chat(stream: bool) -> String {
    let mut body = json!({
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": format!("Reply to {EMAIL} about card {CARD}.")}]
    });
    if stream {
        body["stream"] = json!(true);
    }
    body.to_string()
}

/// What the provider saw: the placeholder, never the address or the card.
fn assert_provider_saw_placeholders(f: &Fixture) -> String {
    let got = f.received_one().body_text();
    assert!(!got.contains(EMAIL) && !got.contains(CARD), "the provider saw a raw value:\n{got}");
    let emails = placeholders(&got, "EMAIL");
    assert_eq!(emails.len(), 1, "{got}");
    assert_eq!(placeholders(&got, "CREDIT_CARD").len(), 1, "{got}");
    emails[0].clone()
}

fn stream_content(resp: &Response) -> String {
    let text = resp.text();
    let events = parse_sse(&text);
    assert_eq!(events.last().map(|e| e.data.as_str()), Some("[DONE]"), "the stream must complete:\n{text}");
    events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str::<Value>(&e.data).unwrap_or_else(|err| panic!("bad chunk {:?}: {err}", e.data)))
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn a_json_reply_gets_the_callers_own_value_back() {
    let f = start();
    let resp = f.send(&Request::post_json("/v1/chat/completions", chat(false)));
    assert_eq!(resp.status, 200, "{}", resp.text());
    let placeholder = assert_provider_saw_placeholders(&f);
    let reply: Value = resp.json().unwrap();
    let content = reply["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(content.contains(EMAIL), "the reversible value is restored for the caller: {content}");
    assert!(!content.contains(&placeholder), "{content}");
    // Cards are `redact`: irreversible, the caller sees the placeholder.
    assert_eq!(placeholders(content, "CREDIT_CARD").len(), 1, "{content}");
    assert!(!content.contains(CARD));
}

#[test]
fn a_stream_restores_a_placeholder_split_across_deltas() {
    let f = start();
    let resp = f.send(&Request::post_json("/v1/chat/completions", chat(true)));
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.header("content-type"), Some("text/event-stream"));
    let placeholder = assert_provider_saw_placeholders(&f);
    // The mock streams four characters per delta, so the 14-character
    // placeholder arrives in pieces; the client still gets the address.
    let content = stream_content(&resp);
    assert!(content.contains(EMAIL), "restored in the stream: {content}");
    assert!(!content.contains(&placeholder) && !content.contains("[EMAIL_"), "{content}");
    assert_eq!(placeholders(&content, "CREDIT_CARD").len(), 1, "{content}");
}

#[test]
fn a_placeholder_the_client_forged_is_never_expanded() {
    let f = start();
    // The caller writes a placeholder-shaped string it was never issued.
    let body = json!({"messages": [{"role": "user", "content": "echo [EMAIL_ffffff] and [EMAIL_000000]"}]});
    let resp = f.send(&Request::post_json("/v1/chat/completions", body.to_string()));
    assert_eq!(resp.status, 200);
    let reply: Value = resp.json().unwrap();
    let content = reply["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(content.contains("[EMAIL_ffffff]") && content.contains("[EMAIL_000000]"), "{content}");
    assert!(!content.contains('@'), "{content}");
}

#[test]
fn a_stream_gets_usage_injected_upstream_and_stripped_for_the_client() {
    let f = start();
    // A streaming request without stream_options.
    let resp = f.send(&Request::post_json("/v1/chat/completions", chat(true)));
    assert_eq!(resp.status, 200, "{}", resp.text());
    // The provider was asked for usage, with the rest of the body intact.
    let sent: Value = serde_json::from_str(&f.received_one().body_text()).unwrap();
    assert_eq!(sent["stream_options"], json!({ "include_usage": true }), "{sent}");
    assert_eq!(sent["stream"], json!(true));
    // The client did not ask for it, so it sees no usage chunk, and the
    // stream still completes with the caller's restored text.
    let text = resp.text();
    let events = parse_sse(&text);
    assert_eq!(events.last().map(|e| e.data.as_str()), Some("[DONE]"), "{text}");
    for e in &events[..events.len() - 1] {
        let chunk: Value = serde_json::from_str(&e.data).unwrap_or_else(|err| panic!("bad chunk {:?}: {err}", e.data));
        assert!(chunk.get("usage").is_none_or(Value::is_null), "a usage chunk reached the client:\n{text}");
        assert!(!chunk["choices"].as_array().is_some_and(Vec::is_empty), "an empty-choices chunk:\n{text}");
    }
    assert!(stream_content(&resp).contains(EMAIL));
}

#[test]
fn a_client_that_asked_for_usage_gets_its_usage_chunk() {
    let f = start();
    let mut body: Value = serde_json::from_str(&chat(true)).unwrap();
    body["stream_options"] = json!({ "include_usage": true });
    let resp = f.send(&Request::post_json("/v1/chat/completions", body.to_string()));
    assert_eq!(resp.status, 200, "{}", resp.text());
    let sent: Value = serde_json::from_str(&f.received_one().body_text()).unwrap();
    assert_eq!(sent["stream_options"], json!({ "include_usage": true }));
    let text = resp.text();
    let events = parse_sse(&text);
    assert_eq!(events.last().map(|e| e.data.as_str()), Some("[DONE]"), "{text}");
    let usage_chunks = events[..events.len() - 1]
        .iter()
        .filter_map(|e| serde_json::from_str::<Value>(&e.data).ok())
        .filter(|c| c["usage"].is_object() && c["choices"].as_array().is_some_and(Vec::is_empty))
        .count();
    assert_eq!(usage_chunks, 1, "{text}");
}
