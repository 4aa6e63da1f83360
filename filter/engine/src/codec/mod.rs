//! Provider codecs: which parts of a request body are text a model reads.
//!
//! The codec is chosen from the request path. Known provider APIs get a
//! codec that knows their structure (roles, structural members that are not
//! text, inline binary data); anything else that is JSON is walked
//! generically (every string leaf), and anything else is plain text.

use crate::json::PathSeg;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// OpenAI Chat Completions, also Azure OpenAI deployments.
    OpenAiChat,
    /// JSON of an unknown API: every string leaf is text.
    GenericJson,
    /// Not JSON: the whole body is one text.
    PlainText,
}

/// Who wrote a text part, as far as the codec can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    System,
    Developer,
    User,
    Assistant,
    Tool,
    /// A tool (function) declaration in the request.
    ToolDeclaration,
    /// Anything else: request metadata, unknown members, unknown APIs.
    Other,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::Developer => "developer",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
            Role::ToolDeclaration => "tool_declaration",
            Role::Other => "other",
        }
    }

    pub fn from_message_role(value: &str) -> Role {
        match value {
            "system" => Role::System,
            "developer" => Role::Developer,
            "user" => Role::User,
            "assistant" => Role::Assistant,
            "tool" | "function" => Role::Tool,
            _ => Role::Other,
        }
    }
}

/// Where a text part sits, before roles are known (a message's `role` may
/// come after its `content` in the client's key order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Message(usize),
    ToolDeclaration,
    Other,
}

impl Codec {
    /// Picks the codec for a request path (query string ignored).
    pub fn for_request(path: &str, content_type: Option<&str>) -> Codec {
        let path = path.split(['?', '#']).next().unwrap_or_default();
        if path.ends_with("/chat/completions") {
            return Codec::OpenAiChat;
        }
        let json = content_type.is_some_and(|ct| {
            let media = ct.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
            media == "application/json" || media.ends_with("+json")
        });
        if json {
            Codec::GenericJson
        } else {
            Codec::PlainText
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Codec::OpenAiChat => "openai.chat_completions",
            Codec::GenericJson => "generic.json",
            Codec::PlainText => "plain.text",
        }
    }

    /// Whether the body must be JSON (a provider API we know).
    pub fn requires_json(self) -> bool {
        matches!(self, Codec::OpenAiChat | Codec::GenericJson)
    }

    /// The scope of the string at `path`, or `None` when the codec knows it
    /// is structural (ids, enums, inline binary) and holds no prose.
    pub fn classify(self, path: &[PathSeg<'_>]) -> Option<Scope> {
        match self {
            Codec::OpenAiChat => openai_chat_scope(path),
            Codec::GenericJson | Codec::PlainText => Some(Scope::Other),
        }
    }

    /// If `path` is a message's `role` member, the message's index.
    pub fn message_role_index(self, path: &[PathSeg<'_>]) -> Option<usize> {
        match (self, path) {
            (Codec::OpenAiChat, [messages, index, role]) if messages.is_key("messages") && role.is_key("role") => {
                index.index()
            }
            _ => None,
        }
    }
}

fn openai_chat_scope(path: &[PathSeg<'_>]) -> Option<Scope> {
    let last = path.last()?;
    match path {
        [top]
            if ["model", "service_tier", "reasoning_effort", "tool_choice", "prompt_cache_key"]
                .iter()
                .any(|k| top.is_key(k)) =>
        {
            None
        }
        [messages, index, rest @ ..] if messages.is_key("messages") => {
            // `messages` that is not an array is not a transcript we know,
            // but its strings still reach the provider: scan them all.
            let Some(index) = index.index() else { return Some(Scope::Other) };
            let structural = ["role", "type", "id", "tool_call_id", "detail", "format"].iter().any(|k| last.is_key(k))
                // Inline images and audio are base64 data, not prose.
                || rest.iter().any(|s| s.is_key("image_url") || s.is_key("input_audio") || s.is_key("file_data"));
            (!structural).then_some(Scope::Message(index))
        }
        [tools, ..] if tools.is_key("tools") || tools.is_key("functions") => {
            (!last.is_key("type")).then_some(Scope::ToolDeclaration)
        }
        [response_format, ..] if response_format.is_key("response_format") && last.is_key("type") => None,
        _ => Some(Scope::Other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chooses_codec_by_path_and_content_type() {
        assert_eq!(Codec::for_request("/v1/chat/completions", None), Codec::OpenAiChat);
        assert_eq!(Codec::for_request("/v1/chat/completions?x=1", None), Codec::OpenAiChat);
        assert_eq!(
            Codec::for_request("/openai/deployments/gpt4/chat/completions?api-version=2024-10-21", None),
            Codec::OpenAiChat
        );
        assert_eq!(Codec::for_request("/v1/other", Some("application/json; charset=utf-8")), Codec::GenericJson);
        assert_eq!(Codec::for_request("/v1/other", Some("application/vnd.api+json")), Codec::GenericJson);
        assert_eq!(Codec::for_request("/v1/other", Some("text/plain")), Codec::PlainText);
        assert_eq!(Codec::for_request("/v1/other", None), Codec::PlainText);
    }

    #[test]
    fn openai_structural_members_are_skipped_and_text_is_scoped() {
        let c = Codec::OpenAiChat;
        let k = PathSeg::Key;
        let i = PathSeg::Index;
        assert_eq!(c.classify(&[k("model")]), None);
        assert_eq!(c.classify(&[k("messages"), i(2), k("role")]), None);
        assert_eq!(c.classify(&[k("messages"), i(2), k("content")]), Some(Scope::Message(2)));
        assert_eq!(c.classify(&[k("messages"), i(0), k("content"), i(1), k("text")]), Some(Scope::Message(0)));
        assert_eq!(c.classify(&[k("messages"), i(0), k("content"), i(1), k("type")]), None);
        assert_eq!(c.classify(&[k("messages"), i(0), k("content"), i(1), k("image_url"), k("url")]), None);
        assert_eq!(
            c.classify(&[k("messages"), i(1), k("tool_calls"), i(0), k("function"), k("arguments")]),
            Some(Scope::Message(1))
        );
        assert_eq!(c.classify(&[k("tools"), i(0), k("function"), k("description")]), Some(Scope::ToolDeclaration));
        // `user` often carries an end-user e-mail: it is scanned.
        assert_eq!(c.classify(&[k("user")]), Some(Scope::Other));
        // A malformed transcript is scanned whole, never skipped.
        assert_eq!(c.classify(&[k("messages"), k("content")]), Some(Scope::Other));
        assert_eq!(c.classify(&[k("messages"), k("role")]), Some(Scope::Other));
    }

    #[test]
    fn message_roles_are_recognised() {
        let c = Codec::OpenAiChat;
        let path = [PathSeg::Key("messages"), PathSeg::Index(3), PathSeg::Key("role")];
        assert_eq!(c.message_role_index(&path), Some(3));
        assert_eq!(c.message_role_index(&path[..2]), None);
        assert_eq!(Codec::GenericJson.message_role_index(&path), None);
        assert_eq!(Role::from_message_role("tool"), Role::Tool);
        assert_eq!(Role::from_message_role("developer"), Role::Developer);
        assert_eq!(Role::from_message_role("narrator"), Role::Other);
    }
}
