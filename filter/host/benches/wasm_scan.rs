//! Scan throughput inside the release filter `.wasm`, on our wasmtime host:
//! `cargo bench -p meshward-wasm-host --bench wasm_scan` (needs `make wasm`).
//!
//! The 1 MiB `mixed` corpus of `meshward-engine`'s detect bench (the same
//! file, included below) is posted as a request body many times, to a
//! plugin configured with every built-in class set to `redact`. Each
//! request is a whole exchange: request headers, the body in one chunk
//! (buffered, as Envoy does), the filter's decision and the rewritten body
//! upstream, then the stream's end. Two bodies:
//!
//! * `text`: the corpus as `text/plain` to `/upload` — detection over the
//!   whole text, then splicing keyed placeholders into it;
//! * `chat-json`: the corpus as the `content` of one OpenAI chat message —
//!   the JSON walk (tokenise, unescape the string), detection, splice and
//!   re-escape.
//!
//! MB/s is corpus bytes (10^6) per second of those exchanges, so it
//! includes the host's copies in and out of the guest's memory, which
//! Envoy pays too. The median of three rounds is printed.
//!
//! `MESHWARD_BENCH_CLASSES=EMAIL,CREDIT_CARD` measures only those classes
//! (what one class costs, or the default policy's pair).
//!
//! `MESHWARD_HOST_FUEL=1` adds the wasm operators one exchange runs per
//! corpus byte: deterministic, where times on a shared machine are not
//! (and the times are then inflated by the counting).

use std::time::{Duration, Instant};

use meshward_engine::detect::EntityClass;
use meshward_wasm_host::{CompiledModule, Plugin};

#[path = "../../engine/benches/corpus/mixed.rs"]
#[allow(dead_code)]
mod mixed;

fn policy() -> Vec<u8> {
    let only = std::env::var("MESHWARD_BENCH_CLASSES").ok();
    let classes: serde_json::Map<String, serde_json::Value> = EntityClass::ALL
        .into_iter()
        .filter(|c| *c != EntityClass::Custom)
        .filter(|c| only.as_ref().is_none_or(|only| only.split(',').any(|name| name == c.name())))
        .map(|c| (c.name().to_string(), serde_json::json!({ "action": "redact" })))
        .collect();
    let policy = serde_json::json!({
        "meshward_policy": 1,
        "name": "bench-all-classes",
        "version": "1",
        "mode": "enforce",
        "detection": { "classes": classes },
        "limits": { "max_body_bytes": 8 << 20, "max_string_bytes": 8 << 20, "max_json_depth": 128 }
    });
    serde_json::to_vec(&policy).unwrap_or_default()
}

fn median_mbps(bytes: usize, round: Duration, mut run: impl FnMut()) -> f64 {
    let mut rounds: Vec<f64> = (0..3)
        .map(|_| {
            let start = Instant::now();
            let mut n = 0u32;
            while n == 0 || start.elapsed() < round {
                run();
                n += 1;
            }
            bytes as f64 * f64::from(n) / start.elapsed().as_secs_f64() / 1e6
        })
        .collect();
    rounds.sort_by(f64::total_cmp);
    rounds[1]
}

fn main() {
    let module = CompiledModule::meshward_filter()
        .unwrap_or_else(|e| panic!("{e}\n(the wasm bench needs the release .wasm: run `make wasm`)"));
    let plugin = Plugin::builder_from(&module)
        .plugin_config(policy())
        .env("MESHWARD_PLACEHOLDER_KEY", "bench-placeholder-key-0123456789")
        .buffer_limit(None)
        .build()
        .unwrap_or_else(|e| panic!("the filter refused the bench policy: {e}"));
    let corpus = mixed::mixed(&mut mixed::Rng(0x6D69_7865_6400_0001), 1 << 20);
    let chat = serde_json::to_vec(&serde_json::json!({
        "model": "gpt-4o",
        "messages": [{ "role": "user", "content": corpus }]
    }))
    .unwrap_or_default();
    let cases: [(&str, &str, &str, &[u8]); 2] = [
        ("text", "/upload", "text/plain", corpus.as_bytes()),
        ("chat-json", "/v1/chat/completions", "application/json", &chat),
    ];
    let fuel_header = if plugin.fuel_consumed().is_some() { "operators/byte" } else { "" };
    println!("{:<12} {:>10} {:>10} {:>14} {fuel_header:>15}", "wasm body", "bytes", "MB/s", "placeholders");
    for (name, path, content_type, body) in cases {
        let headers = [
            (":method", "POST"),
            (":path", path),
            (":authority", "api.openai.com"),
            (":scheme", "https"),
            ("content-type", content_type),
        ];
        let exchange = || {
            let mut ex = plugin.send_request(&headers, body, 0).unwrap_or_else(|e| panic!("{name}: {e}"));
            if let Some(problem) = ex.local_response() {
                panic!("{name}: the filter refused the body: {problem:?}");
            }
            let upstream = ex.upstream_request_body();
            let _ = ex.finish();
            upstream
        };
        // What the filter did, checked once: the body was rewritten.
        let fuel_before = plugin.fuel_consumed();
        let upstream = exchange();
        let per_byte = fuel_before
            .and_then(|before| Some(plugin.fuel_consumed()? - before))
            .map(|used| format!("{:>15.2}", used as f64 / corpus.len() as f64));
        let up = String::from_utf8_lossy(&upstream);
        let placeholders: usize =
            EntityClass::ALL.into_iter().map(|c| up.matches(&format!("[{}_", c.name())).count()).sum();
        assert!(placeholders > 0, "{name}: nothing was redacted, the bench would measure nothing");
        let mbps = median_mbps(corpus.len(), Duration::from_secs(2), || {
            std::hint::black_box(exchange());
        });
        println!("{name:<12} {:>10} {mbps:>10.1} {placeholders:>14} {}", body.len(), per_byte.unwrap_or_default());
    }
}
