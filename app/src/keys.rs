//! `/ui/keys`: virtual keys. Admins see every key, users their own. Create
//! (the secret is shown once), edit limits, block, regenerate, delete.

use leptos::prelude::*;
use leptos_meta::Title;
use serde::{Deserialize, Serialize};

use crate::api::field_error;
#[cfg(test)]
use crate::api::split_error;
use crate::widgets::{
    copy_to_clipboard, error_field, is_admin, query_page, query_param, short_time, spend_of, watch,
    ConfirmButton, ErrorBox, Field, LastError, Owner, Pager, SearchForm,
};
use crate::TopBar;

/// One key as the Keys table shows it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct KeyRow {
    pub token: String,
    #[serde(default)]
    pub key_alias: Option<String>,
    #[serde(default)]
    pub key_name: String,
    #[serde(default)]
    pub user_id: Option<String>,
    /// The owner's email, when the owner has one.
    #[serde(default)]
    pub user_email: Option<String>,
    #[serde(default)]
    pub team_id: Option<String>,
    #[serde(default)]
    pub spend: f64,
    #[serde(default)]
    pub max_budget: Option<f64>,
    #[serde(default)]
    pub models: Vec<String>,
    #[serde(default)]
    pub blocked: Option<bool>,
    #[serde(default)]
    pub expires: Option<String>,
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default)]
    pub rpm_limit: Option<u64>,
    #[serde(default)]
    pub tpm_limit: Option<u64>,
    #[serde(default)]
    pub budget_duration: Option<String>,
    #[serde(default)]
    pub guardrails: Option<Vec<String>>,
}

pub type KeyPage = crate::api::Page<KeyRow>;

/// What the key form sends: text as typed, checked on the server.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct KeyForm {
    pub key_alias: String,
    pub models: String,
    pub max_budget: String,
    pub rpm_limit: String,
    pub tpm_limit: String,
    /// New keys: how long until it expires. Edits: empty keeps the expiry,
    /// "never" removes it, a duration sets it from now.
    pub duration: String,
    pub user_id: String,
    pub team_id: String,
    /// How often the budget starts again ("30d", "1mo"); empty never.
    pub budget_duration: String,
    /// Guardrails this key's calls always run (comma-separated names).
    pub guardrails: String,
}

/// A new (or regenerated) secret: shown once.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct NewSecret {
    pub key: String,
    pub key_alias: Option<String>,
}

/// A decimal form field ("" is none).
#[cfg_attr(not(feature = "ssr"), allow(dead_code))]
pub fn parse_number(field: &str, s: &str) -> Result<Option<f64>, ServerFnError> {
    let s = s.trim().trim_start_matches('$');
    if s.is_empty() {
        return Ok(None);
    }
    match s.parse::<f64>() {
        Ok(x) if x.is_finite() && x >= 0.0 => Ok(Some(x)),
        _ => Err(field_error(
            field,
            format!("{s:?} is not a non-negative number"),
        )),
    }
}

/// A whole-number form field ("" is none).
#[cfg_attr(not(feature = "ssr"), allow(dead_code))]
pub fn parse_count(field: &str, s: &str) -> Result<Option<u64>, ServerFnError> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    s.parse::<u64>()
        .map(Some)
        .map_err(|_| field_error(field, format!("{s:?} is not a whole number")))
}

