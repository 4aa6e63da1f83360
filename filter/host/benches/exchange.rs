//! The filter's own cost per exchange, on our wasmtime host:
//! `cargo bench -p meshward-wasm-host --bench exchange` (needs `make wasm`).
//!
//! The same chat request and provider reply as `meshward-bench` sends
//! through Envoy (one file, `e2e/src/bench_exchange.rs`, included below),
//! with `policies/default.json`: request headers, the body in one chunk,
//! the decision, the reply's headers and body, the end of the stream. What
//! Envoy adds on top (its HTTP work, V8's host-call wrappers) is left out,
//! so this is the floor the Envoy figure sits on, and the number to watch
//! when changing the glue. `-- 1` measures the 1 KiB body alone. Set `MESHWARD_HOST_PERFMAP=1` to profile it with
//! `perf record` and see the guest's functions by name, and
//! `MESHWARD_HOST_FUEL=1` to count the wasm operators one exchange runs
//! (deterministic, so a change can be judged on a noisy machine) and the
//! host calls it makes (each one a V8-to-Envoy crossing in production).

use std::time::{Duration, Instant};

use meshward_wasm_host::{CompiledModule, Plugin};

#[path = "../../../e2e/src/bench_exchange.rs"]
mod bench_exchange;

fn main() {
    let module = CompiledModule::meshward_filter()
        .unwrap_or_else(|e| panic!("{e}\n(the exchange bench needs the release .wasm: run `make wasm`)"));
    // `MESHWARD_BENCH_POLICY=FILE` measures another policy (what a class or
    // guard costs); the default policy otherwise.
    let policy_path = std::env::var("MESHWARD_BENCH_POLICY")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../../policies/default.json").to_owned());
    let policy = std::fs::read(&policy_path).unwrap_or_else(|e| panic!("{policy_path}: {e}"));
    let plugin = Plugin::builder_from(&module)
        .plugin_config(policy)
        .env("MESHWARD_PLACEHOLDER_KEY", "bench-placeholder-key-0123456789")
        .build()
        .unwrap_or_else(|e| panic!("the filter refused the default policy: {e}"));
    let headers = [
        (":method", "POST"),
        (":path", "/v1/chat/completions"),
        (":authority", "api.openai.com"),
        (":scheme", "http"),
        ("content-type", "application/json"),
        ("x-request-id", "bench-request"),
    ];
    let reply_len = bench_exchange::REPLY.len().to_string();
    let reply_headers = [(":status", "200"), ("content-type", "application/json"), ("content-length", &reply_len)];
    let seconds: f64 = std::env::var("MESHWARD_BENCH_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(2.0);
    let fuel_header = if plugin.fuel_consumed().is_some() { "wasm operators" } else { "" };
    println!("{:<8} {:>12} {:>14} {fuel_header}", "body", "µs/exchange", "exchanges/s");
    // `-- 16` measures only the 16 KiB body (any argument that is a size in KiB).
    let only: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    for size in [1024usize, 16 * 1024, 256 * 1024] {
        if !only.is_empty() && !only.contains(&(size / 1024)) {
            continue;
        }
        let body = bench_exchange::chat_body(size);
        let exchange = || {
            let mut ex = plugin.send_request(&headers, &body, 0).unwrap_or_else(|e| panic!("{size}: {e}"));
            if let Some(problem) = ex.local_response() {
                panic!("{size}: the filter refused the request: {problem:?}");
            }
            ex.receive_response(&reply_headers, bench_exchange::REPLY, 0).unwrap_or_else(|e| panic!("{size}: {e}"));
            let reply = ex.downstream_response_body();
            let _ = ex.finish();
            reply
        };
        // The exchange did the work: the card went upstream as a placeholder
        // and the reply came back whole.
        let mut ex = plugin.send_request(&headers, &body, 0).unwrap_or_else(|e| panic!("{size}: {e}"));
        let upstream = String::from_utf8_lossy(&ex.upstream_request_body()).into_owned();
        if std::env::var_os("MESHWARD_BENCH_POLICY").is_none() {
            assert!(!upstream.contains("4111 1111"), "{size}: the card was not redacted, the bench measures nothing");
        }
        let _ = ex.finish();
        assert_eq!(exchange(), bench_exchange::REPLY, "{size}: the reply did not pass unchanged");
        let mut rounds: Vec<f64> = (0..3)
            .map(|_| {
                let start = Instant::now();
                let mut n = 0u32;
                while n == 0 || start.elapsed() < Duration::from_secs_f64(seconds / 3.0) {
                    std::hint::black_box(exchange());
                    n += 1;
                }
                start.elapsed().as_secs_f64() * 1e6 / f64::from(n)
            })
            .collect();
        rounds.sort_by(f64::total_cmp);
        // With MESHWARD_HOST_FUEL=1: wasm operators of one exchange, which
        // do not move with the machine's load as times do (times are then
        // inflated by the counting).
        // Split by step: request (headers and body), response (headers and
        // body), finish (end of stream, log, teardown).
        let calls_before = plugin.host_calls();
        let fuel = plugin.fuel_consumed().map(|start| {
            let used = |since: u64| plugin.fuel_consumed().unwrap_or(since) - since;
            let mut ex = plugin.send_request(&headers, &body, 0).unwrap_or_else(|e| panic!("{size}: {e}"));
            let request = used(start);
            let at = start + request;
            ex.receive_response(&reply_headers, bench_exchange::REPLY, 0).unwrap_or_else(|e| panic!("{size}: {e}"));
            let response = used(at);
            let _ = ex.finish();
            let finish = used(at + response);
            let calls = plugin.host_calls().unwrap_or(0) - calls_before.unwrap_or(0);
            format!(
                "{} (request {request}, response {response}, finish {finish}); {calls} host calls",
                request + response + finish
            )
        });
        println!(
            "{:<8} {:>12.1} {:>14.0} {}",
            format!("{} KiB", size / 1024),
            rounds[1],
            1e6 / rounds[1],
            fuel.unwrap_or_default()
        );
    }
}
