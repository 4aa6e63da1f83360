//! The real release filter (`meshward_filter.wasm`) through the host.
//!
//! Needs `make wasm` first (or `MESHWARD_WASM` pointing at the file): a
//! missing filter FAILS these tests, it never skips them.

use std::sync::OnceLock;

use meshward_wasm_host::{Action, CompiledModule, Exchange, HostError, Plugin, PluginBuilder};

const KEY: &str = "test-placeholder-key-0123456789";

fn filter() -> &'static CompiledModule {
    static M: OnceLock<CompiledModule> = OnceLock::new();
    M.get_or_init(|| {
        CompiledModule::meshward_filter()
            .unwrap_or_else(|e| panic!("{e}\n(the filter tests need the release .wasm: run `make wasm`)"))
    })
}

fn default_policy() -> Vec<u8> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../policies/default.json");
    std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

fn builder() -> PluginBuilder {
    Plugin::builder_from(filter()).plugin_config(default_policy()).env("MESHWARD_PLACEHOLDER_KEY", KEY)
}

fn plugin() -> Plugin {
    builder().build().unwrap_or_else(|e| panic!("the filter refused the default policy: {e}"))
}

fn chat_headers(request_id: &'static str) -> Vec<(&'static str, &'static str)> {
    vec![
        (":method", "POST"),
        (":path", "/v1/chat/completions"),
        (":authority", "api.openai.com"),
        (":scheme", "https"),
        ("content-type", "application/json"),
        ("content-length", "999"),
        ("accept-encoding", "gzip, br"),
        ("x-request-id", request_id),
    ]
}

const PII_BODY: &str = r#"{"model":"gpt-4o","messages":[{"role":"system","content":"You are helpful."},{"role":"user","content":"Mail alice.smith@example.com, card 4111 1111 1111 1111, thanks"}],"temperature":0.2}"#;

/// SplitMix64, for reproducible random chunkings.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn chunks<'a>(&mut self, body: &'a [u8]) -> Vec<&'a [u8]> {
        let mut out = Vec::new();
        let mut rest = body;
        while !rest.is_empty() {
            let n = 1 + (self.next() as usize % 40).min(rest.len() - 1);
            let (a, b) = rest.split_at(n);
            out.push(a);
            rest = b;
        }
        out
    }
}

/// Every `[CLASS_xxxxxx]` placeholder in `text`.
fn placeholders(text: &str, class: &str) -> Vec<String> {
    let open = format!("[{class}_");
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find(&open) {
        let tail = &rest[at + open.len()..];
        let tag: String = tail.chars().take_while(|c| *c != ']').collect();
        out.push(tag);
        rest = tail;
    }
    out
}

/// What must hold whenever the filter refused a request after its headers
/// went upstream (Continue from the headers, as proxy-wasm requires for a
/// filter that reads the body): the upstream got the prepared headers,
/// never one body byte nor a complete request, and was reset.
fn assert_upstream_got_headers_only(ex: &Exchange) {
    let up = ex.upstream_request_headers().expect("headers go upstream before the verdict");
    assert!(!up.contains("content-length"), "content-length must go: {up:?}");
    assert_eq!(up.get("accept-encoding"), Some("identity"), "{up:?}");
    assert_eq!(ex.upstream_request_body(), b"", "no body byte may reach the upstream");
    assert!(ex.upstream_request_chunks().is_empty());
    assert!(!ex.upstream_request_complete(), "the upstream must never see a complete request");
    assert!(ex.upstream_request_trailers().is_none());
    assert!(ex.upstream_request_reset(), "the started upstream request is reset");
}

fn is_tag(tag: &str) -> bool {
    tag.len() == 6 && tag.chars().all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
}

