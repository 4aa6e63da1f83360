//! Secrets: vendor token formats, private keys, JWTs, passwords in URLs and
//! connection strings, and generic `key/secret/token/password = value`
//! assignments above an entropy floor.
//!
//! Every rule is gated by a literal keyword (its prefix, or a cue such as
//! `://` or `-----BEGIN`) found by the single Aho-Corasick pass in
//! [`super::keywords`]; the shape, length, boundary and entropy checks run
//! only at those hits. The table is our own, written from the vendors'
//! published token formats; the idea of keyword-gating plus an entropy
//! floor is the one public rule sets such as gitleaks use.

use super::keywords::{Hit, Kw};
use super::{at, entropy, EntityClass, Finding};

/// Characters a token body may contain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Charset {
    /// `[A-Za-z0-9]`
    Alnum,
    /// `[A-Za-z0-9_]`
    Word,
    /// `[A-Za-z0-9_-]` (URL-safe base64)
    UrlB64,
    /// `[A-Za-z0-9_.-]`
    Dotted,
    /// `[A-Za-z0-9+/=]`
    Base64,
    /// `[0-9a-fA-F]`
    Hex,
    /// `[0-9a-f]`
    HexLower,
    /// `[A-Z0-9]`
    Upper,
    /// `[a-z0-9]`
    Lower,
    /// `[A-Z2-7]` (RFC 4648 base32)
    Base32,
    /// `[A-Za-z0-9-]` (Slack)
    AlnumDash,
}

impl Charset {
    fn allows(self, b: u8) -> bool {
        match self {
            Charset::Alnum => b.is_ascii_alphanumeric(),
            Charset::Word => b.is_ascii_alphanumeric() || b == b'_',
            Charset::UrlB64 => b.is_ascii_alphanumeric() || b == b'_' || b == b'-',
            Charset::Dotted => b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.',
            Charset::Base64 => b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'=',
            Charset::Hex => b.is_ascii_hexdigit(),
            Charset::HexLower => b.is_ascii_digit() || (b'a'..=b'f').contains(&b),
            Charset::Upper => b.is_ascii_uppercase() || b.is_ascii_digit(),
            Charset::Lower => b.is_ascii_lowercase() || b.is_ascii_digit(),
            Charset::Base32 => b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b),
            Charset::AlnumDash => b.is_ascii_alphanumeric() || b == b'-',
        }
    }
}

/// A token that is a fixed prefix followed by a body of one charset.
#[derive(Debug, Clone, Copy)]
pub(crate) struct VendorRule {
    pub subtype: &'static str,
    pub prefix: &'static str,
    pub charset: Charset,
    pub min: u16,
    pub max: u16,
    pub confidence: f32,
}

const fn v(subtype: &'static str, prefix: &'static str, charset: Charset, min: u16, max: u16) -> VendorRule {
    VendorRule { subtype, prefix, charset, min, max, confidence: 0.95 }
}

const fn vc(subtype: &'static str, prefix: &'static str, charset: Charset, min: u16, max: u16, c: f32) -> VendorRule {
    VendorRule { subtype, prefix, charset, min, max, confidence: c }
}

use Charset::*;

