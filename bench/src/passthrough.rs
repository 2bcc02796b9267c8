//! The speed-of-light reference proxy: forwards method, path, headers and body
//! to one upstream and streams the response back unchanged. No parsing, no
//! logging; hop-by-hop headers are dropped as HTTP requires.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderMap, Request, Response, StatusCode, Uri, Version};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

type ProxyBody = Either<Incoming, Full<Bytes>>;

struct Upstream {
    scheme: Scheme,
    authority: Authority,
    /// Path prefix of the upstream URL ("" for none), without trailing slash.
    prefix: String,
    client: Client<HttpConnector, Incoming>,
}

const HOP_BY_HOP: [&str; 7] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "te",
    "trailer",
    "upgrade",
];

fn strip_hop_by_hop(h: &mut HeaderMap) {
    for name in HOP_BY_HOP {
        if h.contains_key(name) {
            h.remove(name);
        }
    }
}

fn bad_gateway(msg: &'static str) -> Response<ProxyBody> {
    let mut r = Response::new(Either::Right(Full::new(Bytes::from_static(msg.as_bytes()))));
    *r.status_mut() = StatusCode::BAD_GATEWAY;
    r
}

async fn forward(up: Arc<Upstream>, mut req: Request<Incoming>) -> Response<ProxyBody> {
    let pq = req
        .uri()
        .path_and_query()
        .map(PathAndQuery::as_str)
        .unwrap_or("/");
    let pq = if up.prefix.is_empty() {
        PathAndQuery::try_from(pq)
    } else {
        PathAndQuery::try_from(format!("{}{}", up.prefix, pq))
    };
    let Ok(pq) = pq else {
        return bad_gateway("passthrough: bad path");
    };
    let mut parts = http::uri::Parts::default();
    parts.scheme = Some(up.scheme.clone());
    parts.authority = Some(up.authority.clone());
    parts.path_and_query = Some(pq);
    let Ok(uri) = Uri::from_parts(parts) else {
        return bad_gateway("passthrough: bad uri");
    };
    *req.uri_mut() = uri;
    *req.version_mut() = Version::HTTP_11;
    strip_hop_by_hop(req.headers_mut());
    match up.client.request(req).await {
        Ok(resp) => {
            let mut resp = resp.map(Either::Left);
            strip_hop_by_hop(resp.headers_mut());
            resp
        }
        Err(_) => bad_gateway("passthrough: upstream error"),
    }
}

/// A running pass-through proxy; dropping it (or `shutdown`) stops it.
pub struct PassthroughHandle {
    pub addr: SocketAddr,
    shutdown: Option<watch::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl PassthroughHandle {
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub async fn shutdown(mut self) {
        self.shutdown.take();
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for PassthroughHandle {
    fn drop(&mut self) {
        self.shutdown.take();
    }
}

/// Binds `listen` and proxies to `upstream` (e.g. `http://127.0.0.1:9000`).
pub async fn start_passthrough(
    listen: SocketAddr,
    upstream: &str,
) -> std::io::Result<PassthroughHandle> {
    start_passthrough_with_listener(TcpListener::bind(listen).await?, upstream)
}

/// Proxies connections of `listener` to `upstream`.
pub fn start_passthrough_with_listener(
    listener: TcpListener,
    upstream: &str,
) -> std::io::Result<PassthroughHandle> {
    let invalid = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidInput, m.to_owned());
    let uri: Uri = upstream
        .parse()
        .map_err(|_| invalid("upstream must be an absolute http:// URL"))?;
    let scheme = uri.scheme().cloned().unwrap_or(Scheme::HTTP);
    if scheme != Scheme::HTTP {
        return Err(invalid("only http:// upstreams are supported"));
    }
    let authority = uri
        .authority()
        .cloned()
        .ok_or_else(|| invalid("upstream URL needs a host"))?;
    let prefix = uri.path().trim_end_matches('/').to_owned();
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client = Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(usize::MAX)
        .build(connector);
    let up = Arc::new(Upstream {
        scheme,
        authority,
        prefix,
        client,
    });
    let addr = listener.local_addr()?;
    let (tx, mut rx) = watch::channel(());
    let task = tokio::spawn(async move {
        loop {
            let stream = tokio::select! {
                r = listener.accept() => match r {
                    Ok((s, _)) => s,
                    Err(_) => {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                        continue;
                    }
                },
                _ = rx.changed() => break,
            };
            let _ = stream.set_nodelay(true);
            let up = up.clone();
            let mut conn_rx = rx.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| {
                    let up = up.clone();
                    async move { Ok::<_, Infallible>(forward(up, req).await) }
                });
                let conn = hyper::server::conn::http1::Builder::new()
                    .header_read_timeout(None)
                    .serve_connection(TokioIo::new(stream), svc);
                tokio::select! {
                    _ = conn => {}
                    _ = conn_rx.changed() => {}
                }
            });
        }
    });
    Ok(PassthroughHandle {
        addr,
        shutdown: Some(tx),
        task: Some(task),
    })
}
