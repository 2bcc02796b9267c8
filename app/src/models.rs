//! `/ui/models`: the model groups and the health of their deployments.
//! Admins test any deployment (one small real call, timed), and add, change
//! or delete the ones kept in the database; the config file's are read-only.

use leptos::{either::Either, prelude::*};
use leptos_meta::Title;
use leptos_router::{hooks::use_navigate, NavigateOptions};
use serde::{Deserialize, Serialize};

use crate::{
    api::{list_model_groups, DeploymentView, Health, ModelGroupPage, ModelGroupView, Pricing},
    widgets::{
        error_field, is_admin, query_page, query_param, thousands, watch, AdminOnly, ConfirmButton,
        Field, LastError, Pager, ToggleButton,
    },
    TopBar,
};

/// What the model form sends: text as typed, checked on the server.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct ModelForm {
    pub model_name: String,
    /// `litellm_params.model`, e.g. "openai/gpt-4o".
    pub model: String,
    pub api_base: String,
    /// Empty: keep the stored one (or none, for a new model).
    pub api_key: String,
    pub weight: String,
    pub rpm: String,
    pub tpm: String,
    /// USD per million input tokens; empty: the bundled price.
    #[serde(default)]
    pub input_cost: String,
    /// USD per million output tokens; empty: the bundled price.
    #[serde(default)]
    pub output_cost: String,
    /// The context window in tokens; empty: the bundled one.
    #[serde(default)]
    pub max_input_tokens: String,
}

impl ModelForm {
    fn of(d: &DeploymentView, model_name: &str) -> Self {
        ModelForm {
            model_name: model_name.to_string(),
            model: d.litellm_model.clone(),
            api_base: d.api_base.clone().unwrap_or_default(),
            api_key: String::new(),
            weight: fmt_weight(d.weight),
            rpm: d.rpm.map(|r| r.to_string()).unwrap_or_default(),
            tpm: d.tpm.map(|t| t.to_string()).unwrap_or_default(),
            input_cost: d
                .own_pricing
                .input_cost_per_token
                .map(per_million)
                .unwrap_or_default(),
            output_cost: d
                .own_pricing
                .output_cost_per_token
                .map(per_million)
                .unwrap_or_default(),
            max_input_tokens: d
                .own_pricing
                .max_input_tokens
                .map(|t| t.to_string())
                .unwrap_or_default(),
        }
    }

    /// The `/model/new` body, or the `/model/{id}/update` patch (where an
    /// emptied field is removed, and an empty key left as it is).
    #[cfg_attr(not(feature = "ssr"), allow(dead_code))]
    pub fn body(&self, update: bool) -> Result<serde_json::Value, ServerFnError> {
        use crate::keys::{parse_count, parse_number};
        use serde_json::Value;
        let name = self.model_name.trim();
        if name.is_empty() {
            return Err(crate::api::field_error(
                "model_name",
                "a model name is required",
            ));
        }
        let model = self.model.trim();
        if !model.contains('/') || model.ends_with('/') {
            return Err(crate::api::field_error(
                "model",
                "write the provider and the model, e.g. openai/gpt-4o",
            ));
        }
        let mut params = serde_json::Map::new();
        params.insert("model".into(), model.into());
        let mut put = |k: &str, v: Option<Value>| {
            if let Some(v) = v {
                params.insert(k.into(), v);
            } else if update {
                params.insert(k.into(), Value::Null);
            }
        };
        let base = self.api_base.trim();
        put("api_base", (!base.is_empty()).then(|| base.into()));
        put(
            "weight",
            parse_number("weight", &self.weight)?.map(Into::into),
        );
        put("rpm", parse_count("rpm", &self.rpm)?.map(Into::into));
        put("tpm", parse_count("tpm", &self.tpm)?.map(Into::into));
        if !self.api_key.trim().is_empty() {
            params.insert("api_key".into(), self.api_key.trim().into());
        }
        // Prices are typed per million tokens and stored per token, as
        // LiteLLM's model_info has them.
        let mut info = serde_json::Map::new();
        let mut put = |k: &str, v: Option<Value>| {
            if let Some(v) = v {
                info.insert(k.into(), v);
            } else if update {
                info.insert(k.into(), Value::Null);
            }
        };
        for (field, key, typed) in [
            ("input_cost", "input_cost_per_token", &self.input_cost),
            ("output_cost", "output_cost_per_token", &self.output_cost),
        ] {
            let price = parse_number(field, typed)?;
            if price.is_some_and(|p| p < 0.0) {
                return Err(crate::api::field_error(field, "a price cannot be negative"));
            }
            put(key, price.map(|p| (p / 1e6).into()));
        }
        put(
            "max_input_tokens",
            parse_count("max_input_tokens", &self.max_input_tokens)?.map(Into::into),
        );
        Ok(serde_json::json!({"model_name": name, "litellm_params": params, "model_info": info}))
    }
}

