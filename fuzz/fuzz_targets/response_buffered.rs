//! `Engine::evaluate_response` for every provider API, JSON and text: never
//! a panic, and a rewritten JSON body is still JSON.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meshward_engine::response::{Framing, ResponseMeta, ResponseVerdict};

#[path = "common.rs"]
mod common;

const PATHS: [&str; 6] = [
    "/v1/chat/completions",
    "/v1/responses",
    "/v1/messages",
    "/v1beta/models/gemini-2.0-flash:generateContent",
    "/model/anthropic.claude-3-haiku/converse",
    "/v1/other",
];

fuzz_target!(|data: &[u8]| {
    let Some((&sel, body)) = data.split_first() else { return };
    let meta = ResponseMeta {
        request_id: "fuzz",
        request_path: PATHS[usize::from(sel) % PATHS.len()],
        content_type: Some(if sel & 0x80 == 0 { "application/json" } else { "text/plain" }),
        content_encoding: None,
        status: 200,
    };
    let engine = if sel & 0x40 == 0 { common::engine() } else { common::blocking_engine() };
    let d = engine.evaluate_response(&meta, body, common::restore());
    assert_eq!(d.report.problem.is_some(), matches!(d.verdict, ResponseVerdict::Block(_)));
    if let ResponseVerdict::Rewrite(out) = &d.verdict {
        if meta.framing() == Framing::Json && common::is_json(body) {
            assert!(common::is_json(out), "the rewrite is not JSON:\n{}", String::from_utf8_lossy(out));
        }
    }
});
