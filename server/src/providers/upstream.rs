//! The HTTP client that reaches provider APIs: hyper's pooled client with
//! rustls (native roots, HTTP/1.1 and HTTP/2 by ALPN), and endpoints whose URI
//! and headers are built once per deployment.
//!
//! Not reqwest, on the hot path: reqwest re-parses every request's URL (with
//! IDNA), runs a redirect and a retry layer and clones its connector per call;
//! in a profile of Tollgate at saturation that was about a sixth of its CPU per
//! request. Upstreams are reached directly (no proxy), without redirects.

use super::{ErrorKind, ProviderError};
use bytes::Bytes;
use futures::{Stream, StreamExt};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Uri};
use http_body_util::{BodyDataStream, BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use std::time::Duration;

type Connector = hyper_rustls::HttpsConnector<HttpConnector>;

/// One pooled client shared by every deployment.
#[derive(Clone)]
pub struct HttpClient {
    inner: Client<Connector, Full<Bytes>>,
}

impl HttpClient {
    pub fn new() -> Self {
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        http.enforce_http(false);
        http.set_connect_timeout(Some(Duration::from_secs(10)));
        http.set_keepalive(Some(Duration::from_secs(60)));
        let found = rustls_native_certs::load_native_certs();
        let mut roots = rustls::RootCertStore::empty();
        let (added, _) = roots.add_parsable_certificates(found.certs);
        if added == 0 {
            tracing::warn!(errors = ?found.errors, "no system CA certificates; HTTPS upstreams will fail to verify");
        }
        let tls = hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(
            rustls::ClientConfig::builder()
                .with_root_certificates(roots)
                .with_no_client_auth(),
        );
        let connector = tls
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        let inner = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .build(connector);
        HttpClient { inner }
    }

    /// POSTs `body` to the endpoint. A non-2xx answer is returned as a
    /// response too: each provider reads its own error shape.
    pub async fn post(
        &self,
        ep: &Endpoint,
        body: impl Into<Bytes>,
    ) -> Result<Response<Incoming>, ProviderError> {
        self.send(ep, Method::POST, ep.uri()?.clone(), Full::new(body.into()))
            .await
    }

    async fn send(
        &self,
        ep: &Endpoint,
        method: Method,
        uri: Uri,
        body: Full<Bytes>,
    ) -> Result<Response<Incoming>, ProviderError> {
        let mut req = Request::new(body);
        *req.method_mut() = method;
        *req.uri_mut() = uri;
        *req.headers_mut() = ep.headers.clone();
        self.inner.request(req).await.map_err(|e| {
            let what = if e.is_connect() {
                "could not connect to the upstream"
            } else {
                "request to the upstream failed"
            };
            tracing::debug!(error = ?e, "upstream request failed");
            ProviderError::new(ErrorKind::Connection, what)
        })
    }
}

impl Default for HttpClient {
    fn default() -> Self {
        HttpClient::new()
    }
}

/// Where one kind of call goes, parsed once: a bad `api_base` fails each call
/// with its reason rather than failing the start.
pub struct Endpoint {
    uri: Result<Uri, String>,
    pub headers: HeaderMap,
}

impl Endpoint {
    pub fn new(url: &str, headers: HeaderMap) -> Self {
        let uri = url
            .parse::<Uri>()
            .map_err(|e| e.to_string())
            .and_then(|u| match u.scheme_str() {
                Some("http" | "https") if u.authority().is_some() => Ok(u),
                _ => Err("an absolute http:// or https:// URL is needed".into()),
            })
            .map_err(|e| format!("the deployment's api_base gives an invalid URL {url:?}: {e}"));
        Endpoint { uri, headers }
    }

    pub fn uri(&self) -> Result<&Uri, ProviderError> {
        self.uri
            .as_ref()
            .map_err(|e| ProviderError::new(ErrorKind::Config, e.clone()))
    }
}

/// Reads a whole response body.
pub async fn read_body(resp: Response<Incoming>) -> Result<Bytes, ProviderError> {
    resp.into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .map_err(|_| body_broken())
}

/// A response body as a stream of byte chunks, as they arrive.
pub fn body_stream(
    resp: Response<Incoming>,
) -> impl Stream<Item = Result<Bytes, hyper::Error>> + Send + 'static {
    BodyDataStream::new(resp.into_body()).fuse()
}

pub fn body_broken() -> ProviderError {
    ProviderError::new(
        ErrorKind::Connection,
        "the upstream connection broke while reading the response",
    )
}

/// The status, `retry-after` and body of an error answer.
pub async fn error_parts(resp: Response<Incoming>) -> (u16, Option<Duration>, Bytes) {
    let status = resp.status().as_u16();
    let retry_after = super::error::parse_retry_after(resp.headers());
    let body = read_body(resp).await.unwrap_or_default();
    (status, retry_after, body)
}

/// "upstream answered 502 Bad Gateway", for error bodies without a message.
pub fn status_text(who: &str, status: u16) -> String {
    let reason = StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    format!("{who} answered {status} {reason}")
        .trim_end()
        .to_string()
}

/// A header value holding a secret: never printed by `Debug`.
pub fn secret_header(value: &str) -> Option<HeaderValue> {
    let mut v = HeaderValue::from_str(value).ok()?;
    v.set_sensitive(true);
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_need_absolute_http_urls() {
        assert!(
            Endpoint::new("http://127.0.0.1:9/v1/chat/completions", HeaderMap::new())
                .uri()
                .is_ok()
        );
        for bad in ["127.0.0.1:9/v1", "/v1/chat", "ftp://x/y", "http://"] {
            let e = Endpoint::new(bad, HeaderMap::new()).uri().err();
            assert!(
                e.is_some_and(|e| e.kind == ErrorKind::Config && e.message.contains(bad)),
                "{bad}"
            );
        }
    }

    #[test]
    fn status_text_names_the_reason() {
        assert_eq!(
            status_text("upstream", 502),
            "upstream answered 502 Bad Gateway"
        );
        assert_eq!(status_text("upstream", 599), "upstream answered 599");
    }
}
