//! The `mixed` corpus: what LLM prompt traffic looks like, generated
//! deterministically so every run (native or through the `.wasm`) scans the
//! same bytes. Shared by `benches/detect.rs` and the wasm host's bench
//! (included with `#[path]`, so there is one definition).
//!
//! Mostly prose paragraphs (English, capitalised sentences, some curly
//! quotes and em dashes as model output has), with markdown headings and
//! lists, fenced code (Rust, Python, shell), JSON snippets, and the numbers
//! real prompts carry: dates, times, prices, order and ticket ids, versions,
//! UUIDs, git SHAs, ports, percentages. Sensitive values come at a realistic
//! density: one roughly every 1–2 KB, drawn from every built-in class.

/// xorshift64*: deterministic, dependency-free.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    pub fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

const WORDS: &[&str] = &[
    "the",
    "model",
    "should",
    "summarise",
    "this",
    "document",
    "and",
    "list",
    "every",
    "action",
    "item",
    "for",
    "our",
    "team",
    "meeting",
    "notes",
    "about",
    "quarterly",
    "planning",
    "with",
    "budget",
    "review",
    "please",
    "write",
    "a",
    "short",
    "reply",
    "explaining",
    "why",
    "deployment",
    "failed",
    "yesterday",
    "after",
    "upgrade",
    "to",
    "database",
    "migration",
    "is",
    "slow",
    "because",
    "index",
    "was",
    "missing",
    "on",
    "table",
    "customer",
    "orders",
    "we",
    "need",
    "better",
    "tests",
    "in",
    "pipeline",
    "before",
    "release",
    "can",
    "you",
    "help",
    "me",
    "understand",
    "how",
    "works",
    "it",
    "seems",
    "like",
    "cache",
    "not",
    "used",
    "properly",
    "of",
    "that",
    "are",
    "be",
    "from",
    "as",
    "by",
    "which",
    "when",
    "there",
    "their",
    "would",
    "could",
    "also",
    "into",
    "than",
    "only",
    "other",
    "some",
    "these",
    "then",
    "latency",
    "request",
    "response",
    "service",
    "endpoint",
    "config",
    "retry",
    "timeout",
    "queue",
    "worker",
    "memory",
    "error",
    "log",
    "metric",
    "dashboard",
    "alert",
    "user",
    "account",
    "invoice",
    "payment",
    "refund",
    "shipping",
    "contract",
    "clause",
    "draft",
    "email",
    "summary",
    "translate",
    "tone",
    "formal",
    "friendly",
    "concise",
    "bullet",
    "points",
    "section",
    "paragraph",
    "chapter",
    "story",
    "character",
    "plot",
    "recipe",
    "ingredients",
    "minutes",
    "students",
    "lesson",
    "exercise",
    "answer",
    "question",
    "example",
    "explain",
    "compare",
    "difference",
    "between",
];

const CAPITALISED: &[&str] = &[
    "The",
    "Please",
    "Can",
    "We",
    "I",
    "This",
    "Our",
    "After",
    "Before",
    "Could",
    "Here",
    "Thanks",
    "Also",
    "Note",
    "Then",
    "Today",
    "Yesterday",
    "Kubernetes",
    "Postgres",
    "Python",
    "Rust",
    "Monday",
    "March",
    "London",
    "Sydney",
    "Berlin",
    "GitHub",
    "AWS",
    "Envoy",
    "Istio",
    "OpenAI",
    "Anthropic",
];

/// Numbers that are not sensitive but look like it: the near misses real
/// traffic is full of.
const NUMBERS: &[&str] = &[
    "on 2024-03-15",
    "by 15/03/2024",
    "at 14:30:05",
    "on March 3, 2024",
    "for $1,299.00",
    "about €45.50",
    "order #A12345",
    "ticket ORD-2024-001234",
    "version 1.24.3",
    "v3.11.4",
    "release 2.0.0-rc.1",
    "id 550e8400-e29b-41d4-a716-446655440000",
    "commit 3f786850e387550fdab836ed7e6dc881de23001b",
    "port 8080",
    "localhost:5432",
    "up 12.5%",
    "ts 1700000000",
    "PR #4821",
    "issue 10293",
    "ISBN 978-3-16-148410-0",
    "build 20240315.7",
    "at 10.0.0.0/8 scale",
    "HTTP 503",
    "99.95% uptime",
    "tracking 1Z999AA10123456784",
    "SKU 123-456-789",
    "3 x 4 = 12",
    "pages 10-20",
    "room 4.02",
];

