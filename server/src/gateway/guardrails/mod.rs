//! Guardrails (LiteLLM's `guardrails:`): checks on what goes to a model and
//! what comes back, for every provider.
//!
//! A call's guardrails are those `default_on`, those its key or team has
//! (`guardrails`, or `metadata.guardrails`), and those the request names
//! (`guardrails: [...]` in the body). Each runs in its modes: `pre_call` on the
//! input before the call (it may mask it), `during_call` on the input while the
//! call runs (the answer waits; it can only block), `post_call` on the answer
//! (streams: as the text arrives, holding back only what a match could still
//! span). Masked values get numbered placeholders (`[EMAIL_1]`); with `unmask`
//! the caller's answer gets the originals back, while logs, history and the
//! cache keep the placeholders.

mod bedrock;
pub mod content;
mod stream;

use crate::config::{GuardrailConfig, GuardrailKind, GuardrailMode, PatternSource};
use crate::directory::KeyEntry;
use crate::gateway::types::{ChatRequest, ChatResponse, Content, ContentPart};
use content::{Action, ContentFilter, Masks, Word};
use serde_json::Value;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// The guardrails a key's or team's settings turn on: `guardrails`, and
/// `metadata.guardrails` as LiteLLM also reads.
pub fn named_in(s: &crate::directory::records::Settings) -> impl Iterator<Item = &str> {
    let meta: &[Value] = match s.metadata.get("guardrails") {
        Some(Value::Array(a)) => a,
        _ => &[],
    };
    s.guardrails
        .iter()
        .flatten()
        .map(String::as_str)
        .chain(meta.iter().filter_map(Value::as_str))
}

pub use stream::{bedrock_windows, StreamGuard, WindowTrail};

/// A guardrail stopped the call: it refused the text, or (`unavailable`) it
/// could not be asked, and the call is not let through unchecked.
#[derive(Debug, Clone)]
pub struct Intervention {
    pub guardrail: String,
    pub message: String,
    pub unavailable: bool,
}

/// Every configured guardrail.
#[derive(Default)]
pub struct Guardrails {
    list: Vec<Arc<Guardrail>>,
}

pub struct Guardrail {
    pub name: String,
    pub modes: Vec<GuardrailMode>,
    pub default_on: bool,
    pub unmask: bool,
    pub provider: &'static str,
    pub info: Option<Value>,
    engine: Engine,
    /// Bedrock on streams: characters checked at a time.
    window: usize,
    /// Checks run and their total time, for `/guardrails/list`.
    pub checks: AtomicU64,
    pub micros: AtomicU64,
    pub interventions: AtomicU64,
}

enum Engine {
    Content(ContentFilter),
    Bedrock(bedrock::BedrockGuard),
}

impl Guardrails {
    /// Compiles the configured guardrails; `Err` names the config path and why.
    pub async fn build(cfgs: &[GuardrailConfig]) -> Result<Guardrails, (String, String)> {
        let mut list = Vec::new();
        for c in cfgs {
            let engine = match &c.kind {
                GuardrailKind::Content {
                    patterns,
                    words,
                    max_input_chars,
                } => {
                    let mut compiled = Vec::new();
                    for p in patterns {
                        let action = if p.block { Action::Block } else { Action::Mask };
                        match &p.source {
                            PatternSource::Prebuilt(n) => compiled.extend(
                                content::prebuilt(n, action).map_err(|e| (p.path.clone(), e))?,
                            ),
                            PatternSource::Regex(re) => compiled.push(
                                content::custom(&p.name, re, action)
                                    .map_err(|e| (format!("{}.pattern", p.path), e))?,
                            ),
                        }
                    }
                    let words = words
                        .iter()
                        .map(|w| Word {
                            keyword: w.keyword.clone(),
                            action: if w.block { Action::Block } else { Action::Mask },
                            description: w.description.clone(),
                        })
                        .collect();
                    Engine::Content(
                        ContentFilter::new(compiled, words, *max_input_chars)
                            .map_err(|e| (format!("{}.litellm_params", c.path), e))?,
                    )
                }
                GuardrailKind::Bedrock {
                    identifier,
                    version,
                    aws,
                    mask_request,
                    mask_response,
                } => Engine::Bedrock(
                    bedrock::BedrockGuard::new(
                        identifier,
                        version,
                        aws,
                        *mask_request,
                        *mask_response,
                    )
                    .await,
                ),
            };
            list.push(Arc::new(Guardrail {
                window: c.stream_window_chars.unwrap_or(400),
                name: c.name.clone(),
                modes: c.modes.clone(),
                default_on: c.default_on,
                unmask: c.unmask,
                provider: c.kind.provider(),
                info: c.info.clone(),
                engine,
                checks: AtomicU64::new(0),
                micros: AtomicU64::new(0),
                interventions: AtomicU64::new(0),
            }));
        }
        Ok(Guardrails { list })
    }

