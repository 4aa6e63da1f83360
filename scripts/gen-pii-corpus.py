#!/usr/bin/env python3
"""Labelled PII corpus for `make eval`, written independently of the Rust
generator in filter/engine/tests/corpus (that one was written alongside the
detectors and flatters them).

Output: JSON Lines `{"id", "group", "text", "labels": [{"class", "start",
"end"}]}` with byte offsets into the UTF-8 text. `group` says what a text
is: `positive:<CLASS>`, `record` (several classes in one form),
`near_miss:<kind>` (must not fire) or `clean`.

Values come from Faker (names, addresses, e-mail, IBAN, cards, SSN, dates)
where it gives valid ones, and from our own generators where it has none or
gives invalid ones (TFN, ABN, ACN, Medicare, NINO — Faker's en_GB ssn() draws
unissued prefixes like ZZ —, phone numbers — Faker draws invalid area codes —,
passports and secret formats). Every checksummed value is re-validated here;
every near-miss is verified to fail every checksum of its length.

Same seed, same corpus. Faker is pinned and installed into the project's
.venv on first run, the way scripts/fetch-corpora.sh installs PyYAML.
"""
import argparse
import base64
import json
import os
import random
import string
import subprocess
import sys
from pathlib import Path

FAKER_VERSION = "40.54.0"
ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"


def ensure_faker():
    """Re-runs this script under .venv's Python with the pinned Faker."""
    try:
        import faker

        if faker.VERSION == FAKER_VERSION:
            return
    except ImportError:
        pass
    if Path(sys.prefix).resolve() == VENV.resolve() and os.environ.get("MESHWARD_GEN_REEXEC"):
        sys.exit(f"faker=={FAKER_VERSION} is not importable from {VENV}")
    python = VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    probe = subprocess.run([str(python), "-c", f"import faker; assert faker.VERSION == '{FAKER_VERSION}'"],
                           capture_output=True)
    if probe.returncode != 0:
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", f"faker=={FAKER_VERSION}"], check=True)
    os.environ["MESHWARD_GEN_REEXEC"] = "1"
    os.execv(str(python), [str(python), __file__, *sys.argv[1:]])


# ---------------------------------------------------------------- checksums

def g_pick_london(r):
    """London 020 numbers in use begin 3, 7 or 8."""
    return r.choice("378")


def luhn_ok(digits):
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


IBAN_LENGTHS = {"GB": 22, "DE": 22, "FR": 27, "NL": 18, "ES": 24, "IT": 27, "AU": 0}


def iban_ok(iban):
    iban = iban.replace(" ", "").upper()
    if len(iban) != IBAN_LENGTHS.get(iban[:2], -1):
        return False
    moved = iban[4:] + iban[:4]
    number = "".join(str(int(c, 36)) for c in moved)
    return int(number) % 97 == 1


def issuer_ok(d):
    """Issuer ranges (DESIGN.md §4). Faker's JCB draws any 35xx, though
    only 3528-3589 are JCB."""
    two, four = int(d[:2]), int(d[:4])
    return (d[0] == "4" or 51 <= two <= 55 or 2221 <= four <= 2720 or two in (34, 37) or d.startswith("6011")
            or 644 <= int(d[:3]) <= 649 or two == 65 or 3528 <= four <= 3589 or 300 <= int(d[:3]) <= 305
            or two in (36, 38, 39) or two == 62)


def tfn_ok(d):
    return len(d) == 9 and sum(int(c) * w for c, w in zip(d, (1, 4, 3, 7, 5, 8, 6, 9, 10))) % 11 == 0


def abn_ok(d):
    if len(d) != 11 or d[0] == "0":
        return False
    digits = [int(c) for c in d]
    digits[0] -= 1
    return sum(x * w for x, w in zip(digits, (10, 1, 3, 5, 7, 9, 11, 13, 15, 17, 19))) % 89 == 0


def acn_ok(d):
    if len(d) != 9:
        return False
    total = sum(int(c) * w for c, w in zip(d[:8], range(8, 0, -1)))
    return (10 - total % 10) % 10 == int(d[8])


def medicare_ok(d):
    if len(d) not in (10, 11) or d[0] not in "23456":
        return False
    return sum(int(c) * w for c, w in zip(d[:8], (1, 3, 7, 9, 1, 3, 7, 9))) % 10 == int(d[8])


def any_checksum_ok(digits):
    """Whether a digit string passes any checksummed class of its length."""
    return (tfn_ok(digits) or abn_ok(digits) or acn_ok(digits) or medicare_ok(digits)
            or (12 <= len(digits) <= 19 and luhn_ok(digits)))


NINO_FIRST_BAD = set("DFIQUV")
NINO_SECOND_BAD = set("DFIOQUV")
NINO_PREFIX_BAD = {"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"}


def nino_ok(n):
    n = n.replace(" ", "").upper()
    return (len(n) == 9 and n[0] not in NINO_FIRST_BAD and n[1] not in NINO_SECOND_BAD
            and n[:2] not in NINO_PREFIX_BAD and n[2:8].isdigit() and n[8] in "ABCD")


def ssn_ok(s):
    d = s.replace("-", "").replace(" ", "")
    area, group, serial = d[:3], d[3:5], d[5:]
    return (len(d) == 9 and d.isdigit() and area != "000" and area != "666" and area[0] != "9"
            and group != "00" and serial != "0000")