/// Prefix-shaped vendor formats. Prefixes are case-sensitive.
pub(crate) const VENDOR: &[VendorRule] = &[
    // Cloud: AWS, Google, Azure, DigitalOcean, ...
    v("aws_access_key_id", "AKIA", Base32, 16, 16),
    v("aws_access_key_id", "ABIA", Base32, 16, 16),
    v("aws_access_key_id", "ACCA", Base32, 16, 16),
    v("aws_temporary_access_key_id", "ASIA", Base32, 16, 16),
    v("google_api_key", "AIza", UrlB64, 35, 35),
    v("google_oauth_client_secret", "GOCSPX-", UrlB64, 28, 28),
    vc("google_oauth_access_token", "ya29.", Dotted, 30, 400, 0.9),
    vc("google_oauth_refresh_token", "1//0", UrlB64, 30, 400, 0.9),
    v("digitalocean_pat", "dop_v1_", HexLower, 64, 64),
    v("digitalocean_oauth_token", "doo_v1_", HexLower, 64, 64),
    v("digitalocean_refresh_token", "dor_v1_", HexLower, 64, 64),
    v("alibaba_access_key_id", "LTAI", Alnum, 20, 20),
    // Version control and package registries.
    v("github_pat", "ghp_", Alnum, 36, 36),
    v("github_oauth_token", "gho_", Alnum, 36, 36),
    v("github_user_to_server_token", "ghu_", Alnum, 36, 36),
    v("github_server_to_server_token", "ghs_", Alnum, 36, 36),
    v("github_refresh_token", "ghr_", Alnum, 36, 36),
    v("github_fine_grained_pat", "github_pat_", Word, 82, 82),
    v("gitlab_pat", "glpat-", UrlB64, 20, 64),
    v("gitlab_pipeline_trigger_token", "glptt-", Hex, 40, 40),
    v("gitlab_runner_token", "glrt-", UrlB64, 20, 64),
    v("gitlab_deploy_token", "gldt-", UrlB64, 20, 64),
    v("gitlab_feed_token", "glft-", UrlB64, 20, 64),
    v("gitlab_oauth_app_secret", "gloas-", UrlB64, 64, 64),
    v("gitlab_runner_registration_token", "GR1348941", UrlB64, 20, 20),
    v("npm_token", "npm_", Alnum, 36, 36),
    v("pypi_token", "pypi-AgEIcHlwaS5vcmc", UrlB64, 50, 300),
    v("rubygems_api_key", "rubygems_", HexLower, 48, 48),
    v("nuget_api_key", "oy2", Lower, 43, 43),
    v("clojars_token", "CLOJARS_", Alnum, 60, 60),
    v("docker_hub_pat", "dckr_pat_", UrlB64, 27, 27),
    v("jfrog_api_key", "AKCp", Alnum, 69, 69),
    // Chat and collaboration.
    v("slack_bot_token", "xoxb-", AlnumDash, 20, 255),
    v("slack_user_token", "xoxp-", AlnumDash, 20, 255),
    v("slack_app_token", "xapp-", AlnumDash, 20, 255),
    v("slack_legacy_token", "xoxa-", AlnumDash, 20, 255),
    v("slack_legacy_token", "xoxr-", AlnumDash, 20, 255),
    v("slack_legacy_token", "xoxs-", AlnumDash, 20, 255),
    v("slack_legacy_token", "xoxo-", AlnumDash, 20, 255),
    v("slack_config_token", "xoxe.xox", AlnumDash, 20, 255),
    v("slack_config_refresh_token", "xoxe-", AlnumDash, 20, 255),
    v("linear_api_key", "lin_api_", Alnum, 40, 40),
    v("notion_token", "ntn_", Alnum, 46, 46),
    v("notion_token", "secret_", Alnum, 43, 43),
    v("figma_pat", "figd_", UrlB64, 40, 40),
    v("atlassian_api_token", "ATATT3", UrlB64, 150, 250),
    // Payments and commerce.
    v("stripe_secret_key", "sk_live_", Alnum, 20, 247),
    v("stripe_test_secret_key", "sk_test_", Alnum, 20, 247),
    v("stripe_restricted_key", "rk_live_", Alnum, 20, 247),
    v("stripe_restricted_key", "rk_test_", Alnum, 20, 247),
    v("stripe_webhook_secret", "whsec_", Base64, 24, 88),
    v("square_access_token", "EAAA", UrlB64, 60, 60),
    v("square_oauth_secret", "sq0csp-", UrlB64, 43, 43),
    v("shopify_access_token", "shpat_", Hex, 32, 32),
    v("shopify_custom_app_token", "shpca_", Hex, 32, 32),
    v("shopify_private_app_token", "shppa_", Hex, 32, 32),
    v("shopify_shared_secret", "shpss_", Hex, 32, 32),
    // LLM and ML providers.
    v("openai_project_key", "sk-proj-", UrlB64, 40, 250),
    v("openai_service_account_key", "sk-svcacct-", UrlB64, 40, 250),
    v("openai_admin_key", "sk-admin-", UrlB64, 40, 250),
    vc("openai_legacy_key", "sk-", Alnum, 48, 48, 0.9),
    v("anthropic_api_key", "sk-ant-api03-", UrlB64, 80, 120),
    v("anthropic_admin_key", "sk-ant-admin01-", UrlB64, 80, 120),
    v("huggingface_token", "hf_", Alnum, 34, 34),
    v("groq_api_key", "gsk_", Alnum, 52, 52),
    v("replicate_token", "r8_", Alnum, 37, 37),
    v("perplexity_api_key", "pplx-", Alnum, 48, 48),
    v("xai_api_key", "xai-", Alnum, 80, 80),
    v("langsmith_api_key", "lsv2_pt_", Word, 32, 60),
    v("langsmith_api_key", "lsv2_sk_", Word, 32, 60),
    // Email, messaging, observability, developer platforms.
    v("sendgrid_api_key", "SG.", Dotted, 66, 66),
    vc("mailgun_api_key", "key-", HexLower, 32, 32, 0.85),
    v("brevo_api_key", "xkeysib-", UrlB64, 81, 81),
    v("postman_api_key", "PMAK-", UrlB64, 59, 59),
    v("databricks_token", "dapi", HexLower, 32, 32),
    v("doppler_token", "dp.pt.", Alnum, 43, 43),
    v("pulumi_token", "pul-", HexLower, 40, 40),
    v("grafana_cloud_token", "glc_", Base64, 32, 400),
    v("grafana_service_account_token", "glsa_", Word, 32, 60),
    v("newrelic_user_key", "NRAK-", Upper, 27, 27),
    v("sentry_org_token", "sntrys_", Base64, 60, 400),
    v("sentry_user_token", "sntryu_", HexLower, 64, 64),
    v("dropbox_token", "sl.", UrlB64, 130, 300),
    v("age_secret_key", "AGE-SECRET-KEY-1", Upper, 58, 58),
    v("flyio_token", "fo1_", UrlB64, 43, 43),
    v("vault_service_token", "hvs.", UrlB64, 90, 120),
    v("vault_batch_token", "hvb.", UrlB64, 138, 300),
    v("planetscale_token", "pscale_tkn_", UrlB64, 32, 64),
    v("planetscale_password", "pscale_pw_", UrlB64, 32, 64),
    v("supabase_token", "sbp_", HexLower, 40, 40),
    v("tailscale_key", "tskey-", UrlB64, 20, 80),
    v("twitter_bearer_token", "AAAAAAAAAAAAAAAAAAAAA", Base64, 30, 200),
    v("adobe_client_secret", "p8e-", Alnum, 32, 32),
    v("prefect_api_key", "pnu_", Alnum, 36, 36),
    v("readme_api_key", "rdme_", Lower, 70, 70),
    v("scalingo_token", "tk-us-", UrlB64, 48, 48),
    v("heroku_api_key", "HRKU-", UrlB64, 58, 70),
    v("mapbox_secret_token", "sk.eyJ", Dotted, 80, 300),
];

/// Formats with structure a prefix and one charset cannot express.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Special {
    Jwt,
    Pem,
    Putty,
    Url,
    SlackWebhook,
    DiscordWebhook,
    TeamsWebhook,
    Telegram,
    Mailchimp,
    AzureClientSecret,
    AzureAccountKey,
    AzureSas,
    GcpKeyId,
    Bearer,
    Basic,
}

