//! The mock server: routing, the accept loop (with connection resets) and the handle.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;
use tower::Service;

use crate::common::{intake, json_response, openai_error, percent_decode, ResetConnection};
use crate::config::MockConfig;
use crate::fault::Fault;
use crate::state::{RecordedRequest, Shared};
use crate::{anthropic, bedrock, openai};

type St = State<Arc<Shared>>;

macro_rules! take_req {
    ($st:expr, $req:expr) => {
        match intake(&$st, $req).await {
            Ok(r) => r,
            Err(resp) => return resp,
        }
    };
}

async fn oa_chat(State(st): St, req: Request) -> Response {
    let r = take_req!(st, req);
    openai::chat(st, r, None).await
}

async fn az_chat(State(st): St, Path(dep): Path<String>, req: Request) -> Response {
    let r = take_req!(st, req);
    openai::chat(st, r, Some(dep)).await
}

async fn oa_embed(State(st): St, req: Request) -> Response {
    let r = take_req!(st, req);
    openai::embeddings(st, r, None).await
}

async fn az_embed(State(st): St, Path(dep): Path<String>, req: Request) -> Response {
    let r = take_req!(st, req);
    openai::embeddings(st, r, Some(dep)).await
}

async fn oa_models(State(st): St, req: Request) -> Response {
    let _ = take_req!(st, req);
    openai::models()
}

async fn an_messages(State(st): St, req: Request) -> Response {
    let r = take_req!(st, req);
    anthropic::messages(st, r).await
}

async fn an_count(State(st): St, req: Request) -> Response {
    let r = take_req!(st, req);
    anthropic::count_tokens(st, r).await
}

/// The `{modelId}` segment of `/model/{modelId}/...`, percent-decoded.
fn bedrock_model(path: &str) -> String {
    let seg = path
        .strip_prefix("/model/")
        .and_then(|rest| rest.split('/').next())
        .unwrap_or("");
    percent_decode(seg)
}

async fn br_converse(State(st): St, req: Request) -> Response {
    let model = bedrock_model(req.uri().path());
    let r = take_req!(st, req);
    bedrock::converse(st, r, model, false).await
}

async fn br_converse_stream(State(st): St, req: Request) -> Response {
    let model = bedrock_model(req.uri().path());
    let r = take_req!(st, req);
    bedrock::converse(st, r, model, true).await
}

async fn br_apply_guardrail(
    State(st): St,
    Path((id, version)): Path<(String, String)>,
    req: Request,
) -> Response {
    let r = take_req!(st, req);
    bedrock::apply_guardrail(st, r, percent_decode(&id), percent_decode(&version)).await
}

async fn br_invoke(State(st): St, req: Request) -> Response {
    let model = bedrock_model(req.uri().path());
    let r = take_req!(st, req);
    bedrock::invoke(st, r, model).await
}

/// Bedrock Agent `GetPrompt`: one canned chat prompt, `MOCKPROMPT1`
/// (variables `tone` and `topic`, model `us.anthropic.claude-3-5-sonnet-20241022-v2:0`).
async fn ba_get_prompt(Path(prompt_id): Path<String>, req: Request) -> Response {
    let id = percent_decode(&prompt_id);
    if id != "MOCKPROMPT1" && !id.ends_with(":prompt/MOCKPROMPT1") {
        return crate::common::bedrock_error(
            404,
            "ResourceNotFoundException",
            "The prompt was not found.",
        );
    }
    let version = req
        .uri()
        .query()
        .unwrap_or("")
        .split('&')
        .find_map(|kv| kv.strip_prefix("promptVersion="))
        .unwrap_or("DRAFT")
        .to_string();
    let intro = if version == "1" {
        "Describe"
    } else {
        "Explain"
    };
    json_response(
        StatusCode::OK,
        &json!({
            "id": "MOCKPROMPT1",
            "arn": "arn:aws:bedrock:us-west-2:111122223333:prompt/MOCKPROMPT1",
            "name": "mock-remote-prompt",
            "version": version,
            "defaultVariant": "v1",
            "variants": [{
                "name": "v1",
                "templateType": "CHAT",
                "templateConfiguration": {"chat": {
                    "system": [{"text": "You are a {{tone}} guide."}],
                    "messages": [{"role": "user", "content": [{"text": format!("{intro} {{{{topic}}}}")}]}],
                    "inputVariables": [{"name": "tone"}, {"name": "topic"}],
                }},
                "modelId": "us.anthropic.claude-3-5-sonnet-20241022-v2:0",
                "inferenceConfiguration": {"text": {"temperature": 0.2, "maxTokens": 50}},
            }],
            "createdAt": "2026-01-01T00:00:00Z",
            "updatedAt": "2026-01-01T00:00:00Z",
        }),
    )
}