def self_test():
    """The validators against published examples, so a validator bug cannot
    quietly make the corpus wrong."""
    assert tfn_ok("123456782") and not tfn_ok("123456789")
    assert abn_ok("51824753556") and not abn_ok("51824753557")
    assert acn_ok("000000019") and acn_ok("004085616") and not acn_ok("004085617")
    assert medicare_ok("2123456701") and not medicare_ok("2123456711")
    assert iban_ok("GB82WEST12345698765432") and not iban_ok("GB82WEST12345698765433")
    assert luhn_ok("4111111111111111") and not luhn_ok("4111111111111112")
    assert issuer_ok("2221000000000009") and not issuer_ok("3500000000000000")
    assert nino_ok("AB123456C") and not nino_ok("QQ123456C") and not nino_ok("AB123456E")
    assert ssn_ok("123-45-6789") and not ssn_ok("666-45-6789") and not ssn_ok("912-45-6789")


# ---------------------------------------------------------------- generators

class Gen:
    def __init__(self, seed):
        from faker import Faker

        self.r = random.Random(seed)
        self.locales = ["en_US", "en_GB", "en_AU", "de_DE", "fr_FR", "en_IN"]
        self.fakers = {}
        for i, loc in enumerate(self.locales + ["nl_NL", "es_ES", "it_IT"]):
            f = Faker(loc)
            f.seed_instance(seed + i)
            self.fakers[loc] = f

    def pick(self, seq):
        return self.r.choice(seq)

    def digits(self, n):
        return "".join(self.r.choice(string.digits) for _ in range(n))

    def chars(self, alphabet, n):
        return "".join(self.r.choice(alphabet) for _ in range(n))

    def faker(self):
        """One of the six locales, remembered in `self.locale` so texts can
        carry it as their subtype."""
        self.locale = self.pick(self.locales)
        return self.fakers[self.locale]

    # ---- PII values
    def name(self):
        f = self.faker()
        return f"{f.first_name()} {f.last_name()}"

    def email(self):
        f = self.faker()
        kind = self.r.randrange(6)
        if kind == 0:
            return f.free_email()
        if kind == 1:
            return f.company_email()
        if kind == 2:
            user = f.user_name()
            return f"{user}+{self.pick(['billing', 'news', 'work', 'test'])}@{f.free_email_domain()}"
        if kind == 3:
            return f"{f.first_name()}.{f.last_name()}@{self.pick(['mail', 'corp', 'eu'])}.{f.domain_name()}".lower()
        if kind == 4:
            return f.email().upper() if self.r.random() < 0.3 else f.email()
        return f.email()

    def phone(self):
        """(value, country) in a national or international format of a
        number valid in that country's numbering plan."""
        country = self.pick(["US", "UK", "AU", "DE", "FR", "IN"])
        r, d = self.r, self.digits
        if country == "US":
            # NANP: area and exchange start 2-9 and are not N11 service codes.
            area, exch = "211", "211"
            while area[1:] == "11" or exch[1:] == "11":
                area = str(r.randint(2, 9)) + d(2)
                exch = str(r.randint(2, 9)) + d(2)
            line = d(4)
            forms = [f"({area}) {exch}-{line}", f"{area}-{exch}-{line}", f"{area}.{exch}.{line}",
                     f"+1 {area} {exch} {line}", f"+1{area}{exch}{line}", f"1-{area}-{exch}-{line}"]
        elif country == "UK":
            if r.random() < 0.5:
                rest = str(r.randint(1, 9)) + d(8)
                forms = [f"07{rest[:3]} {rest[3:]}", f"+44 7{rest[:3]} {rest[3:]}", f"+447{rest}",
                         f"07{rest}"]
            else:
                a, b = g_pick_london(r) + d(3), d(4)
                forms = [f"020 {a} {b}", f"(020) {a} {b}", f"+44 20 {a} {b}", f"+4420{a}{b}"]
        elif country == "AU":
            if r.random() < 0.5:
                rest = d(8)
                forms = [f"04{rest[:2]} {rest[2:5]} {rest[5:]}", f"+61 4{rest[:2]} {rest[2:5]} {rest[5:]}",
                         f"+614{rest}", f"04{rest}"]
            else:
                area = self.pick(["2", "3", "7", "8"])
                a, b = str(r.randint(3, 9)) + d(3), d(4)
                forms = [f"(0{area}) {a} {b}", f"0{area} {a} {b}", f"+61 {area} {a} {b}", f"+61{area}{a}{b}"]
        elif country == "DE":
            if r.random() < 0.5:
                prefix = self.pick(["151", "152", "160", "170", "171", "176"])
                rest = d(8) if prefix.startswith("15") else d(7)
                forms = [f"0{prefix} {rest}", f"+49 {prefix} {rest}", f"+49{prefix}{rest}", f"0{prefix}/{rest}"]
            else:
                area = self.pick(["30", "40", "89", "69", "221"])
                rest = str(r.randint(2, 9)) + d(6)
                forms = [f"0{area} {rest}", f"+49 {area} {rest}", f"(0{area}) {rest}", f"+49{area}{rest}"]
        elif country == "FR":
            first = self.pick(["1", "2", "3", "4", "5", "6", "7", "9"])
            rest = d(8)
            pairs = " ".join(rest[i:i + 2] for i in range(0, 8, 2))
            forms = [f"0{first} {pairs}", f"0{first}.{pairs.replace(' ', '.')}", f"+33 {first} {pairs}",
                     f"+33{first}{rest}", f"0{first}{rest}"]
        else:
            rest = str(r.randint(6, 9)) + d(9)
            forms = [f"+91 {rest[:5]} {rest[5:]}", f"+91-{rest}", f"+91{rest}", f"0{rest[:5]} {rest[5:]}",
                     f"{rest[:5]} {rest[5:]}"]
        return self.pick(forms), country

    def card(self):
        f = self.fakers["en_US"]
        while True:
            kind = self.pick(["visa", "mastercard", "amex", "discover", "jcb", "diners", "visa", "mastercard"])
            number = f.credit_card_number(card_type=kind)
            if luhn_ok(number) and issuer_ok(number):
                break
        style = self.r.randrange(3)
        if style == 0:
            return number
        sep = " " if style == 1 else "-"
        if len(number) == 15:
            groups = [number[:4], number[4:10], number[10:]]
        elif len(number) == 14:
            groups = [number[:4], number[4:10], number[10:]]
        else:
            groups = [number[i:i + 4] for i in range(0, len(number), 4)]
        return sep.join(groups)

    def iban(self):
        while True:
            loc = self.pick(["en_GB", "de_DE", "fr_FR", "nl_NL", "es_ES", "it_IT"])
            value = self.fakers[loc].iban()
            if iban_ok(value):
                break
        if self.r.random() < 0.5:
            return " ".join(value[i:i + 4] for i in range(0, len(value), 4))
        return value

    def ssn(self):
        while True:
            value = self.fakers["en_US"].ssn()
            if ssn_ok(value):
                break
        style = self.r.randrange(4)
        d = value.replace("-", "")
        return [value, value, f"{d[:3]} {d[3:5]} {d[5:]}", d][style]

    def with_check(self, length, ok):
        while True:
            d = self.digits(length)
            if d[0] != "0" and ok(d):
                return d

    def tfn(self):
        d = self.with_check(9, tfn_ok)
        return self.pick([d, f"{d[:3]} {d[3:6]} {d[6:]}", f"{d[:3]}-{d[3:6]}-{d[6:]}"])

    def abn(self):
        d = self.with_check(11, abn_ok)
        return self.pick([d, f"{d[:2]} {d[2:5]} {d[5:8]} {d[8:]}"])

    def acn(self):
        d = self.with_check(9, acn_ok)
        return self.pick([d, f"{d[:3]} {d[3:6]} {d[6:]}"])

    def medicare(self):
        while True:
            d = str(self.r.randint(2, 6)) + self.digits(7)
            d += str(sum(int(c) * w for c, w in zip(d, (1, 3, 7, 9, 1, 3, 7, 9))) % 10)
            d += str(self.r.randint(1, 9))
            if medicare_ok(d):
                break
        irn = str(self.r.randint(1, 5))
        return self.pick([d, f"{d[:4]} {d[4:9]} {d[9]}", f"{d}-{irn}", f"{d[:4]} {d[4:9]} {d[9]}/{irn}"])

    def nino(self):
        letters = string.ascii_uppercase
        while True:
            n = self.pick(letters) + self.pick(letters) + self.digits(6) + self.pick("ABCD")
            if nino_ok(n):
                break
        if self.r.random() < 0.4:
            return f"{n[:2]} {n[2:4]} {n[4:6]} {n[6:8]} {n[8]}"
        return n

    def ip(self):
        f = self.fakers["en_US"]
        kind = self.r.randrange(6)
        if kind == 0:
            return f.ipv4_private()
        if kind in (1, 2):
            return f.ipv4_public()
        if kind == 3:
            return f.ipv6()
        if kind == 4:
            groups = [format(self.r.randrange(0x10000), "x") for _ in range(3)]
            return f"2001:db8:{groups[0]}::{groups[1]}"
        return f"fe80::{format(self.r.randrange(0x10000), 'x')}:{format(self.r.randrange(0x10000), 'x')}"

    def ip_v4(self):
        f = self.fakers["en_US"]
        return f.ipv4_private() if self.r.random() < 0.5 else f.ipv4_public()

    def address(self):
        f = self.faker()
        if self.r.random() < 0.4:
            return f.street_address()
        return f.address().replace("\n", ", ")

    def date_text(self, date):
        months = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
                  "October", "November", "December"]
        forms = [date.strftime("%Y-%m-%d"), date.strftime("%d/%m/%Y"), date.strftime("%m/%d/%Y"),
                 f"{months[date.month - 1]} {date.day}, {date.year}", f"{date.day} {months[date.month - 1]} {date.year}",
                 date.strftime("%d.%m.%Y"), f"{date.day} {months[date.month - 1][:3]} {date.year}"]
        return self.pick(forms)

    def dob(self):
        return self.date_text(self.fakers["en_US"].date_of_birth(minimum_age=1, maximum_age=95))

    def passport(self):
        r, d = self.r, self.digits
        country = self.pick(["US", "UK", "AU", "DE", "FR", "IN"])
        self.locale = country
        if country in ("US", "UK"):
            return d(9) if r.random() < 0.6 else self.pick("ACEFGH") + d(8)
        if country == "AU":
            return self.pick(["N", "PA", "PB", "M", "E"]) + d(7)
        if country == "DE":
            return self.pick("CFGHJK") + self.chars("CFGHJKLMNPRTVWXYZ0123456789", 8)
        if country == "FR":
            return d(2) + self.chars(string.ascii_uppercase, 2) + d(5)
        return self.pick("JKLMNPRSTUVWZ") + d(7)

    # ---- secrets: (value, subtype); value is what a labeller marks
    def secret(self):
        r = self.r
        alnum = string.ascii_letters + string.digits
        b64 = alnum + "+/"
        url = alnum + "_-"
        kind = self.pick(["aws_key_id", "aws_secret", "google_api", "gcp_oauth", "azure_storage", "azure_client",
                          "github", "github_pat", "gitlab", "slack_token", "slack_webhook", "stripe", "openai",
                          "openai_legacy", "anthropic", "pem", "jwt", "url_password", "conn_password", "generic"])
        if kind == "aws_key_id":
            return self.pick(["AKIA", "ASIA"]) + self.chars(string.ascii_uppercase + "234567", 16), kind
        if kind == "aws_secret":
            return self.chars(b64, 40), kind
        if kind == "google_api":
            return "AIza" + self.chars(url, 35), kind
        if kind == "gcp_oauth":
            return "GOCSPX-" + self.chars(url, 28), kind
        if kind == "azure_storage":
            return self.chars(b64, 86) + "==", kind
        if kind == "azure_client":
            return self.chars(alnum, 3) + str(r.randint(0, 9)) + "Q~" + self.chars(alnum + "_~.-", 34), kind
        if kind == "github":
            return self.pick(["ghp_", "gho_", "ghu_", "ghs_", "ghr_"]) + self.chars(alnum, 36), kind
        if kind == "github_pat":
            return "github_pat_" + self.chars(alnum, 22) + "_" + self.chars(alnum, 59), kind
        if kind == "gitlab":
            return "glpat-" + self.chars(url, 20), kind
        if kind == "slack_token":
            prefix = self.pick(["xoxb", "xoxp", "xoxa"])
            return f"{prefix}-{self.digits(11)}-{self.digits(12)}-{self.chars(alnum, 24)}", kind
        if kind == "slack_webhook":
            upper = string.ascii_uppercase + string.digits
            return (f"https://hooks.slack.com/services/T{self.chars(upper, 8)}/B{self.chars(upper, 10)}/"
                    f"{self.chars(alnum, 24)}"), kind
        if kind == "stripe":
            return self.pick(["sk_live_", "rk_live_"]) + self.chars(alnum, self.pick([24, 34, 99])), kind
        if kind == "openai":
            return "sk-proj-" + self.chars(url, 74) + "T3BlbkFJ" + self.chars(url, 74), kind
        if kind == "openai_legacy":
            return "sk-" + self.chars(alnum, 20) + "T3BlbkFJ" + self.chars(alnum, 20), kind
        if kind == "anthropic":
            return "sk-ant-api03-" + self.chars(url, 93) + "AA", kind
        if kind == "pem":
            label = self.pick(["RSA PRIVATE KEY", "PRIVATE KEY", "EC PRIVATE KEY", "OPENSSH PRIVATE KEY"])
            body = base64.b64encode(bytes(r.randrange(256) for _ in range(r.choice([121, 240, 600])))).decode()
            lines = "\n".join(body[i:i + 64] for i in range(0, len(body), 64))
            return f"-----BEGIN {label}-----\n{lines}\n-----END {label}-----", kind
        if kind == "jwt":
            def b64url(obj):
                return base64.urlsafe_b64encode(json.dumps(obj, separators=(",", ":")).encode()).decode().rstrip("=")
            header = b64url({"alg": self.pick(["HS256", "RS256"]), "typ": "JWT"})
            payload = b64url({"sub": self.digits(8), "iat": 1700000000 + r.randrange(10**7),
                              "scope": self.pick(["read", "admin", "user:write"])})
            return f"{header}.{payload}.{self.chars(url, 43)}", kind
        if kind in ("url_password", "conn_password"):
            # A password a person would choose, with enough variety to be one.
            words = ["Summer", "Falcon", "River", "Tiger", "Maple", "Orbit", "Copper", "Violet"]
            return self.pick(words) + self.digits(r.randint(2, 4)) + self.pick("!#%*?") + self.chars(alnum, 4), kind
        return self.chars(alnum, r.choice([24, 32, 40])), kind


