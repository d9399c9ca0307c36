#![doc = include_str!("../README.md")]

pub mod api;
pub mod callback;
pub mod chain;
pub mod error;
pub mod feed;
pub mod formats;
pub mod matching;
pub mod outbox;
pub mod proxy;
pub mod pushdata;
pub mod settings;
pub mod sockets;
pub mod store;

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::{HttpServer, web};
use db_kit::{Db, embed_migrations};
use diesel_migrations::EmbeddedMigrations;
use prometheus::IntCounter;
use service_kit::server::Workers;
use service_kit::{InternalClient, InternalCredential, Kit, Metrics, Readiness, base_app};
use tokio::sync::Notify;

use crate::settings::IndexerSettings;

/// The service's migrations (schema `indexer`).
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// The schema this service owns.
pub const SCHEMA: &str = "indexer";

pub use service_kit::StartError;

/// Where the chain data comes from.
#[derive(Debug)]
pub enum Mode {
    /// The nodes and block-parser.
    Native(chain::Chain),
    /// An external indexer.
    Proxy(proxy::ExternalIndexer),
}

/// Counters an operator watches besides the HTTP ones.
#[derive(Debug, Clone)]
pub struct IndexerMetrics {
    /// Transactions matched against the tip filters (mempool and blocks).
    pub txs_matched: IntCounter,
    /// Match batches queued for delivery.
    pub matches: IntCounter,
}

impl IndexerMetrics {
    fn new(registry: &prometheus::Registry) -> Result<Self, prometheus::Error> {
        let counter = |name: &str, help: &str| -> Result<IntCounter, prometheus::Error> {
            let c = IntCounter::new(name, help)?;
            registry.register(Box::new(c.clone()))?;
            Ok(c)
        };
        Ok(Self {
            txs_matched: counter(
                "indexer_transactions_matched_total",
                "transactions matched against tip filters",
            )?,
            matches: counter(
                "indexer_tip_filter_matches_total",
                "tip-filter match batches queued for delivery",
            )?,
        })
    }
}

/// What every handler shares.
#[derive(Debug)]
pub struct AppState {
    /// The `indexer` schema.
    pub db: Db,
    /// Settings.
    pub settings: IndexerSettings,
    /// Native or proxy.
    pub mode: Mode,
    /// The account websockets (peer-channels).
    pub sockets: sockets::AccountSockets,
    /// Wakes the outbox when matches were queued.
    pub wake_outbox: Arc<Notify>,
    /// Calls to the project's own services.
    pub internal: InternalClient,
    /// Service metrics.
    pub metrics: IndexerMetrics,
}

