//! The allow-list guard through its public API, from the policy JSON on.

use meshward_engine::guard::allow::{
    mint_approval, verify_approval, AllowDoc, AllowList, ApprovalKey, ToolDeclaration,
};
use meshward_engine::guard::{ConfigError, Violation};
use serde_json::json;

fn compile(doc: serde_json::Value) -> AllowList {
    let doc: AllowDoc = serde_json::from_value(doc).unwrap_or_else(|e| panic!("bad doc: {e}"));
    AllowList::compile(&doc).unwrap_or_else(|e| panic!("compile failed: {e:?}"))
}

fn config_error(doc: serde_json::Value) -> ConfigError {
    let doc: AllowDoc = serde_json::from_value(doc).unwrap_or_else(|e| panic!("bad doc: {e}"));
    match AllowList::compile(&doc) {
        Ok(_) => panic!("compiled a bad policy"),
        Err(e) => e,
    }
}

fn rule_of(result: Result<(), Violation>) -> Option<String> {
    result.err().map(|v| v.rule)
}

/// Standard base64 with padding, so the tests do not trust the code under test.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

// ---- the whole document ----

#[test]
fn example_policy_parses_and_compiles() {
    let list = compile(json!({
        "models": {"allow": ["gpt-4o*", "claude-3-5-*"], "max_tokens": 4096},
        "hosts": {"allow": ["api.openai.com", "*.openai.azure.com", "europe-west4-aiplatform.googleapis.com"]},
        "topics": {
            "deny": [{"name": "weapons", "keywords": ["bomb", "explosive"]}],
            "allow": [{"name": "billing", "keywords": ["invoice", "refund"]}]
        },
        "tools": {
            "allow": [
                {"name": "get_weather", "arguments": [{"pointer": "/city", "pattern": "[A-Za-z ]+", "max_length": 64}]},
                {"name": "deploy", "approval": true}
            ],
            "unlisted": "strip"
        },
        "attachments": {"allow": ["image/png", "image/jpeg", "application/pdf"], "max_bytes": 5242880}
    }));
    assert!(list.topics_active() && list.tools_active() && list.attachments_active());
    assert!(list.check_model(Some("gpt-4o-mini"), Some(1000)).is_ok());
    assert!(list.check_host(Some("api.openai.com:443")).is_ok());
    assert!(list.requires_approval("deploy"));
}

#[test]
fn unknown_members_are_refused_when_parsing() {
    assert!(serde_json::from_value::<AllowDoc>(json!({"model": {}})).is_err());
    assert!(serde_json::from_value::<AllowDoc>(json!({"tools": {"allow": [], "unlisted": "ignore"}})).is_err());
    assert!(serde_json::from_value::<AllowDoc>(json!({"tools": {"allow": [{"name": "x", "aproval": true}]}})).is_err());
}

#[test]
fn an_empty_document_allows_everything() {
    let list = compile(json!({}));
    assert!(!list.topics_active() && !list.tools_active() && !list.attachments_active());
    assert!(list.check_model(None, Some(u64::MAX)).is_ok());
    assert!(list.check_host(None).is_ok());
    assert_eq!(list.check_tool_declaration("anything"), ToolDeclaration::Allowed);
    assert!(list.check_tool_call("anything", "not json").is_ok());
    assert!(!list.requires_approval("anything"));
    assert!(list.check_attachment("!!!").is_ok());
    let mut state = list.start_topics();
    list.scan_topics(&mut state, "bomb");
    assert!(list.finish_topics(state).is_ok());
}

// ---- models ----

#[test]
fn models_allow_matching_names_only() {
    let list = compile(json!({"models": {"allow": ["gpt-4o*", "claude-3-5-*"]}}));
    assert!(list.check_model(Some("gpt-4o"), None).is_ok());
    assert!(list.check_model(Some("gpt-4o-2024-08-06"), None).is_ok());
    assert!(list.check_model(Some("GPT-4O-mini"), None).is_ok(), "case-insensitive");
    assert!(list.check_model(Some("claude-3-5-sonnet-20241022"), None).is_ok());
    assert_eq!(rule_of(list.check_model(Some("claude-3-5"), None)).as_deref(), Some("allow.model"));
    assert_eq!(rule_of(list.check_model(Some("gpt-4"), None)).as_deref(), Some("allow.model"));
    assert_eq!(rule_of(list.check_model(Some("o1-gpt-4o"), None)).as_deref(), Some("allow.model"));
}

