//! The host driven by a hand-written WAT guest (`tests/guest.wat`) that
//! exercises every import group, plus small modules for edge cases.

use std::sync::OnceLock;
use std::time::Duration;

use meshward_wasm_host::{
    Action, CompiledModule, HostError, HttpCallState, LogLevel, MetricValue, Plugin, PluginBuilder, QueueReady,
    SharedState,
};

fn guest() -> &'static CompiledModule {
    static M: OnceLock<CompiledModule> = OnceLock::new();
    M.get_or_init(|| CompiledModule::from_bytes(include_bytes!("guest.wat")).expect("guest.wat compiles"))
}

fn builder() -> PluginBuilder {
    Plugin::builder_from(guest()).plugin_config("ok").env("MESHWARD_PLACEHOLDER_KEY", "abc").log_level(LogLevel::Trace)
}

fn plugin() -> Plugin {
    builder().build().expect("plugin starts")
}

fn global(p: &Plugin, name: &str) -> i64 {
    p.exported_global(name).unwrap_or_else(|| panic!("no global {name}"))
}

const POST: &[(&str, &str)] = &[
    (":method", "POST"),
    (":path", "/v1/chat/completions"),
    (":authority", "api.openai.com"),
    ("content-type", "application/json"),
    ("content-length", "11"),
    ("accept-encoding", "gzip"),
];

fn with(extra: (&'static str, &'static str)) -> Vec<(&'static str, &'static str)> {
    let mut h = POST.to_vec();
    h.push(extra);
    h
}

#[test]
fn start_runs_initialize_vm_start_configure_with_env_stdout_clock_and_cas() {
    let p = builder().manual_clock(1_700_000_000_123_456_789).build().expect("starts");
    assert_eq!(global(&p, "initialized"), 1);
    let logs = p.logs();
    assert!(logs.iter().any(|l| l.level == LogLevel::Info && l.message == "ok" && l.context_id == 1));
    assert!(
        logs.iter().any(|l| l.level == LogLevel::Warn && l.message.contains("MESHWARD_PLACEHOLDER_KEY=abc")),
        "env reaches the guest: {logs:?}"
    );
    assert_eq!(p.stdout(), "hello stdout\n");
    assert_eq!(global(&p, "prestat_status"), 8, "no preopens: BADF");
    assert_eq!(global(&p, "counter_dec"), 2, "counters cannot go down");
    assert_eq!(p.tick_period(), Some(Duration::from_secs(1)));
    assert_eq!(global(&p, "now_ns"), 1_700_000_000_123_456_789);
    assert_eq!(global(&p, "cas_bad"), 8, "stale CAS is CAS_MISMATCH");
    assert_eq!(p.shared_data("k").map(|(v, _)| v), Some(b"v3".to_vec()));
    assert_eq!(p.metric("requests"), Some(MetricValue::Counter(0)));
    assert!(p.unimplemented_calls().is_empty());
    assert_eq!(p.root_context_id(), 1);
}

#[test]
fn configure_false_is_rejected() {
    let err = builder().plugin_config("reject me").build().unwrap_err();
    assert_eq!(err, HostError::ConfigureRejected);
}

#[test]
fn vm_start_false_is_rejected() {
    let wat = r#"(module (memory (export "memory") 1)
        (func (export "proxy_on_vm_start") (param i32 i32) (result i32) (i32.const 0)))"#;
    let m = CompiledModule::from_bytes(wat.as_bytes()).expect("compiles");
    let err = Plugin::builder_from(&m).build().unwrap_err();
    assert_eq!(err, HostError::VmStartRejected);
}

#[test]
fn body_is_buffered_with_total_sizes_and_rewritten_body_goes_upstream() {
    let p = plugin();
    let mut ex = p.http_context().expect("context");
    assert_eq!(ex.request_headers(POST, false).expect("headers"), Action::Continue);
    assert_eq!(ex.request_body(b"hel", false).expect("1"), Action::Pause);
    assert_eq!(ex.upstream_request_body(), b"");
    assert_eq!(ex.request_body(b"lo ", false).expect("2"), Action::Pause);
    assert_eq!(ex.request_body(b"world", true).expect("3"), Action::Continue);
    let sizes: Vec<(u32, bool)> = ex
        .callbacks()
        .iter()
        .filter(|c| c.callback == "proxy_on_request_body")
        .map(|c| (c.size, c.end_of_stream))
        .collect();
    assert_eq!(sizes, vec![(3, false), (6, false), (11, true)]);
    assert_eq!(ex.upstream_request_body(), b"HELLO WORLD");
    assert_eq!(ex.upstream_request_chunks().len(), 1);
    assert!(ex.upstream_request_complete());
    let up = ex.upstream_request_headers().expect("forwarded");
    assert!(!up.contains("content-length"));
    assert_eq!(up.get("accept-encoding"), Some("identity"));
    assert_eq!(up.get("x-request-id").map(str::len), Some(36), "Envoy adds one");
    assert_eq!(p.counter("last_body_size"), Some(11));
    assert_eq!(global(&p, "body_status"), 0);
    ex.finish().expect("finish");
    assert_eq!(ex.on_done_result(), Some(true));
}

