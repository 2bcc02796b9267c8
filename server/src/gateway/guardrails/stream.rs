//! `post_call` guardrails and `unmask` on a streamed answer. Text goes out as
//! it arrives except for a short tail (as long as the longest match or
//! placeholder could be), which waits for the next chunk or the end: a match
//! is never cut in two, and a blocking match stops the stream before any of
//! it is sent.

use super::bedrock::Verdict;
use super::{blocked, Engine, Guardrail, Intervention, Masks};
use crate::gateway::types::ChatChunk;
use crate::providers::{ChunkStream, ErrorKind, ProviderError};
use futures::StreamExt;
use serde_json::Value;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct StreamGuard {
    filters: Vec<Arc<Guardrail>>,
    /// The input's masked values (put back for the caller with `unmask`).
    masks: Masks,
    /// The same numbering, extended by values masked in the answer (never put back).
    out_masks: Masks,
    unmask: bool,
    /// Bytes held back at the end of each choice's text.
    hold: usize,
    /// Text received but not sent, per choice.
    pending: HashMap<u32, String>,
    /// Per filter: time spent, whether it masked, whether it blocked.
    seen: Vec<(Duration, bool, bool)>,
}

impl StreamGuard {
    pub fn new(filters: Vec<Arc<Guardrail>>, masks: Masks, unmask: bool) -> StreamGuard {
        let reach = filters
            .iter()
            .filter_map(|g| g.filter().map(|f| f.reach()))
            .max()
            .unwrap_or(0);
        let hold = reach.max(if unmask { masks.longest() } else { 0 });
        let n = filters.len();
        StreamGuard {
            filters,
            out_masks: masks.clone(),
            masks,
            unmask,
            hold,
            pending: HashMap::new(),
            seen: vec![(Duration::ZERO, false, false); n],
        }
    }

    /// Checks a chunk's text and replaces it with what may go out now (as
    /// the model wrote it, post-call masks applied). A choice that finishes
    /// releases all it held.
    pub fn push(&mut self, chunk: &mut ChatChunk) -> Result<(), Intervention> {
        for c in &mut chunk.choices {
            let Some(text) = c.delta.content.take() else {
                if c.finish_reason.is_some() {
                    let rest = self.release(c.index, true)?;
                    if !rest.is_empty() {
                        c.delta.content = Some(rest);
                    }
                }
                continue;
            };
            self.pending.entry(c.index).or_default().push_str(&text);
            let out = self.release(c.index, c.finish_reason.is_some())?;
            c.delta.content = Some(out);
        }
        Ok(())
    }

    /// Whatever is still held when the upstream ends without finishing, per choice.
    pub fn flush(&mut self) -> Result<Vec<(u32, String)>, Intervention> {
        let mut idx: Vec<u32> = self.pending.keys().copied().collect();
        idx.sort_unstable();
        let mut out = Vec::new();
        for i in idx {
            let t = self.release(i, true)?;
            if !t.is_empty() {
                out.push((i, t));
            }
        }
        Ok(out)
    }

    /// The caller's copy of text `push` released: masked input values put back.
    pub fn unmask(&self, chunk: &mut ChatChunk) {
        if !self.unmask {
            return;
        }
        for c in &mut chunk.choices {
            if let Some(t) = c.delta.content.as_mut() {
                *t = self.masks.unmask(t);
            }
        }
    }

    fn release(&mut self, index: u32, all: bool) -> Result<String, Intervention> {
        let Some(text) = self.pending.get_mut(&index) else {
            return Ok(String::new());
        };
        let mut cut = if all {
            text.len()
        } else {
            floor_boundary(text, text.len().saturating_sub(self.hold))
        };
        // Each filter: a blocking match anywhere stops the stream; a match
        // running past the cut waits whole.
        let mut spans: Vec<(usize, usize)> = Vec::new();
        for (i, g) in self.filters.iter().enumerate() {
            let Some(f) = g.filter() else { continue };
            let started = Instant::now();
            let mut scratch = Masks::default();
            let found = f.apply(text, &mut scratch);
            g.record(started, found.is_err());
            self.seen[i].0 += started.elapsed();
            if let Err(b) = found {
                self.seen[i].2 = true;
                return Err(blocked(&g.name, &b.what, "answer"));
            }
            spans.extend(f.spans(text));
        }
        if self.unmask {
            // Never split a placeholder.
            if let Some(open) = text[..cut].rfind('[') {
                if !text[open..cut].contains(']') && cut - open <= self.masks.longest() {
                    cut = open;
                }
            }
        }
        for &(s, e) in &spans {
            if s < cut && e > cut {
                cut = s;
            }
        }
        if cut == 0 {
            return Ok(String::new());
        }
        let ready: String = text.drain(..cut).collect();
        let mut out = ready;
        for (i, g) in self.filters.iter().enumerate() {
            let Some(f) = g.filter() else { continue };
            if let Ok(Some(masked)) = f.apply(&out, &mut self.out_masks) {
                out = masked;
                self.seen[i].1 = true;
            }
        }
        Ok(out)
    }

    /// What each guardrail did over the whole stream, for the request log.
    pub fn trail(&self) -> Vec<Value> {
        self.filters
            .iter()
            .zip(&self.seen)
            .map(|(g, (spent, masked, blocked))| {
                serde_json::json!({
                    "guardrail": g.name,
                    "mode": "post_call",
                    "outcome": if *blocked { "blocked" } else if *masked { "masked" } else { "passed" },
                    "duration_ms": spent.as_secs_f64() * 1000.0,
                })
            })
            .collect()
    }
}