const SPECIAL: &[(&str, Special)] = &[
    ("eyJ", Special::Jwt),
    ("-----BEGIN ", Special::Pem),
    ("PuTTY-User-Key-File-", Special::Putty),
    ("://", Special::Url),
    ("hooks.slack.com/", Special::SlackWebhook),
    ("discord.com/api/webhooks/", Special::DiscordWebhook),
    ("discordapp.com/api/webhooks/", Special::DiscordWebhook),
    ("webhook.office.com/webhookb2/", Special::TeamsWebhook),
    (":AA", Special::Telegram),
    ("-us", Special::Mailchimp),
    ("Q~", Special::AzureClientSecret),
    ("AccountKey=", Special::AzureAccountKey),
    ("SharedAccessKey=", Special::AzureAccountKey),
    ("sig=", Special::AzureSas),
    ("\"private_key_id\"", Special::GcpKeyId),
    ("bearer ", Special::Bearer),
    ("basic ", Special::Basic),
];

/// Key words of generic assignments (matched inside identifiers).
const ASSIGN_KEYS: &[&str] = &[
    "password",
    "passwd",
    "passphrase",
    "pwd",
    "secret",
    "token",
    "apikey",
    "api_key",
    "api-key",
    "access_key",
    "accesskey",
    "auth_key",
    "private_key",
    "signing_key",
    "encryption_key",
    "credential",
];

/// Subtypes of the special and generic rules (the vendor table adds its own).
const OTHER_SUBTYPES: &[&str] = &[
    "jwt",
    "private_key",
    "rsa_private_key",
    "ec_private_key",
    "dsa_private_key",
    "openssh_private_key",
    "encrypted_private_key",
    "pgp_private_key",
    "putty_private_key",
    "url_password",
    "connection_string_password",
    "slack_webhook_url",
    "discord_webhook_url",
    "teams_webhook_url",
    "telegram_bot_token",
    "mailchimp_api_key",
    "azure_ad_client_secret",
    "azure_storage_account_key",
    "azure_sas_token",
    "gcp_service_account_key_id",
    "bearer_token",
    "http_basic_auth",
    "aws_secret_access_key",
    "generic_password",
    "generic_api_key",
    "generic_token",
    "generic_secret",
];

/// Every SECRET subtype this build can report, sorted and unique.
pub static SECRET_SUBTYPES: std::sync::LazyLock<Vec<&'static str>> = std::sync::LazyLock::new(|| {
    let mut all: Vec<&'static str> = VENDOR.iter().map(|r| r.subtype).chain(OTHER_SUBTYPES.iter().copied()).collect();
    all.sort_unstable();
    all.dedup();
    all
});

/// The vendor token formats as `(prefix, ASCII character class, min, max)`
/// body lengths, the class written as a regex class. Nothing in the engine
/// uses it: the naive baseline of `benches/detect.rs` compiles one regex per
/// entry, so the baseline mirrors this table instead of a copy of it.
pub fn vendor_token_shapes() -> impl Iterator<Item = (&'static str, &'static str, u16, u16)> {
    VENDOR.iter().map(|r| {
        let class = match r.charset {
            Alnum => "[A-Za-z0-9]",
            Word => "[A-Za-z0-9_]",
            UrlB64 => "[A-Za-z0-9_-]",
            Dotted => "[A-Za-z0-9_.-]",
            Base64 => "[A-Za-z0-9+/=]",
            Hex => "[0-9a-fA-F]",
            HexLower => "[0-9a-f]",
            Upper => "[A-Z0-9]",
            Lower => "[a-z0-9]",
            Base32 => "[A-Z2-7]",
            AlnumDash => "[A-Za-z0-9-]",
        };
        (r.prefix, class, r.min, r.max)
    })
}

pub(crate) fn triggers() -> Vec<(&'static str, Kw)> {
    let vendor = VENDOR.iter().enumerate().map(|(i, r)| (r.prefix, Kw::Vendor(i as u16)));
    let special = SPECIAL.iter().map(|&(w, s)| (w, Kw::Special(s)));
    let assign = ASSIGN_KEYS.iter().map(|&w| (w, Kw::Assign));
    vendor.chain(special).chain(assign).collect()
}

fn secret(start: usize, end: usize, confidence: f32, rule: &'static str, subtype: &'static str) -> Finding {
    Finding::new(EntityClass::Secret, start, end, confidence, rule).with_subtype(subtype)
}

/// Reads bytes of `charset` from `from`, at most `limit`; returns the end.
fn run(bytes: &[u8], from: usize, limit: usize, charset: Charset) -> usize {
    let mut end = from;
    while end - from < limit && charset.allows(at(bytes, end)) {
        end += 1;
    }
    end
}

/// Low-entropy bodies are examples and placeholders (`ghp_xxxx…`).
fn random_enough(body: &[u8]) -> bool {
    match body.len() {
        0..=11 => true,
        12..=19 => entropy(body) >= 2.5,
        _ => entropy(body) >= 3.0,
    }
}

pub(crate) fn detect(cx: &super::Ctx<'_>, out: &mut Vec<Finding>) {
    let bytes = cx.bytes;
    let mut state = State::default();
    for hit in cx.hits {
        if hit.start < state.consumed {
            continue;
        }
        let found = match hit.kw {
            Kw::Vendor(i) => VENDOR.get(usize::from(i)).and_then(|r| vendor(bytes, hit, r)),
            Kw::Special(s) => special(bytes, hit, s, &mut state),
            Kw::Assign => assignment(bytes, hit),
            _ => None,
        };
        if let Some(f) = found {
            // Multi-line blocks swallow the triggers inside them.
            if matches!(f.rule, "secret.pem" | "secret.putty") {
                state.consumed = f.end;
            }
            out.push(f);
        }
    }
}

/// Per-scan memory that keeps adversarial inputs linear.
#[derive(Default)]
struct State {
    /// Hits before this offset are inside an accepted block.
    consumed: usize,
    /// Where the next `-----END ` is (searched once, not per BEGIN).
    next_pem_end: Option<Option<usize>>,
    /// A JWT candidate that failed because its first segment ran to here
    /// without a dot: every `eyJ` inside that run fails the same way.
    jwt_fail_until: usize,
}