# ---------------------------------------------------------------- text building

class Text:
    """Builds a text from literal and labelled pieces, tracking UTF-8 byte
    offsets; `escape` is applied to every piece (JSON/CSV carriers)."""

    def __init__(self):
        self.parts = []
        self.labels = []
        self.size = 0

    def add(self, piece, cls=None):
        data = piece.encode("utf-8")
        if cls:
            self.labels.append({"class": cls, "start": self.size, "end": self.size + len(data)})
        self.parts.append(piece)
        self.size += len(data)

    def text(self):
        return "".join(self.parts)


def render(segments, text, escape=lambda s: s):
    for piece, cls in segments:
        text.add(escape(piece), cls)


def template(pattern, value, cls):
    """`pattern` with one `{}` where the labelled value goes."""
    before, after = pattern.split("{}", 1)
    return [(before, None), (value, cls), (after, None)]


def json_escape(s):
    return json.dumps(s, ensure_ascii=False)[1:-1]


def csv_escape(s):
    return s.replace('"', '""')


def carry(g, segments):
    """Wraps a phrase in one of several carriers: plain, chat, e-mail, log,
    JSON, CSV, markdown."""
    t = Text()
    kind = g.r.randrange(8)
    if kind <= 1:
        render(segments, t)
    elif kind == 2:
        t.add(g.pick(["user: ", "User: ", "> ", "[10:42] customer: "]))
        render(segments, t)
    elif kind == 3:
        t.add(g.pick(["Hi,\n\n", "Hello team,\n\n", "Good morning,\n\n"]))
        render(segments, t)
        t.add(g.pick(["\n\nThanks", "\n\nKind regards\nSupport desk", "\n\nCheers"]))
    elif kind == 4:
        t.add(f"2025-0{g.r.randint(1, 9)}-1{g.r.randint(0, 9)}T0{g.r.randint(0, 9)}:{g.r.randint(10, 59)}:"
              f"{g.r.randint(10, 59)}Z {g.pick(['INFO', 'WARN', 'DEBUG'])} "
              f"{g.pick(['api', 'worker', 'gateway'])}: ")
        render(segments, t)
    elif kind == 5:
        t.add('{"role": "user", "content": "')
        render(segments, t, json_escape)
        t.add('"}')
    elif kind == 6:
        t.add(f'ticket,priority,notes\n{g.r.randint(1000, 99999)},{g.pick(["low", "high"])},"')
        render(segments, t, csv_escape)
        t.add('"')
    else:
        t.add("- ")
        render(segments, t)
    return t


