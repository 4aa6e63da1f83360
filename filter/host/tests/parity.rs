//! Parity: the `meshward check` CLI and the release filter `.wasm` (through
//! this host) decide every fixture identically — same verdict, same
//! findings per class, and byte for byte the same body upstream — because
//! both run the same engine (issue 3, item 7).
//!
//! Fixtures: a deterministic sample of `testdata/detect/corpus.jsonl` that
//! spans every labelled class and the negatives, each wrapped as an OpenAI
//! chat request in one of several shapes; custom-detector bodies (class
//! `CUSTOM`); a few malformed bodies (refusals); and every
//! `testdata/openai/*.json`. The policy enables every class with `redact`.
//!
//! Needs `make wasm` and the release CLI (`make build`, or
//! `cargo build --release -p meshward-cli`): a missing artefact FAILS this
//! test, it never skips it. Both must be built from the same sources.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use meshward_engine::detect::EntityClass;
use meshward_wasm_host::{CompiledModule, LogLevel, Plugin};
use serde_json::{json, Value};

const KEY: &str = "test-placeholder-key-0123456789";
const PATH: &str = "/v1/chat/completions";
/// Every `(1 in STRIDE)`-th corpus line of each class: 12 of 300 per class.
const STRIDE: usize = 27;

/// Every class the engine knows (the same list the policy loader checks).
fn classes() -> impl Iterator<Item = &'static str> {
    EntityClass::ALL.into_iter().map(EntityClass::name)
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn policy() -> Vec<u8> {
    let classes: serde_json::Map<String, Value> =
        classes().map(|c| (c.to_string(), json!({ "action": "redact" }))).collect();
    let policy = json!({
        "meshward_policy": 1,
        "name": "parity",
        "version": "1",
        "mode": "enforce",
        "detection": {
            "classes": classes,
            "custom": [
                { "name": "employee_id", "class": "CUSTOM", "pattern": "\\bEMP-[0-9]{6}\\b", "confidence": 0.95 },
                { "name": "codenames", "class": "CUSTOM", "keywords": ["Project Falcon", "Bluebird"] }
            ]
        },
        "limits": { "max_body_bytes": 1_048_576, "max_json_depth": 128 }
    });
    serde_json::to_vec_pretty(&policy).unwrap()
}

fn cli_path() -> PathBuf {
    if let Some(p) = std::env::var_os("MESHWARD_CLI").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    match std::env::var_os("CARGO_TARGET_DIR").filter(|t| !t.is_empty()) {
        Some(t) => PathBuf::from(t).join("release/meshward"),
        None => workspace().join("target/release/meshward"),
    }
}

struct Fixture {
    name: String,
    body: Vec<u8>,
}

/// A chat request around `text`, in one of several shapes (picked by `n`):
/// string content, content parts, a multi-turn conversation, pretty-printed.
fn chat_body(n: usize, text: &str) -> Vec<u8> {
    match n % 4 {
        0 => serde_json::to_vec(&json!({
            "model": "gpt-4o",
            "messages": [{ "role": "user", "content": text }]
        })),
        1 => serde_json::to_vec(&json!({
            "model": "gpt-4o",
            "messages": [
                { "role": "system", "content": "You are helpful." },
                { "role": "user", "content": [{ "type": "text", "text": text }] }
            ],
            "temperature": 0.2
        })),
        2 => serde_json::to_vec(&json!({
            "model": "gpt-4o-mini",
            "messages": [
                { "role": "user", "content": "Hello there." },
                { "role": "assistant", "content": "Hi! How can I help?" },
                { "role": "user", "content": text }
            ],
            "stream": true
        })),
        _ => serde_json::to_vec_pretty(&json!({
            "model": "gpt-4o",
            "messages": [{ "role": "user", "content": format!("{text}\n\t(ünïcödé ✓)") }],
            "max_tokens": 64
        })),
    }
    .unwrap()
}

