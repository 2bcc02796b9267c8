//! `/ui/prompts`: managed prompts. The list (paged on the server), one
//! prompt's versions and messages, a preview that renders it with the
//! variables typed in (the gateway's own renderer, as a call would), and
//! for admins: a new prompt, a new version, delete.

use leptos::prelude::*;
use leptos_router::hooks::use_navigate;
use serde::{Deserialize, Serialize};

use crate::widgets::{
    copy_to_clipboard, error_field, is_admin, query_page, query_param, short_time, watch,
    AdminPage, ConfirmButton, ErrorBox, Field, LastError, Pager, SearchForm, ToggleButton,
};

/// One message of a template, its text flattened.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct TemplateMessage {
    pub role: String,
    pub content: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct PromptRow {
    pub id: String,
    pub arn: String,
    pub version: i64,
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    pub model: String,
    #[serde(default)]
    pub variables: Vec<String>,
    /// How many versions it has.
    #[serde(default)]
    pub versions: u64,
    #[serde(default)]
    pub created_at: Option<String>,
}

pub type PromptPage = crate::api::Page<PromptRow>;

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct PromptDetail {
    pub id: String,
    pub arn: String,
    pub version: i64,
    pub versions: Vec<i64>,
    pub name: String,
    pub description: Option<String>,
    pub model: String,
    pub template: Vec<TemplateMessage>,
    pub variables: Vec<String>,
    pub temperature: Option<f64>,
    pub max_tokens: Option<f64>,
    pub created_by: Option<String>,
    pub created_at: Option<String>,
}

/// What the prompt form sends: text as typed, checked on the server.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct PromptForm {
    pub name: String,
    pub model: String,
    pub description: String,
    pub temperature: String,
    pub max_tokens: String,
    pub messages: Vec<TemplateMessage>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Rendered {
    pub model: String,
    pub messages: Vec<TemplateMessage>,
    pub missing: Vec<String>,
}

pub const ROLES: &[&str] = &["system", "user", "assistant"];

/// A message's text: its content, or its text parts joined.
#[cfg_attr(not(feature = "ssr"), allow(dead_code))]
fn message_of(m: &serde_json::Value) -> TemplateMessage {
    TemplateMessage {
        role: m["role"].as_str().unwrap_or("user").to_string(),
        content: crate::api::text_of(&m["content"]),
    }
}

#[cfg_attr(not(feature = "ssr"), allow(dead_code))]
impl PromptForm {
    fn of(p: &PromptDetail) -> Self {
        PromptForm {
            name: p.name.clone(),
            model: p.model.clone(),
            description: p.description.clone().unwrap_or_default(),
            temperature: p.temperature.map(|t| t.to_string()).unwrap_or_default(),
            max_tokens: p.max_tokens.map(|t| t.to_string()).unwrap_or_default(),
            messages: p.template.clone(),
        }
    }

    /// The body of `POST /prompts` (or of a new version).
    pub fn body(&self) -> Result<serde_json::Value, ServerFnError> {
        use crate::api::field_error;
        use crate::keys::{parse_count, parse_number};
        if self.name.trim().is_empty() {
            return Err(field_error("name", "a name is required"));
        }
        if self.model.trim().is_empty() {
            return Err(field_error(
                "model",
                "choose the model the prompt is sent to",
            ));
        }
        let messages: Vec<&TemplateMessage> = self
            .messages
            .iter()
            .filter(|m| !m.content.trim().is_empty())
            .collect();
        if messages.is_empty() {
            return Err(field_error("template", "write at least one message"));
        }
        if let Some(m) = messages.iter().find(|m| !ROLES.contains(&m.role.as_str())) {
            return Err(field_error(
                "template",
                format!("{:?} is not a role: system, user or assistant", m.role),
            ));
        }
        let mut inference = serde_json::Map::new();
        if let Some(t) = parse_number("temperature", &self.temperature)? {
            inference.insert("temperature".into(), t.into());
        }
        if let Some(n) = parse_count("max_tokens", &self.max_tokens)? {
            inference.insert("max_tokens".into(), n.into());
        }
        let description = self.description.trim();
        Ok(serde_json::json!({
            "name": self.name.trim(),
            "model": self.model.trim(),
            "description": (!description.is_empty()).then_some(description),
            "template": messages
                .iter()
                .map(|m| serde_json::json!({"role": m.role, "content": m.content}))
                .collect::<Vec<_>>(),
            "inference_config": inference,
        }))
    }
}

