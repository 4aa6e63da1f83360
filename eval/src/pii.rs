//! `meshward-eval pii`: precision and recall per PII class of the real
//! `meshward scan --jsonl` over a labelled corpus written by
//! `scripts/gen-pii-corpus.py` (JSON Lines `{"id", "group", "text",
//! "labels": [{"class", "start", "end"}], "subtype"?}`, byte offsets).
//!
//! Match rule, per text: findings are taken in order of start; a finding
//! matches the not-yet-matched label of the same class it overlaps most
//! (spans are half-open and must share at least one byte). A matched label
//! is a true positive; an unmatched finding is a false positive of its
//! class, unless it overlaps a label of its class that another finding
//! already matched (a split detection): that is counted as a duplicate,
//! neither right nor wrong. An unmatched label is a false negative. A
//! finding of the wrong class on a label is therefore a false positive of
//! its class and leaves the label a false negative. Exact-span matches are
//! counted among the true positives as well.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use meshward_engine::detect::EntityClass;
use serde_json::Value;

/// A labelled or detected span: class name and byte range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    pub class: String,
    pub start: usize,
    pub end: usize,
    /// The detector rule (findings only), for the examples.
    pub rule: String,
}

impl Span {
    fn overlap(&self, other: &Span) -> usize {
        self.end.min(other.end).saturating_sub(self.start.max(other.start))
    }
}

/// How the findings of one text met its labels (indices into each list).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct TextMatch {
    /// (label, finding) pairs.
    pub matched: Vec<(usize, usize)>,
    pub false_positives: Vec<usize>,
    pub duplicates: Vec<usize>,
    pub false_negatives: Vec<usize>,
}

/// Applies the match rule of the module doc to one text.
pub fn match_text(labels: &[Span], findings: &[Span]) -> TextMatch {
    let mut order: Vec<usize> = (0..findings.len()).collect();
    order.sort_by_key(|&i| findings.get(i).map(|f| (f.start, f.end)));
    let mut label_taken = vec![false; labels.len()];
    let mut result = TextMatch::default();
    for i in order {
        let Some(finding) = findings.get(i) else { continue };
        let same_class = |l: &Span| l.class == finding.class && l.overlap(finding) > 0;
        let best = labels
            .iter()
            .enumerate()
            .filter(|(j, l)| !label_taken.get(*j).copied().unwrap_or(true) && same_class(l))
            .max_by_key(|(j, l)| (l.overlap(finding), std::cmp::Reverse(*j)))
            .map(|(j, _)| j);
        match best {
            Some(j) => {
                if let Some(taken) = label_taken.get_mut(j) {
                    *taken = true;
                }
                result.matched.push((j, i));
            }
            None if labels.iter().any(same_class) => result.duplicates.push(i),
            None => result.false_positives.push(i),
        }
    }
    result.false_negatives = label_taken.iter().enumerate().filter(|(_, t)| !**t).map(|(j, _)| j).collect();
    result
}

/// Counts for one class over the corpus.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    pub support: usize,
    pub tp: usize,
    pub exact: usize,
    pub fp: usize,
    pub fn_: usize,
    pub duplicates: usize,
}

impl Tally {
    /// 1.0 when nothing was found: no finding was wrong.
    pub fn precision(&self) -> f64 {
        ratio(self.tp, self.tp + self.fp)
    }

    /// 1.0 when nothing was labelled: nothing was missed.
    pub fn recall(&self) -> f64 {
        ratio(self.tp, self.support)
    }
}

fn ratio(part: usize, whole: usize) -> f64 {
    if whole == 0 {
        1.0
    } else {
        part as f64 / whole as f64
    }
}

/// The issue's targets for precision and recall; `None` for classes that
/// are reported with their figures only (context heuristics).
pub fn target(class: &str) -> Option<f64> {
    match EntityClass::from_name(class) {
        Some(c) if c.is_checksummed() => Some(0.99),
        Some(
            EntityClass::Email | EntityClass::Phone | EntityClass::UsSsn | EntityClass::IpAddress | EntityClass::UkNino,
        ) => Some(0.97),
        Some(EntityClass::Secret) => Some(0.90),
        _ => None,
    }
}

struct Item {
    id: String,
    group: String,
    subtype: Option<String>,
    text: String,
    labels: Vec<Span>,
}

