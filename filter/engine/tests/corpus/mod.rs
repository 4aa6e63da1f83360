//! A deterministic generator of labelled detection corpora: positives of
//! every class in varied sentence contexts (with and without cue words),
//! and near-miss negatives (UUIDs, git SHAs, order numbers, timestamps,
//! versions, checksum-failing numbers, placeholders, topic words). All
//! values are synthetic; nothing is copied from third-party corpora.

#![allow(dead_code)]

use std::fmt::Write;

pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }
    pub fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    pub fn digits(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.below(10) as u8).collect()
    }
    pub fn chars(&mut self, n: usize, alphabet: &[u8]) -> String {
        (0..n).map(|_| alphabet[self.below(alphabet.len() as u64) as usize] as char).collect()
    }
}

pub struct Label {
    pub class: &'static str,
    pub start: usize,
    pub end: usize,
}

pub struct Example {
    pub id: String,
    pub text: String,
    pub labels: Vec<Label>,
}

impl Example {
    pub fn to_json(&self) -> String {
        let labels: Vec<String> = self
            .labels
            .iter()
            .map(|l| format!(r#"{{"class":"{}","start":{},"end":{}}}"#, l.class, l.start, l.end))
            .collect();
        format!(r#"{{"id":"{}","text":{},"labels":[{}]}}"#, self.id, json_string(&self.text), labels.join(","))
    }
}

fn json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Builds one text from pieces, recording labelled spans.
struct Builder {
    text: String,
    labels: Vec<Label>,
}

impl Builder {
    fn new() -> Builder {
        Builder { text: String::new(), labels: Vec::new() }
    }
    fn s(&mut self, t: &str) -> &mut Self {
        self.text.push_str(t);
        self
    }
    fn v(&mut self, class: &'static str, value: &str) -> &mut Self {
        let start = self.text.len();
        self.text.push_str(value);
        self.labels.push(Label { class, start, end: self.text.len() });
        self
    }
}

const FILLER: &[&str] = &[
    "Please summarise the thread below and draft a reply.",
    "Can you help me fix this before the release tomorrow?",
    "The build broke after the last merge, see the log.",
    "Here are my notes from the planning meeting.",
    "Translate the following into French, keep the tone.",
    "I need a short answer, not an essay.",
    "Rewrite this paragraph so it sounds friendlier.",
    "What is the best way to structure this report?",
];

const GIVEN: &[&str] = &[
    "Priya",
    "James",
    "Olivia",
    "Mohammed",
    "Sofia",
    "Liam",
    "Chloe",
    "Arjun",
    "Emma",
    "Lukas",
    "Camille",
    "Wei",
    // Names the lexicon does not hold: cue-only recall.
    "Zbigniew",
    "Oluwaseun",
    "Siobhan",
    "Thandiwe",
    "Bartholomew",
    "Ngaio",
    "Radomir",
    "Eleanor",
];
const FAMILY: &[&str] = &[
    "Sharma",
    "Nguyen",
    "O'Brien",
    "Kowalczyk",
    "Okafor",
    "Schmidt",
    "Dubois",
    "Tanaka",
    "Fitzgerald",
    "Papadopoulos",
    "Haddad",
    "Lindqvist",
];
const STREETS: &[&str] = &["Smith", "Church", "Victoria", "Elm", "King George", "Harbour", "Maple", "Station"];
const STREET_TYPES: &[&str] = &["Street", "St", "Road", "Rd", "Avenue", "Ave", "Lane", "Drive", "Court", "Place"];
const AU_TOWNS: &[(&str, &str, u64)] = &[
    ("Sydney", "NSW", 2000),
    ("Melbourne", "VIC", 3000),
    ("Brisbane", "QLD", 4000),
    ("Perth", "WA", 6000),
    ("Hobart", "TAS", 7000),
];
const US_TOWNS: &[(&str, &str)] = &[("Springfield", "IL"), ("Austin", "TX"), ("Portland", "OR"), ("Denver", "CO")];
const CONDITIONS: &[&str] = &["diabetes", "asthma", "epilepsy", "depression", "HIV", "cancer", "migraine", "arthritis"];
const MONTHS: &[&str] = &["January", "March", "April", "July", "September", "November", "Feb", "Oct"];

fn luhn_digit(body: &[u8]) -> u8 {
    // The one check digit that makes body+digit pass the engine's Luhn check.
    let mut number = body.to_vec();
    number.push(0);
    (0..10u8)
        .find(|&c| {
            if let Some(last) = number.last_mut() {
                *last = c;
            }
            meshward_engine::detect::luhn_valid(&number)
        })
        .unwrap_or(0)
}

fn to_str(d: &[u8]) -> String {
    d.iter().map(|x| (b'0' + x) as char).collect()
}

fn group(s: &str, sizes: &[usize], sep: &str) -> String {
    let mut out = Vec::new();
    let mut i = 0;
    for &n in sizes {
        out.push(&s[i..(i + n).min(s.len())]);
        i += n;
    }
    out.join(sep)
}

pub fn card(rng: &mut Rng, valid: bool) -> String {
    let (prefix, len): (&str, usize) = match rng.below(7) {
        0 => ("4", 16),
        1 => (["51", "52", "53", "54", "55"][rng.below(5) as usize], 16),
        2 => (["2221", "2500", "2720"][rng.below(3) as usize], 16),
        3 => (["34", "37"][rng.below(2) as usize], 15),
        4 => ("6011", 16),
        5 => ("3530", 16),
        _ => ("62", 16),
    };
    let mut d: Vec<u8> = prefix.bytes().map(|b| b - b'0').collect();
    while d.len() < len - 1 {
        d.push(rng.below(10) as u8);
    }
    let mut check = luhn_digit(&d);
    if !valid {
        check = (check + 1 + rng.below(8) as u8) % 10;
    }
    d.push(check);
    let s = to_str(&d);
    let sep = ["", " ", "-"][rng.below(3) as usize];
    if sep.is_empty() {
        s
    } else if len == 15 {
        group(&s, &[4, 6, 5], sep)
    } else {
        group(&s, &[4, 4, 4, 4], sep)
    }
}

fn tfn_digits(rng: &mut Rng, valid: bool) -> Vec<u8> {
    const W: [u32; 9] = [1, 4, 3, 7, 5, 8, 6, 9, 10];
    loop {
        let mut d = rng.digits(9);
        d[0] = rng.range(1, 9) as u8;
        let ok = |d: &[u8]| d.iter().zip(W).map(|(&x, w)| u32::from(x) * w).sum::<u32>() % 11 == 0;
        if valid {
            for last in 0..10 {
                d[8] = last;
                if ok(&d) {
                    return d;
                }
            }
        } else if !ok(&d) {
            return d;
        }
    }
}

fn abn_digits(rng: &mut Rng, valid: bool) -> Vec<u8> {
    const W: [u32; 11] = [10, 1, 3, 5, 7, 9, 11, 13, 15, 17, 19];
    let ok = |d: &[u8]| {
        d.iter().enumerate().zip(W).map(|((i, &x), w)| (u32::from(x) - u32::from(i == 0)) * w).sum::<u32>() % 89 == 0
    };
    loop {
        let mut d = rng.digits(11);
        if valid {
            for p in 10..100u8 {
                d[0] = p / 10;
                d[1] = p % 10;
                if ok(&d) {
                    return d;
                }
            }
        } else {
            d[0] = rng.range(1, 9) as u8;
            if !ok(&d) {
                return d;
            }
        }
    }
}

fn acn_digits(rng: &mut Rng, valid: bool) -> Vec<u8> {
    let mut d = rng.digits(9);
    let sum: u32 = d.iter().take(8).zip((1..=8u32).rev()).map(|(&x, w)| u32::from(x) * w).sum();
    let check = ((10 - sum % 10) % 10) as u8;
    d[8] = if valid { check } else { (check + 1 + rng.below(8) as u8) % 10 };
    d
}

fn medicare_digits(rng: &mut Rng, valid: bool) -> Vec<u8> {
    const W: [u32; 8] = [1, 3, 7, 9, 1, 3, 7, 9];
    let mut d = rng.digits(10);
    d[0] = rng.range(2, 6) as u8;
    let sum: u32 = d.iter().take(8).zip(W).map(|(&x, w)| u32::from(x) * w).sum();
    let check = (sum % 10) as u8;
    d[8] = if valid { check } else { (check + 1 + rng.below(8) as u8) % 10 };
    d[9] = rng.range(1, 9) as u8;
    d
}

fn iban(rng: &mut Rng, valid: bool) -> String {
    let (cc, bban) = match rng.below(5) {
        0 => ("GB", format!("{}{}", rng.chars(4, b"ABCDEFGHIJKLMNOPQRSTUVWXYZ"), to_str(&rng.digits(14)))),
        1 => ("DE", to_str(&rng.digits(18))),
        2 => ("FR", to_str(&rng.digits(23))),
        3 => ("NL", format!("{}{}", rng.chars(4, b"ABCDEFGHIJKLMNOPQRSTUVWXYZ"), to_str(&rng.digits(10)))),
        _ => ("ES", to_str(&rng.digits(20))),
    };
    let rearranged = format!("{bban}{cc}00");
    let mut r: u64 = 0;
    for c in rearranged.bytes() {
        r = if c.is_ascii_digit() {
            (r * 10 + u64::from(c - b'0')) % 97
        } else {
            (r * 100 + u64::from(c - b'A') + 10) % 97
        };
    }
    let mut check = 98 - r;
    if !valid {
        check = (check + 1 + rng.below(50)) % 97 + 2;
        if check == 98 - r {
            check = if check > 2 { check - 1 } else { check + 1 };
        }
    }
    let s = format!("{cc}{check:02}{bban}");
    if rng.chance(60) {
        let chunks: Vec<String> = s.as_bytes().chunks(4).map(|c| String::from_utf8_lossy(c).into_owned()).collect();
        chunks.join(" ")
    } else {
        s
    }
}

fn nino(rng: &mut Rng) -> String {
    let first = rng.chars(1, b"ABCEGHJKLMNPRSTWXYZ");
    let mut second = rng.chars(1, b"ABCEGHJKLMNPRSTWXYZ");
    while ["BG", "GB", "KN", "NK", "NT", "TN", "ZZ"].contains(&format!("{first}{second}").as_str()) {
        second = "A".into();
    }
    let d = to_str(&rng.digits(6));
    let suffix = rng.chars(1, b"ABCD");
    if rng.chance(50) {
        format!("{first}{second} {} {} {} {suffix}", &d[0..2], &d[2..4], &d[4..6])
    } else {
        format!("{first}{second}{d}{suffix}")
    }
}

fn phone(rng: &mut Rng) -> String {
    let d = |rng: &mut Rng, n| to_str(&rng.digits(n));
    match rng.below(12) {
        0 => format!("+1 {}{} {}{} {}", rng.range(2, 9), d(rng, 2), rng.range(2, 9), d(rng, 2), d(rng, 4)),
        1 => format!("({}{}) {}{}-{}", rng.range(2, 9), d(rng, 2), rng.range(2, 9), d(rng, 2), d(rng, 4)),
        2 => format!("{}{}-{}{}-{}", rng.range(2, 9), d(rng, 2), rng.range(2, 9), d(rng, 2), d(rng, 4)),
        3 => format!("+44 20 {} {}", d(rng, 4), d(rng, 4)),
        4 => format!("07{} {}", d(rng, 3), d(rng, 6)),
        5 => format!("04{} {} {}", d(rng, 2), d(rng, 3), d(rng, 3)),
        6 => format!("+61 4{} {} {}", d(rng, 2), d(rng, 3), d(rng, 3)),
        7 => format!("(0{}) {} {}", rng.pick(&["2", "3", "7", "8"]), d(rng, 4), d(rng, 4)),
        8 => format!("+49 30 {}", d(rng, 8)),
        9 => format!("0{} {} {} {} {}", rng.range(1, 9), d(rng, 2), d(rng, 2), d(rng, 2), d(rng, 2)),
        10 => format!("+33 {} {} {} {} {}", rng.range(1, 9), d(rng, 2), d(rng, 2), d(rng, 2), d(rng, 2)),
        _ => format!("+91 {}{} {}", rng.range(6, 9), d(rng, 4), d(rng, 5)),
    }
}

fn ipv4(rng: &mut Rng) -> String {
    format!("{}.{}.{}.{}", rng.range(1, 223), rng.below(256), rng.below(256), rng.range(1, 254))
}

fn ipv6(rng: &mut Rng) -> String {
    let g: Vec<String> = (0..8).map(|_| format!("{:x}", rng.below(0x10000))).collect();
    if rng.chance(50) {
        format!("2001:db8::{}:{}", g[0], g[1])
    } else {
        g.join(":")
    }
}

const B62: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const B32: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const HEX: &[u8] = b"0123456789abcdef";
const URLB64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";

/// A secret value and whether it is the whole sentence value span.
fn secret(rng: &mut Rng) -> (String, String) {
    // (text around, value) — the value is what must be labelled.
    match rng.below(14) {
        0 => ("aws".into(), format!("AKIA{}", rng.chars(16, B32))),
        1 => ("github".into(), format!("ghp_{}", rng.chars(36, B62))),
        2 => ("github".into(), format!("github_pat_{}_{}", rng.chars(22, B62), rng.chars(59, B62))),
        3 => (
            "slack".into(),
            format!("xoxb-{}-{}-{}", to_str(&rng.digits(11)), to_str(&rng.digits(13)), rng.chars(24, B62)),
        ),
        4 => ("stripe".into(), format!("sk_live_{}", rng.chars(32, B62))),
        5 => ("openai".into(), format!("sk-proj-{}", rng.chars(64, URLB64))),
        6 => ("anthropic".into(), format!("sk-ant-api03-{}AA", rng.chars(93, URLB64))),
        7 => ("google".into(), format!("AIza{}", rng.chars(35, URLB64))),
        8 => ("gitlab".into(), format!("glpat-{}", rng.chars(20, URLB64))),
        9 => ("jwt".into(), format!("eyJhbGciOiJIUzI1NiJ9.eyJ{}.{}", rng.chars(40, URLB64), rng.chars(43, URLB64))),
        10 => (
            "pem".into(),
            format!(
                "-----BEGIN PRIVATE KEY-----\n{}\n{}\n-----END PRIVATE KEY-----",
                rng.chars(64, B62),
                rng.chars(40, B62)
            ),
        ),
        11 => ("npm".into(), format!("npm_{}", rng.chars(36, B62))),
        12 => ("huggingface".into(), format!("hf_{}", rng.chars(34, B62))),
        _ => ("digitalocean".into(), format!("dop_v1_{}", rng.chars(64, HEX))),
    }
}

fn date(rng: &mut Rng) -> String {
    let (y, m, d) = (rng.range(1940, 2015), rng.range(1, 12), rng.range(1, 28));
    match rng.below(4) {
        0 => format!("{d:02}/{m:02}/{y}"),
        1 => format!("{y}-{m:02}-{d:02}"),
        2 => format!("{d} {} {y}", rng.pick(MONTHS)),
        _ => format!("{} {d}, {y}", rng.pick(MONTHS)),
    }
}

/// One positive example of `class` (with a filler sentence around it).
fn positive(rng: &mut Rng, class: &'static str, b: &mut Builder) {
    match class {
        "EMAIL" => {
            let local =
                format!("{}.{}", rng.pick(GIVEN).to_lowercase(), rng.pick(FAMILY).to_lowercase().replace('\'', ""));
            let domain = rng.pick(&["example.com", "mail.example.org", "corp.example.co.uk", "example.io"]);
            let intro = rng.pick(&["Send it to ", "cc ", "My address is ", "Reply-to: ", "ping "]);
            b.s(intro).v(class, &format!("{local}@{domain}")).s(" if that works.");
        }
        "PHONE" => {
            let intro = rng.pick(&["Call me on ", "My mobile is ", "Reach the desk at ", "Number: ", "tel. ", "or "]);
            b.s(intro).v(class, &phone(rng)).s(" after 5pm.");
        }
        "CREDIT_CARD" => {
            let intro = rng.pick(&["Charge card ", "My visa is ", "use ", "payment: ", "number "]);
            b.s(intro).v(class, &card(rng, true)).s(rng.pick(&[" exp 09/27.", ".", ", thanks."]));
        }
        "IBAN" => {
            b.s(rng.pick(&["Wire it to IBAN ", "Account: ", "pay into "])).v(class, &iban(rng, true)).s(" please.");
        }
        "US_SSN" => {
            let d = format!("{:03}-{:02}-{:04}", rng.range(1, 665), rng.range(1, 99), rng.range(1, 9999));
            b.s(rng.pick(&["My SSN is ", "SSN: ", "social security number ", "ssn "])).v(class, &d).s(".");
        }
        "AU_TFN" => {
            let s = to_str(&tfn_digits(rng, true));
            let v = if rng.chance(50) { group(&s, &[3, 3, 3], " ") } else { s };
            b.s(rng.pick(&["My TFN is ", "tax file number: ", "TFN "])).v(class, &v).s(".");
        }
        "AU_ABN" => {
            let s = to_str(&abn_digits(rng, true));
            let v = if rng.chance(60) { group(&s, &[2, 3, 3, 3], " ") } else { s };
            b.s(rng.pick(&["ABN ", "Our ABN is ", "invoice from ABN: ", "supplier "])).v(class, &v).s(".");
        }
        "AU_ACN" => {
            let s = to_str(&acn_digits(rng, true));
            let v = if rng.chance(60) { group(&s, &[3, 3, 3], " ") } else { s };
            b.s(rng.pick(&["ACN ", "company ACN: ", "(ACN "])).v(class, &v).s(" registered.");
        }
        "AU_MEDICARE" => {
            let s = to_str(&medicare_digits(rng, true));
            let v = if rng.chance(60) { group(&s, &[4, 5, 1], " ") } else { s };
            b.s(rng.pick(&["Medicare number ", "my medicare card is ", "Medicare: "])).v(class, &v).s(".");
        }
        "UK_NINO" => {
            b.s(rng.pick(&["NI number ", "National Insurance: ", "my NINO is ", "ref "])).v(class, &nino(rng)).s(".");
        }
        "IP_ADDRESS" => {
            let v = if rng.chance(70) { ipv4(rng) } else { ipv6(rng) };
            b.s(rng.pick(&["The request came from ", "server ", "blocked IP ", "host "])).v(class, &v).s(" twice.");
        }
        "SECRET" => {
            let (_, v) = secret(rng);
            let intro = rng.pick(&["Here is the key: ", "token=", "export KEY=", "I pasted ", "config: "]);
            b.s(intro).v(class, &v).s(" by mistake.");
        }
        "PERSON" => {
            let (g, f) = (rng.pick(GIVEN), rng.pick(FAMILY));
            match rng.below(6) {
                0 => b.s("Hi ").v(class, g).s(", thanks for the update."),
                1 => b.s("My name is ").v(class, &format!("{g} {f}")).s(" and I need help."),
                2 => b.s("Please ask Dr. ").v(class, f).s(" to review it."),
                3 => b.s("Best regards,\n").v(class, &format!("{g} {f}")).s("\n"),
                4 => b.s("Dear ").v(class, &format!("{g} {f}")).s(","),
                _ => b.s("Forward this to ").v(class, &format!("{g} {f}")).s(" today."),
            };
        }
        "ADDRESS" => {
            let street = format!("{} {} {}", rng.range(1, 999), rng.pick(STREETS), rng.pick(STREET_TYPES));
            let v = match rng.below(3) {
                0 => {
                    let (t, s, p) = AU_TOWNS[rng.below(AU_TOWNS.len() as u64) as usize];
                    format!("{street}, {t} {s} {}", p + rng.below(99))
                }
                1 => {
                    let (t, s) = US_TOWNS[rng.below(US_TOWNS.len() as u64) as usize];
                    format!("{street}, {t}, {s} {}", rng.range(10000, 99999))
                }
                _ => street,
            };
            b.s(rng.pick(&["I live at ", "Ship to ", "Our office is at ", "deliver to "])).v(class, &v).s(".");
        }
        "DATE_OF_BIRTH" => {
            b.s(rng.pick(&["I was born on ", "DOB: ", "date of birth ", "Born "])).v(class, &date(rng)).s(".");
        }
        "PASSPORT" => {
            let v = if rng.chance(50) {
                to_str(&rng.digits(9))
            } else {
                format!("{}{}", rng.chars(1, b"ABCDEFGHJKLMNPRSTUVWXYZ"), to_str(&rng.digits(7)))
            };
            b.s(rng.pick(&["My passport number is ", "passport: ", "Passport No. "])).v(class, &v).s(".");
        }
        "HEALTH" => {
            let c = rng.pick(CONDITIONS);
            match rng.below(3) {
                0 => b.s("I was diagnosed with ").v(class, c).s(" last year."),
                1 => b.s("My ").v(class, c).s(" got worse this week."),
                _ => b.s("She is being treated for ").v(class, c).s("."),
            };
        }
        "MINOR" => {
            let n = rng.range(2, 16);
            match rng.below(3) {
                0 => b.s("My son is ").v(class, &format!("{n} years old")).s("."),
                1 => b.s("a ").v(class, &format!("{n}-year-old")).s(" girl was there."),
                _ => b.s("The patient, ").v(class, &format!("aged {n}")).s(", was calm."),
            };
        }
        _ => unreachable!("{class}"),
    }
}

/// Near misses: text that must produce no finding at all.
fn negative(rng: &mut Rng, b: &mut Builder) {
    let d = |rng: &mut Rng, n| to_str(&rng.digits(n));
    let text = match rng.below(24) {
        0 => format!(
            "Request id {:08x}-{:04x}-4{:03x}-a{:03x}-{:012x} failed.",
            rng.next() as u32,
            rng.below(65536),
            rng.below(4096),
            rng.below(4096),
            rng.next() >> 16
        ),
        1 => format!("Reverted commit {}.", rng.chars(40, HEX)),
        2 => format!("Order #{} has shipped.", d(rng, 9)),
        3 => format!("Logged at 2024-0{}-1{}T10:{}:00Z by the job.", rng.range(1, 9), rng.below(10), rng.range(10, 59)),
        4 => format!("Epoch {} in the trace.", rng.range(1_600_000_000, 1_800_000_000)),
        5 => format!("Upgrade to version {}.{}.{}.{} now.", rng.below(20), rng.below(20), rng.below(20), rng.below(99)),
        6 => format!("The number {} looks like a card but is not.", card(rng, false).replace([' ', '-'], "")),
        7 => format!(
            "Invalid SSN {}-{:02}-{:04} was rejected.",
            rng.range(900, 999),
            rng.range(1, 99),
            rng.range(1, 9999)
        ),
        8 => format!("Use TFN {} in the test.", group(&to_str(&tfn_digits(rng, false)), &[3, 3, 3], " "))
            .replace("TFN", "ref"),
        9 => format!("Invoice {} is overdue.", to_str(&abn_digits(rng, false))),
        10 => format!("Transfer to {} bounced.", iban(rng, false)).replace("Transfer to ", "Reference "),
        11 => "Set STRIPE_KEY=sk_live_XXXXXXXXXXXXXXXXXXXXXXXX in the example.".into(),
        12 => "The password: required field must be set.".into(),
        13 => "Diabetes research funding grew last year.".into(),
        14 => "The Python Software Foundation published it.".into(),
        15 => format!("Price went from {}.{} to {}.{} dollars.", rng.below(999), d(rng, 2), rng.below(999), d(rng, 2)),
        16 => format!("Meeting on {}/{}/2025 at 10:30.", rng.range(1, 28), rng.range(1, 12)),
        17 => format!("SKU {}-{}-{} is out of stock.", d(rng, 3), d(rng, 3), d(rng, 3)),
        18 => format!("Checksum sha256:{}.", rng.chars(64, HEX)),
        19 => format!("Page {} of {}, line {}.", rng.below(300), rng.range(300, 999), rng.below(80)),
        20 => format!("Ticket {} is assigned.", d(rng, 10)),
        21 => format!("Tracking number {} is in transit.", d(rng, 11)),
        22 => "I am 35 years old and happy to help.".into(),
        _ => format!("Set max_tokens = {} and temperature 0.{}.", rng.range(100, 8000), rng.below(10)),
    };
    b.s(&text);
}

pub const CLASSES: &[&str] = &[
    "EMAIL",
    "PHONE",
    "CREDIT_CARD",
    "IBAN",
    "US_SSN",
    "AU_TFN",
    "AU_ABN",
    "AU_ACN",
    "AU_MEDICARE",
    "UK_NINO",
    "IP_ADDRESS",
    "SECRET",
    "PERSON",
    "ADDRESS",
    "DATE_OF_BIRTH",
    "PASSPORT",
    "HEALTH",
    "MINOR",
];

/// `per_class` positives of every class plus as many negatives, shuffled
/// into texts of one to three sentences.
pub fn generate(seed: u64, per_class: usize) -> Vec<Example> {
    let mut rng = Rng::new(seed);
    let mut out = Vec::new();
    let mut n = 0;
    for round in 0..per_class {
        for &class in CLASSES.iter().chain(std::iter::once(&"NONE")) {
            let mut b = Builder::new();
            if rng.chance(50) {
                b.s(rng.pick(FILLER)).s(" ");
            }
            if class == "NONE" {
                negative(&mut rng, &mut b);
                b.s(" ");
                negative(&mut rng, &mut b);
            } else {
                positive(&mut rng, class, &mut b);
                if rng.chance(30) {
                    b.s(" ");
                    negative(&mut rng, &mut b);
                }
            }
            if rng.chance(40) {
                b.s(" ").s(rng.pick(FILLER));
            }
            out.push(Example {
                id: format!("{round}-{class}-{n}"),
                text: b.text.clone(),
                labels: std::mem::take(&mut b.labels),
            });
            n += 1;
        }
    }
    out
}
