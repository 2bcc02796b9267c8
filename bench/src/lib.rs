//! Mock LLM upstreams for Tollgate's tests and benchmarks.
//!
//! One server (one port) speaks three provider wire formats:
//! - OpenAI / Azure OpenAI: `POST /v1/chat/completions`, `/chat/completions`,
//!   `/openai/deployments/{d}/chat/completions`, `POST /v1/embeddings`, `/embeddings`,
//!   `/openai/deployments/{d}/embeddings`, `GET /v1/models`;
//! - Anthropic: `POST /v1/messages` (+ `/v1/messages/count_tokens`);
//! - Bedrock runtime: `POST /model/{id}/converse`, `/converse-stream` (AWS
//!   event-stream), `/invoke` (Titan / Cohere embeddings).
//!
//! Replies are deterministic (`"Mock reply to: <last user text>"`, tokens =
//! whitespace-separated words), with fault injection (`/__mock/faults` or
//! [`MockHandle::push_faults`]), model-name triggers (`fail-500`, `fail-429`,
//! `fail-503`, any `fail-NNN`, `slow-<N>ms`, `no-usage` for an OpenAI answer
//! without usage), context-length errors and
//! request recording (`/__mock/requests` or [`MockHandle::requests`]).
//!
//! [`passthrough`] is the speed-of-light reference proxy for benchmarks.

// Request handlers return the provider-shaped error `Response` as their `Err`.
#![allow(clippy::result_large_err)]

mod anthropic;
mod bedrock;
mod common;
mod config;
mod fault;
mod openai;
pub mod passthrough;
mod server;
mod state;
mod text;

pub use config::MockConfig;
pub use fault::{Fault, FaultKind};
pub use server::{parse_recorded, start, start_on, start_with_listener, MockHandle};
pub use state::RecordedRequest;
pub use text::embedding_vector;