/// One sensitive value per line, in a sentence, from every built-in class.
const SENSITIVE: &[&str] = &[
    "You can reach me at priya.sharma@example.com if anything is unclear.",
    "cc liam.papadopoulos@example.io on the thread",
    "My card is 4111 1111 1111 1111, expiry 12/27.",
    "charge the Mastercard 5555-5555-5555-4444 instead",
    "amex 3782 822463 10005 was declined",
    "Call me on +44 20 7946 0958 after 5pm.",
    "the desk is (415) 555-0132 during business hours",
    "mobile 0412 345 678",
    "Wire it to IBAN GB82 WEST 1234 5698 7654 32 please.",
    "pay into DE89370400440532013000 by Friday",
    "SSN: 218-10-3466.",
    "tax file number: 822 818 473.",
    "Our ABN is 71 556 581 811.",
    "company ACN: 005 499 981 registered",
    "Medicare: 2123 45670 1.",
    "National Insurance: AB 12 34 56 C.",
    "the server at 192.168.10.254 keeps timing out",
    "host 2001:db8::8a2e:370:7334 is unreachable",
    "export GITHUB_TOKEN=ghp_ZxRdb2PNizF5KSbvKDZD6MiXv9UYTCZXFTuq",
    "aws_access_key_id = AKIAQYLPMN5HHHFPZAM2",
    "OPENAI_API_KEY=sk-proj-aZ3kQ9xL2mP7aZ3kQ9xL2mP7aZ3kQ9xL2mP7aZ3kQ9xL2mP7",
    "DATABASE_URL=postgres://app:s3cr3t-Pa55@db.internal:5432/app",
    "\"password\": \"Tr0ub4dor&3x\"",
    "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    "Hi Priya, thanks for the quick turnaround.",
    "Dear Mr. Okonkwo,",
    "Best regards,\nBartholomew O'Brien\n",
    "My name is Eleanor Kowalczyk and I manage the account.",
    "I was born on 4 July 1990 in Perth.",
    "DOB: 12/03/1985",
    "passport number: N1234567",
    "She was diagnosed with diabetes last year.",
    "my son is 7 years old",
    "Ship to 12 Smith Street, Sydney NSW 2000.",
    "send it to 1600 Pennsylvania Avenue NW, Washington, DC 20500",
];

fn sentence(rng: &mut Rng, s: &mut String) {
    s.push_str(rng.pick(CAPITALISED));
    for _ in 0..(6 + rng.below(14)) {
        s.push(' ');
        match rng.below(40) {
            0 => s.push_str(rng.pick(NUMBERS)),
            1 => {
                s.push('“');
                s.push_str(rng.pick(WORDS));
                s.push('”');
            }
            2 => s.push_str(rng.pick(CAPITALISED)),
            3 => s.push('—'),
            _ => s.push_str(rng.pick(WORDS)),
        }
    }
    s.push_str(if rng.below(8) == 0 { "?" } else { "." });
}

fn paragraph(rng: &mut Rng, s: &mut String) {
    for _ in 0..(2 + rng.below(5)) {
        sentence(rng, s);
        s.push(' ');
    }
    s.pop();
    s.push_str("\n\n");
}

