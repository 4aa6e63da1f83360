//! Responses and streams through the real release filter (`make wasm`):
//! reversible placeholders restored, SSE rewritten chunk by chunk without
//! pausing, identical client bytes at every chunking, `content-length`
//! dropped, compressed responses refused, mid-stream blocks.

use std::sync::OnceLock;

use meshward_wasm_host::{Action, CompiledModule, Exchange, Plugin};

const KEY: &str = "test-placeholder-key-0123456789";
/// `jane@example.com` under KEY, tenant default (see the engine's stream tests).
const JANE: &str = "[EMAIL_920d3f]";

fn filter() -> &'static CompiledModule {
    static M: OnceLock<CompiledModule> = OnceLock::new();
    M.get_or_init(|| {
        CompiledModule::meshward_filter()
            .unwrap_or_else(|e| panic!("{e}\n(the filter tests need the release .wasm: run `make wasm`)"))
    })
}

fn plugin(card_action: &str) -> Plugin {
    let policy = format!(
        r#"{{"meshward_policy":1,"name":"streams","version":"1","mode":"enforce","detection":{{"classes":{{"EMAIL":{{"action":"reversible"}},"CREDIT_CARD":{{"action":"{card_action}"}}}}}}}}"#
    );
    Plugin::builder_from(filter())
        .plugin_config(policy.into_bytes())
        .env("MESHWARD_PLACEHOLDER_KEY", KEY)
        .build()
        .unwrap_or_else(|e| panic!("the filter refused the policy: {e}"))
}

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/../../testdata/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Sends the chat request with jane's address; checks it went up redacted.
fn request(p: &Plugin, path: &str) -> Exchange {
    let mut ex = p.http_context().unwrap();
    let headers = [
        (":method", "POST"),
        (":path", path),
        (":authority", "api.openai.com"),
        ("content-type", "application/json"),
        ("x-request-id", "req-streams"),
    ];
    ex.request_headers(&headers, false).unwrap();
    let body = br#"{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"mail jane@example.com and bob.o'neil@corp.example"}]}"#;
    ex.request_body(body, true).unwrap();
    let up = String::from_utf8(ex.upstream_request_body()).unwrap();
    assert!(up.contains(JANE) && !up.contains("jane@example.com"), "{up}");
    ex
}

/// The response, delivered in `pieces`; every body callback must continue.
fn respond(ex: &mut Exchange, content_type: &str, pieces: &[&[u8]]) -> Vec<u8> {
    let headers = [(":status", "200"), ("content-type", content_type), ("content-length", "12345")];
    assert_eq!(ex.response_headers(&headers, false).unwrap(), Action::Continue);
    let resp = ex.downstream_response_headers().expect("headers forwarded at once");
    assert!(!resp.contains("content-length"), "content-length must go: the body may change");
    for (i, piece) in pieces.iter().enumerate() {
        let action = ex.response_body(piece, i + 1 == pieces.len()).unwrap();
        assert_eq!(action, Action::Continue, "a stream is never paused");
    }
    if pieces.is_empty() {
        ex.response_body(b"", true).unwrap();
    }
    ex.downstream_response_body()
}

fn sse_data(body: &[u8]) -> Vec<String> {
    String::from_utf8(body.to_vec())
        .unwrap()
        .split("\n\n")
        .filter_map(|e| e.lines().find_map(|l| l.strip_prefix("data: ")).map(str::to_owned))
        .collect()
}

fn chat_content(body: &[u8]) -> (String, String) {
    let (mut content, mut args) = (String::new(), String::new());
    for data in sse_data(body) {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&data) else { continue };
        for c in v["choices"].as_array().into_iter().flatten() {
            content.push_str(c["delta"]["content"].as_str().unwrap_or_default());
            for t in c["delta"]["tool_calls"].as_array().into_iter().flatten() {
                args.push_str(t["function"]["arguments"].as_str().unwrap_or_default());
            }
        }
    }
    (content, args)
}

