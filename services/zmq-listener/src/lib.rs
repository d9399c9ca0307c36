#![doc = include_str!("../README.md")]

pub mod forward;
pub mod mempool;
pub mod settings;
pub mod subscriptions;

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::{HttpResponse, HttpServer, web};
use node_directory::Nodes;
use service_kit::server::Workers;
use service_kit::{InternalClient, InternalCredential, Kit, Metrics, Readiness, base_app};

use crate::forward::Forwarder;
use crate::settings::ZmqListenerSettings;
use crate::subscriptions::StatusBoard;

pub use service_kit::StartError;

/// A built, not yet running, zmq-listener.
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
    /// Starts the subscription supervisor and the forwarder, binds `listener`.
    pub async fn build(settings: ZmqListenerSettings, listener: TcpListener) -> Result<Self, StartError> {
        let credential = InternalCredential::new(settings.common.internal_token.clone());
        let client = InternalClient::new(credential.clone(), Duration::from_secs(10))?;
        let nodes = Arc::new(Nodes::new(
            client.clone(),
            &settings.mapi_url,
            Duration::from_millis(settings.node_rpc_timeout_ms),
        ));
        let probe = nodes.clone();
        let kit = Kit {
            metrics: Metrics::new("zmq_listener")?,
            // Ready when the node list can be read (the one dependency it needs to do anything).
            readiness: Readiness::new().with_check("node list", move || {
                let probe = probe.clone();
                async move { probe.current().await.map(|_| ()).map_err(|e| e.to_string()) }
            }),
            credential,
        };
        let workers = Workers::new();
        let (forwarder, sender) = Forwarder::new(
            client,
            &settings.block_parser_url,
            &settings.mapi_url,
            settings.indexer_service().as_ref(),
            workers.shutdown_token(),
        );
        let board = StatusBoard::default();
        workers.spawn("forwarder", sender);
        workers.spawn(
            "subscriptions",
            subscriptions::supervise(
                nodes,
                board.clone(),
                forwarder,
                Duration::from_secs(settings.zmq_connection_test_interval_sec),
                workers.shutdown_token(),
            ),
        );
        let grace = settings.common.shutdown_grace_secs;
        let board = web::Data::new(board);
        let port = listener.local_addr()?.port();
        let server = HttpServer::new(move || {
            base_app(kit.clone()).app_data(board.clone()).service(
                web::scope("/internal")
                    .wrap(actix_web::middleware::from_fn(service_kit::internal::require_internal))
                    .route("/status", web::get().to(status)),
            )
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

    /// Serves until a shutdown signal, then stops the subscriptions and the forwarder within the
    /// grace period.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        service_kit::server::serve_until_signal(self.server, self.workers, self.grace).await
    }
}

/// `GET /internal/status`: every node's subscriptions (the reference's `status/zmq` shape).
async fn status(board: web::Data<StatusBoard>) -> HttpResponse {
    HttpResponse::Ok().json(board.snapshot())
}

/// Entry point of the binary.
pub async fn main_entry() -> Result<(), Box<dyn std::error::Error>> {
    let start = service_kit::server::prepare_stateless::<ZmqListenerSettings>("zmq-listener").await?;
    let _telemetry = start.telemetry;
    let app = Application::build(start.settings, start.listener).await?;
    tracing::info!(port = app.port(), "zmq-listener listening");
    app.run_until_stopped().await?;
    Ok(())
}
