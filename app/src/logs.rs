//! `/ui/logs`: the request log, newest first, filtered by key, user, model,
//! status and time, paged on the server; each row opens its details.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;
use serde::{Deserialize, Serialize};

use crate::widgets::{money, short_time, thousands, ErrorBox, Owner};
use crate::TopBar;

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct LogRow {
    pub request_id: String,
    #[serde(default)]
    pub call_type: String,
    #[serde(default)]
    pub api_key: Option<String>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub team_id: Option<String>,
    #[serde(default)]
    pub model: String,
    #[serde(default)]
    pub model_group: Option<String>,
    #[serde(default)]
    pub model_id: Option<String>,
    #[serde(default)]
    pub custom_llm_provider: Option<String>,
    #[serde(default)]
    pub status_code: Option<i64>,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub prompt_tokens: i64,
    #[serde(default)]
    pub completion_tokens: i64,
    #[serde(default, rename = "startTime")]
    pub start_time: String,
    #[serde(default)]
    pub request_duration_ms: i64,
    #[serde(default)]
    pub spend: f64,
    #[serde(default)]
    pub cache_hit: String,
    #[serde(default)]
    pub guardrails: serde_json::Value,
    #[serde(default)]
    pub messages: serde_json::Value,
    #[serde(default)]
    pub response: serde_json::Value,
    #[serde(default)]
    pub cursor: String,
    #[serde(default)]
    pub attempts: i64,
    #[serde(default)]
    pub fallbacks_used: i64,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub key_alias: Option<String>,
    #[serde(default)]
    pub user_email: Option<String>,
}

/// The filters of the log page, as typed (all optional).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct LogFilter {
    /// A key: its alias, its secret or its token.
    pub key: String,
    pub user: String,
    pub model: String,
    /// `success`, `failure` or a status code.
    pub status: String,
    /// `YYYY-MM-DD` or RFC 3339.
    pub start: String,
    pub end: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct LogPage {
    pub rows: Vec<LogRow>,
    /// The cursor of the next (older) page, if there is one.
    pub next: Option<String>,
    /// The cursor of the previous (newer) page, if this is not the newest.
    pub newer: Option<String>,
    /// Which calls the store does not keep, when it leaves some out.
    #[serde(default)]
    pub notice: Option<String>,
}

/// Where a page of the log starts: at the newest row, after a cursor
/// (older rows) or before one (newer rows).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub enum LogCursor {
    Newest,
    After(String),
    Before(String),
}

#[cfg(feature = "ssr")]
const PAGE_ROWS: usize = 50;

