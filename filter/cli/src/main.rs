//! `meshward`: the filter's engine on the command line (DESIGN.md §3).
//!
//! - `meshward check --policy FILE [--path P] [--content-type CT] [--content-encoding E] [--request-id ID] < BODY`
//! - `meshward scan [--policy FILE] [--jsonl] < TEXT`
//!
//! Exit status: 0 allowed or rewritten, 1 blocked, 2 usage or policy error.

use std::io::{self, BufRead, Read, Write};
use std::process::ExitCode;

use meshward_engine::audit::{EventContext, Outcome};
use meshward_engine::detect::{DetectorSet, EntityClass, Finding};
use meshward_engine::policy::Secrets;
use meshward_engine::request::{Decision, FindingReport};
use meshward_engine::{Engine, RequestMeta, Verdict};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const USAGE: &str = "usage:
  meshward check --policy FILE [--tenant T] [--direction request] [--path P] [--host H]
                 [--content-type CT] [--content-encoding E] [--request-id ID] < BODY
  meshward scan [--policy FILE] [--jsonl] < TEXT

Secrets come from the environment: MESHWARD_PLACEHOLDER_KEY keys placeholders.
Exit status: 0 allowed or rewritten, 1 blocked, 2 usage or policy error.";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("check") => check(&args[1..]),
        Some("scan") => scan(&args[1..]),
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            Ok(ExitCode::SUCCESS)
        }
        _ => Err(format!("expected a command\n{USAGE}")),
    };
    match result {
        Ok(code) => code,
        Err(message) => {
            eprintln!("meshward: {message}");
            ExitCode::from(2)
        }
    }
}

/// `--name value` options; every name must be one of `known`.
struct Options {
    values: Vec<(String, String)>,
    flags: Vec<String>,
}

impl Options {
    fn parse(args: &[String], with_value: &[&str], flags: &[&str]) -> Result<Options, String> {
        let mut options = Options { values: Vec::new(), flags: Vec::new() };
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let name = arg.trim_start_matches("--");
            if !arg.starts_with("--") {
                return Err(format!("unexpected argument '{arg}'\n{USAGE}"));
            } else if with_value.contains(&name) {
                let value = it.next().ok_or_else(|| format!("--{name} needs a value"))?;
                options.values.push((name.to_owned(), value.clone()));
            } else if flags.contains(&name) {
                options.flags.push(name.to_owned());
            } else {
                return Err(format!("unknown option '{arg}'\n{USAGE}"));
            }
        }
        Ok(options)
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.values.iter().rev().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    fn flag(&self, name: &str) -> bool {
        self.flags.iter().any(|f| f == name)
    }
}

fn load_engine(path: &str) -> Result<Engine, String> {
    let policy = std::fs::read(path).map_err(|e| format!("cannot read policy {path}: {e}"))?;
    Engine::from_json(&policy, &Secrets::from_env()).map_err(|e| format!("{path}: {e}"))
}

fn read_stdin() -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    io::stdin().read_to_end(&mut body).map_err(|e| format!("cannot read standard input: {e}"))?;
    Ok(body)
}

fn print(value: &Value) -> Result<(), String> {
    let mut out = io::stdout().lock();
    serde_json::to_writer(&mut out, value).map_err(|e| e.to_string())?;
    writeln!(out).map_err(|e| e.to_string())
}

fn check(args: &[String]) -> Result<ExitCode, String> {
    let options = Options::parse(
        args,
        &["policy", "tenant", "direction", "path", "host", "content-type", "content-encoding", "request-id"],
        &[],
    )?;
    let policy = options.get("policy").ok_or_else(|| format!("check needs --policy FILE\n{USAGE}"))?;
    match options.get("direction").unwrap_or("request") {
        "request" => {}
        "response" => return Err("--direction response is not implemented yet (responses are issue 5)".into()),
        other => return Err(format!("--direction must be request or response, not '{other}'")),
    }
    let engine = load_engine(policy)?;
    let body = read_stdin()?;
    let meta = RequestMeta {
        request_id: options.get("request-id").unwrap_or("cli"),
        path: options.get("path").unwrap_or("/v1/chat/completions"),
        content_type: Some(options.get("content-type").unwrap_or("application/json")),
        content_encoding: options.get("content-encoding"),
    };
    let decision = engine.evaluate_request(&meta, &body);
    print(&check_report(&engine, &decision))?;
    Ok(match decision.verdict {
        Verdict::Block(_) => ExitCode::from(1),
        Verdict::Allow | Verdict::Rewrite(_) => ExitCode::SUCCESS,
    })
}

