//! Pure reply builders: what the model "saw" and the provider-shaped replies
//! that carry it back. No I/O here, so everything is unit-tested directly.
//!
//! The reply text is the *transcript* of the request: one `<role>: <text>`
//! line per message, where `<text>` is the message's content string or the
//! `text` of each of its text parts joined with `\n`. A user therefore sees
//! in the reply exactly the text the provider received.

use serde_json::{json, Value};

/// Why a request body could not be turned into a transcript.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestProblem {
    /// The body is not JSON at all.
    NotJson(String),
    /// The body is JSON but not the shape the endpoint expects.
    Shape(&'static str),
}

impl std::fmt::Display for RequestProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RequestProblem::NotJson(e) => write!(f, "request body is not valid JSON: {e}"),
            RequestProblem::Shape(what) => write!(f, "unexpected request shape: {what}"),
        }
    }
}

/// The parts of a chat request the mock needs to answer it.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatRequest {
    pub model: String,
    pub stream: bool,
    /// OpenAI `stream_options.include_usage`.
    pub include_usage: bool,
    /// The text the model received (see the module docs).
    pub transcript: String,
}

/// The text of one `content` value: a string, or the text of each part
/// joined with `\n`. Parts may be strings, `{"text": ..}` objects (OpenAI
/// `text`/`input_text`, Anthropic `text`), or carry nested `content`
/// (Anthropic `tool_result`). Anything else contributes nothing.
pub fn content_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|part| match part {
                Value::String(s) => Some(s.clone()),
                Value::Object(obj) => match (obj.get("text"), obj.get("content")) {
                    (Some(Value::String(t)), _) => Some(t.clone()),
                    (_, Some(nested)) => Some(content_text(nested)),
                    _ => None,
                },
                _ => None,
            })
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

fn messages_transcript(messages: &[Value], lines: &mut Vec<String>) {
    for message in messages {
        let role = message.get("role").and_then(Value::as_str).unwrap_or("unknown");
        let text = message.get("content").map(content_text).unwrap_or_default();
        lines.push(format!("{role}: {text}"));
    }
}

fn parse_object(body: &[u8]) -> Result<serde_json::Map<String, Value>, RequestProblem> {
    let value: Value = serde_json::from_slice(body).map_err(|e| RequestProblem::NotJson(e.to_string()))?;
    match value {
        Value::Object(obj) => Ok(obj),
        _ => Err(RequestProblem::Shape("the body is not a JSON object")),
    }
}

fn model_of(obj: &serde_json::Map<String, Value>) -> String {
    obj.get("model").and_then(Value::as_str).unwrap_or("mock-model").to_owned()
}

/// Parses an OpenAI Chat Completions request.
pub fn parse_openai_chat(body: &[u8]) -> Result<ChatRequest, RequestProblem> {
    let obj = parse_object(body)?;
    let messages =
        obj.get("messages").and_then(Value::as_array).ok_or(RequestProblem::Shape("`messages` must be an array"))?;
    let mut lines = Vec::with_capacity(messages.len());
    messages_transcript(messages, &mut lines);
    Ok(ChatRequest {
        model: model_of(&obj),
        stream: obj.get("stream").and_then(Value::as_bool).unwrap_or(false),
        include_usage: obj
            .get("stream_options")
            .and_then(|o| o.get("include_usage"))
            .and_then(Value::as_bool)
            .unwrap_or(false),
        transcript: lines.join("\n"),
    })
}

/// Parses an Anthropic Messages request; `system` comes first as a
/// `system: ...` line.
pub fn parse_anthropic_messages(body: &[u8]) -> Result<ChatRequest, RequestProblem> {
    let obj = parse_object(body)?;
    let messages =
        obj.get("messages").and_then(Value::as_array).ok_or(RequestProblem::Shape("`messages` must be an array"))?;
    let mut lines = Vec::with_capacity(messages.len() + 1);
    if let Some(system) = obj.get("system") {
        lines.push(format!("system: {}", content_text(system)));
    }
    messages_transcript(messages, &mut lines);
    Ok(ChatRequest {
        model: model_of(&obj),
        stream: obj.get("stream").and_then(Value::as_bool).unwrap_or(false),
        include_usage: false,
        transcript: lines.join("\n"),
    })
}

/// A rough token count (whitespace-separated words); only the shape matters.
pub fn count_tokens(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

/// Splits `text` into pieces of at most `piece_chars` characters (never
/// inside a UTF-8 sequence). An empty text gives no pieces.
pub fn pieces(text: &str, piece_chars: usize) -> Vec<String> {
    let n = piece_chars.max(1);
    let chars: Vec<char> = text.chars().collect();
    chars.chunks(n).map(|c| c.iter().collect()).collect()
}

/// Identity of one reply (id, creation time) so the builders stay pure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyMeta {
    pub id: String,
    pub created: u64,
}

