//! Responses and streams end to end through the engine: every stream
//! fixture in `testdata/streams` replayed whole, at every two-way split, in
//! 1-byte chunks and at random splits gives byte-identical client output;
//! and that output restores this request's reversible placeholders, redacts
//! what policy redacts, and keeps the provider's shape.

use meshward_engine::policy::Secrets;
use meshward_engine::problem::ProblemKind;
use meshward_engine::response::{Api, Framing, ResponseMeta, ResponseVerdict, Usage};
use meshward_engine::restore::RestoreMap;
use meshward_engine::stream::eventstream::{EventStreamDecoder, Message};
use meshward_engine::stream::sse::SseParser;
use meshward_engine::{Engine, RequestMeta, Verdict};
use serde_json::Value;

const KEY: &str = "test-placeholder-key-0123456789";
/// `jane@example.com` and `bob.o'neil@corp.example` under KEY, tenant default.
const JANE: &str = "[EMAIL_920d3f]";
const BOB: &str = "[EMAIL_5a7c94]";

fn engine_with(classes: &str, mode: &str) -> Engine {
    let policy = format!(
        r#"{{"meshward_policy":1,"name":"t","version":"1","mode":"{mode}","detection":{{"classes":{classes}}}}}"#
    );
    Engine::from_json(policy.as_bytes(), &Secrets { placeholder_key: Some(KEY.into()), ..Secrets::default() }).unwrap()
}

fn engine() -> Engine {
    engine_with(r#"{"EMAIL":{"action":"reversible"},"CREDIT_CARD":{"action":"redact"}}"#, "enforce")
}

/// [`engine`] with audit on: token usage is read only for audit events.
fn audited_engine() -> Engine {
    let policy = r#"{"meshward_policy":1,"name":"t","version":"1","mode":"enforce","audit":{"enabled":true},
        "detection":{"classes":{"EMAIL":{"action":"reversible"},"CREDIT_CARD":{"action":"redact"}}}}"#;
    Engine::from_json(policy.as_bytes(), &Secrets { placeholder_key: Some(KEY.into()), ..Secrets::default() }).unwrap()
}

/// The restore map a real request leaves behind.
fn restore(e: &Engine) -> RestoreMap {
    let body = br#"{"messages":[{"role":"user","content":"mail jane@example.com and bob.o'neil@corp.example"}]}"#;
    let meta = RequestMeta {
        request_id: "req-1",
        path: "/v1/chat/completions",
        content_type: Some("application/json"),
        ..RequestMeta::default()
    };
    let d = e.evaluate_request(&meta, body);
    let Verdict::Rewrite(out) = &d.verdict else { panic!("expected a rewrite: {:?}", d.verdict) };
    let out = String::from_utf8(out.clone()).unwrap();
    assert!(out.contains(JANE) && out.contains(BOB), "{out}");
    assert_eq!(d.restore.len(), 2);
    assert_eq!(d.restore.get(JANE), Some("jane@example.com"));
    d.restore
}

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/../../testdata/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn meta<'a>(path: &'a str, content_type: &'a str) -> ResponseMeta<'a> {
    ResponseMeta {
        request_id: "req-1",
        request_path: path,
        content_type: Some(content_type),
        content_encoding: None,
        status: 200,
    }
}