fn vendor(bytes: &[u8], hit: &Hit, rule: &VendorRule) -> Option<Finding> {
    let prefix = rule.prefix.as_bytes();
    if bytes.get(hit.start..hit.start + prefix.len())? != prefix {
        return None;
    }
    // Not glued to a preceding token character.
    let before = if hit.start == 0 { 0 } else { at(bytes, hit.start - 1) };
    if before.is_ascii_alphanumeric() || (before == b'_' && prefix.first().is_none_or(|b| b.is_ascii_alphanumeric())) {
        return None;
    }
    let body_start = hit.start + prefix.len();
    let body_end = run(bytes, body_start, usize::from(rule.max) + 1, rule.charset);
    let len = body_end - body_start;
    if len < usize::from(rule.min) || len > usize::from(rule.max) {
        return None;
    }
    // Glued to more token characters: some other, longer string.
    let after = at(bytes, body_end);
    if after.is_ascii_alphanumeric() || after == b'_' {
        return None;
    }
    let body = bytes.get(body_start..body_end)?;
    if !random_enough(body) || contains_ci(body, b"example") {
        return None;
    }
    // A 48-character "sk-" body must carry the legacy marker or digits.
    if rule.subtype == "openai_legacy_key" && !body.iter().any(u8::is_ascii_digit) {
        return None;
    }
    Some(secret(hit.start, body_end, rule.confidence, "secret.vendor", rule.subtype))
}

fn contains_ci(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w.eq_ignore_ascii_case(needle))
}

fn special(bytes: &[u8], hit: &Hit, kind: Special, state: &mut State) -> Option<Finding> {
    match kind {
        Special::Jwt => jwt(bytes, hit.start, state),
        Special::Pem => pem(bytes, hit, state),
        Special::Putty => putty(bytes, hit),
        Special::Url => url_password(bytes, hit),
        Special::SlackWebhook => webhook(bytes, hit, "slack_webhook_url", &[b"services/", b"workflows/", b"triggers/"]),
        Special::DiscordWebhook => webhook(bytes, hit, "discord_webhook_url", &[b""]),
        Special::TeamsWebhook => webhook(bytes, hit, "teams_webhook_url", &[b""]),
        Special::Telegram => telegram(bytes, hit),
        Special::Mailchimp => mailchimp(bytes, hit),
        Special::AzureClientSecret => azure_client_secret(bytes, hit),
        Special::AzureAccountKey => keyed_value(bytes, hit, Base64, 40, 100, "azure_storage_account_key", 0.97),
        Special::AzureSas => azure_sas(bytes, hit),
        Special::GcpKeyId => gcp_key_id(bytes, hit),
        Special::Bearer => bearer(bytes, hit),
        Special::Basic => basic(bytes, hit),
    }
}

fn is_b64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

fn jwt(bytes: &[u8], start: usize, state: &mut State) -> Option<Finding> {
    if bytes.get(start..start + 3)? != b"eyJ" || start < state.jwt_fail_until {
        return None;
    }
    if start > 0 && (is_b64url(at(bytes, start - 1)) || at(bytes, start - 1) == b'.') {
        return None;
    }
    const MAX_SEGMENT: usize = 8192;
    let header_end = run(bytes, start, MAX_SEGMENT, UrlB64);
    if at(bytes, header_end) != b'.' {
        state.jwt_fail_until = header_end;
        return None;
    }
    if header_end - start < 10 || bytes.get(header_end + 1..header_end + 4)? != b"eyJ" {
        return None;
    }
    let payload_end = run(bytes, header_end + 1, MAX_SEGMENT, UrlB64);
    if at(bytes, payload_end) != b'.' || payload_end - header_end < 11 {
        state.jwt_fail_until = payload_end;
        return None;
    }
    let sig_end = run(bytes, payload_end + 1, MAX_SEGMENT, UrlB64);
    if sig_end - payload_end - 1 < 16 || at(bytes, sig_end) == b'.' {
        return None;
    }
    Some(secret(start, sig_end, 0.95, "secret.jwt", "jwt"))
}

fn pem(bytes: &[u8], hit: &Hit, state: &mut State) -> Option<Finding> {
    let label_start = hit.end;
    if bytes.get(hit.start..label_start)? != b"-----BEGIN " {
        return None;
    }
    let label_len = bytes.get(label_start..)?.iter().take(48).position(|&b| b == b'-')?;
    let label = bytes.get(label_start..label_start + label_len)?;
    if bytes.get(label_start + label_len..label_start + label_len + 5)? != b"-----" {
        return None;
    }
    let subtype = match label {
        b"PRIVATE KEY" => "private_key",
        b"RSA PRIVATE KEY" => "rsa_private_key",
        b"EC PRIVATE KEY" => "ec_private_key",
        b"DSA PRIVATE KEY" => "dsa_private_key",
        b"OPENSSH PRIVATE KEY" => "openssh_private_key",
        b"ENCRYPTED PRIVATE KEY" => "encrypted_private_key",
        b"PGP PRIVATE KEY BLOCK" => "pgp_private_key",
        _ => return None,
    };
    let body_start = label_start + label_len + 5;
    // Find the next END marker once per scan, not once per BEGIN.
    let next_end = match state.next_pem_end {
        Some(Some(e)) if e >= body_start => Some(e),
        Some(None) => None,
        _ => {
            let found = memchr::memmem::find(bytes.get(body_start..)?, b"-----END ").map(|p| p + body_start);
            state.next_pem_end = Some(found);
            found
        }
    };
    const MAX_BLOCK: usize = 64 * 1024;
    let end = match next_end {
        Some(e) if e - body_start <= MAX_BLOCK => {
            let tail = bytes.get(e + 9..)?.iter().take(64).position(|&b| b == b'-').map(|p| e + 9 + p)?;
            let dashes = bytes.get(tail..)?.iter().take(5).take_while(|&&b| b == b'-').count();
            tail + dashes
        }
        // A truncated key: everything that still looks like its body.
        _ => {
            let mut end = body_start;
            while end - body_start < MAX_BLOCK {
                let b = at(bytes, end);
                if b.is_ascii_alphanumeric()
                    || b"+/=\r\n\t \\:-,".contains(&b) && !(b == b'-' && at(bytes, end + 1) == b'-')
                {
                    end += 1;
                } else {
                    break;
                }
            }
            end
        }
    };
    Some(secret(hit.start, end, 0.99, "secret.pem", subtype))
}

