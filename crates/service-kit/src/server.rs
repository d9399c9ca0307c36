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

/// The start of a service binary without storage: settings (failing fast with the setting
/// named), telemetry and the bound listener.
pub async fn prepare_stateless<S: crate::ServiceSettings>(
    name: &'static str,
) -> Result<Prepared<S>, Box<dyn std::error::Error>> {
    let settings: S = crate::settings::load()?;
    let common = settings.common();
    let telemetry = crate::telemetry::init(name, common.log_format, common.otlp_endpoint.as_deref())?;
    let listener = bind(common.listen_addr)?;
    Ok(Prepared { settings, listener, telemetry })
}

/// Binds the service's listener (port 0 gives a free port; read it back with `local_addr`).
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let listener = TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    Ok(listener)
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

/// A service's background workers (pruners, listeners, singleton checkers): started together,
/// told to stop together, and waited for on shutdown, so none is cut off in the middle of a
/// write. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Workers {
    shutdown: CancellationToken,
    tracker: tokio_util::task::TaskTracker,
}

impl Workers {
    /// No workers yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Cancelled when the service begins to shut down; long-lived work that is not a worker
    /// (an open websocket) watches it too, so nothing keeps the process up past the grace period.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Starts a worker. It must return soon after [`Workers::shutdown_token`] is cancelled; its
    /// end is logged with its name.
    pub fn spawn(&self, name: &'static str, work: impl std::future::Future<Output = ()> + Send + 'static) {
        self.tracker.spawn(async move {
            work.await;
            tracing::info!(worker = name, "worker stopped");
        });
    }

    /// Stops the workers and waits for them, at most `grace`; false when some did not stop in time.
    pub async fn stop(&self, grace: std::time::Duration) -> bool {
        self.shutdown.cancel();
        self.tracker.close();
        tokio::time::timeout(grace, self.tracker.wait()).await.is_ok()
    }
}

/// Serves until SIGTERM or SIGINT (or until the server stops by itself), then shuts down within
/// `grace`: the workers are told to stop first (websockets close, singleton workers finish their
/// round), then the server stops accepting and drains in-flight requests, then the workers are
/// waited for. The server must be built with `disable_signals()` (this function owns them).
pub async fn serve_until_signal(
    server: actix_web::dev::Server,
    workers: Workers,
    grace: std::time::Duration,
) -> std::io::Result<()> {
    let handle = server.handle();
    let mut server = std::pin::pin!(server);
    let result = tokio::select! {
        result = &mut server => result,
        _ = wait_for_signal() => {
            tracing::info!("shutdown signal received");
            workers.shutdown.cancel();
            // The server future runs the stop command, so both are polled together.
            let (_, result) = tokio::join!(handle.stop(true), server);
            result
        }
    };
    let stopped = workers.stop(grace).await;
    tracing::info!(workers.stopped = stopped, "shutdown complete");
    result
}