/// What a test call of one deployment found.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct TestResult {
    pub ok: bool,
    pub latency_ms: f64,
    pub error: Option<String>,
}

/// The API's field names (`litellm_params.api_base`) as the form's (`api_base`).
#[cfg(feature = "ssr")]
fn form_field(e: ServerFnError) -> ServerFnError {
    let (field, message) = crate::api::split_error(&e);
    match field.as_deref() {
        Some("litellm_params") => crate::api::field_error("model", message),
        Some(f) if f.starts_with("litellm_params.") => {
            crate::api::field_error(&f["litellm_params.".len()..], message)
        }
        _ => e,
    }
}

/// Adds a model (`id` empty) or changes a stored one.
#[server(prefix = "/ui/api", endpoint = "save_model")]
pub async fn save_model(id: String, form: ModelForm) -> Result<(), ServerFnError> {
    let (method, path) = if id.is_empty() {
        (http::Method::POST, "/model/new".to_string())
    } else {
        (
            http::Method::PATCH,
            format!("/model/{}/update", crate::urlencode(&id)),
        )
    };
    crate::api::call_api(method, path, Some(form.body(!id.is_empty())?))
        .await
        .map(|_| ())
        .map_err(form_field)
}

#[server(prefix = "/ui/api", endpoint = "delete_model")]
pub async fn delete_model(id: String) -> Result<(), ServerFnError> {
    crate::api::post_api("/model/delete", serde_json::json!({ "id": id })).await
}

/// Calls one deployment now (`/health?model_id=`) and times it.
#[server(prefix = "/ui/api", endpoint = "test_deployment")]
pub async fn test_deployment(id: String) -> Result<TestResult, ServerFnError> {
    let v = crate::api::call_api(
        http::Method::GET,
        format!("/health?model_id={}", crate::urlencode(&id)),
        None,
    )
    .await?;
    let (ok, entry) = match (
        v["healthy_endpoints"].get(0),
        v["unhealthy_endpoints"].get(0),
    ) {
        (Some(e), _) => (true, e),
        (None, Some(e)) => (false, e),
        (None, None) => return Err(ServerFnError::new("the check returned no result")),
    };
    Ok(TestResult {
        ok,
        latency_ms: entry["latency_ms"].as_f64().unwrap_or_default(),
        error: entry["error"].as_str().map(str::to_string),
    })
}

#[component]
pub fn ModelsPage() -> impl IntoView {
    // The filter and the page live in the address (`?q=&page=`): the filter
    // is also a plain GET form before (or without) the wasm bundle, and the
    // server filters and pages, so a long list costs one page.
    let query = query_param("q");
    let page = query_page();
    let filter = RwSignal::new(query.get_untracked());
    let version = RwSignal::new(0u32);
    let groups = Resource::new(
        move || (query.get(), page.get(), version.get()),
        |(q, page, _)| list_model_groups(q, page),
    );
    let admin = is_admin();
    let navigate = use_navigate();
    // Typing filters from the first page; the address follows, in place.
    let set_filter = Callback::new(move |q: String| {
        filter.set(q.clone());
        let to = if q.is_empty() {
            "/ui/models".to_string()
        } else {
            format!("/ui/models?q={}", crate::urlencode(&q))
        };
        navigate(
            &to,
            NavigateOptions {
                replace: true,
                scroll: false,
                ..Default::default()
            },
        );
    });

    view! {
            <Title text="Models · Tollgate" />
            <TopBar />
            <main class="page">
    <AdminOnly>
                <div class="page-header">
                    <div>
                        <h1>"Models"</h1>
                        <p class="muted">
                            "Model groups served by this gateway and the health of each deployment."
                        </p>
                    </div>
                    <button
                        class="btn"
                        type="button"
                        data-testid="refresh"
                        on:click=move |_| groups.refetch()
                    >
                        "Refresh"
                    </button>
                </div>
                <Show when=move || admin.get()>
                    <NewModelForm version />
                </Show>
                <form
                    class="toolbar"
                    method="get"
                    action="/ui/models"
                    role="search"
                    on:submit=|ev| ev.prevent_default()
                >
                    <label class="visually-hidden" for="model-filter">
                        "Filter models"
                    </label>
                    <input
                        id="model-filter"
                        class="filter"
                        type="search"
                        name="q"
                        placeholder="Filter models"
                        autocomplete="off"
                        spellcheck="false"
                        data-testid="model-filter"
                        value=query.get_untracked()
                        prop:value=move || filter.get()
                        on:input=move |ev| set_filter.run(event_target_value(&ev))
                    />
                </form>
                <Transition fallback=|| {
                    view! { <p class="muted loading">"Loading models…"</p> }
                }>
                    <ErrorBoundary fallback=|errors| {
                        view! {
                            <div class="alert" role="alert" data-testid="load-error">
                                <strong>"The model list could not be loaded."</strong>
                                <ul>
                                    {move || {
                                        errors
                                            .get()
                                            .into_iter()
                                            .map(|(_, e)| view! { <li>{e.to_string()}</li> })
                                            .collect_view()
                                    }}
                                </ul>
                            </div>
                        }
                    }>
                        {move || {
                            groups.get().map(|res| {
                                res.map(|p| view! { <GroupTable p query set_filter admin version /> })
                            })
                        }}
                    </ErrorBoundary>
                </Transition>
            </AdminOnly>
    </main>
        }
}

