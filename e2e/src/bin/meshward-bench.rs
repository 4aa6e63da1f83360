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
//! Usage: `meshward-bench [--quick]` (MESHWARD_ENVOY / MESHWARD_WASM as for the tests).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use meshward_e2e::{Envoy, EnvoyConfig};

const REPLY: &[u8] = br#"{"id":"chatcmpl-bench","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}"#;

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let upstream = start_upstream();
    let sizes = [1024usize, 16 * 1024, 256 * 1024];
    let bodies: Vec<Vec<u8>> = sizes.iter().map(|&n| chat_body(n)).collect();

    let mut results = Vec::new();
    for with_filter in [false, true] {
        let mut cfg = EnvoyConfig::new(upstream).unwrap_or_else(|e| die(&e.to_string()));
        cfg.with_filter = with_filter;
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
    while read_message(&mut reader).is_some() {
        if writer.write_all(head.as_bytes()).and_then(|()| writer.write_all(REPLY)).is_err() {
            return;
        }
    }
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
