//! `/ui/dashboard`: spend, requests, tokens, errors and latency over time,
//! the top spenders, and budgets against their limits. Charts are SVG drawn
//! here, labelled so they read without hovering.

use leptos::prelude::*;
use leptos_meta::Title;
use serde::{Deserialize, Serialize};

use crate::widgets::{money, query_param, short_time, thousands, ErrorBox};
use crate::TopBar;

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct Figures {
    #[serde(default)]
    pub start: Option<String>,
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    pub requests: i64,
    pub errors: i64,
    pub error_rate: f64,
    pub tokens: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub spend: f64,
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct Breakdowns {
    pub model: Vec<Figures>,
    pub api_key: Vec<Figures>,
    pub team: Vec<Figures>,
    pub user: Vec<Figures>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct BudgetUse {
    pub kind: String,
    pub id: String,
    pub name: String,
    pub spend: f64,
    pub max_budget: f64,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Activity {
    pub period: String,
    pub start: String,
    pub end: String,
    pub totals: Figures,
    pub series: Vec<Figures>,
    pub breakdowns: Breakdowns,
    pub budgets: Vec<BudgetUse>,
}

/// The ranges the dashboard offers: (name, label, period, days back).
const RANGES: &[(&str, &str, &str, u64)] = &[
    ("24h", "Last 24 hours", "hour", 1),
    ("7d", "Last 7 days", "day", 7),
    ("30d", "Last 30 days", "day", 30),
    ("12m", "Last 12 months", "month", 365),
];

#[server(prefix = "/ui/api", endpoint = "activity")]
pub async fn load_activity(range: String) -> Result<Activity, ServerFnError> {
    use crate::api::{call_api, decode};
    let (_, _, period, days) = RANGES
        .iter()
        .find(|r| r.0 == range)
        .copied()
        .unwrap_or(RANGES[2]);
    let mut path = format!("/spend/activity?period={period}");
    // By hour the API's own window is the range (the current hour and the 23
    // before it); by day and month, the range ends today (UTC).
    if period != "hour" {
        let start = chrono::Utc::now().date_naive() - chrono::Days::new(days - 1);
        path.push_str(&format!("&start_date={start}"));
    }
    decode(call_api(http::Method::GET, path, None).await?)
}

#[component]
pub fn DashboardPage() -> impl IntoView {
    let range = query_param("range");
    let data = Resource::new(move || range.get(), load_activity);
    let current = move || {
        let r = range.get();
        if RANGES.iter().any(|x| x.0 == r) {
            r
        } else {
            "30d".to_string()
        }
    };
    view! {
        <Title text="Dashboard · Tollgate" />
        <TopBar />
        <main class="page">
            <div class="page-header">
                <div>
                    <h1>"Dashboard"</h1>
                    <p class="muted">"Spend and traffic through the gateway (UTC). Admins see all; users their own."</p>
                </div>
                <nav class="segmented" aria-label="Time range">
                    {RANGES
                        .iter()
                        .map(|(name, label, _, _)| {
                            let name = *name;
                            view! {
                                <a
                                    href=format!("/ui/dashboard?range={name}")
                                    class:active=move || current() == name
                                    aria-current=move || (current() == name).then_some("page")
                                >
                                    {*label}
                                </a>
                            }
                        })
                        .collect_view()}
                </nav>
            </div>
            <Transition fallback=|| view! { <p class="muted loading">"Loading the dashboard…"</p> }>
                {move || data.get().map(|r| match r {
                    Err(e) => view! { <ErrorBox error=e /> }.into_any(),
                    Ok(a) => view! { <DashboardBody a /> }.into_any(),
                })}
            </Transition>
        </main>
    }
}

fn ms(x: Option<f64>) -> String {
    x.map(|v| format!("{} ms", thousands(v.round().max(0.0) as u64)))
        .unwrap_or_else(|| "—".into())
}

/// A bucket's label on the time axis.
fn bucket_label(period: &str, start: &str) -> String {
    match period {
        "hour" => start.get(11..16).unwrap_or(start).to_string(),
        "month" => start.get(..7).unwrap_or(start).to_string(),
        _ => start.get(5..10).unwrap_or(start).to_string(),
    }
}

#[component]
fn DashboardBody(a: Activity) -> impl IntoView {
    let t = a.totals.clone();
    let period = a.period.clone();
    let labels: Vec<String> = a
        .series
        .iter()
        .map(|p| bucket_label(&period, p.start.as_deref().unwrap_or_default()))
        .collect();
    let series = |f: fn(&Figures) -> f64| a.series.iter().map(f).collect::<Vec<f64>>();
    let spend = series(|p| p.spend);
    let requests = series(|p| p.requests as f64);
    let errors = series(|p| p.errors as f64);
    let tokens = series(|p| p.tokens as f64);
    let p50 = series(|p| p.p50_ms.unwrap_or(0.0));
    let p95 = series(|p| p.p95_ms.unwrap_or(0.0));
    let empty = t.requests == 0;
    view! {
        <section class="tiles" aria-label="Totals" data-testid="totals">
            <Tile label="Spend" value=money(t.spend) testid="total-spend" />
            <Tile label="Requests" value=thousands(t.requests.max(0) as u64) testid="total-requests" />
            <Tile label="Tokens" value=thousands(t.tokens.max(0) as u64) testid="total-tokens" />
            <Tile label="Error rate" value=format!("{:.1}%", t.error_rate * 100.0) testid="error-rate" />
            <Tile label="Latency p50" value=ms(t.p50_ms) testid="p50" />
            <Tile label="Latency p95" value=ms(t.p95_ms) testid="p95" />
        </section>
        <p class="muted small">{format!("{} to {}", short_time(&a.start), short_time(&a.end))}</p>
        {empty.then(|| view! {
            <div class="panel empty" data-testid="empty-state">
                <p>"No requests in this range yet. Calls made with a key appear here within seconds."</p>
            </div>
        })}
        <div class="charts">
            <Chart title="Spend" values=spend labels=labels.clone() format=money />
            <Chart
                title="Requests (errors in red)"
                values=requests
                overlay=errors
                labels=labels.clone()
                format=|v| thousands(v.max(0.0) as u64)
            />
            <Chart title="Tokens" values=tokens labels=labels.clone() format=|v| thousands(v.max(0.0) as u64) />
            <Chart
                title="Latency p95 (p50 darker)"
                values=p95
                overlay=p50
                overlay_class="bar-p50"
                labels=labels
                format=|v| format!("{} ms", thousands(v.max(0.0) as u64))
            />
        </div>
        <div class="breakdowns">
            <Breakdown title="Top models" rows=a.breakdowns.model testid="top-models" />
            <Breakdown title="Top keys" rows=a.breakdowns.api_key testid="top-keys" />
            <Breakdown title="Top teams" rows=a.breakdowns.team testid="top-teams" />
            <Breakdown title="Top users" rows=a.breakdowns.user testid="top-users" />
        </div>
        <Budgets budgets=a.budgets />
    }
}

#[component]
fn Tile(label: &'static str, value: String, testid: &'static str) -> impl IntoView {
    view! {
        <div class="tile">
            <span class="tile-label">{label}</span>
            <span class="tile-value" data-testid=testid>{value}</span>
        </div>
    }
}

/// A bar chart over time: the y axis labelled at its top and middle, the x
/// axis at its ends and middle, every bar titled with its exact value.
/// `overlay` (errors, p50) is drawn over the bars in another colour.
#[component]
fn Chart(
    title: &'static str,
    values: Vec<f64>,
    labels: Vec<String>,
    format: fn(f64) -> String,
    #[prop(optional)] overlay: Option<Vec<f64>>,
    #[prop(optional)] overlay_class: Option<&'static str>,
) -> impl IntoView {
    const W: f64 = 600.0;
    const H: f64 = 180.0;
    const LEFT: f64 = 64.0;
    const BOTTOM: f64 = 22.0;
    let n = values.len().max(1);
    let max = values.iter().copied().fold(0.0f64, f64::max);
    let top = if max > 0.0 { max } else { 1.0 };
    let plot_w = W - LEFT;
    let plot_h = H - BOTTOM - 8.0;
    let slot = plot_w / n as f64;
    let bar_w = (slot * 0.8).max(1.0);
    let y = move |v: f64| 8.0 + plot_h * (1.0 - (v / top).clamp(0.0, 1.0));
    let bars = values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let x = LEFT + slot * i as f64 + (slot - bar_w) / 2.0;
            let y0 = y(*v);
            let label = labels.get(i).cloned().unwrap_or_default();
            view! {
                <rect class="bar" x=format!("{x:.1}") y=format!("{y0:.1}") width=format!("{bar_w:.1}") height=format!("{:.1}", 8.0 + plot_h - y0)>
                    <title>{format!("{label}: {}", format(*v))}</title>
                </rect>
            }
        })
        .collect_view();
    let overlay_bars = overlay.map(|o| {
        let class = overlay_class.unwrap_or("bar-error");
        o.iter()
            .enumerate()
            .filter(|(_, v)| **v > 0.0)
            .map(|(i, v)| {
                let x = LEFT + slot * i as f64 + (slot - bar_w) / 2.0;
                let y0 = y(*v);
                view! {
                    <rect class=class x=format!("{x:.1}") y=format!("{y0:.1}") width=format!("{bar_w:.1}") height=format!("{:.1}", 8.0 + plot_h - y0)>
                        <title>{format(*v)}</title>
                    </rect>
                }
            })
            .collect_view()
    });
    let x_labels = {
        let picks: Vec<usize> = if labels.len() <= 2 {
            (0..labels.len()).collect()
        } else {
            vec![0, labels.len() / 2, labels.len() - 1]
        };
        picks
            .into_iter()
            .map(|i| {
                let x = LEFT + slot * i as f64 + slot / 2.0;
                let anchor = if i == 0 { "start" } else if i + 1 == labels.len() { "end" } else { "middle" };
                view! {
                    <text class="axis" x=format!("{x:.1}") y=format!("{}", H - 6.0) text-anchor=anchor>
                        {labels[i].clone()}
                    </text>
                }
            })
            .collect_view()
    };
    let shown_max = if max > 0.0 { format(max) } else { format(0.0) };
    view! {
        <figure class="chart panel">
            <figcaption>
                <span class="chart-title">{title}</span>
                <span class="muted small">{format!("peak {shown_max}")}</span>
            </figcaption>
            <svg viewBox=format!("0 0 {W} {H}") role="img" aria-label=format!("{title}, peak {shown_max}") preserveAspectRatio="none">
                <line class="gridline" x1=LEFT y1="8" x2=W y2="8" />
                <line class="gridline" x1=LEFT y1=format!("{}", 8.0 + plot_h / 2.0) x2=W y2=format!("{}", 8.0 + plot_h / 2.0) />
                <line class="baseline" x1=LEFT y1=format!("{}", 8.0 + plot_h) x2=W y2=format!("{}", 8.0 + plot_h) />
                <text class="axis" x=LEFT - 6.0 y="14" text-anchor="end">{format(top)}</text>
                <text class="axis" x=LEFT - 6.0 y=format!("{}", 12.0 + plot_h / 2.0) text-anchor="end">{format(top / 2.0)}</text>
                <text class="axis" x=LEFT - 6.0 y=format!("{}", 8.0 + plot_h) text-anchor="end">"0"</text>
                {bars}
                {overlay_bars}
                {x_labels}
            </svg>
        </figure>
    }
}

#[component]
fn Breakdown(title: &'static str, rows: Vec<Figures>, testid: &'static str) -> impl IntoView {
    let max = rows.iter().map(|r| r.spend).fold(0.0f64, f64::max);
    let max_req = rows.iter().map(|r| r.requests).max().unwrap_or(0);
    view! {
        <section class="panel breakdown" data-testid=testid>
            <h2>{title}</h2>
            {if rows.is_empty() {
                view! { <p class="muted">"Nothing in this range."</p> }.into_any()
            } else {
                view! {
                    <table class="data compact">
                        <thead>
                            <tr>
                                <th scope="col">"Name"</th>
                                <th scope="col" class="num">"Spend"</th>
                                <th scope="col" class="num">"Requests"</th>
                                <th scope="col" class="num">"Tokens"</th>
                            </tr>
                        </thead>
                        <tbody>
                            {rows.into_iter().map(|r| {
                                // By spend; by requests when nothing cost anything.
                                let share = if max > 0.0 { r.spend / max } else if max_req > 0 { r.requests as f64 / max_req as f64 } else { 0.0 };
                                view! {
                                    <tr>
                                        <td>
                                            <span class="name">{r.name.clone().unwrap_or_default()}</span>
                                            <span class="share-bar" style=format!("width:{:.0}%", share * 100.0)></span>
                                        </td>
                                        <td class="num">{money(r.spend)}</td>
                                        <td class="num">{thousands(r.requests.max(0) as u64)}</td>
                                        <td class="num">{thousands(r.tokens.max(0) as u64)}</td>
                                    </tr>
                                }
                            }).collect_view()}
                        </tbody>
                    </table>
                }.into_any()
            }}
        </section>
    }
}

#[component]
fn Budgets(budgets: Vec<BudgetUse>) -> impl IntoView {
    view! {
        <section class="panel budgets" data-testid="budgets">
            <h2>"Budgets"</h2>
            {if budgets.is_empty() {
                view! { <p class="muted">"No key, user or team has a budget."</p> }.into_any()
            } else {
                budgets.into_iter().map(|b| {
                    let used = if b.max_budget > 0.0 { b.spend / b.max_budget } else { 0.0 };
                    let level = if used >= 1.0 { "over" } else if used >= 0.8 { "near" } else { "ok" };
                    view! {
                        <div class="budget-row">
                            <span class="budget-name">
                                <span class="badge">{b.kind.clone()}</span>" "{b.name.clone()}
                            </span>
                            <span class=format!("meter {level}") role="meter" aria-valuemin="0" aria-valuemax="100" aria-valuenow=format!("{:.0}", (used * 100.0).min(100.0)) aria-label=format!("{} budget used", b.name)>
                                <span style=format!("width:{:.0}%", (used * 100.0).min(100.0))></span>
                            </span>
                            <span class="num">{format!("{} of {} ({:.0}%)", money(b.spend), money(b.max_budget), used * 100.0)}</span>
                        </div>
                    }
                }).collect_view().into_any()
            }}
        </section>
    }
}
