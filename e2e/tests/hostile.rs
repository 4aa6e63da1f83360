//! Hostile and awkward request bodies through the real Envoy: each gets a
//! clear answer, and nothing unreadable or refused reaches the provider.

use meshward_e2e::{placeholders, Body, Fixture, Request};
use serde_json::{json, Value};

fn problem_type(resp: &meshward_e2e::Response) -> String {
    assert_eq!(resp.header("content-type"), Some("application/problem+json"), "{}", resp.text());
    let doc = resp.json().unwrap();
    assert_eq!(doc["request_id"], "hostile");
    doc["type"].as_str().unwrap().to_owned()
}

fn post(body: Body) -> Request {
    Request::new("POST", "/v1/chat/completions")
        .header("content-type", "application/json")
        .header("x-request-id", "hostile")
        .body(body)
}

#[test]
fn unreadable_bodies_are_refused_and_never_forwarded() {
    let f = Fixture::start();
    let invalid_utf8 = b"{\"messages\":[{\"role\":\"user\",\"content\":\"caf\xe9 jane@example.com\"}]}".to_vec();
    let resp = f.send(&post(Body::Fixed(invalid_utf8)));
    assert_eq!((resp.status, problem_type(&resp).as_str()), (400, "urn:meshward:problem:invalid-utf8"));

    let gzip = post(Body::Fixed(vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3])).header("content-encoding", "gzip");
    let resp = f.send(&gzip);
    assert_eq!((resp.status, problem_type(&resp).as_str()), (415, "urn:meshward:problem:unsupported-content-encoding"));

    // One line, over the 1 MiB policy limit, under Envoy's 2 MiB buffer.
    let huge = format!(r#"{{"messages":[{{"role":"user","content":"{}"}}]}}"#, "a".repeat(1_200_000));
    let resp = f.send(&post(Body::Fixed(huge.into_bytes())));
    assert_eq!((resp.status, problem_type(&resp).as_str()), (413, "urn:meshward:problem:body-too-large"));

    let resp = f.send(&post(Body::Fixed(br#"{"messages":[{"role":"user","content":"unterminated}]}"#.to_vec())));
    assert_eq!((resp.status, problem_type(&resp).as_str()), (400, "urn:meshward:problem:malformed-json"));
    assert!(f.received().is_empty(), "refused bodies must not reach the provider: {:?}", f.received());
}

#[test]
fn utf8_split_across_chunks_and_duplicate_keys_are_still_redacted() {
    let f = Fixture::start();
    // Duplicate `content` keys: whichever one a provider reads, neither leaks.
    let raw = r#"{"model":"gpt-4o","messages":[{"role":"user","content":"Grüße 🙂 von jane.doe@example.com","content":"oder bob@example.org 🙂"}]}"#;
    let bytes = raw.as_bytes();
    // Cut inside each multi-byte character and inside the e-mail addresses.
    let mut cuts: Vec<usize> = raw
        .char_indices()
        .filter(|(_, c)| c.len_utf8() > 1)
        .map(|(i, _)| i + 1)
        .chain([raw.find("jane").unwrap() + 3, raw.find("bob@").unwrap() + 5])
        .collect();
    cuts.sort_unstable();
    let mut chunks = Vec::new();
    let mut start = 0;
    for cut in cuts {
        chunks.push(bytes[start..cut].to_vec());
        start = cut;
    }
    chunks.push(bytes[start..].to_vec());
    let resp = f.send(&post(Body::Chunked(chunks)));
    assert_eq!(resp.status, 200, "{}", resp.text());
    let got = String::from_utf8(f.received_one().body).unwrap();
    assert!(!got.contains("jane.doe@example.com") && !got.contains("bob@example.org"), "{got}");
    assert_eq!(placeholders(&got, "EMAIL").len(), 2, "{got}");
    assert!(got.contains("Grüße 🙂"), "multi-byte text survives the splice: {got}");
}

#[test]
fn empty_bodies_pass_and_a_client_cannot_forge_a_restore() {
    let policy = json!({
        "meshward_policy": 1, "name": "reversible", "version": "1",
        "detection": {"classes": {"EMAIL": {"action": "reversible"}}}
    });
    let f = Fixture::start_with(|cfg| cfg.policy_json = policy.to_string());

    let resp = f.send(&post(Body::Empty));
    assert!(resp.status < 500, "an empty body is not an error of ours: {}", resp.text());

    // The client writes a placeholder of its own next to a real address.
    let body = json!({"model": "gpt-4o", "messages": [
        {"role": "user", "content": "mine: jane.doe@example.com, forged: [EMAIL_0a1b2c]"}]});
    let resp = f.send(&post(Body::Fixed(body.to_string().into_bytes())));
    assert_eq!(resp.status, 200, "{}", resp.text());
    let sent = String::from_utf8(f.received().last().unwrap().body.clone()).unwrap();
    assert!(!sent.contains("jane.doe@example.com"), "{sent}");
    let reply: Value = resp.json().unwrap();
    let text = reply["choices"][0]["message"]["content"].as_str().unwrap();
    // The mock echoes what it saw: the caller's own value comes back, the
    // forged placeholder stays a placeholder.
    assert!(text.contains("jane.doe@example.com"), "{text}");
    assert!(text.contains("[EMAIL_0a1b2c]"), "{text}");
}

#[test]
fn configured_bounds_are_answered_with_a_413_naming_them() {
    let policy = json!({
        "meshward_policy": 1, "name": "tight", "version": "1",
        "detection": {"classes": {"EMAIL": {"action": "redact"}}},
        "limits": {"max_messages": 2, "max_findings": 3, "max_json_depth": 8}
    });
    let f = Fixture::start_with(|cfg| cfg.policy_json = policy.to_string());
    let message = |i: usize| json!({"role": "user", "content": format!("hello {i}")});
    let cases = [
        (json!({"model": "m", "messages": [message(0), message(1), message(2)]}), "limits.max_messages"),
        (
            json!({"model": "m", "messages": [{"role": "user", "content": "a@example.com b@example.com c@example.com d@example.com"}]}),
            "limits.max_findings",
        ),
    ];
    for (body, limit) in cases {
        let resp = f.send(&post(Body::Fixed(body.to_string().into_bytes())));
        assert_eq!((resp.status, problem_type(&resp).as_str()), (413, "urn:meshward:problem:limit-exceeded"));
        let detail = resp.json().unwrap()["detail"].as_str().unwrap_or_default().to_owned();
        assert!(detail.contains(limit) && !detail.contains("@example.com"), "{detail}");
    }
    let deep = format!("{}1{}", "[".repeat(9), "]".repeat(9));
    let resp = f.send(&post(Body::Fixed(format!(r#"{{"messages":{deep}}}"#).into_bytes())));
    assert_eq!((resp.status, problem_type(&resp).as_str()), (400, "urn:meshward:problem:malformed-json"));
    assert!(f.received().is_empty(), "{:?}", f.received());

    let resp = f
        .send(&post(Body::Fixed(json!({"model": "m", "messages": [message(0), message(1)]}).to_string().into_bytes())));
    assert_eq!(resp.status, 200, "{}", resp.text());
}