#[component]
fn GroupTable(
    p: ModelGroupPage,
    query: Memo<String>,
    set_filter: Callback<String>,
    admin: Signal<bool>,
    version: RwSignal<u32>,
) -> impl IntoView {
    let ModelGroupPage {
        groups,
        matching,
        total,
        page,
        pages,
    } = p;
    let noun = if total == 1 {
        "model group"
    } else {
        "model groups"
    };
    let count = format!("{} of {} {noun}", thousands(matching), thousands(total));
    let body = if total == 0 {
        view! {
            <div class="panel empty" data-testid="empty-state">
                <p>"No model groups are configured."</p>
            </div>
        }
        .into_any()
    } else if groups.is_empty() {
        view! {
            <div class="panel empty" data-testid="empty-state">
                <p>{format!("No model matches “{}”.", query.get_untracked().trim())}</p>
                <button class="btn" type="button" on:click=move |_| set_filter.run(String::new())>
                    "Clear filter"
                </button>
            </div>
        }
        .into_any()
    } else {
        view! {
            <div class="table-wrap">
                <table class="models">
                    <thead>
                        <tr>
                            <th scope="col">"Provider"</th>
                            <th scope="col">"Upstream model"</th>
                            <th scope="col">"API base"</th>
                            <th scope="col" class="num">
                                "Weight"
                            </th>
                            <th scope="col">"Price · context"</th>
                            <th scope="col">"Health"</th>
                            <th scope="col">"Last error"</th>
                            <th scope="col">"Actions"</th>
                        </tr>
                    </thead>
                    {groups
                        .into_iter()
                        .map(|group| view! { <GroupRows group admin version /> })
                        .collect_view()}
                </table>
            </div>
            {(pages > 1).then(|| view! { <Pager page pages total=matching noun="model groups" /> })}
        }
        .into_any()
    };
    view! {
        <p class="count muted" data-testid="model-count" aria-live="polite">
            {count}
        </p>
        {body}
    }
}

/// One `<tbody>` per model group: a heading row, then one row per deployment.
#[component]
fn GroupRows(group: ModelGroupView, admin: Signal<bool>, version: RwSignal<u32>) -> impl IntoView {
    let ModelGroupView {
        model_name,
        deployments,
    } = group;
    let total_weight: f64 = deployments.iter().map(|d| d.weight.max(0.0)).sum();
    let healthy = deployments
        .iter()
        .filter(|d| d.health == Health::Healthy)
        .count();
    let summary = match deployments.len() {
        0 => "no deployments".to_string(),
        1 => format!("1 deployment · {healthy} healthy"),
        n => format!("{n} deployments · {healthy} healthy"),
    };
    let group_name = model_name.clone();
    let rows = if deployments.is_empty() {
        Either::Left(view! {
            <tr>
                <td colspan="8" class="muted">
                    "This group has no deployments."
                </td>
            </tr>
        })
    } else {
        Either::Right(
            deployments
                .into_iter()
                .map(|d| {
                    let model_name = group_name.clone();
                    view! { <DeploymentRow d total_weight model_name admin version /> }
                })
                .collect_view(),
        )
    };

    let data_model = model_name.clone();
    view! {
        <tbody class="group" data-testid="model-group" data-model=data_model>
            <tr class="group-head">
                <th colspan="8" scope="rowgroup">
                    <span class="model-name" data-testid="model-name">
                        {model_name}
                    </span>
                    <span class="group-meta">{summary}</span>
                </th>
            </tr>
            {rows}
        </tbody>
    }
}

