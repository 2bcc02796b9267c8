//! The response cache (`litellm_settings.cache: true`): answers to repeated
//! requests, kept in this process (memory bounded by `moka`) or in Redis
//! (shared by every process), keyed by the model group and every request field
//! that changes the answer. A hit costs nothing and is logged as a hit; a
//! streamed request is answered from the cache as a stream.

use super::types::{
    ChatChunk, ChatResponse, Choice, ChunkChoice, Delta, FunctionCall, FunctionCallDelta,
    ResponseMessage, ToolCall, ToolCallDelta, Usage,
};
use crate::config::CacheConfig;
use crate::counters::Counters;
use axum::http::{header::CACHE_CONTROL, HeaderMap};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// The kinds of call the cache answers (`supported_call_types`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallKind {
    Chat,
    Embeddings,
}

/// What a request asks of the cache: the body's `cache: {…}` (LiteLLM's
/// names) and the `Cache-Control` header.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Directives {
    /// Do not answer from the cache (the answer is still kept).
    pub no_cache: bool,
    /// Do not keep this answer.
    pub no_store: bool,
    /// Keep this answer this long instead of the configured `ttl`.
    pub ttl: Option<Duration>,
    /// Only accept a kept answer at most this old.
    pub s_maxage: Option<Duration>,
    pub namespace: Option<String>,
    /// `use-cache`: opt in under `mode: default_off` (or out under `default_on`).
    pub use_cache: Option<bool>,
    /// The controls the body set, for keys' `allowed_cache_controls`.
    pub body_fields: Vec<String>,
}

impl Directives {
    /// `Cache-Control: no-cache`, `no-store`, `s-maxage=N` (or `max-age=N`).
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let mut d = Directives::default();
        for v in headers.get_all(CACHE_CONTROL) {
            for part in v.to_str().unwrap_or_default().split(',') {
                let (name, value) = part.trim().split_once('=').unwrap_or((part.trim(), ""));
                match name.to_ascii_lowercase().as_str() {
                    "no-cache" => d.no_cache = true,
                    "no-store" => d.no_store = true,
                    "s-maxage" | "max-age" => {
                        if let Ok(n) = value.trim_matches('"').parse::<u64>() {
                            d.s_maxage = Some(Duration::from_secs(n));
                        }
                    }
                    _ => {}
                }
            }
        }
        d
    }

    /// Adds the body's `cache` object; the error names what is wrong.
    pub fn merge_body(&mut self, v: Value) -> Result<(), String> {
        let Value::Object(m) = v else {
            return Err("expected an object such as {\"no-cache\": true}".into());
        };
        let flag = |k: &str, v: &Value| {
            v.as_bool()
                .ok_or_else(|| format!("'{k}' must be true or false"))
        };
        let secs = |k: &str, v: &Value| {
            v.as_f64()
                .filter(|s| s.is_finite() && *s >= 0.0)
                .map(Duration::from_secs_f64)
                .ok_or_else(|| format!("'{k}' must be a non-negative number of seconds"))
        };
        for (k, v) in &m {
            match k.as_str() {
                "no-cache" => self.no_cache |= flag(k, v)?,
                "no-store" => self.no_store |= flag(k, v)?,
                "use-cache" => self.use_cache = Some(flag(k, v)?),
                "ttl" => self.ttl = Some(secs(k, v)?),
                "s-maxage" => self.s_maxage = Some(secs(k, v)?),
                "namespace" => {
                    self.namespace = Some(
                        v.as_str()
                            .filter(|s| !s.is_empty())
                            .ok_or("'namespace' must be a non-empty string")?
                            .to_string(),
                    )
                }
                other => {
                    return Err(format!(
                        "unknown field {other:?}: use no-cache, no-store, ttl, s-maxage, namespace or use-cache"
                    ))
                }
            }
            self.body_fields.push(k.clone());
        }
        Ok(())
    }
}

/// How one call uses the cache.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The cache key (shown to the caller in `x-litellm-cache-key`).
    pub key: String,
    /// Look for a kept answer first.
    pub read: bool,
    /// Keep the answer, for this long.
    pub write: Option<Duration>,
    /// Only accept a kept answer at most this old.
    pub max_age: Option<Duration>,
}

/// A kept answer: when, which deployment gave it, and the answer.
#[derive(Debug, Serialize, Deserialize)]
pub struct Entry<T, D = String> {
    pub at_ms: i64,
    pub deployment: D,
    pub body: T,
}

/// One kept answer in memory: the encoded entry and how long it lives.
struct Kept {
    bytes: Vec<u8>,
    ttl: Duration,
}