fn run(e: &Engine, m: &ResponseMeta<'_>, r: &RestoreMap, pieces: &[&[u8]]) -> Vec<u8> {
    let mut s = e.response_stream(m, r.clone());
    let mut out = Vec::new();
    for p in pieces {
        out.extend(s.push(e, p));
    }
    out.extend(s.finish(e));
    out
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// Whole, every two-way split, 1-byte chunks, 64 random chunkings: all
/// byte-identical. Returns the output.
fn replay_everywhere(e: &Engine, m: &ResponseMeta<'_>, r: &RestoreMap, input: &[u8]) -> Vec<u8> {
    let whole = run(e, m, r, &[input]);
    for cut in 0..=input.len() {
        let got = run(e, m, r, &[&input[..cut], &input[cut..]]);
        assert!(
            got == whole,
            "split at {cut} differs:\n{}\n---\n{}",
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(&whole)
        );
    }
    let ones: Vec<&[u8]> = input.chunks(1).collect();
    assert!(run(e, m, r, &ones) == whole, "1-byte chunks differ");
    let mut rng = Rng(42);
    for _ in 0..64 {
        let mut pieces = Vec::new();
        let mut rest = input;
        while !rest.is_empty() {
            let n = 1 + (rng.next() as usize % 97).min(rest.len() - 1);
            let (a, b) = rest.split_at(n);
            pieces.push(a);
            rest = b;
        }
        assert!(run(e, m, r, &pieces) == whole, "random chunking differs");
    }
    whole
}

/// The dispatched `(event type, data)` pairs of an SSE body.
fn sse_events(body: &[u8]) -> Vec<(String, String)> {
    let mut p = SseParser::new(1 << 20);
    p.push(body);
    let mut out = Vec::new();
    while let Some(e) = p.next_event().unwrap() {
        if let Some(d) = e.data.clone() {
            out.push((e.event_type().to_owned(), d));
        }
    }
    assert!(p.finish().unwrap().is_none(), "the client output ends mid-event");
    out
}

fn assert_redacted_and_restored(text: &str) {
    assert!(text.contains("jane@example.com"), "not restored: {text}");
    assert!(!text.contains(JANE), "placeholder left: {text}");
    for raw in ["4111 1111 1111 1111", "5555-5555-5555-4444", "ops@example.org", "ops@corp.example"] {
        assert!(!text.contains(raw), "{raw} leaked: {text}");
    }
}

#[test]
fn openai_chat_stream_every_split_lf_and_crlf() {
    let e = engine();
    let r = restore(&e);
    let m = meta("/v1/chat/completions", "text/event-stream; charset=utf-8");
    assert_eq!(m.framing(), Framing::Sse);
    for name in ["streams/openai_chat.sse", "streams/openai_chat_crlf.sse"] {
        let input = fixture(name);
        let out = replay_everywhere(&e, &m, &r, &input);
        let events = sse_events(&out);
        let mut content = String::new();
        let mut args = String::new();
        for (_, data) in &events[..events.len() - 1] {
            let v: Value = serde_json::from_str(data).unwrap();
            assert_eq!(v["object"], "chat.completion.chunk", "provider shape kept: {data}");
            for c in v["choices"].as_array().unwrap() {
                content.push_str(c["delta"]["content"].as_str().unwrap_or_default());
                for t in c["delta"]["tool_calls"].as_array().into_iter().flatten() {
                    args.push_str(t["function"]["arguments"].as_str().unwrap_or_default());
                }
            }
        }
        assert_eq!(events.last().unwrap().1, "[DONE]");
        assert_redacted_and_restored(&content);
        assert!(content.contains("bob.o'neil@corp.example"), "{content}");
        assert!(content.contains("[EMAIL_ffffff] stays"), "a placeholder we never issued is not expanded: {content}");
        assert!(content.contains("[CREDIT_CARD_") && content.contains("Café ☕ — naïve text."), "{content}");
        let args: Value = serde_json::from_str(&args).unwrap_or_else(|e| panic!("{e}: {args}"));
        assert_eq!(args["to"], "jane@example.com");
        assert!(args["cc"].as_str().unwrap().starts_with("[EMAIL_"), "{args}");
        // Unchanged events are forwarded byte for byte.
        let text = String::from_utf8(out.clone()).unwrap();
        let keep_alive = if name.ends_with("crlf.sse") { ": keep-alive\r\n\r\n" } else { ": keep-alive\n\n" };
        assert!(text.starts_with(keep_alive), "{text}");
        let mut s = e.response_stream(&m, r.clone());
        s.push(&e, &input);
        s.finish(&e);
        assert_eq!(s.report().usage, Usage { input_tokens: Some(31), output_tokens: Some(57), total_tokens: Some(88) });
        assert_eq!(s.report().restored, 3);
        assert!(s.problem().is_none());
    }
}

#[test]
fn text_is_released_as_soon_as_nothing_can_straddle() {
    let e = engine();
    let r = restore(&e);
    let m = meta("/v1/chat/completions", "text/event-stream");
    let mut s = e.response_stream(&m, r);
    let chunk = |c: &str| {
        format!(
            "data: {{\"id\":\"x\",\"object\":\"chat.completion.chunk\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":{}}},\"finish_reason\":null}}]}}\n\n",
            serde_json::to_string(c).unwrap()
        )
    };
    let released = |out: Vec<u8>| -> String {
        sse_events(&out)
            .iter()
            .map(|(_, d)| {
                serde_json::from_str::<Value>(d).unwrap()["choices"][0]["delta"]["content"].as_str().unwrap().to_owned()
            })
            .collect()
    };
    // Plain prose goes out at once (only the trailing word may still grow).
    assert_eq!(released(s.push(&e, chunk("Hello there, how are you").as_bytes())), "Hello there, how are ");
    // A half e-mail is held, the text before it is not.
    assert_eq!(released(s.push(&e, chunk(" today? mail me at ops@ex").as_bytes())), "you today? mail me at ");
    // A half placeholder is held too.
    let mid = released(s.push(&e, chunk("ample.org or [EMAIL_92").as_bytes()));
    assert!(mid.starts_with("[EMAIL_") && mid.ends_with("] or ") && !mid.contains("ops@"), "{mid}");
    assert_eq!(released(s.push(&e, chunk("0d3f] ok").as_bytes())), "jane@example.com ");
    // The stream ends without [DONE]: what is held goes out last.
    let end = s.finish(&e);
    assert_eq!(released(end), "ok");
}

