//! `/ui/models`: the model groups and the health of their deployments.

use leptos::{either::Either, prelude::*};
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

use crate::{
    api::{list_model_groups, DeploymentView, Health, ModelGroupView},
    widgets::AdminOnly,
    TopBar,
};

#[component]
pub fn ModelsPage() -> impl IntoView {
    // `?q=` pre-fills the filter, so the filter also works as a plain GET
    // form before (or without) the wasm bundle.
    let initial = use_query_map().with_untracked(|q| q.get("q").unwrap_or_default());
    let filter = RwSignal::new(initial.clone());
    let groups = Resource::new(|| (), |_| list_model_groups());

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
                        value=initial.clone()
                        prop:value=move || filter.get()
                        on:input=move |ev| filter.set(event_target_value(&ev))
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
                            groups
                                .get()
                                .map(|res| res.map(|groups| view! { <GroupTable groups filter /> }))
                        }}
                    </ErrorBoundary>
                </Transition>
            </AdminOnly>
    </main>
        }
}

#[component]
fn GroupTable(groups: Vec<ModelGroupView>, filter: RwSignal<String>) -> impl IntoView {
    let total = groups.len();
    let groups = StoredValue::new(groups);
    // Indexes of the groups that match the filter.
    let visible = Memo::new(move |_| {
        let query = filter.get();
        groups.with_value(|gs| {
            gs.iter()
                .enumerate()
                .filter(|(_, g)| g.matches(&query))
                .map(|(i, _)| i)
                .collect::<Vec<_>>()
        })
    });
    // Separate memo so the table is rebuilt only when it appears/disappears,
    // not on every keystroke (the rows below follow `visible` themselves).
    let none_visible = Memo::new(move |_| visible.read().is_empty());
    let noun = if total == 1 {
        "model group"
    } else {
        "model groups"
    };

    view! {
        <p class="count muted" data-testid="model-count" aria-live="polite">
            {move || format!("{} of {total} {noun}", visible.read().len())}
        </p>
        {move || {
            if total == 0 {
                view! {
                    <div class="panel empty" data-testid="empty-state">
                        <p>"No model groups are configured."</p>
                    </div>
                }
                .into_any()
            } else if none_visible.get() {
                view! {
                    <div class="panel empty" data-testid="empty-state">
                        <p>{move || format!("No model matches “{}”.", filter.get().trim())}</p>
                        <button
                            class="btn"
                            type="button"
                            on:click=move |_| filter.set(String::new())
                        >
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
                                    <th scope="col">"Health"</th>
                                    <th scope="col">"Last error"</th>
                                </tr>
                            </thead>
                            {move || {
                                visible
                                    .get()
                                    .into_iter()
                                    .filter_map(|i| groups.with_value(|gs| gs.get(i).cloned()))
                                    .map(|group| view! { <GroupRows group /> })
                                    .collect_view()
                            }}
                        </table>
                    </div>
                }
                .into_any()
            }
        }}
    }
}

/// One `<tbody>` per model group: a heading row, then one row per deployment.
#[component]
fn GroupRows(group: ModelGroupView) -> impl IntoView {
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
    let rows = if deployments.is_empty() {
        Either::Left(view! {
            <tr>
                <td colspan="6" class="muted">
                    "This group has no deployments."
                </td>
            </tr>
        })
    } else {
        Either::Right(
            deployments
                .into_iter()
                .map(|d| view! { <DeploymentRow d total_weight /> })
                .collect_view(),
        )
    };

    let data_model = model_name.clone();
    view! {
        <tbody class="group" data-testid="model-group" data-model=data_model>
            <tr class="group-head">
                <th colspan="6" scope="rowgroup">
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
fn DeploymentRow(d: DeploymentView, total_weight: f64) -> impl IntoView {
    let DeploymentView {
        id,
        provider,
        model,
        api_base,
        health,
        last_error,
        weight,
    } = d;
    let share =
        (total_weight > 0.0).then(|| format!("{:.0}%", weight.max(0.0) / total_weight * 100.0));
    let provider_class = format!("provider provider-{}", css_token(&provider));
    let badge_class = format!("badge badge-{}", health.as_str());

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
            <td data-label="Health">
                <span class=badge_class data-testid="health">
                    {health.as_str()}
                </span>
            </td>
            <td data-label="Last error" class="last-error">
                {match last_error {
                    Some(err) => Either::Left(view! { <span class="error-text">{err}</span> }),
                    None => Either::Right(view! { <span class="muted">"—"</span> }),
                }}
            </td>
        </tr>
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
    }

    #[test]
    fn provider_tokens_are_class_safe() {
        assert_eq!(css_token("OpenAI"), "openai");
        assert_eq!(css_token("x\" onclick=\"y"), "xonclicky");
    }
}