#[server(prefix = "/ui/api", endpoint = "list_logs")]
pub async fn list_logs(filter: LogFilter, at: LogCursor) -> Result<LogPage, ServerFnError> {
    use crate::api::{call_api, decode, field_error};
    let mut q = vec![];
    let mut push = |k: &str, v: &str| {
        let v = v.trim();
        if !v.is_empty() {
            q.push(format!("{k}={}", crate::urlencode(v)));
        }
    };
    let key = filter.key.trim();
    let is_token = key.len() == 64 && key.bytes().all(|b| b.is_ascii_hexdigit());
    if !key.is_empty() && !key.starts_with("sk-") && !is_token {
        // An alias: its token.
        let v = call_api(
            http::Method::GET,
            format!("/key/list?key_alias={}", crate::urlencode(key)),
            None,
        )
        .await?;
        match v["keys"].get(0).and_then(|t| t.as_str()) {
            Some(token) => push("api_key", token),
            None => return Err(field_error("key", format!("no key has the alias {key:?}"))),
        }
    } else {
        push("api_key", key);
    }
    push("user_id", &filter.user);
    push("model", &filter.model);
    push("status", &filter.status);
    push("start_date", &filter.start);
    push("end_date", &filter.end);
    // With both dates the API would answer a daily summary: rows are wanted.
    if !filter.start.trim().is_empty() && !filter.end.trim().is_empty() {
        push("summarize", "false");
    }
    // One row more than a page tells whether there is another page that way.
    let read = |cursor: Option<(&str, &str)>| {
        let mut q = q.clone();
        q.push(format!("limit={}", PAGE_ROWS + 1));
        if let Some((name, c)) = cursor {
            q.push(format!("{name}={}", crate::urlencode(c)));
        }
        async move {
            let v = call_api(
                http::Method::GET,
                format!("/spend/logs?{}", q.join("&")),
                None,
            )
            .await?;
            decode::<Vec<LogRow>>(v)
        }
    };
    // A page read newest first: the row past the page gives the older cursor.
    let page = |mut rows: Vec<LogRow>, newer: Option<String>| {
        let next = (rows.len() > PAGE_ROWS).then(|| {
            rows.truncate(PAGE_ROWS);
            rows.last().map(|r| r.cursor.clone()).unwrap_or_default()
        });
        LogPage {
            rows,
            next,
            newer,
            notice: None,
        }
    };
    let notice = crate::api::logs_notice();
    let mut out = match at {
        LogCursor::Newest => page(read(None).await?, None),
        LogCursor::After(c) => {
            let rows = read(Some(("after", &c))).await?;
            let newer = rows.first().map(|r| r.cursor.clone());
            page(rows, newer)
        }
        LogCursor::Before(c) => {
            let mut rows = read(Some(("before", &c))).await?;
            if rows.len() > PAGE_ROWS {
                // Newest first: the extra row is the first one.
                rows.remove(0);
                let newer = rows.first().map(|r| r.cursor.clone());
                LogPage {
                    next: Some(c),
                    rows,
                    newer,
                    notice: None,
                }
            } else {
                // Back at the top: the newest page, full.
                page(read(None).await?, None)
            }
        }
    };
    out.notice = notice;
    Ok(out)
}

