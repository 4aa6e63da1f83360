//! Shared helpers: a real server on an ephemeral port, a tiny HTTP/1.1
//! client over std::net (so the tests exercise real sockets and real
//! chunked responses), signed deliveries and an independent RFC 6962 root.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use meshward_audit_proto::webhook::Secret;
use meshward_audit_proto::{
    Action, Actor, Classification, DecisionEvent, GuardOutcome, GuardStatus, PolicyRef, Usage, SCHEMA_VERSION,
};
use meshward_sink::note::NoteSigner;
use meshward_sink::server::{self, Running, ServeConfig};
use meshward_sink::storage::StoreConfig;
use sha2::{Digest, Sha256};

pub const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
pub const ORIGIN: &str = "test.meshward/log";

pub fn secret() -> Secret {
    Secret::parse(SECRET).unwrap()
}

pub fn signer() -> NoteSigner {
    NoteSigner::from_seed(ORIGIN, &[42u8; 32]).unwrap()
}

pub fn config(dir: &Path) -> ServeConfig {
    let mut store = StoreConfig::new(dir, ORIGIN);
    store.segment_max_bytes = 16 << 10; // small segments: exercise rollover
    ServeConfig {
        store,
        secrets: vec![secret()],
        signer: signer(),
        checkpoint_interval: Duration::from_secs(3600),
        entries_auth: false,
        max_body_bytes: 1 << 20,
    }
}

pub fn start(dir: &Path) -> Running {
    server::start(config(dir), "127.0.0.1:0".parse().unwrap()).unwrap()
}

pub fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

pub fn event(tenant: &str, instance: &str, seq: u64, action: Action, classes: &[(&str, u64)]) -> DecisionEvent {
    DecisionEvent {
        v: SCHEMA_VERSION,
        event_id: format!("{instance}-{seq}"),
        time: meshward_audit_proto::time::format_rfc3339_ms(now() * 1000),
        request_id: format!("req-{tenant}-{instance}-{seq}"),
        tenant: tenant.into(),
        actor: Actor { subject: Some("alice@corp".into()), role: Some("dev".into()) },
        route: Some("openai-chat".into()),
        provider: Some("openai".into()),
        model: Some("gpt-4o-mini".into()),
        policy: PolicyRef { name: "default".into(), version: "1".into(), digest: String::new() },
        action,
        monitor: false,
        guards: vec![GuardOutcome { name: "pii".into(), status: GuardStatus::Scanned, verdict: Some("ok".into()) }],
        findings: classes.iter().map(|(c, n)| (c.to_string(), *n)).collect(),
        response_findings: Default::default(),
        correlation: vec![],
        classification: Classification { level: "internal".into(), rationale: "test".into() },
        usage: Some(Usage { input_tokens: Some(12), output_tokens: Some(3), total_tokens: Some(15) }),
        filter_time_us: 42,
        instance_id: instance.into(),
        seq,
    }
}

#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let pos = b.windows(2).position(|w| w == b"\r\n").expect("chunk size line");
        let size = usize::from_str_radix(std::str::from_utf8(&b[..pos]).unwrap().split(';').next().unwrap().trim(), 16)
            .unwrap();
        b = &b[pos + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&b[..size]);
        b = &b[size + 2..];
    }
}

pub fn request(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, String)], body: &[u8]) -> Resp {
    try_request(addr, method, path, headers, body).unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

/// Like [`request`], but a connection failure is an error, not a panic.
pub fn try_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> std::io::Result<Resp> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut req =
        format!("{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\ncontent-length: {}\r\n", body.len());
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())?;
    // The server may answer (413) before reading the whole body.
    let _ = s.write_all(body);
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let Some(split) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Err(std::io::Error::other("connection closed before the response headers"));
    };
    let head = String::from_utf8(raw[..split].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let status: u16 = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if headers.iter().any(|(k, v)| k == "transfer-encoding" && v.contains("chunked")) {
        body = dechunk(&body);
    }
    Ok(Resp { status, headers, body })
}

pub fn get(addr: SocketAddr, path: &str) -> Resp {
    request(addr, "GET", path, &[], b"")
}

pub fn get_auth(addr: SocketAddr, path: &str, token: &str) -> Resp {
    request(addr, "GET", path, &[("authorization", format!("Bearer {token}"))], b"")
}

/// Posts a Standard Webhooks-signed delivery.
pub fn deliver(addr: SocketAddr, id: &str, ts: i64, body: &[u8]) -> Resp {
    try_deliver(addr, id, ts, body).unwrap()
}

pub fn try_deliver(addr: SocketAddr, id: &str, ts: i64, body: &[u8]) -> std::io::Result<Resp> {
    let sig = secret().sign(id, ts, body);
    try_request(
        addr,
        "POST",
        "/v1/events",
        &[
            ("content-type", "application/json".into()),
            ("webhook-id", id.into()),
            ("webhook-timestamp", ts.to_string()),
            ("webhook-signature", sig),
        ],
        body,
    )
}

pub fn deliver_events(addr: SocketAddr, id: &str, events: &[DecisionEvent]) -> Resp {
    deliver(addr, id, now(), &serde_json::to_vec(events).unwrap())
}

/// RFC 6962 root over raw lines, written from the RFC with nothing but SHA-256.
pub fn plain_root(lines: &[&[u8]]) -> [u8; 32] {
    fn mth(hashes: &[[u8; 32]]) -> [u8; 32] {
        match hashes.len() {
            0 => Sha256::digest(b"").into(),
            1 => hashes[0],
            n => {
                let mut k = 1;
                while k * 2 < n {
                    k *= 2;
                }
                let mut h = Sha256::new();
                h.update([1u8]);
                h.update(mth(&hashes[..k]));
                h.update(mth(&hashes[k..]));
                h.finalize().into()
            }
        }
    }
    let leaves: Vec<[u8; 32]> = lines
        .iter()
        .map(|l| {
            let mut h = Sha256::new();
            h.update([0u8]);
            h.update(l);
            h.finalize().into()
        })
        .collect();
    mth(&leaves)
}

/// Splits a JSONL body into its lines (without newlines).
pub fn jsonl_lines(body: &[u8]) -> Vec<&[u8]> {
    let mut v: Vec<&[u8]> = body.split(|b| *b == b'\n').collect();
    assert_eq!(v.pop(), Some(&b""[..]), "JSONL must end with a newline");
    v
}

/// Signs a checkpoint now and returns (note, size, root) after verifying it with the served key.
pub fn fresh_checkpoint(addr: SocketAddr) -> (String, u64, [u8; 32]) {
    use base64::Engine as _;
    let r = request(addr, "POST", "/v1/checkpoint", &[], b"");
    assert_eq!(r.status, 200, "{}", r.text());
    let note = get(addr, "/checkpoint").text();
    assert_eq!(note, r.text());
    let key = get(addr, "/v1/verifier-key").text();
    let v = meshward_sink::note::NoteVerifier::parse(key.trim()).unwrap();
    let body = v.open(&note).unwrap().to_string();
    let lines: Vec<&str> = body.lines().collect();
    assert_eq!(lines[0], ORIGIN);
    let root: [u8; 32] = base64::engine::general_purpose::STANDARD.decode(lines[2]).unwrap().try_into().unwrap();
    let size = lines[1].parse().unwrap();
    (note, size, root)
}