fn putty(bytes: &[u8], hit: &Hit) -> Option<Finding> {
    let rest = bytes.get(hit.start..)?;
    let window = rest.get(..rest.len().min(16 * 1024))?;
    let mac = memchr::memmem::find(window, b"Private-MAC:")?;
    let hex_start = hit.start + mac + 12;
    let hex_start = hex_start + bytes.get(hex_start..)?.iter().take_while(|&&b| b == b' ').count();
    let end = run(bytes, hex_start, 128, Hex);
    (end > hex_start).then(|| secret(hit.start, end, 0.99, "secret.putty", "putty_private_key"))
}

const DB_SCHEMES: &[&str] = &[
    "postgres",
    "postgresql",
    "mysql",
    "mariadb",
    "mongodb",
    "mongodb+srv",
    "redis",
    "rediss",
    "amqp",
    "amqps",
    "mssql",
    "sqlserver",
    "jdbc:postgresql",
    "jdbc:mysql",
    "oracle",
    "clickhouse",
    "cockroachdb",
    "neo4j",
    "couchbase",
];

fn is_placeholder_value(v: &[u8]) -> bool {
    const STOP: &[&str] = &[
        "null",
        "none",
        "nil",
        "true",
        "false",
        "undefined",
        "required",
        "optional",
        "string",
        "password",
        "passwd",
        "secret",
        "token",
        "example",
        "redacted",
        "hidden",
        "changeme",
        "your_password",
        "yourpassword",
        "your-password",
        "mypassword",
        "pass",
        "user",
        "username",
        "xxx",
    ];
    let first = v.first().copied().unwrap_or(0);
    let all_same = v.iter().all(|&b| Some(&b) == v.first());
    all_same
        || matches!(first, b'$' | b'<' | b'{' | b'[' | b'%' | b'(')
        || v.starts_with(b"process.env")
        || v.starts_with(b"os.environ")
        || STOP.iter().any(|s| s.as_bytes().eq_ignore_ascii_case(v))
        || (v.len() >= 3 && v.iter().all(|&b| b == b'*' || b == b'x' || b == b'X' || b == b'.'))
}

fn url_password(bytes: &[u8], hit: &Hit) -> Option<Finding> {
    // scheme
    let mut s = hit.start;
    while s > 0 && hit.start - s < 24 && {
        let b = at(bytes, s - 1);
        b.is_ascii_alphanumeric() || b"+.-:".contains(&b)
    } {
        s -= 1;
    }
    let scheme = bytes.get(s..hit.start)?;
    if scheme.is_empty() || !scheme.first().is_some_and(u8::is_ascii_alphabetic) {
        return None;
    }
    let user_start = hit.end;
    let mut i = user_start;
    while i - user_start < 128 && !matches!(at(bytes, i), b':' | b'@' | b'/' | 0 | b' ' | b'\n' | b'\t' | b'"' | b'\'')
    {
        i += 1;
    }
    if at(bytes, i) != b':' {
        return None;
    }
    let pass_start = i + 1;
    let mut j = pass_start;
    while j - pass_start < 256
        && !matches!(at(bytes, j), b'@' | b'/' | 0 | b' ' | b'\n' | b'\t' | b'"' | b'\'' | b'<' | b'>')
    {
        j += 1;
    }
    if at(bytes, j) != b'@' || !at(bytes, j + 1).is_ascii_alphanumeric() && at(bytes, j + 1) != b'[' {
        return None;
    }
    let password = bytes.get(pass_start..j)?;
    if password.len() < 3 || is_placeholder_value(password) {
        return None;
    }
    let scheme_lower = scheme.to_ascii_lowercase();
    let db = DB_SCHEMES.iter().any(|d| d.as_bytes() == scheme_lower.as_slice());
    let subtype = if db { "connection_string_password" } else { "url_password" };
    Some(secret(pass_start, j, 0.97, "secret.url_password", subtype))
}

fn url_start(bytes: &[u8], at_keyword: usize) -> usize {
    for scheme in [&b"https://"[..], b"http://"] {
        if let Some(s) = at_keyword.checked_sub(scheme.len()) {
            if bytes.get(s..at_keyword) == Some(scheme) {
                return s;
            }
        }
    }
    at_keyword
}

fn webhook(bytes: &[u8], hit: &Hit, subtype: &'static str, paths: &[&[u8]]) -> Option<Finding> {
    let path = paths.iter().find(|p| bytes.get(hit.end..hit.end + p.len()) == Some(p))?;
    let rest = hit.end + path.len();
    let end = run(bytes, rest, 300, Charset::Dotted);
    let end = end + {
        // path segments: [\w-] separated by '/', and '@' in Teams URLs.
        let mut e = end;
        while e - rest < 400 && (is_b64url(at(bytes, e)) || matches!(at(bytes, e), b'/' | b'@' | b'.')) {
            e += 1;
        }
        e - end
    };
    let tail = bytes.get(rest..end)?;
    if tail.len() < 20 || tail.iter().filter(|&&b| b == b'/').count() < 1 {
        return None;
    }
    Some(secret(url_start(bytes, hit.start), end, 0.97, "secret.webhook", subtype))
}

