//! Detection throughput: `cargo bench -p meshward-engine --bench detect`.
//!
//! A plain `harness = false` binary (no criterion): for each corpus it scans
//! the whole text repeatedly for about a second with every built-in class
//! enabled and prints MB/s (10^6 bytes per second). Corpora are generated
//! here, deterministically: clean prose, PII-dense text, and adversarial
//! inputs (long digit runs, runs of '@' and '.', many near-miss candidates).
//! Pass a corpus name as the first argument to run only that one.

use std::hint::black_box;
use std::time::{Duration, Instant};

use meshward_engine::detect::{DetectorSet, EntityClass, Finding};

/// xorshift64*: deterministic, dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }
}

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
    vec![
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

fn main() {
    let only: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let set = DetectorSet::new(EntityClass::ALL);
    let mut out: Vec<Finding> = Vec::new();
    println!("{:<20} {:>10} {:>10} {:>10}", "corpus", "bytes", "MB/s", "findings");
    for (name, text) in corpora() {
        if !only.is_empty() && !only.iter().any(|o| name.contains(o.as_str())) {
            continue;
        }
        let mut iterations = 0u32;
        let start = Instant::now();
        let mut findings = 0;
        while iterations == 0 || start.elapsed() < Duration::from_millis(800) {
            out.clear();
            set.scan(black_box(&text), &mut out);
            findings = out.len();
            iterations += 1;
        }
        let secs = start.elapsed().as_secs_f64();
        let mbps = (text.len() as f64 * f64::from(iterations)) / secs / 1e6;
        println!("{name:<20} {:>10} {mbps:>10.1} {findings:>10}", text.len());
    }
}
