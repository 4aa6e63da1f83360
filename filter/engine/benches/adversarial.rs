//! Adversarial inputs: `cargo bench -p meshward-engine --bench adversarial`.
//!
//! DESIGN.md §5 asks that no input make the parsers or detectors
//! superlinear. Each case is built at 64 KiB and at 1 MiB and timed at
//! both; `ratio` is t(1 MiB) / (16 × t(64 KiB)), so ≈ 1 is linear and
//! anything well above 2 is a finding. A plain `harness = false` binary,
//! like `benches/detect.rs`. Pass a case name (substring) to run only some.

use std::hint::black_box;
use std::time::{Duration, Instant};

use meshward_engine::detect::{DetectorSet, EntityClass, Finding};
use meshward_engine::json::{self, PathSeg, StringLeaf, Visitor};
use meshward_engine::policy::Secrets;
use meshward_engine::response::ResponseMeta;
use meshward_engine::restore::RestoreMap;
use meshward_engine::stream::eventstream::{EventStreamDecoder, Message};
use meshward_engine::stream::json_array::JsonArrayParser;
use meshward_engine::stream::sse::SseParser;
use meshward_engine::{Engine, RequestMeta};

const SMALL: usize = 64 << 10;
const LARGE: usize = 1 << 20;
/// The default `limits.max_json_depth`.
const DEPTH: usize = 128;

/// `unit` repeated to exactly `len` bytes (units are ASCII).
fn fill(unit: &str, len: usize) -> String {
    unit.repeat(len / unit.len() + 1)[..len].to_owned()
}

/// Units cycled from a list, to about `len` bytes.
fn cycle(units: &[&str], len: usize) -> String {
    let mut s = String::with_capacity(len + 64);
    for u in units.iter().cycle() {
        if s.len() >= len {
            break;
        }
        s.push_str(u);
    }
    s
}

/// Arrays nested exactly `DEPTH` deep, side by side in one top array.
fn deep_json(len: usize) -> String {
    let one = format!("{}{}", "[".repeat(DEPTH - 1), "]".repeat(DEPTH - 1));
    let mut s = String::from("[");
    while s.len() + one.len() + 2 < len {
        if s.len() > 1 {
            s.push(',');
        }
        s.push_str(&one);
    }
    s.push(']');
    s
}