#[test]
fn openai_stream_is_restored_and_redacted_identically_at_every_chunking() {
    let p = plugin("redact");
    let input = fixture("streams/openai_chat.sse");
    let whole = {
        let mut ex = request(&p, "/v1/chat/completions");
        respond(&mut ex, "text/event-stream", &[&input])
    };
    let (content, args) = chat_content(&whole);
    assert!(content.contains("jane@example.com") && content.contains("bob.o'neil@corp.example"), "{content}");
    assert!(!content.contains("4111 1111 1111 1111") && content.contains("[CREDIT_CARD_"), "{content}");
    assert!(!content.contains("ops@example.org") && content.contains("[EMAIL_ffffff] stays"), "{content}");
    let args: serde_json::Value = serde_json::from_str(&args).unwrap();
    assert_eq!(args["to"], "jane@example.com");
    assert!(String::from_utf8_lossy(&whole).ends_with("data: [DONE]\n\n"));

    let ones: Vec<&[u8]> = input.chunks(1).collect();
    let mut ex = request(&p, "/v1/chat/completions");
    assert!(respond(&mut ex, "text/event-stream", &ones) == whole, "1-byte chunks differ");
    let mut seed = 7u64;
    for _ in 0..16 {
        let mut pieces = Vec::new();
        let mut rest = &input[..];
        while !rest.is_empty() {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let n = 1 + ((seed >> 33) as usize % 61).min(rest.len() - 1);
            let (a, b) = rest.split_at(n);
            pieces.push(a);
            rest = b;
        }
        let mut ex = request(&p, "/v1/chat/completions");
        assert!(respond(&mut ex, "text/event-stream", &pieces) == whole, "random chunking differs");
    }
    ex.finish().unwrap();
}

#[test]
fn text_reaches_the_client_before_the_stream_ends() {
    let p = plugin("redact");
    let mut ex = request(&p, "/v1/chat/completions");
    ex.response_headers(&[(":status", "200"), ("content-type", "text/event-stream")], false).unwrap();
    let chunk = br#"data: {"id":"x","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"Hello there, how are you"},"finish_reason":null}]}

"#;
    assert_eq!(ex.response_body(chunk, false).unwrap(), Action::Continue);
    let (content, _) = chat_content(&ex.downstream_response_body());
    assert_eq!(content, "Hello there, how are ");
}

#[test]
fn json_response_is_buffered_and_restored() {
    let p = plugin("redact");
    let mut ex = request(&p, "/v1/chat/completions");
    let body = fixture("responses/openai_chat.json");
    let headers = [(":status", "200"), ("content-type", "application/json"), ("content-length", "726")];
    ex.response_headers(&headers, false).unwrap();
    let (a, b) = body.split_at(body.len() / 2);
    assert_eq!(ex.response_body(a, false).unwrap(), Action::Pause);
    ex.response_body(b, true).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&ex.downstream_response_body()).unwrap();
    let content = v["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(content.starts_with("Dear jane@example.com, your card [CREDIT_CARD_"), "{content}");
    let args: serde_json::Value =
        serde_json::from_str(v["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"].as_str().unwrap())
            .unwrap();
    assert_eq!(args["to"], "jane@example.com");
}

#[test]
fn compressed_response_is_refused_with_a_problem() {
    let p = plugin("redact");
    let mut ex = request(&p, "/v1/chat/completions");
    let headers = [(":status", "200"), ("content-type", "application/json"), ("content-encoding", "gzip")];
    ex.response_headers(&headers, false).unwrap();
    let local = ex.local_response().expect("a local reply replaces the response");
    assert_eq!(local.status, 502);
    let v: serde_json::Value = serde_json::from_slice(&local.body).unwrap();
    assert_eq!(v["type"], "urn:meshward:problem:unreadable-response");
    assert_eq!(v["request_id"], "req-streams");
    assert!(String::from_utf8_lossy(&ex.downstream_response_body()).contains("unreadable-response"));
}

#[test]
fn mid_stream_block_ends_with_an_error_event_and_no_done() {
    let p = plugin("block");
    let input = fixture("streams/openai_chat.sse");
    let mut ex = request(&p, "/v1/chat/completions");
    let pieces: Vec<&[u8]> = input.chunks(37).collect();
    let out = respond(&mut ex, "text/event-stream", &pieces);
    let text = String::from_utf8(out.clone()).unwrap();
    assert!(!text.contains("[DONE]") && !text.contains("4111"), "{text}");
    let last = sse_data(&out).pop().unwrap();
    let v: serde_json::Value = serde_json::from_str(&last).unwrap();
    assert_eq!(v["error"]["code"], "blocked-response");
    assert!(v["error"]["message"].as_str().unwrap().contains("req-streams"));
    let (content, _) = chat_content(&out);
    assert!(content.contains("jane@example.com"), "{content}");
}

#[test]
fn our_own_problem_reply_passes_through_the_response_callbacks() {
    let p = plugin("block");
    let mut ex = p.http_context().unwrap();
    ex.request_headers(
        &[(":method", "POST"), (":path", "/v1/chat/completions"), ("content-type", "application/json")],
        false,
    )
    .unwrap();
    ex.request_body(br#"{"messages":[{"role":"user","content":"card 4111 1111 1111 1111"}]}"#, true).unwrap();
    let local = ex.local_response().expect("blocked");
    assert_eq!(local.status, 403);
    let body = ex.downstream_response_body();
    assert_eq!(body, local.body, "the problem document reaches the client unchanged");
}