#[test]
fn redacts_email_and_card_and_every_chunking_gives_the_same_upstream_body() {
    let p = plugin();
    let headers = chat_headers("req-redact-1");
    let ex = p.send_request(&headers, PII_BODY.as_bytes(), 0).expect("whole body");
    assert!(ex.local_response().is_none(), "{:?}", ex.local_response());
    assert!(ex.upstream_request_complete());
    let upstream = ex.upstream_request_body();
    let text = String::from_utf8(upstream.clone()).expect("utf-8 body");
    assert!(!text.contains("alice.smith@example.com"), "{text}");
    assert!(!text.contains("4111 1111 1111 1111"), "{text}");
    let emails = placeholders(&text, "EMAIL");
    let cards = placeholders(&text, "CREDIT_CARD");
    assert_eq!(emails.len(), 1, "{text}");
    assert_eq!(cards.len(), 1, "{text}");
    assert!(is_tag(&emails[0]) && is_tag(&cards[0]), "{text}");
    // The rest of the document is untouched.
    assert!(text.starts_with(r#"{"model":"gpt-4o","messages":[{"role":"system","content":"You are helpful."}"#));
    assert!(text.ends_with(r#"thanks"}],"temperature":0.2}"#), "{text}");
    let json: serde_json::Value = serde_json::from_slice(&upstream).expect("still JSON");
    assert!(json["messages"][1]["content"].is_string());

    assert!(!ex.upstream_request_reset());
    let up = ex.upstream_request_headers().expect("headers forwarded");
    assert!(!up.contains("content-length"), "content-length must go");
    assert_eq!(up.get("accept-encoding"), Some("identity"));
    assert_eq!(up.get(":path"), Some("/v1/chat/completions"));
    drop(ex);

    let one_byte = p.send_request(&headers, PII_BODY.as_bytes(), 1).expect("1-byte chunks");
    assert_eq!(one_byte.upstream_request_body(), upstream, "1-byte chunks");
    let sizes: Vec<u32> =
        one_byte.callbacks().iter().filter(|c| c.callback == "proxy_on_request_body").map(|c| c.size).collect();
    assert_eq!(sizes.len(), PII_BODY.len());
    assert_eq!(sizes.last().copied(), Some(PII_BODY.len() as u32));
    drop(one_byte);

    let mut rng = Rng(7);
    for round in 0..40 {
        let chunks = rng.chunks(PII_BODY.as_bytes());
        let ex = p.send_request_chunks(&headers, &chunks).expect("chunks");
        assert_eq!(ex.upstream_request_body(), upstream, "round {round}: {} chunks", chunks.len());
    }
    assert!(!p.is_failed());
    assert!(!p.stderr().contains("panicked"), "{}", p.stderr());
}

#[test]
fn placeholders_are_stable_per_value_and_keyed() {
    let p = plugin();
    let body = |email: &str| format!(r#"{{"messages":[{{"role":"user","content":"write to {email}"}}]}}"#);
    let tag = |p: &Plugin, email: &str| -> String {
        let ex = p.send_request(&chat_headers("req-stable"), body(email).as_bytes(), 0).expect("send");
        let text = String::from_utf8(ex.upstream_request_body()).expect("utf-8");
        let tags = placeholders(&text, "EMAIL");
        assert_eq!(tags.len(), 1, "{text}");
        tags[0].clone()
    };
    let a1 = tag(&p, "a@example.com");
    let a2 = tag(&p, "a@example.com");
    let b = tag(&p, "b@example.com");
    assert_eq!(a1, a2, "the same value gets the same placeholder");
    assert_ne!(a1, b);
    let q = Plugin::builder_from(filter())
        .plugin_config(default_policy())
        .env("MESHWARD_PLACEHOLDER_KEY", "another-key-entirely-9876543210")
        .build()
        .expect("starts with another key");
    assert_ne!(tag(&q, "a@example.com"), a1, "placeholders are keyed");
}

#[test]
fn clean_body_is_forwarded_byte_identical() {
    let p = plugin();
    let body = "{ \"model\" : \"gpt-4o\",\n  \"messages\": [ {\"role\":\"user\", \"content\":\"What is the capital of France? caf\\u00e9 \u{1F600}\"} ],\n\"stream\":false }\n";
    for chunk in [0, 1, 13] {
        let ex = p.send_request(&chat_headers("req-clean"), body.as_bytes(), chunk).expect("send");
        assert!(ex.local_response().is_none());
        assert_eq!(ex.upstream_request_body(), body.as_bytes(), "chunk {chunk}");
        assert!(ex.upstream_request_complete());
        assert!(!ex.upstream_request_reset());
        assert!(!ex.upstream_request_headers().expect("forwarded").contains("content-length"));
    }
}

#[test]
fn malformed_json_is_a_400_problem_with_the_request_id() {
    let p = plugin();
    let body = br#"{"messages":[{"role":"user","content":"hi"}"#;
    let ex = p.send_request(&chat_headers("req-bad-json-7"), body, 5).expect("send");
    let local = ex.local_response().expect("a problem response");
    assert_eq!(local.status, 400);
    assert!(local.from_filter);
    assert_eq!(local.headers.get("content-type"), Some("application/problem+json"));
    let problem: serde_json::Value = serde_json::from_slice(&local.body).expect("the problem is JSON");
    assert_eq!(problem["status"], 400, "{problem}");
    assert!(problem["title"].as_str().is_some_and(|t| !t.is_empty()), "{problem}");
    assert_eq!(problem["request_id"], "req-bad-json-7", "{problem}");
    assert_upstream_got_headers_only(&ex);
    let down = ex.downstream_response_headers().expect("client got the problem");
    assert_eq!(down.get(":status"), Some("400"));
    assert_eq!(down.get("content-type"), Some("application/problem+json"));
    assert_eq!(ex.downstream_response_body(), local.body);
}

#[test]
fn the_problem_uses_envoys_request_id_when_the_client_sent_none() {
    let p = builder().random_seed(99).build().expect("starts");
    let headers: Vec<_> = chat_headers("unused").into_iter().filter(|(k, _)| *k != "x-request-id").collect();
    let ex = p.send_request(&headers, b"{not json", 0).expect("send");
    let generated = ex
        .filter_request_headers()
        .and_then(|h| h.get("x-request-id").map(String::from))
        .expect("Envoy generated an id");
    let local = ex.local_response().expect("problem");
    let problem: serde_json::Value = serde_json::from_slice(&local.body).expect("JSON");
    assert_eq!(problem["request_id"], generated.as_str());
}

#[test]
fn invalid_configuration_is_rejected() {
    for config in [&b"{\"nope\":1}"[..], b"not json", b"", b"[]"] {
        let err = Plugin::builder_from(filter())
            .plugin_config(config)
            .env("MESHWARD_PLACEHOLDER_KEY", KEY)
            .build()
            .unwrap_err();
        assert_eq!(err, HostError::ConfigureRejected, "config {:?}", String::from_utf8_lossy(config));
    }
}

#[test]
fn a_missing_placeholder_key_is_rejected() {
    let err = Plugin::builder_from(filter()).plugin_config(default_policy()).build().unwrap_err();
    assert_eq!(err, HostError::ConfigureRejected);
}

#[test]
fn a_request_without_body_passes_untouched() {
    let p = plugin();
    let headers =
        [(":method", "GET"), (":path", "/v1/models"), (":authority", "api.openai.com"), ("x-request-id", "req-get")];
    let mut ex = p.http_context().expect("context");
    assert_eq!(ex.request_headers(&headers, true).expect("headers"), Action::Continue);
    let up = ex.upstream_request_headers().expect("forwarded");
    assert_eq!(up.get(":path"), Some("/v1/models"));
    assert!(ex.upstream_request_complete());
    ex.receive_response(&[(":status", "200"), ("content-type", "application/json")], br#"{"data":[]}"#, 4)
        .expect("response");
    assert_eq!(ex.downstream_response_body(), br#"{"data":[]}"#);
    ex.finish().expect("finish");
}

#[test]
fn with_trailers_the_decision_happens_at_the_trailers() {
    let p = plugin();
    let mut ex = p.http_context().expect("context");
    // Continue: a paused headers callback would stall the body for good.
    assert_eq!(ex.request_headers(&chat_headers("req-trailers"), false).expect("headers"), Action::Continue);
    assert!(!ex.request_headers_paused());
    let (a, b) = PII_BODY.as_bytes().split_at(40);
    assert_eq!(ex.request_body(a, false).expect("body"), Action::Pause);
    assert_eq!(ex.request_body(b, false).expect("body"), Action::Pause);
    let bodies: Vec<(u32, bool)> = ex
        .callbacks()
        .iter()
        .filter(|c| c.callback == "proxy_on_request_body")
        .map(|c| (c.size, c.end_of_stream))
        .collect();
    assert_eq!(bodies, vec![(40, false), (PII_BODY.len() as u32, false)], "the filter sees the body");
    // Before the verdict: prepared headers upstream, no body byte.
    let up = ex.upstream_request_headers().expect("headers go upstream at once");
    assert!(!up.contains("content-length"));
    assert_eq!(up.get("accept-encoding"), Some("identity"));
    assert_eq!(ex.upstream_request_body(), b"", "body held until the verdict");
    assert!(!ex.upstream_request_complete());
    assert!(ex.upstream_request_trailers().is_none());
    assert_eq!(ex.request_trailers(&[("x-trailer", "1")]).expect("trailers"), Action::Continue);
    let text = String::from_utf8(ex.upstream_request_body()).expect("utf-8");
    assert!(!text.contains("alice.smith@example.com"), "{text}");
    assert_eq!(placeholders(&text, "EMAIL").len(), 1);
    assert_eq!(ex.upstream_request_chunks().len(), 1, "released once, after the verdict");
    assert!(ex.upstream_request_trailers().is_some());
    assert!(ex.upstream_request_complete());
    assert!(!ex.upstream_request_reset());
}

#[test]
fn with_trailers_a_malformed_body_is_refused_at_the_trailers() {
    let p = plugin();
    let mut ex = p.http_context().expect("context");
    assert_eq!(ex.request_headers(&chat_headers("req-trailers-bad"), false).expect("headers"), Action::Continue);
    assert_eq!(ex.request_body(br#"{"messages":[{"role":"user""#, false).expect("body"), Action::Pause);
    assert!(ex.local_response().is_none());
    ex.request_trailers(&[("x-trailer", "1")]).expect("trailers");
    let local = ex.local_response().expect("a problem response");
    assert_eq!(local.status, 400, "{local:?}");
    assert!(local.from_filter);
    let problem: serde_json::Value = serde_json::from_slice(&local.body).expect("JSON");
    assert_eq!(problem["request_id"], "req-trailers-bad", "{problem}");
    assert_upstream_got_headers_only(&ex);
    assert_eq!(ex.downstream_response_body(), local.body);
}

#[test]
fn a_body_over_the_limit_never_reaches_upstream() {
    let p = plugin();
    let mut body = br#"{"messages":[{"role":"user","content":""#.to_vec();
    body.resize(1_200_000, b'a');
    body.extend_from_slice(br#""}]}"#);
    let ex = p.send_request(&chat_headers("req-big"), &body, 64 * 1024).expect("send");
    let local = ex.local_response().expect("refused");
    assert_eq!(local.status, 413, "{local:?}");
    assert_upstream_got_headers_only(&ex);
    // With Envoy's default 1 MiB buffer limit equal to the policy's
    // max_body_bytes, Envoy's own plain-text 413 always comes first.
    assert!(!local.from_filter, "{local:?}");

    // With a larger Envoy limit the filter's own check answers, with a
    // problem document.
    let p = builder().buffer_limit(Some(4 * 1024 * 1024)).build().expect("starts");
    let ex = p.send_request(&chat_headers("req-big-2"), &body, 64 * 1024).expect("send");
    let local = ex.local_response().expect("refused");
    assert!(local.from_filter, "{local:?}");
    assert_eq!(local.status, 413);
    assert_eq!(local.headers.get("content-type"), Some("application/problem+json"));
    let problem: serde_json::Value = serde_json::from_slice(&local.body).expect("JSON");
    assert_eq!(problem["request_id"], "req-big-2");
    assert_upstream_got_headers_only(&ex);
}

#[test]
fn the_filter_logs_no_raw_values() {
    let p = plugin();
    let _ex = p.send_request(&chat_headers("req-logs"), PII_BODY.as_bytes(), 0).expect("send");
    for l in p.logs() {
        assert!(!l.message.contains("alice.smith@example.com"), "{l:?}");
        assert!(!l.message.contains("4111"), "{l:?}");
    }
}