/// A comma-separated list field.
#[cfg_attr(not(feature = "ssr"), allow(dead_code))]
pub fn parse_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg_attr(not(feature = "ssr"), allow(dead_code))]
impl KeyForm {
    /// The body of `/key/generate` (or `/key/update`): only fields filled in,
    /// except on update, where an emptied field is cleared.
    pub fn body(&self, update: bool) -> Result<serde_json::Value, ServerFnError> {
        let mut m = serde_json::Map::new();
        let text = |m: &mut serde_json::Map<String, serde_json::Value>, k: &str, v: &str| {
            let v = v.trim();
            if !v.is_empty() {
                m.insert(k.into(), v.into());
            } else if update {
                m.insert(k.into(), serde_json::Value::Null);
            }
        };
        text(&mut m, "key_alias", &self.key_alias);
        text(&mut m, "budget_duration", &self.budget_duration);
        if !update {
            text(&mut m, "duration", &self.duration);
            text(&mut m, "user_id", &self.user_id);
            text(&mut m, "team_id", &self.team_id);
        } else {
            match self.duration.trim() {
                "" => {}
                "never" => {
                    m.insert("duration".into(), serde_json::Value::Null);
                }
                d => {
                    m.insert("duration".into(), d.into());
                }
            }
        }
        m.insert("models".into(), serde_json::json!(parse_list(&self.models)));
        let guardrails = parse_list(&self.guardrails);
        if update || !guardrails.is_empty() {
            m.insert("guardrails".into(), serde_json::json!(guardrails));
        }
        let numbers = [
            (
                "max_budget",
                serde_json::json!(parse_number("max_budget", &self.max_budget)?),
            ),
            (
                "rpm_limit",
                serde_json::json!(parse_count("rpm_limit", &self.rpm_limit)?),
            ),
            (
                "tpm_limit",
                serde_json::json!(parse_count("tpm_limit", &self.tpm_limit)?),
            ),
        ];
        for (k, v) in numbers {
            if !v.is_null() || update {
                m.insert(k.into(), v);
            }
        }
        Ok(serde_json::Value::Object(m))
    }

    fn of(k: &KeyRow) -> Self {
        let opt = |x: Option<String>| x.unwrap_or_default();
        KeyForm {
            key_alias: opt(k.key_alias.clone()),
            models: k.models.join(", "),
            max_budget: k.max_budget.map(|b| b.to_string()).unwrap_or_default(),
            rpm_limit: k.rpm_limit.map(|b| b.to_string()).unwrap_or_default(),
            tpm_limit: k.tpm_limit.map(|b| b.to_string()).unwrap_or_default(),
            budget_duration: opt(k.budget_duration.clone()),
            guardrails: k.guardrails.clone().unwrap_or_default().join(", "),
            ..Default::default()
        }
    }
}

#[server(prefix = "/ui/api", endpoint = "list_keys")]
pub async fn list_keys(page: u64, search: String) -> Result<KeyPage, ServerFnError> {
    crate::api::get_page(
        format!(
            "/key/list?return_full_object=true&page={}&size=50",
            page.max(1)
        ),
        ("search", &search),
        ["keys", "total_count", "current_page", "total_pages"],
    )
    .await
}

#[server(prefix = "/ui/api", endpoint = "create_key")]
pub async fn create_key(form: KeyForm) -> Result<NewSecret, ServerFnError> {
    use crate::api::{call_api, decode};
    let v = call_api(
        http::Method::POST,
        "/key/generate".into(),
        Some(form.body(false)?),
    )
    .await?;
    decode(v)
}

#[server(prefix = "/ui/api", endpoint = "update_key")]
pub async fn update_key(token: String, form: KeyForm) -> Result<(), ServerFnError> {
    let mut body = form.body(true)?;
    body["key"] = token.into();
    crate::api::post_api("/key/update", body).await
}

/// Block, unblock, regenerate or delete one key (by its token).
#[server(prefix = "/ui/api", endpoint = "key_action")]
pub async fn key_action(token: String, action: String) -> Result<Option<NewSecret>, ServerFnError> {
    use crate::api::{call_api, decode};
    let (path, body) = match action.as_str() {
        "block" => ("/key/block", serde_json::json!({"key": token})),
        "unblock" => ("/key/unblock", serde_json::json!({"key": token})),
        "delete" => ("/key/delete", serde_json::json!({"keys": [token]})),
        "regenerate" => ("/key/regenerate", serde_json::json!({"key": token})),
        other => return Err(ServerFnError::new(format!("unknown action {other:?}"))),
    };
    let v = call_api(http::Method::POST, path.into(), Some(body)).await?;
    Ok(if action == "regenerate" {
        Some(decode(v)?)
    } else {
        None
    })
}