PHRASES = {
    "EMAIL": ["You can reach me at {}.", "Please send the invoice to {}", "email: {}", "Can you cc {} on the thread?",
              "My login is {} but the reset link never arrives", "Contact <{}> for access.",
              "Why does {} keep bouncing?", "forwarded from {} yesterday", "mailto:{}",
              "Update my address to {} please."],
    "PHONE": ["Call me on {} after 5pm.", "phone: {}", "My mobile is {}", "Is {} the right number for support?",
              "Tel. {}", "Text {} when the driver arrives.", "Reached voicemail at {} twice today.",
              "Contact number: {} (evenings)", "ring {} if it's urgent", "Can you update my number to {}?"],
    "CREDIT_CARD": ["My card number is {}.", "card: {} exp 09/27", "Charge it to {} please",
                    "Why was {} declined?", "Payment method: {}", "The card ending in ... no wait, full number {}",
                    "I paid with {} and got charged twice", "cc={}"],
    "IBAN": ["IBAN: {}", "Please transfer the refund to {}.", "Our bank account is {} (BIC below)",
             "Is {} a valid account for SEPA?", "Beneficiary IBAN {}", "Wire the deposit to {} by Friday."],
    "US_SSN": ["My SSN is {}.", "SSN: {}", "Social Security Number {}", "social security no. {} on the W-2",
               "Can you verify my social security number {}?", "Applicant SSN - {}"],
    "AU_TFN": ["My TFN is {}.", "Tax file number: {}", "TFN {} for the payroll form",
               "Is my tax file number ({}) stored securely?", "Employee TFN - {}"],
    "AU_ABN": ["Our ABN is {}.", "ABN: {}", "Supplier ABN {} on the invoice",
               "Can you check the Australian Business Number {}?", "Invoice from ACME Pty Ltd, ABN {}"],
    "AU_ACN": ["ACN {}", "Company ACN: {}", "The Australian Company Number is {}.",
               "Registered as Widget Holdings Pty Ltd (ACN {})"],
    "AU_MEDICARE": ["Medicare number {}", "My medicare card is {}.", "Medicare: {}",
                    "Can you bulk bill Medicare card {}?", "Patient medicare no. {}"],
    "UK_NINO": ["My National Insurance number is {}.", "NI number: {}", "NINO {}", "NI no {} for the payslip",
                "Is {} my national insurance number or my tax code?"],
    "IP_ADDRESS": ["Requests from {} are being blocked.", "client_ip={}", "Can you whitelist {}?",
                   "ssh admin@{} fails with timeout", "Connection refused from {}", "Server at {} is down",
                   "my home IP is {}", "upstream {} returned 502"],
    "PERSON": ["My name is {}.", "Please forward this to {}.", "{} called about the delayed order.",
               "Dear {},", "Meeting with {} tomorrow at 10.", "Thanks, {}", "Can {} approve the refund?",
               "Patient: {}", "Account holder: {}", "I spoke to {} on the phone", "Regards,\n{}",
               "Is {} still the account manager?"],
    "ADDRESS": ["Ship it to {}.", "I live at {}", "Address: {}", "Please update my billing address to {}",
                "Delivery address - {}", "Is {} inside your delivery zone?", "We moved to {} last month."],
    "DATE_OF_BIRTH": ["My date of birth is {}.", "DOB: {}", "I was born on {}", "born {}",
                      "Date of birth - {}", "His birthday is {} and he wants a surprise", "D.O.B. {}",
                      "Can you check whether {} matches the date of birth on file?"],
    "PASSPORT": ["My passport number is {}.", "Passport No: {}", "passport {} expires next year",
                 "Can I book with passport number {}?", "Traveller passport: {}"],
    "HEALTH": ["I was diagnosed with {} last year.", "My son has {} and needs an inhaler at school",
               "Patient history: {}", "She is being treated for {}.", "my doctor says my {} is getting worse",
               "I take medication for {}", "Can I claim sick leave for {}?", "He was hospitalised with {} in May"],
    "MINOR": ["My {} daughter needs a passport.", "He is {}.", "The student is {}.", "my {} son keeps asking",
              "Booking for two adults and one child {}", "Is this game OK for a {} kid?"],
}