fn span(value: &Value) -> Option<Span> {
    Some(Span {
        class: value.get("class")?.as_str()?.to_owned(),
        start: usize::try_from(value.get("start")?.as_u64()?).ok()?,
        end: usize::try_from(value.get("end")?.as_u64()?).ok()?,
        rule: value.get("rule").and_then(Value::as_str).unwrap_or_default().to_owned(),
    })
}

fn spans(value: Option<&Value>, what: &str, id: &str) -> Result<Vec<Span>, String> {
    let list = value.and_then(Value::as_array).ok_or_else(|| format!("{id}: no {what} array"))?;
    list.iter().map(|v| span(v).ok_or_else(|| format!("{id}: malformed {what} entry {v}"))).collect()
}

fn read_corpus(path: &Path) -> Result<Vec<Item>, String> {
    let content = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut items = Vec::new();
    for (number, line) in content.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let value: Value = serde_json::from_str(line).map_err(|e| format!("{}:{}: {e}", path.display(), number + 1))?;
        let field = |name: &str| value.get(name).and_then(Value::as_str).map(str::to_owned);
        let id = field("id").ok_or_else(|| format!("{}:{}: no id", path.display(), number + 1))?;
        let text = field("text").ok_or_else(|| format!("{id}: no text"))?;
        let labels = spans(value.get("labels"), "labels", &id)?;
        if let Some(bad) = labels.iter().find(|l| l.start >= l.end || text.get(l.start..l.end).is_none()) {
            return Err(format!("{id}: label {}..{} is not a span of the text", bad.start, bad.end));
        }
        items.push(Item { group: field("group").unwrap_or_default(), subtype: field("subtype"), id, text, labels });
    }
    Ok(items)
}

/// Runs `scan_bin scan --jsonl [--policy P]` over the corpus file and
/// returns the findings by text id.
fn run_scan(scan_bin: &Path, corpus: &Path, policy: Option<&Path>) -> Result<HashMap<String, Vec<Span>>, String> {
    let input = std::fs::File::open(corpus).map_err(|e| format!("{}: {e}", corpus.display()))?;
    let mut command = Command::new(scan_bin);
    command.args(["scan", "--jsonl"]);
    if let Some(policy) = policy {
        command.arg("--policy").arg(policy);
    }
    let mut child = command
        .stdin(Stdio::from(input))
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", scan_bin.display()))?;
    let mut output = String::new();
    if let Some(mut stdout) = child.stdout.take() {
        stdout.read_to_string(&mut output).map_err(|e| format!("reading scan output: {e}"))?;
    }
    let status = child.wait().map_err(|e| format!("waiting for scan: {e}"))?;
    if !status.success() {
        return Err(format!("{} scan --jsonl exited with {status}", scan_bin.display()));
    }
    let mut by_id = HashMap::new();
    for line in output.lines().filter(|l| !l.trim().is_empty()) {
        let value: Value = serde_json::from_str(line).map_err(|e| format!("scan output: {e}: {line}"))?;
        let id = value.get("id").and_then(Value::as_str).ok_or_else(|| format!("scan output without id: {line}"))?;
        by_id.insert(id.to_owned(), spans(value.get("findings"), "findings", id)?);
    }
    Ok(by_id)
}

pub struct Args {
    pub corpus: PathBuf,
    pub scan_bin: PathBuf,
    pub policy: Option<PathBuf>,
    pub show: usize,
}

