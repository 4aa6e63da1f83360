//! `meshward`: the filter's engine on the command line (DESIGN.md §3).
//!
//! - `meshward check --policy FILE [--path P] [--content-type CT] [--content-encoding E] [--request-id ID] < BODY`
//! - `meshward scan [--policy FILE] [--jsonl] < TEXT`
//! - `meshward policy lint FILE`, `meshward policy sign --key KEYFILE FILE`,
//!   `meshward policy keygen --out KEYFILE`
//!
//! Exit status: 0 allowed or rewritten, 1 blocked, 2 usage or policy error.
//! `policy lint` exits 1 when the policy is invalid.

use std::io::{self, BufRead, Read, Write};
use std::process::ExitCode;

use meshward_engine::audit::{EventContext, Outcome};
use meshward_engine::detect::{DetectorSet, EntityClass, Finding};
use meshward_engine::policy::{PolicySet, Secrets};
use meshward_engine::request::{Decision, FindingReport};
use meshward_engine::signing::{PolicySigningKey, PUBLIC_KEY_VARIABLE};
use meshward_engine::{Engine, RequestMeta, Verdict};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const USAGE: &str = "usage:
  meshward check --policy FILE [--tenant T] [--role R] [--direction request] [--path P] [--host H]
                 [--approval TOKENS] [--content-type CT] [--content-encoding E] [--request-id ID] < BODY
  meshward scan [--policy FILE] [--jsonl] < TEXT
  meshward policy lint FILE
  meshward policy sign --key KEYFILE FILE      (prints the signed pack)
  meshward policy keygen --out KEYFILE         (prints the public key)

Secrets come from the environment: MESHWARD_PLACEHOLDER_KEY keys placeholders,
MESHWARD_POLICY_PUBLIC_KEY makes signed packs mandatory.
Exit status: 0 allowed or rewritten, 1 blocked (lint: invalid), 2 usage or policy error.";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("check") => check(&args[1..]),
        Some("scan") => scan(&args[1..]),
        Some("policy") => policy_command(&args[1..]),
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

fn load_policy(path: &str) -> Result<PolicySet, String> {
    let policy = std::fs::read(path).map_err(|e| format!("cannot read policy {path}: {e}"))?;
    PolicySet::from_json(&policy, &Secrets::from_env()).map_err(|e| format!("{path}: {e}"))
}

fn load_engine(path: &str) -> Result<Engine, String> {
    load_policy(path).map(PolicySet::into_default_profile)
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
        &[
            "policy",
            "tenant",
            "role",
            "direction",
            "path",
            "host",
            "approval",
            "content-type",
            "content-encoding",
            "request-id",
        ],
        &[],
    )?;
    let policy = options.get("policy").ok_or_else(|| format!("check needs --policy FILE\n{USAGE}"))?;
    match options.get("direction").unwrap_or("request") {
        "request" => {}
        "response" => return Err("--direction response is not implemented yet (responses are issue 5)".into()),
        other => return Err(format!("--direction must be request or response, not '{other}'")),
    }
    let policy = load_policy(policy)?;
    let body = read_stdin()?;
    let unix_time = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let meta = RequestMeta {
        request_id: options.get("request-id").unwrap_or("cli"),
        path: options.get("path").unwrap_or("/v1/chat/completions"),
        content_type: Some(options.get("content-type").unwrap_or("application/json")),
        content_encoding: options.get("content-encoding"),
        authority: options.get("host"),
        approval: options.get("approval"),
        unix_time,
    };
    let engine = match policy.select(options.get("tenant"), options.get("role")) {
        Ok(engine) => engine,
        Err(unknown) => {
            let problem = unknown.problem(&meta);
            let document = serde_json::from_slice(&problem.to_json()).unwrap_or(Value::Null);
            print(&json!({
                "action": "block",
                "status": problem.status(),
                "body": null,
                "findings": [],
                "guards": [],
                "problem": document,
                "policy": { "name": policy.name, "version": policy.version, "digest": policy.digest },
            }))?;
            return Ok(ExitCode::from(1));
        }
    };
    let decision = engine.evaluate_request(&meta, &body);
    print(&check_report(engine, &decision))?;
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
        "policy": { "name": engine.name, "version": engine.version, "digest": engine.digest },
        "tenant": engine.tenant,
        "role": engine.role,
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

fn policy_command(args: &[String]) -> Result<ExitCode, String> {
    match args.first().map(String::as_str) {
        Some("lint") => lint(args.get(1..).unwrap_or_default()),
        Some("sign") => sign(args.get(1..).unwrap_or_default()),
        Some("keygen") => keygen(args.get(1..).unwrap_or_default()),
        _ => Err(format!("policy needs lint, sign or keygen\n{USAGE}")),
    }
}