async fn not_found(State(st): St, req: Request) -> Response {
    let path = req.uri().path().to_owned();
    let _ = take_req!(st, req);
    openai_error(
        404,
        &format!("mock upstream: no route for {path}"),
        "invalid_request_error",
        None,
        Some("unknown_url"),
    )
}

async fn faults_post(State(st): St, body: axum::body::Bytes) -> Response {
    let parsed: Result<Vec<Fault>, _> = serde_json::from_slice::<Vec<Fault>>(&body)
        .or_else(|_| serde_json::from_slice::<Fault>(&body).map(|f| vec![f]));
    match parsed {
        Ok(faults) => {
            let pending = st.faults.push(faults);
            json_response(StatusCode::OK, &json!({ "pending": pending }))
        }
        Err(e) => json_response(
            StatusCode::BAD_REQUEST,
            &json!({ "error": format!("invalid fault list: {e}") }),
        ),
    }
}

async fn faults_get(State(st): St) -> Response {
    json_response(StatusCode::OK, &st.faults.pending())
}

async fn faults_delete(State(st): St) -> Response {
    st.faults.clear();
    json_response(StatusCode::OK, &json!({ "pending": 0 }))
}

async fn requests_get(State(st): St) -> Response {
    json_response(StatusCode::OK, &st.requests())
}

async fn requests_delete(State(st): St) -> Response {
    st.clear_requests();
    json_response(StatusCode::OK, &json!({ "cleared": true }))
}

async fn health(State(st): St) -> Response {
    json_response(
        StatusCode::OK,
        &json!({ "status": "ok", "active_streams": st.active_streams(),
                 "request_count": st.request_count() }),
    )
}

fn router(st: Arc<Shared>) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(oa_chat))
        .route("/chat/completions", post(oa_chat))
        .route(
            "/openai/deployments/{deployment}/chat/completions",
            post(az_chat),
        )
        .route("/v1/embeddings", post(oa_embed))
        .route("/embeddings", post(oa_embed))
        .route(
            "/openai/deployments/{deployment}/embeddings",
            post(az_embed),
        )
        .route("/v1/models", get(oa_models))
        .route("/models", get(oa_models))
        .route("/v1/messages", post(an_messages))
        .route("/v1/messages/count_tokens", post(an_count))
        .route("/model/{model_id}/converse", post(br_converse))
        .route(
            "/model/{model_id}/converse-stream",
            post(br_converse_stream),
        )
        .route("/model/{model_id}/invoke", post(br_invoke))
        .route(
            "/guardrail/{id}/version/{version}/apply",
            post(br_apply_guardrail),
        )
        .route("/prompts/{prompt_id}", get(ba_get_prompt))
        .route("/prompts/{prompt_id}/", get(ba_get_prompt))
        .route(
            "/__mock/faults",
            post(faults_post).get(faults_get).delete(faults_delete),
        )
        .route(
            "/__mock/requests",
            get(requests_get).delete(requests_delete),
        )
        .route("/__mock/health", get(health))
        .fallback(not_found)
        .with_state(st)
}