fn floor_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// A streamed answer checked by Bedrock guardrails window by window: chunks
/// are held until their text (about `window` characters, or the rest at the
/// end) has passed every guardrail, then released in order. A block ends the
/// stream with a guardrail error; anonymized text replaces the window's text
/// when the guardrail masks answers.
pub fn bedrock_windows(
    inner: ChunkStream,
    guards: Vec<Arc<Guardrail>>,
    trail: WindowTrail,
) -> ChunkStream {
    let window = guards.iter().map(|g| g.window).min().unwrap_or(400);
    if let Ok(mut t) = trail.0.lock() {
        *t = guards
            .iter()
            .map(|g| WindowStat {
                name: g.name.clone(),
                ..Default::default()
            })
            .collect();
    }
    let state = Windows {
        inner,
        guards,
        trail,
        window,
        held: Vec::new(),
        text: String::new(),
        ready: VecDeque::new(),
        done: false,
    };
    futures::stream::unfold(state, |mut st| async move {
        loop {
            if let Some(item) = st.ready.pop_front() {
                return Some((item, st));
            }
            if st.done {
                return None;
            }
            match st.inner.next().await {
                Some(Ok(chunk)) => {
                    let ends = chunk.choices.is_empty()
                        || chunk.choices.iter().any(|c| c.finish_reason.is_some());
                    for c in &chunk.choices {
                        if let Some(t) = &c.delta.content {
                            st.text.push_str(t);
                        }
                    }
                    st.held.push(chunk);
                    if ends || st.text.len() >= st.window {
                        st.check().await;
                    }
                }
                Some(Err(e)) => {
                    // What was not checked is not sent.
                    st.held.clear();
                    st.ready.push_back(Err(e));
                    st.done = true;
                }
                None => {
                    st.check().await;
                    st.done = true;
                }
            }
        }
    })
    .boxed()
}

/// What the Bedrock windows of one stream did, per guardrail, for its log.
#[derive(Clone, Default)]
pub struct WindowTrail(Arc<std::sync::Mutex<Vec<WindowStat>>>);

#[derive(Default)]
struct WindowStat {
    name: String,
    spent: Duration,
    windows: u32,
    masked: bool,
    blocked: bool,
}

impl WindowTrail {
    /// One log entry per guardrail: outcome, windows checked, time spent.
    pub fn entries(&self) -> Vec<Value> {
        let Ok(t) = self.0.lock() else {
            return Vec::new();
        };
        t.iter()
            .map(|w| {
                serde_json::json!({
                    "guardrail": w.name,
                    "mode": "post_call",
                    "outcome": if w.blocked { "blocked" } else if w.masked { "masked" } else { "passed" },
                    "windows": w.windows,
                    "duration_ms": w.spent.as_secs_f64() * 1000.0,
                })
            })
            .collect()
    }

    fn note(&self, i: usize, spent: Duration, masked: bool, blocked: bool) {
        if let Some(w) = self.0.lock().ok().as_mut().and_then(|t| t.get_mut(i)) {
            w.spent += spent;
            w.windows += 1;
            w.masked |= masked;
            w.blocked |= blocked;
        }
    }
}

struct Windows {
    inner: ChunkStream,
    guards: Vec<Arc<Guardrail>>,
    trail: WindowTrail,
    window: usize,
    held: Vec<ChatChunk>,
    text: String,
    ready: VecDeque<Result<ChatChunk, ProviderError>>,
    done: bool,
}

impl Windows {
    async fn check(&mut self) {
        if !self.text.is_empty() {
            let mut text = std::mem::take(&mut self.text);
            let guards = self.guards.clone();
            for (i, g) in guards.iter().enumerate() {
                let Engine::Bedrock(b) = &g.engine else {
                    continue;
                };
                let started = Instant::now();
                let verdict = b.apply(std::slice::from_ref(&text), true).await;
                let blocked = !matches!(verdict, Ok(Verdict::Pass | Verdict::Anonymized(_)));
                g.record(started, blocked);
                let masked = matches!(verdict, Ok(Verdict::Anonymized(_))) && b.mask_response;
                self.trail.note(i, started.elapsed(), masked, blocked);
                let stop = match verdict {
                    Ok(Verdict::Pass) => None,
                    Ok(Verdict::Anonymized(mut outs)) if b.mask_response => {
                        text = outs.pop().unwrap_or_default();
                        self.replace_text(&text);
                        None
                    }
                    Ok(Verdict::Anonymized(_)) => None,
                    Ok(Verdict::Blocked(m)) => Some(ProviderError::new(
                        ErrorKind::Guardrail,
                        format!("Blocked by guardrail {}: {m}", g.name),
                    )),
                    Err(e) => Some(ProviderError::new(ErrorKind::Unavailable, e)),
                };
                if let Some(e) = stop {
                    self.held.clear();
                    self.ready.push_back(Err(e));
                    self.done = true;
                    return;
                }
            }
        }
        self.ready.extend(self.held.drain(..).map(Ok));
    }

    /// The held chunks' text becomes `text`, in the first chunk that had any.
    fn replace_text(&mut self, text: &str) {
        let mut first = true;
        for chunk in &mut self.held {
            for c in &mut chunk.choices {
                if c.delta.content.is_some() {
                    c.delta.content = Some(if first {
                        text.to_string()
                    } else {
                        String::new()
                    });
                    first = false;
                }
            }
        }
    }
}
