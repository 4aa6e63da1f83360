//! Renders `envoy/envoy.template.yaml` (see the token list at its top).
//! scripts/run.sh has the same renderer in a few lines of Python; a test
//! validates the output of both with `envoy --mode validate`.

use std::path::Path;

use crate::Error;

const FILTER_BEGIN: &str = "# meshward-filter:begin";
const FILTER_END: &str = "# meshward-filter:end";

/// A host and a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    /// An IP literal (the clusters are STATIC).
    pub host: String,
    /// 0 = let the OS pick (listener and admin only).
    pub port: u16,
}

impl HostPort {
    pub fn new(host: &str, port: u16) -> Self {
        HostPort { host: host.to_owned(), port }
    }
}

impl From<std::net::SocketAddr> for HostPort {
    fn from(a: std::net::SocketAddr) -> Self {
        HostPort { host: a.ip().to_string(), port: a.port() }
    }
}

/// Everything the template needs.
#[derive(Debug, Clone)]
pub struct RenderParams<'a> {
    pub listener: HostPort,
    pub admin: HostPort,
    pub provider: HostPort,
    pub sink: HostPort,
    /// The filter module; `None` renders Envoy without the wasm filter.
    pub wasm: Option<&'a Path>,
    /// The policy document, verbatim (it is JSON-quoted here).
    pub policy_json: &'a str,
}

/// JSON-quotes `s`: a JSON string is a valid YAML double-quoted scalar.
pub fn quote(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

fn strip_filter(template: &str) -> Result<String, Error> {
    let mut out = String::with_capacity(template.len());
    let (mut inside, mut seen) = (false, false);
    for line in template.split_inclusive('\n') {
        match line.trim() {
            FILTER_BEGIN if !inside && !seen => inside = true,
            FILTER_END if inside => {
                inside = false;
                seen = true;
            }
            _ if inside => {}
            _ => out.push_str(line),
        }
    }
    if !seen {
        return Err(Error::Render(format!("template needs a `{FILTER_BEGIN}` line, then a `{FILTER_END}` line")));
    }
    Ok(out)
}

/// Replaces every token; fails if the template still has one afterwards
/// (outside comments), or a host is not an IP literal.
pub fn render(template: &str, p: &RenderParams<'_>) -> Result<String, Error> {
    for (what, hp) in [("listener", &p.listener), ("admin", &p.admin), ("provider", &p.provider), ("sink", &p.sink)] {
        if hp.host.parse::<std::net::IpAddr>().is_err() {
            return Err(Error::Render(format!("{what} host {:?} is not an IP literal", hp.host)));
        }
    }
    let body = match p.wasm {
        Some(_) => template.to_owned(),
        None => strip_filter(template)?,
    };
    let wasm = p.wasm.map(|w| quote(&w.to_string_lossy())).unwrap_or_default();
    let tokens: [(&str, String); 10] = [
        ("{{LISTENER_HOST}}", p.listener.host.clone()),
        ("{{LISTENER_PORT}}", p.listener.port.to_string()),
        ("{{ADMIN_HOST}}", p.admin.host.clone()),
        ("{{ADMIN_PORT}}", p.admin.port.to_string()),
        ("{{PROVIDER_HOST}}", p.provider.host.clone()),
        ("{{PROVIDER_PORT}}", p.provider.port.to_string()),
        ("{{SINK_HOST}}", p.sink.host.clone()),
        ("{{SINK_PORT}}", p.sink.port.to_string()),
        ("{{WASM_PATH}}", wasm),
        ("{{POLICY_JSON}}", quote(p.policy_json)),
    ];
    // Substitute line by line, leaving comments alone (the header documents
    // the tokens), so a value can never be re-substituted.
    let mut out = String::with_capacity(body.len() + p.policy_json.len() * 2);
    for line in body.split_inclusive('\n') {
        if line.trim_start().starts_with('#') {
            out.push_str(line);
            continue;
        }
        let mut rest = line;
        while let Some(start) = rest.find("{{") {
            out.push_str(&rest[..start]);
            let after = &rest[start..];
            let (token, value) = tokens
                .iter()
                .find(|(t, _)| after.starts_with(t))
                .ok_or_else(|| Error::Render(format!("unknown token in template line {:?}", line.trim())))?;
            out.push_str(value);
            rest = &after[token.len()..];
        }
        out.push_str(rest);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEMPLATE: &str = include_str!("../../envoy/envoy.template.yaml");

    fn params(wasm: Option<&Path>) -> RenderParams<'_> {
        RenderParams {
            listener: HostPort::new("127.0.0.1", 0),
            admin: HostPort::new("127.0.0.1", 0),
            provider: HostPort::new("127.0.0.1", 8300),
            sink: HostPort::new("127.0.0.1", 8400),
            wasm,
            policy_json: "{\n  \"a\": \"quote \\\" back\\\\slash: {{X}} # not a comment\"\n}\n",
        }
    }

    fn code_lines(s: &str) -> impl Iterator<Item = &str> {
        s.lines().filter(|l| !l.trim_start().starts_with('#'))
    }

    #[test]
    fn renders_every_token_and_quotes_the_policy() {
        let out = render(TEMPLATE, &params(Some(Path::new("/x/meshward filter.wasm")))).unwrap();
        // The policy's own `{{X}}` survives verbatim inside the quoted string.
        assert!(code_lines(&out).filter(|l| l.contains("{{")).all(|l| l.contains("value: \"{\\n")));
        assert!(out.contains("filename: \"/x/meshward filter.wasm\""));
        assert!(out.contains(r#"value: "{\n  \"a\": \"quote \\\" back\\\\slash: {{X}} # not a comment\"\n}\n""#));
        assert!(out.contains("port_value: 8300"));
        assert!(out.contains("port_value: 8400"));
        assert!(out.contains("envoy.filters.http.wasm"));
    }

    #[test]
    fn without_wasm_the_filter_block_is_gone() {
        let out = render(TEMPLATE, &params(None)).unwrap();
        assert!(!out.contains("envoy.filters.http.wasm"));
        assert!(!out.contains(FILTER_BEGIN) && !out.contains(FILTER_END));
        assert!(out.contains("envoy.filters.http.router"));
        assert!(code_lines(&out).all(|l| !l.contains("{{")));
    }

    #[test]
    fn rejects_unknown_tokens_and_non_ip_hosts() {
        assert!(render("a: {{NOPE}}\n", &params(None)).is_err());
        let mut p = params(Some(Path::new("/x.wasm")));
        p.provider = HostPort::new("localhost", 1);
        assert!(render(TEMPLATE, &p).is_err());
    }
}
