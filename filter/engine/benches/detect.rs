//! Detection throughput: `cargo bench -p meshward-engine --bench detect`.
//!
//! A plain `harness = false` binary (no criterion): for each corpus it scans
//! the whole text repeatedly with every built-in class enabled (the whole
//! catalogue) and prints MB/s (10^6 bytes per second), the median of three
//! rounds of at least half a second each. Corpora are generated here,
//! deterministically: `mixed` (the headline: prompt-like traffic, see
//! `corpus/mixed.rs`), clean prose, PII-dense text, near misses, and
//! adversarial inputs (long digit runs, runs of '@' and '.', many
//! keyword and name cues).
//!
//! `digest` is a hash of every finding (class, span, rule, subtype,
//! confidence): a speed change that changes it changed behaviour.
//!
//! Then the naive baseline (`corpus/naive.rs`: every built-in pattern as a
//! separate regex over the whole text) on `mixed`, and our ratio to it.
//! Pass corpus names (substrings) to run only those; `--no-baseline` skips
//! the baseline; `--dump NAME` prints a corpus instead.

use std::hint::black_box;
use std::time::{Duration, Instant};

use meshward_engine::detect::{DetectorSet, EntityClass, Finding};

#[path = "corpus/mixed.rs"]
mod mixed;
#[path = "corpus/naive.rs"]
mod naive;

use mixed::Rng;

const WORDS: &[&str] = &[
    "the",
    "model",
    "should",
    "summarise",
    "this",
    "document",
    "and",
    "list",
    "every",
    "action",
    "item",
    "for",
    "our",
    "team",
    "meeting",
    "notes",
    "about",
    "quarterly",
    "planning",
    "with",
    "budget",
    "review",
    "please",
    "write",
    "a",
    "short",
    "reply",
    "explaining",
    "why",
    "deployment",
    "failed",
    "yesterday",
    "after",
    "upgrade",
    "to",
    "version",
    "database",
    "migration",
    "is",
    "slow",
    "because",
    "index",
    "was",
    "missing",
    "on",
    "table",
    "customer",
    "orders",
    "we",
    "need",
    "better",
    "tests",
    "in",
    "pipeline",
    "before",
    "release",
    "can",
    "you",
    "help",
    "me",
    "understand",
    "how",
    "works",
    "it",
    "seems",
    "like",
    "cache",
    "not",
    "used",
    "properly",
];

const PII: &[&str] = &[
    "jane.doe@example.com",
    "4111 1111 1111 1111",
    "+44 20 7946 0958",
    "(415) 555-0132",
    "SSN 123-45-6789",
    "TFN 123 456 782",
    "ABN 51 824 753 556",
    "GB82 WEST 1234 5698 7654 32",
    "NI number AB 12 34 56 C",
    "from 192.168.10.254",
    "ghp_Zk9pQ2xmT3dR8sV1bN4cX7yA6eH5gJ0iL3uM",
    "AKIAQYLPMN5HHHFPZAM2",
    "password = Tr0ub4dor3x",
    "Dear Priya Sharma,",
    "born on 4 July 1990",
    "12 Smith Street, Sydney NSW 2000",
    "diagnosed with diabetes",
    "my son is 7 years old",
    "postgres://app:s3cr3t@db:5432/x",
];

fn prose(rng: &mut Rng, bytes: usize) -> String {
    let mut s = String::with_capacity(bytes + 64);
    while s.len() < bytes {
        for _ in 0..(8 + rng.next() % 12) {
            s.push_str(rng.pick(WORDS));
            s.push(' ');
        }
        s.pop();
        s.push_str(". ");
        if rng.next().is_multiple_of(5) {
            s.push('\n');
        }
    }
    s
}

fn dense(rng: &mut Rng, bytes: usize) -> String {
    let mut s = String::with_capacity(bytes + 64);
    while s.len() < bytes {
        for _ in 0..(3 + rng.next() % 5) {
            s.push_str(rng.pick(WORDS));
            s.push(' ');
        }
        s.push_str(rng.pick(PII));
        s.push_str(". ");
    }
    s
}

fn near_misses(rng: &mut Rng, bytes: usize) -> String {
    let items = [
        "order #41111111",
        "550e8400-e29b-41d4-a716-446655440000",
        "commit 3f786850e387550fdab836ed7e6dc881de23001b",
        "v1.2.3.4",
        "2024-01-15T10:30:00Z",
        "1700000000",
        "4111111111111112",
        "SKU 123-456-789",
        "ts 12:30:45",
        "a@b",
        "sk_live_XXXXXXXXXXXXXXXXXXXX",
        "token_count=12",
    ];
    let mut s = String::with_capacity(bytes + 64);
    while s.len() < bytes {
        s.push_str(rng.pick(&items));
        s.push(' ');
    }
    s
}

