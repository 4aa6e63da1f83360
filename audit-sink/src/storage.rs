//! The store: the segmented log on disk, the in-memory Merkle tree and read
//! index built from it, the group-commit writer, deduplication, sequence-gap
//! tracking and checkpoint signing.
//!
//! Data directory layout:
//!
//! ```text
//! <data-dir>/LOCK               advisory lock: one sink per directory
//! <data-dir>/log/*.seg          the log (see `segment`)
//! <data-dir>/checkpoint         the latest signed checkpoint (C2SP note)
//! <data-dir>/checkpoints.jsonl  every checkpoint ever signed, {"note": …} per line
//! <data-dir>/signing-key        checkpoint key (PRIVATE+KEY+…, 0600), unless
//!                               MESHWARD_SINK_SIGNING_KEY is set
//! <data-dir>/reader-keys.jsonl  reader keys, SHA-256 only (see `auth`)
//! ```
//!
//! Write path: the HTTP handler verifies and parses a delivery, then sends a
//! [`Job`] to the writer thread. The writer collects jobs for up to the commit
//! window or until the batch is full, frames every leaf, issues one write and
//! one `fdatasync`, and only then adds the leaves to the tree and index and
//! answers every job in the batch. Readers and the checkpoint signer only ever
//! see synced leaves, so a checkpoint can never cover unsynced data.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::hash::{Hash as _, Hasher as _};
use std::io::Write as _;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use meshward_audit_proto::{time, Action};

use crate::gaps::GapTracker;
use crate::leaf;
use crate::merkle::{leaf_hash, Hash, Tree};
use crate::metrics::Metrics;
use crate::note::{Checkpoint, NoteSigner, SignedCheckpoint};
use crate::segment::{self, RecordPos, ScanMode, FRAME, MAGIC, SEGMENT_HEADER};
use crate::SinkError;

#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub data_dir: PathBuf,
    /// Checkpoint origin line.
    pub origin: String,
    /// A new segment is started once the current one would exceed this.
    pub segment_max_bytes: u64,
    /// How long the writer waits for more jobs before committing a batch.
    pub commit_window: Duration,
    /// Largest number of leaves per group commit.
    pub commit_max_records: usize,
    /// How long a `webhook-id` is remembered for deduplication, counted from
    /// when it was received (a sender's retries re-sign with fresh
    /// timestamps, so the 300 s window alone is not enough).
    pub dedupe_window: Duration,
}

impl StoreConfig {
    pub fn new(data_dir: impl Into<PathBuf>, origin: impl Into<String>) -> StoreConfig {
        StoreConfig {
            data_dir: data_dir.into(),
            origin: origin.into(),
            segment_max_bytes: 64 << 20,
            commit_window: Duration::from_millis(1),
            commit_max_records: 4096,
            dedupe_window: Duration::from_secs(3600),
        }
    }
}

pub fn sync_dir(dir: &Path) -> Result<(), SinkError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| SinkError::io(format!("fsync directory {}", dir.display()), e))
}

/// Writes `contents` to `path` atomically and durably (temp file, fsync, rename, fsync dir).
pub fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<(), SinkError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = path.with_extension("tmp");
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(|e| SinkError::io(format!("creating {}", tmp.display()), e))?;
    f.write_all(contents)
        .and_then(|_| f.sync_all())
        .map_err(|e| SinkError::io(format!("writing {}", tmp.display()), e))?;
    std::fs::rename(&tmp, path).map_err(|e| SinkError::io(format!("renaming to {}", path.display()), e))?;
    sync_dir(dir)
}

/// Appends one line durably to `path` (created with `mode` if missing).
pub fn append_line(path: &Path, line: &[u8], mode: u32) -> Result<(), SinkError> {
    let existed = path.exists();
    let mut f = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(mode)
        .open(path)
        .map_err(|e| SinkError::io(format!("opening {}", path.display()), e))?;
    let mut buf = line.to_vec();
    buf.push(b'\n');
    f.write_all(&buf)
        .and_then(|_| f.sync_data())
        .map_err(|e| SinkError::io(format!("appending to {}", path.display()), e))?;
    if !existed {
        sync_dir(path.parent().unwrap_or(Path::new(".")))?;
    }
    Ok(())
}

fn hash64(s: &str) -> u64 {
    let mut h = DefaultHasher::new();
    s.hash(&mut h);
    h.finish()
}

