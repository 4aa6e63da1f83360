//! The on-disk log: segment files of length + CRC32C framed records.
//!
//! ```text
//! <data-dir>/log/<first index, 20 digits>.seg
//!   header  16 bytes: "MWLOGv1\n" | first index (u64 LE)
//!   record  12-byte frame + payload:
//!           len (u32 LE) | crc32c(payload) (u32 LE) | crc32c(first 8 frame bytes) (u32 LE) | payload
//! ```
//!
//! One record is one leaf. The frame carries its own checksum, so a damaged
//! length is told apart from a record cut short by a crash.
//!
//! Recovery rules ([`scan_log`]):
//! - every segment but the last must be complete and valid;
//! - in the last segment, a *torn tail* is a damaged or incomplete final
//!   region that (a) starts at a record boundary, (b) is not followed by any
//!   complete valid record, and (c) is no longer than [`TORN_WINDOW`] (one
//!   group-commit write is always smaller). With [`ScanMode::Repair`] it is
//!   truncated (the caller never acknowledged it: acknowledgement follows
//!   fdatasync, and only the write in flight can be torn);
//! - a group commit is written with its first frame zeroed, made durable,
//!   and only then given that frame ([`commit_frame`]): a batch cut short
//!   (a process killed mid-`pwrite` keeps a prefix of it, whole records
//!   included) therefore starts with 12 zero bytes, and recovery drops it
//!   whole, within [`TORN_WINDOW`], so a delivery is stored whole or not at
//!   all;
//! - anything else is corruption: [`SinkError::Corrupt`] names the file and
//!   byte offset and the sink refuses to start.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::SinkError;

pub const MAGIC: &[u8; 8] = b"MWLOGv1\n";
pub const SEGMENT_HEADER: u64 = 16;
pub const FRAME: u64 = 12;
/// Largest record (leaf) accepted.
pub const MAX_RECORD: u32 = 1 << 20;
/// Largest single group-commit write the writer issues (it closes a batch
/// once it reaches this size; one request can add at most ~MAX_BODY more).
pub const MAX_BATCH_BYTES: usize = 8 << 20;
/// Largest tail region that recovery may treat as torn.
pub const TORN_WINDOW: u64 = 32 << 20;

pub fn segment_name(first_index: u64) -> String {
    format!("{first_index:020}.seg")
}

pub fn frame(payload: &[u8], out: &mut Vec<u8>) {
    let len = payload.len() as u32;
    let mut head = [0u8; 8];
    head[..4].copy_from_slice(&len.to_le_bytes());
    head[4..].copy_from_slice(&crc32c::crc32c(payload).to_le_bytes());
    out.extend_from_slice(&head);
    out.extend_from_slice(&crc32c::crc32c(&head).to_le_bytes());
    out.extend_from_slice(payload);
}