#[test]
fn every_chunking_gives_the_same_upstream_body() {
    let p = plugin();
    let body = b"the quick brown fox jumps over the lazy dog";
    let whole = p.send_request(POST, body, 0).expect("whole");
    let expected = whole.upstream_request_body();
    assert_eq!(expected, body.to_ascii_uppercase());
    for chunk in [1, 2, 5, 7, 42] {
        let ex = p.send_request(POST, body, chunk).expect("chunked");
        assert_eq!(ex.upstream_request_body(), expected, "chunk size {chunk}");
    }
}

#[test]
fn with_trailers_the_body_never_ends_and_trailers_finish_it() {
    let p = plugin();
    let mut ex = p.http_context().expect("context");
    ex.request_headers(POST, false).expect("headers");
    assert_eq!(ex.request_body(b"abc", false).expect("body"), Action::Pause);
    assert_eq!(ex.request_body(b"def", false).expect("body"), Action::Pause);
    assert!(!ex.upstream_request_complete());
    assert_eq!(ex.request_trailers(&[("grpc-status", "0")]).expect("trailers"), Action::Continue);
    assert!(ex.callbacks().iter().filter(|c| c.callback == "proxy_on_request_body").all(|c| !c.end_of_stream));
    assert_eq!(ex.upstream_request_body(), b"ABCDEF");
    assert_eq!(ex.upstream_request_trailers().and_then(|t| t.get("grpc-status").map(String::from)), Some("0".into()));
    assert!(ex.upstream_request_complete());
    assert!(matches!(ex.request_body(b"x", true), Err(HostError::Protocol(_))));
}

#[test]
fn local_response_stops_the_request_and_passes_through_response_callbacks() {
    let p = plugin();
    let mut ex = p.http_context().expect("context");
    // The guest returns Continue after sending a local reply.
    assert_eq!(ex.request_headers(&with(("x-deny", "1")), false).expect("headers"), Action::Continue);
    let local = ex.local_response().expect("local reply");
    assert_eq!(local.status, 403);
    assert_eq!(local.details, "denied");
    assert_eq!(local.body, b"nope");
    assert_eq!(local.headers.get("x-why"), Some("test"));
    assert!(local.from_filter);
    assert!(ex.upstream_request_headers().is_none(), "nothing went upstream");
    assert!(!ex.upstream_request_reset(), "no upstream request to reset");
    let down = ex.downstream_response_headers().expect("reply sent");
    assert_eq!(down.get(":status"), Some("403"));
    assert_eq!(down.get("x-why"), Some("test"));
    assert_eq!(down.get("content-length"), Some("4"));
    assert_eq!(down.get("content-type"), Some("text/plain"));
    assert_eq!(down.get("x-guest"), Some("1"), "on_response_headers ran");
    assert_eq!(ex.downstream_response_body(), b"<nope>");
    assert_eq!(global(&p, "mid_status"), 2, "Envoy refuses mid-body edits");
    assert!(ex.downstream_response_complete());
    assert!(ex.is_request_closed());
    assert_eq!(ex.request_body(b"more", true), Err(HostError::StreamEnded { context_id: ex.context_id() }));
    assert!(matches!(ex.response_headers(&[(":status", "200")], true), Err(HostError::StreamEnded { .. })));
    // The one-shot helper stops feeding after the reply.
    let ex2 = p.send_request(&with(("x-deny", "1")), b"0123456789", 1).expect("send");
    assert_eq!(ex2.local_response().map(|l| l.status), Some(403));
    assert_eq!(ex2.upstream_request_body(), b"");
}

#[test]
fn response_path_and_request_edits_after_forwarding() {
    let p = plugin();
    let mut ex = p.send_request(POST, b"hello", 2).expect("request");
    ex.receive_response(&[(":status", "200")], b"response body", 3).expect("response");
    let down = ex.downstream_response_headers().expect("headers");
    assert_eq!(down.get("x-guest"), Some("1"));
    assert_eq!(ex.downstream_response_body(), b"<response body>");
    assert!(ex.downstream_response_complete());
    // The guest added x-late to the request headers in on_response_headers:
    // accepted, but the upstream already had them.
    assert_eq!(global(&p, "late_status"), 0);
    assert!(ex.filter_request_headers().expect("seen").contains("x-late"));
    assert!(!ex.upstream_request_headers().expect("sent").contains("x-late"));
    assert_eq!(ex.property(&["response", "code"]), Some(200i64.to_le_bytes().to_vec()));
    assert_eq!(ex.property(&["request", "path"]), Some(b"/v1/chat/completions".to_vec()));
}