#[server(prefix = "/ui/api", endpoint = "list_prompts")]
pub async fn list_prompts(page: u64, search: String) -> Result<PromptPage, ServerFnError> {
    crate::api::get_page(
        format!("/prompts?page={}&page_size=25", page.max(1)),
        ("search", &search),
        ["prompts", "total", "page", "total_pages"],
    )
    .await
}

/// One version of a prompt (0: the latest).
#[server(prefix = "/ui/api", endpoint = "get_prompt")]
pub async fn get_prompt(id: String, version: i64) -> Result<PromptDetail, ServerFnError> {
    let mut path = format!("/prompts/{}", crate::urlencode(&id));
    if version > 0 {
        path.push_str(&format!("?version={version}"));
    }
    let v = crate::api::call_api(http::Method::GET, path, None).await?;
    let text = |k: &str| v[k].as_str().map(str::to_string);
    Ok(PromptDetail {
        id: text("id").unwrap_or_default(),
        arn: text("arn").unwrap_or_default(),
        version: v["version"].as_i64().unwrap_or(1),
        versions: crate::api::decode(v["versions"].clone())?,
        name: text("name").unwrap_or_default(),
        description: text("description"),
        model: text("model").unwrap_or_default(),
        template: v["template"]
            .as_array()
            .into_iter()
            .flatten()
            .map(message_of)
            .collect(),
        variables: crate::api::decode(v["variables"].clone())?,
        temperature: v["inference_config"]["temperature"].as_f64(),
        max_tokens: v["inference_config"]["max_tokens"].as_f64(),
        created_by: text("created_by"),
        created_at: text("created_at"),
    })
}

/// The messages a call would send with these variables (`POST /prompts/{id}/render`).
#[server(prefix = "/ui/api", endpoint = "render_prompt")]
pub async fn render_prompt(
    id: String,
    version: i64,
    variables: Vec<(String, String)>,
) -> Result<Rendered, ServerFnError> {
    let vars: serde_json::Map<String, serde_json::Value> = variables
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (k, serde_json::json!({ "text": v })))
        .collect();
    let v = crate::api::call_api(
        http::Method::POST,
        format!("/prompts/{}/render", crate::urlencode(&id)),
        Some(serde_json::json!({"version": version, "promptVariables": vars})),
    )
    .await?;
    Ok(Rendered {
        model: v["model"].as_str().unwrap_or_default().to_string(),
        messages: v["messages"]
            .as_array()
            .into_iter()
            .flatten()
            .map(message_of)
            .collect(),
        missing: crate::api::decode(v["missing"].clone())?,
    })
}

/// Creates a prompt (`id` empty) or a new version of one; answers (id, version).
#[server(prefix = "/ui/api", endpoint = "save_prompt")]
pub async fn save_prompt(id: String, form: PromptForm) -> Result<(String, i64), ServerFnError> {
    let path = if id.is_empty() {
        "/prompts".to_string()
    } else {
        format!("/prompts/{}/versions", crate::urlencode(&id))
    };
    let v = crate::api::call_api(http::Method::POST, path, Some(form.body()?)).await?;
    Ok((
        v["id"].as_str().unwrap_or_default().to_string(),
        v["version"].as_i64().unwrap_or(1),
    ))
}

#[server(prefix = "/ui/api", endpoint = "delete_prompt")]
pub async fn delete_prompt(id: String) -> Result<(), ServerFnError> {
    crate::api::call_api(
        http::Method::DELETE,
        format!("/prompts/{}", crate::urlencode(&id)),
        None,
    )
    .await
    .map(|_| ())
}