CONDITIONS = ["diabetes", "type 2 diabetes", "asthma", "HIV", "depression", "an anxiety disorder", "epilepsy",
              "breast cancer", "cancer", "hypertension", "bipolar disorder", "schizophrenia", "Crohn's disease",
              "multiple sclerosis", "COPD", "ADHD", "PTSD", "hepatitis C", "Parkinson's disease", "dementia",
              "leukaemia", "an eating disorder"]


def minor_phrase(g, pattern):
    age = g.r.randint(1, 17)
    if "{} daughter" in pattern or "{} son" in pattern or "{} kid" in pattern:
        return g.pick([f"{age}-year-old", f"{age} year old"])
    return g.pick([f"{age} years old", f"aged {age}", f"{age} yrs old", f"age {age}"])


def positive(g, cls):
    """A phrase holding one labelled value of `cls`; returns (segments, subtype)."""
    pattern = g.pick(PHRASES.get(cls, ["{}"]))
    subtype = None
    if cls == "EMAIL":
        value = g.email()
    elif cls == "PHONE":
        value, subtype = g.phone()
    elif cls == "CREDIT_CARD":
        value = g.card()
    elif cls == "IBAN":
        value = g.iban()
    elif cls == "US_SSN":
        value = g.ssn()
    elif cls == "AU_TFN":
        value = g.tfn()
    elif cls == "AU_ABN":
        value = g.abn()
    elif cls == "AU_ACN":
        value = g.acn()
    elif cls == "AU_MEDICARE":
        value = g.medicare()
    elif cls == "UK_NINO":
        value = g.nino()
    elif cls == "IP_ADDRESS":
        value = g.ip()
    elif cls == "PERSON":
        value, subtype = g.name(), g.locale
    elif cls == "ADDRESS":
        value, subtype = g.address(), g.locale
    elif cls == "DATE_OF_BIRTH":
        value = g.dob()
    elif cls == "PASSPORT":
        value, subtype = g.passport(), g.locale
    elif cls == "HEALTH":
        value = g.pick(CONDITIONS)
    elif cls == "MINOR":
        value = minor_phrase(g, pattern)
    else:
        raise ValueError(cls)
    return template(pattern, value, cls), subtype


