#![doc = include_str!("../README.md")]

pub mod chain;
pub mod follower;
pub mod headers_api;
pub mod outbox;
pub mod parser;
pub mod registrations;
mod schema;
pub mod settings;
pub mod stats;

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
    pub nodes: Arc<node_directory::Nodes>,
    /// New best tips, for the tips websocket.
    pub tips: follower::Tips,
    /// Wakes the follower (a `hashblock` arrived).
    pub wake: Arc<Notify>,
    /// Wakes the parser (the best chain moved).
    pub parse: Arc<Notify>,
    /// What the parser has done.
    pub stats: stats::Stats,
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
        let metrics = Metrics::new("block_parser")?;
        let stats = stats::Stats::new(metrics.registry())?;
        let kit =
            Kit { metrics, readiness: Readiness::new().with_db(db.clone()), credential: credential.clone() };
        let rpc_timeout = Duration::from_millis(settings.node_rpc_timeout_ms);
        let mapi = InternalClient::new(credential, Duration::from_secs(10))?;
        let nodes = Arc::new(node_directory::Nodes::new(mapi.clone(), &settings.mapi_url, rpc_timeout));
        let grace = settings.common.shutdown_grace_secs;
        let workers = Workers::new();
        let wake = Arc::new(Notify::new());
        let parse = Arc::new(Notify::new());
        let delivered = Arc::new(Notify::new());
        let mapi_url = settings.mapi_url.clone();
        let state = web::Data::new(AppState {
            db: db.clone(),
            settings,
            nodes: nodes.clone(),
            tips: follower::Tips::default(),
            wake: wake.clone(),
            parse: parse.clone(),
            stats: stats.clone(),
            shutdown: workers.shutdown_token(),
        });
        workers.spawn("chain follower", follower::run(state.clone(), wake, workers.shutdown_token()));
        let parser = parser::Parser {
            db: db.clone(),
            nodes,
            delivered: delivered.clone(),
            wake: parse,
            stats,
            prune_depth: state.settings.max_block_chain_length_for_fork,
        };
        workers.spawn("block parser", parser::run(parser, workers.shutdown_token()));
        workers.spawn("outbox", outbox::deliver(db, mapi, mapi_url, delivered, workers.shutdown_token()));
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

/// `POST /internal/registrations`: transactions mapi wants to hear of when mined, and outpoints
/// to watch for double spends (idempotent).
async fn register(
    state: web::Data<AppState>,
    body: web::Json<wire_model::internal::Registrations>,
) -> Result<HttpResponse, service_kit::ApiError> {
    registrations::store(&state.db, &body).await?;
    Ok(HttpResponse::Ok()
        .json(serde_json::json!({"registered": body.txids.len(), "watched": body.spends.len()})))
}

/// `POST /internal/reparse`: mapi registered transactions late; the blocks parsed since the
/// earliest was received are parsed again (their events are idempotent).
async fn reparse(
    state: web::Data<AppState>,
    body: web::Json<wire_model::internal::Reparse>,
) -> Result<HttpResponse, service_kit::ApiError> {
    let queued = registrations::reparse(&state.db, body.since).await?;
    if queued > 0 {
        tracing::info!(blocks = queued, since = %body.since, "blocks queued again for late registrations");
        state.parse.notify_one();
    }
    Ok(HttpResponse::Ok().json(serde_json::json!({"queued": queued})))
}

/// `GET /internal/status`: the reference's `status/blockParser` document (mapi serves it).
async fn status(state: web::Data<AppState>) -> Result<HttpResponse, service_kit::ApiError> {
    let best = chain::best_tip(&state.db).await?;
    let queued = parser::queued(&state.db).await?;
    let events_waiting = outbox::backlog(&state.db).await?;
    state.stats.chain(best.as_ref().map_or(0, |b| b.height), queued);
    let view = stats::ChainView {
        best: best.as_ref().map(|b| (b.hash(), b.height)),
        queued,
        events_waiting,
        max_block_chain_length_for_fork: state.settings.max_block_chain_length_for_fork,
    };
    Ok(HttpResponse::Ok().json(stats::status_document(&state.stats.snapshot(), &view)))
}

/// Routes: the public headers API and the internal ones.
fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/v1/headers/by-height", web::get().to(headers_api::by_height))
        .route("/api/v1/headers/tips", web::get().to(headers_api::tips))
        .route("/api/v1/headers/tips/websocket", web::get().to(headers_api::tips_websocket))
        .route("/api/v1/headers/{hash}", web::get().to(headers_api::by_hash))
        .service(
            web::scope("/internal")
                .wrap(actix_web::middleware::from_fn(service_kit::internal::require_internal))
                .route("/blocks", web::post().to(block_announced))
                .route("/registrations", web::post().to(register))
                .route("/reparse", web::post().to(reparse))
                .route("/status", web::get().to(status)),
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