struct PerEntryTtl;

impl moka::Expiry<String, Arc<Kept>> for PerEntryTtl {
    fn expire_after_create(
        &self,
        _key: &String,
        value: &Arc<Kept>,
        _created_at: std::time::Instant,
    ) -> Option<Duration> {
        Some(value.ttl)
    }

    fn expire_after_update(
        &self,
        _key: &String,
        value: &Arc<Kept>,
        _updated_at: std::time::Instant,
        _duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        Some(value.ttl)
    }
}

enum Store {
    Local(moka::sync::Cache<String, Arc<Kept>>),
    Redis(Arc<Counters>),
}

pub struct ResponseCache {
    cfg: CacheConfig,
    store: Store,
}

/// Names of kept answers in Redis, under the process-wide prefix.
const REDIS_SPACE: &str = "cache:";

impl ResponseCache {
    /// The cache `cfg` describes. A Redis cache on the Redis the limits use
    /// shares its connection (`shared`); another Redis gets its own.
    pub fn new(
        cfg: CacheConfig,
        shared: Option<(&str, &Arc<Counters>)>,
        prefix: &str,
        stop: &tokio_util::sync::CancellationToken,
    ) -> Result<Self, String> {
        let store = match cfg.redis.as_deref() {
            None => Store::Local(
                moka::sync::Cache::builder()
                    .max_capacity(cfg.max_memory_bytes)
                    .weigher(|k: &String, v: &Arc<Kept>| {
                        u32::try_from(k.len() + v.bytes.len() + 64).unwrap_or(u32::MAX)
                    })
                    .expire_after(PerEntryTtl)
                    .build(),
            ),
            Some(url) => match shared {
                Some((shared_url, counters)) if shared_url == url => {
                    Store::Redis(Arc::clone(counters))
                }
                _ => {
                    let c = Arc::new(Counters::with_redis(url, prefix)?);
                    c.spawn_probe(stop.clone());
                    Store::Redis(c)
                }
            },
        };
        Ok(ResponseCache { cfg, store })
    }

