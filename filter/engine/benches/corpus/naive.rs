//! The naive baseline the issue asks us to beat: every built-in pattern as
//! its own regular expression, each run over the whole text.
//!
//! What it does: the *shapes* of every built-in class — e-mail, card-like
//! digit runs, the phone plans, SSN/TFN/ABN/ACN/Medicare/NINO/IBAN shapes,
//! IPv4/IPv6, one regex per vendor token format of the engine's own table
//! ([`vendor_token_shapes`]), the structured secrets (JWT, PEM, PuTTY, URL
//! passwords, webhooks, Azure, GCP, bearer/basic auth, `key = value`
//! assignments), person cues and the given-name lexicon, street addresses
//! and postcodes, dates of birth, passports, health terms and ages —
//! matched with the `regex` crate (`regex::bytes`, ASCII mode, the fastest
//! honest setting: literal prefilters on, no Unicode classes). It counts
//! matches and does nothing else: no checksum (Luhn, mod 97, mod 11, ...),
//! no context words, no entropy floor, no overlap resolution, no
//! normalisation. It is therefore cheaper per match than the engine and
//! less accurate; the ratio is about the scanning strategy.
//!
//! `regex` is a dev-dependency of meshward-engine only: it never reaches
//! the filter `.wasm`.

use meshward_engine::detect::{vendor_token_shapes, word_lists};
use regex::bytes::{Regex, RegexBuilder};

pub struct Naive {
    patterns: Vec<Regex>,
}

fn alternation(words: &[&str]) -> String {
    words.iter().map(|w| regex::escape(w)).collect::<Vec<_>>().join("|")
}

fn list(name: &str) -> &'static [&'static str] {
    word_lists().into_iter().find(|(n, _)| *n == name).map(|(_, l)| l).unwrap_or_default()
}

