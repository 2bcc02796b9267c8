//! Pieces every console page uses: the access gate, error and empty states,
//! the pager, money and date formats, and the confirm-twice button.

use leptos::prelude::*;
use leptos_router::hooks::use_query_map;

use crate::api::{split_error, Me};

/// The signed-in caller, loaded once per page by [`crate::App`].
pub type MeResource = Resource<Result<Me, ServerFnError>>;

pub fn use_me() -> MeResource {
    expect_context::<MeResource>()
}

/// Whether the signed-in caller may change things (admins; not viewers).
pub fn is_admin() -> Signal<bool> {
    let me = use_me();
    Signal::derive(move || me.get().and_then(|m| m.ok()).is_some_and(|m| m.admin))
}

/// A page's search: a plain GET form (`?q=`), so it works before (or
/// without) the wasm bundle. `children` are further fields before the box.
#[component]
pub fn SearchForm(
    /// The page's address, e.g. "/ui/keys".
    action: &'static str,
    /// The input's id, for its label.
    id: &'static str,
    label: &'static str,
    placeholder: &'static str,
    /// The search in the address.
    value: Memo<String>,
    #[prop(default = "Search")] button: &'static str,
    #[prop(optional)] children: Option<Children>,
) -> impl IntoView {
    view! {
        <form class="toolbar" method="get" action=action role="search">
            {children.map(|c| c())}
            <label class="visually-hidden" for=id>{label}</label>
            <input
                id=id
                class="filter"
                type="search"
                name="q"
                placeholder=placeholder
                value=move || value.get()
            />
            <button class="btn" type="submit">{button}</button>
        </form>
    }
}

/// A button that opens and closes something (an edit row, a form).
#[component]
pub fn ToggleButton(
    label: &'static str,
    testid: &'static str,
    open: RwSignal<bool>,
) -> impl IntoView {
    view! {
        <button
            class="btn"
            type="button"
            data-testid=testid
            aria-expanded=move || open.get().to_string()
            on:click=move |_| open.update(|o| *o = !*o)
        >
            {label}
        </button>
    }
}

/// Shows `children` to callers who may read everything; others get a 403
/// page (and the server functions behind the page refuse them too).
#[component]
pub fn AdminOnly(children: ChildrenFn) -> impl IntoView {
    let me = use_me();
    let children = StoredValue::new(children);
    view! {
        <Suspense fallback=|| view! { <p class="muted loading">"Loading…"</p> }>
            {move || {
                me.get()
                    .map(|m| match m {
                        Ok(m) if m.reads_all => children.with_value(|c| c()).into_any(),
                        Ok(_) => view! { <NoAccess /> }.into_any(),
                        Err(e) => view! { <ErrorBox error=e /> }.into_any(),
                    })
            }}
        </Suspense>
    }
}

/// A page only admins (and admin viewers) open: its title, the top bar,
/// and `children` behind [`AdminOnly`].
#[component]
pub fn AdminPage(title: &'static str, children: ChildrenFn) -> impl IntoView {
    view! {
        <leptos_meta::Title text=format!("{title} · Tollgate") />
        <crate::TopBar />
        <main class="page">
            <AdminOnly children />
        </main>
    }
}

#[component]
pub fn NoAccess() -> impl IntoView {
    #[cfg(feature = "ssr")]
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        response.set_status(http::StatusCode::FORBIDDEN);
    }
    view! {
        <div class="panel notfound" data-testid="no-access">
            <h1>"Not for your role"</h1>
            <p class="muted">"This page is for admins. Ask one if you need what it shows."</p>
            <a class="btn btn-primary" href="/ui/keys">
                "Go to your keys"
            </a>
        </div>
    }
}

/// A failed load or action, with the server's reason.
#[component]
pub fn ErrorBox(error: ServerFnError) -> impl IntoView {
    let (field, message) = split_error(&error);
    view! {
        <div class="alert" role="alert" data-testid="error">
            {field.map(|f| view! { <strong>{f}": "</strong> })}
            {message}
        </div>
    }
}

