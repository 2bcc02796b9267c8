//! TEMPORARY: serves the console with fixed sample data, without the rest of
//! the gateway, while the server's main is being written. Delete when done.
//!
//!   PORT=3100 TOLLGATE_SITE_ROOT=site cargo run -p server --bin ui_preview

#[path = "../ui.rs"]
mod ui;

use std::{net::SocketAddr, sync::Arc};

use app::{ConsoleBackend, DeploymentView, Health, ModelGroupView};

struct Sample;

fn dep(
    id: &str,
    provider: &str,
    model: &str,
    api_base: Option<&str>,
    health: Health,
    last_error: Option<&str>,
    weight: f64,
) -> DeploymentView {
    DeploymentView {
        id: id.into(),
        provider: provider.into(),
        model: model.into(),
        api_base: api_base.map(Into::into),
        health,
        last_error: last_error.map(Into::into),
        weight,
    }
}

impl ConsoleBackend for Sample {
    fn model_groups(&self) -> Vec<ModelGroupView> {
        vec![
            ModelGroupView {
                model_name: "gpt-4o".into(),
                deployments: vec![
                    dep("gpt-4o-openai", "openai", "gpt-4o", Some("https://api.openai.com/v1"), Health::Healthy, None, 2.0),
                    dep(
                        "gpt-4o-azure",
                        "azure",
                        "gpt-4o-2024-08-06",
                        Some("https://tollgate-eastus.openai.azure.com"),
                        Health::Unhealthy,
                        Some("429 Too Many Requests: rate limit exceeded for deployment gpt-4o (retry after 20s)"),
                        1.0,
                    ),
                ],
            },
            ModelGroupView {
                model_name: "claude-3-5-sonnet".into(),
                deployments: vec![
                    dep("claude-anthropic", "anthropic", "claude-3-5-sonnet-20241022", None, Health::Healthy, None, 1.0),
                    dep(
                        "claude-bedrock",
                        "bedrock",
                        "anthropic.claude-3-5-sonnet-20241022-v2:0",
                        Some("https://bedrock-runtime.us-east-1.amazonaws.com"),
                        Health::Unknown,
                        None,
                        1.0,
                    ),
                ],
            },
            ModelGroupView {
                model_name: "text-embedding-3-small".into(),
                deployments: vec![dep("emb-openai", "openai", "text-embedding-3-small", None, Health::Healthy, None, 1.0)],
            },
            ModelGroupView {
                model_name: "demo".into(),
                deployments: vec![dep("demo-1", "demo", "demo-echo", None, Health::Healthy, None, 1.0)],
            },
        ]
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let port: u16 = std::env::var("PORT").ok().and_then(|p| p.parse().ok()).unwrap_or(3100);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let site_root = std::env::var("TOLLGATE_SITE_ROOT").unwrap_or_else(|_| "site".into());
    let options = ui::leptos_options(&site_root, addr);
    let mut app = ui::router(options, Arc::new(Sample));
    if let Ok(key) = std::env::var("PREVIEW_MASTER_KEY") {
        app = with_fake_auth(app, key);
    }
    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!("ui_preview listening on http://{addr} (site root {site_root})");
    axum::serve(listener, app).await?;
    Ok(())
}

/// A stand-in for the real server's auth, to exercise the test's sign-in path.
fn with_fake_auth(app: axum::Router, key: String) -> axum::Router {
    use axum::{
        extract::Request,
        middleware::Next,
        response::{IntoResponse, Redirect, Response},
        routing::post,
        Form,
    };
    #[derive(serde::Deserialize)]
    struct Login {
        master_key: String,
        next: String,
    }
    let session = post(move |Form(l): Form<Login>| async move {
        if l.master_key == key {
            ([("set-cookie", "tg_preview=1; Path=/; HttpOnly")], Redirect::to(&l.next)).into_response()
        } else {
            Redirect::to(&format!("/ui/login?error=invalid&next={}", l.next)).into_response()
        }
    });
    async fn gate(req: Request, next: Next) -> Response {
        let path = req.uri().path().to_string();
        let authed = req
            .headers()
            .get("cookie")
            .and_then(|c| c.to_str().ok())
            .is_some_and(|c| c.contains("tg_preview=1"));
        if path.starts_with("/ui") && path != "/ui/login" && path != "/ui/session" && !authed {
            return Redirect::to(&format!("/ui/login?next={path}")).into_response();
        }
        next.run(req).await
    }
    app.route("/ui/session", session).layer(axum::middleware::from_fn(gate))
}
