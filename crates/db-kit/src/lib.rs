#![doc = include_str!("../README.md")]

use std::time::Duration;

use deadpool::Runtime;
use diesel::ConnectionError;
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_async::pooled_connection::deadpool::{Hook, HookError, Object, Pool};
use diesel_async::pooled_connection::{AsyncDieselConnectionManager, ManagerConfig};
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use diesel_migrations::MigrationHarness;
use futures_util::FutureExt;
use secrecy::{ExposeSecret, SecretString};

pub mod listener;

pub use diesel_migrations::{EmbeddedMigrations, embed_migrations};

/// A pooled connection whose `search_path` is the owning service's schema.
pub type PooledConn = Object<AsyncPgConnection>;

/// Errors of the storage layer, split the way HTTP cares: unavailable (503) versus a query that
/// failed (500, or a constraint the caller maps to 409).
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// No connection could be had in time: the database is down or the pool is exhausted.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A query failed.
    #[error("database query failed: {0}")]
    Query(diesel::result::Error),
    /// Migrations failed.
    #[error("database migration failed: {0}")]
    Migration(String),
    /// The settings are wrong (bad schema name, bad URL).
    #[error("database settings: {0}")]
    Config(String),
}

impl From<diesel::result::Error> for DbError {
    /// A statement cancelled by the statement timeout, or a connection that broke under it, means
    /// the database cannot serve now (503 and retry), not that the query was wrong.
    fn from(e: diesel::result::Error) -> Self {
        use diesel::result::{DatabaseErrorKind, Error};
        match &e {
            Error::DatabaseError(
                DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
                _,
            ) => DbError::Unavailable(e.to_string()),
            // PostgreSQL's text for SQLSTATE 57014 from `statement_timeout` (the code itself does
            // not reach diesel's error type).
            Error::DatabaseError(_, info) if info.message().contains("statement timeout") => {
                DbError::Unavailable(e.to_string())
            }
            _ => DbError::Query(e),
        }
    }
}

/// How to reach the database and size the pool.
#[derive(Clone, serde::Deserialize)]
pub struct DbSettings {
    /// `postgres://` URL; a secret because it may hold a password.
    pub url: SecretString,
    /// The schema this service owns; every connection's `search_path` is set to it.
    pub schema: String,
    /// Largest number of pooled connections.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// How long a request waits for a connection before the service answers 503.
    #[serde(default = "default_acquire_timeout_ms")]
    pub acquire_timeout_ms: u64,
    /// Longest a statement may run (`statement_timeout` on every connection): a hung query
    /// becomes an error instead of holding a connection and its callers forever.
    #[serde(default = "default_statement_timeout_ms")]
    pub statement_timeout_ms: u64,
}

fn default_max_connections() -> usize {
    16
}

fn default_acquire_timeout_ms() -> u64 {
    3_000
}

fn default_statement_timeout_ms() -> u64 {
    30_000
}

impl std::fmt::Debug for DbSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbSettings")
            .field("url", &"<redacted>")
            .field("schema", &self.schema)
            .field("max_connections", &self.max_connections)
            .field("acquire_timeout_ms", &self.acquire_timeout_ms)
            .field("statement_timeout_ms", &self.statement_timeout_ms)
            .finish()
    }
}

impl DbSettings {
    /// Settings with the default pool size and timeout.
    pub fn new(url: impl Into<String>, schema: impl Into<String>) -> Self {
        Self {
            url: SecretString::from(url.into()),
            schema: schema.into(),
            max_connections: default_max_connections(),
            acquire_timeout_ms: default_acquire_timeout_ms(),
            statement_timeout_ms: default_statement_timeout_ms(),
        }
    }

    /// Checks the settings without connecting; the message names the bad setting.
    pub fn validate(&self) -> Result<(), DbError> {
        if !is_identifier(&self.schema) {
            return Err(DbError::Config(format!(
                "schema {:?} must be a lower-case SQL identifier (a-z, 0-9, _)",
                self.schema
            )));
        }
        let url = self.url.expose_secret();
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(DbError::Config("url must start with postgres:// or postgresql://".into()));
        }
        if self.max_connections == 0 {
            return Err(DbError::Config("max_connections must be at least 1".into()));
        }
        if self.statement_timeout_ms == 0 {
            return Err(DbError::Config("statement_timeout_ms must be at least 1".into()));
        }
        Ok(())
    }
}