/// The page number in the address (`?page=`), from 1.
pub fn query_page() -> Memo<u64> {
    let q = use_query_map();
    Memo::new(move |_| {
        q.read()
            .get("page")
            .and_then(|p| p.parse::<u64>().ok())
            .filter(|p| *p >= 1)
            .unwrap_or(1)
    })
}

/// A query parameter of the address, or "".
pub fn query_param(name: &'static str) -> Memo<String> {
    let q = use_query_map();
    Memo::new(move |_| q.read().get(name).unwrap_or_default())
}

/// The current address with `page` set (other parameters kept).
fn page_href(page: u64) -> String {
    let q = use_query_map();
    let mut pairs: Vec<(String, String)> = q.with_untracked(|m| {
        m.clone()
            .into_iter()
            .filter(|(k, _)| k.as_ref() != "page")
            .map(|(k, v)| (k.to_string(), v))
            .collect()
    });
    pairs.push(("page".into(), page.to_string()));
    let query: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{}={}", crate::urlencode(k), crate::urlencode(v)))
        .collect();
    format!("?{}", query.join("&"))
}

/// "Page 2 of 40 · 1,980 keys" with previous and next links.
#[component]
pub fn Pager(page: u64, pages: u64, total: u64, noun: &'static str) -> impl IntoView {
    let prev = (page > 1).then(|| page_href(page - 1));
    let next = (page < pages).then(|| page_href(page + 1));
    view! {
        <nav class="pager" aria-label="Pages" data-testid="pager">
            <span class="muted">
                {format!(
                    "Page {} of {} · {} {}",
                    page,
                    pages.max(1),
                    thousands(total),
                    if total == 1 { noun.trim_end_matches('s') } else { noun },
                )}
            </span>
            {match prev {
                Some(h) => view! { <a class="btn" href=h rel="prev">"← Previous"</a> }.into_any(),
                None => view! { <span class="btn disabled" aria-disabled="true">"← Previous"</span> }.into_any(),
            }}
            {match next {
                Some(h) => view! { <a class="btn" href=h rel="next">"Next →"</a> }.into_any(),
                None => view! { <span class="btn disabled" aria-disabled="true">"Next →"</span> }.into_any(),
            }}
        </nav>
    }
}

/// 1234567 → "1,234,567".
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Dollars: cents for sums, more digits for the small costs of single calls.
pub fn money(x: f64) -> String {
    if x == 0.0 {
        "$0".into()
    } else if x.abs() >= 100.0 {
        format!("${:.0}", x)
    } else if x.abs() >= 1.0 {
        format!("${:.2}", x)
    } else {
        // Small costs keep their digits, without trailing zeros: $0.5, $0.015.
        let s = format!("{:.4}", x);
        let s = s.trim_end_matches('0').trim_end_matches('.');
        if s == "0" || s == "-0" {
            format!("${:.6}", x).trim_end_matches('0').to_string()
        } else {
            format!("${s}")
        }
    }
}

/// Spend against a budget: "$1.20 / $10" or "$1.20 / no limit".
pub fn spend_of(spend: f64, budget: Option<f64>) -> String {
    match budget {
        Some(b) => format!("{} / {}", money(spend), money(b)),
        None => format!("{} / no limit", money(spend)),
    }
}

/// An RFC 3339 time as "2026-11-24 01:11" (UTC).
pub fn short_time(t: &str) -> String {
    let t = t.replace('T', " ");
    t.get(..16).map(str::to_string).unwrap_or(t)
}

