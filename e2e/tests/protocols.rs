//! The protocol matrix on the real Envoy: HTTP/1.1 and HTTP/2 (h2c)
//! downstream, bodies in many small pieces, trailers, bodies at and over the
//! limit, and `content-length` values that lie. Whatever the framing, the
//! provider receives only the judged body, and every refusal is our problem
//! document with the request id.

use std::time::Duration;

use meshward_e2e::http::{parse_sse, send_raw};
use meshward_e2e::{placeholders, Body, Fixture, Request, Response};
use serde_json::{json, Value};

const EMAIL: &str = "jane.doe@example.com";
const CARD: &str = "4111 1111 1111 1111";

fn chat(content: &str) -> Vec<u8> {
    json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": content}]}).to_string().into_bytes()
}

fn post(id: &str, body: Body) -> Request {
    Request::new("POST", "/v1/chat/completions")
        .header("content-type", "application/json")
        .header("x-request-id", id)
        .body(body)
}

/// Splits `bytes` into pieces of 1 to 7 bytes, cycling, so that values,
/// escapes and multi-byte characters are cut at every offset somewhere.
fn tiny_pieces(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut pieces = Vec::new();
    let mut at = 0;
    let mut size = 1;
    while at < bytes.len() {
        let end = (at + size).min(bytes.len());
        pieces.push(bytes[at..end].to_vec());
        at = end;
        size = size % 7 + 1;
    }
    pieces
}

fn assert_problem(resp: &Response, status: u16, slug: &str, request_id: &str) {
    assert_eq!(resp.status, status, "{}", resp.text());
    assert_eq!(resp.header("content-type"), Some("application/problem+json"), "{}", resp.text());
    let doc = resp.json().unwrap();
    assert_eq!(doc["type"], format!("urn:meshward:problem:{slug}"), "{doc}");
    assert_eq!(doc["request_id"], request_id, "{doc}");
}

/// The provider's copy: no raw e-mail or card, one placeholder of each.
fn assert_redacted(f: &Fixture) -> String {
    let got = f.received().pop().expect("the provider received the request");
    let text = got.body_text();
    assert!(!text.contains(EMAIL) && !text.contains(CARD), "{text}");
    assert_eq!(placeholders(&text, "EMAIL").len(), 1, "{text}");
    assert_eq!(placeholders(&text, "CREDIT_CARD").len(), 1, "{text}");
    serde_json::from_str::<Value>(&text).unwrap_or_else(|e| panic!("the provider got invalid JSON ({e}): {text}"));
    text
}

#[test]
fn h2c_with_hundreds_of_small_data_frames_is_redacted_like_http1() {
    let f = Fixture::start();
    let body = chat(&format!("Grüße 🙂 — mail {EMAIL}, card {CARD}. {}", "Lorem ipsum dolor sit amet. ".repeat(20)));
    let frames = tiny_pieces(&body);
    assert!(frames.len() > 150, "{} frames", frames.len());

    let resp = f.send_h2c(&post("h2-frames", Body::Chunked(frames.clone())));
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.header("x-request-id"), Some("h2-frames"));
    let over_h2 = assert_redacted(&f);
    assert!(over_h2.contains("Grüße 🙂"), "{over_h2}");

    // The same body over HTTP/1.1 in the same tiny chunks reaches the
    // provider identical: placeholders are keyed, not random.
    let resp = f.send(&post("h1-chunks", Body::Chunked(frames)));
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(assert_redacted(&f), over_h2);
}

#[test]
fn h2c_trailers_end_the_body_and_the_decision_happens_there() {
    let f = Fixture::start();
    let body = chat(&format!("mail {EMAIL}, card {CARD}"));
    let resp = f.send_h2c(&post("h2-trailers", Body::Chunked(tiny_pieces(&body))).trailer("x-checksum", "abc"));
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_redacted(&f);

    // A malformed body ended by trailers is refused at the trailers, and
    // never forwarded.
    let resp = f.send_h2c(
        &post("h2-bad-trailers", Body::Chunked(tiny_pieces(b"{\"messages\":["))).trailer("x-checksum", "abc"),
    );
    assert_problem(&resp, 400, "malformed-json", "h2-bad-trailers");
    assert_eq!(f.received().len(), 1, "the malformed body must not reach the provider");
}

