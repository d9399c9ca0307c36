//! Typed settings, layered defaults -> optional file -> environment, validated at start-up.
//!
//! Each service describes its settings as a `serde` struct plus a table of environment variable
//! names (keeping the reference systems' names where operators expect them, such as
//! `WIF_PRIVATEKEY` or `QUOTE_EXPIRY_MINUTES`). A bad value fails start-up with a message naming
//! both the setting and its variable.
//!
//! Settings every service shares (`CommonSettings`, key prefix `common.`):
//!
//! | key | env | default |
//! |---|---|---|
//! | `listen_addr` | `LISTEN_ADDR` | `0.0.0.0:8080` |
//! | `database_url` | `DATABASE_URL` | none (services with storage require it) |
//! | `db_max_connections` | `DB_MAX_CONNECTIONS` | 16 |
//! | `db_acquire_timeout_ms` | `DB_ACQUIRE_TIMEOUT_MS` | 3000 |
//! | `db_statement_timeout_ms` | `DB_STATEMENT_TIMEOUT_MS` | 30000 (longest a statement may run; then 503) |
//! | `internal_token` | `INTERNAL_TOKEN` | none (required) |
//! | `log_format` | `LOG_FORMAT` (`text` or `json`) | `text` |
//! | `otlp_endpoint` | `OTEL_EXPORTER_OTLP_ENDPOINT` | none: no trace export |
//! | `shutdown_grace_secs` | `SHUTDOWN_GRACE_SECS` | 30 |
//!
//! The optional file is TOML, named by `CONFIG_FILE`.

use std::net::SocketAddr;

use config::{Config, File, FileFormat};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde::de::DeserializeOwned;

/// Why settings could not be loaded; the message names the setting and its variable.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// A value is missing or malformed.
    #[error("setting `{key}` (env {env}): {message}")]
    Invalid {
        /// The settings key.
        key: String,
        /// Its environment variable.
        env: String,
        /// What is wrong.
        message: String,
    },
    /// The settings file could not be read or parsed.
    #[error("settings: {0}")]
    Source(String),
}

impl SettingsError {
    /// An invalid value of `key`, named with its environment variable from `table`.
    pub fn invalid(table: &[EnvVar], key: &str, message: impl Into<String>) -> Self {
        let env = table.iter().find(|e| e.key == key).map(|e| e.env).unwrap_or("-");
        SettingsError::Invalid { key: key.to_owned(), env: env.to_owned(), message: message.into() }
    }
}

/// An environment variable and the settings key it sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnvVar {
    /// Variable name, e.g. `DATABASE_URL`.
    pub env: &'static str,
    /// Dotted settings key, e.g. `common.database_url`.
    pub key: &'static str,
}

/// Shorthand for building an [`EnvVar`] table.
pub const fn env(env: &'static str, key: &'static str) -> EnvVar {
    EnvVar { env, key }
}

/// The environment variables of [`CommonSettings`].
pub const COMMON_ENV: &[EnvVar] = &[
    env("LISTEN_ADDR", "common.listen_addr"),
    env("DATABASE_URL", "common.database_url"),
    env("DB_MAX_CONNECTIONS", "common.db_max_connections"),
    env("DB_ACQUIRE_TIMEOUT_MS", "common.db_acquire_timeout_ms"),
    env("DB_STATEMENT_TIMEOUT_MS", "common.db_statement_timeout_ms"),
    env("INTERNAL_TOKEN", "common.internal_token"),
    env("LOG_FORMAT", "common.log_format"),
    env("OTEL_EXPORTER_OTLP_ENDPOINT", "common.otlp_endpoint"),
    env("SHUTDOWN_GRACE_SECS", "common.shutdown_grace_secs"),
];