/// Small string interner (tenants, finding classes).
#[derive(Debug, Default)]
struct Interner {
    ids: HashMap<String, u32>,
}

impl Interner {
    fn intern(&mut self, s: &str) -> u32 {
        if let Some(&id) = self.ids.get(s) {
            return id;
        }
        let id = self.ids.len() as u32;
        self.ids.insert(s.to_string(), id);
        id
    }

    fn get(&self, s: &str) -> Option<u32> {
        self.ids.get(s).copied()
    }
}

/// The indexed facts of one entry.
#[derive(Debug, Clone, Copy)]
struct EntryMeta {
    pos: RecordPos,
    tenant: u32,
    time_ms: i64,
    action: u8,
    request_id: u64,
    /// Bit i set: class with interned id i (< 63) has a nonzero count. Bit 63:
    /// some class with id ≥ 63 is present (confirmed by parsing the leaf).
    classes: u64,
}

fn action_code(a: &str) -> u8 {
    Action::parse(a).map_or(255, |a| a as u8)
}

/// What the sink indexes about an event, taken before it is written.
#[derive(Debug, Clone)]
pub struct EventFacts {
    pub tenant: String,
    pub time_ms: i64,
    pub action: String,
    pub request_id: String,
    pub classes: Vec<String>,
    pub instance_id: String,
    pub seq: u64,
}

impl EventFacts {
    fn from_view(v: &leaf::EventView) -> Result<EventFacts, String> {
        Ok(EventFacts {
            tenant: v.tenant.clone(),
            time_ms: time::parse_rfc3339_ms(&v.time).map_err(|e| e.to_string())?,
            action: v.action.clone(),
            request_id: v.request_id.clone(),
            classes: v.findings.iter().filter(|(_, n)| **n > 0).map(|(c, _)| c.clone()).collect(),
            instance_id: v.instance_id.clone(),
            seq: v.seq,
        })
    }

    pub fn from_event(e: &meshward_audit_proto::DecisionEvent) -> Result<EventFacts, SinkError> {
        Ok(EventFacts {
            tenant: e.tenant.clone(),
            time_ms: e.time_ms()?,
            action: e.action.as_str().to_string(),
            request_id: e.request_id.clone(),
            classes: e.findings.iter().filter(|(_, n)| **n > 0).map(|(c, _)| c.clone()).collect(),
            instance_id: e.instance_id.clone(),
            seq: e.seq,
        })
    }
}

/// In-memory state derived from the synced log.
#[derive(Debug, Default)]
struct LogState {
    tree: Tree,
    entries: Vec<EntryMeta>,
    segments: Vec<Arc<File>>,
    tenants: Interner,
    classes: Interner,
    by_tenant: HashMap<u32, Vec<u64>>,
    gaps: GapTracker,
}

impl LogState {
    fn add(&mut self, pos: RecordPos, hash: Hash, facts: &EventFacts) {
        let index = self.tree.size();
        self.tree.push_leaf_hash(hash);
        let tenant = self.tenants.intern(&facts.tenant);
        let mut classes = 0u64;
        for c in &facts.classes {
            let id = self.classes.intern(c);
            classes |= 1u64 << id.min(63);
        }
        self.entries.push(EntryMeta {
            pos,
            tenant,
            time_ms: facts.time_ms,
            action: action_code(&facts.action),
            request_id: hash64(&facts.request_id),
            classes,
        });
        self.by_tenant.entry(tenant).or_default().push(index);
        self.gaps.observe(&facts.instance_id, facts.seq);
    }
}

/// One prepared event: its canonical JSON and the facts to index.
#[derive(Debug, Clone)]
pub struct PreparedEvent {
    pub canonical: Vec<u8>,
    pub facts: EventFacts,
}

/// One verified delivery waiting for the writer.
pub struct Job {
    pub webhook_id: String,
    pub webhook_ts: i64,
    pub received_ms: i64,
    pub events: Vec<PreparedEvent>,
    /// Answered after the batch is synced: the index range `[first, end)`.
    pub reply: tokio::sync::oneshot::Sender<Result<(u64, u64), SinkError>>,
}

/// Filters of a read query. `since` is inclusive, `until` exclusive (event time).
#[derive(Debug, Default, Clone)]
pub struct EventQuery {
    /// `None`: every tenant (only for keys scoped to `*`).
    pub tenant: Option<String>,
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    pub request_id: Option<String>,
    pub action: Option<Action>,
    pub class: Option<String>,
    /// Only entries with index > after.
    pub after: Option<u64>,
    pub limit: Option<usize>,
}

