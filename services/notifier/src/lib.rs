#![doc = include_str!("../README.md")]

pub mod admin;
pub mod delivery;
pub mod engine;
pub mod metrics;
pub mod scheduler;
pub mod settings;
pub mod store;
pub mod target;

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::{HttpResponse, HttpServer, web};
use db_kit::{Db, embed_migrations};
use diesel_migrations::EmbeddedMigrations;
use service_kit::server::Workers;
use service_kit::{InternalCredential, Kit, Metrics, Readiness, base_app};
use tokio::sync::Notify;

use crate::engine::Engine;
use crate::scheduler::{Limits, Pool, Scheduler};
use crate::settings::NotifierSettings;
use crate::store::Lease;

/// The service's migrations (schema `notifier`).
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// The schema this service owns.
pub const SCHEMA: &str = "notifier";

/// Largest intake request (mapi sends at most a few hundred callbacks at a time).
const MAX_INTAKE_BYTES: usize = 64 * 1024 * 1024;

pub use service_kit::StartError;

/// A built, not yet running, notifier.
pub struct Application {
    server: actix_web::dev::Server,
    port: u16,
    workers: Workers,
    grace: Duration,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application").field("port", &self.port).finish_non_exhaustive()
    }
}

impl Application {
    /// Migrates the database, starts the delivery tasks, the retry job and the lease keeper,
    /// binds `listener`.
    pub async fn build(settings: NotifierSettings, listener: TcpListener) -> Result<Self, StartError> {
        let db = Db::new(settings.common.db_settings(SCHEMA)?)?;
        db.migrate(MIGRATIONS).await?;
        let credential = InternalCredential::new(settings.common.internal_token.clone());
        let registry = Metrics::new("notifier")?;
        let metrics = metrics::NotifierMetrics::new(registry.registry())?;
        let kit = Kit { metrics: registry, readiness: Readiness::new().with_db(db.clone()), credential };
        let limits = Limits {
            queue_size: settings.instant_notifications_queue_size as usize,
            slow_queue_size: settings.slow_queue_limit(),
            batch: settings.max_notifications_in_batch as usize,
            saved_times: settings.no_of_saved_execution_times as usize,
            slow_threshold: Duration::from_millis(settings.slow_host_threshold_ms),
        };
        let lease = Lease {
            owner: rand::random::<i64>().abs().max(1),
            secs: i64::try_from(settings.lease_sec).unwrap_or(i64::MAX),
        };
        let grace = settings.common.shutdown_grace_secs;
        let (fast, slow) = (settings.fast_tasks(), settings.slow_tasks());
        let engine = Arc::new(Engine {
            db,
            scheduler: Scheduler::new(limits),
            deliverer: delivery::Deliverer::new(settings.block_private_targets)?,
            settings,
            lease,
            metrics,
            wake_retry: Notify::new(),
            overflow: std::sync::atomic::AtomicBool::new(false),
        });
        let workers = Workers::new();
        for n in 0..fast {
            let name: &'static str = if n == 0 { "fast pool" } else { "fast pool task" };
            workers.spawn(name, engine::pool_task(engine.clone(), Pool::Fast, workers.shutdown_token()));
        }
        for n in 0..slow {
            let name: &'static str = if n == 0 { "slow pool" } else { "slow pool task" };
            workers.spawn(name, engine::pool_task(engine.clone(), Pool::Slow, workers.shutdown_token()));
        }
        workers.spawn("retry job", engine::retry_job(engine.clone(), workers.shutdown_token()));
        workers.spawn("lease keeper", engine::lease_keeper(engine.clone(), workers.shutdown_token()));
        let port = listener.local_addr()?.port();
        let state = web::Data::new(engine);
        let server = HttpServer::new(move || base_app(kit.clone()).app_data(state.clone()).configure(routes))
            .disable_signals()
            .shutdown_timeout(grace)
            .listen(listener)?
            .run();
        Ok(Self { server, port, workers, grace: Duration::from_secs(grace) })
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until a shutdown signal, then stops the tasks (a batch in flight is abandoned: its
    /// notifications keep their rows and are delivered again after their lease) and drains
    /// requests, within the grace period.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        service_kit::server::serve_until_signal(self.server, self.workers, self.grace).await
    }
}

/// `POST /internal/notifications`: callbacks to deliver. They are stored (a key seen before is
/// left alone) before the answer, then queued for instant delivery.
async fn intake(
    engine: web::Data<Arc<Engine>>,
    body: web::Json<wire_model::internal::NotificationRequests>,
) -> Result<HttpResponse, service_kit::ApiError> {
    let requests = body.into_inner().notifications;
    let items = store::insert(&engine.db, engine.lease, &requests).await?;
    let new = items.len();
    let queued = engine.enqueue(items).await;
    Ok(HttpResponse::Ok().json(serde_json::json!({"received": requests.len(), "new": new, "queued": queued})))
}

/// Routes: the internal intake and the admin API.
fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/v1/notifications/redeliver", web::post().to(admin::redeliver_all))
        .route("/api/v1/notifications/{id}/redeliver", web::post().to(admin::redeliver_one))
        .route("/api/v1/notifications/{which}", web::get().to(admin::list))
        .service(
            web::scope("/internal")
                .wrap(actix_web::middleware::from_fn(service_kit::internal::require_internal))
                .app_data(web::JsonConfig::default().limit(MAX_INTAKE_BYTES))
                .route("/notifications", web::post().to(intake)),
        );
}

/// Entry point of the binary: `notifier` serves, `notifier migrate` only migrates.
pub async fn main_entry() -> Result<(), Box<dyn std::error::Error>> {
    let Some(start) =
        service_kit::server::prepare::<NotifierSettings>("notifier", SCHEMA, MIGRATIONS).await?
    else {
        return Ok(());
    };
    let _telemetry = start.telemetry;
    let app = Application::build(start.settings, start.listener).await?;
    tracing::info!(port = app.port(), "notifier listening");
    app.run_until_stopped().await?;
    Ok(())
}
