//! The injection guard over our own corpora (`testdata/injection/`): every
//! attack technique we wrote must be caught at ≥ 90%, and everyday,
//! technical and security-minded benign prompts wrongly caught at ≤ 1%.
//! Third-party corpora (PyRIT, promptfoo) are measured by `make eval`.

use meshward_engine::guard::injection::{Assessment, InjectionDoc, InjectionGuard, Source};

const TESTDATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/injection");

/// One text per line; `#` comments; `indirect: ` prefix; `\n`, `\t`, `\\`
/// and `\u{XXXX}` escapes (the same format meshward-eval reads).
fn samples(file: &str) -> Vec<(usize, String, Source)> {
    let content = std::fs::read_to_string(format!("{TESTDATA}/{file}")).unwrap();
    content
        .lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty() && !line.starts_with('#'))
        .map(|(number, line)| match line.strip_prefix("indirect: ") {
            Some(rest) => (number + 1, unescape(rest), Source::Indirect),
            None => (number + 1, unescape(line), Source::Direct),
        })
        .collect()
}

fn unescape(line: &str) -> String {
    let mut out = String::new();
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('\\') => out.push('\\'),
            Some('u') if chars.peek() == Some(&'{') => {
                chars.next();
                let hex: String = chars.by_ref().take_while(|&h| h != '}').collect();
                out.push(char::from_u32(u32::from_str_radix(&hex, 16).unwrap()).unwrap());
            }
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

fn assess_all(file: &str) -> Vec<(usize, Source, Assessment)> {
    let guard = InjectionGuard::compile(&InjectionDoc::default()).unwrap();
    samples(file).into_iter().map(|(line, text, source)| (line, source, guard.assess(&text, source))).collect()
}

#[test]
fn own_attacks_are_detected_at_ninety_percent() {
    let results = assess_all("attacks.txt");
    assert!(results.len() >= 150, "at least 150 attacks, got {}", results.len());
    let missed: Vec<String> = results
        .iter()
        .filter(|(_, _, assessment)| !assessment.tripped)
        .map(|(line, _, assessment)| format!("line {line}: {:.2} {:?}", assessment.score, assessment.signals))
        .collect();
    let rate = 1.0 - missed.len() as f64 / results.len() as f64;
    assert!(rate >= 0.90, "detection {:.1}%; missed:\n{}", rate * 100.0, missed.join("\n"));
}

#[test]
fn own_benign_prompts_are_flagged_at_most_one_percent() {
    let results = assess_all("benign.txt");
    assert!(results.len() >= 400, "at least 400 benign prompts, got {}", results.len());
    let flagged: Vec<String> = results
        .iter()
        .filter(|(_, _, assessment)| assessment.tripped)
        .map(|(line, _, assessment)| format!("line {line}: {:.2} {:?}", assessment.score, assessment.signals))
        .collect();
    let rate = flagged.len() as f64 / results.len() as f64;
    assert!(rate <= 0.01, "false positives {:.1}%:\n{}", rate * 100.0, flagged.join("\n"));
}

#[test]
fn every_indirect_attack_is_caught() {
    // Planted instructions in tool results are the case the stricter
    // threshold exists for: none may slip through.
    let missed: Vec<usize> = assess_all("attacks.txt")
        .into_iter()
        .filter(|(_, source, assessment)| *source == Source::Indirect && !assessment.tripped)
        .map(|(line, _, _)| line)
        .collect();
    assert!(missed.is_empty(), "indirect attacks missed at lines {missed:?}");
}

#[test]
fn violations_never_echo_the_text() {
    for (line, _, assessment) in assess_all("attacks.txt") {
        if let Some(violation) = assessment.violation("messages[1].content") {
            assert!(violation.rule.starts_with("injection."), "line {line}");
            assert!(!violation.detail.to_lowercase().contains("instructions and"), "line {line}");
            assert!(!violation.detail.contains("base64"), "line {line}");
        }
    }
}