    /// `local` or `redis`.
    pub fn kind(&self) -> &'static str {
        match self.store {
            Store::Local(_) => "local",
            Store::Redis(_) => "redis",
        }
    }

    /// How a call of `kind` to `group` uses the cache, if at all. `material`
    /// is the request as it changes the answer (called only when needed).
    pub fn plan(
        &self,
        kind: CallKind,
        group: &str,
        d: &Directives,
        material: impl FnOnce() -> Vec<u8>,
    ) -> Option<Plan> {
        let supported = match kind {
            CallKind::Chat => self.cfg.chat,
            CallKind::Embeddings => self.cfg.embeddings,
        };
        if !supported || !d.use_cache.unwrap_or(self.cfg.default_on) {
            return None;
        }
        let read = !d.no_cache;
        let write = (!d.no_store).then(|| d.ttl.unwrap_or(self.cfg.ttl));
        if !read && write.is_none() {
            return None;
        }
        let mut h = Sha256::new();
        h.update(match kind {
            CallKind::Chat => b"chat\0".as_slice(),
            CallKind::Embeddings => b"embeddings\0".as_slice(),
        });
        h.update(group.as_bytes());
        h.update(b"\0");
        h.update(material());
        let hash = hex::encode(h.finalize());
        let key = match d.namespace.as_deref().or(self.cfg.namespace.as_deref()) {
            Some(ns) => format!("{ns}:{hash}"),
            None => hash,
        };
        Some(Plan {
            key,
            read,
            write: write.filter(|t| !t.is_zero()),
            max_age: d.s_maxage,
        })
    }

    /// The kept answer for `plan`, if there is one young enough.
    pub async fn get<T: DeserializeOwned>(&self, plan: &Plan) -> Option<Entry<T>> {
        if !plan.read {
            return None;
        }
        let entry: Entry<T> = match &self.store {
            Store::Local(c) => serde_json::from_slice(&c.get(&plan.key)?.bytes).ok()?,
            Store::Redis(r) => {
                let bytes = r
                    .blob_get(&format!("{REDIS_SPACE}{}", plan.key))
                    .await
                    .ok()??;
                serde_json::from_slice(&bytes).ok()?
            }
        };
        if let Some(max) = plan.max_age {
            let age = crate::logs::now_ms().saturating_sub(entry.at_ms);
            if age as u128 > max.as_millis() {
                return None;
            }
        }
        Some(entry)
    }

    /// Keeps an answer (off the request path for Redis). Answers larger than
    /// `max_size_per_item` are not kept.
    pub fn put<T: Serialize>(&self, plan: &Plan, deployment: &str, body: &T) {
        let Some(ttl) = plan.write else {
            return;
        };
        let entry = Entry {
            at_ms: crate::logs::now_ms(),
            deployment,
            body,
        };
        let Ok(bytes) = serde_json::to_vec(&entry) else {
            return;
        };
        if bytes.len() > self.cfg.max_item_bytes {
            return;
        }
        match &self.store {
            Store::Local(c) => c.insert(plan.key.clone(), Arc::new(Kept { bytes, ttl })),
            Store::Redis(r) => {
                let r = Arc::clone(r);
                let name = format!("{REDIS_SPACE}{}", plan.key);
                tokio::spawn(async move { r.blob_put(&name, &bytes, ttl).await });
            }
        }
    }

    /// Forgets the answers under `keys`; how many there were.
    pub async fn delete(&self, keys: &[String]) -> Result<u64, String> {
        match &self.store {
            Store::Local(c) => {
                let mut n = 0;
                for k in keys {
                    n += u64::from(c.remove(k).is_some());
                }
                Ok(n)
            }
            Store::Redis(r) => {
                let names: Vec<String> = keys.iter().map(|k| format!("{REDIS_SPACE}{k}")).collect();
                r.blob_del(&names).await
            }
        }
    }

    /// Forgets every kept answer; how many there were (Redis only counts).
    pub async fn clear(&self) -> Result<u64, String> {
        match &self.store {
            Store::Local(c) => {
                c.run_pending_tasks();
                let n = c.entry_count();
                c.invalidate_all();
                c.run_pending_tasks();
                Ok(n)
            }
            Store::Redis(r) => r.blob_clear(REDIS_SPACE).await,
        }
    }

    /// Whether the store answers, and what it holds (for `/cache/ping`).
    pub async fn ping(&self) -> Result<Value, String> {
        match &self.store {
            Store::Local(c) => {
                c.run_pending_tasks();
                Ok(serde_json::json!({
                    "entries": c.entry_count(),
                    "bytes": c.weighted_size(),
                    "max_bytes": self.cfg.max_memory_bytes,
                }))
            }
            Store::Redis(r) => match r.blob_get("cache-ping").await {
                Ok(_) => Ok(serde_json::json!({})),
                Err(()) => Err("Redis is not reachable".into()),
            },
        }
    }

    pub fn config(&self) -> &CacheConfig {
        &self.cfg
    }
}

/// A chat request as it decides the answer: everything but how it is
/// delivered (`stream`, `stream_options`) and the model name (the key names the group).
pub fn chat_material(req: &super::types::ChatRequest, server_model: Option<&str>) -> Vec<u8> {
    let mut v = serde_json::to_value(req).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut v {
        m.remove("stream");
        m.remove("stream_options");
        m.remove("model");
        if let Some(s) = server_model {
            m.insert("server_model".into(), Value::String(s.to_string()));
        }
    }
    serde_json::to_vec(&v).unwrap_or_default()
}

/// An embeddings request as it decides the answer.
pub fn embeddings_material(
    req: &super::types::EmbeddingRequest,
    server_model: Option<&str>,
) -> Vec<u8> {
    let mut v = serde_json::to_value(req).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut v {
        m.remove("model");
        if let Some(s) = server_model {
            m.insert("server_model".into(), Value::String(s.to_string()));
        }
    }
    serde_json::to_vec(&v).unwrap_or_default()
}

/// A kept answer replayed as a stream: per choice, its text (with its
/// logprobs), its tool calls, its finish reason; then the usage.
pub fn to_chunks(resp: &ChatResponse) -> Vec<ChatChunk> {
    let chunk = |choices: Vec<ChunkChoice>, usage: Option<Usage>| ChatChunk {
        id: resp.id.clone(),
        object: "chat.completion.chunk".into(),
        created: resp.created,
        model: resp.model.clone(),
        system_fingerprint: resp.system_fingerprint.clone(),
        choices,
        usage,
        extra: Map::new(),
    };
    let mut out = Vec::new();
    for c in &resp.choices {
        let m = &c.message;
        out.push(chunk(
            vec![ChunkChoice {
                index: c.index,
                delta: Delta {
                    role: Some(m.role.clone()),
                    content: m.content.clone(),
                    refusal: m.refusal.clone(),
                    tool_calls: None,
                    extra: Map::new(),
                },
                logprobs: c.logprobs.clone(),
                finish_reason: None,
            }],
            None,
        ));
        for (i, call) in m.tool_calls.iter().flatten().enumerate() {
            out.push(chunk(
                vec![ChunkChoice {
                    index: c.index,
                    delta: Delta {
                        tool_calls: Some(vec![ToolCallDelta {
                            index: i as u32,
                            id: Some(call.id.clone()),
                            kind: Some(call.kind.clone()),
                            function: Some(FunctionCallDelta {
                                name: Some(call.function.name.clone()),
                                arguments: Some(call.function.arguments.clone()),
                            }),
                        }]),
                        ..Default::default()
                    },
                    logprobs: None,
                    finish_reason: None,
                }],
                None,
            ));
        }
        out.push(chunk(
            vec![ChunkChoice {
                index: c.index,
                delta: Delta::default(),
                logprobs: None,
                finish_reason: c.finish_reason.clone(),
            }],
            None,
        ));
    }
    if let Some(u) = &resp.usage {
        out.push(chunk(Vec::new(), Some(u.clone())));
    }
    out
}