/// The corpus sample (every class and the negatives), custom-detector and
/// malformed bodies, and `testdata/openai/*.json`.
fn fixtures() -> (Vec<Fixture>, BTreeMap<String, usize>) {
    let corpus_path = workspace().join("testdata/detect/corpus.jsonl");
    let corpus =
        std::fs::read_to_string(&corpus_path).unwrap_or_else(|e| panic!("cannot read {}: {e}", corpus_path.display()));
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut sampled: BTreeMap<String, usize> = BTreeMap::new();
    let mut out = Vec::new();
    let mut texts: Vec<String> = Vec::new();
    for (line_no, line) in corpus.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let record: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("corpus line {}: {e}", line_no + 1));
        let text = record["text"].as_str().expect("corpus text");
        let labels = record["labels"].as_array().expect("corpus labels");
        // The class a line was generated for: its first label, or NONE.
        let group = labels.first().and_then(|l| l["class"].as_str()).unwrap_or("NONE").to_owned();
        let k = seen.entry(group.clone()).or_default();
        *k += 1;
        if !(*k - 1).is_multiple_of(STRIDE) {
            continue;
        }
        *sampled.entry(group).or_default() += 1;
        let id = record["id"].as_str().unwrap_or("?");
        out.push(Fixture { name: format!("corpus:{id} (line {})", line_no + 1), body: chat_body(out.len(), text) });
        texts.push(text.to_owned());
    }
    // The same texts in long messages with plain prose between them, so
    // the byte scans' block skips run and stop at values anywhere in a
    // block (the `.wasm` skips differently from the native build).
    let filler = " The quarterly report was discussed at length by the whole team today. ";
    for (i, group) in texts.chunks(24).enumerate() {
        out.push(Fixture { name: format!("long:{i}"), body: chat_body(i, &group.join(filler)) });
    }
    let custom = [
        "Badge EMP-123456 belongs to the on-call engineer.",
        "Status of Project Falcon and Bluebird? Ask EMP-654321 or mail ops@example.com.",
        "Not an employee id: EMP-12345, XEMP-1234567, falcon project.",
    ];
    for (i, text) in custom.iter().enumerate() {
        out.push(Fixture { name: format!("custom:{i}"), body: chat_body(i, text) });
    }
    let malformed: [&[u8]; 4] = [
        br#"{"model":"gpt-4o","messages":[{"role":"user","content":"mail a@b.co"#,
        br#"{"model":"gpt-4o","messages":"call +1 415 555 0100"}"#,
        b"{}",
        b"not json at all, card 4111 1111 1111 1111",
    ];
    for (i, body) in malformed.iter().enumerate() {
        out.push(Fixture { name: format!("malformed:{i}"), body: body.to_vec() });
    }
    let openai = workspace().join("testdata/openai");
    if let Ok(dir) = std::fs::read_dir(&openai) {
        let mut files: Vec<PathBuf> = dir
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        for file in files {
            let body = std::fs::read(&file).unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
            out.push(Fixture { name: format!("openai:{}", file.display()), body });
        }
    }
    (out, sampled)
}

/// What `meshward check` printed for one body.
struct CliVerdict {
    action: String,
    status: u64,
    body: Option<String>,
    problem: Value,
    counts: BTreeMap<String, usize>,
    exit: Option<i32>,
}

