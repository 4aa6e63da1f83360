//! The `meshward` binary, run as users run it.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

const KEY: &str = "cli-test-placeholder-key-0123456789";

fn policy_path() -> String {
    format!("{}/../../policies/default.json", env!("CARGO_MANIFEST_DIR"))
}

fn run(args: &[&str], stdin: &str, key: Option<&str>) -> Output {
    let env: Vec<(&str, &str)> = key.map(|k| ("MESHWARD_PLACEHOLDER_KEY", k)).into_iter().collect();
    run_env(args, stdin, &env)
}

/// Runs the binary with exactly these meshward variables set.
fn run_env(args: &[&str], stdin: &str, env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_meshward"));
    cmd.args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    for name in ["MESHWARD_PLACEHOLDER_KEY", "MESHWARD_POLICY_PUBLIC_KEY", "MESHWARD_APPROVAL_KEY"] {
        cmd.env_remove(name);
    }
    cmd.envs(env.iter().copied());
    let mut child = cmd.spawn().unwrap();
    // A usage error may exit before reading its input: a broken pipe is fine.
    if let Err(e) = child.stdin.take().unwrap().write_all(stdin.as_bytes()) {
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "{e}");
    }
    child.wait_with_output().unwrap()
}

fn json_out(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

#[test]
fn check_rewrites_and_reports_findings() {
    let body = r#"{"model":"m","messages":[{"role":"user","content":"jane@example.com 4111 1111 1111 1111"}]}"#;
    let out = run(&["check", "--policy", &policy_path()], body, Some(KEY));
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let v = json_out(&out);
    assert_eq!(v["action"], "redact");
    assert_eq!(v["status"], 200);
    assert_eq!(v["guards"][0]["name"], "pii");
    assert_eq!(v["guards"][0]["status"], "scanned");
    assert_eq!(v["guards"][0]["verdict"], "redact");
    let rewritten = v["body"].as_str().unwrap();
    assert!(!rewritten.contains("jane@example.com") && !rewritten.contains("4111"));
    let findings = v["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 2);
    assert_eq!(findings[0]["class"], "EMAIL");
    assert_eq!(findings[0]["role"], "user");
    let (s, e) = (findings[0]["start"].as_u64().unwrap() as usize, findings[0]["end"].as_u64().unwrap() as usize);
    assert_eq!(&body[s..e], "jane@example.com");
}

#[test]
fn check_blocks_malformed_json_with_exit_1() {
    let out = run(&["check", "--policy", &policy_path(), "--request-id", "r-9"], "{nope", Some(KEY));
    assert_eq!(out.status.code(), Some(1));
    let v = json_out(&out);
    assert_eq!(v["action"], "block");
    assert_eq!(v["status"], 400);
    assert_eq!(v["problem"]["request_id"], "r-9");
    // The body was never scanned: the guard says so (as in the audit event).
    assert_eq!(v["guards"][0]["status"], "skipped");
}

#[test]
fn policy_and_usage_errors_exit_2() {
    // The default policy redacts, so it needs the placeholder key.
    let out = run(&["check", "--policy", &policy_path()], "{}", None);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("MESHWARD_PLACEHOLDER_KEY"));
    assert_eq!(run(&["check"], "{}", Some(KEY)).status.code(), Some(2));
    assert_eq!(run(&["frobnicate"], "", Some(KEY)).status.code(), Some(2));
    assert_eq!(run(&["check", "--policy", "/nonexistent.json"], "{}", Some(KEY)).status.code(), Some(2));
}

#[test]
fn scan_reports_byte_offsets_and_hashes_not_values() {
    let text = "héllo jane@example.com";
    let out = run(&["scan"], text, None);
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains("jane@example.com"));
    let v = json_out(&out);
    let f = &v["findings"][0];
    assert_eq!(f["class"], "EMAIL");
    assert_eq!(f["start"], 7); // 'é' is two bytes
    assert_eq!(f["end"], text.len());
    assert_eq!(f["text_sha256"].as_str().unwrap().len(), 64);
}

