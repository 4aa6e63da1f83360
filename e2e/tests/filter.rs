//! The meshward filter in the real Envoy, with `policies/default.json`:
//! what the provider receives, and what the client gets back.

use meshward_e2e::http::parse_sse;
use meshward_e2e::{digits, placeholders, Body, Fixture, ReceivedRequest, Request, Response};
use serde_json::{json, Value};

const EMAIL: &str = "jane.doe@example.com";
const CARD_SPACES: &str = "4111 1111 1111 1111";
const CARD_DASHES: &str = "5555-5555-5555-4444";
const RAW_VALUES: [&str; 3] = [EMAIL, CARD_SPACES, CARD_DASHES];
const RAW_CARD_DIGITS: [&str; 2] = ["4111111111111111", "5555555555554444"];

/// A chat request with PII in a string content and in an array-of-parts
/// content, plus a clean system message and an assistant turn.
fn pii_chat(stream: bool) -> Value {
    let mut body = json!({
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": format!("Please e-mail {EMAIL} the receipt for card {CARD_SPACES}.")},
            {"role": "assistant", "content": "Sure, which card was the second one?"},
            {"role": "user", "content": [
                {"type": "text", "text": "The second card is"},
                {"type": "text", "text": format!("{CARD_DASHES}, thanks")}
            ]}
        ]
    });
    if stream {
        body["stream"] = json!(true);
        body["stream_options"] = json!({"include_usage": true});
    }
    body
}

/// Fails with the whole picture if any raw value (or a card's bare digits)
/// is in `text`.
fn assert_no_raw_values(text: &str, what: &str) {
    for raw in RAW_VALUES {
        assert!(!text.contains(raw), "{what} contains the raw value {raw:?}:\n{text}");
    }
    let bare = digits(text);
    for raw in RAW_CARD_DIGITS {
        assert!(!bare.contains(raw), "{what} contains the card digits {raw} (separators removed):\n{text}");
    }
}

/// The provider got a body whose texts are the originals with each value
/// replaced, in order, by one placeholder; returns the rewritten body.
fn assert_redacted_chat(got: &ReceivedRequest, sent: &Value) -> Value {
    let text = got.body_text();
    assert_no_raw_values(&text, "the body the provider received");
    let body = got.body_json().unwrap_or_else(|e| panic!("the provider received invalid JSON ({e}):\n{text}"));
    let emails = placeholders(&text, "EMAIL");
    let cards = placeholders(&text, "CREDIT_CARD");
    assert_eq!(emails.len(), 1, "one e-mail placeholder expected in:\n{text}");
    assert_eq!(cards.len(), 2, "two card placeholders expected in:\n{text}");
    assert_ne!(cards[0], cards[1], "different cards must get different placeholders");

    // Everything else is untouched: same keys, same clean texts, and each
    // PII text is the original with exactly the value swapped out.
    let mut expected = sent.clone();
    expected["messages"][1]["content"] =
        json!(format!("Please e-mail {} the receipt for card {}.", emails[0], cards[0]));
    expected["messages"][3]["content"][1]["text"] = json!(format!("{}, thanks", cards[1]));
    assert_eq!(body, expected, "rewritten body differs beyond the placeholders");

    // The body was not cut: a framing header, if any, matches it.
    if let Some(len) = got.header("content-length") {
        assert_eq!(len, got.body.len().to_string(), "stale content-length upstream");
    }
    body
}

