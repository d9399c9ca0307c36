//! Liveness (`/health`: the process answers) and readiness (`/ready`: its dependencies answer),
//! so Kubernetes restarts a wedged pod but only takes a pod out of rotation while its database or
//! a peer is unreachable.

use std::sync::Arc;
use std::time::Duration;

use actix_web::{HttpResponse, web};
use futures_util::future::{BoxFuture, join_all};
use serde_json::json;

type CheckFn = dyn Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync;

/// The dependency checks behind `/ready`. Cheap to clone.
#[derive(Clone, Default)]
pub struct Readiness {
    checks: Arc<Vec<(&'static str, Arc<CheckFn>)>>,
    timeout: Option<Duration>,
}

impl std::fmt::Debug for Readiness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<_> = self.checks.iter().map(|(n, _)| *n).collect();
        f.debug_struct("Readiness").field("checks", &names).finish()
    }
}

impl Readiness {
    /// No checks: always ready.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a named check.
    pub fn with_check<F, Fut>(mut self, name: &'static str, check: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<(), String>> + Send + 'static,
    {
        let f: Arc<CheckFn> = Arc::new(move || Box::pin(check()));
        Arc::make_mut(&mut self.checks).push((name, f));
        self
    }

    /// Adds the database check (`SELECT 1` through the pool).
    pub fn with_db(self, db: db_kit::Db) -> Self {
        self.with_check("database", move || {
            let db = db.clone();
            async move { db.ping().await.map_err(|e| e.to_string()) }
        })
    }

    /// Runs every check concurrently, each bounded by a timeout (default 5 s).
    pub async fn run(&self) -> (bool, serde_json::Map<String, serde_json::Value>) {
        let timeout = self.timeout.unwrap_or(Duration::from_secs(5));
        let results = join_all(self.checks.iter().map(|(name, check)| async move {
            let outcome = match tokio::time::timeout(timeout, check()).await {
                Ok(r) => r,
                Err(_) => Err(format!("no answer within {timeout:?}")),
            };
            (*name, outcome)
        }))
        .await;
        let mut ok = true;
        let mut map = serde_json::Map::new();
        for (name, outcome) in results {
            let value = match outcome {
                Ok(()) => json!("ok"),
                Err(e) => {
                    ok = false;
                    json!(e)
                }
            };
            map.insert(name.to_owned(), value);
        }
        (ok, map)
    }
}

/// `GET /health`.
pub async fn health() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// `GET /ready`: 200 when every check passes, else 503 naming the failing ones.
pub async fn ready(readiness: web::Data<Readiness>) -> HttpResponse {
    let (ok, checks) = readiness.run().await;
    if ok {
        HttpResponse::Ok().json(json!({"status": "ready", "checks": checks}))
    } else {
        tracing::warn!(checks = %serde_json::Value::Object(checks.clone()), "not ready");
        HttpResponse::ServiceUnavailable().json(json!({"status": "not ready", "checks": checks}))
    }
}
