//! Attachment guard: base64 images and files (data URLs or bare base64)
//! are judged by what their first bytes are, not by what they claim to be.
//! One linear pass validates the base64 and yields the exact decoded size;
//! only a short prefix is decoded, to sniff the type.

use super::b64;
use super::{violation, AttachmentsDoc, ConfigError, Violation};

/// How much of the decoded content the sniffer sees.
const SNIFF_BYTES: usize = 512;

/// Every type the sniffer can recognise; an allow-list may only name these
/// (or `<top>/*`, `*/*`), since anything else could never be allowed.
const KNOWN_TYPES: &[&str] = &[
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "image/avif",
    "image/heic",
    "application/pdf",
    "application/zip",
    "audio/wav",
    "audio/mpeg",
    "audio/ogg",
    "audio/flac",
    "audio/mp4",
    "video/mp4",
    "video/quicktime",
    "text/plain",
];

/// Other spellings clients use for the same types.
const ALIASES: &[(&str, &str)] = &[
    ("image/jpg", "image/jpeg"),
    ("image/pjpeg", "image/jpeg"),
    ("audio/x-wav", "audio/wav"),
    ("audio/wave", "audio/wav"),
    ("audio/vnd.wave", "audio/wav"),
    ("audio/mp3", "audio/mpeg"),
    ("audio/mpeg3", "audio/mpeg"),
    ("audio/x-mpeg-3", "audio/mpeg"),
    ("audio/x-flac", "audio/flac"),
    ("audio/x-m4a", "audio/mp4"),
    ("audio/m4a", "audio/mp4"),
    ("application/ogg", "audio/ogg"),
    ("application/x-zip-compressed", "application/zip"),
    ("application/x-pdf", "application/pdf"),
];

