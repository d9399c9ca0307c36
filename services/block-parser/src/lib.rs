#![doc = include_str!("../README.md")]

pub mod chain;
pub mod follower;
pub mod headers_api;
mod schema;
pub mod settings;

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::{HttpResponse, HttpServer, web};
use db_kit::{Db, embed_migrations};
use diesel_migrations::EmbeddedMigrations;
use service_kit::server::Workers;
use service_kit::{InternalClient, InternalCredential, Kit, Metrics, Readiness, base_app};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::settings::BlockParserSettings;

/// The service's migrations (schema `blocks`).
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// The schema this service owns.
pub const SCHEMA: &str = "blocks";

/// What every handler shares.
#[derive(Debug)]
pub struct AppState {
    /// The `blocks` schema.
    pub db: Db,
    /// Settings.
    pub settings: BlockParserSettings,
    /// The nodes to follow.
    pub nodes: node_directory::Nodes,
    /// New best tips, for the tips websocket.
    pub tips: follower::Tips,
    /// Wakes the follower (a `hashblock` arrived).
    pub wake: Arc<Notify>,
    /// Cancelled when the service shuts down: websockets close.
    pub shutdown: CancellationToken,
}

pub use service_kit::StartError;

/// A built, not yet running, block-parser.
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
    /// Migrates the database, starts the chain follower, binds `listener`.
    pub async fn build(settings: BlockParserSettings, listener: TcpListener) -> Result<Self, StartError> {
        let db = Db::new(settings.common.db_settings(SCHEMA)?)?;
        db.migrate(MIGRATIONS).await?;
        let credential = InternalCredential::new(settings.common.internal_token.clone());
        let kit = Kit {
            metrics: Metrics::new("block_parser")?,
            readiness: Readiness::new().with_db(db.clone()),
            credential: credential.clone(),
        };
        let rpc_timeout = Duration::from_millis(settings.node_rpc_timeout_ms);
        let mapi = InternalClient::new(credential, Duration::from_secs(10))?;
        let nodes = node_directory::Nodes::new(mapi, &settings.mapi_url, rpc_timeout);
        let grace = settings.common.shutdown_grace_secs;
        let workers = Workers::new();
        let wake = Arc::new(Notify::new());
        let state = web::Data::new(AppState {
            db,
            settings,
            nodes,
            tips: follower::Tips::default(),
            wake: wake.clone(),
            shutdown: workers.shutdown_token(),
        });
        workers.spawn("chain follower", follower::run(state.clone(), wake, workers.shutdown_token()));
        let port = listener.local_addr()?.port();
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

    /// Serves until a shutdown signal, then closes the websockets, stops the follower and drains
    /// requests, within the grace period.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        service_kit::server::serve_until_signal(self.server, self.workers, self.grace).await
    }
}

/// `POST /internal/blocks`: a node announced a block (zmq-listener's `hashblock`); the follower
/// runs a round now. The body is not needed: the round asks every node for its tip.
async fn block_announced(state: web::Data<AppState>) -> HttpResponse {
    state.wake.notify_one();
    HttpResponse::Accepted().finish()
}

/// Routes: the public headers API and the internal announcements.
fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/v1/headers/by-height", web::get().to(headers_api::by_height))
        .route("/api/v1/headers/tips", web::get().to(headers_api::tips))
        .route("/api/v1/headers/tips/websocket", web::get().to(headers_api::tips_websocket))
        .route("/api/v1/headers/{hash}", web::get().to(headers_api::by_hash))
        .service(
            web::scope("/internal")
                .wrap(actix_web::middleware::from_fn(service_kit::internal::require_internal))
                .route("/blocks", web::post().to(block_announced)),
        );
}

/// Entry point of the binary: `block-parser` serves, `block-parser migrate` only migrates.
pub async fn main_entry() -> Result<(), Box<dyn std::error::Error>> {
    let Some(start) =
        service_kit::server::prepare::<BlockParserSettings>("block-parser", SCHEMA, MIGRATIONS).await?
    else {
        return Ok(());
    };
    let _telemetry = start.telemetry;
    let app = Application::build(start.settings, start.listener).await?;
    tracing::info!(port = app.port(), "block-parser listening");
    app.run_until_stopped().await?;
    Ok(())
}