/// A located entry: read it with [`read_leaf`] without holding any lock.
#[derive(Debug, Clone)]
pub struct Located {
    pub index: u64,
    file: Arc<File>,
    pos: RecordPos,
}

pub fn read_leaf(l: &Located) -> Result<Vec<u8>, SinkError> {
    segment::read_record(&l.file, l.pos).map_err(|e| SinkError::io(format!("reading entry {}", l.index), e))
}

#[derive(Debug, Default)]
struct Dedupe {
    seen: HashMap<String, i64>,
    inserts: u64,
}

/// The writer's handle on the active segment.
struct LogWriter {
    log_dir: PathBuf,
    file: Option<File>,
    seg_no: u32,
    seg_len: u64,
    next_index: u64,
    segment_max: u64,
}

impl LogWriter {
    fn roll(&mut self, state: &RwLock<LogState>) -> Result<(), SinkError> {
        let path = self.log_dir.join(segment::segment_name(self.next_index));
        let mut f = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o640)
            .open(&path)
            .map_err(|e| SinkError::io(format!("creating segment {}", path.display()), e))?;
        let mut header = MAGIC.to_vec();
        header.extend_from_slice(&self.next_index.to_le_bytes());
        f.write_all(&header)
            .and_then(|_| f.sync_all())
            .map_err(|e| SinkError::io(format!("writing segment header {}", path.display()), e))?;
        sync_dir(&self.log_dir)?;
        let reader = File::open(&path).map_err(|e| SinkError::io(format!("opening {}", path.display()), e))?;
        let mut st = state.write().map_err(|_| SinkError::Unavailable("state lock poisoned".into()))?;
        st.segments.push(Arc::new(reader));
        self.seg_no = (st.segments.len() - 1) as u32;
        drop(st);
        self.file = Some(f);
        self.seg_len = SEGMENT_HEADER;
        Ok(())
    }

    /// Writes framed records and fdatasyncs; returns their positions.
    fn write_synced(
        &mut self,
        leaves: &[Vec<u8>],
        state: &RwLock<LogState>,
        metrics: &Metrics,
    ) -> Result<Vec<RecordPos>, SinkError> {
        let total: u64 = leaves.iter().map(|l| FRAME + l.len() as u64).sum();
        if self.file.is_none() || (self.seg_len > SEGMENT_HEADER && self.seg_len + total > self.segment_max) {
            self.roll(state)?;
        }
        let mut buf = Vec::with_capacity(total as usize);
        let mut positions = Vec::with_capacity(leaves.len());
        let mut off = self.seg_len;
        for l in leaves {
            positions.push(RecordPos { segment: self.seg_no, offset: off, len: l.len() as u32 });
            segment::frame(l, &mut buf);
            off += FRAME + l.len() as u64;
        }
        let Some(file) = self.file.as_ref() else {
            return Err(SinkError::Unavailable("no active segment".into()));
        };
        // Two steps, so a batch cut short is recognised and dropped whole
        // (segment.rs): the batch with its first frame zeroed, durable; then
        // that frame, durable. Acknowledgement follows the second sync.
        let first_frame = segment::commit_frame(&mut buf);
        file.write_all_at(&buf, self.seg_len).map_err(|e| SinkError::io("writing to the log", e))?;
        let t = Instant::now();
        file.sync_data().map_err(|e| SinkError::io("fdatasync of the log", e))?;
        if let Some(first_frame) = first_frame {
            file.write_all_at(&first_frame, self.seg_len).map_err(|e| SinkError::io("writing to the log", e))?;
            file.sync_data().map_err(|e| SinkError::io("fdatasync of the log", e))?;
        }
        metrics.observe_fsync(t.elapsed());
        self.seg_len = off;
        self.next_index += leaves.len() as u64;
        Ok(positions)
    }
}

pub struct Store {
    cfg: StoreConfig,
    state: RwLock<LogState>,
    signer: NoteSigner,
    last_checkpoint: Mutex<(SignedCheckpoint, Instant)>,
    dedupe: Mutex<Dedupe>,
    metrics: Arc<Metrics>,
    tx: Mutex<Option<mpsc::Sender<Job>>>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    failed: AtomicBool,
    _lock: File,
}