#[component]
pub fn PromptsPage() -> impl IntoView {
    view! {
        <AdminPage title="Prompts">
            <PromptsBody />
        </AdminPage>
    }
}

#[component]
fn PromptsBody() -> impl IntoView {
    let page = query_page();
    let search = query_param("q");
    let selected = query_param("id");
    let version_param = query_param("v");
    let version = RwSignal::new(0u32);
    let list = Resource::new(
        move || (page.get(), search.get(), version.get()),
        |(page, search, _)| list_prompts(page, search),
    );
    let admin = is_admin();
    view! {
        <div class="page-header">
            <div>
                <h1>"Prompts"</h1>
                <p class="muted">
                    "Versioned prompts with {{variables}}. Call one with its ARN as the model and the variables in promptVariables."
                </p>
            </div>
        </div>
        <Show when=move || admin.get()>
            <details class="panel form-panel" data-testid="new-prompt">
                <summary class="btn btn-primary">"New prompt"</summary>
                <PromptEditor
                    id=String::new()
                    initial=PromptForm {
                        messages: vec![
                            TemplateMessage { role: "system".into(), content: String::new() },
                            TemplateMessage { role: "user".into(), content: String::new() },
                        ],
                        ..Default::default()
                    }
                    version
                />
            </details>
        </Show>
        <SearchForm
            action="/ui/prompts"
            id="prompt-search"
            label="Search prompts"
            placeholder="Search by name, id or model"
            value=search
        />
        <Transition fallback=|| view! { <p class="muted loading">"Loading prompts…"</p> }>
            {move || list.get().map(|r| match r {
                Err(e) => view! { <ErrorBox error=e /> }.into_any(),
                Ok(p) if p.items.is_empty() => view! {
                    <div class="panel empty" data-testid="empty-state">
                        <p>{if search.get_untracked().is_empty() { "No prompts yet." } else { "No prompt matches this search." }}</p>
                    </div>
                }.into_any(),
                Ok(p) => {
                    let PromptPage { items, total, page, pages } = p;
                    view! {
                        <div class="table-wrap">
                            <table class="data" data-testid="prompts-table">
                                <thead>
                                    <tr>
                                        <th scope="col">"Prompt"</th>
                                        <th scope="col">"Model"</th>
                                        <th scope="col">"Variables"</th>
                                        <th scope="col" class="num">"Versions"</th>
                                        <th scope="col">"Changed"</th>
                                    </tr>
                                </thead>
                                <tbody>
                                    {items.into_iter().map(|p| {
                                        let href = format!("/ui/prompts?id={}", crate::urlencode(&p.id));
                                        let current = p.id.clone();
                                        view! {
                                            <tr data-testid="prompt-row" class:selected=move || selected.get() == current>
                                                <td>
                                                    <a href=href class="strong">{p.name.clone()}</a>
                                                    <br />
                                                    <code class="muted small">{p.id.clone()}</code>
                                                </td>
                                                <td><code>{p.model.clone()}</code></td>
                                                <td class="small mono">{if p.variables.is_empty() { "—".into() } else { p.variables.join(", ") }}</td>
                                                <td class="num">{p.versions}</td>
                                                <td class="small">{p.created_at.as_deref().map(short_time).unwrap_or_default()}</td>
                                            </tr>
                                        }
                                    }).collect_view()}
                                </tbody>
                            </table>
                        </div>
                        <Pager page pages total noun="prompts" />
                    }.into_any()
                }
            })}
        </Transition>
        <Show when=move || !selected.get().is_empty()>
            <PromptPanel
                id=selected
                version_param
                admin
                version
            />
        </Show>
    }
}

/// One prompt: its versions, messages, preview and changes.
#[component]
fn PromptPanel(
    id: Memo<String>,
    version_param: Memo<String>,
    admin: Signal<bool>,
    version: RwSignal<u32>,
) -> impl IntoView {
    let detail = Resource::new(
        move || {
            (
                id.get(),
                version_param.get().parse::<i64>().unwrap_or(0),
                version.get(),
            )
        },
        |(id, v, _)| get_prompt(id, v),
    );
    view! {
        <section class="panel prompt-panel" data-testid="prompt-panel">
            <Transition fallback=|| view! { <p class="muted loading">"Loading the prompt…"</p> }>
                {move || detail.get().map(|r| match r {
                    Err(e) => view! { <ErrorBox error=e /> }.into_any(),
                    Ok(p) => view! { <PromptView p admin version /> }.into_any(),
                })}
            </Transition>
        </section>
    }
}