#[component]
pub fn KeysPage() -> impl IntoView {
    let page = query_page();
    let search = query_param("q");
    // Bumped after every change, so the list is read again.
    let version = RwSignal::new(0u32);
    let keys = Resource::new(
        move || (page.get(), search.get(), version.get()),
        |(page, search, _)| list_keys(page, search),
    );
    let secret = RwSignal::new(None::<NewSecret>);
    let admin = is_admin();

    view! {
        <Title text="Keys · Tollgate" />
        <TopBar />
        <main class="page">
            <div class="page-header">
                <div>
                    <h1>"Keys"</h1>
                    <p class="muted">
                        "Virtual keys for the API: each with its own budget, limits and models."
                    </p>
                </div>
            </div>
            <NewKeyForm secret version admin />
            <SecretOnce secret />
            <SearchForm
                action="/ui/keys"
                id="key-search"
                label="Search keys"
                placeholder="Search by alias, name, user, email or team"
                value=search
            />
            <Transition fallback=|| view! { <p class="muted loading">"Loading keys…"</p> }>
                {move || {
                    keys.get()
                        .map(|r| match r {
                            Err(e) => view! { <ErrorBox error=e /> }.into_any(),
                            Ok(p) if p.items.is_empty() => {
                                view! {
                                    <div class="panel empty" data-testid="empty-state">
                                        <p>
                                            {if search.get_untracked().is_empty() {
                                                "No keys yet. Create one above."
                                            } else {
                                                "No key matches this search."
                                            }}
                                        </p>
                                    </div>
                                }
                                    .into_any()
                            }
                            Ok(p) => view! { <KeyTable p secret version /> }.into_any(),
                        })
                }}
            </Transition>
        </main>
    }
}

/// The new secret, shown once with a copy button.
#[component]
fn SecretOnce(secret: RwSignal<Option<NewSecret>>) -> impl IntoView {
    let copied = RwSignal::new(false);
    move || {
        secret.get().map(|s| {
            let key = s.key.clone();
            view! {
                <div class="panel secret" role="status" data-testid="new-secret">
                    <p>
                        <strong>
                            {format!(
                                "Your new key{}",
                                s.key_alias.map(|a| format!(" “{a}”")).unwrap_or_default(),
                            )}
                        </strong>
                        " — copy it now: it is shown only once."
                    </p>
                    <div class="secret-row">
                        <input
                            class="secret-value"
                            readonly
                            data-testid="secret-value"
                            aria-label="New key"
                            value=s.key.clone()
                            on:focus=|ev| {
                                #[cfg(feature = "hydrate")]
                                {
                                    use leptos::wasm_bindgen::JsCast;
                                    if let Some(i) = ev
                                        .target()
                                        .and_then(|t| t.dyn_into::<leptos::web_sys::HtmlInputElement>().ok())
                                    {
                                        i.select();
                                    }
                                }
                                #[cfg(not(feature = "hydrate"))]
                                let _ = ev;
                            }
                        />
                        <button
                            class="btn btn-primary"
                            type="button"
                            data-testid="copy-secret"
                            on:click=move |_| {
                                copy_to_clipboard(&key);
                                copied.set(true);
                            }
                        >
                            {move || if copied.get() { "Copied" } else { "Copy" }}
                        </button>
                        <button
                            class="btn"
                            type="button"
                            on:click=move |_| {
                                copied.set(false);
                                secret.set(None);
                            }
                        >
                            "Done"
                        </button>
                    </div>
                </div>
            }
        })
    }
}

