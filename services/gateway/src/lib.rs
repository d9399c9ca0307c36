#![doc = include_str!("../README.md")]

pub mod accounts;
pub mod auth;
pub mod canonical;
pub mod client_ip;
pub mod clock;
pub mod docs;
pub mod endpoints;
pub mod events;
pub mod not_master;
pub mod proxy;
pub mod ratelimit;
pub mod routing;
mod schema;
pub mod sessions;
pub mod settings;
pub use service_kit::tokens;
pub mod upstream;
pub mod ws_proxy;

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::{HttpServer, web};
use db_kit::listener::Listener;
use db_kit::{Db, embed_migrations};
use diesel_migrations::EmbeddedMigrations;
use service_kit::server::Workers;
use service_kit::{InternalCredential, Kit, Metrics, Readiness, base_app};

use crate::clock::Clock;
use crate::settings::GatewaySettings;

/// The gateway's migrations (schema `accounts`).
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// The schema the gateway owns.
pub const SCHEMA: &str = "accounts";

/// What every handler shares.
#[derive(Debug)]
pub struct AppState {
    /// The `accounts` schema.
    pub db: Db,
    /// Settings.
    pub settings: GatewaySettings,
    /// Where "now" comes from.
    pub clock: Arc<dyn Clock>,
    /// Per-address limits.
    pub limits: ratelimit::Limits,
    /// mAPI JWT identity providers.
    pub jwt: auth::JwtProviders,
    /// HTTP client towards upstreams.
    pub upstream: reqwest::Client,
    /// The internal credential presented to upstreams.
    pub credential: secrecy::SecretString,
    /// Whose `X-Forwarded-For` is believed.
    pub trusted_proxies: client_ip::TrustedProxies,
    /// Websockets proxied for master tokens (closed when the token is revoked).
    pub sessions: sessions::Sessions,
    /// Cancelled when the gateway shuts down (proxied websockets close).
    pub shutdown: tokio_util::sync::CancellationToken,
    /// Credentials known not to be master tokens (channel tokens), so they cost no lookup.
    pub not_master: not_master::NotMaster,
}

/// Why the service could not start.
pub use service_kit::StartError;

/// A built, not yet running, gateway.
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
    /// Migrates the database and binds `listener` (port 0 in tests).
    pub async fn build(
        settings: GatewaySettings,
        listener: TcpListener,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, StartError> {
        let db = Db::new(settings.common.db_settings(SCHEMA)?)?;
        db.migrate(MIGRATIONS).await?;
        let listener_conn = Listener::new(db.clone(), events::NOTIFY_CHANNEL, events::LISTENER_NAME)?;
        let listening = listener_conn.clone();
        let kit = Kit {
            metrics: Metrics::new("gateway")?,
            readiness: Readiness::new().with_db(db.clone()).with_check("notifications", move || {
                let up = listening.is_up();
                async move { if up { Ok(()) } else { Err("the revocation listener is reconnecting".into()) } }
            }),
            credential: InternalCredential::new(settings.common.internal_token.clone()),
        };
        let jwt = auth::JwtProviders::parse(settings.identity_providers_json()).map_err(|e| {
            service_kit::SettingsError::invalid(
                <GatewaySettings as service_kit::ServiceSettings>::ENV,
                "identity_providers",
                e,
            )
        })?;
        let trusted_proxies = settings.trusted_proxies()?;
        let upstream = upstream::client(Duration::from_millis(settings.upstream_connect_timeout_ms))?;
        let credential = settings.common.internal_token.clone();
        let limits = ratelimit::Limits::new(settings.signup_per_minute);
        let workers = Workers::new();
        let sessions = sessions::Sessions::default();
        let grace = settings.common.shutdown_grace_secs;
        let state = web::Data::new(AppState {
            db: db.clone(),
            settings,
            clock,
            limits,
            jwt,
            upstream,
            credential,
            trusted_proxies,
            sessions: sessions.clone(),
            shutdown: workers.shutdown_token(),
            not_master: not_master::NotMaster::default(),
        });
        workers.spawn("sweeper", sweep(state.clone(), workers.shutdown_token()));
        workers.spawn(
            "gateway listener",
            sessions::listen(listener_conn, db, sessions, workers.shutdown_token()),
        );
        let port = listener.local_addr()?.port();
        let server = HttpServer::new(move || {
            base_app(kit.clone())
                .wrap(actix_web::middleware::from_fn(auth::guard_metrics))
                // Outermost: every guard and route sees the canonical path.
                .wrap(actix_web::middleware::from_fn(canonical::canonical_path))
                .app_data(state.clone())
                .route("/", web::get().to(endpoints::root))
                .route("/api/v1/endpoints", web::get().to(endpoints::get_endpoints))
                .route("/api/v1/account/key", web::post().to(accounts::sign_up))
                .route("/api/v1/account/register", web::post().to(accounts::sign_up))
                .route("/api/v1/account", web::get().to(accounts::get_account))
                .route("/api/v1/account/token", web::delete().to(accounts::revoke_token))
                .route("/api/v1/account/tokens", web::delete().to(accounts::revoke_other_tokens))
                .route("/docs", web::get().to(docs::index))
                .route("/docs/{name}", web::get().to(docs::spec))
                .default_service(web::to(proxy::forward))
        })
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

    /// Serves until a shutdown signal, then stops within the grace period.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        service_kit::server::serve_until_signal(self.server, self.workers, self.grace).await
    }
}

/// Every minute until `stop`: forgets rate-limit state of quiet addresses and the digests of
/// signed messages whose window has passed (they would be refused as stale anyway).
async fn sweep(state: web::Data<AppState>, stop: tokio_util::sync::CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        state.limits.shrink();
        if let Err(e) = accounts::store::forget_used_messages(&state.db, state.clock.now()).await {
            tracing::warn!(error = %e, "could not forget expired signed messages");
        }
    }
}

/// Entry point of the binary: `gateway` serves, `gateway migrate` only migrates.
pub async fn main_entry() -> Result<(), Box<dyn std::error::Error>> {
    let Some(start) = service_kit::server::prepare::<GatewaySettings>("gateway", SCHEMA, MIGRATIONS).await?
    else {
        return Ok(());
    };
    let _telemetry = start.telemetry;
    let app = Application::build(start.settings, start.listener, Arc::new(clock::SystemClock)).await?;
    tracing::info!(port = app.port(), "gateway listening");
    app.run_until_stopped().await?;
    Ok(())
}
