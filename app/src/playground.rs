//! `/ui/playground`: chat with any model the signed-in person may use, as
//! them (their budget, limits and spend), streamed as it is written, kept in
//! their chat history; and the same prompt sent to two to four models side by
//! side, with time to first token, total time, tokens and cost for each.
//!
//! The browser calls `/ui/v1/chat/completions` (the gateway's own handler,
//! behind the console session) and reads the SSE stream as it arrives.

use leptos::prelude::*;
use leptos_meta::Title;
use serde::{Deserialize, Serialize};

use crate::markdown::to_safe_html;
use crate::widgets::{money, short_time, thousands, ConfirmButton, ErrorBox};
use crate::TopBar;

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct SessionSummary {
    pub session_id: String,
    #[serde(default)]
    pub model: String,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub updated_at: String,
}

/// A stored conversation, as the playground shows it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct StoredChat {
    pub session_id: String,
    pub model: String,
    /// (role, text) of each user and assistant message.
    pub messages: Vec<(String, String)>,
}

#[server(prefix = "/ui/api", endpoint = "chat_models")]
pub async fn chat_models() -> Result<Vec<String>, ServerFnError> {
    let v = crate::api::call_api(http::Method::GET, "/v1/models".into(), None).await?;
    let mut ids: Vec<String> = v["data"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|m| m["id"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    ids.sort();
    Ok(ids)
}

#[server(prefix = "/ui/api", endpoint = "chat_sessions")]
pub async fn chat_sessions() -> Result<Vec<SessionSummary>, ServerFnError> {
    use crate::api::{call_api, decode};
    let v = call_api(
        http::Method::POST,
        "/session-ids".into(),
        Some(serde_json::json!({})),
    )
    .await?;
    let mut s: Vec<SessionSummary> = decode(v["sessions"].clone())?;
    s.truncate(100);
    Ok(s)
}

#[server(prefix = "/ui/api", endpoint = "chat_session")]
pub async fn chat_session(session_id: String) -> Result<StoredChat, ServerFnError> {
    let v = crate::api::call_api(
        http::Method::POST,
        "/chat-history".into(),
        Some(serde_json::json!({ "session_id": session_id })),
    )
    .await?;
    let messages = v["messages"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|m| matches!(m["role"].as_str(), Some("user" | "assistant")))
                .map(|m| {
                    let text = crate::api::text_of(&m["content"]);
                    (m["role"].as_str().unwrap_or_default().to_string(), text)
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(StoredChat {
        session_id,
        model: v["model"].as_str().unwrap_or_default().to_string(),
        messages,
    })
}

/// Renames (`title` set) or deletes (`title` empty) a stored conversation.
#[server(prefix = "/ui/api", endpoint = "edit_chat")]
pub async fn edit_chat(session_id: String, title: String) -> Result<(), ServerFnError> {
    let (path, body) = if title.trim().is_empty() {
        (
            "/chat-history/delete",
            serde_json::json!({ "session_id": session_id }),
        )
    } else {
        (
            "/chat-history/rename",
            serde_json::json!({ "session_id": session_id, "title": title }),
        )
    };
    crate::api::call_api(http::Method::POST, path.into(), Some(body)).await?;
    Ok(())
}

/// What an answer cost, as far as the request log tells.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq)]
pub enum Cost {
    /// Its log is not written yet.
    #[default]
    Pending,
    Known(f64),
    /// The store keeps no log of calls that succeeded (`disable_spend_logs`).
    NotLogged,
}

/// What one answer cost, once its request log is written.
#[server(prefix = "/ui/api", endpoint = "answer_cost")]
pub async fn answer_cost(request_id: String) -> Result<Cost, ServerFnError> {
    let v = crate::api::call_api(
        http::Method::GET,
        format!("/spend/logs?request_id={}", crate::urlencode(&request_id)),
        None,
    )
    .await?;
    Ok(match v.get(0).and_then(|r| r["spend"].as_f64()) {
        Some(c) => Cost::Known(c),
        None if !crate::api::successes_logged() => Cost::NotLogged,
        None => Cost::Pending,
    })
}

/// What an answer's stream told.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Answer {
    pub request_id: String,
    pub session_id: Option<String>,
    pub model: String,
    pub ttft_ms: Option<f64>,
    pub total_ms: f64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cost: Cost,
}

/// One server-sent event's data: text to add, usage, the model, an error, or the end.
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
#[derive(Debug, PartialEq)]
pub enum SseData {
    Text(String),
    Usage { prompt: u64, completion: u64 },
    Model(String),
    Error(String),
    Done,
}

/// Takes the complete events off the front of `buf` (SSE: events end with a
/// blank line) and reads OpenAI chunks out of them.
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
pub fn drain_sse(buf: &mut Vec<u8>) -> Vec<SseData> {
    let mut out = Vec::new();
    loop {
        let end = buf
            .windows(2)
            .position(|w| w == b"\n\n")
            .map(|p| (p, 2))
            .or_else(|| {
                buf.windows(4)
                    .position(|w| w == b"\r\n\r\n")
                    .map(|p| (p, 4))
            });
        let Some((pos, sep)) = end else { break };
        let event: Vec<u8> = buf.drain(..pos + sep).collect();
        let event = String::from_utf8_lossy(&event);
        for line in event.lines() {
            let Some(data) = line.strip_prefix("data:") else {
                continue;
            };
            let data = data.trim();
            if data == "[DONE]" {
                out.push(SseData::Done);
                continue;
            }
            let Ok(v) = serde_json::from_str::<serde_json::Value>(data) else {
                continue;
            };
            if let Some(e) = v.get("error") {
                out.push(SseData::Error(
                    e["message"]
                        .as_str()
                        .unwrap_or("the model failed")
                        .to_string(),
                ));
                continue;
            }
            if let Some(m) = v["model"].as_str() {
                out.push(SseData::Model(m.to_string()));
            }
            if let Some(t) = v["choices"][0]["delta"]["content"].as_str() {
                if !t.is_empty() {
                    out.push(SseData::Text(t.to_string()));
                }
            }
            if let Some(u) = v.get("usage").filter(|u| u.is_object()) {
                out.push(SseData::Usage {
                    prompt: u["prompt_tokens"].as_u64().unwrap_or_default(),
                    completion: u["completion_tokens"].as_u64().unwrap_or_default(),
                });
            }
        }
    }
    out
}

#[cfg(feature = "hydrate")]
mod browser {
    use super::{drain_sse, Answer, SseData};

    pub type Abort = web_sys::AbortController;

    fn now() -> f64 {
        web_sys::window()
            .and_then(|w| w.performance())
            .map(|p| p.now())
            .unwrap_or_default()
    }

    pub async fn sleep_ms(ms: i32) {
        let p = js_sys::Promise::new(&mut |resolve, _| {
            if let Some(w) = web_sys::window() {
                let _ = w.set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms);
            }
        });
        let _ = wasm_bindgen_futures::JsFuture::from(p).await;
    }

    /// Posts a streamed chat completion as the signed-in person; `on_text`
    /// gets each piece of the answer as it arrives.
    pub async fn stream_chat(
        body: serde_json::Value,
        abort: &Abort,
        mut on_text: impl FnMut(&str),
    ) -> Result<Answer, String> {
        let t0 = now();
        let resp = gloo_net::http::Request::post("/ui/v1/chat/completions")
            .header("content-type", "application/json")
            .abort_signal(Some(&abort.signal()))
            .body(body.to_string())
            .map_err(|e| e.to_string())?
            .send()
            .await
            .map_err(|e| format!("the request failed: {e}"))?;
        if !resp.ok() {
            let text = resp.text().await.unwrap_or_default();
            let message = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
                .unwrap_or(text);
            return Err(format!("{} {}", resp.status(), message));
        }
        let mut answer = Answer {
            request_id: resp.headers().get("x-request-id").unwrap_or_default(),
            session_id: resp.headers().get("x-session-id"),
            ..Default::default()
        };
        let raw = resp.body().ok_or("the answer had no body")?;
        let mut stream = wasm_streams::ReadableStream::from_raw(raw);
        let mut reader = stream.get_reader();
        let mut buf = Vec::new();
        'read: loop {
            match reader.read().await {
                Ok(Some(chunk)) => {
                    buf.extend(js_sys::Uint8Array::new(&chunk).to_vec());
                    for d in drain_sse(&mut buf) {
                        match d {
                            SseData::Text(t) => {
                                if answer.ttft_ms.is_none() {
                                    answer.ttft_ms = Some(now() - t0);
                                }
                                on_text(&t);
                            }
                            SseData::Usage { prompt, completion } => {
                                answer.prompt_tokens = prompt;
                                answer.completion_tokens = completion;
                            }
                            SseData::Model(m) => answer.model = m,
                            SseData::Error(e) => return Err(e),
                            SseData::Done => break 'read,
                        }
                    }
                }
                Ok(None) => break,
                Err(_) => return Err("stopped".into()),
            }
        }
        answer.total_ms = now() - t0;
        Ok(answer)
    }

    /// The answer's cost, once its log is written. Logs are written in
    /// batches off the request path, usually within a second; a busy store
    /// takes longer, so the waits grow (about 30 s in all).
    pub async fn cost_of(request_id: String) -> super::Cost {
        for wait in [250, 500, 1000, 1000, 2000, 2000, 4000, 4000, 8000, 8000] {
            sleep_ms(wait).await;
            match super::answer_cost(request_id.clone()).await {
                Ok(super::Cost::Pending) | Err(_) => {}
                Ok(known) => return known,
            }
        }
        super::Cost::Pending
    }
}

#[cfg(not(feature = "hydrate"))]
mod browser {
    pub type Abort = ();
}

/// Where the running answer's AbortController is kept. Browser objects are
/// not Send: kept locally in the browser; on the server there is nothing.
#[cfg(feature = "hydrate")]
fn abort_slot() -> StoredValue<Option<browser::Abort>, LocalStorage> {
    StoredValue::new_local(None)
}

#[cfg(not(feature = "hydrate"))]
fn abort_slot() -> StoredValue<Option<browser::Abort>> {
    StoredValue::new(None)
}

/// One message on screen.
#[derive(Clone, Copy)]
struct Turn {
    id: u64,
    user: bool,
    text: RwSignal<String>,
    answer: RwSignal<Option<Answer>>,
    error: RwSignal<Option<String>>,
    streaming: RwSignal<bool>,
}

impl Turn {
    fn new(id: u64, user: bool, text: String) -> Self {
        Turn {
            id,
            user,
            text: RwSignal::new(text),
            answer: RwSignal::new(None),
            error: RwSignal::new(None),
            streaming: RwSignal::new(false),
        }
    }
}

/// An answer's cost as shown; `pending` while its log is not written.
fn cost_text(cost: Cost, pending: &str) -> String {
    match cost {
        Cost::Known(c) => money(c),
        Cost::NotLogged => "cost not logged".into(),
        Cost::Pending => pending.into(),
    }
}

/// Tokens, cost and times of an answer, in one line.
fn answer_line(a: &Answer) -> String {
    let mut parts = vec![format!(
        "{} tokens ({} in, {} out)",
        thousands(a.prompt_tokens + a.completion_tokens),
        thousands(a.prompt_tokens),
        thousands(a.completion_tokens)
    )];
    parts.push(cost_text(a.cost, "cost pending"));
    if let Some(t) = a.ttft_ms {
        parts.push(format!("first token {:.0} ms", t));
    }
    parts.push(format!("total {:.0} ms", a.total_ms));
    if !a.model.is_empty() {
        parts.push(a.model.clone());
    }
    parts.join(" · ")
}

#[component]
pub fn PlaygroundPage() -> impl IntoView {
    let models = Resource::new(|| (), |_| chat_models());
    let compare = crate::widgets::query_param("mode");
    view! {
        <Title text="Playground · Tollgate" />
        <TopBar />
        <main class="page page-wide">
            <div class="page-header">
                <div>
                    <h1>"Playground"</h1>
                    <p class="muted">
                        "Chat as yourself: your budget and limits apply, and every answer is in your spend."
                    </p>
                </div>
                <nav class="segmented" aria-label="Mode">
                    <a href="/ui/playground" class:active=move || compare.get() != "compare">
                        "Chat"
                    </a>
                    <a href="/ui/playground?mode=compare" class:active=move || compare.get() == "compare">
                        "Compare"
                    </a>
                </nav>
            </div>
            <Suspense fallback=|| view! { <p class="muted loading">"Loading models…"</p> }>
                {move || models.get().map(|r| match r {
                    Err(e) => view! { <ErrorBox error=e /> }.into_any(),
                    Ok(m) if m.is_empty() => view! {
                        <div class="panel empty" data-testid="empty-state">
                            <p>"No model is open to you. Ask an admin for access."</p>
                        </div>
                    }.into_any(),
                    Ok(m) => {
                        if compare.get_untracked() == "compare" {
                            view! { <Compare models=m /> }.into_any()
                        } else {
                            view! { <Chat models=m /> }.into_any()
                        }
                    }
                })}
            </Suspense>
        </main>
    }
}

#[component]
fn Chat(models: Vec<String>) -> impl IntoView {
    let model = RwSignal::new(models.first().cloned().unwrap_or_default());
    let system = RwSignal::new(String::new());
    let temperature = RwSignal::new(String::new());
    let max_tokens = RwSignal::new(String::new());
    let input = RwSignal::new(String::new());
    let turns = RwSignal::new(Vec::<Turn>::new());
    let session = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);
    let next_id = StoredValue::new(0u64);
    let abort = abort_slot();
    let sessions = Resource::new(|| (), |_| chat_sessions());
    let form_error = RwSignal::new(None::<String>);

    let new_id = move || {
        next_id.update_value(|n| *n += 1);
        next_id.get_value()
    };

    let start_new = move || {
        if busy.get_untracked() {
            return;
        }
        turns.set(Vec::new());
        session.set(None);
        form_error.set(None);
    };

    let open_session = move |id: String| {
        if busy.get_untracked() {
            return;
        }
        leptos::task::spawn_local(async move {
            match chat_session(id).await {
                Ok(chat) => {
                    let loaded: Vec<Turn> = chat
                        .messages
                        .into_iter()
                        .map(|(role, text)| Turn::new(new_id(), role == "user", text))
                        .collect();
                    turns.set(loaded);
                    if !chat.model.is_empty() {
                        model.set(chat.model);
                    }
                    session.set(Some(chat.session_id));
                    form_error.set(None);
                }
                Err(e) => form_error.set(Some(crate::api::split_error(&e).1)),
            }
        });
    };

    let send = move || {
        let prompt = input.get_untracked();
        if prompt.trim().is_empty() || busy.get_untracked() {
            return;
        }
        let temp = temperature.get_untracked();
        let max = max_tokens.get_untracked();
        let mut body = serde_json::json!({
            "model": model.get_untracked(),
            "stream": true,
            "stream_options": {"include_usage": true},
        });
        if !temp.trim().is_empty() {
            match temp.trim().parse::<f64>() {
                Ok(t) if (0.0..=2.0).contains(&t) => body["temperature"] = t.into(),
                _ => {
                    form_error.set(Some("Temperature must be a number from 0 to 2.".into()));
                    return;
                }
            }
        }
        if !max.trim().is_empty() {
            match max.trim().parse::<u64>() {
                Ok(m) if m > 0 => body["max_tokens"] = m.into(),
                _ => {
                    form_error.set(Some("Max tokens must be a whole number above 0.".into()));
                    return;
                }
            }
        }
        form_error.set(None);
        let mut messages = Vec::new();
        match session.get_untracked() {
            // The gateway adds the stored turns.
            Some(id) => body["session_id"] = id.into(),
            None => {
                body["enable_history"] = true.into();
                if !system.get_untracked().trim().is_empty() {
                    messages.push(
                        serde_json::json!({"role": "system", "content": system.get_untracked()}),
                    );
                }
            }
        }
        messages.push(serde_json::json!({"role": "user", "content": prompt}));
        body["messages"] = messages.into();
        let reply = Turn::new(new_id(), false, String::new());
        turns.update(|t| {
            t.push(Turn::new(new_id(), true, prompt));
            t.push(reply);
        });
        input.set(String::new());
        reply.streaming.set(true);
        busy.set(true);
        #[cfg(feature = "hydrate")]
        {
            let Ok(controller) = web_sys::AbortController::new() else {
                return;
            };
            abort.set_value(Some(controller.clone()));
            leptos::task::spawn_local(async move {
                let result = browser::stream_chat(body, &controller, |t| {
                    reply.text.update(|s| s.push_str(t));
                })
                .await;
                reply.streaming.set(false);
                busy.set(false);
                abort.set_value(None);
                match result {
                    Ok(a) => {
                        let new_session =
                            session.get_untracked().is_none() && a.session_id.is_some();
                        if let Some(s) = &a.session_id {
                            session.set(Some(s.clone()));
                        }
                        let rid = a.request_id.clone();
                        reply.answer.set(Some(a));
                        if new_session {
                            sessions.refetch();
                        }
                        let c = browser::cost_of(rid).await;
                        reply.answer.update(|a| {
                            if let Some(a) = a {
                                a.cost = c;
                            }
                        });
                    }
                    Err(e) => reply.error.set(Some(e)),
                }
            });
        }
        #[cfg(not(feature = "hydrate"))]
        let _ = (body, abort);
    };

    let stop = move || {
        #[cfg(feature = "hydrate")]
        abort.with_value(|a| {
            if let Some(a) = a {
                a.abort();
            }
        });
    };

    view! {
        <div class="playground">
            <aside class="panel history" aria-label="Conversations" data-testid="history">
                <button class="btn btn-primary btn-block" type="button" on:click=move |_| start_new() data-testid="new-chat">
                    "New chat"
                </button>
                <Transition fallback=|| view! { <p class="muted small">"Loading…"</p> }>
                    {move || sessions.get().map(|r| match r {
                        Err(e) => view! { <ErrorBox error=e /> }.into_any(),
                        Ok(list) if list.is_empty() => view! {
                            <p class="muted small">"Your conversations will be listed here."</p>
                        }.into_any(),
                        Ok(list) => view! {
                            <ul class="sessions">
                                {list.into_iter().map(|s| view! {
                                    <SessionItem s current=session on_open=Callback::new(open_session) sessions />
                                }).collect_view()}
                            </ul>
                        }.into_any(),
                    })}
                </Transition>
            </aside>
            <section class="chat" aria-label="Chat">
                <div class="chat-settings">
                    <label class="field">
                        <span class="field-label">"Model"</span>
                        <select bind:value=model data-testid="model" disabled=move || session.get().is_some()>
                            {models.iter().map(|m| view! { <option value=m.clone()>{m.clone()}</option> }).collect_view()}
                        </select>
                    </label>
                    <label class="field">
                        <span class="field-label">"Temperature"</span>
                        <input bind:value=temperature placeholder="default" inputmode="decimal" />
                    </label>
                    <label class="field">
                        <span class="field-label">"Max tokens"</span>
                        <input bind:value=max_tokens placeholder="default" inputmode="numeric" />
                    </label>
                    <label class="field system">
                        <span class="field-label">"System prompt"</span>
                        <textarea
                            rows="2"
                            bind:value=system
                            placeholder="You are a helpful assistant."
                            disabled=move || session.get().is_some()
                        ></textarea>
                    </label>
                </div>
                <div class="messages" aria-live="polite" data-testid="messages">
                    <Show when=move || turns.read().is_empty()>
                        <p class="muted empty-chat">"Ask something to start. Answers stream in as they are written."</p>
                    </Show>
                    <For each=move || turns.get() key=|t| t.id let:t>
                        <Message t />
                    </For>
                </div>
                {move || form_error.get().map(|e| view! { <div class="alert" role="alert">{e}</div> })}
                <form
                    class="composer"
                    on:submit=move |ev| {
                        ev.prevent_default();
                        send();
                    }
                >
                    <label class="visually-hidden" for="prompt">"Message"</label>
                    <textarea
                        id="prompt"
                        rows="3"
                        data-testid="prompt"
                        placeholder="Message (Enter to send, Shift+Enter for a new line)"
                        bind:value=input
                        on:keydown=move |ev| {
                            if ev.key() == "Enter" && !ev.shift_key() {
                                ev.prevent_default();
                                send();
                            }
                        }
                    ></textarea>
                    <Show
                        when=move || busy.get()
                        fallback=|| view! { <button class="btn btn-primary" type="submit" data-testid="send">"Send"</button> }
                    >
                        <button class="btn btn-danger" type="button" data-testid="stop" on:click=move |_| stop()>
                            "Stop"
                        </button>
                    </Show>
                </form>
            </section>
        </div>
    }
}

