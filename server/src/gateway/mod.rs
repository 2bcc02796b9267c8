//! The provider-neutral core a request passes through.

pub mod cache;
pub mod guardrails;
pub mod health;
pub mod history;
pub mod limits;
pub mod pipeline;
pub mod prompts;
pub mod queue;
pub mod router;
pub mod tokens;
pub mod types;