/// Accepts connections until `shutdown` fires; a response marked
/// [`ResetConnection`] makes its connection close with an RST instead.
async fn serve(listener: TcpListener, app: Router, mut shutdown: watch::Receiver<()>) {
    loop {
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(_) => {
                    // e.g. EMFILE: back off briefly instead of spinning.
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => break,
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let mut conn_shutdown = shutdown.clone();
        tokio::spawn(async move {
            let reset = Arc::new(Notify::new());
            let reset_svc = reset.clone();
            let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                let mut app = app.clone();
                let reset = reset_svc.clone();
                async move {
                    let resp = match app.call(req.map(Body::new)).await {
                        Ok(r) => r,
                        Err(never) => match never {},
                    };
                    if resp.extensions().get::<ResetConnection>().is_some() {
                        reset.notify_one();
                        std::future::pending::<()>().await;
                    }
                    Ok::<_, Infallible>(resp)
                }
            });
            let mut conn = hyper::server::conn::http1::Builder::new()
                .header_read_timeout(None)
                .serve_connection(TokioIo::new(stream), svc);
            tokio::select! {
                _ = &mut conn => {}
                _ = reset.notified() => {
                    let parts = conn.into_parts();
                    let _ = parts.io.inner().set_zero_linger();
                }
                _ = conn_shutdown.changed() => {}
            }
        });
    }
}

/// A running mock upstream. Dropping it (or [`MockHandle::shutdown`]) stops the
/// server and closes its connections.
pub struct MockHandle {
    /// The bound address.
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: Option<watch::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for MockHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockHandle")
            .field("addr", &self.addr)
            .finish()
    }
}

/// Starts a mock upstream on `127.0.0.1:0` (a free port).
pub async fn start(config: MockConfig) -> std::io::Result<MockHandle> {
    start_on(SocketAddr::from(([127, 0, 0, 1], 0)), config).await
}

/// Starts a mock upstream on `addr`.
pub async fn start_on(addr: SocketAddr, config: MockConfig) -> std::io::Result<MockHandle> {
    start_with_listener(TcpListener::bind(addr).await?, config)
}

/// Starts a mock upstream on an already bound listener.
pub fn start_with_listener(
    listener: TcpListener,
    config: MockConfig,
) -> std::io::Result<MockHandle> {
    let addr = listener.local_addr()?;
    let shared = Arc::new(Shared::new(config));
    let (tx, rx) = watch::channel(());
    let task = tokio::spawn(serve(listener, router(shared.clone()), rx));
    Ok(MockHandle {
        addr,
        shared,
        shutdown: Some(tx),
        task: Some(task),
    })
}

impl MockHandle {
    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `base_url()` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn config(&self) -> &MockConfig {
        &self.shared.config
    }

    /// Appends faults to the queue (consumed one per matching LLM request, in order).
    pub fn push_faults(&self, faults: impl IntoIterator<Item = Fault>) {
        self.shared.faults.push(faults);
    }

    pub fn push_fault(&self, fault: Fault) {
        self.shared.faults.push([fault]);
    }

    pub fn clear_faults(&self) {
        self.shared.faults.clear();
    }

    /// Faults not yet consumed.
    pub fn pending_faults(&self) -> Vec<Fault> {
        self.shared.faults.pending()
    }

    /// Recorded requests (empty when `record` is off).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.requests()
    }

    /// The most recent recorded request.
    pub fn last_request(&self) -> Option<RecordedRequest> {
        self.shared.requests().pop()
    }

    /// LLM requests received since start / the last clear (counted even when
    /// `record` is off; `/__mock/*` calls are not counted).
    pub fn request_count(&self) -> usize {
        self.shared.request_count()
    }

    /// Clears recorded requests and the request count.
    pub fn clear_requests(&self) {
        self.shared.clear_requests();
    }

    /// Streaming responses currently in flight (a client disconnect ends its stream).
    pub fn active_streams(&self) -> usize {
        self.shared.active_streams()
    }

    /// Waits until `active_streams() == n`; false on timeout.
    pub async fn wait_for_active_streams(&self, n: usize, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self.active_streams() == n {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Waits until at least `n` LLM requests were received; false on timeout.
    pub async fn wait_for_requests(&self, n: usize, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self.request_count() >= n {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Stops accepting, closes connections and waits for the accept loop to end.
    pub async fn shutdown(mut self) {
        self.shutdown.take();
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for MockHandle {
    fn drop(&mut self) {
        self.shutdown.take();
    }
}

/// Parses a `/__mock/requests` JSON answer (for out-of-process users).
pub fn parse_recorded(v: &Value) -> Option<Vec<RecordedRequest>> {
    serde_json::from_value(v.clone()).ok()
}
