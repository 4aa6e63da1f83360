//! `meshward-sink verify`: offline verification for auditors.
//!
//! Inputs: a signed checkpoint, the verifier key, and the entries — either a
//! JSONL export (`GET /v1/entries`, one leaf per line) or a copy of the data
//! directory. Optionally earlier checkpoints (`--previous`, repeatable).
//!
//! Checks, in order, stopping at the first failure:
//! 1. the checkpoint's signature (and every `--previous` one's);
//! 2. every entry: framing and CRC (data directory), valid JSON, its `index`
//!    member equal to its position;
//! 3. the RFC 6962 root of the first `size` entries equals the checkpoint's;
//!    on a mismatch, trusted earlier checkpoints (`--previous`, and the data
//!    directory's `checkpoints.jsonl` history) narrow down where the first
//!    altered entry lies;
//! 4. an inclusion proof for every entry verifies against the root;
//! 5. each earlier checkpoint is consistent with this one (RFC 9162 proof).

use std::io::BufRead;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;

use crate::merkle::{leaf_hash, verify_consistency, verify_inclusion, Hash, Tree};
use crate::note::{NoteVerifier, SignedCheckpoint};
use crate::segment::{self, ScanMode};
use crate::SinkError;

#[derive(Debug, Clone)]
pub struct VerifyOptions {
    pub checkpoint: PathBuf,
    /// A verifier key, or a file holding one.
    pub key: String,
    pub export: Option<PathBuf>,
    pub data_dir: Option<PathBuf>,
    pub previous: Vec<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub origin: String,
    pub size: u64,
    pub root_b64: String,
    pub entries_read: u64,
    pub previous_checked: usize,
    pub history_checked: usize,
}

/// A verification failure; `entry` is the first bad entry when it is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub entry: Option<u64>,
    pub message: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

fn fail<T>(entry: Option<u64>, message: impl Into<String>) -> Result<Result<T, Failure>, SinkError> {
    Ok(Err(Failure { entry, message: message.into() }))
}

pub fn load_verifier(key: &str) -> Result<NoteVerifier, SinkError> {
    let p = Path::new(key);
    if p.is_file() {
        let text = std::fs::read_to_string(p).map_err(|e| SinkError::io(format!("reading {}", p.display()), e))?;
        NoteVerifier::parse(text.trim())
    } else {
        NoteVerifier::parse(key)
    }
}

fn check_entry(i: u64, bytes: &[u8]) -> Result<Hash, String> {
    let v: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| format!("entry {i} is not valid JSON: {e}"))?;
    match v.get("index").and_then(|x| x.as_u64()) {
        Some(n) if n == i => Ok(leaf_hash(bytes)),
        Some(n) => Err(format!("entry {i} says it is entry {n}")),
        None => Err(format!("entry {i} has no index member")),
    }
}

/// Reads every entry's leaf hash, or the first problem.
fn read_hashes(opts: &VerifyOptions) -> Result<Result<Vec<Hash>, Failure>, SinkError> {
    let mut hashes = Vec::new();
    if let Some(export) = &opts.export {
        let f = std::fs::File::open(export).map_err(|e| SinkError::io(format!("opening {}", export.display()), e))?;
        let mut r = std::io::BufReader::with_capacity(1 << 20, f);
        let mut line = Vec::new();
        loop {
            line.clear();
            let n = r
                .read_until(b'\n', &mut line)
                .map_err(|e| SinkError::io(format!("reading {}", export.display()), e))?;
            if n == 0 {
                break;
            }
            if line.last() == Some(&b'\n') {
                line.pop();
            }
            let i = hashes.len() as u64;
            match check_entry(i, &line) {
                Ok(h) => hashes.push(h),
                Err(m) => return fail(Some(i), format!("{m} (line {} of {})", i + 1, export.display())),
            }
        }
        return Ok(Ok(hashes));
    }
    let Some(dir) = &opts.data_dir else {
        return Err(SinkError::Config("give --export FILE or --data-dir DIR".into()));
    };
    let mut problem: Option<Failure> = None;
    let scanned =
        segment::scan_log(&dir.join("log"), ScanMode::ReadOnly, &mut |i, pos, path, payload| match check_entry(
            i, payload,
        ) {
            Ok(h) => {
                hashes.push(h);
                Ok(())
            }
            Err(m) => {
                problem = Some(Failure {
                    entry: Some(i),
                    message: format!("{m} ({} offset {})", path.display(), pos.offset),
                });
                Err(SinkError::Inconsistent(String::new()))
            }
        });
    if let Some(p) = problem {
        return Ok(Err(p));
    }
    match scanned {
        Ok(r) => {
            if let Some(t) = r.torn {
                eprintln!(
                    "note: {} ends with {} bytes of an incomplete write at offset {} ({}); entries from {} on are not readable",
                    t.file.display(),
                    t.bytes,
                    t.offset,
                    t.why,
                    r.count
                );
            }
            Ok(Ok(hashes))
        }
        Err(SinkError::Corrupt { file, offset, what }) => {
            let entry = hashes.len() as u64;
            fail(Some(entry), format!("entry {entry}: {} offset {offset}: {what}", file.display()))
        }
        Err(e) => Err(e),
    }
}