/// The create form; keeps what was typed when the server refuses it.
#[component]
fn NewKeyForm(
    secret: RwSignal<Option<NewSecret>>,
    version: RwSignal<u32>,
    admin: Signal<bool>,
) -> impl IntoView {
    let create = ServerAction::<CreateKey>::new();
    let f = KeyFormSignals::default();
    let pending = create.pending();
    let error = RwSignal::new(None::<ServerFnError>);
    let error_field = error_field(error);
    watch(create.value(), error, move |s| {
        secret.set(Some(s));
        f.clear();
        version.update(|v| *v += 1);
    });
    view! {
        <details class="panel form-panel" data-testid="new-key">
            <summary class="btn btn-primary">"Create key"</summary>
            <form
                class="form-grid"
                on:submit=move |ev| {
                    ev.prevent_default();
                    create.dispatch(CreateKey { form: f.value() });
                }
            >
                <Field label="Alias" name="key_alias" value=f.key_alias error_field placeholder="ci-bot" />
                <Field
                    label="Models"
                    name="models"
                    value=f.models
                    error_field
                    placeholder="all"
                    hint="Comma-separated; empty means every model"
                />
                <Field label="Max budget ($)" name="max_budget" value=f.max_budget error_field />
                <Field label="Requests / min" name="rpm_limit" value=f.rpm_limit error_field />
                <Field label="Tokens / min" name="tpm_limit" value=f.tpm_limit error_field />
                <Field
                    label="Expires after"
                    name="duration"
                    value=f.duration
                    error_field
                    placeholder="30d"
                    hint="e.g. 12h, 30d; empty never"
                />
                <Field
                    label="Budget resets every"
                    name="budget_duration"
                    value=f.budget_duration
                    error_field
                    placeholder="30d"
                    hint="e.g. 1d, 30d, 1mo; empty never"
                />
                <Field
                    label="Guardrails"
                    name="guardrails"
                    value=f.guardrails
                    error_field
                    hint="Always run for this key; comma-separated"
                />
                <Show when=move || admin.get()>
                    <Field label="User id" name="user_id" value=f.user_id error_field />
                    <Field label="Team id" name="team_id" value=f.team_id error_field />
                </Show>
                <div class="form-actions">
                    <button class="btn btn-primary" type="submit" disabled=move || pending.get()>
                        {move || if pending.get() { "Creating…" } else { "Create key" }}
                    </button>
                </div>
                <LastError error />
            </form>
        </details>
    }
}

/// The key form's inputs.
#[derive(Clone, Copy, Default)]
struct KeyFormSignals {
    key_alias: RwSignal<String>,
    models: RwSignal<String>,
    max_budget: RwSignal<String>,
    rpm_limit: RwSignal<String>,
    tpm_limit: RwSignal<String>,
    duration: RwSignal<String>,
    user_id: RwSignal<String>,
    team_id: RwSignal<String>,
    budget_duration: RwSignal<String>,
    guardrails: RwSignal<String>,
}

impl KeyFormSignals {
    fn value(&self) -> KeyForm {
        KeyForm {
            key_alias: self.key_alias.get_untracked(),
            models: self.models.get_untracked(),
            max_budget: self.max_budget.get_untracked(),
            rpm_limit: self.rpm_limit.get_untracked(),
            tpm_limit: self.tpm_limit.get_untracked(),
            duration: self.duration.get_untracked(),
            user_id: self.user_id.get_untracked(),
            team_id: self.team_id.get_untracked(),
            budget_duration: self.budget_duration.get_untracked(),
            guardrails: self.guardrails.get_untracked(),
        }
    }

    fn set(&self, k: KeyForm) {
        self.key_alias.set(k.key_alias);
        self.models.set(k.models);
        self.max_budget.set(k.max_budget);
        self.rpm_limit.set(k.rpm_limit);
        self.tpm_limit.set(k.tpm_limit);
        self.duration.set(k.duration);
        self.user_id.set(k.user_id);
        self.team_id.set(k.team_id);
        self.budget_duration.set(k.budget_duration);
        self.guardrails.set(k.guardrails);
    }

    fn clear(&self) {
        self.set(KeyForm::default());
    }
}