#[test]
fn http1_chunked_trailers_are_accepted_and_the_body_is_redacted() {
    // Envoy drops HTTP/1.1 request trailers unless `enable_trailers` is set;
    // either way the body is judged whole.
    let f = Fixture::start();
    let body = chat(&format!("mail {EMAIL}, card {CARD}"));
    let resp = f.send(&post("h1-trailers", Body::Chunked(tiny_pieces(&body))).trailer("x-checksum", "abc"));
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_redacted(&f);
}

#[test]
fn h2c_streamed_replies_pass_as_server_sent_events() {
    let f = Fixture::start();
    let mut body: Value = serde_json::from_slice(&chat(&format!("mail {EMAIL} please"))).unwrap();
    body["stream"] = json!(true);
    let resp = f.send_h2c(&post("h2-stream", Body::Fixed(body.to_string().into_bytes())));
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.header("content-type"), Some("text/event-stream"));
    let events = parse_sse(&resp.text());
    assert_eq!(events.last().map(|e| e.data.as_str()), Some("[DONE]"), "{}", resp.text());
    let reply: String = events[..events.len() - 1]
        .iter()
        .filter_map(|e| serde_json::from_str::<Value>(&e.data).ok())
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str().map(str::to_owned))
        .collect();
    // The mock echoes what it received: the redacted text, no address.
    assert!(!reply.contains(EMAIL), "{reply}");
    assert_eq!(placeholders(&reply, "EMAIL").len(), 1, "{reply}");
}

#[test]
fn bodies_at_the_limit_pass_and_over_it_get_our_413_on_both_protocols() {
    // policies/default.json: limits.max_body_bytes = 1 MiB.
    const LIMIT: usize = 1 << 20;
    let f = Fixture::start();
    let prefix = format!("mail {EMAIL} ");
    let shell = chat(&prefix).len();
    let at_limit = chat(&format!("{prefix}{}", "a".repeat(LIMIT - shell)));
    assert_eq!(at_limit.len(), LIMIT);
    let resp = f.send(&post("at-limit", Body::Fixed(at_limit.clone())));
    assert_eq!(resp.status, 200, "{}", resp.text());
    let got = f.received().pop().unwrap().body_text();
    assert!(!got.contains(EMAIL) && placeholders(&got, "EMAIL").len() == 1);

    let over: Vec<u8> = chat(&format!("{prefix}{}", "a".repeat(LIMIT - shell + 1)));
    let resp = f.send(&post("over-h1", Body::Fixed(over.clone())));
    assert_problem(&resp, 413, "body-too-large", "over-h1");
    // Far over, in 64 KiB DATA frames: refused as soon as the limit is
    // crossed, before Envoy's own 2 MiB buffer limit would answer.
    let far_over = chat(&"b".repeat(3 * LIMIT));
    let frames: Vec<Vec<u8>> = far_over.chunks(64 * 1024).map(<[u8]>::to_vec).collect();
    let resp = f.send_h2c(&post("over-h2", Body::Chunked(frames)));
    assert_problem(&resp, 413, "body-too-large", "over-h2");
    assert_eq!(f.received().len(), 1, "only the body at the limit reached the provider");
}

