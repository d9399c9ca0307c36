//! Every service in one process, each on its own port, for small operators and the local stack.
//! The services stay separate crates (and separately deployable); this only builds each one's
//! `Application` with its own settings and runs them side by side.
//!
//! Where each listens comes from the same variables that tell the services where to find each
//! other: the gateway on `LISTEN_ADDR` (default `0.0.0.0:8080`), mapi on `MAPI_URL`'s host and port
//! (default `127.0.0.1:8081`), peer-channels on `PEER_CHANNELS_URL` (8082), block-parser on
//! `BLOCK_PARSER_URL` (8083), the notifier on `NOTIFIER_URL` (8084), zmq-listener on
//! `ZMQ_LISTENER_URL` (8085) and the indexer on `INDEXER_SERVICE_URL` (8086). Every other variable means what it means to each service; all share
//! one `DATABASE_URL` (each service in its own schema), with `DB_MAX_CONNECTIONS` 4 per service
//! unless set. `all-in-one migrate` migrates every schema and stops. One process means one
//! telemetry pipeline (service name `all-in-one`) and one SIGTERM: every service shuts down
//! gracefully, together.

use std::collections::HashMap;
use std::future::Future;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::pin::Pin;

use service_kit::ServiceSettings;

/// A source of environment variables (the process's, or a test's map).
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Why the process could not start.
#[derive(Debug, thiserror::Error)]
pub enum AllInOneError {
    /// A service URL variable does not name a host and port to listen on.
    #[error("{var}: {value:?} does not name a host and port to listen on")]
    Address {
        /// The variable.
        var: &'static str,
        /// Its value.
        value: String,
    },
    /// A port is taken (or not allowed).
    #[error("{service}: cannot listen on {addr}: {source}")]
    Bind {
        /// The service.
        service: &'static str,
        /// Where.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// A service's settings are invalid.
    #[error("{service}: {source}")]
    Settings {
        /// The service.
        service: &'static str,
        /// Why.
        source: service_kit::SettingsError,
    },
    /// A service failed to start.
    #[error("{service}: {source}")]
    Start {
        /// The service.
        service: &'static str,
        /// Why.
        source: service_kit::StartError,
    },
}

/// The services behind the gateway: name, URL variable, default URL.
pub const INTERNAL: [(&str, &str, &str); 6] = [
    ("mapi", "MAPI_URL", "http://127.0.0.1:8081"),
    ("peer-channels", "PEER_CHANNELS_URL", "http://127.0.0.1:8082"),
    ("block-parser", "BLOCK_PARSER_URL", "http://127.0.0.1:8083"),
    ("notifier", "NOTIFIER_URL", "http://127.0.0.1:8084"),
    ("zmq-listener", "ZMQ_LISTENER_URL", "http://127.0.0.1:8085"),
    ("indexer", "INDEXER_SERVICE_URL", "http://127.0.0.1:8086"),
];

/// The environment every service sees: the given one, with every service URL set (so the
/// services find each other where they listen) and a small pool per service.
fn shared_env(env: Env<'_>) -> HashMap<String, String> {
    let mut vars = HashMap::new();
    for (_, var, default) in INTERNAL {
        vars.insert(var.to_owned(), env(var).unwrap_or_else(|| default.to_owned()));
    }
    vars.insert("DB_MAX_CONNECTIONS".into(), env("DB_MAX_CONNECTIONS").unwrap_or_else(|| "4".into()));
    vars
}

/// Where a service listens: its URL's host and port.
fn url_addr(var: &'static str, value: &str) -> Result<SocketAddr, AllInOneError> {
    let bad = || AllInOneError::Address { var, value: value.to_owned() };
    let url = url::Url::parse(value).map_err(|_| bad())?;
    let host = url.host_str().ok_or_else(bad)?.trim_matches(['[', ']']);
    let port = url.port_or_known_default().ok_or_else(bad)?;
    (host, port).to_socket_addrs().map_err(|_| bad())?.next().ok_or_else(bad)
}

fn listen(service: &'static str, addr: SocketAddr) -> Result<TcpListener, AllInOneError> {
    service_kit::server::bind(addr).map_err(|source| AllInOneError::Bind { service, addr, source })
}

type Running = Pin<Box<dyn Future<Output = std::io::Result<()>> + Send>>;

/// Every service, built and bound, not yet serving.
pub struct AllInOne {
    ports: Vec<(&'static str, u16)>,
    running: Vec<(&'static str, Running)>,
}

impl std::fmt::Debug for AllInOne {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AllInOne").field("ports", &self.ports).finish_non_exhaustive()
    }
}

/// Settings of one service from `env` with its own `LISTEN_ADDR`.
fn settings<S: ServiceSettings>(
    service: &'static str,
    env: Env<'_>,
    shared: &HashMap<String, String>,
    file: Option<&str>,
    addr: SocketAddr,
) -> Result<S, AllInOneError> {
    let listen = addr.to_string();
    service_kit::settings::load_from(file, |k| {
        if k == "LISTEN_ADDR" {
            return Some(listen.clone());
        }
        shared.get(k).cloned().or_else(|| env(k))
    })
    .map_err(|source| AllInOneError::Settings { service, source })
}

macro_rules! start {
    ($service:literal, $krate:ident, $settings:ty, $env:expr, $shared:expr, $file:expr, $addr:expr, $out:expr) => {{
        let s: $settings = settings($service, $env, $shared, $file, $addr)?;
        let app = $krate::Application::build(s, listen($service, $addr)?)
            .await
            .map_err(|source| AllInOneError::Start { service: $service, source })?;
        $out.ports.push(($service, app.port()));
        $out.running.push(($service, Box::pin(app.run_until_stopped()) as Running));
    }};
}

impl AllInOne {
    /// Builds every service from `env` (and the TOML `file`, as `CONFIG_FILE` names it): each
    /// migrates its schema and binds its port. The services behind the gateway come first.
    pub async fn build(env: Env<'_>, file: Option<&str>) -> Result<Self, AllInOneError> {
        let shared = shared_env(env);
        let addr = |var: &'static str| url_addr(var, &shared[var]);
        let gateway_addr: SocketAddr = match env("LISTEN_ADDR") {
            Some(v) => v.parse().map_err(|_| AllInOneError::Address { var: "LISTEN_ADDR", value: v })?,
            None => SocketAddr::from(([0, 0, 0, 0], 8080)),
        };
        let mut out = Self { ports: Vec::new(), running: Vec::new() };
        let sh = &shared;
        start!(
            "notifier",
            notifier,
            notifier::settings::NotifierSettings,
            env,
            sh,
            file,
            addr("NOTIFIER_URL")?,
            out
        );
        start!("mapi", mapi, mapi::settings::MapiSettings, env, sh, file, addr("MAPI_URL")?, out);
        start!(
            "block-parser",
            block_parser,
            block_parser::settings::BlockParserSettings,
            env,
            sh,
            file,
            addr("BLOCK_PARSER_URL")?,
            out
        );
        start!(
            "zmq-listener",
            zmq_listener,
            zmq_listener::settings::ZmqListenerSettings,
            env,
            sh,
            file,
            addr("ZMQ_LISTENER_URL")?,
            out
        );
        start!(
            "peer-channels",
            peer_channels,
            peer_channels::settings::PeerChannelsSettings,
            env,
            sh,
            file,
            addr("PEER_CHANNELS_URL")?,
            out
        );
        start!(
            "indexer",
            indexer,
            indexer::settings::IndexerSettings,
            env,
            sh,
            file,
            addr("INDEXER_SERVICE_URL")?,
            out
        );
        let s: gateway::settings::GatewaySettings = settings("gateway", env, sh, file, gateway_addr)?;
        let app = gateway::Application::build(
            s,
            listen("gateway", gateway_addr)?,
            std::sync::Arc::new(gateway::clock::SystemClock),
        )
        .await
        .map_err(|source| AllInOneError::Start { service: "gateway", source })?;
        out.ports.push(("gateway", app.port()));
        out.running.push(("gateway", Box::pin(app.run_until_stopped())));
        Ok(out)
    }

