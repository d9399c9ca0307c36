#![doc = include_str!("../README.md")]

pub mod admin_status;
pub mod arc;
pub mod batching;
pub mod cache;
pub mod callback_outbox;
pub mod callbacks;
pub mod chain_events;
pub use service_kit::coalesce;
pub mod consolidation;
pub mod dsnt;
pub mod envelopes;
pub mod fees;
pub mod internal_api;
pub mod mempool_checker;
pub mod metrics;
pub mod nodes;
pub mod quote_http;
pub mod quotes;
pub mod registration;
mod schema;
pub mod settings;
pub mod signer;
pub mod status;
pub mod submit;
pub mod submit_http;
pub mod txouts;
pub mod txstore;

use std::net::TcpListener;

use actix_web::{HttpServer, web};
use bsv_primitives::PrivateKey;
use db_kit::{Db, embed_migrations};
use diesel_migrations::EmbeddedMigrations;
use secrecy::ExposeSecret;
use service_kit::server::Workers;
use service_kit::{InternalCredential, Kit, Metrics, Readiness, base_app};

use crate::settings::MapiSettings;

/// mAPI's migrations (schema `mapi`).
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// Largest submission body (the gateway enforces its own, configurable, limit in front).
pub const MAX_SUBMIT_BYTES: usize = 100 * 1024 * 1024;

/// The schema mAPI owns.
pub const SCHEMA: &str = "mapi";

/// Merged runs of single-transaction submissions in flight at once (see
/// [`submit::MergedSingles`]). One: whatever arrives while a run is in flight merges into the
/// next. Measured at concurrency 16 on two cores: one run at a time gave 990 tx/s at 1 290 µs CPU
/// per transaction (all processes), two gave 910 tx/s at 1 600 µs (smaller batches, more calls).
const MERGED_SINGLES_PARALLEL: usize = 1;

/// Most single submissions merged into one run.
const MERGED_SINGLES_MAX: usize = 500;

/// What every handler shares.
#[derive(Debug)]
pub struct AppState {
    /// The `mapi` schema.
    pub db: Db,
    /// Settings.
    pub settings: MapiSettings,
    /// Who signs envelopes.
    pub signer: signer::Signer,
    /// RPC clients per node.
    pub node_clients: nodes::NodeClients,
    /// The reference's metrics.
    pub metrics: metrics::MapiMetrics,
    /// The nodes' consolidation parameters, cached.
    pub network_info: nodes::NetworkInfoCache,
    /// The node list, cached.
    pub node_list: cache::TtlCache<(), Vec<nodes::NodeRow>>,
    /// Quotes per identity (`None`: anonymous), cached.
    pub quote_cache: cache::TtlCache<Option<(String, String)>, Vec<quotes::Quote>>,
    /// The submission's database and node I/O, merged across concurrent submissions.
    pub io: batching::SubmitIo,
    /// Calls to sibling services (zmq-listener's status).
    pub internal: service_kit::InternalClient,
    /// Wakes the callback outbox (a transaction that wrote callbacks committed).
    pub callbacks_due: std::sync::Arc<tokio::sync::Notify>,
}

/// Why the service could not start.
pub use service_kit::StartError;

/// A built, not yet running, mAPI.
pub struct Application {
    server: actix_web::dev::Server,
    port: u16,
    workers: Workers,
    grace: std::time::Duration,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application").field("port", &self.port).finish_non_exhaustive()
    }
}