def secret_phrase(g):
    value, kind = g.secret()
    alnum = string.ascii_letters + string.digits
    if kind == "aws_key_id":
        pattern = g.pick(["aws_access_key_id = {}", "AWS_ACCESS_KEY_ID={}", "the key {} stopped working",
                          '"AccessKeyId": "{}"'])
    elif kind == "aws_secret":
        pattern = g.pick(["aws_secret_access_key = {}", "AWS_SECRET_ACCESS_KEY={}", '"SecretAccessKey": "{}"'])
    elif kind == "azure_storage":
        account = g.chars(string.ascii_lowercase, 10)
        pattern = (f"DefaultEndpointsProtocol=https;AccountName={account};AccountKey={{}};"
                   "EndpointSuffix=core.windows.net")
    elif kind == "azure_client":
        pattern = g.pick(["AZURE_CLIENT_SECRET={}", "client secret for the app registration: {}"])
    elif kind == "url_password":
        user = g.pick(["admin", "app", "postgres", "svc_reports", "root"])
        scheme = g.pick(["postgres", "postgresql", "mysql", "mongodb+srv", "redis", "amqp", "https"])
        before, after = g.pick([("DATABASE_URL=", ""), ("connecting to ", " fails"), ("", "")])
        host = g.pick(["db.internal", "cache.prod.local", "mq.example.com", None])
        tail = f":{g.r.randint(1000, 9999)}/{g.pick(['app', 'main', 'jobs'])}{after}"
        segments = [(f"{before}{scheme}://{user}:", None), (value, "SECRET"), ("@", None)]
        # An IP host is an IP address in its own right.
        segments += [(host, None)] if host else [(g.ip_v4(), "IP_ADDRESS")]
        return segments + [(tail, None)], kind
    elif kind == "conn_password":
        pattern = g.pick(["Server=sql01;Database=crm;User Id=sa;Password={};",
                          "Host=db;Username=app;Password={};Port=5432"])
    elif kind == "generic":
        key = g.pick(["api_key", "apiKey", "client_secret", "access_token", "auth_token", "SECRET_KEY",
                      "private_token", "secret"])
        pattern = g.pick([f"{key}={{}}", f'"{key}": "{{}}"', f"{key}: {{}}", f'export {key.upper()}="{{}}"'])
    elif kind == "pem":
        pattern = g.pick(["{}", "here is the deploy key:\n{}", '"private_key": "{}"'])
    else:
        pattern = g.pick(["token: {}", "Authorization: Bearer {}", "why does {} return 401?", "{}",
                          "key={}", "I accidentally committed {} to the repo", "export TOKEN={}"])
    segments = template(pattern, value, "SECRET")
    if kind == "pem" and pattern.startswith('"private_key"'):
        segments = [(json_escape(p), c) for p, c in segments]
    return segments, kind


# ---------------------------------------------------------------- negatives

def mutate_failing(g, digits, still_ok):
    """One digit changed so the checksum fails (and no other checksum of
    that length passes)."""
    for _ in range(100):
        i = g.r.randrange(len(digits))
        new = digits[:i] + g.pick([c for c in string.digits if c != digits[i]]) + digits[i + 1:]
        if new[0] != "0" and not still_ok(new) and not any_checksum_ok(new):
            return new
    return None


