//! `make bench`: the filter's cost through the real Envoy, measured against
//! the same Envoy without the filter in the same run.
//!
//! For chat requests of 1 KiB, 16 KiB and 256 KiB (prose with one e-mail
//! address and one card number, so the whole default policy runs and the
//! body is rewritten) it reports latency p50/p99 over one keep-alive
//! connection and the maximum requests/s over several connections, then the
//! added latency and the throughput ratio. The upstream is a minimal
//! provider that answers every request with a small fixed completion, so the
//! figures are the request path's. Envoy runs with `--concurrency 1`; the
//! load generator shares the machine, so compare ratios, not absolutes.
//!
//! Usage: `meshward-bench [--quick] [--policy FILE]` (MESHWARD_ENVOY / MESHWARD_WASM as for the tests).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use meshward_e2e::{Envoy, EnvoyConfig};

const STREAM_TOKENS: usize = 2000;
const TOKENS_PER_WRITE: usize = 10;
const WRITE_GAP: Duration = Duration::from_micros(500);
const REPLY: &[u8] = br#"{"id":"chatcmpl-bench","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}"#;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    // `--policy FILE`: measure another policy than policies/default.json.
    let policy = args
        .iter()
        .position(|a| a == "--policy")
        .and_then(|i| args.get(i + 1))
        .map(|path| std::fs::read_to_string(path).unwrap_or_else(|e| die(&format!("{path}: {e}"))));
    let upstream = start_upstream();
    let sizes = [1024usize, 16 * 1024, 256 * 1024];
    let bodies: Vec<Vec<u8>> = sizes.iter().map(|&n| chat_body(n)).collect();

    let stream_body = {
        let mut chat: serde_json::Value = serde_json::from_slice(&bodies[0]).unwrap_or_else(|e| die(&e.to_string()));
        chat["stream"] = serde_json::Value::Bool(true);
        chat.to_string().into_bytes()
    };
    let mut results = Vec::new();
    let mut streams = Vec::new();
    for with_filter in [false, true] {
        let mut cfg = EnvoyConfig::new(upstream).unwrap_or_else(|e| die(&e.to_string()));
        cfg.with_filter = with_filter;
        if let Some(policy) = &policy {
            cfg.policy_json = policy.clone();
        }
        let envoy = Envoy::start(&cfg).unwrap_or_else(|e| die(&e.to_string()));
        for (size, body) in sizes.iter().zip(&bodies) {
            let (n_lat, secs) = match (quick, *size) {
                (true, _) => (200, 1.0),
                (false, s) if s > 64 * 1024 => (500, 3.0),
                (false, _) => (3000, 3.0),
            };
            let latency = measure_latency(envoy.listener(), body, n_lat);
            let rps = measure_throughput(envoy.listener(), body, 4, Duration::from_secs_f64(secs));
            results.push((with_filter, *size, latency, rps));
        }
        let mut client = Client::connect(envoy.listener());
        let runs = if quick { 10 } else { 50 };
        let mut samples: Vec<(f64, f64)> = (0..runs + 3).map(|_| client.stream(&stream_body)).skip(3).collect();
        samples.sort_by(|a, b| a.0.total_cmp(&b.0));
        let ttfb = samples[samples.len() / 2].0;
        samples.sort_by(|a, b| a.1.total_cmp(&b.1));
        streams.push((with_filter, ttfb, samples[samples.len() / 2].1));
        drop(envoy);
    }

    println!("meshward request path through Envoy 1.40 (V8), --concurrency 1, same run");
    println!("| body | proxy | p50 ms | p99 ms | req/s | added p50 ms | added p99 ms | throughput vs no filter |");
    println!("|---|---|---|---|---|---|---|---|");
    for size in sizes {
        let base = results.iter().find(|r| !r.0 && r.1 == size);
        let with = results.iter().find(|r| r.0 && r.1 == size);
        if let (Some(b), Some(w)) = (base, with) {
            println!("| {} KiB | no filter | {:.3} | {:.3} | {:.0} | | | 1.00× |", size / 1024, b.2 .0, b.2 .1, b.3);
            println!(
                "| {} KiB | meshward | {:.3} | {:.3} | {:.0} | {:+.3} | {:+.3} | {:.2}× |",
                size / 1024,
                w.2 .0,
                w.2 .1,
                w.3,
                w.2 .0 - b.2 .0,
                w.2 .1 - b.2 .1,
                w.3 / b.3
            );
        }
    }
    print_streams(&streams);
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

fn die(message: &str) -> ! {
    eprintln!("meshward-bench: {message}");
    std::process::exit(2)
}

/// Realistic prose padded to `size` bytes, with one e-mail and one card.
fn chat_body(size: usize) -> Vec<u8> {
    let words = [
        "please",
        "summarise",
        "the",
        "quarterly",
        "report",
        "for",
        "our",
        "customers",
        "and",
        "explain",
        "how",
        "revenue",
        "changed",
        "compared",
        "with",
        "last",
        "year",
        "including",
        "regional",
        "trends",
        "in",
        "detail",
    ];
    let mut text = String::from("Contact jane.doe@example.com about card 4111 1111 1111 1111. ");
    let mut i = 0;
    while text.len() + 120 < size {
        text.push_str(words[i % words.len()]);
        text.push(if i % 17 == 16 { '.' } else { ' ' });
        i += 1;
    }
    serde_json::json!({
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "You are a helpful analyst."},
            {"role": "user", "content": text}
        ]
    })
    .to_string()
    .into_bytes()
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
    while let Some(body) = read_message(&mut reader) {
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

/// Reads one HTTP/1.1 message (headers + body); `None` at EOF or on error.
fn read_message(reader: &mut BufReader<TcpStream>) -> Option<Vec<u8>> {
    let mut content_length = 0usize;
    let mut chunked = false;
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
        let lower = trimmed.to_ascii_lowercase();
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
    Some(body)
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
        let head = format!(
            "POST /v1/chat/completions HTTP/1.1\r\nhost: api.openai.com\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            body.len()
        );
        let sent = self.writer.write_all(head.as_bytes()).and_then(|()| self.writer.write_all(body));
        if sent.is_err() || read_message(&mut self.reader).is_none() {
            die("a request through Envoy failed");
        }
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

/// Requests per second with `connections` clients for `duration`.
fn measure_throughput(addr: SocketAddr, body: &[u8], connections: usize, duration: Duration) -> f64 {
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
    let start = Instant::now();
    std::thread::sleep(duration);
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}
