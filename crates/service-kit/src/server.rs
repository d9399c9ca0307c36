//! Start-up and graceful shutdown shared by every service binary.

use std::net::{SocketAddr, TcpListener};

use tokio_util::sync::CancellationToken;

/// What a service binary has once it may serve.
#[derive(Debug)]
pub struct Prepared<S> {
    /// Validated settings.
    pub settings: S,
    /// The bound listener.
    pub listener: TcpListener,
    /// Keeps tracing up; hold it until the end of `main`.
    pub telemetry: crate::telemetry::TelemetryGuard,
}

/// The start of every service binary: settings (failing fast with the setting named), telemetry,
/// and the `migrate` subcommand (migrate `schema`, then stop: `None`). Otherwise the database is
/// left to the service's `build` and the listener is bound.
pub async fn prepare<S: crate::ServiceSettings>(
    name: &'static str,
    schema: &str,
    migrations: db_kit::EmbeddedMigrations,
) -> Result<Option<Prepared<S>>, Box<dyn std::error::Error>> {
    let settings: S = crate::settings::load()?;
    let common = settings.common();
    let telemetry = crate::telemetry::init(name, common.log_format, common.otlp_endpoint.as_deref())?;
    if std::env::args().nth(1).as_deref() == Some("migrate") {
        let db = db_kit::Db::new(common.db_settings(schema)?)?;
        let ran = db.migrate(migrations).await?;
        tracing::info!(migrations.ran = ran, "migrated");
        return Ok(None);
    }
    let listener = bind(common.listen_addr)?;
    Ok(Some(Prepared { settings, listener, telemetry }))
}

/// Binds the service's listener (port 0 gives a free port; read it back with `local_addr`).
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let listener = TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// A token cancelled on SIGINT or SIGTERM, for background workers to stop on. (actix's own server
/// already stops accepting and drains in-flight requests on the same signals.)
pub fn shutdown_token() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutdown signal received");
        t.cancel();
    });
    token
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
