//! meshward-eval: runs the injection guard over attack and benign corpora
//! and prints, per corpus, how many texts it caught (attacks) or wrongly
//! caught (benign). Exits 1 when any attack corpus is below the detection
//! target or any benign corpus above the false-positive target, so
//! `make eval` fails on a regression.
//!
//! Inputs:
//! - `--testdata DIR` (default `testdata/injection`): our own `attacks.txt`
//!   and `benign.txt`, one text per line (see [`parse_lines`]).
//! - `--corpora DIR` (default `.cache/corpora`): third-party corpora written
//!   by `scripts/fetch-corpora.sh`, JSON Lines `{"text": …, "source":
//!   "direct"|"indirect", "kind": "attack"|"benign", "id": …}`. Absent
//!   directory: only our own files are measured.
//! - `--show-misses N`: print the ids (with score and rules) of up to N
//!   misses or false positives per corpus (tuning aid).
//! - `--threshold X`, `--indirect-threshold X`: override the defaults.
//!
//! `meshward-eval pii [--corpus FILE] [--scan-bin BIN] [--policy FILE]
//! [--show N]` scores the PII detectors instead: see [`pii`].

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use meshward_engine::guard::injection::{InjectionDoc, InjectionGuard, Source};

mod pii;

const DETECTION_TARGET: f64 = 0.90;
const FALSE_POSITIVE_TARGET: f64 = 0.01;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Attack,
    Benign,
}

struct Sample {
    id: String,
    text: String,
    source: Source,
}

struct Corpus {
    name: String,
    kind: Kind,
    samples: Vec<Sample>,
}

/// One text per line; `#` starts a comment line; `indirect: ` marks text
/// that reaches the model as a tool result or document; `\n`, `\t`, `\\`
/// and `\u{XXXX}` are unescaped (for multi-line and invisible-character cases).
fn parse_lines(name: &str, content: &str) -> Vec<Sample> {
    content
        .lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty() && !line.starts_with('#'))
        .map(|(number, line)| {
            let (source, body) = match line.strip_prefix("indirect: ") {
                Some(rest) => (Source::Indirect, rest),
                None => (Source::Direct, line),
            };
            Sample { id: format!("{name}:{}", number + 1), text: unescape(body), source }
        })
        .collect()
}

fn unescape(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
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
                out.extend(u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32));
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

fn read_jsonl(path: &Path) -> Result<Vec<(Kind, Sample)>, String> {
    let content = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut samples = Vec::new();
    for (number, line) in content.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let value: serde_json::Value =
            serde_json::from_str(line).map_err(|e| format!("{}:{}: {e}", path.display(), number + 1))?;
        let text = value.get("text").and_then(|t| t.as_str()).unwrap_or_default().to_owned();
        let source = match value.get("source").and_then(|s| s.as_str()) {
            Some("indirect") => Source::Indirect,
            _ => Source::Direct,
        };
        let kind = match value.get("kind").and_then(|k| k.as_str()) {
            Some("benign") => Kind::Benign,
            _ => Kind::Attack,
        };
        let id = value.get("id").and_then(|i| i.as_str()).map_or_else(|| format!("line {}", number + 1), str::to_owned);
        samples.push((kind, Sample { id, text, source }));
    }
    Ok(samples)
}