pub fn parse_args(args: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut parsed = Args {
        corpus: PathBuf::from(".cache/pii-eval/corpus.jsonl"),
        scan_bin: PathBuf::from("target/release/meshward"),
        policy: None,
        show: 5,
    };
    let mut iter = args;
    while let Some(flag) = iter.next() {
        let value = iter.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--corpus" => parsed.corpus = PathBuf::from(value),
            "--scan-bin" => parsed.scan_bin = PathBuf::from(value),
            "--policy" => parsed.policy = Some(PathBuf::from(value)),
            "--show" => parsed.show = value.parse().map_err(|e| format!("--show: {e}"))?,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(parsed)
}

/// Shows `span` inside its text as `…before⟦value⟧after…`.
fn excerpt(text: &str, start: usize, end: usize) -> String {
    let mut from = start.saturating_sub(30);
    while !text.is_char_boundary(from) {
        from -= 1;
    }
    let mut to = (end + 30).min(text.len());
    while !text.is_char_boundary(to) {
        to += 1;
    }
    let part = |a: usize, b: usize| text.get(a..b).unwrap_or_default().replace('\n', "⏎");
    format!("{}⟦{}⟧{}", part(from, start), part(start, end), part(end, to))
}

/// Runs the scan, prints the tables; returns whether every targeted class
/// met its target.
pub fn run(args: &Args) -> Result<bool, String> {
    let items = read_corpus(&args.corpus)?;
    let mut findings = run_scan(&args.scan_bin, &args.corpus, args.policy.as_deref())?;
    let mut tallies: BTreeMap<String, Tally> = BTreeMap::new();
    let mut misses: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut wrong: BTreeMap<String, Vec<String>> = BTreeMap::new();
    // group -> (texts, texts with a false positive, classes that fired)
    let mut groups: BTreeMap<String, (usize, usize, BTreeMap<String, usize>)> = BTreeMap::new();
    // positive group + subtype -> (labels, found)
    let mut subtypes: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for item in &items {
        let found = findings.remove(&item.id).ok_or_else(|| format!("scan gave no line for {}", item.id))?;
        let result = match_text(&item.labels, &found);
        for label in &item.labels {
            tallies.entry(label.class.clone()).or_default().support += 1;
        }
        for &(j, i) in &result.matched {
            if let (Some(l), Some(f)) = (item.labels.get(j), found.get(i)) {
                let t = tallies.entry(l.class.clone()).or_default();
                t.tp += 1;
                t.exact += usize::from(l.start == f.start && l.end == f.end);
            }
        }
        for &i in &result.duplicates {
            if let Some(f) = found.get(i) {
                tallies.entry(f.class.clone()).or_default().duplicates += 1;
            }
        }
        let group = groups.entry(item.group.clone()).or_default();
        group.0 += 1;
        group.1 += usize::from(!result.false_positives.is_empty());
        for &i in &result.false_positives {
            let Some(f) = found.get(i) else { continue };
            tallies.entry(f.class.clone()).or_default().fp += 1;
            *group.2.entry(f.class.clone()).or_default() += 1;
            wrong.entry(f.class.clone()).or_default().push(format!(
                "{} [{}] {}",
                item.id,
                f.rule,
                excerpt(&item.text, f.start, f.end)
            ));
        }
        for &j in &result.false_negatives {
            let Some(l) = item.labels.get(j) else { continue };
            tallies.entry(l.class.clone()).or_default().fn_ += 1;
            let instead: Vec<String> = found
                .iter()
                .filter(|f| f.overlap(l) > 0)
                .map(|f| format!("{} {}..{}", f.class, f.start, f.end))
                .collect();
            let got = if instead.is_empty() { "nothing".to_owned() } else { instead.join(", ") };
            misses.entry(l.class.clone()).or_default().push(format!(
                "{} {}..{} got {got}: {}",
                item.id,
                l.start,
                l.end,
                excerpt(&item.text, l.start, l.end)
            ));
        }
        if let (Some(subtype), Some(class)) = (&item.subtype, item.group.strip_prefix("positive:")) {
            // Only the labels of the text's own class (a URL's IP host is not a SECRET format).
            let of_class = |j: usize| item.labels.get(j).is_some_and(|l| l.class == class);
            let entry = subtypes.entry(format!("{class}/{subtype}")).or_default();
            entry.0 += (0..item.labels.len()).filter(|&j| of_class(j)).count();
            entry.1 += result.matched.iter().filter(|&&(j, _)| of_class(j)).count();
        }
    }
    Ok(print_report(&tallies, &groups, &subtypes, &misses, &wrong, items.len(), args.show))
}

fn print_report(
    tallies: &BTreeMap<String, Tally>,
    groups: &BTreeMap<String, (usize, usize, BTreeMap<String, usize>)>,
    subtypes: &BTreeMap<String, (usize, usize)>,
    misses: &BTreeMap<String, Vec<String>>,
    wrong: &BTreeMap<String, Vec<String>>,
    texts: usize,
    show: usize,
) -> bool {
    let labels: usize = tallies.values().map(|t| t.support).sum();
    println!("PII detectors on {texts} generated texts ({labels} labels); a finding matches an overlapping label of its class");
    println!(
        "{:<14} {:>7} {:>6} {:>6} {:>6} {:>6} {:>5} {:>9} {:>7}  target",
        "class", "support", "tp", "exact", "fp", "fn", "dup", "precision", "recall"
    );
    // Catalogue order, then anything else the scanner reported.
    let mut names: Vec<String> = EntityClass::ALL.iter().map(|c| c.name().to_owned()).collect();
    names.extend(tallies.keys().filter(|k| !names.contains(k)).cloned().collect::<Vec<_>>());
    let mut all_met = true;
    for name in &names {
        let Some(t) = tallies.get(name) else { continue };
        let verdict = match target(name) {
            Some(goal) => {
                let met = t.precision() >= goal && t.recall() >= goal;
                all_met &= met;
                format!("≥ {goal:.2} {}", if met { "met" } else { "NOT MET" })
            }
            None => "none (reported)".to_owned(),
        };
        println!(
            "{name:<14} {:>7} {:>6} {:>6} {:>6} {:>6} {:>5} {:>9.3} {:>7.3}  {verdict}",
            t.support,
            t.tp,
            t.exact,
            t.fp,
            t.fn_,
            t.duplicates,
            t.precision(),
            t.recall()
        );
    }
    println!("\nrecall by format (positive texts):");
    for (name, (total, found)) in subtypes {
        println!("  {name:<28} {found:>4}/{total:<4} {:.3}", ratio(*found, *total));
    }
    println!("\ntexts with a false positive, by group:");
    for (name, (count, with_fp, classes)) in groups {
        let fired: Vec<String> = classes.iter().map(|(c, n)| format!("{c}×{n}")).collect();
        println!("  {name:<34} {with_fp:>4}/{count:<4} {}", fired.join(" "));
    }
    if show > 0 {
        for name in &names {
            for (what, list) in [("missed", misses.get(name)), ("false positive", wrong.get(name))] {
                let Some(list) = list else { continue };
                println!("\n{name} {what} ({} in all):", list.len());
                for line in list.iter().take(show) {
                    println!("  {line}");
                }
            }
        }
    }
    all_met
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(class: &str, start: usize, end: usize) -> Span {
        Span { class: class.to_owned(), start, end, rule: String::new() }
    }

    #[test]
    fn an_overlapping_finding_of_the_same_class_matches() {
        let m = match_text(&[s("PHONE", 10, 24)], &[s("PHONE", 13, 24)]);
        assert_eq!(m.matched, [(0, 0)]);
        assert!(m.false_positives.is_empty() && m.false_negatives.is_empty());
    }

    #[test]
    fn touching_spans_do_not_overlap() {
        let m = match_text(&[s("EMAIL", 0, 5)], &[s("EMAIL", 5, 9)]);
        assert_eq!(m.false_positives, [0]);
        assert_eq!(m.false_negatives, [0]);
    }

    #[test]
    fn a_finding_of_another_class_is_a_false_positive_and_the_label_a_miss() {
        let m = match_text(&[s("IBAN", 0, 22)], &[s("CREDIT_CARD", 4, 20)]);
        assert!(m.matched.is_empty());
        assert_eq!(m.false_positives, [0]);
        assert_eq!(m.false_negatives, [0]);
    }

    #[test]
    fn a_split_detection_counts_once_and_the_rest_as_duplicates() {
        let m = match_text(&[s("ADDRESS", 0, 40)], &[s("ADDRESS", 20, 40), s("ADDRESS", 0, 15)]);
        assert_eq!(m.matched, [(0, 1)], "the earliest finding takes the label");
        assert_eq!(m.duplicates, [0]);
        assert!(m.false_positives.is_empty());
    }

    #[test]
    fn each_finding_takes_the_label_it_overlaps_most() {
        let labels = [s("PERSON", 0, 10), s("PERSON", 12, 20)];
        let m = match_text(&labels, &[s("PERSON", 8, 20)]);
        assert_eq!(m.matched, [(1, 0)]);
        assert_eq!(m.false_negatives, [0]);
    }

    #[test]
    fn precision_and_recall_count_the_right_things() {
        let t = Tally { support: 4, tp: 3, fp: 1, fn_: 1, ..Tally::default() };
        assert_eq!(t.precision(), 0.75);
        assert_eq!(t.recall(), 0.75);
        assert_eq!(Tally::default().precision(), 1.0);
    }

    #[test]
    fn targets_follow_the_issue() {
        assert_eq!(target("AU_MEDICARE"), Some(0.99));
        assert_eq!(target("UK_NINO"), Some(0.97));
        assert_eq!(target("SECRET"), Some(0.90));
        assert_eq!(target("PERSON"), None);
    }
}