#[component]
fn Message(t: Turn) -> impl IntoView {
    if t.user {
        return view! {
            <div class="msg user" data-testid="msg-user">
                <div class="bubble">{move || t.text.get()}</div>
            </div>
        }
        .into_any();
    }
    view! {
        <div class="msg assistant" data-testid="msg-assistant" data-streaming=move || t.streaming.get().to_string()>
            <div class="bubble md" inner_html=move || to_safe_html(&t.text.get())></div>
            <Show when=move || t.streaming.get() && t.text.read().is_empty()>
                <span class="muted small typing">"Waiting for the first token…"</span>
            </Show>
            {move || t.error.get().map(|e| view! { <div class="alert" role="alert" data-testid="answer-error">{e}</div> })}
            {move || t.answer.get().map(|a| view! { <p class="answer-stats muted small" data-testid="answer-stats">{answer_line(&a)}</p> })}
        </div>
    }
    .into_any()
}

#[component]
fn SessionItem(
    s: SessionSummary,
    current: RwSignal<Option<String>>,
    on_open: Callback<String>,
    sessions: Resource<Result<Vec<SessionSummary>, ServerFnError>>,
) -> impl IntoView {
    let id = StoredValue::new(s.session_id.clone());
    let title = s
        .title
        .clone()
        .unwrap_or_else(|| "Untitled conversation".into());
    let renaming = RwSignal::new(false);
    let new_title = RwSignal::new(title.clone());
    let error = RwSignal::new(None::<String>);
    let edit = move |t: String| {
        leptos::task::spawn_local(async move {
            match edit_chat(id.get_value(), t).await {
                Ok(()) => {
                    renaming.set(false);
                    sessions.refetch();
                }
                Err(e) => error.set(Some(crate::api::split_error(&e).1)),
            }
        });
    };
    let is_current = move || current.get().as_deref() == Some(id.get_value().as_str());
    view! {
        <li class="session" class:current=is_current data-testid="session">
            <Show
                when=move || renaming.get()
                fallback=move || {
                    let title = new_title.get_untracked();
                    view! {
                        <button class="session-open" type="button" on:click=move |_| on_open.run(id.get_value())>
                            <span class="session-title">{title}</span>
                        </button>
                    }
                }
            >
                <form class="rename" on:submit=move |ev| {
                    ev.prevent_default();
                    edit(new_title.get_untracked());
                }>
                    <label class="visually-hidden" for=format!("rename-{}", id.get_value())>"New title"</label>
                    <input id=format!("rename-{}", id.get_value()) bind:value=new_title data-testid="rename-input" />
                    <button class="btn btn-quiet" type="submit">"Save"</button>
                </form>
            </Show>
            <span class="muted small">{format!("{} · {}", s.model, short_time(&s.updated_at))}</span>
            <span class="session-actions">
                <button class="btn btn-quiet" type="button" data-testid="rename" on:click=move |_| renaming.update(|r| *r = !*r)>
                    "Rename"
                </button>
                <ConfirmButton
                    label="Delete"
                    testid="delete-session"
                    question="Delete this conversation?".to_string()
                    on_confirm=Callback::new(move |_| {
                        if is_current() {
                            current.set(None);
                        }
                        edit(String::new());
                    })
                />
            </span>
            {move || error.get().map(|e| view! { <div class="alert" role="alert">{e}</div> })}
        </li>
    }
}

