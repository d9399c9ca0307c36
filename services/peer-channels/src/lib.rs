#![doc = include_str!("../README.md")]

pub mod access;
pub mod error;
pub mod events;
pub mod internal_api;
pub mod manage;
pub mod messages;
mod schema;
pub mod settings;
pub mod sockets;
pub mod store;
pub mod tips;

use std::net::TcpListener;
use std::time::Duration;

use actix_web::{HttpServer, web};
use db_kit::{Db, embed_migrations};
use diesel_migrations::EmbeddedMigrations;
use prometheus::{IntCounter, IntGauge};
use service_kit::server::Workers;
use service_kit::{InternalCredential, Kit, Metrics, Readiness, base_app};
use tokio_util::sync::CancellationToken;

use crate::settings::PeerChannelsSettings;

/// The service's migrations (schema `peer_channels`).
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// The schema this service owns.
pub const SCHEMA: &str = "peer_channels";

/// Counters an operator watches besides the HTTP ones.
#[derive(Debug, Clone)]
pub struct ChannelMetrics {
    /// Messages stored.
    pub messages_written: IntCounter,
    /// Notifications sent on websockets.
    pub notifications_sent: IntCounter,
    /// Websockets open on this replica.
    pub open_sockets: IntGauge,
    /// Messages removed by the pruner.
    pub messages_pruned: IntCounter,
}

impl ChannelMetrics {
    fn new(registry: &prometheus::Registry) -> Result<Self, prometheus::Error> {
        let counter = |name: &str, help: &str| -> Result<IntCounter, prometheus::Error> {
            let c = IntCounter::new(name, help)?;
            registry.register(Box::new(c.clone()))?;
            Ok(c)
        };
        let open_sockets = IntGauge::new("peer_channels_open_websockets", "websockets open on this replica")?;
        registry.register(Box::new(open_sockets.clone()))?;
        Ok(Self {
            messages_written: counter("peer_channels_messages_written_total", "messages stored")?,
            notifications_sent: counter(
                "peer_channels_notifications_sent_total",
                "websocket notifications sent",
            )?,
            open_sockets,
            messages_pruned: counter(
                "peer_channels_messages_pruned_total",
                "messages removed by the pruner",
            )?,
        })
    }
}

/// What every handler shares.
#[derive(Debug)]
pub struct AppState {
    /// The `peer_channels` schema.
    pub db: Db,
    /// Settings.
    pub settings: PeerChannelsSettings,
    /// This replica's fan-out of events.
    pub hub: events::Hub,
    /// Service metrics.
    pub metrics: ChannelMetrics,
    /// Cancelled when the service shuts down: open websockets close.
    pub shutdown: CancellationToken,
    /// Concurrent message writes, merged into one statement.
    pub writes: service_kit::coalesce::Coalescer<store::WriteBatch>,
}

pub use service_kit::StartError;

/// A built, not yet running, peer-channels service.
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
    /// Migrates the database, starts the notification listener and the pruner, binds `listener`.
    pub async fn build(settings: PeerChannelsSettings, listener: TcpListener) -> Result<Self, StartError> {
        let db = Db::new(settings.common.db_settings(SCHEMA)?)?;
        db.migrate(MIGRATIONS).await?;
        let registry = Metrics::new("peer_channels")?;
        let metrics = ChannelMetrics::new(registry.registry())?;
        let hub = events::Hub::new(settings.websocket_fanout_capacity, events::Hub::listener(db.clone())?);
        let listening = hub.clone();
        let kit = Kit {
            metrics: registry,
            readiness:
                Readiness::new().with_db(db.clone()).with_check("notifications", move || {
                    let up = listening.is_listening();
                    async move {
                        if up { Ok(()) } else { Err("the notification listener is reconnecting".into()) }
                    }
                }),
            credential: InternalCredential::new(settings.common.internal_token.clone()),
        };
        let grace = settings.common.shutdown_grace_secs;
        let workers = Workers::new();
        workers.spawn("notification listener", events::listen(hub.clone(), workers.shutdown_token()));
        // Up to 4 merged writes in flight; at most 10 000 messages waiting (then 503 at once).
        let writes = service_kit::coalesce::Coalescer::start(
            store::WriteBatch::new(db.clone()),
            4,
            store::MAX_BATCH,
            10_000,
        );
        let state = web::Data::new(AppState {
            db,
            settings,
            hub,
            metrics,
            shutdown: workers.shutdown_token(),
            writes,
        });
        if state.settings.tips_poll_interval_ms > 0 {
            let client = service_kit::InternalClient::new(
                InternalCredential::new(state.settings.common.internal_token.clone()),
                Duration::from_secs(5),
            )?;
            workers.spawn(
                "tips",
                tips::poll(
                    state.hub.clone(),
                    client,
                    state.settings.block_parser_url.clone(),
                    Duration::from_millis(state.settings.tips_poll_interval_ms),
                    workers.shutdown_token(),
                ),
            );
        }
        if state.settings.pruner_interval_secs > 0 {
            workers.spawn("pruner", run_pruner(state.clone(), workers.shutdown_token()));
        }
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

    /// Serves until a shutdown signal, then closes the websockets, stops the background tasks and
    /// drains requests, within the grace period.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        service_kit::server::serve_until_signal(self.server, self.workers, self.grace).await
    }
}