#[test]
fn a_response_needs_the_request_upstream_first() {
    let p = plugin();
    let mut ex = p.http_context().expect("context");
    assert_eq!(ex.request_headers(&with(("x-call", "1")), true).expect("headers"), Action::Pause);
    assert!(ex.request_paused());
    assert!(matches!(ex.response_headers(&[(":status", "200")], true), Err(HostError::Protocol(_))));
}

#[test]
fn http_call_is_captured_and_its_response_resumes_the_request() {
    let p = builder().clusters(["audit"]).build().expect("starts");
    let mut ex = p.http_context().expect("context");
    assert_eq!(ex.request_headers(&with(("x-call", "1")), true).expect("headers"), Action::Pause);
    assert_eq!(global(&p, "call_status"), 0);
    let calls = p.pending_http_calls();
    assert_eq!(calls.len(), 1);
    let call = &calls[0];
    assert_eq!(call.upstream, "audit");
    assert_eq!(call.headers.get(":path"), Some("/events"));
    assert_eq!(call.headers.get(":authority"), Some("sink"));
    assert_eq!(call.body, b"hi");
    assert_eq!(call.timeout, Duration::from_secs(5));
    assert_eq!(call.context_id, ex.context_id());
    // The guest also enqueued; the owner (root) was notified.
    assert_eq!(p.shared_queue("events"), Some(vec![b"evt".to_vec()]));
    assert_eq!(global(&p, "queue_ready"), 1);
    assert!(ex.upstream_request_headers().is_none());

    p.respond_to_http_call(call.token, &[(":status", "204")], b"stored").expect("respond");
    assert_eq!(global(&p, "last_token"), i64::from(call.token));
    assert_eq!(global(&p, "http_ctx"), i64::from(ex.context_id()));
    let logs: Vec<String> = p.logs().into_iter().map(|l| l.message).collect();
    assert!(logs.contains(&"stored".to_string()), "{logs:?}");
    assert!(logs.contains(&"204".to_string()), "{logs:?}");
    assert!(ex.upstream_request_headers().is_some(), "continue_stream resumed");
    assert!(ex.upstream_request_complete());
    assert!(!ex.request_paused());
    assert_eq!(p.http_calls()[0].state, HttpCallState::Responded);
    assert_eq!(p.respond_to_http_call(call.token, &[], b""), Err(HostError::UnknownHttpCall { token: call.token }));
}

#[test]
fn http_call_to_an_unknown_cluster_or_without_pseudo_headers_is_bad_argument() {
    let p = builder().clusters(["other"]).build().expect("starts");
    let _ex = p.send_request(&with(("x-call", "1")), b"", 0).expect("send");
    assert_eq!(global(&p, "call_status"), 2);
    assert!(p.http_calls().is_empty());

    let p = plugin();
    let _ex = p.send_request(&with(("x-bad-call", "1")), b"", 0).expect("send");
    assert_eq!(global(&p, "call_status"), 2);
}

#[test]
fn pending_calls_die_with_their_context_and_failures_have_no_headers() {
    let p = plugin();
    let mut ex = p.send_request(&with(("x-call", "1")), b"", 0).expect("send");
    let token = p.pending_http_calls()[0].token;
    ex.finish().expect("finish");
    assert_eq!(p.respond_to_http_call(token, &[(":status", "200")], b""), Err(HostError::HttpCallCancelled { token }));
    assert_eq!(p.http_calls()[0].state, HttpCallState::Cancelled);

    let ex = p.send_request(&with(("x-call", "1")), b"", 0).expect("send");
    let token = p.pending_http_calls()[0].token;
    p.fail_http_call(token).expect("fail");
    assert_eq!(global(&p, "last_token"), i64::from(token));
    assert!(ex.upstream_request_headers().is_some());
}

#[test]
fn ticks_drain_the_queue_and_follow_a_manual_clock() {
    let p = builder().manual_clock(0).build().expect("starts");
    let _ex = p.send_request(&with(("x-call", "1")), b"", 0).expect("send");
    p.tick().expect("tick");
    assert_eq!(global(&p, "ticks"), 1);
    assert_eq!(global(&p, "requests_seen"), 1, "proxy_get_metric");
    assert!(p.logs().iter().any(|l| l.message == "evt"));
    assert_eq!(p.shared_queue("events"), Some(vec![]));
    assert_eq!(p.advance_time(Duration::from_millis(3500)).expect("advance"), 3);
    assert_eq!(p.advance_time(Duration::from_millis(500)).expect("advance"), 1);
    assert_eq!(global(&p, "ticks"), 5);
}