#[component]
fn PromptView(p: PromptDetail, admin: Signal<bool>, version: RwSignal<u32>) -> impl IntoView {
    let remove = ServerAction::<DeletePrompt>::new();
    let error = RwSignal::new(None::<ServerFnError>);
    let navigate = use_navigate();
    watch(remove.value(), error, move |()| {
        version.update(|v| *v += 1);
        navigate("/ui/prompts", Default::default());
    });
    let editing = RwSignal::new(false);
    let latest = p.versions.last().copied().unwrap_or(p.version);
    let form = PromptForm::of(&p);
    let id = StoredValue::new(p.id.clone());
    let arn = p.arn.clone();
    let copied = RwSignal::new(false);
    let settings = [
        p.temperature.map(|t| format!("temperature {t}")),
        p.max_tokens.map(|t| format!("max tokens {t}")),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>();
    view! {
        <div class="prompt-head">
            <div>
                <h2 data-testid="prompt-name">{p.name.clone()}</h2>
                {p.description.clone().map(|d| view! { <p class="muted">{d}</p> })}
                <p class="small">
                    "Model "<code>{p.model.clone()}</code>
                    {(!settings.is_empty()).then(|| format!(" · {}", settings.join(" · ")))}
                    {p.created_by.clone().map(|b| format!(" · version by {b}"))}
                    {p.created_at.as_deref().map(|t| format!(" on {}", short_time(t)))}
                </p>
                <p class="small">
                    "ARN "<code data-testid="prompt-arn">{arn.clone()}</code>" "
                    <button
                        class="btn btn-quiet"
                        type="button"
                        on:click=move |_| {
                            copy_to_clipboard(&arn);
                            copied.set(true);
                        }
                    >
                        {move || if copied.get() { "Copied" } else { "Copy" }}
                    </button>
                </p>
            </div>
            <nav class="versions" aria-label="Versions" data-testid="versions">
                {p.versions.iter().map(|v| {
                    let v = *v;
                    let href = format!("/ui/prompts?id={}&v={v}", crate::urlencode(&p.id));
                    let current = v == p.version;
                    view! {
                        <a
                            class="btn"
                            class:btn-primary=current
                            href=href
                            aria-current=current.then_some("page")
                        >
                            {format!("v{v}")}{(v == latest).then_some(" (latest)")}
                        </a>
                    }
                }).collect_view()}
            </nav>
        </div>
        <div class="prompt-body">
            <div>
                <h3>"Messages"</h3>
                <ol class="prompt-messages" data-testid="template">
                    {p.template.iter().map(|m| view! {
                        <li><span class="badge">{m.role.clone()}</span><pre class="message-text">{m.content.clone()}</pre></li>
                    }).collect_view()}
                </ol>
            </div>
            <Preview id=p.id.clone() version=p.version variables=p.variables.clone() />
        </div>
        <Show when=move || admin.get()>
            <div class="form-actions">
                <ToggleButton label="New version" testid="new-version" open=editing />
                <ConfirmButton
                    label="Delete"
                    testid="delete-prompt"
                    question="Delete this prompt and every version?".to_string()
                    on_confirm=Callback::new(move |_| {
                        remove.dispatch(DeletePrompt { id: id.get_value() });
                    })
                />
            </div>
            <LastError error />
        </Show>
        <Show when=move || editing.get()>
            <p class="muted small">{format!("Starts from v{}; saving makes v{}.", p.version, latest + 1)}</p>
            <PromptEditor id=id.get_value() initial=form.clone() version />
        </Show>
    }
}

/// One input per variable, and the messages as a call would send them.
#[component]
fn Preview(id: String, version: i64, variables: Vec<String>) -> impl IntoView {
    let render = ServerAction::<RenderPrompt>::new();
    let inputs: Vec<(String, RwSignal<String>)> = variables
        .iter()
        .map(|v| (v.clone(), RwSignal::new(String::new())))
        .collect();
    let inputs = StoredValue::new(inputs);
    let id = StoredValue::new(id);
    view! {
        <div class="preview" data-testid="preview">
            <h3>"Preview"</h3>
            <form
                class="form-grid"
                on:submit=move |ev| {
                    ev.prevent_default();
                    render.dispatch(RenderPrompt {
                        id: id.get_value(),
                        version,
                        variables: inputs.with_value(|i| {
                            i.iter().map(|(k, v)| (k.clone(), v.get_untracked())).collect()
                        }),
                    });
                }
            >
                {if variables.is_empty() {
                    view! { <p class="muted small">"This prompt has no variables."</p> }.into_any()
                } else {
                    inputs.with_value(|i| i.iter().map(|(name, value)| {
                        let fid = format!("var-{name}");
                        let for_id = fid.clone();
                        view! {
                            <label class="field" for=for_id>
                                <span class="field-label mono">{format!("{{{{{name}}}}}")}</span>
                                <input id=fid name=name.clone() type="text" autocomplete="off" bind:value=*value />
                            </label>
                        }
                    }).collect_view()).into_any()
                }}
                <div class="form-actions">
                    <button class="btn btn-primary" type="submit" data-testid="render" disabled=move || render.pending().get()>
                        "Render"
                    </button>
                </div>
            </form>
            {move || render.value().get().map(|r| match r {
                Err(e) => view! { <ErrorBox error=e /> }.into_any(),
                Ok(r) => view! {
                    <div data-testid="rendered">
                        {(!r.missing.is_empty()).then(|| view! {
                            <p class="warn small" data-testid="missing">
                                {format!("Not given (a call would be refused): {}", r.missing.join(", "))}
                            </p>
                        })}
                        <p class="small muted">"Sent to "<code>{r.model.clone()}</code></p>
                        <ol class="prompt-messages">
                            {r.messages.into_iter().map(|m| view! {
                                <li><span class="badge">{m.role}</span><pre class="message-text">{m.content}</pre></li>
                            }).collect_view()}
                        </ol>
                    </div>
                }.into_any(),
            })}
        </div>
    }
}

/// The prompt form: a new prompt (`id` empty) or a prompt's next version.
#[component]
fn PromptEditor(id: String, initial: PromptForm, version: RwSignal<u32>) -> impl IntoView {
    let save = ServerAction::<SavePrompt>::new();
    let error = RwSignal::new(None::<ServerFnError>);
    let error_field = error_field(error);
    let navigate = use_navigate();
    let name = RwSignal::new(initial.name);
    let model = RwSignal::new(initial.model);
    let description = RwSignal::new(initial.description);
    let temperature = RwSignal::new(initial.temperature);
    let max_tokens = RwSignal::new(initial.max_tokens);
    let next = StoredValue::new(0usize);
    let fresh = move |m: TemplateMessage| {
        let k = next.get_value();
        next.set_value(k + 1);
        (k, RwSignal::new(m.role), RwSignal::new(m.content))
    };
    let messages = RwSignal::new(initial.messages.into_iter().map(fresh).collect::<Vec<_>>());
    let blank = id.is_empty();
    watch(save.value(), error, move |(id, v)| {
        if blank {
            for s in [name, model, description, temperature, max_tokens] {
                s.set(String::new());
            }
            messages.update(|ms| ms.iter().for_each(|(_, _, c)| c.set(String::new())));
        }
        version.update(|x| *x += 1);
        navigate(
            &format!("/ui/prompts?id={}&v={v}", crate::urlencode(&id)),
            Default::default(),
        );
    });
    let id = StoredValue::new(id);
    let template_invalid = move || error_field.get().as_deref() == Some("template");
    view! {
        <form
            class="form-grid prompt-form"
            data-testid="prompt-form"
            on:submit=move |ev| {
                ev.prevent_default();
                save.dispatch(SavePrompt {
                    id: id.get_value(),
                    form: PromptForm {
                        name: name.get_untracked(),
                        model: model.get_untracked(),
                        description: description.get_untracked(),
                        temperature: temperature.get_untracked(),
                        max_tokens: max_tokens.get_untracked(),
                        messages: messages.with_untracked(|ms| {
                            ms.iter()
                                .map(|(_, r, c)| TemplateMessage { role: r.get_untracked(), content: c.get_untracked() })
                                .collect()
                        }),
                    },
                });
            }
        >
            <Field label="Name" name="name" value=name error_field />
            <Field label="Model" name="model" value=model error_field hint="A model group of this gateway" />
            <Field label="Description" name="description" value=description error_field />
            <Field label="Temperature" name="temperature" value=temperature error_field hint="Empty: the default" />
            <Field label="Max tokens" name="max_tokens" value=max_tokens error_field />
            <fieldset class="messages-editor" class:invalid=template_invalid aria-invalid=move || template_invalid().then_some("true")>
                <legend>"Messages — write {{name}} where a variable goes"</legend>
                <For
                    each=move || messages.get()
                    key=|(k, _, _)| *k
                    children=move |(k, role, content)| {
                        view! {
                            <div class="message-editor" data-testid="message-editor">
                                <select aria-label="Role" bind:value=role>
                                    {ROLES.iter().map(|r| view! { <option value=*r>{*r}</option> }).collect_view()}
                                </select>
                                <textarea aria-label="Message" rows="3" bind:value=content></textarea>
                                <button
                                    class="btn btn-quiet"
                                    type="button"
                                    aria-label="Remove this message"
                                    on:click=move |_| messages.update(|ms| ms.retain(|(x, _, _)| *x != k))
                                >
                                    "Remove"
                                </button>
                            </div>
                        }
                    }
                />
                <button
                    class="btn"
                    type="button"
                    data-testid="add-message"
                    on:click=move |_| {
                        let m = fresh(TemplateMessage { role: "user".into(), content: String::new() });
                        messages.update(|ms| ms.push(m));
                    }
                >
                    "Add message"
                </button>
            </fieldset>
            <div class="form-actions">
                <button class="btn btn-primary" type="submit" data-testid="save-prompt" disabled=move || save.pending().get()>
                    {move || if id.get_value().is_empty() { "Create prompt" } else { "Save new version" }}
                </button>
            </div>
            <LastError error />
        </form>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_is_checked_and_sent_as_the_api_shape() {
        let mut f = PromptForm {
            name: "Summary".into(),
            model: "gpt-4o".into(),
            temperature: "0.2".into(),
            messages: vec![
                TemplateMessage {
                    role: "system".into(),
                    content: "Be brief.".into(),
                },
                TemplateMessage {
                    role: "user".into(),
                    content: "  ".into(),
                },
                TemplateMessage {
                    role: "user".into(),
                    content: "Sum up {{text}}".into(),
                },
            ],
            ..Default::default()
        };
        let b = f.body().map_err(|e| e.to_string());
        assert_eq!(
            b,
            Ok(serde_json::json!({
                "name": "Summary", "model": "gpt-4o", "description": null,
                "template": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Sum up {{text}}"}],
                "inference_config": {"temperature": 0.2},
            }))
        );
        f.max_tokens = "many".into();
        let e = f.body().err().map(|e| crate::api::split_error(&e).0);
        assert_eq!(e, Some(Some("max_tokens".to_string())));
        f.max_tokens.clear();
        f.messages.truncate(0);
        let e = f.body().err().map(|e| crate::api::split_error(&e).0);
        assert_eq!(e, Some(Some("template".to_string())));
    }

    #[test]
    fn parts_are_read_as_text() {
        let m = message_of(
            &serde_json::json!({"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}),
        );
        assert_eq!(
            m,
            TemplateMessage {
                role: "user".into(),
                content: "a\nb".into()
            }
        );
    }
}
