//! `LISTEN` on a dedicated connection, kept up for as long as a service runs: how replicas of one
//! service hear each other's committed changes (`NOTIFY` is sent inside the writing transaction,
//! so a notification exists exactly when its change committed).
//!
//! `NOTIFY` is not durable: a replica whose connection drops misses what was sent meanwhile. The
//! listener therefore reports every reconnection ([`Notice::Connected`] with `resumed: true`), and
//! the service re-reads whatever it keeps in step with the database.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use diesel_async::RunQueryDsl;
use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::Db;

/// What the listener tells its service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice<'a> {
    /// `LISTEN` is in place. `resumed` is true after a reconnection: notifications may have been
    /// missed while the connection was down.
    Connected {
        /// False the first time, true after every reconnection.
        resumed: bool,
    },
    /// A notification's payload.
    Payload(&'a str),
}

/// A channel to listen on, and how the connection shows in `pg_stat_activity`.
#[derive(Debug, Clone)]
pub struct Listener {
    db: Db,
    channel: String,
    application_name: String,
    up: Arc<AtomicBool>,
}

impl Listener {
    /// A listener for `channel` (an SQL identifier) on a connection named `application_name`.
    pub fn new(db: Db, channel: &str, application_name: &str) -> Result<Self, crate::DbError> {
        let identifier = !channel.is_empty()
            && channel.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        let name = !application_name.is_empty()
            && application_name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !identifier || !name {
            return Err(crate::DbError::Config(format!(
                "listener names must be plain identifiers: {channel:?}, {application_name:?}"
            )));
        }
        Ok(Self {
            db,
            channel: channel.to_owned(),
            application_name: application_name.to_owned(),
            up: Arc::new(AtomicBool::new(false)),
        })
    }

    /// Whether `LISTEN` is in place right now (readiness reports it).
    pub fn is_up(&self) -> bool {
        AtomicBool::load(&self.up, Ordering::SeqCst)
    }

    /// Listens until `cancel`, reconnecting a second after any failure; `on` sees every notice.
    pub async fn run(&self, cancel: CancellationToken, mut on: impl FnMut(Notice<'_>)) {
        let mut resumed = false;
        loop {
            let outcome = self.listen_once(&cancel, resumed, &mut on).await;
            self.up.store(false, Ordering::SeqCst);
            match outcome {
                Ok(()) => return,
                Err(e) => tracing::warn!(
                    listener.channel = %self.channel,
                    error = %e,
                    "notification listener lost its connection; reconnecting"
                ),
            }
            resumed = true;
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }

    async fn listen_once(
        &self,
        cancel: &CancellationToken,
        resumed: bool,
        on: &mut impl FnMut(Notice<'_>),
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let mut conn = tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            conn = self.db.dedicated() => conn?,
        };
        // Named, so an operator sees it in `pg_stat_activity`; both names were checked in `new`.
        diesel::sql_query(format!("SET application_name = '{}'", self.application_name))
            .execute(&mut conn)
            .await?;
        diesel::sql_query(format!("LISTEN {}", self.channel)).execute(&mut conn).await?;
        self.up.store(true, Ordering::SeqCst);
        on(Notice::Connected { resumed });
        loop {
            // The stream borrows the connection; it is dropped every few seconds to check the
            // connection with a query (notifications wait in the connection's buffer meanwhile).
            {
                let mut stream = std::pin::pin!(conn.notifications_stream());
                let until = tokio::time::sleep(Duration::from_secs(5));
                tokio::pin!(until);
                loop {
                    tokio::select! {
                        _ = cancel.cancelled() => return Ok(()),
                        _ = &mut until => break,
                        next = stream.next() => match next {
                            Some(Ok(n)) => on(Notice::Payload(&n.payload)),
                            Some(Err(e)) => return Err(e.into()),
                            None => return Err("notification stream ended".into()),
                        },
                    }
                }
            }
            diesel::sql_query("SELECT 1").execute(&mut conn).await?;
        }
    }
}

/// Sends `payload` on `channel`; inside a transaction it is delivered when (and only if) the
/// transaction commits.
pub async fn notify(
    conn: &mut diesel_async::AsyncPgConnection,
    channel: &str,
    payload: &str,
) -> Result<(), crate::DbError> {
    use diesel::sql_types::Text;
    diesel::sql_query("SELECT pg_notify($1, $2)")
        .bind::<Text, _>(channel)
        .bind::<Text, _>(payload)
        .execute(conn)
        .await?;
    Ok(())
}
