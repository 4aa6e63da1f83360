//! The Istio, Kubernetes and OCI recipes in `envoy/` have the shape operators
//! rely on, and the policies embedded in them compile with the real engine.

use std::io::Write;
use std::process::{Command, Stdio};

use meshward_e2e::paths;
use serde_yaml::Value;

fn documents(relative: &str) -> Vec<Value> {
    let text = paths::read(&paths::root().join(relative)).unwrap();
    serde_yaml::Deserializer::from_str(&text).map(|d| serde::Deserialize::deserialize(d).unwrap()).collect()
}

/// Runs `meshward check --policy` on `policy` (JSON) against a chat body:
/// the engine that runs in the filter must accept it.
fn assert_policy_compiles(policy: &serde_json::Value, origin: &str) {
    let cli = paths::root().join("target/release/meshward");
    assert!(cli.exists(), "{} is missing: run `make build`", cli.display());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("policy.json");
    std::fs::write(&file, policy.to_string()).unwrap();
    let mut child = Command::new(cli)
        .args(["check", "--policy"])
        .arg(&file)
        .env("MESHWARD_PLACEHOLDER_KEY", "manifest-test-key-0123456789")
        .env("MESHWARD_AUDIT_SECRET", "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(br#"{"messages":[{"role":"user","content":"a@b.co"}]}"#).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{origin}: {}", String::from_utf8_lossy(&out.stderr));
}

fn yaml_to_json(value: &Value) -> serde_json::Value {
    serde_json::to_value(value).unwrap()
}

#[test]
fn wasmplugin_fails_closed_pins_the_module_and_keeps_secrets_out_of_config() {
    let docs = documents("envoy/istio/wasmplugin.yaml");
    let plugin = &docs[0];
    assert_eq!(plugin["kind"].as_str(), Some("WasmPlugin"));
    let spec = &plugin["spec"];
    assert_eq!(spec["failStrategy"].as_str(), Some("FAIL_CLOSE"));
    assert!(spec["url"].as_str().unwrap().starts_with("oci://"));
    assert!(spec["sha256"].as_str().is_some_and(|s| !s.is_empty()), "the module must be pinned");
    let env: Vec<(&str, &str)> = spec["vmConfig"]["env"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|e| (e["name"].as_str().unwrap(), e["valueFrom"].as_str().unwrap()))
        .collect();
    assert_eq!(
        env,
        [
            ("MESHWARD_PLACEHOLDER_KEY", "HOST"),
            ("MESHWARD_AUDIT_SECRET", "HOST"),
            ("MESHWARD_APPROVAL_KEY", "HOST"),
            ("MESHWARD_POLICY_PUBLIC_KEY", "HOST")
        ]
    );
    // After jwt_authn, so tenant and role claims are there to read.
    assert_eq!(spec["phase"].as_str(), Some("AUTHZ"));
    let policy = yaml_to_json(&spec["pluginConfig"]);
    let text = policy.to_string();
    assert!(!text.contains("whsec_") && !text.to_lowercase().contains("placeholder_key"), "secrets in config");
    assert_policy_compiles(&policy, "wasmplugin pluginConfig");
}

#[test]
fn envoyfilter_inserts_the_filter_then_the_buffer_before_the_router() {
    let docs = documents("envoy/istio/envoyfilter.yaml");
    let patches = docs[0]["spec"]["configPatches"].as_sequence().unwrap();
    assert_eq!(patches.len(), 2);
    for patch in patches {
        assert_eq!(patch["patch"]["operation"].as_str(), Some("INSERT_BEFORE"));
        assert_eq!(
            patch["match"]["listener"]["filterChain"]["filter"]["subFilter"]["name"].as_str(),
            Some("envoy.filters.http.router")
        );
    }
    let wasm = &patches[0]["patch"]["value"];
    assert_eq!(wasm["name"].as_str(), Some("envoy.filters.http.wasm"));
    let config = &wasm["typed_config"]["config"];
    assert_eq!(config["fail_open"].as_bool(), Some(false));
    assert_eq!(config["vm_config"]["runtime"].as_str(), Some("envoy.wasm.runtime.v8"));
    let keys: Vec<&str> = config["vm_config"]["environment_variables"]["host_env_keys"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap())
        .collect();
    assert_eq!(
        keys,
        ["MESHWARD_PLACEHOLDER_KEY", "MESHWARD_AUDIT_SECRET", "MESHWARD_APPROVAL_KEY", "MESHWARD_POLICY_PUBLIC_KEY"]
    );
    let policy: serde_json::Value =
        serde_json::from_str(config["configuration"]["value"].as_str().unwrap()).expect("policy is JSON");
    assert_policy_compiles(&policy, "envoyfilter configuration");
    assert_eq!(patches[1]["patch"]["value"]["name"].as_str(), Some("envoy.filters.http.buffer"));
}

#[test]
fn sink_statefulset_keeps_one_writer_on_a_persistent_volume() {
    let docs = documents("envoy/k8s/meshward-sink.yaml");
    let set = docs.iter().find(|d| d["kind"].as_str() == Some("StatefulSet")).expect("a StatefulSet");
    assert_eq!(set["spec"]["replicas"].as_u64(), Some(1));
    let claim = &set["spec"]["volumeClaimTemplates"][0];
    assert_eq!(claim["metadata"]["name"].as_str(), Some("data"));
    let container = &set["spec"]["template"]["spec"]["containers"][0];
    let args: Vec<&str> = container["args"].as_sequence().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
    assert_eq!(args[0], "serve");
    let data_dir = args.iter().position(|a| *a == "--data-dir").map(|i| args[i + 1]).unwrap();
    let mounts = container["volumeMounts"].as_sequence().unwrap();
    assert!(mounts.iter().any(|m| m["name"].as_str() == Some("data") && m["mountPath"].as_str() == Some(data_dir)));
    assert!(container["envFrom"][0]["secretRef"]["name"].as_str().is_some(), "secrets come from a Secret");
    assert!(docs.iter().any(|d| d["kind"].as_str() == Some("Service")));
}

#[test]
fn oci_recipe_is_a_scratch_image_holding_only_the_module() {
    let text = paths::read(&paths::root().join("envoy/oci/Containerfile")).unwrap();
    let instructions: Vec<&str> =
        text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect();
    assert_eq!(instructions, ["FROM scratch", "COPY target/wasm32-wasip1/release/meshward_filter.wasm ./plugin.wasm"]);
}