/// A destructive action: the first press asks, the second does it.
#[component]
pub fn ConfirmButton(
    /// What the button says ("Delete").
    label: &'static str,
    /// The question asked before doing it.
    question: String,
    on_confirm: Callback<()>,
    #[prop(optional)] testid: &'static str,
) -> impl IntoView {
    let asking = RwSignal::new(false);
    view! {
        <Show
            when=move || asking.get()
            fallback=move || {
                view! {
                    <button
                        class="btn btn-danger-quiet"
                        type="button"
                        data-testid=testid
                        on:click=move |_| asking.set(true)
                    >
                        {label}
                    </button>
                }
            }
        >
            <span class="confirm" role="group" aria-label=question.clone()>
                <span class="confirm-q">{question.clone()}</span>
                <button
                    class="btn btn-danger"
                    type="button"
                    data-testid="confirm-yes"
                    on:click=move |_| {
                        asking.set(false);
                        on_confirm.run(());
                    }
                >
                    {format!("Yes, {}", label.to_lowercase())}
                </button>
                <button class="btn" type="button" on:click=move |_| asking.set(false)>
                    "Cancel"
                </button>
            </span>
        </Show>
    }
}

/// A labelled form input bound to a signal; marked invalid when the last
/// error named `name`.
#[component]
pub fn Field(
    label: &'static str,
    name: &'static str,
    value: RwSignal<String>,
    error_field: Signal<Option<String>>,
    #[prop(optional)] kind: &'static str,
    #[prop(optional)] placeholder: &'static str,
    #[prop(optional)] hint: &'static str,
) -> impl IntoView {
    // The label wraps its input, which labels it without an id: a page may
    // hold the same form twice (a new key and a key being edited), and ids
    // would repeat.
    let invalid = move || error_field.get().as_deref() == Some(name);
    view! {
        <label class="field">
            <span class="field-label">{label}</span>
            <input
                name=name
                type=if kind.is_empty() { "text" } else { kind }
                placeholder=placeholder
                autocomplete="off"
                aria-invalid=move || invalid().then_some("true")
                class:invalid=invalid
                bind:value=value
            />
            {(!hint.is_empty()).then(|| view! { <span class="field-hint muted">{hint}</span> })}
        </label>
    }
}

/// Copies `text` to the clipboard (the browser asks no permission for a click).
pub fn copy_to_clipboard(text: &str) {
    #[cfg(feature = "hydrate")]
    {
        let _ = window().navigator().clipboard().write_text(text);
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = text;
}

/// Follows a server action: its error goes to `error`; on success the error
/// is cleared and `on_ok` runs.
pub fn watch<T: Clone + Send + Sync + 'static>(
    value: impl Get<Value = Option<Result<T, ServerFnError>>> + 'static,
    error: RwSignal<Option<ServerFnError>>,
    on_ok: impl Fn(T) + 'static,
) {
    Effect::new(move |_| match value.get() {
        Some(Ok(v)) => {
            error.set(None);
            on_ok(v);
        }
        Some(Err(e)) => error.set(Some(e)),
        None => {}
    });
}

/// The field the last error named, for [`Field`].
pub fn error_field(error: RwSignal<Option<ServerFnError>>) -> Signal<Option<String>> {
    Signal::derive(move || error.get().and_then(|e| split_error(&e).0))
}

/// The error of the last action, if any.
#[component]
pub fn LastError(error: RwSignal<Option<ServerFnError>>) -> impl IntoView {
    move || error.get().map(|e| view! { <ErrorBox error=e /> })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_keeps_small_costs_readable() {
        assert_eq!(money(0.0), "$0");
        assert_eq!(money(0.5), "$0.5");
        assert_eq!(money(0.015), "$0.015");
        assert_eq!(money(0.000012), "$0.000012");
        assert_eq!(money(12.345), "$12.35");
        assert_eq!(money(1234.0), "$1234");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(thousands(12), "12");
    }
}

/// Who a key or a call belongs to: the user's email (the id on hover), the
/// id when there is no email, or a dash.
#[component]
pub fn Owner(email: Option<String>, id: Option<String>) -> impl IntoView {
    match (email, id) {
        (Some(email), id) => view! { <span title=id>{email}</span> }.into_any(),
        (None, Some(id)) => view! { <span class="mono">{id}</span> }.into_any(),
        (None, None) => view! { <span class="muted">"—"</span> }.into_any(),
    }
}