#[test]
fn a_missing_model_fails_an_allow_list() {
    let list = compile(json!({"models": {"allow": ["gpt-4o*"]}}));
    for missing in [None, Some(""), Some("  ")] {
        let Err(v) = list.check_model(missing, None) else { panic!("accepted {missing:?}") };
        assert_eq!(v.rule, "allow.model");
        assert!(v.detail.contains("does not state a model"), "{}", v.detail);
        assert!(v.detail.contains("gpt-4o*"));
    }
}

#[test]
fn model_violation_does_not_echo_the_requested_name() {
    let list = compile(json!({"models": {"allow": ["gpt-4o*"]}}));
    let Err(v) = list.check_model(Some("secret-internal-model"), None) else { panic!("accepted") };
    assert!(!v.detail.contains("secret-internal-model"));
}

#[test]
fn max_tokens_cap() {
    let list = compile(json!({"models": {"max_tokens": 1000}}));
    assert!(list.check_model(Some("any-model"), Some(1000)).is_ok());
    assert!(list.check_model(None, None).is_ok(), "no allow-list: a missing model is fine; no limit asked is fine");
    let Err(v) = list.check_model(Some("any-model"), Some(1001)) else { panic!("accepted over the cap") };
    assert_eq!(v.rule, "allow.max_tokens");
    assert!(v.detail.contains("1000"));

    let strict = compile(json!({"models": {"max_tokens": 1000, "require_max_tokens": true}}));
    assert_eq!(rule_of(strict.check_model(Some("m"), None)).as_deref(), Some("allow.max_tokens"));
    assert!(strict.check_model(Some("m"), Some(10)).is_ok());
}

#[test]
fn model_config_errors() {
    assert_eq!(config_error(json!({"models": {"allow": []}})).path, "models.allow");
    assert_eq!(config_error(json!({"models": {"allow": ["gpt-4o", " "]}})).path, "models.allow[1]");
    assert_eq!(config_error(json!({"models": {"require_max_tokens": true}})).path, "models.require_max_tokens");
}

// ---- hosts ----

#[test]
fn hosts_match_ignoring_case_port_and_trailing_dot() {
    let list = compile(json!({"hosts": {"allow": ["api.openai.com", "europe-west4-aiplatform.googleapis.com"]}}));
    for ok in ["api.openai.com", "API.OpenAI.COM", "api.openai.com:443", "api.openai.com.", "api.openai.com.:8443"] {
        assert!(list.check_host(Some(ok)).is_ok(), "{ok}");
    }
    assert!(list.check_host(Some("europe-west4-aiplatform.googleapis.com:443")).is_ok());
    for bad in [
        "us-central1-aiplatform.googleapis.com",
        "api.openai.com.evil.com",
        "evil.com",
        "xapi.openai.com",
        "api.openai.com@evil.com",
        "evil.com@api.openai.com",
        "api.openai.com:https",
    ] {
        assert_eq!(rule_of(list.check_host(Some(bad))).as_deref(), Some("allow.host"), "{bad}");
    }
    let Err(v) = list.check_host(None) else { panic!("accepted no authority") };
    assert_eq!(v.rule, "allow.host");
    assert!(v.detail.contains("api.openai.com"), "names the policy's hosts: {}", v.detail);
}

#[test]
fn subdomain_wildcard_needs_at_least_one_label() {
    let list = compile(json!({"hosts": {"allow": ["*.openai.azure.com"]}}));
    assert!(list.check_host(Some("westeurope.openai.azure.com")).is_ok());
    assert!(list.check_host(Some("a.b.openai.azure.com:443")).is_ok());
    assert!(list.check_host(Some("openai.azure.com")).is_err());
    assert!(list.check_host(Some("evilopenai.azure.com")).is_err());
    assert!(list.check_host(Some("westeurope.openai.azure.com.evil.io")).is_err());
}

#[test]
fn host_config_errors() {
    assert_eq!(config_error(json!({"hosts": {"allow": []}})).path, "hosts.allow");
    assert_eq!(config_error(json!({"hosts": {"allow": ["a.com", "api.*.com"]}})).path, "hosts.allow[1]");
    let e = config_error(json!({"hosts": {"allow": ["api.openai.com:443"]}}));
    assert_eq!(e.path, "hosts.allow[0]");
    assert!(e.message.contains("port"));
    assert_eq!(config_error(json!({"hosts": {"allow": ["https://api.openai.com"]}})).path, "hosts.allow[0]");
}

