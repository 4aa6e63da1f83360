//! `ResponseStream` for every provider API and framing: the client output
//! and the report are the same at every chunking as in one piece (the
//! module's promise: "output depends only on the events").
#![no_main]

use libfuzzer_sys::fuzz_target;
use meshward_engine::response::{ResponseMeta, ResponseReport};
use meshward_engine::stream::eventstream::Message;
use meshward_engine::Engine;

#[path = "common.rs"]
mod common;

const STREAMS: [(&str, &str); 8] = [
    ("/v1/chat/completions", "text/event-stream"),
    ("/v1/responses", "text/event-stream"),
    ("/v1/messages", "text/event-stream"),
    ("/v1beta/models/g:streamGenerateContent?alt=sse", "text/event-stream"),
    ("/v1beta/models/g:streamGenerateContent", "application/json"),
    ("/model/m/converse-stream", "application/vnd.amazon.eventstream"),
    ("/v1/other", "text/event-stream"),
    // Bedrock again, but the fuzz bytes go to the decoder as they are.
    ("/model/m/converse-stream", "application/vnd.amazon.eventstream"),
];

fn run(engine: &Engine, meta: &ResponseMeta<'_>, pieces: &[&[u8]], strip_usage: bool) -> (Vec<u8>, ResponseReport) {
    let mut s = engine.response_stream(meta, common::restore().clone()).with_injected_usage(strip_usage);
    let mut out = Vec::new();
    for p in pieces {
        out.extend(s.push(engine, p));
    }
    out.extend(s.finish(engine));
    (out, s.report().clone())
}

/// Bedrock: the payload is lines of `event-type TAB json`, framed here so
/// the fuzzer reaches the JSON instead of fighting CRCs.
fn frames(payload: &[u8]) -> Vec<u8> {
    payload
        .split(|&b| b == b'\n')
        .flat_map(|line| {
            let text = String::from_utf8_lossy(line);
            let (kind, json) = text.split_once('\t').unwrap_or(("contentBlockDelta", &text));
            Message::event(kind, json.as_bytes().to_vec()).encode()
        })
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else { return };
    let (path, content_type) = STREAMS[usize::from(sel) % STREAMS.len()];
    let meta = ResponseMeta {
        request_id: "fuzz",
        request_path: path,
        content_type: Some(content_type),
        status: 200,
        ..Default::default()
    };
    let engine = if sel & 0x40 == 0 { common::engine() } else { common::blocking_engine() };
    let strip_usage = sel & 0x80 != 0;
    let (cuts, payload) = common::cuts(rest);
    let framed;
    let input: &[u8] = if usize::from(sel) % STREAMS.len() == 5 {
        framed = frames(payload);
        // Cut points scale with the framed bytes.
        &framed
    } else {
        payload
    };
    let cuts: Vec<usize> = cuts.iter().map(|&c| c * input.len() / payload.len().max(1)).collect();
    let whole = run(engine, &meta, &[input], strip_usage);
    let split = run(engine, &meta, &common::pieces(input, &cuts), strip_usage);
    assert!(
        whole.0 == split.0,
        "chunking changed the output at {cuts:?}:\n{}\n---\n{}",
        String::from_utf8_lossy(&whole.0),
        String::from_utf8_lossy(&split.0)
    );
    assert_eq!(whole.1, split.1, "chunking changed the report at {cuts:?}");
});
