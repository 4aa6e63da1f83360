//! `policies/schema.json` agrees with the engine: every ready pack validates,
//! and documents the engine refuses for their shape are refused by the
//! schema too. Validation uses the reference Python `jsonschema` package
//! that `make envoy` installs into the project's virtualenv.

use std::process::Command;

use meshward_e2e::paths;
use serde_json::{json, Value};

/// Validates each document; `Ok` or the validator's first message, per document.
fn validate(docs: &[Value]) -> Vec<Result<(), String>> {
    let python = paths::root().join(".venv/bin/python");
    assert!(python.exists(), "{} is missing: run `make envoy`", python.display());
    let script = r#"
import json, sys
from jsonschema import Draft202012Validator
schema = json.load(open(sys.argv[1]))
Draft202012Validator.check_schema(schema)
validator = Draft202012Validator(schema)
for doc in json.load(sys.stdin):
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.path))
    print(json.dumps(None if not errors else errors[0].message))
"#;
    let mut child = Command::new(python)
        .arg("-c")
        .arg(script)
        .arg(paths::root().join("policies/schema.json"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(Value::from(docs.to_vec()).to_string().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "validator failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|line| match serde_json::from_str::<Value>(line).unwrap() {
            Value::Null => Ok(()),
            message => Err(message.to_string()),
        })
        .collect()
}

#[test]
fn every_pack_is_valid_under_the_schema() {
    let dir = paths::root().join("policies");
    let mut names = Vec::new();
    let mut docs = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) == Some("json") && !path.ends_with("schema.json") {
            docs.push(serde_json::from_str(&paths::read(&path).unwrap()).unwrap());
            names.push(path.display().to_string());
        }
    }
    assert!(docs.len() >= 5);
    for (name, result) in names.iter().zip(validate(&docs)) {
        assert_eq!(result, Ok(()), "{name}");
    }
}

#[test]
fn the_schema_refuses_what_the_engine_refuses() {
    let base = || json!({"meshward_policy": 1, "name": "n", "version": "1"});
    let with = |key: &str, value: Value| {
        let mut doc = base();
        doc[key] = value;
        doc
    };
    let bad = [
        with("nope", json!(1)),
        with("mode", json!("loud")),
        with("detection", json!({"classes": {"FAX": {"action": "redact"}}})),
        with("detection", json!({"classes": {"EMAIL": {"action": "shred"}}})),
        with("injection", json!({"threshold": 2})),
        with("allow", json!({"models": {"allow": []}})),
        with("allow", json!({"tools": {"unlisted": "maybe"}})),
        with("identity", json!({"unknown_tenant": "sometimes"})),
        with("tenants", json!({"acme": {"roles": {"r": {"limits": {}}}}})),
        json!({"meshward_policy": 2, "name": "n", "version": "1"}),
        json!({"meshward_signed_policy": 1, "policy": base()}),
    ];
    let good = [
        base(),
        with(
            "tenants",
            json!({"acme": {"classification": {"block_at": "SECRET"}, "roles": {"r": {"mode": "monitor"}}}}),
        ),
        json!({"meshward_signed_policy": 1, "key_id": "1a2b3c4d", "signature": "AAAA", "policy": base()}),
    ];
    for (doc, result) in bad.iter().zip(validate(&bad)) {
        assert!(result.is_err(), "the schema accepts {doc}");
    }
    for (doc, result) in good.iter().zip(validate(&good)) {
        assert_eq!(result, Ok(()), "{doc}");
    }
}
