//! Proxy mode: the external indexer at `INDEXER_URL`, as the reference server uses it.
//!
//! Calls are mirrored with only `Accept` (default `application/octet-stream`) and `Content-Type`
//! (default the same) and the query parameters each endpoint names: the indexer is a third
//! party, so it never sees a project credential, an identity header or the client's own
//! `Authorization`. A websocket to `{INDEXER_URL}/ws` is kept open (retried every
//! `INDEXER_RECONNECT_SECS`); while it is down the mirrored endpoints answer 503 `10026`. Its
//! binary frames are output spends, routed to the accounts watching the outpoint.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use bytes::Bytes;
use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::error::IndexerError;
use crate::formats::OutputSpend;

/// Largest answer taken from the indexer (a restoration search can be long).
const MAX_ANSWER: usize = 64 * 1024 * 1024;

/// The external indexer: HTTP client and the state of its websocket.
#[derive(Debug, Clone)]
pub struct ExternalIndexer {
    base: String,
    http: reqwest::Client,
    connected: Arc<AtomicBool>,
    /// `indexer_external_connected`: the same state for operators.
    gauge: prometheus::IntGauge,
}

/// A mirrored call's answer: its status and body, as the client will get them.
#[derive(Debug)]
pub struct Mirrored {
    /// The indexer's 2xx status.
    pub status: StatusCode,
    /// Its body.
    pub body: Bytes,
    /// `application/octet-stream` when the client asked for it, else `application/json`.
    pub content_type: &'static str,
}

impl Mirrored {
    /// The client's response.
    pub fn into_response(self) -> HttpResponse {
        HttpResponse::build(self.status).content_type(self.content_type).body(self.body)
    }
}