/// `chat.completion` JSON whose message content is the transcript.
pub fn openai_completion(req: &ChatRequest, meta: &ReplyMeta) -> Value {
    let tokens = count_tokens(&req.transcript);
    json!({
        "id": meta.id,
        "object": "chat.completion",
        "created": meta.created,
        "model": req.model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": req.transcript, "refusal": null},
            "logprobs": null,
            "finish_reason": "stop"
        }],
        "usage": {"prompt_tokens": tokens, "completion_tokens": tokens, "total_tokens": 2 * tokens}
    })
}

fn sse_data(value: &Value) -> String {
    format!("data: {value}\n\n")
}

/// The SSE events (each a complete `data: ...\n\n` string) of a streamed
/// `chat.completion.chunk` reply: a first delta carrying `role`, the
/// transcript in pieces of `piece_chars` characters, a last chunk with
/// `finish_reason: "stop"`, a usage chunk when `include_usage`, then
/// `data: [DONE]`.
pub fn openai_stream_events(req: &ChatRequest, meta: &ReplyMeta, piece_chars: usize) -> Vec<String> {
    let chunk = |delta: Value, finish: Value| {
        let mut c = json!({
            "id": meta.id,
            "object": "chat.completion.chunk",
            "created": meta.created,
            "model": req.model,
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]
        });
        if req.include_usage {
            c["usage"] = Value::Null;
        }
        sse_data(&c)
    };
    let mut events = vec![chunk(json!({"role": "assistant", "content": "", "refusal": null}), Value::Null)];
    for piece in pieces(&req.transcript, piece_chars) {
        events.push(chunk(json!({"content": piece}), Value::Null));
    }
    events.push(chunk(json!({}), json!("stop")));
    if req.include_usage {
        let tokens = count_tokens(&req.transcript);
        events.push(sse_data(&json!({
            "id": meta.id,
            "object": "chat.completion.chunk",
            "created": meta.created,
            "model": req.model,
            "choices": [],
            "usage": {"prompt_tokens": tokens, "completion_tokens": tokens, "total_tokens": 2 * tokens}
        })));
    }
    events.push("data: [DONE]\n\n".to_owned());
    events
}

/// Anthropic `message` JSON whose single text block is the transcript.
pub fn anthropic_message(req: &ChatRequest, meta: &ReplyMeta) -> Value {
    let tokens = count_tokens(&req.transcript);
    json!({
        "id": meta.id,
        "type": "message",
        "role": "assistant",
        "model": req.model,
        "content": [{"type": "text", "text": req.transcript}],
        "stop_reason": "end_turn",
        "stop_sequence": null,
        "usage": {"input_tokens": tokens, "output_tokens": tokens}
    })
}

fn sse_named(event: &str, value: &Value) -> String {
    format!("event: {event}\ndata: {value}\n\n")
}