/// Routes. Management first: `/api/v1/channel/manage...` wins over `/api/v1/channel/{id}...`, and
/// `/notify` over `/{sequence}`.
fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/v1/channel/manage/list", web::get().to(manage::list))
        .route("/api/v1/channel/manage", web::post().to(manage::create))
        .service(
            web::resource("/api/v1/channel/manage/{channelid}")
                .route(web::get().to(manage::get))
                .route(web::post().to(manage::amend))
                .route(web::delete().to(manage::delete)),
        )
        .service(
            web::resource("/api/v1/channel/manage/{channelid}/api-token")
                .route(web::get().to(manage::list_tokens))
                .route(web::post().to(manage::create_token)),
        )
        .service(
            web::resource("/api/v1/channel/manage/{channelid}/api-token/{tokenid}")
                .route(web::get().to(manage::get_token))
                .route(web::delete().to(manage::revoke_token)),
        )
        .route("/api/v1/channel/{channelid}/notify", web::get().to(sockets::channel_notify))
        .service(
            web::resource("/api/v1/channel/{channelid}")
                .route(web::post().to(messages::write))
                .route(web::head().to(messages::head))
                .route(web::get().to(messages::read)),
        )
        .service(
            web::resource("/api/v1/channel/{channelid}/{sequence}")
                .route(web::post().to(messages::mark))
                .route(web::delete().to(messages::delete)),
        )
        .route("/api/v1/web-socket", web::get().to(sockets::account_socket))
        .service(
            web::scope("/internal")
                .wrap(actix_web::middleware::from_fn(service_kit::internal::require_internal))
                .route("/account-sockets", web::post().to(internal_api::connected))
                .route("/account-events", web::post().to(internal_api::spends)),
        );
}

/// Removes expired messages every `PRUNER_INTERVAL_SECS` (every replica may run it: the delete is
/// idempotent).
async fn run_pruner(state: web::Data<AppState>, cancel: CancellationToken) {
    let every = Duration::from_secs(state.settings.pruner_interval_secs);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        match store::prune(&state.db, time::OffsetDateTime::now_utc()).await {
            Ok(0) => {}
            Ok(n) => {
                state.metrics.messages_pruned.inc_by(n as u64);
                tracing::info!(messages.pruned = n, "pruned expired messages");
            }
            Err(e) => tracing::warn!(error = %e, "pruning failed"),
        }
    }
}

/// Entry point of the binary: `peer-channels` serves, `peer-channels migrate` only migrates.
pub async fn main_entry() -> Result<(), Box<dyn std::error::Error>> {
    let Some(start) =
        service_kit::server::prepare::<PeerChannelsSettings>("peer-channels", SCHEMA, MIGRATIONS).await?
    else {
        return Ok(());
    };
    let _telemetry = start.telemetry;
    let app = Application::build(start.settings, start.listener).await?;
    tracing::info!(port = app.port(), "peer-channels listening");
    app.run_until_stopped().await?;
    Ok(())
}