#[test]
fn scan_jsonl_keeps_ids() {
    let input = "{\"id\":\"a\",\"text\":\"4111111111111111\"}\n{\"id\":7,\"text\":\"nothing here\"}\n";
    let out = run(&["scan", "--jsonl"], input, None);
    let lines: Vec<Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["id"], "a");
    assert_eq!(lines[0]["findings"][0]["class"], "CREDIT_CARD");
    assert_eq!(lines[1]["id"], 7);
    assert!(lines[1]["findings"].as_array().unwrap().is_empty());
}

#[test]
fn scan_reports_the_catalogue_with_subtypes() {
    let text = "key AKIAQYLPMN5HHHFPZAM2, call +44 20 7946 0958, SSN 123-45-6789";
    let out = run(&["scan"], text, None);
    assert_eq!(out.status.code(), Some(0));
    let v = json_out(&out);
    let got: Vec<(String, String)> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["class"].as_str().unwrap().to_string(), f["subtype"].as_str().unwrap_or("").to_string()))
        .collect();
    assert_eq!(
        got,
        [
            ("SECRET".to_string(), "aws_access_key_id".to_string()),
            ("PHONE".to_string(), "uk".to_string()),
            ("US_SSN".to_string(), String::new()),
        ]
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("AKIA"));
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("meshward-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn lint_reports_the_digest_profiles_and_needed_secrets() {
    let out = run(&["policy", "lint", &policy_path()], "", None);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let v = json_out(&out);
    assert_eq!(v["ok"], true);
    assert!(v["digest"].as_str().unwrap().starts_with("sha256:"));
    assert_eq!(v["needs_env"], serde_json::json!(["MESHWARD_PLACEHOLDER_KEY"]));
    assert_eq!(v["profiles"][0]["tenant"], "default");
}

#[test]
fn lint_explains_an_error_with_its_json_path() {
    let dir = temp_dir("lint");
    let file = dir.join("bad.json");
    std::fs::write(
        &file,
        r#"{"meshward_policy":1,"name":"x","version":"1","tenants":{"acme":{"roles":{"admin":{"mode":"loud"}}}}}"#,
    )
    .unwrap();
    let out = run(&["policy", "lint", file.to_str().unwrap()], "", None);
    assert_eq!(out.status.code(), Some(1));
    let v = json_out(&out);
    assert_eq!(v["ok"], false);
    assert_eq!(v["errors"][0]["path"], "tenants.acme.roles.admin.mode");
    assert!(String::from_utf8_lossy(&out.stderr).contains("error at tenants.acme.roles.admin.mode"));
}

#[test]
fn signed_packs_are_required_once_a_key_is_configured() {
    let dir = temp_dir("sign");
    let key = dir.join("policy.key");
    let out = run(&["policy", "keygen", "--out", key.to_str().unwrap()], "", None);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let line = String::from_utf8(out.stdout).unwrap();
    let public = line.trim().strip_prefix("MESHWARD_POLICY_PUBLIC_KEY=").unwrap().to_owned();
    // The key file is private and never overwritten.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
    }
    assert_eq!(run(&["policy", "keygen", "--out", key.to_str().unwrap()], "", None).status.code(), Some(2));

    let out = run(&["policy", "sign", "--key", key.to_str().unwrap(), &policy_path()], "", None);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let signed = dir.join("signed.json");
    std::fs::write(&signed, &out.stdout).unwrap();

    let env = [("MESHWARD_POLICY_PUBLIC_KEY", public.as_str()), ("MESHWARD_PLACEHOLDER_KEY", KEY)];
    let body = r#"{"messages":[{"role":"user","content":"jane@example.com"}]}"#;
    let ok = run_env(&["check", "--policy", signed.to_str().unwrap()], body, &env);
    assert_eq!(ok.status.code(), Some(0), "{}", String::from_utf8_lossy(&ok.stderr));
    let v = json_out(&ok);
    assert_eq!(v["action"], "redact");
    // Signing does not change the policy's identity.
    let plain = json_out(&run(&["policy", "lint", &policy_path()], "", None));
    assert_eq!(v["policy"]["digest"], plain["digest"]);

    let unsigned = run_env(&["check", "--policy", &policy_path()], body, &env);
    assert_eq!(unsigned.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&unsigned.stderr).contains("only a signed policy pack"));

    let tampered = String::from_utf8(std::fs::read(&signed).unwrap()).unwrap().replace("\"redact\"", "\"flag\"");
    let tampered_file = dir.join("tampered.json");
    std::fs::write(&tampered_file, tampered).unwrap();
    let out = run_env(&["check", "--policy", tampered_file.to_str().unwrap()], body, &env);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not match the policy"));
}