fn run_cli(cli: &Path, policy: &Path, request_id: &str, body: &[u8]) -> CliVerdict {
    let mut child = Command::new(cli)
        .args(["check", "--policy"])
        .arg(policy)
        .args(["--path", PATH, "--content-type", "application/json", "--request-id", request_id])
        .env("MESHWARD_PLACEHOLDER_KEY", KEY)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", cli.display()));
    child.stdin.take().unwrap().write_all(body).expect("write the body to the CLI");
    let out = child.wait_with_output().expect("CLI output");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{request_id}: the CLI printed no report ({e}), exit {:?}: {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let mut counts = BTreeMap::new();
    for f in report["findings"].as_array().expect("findings") {
        *counts.entry(f["class"].as_str().expect("finding class").to_owned()).or_default() += 1;
    }
    CliVerdict {
        action: report["action"].as_str().expect("action").to_owned(),
        status: report["status"].as_u64().expect("status"),
        body: report["body"].as_str().map(str::to_owned),
        problem: report["problem"].clone(),
        counts,
        exit: out.status.code(),
    }
}

/// `meshward: request ID findings EMAIL=1,PHONE=2` from the filter's debug log.
fn logged_counts(plugin: &Plugin, request_id: &str) -> BTreeMap<String, usize> {
    let prefix = format!("meshward: request {request_id} findings ");
    let mut counts = BTreeMap::new();
    for entry in plugin.take_logs() {
        if let Some(list) = entry.message.strip_prefix(&prefix) {
            for pair in list.split(',') {
                let (class, n) = pair.split_once('=').unwrap_or_else(|| panic!("bad findings log: {}", entry.message));
                *counts.entry(class.to_owned()).or_default() += n.parse::<usize>().expect("count");
            }
        }
    }
    counts
}

#[test]
fn cli_and_wasm_decide_every_fixture_identically() {
    let cli = cli_path();
    assert!(
        cli.is_file(),
        "{} is missing: run `make build` (or `cargo build --release -p meshward-cli`)",
        cli.display()
    );
    let module = CompiledModule::meshward_filter()
        .unwrap_or_else(|e| panic!("{e}\n(the parity test needs the release .wasm: run `make build`)"));

    let policy = policy();
    let policy_file = std::env::temp_dir().join(format!("meshward-parity-{}.json", std::process::id()));
    std::fs::write(&policy_file, &policy).expect("write the policy");

    let (fixtures, sampled) = fixtures();
    for class in classes().filter(|c| *c != "CUSTOM").chain(["NONE"]) {
        assert!(sampled.get(class).copied().unwrap_or(0) >= 10, "too few {class} fixtures: {sampled:?}");
    }

    // The CLI once per body, on a few threads (process start dominates).
    let ids: Vec<String> = (0..fixtures.len()).map(|i| format!("parity-{i}")).collect();
    let threads = std::thread::available_parallelism().map_or(4, |n| n.get()).min(8);
    let per = fixtures.len().div_ceil(threads);
    let cli_verdicts: Vec<CliVerdict> = std::thread::scope(|s| {
        let handles: Vec<_> = fixtures
            .chunks(per)
            .zip(ids.chunks(per))
            .map(|(fx, id)| {
                let (cli, policy_file) = (&cli, &policy_file);
                s.spawn(move || {
                    fx.iter().zip(id).map(|(f, id)| run_cli(cli, policy_file, id, &f.body)).collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().expect("CLI thread")).collect()
    });
    let _ = std::fs::remove_file(&policy_file);

    let plugin = Plugin::builder_from(&module)
        .plugin_config(policy)
        .env("MESHWARD_PLACEHOLDER_KEY", KEY)
        .log_level(LogLevel::Debug)
        .build()
        .unwrap_or_else(|e| panic!("the filter refused the parity policy: {e}"));

    let mut failures = Vec::new();
    let mut actions: BTreeMap<String, usize> = BTreeMap::new();
    let mut found: BTreeMap<String, usize> = BTreeMap::new();
    for ((fixture, id), cli) in fixtures.iter().zip(&ids).zip(&cli_verdicts) {
        let headers = [
            (":method", "POST"),
            (":path", PATH),
            (":authority", "api.openai.com"),
            (":scheme", "https"),
            ("content-type", "application/json"),
            ("x-request-id", id.as_str()),
        ];
        plugin.take_logs();
        let mut ex =
            plugin.send_request(&headers, &fixture.body, 0).unwrap_or_else(|e| panic!("{}: {e}", fixture.name));
        let wasm_counts = logged_counts(&plugin, id);
        let upstream = ex.upstream_request_body();
        let local = ex.local_response();
        let complete = ex.upstream_request_complete();
        ex.finish().unwrap_or_else(|e| panic!("{}: {e}", fixture.name));

        *actions.entry(cli.action.clone()).or_default() += 1;
        for (class, n) in &cli.counts {
            *found.entry(class.clone()).or_default() += n;
        }
        let mut fail = |what: String| failures.push(format!("{} [{id}]: {what}", fixture.name));
        if cli.counts != wasm_counts {
            fail(format!("findings per class differ: CLI {:?}, wasm {wasm_counts:?}", cli.counts));
        }
        match cli.action.as_str() {
            "allow" | "redact" => {
                let expected = match cli.action.as_str() {
                    "allow" => fixture.body.clone(),
                    _ => cli.body.clone().expect("a redact report carries the body").into_bytes(),
                };
                if cli.exit != Some(0) {
                    fail(format!("CLI {} exited {:?}", cli.action, cli.exit));
                }
                if let Some(local) = &local {
                    fail(format!(
                        "CLI {} but the wasm answered {} {}",
                        cli.action,
                        local.status,
                        String::from_utf8_lossy(&local.body)
                    ));
                } else if !complete {
                    fail("the wasm never completed the upstream request".into());
                } else if upstream != expected {
                    fail(format!(
                        "upstream bodies differ ({}):\n  CLI : {}\n  wasm: {}",
                        cli.action,
                        String::from_utf8_lossy(&expected),
                        String::from_utf8_lossy(&upstream)
                    ));
                }
            }
            "block" => {
                if cli.exit != Some(1) {
                    fail(format!("CLI block exited {:?}", cli.exit));
                }
                match &local {
                    None => fail(format!(
                        "CLI blocked ({} {}) but the wasm forwarded: {}",
                        cli.status,
                        cli.problem,
                        String::from_utf8_lossy(&upstream)
                    )),
                    Some(local) => {
                        let problem: Value = serde_json::from_slice(&local.body).unwrap_or(Value::Null);
                        if u64::from(local.status) != cli.status || problem != cli.problem {
                            fail(format!(
                                "refusals differ:\n  CLI : {} {}\n  wasm: {} {}",
                                cli.status,
                                cli.problem,
                                local.status,
                                String::from_utf8_lossy(&local.body)
                            ));
                        }
                        if !upstream.is_empty() {
                            fail("a refused body reached the upstream".into());
                        }
                    }
                }
            }
            other => fail(format!("unknown CLI action {other:?}")),
        }
    }

    eprintln!(
        "parity: {} fixtures (corpus sample per class {sampled:?}); CLI actions {actions:?}; findings {found:?}",
        fixtures.len()
    );
    assert!(failures.is_empty(), "{} of {} fixtures differ:\n{}", failures.len(), fixtures.len(), failures.join("\n"));
    // The sample must really exercise the engine: every class found, some
    // bodies rewritten, some refused.
    for class in classes() {
        assert!(found.contains_key(class), "no {class} finding in any fixture: {found:?}");
    }
    assert!(actions.get("redact").copied().unwrap_or(0) > 100, "{actions:?}");
    assert!(actions.contains_key("block"), "{actions:?}");
}