#[component]
pub fn LogsPage() -> impl IntoView {
    let q = use_query_map();
    let get = move |k: &str| q.read().get(k).unwrap_or_default();
    let filter = Memo::new(move |_| LogFilter {
        key: get("key"),
        user: get("user"),
        model: get("model"),
        status: get("status"),
        start: get("start"),
        end: get("end"),
    });
    let at = Memo::new(move |_| {
        let (after, before) = (get("after"), get("before"));
        if !after.is_empty() {
            LogCursor::After(after)
        } else if !before.is_empty() {
            LogCursor::Before(before)
        } else {
            LogCursor::Newest
        }
    });
    let logs = Resource::new(move || (filter.get(), at.get()), |(f, a)| list_logs(f, a));
    let f0 = filter.get_untracked();
    // The address of another page: the filters, and the cursor.
    let href = move |cursor: Option<(&str, &str)>| {
        let f = filter.get_untracked();
        let mut parts: Vec<String> = [
            ("key", f.key),
            ("user", f.user),
            ("model", f.model),
            ("status", f.status),
            ("start", f.start),
            ("end", f.end),
        ]
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={}", crate::urlencode(&v)))
        .collect();
        if let Some((name, c)) = cursor {
            parts.push(format!("{name}={}", crate::urlencode(c)));
        }
        format!("/ui/logs?{}", parts.join("&"))
    };
    view! {
        <Title text="Logs · Tollgate" />
        <TopBar />
        <main class="page">
            <div class="page-header">
                <div>
                    <h1>"Request logs"</h1>
                    <p class="muted">
                        "Every call through the gateway, newest first. Admins see all; users their own."
                    </p>
                </div>
            </div>
            <form class="filters" method="get" action="/ui/logs" role="search" data-testid="log-filters">
                <label class="field">
                    <span class="field-label">"Key"</span>
                    <input name="key" value=f0.key placeholder="alias or sk-…" />
                </label>
                <label class="field">
                    <span class="field-label">"User"</span>
                    <input name="user" value=f0.user />
                </label>
                <label class="field">
                    <span class="field-label">"Model"</span>
                    <input name="model" value=f0.model />
                </label>
                <label class="field">
                    <span class="field-label">"Status"</span>
                    <select name="status">
                        {[("", "any"), ("success", "success"), ("failure", "failure"), ("429", "429"), ("400", "400"), ("500", "500")]
                            .into_iter()
                            .map(|(v, l)| {
                                let selected = f0.status == v;
                                view! { <option value=v selected=selected>{l}</option> }
                            })
                            .collect_view()}
                    </select>
                </label>
                <label class="field">
                    <span class="field-label">"From"</span>
                    <input name="start" type="date" value=f0.start />
                </label>
                <label class="field">
                    <span class="field-label">"To"</span>
                    <input name="end" type="date" value=f0.end />
                </label>
                <div class="form-actions">
                    <button class="btn btn-primary" type="submit">"Filter"</button>
                    <a class="btn btn-quiet" href="/ui/logs">"Clear"</a>
                </div>
            </form>
            <Transition fallback=|| view! { <p class="muted loading">"Loading logs…"</p> }>
                {move || logs.get().map(|r| {
                    let notice = r.as_ref().ok().and_then(|p| p.notice.clone()).map(|n| view! {
                        <p class="warn" data-testid="logs-notice">{n}</p>
                    });
                    let body = match r {
                    Err(e) => view! { <ErrorBox error=e /> }.into_any(),
                    Ok(p) if p.rows.is_empty() => view! {
                        <div class="panel empty" data-testid="empty-state">
                            <p>"No request matches these filters."</p>
                        </div>
                    }.into_any(),
                    Ok(p) => {
                        let next = p.next.as_deref().map(|c| href(Some(("after", c))));
                        let newer = p.newer.as_deref().map(|c| href(Some(("before", c))));
                        view! {
                            <div class="table-wrap">
                                <table class="data logs" data-testid="logs-table">
                                    <thead>
                                        <tr>
                                            <th scope="col">"Time (UTC)"</th>
                                            <th scope="col">"Model"</th>
                                            <th scope="col">"User"</th>
                                            <th scope="col">"Status"</th>
                                            <th scope="col" class="num">"Tokens"</th>
                                            <th scope="col" class="num">"Cost"</th>
                                            <th scope="col" class="num">"Latency"</th>
                                            <th scope="col"><span class="visually-hidden">"Details"</span></th>
                                        </tr>
                                    </thead>
                                    {p.rows.into_iter().map(|r| view! { <LogRowView r /> }).collect_view()}
                                </table>
                            </div>
                            <nav class="pager" aria-label="Pages">
                                {newer.map(|h| view! {
                                    <a class="btn" href=href(None) data-testid="newest">"↑ Newest"</a>
                                    <a class="btn" href=h rel="prev" data-testid="newer">"← Newer"</a>
                                })}
                                {match next {
                                    Some(h) => view! { <a class="btn" href=h rel="next" data-testid="older">"Older →"</a> }.into_any(),
                                    None => view! { <span class="muted">"End of the log."</span> }.into_any(),
                                }}
                            </nav>
                        }.into_any()
                    }
                    };
                    view! { {notice} {body} }
                })}
            </Transition>
        </main>
    }
}