def near_miss(g, kind):
    r, d = g.r, g.digits
    hexd = "0123456789abcdef"
    if kind == "order_number":
        return g.pick(["Order #{} has not shipped", "order no. {} was refunded", "Where is my order {}?",
                       "Ref: ORD-{}"]).format(d(g.pick([6, 8, 9, 10, 12])))
    if kind == "sku":
        sku = f"{g.chars(string.ascii_uppercase, 3)}-{d(4)}-{d(3)}-{g.pick(['S', 'M', 'XL'])}"
        return g.pick([f"SKU {sku} is out of stock", f"item {sku} x2", f"Reorder {sku} and {d(5)}-{d(4)}"])
    if kind == "timestamp":
        ts = g.pick([f"2024-{r.randint(1, 12):02d}-{r.randint(1, 28):02d}T{r.randint(0, 23):02d}:{r.randint(0, 59):02d}:"
                     f"{r.randint(0, 59):02d}.{d(3)}Z", str(1600000000 + r.randrange(10**8)),
                     str(1600000000000 + r.randrange(10**11)),
                     f"{r.randint(1, 28):02d}/{r.randint(1, 12):02d}/2024 {r.randint(0, 23):02d}:{r.randint(0, 59):02d}"])
        return g.pick(["job finished at {}", "created_at={}", "last seen {}", "ts: {}"]).format(ts)
    if kind == "uuid":
        u = "-".join(g.chars(hexd, n) for n in (8, 4, 4, 4, 12))
        return g.pick(["request id {}", "trace_id={}", '{{"session": "{}"}}', "tenant {} not found"]).format(u)
    if kind == "git_sha":
        if r.random() < 0.2:
            return "image digest sha256:" + g.chars(hexd, 64)
        sha = g.chars(hexd, g.pick([7, 12, 40]))
        return g.pick(["fixed in commit {}", "git revert {}", "HEAD is now at {} Merge branch"]).format(sha)
    if kind == "version":
        v = g.pick([f"{r.randint(0, 20)}.{r.randint(0, 30)}.{r.randint(0, 99)}",
                    f"v{r.randint(1, 9)}.{r.randint(0, 20)}.{r.randint(0, 9)}-rc.{r.randint(1, 5)}",
                    f"{r.randint(1, 12)}.{r.randint(0, 9)}.{r.randint(0, 9)}.{r.randint(100, 9999)}"])
        return g.pick(["upgraded to version {}", "requires node >= {}", "build {} is broken", "release {}"]).format(v)
    if kind == "package_spec":
        return f"npm install {g.pick(['lodash', 'react', 'left-pad', 'express'])}@{r.randint(1, 18)}.{r.randint(0, 20)}.{r.randint(0, 9)}"
    if kind == "card_checksum_fail":
        while True:
            good = g.fakers["en_US"].credit_card_number(card_type=g.pick(["visa", "mastercard", "amex", "discover"]))
            bad = mutate_failing(g, good, luhn_ok)
            if bad:
                break
        return g.pick(["My card number is {}.", "card: {}", "Why was {} declined?"]).format(bad)
    if kind == "iban_checksum_fail":
        while True:
            good = g.fakers[g.pick(["en_GB", "de_DE", "fr_FR"])].iban()
            i = r.randrange(4, len(good))
            if not good[i].isdigit():
                continue
            bad = good[:i] + g.pick([c for c in string.digits if c != good[i]]) + good[i + 1:]
            if not iban_ok(bad):
                break
        return g.pick(["IBAN: {}", "Please transfer the refund to {}."]).format(bad)
    checks = {"tfn_checksum_fail": (9, tfn_ok, ["My TFN is {}.", "Tax file number: {}"]),
              "abn_checksum_fail": (11, abn_ok, ["Our ABN is {}.", "ABN: {}"]),
              "acn_checksum_fail": (9, acn_ok, ["ACN {}", "Company ACN: {}"]),
              "medicare_checksum_fail": (10, medicare_ok, ["Medicare number {}", "Medicare: {}"])}
    if kind in checks:
        length, ok, patterns = checks[kind]
        while True:
            good = g.with_check(length, ok) if kind != "medicare_checksum_fail" else None
            if good is None:
                base = str(r.randint(2, 6)) + d(7)
                good = base + str(sum(int(c) * w for c, w in zip(base, (1, 3, 7, 9, 1, 3, 7, 9))) % 10) + "1"
            bad = mutate_failing(g, good, ok)
            if bad:
                break
        return g.pick(patterns).format(bad)
    if kind == "ssn_invalid":
        area = g.pick(["000", "666", str(r.randint(900, 999))])
        bad = g.pick([f"{area}-{d(2)}-{d(4)}", f"{r.randint(100, 599)}-00-{d(4)}", f"{r.randint(100, 599)}-{d(2)}-0000"])
        if ssn_ok(bad):
            bad = f"000-{d(2)}-{d(4)}"
        return g.pick(["My SSN is {}.", "SSN: {}"]).format(bad)
    if kind == "nino_invalid":
        while True:
            prefix = g.pick(["QQ", "BG", "GB", "NK", "ZZ", "DA", "FA", "AO", "TN"])
            bad = prefix + d(6) + g.pick("ABCDEFZ")
            if not nino_ok(bad):
                break
        return g.pick(["NI number: {}", "My National Insurance number is {}."]).format(bad)
    if kind == "ip_like":
        v = g.pick([f"{r.randint(256, 999)}.{r.randint(0, 255)}.{r.randint(0, 255)}.{r.randint(0, 255)}",
                    f"1.3.6.1.4.1.{r.randint(1000, 60000)}", f"{r.randint(0, 23):02d}:{r.randint(0, 59):02d}:{r.randint(0, 59):02d}"])
        return g.pick(["value {} rejected", "OID {}", "at {} the job ran"]).format(v)
    if kind == "secret_placeholder":
        return g.pick(["api_key=YOUR_API_KEY_HERE", "export OPENAI_API_KEY=<your-key>", "token: ${GITHUB_TOKEN}",
                       "password=********", 'secret: "xxxxxxxxxxxxxxxxxxxxxxxx"', "AWS_SECRET_ACCESS_KEY=changeme",
                       "client_secret={{ vault.client_secret }}", "Authorization: Bearer <token>",
                       "set STRIPE_KEY to sk_live_... in the env", "apiKey: 'REPLACE_ME'"])
    if kind == "adult_age":
        age = r.randint(18, 95)
        return g.pick([f"My {age}-year-old father needs care.", f"He is {age} years old.", f"aged {age}, retired",
                       f"The applicant is {age} years old"])
    if kind == "non_birth_date":
        date = g.fakers["en_US"].date_between(start_date="-3y", end_date="+1y")
        return g.pick(["The meeting is on {}.", "Invoice dated {}", "Delivery expected {}",
                       "The contract ends {}"]).format(g.date_text(date))
    if kind == "capitalised_words":
        city = g.fakers[g.pick(g.locales)].city()
        return g.pick([f"Flights to {city} are delayed.", f"The {city} office closes early on Friday.",
                       f"Project Falcon Ridge kicks off in {city}.", "Release Notes: Improved Search And Export"])
    raise ValueError(kind)