    pub fn list(&self) -> &[Arc<Guardrail>] {
        &self.list
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The guardrails of one call: `default_on`, the key's and team's, and
    /// `asked` (from the body). An unknown name is an error naming it.
    pub fn select(&self, asked: &[String], key: Option<&KeyEntry>) -> Result<Active, String> {
        let mut names: Vec<String> = asked.to_vec();
        let mut attached = |s: &crate::directory::records::Settings| {
            names.extend(named_in(s).map(str::to_string));
        };
        if let Some(k) = key {
            attached(&k.record.settings);
            if let Some(t) = &k.team {
                attached(&t.record.settings);
            }
        }
        let mut list: Vec<Arc<Guardrail>> =
            self.list.iter().filter(|g| g.default_on).cloned().collect();
        for n in &names {
            let Some(g) = self.list.iter().find(|g| g.answers_to(n)) else {
                let known: Vec<&str> = self.list.iter().map(|g| g.name.as_str()).collect();
                return Err(if known.is_empty() {
                    format!("Unknown guardrail {n:?}: no guardrails are configured.")
                } else {
                    format!(
                        "Unknown guardrail {n:?}; configured guardrails: {}.",
                        known.join(", ")
                    )
                });
            };
            if !list.iter().any(|x| Arc::ptr_eq(x, g)) {
                list.push(Arc::clone(g));
            }
        }
        Ok(Active {
            list,
            masks: Masks::default(),
            trail: Vec::new(),
        })
    }
}

/// The guardrails of one call, the values masked so far, and what each did
/// (for the request log).
#[derive(Default)]
pub struct Active {
    list: Vec<Arc<Guardrail>>,
    pub masks: Masks,
    trail: Vec<Value>,
}

impl Active {
    pub fn has(&self, mode: GuardrailMode) -> bool {
        self.list.iter().any(|g| g.modes.contains(&mode))
    }

    /// Whether the caller gets masked values back in the answer.
    pub fn unmasks(&self) -> bool {
        !self.masks.is_empty() && self.list.iter().any(|g| g.unmask)
    }

    /// Runs the `mode` guardrails on the request's text. `pre_call` ones may
    /// mask it; `during_call` ones only block (the input has gone already).
    pub async fn check_input(
        &mut self,
        mode: GuardrailMode,
        req: &mut ChatRequest,
    ) -> Result<(), Intervention> {
        let list: Vec<Arc<Guardrail>> = self
            .list
            .iter()
            .filter(|g| g.modes.contains(&mode))
            .cloned()
            .collect();
        for g in list {
            let started = Instant::now();
            let out = match &g.engine {
                Engine::Content(f) => content_input(&g.name, f, req, &mut self.masks, mode),
                Engine::Bedrock(b) => bedrock_input(&g.name, b, req, mode).await,
            };
            self.note(&g, mode, started, &out);
            out?;
        }
        Ok(())
    }

    fn note(
        &mut self,
        g: &Guardrail,
        mode: GuardrailMode,
        started: Instant,
        out: &Result<bool, Intervention>,
    ) {
        g.record(started, out.is_err());
        self.trail.push(trail_entry(&g.name, mode, started, out));
    }

    /// The `during_call` guardrails as a check of their own on a copy of the
    /// request, to run beside the call: what they did, and their verdict.
    #[allow(clippy::type_complexity)]
    pub fn during_check(
        &self,
        req: &ChatRequest,
    ) -> Option<Pin<Box<dyn Future<Output = (Vec<Value>, Result<(), Intervention>)> + Send>>> {
        let list: Vec<Arc<Guardrail>> = self
            .list
            .iter()
            .filter(|g| g.modes.contains(&GuardrailMode::DuringCall))
            .cloned()
            .collect();
        if list.is_empty() {
            return None;
        }
        let mut copy = req.clone();
        Some(Box::pin(async move {
            let mut a = Active {
                list,
                ..Default::default()
            };
            let r = a.check_input(GuardrailMode::DuringCall, &mut copy).await;
            (a.trail, r)
        }))
    }

    /// Adds what a separate check did to this call's record.
    pub fn absorb(&mut self, trail: Vec<Value>) {
        self.trail.extend(trail);
    }