/// What the mock replies with for `body`: its messages as `<role>: <text>`.
fn transcript(body: &Value) -> String {
    body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let text = match &m["content"] {
                Value::String(s) => s.clone(),
                Value::Array(parts) => parts.iter().filter_map(|p| p["text"].as_str()).collect::<Vec<_>>().join("\n"),
                _ => String::new(),
            };
            format!("{}: {text}", m["role"].as_str().unwrap())
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn assert_ok(resp: &Response) {
    assert_eq!(resp.status, 200, "unexpected status; body: {}", resp.text());
}

#[test]
fn chat_request_reaches_the_provider_with_placeholders_only() {
    let f = Fixture::start();
    let sent = pii_chat(false);
    let resp = f.send(
        &Request::post_json("/v1/chat/completions", sent.to_string())
            .header("x-request-id", "e2e-chat-1")
            .header("accept-encoding", "gzip"),
    );
    assert_ok(&resp);
    let got = f.received_one();
    let rewritten = assert_redacted_chat(&got, &sent);
    assert_eq!(got.header("x-request-id"), Some("e2e-chat-1"));
    assert_eq!(got.header("accept-encoding"), Some("identity"), "the filter must force identity encoding upstream");

    // A complete, valid reply that shows what the model saw.
    assert_eq!(resp.header("content-type"), Some("application/json"));
    assert_eq!(resp.header("x-request-id"), Some("e2e-chat-1"));
    let reply = resp.json().unwrap();
    assert_eq!(reply["object"], "chat.completion");
    assert_eq!(reply["choices"][0]["finish_reason"], "stop");
    let content = reply["choices"][0]["message"]["content"].as_str().unwrap();
    assert_eq!(content, transcript(&rewritten));
    assert_no_raw_values(content, "the reply");
    assert_eq!(placeholders(content, "EMAIL").len(), 1);
    assert_eq!(placeholders(content, "CREDIT_CARD").len(), 2);
}

#[test]
fn streamed_chat_is_redacted_and_the_stream_completes() {
    let f = Fixture::start();
    let sent = pii_chat(true);
    let resp = f.send(&Request::post_json("/v1/chat/completions", sent.to_string()));
    assert_ok(&resp);
    let rewritten = assert_redacted_chat(&f.received_one(), &sent);
    assert_eq!(rewritten["stream"], true);

    assert_eq!(resp.header("content-type"), Some("text/event-stream"));
    let text = resp.text();
    let events = parse_sse(&text);
    assert_eq!(
        events.last().map(|e| e.data.as_str()),
        Some("[DONE]"),
        "the stream must end with data: [DONE]:\n{text}"
    );
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(&e.data).unwrap_or_else(|err| panic!("bad chunk {:?}: {err}", e.data)))
        .collect();
    assert!(chunks.iter().all(|c| c["object"] == "chat.completion.chunk"));
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    assert!(chunks.iter().any(|c| c["choices"][0]["finish_reason"] == "stop"));
    assert!(
        chunks.last().unwrap()["usage"]["total_tokens"].as_u64().unwrap() > 0,
        "include_usage must give a final usage chunk"
    );
    let content: String = chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
    assert_eq!(content, transcript(&rewritten));
    assert_no_raw_values(&text, "the stream");
}

#[test]
fn body_that_grows_when_rewritten_is_not_truncated() {
    let f = Fixture::start();
    // Forty short addresses (7 bytes each) become 14-byte placeholders:
    // the body grows by ~280 bytes. A sentinel closes the last text and a
    // field follows the messages, so any cut shows.
    let emails: Vec<String> = (0..40).map(|i| format!("u{i:02}@b.co")).collect();
    let sent = json!({
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": format!("{} END-OF-TEXT-SENTINEL", emails.join(" "))}],
        "user": "trailing-field-sentinel"
    });
    let raw = sent.to_string();
    let resp = f.send(&Request::post_json("/v1/chat/completions", raw.clone()));
    assert_ok(&resp);

    let got = f.received_one();
    let text = got.body_text();
    assert!(
        got.body.len() > raw.len() + 200,
        "the rewritten body ({} bytes) should be longer than the original ({} bytes):\n{text}",
        got.body.len(),
        raw.len()
    );
    let body = got.body_json().unwrap_or_else(|e| panic!("the provider got a cut or invalid body ({e}):\n{text}"));
    assert_eq!(body["user"], "trailing-field-sentinel");
    let content = body["messages"][0]["content"].as_str().unwrap();
    assert!(content.ends_with(" END-OF-TEXT-SENTINEL"), "{content}");
    assert_eq!(placeholders(content, "EMAIL").len(), 40, "{content}");
    for email in &emails {
        assert!(!content.contains(email.as_str()), "{email} leaked: {content}");
    }
    if let Some(len) = got.header("content-length") {
        assert_eq!(len, got.body.len().to_string(), "stale content-length upstream");
    }

    let reply = resp.json().unwrap();
    let reply_text = reply["choices"][0]["message"]["content"].as_str().unwrap();
    assert_eq!(reply_text, format!("user: {content}"));
}