/// Validates a policy the way the filter will, and says what it needs.
///
/// Secrets are not needed to lint: a missing placeholder key is replaced
/// by a stand-in, and reported as an environment variable the VM needs.
fn lint(args: &[String]) -> Result<ExitCode, String> {
    let [path] = args else { return Err(format!("policy lint takes one FILE\n{USAGE}")) };
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read policy {path}: {e}"))?;
    let mut secrets = Secrets::from_env();
    if secrets.placeholder_key.is_none() {
        secrets.placeholder_key = Some("meshward-lint-stand-in-placeholder-key".into());
    }
    if secrets.approval_key.is_none() {
        secrets.approval_key = Some("meshward-lint-stand-in-approval-key-0123456789".into());
    }
    let policy = match PolicySet::from_json(&bytes, &secrets) {
        Ok(policy) => policy,
        Err(e) => {
            let (path_in_policy, message) = match &e {
                meshward_engine::EngineError::Policy { path, message } => (path.clone(), message.clone()),
                other => ("$".to_owned(), other.to_string()),
            };
            eprintln!("{path}: error at {path_in_policy}: {message}");
            print(&json!({ "ok": false, "errors": [{ "path": path_in_policy, "message": message }] }))?;
            return Ok(ExitCode::from(1));
        }
    };
    let mut needs = Vec::new();
    if policy.profiles().any(Engine::redacts) {
        needs.push("MESHWARD_PLACEHOLDER_KEY");
    }
    if policy.profiles().any(Engine::checks_approvals) {
        needs.push(meshward_engine::policy::APPROVAL_KEY_VARIABLE);
    }
    if policy.default_profile().audit.enabled {
        needs.push(meshward_engine::audit::SECRET_VARIABLE);
    }
    let profiles: Vec<Value> = policy
        .profiles()
        .map(|p| json!({ "tenant": p.tenant, "role": p.role, "mode": format!("{:?}", p.mode).to_lowercase() }))
        .collect();
    print(&json!({
        "ok": true,
        "name": policy.name,
        "version": policy.version,
        "digest": policy.digest,
        "signed_by": policy.signed_by,
        "profiles": profiles,
        "needs_env": needs,
    }))?;
    Ok(ExitCode::SUCCESS)
}

fn sign(args: &[String]) -> Result<ExitCode, String> {
    let (key_path, policy_path) = match args {
        [flag, key, policy] if flag == "--key" => (key, policy),
        _ => return Err(format!("policy sign needs --key KEYFILE FILE\n{USAGE}")),
    };
    let key_text = std::fs::read_to_string(key_path).map_err(|e| format!("cannot read key {key_path}: {e}"))?;
    let key = PolicySigningKey::parse(&key_text).map_err(|e| format!("{key_path}: {e}"))?;
    let bytes = std::fs::read(policy_path).map_err(|e| format!("cannot read policy {policy_path}: {e}"))?;
    // Only a policy that compiles is worth signing.
    let secrets =
        Secrets { placeholder_key: Some("meshward-sign-stand-in-placeholder-key".into()), ..Secrets::default() };
    PolicySet::from_json(&bytes, &secrets).map_err(|e| format!("{policy_path}: {e}"))?;
    let policy: Value = serde_json::from_slice(&bytes).map_err(|e| format!("{policy_path}: {e}"))?;
    if policy.get("meshward_signed_policy").is_some() {
        return Err(format!("{policy_path} is already a signed pack"));
    }
    let envelope = key.sign(&policy);
    let text = serde_json::to_string_pretty(&envelope).map_err(|e| e.to_string())?;
    println!("{text}");
    Ok(ExitCode::SUCCESS)
}

fn keygen(args: &[String]) -> Result<ExitCode, String> {
    let out = match args {
        [flag, out] if flag == "--out" => out,
        _ => return Err(format!("policy keygen needs --out KEYFILE\n{USAGE}")),
    };
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| format!("no OS randomness: {e}"))?;
    let key = PolicySigningKey::from_seed(seed);
    write_private(out, &format!("{}\n", key.to_base64()))?;
    eprintln!("meshward: wrote the signing key to {out}; keep it out of the mesh");
    println!("{PUBLIC_KEY_VARIABLE}={}", key.public_key_base64());
    Ok(ExitCode::SUCCESS)
}

/// Creates `path` readable by its owner only; refuses to overwrite a key.
fn write_private(path: &str, contents: &str) -> Result<(), String> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(|e| format!("cannot create {path}: {e}"))?;
    file.write_all(contents.as_bytes()).map_err(|e| format!("cannot write {path}: {e}"))?;
    file.sync_all().map_err(|e| format!("cannot sync {path}: {e}"))
}