/// One column of the compare view.
#[derive(Clone, Copy)]
struct Column {
    model: StoredValue<String>,
    text: RwSignal<String>,
    answer: RwSignal<Option<Answer>>,
    error: RwSignal<Option<String>>,
    running: RwSignal<bool>,
}

#[component]
fn Compare(models: Vec<String>) -> impl IntoView {
    let chosen = RwSignal::new(models.iter().take(2).cloned().collect::<Vec<_>>());
    let prompt = RwSignal::new(String::new());
    let columns = RwSignal::new(Vec::<Column>::new());
    let error = RwSignal::new(None::<String>);
    let run = move || {
        let picked = chosen.get_untracked();
        if !(2..=4).contains(&picked.len()) {
            error.set(Some("Choose two to four models.".into()));
            return;
        }
        if prompt.get_untracked().trim().is_empty() {
            error.set(Some("Write a prompt first.".into()));
            return;
        }
        error.set(None);
        let cols: Vec<Column> = picked
            .into_iter()
            .map(|m| Column {
                model: StoredValue::new(m),
                text: RwSignal::new(String::new()),
                answer: RwSignal::new(None),
                error: RwSignal::new(None),
                running: RwSignal::new(true),
            })
            .collect();
        columns.set(cols.clone());
        #[cfg(feature = "hydrate")]
        for c in cols {
            let body = serde_json::json!({
                "model": c.model.get_value(),
                "stream": true,
                "stream_options": {"include_usage": true},
                "messages": [{"role": "user", "content": prompt.get_untracked()}],
            });
            leptos::task::spawn_local(async move {
                let Ok(controller) = web_sys::AbortController::new() else {
                    return;
                };
                let r =
                    browser::stream_chat(body, &controller, |t| c.text.update(|s| s.push_str(t)))
                        .await;
                c.running.set(false);
                match r {
                    Ok(a) => {
                        let rid = a.request_id.clone();
                        c.answer.set(Some(a));
                        let cost = browser::cost_of(rid).await;
                        c.answer.update(|a| {
                            if let Some(a) = a {
                                a.cost = cost;
                            }
                        });
                    }
                    Err(e) => c.error.set(Some(e)),
                }
            });
        }
    };
    view! {
        <form class="panel compare-form" on:submit=move |ev| {
            ev.prevent_default();
            run();
        }>
            <fieldset class="model-picks">
                <legend class="field-label">"Models (two to four)"</legend>
                {models.into_iter().map(|m| {
                    let m2 = m.clone();
                    let m3 = m.clone();
                    view! {
                        <label class="pick">
                            <input
                                type="checkbox"
                                data-testid="compare-model"
                                value=m.clone()
                                prop:checked=move || chosen.read().contains(&m2)
                                on:change=move |ev| {
                                    let on = event_target_checked(&ev);
                                    chosen.update(|c| {
                                        c.retain(|x| x != &m3);
                                        if on {
                                            c.push(m3.clone());
                                        }
                                    });
                                }
                            />
                            {m}
                        </label>
                    }
                }).collect_view()}
            </fieldset>
            <label class="field">
                <span class="field-label">"Prompt"</span>
                <textarea rows="3" bind:value=prompt data-testid="compare-prompt"></textarea>
            </label>
            <div class="form-actions">
                <button class="btn btn-primary" type="submit" data-testid="compare-run">"Run"</button>
            </div>
            {move || error.get().map(|e| view! { <div class="alert" role="alert">{e}</div> })}
        </form>
        <div class="compare-grid">
            <For each=move || columns.get() key=|c| c.model.get_value() let:c>
                <section class="panel compare-col" data-testid="compare-col">
                    <h2>{c.model.get_value()}</h2>
                    <dl class="facts small" data-testid="compare-stats">
                        <dt>"First token"</dt>
                        <dd>{move || c.answer.get().and_then(|a| a.ttft_ms).map(|t| format!("{t:.0} ms")).unwrap_or_else(|| "—".into())}</dd>
                        <dt>"Total"</dt>
                        <dd>{move || c.answer.get().map(|a| format!("{:.0} ms", a.total_ms)).unwrap_or_else(|| "—".into())}</dd>
                        <dt>"Tokens"</dt>
                        <dd>{move || c.answer.get().map(|a| thousands(a.prompt_tokens + a.completion_tokens)).unwrap_or_else(|| "—".into())}</dd>
                        <dt>"Cost"</dt>
                        <dd>{move || c.answer.get().map(|a| cost_text(a.cost, "—")).unwrap_or_else(|| "—".into())}</dd>
                    </dl>
                    <div class="bubble md" inner_html=move || to_safe_html(&c.text.get())></div>
                    <Show when=move || c.running.get()>
                        <span class="muted small">"Streaming…"</span>
                    </Show>
                    {move || c.error.get().map(|e| view! { <div class="alert" role="alert">{e}</div> })}
                </section>
            </For>
        </div>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_line_says_what_is_known_of_its_cost() {
        let mut a = Answer {
            prompt_tokens: 1200,
            completion_tokens: 34,
            total_ms: 812.0,
            ..Default::default()
        };
        assert!(
            answer_line(&a).contains("cost pending"),
            "{}",
            answer_line(&a)
        );
        a.cost = Cost::NotLogged;
        assert!(answer_line(&a).contains("cost not logged"));
        a.cost = Cost::Known(0.25);
        assert!(answer_line(&a).contains(&money(0.25)));
        assert_eq!(cost_text(Cost::Pending, "—"), "—");
    }

    #[test]
    fn sse_events_are_read_when_complete() {
        let mut buf = b"data: {\"model\":\"m\",\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\n\ndata: {\"choices\":[{\"delta\":{\"content\":\"lo\"}}]}\n\nda".to_vec();
        let got = drain_sse(&mut buf);
        assert_eq!(
            got,
            vec![
                SseData::Model("m".into()),
                SseData::Text("Hel".into()),
                SseData::Text("lo".into())
            ]
        );
        assert_eq!(buf, b"da");
        buf.extend_from_slice(b"ta: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":5}}\r\n\r\ndata: [DONE]\n\n");
        assert_eq!(
            drain_sse(&mut buf),
            vec![
                SseData::Usage {
                    prompt: 3,
                    completion: 5
                },
                SseData::Done
            ]
        );
        let mut err = b"data: {\"error\":{\"message\":\"budget exceeded\"}}\n\n".to_vec();
        assert_eq!(
            drain_sse(&mut err),
            vec![SseData::Error("budget exceeded".into())]
        );
    }
}