#[component]
fn DeploymentRow(
    d: DeploymentView,
    total_weight: f64,
    model_name: String,
    admin: Signal<bool>,
    version: RwSignal<u32>,
) -> impl IntoView {
    let form = ModelForm::of(&d, &model_name);
    let DeploymentView {
        id,
        provider,
        model,
        api_base,
        health,
        last_error,
        weight,
        db_model,
        pricing,
        ..
    } = d;
    let actions_id = id.clone();
    let share =
        (total_weight > 0.0).then(|| format!("{:.0}%", weight.max(0.0) / total_weight * 100.0));
    let provider_class = format!("provider provider-{}", css_token(&provider));
    // A test from this page updates the badge at once (the router records it too).
    let health = RwSignal::new(health);

    view! {
        <tr class="deployment" data-testid="deployment" data-deployment-id=id>
            <td data-label="Provider">
                <span class=provider_class data-testid="provider">
                    {provider}
                </span>
            </td>
            <td data-label="Upstream model">
                <code data-testid="upstream-model">{model}</code>
            </td>
            <td data-label="API base" class="api-base">
                {match api_base {
                    Some(base) => {
                        let title = base.clone();
                        Either::Left(view! { <span title=title>{base}</span> })
                    }
                    None => Either::Right(view! { <span class="muted">"default"</span> }),
                }}
            </td>
            <td data-label="Weight" class="num">
                <span>
                    {fmt_weight(weight)}
                    {share.map(|s| view! { <span class="share">{s}</span> })}
                </span>
            </td>
            <td data-label="Price · context" class="small" data-testid="pricing">
                {pricing_text(&pricing)}
            </td>
            <td data-label="Health">
                <span class=move || format!("badge badge-{}", health.get().as_str()) data-testid="health">
                    {move || health.get().as_str()}
                </span>
            </td>
            <td data-label="Last error" class="last-error">
                {match last_error {
                    Some(err) => Either::Left(view! { <span class="error-text">{err}</span> }),
                    None => Either::Right(view! { <span class="muted">"—"</span> }),
                }}
            </td>
            <td data-label="Actions" class="actions">
                <Show when=move || admin.get() fallback=|| view! { <span class="muted">"—"</span> }>
                    <DeploymentActions
                        id=actions_id.clone()
                        db_model
                        form=form.clone()
                        version
                        health
                    />
                </Show>
            </td>
        </tr>
    }
}

/// Test (any deployment); edit and delete (stored ones).
#[component]
fn DeploymentActions(
    id: String,
    db_model: bool,
    form: ModelForm,
    version: RwSignal<u32>,
    health: RwSignal<Health>,
) -> impl IntoView {
    let test = ServerAction::<TestDeployment>::new();
    Effect::new(move |_| {
        if let Some(Ok(r)) = test.value().get() {
            health.set(if r.ok {
                Health::Healthy
            } else {
                Health::Unhealthy
            });
        }
    });
    let remove = ServerAction::<DeleteModel>::new();
    let error = RwSignal::new(None::<ServerFnError>);
    watch(remove.value(), error, move |_| version.update(|v| *v += 1));
    let id = StoredValue::new(id);
    let editing = RwSignal::new(false);
    let form = StoredValue::new(form);
    view! {
        <div class="row-actions">
            <button
                class="btn"
                type="button"
                data-testid="test-model"
                disabled=move || test.pending().get()
                on:click=move |_| {
                    test.dispatch(TestDeployment { id: id.get_value() });
                }
            >
                {move || if test.pending().get() { "Testing…" } else { "Test" }}
            </button>
            {db_model.then(|| view! {
                <ToggleButton label="Edit" testid="edit-model" open=editing />
                <ConfirmButton
                    label="Delete"
                    testid="delete-model"
                    question="Delete this deployment?".to_string()
                    on_confirm=Callback::new(move |_| {
                        remove.dispatch(DeleteModel { id: id.get_value() });
                    })
                />
            })}
            {(!db_model).then(|| view! {
                <span class="muted small" title="Deployments from the config file are changed in the file">"config file"</span>
            })}
        </div>
        <p class="test-result" data-testid="test-result" aria-live="polite">
            {move || test.value().get().map(|r| match r {
                Ok(r) if r.ok => view! {
                    <span class="ok">{format!("answered in {}", ms(r.latency_ms))}</span>
                }.into_any(),
                Ok(r) => view! {
                    <span class="error-text">
                        {format!("failed after {}: {}", ms(r.latency_ms), r.error.unwrap_or_default())}
                    </span>
                }.into_any(),
                Err(e) => view! { <span class="error-text">{crate::api::split_error(&e).1}</span> }.into_any(),
            })}
        </p>
        <LastError error />
        <Show when=move || editing.get()>
            <ModelEditor id=id.get_value() initial=form.get_value() version on_done=Callback::new(move |_| editing.set(false)) />
        </Show>
    }
}