#[test]
fn malformed_json_on_the_chat_path_gets_a_400_problem() {
    let f = Fixture::start();
    for (id, body) in [
        ("e2e-malformed-1", r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"#),
        ("e2e-malformed-2", "this is not json at all"),
    ] {
        let resp = f.send(&Request::post_json("/v1/chat/completions", body).header("x-request-id", id));
        assert_eq!(resp.status, 400, "{id}: {}", resp.text());
        let ct = resp.header("content-type").unwrap_or_default();
        assert!(ct.starts_with("application/problem+json"), "{id}: content-type {ct:?}");
        let problem = resp.json().unwrap();
        assert_eq!(problem["request_id"], id, "{problem}");
        assert_eq!(problem["status"], 400, "{problem}");
        assert!(problem["type"].is_string() && problem["title"].is_string(), "{problem}");
        assert_eq!(resp.header("x-request-id"), Some(id));
    }
    assert!(f.received().is_empty(), "the provider must never see a refused request: {:#?}", f.received());
    // Not even a started-then-reset upstream request.
    assert_eq!(
        f.envoy.stat("cluster.llm_provider.upstream_rq_total").unwrap(),
        Some(0),
        "Envoy opened a request to the provider for a refused body"
    );
}

#[test]
fn json_on_an_unrecognised_path_is_walked_generically() {
    let f = Fixture::start();
    let sent = json!({
        "note": format!("mail {EMAIL} today"),
        "nested": {"list": [format!("card {CARD_SPACES}"), 42, true, null, {"deep": format!("x {CARD_DASHES} y")}]},
        "keep": "nothing sensitive here",
        "n": 7.5
    });
    let resp = f.send(&Request::post_json("/v1/custom/thing?tenant=t1", sent.to_string()));
    assert_ok(&resp);

    let got = f.received_one();
    assert_eq!(got.path, "/v1/custom/thing?tenant=t1");
    let text = got.body_text();
    assert_no_raw_values(&text, "the body the provider received");
    let body = got.body_json().unwrap_or_else(|e| panic!("invalid JSON upstream ({e}):\n{text}"));
    let email = placeholders(&text, "EMAIL");
    let cards = placeholders(&text, "CREDIT_CARD");
    assert_eq!((email.len(), cards.len()), (1, 2), "{text}");
    let mut expected = sent.clone();
    expected["note"] = json!(format!("mail {} today", email[0]));
    expected["nested"]["list"][0] = json!(format!("card {}", cards[0]));
    expected["nested"]["list"][4]["deep"] = json!(format!("x {} y", cards[1]));
    assert_eq!(body, expected);

    // The mock echoes what it got: the client sees the placeholders too.
    let echoed = resp.json().unwrap();
    let echoed = echoed["received"].as_str().unwrap();
    assert_eq!(echoed.as_bytes(), got.body.as_slice());
}

#[test]
fn clean_requests_pass_byte_identical() {
    let f = Fixture::start();
    // Odd but valid formatting, escapes and key order must all survive.
    let chat = "{ \"messages\" : [ {\"content\":\"Caf\\u00e9 at 10:30, room 4111? \\\"quoted\\\" \\n newline\",\"role\":\"user\"} ],\n  \"model\":\"gpt-4o-mini\", \"temperature\": 1.0e0 }";
    let resp = f.send(&Request::post_json("/v1/chat/completions", chat));
    assert_ok(&resp);
    let other = r#"{"b":[1,2,{"c":"no pii here"}],"a":"x@"}"#;
    let resp2 = f.send(&Request::post_json("/v1/other", other));
    assert_ok(&resp2);
    let resp3 = f.send(&Request::get("/v1/models"));
    assert_ok(&resp3);

    let got = f.received();
    assert_eq!(got.len(), 3, "{got:#?}");
    assert_eq!(got[0].body, chat.as_bytes(), "chat body changed:\n{}", got[0].body_text());
    assert_eq!(got[1].body, other.as_bytes(), "generic body changed:\n{}", got[1].body_text());
    assert_eq!((got[2].method.as_str(), got[2].body.len()), ("GET", 0));
    assert_eq!(
        resp.json().unwrap()["choices"][0]["message"]["content"],
        "user: Caf\u{e9} at 10:30, room 4111? \"quoted\" \n newline"
    );
}

#[test]
fn chunked_request_bodies_are_buffered_and_redacted() {
    let f = Fixture::start();
    let sent = pii_chat(false);
    let raw = sent.to_string();
    // Cut inside the e-mail and inside both card numbers.
    let mut cuts: Vec<usize> =
        [EMAIL, CARD_SPACES, CARD_DASHES].iter().map(|v| raw.find(v).unwrap() + v.len() / 2).collect();
    cuts.extend([1, raw.len() / 3, raw.len() - 2]);
    cuts.sort_unstable();
    cuts.dedup();
    let mut chunks = Vec::new();
    let mut start = 0;
    for cut in cuts {
        chunks.push(raw.as_bytes()[start..cut].to_vec());
        start = cut;
    }
    chunks.push(raw.as_bytes()[start..].to_vec());
    assert!(chunks.len() >= 6);

    let resp = f.send(
        &Request::new("POST", "/v1/chat/completions")
            .header("content-type", "application/json")
            .body(Body::Chunked(chunks)),
    );
    assert_ok(&resp);
    let rewritten = assert_redacted_chat(&f.received_one(), &sent);
    let reply = resp.json().unwrap();
    assert_eq!(reply["choices"][0]["message"]["content"].as_str().unwrap(), transcript(&rewritten));
}