impl ExternalIndexer {
    /// A client of the indexer at `base`, each call within `timeout`; `gauge` follows the
    /// websocket's state.
    pub fn new(
        base: &url::Url,
        timeout: Duration,
        gauge: prometheus::IntGauge,
    ) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(5))
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self {
            base: base.as_str().trim_end_matches('/').to_owned(),
            http,
            connected: Arc::new(AtomicBool::new(false)),
            gauge,
        })
    }

    fn set_connected(&self, up: bool) {
        self.connected.store(up, Ordering::Relaxed);
        self.gauge.set(i64::from(up));
    }

    /// Whether the indexer's websocket is open (the reference's "indexer connected").
    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    /// 503 `10026` unless the websocket is open.
    pub fn require_connected(&self) -> Result<(), IndexerError> {
        if self.is_connected() { Ok(()) } else { Err(IndexerError::IndexerUnavailable) }
    }

    /// Mirrors a call to `{INDEXER_URL}{path}`. A POST without a body is 400 `no body provided`;
    /// a non-2xx answer is passed on as its status with an empty body.
    pub async fn mirror(
        &self,
        method: reqwest::Method,
        path: &str,
        accept: Option<&str>,
        content_type: Option<&str>,
        body: Bytes,
        query: &[(&str, String)],
    ) -> Result<Mirrored, IndexerError> {
        self.require_connected()?;
        if method == reqwest::Method::POST && body.is_empty() {
            return Err(IndexerError::bad("no body provided"));
        }
        let accept = accept.unwrap_or("application/octet-stream");
        let mut url = url::Url::parse(&format!("{}{path}", self.base))
            .map_err(|_| IndexerError::bad("the path cannot be forwarded"))?;
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query.iter().map(|(k, v)| (*k, v.as_str())));
        }
        let mut request = self
            .http
            .request(method, url)
            .header("accept", accept)
            .header("content-type", content_type.unwrap_or("application/octet-stream"));
        if !body.is_empty() {
            request = request.body(body);
        }
        let resp = request.send().await.map_err(|e| unreachable(&e))?;
        let status = StatusCode::from_u16(resp.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
        if !status.is_success() {
            return Err(IndexerError::Upstream(status));
        }
        let body = read_limited(resp).await?;
        let content_type = if accept == "application/octet-stream" {
            "application/octet-stream"
        } else {
            "application/json"
        };
        Ok(Mirrored { status, body, content_type })
    }

    /// Mirrors the client's request as it came: its method, path, `Accept` and `Content-Type`,
    /// with `body` and the named `query` parameters.
    pub async fn forward(
        &self,
        req: &actix_web::HttpRequest,
        body: Bytes,
        query: &[(&str, String)],
    ) -> Result<Mirrored, IndexerError> {
        let header = |name| req.headers().get(name).and_then(|v| v.to_str().ok());
        let method = reqwest::Method::from_bytes(req.method().as_str().as_bytes())
            .map_err(|_| IndexerError::bad("unsupported method"))?;
        self.mirror(method, req.path(), header("accept"), header("content-type"), body, query).await
    }

    /// Tells the indexer to stop watching `outpoints` (binary `>32sI` each; one zeroed outpoint
    /// means all). Best effort: a failure is logged.
    pub async fn unregister_spends(&self, body: Vec<u8>) {
        let url = format!("{}/api/v1/output-spend/notifications:unregister", self.base);
        let sent =
            self.http.post(url).header("content-type", "application/octet-stream").body(body).send().await;
        match sent {
            Ok(r) if r.status().is_success() => {}
            Ok(r) => tracing::warn!(status = %r.status(), "the indexer refused an unregistration"),
            Err(e) => tracing::warn!(error = %e.without_url(), "unregistration not sent to the indexer"),
        }
    }

    /// Keeps the websocket to `{INDEXER_URL}/ws` open until `cancel`, passing each output spend it
    /// announces to `on_spend`.
    pub async fn run_websocket<F, Fut>(self, retry: Duration, cancel: CancellationToken, on_spend: F)
    where
        F: Fn(OutputSpend) -> Fut + Send + Sync,
        Fut: std::future::Future<Output = ()> + Send,
    {
        let ws_url = format!("{}/ws", self.base.replacen("http", "ws", 1));
        loop {
            let connect =
                tokio::time::timeout(Duration::from_secs(10), tokio_tungstenite::connect_async(&ws_url));
            let opened = tokio::select! {
                _ = cancel.cancelled() => return,
                r = connect => r,
            };
            match opened {
                Ok(Ok((mut socket, _))) => {
                    tracing::info!("indexer websocket connected");
                    self.set_connected(true);
                    loop {
                        let frame = tokio::select! {
                            _ = cancel.cancelled() => None,
                            f = socket.next() => f,
                        };
                        match frame {
                            Some(Ok(tokio_tungstenite::tungstenite::Message::Binary(data))) => {
                                match OutputSpend::from_bytes(&data) {
                                    Some(spend) => on_spend(spend).await,
                                    None => tracing::warn!(len = data.len(), "unexpected indexer frame"),
                                }
                            }
                            Some(Ok(tokio_tungstenite::tungstenite::Message::Close(_)))
                            | Some(Err(_))
                            | None => {
                                break;
                            }
                            Some(Ok(_)) => {}
                        }
                    }
                    self.set_connected(false);
                    tracing::warn!("indexer websocket closed");
                }
                Ok(Err(e)) => tracing::debug!(error = %e, "indexer websocket not connected"),
                Err(_) => tracing::debug!("indexer websocket connection timed out"),
            }
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(retry) => {}
            }
        }
    }
}

fn unreachable(e: &reqwest::Error) -> IndexerError {
    let kind = if e.is_timeout() {
        service_kit::ErrorKind::GatewayTimeout
    } else {
        service_kit::ErrorKind::BadGateway
    };
    IndexerError::Api(service_kit::ApiError::new(kind, "the indexer could not be reached"))
}

async fn read_limited(resp: reqwest::Response) -> Result<Bytes, IndexerError> {
    let mut body = Vec::new();
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| unreachable(&e))?;
        if body.len() + chunk.len() > MAX_ANSWER {
            return Err(IndexerError::Api(service_kit::ApiError::new(
                service_kit::ErrorKind::BadGateway,
                "the indexer's answer is too large",
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(body))
}