fn is_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && !s.as_bytes()[0].is_ascii_digit()
}

/// The service's database handle: a pool pinned to its schema. Cheap to clone.
#[derive(Clone)]
pub struct Db {
    pool: Pool<AsyncPgConnection>,
    settings: std::sync::Arc<DbSettings>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db").field("schema", &self.settings.schema).finish_non_exhaustive()
    }
}

/// How long a pooled connection serves before it is replaced by a new one.
///
/// Why: a connection keeps the generic plans of its prepared statements for its whole life, and a
/// plan made while a table was small (a fresh deployment, autovacuum off or behind) scans the whole
/// table once it has grown (seen in the submission bench: a `txid = ANY($1)` lookup reading every
/// row, 3 ms a call). A new connection plans again against the table's current size. Planning
/// every execution instead (`plan_cache_mode = force_custom_plan`) was measured too: it doubled
/// PostgreSQL's CPU per peer-channel read. Replacing a connection costs a few milliseconds.
pub const MAX_CONNECTION_AGE: Duration = Duration::from_secs(30);

/// Opens a connection with `search_path` set to `schema` (which `validate` made safe to quote) and
/// the statement timeout set.
async fn connect_in_schema(
    url: &str,
    schema: &str,
    statement_timeout_ms: u64,
) -> Result<AsyncPgConnection, ConnectionError> {
    let mut conn = AsyncPgConnection::establish(url).await?;
    conn.batch_execute(&format!(
        "SET search_path TO \"{schema}\"; SET statement_timeout = {statement_timeout_ms}"
    ))
    .await
    .map_err(ConnectionError::CouldntSetupConfiguration)?;
    Ok(conn)
}