#[test]
fn check_selects_the_tenant_and_role_profile() {
    let dir = temp_dir("tenant");
    let file = dir.join("tenants.json");
    std::fs::write(
        &file,
        r#"{"meshward_policy":1,"name":"t","version":"1",
            "detection":{"classes":{"EMAIL":{"action":"redact"}}},
            "identity":{"tenant":{"header":"x-tenant"},"unknown_tenant":"deny"},
            "tenants":{"acme":{"detection":{"classes":{"EMAIL":{"action":"block"}}},
                               "roles":{"auditor":{"mode":"monitor"}}}}}"#,
    )
    .unwrap();
    let body = r#"{"messages":[{"role":"user","content":"jane@example.com"}]}"#;
    let check = |extra: &[&str]| {
        let mut args = vec!["check", "--policy", file.to_str().unwrap()];
        args.extend_from_slice(extra);
        run(&args, body, Some(KEY))
    };
    let base = check(&[]);
    assert_eq!((base.status.code(), json_out(&base)["action"].clone()), (Some(0), "redact".into()));
    let acme = check(&["--tenant", "acme"]);
    assert_eq!(acme.status.code(), Some(1));
    assert_eq!(json_out(&acme)["tenant"], "acme");
    let auditor = check(&["--tenant", "acme", "--role", "auditor"]);
    assert_eq!(auditor.status.code(), Some(0), "monitor mode blocks nothing");
    assert_eq!(json_out(&auditor)["role"], "auditor");
    let unknown = check(&["--tenant", "initech"]);
    assert_eq!(unknown.status.code(), Some(1));
    let v = json_out(&unknown);
    assert_eq!(v["problem"]["type"], "urn:meshward:problem:unknown-tenant");
    assert!(!v.to_string().contains("initech"), "the caller's tenant is not echoed");
}

#[test]
fn check_reports_every_guard_and_the_classification() {
    let pack = format!("{}/../../policies/au-gov-pspf.json", env!("CARGO_MANIFEST_DIR"));
    let body =
        r#"{"model":"gpt-4o","messages":[{"role":"user","content":"PROTECTED//CABINET\nSummarise the brief."}]}"#;
    let host = ["--host", "bedrock-runtime.ap-southeast-2.amazonaws.com"];
    let out = run(&[&["check", "--policy", &pack][..], &host[..]].concat(), body, Some(KEY));
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let v = json_out(&out);
    assert_eq!(v["problem"]["type"], "urn:meshward:problem:classification-exceeded");
    assert_eq!(v["classification"]["level"], "PROTECTED");
    assert!(v["classification"]["rationale"].as_str().unwrap().contains("PROTECTED//CABINET"));
    let guards = v["guards"].as_array().unwrap();
    let verdict = |name: &str| guards.iter().find(|g| g["name"] == name).map(|g| g["verdict"].clone());
    assert_eq!(verdict("classification"), Some("block".into()));
    assert_eq!(verdict("injection"), Some("pass".into()));
    assert_eq!(verdict("allow"), Some("pass".into()));

    let out = run(
        &["check", "--policy", &pack, "--host", "api.openai.com"],
        r#"{"model":"gpt-4o","messages":[]}"#,
        Some(KEY),
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(json_out(&out)["problem"]["type"], "urn:meshward:problem:provider-not-allowed");
}