fn telegram(bytes: &[u8], hit: &Hit) -> Option<Finding> {
    if bytes.get(hit.start..hit.end)? != b":AA" {
        return None;
    }
    let mut s = hit.start;
    while s > 0 && hit.start - s < 11 && at(bytes, s - 1).is_ascii_digit() {
        s -= 1;
    }
    let digits = hit.start - s;
    if !(8..=10).contains(&digits) || (s > 0 && at(bytes, s - 1).is_ascii_alphanumeric()) {
        return None;
    }
    let end = run(bytes, hit.start + 1, 36, UrlB64);
    (end - hit.start - 1 == 35 && !is_b64url(at(bytes, end)))
        .then(|| secret(s, end, 0.9, "secret.telegram", "telegram_bot_token"))
}

fn mailchimp(bytes: &[u8], hit: &Hit) -> Option<Finding> {
    let s = hit.start.checked_sub(32)?;
    let key = bytes.get(s..hit.start)?;
    if !key.iter().all(|b| Charset::HexLower.allows(*b)) || (s > 0 && at(bytes, s - 1).is_ascii_alphanumeric()) {
        return None;
    }
    let dc = run(bytes, hit.end, 3, Charset::Lower);
    let n = dc - hit.end;
    let ok = (1..=2).contains(&n) && bytes.get(hit.end..dc)?.iter().all(u8::is_ascii_digit);
    (ok && !at(bytes, dc).is_ascii_alphanumeric() && random_enough(key))
        .then(|| secret(s, dc, 0.85, "secret.mailchimp", "mailchimp_api_key"))
}

fn azure_client_secret(bytes: &[u8], hit: &Hit) -> Option<Finding> {
    // [A-Za-z0-9_~.]{3} \d Q~ [A-Za-z0-9_~.-]{31,34}
    if bytes.get(hit.start..hit.end)? != b"Q~" {
        return None;
    }
    let s = hit.start.checked_sub(4)?;
    let lead = bytes.get(s..hit.start)?;
    let ok_lead = lead.iter().take(3).all(|&b| b.is_ascii_alphanumeric() || b"_~.".contains(&b))
        && lead.get(3).is_some_and(u8::is_ascii_digit);
    let glued = s > 0 && {
        let b = at(bytes, s - 1);
        b.is_ascii_alphanumeric() || b"_~.-".contains(&b)
    };
    if !ok_lead || glued {
        return None;
    }
    let mut e = hit.end;
    while e - hit.end < 35 && {
        let b = at(bytes, e);
        b.is_ascii_alphanumeric() || b"_~.-".contains(&b)
    } {
        e += 1;
    }
    let body = bytes.get(hit.end..e)?;
    ((31..=34).contains(&body.len()) && random_enough(body))
        .then(|| secret(s, e, 0.9, "secret.azure_client_secret", "azure_ad_client_secret"))
}

fn keyed_value(
    bytes: &[u8],
    hit: &Hit,
    charset: Charset,
    min: usize,
    max: usize,
    subtype: &'static str,
    confidence: f32,
) -> Option<Finding> {
    let end = run(bytes, hit.end, max + 1, charset);
    let body = bytes.get(hit.end..end)?;
    ((min..=max).contains(&body.len()) && random_enough(body))
        .then(|| secret(hit.end, end, confidence, "secret.keyed_value", subtype))
}

fn azure_sas(bytes: &[u8], hit: &Hit) -> Option<Finding> {
    let before = if hit.start == 0 { 0 } else { at(bytes, hit.start - 1) };
    if !matches!(before, b'?' | b'&' | b';') {
        return None;
    }
    let window = bytes.get(hit.start.saturating_sub(400)..hit.start)?;
    memchr::memmem::find(window, b"sv=")?;
    let mut end = hit.end;
    while end - hit.end < 130 && (at(bytes, end).is_ascii_alphanumeric() || b"%+/=".contains(&at(bytes, end))) {
        end += 1;
    }
    let body = bytes.get(hit.end..end)?;
    ((30..=128).contains(&body.len()) && random_enough(body))
        .then(|| secret(hit.end, end, 0.95, "secret.azure_sas", "azure_sas_token"))
}

fn gcp_key_id(bytes: &[u8], hit: &Hit) -> Option<Finding> {
    let mut i = hit.end;
    while matches!(at(bytes, i), b' ' | b'\t' | b'\n' | b'\r') && i - hit.end < 8 {
        i += 1;
    }
    if at(bytes, i) != b':' {
        return None;
    }
    i += 1;
    while matches!(at(bytes, i), b' ' | b'\t' | b'\n' | b'\r') && i - hit.end < 16 {
        i += 1;
    }
    if at(bytes, i) != b'"' {
        return None;
    }
    let end = run(bytes, i + 1, 41, Hex);
    (end - i - 1 == 40 && at(bytes, end) == b'"')
        .then(|| secret(i + 1, end, 0.95, "secret.gcp_key_id", "gcp_service_account_key_id"))
}

fn bearer(bytes: &[u8], hit: &Hit) -> Option<Finding> {
    let before = if hit.start == 0 { 0 } else { at(bytes, hit.start - 1) };
    if before.is_ascii_alphanumeric() {
        return None;
    }
    let mut end = hit.end;
    while end - hit.end < 4096 && {
        let b = at(bytes, end);
        b.is_ascii_alphanumeric() || b"._~+/=-".contains(&b)
    } {
        end += 1;
    }
    let token = bytes.get(hit.end..end)?;
    let good = token.len() >= 16
        && token.iter().any(u8::is_ascii_digit)
        && token.iter().any(u8::is_ascii_alphabetic)
        && entropy(token) >= 3.0
        && !is_placeholder_value(token);
    good.then(|| secret(hit.end, end, 0.9, "secret.bearer", "bearer_token"))
}