#[test]
fn manual_queue_ready_mode_and_queues_shared_between_workers() {
    let shared = SharedState::new();
    let a = builder().shared_state(&shared).queue_ready(QueueReady::Manual).build().expect("a");
    let b = builder().shared_state(&shared).build().expect("b");
    // Both registered "events"; `a` was first and owns it.
    let _ex = b.send_request(&with(("x-call", "1")), b"", 0).expect("send");
    assert_eq!(global(&b, "queue_ready"), 0);
    assert_eq!(global(&a, "queue_ready"), 0);
    assert_eq!(a.deliver_queue_ready().expect("deliver"), 1);
    assert_eq!(global(&a, "queue_ready"), 1);
    assert_eq!(a.shared_queue("events"), Some(vec![b"evt".to_vec()]));
    // Metrics are shared too.
    assert_eq!(a.counter("requests"), Some(1));
    a.enqueue_shared_queue("events", b"from test").expect("enqueue");
    assert_eq!(a.deliver_queue_ready().expect("deliver"), 1);
    assert_eq!(a.drain_shared_queue("events"), Some(vec![b"evt".to_vec(), b"from test".to_vec()]));
    assert!(matches!(a.enqueue_shared_queue("nope", b""), Err(HostError::UnknownQueue { .. })));
}

#[test]
fn a_trap_is_a_typed_error_and_kills_the_vm() {
    let p = plugin();
    let mut ex = p.http_context().expect("context");
    let err = ex.request_headers(&with(("x-trap", "1")), true).unwrap_err();
    match err {
        HostError::Trap { callback, .. } => assert_eq!(callback, "proxy_on_request_headers"),
        other => panic!("expected a trap, got {other:?}"),
    }
    assert!(p.is_failed());
    assert_eq!(p.http_context().unwrap_err(), HostError::VmFailed);
    assert_eq!(p.tick().unwrap_err(), HostError::VmFailed);
}

#[test]
fn proc_exit_is_a_typed_error() {
    let p = plugin();
    let err = p.send_request(&with(("x-exit", "1")), b"", 0).unwrap_err();
    assert_eq!(err, HostError::ProcExit { callback: "proxy_on_request_headers", code: 3 });
}

#[test]
fn bad_pointers_are_statuses_and_unknown_imports_are_unimplemented() {
    let p = plugin();
    let ex = p.send_request(&with(("x-oob", "1")), b"", 0).expect("send");
    assert_eq!(global(&p, "last_status"), 6, "INVALID_MEMORY_ACCESS");
    assert_eq!(global(&p, "unimpl_status"), 12);
    assert_eq!(global(&p, "grpc_status"), 12);
    assert_eq!(global(&p, "wasi_unimpl"), 52, "ENOSYS");
    let calls = p.unimplemented_calls();
    for name in ["env.proxy_foo_unknown", "env.proxy_grpc_call", "wasi_snapshot_preview1.path_open"] {
        assert!(calls.contains(&name.to_string()), "{calls:?}");
    }
    assert!(!p.is_failed());
    assert!(ex.upstream_request_headers().is_some());
}

#[test]
fn request_id_and_properties() {
    let p = builder().property(&["xds", "cluster_name"], "openai").build().expect("starts");
    let mut ex = p.send_request(&with(("x-request-id", "req-42")), b"{}", 0).expect("send");
    assert_eq!(ex.property(&["request", "id"]), Some(b"req-42".to_vec()));
    assert_eq!(ex.property(&["xds", "cluster_name"]), Some(b"openai".to_vec()));
    assert_eq!(p.property(&["request", "id"]), None, "root has no stream");
    ex.set_property(&["request", "id"], b"override");
    ex.finish().expect("finish");
    // on_log reads request.id and logs it at error level.
    assert!(p.logs().iter().any(|l| l.level == LogLevel::Error && l.message == "override"));
    let ex = p.send_request(&with(("x-request-id", "req-43")), b"{}", 0).expect("send");
    drop(ex); // finishes
    assert!(p.logs().iter().any(|l| l.message == "req-43"));
    let ex = p.send_request(POST, b"{}", 0).expect("send");
    let generated =
        ex.upstream_request_headers().and_then(|h| h.get("x-request-id").map(String::from)).expect("generated");
    assert_eq!(generated.as_bytes()[14], b'4', "uuid v4: {generated}");
    let p = builder().generate_request_id(false).build().expect("starts");
    let ex = p.send_request(POST, b"{}", 0).expect("send");
    assert!(!ex.upstream_request_headers().expect("sent").contains("x-request-id"));
}

