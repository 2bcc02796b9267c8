//! Provider-neutral pieces of the mock "model": word counting, the deterministic
//! reply rule, tool-call planning and deterministic embeddings.

use serde_json::Value;

/// Whitespace-separated word count (the mock's "token" count).
pub(crate) fn count_words(s: &str) -> usize {
    s.split_whitespace().count()
}

/// Splits `s` into word chunks: each chunk is one word plus the whitespace that
/// follows it (leading whitespace, if any, belongs to the first chunk).
/// Concatenating the chunks gives back `s` exactly.
pub(crate) fn word_chunks(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut prev_ws = false;
    let mut seen_word = false;
    for (i, c) in s.char_indices() {
        let ws = c.is_whitespace();
        if !ws && prev_ws && seen_word {
            out.push(&s[start..i]);
            start = i;
        }
        if !ws {
            seen_word = true;
        }
        prev_ws = ws;
    }
    if start < s.len() {
        out.push(&s[start..]);
    }
    out
}

/// Splits `s` into `n` non-empty pieces on char boundaries (fewer only when `s`
/// has fewer than `n` chars).
pub(crate) fn split_pieces(s: &str, n: usize) -> Vec<&str> {
    let n = n.max(1);
    let chars = s.chars().count();
    if chars == 0 {
        return vec![s];
    }
    let per = chars.div_ceil(n).max(1);
    let mut out = Vec::with_capacity(n);
    let mut start = 0;
    for (count, (i, _)) in s.char_indices().enumerate() {
        if count > 0 && count % per == 0 {
            out.push(&s[start..i]);
            start = i;
        }
    }
    out.push(&s[start..]);
    out
}

/// How the request asks for tools to be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ToolChoice {
    /// `auto`, `required`, `any`, or absent: the mock always calls tools when there are any.
    Auto,
    /// `none`: never call tools.
    None,
    /// A specific function/tool by name.
    Named(String),
}

/// The provider-neutral view of a chat request that the reply rule needs.
#[derive(Clone, Debug)]
pub(crate) struct Conversation {
    /// Words across every message's text (system prompt included).
    pub prompt_words: usize,
    /// Text of the last user message (text parts joined with a space).
    pub last_user_text: String,
    /// Number of image parts in the last user message.
    pub last_user_images: usize,
    /// When the conversation ends with a tool result: its text.
    pub tool_result: Option<String>,
    /// Names of the tools offered, in order.
    pub tools: Vec<String>,
    pub tool_choice: ToolChoice,
    /// False when parallel tool calls were disabled.
    pub parallel: bool,
    pub max_tokens: Option<u64>,
    pub stop: Vec<String>,
    /// Reply content must be a JSON object (`response_format` json_object/json_schema).
    pub json_mode: bool,
}

impl Default for Conversation {
    fn default() -> Self {
        Conversation {
            prompt_words: 0,
            last_user_text: String::new(),
            last_user_images: 0,
            tool_result: None,
            tools: Vec::new(),
            tool_choice: ToolChoice::Auto,
            parallel: true,
            max_tokens: None,
            stop: Vec::new(),
            json_mode: false,
        }
    }
}

/// Why generation ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Finish {
    EndTurn,
    MaxTokens,
    StopSequence(String),
    ToolUse,
}

#[derive(Clone, Debug)]
pub(crate) struct PlannedToolCall {
    pub name: String,
    /// The input object `{"input": <last user text>}`.
    pub input: Value,
    /// `input` serialized compactly.
    pub arguments: String,
}

#[derive(Clone, Debug)]
pub(crate) struct Outcome {
    /// Reply text (None when tools are called).
    pub text: Option<String>,
    pub tool_calls: Vec<PlannedToolCall>,
    pub finish: Finish,
    /// Completion "tokens" for one choice.
    pub completion_tokens: usize,
}

impl Outcome {
    /// Number of streamed token events for one choice (used to model non-stream latency).
    pub fn token_events(&self) -> usize {
        match &self.text {
            Some(t) => word_chunks(t).len().max(1),
            None => self.tool_calls.len() * 4,
        }
    }
}