/// Defaults of [`CommonSettings`], as TOML.
pub const COMMON_DEFAULTS: &str = r#"
[common]
listen_addr = "0.0.0.0:8080"
db_max_connections = 16
db_acquire_timeout_ms = 3000
db_statement_timeout_ms = 30000
log_format = "text"
shutdown_grace_secs = 30
"#;

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// Settings every service has.
#[derive(Debug, Clone, Deserialize)]
pub struct CommonSettings {
    /// Address the HTTP listener binds.
    pub listen_addr: SocketAddr,
    /// PostgreSQL URL, for services with storage.
    #[serde(default)]
    pub database_url: Option<SecretString>,
    /// Pool size.
    pub db_max_connections: usize,
    /// How long a request waits for a database connection before 503.
    pub db_acquire_timeout_ms: u64,
    /// Longest a database statement may run before it is cancelled (503).
    pub db_statement_timeout_ms: u64,
    /// The credential services present to each other on `/internal/*`.
    pub internal_token: SecretString,
    /// Log format.
    pub log_format: LogFormat,
    /// OTLP/HTTP endpoint for traces; none means traces are not exported.
    #[serde(default)]
    pub otlp_endpoint: Option<String>,
    /// Seconds in-flight requests get to finish after a shutdown signal.
    pub shutdown_grace_secs: u64,
}

impl CommonSettings {
    /// Checks values that types alone cannot.
    pub fn validate(&self) -> Result<(), SettingsError> {
        if self.internal_token.expose_secret().len() < 16 {
            return Err(SettingsError::invalid(
                COMMON_ENV,
                "common.internal_token",
                "must be at least 16 characters",
            ));
        }
        if let Some(url) = &self.database_url {
            let url = url.expose_secret();
            if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                return Err(SettingsError::invalid(
                    COMMON_ENV,
                    "common.database_url",
                    "must start with postgres:// or postgresql://",
                ));
            }
        }
        if self.db_max_connections == 0 {
            return Err(SettingsError::invalid(
                COMMON_ENV,
                "common.db_max_connections",
                "must be at least 1",
            ));
        }
        if self.db_statement_timeout_ms == 0 {
            return Err(SettingsError::invalid(
                COMMON_ENV,
                "common.db_statement_timeout_ms",
                "must be positive",
            ));
        }
        Ok(())
    }

    /// Fails naming `DATABASE_URL` when a service with storage has none.
    pub fn require_database_url(&self) -> Result<(), SettingsError> {
        match self.database_url {
            Some(_) => Ok(()),
            None => Err(SettingsError::invalid(COMMON_ENV, "common.database_url", "is required")),
        }
    }

    /// Database settings for `schema`; fails naming `DATABASE_URL` when it is not set.
    pub fn db_settings(&self, schema: &str) -> Result<db_kit::DbSettings, SettingsError> {
        let url = self
            .database_url
            .clone()
            .ok_or_else(|| SettingsError::invalid(COMMON_ENV, "common.database_url", "is required"))?;
        Ok(db_kit::DbSettings {
            url,
            schema: schema.to_owned(),
            max_connections: self.db_max_connections,
            acquire_timeout_ms: self.db_acquire_timeout_ms,
            statement_timeout_ms: self.db_statement_timeout_ms,
        })
    }
}

/// A service's settings type.
pub trait ServiceSettings: DeserializeOwned {
    /// The service's own defaults, as TOML (the common defaults are added by the loader).
    const DEFAULTS: &'static str;
    /// The service's own environment variables (the common ones are added by the loader).
    const ENV: &'static [EnvVar];
    /// Checks values that types alone cannot; name the key with [`SettingsError::invalid`].
    fn validate(&self) -> Result<(), SettingsError>;

    /// The shared part.
    fn common(&self) -> &CommonSettings;
}

/// Loads settings from defaults, the file named by `CONFIG_FILE` (if set), and the process
/// environment.
pub fn load<S: ServiceSettings>() -> Result<S, SettingsError> {
    let file = std::env::var("CONFIG_FILE").ok();
    load_from(file.as_deref(), |name| std::env::var(name).ok())
}

