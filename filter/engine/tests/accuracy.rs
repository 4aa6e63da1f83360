//! Accuracy is measured, not assumed (DESIGN.md §5): a generated, labelled
//! corpus (tests/corpus, deterministic seed; the committed copy under
//! testdata/detect/ must match it) is scanned with every class enabled, and
//! precision and recall per class must stay above floors.
//!
//! Regenerate the committed copy with
//! `MESHWARD_WRITE_CORPUS=1 cargo test -p meshward-engine --release --test accuracy`.
//! The table prints with `-- --nocapture`.

mod corpus;

use std::collections::BTreeMap;

use meshward_engine::detect::{DetectorSet, EntityClass, Finding};

const SEED: u64 = 0x6D65_7368_7761_7264; // "meshward"
const PER_CLASS: usize = 300;

#[derive(Default, Debug, Clone, Copy)]
struct Score {
    tp: usize,
    fp: usize,
    fn_: usize,
}

impl Score {
    fn precision(self) -> f64 {
        if self.tp + self.fp == 0 {
            1.0
        } else {
            self.tp as f64 / (self.tp + self.fp) as f64
        }
    }
    fn recall(self) -> f64 {
        if self.tp + self.fn_ == 0 {
            1.0
        } else {
            self.tp as f64 / (self.tp + self.fn_) as f64
        }
    }
}

fn overlaps(a: (usize, usize), b: (usize, usize)) -> bool {
    a.0 < b.1 && b.0 < a.1
}

fn score(examples: &[corpus::Example]) -> BTreeMap<&'static str, Score> {
    let set = DetectorSet::new(EntityClass::ALL);
    let mut scores: BTreeMap<&'static str, Score> = corpus::CLASSES.iter().map(|c| (*c, Score::default())).collect();
    let mut found: Vec<Finding> = Vec::new();
    for ex in examples {
        found.clear();
        set.scan(&ex.text, &mut found);
        let mut matched = vec![false; ex.labels.len()];
        for f in &found {
            let class = f.class.name();
            let hit = ex
                .labels
                .iter()
                .enumerate()
                .find(|(i, l)| !matched[*i] && l.class == class && overlaps((l.start, l.end), (f.start, f.end)));
            let s = scores.entry(f.class.name()).or_default();
            match hit {
                Some((i, _)) => {
                    matched[i] = true;
                    s.tp += 1;
                }
                None => {
                    s.fp += 1;
                    if std::env::var_os("MESHWARD_SHOW_ERRORS").is_some() {
                        eprintln!("FP {class} {:?} in {:?}", &ex.text[f.start..f.end], ex.text);
                    }
                }
            }
        }
        for (i, l) in ex.labels.iter().enumerate() {
            if !matched[i] {
                scores.entry(l.class).or_default().fn_ += 1;
                if std::env::var_os("MESHWARD_SHOW_ERRORS").is_some() {
                    eprintln!("FN {} {:?} in {:?}", l.class, &ex.text[l.start..l.end], ex.text);
                }
            }
        }
    }
    scores
}

/// (precision, recall) floors. Checksum-validated classes are held to the
/// highest bar; context classes to what the heuristics honestly reach.
fn floors(class: &str) -> (f64, f64) {
    match class {
        "CREDIT_CARD" | "IBAN" | "AU_TFN" | "AU_ABN" | "AU_ACN" | "AU_MEDICARE" => (0.99, 0.99),
        "EMAIL" | "PHONE" | "US_SSN" | "IP_ADDRESS" | "UK_NINO" => (0.97, 0.97),
        "SECRET" => (0.95, 0.95),
        _ => (0.85, 0.80),
    }
}

#[test]
fn precision_and_recall_per_class_meet_the_floors() {
    let examples = corpus::generate(SEED, PER_CLASS);
    let committed = format!("{}/../../testdata/detect/corpus.jsonl", env!("CARGO_MANIFEST_DIR"));
    let generated: String = examples.iter().map(|e| e.to_json() + "\n").collect();
    if std::env::var_os("MESHWARD_WRITE_CORPUS").is_some() {
        std::fs::create_dir_all(std::path::Path::new(&committed).parent().unwrap()).unwrap();
        std::fs::write(&committed, &generated).unwrap();
    }
    let on_disk = std::fs::read_to_string(&committed).expect("testdata/detect/corpus.jsonl (see the module doc)");
    assert!(on_disk == generated, "testdata/detect/corpus.jsonl is stale: regenerate it (see the module doc)");

    let scores = score(&examples);
    println!("{:<14} {:>6} {:>6} {:>6} {:>9} {:>7}", "class", "tp", "fp", "fn", "precision", "recall");
    let mut failures = Vec::new();
    for (class, s) in &scores {
        println!("{class:<14} {:>6} {:>6} {:>6} {:>9.3} {:>7.3}", s.tp, s.fp, s.fn_, s.precision(), s.recall());
        let (p, r) = floors(class);
        if s.precision() < p || s.recall() < r {
            failures.push(format!(
                "{class}: precision {:.3} (floor {p}), recall {:.3} (floor {r})",
                s.precision(),
                s.recall()
            ));
        }
    }
    assert!(failures.is_empty(), "below the floors:\n{}", failures.join("\n"));
}

#[test]
fn the_scorer_can_fail() {
    // A detector set with no classes finds nothing: recall 0 everywhere.
    let examples = corpus::generate(1, 3);
    let empty = DetectorSet::new([]);
    let mut found = Vec::new();
    for ex in &examples {
        empty.scan(&ex.text, &mut found);
    }
    assert!(found.is_empty());
    let labelled = examples.iter().filter(|e| !e.labels.is_empty()).count();
    assert!(labelled > 0);
}