/// Adds a deployment kept in the database.
#[component]
fn NewModelForm(version: RwSignal<u32>) -> impl IntoView {
    view! {
        <details class="panel form-panel" data-testid="new-model">
            <summary class="btn btn-primary">"Add model"</summary>
            <p class="muted small">
                "Served at once, by every Tollgate process, without a restart. The API key is stored encrypted and never shown again."
            </p>
            <ModelEditor id=String::new() initial=ModelForm { weight: "1".into(), ..Default::default() } version on_done=Callback::new(|_| ()) />
        </details>
    }
}

/// The model form: a new deployment (`id` empty) or a stored one's changes.
#[component]
fn ModelEditor(
    id: String,
    initial: ModelForm,
    version: RwSignal<u32>,
    on_done: Callback<()>,
) -> impl IntoView {
    let save = ServerAction::<SaveModel>::new();
    let error = RwSignal::new(None::<ServerFnError>);
    let new = id.is_empty();
    let saved = RwSignal::new(false);
    let f = initial;
    let model_name = RwSignal::new(f.model_name);
    let model = RwSignal::new(f.model);
    let api_base = RwSignal::new(f.api_base);
    let api_key = RwSignal::new(String::new());
    let weight = RwSignal::new(f.weight);
    let rpm = RwSignal::new(f.rpm);
    let tpm = RwSignal::new(f.tpm);
    let input_cost = RwSignal::new(f.input_cost);
    let output_cost = RwSignal::new(f.output_cost);
    let max_input_tokens = RwSignal::new(f.max_input_tokens);
    watch(save.value(), error, move |_| {
        saved.set(true);
        api_key.set(String::new());
        if new {
            for s in [
                model_name,
                model,
                api_base,
                rpm,
                tpm,
                input_cost,
                output_cost,
                max_input_tokens,
            ] {
                s.set(String::new());
            }
            weight.set("1".into());
        }
        version.update(|v| *v += 1);
        on_done.run(());
    });
    let error_field = error_field(error);
    let id = StoredValue::new(id);
    view! {
        <form
            class="form-grid"
            data-testid="model-form"
            on:submit=move |ev| {
                ev.prevent_default();
                saved.set(false);
                save.dispatch(SaveModel {
                    id: id.get_value(),
                    form: ModelForm {
                        model_name: model_name.get_untracked(),
                        model: model.get_untracked(),
                        api_base: api_base.get_untracked(),
                        api_key: api_key.get_untracked(),
                        weight: weight.get_untracked(),
                        rpm: rpm.get_untracked(),
                        tpm: tpm.get_untracked(),
                        input_cost: input_cost.get_untracked(),
                        output_cost: output_cost.get_untracked(),
                        max_input_tokens: max_input_tokens.get_untracked(),
                    },
                });
            }
        >
            <Field label="Model name" name="model_name" value=model_name error_field hint="What clients send as `model`" />
            <Field label="Provider/model" name="model" value=model error_field placeholder="openai/gpt-4o" />
            <Field label="API base" name="api_base" value=api_base error_field hint="Empty: the provider's default" />
            <Field
                label="API key"
                name="api_key"
                kind="password"
                value=api_key
                error_field
                hint=if new { "Or os.environ/NAME" } else { "Empty: keep the stored key" }
            />
            <Field label="Weight" name="weight" value=weight error_field />
            <Field label="RPM" name="rpm" value=rpm error_field hint="Requests a minute it takes" />
            <Field label="TPM" name="tpm" value=tpm error_field hint="Tokens a minute it takes" />
            <Field label="Input $ / 1M tokens" name="input_cost" value=input_cost error_field hint="Empty: the bundled price" />
            <Field label="Output $ / 1M tokens" name="output_cost" value=output_cost error_field hint="Empty: the bundled price" />
            <Field label="Context window" name="max_input_tokens" value=max_input_tokens error_field hint="Tokens; empty: the bundled one" />
            <div class="form-actions">
                <button class="btn btn-primary" type="submit" disabled=move || save.pending().get()>
                    {if new { "Add model" } else { "Save" }}
                </button>
            </div>
            <LastError error />
            {move || (saved.get() && new).then(|| view! {
                <p class="ok" role="status" data-testid="model-saved">"Model added."</p>
            })}
        </form>
    }
}