    /// What the guardrails did, for the request log (`None` when none ran).
    pub fn trail(&self) -> Option<Value> {
        (!self.trail.is_empty()).then(|| Value::Array(self.trail.clone()))
    }

    /// Runs the `post_call` guardrails on a whole answer (masking or
    /// blocking); `unmask` then gives the caller its own values back.
    pub async fn check_output(&mut self, resp: &mut ChatResponse) -> Result<(), Intervention> {
        // Values masked in the answer continue the input's numbering but are
        // never put back.
        let mut out_masks = self.masks.clone();
        let list: Vec<Arc<Guardrail>> = self
            .list
            .iter()
            .filter(|g| g.modes.contains(&GuardrailMode::PostCall))
            .cloned()
            .collect();
        for g in list {
            let started = Instant::now();
            let out = match &g.engine {
                Engine::Content(f) => {
                    let mut r = Ok(false);
                    for c in &mut resp.choices {
                        if let Some(text) = c.message.content.as_mut() {
                            match f.apply(text, &mut out_masks) {
                                Ok(Some(masked)) => {
                                    *text = masked;
                                    r = Ok(true);
                                }
                                Ok(None) => {}
                                Err(b) => {
                                    r = Err(blocked(&g.name, &b.what, "answer"));
                                    break;
                                }
                            }
                        }
                    }
                    r
                }
                Engine::Bedrock(b) => bedrock_output(&g.name, b, resp).await,
            };
            self.note(&g, GuardrailMode::PostCall, started, &out);
            out?;
        }
        Ok(())
    }

    /// The caller's copy of an answer: masked input values put back.
    pub fn unmask(&self, resp: &mut ChatResponse) {
        if !self.unmasks() {
            return;
        }
        for c in &mut resp.choices {
            if let Some(text) = c.message.content.as_mut() {
                *text = self.masks.unmask(text);
            }
        }
    }

    /// The Bedrock guardrails that check a streamed answer, window by window.
    pub fn bedrock_post_call(&self) -> Vec<Arc<Guardrail>> {
        self.list
            .iter()
            .filter(|g| g.modes.contains(&GuardrailMode::PostCall) && g.bedrock_id().is_some())
            .cloned()
            .collect()
    }