fn load(testdata: &Path, corpora: &Path) -> Result<Vec<Corpus>, String> {
    let mut out = Vec::new();
    for (file, kind) in [("attacks.txt", Kind::Attack), ("benign.txt", Kind::Benign)] {
        let path = testdata.join(file);
        let content = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        out.push(Corpus { name: format!("own/{file}"), kind, samples: parse_lines(file, &content) });
    }
    let Ok(entries) = std::fs::read_dir(corpora) else {
        eprintln!("note: no third-party corpora in {} (run scripts/fetch-corpora.sh)", corpora.display());
        return Ok(out);
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    paths.sort();
    for path in paths {
        let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        let mut attacks = Vec::new();
        let mut benign = Vec::new();
        for (kind, sample) in read_jsonl(&path)? {
            match kind {
                Kind::Attack => attacks.push(sample),
                Kind::Benign => benign.push(sample),
            }
        }
        for (kind, samples) in [(Kind::Attack, attacks), (Kind::Benign, benign)] {
            if !samples.is_empty() {
                out.push(Corpus { name: stem.clone(), kind, samples });
            }
        }
    }
    Ok(out)
}

struct Args {
    testdata: PathBuf,
    corpora: PathBuf,
    show_misses: usize,
    doc: InjectionDoc,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        testdata: PathBuf::from("testdata/injection"),
        corpora: PathBuf::from(".cache/corpora"),
        show_misses: 0,
        doc: InjectionDoc::default(),
    };
    let mut iter = std::env::args().skip(1);
    while let Some(flag) = iter.next() {
        let value = iter.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--testdata" => args.testdata = PathBuf::from(value),
            "--corpora" => args.corpora = PathBuf::from(value),
            "--show-misses" => args.show_misses = value.parse().map_err(|e| format!("--show-misses: {e}"))?,
            "--threshold" => args.doc.threshold = Some(value.parse().map_err(|e| format!("--threshold: {e}"))?),
            "--indirect-threshold" => {
                args.doc.indirect_threshold = Some(value.parse().map_err(|e| format!("--indirect-threshold: {e}"))?)
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(args)
}

fn main() -> ExitCode {
    if std::env::args().nth(1).as_deref() == Some("pii") {
        return exit(pii::parse_args(std::env::args().skip(2)).and_then(|args| pii::run(&args)));
    }
    exit(parse_args().and_then(|args| {
        let guard = InjectionGuard::compile(&args.doc).map_err(|e| format!("{}: {}", e.path, e.message))?;
        let corpora = load(&args.testdata, &args.corpora)?;
        Ok(report(&guard, &corpora, args.show_misses))
    }))
}

/// 0 when every target was met, 1 when one was not, 2 on a usage error.
fn exit(result: Result<bool, String>) -> ExitCode {
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(message) => {
            eprintln!("meshward-eval: {message}");
            ExitCode::from(2)
        }
    }
}

/// Prints the table; returns whether every corpus met its target.
fn report(guard: &InjectionGuard, corpora: &[Corpus], show_misses: usize) -> bool {
    println!("{:<34} {:>7} {:>6} {:>9} {:>8}  target", "corpus", "kind", "count", "flagged", "rate");
    let mut all_met = true;
    for corpus in corpora {
        let mut flagged = 0usize;
        let mut wrong = Vec::new();
        for sample in &corpus.samples {
            let assessment = guard.assess(&sample.text, sample.source);
            flagged += usize::from(assessment.tripped);
            if assessment.tripped != (corpus.kind == Kind::Attack) {
                wrong.push(format!("{} ({:.2}: {})", sample.id, assessment.score, assessment.signals.join(" ")));
            }
        }
        let count = corpus.samples.len();
        let rate = if count == 0 { 0.0 } else { flagged as f64 / count as f64 };
        let (kind, met, target) = match corpus.kind {
            Kind::Attack => {
                ("attack", rate >= DETECTION_TARGET, format!("≥ {:.0}% detected", DETECTION_TARGET * 100.0))
            }
            Kind::Benign => (
                "benign",
                rate <= FALSE_POSITIVE_TARGET,
                format!("≤ {:.0}% false positives", FALSE_POSITIVE_TARGET * 100.0),
            ),
        };
        all_met &= met;
        println!(
            "{:<34} {:>7} {:>6} {:>9} {:>7.1}%  {} {}",
            corpus.name,
            kind,
            count,
            flagged,
            rate * 100.0,
            target,
            if met { "ok" } else { "MISSED" }
        );
        for id in wrong.iter().take(show_misses) {
            println!("    {} {id}", if corpus.kind == Kind::Attack { "missed" } else { "false positive" });
        }
    }
    all_met
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_unescaped_and_sources_marked() {
        let samples = parse_lines("f", "# comment\n\nplain\nindirect: a\\nb \\u{200B}x\n");
        assert_eq!(samples.len(), 2);
        assert_eq!(samples[0].text, "plain");
        assert_eq!(samples[0].source, Source::Direct);
        assert_eq!(samples[1].text, "a\nb \u{200B}x");
        assert_eq!(samples[1].source, Source::Indirect);
        assert_eq!(samples[1].id, "f:4");
    }
}
