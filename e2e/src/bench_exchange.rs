//! The request and reply the filter benchmarks exchange: `meshward-bench`
//! through Envoy and `meshward-wasm-host`'s `exchange` bench on wasmtime
//! include this one file, so both measure the same work.

/// The provider's answer: a short OpenAI chat completion with usage.
pub const REPLY: &[u8] = br#"{"id":"chatcmpl-bench","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}"#;

/// Realistic prose padded to `size` bytes, with one e-mail and one card.
pub fn chat_body(size: usize) -> Vec<u8> {
    let words = [
        "please",
        "summarise",
        "the",
        "quarterly",
        "report",
        "for",
        "our",
        "customers",
        "and",
        "explain",
        "how",
        "revenue",
        "changed",
        "compared",
        "with",
        "last",
        "year",
        "including",
        "regional",
        "trends",
        "in",
        "detail",
    ];
    let mut text = String::from("Contact jane.doe@example.com about card 4111 1111 1111 1111. ");
    let mut i = 0;
    while text.len() + 120 < size {
        text.push_str(words[i % words.len()]);
        text.push(if i % 17 == 16 { '.' } else { ' ' });
        i += 1;
    }
    serde_json::json!({
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "You are a helpful analyst."},
            {"role": "user", "content": text}
        ]
    })
    .to_string()
    .into_bytes()
}