#[test]
fn paused_body_over_the_buffer_limit_gets_envoys_413() {
    let p = builder().buffer_limit(Some(10)).build().expect("starts");
    let mut ex = p.http_context().expect("context");
    ex.request_headers(POST, false).expect("headers");
    assert_eq!(ex.request_body(b"123456", false).expect("1"), Action::Pause);
    ex.request_body(b"789012", false).expect("2");
    let local = ex.local_response().expect("413");
    assert_eq!(local.status, 413);
    assert!(!local.from_filter);
    assert_eq!(ex.downstream_response_headers().and_then(|h| h.get(":status").map(String::from)), Some("413".into()));
    assert_eq!(ex.upstream_request_body(), b"");
    assert_eq!(
        ex.callbacks().iter().filter(|c| c.callback == "proxy_on_request_body").count(),
        1,
        "the filter never saw the chunk over the limit"
    );
    // The headers had gone upstream (Continue): that request is reset.
    assert!(ex.upstream_request_headers().is_some());
    assert!(!ex.upstream_request_complete());
    assert!(ex.upstream_request_reset(), "{:?}", ex.upstream_reset_reason());
}

#[test]
fn header_pairs_sizes_and_effective_context() {
    let p = plugin();
    let headers = with(("x-pairs", "1"));
    let ex = p.send_request(&headers, b"", 0).expect("send");
    // What the guest saw: these headers plus a generated 36-char request id.
    let mut seen = meshward_wasm_host::HeaderMap::from_pairs(&headers);
    seen.add("x-request-id", &[b'0'; 36]);
    let expected = seen.serialized_size();
    assert_eq!(global(&p, "pairs_status"), 0);
    assert_eq!(global(&p, "pairs_size"), expected as i64);
    assert_eq!(global(&p, "size_of_map"), expected as i64);
    let up = ex.upstream_request_headers().expect("forwarded");
    assert_eq!(up.to_vec(), vec![("x-why".to_string(), "test".to_string())]);
    assert_eq!(global(&p, "eff_bad"), 2, "unknown context: BAD_ARGUMENT");
    assert_eq!(global(&p, "root_hdr"), 2, "no request headers in the root");
}

#[test]
fn close_stream_resets() {
    let p = plugin();
    let ex = p.send_request(&with(("x-close", "1")), b"abc", 1).expect("send");
    assert!(ex.reset_reason().is_some());
    assert!(ex.upstream_request_headers().is_none());
    assert!(ex.is_ended());
}

#[test]
fn metrics_counters_gauges_histograms() {
    let p = plugin();
    for _ in 0..2 {
        p.send_request(POST, b"abcd", 2).expect("send");
    }
    assert_eq!(p.metric("requests"), Some(MetricValue::Counter(2)));
    assert_eq!(p.metric("last_body_size"), Some(MetricValue::Gauge(4)));
    // Request header counts include the generated x-request-id.
    assert_eq!(p.metric("hist"), Some(MetricValue::Histogram(vec![7, 7])));
    assert_eq!(p.metrics().len(), 3);
}

#[test]
fn a_module_without_callbacks_passes_everything_through() {
    let wat = r#"(module (memory (export "memory") 1))"#;
    let m = CompiledModule::from_bytes(wat.as_bytes()).expect("compiles");
    let p = Plugin::builder_from(&m).build().expect("starts");
    let mut ex = p.send_request(POST, b"body", 1).expect("send");
    assert_eq!(ex.upstream_request_body(), b"body");
    assert_eq!(ex.upstream_request_chunks().len(), 4, "one release per chunk");
    ex.receive_response(&[(":status", "200")], b"ok", 0).expect("response");
    assert_eq!(ex.downstream_response_body(), b"ok");
    assert_eq!(p.tick(), Err(HostError::TickNotEnabled));
    assert!(ex.callbacks().iter().all(|c| c.action == Action::Continue));
}

#[test]
fn unsupported_imports_and_bad_exports_fail_to_load() {
    let wat = r#"(module (import "env" "memory" (memory 1)))"#;
    let err = CompiledModule::from_bytes(wat.as_bytes()).unwrap_err();
    assert!(matches!(err, HostError::UnsupportedImport { .. }), "{err:?}");

    let wat = r#"(module (memory (export "memory") 1)
        (func (export "proxy_on_request_headers") (param i32) (result i32) (i32.const 0)))"#;
    let m = CompiledModule::from_bytes(wat.as_bytes()).expect("compiles");
    let err = Plugin::builder_from(&m).build().unwrap_err();
    assert!(matches!(err, HostError::BadExport { .. }), "{err:?}");

    let wat = r#"(module (func (export "proxy_on_vm_start") (param i32 i32) (result i32) (i32.const 1)))"#;
    let m = CompiledModule::from_bytes(wat.as_bytes()).expect("compiles");
    assert_eq!(Plugin::builder_from(&m).build().unwrap_err(), HostError::NoMemory);

    let err = CompiledModule::from_bytes(b"\0asm garbage").unwrap_err();
    assert!(matches!(err, HostError::Compile(_)));

    let err = CompiledModule::from_file("/nonexistent/x.wasm").unwrap_err();
    assert!(matches!(err, HostError::ReadModule { .. }));
}