NEAR_MISS_KINDS = ["order_number", "sku", "timestamp", "uuid", "git_sha", "version", "package_spec",
                   "card_checksum_fail", "iban_checksum_fail", "tfn_checksum_fail", "abn_checksum_fail",
                   "acn_checksum_fail", "medicare_checksum_fail", "ssn_invalid", "nino_invalid", "ip_like",
                   "secret_placeholder", "adult_age", "non_birth_date", "capitalised_words"]

CLEAN = ["Can you summarise this article in three bullet points?",
         "The build takes about {n} minutes on the CI runners.",
         "Please translate 'good morning' into French.",
         "We sold {n} units last quarter, up {p}% on the year.",
         "Room {n} is booked from 10:30 to 11:15.",
         "The API returned HTTP 429; retry after {n} seconds.",
         "Write a haiku about autumn leaves.",
         "Port 8080 is already in use, try 8081.",
         "Total: $1,{n}.99 including GST.",
         "Page {n} of the manual explains the reset procedure.",
         "What is the difference between a list and a tuple in Python?",
         "The file is {n} KB after compression.",
         "Our standup moved to Tuesdays at 9am.",
         "Explain how HTTPS certificates are validated.",
         "Set the timeout to {n} ms and the retry count to 3."]


def clean_text(g):
    return g.pick(CLEAN).format(n=g.r.randint(2, 999), p=g.r.randint(1, 40))


def record(g):
    """A customer record with several classes: CSV, JSON or a form."""
    fields = [("PERSON", g.name()), ("EMAIL", g.email()), ("PHONE", g.phone()[0]),
              ("ADDRESS", g.address()), ("DATE_OF_BIRTH", g.dob())]
    t = Text()
    style = g.r.randrange(3)
    if style == 0:
        t.add("name,email,phone,address,dob\n")
        for i, (cls, value) in enumerate(fields):
            quote = '"' if "," in value else ""
            t.add(quote)
            t.add(value.replace('"', '""'), cls)
            t.add(quote + ("," if i < len(fields) - 1 else ""))
    elif style == 1:
        keys = ["name", "email", "phone", "address", "date_of_birth"]
        t.add("{")
        for i, ((cls, value), key) in enumerate(zip(fields, keys)):
            t.add(f'"{key}": "')
            t.add(json_escape(value), cls)
            t.add('"' + (", " if i < len(fields) - 1 else "}"))
    else:
        keys = ["Name", "Email", "Phone", "Address", "Date of birth"]
        for i, ((cls, value), key) in enumerate(zip(fields, keys)):
            t.add(f"{key}: ")
            t.add(value, cls)
            t.add("\n" if i < len(fields) - 1 else "")
    return t


CLASSES = ["EMAIL", "PHONE", "CREDIT_CARD", "IBAN", "US_SSN", "AU_TFN", "AU_ABN", "AU_ACN", "AU_MEDICARE",
           "UK_NINO", "IP_ADDRESS", "PERSON", "ADDRESS", "DATE_OF_BIRTH", "PASSPORT", "HEALTH", "MINOR"]


def generate(seed, per_class, near_misses_per_kind, records, clean):
    g = Gen(seed)
    out = []

    def emit(group, t, subtype=None):
        item = {"id": f"{group}/{len(out)}", "group": group, "text": t.text(), "labels": t.labels}
        if subtype:
            item["subtype"] = subtype
        out.append(item)

    for cls in CLASSES:
        for _ in range(per_class):
            segments, subtype = positive(g, cls)
            emit(f"positive:{cls}", carry(g, segments), subtype)
    for _ in range(per_class * 2):
        segments, subtype = secret_phrase(g)
        emit("positive:SECRET", carry(g, segments), subtype)
    for _ in range(records):
        emit("record", record(g))
    for kind in NEAR_MISS_KINDS:
        for _ in range(near_misses_per_kind):
            emit(f"near_miss:{kind}", carry(g, [(near_miss(g, kind), None)]))
    for _ in range(clean):
        emit("clean", carry(g, [(clean_text(g), None)]))
    for item in out:
        data = item["text"].encode("utf-8")
        for label in item["labels"]:
            assert 0 <= label["start"] < label["end"] <= len(data), item
    return out


def main():
    ensure_faker()
    self_test()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(ROOT / ".cache/pii-eval/corpus.jsonl"))
    parser.add_argument("--seed", type=int, default=20251122)
    parser.add_argument("--per-class", type=int, default=300)
    parser.add_argument("--near-misses-per-kind", type=int, default=100)
    parser.add_argument("--records", type=int, default=200)
    parser.add_argument("--clean", type=int, default=300)
    args = parser.parse_args()
    items = generate(args.seed, args.per_class, args.near_misses_per_kind, args.records, args.clean)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as sink:
        for item in items:
            sink.write(json.dumps(item, ensure_ascii=False) + "\n")
    labels = sum(len(i["labels"]) for i in items)
    print(f"gen-pii-corpus: {len(items)} texts, {labels} labels -> {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