#[test]
fn a_content_length_that_lies_never_smuggles_a_body_past_the_filter() {
    let f = Fixture::start();
    let clean = chat("hello there");
    let smuggled = chat(&format!("mail {EMAIL}, card {CARD}"));

    // Shorter than the body: Envoy takes content-length bytes as the body;
    // the rest is read as a next request, which is garbage, and refused.
    let mut raw = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: meshward.test\r\ncontent-type: application/json\r\n\
         x-request-id: short-cl\r\ncontent-length: {}\r\n\r\n",
        clean.len()
    )
    .into_bytes();
    raw.extend_from_slice(&clean);
    raw.extend_from_slice(&smuggled);
    let reply = send_raw(f.listener(), &raw, false, Duration::from_secs(5)).unwrap();
    let reply = String::from_utf8_lossy(&reply.bytes).into_owned();
    assert!(reply.starts_with("HTTP/1.1 200"), "the honest prefix is answered: {reply}");
    assert_eq!(reply.matches("HTTP/1.1 200").count(), 1, "the remainder is not a request: {reply}");
    assert!(!reply.contains(EMAIL), "{reply}");
    let got = f.received();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].body, clean, "the provider got exactly the declared body");

    // Longer than the body, then the client half-closes: the request never
    // completes, so nothing reaches the provider and nothing leaks back.
    let mut raw = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: meshward.test\r\ncontent-type: application/json\r\n\
         x-request-id: long-cl\r\ncontent-length: {}\r\n\r\n",
        smuggled.len() + 100
    )
    .into_bytes();
    raw.extend_from_slice(&smuggled);
    let reply = send_raw(f.listener(), &raw, true, Duration::from_secs(10)).unwrap();
    let reply = String::from_utf8_lossy(&reply.bytes).into_owned();
    assert!(!reply.contains("HTTP/1.1 200"), "{reply}");
    assert!(!reply.contains(EMAIL), "{reply}");
    assert_eq!(f.received().len(), 1, "the incomplete body never reaches the provider");

    // Both framings at once (content-length and chunked) are refused by
    // Envoy's codec before any filter runs.
    let mut raw = b"POST /v1/chat/completions HTTP/1.1\r\nhost: meshward.test\r\ncontent-type: application/json\r\n\
         content-length: 4\r\ntransfer-encoding: chunked\r\n\r\n"
        .to_vec();
    raw.extend_from_slice(format!("{:x}\r\n", smuggled.len()).as_bytes());
    raw.extend_from_slice(&smuggled);
    raw.extend_from_slice(b"\r\n0\r\n\r\n");
    let reply = send_raw(f.listener(), &raw, false, Duration::from_secs(5)).unwrap();
    let reply = String::from_utf8_lossy(&reply.bytes).into_owned();
    assert!(reply.starts_with("HTTP/1.1 400"), "{reply}");
    assert_eq!(f.received().len(), 1, "{:?}", f.received());

    // Envoy still serves the next honest request.
    let resp = f.send(&post("after-lies", Body::Fixed(chat(&format!("mail {EMAIL}")))));
    assert_eq!(resp.status, 200, "{}", resp.text());
}

#[test]
fn compressed_and_mistyped_bodies_get_clear_answers() {
    let f = Fixture::start();
    for encoding in ["deflate", "br", "zstd", "gzip, identity"] {
        let req = post(encoding, Body::Fixed(vec![0x78, 0x9c, 1, 2, 3])).header("content-encoding", encoding);
        assert_problem(&f.send(&req), 415, "unsupported-content-encoding", encoding);
        let req =
            post(encoding, Body::Chunked(vec![vec![0x78, 0x9c], vec![1, 2, 3]])).header("content-encoding", encoding);
        assert_problem(&f.send_h2c(&req), 415, "unsupported-content-encoding", encoding);
    }
    assert!(f.received().is_empty(), "{:?}", f.received());

    // Numbers, objects and nulls where strings are expected: still read,
    // strings anywhere in them and numbers in messages still scanned, never
    // a 5xx.
    let odd = [
        json!({"model": 4, "messages": [{"role": "user", "content": 4111111111111111_u64}]}),
        json!({"model": "gpt-4o", "messages": {"role": "user", "content": format!("mail {EMAIL}")}}),
        json!({"model": "gpt-4o", "messages": [{"role": 7, "content": [{"type": "text", "text": null},
            {"type": "text", "text": format!("mail {EMAIL}")}]}]}),
        json!({"model": null, "messages": [[format!("mail {EMAIL}")], {"content": {"nested": format!("{EMAIL}")}}]}),
    ];
    for (i, body) in odd.iter().enumerate() {
        let id = format!("odd-{i}");
        let resp = f.send(&post(&id, Body::Fixed(body.to_string().into_bytes())));
        assert!(resp.status < 500, "{id}: {} {}", resp.status, resp.text());
        for got in f.received() {
            assert!(!got.body_text().contains(EMAIL), "{id}: {}", got.body_text());
            // A card sent as a JSON number is redacted too (into a string).
            assert!(!got.body_text().contains("4111111111111111"), "{id}: {}", got.body_text());
        }
    }
}