impl Db {
    /// Builds the pool. No connection is made yet, so a service can start (and report not-ready)
    /// while the database is still coming up.
    pub fn new(settings: DbSettings) -> Result<Self, DbError> {
        settings.validate()?;
        let schema = settings.schema.clone();
        let statement_timeout = settings.statement_timeout_ms;
        let mut config = ManagerConfig::<AsyncPgConnection>::default();
        config.custom_setup = Box::new(move |url| {
            let schema = schema.clone();
            let url = url.to_owned();
            async move { connect_in_schema(&url, &schema, statement_timeout).await }.boxed()
        });
        let manager =
            AsyncDieselConnectionManager::new_with_config(settings.url.expose_secret().to_owned(), config);
        let acquire = Duration::from_millis(settings.acquire_timeout_ms);
        let pool = Pool::builder(manager)
            .max_size(settings.max_connections)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(acquire))
            .create_timeout(Some(acquire))
            .recycle_timeout(Some(acquire))
            .pre_recycle(Hook::sync_fn(|_, metrics| {
                if metrics.age() < MAX_CONNECTION_AGE {
                    Ok(())
                } else {
                    Err(HookError::Message("connection replaced after its maximum age".into()))
                }
            }))
            .build()
            .map_err(|e| DbError::Config(e.to_string()))?;
        Ok(Self { pool, settings: std::sync::Arc::new(settings) })
    }

    /// The schema this handle is pinned to.
    pub fn schema(&self) -> &str {
        &self.settings.schema
    }

    /// A connection from the pool; `DbError::Unavailable` when none comes in time.
    pub async fn conn(&self) -> Result<PooledConn, DbError> {
        self.pool.get().await.map_err(|e| DbError::Unavailable(e.to_string()))
    }

    /// A connection outside the pool, for work that holds session state (an advisory lock held by
    /// a singleton worker for as long as it runs).
    pub async fn dedicated(&self) -> Result<AsyncPgConnection, DbError> {
        connect_in_schema(
            self.settings.url.expose_secret(),
            &self.settings.schema,
            self.settings.statement_timeout_ms,
        )
        .await
        .map_err(|e| DbError::Unavailable(e.to_string()))
    }

    /// Takes the session-level advisory lock `name` on `conn` without waiting; true when taken.
    /// The lock lives as long as the connection: a crashed holder releases it.
    pub async fn try_advisory_lock(conn: &mut AsyncPgConnection, name: &str) -> Result<bool, DbError> {
        use diesel::sql_types::{Bool, Text};
        #[derive(diesel::QueryableByName)]
        struct Locked {
            #[diesel(sql_type = Bool)]
            locked: bool,
        }
        let row: Locked = diesel_async::RunQueryDsl::get_result(
            diesel::sql_query("SELECT pg_try_advisory_lock(hashtext($1)) AS locked").bind::<Text, _>(name),
            conn,
        )
        .await?;
        Ok(row.locked)
    }

    /// True while `conn` still holds the advisory lock `name` (taken with
    /// [`Db::try_advisory_lock`]). A singleton worker asks before each round: a connection that
    /// broke (or was terminated) took the lock with it, and another replica may hold it by now.
    pub async fn holds_advisory_lock(conn: &mut AsyncPgConnection, name: &str) -> Result<bool, DbError> {
        use diesel::sql_types::{Bool, Text};
        #[derive(diesel::QueryableByName)]
        struct Held {
            #[diesel(sql_type = Bool)]
            held: bool,
        }
        // A one-key advisory lock shows its key's high half as `classid`, its low half as `objid`.
        let row: Held = diesel_async::RunQueryDsl::get_result(
            diesel::sql_query(
                "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted \
                 AND pid = pg_backend_pid() AND objsubid = 1 \
                 AND ((classid::bigint << 32) | objid::bigint) = hashtext($1)::bigint) AS held",
            )
            .bind::<Text, _>(name),
            conn,
        )
        .await?;
        Ok(row.held)
    }

    /// Round-trips `SELECT 1`: the readiness check.
    pub async fn ping(&self) -> Result<(), DbError> {
        let mut conn = self.conn().await?;
        let timeout = Duration::from_millis(self.settings.acquire_timeout_ms);
        match tokio::time::timeout(timeout, conn.batch_execute("SELECT 1")).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                // The connection is probably broken; do not hand it out again.
                let _ = Object::take(conn);
                Err(DbError::Unavailable(e.to_string()))
            }
            Err(_) => {
                let _ = Object::take(conn);
                Err(DbError::Unavailable("SELECT 1 timed out".into()))
            }
        }
    }

    /// Creates the schema if needed and runs pending migrations, serialized across replicas by
    /// an advisory lock. Returns how many migrations ran.
    pub async fn migrate(&self, migrations: EmbeddedMigrations) -> Result<usize, DbError> {
        let url = self.settings.url.expose_secret().to_owned();
        let schema = self.settings.schema.clone();
        let mut conn =
            AsyncPgConnection::establish(&url).await.map_err(|e| DbError::Unavailable(e.to_string()))?;
        let lock_key = format!("migrations:{schema}");
        conn.batch_execute(&format!(
            "SELECT pg_advisory_lock(hashtext('{lock_key}')); CREATE SCHEMA IF NOT EXISTS \"{schema}\"; SET search_path TO \"{schema}\""
        ))
        .await?;
        let ran = tokio::task::spawn_blocking(move || {
            let mut sync_conn = AsyncConnectionWrapper::<AsyncPgConnection>::from(conn);
            let result = sync_conn
                .run_pending_migrations(migrations)
                .map(|v| v.len())
                .map_err(|e| DbError::Migration(e.to_string()));
            // The session ends with the connection, which releases the lock as well.
            let _ = diesel::connection::SimpleConnection::batch_execute(
                &mut sync_conn,
                &format!("SELECT pg_advisory_unlock(hashtext('{lock_key}'))"),
            );
            result
        })
        .await
        .map_err(|e| DbError::Migration(e.to_string()))??;
        if ran > 0 {
            tracing::info!(db.schema = %self.settings.schema, migrations.ran = ran, "migrations applied");
        }
        Ok(ran)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_validated_with_the_setting_named() {
        let mut s = DbSettings::new("postgres://x@127.0.0.1/db", "mapi");
        s.validate().unwrap();
        s.schema = "Robert'); DROP".into();
        assert!(s.validate().unwrap_err().to_string().contains("schema"));
        s.schema = "ok".into();
        s.url = SecretString::from("mysql://x".to_owned());
        assert!(s.validate().unwrap_err().to_string().contains("url"));
        assert!(!format!("{s:?}").contains("mysql"));
    }
}