/// What a 12-byte frame header says.
enum Header {
    Valid {
        len: u32,
        crc: u32,
    },
    /// All zero: the first frame of a group commit that never completed.
    Uncommitted,
    Invalid(&'static str),
}

/// Splits a framed batch for a two-step commit: the batch with its first
/// frame zeroed (written and synced first), and that frame (written last).
pub fn commit_frame(batch: &mut [u8]) -> Option<[u8; FRAME as usize]> {
    let head = batch.get_mut(..FRAME as usize)?;
    let frame: [u8; FRAME as usize] = (*head).try_into().ok()?;
    head.fill(0);
    Some(frame)
}

fn parse_header(h: &[u8; 12]) -> Header {
    if h.iter().all(|&b| b == 0) {
        return Header::Uncommitted;
    }
    let len = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
    let crc = u32::from_le_bytes([h[4], h[5], h[6], h[7]]);
    let hcrc = u32::from_le_bytes([h[8], h[9], h[10], h[11]]);
    if crc32c::crc32c(&h[..8]) != hcrc {
        return Header::Invalid("record frame checksum mismatch");
    }
    if len == 0 || len > MAX_RECORD {
        return Header::Invalid("record length out of range");
    }
    Header::Valid { len, crc }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanMode {
    /// Server start: truncate a torn tail.
    Repair,
    /// Offline verification: report a torn tail, change nothing.
    ReadOnly,
}

#[derive(Debug, Clone)]
pub struct SegmentInfo {
    pub first_index: u64,
    pub path: PathBuf,
    /// Valid bytes (after any repair).
    pub len: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    pub file: PathBuf,
    pub offset: u64,
    pub bytes: u64,
    pub why: &'static str,
}

#[derive(Debug)]
pub struct ScanResult {
    pub segments: Vec<SegmentInfo>,
    pub count: u64,
    pub torn: Option<TornTail>,
}

/// Position of one record.
#[derive(Debug, Clone, Copy)]
pub struct RecordPos {
    pub segment: u32,
    pub offset: u64,
    pub len: u32,
}

fn list_segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, SinkError> {
    let mut out = Vec::new();
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(SinkError::io(format!("reading {}", dir.display()), e)),
    };
    for entry in rd {
        let entry = entry.map_err(|e| SinkError::io(format!("reading {}", dir.display()), e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(stem) = name.strip_suffix(".seg") else { continue };
        if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        if let Ok(first) = stem.parse::<u64>() {
            out.push((first, entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

/// Called for each record: index, position, segment file, payload.
pub type OnRecord<'a> = dyn FnMut(u64, RecordPos, &Path, &[u8]) -> Result<(), SinkError> + 'a;

/// Scans every segment in `dir` (the `log/` directory), calling `on_record`
/// for each record in index order. See the module docs for the rules.
pub fn scan_log(dir: &Path, mode: ScanMode, on_record: &mut OnRecord<'_>) -> Result<ScanResult, SinkError> {
    let files = list_segments(dir)?;
    let mut segments = Vec::new();
    let mut next_index = 0u64;
    let mut torn = None;
    for (i, (first, path)) in files.iter().enumerate() {
        let is_last = i + 1 == files.len();
        let corrupt = |offset: u64, what: String| SinkError::Corrupt { file: path.clone(), offset, what };
        if *first != next_index {
            return Err(corrupt(
                0,
                format!("segment starts at index {first} but the previous segments end at {next_index}"),
            ));
        }
        let mut file = open_rw_or_ro(path, mode)?;
        let file_len = file.metadata().map_err(|e| SinkError::io(format!("stat {}", path.display()), e))?.len();
        let mut header = [0u8; 16];
        if file_len < SEGMENT_HEADER {
            if !is_last {
                return Err(corrupt(0, "segment shorter than its header".into()));
            }
            // A segment whose creation was cut short: nothing in it was acknowledged.
            let t = TornTail { file: path.clone(), offset: 0, bytes: file_len, why: "segment header incomplete" };
            if mode == ScanMode::Repair {
                drop(file);
                std::fs::remove_file(path).map_err(|e| SinkError::io(format!("removing {}", path.display()), e))?;
                crate::storage::sync_dir(dir)?;
            }
            torn = Some(t);
            break;
        }
        file.read_exact(&mut header).map_err(|e| SinkError::io(format!("reading {}", path.display()), e))?;
        if &header[..8] != MAGIC {
            return Err(corrupt(0, "bad segment magic".into()));
        }
        let hdr_first = u64::from_le_bytes(header[8..16].try_into().unwrap_or_default());
        if hdr_first != *first {
            return Err(corrupt(8, format!("header says first index {hdr_first}, file name says {first}")));
        }
        let seg_no = segments.len() as u32;
        let mut reader = std::io::BufReader::with_capacity(1 << 20, &mut file);
        let mut off = SEGMENT_HEADER;
        let mut payload = Vec::new();
        let mut problem: Option<(u64, &'static str, bool)> = None; // (offset, why, may be torn)
        while off < file_len {
            let remaining = file_len - off;
            if remaining < FRAME {
                problem = Some((off, "incomplete record frame at end of segment", true));
                break;
            }
            let mut h = [0u8; 12];
            reader.read_exact(&mut h).map_err(|e| SinkError::io(format!("reading {}", path.display()), e))?;
            let (len, crc) = match parse_header(&h) {
                Header::Valid { len, crc } => (len, crc),
                Header::Invalid(why) => {
                    problem = Some((off, why, true));
                    break;
                }
                Header::Uncommitted => {
                    problem = Some((off, UNCOMMITTED, true));
                    break;
                }
            };
            if remaining < FRAME + u64::from(len) {
                problem = Some((off, "record extends past the end of the segment", true));
                break;
            }
            payload.resize(len as usize, 0);
            reader.read_exact(&mut payload).map_err(|e| SinkError::io(format!("reading {}", path.display()), e))?;
            if crc32c::crc32c(&payload) != crc {
                // A full record with a bad payload is torn only if it is the very last thing in the file.
                let at_end = off + FRAME + u64::from(len) == file_len;
                problem = Some((off, "record payload checksum mismatch", at_end));
                break;
            }
            on_record(next_index, RecordPos { segment: seg_no, offset: off, len }, path, &payload)?;
            next_index += 1;
            off += FRAME + u64::from(len);
        }
        drop(reader);
        if let Some((offset, why, may_be_torn)) = problem {
            let bytes = file_len - offset;
            // Records after an uncommitted frame belong to its batch.
            let valid_after = why != UNCOMMITTED && has_valid_record_after(&file, offset, file_len)?;
            if !is_last || !may_be_torn || bytes > TORN_WINDOW || valid_after {
                return Err(corrupt(
                    offset,
                    format!("{why} (entry {next_index}; {bytes} bytes from here to the end of the file)"),
                ));
            }
            if mode == ScanMode::Repair {
                file.set_len(offset).map_err(|e| SinkError::io(format!("truncating {}", path.display()), e))?;
                file.sync_all().map_err(|e| SinkError::io(format!("fsync {}", path.display()), e))?;
            }
            torn = Some(TornTail { file: path.clone(), offset, bytes, why });
            segments.push(SegmentInfo { first_index: *first, path: path.clone(), len: offset });
        } else {
            segments.push(SegmentInfo { first_index: *first, path: path.clone(), len: file_len });
        }
    }
    Ok(ScanResult { segments, count: next_index, torn })
}

const UNCOMMITTED: &str = "a group commit that never completed (its first frame is still zero)";

fn open_rw_or_ro(path: &Path, mode: ScanMode) -> Result<File, SinkError> {
    let mut o = OpenOptions::new();
    o.read(true);
    if mode == ScanMode::Repair {
        o.write(true);
    }
    o.open(path).map_err(|e| SinkError::io(format!("opening {}", path.display()), e))
}

/// True when some byte position after `from` starts a complete record with a
/// valid frame and payload: then the damage at `from` is not a torn tail.
fn has_valid_record_after(file: &File, from: u64, file_len: u64) -> Result<bool, SinkError> {
    let mut f = file;
    f.seek(SeekFrom::Start(from)).map_err(|e| SinkError::io("seek", e))?;
    let mut rest = Vec::with_capacity((file_len - from) as usize);
    f.take(file_len - from).read_to_end(&mut rest).map_err(|e| SinkError::io("read", e))?;
    for start in 1..rest.len() {
        let Some(h) = rest.get(start..start + 12) else { break };
        let Ok(h) = <&[u8; 12]>::try_from(h) else { break };
        if let Header::Valid { len, crc } = parse_header(h) {
            if let Some(p) = rest.get(start + 12..start + 12 + len as usize) {
                if crc32c::crc32c(p) == crc {
                    return Ok(true);
                }
            }
        }
    }
    Ok(false)
}

/// Reads one record's payload, checking its checksum.
pub fn read_record(file: &File, pos: RecordPos) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0u8; FRAME as usize + pos.len as usize];
    file.read_exact_at(&mut buf, pos.offset)?;
    let Ok(h) = <&[u8; 12]>::try_from(&buf[..12]) else {
        return Err(std::io::Error::other("short frame"));
    };
    match parse_header(h) {
        Header::Valid { len, crc } if len == pos.len && crc32c::crc32c(&buf[12..]) == crc => Ok(buf.split_off(12)),
        _ => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("record at offset {} fails its checksum", pos.offset),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn write_segment(dir: &Path, first: u64, records: &[&[u8]]) -> PathBuf {
        std::fs::create_dir_all(dir).unwrap();
        let path = dir.join(segment_name(first));
        let mut buf = MAGIC.to_vec();
        buf.extend_from_slice(&first.to_le_bytes());
        for r in records {
            frame(r, &mut buf);
        }
        std::fs::write(&path, buf).unwrap();
        path
    }

    fn scan(dir: &Path, mode: ScanMode) -> Result<(ScanResult, Vec<Vec<u8>>), SinkError> {
        let mut got = Vec::new();
        let r = scan_log(dir, mode, &mut |i, _, _, p| {
            assert_eq!(i as usize, got.len());
            got.push(p.to_vec());
            Ok(())
        })?;
        Ok((r, got))
    }

    #[test]
    fn framing_round_trips_across_segments() {
        let d = tempfile::tempdir().unwrap();
        write_segment(d.path(), 0, &[b"a", b"bb"]);
        write_segment(d.path(), 2, &[b"ccc"]);
        let (r, got) = scan(d.path(), ScanMode::Repair).unwrap();
        assert_eq!(got, vec![b"a".to_vec(), b"bb".to_vec(), b"ccc".to_vec()]);
        assert_eq!(r.count, 3);
        assert!(r.torn.is_none());
        assert_eq!(r.segments.len(), 2);
    }

    #[test]
    fn an_uncommitted_batch_is_dropped_whole_even_with_complete_records() {
        let d = tempfile::tempdir().unwrap();
        let path = write_segment(d.path(), 0, &[b"acknowledged"]);
        let committed = std::fs::read(&path).unwrap();
        let mut batch = Vec::new();
        for r in [&b"one"[..], b"two", b"three"] {
            frame(r, &mut batch);
        }
        assert!(commit_frame(&mut batch).is_some());
        // Killed before the first frame was written: every record of the
        // batch but the first is complete and valid, and all are dropped.
        let mut file = committed.clone();
        file.extend_from_slice(&batch);
        std::fs::write(&path, &file).unwrap();
        let (r, got) = scan(d.path(), ScanMode::Repair).unwrap();
        assert_eq!(got, vec![b"acknowledged".to_vec()]);
        assert_eq!(r.torn.as_ref().map(|t| t.why), Some(UNCOMMITTED));
        assert_eq!(std::fs::read(&path).unwrap(), committed, "truncated to the last commit");
        // A damaged, non-zero frame followed by a valid record is still
        // corruption: only an all-zero frame marks an uncommitted batch.
        let mut damaged = committed.clone();
        let mut good = Vec::new();
        frame(b"later", &mut good);
        damaged.extend_from_slice(&[0xAB; 12]);
        damaged.extend_from_slice(&good);
        std::fs::write(&path, &damaged).unwrap();
        assert!(matches!(scan(d.path(), ScanMode::Repair), Err(SinkError::Corrupt { .. })));
    }

    #[test]
    fn torn_tail_is_truncated_at_every_cut_point() {
        let d = tempfile::tempdir().unwrap();
        let path = write_segment(d.path(), 0, &[b"first record", b"second record"]);
        let full = std::fs::read(&path).unwrap();
        let first_end = SEGMENT_HEADER + FRAME + 12;
        // Cut the last record anywhere inside it: recovery keeps exactly the first.
        for cut in first_end + 1..full.len() as u64 {
            std::fs::write(&path, &full[..cut as usize]).unwrap();
            let (r, got) = scan(d.path(), ScanMode::Repair).unwrap();
            assert_eq!(got, vec![b"first record".to_vec()], "cut at {cut}");
            let t = r.torn.unwrap();
            assert_eq!((t.offset, t.bytes), (first_end, cut - first_end));
            assert_eq!(std::fs::metadata(&path).unwrap().len(), first_end, "truncated to the boundary");
        }
        // Garbage (zeros: preallocated blocks) after the last record is a torn tail too.
        let mut z = full.clone();
        z.extend_from_slice(&[0u8; 4096]);
        std::fs::write(&path, &z).unwrap();
        let (r, got) = scan(d.path(), ScanMode::Repair).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(r.torn.unwrap().bytes, 4096);
        // A torn final payload of full length (size extended, data not written).
        let mut p = full.clone();
        let n = p.len();
        p[n - 1] ^= 0xff;
        std::fs::write(&path, &p).unwrap();
        let (_, got) = scan(d.path(), ScanMode::Repair).unwrap();
        assert_eq!(got.len(), 1);
    }

    #[test]
    fn read_only_scan_reports_torn_tail_without_changing_the_file() {
        let d = tempfile::tempdir().unwrap();
        let path = write_segment(d.path(), 0, &[b"one", b"two"]);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&[1, 2, 3]).unwrap();
        let before = std::fs::metadata(&path).unwrap().len();
        let (r, got) = scan(d.path(), ScanMode::ReadOnly).unwrap();
        assert_eq!(got.len(), 2);
        assert!(r.torn.is_some());
        assert_eq!(std::fs::metadata(&path).unwrap().len(), before);
    }

    #[test]
    fn corruption_before_the_tail_refuses_naming_file_and_offset() {
        let d = tempfile::tempdir().unwrap();
        let path = write_segment(d.path(), 0, &[b"alpha", b"bravo", b"charlie"]);
        let second = SEGMENT_HEADER + FRAME + 5;
        let orig = std::fs::read(&path).unwrap();
        // Flip a payload byte of the middle record; a length byte; a frame checksum byte.
        for at in [second + FRAME + 1, second, second + 9] {
            let mut bytes = orig.clone();
            bytes[at as usize] ^= 0x01;
            std::fs::write(&path, &bytes).unwrap();
            let err = scan(d.path(), ScanMode::Repair).unwrap_err();
            match &err {
                SinkError::Corrupt { file, offset, .. } => {
                    assert_eq!(file, &path);
                    assert_eq!(*offset, second, "flip at {at}");
                }
                other => panic!("expected corruption, got {other}"),
            }
            let msg = err.to_string();
            assert!(msg.contains(&path.display().to_string()) && msg.contains(&format!("offset {second}")), "{msg}");
            assert_eq!(std::fs::read(&path).unwrap(), bytes, "nothing truncated");
        }
    }

    #[test]
    fn damage_in_an_earlier_segment_is_never_a_torn_tail() {
        let d = tempfile::tempdir().unwrap();
        let p0 = write_segment(d.path(), 0, &[b"a", b"b"]);
        write_segment(d.path(), 2, &[b"c"]);
        let mut bytes = std::fs::read(&p0).unwrap();
        bytes.truncate(bytes.len() - 1);
        std::fs::write(&p0, &bytes).unwrap();
        assert!(matches!(scan(d.path(), ScanMode::Repair), Err(SinkError::Corrupt { .. })));
    }

    #[test]
    fn missing_segment_is_corruption() {
        let d = tempfile::tempdir().unwrap();
        write_segment(d.path(), 0, &[b"a"]);
        write_segment(d.path(), 5, &[b"c"]);
        let err = scan(d.path(), ScanMode::Repair).unwrap_err();
        assert!(err.to_string().contains("previous segments end at 1"), "{err}");
    }

    #[test]
    fn incomplete_new_segment_is_removed() {
        let d = tempfile::tempdir().unwrap();
        write_segment(d.path(), 0, &[b"a"]);
        let p1 = d.path().join(segment_name(1));
        std::fs::write(&p1, &MAGIC[..5]).unwrap();
        let (r, got) = scan(d.path(), ScanMode::Repair).unwrap();
        assert_eq!(got.len(), 1);
        assert!(r.torn.is_some());
        assert!(!p1.exists());
    }
}
