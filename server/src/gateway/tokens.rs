//! Token counts for calls whose provider reported no usage (an upstream that
//! ignores `stream_options.include_usage`, a stream the client left early), so
//! that they are still priced. Counted with OpenAI's `o200k_base` encoding
//! (tiktoken-rs) for every provider, as LiteLLM also falls back to one
//! tokenizer; the encoding is loaded on first use only. Message framing
//! follows OpenAI's published rule: 3 tokens per message, 1 per name, 3 to
//! prime the reply; an image counts as a low-detail image (85 tokens).

use super::types::{
    ChatRequest, ChatResponse, Content, ContentPart, EmbeddingInput, EmbeddingRequest, Usage,
};

const PER_MESSAGE: u64 = 3;
const PER_NAME: u64 = 1;
const REPLY_PRIMING: u64 = 3;
const PER_IMAGE: u64 = 85;

pub fn count(text: &str) -> u64 {
    if text.is_empty() {
        return 0;
    }
    tiktoken_rs::o200k_base_singleton()
        .encode_ordinary(text)
        .len() as u64
}

/// The tokens of an embedding request's input.
pub fn embedding_input(req: &EmbeddingRequest) -> u64 {
    match &req.input {
        EmbeddingInput::One(s) => count(s),
        EmbeddingInput::Many(v) => v.iter().map(|s| count(s)).sum(),
        EmbeddingInput::Tokens(t) => t.len() as u64,
        EmbeddingInput::ManyTokens(t) => t.iter().map(|t| t.len() as u64).sum(),
    }
}

/// The prompt's tokens as the model would see them.
pub fn prompt(req: &ChatRequest) -> u64 {
    let mut n = REPLY_PRIMING;
    for m in &req.messages {
        n += PER_MESSAGE;
        match &m.content {
            Some(Content::Text(t)) => n += count(t),
            Some(Content::Parts(parts)) => {
                for p in parts {
                    n += match p {
                        ContentPart::Text { text } => count(text),
                        ContentPart::Refusal { refusal } => count(refusal),
                        ContentPart::ImageUrl { .. } => PER_IMAGE,
                        ContentPart::InputAudio { input_audio: v }
                        | ContentPart::File { file: v } => count(&v.to_string()),
                    };
                }
            }
            None => {}
        }
        if let Some(name) = &m.name {
            n += PER_NAME + count(name);
        }
        for c in m.tool_calls.iter().flatten() {
            n += count(&c.function.name) + count(&c.function.arguments);
        }
    }
    if let Some(tools) = &req.tools {
        n += serde_json::to_string(tools).map_or(0, |s| count(&s));
    }
    n
}

/// The answer's tokens: its text, refusals and tool calls.
pub fn completion(resp: &ChatResponse) -> u64 {
    resp.choices
        .iter()
        .map(|c| {
            let m = &c.message;
            m.content.as_deref().map_or(0, count)
                + m.refusal.as_deref().map_or(0, count)
                + m.tool_calls
                    .iter()
                    .flatten()
                    .map(|t| count(&t.function.name) + count(&t.function.arguments))
                    .sum::<u64>()
        })
        .sum()
}

/// Usage for a call the provider gave none for.
pub fn estimate(req: &ChatRequest, completion_tokens: u64) -> Usage {
    Usage::new(prompt(req), completion_tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_like_tiktoken() {
        assert_eq!(count(""), 0);
        assert_eq!(count("hello world"), 2);
        assert!(count(&"word ".repeat(100)) >= 100);
    }

    #[test]
    fn prompt_adds_message_framing() {
        let req: ChatRequest = serde_json::from_str(
            r#"{"model":"m","messages":[{"role":"system","content":"hello world"},{"role":"user","content":[{"type":"text","text":"hello world"},{"type":"image_url","image_url":{"url":"data:x"}}]}]}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            prompt(&req),
            REPLY_PRIMING + 2 * PER_MESSAGE + 2 + 2 + PER_IMAGE
        );
    }
}
