//! The built-in `demo/` provider: answers with a canned text, streamed word by
//! word, so the API and the playground can be tried on a machine with no
//! provider credentials. It never calls out.

use super::{completion_id, now_secs, ChunkStream, ProviderError};
use crate::config::DeploymentConfig;
use crate::gateway::types::{
    ChatChunk, ChatRequest, ChatResponse, Delta, Embedding, EmbeddingData, EmbeddingRequest,
    EmbeddingResponse, EmbeddingUsage, Usage,
};
use futures::StreamExt;
use std::time::Duration;

const ANSWER: &str =
    "Hello from Tollgate's demo model! This answer is canned and streamed word by word, \
so you can try the API and the playground without any provider credentials. Add a provider to your \
config.yaml (OpenAI, Anthropic, Bedrock, Ollama, …) and the same request reaches a real model.";

pub struct Demo {
    model: String,
    chunk_delay: Duration,
}

impl Demo {
    pub fn new(d: &DeploymentConfig) -> Self {
        Demo {
            model: d.upstream_model.clone(),
            chunk_delay: d.demo_chunk_delay,
        }
    }

    fn answer(req: &ChatRequest) -> (String, &'static str) {
        let words: Vec<&str> = ANSWER.split_inclusive(' ').collect();
        match req.max_output_tokens() {
            Some(max) if (max as usize) < words.len() => (words[..max as usize].concat(), "length"),
            _ => (ANSWER.to_string(), "stop"),
        }
    }

    fn usage(req: &ChatRequest, answer: &str) -> Usage {
        let prompt: usize = req
            .messages
            .iter()
            .map(|m| m.text_content().split_whitespace().count())
            .sum();
        Usage::new(prompt as u64, answer.split_whitespace().count() as u64)
    }

    pub async fn chat(&self, req: ChatRequest) -> Result<ChatResponse, ProviderError> {
        let (text, finish) = Self::answer(&req);
        let usage = Self::usage(&req, &text);
        let mut resp = ChatResponse::single(
            completion_id(),
            now_secs(),
            self.model.clone(),
            text,
            vec![],
            Some(finish.into()),
            Some(usage),
        );
        resp.system_fingerprint = Some("tollgate-demo".into());
        Ok(resp)
    }

    pub async fn chat_stream(&self, req: ChatRequest) -> Result<ChunkStream, ProviderError> {
        let (text, finish) = Self::answer(&req);
        let usage = Self::usage(&req, &text);
        let (id, created, model, delay) = (
            completion_id(),
            now_secs(),
            self.model.clone(),
            self.chunk_delay,
        );
        let mut chunks = vec![ChatChunk::delta(
            &id,
            created,
            &model,
            Delta {
                role: Some("assistant".into()),
                content: Some(String::new()),
                ..Default::default()
            },
            None,
        )];
        for word in text.split_inclusive(' ') {
            chunks.push(ChatChunk::delta(
                &id,
                created,
                &model,
                Delta {
                    content: Some(word.to_string()),
                    ..Default::default()
                },
                None,
            ));
        }
        chunks.push(ChatChunk::delta(
            &id,
            created,
            &model,
            Delta::default(),
            Some(finish.into()),
        ));
        chunks.push(ChatChunk::usage_only(&id, created, &model, usage));
        let first = chunks.len();
        let stream =
            futures::stream::iter(chunks.into_iter().enumerate()).then(move |(i, c)| async move {
                // The first chunk comes at once; the rest are paced like a model typing.
                if i > 0 && i + 1 < first && !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                Ok::<_, ProviderError>(c)
            });
        Ok(stream.boxed())
    }

    pub async fn embed(&self, req: EmbeddingRequest) -> Result<EmbeddingResponse, ProviderError> {
        let texts = req
            .input
            .texts()
            .ok_or_else(|| super::token_input_unsupported("the demo provider"))?;
        let dims = req.dimensions.unwrap_or(16) as usize;
        let data = texts
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let v = pseudo_embedding(t, dims);
                EmbeddingData {
                    object: "embedding".into(),
                    index: i as u32,
                    embedding: match req.encoding_format {
                        Some(crate::gateway::types::EncodingFormat::Base64) => {
                            Embedding::base64_of(&v)
                        }
                        _ => Embedding::Float(v),
                    },
                }
            })
            .collect();
        let tokens: u64 = texts
            .iter()
            .map(|t| t.split_whitespace().count() as u64)
            .sum();
        Ok(EmbeddingResponse {
            object: "list".into(),
            data,
            model: self.model.clone(),
            usage: EmbeddingUsage {
                prompt_tokens: tokens,
                total_tokens: tokens,
            },
        })
    }
}

/// A deterministic unit vector derived from the text (same text, same vector).
fn pseudo_embedding(text: &str, dims: usize) -> Vec<f32> {
    use sha2::{Digest, Sha256};
    let mut out = Vec::with_capacity(dims);
    let mut block = 0u32;
    while out.len() < dims {
        let digest = Sha256::new()
            .chain_update(text.as_bytes())
            .chain_update(block.to_le_bytes())
            .finalize();
        for b in digest.iter() {
            if out.len() == dims {
                break;
            }
            out.push((*b as f32 / 127.5) - 1.0);
        }
        block += 1;
    }
    let norm = out
        .iter()
        .map(|x| x * x)
        .sum::<f32>()
        .sqrt()
        .max(f32::EPSILON);
    out.iter().map(|x| x / norm).collect()
}