fn read_note(path: &Path) -> Result<String, SinkError> {
    std::fs::read_to_string(path).map_err(|e| SinkError::io(format!("reading {}", path.display()), e))
}

/// The data directory's checkpoint history (`checkpoints.jsonl`), verified.
fn history(opts: &VerifyOptions, verifier: &NoteVerifier) -> Vec<SignedCheckpoint> {
    let Some(dir) = &opts.data_dir else { return Vec::new() };
    let Ok(text) = std::fs::read_to_string(dir.join("checkpoints.jsonl")) else { return Vec::new() };
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v.get("note").and_then(|n| n.as_str()).map(str::to_string))
        .filter_map(|n| SignedCheckpoint::open(&n, verifier).ok())
        .collect()
}

pub fn verify(opts: &VerifyOptions) -> Result<Result<Summary, Failure>, SinkError> {
    let verifier = load_verifier(&opts.key)?;
    let note = read_note(&opts.checkpoint)?;
    let signed = match SignedCheckpoint::open(&note, &verifier) {
        Ok(s) => s,
        Err(e) => return fail(None, format!("checkpoint {}: {e}", opts.checkpoint.display())),
    };
    let cp = signed.checkpoint;
    let mut previous = Vec::new();
    for p in &opts.previous {
        match SignedCheckpoint::open(&read_note(p)?, &verifier) {
            Ok(s) if s.checkpoint.origin != cp.origin => {
                return fail(
                    None,
                    format!(
                        "previous checkpoint {} is for origin {:?}, not {:?}",
                        p.display(),
                        s.checkpoint.origin,
                        cp.origin
                    ),
                )
            }
            Ok(s) => previous.push((p.display().to_string(), s.checkpoint)),
            Err(e) => return fail(None, format!("previous checkpoint {}: {e}", p.display())),
        }
    }

    let hashes = match read_hashes(opts)? {
        Ok(h) => h,
        Err(f) => return Ok(Err(f)),
    };
    let n = hashes.len() as u64;
    if n < cp.size {
        return fail(
            Some(n),
            format!("the checkpoint covers {} entries but only {n} were read: entry {n} onward is missing", cp.size),
        );
    }
    let mut tree = Tree::new();
    for h in hashes.iter().take(cp.size as usize) {
        tree.push_leaf_hash(*h);
    }
    let root = tree.root();
    let hist = history(opts, &verifier);
    if root != cp.root {
        // Narrow down with every trusted smaller checkpoint.
        let mut trusted: Vec<(u64, Hash)> = previous
            .iter()
            .map(|(_, c)| (c.size, c.root))
            .chain(hist.iter().map(|s| (s.checkpoint.size, s.checkpoint.root)))
            .filter(|(s, _)| *s <= cp.size)
            .collect();
        trusted.push((cp.size, cp.root));
        trusted.sort();
        trusted.dedup();
        let mut good = 0u64;
        for (size, r) in trusted {
            if tree.root_at(size)? == r {
                good = good.max(size);
            } else {
                let msg = if size - good == 1 {
                    format!("entry {good} has been altered: entries 0..{good} match a signed checkpoint, entries 0..{size} do not")
                } else {
                    format!(
                        "root mismatch: entries 0..{size} do not hash to the signed root; the first altered entry is \
                         between entry {good} and entry {} (entries before {good} match a signed checkpoint)",
                        size - 1
                    )
                };
                return fail(Some(good), msg);
            }
        }
        return fail(None, "root mismatch");
    }
    for i in 0..cp.size {
        let proof = tree.inclusion_proof(i, cp.size)?;
        if !verify_inclusion(i, cp.size, &hashes[i as usize], &proof, &cp.root) {
            return fail(Some(i), format!("entry {i}: inclusion proof does not verify"));
        }
    }
    for (name, prev) in &previous {
        if prev.size > cp.size {
            return fail(
                None,
                format!(
                    "previous checkpoint {name} (size {}) is larger than the checkpoint (size {})",
                    prev.size, cp.size
                ),
            );
        }
        if prev.size == 0 {
            continue;
        }
        let proof = tree.consistency_proof(prev.size, cp.size)?;
        if !verify_consistency(prev.size, cp.size, &prev.root, &cp.root, &proof) {
            return fail(
                Some(prev.size.min(cp.size)),
                format!(
                    "the log is not consistent with previous checkpoint {name} (size {}): history was rewritten",
                    prev.size
                ),
            );
        }
    }
    Ok(Ok(Summary {
        origin: cp.origin,
        size: cp.size,
        root_b64: B64.encode(cp.root),
        entries_read: n,
        previous_checked: previous.len(),
        history_checked: hist.len(),
    }))
}