/// A test's time: "0.4 ms", "12 ms", "1,250 ms".
fn ms(x: f64) -> String {
    if x < 10.0 {
        format!("{x:.1} ms")
    } else {
        format!("{} ms", crate::widgets::thousands(x.round() as u64))
    }
}

/// A price per token as typed per million tokens: 2.5e-6 → "2.5".
fn per_million(per_token: f64) -> String {
    let s = format!("{:.4}", per_token * 1e6);
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// A deployment's prices and context window, in one cell: "$2.5 · $10 / 1M · 128k".
fn pricing_text(p: &Pricing) -> String {
    let price = match (p.input_cost_per_token, p.output_cost_per_token) {
        (None, None) => "no price".to_string(),
        (i, o) => {
            let one = |x: Option<f64>| {
                x.map(|x| format!("${}", per_million(x)))
                    .unwrap_or("—".into())
            };
            format!("{} · {} / 1M", one(i), one(o))
        }
    };
    match p.max_input_tokens {
        Some(t) if t >= 1000 && t % 1000 == 0 => format!("{price} · {}k", t / 1000),
        Some(t) => format!("{price} · {}", crate::widgets::thousands(t)),
        None => price,
    }
}

/// `1.0` → "1", `0.25` → "0.25".
fn fmt_weight(w: f64) -> String {
    let s = format!("{w:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Keeps only `[a-z0-9-]`, so a provider name is safe in a class attribute.
fn css_token(s: &str) -> String {
    s.chars()
        .filter_map(|c| {
            let c = c.to_ascii_lowercase();
            (c.is_ascii_alphanumeric() || c == '-').then_some(c)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_are_short() {
        assert_eq!(fmt_weight(1.0), "1");
        assert_eq!(fmt_weight(0.25), "0.25");
        assert_eq!(fmt_weight(2.5), "2.5");
        assert_eq!(fmt_weight(0.0), "0");
        assert_eq!(ms(0.44), "0.4 ms");
        assert_eq!(ms(1250.2), "1,250 ms");
    }

    #[test]
    fn prices_are_typed_per_million_and_sent_per_token() -> Result<(), ServerFnError> {
        assert_eq!(per_million(2.5e-6), "2.5");
        assert_eq!(per_million(1.5e-7), "0.15");
        let p = Pricing {
            input_cost_per_token: Some(2.5e-6),
            output_cost_per_token: Some(1e-5),
            max_input_tokens: Some(128_000),
        };
        assert_eq!(pricing_text(&p), "$2.5 · $10 / 1M · 128k");
        assert_eq!(pricing_text(&Pricing::default()), "no price");
        let mut form = ModelForm {
            model_name: "m".into(),
            model: "openai/x".into(),
            input_cost: "2.5".into(),
            max_input_tokens: "8192".into(),
            ..Default::default()
        };
        let body = form.body(true)?;
        assert_eq!(body["model_info"]["input_cost_per_token"], 2.5e-6);
        assert_eq!(body["model_info"]["max_input_tokens"], 8192);
        // Emptied on an update: removed, so the bundled value applies again.
        assert!(body["model_info"]["output_cost_per_token"].is_null());
        assert!(form.body(false)?["model_info"]
            .get("output_cost_per_token")
            .is_none());
        form.output_cost = "-1".into();
        let e = form
            .body(false)
            .err()
            .map(|e| crate::api::split_error(&e).0);
        assert_eq!(e, Some(Some("output_cost".to_string())));
        Ok(())
    }

    #[test]
    fn provider_tokens_are_class_safe() {
        assert_eq!(css_token("OpenAI"), "openai");
        assert_eq!(css_token("x\" onclick=\"y"), "xonclicky");
    }
}
