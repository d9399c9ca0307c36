#![doc = include_str!("../README.md")]

pub mod app;
pub mod error;
pub mod health;
pub mod internal;
pub mod metrics;
pub mod middleware;
pub mod server;
pub mod settings;
pub mod telemetry;

pub use app::{Kit, base_app};
pub use error::{ApiError, ErrorKind};
pub use health::Readiness;
pub use internal::{InternalClient, InternalCredential};
pub use metrics::Metrics;
pub use settings::{CommonSettings, ServiceSettings, SettingsError};