/// A built, not yet running, indexer service.
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
    /// Migrates the database, starts the workers of the mode, binds `listener`.
    pub async fn build(settings: IndexerSettings, listener: TcpListener) -> Result<Self, StartError> {
        let db = Db::new(settings.common.db_settings(SCHEMA)?)?;
        db.migrate(MIGRATIONS).await?;
        let registry = Metrics::new("indexer")?;
        let metrics = IndexerMetrics::new(registry.registry())?;
        let credential = InternalCredential::new(settings.common.internal_token.clone());
        let internal = InternalClient::new(credential.clone(), Duration::from_secs(10))?;
        // The external indexer's websocket is not a readiness condition: while it is down the
        // mirrored endpoints answer 503 `10026` as the reference does, and the account's own
        // settings and registrations stay readable. This gauge shows it (0 in native mode).
        let connected = prometheus::IntGauge::new(
            "indexer_external_connected",
            "1 while the external indexer's websocket is open (proxy mode)",
        )?;
        registry.registry().register(Box::new(connected.clone()))?;
        let mode = match &settings.indexer_url {
            Some(url) => Mode::Proxy(proxy::ExternalIndexer::new(
                url,
                Duration::from_millis(settings.indexer_timeout_ms),
                connected,
            )?),
            None => {
                let nodes = Arc::new(node_directory::Nodes::new(
                    internal.clone(),
                    &settings.mapi_url,
                    Duration::from_millis(settings.node_rpc_timeout_ms),
                ));
                Mode::Native(chain::Chain::new(nodes, internal.clone(), &settings.block_parser_url))
            }
        };
        let kit = Kit { metrics: registry, readiness: Readiness::new().with_db(db.clone()), credential };
        let state = web::Data::new(AppState {
            db: db.clone(),
            sockets: sockets::AccountSockets::new(internal.clone(), &settings.peer_channels_url),
            wake_outbox: Arc::new(Notify::new()),
            internal: internal.clone(),
            metrics,
            mode,
            settings,
        });
        let workers = Workers::new();
        workers.spawn(
            "outbox",
            outbox::run(
                db,
                internal,
                state.settings.notifier_url.clone(),
                state.wake_outbox.clone(),
                workers.shutdown_token(),
            ),
        );
        workers.spawn(
            "spend sweeper",
            feed::sweep(
                state.clone(),
                Duration::from_secs(state.settings.sweep_interval_secs),
                workers.shutdown_token(),
            ),
        );
        match &state.mode {
            Mode::Native(chain) => workers.spawn(
                "block matcher",
                feed::follow_blocks(
                    state.clone(),
                    chain.clone(),
                    Duration::from_millis(state.settings.block_poll_interval_ms),
                    workers.shutdown_token(),
                ),
            ),
            Mode::Proxy(indexer) => {
                let on_spend_state = state.clone();
                workers.spawn(
                    "indexer websocket",
                    indexer.clone().run_websocket(
                        Duration::from_secs(state.settings.indexer_reconnect_secs),
                        workers.shutdown_token(),
                        move |spend| {
                            let state = on_spend_state.clone();
                            async move { feed::external_spend(&state, spend).await }
                        },
                    ),
                );
            }
        }
        let grace = state.settings.common.shutdown_grace_secs;
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

    /// Serves until a shutdown signal, then stops the workers and drains requests, within the
    /// grace period.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        service_kit::server::serve_until_signal(self.server, self.workers, self.grace).await
    }
}

/// Routes. `filter` and `filter:delete` before `{txid}`.
fn routes(cfg: &mut web::ServiceConfig) {
    let body_limit = web::PayloadConfig::new(1024 * 1024);
    cfg.app_data(body_limit)
        .service(
            web::resource("/api/v1/transaction/filter")
                .route(web::get().to(api::list_filters))
                .route(web::post().to(api::register_filters)),
        )
        .route("/api/v1/transaction/filter:delete", web::post().to(api::delete_filters))
        .route("/api/v1/transaction/{txid}", web::get().to(api::transaction))
        .route("/api/v1/merkle-proof/{txid}", web::get().to(api::merkle_proof))
        .route("/api/v1/output-spend", web::post().to(api::output_spend))
        .route("/api/v1/output-spend/notifications", web::post().to(api::output_spend_notifications))
        .route("/api/v1/restoration/search", web::post().to(api::restoration_search))
        .service(
            web::resource("/api/v1/indexer")
                .route(web::get().to(api::get_settings))
                .route(web::post().to(api::set_settings)),
        )
        .route("/api/v1/tip-filter/matches", web::post().to(feed::external_matches))
        .service(
            web::scope("/internal")
                .wrap(actix_web::middleware::from_fn(service_kit::internal::require_internal))
                .app_data(web::JsonConfig::default().limit(64 * 1024 * 1024))
                .route("/mempool-txs", web::post().to(feed::mempool_txs)),
        );
}

/// Entry point of the binary: `indexer` serves, `indexer migrate` only migrates.
pub async fn main_entry() -> Result<(), Box<dyn std::error::Error>> {
    let Some(start) = service_kit::server::prepare::<IndexerSettings>("indexer", SCHEMA, MIGRATIONS).await?
    else {
        return Ok(());
    };
    let _telemetry = start.telemetry;
    let app = Application::build(start.settings, start.listener).await?;
    tracing::info!(port = app.port(), "indexer listening");
    app.run_until_stopped().await?;
    Ok(())
}