#[test]
fn mid_stream_block_sends_the_providers_error_and_no_done() {
    let e = engine_with(r#"{"EMAIL":{"action":"reversible"},"CREDIT_CARD":{"action":"block"}}"#, "enforce");
    let r = restore(&e);
    let m = meta("/v1/chat/completions", "text/event-stream");
    let out = replay_everywhere(&e, &m, &r, &fixture("streams/openai_chat.sse"));
    let text = String::from_utf8(out.clone()).unwrap();
    assert!(!text.contains("4111") && !text.contains("[DONE]"), "{text}");
    let events = sse_events(&out);
    let (_, last) = events.last().unwrap();
    let v: Value = serde_json::from_str(last).unwrap();
    assert_eq!(v["error"]["code"], "blocked-response");
    assert_eq!(v["error"]["type"], "permission_error");
    assert!(v["error"]["message"].as_str().unwrap().contains("CREDIT_CARD"));
    // Text before the card went out (restored), nothing after it.
    let content: String = events[..events.len() - 1]
        .iter()
        .map(|(_, d)| {
            serde_json::from_str::<Value>(d).unwrap()["choices"][0]["delta"]["content"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    assert!(content.contains("jane@example.com") && !content.contains("file"), "{content}");
    let mut s = e.response_stream(&m, r);
    s.push(&e, &fixture("streams/openai_chat.sse"));
    assert_eq!(s.problem().unwrap().kind, ProblemKind::ResponseBlocked);
    assert!(s.push(&e, b"data: more\n\n").is_empty(), "everything after the block is swallowed");

    // Anthropic: `event: error`, no message_stop.
    let m = meta("/v1/messages", "text/event-stream");
    let out = replay_everywhere(&e, &m, &RestoreMap::new(), &fixture("streams/anthropic_messages.sse"));
    let events = sse_events(&out);
    let text = String::from_utf8(out).unwrap();
    assert!(!text.contains("message_stop") && !text.contains("5555-4444"), "{text}");
    let (kind, data) = events.last().unwrap();
    assert_eq!(kind, "error");
    assert_eq!(serde_json::from_str::<Value>(data).unwrap()["error"]["type"], "permission_error");
}

#[test]
fn anthropic_stream() {
    let e = engine();
    let r = restore(&e);
    let m = meta("/v1/messages", "text/event-stream");
    let out = replay_everywhere(&e, &m, &r, &fixture("streams/anthropic_messages.sse"));
    let mut text = String::new();
    let mut json_input = String::new();
    let events = sse_events(&out);
    for (kind, data) in &events {
        let v: Value = serde_json::from_str(data).unwrap();
        assert_eq!(kind, v["type"].as_str().unwrap(), "event name and type agree");
        if kind == "content_block_delta" {
            text.push_str(v["delta"]["text"].as_str().unwrap_or_default());
            json_input.push_str(v["delta"]["partial_json"].as_str().unwrap_or_default());
        }
    }
    assert_eq!(events.last().unwrap().0, "message_stop");
    assert_redacted_and_restored(&text);
    assert!(text.starts_with("Hello jane@example.com, card [CREDIT_CARD_"), "{text}");
    assert!(text.ends_with("write to [EMAIL_") || text.contains("write to [EMAIL_"), "{text}");
    let input: Value = serde_json::from_str(&json_input).unwrap();
    assert_eq!(input["to"], "jane@example.com");
    let mut s = e.response_stream(&m, r);
    s.push(&e, &fixture("streams/anthropic_messages.sse"));
    s.finish(&e);
    assert_eq!(s.report().usage, Usage { input_tokens: Some(25), output_tokens: Some(42), total_tokens: None });
}

fn gemini_text(elements: &[Value]) -> String {
    elements
        .iter()
        .flat_map(|v| v["candidates"][0]["content"]["parts"].as_array().cloned().unwrap_or_default())
        .map(|p| p["text"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn gemini_sse_and_json_array_streams() {
    let e = engine();
    let r = restore(&e);
    let m = meta("/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse", "text/event-stream");
    let out = replay_everywhere(&e, &m, &r, &fixture("streams/gemini_alt_sse.sse"));
    let elements: Vec<Value> = sse_events(&out).iter().map(|(_, d)| serde_json::from_str(d).unwrap()).collect();
    let text = gemini_text(&elements);
    assert_redacted_and_restored(&text);
    assert!(text.starts_with("Reply to jane@example.com about card [CREDIT_CARD_"), "{text}");

    let m = meta("/v1beta/models/gemini-2.0-flash:streamGenerateContent", "application/json; charset=UTF-8");
    assert_eq!(m.framing(), Framing::JsonArray);
    let out = replay_everywhere(&e, &m, &r, &fixture("streams/gemini_array.json"));
    let elements: Vec<Value> =
        serde_json::from_slice(&out).unwrap_or_else(|err| panic!("{err}: {}", String::from_utf8_lossy(&out)));
    assert_eq!(gemini_text(&elements), text);
    let mut s = e.response_stream(&m, r);
    s.push(&e, &fixture("streams/gemini_array.json"));
    s.finish(&e);
    assert_eq!(s.report().usage, Usage { input_tokens: Some(12), output_tokens: Some(20), total_tokens: Some(32) });
}

#[test]
fn openai_responses_stream() {
    let e = engine();
    let r = restore(&e);
    let m = meta("/v1/responses", "text/event-stream");
    let out = replay_everywhere(&e, &m, &r, &fixture("streams/openai_responses.sse"));
    let mut deltas = String::new();
    let mut done = String::new();
    let mut completed = String::new();
    for (kind, data) in sse_events(&out) {
        let v: Value = serde_json::from_str(&data).unwrap();
        match kind.as_str() {
            "response.output_text.delta" => deltas.push_str(v["delta"].as_str().unwrap()),
            "response.output_text.done" => done = v["text"].as_str().unwrap().to_owned(),
            "response.completed" => {
                completed = v["response"]["output"][0]["content"][0]["text"].as_str().unwrap().to_owned()
            }
            _ => {}
        }
    }
    assert_redacted_and_restored(&deltas);
    assert_eq!(deltas, done, "the deltas add up to the done text");
    assert_eq!(done, completed);
}

#[test]
fn bedrock_converse_stream_frames_are_reencoded_with_valid_crcs() {
    let e = engine();
    let r = restore(&e);
    let m = meta("/model/anthropic.claude-3-haiku/converse-stream", "application/vnd.amazon.eventstream");
    assert_eq!(m.framing(), Framing::EventStream);
    let input: Vec<u8> = String::from_utf8(fixture("streams/bedrock_converse.events.jsonl"))
        .unwrap()
        .lines()
        .flat_map(|line| {
            let v: Value = serde_json::from_str(line).unwrap();
            Message::event(v["event"].as_str().unwrap(), v["payload"].to_string().into_bytes()).encode()
        })
        .collect();
    let out = replay_everywhere(&e, &m, &r, &input);
    let mut d = EventStreamDecoder::new(1 << 20);
    d.push(&out);
    let (mut text, mut tool) = (String::new(), String::new());
    let mut kinds = Vec::new();
    while let Some(f) = d.next_frame().expect("every output frame has valid CRCs") {
        let kind = f.message.header_str(":event-type").unwrap().to_owned();
        let v: Value = serde_json::from_slice(&f.message.payload).unwrap();
        if kind == "contentBlockDelta" {
            text.push_str(v["delta"]["text"].as_str().unwrap_or_default());
            tool.push_str(v["delta"]["toolUse"]["input"].as_str().unwrap_or_default());
        }
        kinds.push(kind);
    }
    assert_eq!(d.buffered(), 0);
    assert_eq!(kinds.last().map(String::as_str), Some("metadata"));
    assert_redacted_and_restored(&text);
    assert!(text.starts_with("Mail jane@example.com re card [CREDIT_CARD_") && text.ends_with(" now."), "{text}");
    assert_eq!(serde_json::from_str::<Value>(&tool).unwrap()["to"], "jane@example.com");
    let mut s = e.response_stream(&m, r);
    s.push(&e, &input);
    s.finish(&e);
    assert_eq!(s.report().usage, Usage { input_tokens: Some(15), output_tokens: Some(25), total_tokens: Some(40) });
}

#[test]
fn json_responses_for_every_provider() {
    let e = audited_engine();
    let r = restore(&e);
    let cases: &[(&str, &str, &str, &str)] = &[
        (
            "responses/openai_chat.json",
            "/v1/chat/completions",
            "/choices/0/message/content",
            "/choices/0/message/tool_calls/0/function/arguments",
        ),
        ("responses/anthropic_messages.json", "/v1/messages", "/content/0/text", "/content/1/input/to"),
        (
            "responses/gemini.json",
            "/v1beta/models/gemini-2.0-flash:generateContent",
            "/candidates/0/content/parts/0/text",
            "/candidates/0/content/parts/1/functionCall/args/to",
        ),
        (
            "responses/bedrock_converse.json",
            "/model/m/converse",
            "/output/message/content/0/text",
            "/output/message/content/1/toolUse/input/to",
        ),
        ("responses/openai_responses.json", "/v1/responses", "/output/0/content/0/text", "/output/1/arguments"),
    ];
    for (file, path, text_at, tool_at) in cases {
        let body = fixture(file);
        let d = e.evaluate_response(&meta(path, "application/json"), &body, &r);
        let ResponseVerdict::Rewrite(out) = &d.verdict else { panic!("{file}: {:?}", d.verdict) };
        let v: Value = serde_json::from_slice(out).unwrap();
        let text = v.pointer(text_at).and_then(Value::as_str).unwrap_or_else(|| panic!("{file}: {v}"));
        assert_redacted_and_restored(text);
        assert!(text.contains("[CREDIT_CARD_"), "{file}: {text}");
        let tool = v.pointer(tool_at).and_then(Value::as_str).unwrap();
        let to = if tool.starts_with('{') {
            serde_json::from_str::<Value>(tool).unwrap()["to"].clone()
        } else {
            Value::from(tool)
        };
        assert_eq!(to, "jane@example.com", "{file}");
        assert!(!d.report.usage.is_empty(), "{file}: usage");
        assert!(d.report.restored >= 2, "{file}");
        // Without audit nothing reads usage, and the reply is not parsed for it.
        let unaudited = engine().evaluate_response(&meta(path, "application/json"), &body, &restore(&engine()));
        assert!(unaudited.report.usage.is_empty(), "{file}: usage read without audit");
        assert_eq!(unaudited.verdict, d.verdict, "{file}");
    }
    // OpenAI: the unknown placeholder stays; cc (a new address) is redacted.
    let d = e.evaluate_response(
        &meta("/v1/chat/completions", "application/json"),
        &fixture("responses/openai_chat.json"),
        &r,
    );
    let ResponseVerdict::Rewrite(out) = d.verdict else { panic!() };
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert!(v["choices"][0]["message"]["content"].as_str().unwrap().contains("[EMAIL_ffffff]"));
    let args: Value =
        serde_json::from_str(v["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"].as_str().unwrap())
            .unwrap();
    assert!(args["cc"].as_str().unwrap().starts_with("[EMAIL_"));
    assert_eq!(d.report.usage, Usage { input_tokens: Some(20), output_tokens: Some(30), total_tokens: Some(50) });
}

#[test]
fn restored_values_are_escaped_inside_tool_arguments() {
    let e = engine();
    let mut r = RestoreMap::new();
    r.insert(JANE.into(), "a \"quoted\" back\\slash\nname".into());
    let body = format!(
        r#"{{"choices":[{{"index":0,"message":{{"role":"assistant","content":"to {JANE}","tool_calls":[{{"id":"c","type":"function","function":{{"name":"f","arguments":"{{\"to\":\"{JANE}\"}}"}}}}]}}}}]}}"#
    );
    let d = e.evaluate_response(&meta("/v1/chat/completions", "application/json"), body.as_bytes(), &r);
    let ResponseVerdict::Rewrite(out) = d.verdict else { panic!("{:?}", d.verdict) };
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], "to a \"quoted\" back\\slash\nname");
    let args: Value =
        serde_json::from_str(v["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"].as_str().unwrap())
            .unwrap();
    assert_eq!(args["to"], "a \"quoted\" back\\slash\nname");
}

#[test]
fn another_requests_placeholders_and_monitor_mode_change_nothing() {
    let e = engine();
    let body = fixture("responses/openai_chat.json");
    // No restore map: placeholders stay, but the card and the new address are redacted.
    let d = e.evaluate_response(&meta("/v1/chat/completions", "application/json"), &body, &RestoreMap::new());
    let ResponseVerdict::Rewrite(out) = d.verdict else { panic!() };
    let out = String::from_utf8(out).unwrap();
    assert!(out.contains(JANE) && !out.contains("jane@example.com") && !out.contains("4111 1111"), "{out}");
    let monitor = engine_with(r#"{"EMAIL":{"action":"reversible"},"CREDIT_CARD":{"action":"block"}}"#, "monitor");
    let d = monitor.evaluate_response(&meta("/v1/chat/completions", "application/json"), &body, &RestoreMap::new());
    assert_eq!(d.verdict, ResponseVerdict::Allow);
    assert!(d.report.findings.iter().all(|f| !f.enforced) && !d.report.findings.is_empty());
}

#[test]
fn compressed_oversized_and_unparseable_responses_fail_closed() {
    let e = engine();
    let gz = ResponseMeta { content_encoding: Some("gzip"), ..meta("/v1/chat/completions", "application/json") };
    let d = e.evaluate_response(&gz, b"\x1f\x8b\x08", &RestoreMap::new());
    let ResponseVerdict::Block(p) = d.verdict else { panic!() };
    assert_eq!((p.kind, p.status()), (ProblemKind::UpstreamUnreadable, 502));
    // A stream whose event is not JSON: the provider's error event, then nothing.
    let m = meta("/v1/chat/completions", "text/event-stream");
    let mut s = e.response_stream(&m, RestoreMap::new());
    let out = s.push(&e, b"data: {not json\n\ndata: [DONE]\n\n");
    let events = sse_events(&out);
    assert_eq!(events.len(), 1);
    assert_eq!(serde_json::from_str::<Value>(&events[0].1).unwrap()["error"]["code"], "unreadable-response");
    // A JSON error document from the provider passes as it is.
    let err = br#"{"error":{"message":"rate limited","type":"rate_limit_error"}}"#;
    assert_eq!(
        e.evaluate_response(&meta("/v1/chat/completions", "application/json"), err, &RestoreMap::new()).verdict,
        ResponseVerdict::Allow
    );
}

#[test]
fn apis_and_framings_are_recognised() {
    assert_eq!(Api::for_request_path("/openai/deployments/x/chat/completions?api-version=1"), Api::OpenAiChat);
    assert_eq!(Api::for_request_path("/v1/messages"), Api::Anthropic);
    assert_eq!(Api::for_request_path("/v1/responses"), Api::OpenAiResponses);
    assert_eq!(Api::for_request_path("/v1beta/models/g:generateContent"), Api::Gemini);
    assert_eq!(Api::for_request_path("/model/m/converse-stream"), Api::Bedrock);
    assert_eq!(
        Framing::of(Api::Gemini, "/v1beta/models/g:streamGenerateContent?key=k&alt=sse", Some("text/event-stream")),
        Framing::Sse
    );
    assert_eq!(Framing::of(Api::OpenAiChat, "/v1/chat/completions", Some("application/json")), Framing::Json);
    assert_eq!(Framing::of(Api::Unknown, "/x", Some("text/html")), Framing::Text);
}
