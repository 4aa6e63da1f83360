//! The classification guard through its public API, configured from JSON
//! the way the policy loader will.

use std::time::Instant;

use meshward_engine::detect::EntityClass;
use meshward_engine::guard::classify::{ClassificationDoc, Classifier};

fn classifier(json: &str) -> Classifier {
    let doc: ClassificationDoc = serde_json::from_str(json).unwrap();
    Classifier::compile(&doc).unwrap()
}

#[test]
fn a_full_policy_member_classifies_a_chat() {
    let c = classifier(
        r#"{
            "default_level": "OFFICIAL",
            "block_at": "SECRET",
            "keywords": [{ "level": "PROTECTED", "keywords": ["budget measure"], "case_insensitive": true }],
            "class_minimums": [{ "class": "AU_TFN", "min_count": 1, "level": "OFFICIAL:Sensitive" }]
        }"#,
    );
    let parts = [
        ("messages[0].content", "You are a helpful assistant."),
        ("messages[1].content", "Draft a note on the Budget Measure for the minister."),
    ];
    let mut state = c.start();
    for (location, text) in parts {
        c.scan(&mut state, text, location);
    }
    let d = c.finish(state, &[(EntityClass::AuTfn, 2)]);
    assert_eq!(d.level_name, "PROTECTED");
    assert!(!d.blocked);
    assert_eq!(d.rationale.len(), 1);
    assert_eq!(d.rationale[0].rule, "keyword");
    assert_eq!(d.rationale[0].detail, "keyword \"budget measure\" at messages[1].content");

    let mut state = c.start();
    c.scan(&mut state, "TOP SECRET//AUSTEO\nSummarise the attached.", "messages[1].content");
    let d = c.finish(state, &[]);
    assert!(d.blocked);
    let v = d.violation().unwrap();
    assert_eq!(v.rule, "classification.TOP SECRET");
    assert!(v.detail.contains("TOP SECRET") && v.detail.contains("SECRET or higher"), "{}", v.detail);
}

#[test]
fn the_default_document_is_the_pspf_ladder_without_blocking() {
    let c = Classifier::compile(&ClassificationDoc::default()).unwrap();
    assert_eq!(c.levels().len(), 6);
    let mut state = c.start();
    c.scan(&mut state, "[SEC=TOP SECRET]", "$");
    let d = c.finish(state, &[]);
    assert_eq!((d.level, d.blocked), (5, false));
}

/// Throughput on 1 MiB of prose dense with level words (a worst case for
/// the anchor checks) and of plain prose. Prints figures, asserts none:
/// `cargo test -j 1 --release -p meshward-engine --test classify -- --ignored --nocapture`
#[test]
#[ignore]
fn throughput() {
    let c = classifier(r#"{"keywords":[{"level":"PROTECTED","keywords":["budget measure","nightjar","payroll"]}]}"#);
    let dense = "The secret to a protected, official and sensitive branch is top secret. ".repeat(14_600);
    let plain = "The quick brown fox jumps over the lazy dog while the river runs on. ".repeat(15_400);
    for (name, text) in [("dense", &dense), ("plain", &plain)] {
        let rounds = 20;
        let started = Instant::now();
        for _ in 0..rounds {
            let mut state = c.start();
            c.scan(&mut state, text, "$");
            std::hint::black_box(c.finish(state, &[]));
        }
        let secs = started.elapsed().as_secs_f64() / rounds as f64;
        println!(
            "{name}: {} bytes, {:.2} ms per scan, {:.0} MiB/s",
            text.len(),
            secs * 1e3,
            text.len() as f64 / secs / 1048576.0
        );
    }
}
