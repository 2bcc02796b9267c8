//! Chat history by session. `enable_history: true` starts a session and
//! `session_id` continues one: the stored turns are put before the request's
//! new messages (after its system prompt), oldest dropped first when they would
//! not fit the model's context window; after a completed answer, the new turn
//! and the answer are stored. A session belongs to the key that created it and
//! that key's user; for anyone else it does not exist.
//!
//! History is opt-in and needs the store: a continued session costs one read
//! before the call and one write after it (not on the path of other requests).

use super::pipeline::GatewayError;
use super::types::{ChatChunk, ChatRequest, ChatResponse, Message, Role};
use crate::auth::AuthContext;
use crate::state::AppState;
use crate::store::history::SessionRow;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// A call that reads or writes a session.
#[derive(Debug)]
pub struct HistoryCall {
    pub session: SessionRow,
    /// The session is new: created when the first answer is stored.
    pub create: bool,
    /// The request's own (non-system) messages, stored with the answer.
    new_messages: Vec<Value>,
    /// How many stored messages were sent to the model.
    pub turns_sent: usize,
}

fn store_error(e: crate::store::StoreError) -> GatewayError {
    tracing::error!(error = %e, "chat history store failed");
    GatewayError::Unavailable("chat history is unavailable right now; try again".into())
}

/// Whether the caller owns the session: the key that created it, or that key's user.
pub fn owns(auth: &AuthContext, s: &SessionRow) -> bool {
    s.token.as_deref() == auth.key_hash.as_deref()
        || (s.user_id.is_some() && s.user_id.as_deref() == auth.user_id())
}

/// The smallest context window among the group's deployments, if any is known.
fn context_window(state: &AppState, model: &str) -> Option<u64> {
    let router = state.router.load();
    let (_, ds) = router.groups().find(|(name, _)| *name == model)?;
    ds.iter().filter_map(|d| d.context_window()).min()
}

/// Takes `enable_history` / `session_id` out of the request; for a continued
/// session, puts its stored turns in. `model` is the model group called.
pub async fn begin(
    state: &AppState,
    auth: &AuthContext,
    model: &str,
    req: &mut ChatRequest,
) -> Result<Option<HistoryCall>, GatewayError> {
    let enable = match req.extra.remove("enable_history") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => b,
        Some(_) => {
            return Err(GatewayError::Invalid {
                message: "Invalid value for 'enable_history': expected true or false".into(),
                param: Some("enable_history".into()),
            })
        }
    };
    let session_id = match req.extra.remove("session_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s),
        Some(_) => {
            return Err(GatewayError::Invalid {
                message: "Invalid value for 'session_id': expected a session id string".into(),
                param: Some("session_id".into()),
            })
        }
    };
    // Most calls ask for no history: they pay for nothing below.
    if !enable && session_id.is_none() {
        return Ok(None);
    }
    let split = req
        .messages
        .iter()
        .position(|m| !matches!(m.role, Role::System | Role::Developer))
        .unwrap_or(req.messages.len());
    let new_messages: Vec<Value> = req.messages[split..]
        .iter()
        .filter_map(|m| serde_json::to_value(m).ok())
        .collect();
    let Some(id) = session_id else {
        if !enable {
            return Ok(None);
        }
        return Ok(Some(HistoryCall {
            session: SessionRow {
                session_id: uuid::Uuid::new_v4().to_string(),
                token: auth.key_hash.as_deref().map(str::to_string),
                user_id: auth.user_id().map(str::to_string),
                model: model.to_string(),
                created_at: 0,
                updated_at: 0,
                title: None,
            },
            create: true,
            new_messages,
            turns_sent: 0,
        }));
    };
    let session = state
        .store
        .session(&id)
        .await
        .map_err(store_error)?
        .filter(|s| owns(auth, s))
        .ok_or_else(|| GatewayError::NotFound(format!("session_id {id} was not found")))?;
    let stored: Vec<Message> = state
        .store
        .session_messages(&id)
        .await
        .map_err(store_error)?
        .into_iter()
        .filter_map(|v| serde_json::from_value(v).ok())
        .collect();
    let mut keep_from = 0;
    if let Some(window) = context_window(state, model) {
        let reserve = u64::from(req.max_output_tokens().unwrap_or(0));
        let mut probe = req.clone();
        loop {
            probe.messages = req.messages[..split]
                .iter()
                .chain(&stored[keep_from..])
                .chain(&req.messages[split..])
                .cloned()
                .collect();
            if keep_from >= stored.len() || super::tokens::prompt(&probe) + reserve <= window {
                break;
            }
            // Drop the oldest turn; a tool answer never starts the history.
            keep_from += 1;
            while keep_from < stored.len() && stored[keep_from].role == Role::Tool {
                keep_from += 1;
            }
        }
    }
    let turns_sent = stored.len() - keep_from;
    let rest = req.messages.split_off(split);
    req.messages.extend(stored.into_iter().skip(keep_from));
    req.messages.extend(rest);
    Ok(Some(HistoryCall {
        session,
        create: false,
        new_messages,
        turns_sent,
    }))
}

/// The answer's message as stored (OpenAI format).
pub fn answer_message(resp: &ChatResponse) -> Value {
    let m = resp.choices.first().map(|c| &c.message);
    let mut out = json!({"role": "assistant", "content": m.and_then(|m| m.content.clone())});
    if let Some(calls) = m
        .and_then(|m| m.tool_calls.as_ref())
        .filter(|c| !c.is_empty())
    {
        out["tool_calls"] = serde_json::to_value(calls).unwrap_or(Value::Null);
    }
    out
}

/// Stores the new turn and its answer. A failure is logged: the caller already has the answer.
pub async fn record(store: crate::store::Store, call: HistoryCall, answer: Value) {
    let mut messages = call.new_messages;
    messages.push(answer);
    // Boxed: the store's transaction futures are large, and every chat
    // call's future would hold this one inline.
    if let Err(e) = Box::pin(store.append_messages(&call.session, call.create, &messages)).await {
        tracing::error!(error = %e, session_id = %call.session.session_id, "the turn could not be stored in the chat history");
    }
}

/// Collects a streamed answer into the message that is stored.
#[derive(Debug, Default)]
pub struct StreamedAnswer {
    text: String,
    /// Tool calls by their index: id, name, arguments.
    calls: BTreeMap<u32, (String, String, String)>,
}

impl StreamedAnswer {
    pub fn push(&mut self, chunk: &ChatChunk) {
        for c in chunk.choices.iter().filter(|c| c.index == 0) {
            if let Some(t) = &c.delta.content {
                self.text.push_str(t);
            }
            for tc in c.delta.tool_calls.iter().flatten() {
                let e = self.calls.entry(tc.index).or_default();
                if let Some(id) = &tc.id {
                    e.0.clone_from(id);
                }
                if let Some(f) = &tc.function {
                    if let Some(n) = &f.name {
                        e.1.push_str(n);
                    }
                    if let Some(a) = &f.arguments {
                        e.2.push_str(a);
                    }
                }
            }
        }
    }

    pub fn message(&self) -> Value {
        let mut out = json!({"role": "assistant", "content": if self.text.is_empty() { Value::Null } else { Value::String(self.text.clone()) }});
        if !self.calls.is_empty() {
            out["tool_calls"] = Value::Array(
                self.calls
                    .values()
                    .map(|(id, name, args)| json!({"id": id, "type": "function", "function": {"name": name, "arguments": args}}))
                    .collect(),
            );
        }
        out
    }
}