impl Naive {
    pub fn new() -> Naive {
        let names = list("first_names")
            .iter()
            .map(|n| {
                let mut c = n.chars();
                c.next().map(|f| f.to_ascii_uppercase().to_string() + c.as_str()).unwrap_or_default()
            })
            .collect::<Vec<_>>();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let name = r"[A-Z][a-z'-]+(?: [A-Z][a-z'-]+){0,2}";
        let months = "jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec";
        let mut sources: Vec<String> = vec![
            // EMAIL
            r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})*\.[A-Za-z]{2,63}".into(),
            // CREDIT_CARD: 13-19 digits, single spaces or dashes between.
            r"\b\d(?:[ -]?\d){12,18}\b".into(),
            // PHONE: E.164, US, UK, AU, DE, FR, IN shapes.
            r"\+\d{1,3}(?:[ .-]?\(?\d{1,5}\)?){2,6}\b".into(),
            r"\(\d{3}\) ?\d{3}[-. ]\d{4}\b".into(),
            r"\b[2-9]\d{2}[-. ]\d{3}[-. ]\d{4}\b".into(),
            r"\b0\d{2,4}[ -]?\d{3,4}[ -]?\d{3,4}\b".into(),
            r"\(0\d\) ?\d{4} ?\d{4}\b".into(),
            r"\b0\d(?: \d{2}){4}\b".into(),
            r"\b[6-9]\d{4} \d{5}\b".into(),
            // US_SSN
            r"\b\d{3}[- ]?\d{2}[- ]?\d{4}\b".into(),
            // AU_TFN and AU_ACN (same shape, two rules)
            r"\b\d{3}[ -]?\d{3}[ -]?\d{3}\b".into(),
            r"\b\d{3}[ -]?\d{3}[ -]?\d{3}\b".into(),
            // AU_ABN
            r"\b\d{2} ?\d{3} ?\d{3} ?\d{3}\b".into(),
            // AU_MEDICARE
            r"\b[2-6]\d{3}[ -]?\d{5}[ -]?\d{1,2}\b".into(),
            // UK_NINO
            r"\b[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D]?\b".into(),
            // IBAN
            r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b".into(),
            // IP_ADDRESS
            r"\b(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\b".into(),
            r"\b(?:[0-9a-fA-F]{1,4}:){1,7}:?(?:[0-9a-fA-F]{1,4}:?){1,7}\b".into(),
            // SECRET: structured formats.
            r"\beyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{16,}".into(),
            r"(?s)-----BEGIN [A-Z ]*PRIVATE KEY[A-Z ]*-----.*?-----END [A-Z ]*-----".into(),
            r"(?s)PuTTY-User-Key-File-\d+:.*?Private-MAC: *[0-9a-fA-F]+".into(),
            r#"[A-Za-z][A-Za-z0-9+.-]*://[^:@/\s"']{1,128}:[^@/\s"'<>]{3,256}@[A-Za-z0-9\[]"#.into(),
            r"https://hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9_/-]{20,}".into(),
            r"https://discord(?:app)?\.com/api/webhooks/[A-Za-z0-9_/-]{20,}".into(),
            r"https://[a-z0-9.-]*webhook\.office\.com/webhookb2/[A-Za-z0-9_/@.-]{20,}".into(),
            r"\b\d{8,10}:AA[A-Za-z0-9_-]{33}\b".into(),
            r"\b[0-9a-f]{32}-us\d{1,2}\b".into(),
            r"[A-Za-z0-9_~.]{3}\dQ~[A-Za-z0-9_~.-]{31,34}".into(),
            r"(?:AccountKey|SharedAccessKey)=[A-Za-z0-9+/=]{40,100}".into(),
            r"[?&;]sig=[A-Za-z0-9%+/=]{30,128}".into(),
            r#""private_key_id"\s*:\s*"[0-9a-fA-F]{40}""#.into(),
            r"(?i)\bbearer [A-Za-z0-9._~+/=-]{16,}".into(),
            r"(?i)authorization: *basic [A-Za-z0-9+/=]{8,}".into(),
            r#"(?i)[A-Za-z0-9_.-]*(?:password|passwd|passphrase|pwd|secret|token|api[_-]?key|access_?key|auth_key|private_key|signing_key|encryption_key|credential)[A-Za-z0-9_.-]*["'`]?[ \t]*(?::=|=>|==|=|:| is )[ \t]*["'`]?[^\s,;"'`<>)\]}]{6,}"#.into(),
            // PERSON: titles, greetings, sign-offs, introductions, lexicon.
            format!(r"\b(?:Mr|Mrs|Ms|Miss|Dr|Prof|Mx|Sir)\.? {name}"),
            format!(r"\b(?i:hi|hello|dear|hey|greetings|good morning|good afternoon|good evening)[ ,!]+{name}"),
            format!(r"\b(?i:regards|cheers|sincerely|thanks|thank you|best wishes|yours truly|warmly|best),?[ ]*\r?\n{name}"),
            format!(r"\b(?i:my name is|call me|named|signed|name:|i am|i'm|this is|meet)[ ]+{name}"),
            format!(r"\b(?:{})(?: [A-Z][a-z'-]+){{0,2}}\b", alternation(&names)),
            // ADDRESS: street, locality, UK postcode.
            format!(r"\b\d{{1,5}}[A-Z]? (?:[A-Z][a-z'-]+ ){{1,4}}(?i:{})\b\.?", alternation(list("street_types"))),
            r"\b[A-Z][a-z]+,? (?:ACT|NSW|NT|QLD|SA|TAS|VIC|WA|[A-Z]{2}) \d{4,5}\b".into(),
            r"\b[A-Z]{1,2}\d[A-Z\d]? \d[ABD-HJLNP-UW-Z]{2}\b".into(),
            // DATE_OF_BIRTH: a date within 40 bytes after a birth cue.
            format!(
                r"(?i)\b(?:born(?: on)?|birth|date of birth|dob|d\.o\.b|birthday|birthdate)\b[^.\n]{{0,40}}?(?:\d{{1,4}}[/.-]\d{{1,2}}[/.-]\d{{2,4}}|\d{{1,2}}(?:st|nd|rd|th)?(?: of)? (?:{months})[a-z]*\.?,? \d{{4}}|(?:{months})[a-z]*\.? \d{{1,2}}(?:st|nd|rd|th)?,? \d{{4}})"
            ),
            // PASSPORT
            r"(?i:passport)\b[A-Za-z .:#]{0,40}?\b[A-Z0-9]{6,10}\b".into(),
            // HEALTH
            format!(r"(?i)\b(?:{})\b", alternation(list("conditions"))),
            // MINOR
            r"(?i)\b\d{1,2}[ -](?:years? old|years?-old|yrs? old|yr old)\b|\b(?:aged|age:|age of|ages)[ :=]*\d{1,2}\b|\b\d{1,2} ?(?:y/o|y\.o\.)".into(),
        ];
        // SECRET: one regex per vendor format of the engine's table.
        for (prefix, class, min, max) in vendor_token_shapes() {
            sources.push(format!(r"\b{}{class}{{{min},{max}}}\b", regex::escape(prefix)));
        }
        let patterns = sources
            .iter()
            .map(|s| {
                RegexBuilder::new(s)
                    .unicode(false)
                    .size_limit(64 << 20)
                    .build()
                    .unwrap_or_else(|e| panic!("baseline pattern {s}: {e}"))
            })
            .collect();
        Naive { patterns }
    }

    pub fn len(&self) -> usize {
        self.patterns.len()
    }

    /// Every pattern over the whole text; returns the number of matches.
    pub fn scan(&self, text: &[u8]) -> usize {
        self.patterns.iter().map(|re| re.find_iter(text).count()).sum()
    }
}