/// Loads settings with an explicit file and environment (tests inject both).
pub fn load_from<S: ServiceSettings>(
    file: Option<&str>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<S, SettingsError> {
    let table: Vec<EnvVar> = COMMON_ENV.iter().chain(S::ENV).copied().collect();
    let mut builder = Config::builder()
        .add_source(File::from_str(COMMON_DEFAULTS, FileFormat::Toml))
        .add_source(File::from_str(S::DEFAULTS, FileFormat::Toml));
    if let Some(path) = file {
        builder = builder.add_source(File::new(path, FileFormat::Toml).required(true));
    }
    for var in &table {
        if let Some(value) = env(var.env).filter(|v| !v.is_empty()) {
            builder = builder
                .set_override(var.key, value)
                .map_err(|e| SettingsError::invalid(&table, var.key, e.to_string()))?;
        }
    }
    let config = builder.build().map_err(|e| SettingsError::Source(e.to_string()))?;
    let settings: S = config.try_deserialize().map_err(|e| name_the_key(&table, e))?;
    settings.validate()?;
    Ok(settings)
}

/// Turns a `config` error into one that names the key and its environment variable: the key is
/// the longest table key the message mentions (`config` quotes keys in different ways).
fn name_the_key(table: &[EnvVar], e: config::ConfigError) -> SettingsError {
    let message = e.to_string();
    let entry = table.iter().filter(|v| message.contains(v.key)).max_by_key(|v| v.key.len());
    match entry {
        Some(v) => SettingsError::Invalid { key: v.key.to_owned(), env: v.env.to_owned(), message },
        None => SettingsError::Source(message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[derive(Debug, Deserialize)]
    struct Demo {
        common: CommonSettings,
        quote_expiry_minutes: u32,
        #[serde(default)]
        #[expect(dead_code, reason = "only its Debug output is checked")]
        wif: Option<SecretString>,
    }

    impl ServiceSettings for Demo {
        const DEFAULTS: &'static str = "quote_expiry_minutes = 10";
        const ENV: &'static [EnvVar] =
            &[env("QUOTE_EXPIRY_MINUTES", "quote_expiry_minutes"), env("WIF_PRIVATEKEY", "wif")];
        fn common(&self) -> &CommonSettings {
            &self.common
        }

        fn validate(&self) -> Result<(), SettingsError> {
            self.common.validate()?;
            if self.quote_expiry_minutes == 0 {
                return Err(SettingsError::invalid(Self::ENV, "quote_expiry_minutes", "must be positive"));
            }
            Ok(())
        }
    }

    fn load_env(vars: &[(&str, &str)], file: Option<&str>) -> Result<Demo, SettingsError> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        load_from::<Demo>(file, |k| map.get(k).cloned())
    }

    const TOKEN: (&str, &str) = ("INTERNAL_TOKEN", "0123456789abcdef0123");

    #[test]
    fn defaults_then_file_then_environment() {
        let s = load_env(&[TOKEN], None).unwrap();
        assert_eq!(s.quote_expiry_minutes, 10);
        assert_eq!(s.common.listen_addr.port(), 8080);
        assert_eq!(s.common.log_format, LogFormat::Text);

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.toml");
        std::fs::write(&path, "quote_expiry_minutes = 20\n[common]\nlog_format = \"json\"\n").unwrap();
        let s = load_env(&[TOKEN], path.to_str()).unwrap();
        assert_eq!(s.quote_expiry_minutes, 20);
        assert_eq!(s.common.log_format, LogFormat::Json);

        let s =
            load_env(&[TOKEN, ("QUOTE_EXPIRY_MINUTES", "30"), ("WIF_PRIVATEKEY", "secret")], path.to_str())
                .unwrap();
        assert_eq!(s.quote_expiry_minutes, 30);
        assert!(!format!("{s:?}").contains("secret"), "secrets never print");
    }

    #[test]
    fn errors_name_the_setting_and_its_variable() {
        let err = load_env(&[], None).unwrap_err().to_string();
        assert!(err.contains("INTERNAL_TOKEN"), "{err}");
        let err = load_env(&[TOKEN, ("QUOTE_EXPIRY_MINUTES", "soon")], None).unwrap_err().to_string();
        assert!(err.contains("QUOTE_EXPIRY_MINUTES"), "{err}");
        let err = load_env(&[TOKEN, ("QUOTE_EXPIRY_MINUTES", "0")], None).unwrap_err().to_string();
        assert!(err.contains("QUOTE_EXPIRY_MINUTES") && err.contains("positive"), "{err}");
        let err = load_env(&[TOKEN, ("LISTEN_ADDR", "nowhere")], None).unwrap_err().to_string();
        assert!(err.contains("LISTEN_ADDR"), "{err}");
        let err = load_env(&[("INTERNAL_TOKEN", "short")], None).unwrap_err().to_string();
        assert!(err.contains("INTERNAL_TOKEN") && err.contains("16"), "{err}");
        let err = load_env(&[TOKEN, ("DATABASE_URL", "mysql://x")], None).unwrap_err().to_string();
        assert!(err.contains("DATABASE_URL") && !err.contains("mysql"), "{err}");
    }
}