/// The SSE events of a streamed Anthropic reply: `message_start`,
/// `content_block_start`, `ping`, `content_block_delta` (`text_delta`) per
/// piece, `content_block_stop`, `message_delta`, `message_stop`.
pub fn anthropic_stream_events(req: &ChatRequest, meta: &ReplyMeta, piece_chars: usize) -> Vec<String> {
    let tokens = count_tokens(&req.transcript);
    let mut events = vec![
        sse_named(
            "message_start",
            &json!({"type": "message_start", "message": {
                "id": meta.id, "type": "message", "role": "assistant", "model": req.model,
                "content": [], "stop_reason": null, "stop_sequence": null,
                "usage": {"input_tokens": tokens, "output_tokens": 0}
            }}),
        ),
        sse_named(
            "content_block_start",
            &json!({"type": "content_block_start", "index": 0,
                    "content_block": {"type": "text", "text": ""}}),
        ),
        sse_named("ping", &json!({"type": "ping"})),
    ];
    for piece in pieces(&req.transcript, piece_chars) {
        events.push(sse_named(
            "content_block_delta",
            &json!({"type": "content_block_delta", "index": 0,
                    "delta": {"type": "text_delta", "text": piece}}),
        ));
    }
    events.push(sse_named("content_block_stop", &json!({"type": "content_block_stop", "index": 0})));
    events.push(sse_named(
        "message_delta",
        &json!({"type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": null},
                "usage": {"output_tokens": tokens}}),
    ));
    events.push(sse_named("message_stop", &json!({"type": "message_stop"})));
    events
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> ReplyMeta {
        ReplyMeta { id: "chatcmpl-mock-1".into(), created: 7 }
    }

    /// Joins the `delta.content` of every chunk, as a client would.
    fn reassemble_openai(events: &[String]) -> String {
        events
            .iter()
            .filter_map(|e| e.strip_prefix("data: "))
            .map(str::trim_end)
            .filter(|d| *d != "[DONE]")
            .filter_map(|d| serde_json::from_str::<Value>(d).ok())
            .filter_map(|v| v["choices"][0]["delta"]["content"].as_str().map(str::to_owned))
            .collect()
    }

    #[test]
    fn transcript_renders_every_role_and_both_content_shapes() {
        let body = br#"{"model":"gpt-x","messages":[
            {"role":"system","content":"be brief"},
            {"role":"user","content":[{"type":"text","text":"part one"},{"type":"image_url","image_url":{"url":"x"}},{"type":"text","text":"part two"}]},
            {"role":"assistant","content":null,"tool_calls":[]},
            {"role":"tool","tool_call_id":"t1","content":"42"}
        ]}"#;
        let req = parse_openai_chat(body).unwrap();
        assert_eq!(req.model, "gpt-x");
        assert!(!req.stream);
        assert_eq!(req.transcript, "system: be brief\nuser: part one\npart two\nassistant: \ntool: 42");
    }

    #[test]
    fn openai_parse_rejects_non_json_and_wrong_shapes() {
        assert!(matches!(parse_openai_chat(b"{not json"), Err(RequestProblem::NotJson(_))));
        assert!(matches!(parse_openai_chat(b"[1,2]"), Err(RequestProblem::Shape(_))));
        assert!(matches!(parse_openai_chat(br#"{"messages":"hi"}"#), Err(RequestProblem::Shape(_))));
    }

    #[test]
    fn completion_carries_the_transcript_and_usage() {
        let req = parse_openai_chat(br#"{"messages":[{"role":"user","content":"hello there"}]}"#).unwrap();
        let v = openai_completion(&req, &meta());
        assert_eq!(v["object"], "chat.completion");
        assert_eq!(v["model"], "mock-model");
        assert_eq!(v["choices"][0]["message"]["content"], "user: hello there");
        assert_eq!(v["choices"][0]["finish_reason"], "stop");
        assert_eq!(v["usage"]["prompt_tokens"], 3);
        assert_eq!(v["usage"]["total_tokens"], 6);
    }

    #[test]
    fn stream_reassembles_to_the_transcript_in_small_pieces() {
        let req = parse_openai_chat(
            r#"{"stream":true,"messages":[{"role":"user","content":"héllo wörld, 😀 ok"}]}"#.as_bytes(),
        )
        .unwrap();
        assert!(req.stream);
        let events = openai_stream_events(&req, &meta(), 3);
        assert_eq!(reassemble_openai(&events), req.transcript);
        let first: Value = serde_json::from_str(events[0].strip_prefix("data: ").unwrap().trim_end()).unwrap();
        assert_eq!(first["choices"][0]["delta"]["role"], "assistant");
        assert_eq!(first["object"], "chat.completion.chunk");
        for e in &events[1..events.len() - 2] {
            let v: Value = serde_json::from_str(e.strip_prefix("data: ").unwrap().trim_end()).unwrap();
            assert!(v["choices"][0]["delta"]["content"].as_str().unwrap().chars().count() <= 3);
        }
        let last_chunk: Value =
            serde_json::from_str(events[events.len() - 2].strip_prefix("data: ").unwrap().trim_end()).unwrap();
        assert_eq!(last_chunk["choices"][0]["finish_reason"], "stop");
        assert_eq!(events.last().unwrap(), "data: [DONE]\n\n");
        assert!(events.iter().all(|e| e.ends_with("\n\n")));
    }

    #[test]
    fn stream_honours_include_usage_with_a_final_usage_chunk() {
        let req = parse_openai_chat(
            br#"{"stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"a b"}]}"#,
        )
        .unwrap();
        assert!(req.include_usage);
        let events = openai_stream_events(&req, &meta(), 4);
        let usage: Value =
            serde_json::from_str(events[events.len() - 2].strip_prefix("data: ").unwrap().trim_end()).unwrap();
        assert_eq!(usage["choices"], json!([]));
        assert_eq!(usage["usage"]["prompt_tokens"], 3);
    }

    #[test]
    fn anthropic_transcript_puts_system_first_and_reads_blocks() {
        let req = parse_anthropic_messages(
            br#"{"model":"claude-x","system":[{"type":"text","text":"sys"}],"messages":[
                {"role":"user","content":[{"type":"text","text":"hi"},{"type":"tool_result","tool_use_id":"t","content":[{"type":"text","text":"result"}]}]}
            ]}"#,
        )
        .unwrap();
        assert_eq!(req.transcript, "system: sys\nuser: hi\nresult");
        let v = anthropic_message(&req, &meta());
        assert_eq!(v["content"][0]["text"], req.transcript);
        let events = anthropic_stream_events(&req, &meta(), 2);
        let text: String = events
            .iter()
            .filter(|e| e.starts_with("event: content_block_delta\n"))
            .map(|e| {
                let data = e.split_once("data: ").unwrap().1.trim_end();
                let v: Value = serde_json::from_str(data).unwrap();
                v["delta"]["text"].as_str().unwrap().to_owned()
            })
            .collect();
        assert_eq!(text, req.transcript);
        assert!(events.last().unwrap().starts_with("event: message_stop\n"));
    }

    #[test]
    fn pieces_respect_char_boundaries() {
        assert_eq!(pieces("", 4), Vec::<String>::new());
        assert_eq!(pieces("abcdé", 2), vec!["ab", "cd", "é"]);
        assert_eq!(pieces("ab", 0), vec!["a", "b"]);
    }
}
