//! A real HTTP server that records every request it gets: the callback receiver of tests.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{App, HttpRequest, HttpResponse, web};
use tokio::sync::Notify;

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// HTTP method.
    pub method: String,
    /// Path without the query.
    pub path: String,
    /// Raw query string.
    pub query: String,
    /// Headers (names lower-case).
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: bytes::Bytes,
    /// When it arrived.
    pub received_at: std::time::Instant,
}

impl RecordedRequest {
    /// The first value of a header.
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }

    /// The body parsed as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("recorded body is JSON")
    }
}

#[derive(Default)]
struct Shared {
    requests: Mutex<Vec<RecordedRequest>>,
    status: Mutex<u16>,
    script: Mutex<std::collections::VecDeque<u16>>,
    delay: Mutex<Duration>,
    arrived: Notify,
}

/// The running receiver; stops when dropped.
pub struct RecordingReceiver {
    shared: Arc<Shared>,
    server: crate::RunningServer,
}

impl std::fmt::Debug for RecordingReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordingReceiver").field("url", &self.server.url).finish_non_exhaustive()
    }
}

async fn record(req: HttpRequest, body: web::Bytes, shared: web::Data<Arc<Shared>>) -> HttpResponse {
    let received_at = std::time::Instant::now();
    let delay = *shared.delay.lock().unwrap();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let recorded = RecordedRequest {
        method: req.method().to_string(),
        path: req.path().to_owned(),
        query: req.query_string().to_owned(),
        headers: req
            .headers()
            .iter()
            .map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap_or_default().to_owned()))
            .collect(),
        body,
        received_at,
    };
    shared.requests.lock().unwrap().push(recorded);
    shared.arrived.notify_waiters();
    let scripted = shared.script.lock().unwrap().pop_front();
    let status = scripted.unwrap_or(*shared.status.lock().unwrap());
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap()).finish()
}

impl RecordingReceiver {
    /// Starts listening on 127.0.0.1 (a free port), answering 200 to everything.
    pub async fn start() -> Self {
        let shared = Arc::new(Shared { status: Mutex::new(200), ..Shared::default() });
        let data = web::Data::new(shared.clone());
        let server =
            crate::serve(1, move || App::new().app_data(data.clone()).default_service(web::to(record)));
        Self { shared, server }
    }

    /// Base URL, e.g. `http://127.0.0.1:40123`.
    pub fn url(&self) -> &str {
        &self.server.url
    }

    /// Makes later requests get `status` (e.g. 500 to test retries).
    pub fn set_status(&self, status: u16) {
        *self.shared.status.lock().unwrap() = status;
    }

    /// The next requests get these statuses, in order; then the one of [`Self::set_status`].
    pub fn script_statuses(&self, statuses: &[u16]) {
        self.shared.script.lock().unwrap().extend(statuses.iter().copied());
    }

    /// Every later request is answered only after `delay` (a stalling receiver).
    pub fn set_delay(&self, delay: Duration) {
        *self.shared.delay.lock().unwrap() = delay;
    }

    /// Everything received so far.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.requests.lock().unwrap().clone()
    }

    /// Waits until at least `n` requests arrived, or panics after `timeout`.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<RecordedRequest> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.shared.arrived.notified();
            let got = self.requests();
            if got.len() >= n {
                return got;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                panic!("expected {n} requests within {timeout:?}, got {}", self.requests().len());
            }
        }
    }
}