    /// Each service and the port it listens on.
    pub fn ports(&self) -> &[(&'static str, u16)] {
        &self.ports
    }

    /// Serves until SIGTERM or SIGINT; then every service stops gracefully (each within its
    /// `SHUTDOWN_GRACE_SECS`). The first error is returned once all have stopped.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let names: Vec<&str> = self.running.iter().map(|(n, _)| *n).collect();
        let results = futures_util::future::join_all(self.running.into_iter().map(|(_, f)| f)).await;
        let mut first = Ok(());
        for (name, result) in names.into_iter().zip(results) {
            if let Err(e) = result {
                tracing::error!(service = name, error = %e, "service stopped with an error");
                if first.is_ok() {
                    first = Err(e);
                }
            }
        }
        first
    }
}

/// `all-in-one migrate`: every schema, then stop.
pub async fn migrate(env: Env<'_>, file: Option<&str>) -> Result<(), Box<dyn std::error::Error>> {
    let shared = shared_env(env);
    let common: service_kit::CommonSettings = {
        let s: notifier::settings::NotifierSettings =
            service_kit::settings::load_from(file, |k| shared.get(k).cloned().or_else(|| env(k)))?;
        s.common
    };
    for (schema, migrations) in [
        (gateway::SCHEMA, gateway::MIGRATIONS),
        (mapi::SCHEMA, mapi::MIGRATIONS),
        (peer_channels::SCHEMA, peer_channels::MIGRATIONS),
        (block_parser::SCHEMA, block_parser::MIGRATIONS),
        (notifier::SCHEMA, notifier::MIGRATIONS),
        (indexer::SCHEMA, indexer::MIGRATIONS),
    ] {
        let db = db_kit::Db::new(common.db_settings(schema)?)?;
        let ran = db.migrate(migrations).await?;
        tracing::info!(db.schema = schema, migrations.ran = ran, "migrated");
    }
    Ok(())
}

/// Entry point of the binary.
pub async fn main_entry() -> Result<(), Box<dyn std::error::Error>> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let file = std::env::var("CONFIG_FILE").ok();
    // The gateway's settings carry the common ones (log format, OTLP endpoint) for telemetry.
    let common: service_kit::CommonSettings = {
        let shared = shared_env(&env);
        let s: gateway::settings::GatewaySettings =
            service_kit::settings::load_from(file.as_deref(), |k| shared.get(k).cloned().or_else(|| env(k)))?;
        s.common().clone()
    };
    let _telemetry =
        service_kit::telemetry::init("all-in-one", common.log_format, common.otlp_endpoint.as_deref())?;
    if std::env::args().nth(1).as_deref() == Some("migrate") {
        return migrate(&env, file.as_deref()).await;
    }
    let all = AllInOne::build(&env, file.as_deref()).await?;
    for (service, port) in all.ports() {
        tracing::info!(service, port, "listening");
    }
    all.run_until_stopped().await?;
    Ok(())
}