/// The deterministic reply rule shared by every provider.
pub(crate) fn generate(conv: &Conversation) -> Outcome {
    let wants_tools = conv.tool_result.is_none()
        && !conv.tools.is_empty()
        && conv.tool_choice != ToolChoice::None;
    if wants_tools {
        let names: Vec<String> = match &conv.tool_choice {
            ToolChoice::Named(n) => vec![n.clone()],
            _ if conv.tools.len() >= 2 && conv.parallel => conv.tools[..2].to_vec(),
            _ => conv.tools[..1].to_vec(),
        };
        let input = serde_json::json!({ "input": conv.last_user_text });
        let arguments = input.to_string();
        let calls: Vec<PlannedToolCall> = names
            .into_iter()
            .map(|name| PlannedToolCall {
                name,
                input: input.clone(),
                arguments: arguments.clone(),
            })
            .collect();
        let completion_tokens = calls
            .iter()
            .map(|c| count_words(&c.arguments))
            .sum::<usize>()
            .max(1);
        return Outcome {
            text: None,
            tool_calls: calls,
            finish: Finish::ToolUse,
            completion_tokens,
        };
    }

    let mut reply = match &conv.tool_result {
        Some(r) => format!("Mock reply to tool result: {r}"),
        None => {
            let mut s = format!("Mock reply to: {}", conv.last_user_text);
            for _ in 0..conv.last_user_images {
                s.push_str(" [1 image]");
            }
            s
        }
    };
    let mut finish = Finish::EndTurn;

    // Stop sequences: cut at the earliest occurrence.
    let mut cut: Option<(usize, &str)> = None;
    for s in conv.stop.iter().filter(|s| !s.is_empty()) {
        if let Some(pos) = reply.find(s.as_str()) {
            if cut.is_none_or(|(p, _)| pos < p) {
                cut = Some((pos, s));
            }
        }
    }
    if let Some((pos, s)) = cut {
        reply.truncate(pos);
        finish = Finish::StopSequence(s.to_owned());
    }

    // max_tokens: truncate to that many words.
    if let Some(max) = conv.max_tokens {
        let max = usize::try_from(max).unwrap_or(usize::MAX);
        if count_words(&reply) > max {
            let chunks = word_chunks(&reply);
            let kept: String = chunks.iter().take(max).copied().collect();
            reply = kept.trim_end().to_owned();
            finish = Finish::MaxTokens;
        }
    }

    if conv.json_mode {
        reply = serde_json::json!({ "reply": reply }).to_string();
    }
    let completion_tokens = count_words(&reply).max(1);
    Outcome {
        text: Some(reply),
        tool_calls: Vec::new(),
        finish,
        completion_tokens,
    }
}

/// Appends `piece` to `out`, separated by a space (empty pieces are skipped).
pub(crate) fn push_joined(out: &mut String, piece: &str) {
    if piece.is_empty() {
        return;
    }
    if !out.is_empty() {
        out.push(' ');
    }
    out.push_str(piece);
}

fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Deterministic embedding of `text`: `dims` floats in [-1, 1), derived from a
/// hash of the text only (the same text gives the same vector on every provider).
pub fn embedding_vector(text: &str, dims: usize) -> Vec<f32> {
    let mut state = fnv1a64(text.as_bytes());
    (0..dims)
        .map(|_| {
            let bits = splitmix64(&mut state) >> 40; // 24 bits: exact in f32
            #[allow(clippy::cast_precision_loss)]
            let unit = bits as f32 / 16_777_216.0;
            unit * 2.0 - 1.0
        })
        .collect()
}

/// L2-normalizes `v` in place (no-op for the zero vector).
pub(crate) fn normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        for x in v.iter_mut() {
            *x /= norm;
        }
    }
}

/// Little-endian f32 bytes, base64 (standard alphabet, padded) — OpenAI's
/// `encoding_format: "base64"`.
pub(crate) fn base64_f32(v: &[f32]) -> String {
    use base64::Engine as _;
    let mut bytes = Vec::with_capacity(v.len() * 4);
    for x in v {
        bytes.extend_from_slice(&x.to_le_bytes());
    }
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_roundtrip() {
        for s in [
            "",
            "a",
            "a b",
            " lead  two\nthree ",
            "Mock reply to: hi there",
        ] {
            assert_eq!(word_chunks(s).concat(), s);
        }
        assert_eq!(word_chunks("a b  c"), vec!["a ", "b  ", "c"]);
        assert_eq!(word_chunks(" a b"), vec![" a ", "b"]);
    }

    #[test]
    fn pieces() {
        let s = r#"{"input":"héllo"}"#;
        let p = split_pieces(s, 3);
        assert_eq!(p.len(), 3);
        assert_eq!(p.concat(), s);
        assert!(p.iter().all(|x| !x.is_empty()));
        assert_eq!(split_pieces("ab", 3).concat(), "ab");
    }

    #[test]
    fn reply_rules() {
        let mut c = Conversation {
            last_user_text: "hello big world".into(),
            ..Conversation::default()
        };
        let o = generate(&c);
        assert_eq!(o.text.as_deref(), Some("Mock reply to: hello big world"));
        assert_eq!(o.completion_tokens, 6);
        c.max_tokens = Some(4);
        let o = generate(&c);
        assert_eq!(o.text.as_deref(), Some("Mock reply to: hello"));
        assert_eq!(o.finish, Finish::MaxTokens);
        c.max_tokens = None;
        c.stop = vec!["world".into(), "big".into()];
        let o = generate(&c);
        assert_eq!(o.text.as_deref(), Some("Mock reply to: hello "));
        assert_eq!(o.finish, Finish::StopSequence("big".into()));
    }

    #[test]
    fn embeddings_are_deterministic_and_bounded() {
        let a = embedding_vector("x", 64);
        assert_eq!(a, embedding_vector("x", 64));
        assert_ne!(a, embedding_vector("y", 64));
        assert!(a.iter().all(|v| (-1.0..=1.0).contains(v)));
    }
}