/// What happened during recovery, for the startup log line.
#[derive(Debug)]
pub struct OpenReport {
    pub entries: u64,
    pub segments: usize,
    pub torn: Option<segment::TornTail>,
    pub checkpoint_size: Option<u64>,
}

impl Store {
    /// Opens (creating if needed) the data directory, recovers the log and
    /// starts the writer thread. Refuses to start on corruption, on a
    /// checkpoint the log does not match, or on a checkpoint signed by
    /// another key or for another origin.
    pub fn open(
        cfg: StoreConfig,
        signer: NoteSigner,
        metrics: Arc<Metrics>,
    ) -> Result<(Arc<Store>, OpenReport), SinkError> {
        let dir = &cfg.data_dir;
        std::fs::create_dir_all(dir).map_err(|e| SinkError::io(format!("creating {}", dir.display()), e))?;
        let lock = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(dir.join("LOCK"))
            .map_err(|e| SinkError::io("opening LOCK", e))?;
        if lock.try_lock().is_err() {
            return Err(SinkError::Config(format!("another meshward-sink is using {} (LOCK is held)", dir.display())));
        }
        let log_dir = dir.join("log");
        if !log_dir.exists() {
            std::fs::create_dir_all(&log_dir)
                .map_err(|e| SinkError::io(format!("creating {}", log_dir.display()), e))?;
            sync_dir(dir)?;
        }

        let mut state = LogState { tree: Tree::new(), ..LogState::default() };
        let mut dedupe = Dedupe::default();
        let now_s = unix_ms() / 1000;
        let dedupe_horizon = now_s - cfg.dedupe_window.as_secs() as i64;
        let scan = segment::scan_log(&log_dir, ScanMode::Repair, &mut |index, pos, path, payload| {
            let bad = |what: String| SinkError::Corrupt {
                file: path.to_path_buf(),
                offset: pos.offset,
                what: format!("entry {index}: {what}"),
            };
            let view = leaf::parse(payload).map_err(|e| bad(format!("not a valid leaf: {e}")))?;
            if view.index != index {
                return Err(bad(format!("leaf says index {}", view.index)));
            }
            let facts = EventFacts::from_view(&view.event).map_err(bad)?;
            let received_s = time::parse_rfc3339_ms(&view.received).map_or(now_s, |ms| ms / 1000);
            if received_s >= dedupe_horizon {
                dedupe.seen.insert(view.webhook_id.clone(), received_s);
            }
            state.add(pos, leaf_hash(payload), &facts);
            Ok(())
        })?;
        for s in &scan.segments {
            let f = File::open(&s.path).map_err(|e| SinkError::io(format!("opening {}", s.path.display()), e))?;
            state.segments.push(Arc::new(f));
        }
        let count = scan.count;

        // The last signed checkpoint must still be a prefix of the log.
        let cp_path = dir.join("checkpoint");
        let verifier = signer.verifier();
        let last = match std::fs::read_to_string(&cp_path) {
            Ok(note) => {
                let signed = SignedCheckpoint::open(&note, &verifier).map_err(|e| {
                    SinkError::Config(format!(
                        "{} does not verify with the signing key {} ({e}); if the key was replaced on purpose, \
                         move the old checkpoint aside and keep it for auditors",
                        cp_path.display(),
                        verifier.encode()
                    ))
                })?;
                let cp = &signed.checkpoint;
                if cp.origin != cfg.origin {
                    return Err(SinkError::Config(format!(
                        "the log's origin is {:?} but --origin is {:?}",
                        cp.origin, cfg.origin
                    )));
                }
                if cp.size > count {
                    return Err(SinkError::Inconsistent(format!(
                        "the log holds {count} entries but the last signed checkpoint covers {}: signed entries are missing",
                        cp.size
                    )));
                }
                if state.tree.root_at(cp.size)? != cp.root {
                    return Err(SinkError::Inconsistent(format!(
                        "the first {} entries of the log do not hash to the root of the last signed checkpoint",
                        cp.size
                    )));
                }
                Some(signed)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(SinkError::io(format!("reading {}", cp_path.display()), e)),
        };
        let report = OpenReport {
            entries: count,
            segments: scan.segments.len(),
            torn: scan.torn.clone(),
            checkpoint_size: last.as_ref().map(|s| s.checkpoint.size),
        };
        let (last_signed, had_checkpoint) = match last {
            Some(s) => (s, true),
            None => {
                let cp = Checkpoint { origin: cfg.origin.clone(), size: 0, root: crate::merkle::empty_root() };
                (SignedCheckpoint::sign(cp, &signer)?, false)
            }
        };

        let writer_state = match scan.segments.last() {
            Some(last) => {
                let f = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(&last.path)
                    .map_err(|e| SinkError::io(format!("opening {}", last.path.display()), e))?;
                (Some(f), (scan.segments.len() - 1) as u32, last.len)
            }
            None => (None, 0, 0),
        };
        let writer = LogWriter {
            log_dir,
            file: writer_state.0,
            seg_no: writer_state.1,
            seg_len: writer_state.2,
            next_index: count,
            segment_max: cfg.segment_max_bytes.max(SEGMENT_HEADER + 1),
        };
        let (tx, rx) = mpsc::channel::<Job>();
        let store = Arc::new(Store {
            cfg,
            state: RwLock::new(state),
            signer,
            last_checkpoint: Mutex::new((last_signed, Instant::now())),
            dedupe: Mutex::new(dedupe),
            metrics,
            tx: Mutex::new(Some(tx)),
            writer: Mutex::new(None),
            failed: AtomicBool::new(false),
            _lock: lock,
        });
        let s2 = Arc::clone(&store);
        let handle = std::thread::Builder::new()
            .name("meshward-log-writer".into())
            .spawn(move || s2.writer_loop(writer, rx))
            .map_err(|e| SinkError::io("starting the writer thread", e))?;
        if let Ok(mut w) = store.writer.lock() {
            *w = Some(handle);
        }
        if !had_checkpoint {
            store.sign_checkpoint_force()?;
        }
        Ok((store, report))
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    pub fn origin(&self) -> &str {
        &self.cfg.origin
    }

    pub fn verifier_key(&self) -> String {
        self.signer.verifier().encode()
    }

    pub fn is_failed(&self) -> bool {
        self.failed.load(Ordering::Relaxed)
    }

    /// Records a webhook id; false if it was already seen (durable or in
    /// flight) within the dedupe window.
    pub fn dedupe_insert(&self, id: &str) -> bool {
        let Ok(mut d) = self.dedupe.lock() else { return false };
        let now_s = unix_ms() / 1000;
        let horizon = now_s - self.cfg.dedupe_window.as_secs() as i64;
        if d.seen.get(id).is_some_and(|t| *t >= horizon) {
            return false;
        }
        d.seen.insert(id.to_string(), now_s);
        d.inserts += 1;
        if d.inserts % 4096 == 0 {
            d.seen.retain(|_, t| *t >= horizon);
        }
        true
    }

    /// Forgets a webhook id whose delivery was not stored.
    pub fn dedupe_remove(&self, id: &str) {
        if let Ok(mut d) = self.dedupe.lock() {
            d.seen.remove(id);
        }
    }

    /// Queues a job for the writer.
    pub fn submit(&self, job: Job) -> Result<(), SinkError> {
        if self.is_failed() {
            return Err(SinkError::Unavailable("an earlier write failed; restart the sink".into()));
        }
        let guard = self.tx.lock().map_err(|_| SinkError::Unavailable("writer lock poisoned".into()))?;
        match guard.as_ref() {
            Some(tx) => tx.send(job).map_err(|_| SinkError::Unavailable("the writer has stopped".into())),
            None => Err(SinkError::Unavailable("shutting down".into())),
        }
    }

    fn writer_loop(self: Arc<Self>, mut w: LogWriter, rx: mpsc::Receiver<Job>) {
        let max_records = self.cfg.commit_max_records.max(1);
        let window = self.cfg.commit_window;
        while let Ok(first) = rx.recv() {
            let mut records = first.events.len();
            let mut bytes: usize = first.events.iter().map(|e| e.canonical.len() + 200).sum();
            let mut jobs = vec![first];
            let deadline = Instant::now() + window;
            while records < max_records && bytes < segment::MAX_BATCH_BYTES {
                let next = match rx.try_recv() {
                    Ok(j) => Some(j),
                    Err(mpsc::TryRecvError::Disconnected) => None,
                    Err(mpsc::TryRecvError::Empty) => {
                        let now = Instant::now();
                        if now >= deadline {
                            None
                        } else {
                            rx.recv_timeout(deadline - now).ok()
                        }
                    }
                };
                let Some(j) = next else { break };
                records += j.events.len();
                bytes += j.events.iter().map(|e| e.canonical.len() + 200).sum::<usize>();
                jobs.push(j);
            }
            self.commit(&mut w, jobs);
        }
    }

    fn commit(&self, w: &mut LogWriter, jobs: Vec<Job>) {
        if self.is_failed() {
            for j in jobs {
                let _ = j.reply.send(Err(SinkError::Unavailable("an earlier write failed; restart the sink".into())));
            }
            return;
        }
        let mut leaves = Vec::new();
        let mut ranges = Vec::with_capacity(jobs.len());
        let mut index = w.next_index;
        for j in &jobs {
            let received = time::format_rfc3339_ms(j.received_ms);
            let first = index;
            for e in &j.events {
                leaves.push(leaf::build(index, &received, &j.webhook_id, j.webhook_ts, &e.canonical));
                index += 1;
            }
            ranges.push((first, index));
        }
        let hashes: Vec<Hash> = leaves.iter().map(|l| leaf_hash(l)).collect();
        match w.write_synced(&leaves, &self.state, &self.metrics) {
            Ok(positions) => {
                match self.state.write() {
                    Ok(mut st) => {
                        let mut k = 0;
                        for j in &jobs {
                            for e in &j.events {
                                st.add(positions[k], hashes[k], &e.facts);
                                k += 1;
                            }
                        }
                    }
                    Err(_) => {
                        self.fail("state lock poisoned");
                    }
                }
                self.metrics.batches.fetch_add(1, Ordering::Relaxed);
                self.metrics.events_ingested.fetch_add(leaves.len() as u64, Ordering::Relaxed);
                for (j, r) in jobs.into_iter().zip(ranges) {
                    let _ = j.reply.send(Ok(r));
                }
            }
            Err(e) => {
                // After a failed write or fsync the file's state is unknown:
                // stop accepting writes; a restart re-scans and truncates the
                // unacknowledged tail.
                self.metrics.write_errors.fetch_add(1, Ordering::Relaxed);
                self.fail(&e.to_string());
                for j in jobs {
                    let _ = j.reply.send(Err(SinkError::Unavailable(format!("write failed: {e}"))));
                }
            }
        }
    }

    fn fail(&self, why: &str) {
        if !self.failed.swap(true, Ordering::Relaxed) {
            eprintln!("meshward-sink: ERROR: the log stopped accepting writes: {why}");
        }
    }

    /// Stops the writer after it has committed everything queued.
    pub fn shutdown(&self) {
        if let Ok(mut tx) = self.tx.lock() {
            tx.take();
        }
        let handle = self.writer.lock().ok().and_then(|mut h| h.take());
        if let Some(h) = handle {
            let _ = h.join();
        }
    }

    pub fn tree_size(&self) -> u64 {
        self.state.read().map_or(0, |s| s.tree.size())
    }

    pub fn root_at(&self, size: u64) -> Result<Hash, SinkError> {
        self.read_state()?.tree.root_at(size)
    }

    fn read_state(&self) -> Result<std::sync::RwLockReadGuard<'_, LogState>, SinkError> {
        self.state.read().map_err(|_| SinkError::Unavailable("state lock poisoned".into()))
    }

    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<(Hash, Vec<Hash>), SinkError> {
        let st = self.read_state()?;
        let proof = st.tree.inclusion_proof(index, size)?;
        let leaf = st.tree.leaf(index).ok_or_else(|| SinkError::Proof("no such leaf".into()))?;
        Ok((leaf, proof))
    }

    pub fn consistency_proof(&self, from: u64, to: u64) -> Result<Vec<Hash>, SinkError> {
        self.read_state()?.tree.consistency_proof(from, to)
    }

    /// The latest signed checkpoint and when it was signed.
    pub fn checkpoint(&self) -> Result<(SignedCheckpoint, Instant), SinkError> {
        self.last_checkpoint
            .lock()
            .map(|g| g.clone())
            .map_err(|_| SinkError::Unavailable("checkpoint lock poisoned".into()))
    }

    /// Signs a checkpoint for the current (synced) tree if it grew since the
    /// last one. Blocking (fsyncs): call from a blocking context.
    pub fn sign_checkpoint(&self) -> Result<SignedCheckpoint, SinkError> {
        self.sign_inner(false)
    }

    fn sign_checkpoint_force(&self) -> Result<SignedCheckpoint, SinkError> {
        self.sign_inner(true)
    }

    fn sign_inner(&self, force: bool) -> Result<SignedCheckpoint, SinkError> {
        let mut last =
            self.last_checkpoint.lock().map_err(|_| SinkError::Unavailable("checkpoint lock poisoned".into()))?;
        let (size, root, prev_root) = {
            let st = self.read_state()?;
            let size = st.tree.size();
            let prev = &last.0.checkpoint;
            if size < prev.size {
                self.metrics.checkpoint_failures.fetch_add(1, Ordering::Relaxed);
                return Err(SinkError::Inconsistent(format!(
                    "tree size {size} is below the last checkpoint's {}",
                    prev.size
                )));
            }
            if size == prev.size && !force {
                return Ok(last.0.clone());
            }
            (size, st.tree.root(), st.tree.root_at(prev.size)?)
        };
        if prev_root != last.0.checkpoint.root {
            self.metrics.checkpoint_failures.fetch_add(1, Ordering::Relaxed);
            return Err(SinkError::Inconsistent(
                "the tree is not an extension of the last signed checkpoint; refusing to sign".into(),
            ));
        }
        let cp = Checkpoint { origin: self.cfg.origin.clone(), size, root };
        let signed = SignedCheckpoint::sign(cp, &self.signer)?;
        let dir = &self.cfg.data_dir;
        let persist = || -> Result<(), SinkError> {
            let mut line = b"{\"note\":".to_vec();
            leaf::write_str(&signed.note, &mut line);
            line.push(b'}');
            append_line(&dir.join("checkpoints.jsonl"), &line, 0o644)?;
            write_atomic(&dir.join("checkpoint"), signed.note.as_bytes(), 0o644)
        };
        if let Err(e) = persist() {
            self.metrics.checkpoint_failures.fetch_add(1, Ordering::Relaxed);
            return Err(e);
        }
        *last = (signed.clone(), Instant::now());
        self.metrics.checkpoints_signed.fetch_add(1, Ordering::Relaxed);
        Ok(signed)
    }

    /// Locates entries `[start, end)`.
    pub fn locate_range(&self, start: u64, end: u64) -> Result<Vec<Located>, SinkError> {
        let st = self.read_state()?;
        let end = end.min(st.entries.len() as u64);
        let mut out = Vec::with_capacity(end.saturating_sub(start) as usize);
        for index in start..end {
            out.push(self.locate(&st, index)?);
        }
        Ok(out)
    }

    fn locate(&self, st: &LogState, index: u64) -> Result<Located, SinkError> {
        let meta = st.entries.get(index as usize).ok_or_else(|| SinkError::Proof(format!("no entry {index}")))?;
        let file = st
            .segments
            .get(meta.pos.segment as usize)
            .cloned()
            .ok_or_else(|| SinkError::Unavailable("segment missing".into()))?;
        Ok(Located { index, file, pos: meta.pos })
    }

    /// Finds entries matching a query (index order). The returned flag says
    /// whether each candidate still needs an exact check of `request_id` /
    /// `class` against the leaf (see [`leaf_matches`]).
    pub fn query(&self, q: &EventQuery) -> Result<Vec<(Located, bool)>, SinkError> {
        let st = self.read_state()?;
        let tenant = match &q.tenant {
            Some(t) => match st.tenants.get(t) {
                Some(id) => Some(id),
                None => return Ok(Vec::new()),
            },
            None => None,
        };
        let class_bit = match &q.class {
            Some(c) => match st.classes.get(c) {
                Some(id) => Some((1u64 << id.min(63), id >= 63)),
                None => return Ok(Vec::new()),
            },
            None => None,
        };
        let rid = q.request_id.as_deref().map(hash64);
        let action = q.action.map(|a| a as u8);
        let after = q.after.map_or(0, |a| a + 1);
        let limit = q.limit.unwrap_or(usize::MAX);
        let all: Box<dyn Iterator<Item = u64>> = match tenant {
            Some(t) => {
                let list = st.by_tenant.get(&t).map(|v| v.as_slice()).unwrap_or(&[]);
                let from = list.partition_point(|&i| i < after);
                Box::new(list[from..].iter().copied())
            }
            None => Box::new(after..st.entries.len() as u64),
        };
        let mut out = Vec::new();
        for index in all {
            if out.len() >= limit {
                break;
            }
            let Some(m) = st.entries.get(index as usize) else { break };
            if tenant.is_some_and(|t| m.tenant != t)
                || q.since_ms.is_some_and(|s| m.time_ms < s)
                || q.until_ms.is_some_and(|u| m.time_ms >= u)
                || action.is_some_and(|a| m.action != a)
                || rid.is_some_and(|r| m.request_id != r)
                || class_bit.is_some_and(|(bit, _)| m.classes & bit == 0)
            {
                continue;
            }
            let needs_check = rid.is_some() || class_bit.is_some_and(|(_, overflow)| overflow);
            out.push((self.locate(&st, index)?, needs_check));
        }
        Ok(out)
    }

    pub fn gaps_report(
        &self,
        only_gaps: bool,
        instance: Option<&str>,
    ) -> Result<(u64, Vec<crate::gaps::InstanceReport>), SinkError> {
        let st = self.read_state()?;
        Ok((st.gaps.total_missing(), st.gaps.report(only_gaps, instance)))
    }

    pub fn gauges(&self) -> crate::metrics::Gauges {
        let (tree_size, missing, instances) =
            self.state.read().map_or((0, 0, 0), |s| (s.tree.size(), s.gaps.total_missing(), s.gaps.instances() as u64));
        let (cp_size, age) =
            self.last_checkpoint.lock().map_or((0, 0.0), |g| (g.0.checkpoint.size, g.1.elapsed().as_secs_f64()));
        crate::metrics::Gauges {
            tree_size,
            checkpoint_size: cp_size,
            checkpoint_age_seconds: age,
            sequence_gaps_missing: missing,
            filter_instances: instances,
        }
    }
}

/// Exact check of the filters a [`Store::query`] could only approximate.
pub fn leaf_matches(leaf_bytes: &[u8], q: &EventQuery) -> bool {
    let Ok(v) = leaf::parse(leaf_bytes) else { return false };
    if q.request_id.as_ref().is_some_and(|r| &v.event.request_id != r) {
        return false;
    }
    if let Some(c) = &q.class {
        if v.event.findings.get(c).copied().unwrap_or(0) == 0 {
            return false;
        }
    }
    true
}

pub fn unix_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

pub const SIGNING_KEY_FILE: &str = "signing-key";
pub const SIGNING_KEY_ENV: &str = "MESHWARD_SINK_SIGNING_KEY";

/// The checkpoint signing key: `MESHWARD_SINK_SIGNING_KEY` (a
/// `PRIVATE+KEY+name+id+data` string) when given, otherwise
/// `<data-dir>/signing-key`, created on first start with mode 0600 and a key
/// named `name`.
pub fn load_or_create_signing_key(
    data_dir: &Path,
    name: &str,
    env_value: Option<&str>,
) -> Result<NoteSigner, SinkError> {
    if let Some(v) = env_value.filter(|v| !v.trim().is_empty()) {
        return NoteSigner::parse(v).map_err(|e| SinkError::Config(format!("{SIGNING_KEY_ENV}: {e}")));
    }
    let path = data_dir.join(SIGNING_KEY_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            if let Ok(meta) = std::fs::metadata(&path) {
                let mode = std::os::unix::fs::PermissionsExt::mode(&meta.permissions());
                if mode & 0o077 != 0 {
                    eprintln!(
                        "meshward-sink: WARNING: {} is readable by others (mode {:o}); chmod 600 it",
                        path.display(),
                        mode & 0o777
                    );
                }
            }
            NoteSigner::parse(&text).map_err(|e| SinkError::Config(format!("{}: {e}", path.display())))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(data_dir)
                .map_err(|e| SinkError::io(format!("creating {}", data_dir.display()), e))?;
            let signer = NoteSigner::generate(name)?;
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .map_err(|e| SinkError::io(format!("creating {}", path.display()), e))?;
            f.write_all(format!("{}\n", signer.to_private_string()).as_bytes())
                .and_then(|_| f.sync_all())
                .map_err(|e| SinkError::io(format!("writing {}", path.display()), e))?;
            sync_dir(data_dir)?;
            eprintln!(
                "meshward-sink: created checkpoint signing key {} (verifier key {})",
                path.display(),
                signer.verifier().encode()
            );
            Ok(signer)
        }
        Err(e) => Err(SinkError::io(format!("reading {}", path.display()), e)),
    }
}