#[test]
fn a_command_module_exiting_zero_in_start_is_fine() {
    let wat = r#"(module
        (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
        (memory (export "memory") 1)
        (global $ran (export "ran") (mut i32) (i32.const 0))
        (func (export "_start") (global.set $ran (i32.const 1)) (call $exit (i32.const 0))))"#;
    let m = CompiledModule::from_bytes(wat.as_bytes()).expect("compiles");
    let p = Plugin::builder_from(&m).build().expect("starts");
    assert_eq!(p.exported_global("ran"), Some(1));
}

#[test]
fn a_trap_in_configure_is_a_typed_error() {
    let wat = r#"(module (memory (export "memory") 1)
        (func (export "proxy_on_configure") (param i32 i32) (result i32) unreachable))"#;
    let m = CompiledModule::from_bytes(wat.as_bytes()).expect("compiles");
    match Plugin::builder_from(&m).build().unwrap_err() {
        HostError::Trap { callback, message, .. } => {
            assert_eq!(callback, "proxy_on_configure");
            assert!(message.contains("unreachable"), "{message}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn plugins_are_send() {
    fn assert_send<T: Send>() {}
    assert_send::<Plugin>();
    assert_send::<meshward_wasm_host::Exchange>();
}

// ---------------------------------------------- paused headers (stalls) --

fn body_callbacks(ex: &meshward_wasm_host::Exchange) -> Vec<(u32, bool)> {
    ex.callbacks().iter().filter(|c| c.callback == "proxy_on_request_body").map(|c| (c.size, c.end_of_stream)).collect()
}

#[test]
fn paused_request_headers_stall_the_body_until_the_filter_resumes() {
    // x-call: the guest dispatches an HTTP call and returns Pause (1) from
    // the headers; its proxy_on_http_call_response calls
    // proxy_continue_stream. proxy-wasm makes that Pause
    // StopAllIterationAndWatermark: no body callback until then.
    let p = plugin();
    let mut ex = p.http_context().expect("context");
    assert_eq!(ex.request_headers(&with(("x-call", "1")), false).expect("headers"), Action::Pause);
    assert!(ex.request_paused());
    assert!(ex.request_headers_paused(), "the request stalls at the headers");
    assert_eq!(ex.request_body(b"hello ", false).expect("held"), Action::Pause);
    assert_eq!(ex.request_body(b"world", true).expect("held"), Action::Pause);
    assert!(body_callbacks(&ex).is_empty(), "no body callback while stalled: {:?}", ex.callbacks());
    assert!(ex.request_headers_paused());
    assert_eq!(ex.request_held_body(), b"hello world");
    assert!(ex.upstream_request_headers().is_none(), "headers held");
    assert_eq!(ex.upstream_request_body(), b"");
    assert!(!ex.request_above_high_watermark());
    assert!(ex.local_response().is_none());

    // Resume: headers forwarded, then everything Envoy held in one body
    // callback with the total size and end of stream.
    let token = p.pending_http_calls()[0].token;
    p.respond_to_http_call(token, &[(":status", "200")], b"ok").expect("respond");
    assert!(!ex.request_headers_paused());
    assert!(!ex.request_paused());
    assert_eq!(body_callbacks(&ex), vec![(11, true)]);
    assert_eq!(ex.request_held_body(), b"");
    assert!(ex.upstream_request_headers().is_some());
    assert_eq!(ex.upstream_request_body(), b"HELLO WORLD", "the guest rewrote the resumed body");
    assert!(ex.upstream_request_complete());
    assert!(!ex.upstream_request_reset());
    assert_eq!(global(&p, "body_status"), 0);
}

#[test]
fn a_stalled_request_never_resumed_just_hangs() {
    // The one-shot helper feeds everything; nothing reaches the filter's
    // body callback nor the upstream, and no reply comes: with real Envoy
    // the client times out.
    let p = plugin();
    let ex = p.send_request(&with(("x-call", "1")), b"0123456789", 3).expect("send");
    assert!(ex.request_headers_paused());
    assert!(body_callbacks(&ex).is_empty());
    assert_eq!(ex.request_held_body(), b"0123456789");
    assert!(ex.upstream_request_headers().is_none());
    assert!(ex.local_response().is_none());
    assert!(ex.downstream_response_headers().is_none());
    assert!(!ex.is_ended());
}

#[test]
fn trailers_of_a_stalled_request_wait_for_the_resume() {
    let p = plugin();
    let mut ex = p.http_context().expect("context");
    ex.request_headers(&with(("x-call", "1")), false).expect("headers");
    assert_eq!(ex.request_body(b"abc", false).expect("held"), Action::Pause);
    assert_eq!(ex.request_trailers(&[("grpc-status", "0")]).expect("held"), Action::Pause);
    assert!(ex.callbacks().iter().all(|c| c.callback == "proxy_on_request_headers"), "{:?}", ex.callbacks());
    assert!(ex.upstream_request_trailers().is_none());

    let token = p.pending_http_calls()[0].token;
    p.respond_to_http_call(token, &[(":status", "200")], b"").expect("respond");
    let order: Vec<&str> = ex.callbacks().iter().map(|c| c.callback).collect();
    assert_eq!(order, ["proxy_on_request_headers", "proxy_on_request_body", "proxy_on_request_trailers"]);
    assert_eq!(body_callbacks(&ex), vec![(3, false)], "with trailers the body never ends");
    assert_eq!(ex.upstream_request_body(), b"ABC");
    assert!(ex.upstream_request_trailers().is_some());
    assert!(ex.upstream_request_complete());
}

#[test]
fn a_header_only_stalled_request_is_forwarded_whole_on_resume() {
    let p = plugin();
    let mut ex = p.http_context().expect("context");
    assert_eq!(ex.request_headers(&with(("x-call", "1")), true).expect("headers"), Action::Pause);
    assert!(ex.request_headers_paused());
    let token = p.pending_http_calls()[0].token;
    p.respond_to_http_call(token, &[(":status", "200")], b"").expect("respond");
    assert!(ex.upstream_request_headers().is_some());
    assert!(ex.upstream_request_complete());
    assert!(body_callbacks(&ex).is_empty());
}

#[test]
fn data_held_over_the_limit_stops_reading_instead_of_a_413() {
    // StopAllIterationAndWatermark: Envoy's buffer raises the high
    // watermark (it stops reading from the client), no local reply.
    let p = builder().buffer_limit(Some(10)).build().expect("starts");
    let mut ex = p.http_context().expect("context");
    ex.request_headers(&with(("x-call", "1")), false).expect("headers");
    ex.request_body(b"123456", false).expect("held");
    assert!(!ex.request_above_high_watermark());
    ex.request_body(b"789012", true).expect("held");
    assert!(ex.request_above_high_watermark());
    assert!(ex.local_response().is_none(), "{:?}", ex.local_response());
    assert!(ex.request_headers_paused());
    let token = p.pending_http_calls()[0].token;
    p.respond_to_http_call(token, &[(":status", "200")], b"").expect("respond");
    assert_eq!(body_callbacks(&ex), vec![(12, true)]);
    assert_eq!(ex.upstream_request_body(), b"123456789012");
    assert!(!ex.request_above_high_watermark(), "drained");
}

/// A guest whose request headers callback returns `headers_code`, whose
/// request body callback pauses until the end and then answers 403, and
/// whose response headers callback pauses.
fn pauser(headers_code: u32) -> CompiledModule {
    let wat = format!(
        r#"(module
        (import "env" "proxy_send_local_response"
          (func $local (param i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
        (memory (export "memory") 1)
        (data (i32.const 64) "denied")
        (global $heap (mut i32) (i32.const 1024))
        (func (export "proxy_on_memory_allocate") (param $n i32) (result i32)
          (local $p i32)
          (local.set $p (global.get $heap))
          (global.set $heap (i32.add (global.get $heap) (i32.and (i32.add (local.get $n) (i32.const 7)) (i32.const -8))))
          (local.get $p))
        (func (export "proxy_on_context_create") (param i32 i32))
        (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32) (i32.const {headers_code}))
        (func (export "proxy_on_request_body") (param $ctx i32) (param $size i32) (param $eos i32) (result i32)
          (if (i32.eqz (local.get $eos)) (then (return (i32.const 1))))
          (drop (call $local (i32.const 403) (i32.const 64) (i32.const 6) (i32.const 64) (i32.const 6)
            (i32.const 0) (i32.const 0) (i32.const -1)))
          (i32.const 1))
        (func (export "proxy_on_response_headers") (param i32 i32 i32) (result i32) (i32.const 1))
        (func (export "proxy_on_response_body") (param i32 i32 i32) (result i32) (i32.const 0)))"#
    );
    CompiledModule::from_bytes(wat.as_bytes()).expect("pauser compiles")
}

#[test]
fn stop_all_iteration_and_buffer_from_headers_holds_data_and_413s_over_the_limit() {
    let m = pauser(3);
    let p = Plugin::builder_from(&m).buffer_limit(Some(10)).build().expect("starts");
    let mut ex = p.http_context().expect("context");
    assert_eq!(ex.request_headers(POST, false).expect("headers"), Action::Other(3));
    assert!(ex.request_headers_paused());
    ex.request_body(b"123456", false).expect("held");
    assert!(ex.local_response().is_none());
    ex.request_body(b"789012", false).expect("held");
    let local = ex.local_response().expect("413");
    assert_eq!(local.status, 413);
    assert!(!local.from_filter);
    assert!(body_callbacks(&ex).is_empty());
    assert!(ex.upstream_request_headers().is_none());
    assert!(!ex.upstream_request_reset(), "nothing had gone upstream");
}

#[test]
fn paused_response_headers_stall_the_response_body() {
    let m = pauser(0);
    let p = Plugin::builder_from(&m).build().expect("starts");
    let mut ex = p.http_context().expect("context");
    ex.request_headers(POST, true).expect("headers");
    assert!(ex.upstream_request_complete());
    assert_eq!(ex.response_headers(&[(":status", "200")], false).expect("headers"), Action::Pause);
    assert!(ex.response_headers_paused());
    assert_eq!(ex.response_body(b"chunk", false).expect("held"), Action::Pause);
    assert_eq!(ex.response_body(b" two", true).expect("held"), Action::Pause);
    assert!(ex.callbacks().iter().all(|c| c.callback != "proxy_on_response_body"), "{:?}", ex.callbacks());
    assert_eq!(ex.response_held_body(), b"chunk two");
    assert!(ex.downstream_response_headers().is_none());
    assert_eq!(ex.downstream_response_body(), b"");
    // Over the limit it would only stop reading from the upstream.
    let p = Plugin::builder_from(&m).buffer_limit(Some(4)).build().expect("starts");
    let mut ex = p.http_context().expect("context");
    ex.request_headers(POST, true).expect("headers");
    ex.response_headers(&[(":status", "200")], false).expect("headers");
    ex.response_body(b"0123456789", false).expect("held");
    assert!(ex.response_above_high_watermark());
    assert!(ex.local_response().is_none());
    assert!(ex.reset_reason().is_none());
}

#[test]
fn a_local_reply_after_the_headers_went_upstream_resets_the_upstream_request() {
    let m = pauser(0);
    let p = Plugin::builder_from(&m).build().expect("starts");
    let mut ex = p.http_context().expect("context");
    assert_eq!(ex.request_headers(POST, false).expect("headers"), Action::Continue);
    let up = ex.upstream_request_headers().expect("Continue forwards the headers at once");
    assert_eq!(up.get(":path"), Some("/v1/chat/completions"));
    assert_eq!(ex.request_body(b"abc", false).expect("body"), Action::Pause);
    assert!(!ex.upstream_request_reset());
    ex.request_body(b"def", true).expect("body");
    let local = ex.local_response().expect("403");
    assert_eq!(local.status, 403);
    assert_eq!(ex.upstream_request_body(), b"", "no body byte went upstream");
    assert!(!ex.upstream_request_complete());
    assert!(ex.upstream_request_reset());
    assert!(ex.upstream_reset_reason().is_some_and(|r| r.contains("403")), "{:?}", ex.upstream_reset_reason());
    assert!(matches!(ex.response_headers(&[(":status", "200")], true), Err(HostError::StreamEnded { .. })));
    // The reply went to the client through the (pausing) response headers
    // callback: it stalls there, as it would in Envoy.
    assert!(ex.response_headers_paused());
}

#[test]
fn finishing_before_the_upstream_answered_resets_it() {
    let p = plugin();
    let mut ex = p.send_request(POST, b"abc", 0).expect("send");
    assert!(ex.upstream_request_complete());
    ex.finish().expect("finish");
    assert!(ex.upstream_request_reset());

    let mut ex = p.send_request(POST, b"abc", 0).expect("send");
    ex.receive_response(&[(":status", "200")], b"ok", 0).expect("response");
    ex.finish().expect("finish");
    assert!(!ex.upstream_request_reset(), "{:?}", ex.upstream_reset_reason());
}

#[test]
fn allow_on_headers_stop_iteration_holds_headers_but_delivers_the_body() {
    // Envoy 1.35+ PluginConfig.allow_on_headers_stop_iteration: Pause from
    // the headers is a plain StopIteration.
    let p = builder().allow_on_headers_stop_iteration(true).build().expect("starts");
    let mut ex = p.http_context().expect("context");
    assert_eq!(ex.request_headers(&with(("x-call", "1")), false).expect("headers"), Action::Pause);
    assert!(ex.request_paused());
    assert!(!ex.request_headers_paused());
    assert_eq!(ex.request_body(b"hel", false).expect("body"), Action::Pause);
    assert!(ex.upstream_request_headers().is_none(), "headers still held");
    assert_eq!(ex.request_body(b"lo", true).expect("body"), Action::Continue);
    assert_eq!(body_callbacks(&ex), vec![(3, false), (5, true)]);
    assert!(ex.upstream_request_headers().is_some());
    assert_eq!(ex.upstream_request_body(), b"HELLO");
    assert!(ex.upstream_request_complete());
}