fn basic(bytes: &[u8], hit: &Hit) -> Option<Finding> {
    let window = bytes.get(hit.start.saturating_sub(24)..hit.start)?;
    if !contains_ci(window, b"authorization") {
        return None;
    }
    let end = run(bytes, hit.end, 1024, Base64);
    let token = bytes.get(hit.end..end)?;
    (token.len() >= 8 && !is_placeholder_value(token))
        .then(|| secret(hit.end, end, 0.9, "secret.basic_auth", "http_basic_auth"))
}

/// Bytes that may continue an identifier around an assignment key.
fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.'
}

/// Whether `ident=` follows at `i` (the next parameter of a query string).
fn next_query_param(bytes: &[u8], i: usize) -> bool {
    let n = bytes
        .get(i..)
        .unwrap_or_default()
        .iter()
        .take(32)
        .take_while(|&&b| b.is_ascii_alphanumeric() || b == b'_')
        .count();
    n > 0 && at(bytes, i + n) == b'='
}

fn assignment(bytes: &[u8], hit: &Hit) -> Option<Finding> {
    // The identifier the key word sits in: `db_password`, `GITHUB_TOKEN`.
    let mut s = hit.start;
    while s > 0 && hit.start - s < 64 && is_ident(at(bytes, s - 1)) {
        s -= 1;
    }
    let mut e = hit.end;
    while e - hit.end < 64 && is_ident(at(bytes, e)) {
        e += 1;
    }
    let ident = bytes.get(s..e)?.to_ascii_lowercase();
    // Counters and types are not secrets: max_tokens, token_type, ...
    const NOT_SECRET: &[&str] = &[
        "tokens",
        "token_type",
        "tokenizer",
        "token_count",
        "token_id",
        "token_limit",
        "token_usage",
        "password_policy",
        "password_reset",
        "secret_name",
        "key_id",
        "secret_id",
        "token_url",
        "token_endpoint",
        "passwordless",
        "credential_type",
    ];
    if NOT_SECRET.iter().any(|w| contains_ci(&ident, w.as_bytes())) {
        return None;
    }
    let mut i = e;
    if matches!(at(bytes, i), b'"' | b'\'' | b'`') {
        i += 1;
    }
    let skip_spaces = |mut i: usize| {
        let from = i;
        while matches!(at(bytes, i), b' ' | b'\t') && i - from < 4 {
            i += 1;
        }
        i
    };
    i = skip_spaces(i);
    let (skip, prose) = match (at(bytes, i), at(bytes, i + 1)) {
        (b':', b'=') | (b'=', b'>') | (b'=', b'=') => (2, false),
        (b'=', _) | (b':', _) => (1, false),
        (b'i' | b'I', b's' | b'S') if at(bytes, i + 2) == b' ' => (3, true),
        _ => return None,
    };
    i += skip;
    i = skip_spaces(i);
    let quote = at(bytes, i);
    let quoted = matches!(quote, b'"' | b'\'' | b'`');
    if quoted {
        i += 1;
    }
    let value_start = i;
    let limit = 512;
    while i - value_start < limit {
        let b = at(bytes, i);
        let stop = if quoted {
            b == quote || b == 0 || b == b'\n'
        } else {
            matches!(
                b,
                0 | b' ' | b'\t' | b'\n' | b'\r' | b',' | b';' | b'"' | b'\'' | b'`' | b'<' | b'>' | b')' | b']' | b'}'
            ) || (b == b'&' && next_query_param(bytes, i + 1))
        };
        if stop {
            break;
        }
        i += 1;
    }
    let mut value_end = i;
    // Sentence punctuation after an unquoted prose value is not part of it.
    if prose || !quoted {
        while value_end > value_start && matches!(at(bytes, value_end - 1), b'.' | b'!' | b'?' | b':') {
            value_end -= 1;
        }
    }
    let value = bytes.get(value_start..value_end)?;
    if value.len() >= limit || is_placeholder_value(value) {
        return None;
    }
    let is_password = contains_ci(&ident, b"pass") || contains_ci(&ident, b"pwd");
    let has_digit = value.iter().any(u8::is_ascii_digit);
    let has_alpha = value.iter().any(u8::is_ascii_alphabetic);
    let has_upper = value.iter().any(u8::is_ascii_uppercase);
    let has_lower = value.iter().any(u8::is_ascii_lowercase);
    let has_symbol = value.iter().any(|b| b.is_ascii_punctuation());
    // Code, not a value: `config.secret`, `get_token()`.
    let looks_like_code = !has_digit
        && value.iter().all(|&b| b.is_ascii_alphabetic() || b == b'_' || b == b'.')
        && (value.contains(&b'.') || value.contains(&b'_'));
    if looks_like_code {
        return None;
    }
    if contains_ci(&ident, b"aws") && contains_ci(&ident, b"secret") {
        let ok = value.len() == 40 && value.iter().all(|&b| Charset::Base64.allows(b)) && entropy(value) >= 3.5;
        return ok.then(|| secret(value_start, value_end, 0.97, "secret.assignment", "aws_secret_access_key"));
    }
    if is_password {
        let varied = usize::from(has_digit) + usize::from(has_upper) + usize::from(has_lower) + usize::from(has_symbol);
        let ok = value.len() >= 6 && value.len() <= 128 && varied >= 2 && entropy(value) >= 2.0;
        let confidence = if prose { 0.85 } else { 0.9 };
        return ok.then(|| secret(value_start, value_end, confidence, "secret.assignment", "generic_password"));
    }
    let ok = value.len() >= 12 && has_digit && has_alpha && entropy(value) >= 3.0;
    let subtype = if contains_ci(&ident, b"token") {
        "generic_token"
    } else if contains_ci(&ident, b"key") {
        "generic_api_key"
    } else {
        "generic_secret"
    };
    let confidence = if prose { 0.75 } else { 0.85 };
    ok.then(|| secret(value_start, value_end, confidence, "secret.assignment", subtype))
}