impl Application {
    /// Migrates the database and binds `listener` (port 0 in tests).
    pub async fn build(settings: MapiSettings, listener: TcpListener) -> Result<Self, StartError> {
        let signer = match (&settings.wif_private_key, &settings.minerid_server_url) {
            (Some(wif), _) => {
                signer::Signer::Key(PrivateKey::from_wif(wif.expose_secret()).map_err(|_| {
                    service_kit::SettingsError::invalid(
                        <MapiSettings as service_kit::ServiceSettings>::ENV,
                        "wif_private_key",
                        "is not a valid WIF private key",
                    )
                })?)
            }
            (None, url) => signer::Signer::MinerId(signer::MinerIdServer::new(
                url.as_deref().unwrap_or_default(),
                settings.minerid_server_alias.as_deref().unwrap_or_default(),
                settings.minerid_server_authentication.clone(),
            )?),
        };
        let db = Db::new(settings.common.db_settings(SCHEMA)?)?;
        db.migrate(MIGRATIONS).await?;
        let registry = Metrics::new("mapi")?;
        let mapi_metrics = metrics::MapiMetrics::new(registry.registry())?;
        let credential = InternalCredential::new(settings.common.internal_token.clone());
        let internal =
            service_kit::InternalClient::new(credential.clone(), std::time::Duration::from_secs(5))?;
        let kit = Kit { metrics: registry, readiness: Readiness::new().with_db(db.clone()), credential };
        let grace = settings.common.shutdown_grace_secs;
        let queue_capacity = settings.submit_queue_capacity;
        let block_parser = registration::BlockParser::new(internal.clone(), &settings.block_parser_url);
        let io = batching::SubmitIo::start(&db, block_parser.clone(), queue_capacity);
        let state = web::Data::new(AppState {
            db,
            settings,
            signer,
            node_clients: nodes::NodeClients::new(queue_capacity),
            metrics: mapi_metrics,
            network_info: nodes::NetworkInfoCache::default(),
            node_list: cache::TtlCache::default(),
            quote_cache: cache::TtlCache::default(),
            io,
            internal,
            callbacks_due: std::sync::Arc::new(tokio::sync::Notify::new()),
        });
        let port = listener.local_addr()?.port();
        let workers = Workers::new();
        workers.spawn(
            "registration",
            registration::run(state.db.clone(), block_parser, workers.shutdown_token()),
        );
        match state.settings.notifier_url.clone() {
            Some(notifier) => workers.spawn(
                "callback outbox",
                callback_outbox::run(
                    state.clone(),
                    notifier,
                    state.callbacks_due.clone(),
                    workers.shutdown_token(),
                ),
            ),
            None => {
                tracing::warn!("NOTIFIER_URL is not set: callbacks are kept in the table and not delivered")
            }
        }
        workers.spawn("dsnt sweeper", dsnt::sweep(state.clone(), workers.shutdown_token()));
        if !state.settings.mempool_checker_disabled {
            workers.spawn("mempool checker", mempool_checker::run(state.clone(), workers.shutdown_token()));
        }
        let singles = web::Data::new(coalesce::Coalescer::start(
            submit::MergedSingles(state.clone()),
            MERGED_SINGLES_PARALLEL,
            MERGED_SINGLES_MAX,
            queue_capacity,
        ));
        let server = HttpServer::new(move || {
            base_app(kit.clone())
                .app_data(state.clone())
                .app_data(singles.clone())
                .route("/mapi/feeQuote", web::get().to(quote_http::fee_quote))
                .route("/mapi/policyQuote", web::get().to(quote_http::policy_quote))
                .route("/mapi/tx/{txid}", web::get().to(status::get_status))
                .route("/mapi/txouts", web::post().to(txouts::txouts))
                .service(
                    web::resource("/mapi/tx")
                        .app_data(web::PayloadConfig::new(MAX_SUBMIT_BYTES))
                        .route(web::post().to(submit_http::submit_tx)),
                )
                .service(
                    web::resource("/mapi/txs")
                        .app_data(web::PayloadConfig::new(MAX_SUBMIT_BYTES))
                        .route(web::post().to(submit_http::submit_txs)),
                )
                .configure(admin_routes)
                .configure(arc::routes)
                .configure(dsnt::routes)
                .configure(internal_api::routes)
        })
        .disable_signals()
        .shutdown_timeout(grace)
        .listen(listener)?
        .run();
        Ok(Self { server, port, workers, grace: std::time::Duration::from_secs(grace) })
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until a shutdown signal, then stops the background workers and drains requests,
    /// within the grace period.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        service_kit::server::serve_until_signal(self.server, self.workers, self.grace).await
    }
}

/// The admin API; `FeeQuote` is the reference's older name of `PolicyQuote`.
fn admin_routes(cfg: &mut web::ServiceConfig) {
    for base in ["/api/v1/PolicyQuote", "/api/v1/FeeQuote"] {
        cfg.service(
            web::resource(base)
                .route(web::post().to(quotes::create))
                .route(web::get().to(quotes::list))
                .route(web::put().to(quotes::not_allowed))
                .route(web::delete().to(quotes::not_allowed)),
        );
        cfg.service(
            web::resource(format!("{base}/{{id}}"))
                .route(web::get().to(quotes::get))
                .route(web::put().to(quotes::not_allowed))
                .route(web::delete().to(quotes::not_allowed)),
        );
    }
    cfg.service(
        web::resource("/api/v1/Node").route(web::post().to(nodes::create)).route(web::get().to(nodes::list)),
    );
    cfg.route("/api/v1/status/tx", web::get().to(admin_status::tx));
    cfg.route("/api/v1/status/zmq", web::get().to(admin_status::zmq));
    // The reference's spelling and the gateway's canonical (lower-case) one.
    cfg.route("/api/v1/status/blockParser", web::get().to(admin_status::blockparser));
    cfg.route("/api/v1/status/blockparser", web::get().to(admin_status::blockparser));
    cfg.service(
        web::resource("/api/v1/unconfirmedTxs")
            .route(web::get().to(admin_status::unconfirmed))
            .route(web::delete().to(admin_status::delete_unconfirmed)),
    );
    cfg.service(
        web::resource("/api/v1/Node/{id}")
            .route(web::get().to(nodes::get))
            .route(web::put().to(nodes::update))
            .route(web::delete().to(nodes::delete)),
    );
}

/// Entry point of the binary: `mapi` serves, `mapi migrate` only migrates.
pub async fn main_entry() -> Result<(), Box<dyn std::error::Error>> {
    let Some(start) = service_kit::server::prepare::<MapiSettings>("mapi", SCHEMA, MIGRATIONS).await? else {
        return Ok(());
    };
    let _telemetry = start.telemetry;
    let app = Application::build(start.settings, start.listener).await?;
    tracing::info!(port = app.port(), "mapi listening");
    app.run_until_stopped().await?;
    Ok(())
}