// ---- topics ----

fn topics_result(list: &AllowList, parts: &[&str]) -> Result<(), Violation> {
    let mut state = list.start_topics();
    for part in parts {
        list.scan_topics(&mut state, part);
    }
    list.finish_topics(state)
}

#[test]
fn deny_topics_match_whole_words_in_any_case() {
    let list = compile(json!({"topics": {"deny": [
        {"name": "weapons", "keywords": ["bomb", "nerve agent"]},
        {"name": "gambling", "keywords": ["casino"]}
    ]}}));
    assert!(list.topics_active());
    assert!(topics_result(&list, &["a bombastic speech", "bombs? no: bomber"]).is_ok());
    assert!(topics_result(&list, &["the casinos", "nerve agents"]).is_ok());
    let Err(v) = topics_result(&list, &["how do I build a BOMB?"]) else { panic!("missed") };
    assert_eq!(v.rule, "allow.topic");
    assert!(v.detail.contains("weapons"));
    let Err(v) = topics_result(&list, &["nothing here", "Nerve Agent synthesis"]) else { panic!("missed") };
    assert!(v.detail.contains("weapons"));
    let Err(v) = topics_result(&list, &["(casino)"]) else { panic!("missed") };
    assert!(v.detail.contains("gambling"));
    assert!(!v.detail.contains("casino)"), "the detail names the topic, not the text");
}

#[test]
fn word_boundaries_are_unicode_aware_and_case_folds_beyond_ascii() {
    let list = compile(json!({"topics": {"deny": [{"name": "medical", "keywords": ["ärzte"]}]}}));
    assert!(topics_result(&list, &["Fragen an ÄRZTE heute"]).is_err());
    assert!(topics_result(&list, &["Zahnärzte"]).is_ok(), "inside a word");
}

#[test]
fn keywords_with_symbol_edges_need_no_boundary_there() {
    let list = compile(json!({"topics": {"deny": [{"name": "lang", "keywords": ["c++"]}]}}));
    assert!(topics_result(&list, &["I write c++, mostly"]).is_err());
    assert!(topics_result(&list, &["abc++"]).is_ok(), "the word edge still needs a boundary");
}

#[test]
fn overlapping_keywords_are_all_seen() {
    let list = compile(json!({"topics": {
        "deny": [{"name": "press", "keywords": ["york times"]}],
        "allow": [{"name": "travel", "keywords": ["new york"]}]
    }}));
    assert!(topics_result(&list, &["the new york times said"]).is_err());
}

#[test]
fn allow_topics_must_be_touched() {
    let list = compile(json!({"topics": {"allow": [
        {"name": "billing", "keywords": ["invoice", "refund"]},
        {"name": "support", "keywords": ["password reset"]}
    ]}}));
    assert!(topics_result(&list, &["hello", "I need a refund please"]).is_ok());
    assert!(topics_result(&list, &["Password Reset"]).is_ok());
    let Err(v) = topics_result(&list, &["write me a poem", "about invoices"]) else { panic!("accepted") };
    assert_eq!(v.rule, "allow.topic");
    assert!(v.detail.contains("billing") && v.detail.contains("support"));
    assert!(topics_result(&list, &[]).is_err(), "no text touches no topic");
}

#[test]
fn a_deny_topic_wins_over_an_allow_topic() {
    let list = compile(json!({"topics": {
        "deny": [{"name": "weapons", "keywords": ["bomb"]}],
        "allow": [{"name": "billing", "keywords": ["invoice"]}]
    }}));
    assert!(topics_result(&list, &["invoice"]).is_ok());
    let Err(v) = topics_result(&list, &["invoice", "and a bomb"]) else { panic!("accepted") };
    assert!(v.detail.contains("weapons"));
}

#[test]
fn topic_config_errors() {
    let e = config_error(json!({"topics": {"deny": [{"name": "x", "keywords": ["a", " "]}]}}));
    assert_eq!(e.path, "topics.deny[0].keywords[1]");
    let e = config_error(
        json!({"topics": {"allow": [{"name": "ok", "keywords": ["a"]}, {"name": "", "keywords": ["b"]}]}}),
    );
    assert_eq!(e.path, "topics.allow[1].name");
    let e = config_error(json!({"topics": {"deny": [{"name": "x", "keywords": []}]}}));
    assert_eq!(e.path, "topics.deny[0].keywords");
}