#[component]
fn KeyTable(
    p: KeyPage,
    secret: RwSignal<Option<NewSecret>>,
    version: RwSignal<u32>,
) -> impl IntoView {
    let KeyPage {
        items: keys,
        total,
        page,
        pages,
    } = p;
    let editing = RwSignal::new(None::<String>);
    view! {
        <div class="table-wrap">
            <table class="data" data-testid="keys-table">
                <thead>
                    <tr>
                        <th scope="col">"Key"</th>
                        <th scope="col">"User"</th>
                        <th scope="col">"Team"</th>
                        <th scope="col" class="num">"Spend / budget"</th>
                        <th scope="col">"Models"</th>
                        <th scope="col">"Limits"</th>
                        <th scope="col">"Expires"</th>
                        <th scope="col">"Status"</th>
                        <th scope="col">"Actions"</th>
                    </tr>
                </thead>
                <tbody>
                    {keys
                        .into_iter()
                        .map(|k| view! { <KeyRowView k secret version editing /> })
                        .collect_view()}
                </tbody>
            </table>
        </div>
        <Pager page pages total noun="keys" />
    }
}

#[component]
fn KeyRowView(
    k: KeyRow,
    secret: RwSignal<Option<NewSecret>>,
    version: RwSignal<u32>,
    editing: RwSignal<Option<String>>,
) -> impl IntoView {
    let act = ServerAction::<KeyAction>::new();
    let error = RwSignal::new(None::<ServerFnError>);
    watch(act.value(), error, move |s| {
        if s.is_some() {
            secret.set(s);
        }
        version.update(|v| *v += 1);
    });
    let token = StoredValue::new(k.token.clone());
    let run = move |action: &str| {
        act.dispatch(KeyAction {
            token: token.get_value(),
            action: action.to_string(),
        });
    };
    let blocked = k.blocked.unwrap_or(false);
    let name = k.key_alias.clone().unwrap_or_else(|| k.key_name.clone());
    let limits = match (k.rpm_limit, k.tpm_limit) {
        (None, None) => "—".to_string(),
        (r, t) => [r.map(|r| format!("{r} rpm")), t.map(|t| format!("{t} tpm"))]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" · "),
    };
    let is_editing = move || editing.get().as_deref() == Some(token.get_value().as_str());
    let form = KeyForm::of(&k);
    let expires = k.expires.clone();
    view! {
        <tr data-testid="key-row" class:blocked=blocked>
            <td>
                <span class="strong">{name.clone()}</span>
                <br />
                <code class="muted small">{k.key_name.clone()}</code>
            </td>
            <td class="small" data-testid="key-owner">
                <Owner email=k.user_email.clone() id=k.user_id.clone() />
            </td>
            <td class="mono small">{k.team_id.clone().unwrap_or_else(|| "—".into())}</td>
            <td class="num">{spend_of(k.spend, k.max_budget)}</td>
            <td class="small">
                {if k.models.is_empty() { "all".to_string() } else { k.models.join(", ") }}
            </td>
            <td class="small">{limits}</td>
            <td class="small">{k.expires.as_deref().map(short_time).unwrap_or_else(|| "never".into())}</td>
            <td>
                {if blocked {
                    view! { <span class="badge bad">"blocked"</span> }.into_any()
                } else {
                    view! { <span class="badge good">"active"</span> }.into_any()
                }}
            </td>
            <td class="actions">
                <button
                    class="btn btn-quiet"
                    type="button"
                    on:click=move |_| {
                        if is_editing() {
                            editing.set(None)
                        } else {
                            editing.set(Some(token.get_value()))
                        }
                    }
                >
                    "Edit"
                </button>
                <button
                    class="btn btn-quiet"
                    type="button"
                    on:click=move |_| run(if blocked { "unblock" } else { "block" })
                >
                    {if blocked { "Unblock" } else { "Block" }}
                </button>
                <ConfirmButton
                    label="Regenerate"
                    question=format!("Replace the secret of {name}? The old one stops working.")
                    on_confirm=Callback::new(move |_| run("regenerate"))
                />
                <ConfirmButton
                    label="Delete"
                    testid="delete-key"
                    question=format!("Delete {name}? Its spend stays in the logs.")
                    on_confirm=Callback::new(move |_| run("delete"))
                />
                <LastError error />
            </td>
        </tr>
        <Show when=is_editing>
            <tr class="edit-row">
                <td colspan="9">
                    <EditKey token=token.get_value() form=form.clone() expires=expires.clone() version editing />
                </td>
            </tr>
        </Show>
    }
}