fn check_report(engine: &Engine, decision: &Decision) -> Value {
    let (action, status, body, problem) = match &decision.verdict {
        Verdict::Allow => ("allow", 200, Value::Null, Value::Null),
        Verdict::Rewrite(body) => {
            ("redact", 200, Value::String(String::from_utf8_lossy(body).into_owned()), Value::Null)
        }
        Verdict::Block(p) => {
            let problem = serde_json::from_slice(&p.to_json()).unwrap_or(Value::Null);
            ("block", p.status(), Value::Null, problem)
        }
    };
    let findings: Vec<Value> = decision.findings.iter().map(finding_report).collect();
    // Guards and classification exactly as the filter's decision event
    // reports them: one definition for the CLI, audit and metrics.
    let event = engine.decision_event(&EventContext::default(), Outcome::Decided(decision), None);
    json!({
        "action": action,
        "status": status,
        "body": body,
        "findings": findings,
        "classification": event.classification,
        "guards": event.guards,
        "problem": problem,
        "policy": { "name": engine.name, "version": engine.version },
        "codec": decision.codec.name(),
    })
}

fn finding_report(f: &FindingReport) -> Value {
    json!({
        "class": f.class.name(),
        "subtype": f.subtype.as_deref(),
        "start": f.start,
        "end": f.end,
        "confidence": round(f.confidence),
        "action": if f.enforced { f.action.name().to_owned() } else { format!("monitor:{}", f.action.name()) },
        "rule": f.rule,
        "location": f.location,
        "role": f.role.name(),
    })
}

fn round(confidence: f32) -> f64 {
    (f64::from(confidence) * 1000.0).round() / 1000.0
}

fn scan(args: &[String]) -> Result<ExitCode, String> {
    let options = Options::parse(args, &["policy"], &["jsonl"])?;
    let engine = options.get("policy").map(load_engine).transpose()?;
    let everything = DetectorSet::new(EntityClass::ALL);
    let findings_in = |text: &str| -> Vec<Value> {
        let found = match &engine {
            Some(engine) => engine.scan_text(text),
            None => {
                let mut found = Vec::new();
                everything.scan(text, &mut found);
                found
            }
        };
        found.iter().map(|f| scan_finding(text, f)).collect()
    };
    if !options.flag("jsonl") {
        let input = read_stdin()?;
        let text = String::from_utf8(input).map_err(|e| format!("input is not UTF-8: {e}"))?;
        print(&json!({ "findings": findings_in(&text) }))?;
        return Ok(ExitCode::SUCCESS);
    }
    for (n, line) in io::stdin().lock().lines().enumerate() {
        let line = line.map_err(|e| format!("cannot read line {}: {e}", n + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        let record: Value = serde_json::from_str(&line).map_err(|e| format!("line {}: {e}", n + 1))?;
        let text = record["text"].as_str().ok_or_else(|| format!("line {}: no \"text\" string", n + 1))?;
        print(&json!({ "id": record["id"], "findings": findings_in(text) }))?;
    }
    Ok(ExitCode::SUCCESS)
}

fn scan_finding(text: &str, f: &Finding) -> Value {
    let value = text.get(f.start..f.end).unwrap_or_default();
    let digest = Sha256::digest(value.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    json!({
        "class": f.class.name(),
        "subtype": f.subtype.as_deref(),
        "start": f.start,
        "end": f.end,
        "confidence": round(f.confidence),
        "rule": f.rule,
        "text_sha256": hex,
    })
}