// ---- tools ----

fn tools_list() -> AllowList {
    compile(json!({"tools": {"allow": [
        {"name": "get_weather", "arguments": [
            {"pointer": "/city", "pattern": "[A-Za-z ]{1,40}", "required": true},
            {"pointer": "/unit", "enum": ["celsius", "fahrenheit"]},
            {"pointer": "/days", "enum": [1, 3, 7]}
        ]},
        {"name": "write_file", "arguments": [
            {"pointer": "/path", "pattern": "/tmp/[a-z0-9_./-]+"},
            {"pointer": "/content", "max_length": 5},
            {"pointer": "/opts/a~1b/m~0n", "enum": [true]}
        ], "approval": true},
        {"name": "mcp__docs__*"},
        {"name": "search"}
    ]}}))
}

#[test]
fn declarations_inside_and_outside_the_list() {
    let list = tools_list();
    assert!(list.tools_active());
    assert_eq!(list.check_tool_declaration("get_weather"), ToolDeclaration::Allowed);
    assert_eq!(list.check_tool_declaration("mcp__docs__lookup"), ToolDeclaration::Allowed);
    assert!(matches!(list.check_tool_declaration("Get_Weather"), ToolDeclaration::Deny(_)), "case-sensitive");
    let ToolDeclaration::Deny(v) = list.check_tool_declaration("shell") else { panic!("allowed shell") };
    assert_eq!(v.rule, "allow.tool");
    assert!(v.detail.contains("shell"));

    let strip = compile(json!({"tools": {"allow": [{"name": "search"}], "unlisted": "strip"}}));
    assert_eq!(strip.check_tool_declaration("shell"), ToolDeclaration::Strip);
    assert_eq!(strip.check_tool_declaration("search"), ToolDeclaration::Allowed);
    assert_eq!(rule_of(strip.check_tool_call("shell", "{}")).as_deref(), Some("allow.tool"), "calls are refused");
}

#[test]
fn an_empty_tool_list_denies_every_tool() {
    let list = compile(json!({"tools": {}}));
    assert!(matches!(list.check_tool_declaration("search"), ToolDeclaration::Deny(_)));
}

#[test]
fn hostile_tool_names_are_not_echoed() {
    let list = tools_list();
    let ToolDeclaration::Deny(v) = list.check_tool_declaration("x\"; rm -rf / <script>") else { panic!("allowed") };
    assert!(!v.detail.contains("rm -rf"), "{}", v.detail);
}