/// One string of `len` bytes that is almost all escapes.
fn escaped_json(len: usize) -> String {
    format!("\"{}\"", fill(r#"\u00e9\n\"\\\ud83d\ude00a"#, len - 2).trim_end_matches('\\'))
}

/// Many small string members: the walk's per-leaf overhead.
fn many_leaves_json(len: usize) -> String {
    let mut s = String::from("{\"a\":[");
    while s.len() < len - 8 {
        s.push_str("\"x\",");
    }
    s.push_str("\"x\"]}");
    s
}

/// OpenAI chat chunks, each carrying `delta` as its content.
fn chat_stream(delta: &str, len: usize) -> String {
    let event = format!(
        "data: {{\"object\":\"chat.completion.chunk\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{delta}\"}}}}]}}\n\n"
    );
    event.repeat(len / event.len())
}

struct Leaves(usize);

impl<'a> Visitor<'a> for Leaves {
    fn string(&mut self, _path: &[PathSeg<'a>], _leaf: StringLeaf) {
        self.0 += 1;
    }
}

/// What one case runs over its input.
#[derive(Clone, Copy)]
enum Run {
    Detect,
    Walk,
    WalkUnescape,
    Request,
    SseOneChunk,
    SseByteChunks,
    JsonArrayOneChunk,
    EventStreamOneChunk,
    /// The whole response pipeline: an OpenAI chat stream in one chunk.
    ChatStream,
}

struct Case {
    name: &'static str,
    run: Run,
    make: fn(usize) -> Vec<u8>,
}

fn cases() -> Vec<Case> {
    fn s(v: String) -> Vec<u8> {
        v.into_bytes()
    }
    vec![
        Case { name: "digits", run: Run::Detect, make: |n| s(fill("7", n)) },
        Case { name: "digits_spaced", run: Run::Detect, make: |n| s(fill("4111 ", n)) },
        Case { name: "digits_dashed", run: Run::Detect, make: |n| s(fill("12-34-", n)) },
        Case { name: "digits_dotted", run: Run::Detect, make: |n| s(fill("192.168.", n)) },
        Case { name: "digits_mixed_seps", run: Run::Detect, make: |n| s(fill("1 2-3.4/5(6)7+8 ", n)) },
        Case { name: "at_signs", run: Run::Detect, make: |n| s(fill("@", n)) },
        Case { name: "dots", run: Run::Detect, make: |n| s(fill(".", n)) },
        Case { name: "dashes", run: Run::Detect, make: |n| s(fill("-", n)) },
        Case { name: "local_part_run", run: Run::Detect, make: |n| s(fill("a", n - 1) + "@") },
        Case { name: "domain_run", run: Run::Detect, make: |n| s(format!("a@{}", fill("b.", n - 2))) },
        Case {
            name: "near_miss_emails",
            run: Run::Detect,
            make: |n| s(cycle(&["a@b ", "x.y@z. ", "u@-d.com ", "p@q..r ", "m@n.c0m ", "@@x.io "], n)),
        },
        Case {
            name: "near_miss_cards",
            run: Run::Detect,
            make: |n| {
                s(cycle(&["4111 1111 1111 1112 ", "5555-5555-5555-4445 ", "4111111111111 ", "3530 8237 4696 "], n))
            },
        },
        Case {
            name: "near_miss_ibans",
            run: Run::Detect,
            make: |n| s(cycle(&["GB82 WEST 1234 5698 7654 33 ", "DE89370400440532013001 ", "GB82WEST12345698765 "], n)),
        },
        Case {
            name: "cues_no_values",
            run: Run::Detect,
            make: |n| s(fill("password= SSN TFN born on Dear Mr passport aged ", n)),
        },
        Case { name: "fullwidth_digits", run: Run::Detect, make: |n| s(fill("４１１１\u{200b}", n - n % 15)) },
        Case { name: "json_deep_at_limit", run: Run::Walk, make: |n| s(deep_json(n)) },
        Case { name: "json_many_leaves", run: Run::Walk, make: |n| s(many_leaves_json(n)) },
        Case { name: "json_escaped_string", run: Run::WalkUnescape, make: |n| s(escaped_json(n)) },
        Case {
            name: "request_near_misses",
            run: Run::Request,
            make: |n| {
                let text = cycle(&["a@b ", "4111 1111 1111 1112 ", "1.2.3.4.5 ", "Dear Mr x ", "12-34-56 "], n - 64);
                s(format!(r#"{{"model":"m","messages":[{{"role":"user","content":"{text}"}}]}}"#))
            },
        },
        Case { name: "sse_tiny_events", run: Run::SseOneChunk, make: |n| s(fill("data:x\n\n", n)) },
        Case { name: "sse_blank_lines", run: Run::SseOneChunk, make: |n| s(fill("\n", n)) },
        Case {
            name: "sse_long_line_1b_chunks",
            run: Run::SseByteChunks,
            make: |n| s(format!("data:{}", fill("x", n - 5))),
        },
        Case {
            name: "json_array_tiny_elements",
            run: Run::JsonArrayOneChunk,
            make: |n| s(format!("[{}1]", fill("1,", n - 3))),
        },
        Case { name: "stream_chat_word_deltas", run: Run::ChatStream, make: |n| s(chat_stream("ab ", n)) },
        Case { name: "stream_chat_digit_deltas", run: Run::ChatStream, make: |n| s(chat_stream("1", n)) },
        Case {
            name: "eventstream_tiny_frames",
            run: Run::EventStreamOneChunk,
            make: |n| {
                let frame = Message { headers: Vec::new(), payload: b"{}".to_vec() }.encode();
                frame.repeat(n / frame.len())
            },
        },
    ]
}

fn engine() -> Engine {
    let classes: Vec<String> =
        EntityClass::ALL.iter().map(|c| format!(r#""{}":{{"action":"redact"}}"#, c.name())).collect();
    let policy = format!(
        r#"{{"meshward_policy":1,"name":"adv","version":"1","detection":{{"classes":{{{}}}}},"limits":{{"max_body_bytes":2097152}}}}"#,
        classes.join(",")
    );
    Engine::from_json(
        policy.as_bytes(),
        &Secrets { placeholder_key: Some("bench-placeholder-key-0123456789".into()), ..Secrets::default() },
    )
    .expect("the bench policy compiles")
}

/// One pass over `input`; returns something to keep the work alive.
fn once(run: Run, input: &[u8], set: &DetectorSet, engine: &Engine, out: &mut Vec<Finding>) -> usize {
    let text = || std::str::from_utf8(input).expect("cases are UTF-8");
    match run {
        Run::Detect => {
            out.clear();
            set.scan(text(), out);
            out.len()
        }
        Run::Walk => {
            let mut v = Leaves(0);
            json::walk(text(), DEPTH, &mut v).expect("cases are valid JSON");
            v.0
        }
        Run::WalkUnescape => {
            let t = text();
            let mut v = Leaves(0);
            json::walk(t, DEPTH, &mut v).expect("cases are valid JSON");
            let mut map = json::OffsetMap::default();
            let decoded = json::unescape(&t[1..t.len() - 1], Some(&mut map));
            decoded.len() + map.get(decoded.len()).unwrap_or(0)
        }
        Run::Request => {
            let meta = RequestMeta {
                request_id: "bench",
                path: "/v1/chat/completions",
                content_type: Some("application/json"),
                ..RequestMeta::default()
            };
            engine.evaluate_request(&meta, input).findings.len()
        }
        Run::SseOneChunk | Run::SseByteChunks => {
            let mut p = SseParser::new(2 << 20);
            let mut n = 0;
            let chunk = if matches!(run, Run::SseByteChunks) { 1 } else { input.len() };
            for piece in input.chunks(chunk) {
                p.push(piece);
                while let Ok(Some(_)) = p.next_event() {
                    n += 1;
                }
            }
            n + usize::from(p.finish().ok().flatten().is_some())
        }
        Run::JsonArrayOneChunk => {
            let mut p = JsonArrayParser::new(2 << 20);
            p.push(input);
            let mut n = 0;
            while let Ok(Some(_)) = p.next_piece() {
                n += 1;
            }
            n
        }
        Run::ChatStream => {
            let meta = ResponseMeta {
                request_id: "bench",
                request_path: "/v1/chat/completions",
                content_type: Some("text/event-stream"),
                content_encoding: None,
                status: 200,
            };
            let mut s = engine.response_stream(&meta, RestoreMap::new());
            s.push(engine, input).len() + s.finish(engine).len()
        }
        Run::EventStreamOneChunk => {
            let mut d = EventStreamDecoder::new(2 << 20);
            d.push(input);
            let mut n = 0;
            while let Ok(Some(_)) = d.next_frame() {
                n += 1;
            }
            n
        }
    }
}

/// Seconds per pass: repeated for at least `budget`, at least once.
fn time(run: Run, input: &[u8], set: &DetectorSet, engine: &Engine, budget: Duration) -> f64 {
    let mut out = Vec::new();
    let mut passes = 0u32;
    let start = Instant::now();
    while passes == 0 || start.elapsed() < budget {
        black_box(once(run, black_box(input), set, engine, &mut out));
        passes += 1;
    }
    start.elapsed().as_secs_f64() / f64::from(passes)
}

fn main() {
    let only: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let set = DetectorSet::new(EntityClass::ALL);
    let engine = engine();
    println!("{:<26} {:>12} {:>12} {:>8}", "case", "64KiB MB/s", "1MiB MB/s", "ratio");
    let mut worst_speed: Option<(&str, f64)> = None;
    let mut worst_ratio: Option<(&str, f64)> = None;
    for case in cases() {
        if !only.is_empty() && !only.iter().any(|o| case.name.contains(o.as_str())) {
            continue;
        }
        let (small, large) = ((case.make)(SMALL), (case.make)(LARGE));
        let t_small = time(case.run, &small, &set, &engine, Duration::from_millis(300));
        let t_large = time(case.run, &large, &set, &engine, Duration::from_millis(600));
        let mbps = |len: usize, t: f64| len as f64 / t / 1e6;
        let speed = mbps(large.len(), t_large);
        // Normalised by the actual sizes (cases round to their unit).
        let ratio = t_large / (t_small * large.len() as f64 / small.len() as f64);
        println!("{:<26} {:>12.1} {:>12.1} {:>8.2}", case.name, mbps(small.len(), t_small), speed, ratio);
        if worst_speed.is_none_or(|(_, s)| speed < s) {
            worst_speed = Some((case.name, speed));
        }
        if worst_ratio.is_none_or(|(_, r)| ratio > r) {
            worst_ratio = Some((case.name, ratio));
        }
    }
    if let (Some((sn, s)), Some((rn, r))) = (worst_speed, worst_ratio) {
        println!("worst throughput: {sn} at {s:.1} MB/s; worst ratio: {rn} at {r:.2} (1.00 = linear)");
    }
}