#[component]
fn LogRowView(r: LogRow) -> impl IntoView {
    let open = RwSignal::new(false);
    let ok = r.status == "success";
    let tokens = (r.prompt_tokens + r.completion_tokens).max(0) as u64;
    let model = r.model_group.clone().unwrap_or_else(|| r.model.clone());
    let detail_id = format!("log-{}", r.request_id);
    let r = StoredValue::new(r);
    view! {
        <tbody>
            <tr data-testid="log-row" class:failed=!ok>
                <td class="small">{r.with_value(|r| short_time(&r.start_time))}</td>
                <td>{model}</td>
                <td class="small">
                    {r.with_value(|r| view! { <Owner email=r.user_email.clone() id=r.user.clone() /> })}
                </td>
                <td>
                    {r.with_value(|r| {
                        let code = r.status_code.map(|c| c.to_string()).unwrap_or_default();
                        if ok {
                            view! { <span class="badge good">{code}" ok"</span> }.into_any()
                        } else {
                            view! { <span class="badge bad">{code}" "{r.status.clone()}</span> }.into_any()
                        }
                    })}
                    {r.with_value(|r| (r.cache_hit == "True").then(|| view! { <span class="badge">"cache"</span> }))}
                </td>
                <td class="num">{thousands(tokens)}</td>
                <td class="num">{r.with_value(|r| money(r.spend))}</td>
                <td class="num">{r.with_value(|r| format!("{} ms", thousands(r.request_duration_ms.max(0) as u64)))}</td>
                <td>
                    <button
                        class="btn btn-quiet"
                        type="button"
                        aria-expanded=move || open.get().to_string()
                        aria-controls=detail_id.clone()
                        on:click=move |_| open.update(|o| *o = !*o)
                    >
                        {move || if open.get() { "Hide" } else { "Details" }}
                    </button>
                </td>
            </tr>
            <Show when=move || open.get()>
                <tr class="detail-row" id=format!("log-{}", r.with_value(|r| r.request_id.clone()))>
                    <td colspan="8">{r.with_value(|r| view! { <LogDetail r=r.clone() /> })}</td>
                </tr>
            </Show>
        </tbody>
    }
}

#[component]
fn LogDetail(r: LogRow) -> impl IntoView {
    let pretty = |v: &serde_json::Value| serde_json::to_string_pretty(v).unwrap_or_default();
    let stored = !r.messages.is_null() || !r.response.is_null();
    let guardrails = match &r.guardrails {
        serde_json::Value::Array(a) if !a.is_empty() => Some(pretty(&r.guardrails)),
        _ => None,
    };
    view! {
        <div class="log-detail" data-testid="log-detail">
            <dl class="facts">
                <dt>"Request id"</dt><dd class="mono">{r.request_id.clone()}</dd>
                <dt>"Call"</dt><dd>{r.call_type.clone()}</dd>
                <dt>"Model asked"</dt><dd>{r.model.clone()}</dd>
                <dt>"Deployment"</dt>
                <dd class="mono">
                    {format!(
                        "{} ({})",
                        r.model_id.clone().unwrap_or_else(|| "—".into()),
                        r.custom_llm_provider.clone().unwrap_or_default(),
                    )}
                </dd>
                <dt>"Tokens"</dt>
                <dd>{format!("{} in · {} out", r.prompt_tokens, r.completion_tokens)}</dd>
                <dt>"Cost"</dt><dd>{money(r.spend)}</dd>
                <dt>"Latency"</dt><dd>{format!("{} ms", r.request_duration_ms)}</dd>
                <dt>"Attempts"</dt>
                <dd>{format!("{} ({} fallback{})", r.attempts, r.fallbacks_used, if r.fallbacks_used == 1 { "" } else { "s" })}</dd>
                <dt>"Key"</dt>
                <dd class="mono small">
                    {match (&r.key_alias, &r.api_key) {
                        (Some(a), _) => a.clone(),
                        (None, Some(k)) => k.clone(),
                        (None, None) => "master key".into(),
                    }}
                </dd>
                <dt>"Team"</dt><dd class="mono">{r.team_id.clone().unwrap_or_else(|| "—".into())}</dd>
            </dl>
            {r.error.clone().map(|e| view! { <h3>"Error"</h3><pre class="code">{e}</pre> })}
            {guardrails.map(|g| view! { <h3>"Guardrails"</h3><pre class="code">{g}</pre> })}
            {if stored {
                view! {
                    <h3>"Prompt"</h3>
                    <pre class="code" data-testid="log-messages">{pretty(&r.messages)}</pre>
                    <h3>"Answer"</h3>
                    <pre class="code">{pretty(&r.response)}</pre>
                }.into_any()
            } else {
                view! {
                    <p class="muted small">
                        "Prompts and answers are not stored (set store_prompts_in_spend_logs to keep them)."
                    </p>
                }.into_any()
            }}
        </div>
    }
}