/// Lower-cased, parameters dropped, aliases resolved.
fn canonical_mime(mime: &str) -> String {
    let bare = mime.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    match ALIASES.iter().find(|(alias, _)| *alias == bare) {
        Some((_, canonical)) => (*canonical).to_string(),
        None => bare,
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum MimeRule {
    Any,
    /// `image/*`: holds `image/`.
    TopLevel(String),
    Exact(String),
}

impl MimeRule {
    fn matches(&self, sniffed: &str) -> bool {
        match self {
            MimeRule::Any => true,
            MimeRule::TopLevel(prefix) => sniffed.starts_with(prefix.as_str()),
            MimeRule::Exact(exact) => sniffed == exact,
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Attachments {
    /// `None`: any content, recognised or not.
    allow: Option<Vec<MimeRule>>,
    /// The entries as written, for messages.
    allow_names: Vec<String>,
    max_bytes: Option<u64>,
}

impl Attachments {
    pub fn compile(doc: &AttachmentsDoc) -> Result<Attachments, ConfigError> {
        let allow = match &doc.allow {
            None => None,
            Some(entries) => {
                let mut rules = Vec::with_capacity(entries.len());
                for (index, entry) in entries.iter().enumerate() {
                    rules.push(
                        compile_rule(entry).map_err(|m| ConfigError::new(format!("attachments.allow[{index}]"), m))?,
                    );
                }
                Some(rules)
            }
        };
        Ok(Attachments { allow, allow_names: doc.allow.clone().unwrap_or_default(), max_bytes: doc.max_bytes })
    }

    pub fn check(&self, data: &str) -> Result<(), Violation> {
        let refuse = |detail: String| Err(violation("allow.attachment", detail));
        let (declared, payload) = match split_data_url(data) {
            Ok(parts) => parts,
            Err(problem) => return refuse(problem.to_string()),
        };
        let Some(scanned) = b64::scan(payload) else {
            return refuse("the attachment is not valid base64".to_string());
        };
        if let Some(max) = self.max_bytes {
            if scanned.decoded_len > max {
                return refuse(format!("the attachment is larger than the {max} bytes the policy allows"));
            }
        }
        let prefix = b64::decode_prefix(payload, SNIFF_BYTES);
        let truncated = scanned.decoded_len > prefix.len() as u64;
        let sniffed = sniff(&prefix, truncated);
        if let Some(declared) = declared.as_deref().filter(|d| !d.is_empty() && *d != "application/octet-stream") {
            if !declared_agrees(declared, sniffed) {
                return refuse(match sniffed {
                    Some(kind) => format!("the attachment's content is {kind}, not the type it declares"),
                    None => "the attachment's content does not match the type it declares".to_string(),
                });
            }
        }
        if let Some(rules) = &self.allow {
            let allowed = sniffed.is_some_and(|kind| rules.iter().any(|rule| rule.matches(kind)));
            if !allowed {
                let what = sniffed.map_or("of an unrecognised type".to_string(), |kind| kind.to_string());
                return refuse(format!(
                    "the attachment is {what}, which the policy does not allow (allowed: {})",
                    self.allow_names.join(", ")
                ));
            }
        }
        Ok(())
    }
}

fn compile_rule(entry: &str) -> Result<MimeRule, String> {
    let canonical = canonical_mime(entry);
    if canonical == "*/*" {
        return Ok(MimeRule::Any);
    }
    if let Some(top) = canonical.strip_suffix("/*") {
        let prefix = format!("{top}/");
        if KNOWN_TYPES.iter().any(|known| known.starts_with(prefix.as_str())) {
            return Ok(MimeRule::TopLevel(prefix));
        }
        return Err(format!("no recognisable type is under `{top}/`"));
    }
    if KNOWN_TYPES.contains(&canonical.as_str()) {
        return Ok(MimeRule::Exact(canonical));
    }
    Err(format!("`{entry}` cannot be recognised by content; known types: {}", KNOWN_TYPES.join(", ")))
}

/// Splits `data:<mime>[;param]*;base64,<data>` into the declared type
/// (canonical, possibly empty) and the payload; anything not starting with
/// `data:` is bare base64 with nothing declared.
fn split_data_url(data: &str) -> Result<(Option<String>, &str), &'static str> {
    let is_data_url = data.get(..5).is_some_and(|scheme| scheme.eq_ignore_ascii_case("data:"));
    if !is_data_url {
        return Ok((None, data));
    }
    let rest = data.get(5..).unwrap_or("");
    let Some((header, payload)) = rest.split_once(',') else {
        return Err("the attachment's data URL has no `,`");
    };
    let mut params = header.split(';');
    let mime = params.next().unwrap_or("").trim();
    if !params.any(|p| p.trim().eq_ignore_ascii_case("base64")) {
        return Err("only base64 data URLs are accepted as attachments");
    }
    // `data:;base64,` or `data:name=x;base64,` declare nothing.
    let declared = if mime.contains('/') { canonical_mime(mime) } else { String::new() };
    Ok((Some(declared), payload))
}

/// A declared text type accepts sniffed `text/plain`: content cannot tell
/// CSV from Markdown from JSON.
fn declared_agrees(declared: &str, sniffed: Option<&'static str>) -> bool {
    let Some(sniffed) = sniffed else {
        return false;
    };
    if declared == sniffed {
        return true;
    }
    let textual = declared.starts_with("text/")
        || matches!(declared, "application/json" | "application/xml" | "application/x-ndjson" | "application/yaml")
        || declared.ends_with("+json")
        || declared.ends_with("+xml");
    sniffed == "text/plain" && textual
}

fn starts(bytes: &[u8], at: usize, signature: &[u8]) -> bool {
    bytes.get(at..at + signature.len()) == Some(signature)
}

/// An MPEG audio frame header (layer I–III), checked beyond the sync bits
/// so random binary rarely passes.
fn is_mpeg_frame(bytes: &[u8]) -> bool {
    let (Some(&b0), Some(&b1), Some(&b2)) = (bytes.first(), bytes.get(1), bytes.get(2)) else {
        return false;
    };
    let version = (b1 >> 3) & 0b11;
    let layer = (b1 >> 1) & 0b11;
    let bitrate = b2 >> 4;
    let sample_rate = (b2 >> 2) & 0b11;
    b0 == 0xFF && b1 & 0xE0 == 0xE0 && version != 0b01 && layer != 0 && bitrate != 0x0F && sample_rate != 0b11
}

/// Types inside ISO base media files (MP4 and relatives) by major brand.
fn iso_bmff_type(brand: &[u8]) -> &'static str {
    match brand {
        b"avif" | b"avis" => "image/avif",
        b"heic" | b"heix" | b"heim" | b"heis" | b"hevc" | b"hevx" => "image/heic",
        b"M4A " | b"M4B " => "audio/mp4",
        b"qt  " => "video/quicktime",
        _ => "video/mp4",
    }
}

/// Plain text: UTF-8 (a character cut by the prefix end is fine) without
/// NUL or control characters other than tab, newlines, form feed and escape.
fn is_text(bytes: &[u8], truncated: bool) -> bool {
    let valid = match std::str::from_utf8(bytes) {
        Ok(_) => true,
        Err(e) => truncated && e.error_len().is_none(),
    };
    valid && !bytes.is_empty() && bytes.iter().all(|&b| b >= 0x20 || matches!(b, b'\t' | b'\n' | b'\r' | 0x0C | 0x1B))
}

/// The type the content's first bytes show. Binary signatures go first:
/// several (`%PDF-`, `GIF89a`, `OggS`) are also valid text.
pub(crate) fn sniff(bytes: &[u8], truncated: bool) -> Option<&'static str> {
    let kind = if starts(bytes, 0, b"\x89PNG\r\n\x1a\n") {
        "image/png"
    } else if starts(bytes, 0, b"\xFF\xD8\xFF") {
        "image/jpeg"
    } else if starts(bytes, 0, b"GIF87a") || starts(bytes, 0, b"GIF89a") {
        "image/gif"
    } else if starts(bytes, 0, b"RIFF") && starts(bytes, 8, b"WEBP") {
        "image/webp"
    } else if starts(bytes, 0, b"RIFF") && starts(bytes, 8, b"WAVE") {
        "audio/wav"
    } else if starts(bytes, 0, b"%PDF-") {
        "application/pdf"
    } else if starts(bytes, 0, b"PK\x03\x04") || starts(bytes, 0, b"PK\x05\x06") || starts(bytes, 0, b"PK\x07\x08") {
        "application/zip"
    } else if starts(bytes, 0, b"OggS") {
        "audio/ogg"
    } else if starts(bytes, 0, b"fLaC") {
        "audio/flac"
    } else if starts(bytes, 0, b"ID3") || is_mpeg_frame(bytes) {
        "audio/mpeg"
    } else if starts(bytes, 4, b"ftyp") {
        iso_bmff_type(bytes.get(8..12).unwrap_or(b""))
    } else if is_text(bytes, truncated) {
        "text/plain"
    } else {
        return None;
    };
    Some(kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_signature_is_recognised() {
        let samples: &[(&[u8], &str)] = &[
            (b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR", "image/png"),
            (b"\xFF\xD8\xFF\xE0\0\x10JFIF", "image/jpeg"),
            (b"GIF89a\x01\0\x01\0", "image/gif"),
            (b"GIF87a\x01\0\x01\0", "image/gif"),
            (b"RIFF\x24\0\0\0WEBPVP8 ", "image/webp"),
            (b"RIFF\x24\0\0\0WAVEfmt ", "audio/wav"),
            (b"%PDF-1.7\n%\xE2\xE3\xCF\xD3", "application/pdf"),
            (b"PK\x03\x04\x14\0\0\0", "application/zip"),
            (b"PK\x05\x06\0\0\0\0", "application/zip"),
            (b"OggS\0\x02\0\0", "audio/ogg"),
            (b"fLaC\0\0\0\x22", "audio/flac"),
            (b"ID3\x04\0\0\0\0\0\0", "audio/mpeg"),
            (b"\xFF\xFB\x90\x64\0\0", "audio/mpeg"),
            (b"\0\0\0\x20ftypisom\0\0\x02\0", "video/mp4"),
            (b"\0\0\0\x20ftypM4A \0\0\x02\0", "audio/mp4"),
            (b"\0\0\0\x1cftypavif\0\0\0\0", "image/avif"),
            (b"\0\0\0\x18ftypheic\0\0\0\0", "image/heic"),
            (b"\0\0\0\x14ftypqt  \0\0\0\0", "video/quicktime"),
            ("plain text, caf\u{e9}\n".as_bytes(), "text/plain"),
        ];
        for (bytes, expected) in samples {
            assert_eq!(sniff(bytes, false), Some(*expected), "{bytes:?}");
        }
    }

    #[test]
    fn unrecognised_content() {
        assert_eq!(sniff(b"\0\x01\x02\x03binary", false), None);
        assert_eq!(sniff(b"text with a NUL\0", false), None);
        assert_eq!(sniff(b"\xFF\xF1\x50\x80", false), None, "AAC ADTS is not MPEG audio layer I-III");
        assert_eq!(sniff(b"", false), None);
        assert_eq!(sniff(b"caf\xC3", false), None, "cut UTF-8 at the real end");
        assert_eq!(sniff(b"caf\xC3", true), Some("text/plain"), "cut UTF-8 at the prefix end");
    }

    #[test]
    fn rules_and_aliases() {
        assert_eq!(compile_rule("IMAGE/JPG"), Ok(MimeRule::Exact("image/jpeg".into())));
        assert_eq!(compile_rule("image/*"), Ok(MimeRule::TopLevel("image/".into())));
        assert_eq!(compile_rule("*/*"), Ok(MimeRule::Any));
        assert!(compile_rule("model/*").is_err());
        assert!(compile_rule("image/tiff").is_err());
    }

    #[test]
    fn data_url_parts() {
        assert_eq!(split_data_url("data:image/png;base64,AAAA"), Ok((Some("image/png".into()), "AAAA")));
        assert_eq!(split_data_url("DATA:Image/JPG;name=a.jpg;base64,AAAA"), Ok((Some("image/jpeg".into()), "AAAA")));
        assert_eq!(split_data_url("data:;base64,AAAA"), Ok((Some(String::new()), "AAAA")));
        assert_eq!(split_data_url("AAAA"), Ok((None, "AAAA")));
        assert!(split_data_url("data:text/plain,hello").is_err());
        assert!(split_data_url("data:image/png;base64").is_err());
    }
}