fn corpora() -> Vec<(&'static str, String)> {
    const MIB: usize = 1 << 20;
    let mut rng = Rng(0x5EED_1234_ABCD_0001);
    let mut mixed_rng = Rng(0x6D69_7865_6400_0001);
    vec![
        ("mixed", mixed::mixed(&mut mixed_rng, MIB)),
        ("clean_prose", prose(&mut rng, MIB)),
        ("pii_dense", dense(&mut rng, MIB)),
        ("near_misses", near_misses(&mut rng, MIB)),
        ("adv_digits", "1".repeat(MIB)),
        ("adv_spaced_digits", "1 ".repeat(MIB / 2)),
        ("adv_dashed_groups", "12-".repeat(MIB / 3)),
        ("adv_at_signs", "@".repeat(MIB)),
        ("adv_a_at", "a@".repeat(MIB / 2)),
        ("adv_dots", "a.".repeat(MIB / 2)),
        ("adv_colons", "1:".repeat(MIB / 2)),
        ("adv_jwt_prefix", "eyJ".repeat(MIB / 3)),
        ("adv_pem_begin", "-----BEGIN RSA PRIVATE KEY-----".repeat(MIB / 31)),
        ("adv_keywords", "password= token: Dear Mr ".repeat(MIB / 25)),
        ("adv_names", "John Mary Sarah ".repeat(MIB / 16)),
    ]
}

/// MB/s of `scan` over `bytes` bytes: the median of three rounds of at
/// least `round` each.
fn throughput(bytes: usize, round: Duration, mut scan: impl FnMut()) -> f64 {
    let mut rounds: Vec<f64> = (0..3)
        .map(|_| {
            let mut iterations = 0u32;
            let start = Instant::now();
            while iterations == 0 || start.elapsed() < round {
                scan();
                iterations += 1;
            }
            (bytes as f64 * f64::from(iterations)) / start.elapsed().as_secs_f64() / 1e6
        })
        .collect();
    rounds.sort_by(f64::total_cmp);
    rounds[1]
}

/// FNV-1a over every finding: equal digests, equal findings.
fn digest(found: &[Finding]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for &b in bytes {
            h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
    };
    for f in found {
        eat(f.class.name().as_bytes());
        eat(&f.start.to_le_bytes());
        eat(&f.end.to_le_bytes());
        eat(f.rule.as_bytes());
        eat(f.subtype.as_deref().unwrap_or_default().as_bytes());
        eat(&f.confidence.to_bits().to_le_bytes());
    }
    h
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let only: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    let baseline = !args.iter().any(|a| a == "--no-baseline");
    // `--dump NAME`: write that corpus to stdout, to look at it.
    if let Some(name) = args.iter().position(|a| a == "--dump").and_then(|i| args.get(i + 1)) {
        if let Some((_, text)) = corpora().into_iter().find(|(n, _)| n == name) {
            print!("{text}");
        }
        return;
    }
    let set = DetectorSet::new(EntityClass::ALL);
    let mut out: Vec<Finding> = Vec::new();
    let round = Duration::from_millis(500);
    let mut mixed_mbps = None;
    println!("{:<20} {:>10} {:>10} {:>10} {:>18}", "corpus", "bytes", "MB/s", "findings", "digest");
    let corpora = corpora();
    for (name, text) in &corpora {
        if !only.is_empty() && !only.iter().any(|o| name.contains(o.as_str())) {
            continue;
        }
        let mbps = throughput(text.len(), round, || {
            out.clear();
            set.scan(black_box(text), &mut out);
        });
        println!("{name:<20} {:>10} {mbps:>10.1} {:>10} {:>18x}", text.len(), out.len(), digest(&out));
        if *name == "mixed" {
            mixed_mbps = Some(mbps);
        }
    }
    if let (true, Some(ours), Some((_, text))) = (baseline, mixed_mbps, corpora.iter().find(|(n, _)| *n == "mixed")) {
        let naive = naive::Naive::new();
        let mut matches = 0;
        let theirs = throughput(text.len(), round, || matches = naive.scan(black_box(text.as_bytes())));
        println!();
        println!(
            "naive baseline on mixed: {} regexes, {theirs:.1} MB/s, {matches} raw matches (shapes only, no checksums)",
            naive.len()
        );
        println!("meshward / naive on mixed: {:.1}x", ours / theirs);
    }
}