fn code(rng: &mut Rng, s: &mut String) {
    let blocks = [
        "```rust\nfn retry<T>(mut op: impl FnMut() -> Result<T, Error>) -> Result<T, Error> {\n    for attempt in 0..5 {\n        match op() {\n            Ok(v) => return Ok(v),\n            Err(e) if attempt < 4 => sleep(Duration::from_millis(100 << attempt)),\n            Err(e) => return Err(e),\n        }\n    }\n    unreachable!()\n}\n```\n\n",
        "```python\ndef load(path: str) -> dict:\n    with open(path, encoding=\"utf-8\") as f:\n        data = json.load(f)\n    return {k: v for k, v in data.items() if v is not None}\n\nprint(load(\"config/settings.json\")[\"timeout_ms\"])  # 2500\n```\n\n",
        "```sh\n$ kubectl get pods -n payments -o wide\nNAME                        READY   STATUS    RESTARTS   AGE\napi-7d9f8c6b5-x2k4p         1/1     Running   0          3d4h\nworker-5c8d7f9b6-q9w8e      0/1     CrashLoopBackOff   12   41m\n```\n\n",
        "```json\n{\n  \"id\": \"550e8400-e29b-41d4-a716-446655440000\",\n  \"status\": \"shipped\",\n  \"items\": [{\"sku\": \"AB-1234\", \"qty\": 2, \"price\": 19.99}],\n  \"created_at\": \"2024-03-15T10:30:00Z\",\n  \"max_tokens\": 4096\n}\n```\n\n",
        "```yaml\nservice:\n  name: checkout\n  replicas: 3\n  image: registry.example.com/checkout:1.24.3\n  resources:\n    limits: { cpu: 500m, memory: 512Mi }\n```\n\n",
        "    at com.example.orders.OrderService.place(OrderService.java:142)\n    at com.example.orders.Api.lambda$post$0(Api.java:57)\nCaused by: java.net.SocketTimeoutException: connect timed out after 30000 ms\n\n",
    ];
    s.push_str(rng.pick(&blocks));
}

fn markdown(rng: &mut Rng, s: &mut String) {
    match rng.below(3) {
        0 => {
            s.push_str("## ");
            s.push_str(rng.pick(CAPITALISED));
            s.push(' ');
            s.push_str(rng.pick(WORDS));
            s.push_str("\n\n");
        }
        1 => {
            for _ in 0..(2 + rng.below(4)) {
                s.push_str("- ");
                s.push_str(rng.pick(CAPITALISED));
                for _ in 0..(3 + rng.below(6)) {
                    s.push(' ');
                    if rng.below(10) == 0 {
                        s.push_str(rng.pick(NUMBERS));
                    } else {
                        s.push_str(rng.pick(WORDS));
                    }
                }
                s.push('\n');
            }
            s.push('\n');
        }
        _ => {
            s.push_str("| metric | before | after |\n|---|---|---|\n");
            for _ in 0..(2 + rng.below(3)) {
                s.push_str("| ");
                s.push_str(rng.pick(WORDS));
                s.push_str(&format!(" | {} ms | {} ms |\n", 10 + rng.below(900), 5 + rng.below(400)));
            }
            s.push('\n');
        }
    }
}

/// About `bytes` bytes (cut at a character boundary at or after it).
pub fn mixed(rng: &mut Rng, bytes: usize) -> String {
    let mut s = String::with_capacity(bytes + 4096);
    // Bytes until the next sensitive value: uniform in 1000..2000.
    let mut next_sensitive = 1000 + rng.below(1000) as usize;
    while s.len() < bytes {
        match rng.below(10) {
            0 => code(rng, &mut s),
            1 => markdown(rng, &mut s),
            _ => paragraph(rng, &mut s),
        }
        if s.len() >= next_sensitive {
            // Inside a sentence, as people paste it.
            if s.ends_with("\n\n") {
                s.truncate(s.len() - 2);
                s.push(' ');
            }
            s.push_str(rng.pick(SENSITIVE));
            s.push_str("\n\n");
            next_sensitive = s.len() + 1000 + rng.below(1000) as usize;
        }
    }
    let mut cut = bytes.min(s.len());
    while !s.is_char_boundary(cut) {
        cut += 1;
    }
    s.truncate(cut);
    s
}