    /// What checks a streamed answer, if anything does.
    pub fn stream_guard(&self) -> Option<StreamGuard> {
        let filters: Vec<Arc<Guardrail>> = self
            .list
            .iter()
            .filter(|g| g.modes.contains(&GuardrailMode::PostCall) && g.filter().is_some())
            .cloned()
            .collect();
        if filters.is_empty() && !self.unmasks() {
            return None;
        }
        Some(StreamGuard::new(
            filters,
            self.masks.clone(),
            self.unmasks(),
        ))
    }
}

impl Guardrail {
    fn record(&self, started: Instant, intervened: bool) {
        self.checks.fetch_add(1, Ordering::Relaxed);
        self.micros
            .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
        if intervened {
            self.interventions.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn filter(&self) -> Option<&ContentFilter> {
        match &self.engine {
            Engine::Content(f) => Some(f),
            Engine::Bedrock(_) => None,
        }
    }

    /// Whether `name` names this guardrail (its name, or its Bedrock id).
    pub fn answers_to(&self, name: &str) -> bool {
        self.name == name || self.bedrock_id() == Some(name)
    }

    fn bedrock_id(&self) -> Option<&str> {
        match &self.engine {
            Engine::Bedrock(b) => Some(b.identifier()),
            Engine::Content(_) => None,
        }
    }
}

fn blocked(guardrail: &str, what: &str, whose: &str) -> Intervention {
    Intervention {
        guardrail: guardrail.to_string(),
        message: format!("Blocked by guardrail {guardrail}: the {whose} contains {what}."),
        unavailable: false,
    }
}

fn refused(guardrail: &str, message: &str) -> Intervention {
    Intervention {
        guardrail: guardrail.to_string(),
        message: format!("Blocked by guardrail {guardrail}: {message}"),
        unavailable: false,
    }
}

fn unreachable_guard(guardrail: &str, message: String) -> Intervention {
    Intervention {
        guardrail: guardrail.to_string(),
        message,
        unavailable: true,
    }
}

/// Bedrock's ApplyGuardrail over every text of the request, in order.
async fn bedrock_input(
    name: &str,
    b: &bedrock::BedrockGuard,
    req: &mut ChatRequest,
    mode: GuardrailMode,
) -> Result<bool, Intervention> {
    let texts: Vec<String> = req
        .messages
        .iter()
        .flat_map(|m| texts(m.content.as_ref()))
        .map(str::to_string)
        .collect();
    if texts.is_empty() {
        return Ok(false);
    }
    match b.apply(&texts, false).await {
        Err(e) => Err(unreachable_guard(name, e)),
        Ok(bedrock::Verdict::Pass) => Ok(false),
        Ok(bedrock::Verdict::Blocked(m)) => Err(refused(name, &m)),
        Ok(bedrock::Verdict::Anonymized(outs)) => {
            if mode != GuardrailMode::PreCall || !b.mask_request {
                return Ok(false);
            }
            let mut outs = outs.into_iter();
            for m in &mut req.messages {
                match m.content.as_mut() {
                    Some(Content::Text(t)) => {
                        if let Some(o) = outs.next() {
                            *t = o;
                        }
                    }
                    Some(Content::Parts(parts)) => {
                        for p in parts {
                            if let ContentPart::Text { text } = p {
                                if let Some(o) = outs.next() {
                                    *text = o;
                                }
                            }
                        }
                    }
                    None => {}
                }
            }
            Ok(true)
        }
    }
}

/// Bedrock's ApplyGuardrail over an answer's texts.
async fn bedrock_output(
    name: &str,
    b: &bedrock::BedrockGuard,
    resp: &mut ChatResponse,
) -> Result<bool, Intervention> {
    let texts: Vec<String> = resp
        .choices
        .iter()
        .filter_map(|c| c.message.content.clone())
        .collect();
    if texts.is_empty() {
        return Ok(false);
    }
    match b.apply(&texts, true).await {
        Err(e) => Err(unreachable_guard(name, e)),
        Ok(bedrock::Verdict::Pass) => Ok(false),
        Ok(bedrock::Verdict::Blocked(m)) => Err(refused(name, &m)),
        Ok(bedrock::Verdict::Anonymized(outs)) => {
            if !b.mask_response {
                return Ok(false);
            }
            let mut outs = outs.into_iter();
            for c in &mut resp.choices {
                if c.message.content.is_some() {
                    c.message.content = outs.next();
                }
            }
            Ok(true)
        }
    }
}

/// The built-in filter over every text of the request.
fn content_input(
    name: &str,
    f: &ContentFilter,
    req: &mut ChatRequest,
    masks: &mut Masks,
    mode: GuardrailMode,
) -> Result<bool, Intervention> {
    if let Some(max) = f.max_input_chars {
        let total: usize = req
            .messages
            .iter()
            .flat_map(|m| texts(m.content.as_ref()))
            .map(|t| t.chars().count())
            .sum();
        if total > max {
            return Err(refused(
                name,
                &format!("the input is {total} characters; at most {max} are allowed."),
            ));
        }
    }
    let masking = mode == GuardrailMode::PreCall;
    let mut changed = false;
    for m in &mut req.messages {
        let mut each = |text: &mut String| -> Result<(), Intervention> {
            // During the call the input has gone already: a check on a copy.
            let mut scratch = Masks::default();
            let into = if masking { &mut *masks } else { &mut scratch };
            match f.apply(text, into) {
                Ok(Some(masked)) if masking => {
                    *text = masked;
                    changed = true;
                }
                Ok(_) => {}
                Err(b) => return Err(blocked(name, &b.what, "input")),
            }
            Ok(())
        };
        match m.content.as_mut() {
            Some(Content::Text(t)) => each(t)?,
            Some(Content::Parts(parts)) => {
                for p in parts {
                    if let ContentPart::Text { text } = p {
                        each(text)?;
                    }
                }
            }
            None => {}
        }
    }
    Ok(changed)
}

/// One line of the request log's `guardrails`.
pub fn trail_entry(
    name: &str,
    mode: GuardrailMode,
    started: Instant,
    out: &Result<bool, Intervention>,
) -> Value {
    serde_json::json!({
        "guardrail": name,
        "mode": mode.as_str(),
        "outcome": match out {
            Err(_) => "blocked",
            Ok(true) => "masked",
            Ok(false) => "passed",
        },
        "duration_ms": started.elapsed().as_secs_f64() * 1000.0,
    })
}

fn texts(c: Option<&Content>) -> Vec<&str> {
    match c {
        Some(Content::Text(t)) => vec![t.as_str()],
        Some(Content::Parts(parts)) => parts
            .iter()
            .filter_map(|p| match p {
                ContentPart::Text { text } => Some(text.as_str()),
                _ => None,
            })
            .collect(),
        None => Vec::new(),
    }
}