#[cfg(test)]
mod tests {
    use super::super::{ClassMask, DetectorSet};
    use super::*;

    fn secrets(text: &str) -> Vec<(String, String)> {
        let mut out = Vec::new();
        DetectorSet::new([EntityClass::Secret]).scan(text, &mut out);
        out.iter()
            .map(|f| (text[f.start..f.end].to_string(), f.subtype.as_deref().unwrap_or_default().to_string()))
            .collect()
    }

    fn one(text: &str) -> (String, String) {
        let got = secrets(text);
        assert_eq!(got.len(), 1, "{text}: {got:?}");
        got.into_iter().next().unwrap()
    }

    #[test]
    fn at_least_sixty_formats() {
        assert!(SECRET_SUBTYPES.len() >= 60, "{}", SECRET_SUBTYPES.len());
        let _ = ClassMask::default();
    }

    #[test]
    fn vendor_tokens() {
        let cases = [
            ("key AKIAQYLPMN5HHHFPZAM2 here", "AKIAQYLPMN5HHHFPZAM2", "aws_access_key_id"),
            ("ghp_Zk9pQ2xmT3dR8sV1bN4cX7yA6eH5gJ0iL3uM tok", "ghp_Zk9pQ2xmT3dR8sV1bN4cX7yA6eH5gJ0iL3uM", "github_pat"),
            (
                "export STRIPE=sk_live_51HqLyjWDarjtT1zdp7dcXs8W",
                "sk_live_51HqLyjWDarjtT1zdp7dcXs8W",
                "stripe_secret_key",
            ),
            ("AIzaSyD3x9Qf7K2mV8nL0pR4tW6yB1cE5gH7jKm", "AIzaSyD3x9Qf7K2mV8nL0pR4tW6yB1cE5gH7jKm", "google_api_key"),
            ("token: glpat-x7Kq9LmN2pR4sT6vW8yZ", "glpat-x7Kq9LmN2pR4sT6vW8yZ", "gitlab_pat"),
            (
                "xoxb-2837461923-1928374619283-aZ8kL2mN9pQ4rS7tV1wX3yB5",
                "xoxb-2837461923-1928374619283-aZ8kL2mN9pQ4rS7tV1wX3yB5",
                "slack_bot_token",
            ),
        ];
        for (text, value, subtype) in cases {
            assert_eq!(one(text), (value.to_string(), subtype.to_string()), "{text}");
        }
    }

    #[test]
    fn llm_provider_keys() {
        let body: String = (0..95).map(|i| b"aZ3kQ9_xL2-mP7"[i % 14] as char).collect();
        let ant = format!("sk-ant-api03-{body}");
        assert_eq!(one(&format!("key={ant} ")).1, "anthropic_api_key");
        let proj = format!("sk-proj-{}", &body[..60]);
        assert_eq!(one(&format!("OPENAI={proj}")).1, "openai_project_key");
    }

    #[test]
    fn placeholders_and_examples_do_not_fire() {
        for text in [
            "ghp_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
            "AKIAIOSFODNN7EXAMPLE",
            "sk_live_XXXXXXXXXXXXXXXXXXXXXXXX",
            "password = ${DB_PASSWORD}",
            "password: required",
            "max_tokens = 4096",
            "token = self.token_value",
            "api_key = <your key here>",
            "the task asked for it",
            "eyJhbGciOi but not a jwt",
        ] {
            assert!(secrets(text).is_empty(), "{text}: {:?}", secrets(text));
        }
    }

    #[test]
    fn pem_blocks_whole_and_truncated() {
        let key = "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA7\nabc+/=\n-----END RSA PRIVATE KEY-----";
        let text = format!("here: {key} done");
        assert_eq!(one(&text), (key.to_string(), "rsa_private_key".to_string()));
        let cut = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA";
        assert_eq!(one(cut), (cut.to_string(), "openssh_private_key".to_string()));
        assert!(secrets("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----").is_empty());
    }

    #[test]
    fn jwt_and_bearer() {
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U";
        assert_eq!(one(&format!("Authorization: Bearer {jwt}")), (jwt.to_string(), "jwt".to_string()));
    }

    #[test]
    fn urls_and_connection_strings() {
        assert_eq!(
            one("DATABASE_URL=postgres://app:s3cr3t-Pa55@db.internal:5432/app"),
            ("s3cr3t-Pa55".to_string(), "connection_string_password".to_string())
        );
        assert_eq!(one("https://bob:hunter2x@example.com/x").1, "url_password");
        assert!(secrets("https://user:***@example.com").is_empty());
        assert_eq!(
            one("Server=tcp:db;Database=x;User Id=sa;Password=Tr0ub4dor&3x;"),
            ("Tr0ub4dor&3x".to_string(), "generic_password".to_string())
        );
    }

    #[test]
    fn generic_assignments() {
        assert_eq!(one("my password is Tr0ub4dor3x.").0, "Tr0ub4dor3x");
        assert_eq!(one(r#"{"client_secret": "q8Zr2Lm9Xw4Tp7Vn3Kc6"}"#).1, "generic_secret");
        assert_eq!(one("GITHUB_TOKEN=a8f7Kq2Lm9Xw4Tp7Vn3Kc6Zr").1, "generic_token");
        assert_eq!(one("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY").1, "aws_secret_access_key");
    }

    #[test]
    fn adversarial_inputs_stay_linear() {
        for unit in ["eyJ", "-----BEGIN RSA PRIVATE KEY-----", "AKIA", "://a:b", "password=", "sk-", "Q~"] {
            let text = unit.repeat((1 << 20) / unit.len());
            let start = std::time::Instant::now();
            let _ = secrets(&text);
            // Generous bound: catches quadratic blow-ups, not speed.
            assert!(start.elapsed().as_secs() < 20, "{unit}");
        }
    }
}
