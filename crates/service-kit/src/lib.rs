#![doc = include_str!("../README.md")]

pub mod app;
pub mod bearer;
pub mod coalesce;
pub mod error;
pub mod health;
pub mod internal;
pub mod metrics;
pub mod middleware;
pub mod server;
pub mod settings;
pub mod telemetry;
pub mod tokens;

pub use app::{Kit, base_app};
pub use bearer::Bearer;
pub use error::{ApiError, ErrorKind};
pub use health::Readiness;
pub use internal::{InternalClient, InternalCredential};
pub use metrics::Metrics;
pub use settings::{CommonSettings, ServiceSettings, SettingsError};

/// Why a service could not start: the failures every service's `build` shares.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Settings are invalid.
    #[error(transparent)]
    Settings(#[from] SettingsError),
    /// The database could not be prepared.
    #[error(transparent)]
    Db(#[from] db_kit::DbError),
    /// Metrics could not be registered.
    #[error("metrics: {0}")]
    Metrics(#[from] metrics::MetricsError),
    /// The listener failed.
    #[error("listener: {0}")]
    Io(#[from] std::io::Error),
    /// An HTTP client could not be built.
    #[error("http client: {0}")]
    Http(#[from] reqwest::Error),
}