#[test]
fn argument_patterns_are_full_matches() {
    let list = tools_list();
    assert!(list.check_tool_call("get_weather", r#"{"city": "Paris"}"#).is_ok());
    assert!(list.check_tool_call("get_weather", r#"{"city": "New York", "unit": "celsius", "days": 3}"#).is_ok());
    let Err(v) = list.check_tool_call("get_weather", r#"{"city": "Paris; DROP TABLE"}"#) else { panic!("accepted") };
    assert_eq!(v.rule, "allow.tool_argument");
    assert!(v.detail.contains("/city") && v.detail.contains("get_weather"));
    assert!(!v.detail.contains("DROP"), "never echoes the value");
    assert!(list.check_tool_call("get_weather", r#"{"city": 42}"#).is_err(), "a pattern needs a string");
    assert!(list.check_tool_call("write_file", r#"{"path": "/etc/passwd"}"#).is_err());
    assert!(list.check_tool_call("write_file", r#"{"path": "x/tmp/a"}"#).is_err());
    assert!(list.check_tool_call("write_file", r#"{"path": "/tmp/a.txt"}"#).is_ok());
}

#[test]
fn enums_compare_strings_and_numbers_by_value() {
    let list = tools_list();
    assert!(list.check_tool_call("get_weather", r#"{"city": "Oslo", "days": 7}"#).is_ok());
    assert!(list.check_tool_call("get_weather", r#"{"city": "Oslo", "days": 7.0}"#).is_ok());
    assert!(list.check_tool_call("get_weather", r#"{"city": "Oslo", "days": 2}"#).is_err());
    assert!(list.check_tool_call("get_weather", r#"{"city": "Oslo", "days": "7"}"#).is_err());
    assert!(list.check_tool_call("get_weather", r#"{"city": "Oslo", "unit": "kelvin"}"#).is_err());
    assert!(list.check_tool_call("get_weather", r#"{"city": "Oslo", "unit": ["celsius"]}"#).is_err());
}

#[test]
fn max_length_counts_characters() {
    let list = tools_list();
    assert!(list.check_tool_call("write_file", r#"{"content": "héllo"}"#).is_ok());
    assert!(list.check_tool_call("write_file", r#"{"content": "hélloo"}"#).is_err());
    assert!(list.check_tool_call("write_file", r#"{"content": ["a"]}"#).is_err());
}

#[test]
fn pointers_with_escapes_reach_their_keys() {
    let list = tools_list();
    assert!(list.check_tool_call("write_file", r#"{"opts": {"a/b": {"m~n": true}}}"#).is_ok());
    assert!(list.check_tool_call("write_file", r#"{"opts": {"a/b": {"m~n": false}}}"#).is_err());
    // The unescaped spellings are other keys: nothing is found, which is allowed.
    assert!(list.check_tool_call("write_file", r#"{"opts": {"a~1b": {"m~0n": false}}}"#).is_ok());
}

#[test]
fn missing_values_pass_unless_required() {
    let list = tools_list();
    assert!(list.check_tool_call("write_file", "{}").is_ok());
    assert!(list.check_tool_call("write_file", "").is_ok(), "empty arguments are an empty object");
    let Err(v) = list.check_tool_call("get_weather", r#"{"unit": "celsius"}"#) else { panic!("accepted") };
    assert!(v.detail.contains("required"));
    assert!(list.check_tool_call("get_weather", "[]").is_err(), "a required key in a non-object");
}

#[test]
fn unparseable_or_ambiguous_arguments_are_refused() {
    let list = tools_list();
    for bad in ["{", r#"{"city": "Paris"} trailing"#, "{'city': 'Paris'}", r#"{"city": "x;y", "city": "Paris"}"#] {
        let Err(v) = list.check_tool_call("get_weather", bad) else { panic!("accepted {bad}") };
        assert_eq!(v.rule, "allow.tool_argument");
    }
    let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    assert!(list.check_tool_call("get_weather", &deep).is_err());
    let huge = format!(r#"{{"city": "Paris", "pad": "{}"}}"#, "a".repeat(300 * 1024));
    assert!(list.check_tool_call("get_weather", &huge).is_err(), "too large to check");
}

#[test]
fn tools_without_constraints_take_any_arguments() {
    let list = tools_list();
    assert!(list.check_tool_call("search", "not even json").is_ok());
    assert!(list.check_tool_call("mcp__docs__lookup", "{}").is_ok());
    assert_eq!(rule_of(list.check_tool_call("shell", "{}")).as_deref(), Some("allow.tool"));
}

#[test]
fn approval_is_per_tool() {
    let list = tools_list();
    assert!(list.requires_approval("write_file"));
    assert!(!list.requires_approval("get_weather"));
    assert!(!list.requires_approval("shell"));
}

#[test]
fn tool_config_errors_name_their_path() {
    let cases = [
        (
            json!({"tools": {"allow": [{"name": "a"}, {"name": "b", "arguments": [{"pointer": "/x", "pattern": "("}]}]}}),
            "tools.allow[1].arguments[0].pattern",
        ),
        (
            json!({"tools": {"allow": [{"name": "a", "arguments": [{"pointer": "/x", "max_length": 3}, {"pointer": "x", "max_length": 3}]}]}}),
            "tools.allow[0].arguments[1].pointer",
        ),
        (
            json!({"tools": {"allow": [{"name": "a", "arguments": [{"pointer": "/~2", "max_length": 3}]}]}}),
            "tools.allow[0].arguments[0].pointer",
        ),
        (
            json!({"tools": {"allow": [{"name": "a", "arguments": [{"pointer": "/x", "enum": [1, {"k": 2}]}]}]}}),
            "tools.allow[0].arguments[0].enum[1]",
        ),
        (
            json!({"tools": {"allow": [{"name": "a", "arguments": [{"pointer": "/x", "enum": []}]}]}}),
            "tools.allow[0].arguments[0].enum",
        ),
        (json!({"tools": {"allow": [{"name": "a", "arguments": [{"pointer": "/x"}]}]}}), "tools.allow[0].arguments[0]"),
        (json!({"tools": {"allow": [{"name": "a"}, {"name": "a"}]}}), "tools.allow[1].name"),
        (json!({"tools": {"allow": [{"name": ""}]}}), "tools.allow[0].name"),
        (
            json!({"tools": {"allow": [{"name": "a", "arguments": [{"pointer": "/x", "pattern": "a)|(b"}]}]}}),
            "tools.allow[0].arguments[0].pattern",
        ),
    ];
    for (doc, path) in cases {
        assert_eq!(config_error(doc).path, path);
    }
}

// ---- approval tokens ----

const SECRET: &str = "test-approval-key-at-least-32-bytes!";

fn key() -> ApprovalKey {
    ApprovalKey::new(SECRET).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn approval_key_must_be_long_enough() {
    let Err(message) = ApprovalKey::new("too-short") else { panic!("accepted a short key") };
    assert!(message.contains("32"));
    assert!(!message.contains("too-short"), "never echoes the secret");
    assert!(ApprovalKey::new(&"k".repeat(32)).is_ok());
}

#[test]
fn a_fresh_token_approves_its_tenant_and_tool() {
    let k = key();
    let token = mint_approval(&k, "acme", "write_file", 2_000);
    assert!(token.starts_with("mwa1.2000."));
    assert!(verify_approval(&k, &token, "acme", "write_file", 1_999).is_ok());
}

#[test]
fn expired_tokens_are_refused_and_said_so() {
    let k = key();
    let token = mint_approval(&k, "acme", "write_file", 2_000);
    for now in [2_000, 2_001, u64::MAX] {
        let Err(v) = verify_approval(&k, &token, "acme", "write_file", now) else { panic!("accepted at {now}") };
        assert_eq!(v.rule, "allow.approval");
        assert!(v.detail.contains("expired"));
    }
}

#[test]
fn tokens_do_not_transfer_between_tenants_tools_or_keys() {
    let k = key();
    let token = mint_approval(&k, "acme", "write_file", 2_000);
    assert_eq!(rule_of(verify_approval(&k, &token, "globex", "write_file", 1)).as_deref(), Some("allow.approval"));
    assert_eq!(rule_of(verify_approval(&k, &token, "acme", "deploy", 1)).as_deref(), Some("allow.approval"));
    let other = ApprovalKey::new("another-approval-key-of-32-bytes-or-more").unwrap_or_else(|e| panic!("{e}"));
    assert!(verify_approval(&other, &token, "acme", "write_file", 1).is_err());
    // Field boundaries are part of the MAC: "acme"+"x\ny" is not "acme\nx"+"y".
    let split = mint_approval(&k, "acme", "x", 2_000);
    assert!(verify_approval(&k, &split, "acm", "ex", 1).is_err());
}

#[test]
fn tampered_tokens_are_refused() {
    let k = key();
    let token = mint_approval(&k, "acme", "write_file", 2_000);
    let longer = token.replacen("mwa1.2000.", "mwa1.9999.", 1);
    assert!(verify_approval(&k, &longer, "acme", "write_file", 1).is_err(), "extended deadline");
    let leading_zero = token.replacen("mwa1.2000.", "mwa1.02000.", 1);
    assert!(verify_approval(&k, &leading_zero, "acme", "write_file", 1).is_err());
    let mut flipped: Vec<char> = token.chars().collect();
    let last = flipped.len() - 5;
    flipped[last] = if flipped[last] == 'A' { 'B' } else { 'A' };
    let flipped: String = flipped.into_iter().collect();
    assert!(verify_approval(&k, &flipped, "acme", "write_file", 1).is_err(), "flipped MAC character");
    let truncated = &token[..token.len() - 1];
    assert!(verify_approval(&k, truncated, "acme", "write_file", 1).is_err());
    let version = token.replacen("mwa1.", "mwa2.", 1);
    assert!(verify_approval(&k, &version, "acme", "write_file", 1).is_err());
}

#[test]
fn garbage_and_empty_headers_are_refused() {
    let k = key();
    for header in ["", " , ", "garbage", "mwa1.", "mwa1..", "mwa1.abc.def", "mwa1.-5.AAAA", "Bearer x", "mwa1.1.!!!"] {
        let Err(v) = verify_approval(&k, header, "acme", "write_file", 1) else { panic!("accepted {header:?}") };
        assert_eq!(v.rule, "allow.approval");
        assert!(!v.detail.contains("garbage"));
    }
    let Err(v) = verify_approval(&k, "", "acme", "write_file", 1) else { panic!("accepted") };
    assert!(v.detail.contains("x-meshward-approval"));
}

#[test]
fn any_valid_token_among_several_is_enough() {
    let k = key();
    let other_tool = mint_approval(&k, "acme", "deploy", 2_000);
    let expired = mint_approval(&k, "acme", "write_file", 10);
    let valid = mint_approval(&k, "acme", "write_file", 2_000);
    let header = format!("garbage, {other_tool},{expired} , {valid}");
    assert!(verify_approval(&k, &header, "acme", "write_file", 100).is_ok());
    assert!(verify_approval(&k, &header, "acme", "deploy", 100).is_ok());
    let Err(v) = verify_approval(&k, &format!("{other_tool}, {expired}"), "acme", "write_file", 100) else {
        panic!("accepted")
    };
    assert!(v.detail.contains("expired"), "the closest miss is reported: {}", v.detail);
}

// ---- attachments ----

const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0";
const JPEG: &[u8] = b"\xFF\xD8\xFF\xE0\0\x10JFIF\0\x01\x01\0\0\x01\0\x01\0\0";
const PDF: &[u8] = b"%PDF-1.7\n%\xE2\xE3\xCF\xD3\n1 0 obj\n";

fn attachments_list() -> AllowList {
    compile(json!({"attachments": {"allow": ["image/png", "image/jpeg", "application/pdf"], "max_bytes": 1000}}))
}

#[test]
fn allowed_types_pass_as_data_urls_and_bare_base64() {
    let list = attachments_list();
    assert!(list.attachments_active());
    assert!(list.check_attachment(&format!("data:image/png;base64,{}", base64(PNG))).is_ok());
    assert!(list.check_attachment(&format!("data:image/jpg;base64,{}", base64(JPEG))).is_ok(), "alias");
    assert!(list.check_attachment(&format!("data:application/pdf;name=a.pdf;base64,{}", base64(PDF))).is_ok());
    assert!(list.check_attachment(&base64(PNG)).is_ok());
    assert!(list.check_attachment(base64(PNG).trim_end_matches('=')).is_ok(), "unpadded");
    let url_safe = base64(JPEG).replace('+', "-").replace('/', "_");
    assert!(list.check_attachment(&url_safe).is_ok(), "URL-safe alphabet");
    assert!(list.check_attachment(&format!("data:application/octet-stream;base64,{}", base64(PNG))).is_ok());
}

#[test]
fn every_sniffed_type_is_judged_by_content() {
    let samples: &[(&[u8], &str)] = &[
        (PNG, "image/png"),
        (JPEG, "image/jpeg"),
        (b"GIF89a\x01\0\x01\0\x80\0\0", "image/gif"),
        (b"RIFF\x24\0\0\0WEBPVP8 \x18\0\0\0", "image/webp"),
        (b"RIFF\x24\0\0\0WAVEfmt \x10\0\0\0", "audio/wav"),
        (PDF, "application/pdf"),
        (b"PK\x03\x04\x14\0\0\0\x08\0", "application/zip"),
        (b"ID3\x04\0\0\0\0\0\x21TIT2", "audio/mpeg"),
        (b"\xFF\xFB\x90\x64\0\0\0\0", "audio/mpeg"),
        (b"OggS\0\x02\0\0\0\0\0\0", "audio/ogg"),
        (b"fLaC\0\0\0\x22\x10\0", "audio/flac"),
        (b"\0\0\0\x20ftypisom\0\0\x02\0isomiso2", "video/mp4"),
        (b"Just some notes.\nLine two.\n", "text/plain"),
    ];
    for (bytes, kind) in samples {
        let only = compile(json!({"attachments": {"allow": [kind]}}));
        assert!(only.check_attachment(&base64(bytes)).is_ok(), "{kind} allowed by itself");
        assert!(only.check_attachment(&format!("data:{kind};base64,{}", base64(bytes))).is_ok(), "{kind} declared");
        let in_list = ["image/png", "image/jpeg", "application/pdf"].contains(kind);
        match attachments_list().check_attachment(&base64(bytes)) {
            Ok(()) => assert!(in_list, "{kind} passed a list without it"),
            Err(v) => {
                assert!(!in_list, "{kind} refused by a list with it: {}", v.detail);
                assert_eq!(v.rule, "allow.attachment");
                assert!(v.detail.contains(kind), "{}", v.detail);
            }
        }
    }
}

#[test]
fn wildcard_types() {
    let list = compile(json!({"attachments": {"allow": ["image/*"]}}));
    assert!(list.check_attachment(&base64(PNG)).is_ok());
    assert!(list.check_attachment(&base64(b"GIF87a\x01\0\x01\0")).is_ok());
    assert!(list.check_attachment(&base64(PDF)).is_err());
}

#[test]
fn a_declared_type_must_agree_with_the_content() {
    let list = attachments_list();
    let Err(v) = list.check_attachment(&format!("data:image/png;base64,{}", base64(JPEG))) else { panic!("accepted") };
    assert_eq!(v.rule, "allow.attachment");
    assert!(v.detail.contains("image/jpeg") && v.detail.contains("declare"), "{}", v.detail);
    // Even a disallowed-but-harmless claim: an executable posing as a PNG is refused for the lie.
    let elf = b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0";
    assert!(list.check_attachment(&format!("data:image/png;base64,{}", base64(elf))).is_err());
    let text = compile(json!({"attachments": {"allow": ["text/plain"]}}));
    assert!(text.check_attachment(&format!("data:text/csv;base64,{}", base64(b"a,b\n1,2\n"))).is_ok());
    assert!(text.check_attachment(&format!("data:application/json;base64,{}", base64(b"{\"a\":1}"))).is_ok());
    assert!(text.check_attachment(&format!("data:image/png;base64,{}", base64(b"plain words"))).is_err());
}

#[test]
fn unrecognised_content_fails_an_allow_list_but_not_an_open_one() {
    let elf = b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0";
    let Err(v) = attachments_list().check_attachment(&base64(elf)) else { panic!("accepted") };
    assert!(v.detail.contains("unrecognised"));
    let open = compile(json!({"attachments": {"max_bytes": 100}}));
    assert!(open.check_attachment(&base64(elf)).is_ok());
}

#[test]
fn size_limit_comes_from_the_base64_length() {
    let list = compile(json!({"attachments": {"max_bytes": 999}}));
    // 1332 'A's decode to exactly 999 bytes; 1336 to 1002.
    assert!(list.check_attachment(&"A".repeat(1332)).is_ok());
    let Err(v) = list.check_attachment(&"A".repeat(1336)) else { panic!("accepted") };
    assert_eq!(v.rule, "allow.attachment");
    assert!(v.detail.contains("999"));
    // 1000 bytes: 1333 data characters plus padding is one byte over.
    assert!(list.check_attachment(&format!("{}AA==", "A".repeat(1332))).is_err());
    // Line breaks are not counted.
    let wrapped = "A"
        .repeat(1332)
        .as_bytes()
        .chunks(76)
        .map(|c| std::str::from_utf8(c).unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\r\n");
    assert!(list.check_attachment(&wrapped).is_ok());
    // A large attachment is refused without being decoded whole.
    let big = format!("data:image/png;base64,{}{}", base64(PNG).trim_end_matches('='), "A".repeat(4_000_000));
    let Err(v) = attachments_list().check_attachment(&big) else { panic!("accepted") };
    assert!(v.detail.contains("larger"), "{}", v.detail);
}

#[test]
fn invalid_base64_and_non_base64_urls_are_refused() {
    let list = attachments_list();
    for bad in [
        String::new(),
        "data:image/png;base64,".to_string(),
        "data:image/png;base64,iVBOR*w0K".to_string(),
        format!("{}=A", base64(PNG).trim_end_matches('=')),
        "A".to_string(),
        "data:text/plain,hello".to_string(),
        "data:image/png;base64".to_string(),
    ] {
        let Err(v) = list.check_attachment(&bad) else { panic!("accepted {bad:?}") };
        assert_eq!(v.rule, "allow.attachment");
    }
    let Err(v) = list.check_attachment("data:image/png;base64,not@base64") else { panic!("accepted") };
    assert!(!v.detail.contains("not@base64"));
}

#[test]
fn attachment_config_errors() {
    let e = config_error(json!({"attachments": {"allow": ["image/png", "image/tiff"]}}));
    assert_eq!(e.path, "attachments.allow[1]");
    assert_eq!(config_error(json!({"attachments": {"allow": ["model/*"]}})).path, "attachments.allow[0]");
    assert!(AllowList::compile(&AllowDoc::default()).is_ok());
}