#[component]
fn EditKey(
    token: String,
    form: KeyForm,
    /// The key's expiry now (RFC 3339), if it has one.
    expires: Option<String>,
    version: RwSignal<u32>,
    editing: RwSignal<Option<String>>,
) -> impl IntoView {
    let f = KeyFormSignals::default();
    f.set(form);
    let save = ServerAction::<UpdateKey>::new();
    let error = RwSignal::new(None::<ServerFnError>);
    let error_field = error_field(error);
    watch(save.value(), error, move |()| {
        editing.set(None);
        version.update(|v| *v += 1);
    });
    let token = StoredValue::new(token);
    view! {
        <form
            class="form-grid"
            data-testid="edit-key"
            on:submit=move |ev| {
                ev.prevent_default();
                save.dispatch(UpdateKey { token: token.get_value(), form: f.value() });
            }
        >
            <Field label="Alias" name="key_alias" value=f.key_alias error_field />
            <Field label="Models" name="models" value=f.models error_field hint="Empty: every model" />
            <Field label="Max budget ($)" name="max_budget" value=f.max_budget error_field />
            <Field label="Requests / min" name="rpm_limit" value=f.rpm_limit error_field />
            <Field label="Tokens / min" name="tpm_limit" value=f.tpm_limit error_field />
            <Field
                label="Budget resets every"
                name="budget_duration"
                value=f.budget_duration
                error_field
                hint="e.g. 1d, 30d, 1mo; empty never"
            />
            <Field
                label="Expires in"
                name="duration"
                value=f.duration
                error_field
                placeholder=if expires.is_some() { "keep" } else { "never" }
                hint="From now, e.g. 30d; \"never\" removes the expiry; empty keeps it"
            />
            <p class="muted small field-note" data-testid="key-expiry">
                {match expires.as_deref() {
                    Some(t) => format!("Expires now: {} UTC", short_time(t)),
                    None => "Does not expire now.".to_string(),
                }}
            </p>
            <Field label="Guardrails" name="guardrails" value=f.guardrails error_field hint="Comma-separated" />
            <div class="form-actions">
                <button class="btn btn-primary" type="submit">"Save"</button>
                <button class="btn" type="button" on:click=move |_| editing.set(None)>"Cancel"</button>
            </div>
            <LastError error />
        </form>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_fields_are_checked_and_named() {
        let mut f = KeyForm {
            max_budget: "ten".into(),
            ..Default::default()
        };
        let e = f.body(false).err().map(|e| split_error(&e));
        assert_eq!(e.map(|e| e.0), Some(Some("max_budget".to_string())));
        f.max_budget = "$12.5".into();
        f.rpm_limit = "-1".into();
        let e = f.body(false).err().map(|e| split_error(&e).0);
        assert_eq!(e, Some(Some("rpm_limit".to_string())));
        f.rpm_limit = "60".into();
        f.models = " gpt-4o, ,claude ".into();
        let b = f.body(false).map_err(|e| e.to_string());
        assert_eq!(
            b,
            Ok(
                serde_json::json!({"models": ["gpt-4o", "claude"], "max_budget": 12.5, "rpm_limit": 60})
            )
        );
        // An update clears what was emptied, and keeps the expiry unless asked.
        let b = KeyForm::default().body(true).map_err(|e| e.to_string());
        assert_eq!(
            b,
            Ok(
                serde_json::json!({"key_alias": null, "budget_duration": null, "models": [], "guardrails": [], "max_budget": null, "rpm_limit": null, "tpm_limit": null})
            )
        );
        let never = KeyForm {
            duration: "never".into(),
            ..Default::default()
        };
        let b = never.body(true).map_err(|e| e.to_string());
        assert_eq!(
            b.map(|b| b.get("duration").cloned()),
            Ok(Some(serde_json::Value::Null))
        );
        let thirty = KeyForm {
            duration: " 30d ".into(),
            ..Default::default()
        };
        let b = thirty.body(true).map_err(|e| e.to_string());
        assert_eq!(b.map(|b| b["duration"].clone()), Ok("30d".into()));
    }
}