/// Builds the whole answer from a stream's chunks, to keep it.
#[derive(Default)]
pub struct Assembler {
    head: Option<(String, i64, String, Option<String>)>,
    choices: BTreeMap<u32, Building>,
    usage: Option<Usage>,
    /// Something streamed that a replay could not reproduce (logprobs).
    unfit: bool,
}

#[derive(Default)]
struct Building {
    role: Option<String>,
    text: Option<String>,
    refusal: Option<String>,
    calls: BTreeMap<u32, (String, String, String, String)>,
    finish: Option<String>,
}

impl Assembler {
    pub fn push(&mut self, chunk: &ChatChunk) {
        if self.head.is_none() {
            self.head = Some((
                chunk.id.clone(),
                chunk.created,
                chunk.model.clone(),
                chunk.system_fingerprint.clone(),
            ));
        }
        if let Some(u) = &chunk.usage {
            self.usage = Some(u.clone());
        }
        for c in &chunk.choices {
            if c.logprobs.as_ref().is_some_and(|l| !l.is_null()) {
                self.unfit = true;
            }
            let b = self.choices.entry(c.index).or_default();
            let d = &c.delta;
            if let Some(r) = &d.role {
                b.role = Some(r.clone());
            }
            if let Some(t) = &d.content {
                b.text.get_or_insert_with(String::new).push_str(t);
            }
            if let Some(t) = &d.refusal {
                b.refusal.get_or_insert_with(String::new).push_str(t);
            }
            for tc in d.tool_calls.iter().flatten() {
                let e = b.calls.entry(tc.index).or_default();
                if let Some(id) = &tc.id {
                    e.0.clone_from(id);
                }
                if let Some(k) = &tc.kind {
                    e.1.clone_from(k);
                }
                if let Some(f) = &tc.function {
                    if let Some(n) = &f.name {
                        e.2.push_str(n);
                    }
                    if let Some(a) = &f.arguments {
                        e.3.push_str(a);
                    }
                }
            }
            if let Some(f) = &c.finish_reason {
                b.finish = Some(f.clone());
            }
        }
    }

    /// The whole answer, when it can be replayed faithfully and is complete.
    pub fn finish(self, usage: Option<&Usage>) -> Option<ChatResponse> {
        if self.unfit || self.choices.is_empty() {
            return None;
        }
        let (id, created, model, system_fingerprint) = self.head?;
        let mut choices = Vec::with_capacity(self.choices.len());
        for (index, b) in self.choices {
            // An answer cut short (no finish reason) is not kept.
            let finish_reason = Some(b.finish?);
            let calls: Vec<ToolCall> = b
                .calls
                .into_values()
                .map(|(id, kind, name, arguments)| ToolCall {
                    id,
                    kind: if kind.is_empty() {
                        "function".into()
                    } else {
                        kind
                    },
                    function: FunctionCall { name, arguments },
                })
                .collect();
            choices.push(Choice {
                index,
                message: ResponseMessage {
                    role: b.role.unwrap_or_else(|| "assistant".into()),
                    content: b.text,
                    refusal: b.refusal,
                    tool_calls: (!calls.is_empty()).then_some(calls),
                    extra: Map::new(),
                },
                logprobs: None,
                finish_reason,
            });
        }
        Some(ChatResponse {
            id,
            object: "chat.completion".into(),
            created,
            model,
            system_fingerprint,
            choices,
            usage: self.usage.or_else(|| usage.cloned()),
            service_tier: None,
            extra: Map::new(),
        })
    }
}

#[cfg(test)]
mod tests;
